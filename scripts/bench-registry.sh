#!/usr/bin/env bash
# Schema Registry benchmark: `krawl extract --schema-registry-url` against the fake
# Confluent-compatible registry (krawl-tests' krawl-fake-registry) and an empty noida-db.
#
#   scripts/bench-registry.sh                                          # 5,000 subjects x 3 versions
#   BENCH_SR_SUBJECTS=500 BENCH_SR_VERSIONS=2 scripts/bench-registry.sh  # a quick one
#
# Builds krawl and the fake registry (release), starts a fresh, empty noida-db (free port,
# temp data dir; via scripts/lib.sh) and the fake registry (free port), then runs
# `krawl extract --no-groups` BENCH_SR_RUNS times latest-only and BENCH_SR_RUNS times with
# --all-schema-versions (the two modes interleaved), each under /usr/bin/time -v. Checks each
# run's summary counts (subjects = N; schema_versions = N latest-only, N x V with all
# versions) and prints a markdown table: per mode, the counts, the registry HTTP requests,
# the median schema_registry phase, the median wall time and the highest peak RSS.
#
# Environment (defaults): BENCH_SR_SUBJECTS (5000), BENCH_SR_VERSIONS (3), BENCH_SR_RUNS (3),
# BENCH_SR_LATENCY_MS (unset: the fake's default latency), BENCH_KEEP=1 keeps the temp dir,
# KRAWL_NOIDA_BIN (broker launcher; default the noida-db binary in the noida_db package,
# installed with pip if missing), KRAWL_NOIDA_WAIT (seconds to wait for the broker, 30),
# BENCH_SR_WAIT (seconds to wait for the fake registry to seed, 120).
#
# Exit status: 0 on success; 1 if a krawl run failed or its counts are wrong; 2 on a
# setup failure (build, broker, fake registry).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SUBJECTS=${BENCH_SR_SUBJECTS:-5000}
VERSIONS=${BENCH_SR_VERSIONS:-3}
RUNS=${BENCH_SR_RUNS:-3}
SR_WAIT=${BENCH_SR_WAIT:-120}
PYTHON=${PYTHON:-python3}

