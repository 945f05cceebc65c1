//! The structure of a job spec, checked the same way by the control plane (at submit) and the
//! agent (before it parses a spec), with messages that name positions, never values.
//!
//! # Why
//!
//! A job spec travels through the control plane, which promises never to hold a credential.
//! Looking for literal credentials by key name misses them as soon as they take another shape:
//! a password as a number or an array, a secret under `kafka.properties."sasl.password"`, in a
//! URL's `user:pass@`, in an OAuth extension. So the spec of every `kafka.*` kind is checked
//! against the JSON Schema generated from the agent's own config types
//! (`schema/job-spec.schema.json`, kept in sync by a test in krawl-agent): unknown keys are
//! refused, every credential position has the format [`krawl_secrets::SECRET_REF_FORMAT`] (a
//! secret reference, whatever JSON type was sent), bootstrap entries the format
//! [`krawl_policy::HOST_PORT_FORMAT`], URLs [`krawl_policy::URL_FORMAT`] (no userinfo), and
//! `kafka.properties` keys only those librdkafka properties the agent passes through.
//!
//! For kinds this crate does not know, [`check_unknown_kind`] falls back to the key names and
//! to URL userinfo anywhere.
//!
//! Messages never echo a value: a literal credential in the wrong place must not end in an
//! error, a log line or a response. They name the position (`spec.kafka.sasl.password`) and
//! what it must hold. (The documents themselves are then deserialized with [`crate::body`],
//! whose errors keep the same rule.)

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::JSONSchema;
use serde_json::Value;

/// The JSON Schema of a `kafka.*` job spec, generated from the agent's config types.
pub const JOB_SPEC_SCHEMA: &str = include_str!("../../../schema/job-spec.schema.json");

/// Who checks: the control plane refuses literals at credential positions; the agent leaves
/// that to its policy (`policy.allow_literal_secrets`), which names the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checker {
    ControlPlane,
    Agent,
}

/// At most this many problems are reported for one spec.
const MAX_PROBLEMS: usize = 10;

