//! The agent core against the real reference control plane (no mocks): a control-plane restart
//! during an upload, a chunk whose acknowledgement was lost (dedup), a rejected bootstrap token,
//! a rate limit with `Retry-After`, a cancel through the job heartbeat, and graceful shutdown.
//! The jobs are a small test executor (no Kafka needed): it emits `warning` records and can
//! block until cancelled.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use krawl_agent::agent::{run_with, Executor};
use krawl_agent::client::{ClientError, ControlPlaneClient, Credential};
use krawl_agent::config::AgentConfig;
use krawl_agent::health::Telemetry;
use krawl_agent::jobs::{JobContext, JobFailure};
use krawl_agent::progress::JobProgress;
use krawl_agent::upload::{ChunkCutter, ChunkUploader, UploadSettings};
use krawl_controlplane::admin::AdminClient;
use krawl_controlplane::{start, RateLimit, RunningServer, ServerConfig};
use krawl_kafka::RecordSink;
use krawl_model::{Record, WarningRecord};
use krawl_protocol::{JobState, SubmitJob};
use krawl_secrets::Resolver;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "admin-token-for-agent-tests-0123456789";
const BOOT: &str = "bootstrap-token-for-agent-tests-0123456789";

fn warning(i: u64) -> Record {
    Record::Warning(WarningRecord {
        code: "test".into(),
        scope: "cluster".into(),
        subject: None,
        message: format!("record {i}"),
    })
}

/// Emits `records` records; with `pause_after`, waits on a notify after that many (the test
/// restarts the control plane meanwhile); with `block`, then waits for cancel. The script is a
/// JSON object written as the spec's `kafka.client_id` ([`script`]): the control plane stores
/// only specs that have a `kafka.*` job's structure.
struct TestExec {
    paused: tokio::sync::Notify,
    resume: tokio::sync::Notify,
}

impl TestExec {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            paused: tokio::sync::Notify::new(),
            resume: tokio::sync::Notify::new(),
        })
    }
}

impl Executor for TestExec {
    async fn execute(&self, ctx: &JobContext, sink: &mut ChunkUploader) -> Result<(), JobFailure> {
        {
            let script: serde_json::Value = ctx.spec["kafka"]["client_id"]
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default();
            let n = script["records"].as_u64().unwrap_or(0);
            let pause_after = script["pause_after"].as_u64();
            for i in 0..n {
                if Some(i) == pause_after {
                    self.paused.notify_one();
                    self.resume.notified().await;
                }
                sink.emit(warning(i)).await.map_err(|e| JobFailure {
                    class: "output".into(),
                    message: e.to_string(),
                })?;
            }
            if script["block"].as_bool() == Some(true) {
                ctx.cancel.cancelled().await;
                return Err(JobFailure {
                    class: "cancelled".into(),
                    message: "stopped".into(),
                });
            }
            Ok(())
        }
    }
}

fn server_config(dir: &std::path::Path, listen: &str) -> ServerConfig {
    let mut cfg = ServerConfig::new(
        listen.parse().unwrap(),
        dir.join("cp.db"),
        ADMIN.to_string(),
        BOOT.to_string(),
    );
    cfg.poll_wait = Duration::from_secs(1);
    cfg
}

fn agent_config(base: &str, token: &str, extra: &str) -> AgentConfig {
    let text = format!(
        r#"
        [agent]
        name = "test-agent"
        health_listen = ""
        chunk_max_records = 10
        shutdown_grace_secs = 1
        {extra}
        [control_plane]
        url = "{base}"
        request_timeout_secs = 5
        auth = {{ bootstrap_token = "{token}" }}
        "#
    );
    AgentConfig::from_toml(&text, "test", &|_| None).unwrap()
}

/// A control plane on a free port with its database in `dir`: the server, its base URL and
/// an admin client.
async fn control_plane(dir: &std::path::Path) -> (RunningServer, String, AdminClient) {
    let server = start(server_config(dir, "127.0.0.1:0")).await.unwrap();
    let base = server.base_url();
    let admin = AdminClient::new(&base, ADMIN, None).unwrap();
    (server, base, admin)
}

/// Waits until the agent runs one job.
async fn wait_running(agent: &Running) {
    let t = agent.telemetry.clone();
    wait_until("the job to run", Duration::from_secs(20), || {
        t.metrics.running_jobs.get() == 1
    })
    .await;
}

