#!/usr/bin/env bash
# The main job on the embedded default, from a fresh clone: installs what it
# needs, starts a local Kafka-compatible broker (noida-db) with sample data, the
# reference control plane (`krawl controlplane`, SQLite) and an agent
# (`krawl run`), submits a kafka.extract job, waits for it, and shows the result.
#
# Everything stays in .demo/: the control plane's database, the agent's config
# and logs, and the job's records in .demo/extract.ndjson. The processes are
# stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEMO="$ROOT/.demo"

say() { printf '\n==> %s\n' "$*"; }

say "installing dependencies (scripts/testbed-install.sh)"
scripts/testbed-install.sh >/dev/null
python3 -c 'import confluent_kafka' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check confluent-kafka

say "building krawl (release)"
cargo build --release --quiet -p krawl-cli
KRAWL="$ROOT/target/release/krawl"

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
rm -rf "$DEMO" && mkdir -p "$DEMO"
CP_PID="" AGENT_PID=""
cleanup() {
    if [[ -n $AGENT_PID ]]; then kill -TERM "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null || true; fi
    if [[ -n $CP_PID ]]; then kill -TERM "$CP_PID" 2>/dev/null && wait "$CP_PID" 2>/dev/null || true; fi
    stop_noida
}
trap cleanup EXIT

PORT=$(free_port)
say "starting noida-db on 127.0.0.1:$PORT (data in $DEMO/noida)"
start_noida "$PORT" "$DEMO/noida" "$DEMO/noida.log"

say "seeding sample data (scripts/seed.py --sample)"
python3 scripts/seed.py --bootstrap "127.0.0.1:$PORT" --sample

# Demo tokens: random per run, in files only root can read.
(umask 077
 head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$DEMO/admin.token"
 head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$DEMO/bootstrap.token")
CP_PORT=$(free_port)
export KRAWL_CP_URL="http://127.0.0.1:$CP_PORT"
say "starting the control plane on $KRAWL_CP_URL (database $DEMO/controlplane.db)"
"$KRAWL" controlplane --listen "127.0.0.1:$CP_PORT" --db "$DEMO/controlplane.db" \
    --admin-token-file "$DEMO/admin.token" --bootstrap-token-file "$DEMO/bootstrap.token" \
    >"$DEMO/controlplane.log" 2>&1 &
CP_PID=$!

HEALTH_PORT=$(free_port)
cat >"$DEMO/krawl.toml" <<TOML
# The agent's config (deploy/krawl.example.toml documents every key).
[agent]
name = "demo-agent"
health_listen = "127.0.0.1:$HEALTH_PORT"

[control_plane]
url = "$KRAWL_CP_URL"

[control_plane.auth]
bootstrap_token = "file://$DEMO/bootstrap.token"

[policy]
# The clusters this agent may connect to (nothing is allowed unless listed).
allowed_bootstrap_servers = ["127.0.0.1:*"]
TOML
say "starting an agent: krawl run --config $DEMO/krawl.toml (health on 127.0.0.1:$HEALTH_PORT)"
"$KRAWL" --log-format json run --config "$DEMO/krawl.toml" >"$DEMO/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$HEALTH_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
if ! curl -fsS "http://127.0.0.1:$HEALTH_PORT/readyz" >/dev/null 2>&1; then
    cat "$DEMO/agent.log" "$DEMO/controlplane.log" >&2
    echo "the agent did not become ready" >&2
    exit 1
fi

printf '{"kafka":{"bootstrap_servers":["127.0.0.1:%s"]}}\n' "$PORT" >"$DEMO/spec.json"
KRAWL_CP_ADMIN_TOKEN=$(cat "$DEMO/admin.token")
export KRAWL_CP_ADMIN_TOKEN
say "krawl jobs submit --kind kafka.extract --spec $DEMO/spec.json --wait"
"$KRAWL" jobs submit --kind kafka.extract --spec "$DEMO/spec.json" --wait --json >"$DEMO/job.json"
JOB=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$DEMO/job.json")
"$KRAWL" jobs get "$JOB"
"$KRAWL" jobs results "$JOB" --output "$DEMO/extract.ndjson"

say "what was extracted"
python3 - "$DEMO/extract.ndjson" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    k = r["kind"]
    if k == "cluster":
        print(f"cluster {r['cluster_id']}: {r['broker_count']} broker(s), {r['topic_count']} topics, "
              f"{r['partition_count']} partitions, {len(r['api_versions'])} APIs, {r['security_protocol']}")
    elif k == "topic":
        cfg = {c["name"]: c for c in r["configs"]}
        overrides = ", ".join(f"{c['name']}={c['value']}" for c in r["configs"] if c["source"] == "topic")
        size = f"{r['size_bytes']} bytes" if r["size_bytes"] is not None else "size unknown"
        print(f"topic {r['name']}: {r['partition_count']} partitions x RF {r['replication_factor']}, "
              f"{r['record_count']} records, {size}, read by {r['consumer_group_count']} group(s)"
              + (f"; overrides: {overrides}" if overrides else ""))
    elif k == "consumer_group":
        print(f"group {r['group_id']}: {r['state']}, {len(r['members'])} member(s), "
              f"total lag {r['total_lag']} on {', '.join(r['topics']) or '-'}")
    elif k == "warning":
        print(f"warning [{r['code']}] {r.get('subject') or ''}: {r['message']}")
    elif k == "summary":
        print(f"summary: {r['counts']['records']} records in {r['duration_ms']} ms; calls {r['api_calls']}")
PY
echo
echo "records: $DEMO/extract.ndjson (schema: schema/records.schema.json)"
echo "job:     $JOB  (krawl jobs get $JOB, with KRAWL_CP_URL and KRAWL_CP_ADMIN_TOKEN from .demo/)"
echo "logs:    $DEMO/agent.log, $DEMO/controlplane.log"
