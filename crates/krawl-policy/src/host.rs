//! `host:port` entries (bootstrap servers) and the patterns that allow them.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use globset::GlobMatcher;

use crate::glob::{matcher, Case};
use crate::PolicyError;

/// The host of a destination, normalised: DNS names lower-cased, IP addresses parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Host {
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl fmt::Display for Host {
    /// The bare host: a name, a dotted quad, or an IPv6 address WITHOUT brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "{a}"),
        }
    }
}

const WHAT: &str = "bootstrap server";

/// Parses a bare host (no port, no brackets): a DNS name of letters, digits, `-` and `_` in
/// dot-separated labels, or a dotted-quad IPv4 address. (IPv6 addresses come bracketed and are
/// parsed by the caller: unbracketed, `fd00::1:9092` is ambiguous.)
///
/// A host whose last label is numeric, or any label of which starts with `0x`, must be a
/// canonical dotted quad: resolvers read `0x7f.1` or `2130706433` as 127.0.0.1, and a pattern
/// written for names must not be matched by an address in disguise.
pub(crate) fn parse_host(what: &'static str, entry: &str, host: &str) -> Result<Host, PolicyError> {
    if host.is_empty() {
        return Err(PolicyError::entry(what, entry, "the host is empty"));
    }
    if host.contains(':') {
        return Err(PolicyError::entry(
            what,
            entry,
            "the host holds a `:`; write an IPv6 address in brackets, e.g. [fd00::1]:9092",
        ));
    }
    let lower = host.to_ascii_lowercase();
    let labels: Vec<&str> = lower.split('.').collect();
    let numeric = labels
        .last()
        .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
        || labels.iter().any(|l| l.starts_with("0x"));
    if numeric {
        return lower.parse::<Ipv4Addr>().map(Host::V4).map_err(|_| {
            PolicyError::entry(
                what,
                entry,
                "a numeric host must be a dotted-quad IPv4 address such as 10.1.2.3",
            )
        });
    }
    if lower.len() > 253 {
        return Err(PolicyError::entry(
            what,
            entry,
            "the host name is longer than 253 characters",
        ));
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err(PolicyError::entry(
                what,
                entry,
                "the host name has an empty label or one longer than 63 characters",
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(PolicyError::entry(
                what,
                entry,
                format!(
                    "the host name holds {}; host names are letters, digits, `-`, `_` and dots (IDNs in their xn-- form)",
                    describe_char(c)
                ),
            ));
        }
    }
    Ok(Host::Name(lower))
}

/// How a refused character is named in an error.
pub(crate) fn describe_char(c: char) -> String {
    match c {
        ',' => "a `,` (each broker is its own list entry)".to_string(),
        '/' => "a `/` (no scheme or path: host:port only)".to_string(),
        '@' => "a `@` (credentials never go in an address)".to_string(),
        c if c.is_whitespace() => "whitespace".to_string(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    }
}

fn parse_port(what: &'static str, entry: &str, port: &str) -> Result<u16, PolicyError> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PolicyError::entry(
            what,
            entry,
            "the port must be a number from 1 to 65535",
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(PolicyError::entry(
            what,
            entry,
            "the port must be a number from 1 to 65535",
        )),
    }
}

/// Exactly one broker address: `host:port`, with the host a DNS name, a dotted-quad IPv4 address
/// or a bracketed IPv6 address (`[fd00::1]:9092`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    host: Host,
    port: u16,
}

impl HostPort {
    /// Parses one bootstrap entry. Refused, with the entry and the reason: anything a Kafka
    /// client could read as more than one host (`,`, whitespace), a scheme or path (`/`),
    /// credentials (`@`), an empty or non-numeric port, a host that is not a name or an address.
    pub fn parse(entry: &str) -> Result<Self, PolicyError> {
        // A `user:password@` prefix may be a credential: errors show `…@` instead.
        let redacted = match entry.rfind('@') {
            Some(at) => format!("…@{}", &entry[at + 1..]),
            None => entry.to_string(),
        };
        let shown = redacted.as_str();
        Self::parse_shown(entry, shown)
    }

    fn parse_shown(entry: &str, shown: &str) -> Result<Self, PolicyError> {
        if let Some(c) = entry.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
        }) {
            return Err(PolicyError::entry(
                WHAT,
                shown,
                format!("it holds {}", describe_char(c)),
            ));
        }
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (v6, after) = rest.split_once(']').ok_or_else(|| {
                PolicyError::entry(WHAT, shown, "an IPv6 address needs a closing `]`")
            })?;
            let port = after.strip_prefix(':').ok_or_else(|| {
                PolicyError::entry(WHAT, shown, "write host:port, e.g. [fd00::1]:9092")
            })?;
            let addr = v6.parse::<Ipv6Addr>().map_err(|_| {
                PolicyError::entry(WHAT, shown, "the bracketed host is not an IPv6 address")
            })?;
            (Host::V6(addr), port)
        } else {
            let (host, port) = entry.rsplit_once(':').ok_or_else(|| {
                PolicyError::entry(WHAT, shown, "write host:port, e.g. broker-1:9092")
            })?;
            if host.contains(['[', ']']) {
                return Err(PolicyError::entry(
                    WHAT,
                    entry,
                    "brackets only enclose a whole IPv6 address, e.g. [fd00::1]:9092",
                ));
            }
            (parse_host(WHAT, shown, host)?, port)
        };
        Ok(Self {
            host,
            port: parse_port(WHAT, shown, port)?,
        })
    }

    /// The bare host (an IPv6 address without brackets).
    pub fn host(&self) -> String {
        self.host.to_string()
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for HostPort {
    /// The canonical entry, as it is given to the Kafka client.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::V6(a) => write!(f, "[{a}]:{}", self.port),
            h => write!(f, "{h}:{}", self.port),
        }
    }
}

