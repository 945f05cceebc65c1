//! A small read-only client of the Confluent-compatible Schema Registry REST
//! API. It sends only `GET` requests.
//!
//! Every request carries the registry `Accept` types and a timeout; 5xx
//! answers, timeouts and connection errors are retried `retries` times with
//! a backoff, and 429 / 503 honour `Retry-After` (seconds or an HTTP date,
//! capped at [`MAX_RETRY_AFTER`]). Errors name the URL (never credentials),
//! the HTTP status, and the registry's `error_code` and `message`.
//!
//! The registry is not trusted: every answer body is read through
//! [`krawl_http::read_capped`] with [`krawl_http::limits::SCHEMA_REGISTRY`] (the subject list:
//! [`krawl_http::limits::SCHEMA_REGISTRY_SUBJECTS`])
//! (a bigger body is [`RegistryError::TooLarge`], refused before it is
//! buffered), and redirects are never followed (a 3xx is an error), so a
//! hostile registry can neither exhaust memory with one answer nor send the
//! credentials to another host.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use krawl_http::BodyError;
use krawl_model::SchemaReference;
use krawl_secrets::SecretString;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use zeroize::Zeroize;

use crate::config::{RegistryAuth, RegistryConfigError, RegistrySecrets, SchemaRegistryConfig};

/// The media types a Confluent-compatible registry answers with.
pub const ACCEPT_TYPES: &str =
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json";

/// The longest `Retry-After` krawl waits before retrying.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why a registry call failed. Never carries credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The config is invalid or the client could not be built from it.
    #[error(transparent)]
    Config(#[from] RegistryConfigError),
    /// No HTTP answer: DNS, connection refused, TLS, timeout.
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    /// HTTP 401.
    #[error("authentication failed: check schema_registry.auth (for Confluent Cloud, an API key and secret of the Schema Registry cluster, not the Kafka cluster){detail}")]
    Unauthorized { detail: String },
    /// HTTP 403.
    #[error("permission denied: the principal needs read (DeveloperRead / Subject Read) on {what}{detail}")]
    Forbidden { what: String, detail: String },
    /// HTTP 404 naming a subject or version.
    #[error("{what} not found{detail}")]
    NotFound { what: String, detail: String },
    /// HTTP 429 after every retry.
    #[error("the registry kept rate-limiting the requests (HTTP 429) for {what} after {attempts} attempts{detail}; lower schema_registry.concurrency")]
    RateLimited {
        what: String,
        attempts: u32,
        detail: String,
    },
    /// HTTP 5xx after every retry.
    #[error("the registry failed (HTTP {status}{code}) for {what}: {message}")]
    Server {
        status: u16,
        code: String,
        what: String,
        message: String,
    },
    /// Any other unexpected status.
    #[error("unexpected answer HTTP {status} for {what}{detail}")]
    Http {
        status: u16,
        what: String,
        detail: String,
    },
    /// The answer body is larger than its limit ([`krawl_http::limits::SCHEMA_REGISTRY`], or
    /// [`krawl_http::limits::SCHEMA_REGISTRY_SUBJECTS`] for the subject list):
    /// refused before it was buffered. `path` is the URL path (no credentials).
    #[error("the answer for {what} (GET {path}) is larger than the limit of {limit} bytes; no honest registry answer is that big")]
    TooLarge {
        what: String,
        path: String,
        limit: usize,
    },
    /// A 2xx answer that is not what the API documents.
    #[error("unexpected answer for {what} from {url}: {message}")]
    Decode {
        what: String,
        url: String,
        message: String,
    },
}

impl RegistryError {
    /// Whether the error concerns one item (a subject or version) rather than
    /// the registry as a whole.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// One version of a subject's schema as `GET /subjects/{s}/versions/{v}` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SchemaVersion {
    #[serde(default)]
    pub subject: String,
    pub id: i32,
    pub version: i32,
    /// `AVRO` when the registry omits it (Confluent does for Avro).
    #[serde(rename = "schemaType", default = "avro")]
    pub schema_type: String,
    pub schema: String,
    #[serde(default)]
    pub references: Vec<SchemaReference>,
}

