//! Durable state in SQLite: agents, jobs, attempts and result chunks.
//!
//! Every function here takes the connection, runs its statements (in one transaction when it
//! reads and then writes) and returns protocol types or an [`ApiError`]; the HTTP layer
//! (`api.rs`) only authenticates, parses and calls them. The connection lives behind a mutex and
//! every call runs on a blocking thread ([`Store::call`]), so two requests never interleave
//! inside one transaction: leasing cannot hand a job to two agents. Nothing slow runs under
//! that lock: a completion's stream verification ([`verify_stream`]) takes it for one chunk
//! read at a time and decodes and hashes without it.
//!
//! Lifecycle of a job: `queued` → (`poll` leases it: attempt n, `running`) → `succeeded` |
//! `failed` | `cancelled`, or back to `queued` when the attempt fails with a transient error,
//! is interrupted, or its lease expires — until `max_attempts` attempts have failed.
//!
//! Times are stored as milliseconds since the Unix epoch and shown as RFC 3339 UTC.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use krawl_protocol::chunk::{self, Encoding, StreamHash};
use krawl_protocol::{
    AgentHeartbeat, AgentList, AgentView, AttemptView, ChunkAck, ChunkInfo, ChunkList,
    CompleteRequest, CompletionStatus, JobError, JobHeartbeat, JobHeartbeatResponse, JobLease,
    JobList, JobState, JobView, RegisterRequest, ResultSummary, SubmitJob, MAX_CHUNK_DECODED_BYTES,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::ApiError;
use crate::running_hash::Prefix;
use crate::tokens::{BootstrapToken, TokenOrigin, LEGACY_TOKEN_NAME};

/// Error classes that no retry can fix: the job fails at once.
pub const PERMANENT_ERROR_CLASSES: &[&str] = &[
    "config",
    "authentication",
    "authorization",
    "secret",
    "invalid_job",
    "policy",
];

/// Schema migrations, applied in order; `PRAGMA user_version` is the number applied so far.
/// Never edit a released migration: append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE agents (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    version             TEXT NOT NULL,
    capabilities        TEXT NOT NULL,              -- JSON array of job kinds
    labels              TEXT NOT NULL,              -- JSON object
    max_concurrent_jobs INTEGER NOT NULL,
    token_sha256        TEXT NOT NULL,              -- never the token itself
    registered_at       INTEGER NOT NULL,
    last_seen_at        INTEGER NOT NULL,
    running_jobs        INTEGER NOT NULL DEFAULT 0,
    draining            INTEGER NOT NULL DEFAULT 0, -- reported by the agent
    drain_requested     INTEGER NOT NULL DEFAULT 0  -- set by an admin
);
CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT, -- queue order
    id               TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL,
    spec             TEXT NOT NULL,                     -- raw JSON, handed to the agent as is
    labels           TEXT NOT NULL,                     -- JSON object
    state            TEXT NOT NULL,
    max_attempts     INTEGER NOT NULL,
    lease_ttl_secs   INTEGER NOT NULL,
    current_attempt  INTEGER NOT NULL DEFAULT 0,        -- 0: never leased
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress         TEXT,                              -- JSON JobHeartbeat
    result           TEXT,                              -- JSON ResultSummary
    error            TEXT,                              -- JSON JobError
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX jobs_by_state ON jobs(state, seq);
CREATE TABLE attempts (
    job_id           TEXT NOT NULL REFERENCES jobs(id),
    attempt          INTEGER NOT NULL,
    agent_id         TEXT NOT NULL REFERENCES agents(id),
    state            TEXT NOT NULL, -- running, succeeded, failed, interrupted, cancelled, expired
    started_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    lease_expires_at INTEGER NOT NULL,
    chunks           INTEGER NOT NULL DEFAULT 0,
    records          INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    PRIMARY KEY (job_id, attempt)
);
CREATE INDEX attempts_by_lease ON attempts(state, lease_expires_at);
CREATE TABLE chunks (
    job_id      TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    sha256      TEXT NOT NULL,    -- of the decoded NDJSON
    records     INTEGER NOT NULL,
    encoding    TEXT NOT NULL,    -- Content-Encoding of body
    body        BLOB NOT NULL,    -- as received (compressed)
    received_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt, seq),
    FOREIGN KEY (job_id, attempt) REFERENCES attempts(job_id, attempt)
);
"#,
    // 2: agents are found by the hash of the token they present (authentication comes first).
    r#"
CREATE INDEX agents_by_token ON agents(token_sha256);
"#,
    // 3: the bootstrap token each agent registered with (its labels are that token's grant), and
    // registrations revoked because their token or grant is no longer configured.
    r#"
ALTER TABLE agents ADD COLUMN bootstrap_token TEXT; -- name; NULL: registered before names
ALTER TABLE agents ADD COLUMN revoked TEXT;         -- why; NULL: the registration stands
"#,
    // 4: per-attempt quotas: stored (compressed) bytes, and why a chunk was refused over a quota
    // (such an attempt's job is not retried).
    r#"
ALTER TABLE attempts ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN over_quota TEXT;
UPDATE attempts SET bytes = (SELECT COALESCE(SUM(LENGTH(body)), 0) FROM chunks c
                             WHERE c.job_id = attempts.job_id AND c.attempt = attempts.attempt)
 WHERE state = 'running';
"#,
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("the database {path} has schema version {found}, newer than this krawl understands ({known}); use a newer krawl or another --db")]
    TooNew {
        path: String,
        found: i64,
        known: usize,
    },
    #[error("migrating the database {path} to schema version {version} failed: {source}")]
    Migrate {
        path: String,
        version: usize,
        source: rusqlite::Error,
    },
}

/// The database handle shared by the request handlers and the lease reaper.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) and migrates the database, in WAL mode with full syncs, so that
    /// a killed server loses nothing it acknowledged.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let open_err = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        migrate(&mut conn, &shown)?;
        grant_restart_grace(&conn, now_ms()).map_err(open_err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection, on the calling thread: for code already on a blocking
    /// thread that takes the lock for one short step at a time (stream verification).
    fn with_conn<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn call<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, ApiError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| ApiError::internal(format!("database task failed: {e}")))?
    }
}

fn migrate(conn: &mut Connection, path: &str) -> Result<(), StoreError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|source| StoreError::Open {
            path: path.to_string(),
            source,
        })?;
    let applied = usize::try_from(found).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::TooNew {
            path: path.to_string(),
            found,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let version = i + 1;
        let err = |source| StoreError::Migrate {
            path: path.to_string(),
            version,
            source,
        };
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", version as i64)
            .map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::info!(version, "database migrated");
    }
    Ok(())
}

