//! Deserializing documents (control-plane request bodies, the tokens file, job specs in the
//! agent) with errors that never carry a value.
//!
//! serde's own messages quote what they refuse (`invalid type: integer 123456789, expected a
//! string`), so a credential sent at the wrong type would end up in the answer and in the log.
//! Here a document is first parsed into a [`serde_json::Value`] (a syntax error is reported by
//! line and column only), then deserialized through [`ValueDeserializer`] with [`FieldError`] as
//! the error type: serde hands the error constructors the offending value, and they keep only
//! its *kind* (`an integer`, `a string`). `serde_path_to_error` supplies the field path.
//! [`parse_json`] is the one entry point of the control plane's HTTP API; [`from_value`] serves
//! its tokens file and the agent's job specs.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Unexpected, Visitor};
use serde_json::Value;

/// Longest field path shown (a path holds the caller's map keys, which may be long).
const MAX_PATH_CHARS: usize = 200;

/// Parses `body` as JSON into `T`; the error names `what` (e.g. `job submission`), the field
/// path and the expected type, never a value.
pub fn parse_json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| syntax_error(&e, what))?;
    from_value(&value, what)
}

/// Deserializes `T` from an already parsed document; errors as [`parse_json`]'s.
pub fn from_value<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(ValueDeserializer::<FieldError>::new(value)).map_err(|e| {
        let path = shown_path(&e.path().to_string());
        describe(what, &path, e.inner())
    })
}

/// A JSON syntax error, by position only (serde_json's syntax messages do not quote the input
/// either, but this way no future message can).
fn syntax_error(e: &serde_json::Error, what: &str) -> String {
    let at = format!("line {} column {}", e.line(), e.column());
    match e.classify() {
        serde_json::error::Category::Eof => {
            format!("malformed {what}: the JSON ends before it is complete ({at})")
        }
        _ => format!("malformed {what}: not valid JSON at {at}"),
    }
}

/// The path as shown: `.` (the document itself) becomes empty; long paths are cut.
fn shown_path(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    if path.chars().count() <= MAX_PATH_CHARS {
        return path.to_string();
    }
    let cut: String = path.chars().take(MAX_PATH_CHARS).collect();
    format!("{cut}…")
}

fn describe(what: &str, path: &str, e: &FieldError) -> String {
    let at = if path.is_empty() {
        "the document".to_string()
    } else {
        format!("field `{path}`")
    };
    let child = |name: &str| {
        if path.is_empty() {
            format!("`{name}`")
        } else {
            format!("`{path}.{name}`")
        }
    };
    match e {
        FieldError::Type { expected, found } | FieldError::Value { expected, found } => {
            format!(
                "malformed {what}: {at} must be {}, found {found}",
                humane(expected)
            )
        }
        // A derived struct also accepts an array of its fields in order: an array of the
        // wrong length lands here.
        FieldError::Length { expected } if expected.starts_with("struct ") => {
            format!("malformed {what}: {at} must be an object, found an array")
        }
        FieldError::Length { expected } => format!(
            "malformed {what}: {at} must be {} (the number of elements differs)",
            humane(expected)
        ),
        FieldError::Variant { expected } => format!(
            "malformed {what}: {at} must be one of {}, found another string",
            quoted_list(expected)
        ),
        // The path already ends with the unknown key.
        FieldError::UnknownField { expected, .. } => format!(
            "malformed {what}: unknown field `{path}`; the known fields are {}",
            quoted_list(expected)
        ),
        FieldError::MissingField(name) => {
            if path.is_empty() {
                format!("malformed {what}: missing field `{name}`")
            } else {
                format!("malformed {what}: missing field {}", child(name))
            }
        }
        FieldError::DuplicateField(name) => {
            format!("malformed {what}: field {} is given twice", child(name))
        }
        FieldError::Other => {
            format!(
                "malformed {what}: {at} has a value that is not accepted (see docs/openapi.json)"
            )
        }
    }
}

