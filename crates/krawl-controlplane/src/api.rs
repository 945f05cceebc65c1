//! The HTTP API: the routes of [`krawl_protocol::paths`], authentication, parsing, and calls
//! into [`crate::store`].
//!
//! Every handler authenticates first, then parses its body (so an unauthenticated caller
//! learns nothing from parse errors), then calls the store. Every error is an
//! [`krawl_protocol::ErrorBody`] (see [`ApiError`]).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use krawl_protocol::chunk::{self, Encoding};
use krawl_protocol::{
    paths, AgentHeartbeat, AgentHeartbeatResponse, CompleteRequest, CompleteResponse,
    CompletionStatus, JobHeartbeat, PollRequest, RegisterRequest, RegisterResponse, SubmitJob,
    CHUNK_RECORDS_HEADER, CHUNK_SHA256_HEADER, MAX_CHUNK_DECODED_BYTES,
};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth;
use crate::error::ApiError;
use crate::ratelimit::RateLimiter;
use crate::running_hash::RunningHashes;
use crate::store::{self, now_ms, JobDefaults, Store, VerifiedChunk};
use crate::tokens::BootstrapToken;

// Route templates. `routes_match_protocol_paths` checks them against `krawl_protocol::paths`.
const ROUTE_POLL: &str = "/v1/agents/{agent_id}/poll";
const ROUTE_AGENT_HEARTBEAT: &str = "/v1/agents/{agent_id}/heartbeat";
const ROUTE_AGENT_DRAIN: &str = "/v1/agents/{agent_id}/drain";
const ROUTE_JOB: &str = "/v1/jobs/{job_id}";
const ROUTE_JOB_RESULTS: &str = "/v1/jobs/{job_id}/results";
const ROUTE_JOB_CANCEL: &str = "/v1/jobs/{job_id}/cancel";
const ROUTE_JOB_HEARTBEAT: &str = "/v1/jobs/{job_id}/attempts/{attempt}/heartbeat";
const ROUTE_CHUNKS: &str = "/v1/jobs/{job_id}/attempts/{attempt}/chunks";
const ROUTE_CHUNK: &str = "/v1/jobs/{job_id}/attempts/{attempt}/chunks/{seq}";
const ROUTE_COMPLETE: &str = "/v1/jobs/{job_id}/attempts/{attempt}/complete";

/// A bootstrap token as the server keeps it: its name, its sha256 and its grant.
#[derive(Debug, Clone)]
pub struct Grant {
    pub sha256: String,
    /// The token with its value blanked: name, labels, origin.
    pub token: BootstrapToken,
}

impl Grant {
    pub fn new(t: &BootstrapToken) -> Self {
        Self {
            sha256: auth::token_hash(&t.token),
            token: BootstrapToken {
                token: String::new(),
                ..t.clone()
            },
        }
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub admin_token_sha256: Arc<str>,
    /// The bootstrap tokens (hashed) and the labels each grants.
    pub bootstrap: Arc<[Grant]>,
    pub poll_wait: Duration,
    pub defaults: JobDefaults,
    pub max_body_bytes: usize,
    /// Chunks and stored bytes one attempt may upload.
    pub quota: store::Quota,
    pub limiter: Option<Arc<RateLimiter>>,
    /// Woken when a job becomes leasable (submitted or re-queued).
    pub queue_changed: Arc<Notify>,
    /// Cancelled when the server shuts down: open polls answer 204 at once.
    pub shutdown: CancellationToken,
    /// Test hook: called after each chunk a completion's verification has hashed.
    pub verify_hook: Option<store::VerifyHook>,
    /// Each attempt's stream hash as its chunks arrive.
    pub running: RunningHashes,
}

pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route(paths::REGISTER, post(register))
        .route(ROUTE_POLL, post(poll))
        .route(ROUTE_AGENT_HEARTBEAT, post(agent_heartbeat))
        .route(ROUTE_AGENT_DRAIN, post(drain_agent))
        .route(paths::AGENTS, get(list_agents))
        .route(paths::JOBS, post(submit_job).get(list_jobs))
        .route(ROUTE_JOB, get(get_job))
        .route(ROUTE_JOB_RESULTS, get(job_results))
        .route(ROUTE_JOB_CANCEL, post(cancel_job))
        .route(ROUTE_JOB_HEARTBEAT, post(job_heartbeat))
        .route(ROUTE_CHUNKS, get(list_chunks))
        .route(ROUTE_CHUNK, put(put_chunk))
        .route(ROUTE_COMPLETE, post(complete))
        .fallback(|| async { ApiError::not_found("no such endpoint; see docs/openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "bad_request",
                "method not allowed on this endpoint; see docs/openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

// ------------------------------------------------------------------------------------------------
// Extractors: body and path, with every rejection turned into an ErrorBody
// ------------------------------------------------------------------------------------------------

/// The raw request body, refused with 413 past `max_body_bytes`.
struct RawBody(Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::too_large(format!(
                    "request body is larger than the limit of {} bytes",
                    state.max_body_bytes
                )))
            }
            Err(rej) => Err(ApiError::bad_request(format!(
                "cannot read the request body: {}",
                rej.body_text()
            ))),
        }
    }
}

