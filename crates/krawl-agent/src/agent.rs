//! The agent loop (`krawl run`): register, long-poll while a job slot is free, run each job in
//! its own task with a lease heartbeat and a chunk uploader, complete it, and shut down
//! gracefully. Also `krawl check` ([`check`]) and the signal helper ([`install_signal_handlers`]).
//!
//! Robustness rules:
//! - Nothing a job does can kill the agent: each job runs in its own task; an error or a panic
//!   becomes a `failed` completion (a panic with class `other`).
//! - Control-plane errors back off exponentially with jitter (1 s → 60 s), or as long as
//!   `Retry-After` says; a rejected token is logged once, clearly, and retried with back-off.
//! - A 404 (agent unknown) or a rejected agent token makes the agent register again.
//! - First signal: stop polling, report `draining`, let jobs run `shutdown_grace_secs`, then
//!   cancel them and complete them `interrupted` (re-queued). Second signal: return at once.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use krawl_protocol::{self as proto, CompletionStatus, JobKind};
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::client::{Backoff, ClientError, ControlPlaneClient, Credential, Registration};
use crate::config::AgentConfig;
use crate::health::{self, Telemetry};
use crate::jobs::{JobContext, JobDeps, JobFailure};
use crate::progress::JobProgress;
use crate::upload::{ChunkUploader, UploadError, UploadSettings};

/// Runs one job's work into its uploader. The agent's executor is [`KafkaExecutor`]; tests and
/// embedders may supply their own.
///
/// Each job is its own tokio task, so the future must be `Send`; the engine's blocking
/// librdkafka calls already run on the blocking pool (`admin_ext`, `Connection::metadata`).
pub trait Executor: Send + Sync + 'static {
    fn execute<'a>(
        &'a self,
        ctx: &'a JobContext,
        sink: &'a mut ChunkUploader,
    ) -> impl Future<Output = Result<(), JobFailure>> + Send + 'a;

    /// Called once when the agent stops (close pooled connections).
    fn shutdown(&self) {}
}

/// The `kafka.*` executors of [`crate::jobs`].
#[derive(Debug)]
pub struct KafkaExecutor(pub JobDeps);

impl Executor for KafkaExecutor {
    fn execute<'a>(
        &'a self,
        ctx: &'a JobContext,
        sink: &'a mut ChunkUploader,
    ) -> impl Future<Output = Result<(), JobFailure>> + Send + 'a {
        crate::jobs::execute(&self.0, ctx, sink)
    }

    fn shutdown(&self) {
        self.0.pool.close_all();
    }
}

/// Installs SIGTERM/SIGINT handlers: the first signal cancels `shutdown` (graceful), the second
/// cancels `hard_stop` (exit at once). Call inside the tokio runtime.
pub fn install_signal_handlers() -> std::io::Result<(CancellationToken, CancellationToken)> {
    use tokio::signal::unix::{signal, SignalKind};
    let shutdown = CancellationToken::new();
    let hard_stop = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (s, h) = (shutdown.clone(), hard_stop.clone());
    tokio::spawn(async move {
        let mut seen = 0u32;
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            seen += 1;
            if seen == 1 {
                tracing::info!(
                    signal = name,
                    "shutting down: no new jobs, running jobs get the grace period; send the signal again to stop at once"
                );
                s.cancel();
            } else {
                tracing::warn!(signal = name, "second signal: stopping now");
                h.cancel();
                return;
            }
        }
    });
    Ok((shutdown, hard_stop))
}

/// `krawl run`: builds the agent from `cfg` and runs it until shutdown.
pub async fn run(
    cfg: AgentConfig,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
) -> anyhow::Result<()> {
    cfg.validate()?;
    for w in cfg.policy.warnings(!cfg.secrets.allow.is_empty()) {
        tracing::warn!("{w}");
    }
    let resolver = krawl_secrets::Resolver::new(&cfg.secrets)
        .await
        .context("cannot set up the secret stores of [secrets]")?;
    let policy = cfg.policy.compile().map_err(anyhow::Error::msg)?;
    policy.check_files().map_err(anyhow::Error::msg)?;
    // Jobs may never read the agent's own control-plane credential.
    let job_resolver = match &cfg.control_plane.auth {
        Some(auth) => resolver.clone().reserve([auth.secret_ref()]),
        None => resolver.clone(),
    };
    let deps = JobDeps {
        resolver: job_resolver,
        policy,
        pool: crate::jobs::pool::ConnectionPool::new(Duration::from_secs(
            cfg.agent.connection_idle_secs,
        )),
    };
    let telemetry = Arc::new(Telemetry::new());
    run_with(
        cfg,
        Arc::new(KafkaExecutor(deps)),
        resolver,
        telemetry,
        shutdown,
        hard_stop,
    )
    .await
}

