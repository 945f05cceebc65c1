#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 30), starting from its committed
# corpus in fuzz/corpus/<target>/ (new inputs go to a scratch copy; the committed corpus changes
# only when someone merges it on purpose, see fuzz/README.md). Fails on the first crash, leak
# or timeout, leaving the input in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [--keep] [SECONDS] [TARGET...]
#
# --keep (for the recorded long runs, docs/security.md): afterwards, merge what the run found
# into the committed corpus (libFuzzer's -merge=1 keeps only inputs that add coverage).
#
# Needs the nightly toolchain and cargo-fuzz (scripts/testbed-install.sh installs cargo-fuzz
# under .testbed/cargo/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
KEEP=0
if [[ "${1:-}" == "--keep" ]]; then
    KEEP=1
    shift
fi
SECONDS_EACH="${1:-30}"
shift || true
export PATH="$PWD/.testbed/cargo/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null; then
    echo "fuzz.sh: cargo-fuzz not found; run scripts/testbed-install.sh" >&2
    exit 1
fi
cd fuzz
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
# One build for all targets (the first `run` would otherwise build them one by one).
cargo +nightly fuzz build
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "$scratch/$t"
    echo "==> fuzz $t for ${SECONDS_EACH}s ($(find "corpus/$t" -type f | wc -l) seeds)"
    # -rss_limit_mb: a target that allocates without bound fails instead of thrashing.
    set +e
    cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        >"$scratch/$t.log" 2>&1
    status=$?
    set -e
    # The fuzzer's chatter stays in the log; the outcome and the stats are shown.
    grep -E '^(==[0-9]+== ERROR|SUMMARY|thread .* panicked|stat::number_of_executed_units|stat::peak_rss_mb)' \
        "$scratch/$t.log" || true
    if [[ $status -ne 0 ]]; then
        tail -40 "$scratch/$t.log" >&2
        echo "fuzz.sh: $t failed (exit $status); the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    if [[ $KEEP -eq 1 ]]; then
        before=$(find "corpus/$t" -type f | wc -l)
        cargo +nightly fuzz run "$t" "corpus/$t" "$scratch/$t" -- -merge=1 >"$scratch/$t.merge.log" 2>&1
        echo "corpus/$t: $before -> $(find "corpus/$t" -type f | wc -l) inputs, $(du -sk "corpus/$t" | cut -f1) KiB"
    fi
done
echo "==> fuzz: ${#targets[@]} targets, ${SECONDS_EACH}s each, no crash"