/// Parses a JSON body; the error names the field path and the expected type, never a value
/// (see [`crate::body`]).
fn parse_json<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    krawl_protocol::body::parse_json(body, what).map_err(ApiError::bad_request)
}

/// Path parameters; a non-numeric attempt or seq is a 400.
struct ApiPath<T>(T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| ApiPath(t))
            .map_err(|e: PathRejection| ApiError::bad_request(path_error(&e)))
    }
}

/// A path parameter that does not parse, named with the type it needs (axum's own text quotes
/// the value).
fn path_error(e: &PathRejection) -> String {
    use axum::extract::path::ErrorKind;
    match e {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::ParseErrorAtKey {
                key, expected_type, ..
            } => format!(
                "path parameter `{key}` must be {}",
                path_type(expected_type)
            ),
            ErrorKind::ParseErrorAtIndex {
                index,
                expected_type,
                ..
            } => format!(
                "path parameter {} must be {}",
                index + 1,
                path_type(expected_type)
            ),
            ErrorKind::ParseError { expected_type, .. } => {
                format!("a path parameter must be {}", path_type(expected_type))
            }
            ErrorKind::InvalidUtf8InPathParam { key } => {
                format!("path parameter `{key}` is not UTF-8 once percent-decoded")
            }
            _ => "a path parameter does not parse; see docs/openapi.json".to_string(),
        },
        _ => "the path parameters are missing; see docs/openapi.json".to_string(),
    }
}

fn path_type(rust_type: &str) -> &'static str {
    match rust_type {
        "u32" => "a whole number from 0 to 4294967295",
        _ => "of the type docs/openapi.json gives",
    }
}

// ------------------------------------------------------------------------------------------------
// Authentication
// ------------------------------------------------------------------------------------------------

