//! Secret references: one syntax for every backend.
//!
//! ```text
//! vault://<mount>/<path>[?version=N]#<key>
//! aws-sm://<name-or-arn>[?version-stage=S | ?version-id=V][#<key>]
//! gcp-sm://projects/<p>/secrets/<s>[/versions/<v>][#<key>]
//! azure-kv://<vault-name-or-host>/<secret>[/<version>][#<key>]
//! env://NAME
//! file:///path[#key]
//! anything else: a literal value
//! ```
//! `#key` picks one field of a JSON object secret; without it the raw value
//! is used.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use zeroize::Zeroize;

use crate::{SecretError, SecretString};

/// Where a secret lives.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// The value itself, written in the config. Fine for local use; prefer a store.
    Literal(SecretString),
    /// `env://NAME`: an environment variable of the krawl process.
    Env(String),
    /// `file:///path[#key]`: a file's contents (trailing newline trimmed).
    File { path: PathBuf, key: Option<String> },
    /// `vault://<mount>/<path>[?version=N]#<key>`: HashiCorp Vault / OpenBao KV (v1 or v2).
    Vault {
        mount: String,
        path: String,
        version: Option<u64>,
        key: Option<String>,
    },
    /// `aws-sm://<name-or-arn>[?version-stage=|?version-id=][#key]`: AWS Secrets Manager.
    AwsSm {
        id: String,
        version_stage: Option<String>,
        version_id: Option<String>,
        key: Option<String>,
    },
    /// `gcp-sm://projects/<p>/secrets/<s>[/versions/<v>][#key]`: GCP Secret Manager.
    GcpSm {
        project: String,
        secret: String,
        /// `latest` unless pinned.
        version: String,
        key: Option<String>,
    },
    /// `azure-kv://<vault>/<secret>[/<version>][#key]`: Azure Key Vault. `vault`
    /// is a vault name (`myvault` → `https://myvault.vault.azure.net`) or a
    /// host[:port] (anything with a `.` or `:`), always reached over HTTPS.
    AzureKv {
        vault: String,
        secret: String,
        version: Option<String>,
        key: Option<String>,
    },
}

fn malformed(s: &str, reason: impl Into<String>) -> SecretError {
    SecretError::Malformed {
        reference: s.to_string(),
        reason: reason.into(),
    }
}

/// Split `rest` into (body, query, key): `body?query#key` or `body#key?query`.
fn split_parts(rest: &str) -> (&str, Option<&str>, Option<&str>) {
    let (before_key, key) = match rest.split_once('#') {
        Some((b, k)) => (b, Some(k)),
        None => (rest, None),
    };
    let (body, query) = match before_key.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_key, None),
    };
    // Also accept the query after the key: `#key?version=2`.
    match (query, key.and_then(|k| k.split_once('?'))) {
        (None, Some((k, q))) => (body, Some(q), Some(k)),
        _ => (body, query, key),
    }
}

fn query_params<'a>(
    s: &str,
    query: Option<&'a str>,
    allowed: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, SecretError> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| malformed(s, format!("query parameter `{pair}` needs a value")))?;
        if !allowed.contains(&k) {
            return Err(malformed(
                s,
                format!(
                    "unknown query parameter `{k}`; accepted: {}",
                    allowed.join(", ")
                ),
            ));
        }
        if v.is_empty() {
            return Err(malformed(s, format!("query parameter `{k}` is empty")));
        }
        if !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        {
            return Err(malformed(
                s,
                format!("query parameter `{k}` may hold only letters, digits, `_` and `-`"),
            ));
        }
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(malformed(
                s,
                format!("query parameter `{k}` is given twice"),
            ));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// Characters of a `#key` (a JSON field name). `?`, `#`, `&` and whitespace are excluded so
/// that every reference prints to one string that parses back to it: allowlists match that
/// string.
fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | '@' | '+' | '=' | ',')
}

fn key_of(s: &str, key: Option<&str>) -> Result<Option<String>, SecretError> {
    match key {
        Some("") => Err(malformed(s, "`#` must be followed by a JSON field name")),
        Some(k) if !k.chars().all(key_char) => Err(malformed(
            s,
            "the #key may hold only letters, digits and `_-./:@+=,`",
        )),
        Some(k) => Ok(Some(k.to_string())),
        None => Ok(None),
    }
}

