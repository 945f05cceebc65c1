//! The agent ⇄ control-plane protocol: versioned JSON over HTTPS, every
//! connection opened by the agent.
//!
//! This crate holds only the wire types, the paths and headers, and the
//! OpenAPI document generated from them ([`openapi::document`]); the agent
//! (`krawl-agent`) and the reference control plane (`krawl-controlplane`) both
//! build on it, so the two cannot drift. `docs/protocol.md` explains the
//! exchange; `docs/openapi.json` is the generated document, kept in sync by a
//! test (`KRAWL_BLESS=1 cargo test -p krawl-protocol` rewrites it).
//!
//! Invariants:
//! - Additive changes only within [`PROTOCOL_VERSION`]: unknown fields are
//!   ignored by both sides, so a newer peer can add fields.
//! - No type here carries a Kafka or secret-store credential: job specs name
//!   secrets by reference and the agent resolves them locally.

pub mod body;
pub mod chunk;
pub mod openapi;
pub mod spec;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Path prefix of every endpoint; bumped on an incompatible change.
pub const PROTOCOL_VERSION: &str = "v1";

/// Request header carrying the sha256 (lower-case hex) of a chunk's decoded NDJSON bytes.
pub const CHUNK_SHA256_HEADER: &str = "x-krawl-chunk-sha256";
/// Request header carrying the number of records (lines) in a chunk.
pub const CHUNK_RECORDS_HEADER: &str = "x-krawl-chunk-records";
/// Largest decoded chunk the reference control plane accepts (bytes).
pub const MAX_CHUNK_DECODED_BYTES: usize = 64 * 1024 * 1024;
/// How long the server holds a poll open before answering 204.
pub const DEFAULT_POLL_WAIT_SECS: u32 = 30;

/// Every endpoint path, relative to the control-plane base URL.
pub mod paths {
    /// `POST`: [`super::RegisterRequest`] → [`super::RegisterResponse`] (bootstrap token).
    pub const REGISTER: &str = "/v1/agents/register";
    /// `POST`: [`super::PollRequest`] → `200` [`super::JobLease`] or `204` (agent token).
    pub fn poll(agent_id: &str) -> String {
        format!("/v1/agents/{agent_id}/poll")
    }
    /// `POST`: [`super::AgentHeartbeat`] → [`super::AgentHeartbeatResponse`].
    pub fn agent_heartbeat(agent_id: &str) -> String {
        format!("/v1/agents/{agent_id}/heartbeat")
    }
    /// `POST`: [`super::JobHeartbeat`] → [`super::JobHeartbeatResponse`].
    pub fn job_heartbeat(job_id: &str, attempt: u32) -> String {
        format!("/v1/jobs/{job_id}/attempts/{attempt}/heartbeat")
    }
    /// `PUT`: a chunk body → [`super::ChunkAck`]; `GET` on the collection → [`super::ChunkList`].
    pub fn chunk(job_id: &str, attempt: u32, seq: u32) -> String {
        format!("/v1/jobs/{job_id}/attempts/{attempt}/chunks/{seq}")
    }
    /// `GET`: which chunks of an attempt the server holds ([`super::ChunkList`]).
    pub fn chunks(job_id: &str, attempt: u32) -> String {
        format!("/v1/jobs/{job_id}/attempts/{attempt}/chunks")
    }
    /// `POST`: [`super::CompleteRequest`] → [`super::CompleteResponse`].
    pub fn complete(job_id: &str, attempt: u32) -> String {
        format!("/v1/jobs/{job_id}/attempts/{attempt}/complete")
    }
    /// `POST` [`super::SubmitJob`] → [`super::JobView`]; `GET` → [`super::JobList`] (admin token).
    pub const JOBS: &str = "/v1/jobs";
    /// `GET` → [`super::JobView`] (admin token).
    pub fn job(job_id: &str) -> String {
        format!("/v1/jobs/{job_id}")
    }
    /// `GET` → the job's result stream, decoded NDJSON (admin token).
    pub fn job_results(job_id: &str) -> String {
        format!("/v1/jobs/{job_id}/results")
    }
    /// `POST` → [`super::JobView`]: ask the agent running the job to stop (admin token).
    pub fn job_cancel(job_id: &str) -> String {
        format!("/v1/jobs/{job_id}/cancel")
    }
    /// `POST` → `204`: ask an agent to drain (stop polling, finish its jobs) (admin token).
    pub fn agent_drain(agent_id: &str) -> String {
        format!("/v1/agents/{agent_id}/drain")
    }
    /// `GET` → [`super::AgentList`] (admin token).
    pub const AGENTS: &str = "/v1/agents";
}

