//! The control-plane client: HTTPS (rustls, the platform's roots plus `control_plane.ca_file`),
//! proxies (`control_plane.proxy` or `HTTPS_PROXY`/`NO_PROXY`), bearer credentials (bootstrap →
//! agent token, OAuth2 client credentials, or a static token), typed errors with `Retry-After`.
//!
//! Invariant: no token is ever logged or put in an error. Errors name the URL (which carries
//! only ids) and the *kind* of credential, never its value.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use krawl_protocol as proto;
use krawl_secrets::{Resolver, SecretError, SecretRef, SecretString};
use rand::Rng;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{AgentConfig, AuthConfig, ClientAuth, ConfigError, OAuth2Config};
use crate::health::Telemetry;

/// Extra time a long poll may take beyond the server's announced wait.
const POLL_SLACK: Duration = Duration::from_secs(15);
/// An OAuth2 access token is renewed this long before it expires (or half its lifetime before,
/// for tokens that live less than two minutes: see [`token_refresh_at`]).
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The longest an access token is reused, whatever `expires_in` the token endpoint announced
/// (a huge value would also overflow `Instant` arithmetic).
const TOKEN_MAX_REUSE: Duration = Duration::from_secs(24 * 3600);

/// When a token fetched at `fetched` that lives `ttl` should be replaced: 60 s before it
/// expires, or after half its lifetime when that comes first (a 30 s token is reused for 15 s,
/// not fetched again for every call); at most [`TOKEN_MAX_REUSE`] after it was fetched.
fn token_refresh_at(fetched: Instant, ttl: Duration) -> Instant {
    let reuse = (ttl - TOKEN_REFRESH_MARGIN.min(ttl / 2)).min(TOKEN_MAX_REUSE);
    fetched.checked_add(reuse).unwrap_or(fetched)
}

/// Why a control-plane call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    // Names the URL that refused: the control plane, or the OAuth2 token endpoint.
    #[error("the {credential} was rejected by {url} (HTTP {status}: {message}); {hint}")]
    Unauthorized {
        url: String,
        status: u16,
        credential: &'static str,
        message: String,
        hint: &'static str,
    },
    #[error("control plane at {url} asks the agent to slow down (HTTP {status}){}", retry_after.map(|d| format!("; retrying in {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        url: String,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("lease lost at {url}: {message}; the control plane gave the job to someone else or expired it, so this attempt stops without completing")]
    LeaseLost { url: String, message: String },
    #[error("conflict at {url}: {message}")]
    Conflict { url: String, message: String },
    #[error("cannot reach the control plane at {url}: {message}")]
    Transport { url: String, message: String },
    #[error("control plane answered HTTP {status} at {url}: {code}: {message}")]
    Server {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from the control plane at {url}: {message}")]
    Decode { url: String, message: String },
    #[error("the agent is not registered yet (no agent id)")]
    NotRegistered,
}

impl ClientError {
    /// Stable kind for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Unauthorized { .. } => "unauthorized",
            ClientError::RateLimited { .. } => "rate_limited",
            ClientError::LeaseLost { .. } => "lease_lost",
            ClientError::Conflict { .. } => "conflict",
            ClientError::Transport { .. } => "transport",
            ClientError::Server { status, .. } if *status >= 500 => "server",
            ClientError::Server { .. } => "client",
            ClientError::Decode { .. } => "decode",
            ClientError::NotRegistered => "not_registered",
        }
    }

    /// Worth retrying the same request later (transport, 5xx, 429/503).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport { .. } | ClientError::RateLimited { .. } => true,
            ClientError::Server { status, .. } => *status >= 500 || *status == 408,
            _ => false,
        }
    }

    /// The server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The server no longer knows this agent (restarted without state, or deleted it): register
    /// again.
    pub fn is_unknown_agent(&self) -> bool {
        matches!(
            self,
            ClientError::Server { status: 404, .. } | ClientError::NotRegistered
        )
    }
}

