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
//! * **Limits.** The registry is untrusted. Before any parser runs, the
//!   schema and each reference pass [`crate::guard`] (size, lexical nesting,
//!   number and bytes of references): the parsers recurse on nesting. The
//!   walkers here recurse at most [`MAX_DEPTH`] levels and stop with
//!   [`FieldsError::TooLarge`] past [`MAX_FIELDS`] fields,
//!   [`MAX_OUTPUT_BYTES`] of output or [`MAX_WORK`] units of work (a schema
//!   can name the same definition many times over: the work, not the text,
//!   is what must be bounded). Type names are cut at
//!   [`MAX_TYPE_NAME_BYTES`].
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

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use krawl_model::SchemaField;
use serde_json::{Map, Value};

use crate::guard::{self, GuardError};

/// Most fields one schema may expand to.
pub const MAX_FIELDS: usize = 10_000;
/// Deepest nesting of records/objects/messages that is expanded (and deepest
/// recursion of the walkers).
pub const MAX_DEPTH: usize = 64;
/// Most bytes of paths, names, type names and docs one schema may expand to
/// (a 100-byte path and type name and a 1 KiB doc on each of [`MAX_FIELDS`]
/// fields is 11 MiB).
pub const MAX_OUTPUT_BYTES: usize = 16 * 1024 * 1024;
/// Most units of work one expansion may spend: a unit is one walker step or
/// [`WORK_UNIT_BYTES`] bytes of names and docs built. An honest schema of
/// [`MAX_FIELDS`] fields with 1 KiB docs spends about a quarter of it; the
/// whole budget is about a second in a debug build, a tenth in release.
pub const MAX_WORK: usize = 1_000_000;
/// Bytes of names and docs built per unit of [`MAX_WORK`].
pub const WORK_UNIT_BYTES: usize = 64;
/// Longest type name listed; longer ones end with `…`.
pub const MAX_TYPE_NAME_BYTES: usize = 1024;

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
    /// Refused before any parser saw it (see [`crate::guard`]).
    #[error("{source}{}; not parsed", in_ref(.reference))]
    Refused {
        reference: Option<String>,
        #[source]
        source: GuardError,
    },
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
    /// The expansion passed one of [`MAX_FIELDS`], [`MAX_DEPTH`],
    /// [`MAX_OUTPUT_BYTES`] or [`MAX_WORK`].
    #[error("{schema_type} schema expands past the limit of {limit} {what} ({constant})")]
    TooLarge {
        schema_type: SchemaType,
        what: &'static str,
        limit: usize,
        constant: &'static str,
    },
}

impl FieldsError {
    /// Whether the schema passed one of krawl's bounds (as opposed to being
    /// invalid): refused before parsing, or too large once expanded.
    pub fn is_limit(&self) -> bool {
        matches!(self, Self::Refused { .. } | Self::TooLarge { .. })
    }
}

