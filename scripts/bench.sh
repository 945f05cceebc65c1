#!/usr/bin/env bash
# Extraction benchmark as a scale curve: `krawl extract` vs the straightforward per-topic
# extractor (bench/baseline_extractor.py, confluent-kafka, "the peer") on the same data, in one
# run, at several cluster sizes.
#
#   scripts/bench.sh                                        # 1,000 / 10,000 / 50,000 topics
#   BENCH_SIZES="1000 10000 50000 100000" scripts/bench.sh  # add the 100,000-topic size
#   BENCH_SIZES=1000 scripts/bench.sh                       # a quick one
#   KRAWL_BIN=/path/to/krawl scripts/bench.sh               # use that binary, build nothing
#
# For each size (topics, each with BENCH_PARTITIONS partitions, and a number of groups): starts a
# fresh noida-db (free port, fresh data dir in a temp dir; via scripts/lib.sh), seeds it with
# scripts/seed.py, waits (untimed) until the broker answers a full Metadata request with every
# topic, runs `krawl extract --output` BENCH_KRAWL_RUNS times under /usr/bin/time -v
# (median wall time, the highest peak RSS, the CPU time user + system of the median run, and
# the median run's phases from its summary record), then the peer once under /usr/bin/time -v,
# checks that krawl extracted exactly the seeded numbers of topics, partitions and groups and
# that the peer saw the same, and stops the broker. Then it prints a markdown table (one row per
# size) and krawl's wall-time ratio from 10,000 to 50,000 topics, and writes to BENCH_OUT:
#   results.json  every measurement (runs, phases, Kafka calls, seeding times, broker RSS, the
#                 machine's 1-minute load average after each size's runs: this is a shared box)
#   results.md    the table
#   scale.png     wall time and peak RSS against partitions, krawl and the peer (bench/plot.py,
#                 matplotlib, installed with pip if missing; `python3 bench/plot.py DIR`
#                 redraws it from DIR/results.json)
#
# Environment (defaults):
#   BENCH_SIZES            topics per size, space-separated ("1000 10000 50000"); BENCH_TOPICS
#                          (one size) is the older name and is used when BENCH_SIZES is unset
#   BENCH_GROUPS           consumer groups: one number for every size, or one per size; unset:
#                          50 / 500 / 2,500 / 10,000 at 1,000 / 10,000 / 50,000 / 100,000 topics,
#                          topics / 20 at any other size
#   BENCH_PARTITIONS (3), BENCH_MESSAGES (100 per partition), BENCH_MESSAGE_TOPICS (200),
#   BENCH_KRAWL_RUNS (3), BENCH_BASELINE_WORKERS (5, the peer's threads)
#   BENCH_PEER_MAX_TOPICS  the peer runs only at sizes up to this many topics (50000)
#   BENCH_SKIP_BASELINE=1  runs krawl only
#   BENCH_OUT              where the results go (docs/bench, relative to the repository)
#   BENCH_KEEP=1           keeps the temp dir (records, logs, /usr/bin/time reports)
#   KRAWL_BIN              the krawl binary to measure; unset: `cargo build --release -p krawl-cli`
#                          and target/release/krawl
#   KRAWL_NOIDA_BIN        the broker launcher (default: the noida-db binary shipped in the
#                          noida_db package, installed with pip if missing), KRAWL_NOIDA_WAIT
#                          (seconds to wait for the broker's port, 30)
#
# Optional ListOffsets batch sweep (its own mode, off unless set):
#   BENCH_SIZES=10000 BENCH_SWEEP_LIST_OFFSETS="250 500 1000 2000" scripts/bench.sh
# At every size, after that size's comparison and on the same broker and data, runs krawl
# BENCH_SWEEP_RUNS (3) times per value with a config file setting
# `[extract] list_offsets_batch = N` (values interleaved round-robin, so that a change in the
# machine's load hits every value alike) and prints, per value, the median wall time, the
# median `offsets` phase, the median CPU time (user + system), the ListOffsets call count, and
# the time and offsets medians as ratios to 1000 (else the first value). The sweep's numbers
# are printed only, not written to BENCH_OUT.
#
# Exit status: 0 on success; 1 if krawl failed or its counts are wrong at any size (or the
# peer's differ, or a sweep run failed or warned; the other sizes still run and the results
# are still written); 2 on a setup failure (build, broker, seeding, a bad setting).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
ROOT=$(pwd)

