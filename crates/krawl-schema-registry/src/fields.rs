//! Flat field lists of schemas registered in a Schema Registry (Avro, JSON
//! Schema, Protobuf), for catalogs.
//!
//! [`parse_fields`] turns one schema (plus the schemas it references, already
//! fetched by the caller) into a list of [`SchemaField`]s with dotted paths
//! from the root: a nested record/object/message field is listed itself and
//! then each of its own fields under `field.child`.
//!
//! Conventions shared by the three languages:
//!
//! * **Collections.** A field whose type is an array (Avro `array`, JSON
//!   Schema `array`, Protobuf `repeated`) or a map (Avro `map`, Protobuf
//!   `map<K,V>`) of records is listed with its collection type
//!   (`array<com.acme.Item>`, `map<string,acme.Item>`) and the record's fields
//!   follow directly under the field's path, without an index marker:
//!   `items.sku`, not `items[].sku`. Nested collections are unwrapped the same
//!   way.
//! * **Recursion.** A record/message/definition that is already being expanded
//!   higher up the path is listed with its name as type and not expanded
//!   again.
//! * **Limits.** Expansion stops with an error past [`MAX_FIELDS`] fields or
//!   [`MAX_DEPTH`] levels of nesting, so a hostile schema cannot blow up
//!   memory or the stack.
//!
//! Type names per language:
//!
//! * **Avro**: primitives as named (`string`, `long`, ...); logical types as
//!   `base(logical)` (`long(timestamp-millis)`, `int(date)`,
//!   `string(uuid)`, `bytes(decimal(10,2))`); named types (record, enum,
//!   fixed) by full name; `array<T>`, `map<T>`; a union with `null` makes the
//!   field nullable and keeps the other branch's type, other unions are
//!   `union<a,b>` (the `null` branch dropped, nullable set).
//! * **JSON Schema**: the `type` keyword (`string`, `integer`, `object`, ...),
//!   with `format` as `string(date-time)`; `array<T>`; several types as
//!   `union<a,b>`; `enum`/`const` without `type` as `enum`; `oneOf`/`anyOf`
//!   as `oneOf<a,b>` (a `null` branch makes the field nullable); a property
//!   with no type at all as `any`. `allOf` members' properties are merged.
//!   Properties are listed in key (alphabetical) order, not declaration
//!   order: the workspace's `serde_json` does not preserve object order.
//! * **Protobuf**: scalar names as in `.proto` (`int64`, `string`, ...);
//!   messages and enums by full name (`google.protobuf.Timestamp`);
//!   `repeated<T>`; `map<K,V>`. Well-known types (`google.protobuf.*`) are not
//!   expanded into their own fields.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use krawl_model::SchemaField;
use serde_json::{Map, Value};

/// Most fields one schema may expand to.
pub const MAX_FIELDS: usize = 10_000;
/// Deepest nesting of records/objects/messages that is expanded.
pub const MAX_DEPTH: usize = 64;

/// Schema language, from the registry's `schemaType` (absent means Avro).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SchemaType {
    #[default]
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    /// The registry's `schemaType` field: absent (or empty) means Avro.
    pub fn from_registry(schema_type: Option<&str>) -> Result<Self, FieldsError> {
        match schema_type {
            None => Ok(SchemaType::Avro),
            Some(s) if s.trim().is_empty() => Ok(SchemaType::Avro),
            Some(s) => s.parse(),
        }
    }

    /// The registry's spelling (`AVRO`, `JSON`, `PROTOBUF`).
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }
}

impl fmt::Display for SchemaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchemaType {
    type Err = FieldsError;

    /// `AVRO`, `JSON` or `PROTOBUF`, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "AVRO" => Ok(SchemaType::Avro),
            "JSON" => Ok(SchemaType::Json),
            "PROTOBUF" => Ok(SchemaType::Protobuf),
            _ => Err(FieldsError::UnknownSchemaType(s.to_owned())),
        }
    }
}

/// A schema the parsed one references, already fetched by the caller.
///
/// `name` is the registry reference's name: the import path for Protobuf
/// (`other.proto`), a named type's full name (or anything, the schema is
/// scanned for named types) for Avro, the `$ref` URL / `$id` for JSON Schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referenced {
    pub name: String,
    pub schema: String,
}

/// Why a schema could not be turned into fields.
#[derive(Debug, thiserror::Error)]
pub enum FieldsError {
    #[error("unknown schema type {0:?} (expected AVRO, JSON or PROTOBUF)")]
    UnknownSchemaType(String),
    #[error("{schema_type} schema{} is not valid JSON: {source}", in_ref(.reference))]
    NotJson {
        schema_type: SchemaType,
        reference: Option<String>,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid {schema_type} schema{}: {message}", in_ref(.reference))]
    Invalid {
        schema_type: SchemaType,
        reference: Option<String>,
        message: String,
    },
    #[error("PROTOBUF schema does not compile: {0}")]
    Protobuf(String),
    #[error("{schema_type} schema expands to more than {MAX_FIELDS} fields or {MAX_DEPTH} levels")]
    TooLarge { schema_type: SchemaType },
}

fn in_ref(reference: &Option<String>) -> String {
    match reference {
        Some(r) => format!(" (reference {r:?})"),
        None => String::new(),
    }
}

fn invalid(schema_type: SchemaType, message: impl Into<String>) -> FieldsError {
    FieldsError::Invalid {
        schema_type,
        reference: None,
        message: message.into(),
    }
}

fn parse_json(
    schema_type: SchemaType,
    text: &str,
    reference: Option<&str>,
) -> Result<Value, FieldsError> {
    serde_json::from_str(text).map_err(|source| FieldsError::NotJson {
        schema_type,
        reference: reference.map(str::to_owned),
        source,
    })
}

/// The flat field list of `schema`. See the module docs for the conventions.
pub fn parse_fields(
    schema_type: SchemaType,
    schema: &str,
    references: &[Referenced],
) -> Result<Vec<SchemaField>, FieldsError> {
    match schema_type {
        SchemaType::Avro => avro::fields(schema, references),
        SchemaType::Json => json::fields(schema, references),
        SchemaType::Protobuf => proto::fields(schema, references),
    }
}

/// Fully qualified top-level record names, for `RecordNameStrategy` binding:
/// Avro: the record's `namespace.name` (each named branch for a top-level
/// union); Protobuf: `package.Message` for each top-level message; JSON
/// Schema: the root `title`, if any.
pub fn record_names(schema_type: SchemaType, schema: &str) -> Result<Vec<String>, FieldsError> {
    match schema_type {
        SchemaType::Avro => avro::record_names(schema),
        SchemaType::Json => {
            let root = parse_json(SchemaType::Json, schema, None)?;
            Ok(root
                .get("title")
                .and_then(Value::as_str)
                .map(|t| vec![t.to_owned()])
                .unwrap_or_default())
        }
        SchemaType::Protobuf => proto::record_names(schema),
    }
}

/// Collects output fields and enforces [`MAX_FIELDS`].
struct Out {
    schema_type: SchemaType,
    fields: Vec<SchemaField>,
}

impl Out {
    fn new(schema_type: SchemaType) -> Self {
        Out {
            schema_type,
            fields: Vec::new(),
        }
    }

