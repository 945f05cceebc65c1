//! The `[schema_registry]` section: where the registry is, how to
//! authenticate, and what to extract. Validated before anything is contacted;
//! errors name the TOML key (`schema_registry.concurrency`) and, where there
//! is a fixed set, the accepted values.

use std::collections::BTreeMap;
use std::path::PathBuf;

use krawl_secrets::{JobSecrets, SecretError, SecretRef, SecretString};
use regex::Regex;
use serde::Deserialize;

/// A Confluent-compatible Schema Registry (Confluent Platform / Cloud,
/// Karapace, Redpanda, Apicurio's `ccompat` API). krawl only reads from it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Base URL of the REST API, e.g. `https://psrc-abc.eu-west-1.aws.confluent.cloud`
    /// or `http://apicurio:8080/apis/ccompat/v7`. No credentials in it: use `auth`.
    #[schemars(schema_with = "url_schema")]
    pub url: String,
    /// How to authenticate: none (default), HTTP basic, or a bearer token.
    #[serde(default)]
    #[schemars(schema_with = "auth_schema")]
    pub auth: RegistryAuth,
    /// TLS settings for an `https://` URL; the system roots when absent.
    #[serde(default)]
    pub tls: Option<RegistryTls>,
    /// Subjects fetched at the same time (1 to 256).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Timeout of each HTTP request, connection included, in seconds (1 to 3600).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Further attempts after a 5xx answer, a 429, a timeout or a connection
    /// error (0 to 10).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Which versions of each subject to extract: `latest` (default) or `all`.
    #[serde(default)]
    pub versions: VersionsMode,
    /// Regexes; a subject is extracted when it matches any (all when empty).
    #[serde(default)]
    pub include_subjects: Vec<String>,
    /// Regexes; a subject matching any is skipped (after `include_subjects`).
    #[serde(default)]
    pub exclude_subjects: Vec<String>,
    /// Also list soft-deleted subjects and versions (marked `deleted: true`).
    #[serde(default)]
    pub include_deleted: bool,
    /// Bind RecordNameStrategy subjects (subject = fully-qualified record
    /// name) to the topics listed for them in `record_name_topics`.
    #[serde(default)]
    pub record_name_strategy: bool,
    /// Bind TopicRecordNameStrategy subjects (`<topic>-<record name>`) to their
    /// topic, when the suffix is exactly a record name of the subject's latest schema.
    #[serde(default)]
    pub topic_record_name_strategy: bool,
    /// For RecordNameStrategy: which topics carry each record, e.g.
    /// `{ "com.acme.Order" = ["orders", "orders-eu"] }`. Nothing in the
    /// registry says which topic a RecordNameStrategy subject is used on, so
    /// krawl binds such a subject only to the topics named here and never guesses.
    #[serde(default)]
    pub record_name_topics: BTreeMap<String, Vec<String>>,
}

/// A string in [`krawl_policy::URL_FORMAT`] (an http(s) URL without credentials).
fn url_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
    schemars::schema::SchemaObject {
        instance_type: Some(schemars::schema::InstanceType::String.into()),
        format: Some(krawl_policy::URL_FORMAT.to_string()),
        ..Default::default()
    }
    .into()
}

/// [`RegistryAuth`] as one object schema (not serde's `oneOf` of tagged variants), so that a
/// validator names the field that is wrong (`password` must be a secret reference) instead of
/// "matches none of the forms".
fn auth_schema(gen: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
    let secret = gen.subschema_for::<SecretRef>();
    serde_json::from_value(serde_json::json!({
        "description": "How to authenticate: {\"method\": \"none\"} (default), {\"method\": \"basic\", \"username\": …, \"password\": <secret reference>} or {\"method\": \"bearer\", \"token\": <secret reference>}.",
        "type": "object",
        "required": ["method"],
        "properties": {
            "method": { "enum": ["none", "basic", "bearer"] },
            "username": { "type": "string" },
            "password": secret,
            "token": secret
        },
        "additionalProperties": false,
        "allOf": [
            { "if": { "properties": { "method": { "const": "basic" } } },
              "then": { "required": ["username", "password"] } },
            { "if": { "properties": { "method": { "const": "bearer" } } },
              "then": { "required": ["token"] } }
        ]
    }))
    .unwrap_or(schemars::schema::Schema::Bool(true))
}