/// Exponential backoff with jitter: each delay is uniform in `[d/2, d]` where `d` doubles from
/// `base` up to `cap`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// The agent's default: 1 s doubling to 60 s.
    pub fn standard() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(60))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay (advances the sequence).
    pub fn next_delay(&mut self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(20));
        self.attempt = self.attempt.saturating_add(1);
        let d = self.base.saturating_mul(factor).min(self.cap);
        let half = d / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
    }

    /// The delay after `err`: the server's `Retry-After` when given (at most an hour), else the
    /// next backoff step.
    pub fn delay_after(&mut self, err: &ClientError) -> Duration {
        let step = self.next_delay();
        match err.retry_after() {
            Some(ra) => ra.min(Duration::from_secs(3600)),
            None => step,
        }
    }
}

/// Parses `Retry-After`: delta seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The resolved control-plane credential. Values are [`SecretString`]s: never printed.
pub enum Credential {
    /// Registration token; `register` returns the agent token used afterwards.
    Bootstrap(SecretString),
    /// One token for every call.
    Static(SecretString),
    /// OAuth2 client credentials; the access token is cached until ~60 s before it expires
    /// (half its lifetime for short-lived tokens).
    OAuth2 {
        cfg: Box<OAuth2Config>,
        client_secret: SecretString,
        /// The access token and when to replace it.
        cached: tokio::sync::Mutex<Option<(SecretString, Instant)>>,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Bootstrap(_) => f.write_str("Credential::Bootstrap([redacted])"),
            Credential::Static(_) => f.write_str("Credential::Static([redacted])"),
            Credential::OAuth2 { cfg, .. } => write!(
                f,
                "Credential::OAuth2 {{ token_url: {}, client_id: {}, secret: [redacted] }}",
                cfg.token_url, cfg.client_id
            ),
        }
    }
}

impl Credential {
    /// Resolves the configured credential reference through `stores` (the agent's one
    /// [`Resolver`] for `[secrets]`). The operator's own credential is not subject to
    /// `secrets.allow` (which restricts what *jobs* may read).
    pub async fn resolve(cfg: &AgentConfig, stores: &Resolver) -> Result<Self, CredentialError> {
        let auth = cfg
            .control_plane
            .auth
            .as_ref()
            .ok_or(CredentialError::Missing)?;
        let scope = stores.without_allowlist().job("control-plane-credential");
        let get = |r: &SecretRef| {
            let r = r.clone();
            let scope = &scope;
            async move { scope.resolve(&r).await.map_err(CredentialError::Secret) }
        };
        Ok(match auth {
            AuthConfig::BootstrapToken(r) => Credential::Bootstrap(non_empty(get(r).await?, r)?),
            AuthConfig::StaticToken(r) => Credential::Static(non_empty(get(r).await?, r)?),
            AuthConfig::Oauth2(o) => Credential::OAuth2 {
                cfg: Box::new(o.clone()),
                client_secret: non_empty(get(&o.client_secret).await?, &o.client_secret)?,
                cached: tokio::sync::Mutex::new(None),
            },
        })
    }

    fn name(&self, registering: bool) -> &'static str {
        match self {
            Credential::Bootstrap(_) if registering => {
                "bootstrap token (control_plane.auth.bootstrap_token)"
            }
            Credential::Bootstrap(_) => "agent token issued at registration",
            Credential::Static(_) => "static token (control_plane.auth.static_token)",
            Credential::OAuth2 { .. } => "OAuth2 access token (control_plane.auth.oauth2)",
        }
    }

    fn hint(&self, registering: bool) -> &'static str {
        match self {
            Credential::Bootstrap(_) if registering => {
                "check control_plane.auth.bootstrap_token: it may be wrong, expired or revoked; create a new registration token in the control plane and update the secret it references"
            }
            Credential::Bootstrap(_) => {
                "the control plane no longer accepts this agent's token (revoked, agent deleted, or state lost); the agent registers again with its bootstrap token"
            }
            Credential::Static(_) => {
                "check control_plane.auth.static_token: the token may be wrong, expired or revoked"
            }
            Credential::OAuth2 { .. } => {
                "check control_plane.auth.oauth2 (client_id, client_secret, scope, audience): the identity provider or the control plane refused the client"
            }
        }
    }
}