/// After a restart, running attempts get at least one full lease TTL from now: their agents
/// could not heartbeat while the server was down, and should be able to continue.
fn grant_restart_grace(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    let n = conn.execute(
        "UPDATE attempts SET lease_expires_at = MAX(lease_expires_at,
             ?1 + 1000 * (SELECT lease_ttl_secs FROM jobs WHERE jobs.id = attempts.job_id))
         WHERE state = 'running'",
        params![now],
    )?;
    if n > 0 {
        tracing::info!(
            attempts = n,
            "running attempts keep their lease after the restart"
        );
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Time
// ------------------------------------------------------------------------------------------------

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 UTC with milliseconds.
pub fn fmt_ts(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

// ------------------------------------------------------------------------------------------------
// Agents
// ------------------------------------------------------------------------------------------------

/// Registers an agent under a new id; `token_sha256` is the hash of the token it was issued,
/// `bootstrap_token` the name of the bootstrap token it registered with (whose grant its labels
/// were checked against).
pub fn register_agent(
    c: &mut Connection,
    req: &RegisterRequest,
    token_sha256: &str,
    bootstrap_token: &str,
    now: i64,
) -> Result<String, ApiError> {
    let id = format!("agent-{}", uuid::Uuid::new_v4());
    c.execute(
        "INSERT INTO agents (id, name, version, capabilities, labels, max_concurrent_jobs,
                             token_sha256, registered_at, last_seen_at, bootstrap_token)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)",
        params![
            id,
            req.name,
            req.version,
            serde_json::to_string(&req.capabilities)?,
            serde_json::to_string(&req.labels)?,
            req.max_concurrent_jobs,
            token_sha256,
            now,
            bootstrap_token
        ],
    )?;
    Ok(id)
}

/// An agent whose registration [`revoke_ungranted`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Revoked {
    pub agent_id: String,
    pub name: String,
    pub reason: String,
}

/// At start: revokes every registration whose labels the configured bootstrap tokens no longer
/// grant (its token was removed or its grant narrowed; agents registered before tokens had names
/// are checked against the `--bootstrap-token-file` token). A revoked agent's token stops
/// working, so the agent registers again, under today's grants. `tokens` need only their names,
/// grants and origins (not their values). Returns what was revoked.
pub fn revoke_ungranted(
    c: &mut Connection,
    tokens: &[BootstrapToken],
) -> Result<Vec<Revoked>, ApiError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let agents: Vec<(String, String, String, Option<String>)> = {
        let mut stmt = tx.prepare(
            "SELECT id, name, labels, bootstrap_token FROM agents WHERE revoked IS NULL",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut revoked = Vec::new();
    for (agent_id, name, labels, token_name) in agents {
        let labels: BTreeMap<String, String> = serde_json::from_str(&labels)?;
        let shown = token_name.as_deref().unwrap_or(LEGACY_TOKEN_NAME);
        let token = match &token_name {
            Some(n) => tokens.iter().find(|t| &t.name == n),
            None => tokens.iter().find(|t| t.origin == TokenOrigin::Single),
        };
        let reason = match token {
            None => format!("its bootstrap token `{shown}` is no longer configured"),
            Some(t) => match t.check_claim(&labels) {
                Ok(()) => continue,
                Err(_) => format!(
                    "its bootstrap token `{shown}` no longer grants the labels it claimed ({})",
                    labels
                        .keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        };
        tx.execute(
            "UPDATE agents SET revoked = ?2 WHERE id = ?1",
            params![agent_id, reason],
        )?;
        revoked.push(Revoked {
            agent_id,
            name,
            reason,
        });
    }
    tx.commit()?;
    Ok(revoked)
}

/// The agent whose token hashes to `token_sha256`; `None` when no agent holds it.
///
/// An indexed lookup by hash: its timing depends on the sha256 of the presented token, which a
/// caller cannot steer towards a stored one, so it tells nothing about the stored tokens. The
/// match is confirmed with the constant-time comparison all token checks use.
pub fn agent_by_token(c: &mut Connection, token_sha256: &str) -> Result<Option<String>, ApiError> {
    let row: Option<(String, String)> = c
        .query_row(
            "SELECT id, token_sha256 FROM agents WHERE token_sha256 = ?1 AND revoked IS NULL",
            params![token_sha256],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row
        .filter(|(_, stored)| crate::auth::hashes_equal(stored, token_sha256))
        .map(|(id, _)| id))
}

/// What a poll needs to know about the polling agent.
#[derive(Debug)]
pub struct PollingAgent {
    pub labels: BTreeMap<String, String>,
    pub drain_requested: bool,
}

/// Records that the agent polled and returns its labels and drain flag.
pub fn agent_polled(
    c: &mut Connection,
    agent_id: &str,
    now: i64,
) -> Result<PollingAgent, ApiError> {
    c.execute(
        "UPDATE agents SET last_seen_at = ?2 WHERE id = ?1",
        params![agent_id, now],
    )?;
    let (labels, drain): (String, bool) = c.query_row(
        "SELECT labels, drain_requested FROM agents WHERE id = ?1",
        params![agent_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(PollingAgent {
        labels: serde_json::from_str(&labels)?,
        drain_requested: drain,
    })
}

/// Stores an agent heartbeat; answers whether an admin asked the agent to drain.
pub fn agent_heartbeat(
    c: &mut Connection,
    agent_id: &str,
    hb: &AgentHeartbeat,
    now: i64,
) -> Result<bool, ApiError> {
    c.execute(
        "UPDATE agents SET last_seen_at = ?2, running_jobs = ?3, draining = ?4 WHERE id = ?1",
        params![agent_id, now, hb.running_jobs, hb.draining],
    )?;
    Ok(c.query_row(
        "SELECT drain_requested FROM agents WHERE id = ?1",
        params![agent_id],
        |r| r.get(0),
    )?)
}

/// Asks an agent to drain: its next heartbeat answers `drain: true` and polls get no jobs.
pub fn request_drain(c: &mut Connection, agent_id: &str) -> Result<(), ApiError> {
    let n = c.execute(
        "UPDATE agents SET drain_requested = 1 WHERE id = ?1",
        params![agent_id],
    )?;
    if n == 0 {
        return Err(ApiError::not_found(format!("no agent {agent_id:?}")));
    }
    tracing::info!(agent_id, "drain requested");
    Ok(())
}

pub fn list_agents(c: &mut Connection) -> Result<AgentList, ApiError> {
    let mut stmt = c.prepare(
        "SELECT id, name, version, capabilities, labels, registered_at, last_seen_at,
                running_jobs, draining, drain_requested, bootstrap_token
         FROM agents WHERE revoked IS NULL ORDER BY registered_at, id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
            r.get::<_, u32>(7)?,
            r.get::<_, bool>(8)?,
            r.get::<_, bool>(9)?,
            r.get::<_, Option<String>>(10)?,
        ))
    })?;
    let mut agents = Vec::new();
    for row in rows {
        let (id, name, version, caps, labels, reg, seen, running, draining, drain_req, token) =
            row?;
        agents.push(AgentView {
            id,
            name,
            version,
            capabilities: serde_json::from_str(&caps)?,
            labels: serde_json::from_str(&labels)?,
            registered_at: fmt_ts(reg),
            last_seen_at: fmt_ts(seen),
            running_jobs: running,
            draining: draining || drain_req,
            bootstrap_token: token,
        });
    }
    Ok(AgentList { agents })
}

// ------------------------------------------------------------------------------------------------
// Jobs: submit, lease, view, cancel
// ------------------------------------------------------------------------------------------------

/// Defaults for what a [`SubmitJob`] leaves out.
#[derive(Debug, Clone, Copy)]
pub struct JobDefaults {
    pub max_attempts: u32,
    pub lease_ttl_secs: u32,
}

pub fn submit_job(
    c: &mut Connection,
    job: &SubmitJob,
    defaults: JobDefaults,
    now: i64,
) -> Result<JobView, ApiError> {
    if job.kind.trim().is_empty() {
        return Err(ApiError::bad_request(
            "field `kind` is empty: give a job kind such as kafka.extract",
        ));
    }
    let max_attempts = job.max_attempts.unwrap_or(defaults.max_attempts);
    if max_attempts == 0 {
        return Err(ApiError::bad_request(
            "field `max_attempts` must be at least 1",
        ));
    }
    let lease_ttl_secs = job.lease_ttl_secs.unwrap_or(defaults.lease_ttl_secs);
    if lease_ttl_secs == 0 {
        return Err(ApiError::bad_request(
            "field `lease_ttl_secs` must be at least 1",
        ));
    }
    let id = format!("job-{}", uuid::Uuid::new_v4());
    c.execute(
        "INSERT INTO jobs (id, kind, spec, labels, state, max_attempts, lease_ttl_secs,
                           created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7, ?7)",
        params![
            id,
            job.kind,
            serde_json::to_string(&job.spec)?,
            serde_json::to_string(&job.labels)?,
            max_attempts,
            lease_ttl_secs,
            now
        ],
    )?;
    tracing::info!(job_id = %id, kind = %job.kind, "job submitted");
    job_view(c, &id)
}

/// Leases the oldest queued job this agent may run, in one immediate transaction.
///
/// A job matches when every one of its labels is among the agent's labels, and its kind is in
/// `kinds` (any kind when `kinds` is empty). The queue is scanned in order; fine for a reference
/// server, an index on labels would be the next step.
pub fn try_lease(
    c: &mut Connection,
    agent_id: &str,
    agent_labels: &BTreeMap<String, String>,
    kinds: &[String],
    now: i64,
) -> Result<Option<JobLease>, ApiError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut found = None;
    {
        let mut stmt = tx.prepare(
            "SELECT id, kind, spec, labels, lease_ttl_secs, current_attempt
             FROM jobs WHERE state = 'queued' ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let kind: String = r.get(1)?;
            if !kinds.is_empty() && !kinds.contains(&kind) {
                continue;
            }
            let labels: BTreeMap<String, String> = serde_json::from_str(&r.get::<_, String>(3)?)?;
            if !labels.iter().all(|(k, v)| agent_labels.get(k) == Some(v)) {
                continue;
            }
            found = Some((
                r.get::<_, String>(0)?,
                kind,
                r.get::<_, String>(2)?,
                r.get::<_, u32>(4)?,
                r.get::<_, u32>(5)?,
            ));
            break;
        }
    }
    let Some((job_id, kind, spec, ttl, previous)) = found else {
        return Ok(None);
    };
    let attempt = previous + 1;
    tx.execute(
        "UPDATE jobs SET state = 'running', current_attempt = ?2, progress = NULL, updated_at = ?3
         WHERE id = ?1",
        params![job_id, attempt, now],
    )?;
    tx.execute(
        "INSERT INTO attempts (job_id, attempt, agent_id, state, started_at, lease_expires_at)
         VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
        params![job_id, attempt, agent_id, now, now + 1000 * i64::from(ttl)],
    )?;
    tx.commit()?;
    tracing::info!(%job_id, agent_id, attempt, "job leased");
    Ok(Some(JobLease {
        job_id,
        kind,
        attempt,
        lease_ttl_secs: ttl,
        spec: serde_json::from_str(&spec)?,
    }))
}

