//! The agent's configuration: a TOML file (default `/etc/krawl/krawl.toml`) with `KRAWL_*`
//! environment overrides.
//!
//! ```toml
//! [agent]
//! name = "kafka-prod-agent-1"        # default: the host name
//! labels = { env = "prod" }
//! max_concurrent_jobs = 5
//! shutdown_grace_secs = 60
//! health_listen = "127.0.0.1:9464"   # "" disables /healthz, /readyz, /metrics
//!
//! [control_plane]
//! url = "https://krawl.example.com"
//! ca_file = "/etc/krawl/ca.pem"      # extra roots, added to the system's
//! auth = { bootstrap_token = "env://KRAWL_CONTROL_PLANE_TOKEN" }
//! ```
//!
//! Environment overrides (applied after the file, before validation):
//!
//! | variable | key |
//! |---|---|
//! | `KRAWL_CONTROL_PLANE_URL` | `control_plane.url` |
//! | `KRAWL_CA_FILE` | `control_plane.ca_file` |
//! | `KRAWL_PROXY` | `control_plane.proxy` |
//! | `KRAWL_NO_PROXY` | `control_plane.no_proxy` |
//! | `KRAWL_BOOTSTRAP_TOKEN` | `control_plane.auth = { bootstrap_token = <value> }` (a secret reference) |
//! | `KRAWL_STATIC_TOKEN` | `control_plane.auth = { static_token = <value> }` (a secret reference) |
//! | `KRAWL_AGENT_NAME` | `agent.name` |
//! | `KRAWL_AGENT_LABELS` | `agent.labels`, as `k=v,k=v` |
//! | `KRAWL_MAX_CONCURRENT_JOBS` | `agent.max_concurrent_jobs` |
//! | `KRAWL_SHUTDOWN_GRACE_SECS` | `agent.shutdown_grace_secs` |
//! | `KRAWL_HEALTH_LISTEN` | `agent.health_listen` (empty disables) |
//!
//! `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` are honoured when `control_plane.proxy` is not set.
//! Token values are secret references resolved through `[secrets]` and never printed: the
//! derived `Debug` of every type here shows references, and a literal as `literal:[redacted]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use krawl_secrets::{SecretRef, SecretsConfig};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::jobs::policy::Policy;

/// Where `krawl run` and `krawl check` look for their config by default.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/krawl/krawl.toml";

/// Largest `agent.chunk_max_bytes` (decoded): even incompressible NDJSON stays under the
/// reference control plane's 16 MiB body limit.
pub const MAX_CHUNK_BYTES: usize = 16 * 1024 * 1024;

/// Top-level tables the agent reads, plus the `krawl extract` tables it tolerates (so one file
/// can serve both commands).
const KNOWN_TABLES: &[&str] = &[
    "agent",
    "control_plane",
    "secrets",
    "policy",
    "kafka",
    "extract",
    "schema_registry",
];

/// The whole agent config.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct AgentConfig {
    #[serde(default)]
    pub agent: AgentSection,
    #[serde(default)]
    pub control_plane: ControlPlaneConfig,
    /// Secret stores, for the control-plane credential and for jobs' Kafka credentials.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// What jobs may do (clusters, secret references, kinds); see the jobs module.
    #[serde(default)]
    pub policy: Policy,
}