impl AppState {
    fn require_admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match auth::bearer(headers) {
            Some(t) if auth::token_matches(t, &self.admin_token_sha256) => Ok(()),
            Some(_) => Err(ApiError::unauthorized(
                "the bearer token is not the admin token; the job API needs the admin token (KRAWL_CP_ADMIN_TOKEN)",
            )),
            None => Err(ApiError::unauthorized(
                "missing `Authorization: Bearer` header: the job API needs the admin token (KRAWL_CP_ADMIN_TOKEN)",
            )),
        }
    }

    /// The bootstrap token presented, compared in constant time with every configured one
    /// (no early exit: the time taken does not say which token, if any, matched).
    fn require_bootstrap(&self, headers: &HeaderMap) -> Result<&Grant, ApiError> {
        let presented = auth::bearer(headers).map(auth::token_hash);
        let mut found = None;
        if let Some(hash) = &presented {
            for g in self.bootstrap.iter() {
                if auth::hashes_equal(hash, &g.sha256) && found.is_none() {
                    found = Some(g);
                }
            }
        }
        match (presented, found) {
            (_, Some(g)) => Ok(g),
            (Some(_), None) => Err(ApiError::unauthorized(
                "the bearer token is not a bootstrap token of this control plane; registration needs a bootstrap (registration) token",
            )),
            (None, None) => Err(ApiError::unauthorized(
                "missing `Authorization: Bearer` header: registration needs the bootstrap (registration) token",
            )),
        }
    }

    /// The agent presenting the bearer token, found by the token's sha256 (the only lookup made
    /// before the caller is known). `Ok(None)`: no agent holds this token.
    async fn agent_of_token(&self, token: &str) -> Result<Option<String>, ApiError> {
        let hash = auth::token_hash(token);
        self.store
            .call(move |c| store::agent_by_token(c, &hash))
            .await
    }

    /// The caller must present `agent_id`'s token; then the agent's rate limit applies.
    ///
    /// The caller is identified by its token first; the agent id of the path is only compared
    /// with it, never looked up. A token no agent holds is a 404, so that an agent whose
    /// registration the control plane lost (store reset, agent revoked) registers again.
    async fn require_agent(&self, headers: &HeaderMap, agent_id: &str) -> Result<(), ApiError> {
        let Some(token) = auth::bearer(headers) else {
            return Err(ApiError::unauthorized(
                "missing `Authorization: Bearer` header: this endpoint needs the agent token returned by register",
            ));
        };
        match self.agent_of_token(token).await? {
            None => Err(ApiError::not_found(
                "this control plane knows no agent with this token (its registration was removed, or the control plane lost its state): register again with the bootstrap token",
            )),
            Some(id) if id == agent_id => self.rate_limit(&id),
            Some(_) => Err(ApiError::unauthorized(format!(
                "the bearer token is not the agent token of {agent_id}; use the agent id that register returned with this token"
            ))),
        }
    }

    /// The caller must present the token of the agent holding the attempt. It is identified by
    /// its token first: an unknown token is a 401 that names nothing; then an attempt that does
    /// not exist and one held by another agent get the same 404, so no caller learns which jobs
    /// exist or who runs them.
    async fn require_attempt_holder(
        &self,
        headers: &HeaderMap,
        job_id: &str,
        attempt: u32,
    ) -> Result<String, ApiError> {
        let Some(token) = auth::bearer(headers) else {
            return Err(ApiError::unauthorized(
                "missing `Authorization: Bearer` header: this endpoint needs the agent token of the agent holding the attempt",
            ));
        };
        let Some(agent_id) = self.agent_of_token(token).await? else {
            return Err(ApiError::unauthorized(
                "the bearer token is not the token of a registered agent; the agent must register again with the bootstrap token",
            ));
        };
        self.rate_limit(&agent_id)?;
        let (job, id) = (job_id.to_string(), agent_id.clone());
        let held = self
            .store
            .call(move |c| store::attempt_held_by(c, &job, attempt, &id))
            .await?;
        if !held {
            // One answer, word for word, whether the attempt is missing or another agent's.
            return Err(ApiError::not_found(
                "this agent holds no such attempt (the job or the attempt does not exist, or is not this agent's): stop it without completing it",
            ));
        }
        Ok(agent_id)
    }

    fn rate_limit(&self, agent_id: &str) -> Result<(), ApiError> {
        match &self.limiter {
            Some(l) => l.check(agent_id).map_err(|wait| {
                tracing::debug!(agent_id, "rate limited");
                ApiError::rate_limited(wait.as_secs_f64().ceil().max(1.0) as u64)
            }),
            None => Ok(()),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Agent endpoints
// ------------------------------------------------------------------------------------------------

async fn register(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<RegisterResponse>, ApiError> {
    let grant = st.require_bootstrap(&headers)?.token.clone();
    let req: RegisterRequest = parse_json(&body, "register request")?;
    if req.name.trim().is_empty() {
        return Err(ApiError::bad_request(
            "field `name` is empty: name the agent (e.g. its host name)",
        ));
    }
    check_labels(&req.labels)?;
    // The labels decide which jobs the agent may lease: only what its token grants, and never
    // changed afterwards (no other request carries labels).
    grant
        .check_claim(&req.labels)
        .map_err(ApiError::forbidden)?;
    let token = auth::new_token();
    let hash = auth::token_hash(&token);
    let name = req.name.clone();
    let token_name = grant.name.clone();
    let agent_id = st
        .store
        .call(move |c| store::register_agent(c, &req, &hash, &token_name, now_ms()))
        .await?;
    tracing::info!(%agent_id, name = %name, bootstrap_token = %grant.name, "agent registered");
    let lease_secs = st.defaults.lease_ttl_secs;
    Ok(Json(RegisterResponse {
        agent_id,
        agent_token: token,
        poll_wait_secs: u32::try_from(st.poll_wait.as_secs()).unwrap_or(u32::MAX),
        heartbeat_interval_secs: (lease_secs / 4).clamp(1, 30),
    }))
}

/// Most labels one agent may claim, and the longest key and value (they are routing data, shown
/// in lists and refusals).
const MAX_LABELS: usize = 64;
const MAX_LABEL_KEY: usize = 128;
const MAX_LABEL_VALUE: usize = 256;

fn check_labels(labels: &std::collections::BTreeMap<String, String>) -> Result<(), ApiError> {
    if labels.len() > MAX_LABELS {
        return Err(ApiError::bad_request(format!(
            "field `labels` has more than {MAX_LABELS} labels"
        )));
    }
    for (k, v) in labels {
        if k.trim().is_empty() || k.chars().count() > MAX_LABEL_KEY {
            return Err(ApiError::bad_request(format!(
                "field `labels`: a label key must be 1 to {MAX_LABEL_KEY} characters"
            )));
        }
        if v.chars().count() > MAX_LABEL_VALUE {
            return Err(ApiError::bad_request(format!(
                "field `labels.{k}`: a label value must be at most {MAX_LABEL_VALUE} characters"
            )));
        }
    }
    Ok(())
}

/// Long poll: leases a job as soon as one matches, else answers 204 after `poll_wait`.
async fn poll(
    State(st): State<AppState>,
    ApiPath(agent_id): ApiPath<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    st.require_agent(&headers, &agent_id).await?;
    let req: PollRequest = parse_json(&body, "poll request")?;
    let id = agent_id.clone();
    let agent = st
        .store
        .call(move |c| store::agent_polled(c, &id, now_ms()))
        .await?;
    if agent.drain_requested || req.free_slots == 0 {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let deadline = tokio::time::Instant::now() + st.poll_wait;
    let labels = Arc::new(agent.labels);
    let kinds = Arc::new(req.kinds);
    loop {
        // Register for the wake-up before looking, so a submit between the look and the wait
        // is not missed.
        let notified = st.queue_changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (id, l, k) = (agent_id.clone(), Arc::clone(&labels), Arc::clone(&kinds));
        let lease = st
            .store
            .call(move |c| store::try_lease(c, &id, &l, &k, now_ms()))
            .await?;
        if let Some(lease) = lease {
            return Ok(Json(lease).into_response());
        }
        tokio::select! {
            _ = &mut notified => continue,
            _ = tokio::time::sleep_until(deadline) => break,
            _ = st.shutdown.cancelled() => break,
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn agent_heartbeat(
    State(st): State<AppState>,
    ApiPath(agent_id): ApiPath<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<AgentHeartbeatResponse>, ApiError> {
    st.require_agent(&headers, &agent_id).await?;
    let hb: AgentHeartbeat = parse_json(&body, "agent heartbeat")?;
    let drain = st
        .store
        .call(move |c| store::agent_heartbeat(c, &agent_id, &hb, now_ms()))
        .await?;
    Ok(Json(AgentHeartbeatResponse { drain }))
}

async fn job_heartbeat(
    State(st): State<AppState>,
    ApiPath((job_id, attempt)): ApiPath<(String, u32)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    st.require_attempt_holder(&headers, &job_id, attempt)
        .await?;
    let hb: JobHeartbeat = parse_json(&body, "job heartbeat")?;
    let resp = st
        .store
        .call(move |c| store::job_heartbeat(c, &job_id, attempt, &hb, now_ms()))
        .await?;
    Ok(Json(resp).into_response())
}

async fn put_chunk(
    State(st): State<AppState>,
    ApiPath((job_id, attempt, seq)): ApiPath<(String, u32, u32)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    st.require_attempt_holder(&headers, &job_id, attempt)
        .await?;
    let (j, n, len, quota) = (job_id.clone(), attempt, body.len() as u64, st.quota);
    st.store
        .call(move |c| store::check_live(c, &j, n, seq, len, quota, now_ms()))
        .await?;

    let encoding = Encoding::from_header(header_str(&headers, header::CONTENT_ENCODING.as_str())?)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let sha256 = header_str(&headers, CHUNK_SHA256_HEADER)?
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "missing header {CHUNK_SHA256_HEADER}: the sha256 (hex) of the decoded chunk"
            ))
        })?
        .trim()
        .to_ascii_lowercase();
    let records: u64 = header_str(&headers, CHUNK_RECORDS_HEADER)?
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "missing header {CHUNK_RECORDS_HEADER}: the number of records in the chunk"
            ))
        })?
        .trim()
        .parse()
        .map_err(|_| {
            ApiError::bad_request(format!(
                "header {CHUNK_RECORDS_HEADER} is not a whole number"
            ))
        })?;

    // Decoding is CPU work: off the async threads, and outside the database lock.
    let body = body.to_vec();
    let (chunk, decoded) =
        tokio::task::spawn_blocking(move || verify_chunk(seq, encoding, body, sha256, records))
            .await
            .map_err(|e| ApiError::internal(format!("chunk verification task failed: {e}")))??;
    let j = job_id.clone();
    let ack = st
        .store
        .call(move |c| store::put_chunk(c, &j, attempt, &chunk, quota, now_ms()))
        .await?;
    if !ack.duplicate {
        // Feeds the stream hash now, while the chunk is at hand, instead of at completion.
        let (running, store) = (st.running.clone(), st.store.clone());
        let fed = tokio::task::spawn_blocking(move || {
            running.stored(&store, &job_id, attempt, seq, &decoded)
        })
        .await;
        if let Err(e) = fed
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            // The completion then hashes what was not fed; nothing else depends on it.
            tracing::warn!(seq, attempt, error = %e, "feeding the running stream hash failed");
        }
    }
    Ok(Json(ack).into_response())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::bad_request(format!("header {name} is not ASCII")))
        })
        .transpose()
}