fn non_empty(v: SecretString, r: &SecretRef) -> Result<SecretString, CredentialError> {
    if v.expose().trim().is_empty() {
        Err(CredentialError::Empty {
            reference: r.to_string(),
        })
    } else {
        Ok(v)
    }
}

/// Why the control-plane credential could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("control_plane.auth is not set")]
    Missing,
    #[error("control-plane credential: {0}")]
    Secret(SecretError),
    #[error("control-plane credential `{reference}` resolved to an empty value; put the token in the secret it references")]
    Empty { reference: String },
}

impl CredentialError {
    /// A store that could not be reached (or failed) may come back: worth retrying. A missing,
    /// malformed, denied or empty credential needs the operator.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CredentialError::Secret(SecretError::Unreachable { .. } | SecretError::Backend { .. })
        )
    }
}

/// What registration returned, minus the token (kept inside the client).
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub agent_id: String,
    pub poll_wait: Duration,
    pub heartbeat_interval: Duration,
}

struct Session {
    agent_id: String,
    /// The bearer of every agent call, when register returned a non-empty one.
    agent_token: Option<SecretString>,
    poll_wait: Duration,
}

/// The control-plane client. Cheap to share (`Arc`); every method takes `&self`.
pub struct ControlPlaneClient {
    http: reqwest::Client,
    base: String,
    credential: Credential,
    session: RwLock<Option<Session>>,
    request_timeout: Duration,
    telemetry: Arc<Telemetry>,
}

impl fmt::Debug for ControlPlaneClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlaneClient")
            .field("base", &self.base)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("control_plane.ca_file {path}: {message}; point it at a PEM file of CA certificates")]
    CaFile { path: String, message: String },
    #[error("control_plane.proxy: {0}")]
    Proxy(String),
    #[error("cannot build the HTTPS client: {0}")]
    Http(String),
}

/// An error answer's body is read for its message only: a few kilobytes are plenty.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A control-plane answer's body, at most [`krawl_http::limits::CONTROL_PLANE`] bytes: a
/// compromised control plane must not exhaust the agent's memory.
async fn read_body(resp: reqwest::Response, url: &str) -> Result<bytes::Bytes, ClientError> {
    krawl_http::read_capped(resp, krawl_http::limits::CONTROL_PLANE)
        .await
        .map_err(|e| ClientError::Transport {
            url: url.to_string(),
            message: match e {
                krawl_http::BodyError::Transport(e) => error_chain(&e),
                e => e.to_string(),
            },
        })
}

