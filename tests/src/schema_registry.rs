//! A fake of Confluent Schema Registry's REST API, for tests and benchmarks.
//!
//! Implements the read paths krawl uses plus registration, soft/hard subject deletion, global and
//! subject-level compatibility config and mode, with Confluent's status codes and
//! `{"error_code": N, "message": "..."}` error bodies. Runs on its own thread and Tokio runtime
//! (like [`crate::RecordingProxy`]) so it works from sync and async tests. Optional basic/bearer
//! auth, HTTPS (rustls) and mTLS, per-request latency, and failure injection.
//!
//! A hostile (compromised) registry, for the tests of krawl's bounds: [`FakeRegistry::answer`]
//! serves a raw answer of the test's choosing for a path (any status, headers, body; a body of
//! any size, streamed, or an endless one), and [`FakeRegistry::register_unchecked`] stores a
//! schema as is, with references that need not exist (cycles included), which the real registry's
//! validation would refuse.
//!
//! Not implemented: compatibility checking between versions (registration never fails with
//! 409/40901), schema contexts, `DELETE /subjects/{s}/versions/{v}`, `/compatibility`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::TcpListener;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio_rustls::rustls;

/// Content type of every response, as Confluent sends it.
pub const SR_CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Request content types accepted (Confluent also takes octet-stream, and a missing header).
const ACCEPTED_REQUEST_TYPES: &[&str] = &[
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

const COMPATIBILITY_LEVELS: &[&str] = &[
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
];

const MODES: &[&str] = &["READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT"];

/// Options of [`FakeRegistry::start`].
#[derive(Debug, Clone, Default)]
pub struct FakeRegistryOpts {
    /// Require HTTP basic auth with this user and password.
    pub basic_auth: Option<(String, String)>,
    /// Require `Authorization: Bearer <token>` (if both are set, either is accepted).
    pub bearer_token: Option<String>,
    /// Serve HTTPS with this certificate chain and private key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// With `tls`: require a client certificate signed by this CA (PEM file).
    pub client_ca: Option<PathBuf>,
    /// Delay before answering each request.
    pub latency: Duration,
}

/// An error as Confluent returns it: HTTP status, `error_code`, `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrError {
    pub status: u16,
    pub error_code: i32,
    pub message: String,
}

impl SrError {
    fn new(status: u16, error_code: i32, message: impl Into<String>) -> SrError {
        SrError {
            status,
            error_code,
            message: message.into(),
        }
    }
    fn subject_not_found(subject: &str) -> SrError {
        SrError::new(404, 40401, format!("Subject '{subject}' not found."))
    }
    fn version_not_found(version: i32) -> SrError {
        SrError::new(404, 40402, format!("Version {version} not found."))
    }
    fn schema_not_found(id: &str) -> SrError {
        SrError::new(404, 40403, format!("Schema {id} not found"))
    }
    fn invalid_schema(detail: impl std::fmt::Display) -> SrError {
        SrError::new(422, 42201, format!("Invalid schema: {detail}"))
    }
}

impl std::fmt::Display for SrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP {} error_code {}: {}",
            self.status, self.error_code, self.message
        )
    }
}

impl std::error::Error for SrError {}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SchemaRef {
    name: String,
    subject: String,
    version: i32,
}

#[derive(Debug, Clone)]
struct StoredSchema {
    schema_type: String,
    schema: String,
    references: Vec<SchemaRef>,
}

#[derive(Debug, Clone)]
struct SubjectVersion {
    version: i32,
    id: i32,
    deleted: bool,
}

#[derive(Debug)]
struct Injected {
    prefix: String,
    status: u16,
    remaining: usize,
    retry_after: Option<u64>,
}

/// A raw answer, served by [`FakeRegistry::answer`] instead of the registry's own: what a
/// hostile registry (or anything in front of it) could send.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub status: u16,
    /// Extra headers (`Content-Type` is the registry's unless set here).
    pub headers: Vec<(String, String)>,
    pub body: RawBody,
}

/// The body of a [`RawAnswer`]. Generated bodies are streamed in 64 KiB pieces, never held whole.
#[derive(Debug, Clone)]
pub enum RawBody {
    /// These bytes, with a `Content-Length`.
    Bytes(Vec<u8>),
    /// `prefix`, then `fill` bytes up to `len` bytes in all, then `suffix` (so a JSON answer can
    /// hold a huge string). With a `Content-Length` of `len + suffix` when `announce_length`,
    /// else chunked.
    Padded {
        prefix: Vec<u8>,
        fill: u8,
        len: u64,
        suffix: Vec<u8>,
        announce_length: bool,
    },
    /// `prefix`, then `fill` bytes forever (chunked), until the client hangs up.
    Endless { prefix: Vec<u8>, fill: u8 },
}

impl RawAnswer {
    /// A `200` with `body` (the registry's content type).
    pub fn ok(body: impl Into<Vec<u8>>) -> RawAnswer {
        RawAnswer {
            status: 200,
            headers: Vec::new(),
            body: RawBody::Bytes(body.into()),
        }
    }

