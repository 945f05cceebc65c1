//! A real control plane on 127.0.0.1:0 and a small agent-side HTTP helper (reqwest).
#![allow(clippy::unwrap_used, clippy::too_many_arguments, dead_code)]

use std::path::Path;
use std::time::Duration;

use krawl_controlplane::{start, BootstrapToken, RunningServer, ServerConfig};
use krawl_protocol::chunk::{self, Encoding};
use krawl_protocol::{
    paths, JobLease, JobView, RegisterResponse, CHUNK_RECORDS_HEADER, CHUNK_SHA256_HEADER,
};
use reqwest::{header, StatusCode};
use serde_json::{json, Value};

pub const ADMIN: &str = "admin-token-for-tests-0123456789";
/// The single (`--bootstrap-token-file`) token: grants no labels.
pub const BOOT: &str = "bootstrap-token-for-tests-0123456789";
/// The `dev` token: `env = "dev"`, `team = "*"`.
pub const DEV: &str = "dev-bootstrap-token-for-tests-0123456789";
/// The `prod` token: `env = "prod"`, `zone = "*"`.
pub const PROD: &str = "prod-bootstrap-token-for-tests-0123456789";

pub fn config(dir: &Path) -> ServerConfig {
    let mut cfg = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.join("cp.db"),
        ADMIN.to_string(),
        BOOT.to_string(),
    );
    cfg.bootstrap_tokens.push(BootstrapToken::scoped(
        "dev",
        DEV,
        [("env", "dev"), ("team", "*")],
    ));
    cfg.bootstrap_tokens.push(BootstrapToken::scoped(
        "prod",
        PROD,
        [("env", "prod"), ("zone", "*")],
    ));
    cfg.poll_wait = Duration::from_secs(1);
    cfg
}

pub struct Cp {
    pub server: Option<RunningServer>,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub token: String,
}

pub async fn start_cp(tweak: impl FnOnce(&mut ServerConfig)) -> Cp {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    tweak(&mut cfg);
    let server = start(cfg).await.unwrap();
    Cp {
        base: server.base_url(),
        server: Some(server),
        http: reqwest::Client::new(),
        dir,
    }
}

/// The error code and message of an ErrorBody answer.
pub async fn error_of(resp: reqwest::Response) -> (StatusCode, String, String) {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap().to_string(),
        body["error"]["message"].as_str().unwrap().to_string(),
    )
}

pub fn ndjson(lines: usize, tag: &str) -> Vec<u8> {
    (0..lines)
        .map(|i| format!("{{\"kind\":\"topic\",\"tag\":\"{tag}\",\"i\":{i}}}\n"))
        .collect::<String>()
        .into_bytes()
}

