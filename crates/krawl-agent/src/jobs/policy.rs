//! The agent's local policy (`[policy]` in the agent config): what a job from the control plane
//! may point the agent at. It is checked after the spec is parsed and BEFORE anything is
//! contacted or any secret is resolved; a violation fails the job with class `policy`, naming
//! the offending entry and the policy key to change.
//!
//! # Why: the control plane is not trusted with the credentials
//!
//! krawl is read-only by construction, so the danger of an over-trusting agent is not writes but
//! *where its credentials go*: a job names destinations and secret references, and the agent
//! resolves, say, `vault://secret/kafka/prod#password` and sends it (SASL PLAIN is the password
//! in clear; an OAuth client secret goes to the token endpoint) to a host the job chose. A
//! compromised control plane could so collect every credential the agent can read. The threat
//! model is in `docs/security.md`.
//!
//! # A model, not string globs
//!
//! Every destination is parsed into its parts first ([`krawl_policy`]) and each part matched on
//! its own: a bootstrap entry is exactly one `host:port`; URLs are matched by scheme, host glob,
//! port and path prefix; a `file://` reference by its resolved path. One glob engine serves every
//! list. The lists, all **deny by default** for destinations:
//!
//! - `allowed_bootstrap_servers`: `host-glob:port` patterns (`kafka-*.prod.internal:9093`,
//!   `10.1.*:9092-9094`, `*` for any).
//! - `allowed_schema_registry_urls`, `allowed_token_endpoints`: URL patterns
//!   (`https://sr.prod.internal`, `https://*.idp.example:*/oauth2`).
//! - `allowed_secret_refs`: globs over secret references; empty = no restriction *here* (the
//!   `[secrets] allow` list of the resolver still applies, and the agent's own control-plane
//!   credential is never a job's).
//! - `allow_literal_secrets` (default `false`): a literal credential in a spec travelled through
//!   the control plane, which the protocol promises never happens.
//! - `allowed_job_kinds`: empty = every kind (all are read-only).
//! - `floors`: security floors per destination pattern — TLS required, host-name verification
//!   on, SASL mechanisms, a pinned CA file. A job may tighten them, never loosen them; a job that
//!   names no CA file gets the pinned one.
//!
//! What is checked: every entry of `kafka.bootstrap_servers` (the brokers the cluster advertises
//! afterwards belong to that allowed cluster), `kafka.sasl.oauthbearer.token_endpoint_url`,
//! `schema_registry.url`, every secret reference of the spec (`kafka.sasl.password`,
//! `kafka.sasl.oauthbearer.client_secret` and credential-named `extensions`,
//! `kafka.tls.client_key[_password]`, `schema_registry.auth.*`, `schema_registry.tls.client_key`),
//! and the transport of each against the floors.

use std::path::PathBuf;

use krawl_kafka::config::{SaslMechanism, TlsConfig};
use krawl_kafka::KafkaConfig;
use krawl_policy::{
    canonical_pattern_path, Case, DestUrl, Floor, GlobList, HostPort, HostPortPattern, Transport,
    UrlPattern, Violation,
};
use krawl_protocol::JobKind;
use krawl_schema_registry::{RegistryTls, SchemaRegistryConfig};
use krawl_secrets::SecretRef;
use serde::Deserialize;

use super::{JobFailure, ParsedSpec};

/// `[policy]` of the agent config. See the module documentation for the defaults and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// `host:port` patterns every entry of a job's `kafka.bootstrap_servers` must match, e.g.
    /// `["kafka-*.prod.internal:9093", "10.1.2.*:9092-9094"]`: a host glob and a port (a
    /// number, a range or `*`). Empty: no cluster is allowed; `["*"]`: any (not recommended:
    /// jobs could send credentials anywhere).
    pub allowed_bootstrap_servers: Vec<String>,
    /// URL patterns a job's `schema_registry.url` must match: `scheme://host-glob[:port][/path]`,
    /// e.g. `["https://sr.prod.internal", "https://*.prod.internal:*/ccompat"]`. Without a port
    /// the scheme's default; a path is a prefix. Empty: no registry is allowed; `["*"]`: any.
    pub allowed_schema_registry_urls: Vec<String>,
    /// URL patterns a job's `kafka.sasl.oauthbearer.token_endpoint_url` must match (the OAuth
    /// client secret is sent there). Empty: no OAUTHBEARER job is allowed; `["*"]`: any.
    pub allowed_token_endpoints: Vec<String>,
    /// Glob patterns every secret reference of a job must match, e.g.
    /// `["vault://secret/kafka/*"]`; `file://` references are matched by their resolved path.
    /// Empty: no restriction here (the `[secrets] allow` list still applies).
    pub allowed_secret_refs: Vec<String>,
    /// Accept literal (non-reference) secrets in job specs. Default false.
    pub allow_literal_secrets: bool,
    /// Job kinds this agent runs (`kafka.extract`, `kafka.test_connection`, `kafka.preflight`,
    /// `kafka.list_topics`). Empty: all of them.
    pub allowed_job_kinds: Vec<String>,
    /// Security floors: transport settings pinned for the destinations their patterns match.
    pub floors: Vec<FloorConfig>,
}

