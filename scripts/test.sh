#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh Debian machine (root):
# installs what the tests need, checks formatting and lints, builds, runs every
# test (the end-to-end tests start their own brokers on free ports), a short run
# of every fuzz target, then the valgrind leak check of the librdkafka wrappers.
# `.ci/run` calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# One cold build: incremental state would only cost disk (2 GB) and time.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

free_disk() { df -h --output=avail . 2>/dev/null | tail -1 | tr -d ' '; }
step() { printf "\n==> %s  [%s, +%ss, %s free]\n" "$*" "$(date -u +%H:%M:%S)" "$SECONDS" "$(free_disk)"; }

step "installing test dependencies (scripts/testbed-install.sh)"
scripts/testbed-install.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build (binaries and tests)"
cargo build --workspace --all-targets

step "deploy artefacts: hadolint, helm, kubernetes-validate, yamllint, systemd-analyze (scripts/lint-deploy.sh)"
scripts/lint-deploy.sh

step "cargo test"
cargo test --workspace -- --test-threads="${KRAWL_TEST_THREADS:-4}"

step "control-plane API against docs/openapi.json with schemathesis (scripts/fuzz-api.sh)"
scripts/fuzz-api.sh

step "every fuzz target for ${KRAWL_FUZZ_SECONDS:-20}s from its committed corpus (scripts/fuzz.sh)"
scripts/fuzz.sh "${KRAWL_FUZZ_SECONDS:-20}"

step "leak check of the admin wrappers under valgrind (scripts/leak-check.sh)"
scripts/leak-check.sh

step "all tests passed (target/ is $(du -sh target 2>/dev/null | cut -f1))"