/// [`run`] with a given executor and telemetry (tests, embedding). `stores` resolves the
/// control-plane credential; [`run`] passes the jobs' resolver, so each store logs in once.
pub async fn run_with<E: Executor>(
    cfg: AgentConfig,
    executor: Arc<E>,
    stores: krawl_secrets::Resolver,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
) -> anyhow::Result<()> {
    cfg.validate()?;
    let health_stop = CancellationToken::new();
    let _stop_health = health_stop.clone().drop_guard();
    if let Some(addr) = cfg.health_listen()? {
        let bound = health::serve(addr, telemetry.clone(), health_stop.clone())
            .await
            .with_context(|| {
                format!("cannot listen on agent.health_listen {addr}; pick a free port or set it to \"\" to disable")
            })?;
        tracing::info!(%bound, "health endpoints: /healthz /readyz /metrics");
    }
    // The control-plane credential is the agent's own: resolved once at start. A secret store
    // that is down at boot is waited for (readiness says why), not a reason to exit.
    let mut backoff = Backoff::standard();
    let credential = loop {
        match Credential::resolve(&cfg, &stores).await {
            Ok(c) => break c,
            Err(e) if e.is_transient() => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot resolve the control-plane credential yet; retrying");
                telemetry.exchange_failed("credential", &e.to_string());
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    let client = Arc::new(ControlPlaneClient::new(
        &cfg,
        credential,
        telemetry.clone(),
    )?);
    let agent = Agent {
        max_jobs: cfg.agent.max_concurrent_jobs,
        grace: cfg.shutdown_grace(),
        upload: UploadSettings::from(&cfg.agent),
        policy_kinds: cfg.policy.allowed_job_kinds.clone(),
        register: proto::RegisterRequest {
            name: cfg.agent.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            capabilities: JobKind::ALL
                .iter()
                .map(|k| k.as_str().to_string())
                .collect(),
            labels: cfg.agent.labels.clone(),
            max_concurrent_jobs: cfg.agent.max_concurrent_jobs,
        },
        client,
        telemetry,
    };
    tracing::info!(
        control_plane = agent.client.base_url(),
        name = %cfg.agent.name,
        max_concurrent_jobs = agent.max_jobs,
        "krawl agent starting"
    );
    let result = agent.run(executor.clone(), shutdown, hard_stop).await;
    executor.shutdown();
    result
}

struct Agent {
    max_jobs: u32,
    grace: Duration,
    upload: UploadSettings,
    /// `[policy] allowed_job_kinds`: the kinds asked for in polls (empty: any).
    policy_kinds: Vec<String>,
    register: proto::RegisterRequest,
    client: Arc<ControlPlaneClient>,
    telemetry: Arc<Telemetry>,
}

/// How a job's cancellation came about (set before its token is cancelled).
const REASON_NONE: u8 = 0;
const REASON_CANCELLED: u8 = 1;
const REASON_LEASE_LOST: u8 = 2;

impl Agent {
    async fn run<E: Executor>(
        self,
        executor: Arc<E>,
        shutdown: CancellationToken,
        hard_stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let this = Arc::new(self);
        // Stops polling: the first signal, or `drain: true` from the control plane.
        let stop_polling = shutdown.child_token();
        let jobs_token = CancellationToken::new();
        let background = CancellationToken::new();
        let _stop_background = background.clone().drop_guard();
        let slots = Arc::new(Semaphore::new(this.max_jobs as usize));
        let mut tasks: JoinSet<()> = JoinSet::new();

        let Some(reg) = this.register_until_ok(&stop_polling).await else {
            sd_notify("STOPPING=1");
            return Ok(());
        };
        sd_notify("READY=1");
        if let Some(every) = watchdog_interval() {
            let stop = background.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(every) => sd_notify("WATCHDOG=1"),
                    }
                }
            });
        }
        tokio::spawn(this.clone().agent_heartbeats(
            reg.heartbeat_interval,
            stop_polling.clone(),
            background.clone(),
        ));

        let mut backoff = Backoff::standard();
        let mut unauthorized_streak = 0u32;
        // Ask only for the kinds the local policy allows when it restricts them; otherwise take
        // any job, so that a kind this agent does not know still gets an `invalid_job` answer
        // instead of waiting in the queue for ever.
        let kinds: Vec<String> = this.policy_kinds.clone();
        loop {
            // Reap finished job tasks (their panics are already turned into completions).
            while tasks.try_join_next().is_some() {}
            if this.client.agent_id().is_none()
                && this.register_until_ok(&stop_polling).await.is_none()
            {
                break;
            }
            let permit = tokio::select! {
                biased;
                _ = stop_polling.cancelled() => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let free = u32::try_from(slots.available_permits() + 1).unwrap_or(u32::MAX);
            let started = Instant::now();
            let req = proto::PollRequest {
                free_slots: free,
                kinds: kinds.clone(),
            };
            let polled = tokio::select! {
                biased;
                _ = stop_polling.cancelled() => break,
                r = this.client.poll(&req) => r,
            };
            this.telemetry
                .metrics
                .poll_latency
                .observe(started.elapsed().as_secs_f64());
            match polled {
                Ok(Some(lease)) => {
                    backoff.reset();
                    unauthorized_streak = 0;
                    let job = this.clone().run_job(
                        executor.clone(),
                        lease,
                        jobs_token.child_token(),
                        jobs_token.clone(),
                        permit,
                    );
                    tasks.spawn(job);
                }
                Ok(None) => {
                    backoff.reset();
                    unauthorized_streak = 0;
                    drop(permit);
                    // A little jitter so a fleet of agents does not poll in lockstep.
                    let pause = Duration::from_millis(rand::rng().random_range(0..250));
                    tokio::select! {
                        _ = stop_polling.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
                Err(e) => {
                    drop(permit);
                    let delay = backoff.delay_after(&e);
                    match &e {
                        ClientError::Unauthorized { .. } if this.reregisters_on_unauthorized() => {
                            tracing::warn!(error = %e, "agent token rejected; registering again");
                            this.client.forget_registration();
                        }
                        ClientError::Unauthorized { .. } => {
                            unauthorized_streak += 1;
                            log_unauthorized(&e, unauthorized_streak, delay);
                        }
                        e if e.is_unknown_agent() => {
                            tracing::warn!(error = %e, "the control plane does not know this agent (restarted without state, or deleted it); registering again");
                            this.client.forget_registration();
                        }
                        _ => {
                            tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "poll failed")
                        }
                    }
                    tokio::select! {
                        _ = stop_polling.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }

        // Draining: no new jobs.
        this.telemetry.set_draining(true);
        sd_notify("STOPPING=1");
        // Jobs that ended since the last poll are still in the set until joined: not running.
        while tasks.try_join_next().is_some() {}
        let running = tasks.len();
        if running > 0 {
            tracing::info!(
                running,
                grace_secs = this.grace.as_secs(),
                "waiting for running jobs to finish"
            );
        }
        let grace_over = {
            let shutdown = shutdown.clone();
            let grace = this.grace;
            async move {
                // A drain (without a signal) waits for the jobs; a signal starts the clock.
                shutdown.cancelled().await;
                tokio::time::sleep(grace).await;
            }
        };
        tokio::select! {
            _ = async { while tasks.join_next().await.is_some() {} } => {}
            _ = hard_stop.cancelled() => {
                tracing::warn!(running = tasks.len(), "stopping at once; running jobs are abandoned (their leases expire and the control plane re-queues them)");
                jobs_token.cancel();
                tasks.abort_all();
                return Ok(());
            }
            _ = grace_over => {
                tracing::warn!(running = tasks.len(), "grace period over: interrupting running jobs (the control plane re-queues them)");
                jobs_token.cancel();
                tokio::select! {
                    _ = async { while tasks.join_next().await.is_some() {} } => {}
                    _ = hard_stop.cancelled() => tasks.abort_all(),
                }
            }
        }
        // One last heartbeat so the control plane sees the agent leave cleanly.
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            this.client.agent_heartbeat(&proto::AgentHeartbeat {
                running_jobs: 0,
                draining: true,
            }),
        )
        .await;
        tracing::info!("krawl agent stopped");
        Ok(())
    }

    fn reregisters_on_unauthorized(&self) -> bool {
        // A rejected agent token is replaced by registering again; a rejected OAuth2 or static
        // bearer (no agent token) would be refused again, so that one only backs off.
        self.client.has_agent_token()
    }

    /// Registers, retrying with back-off; `None` when `stop` fires first.
    async fn register_until_ok(&self, stop: &CancellationToken) -> Option<Registration> {
        let mut backoff = Backoff::standard();
        let mut unauthorized = 0u32;
        self.telemetry
            .set_registered(false, Duration::from_secs(30));
        loop {
            let r = tokio::select! {
                biased;
                _ = stop.cancelled() => return None,
                r = self.client.register(&self.register) => r,
            };
            match r {
                Ok(reg) => {
                    tracing::info!(
                        agent_id = %reg.agent_id,
                        poll_wait_secs = reg.poll_wait.as_secs(),
                        "registered with the control plane"
                    );
                    self.telemetry.set_registered(true, reg.poll_wait);
                    return Some(reg);
                }
                Err(e) => {
                    let delay = backoff.delay_after(&e);
                    if matches!(e, ClientError::Unauthorized { .. }) {
                        unauthorized += 1;
                        log_unauthorized(&e, unauthorized, delay);
                    } else {
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "registration failed; retrying");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Agent heartbeats every `every` until `stop`; `drain: true` stops polling.
    async fn agent_heartbeats(
        self: Arc<Self>,
        every: Duration,
        stop_polling: CancellationToken,
        stop: CancellationToken,
    ) {
        let every = every.max(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if self.client.agent_id().is_none() {
                continue;
            }
            let running =
                u32::try_from(self.telemetry.metrics.running_jobs.get().max(0)).unwrap_or(u32::MAX);
            let hb = proto::AgentHeartbeat {
                running_jobs: running,
                draining: stop_polling.is_cancelled(),
            };
            match self.client.agent_heartbeat(&hb).await {
                Ok(r) if r.drain && !stop_polling.is_cancelled() => {
                    tracing::info!("the control plane asked this agent to drain: no new jobs; exiting once running jobs finish");
                    self.telemetry.set_draining(true);
                    stop_polling.cancel();
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "agent heartbeat failed"),
            }
        }
    }

    /// One job attempt, start to completion. Never panics out (the executor runs in a nested
    /// task whose panic becomes a `failed` completion).
    fn run_job<E: Executor>(
        self: Arc<Self>,
        executor: Arc<E>,
        lease: proto::JobLease,
        cancel: CancellationToken,
        agent_jobs: CancellationToken,
        permit: OwnedSemaphorePermit,
    ) -> impl Future<Output = ()> + Send + 'static {
        let span = tracing::info_span!(
            "job",
            job_id = %lease.job_id,
            attempt = lease.attempt,
            kind = %crate::jobs::abbreviated(&lease.kind)
        );
        async move {
            let _permit = permit;
            let started = Instant::now();
            let m = &self.telemetry.metrics;
            m.running_jobs.inc();
            tracing::info!(lease_ttl_secs = lease.lease_ttl_secs, "job started");
            let progress = Arc::new(JobProgress::default());
            let reason = Arc::new(AtomicU8::new(REASON_NONE));
            let hb_stop = CancellationToken::new();
            let hb = tokio::spawn(
                job_heartbeats(
                    self.client.clone(),
                    lease.job_id.clone(),
                    lease.attempt,
                    Duration::from_secs(u64::from(lease.lease_ttl_secs.max(1))),
                    progress.clone(),
                    cancel.clone(),
                    reason.clone(),
                    hb_stop.clone(),
                )
                .in_current_span(),
            );
            let ctx = JobContext {
                job_id: lease.job_id.clone(),
                attempt: lease.attempt,
                kind: lease.kind.clone(),
                spec: lease.spec,
                cancel: cancel.clone(),
                progress: progress.clone(),
            };
            let mut uploader = ChunkUploader::new(
                self.client.clone(),
                lease.job_id.clone(),
                lease.attempt,
                self.upload.clone(),
                cancel.clone(),
                progress.clone(),
                self.telemetry.clone(),
            );
            let job_span = tracing::Span::current();
            let exec = tokio::spawn(
                async move {
                    let mut result = executor.execute(&ctx, &mut uploader).await;
                    if result.is_ok() {
                        if let Err(e) = uploader.finish().await {
                            result = Err(JobFailure {
                                class: "output".into(),
                                message: format!("cannot upload the results: {e}"),
                            });
                        }
                    }
                    (result, uploader)
                }
                .instrument(job_span),
            );
            let joined = exec.await;
            hb_stop.cancel();
            let _ = hb.await;

            let outcome = decide(&joined, reason.load(Ordering::SeqCst), agent_jobs.is_cancelled());
            let (summary, records_seen) = match &joined {
                Ok((_, up)) => (up.summary(), progress.records()),
                Err(_) => (
                    crate::upload::UploadSummary {
                        chunks: progress.snapshot().chunks,
                        records: 0,
                        sha256: String::new(),
                        bytes: 0,
                    },
                    progress.records(),
                ),
            };
            let label = outcome.label();
            match outcome.status() {
                None => tracing::warn!(
                    "lease lost: the control plane gave this attempt up; stopping without completing"
                ),
                Some((status, error)) => {
                    match &error {
                        Some(err) => tracing::warn!(
                            status = ?status,
                            class = %err.class,
                            error = %err.message,
                            records = records_seen,
                            "job ended"
                        ),
                        None => tracing::info!(
                            records = summary.records,
                            chunks = summary.chunks,
                            secs = started.elapsed().as_secs_f64(),
                            "job succeeded"
                        ),
                    }
                    let req = proto::CompleteRequest {
                        status,
                        chunks: summary.chunks,
                        records: summary.records,
                        sha256: summary.sha256.clone(),
                        error,
                    };
                    self.complete_with_retry(&lease.job_id, lease.attempt, &req)
                        .await;
                }
            }
            self.telemetry
                .job_finished(&lease.kind, label, started.elapsed());
            self.telemetry.metrics.running_jobs.dec();
        }
        .instrument(span)
    }

    async fn complete_with_retry(&self, job_id: &str, attempt: u32, req: &proto::CompleteRequest) {
        let mut backoff = Backoff::standard();
        let deadline = Instant::now() + self.upload.retry_for;
        let mut retried = false;
        loop {
            match self.client.complete(job_id, attempt, req).await {
                Ok(r) => {
                    if let Some(r) = r {
                        tracing::info!(state = r.state.as_str(), "completion accepted");
                    }
                    return;
                }
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    let delay = backoff.delay_after(&e);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "completion failed; retrying");
                    tokio::time::sleep(delay).await;
                    retried = true;
                }
                Err(e @ ClientError::LeaseLost { .. }) if retried => {
                    // An earlier try may have reached the server and only its answer was lost:
                    // then the attempt is already complete, and this is the server saying so.
                    tracing::warn!(error = %e, "the attempt is no longer open after a retried completion: either the lost try was accepted, or the lease expired and the job is re-queued (krawl jobs get shows which)");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "completion was not accepted; the control plane will expire the lease and re-queue the job");
                    return;
                }
            }
        }
    }
}

fn log_unauthorized(e: &ClientError, streak: u32, delay: Duration) {
    if streak == 1 {
        tracing::error!(
            retry_in_secs = delay.as_secs(),
            "{e}. The agent keeps retrying with back-off (up to 60 s) until the credential is fixed."
        );
    } else if streak.is_multiple_of(20) {
        tracing::warn!(
            attempts = streak,
            "still rejected by the control plane: {e}"
        );
    } else {
        tracing::debug!(attempts = streak, "still rejected by the control plane");
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Succeeded,
    Failed(proto::JobError),
    Cancelled,
    Interrupted,
    LeaseLost,
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed(_) => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Interrupted => "interrupted",
            Outcome::LeaseLost => "lease_lost",
        }
    }

    /// The completion to send; `None`: do not complete.
    fn status(&self) -> Option<(CompletionStatus, Option<proto::JobError>)> {
        match self {
            Outcome::Succeeded => Some((CompletionStatus::Succeeded, None)),
            Outcome::Failed(e) => Some((CompletionStatus::Failed, Some(e.clone()))),
            Outcome::Cancelled => Some((
                CompletionStatus::Cancelled,
                Some(proto::JobError {
                    class: "cancelled".into(),
                    message: "cancelled at the control plane's request".into(),
                }),
            )),
            Outcome::Interrupted => Some((
                CompletionStatus::Interrupted,
                Some(proto::JobError {
                    class: "interrupted".into(),
                    message: "the agent shut down before the job finished; re-queue it".into(),
                }),
            )),
            Outcome::LeaseLost => None,
        }
    }
}

fn decide(
    joined: &Result<(Result<(), JobFailure>, ChunkUploader), tokio::task::JoinError>,
    reason: u8,
    agent_stopping: bool,
) -> Outcome {
    if reason == REASON_LEASE_LOST {
        return Outcome::LeaseLost;
    }
    match joined {
        Err(e) => {
            let what = if e.is_panic() {
                panic_message(e)
            } else {
                "the job task was aborted".to_string()
            };
            Outcome::Failed(proto::JobError {
                class: "other".into(),
                message: format!("the job crashed: {what}; this is a krawl bug, please report it"),
            })
        }
        Ok((Ok(()), _)) => Outcome::Succeeded,
        Ok((Err(f), up)) => {
            if matches!(up.failure(), Some(UploadError::LeaseLost { .. })) {
                Outcome::LeaseLost
            } else if reason == REASON_CANCELLED {
                Outcome::Cancelled
            } else if agent_stopping {
                Outcome::Interrupted
            } else {
                Outcome::Failed(proto::JobError {
                    class: f.class.clone(),
                    message: capped(&f.message),
                })
            }
        }
    }
}

/// Longest error message a completion carries (and the log line that reports it).
const MAX_ERROR_MESSAGE: usize = 4096;

/// `message` cut at [`MAX_ERROR_MESSAGE`] bytes (on a character boundary): whatever a job's
/// error quotes from its spec, a completion and a log line stay small.
fn capped(message: &str) -> String {
    if message.len() <= MAX_ERROR_MESSAGE {
        return message.to_string();
    }
    let mut end = MAX_ERROR_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… (cut at {MAX_ERROR_MESSAGE} of {} bytes)",
        &message[..end],
        message.len()
    )
}

