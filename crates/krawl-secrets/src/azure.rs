//! Azure Key Vault secrets (`azure-kv://`).
//!
//! Reference: `azure-kv://<vault-name-or-host>/<secret>[/<version>][#key]`,
//! e.g. `azure-kv://kafka-prod/sasl-password` (latest version of secret
//! `sasl-password` in `https://kafka-prod.vault.azure.net`),
//! `azure-kv://kafka-prod/sasl/4387e9f3d6e14c459867679a90fd0f79#password`
//! (a pinned version, JSON field `password`). A bare vault name gets
//! `secrets.azure.vault_dns_suffix` appended (default `vault.azure.net`;
//! `vault.azure.cn`, `vault.usgovcloudapi.net` for sovereign clouds); a value
//! with a `.` or `:` is a host\[:port\]. The vault is always reached over HTTPS:
//! `GET https://<vault>/secrets/<name>[/<version>]?api-version=7.4`, and the
//! `value` of the answer is the secret.
//!
//! # Authentication
//! Microsoft Entra ID access tokens, through Key Vault's challenge flow: the
//! first request to a vault goes without a token; the vault answers `401`
//! with `WWW-Authenticate: Bearer authorization="<authority>/<tenant>",
//! resource="https://vault.azure.net"`; the provider checks that the
//! resource's host is a suffix of the vault's host (so a look-alike server
//! cannot make it ask for a token for another service; off with
//! `verify_challenge_resource = false`, for private test hosts only), gets a
//! token for `<resource>/.default` and repeats the request once with
//! `Authorization: Bearer`. Credentials are only ever sent to the configured
//! authority host (or IMDS), never to an authority named by a challenge; a
//! challenge naming another tenant than the configured one is refused.
//! Methods (`[secrets.azure.auth]`, `method = ...`):
//! - `managed_identity` (default): Azure IMDS
//!   (`http://169.254.169.254/metadata/identity/oauth2/token`, header
//!   `Metadata: true`, optional `client_id` of a user-assigned identity), or
//!   App Service / Functions when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`
//!   are set. Never through a proxy.
//! - `workload_identity` (AKS): the federated token in
//!   `AZURE_FEDERATED_TOKEN_FILE` (re-read for every token) exchanged at
//!   `<authority>/<tenant>/oauth2/v2.0/token` as a `client_assertion`; tenant,
//!   client id and file default to `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//!   `AZURE_FEDERATED_TOKEN_FILE`.
//! - `client_secret`: a service principal; `client_secret` is itself a
//!   reference, `env://` or `file://` only, read for every token request.
//!
//! The authority host is `authority_host`, else `AZURE_AUTHORITY_HOST`, else
//! `https://login.microsoftonline.com`; it must be HTTPS.
//!
//! The provider caches the *access token* (an auth credential, not a job
//! secret, held as a [`SecretString`]) per scope until five minutes before it
//! expires (half its lifetime for short tokens), like every Azure SDK; a token
//! the vault rejects is dropped and fetched anew once. Secret values are never
//! cached here (the resolver's rules apply).
//!
//! # Why not the Azure SDK
//! `azure_security_keyvault_secrets` 1.0 / `azure_identity` 1.x were tried
//! first. Their VM managed-identity credential has the IMDS address as a
//! private constant (no override, so it cannot be tested against a stub nor
//! pointed at an IMDS proxy), the secrets crate pulls `clap` and `time` into
//! the agent, and trusting an extra CA needs a custom `HttpClient` transport
//! anyway. The data-plane call is one GET and the token calls are two small
//! documented requests, so this module speaks the REST API directly with
//! `reqwest` over rustls (ring): native roots plus `ca_file`.
//!
//! # Tested against
//! No Key Vault emulator exists. `tests/azure.rs` runs an HTTPS stub of the
//! Key Vault data plane and of the Entra ID token endpoint, and a plain-HTTP
//! stub of IMDS, written to Microsoft's published REST reference (Get Secret
//! 7.4, Key Vault authentication and error codes, the client-credentials
//! flow, IMDS token requests). Not tested against real Azure.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;

use crate::{Resolver, SecretError, SecretProvider, SecretRef, SecretString};

