#!/usr/bin/env bash
# Leak check for krawl-kafka's admin_ext wrappers (the only unsafe code).
#
# Starts a throwaway Kafka-compatible broker (noida-db) on a free port,
# seeds a topic and a consumer group with committed offsets, then runs
# crates/krawl-kafka/examples/admin_ext_loop under valgrind memcheck. Every
# wrapper is called ITERATIONS times against the broker (with a live group
# member so member descriptions are parsed too) and once more against an
# unreachable address to exercise the timeout/error paths.
#
# Fails (exit 1) when valgrind reports any "definitely lost" block that is
# not covered by scripts/valgrind.supp (which only covers allocations made
# outside admin_ext — see the comments there), or when the example itself
# reports a functional failure.
#
# Environment:
#   NOIDA_BIN   broker launcher (default: noida-db from PATH)
#   ITERATIONS  loop iterations under valgrind (default: 3)
#   LEAK_LOG    where to keep the valgrind log
#               (default: $CARGO_TARGET_DIR or target/ + leak-check-valgrind.log)
#   CARGO_TARGET_DIR  honoured when locating the built example
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NOIDA_BIN=${NOIDA_BIN:-noida-db}
ITERATIONS=${ITERATIONS:-3}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LEAK_LOG=${LEAK_LOG:-$TARGET_DIR/leak-check-valgrind.log}
SUPP=$ROOT/scripts/valgrind.supp

die() { echo "leak-check: $*" >&2; exit 1; }

command -v valgrind >/dev/null || die "valgrind not found"
command -v "$NOIDA_BIN" >/dev/null || die "broker launcher '$NOIDA_BIN' not found (set NOIDA_BIN)"
command -v setsid >/dev/null || die "setsid not found"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/krawl-leak-check.XXXXXX")
NOIDA_PID=

cleanup() {
    local rc=$?
    if [[ -n $NOIDA_PID ]]; then
        # noida-db is a launcher that forks the real server; it runs in its
        # own session/process group (setsid below), so signal the group.
        kill -TERM -- "-$NOIDA_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 -- "-$NOIDA_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$NOIDA_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

PORT=$(free_port)
BOOTSTRAP=127.0.0.1:$PORT

echo "leak-check: building example"
(cd "$ROOT" && cargo build --quiet -p krawl-kafka --example admin_ext_loop)
BIN=$TARGET_DIR/debug/examples/admin_ext_loop
[[ -x $BIN ]] || die "example binary not found at $BIN"

echo "leak-check: starting $NOIDA_BIN on $BOOTSTRAP (data in $WORK/noida)"
setsid "$NOIDA_BIN" start --only kafka --kafka-port "$PORT" --data-dir "$WORK/noida" \
    >"$WORK/noida.log" 2>&1 &
NOIDA_PID=$!

for i in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        break
    fi
    if ! kill -0 "$NOIDA_PID" 2>/dev/null; then
        cat "$WORK/noida.log" >&2
        die "broker exited before listening"
    fi
    [[ $i == 600 ]] && { cat "$WORK/noida.log" >&2; die "broker did not listen on $PORT within 60 s"; }
    sleep 0.1
done

echo "leak-check: seeding"
"$BIN" --bootstrap "$BOOTSTRAP" --seed

echo "leak-check: running $ITERATIONS iterations under valgrind"
mkdir -p "$(dirname "$LEAK_LOG")"
set +e
valgrind \
    --leak-check=full \
    --errors-for-leak-kinds=definite \
    --error-exitcode=3 \
    --suppressions="$SUPP" \
    --num-callers=40 \
    --log-file="$LEAK_LOG" \
    "$BIN" --bootstrap "$BOOTSTRAP" --iterations "$ITERATIONS" --live-member --error-paths
RC=$?
set -e

echo "leak-check: valgrind log: $LEAK_LOG"
grep -E 'definitely lost:|indirectly lost:|possibly lost:|still reachable:|suppressed:|ERROR SUMMARY' "$LEAK_LOG" |
    sed 's/^==[0-9]*== */  /'

LOST=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$LEAK_LOG" | tr -d , | tail -n1)
case $RC in
    0) ;;
    3)
        grep -B2 -A40 'definitely lost in loss record' "$LEAK_LOG" >&2 || true
        die "valgrind reported definitely-lost memory (see $LEAK_LOG)"
        ;;
    *) die "admin_ext_loop failed under valgrind (exit $RC)" ;;
esac
[[ -z $LOST || $LOST == 0 ]] || die "definitely lost: $LOST bytes"
echo "leak-check: OK (definitely lost: ${LOST:-0} bytes)"