/// A body as text for an error message (empty when unreadable or past `limit`).
async fn capped_text(resp: reqwest::Response, limit: usize) -> String {
    krawl_http::read_capped(resp, limit)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The reqwest client for the control plane (and the OAuth2 token endpoint).
pub fn http_client(cfg: &AgentConfig) -> Result<reqwest::Client, BuildError> {
    let cp = &cfg.control_plane;
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("krawl-agent/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(cp.connect_timeout_secs))
        .https_only(false)
        // The agent talks to the control plane it was configured with, nowhere else: a
        // redirect (from a compromised or spoofed server) is an error, not a new destination.
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90));
    if let Some(path) = &cp.ca_file {
        let pem = std::fs::read(path).map_err(|e| BuildError::CaFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| BuildError::CaFile {
                path: path.display().to_string(),
                message: error_chain(&e),
            })?;
        if certs.is_empty() {
            return Err(BuildError::CaFile {
                path: path.display().to_string(),
                message: "no PEM certificate in it".into(),
            });
        }
        b = b.tls_certs_merge(certs);
    }
    if let Some(p) = cp.proxy.as_deref().filter(|p| !p.trim().is_empty()) {
        let no_proxy = match cp.no_proxy.as_deref() {
            Some(list) => reqwest::NoProxy::from_string(list),
            None => reqwest::NoProxy::from_env(),
        };
        let proxy = reqwest::Proxy::all(p)
            .map_err(|e| BuildError::Proxy(error_chain(&e)))?
            .no_proxy(no_proxy);
        b = b.proxy(proxy);
    } else if let Some(list) = cp.no_proxy.as_deref() {
        // Environment proxies, with the configured exclusions.
        for (var, scheme) in [("HTTPS_PROXY", "https"), ("HTTP_PROXY", "http")] {
            let Some(url) = std::env::var(var)
                .ok()
                .or_else(|| std::env::var(var.to_ascii_lowercase()).ok())
                .filter(|v| !v.trim().is_empty())
            else {
                continue;
            };
            let proxy = if scheme == "https" {
                reqwest::Proxy::https(&url)
            } else {
                reqwest::Proxy::http(&url)
            }
            .map_err(|e| BuildError::Proxy(format!("{var}: {}", error_chain(&e))))?
            .no_proxy(reqwest::NoProxy::from_string(list));
            b = b.proxy(proxy);
        }
    }
    // Without an explicit proxy, reqwest reads HTTPS_PROXY/HTTP_PROXY/NO_PROXY itself.
    b.build().map_err(|e| BuildError::Http(error_chain(&e)))
}

/// `e` and its sources, joined (reqwest's own `Display` hides the interesting part).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let m = src.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = src.source();
    }
    s
}

enum Bearer {
    Register,
    Agent,
}

impl ControlPlaneClient {
    pub fn new(
        cfg: &AgentConfig,
        credential: Credential,
        telemetry: Arc<Telemetry>,
    ) -> Result<Self, BuildError> {
        let base = cfg.control_plane_url()?.to_string();
        Ok(Self {
            http: http_client(cfg)?,
            base: base.trim_end_matches('/').to_string(),
            credential,
            session: RwLock::new(None),
            request_timeout: Duration::from_secs(cfg.control_plane.request_timeout_secs),
            telemetry,
        })
    }

    /// Agent calls use the agent token from registration (a rejected one is replaced by
    /// registering again).
    pub fn has_agent_token(&self) -> bool {
        self.session_token().is_some()
    }