// ------------------------------------------------------------------------------------------------
// Job kinds
// ------------------------------------------------------------------------------------------------

/// What a job does. On the wire: `kafka.extract`, `kafka.test_connection`, `kafka.preflight`,
/// `kafka.list_topics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKind {
    /// Full metadata extraction (cluster, topics, groups, Schema Registry when configured).
    Extract,
    /// Reachability, authentication and API versions, with a verdict.
    TestConnection,
    /// Which read permissions the principal holds, and the ACL to add for each missing one.
    Preflight,
    /// Topic names and partition counts, for filter pickers.
    ListTopics,
}

impl JobKind {
    pub const ALL: [JobKind; 4] = [
        JobKind::Extract,
        JobKind::TestConnection,
        JobKind::Preflight,
        JobKind::ListTopics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Extract => "kafka.extract",
            JobKind::TestConnection => "kafka.test_connection",
            JobKind::Preflight => "kafka.preflight",
            JobKind::ListTopics => "kafka.list_topics",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job kind this agent does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job kind {0:?}; known kinds: kafka.extract, kafka.test_connection, kafka.preflight, kafka.list_topics")]
pub struct UnknownJobKind(pub String);

impl FromStr for JobKind {
    type Err = UnknownJobKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownJobKind(s.to_string()))
    }
}

// ------------------------------------------------------------------------------------------------
// Registration and polling
// ------------------------------------------------------------------------------------------------

/// `POST /v1/agents/register`, authenticated with the bootstrap (registration) token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RegisterRequest {
    /// Operator-chosen agent name (e.g. the host or pod name); not blank.
    #[schemars(length(min = 1), regex(pattern = r"\S"))]
    pub name: String,
    /// krawl version, e.g. `0.1.0 (abc1234)`.
    pub version: String,
    /// Job kinds this agent runs (see [`JobKind`]).
    pub capabilities: Vec<String>,
    /// Labels the control plane routes on (e.g. `env=prod`): a job runs only on agents carrying
    /// all its labels. Set once, here: the reference control plane accepts only labels the
    /// bootstrap token grants (`403` otherwise) and no later request changes them.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How many jobs the agent runs at once.
    pub max_concurrent_jobs: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RegisterResponse {
    pub agent_id: String,
    /// Bearer token for every later call of this agent (poll, heartbeats, chunks, complete):
    /// agents send it instead of the bootstrap token, which the reference control plane accepts
    /// for `register` only. A credential: the agent keeps it in memory only and never logs it.
    /// A `404` on an agent endpoint means the control plane no longer knows this agent: register
    /// again.
    pub agent_token: String,
    /// How long the server holds a poll open (seconds).
    pub poll_wait_secs: u32,
    /// How often the agent should send an agent heartbeat (seconds).
    pub heartbeat_interval_secs: u32,
}

/// `POST /v1/agents/{agent_id}/poll`: "I can take a job". The server answers `200` with a
/// [`JobLease`] as soon as one is queued for this agent, or `204` after about
/// [`RegisterResponse::poll_wait_secs`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PollRequest {
    /// Free job slots (the agent polls only when this is at least 1).
    pub free_slots: u32,
    /// Job kinds the agent can take now.
    #[serde(default)]
    pub kinds: Vec<String>,
}

/// A job handed to one agent for one attempt, valid until the lease expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobLease {
    pub job_id: String,
    /// One of the [`JobKind`] strings; an agent answers an unknown kind with an error result.
    pub kind: String,
    /// 1 for the first attempt; a re-queued job comes back with the next number.
    pub attempt: u32,
    /// Seconds until the lease expires unless a job heartbeat extends it.
    pub lease_ttl_secs: u32,
    /// The job's parameters ([`JobSpec`] for the `kafka.*` kinds), kept as raw JSON so that a
    /// malformed spec reaches the agent and is answered with an error result.
    pub spec: serde_json::Value,
}