struct Running {
    shutdown: CancellationToken,
    hard: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    telemetry: Arc<Telemetry>,
}

fn spawn_agent(cfg: AgentConfig, exec: Arc<TestExec>) -> Running {
    let shutdown = CancellationToken::new();
    let hard = CancellationToken::new();
    let telemetry = Arc::new(Telemetry::new());
    let handle = tokio::spawn(run_with(
        cfg,
        exec,
        Resolver::default(),
        telemetry.clone(),
        shutdown.clone(),
        hard.clone(),
    ));
    Running {
        shutdown,
        hard,
        handle,
        telemetry,
    }
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.handle)
            .await
            .expect("agent stops after shutdown")
            .unwrap()
            .unwrap();
        drop(self.hard);
    }
}

/// A valid `kafka.list_topics` spec carrying the [`TestExec`] script.
fn script(s: serde_json::Value) -> serde_json::Value {
    json!({"kafka": {"bootstrap_servers": ["fake-broker:9092"], "client_id": s.to_string()}})
}

async fn submit(admin: &AdminClient, spec: serde_json::Value, ttl: Option<u32>) -> String {
    admin
        .submit(&SubmitJob {
            kind: "kafka.list_topics".into(),
            spec: script(spec),
            labels: Default::default(),
            max_attempts: Some(3),
            lease_ttl_secs: ttl,
        })
        .await
        .unwrap()
        .id
}

fn lines(results: &[u8]) -> Vec<String> {
    String::from_utf8(results.to_vec())
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message"].as_str().unwrap().to_string()
        })
        .collect()
}

async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_restart_mid_upload_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, admin) = control_plane(dir.path()).await;
    let addr = server.addr();
    let exec = TestExec::new();
    let agent = spawn_agent(agent_config(&base, BOOT, ""), exec.clone());

    let job = submit(&admin, json!({"records": 95, "pause_after": 35}), None).await;
    // 3 chunks of 10 are acknowledged, 5 records are buffered; stop the control plane.
    tokio::time::timeout(Duration::from_secs(30), exec.paused.notified())
        .await
        .unwrap();
    server.shutdown().await;
    exec.resume.notify_one();
    // The agent keeps retrying chunk 3 while the server is down.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server: RunningServer = start(server_config(dir.path(), &addr.to_string()))
        .await
        .unwrap();

    let view = admin.wait(&job, Duration::from_secs(60)).await.unwrap();
    assert_eq!(view.state, JobState::Succeeded, "{view:?}");
    let result = view.result.unwrap();
    assert_eq!(result.records, 95);
    assert_eq!(result.chunks, 10);
    let got = lines(&admin.results(&job).await.unwrap());
    let want: Vec<String> = (0..95).map(|i| format!("record {i}")).collect();
    assert_eq!(got, want, "every record exactly once, in order");
    let m = agent.telemetry.encode();
    assert!(m.contains("krawl_records_uploaded_total 95"), "{m}");
    assert!(m.contains("krawl_chunks_uploaded_total 10"), "{m}");
    agent.stop().await;
    server.shutdown().await;
}