fn default_concurrency() -> usize {
    8
}

fn default_timeout_secs() -> u64 {
    30
}

fn default_retries() -> u32 {
    3
}

/// Registry authentication, tagged by `method`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum RegistryAuth {
    /// No authentication.
    #[default]
    None,
    /// HTTP basic auth. For Confluent Cloud: an API key (username) and
    /// secret (password) of the Schema Registry cluster, not of the Kafka cluster.
    Basic {
        /// User name (the API key on Confluent Cloud).
        username: String,
        /// Password (the API secret on Confluent Cloud), as a secret reference.
        password: SecretRef,
    },
    /// `Authorization: Bearer <token>` (OAuth / OIDC access token).
    Bearer {
        /// The token, as a secret reference.
        token: SecretRef,
    },
}

/// TLS for an `https://` registry URL.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryTls {
    /// PEM CA bundle trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mTLS.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key for mTLS, as a secret reference (e.g. `file:///etc/krawl/sr.key`).
    pub client_key: Option<SecretRef>,
}

/// Which versions of a subject to extract.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersionsMode {
    /// Only the latest version.
    #[default]
    Latest,
    /// Every version.
    All,
}

/// An invalid `[schema_registry]` section, or a secret of it that did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum RegistryConfigError {
    #[error("invalid config: `{key}` is missing: {hint}")]
    Missing { key: String, hint: String },
    #[error("invalid config: `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("cannot resolve `{key}`: {source}")]
    Secret {
        key: String,
        #[source]
        source: SecretError,
    },
}

impl RegistryConfigError {
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// The resolved secrets of a [`SchemaRegistryConfig`], for [`crate::client::RegistryClient::new`].
#[derive(Debug, Default, Clone)]
pub struct RegistrySecrets {
    /// `schema_registry.auth.password` (basic auth).
    pub password: Option<SecretString>,
    /// `schema_registry.auth.token` (bearer auth).
    pub token: Option<SecretString>,
    /// `schema_registry.tls.client_key` (PEM).
    pub client_key: Option<SecretString>,
}

/// Compiled include/exclude subject filters.
#[derive(Debug, Clone)]
pub struct SubjectFilter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl SubjectFilter {
    /// Whether `subject` is selected.
    pub fn selects(&self, subject: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(subject)))
            && !self.exclude.iter().any(|r| r.is_match(subject))
    }
}

fn compile(key: &str, patterns: &[String]) -> Result<Vec<Regex>, RegistryConfigError> {
    patterns
        .iter()
        .map(|p| {
            Regex::new(p).map_err(|e| {
                RegistryConfigError::invalid(key, format!("`{p}` is not a valid regex: {e}"))
            })
        })
        .collect()
}

