//! Request bodies carrying a canary at a position of the wrong type: every answer names the
//! field and the expected type, and the canary is in no response body and no log line of the
//! server. Its own test binary: the log capture is a process-wide tracing subscriber at TRACE.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::*;
use krawl_protocol::paths;
use reqwest::StatusCode;
use serde_json::json;

/// A string and a number that must never be echoed (a literal credential at the wrong type).
const CANARY: &str = "canary-credential-5e1b9d";
const CANARY_NUM: u64 = 918_273_645_546_372;

/// Everything logged by this process.
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .init();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_canary_at_the_wrong_type_is_in_no_answer_and_no_log_line() {
    let log = log();
    let cp = start_cp(|_| {}).await;
    let agent = cp.register("a", json!({})).await;
    cp.submit(
        json!({"kind": "kafka.extract", "spec": {"kafka": {"bootstrap_servers": ["b:9092"]}}}),
    )
    .await;
    let lease = cp.poll(&agent).await.unwrap();
    let n = CANARY_NUM;

    // (method, path, bearer, body, the field the answer must name)
    let cases: Vec<(&str, String, &str, String, &str)> = vec![
        (
            "POST",
            paths::JOBS.into(),
            ADMIN,
            format!(r#"{{"kind": {n}, "spec": {{}}}}"#),
            "`kind`",
        ),
        (
            "POST",
            paths::JOBS.into(),
            ADMIN,
            format!(r#"{{"kind": "kafka.extract", "spec": {{}}, "max_attempts": "{CANARY}"}}"#),
            "`max_attempts`",
        ),
        (
            "POST",
            paths::JOBS.into(),
            ADMIN,
            format!(r#"{{"kind": "kafka.extract", "spec": {{}}, "labels": {{"env": {n}}}}}"#),
            "`labels.env`",
        ),
        (
            "POST",
            paths::JOBS.into(),
            ADMIN,
            format!(r#"{{"kind": "kafka.extract", "spec": {{}}, "lease_ttl_secs": {n}}}"#),
            "`lease_ttl_secs`",
        ),
        (
            "POST",
            paths::JOBS.into(),
            ADMIN,
            format!(r#"{{"kind": "kafka.extract", "spec": {{"kafka": "{CANARY}"#),
            "line 1",
        ),
        (
            "POST",
            paths::job_heartbeat(&lease.job_id, lease.attempt),
            &agent.token,
            format!(r#"{{"phase": {n}}}"#),
            "`phase`",
        ),
        (
            "POST",
            paths::job_heartbeat(&lease.job_id, lease.attempt),
            &agent.token,
            format!(r#"{{"phase": "upload", "records": "{CANARY}"}}"#),
            "`records`",
        ),
        (
            "POST",
            paths::agent_heartbeat(&agent.id),
            &agent.token,
            format!(r#"{{"running_jobs": "{CANARY}"}}"#),
            "`running_jobs`",
        ),
        (
            "POST",
            paths::complete(&lease.job_id, lease.attempt),
            &agent.token,
            format!(r#"{{"status": "{CANARY}", "chunks": 0, "records": 0, "sha256": ""}}"#),
            "`status`",
        ),
        (
            "POST",
            paths::poll(&agent.id),
            &agent.token,
            format!(r#"{{"free_slots": "{CANARY}"}}"#),
            "`free_slots`",
        ),
        (
            "POST",
            paths::REGISTER.into(),
            BOOT,
            format!(
                r#"{{"name": {n}, "version": "t", "capabilities": [], "max_concurrent_jobs": 1}}"#
            ),
            "`name`",
        ),
    ];
    for (method, path, bearer, body, field) in &cases {
        let resp = cp
            .http
            .request(method.parse().unwrap(), cp.url(path))
            .bearer_auth(bearer)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {text}");
        assert!(
            !text.contains(CANARY) && !text.contains(&n.to_string()),
            "{path} {body} echoed the value: {text}"
        );
        assert!(text.contains(field), "{path} {body}: {text}");
    }
    // The attempt is untouched by the refused bodies: it still heartbeats and completes.
    assert_eq!(
        cp.job_heartbeat(&agent, &lease.job_id, lease.attempt)
            .await
            .status(),
        StatusCode::OK
    );
    cp.server.unwrap().shutdown().await;

    let logged = String::from_utf8_lossy(&log.lock().unwrap()).to_string();
    assert!(
        logged.matches("request refused").count() >= cases.len(),
        "the refusals were logged: {logged}"
    );
    for line in logged.lines() {
        assert!(
            !line.contains(CANARY) && !line.contains(&n.to_string()),
            "a log line carries the canary: {line}"
        );
    }
}
