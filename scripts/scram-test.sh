#!/usr/bin/env bash
# The opt-in SCRAM test (docs/testing.md): `krawl extract` with SCRAM-SHA-256 and
# SCRAM-SHA-512, over SASL_PLAINTEXT and SASL_SSL (stunnel in front), against a broker that really
# checks SCRAM proofs — Tansu 0.6.0 built from crates.io with its SQLite storage.
# (The Tansu packaged on PyPI stores in memory and has no SCRAM credentials;
# noida-db accepts any password.) Each combination extracts with the right
# password and expects exit code 6 (authentication) with a wrong one.
#
# The first run builds Tansu (11 minutes on 2 cores with only its libsql
# feature) into .testbed/tansu-scram and keeps only the binary; later runs reuse
# it (about 1 minute). The build is why this is not part of scripts/test.sh.
#
# Environment:
#   KRAWL_TANSU_SCRAM_BIN  an existing tansu built with `--features libsql`
#                          (default: .testbed/tansu-scram/bin/tansu, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

say() { printf '\n==> %s\n' "$*"; }
die() { echo "scram-test: $*" >&2; exit 1; }

TANSU=${KRAWL_TANSU_SCRAM_BIN:-$ROOT/.testbed/tansu-scram/bin/tansu}
if [[ ! -x $TANSU ]]; then
    [[ -z ${KRAWL_TANSU_SCRAM_BIN:-} ]] || die "KRAWL_TANSU_SCRAM_BIN=$TANSU is not an executable"
    say "building Tansu 0.6.0 with SQLite storage into .testbed/tansu-scram (once; about 11 minutes)"
    cargo install tansu --version 0.6.0 --no-default-features --features libsql --locked \
        --root "$ROOT/.testbed/tansu-scram" --target-dir "$ROOT/.testbed/tansu-scram/target"
    rm -rf "$ROOT/.testbed/tansu-scram/target" # gigabytes of build state; the binary is kept
fi
command -v openssl >/dev/null || die "openssl not found (apt-get install -y openssl)"

say "building krawl and the test binaries"
cargo build --quiet -p krawl-cli
cargo test --quiet -p krawl-tests --test extract --no-run

WORK=$(mktemp -d "${TMPDIR:-/tmp}/krawl-scram.XXXXXX")
BROKER_PID=""
stop_broker() {
    local pid
    for pid in "$BROKER_PID" "${STUNNEL_PID:-}"; do
        if [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; fi
    done
    BROKER_PID="" STUNNEL_PID=""
}
cleanup() {
    local rc=$?
    stop_broker
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A throwaway PKI for SASL_SSL: a CA and a server certificate for 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=krawl-scram-test-ca \
    -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$WORK/srv.key" -out "$WORK/srv.csr" 2>/dev/null
openssl x509 -req -days 1 -in "$WORK/srv.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -out "$WORK/srv.pem" \
    -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n') 2>/dev/null

PORT=$(free_port)  # what clients dial: Tansu itself, or stunnel in front of it
INNER=$(free_port) # where Tansu listens behind stunnel
STUNNEL_PID=""
wait_port() {
    local port=$1 pid=$2 _
    for _ in $(seq 1 150); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    cat "$WORK/tansu.log" "$WORK/stunnel.log" >&2 2>/dev/null || true
    die "nothing listens on 127.0.0.1:$port"
}
# start_broker LISTEN_PORT [TANSU_FLAG...]: Tansu on LISTEN_PORT advertising $PORT, over the
# SQLite database in $WORK (which keeps the users between restarts).
start_broker() {
    local listen=$1
    shift
    # Tansu takes the path of sqlite://PATH as relative to its working directory.
    (cd "$WORK" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$listen" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" \
        --storage-engine "sqlite://tansu.db" "$@" >>"$WORK/tansu.log" 2>&1) &
    BROKER_PID=$!
    wait_port "$listen" "$BROKER_PID"
}
# Tansu 0.6.0's own TLS cannot be switched on (its --cert and --key flags exclude each
# other), so SASL_SSL goes through stunnel, as in the rest of the suite.
start_stunnel() {
    cat >"$WORK/stunnel.conf" <<CONF
foreground = yes
pid =
[kafka-tls]
accept = 127.0.0.1:$PORT
connect = 127.0.0.1:$INNER
cert = $WORK/srv.pem
key = $WORK/srv.key
CONF
    stunnel4 "$WORK/stunnel.conf" >"$WORK/stunnel.log" 2>&1 &
    STUNNEL_PID=$!
    wait_port "$PORT" "$STUNNEL_PID"
}

# Users are made through the broker's AlterUserScramCredentials API while it
# does not yet require authentication, then it restarts requiring it.
PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
say "creating SCRAM users on an open broker (127.0.0.1:$PORT)"
start_broker "$PORT"
"$TANSU" user create --broker "tcp://127.0.0.1:$PORT" --mechanism scram256 krawl256 "$PASSWORD"
"$TANSU" user create --broker "tcp://127.0.0.1:$PORT" --mechanism scram512 krawl512 "$PASSWORD"
stop_broker

run_case() {
    local protocol=$1 mechanism=$2 user=$3 ca=""
    say "$protocol $mechanism as $user"
    if [[ $protocol == SASL_SSL ]]; then
        ca=$WORK/ca.pem
        start_broker "$INNER" --authentication
        start_stunnel
    else
        start_broker "$PORT" --authentication
    fi
    KRAWL_SCRAM_BOOTSTRAP="127.0.0.1:$PORT" KRAWL_SCRAM_PROTOCOL=$protocol \
        KRAWL_SCRAM_MECHANISM=$mechanism KRAWL_SCRAM_USERNAME=$user KRAWL_SCRAM_PASSWORD=$PASSWORD \
        KRAWL_SCRAM_CA_FILE=$ca \
        cargo test --quiet -p krawl-tests --test extract -- --ignored --exact \
        scram_against_a_real_broker
    stop_broker
}
run_case SASL_PLAINTEXT SCRAM-SHA-256 krawl256
run_case SASL_PLAINTEXT SCRAM-SHA-512 krawl512
run_case SASL_SSL SCRAM-SHA-256 krawl256
run_case SASL_SSL SCRAM-SHA-512 krawl512
say "SCRAM: all four combinations passed"
