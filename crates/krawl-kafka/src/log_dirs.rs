//! Partition sizes on disk, from the Kafka `DescribeLogDirs` API.
//!
//! # Why this exists
//!
//! librdkafka (and so `rdkafka`) has no DescribeLogDirs API, so the admin
//! client cannot tell how many bytes a topic takes on disk. This module is a
//! minimal, separate Kafka client that asks each broker directly.
//!
//! # What it may send
//!
//! Exactly four API keys, all in [`crate::api_keys::READ_ONLY_APIS`]:
//! ApiVersions (18), SaslHandshake (17), SaslAuthenticate (36) and
//! DescribeLogDirs (35). Nothing else is ever written to a broker socket.
//!
//! # Wire format
//!
//! Everything a broker sends is decoded by [`krawl_wire`], which checks every
//! count and length against the bytes left before it is used: a hostile
//! broker costs its own entry in [`LogDirSizes::broker_errors`], never the
//! process. Requests are still encoded with the `kafka-protocol` crate: they
//! carry only our own data (topic names from Metadata, the client id), and
//! its encoders are generated from Kafka's schemas, so writing them by hand
//! would add code without removing a risk. Nothing from the wire reaches
//! `kafka-protocol`'s decoders (its `Decodable` is not imported here).
//!
//! # Invariants
//!
//! - **Read-only**: only the four APIs above; [`SENT_API_KEYS`] lists them and
//!   a test checks it against `READ_ONLY_APIS`.
//! - **Secrets stay secret**: the SASL password and the client key are
//!   [`SecretString`]s; `.expose()` is called only where their bytes go to the
//!   socket (PLAIN), into PBKDF2 (SCRAM, with the derived keys zeroized on
//!   drop) or into rustls (the client key). No error message contains them.
//! - **Bounded**: at most [`MAX_CONCURRENT_BROKERS`] brokers at a time, one
//!   connection each; requests carry at most [`TOPICS_PER_REQUEST`] topics and
//!   about [`PARTITIONS_PER_REQUEST`] partitions; a response larger than
//!   [`MAX_RESPONSE_BYTES`] is refused before it is read; each request is
//!   built when it is sent, at most [`PIPELINE_DEPTH`] are in flight on a
//!   connection (so a slow network costs a round trip per
//!   [`PIPELINE_DEPTH`] requests, not per request), and a response is
//!   decoded in place and visited, so memory grows only with the sizes table
//!   (one `Option<i64>` per requested partition, a [`PartitionTable`]) and at
//!   most [`MAX_LOG_DIR_ERRORS`] log-dir errors are kept per broker.
//! - **Counted once**: a response adds only the partitions of its own
//!   request. A broker that answers beyond what it was asked (noida-db
//!   answers every request with all its partitions) has its first such
//!   answer counted for every topic not yet counted, and is asked nothing
//!   more: before this rule every size was multiplied by the number of
//!   requests, and the work grew with the square of the topic count.
//! - **Time-bounded**: `timeout` applies to the TCP connect, to the TLS
//!   handshake and to each request/response round trip.
//! - **Failures are per broker**: a broker that cannot be reached, refuses the
//!   login or reports a log-dir error becomes an entry in
//!   [`LogDirSizes::broker_errors`]; the other brokers still count.
//! - TLS verifies the certificate chain always; only the host name check can
//!   be turned off (`verify_hostname = false`).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, DescribeLogDirsRequest, RequestHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest, TopicName,
};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use krawl_secrets::SecretString;
use krawl_wire::scram::{ScramClient, ScramHash};
use krawl_wire::{
    shown, ApiVersionsResponse, DescribeLogDirsResponse, LogDirPartition, LogDirsVisitor, Message,
    ResponseHeader, SaslAuthenticateResponse, SaslHandshakeResponse, WireError,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use zeroize::Zeroizing;

pub use crate::config::{SaslMechanism, SecurityProtocol};
use crate::partition_table::PartitionTable;

/// The only API keys this module sends.
pub const SENT_API_KEYS: &[i16] = &[
    ApiKey::ApiVersions as i16,
    ApiKey::SaslHandshake as i16,
    ApiKey::SaslAuthenticate as i16,
    ApiKey::DescribeLogDirs as i16,
];

/// Brokers queried at the same time.
pub const MAX_CONCURRENT_BROKERS: usize = 8;
/// Topics per DescribeLogDirs request.
pub const TOPICS_PER_REQUEST: usize = 1000;
/// Partitions per DescribeLogDirs request (a single larger topic goes alone).
pub const PARTITIONS_PER_REQUEST: usize = 10_000;
/// DescribeLogDirs requests in flight on one connection (answers come back in order).
pub const PIPELINE_DEPTH: usize = 4;
/// Largest response accepted (Kafka's default `socket.request.max.bytes`).
pub const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;
/// Log-dir errors kept per broker; the rest are counted in one more entry.
pub const MAX_LOG_DIR_ERRORS: usize = 16;

/// Newest versions this client speaks (all decoded by `krawl-wire` and
/// encoded by `kafka-protocol`).
const API_VERSIONS_VERSION: i16 = 3;
const SASL_HANDSHAKE_VERSION: i16 = 1;
const SASL_AUTHENTICATE_MAX: i16 = 2;
const DESCRIBE_LOG_DIRS_MIN: i16 = 1;
const DESCRIBE_LOG_DIRS_MAX: i16 = 4;

/// How to reach and authenticate to the brokers.
#[derive(Debug, Clone)]
pub struct LogDirsSettings {
    pub security_protocol: SecurityProtocol,
    /// Required when `security_protocol` uses SASL.
    pub sasl: Option<SaslSettings>,
    /// Used when `security_protocol` uses TLS; `None` means system roots,
    /// no client certificate, host name verified.
    pub tls: Option<TlsSettings>,
    pub client_id: String,
    /// Applies to the TCP connect, the TLS handshake and each request.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct SaslSettings {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: SecretString,
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM CA bundle; the system roots when `None`.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mTLS (needs `client_key_pem`).
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key for mTLS (PKCS#8, PKCS#1 or SEC1; not encrypted).
    pub client_key_pem: Option<SecretString>,
    /// When false the chain is still verified, only the name is not.
    pub verify_hostname: bool,
}

/// What [`partition_sizes`] found.
#[derive(Debug, Default)]
pub struct LogDirSizes {
    /// Bytes on disk per partition of the requested topics (addressed by the
    /// topic's index in the request and the partition id), summed over the
    /// replicas on all brokers that answered (future replicas of a log-dir
    /// move excluded). `None` when no answering broker reported it (e.g. its
    /// replicas are on a failed broker): unknown, not 0.
    pub sizes: PartitionTable<Option<i64>>,
    /// Brokers (or log dirs of a broker) that could not be described.
    pub broker_errors: Vec<(i32, LogDirsError)>,
}

/// A failure of the DescribeLogDirs client. `broker` is the broker id, or -1
/// for a failure that concerns no single broker (bad TLS files, missing SASL
/// settings). Messages never contain a password or a key.
#[derive(Debug, thiserror::Error)]
pub enum LogDirsError {
    #[error("{}cannot connect: {cause}", who(*broker))]
    Connect { broker: i32, cause: String },
    #[error("{}TLS: {cause}", who(*broker))]
    Tls { broker: i32, cause: String },
    #[error("{}authentication or authorization failed: {cause}", who(*broker))]
    Auth { broker: i32, cause: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("{}protocol error: {cause}", who(*broker))]
    Protocol { broker: i32, cause: String },
    #[error("{}no answer within the timeout", who(*broker))]
    Timeout { broker: i32 },
}

fn who(broker: i32) -> String {
    if broker < 0 {
        String::new()
    } else {
        format!("broker {broker}: ")
    }
}

/// A topic to describe: its name and partition count (partitions `0..count`).
///
/// DescribeLogDirs has no "all partitions of this topic" form: a request
/// names each partition, so the caller passes the counts from Metadata.
pub type TopicPartitionCount<'a> = (&'a str, i32);

/// Size in bytes per (topic, partition), summed over the replicas on all given
/// brokers.
///
/// `brokers` are `(id, host, port)` from Metadata; every one is asked, at most
/// [`MAX_CONCURRENT_BROKERS`] at a time. `topics` are `(name, partition count)`.
///
/// Returns `Err` only for a failure that concerns the whole call:
/// - `Unsupported("OAUTHBEARER")` for that SASL mechanism (not implemented);
/// - `Unsupported(..)` when at least one broker answered ApiVersions and none
///   advertised DescribeLogDirs v1 or later;
/// - `Tls`/`Auth` with broker -1 for unusable TLS files or missing SASL settings.
///
/// With no brokers or no topics nothing is contacted and the result is empty.
pub async fn partition_sizes(
    settings: &LogDirsSettings,
    brokers: &[(i32, String, u16)],
    topics: &[TopicPartitionCount<'_>],
) -> Result<LogDirSizes, LogDirsError> {
    let sasl = if settings.security_protocol.uses_sasl() {
        let sasl = settings.sasl.as_ref().ok_or_else(|| LogDirsError::Auth {
            broker: -1,
            cause: format!(
                "security protocol {} needs SASL settings",
                settings.security_protocol.as_str()
            ),
        })?;
        if sasl.mechanism == SaslMechanism::OauthBearer {
            return Err(LogDirsError::Unsupported("OAUTHBEARER".to_string()));
        }
        Some(sasl)
    } else {
        None
    };
    let tls = if settings.security_protocol.uses_tls() {
        Some(tls_connector(settings.tls.as_ref())?)
    } else {
        None
    };
    let mut out = LogDirSizes {
        sizes: PartitionTable::new(topics.iter().map(|(_, n)| *n), None),
        broker_errors: Vec::new(),
    };
    if brokers.is_empty() || topics.is_empty() {
        return Ok(out);
    }

    let ranges = request_ranges(topics);
    let wanted: HashMap<&str, usize> = topics
        .iter()
        .enumerate()
        .map(|(i, (t, _))| (*t, i))
        .collect();
    // One table for all brokers, filled as each response is visited: the only
    // memory that grows with the cluster (the brokers' futures share one task,
    // so the lock is never contended).
    let sizes = Mutex::new(std::mem::take(&mut out.sizes));
    let ctx = BrokerCtx {
        settings,
        sasl,
        tls: tls.as_ref(),
        topics,
        ranges: &ranges,
        wanted: &wanted,
        sizes: &sizes,
    };

    let mut answered = 0usize;
    let mut supported = 0usize;
    // Futures built up front (see extract.rs: keeps the whole extraction `Send`).
    let brokers: Vec<_> = brokers
        .iter()
        .map(|(id, host, port)| ctx.describe_broker(*id, host, *port).boxed())
        .collect();
    let mut results = futures::stream::iter(brokers).buffer_unordered(MAX_CONCURRENT_BROKERS);
    while let Some(outcome) = results.next().await {
        let BrokerOutcome {
            broker,
            answered_api_versions,
            advertises,
            errors,
        } = outcome;
        answered += usize::from(answered_api_versions);
        supported += usize::from(advertises);
        out.broker_errors
            .extend(errors.into_iter().map(|e| (broker, e)));
    }
    drop(results);
    out.sizes = sizes.into_inner().unwrap_or_else(|e| e.into_inner());
    if answered > 0 && supported == 0 {
        return Err(LogDirsError::Unsupported(
            "DescribeLogDirs (API key 35, v1 or later): no broker advertises it".to_string(),
        ));
    }
    out.broker_errors.sort_by_key(|(b, _)| *b);
    Ok(out)
}

/// How `topics` are cut into requests: consecutive ranges of at most
/// [`TOPICS_PER_REQUEST`] topics and about [`PARTITIONS_PER_REQUEST`]
/// partitions (a larger topic goes alone). Topics without partitions are in
/// a range but not in its request.
fn request_ranges(topics: &[TopicPartitionCount<'_>]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut partitions = 0usize;
    for (i, (_, count)) in topics.iter().enumerate() {
        let n = usize::try_from(*count).unwrap_or(0);
        if n > 0
            && partitions > 0
            && (i - start >= TOPICS_PER_REQUEST || partitions + n > PARTITIONS_PER_REQUEST)
        {
            ranges.push(start..i);
            start = i;
            partitions = 0;
        }
        partitions += n;
    }
    if partitions > 0 {
        ranges.push(start..topics.len());
    }
    ranges
}

/// The DescribeLogDirs request for these topics (built when it is sent).
fn request(topics: &[TopicPartitionCount<'_>]) -> DescribeLogDirsRequest {
    let topics = topics
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(name, count)| {
            DescribableLogDirTopic::default()
                .with_topic(TopicName(StrBytes::from_string((*name).to_string())))
                .with_partitions((0..*count).collect())
        })
        .collect();
    DescribeLogDirsRequest::default().with_topics(Some(topics))
}

struct BrokerCtx<'a> {
    settings: &'a LogDirsSettings,
    sasl: Option<&'a SaslSettings>,
    tls: Option<&'a tokio_rustls::TlsConnector>,
    topics: &'a [TopicPartitionCount<'a>],
    ranges: &'a [Range<usize>],
    /// Topic name → index in `topics`.
    wanted: &'a HashMap<&'a str, usize>,
    sizes: &'a Mutex<PartitionTable<Option<i64>>>,
}

struct BrokerOutcome {
    broker: i32,
    answered_api_versions: bool,
    advertises: bool,
    errors: Vec<LogDirsError>,
}

impl BrokerCtx<'_> {
    async fn describe_broker(&self, broker: i32, host: &str, port: u16) -> BrokerOutcome {
        let mut outcome = BrokerOutcome {
            broker,
            answered_api_versions: false,
            advertises: false,
            errors: Vec::new(),
        };
        let mut dir_errors = DirErrors::default();
        let result = self
            .run(broker, host, port, &mut outcome, &mut dir_errors)
            .await;
        outcome.errors = dir_errors.finish(broker);
        if let Err(e) = result {
            outcome.errors.push(e);
        }
        outcome
    }

    async fn run(
        &self,
        broker: i32,
        host: &str,
        port: u16,
        outcome: &mut BrokerOutcome,
        dir_errors: &mut DirErrors,
    ) -> Result<(), LogDirsError> {
        let mut conn = Conn::connect(self.settings, self.tls, broker, host, port).await?;
        let versions = conn.api_versions().await?;
        outcome.answered_api_versions = true;

        let Some(version) = versions.pick(
            ApiKey::DescribeLogDirs as i16,
            DESCRIBE_LOG_DIRS_MIN,
            DESCRIBE_LOG_DIRS_MAX,
        ) else {
            return Err(LogDirsError::Unsupported(format!(
                "broker {broker} does not advertise DescribeLogDirs (API key 35) v{DESCRIBE_LOG_DIRS_MIN} or later"
            )));
        };
        outcome.advertises = true;

        if let Some(sasl) = self.sasl {
            conn.authenticate(sasl, &versions).await?;
        }

        // Pipelined: up to PIPELINE_DEPTH requests in flight, answers read in order.
        let mut next = self.ranges.iter();
        let mut pending: VecDeque<(i32, Range<usize>)> = VecDeque::with_capacity(PIPELINE_DEPTH);
        loop {
            while pending.len() < PIPELINE_DEPTH {
                let Some(range) = next.next() else { break };
                let correlation_id = conn
                    .send(&request(&self.topics[range.clone()]), version)
                    .await?;
                pending.push_back((correlation_id, range.clone()));
            }
            let Some((correlation_id, range)) = pending.pop_front() else {
                return Ok(());
            };
            let body = conn
                .recv::<DescribeLogDirsRequest>(correlation_id, version)
                .await?;
            let response =
                DescribeLogDirsResponse::parse(&body, version).map_err(|e| conn.decode_error(e))?;
            if let Some(err) = ResponseError::try_from_code(response.error_code) {
                return Err(kafka_error(broker, "DescribeLogDirs", err, None));
            }
            // An answer beyond the request stands for every topic not yet counted.
            let mut beyond = Beyond {
                wanted: self.wanted,
                after: range.end,
                found: false,
            };
            response
                .visit(&mut beyond)
                .map_err(|e| conn.decode_error(e))?;
            let counted = if beyond.found {
                range.start..self.topics.len()
            } else {
                range
            };
            // Checked whole by `parse`: the visitor adds a response entirely or not at all.
            let mut sizes = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
            let mut visitor = Aggregate {
                broker,
                wanted: self.wanted,
                counted,
                sizes: &mut sizes,
                errors: dir_errors,
                dir_ok: false,
            };
            response
                .visit(&mut visitor)
                .map_err(|e| conn.decode_error(e))?;
            if beyond.found {
                tracing::debug!(
                    broker,
                    "DescribeLogDirs answered beyond its request; that answer counted for all remaining topics"
                );
                return Ok(());
            }
        }
    }
}

