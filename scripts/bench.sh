#!/usr/bin/env bash
# Extraction benchmark: `krawl extract` vs the straightforward per-topic extractor
# (bench/baseline_extractor.py, confluent-kafka) on the same data, in one run.
#
#   scripts/bench.sh                                   # 10,000 topics x 3 partitions, 500 groups
#   BENCH_TOPICS=1000 BENCH_GROUPS=50 scripts/bench.sh  # a quick one
#
# Builds krawl (release), starts a fresh noida-db (free port, fresh data dir in a
# temp dir, stopped on exit; via scripts/lib.sh), seeds it with scripts/seed.py, runs
# `krawl extract` BENCH_KRAWL_RUNS times (median wall time, highest peak RSS) and the
# baseline once, both under /usr/bin/time -v, checks that both saw the seeded numbers of
# topics and groups, and prints a markdown table row plus krawl's phases and Kafka call
# counts.
#
# Environment (defaults): BENCH_TOPICS (10000), BENCH_PARTITIONS (3), BENCH_GROUPS (500),
# BENCH_MESSAGES (100 per partition), BENCH_MESSAGE_TOPICS (200), BENCH_KRAWL_RUNS (3),
# BENCH_BASELINE_WORKERS (5), BENCH_KEEP=1 keeps the temp dir (records, logs),
# BENCH_SKIP_BASELINE=1 runs krawl only; KRAWL_NOIDA_BIN (the broker launcher; default
# the noida-db binary shipped in the noida_db package, installed with pip if missing),
# KRAWL_NOIDA_WAIT (seconds to wait for the broker's port, 30).
#
# Optional ListOffsets batch sweep, after the main comparison, on the same broker and data:
#   BENCH_SWEEP_LIST_OFFSETS="250 500 1000 2000" scripts/bench.sh
# runs krawl BENCH_SWEEP_RUNS (3) times per value with a config file setting
# `[extract] list_offsets_batch = N` (values interleaved round-robin, so that a change in
# the machine's load hits every value alike) and prints, per value, the median wall time,
# the median `offsets` phase, the median CPU time (user + system), the ListOffsets call
# count, and the time and offsets medians as ratios to the code's default (1000, else the
# first value). Unset (the default), nothing of it runs.
#
# Exit status: 0 on success; 1 if krawl failed or its counts are wrong (or the
# baseline's differ, or a sweep run failed or warned); 2 on a setup failure (build,
# broker, seeding, a bad sweep value).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
ROOT=$(pwd)

TOPICS=${BENCH_TOPICS:-10000}
PARTITIONS=${BENCH_PARTITIONS:-3}
GROUPS_N=${BENCH_GROUPS:-500}
MESSAGES=${BENCH_MESSAGES:-100}
MESSAGE_TOPICS=${BENCH_MESSAGE_TOPICS:-200}
RUNS=${BENCH_KRAWL_RUNS:-3}
WORKERS=${BENCH_BASELINE_WORKERS:-5}
PYTHON=${PYTHON:-python3}
SWEEP=${BENCH_SWEEP_LIST_OFFSETS:-}
SWEEP_RUNS=${BENCH_SWEEP_RUNS:-3}

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

