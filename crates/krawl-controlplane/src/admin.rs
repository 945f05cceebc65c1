//! The admin API client (what `krawl jobs` uses): submit, list, get, results, cancel, wait,
//! agents, drain.

use std::path::Path;
use std::time::Duration;

use krawl_protocol::{paths, AgentList, ErrorBody, JobList, JobView, SubmitJob};
use reqwest::{header, Method, StatusCode};
use serde::de::DeserializeOwned;

/// Why an admin call failed. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Config(String),
    #[error("cannot reach the control plane at {url}: {message}")]
    Transport { url: String, message: String },
    #[error("the control plane answered {status} ({code}) for {url}: {message}")]
    Api {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from {url}: {message}")]
    Protocol { url: String, message: String },
    #[error("job {job_id} is still {state} after {waited:?}")]
    Timeout {
        job_id: String,
        state: String,
        waited: Duration,
    },
}

impl AdminError {
    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            AdminError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client of the admin API, authenticated with the admin token.
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// How often [`AdminClient::wait`] looks at the job: a fiftieth of the time waited so far,
/// between [`WAIT_POLL_MIN`] and [`WAIT_POLL_MAX`]. A job is seen done at most 2% (or 20 ms)
/// after it ended (a fixed 500 ms made a one-second job look 1.5 s long; a tenth still added
/// about 0.2 s to a 3.7 s job), and a long one costs the control plane one small read a second.
const WAIT_POLL_MIN: Duration = Duration::from_millis(20);
const WAIT_POLL_MAX: Duration = Duration::from_secs(1);
const WAIT_POLL_FRACTION: u32 = 50;

impl AdminClient {
    /// `ca_file`: trust only this PEM CA (a private control plane); else the system roots.
    pub fn new(base_url: &str, token: &str, ca_file: Option<&Path>) -> Result<Self, AdminError> {
        let base = base_url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(AdminError::Config(format!(
                "control plane URL {base:?} must start with https:// (or http:// on loopback)"
            )));
        }
        if token.trim().is_empty() {
            return Err(AdminError::Config(
                "the admin token is empty: set KRAWL_CP_ADMIN_TOKEN".to_string(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                AdminError::Config(format!("cannot read the CA file {}: {e}", path.display()))
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                AdminError::Config(format!("{} is not a PEM certificate: {e}", path.display()))
            })?;
            builder = builder.tls_certs_only([cert]);
        }
        let http = builder
            .build()
            .map_err(|e| AdminError::Config(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            base,
            token: token.trim().to_string(),
            http,
        })
    }

    pub async fn submit(&self, job: &SubmitJob) -> Result<JobView, AdminError> {
        self.json(Method::POST, paths::JOBS, Some(job)).await
    }

    pub async fn list(&self) -> Result<JobList, AdminError> {
        self.json::<(), _>(Method::GET, paths::JOBS, None).await
    }

    pub async fn get(&self, job_id: &str) -> Result<JobView, AdminError> {
        self.json::<(), _>(Method::GET, &paths::job(job_id), None)
            .await
    }

    /// The job's results: decoded NDJSON.
    pub async fn results(&self, job_id: &str) -> Result<Vec<u8>, AdminError> {
        let (url, resp) = self
            .send::<()>(Method::GET, &paths::job_results(job_id), None)
            .await?;
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| transport(&url, &e))
    }

    pub async fn cancel(&self, job_id: &str) -> Result<JobView, AdminError> {
        self.json::<(), _>(Method::POST, &paths::job_cancel(job_id), None)
            .await
    }

    /// Polls the job until it is succeeded, failed or cancelled, or `timeout` passes.
    pub async fn wait(&self, job_id: &str, timeout: Duration) -> Result<JobView, AdminError> {
        let start = tokio::time::Instant::now();
        loop {
            let view = self.get(job_id).await?;
            if view.state.is_terminal() {
                return Ok(view);
            }
            if start.elapsed() >= timeout {
                return Err(AdminError::Timeout {
                    job_id: job_id.to_string(),
                    state: view.state.as_str().to_string(),
                    waited: timeout,
                });
            }
            tokio::time::sleep(
                (start.elapsed() / WAIT_POLL_FRACTION).clamp(WAIT_POLL_MIN, WAIT_POLL_MAX),
            )
            .await;
        }
    }

    pub async fn agents(&self) -> Result<AgentList, AdminError> {
        self.json::<(), _>(Method::GET, paths::AGENTS, None).await
    }

    /// Asks an agent to drain: stop polling, finish its jobs, exit.
    pub async fn drain(&self, agent_id: &str) -> Result<(), AdminError> {
        self.send::<()>(Method::POST, &paths::agent_drain(agent_id), None)
            .await
            .map(|_| ())
    }

    async fn json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, AdminError> {
        let (url, resp) = self.send(method, path, body).await?;
        let bytes = resp.bytes().await.map_err(|e| transport(&url, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| AdminError::Protocol {
            url,
            message: format!("the body is not the expected JSON: {e}"),
        })
    }

    async fn send<B: serde::Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(String, reqwest::Response), AdminError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method, &url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| transport(&url, &e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok((url, resp));
        }
        let text = resp.text().await.unwrap_or_default();
        let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => (b.error.code, b.error.message),
            Err(_) => (reason(status), text.chars().take(300).collect::<String>()),
        };
        Err(AdminError::Api {
            url,
            status: status.as_u16(),
            code,
            message,
        })
    }
}

fn reason(status: StatusCode) -> String {
    status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
}

/// The error and its causes (reqwest's top-level message alone rarely says what went wrong).
fn transport(url: &str, e: &reqwest::Error) -> AdminError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    AdminError::Transport {
        url: url.to_string(),
        message,
    }
}
