//! Secret references and the secret value type.
//!
//! A config or job names a secret by *reference* (`env://KAFKA_PASSWORD`,
//! `file:///run/secrets/kafka.json#password`, or a literal). The reference is
//! resolved at call time, for one job, into a [`SecretString`].
//!
//! Invariants:
//! - [`SecretString`] cannot be printed or serialized: `Debug` and `Display`
//!   write `[redacted]`, there is no `Serialize`, and the bytes are zeroized
//!   on drop. The only way out is [`SecretString::expose`], whose callers
//!   hand the value to a client library's settings and nothing else.
//! - Errors name the reference and the backend, never the value.
//! - A [`SecretRef`] prints as the reference, except a literal, which prints
//!   as `literal:[redacted]`.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret value. Redacted when printed, zeroized on drop, not serializable.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself. Only for handing to a client's settings.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret lives.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// The value itself, written in the config. Fine for local use; prefer a store.
    Literal(SecretString),
    /// `env://NAME`: an environment variable of the krawl process.
    Env(String),
    /// `file:///path[#key]`: a file's contents (trailing newline trimmed), or
    /// one field of a JSON object in it.
    File { path: PathBuf, key: Option<String> },
}

impl SecretRef {
    /// Parse a reference. A value without a recognised `scheme://` is a literal.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        if let Some(name) = s.strip_prefix("env://") {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(SecretError::Malformed {
                    reference: s.to_string(),
                    reason: "env://NAME needs a variable name of letters, digits and _".into(),
                });
            }
            return Ok(Self::Env(name.to_string()));
        }
        if let Some(rest) = s.strip_prefix("file://") {
            let (path, key) = match rest.split_once('#') {
                Some((p, k)) if !k.is_empty() => (p, Some(k.to_string())),
                Some((p, _)) => (p, None),
                None => (rest, None),
            };
            if !path.starts_with('/') {
                return Err(SecretError::Malformed {
                    reference: s.to_string(),
                    reason: "file:// needs an absolute path, e.g. file:///run/secrets/kafka".into(),
                });
            }
            return Ok(Self::File {
                path: PathBuf::from(path),
                key,
            });
        }
        if let Some((scheme, _)) = s.split_once("://") {
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(SecretError::Malformed {
                    reference: s.to_string(),
                    reason: format!(
                        "unknown secret backend `{scheme}`; supported here: env://, file://, or a literal value"
                    ),
                });
            }
        }
        Ok(Self::Literal(SecretString::new(s)))
    }

    /// The backend name, for errors and audit lines.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Literal(_) => "literal",
            Self::Env(_) => "env",
            Self::File { .. } => "file",
        }
    }

    /// Resolve the reference now.
    pub fn resolve(&self) -> Result<SecretString, SecretError> {
        match self {
            Self::Literal(v) => Ok(v.clone()),
            Self::Env(name) => match std::env::var(name) {
                Ok(v) => Ok(SecretString::new(v)),
                Err(_) => Err(SecretError::NotFound {
                    reference: self.to_string(),
                    hint: format!("set the environment variable {name} for the krawl process"),
                }),
            },
            Self::File { path, key } => {
                let raw = std::fs::read_to_string(path).map_err(|e| {
                    let hint = match e.kind() {
                        std::io::ErrorKind::NotFound => "check the path".to_string(),
                        std::io::ErrorKind::PermissionDenied => {
                            "make the file readable by the krawl user".to_string()
                        }
                        _ => e.to_string(),
                    };
                    SecretError::NotFound {
                        reference: self.to_string(),
                        hint: format!("cannot read {}: {hint}", path.display()),
                    }
                })?;
                let raw = SecretString::new(raw);
                match key {
                    None => Ok(SecretString::new(
                        raw.expose().trim_end_matches(['\n', '\r']),
                    )),
                    Some(key) => {
                        json_field(raw.expose(), key).map_err(|reason| SecretError::KeyMissing {
                            reference: self.to_string(),
                            key: key.clone(),
                            reason,
                        })
                    }
                }
            }
        }
    }
}

