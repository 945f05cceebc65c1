//! The agent's local policy (`[policy]` in the agent config): what a job from the control plane
//! may point the agent at. It is checked after the spec is parsed and BEFORE anything is
//! contacted or any secret is resolved; a violation fails the job with class `policy`, naming
//! the offending value and the key to change.
//!
//! # Defaults: deny by default for destinations
//!
//! krawl is read-only by construction, so the danger of an over-trusting agent is not writes but
//! *where its credentials go*: a job may name any `bootstrap_servers` and any secret reference,
//! and the agent would resolve, say, `vault://secret/kafka/prod#password` and send it (SASL PLAIN
//! is the password in clear) to a host the job chose. A compromised or misconfigured control
//! plane could so collect every credential the agent can read. Hence:
//!
//! - `allowed_bootstrap_servers` and `allowed_schema_registry_urls`: **empty = nothing
//!   allowed**. The operator lists the clusters and registries this agent serves; `["*"]`
//!   allows any, knowingly ([`Policy::warnings`] says so, for the agent to log at startup).
//! - `allowed_secret_refs`: empty = no restriction *here*; the `[secrets] allow` list of the
//!   secret resolver still applies (and [`Policy::warnings`] flags an agent with neither).
//! - `allow_literal_secrets` (default `false`): a literal credential in a spec travelled through
//!   the control plane, which the protocol promises never happens; refused unless set.
//! - `allowed_job_kinds`: empty = every kind (all are read-only).
//!
//! Patterns are globs: `*` matches any run of characters (dots and colons included), `?` one
//! character; host names compare case-insensitively. A registry pattern without `*` or `?` is a
//! URL prefix that must end at a path boundary (`https://sr.example.com` allows
//! `https://sr.example.com/ccompat` but not `https://sr.example.com.evil.net`).
//!
//! What is checked: the spec's `kafka.bootstrap_servers` (the brokers the cluster advertises
//! afterwards belong to that allowed cluster), `schema_registry.url`, and every secret reference
//! of the spec (`kafka.sasl.password`, `kafka.sasl.oauthbearer.client_secret`,
//! `kafka.tls.client_key`, `kafka.tls.client_key_password`, `schema_registry.auth.*`,
//! `schema_registry.tls.client_key`).

use krawl_kafka::KafkaConfig;
use krawl_protocol::JobKind;
use krawl_schema_registry::SchemaRegistryConfig;
use krawl_secrets::SecretRef;
use serde::Deserialize;

use super::JobFailure;

/// `[policy]` of the agent config. See the module documentation for the defaults and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// `host:port` glob patterns a job's `kafka.bootstrap_servers` must all match, e.g.
    /// `["kafka-*.prod.internal:9093", "10.1.2.*:9092"]`. Empty: no cluster is allowed;
    /// `["*"]`: any (not recommended: jobs could send credentials anywhere).
    pub allowed_bootstrap_servers: Vec<String>,
    /// URL globs or prefixes a job's `schema_registry.url` must match, e.g.
    /// `["https://sr.prod.internal"]`. Empty: no registry is allowed; `["*"]`: any.
    pub allowed_schema_registry_urls: Vec<String>,
    /// Glob patterns every secret reference of a job must match, e.g.
    /// `["vault://secret/kafka/*"]`. Empty: no restriction here (the `[secrets] allow` list
    /// still applies).
    pub allowed_secret_refs: Vec<String>,
    /// Accept literal (non-reference) secrets in job specs. Default false.
    pub allow_literal_secrets: bool,
    /// Job kinds this agent runs (`kafka.extract`, `kafka.test_connection`, `kafka.preflight`,
    /// `kafka.list_topics`). Empty: all of them.
    pub allowed_job_kinds: Vec<String>,
}

impl Policy {
    /// A policy allowing any destination, reference and kind (tests, local trials).
    pub fn allow_all() -> Self {
        Self {
            allowed_bootstrap_servers: vec!["*".into()],
            allowed_schema_registry_urls: vec!["*".into()],
            allowed_secret_refs: Vec::new(),
            allow_literal_secrets: true,
            allowed_job_kinds: Vec::new(),
        }
    }

    /// Refuse a policy that names an unknown job kind (a typo would silently refuse a kind).
    pub fn validate(&self) -> Result<(), String> {
        for k in &self.allowed_job_kinds {
            if k.parse::<JobKind>().is_err() {
                return Err(format!(
                    "policy.allowed_job_kinds: unknown job kind {k:?}; known kinds: {}",
                    known_kinds()
                ));
            }
        }
        for (key, list) in [
            (
                "policy.allowed_bootstrap_servers",
                &self.allowed_bootstrap_servers,
            ),
            (
                "policy.allowed_schema_registry_urls",
                &self.allowed_schema_registry_urls,
            ),
            ("policy.allowed_secret_refs", &self.allowed_secret_refs),
        ] {
            if list.iter().any(|p| p.trim().is_empty()) {
                return Err(format!(
                    "{key}: an empty pattern matches nothing; remove it"
                ));
            }
        }
        Ok(())
    }

