//! Secret references, resolved at call time from the customer's own stores,
//! and a secret type that cannot be printed.
//!
//! A config or job names a secret by *reference* ([`SecretRef`]:
//! `vault://secret/kafka#password`, `aws-sm://kafka-prod#password`,
//! `gcp-sm://projects/p/secrets/kafka`, `azure-kv://myvault/kafka-pw`,
//! `env://KAFKA_PASSWORD`, `file:///run/secrets/kafka.json#password`, or a
//! literal). A [`Resolver`], configured once from the `[secrets]` section,
//! turns references into [`SecretString`]s for one job at a time
//! ([`Resolver::job`]).
//!
//! Invariants:
//! - [`SecretString`] cannot be printed or serialized: `Debug` and `Display`
//!   write `[redacted]`, there is no `Serialize`, and the bytes are zeroized
//!   on drop. The only way out is [`SecretString::expose`], whose callers
//!   hand the value to a client's settings and nothing else.
//! - Nothing is cached across jobs unless `secrets.cache_ttl_secs` is set;
//!   within one job a reference is fetched once ([`JobSecrets`]).
//! - With an allowlist (`secrets.allow`, globs of krawl-policy's one engine),
//!   a reference it does not match is refused before any backend is called
//!   ([`Resolver::check_allowed`]); so is one of the agent's own credentials
//!   ([`Resolver::reserve`]). A `file://` reference is matched and read in its
//!   resolved form: no `..`, no link out of an allowed directory, nothing under
//!   `/proc`, `/sys` or `/dev`, at most [`MAX_FILE_SECRET_BYTES`].
//! - Every reference prints to one string that parses back to it (each part
//!   has a fixed character set; no `.`/`..` segments reach a store's API path).
//! - Errors name the reference and the backend, never the value.
//! - One audit line per resolution (tracing target `krawl::audit`): job id,
//!   reference, backend, outcome, latency. Never the value.
//! - Each store is a [`SecretProvider`] behind a cargo feature (`vault`,
//!   `aws`, `gcp`, `azure`; on by default for this crate, off in the
//!   workspace dependency: the agent and the binary enable them).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use zeroize::{Zeroize, ZeroizeOnDrop};

mod reference;
pub use reference::{SecretRef, SECRET_REF_FORMAT, SECRET_REF_SCHEMES};

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "gcp")]
pub mod gcp;
#[cfg(feature = "vault")]
pub mod vault;

/// A secret value. Redacted when printed, zeroized on drop, not serializable.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself. Only for handing to a client's settings.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a reference did not resolve. Every variant names the reference (as
/// its canonical string, never a value) and, where one was called, the backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretError {
    #[error("malformed secret reference `{reference}`: {reason}")]
    Malformed { reference: String, reason: String },
    #[error("secret `{reference}` is not allowed: {reason}")]
    NotAllowed { reference: String, reason: String },
    #[error("secret `{reference}`: backend {backend} is not configured{hint}")]
    NotConfigured {
        reference: String,
        backend: &'static str,
        hint: String,
    },
    #[error("secret `{reference}` not found in {backend}: {hint}")]
    NotFound {
        reference: String,
        backend: &'static str,
        hint: String,
    },
    #[error("secret `{reference}`: permission denied by {backend}: {hint}")]
    PermissionDenied {
        reference: String,
        backend: &'static str,
        hint: String,
    },
    #[error("secret `{reference}`: authentication to {backend} failed: {hint}")]
    AuthFailed {
        reference: String,
        backend: &'static str,
        hint: String,
    },
    #[error("secret `{reference}`: {backend} is unreachable: {hint}")]
    Unreachable {
        reference: String,
        backend: &'static str,
        hint: String,
    },
    #[error(
        "secret `{reference}`: key `{key}` missing: {reason}; check the #key part of the reference"
    )]
    KeyMissing {
        reference: String,
        key: String,
        reason: String,
    },
    #[error("secret `{reference}`: {backend} failed: {message}")]
    Backend {
        reference: String,
        backend: &'static str,
        message: String,
    },
}

impl SecretError {
    /// Short outcome name for audit lines and metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::NotAllowed { .. } => "not_allowed",
            Self::NotConfigured { .. } => "not_configured",
            Self::NotFound { .. } => "not_found",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::AuthFailed { .. } => "auth_failed",
            Self::Unreachable { .. } => "unreachable",
            Self::KeyMissing { .. } => "key_missing",
            Self::Backend { .. } => "error",
        }
    }
}