    fn push(
        &mut self,
        path: String,
        name: &str,
        type_name: String,
        doc: Option<String>,
        nullable: bool,
    ) -> Result<(), FieldsError> {
        if self.fields.len() >= MAX_FIELDS {
            return Err(FieldsError::TooLarge {
                schema_type: self.schema_type,
            });
        }
        self.fields.push(SchemaField {
            path,
            name: name.to_owned(),
            type_name,
            doc,
            nullable,
        });
        Ok(())
    }

    fn check_depth(&self, depth: usize) -> Result<(), FieldsError> {
        if depth > MAX_DEPTH {
            return Err(FieldsError::TooLarge {
                schema_type: self.schema_type,
            });
        }
        Ok(())
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn non_empty_doc(doc: Option<&str>) -> Option<String> {
    doc.map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
}

mod avro {
    //! Avro: the schema JSON walked by hand, named types resolved per the
    //! spec's namespace rules against the schema itself and its references.
    //!
    //! Unknown named-type references are not an error: the field keeps the
    //! name as its type and is not expanded (a catalog is better off with a
    //! partial list).

    use super::*;

    const T: SchemaType = SchemaType::Avro;

    const PRIMITIVES: &[&str] = &[
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ];

    /// Named types by full name, with the namespace their own definitions
    /// resolve names in.
    #[derive(Default)]
    struct Names {
        types: HashMap<String, Value>,
    }

    /// Full name and namespace of a named type definition.
    fn full_name(def: &Map<String, Value>, enclosing: &str) -> Option<(String, String)> {
        let name = def.get("name")?.as_str()?;
        if let Some((ns, _)) = name.rsplit_once('.') {
            return Some((name.to_owned(), ns.to_owned()));
        }
        let ns = match def.get("namespace") {
            Some(Value::String(ns)) => ns.as_str(),
            Some(Value::Null) => "",
            _ => enclosing,
        };
        let full = if ns.is_empty() {
            name.to_owned()
        } else {
            format!("{ns}.{name}")
        };
        Some((full, ns.to_owned()))
    }

    /// Resolves a type name used in `ns` to a full name.
    fn resolve_name(names: &Names, name: &str, ns: &str) -> String {
        if name.contains('.') || ns.is_empty() {
            return name.to_owned();
        }
        let qualified = format!("{ns}.{name}");
        if names.types.contains_key(&qualified) || !names.types.contains_key(name) {
            qualified
        } else {
            name.to_owned()
        }
    }

    impl Names {
        /// Registers every named type defined anywhere in `schema`.
        fn collect(&mut self, schema: &Value, ns: &str, depth: usize) {
            if depth > MAX_DEPTH * 4 {
                return;
            }
            match schema {
                Value::Array(branches) => {
                    for b in branches {
                        self.collect(b, ns, depth + 1);
                    }
                }
                Value::Object(def) => {
                    let kind = def.get("type");
                    match kind.and_then(Value::as_str) {
                        Some("record" | "error" | "enum" | "fixed") => {
                            let Some((full, own_ns)) = full_name(def, ns) else {
                                return;
                            };
                            let mut stored = def.clone();
                            stored.insert("__ns".into(), Value::String(own_ns.clone()));
                            stored.insert("__full".into(), Value::String(full.clone()));
                            self.types.entry(full).or_insert(Value::Object(stored));
                            if let Some(Value::Array(fields)) = def.get("fields") {
                                for f in fields {
                                    if let Some(t) = f.get("type") {
                                        self.collect(t, &own_ns, depth + 1);
                                    }
                                }
                            }
                        }
                        Some("array") => {
                            if let Some(items) = def.get("items") {
                                self.collect(items, ns, depth + 1);
                            }
                        }
                        Some("map") => {
                            if let Some(values) = def.get("values") {
                                self.collect(values, ns, depth + 1);
                            }
                        }
                        _ => {
                            if let Some(inner @ (Value::Object(_) | Value::Array(_))) = kind {
                                self.collect(inner, ns, depth + 1);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// A type, as far as field listing needs it.
    struct Resolved<'a> {
        type_name: String,
        nullable: bool,
        /// The record whose fields go under this field's path, if any.
        record: Option<&'a Map<String, Value>>,
    }

    struct Walker<'a> {
        names: &'a Names,
        out: Out,
        stack: Vec<String>,
    }

    impl<'a> Walker<'a> {
        fn describe(
            &self,
            schema: &'a Value,
            ns: &str,
            depth: usize,
        ) -> Result<Resolved<'a>, FieldsError> {
            self.out.check_depth(depth)?;
            match schema {
                Value::String(name) => {
                    if PRIMITIVES.contains(&name.as_str()) {
                        return Ok(Resolved {
                            type_name: name.clone(),
                            nullable: name == "null",
                            record: None,
                        });
                    }
                    let full = resolve_name(self.names, name, ns);
                    match self.names.types.get(&full) {
                        Some(def) => self.describe(def, ns, depth + 1),
                        None => Ok(Resolved {
                            type_name: full,
                            nullable: false,
                            record: None,
                        }),
                    }
                }
                Value::Array(branches) => {
                    let mut nullable = false;
                    let mut rest = Vec::new();
                    for b in branches {
                        let r = self.describe(b, ns, depth + 1)?;
                        if r.type_name == "null" {
                            nullable = true;
                        } else {
                            rest.push(r);
                        }
                    }
                    if rest.len() == 1 {
                        let mut only = rest.remove(0);
                        only.nullable |= nullable;
                        return Ok(only);
                    }
                    let names: Vec<String> = rest.into_iter().map(|r| r.type_name).collect();
                    Ok(Resolved {
                        type_name: if names.is_empty() {
                            "null".to_owned()
                        } else {
                            format!("union<{}>", names.join(","))
                        },
                        nullable,
                        record: None,
                    })
                }
                Value::Object(def) => {
                    let Some(kind) = def.get("type") else {
                        return Err(invalid(T, "type object without \"type\""));
                    };
                    let logical = def.get("logicalType").and_then(Value::as_str);
                    match kind {
                        Value::String(k) => match k.as_str() {
                            "record" | "error" | "enum" | "fixed" => {
                                let full = match def.get("__full").and_then(Value::as_str) {
                                    Some(f) => f.to_owned(),
                                    None => full_name(def, ns)
                                        .map(|(f, _)| f)
                                        .ok_or_else(|| invalid(T, format!("{k} without a name")))?,
                                };
                                // Definitions are stored once; prefer the stored copy (it knows its namespace).
                                let def = match self.names.types.get(&full) {
                                    Some(Value::Object(stored)) => stored,
                                    _ => def,
                                };
                                let type_name = match logical {
                                    Some(l) => format!("{full}({})", logical_name(def, l)),
                                    None => full,
                                };
                                Ok(Resolved {
                                    type_name,
                                    nullable: false,
                                    record: matches!(k.as_str(), "record" | "error").then_some(def),
                                })
                            }
                            "array" | "map" => {
                                let key = if k == "array" { "items" } else { "values" };
                                let inner = def
                                    .get(key)
                                    .ok_or_else(|| invalid(T, format!("{k} without \"{key}\"")))?;
                                let r = self.describe(inner, ns, depth + 1)?;
                                let inner_name = if r.nullable && r.type_name != "null" {
                                    format!("union<null,{}>", r.type_name)
                                } else {
                                    r.type_name
                                };
                                Ok(Resolved {
                                    type_name: format!("{k}<{inner_name}>"),
                                    nullable: false,
                                    record: r.record,
                                })
                            }
                            _ => {
                                let mut r = self.describe(kind, ns, depth + 1)?;
                                if let Some(l) = logical {
                                    r.type_name =
                                        format!("{}({})", r.type_name, logical_name(def, l));
                                }
                                Ok(r)
                            }
                        },
                        other => self.describe(other, ns, depth + 1),
                    }
                }
                other => Err(invalid(T, format!("unexpected type {other}"))),
            }
        }

        fn record(
            &mut self,
            def: &'a Map<String, Value>,
            prefix: &str,
            depth: usize,
        ) -> Result<(), FieldsError> {
            self.out.check_depth(depth)?;
            let ns = def
                .get("__ns")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let fields = def
                .get("fields")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid(T, "record without a \"fields\" array"))?;
            for field in fields {
                let name = field
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(T, "record field without a \"name\""))?;
                let ty = field
                    .get("type")
                    .ok_or_else(|| invalid(T, format!("field {name:?} without a \"type\"")))?;
                let r = self.describe(ty, &ns, depth + 1)?;
                let path = join(prefix, name);
                let doc = non_empty_doc(field.get("doc").and_then(Value::as_str));
                self.out
                    .push(path.clone(), name, r.type_name, doc, r.nullable)?;
                if let Some(child) = r.record {
                    let full = child
                        .get("__full")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    if self.stack.contains(&full) {
                        continue;
                    }
                    self.stack.push(full);
                    self.record(child, &path, depth + 1)?;
                    self.stack.pop();
                }
            }
            Ok(())
        }
    }

    fn logical_name(def: &Map<String, Value>, logical: &str) -> String {
        if logical == "decimal" {
            let precision = def.get("precision").and_then(Value::as_u64);
            let scale = def.get("scale").and_then(Value::as_u64).unwrap_or(0);
            if let Some(p) = precision {
                return format!("decimal({p},{scale})");
            }
        }
        logical.to_owned()
    }

    fn load(schema: &str, references: &[Referenced]) -> Result<(Value, Names), FieldsError> {
        let root = parse_json(T, schema, None)?;
        let mut names = Names::default();
        for r in references {
            let v = parse_json(T, &r.schema, Some(&r.name))?;
            names.collect(&v, "", 0);
        }
        names.collect(&root, "", 0);
        Ok((root, names))
    }

    pub(super) fn fields(
        schema: &str,
        references: &[Referenced],
    ) -> Result<Vec<SchemaField>, FieldsError> {
        let (root, names) = load(schema, references)?;
        let mut walker = Walker {
            names: &names,
            out: Out::new(T),
            stack: Vec::new(),
        };
        let r = walker.describe(&root, "", 0)?;
        if let Some(def) = r.record {
            if !r.type_name.starts_with("array<") && !r.type_name.starts_with("map<") {
                let full = def
                    .get("__full")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                walker.stack.push(full);
                walker.record(def, "", 0)?;
            }
        }
        Ok(walker.out.fields)
    }

    pub(super) fn record_names(schema: &str) -> Result<Vec<String>, FieldsError> {
        let (root, names) = load(schema, &[])?;
        let top: Vec<&Value> = match &root {
            Value::Array(branches) => branches.iter().collect(),
            other => vec![other],
        };
        let mut out = Vec::new();
        for t in top {
            match t {
                Value::Object(def)
                    if matches!(
                        def.get("type").and_then(Value::as_str),
                        Some("record" | "error")
                    ) =>
                {
                    if let Some((full, _)) = full_name(def, "") {
                        out.push(full);
                    }
                }
                Value::String(name) if !PRIMITIVES.contains(&name.as_str()) => {
                    let full = resolve_name(&names, name, "");
                    out.push(full);
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

mod json {
    //! JSON Schema: `properties` walked recursively, `$ref` resolved by JSON
    //! pointer inside the current document or inside a reference (matched by
    //! reference name, `$id`, or the last path segment of either).

    use super::*;

    const T: SchemaType = SchemaType::Json;

    struct Docs {
        /// Reference documents, by reference name.
        refs: Vec<(String, Value)>,
    }

    struct Walker<'a> {
        root: &'a Value,
        docs: &'a Docs,
        out: Out,
        /// `doc-index#pointer` of definitions being expanded.
        stack: Vec<String>,
    }

    /// The schema a `$ref` points to, with the document it lives in.
    struct Target<'a> {
        key: String,
        doc: &'a Value,
        schema: &'a Value,
    }

    fn last_segment(s: &str) -> &str {
        s.trim_end_matches('/').rsplit('/').next().unwrap_or(s)
    }

    impl<'a> Walker<'a> {
        fn find_doc(&self, base: &str) -> Option<(usize, &'a Value)> {
            let refs = &self.docs.refs;
            let by = |f: &dyn Fn(&str, &Value) -> bool| {
                refs.iter()
                    .position(|(n, v)| f(n, v))
                    .map(|i| (i + 1, &refs[i].1))
            };
            let id_of = |v: &Value| v.get("$id").and_then(Value::as_str).map(str::to_owned);
            by(&|n, _| n == base)
                .or_else(|| by(&|_, v| id_of(v).as_deref() == Some(base)))
                .or_else(|| by(&|n, _| last_segment(n) == last_segment(base)))
                .or_else(|| {
                    by(&|_, v| id_of(v).is_some_and(|id| last_segment(&id) == last_segment(base)))
                })
        }

        fn resolve(&self, doc: &'a Value, reference: &str) -> Option<Target<'a>> {
            let (base, fragment) = reference.split_once('#').unwrap_or((reference, ""));
            let (index, doc) = if base.is_empty() {
                let index = if std::ptr::eq(doc, self.root) {
                    0
                } else {
                    self.docs
                        .refs
                        .iter()
                        .position(|(_, v)| std::ptr::eq(v, doc))
                        .map_or(0, |i| i + 1)
                };
                (index, doc)
            } else {
                self.find_doc(base)?
            };
            let schema = if fragment.is_empty() {
                doc
            } else if fragment.starts_with('/') {
                let pointer = fragment.replace("%24", "$").replace("%25", "%");
                doc.pointer(&pointer)?
            } else {
                // Anchor-style fragment: a definition with that `$anchor`/`$id`.
                ["definitions", "$defs"].iter().find_map(|k| {
                    doc.get(*k)?.as_object()?.values().find(|d| {
                        d.get("$anchor").and_then(Value::as_str) == Some(fragment)
                            || d.get("$id").and_then(Value::as_str) == Some(&format!("#{fragment}"))
                    })
                })?
            };
            Some(Target {
                key: format!("{index}#{fragment}"),
                doc,
                schema,
            })
        }

        /// Follows `$ref` chains (bounded); returns the final schema, its
        /// document and the keys of the definitions passed through.
        fn deref(
            &self,
            doc: &'a Value,
            schema: &'a Value,
        ) -> (&'a Value, &'a Value, Vec<String>, Option<String>) {
            let mut doc = doc;
            let mut schema = schema;
            let mut keys = Vec::new();
            let mut last_ref = None;
            for _ in 0..MAX_DEPTH {
                let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
                    break;
                };
                match self.resolve(doc, r) {
                    Some(t) => {
                        if keys.contains(&t.key) {
                            break;
                        }
                        keys.push(t.key);
                        doc = t.doc;
                        schema = t.schema;
                        last_ref = Some(r.to_owned());
                    }
                    None => {
                        last_ref = Some(r.to_owned());
                        keys.push(format!("unresolved:{r}"));
                        break;
                    }
                }
            }
            (doc, schema, keys, last_ref)
        }

        /// Type name and nullability of a (dereferenced) schema.
        fn type_of(
            &self,
            doc: &'a Value,
            schema: &'a Value,
            depth: usize,
        ) -> Result<(String, bool), FieldsError> {
            self.out.check_depth(depth)?;
            let (doc, schema, keys, last_ref) = self.deref(doc, schema);
            if keys.last().is_some_and(|k| k.starts_with("unresolved:")) {
                return Ok((last_ref.unwrap_or_default(), false));
            }
            let Some(obj) = schema.as_object() else {
                // `true` / `false` schemas.
                return Ok(("any".to_owned(), false));
            };
            let with_format = |t: &str| match obj.get("format").and_then(Value::as_str) {
                Some(f) => format!("{t}({f})"),
                None => t.to_owned(),
            };
            match obj.get("type") {
                Some(Value::String(t)) if t == "array" => {
                    let inner = match obj.get("items") {
                        Some(items @ Value::Object(_)) => self.type_of(doc, items, depth + 1)?.0,
                        Some(Value::Array(tuple)) => {
                            let names: Result<Vec<_>, _> = tuple
                                .iter()
                                .map(|i| self.type_of(doc, i, depth + 1).map(|t| t.0))
                                .collect();
                            format!("tuple<{}>", names?.join(","))
                        }
                        _ => "any".to_owned(),
                    };
                    Ok((format!("array<{inner}>"), false))
                }
                Some(Value::String(t)) => Ok((with_format(t), t == "null")),
                Some(Value::Array(types)) => {
                    let mut nullable = false;
                    let mut rest = Vec::new();
                    for t in types.iter().filter_map(Value::as_str) {
                        if t == "null" {
                            nullable = true;
                        } else if t == "array" {
                            let inner = match obj.get("items") {
                                Some(items @ Value::Object(_)) => {
                                    self.type_of(doc, items, depth + 1)?.0
                                }
                                _ => "any".to_owned(),
                            };
                            rest.push(format!("array<{inner}>"));
                        } else {
                            rest.push(with_format(t));
                        }
                    }
                    let name = match rest.len() {
                        0 => "null".to_owned(),
                        1 => rest.remove(0),
                        _ => format!("union<{}>", rest.join(",")),
                    };
                    Ok((name, nullable))
                }
                _ => {
                    for combinator in ["oneOf", "anyOf"] {
                        if let Some(Value::Array(branches)) = obj.get(combinator) {
                            let mut nullable = false;
                            let mut rest = Vec::new();
                            for b in branches {
                                let (n, b_nullable) = self.type_of(doc, b, depth + 1)?;
                                if n == "null" {
                                    nullable = true;
                                } else {
                                    nullable |= b_nullable;
                                    rest.push(n);
                                }
                            }
                            let name = match rest.len() {
                                0 => "null".to_owned(),
                                1 => rest.remove(0),
                                _ => format!("{combinator}<{}>", rest.join(",")),
                            };
                            return Ok((name, nullable));
                        }
                    }
                    if obj.contains_key("properties") || obj.contains_key("allOf") {
                        Ok(("object".to_owned(), false))
                    } else if obj.contains_key("enum") || obj.contains_key("const") {
                        Ok(("enum".to_owned(), false))
                    } else {
                        Ok(("any".to_owned(), false))
                    }
                }
            }
        }

        /// The object schema whose properties go under a field of this
        /// schema (through `$ref`, arrays, nullable unions), with its
        /// document and the definition keys crossed.
        fn object_of(
            &self,
            doc: &'a Value,
            schema: &'a Value,
            depth: usize,
        ) -> Option<(&'a Value, &'a Value, Vec<String>)> {
            if depth > MAX_DEPTH {
                return None;
            }
            let (doc, schema, mut keys, _) = self.deref(doc, schema);
            let obj = schema.as_object()?;
            if obj.contains_key("properties") || obj.contains_key("allOf") {
                return Some((doc, schema, keys));
            }
            let inner = if let Some(items @ Value::Object(_)) = obj.get("items") {
                self.object_of(doc, items, depth + 1)
            } else {
                ["oneOf", "anyOf"].iter().find_map(|c| {
                    let branches = obj.get(*c)?.as_array()?;
                    let non_null: Vec<&Value> = branches
                        .iter()
                        .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                        .collect();
                    match non_null.as_slice() {
                        [only] => self.object_of(doc, only, depth + 1),
                        _ => None,
                    }
                })
            }?;
            keys.extend(inner.2);
            Some((inner.0, inner.1, keys))
        }

        /// Properties (with `required`) of an object schema, `allOf` merged.
        fn properties(
            &self,
            doc: &'a Value,
            schema: &'a Value,
            props: &mut Vec<(&'a str, &'a Value, &'a Value)>,
            required: &mut HashSet<&'a str>,
            depth: usize,
        ) {
            if depth > MAX_DEPTH {
                return;
            }
            let (doc, schema, _, _) = self.deref(doc, schema);
            if let Some(Value::Object(p)) = schema.get("properties") {
                for (name, s) in p {
                    if !props.iter().any(|(n, _, _)| *n == name.as_str()) {
                        props.push((name.as_str(), doc, s));
                    }
                }
            }
            if let Some(Value::Array(r)) = schema.get("required") {
                required.extend(r.iter().filter_map(Value::as_str));
            }
            if let Some(Value::Array(all)) = schema.get("allOf") {
                for member in all {
                    self.properties(doc, member, props, required, depth + 1);
                }
            }
        }

        fn object(
            &mut self,
            doc: &'a Value,
            schema: &'a Value,
            prefix: &str,
            depth: usize,
        ) -> Result<(), FieldsError> {
            self.out.check_depth(depth)?;
            let mut props = Vec::new();
            let mut required = HashSet::new();
            self.properties(doc, schema, &mut props, &mut required, depth);
            for (name, pdoc, pschema) in props {
                let (type_name, type_nullable) = self.type_of(pdoc, pschema, depth + 1)?;
                let (_, target, _, _) = self.deref(pdoc, pschema);
                let description = pschema
                    .get("description")
                    .or_else(|| target.get("description"))
                    .and_then(Value::as_str);
                let path = join(prefix, name);
                let nullable = type_nullable || !required.contains(name);
                self.out.push(
                    path.clone(),
                    name,
                    type_name,
                    non_empty_doc(description),
                    nullable,
                )?;
                if let Some((cdoc, child, keys)) = self.object_of(pdoc, pschema, depth + 1) {
                    if keys.iter().any(|k| self.stack.contains(k)) {
                        continue;
                    }
                    let pushed = keys.len();
                    self.stack.extend(keys);
                    self.object(cdoc, child, &path, depth + 1)?;
                    self.stack.truncate(self.stack.len() - pushed);
                }
            }
            Ok(())
        }
    }

    pub(super) fn fields(
        schema: &str,
        references: &[Referenced],
    ) -> Result<Vec<SchemaField>, FieldsError> {
        let root = parse_json(T, schema, None)?;
        if !(root.is_object() || root.is_boolean()) {
            return Err(invalid(T, "root is neither an object nor a boolean"));
        }
        let mut refs = Vec::with_capacity(references.len());
        for r in references {
            refs.push((r.name.clone(), parse_json(T, &r.schema, Some(&r.name))?));
        }
        let docs = Docs { refs };
        let mut walker = Walker {
            root: &root,
            docs: &docs,
            out: Out::new(T),
            stack: vec!["0#".to_owned()],
        };
        if let Some((doc, obj, keys)) = walker.object_of(&root, &root, 0) {
            walker.stack.extend(keys);
            walker.object(doc, obj, "", 0)?;
        }
        Ok(walker.out.fields)
    }
}

mod proto {
    //! Protobuf: `.proto` text compiled with `protox` (pure Rust, no
    //! `protoc`); imports resolved from the references by import path, plus
    //! the bundled well-known types. Fields of the first top-level message
    //! (Confluent's default message for the subject).

    use super::*;
    use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
    use protox::prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor};

    const T: SchemaType = SchemaType::Protobuf;
    /// File name the subject's own schema is compiled under.
    const ROOT_FILE: &str = "krawl_subject_schema.proto";

    struct Sources(HashMap<String, String>);

    impl FileResolver for Sources {
        fn open_file(&self, name: &str) -> Result<File, protox::Error> {
            match self.0.get(name) {
                Some(source) => File::from_source(name, source),
                None => Err(protox::Error::file_not_found(name)),
            }
        }
    }

    fn scalar(kind: &Kind) -> String {
        match kind {
            Kind::Double => "double".into(),
            Kind::Float => "float".into(),
            Kind::Int32 => "int32".into(),
            Kind::Int64 => "int64".into(),
            Kind::Uint32 => "uint32".into(),
            Kind::Uint64 => "uint64".into(),
            Kind::Sint32 => "sint32".into(),
            Kind::Sint64 => "sint64".into(),
            Kind::Fixed32 => "fixed32".into(),
            Kind::Fixed64 => "fixed64".into(),
            Kind::Sfixed32 => "sfixed32".into(),
            Kind::Sfixed64 => "sfixed64".into(),
            Kind::Bool => "bool".into(),
            Kind::String => "string".into(),
            Kind::Bytes => "bytes".into(),
            Kind::Message(m) => m.full_name().to_owned(),
            Kind::Enum(e) => e.full_name().to_owned(),
        }
    }

    fn leading_comment(field: &FieldDescriptor) -> Option<String> {
        let file = field.parent_file();
        let info = file.file_descriptor_proto().source_code_info.as_ref()?;
        let location = info.location.iter().find(|l| l.path == field.path())?;
        non_empty_doc(
            location
                .leading_comments
                .as_deref()
                .or(location.trailing_comments.as_deref()),
        )
    }

    fn expandable(m: &MessageDescriptor) -> bool {
        !m.full_name().starts_with("google.protobuf.")
    }

    fn message(
        out: &mut Out,
        stack: &mut Vec<String>,
        msg: &MessageDescriptor,
        prefix: &str,
        depth: usize,
    ) -> Result<(), FieldsError> {
        out.check_depth(depth)?;
        for field in msg.fields() {
            let kind = field.kind();
            let (type_name, child, nullable) = if field.is_map() {
                let (k, v) = match &kind {
                    Kind::Message(entry) => (
                        entry.map_entry_key_field().kind(),
                        entry.map_entry_value_field().kind(),
                    ),
                    _ => (Kind::String, kind.clone()),
                };
                let child = v.as_message().cloned();
                (format!("map<{},{}>", scalar(&k), scalar(&v)), child, false)
            } else if field.is_list() {
                (
                    format!("repeated<{}>", scalar(&kind)),
                    kind.as_message().cloned(),
                    false,
                )
            } else {
                let nullable = field.cardinality() != Cardinality::Required
                    && (field.supports_presence()
                        || kind.as_message().is_some()
                        || field.containing_oneof().is_some());
                (scalar(&kind), kind.as_message().cloned(), nullable)
            };
            let path = join(prefix, field.name());
            out.push(
                path.clone(),
                field.name(),
                type_name,
                leading_comment(&field),
                nullable,
            )?;
            if let Some(child) = child.filter(expandable) {
                let full = child.full_name().to_owned();
                if stack.contains(&full) {
                    continue;
                }
                stack.push(full);
                message(out, stack, &child, &path, depth + 1)?;
                stack.pop();
            }
        }
        Ok(())
    }

    pub(super) fn fields(
        schema: &str,
        references: &[Referenced],
    ) -> Result<Vec<SchemaField>, FieldsError> {
        let mut sources: HashMap<String, String> = references
            .iter()
            .map(|r| (r.name.clone(), r.schema.clone()))
            .collect();
        sources.insert(ROOT_FILE.to_owned(), schema.to_owned());
        let mut resolver = ChainFileResolver::new();
        resolver.add(Sources(sources));
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_source_info(true);
        compiler
            .open_file(ROOT_FILE)
            .map_err(|e| FieldsError::Protobuf(e.to_string()))?;
        let pool = compiler.descriptor_pool();
        let file = pool
            .get_file_by_name(ROOT_FILE)
            .ok_or_else(|| invalid(T, "compiled schema file missing"))?;
        let mut out = Out::new(T);
        if let Some(first) = file.messages().next() {
            let mut stack = vec![first.full_name().to_owned()];
            message(&mut out, &mut stack, &first, "", 0)?;
        }
        Ok(out.fields)
    }

    pub(super) fn record_names(schema: &str) -> Result<Vec<String>, FieldsError> {
        let file = File::from_source(ROOT_FILE, schema)
            .map_err(|e| FieldsError::Protobuf(e.to_string()))?;
        let proto = file.file_descriptor_proto();
        let package = proto.package.as_deref().unwrap_or_default();
        Ok(proto
            .message_type
            .iter()
            .filter_map(|m| m.name.as_deref())
            .map(|n| join(package, n))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, type_name: &str, nullable: bool) -> (String, String, bool) {
        (path.to_owned(), type_name.to_owned(), nullable)
    }

    fn flat(fields: &[SchemaField]) -> Vec<(String, String, bool)> {
        fields
            .iter()
            .map(|x| (x.path.clone(), x.type_name.clone(), x.nullable))
            .collect()
    }

    fn doc_of<'a>(fields: &'a [SchemaField], path: &str) -> Option<&'a str> {
        fields.iter().find(|x| x.path == path)?.doc.as_deref()
    }

    #[test]
    fn schema_type_parsing() {
        assert_eq!(SchemaType::from_registry(None).unwrap(), SchemaType::Avro);
        assert_eq!("JSON".parse::<SchemaType>().unwrap(), SchemaType::Json);
        assert_eq!(
            "protobuf".parse::<SchemaType>().unwrap(),
            SchemaType::Protobuf
        );
        let err = "XML".parse::<SchemaType>().unwrap_err();
        assert!(err.to_string().contains("XML"), "{err}");
        assert_eq!(SchemaType::Protobuf.to_string(), "PROTOBUF");
    }

    const ADDRESS_AVRO: &str = r##"{"type":"record","name":"Address","namespace":"com.acme.common",
        "fields":[{"name":"city","type":"string","doc":"City name"},
                  {"name":"zip","type":["null","string"]}]}"##;

    #[test]
    fn avro_nested_records_references_and_types() {
        let schema = r##"{
          "type": "record", "name": "Order", "namespace": "com.acme",
          "fields": [
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}, "doc": "Order id"},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
            {"name": "customer", "type": {
              "type": "record", "name": "Customer",
              "fields": [
                {"name": "name", "type": "string"},
                {"name": "address", "type": ["null", "com.acme.common.Address"]},
                {"name": "status", "type": {"type": "enum", "name": "Status", "namespace": "com.acme.enums", "symbols": ["A", "B"]}}
              ]}},
            {"name": "billing", "type": "com.acme.common.Address"},
            {"name": "again", "type": "Customer"},
            {"name": "st2", "type": "com.acme.enums.Status"},
            {"name": "lines", "type": {"type": "array", "items": {
              "type": "record", "name": "Line",
              "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}]}}},
            {"name": "tags", "type": {"type": "map", "values": "string"}},
            {"name": "hash", "type": {"type": "fixed", "name": "Md5", "size": 16}},
            {"name": "choice", "type": ["null", "int", "string"]},
            {"name": "either", "type": ["int", "string"]},
            {"name": "parent", "type": ["null", "Order"]}
          ]}"##;
        let refs = [Referenced {
            name: "com.acme.common.Address".into(),
            schema: ADDRESS_AVRO.into(),
        }];
        let fields = parse_fields(SchemaType::Avro, schema, &refs).unwrap();
        assert_eq!(
            flat(&fields),
            vec![
                f("id", "string(uuid)", false),
                f("ts", "long(timestamp-millis)", false),
                f("amount", "bytes(decimal(10,2))", false),
                f("customer", "com.acme.Customer", false),
                f("customer.name", "string", false),
                f("customer.address", "com.acme.common.Address", true),
                f("customer.address.city", "string", false),
                f("customer.address.zip", "string", true),
                f("customer.status", "com.acme.enums.Status", false),
                f("billing", "com.acme.common.Address", false),
                f("billing.city", "string", false),
                f("billing.zip", "string", true),
                f("again", "com.acme.Customer", false),
                f("again.name", "string", false),
                f("again.address", "com.acme.common.Address", true),
                f("again.address.city", "string", false),
                f("again.address.zip", "string", true),
                f("again.status", "com.acme.enums.Status", false),
                f("st2", "com.acme.enums.Status", false),
                f("lines", "array<com.acme.Line>", false),
                f("lines.sku", "string", false),
                f("lines.qty", "int", false),
                f("tags", "map<string>", false),
                f("hash", "com.acme.Md5", false),
                f("choice", "union<int,string>", true),
                f("either", "union<int,string>", false),
                f("parent", "com.acme.Order", true),
            ]
        );
        assert_eq!(doc_of(&fields, "id"), Some("Order id"));
        assert_eq!(doc_of(&fields, "billing.city"), Some("City name"));
        assert_eq!(
            record_names(SchemaType::Avro, schema).unwrap(),
            vec!["com.acme.Order".to_owned()]
        );
    }

    #[test]
    fn avro_namespace_rules_and_recursion() {
        // Null namespace override, dotted names, recursive linked list.
        let schema = r##"{"type":"record","name":"Node","namespace":"a.b","fields":[
            {"name":"value","type":"int"},
            {"name":"next","type":["null","Node"]},
            {"name":"x","type":{"type":"record","name":"X","namespace":"","fields":[{"name":"y","type":"long"}]}},
            {"name":"z","type":{"type":"record","name":"c.d.Z","fields":[
                {"name":"w","type":{"type":"enum","name":"W","symbols":["P"]}}]}}
        ]}"##;
        let fields = parse_fields(SchemaType::Avro, schema, &[]).unwrap();
        assert_eq!(
            flat(&fields),
            vec![
                f("value", "int", false),
                f("next", "a.b.Node", true),
                f("x", "X", false),
                f("x.y", "long", false),
                f("z", "c.d.Z", false),
                f("z.w", "c.d.W", false),
            ]
        );
        // Top-level union referencing types: names for RecordNameStrategy.
        assert_eq!(
            record_names(
                SchemaType::Avro,
                r##"["com.acme.A", {"type":"record","name":"B","namespace":"n","fields":[]}]"##
            )
            .unwrap(),
            vec!["com.acme.A".to_owned(), "n.B".to_owned()]
        );
        // Unknown named reference: kept as the type name, not expanded.
        let fields = parse_fields(
            SchemaType::Avro,
            r##"{"type":"record","name":"R","fields":[{"name":"m","type":"com.x.Missing"}]}"##,
            &[],
        )
        .unwrap();
        assert_eq!(flat(&fields), vec![f("m", "com.x.Missing", false)]);
    }

    #[test]
    fn json_schema_nested_refs_and_references() {
        let address = r##"{"$id": "https://acme.com/schemas/address.json", "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"},
                           "geo": {"$ref": "#/definitions/Geo"}},
            "required": ["city"],
            "definitions": {"Geo": {"type": "object", "properties": {"lat": {"type": "number"}}}}}"##;
        let schema = r##"{
          "$schema": "http://json-schema.org/draft-07/schema#",
          "title": "com.acme.Order", "type": "object",
          "properties": {
            "id": {"type": "string", "format": "uuid", "description": "Order id"},
            "note": {"type": ["string", "null"]},
            "customer": {"type": "object", "description": "Who ordered",
              "properties": {
                "name": {"type": "string"},
                "address": {"$ref": "https://acme.com/schemas/address.json"}
              },
              "required": ["name", "address"]},
            "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "parent": {"$ref": "#"},
            "kind": {"enum": ["a", "b"]},
            "maybe": {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/Line"}]},
            "extra": {}
          },
          "required": ["id", "customer", "lines"],
          "$defs": {"Line": {"type": "object", "properties": {
              "sku": {"type": "string"}, "qty": {"type": "integer"},
              "sub": {"$ref": "#/$defs/Line"}}, "required": ["sku"]}}
        }"##;
        let refs = [Referenced {
            name: "https://acme.com/schemas/address.json".into(),
            schema: address.into(),
        }];
        let fields = parse_fields(SchemaType::Json, schema, &refs).unwrap();
        // Properties come out in key order (serde_json without `preserve_order`).
        assert_eq!(
            flat(&fields),
            vec![
                f("customer", "object", false),
                f("customer.address", "object", false),
                f("customer.address.city", "string", false),
                f("customer.address.geo", "object", true),
                f("customer.address.geo.lat", "number", true),
                f("customer.name", "string", false),
                f("extra", "any", true),
                f("id", "string(uuid)", false),
                f("kind", "enum", true),
                f("lines", "array<object>", false),
                f("lines.qty", "integer", true),
                f("lines.sku", "string", false),
                f("lines.sub", "object", true),
                f("maybe", "object", true),
                f("maybe.qty", "integer", true),
                f("maybe.sku", "string", false),
                f("maybe.sub", "object", true),
                f("note", "string", true),
                f("parent", "object", true),
                f("tags", "array<string>", true),
            ]
        );
        assert_eq!(doc_of(&fields, "customer"), Some("Who ordered"));
        assert_eq!(doc_of(&fields, "customer.address.city"), Some("City name"));
        assert_eq!(
            record_names(SchemaType::Json, schema).unwrap(),
            vec!["com.acme.Order".to_owned()]
        );
        // A reference named by a relative path also resolves.
        let rel = r##"{"type":"object","properties":{"a":{"$ref":"address.json"}}}"##;
        let fields = parse_fields(SchemaType::Json, rel, &refs).unwrap();
        assert_eq!(fields.len(), 4, "{fields:?}");
    }

    #[test]
    fn json_schema_all_of_and_unresolved_ref() {
        let schema = r##"{"allOf": [{"$ref": "#/definitions/Base"},
              {"properties": {"b": {"type": "boolean"}}, "required": ["b"]}],
            "properties": {"u": {"$ref": "other.json#/definitions/Nope"}},
            "definitions": {"Base": {"properties": {"a": {"type": "integer"}}, "required": ["a"]}}}"##;
        let fields = parse_fields(SchemaType::Json, schema, &[]).unwrap();
        assert_eq!(
            flat(&fields),
            vec![
                f("u", "other.json#/definitions/Nope", true),
                f("a", "integer", false),
                f("b", "boolean", false),
            ]
        );
    }

