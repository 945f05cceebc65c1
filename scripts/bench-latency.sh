#!/usr/bin/env bash
# Latency benchmark (issue 12, items 4 and 5; docs/benchmarks.md, "Latency"): krawl, the
# per-topic Python peer and DataHub's kafka source against a broker BENCH_RTT_MS (20) of round
# trip away, plus krawl over plain loopback for the ratio, and (part 2) an agent job whose agent
# reaches the control plane BENCH_CP_RTT_MS (50) away.
#
#   scripts/bench-latency.sh                                  # 10,000 topics x 3, 500 groups
#   BENCH_TOPICS="1000 10000" scripts/bench-latency.sh        # two sizes: does the count grow?
#   BENCH_TOPICS=1000 BENCH_GROUPS=50 BENCH_SKIP_PEERS=1 scripts/bench-latency.sh   # quick
#
# The delay is bench/delay_proxy.py (the kernel has no netem): a Kafka-aware userspace proxy on
# loopback that holds every chunk half the RTT in each direction and rewrites the broker
# addresses in Metadata, DescribeCluster and FindCoordinator answers, so that every client
# connection to noida-db (which advertises its own listen port) goes through it.
#
# Part 1, per size in BENCH_TOPICS: a fresh noida-db seeded over loopback by scripts/seed.py;
# two proxies in front of it, one adding BENCH_RTT_MS and one adding 0 ms (the proxy's own cost);
# a Metadata probe through each (round trip ≈ the RTT); then BENCH_KRAWL_RUNS (3) rounds of
# `krawl extract --output` direct / through the 0 ms proxy / through the delayed proxy
# (interleaved, under /usr/bin/time -v; medians, highest peak RSS); then once each the peer
# (bench/baseline_extractor.py) and DataHub's kafka source (`datahub ingest`, file sink,
# schema registry pointed at a closed port), through the delayed proxy and over loopback. Prints a
# table (tool, RTT, wall, peak RSS, topics seen) and, from krawl's summary records, the number of
# dependent sequential round trips: (wall at RTT - wall through the 0 ms proxy) / RTT, in all and
# per phase, with the api_calls.
#
# Part 2 (BENCH_SKIP_CP=1 skips it), on the last size's broker, no broker delay: `krawl
# controlplane` and a `krawl run` agent whose control-plane URL is a plain (no rewrite) delay proxy
# adding BENCH_CP_RTT_MS; BENCH_CP_RUNS (3) rounds of `krawl extract` vs `krawl jobs submit
# --kind kafka.extract --wait` (submit to succeeded), interleaved; medians and ratio.
#
# Environment (defaults): BENCH_RTT_MS (20), BENCH_TOPICS (10000; a space-separated list runs
# each size on a fresh broker), BENCH_PARTITIONS (3), BENCH_GROUPS (500), BENCH_MESSAGES (100),
# BENCH_MESSAGE_TOPICS (200), BENCH_KRAWL_RUNS (3), BENCH_BASELINE_WORKERS (5),
# BENCH_SKIP_PEERS=1 (krawl only), BENCH_PEERS_LOOPBACK=0 (peers only through the proxy),
# BENCH_PEER_TIMEOUT (900 s per peer run), BENCH_CP_RTT_MS (50), BENCH_CP_RUNS (3),
# BENCH_SKIP_CP=1, BENCH_AGENT_LOG_LEVEL (info; debug shows each upload, for a timeline),
# BENCH_KEEP=1 (keep the temp dir); KRAWL_BIN (a prebuilt krawl; unset: cargo
# build --release -p krawl-cli), KRAWL_NOIDA_BIN, DATAHUB_VENV (.testbed/datahub-venv; created
# with pip install 'acryl-datahub[kafka]' when missing).
#
# Exit status: 0 on success; 1 if a krawl run failed or saw the wrong number of topics; 2 on a
# setup failure (build, broker, proxy, seeding, DataHub install).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
ROOT=$(pwd)

RTT=${BENCH_RTT_MS:-20}
read -r -a SIZES <<<"${BENCH_TOPICS:-10000}"
PARTITIONS=${BENCH_PARTITIONS:-3}
GROUPS_N=${BENCH_GROUPS:-500}
MESSAGES=${BENCH_MESSAGES:-100}
MESSAGE_TOPICS=${BENCH_MESSAGE_TOPICS:-200}
RUNS=${BENCH_KRAWL_RUNS:-3}
WORKERS=${BENCH_BASELINE_WORKERS:-5}
PEER_TIMEOUT=${BENCH_PEER_TIMEOUT:-900}
CP_RTT=${BENCH_CP_RTT_MS:-50}
CP_RUNS=${BENCH_CP_RUNS:-3}
PYTHON=${PYTHON:-python3}
DATAHUB_VENV=${DATAHUB_VENV:-$ROOT/.testbed/datahub-venv}

