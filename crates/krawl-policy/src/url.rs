//! `http`/`https` destinations (Schema Registry, OAuth token endpoints) and their patterns.

use std::fmt;

use crate::host::{describe_char, parse_host, Host, HostGlob, PortPattern};
use crate::PolicyError;

/// An `http` or `https` URL a job names, parsed exactly as reqwest (and curl, for librdkafka's
/// OIDC client) will read it: the WHATWG parser normalises case, percent-encoding, dot segments
/// and default ports, and the parts are taken from the parsed form, never from the string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestUrl {
    url: ::url::Url,
    host: Host,
    port: u16,
}

impl DestUrl {
    /// Parses `s`; `what` names the value in errors (`Schema Registry URL`). Refused: other
    /// schemes, credentials in the URL (`user:pass@`), a missing or odd host.
    pub fn parse(what: &'static str, s: &str) -> Result<Self, PolicyError> {
        // Errors show the URL without its userinfo: `user:password@` may be a credential.
        let shown = redact_userinfo(s);
        let s_in = s;
        let s = shown.as_str();
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(PolicyError::entry(
                what,
                s,
                format!("it holds {}", describe_char(c)),
            ));
        }
        let url = ::url::Url::parse(s_in)
            .map_err(|e| PolicyError::entry(what, s, format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PolicyError::entry(
                what,
                s,
                format!(
                    "the scheme `{}` is not allowed; use https:// (or http://)",
                    url.scheme()
                ),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(PolicyError::entry(
                what,
                s,
                "it carries credentials (user:password@); give them as secret references in the auth settings instead",
            ));
        }
        let host = match url.host() {
            Some(::url::Host::Domain(d)) => parse_host(what, s, d)?,
            Some(::url::Host::Ipv4(a)) => Host::V4(a),
            Some(::url::Host::Ipv6(a)) => Host::V6(a),
            None => return Err(PolicyError::entry(what, s, "it has no host")),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| PolicyError::entry(what, s, "it has no port"))?;
        Ok(Self { url, host, port })
    }

    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }

    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// The host, normalised (lower case, IDNA, IPv6 without brackets).
    pub fn host(&self) -> String {
        self.host.to_string()
    }

    /// The port, the scheme's default when the URL names none.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path, normalised (dot segments resolved, percent-encoding canonical).
    pub fn path(&self) -> &str {
        self.url.path()
    }

    /// The normalised URL, as the client will send it.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }
}

impl fmt::Display for DestUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

/// `s` with any `user[:password]@` of its authority replaced by `…@`, for error messages.
pub(crate) fn redact_userinfo(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://…@{}", &rest[at + 1..]),
        None => s.to_string(),
    }
}

/// A pattern for URLs, matched part by part: `scheme://host-glob[:port][/path-prefix]`.
///
/// - scheme: `http` or `https`, exactly;
/// - host: a glob over the host name (`*.prod.internal`), or `[ipv6]`;
/// - port: a port, a range (`8081-8083`) or `*`; absent means the scheme's default (443 / 80);
/// - path: a prefix that ends at a segment boundary (`/ccompat` allows `/ccompat/v7` but not
///   `/ccompatx`); absent means any path. No glob characters in the path.
///
/// `*` alone allows any http(s) URL.
#[derive(Debug, Clone)]
pub struct UrlPattern {
    raw: String,
    any: bool,
    scheme: String,
    host: HostGlob,
    port: PortPattern,
    path: String,
}

impl UrlPattern {
    /// `key` is the config key the pattern comes from, for the error.
    pub fn parse(key: &str, pattern: &str) -> Result<Self, PolicyError> {
        let p = pattern.trim();
        if p == "*" {
            return Ok(Self {
                raw: p.to_string(),
                any: true,
                scheme: String::new(),
                host: HostGlob::Any,
                port: PortPattern::Any,
                path: String::new(),
            });
        }
        let (scheme, rest) = p.split_once("://").ok_or_else(|| {
            PolicyError::pattern(
                key,
                pattern,
                "write scheme://host[:port][/path], e.g. https://sr.prod.internal or https://*.prod.internal:*",
            )
        })?;
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https") {
            return Err(PolicyError::pattern(
                key,
                pattern,
                "the scheme must be https or http",
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(PolicyError::pattern(
                key,
                pattern,
                "a pattern carries no user:password@",
            ));
        }
        if let Some(c) = path
            .chars()
            .find(|c| matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '#') || c.is_whitespace())
        {
            return Err(PolicyError::pattern(
                key,
                pattern,
                format!(
                    "the path holds {}: URL patterns match the host as a glob and the path as a plain prefix; write e.g. https://*.prod.internal:*/ccompat (the old string globs such as https://sr-*.example.com* become https://sr-*.example.com:*)",
                    describe_char(c)
                ),
            ));
        }
        // The port is after the last `:` outside IPv6 brackets.
        let bracket_end = authority.rfind(']').map_or(0, |i| i + 1);
        let (host, port) = match authority[bracket_end..].rfind(':') {
            Some(i) => (
                &authority[..bracket_end + i],
                Some(&authority[bracket_end + i + 1..]),
            ),
            None => (authority, None),
        };
        let host = HostGlob::parse(key, pattern, host)?;
        let port = match port {
            Some(port) => PortPattern::parse(key, pattern, port)?,
            None => {
                let d = if scheme == "https" { 443 } else { 80 };
                PortPattern::Range(d, d)
            }
        };
        // Normalise the prefix as the URL parser does a path (dot segments, encoding), so
        // that the comparison is between two normalised paths.
        let path = if path.is_empty() || path == "/" {
            String::new()
        } else {
            let parsed = ::url::Url::parse(&format!("http://h{path}")).map_err(|e| {
                PolicyError::pattern(key, pattern, format!("the path is not valid ({e})"))
            })?;
            parsed.path().trim_end_matches('/').to_string()
        };
        Ok(Self {
            raw: p.to_string(),
            any: false,
            scheme,
            host,
            port,
            path,
        })
    }