fn avro() -> String {
    "AVRO".to_string()
}

/// Which version to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(i32),
}

impl From<i32> for VersionSpec {
    fn from(v: i32) -> Self {
        Self::Number(v)
    }
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error_code: Option<i64>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ConfigBody {
    #[serde(rename = "compatibilityLevel", alias = "compatibility")]
    level: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ModeBody {
    mode: Option<String>,
}

#[derive(Debug)]
enum Auth {
    None,
    Basic {
        username: String,
        password: SecretString,
    },
    Bearer(SecretString),
}

/// A status and body, after retries.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
    attempts: u32,
}

/// The read-only registry client: its own connection pool, TLS and auth.
#[derive(Debug)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: Url,
    /// The base URL as shown in messages (no credentials: refused by validation).
    shown: String,
    auth: Auth,
    retries: u32,
    requests: AtomicU64,
}

impl RegistryClient {
    /// Build the client from a validated config and its resolved secrets.
    pub fn new(
        cfg: &SchemaRegistryConfig,
        secrets: RegistrySecrets,
    ) -> Result<Self, RegistryError> {
        cfg.validate()?;
        let url = cfg.url.trim();
        let mut base = Url::parse(url).map_err(|e| {
            RegistryConfigError::invalid("schema_registry.url", format!("not a URL: {e}"))
        })?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let shown = url.trim_end_matches('/').to_string();
        let auth = match &cfg.auth {
            RegistryAuth::None => Auth::None,
            RegistryAuth::Basic { username, .. } => Auth::Basic {
                username: username.clone(),
                password: secrets
                    .password
                    .ok_or_else(|| RegistryConfigError::Missing {
                        key: "schema_registry.auth.password".into(),
                        hint: "not resolved; call SchemaRegistryConfig::resolve_secrets".into(),
                    })?,
            },
            RegistryAuth::Bearer { .. } => {
                Auth::Bearer(secrets.token.ok_or_else(|| RegistryConfigError::Missing {
                    key: "schema_registry.auth.token".into(),
                    hint: "not resolved; call SchemaRegistryConfig::resolve_secrets".into(),
                })?)
            }
        };
        if !matches!(auth, Auth::None) && base.scheme() == "http" {
            tracing::warn!(url = %shown, "schema_registry.auth is sent over plain http://");
        }
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_TYPES));
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("krawl/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(cfg.concurrency)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(tls) = &cfg.tls {
            if let Some(ca) = &tls.ca_file {
                let pem = std::fs::read(ca).map_err(|e| {
                    RegistryConfigError::invalid(
                        "schema_registry.tls.ca_file",
                        format!("cannot read {}: {e}", ca.display()),
                    )
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .ok()
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| {
                        RegistryConfigError::invalid(
                            "schema_registry.tls.ca_file",
                            format!("{} holds no PEM certificate", ca.display()),
                        )
                    })?;
                builder = builder.tls_certs_merge(certs);
            }
            if let (Some(cert), Some(key)) = (&tls.client_cert_file, secrets.client_key.as_ref()) {
                let mut pem = std::fs::read(cert).map_err(|e| {
                    RegistryConfigError::invalid(
                        "schema_registry.tls.client_cert_file",
                        format!("cannot read {}: {e}", cert.display()),
                    )
                })?;
                pem.push(b'\n');
                pem.extend_from_slice(key.expose().as_bytes());
                let identity = reqwest::Identity::from_pem(&pem);
                pem.zeroize();
                let identity = identity.map_err(|_| {
                    RegistryConfigError::invalid(
                        "schema_registry.tls.client_key",
                        format!(
                            "{} and the key do not form a PEM certificate chain and private key",
                            cert.display()
                        ),
                    )
                })?;
                builder = builder.identity(identity);
            } else if tls.client_cert_file.is_some() {
                return Err(RegistryConfigError::Missing {
                    key: "schema_registry.tls.client_key".into(),
                    hint: "not resolved; call SchemaRegistryConfig::resolve_secrets".into(),
                }
                .into());
            }
        }
        let http = builder.build().map_err(|e| {
            RegistryConfigError::invalid(
                "schema_registry.tls",
                format!("cannot set up the HTTP client: {}", chain(&e)),
            )
        })?;
        Ok(Self {
            http,
            base,
            shown,
            auth,
            retries: cfg.retries,
            requests: AtomicU64::new(0),
        })
    }

    /// The base URL, as shown in messages.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// HTTP requests sent so far, retries included.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `GET /subjects[?deleted=true]`: subject names (soft-deleted ones too when `deleted`).
    pub async fn subjects(&self, deleted: bool) -> Result<Vec<String>, RegistryError> {
        let what = "the subject list (GET /subjects)";
        let ans = self
            .get_capped(
                &["subjects"],
                deleted_q(deleted),
                "the subject list",
                krawl_http::limits::SCHEMA_REGISTRY_SUBJECTS,
            )
            .await?;
        self.ok_json(ans, what, || "the subject list".to_string())
    }

    /// `GET /subjects/{s}/versions[?deleted=true]`: version numbers.
    pub async fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i32>, RegistryError> {
        let what = format!("the versions of subject `{subject}`");
        let ans = self
            .get(
                &["subjects", subject, "versions"],
                deleted_q(deleted),
                &what,
            )
            .await?;
        self.ok_json(ans, &what, || format!("subject `{subject}`"))
    }

    /// `GET /subjects/{s}/versions/{v}[?deleted=true]`: one version's schema.
    pub async fn version(
        &self,
        subject: &str,
        version: impl Into<VersionSpec>,
        deleted: bool,
    ) -> Result<SchemaVersion, RegistryError> {
        let v = match version.into() {
            VersionSpec::Latest => "latest".to_string(),
            VersionSpec::Number(n) => n.to_string(),
        };
        let what = format!("subject `{subject}` version {v}");
        let ans = self
            .get(
                &["subjects", subject, "versions", &v],
                deleted_q(deleted),
                &what,
            )
            .await?;
        let mut sv: SchemaVersion = self.ok_json(ans, &what, || what.clone())?;
        if sv.subject.is_empty() {
            sv.subject = subject.to_string();
        }
        Ok(sv)
    }

    /// The compatibility level in force for `subject` and where it comes from:
    /// `"subject"` when the subject sets its own, else `"global"`.
    pub async fn compatibility(
        &self,
        subject: &str,
    ) -> Result<(Option<String>, &'static str), RegistryError> {
        match self.subject_compatibility(subject).await? {
            Some(level) => Ok((Some(level), "subject")),
            None => Ok((self.global_compatibility().await?, "global")),
        }
    }

    /// `GET /config/{s}`: the subject's own level; `None` when it has none
    /// (404, error_code 40408 or 40401).
    pub async fn subject_compatibility(
        &self,
        subject: &str,
    ) -> Result<Option<String>, RegistryError> {
        let what = format!("the compatibility of subject `{subject}`");
        let ans = self.get(&["config", subject], &[], &what).await?;
        if ans.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body: ConfigBody = self.ok_json(ans, &what, || format!("subject `{subject}`"))?;
        Ok(body.level)
    }

    /// `GET /config`: the global compatibility level.
    pub async fn global_compatibility(&self) -> Result<Option<String>, RegistryError> {
        let what = "the global compatibility";
        let ans = self.get(&["config"], &[], what).await?;
        let body: ConfigBody = self.ok_json(ans, what, || "the global config".to_string())?;
        Ok(body.level)
    }

    /// The mode of `subject` (`GET /mode/{s}`, falling back to `GET /mode`);
    /// `None` when the registry has no mode API.
    pub async fn mode(&self, subject: &str) -> Result<Option<String>, RegistryError> {
        match self.subject_mode(subject).await? {
            Some(m) => Ok(Some(m)),
            None => self.global_mode().await,
        }
    }

    /// `GET /mode/{s}`: the subject's own mode; `None` on 404 (not set, or no mode API).
    pub async fn subject_mode(&self, subject: &str) -> Result<Option<String>, RegistryError> {
        let what = format!("the mode of subject `{subject}`");
        let ans = self.get(&["mode", subject], &[], &what).await?;
        if matches!(
            ans.status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
        ) {
            return Ok(None);
        }
        let body: ModeBody = self.ok_json(ans, &what, || format!("subject `{subject}`"))?;
        Ok(body.mode)
    }

    /// `GET /mode`: the global mode; `None` when the registry has no mode API.
    pub async fn global_mode(&self) -> Result<Option<String>, RegistryError> {
        let what = "the global mode";
        let ans = self.get(&["mode"], &[], what).await?;
        if matches!(
            ans.status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
        ) {
            return Ok(None);
        }
        let body: ModeBody = self.ok_json(ans, what, || what.into())?;
        Ok(body.mode)
    }

    /// The URL of `segments` (each percent-encoded) under the base URL.
    fn url_of(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.pop_if_empty();
            segs.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// One GET with retries. Returns the last answer (any status) or, when
    /// no HTTP answer came, `Unreachable`.
    /// `what` names the request in errors.
    async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<Answer, RegistryError> {
        self.get_capped(segments, query, what, krawl_http::limits::SCHEMA_REGISTRY)
            .await
    }

    /// [`Self::get`] with the answer's body capped at `limit` bytes.
    async fn get_capped(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        what: &str,
        limit: usize,
    ) -> Result<Answer, RegistryError> {
        let url = self.url_of(segments, query);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut req = self.http.get(url.clone());
            req = match &self.auth {
                Auth::None => req,
                Auth::Basic { username, password } => {
                    req.basic_auth(username, Some(password.expose()))
                }
                Auth::Bearer(token) => req.bearer_auth(token.expose()),
            };
            let last = attempt > self.retries;
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    let retriable =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if retriable && !last {
                        let wait = match retry_after {
                            Some(d) => d.min(MAX_RETRY_AFTER),
                            None => backoff(attempt),
                        };
                        tracing::debug!(%url, status = status.as_u16(), attempt, wait_ms = wait.as_millis() as u64, "retrying registry request");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    match krawl_http::read_capped(resp, limit).await {
                        Ok(body) => {
                            return Ok(Answer {
                                status,
                                body: body.to_vec(),
                                attempts: attempt,
                            })
                        }
                        // Not retried: the registry would only send it again.
                        Err(BodyError::TooLarge { limit, .. }) => {
                            return Err(RegistryError::TooLarge {
                                what: what.to_string(),
                                path: url.path().to_string(),
                                limit,
                            })
                        }
                        Err(BodyError::Transport(e))
                            if !last && (e.is_timeout() || e.is_body()) =>
                        {
                            tokio::time::sleep(backoff(attempt)).await;
                        }
                        Err(BodyError::Transport(e)) => return Err(self.unreachable(&e)),
                    }
                }
                Err(e) => {
                    let retriable = e.is_timeout() || (e.is_connect() && !is_tls_error(&e));
                    if retriable && !last {
                        tracing::debug!(%url, attempt, error = %e.without_url(), "retrying registry request");
                        tokio::time::sleep(backoff(attempt)).await;
                        continue;
                    }
                    return Err(self.unreachable(&e));
                }
            }
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> RegistryError {
        let text = chain(e);
        let message = if is_tls_error(e) {
            format!("TLS handshake failed ({text}); if a private CA signs the registry's certificate, set schema_registry.tls.ca_file to it")
        } else if e.is_timeout() {
            format!("no answer in time ({text}); check the network path or raise schema_registry.timeout_secs")
        } else {
            format!("{text}; check the URL, DNS and firewall")
        };
        RegistryError::Unreachable {
            url: self.shown.clone(),
            message,
        }
    }

    /// A 2xx answer decoded as `T`, anything else mapped to an error.
    /// `item` names the subject/version for 403 and 404 messages.
    fn ok_json<T: DeserializeOwned>(
        &self,
        ans: Answer,
        what: &str,
        item: impl Fn() -> String,
    ) -> Result<T, RegistryError> {
        if ans.status.is_success() {
            return serde_json::from_slice(&ans.body).map_err(|e| RegistryError::Decode {
                what: what.to_string(),
                url: self.shown.clone(),
                message: format!("{e}; the answer starts with `{}`", snippet(&ans.body)),
            });
        }
        Err(self.status_error(&ans, what, &item()))
    }

    fn status_error(&self, ans: &Answer, what: &str, item: &str) -> RegistryError {
        let body: Option<ErrorBody> = serde_json::from_slice(&ans.body).ok();
        let code = body.as_ref().and_then(|b| b.error_code);
        let message = body
            .as_ref()
            .and_then(|b| b.message.clone())
            .map(|m| truncate(&m, 300));
        let detail = match (code, &message) {
            (Some(c), Some(m)) => format!(" (error_code {c}: {m})"),
            (Some(c), None) => format!(" (error_code {c})"),
            (None, Some(m)) => format!(" ({m})"),
            (None, None) => String::new(),
        };
        let status = ans.status.as_u16();
        match ans.status {
            StatusCode::UNAUTHORIZED => RegistryError::Unauthorized { detail },
            StatusCode::FORBIDDEN => RegistryError::Forbidden {
                what: item.to_string(),
                detail,
            },
            StatusCode::NOT_FOUND => {
                let what = match code {
                    Some(40401) => item.split(" version ").next().unwrap_or(item).to_string(),
                    _ => item.to_string(),
                };
                RegistryError::NotFound { what, detail }
            }
            StatusCode::TOO_MANY_REQUESTS => RegistryError::RateLimited {
                what: what.to_string(),
                attempts: ans.attempts,
                detail,
            },
            s if s.is_server_error() => RegistryError::Server {
                status,
                code: code
                    .map(|c| format!(", error_code {c}"))
                    .unwrap_or_default(),
                what: what.to_string(),
                message: message.unwrap_or_else(|| {
                    if ans.body.is_empty() {
                        "no message".to_string()
                    } else {
                        snippet(&ans.body)
                    }
                }),
            },
            // Not followed (`redirect::Policy::none()`): the credentials would go to
            // wherever the registry points. The target is not echoed.
            s if s.is_redirection() => RegistryError::Http {
                status,
                what: what.to_string(),
                detail: format!(
                    "{detail}; krawl does not follow redirects: set schema_registry.url to the address that answers"
                ),
            },
            _ => RegistryError::Http {
                status,
                what: what.to_string(),
                detail,
            },
        }
    }
}

