//! A [`HostileControlPlane`]: a minimal server of the agent protocol (`docs/protocol.md`,
//! `krawl_protocol` types and paths) for the tests an attacker would write.
//!
//! # Why not `krawl controlplane`
//!
//! The reference control plane checks every spec at submit and refuses the hostile ones; a
//! COMPROMISED control plane checks nothing. What the agent must withstand is whatever comes down
//! its poll, so this one hands out leases verbatim: the test [`push`](HostileControlPlane::push)es
//! a kind and a spec, the next poll gets them as a [`JobLease`]. It stores what the agent sends
//! back (chunks decoded with `krawl_protocol::chunk`, the completion) for the test to read with
//! [`wait_complete`](HostileControlPlane::wait_complete).
//!
//! It can also misbehave on demand ([`Misbehaviour`]): the next poll is answered with an endless
//! or a 200 MB body, invalid JSON, a redirect, or any raw answer.
//!
//! Everything else is the happy path, with no checks: register hands out a fixed agent id and
//! token whatever bearer was presented, heartbeats keep the lease and never cancel, every chunk
//! is acknowledged. Runs on its own thread and Tokio runtime (hyper, HTTP/1), stops on drop.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use krawl_model::{Envelope, Record};
use krawl_protocol::{
    self as proto, chunk, ChunkAck, ChunkInfo, ChunkList, CompleteRequest, CompleteResponse,
    CompletionStatus, JobError, JobLease, JobState,
};

/// Seconds an empty poll is held before `204` (what register announces as `poll_wait_secs`).
const POLL_WAIT_SECS: u32 = 5;

/// Where an "endless" body ends after all: far past any cap an agent may have.
pub const ENDLESS_GIVES_UP_AFTER: u64 = 1024 * 1024 * 1024;

/// A lease's TTL; heartbeats extend it, nothing expires it here.
const LEASE_TTL_SECS: u32 = 60;

/// A poll answered otherwise than with a lease or `204`.
#[derive(Debug, Clone)]
pub enum Misbehaviour {
    /// `200`, `application/json`, chunked: `{"job_id":"` and then `a`s until the agent hangs
    /// up. (After [`ENDLESS_GIVES_UP_AFTER`] the server ends the body itself, so that an agent
    /// without a cap fails its test by its memory instead of taking the machine with it.)
    EndlessBody,
    /// `200` with a `Content-Length` of `bytes` (e.g. 200 MB), and those bytes streamed.
    HugeBody { bytes: u64 },
    /// `200`, `application/json`, a body that is not JSON.
    InvalidJson,
    /// `302` with `Location: url`.
    RedirectTo(String),
    /// Any answer: status, content type and body (e.g. a lease nested 100,000 levels deep).
    Raw {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
}

enum Answer {
    Lease(JobLease),
    Misbehave(Misbehaviour),
}

/// One job handed out, and what the agent sent back for it.
#[derive(Debug, Clone, Default)]
pub struct HostileJob {
    pub kind: String,
    /// Chunks by sequence number, decoded (NDJSON).
    pub chunks: BTreeMap<u32, Vec<u8>>,
    pub heartbeats: u32,
    pub completion: Option<CompleteRequest>,
}

/// A completed job as the agent reported it.
#[derive(Debug, Clone)]
pub struct Completion {
    pub job_id: String,
    pub status: CompletionStatus,
    pub error: Option<JobError>,
    /// The records of every chunk, in sequence order.
    pub records: Vec<Record>,
    /// Every chunk's decoded bytes, concatenated (what a canary must not be in).
    pub ndjson: Vec<u8>,
}

impl Completion {
    /// The error class, `""` when there is none.
    pub fn class(&self) -> &str {
        self.error.as_ref().map_or("", |e| e.class.as_str())
    }