/// Whether a response names a requested topic after its own request's range.
struct Beyond<'a> {
    wanted: &'a HashMap<&'a str, usize>,
    after: usize,
    found: bool,
}

impl LogDirsVisitor for Beyond<'_> {
    fn log_dir(&mut self, _: i16, _: &str) {}

    fn partition(&mut self, p: LogDirPartition<'_>) {
        if !self.found {
            self.found = self.wanted.get(p.topic).is_some_and(|&t| t >= self.after);
        }
    }
}

/// Adds the sizes of one DescribeLogDirs response to the table: partitions
/// of the `counted` topics only, future replicas (a log-dir move in
/// progress) excluded, nothing from a log dir that reports an error.
struct Aggregate<'a> {
    broker: i32,
    wanted: &'a HashMap<&'a str, usize>,
    /// Indexes of the topics this response counts for.
    counted: Range<usize>,
    sizes: &'a mut PartitionTable<Option<i64>>,
    errors: &'a mut DirErrors,
    dir_ok: bool,
}

impl LogDirsVisitor for Aggregate<'_> {
    fn log_dir(&mut self, error_code: i16, path: &str) {
        self.dir_ok = error_code == 0;
        if let Some(err) = ResponseError::try_from_code(error_code) {
            self.errors
                .push(|| kafka_error(self.broker, &format!("log dir {}", shown(path)), err, None));
        }
    }

    fn partition(&mut self, p: LogDirPartition<'_>) {
        if !self.dir_ok || p.is_future_key {
            return;
        }
        let Some(&topic) = self.wanted.get(p.topic) else {
            return;
        };
        if !self.counted.contains(&topic) {
            return;
        }
        let Some(total) = self.sizes.get_mut(topic, p.partition_index) else {
            return;
        };
        // Saturating: a broker's claim of i64::MAX bytes must not overflow the sum.
        *total = Some(total.unwrap_or(0).saturating_add(p.size));
    }
}