/// `[agent]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Name shown in the control plane (default: the host name).
    #[serde(default = "default_name")]
    pub name: String,
    /// Labels the control plane may route jobs on (`env = "prod"`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Jobs run at once (1-256).
    #[serde(default = "default_max_jobs")]
    pub max_concurrent_jobs: u32,
    /// On the first SIGTERM, running jobs get this long to finish before they are interrupted.
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
    /// Address of `/healthz`, `/readyz` and `/metrics`; empty disables the server.
    #[serde(default = "default_health_listen")]
    pub health_listen: String,
    /// Idle Kafka connections shared between jobs are closed after this many seconds.
    #[serde(default = "default_idle")]
    pub connection_idle_secs: u64,
    /// A result chunk is cut after this many records.
    #[serde(default = "default_chunk_records")]
    pub chunk_max_records: usize,
    /// ... or after this many decoded (NDJSON) bytes, whichever comes first.
    #[serde(default = "default_chunk_bytes")]
    pub chunk_max_bytes: usize,
    /// How long an upload of one chunk is retried (control plane down) before the job fails.
    #[serde(default = "default_upload_retry")]
    pub upload_retry_secs: u64,
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            name: default_name(),
            labels: BTreeMap::new(),
            max_concurrent_jobs: default_max_jobs(),
            shutdown_grace_secs: default_grace(),
            health_listen: default_health_listen(),
            connection_idle_secs: default_idle(),
            chunk_max_records: default_chunk_records(),
            chunk_max_bytes: default_chunk_bytes(),
            upload_retry_secs: default_upload_retry(),
        }
    }
}

/// `[control_plane]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneConfig {
    /// Base URL, `https://...` (plain `http://` only for 127.0.0.1/localhost demos).
    #[serde(default)]
    pub url: String,
    /// PEM file of extra CA certificates, trusted in addition to the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Explicit proxy URL (`http://proxy:3128`); default: `HTTPS_PROXY`/`HTTP_PROXY`.
    #[serde(default)]
    pub proxy: Option<String>,
    /// Hosts that bypass the proxy (comma-separated, as `NO_PROXY`); default: `NO_PROXY`.
    #[serde(default)]
    pub no_proxy: Option<String>,
    /// TCP + TLS connect timeout, seconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Timeout of every call except the long poll (which waits the server's poll time + 15 s).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// How the agent authenticates; exactly one of `bootstrap_token`, `oauth2`, `static_token`.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            ca_file: None,
            proxy: None,
            no_proxy: None,
            connect_timeout_secs: default_connect_timeout(),
            request_timeout_secs: default_request_timeout(),
            auth: None,
        }
    }
}

/// `control_plane.auth`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// A registration token (secret reference): `register` returns the agent's own token, used
    /// for everything after.
    BootstrapToken(#[schemars(with = "String")] SecretRef),
    /// OAuth2 client credentials: the access token is the bearer of every call.
    Oauth2(OAuth2Config),
    /// One long-lived token (secret reference), the bearer of every call.
    StaticToken(#[schemars(with = "String")] SecretRef),
}

impl AuthConfig {
    /// The secret reference of the agent's own credential: jobs may never resolve it
    /// ([`krawl_secrets::Resolver::reserve`]).
    pub fn secret_ref(&self) -> &SecretRef {
        match self {
            AuthConfig::BootstrapToken(r) | AuthConfig::StaticToken(r) => r,
            AuthConfig::Oauth2(o) => &o.client_secret,
        }
    }

    /// What the credential is called in messages.
    pub fn describe(&self) -> &'static str {
        match self {
            AuthConfig::BootstrapToken(_) => "bootstrap token (control_plane.auth.bootstrap_token)",
            AuthConfig::Oauth2(_) => "OAuth2 access token (control_plane.auth.oauth2)",
            AuthConfig::StaticToken(_) => "static token (control_plane.auth.static_token)",
        }
    }
}

/// `control_plane.auth.oauth2`: client-credentials grant.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// Token endpoint (`https://idp.example.com/oauth2/token`).
    pub token_url: String,
    pub client_id: String,
    /// Secret reference of the client secret.
    #[schemars(with = "String")]
    pub client_secret: SecretRef,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    /// How the client authenticates to the token endpoint: `basic` (HTTP Basic, RFC 6749
    /// §2.3.1, which every server must support; the default) or `body` (`client_id` and
    /// `client_secret` in the form body, for servers that want that).
    #[serde(default)]
    pub client_auth: ClientAuth,
}

/// `control_plane.auth.oauth2.client_auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    Basic,
    Body,
}

/// Why a config was refused. Each names the file or key and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; pass --config FILE or create it")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    /// `[policy]` refused; the message names the key.
    #[error("{0}")]
    Policy(String),
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