const BACKEND: &str = "azure-kv";
const API_VERSION: &str = "7.4";
const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
const DEFAULT_IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
const DEFAULT_SUFFIX: &str = "vault.azure.net";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// `[secrets.azure]` settings.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// How krawl gets Microsoft Entra ID tokens for Key Vault:
    /// `{ method = "managed_identity", client_id = "..." }` (default; client_id
    /// only for a user-assigned identity), `{ method = "workload_identity" }`
    /// (AKS; tenant_id, client_id, token_file default to AZURE_TENANT_ID,
    /// AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE) or
    /// `{ method = "client_secret", tenant_id, client_id, client_secret = "env://..." }`.
    #[serde(default)]
    pub auth: AzureAuth,
    /// Entra ID authority, e.g. `https://login.microsoftonline.us` for Azure
    /// Government. Default: AZURE_AUTHORITY_HOST, else
    /// `https://login.microsoftonline.com`. Must be HTTPS.
    #[serde(default)]
    pub authority_host: Option<String>,
    /// Full URL of the IMDS token endpoint (managed identity). Default:
    /// `http://169.254.169.254/metadata/identity/oauth2/token`.
    #[serde(default)]
    pub imds_endpoint: Option<String>,
    /// DNS suffix appended to a bare vault name in a reference (default
    /// `vault.azure.net`; `vault.azure.cn`, `vault.usgovcloudapi.net`, ...).
    #[serde(default = "default_suffix")]
    pub vault_dns_suffix: String,
    /// PEM file with extra CA certificates to trust (besides the system's)
    /// for the vault and the authority, e.g. a TLS-inspecting proxy's CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Timeout of each HTTP call, in seconds (default 10).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Retries of a call that failed transiently (connection error, timeout,
    /// 429, 5xx), with exponential backoff (default 2).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Check that the resource named in the vault's authentication challenge
    /// belongs to the vault's domain (default true). Turn off only for a
    /// private test host such as 127.0.0.1.
    #[serde(default = "default_true")]
    pub verify_challenge_resource: bool,
}

fn default_suffix() -> String {
    DEFAULT_SUFFIX.to_string()
}
fn default_timeout() -> u64 {
    10
}
fn default_retries() -> u32 {
    2
}
fn default_true() -> bool {
    true
}

impl Default for AzureConfig {
    fn default() -> Self {
        Self {
            auth: AzureAuth::default(),
            authority_host: None,
            imds_endpoint: None,
            vault_dns_suffix: default_suffix(),
            ca_file: None,
            timeout_secs: default_timeout(),
            retries: default_retries(),
            verify_challenge_resource: true,
        }
    }
}

/// `[secrets.azure.auth]`: how to get an Entra ID token.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum AzureAuth {
    /// The VM's / container's managed identity, through IMDS (or App Service's
    /// IDENTITY_ENDPOINT).
    ManagedIdentity {
        /// Client id of a user-assigned identity; unset: the system-assigned one.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// AKS workload identity: a federated token file exchanged for an Entra token.
    WorkloadIdentity {
        /// Directory (tenant) id. Default: AZURE_TENANT_ID.
        #[serde(default)]
        tenant_id: Option<String>,
        /// Application (client) id. Default: AZURE_CLIENT_ID.
        #[serde(default)]
        client_id: Option<String>,
        /// The projected service-account token. Default: AZURE_FEDERATED_TOKEN_FILE.
        #[serde(default)]
        token_file: Option<PathBuf>,
    },
    /// A service principal with a client secret.
    ClientSecret {
        /// Directory (tenant) id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// The client secret, as a reference: `env://NAME` or `file:///path[#key]`.
        #[schemars(with = "String")]
        client_secret: SecretRef,
    },
}

impl Default for AzureAuth {
    fn default() -> Self {
        Self::ManagedIdentity { client_id: None }
    }
}