/// A path of `/`-separated segments, none empty, `.` or `..` (they would be resolved by the
/// HTTP client into another API path), each of `allowed` characters.
fn check_segments(
    s: &str,
    what: &str,
    path: &str,
    allowed: impl Fn(char) -> bool,
    shown: &str,
) -> Result<(), SecretError> {
    for seg in path.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(malformed(
                s,
                format!("the {what} has an empty, `.` or `..` segment"),
            ));
        }
        if !seg.chars().all(&allowed) {
            return Err(malformed(s, format!("the {what} may hold only {shown}")));
        }
    }
    Ok(())
}

fn vault_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '=' | ',' | '@' | ':')
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
}

impl SecretRef {
    /// Parse a reference. A value without a recognised `scheme://` is a literal.
    ///
    /// Every part has a fixed character set, so that a reference prints ([`fmt::Display`]) to
    /// exactly one string that parses back to it (allowlists match that string), and so that no
    /// part can carry `..`, `?` or `#` into the store's API path.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let Some((scheme, rest)) = s.split_once("://") else {
            return Ok(Self::Literal(SecretString::new(s)));
        };
        match scheme {
            "env" => {
                if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(malformed(
                        s,
                        "env://NAME needs a variable name of letters, digits and _",
                    ));
                }
                Ok(Self::Env(rest.to_string()))
            }
            "file" => {
                let (path, key) = match rest.split_once('#') {
                    Some((p, k)) => (p, key_of(s, Some(k))?),
                    None => (rest, None),
                };
                if !path.starts_with('/') {
                    return Err(malformed(
                        s,
                        "file:// needs an absolute path, e.g. file:///run/secrets/kafka",
                    ));
                }
                if path.chars().any(|c| c.is_control() || c == '?') {
                    return Err(malformed(s, "the path holds a control character or a `?`"));
                }
                if path.split('/').any(|seg| seg == "." || seg == "..") {
                    return Err(malformed(s, "`.` and `..` are not allowed in a file path (they could leave an allowed directory); give the plain absolute path"));
                }
                Ok(Self::File {
                    path: PathBuf::from(path),
                    key,
                })
            }
            "vault" => {
                let (body, query, key) = split_parts(rest);
                let (mount, path) = body
                    .split_once('/')
                    .filter(|(m, p)| !m.is_empty() && !p.is_empty() && !p.ends_with('/'))
                    .ok_or_else(|| malformed(s, "expected vault://<mount>/<path>#<key>, e.g. vault://secret/kafka/prod#password"))?;
                check_segments(
                    s,
                    "Vault path",
                    body,
                    vault_char,
                    "letters, digits and `_-.+=,@:`",
                )?;
                let mut version = None;
                for (_, v) in query_params(s, query, &["version"])? {
                    version = Some(
                        v.parse::<u64>()
                            .map_err(|_| malformed(s, "version must be a positive integer"))?,
                    );
                }
                Ok(Self::Vault {
                    mount: mount.to_string(),
                    path: path.to_string(),
                    version,
                    key: key_of(s, key)?,
                })
            }
            "aws-sm" => {
                let (body, query, key) = split_parts(rest);
                if body.is_empty() {
                    return Err(malformed(s, "expected aws-sm://<secret-name-or-arn>[#key]"));
                }
                // AWS secret names: letters, digits and /_+=.@-; ARNs add `:`.
                if !body.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, '/' | '_' | '+' | '=' | '.' | '@' | '-' | ':')
                }) {
                    return Err(malformed(
                        s,
                        "an AWS secret name or ARN holds only letters, digits and `/_+=.@-:`",
                    ));
                }
                let (mut version_stage, mut version_id) = (None, None);
                for (k, v) in query_params(s, query, &["version-stage", "version-id"])? {
                    if k == "version-stage" {
                        version_stage = Some(v.to_string());
                    } else {
                        version_id = Some(v.to_string());
                    }
                }
                if version_stage.is_some() && version_id.is_some() {
                    return Err(malformed(s, "give version-stage or version-id, not both"));
                }
                Ok(Self::AwsSm {
                    id: body.to_string(),
                    version_stage,
                    version_id,
                    key: key_of(s, key)?,
                })
            }
            "gcp-sm" => {
                let (body, query, key) = split_parts(rest);
                query_params(s, query, &[])?;
                let parts: Vec<&str> = body.split('/').collect();
                let (project, secret, version) = match parts.as_slice() {
                    ["projects", p, "secrets", sec] => (*p, *sec, "latest"),
                    ["projects", p, "secrets", sec, "versions", v] => (*p, *sec, *v),
                    _ => {
                        return Err(malformed(
                            s,
                            "expected gcp-sm://projects/<project>/secrets/<secret>[/versions/<version>][#key]",
                        ))
                    }
                };
                if project.is_empty() || secret.is_empty() || version.is_empty() {
                    return Err(malformed(
                        s,
                        "project, secret and version must not be empty",
                    ));
                }
                if ![project, secret, version]
                    .iter()
                    .all(|p| p.chars().all(name_char))
                {
                    return Err(malformed(
                        s,
                        "project, secret and version hold only letters, digits, `_` and `-`",
                    ));
                }
                Ok(Self::GcpSm {
                    project: project.to_string(),
                    secret: secret.to_string(),
                    version: version.to_string(),
                    key: key_of(s, key)?,
                })
            }
            "azure-kv" => {
                let (body, query, key) = split_parts(rest);
                query_params(s, query, &[])?;
                let body = body.strip_prefix("https://").unwrap_or(body);
                let parts: Vec<&str> = body.split('/').collect();
                let (vault, secret, version) =
                    match parts.as_slice() {
                        [v, sec] => (*v, *sec, None),
                        [v, sec, ver] => (*v, *sec, Some(*ver)),
                        _ => return Err(malformed(
                            s,
                            "expected azure-kv://<vault-name-or-host>/<secret>[/<version>][#key]",
                        )),
                    };
                if vault.is_empty() || secret.is_empty() || version == Some("") {
                    return Err(malformed(s, "vault, secret and version must not be empty"));
                }
                if !vault
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'))
                {
                    return Err(malformed(
                        s,
                        "the vault is a name or host[:port] of letters, digits, `-` and `.`",
                    ));
                }
                if !secret
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
                    || !version
                        .unwrap_or("v")
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric())
                {
                    return Err(malformed(s, "an Azure secret name holds only letters, digits and `-`, a version only letters and digits"));
                }
                Ok(Self::AzureKv {
                    vault: vault.to_string(),
                    secret: secret.to_string(),
                    version: version.map(str::to_string),
                    key: key_of(s, key)?,
                })
            }
            other
                if !other.is_empty()
                    && other.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
            {
                // Not echoed whole: a literal credential that happens to contain `://` must not
                // end up in an error message.
                Err(SecretError::Malformed {
                    reference: format!("{other}://…"),
                    reason: format!(
                        "unknown secret backend `{other}`; supported: vault://, aws-sm://, gcp-sm://, azure-kv://, env://, file://, or a literal value"
                    ),
                })
            }
            _ => Ok(Self::Literal(SecretString::new(s))),
        }
    }

    /// The backend name, for errors, audit lines and provider lookup.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Literal(_) => "literal",
            Self::Env(_) => "env",
            Self::File { .. } => "file",
            Self::Vault { .. } => "vault",
            Self::AwsSm { .. } => "aws-sm",
            Self::GcpSm { .. } => "gcp-sm",
            Self::AzureKv { .. } => "azure-kv",
        }
    }

    /// The `#key` part: the JSON field to pick.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Literal(_) | Self::Env(_) => None,
            Self::File { key, .. }
            | Self::Vault { key, .. }
            | Self::AwsSm { key, .. }
            | Self::GcpSm { key, .. }
            | Self::AzureKv { key, .. } => key.as_deref(),
        }
    }
}

