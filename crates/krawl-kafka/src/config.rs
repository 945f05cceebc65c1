//! Typed connection and extraction settings, validated before anything is
//! contacted, and their mapping onto librdkafka properties.
//!
//! Errors name the TOML key (`kafka.sasl.mechanism`) and, where there is a
//! fixed set, the accepted values.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use krawl_policy::{DestUrl, HostPort};
use krawl_schema_registry::SchemaRegistryConfig;
use krawl_secrets::{JobSecrets, SecretError, SecretRef, SecretString, SecretsConfig};
use rdkafka::ClientConfig;
use regex::Regex;
use serde::Deserialize;

/// The whole `krawl extract` config file.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractConfig {
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub extract: ExtractOptions,
    /// Secret stores and the allowlist of references.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// An optional Schema Registry to extract alongside the cluster.
    #[serde(default)]
    pub schema_registry: Option<SchemaRegistryConfig>,
    /// The agent's tables (`[agent]`, `[control_plane]`, `[policy]`, read by `krawl run`) are
    /// accepted and ignored, so that one file serves both commands.
    #[serde(default, rename = "agent")]
    #[schemars(skip)]
    _agent: Option<toml::Table>,
    #[serde(default, rename = "control_plane")]
    #[schemars(skip)]
    _control_plane: Option<toml::Table>,
    #[serde(default, rename = "policy")]
    #[schemars(skip)]
    _policy: Option<toml::Table>,
}

impl ExtractConfig {
    /// A config for `kafka` with default extraction options, no secret stores and no registry.
    pub fn new(kafka: KafkaConfig) -> Self {
        Self {
            kafka,
            extract: ExtractOptions::default(),
            secrets: SecretsConfig::default(),
            schema_registry: None,
            _agent: None,
            _control_plane: None,
            _policy: None,
        }
    }

    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate()?;
        self.extract.validate()?;
        if let Some(sr) = &self.schema_registry {
            sr.validate()?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, schemars::JsonSchema)]
pub enum SecurityProtocol {
    #[default]
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    #[serde(rename = "SSL")]
    Ssl,
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    pub const ACCEPTED: &'static str = "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Self::Plaintext),
            "SSL" => Some(Self::Ssl),
            "SASL_PLAINTEXT" => Some(Self::SaslPlaintext),
            "SASL_SSL" => Some(Self::SaslSsl),
            _ => None,
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    #[serde(rename = "OAUTHBEARER")]
    OauthBearer,
}

impl SaslMechanism {
    pub const ACCEPTED: &'static str = "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OauthBearer => "OAUTHBEARER",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Self::Plain),
            "SCRAM-SHA-256" => Some(Self::ScramSha256),
            "SCRAM-SHA-512" => Some(Self::ScramSha512),
            "OAUTHBEARER" => Some(Self::OauthBearer),
            _ => None,
        }
    }
}

/// How to reach and authenticate to one Kafka cluster.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port` of one or more brokers, one per entry.
    #[schemars(schema_with = "bootstrap_schema")]
    pub bootstrap_servers: Vec<String>,
    #[serde(default)]
    pub security_protocol: SecurityProtocol,
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Timeout of each Kafka call and of the initial connection, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Extra librdkafka properties: only [`PASSTHROUGH_PROPERTIES`] pass.
    #[serde(default)]
    #[schemars(schema_with = "properties_schema")]
    pub properties: BTreeMap<String, String>,
}

fn default_client_id() -> String {
    "krawl".to_string()
}

fn default_timeout_secs() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    pub mechanism: SaslMechanism,
    /// For PLAIN and SCRAM.
    pub username: Option<String>,
    /// For PLAIN and SCRAM: a secret reference.
    pub password: Option<SecretRef>,
    /// For OAUTHBEARER: OIDC client-credentials settings.
    pub oauthbearer: Option<OauthBearerConfig>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OauthBearerConfig {
    /// The OIDC token endpoint (the client secret is sent there): an http(s) URL.
    #[schemars(schema_with = "url_schema")]
    pub token_endpoint_url: String,
    pub client_id: String,
    pub client_secret: SecretRef,
    pub scope: Option<String>,
    /// SASL extensions (KIP-342), e.g. `{ logicalCluster = "lkc-abc", identityPoolId = "pool-1" }`.
    /// A value may be a secret reference, resolved at call time; a key that names a credential
    /// (`secret`, `password`, `token`, `credential`, `key` in it) must hold a reference.
    #[serde(default)]
    #[schemars(schema_with = "extensions_schema")]
    pub extensions: BTreeMap<String, SecretRef>,
}

/// A string in [`krawl_policy::URL_FORMAT`].
fn url_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
    string_schema(krawl_policy::URL_FORMAT)
}

fn string_schema(format: &str) -> schemars::schema::Schema {
    schemars::schema::SchemaObject {
        instance_type: Some(schemars::schema::InstanceType::String.into()),
        format: Some(format.to_string()),
        ..Default::default()
    }
    .into()
}

/// `kafka.bootstrap_servers`: at least one entry, each one `host:port`.
fn bootstrap_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
    schemars::schema::SchemaObject {
        instance_type: Some(schemars::schema::InstanceType::Array.into()),
        array: Some(Box::new(schemars::schema::ArrayValidation {
            items: Some(string_schema(krawl_policy::HOST_PORT_FORMAT).into()),
            min_items: Some(1),
            ..Default::default()
        })),
        ..Default::default()
    }
    .into()
}

/// SASL extensions: letter keys (KIP-342) with string values; a credential-named key
/// ([`extension_key_is_credential`]) holds a secret reference.
fn extensions_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
    let mut obj = schemars::schema::ObjectValidation::default();
    obj.pattern_properties.insert(
        EXTENSION_CREDENTIAL_PATTERN.to_string(),
        string_schema(krawl_secrets::SECRET_REF_FORMAT),
    );
    obj.additional_properties = Some(Box::new(
        schemars::schema::SchemaObject {
            instance_type: Some(schemars::schema::InstanceType::String.into()),
            ..Default::default()
        }
        .into(),
    ));
    obj.property_names = Some(Box::new(
        schemars::schema::SchemaObject {
            instance_type: Some(schemars::schema::InstanceType::String.into()),
            string: Some(Box::new(schemars::schema::StringValidation {
                pattern: Some("^[A-Za-z]+$".to_string()),
                ..Default::default()
            })),
            ..Default::default()
        }
        .into(),
    ));
    schemars::schema::SchemaObject {
        instance_type: Some(schemars::schema::InstanceType::Object.into()),
        object: Some(Box::new(obj)),
        ..Default::default()
    }
    .into()
}

/// `kafka.properties`: only the keys of [`PASSTHROUGH_PROPERTIES`], string values.
fn properties_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
    let obj = schemars::schema::ObjectValidation {
        property_names: Some(Box::new(
            schemars::schema::SchemaObject {
                enum_values: Some(
                    PASSTHROUGH_PROPERTIES
                        .iter()
                        .map(|(k, _)| serde_json::Value::from(*k))
                        .collect(),
                ),
                ..Default::default()
            }
            .into(),
        )),
        additional_properties: Some(Box::new(
            schemars::schema::SchemaObject {
                instance_type: Some(schemars::schema::InstanceType::String.into()),
                ..Default::default()
            }
            .into(),
        )),
        ..Default::default()
    };
    schemars::schema::SchemaObject {
        instance_type: Some(schemars::schema::InstanceType::Object.into()),
        object: Some(Box::new(obj)),
        ..Default::default()
    }
    .into()
}