    const COMMON_PROTO: &str = r##"syntax = "proto3";
package acme.common;
message Address {
  // City name
  string city = 1;
  optional string zip = 2;
}
"##;

    #[test]
    fn protobuf_nested_imports_and_wkt() {
        let schema = r##"syntax = "proto3";
package acme.orders;
import "common/address.proto";
import "google/protobuf/timestamp.proto";

// The order.
message Order {
  // Order id
  string id = 1;
  google.protobuf.Timestamp created = 2;
  acme.common.Address billing = 3;
  repeated Line lines = 4;
  map<string, int64> counters = 5;
  map<string, acme.common.Address> addresses = 6;
  optional int32 priority = 7;
  Status status = 8;
  oneof payment {
    string card = 9;
    string iban = 10;
  }
  Order parent = 11;
  repeated string tags = 12;

  message Line {
    string sku = 1;
    uint32 qty = 2;
  }
  enum Status { NEW = 0; DONE = 1; }
}

message Other { bool x = 1; }
"##;
        let refs = [Referenced {
            name: "common/address.proto".into(),
            schema: COMMON_PROTO.into(),
        }];
        let fields = parse_fields(SchemaType::Protobuf, schema, &refs).unwrap();
        assert_eq!(
            flat(&fields),
            vec![
                f("id", "string", false),
                f("created", "google.protobuf.Timestamp", true),
                f("billing", "acme.common.Address", true),
                f("billing.city", "string", false),
                f("billing.zip", "string", true),
                f("lines", "repeated<acme.orders.Order.Line>", false),
                f("lines.sku", "string", false),
                f("lines.qty", "uint32", false),
                f("counters", "map<string,int64>", false),
                f("addresses", "map<string,acme.common.Address>", false),
                f("addresses.city", "string", false),
                f("addresses.zip", "string", true),
                f("priority", "int32", true),
                f("status", "acme.orders.Order.Status", false),
                f("card", "string", true),
                f("iban", "string", true),
                f("parent", "acme.orders.Order", true),
                f("tags", "repeated<string>", false),
            ]
        );
        assert_eq!(doc_of(&fields, "id"), Some("Order id"));
        assert_eq!(doc_of(&fields, "billing.city"), Some("City name"));
        assert_eq!(
            record_names(SchemaType::Protobuf, schema).unwrap(),
            vec![
                "acme.orders.Order".to_owned(),
                "acme.orders.Other".to_owned()
            ]
        );
        // Missing import: a clear error, not a panic.
        let err = parse_fields(SchemaType::Protobuf, schema, &[]).unwrap_err();
        assert!(err.to_string().contains("common/address.proto"), "{err}");
    }

