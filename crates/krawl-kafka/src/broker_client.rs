//! krawl's own small Kafka client: one connection to one broker, over tokio
//! and rustls, for the read-only calls where librdkafka costs too much or has
//! no API.
//!
//! # Why this exists
//!
//! librdkafka has no DescribeLogDirs (`log_dirs.rs`), and on a big cluster
//! its Metadata and ListOffsets are where an extraction spends its memory and
//! CPU: it keeps a copy of the whole cluster's metadata in its cache and
//! hands out another (106 MB at 100,000 topics), and merges every ListOffsets
//! answer by topic name. `metadata.rs` and `offsets.rs` read the same answers
//! here, walked straight into the extraction's index.
//!
//! # What it may send
//!
//! Exactly the [`SENT_API_KEYS`], all in [`crate::api_keys::READ_ONLY_APIS`]:
//! ApiVersions, SaslHandshake, SaslAuthenticate, DescribeLogDirs, Metadata,
//! ListOffsets and OffsetFetch. The private `Call` trait is implemented for those requests
//! alone, so nothing else can be written to a broker socket.
//!
//! # Wire format
//!
//! Everything a broker sends is decoded by [`krawl_wire`], which checks every
//! count and length against the bytes left before it is used: a hostile
//! broker costs an error naming it, never the process. Requests are encoded
//! with the `kafka-protocol` crate: they carry only our own data (topic names
//! from Metadata, the client id), and its encoders are generated from Kafka's
//! schemas. Nothing from the wire reaches `kafka-protocol`'s decoders.
//!
//! # Invariants
//!
//! - **Secrets stay secret**: the SASL password and the client key are
//!   [`SecretString`]s; `.expose()` is called only where their bytes go to the
//!   socket (PLAIN), into PBKDF2 (SCRAM, with the derived keys zeroized on
//!   drop) or into rustls (the client key). No error message contains them.
//! - **Bounded**: a response larger than [`MAX_RESPONSE_BYTES`] is refused
//!   before it is read; callers keep a bounded number of requests in flight
//!   on a connection ([`PIPELINE_DEPTH`]; ListOffsets, whose answers are
//!   small, `offsets::REQUESTS_IN_FLIGHT`) and at most
//!   [`MAX_CONCURRENT_BROKERS`] brokers.
//! - **Time-bounded**: the timeout applies to the TCP connect, to the TLS
//!   handshake and to each request and each response.
//! - TLS verifies the certificate chain always; only the host name check can
//!   be turned off (`verify_hostname = false`).
//! - SASL PLAIN and SCRAM-SHA-256/512; OAUTHBEARER is `Unsupported` (callers
//!   fall back to librdkafka or report the gap).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, DescribeGroupsRequest, DescribeLogDirsRequest, ListGroupsRequest,
    ListOffsetsRequest, MetadataRequest, OffsetFetchRequest, RequestHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use krawl_secrets::SecretString;
