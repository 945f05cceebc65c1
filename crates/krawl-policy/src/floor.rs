//! Security floors: transport settings the operator pins for the destinations a pattern matches.
//! A job may tighten them (TLS where the floor does not ask for it), never loosen them.

use std::path::{Path, PathBuf};

use crate::file::canonical_file;
use crate::host::{HostPort, HostPortPattern};
use crate::url::{DestUrl, UrlPattern};
use crate::PolicyError;

/// One floor, e.g. `policy.floors[0]`.
#[derive(Debug, Clone)]
pub struct Floor {
    name: String,
    servers: Vec<HostPortPattern>,
    urls: Vec<UrlPattern>,
    /// TLS required (Kafka: SSL or SASL_SSL; URLs: https).
    pub require_tls: bool,
    /// Host-name verification may not be turned off.
    pub require_hostname_verification: bool,
    /// Kafka: SASL required, with one of these mechanisms (upper case). Empty: no requirement.
    pub sasl_mechanisms: Vec<String>,
    /// The CA bundle every TLS connection to these destinations uses; a job may leave its own
    /// `ca_file` out (this one is used) or name this same file (compared resolved).
    pub ca_file: Option<PathBuf>,
}

/// What a job asks for on one connection, as far as floors care.
#[derive(Debug, Clone, Copy)]
pub struct Transport<'a> {
    pub tls: bool,
    pub verify_hostname: bool,
    /// `None` for no SASL (and for URLs).
    pub sasl_mechanism: Option<&'a str>,
    /// The job's own CA file, if it names one.
    pub ca_file: Option<&'a Path>,
}

/// How a transport falls below a floor. The caller words it with its own config keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    TlsRequired,
    HostnameVerificationRequired,
    /// SASL is required with one of these mechanisms.
    MechanismNotAllowed(Vec<String>),
    /// The job names another CA file than the pinned one (both shown, resolved).
    CaFileMismatch {
        pinned: PathBuf,
        job: String,
    },
}