impl SchemaRegistryConfig {
    /// A config for `url` with defaults everywhere else.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            auth: RegistryAuth::None,
            tls: None,
            concurrency: default_concurrency(),
            timeout_secs: default_timeout_secs(),
            retries: default_retries(),
            versions: VersionsMode::Latest,
            include_subjects: Vec::new(),
            exclude_subjects: Vec::new(),
            include_deleted: false,
            record_name_strategy: false,
            topic_record_name_strategy: false,
            record_name_topics: BTreeMap::new(),
        }
    }

    /// Check every setting; the error names the key.
    pub fn validate(&self) -> Result<(), RegistryConfigError> {
        let url = self.url.trim();
        if url.is_empty() {
            return Err(RegistryConfigError::Missing {
                key: "schema_registry.url".into(),
                hint: "give the registry's base URL, e.g. \"https://schema-registry:8081\"".into(),
            });
        }
        // The destination model the agent's policy matches (krawl-policy): http(s), a host
        // that is a name or an address, no credentials in the URL.
        krawl_policy::DestUrl::parse("Schema Registry URL", url).map_err(|e| {
            RegistryConfigError::invalid(
                "schema_registry.url",
                format!("{e}; credentials go in schema_registry.auth = {{ method = \"basic\", username = ..., password = <secret reference> }}"),
            )
        })?;
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            RegistryConfigError::invalid("schema_registry.url", format!("not a URL: {e}"))
        })?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(RegistryConfigError::invalid(
                "schema_registry.url",
                "give the base URL without a query or fragment",
            ));
        }
        if let RegistryAuth::Basic { username, .. } = &self.auth {
            if username.is_empty() {
                return Err(RegistryConfigError::Missing {
                    key: "schema_registry.auth.username".into(),
                    hint: "basic auth needs a username (the API key on Confluent Cloud)".into(),
                });
            }
        }
        if !(1..=256).contains(&self.concurrency) {
            return Err(RegistryConfigError::invalid(
                "schema_registry.concurrency",
                format!("`{}` is not valid; accepted: 1 to 256", self.concurrency),
            ));
        }
        if !(1..=3600).contains(&self.timeout_secs) {
            return Err(RegistryConfigError::invalid(
                "schema_registry.timeout_secs",
                format!(
                    "`{}` is not valid; accepted: 1 to 3600 seconds",
                    self.timeout_secs
                ),
            ));
        }
        if self.retries > 10 {
            return Err(RegistryConfigError::invalid(
                "schema_registry.retries",
                format!("`{}` is not valid; accepted: 0 to 10", self.retries),
            ));
        }
        self.filter()?;
        if let Some(tls) = &self.tls {
            if parsed.scheme() != "https" {
                return Err(RegistryConfigError::invalid(
                    "schema_registry.tls",
                    "a [schema_registry.tls] section needs an https:// url",
                ));
            }
            if tls.client_cert_file.is_some() != tls.client_key.is_some() {
                return Err(RegistryConfigError::invalid(
                    "schema_registry.tls.client_key",
                    "mTLS needs both client_cert_file and client_key",
                ));
            }
            for (key, path) in [
                ("schema_registry.tls.ca_file", &tls.ca_file),
                (
                    "schema_registry.tls.client_cert_file",
                    &tls.client_cert_file,
                ),
            ] {
                if let Some(p) = path {
                    // Resolved like a file:// reference: no `..`, no pseudo file systems.
                    krawl_policy::canonical_file(p)
                        .map_err(|e| RegistryConfigError::invalid(key, e.to_string()))?;
                }
            }
        }
        if !self.record_name_topics.is_empty() && !self.record_name_strategy {
            return Err(RegistryConfigError::invalid(
                "schema_registry.record_name_topics",
                "is set but record_name_strategy is false; set record_name_strategy = true",
            ));
        }
        for (name, topics) in &self.record_name_topics {
            if name.is_empty() || topics.iter().any(String::is_empty) {
                return Err(RegistryConfigError::invalid(
                    "schema_registry.record_name_topics",
                    "record names and topic names must not be empty",
                ));
            }
        }
        Ok(())
    }

    /// The compiled subject filters.
    pub fn filter(&self) -> Result<SubjectFilter, RegistryConfigError> {
        Ok(SubjectFilter {
            include: compile("schema_registry.include_subjects", &self.include_subjects)?,
            exclude: compile("schema_registry.exclude_subjects", &self.exclude_subjects)?,
        })
    }

    /// The secret references this config uses, with their keys.
    pub fn secret_refs(&self) -> Vec<(&'static str, &SecretRef)> {
        let mut out = Vec::new();
        match &self.auth {
            RegistryAuth::None => {}
            RegistryAuth::Basic { password, .. } => {
                out.push(("schema_registry.auth.password", password));
            }
            RegistryAuth::Bearer { token } => out.push(("schema_registry.auth.token", token)),
        }
        if let Some(k) = self.tls.as_ref().and_then(|t| t.client_key.as_ref()) {
            out.push(("schema_registry.tls.client_key", k));
        }
        out
    }

    /// Resolve this config's secrets for one job (allowlist first, then each store).
    pub async fn resolve_secrets(
        &self,
        job: &JobSecrets,
    ) -> Result<RegistrySecrets, RegistryConfigError> {
        let refs = self.secret_refs();
        job.check_allowed(refs.iter().map(|(_, r)| *r))
            .map_err(|source| RegistryConfigError::Secret {
                key: refs.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "),
                source,
            })?;
        let mut out = RegistrySecrets::default();
        for (key, r) in refs {
            let v = job
                .resolve(r)
                .await
                .map_err(|source| RegistryConfigError::Secret {
                    key: key.to_string(),
                    source,
                })?;
            match key {
                "schema_registry.auth.password" => out.password = Some(v),
                "schema_registry.auth.token" => out.token = Some(v),
                _ => out.client_key = Some(v),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<SchemaRegistryConfig, String> {
        let v: serde_json::Value = toml_like(toml_text);
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    /// The tests write JSON (the crate has no TOML dependency); TOML maps the same way.
    fn toml_like(s: &str) -> serde_json::Value {
        serde_json::from_str(s).expect("test JSON")
    }

    #[test]
    fn defaults_and_auth_variants() {
        let c = parse(r#"{"url": "http://sr:8081"}"#).unwrap();
        assert_eq!(c.concurrency, 8);
        assert_eq!(c.timeout_secs, 30);
        assert_eq!(c.retries, 3);
        assert_eq!(c.versions, VersionsMode::Latest);
        assert!(matches!(c.auth, RegistryAuth::None));
        c.validate().unwrap();

        let c = parse(
            r#"{"url": "https://sr", "versions": "all",
                "auth": {"method": "basic", "username": "KEY", "password": "env://SR_SECRET"}}"#,
        )
        .unwrap();
        assert_eq!(c.versions, VersionsMode::All);
        assert_eq!(c.secret_refs()[0].0, "schema_registry.auth.password");
        let c = parse(r#"{"url": "https://sr", "auth": {"method": "bearer", "token": "env://T"}}"#)
            .unwrap();
        assert_eq!(c.secret_refs()[0].0, "schema_registry.auth.token");
        let c = parse(r#"{"url": "https://sr", "auth": {"method": "none"}}"#).unwrap();
        assert!(c.secret_refs().is_empty());

        let e = parse(r#"{"url": "https://sr", "auth": {"method": "bearer", "tokn": "x"}}"#)
            .unwrap_err();
        assert!(e.contains("tokn"), "{e}");
        let e = parse(r#"{"url": "https://sr", "concurency": 3}"#).unwrap_err();
        assert!(e.contains("concurency"), "{e}");
        let e = parse(r#"{"url": "https://sr", "versions": "some"}"#).unwrap_err();
        assert!(e.contains("latest"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = SchemaRegistryConfig::new("https://key:secret@sr");
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("schema_registry.url") && !e.contains("key:secret"),
            "{e}"
        );
        c.url = "ftp://sr".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("scheme `ftp`") && e.contains("https://"), "{e}");
        c.url = "https://sr".into();
        c.concurrency = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("schema_registry.concurrency"));
        c.concurrency = 8;
        c.include_subjects = vec!["(".into()];
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("schema_registry.include_subjects"));
        c.include_subjects.clear();
        c.record_name_topics
            .insert("com.acme.Order".into(), vec!["orders".into()]);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("record_name_strategy"));
        c.record_name_strategy = true;
        c.validate().unwrap();
        c.tls = Some(RegistryTls {
            client_cert_file: Some("/nonexistent".into()),
            ..Default::default()
        });
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("schema_registry.tls.client_key"));
    }

    #[tokio::test]
    async fn resolves_secrets_by_key() {
        let c = parse(
            r#"{"url": "https://sr", "auth": {"method": "basic", "username": "u", "password": "pw"}}"#,
        )
        .unwrap();
        let job = krawl_secrets::Resolver::default().job("t");
        let s = c.resolve_secrets(&job).await.unwrap();
        assert_eq!(s.password.unwrap().expose(), "pw");
        assert!(s.token.is_none() && s.client_key.is_none());
    }
}