# Check the sweep's values before the (long) seeding, not after it.
read -r -a SWEEP_VALUES <<<"$SWEEP"
if ((${#SWEEP_VALUES[@]} > 0)); then
    for n in "${SWEEP_VALUES[@]}"; do
        if ! [[ $n =~ ^[1-9][0-9]{0,4}$ ]] || ((n > 10000)); then
            die "BENCH_SWEEP_LIST_OFFSETS: '$n' is not a batch size from 1 to 10000"
        fi
    done
    [[ $(printf '%s\n' "${SWEEP_VALUES[@]}" | sort -u | wc -l) -eq ${#SWEEP_VALUES[@]} ]] ||
        die "BENCH_SWEEP_LIST_OFFSETS: a value is repeated ($SWEEP)"
    [[ $SWEEP_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SWEEP_RUNS: '$SWEEP_RUNS' is not a positive number"
fi

# --- tools -----------------------------------------------------------------------------------
ensure_gnu_time || die "cannot install the 'time' package (apt-get install time)"
if ! "$PYTHON" -c 'import confluent_kafka' 2>/dev/null; then
    say "installing confluent-kafka (pip)"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check confluent-kafka ||
        die "cannot install confluent-kafka (python3 -m pip install confluent-kafka)"
fi
ensure_noida || die "cannot install or find noida-db (pip install noida-db==0.2.3, or set KRAWL_NOIDA_BIN)"

say "building krawl (cargo build --release -p krawl-cli)"
cargo build --release --quiet -p krawl-cli || die "cargo build failed"
KRAWL="$ROOT/target/release/krawl"

# --- broker ----------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/krawl-bench.XXXXXX")
cleanup() {
    stop_noida
    if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
        say "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(free_port) || die "no free port"
BOOT="127.0.0.1:$PORT"
say "starting noida-db on $BOOT (data in $WORK/noida)"
start_noida "$PORT" "$WORK/noida" "$WORK/noida.log" || die "cannot start noida-db"

# --- seed --------------------------------------------------------------------------------------
say "seeding: $TOPICS topics x $PARTITIONS partitions, $GROUPS_N groups, $MESSAGES messages/partition in $MESSAGE_TOPICS topics"
SEED_T0=$(date +%s.%N)
"$PYTHON" scripts/seed.py --bootstrap "$BOOT" --topics "$TOPICS" --partitions "$PARTITIONS" \
    --groups "$GROUPS_N" --messages "$MESSAGES" --message-topics "$MESSAGE_TOPICS" --json \
    >"$WORK/seed.out" || { cat "$WORK/seed.out" >&2; die "seeding failed"; }
SEED_S=$("$PYTHON" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$SEED_T0" "$(date +%s.%N)")
grep -v '^{' "$WORK/seed.out" >&2 || true
say "seeded in ${SEED_S}s"

# --- helpers -----------------------------------------------------------------------------------
# wall seconds and peak RSS (MiB) from a /usr/bin/time -v report
time_field() { # file field
    "$PYTHON" - "$1" "$2" <<'PY'
import sys
text = open(sys.argv[1]).read().splitlines()
if sys.argv[2] == "wall":
    v = next(l for l in text if "Elapsed (wall clock) time" in l).rsplit(" ", 1)[1]
    secs = 0.0
    for part in v.split(":"):
        secs = secs * 60 + float(part)
    print(f"{secs:.2f}")
else:
    kb = int(next(l for l in text if "Maximum resident set size" in l).rsplit(" ", 1)[1])
    print(f"{kb / 1024:.1f}")
PY
}

# --- krawl ---------------------------------------------------------------------------------------
FAIL=0
declare -a K_WALL K_RSS
for i in $(seq 1 "$RUNS"); do
    set +e
    /usr/bin/time -v -o "$WORK/krawl-$i.time" "$KRAWL" extract --bootstrap-servers "$BOOT" \
        --output "$WORK/krawl-$i.ndjson" 2>"$WORK/krawl-$i.stderr"
    rc=$?
    set -e
    if ((rc != 0)); then
        cat "$WORK/krawl-$i.stderr" >&2
        say "krawl extract run $i exited $rc"
        FAIL=1
        K_WALL[i]=nan K_RSS[i]=nan
        continue
    fi
    K_WALL[i]=$(time_field "$WORK/krawl-$i.time" wall)
    K_RSS[i]=$(time_field "$WORK/krawl-$i.time" rss)
    say "krawl run $i: ${K_WALL[i]}s, peak RSS ${K_RSS[i]} MiB"
done
((FAIL == 0)) || { say "krawl failed"; exit 1; }

# median run (by wall time); highest peak RSS over the runs
read -r K_MEDIAN_RUN K_MEDIAN_S K_MAX_RSS < <("$PYTHON" - "${K_WALL[@]}" -- "${K_RSS[@]}" <<'PY'
import sys
args = sys.argv[1:]
cut = args.index("--")
walls = [float(x) for x in args[:cut]]
rss = [float(x) for x in args[cut + 1:]]
order = sorted(range(len(walls)), key=lambda i: walls[i])
m = order[len(order) // 2]
print(m + 1, f"{walls[m]:.2f}", f"{max(rss):.1f}")
PY
)
K_OUT="$WORK/krawl-$K_MEDIAN_RUN.ndjson"

# --- baseline --------------------------------------------------------------------------------------
B_S=nan B_RSS=nan B_TOPICS=nan B_PARTS=nan B_GROUPS=nan
if [[ "${BENCH_SKIP_BASELINE:-0}" != 1 ]]; then
    say "baseline: bench/baseline_extractor.py, $WORKERS workers (slow)"
    set +e
    /usr/bin/time -v -o "$WORK/baseline.time" "$PYTHON" bench/baseline_extractor.py \
        --bootstrap "$BOOT" --output "$WORK/baseline.ndjson" --workers "$WORKERS" \
        >"$WORK/baseline.out" 2>"$WORK/baseline.stderr"
    rc=$?
    set -e
    cat "$WORK/baseline.stderr" >&2
    ((rc == 0)) || say "warning: the baseline exited $rc (errors above)"
    B_S=$(time_field "$WORK/baseline.time" wall)
    B_RSS=$(time_field "$WORK/baseline.time" rss)
    read -r B_TOPICS B_PARTS B_GROUPS < <("$PYTHON" -c '
import json, sys
s = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(s["topics"], s["partitions"], s["groups"])' "$WORK/baseline.out")
fi

# --- checks and report -------------------------------------------------------------------------------
set +e
"$PYTHON" - "$K_OUT" "$TOPICS" "$PARTITIONS" "$GROUPS_N" "$K_MEDIAN_S" "$K_MAX_RSS" \
    "$B_S" "$B_RSS" "$B_TOPICS" "$B_PARTS" "$B_GROUPS" "$SEED_S" "$RUNS" "${K_WALL[@]}" <<'PY'
import json, sys
(out, topics, parts, groups, k_s, k_rss, b_s, b_rss, b_topics, b_parts, b_groups,
 seed_s, runs, *walls) = sys.argv[1:]
topics, parts, groups = int(topics), int(parts), int(groups)
lines = open(out).read().splitlines()
summary = json.loads(lines[-1])
ok = True
def err(msg):
    global ok
    ok = False
    print(f"bench: error: {msg}", file=sys.stderr)
if summary.get("kind") != "summary":
    err(f"the last record of {out} is not a summary: the stream is incomplete")
c = summary["counts"]
kinds = {}
for l in lines:
    k = json.loads(l)["kind"]
    kinds[k] = kinds.get(k, 0) + 1
if c["topics"] != topics or kinds.get("topic", 0) != topics:
    err(f"krawl extracted {c['topics']} topics ({kinds.get('topic', 0)} topic records), seeded {topics}")
if c["partitions"] != topics * parts:
    err(f"krawl extracted {c['partitions']} partitions, seeded {topics * parts}")
if c["consumer_groups"] != groups or kinds.get("consumer_group", 0) != groups:
    err(f"krawl extracted {c['consumer_groups']} groups ({kinds.get('consumer_group', 0)} records), seeded {groups}")
if b_topics != "nan":
    if (int(b_topics), int(b_parts), int(b_groups)) != (c["topics"], c["partitions"], c["consumer_groups"]):
        err(f"baseline saw {b_topics} topics / {b_parts} partitions / {b_groups} groups, "
            f"krawl {c['topics']} / {c['partitions']} / {c['consumer_groups']}")

ratio = f"{float(b_s) / float(k_s):.1f}×" if b_s != "nan" and float(k_s) > 0 else "n/a"
print()
print(f"seeded in {seed_s} s; krawl runs: {', '.join(w + ' s' for w in walls)} (median of {runs})")
print()
print("| topics | partitions | groups | krawl time (median of %s) | krawl peak RSS | baseline time | baseline peak RSS | speed-up |" % runs)
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
print(f"| {c['topics']:,} | {c['partitions']:,} | {c['consumer_groups']:,} | {k_s} s | {k_rss} MiB "
      f"| {b_s} s | {b_rss} MiB | {ratio} |")
print()
print(f"krawl (median run) phases: " + ", ".join(f"{p['name']} {p['millis']} ms" for p in summary["phases"])
      + f"; total {summary['duration_ms']} ms")
print("krawl Kafka calls: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["api_calls"].items())))
print("krawl warnings: " + (", ".join(f"{k} {v}" for k, v in sorted(summary["warnings"].items())) or "none"))
print("krawl records: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
sys.exit(0 if ok else 1)
PY
REPORT_RC=$?
set -e
((${#SWEEP_VALUES[@]} > 0)) || exit "$REPORT_RC"

# --- optional: ListOffsets batch sweep (BENCH_SWEEP_LIST_OFFSETS) ---------------------------------
say "sweep: list_offsets_batch in {${SWEEP_VALUES[*]}}, $SWEEP_RUNS runs each, interleaved"
SWEEP_FAIL=0
for r in $(seq 1 "$SWEEP_RUNS"); do
    for n in "${SWEEP_VALUES[@]}"; do
        cfg="$WORK/sweep-$n.toml"
        [[ -f "$cfg" ]] || printf '[kafka]\nbootstrap_servers = ["%s"]\n[extract]\nlist_offsets_batch = %s\n' \
            "$BOOT" "$n" >"$cfg"
        set +e
        /usr/bin/time -v -o "$WORK/sweep-$n-$r.time" "$KRAWL" extract --config "$cfg" \
            --output "$WORK/sweep-$n-$r.ndjson" 2>"$WORK/sweep-$n-$r.stderr"
        rc=$?
        set -e
        if ((rc != 0)); then
            cat "$WORK/sweep-$n-$r.stderr" >&2
            say "sweep: krawl extract with list_offsets_batch=$n (run $r) exited $rc"
            SWEEP_FAIL=1
            continue
        fi
        say "sweep: list_offsets_batch=$n run $r: $(time_field "$WORK/sweep-$n-$r.time" wall)s"
    done
done
((SWEEP_FAIL == 0)) || { say "sweep failed"; exit 1; }

set +e
"$PYTHON" - "$WORK" "$SWEEP_RUNS" "$TOPICS" "$PARTITIONS" "${SWEEP_VALUES[@]}" <<'PY'
import json, re, statistics, sys
work, runs, topics, parts, *values = sys.argv[1:]
runs, parts_total = int(runs), int(topics) * int(parts)
ok = True
def wall(path):
    v = next(l for l in open(path) if "Elapsed (wall clock) time" in l).rsplit(" ", 1)[1]
    secs = 0.0
    for part in v.strip().split(":"):
        secs = secs * 60 + float(part)
    return secs
def cpu(path):  # user + system seconds
    return sum(float(l.rsplit(" ", 1)[1]) for l in open(path)
               if "User time (seconds)" in l or "System time (seconds)" in l)
rows = {}
for n in values:
    walls, offs, cpus, calls = [], [], [], set()
    for r in range(1, runs + 1):
        summary = json.loads(open(f"{work}/sweep-{n}-{r}.ndjson").read().splitlines()[-1])
        if summary.get("kind") != "summary" or summary["counts"]["partitions"] != parts_total:
            ok = False
            print(f"bench: error: sweep list_offsets_batch={n} run {r}: incomplete or wrong counts",
                  file=sys.stderr)
        bad = {k: v for k, v in summary.get("warnings", {}).items() if "offset" in k}
        if bad:
            ok = False
            print(f"bench: error: sweep list_offsets_batch={n} run {r}: warnings {bad}", file=sys.stderr)
        walls.append(wall(f"{work}/sweep-{n}-{r}.time"))
        cpus.append(cpu(f"{work}/sweep-{n}-{r}.time"))
        offs.append(next(p["millis"] for p in summary["phases"] if p["name"] == "offsets"))
        calls.add(summary["api_calls"].get("ListOffsets", 0))
    rows[n] = (statistics.median(walls), statistics.median(offs), statistics.median(cpus), walls, offs, calls)
ref = "1000" if "1000" in rows else values[0]
def ratio(x, base):
    return f"{x / base:.2f}" if base > 0 else "n/a"
rw, ro = rows[ref][0], rows[ref][1]
print()
print(f"ListOffsets batch sweep: {runs} runs per value, interleaved; ratios to list_offsets_batch = {ref}")
print()
print(f"| list_offsets_batch | ListOffsets calls | krawl time (median of {runs}) | offsets phase (median of {runs}) "
      f"| krawl CPU (median of {runs}) | time / {ref} | offsets / {ref} | runs (s) | offsets phase per run (ms) |")
print("|---:|---:|---:|---:|---:|---:|---:|---|---|")
for n in values:
    w, o, c, walls, offs, calls = rows[n]
    print(f"| {int(n):,} | {'/'.join(str(x) for x in sorted(calls))} | {w:.2f} s | {o:.0f} ms | {c:.2f} s "
          f"| {ratio(w, rw)} | {ratio(o, ro)} | {' / '.join(f'{x:.2f}' for x in walls)} "
          f"| {' / '.join(str(x) for x in offs)} |")
sys.exit(0 if ok else 1)
PY
SWEEP_RC=$?
set -e
((REPORT_RC == 0)) || exit "$REPORT_RC"
((SWEEP_RC == 0)) || exit "$SWEEP_RC"