    /// The error message, `""` when there is none.
    pub fn message(&self) -> &str {
        self.error.as_ref().map_or("", |e| e.message.as_str())
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Answer>,
    jobs: BTreeMap<String, HostileJob>,
    next_job: u64,
    registrations: u64,
    polls: u64,
    /// Misbehaviours answered so far.
    misbehaved: u64,
    /// `METHOD path -> status` of every request, in order.
    requests: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    work: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A control plane that leases whatever the test pushes. See the module documentation.
pub struct HostileControlPlane {
    port: u16,
    shared: Arc<Shared>,
    _server: crate::http_server::ServerThread,
}

impl std::fmt::Debug for HostileControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostileControlPlane")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

type Answered = Response<BoxBody<Bytes, Infallible>>;

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answered {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn json<T: serde::Serialize>(value: &T) -> Answered {
    full(
        StatusCode::OK,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Answered {
    full(
        status,
        "application/json",
        serde_json::to_vec(&proto::ErrorBody::new(code, message)).unwrap_or_default(),
    )
}

/// A body of `{"job_id":"` and then `a`s: `limit` bytes in all, announced by its size hint, or
/// (without a limit) unannounced and "endless".
struct Flood {
    sent: u64,
    limit: Option<u64>,
}

const FLOOD_PIECE: usize = 64 * 1024;

impl Body for Flood {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        static PIECE: [u8; FLOOD_PIECE] = [b'a'; FLOOD_PIECE];
        let left = self
            .limit
            .unwrap_or(ENDLESS_GIVES_UP_AFTER)
            .saturating_sub(self.sent);
        if left == 0 {
            return Poll::Ready(None);
        }
        let data = if self.sent == 0 {
            Bytes::from_static(br#"{"job_id":""#)
        } else {
            let n = usize::try_from(left.min(FLOOD_PIECE as u64)).unwrap_or(FLOOD_PIECE);
            Bytes::from_static(&PIECE[..n])
        };
        self.sent += data.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn size_hint(&self) -> SizeHint {
        match self.limit {
            Some(l) => SizeHint::with_exact(l),
            None => SizeHint::default(),
        }
    }
}

fn misbehave(m: Misbehaviour) -> Answered {
    match m {
        Misbehaviour::EndlessBody => {
            let mut resp = Response::new(
                Flood {
                    sent: 0,
                    limit: None,
                }
                .boxed(),
            );
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        Misbehaviour::HugeBody { bytes } => {
            let mut resp = Response::new(
                Flood {
                    sent: 0,
                    limit: Some(bytes),
                }
                .boxed(),
            );
            let h = resp.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert(CONTENT_LENGTH, HeaderValue::from(bytes));
            resp
        }
        Misbehaviour::InvalidJson => full(
            StatusCode::OK,
            "application/json",
            &br#"{"job_id": "j", "kind": "kafka.extract", "spec": {"#[..],
        ),
        Misbehaviour::RedirectTo(url) => {
            let mut resp = full(StatusCode::FOUND, "text/plain", "moved");
            if let Ok(v) = HeaderValue::from_str(&url) {
                resp.headers_mut().insert(LOCATION, v);
            }
            resp
        }
        Misbehaviour::Raw {
            status,
            content_type,
            body,
        } => full(
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            content_type,
            body,
        ),
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Answered, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let encoding = req
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let sha = req
        .headers()
        .get(proto::CHUNK_SHA256_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let records = req
        .headers()
        .get(proto::CHUNK_RECORDS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let resp = match (&method, segments.as_slice()) {
        (&Method::POST, ["v1", "agents", "register"]) => {
            shared.lock().registrations += 1;
            json(&proto::RegisterResponse {
                agent_id: "hostile-agent".into(),
                agent_token: "hostile-agent-token".into(),
                poll_wait_secs: POLL_WAIT_SECS,
                heartbeat_interval_secs: 5,
            })
        }
        (&Method::POST, ["v1", "agents", _, "poll"]) => poll(&shared).await,
        (&Method::POST, ["v1", "agents", _, "heartbeat"]) => {
            json(&proto::AgentHeartbeatResponse { drain: false })
        }
        (&Method::POST, ["v1", "jobs", job, "attempts", _, "heartbeat"]) => {
            if let Some(j) = shared.lock().jobs.get_mut(*job) {
                j.heartbeats += 1;
            }
            json(&proto::JobHeartbeatResponse {
                lease_ttl_secs: LEASE_TTL_SECS,
                cancel: false,
            })
        }
        (&Method::PUT, ["v1", "jobs", job, "attempts", _, "chunks", seq]) => put_chunk(
            &shared,
            job,
            seq,
            encoding.as_deref(),
            sha.as_deref(),
            records,
            &body,
        ),
        (&Method::GET, ["v1", "jobs", job, "attempts", _, "chunks"]) => {
            let st = shared.lock();
            let chunks = st
                .jobs
                .get(*job)
                .map(|j| {
                    j.chunks
                        .iter()
                        .map(|(seq, bytes)| ChunkInfo {
                            seq: *seq,
                            records: bytes.iter().filter(|b| **b == b'\n').count() as u64,
                            sha256: chunk::sha256_hex(bytes),
                        })
                        .collect()
                })
                .unwrap_or_default();
            json(&ChunkList { chunks })
        }
        (&Method::POST, ["v1", "jobs", job, "attempts", _, "complete"]) => {
            match serde_json::from_slice::<CompleteRequest>(&body) {
                Ok(done) => {
                    let state = match done.status {
                        CompletionStatus::Succeeded => JobState::Succeeded,
                        CompletionStatus::Failed => JobState::Failed,
                        CompletionStatus::Cancelled => JobState::Cancelled,
                        CompletionStatus::Interrupted => JobState::Queued,
                    };
                    shared
                        .lock()
                        .jobs
                        .entry(job.to_string())
                        .or_default()
                        .completion = Some(done);
                    json(&CompleteResponse { state })
                }
                Err(e) => error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such route"),
    };
    shared
        .lock()
        .requests
        .push(format!("{method} {path} -> {}", resp.status().as_u16()));
    Ok(resp)
}

/// The next queued answer, waiting up to [`POLL_WAIT_SECS`] for one; else `204`.
async fn poll(shared: &Shared) -> Answered {
    let deadline = Instant::now() + Duration::from_secs(u64::from(POLL_WAIT_SECS));
    shared.lock().polls += 1;
    loop {
        let next = shared.lock().queue.pop_front();
        match next {
            Some(Answer::Lease(lease)) => return json(&lease),
            Some(Answer::Misbehave(m)) => {
                shared.lock().misbehaved += 1;
                return misbehave(m);
            }
            None => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero()
            || tokio::time::timeout(left, shared.work.notified())
                .await
                .is_err()
        {
            let mut resp = Response::new(Full::new(Bytes::new()).boxed());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            return resp;
        }
    }
}

fn put_chunk(
    shared: &Shared,
    job: &str,
    seq: &str,
    encoding: Option<&str>,
    sha: Option<&str>,
    records: u64,
    body: &[u8],
) -> Answered {
    let Ok(seq) = seq.parse::<u32>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "seq is not a number",
        );
    };
    let decoded = chunk::Encoding::from_header(encoding)
        .and_then(|enc| chunk::decode(body, enc, proto::MAX_CHUNK_DECODED_BYTES))
        .and_then(|d| chunk::verify(&d, sha.unwrap_or_default()).map(|()| d));
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_chunk", &e.to_string()),
    };
    let lines = decoded.iter().filter(|b| **b == b'\n').count() as u64;
    if lines != records {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_chunk",
            &format!("{lines} lines, header says {records}"),
        );
    }
    let mut st = shared.lock();
    let j = st.jobs.entry(job.to_string()).or_default();
    let duplicate = j.chunks.contains_key(&seq);
    j.chunks.insert(seq, decoded);
    json(&ChunkAck { seq, duplicate })
}

impl HostileControlPlane {
    /// Starts on a free port of 127.0.0.1 ([`crate::bind_free_port`]).
    pub fn start() -> Result<HostileControlPlane> {
        let (listener, port) = crate::bind_free_port("hostile control plane")?;
        listener
            .set_nonblocking(true)
            .context("hostile control plane: set_nonblocking")?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: tokio::sync::Notify::new(),
        });
        let sh = shared.clone();
        let server = crate::http_server::ServerThread::spawn(
            &format!("hostile-cp-{port}"),
            listener,
            move |req| handle(sh.clone(), req),
        )?;
        Ok(HostileControlPlane {
            port,
            shared,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`, for the agent's `control_plane.url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Queues a lease of `kind` with `spec`, verbatim; its job id.
    pub fn push(&self, kind: &str, spec: serde_json::Value) -> String {
        let id = {
            let mut st = self.shared.lock();
            st.next_job += 1;
            let id = format!("job-{}", st.next_job);
            st.jobs.insert(
                id.clone(),
                HostileJob {
                    kind: kind.to_string(),
                    ..HostileJob::default()
                },
            );
            st.queue.push_back(Answer::Lease(JobLease {
                job_id: id.clone(),
                kind: kind.to_string(),
                attempt: 1,
                lease_ttl_secs: LEASE_TTL_SECS,
                spec,
            }));
            id
        };
        self.shared.work.notify_one();
        id
    }

    /// Answers the next poll with `m` instead of a lease.
    pub fn misbehave(&self, m: Misbehaviour) {
        self.shared.lock().queue.push_back(Answer::Misbehave(m));
        self.shared.work.notify_one();
    }

    /// How many misbehaviours have been answered so far.
    pub fn misbehaved(&self) -> u64 {
        self.shared.lock().misbehaved
    }

    /// Answers (leases and misbehaviours) queued and not yet taken by a poll.
    pub fn queued(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// Polls so far.
    pub fn polls(&self) -> u64 {
        self.shared.lock().polls
    }

    /// Registrations so far.
    pub fn registrations(&self) -> u64 {
        self.shared.lock().registrations
    }

    /// `METHOD path -> status` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// A job and what came back for it so far.
    pub fn job(&self, id: &str) -> Option<HostileJob> {
        self.shared.lock().jobs.get(id).cloned()
    }

    /// The completion of job `id`, once the agent sent it; `None` until then.
    pub fn completion(&self, id: &str) -> Option<Completion> {
        let job = self.job(id)?;
        let done = job.completion?;
        let ndjson: Vec<u8> = job.chunks.values().flatten().copied().collect();
        let records = String::from_utf8_lossy(&ndjson)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| match serde_json::from_str::<Envelope>(l) {
                Ok(env) => env.record,
                Err(e) => panic!("job {id}: a result line is not a record ({e}): {l}"),
            })
            .collect();
        Some(Completion {
            job_id: id.to_string(),
            status: done.status,
            error: done.error,
            records,
            ndjson,
        })
    }

    /// Waits for job `id`'s completion; panics after `timeout` with `context()` (e.g. the
    /// agent's log) and the requests this control plane saw.
    pub async fn wait_complete(
        &self,
        id: &str,
        timeout: Duration,
        context: impl Fn() -> String,
    ) -> Completion {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.completion(id) {
                return c;
            }
            if Instant::now() >= deadline {
                panic!(
                    "job {id} did not complete within {timeout:?}\nrequests:\n{}\n{}",
                    self.requests().join("\n"),
                    context()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