fn default_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "krawl-agent".to_string())
}
fn default_max_jobs() -> u32 {
    5
}
fn default_grace() -> u64 {
    60
}
fn default_health_listen() -> String {
    "127.0.0.1:9464".to_string()
}
fn default_idle() -> u64 {
    300
}
fn default_chunk_records() -> usize {
    5_000
}
fn default_chunk_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_upload_retry() -> u64 {
    600
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_request_timeout() -> u64 {
    30
}

impl AgentConfig {
    /// Reads `path` (or [`DEFAULT_CONFIG_PATH`] when `None`; a missing default file is fine when
    /// the environment supplies the URL and credential), applies the `KRAWL_*` overrides and
    /// validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env = |k: &str| std::env::var(k).ok();
        let (text, shown) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?,
                p.display().to_string(),
            ),
            None => match std::fs::read_to_string(DEFAULT_CONFIG_PATH) {
                Ok(t) => (t, DEFAULT_CONFIG_PATH.to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    (String::new(), "(no config file)".to_string())
                }
                Err(source) => {
                    return Err(ConfigError::Read {
                        path: PathBuf::from(DEFAULT_CONFIG_PATH),
                        source,
                    })
                }
            },
        };
        Self::from_toml(&text, &shown, &env)
    }

    /// Parses `text`, applies overrides from `env` and validates (tests pass their own `env`).
    pub fn from_toml(
        text: &str,
        source_name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: source_name.to_string(),
            message: e.to_string(),
        })?;
        if let Some(unknown) = table.keys().find(|k| !KNOWN_TABLES.contains(&k.as_str())) {
            return Err(ConfigError::Parse {
                path: source_name.to_string(),
                message: format!(
                    "unknown table `{unknown}`; the agent reads {}",
                    KNOWN_TABLES.join(", ")
                ),
            });
        }
        let mut cfg: AgentConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: source_name.to_string(),
                    message: e.to_string(),
                })?;
        cfg.apply_env(env)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |k: &str| env(k).map(|v| v.trim().to_string());
        if let Some(v) = get("KRAWL_CONTROL_PLANE_URL") {
            self.control_plane.url = v;
        }
        if let Some(v) = get("KRAWL_CA_FILE") {
            self.control_plane.ca_file = (!v.is_empty()).then(|| PathBuf::from(v));
        }
        if let Some(v) = get("KRAWL_PROXY") {
            self.control_plane.proxy = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = get("KRAWL_NO_PROXY") {
            self.control_plane.no_proxy = Some(v);
        }
        let secret = |var: &str, v: &str| {
            SecretRef::parse(v).map_err(|e| {
                invalid(
                    var,
                    format!("{e}; set it to a secret reference such as env://NAME or file:///path"),
                )
            })
        };
        if let Some(v) = get("KRAWL_BOOTSTRAP_TOKEN").filter(|v| !v.is_empty()) {
            self.control_plane.auth = Some(AuthConfig::BootstrapToken(secret(
                "KRAWL_BOOTSTRAP_TOKEN",
                &v,
            )?));
        }
        if let Some(v) = get("KRAWL_STATIC_TOKEN").filter(|v| !v.is_empty()) {
            self.control_plane.auth =
                Some(AuthConfig::StaticToken(secret("KRAWL_STATIC_TOKEN", &v)?));
        }
        if let Some(v) = get("KRAWL_AGENT_NAME") {
            self.agent.name = v;
        }
        if let Some(v) = get("KRAWL_AGENT_LABELS") {
            let mut labels = BTreeMap::new();
            for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, val) = pair.split_once('=').ok_or_else(|| {
                    invalid(
                        "KRAWL_AGENT_LABELS",
                        format!("`{pair}` is not key=value; write labels as env=prod,region=eu"),
                    )
                })?;
                labels.insert(k.trim().to_string(), val.trim().to_string());
            }
            self.agent.labels = labels;
        }
        if let Some(v) = get("KRAWL_MAX_CONCURRENT_JOBS") {
            self.agent.max_concurrent_jobs = v.parse().map_err(|_| {
                invalid(
                    "KRAWL_MAX_CONCURRENT_JOBS",
                    format!("`{v}` is not a whole number; set 1-256"),
                )
            })?;
        }
        if let Some(v) = get("KRAWL_SHUTDOWN_GRACE_SECS") {
            self.agent.shutdown_grace_secs = v.parse().map_err(|_| {
                invalid(
                    "KRAWL_SHUTDOWN_GRACE_SECS",
                    format!("`{v}` is not a whole number of seconds"),
                )
            })?;
        }
        if let Some(v) = get("KRAWL_HEALTH_LISTEN") {
            self.agent.health_listen = v;
        }
        Ok(())
    }

    /// Checks every value; the error names the key and what to do.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let a = &self.agent;
        if a.name.trim().is_empty() {
            return Err(invalid(
                "agent.name",
                "must not be empty; set it or KRAWL_AGENT_NAME",
            ));
        }
        if !(1..=256).contains(&a.max_concurrent_jobs) {
            return Err(invalid(
                "agent.max_concurrent_jobs",
                format!("{} is out of range; set 1-256", a.max_concurrent_jobs),
            ));
        }
        if a.shutdown_grace_secs > 86_400 {
            return Err(invalid(
                "agent.shutdown_grace_secs",
                "must be at most 86400 (one day)",
            ));
        }
        self.health_listen()?;
        if a.chunk_max_records == 0 {
            return Err(invalid("agent.chunk_max_records", "must be at least 1"));
        }
        if !(1024..=MAX_CHUNK_BYTES).contains(&a.chunk_max_bytes) {
            return Err(invalid(
                "agent.chunk_max_bytes",
                format!(
                    "{} is out of range; set 1024-{MAX_CHUNK_BYTES} (the reference control plane \
                     refuses compressed chunk bodies over 16 MiB)",
                    a.chunk_max_bytes
                ),
            ));
        }
        if a.upload_retry_secs == 0 {
            return Err(invalid("agent.upload_retry_secs", "must be at least 1"));
        }
        self.policy.compile().map_err(ConfigError::Policy)?;
        let cp = &self.control_plane;
        self.control_plane_url()?;
        if let Some(p) = &cp.proxy {
            reqwest::Url::parse(p).map_err(|e| {
                invalid(
                    "control_plane.proxy",
                    format!("`{p}` is not a URL ({e}); write it as http://proxy.internal:3128"),
                )
            })?;
        }
        if cp.connect_timeout_secs == 0 || cp.connect_timeout_secs > 600 {
            return Err(invalid("control_plane.connect_timeout_secs", "set 1-600"));
        }
        if cp.request_timeout_secs == 0 || cp.request_timeout_secs > 3600 {
            return Err(invalid("control_plane.request_timeout_secs", "set 1-3600"));
        }
        match &cp.auth {
            None => {
                return Err(invalid(
                    "control_plane.auth",
                    "missing; set one of auth = { bootstrap_token = \"env://KRAWL_CONTROL_PLANE_TOKEN\" }, \
                     auth = { oauth2 = { token_url = ..., client_id = ..., client_secret = ... } } or \
                     auth = { static_token = \"...\" } (or KRAWL_BOOTSTRAP_TOKEN=env://KRAWL_CONTROL_PLANE_TOKEN)",
                ))
            }
            Some(AuthConfig::Oauth2(o)) => {
                let url = reqwest::Url::parse(&o.token_url).map_err(|e| {
                    invalid(
                        "control_plane.auth.oauth2.token_url",
                        format!("`{}` is not a URL: {e}", o.token_url),
                    )
                })?;
                check_scheme(&url, "control_plane.auth.oauth2.token_url")?;
                if o.client_id.trim().is_empty() {
                    return Err(invalid(
                        "control_plane.auth.oauth2.client_id",
                        "must not be empty",
                    ));
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// The control-plane base URL, validated (https, or http to a loopback host).
    pub fn control_plane_url(&self) -> Result<reqwest::Url, ConfigError> {
        let raw = self.control_plane.url.trim();
        if raw.is_empty() {
            return Err(invalid(
                "control_plane.url",
                "missing; set it to the control plane's https:// URL (or KRAWL_CONTROL_PLANE_URL)",
            ));
        }
        let url = reqwest::Url::parse(raw).map_err(|e| {
            invalid(
                "control_plane.url",
                format!("`{raw}` is not a URL ({e}); write it as https://krawl.example.com"),
            )
        })?;
        check_scheme(&url, "control_plane.url")?;
        Ok(url)
    }

    /// The health server address, or `None` when disabled.
    pub fn health_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let v = self.agent.health_listen.trim();
        if v.is_empty() {
            return Ok(None);
        }
        v.parse().map(Some).map_err(|_| {
            invalid(
                "agent.health_listen",
                format!("`{v}` is not host:port (e.g. 127.0.0.1:9464); set \"\" to disable"),
            )
        })
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.agent.shutdown_grace_secs)
    }
}