read -r -a SIZES <<<"${BENCH_SIZES:-${BENCH_TOPICS:-1000 10000 50000}}"
read -r -a GROUPS_SET <<<"${BENCH_GROUPS:-}"
PARTITIONS=${BENCH_PARTITIONS:-3}
MESSAGES=${BENCH_MESSAGES:-100}
MESSAGE_TOPICS=${BENCH_MESSAGE_TOPICS:-200}
RUNS=${BENCH_KRAWL_RUNS:-3}
WORKERS=${BENCH_BASELINE_WORKERS:-5}
PEER_MAX=${BENCH_PEER_MAX_TOPICS:-50000}
OUT=${BENCH_OUT:-docs/bench}
PYTHON=${PYTHON:-python3}
SWEEP=${BENCH_SWEEP_LIST_OFFSETS:-}
SWEEP_RUNS=${BENCH_SWEEP_RUNS:-3}

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

# --- settings, checked before any (long) seeding ------------------------------------------------
((${#SIZES[@]} > 0)) || die "BENCH_SIZES is empty"
for n in "${SIZES[@]}"; do is_count "$n" || die "BENCH_SIZES: '$n' is not a positive number of topics"; done
[[ $(printf '%s\n' "${SIZES[@]}" | sort -u | wc -l) -eq ${#SIZES[@]} ]] || die "BENCH_SIZES: a size is repeated"
declare -a GROUPS_FOR
for i in "${!SIZES[@]}"; do
    if ((${#GROUPS_SET[@]} == 0)); then
        case ${SIZES[i]} in
            1000) GROUPS_FOR[i]=50 ;;
            10000) GROUPS_FOR[i]=500 ;;
            50000) GROUPS_FOR[i]=2500 ;;
            100000) GROUPS_FOR[i]=10000 ;;
            *) GROUPS_FOR[i]=$((SIZES[i] / 20)) ;;
        esac
    elif ((${#GROUPS_SET[@]} == 1)); then
        GROUPS_FOR[i]=${GROUPS_SET[0]}
    elif ((${#GROUPS_SET[@]} == ${#SIZES[@]})); then
        GROUPS_FOR[i]=${GROUPS_SET[i]}
    else
        die "BENCH_GROUPS: give one number, or one per size (${#SIZES[@]}), not ${#GROUPS_SET[@]}"
    fi
    [[ ${GROUPS_FOR[i]} =~ ^[0-9]+$ ]] || die "BENCH_GROUPS: '${GROUPS_FOR[i]}' is not a number"
done
for v in PARTITIONS RUNS WORKERS PEER_MAX; do is_count "${!v}" || die "$v: '${!v}' is not a positive number"; done
read -r -a SWEEP_VALUES <<<"$SWEEP"
if ((${#SWEEP_VALUES[@]} > 0)); then
    for n in "${SWEEP_VALUES[@]}"; do
        if ! [[ $n =~ ^[1-9][0-9]{0,4}$ ]] || ((n > 10000)); then
            die "BENCH_SWEEP_LIST_OFFSETS: '$n' is not a batch size from 1 to 10000"
        fi
    done
    [[ $(printf '%s\n' "${SWEEP_VALUES[@]}" | sort -u | wc -l) -eq ${#SWEEP_VALUES[@]} ]] ||
        die "BENCH_SWEEP_LIST_OFFSETS: a value is repeated ($SWEEP)"
    is_count "$SWEEP_RUNS" || die "BENCH_SWEEP_RUNS: '$SWEEP_RUNS' is not a positive number"
fi

# --- tools -----------------------------------------------------------------------------------
ensure_gnu_time || die "cannot install the 'time' package (apt-get install time)"
for mod in confluent_kafka:confluent-kafka matplotlib:matplotlib; do
    if ! "$PYTHON" -c "import ${mod%%:*}" 2>/dev/null; then
        say "installing ${mod#*:} (pip)"
        "$PYTHON" -m pip install --quiet --disable-pip-version-check "${mod#*:}" ||
            die "cannot install ${mod#*:} (python3 -m pip install ${mod#*:})"
    fi
done
ensure_noida || die "cannot install or find noida-db (pip install noida-db==0.2.3, or set KRAWL_NOIDA_BIN)"

KRAWL=$(bench_krawl "$ROOT") || die "no krawl binary to measure (see above)"
KRAWL_VERSION=$("$KRAWL" --version 2>/dev/null || echo unknown)
mkdir -p "$OUT" || die "cannot create BENCH_OUT '$OUT'"

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

# --- helpers -----------------------------------------------------------------------------------
# "WALL_S PEAK_RSS_MIB CPU_S" from a /usr/bin/time -v report (CPU = user + system)
time_fields() { # file
    "$PYTHON" - "$1" <<'PY'
import sys
wall = rss = cpu = None
cpu = 0.0
for l in open(sys.argv[1]):
    v = l.rsplit(" ", 1)[-1].strip()
    if "Elapsed (wall clock) time" in l:
        wall = 0.0
        for part in v.split(":"):
            wall = wall * 60 + float(part)
    elif "Maximum resident set size" in l:
        rss = int(v) / 1024
    elif "User time (seconds)" in l or "System time (seconds)" in l:
        cpu += float(v)
print(f"{wall:.2f} {rss:.1f} {cpu:.2f}")
PY
}

# the broker's resident memory now (MiB, every process of its group)
broker_rss() {
    ps -o rss= -g "${NOIDA_PGID:-0}" 2>/dev/null | awk '{s += $1} END {printf "%.1f\n", s / 1024}'
}

FAIL=0
RESULTS="$WORK/results.ndjson"
: >"$RESULTS"

# --- one size -----------------------------------------------------------------------------------
run_size() { # TOPICS GROUPS
    local topics=$1 groups=$2 dir="$WORK/t$1" i rc
    mkdir -p "$dir"
    local port boot
    port=$(free_port) || die "no free port"
    boot="127.0.0.1:$port"
    say "[$topics topics] starting noida-db on $boot (data in $dir/noida)"
    start_noida "$port" "$dir/noida" "$dir/noida.log" || die "cannot start noida-db"

    say "[$topics topics] seeding: $topics topics x $PARTITIONS partitions, $groups groups, $MESSAGES messages/partition in $MESSAGE_TOPICS topics"
    local t0 seed_s
    t0=$(date +%s.%N)
    "$PYTHON" scripts/seed.py --bootstrap "$boot" --topics "$topics" --partitions "$PARTITIONS" \
        --groups "$groups" --messages "$MESSAGES" --message-topics "$MESSAGE_TOPICS" --json \
        >"$dir/seed.out" || { cat "$dir/seed.out" >&2; die "seeding failed ($topics topics)"; }
    seed_s=$("$PYTHON" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
    grep -v '^{' "$dir/seed.out" >&2 || true
    say "[$topics topics] seeded in ${seed_s}s; broker RSS $(broker_rss) MiB"

    # Untimed: wait until the broker answers a full Metadata request with every seeded topic.
    # Right after seeding 100,000 topics noida can take longer than krawl's 30 s timeout to
    # answer (seen under a load of ~9); that is the broker settling, not the extraction.
    local settle_s
    settle_s=$("$PYTHON" - "$boot" "$topics" <<'PY'
import sys, time
from confluent_kafka.admin import AdminClient
t0 = time.monotonic()
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
while True:
    try:
        md = admin.list_topics(timeout=120)
        if sum(1 for t in md.topics if not t.startswith("__")) >= int(sys.argv[2]):
            break
    except Exception as e:  # a timeout: try again until the deadline
        print(f"bench: the broker's Metadata: {e}", file=sys.stderr)
    if time.monotonic() - t0 > 600:
        sys.exit(1)
    time.sleep(1)
print(f"{time.monotonic() - t0:.1f}")
PY
) || die "the broker did not answer Metadata with all $topics topics within 600 s"
    say "[$topics topics] the broker answered Metadata with every topic after ${settle_s}s (untimed)"

    # krawl, RUNS times
    local ok=1
    for i in $(seq 1 "$RUNS"); do
        set +e
        /usr/bin/time -v -o "$dir/krawl-$i.time" "$KRAWL" extract --bootstrap-servers "$boot" \
            --output "$dir/krawl-$i.ndjson" 2>"$dir/krawl-$i.stderr"
        rc=$?
        set -e
        if ((rc != 0)); then
            cat "$dir/krawl-$i.stderr" >&2
            say "[$topics topics] krawl extract run $i exited $rc"
            mv "$dir/krawl-$i.ndjson" "$dir/krawl-$i.ndjson.failed" 2>/dev/null || true
            ok=0
            continue
        fi
        say "[$topics topics] krawl run $i: $(time_fields "$dir/krawl-$i.time" | awk '{print $1 " s, peak RSS " $2 " MiB, CPU " $3 " s"}')"
    done

    # the peer, once
    local peer=0
    if [[ "${BENCH_SKIP_BASELINE:-0}" != 1 ]] && ((topics <= PEER_MAX)); then
        peer=1
        say "[$topics topics] peer: bench/baseline_extractor.py, $WORKERS workers (slow)"
        set +e
        /usr/bin/time -v -o "$dir/baseline.time" "$PYTHON" bench/baseline_extractor.py \
            --bootstrap "$boot" --output "$dir/baseline.ndjson" --workers "$WORKERS" \
            >"$dir/baseline.out" 2>"$dir/baseline.stderr"
        rc=$?
        set -e
        cat "$dir/baseline.stderr" >&2
        ((rc == 0)) || say "[$topics topics] warning: the peer exited $rc (errors above)"
        say "[$topics topics] peer: $(time_fields "$dir/baseline.time" | awk '{print $1 " s, peak RSS " $2 " MiB"}')"
    elif [[ "${BENCH_SKIP_BASELINE:-0}" != 1 ]]; then
        say "[$topics topics] peer skipped (more than BENCH_PEER_MAX_TOPICS=$PEER_MAX topics)"
    fi
    local brss load
    brss=$(broker_rss)
    load=$(cut -d' ' -f1 /proc/loadavg) # the machine's 1-minute load average after the runs

    # checks, and one JSON line of results
    local tf=() tv
    for i in $(seq 1 "$RUNS"); do
        if [[ -s "$dir/krawl-$i.time" && -s "$dir/krawl-$i.ndjson" ]]; then tv=$(time_fields "$dir/krawl-$i.time"); else tv="nan nan nan"; fi
        tf+=("$tv")
    done
    local ptv="nan nan nan"
    ((peer == 0)) || ptv=$(time_fields "$dir/baseline.time")
    set +e
    "$PYTHON" - "$dir" "$topics" "$PARTITIONS" "$groups" "$seed_s" "$settle_s" "$brss" "$load" "$ok" "$peer" "$ptv" "${tf[@]}" \
        >>"$RESULTS" <<'PY'
import json, math, sys
dirn, topics, parts, groups, seed_s, settle_s, brss, load, ok, peer, ptv, *runs = sys.argv[1:]
topics, parts, groups = int(topics), int(parts), int(groups)
ok = ok == "1"
def err(msg):
    global ok
    ok = False
    print(f"bench: [{topics} topics] error: {msg}", file=sys.stderr)
runs = [dict(zip(("wall_s", "peak_rss_mib", "cpu_s"), map(float, r.split()))) for r in runs]
good = [i for i, r in enumerate(runs) if not math.isnan(r["wall_s"])]
res = {"topics": topics, "partitions": topics * parts, "groups": groups,
       "seed_seconds": float(seed_s), "settle_seconds": float(settle_s), "broker_rss_mib": float(brss), "load_avg_1m": float(load),
       "krawl": None, "peer": None}
seed = json.loads(open(f"{dirn}/seed.out").read().strip().splitlines()[-1])
res["seed"] = {k: seed.get(k) for k in ("topics_seconds", "messages_seconds", "groups_seconds", "seconds_total")}
if good:
    order = sorted(good, key=lambda i: runs[i]["wall_s"])
    m = order[len(order) // 2]
    lines = open(f"{dirn}/krawl-{m + 1}.ndjson").read().splitlines()
    summary = json.loads(lines[-1])
    if summary.get("kind") != "summary":
        err(f"the last record of krawl-{m + 1}.ndjson is not a summary: the stream is incomplete")
    kinds = {}
    for l in lines:
        k = json.loads(l)["kind"]
        kinds[k] = kinds.get(k, 0) + 1
    c = summary.get("counts", {})
    if c.get("topics") != topics or kinds.get("topic", 0) != topics:
        err(f"krawl extracted {c.get('topics')} topics ({kinds.get('topic', 0)} topic records), seeded {topics}")
    if c.get("partitions") != topics * parts:
        err(f"krawl extracted {c.get('partitions')} partitions, seeded {topics * parts}")
    if c.get("consumer_groups") != groups or kinds.get("consumer_group", 0) != groups:
        err(f"krawl extracted {c.get('consumer_groups')} groups ({kinds.get('consumer_group', 0)} records), seeded {groups}")
    res["krawl"] = {
        "runs": runs, "median_run": m + 1, "wall_s": runs[m]["wall_s"], "cpu_s": runs[m]["cpu_s"],
        "peak_rss_mib": max(runs[i]["peak_rss_mib"] for i in good),
        "phases_ms": {p["name"]: p["millis"] for p in summary.get("phases", [])},
        "duration_ms": summary.get("duration_ms"), "api_calls": summary.get("api_calls", {}),
        "warnings": summary.get("warnings", {}), "records": kinds, "counts": c,
    }
    print(f"bench: [{topics} topics] krawl median run {m + 1}: phases "
          + ", ".join(f"{p['name']} {p['millis']} ms" for p in summary.get("phases", []))
          + f"; total {summary.get('duration_ms')} ms", file=sys.stderr)
    print(f"bench: [{topics} topics] krawl Kafka calls: "
          + ", ".join(f"{k} {v}" for k, v in sorted(summary.get("api_calls", {}).items())), file=sys.stderr)
    print(f"bench: [{topics} topics] krawl warnings: "
          + (", ".join(f"{k} {v}" for k, v in sorted(summary.get("warnings", {}).items())) or "none"), file=sys.stderr)
else:
    err("no krawl run succeeded")
if peer == "1":
    wall, rss, cpu = map(float, ptv.split())
    res["peer"] = {"wall_s": wall, "peak_rss_mib": rss, "cpu_s": cpu}
    try:
        s = json.loads(open(f"{dirn}/baseline.out").read().strip().splitlines()[-1])
        res["peer"].update(topics=s["topics"], partitions=s["partitions"], groups=s["groups"])
        if (s["topics"], s["partitions"], s["groups"]) != (topics, topics * parts, groups):
            err(f"the peer saw {s['topics']} topics / {s['partitions']} partitions / {s['groups']} groups, "
                f"seeded {topics} / {topics * parts} / {groups}")
    except (OSError, ValueError, KeyError, IndexError) as e:
        err(f"the peer wrote no summary ({e!r})")
if res["krawl"] and res["peer"] and res["krawl"]["wall_s"] > 0:
    res["ratio"] = round(res["peer"]["wall_s"] / res["krawl"]["wall_s"], 2)
res["ok"] = ok
print(json.dumps(res))
sys.exit(0 if ok else 1)
PY
    rc=$?
    set -e
    ((rc == 0)) || FAIL=1
    ((${#SWEEP_VALUES[@]} == 0)) || sweep "$dir" "$boot" "$topics" || FAIL=1

    stop_noida
    if [[ "${BENCH_KEEP:-0}" != 1 ]]; then
        rm -rf "$dir/noida" "$dir"/*.ndjson # the records and the broker's data are large
    fi
}

# --- optional: ListOffsets batch sweep (BENCH_SWEEP_LIST_OFFSETS) ---------------------------------
sweep() { # DIR BOOT TOPICS
    local dir=$1 boot=$2 topics=$3 r n cfg rc fail=0
    say "[$topics topics] sweep: list_offsets_batch in {${SWEEP_VALUES[*]}}, $SWEEP_RUNS runs each, interleaved"
    for r in $(seq 1 "$SWEEP_RUNS"); do
        for n in "${SWEEP_VALUES[@]}"; do
            cfg="$dir/sweep-$n.toml"
            [[ -f "$cfg" ]] || printf '[kafka]\nbootstrap_servers = ["%s"]\n[extract]\nlist_offsets_batch = %s\n' \
                "$boot" "$n" >"$cfg"
            set +e
            /usr/bin/time -v -o "$dir/sweep-$n-$r.time" "$KRAWL" extract --config "$cfg" \
                --output "$dir/sweep-$n-$r.ndjson" 2>"$dir/sweep-$n-$r.stderr"
            rc=$?
            set -e
            if ((rc != 0)); then
                cat "$dir/sweep-$n-$r.stderr" >&2
                say "sweep: krawl extract with list_offsets_batch=$n (run $r) exited $rc"
                fail=1
                continue
            fi
            say "sweep: list_offsets_batch=$n run $r: $(time_fields "$dir/sweep-$n-$r.time" | cut -d' ' -f1)s"
        done
    done
    ((fail == 0)) || { say "sweep failed"; return 1; }

    "$PYTHON" - "$dir" "$SWEEP_RUNS" "$topics" "$PARTITIONS" "${SWEEP_VALUES[@]}" <<'PY'
import json, statistics, sys
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
        offs.append(next((p["millis"] for p in summary["phases"] if p["name"] == "offsets"), 0))
        calls.add(summary["api_calls"].get("ListOffsets", 0))
    rows[n] = (statistics.median(walls), statistics.median(offs), statistics.median(cpus), walls, offs, calls)
ref = "1000" if "1000" in rows else values[0]
def ratio(x, base):
    return f"{x / base:.2f}" if base > 0 else "n/a"
rw, ro = rows[ref][0], rows[ref][1]
print()
print(f"ListOffsets batch sweep at {int(topics):,} topics: {runs} runs per value, interleaved; "
      f"ratios to list_offsets_batch = {ref}")
print()
print(f"| list_offsets_batch | ListOffsets calls | krawl time (median of {runs}) | offsets phase (median of {runs}) "
      f"| krawl CPU (median of {runs}) | time / {ref} | offsets / {ref} | runs (s) | offsets phase per run (ms) |")
print("|---:|---:|---:|---:|---:|---:|---:|---|---|")
for n in values:
    w, o, c, walls, offs, calls = rows[n]
    print(f"| {int(n):,} | {'/'.join(str(x) for x in sorted(calls))} | {w:.2f} s | {o:.0f} ms | {c:.2f} s "
          f"| {ratio(w, rw)} | {ratio(o, ro)} | {' / '.join(f'{x:.2f}' for x in walls)} "
          f"| {' / '.join(str(x) for x in offs)} |")
print()
sys.exit(0 if ok else 1)
PY
}

# --- the sizes ----------------------------------------------------------------------------------
for i in "${!SIZES[@]}"; do
    run_size "${SIZES[i]}" "${GROUPS_FOR[i]}"
done

# --- report: table, results file, plot --------------------------------------------------------------
"$PYTHON" - "$RESULTS" "$OUT" "$RUNS" "$KRAWL_VERSION" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$(git status --porcelain -- . ":(exclude)$OUT" 2>/dev/null | grep -q . && echo dirty || echo clean)" <<'PY'
import datetime, json, os, platform, sys
results_path, out, runs, version, commit, tree = sys.argv[1:]
sizes = [json.loads(l) for l in open(results_path) if l.strip()]
def f(x, fmt, unit=""):
    return "n/a" if x is None else format(x, fmt) + unit
rows = []
for r in sizes:
    k, p = r["krawl"] or {}, r["peer"] or {}
    phases = " · ".join(f"{n} {ms}" for n, ms in k.get("phases_ms", {}).items()) or "n/a"
    rows.append(
        f"| {r['topics']:,} | {r['partitions']:,} | {r['groups']:,} | {f(k.get('wall_s'), '.2f', ' s')} "
        f"| {f(k.get('peak_rss_mib'), '.1f', ' MiB')} | {f(k.get('cpu_s'), '.2f', ' s')} "
        f"| {f(p.get('wall_s'), '.2f', ' s')} | {f(p.get('peak_rss_mib'), '.1f', ' MiB')} "
        f"| {f(r.get('ratio'), '.1f', '×')} | {phases} | {r['seed_seconds']:.1f} s "
        f"| {r.get('load_avg_1m', 'n/a')} | {'ok' if r['ok'] else '**failed**'} |")
table = "\n".join([
    f"| topics | partitions | groups | krawl wall (median of {runs}) | krawl peak RSS (max of {runs}) "
    "| krawl CPU (median run) | peer wall | peer peak RSS | peer / krawl | krawl phases, median run (ms) | seeding "
    "| load (1 min) | counts |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    *rows])
by = {r["topics"]: r for r in sizes if r["krawl"]}
notes = []
if 10000 in by and 50000 in by:
    a, b = by[10000]["krawl"], by[50000]["krawl"]
    notes.append(f"krawl 50,000 / 10,000 topics: wall {b['wall_s'] / a['wall_s']:.2f}× (issue 12 target ≤ 5.5×), "
                 f"peak RSS {b['peak_rss_mib'] / a['peak_rss_mib']:.2f}×")
print()
print(table)
print()
for n in notes:
    print(n)
meta = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "krawl_version": version, "repository_commit": commit, "working_tree": tree,
    "nproc": os.cpu_count(), "machine": platform.platform(),
    "krawl_runs_per_size": int(runs),
}
with open(os.path.join(out, "results.json"), "w") as fh:
    json.dump({"meta": meta, "sizes": sizes}, fh, indent=1)
    fh.write("\n")
with open(os.path.join(out, "results.md"), "w") as fh:
    fh.write(f"Measured {meta['date']}, {version}, repository at {commit} ({tree}), "
             f"{meta['nproc']} cores; written by scripts/bench.sh.\n\n{table}\n")
    for n in notes:
        fh.write(f"\n{n}\n")
PY
"$PYTHON" bench/plot.py "$OUT" || { say "error: the plot failed"; exit 2; }
say "wrote $OUT/results.json, $OUT/results.md, $OUT/scale.png"
((FAIL == 0)) || { say "failed (errors above)"; exit 1; }