impl SecretRef {
    /// This reference with a `file://` path resolved ([`krawl_policy::canonical_file`]: symlinks
    /// followed; refused when it has `..`, does not exist, is not a regular file or lies under
    /// `/proc`, `/sys` or `/dev`). Allowlists match the canonical reference and the file store
    /// reads the resolved path, so no link can lead a reference out of an allowed directory.
    /// Other references are returned as they are. Reads file metadata only, never contents.
    pub fn canonical(&self) -> Result<SecretRef, SecretError> {
        match self {
            Self::File { path, key } => {
                let resolved =
                    krawl_policy::canonical_file(path).map_err(|e| file_error(self, e))?;
                Ok(Self::File {
                    path: resolved,
                    key: key.clone(),
                })
            }
            other => Ok(other.clone()),
        }
    }
}

/// A path that does not exist is "not found"; one that is refused (`..`, a pseudo file system,
/// not a regular file) is "not allowed".
pub(crate) fn file_error(r: &SecretRef, e: krawl_policy::FileError) -> SecretError {
    match e {
        krawl_policy::FileError::Unresolvable { .. } => SecretError::NotFound {
            reference: r.to_string(),
            backend: "file",
            hint: format!("{e}; check the path"),
        },
        e => SecretError::NotAllowed {
            reference: r.to_string(),
            reason: e.to_string(),
        },
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(_) => return f.write_str("literal:[redacted]"),
            Self::Env(name) => return write!(f, "env://{name}"),
            Self::File { path, .. } => write!(f, "file://{}", path.display())?,
            Self::Vault {
                mount,
                path,
                version,
                ..
            } => {
                write!(f, "vault://{mount}/{path}")?;
                if let Some(v) = version {
                    write!(f, "?version={v}")?;
                }
            }
            Self::AwsSm {
                id,
                version_stage,
                version_id,
                ..
            } => {
                write!(f, "aws-sm://{id}")?;
                if let Some(v) = version_stage {
                    write!(f, "?version-stage={v}")?;
                } else if let Some(v) = version_id {
                    write!(f, "?version-id={v}")?;
                }
            }
            Self::GcpSm {
                project,
                secret,
                version,
                ..
            } => write!(
                f,
                "gcp-sm://projects/{project}/secrets/{secret}/versions/{version}"
            )?,
            Self::AzureKv {
                vault,
                secret,
                version,
                ..
            } => {
                write!(f, "azure-kv://{vault}/{secret}")?;
                if let Some(v) = version {
                    write!(f, "/{v}")?;
                }
            }
        }
        if let Some(k) = self.key() {
            write!(f, "#{k}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef({self})")
    }
}

