//! Errors that end an extraction, classified so the CLI can give each class
//! its own exit code and the agent its own error class.

use crate::config::ConfigError;
use crate::context::ClientError;
use rdkafka::types::RDKafkaErrorCode;

/// Why a connection to the cluster failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Invalid settings or an unresolvable secret.
    Config,
    /// A bootstrap host name did not resolve.
    Dns,
    /// TCP connection refused or host unreachable.
    ConnectionRefused,
    /// TLS handshake failed (certificate, CA, hostname, protocol).
    Tls,
    /// SASL authentication failed.
    Authentication,
    /// Authenticated, but not allowed to describe the cluster.
    Authorization,
    /// No answer within the timeout.
    Timeout,
    /// Writing the output failed.
    Output,
    /// A secret reference did not resolve (store down, denied, not found,
    /// not in the allowlist).
    Secret,
    Other,
}

impl FailureClass {
    /// Process exit code for `krawl extract`.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Other => 1,
            Self::Config => 2,
            Self::Dns => 3,
            Self::ConnectionRefused => 4,
            Self::Tls => 5,
            Self::Authentication => 6,
            Self::Authorization => 7,
            Self::Timeout => 8,
            Self::Output => 9,
            Self::Secret => 10,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Dns => "dns",
            Self::ConnectionRefused => "connection_refused",
            Self::Tls => "tls",
            Self::Authentication => "authentication",
            Self::Authorization => "authorization",
            Self::Timeout => "timeout",
            Self::Output => "output",
            Self::Secret => "secret",
            Self::Other => "other",
        }
    }

    /// What the user should check, for each class.
    pub fn hint(self) -> &'static str {
        match self {
            Self::Config => "fix the setting named above",
            Self::Dns => "check the host names in kafka.bootstrap_servers and this machine's DNS",
            Self::ConnectionRefused => {
                "check kafka.bootstrap_servers (host and port), that the brokers are up, and firewalls between here and them"
            }
            Self::Tls => {
                "check kafka.tls.ca_file (the CA that signed the brokers' certificates), the client certificate for mTLS, kafka.tls.verify_hostname, and that the port speaks TLS"
            }
            Self::Authentication => {
                "check kafka.sasl.mechanism, the username and the password (or the OAuth client) the broker expects"
            }
            Self::Authorization => {
                "grant the principal DESCRIBE on the cluster and topics (and DESCRIBE on groups) with kafka-acls"
            }
            Self::Timeout => {
                "the brokers did not answer in time: check they are reachable, the security_protocol matches the listener, or raise kafka.timeout_secs"
            }
            Self::Output => "check the output path and free disk space",
            Self::Secret => "see the secret error above; `krawl secrets check REF` tests a reference on its own",
            Self::Other => "see the message above",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot connect to Kafka at {hosts}: {cause}\n  hint: {}", class.hint())]
    Connect {
        hosts: String,
        class: FailureClass,
        cause: String,
    },
    #[error("Kafka call {api} failed: {message}")]
    Call { api: &'static str, message: String },
    #[error("cannot write records: {0}")]
    Output(String),
    #[error("extraction cancelled")]
    Cancelled,
}

impl ExtractError {
    pub fn class(&self) -> FailureClass {
        match self {
            Self::Config(ConfigError::Secret { .. }) => FailureClass::Secret,
            Self::Config(_) => FailureClass::Config,
            Self::Connect { class, .. } => *class,
            Self::Call { .. } | Self::Cancelled => FailureClass::Other,
            Self::Output(_) => FailureClass::Output,
        }
    }
}

/// Pick the most telling class among the errors librdkafka reported while
/// trying to connect. Authentication and TLS beat DNS, which beats refused.
pub fn classify(errors: &[ClientError]) -> Option<(FailureClass, String)> {
    let rank = |c: FailureClass| match c {
        FailureClass::Authentication => 0,
        FailureClass::Authorization => 1,
        FailureClass::Tls => 2,
        FailureClass::Dns => 3,
        FailureClass::ConnectionRefused => 4,
        _ => 9,
    };
    errors
        .iter()
        .filter_map(|e| class_of(e).map(|c| (c, e.reason.clone())))
        .min_by_key(|(c, _)| rank(*c))
}

fn class_of(e: &ClientError) -> Option<FailureClass> {
    let r = e.reason.to_ascii_lowercase();
    match e.code {
        Some(RDKafkaErrorCode::Authentication)
        | Some(RDKafkaErrorCode::SaslAuthenticationFailed)
        | Some(RDKafkaErrorCode::UnsupportedSASLMechanism)
        | Some(RDKafkaErrorCode::IllegalSASLState) => return Some(FailureClass::Authentication),
        Some(RDKafkaErrorCode::SSL) => return Some(FailureClass::Tls),
        Some(RDKafkaErrorCode::Resolve) => return Some(FailureClass::Dns),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed)
        | Some(RDKafkaErrorCode::ClusterAuthorizationFailed) => {
            return Some(FailureClass::Authorization)
        }
        _ => {}
    }
    if r.contains("sasl") && (r.contains("authentication") || r.contains("auth")) {
        Some(FailureClass::Authentication)
    } else if r.contains("ssl") || r.contains("tls") || r.contains("certificate") {
        Some(FailureClass::Tls)
    } else if r.contains("failed to resolve") || r.contains("name or service not known") {
        Some(FailureClass::Dns)
    } else if r.contains("connection refused")
        || r.contains("no route to host")
        || r.contains("network is unreachable")
    {
        Some(FailureClass::ConnectionRefused)
    } else if r.contains("disconnected") && r.contains("ssl") {
        Some(FailureClass::Tls)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: Option<RDKafkaErrorCode>, reason: &str) -> ClientError {
        ClientError {
            code,
            reason: reason.into(),
        }
    }

    #[test]
    fn classifies_librdkafka_errors() {
        let refused = err(
            Some(RDKafkaErrorCode::BrokerTransportFailure),
            "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused",
        );
        let dns = err(
            Some(RDKafkaErrorCode::Resolve),
            "nohost:9092/bootstrap: Failed to resolve 'nohost:9092': Name or service not known",
        );
        let tls = err(
            Some(RDKafkaErrorCode::SSL),
            "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed",
        );
        let auth = err(
            Some(RDKafkaErrorCode::Authentication),
            "SASL authentication error: Authentication failed",
        );
        assert_eq!(
            classify(std::slice::from_ref(&refused)).map(|c| c.0),
            Some(FailureClass::ConnectionRefused)
        );
        assert_eq!(
            classify(&[refused.clone(), dns.clone()]).map(|c| c.0),
            Some(FailureClass::Dns)
        );
        assert_eq!(
            classify(&[dns, tls.clone()]).map(|c| c.0),
            Some(FailureClass::Tls)
        );
        assert_eq!(
            classify(&[tls, auth, refused]).map(|c| c.0),
            Some(FailureClass::Authentication)
        );
        assert_eq!(classify(&[]), None);
    }

    #[test]
    fn exit_codes_are_distinct() {
        let all = [
            FailureClass::Other,
            FailureClass::Config,
            FailureClass::Dns,
            FailureClass::ConnectionRefused,
            FailureClass::Tls,
            FailureClass::Authentication,
            FailureClass::Authorization,
            FailureClass::Timeout,
            FailureClass::Output,
            FailureClass::Secret,
        ];
        let codes: std::collections::BTreeSet<i32> = all.iter().map(|c| c.exit_code()).collect();
        assert_eq!(codes.len(), all.len());
    }
}