/// Decodes (capped), checks the sha256 and counts the lines against the records header.
fn verify_chunk(
    seq: u32,
    encoding: Encoding,
    body: Vec<u8>,
    sha256: String,
    records: u64,
) -> Result<(VerifiedChunk, Vec<u8>), ApiError> {
    let decoded = chunk::decode(&body, encoding, MAX_CHUNK_DECODED_BYTES).map_err(|e| match e {
        chunk::ChunkError::TooLarge { .. } => ApiError::too_large(format!("chunk {seq}: {e}")),
        e => ApiError::bad_request(format!("chunk {seq}: {e}")),
    })?;
    chunk::verify(&decoded, &sha256)
        .map_err(|e| ApiError::bad_request(format!("chunk {seq}: {e}")))?;
    let lines = count_lines(&decoded);
    if lines != records {
        return Err(ApiError::bad_request(format!(
            "chunk {seq}: header {CHUNK_RECORDS_HEADER} says {records} records but the chunk holds {lines} lines"
        )));
    }
    Ok((
        VerifiedChunk {
            seq,
            sha256,
            records,
            encoding,
            body,
        },
        decoded,
    ))
}

/// NDJSON lines: newline-terminated, plus a last line without its newline.
fn count_lines(ndjson: &[u8]) -> u64 {
    let newlines = ndjson.iter().filter(|b| **b == b'\n').count() as u64;
    match ndjson.last() {
        Some(b'\n') | None => newlines,
        Some(_) => newlines + 1,
    }
}

