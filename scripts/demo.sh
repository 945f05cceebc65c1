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
    stop_krawl_stack
    stop_noida
}
trap cleanup EXIT

PORT=$(free_port)
say "starting noida-db on 127.0.0.1:$PORT (data in $DEMO/noida)"
start_noida "$PORT" "$DEMO/noida" "$DEMO/noida.log"

say "seeding sample data (scripts/seed.py --sample)"
python3 scripts/seed.py --bootstrap "127.0.0.1:$PORT" --sample

say "starting the control plane and an agent (config $DEMO/krawl.toml; logs in $DEMO)"
start_krawl_stack "$KRAWL" "$DEMO" --log-format json
echo "control plane: $KRAWL_CP_URL (database $DEMO/controlplane.db)"

printf '{"kafka":{"bootstrap_servers":["127.0.0.1:%s"]}}\n' "$PORT" >"$DEMO/spec.json"
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