/// One `[[policy.floors]]` entry. Every floor whose patterns match a job's destination applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FloorConfig {
    /// `host:port` patterns (as `allowed_bootstrap_servers`) of the brokers this floor covers.
    pub bootstrap_servers: Vec<String>,
    /// URL patterns (as `allowed_schema_registry_urls`) of the registries and token endpoints
    /// this floor covers.
    pub urls: Vec<String>,
    /// TLS required: SSL or SASL_SSL for brokers, https for URLs.
    pub require_tls: bool,
    /// `kafka.tls.verify_hostname = false` is refused.
    pub require_hostname_verification: bool,
    /// Brokers: SASL required with one of these mechanisms. Empty: no requirement.
    pub sasl_mechanisms: Vec<String>,
    /// The CA bundle every TLS connection to these destinations uses (brokers and registries);
    /// a job may name this same file or none (then this one is used), never another.
    pub ca_file: Option<PathBuf>,
}

const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// A [`Policy`] with every pattern parsed, as the agent checks jobs against it.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    config: Policy,
    servers: Vec<HostPortPattern>,
    registries: Vec<UrlPattern>,
    token_endpoints: Vec<UrlPattern>,
    secret_refs: GlobList,
    floors: Vec<Floor>,
}

impl Policy {
    /// A policy allowing any destination, reference and kind (tests, local trials).
    pub fn allow_all() -> Self {
        Self {
            allowed_bootstrap_servers: vec!["*".into()],
            allowed_schema_registry_urls: vec!["*".into()],
            allowed_token_endpoints: vec!["*".into()],
            allowed_secret_refs: Vec::new(),
            allow_literal_secrets: true,
            allowed_job_kinds: Vec::new(),
            floors: Vec::new(),
        }
    }

