#!/usr/bin/env bash
# Agent benchmarks (docs/benchmarks.md), in one run:
#  1. idle: a release `krawl run` agent long-polling a `krawl controlplane` with no jobs, for
#     BENCH_IDLE_SECS (600); peak RSS (VmHWM) and CPU time (utime + stime from /proc) of the
#     agent process; floor: < 30 MB RSS and < 1% of one core.
#  2. end to end: BENCH_TOPICS (10,000) topics x BENCH_PARTITIONS (3) and BENCH_GROUPS (500)
#     groups on noida-db; `krawl extract` alone vs the same extraction submitted as a
#     kafka.extract job through the control plane and an agent, from submit to succeeded
#     (BENCH_RUNS each, interleaved; medians); floor: within 1.2x. The job's records are checked
#     against the direct run's (same topic count); the agent's peak RSS (VmHWM) is printed.
#
#   scripts/bench-agent.sh
#   BENCH_IDLE_SECS=60 BENCH_TOPICS=1000 BENCH_GROUPS=50 scripts/bench-agent.sh   # quick
#   BENCH_SKIP_IDLE=1 / BENCH_SKIP_E2E=1 skip a part; KRAWL_BIN=/path/to/krawl measures that
#   binary and builds nothing.
#
# Exit status: 0 when both floors hold, 1 when one does not, 2 on a setup failure.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
ROOT=$(pwd)

IDLE_SECS=${BENCH_IDLE_SECS:-600}
TOPICS=${BENCH_TOPICS:-10000}
PARTITIONS=${BENCH_PARTITIONS:-3}
GROUPS_N=${BENCH_GROUPS:-500}
RUNS=${BENCH_RUNS:-3}
PYTHON=${PYTHON:-python3}

say() { printf 'bench-agent: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

ensure_noida || die "cannot install or find noida-db"
KRAWL=$(bench_krawl "$ROOT") || die "no krawl binary to measure (see above)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/krawl-bench-agent.XXXXXX")
CP_PID="" AGENT_PID=""
cleanup() {
    stop_krawl_stack
    stop_noida
    if [[ "${BENCH_KEEP:-0}" == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_krawl_stack "$KRAWL" "$WORK" --log-format json --log-level info ||
    die "the control plane and agent did not start"

FAIL=0
CLK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# --- 1. idle ---------------------------------------------------------------------------------
if [[ "${BENCH_SKIP_IDLE:-0}" != 1 ]]; then
    say "idle agent for ${IDLE_SECS}s (long-polling, no jobs)"
    T0=$(date +%s.%N)
    C0=$(cpu_ticks "$AGENT_PID")
    sleep "$IDLE_SECS"
    C1=$(cpu_ticks "$AGENT_PID")
    T1=$(date +%s.%N)
    HWM_KB=$(awk '/VmHWM/ { print $2 }' "/proc/$AGENT_PID/status")
    RSS_KB=$(awk '/VmRSS/ { print $2 }' "/proc/$AGENT_PID/status")
    read -r CPU_PCT HWM_MB RSS_MB < <("$PYTHON" -c "
import sys
t0, t1, c0, c1, clk, hwm, rss = map(float, sys.argv[1:])
print(f'{100 * (c1 - c0) / clk / (t1 - t0):.3f} {hwm / 1024:.1f} {rss / 1024:.1f}')
" "$T0" "$T1" "$C0" "$C1" "$CLK" "$HWM_KB" "$RSS_KB")
    say "idle: cpu ${CPU_PCT}% of one core, peak RSS ${HWM_MB} MiB (now ${RSS_MB} MiB)"
    echo "| idle agent, ${IDLE_SECS} s | ${CPU_PCT}% of one core | peak RSS ${HWM_MB} MiB |"
    "$PYTHON" -c "import sys; sys.exit(0 if float(sys.argv[1]) < 1.0 and float(sys.argv[2]) < 30 else 1)" \
        "$CPU_PCT" "$HWM_MB" || { say "idle floor missed (< 1% CPU, < 30 MB)"; FAIL=1; }
fi

# --- 2. end to end ---------------------------------------------------------------------------
if [[ "${BENCH_SKIP_E2E:-0}" != 1 ]]; then
    PORT=$(free_port) || die "no free port"
    BOOT="127.0.0.1:$PORT"
    start_noida "$PORT" "$WORK/noida" "$WORK/noida.log" || die "cannot start noida-db"
    say "seeding $TOPICS topics x $PARTITIONS partitions, $GROUPS_N groups"
    "$PYTHON" scripts/seed.py --bootstrap "$BOOT" --topics "$TOPICS" --partitions "$PARTITIONS" \
        --groups "$GROUPS_N" --messages 100 --message-topics 200 --json >"$WORK/seed.out" ||
        { cat "$WORK/seed.out" >&2; die "seeding failed"; }
    declare -a DIRECT VIA
    for i in $(seq 1 "$RUNS"); do
        extract_vs_job "$KRAWL" "$BOOT" "$WORK" "$i" "$WORK/agent.log" || die "round $i failed"
        DIRECT[i]=$EVJ_DIRECT VIA[i]=$EVJ_VIA
        d=$EVJ_DIRECT_TOPICS v=$EVJ_VIA_TOPICS
        [[ $d == "$v" && $d -ge $TOPICS ]] || { say "topic records differ: direct $d, via the agent $v"; FAIL=1; }
        say "run $i: extract ${DIRECT[i]}s, through the control plane ${VIA[i]}s ($v topic records)"
    done
    read -r MD MV RATIO < <("$PYTHON" -c "
import statistics, sys
n = int(sys.argv[1]); d = list(map(float, sys.argv[2:2 + n])); v = list(map(float, sys.argv[2 + n:]))
md, mv = statistics.median(d), statistics.median(v)
print(f'{md:.2f} {mv:.2f} {mv / md:.2f}')
" "$RUNS" "${DIRECT[@]:1}" "${VIA[@]:1}")
    # The agent's peak RSS over its whole life (idle part and these jobs included): what the
    # Helm chart's memory limit must hold.
    AGENT_HWM_MB=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$AGENT_PID/status")
    echo "| $TOPICS topics x $PARTITIONS, $GROUPS_N groups | krawl extract ${MD} s | through control plane + agent ${MV} s | ratio ${RATIO} | agent peak RSS ${AGENT_HWM_MB} MiB |"
    "$PYTHON" -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 1.2 else 1)" "$RATIO" ||
        { say "end-to-end floor missed (ratio > 1.2, issue 12)"; FAIL=1; }
fi
exit "$FAIL"
