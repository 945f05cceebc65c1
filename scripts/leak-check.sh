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
#   KRAWL_NOIDA_BIN   broker launcher (default: noida-db from PATH); the old
#                     name NOIDA_BIN is still read, with a warning, if it is unset
#   KRAWL_NOIDA_WAIT  seconds to wait for the broker's port (default: 60)
#   ITERATIONS        loop iterations under valgrind (default: 3)
#   LEAK_LOG          where to keep the valgrind log
#                     (default: $CARGO_TARGET_DIR or target/ + leak-check-valgrind.log)
#   CARGO_TARGET_DIR  honoured when locating the built example
# (scripts/lib.sh starts and stops the broker.)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
ITERATIONS=${ITERATIONS:-3}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LEAK_LOG=${LEAK_LOG:-$TARGET_DIR/leak-check-valgrind.log}
SUPP=$ROOT/scripts/valgrind.supp

die() { echo "leak-check: $*" >&2; exit 1; }

if [[ -z ${KRAWL_NOIDA_BIN:-} && -n ${NOIDA_BIN:-} ]]; then
    echo "leak-check: warning: NOIDA_BIN is deprecated, set KRAWL_NOIDA_BIN instead" >&2
    KRAWL_NOIDA_BIN=$NOIDA_BIN
fi
KRAWL_NOIDA_BIN=${KRAWL_NOIDA_BIN:-noida-db}

command -v valgrind >/dev/null || die "valgrind not found"
command -v "$KRAWL_NOIDA_BIN" >/dev/null || die "broker launcher '$KRAWL_NOIDA_BIN' not found (set KRAWL_NOIDA_BIN)"
command -v setsid >/dev/null || die "setsid not found"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/krawl-leak-check.XXXXXX")

cleanup() {
    local rc=$?
    # noida-db is a launcher that forks the real server; start_noida runs it in
    # its own session/process group and stop_noida signals the whole group.
    stop_noida
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "leak-check: building example"
(cd "$ROOT" && cargo build --quiet -p krawl-kafka --example admin_ext_loop)
BIN=$TARGET_DIR/debug/examples/admin_ext_loop
[[ -x $BIN ]] || die "example binary not found at $BIN"

PORT=$(free_port) || die "no free port found"
BOOTSTRAP=127.0.0.1:$PORT
echo "leak-check: starting $KRAWL_NOIDA_BIN on $BOOTSTRAP (data in $WORK/noida)"
start_noida "$PORT" "$WORK/noida" "$WORK/noida.log" "${KRAWL_NOIDA_WAIT:-60}" ||
    die "broker did not start on $BOOTSTRAP (log above)"

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