use krawl_wire::scram::{ScramClient, ScramHash};
use krawl_wire::{
    shown, ApiVersionsResponse, DescribeGroupsResponse, DescribeLogDirsResponse,
    ListGroupsResponse, ListOffsetsResponse, Message, MetadataResponse, OffsetFetchResponse,
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

/// The only API keys krawl's own client sends.
pub const SENT_API_KEYS: &[i16] = &[
    ApiKey::ApiVersions as i16,
    ApiKey::SaslHandshake as i16,
    ApiKey::SaslAuthenticate as i16,
    ApiKey::DescribeLogDirs as i16,
    ApiKey::Metadata as i16,
    ApiKey::ListOffsets as i16,
    ApiKey::OffsetFetch as i16,
    ApiKey::ListGroups as i16,
    ApiKey::DescribeGroups as i16,
];

/// Brokers asked at the same time.
pub const MAX_CONCURRENT_BROKERS: usize = 8;
/// Requests in flight on one connection (answers come back in order).
pub const PIPELINE_DEPTH: usize = 4;
/// Largest response accepted (Kafka's default `socket.request.max.bytes`).
pub const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;

/// Versions of the connection's own calls (decoded by `krawl-wire`, encoded
/// by `kafka-protocol`).
const API_VERSIONS_VERSION: i16 = 3;
const SASL_HANDSHAKE_VERSION: i16 = 1;
const SASL_AUTHENTICATE_MAX: i16 = 2;

/// How to reach and authenticate to the brokers.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
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

/// A failure of krawl's own Kafka client. `broker` is the broker id, or -1
/// for a failure that concerns no single broker (bad TLS files, missing SASL
/// settings). Messages never contain a password or a key.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
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

/// A Kafka error code as a [`BrokerError`]; authorization failures are `Auth`.
pub(crate) fn kafka_error(
    broker: i32,
    what: &str,
    err: ResponseError,
    message: Option<&str>,
) -> BrokerError {
    let detail = match message {
        Some(m) if !m.is_empty() => format!(" ({m})"),
        _ => String::new(),
    };
    let cause = format!("{what}: {err} (error code {}){detail}", err.code());
    match err {
        ResponseError::ClusterAuthorizationFailed => BrokerError::Auth {
            broker,
            cause: format!("{cause}; {what} needs DESCRIBE on the cluster resource"),
        },
        ResponseError::SaslAuthenticationFailed
        | ResponseError::IllegalSaslState
        | ResponseError::UnsupportedSaslMechanism
        | ResponseError::TopicAuthorizationFailed => BrokerError::Auth { broker, cause },
        _ => BrokerError::Protocol { broker, cause },
    }
}

/// The settings of one extraction, checked once: SASL settings present when
/// the protocol needs them (OAUTHBEARER: `Unsupported`), the TLS
/// configuration built from its files. Opens connections to brokers, and
/// keeps the ones a phase hands back for the next phase (each new connection
/// costs a handshake, ApiVersions and SASL: three round trips or more).
pub struct BrokerClient<'a> {
    settings: &'a BrokerSettings,
    sasl: Option<&'a SaslSettings>,
    tls: Option<tokio_rustls::TlsConnector>,
    /// Ready connections by `host:port`.
    idle: Mutex<HashMap<(String, u16), Vec<Ready>>>,
}

/// A connection ready for requests, with what its broker offers.
pub(crate) type Ready = (Conn, ApiVersionsResponse);

/// Idle connections kept per broker address.
pub const MAX_IDLE_PER_BROKER: usize = 8;