fn compiled(checker: Checker) -> Result<&'static JSONSchema, String> {
    static CP: OnceLock<Result<JSONSchema, String>> = OnceLock::new();
    static AGENT: OnceLock<Result<JSONSchema, String>> = OnceLock::new();
    let cell = match checker {
        Checker::ControlPlane => &CP,
        Checker::Agent => &AGENT,
    };
    cell.get_or_init(|| {
        let schema: Value = serde_json::from_str(JOB_SPEC_SCHEMA)
            .map_err(|e| format!("the embedded job-spec schema is not JSON: {e}"))?;
        let mut opts = JSONSchema::options();
        opts.should_validate_formats(true)
            .with_format(krawl_policy::HOST_PORT_FORMAT, |s: &str| {
                krawl_policy::HostPort::parse(s).is_ok()
            })
            .with_format(krawl_policy::URL_FORMAT, |s: &str| {
                krawl_policy::DestUrl::parse("URL", s).is_ok()
            });
        match checker {
            Checker::ControlPlane => {
                opts.with_format(krawl_secrets::SECRET_REF_FORMAT, |s: &str| {
                    krawl_secrets::SecretRef::is_reference(s)
                });
            }
            Checker::Agent => {
                // A literal is the policy's to judge; a malformed reference is refused here.
                opts.with_format(krawl_secrets::SECRET_REF_FORMAT, |s: &str| {
                    krawl_secrets::SecretRef::parse(s).is_ok()
                });
            }
        }
        opts.compile(&schema)
            .map_err(|e| format!("the embedded job-spec schema does not compile: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Checks the spec of a `kafka.*` job. `Err` lists the problems (at most ten), each naming its
/// position under `spec` and what it must hold, never the value found there.
pub fn check(spec: &Value, checker: Checker) -> Result<(), Vec<String>> {
    let schema = compiled(checker).map_err(|e| vec![e])?;
    // serde reads `null` as absent for every optional key; the schema has no null types.
    let spec = &without_nulls(spec);
    let problems: Vec<String> = match schema.validate(spec) {
        Ok(()) => return Ok(()),
        Err(errors) => errors
            .take(MAX_PROBLEMS)
            .map(|e| describe(&e, checker))
            .collect(),
    };
    let mut unique = Vec::with_capacity(problems.len());
    for p in problems {
        if !unique.contains(&p) {
            unique.push(p);
        }
    }
    Err(unique)
}

/// `v` with every object member whose value is `null` removed, at any depth.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Longest key quoted whole in a message; a longer one is shown by its start and length.
const MAX_KEY_SHOWN: usize = 64;
/// Unknown keys named in one message; the rest are counted.
const MAX_KEYS_SHOWN: usize = 10;

/// A key of the spec, quoted for a message. Keys are not values, but a spec's keys come from
/// the control plane: a megabyte-long one must not make a megabyte-long error.
fn shown_key(key: &str) -> String {
    match key.char_indices().nth(MAX_KEY_SHOWN) {
        None => format!("{key:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &key[..end], key.len()),
    }
}

/// `/kafka/sasl/password` → `spec.kafka.sasl.password`; array indices as `[i]`.
fn position(pointer: &str) -> String {
    let mut out = String::from("spec");
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else if seg.len() <= MAX_KEY_SHOWN
            && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            out.push('.');
            out.push_str(&seg);
        } else {
            out.push('.');
            out.push_str(&shown_key(&seg));
        }
    }
    out
}

fn type_name(t: &TypeKind) -> String {
    match t {
        TypeKind::Single(p) => a(&p.to_string()),
        TypeKind::Multiple(set) => {
            let names: Vec<String> = set.into_iter().map(|p| a(&p.to_string())).collect();
            names.join(" or ")
        }
    }
}

fn a(t: &str) -> String {
    match t {
        "object" | "array" | "integer" => format!("an {t}"),
        "null" => "null".to_string(),
        t => format!("a {t}"),
    }
}

/// One problem, named by position and expectation. The instance (the value found) is never
/// formatted, and neither is jsonschema's own message (which quotes it).
fn describe(e: &jsonschema::ValidationError<'_>, checker: Checker) -> String {
    let at = position(&e.instance_path.to_string());
    let what = match &e.kind {
        ValidationErrorKind::Format { format }
            if format == krawl_secrets::SECRET_REF_FORMAT && checker == Checker::Agent =>
        {
            // The reason names what is wrong with the reference's form, not its text.
            let reason = e
                .instance
                .as_str()
                .and_then(krawl_secrets::SecretRef::malformed_reason)
                .unwrap_or_else(|| "it does not parse".to_string());
            format!("is not a well-formed secret reference: {reason}")
        }
        ValidationErrorKind::Format { format } if format == krawl_secrets::SECRET_REF_FORMAT => format!(
            "must be a secret reference ({}…) that the agent resolves inside its own network, not a literal: credentials must not travel through the control plane",
            krawl_secrets::SECRET_REF_SCHEMES.join("…, ")
        ),
        ValidationErrorKind::Format { format } if format == krawl_policy::HOST_PORT_FORMAT => {
            "must be exactly one host:port such as broker-1:9092 (a DNS name, a dotted-quad IPv4 address or a bracketed IPv6 address; no `,`, spaces, scheme, path or user@)".to_string()
        }
        ValidationErrorKind::Format { format } if format == krawl_policy::URL_FORMAT => {
            "must be an http(s) URL without credentials in it (user:password@); give credentials as secret references in the auth settings".to_string()
        }
        ValidationErrorKind::Format { format } => format!("must be in the format {format}"),
        ValidationErrorKind::Type { kind } => format!("must be {}", type_name(kind)),
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let mut keys: Vec<String> = unexpected
                .iter()
                .take(MAX_KEYS_SHOWN)
                .map(|k| shown_key(k))
                .collect();
            if unexpected.len() > MAX_KEYS_SHOWN {
                keys.push(format!("and {} more", unexpected.len() - MAX_KEYS_SHOWN));
            }
            let hint = if at == "spec" && unexpected.iter().any(|k| k == "secrets") {
                " (secret stores are configured on the agent; a job names secrets by reference only)"
            } else {
                ""
            };
            format!("has unknown key(s) {}{hint}", keys.join(", "))
        }
        ValidationErrorKind::PropertyNames { error } => {
            let key = match error.instance.as_ref() {
                Value::String(k) => shown_key(k),
                _ => "a key".to_string(),
            };
            if at.ends_with(".properties") {
                format!("has the key {key}, which is not one of the librdkafka properties an agent passes through (connection, metadata and logging tuning); credentials, files and plugins go through the typed sections")
            } else {
                format!("has the key {key}, which is not allowed here (letters only)")
            }
        }
        ValidationErrorKind::Required { property } => match property {
            Value::String(p) => format!("is missing the required key {p:?}"),
            _ => "is missing a required key".to_string(),
        },
        ValidationErrorKind::Enum { options } => format!("must be one of {options}"),
        ValidationErrorKind::Minimum { limit } => format!("must be at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("must be at most {limit}"),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!("must be more than {limit}"),
        ValidationErrorKind::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        ValidationErrorKind::MinItems { limit } => format!("must have at least {limit} item(s)"),
        ValidationErrorKind::MaxItems { limit } => format!("must have at most {limit} item(s)"),
        ValidationErrorKind::MinLength { limit } => format!("must be at least {limit} character(s) long"),
        ValidationErrorKind::MaxLength { limit } => format!("must be at most {limit} character(s) long"),
        ValidationErrorKind::Pattern { pattern } => format!("must match the pattern {pattern}"),
        ValidationErrorKind::OneOfNotValid | ValidationErrorKind::AnyOf => {
            "matches none of the accepted forms".to_string()
        }
        ValidationErrorKind::OneOfMultipleValid => "matches more than one accepted form".to_string(),
        ValidationErrorKind::FalseSchema => "is not allowed here".to_string(),
        _ => "is not valid here".to_string(),
    };
    format!("{at} {what}")
}

/// Keys whose values are credentials in specs of kinds this crate does not know.
const CREDENTIAL_KEYS: &[&str] = &[
    "password",
    "client_secret",
    "client_key",
    "client_key_password",
    "token",
    "secret",
    "api_key",
    "private_key",
];

/// Deepest nesting [`check_unknown_kind`] walks (serde_json refuses more than 128 anyway).
const MAX_DEPTH: usize = 128;

/// The fallback for kinds this crate does not know: a credential-named key must hold a secret
/// reference (whatever JSON type was sent there), and no string anywhere may be a URL with
/// credentials in it. `Err` names the first position, never the value.
pub fn check_unknown_kind(spec: &Value) -> Result<(), String> {
    walk(spec, "spec", 0)
}

fn walk(v: &Value, at: &str, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("{at} is nested more than {MAX_DEPTH} levels deep"));
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let here = position_of(at, k);
                let credential_key = CREDENTIAL_KEYS.contains(&k.to_ascii_lowercase().as_str());
                match child {
                    Value::String(s) if credential_key && !krawl_secrets::SecretRef::is_reference(s) => {
                        return Err(format!("{here} holds a literal secret; give a secret reference instead ({}…) that the agent resolves inside its own network: credentials must not travel through the control plane", krawl_secrets::SECRET_REF_SCHEMES.join("…, ")));
                    }
                    Value::String(_) => {}
                    Value::Null => {}
                    _ if credential_key => {
                        return Err(format!("{here} must be a secret reference (a string such as vault://…), not a number, boolean, array or object"));
                    }
                    _ => {}
                }
                walk(child, &here, depth + 1)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, &format!("{at}[{i}]"), depth + 1)?;
            }
            Ok(())
        }
        Value::String(s) if has_userinfo(s) => Err(format!(
            "{at} is a URL with credentials in it (user:password@); give credentials as secret references instead"
        )),
        _ => Ok(()),
    }
}