/// One secret store. Implementations fetch the whole secret value; the
/// resolver applies `#key`.
#[async_trait::async_trait]
pub trait SecretProvider: Send + Sync + fmt::Debug {
    /// The backend name as in [`SecretRef::backend`]: `vault`, `aws-sm`, `gcp-sm`, `azure-kv`.
    fn backend(&self) -> &'static str;

    /// Fetch the raw value of `reference` (always of this provider's backend).
    async fn fetch(&self, reference: &SecretRef) -> Result<SecretString, SecretError>;
}

/// The `[secrets]` section of the config.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// Glob patterns of the references jobs may use (`vault://secret/kafka/*`,
    /// `env://KAFKA_*`). Empty: every reference is allowed (fine for a local
    /// `krawl extract` config; set it for an agent).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Keep resolved values for this many seconds across jobs (0: never).
    #[serde(default)]
    pub cache_ttl_secs: u64,
    #[cfg(feature = "vault")]
    #[serde(default)]
    pub vault: Option<vault::VaultConfig>,
    #[cfg(feature = "aws")]
    #[serde(default)]
    pub aws: Option<aws::AwsConfig>,
    #[cfg(feature = "gcp")]
    #[serde(default)]
    pub gcp: Option<gcp::GcpConfig>,
    #[cfg(feature = "azure")]
    #[serde(default)]
    pub azure: Option<azure::AzureConfig>,
}

/// Resolves references; built once from [`SecretsConfig`], used per job.
#[derive(Debug, Clone)]
pub struct Resolver {
    inner: Arc<ResolverInner>,
}

#[derive(Debug)]
struct ResolverInner {
    providers: HashMap<&'static str, Arc<dyn SecretProvider>>,
    allow: Option<krawl_policy::GlobList>,
    /// References jobs may never resolve: the agent's own credentials ([`Resolver::reserve`]).
    reserved: Vec<String>,
    cache_ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, SecretString)>>,
}

impl Default for Resolver {
    fn default() -> Self {
        Self::from_parts(Vec::new(), None, Duration::ZERO)
    }
}

impl Resolver {
    /// A resolver with the providers the config names. A store without a
    /// section is still usable when it needs no settings (AWS and GCP use
    /// their default credential chains; Vault needs an address).
    pub async fn new(cfg: &SecretsConfig) -> Result<Self, SecretError> {
        let allow = allow_list(&cfg.allow)?;
        #[allow(unused_mut)]
        let mut providers: Vec<Arc<dyn SecretProvider>> = Vec::new();
        #[cfg(feature = "vault")]
        if let Some(v) = &cfg.vault {
            providers.push(Arc::new(vault::VaultProvider::new(v.clone())?));
        }
        #[cfg(feature = "aws")]
        providers.push(Arc::new(
            aws::AwsProvider::new(cfg.aws.clone().unwrap_or_default()).await?,
        ));
        #[cfg(feature = "gcp")]
        providers.push(Arc::new(
            gcp::GcpProvider::new(cfg.gcp.clone().unwrap_or_default()).await?,
        ));
        #[cfg(feature = "azure")]
        providers.push(Arc::new(azure::AzureProvider::new(
            cfg.azure.clone().unwrap_or_default(),
        )?));
        Ok(Self::from_parts(
            providers,
            allow,
            Duration::from_secs(cfg.cache_ttl_secs),
        ))
    }

