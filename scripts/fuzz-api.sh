#!/usr/bin/env bash
# Property-tests the control plane's HTTP API against its own OpenAPI document
# (docs/openapi.json) with schemathesis: starts `krawl controlplane` on a free
# port with a temporary database, registers one agent, submits one job and
# leases it to that agent (so the agent operations reach past 404), then runs
# schemathesis with the right bearer per security scheme and the checks
# not_a_server_error, status_code_conformance, content_type_conformance and
# response_schema_conformance. Any 5xx, an undocumented status, a wrong
# content type or a body not matching the schema fails the script.
#
# Builds nothing: uses target/debug/krawl (or $KRAWL_BIN). Installs
# schemathesis into <repo>/.testbed/schemathesis-venv when it is missing.
#
# Environment:
#   KRAWL_BIN               the krawl binary (default: target/debug/krawl)
#   KRAWL_FUZZ_EXAMPLES     test cases per operation and phase (default: 100)
#   KRAWL_FUZZ_SEED         schemathesis seed (default: 1)
#   KRAWL_FUZZ_KEEP=1       keep the temp dir (database, server log, report)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

KRAWL_BIN=${KRAWL_BIN:-${REPO_ROOT}/target/debug/krawl}
EXAMPLES=${KRAWL_FUZZ_EXAMPLES:-100}
SEED=${KRAWL_FUZZ_SEED:-1}
ST_VENV="${REPO_ROOT}/.testbed/schemathesis-venv"

log() { printf 'fuzz-api: %s\n' "$*"; }

[[ -x "${KRAWL_BIN}" ]] || { log "no krawl binary at ${KRAWL_BIN}: run 'cargo build -p krawl-cli' or set KRAWL_BIN" >&2; exit 1; }
if [[ ! -x "${ST_VENV}/bin/schemathesis" ]]; then
    scripts/testbed-install.sh --schemathesis-only
fi

WORK=$(mktemp -d)
CP_PID=
cleanup() {
    local rc=$?
    if [[ -n "${CP_PID}" ]]; then
        kill -TERM "${CP_PID}" 2>/dev/null || true
        wait "${CP_PID}" 2>/dev/null || true
    fi
    if ((rc != 0)) && [[ -f "${WORK}/cp.log" ]]; then
        log "control plane log (last 30 lines):" >&2
        tail -n 30 "${WORK}/cp.log" >&2 || true
    fi
    if [[ "${KRAWL_FUZZ_KEEP:-0}" == 1 ]]; then
        log "kept ${WORK}"
    else
        rm -rf "${WORK}"
    fi
    exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rand_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export KRAWL_CP_ADMIN_TOKEN KRAWL_CP_BOOTSTRAP_TOKEN
KRAWL_CP_ADMIN_TOKEN=$(rand_token)
KRAWL_CP_BOOTSTRAP_TOKEN=$(rand_token)

PORT=$(free_port)
BASE="http://127.0.0.1:${PORT}"
# A short poll wait: a poll that finds no job is held this long, and schemathesis sends many.
"${KRAWL_BIN}" controlplane --listen "127.0.0.1:${PORT}" --db "${WORK}/cp.db" \
    --poll-wait-secs 1 --lease-ttl-secs 3600 --log-level warn >"${WORK}/cp.log" 2>&1 &
CP_PID=$!
for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null && break
    kill -0 "${CP_PID}" 2>/dev/null || { log "the control plane exited at start" >&2; exit 1; }
    sleep 0.1
done

# json_field FIELD: that field of the JSON object on stdin.
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
api() { # METHOD PATH TOKEN [BODY]
    curl -sS --fail-with-body -X "$1" -H "Authorization: Bearer $3" \
        -H 'Content-Type: application/json' ${4:+--data "$4"} "${BASE}$2"
}

reg=$(api POST /v1/agents/register "${KRAWL_CP_BOOTSTRAP_TOKEN}" \
    '{"name":"fuzz","version":"0","capabilities":["kafka.list_topics"],"labels":{},"max_concurrent_jobs":1}')
AGENT_ID=$(json_field agent_id <<<"${reg}")
AGENT_TOKEN=$(json_field agent_token <<<"${reg}")
job=$(api POST /v1/jobs "${KRAWL_CP_ADMIN_TOKEN}" \
    '{"kind":"kafka.list_topics","spec":{"kafka":{"bootstrap_servers":["127.0.0.1:9"]}},"max_attempts":1000}')
JOB_ID=$(json_field id <<<"${job}")
lease=$(api POST "/v1/agents/${AGENT_ID}/poll" "${AGENT_TOKEN}" '{"free_slots":1,"kinds":["kafka.list_topics"]}')
ATTEMPT=$(json_field attempt <<<"${lease}")
log "control plane on ${BASE}; agent ${AGENT_ID}; job ${JOB_ID} attempt ${ATTEMPT} leased"

# Chunk bodies are application/x-ndjson (compressed bytes): schemathesis has no serializer for
# that media type, so this hook sends the generated value as raw bytes. The server answers
# them 400 (wrong sha256, not zstd): what counts is a documented status, never a 5xx.
cat >"${WORK}/hooks.py" <<'EOF'
import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return {"data": value}
    return {"data": str(value).encode("utf-8", "surrogatepass")}
EOF

# Tokens per security scheme of docs/openapi.json. Path parameters stay generated (so unknown
# ids, bad numbers and odd encodings are tried), but half the time they are the real agent, job
# and attempt, so the agent operations get past 404 and the auth checks.
cat >"${WORK}/schemathesis.toml" <<EOF
hooks = "${WORK}/hooks.py"
seed = ${SEED}
workers = 1

[auth.openapi.adminToken]
bearer = "${KRAWL_CP_ADMIN_TOKEN}"
[auth.openapi.bootstrapToken]
bearer = "${KRAWL_CP_BOOTSTRAP_TOKEN}"
[auth.openapi.agentToken]
bearer = "${AGENT_TOKEN}"

[dictionaries.agents]
values = ["${AGENT_ID}"]
[dictionaries.jobs]
values = ["${JOB_ID}"]
[dictionaries.attempts]
values = [${ATTEMPT}]

[parameters]
"path.agent_id" = { dictionary = "agents", probability = 0.5 }
"path.job_id" = { dictionary = "jobs", probability = 0.5 }
"path.attempt" = { dictionary = "attempts", probability = 0.5 }

[generation]
max-examples = ${EXAMPLES}

[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true
EOF

log "schemathesis $("${ST_VENV}/bin/schemathesis" --version | awk '{print $NF}'), ${EXAMPLES} examples per operation, seed ${SEED}"
cd "${WORK}"
"${ST_VENV}/bin/schemathesis" --config-file "${WORK}/schemathesis.toml" run \
    "${REPO_ROOT}/docs/openapi.json" --url "${BASE}" --no-color \
    --report junit --report-dir "${WORK}/report"