/// The host part of a pattern: any, a glob over names and dotted quads, or one IPv6 address.
#[derive(Debug, Clone)]
pub(crate) enum HostGlob {
    Any,
    Glob(GlobMatcher),
    V6(Ipv6Addr),
}

impl HostGlob {
    /// Parses the host part of a pattern (`*`, `kafka-*.prod.internal`, `10.1.*`, `[fd00::1]`).
    pub(crate) fn parse(key: &str, pattern: &str, host: &str) -> Result<Self, PolicyError> {
        if host == "*" {
            return Ok(HostGlob::Any);
        }
        if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return inner.parse::<Ipv6Addr>().map(HostGlob::V6).map_err(|_| {
                PolicyError::pattern(key, pattern, "the bracketed host is not an IPv6 address")
            });
        }
        if host.is_empty() {
            return Err(PolicyError::pattern(key, pattern, "the host is empty"));
        }
        if let Some(c) = host.chars().find(|c| {
            !(c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '.' | '-' | '_' | '*' | '?' | '[' | ']' | '{' | '}' | ',' | '!'
                ))
        }) {
            return Err(PolicyError::pattern(
                key,
                pattern,
                format!(
                    "the host part holds {}; a host pattern is a glob over host names, e.g. kafka-*.prod.internal",
                    describe_char(c)
                ),
            ));
        }
        Ok(HostGlob::Glob(matcher(key, host, Case::Insensitive)?))
    }

    pub(crate) fn matches(&self, host: &Host) -> bool {
        match (self, host) {
            (HostGlob::Any, _) => true,
            (HostGlob::V6(p), Host::V6(h)) => p == h,
            (HostGlob::V6(_), _) => false,
            (HostGlob::Glob(g), h) => g.is_match(h.to_string()),
        }
    }
}

/// The port part of a pattern: `*`, one port, or an inclusive range `9092-9094`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortPattern {
    Any,
    Range(u16, u16),
}

impl PortPattern {
    pub(crate) fn parse(key: &str, pattern: &str, port: &str) -> Result<Self, PolicyError> {
        if port == "*" {
            return Ok(PortPattern::Any);
        }
        let bad = || {
            PolicyError::pattern(
                key,
                pattern,
                "the port part must be `*`, a port (9093) or a range (9092-9094)",
            )
        };
        let num = |s: &str| -> Result<u16, PolicyError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)
        };
        match port.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(bad());
                }
                Ok(PortPattern::Range(a, b))
            }
            None => {
                let p = num(port)?;
                Ok(PortPattern::Range(p, p))
            }
        }
    }

    pub(crate) fn matches(self, port: u16) -> bool {
        match self {
            PortPattern::Any => true,
            PortPattern::Range(a, b) => (a..=b).contains(&port),
        }
    }
}

/// A pattern for bootstrap servers: `host-glob:port`, e.g. `kafka-*.prod.internal:9093`,
/// `10.1.2.*:9092-9094`, `[fd00::1]:*`, or `*` for any host and port.
#[derive(Debug, Clone)]
pub struct HostPortPattern {
    raw: String,
    host: HostGlob,
    port: PortPattern,
}

impl HostPortPattern {
    /// `key` is the config key the pattern comes from, for the error.
    pub fn parse(key: &str, pattern: &str) -> Result<Self, PolicyError> {
        let p = pattern.trim();
        if p == "*" {
            return Ok(Self {
                raw: p.to_string(),
                host: HostGlob::Any,
                port: PortPattern::Any,
            });
        }
        if p.contains("://") {
            return Err(PolicyError::pattern(
                key,
                pattern,
                "a bootstrap pattern is host:port without a scheme, e.g. kafka-*.prod.internal:9093",
            ));
        }
        let (host, port) = if p.starts_with('[') {
            let end = p.find(']').ok_or_else(|| {
                PolicyError::pattern(key, pattern, "an IPv6 address needs a closing `]`")
            })?;
            let port = p[end + 1..].strip_prefix(':').ok_or_else(|| {
                PolicyError::pattern(key, pattern, "write [ipv6]:port, e.g. [fd00::1]:9092")
            })?;
            (&p[..=end], port)
        } else {
            p.rsplit_once(':').ok_or_else(|| {
                PolicyError::pattern(
                    key,
                    pattern,
                    "write host:port with a port, a range or `*`, e.g. kafka-*.prod.internal:9093 or kafka-*.prod.internal:*",
                )
            })?
        };
        Ok(Self {
            raw: p.to_string(),
            host: HostGlob::parse(key, pattern, host)?,
            port: PortPattern::parse(key, pattern, port)?,
        })
    }