impl fmt::Debug for BrokerClient<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerClient")
            .field("security_protocol", &self.settings.security_protocol)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> BrokerClient<'a> {
    /// Fails with broker -1 for unusable TLS files or missing SASL settings,
    /// and `Unsupported("OAUTHBEARER")` for that mechanism.
    pub fn new(settings: &'a BrokerSettings) -> Result<Self, BrokerError> {
        let sasl = if settings.security_protocol.uses_sasl() {
            let sasl = settings.sasl.as_ref().ok_or_else(|| BrokerError::Auth {
                broker: -1,
                cause: format!(
                    "security protocol {} needs SASL settings",
                    settings.security_protocol.as_str()
                ),
            })?;
            if sasl.mechanism == SaslMechanism::OauthBearer {
                return Err(BrokerError::Unsupported("OAUTHBEARER".to_string()));
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
        Ok(Self {
            settings,
            sasl,
            tls,
            idle: Mutex::new(HashMap::new()),
        })
    }

    /// A ready connection to `broker` at `host:port`: one a phase handed back
    /// ([`Self::checkin`]), or a new one ([`Self::open`]).
    pub(crate) async fn checkout(
        &self,
        broker: i32,
        host: &str,
        port: u16,
    ) -> Result<Ready, BrokerError> {
        if let Some(ready) = self.idle_conn(broker, host, port) {
            return Ok(ready);
        }
        self.open(broker, host, port).await
    }

    /// An idle connection to `broker` at `host:port`, if one was handed back.
    pub(crate) fn idle_conn(&self, broker: i32, host: &str, port: u16) -> Option<Ready> {
        let (mut conn, versions) = self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&(host.to_string(), port))
            .and_then(Vec::pop)?;
        conn.broker = broker;
        Some((conn, versions))
    }

    /// Keeps a connection for the next phase, unless answers were left
    /// unread on it (at most [`MAX_IDLE_PER_BROKER`] per address; the rest
    /// are closed).
    pub(crate) fn checkin(&self, host: &str, port: u16, conn: Conn, versions: ApiVersionsResponse) {
        if conn.unread {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let kept = idle.entry((host.to_string(), port)).or_default();
        if kept.len() < MAX_IDLE_PER_BROKER {
            kept.push((conn, versions));
        }
    }

    /// A connection to `broker` at `host:port` (TCP, then TLS when the
    /// protocol uses it), not yet authenticated.
    pub(crate) async fn connect(
        &self,
        broker: i32,
        host: &str,
        port: u16,
    ) -> Result<Conn, BrokerError> {
        Conn::connect(self.settings, self.tls.as_ref(), broker, host, port).await
    }

    /// Authenticates `conn` when the protocol uses SASL.
    pub(crate) async fn authenticate(
        &self,
        conn: &mut Conn,
        versions: &ApiVersionsResponse,
    ) -> Result<(), BrokerError> {
        match self.sasl {
            Some(sasl) => conn.authenticate(sasl, versions).await,
            None => Ok(()),
        }
    }

    /// A connection that is ready for requests: connected, its ApiVersions
    /// read, authenticated.
    pub(crate) async fn open(
        &self,
        broker: i32,
        host: &str,
        port: u16,
    ) -> Result<(Conn, ApiVersionsResponse), BrokerError> {
        let mut conn = self.connect(broker, host, port).await?;
        let versions = conn.api_versions().await?;
        self.authenticate(&mut conn, &versions).await?;
        Ok((conn, versions))
    }

    /// The timeout of each connect, handshake, request and response.
    pub fn timeout(&self) -> Duration {
        self.settings.timeout
    }
}

// ------------------------------------------------------------------------------------------------
// Connection and framing
// ------------------------------------------------------------------------------------------------

/// The requests krawl's own client can send: implemented for exactly the
/// [`SENT_API_KEYS`], so sending anything else does not compile. The
/// response type (a `krawl-wire` decoder) gives the response header version.
pub(crate) trait Call: Encodable + HeaderVersion {
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

impl Call for MetadataRequest {
    const KEY: ApiKey = ApiKey::Metadata;
    type Response = MetadataResponse<'static>;
}

impl Call for ListOffsetsRequest {
    const KEY: ApiKey = ApiKey::ListOffsets;
    type Response = ListOffsetsResponse<'static>;
}

impl Call for OffsetFetchRequest {
    const KEY: ApiKey = ApiKey::OffsetFetch;
    type Response = OffsetFetchResponse<'static>;
}

impl Call for ListGroupsRequest {
    const KEY: ApiKey = ApiKey::ListGroups;
    type Response = ListGroupsResponse<'static>;
}

impl Call for DescribeGroupsRequest {
    const KEY: ApiKey = ApiKey::DescribeGroups;
    type Response = DescribeGroupsResponse<'static>;
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What [`Conn::pipeline`] does after an answer.
pub(crate) enum Next {
    /// Send and read the rest.
    More,
    /// Stop here (see [`Conn::pipeline`]).
    Done,
}

/// One broker connection: length-prefixed request/response, in order.
pub(crate) struct Conn {
    io: Box<dyn Io>,
    broker: i32,
    client_id: StrBytes,
    correlation_id: i32,
    timeout: Duration,
    /// Answers were left unread ([`Conn::pipeline`] ended early): the next
    /// answer read would be one of them, so the connection is not kept.
    unread: bool,
}

impl Conn {
    async fn connect(
        settings: &BrokerSettings,
        tls: Option<&tokio_rustls::TlsConnector>,
        broker: i32,
        host: &str,
        port: u16,
    ) -> Result<Self, BrokerError> {
        let t = settings.timeout;
        let tcp = timeout(t, TcpStream::connect((host, port)))
            .await
            .map_err(|_| BrokerError::Timeout { broker })?
            .map_err(|e| BrokerError::Connect {
                broker,
                cause: format!("{host}:{port}: {e}"),
            })?;
        // Latency only; a failure here changes nothing that matters.
        let _ = tcp.set_nodelay(true);
        tracing::debug!(
            broker,
            host,
            port,
            tls = tls.is_some(),
            "krawl's Kafka client connected"
        );
        let io: Box<dyn Io> = match tls {
            None => Box::new(tcp),
            Some(connector) => {
                let name =
                    ServerName::try_from(host.to_string()).map_err(|e| BrokerError::Tls {
                        broker,
                        cause: format!("{host} is not a valid TLS server name: {e}"),
                    })?;
                let stream = timeout(t, connector.connect(name, tcp))
                    .await
                    .map_err(|_| BrokerError::Timeout { broker })?
                    .map_err(|e| BrokerError::Tls {
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
            unread: false,
            timeout: t,
        })
    }

    pub(crate) fn protocol(&self, cause: String) -> BrokerError {
        BrokerError::Protocol {
            broker: self.broker,
            cause,
        }
    }

    /// A response that does not decode: the broker's protocol error. The
    /// message names the API, the version and the field.
    pub(crate) fn decode_error(&self, e: WireError) -> BrokerError {
        self.protocol(e.to_string())
    }

    /// Sends `request` at `version`; returns the response body (after the
    /// response header), within the timeout. Decoding the body is the
    /// caller's, with the `krawl-wire` decoder of `R::Response`.
    pub(crate) async fn call<R: Call>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<Bytes, BrokerError> {
        let correlation_id = self.send(request, version).await?;
        self.recv::<R>(correlation_id, version).await
    }

    /// Sends one request per item, built by `build` when it is sent, with up
    /// to `depth` in flight, and hands each answer's body to `answer` with
    /// its item, in send order (a broker answers one connection's requests in
    /// order). On a network with latency this costs a round trip per `depth`
    /// requests, not per request. [`Next::Done`] from `answer` ends the
    /// pipeline early; answers still in flight are then never read, and
    /// [`BrokerClient::checkin`] does not keep the connection.
    pub(crate) async fn pipeline<R, T, I, B, A>(
        &mut self,
        version: i16,
        depth: usize,
        items: I,
        mut build: B,
        mut answer: A,
    ) -> Result<(), BrokerError>
    where
        R: Call + Send + Sync,
        I: Iterator<Item = T>,
        B: FnMut(&T) -> R,
        A: FnMut(&Self, &[u8], T) -> Result<Next, BrokerError>,
    {
        let mut items = items;
        let mut pending = VecDeque::with_capacity(depth.max(1));
        loop {
            while pending.len() < depth.max(1) {
                let Some(item) = items.next() else { break };
                let request = build(&item);
                let correlation_id = self.send(&request, version).await?;
                pending.push_back((correlation_id, item));
            }
            let Some((correlation_id, item)) = pending.pop_front() else {
                return Ok(());
            };
            let body = self.recv::<R>(correlation_id, version).await?;
            if let Next::Done = answer(self, &body, item)? {
                self.unread = !pending.is_empty();
                return Ok(());
            }
        }
    }

    /// Writes `request` at `version` (within the timeout); returns its
    /// correlation id, for [`Self::recv`]. Several may be sent before their
    /// answers are read: a broker answers one connection's requests in order.
    async fn send<R: Call>(&mut self, request: &R, version: i16) -> Result<i32, BrokerError> {
        let broker = self.broker;
        timeout(self.timeout, self.write_request(request, version))
            .await
            .map_err(|_| BrokerError::Timeout { broker })?
    }

    /// Reads the answer to the request sent with `correlation_id` (the
    /// oldest one not yet read) within the timeout; returns its body.
    async fn recv<R: Call>(
        &mut self,
        correlation_id: i32,
        version: i16,
    ) -> Result<Bytes, BrokerError> {
        let broker = self.broker;
        timeout(
            self.timeout,
            self.read_response::<R>(correlation_id, version),
        )
        .await
        .map_err(|_| BrokerError::Timeout { broker })?
    }

    /// A transport error while speaking `key`: TLS 1.3 reports a refused
    /// client certificate after the handshake, on the first read, so rustls
    /// errors are classified as TLS, not transport.
    fn io_error(&self, key: i16, e: std::io::Error) -> BrokerError {
        let cause = format!("{}: {e}", api(key));
        let broker = self.broker;
        if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
            BrokerError::Tls { broker, cause }
        } else {
            BrokerError::Connect { broker, cause }
        }
    }

    async fn write_request<R: Call>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<i32, BrokerError> {
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
        tracing::trace!(
            broker = self.broker,
            api = api(key),
            version,
            correlation_id,
            bytes = buf.len(),
            "request sent"
        );
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
    ) -> Result<Bytes, BrokerError> {
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
            return Err(BrokerError::Connect {
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
    pub(crate) async fn api_versions(&mut self) -> Result<ApiVersionsResponse, BrokerError> {
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
    pub(crate) async fn authenticate(
        &mut self,
        sasl: &SaslSettings,
        versions: &ApiVersionsResponse,
    ) -> Result<(), BrokerError> {
        let broker = self.broker;
        let mech = sasl.mechanism.as_str();
        let auth_err = |cause: String| BrokerError::Auth { broker, cause };
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
                return Err(BrokerError::Unsupported("OAUTHBEARER".to_string()))
            }
        }
        tracing::debug!(broker, mechanism = mech, username = %sasl.username, "SASL authenticated");
        Ok(())
    }

    /// One SaslAuthenticate round trip; returns the server's auth bytes.
    async fn sasl_authenticate(
        &mut self,
        mech: &str,
        auth_bytes: Bytes,
        version: i16,
    ) -> Result<Bytes, BrokerError> {
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
            return Err(BrokerError::Auth {
                broker: self.broker,
                cause: match kafka_error(
                    self.broker,
                    &format!("SASL {mech}"),
                    err,
                    message.as_deref(),
                ) {
                    BrokerError::Auth { cause, .. } | BrokerError::Protocol { cause, .. } => cause,
                    other => other.to_string(),
                },
            });
        }
        Ok(body.slice_ref(response.auth_bytes))
    }
}

pub(crate) fn api(key: i16) -> &'static str {
    crate::api_keys::api_name(key)
}

/// The highest version of `api` from `min` to `max` that a broker's ApiVersions answer offers,
/// or `Unsupported` naming `who` (the broker, or the bootstrap address) and the API.
pub(crate) fn version_of(
    versions: &ApiVersionsResponse,
    who: impl fmt::Display,
    api: ApiKey,
    min: i16,
    max: i16,
) -> Result<i16, BrokerError> {
    let key = api as i16;
    versions.pick(key, min, max).ok_or_else(|| {
        BrokerError::Unsupported(format!(
            "{who} does not advertise {} (API key {key}) v{min} to v{max}",
            crate::api_keys::api_name(key)
        ))
    })
}

// ------------------------------------------------------------------------------------------------
// TLS
// ------------------------------------------------------------------------------------------------

fn tls_connector(tls: Option<&TlsSettings>) -> Result<tokio_rustls::TlsConnector, BrokerError> {
    let err = |cause: String| BrokerError::Tls { broker: -1, cause };
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
mod tests {
    use super::*;

    #[test]
    fn sends_only_read_only_apis() {
        assert_eq!(SENT_API_KEYS, &[18, 17, 36, 35, 3, 2, 9, 16, 15]);
        for k in SENT_API_KEYS {
            assert!(crate::api_keys::READ_ONLY_APIS.contains(k), "{k}");
        }
    }

    /// A connection is kept for the next phase only when every answer sent
    /// for on it was read: a pipeline that stops with answers in flight
    /// leaves it unusable (its next read would be a stale answer).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[allow(clippy::unwrap_used)]
    async fn only_connections_without_unread_answers_are_kept() {
        let n = crate::test_broker::noida();
        let settings = crate::test_broker::plaintext();
        let client = BrokerClient::new(&settings).unwrap();
        let request = |_: &u32| MetadataRequest::default().with_topics(Some(Vec::new()));
        for (depth, kept) in [(3, false), (1, true)] {
            let (mut conn, versions) = client.checkout(-1, "127.0.0.1", n.port).await.unwrap();
            let version = version_of(&versions, "noida", ApiKey::Metadata, 1, 12).unwrap();
            let mut answers = 0;
            conn.pipeline(version, depth, 0..3u32, request, |_, _, _| {
                answers += 1;
                Ok(Next::Done)
            })
            .await
            .unwrap();
            assert_eq!(answers, 1);
            client.checkin("127.0.0.1", n.port, conn, versions);
            assert_eq!(
                client.idle_conn(-1, "127.0.0.1", n.port).is_some(),
                kept,
                "depth {depth}"
            );
        }
    }
}