/// A broker's log-dir errors: the first [`MAX_LOG_DIR_ERRORS`] kept, the
/// rest counted (a response can name millions of failed dirs).
#[derive(Default)]
struct DirErrors {
    kept: Vec<LogDirsError>,
    more: usize,
}

impl DirErrors {
    fn push(&mut self, error: impl FnOnce() -> LogDirsError) {
        if self.kept.len() < MAX_LOG_DIR_ERRORS {
            self.kept.push(error());
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self, broker: i32) -> Vec<LogDirsError> {
        if self.more > 0 {
            self.kept.push(LogDirsError::Protocol {
                broker,
                cause: format!("{} more log dirs reported errors", self.more),
            });
        }
        self.kept
    }
}

/// A Kafka error code as a [`LogDirsError`]; authorization failures are `Auth`.
fn kafka_error(broker: i32, what: &str, err: ResponseError, message: Option<&str>) -> LogDirsError {
    let detail = match message {
        Some(m) if !m.is_empty() => format!(" ({m})"),
        _ => String::new(),
    };
    let cause = format!("{what}: {err} (error code {}){detail}", err.code());
    match err {
        ResponseError::ClusterAuthorizationFailed => LogDirsError::Auth {
            broker,
            cause: format!("{cause}; DescribeLogDirs needs DESCRIBE on the cluster resource"),
        },
        ResponseError::SaslAuthenticationFailed
        | ResponseError::IllegalSaslState
        | ResponseError::UnsupportedSaslMechanism
        | ResponseError::TopicAuthorizationFailed => LogDirsError::Auth { broker, cause },
        _ => LogDirsError::Protocol { broker, cause },
    }
}

// ------------------------------------------------------------------------------------------------
// Connection and framing
// ------------------------------------------------------------------------------------------------

/// The requests this module can send: implemented for exactly the four
/// [`SENT_API_KEYS`], so sending anything else does not compile. The
/// response type (a `krawl-wire` decoder) gives the response header version.
trait Call: Encodable + HeaderVersion {
    const KEY: ApiKey;
    type Response: Message;
}

impl Call for ApiVersionsRequest {
    const KEY: ApiKey = ApiKey::ApiVersions;
    type Response = ApiVersionsResponse;
}

impl Call for SaslHandshakeRequest {
    const KEY: ApiKey = ApiKey::SaslHandshake;
    type Response = SaslHandshakeResponse<'static>;
}

impl Call for SaslAuthenticateRequest {
    const KEY: ApiKey = ApiKey::SaslAuthenticate;
    type Response = SaslAuthenticateResponse<'static>;
}

impl Call for DescribeLogDirsRequest {
    const KEY: ApiKey = ApiKey::DescribeLogDirs;
    type Response = DescribeLogDirsResponse<'static>;
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One broker connection: length-prefixed request/response, in order.
struct Conn {
    io: Box<dyn Io>,
    broker: i32,
    client_id: StrBytes,
    correlation_id: i32,
    timeout: Duration,
}

impl Conn {
    async fn connect(
        settings: &LogDirsSettings,
        tls: Option<&tokio_rustls::TlsConnector>,
        broker: i32,
        host: &str,
        port: u16,
    ) -> Result<Self, LogDirsError> {
        let t = settings.timeout;
        let tcp = timeout(t, TcpStream::connect((host, port)))
            .await
            .map_err(|_| LogDirsError::Timeout { broker })?
            .map_err(|e| LogDirsError::Connect {
                broker,
                cause: format!("{host}:{port}: {e}"),
            })?;
        // Latency only; a failure here changes nothing that matters.
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match tls {
            None => Box::new(tcp),
            Some(connector) => {
                let name =
                    ServerName::try_from(host.to_string()).map_err(|e| LogDirsError::Tls {
                        broker,
                        cause: format!("{host} is not a valid TLS server name: {e}"),
                    })?;
                let stream = timeout(t, connector.connect(name, tcp))
                    .await
                    .map_err(|_| LogDirsError::Timeout { broker })?
                    .map_err(|e| LogDirsError::Tls {
                        broker,
                        cause: format!("handshake with {host}:{port}: {e}"),
                    })?;
                Box::new(stream)
            }
        };
        Ok(Self {
            io,
            broker,
            client_id: StrBytes::from_string(settings.client_id.clone()),
            correlation_id: 0,
            timeout: t,
        })
    }

    fn protocol(&self, cause: String) -> LogDirsError {
        LogDirsError::Protocol {
            broker: self.broker,
            cause,
        }
    }

    /// A response that does not decode: the broker's protocol error. The
    /// message names the API, the version and the field.
    fn decode_error(&self, e: WireError) -> LogDirsError {
        self.protocol(e.to_string())
    }

    /// Sends `request` at `version`; returns the response body (after the
    /// response header), within the timeout. Decoding the body is the
    /// caller's, with the `krawl-wire` decoder of `R::Response`.
    async fn call<R: Call>(&mut self, request: &R, version: i16) -> Result<Bytes, LogDirsError> {
        let correlation_id = self.send(request, version).await?;
        self.recv::<R>(correlation_id, version).await
    }

    /// Writes `request` at `version` (within the timeout); returns its
    /// correlation id, for [`Self::recv`]. Several may be sent before their
    /// answers are read: a broker answers one connection's requests in order.
    async fn send<R: Call>(&mut self, request: &R, version: i16) -> Result<i32, LogDirsError> {
        let broker = self.broker;
        timeout(self.timeout, self.write_request(request, version))
            .await
            .map_err(|_| LogDirsError::Timeout { broker })?
    }