    /// Lines for the agent to log at startup: what this policy leaves open or closed.
    pub fn warnings(&self, secrets_allowlist_set: bool) -> Vec<String> {
        let mut out = Vec::new();
        let any = |l: &[String]| l.iter().any(|p| p == "*");
        if self.allowed_bootstrap_servers.is_empty() {
            out.push("policy.allowed_bootstrap_servers is empty: every Kafka job will be refused until the clusters this agent serves are listed".to_string());
        } else if any(&self.allowed_bootstrap_servers) {
            out.push("policy.allowed_bootstrap_servers allows any host: a job can make this agent send its credentials to any broker".to_string());
        }
        if any(&self.allowed_schema_registry_urls) {
            out.push("policy.allowed_schema_registry_urls allows any URL".to_string());
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

    /// Whether this agent runs `kind`.
    pub fn check_kind(&self, kind: JobKind) -> Result<(), JobFailure> {
        if self.allowed_job_kinds.is_empty()
            || self.allowed_job_kinds.iter().any(|k| k == kind.as_str())
        {
            Ok(())
        } else {
            Err(refused(format!(
                "job kind {kind} is not allowed by this agent's policy; add it to policy.allowed_job_kinds (now {:?})",
                self.allowed_job_kinds
            )))
        }
    }

    /// Check a job's destinations and secret references. Contacts nothing.
    pub fn check(
        &self,
        kafka: &KafkaConfig,
        registry: Option<&SchemaRegistryConfig>,
    ) -> Result<(), JobFailure> {
        for server in &kafka.bootstrap_servers {
            if !self
                .allowed_bootstrap_servers
                .iter()
                .any(|p| glob_match(&p.to_ascii_lowercase(), &server.trim().to_ascii_lowercase()))
            {
                return Err(refused(format!(
                    "bootstrap server {server:?} is not allowed by this agent's policy; add a matching host:port pattern to policy.allowed_bootstrap_servers (now {:?})",
                    self.allowed_bootstrap_servers
                )));
            }
        }
        let mut refs: Vec<(&str, &SecretRef)> = kafka.secret_refs();
        if let Some(sr) = registry {
            let url = sr.url.trim();
            if !self
                .allowed_schema_registry_urls
                .iter()
                .any(|p| url_allowed(p, url))
            {
                return Err(refused(format!(
                    "Schema Registry URL {url:?} is not allowed by this agent's policy; add it (or a matching pattern) to policy.allowed_schema_registry_urls (now {:?})",
                    self.allowed_schema_registry_urls
                )));
            }
            refs.extend(sr.secret_refs());
        }
        for (key, r) in refs {
            if matches!(r, SecretRef::Literal(_)) {
                if !self.allow_literal_secrets {
                    return Err(refused(format!(
                        "`{key}` is a literal secret: job specs must name secrets by reference (vault://, aws-sm://, env://, file://...); set policy.allow_literal_secrets = true to accept literals"
                    )));
                }
                continue;
            }
            let shown = r.to_string();
            if !self.allowed_secret_refs.is_empty()
                && !self
                    .allowed_secret_refs
                    .iter()
                    .any(|p| glob_match(p, &shown))
            {
                return Err(refused(format!(
                    "secret reference {shown} (`{key}`) is not allowed by this agent's policy; add a matching pattern to policy.allowed_secret_refs (now {:?})",
                    self.allowed_secret_refs
                )));
            }
        }
        Ok(())
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

fn url_allowed(pattern: &str, url: &str) -> bool {
    let p = pattern.trim();
    if p.contains(['*', '?']) {
        return glob_match(&p.to_ascii_lowercase(), &url.to_ascii_lowercase());
    }
    let p = p.trim_end_matches('/').to_ascii_lowercase();
    let u = url.trim_end_matches('/').to_ascii_lowercase();
    u == p || u.strip_prefix(&p).is_some_and(|rest| rest.starts_with('/'))
}

/// `*` = any run of characters, `?` = one character; everything else literal; whole string.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything:1"));
        assert!(glob_match("kafka-*.prod:9093", "kafka-1.prod:9093"));
        assert!(!glob_match("kafka-*.prod:9093", "kafka-1.prod:9092"));
        assert!(glob_match("10.0.0.?:9092", "10.0.0.7:9092"));
        assert!(!glob_match("10.0.0.?:9092", "10.0.0.17:9092"));
        assert!(glob_match("127.0.0.1:*", "127.0.0.1:4567"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match(
            "vault://secret/kafka/*",
            "vault://secret/kafka/prod#password"
        ));
    }

    #[test]
    fn registry_prefix_ends_at_a_path_boundary() {
        assert!(url_allowed(
            "https://sr.example.com",
            "https://sr.example.com"
        ));
        assert!(url_allowed(
            "https://sr.example.com/",
            "https://sr.example.com/ccompat/v7"
        ));
        assert!(!url_allowed(
            "https://sr.example.com",
            "https://sr.example.com.evil.net"
        ));
        assert!(url_allowed(
            "https://sr-*.example.com*",
            "https://sr-1.example.com/x"
        ));
    }

    #[test]
    fn default_denies_destinations_and_literals() {
        let p = Policy::default();
        let k = KafkaConfig::new(vec!["b:9092".into()]);
        let e = p.check(&k, None).unwrap_err();
        assert_eq!(e.class, "policy");
        assert!(
            e.message.contains("\"b:9092\"")
                && e.message.contains("policy.allowed_bootstrap_servers")
        );
        let p = Policy {
            allowed_bootstrap_servers: vec!["b:*".into()],
            ..Default::default()
        };
        assert!(p.check(&k, None).is_ok());
        let sr = SchemaRegistryConfig::new("http://sr:8081");
        let e = p.check(&k, Some(&sr)).unwrap_err();
        assert!(e.message.contains("policy.allowed_schema_registry_urls"));
        assert!(Policy::allow_all().check(&k, Some(&sr)).is_ok());
    }

    #[test]
    fn kinds() {
        let p = Policy {
            allowed_job_kinds: vec!["kafka.test_connection".into()],
            ..Default::default()
        };
        assert!(p.check_kind(JobKind::TestConnection).is_ok());
        let e = p.check_kind(JobKind::Extract).unwrap_err();
        assert!(e.message.contains("policy.allowed_job_kinds"));
        assert!(Policy {
            allowed_job_kinds: vec!["kafka.produce".into()],
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