/// Where tokens come from, with env defaults applied.
#[derive(Debug)]
enum Auth {
    Imds {
        endpoint: String,
        client_id: Option<String>,
    },
    AppService {
        endpoint: String,
        header: SecretString,
        client_id: Option<String>,
    },
    Federated {
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
    Secret {
        tenant_id: String,
        client_id: String,
        secret: SecretRef,
    },
}

impl Auth {
    fn tenant(&self) -> Option<&str> {
        match self {
            Self::Federated { tenant_id, .. } | Self::Secret { tenant_id, .. } => Some(tenant_id),
            _ => None,
        }
    }
    fn describe(&self) -> String {
        match self {
            Self::Imds {
                endpoint,
                client_id,
            } => match client_id {
                Some(c) => format!("managed identity {c} via IMDS {endpoint}"),
                None => format!("the system-assigned managed identity via IMDS {endpoint}"),
            },
            Self::AppService { endpoint, .. } => {
                format!("the App Service managed identity via {endpoint}")
            }
            Self::Federated {
                tenant_id,
                client_id,
                ..
            } => format!("workload identity {client_id} in tenant {tenant_id}"),
            Self::Secret {
                tenant_id,
                client_id,
                ..
            } => format!("service principal {client_id} in tenant {tenant_id}"),
        }
    }
}

#[derive(Debug)]
struct Token {
    value: SecretString,
    refresh_at: Instant,
}

/// What a vault's challenge told us: the scope to ask a token for.
#[derive(Debug, Clone)]
struct Challenge {
    scope: String,
}

/// Azure Key Vault provider.
#[derive(Debug)]
pub struct AzureProvider {
    cfg: AzureConfig,
    auth: Auth,
    authority: String,
    /// Vault and authority calls (HTTPS, system proxy settings honoured).
    http: reqwest::Client,
    /// IMDS / App Service calls: never through a proxy.
    local: reqwest::Client,
    /// Challenge per vault host.
    challenges: Mutex<HashMap<String, Challenge>>,
    /// Access tokens per scope (auth credentials, not job secrets).
    tokens: Mutex<HashMap<String, Token>>,
}

/// Build-time configuration errors name the config key.
fn config_error(key: &str, reason: impl Into<String>) -> SecretError {
    SecretError::Malformed {
        reference: format!("secrets.azure.{key}"),
        reason: reason.into(),
    }
}

impl AzureProvider {
    pub fn new(cfg: AzureConfig) -> Result<Self, SecretError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let authority = cfg
            .authority_host
            .clone()
            .or_else(|| env("AZURE_AUTHORITY_HOST"))
            .unwrap_or_else(|| DEFAULT_AUTHORITY.to_string())
            .trim_end_matches('/')
            .to_string();
        if !authority.starts_with("https://") {
            return Err(config_error(
                "authority_host",
                format!("`{authority}` must be an https:// URL (credentials are sent there)"),
            ));
        }
        let auth = match &cfg.auth {
            AzureAuth::ManagedIdentity { client_id } => {
                match (
                    &cfg.imds_endpoint,
                    env("IDENTITY_ENDPOINT"),
                    env("IDENTITY_HEADER"),
                ) {
                    (None, Some(endpoint), Some(header)) => Auth::AppService {
                        endpoint,
                        header: SecretString::new(header),
                        client_id: client_id.clone(),
                    },
                    (endpoint, _, _) => Auth::Imds {
                        endpoint: endpoint.clone().unwrap_or_else(|| DEFAULT_IMDS.to_string()),
                        client_id: client_id.clone(),
                    },
                }
            }
            AzureAuth::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => {
                let need = |v: &Option<String>, var: &str, key: &str| {
                    v.clone().or_else(|| env(var)).ok_or_else(|| {
                        config_error(
                            &format!("auth.{key}"),
                            format!("workload identity needs {key} or the {var} environment variable (set by the AKS workload identity webhook when the pod's service account is annotated)"),
                        )
                    })
                };
                Auth::Federated {
                    tenant_id: need(tenant_id, "AZURE_TENANT_ID", "tenant_id")?,
                    client_id: need(client_id, "AZURE_CLIENT_ID", "client_id")?,
                    token_file: match token_file {
                        Some(p) => p.clone(),
                        None => {
                            PathBuf::from(need(&None, "AZURE_FEDERATED_TOKEN_FILE", "token_file")?)
                        }
                    },
                }
            }
            AzureAuth::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
            } => {
                if !matches!(client_secret, SecretRef::Env(_) | SecretRef::File { .. }) {
                    return Err(config_error(
                        "auth.client_secret",
                        "must be an env://NAME or file:///path reference, not a literal or another store",
                    ));
                }
                Auth::Secret {
                    tenant_id: tenant_id.clone(),
                    client_id: client_id.clone(),
                    secret: client_secret.clone(),
                }
            }
        };

        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for c in native.certs {
            // A broken system certificate is skipped, as every client does.
            let _ = roots.add(c);
        }
        if let Some(path) = &cfg.ca_file {
            use rustls_pki_types::pem::PemObject;
            let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    config_error("ca_file", format!("cannot read {}: {e}", path.display()))
                })?;
            if certs.is_empty() {
                return Err(config_error(
                    "ca_file",
                    format!("{} holds no PEM certificate", path.display()),
                ));
            }
            for c in certs {
                roots.add(c).map_err(|e| {
                    config_error(
                        "ca_file",
                        format!("{}: invalid certificate: {e}", path.display()),
                    )
                })?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("ca_file", format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1));
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| config_error("ca_file", format!("HTTP client: {e}")))?;
        let local = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| config_error("imds_endpoint", format!("HTTP client: {e}")))?;
        Ok(Self {
            cfg,
            auth,
            authority,
            http,
            local,
            challenges: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    fn vault_host(&self, vault: &str) -> String {
        if vault.contains('.') || vault.contains(':') {
            vault.trim_end_matches('/').to_string()
        } else {
            format!(
                "{vault}.{}",
                self.cfg.vault_dns_suffix.trim_start_matches('.')
            )
        }
    }

    fn cached_token(&self, scope: &str) -> Option<SecretString> {
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens
            .get(scope)
            .filter(|t| Instant::now() < t.refresh_at)
            .map(|t| t.value.clone())
    }

    fn drop_token(&self, scope: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(scope);
    }

    /// A token for `scope`, from the cache or freshly fetched.
    async fn token(&self, ctx: &Ctx<'_>, scope: &str) -> Result<SecretString, SecretError> {
        if let Some(t) = self.cached_token(scope) {
            return Ok(t);
        }
        let (value, expires_in) = self.fetch_token(ctx, scope).await?;
        let margin = Duration::from_secs(300).min(expires_in / 2);
        let token = Token {
            value: value.clone(),
            refresh_at: Instant::now() + expires_in.saturating_sub(margin),
        };
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(scope.to_string(), token);
        Ok(value)
    }

    async fn fetch_token(
        &self,
        ctx: &Ctx<'_>,
        scope: &str,
    ) -> Result<(SecretString, Duration), SecretError> {
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        match &self.auth {
            Auth::Imds {
                endpoint,
                client_id,
            } => {
                let mut url = format!(
                    "{endpoint}?api-version=2018-02-01&resource={}",
                    form_encode(resource)
                );
                if let Some(c) = client_id {
                    url.push_str(&format!("&client_id={}", form_encode(c)));
                }
                let what = format!("the managed identity endpoint {endpoint}");
                let resp = self
                    .send(ctx, &what, || {
                        self.local.get(&url).header("Metadata", "true")
                    })
                    .await?;
                self.token_answer(ctx, &what, resp).await
            }
            Auth::AppService {
                endpoint,
                header,
                client_id,
            } => {
                let mut url = format!(
                    "{endpoint}?api-version=2019-08-01&resource={}",
                    form_encode(resource)
                );
                if let Some(c) = client_id {
                    url.push_str(&format!("&client_id={}", form_encode(c)));
                }
                let what = format!("the managed identity endpoint {endpoint}");
                let resp = self
                    .send(ctx, &what, || {
                        self.local
                            .get(&url)
                            .header("X-IDENTITY-HEADER", header.expose())
                    })
                    .await?;
                self.token_answer(ctx, &what, resp).await
            }
            Auth::Federated {
                tenant_id,
                client_id,
                token_file,
            } => {
                let assertion = std::fs::read_to_string(token_file)
                    .map(|s| SecretString::new(s.trim()))
                    .map_err(|e| ctx.auth_failed(format!(
                        "cannot read the federated token file {}: {e}; check AZURE_FEDERATED_TOKEN_FILE and that the pod's service account is annotated for workload identity",
                        token_file.display()
                    )))?;
                let body = SecretString::new(format!(
                    "grant_type=client_credentials&client_id={}&scope={}&client_assertion_type={}&client_assertion={}",
                    form_encode(client_id),
                    form_encode(scope),
                    form_encode(JWT_BEARER),
                    form_encode(assertion.expose())
                ));
                self.entra_token(ctx, tenant_id, body).await
            }
            Auth::Secret {
                tenant_id,
                client_id,
                secret,
            } => {
                let value = Resolver::default()
                    .job("azure-kv-auth")
                    .resolve(secret)
                    .await
                    .map_err(|e| ctx.auth_failed(format!("cannot read the client secret: {e}")))?;
                let body = SecretString::new(format!(
                    "grant_type=client_credentials&client_id={}&scope={}&client_secret={}",
                    form_encode(client_id),
                    form_encode(scope),
                    form_encode(value.expose())
                ));
                self.entra_token(ctx, tenant_id, body).await
            }
        }
    }

    async fn entra_token(
        &self,
        ctx: &Ctx<'_>,
        tenant_id: &str,
        body: SecretString,
    ) -> Result<(SecretString, Duration), SecretError> {
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority,
            form_encode(tenant_id)
        );
        let what = format!("the Entra ID token endpoint {url}");
        let resp = self
            .send(ctx, &what, || {
                self.http
                    .post(&url)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body.expose().to_string())
            })
            .await?;
        self.token_answer(ctx, &what, resp).await
    }

    /// Read a token endpoint's answer (Entra ID, IMDS and App Service agree
    /// on `access_token` + `expires_in`/`expires_on`).
    async fn token_answer(
        &self,
        ctx: &Ctx<'_>,
        what: &str,
        resp: reqwest::Response,
    ) -> Result<(SecretString, Duration), SecretError> {
        let status = resp.status();
        let body = read_body(ctx, what, resp).await?;
        if status.is_success() {
            let t: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
                ctx.auth_failed(format!("{what} answered {status} without an access_token"))
            })?;
            let expires_in = t
                .expires_in
                .as_ref()
                .and_then(NumOrString::as_u64)
                .or_else(|| {
                    let on = t.expires_on.as_ref()?.as_u64()?;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .ok()?
                        .as_secs();
                    Some(on.saturating_sub(now))
                })
                .unwrap_or(300);
            return Ok((
                SecretString::new(t.access_token.as_str()),
                Duration::from_secs(expires_in),
            ));
        }
        let err: OAuthError = serde_json::from_slice(&body).unwrap_or_default();
        // AADSTS descriptions carry trace ids and timestamps after the first line.
        let desc = err
            .error_description
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect::<String>();
        tracing::debug!(endpoint = what, %status, code = %err.error, "azure token request failed");
        let who = self.auth.describe();
        let hint = match err.error.as_str() {
            "invalid_client" => format!("{what} rejected the credentials of {who} ({status} invalid_client: {desc}); check the client id and rotate or re-read the client secret / federated credential"),
            "unauthorized_client" => format!("{what} refused {who} ({status} unauthorized_client: {desc}); check the application exists in this tenant and the federated credential's subject matches"),
            "invalid_request" if matches!(self.auth, Auth::Imds { .. } | Auth::AppService { .. }) => format!("{what} has no usable identity ({status}: {desc}); assign a managed identity to this VM/app, or set auth.client_id to a user-assigned identity it has"),
            "" => format!("{what} answered {status}; check {who}"),
            code => format!("{what} refused {who} ({status} {code}: {desc})"),
        };
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(ctx.unreachable_hint(hint));
        }
        Err(ctx.auth_failed(hint))
    }

    /// Send with retries on transient failures. `what` names the endpoint.
    async fn send(
        &self,
        ctx: &Ctx<'_>,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SecretError> {
        let mut attempt = 0u32;
        loop {
            let result = build().send().await;
            let transient = match &result {
                Ok(r) => {
                    r.status().is_server_error() || r.status() == StatusCode::TOO_MANY_REQUESTS
                }
                Err(e) => e.is_timeout() || (e.is_connect() && !is_tls_error(e)),
            };
            if !transient || attempt >= self.cfg.retries {
                return match result {
                    Ok(r) => Ok(r),
                    Err(e) => Err(ctx.unreachable(what, &e)),
                };
            }
            match &result {
                Ok(r) => {
                    tracing::debug!(endpoint = what, status = %r.status(), attempt, "azure: retrying")
                }
                Err(e) => tracing::debug!(endpoint = what, error = %e, attempt, "azure: retrying"),
            }
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt.min(6)))).await;
            attempt += 1;
        }
    }

    async fn get_secret(&self, ctx: &Ctx<'_>) -> Result<SecretString, SecretError> {
        let host = &ctx.host;
        let url = &ctx.url;
        let what = format!("Key Vault https://{host}");
        let known = self
            .challenges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(host.as_str())
            .cloned();
        let mut token = match &known {
            Some(c) => Some((c.scope.clone(), self.token(ctx, &c.scope).await?)),
            None => None,
        };
        let mut retried = false;
        loop {
            let resp = self
                .send(ctx, &what, || {
                    let r = self
                        .http
                        .get(url.as_str())
                        .header("Accept", "application/json");
                    match &token {
                        Some((_, t)) => r.bearer_auth(t.expose()),
                        None => r,
                    }
                })
                .await?;
            let status = resp.status();
            tracing::debug!(vault = %host, %status, "azure key vault get secret");
            if status == StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                let challenge = resp
                    .headers()
                    .get_all("www-authenticate")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(parse_challenge)
                    .ok_or_else(|| ctx.auth_failed(format!(
                        "{what} answered 401 without a Bearer challenge; is https://{host} a Key Vault?"
                    )))?;
                if let Some((scope, _)) = &token {
                    // The vault rejected a cached token: fetch a fresh one.
                    self.drop_token(scope);
                }
                let scope = self.check_challenge(ctx, &challenge)?;
                self.challenges
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(
                        host.clone(),
                        Challenge {
                            scope: scope.clone(),
                        },
                    );
                let t = self.token(ctx, &scope).await?;
                token = Some((scope, t));
                continue;
            }
            let body = read_body(ctx, &what, resp).await?;
            if status.is_success() {
                let mut s: SecretBundle = serde_json::from_slice(&body).map_err(|_| {
                    ctx.backend(format!(
                        "{what} answered {status} with no `value` in the body"
                    ))
                })?;
                return Ok(SecretString::new(std::mem::take(&mut s.value)));
            }
            let err: KvErrorBody = serde_json::from_slice(&body).unwrap_or_default();
            let code = err.error.code;
            let inner = err.error.innererror.map(|i| i.code).unwrap_or_default();
            let msg: String = err.error.message.chars().take(400).collect();
            let status_code = status.as_u16();
            let detail = if msg.is_empty() {
                format!("HTTP {status_code} {code}")
            } else {
                format!("HTTP {status_code} {code}: {msg}")
            };
            let who = self.auth.describe();
            return Err(match status {
                StatusCode::NOT_FOUND => SecretError::NotFound {
                    reference: ctx.reference.to_string(),
                    backend: BACKEND,
                    hint: format!(
                        "{what} has no secret `{}`{} ({detail}); check the name and version (`az keyvault secret list --vault-name <vault>`)",
                        ctx.secret,
                        ctx.version.map(|v| format!(" version `{v}`")).unwrap_or_default()
                    ),
                },
                StatusCode::FORBIDDEN => SecretError::PermissionDenied {
                    reference: ctx.reference.to_string(),
                    backend: BACKEND,
                    hint: if inner == "ForbiddenByFirewall" || code == "ForbiddenByFirewall" {
                        format!("{what} refused the connection by its firewall ({detail}); allow krawl's network in the vault's networking settings or use a private endpoint")
                    } else {
                        format!("{who} may not read secrets in {what} ({detail}); grant it the `Key Vault Secrets User` role on the vault (Azure RBAC) or a `get` secret permission in the vault's access policy")
                    },
                },
                StatusCode::UNAUTHORIZED => ctx.auth_failed(format!(
                    "{what} rejected the token of {who} ({detail}); check the vault's tenant and that the identity is not disabled"
                )),
                s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                    ctx.unreachable_hint(format!("{what} answered {detail} after {} retries", self.cfg.retries))
                }
                _ => ctx.backend(format!("{what} answered {detail}")),
            });
        }
    }

    /// Check a challenge; the scope to get a token for.
    fn check_challenge(&self, ctx: &Ctx<'_>, c: &ParsedChallenge) -> Result<String, SecretError> {
        let resource = c
            .scope
            .as_deref()
            .map(|s| s.strip_suffix("/.default").unwrap_or(s).to_string())
            .or_else(|| c.resource.clone())
            .ok_or_else(|| {
                ctx.auth_failed("the vault's challenge names no resource or scope".into())
            })?;
        let resource = resource.trim_end_matches('/').to_string();
        if self.cfg.verify_challenge_resource {
            let res_host = resource
                .strip_prefix("https://")
                .unwrap_or(&resource)
                .split(['/', ':'])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            let vault_host = ctx
                .host
                .split(':')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            let ok = !res_host.is_empty()
                && (vault_host == res_host || vault_host.ends_with(&format!(".{res_host}")));
            if !ok {
                return Err(ctx.auth_failed(format!(
                    "the challenge of https://{} names resource `{resource}`, which is not the vault's domain; refusing to get a token for it (check the vault address; for a private test host set secrets.azure.verify_challenge_resource = false)",
                    ctx.host
                )));
            }
        }
        if let (Some(want), Some(authz)) = (self.auth.tenant(), &c.authorization) {
            let tenant = authz.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            if !tenant.is_empty()
                && !tenant.eq_ignore_ascii_case(want)
                && !matches!(tenant, "common" | "organizations")
            {
                return Err(ctx.auth_failed(format!(
                    "the vault https://{} belongs to tenant `{tenant}` but krawl authenticates in tenant `{want}`; set secrets.azure.auth.tenant_id to the vault's tenant",
                    ctx.host
                )));
            }
        }
        Ok(format!("{resource}/.default"))
    }
}