    #[test]
    fn protobuf_proto2_required() {
        let schema =
            "syntax = \"proto2\";\nmessage M { required int32 a = 1; optional string b = 2; }\n";
        let fields = parse_fields(SchemaType::Protobuf, schema, &[]).unwrap();
        assert_eq!(
            flat(&fields),
            vec![f("a", "int32", false), f("b", "string", true)]
        );
        assert_eq!(
            record_names(SchemaType::Protobuf, schema).unwrap(),
            vec!["M".to_owned()]
        );
    }

    #[test]
    fn too_large_schema_is_an_error() {
        // Each level doubles the field count: 2^20 paths without recursion.
        let mut defs = String::from(r##""L0":{"type":"string"}"##);
        for i in 1..=20 {
            defs.push_str(&format!(
                r##","L{i}":{{"type":"object","properties":{{"a":{{"$ref":"#/definitions/L{p}"}},"b":{{"$ref":"#/definitions/L{p}"}}}}}}"##,
                p = i - 1
            ));
        }
        let schema = format!(r##"{{"$ref":"#/definitions/L20","definitions":{{{defs}}}}}"##);
        let err = parse_fields(SchemaType::Json, &schema, &[]).unwrap_err();
        assert!(matches!(err, FieldsError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn garbled_and_truncated_input_never_panics() {
        let avro = ADDRESS_AVRO;
        let json = r##"{"type":"object","properties":{"a":{"$ref":"#/definitions/A"},"b":{"type":"array","items":{"$ref":"#"}}},"definitions":{"A":{"properties":{"x":{"type":["string","null"]}}}}}"##;
        let proto = COMMON_PROTO;
        let weird = [
            "",
            "null",
            "42",
            "[]",
            "[[[[",
            "{}",
            r##"{"type":"record"}"##,
            r##"{"type":"record","fields":[{}]}"##,
            r##"{"type":{"type":{"type":"array"}}}"##,
            r##"{"properties":{"a":{"$ref":"#/nope/x"}}}"##,
            r##"{"properties":{"a":{"$ref":"#/properties/a"}}}"##,
            r##"{"type":["record","x"]}"##,
            "message { = ;",
            "syntax = \"proto9\";",
            "\u{0}\u{1}\u{fffd}",
        ];
        let refs = [Referenced {
            name: "common/address.proto".into(),
            schema: "message A { string".into(),
        }];
        for t in [SchemaType::Avro, SchemaType::Json, SchemaType::Protobuf] {
            for base in [avro, json, proto] {
                for cut in (0..base.len()).filter(|i| base.is_char_boundary(*i)) {
                    let _ = parse_fields(t, &base[..cut], &[]);
                    let _ = record_names(t, &base[..cut]);
                }
            }
            for w in weird {
                let _ = parse_fields(t, w, &refs);
                let _ = record_names(t, w);
            }
        }
        let err = parse_fields(SchemaType::Avro, "{\"type\":", &[]).unwrap_err();
        assert!(
            err.to_string().starts_with("AVRO schema is not valid JSON"),
            "{err}"
        );
        let err =
            parse_fields(SchemaType::Avro, r##"{"type":"record","name":"R"}"##, &[]).unwrap_err();
        assert!(err.to_string().contains("fields"), "{err}");
        let err = parse_fields(SchemaType::Protobuf, "message {", &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("PROTOBUF schema does not compile"),
            "{err}"
        );
    }
}
