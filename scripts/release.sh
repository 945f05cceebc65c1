#!/usr/bin/env bash
# Builds the release archive of krawl for this machine's architecture (glibc; no musl target here):
#
#   target/dist/krawl-<version>-<arch>-linux-gnu.tar.gz   and   target/dist/SHA256SUMS
#
# holding krawl-<version>-<arch>-linux-gnu/
#   bin/krawl                        stripped release binary (`krawl --version`: version + commit)
#   systemd/krawl.service            the unit (docs/deploy.md, "systemd")
#   krawl.example.toml               every config key
#   LICENSE                          Apache-2.0
#   THIRD-PARTY-LICENSES.md          every crate linked into the binary with its licence, from
#                                    `cargo metadata` (cargo-about is not available), plus the
#                                    C library built into it (librdkafka)
#   README.md, docs/deploy.md
#   SHA256SUMS                       of the files above
#
# Usage: scripts/release.sh [--bin PATH] [--out DIR]
#   --bin PATH   package this binary instead of running `cargo build --release -p krawl-cli`
#   --out DIR    where the archive goes (default target/dist)
# The binary links libcurl/OpenSSL dynamically: the target needs libcurl4 (Debian/Ubuntu) or
# libcurl (RHEL), as docs/deploy.md says.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"
BIN=""
OUT="target/dist"
while (($#)); do
    case "$1" in
    --bin) BIN="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "release: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
log() { printf 'release: %s\n' "$*"; }

if [[ -z "${BIN}" ]]; then
    log "cargo build --release --locked -p krawl-cli"
    cargo build --release --locked -p krawl-cli
    BIN="target/release/krawl"
fi
[[ -x "${BIN}" ]] || { log "no executable at ${BIN}" >&2; exit 1; }

version_line="$("${BIN}" --version)"          # krawl 0.1.0 (commit 0123456789ab)
version="$(awk '{print $2}' <<<"${version_line}")"
[[ -n "${version}" ]] || { log "cannot read the version from '${version_line}'" >&2; exit 1; }
arch="$(uname -m)"
name="krawl-${version}-${arch}-linux-gnu"
mkdir -p "${OUT}"
OUT="$(cd "${OUT}" && pwd)"
stage="$(mktemp -d "${TMPDIR:-/tmp}/krawl-release.XXXXXX")"
trap 'rm -rf "${stage}"' EXIT
dir="${stage}/${name}"
mkdir -p "${dir}/bin" "${dir}/systemd" "${dir}/docs"

install -m 0755 "${BIN}" "${dir}/bin/krawl"
strip "${dir}/bin/krawl"
install -m 0644 deploy/systemd/krawl.service "${dir}/systemd/krawl.service"
install -m 0644 deploy/krawl.example.toml "${dir}/krawl.example.toml"
install -m 0644 LICENSE README.md "${dir}/"
[[ -f docs/deploy.md ]] && install -m 0644 docs/deploy.md "${dir}/docs/deploy.md"

# Third-party licences: the crates in krawl-cli's normal (non-dev, non-build) dependency graph
# for this target, from cargo metadata's `license` fields.
log "listing third-party licences from cargo metadata"
cargo metadata --format-version 1 --filter-platform "${arch}-unknown-linux-gnu" >"${stage}/metadata.json"
python3 - "${stage}/metadata.json" "${version_line}" >"${dir}/THIRD-PARTY-LICENSES.md" <<'PY'
import json, sys
meta = json.load(open(sys.argv[1]))
pkgs = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
workspace = set(meta["workspace_members"])
root = next(i for i in workspace if pkgs[i]["name"] == "krawl-cli")
seen, todo = set(), [root]
while todo:
    node = nodes[todo.pop()]
    for dep in node["deps"]:
        if any(k["kind"] is None for k in dep["dep_kinds"]) and dep["pkg"] not in seen:
            seen.add(dep["pkg"])
            todo.append(dep["pkg"])
third = sorted((pkgs[i] for i in seen - workspace), key=lambda p: (p["name"], p["version"]))
missing = [p["name"] for p in third if not (p.get("license") or p.get("license_file"))]
if missing:
    sys.exit(f"release: no licence declared by: {', '.join(missing)}")
by_licence = {}
for p in third:
    by_licence.setdefault(p.get("license") or f"see {p['license_file']}", []).append(p)
print(f"# Third-party software in {sys.argv[2]}\n")
print("krawl is Apache-2.0 (LICENSE). The binary contains the following Rust crates, listed")
print("with the licence expression each declares in its Cargo manifest (generated from")
print("`cargo metadata`; each crate's full licence text is in its source package on crates.io).\n")
print("It also contains librdkafka (BSD-2-Clause, https://github.com/confluentinc/librdkafka),")
print("compiled from the source bundled in rdkafka-sys, and links the system's libcurl and")
print("OpenSSL dynamically.\n")
print("## Licences used\n")
for lic, ps in sorted(by_licence.items(), key=lambda kv: -len(kv[1])):
    print(f"- {lic}: {len(ps)} crate(s)")
print(f"\n## Crates ({len(third)})\n")
print("| crate | version | licence | source |")
print("|---|---|---|---|")
for p in third:
    src = p.get("repository") or ""
    print(f"| {p['name']} | {p['version']} | {p.get('license') or 'see ' + p['license_file']} | {src} |")
PY

(cd "${dir}" && find . -type f -printf "%P\n" | sort | xargs sha256sum >"${stage}/SHA256SUMS") && mv "${stage}/SHA256SUMS" "${dir}/SHA256SUMS"
tar -C "${stage}" --owner=0 --group=0 --numeric-owner --sort=name -czf "${OUT}/${name}.tar.gz" "${name}"
(cd "${OUT}" && sha256sum "${name}.tar.gz" >SHA256SUMS)
log "${OUT}/${name}.tar.gz ($(du -h "${OUT}/${name}.tar.gz" | cut -f1)), ${version_line}"
log "$(cat "${OUT}/SHA256SUMS")"