async fn list_chunks(
    State(st): State<AppState>,
    ApiPath((job_id, attempt)): ApiPath<(String, u32)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.require_attempt_holder(&headers, &job_id, attempt)
        .await?;
    let list = st
        .store
        .call(move |c| store::list_chunks(c, &job_id, attempt))
        .await?;
    Ok(Json(list).into_response())
}

async fn complete(
    State(st): State<AppState>,
    ApiPath((job_id, attempt)): ApiPath<(String, u32)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    st.require_attempt_holder(&headers, &job_id, attempt)
        .await?;
    let req: CompleteRequest = parse_json(&body, "complete request")?;
    let verified = match req.status {
        CompletionStatus::Succeeded => Some(verify(&st, &job_id, attempt, &req).await?),
        _ => None,
    };
    let j = job_id.clone();
    let done = st
        .store
        .call(move |c| store::complete(c, &j, attempt, &req, verified.as_ref(), now_ms()))
        .await;
    // Whatever the outcome, this attempt uploads no more.
    st.running.forget(&job_id, attempt);
    let done = done?;
    if done.state == krawl_protocol::JobState::Queued {
        st.queue_changed.notify_waiters();
    }
    match done.rejected {
        Some(reason) => Err(ApiError::bad_request(format!(
            "result refused: {reason}; attempt {attempt} is marked failed and the job is now {}",
            done.state.as_str()
        ))),
        None => Ok(Json(CompleteResponse { state: done.state }).into_response()),
    }
}