    /// Reads the answer to the request sent with `correlation_id` (the
    /// oldest one not yet read) within the timeout; returns its body.
    async fn recv<R: Call>(
        &mut self,
        correlation_id: i32,
        version: i16,
    ) -> Result<Bytes, LogDirsError> {
        let broker = self.broker;
        timeout(
            self.timeout,
            self.read_response::<R>(correlation_id, version),
        )
        .await
        .map_err(|_| LogDirsError::Timeout { broker })?
    }

    /// A transport error while speaking `key`: TLS 1.3 reports a refused
    /// client certificate after the handshake, on the first read, so rustls
    /// errors are classified as TLS, not transport.
    fn io_error(&self, key: i16, e: std::io::Error) -> LogDirsError {
        let cause = format!("{}: {e}", api(key));
        let broker = self.broker;
        if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
            LogDirsError::Tls { broker, cause }
        } else {
            LogDirsError::Connect { broker, cause }
        }
    }

    async fn write_request<R: Call>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<i32, LogDirsError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));

        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0); // length, filled in below
        header
            .encode(&mut buf, R::header_version(version))
            .and_then(|()| request.encode(&mut buf, version))
            .map_err(|e| {
                self.protocol(format!("encoding {} v{version}: {e}", api(R::KEY as i16)))
            })?;
        let len = i32::try_from(buf.len() - 4)
            .map_err(|_| self.protocol(format!("{} request too large", api(R::KEY as i16))))?;
        buf[..4].copy_from_slice(&len.to_be_bytes());

        let key = R::KEY as i16;
        if let Err(e) = self.io.write_all(&buf).await {
            return Err(self.io_error(key, e));
        }
        if let Err(e) = self.io.flush().await {
            return Err(self.io_error(key, e));
        }
        Ok(correlation_id)
    }

    async fn read_response<R: Call>(
        &mut self,
        correlation_id: i32,
        version: i16,
    ) -> Result<Bytes, LogDirsError> {
        let key = R::KEY as i16;
        let size = match self.io.read_i32().await {
            Ok(size) => size,
            Err(e) => return Err(self.io_error(key, e)),
        };
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if !(4..=MAX_RESPONSE_BYTES).contains(&size) {
            return Err(self.protocol(format!(
                "{} response length {size} is not plausible (is the listener's security protocol right?)",
                api(R::KEY as i16)
            )));
        }
        let mut frame = Vec::with_capacity(size.min(64 * 1024));
        if let Err(e) = (&mut self.io)
            .take(size as u64)
            .read_to_end(&mut frame)
            .await
        {
            return Err(self.io_error(key, e));
        }
        if frame.len() != size {
            return Err(LogDirsError::Connect {
                broker: self.broker,
                cause: format!("{}: connection closed mid-response", api(R::KEY as i16)),
            });
        }
        let (header, body) = ResponseHeader::split::<R::Response>(&frame, version)
            .map_err(|e| self.decode_error(e))?;
        if header.correlation_id != correlation_id {
            return Err(self.protocol(format!(
                "{} response has correlation id {}, expected {correlation_id}",
                api(R::KEY as i16),
                header.correlation_id
            )));
        }
        let header_len = frame.len() - body.len();
        Ok(Bytes::from(frame).slice(header_len..))
    }

    /// ApiVersions v3; a broker that does not know v3 answers in the v0
    /// format with UNSUPPORTED_VERSION and its ranges (KIP-511), which we use.
    async fn api_versions(&mut self) -> Result<ApiVersionsResponse, LogDirsError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("krawl"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let body = self.call(&request, API_VERSIONS_VERSION).await?;
        let (response, _version) = ApiVersionsResponse::decode_answer(&body, API_VERSIONS_VERSION)
            .map_err(|e| self.decode_error(e))?;
        if response.api_keys.is_empty() {
            if let Some(err) = ResponseError::try_from_code(response.error_code) {
                return Err(kafka_error(self.broker, "ApiVersions", err, None));
            }
        }
        Ok(response)
    }

    /// SaslHandshake v1, then the mechanism's exchange over SaslAuthenticate.
    async fn authenticate(
        &mut self,
        sasl: &SaslSettings,
        versions: &ApiVersionsResponse,
    ) -> Result<(), LogDirsError> {
        let broker = self.broker;
        let mech = sasl.mechanism.as_str();
        let auth_err = |cause: String| LogDirsError::Auth { broker, cause };
        let (Some(_), Some(auth_version)) = (
            versions.pick(
                ApiKey::SaslHandshake as i16,
                SASL_HANDSHAKE_VERSION,
                SASL_HANDSHAKE_VERSION,
            ),
            versions.pick(ApiKey::SaslAuthenticate as i16, 0, SASL_AUTHENTICATE_MAX),
        ) else {
            return Err(auth_err(
                "broker lacks SaslHandshake v1 / SaslAuthenticate (Kafka 1.0 or later needed)"
                    .to_string(),
            ));
        };

        let body = self
            .call(
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mech)),
                SASL_HANDSHAKE_VERSION,
            )
            .await?;
        let hs = SaslHandshakeResponse::decode(&body, SASL_HANDSHAKE_VERSION)
            .map_err(|e| self.decode_error(e))?;
        if let Some(err) = ResponseError::try_from_code(hs.error_code) {
            const SHOWN_MECHANISMS: usize = 16;
            let mut enabled: Vec<String> = hs
                .mechanisms
                .iter()
                .take(SHOWN_MECHANISMS)
                .map(shown)
                .collect();
            if hs.mechanisms.len() > SHOWN_MECHANISMS {
                enabled.push("…".to_string());
            }
            return Err(auth_err(format!(
                "SaslHandshake {mech}: {err}; the broker enables [{}]",
                enabled.join(", ")
            )));
        }

        match sasl.mechanism {
            SaslMechanism::Plain => {
                let password = sasl.password.expose();
                let mut msg =
                    Zeroizing::new(Vec::with_capacity(sasl.username.len() + password.len() + 2));
                msg.push(0);
                msg.extend_from_slice(sasl.username.as_bytes());
                msg.push(0);
                msg.extend_from_slice(password.as_bytes());
                self.sasl_authenticate(mech, Bytes::copy_from_slice(&msg), auth_version)
                    .await?;
            }
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let hash = if sasl.mechanism == SaslMechanism::ScramSha256 {
                    ScramHash::Sha256
                } else {
                    ScramHash::Sha512
                };
                let scram = ScramClient::with_random_nonce(hash, &sasl.username)
                    .map_err(|e| auth_err(format!("{mech}: {e}")))?;
                let server_first = self
                    .sasl_authenticate(mech, Bytes::from(scram.client_first()), auth_version)
                    .await?;
                let fin = scram
                    .client_final(sasl.password.expose(), &server_first)
                    .map_err(|e| auth_err(format!("{mech}: {e}")))?;
                let server_final = self
                    .sasl_authenticate(
                        mech,
                        Bytes::copy_from_slice(fin.message().as_bytes()),
                        auth_version,
                    )
                    .await?;
                fin.verify_server_final(&server_final)
                    .map_err(|e| auth_err(format!("{mech}: {e}")))?;
            }
            SaslMechanism::OauthBearer => {
                return Err(LogDirsError::Unsupported("OAUTHBEARER".to_string()))
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate round trip; returns the server's auth bytes.
    async fn sasl_authenticate(
        &mut self,
        mech: &str,
        auth_bytes: Bytes,
        version: i16,
    ) -> Result<Bytes, LogDirsError> {
        let body = self
            .call(
                &SaslAuthenticateRequest::default().with_auth_bytes(auth_bytes),
                version,
            )
            .await?;
        let response =
            SaslAuthenticateResponse::decode(&body, version).map_err(|e| self.decode_error(e))?;
        if let Some(err) = ResponseError::try_from_code(response.error_code) {
            let message = response.error_message.map(shown);
            return Err(LogDirsError::Auth {
                broker: self.broker,
                cause: match kafka_error(
                    self.broker,
                    &format!("SASL {mech}"),
                    err,
                    message.as_deref(),
                ) {
                    LogDirsError::Auth { cause, .. } | LogDirsError::Protocol { cause, .. } => {
                        cause
                    }
                    other => other.to_string(),
                },
            });
        }
        Ok(body.slice_ref(response.auth_bytes))
    }
}