fn check_scheme(url: &reqwest::Url, key: &str) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = url.host_str().unwrap_or("");
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .map(|ip| ip.is_loopback())
                    .unwrap_or(false);
            if loopback {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    format!(
                        "`{url}` uses plain http; use https:// (http is accepted only for 127.0.0.1/localhost demos)"
                    ),
                ))
            }
        }
        other => Err(invalid(
            key,
            format!("scheme `{other}` is not supported; use https://"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<AgentConfig, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AgentConfig::from_toml(text, "test.toml", &move |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    const MINIMAL: &str = r#"
        [control_plane]
        url = "https://cp.example.com"
        auth = { bootstrap_token = "env://BOOT" }
    "#;

    #[test]
    fn defaults_apply() {
        let cfg = parse(MINIMAL, &[]).unwrap();
        assert_eq!(cfg.agent.max_concurrent_jobs, 5);
        assert_eq!(cfg.agent.shutdown_grace_secs, 60);
        assert_eq!(
            cfg.health_listen().unwrap(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(cfg.agent.chunk_max_records, 5_000);
        assert!(matches!(
            cfg.control_plane.auth,
            Some(AuthConfig::BootstrapToken(SecretRef::Env(ref n))) if n == "BOOT"
        ));
    }

    #[test]
    fn every_auth_form_parses() {
        let oauth = parse(
            r#"
            [control_plane]
            url = "https://cp.example.com"
            [control_plane.auth.oauth2]
            token_url = "https://idp.example.com/token"
            client_id = "krawl"
            client_secret = "vault://secret/krawl#client_secret"
            scope = "agent"
            "#,
            &[],
        )
        .unwrap();
        assert!(
            matches!(oauth.control_plane.auth, Some(AuthConfig::Oauth2(ref o)) if o.scope.as_deref() == Some("agent"))
        );
        let st = parse(
            r#"[control_plane]
            url = "http://127.0.0.1:8080"
            auth = { static_token = "file:///run/secrets/token" }"#,
            &[],
        )
        .unwrap();
        assert!(matches!(
            st.control_plane.auth,
            Some(AuthConfig::StaticToken(SecretRef::File { .. }))
        ));
    }

    #[test]
    fn env_overrides_win() {
        let cfg = parse(
            MINIMAL,
            &[
                ("KRAWL_CONTROL_PLANE_URL", "https://other.example.com"),
                ("KRAWL_AGENT_NAME", "agent-7"),
                ("KRAWL_MAX_CONCURRENT_JOBS", "9"),
                ("KRAWL_HEALTH_LISTEN", ""),
                ("KRAWL_AGENT_LABELS", "env=prod, region=eu"),
                ("KRAWL_STATIC_TOKEN", "env://TOK"),
                ("KRAWL_SHUTDOWN_GRACE_SECS", "5"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.control_plane.url, "https://other.example.com");
        assert_eq!(cfg.agent.name, "agent-7");
        assert_eq!(cfg.agent.max_concurrent_jobs, 9);
        assert_eq!(cfg.health_listen().unwrap(), None);
        assert_eq!(
            cfg.agent.labels.get("region").map(String::as_str),
            Some("eu")
        );
        assert_eq!(cfg.agent.shutdown_grace_secs, 5);
        assert!(matches!(
            cfg.control_plane.auth,
            Some(AuthConfig::StaticToken(_))
        ));
        // Only the environment: no file at all.
        let cfg = parse(
            "",
            &[
                ("KRAWL_CONTROL_PLANE_URL", "https://cp"),
                ("KRAWL_BOOTSTRAP_TOKEN", "env://X"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.control_plane.url, "https://cp");
    }

    fn err(text: &str, env: &[(&str, &str)]) -> String {
        parse(text, env).unwrap_err().to_string()
    }

    #[test]
    fn validation_names_the_key_and_the_fix() {
        let e = err("", &[]);
        assert!(
            e.contains("control_plane.url") && e.contains("KRAWL_CONTROL_PLANE_URL"),
            "{e}"
        );
        let e = err(
            r#"[control_plane]
            url = "https://cp""#,
            &[],
        );
        assert!(
            e.contains("control_plane.auth") && e.contains("bootstrap_token"),
            "{e}"
        );
        let e = err(
            MINIMAL,
            &[("KRAWL_CONTROL_PLANE_URL", "http://cp.example.com")],
        );
        assert!(
            e.contains("control_plane.url") && e.contains("https://"),
            "{e}"
        );
        let e = err(MINIMAL, &[("KRAWL_MAX_CONCURRENT_JOBS", "0")]);
        assert!(
            e.contains("agent.max_concurrent_jobs") && e.contains("1-256"),
            "{e}"
        );
        let e = err(MINIMAL, &[("KRAWL_MAX_CONCURRENT_JOBS", "lots")]);
        assert!(e.contains("KRAWL_MAX_CONCURRENT_JOBS"), "{e}");
        let e = err(MINIMAL, &[("KRAWL_HEALTH_LISTEN", "everywhere")]);
        assert!(e.contains("agent.health_listen"), "{e}");
        let e = err(&format!("{MINIMAL}\n[agent]\nmax_jobs = 3\n"), &[]);
        assert!(e.contains("max_jobs"), "{e}");
        let e = err(&format!("{MINIMAL}\n[agnet]\nname = \"x\"\n"), &[]);
        assert!(e.contains("unknown table `agnet`"), "{e}");
        let e = err(MINIMAL, &[("KRAWL_AGENT_LABELS", "prod")]);
        assert!(
            e.contains("KRAWL_AGENT_LABELS") && e.contains("key=value"),
            "{e}"
        );
        let e = err(
            r#"[control_plane]
            url = "https://cp"
            auth = { password = "x" }"#,
            &[],
        );
        assert!(e.contains("password"), "{e}");
        // http is fine for loopback demos.
        parse(
            MINIMAL,
            &[("KRAWL_CONTROL_PLANE_URL", "http://localhost:8080")],
        )
        .unwrap();
        parse(MINIMAL, &[("KRAWL_CONTROL_PLANE_URL", "http://[::1]:8080")]).unwrap();
    }

    #[test]
    fn extract_tables_are_tolerated() {
        let text = format!("{MINIMAL}\n[kafka]\nbootstrap_servers = [\"b:9092\"]\n");
        parse(&text, &[]).unwrap();
    }

    #[test]
    fn debug_never_shows_token_values() {
        let cfg = parse(
            r#"[control_plane]
            url = "https://cp"
            auth = { static_token = "s3cr3t-literal-token" }"#,
            &[],
        )
        .unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("redacted"), "{dbg}");
        let cfg = parse(
            r#"[control_plane]
            url = "https://cp"
            [control_plane.auth.oauth2]
            token_url = "https://idp/token"
            client_id = "c"
            client_secret = "hunter2-client-secret""#,
            &[],
        )
        .unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn schema_covers_the_sections() {
        let schema = serde_json::to_string(&schemars::schema_for!(AgentConfig)).unwrap();
        for key in [
            "max_concurrent_jobs",
            "health_listen",
            "ca_file",
            "token_url",
            "bootstrap_token",
        ] {
            assert!(schema.contains(key), "{key}");
        }
    }
}