/// Checks a `succeeded` claim against the stored chunks without holding the store's lock for
/// more than one chunk read at a time: a short read of the chunk list, then every chunk read,
/// decoded and hashed on a blocking thread. [`store::complete`] then re-checks, in one short
/// transaction, that the attempt is still live and its chunks unchanged.
async fn verify(
    st: &AppState,
    job_id: &str,
    attempt: u32,
    req: &CompleteRequest,
) -> Result<store::Verified, ApiError> {
    let (j, r) = (job_id.to_string(), req.clone());
    let (set, claim) = st
        .store
        .call(move |c| store::begin_verification(c, &j, attempt, &r, now_ms()))
        .await?;
    let verdict = match claim {
        Err(reason) => Err(reason),
        Ok(()) => {
            let (store, hook, j) = (st.store.clone(), st.verify_hook.clone(), job_id.to_string());
            let (chunks, sha256) = (req.chunks, req.sha256.clone());
            let from = st.running.prefix(job_id, attempt).unwrap_or_default();
            tokio::task::spawn_blocking(move || {
                store::verify_stream(&store, &j, attempt, chunks, &sha256, hook.as_ref(), from)
            })
            .await
            .map_err(|e| ApiError::internal(format!("stream verification task failed: {e}")))??
        }
    };
    Ok(store::Verified { set, verdict })
}

// ------------------------------------------------------------------------------------------------
// Admin endpoints
// ------------------------------------------------------------------------------------------------

