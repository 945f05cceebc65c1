//! What each job kind does. INTERFACE (shared by the agent loop and the executors; change it only
//! together with `agent.rs`):
//!
//! ```ignore
//! let deps = JobDeps::new(resolver, policy, ConnectionPool::new(idle_ttl));
//! let outcome: Result<(), JobFailure> = jobs::execute(&deps, &ctx, &mut sink).await;
//! ```
//!
//! - `execute` parses the spec for `ctx.kind`, checks the policy before contacting anything,
//!   resolves the job's secrets (never cached past the job), takes a connection from the pool,
//!   runs the kind and emits records into `sink`, returning when done, failed or cancelled.
//! - An unknown kind or malformed spec is a `JobFailure` with class `invalid_job`; it never panics.

pub mod policy;
pub mod pool;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::progress::JobProgress;

/// Everything a job needs from the agent, shared by all jobs.
#[derive(Debug)]
pub struct JobDeps {
    pub resolver: krawl_secrets::Resolver,
    pub policy: policy::Policy,
    pub pool: pool::ConnectionPool,
}

/// One running job attempt.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub job_id: String,
    pub attempt: u32,
    /// The wire kind string (`kafka.extract`, ...), possibly unknown.
    pub kind: String,
    pub spec: serde_json::Value,
    /// Cancelled on control-plane cancel or agent shutdown; the executor stops promptly.
    pub cancel: CancellationToken,
    pub progress: Arc<JobProgress>,
}

/// Why a job failed: a stable class (see `krawl_protocol::JobError`) and an actionable message
/// that never contains a secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{class}: {message}")]
pub struct JobFailure {
    pub class: String,
    pub message: String,
}
