//! One shared admin client per cluster connection.
//!
//! [`Connection::connect`] builds the librdkafka admin client from a
//! validated [`KafkaConfig`] (resolving its secrets now, for this use, or
//! taking them already resolved: [`Connection::connect_with`]), then
//! proves the cluster answers a Metadata request within the timeout. When it
//! does not, the errors librdkafka reported are classified ([`classify`]) so
//! the message says whether DNS, TCP, TLS or SASL failed, and for which hosts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::metadata::Metadata;

use crate::admin_ext::{self, MainQueuePoller, MetadataAnchor};
use krawl_secrets::JobSecrets;

use crate::config::{KafkaConfig, KafkaSecrets, SaslMechanism, SecurityProtocol};
use crate::context::KrawlContext;
use crate::error::{classify, ExtractError, FailureClass};

pub type Admin = AdminClient<KrawlContext>;

/// A connected cluster: the admin client and what it was built from.
/// Cheap to clone; the client closes when the last clone is dropped.
#[derive(Clone)]
pub struct Connection {
    admin: Arc<Admin>,
    _poller: Arc<MainQueuePoller>,
    /// Keeps librdkafka's own Metadata requests naming one topic (see
    /// [`MetadataAnchor`]); dropped before the client.
    _anchor: Arc<MetadataAnchor<KrawlContext>>,
    hosts: String,
    timeout: Duration,
    security_protocol: SecurityProtocol,
    sasl_mechanism: Option<SaslMechanism>,
    /// For the DescribeLogDirs client: the settings and the secrets resolved
    /// for this connection's job. A connection serves one job (the CLI); a
    /// shared, longer-lived one must be re-made when its job ends.
    config: Arc<KafkaConfig>,
    secrets: Arc<KafkaSecrets>,
    /// The brokers the cluster advertised in the connect probe, `(id, host, port)`.
    advertised: Vec<(i32, String, u16)>,
}

impl std::fmt::Debug for Connection {
    // Deliberately omits the client config: it holds resolved secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("hosts", &self.hosts)
            .field("security_protocol", &self.security_protocol)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Build the client and wait until the cluster answers Metadata, or fail
    /// with a classified error within `cfg.timeout_secs`.
    /// Resolves the secrets through `job` first (one audit line per reference).
    pub async fn connect(cfg: &KafkaConfig, job: &JobSecrets) -> Result<Self, ExtractError> {
        cfg.validate()?;
        let secrets = cfg.resolve_secrets(job).await?;
        Self::build(cfg, secrets).await
    }

    /// [`Connection::connect`] with secrets the caller has already resolved for this job
    /// ([`KafkaConfig::resolve_secrets`]), so that they are not resolved (and audited) twice:
    /// the agent's connection pool resolves them once to fingerprint its key, then connects
    /// with the same values. The connection keeps `secrets` for its DescribeLogDirs client.
    pub async fn connect_with(
        cfg: &KafkaConfig,
        secrets: KafkaSecrets,
    ) -> Result<Self, ExtractError> {
        cfg.validate()?;
        Self::build(cfg, secrets).await
    }

    async fn build(cfg: &KafkaConfig, secrets: KafkaSecrets) -> Result<Self, ExtractError> {
        let mut client_config = cfg.client_config(&secrets);
        // ApiVersions answers reach us through the FEATURE debug log (see context.rs).
        client_config.set("debug", "feature");
        client_config.set_log_level(RDKafkaLogLevel::Debug);
        let hosts = cfg.bootstrap_servers.join(", ");
        let admin: Admin = client_config
            .create_with_context(KrawlContext::default())
            .map_err(|e| ExtractError::Connect {
                hosts: hosts.clone(),
                class: FailureClass::Config,
                cause: refused_settings(cfg, &e.to_string()),
            })?;
        drop(client_config);
        let admin = Arc::new(admin);
        let poller = MainQueuePoller::start(
            &admin,
            cfg.sasl_mechanism() == Some(SaslMechanism::OauthBearer),
        )
        .map_err(|e| ExtractError::Connect {
            hosts: hosts.clone(),
            class: FailureClass::Other,
            cause: e.to_string(),
        })?;
        let anchor = MetadataAnchor::new(&admin).map_err(|e| ExtractError::Connect {
            hosts: hosts.clone(),
            class: FailureClass::Other,
            cause: e.to_string(),
        })?;
        let conn = Self {
            _anchor: Arc::new(anchor),
            _poller: Arc::new(poller),
            admin,
            hosts,
            timeout: cfg.timeout(),
            security_protocol: cfg.security_protocol,
            sasl_mechanism: cfg.sasl_mechanism(),
            config: Arc::new(cfg.clone()),
            secrets: Arc::new(secrets),
            advertised: Vec::new(),
        };
        let mut conn = conn;
        conn.advertised = conn.probe().await?;
        Ok(conn)
    }

    /// The brokers the cluster advertised when this connection was made, `(id, host, port)`:
    /// where librdkafka (and the DescribeLogDirs client) will connect after the bootstrap
    /// servers. The agent checks them against its policy before a job uses the connection.
    pub fn advertised_brokers(&self) -> &[(i32, String, u16)] {
        &self.advertised
    }