async fn submit_job(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    st.require_admin(&headers)?;
    let job: SubmitJob = parse_json(&body, "job submission")?;
    check_spec(&job)?;
    let defaults = st.defaults;
    let view = st
        .store
        .call(move |c| store::submit_job(c, &job, defaults, now_ms()))
        .await?;
    st.queue_changed.notify_waiters();
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn list_jobs(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    st.require_admin(&headers)?;
    let list = st.store.call(store::list_jobs).await?;
    Ok(Json(list).into_response())
}

async fn get_job(
    State(st): State<AppState>,
    ApiPath(job_id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.require_admin(&headers)?;
    let view = st.store.call(move |c| store::job_view(c, &job_id)).await?;
    Ok(Json(view).into_response())
}

async fn cancel_job(
    State(st): State<AppState>,
    ApiPath(job_id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.require_admin(&headers)?;
    let view = st
        .store
        .call(move |c| store::cancel_job(c, &job_id, now_ms()))
        .await?;
    Ok(Json(view).into_response())
}

/// Streams the accepted attempt's chunks, decoded, in sequence order: one chunk in memory at a
/// time.
async fn job_results(
    State(st): State<AppState>,
    ApiPath(job_id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.require_admin(&headers)?;
    let j = job_id.clone();
    let result = st.store.call(move |c| store::result_of(c, &j)).await?;
    let store = st.store.clone();
    let attempt = result.attempt;
    let stream = futures::stream::unfold(0u32, move |seq| {
        let (store, job_id) = (store.clone(), job_id.clone());
        async move {
            if seq >= result.chunks {
                return None;
            }
            let next = store
                .call(move |c| {
                    let (enc, body) = store::read_chunk(c, &job_id, attempt, seq)?;
                    store::decode_stored(enc, &body)
                })
                .await
                .map(Bytes::from)
                .map_err(|e| std::io::Error::other(e.message));
            Some((next, seq + 1))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn list_agents(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    st.require_admin(&headers)?;
    let list = st.store.call(store::list_agents).await?;
    Ok(Json(list).into_response())
}

async fn drain_agent(
    State(st): State<AppState>,
    ApiPath(agent_id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.require_admin(&headers)?;
    st.store
        .call(move |c| store::request_drain(c, &agent_id))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A job spec is stored only when it holds no credential: for the `kafka.*` kinds the whole
/// structure is checked against the agent's own config types ([`krawl_protocol::spec::check`]:
/// every credential position a secret reference whatever its JSON type, no unknown keys, only
/// pass-through librdkafka properties, one host:port per bootstrap entry, no userinfo in
/// URLs); for other kinds credential-named keys and URLs
/// ([`krawl_protocol::spec::check_unknown_kind`]). The refusal names positions, never values.
fn check_spec(job: &SubmitJob) -> Result<(), ApiError> {
    let known = job.kind.parse::<krawl_protocol::JobKind>().is_ok();
    let problems = if known {
        krawl_protocol::spec::check(&job.spec, krawl_protocol::spec::Checker::ControlPlane)
            .err()
            .map(|p| p.join("; "))
    } else {
        krawl_protocol::spec::check_unknown_kind(&job.spec).err()
    };
    match problems {
        None => Ok(()),
        Some(p) => Err(ApiError::bad_request(format!("job spec refused: {p}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_protocol_paths() {
        let fill = |t: &str| {
            t.replace("{agent_id}", "A")
                .replace("{job_id}", "J")
                .replace("{attempt}", "7")
                .replace("{seq}", "9")
        };
        assert_eq!(fill(ROUTE_POLL), paths::poll("A"));
        assert_eq!(fill(ROUTE_AGENT_HEARTBEAT), paths::agent_heartbeat("A"));
        assert_eq!(fill(ROUTE_AGENT_DRAIN), paths::agent_drain("A"));
        assert_eq!(fill(ROUTE_JOB), paths::job("J"));
        assert_eq!(fill(ROUTE_JOB_RESULTS), paths::job_results("J"));
        assert_eq!(fill(ROUTE_JOB_CANCEL), paths::job_cancel("J"));
        assert_eq!(fill(ROUTE_JOB_HEARTBEAT), paths::job_heartbeat("J", 7));
        assert_eq!(fill(ROUTE_CHUNKS), paths::chunks("J", 7));
        assert_eq!(fill(ROUTE_CHUNK), paths::chunk("J", 7, 9));
        assert_eq!(fill(ROUTE_COMPLETE), paths::complete("J", 7));
    }

    #[test]
    fn lines_are_counted_with_or_without_a_final_newline() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"{}\n{}\n"), 2);
        assert_eq!(count_lines(b"{}\n{}"), 2);
    }

    #[test]
    fn label_claims_are_bounded() {
        let labels = |n: usize, key: &str, value: &str| {
            (0..n)
                .map(|i| (format!("{key}{i}"), value.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert!(check_labels(&labels(MAX_LABELS, "k", "v")).is_ok());
        let err = check_labels(&labels(MAX_LABELS + 1, "k", "v")).unwrap_err();
        assert!(err.message.contains("more than 64"), "{}", err.message);
        let empty_key = [(" ".to_string(), "v".to_string())].into_iter().collect();
        let err = check_labels(&empty_key).unwrap_err();
        assert!(err.message.contains("label key"), "{}", err.message);
        let long = "x".repeat(MAX_LABEL_VALUE + 1);
        let err = check_labels(&labels(1, "env", &long)).unwrap_err();
        assert!(
            err.message.contains("`labels.env0`") && !err.message.contains(&long),
            "{}",
            err.message
        );
    }

    #[test]
    fn specs_with_credentials_are_refused_by_position() {
        use serde_json::json;
        let job = |kind: &str, spec: serde_json::Value| SubmitJob {
            kind: kind.into(),
            spec,
            labels: Default::default(),
            max_attempts: None,
            lease_ttl_secs: None,
        };
        let ok = json!({"kafka": {"bootstrap_servers": ["b:9092"], "security_protocol": "SASL_SSL",
                        "sasl": {"mechanism": "PLAIN", "username": "u", "password": "vault://secret/k#p"}},
                        "schema_registry": {"url": "https://sr", "auth": {"method": "bearer", "token": "env://T"}}});
        assert!(check_spec(&job("kafka.extract", ok)).is_ok());
        let bad = json!({"kafka": {"bootstrap_servers": ["b:9092"], "security_protocol": "SASL_SSL",
                        "sasl": {"mechanism": "PLAIN", "username": "u", "password": 31337}}});
        let e = check_spec(&job("kafka.extract", bad)).unwrap_err();
        assert!(
            e.message.contains("spec.kafka.sasl.password") && !e.message.contains("31337"),
            "{}",
            e.message
        );
        let e = check_spec(&job(
            "custom.kind",
            json!({"x": {"client_key": "-----BEGIN"}}),
        ))
        .unwrap_err();
        assert!(
            e.message.contains("spec.x.client_key") && !e.message.contains("BEGIN"),
            "{}",
            e.message
        );
    }
}