fn in_ref(reference: &Option<String>) -> String {
    match reference {
        Some(r) => format!(" (reference {:?})", cap_name(r.clone())),
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

/// [`guard::check`] on `schema` and on each reference, and
/// [`guard::check_references`]: before any parser runs.
fn guard_all(
    schema_type: SchemaType,
    schema: &str,
    references: &[Referenced],
) -> Result<(), FieldsError> {
    fn refused(reference: Option<&str>) -> impl FnOnce(GuardError) -> FieldsError + '_ {
        move |source| FieldsError::Refused {
            reference: reference.map(str::to_owned),
            source,
        }
    }
    guard::check(schema_type, schema).map_err(refused(None))?;
    guard::check_references(references.iter().map(|r| r.schema.as_str())).map_err(refused(None))?;
    for r in references {
        guard::check(schema_type, &r.schema).map_err(refused(Some(&r.name)))?;
    }
    Ok(())
}

/// The flat field list of `schema`. See the module docs for the conventions.
/// `schema` and every reference pass [`crate::guard`] before they are parsed.
pub fn parse_fields(
    schema_type: SchemaType,
    schema: &str,
    references: &[Referenced],
) -> Result<Vec<SchemaField>, FieldsError> {
    guard_all(schema_type, schema, references)?;
    match schema_type {
        SchemaType::Avro => avro::fields(schema, references),
        SchemaType::Json => json::fields(schema, references),
        SchemaType::Protobuf => proto::fields(schema, references),
    }
}

/// Fully qualified top-level record names, for `RecordNameStrategy` binding:
/// Avro: the record's `namespace.name` (each named branch for a top-level
/// union); Protobuf: `package.Message` for each top-level message; JSON
/// Schema: the root `title`, if any. `schema` passes [`crate::guard`] first.
pub fn record_names(schema_type: SchemaType, schema: &str) -> Result<Vec<String>, FieldsError> {
    guard_all(schema_type, schema, &[])?;
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

/// A type name cut to [`MAX_TYPE_NAME_BYTES`] (on a character boundary,
/// ending with `…`).
fn cap_name(mut s: String) -> String {
    if s.len() > MAX_TYPE_NAME_BYTES {
        let mut end = MAX_TYPE_NAME_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// `{prefix}{a,b,...}{suffix}`, stopping (with `…`) once it passes
/// [`MAX_TYPE_NAME_BYTES`]: a union of many long names stays small.
fn compose<'s>(prefix: &str, parts: impl IntoIterator<Item = &'s str>, suffix: &str) -> String {
    let mut out = String::from(prefix);
    for (i, p) in parts.into_iter().enumerate() {
        if out.len() + p.len() > MAX_TYPE_NAME_BYTES {
            out.push('…');
            return cap_name(out);
        }
        if i > 0 {
            out.push(',');
        }
        out.push_str(p);
    }
    out.push_str(suffix);
    cap_name(out)
}

/// Collects output fields and enforces the expansion bounds: [`MAX_FIELDS`],
/// [`MAX_DEPTH`], [`MAX_OUTPUT_BYTES`] and [`MAX_WORK`].
struct Out {
    schema_type: SchemaType,
    fields: Vec<SchemaField>,
    bytes: usize,
    /// Units of work spent (`&self` walkers charge it too).
    work: Cell<usize>,
}

impl Out {
    fn new(schema_type: SchemaType) -> Self {
        Out {
            schema_type,
            fields: Vec::new(),
            bytes: 0,
            work: Cell::new(0),
        }
    }

    fn too_large(&self, what: &'static str, limit: usize, constant: &'static str) -> FieldsError {
        FieldsError::TooLarge {
            schema_type: self.schema_type,
            what,
            limit,
            constant,
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
            return Err(self.too_large("fields", MAX_FIELDS, "MAX_FIELDS"));
        }
        let type_name = cap_name(type_name);
        let size = path.len() + name.len() + type_name.len() + doc.as_ref().map_or(0, String::len);
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > MAX_OUTPUT_BYTES {
            return Err(self.too_large(
                "bytes of paths, names, types and docs",
                MAX_OUTPUT_BYTES,
                "MAX_OUTPUT_BYTES",
            ));
        }
        self.charge(size)?;
        self.fields.push(SchemaField {
            path,
            name: name.to_owned(),
            type_name,
            doc,
            nullable,
        });
        Ok(())
    }

    /// One step of a walker that touches about `bytes` bytes.
    fn charge(&self, bytes: usize) -> Result<(), FieldsError> {
        let spent = self.work.get().saturating_add(1 + bytes / WORK_UNIT_BYTES);
        self.work.set(spent);
        if spent > MAX_WORK {
            return Err(self.too_large("units of work", MAX_WORK, "MAX_WORK"));
        }
        Ok(())
    }

    fn check_depth(&self, depth: usize) -> Result<(), FieldsError> {
        if depth > MAX_DEPTH {
            return Err(self.too_large("levels of nesting", MAX_DEPTH, "MAX_DEPTH"));
        }
        self.charge(0)
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

    /// A named type definition (borrowed from the parsed schema), with its
    /// full name and the namespace its own definitions resolve names in.
    struct Named<'a> {
        def: &'a Map<String, Value>,
        full: String,
        ns: String,
    }

    /// Named types by full name; the first definition of a name wins.
    #[derive(Default)]
    struct Names<'a> {
        types: HashMap<String, Named<'a>>,
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
    fn resolve_name(names: &Names<'_>, name: &str, ns: &str) -> String {
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

    impl<'a> Names<'a> {
        /// Registers every named type defined anywhere in `schema`. The
        /// recursion follows the JSON nesting, which [`crate::guard`] bounds.
        fn collect(&mut self, schema: &'a Value, ns: &str, depth: usize) {
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
                            if let Some(Value::Array(fields)) = def.get("fields") {
                                for f in fields {
                                    if let Some(t) = f.get("type") {
                                        self.collect(t, &own_ns, depth + 1);
                                    }
                                }
                            }
                            self.types.entry(full.clone()).or_insert(Named {
                                def,
                                full,
                                ns: own_ns,
                            });
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
        record: Option<&'a Named<'a>>,
    }

    struct Walker<'a> {
        names: &'a Names<'a>,
        out: Out,
        /// Full names of the records being expanded, outermost first.
        stack: Vec<&'a str>,
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
                    self.out.charge(full.len())?;
                    match self.names.types.get(&full) {
                        Some(named) => Ok(self.named(named)),
                        None => Ok(Resolved {
                            type_name: cap_name(full),
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
                    let type_name = if rest.is_empty() {
                        "null".to_owned()
                    } else {
                        compose("union<", rest.iter().map(|r| r.type_name.as_str()), ">")
                    };
                    self.out.charge(type_name.len())?;
                    Ok(Resolved {
                        type_name,
                        nullable,
                        record: None,
                    })
                }
                Value::Object(def) => {
                    let Some(kind) = def.get("type") else {
                        return Err(invalid(T, "type object without \"type\""));
                    };
                    match kind {
                        Value::String(k) => match k.as_str() {
                            "record" | "error" | "enum" | "fixed" => {
                                let full = full_name(def, ns)
                                    .map(|(f, _)| f)
                                    .ok_or_else(|| invalid(T, format!("{k} without a name")))?;
                                self.out.charge(full.len())?;
                                // Definitions are registered once; the registered one knows
                                // its namespace. Not registered: listed, not expanded.
                                match self.names.types.get(&full) {
                                    Some(named) => Ok(self.named(named)),
                                    None => Ok(Resolved {
                                        type_name: cap_name(full),
                                        nullable: false,
                                        record: None,
                                    }),
                                }
                            }
                            "array" | "map" => {
                                let key = if k == "array" { "items" } else { "values" };
                                let inner = def
                                    .get(key)
                                    .ok_or_else(|| invalid(T, format!("{k} without \"{key}\"")))?;
                                let r = self.describe(inner, ns, depth + 1)?;
                                let inner_name = if r.nullable && r.type_name != "null" {
                                    compose("union<null,", [r.type_name.as_str()], ">")
                                } else {
                                    r.type_name
                                };
                                Ok(Resolved {
                                    type_name: compose(
                                        &format!("{k}<"),
                                        [inner_name.as_str()],
                                        ">",
                                    ),
                                    nullable: false,
                                    record: r.record,
                                })
                            }
                            _ => {
                                let mut r = self.describe(kind, ns, depth + 1)?;
                                if let Some(l) = def.get("logicalType").and_then(Value::as_str) {
                                    r.type_name = cap_name(format!(
                                        "{}({})",
                                        r.type_name,
                                        logical_name(def, l)
                                    ));
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

        /// A registered named type as a field type (with its logical type).
        fn named(&self, named: &'a Named<'a>) -> Resolved<'a> {
            let def = named.def;
            let type_name = match def.get("logicalType").and_then(Value::as_str) {
                Some(l) => cap_name(format!("{}({})", named.full, logical_name(def, l))),
                None => cap_name(named.full.clone()),
            };
            let is_record = matches!(
                def.get("type").and_then(Value::as_str),
                Some("record" | "error")
            );
            Resolved {
                type_name,
                nullable: false,
                record: is_record.then_some(named),
            }
        }

        fn record(
            &mut self,
            named: &'a Named<'a>,
            prefix: &str,
            depth: usize,
        ) -> Result<(), FieldsError> {
            self.out.check_depth(depth)?;
            let fields = named
                .def
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
                let r = self.describe(ty, &named.ns, depth + 1)?;
                let path = join(prefix, name);
                let doc = non_empty_doc(field.get("doc").and_then(Value::as_str));
                self.out
                    .push(path.clone(), name, r.type_name, doc, r.nullable)?;
                if let Some(child) = r.record {
                    if self.stack.contains(&child.full.as_str()) {
                        continue;
                    }
                    self.stack.push(&child.full);
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

    /// The parsed schema and references (the named types borrow from them).
    fn parse_all(
        schema: &str,
        references: &[Referenced],
    ) -> Result<(Value, Vec<Value>), FieldsError> {
        let root = parse_json(T, schema, None)?;
        let refs = references
            .iter()
            .map(|r| parse_json(T, &r.schema, Some(&r.name)))
            .collect::<Result<_, _>>()?;
        Ok((root, refs))
    }

    /// Named types of the references (in order), then of the schema.
    fn names<'a>(root: &'a Value, refs: &'a [Value]) -> Names<'a> {
        let mut names = Names::default();
        for v in refs {
            names.collect(v, "", 0);
        }
        names.collect(root, "", 0);
        names
    }

    pub(super) fn fields(
        schema: &str,
        references: &[Referenced],
    ) -> Result<Vec<SchemaField>, FieldsError> {
        let (root, refs) = parse_all(schema, references)?;
        let names = names(&root, &refs);
        let mut walker = Walker {
            names: &names,
            out: Out::new(T),
            stack: Vec::new(),
        };
        let r = walker.describe(&root, "", 0)?;
        if let Some(named) = r.record {
            if !r.type_name.starts_with("array<") && !r.type_name.starts_with("map<") {
                walker.stack.push(&named.full);
                walker.record(named, "", 0)?;
            }
        }
        Ok(walker.out.fields)
    }

    pub(super) fn record_names(schema: &str) -> Result<Vec<String>, FieldsError> {
        let (root, refs) = parse_all(schema, &[])?;
        let names = names(&root, &refs);
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

    /// The reference documents and their lookup tables (built once: a
    /// schema may resolve `$ref`s many times).
    struct Docs {
        /// Reference documents, by reference name, in order.
        refs: Vec<(String, Value)>,
        /// Index into `refs` (+1: 0 is the root) by name, `$id`, and the
        /// last path segment of either; the first document wins.
        by_name: HashMap<String, usize>,
        by_id: HashMap<String, usize>,
        by_name_segment: HashMap<String, usize>,
        by_id_segment: HashMap<String, usize>,
    }

    impl Docs {
        fn new(refs: Vec<(String, Value)>) -> Self {
            let mut docs = Docs {
                refs,
                by_name: HashMap::new(),
                by_id: HashMap::new(),
                by_name_segment: HashMap::new(),
                by_id_segment: HashMap::new(),
            };
            for (i, (name, v)) in docs.refs.iter().enumerate() {
                let index = i + 1;
                docs.by_name.entry(name.clone()).or_insert(index);
                docs.by_name_segment
                    .entry(last_segment(name).to_owned())
                    .or_insert(index);
                if let Some(id) = v.get("$id").and_then(Value::as_str) {
                    docs.by_id.entry(id.to_owned()).or_insert(index);
                    docs.by_id_segment
                        .entry(last_segment(id).to_owned())
                        .or_insert(index);
                }
            }
            docs
        }

        fn find(&self, base: &str) -> Option<(usize, &Value)> {
            let index = self
                .by_name
                .get(base)
                .or_else(|| self.by_id.get(base))
                .or_else(|| self.by_name_segment.get(last_segment(base)))
                .or_else(|| self.by_id_segment.get(last_segment(base)))?;
            let (_, doc) = self.refs.get(index - 1)?;
            Some((*index, doc))
        }
    }

    struct Walker<'a> {
        root: &'a Value,
        docs: &'a Docs,
        out: Out,
        /// `doc-index#pointer` of definitions being expanded, with how many
        /// times each is on the path.
        stack: HashMap<String, usize>,
    }

    /// The schema a `$ref` points to, with the document it lives in.
    struct Target<'a> {
        key: String,
        doc: &'a Value,
        schema: &'a Value,
    }

    /// A schema after its `$ref` chain: its document, the definition keys
    /// crossed, and the last `$ref` (the type name when it did not resolve).
    struct Derefd<'a> {
        doc: &'a Value,
        schema: &'a Value,
        keys: Vec<String>,
        unresolved: Option<&'a str>,
    }

    fn last_segment(s: &str) -> &str {
        s.trim_end_matches('/').rsplit('/').next().unwrap_or(s)
    }

    impl<'a> Walker<'a> {
        fn resolve(
            &self,
            doc: &'a Value,
            reference: &str,
        ) -> Result<Option<Target<'a>>, FieldsError> {
            self.out.charge(reference.len())?;
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
                match self.docs.find(base) {
                    Some(found) => found,
                    None => return Ok(None),
                }
            };
            let schema = if fragment.is_empty() {
                Some(doc)
            } else if fragment.starts_with('/') {
                let pointer = fragment.replace("%24", "$").replace("%25", "%");
                doc.pointer(&pointer)
            } else {
                // Anchor-style fragment: a definition with that `$anchor`/`$id`.
                let mut found = None;
                for k in ["definitions", "$defs"] {
                    let Some(defs) = doc.get(k).and_then(Value::as_object) else {
                        continue;
                    };
                    self.out.charge(defs.len() * WORK_UNIT_BYTES)?;
                    found = defs.values().find(|d| {
                        d.get("$anchor").and_then(Value::as_str) == Some(fragment)
                            || d.get("$id")
                                .and_then(Value::as_str)
                                .and_then(|id| id.strip_prefix('#'))
                                == Some(fragment)
                    });
                    if found.is_some() {
                        break;
                    }
                }
                found
            };
            Ok(schema.map(|schema| Target {
                key: format!("{index}#{fragment}"),
                doc,
                schema,
            }))
        }

        /// Follows `$ref` chains (at most [`MAX_DEPTH`] links; a repeated
        /// link ends the chain).
        fn deref(&self, doc: &'a Value, schema: &'a Value) -> Result<Derefd<'a>, FieldsError> {
            let mut d = Derefd {
                doc,
                schema,
                keys: Vec::new(),
                unresolved: None,
            };
            for _ in 0..MAX_DEPTH {
                let Some(r) = d.schema.get("$ref").and_then(Value::as_str) else {
                    break;
                };
                match self.resolve(d.doc, r)? {
                    Some(t) => {
                        if d.keys.contains(&t.key) {
                            break;
                        }
                        d.keys.push(t.key);
                        d.doc = t.doc;
                        d.schema = t.schema;
                    }
                    None => {
                        d.unresolved = Some(r);
                        break;
                    }
                }
            }
            Ok(d)
        }

        /// Type name and nullability of a (dereferenced) schema.
        fn type_of(
            &self,
            doc: &'a Value,
            schema: &'a Value,
            depth: usize,
        ) -> Result<(String, bool), FieldsError> {
            self.out.check_depth(depth)?;
            let Derefd {
                doc,
                schema,
                unresolved,
                ..
            } = self.deref(doc, schema)?;
            if let Some(r) = unresolved {
                return Ok((cap_name(r.to_owned()), false));
            }
            let Some(obj) = schema.as_object() else {
                // `true` / `false` schemas.
                return Ok(("any".to_owned(), false));
            };
            let with_format = |t: &str| -> Result<String, FieldsError> {
                let format = obj.get("format").and_then(Value::as_str);
                self.out.charge(t.len() + format.map_or(0, str::len))?;
                Ok(cap_name(match format {
                    Some(f) => format!("{t}({f})"),
                    None => t.to_owned(),
                }))
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
                            let names = names?;
                            compose("tuple<", names.iter().map(String::as_str), ">")
                        }
                        _ => "any".to_owned(),
                    };
                    Ok((compose("array<", [inner.as_str()], ">"), false))
                }
                Some(Value::String(t)) => Ok((with_format(t)?, t == "null")),
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
                            rest.push(compose("array<", [inner.as_str()], ">"));
                        } else {
                            rest.push(with_format(t)?);
                        }
                    }
                    let name = match rest.len() {
                        0 => "null".to_owned(),
                        1 => rest.remove(0),
                        _ => compose("union<", rest.iter().map(String::as_str), ">"),
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
                                _ => compose(
                                    &format!("{combinator}<"),
                                    rest.iter().map(String::as_str),
                                    ">",
                                ),
                            };
                            self.out.charge(name.len())?;
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
        #[allow(clippy::type_complexity)]
        fn object_of(
            &self,
            doc: &'a Value,
            schema: &'a Value,
            depth: usize,
        ) -> Result<Option<(&'a Value, &'a Value, Vec<String>)>, FieldsError> {
            if depth > MAX_DEPTH {
                return Ok(None);
            }
            self.out.charge(0)?;
            let Derefd {
                doc,
                schema,
                mut keys,
                ..
            } = self.deref(doc, schema)?;
            let Some(obj) = schema.as_object() else {
                return Ok(None);
            };
            if obj.contains_key("properties") || obj.contains_key("allOf") {
                return Ok(Some((doc, schema, keys)));
            }
            let inner = if let Some(items @ Value::Object(_)) = obj.get("items") {
                self.object_of(doc, items, depth + 1)?
            } else {
                let mut inner = None;
                for c in ["oneOf", "anyOf"] {
                    let Some(branches) = obj.get(c).and_then(Value::as_array) else {
                        continue;
                    };
                    let mut non_null = branches
                        .iter()
                        .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"));
                    if let (Some(only), None) = (non_null.next(), non_null.next()) {
                        inner = self.object_of(doc, only, depth + 1)?;
                        if inner.is_some() {
                            break;
                        }
                    }
                }
                inner
            };
            Ok(inner.map(|(idoc, ischema, ikeys)| {
                keys.extend(ikeys);
                (idoc, ischema, keys)
            }))
        }

        /// Properties (with `required`) of an object schema, `allOf` merged:
        /// a property already listed keeps its first definition.
        fn properties(
            &self,
            doc: &'a Value,
            schema: &'a Value,
            props: &mut Properties<'a>,
            depth: usize,
        ) -> Result<(), FieldsError> {
            if depth > MAX_DEPTH {
                return Ok(());
            }
            self.out.charge(0)?;
            let Derefd { doc, schema, .. } = self.deref(doc, schema)?;
            if let Some(Value::Object(p)) = schema.get("properties") {
                for (name, s) in p {
                    self.out.charge(0)?;
                    if props.seen.insert(name.as_str()) {
                        props.list.push((name.as_str(), doc, s));
                    }
                }
            }
            if let Some(Value::Array(r)) = schema.get("required") {
                // A unit per name: `allOf` can merge the same list many times.
                self.out.charge(r.len() * WORK_UNIT_BYTES)?;
                props.required.extend(r.iter().filter_map(Value::as_str));
            }
            if let Some(Value::Array(all)) = schema.get("allOf") {
                for member in all {
                    self.properties(doc, member, props, depth + 1)?;
                }
            }
            Ok(())
        }

        fn object(
            &mut self,
            doc: &'a Value,
            schema: &'a Value,
            prefix: &str,
            depth: usize,
        ) -> Result<(), FieldsError> {
            self.out.check_depth(depth)?;
            let mut props = Properties::default();
            self.properties(doc, schema, &mut props, depth)?;
            for (name, pdoc, pschema) in props.list {
                let (type_name, type_nullable) = self.type_of(pdoc, pschema, depth + 1)?;
                let target = self.deref(pdoc, pschema)?.schema;
                let description = pschema
                    .get("description")
                    .or_else(|| target.get("description"))
                    .and_then(Value::as_str);
                let path = join(prefix, name);
                let nullable = type_nullable || !props.required.contains(name);
                self.out.push(
                    path.clone(),
                    name,
                    type_name,
                    non_empty_doc(description),
                    nullable,
                )?;
                if let Some((cdoc, child, keys)) = self.object_of(pdoc, pschema, depth + 1)? {
                    if keys.iter().any(|k| self.stack.contains_key(k)) {
                        continue;
                    }
                    for k in &keys {
                        *self.stack.entry(k.clone()).or_default() += 1;
                    }
                    self.object(cdoc, child, &path, depth + 1)?;
                    for k in keys {
                        if let Some(n) = self.stack.get_mut(&k) {
                            *n -= 1;
                            if *n == 0 {
                                self.stack.remove(&k);
                            }
                        }
                    }
                }
            }
            Ok(())
        }
    }

    /// The merged properties of one object schema.
    #[derive(Default)]
    struct Properties<'a> {
        list: Vec<(&'a str, &'a Value, &'a Value)>,
        seen: HashSet<&'a str>,
        required: HashSet<&'a str>,
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
        let docs = Docs::new(refs);
        let mut walker = Walker {
            root: &root,
            docs: &docs,
            out: Out::new(T),
            stack: HashMap::from([("0#".to_owned(), 1)]),
        };
        if let Some((doc, obj, keys)) = walker.object_of(&root, &root, 0)? {
            for k in keys {
                *walker.stack.entry(k).or_default() += 1;
            }
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

    /// The schema and its references, parsed up front (protox-parse bounds
    /// its own recursion) so that the import chain is measured before protox
    /// compiles them: it opens imports recursively.
    struct Sources {
        parsed: HashMap<String, File>,
        /// The ones that do not parse: protox parses them again when (if)
        /// they are imported, and reports the error in context.
        unparsed: HashMap<String, String>,
    }

    impl Sources {
        fn new(files: impl IntoIterator<Item = (String, String)>) -> Self {
            let mut sources = Sources {
                parsed: HashMap::new(),
                unparsed: HashMap::new(),
            };
            for (name, source) in files {
                match File::from_source(&name, &source) {
                    Ok(file) => {
                        sources.parsed.insert(name, file);
                    }
                    Err(_) => {
                        sources.unparsed.insert(name, source);
                    }
                }
            }
            sources
        }

        fn imports(&self, name: &str) -> &[String] {
            self.parsed
                .get(name)
                .map(|f| f.file_descriptor_proto().dependency.as_slice())
                .unwrap_or_default()
        }

        /// Refuses an import chain from `root` longer than
        /// [`guard::MAX_PROTOBUF_IMPORT_DEPTH`]. Iterative; each file's
        /// depth is computed once. Cycles are left to protox (an error).
        fn check_import_depth(&self, root: &str) -> Result<(), GuardError> {
            let limit = guard::MAX_PROTOBUF_IMPORT_DEPTH;
            let too_deep = GuardError::ImportsTooDeep { limit };
            // Depth (files in the longest chain) of each file done.
            let mut depth: HashMap<&str, usize> = HashMap::new();
            let mut on_path: HashSet<&str> = HashSet::from([root]);
            let mut path: Vec<(&str, usize)> = vec![(root, 0)];
            while let Some((name, next)) = path.last_mut() {
                let name: &str = name;
                let imports = self.imports(name);
                if let Some(import) = imports.get(*next) {
                    *next += 1;
                    let import = import.as_str();
                    if let Some(d) = depth.get(import) {
                        if path.len() + d > limit {
                            return Err(too_deep);
                        }
                    } else if !on_path.contains(import) {
                        if path.len() + 1 > limit {
                            return Err(too_deep);
                        }
                        on_path.insert(import);
                        path.push((import, 0));
                    }
                } else {
                    let below = imports
                        .iter()
                        .filter_map(|i| depth.get(i.as_str()))
                        .max()
                        .copied()
                        .unwrap_or(0);
                    depth.insert(name, below + 1);
                    on_path.remove(name);
                    path.pop();
                }
            }
            Ok(())
        }
    }

    impl FileResolver for Sources {
        fn open_file(&self, name: &str) -> Result<File, protox::Error> {
            if let Some(file) = self.parsed.get(name) {
                return Ok(file.clone());
            }
            match self.unparsed.get(name) {
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

    /// The comments of each file's elements by source path, indexed once
    /// per file (a field's comment is looked up each time it is listed).
    #[derive(Default)]
    struct Comments {
        by_file: HashMap<String, HashMap<Vec<i32>, Option<String>>>,
    }

    impl Comments {
        /// The leading (else trailing) comment of `field`.
        fn of(&mut self, field: &FieldDescriptor) -> Option<String> {
            let file = field.parent_file();
            let index = self
                .by_file
                .entry(file.name().to_owned())
                .or_insert_with(|| {
                    let mut index = HashMap::new();
                    let info = file.file_descriptor_proto().source_code_info.as_ref();
                    for l in info.map(|i| i.location.as_slice()).unwrap_or_default() {
                        index.entry(l.path.clone()).or_insert_with(|| {
                            non_empty_doc(
                                l.leading_comments
                                    .as_deref()
                                    .or(l.trailing_comments.as_deref()),
                            )
                        });
                    }
                    index
                });
            index.get(field.path()).cloned().flatten()
        }
    }

    fn expandable(m: &MessageDescriptor) -> bool {
        !m.full_name().starts_with("google.protobuf.")
    }

    fn message(
        out: &mut Out,
        comments: &mut Comments,
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
                comments.of(&field),
                nullable,
            )?;
            if let Some(child) = child.filter(expandable) {
                let full = child.full_name().to_owned();
                if stack.contains(&full) {
                    continue;
                }
                stack.push(full);
                message(out, comments, stack, &child, &path, depth + 1)?;
                stack.pop();
            }
        }
        Ok(())
    }

    pub(super) fn fields(
        schema: &str,
        references: &[Referenced],
    ) -> Result<Vec<SchemaField>, FieldsError> {
        let sources = Sources::new(
            references
                .iter()
                .map(|r| (r.name.clone(), r.schema.clone()))
                .chain([(ROOT_FILE.to_owned(), schema.to_owned())]),
        );
        sources
            .check_import_depth(ROOT_FILE)
            .map_err(|source| FieldsError::Refused {
                reference: None,
                source,
            })?;
        let mut resolver = ChainFileResolver::new();
        resolver.add(sources);
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
            message(
                &mut out,
                &mut Comments::default(),
                &mut stack,
                &first,
                "",
                0,
            )?;
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

    /// Runs `f` on a thread with half the stack of a tokio worker (2 MiB):
    /// a parse that recursed without bound would overflow it and abort the
    /// whole test binary, not just fail this test.
    fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
        std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(f)
            .expect("thread")
            .join()
            .expect("no panic")
    }

    /// A Protobuf schema whose file option is an aggregate value nested
    /// `depth` braces deep (a recursive message makes any depth valid).
    pub(crate) fn proto_deep_option(depth: usize) -> String {
        format!(
            "syntax = \"proto3\";\nimport \"google/protobuf/descriptor.proto\";\n\
             message R {{ int32 f = 1; }}\nmessage M {{ M a = 1; }}\n\
             extend google.protobuf.FileOptions {{ M x = 50000; }}\n\
             option (x) = {}{{ }}{};\n",
            "{ a: ".repeat(depth.saturating_sub(1)),
            " }".repeat(depth.saturating_sub(1)),
        )
    }

    /// A JSON Schema of `depth` brace levels: objects in objects.
    fn json_deep(depth: usize) -> String {
        // Root `{`, then two levels (`"properties":{"a":{`) per nested object.
        let objects = (depth - 1) / 2;
        let mut s = String::new();
        for _ in 0..objects {
            s.push_str(r#"{"type":"object","properties":{"a":"#);
        }
        s.push_str(if depth.is_multiple_of(2) {
            r#"{"type":["string"]}"#
        } else {
            r#"{"type":"string"}"#
        });
        s.push_str(&"}}".repeat(objects));
        s
    }

    /// An Avro schema of nested records, `depth` bracket levels deep.
    fn avro_deep(depth: usize) -> String {
        // Three levels per record (`{` `"fields":[` `{`), the innermost type a union (`[`).
        let records = (depth - 1) / 3;
        let mut s = String::new();
        for i in 0..records {
            s.push_str(&format!(
                r#"{{"type":"record","name":"R{i}","fields":[{{"name":"a","type":"#
            ));
        }
        s.push_str(&"[".repeat(depth - 3 * records));
        s.push_str(r#""null""#);
        s.push_str(&"]".repeat(depth - 3 * records));
        s.push_str(&"}]}".repeat(records));
        s
    }

    #[test]
    fn nesting_at_the_bounds_parses_on_a_small_stack() {
        use crate::guard::{MAX_JSON_NESTING, MAX_PROTOBUF_NESTING};
        on_small_stack(|| {
            let cases = [
                (
                    SchemaType::Protobuf,
                    proto_deep_option as fn(usize) -> String,
                    MAX_PROTOBUF_NESTING,
                ),
                (SchemaType::Json, json_deep, MAX_JSON_NESTING),
                (SchemaType::Avro, avro_deep, MAX_JSON_NESTING),
            ];
            for (t, make, bound) in cases {
                let at = make(bound);
                assert!(guard::check(t, &at).is_ok(), "{t}: exactly at the bound");
                assert!(guard::check(t, &make(bound + 1)).is_err(), "{t}: one past");
                // Parsed, all the way through the parser (and protox's option
                // interpretation): it fits in half a worker's stack.
                match parse_fields(t, &at, &[]) {
                    Ok(fields) => assert!(!fields.is_empty(), "{t}"),
                    // Avro nests deeper than the walkers expand: an error, not a crash.
                    Err(e) => assert!(
                        t == SchemaType::Avro && matches!(e, FieldsError::TooLarge { .. }),
                        "{t}: {e}"
                    ),
                }
            }
        });
    }

    #[test]
    fn hostile_nesting_is_refused_before_parsing() {
        on_small_stack(|| {
            let deep = 100_000;
            // (50,000 message levels: 100,000 would pass MAX_SCHEMA_BYTES first.)
            let proto_messages = format!(
                "syntax = \"proto3\";\n{}{}",
                "message M{".repeat(deep / 2),
                "}".repeat(deep / 2)
            );
            let cases = [
                (SchemaType::Protobuf, proto_deep_option(deep)),
                (SchemaType::Protobuf, proto_messages),
                (
                    SchemaType::Json,
                    format!("{}1{}", r#"{"a":"#.repeat(deep), "}".repeat(deep)),
                ),
                (
                    SchemaType::Json,
                    format!("{}{}", "[".repeat(deep), "]".repeat(deep)),
                ),
                (
                    SchemaType::Avro,
                    format!("{}\"int\"{}", r#"{"type":"#.repeat(deep), "}".repeat(deep)),
                ),
            ];
            for (t, schema) in cases {
                for result in [
                    parse_fields(t, &schema, &[]).map(|_| ()),
                    record_names(t, &schema).map(|_| ()),
                ] {
                    let err = result.expect_err("refused");
                    assert!(err.is_limit(), "{t}: {err}");
                    assert!(
                        matches!(
                            &err,
                            FieldsError::Refused {
                                source: GuardError::TooDeep { .. },
                                ..
                            }
                        ),
                        "{t}: {err}"
                    );
                    assert!(err.to_string().contains("MAX_"), "names the limit: {err}");
                }
            }
            // In a reference, the reference is named.
            let refs = [Referenced {
                name: "deep.proto".into(),
                schema: proto_deep_option(deep),
            }];
            let err = parse_fields(SchemaType::Protobuf, COMMON_PROTO, &refs).unwrap_err();
            assert!(err.to_string().contains("deep.proto"), "{err}");
            assert!(err.to_string().contains("MAX_PROTOBUF_NESTING"), "{err}");
        });
    }

    #[test]
    fn references_are_bounded_in_number_and_bytes() {
        let many: Vec<Referenced> = (0..=guard::MAX_REFERENCES)
            .map(|i| Referenced {
                name: format!("r{i}"),
                schema: "{}".into(),
            })
            .collect();
        let err = parse_fields(SchemaType::Json, "{}", &many).unwrap_err();
        assert!(err.to_string().contains("MAX_REFERENCES"), "{err}");
        let err = parse_fields(SchemaType::Json, "{}", &many[1..]).map(|_| ());
        assert!(err.is_ok(), "{err:?}");
    }

    /// `n` definitions, each naming the one below it twice: 2^n paths.
    fn doubling(combinator: &str, leaf: &str, n: usize) -> String {
        let mut defs = format!(r#""L0":{leaf}"#);
        for i in 1..=n {
            let r = format!(r##"{{"$ref":"#/definitions/L{}"}}"##, i - 1);
            defs.push_str(&format!(r#","L{i}":{{"{combinator}":[{r},{r}]}}"#));
        }
        format!(
            r##"{{"properties":{{"p":{{"$ref":"#/definitions/L{n}"}}}},"definitions":{{{defs}}}}}"##
        )
    }

    #[test]
    fn exponential_expansion_is_bounded_by_work() {
        // Type names that double at each of 60 levels (2^60 branches, names of
        // 2^60 bytes without a bound), and `allOf` merges that double likewise.
        for schema in [
            doubling(
                "oneOf",
                r#"{"type":["string","integer"],"format":"date-time"}"#,
                60,
            ),
            doubling("allOf", r#"{"properties":{"x":{"type":"string"}}}"#, 60),
        ] {
            let err = parse_fields(SchemaType::Json, &schema, &[]).unwrap_err();
            assert!(
                matches!(
                    err,
                    FieldsError::TooLarge {
                        constant: "MAX_WORK",
                        ..
                    }
                ),
                "{err}"
            );
        }
        // Avro: a short name resolved in a long namespace, 100,000 times in one union.
        let ns = "n".repeat(200_000);
        let branches = vec![r#""N""#; 100_000].join(",");
        let schema = format!(
            r#"{{"type":"record","name":"R","namespace":"{ns}","fields":[
                {{"name":"n","type":{{"type":"fixed","name":"N","size":1}}}},
                {{"name":"u","type":[{branches}]}}]}}"#
        );
        let err = parse_fields(SchemaType::Avro, &schema, &[]).unwrap_err();
        assert!(
            matches!(
                err,
                FieldsError::TooLarge {
                    constant: "MAX_WORK",
                    ..
                }
            ),
            "{err}"
        );
        // A field listed many times with a long doc: bounded by the output bytes.
        let doc = "d".repeat(500_000);
        let fields: Vec<String> = (0..50)
            .map(|i| format!(r#"{{"name":"f{i}","type":"D"}}"#))
            .collect();
        let schema = format!(
            r#"{{"type":"record","name":"R","fields":[
                {{"name":"d","type":{{"type":"record","name":"D","fields":[{{"name":"x","type":"int","doc":"{doc}"}}]}}}},
                {}]}}"#,
            fields.join(",")
        );
        let err = parse_fields(SchemaType::Avro, &schema, &[]).unwrap_err();
        assert!(
            matches!(
                err,
                FieldsError::TooLarge {
                    constant: "MAX_OUTPUT_BYTES",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn long_type_names_are_cut() {
        let long = "x".repeat(5000);
        let schema = format!(r#"{{"properties":{{"a":{{"type":"string","format":"{long}"}}}}}}"#);
        let fields = parse_fields(SchemaType::Json, &schema, &[]).unwrap();
        assert!(fields[0].type_name.len() <= MAX_TYPE_NAME_BYTES + '…'.len_utf8());
        assert!(fields[0].type_name.ends_with('…'));
        assert!(fields[0].type_name.starts_with("string(xxx"));
    }

    /// `n` Protobuf files, `f0.proto` importing `f1.proto` importing ...
    fn import_chain(n: usize) -> Vec<Referenced> {
        (0..n)
            .map(|i| {
                let import = if i + 1 < n {
                    format!("import \"f{}.proto\";\n", i + 1)
                } else {
                    String::new()
                };
                Referenced {
                    name: format!("f{i}.proto"),
                    schema: format!(
                        "syntax = \"proto3\";\npackage p{i};\n{import}message M{i} {{ int32 a = 1; }}\n"
                    ),
                }
            })
            .collect()
    }

    #[test]
    fn protobuf_import_chains_are_bounded() {
        use crate::guard::MAX_PROTOBUF_IMPORT_DEPTH;
        let root = "syntax = \"proto3\";\nimport \"f0.proto\";\nmessage R { p0.M0 f = 1; }\n";
        on_small_stack(move || {
            // The schema and MAX - 1 files below it: compiled, on a small stack.
            let refs = import_chain(MAX_PROTOBUF_IMPORT_DEPTH - 1);
            let fields = parse_fields(SchemaType::Protobuf, root, &refs).unwrap();
            assert_eq!(fields.len(), 2, "{fields:?}");
            // One more, or as many as MAX_REFERENCES allows: refused before protox
            // recurses through them (256 levels overflow 1 MiB in a debug build).
            for n in [guard::MAX_REFERENCES, MAX_PROTOBUF_IMPORT_DEPTH] {
                let err = parse_fields(SchemaType::Protobuf, root, &import_chain(n)).unwrap_err();
                assert!(
                    matches!(
                        err,
                        FieldsError::Refused {
                            source: GuardError::ImportsTooDeep { .. },
                            ..
                        }
                    ),
                    "{err}"
                );
                assert!(
                    err.to_string().contains("MAX_PROTOBUF_IMPORT_DEPTH"),
                    "{err}"
                );
            }
            // Wide is fine: each file imports all the ones after it (a DAG, measured once per file).
            let wide: Vec<Referenced> = (0..20)
                .map(|i| {
                    let imports: String = (i + 1..20).map(|j| format!("import \"f{j}.proto\";\n")).collect();
                    Referenced {
                        name: format!("f{i}.proto"),
                        schema: format!("syntax = \"proto3\";\npackage p{i};\n{imports}message M{i} {{ int32 a = 1; }}\n"),
                    }
                })
                .collect();
            assert!(parse_fields(SchemaType::Protobuf, root, &wide).is_ok());
            // A cycle is protox's error to report.
            let mut cycle = import_chain(3);
            cycle[2].schema = cycle[2]
                .schema
                .replace("package p2;", "package p2;\nimport \"f0.proto\";");
            let err = parse_fields(SchemaType::Protobuf, root, &cycle).unwrap_err();
            assert!(matches!(err, FieldsError::Protobuf(_)), "{err}");
        });
    }
}