say() { printf 'bench-registry: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

[[ $SUBJECTS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SR_SUBJECTS: '$SUBJECTS' is not a positive number"
[[ $VERSIONS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SR_VERSIONS: '$VERSIONS' is not a positive number"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SR_RUNS: '$RUNS' is not a positive number"
[[ $SR_WAIT =~ ^[1-9][0-9]*$ ]] || die "BENCH_SR_WAIT: '$SR_WAIT' is not a positive number"

# --- tools -----------------------------------------------------------------------------------
ensure_gnu_time || die "cannot install the 'time' package (apt-get install time)"
ensure_noida || die "cannot install or find noida-db (pip install noida-db==0.2.3, or set KRAWL_NOIDA_BIN)"

say "building krawl (cargo build --release -p krawl-cli)"
cargo build --release --quiet -p krawl-cli || die "cargo build of krawl failed"
say "building the fake registry (cargo build --release -p krawl-tests --bin krawl-fake-registry)"
cargo build --release --quiet -p krawl-tests --bin krawl-fake-registry ||
    die "cargo build of krawl-fake-registry failed"
KRAWL="$ROOT/target/release/krawl"
FAKE="$ROOT/target/release/krawl-fake-registry"

# --- broker and registry ---------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/krawl-bench-registry.XXXXXX")
FAKE_PID=
cleanup() {
    if [[ -n $FAKE_PID ]]; then
        kill -TERM "$FAKE_PID" 2>/dev/null || true
        wait "$FAKE_PID" 2>/dev/null || true
        FAKE_PID=
    fi
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
say "starting noida-db on $BOOT (empty; data in $WORK/noida)"
start_noida "$PORT" "$WORK/noida" "$WORK/noida.log" || die "cannot start noida-db"

SR_PORT=$(free_port) || die "no free port"
FAKE_ARGS=(--port "$SR_PORT" --subjects "$SUBJECTS" --versions "$VERSIONS")
[[ -n ${BENCH_SR_LATENCY_MS:-} ]] && FAKE_ARGS+=(--latency-ms "$BENCH_SR_LATENCY_MS")
say "starting the fake registry on 127.0.0.1:$SR_PORT ($SUBJECTS subjects x $VERSIONS versions)"
"$FAKE" "${FAKE_ARGS[@]}" >"$WORK/fake.log" 2>&1 &
FAKE_PID=$!
for ((i = 0; i < SR_WAIT * 10; i++)); do
    grep -q '^listening on http://' "$WORK/fake.log" 2>/dev/null && break
    kill -0 "$FAKE_PID" 2>/dev/null || { cat "$WORK/fake.log" >&2; die "the fake registry exited"; }
    sleep 0.1
done
grep -q '^listening on http://' "$WORK/fake.log" ||
    { cat "$WORK/fake.log" >&2; die "the fake registry did not start in ${SR_WAIT}s"; }
SR_URL=$(grep -m1 '^listening on http://' "$WORK/fake.log" | awk '{print $3}')
say "fake registry at $SR_URL"

# --- runs ------------------------------------------------------------------------------------
# One run: mode (latest|all), index. Writes $WORK/<mode>-<i>.{ndjson,time,stderr}.
FAIL=0
run_one() {
    local mode=$1 i=$2 rc
    local -a extra=()
    [[ $mode == all ]] && extra=(--all-schema-versions)
    set +e
    /usr/bin/time -v -o "$WORK/$mode-$i.time" "$KRAWL" extract --bootstrap-servers "$BOOT" \
        --schema-registry-url "$SR_URL" "${extra[@]}" --no-groups \
        --output "$WORK/$mode-$i.ndjson" 2>"$WORK/$mode-$i.stderr"
    rc=$?
    set -e
    if ((rc != 0)); then
        cat "$WORK/$mode-$i.stderr" >&2
        say "krawl extract ($mode, run $i) exited $rc"
        FAIL=1
        return
    fi
    say "$mode run $i: $("$PYTHON" - "$WORK/$mode-$i" <<'PY'
import json, sys
p = sys.argv[1]
s = json.loads(open(p + ".ndjson").read().strip().splitlines()[-1])
t = open(p + ".time").read()
wall = next(l for l in t.splitlines() if "Elapsed (wall clock)" in l).rsplit(" ", 1)[1]
ph = {x["name"]: x["millis"] for x in s["phases"]}.get("schema_registry")
print(f"wall {wall}, schema_registry {ph} ms, "
      f"{s['api_calls'].get('SchemaRegistry (HTTP)')} requests, counts {s['counts'].get('subjects')}/"
      f"{s['counts'].get('schema_versions')}")
PY
)"
}
# Interleave the modes, so that a change in the machine's load hits both alike.
for i in $(seq 1 "$RUNS"); do
    run_one latest "$i"
    run_one all "$i"
done
((FAIL == 0)) || { say "a krawl run failed"; exit 1; }

# --- table and checks ------------------------------------------------------------------------
"$PYTHON" - "$WORK" "$RUNS" "$SUBJECTS" "$VERSIONS" <<'PY'
import json, statistics, sys
work, runs, n, v = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def wall_s(text):
    val = next(l for l in text if "Elapsed (wall clock) time" in l).rsplit(" ", 1)[1]
    secs = 0.0
    for part in val.split(":"):
        secs = secs * 60 + float(part)
    return secs

def rss_mib(text):
    return int(next(l for l in text if "Maximum resident set size" in l).rsplit(" ", 1)[1]) / 1024

bad = []
rows = []
for mode, label, want_versions in (("latest", "latest only", n), ("all", "--all-schema-versions", n * v)):
    subjects, versions, requests, phase, walls, rss = set(), set(), set(), [], [], []
    for i in range(1, runs + 1):
        s = json.loads(open(f"{work}/{mode}-{i}.ndjson").read().strip().splitlines()[-1])
        if s.get("kind") != "summary":
            bad.append(f"{mode} run {i}: last line is not a summary record")
            continue
        c = s.get("counts", {})
        got_s, got_v = c.get("subjects"), c.get("schema_versions")
        if got_s != n:
            bad.append(f"{mode} run {i}: subjects {got_s}, expected {n}")
        if got_v != want_versions:
            bad.append(f"{mode} run {i}: schema_versions {got_v}, expected {want_versions}")
        subjects.add(got_s)
        versions.add(got_v)
        requests.add(s.get("api_calls", {}).get("SchemaRegistry (HTTP)"))
        ph = {x["name"]: x["millis"] for x in s.get("phases", [])}.get("schema_registry")
        if ph is None:
            bad.append(f"{mode} run {i}: no schema_registry phase")
        else:
            phase.append(ph)
        t = open(f"{work}/{mode}-{i}.time").read().splitlines()
        walls.append(wall_s(t))
        rss.append(rss_mib(t))
    fmt = lambda xs: " / ".join(f"{x:,}" if isinstance(x, int) else str(x) for x in sorted(xs, key=str))
    rows.append((label, fmt(subjects), fmt(versions), fmt(requests),
                 f"{statistics.median(phase):,.0f}" if phase else "n/a",
                 f"{statistics.median(walls):.2f}", f"{max(rss):.1f}",
                 " / ".join(f"{w:.2f}" for w in walls),
                 " / ".join(f"{p:,.0f}" for p in phase)))

print(f"| mode | subjects | schema versions emitted | registry HTTP requests | schema_registry phase ms (median of {runs}) | wall s (median of {runs}) | peak RSS MiB (max) | wall s per run | phase ms per run |")
print("|---|---:|---:|---:|---:|---:|---:|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
for b in bad:
    print(f"bench-registry: FAIL: {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