impl Cp {
    /// Shuts the server down and starts a new one on the same address and database.
    pub async fn restart(self, tweak: impl FnOnce(&mut ServerConfig)) -> Cp {
        let Cp {
            server, http, dir, ..
        } = self;
        let server = server.expect("the server is running");
        let addr = server.addr();
        server.shutdown().await;
        let mut cfg = config(dir.path());
        cfg.listen = addr;
        tweak(&mut cfg);
        let server = start(cfg).await.unwrap();
        Cp {
            base: server.base_url(),
            server: Some(server),
            http,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers with the single token (no labels granted): for agents without labels.
    pub async fn register(&self, name: &str, labels: Value) -> Agent {
        self.register_with(BOOT, name, labels).await
    }

    /// `POST /v1/agents/register` with this bootstrap token, whatever the answer.
    pub async fn register_raw(&self, token: &str, name: &str, labels: Value) -> reqwest::Response {
        self.http
            .post(self.url(paths::REGISTER))
            .bearer_auth(token)
            .json(
                &json!({"name": name, "version": "test", "capabilities": ["kafka.extract"],
                          "labels": labels, "max_concurrent_jobs": 2}),
            )
            .send()
            .await
            .unwrap()
    }

    /// Registers with this bootstrap token; panics unless it is accepted.
    pub async fn register_with(&self, token: &str, name: &str, labels: Value) -> Agent {
        let resp = self.register_raw(token, name, labels).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let r: RegisterResponse = resp.json().await.unwrap();
        assert_eq!(r.agent_token.len(), 64);
        Agent {
            id: r.agent_id,
            token: r.agent_token,
        }
    }

    pub async fn submit(&self, job: Value) -> JobView {
        let resp = self.submit_raw(job.to_string()).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json().await.unwrap()
    }

    /// `POST /v1/jobs` with this exact body (admin token), whatever the answer.
    pub async fn submit_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(self.url(paths::JOBS))
            .bearer_auth(ADMIN)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn job(&self, id: &str) -> JobView {
        let resp = self
            .http
            .get(self.url(&paths::job(id)))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    pub async fn poll_raw(&self, agent: &Agent, kinds: &[&str]) -> reqwest::Response {
        self.http
            .post(self.url(&paths::poll(&agent.id)))
            .bearer_auth(&agent.token)
            .json(&json!({"free_slots": 1, "kinds": kinds}))
            .send()
            .await
            .unwrap()
    }

    pub async fn poll(&self, agent: &Agent) -> Option<JobLease> {
        let resp = self.poll_raw(agent, &[]).await;
        match resp.status() {
            StatusCode::OK => Some(resp.json().await.unwrap()),
            StatusCode::NO_CONTENT => None,
            s => panic!("poll answered {s}: {}", resp.text().await.unwrap()),
        }
    }

    pub async fn put_chunk_raw(
        &self,
        agent: &Agent,
        job: &str,
        attempt: u32,
        seq: u32,
        body: Vec<u8>,
        encoding: Encoding,
        sha256: &str,
        records: u64,
    ) -> reqwest::Response {
        self.http
            .put(self.url(&paths::chunk(job, attempt, seq)))
            .bearer_auth(&agent.token)
            .header(header::CONTENT_ENCODING, encoding.header_value())
            .header(CHUNK_SHA256_HEADER, sha256)
            .header(CHUNK_RECORDS_HEADER, records.to_string())
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Uploads `ndjson` as chunk `seq` (zstd) and returns the response.
    pub async fn put_chunk(
        &self,
        agent: &Agent,
        lease: &JobLease,
        seq: u32,
        ndjson: &[u8],
    ) -> reqwest::Response {
        self.put_chunk_enc(agent, lease, seq, ndjson, Encoding::Zstd)
            .await
    }

    pub async fn put_chunk_enc(
        &self,
        agent: &Agent,
        lease: &JobLease,
        seq: u32,
        ndjson: &[u8],
        enc: Encoding,
    ) -> reqwest::Response {
        let lines = ndjson.iter().filter(|b| **b == b'\n').count() as u64;
        self.put_chunk_raw(
            agent,
            &lease.job_id,
            lease.attempt,
            seq,
            chunk::encode(ndjson, enc).unwrap(),
            enc,
            &chunk::sha256_hex(ndjson),
            lines,
        )
        .await
    }

    pub async fn complete(
        &self,
        agent: &Agent,
        lease: &JobLease,
        body: Value,
    ) -> reqwest::Response {
        self.http
            .post(self.url(&paths::complete(&lease.job_id, lease.attempt)))
            .bearer_auth(&agent.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn job_heartbeat(&self, agent: &Agent, job: &str, attempt: u32) -> reqwest::Response {
        self.http
            .post(self.url(&paths::job_heartbeat(job, attempt)))
            .bearer_auth(&agent.token)
            .json(&json!({"phase": "upload", "records": 1, "chunks": 0}))
            .send()
            .await
            .unwrap()
    }

    pub async fn results(&self, job: &str) -> reqwest::Response {
        self.http
            .get(self.url(&paths::job_results(job)))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
    }
}

/// `{status: succeeded, ...}` for these decoded chunks.
pub fn succeeded(chunks: &[&[u8]]) -> Value {
    let mut h = chunk::StreamHash::default();
    let mut records = 0u64;
    for c in chunks {
        h.update(c);
        records += c.iter().filter(|b| **b == b'\n').count() as u64;
    }
    json!({"status": "succeeded", "chunks": chunks.len(), "records": records, "sha256": h.hex()})
}