    /// A resolver from explicit providers (tests, embedding).
    pub fn from_parts(
        providers: Vec<Arc<dyn SecretProvider>>,
        allow: Option<krawl_policy::GlobList>,
        cache_ttl: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(ResolverInner {
                providers: providers.into_iter().map(|p| (p.backend(), p)).collect(),
                allow,
                reserved: Vec::new(),
                cache_ttl,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The same stores without `secrets.allow`, for the operator's own
    /// credentials (the control-plane token), which the allowlist — a limit on
    /// what *jobs* may read — does not govern. The providers are shared, so a
    /// store that logs in (Vault, Azure) does so once for both; the opt-in TTL
    /// cache is not (job secrets never meet the operator's).
    pub fn without_allowlist(&self) -> Self {
        Self {
            inner: Arc::new(ResolverInner {
                providers: self.inner.providers.clone(),
                allow: None,
                reserved: Vec::new(),
                cache_ttl: self.inner.cache_ttl,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// This resolver, refusing `refs` to every job: the agent's own credentials (its
    /// control-plane token or OAuth2 client secret) are for the agent, and a job that names
    /// them (to send them to a broker it may reach) is refused like one outside the allowlist.
    /// The operator's view ([`Resolver::without_allowlist`]) still reads them.
    pub fn reserve<'a>(self, refs: impl IntoIterator<Item = &'a SecretRef>) -> Self {
        let mut reserved: Vec<String> = refs
            .into_iter()
            .filter(|r| !matches!(r, SecretRef::Literal(_)))
            .map(|r| r.canonical().unwrap_or_else(|_| r.clone()).to_string())
            .collect();
        reserved.extend(self.inner.reserved.iter().cloned());
        Self {
            inner: Arc::new(ResolverInner {
                providers: self.inner.providers.clone(),
                allow: self.inner.allow.clone(),
                reserved,
                cache_ttl: self.inner.cache_ttl,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Refuse, before any backend call, references the allowlist does not match or that are
    /// reserved for the agent. A `file://` reference is checked in its resolved form
    /// ([`SecretRef::canonical`]). Literals are always allowed: they read nothing.
    pub fn check_allowed<'a>(
        &self,
        refs: impl IntoIterator<Item = &'a SecretRef>,
    ) -> Result<(), SecretError> {
        for r in refs {
            if matches!(r, SecretRef::Literal(_)) {
                continue;
            }
            let s = r.canonical()?.to_string();
            if self.inner.reserved.contains(&s) {
                return Err(SecretError::NotAllowed {
                    reference: s,
                    reason: "it is one of this agent's own credentials (control_plane.auth), which jobs may never read".to_string(),
                });
            }
            if let Some(allow) = &self.inner.allow {
                if !allow.is_match(&s) {
                    return Err(SecretError::NotAllowed {
                        reference: s,
                        reason: "it matches no pattern in secrets.allow; add one that matches it to the agent config".to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// A resolution scope for one job: each reference is fetched at most once
    /// in it, and everything it fetched is dropped (zeroized) with it.
    pub fn job(&self, job_id: impl Into<String>) -> JobSecrets {
        JobSecrets {
            resolver: self.clone(),
            job_id: job_id.into(),
            memo: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn fetch(&self, r: &SecretRef) -> Result<SecretString, SecretError> {
        match r {
            SecretRef::Literal(v) => Ok(v.clone()),
            SecretRef::Env(name) => {
                std::env::var(name)
                    .map(SecretString::new)
                    .map_err(|_| SecretError::NotFound {
                        reference: r.to_string(),
                        backend: "env",
                        hint: format!("set the environment variable {name} for the krawl process"),
                    })
            }
            SecretRef::File { path, .. } => {
                // Read the resolved path, never more than MAX_FILE_SECRET_BYTES.
                let path =
                    krawl_policy::canonical_file(path).map_err(|e| reference::file_error(r, e))?;
                let raw = read_file_capped(&path).map_err(|e| {
                    let (hint, denied) = match e.kind() {
                        std::io::ErrorKind::NotFound => ("check the path".to_string(), false),
                        std::io::ErrorKind::PermissionDenied => {
                            ("make the file readable by the krawl user".to_string(), true)
                        }
                        _ => (e.to_string(), false),
                    };
                    let hint = format!("cannot read {}: {hint}", path.display());
                    if denied {
                        SecretError::PermissionDenied {
                            reference: r.to_string(),
                            backend: "file",
                            hint,
                        }
                    } else {
                        SecretError::NotFound {
                            reference: r.to_string(),
                            backend: "file",
                            hint,
                        }
                    }
                })?;
                let raw = SecretString::new(raw);
                Ok(SecretString::new(
                    raw.expose().trim_end_matches(['\n', '\r']),
                ))
            }
            other => {
                let backend = other.backend();
                let provider = self.inner.providers.get(backend).ok_or_else(|| {
                    SecretError::NotConfigured {
                        reference: other.to_string(),
                        backend,
                        hint: not_configured_hint(backend),
                    }
                })?;
                provider.fetch(other).await
            }
        }
    }

    /// Fetch, honouring the opt-in TTL cache, then apply `#key`.
    async fn resolve_uncached(&self, r: &SecretRef) -> Result<SecretString, SecretError> {
        let canonical = r.to_string();
        let ttl = self.inner.cache_ttl;
        if !ttl.is_zero() && !matches!(r, SecretRef::Literal(_)) {
            let cache = self
                .inner
                .cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((at, v)) = cache.get(&canonical) {
                if at.elapsed() < ttl {
                    return Ok(v.clone());
                }
            }
        }
        let raw = self.fetch(r).await?;
        let value = match r.key() {
            None => raw,
            Some(key) => {
                json_field(raw.expose(), key).map_err(|reason| SecretError::KeyMissing {
                    reference: canonical.clone(),
                    key: key.to_string(),
                    reason,
                })?
            }
        };
        if !ttl.is_zero() && !matches!(r, SecretRef::Literal(_)) {
            let mut cache = self
                .inner
                .cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            cache.insert(canonical, (Instant::now(), value.clone()));
        }
        Ok(value)
    }
}

/// The largest file a `file://` reference may name: keys, certificates and passwords are a few
/// kilobytes; a bigger file is a mistake (or `/dev/zero` under another name).
pub const MAX_FILE_SECRET_BYTES: u64 = 1024 * 1024;

/// The file's contents as UTF-8, refused past [`MAX_FILE_SECRET_BYTES`].
fn read_file_capped(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_SECRET_BYTES + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE_SECRET_BYTES {
        buf.zeroize();
        return Err(std::io::Error::other(format!(
            "the file is larger than {MAX_FILE_SECRET_BYTES} bytes"
        )));
    }
    String::from_utf8(buf).map_err(|e| {
        let mut bytes = e.into_bytes();
        bytes.zeroize();
        std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is not UTF-8")
    })
}

/// `secrets.allow` compiled by the one glob engine; `file://` patterns have their directory
/// resolved like the references they are matched with.
fn allow_list(patterns: &[String]) -> Result<Option<krawl_policy::GlobList>, SecretError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let resolved: Vec<String> = patterns
        .iter()
        .map(|p| match p.strip_prefix("file://") {
            Some(path) => format!("file://{}", krawl_policy::canonical_pattern_path(path)),
            None => p.clone(),
        })
        .collect();
    krawl_policy::GlobList::new("secrets.allow", &resolved, krawl_policy::Case::Sensitive)
        .map(Some)
        .map_err(|e| SecretError::Malformed {
            reference: patterns.join(", "),
            reason: e.to_string(),
        })
}

fn not_configured_hint(backend: &str) -> String {
    match backend {
        "vault" => "; add a [secrets.vault] section with address and auth".to_string(),
        _ => format!("; this krawl was built without the `{backend}` feature"),
    }
}

/// The secrets of one job. Dropping it drops (and zeroizes) every value it fetched.
#[derive(Debug)]
pub struct JobSecrets {
    resolver: Resolver,
    job_id: String,
    memo: tokio::sync::Mutex<HashMap<String, SecretString>>,
}

impl JobSecrets {
    /// Resolve `r` for this job: allowlist first, then the store (once per
    /// reference per job), then `#key`. Writes one audit line.
    pub async fn resolve(&self, r: &SecretRef) -> Result<SecretString, SecretError> {
        let started = Instant::now();
        let result = self.resolve_inner(r).await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        tracing::info!(
            target: "krawl::audit",
            job_id = %self.job_id,
            reference = %r,
            backend = r.backend(),
            outcome,
            latency_ms,
            "secret resolution"
        );
        result
    }

    async fn resolve_inner(&self, r: &SecretRef) -> Result<SecretString, SecretError> {
        if let SecretRef::Literal(v) = r {
            return Ok(v.clone());
        }
        // The resolved form is checked and read (a file:// path through its links).
        let r = &r.canonical()?;
        self.resolver.check_allowed([r])?;
        let canonical = r.to_string();
        let mut memo = self.memo.lock().await;
        if let Some(v) = memo.get(&canonical) {
            return Ok(v.clone());
        }
        let v = self.resolver.resolve_uncached(r).await?;
        memo.insert(canonical, v.clone());
        Ok(v)
    }

    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// [`Resolver::check_allowed`] for this job's resolver.
    pub fn check_allowed<'a>(
        &self,
        refs: impl IntoIterator<Item = &'a SecretRef>,
    ) -> Result<(), SecretError> {
        self.resolver.check_allowed(refs)
    }
}

/// Pick one string field of a JSON object without keeping the parsed copy around.
fn json_field(raw: &str, key: &str) -> Result<SecretString, String> {
    let mut value: serde_json::Value =
        serde_json::from_str(raw).map_err(|_| "the secret is not a JSON object".to_string())?;
    let out = match value.get(key) {
        Some(serde_json::Value::String(s)) => Ok(SecretString::new(s.as_str())),
        Some(serde_json::Value::Number(n)) => Ok(SecretString::new(n.to_string())),
        Some(_) => Err("the field is not a string".to_string()),
        None => Err("no such field in the JSON object".to_string()),
    };
    if let Some(obj) = value.as_object_mut() {
        for v in obj.values_mut() {
            if let serde_json::Value::String(s) = v {
                s.zeroize();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "canary-7f3a9c-do-not-print";

    fn local() -> Resolver {
        Resolver::default()
    }

    #[test]
    fn secret_string_never_prints() {
        let s = SecretString::new(CANARY);
        assert_eq!(format!("{s}"), "[redacted]");
        assert!(!format!("{s:?}").contains(CANARY));
        assert!(!format!("{:?}", SecretRef::Literal(s.clone())).contains(CANARY));
        assert!(!SecretRef::Literal(s.clone()).to_string().contains(CANARY));
        assert_eq!(s.expose(), CANARY);
    }

    #[tokio::test]
    async fn resolves_env_and_file() {
        std::env::set_var("KRAWL_TEST_SECRET_A", CANARY);
        let job = local().job("j1");
        let v = job
            .resolve(&SecretRef::parse("env://KRAWL_TEST_SECRET_A").unwrap())
            .await
            .unwrap();
        assert_eq!(v.expose(), CANARY);

        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, format!("{CANARY}\n")).unwrap();
        let r = SecretRef::parse(&format!("file://{}", raw.display())).unwrap();
        assert_eq!(job.resolve(&r).await.unwrap().expose(), CANARY);

        let json = dir.path().join("creds.json");
        std::fs::write(
            &json,
            format!(r#"{{"username":"svc","password":"{CANARY}"}}"#),
        )
        .unwrap();
        let r = SecretRef::parse(&format!("file://{}#password", json.display())).unwrap();
        assert_eq!(job.resolve(&r).await.unwrap().expose(), CANARY);

        let r = SecretRef::parse(&format!("file://{}#nope", json.display())).unwrap();
        let err = job.resolve(&r).await.unwrap_err().to_string();
        assert!(err.contains("key `nope` missing"), "{err}");
        assert!(!err.contains(CANARY));
    }

    #[tokio::test]
    async fn missing_secrets_name_the_reference_not_the_value() {
        let job = local().job("j");
        let err = job
            .resolve(&SecretRef::parse("env://KRAWL_TEST_DEFINITELY_UNSET").unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("env://KRAWL_TEST_DEFINITELY_UNSET"), "{err}");
        let err = job
            .resolve(&SecretRef::parse("file:///nonexistent/krawl").unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("check the path"), "{err}");
        // A store with no provider is a clear configuration error.
        let err = job
            .resolve(&SecretRef::parse("vault://secret/kafka#pw").unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("[secrets.vault]"), "{err}");
    }

    /// Counts fetches, to check the per-job memo and the allowlist.
    #[derive(Debug, Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl SecretProvider for Counting {
        fn backend(&self) -> &'static str {
            "vault"
        }
        async fn fetch(&self, _r: &SecretRef) -> Result<SecretString, SecretError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(SecretString::new(r#"{"password":"p"}"#))
        }
    }

    #[tokio::test]
    async fn fetched_once_per_job_and_never_across_jobs() {
        let p = Arc::new(Counting::default());
        let resolver = Resolver::from_parts(vec![p.clone()], None, Duration::ZERO);
        let r = SecretRef::parse("vault://secret/kafka#password").unwrap();
        let job = resolver.job("a");
        assert_eq!(job.resolve(&r).await.unwrap().expose(), "p");
        assert_eq!(job.resolve(&r).await.unwrap().expose(), "p");
        assert_eq!(p.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        let job2 = resolver.job("b");
        job2.resolve(&r).await.unwrap();
        assert_eq!(p.0.load(std::sync::atomic::Ordering::SeqCst), 2);

        // Opt-in TTL cache: shared across jobs.
        let p = Arc::new(Counting::default());
        let cached = Resolver::from_parts(vec![p.clone()], None, Duration::from_secs(60));
        cached.job("x").resolve(&r).await.unwrap();
        cached.job("y").resolve(&r).await.unwrap();
        assert_eq!(p.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_allowlist_refuses_before_any_backend_call() {
        let p = Arc::new(Counting::default());
        let allow = allow_list(&["vault://secret/kafka/*".to_string()]).unwrap();
        let resolver = Resolver::from_parts(vec![p.clone()], allow, Duration::ZERO);
        let job = resolver.job("j");
        job.resolve(&SecretRef::parse("vault://secret/kafka/prod#password").unwrap())
            .await
            .unwrap();
        let err = job
            .resolve(&SecretRef::parse("vault://secret/payroll#password").unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, SecretError::NotAllowed { .. }), "{err}");
        assert!(err.to_string().contains("secrets.allow"));
        assert_eq!(p.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Literals read nothing and are always allowed.
        assert!(resolver
            .check_allowed([&SecretRef::parse("plain").unwrap()])
            .is_ok());

        // The operator's view reads outside the allowlist through the same
        // provider instance (one login), and leaves the jobs' view as it was.
        let operator = resolver.without_allowlist();
        operator
            .job("control-plane-credential")
            .resolve(&SecretRef::parse("vault://secret/payroll#password").unwrap())
            .await
            .unwrap();
        assert_eq!(p.0.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(resolver
            .check_allowed([&SecretRef::parse("vault://secret/payroll#password").unwrap()])
            .is_err());
    }

    /// The agent's own credential (its control-plane token) is refused to every job, before
    /// any store is called, even when nothing else restricts references; the operator still
    /// reads it.
    #[tokio::test]
    async fn reserved_references_are_refused_to_jobs() {
        let p = Arc::new(Counting::default());
        let own = SecretRef::parse("vault://secret/krawl/token").unwrap();
        let resolver = Resolver::from_parts(vec![p.clone()], None, Duration::ZERO).reserve([&own]);
        let err = resolver.job("j").resolve(&own).await.unwrap_err();
        assert!(err.to_string().contains("control_plane.auth"), "{err}");
        assert_eq!(p.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        resolver
            .without_allowlist()
            .job("operator")
            .resolve(&own)
            .await
            .unwrap();
        assert_eq!(p.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// `file://` references are checked and read through their resolved path: a link in an
    /// allowed directory cannot reach a file outside it, `/proc/self/environ` (the agent's
    /// own environment) is refused however it is reached, and a huge file is not read whole.
    #[tokio::test]
    async fn file_references_are_resolved_before_the_allowlist_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let allowed = base.join("allowed");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::create_dir_all(base.join("private")).unwrap();
        std::fs::write(allowed.join("pw"), "good\n").unwrap();
        std::fs::write(base.join("private/key"), "CANARY-file-secret").unwrap();
        std::os::unix::fs::symlink(base.join("private/key"), allowed.join("link")).unwrap();
        std::os::unix::fs::symlink("/proc/self/environ", allowed.join("env")).unwrap();
        std::fs::write(
            allowed.join("big"),
            vec![b'x'; (MAX_FILE_SECRET_BYTES + 10) as usize],
        )
        .unwrap();
        let allow = allow_list(&[format!("file://{}/*", allowed.display())]).unwrap();
        let resolver = Resolver::from_parts(Vec::new(), allow, Duration::ZERO);
        let job = resolver.job("j");
        let r = |p: &str| SecretRef::parse(&format!("file://{p}")).unwrap();
        assert_eq!(
            job.resolve(&r(&format!("{}/pw", allowed.display())))
                .await
                .unwrap()
                .expose(),
            "good"
        );
        let e = job
            .resolve(&r(&format!("{}/link", allowed.display())))
            .await
            .unwrap_err();
        assert!(matches!(e, SecretError::NotAllowed { .. }), "{e}");
        assert!(!e.to_string().contains("CANARY"));
        let e = job
            .resolve(&r(&format!("{}/env", allowed.display())))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("/proc"), "{e}");
        assert!(SecretRef::parse(&format!("file://{}/../private/key", allowed.display())).is_err());
        let e = job
            .resolve(&r(&format!("{}/big", allowed.display())))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
        // Without an allowlist the same pseudo files are still refused.
        let open = Resolver::default().job("j");
        for p in ["/proc/self/environ", "/dev/zero"] {
            let e = open.resolve(&r(p)).await.unwrap_err();
            assert!(e.to_string().contains(p), "{e}");
        }
    }
}