/// [`extension_key_is_credential`] as a (case-insensitive) JSON Schema pattern.
pub const EXTENSION_CREDENTIAL_PATTERN: &str = "(?i)(secret|password|passwd|token|credential|key)";

/// Whether a SASL extension key names a credential, whose value must then be a secret
/// reference (a literal would have travelled through the control plane).
pub fn extension_key_is_credential(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "password", "passwd", "token", "credential", "key"]
        .iter()
        .any(|w| k.contains(w))
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM CA bundle; the system roots when absent.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mTLS.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key for mTLS, as a secret reference (e.g. `file:///etc/krawl/client.key`).
    pub client_key: Option<SecretRef>,
    /// Password of an encrypted client key.
    pub client_key_password: Option<SecretRef>,
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

fn yes() -> bool {
    true
}

/// What to extract.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractOptions {
    /// Regexes; a topic is extracted when it matches any (all when empty).
    pub include_topics: Vec<String>,
    pub exclude_topics: Vec<String>,
    /// Internal topics (`__consumer_offsets`, ...) are skipped unless set.
    pub include_internal_topics: bool,
    pub include_groups: Vec<String>,
    pub exclude_groups: Vec<String>,
    /// Only groups in these states (e.g. `["Stable"]`); all when empty.
    pub group_states: Vec<String>,
    /// Set false to skip consumer groups entirely.
    pub consumer_groups: bool,
    /// Topics per DescribeConfigs request.
    pub describe_configs_batch: usize,
    /// Partitions per ListOffsets call.
    pub list_offsets_batch: usize,
    /// Groups per DescribeConsumerGroups call.
    pub describe_groups_batch: usize,
    /// Concurrent committed-offset fetches.
    pub offset_fetch_concurrency: usize,
    /// Attempts for a call that fails with a retriable error.
    pub retries: u32,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            include_topics: Vec::new(),
            exclude_topics: Vec::new(),
            include_internal_topics: false,
            include_groups: Vec::new(),
            exclude_groups: Vec::new(),
            group_states: Vec::new(),
            consumer_groups: true,
            describe_configs_batch: 500,
            list_offsets_batch: 500,
            describe_groups_batch: 50,
            offset_fetch_concurrency: 16,
            retries: 3,
        }
    }
}

pub const GROUP_STATES: &str =
    "Stable, Empty, PreparingRebalance, CompletingRebalance, Dead, Unknown";

impl ExtractOptions {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.filters()?;
        for (key, v) in [
            (
                "extract.describe_configs_batch",
                self.describe_configs_batch,
            ),
            ("extract.list_offsets_batch", self.list_offsets_batch),
            ("extract.describe_groups_batch", self.describe_groups_batch),
            (
                "extract.offset_fetch_concurrency",
                self.offset_fetch_concurrency,
            ),
        ] {
            if v == 0 || v > 10_000 {
                return Err(ConfigError::invalid(key, format!("{v}"), "1 to 10000"));
            }
        }
        for s in &self.group_states {
            if !GROUP_STATES.split(", ").any(|g| g.eq_ignore_ascii_case(s)) {
                return Err(ConfigError::invalid(
                    "extract.group_states",
                    s,
                    GROUP_STATES,
                ));
            }
        }
        Ok(())
    }

    /// Compiled include/exclude filters.
    pub fn filters(&self) -> Result<Filters, ConfigError> {
        Ok(Filters {
            include_topics: compile("extract.include_topics", &self.include_topics)?,
            exclude_topics: compile("extract.exclude_topics", &self.exclude_topics)?,
            include_groups: compile("extract.include_groups", &self.include_groups)?,
            exclude_groups: compile("extract.exclude_groups", &self.exclude_groups)?,
            include_internal: self.include_internal_topics,
            group_states: self.group_states.clone(),
        })
    }
}

fn compile(key: &str, patterns: &[String]) -> Result<Vec<Regex>, ConfigError> {
    patterns
        .iter()
        .map(|p| {
            Regex::new(p).map_err(|e| ConfigError::Invalid {
                key: key.to_string(),
                message: format!("`{p}` is not a valid regex: {e}"),
            })
        })
        .collect()
}

/// Include/exclude filters for topics and groups.
#[derive(Debug, Clone)]
pub struct Filters {
    include_topics: Vec<Regex>,
    exclude_topics: Vec<Regex>,
    include_groups: Vec<Regex>,
    exclude_groups: Vec<Regex>,
    include_internal: bool,
    group_states: Vec<String>,
}

impl Filters {
    pub fn topic(&self, name: &str, internal: bool) -> bool {
        (self.include_internal || !internal)
            && selected(name, &self.include_topics, &self.exclude_topics)
    }

    pub fn group(&self, id: &str) -> bool {
        selected(id, &self.include_groups, &self.exclude_groups)
    }

    pub fn group_state(&self, state: &str) -> bool {
        self.group_states.is_empty()
            || self
                .group_states
                .iter()
                .any(|s| s.eq_ignore_ascii_case(state))
    }
}

fn selected(name: &str, include: &[Regex], exclude: &[Regex]) -> bool {
    (include.is_empty() || include.iter().any(|r| r.is_match(name)))
        && !exclude.iter().any(|r| r.is_match(name))
}

/// The form of a passthrough property's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyValue {
    /// A whole number from 0 to 2147483647.
    Int,
    /// `true` or `false`.
    Bool,
    /// One of the listed words.
    OneOf(&'static [&'static str]),
    /// Letters, digits, `.`, `_` and `-` (at most 64).
    Word,
}

