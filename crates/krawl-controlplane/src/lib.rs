//! The reference krawl control plane.
//!
//! A small, durable server for the agent ⇄ control-plane protocol of [`krawl_protocol`]:
//! agents register, long-poll for jobs, heartbeat, upload result chunks and complete their
//! attempts; admins submit, watch, cancel jobs and download results. Agents, jobs, attempts and
//! chunks live in one SQLite database (WAL), so a killed server restarted on the same database
//! carries on where it stopped.
//!
//! Map:
//! - [`start`] / [`RunningServer`] (`server.rs`): listener, optional TLS, the lease reaper.
//! - `api.rs`: routes, authentication, parsing. `store.rs`: every state change, in SQL.
//! - `auth.rs`: tokens (only their sha256 is stored; compared in constant time).
//! - `tokens.rs`: bootstrap tokens scoped to label sets (`--bootstrap-tokens FILE`).
//! - `body.rs`: request bodies parsed with errors that name fields, never values.
//! - `ratelimit.rs`: per-agent token buckets.
//! - [`admin`]: the HTTP client of the admin API; [`cli`]: `krawl controlplane` and `krawl jobs`.

pub mod admin;
mod api;
mod auth;
pub mod cli;
mod error;
mod ratelimit;
mod running_hash;
mod server;
mod store;
mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use error::ApiError;
pub use ratelimit::RateLimit;
pub use server::{start, RunningServer};
pub use store::{StoreError, VerifyHook, PERMANENT_ERROR_CLASSES};
pub use tokens::{BootstrapToken, LabelGrant, TokenOrigin, LEGACY_TOKEN_NAME};

/// PEM files of the server certificate (chain, leaf first) and its private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

/// Chunks one attempt may store by default (`--max-attempt-chunks`). The agent cuts a chunk at
/// 5,000 records or 4 MiB of NDJSON, so this is 400 GB of NDJSON or 500 million records: the
/// byte quota binds first; this one bounds the rows a rogue agent can add with tiny chunks.
pub const DEFAULT_MAX_ATTEMPT_CHUNKS: u32 = 100_000;

/// Compressed bytes one attempt may store by default (`--max-attempt-bytes`, 4 GiB). Measured:
/// a `topic` record is about 4.3 KB of NDJSON (noida, 3 partitions, 34 configs), so 4 GiB holds
/// the records of about a million topics even uncompressed, and the agent sends zstd; one rogue
/// attempt still cannot fill the control plane's disk.
pub const DEFAULT_MAX_ATTEMPT_BYTES: u64 = 4 << 30;

/// Days a finished job and its results are kept by default (`--retention-days`).
pub const DEFAULT_RETENTION_DAYS: u64 = 30;
/// Attempts whose stream hash is kept as chunks arrive ([`ServerConfig::running_hashes`]).
pub const DEFAULT_RUNNING_HASHES: usize = 1024;

/// How to run the control plane. Tokens are credentials: [`ServerConfig`]'s `Debug` hides them.
#[derive(Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub db_path: PathBuf,
    /// Bearer token of the job API (`/v1/jobs…`, `/v1/agents`, drain).
    pub admin_token: String,
    /// The tokens agents register with, each granting the labels its agents may claim
    /// ([`ServerConfig::new`] starts with the one token of `--bootstrap-token-file`, which grants
    /// none).
    pub bootstrap_tokens: Vec<BootstrapToken>,
    /// `None`: plain HTTP (loopback demos only).
    pub tls: Option<TlsFiles>,
    /// How long a poll is held open before answering 204.
    pub poll_wait: Duration,
    /// Lease TTL of jobs that do not set one.
    pub default_lease_ttl: Duration,
    /// Attempts of jobs that do not set a maximum.
    pub default_max_attempts: u32,
    /// Largest request body (a compressed chunk, a JSON document).
    pub max_body_bytes: usize,
    /// Most chunks one attempt may store (`--max-attempt-chunks`); past it a chunk is refused
    /// with 413 and the job is not retried.
    pub max_attempt_chunks: u32,
    /// Most compressed bytes one attempt may store (`--max-attempt-bytes`).
    pub max_attempt_bytes: u64,
    /// Per-agent request rate; `None`: unlimited.
    pub agent_rate_limit: Option<RateLimit>,
    /// Finished jobs (and their stored results) older than this are deleted; `None`: kept
    /// forever.
    pub retention: Option<Duration>,
    /// Test hook: called (job, attempt, seq) after each chunk a completion's verification has
    /// decoded and hashed, without the store's lock held. Not for production use.
    #[doc(hidden)]
    pub verify_hook: Option<VerifyHook>,
    /// Attempts whose stream hash is kept as their chunks arrive, so that a completion hashes
    /// only what was not fed yet (`running_hash.rs`); 0: every completion reads back and hashes
    /// all its chunks.
    pub running_hashes: usize,
}

impl ServerConfig {
    /// The defaults: loopback, 30 s polls, 60 s leases, 3 attempts, 16 MiB bodies, per-attempt
    /// quotas of [`DEFAULT_MAX_ATTEMPT_CHUNKS`] chunks and [`DEFAULT_MAX_ATTEMPT_BYTES`], no rate
    /// limit,
    /// finished jobs kept [`DEFAULT_RETENTION_DAYS`] days; `bootstrap_token` is the single
    /// token of `--bootstrap-token-file` (named [`LEGACY_TOKEN_NAME`], granting no labels): push
    /// [`BootstrapToken::scoped`] tokens to [`ServerConfig::bootstrap_tokens`] for labelled agents.
    pub fn new(
        listen: SocketAddr,
        db_path: PathBuf,
        admin_token: String,
        bootstrap_token: String,
    ) -> Self {
        Self {
            listen,
            db_path,
            admin_token,
            bootstrap_tokens: vec![BootstrapToken::single(bootstrap_token)],
            tls: None,
            poll_wait: Duration::from_secs(u64::from(krawl_protocol::DEFAULT_POLL_WAIT_SECS)),
            default_lease_ttl: Duration::from_secs(60),
            default_max_attempts: 3,
            max_body_bytes: 16 * 1024 * 1024,
            max_attempt_chunks: DEFAULT_MAX_ATTEMPT_CHUNKS,
            max_attempt_bytes: DEFAULT_MAX_ATTEMPT_BYTES,
            agent_rate_limit: None,
            retention: Some(Duration::from_secs(DEFAULT_RETENTION_DAYS * 86_400)),
            verify_hook: None,
            running_hashes: DEFAULT_RUNNING_HASHES,
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("db_path", &self.db_path)
            .field("admin_token", &"<redacted>")
            .field("bootstrap_tokens", &self.bootstrap_tokens)
            .field("tls", &self.tls)
            .field("poll_wait", &self.poll_wait)
            .field("default_lease_ttl", &self.default_lease_ttl)
            .field("default_max_attempts", &self.default_max_attempts)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_attempt_chunks", &self.max_attempt_chunks)
            .field("max_attempt_bytes", &self.max_attempt_bytes)
            .field("agent_rate_limit", &self.agent_rate_limit)
            .field("retention", &self.retention)
            .field("verify_hook", &self.verify_hook)
            .field("running_hashes", &self.running_hashes)
            .finish()
    }
}