    /// A redirect (`302 Found`) to `location`.
    pub fn redirect(location: &str) -> RawAnswer {
        RawAnswer {
            status: 302,
            headers: vec![("location".into(), location.into())],
            body: RawBody::Bytes(Vec::new()),
        }
    }
}

#[derive(Debug)]
struct RawInjected {
    prefix: String,
    answer: RawAnswer,
    /// `None`: every matching request.
    remaining: Option<usize>,
}

#[derive(Debug)]
struct State {
    schemas: BTreeMap<i32, StoredSchema>,
    /// (type, normalized schema, references) → id, so the same schema gets the same id.
    by_content: HashMap<(String, String, Vec<SchemaRef>), i32>,
    next_id: i32,
    subjects: BTreeMap<String, Vec<SubjectVersion>>,
    global_compat: String,
    subject_compat: BTreeMap<String, String>,
    global_mode: String,
    subject_mode: BTreeMap<String, String>,
    failures: Vec<Injected>,
    raw: Vec<RawInjected>,
    requests: Vec<(String, String)>,
}

impl Default for State {
    fn default() -> State {
        State {
            schemas: BTreeMap::new(),
            by_content: HashMap::new(),
            next_id: 1,
            subjects: BTreeMap::new(),
            global_compat: "BACKWARD".into(),
            subject_compat: BTreeMap::new(),
            global_mode: "READWRITE".into(),
            subject_mode: BTreeMap::new(),
            failures: Vec::new(),
            raw: Vec::new(),
            requests: Vec::new(),
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ------------------------------------------------------------------------------------------------
// Schema validation
// ------------------------------------------------------------------------------------------------

const AVRO_PRIMITIVES: &[&str] = &[
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

fn avro_full_name(obj: &serde_json::Map<String, Value>, ns: Option<&str>) -> Option<String> {
    let name = obj.get("name")?.as_str()?;
    if name.contains('.') {
        return Some(name.to_string());
    }
    let ns = obj.get("namespace").and_then(Value::as_str).or(ns);
    Some(match ns {
        Some(ns) if !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    })
}

fn validate_avro(
    v: &Value,
    ns: Option<&str>,
    named: &mut HashSet<String>,
    has_refs: bool,
) -> Result<(), String> {
    match v {
        Value::String(s) => {
            if AVRO_PRIMITIVES.contains(&s.as_str())
                || named.contains(s)
                || ns.is_some_and(|ns| named.contains(&format!("{ns}.{s}")))
                || has_refs
            {
                Ok(())
            } else {
                Err(format!("\"{s}\" is not a defined name"))
            }
        }
        Value::Array(branches) => {
            for b in branches {
                if b.is_array() {
                    return Err("Unions may not immediately contain other unions".into());
                }
                validate_avro(b, ns, named, has_refs)?;
            }
            Ok(())
        }
        Value::Object(obj) => {
            let ty = obj.get("type").ok_or_else(|| format!("No type: {v}"))?;
            let Some(ty_name) = ty.as_str() else {
                return validate_avro(ty, ns, named, has_refs);
            };
            match ty_name {
                "record" | "error" | "enum" | "fixed" => {
                    let full =
                        avro_full_name(obj, ns).ok_or_else(|| format!("No name in schema: {v}"))?;
                    let own_ns = full.rsplit_once('.').map(|(n, _)| n.to_string());
                    named.insert(full);
                    match ty_name {
                        "enum" => {
                            let symbols = obj
                                .get("symbols")
                                .and_then(Value::as_array)
                                .ok_or_else(|| format!("Enum has no symbols: {v}"))?;
                            if symbols.iter().any(|s| !s.is_string()) {
                                return Err(format!("Enum symbols must be strings: {v}"));
                            }
                            Ok(())
                        }
                        "fixed" => match obj.get("size") {
                            Some(Value::Number(_)) => Ok(()),
                            _ => Err(format!("Invalid or no size: {v}")),
                        },
                        _ => {
                            let fields = obj
                                .get("fields")
                                .and_then(Value::as_array)
                                .ok_or_else(|| format!("Record has no fields: {v}"))?;
                            let mut seen = HashSet::new();
                            for f in fields {
                                let fname = f
                                    .get("name")
                                    .and_then(Value::as_str)
                                    .ok_or_else(|| format!("No field name: {f}"))?;
                                if !seen.insert(fname.to_string()) {
                                    return Err(format!("Duplicate field {fname} in record"));
                                }
                                let fty =
                                    f.get("type").ok_or_else(|| format!("No field type: {f}"))?;
                                validate_avro(fty, own_ns.as_deref(), named, has_refs)?;
                            }
                            Ok(())
                        }
                    }
                }
                "array" => validate_avro(
                    obj.get("items")
                        .ok_or_else(|| format!("Array has no items type: {v}"))?,
                    ns,
                    named,
                    has_refs,
                ),
                "map" => validate_avro(
                    obj.get("values")
                        .ok_or_else(|| format!("Map has no values type: {v}"))?,
                    ns,
                    named,
                    has_refs,
                ),
                other => validate_avro(&Value::String(other.to_string()), ns, named, has_refs),
            }
        }
        other => Err(format!("Not a valid Avro schema: {other}")),
    }
}

/// Checks a schema of `schema_type` and returns the key used to find identical schemas.
fn validate_schema(schema_type: &str, schema: &str, has_refs: bool) -> Result<String, SrError> {
    if schema.trim().is_empty() {
        return Err(SrError::invalid_schema("Empty schema"));
    }
    match schema_type {
        "AVRO" => {
            let v: Value = serde_json::from_str(schema)
                .map_err(|e| SrError::invalid_schema(format!("{schema}, details: {e}")))?;
            validate_avro(&v, None, &mut HashSet::new(), has_refs)
                .map_err(|e| SrError::invalid_schema(format!("{schema}, details: {e}")))?;
            Ok(v.to_string())
        }
        "JSON" => {
            let v: Value = serde_json::from_str(schema)
                .map_err(|e| SrError::invalid_schema(format!("{schema}, details: {e}")))?;
            if !(v.is_object() || v.is_boolean()) {
                return Err(SrError::invalid_schema(format!(
                    "{schema}, details: a JSON Schema must be an object or a boolean"
                )));
            }
            Ok(v.to_string())
        }
        "PROTOBUF" => {
            if !(schema.contains("message") || schema.contains("enum") || schema.contains("syntax"))
            {
                return Err(SrError::invalid_schema(format!(
                    "{schema}, details: not a Protobuf schema"
                )));
            }
            Ok(schema.trim().to_string())
        }
        other => Err(SrError::new(
            422,
            42201,
            format!("Invalid schema type {other}"),
        )),
    }
}

// ------------------------------------------------------------------------------------------------
// State operations (shared by the HTTP handlers and the test controls)
// ------------------------------------------------------------------------------------------------

/// A version path parameter: a number in [1, 2^31-1], `latest` or `-1`.
#[derive(Debug, Clone, Copy)]
enum VersionId {
    Latest,
    Number(i32),
}

fn parse_version(s: &str) -> Result<VersionId, SrError> {
    if s.eq_ignore_ascii_case("latest") || s == "-1" {
        return Ok(VersionId::Latest);
    }
    match s.parse::<i32>() {
        Ok(n) if n >= 1 => Ok(VersionId::Number(n)),
        _ => Err(SrError::new(
            422,
            42202,
            format!(
                "The specified version '{s}' is not a valid version id. Allowed values are \
                 between [1, 2^31-1] and the string \"latest\""
            ),
        )),
    }
}

impl State {
    /// Versions of a subject visible with/without `deleted`; 40401 when none.
    fn visible_versions(
        &self,
        subject: &str,
        deleted: bool,
    ) -> Result<Vec<&SubjectVersion>, SrError> {
        let versions: Vec<&SubjectVersion> = self
            .subjects
            .get(subject)
            .map(|vs| vs.iter().filter(|v| deleted || !v.deleted).collect())
            .unwrap_or_default();
        if versions.is_empty() {
            return Err(SrError::subject_not_found(subject));
        }
        Ok(versions)
    }

    fn lookup_version(
        &self,
        subject: &str,
        version: VersionId,
        deleted: bool,
    ) -> Result<&SubjectVersion, SrError> {
        let versions = self.visible_versions(subject, deleted)?;
        match version {
            VersionId::Latest => versions
                .last()
                .copied()
                .ok_or_else(|| SrError::subject_not_found(subject)),
            VersionId::Number(n) => versions
                .into_iter()
                .find(|v| v.version == n)
                .ok_or_else(|| SrError::version_not_found(n)),
        }
    }

    fn mode_of(&self, subject: &str) -> &str {
        self.subject_mode
            .get(subject)
            .unwrap_or(&self.global_mode)
            .as_str()
    }

    fn register(
        &mut self,
        subject: &str,
        schema_type: &str,
        schema: &str,
        references: Vec<SchemaRef>,
    ) -> Result<(i32, i32), SrError> {
        let mode = self.mode_of(subject);
        if mode == "READONLY" || mode == "READONLY_OVERRIDE" {
            return Err(SrError::new(
                422,
                42205,
                format!("Subject {subject} is in read-only mode"),
            ));
        }
        let key = validate_schema(schema_type, schema, !references.is_empty())?;
        for r in &references {
            if r.name.is_empty() {
                return Err(SrError::invalid_schema("reference with an empty name"));
            }
            let found = self
                .subjects
                .get(&r.subject)
                .is_some_and(|vs| vs.iter().any(|v| v.version == r.version && !v.deleted));
            if !found {
                return Err(SrError::invalid_schema(format!(
                    "{schema}, details: reference '{}' to subject '{}' version {} not found",
                    r.name, r.subject, r.version
                )));
            }
        }
        let content_key = (schema_type.to_string(), key, references.clone());
        let existing_id = self.by_content.get(&content_key).copied();
        if let Some(id) = existing_id {
            if let Some(v) = self
                .subjects
                .get(subject)
                .and_then(|vs| vs.iter().find(|v| v.id == id && !v.deleted))
            {
                return Ok((id, v.version));
            }
        }
        let id = match existing_id {
            Some(id) => id,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.schemas.insert(
                    id,
                    StoredSchema {
                        schema_type: schema_type.to_string(),
                        schema: schema.to_string(),
                        references,
                    },
                );
                self.by_content.insert(content_key, id);
                id
            }
        };
        let versions = self.subjects.entry(subject.to_string()).or_default();
        let version = versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        versions.push(SubjectVersion {
            version,
            id,
            deleted: false,
        });
        Ok((id, version))
    }

    fn delete_subject(&mut self, subject: &str, permanent: bool) -> Result<Vec<i32>, SrError> {
        let Some(versions) = self.subjects.get_mut(subject) else {
            return Err(SrError::subject_not_found(subject));
        };
        let all_deleted = versions.iter().all(|v| v.deleted);
        if !permanent {
            if all_deleted {
                return Err(SrError::new(
                    404,
                    40404,
                    format!(
                        "Subject '{subject}' was soft deleted.Set permanent=true to delete \
                         permanently"
                    ),
                ));
            }
            let mut out = Vec::new();
            for v in versions.iter_mut().filter(|v| !v.deleted) {
                v.deleted = true;
                out.push(v.version);
            }
            return Ok(out);
        }
        if !all_deleted {
            return Err(SrError::new(
                404,
                40405,
                format!(
                    "Subject '{subject}' was not deleted first before being permanently deleted"
                ),
            ));
        }
        let removed = self.subjects.remove(subject).unwrap_or_default();
        self.subject_compat.remove(subject);
        self.subject_mode.remove(subject);
        // Schema ids no longer used by any subject version are gone for good.
        let used: HashSet<i32> = self.subjects.values().flatten().map(|v| v.id).collect();
        self.schemas.retain(|id, _| used.contains(id));
        self.by_content.retain(|_, id| used.contains(id));
        Ok(removed.iter().map(|v| v.version).collect())
    }

    fn schema_json(&self, id: i32) -> Option<serde_json::Map<String, Value>> {
        let s = self.schemas.get(&id)?;
        let mut m = serde_json::Map::new();
        if s.schema_type != "AVRO" {
            m.insert("schemaType".into(), json!(s.schema_type));
        }
        if !s.references.is_empty() {
            let refs: Vec<Value> = s
                .references
                .iter()
                .map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version}))
                .collect();
            m.insert("references".into(), Value::Array(refs));
        }
        m.insert("schema".into(), json!(s.schema));
        Some(m)
    }
}