    pub fn matches(&self, hp: &HostPort) -> bool {
        self.host.matches(&hp.host) && self.port.matches(hp.port)
    }

    /// Whether this is `*` (any host, any port), for the warnings an agent logs at start.
    pub fn is_any(&self) -> bool {
        matches!(self.host, HostGlob::Any) && self.port == PortPattern::Any
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(s: &str) -> HostPort {
        HostPort::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn pat(s: &str) -> HostPortPattern {
        HostPortPattern::parse("policy.allowed_bootstrap_servers", s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn one_host_port_per_entry() {
        assert_eq!(
            hp("Kafka-1.Prod.internal:9093").to_string(),
            "kafka-1.prod.internal:9093"
        );
        assert_eq!(hp("10.1.2.3:9092").host(), "10.1.2.3");
        assert_eq!(hp("[fd00::1]:9092").to_string(), "[fd00::1]:9092");
        assert_eq!(hp("[fd00::1]:9092").host(), "fd00::1");
        assert_eq!(hp("my_broker:1").port(), 1);
        for (bad, why) in [
            ("allowed:9092,evil:9092", "`,`"),
            ("allowed:9092 evil:9092", "whitespace"),
            ("SSL://allowed:9093", "`/`"),
            ("user:pw@allowed:9093", "`@`"),
            ("user:CANARY@allowed:9093", "…@allowed:9093"),
            ("allowed", "host:port"),
            ("allowed:", "port"),
            ("allowed:0", "port"),
            ("allowed:65536", "port"),
            ("allowed:+9092", "`+`"),
            (":9092", "empty"),
            ("fd00::1:9092", "brackets"),
            ("[fd00::1]9092", "host:port"),
            ("[nope]:9092", "IPv6"),
            ("a[b]:9092", "brackets"),
            ("0x7f.1:9092", "dotted-quad"),
            ("2130706433:9092", "dotted-quad"),
            ("10.0.0.010:9092", "dotted-quad"),
            ("a..b:9092", "empty label"),
            ("bücher.de:9092", "`ü`"),
            ("a\u{0}b:9092", "control"),
        ] {
            let e = HostPort::parse(bad).unwrap_err().to_string();
            // A `user:password@` prefix is shown as `…@`.
            let shown = match bad.rfind('@') {
                Some(at) => format!("…@{}", &bad[at + 1..]),
                None => bad.to_string(),
            };
            assert!(
                e.contains(why) && e.contains(&format!("{shown:?}")),
                "{bad}: {e}"
            );
            assert!(!e.contains("CANARY") && !e.contains("user:pw"), "{e}");
        }
    }

    #[test]
    fn patterns_match_host_and_port_apart() {
        let p = pat("kafka-*.prod.internal:9093");
        assert!(p.matches(&hp("kafka-1.prod.internal:9093")));
        assert!(p.matches(&hp("KAFKA-1.PROD.INTERNAL:9093")));
        assert!(!p.matches(&hp("kafka-1.prod.internal:9092")));
        assert!(!p.matches(&hp("kafka-1.prod.internal.evil.net:9093")));
        let p = pat("127.0.0.1:*");
        assert!(p.matches(&hp("127.0.0.1:4567")));
        assert!(!p.matches(&hp("127.0.0.2:4567")));
        let p = pat("10.1.*:9092-9094");
        assert!(p.matches(&hp("10.1.2.3:9094")));
        assert!(!p.matches(&hp("10.1.2.3:9095")));
        let p = pat("[fd00::1]:*");
        assert!(p.matches(&hp("[fd00:0::1]:1")));
        assert!(!p.matches(&hp("[fd00::2]:1")));
        assert!(pat("*").is_any() && pat("*").matches(&hp("[::1]:1")));
        assert!(pat("*:*").is_any());
        assert!(!pat("*:9092").is_any());
    }

    /// The attack from issue 11: `host:*` matched `host:1,evil:2` as a string. Such an entry no
    /// longer parses, and no pattern can match across entries.
    #[test]
    fn a_comma_cannot_smuggle_a_second_host() {
        assert!(HostPort::parse("allowed:1,evil:2").is_err());
        assert!(HostPort::parse("allowed:1;evil:2").is_err());
        assert!(HostPort::parse("allowed:1\tevil:2").is_err());
    }

    #[test]
    fn bad_patterns_say_what_to_write() {
        for (bad, why) in [
            ("kafka-*.prod.internal", "host:port"),
            ("kafka:99999", "port part"),
            ("kafka:9094-9092", "port part"),
            ("https://kafka:9093", "without a scheme"),
            ("[fd00::1", "closing"),
            (":9092", "empty"),
        ] {
            let e = HostPortPattern::parse("policy.allowed_bootstrap_servers", bad)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(why) && e.contains("policy.allowed_bootstrap_servers"),
                "{bad}: {e}"
            );
        }
    }
}