/// The only librdkafka properties `kafka.properties` passes through: tuning knobs of the
/// connection, the metadata cache and logging, each with the form its value must have.
///
/// An allowlist, not a denylist: librdkafka has properties that load code
/// (`plugin.library.paths`, `ssl.engine.location`), run commands (`sasl.kerberos.kinit.cmd`),
/// read files (`ssl.crl.location`, `https.ca.location`), change where the client connects or
/// what it trusts (`client.dns.lookup`, `ssl.cipher.suites`), carry credentials (`sasl.*`,
/// `ssl.key.*`) or make it write (`group.id`, `transactional.id`); new ones arrive with each
/// release. Everything not listed here is refused, naming the key ([`refused_property_hint`]
/// says what to use instead for the well-known ones).
pub const PASSTHROUGH_PROPERTIES: &[(&str, PropertyValue)] = &[
    ("api.version.fallback.ms", PropertyValue::Int),
    ("api.version.request", PropertyValue::Bool),
    ("api.version.request.timeout.ms", PropertyValue::Int),
    (
        "broker.address.family",
        PropertyValue::OneOf(&["any", "v4", "v6"]),
    ),
    ("broker.address.ttl", PropertyValue::Int),
    ("broker.version.fallback", PropertyValue::Word),
    ("client.rack", PropertyValue::Word),
    ("connections.max.idle.ms", PropertyValue::Int),
    ("enable.random.seed", PropertyValue::Bool),
    ("log.connection.close", PropertyValue::Bool),
    ("log.thread.name", PropertyValue::Bool),
    ("log_level", PropertyValue::Int),
    ("max.in.flight.requests.per.connection", PropertyValue::Int),
    ("message.max.bytes", PropertyValue::Int),
    ("metadata.max.age.ms", PropertyValue::Int),
    (
        "metadata.recovery.rebootstrap.trigger.ms",
        PropertyValue::Int,
    ),
    (
        "metadata.recovery.strategy",
        PropertyValue::OneOf(&["none", "rebootstrap"]),
    ),
    ("receive.message.max.bytes", PropertyValue::Int),
    ("reconnect.backoff.max.ms", PropertyValue::Int),
    ("reconnect.backoff.ms", PropertyValue::Int),
    ("retry.backoff.max.ms", PropertyValue::Int),
    ("retry.backoff.ms", PropertyValue::Int),
    ("socket.connection.setup.timeout.ms", PropertyValue::Int),
    ("socket.keepalive.enable", PropertyValue::Bool),
    ("socket.max.fails", PropertyValue::Int),
    ("socket.nagle.disable", PropertyValue::Bool),
    ("socket.receive.buffer.bytes", PropertyValue::Int),
    ("socket.send.buffer.bytes", PropertyValue::Int),
    ("socket.timeout.ms", PropertyValue::Int),
    ("statistics.interval.ms", PropertyValue::Int),
    ("topic.metadata.propagation.max.ms", PropertyValue::Int),
    (
        "topic.metadata.refresh.fast.interval.ms",
        PropertyValue::Int,
    ),
    ("topic.metadata.refresh.interval.ms", PropertyValue::Int),
    ("topic.metadata.refresh.sparse", PropertyValue::Bool),
];

/// What to use instead of a refused property, for the ones people reach for.
pub fn refused_property_hint(key: &str) -> &'static str {
    const HINTS: &[(&str, &str)] = &[
        ("bootstrap.servers", "set kafka.bootstrap_servers instead"),
        (
            "metadata.broker.list",
            "set kafka.bootstrap_servers instead",
        ),
        ("security.protocol", "set kafka.security_protocol instead"),
        ("client.id", "set kafka.client_id instead"),
        (
            "sasl.",
            "use the kafka.sasl section (passwords are secret references there)",
        ),
        ("ssl.key", "use kafka.tls.client_key (a secret reference)"),
        (
            "ssl.keystore",
            "use kafka.tls.client_cert_file and kafka.tls.client_key",
        ),
        ("ssl.certificate", "use kafka.tls.client_cert_file"),
        ("ssl.ca", "use kafka.tls.ca_file"),
        (
            "ssl.endpoint.identification",
            "use kafka.tls.verify_hostname",
        ),
        (
            "enable.ssl.certificate.verification",
            "certificate verification cannot be turned off",
        ),
        ("ssl.engine", "krawl loads no OpenSSL engine"),
        ("ssl.providers", "krawl loads no OpenSSL provider"),
        ("plugin.library.paths", "krawl loads no plugins"),
        ("group.", "krawl never joins a consumer group"),
        ("enable.auto.", "krawl never commits offsets"),
        ("auto.offset.reset", "krawl never consumes messages"),
        ("transactional.id", "krawl never produces"),
        ("enable.idempotence", "krawl never produces"),
        ("allow.auto.create.topics", "krawl never creates topics"),
        (
            "enable.metrics.push",
            "krawl pushes no telemetry to the brokers",
        ),
        ("debug", "use RUST_LOG / --log-level instead"),
        ("https.ca", "the OAuth token endpoint uses the system roots"),
    ];
    HINTS
        .iter()
        .find(|(prefix, _)| key.starts_with(prefix))
        .map_or(
            "only connection, metadata and logging tuning properties pass through; see PASSTHROUGH_PROPERTIES in crates/krawl-kafka/src/config.rs or docs/security.md",
            |(_, why)| why,
        )
}

/// Checks one `kafka.properties` entry against [`PASSTHROUGH_PROPERTIES`]. The error names the
/// key and the expected form, never the value.
pub fn check_property(key: &str, value: &str) -> Result<(), ConfigError> {
    let Some((_, form)) = PASSTHROUGH_PROPERTIES.iter().find(|(k, _)| *k == key) else {
        return Err(ConfigError::Refused {
            key: format!("kafka.properties.\"{key}\""),
            why: refused_property_hint(key).to_string(),
        });
    };
    let ok = match form {
        PropertyValue::Int => {
            !value.is_empty()
                && value.len() <= 10
                && value.bytes().all(|b| b.is_ascii_digit())
                && value.parse::<i32>().is_ok()
        }
        PropertyValue::Bool => matches!(value, "true" | "false"),
        PropertyValue::OneOf(words) => words.contains(&value),
        PropertyValue::Word => {
            !value.is_empty()
                && value.len() <= 64
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
    };
    if ok {
        return Ok(());
    }
    let expected = match form {
        PropertyValue::Int => "a whole number from 0 to 2147483647".to_string(),
        PropertyValue::Bool => "true or false".to_string(),
        PropertyValue::OneOf(words) => format!("one of {}", words.join(", ")),
        PropertyValue::Word => "letters, digits, `.`, `_` and `-` (at most 64)".to_string(),
    };
    Err(ConfigError::Invalid {
        key: format!("kafka.properties.\"{key}\""),
        message: format!("the value must be {expected}"),
    })
}

/// Refuses control characters (a NUL would cut the value short in librdkafka's C strings, a
/// newline forge a log line) in a plain string setting.
fn check_plain(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.chars().any(char::is_control) {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            message: "holds a control character".to_string(),
        });
    }
    Ok(())
}