/// One resolution: the reference and its URL, for errors.
#[derive(Debug)]
struct Ctx<'a> {
    reference: &'a SecretRef,
    host: String,
    secret: &'a str,
    version: Option<&'a str>,
    url: String,
}

impl Ctx<'_> {
    fn auth_failed(&self, hint: String) -> SecretError {
        SecretError::AuthFailed {
            reference: self.reference.to_string(),
            backend: BACKEND,
            hint,
        }
    }
    fn backend(&self, message: String) -> SecretError {
        SecretError::Backend {
            reference: self.reference.to_string(),
            backend: BACKEND,
            message,
        }
    }
    fn unreachable_hint(&self, hint: String) -> SecretError {
        SecretError::Unreachable {
            reference: self.reference.to_string(),
            backend: BACKEND,
            hint,
        }
    }
    fn unreachable(&self, what: &str, e: &reqwest::Error) -> SecretError {
        let chain = error_chain(e);
        let hint = if is_tls_error(e) {
            format!("TLS handshake with {what} failed ({chain}); if a proxy or private CA signs its certificate, set secrets.azure.ca_file to that CA")
        } else if e.is_timeout() {
            format!("{what} did not answer in time ({chain}); check the network path or raise secrets.azure.timeout_secs")
        } else {
            format!("cannot reach {what} ({chain}); check the address, DNS and firewall")
        };
        self.unreachable_hint(hint)
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// An answer's body, at most [`krawl_http::limits::SECRET_STORE`] bytes.
async fn read_body(
    ctx: &Ctx<'_>,
    what: &str,
    resp: reqwest::Response,
) -> Result<krawl_http::Bytes, SecretError> {
    match krawl_http::read_capped(resp, krawl_http::limits::SECRET_STORE).await {
        Ok(b) => Ok(b),
        Err(krawl_http::BodyError::Transport(e)) => Err(ctx.unreachable(what, &e)),
        Err(e) => Err(ctx.backend(format!("{what}: {e}"))),
    }
}

fn is_tls_error(e: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = cur {
        if s.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        let t = s.to_string().to_ascii_lowercase();
        if t.contains("certificate") || t.contains("tls") {
            return true;
        }
        cur = s.source();
    }
    false
}

/// `application/x-www-form-urlencoded` / query component encoding.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(Debug, Default, PartialEq)]
struct ParsedChallenge {
    authorization: Option<String>,
    resource: Option<String>,
    scope: Option<String>,
}

/// Parse `Bearer authorization="...", resource="..."` (also
/// `authorization_uri`, `scope`). None unless it is a Bearer challenge.
fn parse_challenge(header: &str) -> Option<ParsedChallenge> {
    let rest = header.trim();
    let (scheme, params) = rest.split_once(' ').unwrap_or((rest, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut c = ParsedChallenge::default();
    for part in params.split(',') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "authorization" | "authorization_uri" => c.authorization = Some(v),
            "resource" | "resource_id" => c.resource = Some(v),
            "scope" => c.scope = Some(v),
            _ => {}
        }
    }
    Some(c)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrString {
    Num(u64),
    Str(String),
}

impl NumOrString {
    fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Num(n) => Some(*n),
            Self::Str(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<NumOrString>,
    #[serde(default)]
    expires_on: Option<NumOrString>,
}

impl Drop for TokenResponse {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.access_token);
    }
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(Deserialize)]
struct SecretBundle {
    value: String,
}

impl Drop for SecretBundle {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

#[derive(Deserialize, Default)]
struct KvErrorBody {
    #[serde(default)]
    error: KvError,
}

#[derive(Deserialize, Default)]
struct KvError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    innererror: Option<KvInner>,
}

#[derive(Deserialize, Default)]
struct KvInner {
    #[serde(default)]
    code: String,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 127 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[async_trait::async_trait]
impl SecretProvider for AzureProvider {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn fetch(&self, reference: &SecretRef) -> Result<SecretString, SecretError> {
        let SecretRef::AzureKv {
            vault,
            secret,
            version,
            ..
        } = reference
        else {
            return Err(SecretError::Backend {
                reference: reference.to_string(),
                backend: BACKEND,
                message: "not an azure-kv:// reference".into(),
            });
        };
        if !valid_name(secret) || version.as_deref().is_some_and(|v| !valid_name(v)) {
            return Err(SecretError::Malformed {
                reference: reference.to_string(),
                reason: "Key Vault secret names and versions are 1-127 letters, digits and dashes"
                    .into(),
            });
        }
        let host = self.vault_host(vault);
        let url = match version {
            Some(v) => format!("https://{host}/secrets/{secret}/{v}?api-version={API_VERSION}"),
            None => format!("https://{host}/secrets/{secret}?api-version={API_VERSION}"),
        };
        let ctx = Ctx {
            reference,
            host,
            secret,
            version: version.as_deref(),
            url,
        };
        self.get_secret(&ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_vault_challenges() {
        let c = parse_challenge(
            r#"Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net""#,
        )
        .unwrap();
        assert_eq!(
            c.authorization.as_deref(),
            Some("https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47")
        );
        assert_eq!(c.resource.as_deref(), Some("https://vault.azure.net"));
        assert!(parse_challenge("Basic realm=\"x\"").is_none());
        let c = parse_challenge(r#"Bearer authorization="https://login.microsoftonline.com/t", scope="https://vault.azure.net/.default""#).unwrap();
        assert_eq!(c.scope.as_deref(), Some("https://vault.azure.net/.default"));
    }

    #[test]
    fn config_defaults_and_auth_methods() {
        let cfg: AzureConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg.timeout_secs, 10);
        assert_eq!(cfg.retries, 2);
        assert_eq!(cfg.vault_dns_suffix, "vault.azure.net");
        assert!(cfg.verify_challenge_resource);
        assert!(matches!(
            cfg.auth,
            AzureAuth::ManagedIdentity { client_id: None }
        ));
        let cfg: AzureConfig = serde_json::from_str(
            r#"{"auth":{"method":"client_secret","tenant_id":"t","client_id":"c","client_secret":"env://X"}}"#,
        )
        .unwrap();
        assert!(matches!(cfg.auth, AzureAuth::ClientSecret { .. }));
        assert!(serde_json::from_str::<AzureConfig>(
            r#"{"auth":{"method":"managed_identity","nope":1}}"#
        )
        .is_err());
        let literal: AzureConfig = serde_json::from_str(
            r#"{"auth":{"method":"client_secret","tenant_id":"t","client_id":"c","client_secret":"plain"}}"#,
        )
        .unwrap();
        let err = AzureProvider::new(literal).unwrap_err().to_string();
        assert!(err.contains("env://NAME or file://"), "{err}");
        assert!(!err.contains("plain"), "{err}");
    }

    #[test]
    fn vault_names_get_the_dns_suffix() {
        let p = AzureProvider::new(AzureConfig {
            vault_dns_suffix: "vault.azure.cn".into(),
            ..AzureConfig::default()
        })
        .unwrap();
        assert_eq!(p.vault_host("kv1"), "kv1.vault.azure.cn");
        assert_eq!(p.vault_host("kv1.vault.azure.net"), "kv1.vault.azure.net");
        assert_eq!(p.vault_host("127.0.0.1:8443"), "127.0.0.1:8443");
        assert_eq!(form_encode("a b/c=d&é"), "a%20b%2Fc%3Dd%26%C3%A9");
    }
}
