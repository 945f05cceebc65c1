# syntax=docker/dockerfile:1.7
# krawl agent image: `docker build -t krawl:0.1.0 .` from the repository root.
#
# Stage 1 builds the `krawl` binary the way the crate builds everywhere else: rdkafka's
# cmake-build compiles librdkafka from source (cmake, a C compiler, libcurl and OpenSSL headers).
# Stage 2 is Debian slim of the same release (same glibc) plus the shared libraries the binary
# links (libcurl4 pulls libssl3, libzstd, ...); scripts/lint-deploy.sh checks that the binary
# loads with exactly the libraries of that package set.
#
# The image runs as UID/GID 65532, writes nothing outside /tmp and /var/lib/krawl (mount an
# emptyDir or a volume on each), so it works with a read-only root filesystem.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
# git: crates/krawl-cli/build.rs embeds the commit in `krawl --version` (keep .git in the context).
# Exact Debian revisions are not pinned: they vanish from the archive at each point release and
# would break the build; the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        cmake \
        g++ \
        git \
        libcurl4-openssl-dev \
        libssl-dev \
        make \
        perl \
        pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p krawl-cli \
 && install -D -m 0755 target/release/krawl /out/krawl \
 && strip /out/krawl \
 && /out/krawl --version

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="krawl" \
      org.opencontainers.image.description="Read-only Kafka metadata agent" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/krawl-dev/krawl" \
      org.opencontainers.image.documentation="https://github.com/krawl-dev/krawl/blob/main/docs/deploy.md" \
      org.opencontainers.image.vendor="krawl"
# The runtime package set: scripts/lint-deploy.sh reads this list (keep one package a line).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        ca-certificates \
        libcurl4 \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/krawl \
 && install -d -m 0755 /etc/krawl
COPY --from=builder /out/krawl /usr/local/bin/krawl
COPY deploy/krawl.example.toml /usr/share/doc/krawl/krawl.example.toml
COPY LICENSE /usr/share/doc/krawl/LICENSE
# In a container the health server must listen on every interface (probes, Prometheus).
ENV KRAWL_HEALTH_LISTEN=0.0.0.0:9464 \
    HOME=/tmp \
    TMPDIR=/tmp
USER 65532:65532
WORKDIR /var/lib/krawl
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/krawl"]
CMD ["run", "--config", "/etc/krawl/krawl.toml"]