    /// Poll Metadata in short slices so that a fatal error (bad password,
    /// TLS failure, unknown host) ends the wait early instead of at the timeout.
    async fn probe(&self) -> Result<Vec<(i32, String, u16)>, ExtractError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let slice =
                Duration::from_millis(1000).min(deadline.saturating_duration_since(Instant::now()));
            if let Ok(brokers) =
                admin_ext::probe_brokers(&self.admin, slice.max(Duration::from_millis(100))).await
            {
                if !brokers.is_empty() {
                    return Ok(brokers);
                }
            }
            let errors = self.admin.inner().context().errors();
            let all_down = errors
                .iter()
                .any(|e| e.code == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown));
            let classified = classify(&errors);
            if let Some((class, cause)) = &classified {
                let fatal = matches!(
                    class,
                    FailureClass::Authentication | FailureClass::Tls | FailureClass::Dns
                ) || all_down;
                if fatal || Instant::now() >= deadline {
                    return Err(ExtractError::Connect {
                        hosts: self.hosts.clone(),
                        class: *class,
                        cause: cause.clone(),
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(ExtractError::Connect {
                    hosts: self.hosts.clone(),
                    class: FailureClass::Timeout,
                    cause: format!(
                        "no Metadata answer within {} s (security_protocol {})",
                        self.timeout.as_secs(),
                        self.security_protocol.as_str()
                    ),
                });
            }
        }
    }

    async fn metadata_within(&self, timeout: Duration) -> Result<Metadata, String> {
        let admin = Arc::clone(&self.admin);
        tokio::task::spawn_blocking(move || {
            admin
                .inner()
                .fetch_metadata(None, timeout)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Metadata for all topics.
    pub async fn metadata(&self) -> Result<Metadata, ExtractError> {
        self.metadata_within(self.timeout)
            .await
            .map_err(|message| ExtractError::Call {
                api: "Metadata",
                message: format!("{message} (brokers {})", self.hosts),
            })
    }

    pub fn admin(&self) -> &Arc<Admin> {
        &self.admin
    }

    pub fn context(&self) -> &KrawlContext {
        self.admin.inner().context()
    }

    pub fn hosts(&self) -> &str {
        &self.hosts
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn security_protocol(&self) -> SecurityProtocol {
        self.security_protocol
    }

    pub fn sasl_mechanism(&self) -> Option<SaslMechanism> {
        self.sasl_mechanism
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Settings for [`crate::log_dirs`], with this connection's secrets.
    pub fn broker_settings(&self) -> crate::broker_client::BrokerSettings {
        self.config.broker_settings(&self.secrets)
    }

    /// The bootstrap servers as `(host, port)` (validated when the config was).
    pub fn bootstrap_servers(&self) -> Vec<(String, u16)> {
        self.config
            .bootstrap_servers
            .iter()
            .filter_map(|entry| krawl_policy::HostPort::parse(entry).ok())
            .map(|hp| (hp.host(), hp.port()))
            .collect()
    }
}

/// The cause of a client librdkafka would not create, with the krawl setting behind the
/// librdkafka property it names: `ssl.ca.location failed: … no certificate or crl found`
/// becomes actionable only as `kafka.tls.ca_file = /path`. File paths are shown; key material
/// never is (the error names only the setting).
fn refused_settings(cfg: &KafkaConfig, error: &str) -> String {
    let tls = cfg.tls.as_ref();
    let path = |p: Option<&std::path::PathBuf>| p.map(|p| format!(" = {}", p.display()));
    let settings = [
        (
            "ssl.ca.location",
            "kafka.tls.ca_file",
            path(tls.and_then(|t| t.ca_file.as_ref())),
        ),
        (
            "ssl.certificate.location",
            "kafka.tls.client_cert_file",
            path(tls.and_then(|t| t.client_cert_file.as_ref())),
        ),
        ("ssl.key.pem", "kafka.tls.client_key", None),
        ("ssl.key.password", "kafka.tls.client_key_password", None),
    ];
    let named: Vec<String> = settings
        .iter()
        .filter(|(property, _, _)| error.contains(property))
        .map(|(property, key, value)| {
            format!("{property} is {key}{}", value.clone().unwrap_or_default())
        })
        .collect();
    if named.is_empty() {
        format!("librdkafka refused the settings: {error}")
    } else {
        format!(
            "librdkafka refused the settings: {error} ({})",
            named.join("; ")
        )
    }
}

#[cfg(test)]
mod refused_tests {
    use super::*;

    /// A CA file librdkafka cannot load is named by its krawl key and path.
    #[test]
    fn a_refused_property_is_named_by_its_krawl_key() {
        let cfg: KafkaConfig = toml::from_str(
            "bootstrap_servers = [\"b:9093\"]\nsecurity_protocol = \"SSL\"\n[tls]\nca_file = \"/etc/x/not-a-ca.pem\"\n",
        )
        .unwrap();
        let got = refused_settings(
            &cfg,
            "Client creation error: ssl.ca.location failed: no certificate or crl found",
        );
        assert!(
            got.ends_with("(ssl.ca.location is kafka.tls.ca_file = /etc/x/not-a-ca.pem)"),
            "{got}"
        );
        assert_eq!(
            refused_settings(&cfg, "Client creation error: something else"),
            "librdkafka refused the settings: Client creation error: something else"
        );
    }
}