/// The parameters of every `kafka.*` job: the same keys as the `[kafka]`, `[extract]` and
/// `[schema_registry]` tables of `krawl extract --config` (see `deploy/krawl.example.toml`).
/// Secrets are references (`vault://…`, `aws-sm://…`, `env://…`), resolved by the agent with its
/// own `[secrets]` configuration, and allowed only when the agent's policy permits them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobSpec {
    /// `[kafka]`: bootstrap servers, security protocol, SASL and TLS settings.
    pub kafka: serde_json::Value,
    /// `[extract]`: topic and group filters, batch sizes, what to include.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<serde_json::Value>,
    /// `[schema_registry]`: URL and auth, when the registry is to be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_registry: Option<serde_json::Value>,
}

// ------------------------------------------------------------------------------------------------
// Heartbeats
// ------------------------------------------------------------------------------------------------

/// `POST /v1/jobs/{job_id}/attempts/{attempt}/heartbeat`: progress; extends the lease.
/// Every field defaults (`{}` is a valid heartbeat). A `404` means the attempt is gone (the
/// agent stops it as it does on `409 lease_lost`, without completing it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct JobHeartbeat {
    /// Current phase (e.g. `metadata`, `offsets`, `consumer_groups`, `upload`).
    pub phase: String,
    /// Records produced so far.
    pub records: u64,
    /// Chunks acknowledged so far.
    pub chunks: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobHeartbeatResponse {
    /// Seconds until the (extended) lease expires.
    pub lease_ttl_secs: u32,
    /// `true`: stop the job and complete it with status `cancelled`.
    pub cancel: bool,
}

/// `POST /v1/agents/{agent_id}/heartbeat`. Every field defaults (`{}` is a valid heartbeat).
/// A `404` means the agent is unknown: register again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct AgentHeartbeat {
    /// Jobs running now.
    pub running_jobs: u32,
    /// `true` once the agent has stopped polling (shutting down or draining).
    pub draining: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentHeartbeatResponse {
    /// `true`: stop polling, finish running jobs, then exit.
    pub drain: bool,
}

// ------------------------------------------------------------------------------------------------
// Results
// ------------------------------------------------------------------------------------------------

/// Answer to a chunk `PUT`. The chunk is keyed by (job, attempt, seq): a repeated `PUT` with the
/// same sha256 is acknowledged again with `duplicate: true` and stored once; a different body
/// for a stored sequence number is refused with `409`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChunkAck {
    pub seq: u32,
    pub duplicate: bool,
}

/// The chunks the server holds for one attempt (so a restarted upload can skip them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChunkList {
    pub chunks: Vec<ChunkInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChunkInfo {
    pub seq: u32,
    pub records: u64,
    pub sha256: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompletionStatus {
    /// Every record was uploaded.
    Succeeded,
    /// The job failed; `error` says why. Not retried by the reference control plane when the
    /// class is permanent (config, authentication, authorization, secret, invalid_job, policy).
    /// Other classes are re-queued while attempts remain.
    Failed,
    /// The agent stopped before the job finished (shutdown): re-queue it.
    Interrupted,
    /// The control plane asked for cancellation and the agent stopped.
    Cancelled,
}

/// Why a job failed: a stable class plus an actionable message (never a secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobError {
    /// dns, connection_refused, tls, authentication, authorization, timeout, secret, config,
    /// policy, invalid_job, output, interrupted, cancelled, other; and lease_expired, which the
    /// control plane (not the agent) records on an attempt whose lease ran out.
    pub class: String,
    pub message: String,
}

/// `POST /v1/jobs/{job_id}/attempts/{attempt}/complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompleteRequest {
    pub status: CompletionStatus,
    /// Chunks uploaded (sequence numbers 0..chunks).
    pub chunks: u32,
    /// Records in the whole stream.
    pub records: u64,
    /// sha256 (lower-case hex) of the whole decoded stream: every chunk's NDJSON bytes in
    /// sequence order.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompleteResponse {
    /// The job's state after this completion (see [`JobState`]).
    pub state: JobState,
}