fn quoted_list(items: &[&str]) -> String {
    if items.is_empty() {
        return "none".to_string();
    }
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// serde's `expecting` texts, in the words of a JSON document.
fn humane(expected: &str) -> String {
    let unsigned = |max: u64| format!("a whole number from 0 to {max}");
    match expected {
        "u8" => unsigned(u64::from(u8::MAX)),
        "u16" => unsigned(u64::from(u16::MAX)),
        "u32" => unsigned(u64::from(u32::MAX)),
        "u64" | "usize" => unsigned(u64::MAX),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "a sequence" => "an array".to_string(),
        "a map" => "an object".to_string(),
        "a boolean" | "a string" | "a character" => expected.to_string(),
        e if e.starts_with("struct ") => "an object".to_string(),
        e if e.starts_with("enum ") => {
            "one of the values documented in docs/openapi.json".to_string()
        }
        e if e.starts_with("a sequence") || e.starts_with("a tuple") => "an array".to_string(),
        _ => expected.to_string(),
    }
}

/// A deserialization error that keeps the kind of the refused value, never the value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldError {
    Type {
        expected: String,
        found: &'static str,
    },
    Value {
        expected: String,
        found: &'static str,
    },
    Length {
        expected: String,
    },
    /// An enum given a string that is none of its variants.
    Variant {
        expected: &'static [&'static str],
    },
    /// A key of the document (a name, not a value) that the type does not know; the path
    /// names it.
    UnknownField {
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
    DuplicateField(&'static str),
    /// A custom message from a `Deserialize` impl: withheld, it may quote the value.
    Other,
}

/// What kind of value serde refused, without the value.
fn kind_of(unexp: &Unexpected<'_>) -> &'static str {
    match unexp {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) => "an integer",
        Unexpected::Float(_) => "a number",
        Unexpected::Char(_) | Unexpected::Str(_) => "a string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Unit => "null",
        Unexpected::Option => "an optional value",
        Unexpected::NewtypeStruct | Unexpected::NewtypeVariant => "a wrapped value",
        Unexpected::Seq => "an array",
        Unexpected::Map => "an object",
        Unexpected::Enum
        | Unexpected::UnitVariant
        | Unexpected::TupleVariant
        | Unexpected::StructVariant => "an enum value",
        Unexpected::Other(_) => "another kind of value",
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe("document", "", self))
    }
}

impl std::error::Error for FieldError {}

impl de::Error for FieldError {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        FieldError::Other
    }
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        FieldError::Type {
            expected: exp.to_string(),
            found: kind_of(&unexp),
        }
    }
    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        FieldError::Value {
            expected: exp.to_string(),
            found: kind_of(&unexp),
        }
    }
    fn invalid_length(_len: usize, exp: &dyn de::Expected) -> Self {
        FieldError::Length {
            expected: exp.to_string(),
        }
    }
    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        FieldError::Variant { expected }
    }
    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        FieldError::UnknownField { expected }
    }
    fn missing_field(field: &'static str) -> Self {
        FieldError::MissingField(field)
    }
    fn duplicate_field(field: &'static str) -> Self {
        FieldError::DuplicateField(field)
    }
}

/// A [`serde::Deserializer`] over a borrowed [`serde_json::Value`], generic in its error type
/// (serde_json's own is fixed to `serde_json::Error`, whose messages quote values).
#[derive(Debug)]
pub struct ValueDeserializer<'a, E> {
    value: &'a Value,
    marker: PhantomData<E>,
}

impl<'a, E> ValueDeserializer<'a, E> {
    pub fn new(value: &'a Value) -> Self {
        Self {
            value,
            marker: PhantomData,
        }
    }
}