impl Floor {
    /// `name` is the floor's config key (`policy.floors[2]`), used in every error about it.
    /// Patterns are parsed, `sasl_mechanisms` upper-cased and checked against `mechanisms`, the
    /// CA file must be an absolute path (no file is read here: [`Floor::check_files`] does that,
    /// when the agent starts).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        servers: &[String],
        urls: &[String],
        require_tls: bool,
        require_hostname_verification: bool,
        sasl_mechanisms: &[String],
        mechanisms: &[&str],
        ca_file: Option<&Path>,
    ) -> Result<Self, PolicyError> {
        if servers.is_empty() && urls.is_empty() {
            return Err(PolicyError::pattern(
                name,
                "",
                "a floor needs bootstrap_servers and/or urls patterns saying where it applies",
            ));
        }
        let servers = servers
            .iter()
            .map(|p| HostPortPattern::parse(&format!("{name}.bootstrap_servers"), p))
            .collect::<Result<Vec<_>, _>>()?;
        let urls = urls
            .iter()
            .map(|p| UrlPattern::parse(&format!("{name}.urls"), p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut mechs = Vec::new();
        for m in sasl_mechanisms {
            let up = m.to_ascii_uppercase();
            if !mechanisms.contains(&up.as_str()) {
                return Err(PolicyError::pattern(
                    &format!("{name}.sasl_mechanisms"),
                    m,
                    format!("unknown mechanism; accepted: {}", mechanisms.join(", ")),
                ));
            }
            mechs.push(up);
        }
        if let Some(p) = ca_file {
            if !p.is_absolute() {
                return Err(PolicyError::pattern(
                    &format!("{name}.ca_file"),
                    &p.display().to_string(),
                    "must be an absolute path",
                ));
            }
        }
        let ca_file = ca_file.map(Path::to_path_buf);
        Ok(Self {
            name: name.to_string(),
            servers,
            urls,
            require_tls,
            require_hostname_verification,
            sasl_mechanisms: mechs,
            ca_file,
        })
    }

    /// Resolves the pinned CA file (it must exist and be a regular file): the agent calls this
    /// at start, so that a floor pinning a missing file stops it there, not job by job.
    pub fn check_files(&self) -> Result<(), PolicyError> {
        if let Some(p) = &self.ca_file {
            canonical_file(p).map_err(|e| {
                PolicyError::pattern(
                    &format!("{}.ca_file", self.name),
                    &p.display().to_string(),
                    e.to_string(),
                )
            })?;
        }
        Ok(())
    }

    /// The floor's config key, e.g. `policy.floors[0]`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first of this floor's server patterns that `hp` matches.
    pub fn covers_server(&self, hp: &HostPort) -> Option<&str> {
        self.servers
            .iter()
            .find(|p| p.matches(hp))
            .map(|p| p.as_str())
    }

    /// The first of this floor's URL patterns that `url` matches.
    pub fn covers_url(&self, url: &DestUrl) -> Option<&str> {
        self.urls
            .iter()
            .find(|p| p.matches(url))
            .map(|p| p.as_str())
    }

    /// Every way `t` falls below this floor (empty: it holds). `sasl` says whether the
    /// connection is a Kafka one (SASL rules apply) or a URL (they do not).
    pub fn violations(&self, t: &Transport<'_>, sasl: bool) -> Vec<Violation> {
        let mut out = Vec::new();
        if self.require_tls && !t.tls {
            out.push(Violation::TlsRequired);
        }
        if self.require_hostname_verification && t.tls && !t.verify_hostname {
            out.push(Violation::HostnameVerificationRequired);
        }
        if sasl
            && !self.sasl_mechanisms.is_empty()
            && !t.sasl_mechanism.is_some_and(|m| {
                self.sasl_mechanisms
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(m))
            })
        {
            out.push(Violation::MechanismNotAllowed(self.sasl_mechanisms.clone()));
        }
        if let (Some(pinned), Some(job)) = (&self.ca_file, t.ca_file) {
            // Compare resolved paths: the same file under another name is the same file.
            let same = match (canonical_file(job), canonical_file(pinned)) {
                (Ok(j), Ok(p)) => j == p,
                _ => false,
            };
            if !same {
                out.push(Violation::CaFileMismatch {
                    pinned: pinned.clone(),
                    job: job.display().to_string(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MECHS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn a_floor_covers_its_destinations_and_reports_each_violation() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let other = dir.path().join("other.pem");
        std::fs::write(&ca, "ca").unwrap();
        std::fs::write(&other, "other").unwrap();
        let f = Floor::new(
            "policy.floors[0]",
            &s(&["*.prod.internal:*"]),
            &s(&["https://*.prod.internal:*"]),
            true,
            true,
            &s(&["scram-sha-512"]),
            MECHS,
            Some(&ca),
        )
        .unwrap();
        let hp = HostPort::parse("kafka-1.prod.internal:9093").unwrap();
        assert_eq!(f.covers_server(&hp), Some("*.prod.internal:*"));
        assert_eq!(f.covers_server(&HostPort::parse("dev:9092").unwrap()), None);
        let u = DestUrl::parse("url", "https://sr.prod.internal/x").unwrap();
        assert!(f.covers_url(&u).is_some());

        let good = Transport {
            tls: true,
            verify_hostname: true,
            sasl_mechanism: Some("SCRAM-SHA-512"),
            ca_file: None,
        };
        assert!(f.violations(&good, true).is_empty());
        assert!(f
            .violations(
                &Transport {
                    ca_file: Some(&ca),
                    ..good
                },
                true
            )
            .is_empty());
        let bad = Transport {
            tls: false,
            verify_hostname: false,
            sasl_mechanism: Some("PLAIN"),
            ca_file: Some(&other),
        };
        let v = f.violations(&bad, true);
        assert!(v.contains(&Violation::TlsRequired), "{v:?}");
        assert!(v.contains(&Violation::MechanismNotAllowed(s(&["SCRAM-SHA-512"]))));
        assert!(v
            .iter()
            .any(|x| matches!(x, Violation::CaFileMismatch { .. })));
        let v = f.violations(
            &Transport {
                verify_hostname: false,
                ..good
            },
            true,
        );
        assert_eq!(v, vec![Violation::HostnameVerificationRequired]);
        // No SASL at all when SASL is required.
        let v = f.violations(
            &Transport {
                sasl_mechanism: None,
                ..good
            },
            true,
        );
        assert_eq!(v.len(), 1);
        // URLs: SASL rules do not apply.
        assert!(f
            .violations(
                &Transport {
                    sasl_mechanism: None,
                    ..good
                },
                false
            )
            .is_empty());
    }

    #[test]
    fn bad_floors_name_their_key() {
        let e = Floor::new("policy.floors[1]", &[], &[], true, true, &[], MECHS, None).unwrap_err();
        assert!(e.to_string().contains("policy.floors[1]"), "{e}");
        let e = Floor::new(
            "policy.floors[1]",
            &s(&["*"]),
            &[],
            true,
            true,
            &s(&["GSSAPI"]),
            MECHS,
            None,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("policy.floors[1].sasl_mechanisms"),
            "{e}"
        );
        let pinned = |p: &str| {
            Floor::new(
                "policy.floors[1]",
                &s(&["*"]),
                &[],
                true,
                true,
                &[],
                MECHS,
                Some(Path::new(p)),
            )
        };
        // A missing pinned CA is found when the agent starts (check_files), not at parse.
        let e = pinned("/nope/ca.pem").unwrap().check_files().unwrap_err();
        assert!(e.to_string().contains("policy.floors[1].ca_file"), "{e}");
        let e = pinned("ca.pem").unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
    }
}