say() { printf 'bench-latency: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

for n in "$RTT" "$CP_RTT"; do
    [[ $n =~ ^[0-9]+([.][0-9]+)?$ ]] || die "an RTT ('$n') is not a number of milliseconds"
done
((${#SIZES[@]} > 0)) || die "BENCH_TOPICS is empty"
for n in "${SIZES[@]}" "$RUNS" "$CP_RUNS"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "'$n' is not a positive number"
done

# --- tools -------------------------------------------------------------------------------------
ensure_gnu_time || die "cannot install the 'time' package (apt-get install time)"
if ! "$PYTHON" -c 'import confluent_kafka' 2>/dev/null; then
    say "installing confluent-kafka (pip)"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check confluent-kafka ||
        die "cannot install confluent-kafka"
fi
ensure_noida || die "cannot install or find noida-db (pip install noida-db==0.2.3, or set KRAWL_NOIDA_BIN)"
if [[ "${BENCH_SKIP_PEERS:-0}" != 1 && ! -x "$DATAHUB_VENV/bin/datahub" ]]; then
    say "installing acryl-datahub[kafka] into $DATAHUB_VENV (pip, a few minutes)"
    "$PYTHON" -m venv "$DATAHUB_VENV" || die "cannot create $DATAHUB_VENV"
    "$DATAHUB_VENV/bin/pip" install --quiet --disable-pip-version-check 'acryl-datahub[kafka]' ||
        die "cannot install acryl-datahub[kafka]"
fi
KRAWL=$(bench_krawl "$ROOT") || die "no krawl binary to measure (see above)"
say "krawl: $KRAWL ($("$KRAWL" --version 2>/dev/null || echo '?'))"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/krawl-bench-latency.XXXXXX")
AGENT_PID="" PROXY_PIDS=()
stop_proxies() {
    local pid
    for pid in "${PROXY_PIDS[@]}"; do
        if kill -TERM "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; fi
    done
    PROXY_PIDS=()
}
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    stop_krawl_stack
    stop_proxies
    stop_noida
    if [[ "${BENCH_KEEP:-0}" == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_proxy NAME TARGET RTT_MS [--no-rewrite]: start bench/delay_proxy.py on a free port, wait
# for it, and set PROXY_ADDR.
start_proxy() {
    local name=$1 target=$2 rtt=$3 port _
    shift 3
    port=$(free_port) || return 1
    "$PYTHON" bench/delay_proxy.py --listen "127.0.0.1:$port" --target "$target" --rtt-ms "$rtt" "$@" \
        2>"$WORK/proxy-$name.log" &
    PROXY_PIDS+=($!)
    PROXY_ADDR="127.0.0.1:$port"
    for _ in $(seq 1 100); do
        grep -q 'listening on' "$WORK/proxy-$name.log" 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$WORK/proxy-$name.log" >&2
    return 1
}

# timed NAME TIMEOUT CMD...: run CMD under /usr/bin/time -v (report in $WORK/NAME.time, stdout and
# stderr in $WORK/NAME.out / .err), killing it after TIMEOUT seconds; returns its exit status.
timed() {
    local name=$1 secs=$2 rc
    shift 2
    set +e
    timeout --signal=TERM --kill-after=10 "$secs" \
        /usr/bin/time -v -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
    rc=$?
    set -e
    return "$rc"
}

# The results, one TSV line per run: size tool label rtt_ms run wall_s rss_mib topics file
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
record() { # size tool label rtt run name topics_file_or_count
    local wall rss
    read -r wall rss < <("$PYTHON" - "$WORK/$6.time" <<'PY'
import sys
t = open(sys.argv[1]).read().splitlines()
v = next((l for l in t if "Elapsed (wall clock) time" in l), None)
kb = next((l for l in t if "Maximum resident set size" in l), None)
if v is None or kb is None:
    print("nan nan")
else:
    secs = 0.0
    for part in v.rsplit(" ", 1)[1].split(":"):
        secs = secs * 60 + float(part)
    print(f"{secs:.2f} {int(kb.rsplit(' ', 1)[1]) / 1024:.1f}")
PY
)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$wall" "$rss" "$7" >>"$RESULTS"
}

FAIL=0
for SIZE in "${SIZES[@]}"; do
    # --- broker and data ---------------------------------------------------------------------
    PORT=$(free_port) || die "no free port"
    BOOT="127.0.0.1:$PORT"
    say "[$SIZE topics] starting noida-db on $BOOT"
    start_noida "$PORT" "$WORK/noida-$SIZE" "$WORK/noida-$SIZE.log" || die "cannot start noida-db"
    say "[$SIZE topics] seeding $SIZE x $PARTITIONS partitions, $GROUPS_N groups (over loopback)"
    "$PYTHON" scripts/seed.py --bootstrap "$BOOT" --topics "$SIZE" --partitions "$PARTITIONS" \
        --groups "$GROUPS_N" --messages "$MESSAGES" --message-topics "$MESSAGE_TOPICS" --json \
        >"$WORK/seed-$SIZE.out" || { cat "$WORK/seed-$SIZE.out" >&2; die "seeding failed"; }
    start_proxy "d$SIZE" "$BOOT" "$RTT" || die "the delay proxy did not start"
    SLOW=$PROXY_ADDR
    start_proxy "z$SIZE" "$BOOT" 0 || die "the 0 ms proxy did not start"
    ZERO=$PROXY_ADDR
    for target in "$BOOT direct" "$ZERO proxy-0ms" "$SLOW proxy-${RTT}ms"; do
        read -r addr label <<<"$target"
        say "[$SIZE topics] probe, $label: $("$PYTHON" bench/delay_proxy.py --probe "$addr" --count 10 | tail -1)"
    done

    # --- krawl: direct, through the 0 ms proxy, through the delayed proxy (interleaved) --------
    for i in $(seq 1 "$RUNS"); do
        for target in "$BOOT direct 0" "$ZERO proxy0 0" "$SLOW proxy $RTT"; do
            read -r addr label rtt <<<"$target"
            name="krawl-$SIZE-$label-$i"
            if ! timed "$name" 900 "$KRAWL" extract --bootstrap-servers "$addr" --output "$WORK/$name.ndjson"; then
                cat "$WORK/$name.err" >&2
                say "krawl extract ($label, run $i) failed"
                FAIL=1
                continue
            fi
            seen=$("$PYTHON" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["counts"]["topics"])' "$WORK/$name.ndjson")
            ((seen == SIZE)) || { say "krawl ($label, run $i) saw $seen topics, seeded $SIZE"; FAIL=1; }
            record "$SIZE" krawl "$label" "$rtt" "$i" "$name" "$seen"
            say "[$SIZE topics] krawl $label run $i: $(cut -f6,7 <<<"$(tail -1 "$RESULTS")" | tr '\t' ' ') (s, MiB)"
        done
    done

    # --- peers ------------------------------------------------------------------------------------
    if [[ "${BENCH_SKIP_PEERS:-0}" != 1 ]]; then
        SR_PORT=$(free_port) # nothing listens there: DataHub warns once and treats topics as schemaless
        targets=("$SLOW proxy $RTT")
        [[ "${BENCH_PEERS_LOOPBACK:-1}" == 1 ]] && targets+=("$BOOT direct 0")
        for target in "${targets[@]}"; do
            read -r addr label rtt <<<"$target"
            name="baseline-$SIZE-$label"
            say "[$SIZE topics] peer (bench/baseline_extractor.py, $WORKERS workers), $label"
            if timed "$name" "$PEER_TIMEOUT" "$PYTHON" bench/baseline_extractor.py --bootstrap "$addr" \
                --output "$WORK/$name.ndjson" --workers "$WORKERS"; then
                seen=$("$PYTHON" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["topics"])' "$WORK/$name.out")
            else
                say "warning: the peer ($label) failed or timed out; $(tail -3 "$WORK/$name.err")"
                seen="failed"
            fi
            record "$SIZE" peer "$label" "$rtt" 1 "$name" "$seen"

            name="datahub-$SIZE-$label"
            cat >"$WORK/$name.yml" <<YAML
source:
  type: kafka
  config:
    connection:
      bootstrap: "$addr"
      schema_registry_url: "http://127.0.0.1:$SR_PORT"
sink:
  type: file
  config:
    filename: "$WORK/$name.json"
YAML
            say "[$SIZE topics] DataHub kafka source (datahub ingest), $label"
            if timed "$name" "$PEER_TIMEOUT" "$DATAHUB_VENV/bin/datahub" ingest -c "$WORK/$name.yml"; then
                seen=$("$PYTHON" - "$WORK/$name.json" <<'PY'
import json, sys
urns = {m.get("entityUrn") for m in json.load(open(sys.argv[1]))
        if m.get("entityType") == "dataset" and m.get("entityUrn")}
print(len([u for u in urns if ",__" not in u]))
PY
)
            else
                say "warning: DataHub ($label) failed or timed out; $(tail -3 "$WORK/$name.out")"
                seen="failed"
            fi
            record "$SIZE" datahub "$label" "$rtt" 1 "$name" "$seen"
        done
    fi
    stop_proxies
    # Part 2 runs on the last size's broker.
    [[ $SIZE == "${SIZES[-1]}" && "${BENCH_SKIP_CP:-0}" != 1 ]] || stop_noida
done

# --- report: table and round trips -------------------------------------------------------------
"$PYTHON" - "$RESULTS" "$WORK" "$RTT" "$PARTITIONS" "$GROUPS_N" <<'PY'
import json, statistics, sys
from collections import defaultdict
results, work, rtt, parts, groups = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = defaultdict(list)
for line in open(results):
    size, tool, label, r, run, wall, rss, seen = line.rstrip("\n").split("\t")
    rows[(int(size), tool, label)].append((float(wall), float(rss), seen, int(run), r))
names = {"direct": "loopback", "proxy0": "proxy, 0 ms", "proxy": f"proxy, {rtt:g} ms"}
tools = {"krawl": "krawl extract", "peer": "per-topic Python peer", "datahub": "DataHub kafka source"}
print()
print(f"| topics | tool | path | RTT | wall time | peak RSS | topics seen |")
print("|---:|---|---|---:|---:|---:|---:|")
med = {}
for (size, tool, label), runs in sorted(rows.items(), key=lambda kv: (kv[0][0], list(tools).index(kv[0][1]), list(names).index(kv[0][2]))):
    walls = [w for w, *_ in runs]
    m = statistics.median(walls)
    med[(size, tool, label)] = m
    runs_s = f" (median of {len(walls)}: {' / '.join(f'{w:.2f}' for w in walls)})" if len(walls) > 1 else ""
    print(f"| {size:,} | {tools[tool]} | {names[label]} | {runs[0][4]} ms | {m:.2f} s{runs_s} | "
          f"{max(r for _, r, *_ in runs):.1f} MiB | {runs[0][2]} |")

def summaries(size, label):
    """krawl's summary records (the last NDJSON line) of every run for this size and path."""
    return [json.loads(open(f"{work}/krawl-{size}-{label}-{r[3]}.ndjson").read().splitlines()[-1])
            for r in rows[(size, "krawl", label)]]

def phase_medians(sums):
    names = [x["name"] for x in sums[0]["phases"]]
    return {n: statistics.median(next(x["millis"] for x in s["phases"] if x["name"] == n) for s in sums)
            for n in names}

def wire_requests(size):
    """Requests the 0 ms proxy saw (it carried only krawl's runs and one probe), per krawl run."""
    try:
        line = next(l for l in open(f"{work}/proxy-z{size}.log") if l.startswith("delay_proxy: requests: "))
    except (OSError, StopIteration):
        return None
    runs = len(rows[(size, "krawl", "proxy0")])
    probe = {"ApiVersions": 10, "Metadata": 1}  # what `delay_proxy.py --probe --count 10` sent
    out = []
    for item in line.split(": ", 2)[2].strip().split(", "):
        name, n = item.rsplit(" ", 1)
        out.append(f"{name} {(int(n) - probe.get(name, 0)) / runs:.4g}")
    return ", ".join(out)

print()
for size in sorted({k[0] for k in rows}):
    if not all((size, "krawl", l) in med for l in ("direct", "proxy0", "proxy")):
        continue
    d, z, p = med[(size, "krawl", "direct")], med[(size, "krawl", "proxy0")], med[(size, "krawl", "proxy")]
    sz, sp = summaries(size, "proxy0"), summaries(size, "proxy")
    dz = statistics.median(x["duration_ms"] for x in sz)
    dp = statistics.median(x["duration_ms"] for x in sp)
    print(f"{size:,} topics x {parts}, {groups} groups: krawl {p:.2f} s at {rtt:g} ms, {z:.2f} s through the "
          f"0 ms proxy, {d:.2f} s over loopback ({p / d:.1f}x loopback)")
    print(f"  dependent sequential round trips: (wall at {rtt:g} ms - wall through the 0 ms proxy) / RTT = "
          f"{(p - z) * 1000 / rtt:.0f}; against loopback: {(p - d) * 1000 / rtt:.0f}; "
          f"from duration_ms: {(dp - dz) / rtt:.0f}")
    ph0, ph = phase_medians(sz), phase_medians(sp)
    print("  per phase (medians over the runs; ms through the 0 ms proxy -> ms at RTT = round trips):")
    for n, ms in ph.items():
        a = ph0.get(n, 0)
        print(f"    {n}: {a:g} -> {ms:g} = {(ms - a) / rtt:.1f}")
    outside = (p * 1000 - dp) - (z * 1000 - dz)
    print(f"    outside the phases (start-up probe, exit): {outside / rtt:.1f}")
    print("  api_calls (krawl's count): " + ", ".join(f"{k} {v}" for k, v in sorted(sp[0]["api_calls"].items())))
    wire = wire_requests(size)
    if wire:
        print(f"  requests on the wire per krawl run (what the 0 ms proxy saw, less the probe's): {wire}")
    warns = {k: v for x in sp for k, v in x.get("warnings", {}).items()}
    if warns:
        print("  warnings at RTT: " + ", ".join(f"{k} {v}" for k, v in sorted(warns.items())))
PY

# --- part 2: the agent reaching the control plane through the delay proxy ----------------------
if [[ "${BENCH_SKIP_CP:-0}" != 1 ]]; then
    SIZE=${SIZES[-1]}
    say "[control plane] krawl controlplane + agent, agent -> control plane through ${CP_RTT} ms; broker $BOOT (no delay)"
    mkdir -p "$WORK/cp"
    start_krawl_stack "$KRAWL" "$WORK/cp" --log-format json --log-level info ||
        die "the control plane and agent did not start"
    # Restart the agent with its control-plane URL pointing at a plain delay proxy (HTTP: no
    # Kafka rewriting); `krawl jobs` (the user) still talks to the control plane directly.
    if kill -TERM "$AGENT_PID"; then wait "$AGENT_PID" 2>/dev/null || true; fi
    start_proxy cp "${KRAWL_CP_URL#http://}" "$CP_RTT" --no-rewrite || die "the control-plane proxy did not start"
    sed -i "s|^url = \".*\"|url = \"http://$PROXY_ADDR\"|" "$WORK/cp/krawl.toml"
    HEALTH=$(sed -n 's/^health_listen = "\(.*\)"/\1/p' "$WORK/cp/krawl.toml")
    "$KRAWL" --log-format json --log-level "${BENCH_AGENT_LOG_LEVEL:-info}" run --config "$WORK/cp/krawl.toml" >"$WORK/cp/agent.log" 2>&1 &
    AGENT_PID=$!
    for _ in $(seq 1 150); do
        curl -fsS "http://$HEALTH/readyz" >/dev/null 2>&1 && break
        sleep 0.2
    done
    curl -fsS "http://$HEALTH/readyz" >/dev/null 2>&1 || { cat "$WORK/cp/agent.log" >&2; die "the agent did not become ready"; }
    DIRECT=() VIA=()
    for i in $(seq 1 "$CP_RUNS"); do
        extract_vs_job "$KRAWL" "$BOOT" "$WORK/cp" "$i" "$WORK/cp/agent.log" || die "round $i failed"
        DIRECT+=("$EVJ_DIRECT") VIA+=("$EVJ_VIA")
        d=$EVJ_DIRECT_TOPICS v=$EVJ_VIA_TOPICS
        [[ $d == "$v" && $d -ge $SIZE ]] || { say "topic records differ: direct $d, via the agent $v"; FAIL=1; }
        say "[control plane] run $i: extract ${DIRECT[-1]}s, job through the control plane at ${CP_RTT} ms ${VIA[-1]}s"
    done
    "$PYTHON" - "$CP_RUNS" "$CP_RTT" "$SIZE" "$PARTITIONS" "$GROUPS_N" "${DIRECT[@]}" "${VIA[@]}" <<'PY'
import statistics, sys
n, rtt, size, parts, groups = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
d, v = list(map(float, sys.argv[6:6 + n])), list(map(float, sys.argv[6 + n:]))
md, mv = statistics.median(d), statistics.median(v)
print()
print("| data | krawl extract (loopback broker) | agent job, control plane at %s ms RTT (submit to succeeded) | ratio |" % rtt)
print("|---|---:|---:|---:|")
print(f"| {size:,} topics x {parts}, {groups} groups | {md:.2f} s ({' / '.join(f'{x:.2f}' for x in d)}) "
      f"| {mv:.2f} s ({' / '.join(f'{x:.2f}' for x in v)}) | {mv / md:.2f}x |")
PY
fi
exit "$FAIL"