impl<'de, 'a, E: de::Error> IntoDeserializer<'de, E> for ValueDeserializer<'a, E> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de, 'a, E: de::Error> de::Deserializer<'de> for ValueDeserializer<'a, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_str(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.iter().map(ValueDeserializer::new));
                let out = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            Value::Object(map) => {
                let mut access = MapDeserializer::new(
                    map.iter()
                        .map(|(k, v)| (k.as_str(), ValueDeserializer::new(v))),
                );
                let out = visitor.visit_map(&mut access)?;
                access.end()?;
                Ok(out)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    /// Unit variants are strings; anything else is handed to the visitor as is (and refused by
    /// it with an `invalid_type`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        match self.value {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{CompleteRequest, JobHeartbeat, RegisterRequest, SubmitJob};
    use serde::Deserialize;

    /// A value that must never appear in an error, in every shape serde could quote it.
    const CANARY: &str = "canary-7f3e1d";
    const CANARY_NUM: u64 = 918_273_645_546_372;

    fn refuse<T: DeserializeOwned + fmt::Debug>(body: &str) -> String {
        let err = parse_json::<T>(body.as_bytes(), "test body").unwrap_err();
        assert!(!err.contains(CANARY), "{err}");
        assert!(!err.contains(&CANARY_NUM.to_string()), "{err}");
        assert!(!err.contains("918273"), "{err}");
        err
    }

    #[test]
    fn type_errors_name_the_path_and_the_expected_type_only() {
        let err = refuse::<SubmitJob>(&format!(r#"{{"kind": {CANARY_NUM}, "spec": {{}}}}"#));
        assert_eq!(
            err,
            "malformed test body: field `kind` must be a string, found an integer"
        );
        let err = refuse::<SubmitJob>(&format!(
            r#"{{"kind": "k", "spec": {{}}, "max_attempts": "{CANARY}"}}"#
        ));
        assert_eq!(
            err,
            "malformed test body: field `max_attempts` must be a whole number from 0 to 4294967295, found a string"
        );
        let err = refuse::<SubmitJob>(&format!(
            r#"{{"kind": "k", "spec": {{}}, "labels": {{"env": {CANARY_NUM}}}}}"#
        ));
        assert!(err.contains("field `labels.env` must be a string"), "{err}");
        let err = refuse::<RegisterRequest>(&format!(
            r#"{{"name": "a", "version": "v", "capabilities": ["x", {CANARY_NUM}], "max_concurrent_jobs": 1}}"#
        ));
        assert!(
            err.contains("field `capabilities[1]` must be a string"),
            "{err}"
        );
        let err = refuse::<JobHeartbeat>(&format!(r#"{{"records": "{CANARY}", "phase": 1}}"#));
        assert!(
            err.contains("found a string") || err.contains("found an integer"),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_numbers_and_unknown_variants_are_not_quoted() {
        let err = refuse::<SubmitJob>(&format!(
            r#"{{"kind": "k", "spec": {{}}, "lease_ttl_secs": {CANARY_NUM}}}"#
        ));
        assert!(err.contains("field `lease_ttl_secs` must be a whole number from 0 to 4294967295, found an integer"), "{err}");
        let err =
            refuse::<SubmitJob>(r#"{"kind": "k", "spec": {}, "max_attempts": -918273645546372}"#);
        assert!(err.contains("found an integer"), "{err}");
        let err = refuse::<CompleteRequest>(&format!(
            r#"{{"status": "{CANARY}", "chunks": 0, "records": 0, "sha256": ""}}"#
        ));
        assert_eq!(
            err,
            "malformed test body: field `status` must be one of `succeeded`, `failed`, `interrupted`, `cancelled`, found another string"
        );
        let err = refuse::<CompleteRequest>(&format!(
            r#"{{"status": {CANARY_NUM}, "chunks": 0, "records": 0, "sha256": ""}}"#
        ));
        assert!(
            err.contains("field `status` must be one of the values documented"),
            "{err}"
        );
        let err = refuse::<CompleteRequest>(&format!(
            r#"{{"status": "failed", "chunks": 0, "records": 0, "sha256": "", "error": {{"class": "x", "message": {CANARY_NUM}}}}}"#
        ));
        assert!(
            err.contains("field `error.message` must be a string"),
            "{err}"
        );
    }

    #[test]
    fn missing_fields_wrong_documents_and_syntax_errors() {
        let err = refuse::<SubmitJob>(r#"{"kind": "k"}"#);
        assert_eq!(err, "malformed test body: missing field `spec`");
        let err = refuse::<SubmitJob>(&format!(r#"["{CANARY}"]"#));
        assert_eq!(
            err,
            "malformed test body: the document must be an object, found an array"
        );
        let err = refuse::<SubmitJob>(&format!(r#"{{"kind": "{CANARY}"#));
        assert!(err.contains("ends before it is complete"), "{err}");
        let err = refuse::<SubmitJob>(&format!(r#"{{"kind": {CANARY}}}"#));
        assert!(err.contains("not valid JSON at line 1 column"), "{err}");
    }

    #[test]
    fn unknown_fields_are_named_by_key_and_custom_messages_withheld() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Strict {
            name: String,
        }
        let err = refuse::<Strict>(&format!(r#"{{"name": "n", "token": "{CANARY}"}}"#));
        assert_eq!(
            err,
            "malformed test body: unknown field `token`; the known fields are `name`"
        );

        #[derive(Debug)]
        struct Picky;
        impl<'de> Deserialize<'de> for Picky {
            fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Err(de::Error::custom(format!("bad value {s}")))
            }
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Holder {
            p: Picky,
        }
        let err = refuse::<Holder>(&format!(r#"{{"p": "{CANARY}"}}"#));
        assert!(
            err.contains("field `p` has a value that is not accepted"),
            "{err}"
        );
    }

    #[test]
    fn valid_documents_parse_as_serde_json_would() {
        let body = r#"{"kind": "kafka.extract", "spec": {"kafka": {"n": [1, -2, 3.5, null, true]}},
                       "labels": {"env": "prod"}, "max_attempts": 2}"#;
        let ours: SubmitJob = parse_json(body.as_bytes(), "x").unwrap();
        let theirs: SubmitJob = serde_json::from_str(body).unwrap();
        assert_eq!(ours, theirs);
        let hb: JobHeartbeat = parse_json(b"{}", "x").unwrap();
        assert_eq!(hb, JobHeartbeat::default());
        let done: CompleteRequest = parse_json(
            br#"{"status": "failed", "chunks": 1, "records": 2, "sha256": "ab", "error": null}"#,
            "x",
        )
        .unwrap();
        assert_eq!(done.error, None);
    }
}