    /// Parses every pattern. Errors name the key and the pattern, and for patterns written in
    /// the old string-glob style say what to write instead.
    pub fn compile(&self) -> Result<CompiledPolicy, String> {
        for k in &self.allowed_job_kinds {
            if k.parse::<JobKind>().is_err() {
                return Err(format!(
                    "policy.allowed_job_kinds: unknown job kind {k:?}; known kinds: {}",
                    known_kinds()
                ));
            }
        }
        let err = |e: krawl_policy::PolicyError| e.to_string();
        let servers = self
            .allowed_bootstrap_servers
            .iter()
            .map(|p| HostPortPattern::parse("policy.allowed_bootstrap_servers", p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let urls = |key: &str, list: &[String]| {
            list.iter()
                .map(|p| UrlPattern::parse(key, p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)
        };
        let registries = urls(
            "policy.allowed_schema_registry_urls",
            &self.allowed_schema_registry_urls,
        )?;
        let token_endpoints = urls(
            "policy.allowed_token_endpoints",
            &self.allowed_token_endpoints,
        )?;
        // `file://` patterns have their directory resolved like the references they match.
        let refs: Vec<String> = self
            .allowed_secret_refs
            .iter()
            .map(|p| match p.strip_prefix("file://") {
                Some(path) => format!("file://{}", canonical_pattern_path(path)),
                None => p.clone(),
            })
            .collect();
        let secret_refs =
            GlobList::new("policy.allowed_secret_refs", &refs, Case::Sensitive).map_err(err)?;
        let floors = self
            .floors
            .iter()
            .enumerate()
            .map(|(i, f)| {
                Floor::new(
                    &format!("policy.floors[{i}]"),
                    &f.bootstrap_servers,
                    &f.urls,
                    f.require_tls,
                    f.require_hostname_verification,
                    &f.sasl_mechanisms,
                    MECHANISMS,
                    f.ca_file.as_deref(),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(CompiledPolicy {
            config: self.clone(),
            servers,
            registries,
            token_endpoints,
            secret_refs,
            floors,
        })
    }

    /// Lines for the agent to log at startup: what this policy leaves open or closed.
    pub fn warnings(&self, secrets_allowlist_set: bool) -> Vec<String> {
        let mut out = Vec::new();
        let any = |l: &[String]| l.iter().any(|p| p.trim() == "*" || p.trim() == "*:*");
        if self.allowed_bootstrap_servers.is_empty() {
            out.push("policy.allowed_bootstrap_servers is empty: every Kafka job will be refused until the clusters this agent serves are listed".to_string());
        } else if any(&self.allowed_bootstrap_servers) {
            out.push("policy.allowed_bootstrap_servers allows any host: a job can make this agent send its credentials to any broker".to_string());
        }
        if any(&self.allowed_schema_registry_urls) {
            out.push("policy.allowed_schema_registry_urls allows any URL: a job can make this agent send registry credentials anywhere".to_string());
        }
        if any(&self.allowed_token_endpoints) {
            out.push("policy.allowed_token_endpoints allows any URL: a job can make this agent send an OAuth client secret anywhere".to_string());
        }
        if self.allowed_secret_refs.is_empty() && !secrets_allowlist_set {
            out.push("neither policy.allowed_secret_refs nor secrets.allow is set: jobs may use any secret this agent can read".to_string());
        }
        if self.allow_literal_secrets {
            out.push(
                "policy.allow_literal_secrets is on: jobs may carry credentials in clear"
                    .to_string(),
            );
        }
        out
    }
}

fn refused(message: String) -> JobFailure {
    JobFailure {
        class: "policy".to_string(),
        message,
    }
}

pub(crate) fn known_kinds() -> String {
    JobKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The patterns of a list, for "(now [...])" in errors.
fn now<T>(list: &[T], show: impl Fn(&T) -> &str) -> String {
    format!("{:?}", list.iter().map(show).collect::<Vec<_>>())
}

impl CompiledPolicy {
    /// The policy as configured.
    pub fn config(&self) -> &Policy {
        &self.config
    }

    /// Checks the files the policy names (the floors' pinned CA files): at agent start, so that
    /// a missing one stops the agent with its key instead of failing every job it covers.
    pub fn check_files(&self) -> Result<(), String> {
        self.floors
            .iter()
            .try_for_each(|f| f.check_files().map_err(|e| e.to_string()))
    }

    /// Whether this agent runs `kind`.
    pub fn check_kind(&self, kind: JobKind) -> Result<(), JobFailure> {
        let kinds = &self.config.allowed_job_kinds;
        if kinds.is_empty() || kinds.iter().any(|k| k == kind.as_str()) {
            Ok(())
        } else {
            Err(refused(format!(
                "job kind {kind} is not allowed by this agent's policy; add it to policy.allowed_job_kinds (now {kinds:?})"
            )))
        }
    }

    /// Checks a job's destinations, transports and secret references, and applies the floors
    /// (a pinned CA file the job left out is filled in). Contacts nothing and reads no secret
    /// (a `file://` reference's path is resolved: metadata only).
    pub fn check(&self, spec: &mut ParsedSpec) -> Result<(), JobFailure> {
        self.check_kafka(&mut spec.kafka)?;
        if let Some(sr) = spec.schema_registry.as_mut() {
            self.check_registry(sr)?;
        }
        let mut refs: Vec<(&str, &SecretRef)> = spec.kafka.secret_refs();
        if let Some(sr) = &spec.schema_registry {
            refs.extend(sr.secret_refs());
        }
        for (key, r) in refs {
            self.check_secret_ref(&extension_key(&spec.kafka, key, r), r)?;
        }
        Ok(())
    }

    /// Whether a broker the cluster advertises (`host`, `port`) is one this agent may contact:
    /// it must match `allowed_bootstrap_servers` like a bootstrap entry. A broker in the allowed
    /// list could otherwise advertise any host, and librdkafka (with the job's credentials) and
    /// the DescribeLogDirs client would connect there.
    pub fn broker_allowed(&self, host: &str, port: u16) -> bool {
        let entry = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        HostPort::parse(&entry).is_ok_and(|hp| self.servers.iter().any(|p| p.matches(&hp)))
    }

    /// Refuses a connection whose cluster advertises a broker outside the policy.
    pub fn check_advertised(&self, brokers: &[(i32, String, u16)]) -> Result<(), JobFailure> {
        match brokers.iter().find(|(_, h, p)| !self.broker_allowed(h, *p)) {
            None => Ok(()),
            Some((id, host, port)) => Err(refused(format!(
                "the cluster advertises broker {id} at {host}:{port}, which this agent's policy does not allow: krawl does not connect there; if it belongs to the cluster, add a matching host:port pattern to policy.allowed_bootstrap_servers (now {})",
                now(&self.servers, HostPortPattern::as_str)
            ))),
        }
    }

    fn check_kafka(&self, kafka: &mut KafkaConfig) -> Result<(), JobFailure> {
        let mut entries = Vec::new();
        for raw in &kafka.bootstrap_servers {
            let hp = HostPort::parse(raw).map_err(|e| {
                refused(format!(
                    "kafka.bootstrap_servers: {e}; each entry must be exactly one host:port"
                ))
            })?;
            if !self.servers.iter().any(|p| p.matches(&hp)) {
                return Err(refused(format!(
                    "bootstrap server {raw:?} is not allowed by this agent's policy; add a matching host:port pattern to policy.allowed_bootstrap_servers (now {})",
                    now(&self.servers, HostPortPattern::as_str)
                )));
            }
            entries.push(hp);
        }

        // Floors: every floor covering any entry applies to the whole connection.
        let proto = kafka.security_protocol;
        let mechanism = kafka.sasl_mechanism().map(SaslMechanism::as_str);
        let tls = kafka.tls.as_ref().filter(|_| proto.uses_tls());
        let mut pinned: Option<(PathBuf, String)> = None;
        for floor in &self.floors {
            let Some((entry, pattern)) = entries
                .iter()
                .find_map(|hp| floor.covers_server(hp).map(|p| (hp, p)))
            else {
                continue;
            };
            let t = Transport {
                tls: proto.uses_tls(),
                verify_hostname: tls.is_none_or(|t| t.verify_hostname),
                sasl_mechanism: mechanism,
                ca_file: tls.and_then(|t| t.ca_file.as_deref()),
            };
            let at = format!(
                "bootstrap server \"{entry}\" is covered by {} (pattern {pattern:?})",
                floor.name()
            );
            if let Some(v) = floor.violations(&t, true).first() {
                return Err(refused(floor_message(&at, floor.name(), v, Dest::Kafka)));
            }
            pin(&mut pinned, floor, &at)?;
        }
        if let Some((ca, _)) = pinned {
            if proto.uses_tls() {
                let tls = kafka.tls.get_or_insert_with(|| TlsConfig {
                    ca_file: None,
                    client_cert_file: None,
                    client_key: None,
                    client_key_password: None,
                    verify_hostname: true,
                });
                tls.ca_file.get_or_insert(ca);
            }
        }

        // The OAuth token endpoint receives the client secret.
        if let Some(o) = kafka
            .sasl
            .as_ref()
            .filter(|_| proto.uses_sasl())
            .and_then(|s| s.oauthbearer.as_ref())
        {
            let url = DestUrl::parse("OAuth token endpoint", &o.token_endpoint_url)
                .map_err(|e| refused(format!("kafka.sasl.oauthbearer.token_endpoint_url: {e}")))?;
            if !self.token_endpoints.iter().any(|p| p.matches(&url)) {
                return Err(refused(format!(
                    "OAuth token endpoint {:?} is not allowed by this agent's policy (the OAuth client secret is sent there); add a matching URL pattern to policy.allowed_token_endpoints (now {})",
                    o.token_endpoint_url,
                    now(&self.token_endpoints, UrlPattern::as_str)
                )));
            }
            for floor in &self.floors {
                if let Some(pattern) = floor.covers_url(&url) {
                    let t = url_transport(&url, None);
                    if let Some(v) = floor.violations(&t, false).first() {
                        let at = format!(
                            "OAuth token endpoint {:?} is covered by {} (pattern {pattern:?})",
                            o.token_endpoint_url,
                            floor.name()
                        );
                        return Err(refused(floor_message(
                            &at,
                            floor.name(),
                            v,
                            Dest::TokenEndpoint,
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn check_registry(&self, sr: &mut SchemaRegistryConfig) -> Result<(), JobFailure> {
        let url = DestUrl::parse("Schema Registry URL", sr.url.trim())
            .map_err(|e| refused(format!("schema_registry.url: {e}")))?;
        if !self.registries.iter().any(|p| p.matches(&url)) {
            return Err(refused(format!(
                "Schema Registry URL {:?} is not allowed by this agent's policy; add a matching URL pattern to policy.allowed_schema_registry_urls (now {})",
                sr.url.trim(),
                now(&self.registries, UrlPattern::as_str)
            )));
        }
        let mut pinned: Option<(PathBuf, String)> = None;
        for floor in &self.floors {
            let Some(pattern) = floor.covers_url(&url) else {
                continue;
            };
            let at = format!(
                "Schema Registry URL {:?} is covered by {} (pattern {pattern:?})",
                sr.url.trim(),
                floor.name()
            );
            let t = url_transport(&url, sr.tls.as_ref().and_then(|t| t.ca_file.as_deref()));
            if let Some(v) = floor.violations(&t, false).first() {
                return Err(refused(floor_message(&at, floor.name(), v, Dest::Registry)));
            }
            pin(&mut pinned, floor, &at)?;
        }
        if let Some((ca, _)) = pinned {
            sr.tls
                .get_or_insert_with(RegistryTls::default)
                .ca_file
                .get_or_insert(ca);
        }
        Ok(())
    }

    fn check_secret_ref(&self, key: &str, r: &SecretRef) -> Result<(), JobFailure> {
        if matches!(r, SecretRef::Literal(_)) {
            if self.config.allow_literal_secrets {
                return Ok(());
            }
            let hint = if key.starts_with(EXTENSIONS) {
                " (an extension whose name holds secret/password/token/credential/key is a credential)"
            } else {
                ""
            };
            return Err(refused(format!(
                "`{key}` is a literal secret{hint}: job specs must name secrets by reference (vault://, aws-sm://, gcp-sm://, azure-kv://, env://, file://...); set policy.allow_literal_secrets = true to accept literals"
            )));
        }
        // Matched in resolved form: a file:// path through its links.
        let resolved = r
            .canonical()
            .map_err(|e| refused(format!("`{key}`: {e}")))?;
        let shown = resolved.to_string();
        if !self.secret_refs.is_empty() && !self.secret_refs.is_match(&shown) {
            return Err(refused(format!(
                "secret reference {shown} (`{key}`) is not allowed by this agent's policy; add a matching pattern to policy.allowed_secret_refs (now {:?})",
                self.secret_refs.patterns()
            )));
        }
        Ok(())
    }
}

const EXTENSIONS: &str = "kafka.sasl.oauthbearer.extensions";

/// `key` as an error names it: an OAuth extension by its own key
/// (`kafka.sasl.oauthbearer.extensions.apiToken`), so the operator sees which one.
fn extension_key(kafka: &KafkaConfig, key: &str, r: &SecretRef) -> String {
    let name = (key == EXTENSIONS)
        .then(|| kafka.sasl.as_ref()?.oauthbearer.as_ref())
        .flatten()
        .and_then(|o| o.extensions.iter().find(|(_, v)| std::ptr::eq(*v, r)))
        .map(|(k, _)| k);
    match name {
        Some(k) => format!("{key}.{k}"),
        None => key.to_string(),
    }
}

fn url_transport<'a>(url: &DestUrl, ca_file: Option<&'a std::path::Path>) -> Transport<'a> {
    Transport {
        tls: url.is_https(),
        // krawl's HTTP clients always verify host names.
        verify_hostname: true,
        sasl_mechanism: None,
        ca_file,
    }
}

/// Records the CA file a floor pins; two floors pinning different files for one destination
/// cannot both hold.
fn pin(pinned: &mut Option<(PathBuf, String)>, floor: &Floor, at: &str) -> Result<(), JobFailure> {
    let Some(ca) = &floor.ca_file else {
        return Ok(());
    };
    match pinned {
        Some((other, by)) if other != ca => Err(refused(format!(
            "{at}, which pins ca_file {}, but {by} pins {}: the floors of one destination must pin the same CA file; fix policy.floors",
            ca.display(),
            other.display()
        ))),
        Some(_) => Ok(()),
        None => {
            *pinned = Some((ca.clone(), floor.name().to_string()));
            Ok(())
        }
    }
}

#[derive(Clone, Copy)]
enum Dest {
    Kafka,
    Registry,
    TokenEndpoint,
}

/// The refusal for one floor violation: where, which floor key, what the job must write.
fn floor_message(at: &str, floor: &str, v: &Violation, dest: Dest) -> String {
    let fix = match (v, dest) {
        (Violation::TlsRequired, Dest::Kafka) => format!(
            "which requires TLS ({floor}.require_tls): set kafka.security_protocol to SSL or SASL_SSL"
        ),
        (Violation::TlsRequired, Dest::Registry) => format!(
            "which requires TLS ({floor}.require_tls): use an https:// schema_registry.url"
        ),
        (Violation::TlsRequired, Dest::TokenEndpoint) => format!(
            "which requires TLS ({floor}.require_tls): use an https:// token_endpoint_url"
        ),
        (Violation::HostnameVerificationRequired, _) => format!(
            "which requires host-name verification ({floor}.require_hostname_verification): remove kafka.tls.verify_hostname = false"
        ),
        (Violation::MechanismNotAllowed(allowed), _) => format!(
            "which requires SASL with one of {allowed:?} ({floor}.sasl_mechanisms): set kafka.security_protocol to SASL_SSL and kafka.sasl.mechanism to one of them"
        ),
        (Violation::CaFileMismatch { pinned, job }, Dest::Kafka) => format!(
            "which pins the CA file {} ({floor}.ca_file), but the job names {job}: remove kafka.tls.ca_file from the job (the pinned one is used)",
            pinned.display()
        ),
        (Violation::CaFileMismatch { pinned, job }, _) => format!(
            "which pins the CA file {} ({floor}.ca_file), but the job names {job}: remove schema_registry.tls.ca_file from the job (the pinned one is used)",
            pinned.display()
        ),
    };
    format!("{at}, {fix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::parse_spec;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> ParsedSpec {
        parse_spec(&v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn check(p: &Policy, v: serde_json::Value) -> Result<ParsedSpec, JobFailure> {
        let mut s = spec(v);
        p.compile().unwrap().check(&mut s).map(|()| s)
    }

    #[test]
    fn default_denies_destinations_and_literals() {
        let k = json!({"kafka": {"bootstrap_servers": ["b:9092"]}});
        let e = check(&Policy::default(), k.clone()).unwrap_err();
        assert_eq!(e.class, "policy");
        assert!(
            e.message.contains("\"b:9092\"")
                && e.message.contains("policy.allowed_bootstrap_servers"),
            "{e}"
        );
        let p = Policy {
            allowed_bootstrap_servers: vec!["b:*".into()],
            ..Default::default()
        };
        assert!(check(&p, k).is_ok());
        let with_sr = json!({"kafka": {"bootstrap_servers": ["b:9092"]},
                             "schema_registry": {"url": "http://sr:8081"}});
        let e = check(&p, with_sr.clone()).unwrap_err();
        assert!(
            e.message.contains("policy.allowed_schema_registry_urls"),
            "{e}"
        );
        assert!(check(&Policy::allow_all(), with_sr).is_ok());
    }

    /// Issue 11: the OAuth token endpoint receives the client secret, so it is a destination
    /// under the policy like a broker.
    #[test]
    fn token_endpoints_are_under_the_policy() {
        let p = Policy {
            allowed_bootstrap_servers: vec!["*".into()],
            allowed_token_endpoints: vec!["https://idp.example.com/oauth2".into()],
            ..Default::default()
        };
        let job = |url: &str| {
            json!({"kafka": {"bootstrap_servers": ["b:9093"], "security_protocol": "SASL_SSL",
                "sasl": {"mechanism": "OAUTHBEARER", "oauthbearer": {
                    "token_endpoint_url": url, "client_id": "c", "client_secret": "env://S"}}}})
        };
        assert!(check(&p, job("https://idp.example.com/oauth2/token")).is_ok());
        for bad in [
            "https://evil.example/oauth2/token",
            "https://idp.example.com.evil.net/oauth2/token",
            "https://idp.example.com/other",
            "http://idp.example.com/oauth2/token",
        ] {
            let e = check(&p, job(bad)).unwrap_err();
            assert!(
                e.message.contains("policy.allowed_token_endpoints"),
                "{bad}: {e}"
            );
        }
        // Empty list: no OAUTHBEARER job at all.
        let p = Policy {
            allowed_token_endpoints: vec![],
            ..p
        };
        assert!(check(&p, job("https://idp.example.com/oauth2/token")).is_err());
    }

    /// A literal at a credential-named OAuth extension is refused naming that extension.
    #[test]
    fn a_literal_extension_is_named_by_its_key() {
        let p = Policy {
            allowed_bootstrap_servers: vec!["*".into()],
            allowed_token_endpoints: vec!["*".into()],
            ..Default::default()
        };
        let e = check(
            &p,
            json!({"kafka": {"bootstrap_servers": ["b:9093"], "security_protocol": "SASL_SSL",
                "sasl": {"mechanism": "OAUTHBEARER", "oauthbearer": {
                    "token_endpoint_url": "https://idp/t", "client_id": "c", "client_secret": "env://S",
                    "extensions": {"logicalCluster": "lkc-1", "apiToken": "tok-literal-x"}}}}}),
        )
        .unwrap_err();
        assert!(
            e.message
                .starts_with("`kafka.sasl.oauthbearer.extensions.apiToken` is a literal secret")
                && e.message.contains("policy.allow_literal_secrets")
                && !e.message.contains("tok-literal-x"),
            "{e}"
        );
    }

    #[test]
    fn file_references_are_matched_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(base.join("ok")).unwrap();
        std::fs::write(base.join("ok/pw"), "x").unwrap();
        std::fs::write(base.join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(base.join("secret"), base.join("ok/link")).unwrap();
        let p = Policy {
            allowed_bootstrap_servers: vec!["*".into()],
            allowed_secret_refs: vec![format!("file://{}/ok/*", base.display())],
            ..Default::default()
        };
        let job = |path: String| {
            json!({"kafka": {"bootstrap_servers": ["b:9092"], "security_protocol": "SASL_PLAINTEXT",
                "sasl": {"mechanism": "PLAIN", "username": "u", "password": format!("file://{path}")}}})
        };
        assert!(check(&p, job(format!("{}/ok/pw", base.display()))).is_ok());
        let e = check(&p, job(format!("{}/ok/link", base.display()))).unwrap_err();
        assert!(e.message.contains("policy.allowed_secret_refs"), "{e}");
        // `..` does not even parse as a reference: the spec is refused before the policy.
        assert!(parse_spec(&job(format!("{}/ok/../secret", base.display()))).is_err());
    }

    #[test]
    fn floors_are_tightened_never_loosened() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let other = dir.path().join("other.pem");
        std::fs::write(&ca, "ca").unwrap();
        std::fs::write(&other, "other").unwrap();
        let p = Policy {
            allowed_bootstrap_servers: vec!["*.prod.internal:*".into(), "dev:*".into()],
            allowed_schema_registry_urls: vec!["*".into()],
            floors: vec![FloorConfig {
                bootstrap_servers: vec!["*.prod.internal:*".into()],
                urls: vec!["*".into()],
                require_tls: true,
                require_hostname_verification: true,
                sasl_mechanisms: vec!["SCRAM-SHA-512".into()],
                ca_file: Some(ca.clone()),
            }],
            ..Default::default()
        };
        let good = json!({"kafka": {"bootstrap_servers": ["k1.prod.internal:9093"],
            "security_protocol": "SASL_SSL",
            "sasl": {"mechanism": "SCRAM-SHA-512", "username": "u", "password": "env://P"}}});
        // The pinned CA file is filled in.
        let s = check(&p, good.clone()).unwrap();
        let got = s
            .kafka
            .tls
            .as_ref()
            .and_then(|t| t.ca_file.clone())
            .unwrap();
        assert_eq!(
            std::fs::canonicalize(got).unwrap(),
            std::fs::canonicalize(&ca).unwrap()
        );
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (
                {
                    let mut j = good.clone();
                    j["kafka"]["security_protocol"] = json!("SASL_PLAINTEXT");
                    j
                },
                "require_tls",
            ),
            (
                {
                    let mut j = good.clone();
                    j["kafka"]["sasl"]["mechanism"] = json!("PLAIN");
                    j
                },
                "sasl_mechanisms",
            ),
            (
                {
                    let mut j = good.clone();
                    j["kafka"]["tls"] = json!({"verify_hostname": false});
                    j
                },
                "require_hostname_verification",
            ),
            (
                {
                    let mut j = good.clone();
                    j["kafka"]["tls"] = json!({"ca_file": other.display().to_string()});
                    j
                },
                "ca_file",
            ),
            (
                json!({"kafka": {"bootstrap_servers": ["k1.prod.internal:9092"]}}),
                "require_tls",
            ),
        ];
        for (job, key) in cases {
            let e = check(&p, job).unwrap_err();
            assert!(
                e.message.contains("policy.floors[0]")
                    && e.message.contains(key)
                    && e.message.contains("k1.prod.internal"),
                "{key}: {e}"
            );
        }
        // A destination no floor covers is free (dev).
        assert!(check(&p, json!({"kafka": {"bootstrap_servers": ["dev:9092"]}})).is_ok());
        // Registries: https required, CA pinned.
        let mut j = good.clone();
        j["schema_registry"] = json!({"url": "http://sr.prod.internal"});
        let e = check(&p, j).unwrap_err();
        assert!(
            e.message.contains("https://") && e.message.contains("policy.floors[0]"),
            "{e}"
        );
        let mut j = good;
        j["schema_registry"] = json!({"url": "https://sr.prod.internal"});
        let s = check(&p, j).unwrap();
        assert!(s.schema_registry.unwrap().tls.unwrap().ca_file.is_some());
    }

    #[test]
    fn old_patterns_fail_with_what_to_write() {
        let p = Policy {
            allowed_schema_registry_urls: vec!["https://sr-*.example.com*/x*".into()],
            ..Default::default()
        };
        let e = p.compile().unwrap_err();
        assert!(
            e.contains("policy.allowed_schema_registry_urls")
                && e.contains("https://sr-*.example.com:*"),
            "{e}"
        );
        let p = Policy {
            allowed_bootstrap_servers: vec!["kafka-*.prod".into()],
            ..Default::default()
        };
        let e = p.compile().unwrap_err();
        assert!(
            e.contains("policy.allowed_bootstrap_servers") && e.contains("host:port"),
            "{e}"
        );
    }

    #[test]
    fn advertised_brokers_are_matched_like_bootstrap_entries() {
        let p = Policy {
            allowed_bootstrap_servers: vec!["*.prod.internal:9093".into(), "[fd00::1]:*".into()],
            ..Default::default()
        }
        .compile()
        .unwrap();
        assert!(p.broker_allowed("b-1.prod.internal", 9093));
        assert!(p.broker_allowed("fd00::1", 1));
        assert!(p.broker_allowed("[fd00::1]", 1));
        assert!(!p.broker_allowed("evil.example", 9093));
        assert!(!p.broker_allowed("b-1.prod.internal", 9092));
        assert!(!p.broker_allowed("b,evil:1", 9093));
        let e = p
            .check_advertised(&[(1, "b-1.prod.internal".into(), 9093), (2, "evil".into(), 1)])
            .unwrap_err();
        assert!(
            e.message.contains("broker 2 at evil:1")
                && e.message.contains("policy.allowed_bootstrap_servers"),
            "{e}"
        );
    }

    #[test]
    fn kinds() {
        let p = Policy {
            allowed_job_kinds: vec!["kafka.test_connection".into()],
            ..Default::default()
        }
        .compile()
        .unwrap();
        assert!(p.check_kind(JobKind::TestConnection).is_ok());
        let e = p.check_kind(JobKind::Extract).unwrap_err();
        assert!(e.message.contains("policy.allowed_job_kinds"));
        assert!(Policy {
            allowed_job_kinds: vec!["kafka.produce".into()],
            ..Default::default()
        }
        .compile()
        .is_err());
    }
}