// ------------------------------------------------------------------------------------------------
// Admin API (jobs as the control plane's users see them)
// ------------------------------------------------------------------------------------------------

/// Lifecycle of a job in the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            other => return Err(format!("unknown job state {other:?}")),
        })
    }
}

/// `POST /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubmitJob {
    /// One of the [`JobKind`] strings (not checked by the control plane: the agent answers an
    /// unknown kind with an error result); not blank.
    #[schemars(length(min = 1), regex(pattern = r"\S"))]
    pub kind: String,
    /// The job's parameters. For the `kafka.*` kinds a [`JobSpec`] matching
    /// `schema/job-spec.schema.json` (the reference control plane refuses any other shape,
    /// naming the position: literal credentials in any JSON type, unknown keys, properties an
    /// agent does not pass through, URLs with credentials); for other kinds any JSON without
    /// literal values under credential-named keys. The agent answers a malformed spec with an
    /// error result.
    pub spec: serde_json::Value,
    /// Only agents carrying all these labels get the job.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Attempts before the job fails for good (default 3); at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_attempts: Option<u32>,
    /// Lease TTL in seconds (default 60); job heartbeats extend it. At least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub lease_ttl_secs: Option<u32>,
}

/// One attempt of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AttemptView {
    pub attempt: u32,
    pub agent_id: String,
    /// running, succeeded, failed, interrupted, cancelled, expired.
    pub state: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub chunks: u32,
    pub records: u64,
    pub error: Option<JobError>,
}

/// A job as `GET /v1/jobs/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobView {
    pub id: String,
    pub kind: String,
    /// The labels the job was submitted with (only agents carrying them get it).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub state: JobState,
    pub created_at: String,
    pub updated_at: String,
    pub max_attempts: u32,
    pub attempts: Vec<AttemptView>,
    /// Last progress reported by the running attempt.
    pub progress: Option<JobHeartbeat>,
    /// Records, chunks and sha256 of the accepted result stream once succeeded.
    pub result: Option<ResultSummary>,
    /// Why the job failed, when it did.
    pub error: Option<JobError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResultSummary {
    pub attempt: u32,
    pub chunks: u32,
    pub records: u64,
    pub sha256: String,
    /// Compressed bytes received.
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub version: String,
    pub capabilities: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub registered_at: String,
    pub last_seen_at: String,
    pub running_jobs: u32,
    pub draining: bool,
    /// Name of the bootstrap token the agent registered with: its labels are within that
    /// token's grant. Absent for agents registered before tokens had names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentList {
    pub agents: Vec<AgentView>,
}

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

/// Body of every 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable code: unauthorized, forbidden, not_found, bad_request, conflict, too_large,
    /// lease_lost, rate_limited, unavailable, internal.
    pub code: String,
    /// What was wrong and what to do.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_kinds_round_trip_and_unknown_is_named() {
        for kind in JobKind::ALL {
            assert_eq!(kind.as_str().parse::<JobKind>(), Ok(kind));
        }
        let err = "kafka.produce".parse::<JobKind>().unwrap_err();
        assert!(err.to_string().contains("\"kafka.produce\""));
        assert!(err.to_string().contains("kafka.list_topics"));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let lease: JobLease = serde_json::from_str(
            r#"{"job_id":"j1","kind":"kafka.extract","attempt":2,"lease_ttl_secs":60,
                "spec":{"kafka":{}},"added_later":true}"#,
        )
        .unwrap();
        assert_eq!(lease.attempt, 2);
    }

    #[test]
    fn empty_heartbeats_are_valid() {
        let job: JobHeartbeat = serde_json::from_str("{}").unwrap();
        assert_eq!(job, JobHeartbeat::default());
        let agent: AgentHeartbeat = serde_json::from_str("{}").unwrap();
        assert_eq!(agent, AgentHeartbeat::default());
        let partial: JobHeartbeat = serde_json::from_str(r#"{"records":7}"#).unwrap();
        assert_eq!((partial.records, partial.phase.as_str()), (7, ""));
    }

    #[test]
    fn states_round_trip() {
        for s in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