pub fn job_view(c: &Connection, job_id: &str) -> Result<JobView, ApiError> {
    let row = c
        .query_row(
            "SELECT kind, state, created_at, updated_at, max_attempts, progress, result, error,
                    labels
             FROM jobs WHERE id = ?1",
            params![job_id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, String>(8)?,
                ))
            },
        )
        .optional()?;
    let Some((kind, state, created, updated, max_attempts, progress, result, error, labels)) = row
    else {
        return Err(ApiError::not_found(format!("no job {job_id:?}")));
    };
    let mut stmt = c.prepare(
        "SELECT attempt, agent_id, state, started_at, finished_at, chunks, records, error
         FROM attempts WHERE job_id = ?1 ORDER BY attempt",
    )?;
    let rows = stmt.query_map(params![job_id], |r| {
        Ok((
            r.get::<_, u32>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, u32>(5)?,
            r.get::<_, u64>(6)?,
            r.get::<_, Option<String>>(7)?,
        ))
    })?;
    let mut attempts = Vec::new();
    for row in rows {
        let (attempt, agent_id, state, started, finished, chunks, records, error) = row?;
        attempts.push(AttemptView {
            attempt,
            agent_id,
            state,
            started_at: fmt_ts(started),
            finished_at: finished.map(fmt_ts),
            chunks,
            records,
            error: error.as_deref().map(serde_json::from_str).transpose()?,
        });
    }
    Ok(JobView {
        id: job_id.to_string(),
        kind,
        labels: serde_json::from_str(&labels)?,
        state: parse_state(&state)?,
        created_at: fmt_ts(created),
        updated_at: fmt_ts(updated),
        max_attempts,
        attempts,
        progress: progress.as_deref().map(serde_json::from_str).transpose()?,
        result: result.as_deref().map(serde_json::from_str).transpose()?,
        error: error.as_deref().map(serde_json::from_str).transpose()?,
    })
}