fn panic_message(e: &tokio::task::JoinError) -> String {
    // `JoinError`'s Display says "task N panicked with message ..."; keep it short.
    let s = e.to_string();
    s.chars().take(500).collect()
}

/// Job heartbeats every lease ttl / 3: progress, lease extension, cancel requests.
#[allow(clippy::too_many_arguments)]
async fn job_heartbeats(
    client: Arc<ControlPlaneClient>,
    job_id: String,
    attempt: u32,
    ttl: Duration,
    progress: Arc<JobProgress>,
    cancel: CancellationToken,
    reason: Arc<AtomicU8>,
    stop: CancellationToken,
) {
    let mut every = (ttl / 3).max(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match client
            .job_heartbeat(&job_id, attempt, &progress.snapshot())
            .await
        {
            Ok(r) => {
                every = (Duration::from_secs(u64::from(r.lease_ttl_secs.max(1))) / 3)
                    .max(Duration::from_millis(500));
                if r.cancel && !cancel.is_cancelled() {
                    tracing::info!("the control plane cancelled this job; stopping it");
                    let _ = reason.compare_exchange(
                        REASON_NONE,
                        REASON_CANCELLED,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                    cancel.cancel();
                }
            }
            Err(e) if client.attempt_gone(&e) => {
                tracing::warn!(error = %e, "lease lost; stopping the job");
                reason.store(REASON_LEASE_LOST, Ordering::SeqCst);
                cancel.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "job heartbeat failed; the lease may expire if this persists");
                every = (ttl / 6).max(Duration::from_millis(500));
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// systemd
// ------------------------------------------------------------------------------------------------

/// Sends `msg` to `$NOTIFY_SOCKET` (systemd `Type=notify`); does nothing elsewhere.
fn sd_notify(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let result = (|| -> std::io::Result<()> {
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            #[cfg(target_os = "linux")]
            {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sock.send_to_addr(msg.as_bytes(), &addr)?;
            }
            #[cfg(not(target_os = "linux"))]
            let _ = name;
        } else {
            sock.send_to(msg.as_bytes(), &path)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Half of `$WATCHDOG_USEC` when the watchdog is on for this process.
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    {
        if pid != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

// ------------------------------------------------------------------------------------------------
// krawl check
// ------------------------------------------------------------------------------------------------

/// One line of `krawl check`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckLine {
    pub name: String,
    pub ok: bool,
    pub message: String,
}

/// What `krawl check` found; `ok()` when every line passed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckReport {
    pub lines: Vec<CheckLine>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.lines.iter().all(|l| l.ok)
    }

    fn push(&mut self, name: &str, result: Result<String, String>) -> bool {
        let ok = result.is_ok();
        self.lines.push(CheckLine {
            name: name.to_string(),
            ok,
            message: result.unwrap_or_else(|e| e),
        });
        ok
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(
                f,
                "[{}] {}: {}",
                if l.ok { " ok " } else { "FAIL" },
                l.name,
                l.message
            )?;
        }
        Ok(())
    }
}

/// `krawl check`: validates the config, resolves the control-plane credential (never printing
/// it), builds the HTTPS client and proves the control plane is reachable over TLS with an
/// unauthenticated `GET /v1/jobs` (401 expected, no side effects). Runs no job and does not
/// register.
///
/// `offline` (`krawl check --offline`, for CI and render-time checks): only what needs nothing
/// outside the config itself: the config, the policy and the secret-store settings. No secret is
/// resolved, no referenced file (CA bundle, token file) is read, nothing is contacted; a last
/// line says what was skipped.
pub async fn check(cfg: &AgentConfig, offline: bool) -> CheckReport {
    let mut report = CheckReport::default();
    let valid = report.push(
        "config",
        cfg.validate()
            .map(|()| {
                format!(
                    "valid (agent {:?}, {} job slots, control plane {})",
                    cfg.agent.name, cfg.agent.max_concurrent_jobs, cfg.control_plane.url
                )
            })
            .map_err(|e| e.to_string()),
    );
    if !valid {
        return report;
    }
    let warnings = cfg.policy.warnings(!cfg.secrets.allow.is_empty());
    // The files the policy pins are read only when not --offline.
    let files = if offline {
        Ok(())
    } else {
        cfg.policy.compile().and_then(|p| p.check_files())
    };
    report.push(
        "policy",
        files.map(|()| {
            if warnings.is_empty() {
                "no warnings".to_string()
            } else {
                warnings.join("; ")
            }
        }),
    );
    let stores = match krawl_secrets::Resolver::new(&cfg.secrets).await {
        Ok(stores) => {
            report.push("secret stores", Ok("configured".to_string()));
            Some(stores)
        }
        Err(e) => {
            report.push(
                "secret stores",
                Err(format!("{e}; fix the [secrets] section")),
            );
            None
        }
    };
    if offline {
        report.push(
            "network",
            Ok(
                "skipped (--offline): the credential is not resolved, the HTTPS client not \
                built and the control plane not contacted"
                    .to_string(),
            ),
        );
        return report;
    }
    let which = cfg
        .control_plane
        .auth
        .as_ref()
        .map(|a| a.describe())
        .unwrap_or("credential");
    let Some(stores) = stores else {
        report.push(
            "credential",
            Err(format!(
                "{which} not resolved: the secret stores could not be set up (see above)"
            )),
        );
        return report;
    };
    let credential = match Credential::resolve(cfg, &stores).await {
        Ok(c) => {
            report.push(
                "credential",
                Ok(format!("{which} resolved (value not shown)")),
            );
            Some(c)
        }
        Err(e) => {
            report.push("credential", Err(e.to_string()));
            None
        }
    };
    let client = match credential {
        Some(c) => match ControlPlaneClient::new(cfg, c, Arc::new(Telemetry::new())) {
            Ok(client) => {
                report.push(
                    "https client",
                    Ok(match &cfg.control_plane.ca_file {
                        Some(p) => format!("system roots plus {}", p.display()),
                        None => "system roots".to_string(),
                    }),
                );
                Some(client)
            }
            Err(e) => {
                report.push("https client", Err(e.to_string()));
                None
            }
        },
        None => match crate::client::http_client(cfg) {
            Ok(_) => None,
            Err(e) => {
                report.push("https client", Err(e.to_string()));
                None
            }
        },
    };
    let Some(client) = client else {
        return report;
    };
    let url = client.base_url().to_string();
    report.push(
        "control plane reachable",
        match client.probe().await {
            Ok(status) if status < 500 => Ok(format!(
                "{url} answered HTTP {status} to an unauthenticated GET {} (reachable{})",
                proto::paths::JOBS,
                if url.starts_with("https") { " over TLS" } else { "; plain http, demo only" }
            )),
            Ok(status) => Err(format!(
                "{url} answered HTTP {status}: the control plane (or a proxy in front of it) has a problem"
            )),
            Err(e) => Err(format!("{e}; {}", transport_hint(&e.to_string()))),
        },
    );
    if matches!(
        cfg.control_plane.auth,
        Some(crate::config::AuthConfig::Oauth2(_))
    ) {
        report.push(
            "oauth2 token",
            client
                .check_credential()
                .await
                .map(|()| "access token obtained (value not shown)".to_string())
                .map_err(|e| e.to_string()),
        );
    }
    report
}

fn transport_hint(msg: &str) -> &'static str {
    let m = msg.to_ascii_lowercase();
    if m.contains("certificate") || m.contains("tls") || m.contains("handshake") {
        "TLS failed: if the control plane uses a private CA, set control_plane.ca_file to its PEM; a TLS-inspecting proxy needs its CA there too"
    } else if m.contains("dns") || m.contains("resolve") || m.contains("lookup") {
        "the host name does not resolve: check control_plane.url and the DNS of this host"
    } else if m.contains("refused") {
        "connection refused: check the port in control_plane.url and that the control plane runs"
    } else if m.contains("timed out") || m.contains("timeout") {
        "timed out: check firewalls for outbound HTTPS and the proxy settings (control_plane.proxy, HTTPS_PROXY, NO_PROXY)"
    } else if m.contains("proxy") {
        "the proxy failed: check control_plane.proxy / HTTPS_PROXY"
    } else {
        "check control_plane.url, outbound HTTPS from this host, and the proxy settings"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_messages_are_capped() {
        assert_eq!(capped("short"), "short");
        let long = "é".repeat(MAX_ERROR_MESSAGE);
        let c = capped(&long);
        assert!(c.len() < MAX_ERROR_MESSAGE + 64, "{}", c.len());
        assert!(c.ends_with(&format!(
            "(cut at {MAX_ERROR_MESSAGE} of {} bytes)",
            long.len()
        )));
    }

    #[test]
    fn outcomes_map_to_completions() {
        assert_eq!(
            Outcome::Interrupted
                .status()
                .map(|(s, e)| (s, e.map(|e| e.class))),
            Some((CompletionStatus::Interrupted, Some("interrupted".into())))
        );
        assert_eq!(Outcome::LeaseLost.status(), None);
        assert_eq!(
            Outcome::Succeeded.status(),
            Some((CompletionStatus::Succeeded, None))
        );
    }

    #[tokio::test]
    async fn a_panicking_job_becomes_failed_other() {
        let joined: Result<(Result<(), JobFailure>, ChunkUploader), _> =
            tokio::spawn(async { panic!("boom") }).await;
        match decide(&joined, REASON_NONE, false) {
            Outcome::Failed(e) => {
                assert_eq!(e.class, "other");
                assert!(e.message.contains("boom"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn watchdog_and_notify_are_harmless_without_systemd() {
        // NOTIFY_SOCKET is not set under cargo test.
        sd_notify("READY=1");
        assert!(std::env::var_os("WATCHDOG_USEC").is_some() || watchdog_interval().is_none());
    }

    #[test]
    fn check_report_renders_each_line() {
        let mut r = CheckReport::default();
        r.push("config", Ok("valid".into()));
        r.push("control plane reachable", Err("refused".into()));
        assert!(!r.ok());
        let text = r.to_string();
        assert!(text.contains("[ ok ] config: valid"));
        assert!(text.contains("[FAIL] control plane reachable: refused"));
    }
}