    fn session_token(&self) -> Option<SecretString> {
        self.session
            .read()
            .ok()
            .and_then(|s| s.as_ref().and_then(|s| s.agent_token.clone()))
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn agent_id(&self) -> Option<String> {
        self.session
            .read()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.agent_id.clone()))
    }

    /// Whether `err`, answered on an attempt endpoint (job heartbeat, chunk, complete), means
    /// the attempt is no longer this agent's: `409 lease_lost`, `404` (no such attempt for this
    /// agent), or a 401 while the agent uses the token register issued: the control plane no
    /// longer knows that token (it lost its state, or revoked the agent), so the attempts leased
    /// with it are gone too; the poll loop registers again. With a bootstrap credential the
    /// attempt endpoints are only ever called with an issued token, so a 401 there means the
    /// same even when the poll loop has already forgotten the registration, and a call made
    /// after that (`NotRegistered`) cannot belong to the attempt either. (A chunk upload racing
    /// the poll loop's re-registration failed the job instead of dropping the attempt.)
    pub fn attempt_gone(&self, err: &ClientError) -> bool {
        match err {
            ClientError::LeaseLost { .. }
            | ClientError::Server { status: 404, .. }
            | ClientError::NotRegistered => true,
            ClientError::Unauthorized { .. } => {
                self.has_agent_token() || matches!(self.credential, Credential::Bootstrap(_))
            }
            _ => false,
        }
    }

    /// Forget the session (the server no longer knows the agent); the next call must register.
    pub fn forget_registration(&self) {
        if let Ok(mut s) = self.session.write() {
            *s = None;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The bearer of a call: for agent calls the agent token from registration when the server
    /// issued one (the reference control plane always does), else the configured credential
    /// (a control plane that accepts OAuth2 or static tokens everywhere answers with an empty
    /// `agent_token`).
    async fn bearer(&self, which: &Bearer) -> Result<SecretString, ClientError> {
        if matches!(which, Bearer::Agent) {
            if let Some(t) = self.session_token() {
                return Ok(t);
            }
        }
        match (&self.credential, which) {
            (Credential::Bootstrap(t), Bearer::Register) => Ok(t.clone()),
            (Credential::Bootstrap(_), Bearer::Agent) => Err(ClientError::NotRegistered),
            (Credential::Static(t), _) => Ok(t.clone()),
            (
                Credential::OAuth2 {
                    cfg,
                    client_secret,
                    cached,
                },
                _,
            ) => {
                let mut guard = cached.lock().await;
                if let Some((tok, refresh_at)) = guard.as_ref() {
                    if Instant::now() < *refresh_at {
                        return Ok(tok.clone());
                    }
                }
                let fetched = Instant::now();
                let (tok, ttl) = self.fetch_oauth2_token(cfg, client_secret).await?;
                *guard = Some((tok.clone(), token_refresh_at(fetched, ttl)));
                tracing::debug!(
                    token_url = %cfg.token_url,
                    expires_in_secs = ttl.as_secs(),
                    "obtained an OAuth2 access token"
                );
                Ok(tok)
            }
        }
    }

    async fn fetch_oauth2_token(
        &self,
        cfg: &OAuth2Config,
        secret: &SecretString,
    ) -> Result<(SecretString, Duration), ClientError> {
        let url = cfg.token_url.clone();
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if cfg.client_auth == ClientAuth::Body {
                form.append_pair("client_id", &cfg.client_id)
                    .append_pair("client_secret", secret.expose());
            }
            if let Some(s) = &cfg.scope {
                form.append_pair("scope", s);
            }
            if let Some(a) = &cfg.audience {
                form.append_pair("audience", a);
            }
            SecretString::new(form.finish())
        };
        let mut request = self.http.post(&url);
        if cfg.client_auth == ClientAuth::Basic {
            // RFC 6749 §2.3.1: id and secret form-urlencoded, then HTTP Basic.
            let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            let secret_enc = SecretString::new(enc(secret.expose()));
            request = request.basic_auth(enc(&cfg.client_id), Some(secret_enc.expose()));
        }
        let resp = request
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .timeout(self.request_timeout)
            .body(body.expose().to_string())
            .send()
            .await
            .map_err(|e| ClientError::Transport {
                url: url.clone(),
                message: error_chain(&e),
            })?;
        let status = resp.status();
        let text = capped_text(resp, krawl_http::limits::TOKEN_ENDPOINT).await;
        if !status.is_success() {
            // OAuth2 error bodies carry `error` and `error_description`, never the secret.
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let message = [v["error"].as_str(), v["error_description"].as_str()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            return Err(match status.as_u16() {
                400 | 401 | 403 => ClientError::Unauthorized {
                    url,
                    status: status.as_u16(),
                    credential: "OAuth2 client credentials (control_plane.auth.oauth2)",
                    message,
                    hint: "check client_id and the secret client_secret references, and that the client may use the requested scope/audience",
                },
                429 => ClientError::RateLimited {
                    url,
                    status: 429,
                    retry_after: None,
                },
                s => ClientError::Server {
                    url,
                    status: s,
                    code: "token_endpoint".into(),
                    message,
                },
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let parsed: TokenResponse =
            serde_json::from_str(&text).map_err(|e| ClientError::Decode {
                url: url.clone(),
                message: format!("token response is not an OAuth2 token answer: {e}"),
            })?;
        let ttl = Duration::from_secs(parsed.expires_in.unwrap_or(300));
        Ok((SecretString::new(parsed.access_token), ttl))
    }

    /// One request; records the outcome in telemetry. `Ok(None)` on 204.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        bearer: Bearer,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<Option<T>, ClientError> {
        let result = self
            .call_inner(method, path, bearer, body, timeout, None)
            .await;
        self.record(&result);
        let resp = result?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let url = self.url(path);
        let bytes = read_body(resp, &url).await?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::Decode {
                url,
                message: e.to_string(),
            })
    }

    fn record<T>(&self, r: &Result<T, ClientError>) {
        match r {
            Ok(_) => self.telemetry.exchange_ok(),
            Err(e) => self.telemetry.exchange_failed(e.kind(), &e.to_string()),
        }
    }

    async fn call_inner<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        bearer: Bearer,
        json: Option<&B>,
        timeout: Duration,
        raw: Option<(Bytes, HeaderMap)>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = self.url(path);
        let token = self.bearer(&bearer).await?;
        let mut req = self
            .http
            .request(method, &url)
            .timeout(timeout)
            .header(header::ACCEPT, "application/json")
            .bearer_auth(token.expose());
        if let Some(b) = json {
            req = req.json(b);
        }
        if let Some((body, headers)) = raw {
            req = req.headers(headers).body(body);
        }
        let resp = req.send().await.map_err(|e| ClientError::Transport {
            url: url.clone(),
            message: error_chain(&e),
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let text = capped_text(resp, ERROR_BODY_LIMIT).await;
        let (code, message) = match serde_json::from_str::<proto::ErrorBody>(&text) {
            Ok(b) => (b.error.code, b.error.message),
            Err(_) => (
                status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_ascii_lowercase(),
                text.chars().take(300).collect(),
            ),
        };
        let registering = matches!(bearer, Bearer::Register);
        let agent_token = !registering && self.has_agent_token();
        let s = status.as_u16();
        Err(match s {
            401 | 403 if agent_token => ClientError::Unauthorized {
                url,
                status: s,
                credential: "agent token issued at registration",
                message,
                hint: "the control plane no longer accepts this agent's token (revoked, agent deleted, or state lost); the agent registers again",
            },
            // The token is accepted, what the agent claims with it is not (the reference control
            // plane: labels the token does not grant; its message says what to change).
            403 if registering => ClientError::Unauthorized {
                url,
                status: s,
                credential: "registration",
                message,
                hint: "the control plane does not let this agent's credential claim what it registers with: its labels ([agent] labels) must all be granted to its token; change the labels or use a token that grants them",
            },
            401 | 403 => ClientError::Unauthorized {
                url,
                status: s,
                credential: self.credential.name(registering),
                message,
                hint: self.credential.hint(registering),
            },
            429 => ClientError::RateLimited {
                url,
                status: s,
                retry_after,
            },
            503 if retry_after.is_some() => ClientError::RateLimited {
                url,
                status: s,
                retry_after,
            },
            _ if code == "lease_lost" || s == 410 => ClientError::LeaseLost { url, message },
            409 => ClientError::Conflict { url, message },
            _ => ClientError::Server {
                url,
                status: s,
                code,
                message,
            },
        })
    }

    fn agent_path(&self, f: impl Fn(&str) -> String) -> Result<String, ClientError> {
        self.agent_id()
            .map(|id| f(&id))
            .ok_or(ClientError::NotRegistered)
    }

    fn poll_timeout(&self) -> Duration {
        let wait = self
            .session
            .read()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.poll_wait))
            .unwrap_or(Duration::from_secs(u64::from(
                proto::DEFAULT_POLL_WAIT_SECS,
            )));
        wait + POLL_SLACK
    }

    /// `POST /v1/agents/register`; keeps the agent id (and token) for later calls.
    pub async fn register(
        &self,
        req: &proto::RegisterRequest,
    ) -> Result<Registration, ClientError> {
        let url = self.url(proto::paths::REGISTER);
        let resp: proto::RegisterResponse = self
            .call(
                Method::POST,
                proto::paths::REGISTER,
                Bearer::Register,
                Some(req),
                self.request_timeout,
            )
            .await?
            .ok_or_else(|| ClientError::Decode {
                url,
                message: "register answered 204 without a body".into(),
            })?;
        let proto::RegisterResponse {
            agent_id,
            agent_token,
            poll_wait_secs,
            heartbeat_interval_secs,
        } = resp;
        let agent_token = SecretString::new(agent_token);
        let reg = Registration {
            agent_id: agent_id.clone(),
            poll_wait: Duration::from_secs(u64::from(poll_wait_secs.max(1))),
            heartbeat_interval: Duration::from_secs(u64::from(heartbeat_interval_secs.max(1))),
        };
        if let Ok(mut s) = self.session.write() {
            *s = Some(Session {
                agent_id,
                agent_token: (!agent_token.expose().is_empty()).then_some(agent_token),
                poll_wait: reg.poll_wait,
            });
        }
        Ok(reg)
    }

    /// Long poll: `Ok(Some(lease))` when a job is handed over, `Ok(None)` after the server's wait.
    pub async fn poll(
        &self,
        req: &proto::PollRequest,
    ) -> Result<Option<proto::JobLease>, ClientError> {
        let path = self.agent_path(proto::paths::poll)?;
        self.call(
            Method::POST,
            &path,
            Bearer::Agent,
            Some(req),
            self.poll_timeout(),
        )
        .await
    }

    pub async fn agent_heartbeat(
        &self,
        hb: &proto::AgentHeartbeat,
    ) -> Result<proto::AgentHeartbeatResponse, ClientError> {
        let path = self.agent_path(proto::paths::agent_heartbeat)?;
        let url = self.url(&path);
        self.call(
            Method::POST,
            &path,
            Bearer::Agent,
            Some(hb),
            self.request_timeout,
        )
        .await?
        .ok_or(ClientError::Decode {
            url,
            message: "agent heartbeat answered 204 without a body".into(),
        })
    }

    pub async fn job_heartbeat(
        &self,
        job_id: &str,
        attempt: u32,
        hb: &proto::JobHeartbeat,
    ) -> Result<proto::JobHeartbeatResponse, ClientError> {
        let path = proto::paths::job_heartbeat(job_id, attempt);
        let url = self.url(&path);
        self.call(
            Method::POST,
            &path,
            Bearer::Agent,
            Some(hb),
            self.request_timeout,
        )
        .await?
        .ok_or(ClientError::Decode {
            url,
            message: "job heartbeat answered 204 without a body".into(),
        })
    }

    /// `PUT` one zstd chunk. Idempotent: the same (seq, sha256) is acknowledged again.
    pub async fn put_chunk(
        &self,
        job_id: &str,
        attempt: u32,
        seq: u32,
        zstd_body: Bytes,
        sha256: &str,
        records: u64,
    ) -> Result<proto::ChunkAck, ClientError> {
        let path = proto::paths::chunk(job_id, attempt, seq);
        let url = self.url(&path);
        let mut headers = HeaderMap::new();
        let hv = |s: &str| {
            reqwest::header::HeaderValue::from_str(s).map_err(|e| ClientError::Decode {
                url: url.clone(),
                message: format!("bad header value: {e}"),
            })
        };
        headers.insert(header::CONTENT_TYPE, hv("application/x-ndjson")?);
        headers.insert(
            header::CONTENT_ENCODING,
            hv(proto::chunk::Encoding::Zstd.header_value())?,
        );
        headers.insert(proto::CHUNK_SHA256_HEADER, hv(sha256)?);
        headers.insert(proto::CHUNK_RECORDS_HEADER, hv(&records.to_string())?);
        let result = self
            .call_inner::<()>(
                Method::PUT,
                &path,
                Bearer::Agent,
                None,
                self.request_timeout.max(Duration::from_secs(120)),
                Some((zstd_body, headers)),
            )
            .await;
        self.record(&result);
        let resp = result?;
        let bytes = read_body(resp, &url).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url,
            message: e.to_string(),
        })
    }

    pub async fn list_chunks(
        &self,
        job_id: &str,
        attempt: u32,
    ) -> Result<proto::ChunkList, ClientError> {
        let path = proto::paths::chunks(job_id, attempt);
        Ok(self
            .call::<(), _>(
                Method::GET,
                &path,
                Bearer::Agent,
                None,
                self.request_timeout,
            )
            .await?
            .unwrap_or_default())
    }

    pub async fn complete(
        &self,
        job_id: &str,
        attempt: u32,
        req: &proto::CompleteRequest,
    ) -> Result<Option<proto::CompleteResponse>, ClientError> {
        let path = proto::paths::complete(job_id, attempt);
        self.call(
            Method::POST,
            &path,
            Bearer::Agent,
            Some(req),
            self.request_timeout,
        )
        .await
    }

    /// Reachability without side effects: an unauthenticated `GET /v1/jobs`. Any HTTP answer
    /// (401 expected) proves DNS, TCP, TLS and the proxy work; returns the status.
    pub async fn probe(&self) -> Result<u16, ClientError> {
        let url = self.url(proto::paths::JOBS);
        self.http
            .get(&url)
            .timeout(self.request_timeout)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| ClientError::Transport {
                url,
                message: error_chain(&e),
            })
    }

    /// Obtains the registration bearer (fetches an OAuth2 token), without calling the control
    /// plane. For `krawl check`.
    pub async fn check_credential(&self) -> Result<(), ClientError> {
        self.bearer(&Bearer::Register).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_in_bounds() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut nominal = Duration::from_secs(1);
        for _ in 0..40 {
            let d = b.next_delay();
            assert!(d >= nominal / 2 && d <= nominal, "{d:?} vs {nominal:?}");
            nominal = (nominal * 2).min(Duration::from_secs(60));
        }
        // The jitter actually varies.
        let samples: std::collections::BTreeSet<u128> =
            (0..20).map(|_| b.next_delay().as_millis()).collect();
        assert!(samples.len() > 1);
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn retry_after_wins_over_backoff() {
        let mut b = Backoff::standard();
        let err = ClientError::RateLimited {
            url: "u".into(),
            status: 429,
            retry_after: Some(Duration::from_secs(42)),
        };
        assert_eq!(b.delay_after(&err), Duration::from_secs(42));
        let err = ClientError::Transport {
            url: "u".into(),
            message: "refused".into(),
        };
        assert!(b.delay_after(&err) <= Duration::from_secs(2));
        assert!(err.is_retryable());
        assert!(err.to_string().contains("at u"));
    }

    #[test]
    fn oauth2_tokens_are_replaced_before_they_expire() {
        let t0 = Instant::now();
        // Long-lived: 60 s early.
        assert_eq!(
            token_refresh_at(t0, Duration::from_secs(3600)),
            t0 + Duration::from_secs(3540)
        );
        // Short-lived: reused for half the lifetime, not fetched again for every call.
        assert_eq!(
            token_refresh_at(t0, Duration::from_secs(30)),
            t0 + Duration::from_secs(15)
        );
        assert_eq!(token_refresh_at(t0, Duration::ZERO), t0);
        // `expires_in` is the token endpoint's to choose: u64::MAX seconds must not panic.
        assert_eq!(
            token_refresh_at(t0, Duration::from_secs(u64::MAX)),
            t0 + TOKEN_MAX_REUSE
        );
    }

    #[test]
    fn credential_debug_is_redacted() {
        let c = Credential::Static(SecretString::new("tok-abc"));
        assert!(!format!("{c:?}").contains("tok-abc"));
        let c = Credential::Bootstrap(SecretString::new("tok-abc"));
        assert!(!format!("{c:?}").contains("tok-abc"));
    }
}