impl KafkaConfig {
    /// A config for `bootstrap` with defaults everywhere else.
    pub fn new(bootstrap_servers: Vec<String>) -> Self {
        Self {
            bootstrap_servers,
            security_protocol: SecurityProtocol::default(),
            sasl: None,
            tls: None,
            client_id: default_client_id(),
            timeout_secs: default_timeout_secs(),
            properties: BTreeMap::new(),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bootstrap_servers.is_empty() {
            return Err(ConfigError::Missing {
                key: "kafka.bootstrap_servers".into(),
                hint: "give at least one host:port, e.g. [\"broker-1:9092\"]".into(),
            });
        }
        for s in &self.bootstrap_servers {
            HostPort::parse(s).map_err(|e| ConfigError::Invalid {
                key: "kafka.bootstrap_servers".into(),
                message: e.to_string(),
            })?;
        }
        check_plain("kafka.client_id", &self.client_id)?;
        if self.timeout_secs == 0 || self.timeout_secs > 3600 {
            return Err(ConfigError::invalid(
                "kafka.timeout_secs",
                self.timeout_secs.to_string(),
                "1 to 3600 seconds",
            ));
        }
        let proto = self.security_protocol;
        match (&self.sasl, proto.uses_sasl()) {
            (None, true) => {
                return Err(ConfigError::Missing {
                    key: "kafka.sasl".into(),
                    hint: format!(
                        "security_protocol {} needs a [kafka.sasl] section with mechanism = one of {}",
                        proto.as_str(),
                        SaslMechanism::ACCEPTED
                    ),
                })
            }
            (Some(_), false) => {
                return Err(ConfigError::Invalid {
                    key: "kafka.sasl".into(),
                    message: format!(
                        "a [kafka.sasl] section needs security_protocol SASL_PLAINTEXT or SASL_SSL, not {}",
                        proto.as_str()
                    ),
                })
            }
            (Some(sasl), true) => sasl.validate()?,
            (None, false) => {}
        }
        if let Some(tls) = &self.tls {
            if !proto.uses_tls() {
                return Err(ConfigError::Invalid {
                    key: "kafka.tls".into(),
                    message: format!(
                        "a [kafka.tls] section needs security_protocol SSL or SASL_SSL, not {}",
                        proto.as_str()
                    ),
                });
            }
            if tls.client_cert_file.is_some() != tls.client_key.is_some() {
                return Err(ConfigError::Invalid {
                    key: "kafka.tls.client_key".into(),
                    message: "mTLS needs both client_cert_file and client_key".into(),
                });
            }
            for (key, path) in [
                ("kafka.tls.ca_file", &tls.ca_file),
                ("kafka.tls.client_cert_file", &tls.client_cert_file),
            ] {
                if let Some(p) = path {
                    krawl_policy::canonical_file(p).map_err(|e| ConfigError::Invalid {
                        key: key.into(),
                        message: e.to_string(),
                    })?;
                }
            }
        }
        for (key, value) in &self.properties {
            check_property(key, value)?;
        }
        Ok(())
    }

    /// The bootstrap servers, each parsed (exactly one `host:port`) and in canonical form.
    /// Entries that do not parse are left out: [`KafkaConfig::validate`] refuses them first.
    pub fn bootstrap(&self) -> Vec<HostPort> {
        self.bootstrap_servers
            .iter()
            .filter_map(|s| HostPort::parse(s).ok())
            .collect()
    }

    /// The SASL mechanism actually in use, if any.
    pub fn sasl_mechanism(&self) -> Option<SaslMechanism> {
        self.sasl
            .as_ref()
            .filter(|_| self.security_protocol.uses_sasl())
            .map(|s| s.mechanism)
    }

    /// Every secret reference of this connection, with its config key.
    pub fn secret_refs(&self) -> Vec<(&'static str, &SecretRef)> {
        let mut out = Vec::new();
        if let Some(sasl) = self
            .sasl
            .as_ref()
            .filter(|_| self.security_protocol.uses_sasl())
        {
            if let Some(p) = &sasl.password {
                out.push(("kafka.sasl.password", p));
            }
            if let Some(o) = &sasl.oauthbearer {
                out.push(("kafka.sasl.oauthbearer.client_secret", &o.client_secret));
                // References, and literals at credential keys (the policy refuses those).
                for (k, v) in &o.extensions {
                    if !matches!(v, SecretRef::Literal(_)) || extension_key_is_credential(k) {
                        out.push(("kafka.sasl.oauthbearer.extensions", v));
                    }
                }
            }
        }
        if let Some(tls) = self
            .tls
            .as_ref()
            .filter(|_| self.security_protocol.uses_tls())
        {
            if let Some(k) = &tls.client_key {
                out.push(("kafka.tls.client_key", k));
            }
            if let Some(k) = &tls.client_key_password {
                out.push(("kafka.tls.client_key_password", k));
            }
        }
        out
    }

    /// Resolve this connection's secrets for one job (allowlist first, for
    /// all of them, before any store is called).
    pub async fn resolve_secrets(&self, job: &JobSecrets) -> Result<KafkaSecrets, ConfigError> {
        let refs = self.secret_refs();
        job.check_allowed(refs.iter().map(|(_, r)| *r))
            .map_err(|source| ConfigError::Secret {
                key: refs.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "),
                source,
            })?;
        let mut out = KafkaSecrets::default();
        for (key, r) in refs {
            if key == "kafka.sasl.oauthbearer.extensions" {
                continue;
            }
            let v = job.resolve(r).await.map_err(|source| ConfigError::Secret {
                key: key.to_string(),
                source,
            })?;
            let slot = match key {
                "kafka.sasl.password" => &mut out.sasl_password,
                "kafka.sasl.oauthbearer.client_secret" => &mut out.oauth_client_secret,
                "kafka.tls.client_key" => &mut out.tls_client_key,
                _ => &mut out.tls_client_key_password,
            };
            *slot = Some(v);
        }
        // Every extension value (literals resolve to themselves, reading nothing), so that the
        // values reach librdkafka and the pool's fingerprint from one place.
        if let Some(o) = self.oauthbearer() {
            for (k, r) in &o.extensions {
                let v = job.resolve(r).await.map_err(|source| ConfigError::Secret {
                    key: format!("kafka.sasl.oauthbearer.extensions.{k}"),
                    source,
                })?;
                if v.expose().contains([',', '=']) || v.expose().chars().any(char::is_control) {
                    return Err(ConfigError::Invalid {
                        key: format!("kafka.sasl.oauthbearer.extensions.{k}"),
                        message: "the resolved value holds `,`, `=` or a control character, which would forge further extensions".into(),
                    });
                }
                out.oauth_extensions.push((k.clone(), v));
            }
        }
        Ok(out)
    }

    /// The OAUTHBEARER settings in use, if any.
    fn oauthbearer(&self) -> Option<&OauthBearerConfig> {
        self.sasl
            .as_ref()
            .filter(|_| self.security_protocol.uses_sasl())
            .and_then(|s| s.oauthbearer.as_ref())
    }

    /// librdkafka settings with the resolved secrets. The secrets live in the
    /// returned config (and in the client made from it) only. Never print it
    /// except through rdkafka's own sanitised `Debug`.
    pub fn client_config(&self, secrets: &KafkaSecrets) -> ClientConfig {
        let mut c = ClientConfig::new();
        let servers: Vec<String> = self.bootstrap().iter().map(HostPort::to_string).collect();
        c.set("bootstrap.servers", servers.join(","));
        c.set("client.id", &self.client_id);
        c.set(
            "security.protocol",
            self.security_protocol.as_str().to_ascii_lowercase(),
        );
        // Read-only: a Metadata request must never create a topic.
        c.set("allow.auto.create.topics", "false");
        // Read-only: no client telemetry pushed to the brokers (KIP-714).
        c.set("enable.metrics.push", "false");
        let ms = (self.timeout_secs * 1000).to_string();
        c.set("socket.timeout.ms", &ms);
        c.set("socket.connection.setup.timeout.ms", &ms);
        // Let the first connection failure surface quickly to our classifier.
        c.set("reconnect.backoff.max.ms", "2000");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        if let Some(sasl) = self
            .sasl
            .as_ref()
            .filter(|_| self.security_protocol.uses_sasl())
        {
            c.set("sasl.mechanism", sasl.mechanism.as_str());
            match sasl.mechanism {
                SaslMechanism::OauthBearer => {
                    if let Some(o) = &sasl.oauthbearer {
                        c.set("sasl.oauthbearer.method", "oidc");
                        c.set("sasl.oauthbearer.token.endpoint.url", &o.token_endpoint_url);
                        c.set("sasl.oauthbearer.client.id", &o.client_id);
                        if let Some(secret) = &secrets.oauth_client_secret {
                            c.set("sasl.oauthbearer.client.secret", secret.expose());
                        }
                        if let Some(scope) = &o.scope {
                            c.set("sasl.oauthbearer.scope", scope);
                        }
                        if !secrets.oauth_extensions.is_empty() {
                            let ext: Vec<String> = secrets
                                .oauth_extensions
                                .iter()
                                .map(|(k, v)| format!("{k}={}", v.expose()))
                                .collect();
                            c.set("sasl.oauthbearer.extensions", ext.join(","));
                        }
                    }
                }
                _ => {
                    if let Some(u) = &sasl.username {
                        c.set("sasl.username", u);
                    }
                    if let Some(pw) = &secrets.sasl_password {
                        c.set("sasl.password", pw.expose());
                    }
                }
            }
        }
        if let Some(tls) = self
            .tls
            .as_ref()
            .filter(|_| self.security_protocol.uses_tls())
        {
            if let Some(ca) = &tls.ca_file {
                c.set("ssl.ca.location", ca.to_string_lossy());
            }
            if let Some(cert) = &tls.client_cert_file {
                c.set("ssl.certificate.location", cert.to_string_lossy());
            }
            if let Some(pem) = &secrets.tls_client_key {
                c.set("ssl.key.pem", pem.expose());
            }
            if let Some(pw) = &secrets.tls_client_key_password {
                c.set("ssl.key.password", pw.expose());
            }
            c.set(
                "ssl.endpoint.identification.algorithm",
                if tls.verify_hostname { "https" } else { "none" },
            );
        } else if self.security_protocol.uses_tls() {
            c.set("ssl.endpoint.identification.algorithm", "https");
        }
        c
    }
}

impl KafkaConfig {
    /// Settings for the DescribeLogDirs client ([`crate::log_dirs`]).
    pub fn broker_settings(&self, secrets: &KafkaSecrets) -> crate::broker_client::BrokerSettings {
        use crate::broker_client::{BrokerSettings, SaslSettings, TlsSettings};
        let proto = self.security_protocol;
        let sasl = match self.sasl.as_ref().filter(|_| proto.uses_sasl()) {
            Some(s) if s.mechanism != SaslMechanism::OauthBearer => Some(SaslSettings {
                mechanism: s.mechanism,
                username: s.username.clone().unwrap_or_default(),
                password: secrets
                    .sasl_password
                    .clone()
                    .unwrap_or_else(|| SecretString::new("")),
            }),
            // OAUTHBEARER: the client reports it unsupported by itself.
            Some(s) => Some(SaslSettings {
                mechanism: s.mechanism,
                username: String::new(),
                password: SecretString::new(""),
            }),
            None => None,
        };
        let tls = self
            .tls
            .as_ref()
            .filter(|_| proto.uses_tls())
            .map(|t| TlsSettings {
                ca_file: t.ca_file.clone(),
                client_cert_file: t.client_cert_file.clone(),
                client_key_pem: secrets.tls_client_key.clone(),
                verify_hostname: t.verify_hostname,
            });
        BrokerSettings {
            security_protocol: proto,
            sasl,
            tls,
            client_id: self.client_id.clone(),
            timeout: self.timeout(),
        }
    }
}

/// The resolved secrets of one connection, for one job. Redacted when
/// printed; zeroized when dropped.
#[derive(Debug, Default, Clone)]
pub struct KafkaSecrets {
    pub sasl_password: Option<SecretString>,
    pub oauth_client_secret: Option<SecretString>,
    pub tls_client_key: Option<SecretString>,
    pub tls_client_key_password: Option<SecretString>,
    /// Every `kafka.sasl.oauthbearer.extensions` entry, resolved (literals as written).
    pub oauth_extensions: Vec<(String, SecretString)>,
}

impl KafkaSecrets {
    /// Every resolved value, in a fixed order, each with a label (`None`: not set), for a
    /// fingerprint of the credentials (the agent's connection pool key).
    pub fn values(&self) -> Vec<(&str, Option<&SecretString>)> {
        let mut out = vec![
            ("sasl_password", self.sasl_password.as_ref()),
            ("oauth_client_secret", self.oauth_client_secret.as_ref()),
            ("tls_client_key", self.tls_client_key.as_ref()),
            (
                "tls_client_key_password",
                self.tls_client_key_password.as_ref(),
            ),
        ];
        out.extend(
            self.oauth_extensions
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v))),
        );
        out
    }
}