/// The JSON Schema `format` of a position that holds a credential: a secret reference. A
/// validator that knows it (the control plane's, through krawl-protocol) refuses literals there.
pub const SECRET_REF_FORMAT: &str = "krawl-secret-ref";

/// The schemes of secret references, as written (`vault://`, …).
pub const SECRET_REF_SCHEMES: &[&str] = &[
    "vault://",
    "aws-sm://",
    "gcp-sm://",
    "azure-kv://",
    "env://",
    "file://",
];

impl schemars::JsonSchema for SecretRef {
    fn schema_name() -> String {
        "SecretRef".to_string()
    }

    /// A string in [`SECRET_REF_FORMAT`]: a credential position.
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        schemars::schema::SchemaObject {
            instance_type: Some(schemars::schema::InstanceType::String.into()),
            format: Some(SECRET_REF_FORMAT.to_string()),
            metadata: Some(Box::new(schemars::schema::Metadata {
                description: Some(
                    "A secret reference: vault://, aws-sm://, gcp-sm://, azure-kv://, env:// or file://, resolved by the agent at call time.".to_string(),
                ),
                ..Default::default()
            })),
            ..Default::default()
        }
        .into()
    }
}

impl SecretRef {
    /// Why `s` is a malformed reference (`None`: it parses, as a reference or a literal). The
    /// reason describes the form, never quotes the text (a literal credential that happens to
    /// contain `://` must not end up in an error).
    pub fn malformed_reason(s: &str) -> Option<String> {
        match SecretRef::parse(s) {
            Err(SecretError::Malformed { reason, .. }) => Some(reason),
            _ => None,
        }
    }

    /// Whether `s` parses as a reference to a store (not a literal, not malformed): what a
    /// credential position of a job spec must hold.
    pub fn is_reference(s: &str) -> bool {
        matches!(SecretRef::parse(s), Ok(r) if !matches!(r, SecretRef::Literal(_)))
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut s = String::deserialize(d)?;
        let parsed = SecretRef::parse(&s).map_err(serde::de::Error::custom);
        s.zeroize();
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &str) -> SecretRef {
        let r = SecretRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(SecretRef::parse(&r.to_string()).unwrap(), r, "{s}");
        r
    }

