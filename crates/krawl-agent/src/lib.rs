//! The krawl agent: `krawl run`.
//!
//! Code map (see ARCHITECTURE.md for the invariants):
//! - [`config`]: the agent's TOML config (`/etc/krawl/krawl.toml`) with `KRAWL_*` overrides.
//! - [`client`]: the control-plane HTTPS client (rustls, custom CA, proxies, OAuth2 client
//!   credentials or a static token), retries and `Retry-After`.
//! - [`agent`]: registration, the long-poll loop, job slots, heartbeats, graceful shutdown.
//! - [`upload`]: the [`krawl_kafka::RecordSink`] that cuts records into zstd chunks and uploads
//!   them idempotently.
//! - [`health`]: `/healthz`, `/readyz` and `/metrics` on a local port.
//! - [`jobs`]: what each job kind does: spec parsing, the local policy, secrets resolved per job,
//!   the shared connection pool, and the `kafka.*` executors.
//! - [`progress`]: a job's progress, shared between its executor, its uploader and its heartbeat.

pub mod agent;
pub mod client;
pub mod config;
pub mod health;
pub mod jobs;
pub mod progress;
pub mod upload;