fn parse_state(s: &str) -> Result<JobState, ApiError> {
    s.parse()
        .map_err(|e: String| ApiError::internal(format!("stored job state: {e}")))
}

pub fn list_jobs(c: &mut Connection) -> Result<JobList, ApiError> {
    let ids: Vec<String> = {
        let mut stmt = c.prepare("SELECT id FROM jobs ORDER BY seq")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let jobs = ids
        .iter()
        .map(|id| job_view(c, id))
        .collect::<Result<_, _>>()?;
    Ok(JobList { jobs })
}

/// Cancels a queued job at once; a running job is flagged, and the next job heartbeat tells its
/// agent to stop (the job becomes `cancelled` when the agent completes, or its lease expires).
pub fn cancel_job(c: &mut Connection, job_id: &str, now: i64) -> Result<JobView, ApiError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let state: Option<String> = tx
        .query_row(
            "SELECT state FROM jobs WHERE id = ?1",
            params![job_id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(state) = state else {
        return Err(ApiError::not_found(format!("no job {job_id:?}")));
    };
    match parse_state(&state)? {
        JobState::Queued => {
            tx.execute(
                "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, updated_at = ?2 WHERE id = ?1",
                params![job_id, now],
            )?;
        }
        JobState::Running => {
            tx.execute(
                "UPDATE jobs SET cancel_requested = 1, updated_at = ?2 WHERE id = ?1",
                params![job_id, now],
            )?;
        }
        terminal => {
            return Err(ApiError::conflict(format!(
                "job {job_id} is already {}; only queued or running jobs can be cancelled",
                terminal.as_str()
            )))
        }
    }
    tx.commit()?;
    tracing::info!(job_id, "job cancellation requested");
    job_view(c, job_id)
}

// ------------------------------------------------------------------------------------------------
// Attempts: lease checks, heartbeats, chunks, completion, expiry
// ------------------------------------------------------------------------------------------------

/// Whether `agent_id` holds attempt `attempt` of `job_id` (false when there is no such attempt).
pub fn attempt_held_by(
    c: &mut Connection,
    job_id: &str,
    attempt: u32,
    agent_id: &str,
) -> Result<bool, ApiError> {
    Ok(c.query_row(
        "SELECT 1 FROM attempts WHERE job_id = ?1 AND attempt = ?2 AND agent_id = ?3",
        params![job_id, attempt, agent_id],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// What the attempt endpoints need about a live attempt.
#[derive(Debug)]
struct LiveAttempt {
    lease_ttl_secs: u32,
    cancel_requested: bool,
}

/// Refuses (409 `lease_lost`) an attempt that is not the job's current running attempt with a
/// valid lease.
fn live_attempt(
    c: &Connection,
    job_id: &str,
    attempt: u32,
    now: i64,
) -> Result<LiveAttempt, ApiError> {
    let row = c
        .query_row(
            "SELECT j.current_attempt, j.lease_ttl_secs, j.cancel_requested, a.state, a.lease_expires_at
             FROM jobs j JOIN attempts a ON a.job_id = j.id
             WHERE j.id = ?1 AND a.attempt = ?2",
            params![job_id, attempt],
            |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((current, ttl, cancel_requested, state, expires)) = row else {
        return Err(ApiError::not_found(format!(
            "no attempt {attempt} of job {job_id:?}"
        )));
    };
    if current != attempt {
        return Err(ApiError::lease_lost(format!(
            "attempt {attempt} of job {job_id} is no longer current (attempt {current} is); stop it and drop its results"
        )));
    }
    if state != "running" {
        return Err(ApiError::lease_lost(format!(
            "attempt {attempt} of job {job_id} has ended ({state}); stop it and drop its results"
        )));
    }
    if expires <= now {
        return Err(ApiError::lease_lost(format!(
            "the lease of attempt {attempt} of job {job_id} expired at {}; the job will be re-queued, stop this attempt",
            fmt_ts(expires)
        )));
    }
    Ok(LiveAttempt {
        lease_ttl_secs: ttl,
        cancel_requested,
    })
}

/// Extends the lease, stores the progress and says whether an admin cancelled the job.
pub fn job_heartbeat(
    c: &mut Connection,
    job_id: &str,
    attempt: u32,
    hb: &JobHeartbeat,
    now: i64,
) -> Result<JobHeartbeatResponse, ApiError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let live = live_attempt(&tx, job_id, attempt, now)?;
    tx.execute(
        "UPDATE attempts SET lease_expires_at = ?3 WHERE job_id = ?1 AND attempt = ?2",
        params![job_id, attempt, now + 1000 * i64::from(live.lease_ttl_secs)],
    )?;
    tx.execute(
        "UPDATE jobs SET progress = ?2, updated_at = ?3 WHERE id = ?1",
        params![job_id, serde_json::to_string(hb)?, now],
    )?;
    tx.commit()?;
    Ok(JobHeartbeatResponse {
        lease_ttl_secs: live.lease_ttl_secs,
        cancel: live.cancel_requested,
    })
}

/// A chunk whose body was decoded and verified against its sha256 and record count.
#[derive(Debug)]
pub struct VerifiedChunk {
    pub seq: u32,
    pub sha256: String,
    pub records: u64,
    pub encoding: Encoding,
    pub body: Vec<u8>,
}

/// What one attempt may store: chunks and compressed bytes (`--max-attempt-chunks`,
/// `--max-attempt-bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub max_chunks: u32,
    pub max_bytes: u64,
}

/// Why storing chunk `seq` (`len` compressed bytes) would take the attempt past its quota;
/// `None` when it fits, or when `seq` is already stored (a repeat is answered as a duplicate or
/// a conflict, never counted twice).
fn over_quota(
    c: &Connection,
    job_id: &str,
    attempt: u32,
    seq: u32,
    len: u64,
    quota: Quota,
) -> Result<Option<String>, ApiError> {
    let stored: bool = c
        .query_row(
            "SELECT 1 FROM chunks WHERE job_id = ?1 AND attempt = ?2 AND seq = ?3",
            params![job_id, attempt, seq],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if stored {
        return Ok(None);
    }
    let (chunks, bytes): (u64, u64) = c.query_row(
        "SELECT chunks, bytes FROM attempts WHERE job_id = ?1 AND attempt = ?2",
        params![job_id, attempt],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let what_to_do = "this job's result is more than the control plane accepts from one attempt, \
         so the job fails without a retry; raise the limit, or narrow the job (its extract filters)";
    if chunks >= u64::from(quota.max_chunks) {
        return Ok(Some(format!(
            "chunk {seq} refused: attempt {attempt} of job {job_id} already holds {chunks} chunks, \
             the most one attempt may store (--max-attempt-chunks {} on the control plane); {what_to_do}",
            quota.max_chunks
        )));
    }
    if bytes.saturating_add(len) > quota.max_bytes {
        return Ok(Some(format!(
            "chunk {seq} refused: its {len} bytes would take attempt {attempt} of job {job_id} to \
             {} stored bytes, over the limit of {} bytes per attempt (--max-attempt-bytes on the \
             control plane); {what_to_do}",
            bytes.saturating_add(len),
            quota.max_bytes
        )));
    }
    Ok(None)
}

/// Records that the attempt went over its quota (its job is then not retried) and returns the
/// 413 to answer.
fn refuse_over_quota(
    c: &Connection,
    job_id: &str,
    attempt: u32,
    reason: String,
) -> Result<ApiError, ApiError> {
    c.execute(
        "UPDATE attempts SET over_quota = ?3 WHERE job_id = ?1 AND attempt = ?2",
        params![job_id, attempt, reason],
    )?;
    tracing::warn!(job_id, attempt, reason = %reason, "chunk refused over the attempt's quota");
    Ok(ApiError::too_large(reason))
}

/// Checks the attempt's lease and quota before a chunk of `len` bytes is decoded (to fail fast);
/// changes nothing but the record of a quota refusal.
pub fn check_live(
    c: &mut Connection,
    job_id: &str,
    attempt: u32,
    seq: u32,
    len: u64,
    quota: Quota,
    now: i64,
) -> Result<(), ApiError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    live_attempt(&tx, job_id, attempt, now)?;
    if let Some(reason) = over_quota(&tx, job_id, attempt, seq, len, quota)? {
        let refusal = refuse_over_quota(&tx, job_id, attempt, reason)?;
        tx.commit()?;
        return Err(refusal);
    }
    Ok(())
}

/// Stores a chunk once; the same sha256 again is a duplicate, a different one a conflict; a new
/// chunk past the attempt's [`Quota`] is refused (413).
pub fn put_chunk(
    c: &mut Connection,
    job_id: &str,
    attempt: u32,
    chunk: &VerifiedChunk,
    quota: Quota,
    now: i64,
) -> Result<ChunkAck, ApiError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    live_attempt(&tx, job_id, attempt, now)?;
    let len = chunk.body.len() as u64;
    if let Some(reason) = over_quota(&tx, job_id, attempt, chunk.seq, len, quota)? {
        let refusal = refuse_over_quota(&tx, job_id, attempt, reason)?;
        tx.commit()?;
        return Err(refusal);
    }
    let stored: Option<String> = tx
        .query_row(
            "SELECT sha256 FROM chunks WHERE job_id = ?1 AND attempt = ?2 AND seq = ?3",
            params![job_id, attempt, chunk.seq],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(stored) = stored {
        if stored.eq_ignore_ascii_case(&chunk.sha256) {
            return Ok(ChunkAck {
                seq: chunk.seq,
                duplicate: true,
            });
        }
        return Err(ApiError::conflict(format!(
            "chunk {} of attempt {attempt} of job {job_id} is already stored with sha256 {stored}; this body hashes to {}. A sequence number cannot be reused for different data",
            chunk.seq, chunk.sha256
        )));
    }
    tx.execute(
        "INSERT INTO chunks (job_id, attempt, seq, sha256, records, encoding, body, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            job_id,
            attempt,
            chunk.seq,
            chunk.sha256.to_ascii_lowercase(),
            chunk.records,
            chunk.encoding.header_value(),
            chunk.body,
            now
        ],
    )?;
    tx.execute(
        "UPDATE attempts SET chunks = chunks + 1, records = records + ?3, bytes = bytes + ?4
         WHERE job_id = ?1 AND attempt = ?2",
        params![job_id, attempt, chunk.records, len],
    )?;
    tx.commit()?;
    tracing::debug!(
        job_id,
        attempt,
        seq = chunk.seq,
        records = chunk.records,
        "chunk stored"
    );
    Ok(ChunkAck {
        seq: chunk.seq,
        duplicate: false,
    })
}

pub fn list_chunks(c: &mut Connection, job_id: &str, attempt: u32) -> Result<ChunkList, ApiError> {
    let mut stmt = c.prepare(
        "SELECT seq, records, sha256 FROM chunks WHERE job_id = ?1 AND attempt = ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![job_id, attempt], |r| {
        Ok(ChunkInfo {
            seq: r.get(0)?,
            records: r.get(1)?,
            sha256: r.get(2)?,
        })
    })?;
    Ok(ChunkList {
        chunks: rows.collect::<Result<_, _>>()?,
    })
}

/// What a completion did: the job's new state, and for a refused `succeeded` the reason.
#[derive(Debug)]
pub struct Completion {
    pub state: JobState,
    /// `Some`: the `succeeded` claim did not match the stored chunks (answered with 400).
    pub rejected: Option<String>,
}

/// The chunks an attempt holds, in brief: chunks are never changed or removed while the attempt
/// runs, only added, so an equal count means the same set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSet {
    pub count: u64,
    pub records: u64,
}

fn chunk_set(c: &Connection, job_id: &str, attempt: u32) -> Result<ChunkSet, ApiError> {
    Ok(c.query_row(
        "SELECT COUNT(*), COALESCE(SUM(records), 0) FROM chunks WHERE job_id = ?1 AND attempt = ?2",
        params![job_id, attempt],
        |r| {
            Ok(ChunkSet {
                count: r.get(0)?,
                records: r.get(1)?,
            })
        },
    )?)
}

/// The outcome of verifying a `succeeded` claim outside the lock ([`begin_verification`], then
/// [`verify_stream`]), for [`complete`] to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The stored chunks the verification saw.
    pub set: ChunkSet,
    /// `Ok(compressed bytes)`, or why the claim does not match the stored chunks.
    pub verdict: Result<u64, String>,
}

/// First step of a `succeeded` completion, one short read: the attempt must be live, and the
/// claimed chunk count and record total must match the stored chunk list. Returns the chunk set
/// and, when the claim already fails here, the refusal (no chunk then needs decoding).
pub fn begin_verification(
    c: &mut Connection,
    job_id: &str,
    attempt: u32,
    req: &CompleteRequest,
    now: i64,
) -> Result<(ChunkSet, Result<(), String>), ApiError> {
    let tx = c.transaction()?;
    live_attempt(&tx, job_id, attempt, now)?;
    let stored: Vec<(u32, u64)> = {
        let mut stmt = tx.prepare(
            "SELECT seq, records FROM chunks WHERE job_id = ?1 AND attempt = ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![job_id, attempt], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let set = ChunkSet {
        count: stored.len() as u64,
        records: stored.iter().map(|(_, r)| r).sum(),
    };
    Ok((set, check_claim(&stored, attempt, req)))
}

/// Called (job, attempt, seq) after each chunk a verification has hashed, without the database
/// lock (tests pause verification here to prove that other requests are served meanwhile).
#[derive(Clone)]
pub struct VerifyHook(Arc<HookFn>);

type HookFn = dyn Fn(&str, u32, u32) + Send + Sync;

impl VerifyHook {
    pub fn new(f: impl Fn(&str, u32, u32) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl std::fmt::Debug for VerifyHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyHook")
    }
}

/// Second step, on a blocking thread: hashes the chunks `0..chunks` in order, starting after
/// `from` (the stream hash kept as they arrived, `running_hash.rs`; chunk 0 when nothing was
/// kept), each read one at a time (a short hold of the lock) and decoded and hashed without the
/// lock, and compares the stream sha256 with the claim. `Ok(bytes)` is the compressed size.
pub fn verify_stream(
    store: &Store,
    job_id: &str,
    attempt: u32,
    chunks: u32,
    claimed_sha256: &str,
    hook: Option<&VerifyHook>,
    from: Prefix,
) -> Result<Result<u64, String>, ApiError> {
    // A prefix past the claim (chunks beyond it were stored) cannot be unwound: start over.
    let Prefix { next, mut hash } = if from.next <= chunks {
        from
    } else {
        Prefix::default()
    };
    let mut bytes: u64 = if next > 0 {
        store.with_conn(|c| {
            c.query_row(
                "SELECT COALESCE(SUM(LENGTH(body)), 0) FROM chunks WHERE job_id = ?1 AND attempt = ?2 AND seq < ?3",
                params![job_id, attempt, next],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|b| u64::try_from(b).unwrap_or(0))?
    } else {
        0
    };
    for seq in next..chunks {
        let Some(size) = hash_stored_chunk(store, job_id, attempt, seq, &mut hash)? else {
            // Only a finished (then pruned) job loses chunks: `complete` finds the attempt over.
            return Ok(Err(format!(
                "chunk {seq} of attempt {attempt} disappeared while the completion was verified"
            )));
        };
        bytes += size;
        if let Some(hook) = hook {
            (hook.0)(job_id, attempt, seq);
        }
    }
    let actual = hash.hex();
    if !actual.eq_ignore_ascii_case(claimed_sha256.trim()) {
        return Ok(Err(format!(
            "the completion claims stream sha256 {claimed_sha256} but the uploaded chunks, decoded in sequence order, hash to {actual}"
        )));
    }
    Ok(Ok(bytes))
}

/// Ends the attempt as the agent reports, and moves the job on, in one short transaction.
///
/// A `succeeded` claim comes with what [`begin_verification`] and [`verify_stream`] found
/// without holding the lock; here the attempt is checked to be still live and its chunk set
/// unchanged (a chunk uploaded meanwhile is beyond the claim: the result is refused).
pub fn complete(
    c: &mut Connection,
    job_id: &str,
    attempt: u32,
    req: &CompleteRequest,
    verified: Option<&Verified>,
    now: i64,
) -> Result<Completion, ApiError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    live_attempt(&tx, job_id, attempt, now)?;
    let completion = match req.status {
        CompletionStatus::Succeeded => match succeeded_verdict(&tx, job_id, attempt, verified)? {
            Ok(bytes) => {
                let summary = ResultSummary {
                    attempt,
                    chunks: req.chunks,
                    records: req.records,
                    sha256: req.sha256.to_ascii_lowercase(),
                    bytes,
                };
                end_attempt(&tx, job_id, attempt, "succeeded", None, now)?;
                tx.execute(
                    "UPDATE jobs SET state = 'succeeded', result = ?2, error = NULL, updated_at = ?3
                     WHERE id = ?1",
                    params![job_id, serde_json::to_string(&summary)?, now],
                )?;
                Completion {
                    state: JobState::Succeeded,
                    rejected: None,
                }
            }
            Err(reason) => {
                let error = JobError {
                    class: "output".to_string(),
                    message: format!("the control plane refused the result: {reason}"),
                };
                end_attempt(&tx, job_id, attempt, "failed", Some(&error), now)?;
                let state = requeue_or_fail(&tx, job_id, attempt, &error, now)?;
                Completion {
                    state,
                    rejected: Some(reason),
                }
            }
        },
        CompletionStatus::Failed => {
            let error = req.error.clone().unwrap_or_else(|| JobError {
                class: "other".to_string(),
                message: "the agent reported a failure without an error".to_string(),
            });
            end_attempt(&tx, job_id, attempt, "failed", Some(&error), now)?;
            let state = if PERMANENT_ERROR_CLASSES.contains(&error.class.as_str()) {
                fail_job(&tx, job_id, &error, now)?
            } else {
                requeue_or_fail(&tx, job_id, attempt, &error, now)?
            };
            Completion {
                state,
                rejected: None,
            }
        }
        CompletionStatus::Interrupted => {
            end_attempt(&tx, job_id, attempt, "interrupted", req.error.as_ref(), now)?;
            // An interruption is not the job's fault: it does not use up an attempt.
            let state = requeue(&tx, job_id, attempt, now)?;
            Completion {
                state,
                rejected: None,
            }
        }
        CompletionStatus::Cancelled => {
            end_attempt(&tx, job_id, attempt, "cancelled", req.error.as_ref(), now)?;
            set_state(&tx, job_id, JobState::Cancelled, now)?;
            Completion {
                state: JobState::Cancelled,
                rejected: None,
            }
        }
    };
    tx.commit()?;
    tracing::info!(
        job_id,
        attempt,
        status = ?req.status,
        state = completion.state.as_str(),
        rejected = completion.rejected.as_deref().unwrap_or(""),
        "attempt completed"
    );
    Ok(completion)
}

/// The verdict on a `succeeded` claim, as of now: what the verification found, unless the
/// stored chunk set changed meanwhile.
fn succeeded_verdict(
    c: &Connection,
    job_id: &str,
    attempt: u32,
    verified: Option<&Verified>,
) -> Result<Result<u64, String>, ApiError> {
    let Some(v) = verified else {
        return Err(ApiError::internal(
            "a succeeded completion reached the store unverified; this is a control-plane bug",
        ));
    };
    let now = chunk_set(c, job_id, attempt)?;
    if now != v.set {
        return Ok(Err(format!(
            "chunks were uploaded while the completion was verified (attempt {attempt} held {} chunks, now {}): a completion must come after the last chunk",
            v.set.count, now.count
        )));
    }
    Ok(v.verdict.clone())
}

/// Checks a `succeeded` claim against the stored chunk list: sequence numbers exactly
/// `0..req.chunks` and the record total. `Err(reason)` is a precise refusal.
fn check_claim(stored: &[(u32, u64)], attempt: u32, req: &CompleteRequest) -> Result<(), String> {
    // `req.chunks` comes from the agent: count the missing sequence numbers from what is stored
    // (never materialise `0..req.chunks`, which may be 4 billion long) and name the first few.
    let present = stored.iter().filter(|(seq, _)| *seq < req.chunks).count();
    let missing_count = usize::try_from(req.chunks)
        .unwrap_or(usize::MAX)
        .saturating_sub(present);
    if missing_count > 0 {
        let shown: Vec<u32> = (0..req.chunks)
            .filter(|s| stored.binary_search_by_key(s, |(seq, _)| *seq).is_err())
            .take(LIST_SHOWN)
            .collect();
        return Err(format!(
            "the completion claims {} chunks but chunk(s) {} of attempt {attempt} were never uploaded",
            req.chunks,
            list_u32(&shown, missing_count)
        ));
    }
    let extra: Vec<u32> = stored
        .iter()
        .map(|(seq, _)| *seq)
        .filter(|s| *s >= req.chunks)
        .collect();
    if !extra.is_empty() {
        return Err(format!(
            "the completion claims {} chunks but chunk(s) {} were also uploaded",
            req.chunks,
            list_u32(&extra, extra.len())
        ));
    }
    let total: u64 = stored.iter().map(|(_, r)| r).sum();
    if total != req.records {
        return Err(format!(
            "the completion claims {} records but the {} uploaded chunks hold {total}",
            req.records, req.chunks
        ));
    }
    Ok(())
}

/// How many sequence numbers a refusal names.
const LIST_SHOWN: usize = 20;

/// The first [`LIST_SHOWN`] of `v`, and how many more of `total` there are.
fn list_u32(v: &[u32], total: usize) -> String {
    let mut s = v
        .iter()
        .take(LIST_SHOWN)
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let shown = v.len().min(LIST_SHOWN);
    if total > shown {
        s.push_str(&format!(" and {} more", total - shown));
    }
    s
}

fn end_attempt(
    c: &Connection,
    job_id: &str,
    attempt: u32,
    state: &str,
    error: Option<&JobError>,
    now: i64,
) -> Result<(), ApiError> {
    let error = error.map(serde_json::to_string).transpose()?;
    c.execute(
        "UPDATE attempts SET state = ?3, finished_at = ?4, error = ?5 WHERE job_id = ?1 AND attempt = ?2",
        params![job_id, attempt, state, now, error],
    )?;
    Ok(())
}

fn set_state(
    c: &Connection,
    job_id: &str,
    state: JobState,
    now: i64,
) -> Result<JobState, ApiError> {
    c.execute(
        "UPDATE jobs SET state = ?2, updated_at = ?3 WHERE id = ?1",
        params![job_id, state.as_str(), now],
    )?;
    Ok(state)
}

fn fail_job(
    c: &Connection,
    job_id: &str,
    error: &JobError,
    now: i64,
) -> Result<JobState, ApiError> {
    c.execute(
        "UPDATE jobs SET state = 'failed', error = ?2, updated_at = ?3 WHERE id = ?1",
        params![job_id, serde_json::to_string(error)?, now],
    )?;
    tracing::warn!(job_id, class = %error.class, message = %error.message, "job failed");
    Ok(JobState::Failed)
}

/// Why `attempt` may not be retried: a chunk of it was refused over its quota (a new attempt
/// would produce as much).
fn quota_spent(c: &Connection, job_id: &str, attempt: u32) -> Result<Option<String>, ApiError> {
    Ok(c.query_row(
        "SELECT over_quota FROM attempts WHERE job_id = ?1 AND attempt = ?2",
        params![job_id, attempt],
        |r| r.get::<_, Option<String>>(0),
    )
    .optional()?
    .flatten())
}

/// Back to the queue, unless an admin cancelled the job meanwhile or the attempt went over its
/// quota (then the job fails).
fn requeue(c: &Connection, job_id: &str, attempt: u32, now: i64) -> Result<JobState, ApiError> {
    let cancel: bool = c.query_row(
        "SELECT cancel_requested FROM jobs WHERE id = ?1",
        params![job_id],
        |r| r.get(0),
    )?;
    if cancel {
        return set_state(c, job_id, JobState::Cancelled, now);
    }
    if let Some(reason) = quota_spent(c, job_id, attempt)? {
        let error = JobError {
            class: "output".to_string(),
            message: format!("not retried: {reason}"),
        };
        return fail_job(c, job_id, &error, now);
    }
    tracing::info!(job_id, "job re-queued");
    set_state(c, job_id, JobState::Queued, now)
}

/// After a failed or expired attempt: re-queue while fewer than `max_attempts` attempts have
/// failed, else fail the job with `error`; an attempt over its quota fails the job at once.
fn requeue_or_fail(
    c: &Connection,
    job_id: &str,
    attempt: u32,
    error: &JobError,
    now: i64,
) -> Result<JobState, ApiError> {
    if let Some(reason) = quota_spent(c, job_id, attempt)? {
        let error = JobError {
            class: error.class.clone(),
            message: format!("{}; not retried: {reason}", error.message),
        };
        return fail_job(c, job_id, &error, now);
    }
    let (failures, max): (u32, u32) = c.query_row(
        "SELECT (SELECT COUNT(*) FROM attempts WHERE job_id = ?1 AND state IN ('failed', 'expired')),
                max_attempts
         FROM jobs WHERE id = ?1",
        params![job_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if failures < max {
        requeue(c, job_id, attempt, now)
    } else {
        let error = JobError {
            class: error.class.clone(),
            message: format!(
                "{} (attempt {failures} of {max}; no attempts left)",
                error.message
            ),
        };
        fail_job(c, job_id, &error, now)
    }
}

/// Expires every running attempt whose lease ran out; returns how many jobs went back to the
/// queue (so that waiting polls can be woken).
pub fn reap_expired(c: &mut Connection, now: i64) -> Result<usize, ApiError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let expired: Vec<(String, u32, String, i64)> = {
        let mut stmt = tx.prepare(
            "SELECT job_id, attempt, agent_id, lease_expires_at FROM attempts
             WHERE state = 'running' AND lease_expires_at <= ?1",
        )?;
        let rows = stmt.query_map(params![now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let mut requeued = 0;
    for (job_id, attempt, agent_id, expires) in expired {
        let error = JobError {
            class: "lease_expired".to_string(),
            message: format!(
                "agent {agent_id} stopped heartbeating attempt {attempt}; its lease expired at {}",
                fmt_ts(expires)
            ),
        };
        end_attempt(&tx, &job_id, attempt, "expired", Some(&error), now)?;
        let state = requeue_or_fail(&tx, &job_id, attempt, &error, now)?;
        tracing::warn!(%job_id, %agent_id, attempt, state = state.as_str(), "lease expired");
        if state == JobState::Queued {
            requeued += 1;
        }
    }
    tx.commit()?;
    Ok(requeued)
}

/// Most jobs one [`prune_finished`] call deletes, so one call holds the database briefly; the
/// next call continues.
pub const PRUNE_BATCH: usize = 500;

/// Deletes up to [`PRUNE_BATCH`] finished jobs (succeeded, failed, cancelled) last updated
/// before `cutoff`, with their attempts and stored chunks; a job whose attempt still runs (a
/// cancel the agent has not yet seen) is kept. Returns (jobs, chunks) deleted. Freed pages are
/// reused by SQLite; the file does not shrink.
pub fn prune_finished(c: &mut Connection, cutoff: i64) -> Result<(usize, usize), ApiError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ids: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT id FROM jobs
             WHERE state IN ('succeeded', 'failed', 'cancelled') AND updated_at < ?1
               AND NOT EXISTS (SELECT 1 FROM attempts a
                               WHERE a.job_id = jobs.id AND a.state = 'running')
             ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![cutoff, PRUNE_BATCH as i64], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut chunks = 0;
    for id in &ids {
        chunks += tx.execute("DELETE FROM chunks WHERE job_id = ?1", params![id])?;
        tx.execute("DELETE FROM attempts WHERE job_id = ?1", params![id])?;
        tx.execute("DELETE FROM jobs WHERE id = ?1", params![id])?;
    }
    tx.commit()?;
    Ok((ids.len(), chunks))
}

// ------------------------------------------------------------------------------------------------
// Results
// ------------------------------------------------------------------------------------------------

/// The accepted attempt and its chunk count; 409 unless the job succeeded.
pub fn result_of(c: &mut Connection, job_id: &str) -> Result<ResultSummary, ApiError> {
    let view = job_view(c, job_id)?;
    match (view.state, view.result) {
        (JobState::Succeeded, Some(result)) => Ok(result),
        (state, _) => Err(ApiError::conflict(format!(
            "job {job_id} is {}; results exist only once it has succeeded",
            state.as_str()
        ))),
    }
}

/// Feeds stored chunk `seq` of the attempt, decoded, to `hash`, the store's lock held only to
/// read it. Its compressed size, or `None` when it is not stored.
pub(crate) fn hash_stored_chunk(
    store: &Store,
    job_id: &str,
    attempt: u32,
    seq: u32,
    hash: &mut StreamHash,
) -> Result<Option<u64>, ApiError> {
    let Some((encoding, body)) = store.with_conn(|c| read_chunk_if_any(c, job_id, attempt, seq))?
    else {
        return Ok(None);
    };
    hash.update(&decode_stored(encoding, &body)?);
    Ok(Some(body.len() as u64))
}

/// One stored chunk, if it is there: its encoding and compressed body.
fn read_chunk_if_any(
    c: &Connection,
    job_id: &str,
    attempt: u32,
    seq: u32,
) -> Result<Option<(Encoding, Vec<u8>)>, ApiError> {
    let row: Option<(String, Vec<u8>)> = c
        .query_row(
            "SELECT encoding, body FROM chunks WHERE job_id = ?1 AND attempt = ?2 AND seq = ?3",
            params![job_id, attempt, seq],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(encoding, body)| {
        Encoding::from_header(Some(&encoding))
            .map(|e| (e, body))
            .map_err(|e| ApiError::internal(format!("stored chunk encoding: {e}")))
    })
    .transpose()
}

/// One stored chunk: its encoding and compressed body.
pub fn read_chunk(
    c: &Connection,
    job_id: &str,
    attempt: u32,
    seq: u32,
) -> Result<(Encoding, Vec<u8>), ApiError> {
    read_chunk_if_any(c, job_id, attempt, seq)?.ok_or_else(|| {
        ApiError::internal(format!(
            "chunk {seq} of attempt {attempt} of job {job_id} is missing from the database"
        ))
    })
}

/// Decodes a chunk the server accepted earlier (so a failure is the server's fault).
pub fn decode_stored(encoding: Encoding, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    chunk::decode(body, encoding, MAX_CHUNK_DECODED_BYTES)
        .map_err(|e| ApiError::internal(format!("a stored chunk does not decode: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_refuse_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.db");
        drop(Store::open(&path).unwrap());
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Store::open(&path).unwrap_err().to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }

    #[test]
    fn a_huge_chunk_claim_is_refused_without_listing_every_missing_seq() {
        let req = CompleteRequest {
            status: CompletionStatus::Succeeded,
            chunks: u32::MAX,
            records: 0,
            sha256: String::new(),
            error: None,
        };
        let reason = check_claim(&[], 1, &req).unwrap_err();
        assert!(reason.contains("0, 1, 2"), "{reason}");
        assert!(
            reason.contains(&format!("and {} more", u64::from(u32::MAX) - 20)),
            "{reason}"
        );
    }

    #[test]
    fn migration_4_counts_the_bytes_running_attempts_already_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.db");
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO agents (id, name, version, capabilities, labels, max_concurrent_jobs,
                                 token_sha256, registered_at, last_seen_at)
             VALUES ('a', 'a', 'v', '[]', '{}', 1, 'h', 0, 0);
             INSERT INTO jobs (id, kind, spec, labels, state, max_attempts, lease_ttl_secs,
                               current_attempt, created_at, updated_at)
             VALUES ('j', 'k', '{}', '{}', 'running', 3, 60, 1, 0, 0);
             INSERT INTO attempts (job_id, attempt, agent_id, state, started_at, lease_expires_at,
                                   chunks, records)
             VALUES ('j', 1, 'a', 'running', 0, 0, 2, 2);
             INSERT INTO chunks VALUES ('j', 1, 0, 's', 1, 'identity', x'0102030405', 0);
             INSERT INTO chunks VALUES ('j', 1, 1, 's', 1, 'identity', x'0607', 0);
             ALTER TABLE attempts DROP COLUMN bytes;
             ALTER TABLE attempts DROP COLUMN over_quota;
             PRAGMA user_version = 3;",
        )
        .unwrap();
        drop(conn);
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let bytes: u64 = conn
            .query_row("SELECT bytes FROM attempts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(bytes, 7);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(fmt_ts(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