    #[test]
    fn parses_every_backend() {
        assert_eq!(
            round_trip("vault://secret/kafka/prod?version=3#password"),
            SecretRef::Vault {
                mount: "secret".into(),
                path: "kafka/prod".into(),
                version: Some(3),
                key: Some("password".into())
            }
        );
        assert_eq!(
            SecretRef::parse("vault://kv/app#pw?version=2").unwrap(),
            SecretRef::Vault {
                mount: "kv".into(),
                path: "app".into(),
                version: Some(2),
                key: Some("pw".into())
            }
        );
        assert_eq!(
            round_trip("aws-sm://arn:aws:secretsmanager:eu-west-1:123456789012:secret:kafka-AbCdEf?version-stage=AWSPREVIOUS#password"),
            SecretRef::AwsSm {
                id: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kafka-AbCdEf".into(),
                version_stage: Some("AWSPREVIOUS".into()),
                version_id: None,
                key: Some("password".into())
            }
        );
        assert_eq!(
            round_trip("gcp-sm://projects/p1/secrets/kafka"),
            SecretRef::GcpSm {
                project: "p1".into(),
                secret: "kafka".into(),
                version: "latest".into(),
                key: None
            }
        );
        assert!(matches!(
            round_trip("gcp-sm://projects/p1/secrets/kafka/versions/2#pw"),
            SecretRef::GcpSm { ref version, .. } if version == "2"
        ));
        assert_eq!(
            round_trip("azure-kv://myvault/kafka-pw/abc123#pw"),
            SecretRef::AzureKv {
                vault: "myvault".into(),
                secret: "kafka-pw".into(),
                version: Some("abc123".into()),
                key: Some("pw".into())
            }
        );
        assert!(matches!(
            SecretRef::parse("azure-kv://https://myvault.vault.azure.net/kafka-pw").unwrap(),
            SecretRef::AzureKv { ref vault, .. } if vault == "myvault.vault.azure.net"
        ));
    }

    #[test]
    fn malformed_references_say_what_is_expected() {
        for (s, needle) in [
            ("vault://secret", "vault://<mount>/<path>"),
            ("vault://secret/kafka?version=x#pw", "version must be"),
            ("vault://secret/kafka?v=1#pw", "unknown query parameter `v`"),
            ("vault://secret/kafka#", "JSON field"),
            ("aws-sm://", "aws-sm://<secret-name-or-arn>"),
            ("aws-sm://x?version-stage=A&version-id=B", "not both"),
            ("gcp-sm://p1/kafka", "gcp-sm://projects/"),
            ("azure-kv://onlyvault", "azure-kv://<vault-name-or-host>"),
            ("vaultx://a/b", "unknown secret backend `vaultx`"),
        ] {
            let e = SecretRef::parse(s).unwrap_err().to_string();
            assert!(e.contains(needle), "{s}: {e}");
        }
    }

    /// Each reference prints to exactly one string that parses back to it: allowlists match
    /// the printed form. The first two inputs are what `fuzz/` found (a `?` in the key moved
    /// into the query on printing).
    #[test]
    fn references_round_trip_or_are_refused() {
        for s in [
            "aws-sm://arf:aws:sazure-kv://kaf#seu-weet:k?version-stage=ecretsmanager:eetw",
            "aws-sm://x#k?version-stage=A?B",
            "vault://secret/kafka/../../sys/raw#x",
            "vault://secret//kafka#x",
            "vault://secret/./kafka#x",
            "vault://secret/ka fka#x",
            "vault://secret/kafka?version=1&version=2#x",
            "vault://secret/kafka#k#y",
            "azure-kv://vault/sec?ret",
            "gcp-sm://projects/p/secrets/s%2F..",
            "file:///run/secrets/../../etc/shadow",
            "file:///run/secrets/a?b",
        ] {
            match SecretRef::parse(s) {
                Err(_) => {}
                Ok(r) => assert_eq!(SecretRef::parse(&r.to_string()).unwrap(), r, "{s}"),
            }
        }
        for s in [
            "vault://secret/kafka/../../sys/raw#x",
            "vault://secret//kafka#x",
            "vault://secret/kafka#k#y",
            "file:///run/secrets/../../etc/shadow",
            "aws-sm://x#k?version-stage=A?B",
        ] {
            assert!(SecretRef::parse(s).is_err(), "{s}");
        }
    }

    /// A literal that happens to contain `://` is not echoed by the error it causes.
    #[test]
    fn an_unknown_backend_error_does_not_echo_the_value() {
        let e = SecretRef::parse("hunter2://CANARY-pw")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("CANARY") && e.contains("hunter2://"), "{e}");
    }
}