impl SaslConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        match self.mechanism {
            SaslMechanism::OauthBearer => {
                let Some(o) = &self.oauthbearer else {
                    return Err(ConfigError::Missing {
                        key: "kafka.sasl.oauthbearer".into(),
                        hint: "OAUTHBEARER needs token_endpoint_url, client_id and client_secret"
                            .into(),
                    });
                };
                DestUrl::parse("OAuth token endpoint", &o.token_endpoint_url).map_err(|e| {
                    ConfigError::Invalid {
                        key: "kafka.sasl.oauthbearer.token_endpoint_url".into(),
                        message: e.to_string(),
                    }
                })?;
                check_plain("kafka.sasl.oauthbearer.client_id", &o.client_id)?;
                if let Some(scope) = &o.scope {
                    check_plain("kafka.sasl.oauthbearer.scope", scope)?;
                }
                for (k, v) in &o.extensions {
                    // KIP-342: keys are letters only; `auth` is reserved.
                    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphabetic()) || k == "auth" {
                        return Err(ConfigError::Invalid {
                            key: "kafka.sasl.oauthbearer.extensions".into(),
                            message: format!("extension key {k:?}: keys are letters only (KIP-342), and `auth` is reserved"),
                        });
                    }
                    if let SecretRef::Literal(lit) = v {
                        if lit.expose().contains([',', '='])
                            || lit.expose().chars().any(char::is_control)
                        {
                            return Err(ConfigError::Invalid {
                                key: format!("kafka.sasl.oauthbearer.extensions.{k}"),
                                message: "the value holds `,`, `=` or a control character, which would forge further extensions".into(),
                            });
                        }
                    }
                }
                if self.username.is_some() || self.password.is_some() {
                    return Err(ConfigError::Invalid {
                        key: "kafka.sasl.username".into(),
                        message: "OAUTHBEARER uses the oauthbearer section, not username/password"
                            .into(),
                    });
                }
            }
            m => {
                if let Some(u) = &self.username {
                    check_plain("kafka.sasl.username", u)?;
                }
                if self.username.as_deref().unwrap_or("").is_empty() {
                    return Err(ConfigError::Missing {
                        key: "kafka.sasl.username".into(),
                        hint: format!("{} needs a username", m.as_str()),
                    });
                }
                if self.password.is_none() {
                    return Err(ConfigError::Missing {
                        key: "kafka.sasl.password".into(),
                        hint: format!(
                            "{} needs a password: a secret reference such as env://KAFKA_PASSWORD or file:///run/secrets/kafka",
                            m.as_str()
                        ),
                    });
                }
                if self.oauthbearer.is_some() {
                    return Err(ConfigError::Invalid {
                        key: "kafka.sasl.oauthbearer".into(),
                        message: format!(
                            "only used with mechanism OAUTHBEARER, not {}",
                            m.as_str()
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid config: {0}")]
    Parse(String),
    #[error("invalid config: `{key}` is missing: {hint}")]
    Missing { key: String, hint: String },
    #[error("invalid config: `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("invalid config: `{key}` is not allowed: {why}")]
    Refused { key: String, why: String },
    #[error("cannot resolve `{key}`: {source}")]
    Secret {
        key: String,
        #[source]
        source: SecretError,
    },
    #[error(transparent)]
    SchemaRegistry(#[from] krawl_schema_registry::RegistryConfigError),
}

impl ConfigError {
    pub fn invalid(key: &str, value: impl AsRef<str>, accepted: &str) -> Self {
        Self::Invalid {
            key: key.to_string(),
            message: format!("`{}` is not valid; accepted: {accepted}", value.as_ref()),
        }
    }
}

/// Test helper: resolve a config's secrets with env/file/literal only.
#[cfg(test)]
pub(crate) fn resolve_locally(k: &KafkaConfig) -> Result<KafkaSecrets, ConfigError> {
    let job = krawl_secrets::Resolver::default().job("test");
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(k.resolve_secrets(&job))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ExtractConfig, ConfigError> {
        ExtractConfig::from_toml(s)
    }

    fn get(c: &ClientConfig, k: &str) -> Option<String> {
        c.get(k).map(str::to_string)
    }

    /// Resolve with the local (env/file/literal) resolver, then map.
    fn client_config(k: &KafkaConfig) -> Result<ClientConfig, ConfigError> {
        let secrets = resolve_locally(k)?;
        Ok(k.client_config(&secrets))
    }

    #[test]
    fn plaintext_defaults() {
        let cfg = parse("[kafka]\nbootstrap_servers = [\"b1:9092\", \"b2:9092\"]\n").unwrap();
        let c = client_config(&cfg.kafka).unwrap();
        assert_eq!(
            get(&c, "bootstrap.servers").as_deref(),
            Some("b1:9092,b2:9092")
        );
        assert_eq!(get(&c, "security.protocol").as_deref(), Some("plaintext"));
        assert_eq!(
            get(&c, "allow.auto.create.topics").as_deref(),
            Some("false")
        );
        assert_eq!(get(&c, "sasl.mechanism"), None);
        assert_eq!(cfg.kafka.timeout(), Duration::from_secs(30));
    }

    #[test]
    fn scram_maps_to_librdkafka() {
        std::env::set_var("KRAWL_CFG_TEST_PW", "s3cr3t");
        for mech in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] {
            let cfg = parse(&format!(
                r#"[kafka]
bootstrap_servers = ["b1:9093"]
security_protocol = "SASL_SSL"
[kafka.sasl]
mechanism = "{mech}"
username = "svc"
password = "env://KRAWL_CFG_TEST_PW"
"#
            ))
            .unwrap();
            let c = client_config(&cfg.kafka).unwrap();
            assert_eq!(get(&c, "security.protocol").as_deref(), Some("sasl_ssl"));
            assert_eq!(get(&c, "sasl.mechanism").as_deref(), Some(mech));
            assert_eq!(get(&c, "sasl.username").as_deref(), Some("svc"));
            assert_eq!(get(&c, "sasl.password").as_deref(), Some("s3cr3t"));
            assert_eq!(
                get(&c, "ssl.endpoint.identification.algorithm").as_deref(),
                Some("https")
            );
        }
    }

    #[test]
    fn oauthbearer_oidc_maps_to_librdkafka() {
        std::env::set_var("KRAWL_CFG_TEST_OIDC", "oidc-secret");
        let cfg = parse(
            r#"[kafka]
bootstrap_servers = ["b1:9093"]
security_protocol = "SASL_SSL"
[kafka.sasl]
mechanism = "OAUTHBEARER"
[kafka.sasl.oauthbearer]
token_endpoint_url = "https://idp.example/oauth2/token"
client_id = "krawl"
client_secret = "env://KRAWL_CFG_TEST_OIDC"
scope = "kafka"
extensions = { logicalCluster = "lkc-1", identityPoolId = "pool-2" }
"#,
        )
        .unwrap();
        let c = client_config(&cfg.kafka).unwrap();
        assert_eq!(get(&c, "sasl.mechanism").as_deref(), Some("OAUTHBEARER"));
        assert_eq!(get(&c, "sasl.oauthbearer.method").as_deref(), Some("oidc"));
        assert_eq!(
            get(&c, "sasl.oauthbearer.token.endpoint.url").as_deref(),
            Some("https://idp.example/oauth2/token")
        );
        assert_eq!(
            get(&c, "sasl.oauthbearer.client.secret").as_deref(),
            Some("oidc-secret")
        );
        assert_eq!(get(&c, "sasl.oauthbearer.scope").as_deref(), Some("kafka"));
        assert_eq!(
            get(&c, "sasl.oauthbearer.extensions").as_deref(),
            Some("identityPoolId=pool-2,logicalCluster=lkc-1")
        );
    }

    #[test]
    fn mtls_maps_to_librdkafka() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let cert = dir.path().join("client.pem");
        let key = dir.path().join("client.key");
        std::fs::write(&ca, "ca").unwrap();
        std::fs::write(&cert, "cert").unwrap();
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nabc\n").unwrap();
        let cfg = parse(&format!(
            r#"[kafka]
bootstrap_servers = ["b1:9093"]
security_protocol = "SSL"
[kafka.tls]
ca_file = "{}"
client_cert_file = "{}"
client_key = "file://{}"
verify_hostname = false
"#,
            ca.display(),
            cert.display(),
            key.display()
        ))
        .unwrap();
        let c = client_config(&cfg.kafka).unwrap();
        assert_eq!(get(&c, "ssl.ca.location"), Some(ca.display().to_string()));
        assert_eq!(
            get(&c, "ssl.certificate.location"),
            Some(cert.display().to_string())
        );
        assert_eq!(
            get(&c, "ssl.key.pem").as_deref(),
            Some("-----BEGIN PRIVATE KEY-----\nabc")
        );
        assert_eq!(
            get(&c, "ssl.endpoint.identification.algorithm").as_deref(),
            Some("none")
        );
    }

    #[test]
    fn errors_name_the_key_and_accepted_values() {
        let e = parse("[kafka]\nbootstrap_servers = [\"b:1\"]\nsecurity_protocol = \"TLS\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("security_protocol") && e.contains("SASL_SSL"),
            "{e}"
        );

        let e = parse("[kafka]\nbootstrap_servers = [\"b:1\"]\nsecurity_protocol = \"SASL_SSL\"\n[kafka.sasl]\nmechanism = \"GSSAPI\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mechanism") && e.contains("SCRAM-SHA-512"),
            "{e}"
        );

        let e = parse("[kafka]\nbootstrap_servers = [\"b:1\"]\nsecurity_protocol = \"SASL_SSL\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`kafka.sasl` is missing"), "{e}");

        let e = parse("[kafka]\nbootstrap_servers = [\"nohostport\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("kafka.bootstrap_servers") && e.contains("host:port"),
            "{e}"
        );

        let e = parse("[kafka]\nbootstrap_servers = [\"b:1\"]\nsecurity_protocol = \"SASL_PLAINTEXT\"\n[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka.sasl.password"), "{e}");

        let e = parse("[kafka]\nbootstrap_servers = [\"b:1\"]\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");

        let e =
            parse("[kafka]\nbootstrap_servers = [\"b:1\"]\n[extract]\ninclude_topics = [\"(\"]\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("extract.include_topics"), "{e}");

        let e = parse(
            "[kafka]\nbootstrap_servers = [\"b:1\"]\n[extract]\ngroup_states = [\"Happy\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("extract.group_states") && e.contains("Stable"),
            "{e}"
        );
    }

    #[test]
    fn refuses_properties_that_write_consume_or_bypass_secrets() {
        for key in [
            "group.id",
            "enable.auto.commit",
            "transactional.id",
            "allow.auto.create.topics",
            "sasl.password",
            "ssl.key.location",
            "enable.ssl.certificate.verification",
        ] {
            let e = parse(&format!(
                "[kafka]\nbootstrap_servers = [\"b:1\"]\n[kafka.properties]\n\"{key}\" = \"x\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains(key) && e.contains("not allowed"), "{key}: {e}");
        }
        let cfg = parse(
            "[kafka]\nbootstrap_servers = [\"b:1\"]\n[kafka.properties]\n\"socket.keepalive.enable\" = \"true\"\n",
        )
        .unwrap();
        let c = client_config(&cfg.kafka).unwrap();
        assert_eq!(get(&c, "socket.keepalive.enable").as_deref(), Some("true"));
    }

    /// Issue 11: `kafka.properties` is an allowlist. Properties that load code, run commands,
    /// read files, change where or how the client connects, or carry credentials are refused
    /// by name; allowed ones must have the value form they take, and the error never echoes
    /// the value.
    #[test]
    fn properties_pass_only_by_allowlist() {
        for key in [
            "ssl.engine.location",
            "ssl.providers",
            "plugin.library.paths",
            "sasl.kerberos.kinit.cmd",
            "ssl.crl.location",
            "https.ca.location",
            "client.dns.lookup",
            "ssl.cipher.suites",
            "interceptor.x",
            "bootstrap.servers",
        ] {
            let e = parse(&format!(
                "[kafka]\nbootstrap_servers = [\"b:1\"]\n[kafka.properties]\n\"{key}\" = \"x\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains(key) && e.contains("not allowed"), "{key}: {e}");
        }
        for (key, value, expected) in [
            ("socket.timeout.ms", "CANARY-1", "whole number"),
            ("socket.timeout.ms", "99999999999", "whole number"),
            ("socket.keepalive.enable", "CANARY-yes", "true or false"),
            ("broker.address.family", "CANARY", "one of any, v4, v6"),
            ("client.rack", "CANARY rack,x=y", "letters"),
        ] {
            let e = parse(&format!(
                "[kafka]\nbootstrap_servers = [\"b:1\"]\n[kafka.properties]\n\"{key}\" = \"{value}\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                e.contains(key) && e.contains(expected) && !e.contains("CANARY"),
                "{key}: {e}"
            );
        }
        let cfg = parse(
            "[kafka]\nbootstrap_servers = [\"b:1\"]\n[kafka.properties]\n\"broker.address.family\" = \"v4\"\n\"metadata.max.age.ms\" = \"60000\"\n",
        )
        .unwrap();
        let c = client_config(&cfg.kafka).unwrap();
        assert_eq!(get(&c, "broker.address.family").as_deref(), Some("v4"));
        assert_eq!(get(&c, "metadata.max.age.ms").as_deref(), Some("60000"));
    }

    /// Issue 11: one entry is exactly one broker. An entry with a comma would have been joined
    /// into librdkafka's list as two hosts, the SASL password going to the second.
    #[test]
    fn each_bootstrap_entry_is_one_host_port() {
        for bad in [
            "allowed:9092,evil:9092",
            "allowed:9092 evil:9092",
            "SASL_SSL://evil:9093",
            "u:CANARY@evil:9093",
        ] {
            let e = parse(&format!("[kafka]\nbootstrap_servers = [\"{bad}\"]\n"))
                .unwrap_err()
                .to_string();
            // The entry is named; a `user:password@` prefix only as `…@`.
            let shown = bad.replace("u:CANARY@", "…@");
            assert!(
                e.contains("kafka.bootstrap_servers")
                    && e.contains(&shown)
                    && !e.contains("CANARY"),
                "{bad}: {e}"
            );
        }
        let cfg =
            parse("[kafka]\nbootstrap_servers = [\"B1.Example:9092\", \"[::1]:9093\"]\n").unwrap();
        let c = client_config(&cfg.kafka).unwrap();
        assert_eq!(
            get(&c, "bootstrap.servers").as_deref(),
            Some("b1.example:9092,[::1]:9093")
        );
    }

    #[test]
    fn oauth_settings_cannot_forge_extensions_or_carry_credentials() {
        let base = |ext: &str, url: &str| {
            format!(
                "[kafka]\nbootstrap_servers = [\"b:1\"]\nsecurity_protocol = \"SASL_SSL\"\n[kafka.sasl]\nmechanism = \"OAUTHBEARER\"\n[kafka.sasl.oauthbearer]\ntoken_endpoint_url = \"{url}\"\nclient_id = \"c\"\nclient_secret = \"env://X\"\nextensions = {ext}\n"
            )
        };
        let ok_url = "https://idp.example/token";
        for (ext, why) in [
            ("{ logicalCluster = \"lkc-1,auth=Bearer x\" }", "forge"),
            ("{ \"a=b\" = \"x\" }", "letters only"),
            ("{ auth = \"x\" }", "reserved"),
        ] {
            let e = parse(&base(ext, ok_url)).unwrap_err().to_string();
            assert!(e.contains("extensions") && e.contains(why), "{ext}: {e}");
        }
        for url in [
            "https://u:CANARY@idp.example/token",
            "file:///etc/passwd",
            "ftp://idp/x",
        ] {
            let e = parse(&base("{}", url)).unwrap_err().to_string();
            assert!(e.contains("token_endpoint_url"), "{url}: {e}");
        }
        // A credential-named extension is a secret reference position: its literal is listed
        // with the secret references (the agent's policy refuses literals there), a plain one
        // is not.
        let cfg = parse(&base(
            "{ logicalCluster = \"lkc-1\", apiToken = \"CANARY\", poolSecret = \"env://POOL\" }",
            ok_url,
        ))
        .unwrap();
        let refs: Vec<String> = cfg
            .kafka
            .secret_refs()
            .iter()
            .map(|(_, r)| r.to_string())
            .collect();
        assert!(refs.contains(&"literal:[redacted]".to_string()), "{refs:?}");
        assert!(refs.contains(&"env://POOL".to_string()), "{refs:?}");
        assert_eq!(refs.len(), 3, "{refs:?}");
    }

    #[test]
    fn filters() {
        let opts = ExtractOptions {
            include_topics: vec!["^orders".into(), "^pay".into()],
            exclude_topics: vec!["-dlq$".into()],
            ..Default::default()
        };
        let f = opts.filters().unwrap();
        assert!(f.topic("orders", false));
        assert!(f.topic("payments", false));
        assert!(!f.topic("orders-dlq", false));
        assert!(!f.topic("audit", false));
        assert!(!f.topic("orders_internal", true));
        let f = ExtractOptions {
            include_internal_topics: true,
            ..Default::default()
        }
        .filters()
        .unwrap();
        assert!(f.topic("__consumer_offsets", true));
    }

    #[test]
    fn secret_errors_name_key_and_reference() {
        let cfg = parse(
            "[kafka]\nbootstrap_servers = [\"b:1\"]\nsecurity_protocol = \"SASL_PLAINTEXT\"\n[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword = \"env://KRAWL_CFG_TEST_UNSET_X\"\n",
        )
        .unwrap();
        let e = client_config(&cfg.kafka).unwrap_err().to_string();
        assert!(
            e.contains("kafka.sasl.password") && e.contains("env://KRAWL_CFG_TEST_UNSET_X"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod example_config {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../deploy/krawl.example.toml");

    /// Tables of the example that only the agent reads (`krawl run`); `krawl extract` ignores
    /// them, as the example says.
    const AGENT_TABLES: &[&str] = &["agent", "control_plane", "policy"];

    /// The example without the agent's tables: what `krawl extract` is given.
    pub(super) fn extract_part(text: &str) -> String {
        let mut skipping = false;
        let mut out = String::new();
        for line in text.lines() {
            if let Some(header) = line.trim_start().strip_prefix('[') {
                let table = header.split([']', '.']).next().unwrap_or_default().trim();
                skipping = AGENT_TABLES.contains(&table);
            }
            if !skipping {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The documented example parses, and names every key the config accepts.
    #[test]
    fn example_parses_and_documents_every_key() {
        std::env::set_var("KAFKA_PASSWORD", "x");
        let extract = extract_part(EXAMPLE);
        let tables: Vec<&str> = extract.lines().filter(|l| l.starts_with('[')).collect();
        assert!(
            tables.contains(&"[kafka]") && !tables.iter().any(|t| t.contains("control_plane")),
            "{tables:?}"
        );
        // The whole file (agent tables included) is a valid `krawl extract` config too.
        let whole: ExtractConfig = toml::from_str(EXAMPLE).expect("the whole example parses");
        assert_eq!(whole.kafka.bootstrap_servers.len(), {
            let part: ExtractConfig = toml::from_str(&extract).expect("example parses");
            part.kafka.bootstrap_servers.len()
        });
        // Other unknown tables are still refused.
        let typo = format!("{EXAMPLE}\n[agnet]\nname = \"x\"\n");
        assert!(toml::from_str::<ExtractConfig>(&typo).is_err());
        let cfg: ExtractConfig = toml::from_str(&extract).expect("example parses");
        assert_eq!(cfg.kafka.security_protocol, SecurityProtocol::SaslSsl);
        let schema = serde_json::to_value(schemars::schema_for!(ExtractConfig)).unwrap();
        let mut keys = std::collections::BTreeSet::new();
        collect_keys(&schema, &mut keys);
        assert!(keys.len() > 25, "{keys:?}");
        for key in keys {
            assert!(
                EXAMPLE.contains(&format!("{key} ="))
                    || EXAMPLE.contains(&format!(".{key}]"))
                    || EXAMPLE.contains(&format!("[{key}]")),
                "deploy/krawl.example.toml does not document `{key}`"
            );
        }
        // Defaults in the example match the code's defaults.
        let d = ExtractOptions::default();
        assert_eq!(cfg.extract.describe_configs_batch, d.describe_configs_batch);
        assert_eq!(cfg.extract.list_offsets_batch, d.list_offsets_batch);
        assert_eq!(
            cfg.extract.offset_fetch_concurrency,
            d.offset_fetch_concurrency
        );
        assert_eq!(cfg.kafka.timeout_secs, default_timeout_secs());
    }

    /// Property names of a JSON Schema, walking only schema-valued keywords.
    fn collect_keys(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
        let Some(map) = v.as_object() else { return };
        if let Some(props) = map.get("properties").and_then(|p| p.as_object()) {
            for (name, schema) in props {
                out.insert(name.clone());
                collect_keys(schema, out);
            }
        }
        for kw in ["definitions", "anyOf", "allOf", "oneOf", "items"] {
            match map.get(kw) {
                Some(serde_json::Value::Object(defs)) if kw == "definitions" => {
                    defs.values().for_each(|d| collect_keys(d, out))
                }
                Some(serde_json::Value::Array(list)) => {
                    list.iter().for_each(|d| collect_keys(d, out))
                }
                Some(other) => collect_keys(other, out),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod no_panic {
    use super::*;

    /// Mutations of the documented example (bytes dropped, duplicated,
    /// replaced; lines shuffled) never make parsing, validation or the
    /// librdkafka mapping panic: each input is accepted or gets an error.
    #[test]
    fn mutated_configs_never_panic() {
        // Valid as it stands here: no env var, no CA file on disk.
        let example =
            super::example_config::extract_part(include_str!("../../../deploy/krawl.example.toml"))
                .replace("env://KAFKA_PASSWORD", "literal-pw")
                .replace("ca_file = ", "# ca_file = ");
        assert!(ExtractConfig::from_toml(&example).is_ok());
        let bytes = example.as_bytes();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"[]=\"'#\n .,0123456789abcxyz_-:/{}\\\x00\xff";
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..3000 {
            let mut m = bytes.to_vec();
            for _ in 0..(1 + next() % 6) {
                if m.is_empty() {
                    break;
                }
                let i = (next() as usize) % m.len();
                match next() % 4 {
                    0 => {
                        m.remove(i);
                    }
                    1 => m.insert(i, alphabet[(next() as usize) % alphabet.len()]),
                    2 => m[i] = alphabet[(next() as usize) % alphabet.len()],
                    _ => {
                        let j = (next() as usize) % m.len();
                        m.swap(i, j);
                    }
                }
            }
            let text = String::from_utf8_lossy(&m);
            match ExtractConfig::from_toml(&text) {
                Ok(cfg) => {
                    accepted += 1;
                    if let Ok(secrets) = super::resolve_locally(&cfg.kafka) {
                        let _ = cfg.kafka.client_config(&secrets);
                        let _ = cfg.kafka.broker_settings(&secrets);
                    }
                }
                Err(e) => {
                    refused += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        // The mutations hit both paths.
        assert!(
            accepted > 0 && refused > 0,
            "{accepted} accepted, {refused} refused"
        );
    }
}