fn validate_level(level: &str) -> Result<String, SrError> {
    let up = level.to_ascii_uppercase();
    if COMPATIBILITY_LEVELS.contains(&up.as_str()) {
        Ok(up)
    } else {
        Err(SrError::new(
            422,
            42203,
            "Invalid compatibility level. Valid values are none, backward, forward, full, \
             backward_transitive, forward_transitive, and full_transitive",
        ))
    }
}

fn validate_mode(mode: &str) -> Result<String, SrError> {
    let up = mode.to_ascii_uppercase();
    if MODES.contains(&up.as_str()) {
        Ok(up)
    } else {
        Err(SrError::new(
            422,
            42204,
            "Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE, IMPORT.",
        ))
    }
}

// ------------------------------------------------------------------------------------------------
// HTTP
// ------------------------------------------------------------------------------------------------

type Body = BoxBody<Bytes, Infallible>;

/// A generated body ([`RawBody::Padded`], [`RawBody::Endless`]), streamed in 64 KiB pieces.
struct Generated {
    prefix: Bytes,
    /// 64 KiB of the fill byte, sliced for each piece.
    piece: Bytes,
    /// Fill bytes still to send; `None`: endless.
    fill_left: Option<u64>,
    suffix: Bytes,
    /// The exact length to announce, if any.
    announce: Option<u64>,
}