/// The control plane comes back with an empty database while a job uploads: its agent token
/// is unknown (401 on the attempt endpoints, 404 on the poll), so the agent drops the attempt
/// without completing it, registers again and runs the next job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_that_lost_its_database_mid_job_gets_a_new_registration() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, admin) = control_plane(dir.path()).await;
    let addr = server.addr();
    let exec = TestExec::new();
    let agent = spawn_agent(agent_config(&base, BOOT, ""), exec.clone());

    submit(&admin, json!({"records": 30, "pause_after": 15}), None).await;
    tokio::time::timeout(Duration::from_secs(30), exec.paused.notified())
        .await
        .unwrap();
    server.shutdown().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("cp.db{suffix}")));
    }
    let server: RunningServer = start(server_config(dir.path(), &addr.to_string()))
        .await
        .unwrap();
    exec.resume.notify_one();

    let t = agent.telemetry.clone();
    wait_until("the attempt to be dropped", Duration::from_secs(30), || {
        t.encode()
            .contains("krawl_jobs_total{kind=\"kafka.list_topics\",outcome=\"lease_lost\"} 1")
    })
    .await;
    let job = submit(&admin, json!({"records": 3}), None).await;
    let view = admin.wait(&job, Duration::from_secs(60)).await.unwrap();
    assert_eq!(view.state, JobState::Succeeded, "{view:?}");
    assert_eq!(admin.agents().await.unwrap().agents.len(), 1);
    let m = agent.telemetry.encode();
    assert!(!m.contains("outcome=\"failed\""), "{m}");
    agent.stop().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_whose_ack_was_lost_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, admin) = control_plane(dir.path()).await;
    let cfg = agent_config(&base, BOOT, "");
    let telemetry = Arc::new(Telemetry::new());
    let client = Arc::new(
        ControlPlaneClient::new(
            &cfg,
            Credential::resolve(&cfg, &Resolver::default())
                .await
                .unwrap(),
            telemetry.clone(),
        )
        .unwrap(),
    );
    client
        .register(&krawl_protocol::RegisterRequest {
            name: "t".into(),
            version: "0".into(),
            capabilities: vec!["kafka.list_topics".into()],
            labels: Default::default(),
            max_concurrent_jobs: 1,
        })
        .await
        .unwrap();
    let job = submit(&admin, json!({}), None).await;
    let lease = client
        .poll(&krawl_protocol::PollRequest {
            free_slots: 1,
            kinds: vec![],
        })
        .await
        .unwrap()
        .expect("a lease");
    assert_eq!(lease.job_id, job);

    // Chunk 0 reached the server, but its acknowledgement was lost: the agent sends it again.
    let mut cutter = ChunkCutter::new(10, 1 << 20);
    for i in 0..10 {
        cutter.push(warning(i)).unwrap();
    }
    let (bytes, n) = cutter.take();
    let body =
        krawl_protocol::chunk::encode(&bytes, krawl_protocol::chunk::Encoding::Zstd).unwrap();
    let sha = krawl_protocol::chunk::sha256_hex(&bytes);
    let ack = client
        .put_chunk(&job, lease.attempt, 0, body.into(), &sha, n)
        .await
        .unwrap();
    assert!(!ack.duplicate);

    let mut up = ChunkUploader::new(
        client.clone(),
        job.clone(),
        lease.attempt,
        UploadSettings {
            max_records: 10,
            ..UploadSettings::default()
        },
        CancellationToken::new(),
        Arc::new(JobProgress::default()),
        telemetry,
    );
    for i in 0..15 {
        up.emit(warning(i)).await.unwrap();
    }
    let summary = up.finish().await.unwrap();
    assert_eq!((summary.chunks, summary.records), (2, 15));
    // A different body for a stored seq is a conflict, never a silent overwrite.
    let other =
        krawl_protocol::chunk::encode(b"{}\n", krawl_protocol::chunk::Encoding::Zstd).unwrap();
    let err = client
        .put_chunk(
            &job,
            lease.attempt,
            0,
            other.into(),
            &krawl_protocol::chunk::sha256_hex(b"{}\n"),
            1,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Conflict { .. }), "{err}");
    client
        .complete(
            &job,
            lease.attempt,
            &krawl_protocol::CompleteRequest {
                status: krawl_protocol::CompletionStatus::Succeeded,
                chunks: summary.chunks,
                records: summary.records,
                sha256: summary.sha256,
                error: None,
            },
        )
        .await
        .unwrap();
    let view = admin.get(&job).await.unwrap();
    assert_eq!(view.state, JobState::Succeeded, "{view:?}");
    let got = lines(&admin.results(&job).await.unwrap());
    assert_eq!(got.len(), 15);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_bootstrap_token_backs_off_without_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, _) = control_plane(dir.path()).await;
    let agent = spawn_agent(
        agent_config(&base, "not-the-bootstrap-token-000000000000", ""),
        TestExec::new(),
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !agent.handle.is_finished(),
        "the agent must not exit on 401"
    );
    let reason = agent.telemetry.readiness().unwrap_err();
    assert!(reason.contains("bootstrap token"), "{reason}");
    assert!(reason.contains("401"), "{reason}");
    let m = agent.telemetry.encode();
    let attempts: u64 = m
        .lines()
        .find(|l| l.starts_with("krawl_control_plane_errors_total{kind=\"unauthorized\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    // Back-off 1 s, 2 s, 4 s (each jittered to [d/2, d]): at most 4 tries in 4 s, no spinning.
    assert!((2..=4).contains(&attempts), "{attempts} attempts in 4 s");
    agent.stop().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_typed_with_retry_after_and_jobs_still_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = server_config(dir.path(), "127.0.0.1:0");
    cfg.agent_rate_limit = Some(RateLimit {
        per_second: 2.0,
        burst: 2,
    });
    let server = start(cfg).await.unwrap();
    let base = server.base_url();
    let admin = AdminClient::new(&base, ADMIN, None).unwrap();

    // The client sees 429 as RateLimited with the server's Retry-After.
    let acfg = agent_config(&base, BOOT, "");
    let client = ControlPlaneClient::new(
        &acfg,
        Credential::resolve(&acfg, &Resolver::default())
            .await
            .unwrap(),
        Arc::new(Telemetry::new()),
    )
    .unwrap();
    client
        .register(&krawl_protocol::RegisterRequest {
            name: "t".into(),
            version: "0".into(),
            capabilities: vec![],
            labels: Default::default(),
            max_concurrent_jobs: 1,
        })
        .await
        .unwrap();
    let mut limited = None;
    for _ in 0..10 {
        match client
            .agent_heartbeat(&krawl_protocol::AgentHeartbeat::default())
            .await
        {
            Ok(_) => continue,
            Err(e) => {
                limited = Some(e);
                break;
            }
        }
    }
    let err = limited.expect("the rate limit answers 429");
    assert!(
        matches!(err, ClientError::RateLimited { status: 429, retry_after: Some(d), .. } if d >= Duration::from_secs(1)),
        "{err:?}"
    );

    // An agent under the same limit still completes a multi-chunk job (it waits, then retries
    // the same chunk).
    let agent = spawn_agent(acfg, TestExec::new());
    let job = submit(&admin, json!({"records": 60}), None).await;
    let view = admin.wait(&job, Duration::from_secs(90)).await.unwrap();
    assert_eq!(view.state, JobState::Succeeded, "{view:?}");
    assert_eq!(lines(&admin.results(&job).await.unwrap()).len(), 60);
    assert!(agent.telemetry.encode().contains("kind=\"rate_limited\""));
    agent.stop().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_the_job_through_its_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, admin) = control_plane(dir.path()).await;
    let agent = spawn_agent(agent_config(&base, BOOT, ""), TestExec::new());
    let job = submit(&admin, json!({"records": 3, "block": true}), Some(3)).await;
    wait_running(&agent).await;
    admin.cancel(&job).await.unwrap();
    let view = admin.wait(&job, Duration::from_secs(20)).await.unwrap();
    assert_eq!(view.state, JobState::Cancelled, "{view:?}");
    assert!(agent
        .telemetry
        .encode()
        .contains("krawl_jobs_total{kind=\"kafka.list_topics\",outcome=\"cancelled\"} 1"));
    agent.stop().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_interrupts_jobs_after_the_grace_period_and_they_are_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, admin) = control_plane(dir.path()).await;
    let agent = spawn_agent(agent_config(&base, BOOT, ""), TestExec::new());
    let job = submit(&admin, json!({"records": 3, "block": true}), Some(30)).await;
    wait_running(&agent).await;
    let started = Instant::now();
    agent.stop().await;
    // Grace is 1 s; the agent stops soon after, having completed the attempt as interrupted.
    assert!(started.elapsed() < Duration::from_secs(10));
    let view = admin.get(&job).await.unwrap();
    assert_eq!(view.state, JobState::Queued, "{view:?}");
    assert_eq!(view.attempts[0].state, "interrupted", "{view:?}");
    assert_eq!(
        view.attempts[0].error.as_ref().map(|e| e.class.as_str()),
        Some("interrupted")
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_token_registers_and_then_uses_the_issued_agent_token() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, admin) = control_plane(dir.path()).await;
    // A literal for the test; deployments reference a secret (env://, vault://, ...).
    let text = format!(
        "[agent]\nhealth_listen = \"\"\n[control_plane]\nurl = \"{base}\"\nauth = {{ static_token = \"{BOOT}\" }}\n"
    );
    let cfg = AgentConfig::from_toml(&text, "test", &|_| None).unwrap();
    let agent = spawn_agent(cfg, TestExec::new());
    let job = submit(&admin, json!({"records": 12}), None).await;
    let view = admin.wait(&job, Duration::from_secs(30)).await.unwrap();
    assert_eq!(view.state, JobState::Succeeded, "{view:?}");
    agent.stop().await;
    server.shutdown().await;
}