fn api(key: i16) -> &'static str {
    crate::api_keys::api_name(key)
}

// ------------------------------------------------------------------------------------------------
// TLS
// ------------------------------------------------------------------------------------------------

fn tls_connector(tls: Option<&TlsSettings>) -> Result<tokio_rustls::TlsConnector, LogDirsError> {
    let err = |cause: String| LogDirsError::Tls { broker: -1, cause };
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let mut roots = RootCertStore::empty();
    match tls.and_then(|t| t.ca_file.as_ref()) {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| err(format!("reading CA file {}: {e}", path.display())))?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(err(format!(
                    "CA file {} holds no usable certificate",
                    path.display()
                )));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err(err(format!(
                    "no system CA certificates found ({} errors); set a CA file",
                    native.errors.len()
                )));
            }
        }
    }
    let roots = Arc::new(roots);

    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(format!("TLS setup: {e}")))?;
    let verify_hostname = tls.is_none_or(|t| t.verify_hostname);
    let builder = if verify_hostname {
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnlyVerifier {
                roots,
                algorithms: provider.signature_verification_algorithms,
            }))
    };

    let cert_file = tls.and_then(|t| t.client_cert_file.as_ref());
    let key_pem = tls.and_then(|t| t.client_key_pem.as_ref());
    let config = match (cert_file, key_pem) {
        (None, None) => builder.with_no_client_auth(),
        (Some(path), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    err(format!(
                        "reading client certificate {}: {e}",
                        path.display()
                    ))
                })?;
            if chain.is_empty() {
                return Err(err(format!(
                    "client certificate file {} holds no certificate",
                    path.display()
                )));
            }
            // The key error must not echo the key: name the problem only.
            let key = PrivateKeyDer::from_pem_slice(key.expose().as_bytes()).map_err(|_| {
                err("the client key is not an unencrypted PEM private key".to_string())
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| err(format!("client certificate and key: {e}")))?
        }
        _ => {
            return Err(err(
                "mTLS needs both a client certificate file and a client key".to_string(),
            ))
        }
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Verifies the server's chain to a trusted root (and its handshake
/// signatures) but not that the certificate names the host: what
/// `verify_hostname = false` asks for, and nothing more.
struct ChainOnlyVerifier {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for ChainOnlyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainOnlyVerifier").finish_non_exhaustive()
    }
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::net::TcpListener as StdListener;
    use std::os::unix::process::CommandExt as _;
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::ClientConfig;

    // -- Requests ------------------------------------------------------------------------------

    #[test]
    fn sends_only_read_only_apis() {
        assert_eq!(SENT_API_KEYS, &[18, 17, 36, 35]);
        for k in SENT_API_KEYS {
            assert!(crate::api_keys::READ_ONLY_APIS.contains(k), "{k}");
        }
    }

    #[test]
    fn requests_are_chunked() {
        let names: Vec<String> = (0..2500).map(|i| format!("t{i}")).collect();
        let topics: Vec<(&str, i32)> = names.iter().map(|n| (n.as_str(), 3)).collect();
        let ranges = request_ranges(&topics);
        assert_eq!(ranges, vec![0..1000, 1000..2000, 2000..2500]);
        let r = request(&topics[ranges[0].clone()]);
        assert_eq!(r.topics.as_ref().unwrap().len(), 1000);
        assert_eq!(r.topics.as_ref().unwrap()[0].partitions, vec![0, 1, 2]);
        // By partitions: 4,000-partition topics go 2 per request; a huge one alone; a topic
        // without partitions is in a range but not in its request.
        let topics = [
            ("a", 4000),
            ("b", 4000),
            ("c", 4000),
            ("huge", 20_000),
            ("empty", 0),
        ];
        let ranges = request_ranges(&topics);
        assert_eq!(ranges, vec![0..2, 2..3, 3..5]);
        let last = request(&topics[3..5]);
        assert_eq!(last.topics.as_ref().unwrap().len(), 1);
        assert!(request_ranges(&[("empty", 0)]).is_empty());
    }

    // -- Aggregation ---------------------------------------------------------------------------

    /// What the visitor adds: requested partitions of healthy log dirs, no future replicas,
    /// sums that saturate instead of overflowing, and a bounded list of log-dir errors.
    #[test]
    fn aggregate_counts_only_what_was_asked() {
        // Topics 0 ("before") and 2 ("after") exist but are outside this response's range.
        let wanted: HashMap<&str, usize> = HashMap::from([("before", 0), ("t", 1), ("after", 2)]);
        let mut sizes = PartitionTable::new([1, 2, 1], None);
        let mut errors = DirErrors::default();
        let mut v = Aggregate {
            broker: 4,
            wanted: &wanted,
            counted: 1..2,
            sizes: &mut sizes,
            errors: &mut errors,
            dir_ok: false,
        };
        let p = |topic, partition_index, size, is_future_key| LogDirPartition {
            topic,
            partition_index,
            size,
            is_future_key,
        };
        v.log_dir(0, "/a");
        for part in [
            p("t", 0, i64::MAX, false),
            p("t", 0, 5, false),
            p("t", 1, 7, false),
            p("t", 1, 1000, true),   // future replica
            p("t", 2, 1000, false),  // not requested
            p("t", -1, 1000, false), // not a partition
            p("other", 0, 1000, false),
            p("before", 0, 1000, false), // not in this response's range
            p("after", 0, 1000, false),
        ] {
            v.partition(part);
        }
        for i in 0..100 {
            v.log_dir(56, &format!("/broken{i}\n"));
            v.partition(p("t", 1, 1000, false));
        }
        assert_eq!(sizes.values(), &[None, Some(i64::MAX), Some(7), None]);
        let errors = errors.finish(4);
        assert_eq!(errors.len(), MAX_LOG_DIR_ERRORS + 1);
        assert!(
            matches!(&errors[0], LogDirsError::Protocol { broker: 4, cause }
                if cause.starts_with("log dir /broken0\\n: ")),
            "{}",
            errors[0]
        );
        assert_eq!(
            errors[MAX_LOG_DIR_ERRORS].to_string(),
            "broker 4: protocol error: 84 more log dirs reported errors"
        );
    }

    // -- Brokers -------------------------------------------------------------------------------

    /// A free port never handed out before in this process (see krawl_tests::free_port: two
    /// bind(0) calls may get the same port, and these tests start servers concurrently).
    fn free_port() -> u16 {
        static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
        loop {
            let l = StdListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
            if !given.contains(&port) {
                given.push(port);
                return port;
            }
        }
    }

    /// A process group started by the test, killed (by its id) on drop.
    struct Proc(Child);

    impl Drop for Proc {
        fn drop(&mut self) {
            if let Ok(pgid) = i32::try_from(self.0.id()) {
                // SAFETY: kill(2) on the process group this test created.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
            let _ = self.0.wait();
        }
    }

    fn spawn(cmd: &mut Command, port: u16) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        let proc = Proc(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{cmd:?} did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        proc
    }

    struct Noida {
        port: u16,
        _proc: Proc,
        _dir: tempfile::TempDir,
    }

    fn noida() -> Noida {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let proc = spawn(
            Command::new(std::env::var("KRAWL_NOIDA_BIN").unwrap_or("noida-db".into()))
                .args(["start", "--only", "kafka", "--kafka-port"])
                .arg(port.to_string())
                .arg("--data-dir")
                .arg(dir.path().join("data")),
            port,
        );
        Noida {
            port,
            _proc: proc,
            _dir: dir,
        }
    }

    const NOIDA_NODE_ID: i32 = 1;

    /// Creates `topic` with `counts.len()` partitions and `counts[p]` messages of
    /// 100 bytes in partition `p`.
    async fn seed(port: u16, topic: &str, counts: &[i64]) {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", format!("127.0.0.1:{port}"));
        let admin: AdminClient<DefaultClientContext> = cfg.create().unwrap();
        let partitions = i32::try_from(counts.len()).unwrap();
        let res = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .unwrap();
        assert!(res.iter().all(Result::is_ok), "{res:?}");
        let producer: FutureProducer = cfg
            .clone()
            .set("linger.ms", "0")
            .set("message.timeout.ms", "20000")
            .create()
            .unwrap();
        let payload = "x".repeat(100);
        for (p, &n) in counts.iter().enumerate() {
            for i in 0..n {
                let key = format!("k{i}");
                producer
                    .send(
                        FutureRecord::to(topic)
                            .partition(i32::try_from(p).unwrap())
                            .key(&key)
                            .payload(&payload),
                        Duration::from_secs(20),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .unwrap();
            }
        }
    }

    fn plaintext() -> LogDirsSettings {
        LogDirsSettings {
            security_protocol: SecurityProtocol::Plaintext,
            sasl: None,
            tls: None,
            client_id: "krawl-test".into(),
            timeout: Duration::from_secs(10),
        }
    }

    fn topics<'a>(list: &[(&'a str, i32)]) -> Vec<(&'a str, i32)> {
        list.to_vec()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sizes_from_noida_plaintext_and_sasl_plain() {
        let n = noida();
        seed(n.port, "sized", &[5, 20, 0]).await;
        let brokers = [(NOIDA_NODE_ID, "127.0.0.1".to_string(), n.port)];
        let want = topics(&[("sized", 3), ("missing-topic", 2)]);

        let got = partition_sizes(&plaintext(), &brokers, &want)
            .await
            .unwrap();
        eprintln!("noida sizes: {:?}", got.sizes);
        assert!(got.broker_errors.is_empty(), "{:?}", got.broker_errors);
        let size = |p: i32| got.sizes.get(0, p).flatten();
        assert!(size(0).unwrap() > 0);
        assert!(size(1).unwrap() > size(0).unwrap());
        assert_eq!(size(2), Some(0));
        assert_eq!(got.sizes.get(1, 0), Some(None), "missing-topic");

        // SASL_PLAINTEXT with PLAIN (noida accepts any password).
        let sasl = LogDirsSettings {
            security_protocol: SecurityProtocol::SaslPlaintext,
            sasl: Some(SaslSettings {
                mechanism: SaslMechanism::Plain,
                username: "alice".into(),
                password: SecretString::new("s3cret-pw"),
            }),
            ..plaintext()
        };
        let got_sasl = partition_sizes(&sasl, &brokers, &want).await.unwrap();
        assert!(
            got_sasl.broker_errors.is_empty(),
            "{:?}",
            got_sasl.broker_errors
        );
        assert_eq!(got_sasl.sizes, got.sizes);

        // noida has no SCRAM: a clear Auth error naming the enabled mechanisms,
        // without the password.
        let scram = LogDirsSettings {
            sasl: Some(SaslSettings {
                mechanism: SaslMechanism::ScramSha256,
                ..sasl.sasl.clone().unwrap()
            }),
            ..sasl.clone()
        };
        let got = partition_sizes(&scram, &brokers, &want).await.unwrap();
        assert!(got.sizes.values().iter().all(Option::is_none));
        let [(NOIDA_NODE_ID, LogDirsError::Auth { cause, .. })] = &got.broker_errors[..] else {
            panic!("{:?}", got.broker_errors)
        };
        eprintln!("noida SCRAM: {cause}");
        assert!(
            cause.contains("SCRAM-SHA-256") && !cause.contains("s3cret"),
            "{cause}"
        );

        // OAUTHBEARER is refused before anything is contacted.
        let oauth = LogDirsSettings {
            sasl: Some(SaslSettings {
                mechanism: SaslMechanism::OauthBearer,
                ..sasl.sasl.clone().unwrap()
            }),
            ..sasl
        };
        assert!(matches!(
            partition_sizes(&oauth, &brokers, &want).await,
            Err(LogDirsError::Unsupported(m)) if m == "OAUTHBEARER"
        ));
    }

    /// noida-db answers every DescribeLogDirs request with all its partitions. Split over
    /// several requests, each partition is still counted once (it was counted once per request,
    /// a size 2× too large here and 50× on the 50,000-topic benchmark), and the broker is asked
    /// once, not once per request.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broker_answering_beyond_the_request_is_counted_once() {
        let n = noida();
        seed(n.port, "counted-once", &[7, 3]).await;
        let brokers = [(NOIDA_NODE_ID, "127.0.0.1".to_string(), n.port)];
        let alone = partition_sizes(&plaintext(), &brokers, &[("counted-once", 2)])
            .await
            .unwrap();
        let (a0, a1) = (
            alone.sizes.get(0, 0).flatten(),
            alone.sizes.get(0, 1).flatten(),
        );
        assert!(a0.unwrap() > a1.unwrap(), "{alone:?}");

        // The real topic sorts into the second request (TOPICS_PER_REQUEST names before it).
        let names: Vec<String> = (0..TOPICS_PER_REQUEST + 10)
            .map(|i| format!("absent-{i:05}"))
            .collect();
        let mut want: Vec<(&str, i32)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        want.insert(TOPICS_PER_REQUEST + 5, ("counted-once", 2));
        assert_eq!(request_ranges(&want).len(), 2);
        let got = partition_sizes(&plaintext(), &brokers, &want)
            .await
            .unwrap();
        assert!(got.broker_errors.is_empty(), "{:?}", got.broker_errors);
        let t = TOPICS_PER_REQUEST + 5;
        assert_eq!(got.sizes.get(t, 0).flatten(), a0);
        assert_eq!(got.sizes.get(t, 1).flatten(), a1);
        assert!(got.sizes.get(0, 0).unwrap().is_none());
    }

    /// A broker that accepts connections and never answers.
    async fn silent_broker() -> (u16, tokio::task::JoinHandle<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        (port, task)
    }

    /// A broker that answers ApiVersions v3 the way an old broker does: the v0
    /// format, UNSUPPORTED_VERSION, and its ranges, here without key 35.
    async fn old_broker() -> (u16, tokio::task::JoinHandle<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let len = s.read_i32().await.unwrap();
                    let mut req = vec![0u8; usize::try_from(len).unwrap()];
                    s.read_exact(&mut req).await.unwrap();
                    assert_eq!(i16::from_be_bytes([req[0], req[1]]), 18, "only ApiVersions");
                    let corr = &req[4..8];
                    let keys: &[(i16, i16, i16)] = &[(3, 0, 9), (17, 0, 1), (18, 0, 2), (36, 0, 1)];
                    let mut body = Vec::new();
                    body.extend_from_slice(corr);
                    body.extend_from_slice(&35i16.to_be_bytes());
                    body.extend_from_slice(&i32::try_from(keys.len()).unwrap().to_be_bytes());
                    for (k, lo, hi) in keys {
                        for v in [k, lo, hi] {
                            body.extend_from_slice(&v.to_be_bytes());
                        }
                    }
                    let mut frame = i32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
                    frame.extend(body);
                    s.write_all(&frame).await.unwrap();
                    let _ = s.read_i32().await; // hold until the client closes
                });
            }
        });
        (port, task)
    }

    #[tokio::test]
    async fn unreachable_and_silent_brokers_are_broker_errors() {
        let refused = free_port();
        let (silent, task) = silent_broker().await;
        let settings = LogDirsSettings {
            timeout: Duration::from_secs(1),
            ..plaintext()
        };
        let brokers = [
            (1, "127.0.0.1".to_string(), refused),
            (2, "127.0.0.1".to_string(), silent),
        ];
        let start = Instant::now();
        let got = partition_sizes(&settings, &brokers, &topics(&[("t", 1)]))
            .await
            .unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert!(got.sizes.values().iter().all(Option::is_none));
        let errs: Vec<String> = got
            .broker_errors
            .iter()
            .map(|(_, e)| e.to_string())
            .collect();
        eprintln!("{errs:?}");
        assert!(matches!(
            got.broker_errors[0],
            (1, LogDirsError::Connect { broker: 1, .. })
        ));
        assert!(matches!(
            got.broker_errors[1],
            (2, LogDirsError::Timeout { broker: 2 })
        ));
        task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn broker_without_describe_log_dirs() {
        let (old, task) = old_broker().await;
        let old_only = [(7, "127.0.0.1".to_string(), old)];
        let e = partition_sizes(&plaintext(), &old_only, &topics(&[("t", 1)]))
            .await
            .unwrap_err();
        assert!(matches!(e, LogDirsError::Unsupported(_)), "{e}");
        eprintln!("{e}");

        // Mixed with a broker that has it: the old one is a broker error.
        let n = noida();
        seed(n.port, "mixed", &[3]).await;
        let brokers = [
            (NOIDA_NODE_ID, "127.0.0.1".to_string(), n.port),
            (7, "127.0.0.1".to_string(), old),
        ];
        let got = partition_sizes(&plaintext(), &brokers, &topics(&[("mixed", 1)]))
            .await
            .unwrap();
        assert!(got.sizes.get(0, 0).flatten().unwrap() > 0);
        assert!(
            matches!(&got.broker_errors[..], [(7, LogDirsError::Unsupported(_))]),
            "{:?}",
            got.broker_errors
        );
        task.abort();
    }

    // -- Hostile brokers -----------------------------------------------------------------------

    /// What a hostile broker answers.
    #[derive(Clone, Copy, Debug)]
    enum Hostile {
        /// ApiVersions v3 whose compact `api_keys` count claims 4,294,967,294 entries.
        ApiVersionsHugeCount,
        /// The KIP-511 fallback (v0 format, UNSUPPORTED_VERSION) with a legacy count of 2^31 - 1.
        ApiVersionsFallbackHugeCount,
        /// A sane ApiVersions (DescribeLogDirs up to `max`), then a DescribeLogDirs answer whose
        /// partition count claims 4,294,967,294 (flexible) or 2^31 - 1 (v1) entries.
        LogDirsHugeCount { max: i16 },
        /// A sane ApiVersions, then a DescribeLogDirs v4 answer with a whole partition of a
        /// requested topic, cut short after it (in the log dir's `total_bytes`).
        LogDirsTruncated,
    }

    /// A broker that answers every request from a script written to attack the decoder: the
    /// bytes are built by hand here, as a hostile peer would send them.
    async fn hostile_broker(mode: Hostile) -> (u16, tokio::task::JoinHandle<()>) {
        fn uvarint(out: &mut Vec<u8>, mut v: u32) {
            while v >= 0x80 {
                out.push((v as u8) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }
        /// A well-formed ApiVersions v3 body advertising DescribeLogDirs v1..=`max`.
        fn api_versions_v3(max: i16) -> Vec<u8> {
            let keys: &[(i16, i16, i16)] = &[(17, 0, 1), (18, 0, 3), (35, 1, max), (36, 0, 2)];
            let mut b = 0i16.to_be_bytes().to_vec();
            uvarint(&mut b, u32::try_from(keys.len() + 1).unwrap());
            for (k, lo, hi) in keys {
                for v in [k, lo, hi] {
                    b.extend_from_slice(&v.to_be_bytes());
                }
                b.push(0); // no tagged fields
            }
            b.extend_from_slice(&0i32.to_be_bytes()); // throttle
            b.push(0); // no tagged fields
            b
        }
        fn answer(mode: Hostile, key: i16, version: i16) -> Vec<u8> {
            let mut b = Vec::new();
            match (mode, key) {
                (Hostile::ApiVersionsHugeCount, 18) => {
                    b.extend_from_slice(&0i16.to_be_bytes());
                    uvarint(&mut b, u32::MAX);
                    b.extend_from_slice(&[0; 10]);
                }
                (Hostile::ApiVersionsFallbackHugeCount, 18) => {
                    b.extend_from_slice(&35i16.to_be_bytes());
                    b.extend_from_slice(&i32::MAX.to_be_bytes());
                    b.extend_from_slice(&[0; 10]);
                }
                (Hostile::LogDirsHugeCount { max }, 18) => b = api_versions_v3(max),
                (Hostile::LogDirsTruncated, 18) => b = api_versions_v3(4),
                (Hostile::LogDirsHugeCount { .. }, 35) if version >= 2 => {
                    b.push(0); // response header v1: no tagged fields
                    b.extend_from_slice(&0i32.to_be_bytes()); // throttle
                    if version >= 3 {
                        b.extend_from_slice(&0i16.to_be_bytes());
                    }
                    uvarint(&mut b, 2); // one log dir
                    b.extend_from_slice(&0i16.to_be_bytes());
                    uvarint(&mut b, 3);
                    b.extend_from_slice(b"/d");
                    uvarint(&mut b, 2); // one topic
                    uvarint(&mut b, 2);
                    b.extend_from_slice(b"t");
                    uvarint(&mut b, u32::MAX); // partitions
                    b.extend_from_slice(&[0; 10]);
                }
                (Hostile::LogDirsHugeCount { .. }, 35) => {
                    b.extend_from_slice(&0i32.to_be_bytes()); // throttle
                    b.extend_from_slice(&1i32.to_be_bytes()); // one log dir
                    b.extend_from_slice(&0i16.to_be_bytes());
                    b.extend_from_slice(&2i16.to_be_bytes());
                    b.extend_from_slice(b"/d");
                    b.extend_from_slice(&1i32.to_be_bytes()); // one topic
                    b.extend_from_slice(&1i16.to_be_bytes());
                    b.extend_from_slice(b"t");
                    b.extend_from_slice(&i32::MAX.to_be_bytes()); // partitions
                    b.extend_from_slice(&[0; 10]);
                }
                (Hostile::LogDirsTruncated, 35) => {
                    b.push(0); // response header v1: no tagged fields
                    b.extend_from_slice(&0i32.to_be_bytes()); // throttle
                    b.extend_from_slice(&0i16.to_be_bytes()); // error code (v3+)
                    uvarint(&mut b, 2);
                    b.extend_from_slice(&0i16.to_be_bytes());
                    uvarint(&mut b, 3);
                    b.extend_from_slice(b"/d");
                    uvarint(&mut b, 2); // one topic, a requested one
                    uvarint(&mut b, 6);
                    b.extend_from_slice(b"sized");
                    uvarint(&mut b, 2); // one whole partition: 100 bytes in sized-0
                    b.extend_from_slice(&0i32.to_be_bytes());
                    b.extend_from_slice(&100i64.to_be_bytes());
                    b.extend_from_slice(&0i64.to_be_bytes());
                    b.push(0);
                    b.push(0);
                    b.push(0); // end of the topic
                    b.extend_from_slice(&[0, 0, 0]); // total_bytes (v4), cut short
                }
                _ => panic!("{mode:?}: unexpected request key {key} v{version}"),
            }
            b
        }
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    while let Ok(len) = s.read_i32().await {
                        let mut req = vec![0u8; usize::try_from(len).unwrap()];
                        s.read_exact(&mut req).await.unwrap();
                        let key = i16::from_be_bytes([req[0], req[1]]);
                        let version = i16::from_be_bytes([req[2], req[3]]);
                        let mut body = req[4..8].to_vec(); // correlation id
                        body.extend(answer(mode, key, version));
                        let mut frame = i32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
                        frame.extend(body);
                        if s.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, task)
    }

    /// A broker that sends huge array counts or a cut-off body costs its own entry in
    /// `broker_errors` (a protocol error naming the broker and the API), never the process; the
    /// real broker in the same call still counts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hostile_brokers_are_protocol_errors() {
        let n = noida();
        seed(n.port, "sized", &[3]).await;
        let want = topics(&[("sized", 1)]);
        let noida_only = [(NOIDA_NODE_ID, "127.0.0.1".to_string(), n.port)];
        let honest = partition_sizes(&plaintext(), &noida_only, &want)
            .await
            .unwrap();
        assert!(honest.sizes.get(0, 0).flatten().unwrap() > 0, "{honest:?}");
        let cases = [
            (11, Hostile::ApiVersionsHugeCount, "ApiVersions"),
            (12, Hostile::ApiVersionsFallbackHugeCount, "ApiVersions"),
            (13, Hostile::LogDirsHugeCount { max: 4 }, "DescribeLogDirs"),
            (14, Hostile::LogDirsHugeCount { max: 1 }, "DescribeLogDirs"),
            (15, Hostile::LogDirsTruncated, "DescribeLogDirs"),
        ];
        let mut brokers = vec![(NOIDA_NODE_ID, "127.0.0.1".to_string(), n.port)];
        let mut tasks = Vec::new();
        for (id, mode, _) in cases {
            let (port, task) = hostile_broker(mode).await;
            brokers.push((id, "127.0.0.1".to_string(), port));
            tasks.push(task);
        }
        let got = partition_sizes(&plaintext(), &brokers, &want)
            .await
            .unwrap();
        // The real broker still counts; nothing of a refused response does (the cut one
        // carries 100 bytes for sized-0 before its end).
        assert_eq!(got.sizes, honest.sizes);
        assert_eq!(
            got.broker_errors.len(),
            cases.len(),
            "{:?}",
            got.broker_errors
        );
        for ((id, mode, api), (broker, e)) in cases.iter().zip(&got.broker_errors) {
            let shown = e.to_string();
            eprintln!("{mode:?}: {shown}");
            assert_eq!(broker, id, "{shown}");
            assert!(
                matches!(e, LogDirsError::Protocol { broker, .. } if broker == id),
                "{mode:?}: {shown}"
            );
            assert!(
                shown.starts_with(&format!("broker {id}: protocol error: {api} v")),
                "{mode:?}: {shown}"
            );
        }
        for t in tasks {
            t.abort();
        }
    }

    // -- TLS (stunnel in front of noida) -------------------------------------------------------

    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
        fn read(&self, name: &str) -> String {
            std::fs::read_to_string(self.path(name)).unwrap()
        }
    }

    /// CA, a server certificate for IP 127.0.0.1 only (not "localhost"), a
    /// client certificate, and an unrelated CA.
    fn pki() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        // Distinct names: OpenSSL (stunnel) takes a leaf named like its issuer for self-signed.
        let dn = |cn: &str| {
            let mut dn = rcgen::DistinguishedName::new();
            dn.push(rcgen::DnType::CommonName, cn);
            dn
        };
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
        let ca = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name = dn(&format!("krawl {name}"));
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let key = KeyPair::generate().unwrap();
            let cert = p.self_signed(&key).unwrap();
            write(&format!("{name}.pem"), cert.pem());
            (cert, key)
        };
        let (ca_cert, ca_key) = ca("ca");
        ca("wrong-ca");
        for (name, sans, eku) in [
            (
                "server",
                vec!["127.0.0.1".to_string()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            ("client", vec![], ExtendedKeyUsagePurpose::ClientAuth),
        ] {
            let mut p = CertificateParams::new(sans).unwrap();
            p.distinguished_name = dn(&format!("krawl {name}"));
            p.is_ca = IsCa::ExplicitNoCa;
            p.extended_key_usages = vec![eku];
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        Pki { dir }
    }

    /// stunnel on `port` forwarding to noida; with `mtls`, client certificates
    /// signed by the CA are required.
    fn stunnel(pki: &Pki, port: u16, noida_port: u16, mtls: bool) -> Proc {
        let mut conf = format!(
            "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{noida_port}\ncert = {}\nkey = {}\n",
            pki.path("server.pem").display(),
            pki.path("server.key").display()
        );
        if mtls {
            conf.push_str(&format!(
                "CAfile = {}\nverify = 2\n",
                pki.path("ca.pem").display()
            ));
        }
        let conf_path = pki.path(&format!("stunnel-{port}.conf"));
        std::fs::write(&conf_path, conf).unwrap();
        spawn(Command::new("stunnel4").arg(conf_path), port)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_and_mtls_through_stunnel() {
        let n = noida();
        seed(n.port, "tls", &[4, 0]).await;
        let pki = pki();
        let (tls_port, mtls_port) = (free_port(), free_port());
        let _tls = stunnel(&pki, tls_port, n.port, false);
        let _mtls = stunnel(&pki, mtls_port, n.port, true);
        let want = &topics(&[("tls", 2)]);
        let plain = partition_sizes(
            &plaintext(),
            &[(NOIDA_NODE_ID, "127.0.0.1".into(), n.port)],
            want,
        )
        .await
        .unwrap();
        assert!(plain.sizes.get(0, 0).flatten().unwrap() > 0);

        let ssl = |tls: TlsSettings| LogDirsSettings {
            security_protocol: SecurityProtocol::Ssl,
            tls: Some(tls),
            timeout: Duration::from_secs(5),
            ..plaintext()
        };
        let ca = TlsSettings {
            ca_file: Some(pki.path("ca.pem")),
            client_cert_file: None,
            client_key_pem: None,
            verify_hostname: true,
        };
        let run = |settings: LogDirsSettings, host: &'static str, port: u16| async move {
            partition_sizes(&settings, &[(NOIDA_NODE_ID, host.to_string(), port)], want).await
        };

        // Name matches (IP SAN): same sizes as plaintext.
        let got = run(ssl(ca.clone()), "127.0.0.1", tls_port).await.unwrap();
        assert!(got.broker_errors.is_empty(), "{:?}", got.broker_errors);
        assert_eq!(got.sizes, plain.sizes);

        // "localhost" is not in the certificate: refused, unless the name check is off.
        let got = run(ssl(ca.clone()), "localhost", tls_port).await.unwrap();
        let [(_, LogDirsError::Tls { cause, .. })] = &got.broker_errors[..] else {
            panic!("{:?}", got.broker_errors)
        };
        eprintln!("wrong name: {cause}");
        let no_name = TlsSettings {
            verify_hostname: false,
            ..ca.clone()
        };
        let got = run(ssl(no_name.clone()), "localhost", tls_port)
            .await
            .unwrap();
        assert!(got.broker_errors.is_empty(), "{:?}", got.broker_errors);
        assert_eq!(got.sizes, plain.sizes);

        // Without the name check the chain is still verified.
        let wrong_ca = TlsSettings {
            ca_file: Some(pki.path("wrong-ca.pem")),
            ..no_name
        };
        let got = run(ssl(wrong_ca), "localhost", tls_port).await.unwrap();
        let [(_, LogDirsError::Tls { cause, .. })] = &got.broker_errors[..] else {
            panic!("{:?}", got.broker_errors)
        };
        eprintln!("wrong CA, no name check: {cause}");

        // mTLS: with the client certificate it works; without, the broker hangs up.
        let with_cert = TlsSettings {
            client_cert_file: Some(pki.path("client.pem")),
            client_key_pem: Some(SecretString::new(pki.read("client.key"))),
            ..ca.clone()
        };
        let got = run(ssl(with_cert), "127.0.0.1", mtls_port).await.unwrap();
        assert!(got.broker_errors.is_empty(), "{:?}", got.broker_errors);
        assert_eq!(got.sizes, plain.sizes);
        let got = run(ssl(ca.clone()), "127.0.0.1", mtls_port).await.unwrap();
        assert!(got.sizes.values().iter().all(Option::is_none));
        assert!(
            matches!(&got.broker_errors[..], [(_, LogDirsError::Tls { .. })]),
            "{:?}",
            got.broker_errors
        );
        eprintln!("mTLS without certificate: {}", got.broker_errors[0].1);

        // SASL_SSL with PLAIN through the same tunnel.
        let sasl_ssl = LogDirsSettings {
            security_protocol: SecurityProtocol::SaslSsl,
            sasl: Some(SaslSettings {
                mechanism: SaslMechanism::Plain,
                username: "u".into(),
                password: SecretString::new("p"),
            }),
            ..ssl(ca.clone())
        };
        let got = run(sasl_ssl, "127.0.0.1", tls_port).await.unwrap();
        assert!(got.broker_errors.is_empty(), "{:?}", got.broker_errors);
        assert_eq!(got.sizes, plain.sizes);

        // Unusable TLS files fail the whole call and never echo the key.
        let bad_key = TlsSettings {
            client_cert_file: Some(pki.path("client.pem")),
            client_key_pem: Some(SecretString::new("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n")),
            ..ca
        };
        let e = run(ssl(bad_key), "127.0.0.1", tls_port).await.unwrap_err();
        assert!(matches!(e, LogDirsError::Tls { broker: -1, .. }), "{e}");
        assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
        eprintln!("bad key: {e}");
    }
}