impl Generated {
    fn new(body: RawBody) -> Generated {
        let piece = |fill: u8| Bytes::from(vec![fill; 64 * 1024]);
        match body {
            RawBody::Bytes(b) => Generated {
                announce: Some(b.len() as u64),
                prefix: Bytes::from(b),
                piece: Bytes::new(),
                fill_left: Some(0),
                suffix: Bytes::new(),
            },
            RawBody::Padded {
                prefix,
                fill,
                len,
                suffix,
                announce_length,
            } => Generated {
                fill_left: Some(len.saturating_sub(prefix.len() as u64)),
                announce: announce_length
                    .then_some(len.max(prefix.len() as u64) + suffix.len() as u64),
                prefix: Bytes::from(prefix),
                piece: piece(fill),
                suffix: Bytes::from(suffix),
            },
            RawBody::Endless { prefix, fill } => Generated {
                prefix: Bytes::from(prefix),
                piece: piece(fill),
                fill_left: None,
                suffix: Bytes::new(),
                announce: None,
            },
        }
    }
}

impl hyper::body::Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if !this.prefix.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.prefix)))));
        }
        let n = match this.fill_left {
            None => this.piece.len(),
            Some(left) => usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(this.piece.len()),
        };
        if n > 0 {
            if let Some(left) = &mut this.fill_left {
                *left -= n as u64;
            }
            return Poll::Ready(Some(Ok(Frame::data(this.piece.slice(..n)))));
        }
        if !this.suffix.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.suffix)))));
        }
        Poll::Ready(None)
    }

    fn size_hint(&self) -> SizeHint {
        match self.announce {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

fn raw_response(answer: RawAnswer) -> Response<Body> {
    let mut resp = Response::new(Generated::new(answer.body).boxed());
    *resp.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(SR_CONTENT_TYPE));
    for (k, v) in answer.headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

fn respond(status: u16, body: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(SR_CONTENT_TYPE));
    resp
}

fn ok_json(v: Value) -> Response<Body> {
    respond(200, v.to_string())
}

fn error_response(e: &SrError) -> Response<Body> {
    respond(
        e.status,
        json!({"error_code": e.error_code, "message": e.message}).to_string(),
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_flag(query: &HashMap<String, String>, name: &str) -> bool {
    query
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    opts: FakeRegistryOpts,
    expected_basic: Option<String>,
}

fn media_type(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `None` when the request may proceed, else the 401 response.
fn check_auth(shared: &Shared, req: &Request<Incoming>) -> Option<Response<Body>> {
    if shared.expected_basic.is_none() && shared.opts.bearer_token.is_none() {
        return None;
    }
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (scheme, cred) = header.split_once(' ').unwrap_or((header, ""));
    let cred = cred.trim();
    let ok = match scheme.to_ascii_lowercase().as_str() {
        "basic" => shared.expected_basic.as_deref() == Some(cred),
        "bearer" => shared.opts.bearer_token.as_deref() == Some(cred),
        _ => false,
    };
    if ok {
        return None;
    }
    let mut resp = error_response(&SrError::new(401, 401, "Unauthorized"));
    let challenge = if shared.expected_basic.is_some() {
        "Basic realm=\"SchemaRegistry\""
    } else {
        "Bearer realm=\"SchemaRegistry\""
    };
    resp.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    Some(resp)
}

fn injected_error(status: u16) -> SrError {
    match status {
        401 => SrError::new(401, 401, "Unauthorized"),
        403 => SrError::new(403, 40301, "User is denied operation on this server."),
        429 => SrError::new(429, 42901, "Rate limit exceeded"),
        500 => SrError::new(500, 50001, "Error in the backend data store"),
        502 => SrError::new(
            502,
            50002,
            "Error while forwarding the request to the leader",
        ),
        503 => SrError::new(
            503,
            50003,
            "Error while forwarding the request to the leader",
        ),
        s => SrError::new(s, i32::from(s) * 100 + 1, format!("Injected HTTP {s}")),
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let path = req.uri().path().to_string();
    lock(&shared.state)
        .requests
        .push((req.method().to_string(), path_and_query));
    if !shared.opts.latency.is_zero() {
        tokio::time::sleep(shared.opts.latency).await;
    }
    // Injected failures first: a proxy/gateway in front of the registry.
    let injected = {
        let mut st = lock(&shared.state);
        st.failures
            .iter_mut()
            .find(|f| f.remaining > 0 && path.starts_with(&f.prefix))
            .map(|f| {
                f.remaining -= 1;
                (f.status, f.retry_after)
            })
    };
    if let Some((status, retry_after)) = injected {
        let mut resp = error_response(&injected_error(status));
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return Ok(resp);
    }
    let raw = {
        let mut st = lock(&shared.state);
        st.raw
            .iter_mut()
            .find(|r| r.remaining != Some(0) && path.starts_with(&r.prefix))
            .map(|r| {
                if let Some(n) = &mut r.remaining {
                    *n -= 1;
                }
                r.answer.clone()
            })
    };
    if let Some(answer) = raw {
        return Ok(raw_response(answer));
    }
    if let Some(resp) = check_auth(&shared, &req) {
        return Ok(resp);
    }
    // Accept: one of ours, a wildcard, or none.
    if let Some(accept) = req.headers().get(hyper::header::ACCEPT) {
        let accept = accept.to_str().unwrap_or("");
        let acceptable = accept.split(',').map(media_type).any(|m| {
            m.is_empty()
                || m == "*/*"
                || m == "application/*"
                || ACCEPTED_REQUEST_TYPES.contains(&m.as_str())
        });
        if !acceptable {
            return Ok(error_response(&SrError::new(
                406,
                406,
                "HTTP 406 Not Acceptable",
            )));
        }
    }
    if matches!(*req.method(), Method::POST | Method::PUT) {
        if let Some(ct) = req.headers().get(CONTENT_TYPE) {
            let m = media_type(ct.to_str().unwrap_or(""));
            if !ACCEPTED_REQUEST_TYPES.contains(&m.as_str()) {
                return Ok(error_response(&SrError::new(
                    415,
                    415,
                    "HTTP 415 Unsupported Media Type",
                )));
            }
        }
    }
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let method = req.method().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(error_response(&SrError::new(
                400,
                400,
                format!("reading request body: {e}"),
            )))
        }
    };
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    Ok(match route(&shared, &method, &segs, &query, &body) {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    })
}

fn parse_body(body: &Bytes) -> Result<Value, SrError> {
    serde_json::from_slice(body)
        .map_err(|e| SrError::new(400, 400, format!("Unrecognized request body: {e}")))
}

fn route(
    shared: &Shared,
    method: &Method,
    segs: &[&str],
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Response<Body>, SrError> {
    let deleted = query_flag(query, "deleted");
    let mut st = lock(&shared.state);
    let not_allowed = || SrError::new(405, 405, "HTTP 405 Method Not Allowed");
    match segs {
        [] => match *method {
            Method::GET => Ok(ok_json(json!({}))),
            _ => Err(not_allowed()),
        },
        ["subjects"] => match *method {
            Method::GET => {
                let subjects: Vec<&String> = st
                    .subjects
                    .iter()
                    .filter(|(_, vs)| !vs.is_empty() && (deleted || vs.iter().any(|v| !v.deleted)))
                    .map(|(s, _)| s)
                    .collect();
                Ok(ok_json(json!(subjects)))
            }
            _ => Err(not_allowed()),
        },
        ["subjects", subject] => match *method {
            Method::DELETE => {
                let versions = st.delete_subject(subject, query_flag(query, "permanent"))?;
                Ok(ok_json(json!(versions)))
            }
            _ => Err(not_allowed()),
        },
        ["subjects", subject, "versions"] => match *method {
            Method::GET => {
                let versions: Vec<i32> = st
                    .visible_versions(subject, deleted)?
                    .iter()
                    .map(|v| v.version)
                    .collect();
                Ok(ok_json(json!(versions)))
            }
            Method::POST => {
                let req = parse_body(body)?;
                let schema = req
                    .get("schema")
                    .and_then(Value::as_str)
                    .ok_or_else(|| SrError::invalid_schema("Empty schema"))?;
                let schema_type = req
                    .get("schemaType")
                    .and_then(Value::as_str)
                    .unwrap_or("AVRO")
                    .to_ascii_uppercase();
                let references = parse_references(req.get("references"))?;
                let (id, _version) = st.register(subject, &schema_type, schema, references)?;
                Ok(ok_json(json!({ "id": id })))
            }
            _ => Err(not_allowed()),
        },
        ["subjects", subject, "versions", version] => match *method {
            Method::GET => {
                let vid = parse_version(version)?;
                let v = st.lookup_version(subject, vid, deleted)?.clone();
                let mut m = st
                    .schema_json(v.id)
                    .ok_or_else(|| SrError::schema_not_found(&v.id.to_string()))?;
                m.insert("subject".into(), json!(subject));
                m.insert("version".into(), json!(v.version));
                m.insert("id".into(), json!(v.id));
                Ok(ok_json(Value::Object(m)))
            }
            _ => Err(not_allowed()),
        },
        ["subjects", subject, "versions", version, "schema"] => match *method {
            Method::GET => {
                let vid = parse_version(version)?;
                let id = st.lookup_version(subject, vid, deleted)?.id;
                let s = st
                    .schemas
                    .get(&id)
                    .ok_or_else(|| SrError::schema_not_found(&id.to_string()))?;
                Ok(respond(200, s.schema.clone()))
            }
            _ => Err(not_allowed()),
        },
        ["schemas", "types"] => match *method {
            Method::GET => Ok(ok_json(json!(["JSON", "PROTOBUF", "AVRO"]))),
            _ => Err(not_allowed()),
        },
        ["schemas", "ids", id] => match *method {
            Method::GET => {
                let m = id
                    .parse::<i32>()
                    .ok()
                    .and_then(|n| st.schema_json(n))
                    .ok_or_else(|| SrError::schema_not_found(id))?;
                Ok(ok_json(Value::Object(m)))
            }
            _ => Err(not_allowed()),
        },
        ["config"] => match *method {
            Method::GET => Ok(ok_json(json!({"compatibilityLevel": st.global_compat}))),
            Method::PUT => {
                let level = body_field(body, "compatibility")?;
                let level = validate_level(&level)?;
                st.global_compat = level.clone();
                Ok(ok_json(json!({ "compatibility": level })))
            }
            _ => Err(not_allowed()),
        },
        ["config", subject] => match *method {
            Method::GET => match st.subject_compat.get(*subject) {
                Some(level) => Ok(ok_json(json!({ "compatibilityLevel": level }))),
                None if query_flag(query, "defaultToGlobal") => {
                    Ok(ok_json(json!({"compatibilityLevel": st.global_compat})))
                }
                None => Err(SrError::new(
                    404,
                    40408,
                    format!(
                        "Subject '{subject}' does not have subject-level compatibility configured"
                    ),
                )),
            },
            Method::PUT => {
                let level = validate_level(&body_field(body, "compatibility")?)?;
                st.subject_compat.insert(subject.to_string(), level.clone());
                Ok(ok_json(json!({ "compatibility": level })))
            }
            Method::DELETE => match st.subject_compat.remove(*subject) {
                Some(level) => Ok(ok_json(json!({ "compatibilityLevel": level }))),
                None => Err(SrError::subject_not_found(subject)),
            },
            _ => Err(not_allowed()),
        },
        ["mode"] => match *method {
            Method::GET => Ok(ok_json(json!({"mode": st.global_mode}))),
            Method::PUT => {
                let mode = validate_mode(&body_field(body, "mode")?)?;
                st.global_mode = mode.clone();
                Ok(ok_json(json!({ "mode": mode })))
            }
            _ => Err(not_allowed()),
        },
        ["mode", subject] => match *method {
            Method::GET => match st.subject_mode.get(*subject) {
                Some(mode) => Ok(ok_json(json!({ "mode": mode }))),
                None if query_flag(query, "defaultToGlobal") => {
                    Ok(ok_json(json!({"mode": st.global_mode})))
                }
                None => Err(SrError::new(
                    404,
                    40409,
                    format!("Subject '{subject}' does not have subject-level mode configured"),
                )),
            },
            Method::PUT => {
                let mode = validate_mode(&body_field(body, "mode")?)?;
                st.subject_mode.insert(subject.to_string(), mode.clone());
                Ok(ok_json(json!({ "mode": mode })))
            }
            _ => Err(not_allowed()),
        },
        _ => Err(SrError::new(404, 404, "HTTP 404 Not Found")),
    }
}

fn body_field(body: &Bytes, field: &str) -> Result<String, SrError> {
    let v = parse_body(body)?;
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| SrError::new(422, 422, format!("Missing field '{field}'")))
}

fn parse_references(v: Option<&Value>) -> Result<Vec<SchemaRef>, SrError> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    if v.is_null() {
        return Ok(Vec::new());
    }
    let arr = v
        .as_array()
        .ok_or_else(|| SrError::invalid_schema("references must be an array"))?;
    arr.iter()
        .map(|r| {
            let name = r.get("name").and_then(Value::as_str);
            let subject = r.get("subject").and_then(Value::as_str);
            let version = r
                .get("version")
                .and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n).ok());
            match (name, subject, version) {
                (Some(name), Some(subject), Some(version)) => Ok(SchemaRef {
                    name: name.to_string(),
                    subject: subject.to_string(),
                    version,
                }),
                _ => Err(SrError::invalid_schema(format!("invalid reference {r}"))),
            }
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// TLS and serving
// ------------------------------------------------------------------------------------------------

fn tls_acceptor(opts: &FakeRegistryOpts) -> Result<Option<tokio_rustls::TlsAcceptor>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some((cert, key)) = &opts.tls else {
        if opts.client_ca.is_some() {
            bail!("fake registry: client_ca needs tls");
        }
        return Ok(None);
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &opts.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("reading {}", ca.display()))?
            {
                roots
                    .add(c.with_context(|| format!("parsing {}", ca.display()))?)
                    .context("adding client CA")?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .context("client verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("server certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

async fn serve_connection<S>(io: S, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}

/// A running fake Schema Registry. Stops on [`FakeRegistry::stop`] or drop.
#[derive(Debug)]
pub struct FakeRegistry {
    port: u16,
    https: bool,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeRegistry {
    /// Starts on a free port of 127.0.0.1.
    pub fn start(opts: FakeRegistryOpts) -> Result<FakeRegistry> {
        Self::start_on(0, opts)
    }

    /// Starts on 127.0.0.1:`port` (0 = any free port).
    pub fn start_on(port: u16, opts: FakeRegistryOpts) -> Result<FakeRegistry> {
        use base64::Engine as _;
        let acceptor = tls_acceptor(&opts)?;
        let listener = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("fake registry: binding 127.0.0.1:{port}"))?;
        listener
            .set_nonblocking(true)
            .context("fake registry: set_nonblocking")?;
        let port = listener
            .local_addr()
            .context("fake registry: local_addr")?
            .port();
        let expected_basic = opts
            .basic_auth
            .as_ref()
            .map(|(u, p)| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")));
        let https = acceptor.is_some();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            opts,
            expected_basic,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("fake registry: building tokio runtime")?;
        let (shutdown_tx, mut shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-registry-{port}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("fake registry: {e}");
                            return;
                        }
                    };
                    loop {
                        tokio::select! {
                            _ = &mut shutdown_rx => break,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let _ = stream.set_nodelay(true);
                                let sh = sh.clone();
                                match acceptor.clone() {
                                    None => { tokio::spawn(serve_connection(stream, sh)); }
                                    Some(acc) => {
                                        tokio::spawn(async move {
                                            if let Ok(tls) = acc.accept(stream).await {
                                                serve_connection(tls, sh).await;
                                            }
                                        });
                                    }
                                }
                            }
                        }
                    }
                });
                // Dropping the runtime cancels connection tasks and closes their sockets.
            })
            .context("fake registry: spawning thread")?;
        Ok(FakeRegistry {
            port,
            https,
            shared,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Registers a schema directly (same validation as `POST /subjects/{s}/versions`).
    /// `schema_type` is `AVRO`, `JSON` or `PROTOBUF`; references are `(name, subject, version)`.
    /// Returns `(id, version)`; registering the same schema again returns the same pair.
    pub fn register(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
        references: &[(&str, &str, i32)],
    ) -> Result<(i32, i32)> {
        let refs = references
            .iter()
            .map(|(name, subject, version)| SchemaRef {
                name: name.to_string(),
                subject: subject.to_string(),
                version: *version,
            })
            .collect();
        lock(&self.shared.state)
            .register(subject, &schema_type.to_ascii_uppercase(), schema, refs)
            .map_err(|e| anyhow!(e))
    }

    /// Sets the global (`None`) or a subject's compatibility level.
    pub fn set_compatibility(&self, subject: Option<&str>, level: &str) -> Result<()> {
        let level = validate_level(level).map_err(|e| anyhow!(e))?;
        let mut st = lock(&self.shared.state);
        match subject {
            None => st.global_compat = level,
            Some(s) => {
                st.subject_compat.insert(s.to_string(), level);
            }
        }
        Ok(())
    }

    /// Sets the global (`None`) or a subject's mode.
    pub fn set_mode(&self, subject: Option<&str>, mode: &str) -> Result<()> {
        let mode = validate_mode(mode).map_err(|e| anyhow!(e))?;
        let mut st = lock(&self.shared.state);
        match subject {
            None => st.global_mode = mode,
            Some(s) => {
                st.subject_mode.insert(s.to_string(), mode);
            }
        }
        Ok(())
    }

    /// Soft-deletes every version of a subject; returns the versions deleted.
    pub fn soft_delete(&self, subject: &str) -> Result<Vec<i32>> {
        lock(&self.shared.state)
            .delete_subject(subject, false)
            .map_err(|e| anyhow!(e))
    }

    /// The next `times` requests whose path starts with `path_prefix` get HTTP `status` with a
    /// Confluent error body (403 → 40301, 429 → 42901, 500 → 50001, ...) and, if given, a
    /// `Retry-After: <secs>` header. Injected failures apply before authentication.
    pub fn fail(
        &self,
        path_prefix: &str,
        status: u16,
        times: usize,
        retry_after_secs: Option<u64>,
    ) {
        lock(&self.shared.state).failures.push(Injected {
            prefix: path_prefix.to_string(),
            status,
            remaining: times,
            retry_after: retry_after_secs,
        });
    }

    /// Requests whose path starts with `path_prefix` get `answer` instead of the registry's own:
    /// the next `times` of them, or every one (`None`). Applies before authentication, after
    /// [`Self::fail`]; the first matching injection wins.
    pub fn answer(&self, path_prefix: &str, answer: RawAnswer, times: Option<usize>) {
        lock(&self.shared.state).raw.push(RawInjected {
            prefix: path_prefix.to_string(),
            answer,
            remaining: times,
        });
    }

    /// Stores a new version of `subject` as a compromised registry would serve it: no validation
    /// of the schema, of its type or of its references (`(name, subject, version)`, which need not
    /// exist: references can form cycles). Returns `(id, version)`.
    pub fn register_unchecked(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
        references: &[(&str, &str, i32)],
    ) -> (i32, i32) {
        let mut st = lock(&self.shared.state);
        let id = st.next_id;
        st.next_id += 1;
        st.schemas.insert(
            id,
            StoredSchema {
                schema_type: schema_type.to_string(),
                schema: schema.to_string(),
                references: references
                    .iter()
                    .map(|(name, subject, version)| SchemaRef {
                        name: name.to_string(),
                        subject: subject.to_string(),
                        version: *version,
                    })
                    .collect(),
            },
        );
        let versions = st.subjects.entry(subject.to_string()).or_default();
        let version = versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        versions.push(SubjectVersion {
            version,
            id,
            deleted: false,
        });
        (id, version)
    }

    /// `(method, path_and_query)` of every request received, in arrival order.
    pub fn requests(&self) -> Vec<(String, String)> {
        lock(&self.shared.state).requests.clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.shared.state).requests.len()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        lock(&self.shared.state).requests.clear();
    }

    /// Stops listening and closes open connections: later requests get connection refused.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Avro schema of version `version` (1-based) of the seeded subject `topic-<i>-value`: a record
/// with a few fields, each later version adding one optional field.
pub fn seed_avro_schema(i: usize, version: usize) -> String {
    let mut fields = vec![
        json!({"name": "id", "type": "long"}),
        json!({"name": "name", "type": "string"}),
        json!({"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}),
    ];
    for k in 1..version {
        fields.push(
            json!({"name": format!("extra_{k}"), "type": ["null", "string"], "default": null}),
        );
    }
    json!({
        "type": "record",
        "name": format!("Topic{i}Value"),
        "namespace": "krawl.bench",
        "fields": fields,
    })
    .to_string()
}

/// Registers `versions` versions of [`seed_avro_schema`] under `topic-<i>-value` for each
/// `i in 0..subjects`.
pub fn seed(registry: &FakeRegistry, subjects: usize, versions: usize) -> Result<()> {
    for i in 0..subjects {
        for v in 1..=versions {
            registry.register(
                &format!("topic-{i}-value"),
                "AVRO",
                &seed_avro_schema(i, v),
                &[],
            )?;
        }
    }
    Ok(())
}