    pub fn matches(&self, url: &DestUrl) -> bool {
        if self.any {
            return true;
        }
        let path = url.path();
        self.scheme == url.scheme()
            && self.host.matches(&url.host)
            && self.port.matches(url.port)
            && (self.path.is_empty()
                || path == self.path
                || path
                    .strip_prefix(self.path.as_str())
                    .is_some_and(|rest| rest.starts_with('/')))
    }

    /// Whether this is `*` (any URL), for the warnings an agent logs at start.
    pub fn is_any(&self) -> bool {
        self.any
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "policy.allowed_schema_registry_urls";

    fn url(s: &str) -> DestUrl {
        DestUrl::parse("Schema Registry URL", s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn pat(s: &str) -> UrlPattern {
        UrlPattern::parse(KEY, s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// The attack from issue 11: as a string glob, `http://*.prod.internal:8081` admitted
    /// `http://other-host:1234/.prod.internal:8081`.
    #[test]
    fn the_host_glob_matches_only_the_host() {
        let p = pat("http://*.prod.internal:8081");
        assert!(p.matches(&url("http://sr.prod.internal:8081/subjects")));
        assert!(!p.matches(&url("http://other-host:1234/.prod.internal:8081")));
        assert!(!p.matches(&url("http://other-host/x?.prod.internal:8081")));
        assert!(!p.matches(&url("http://sr.prod.internal.evil.net:8081")));
        assert!(!p.matches(&url("https://sr.prod.internal:8081")));
    }

    #[test]
    fn scheme_port_and_path_prefix() {
        let p = pat("https://sr.example.com");
        assert!(p.matches(&url("https://sr.example.com")));
        assert!(p.matches(&url("https://SR.example.com:443/ccompat/v7")));
        assert!(!p.matches(&url("https://sr.example.com:8443")));
        assert!(!p.matches(&url("https://sr.example.com.evil.net")));
        let p = pat("https://sr.example.com:*/ccompat");
        assert!(p.matches(&url("https://sr.example.com:8443/ccompat")));
        assert!(p.matches(&url("https://sr.example.com/ccompat/v7")));
        assert!(!p.matches(&url("https://sr.example.com/ccompatx")));
        // Dot segments are resolved before the prefix is compared.
        assert!(!p.matches(&url("https://sr.example.com/ccompat/../admin")));
        assert!(!p.matches(&url("https://sr.example.com/ccompat/%2e%2e/admin")));
        let p = pat("http://127.0.0.1:*");
        assert!(p.matches(&url("http://127.0.0.1:38081")));
        assert!(!p.matches(&url("http://127.0.0.2:38081")));
        assert!(pat("*").matches(&url("http://anything:1")));
        assert!(pat("http://[::1]:8081").matches(&url("http://[0::1]:8081/x")));
    }

    #[test]
    fn urls_with_credentials_or_odd_schemes_are_refused() {
        for (bad, why) in [
            ("https://user:pw@sr.example.com", "credentials"),
            ("https://user@sr.example.com", "credentials"),
            ("file:///etc/passwd", "scheme `file`"),
            ("gopher://sr:70/", "scheme"),
            ("sr.example.com:8081", "scheme"),
            ("https://sr example.com", "whitespace"),
            ("not a url", "whitespace"),
        ] {
            let e = DestUrl::parse("Schema Registry URL", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // The WHATWG parser reads these hosts as 127.0.0.1: they are addresses, not names.
        assert_eq!(url("http://2130706433/").host(), "127.0.0.1");
        assert_eq!(url("https://0x7f.1/").host(), "127.0.0.1");
        assert!(!pat("http://*.internal").matches(&url("http://2130706433/")));
    }

    /// A URL refused for carrying credentials does not show them in the error.
    #[test]
    fn errors_never_show_userinfo() {
        for bad in [
            "https://key:CANARY@sr.example.com/x",
            "https://CANARY@sr.example.com",
            "ftp://u:CANARY@h/",
            "https://u:CANARY@h x/",
        ] {
            let e = DestUrl::parse("Schema Registry URL", bad)
                .unwrap_err()
                .to_string();
            assert!(!e.contains("CANARY"), "{e}");
        }
        assert_eq!(redact_userinfo("https://a:b@h:1/p@q"), "https://…@h:1/p@q");
        assert_eq!(redact_userinfo("https://h/p@q"), "https://h/p@q");
    }

    #[test]
    fn old_string_globs_fail_with_what_to_write() {
        let e = UrlPattern::parse(KEY, "https://sr-*.example.com*/x*")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(KEY) && e.contains("https://sr-*.example.com:*"),
            "{e}"
        );
        for bad in [
            "sr.example.com",
            "ftp://sr",
            "https://u:p@sr",
            "https://sr:x",
        ] {
            assert!(UrlPattern::parse(KEY, bad).is_err(), "{bad}");
        }
    }
}