fn deleted_q(deleted: bool) -> &'static [(&'static str, &'static str)] {
    if deleted {
        &[("deleted", "true")]
    } else {
        &[]
    }
}

/// Exponential backoff: 200 ms, 400 ms, ... capped at 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.saturating_sub(1).min(5)))
        .min(Duration::from_secs(5))
}

/// `Retry-After`: delta-seconds or an HTTP date (RFC 9110 §10.2.3), relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn is_tls_error(e: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = cur {
        let t = s.to_string().to_ascii_lowercase();
        if t.contains("certificate") || t.contains("tls") || t.contains("handshake") {
            return true;
        }
        cur = s.source();
    }
    false
}

/// The error and its sources, without the request URL.
fn chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let head = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    parts.push(head.to_string());
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn snippet(body: &[u8]) -> String {
    truncate(String::from_utf8_lossy(body).trim(), 120)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_is_bounded() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }

    #[test]
    fn urls_encode_subject_names() {
        let mut cfg = SchemaRegistryConfig::new("http://sr:8081/apis/ccompat/v7");
        cfg.retries = 0;
        let c = RegistryClient::new(&cfg, RegistrySecrets::default()).unwrap();
        let u = c.url_of(&["subjects", "a/b c", "versions"], &[("deleted", "true")]);
        assert_eq!(
            u.as_str(),
            "http://sr:8081/apis/ccompat/v7/subjects/a%2Fb%20c/versions?deleted=true"
        );
    }
}