/// Pick one string field of a JSON object without keeping the parsed copy around.
fn json_field(raw: &str, key: &str) -> Result<SecretString, String> {
    let mut value: serde_json::Value =
        serde_json::from_str(raw).map_err(|_| "the secret is not a JSON object".to_string())?;
    let out = match value.get(key) {
        Some(serde_json::Value::String(s)) => Ok(SecretString::new(s.as_str())),
        Some(serde_json::Value::Number(n)) => Ok(SecretString::new(n.to_string())),
        Some(_) => Err("the field is not a string".to_string()),
        None => Err("no such field in the JSON object".to_string()),
    };
    if let Some(obj) = value.as_object_mut() {
        for v in obj.values_mut() {
            if let serde_json::Value::String(s) = v {
                s.zeroize();
            }
        }
    }
    out
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(_) => f.write_str("literal:[redacted]"),
            Self::Env(name) => write!(f, "env://{name}"),
            Self::File { path, key: None } => write!(f, "file://{}", path.display()),
            Self::File {
                path,
                key: Some(key),
            } => write!(f, "file://{}#{key}", path.display()),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef({self})")
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

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("malformed secret reference `{reference}`: {reason}")]
    Malformed { reference: String, reason: String },
    #[error("secret `{reference}` not found: {hint}")]
    NotFound { reference: String, hint: String },
    #[error(
        "secret `{reference}`: key `{key}` missing: {reason}; check the #key part of the reference"
    )]
    KeyMissing {
        reference: String,
        key: String,
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "canary-7f3a9c-do-not-print";

    #[test]
    fn secret_string_never_prints() {
        let s = SecretString::new(CANARY);
        assert_eq!(format!("{s}"), "[redacted]");
        assert!(!format!("{s:?}").contains(CANARY));
        assert!(!format!("{:?}", SecretRef::Literal(s.clone())).contains(CANARY));
        assert_eq!(s.expose(), CANARY);
    }

    #[test]
    fn parses_references() {
        assert_eq!(
            SecretRef::parse("env://KAFKA_PW").ok(),
            Some(SecretRef::Env("KAFKA_PW".into()))
        );
        assert_eq!(
            SecretRef::parse("file:///run/s.json#password").ok(),
            Some(SecretRef::File {
                path: "/run/s.json".into(),
                key: Some("password".into())
            })
        );
        assert!(matches!(
            SecretRef::parse("hunter2"),
            Ok(SecretRef::Literal(_))
        ));
        let err = SecretRef::parse("vaultx://a/b").unwrap_err().to_string();
        assert!(err.contains("unknown secret backend `vaultx`"), "{err}");
        assert!(SecretRef::parse("env://").is_err());
        assert!(SecretRef::parse("file://relative/path").is_err());
    }

    #[test]
    fn resolves_env_and_file() {
        std::env::set_var("KRAWL_TEST_SECRET_A", CANARY);
        let v = SecretRef::parse("env://KRAWL_TEST_SECRET_A")
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(v.expose(), CANARY);

        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, format!("{CANARY}\n")).unwrap();
        let r = SecretRef::parse(&format!("file://{}", raw.display())).unwrap();
        assert_eq!(r.resolve().unwrap().expose(), CANARY);

        let json = dir.path().join("creds.json");
        std::fs::write(
            &json,
            format!(r#"{{"username":"svc","password":"{CANARY}"}}"#),
        )
        .unwrap();
        let r = SecretRef::parse(&format!("file://{}#password", json.display())).unwrap();
        assert_eq!(r.resolve().unwrap().expose(), CANARY);

        let r = SecretRef::parse(&format!("file://{}#nope", json.display())).unwrap();
        let err = r.resolve().unwrap_err().to_string();
        assert!(err.contains("key `nope` missing"), "{err}");
        assert!(!err.contains(CANARY));
    }

    #[test]
    fn missing_secrets_name_the_reference_not_the_value() {
        let err = SecretRef::parse("env://KRAWL_TEST_DEFINITELY_UNSET")
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("env://KRAWL_TEST_DEFINITELY_UNSET"), "{err}");
        let err = SecretRef::parse("file:///nonexistent/krawl")
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("check the path"), "{err}");
    }
}