fn position_of(at: &str, key: &str) -> String {
    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.is_empty()
        && key.len() <= MAX_KEY_SHOWN
    {
        format!("{at}.{key}")
    } else {
        format!("{at}.{}", shown_key(key))
    }
}

/// Whether `s` is a URL carrying a user name or password.
fn has_userinfo(s: &str) -> bool {
    s.contains("://")
        && s.contains('@')
        && url::Url::parse(s).is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CANARY: &str = "CANARY-7d1f";

    fn cp(v: Value) -> Vec<String> {
        check(&v, Checker::ControlPlane).err().unwrap_or_default()
    }

    fn assert_refused(v: Value, needle: &str) {
        let problems = cp(v.clone());
        assert!(!problems.is_empty(), "accepted: {v}");
        let all = problems.join("; ");
        assert!(all.contains(needle), "{needle} not in: {all}");
        assert!(!all.contains(CANARY), "a value is echoed: {all}");
        assert!(!all.contains("123456789"), "a value is echoed: {all}");
    }

    fn good() -> Value {
        json!({"kafka": {
            "bootstrap_servers": ["b1:9093", "[::1]:9093"],
            "security_protocol": "SASL_SSL",
            "sasl": {"mechanism": "SCRAM-SHA-512", "username": "u", "password": "vault://secret/kafka#pw"},
            "tls": {"ca_file": "/etc/krawl/ca.pem", "client_key": "file:///etc/krawl/k.pem"},
            "properties": {"socket.keepalive.enable": "true"}
        },
        "extract": {"include_topics": ["^orders"]},
        "schema_registry": {"url": "https://sr.internal", "auth": {"method": "basic", "username": "k", "password": "env://SR"}}})
    }

    #[test]
    fn a_well_formed_spec_passes() {
        assert_eq!(cp(good()), Vec::<String>::new());
        let oauth = json!({"kafka": {"bootstrap_servers": ["b:9093"], "security_protocol": "SASL_SSL",
            "sasl": {"mechanism": "OAUTHBEARER", "oauthbearer": {
                "token_endpoint_url": "https://idp/token", "client_id": "c", "client_secret": "env://S",
                "extensions": {"logicalCluster": "lkc-1", "apiToken": "env://T"}}}}});
        assert_eq!(cp(oauth), Vec::<String>::new());
    }

    /// Issue 11: every shape a literal credential took past the key-name check is refused,
    /// and no refusal quotes it.
    #[test]
    fn literal_credentials_in_any_shape_are_refused_without_echo() {
        let mut v = good();
        v["kafka"]["sasl"]["password"] = json!(CANARY);
        assert_refused(v, "spec.kafka.sasl.password must be a secret reference");
        let mut v = good();
        v["kafka"]["sasl"]["password"] = json!(123456789);
        assert_refused(v, "spec.kafka.sasl.password");
        let mut v = good();
        v["kafka"]["sasl"]["password"] = json!([CANARY]);
        assert_refused(v, "spec.kafka.sasl.password");
        let mut v = good();
        v["kafka"]["sasl"]["password"] = json!({"value": CANARY});
        assert_refused(v, "spec.kafka.sasl.password");
        let mut v = good();
        v["kafka"]["properties"] = json!({"sasl.password": CANARY});
        assert_refused(v, "librdkafka properties");
        let mut v = good();
        v["kafka"]["properties"] = json!({"ssl.key.pem": CANARY});
        assert_refused(v, "\"ssl.key.pem\"");
        let mut v = good();
        v["kafka"]["properties"] = json!({"ssl.engine.location": "/tmp/evil.so"});
        assert_refused(v, "\"ssl.engine.location\"");
        let mut v = good();
        v["schema_registry"]["url"] = json!(format!("https://user:{CANARY}@sr.internal"));
        assert_refused(
            v,
            "spec.schema_registry.url must be an http(s) URL without credentials",
        );
        let mut v = good();
        v["kafka"]["bootstrap_servers"] = json!([format!("user:{CANARY}@b1:9093")]);
        assert_refused(
            v,
            "spec.kafka.bootstrap_servers[0] must be exactly one host:port",
        );
        let mut v = good();
        v["kafka"]["bootstrap_servers"] = json!(["b1:9093,evil:9093"]);
        assert_refused(v, "spec.kafka.bootstrap_servers[0]");
        let mut v = good();
        v["kafka"]["tls"]["client_key"] = json!(format!("-----BEGIN PRIVATE KEY-----{CANARY}"));
        assert_refused(v, "spec.kafka.tls.client_key");
        let mut v = good();
        v["schema_registry"]["auth"] = json!({"method": "bearer", "token": CANARY});
        assert_refused(v, "spec.schema_registry.auth");
        let oauth = |ext: Value, url: &str| {
            json!({"kafka": {"bootstrap_servers": ["b:9093"], "security_protocol": "SASL_SSL",
            "sasl": {"mechanism": "OAUTHBEARER", "oauthbearer": {
                "token_endpoint_url": url, "client_id": "c", "client_secret": "env://S", "extensions": ext}}}})
        };
        assert_refused(
            oauth(json!({"apiToken": CANARY}), "https://idp/t"),
            "spec.kafka.sasl.oauthbearer.extensions.apiToken must be a secret reference",
        );
        assert_refused(
            oauth(json!({}), &format!("https://c:{CANARY}@idp/t")),
            "token_endpoint_url",
        );
        let mut v = good();
        v["kafka"]["sasl"]["pasword"] = json!(CANARY);
        assert_refused(v, "unknown key(s) \"pasword\"");
        let mut v = good();
        v["secrets"] = json!({"vault": {"token": CANARY}});
        assert_refused(v, "secret stores are configured on the agent");
    }

    /// A spec's keys come from the control plane: megabyte-long or countless unknown keys make
    /// a short message.
    #[test]
    fn long_and_many_keys_make_short_messages() {
        let long = "k".repeat(1 << 20);
        let mut v = good();
        v["kafka"][long.as_str()] = json!(1);
        v["kafka"]["properties"] = json!({ long.as_str(): "1" });
        let all = cp(v).join("; ");
        assert!(all.len() < 1024, "{}", all.len());
        assert!(all.contains("… (1048576 bytes)"), "{all}");
        let mut v = good();
        for i in 0..1000 {
            v[format!("x{i}")] = json!(1);
        }
        let all = cp(v).join("; ");
        assert!(all.len() < 1024 && all.contains("and 990 more"), "{all}");
        assert!(
            check_unknown_kind(&json!({ long.as_str(): {"password": 5} }))
                .unwrap_err()
                .len()
                < 1024
        );
    }

    #[test]
    fn the_agent_leaves_literals_to_its_policy() {
        let mut v = good();
        v["kafka"]["sasl"]["password"] = json!("hunter2");
        assert!(check(&v, Checker::Agent).is_ok());
        v["kafka"]["sasl"]["password"] = json!("file:///run/secrets/../CANARY-7d1f");
        let e = check(&v, Checker::Agent).unwrap_err().join("; ");
        assert!(
            e.contains("spec.kafka.sasl.password is not a well-formed secret reference")
                && e.contains("`..`")
                && !e.contains(CANARY),
            "{e}"
        );
        v["kafka"]["sasl"]["password"] = json!(123456789);
        let e = check(&v, Checker::Agent).unwrap_err().join("; ");
        assert!(
            e.contains("spec.kafka.sasl.password must be a string") && !e.contains("123456789"),
            "{e}"
        );
    }

    #[test]
    fn unknown_kinds_fall_back_to_key_names_and_userinfo() {
        assert!(check_unknown_kind(&json!({"x": {"password": "vault://a/b#c"}})).is_ok());
        for (v, needle) in [
            (
                json!({"x": {"password": CANARY}}),
                "spec.x.password holds a literal",
            ),
            (
                json!({"x": {"token": 123456789}}),
                "spec.x.token must be a secret reference",
            ),
            (
                json!({"x": [{"client_secret": [CANARY]}]}),
                "spec.x[0].client_secret",
            ),
            (
                json!({"u": format!("https://a:{CANARY}@h/")}),
                "spec.u is a URL with credentials",
            ),
        ] {
            let e = check_unknown_kind(&v).unwrap_err();
            assert!(
                e.contains(needle) && !e.contains(CANARY) && !e.contains("123456789"),
                "{e}"
            );
        }
    }
}
