//! The Schema Registry extraction: subjects, their versions and parsed
//! fields, compatibility and mode, as [`Record`]s handed to a
//! [`RegistrySink`] as soon as each subject is complete; and the
//! [`SubjectIndex`] that [`bind`] uses to attach subjects to topics.
//!
//! Failure rules (the same as the Kafka extraction's):
//! - listing the subjects fails (registry unreachable, 401, ...): [`extract`]
//!   returns `Err`; the caller emits one warning and goes on with Kafka.
//! - one subject fails: a `subject_failed` warning, the others go on.
//! - one (non-latest) version fails: `schema_version_failed`.
//! - a schema's references cannot be fetched: `schema_reference_failed`, and
//!   the version is emitted with empty `fields`.
//! - a schema does not parse: `schema_parse_failed`, empty `fields`.
//! - the subject's compatibility or mode cannot be read:
//!   `compatibility_unavailable` / `mode_unavailable`, the field is `null`.
//! - a schema or its references pass one of the bounds that keep a hostile
//!   registry from exhausting the stack, memory or CPU ([`crate::guard`]:
//!   size, nesting, number and bytes of references; [`crate::fields`]:
//!   expansion): `schema_limit_exceeded`, naming the subject, the version
//!   and the limit; empty `fields`. A schema text over
//!   [`guard::MAX_SCHEMA_BYTES`] is also left out of the record (`schema`
//!   is empty).
//! - an answer body over `krawl_http::limits::SCHEMA_REGISTRY`: the error
//!   of that request ([`RegistryError::TooLarge`]), handled as above (the
//!   subject list: `Err`; a subject: `subject_failed`; ...).
//!
//! No step recurses on registry data: references are resolved with an
//! explicit work list ([`crate::references`]), and every schema text passes
//! [`crate::guard`] before a parser sees it.
//!
//! Adapting to `krawl_kafka::extract::RecordSink` (or to the extractor's
//! counting wrapper) takes a few lines in krawl-kafka:
//! ```text
//! struct Adapter<'a, S>(&'a mut S);
//! impl<S: RecordSink> RegistrySink for Adapter<'_, S> {
//!     type Error = ExtractError;
//!     fn emit(&mut self, r: Record) -> impl Future<Output = Result<(), ExtractError>> + Send {
//!         self.0.emit(r)
//!     }
//! }
//! ```
//! then `extract(&client, &cfg, &mut Adapter(sink))`; on
//! `Err(RegistryExtractError::Registry(e))` emit one warning and go on, on
//! `Err(RegistryExtractError::Sink(e))` stop. For each topic,
//! `bind(&output.index, topic, &cfg)` fills `key_subject`, `value_subject`
//! and `other_subjects`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use futures::StreamExt;
use krawl_model::{Record, SchemaField, SchemaVersionRecord, SubjectRecord, WarningRecord};

use crate::client::{RegistryClient, RegistryError, SchemaVersion};
use crate::config::{SchemaRegistryConfig, VersionsMode};
use crate::fields;
use crate::guard::{self, MAX_SCHEMA_BYTES};
use crate::references::{self, Key, ReferenceError, ReferenceWalk};

/// Where the extraction's records go, in order. Mirrors
/// `krawl_kafka::extract::RecordSink` without depending on krawl-kafka.
pub trait RegistrySink: Send {
    /// What a failed `emit` returns; it stops the extraction.
    type Error: Send;
    /// Hand one complete record to the sink.
    fn emit(&mut self, record: Record) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Collects the records (tests, small embeddings).
impl RegistrySink for Vec<Record> {
    type Error = Infallible;
    async fn emit(&mut self, record: Record) -> Result<(), Infallible> {
        self.push(record);
        Ok(())
    }
}

/// Why [`extract`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RegistryExtractError<E> {
    /// The registry could not be listed: unreachable, auth, 5xx after retries.
    #[error("schema registry: {0}")]
    Registry(#[from] RegistryError),
    /// The sink refused a record.
    #[error("the record sink failed")]
    Sink(E),
}

/// What one extraction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySummary {
    /// Subject records emitted.
    pub subjects: usize,
    /// Schema version records emitted.
    pub schema_versions: usize,
    /// Warning records emitted, by code.
    pub warnings: BTreeMap<String, u64>,
    /// HTTP requests sent, retries included.
    pub requests: u64,
    pub millis: u64,
}

/// The result of [`extract`]: the counts and the index for [`bind`].
#[derive(Debug, Clone, Default)]
pub struct RegistryOutput {
    pub summary: RegistrySummary,
    pub index: SubjectIndex,
}

/// What topic binding needs to know about the registry, and no more: the
/// live, selected subject names and, when a record-name strategy is enabled,
/// the record names of each subject's latest schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectIndex {
    subjects: BTreeSet<String>,
    record_names: BTreeMap<String, BTreeSet<String>>,
}

impl SubjectIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a live subject.
    pub fn insert_subject(&mut self, subject: impl Into<String>) {
        self.subjects.insert(subject.into());
    }

    /// Set the record names of `subject`'s latest schema (adds the subject too).
    pub fn insert_record_names(
        &mut self,
        subject: impl Into<String>,
        names: impl IntoIterator<Item = String>,
    ) {
        let subject = subject.into();
        self.subjects.insert(subject.clone());
        self.record_names
            .insert(subject, names.into_iter().collect());
    }

    pub fn contains(&self, subject: &str) -> bool {
        self.subjects.contains(subject)
    }

    pub fn len(&self) -> usize {
        self.subjects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty()
    }

    /// The record names known for `subject` (empty when none were read).
    pub fn record_names(&self, subject: &str) -> impl Iterator<Item = &str> {
        self.record_names
            .get(subject)
            .into_iter()
            .flat_map(|s| s.iter().map(String::as_str))
    }
}

/// The subjects bound to one topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// `<topic>-key` (TopicNameStrategy) when it exists.
    pub key_subject: Option<String>,
    /// `<topic>-value` (TopicNameStrategy) when it exists.
    pub value_subject: Option<String>,
    /// TopicRecordNameStrategy and RecordNameStrategy subjects, sorted. The
    /// subject name does not say whether they serve keys or values.
    pub others: Vec<String>,
}

impl Binding {
    pub fn is_empty(&self) -> bool {
        self.key_subject.is_none() && self.value_subject.is_none() && self.others.is_empty()
    }
}

/// The subjects of `topic`, by exact names only, never by prefix or substring:
/// - TopicNameStrategy: `<topic>-key` and `<topic>-value`.
/// - TopicRecordNameStrategy (`topic_record_name_strategy`): `<topic>-<name>`
///   where `<name>` is exactly one of the record names of that subject's
///   latest schema.
/// - RecordNameStrategy (`record_name_strategy`): subject `<name>` when
///   `record_name_topics` lists `topic` for `<name>`; the registry does not
///   say which topic carries which record, so krawl does not guess.
pub fn bind(index: &SubjectIndex, topic: &str, cfg: &SchemaRegistryConfig) -> Binding {
    let key = format!("{topic}-key");
    let value = format!("{topic}-value");
    let mut b = Binding {
        key_subject: index.contains(&key).then_some(key.clone()),
        value_subject: index.contains(&value).then_some(value.clone()),
        others: Vec::new(),
    };
    let mut others = BTreeSet::new();
    if cfg.topic_record_name_strategy {
        let prefix = format!("{topic}-");
        for (subject, names) in index.record_names.range(prefix.clone()..) {
            let Some(suffix) = subject.strip_prefix(&prefix) else {
                break;
            };
            if subject == &key || subject == &value {
                continue;
            }
            if names.contains(suffix) {
                others.insert(subject.clone());
            }
        }
    }
    if cfg.record_name_strategy {
        for (name, topics) in &cfg.record_name_topics {
            if topics.iter().any(|t| t == topic) && index.contains(name) {
                others.insert(name.clone());
            }
        }
    }
    b.others = others.into_iter().collect();
    b
}

/// Extract the registry into `sink`. Returns `Err` only when the subjects
/// cannot be listed (or the sink fails); everything else becomes a warning.
pub async fn extract<S: RegistrySink>(
    client: &RegistryClient,
    cfg: &SchemaRegistryConfig,
    sink: &mut S,
) -> Result<RegistryOutput, RegistryExtractError<S::Error>> {
    let t0 = Instant::now();
    let requests0 = client.request_count();
    let filter = cfg.filter().map_err(RegistryError::from)?;

    let live: BTreeSet<String> = client.subjects(false).await?.into_iter().collect();
    let mut selected: Vec<(String, bool)> = Vec::new();
    if cfg.include_deleted {
        let all: BTreeSet<String> = client.subjects(true).await?.into_iter().collect();
        let all: BTreeSet<String> = all.union(&live).cloned().collect();
        for s in all {
            let deleted = !live.contains(&s);
            selected.push((s, deleted));
        }
    } else {
        selected.extend(live.iter().map(|s| (s.clone(), false)));
    }
    selected.retain(|(s, _)| filter.selects(s));

    let mut out = Emitter {
        sink,
        summary: RegistrySummary::default(),
    };

    // Global settings, read once.
    let global_compat = match client.global_compatibility().await {
        Ok(level) => level,
        Err(e) => {
            out.warn(
                "compatibility_unavailable",
                "schema_registry",
                None,
                format!("cannot read the global compatibility level: {e}"),
            )
            .await?;
            None
        }
    };
    let (global_mode, mode_api) = match client.global_mode().await {
        Ok(Some(m)) => (Some(m), true),
        Ok(None) => (None, false),
        Err(e) => {
            out.warn(
                "mode_unavailable",
                "schema_registry",
                None,
                format!("cannot read the global mode: {e}"),
            )
            .await?;
            (None, true)
        }
    };

    let ctx = Ctx {
        client,
        cfg,
        global_compat,
        global_mode,
        mode_api,
        refs: Mutex::new(HashMap::new()),
        cached_bytes: AtomicUsize::new(0),
    };
    let mut index = SubjectIndex::new();
    let ctx = &ctx;
    let mut results = futures::stream::iter(selected)
        .map(|(name, deleted)| async move { ctx.subject(name, deleted).await })
        .buffered(cfg.concurrency.max(1));
    while let Some(done) = results.next().await {
        if !done.deleted {
            match done.record_names {
                Some(names) => index.insert_record_names(done.name, names),
                None => index.insert_subject(done.name),
            }
        }
        for r in done.records {
            out.emit(r).await?;
        }
    }
    drop(results);

    let mut summary = out.summary;
    summary.requests = client.request_count().saturating_sub(requests0);
    summary.millis = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(RegistryOutput { summary, index })
}

struct Emitter<'a, S: RegistrySink> {
    sink: &'a mut S,
    summary: RegistrySummary,
}

impl<S: RegistrySink> Emitter<'_, S> {
    async fn emit(&mut self, r: Record) -> Result<(), RegistryExtractError<S::Error>> {
        match &r {
            Record::Subject(_) => self.summary.subjects += 1,
            Record::SchemaVersion(_) => self.summary.schema_versions += 1,
            Record::Warning(w) => *self.summary.warnings.entry(w.code.clone()).or_default() += 1,
            _ => {}
        }
        self.sink.emit(r).await.map_err(RegistryExtractError::Sink)
    }

    async fn warn(
        &mut self,
        code: &str,
        scope: &str,
        subject: Option<String>,
        message: String,
    ) -> Result<(), RegistryExtractError<S::Error>> {
        self.emit(warning(code, scope, subject, message)).await
    }
}

fn warning(code: &str, scope: &str, subject: Option<String>, message: String) -> Record {
    Record::Warning(WarningRecord {
        code: code.to_string(),
        scope: scope.to_string(),
        subject,
        message,
    })
}

/// A fetched reference, shared by every schema of the run that uses it.
type RefCell = Arc<tokio::sync::OnceCell<Result<Arc<SchemaVersion>, ReferenceError>>>;

/// Most bytes of referenced schemas kept for reuse in one run; past it,
/// references are fetched each time they are used.
const REFERENCE_CACHE_BYTES: usize = 64 * 1024 * 1024;

struct Ctx<'a> {
    client: &'a RegistryClient,
    cfg: &'a SchemaRegistryConfig,
    global_compat: Option<String>,
    global_mode: Option<String>,
    /// False when `GET /mode` answered 404: no per-subject mode calls then.
    mode_api: bool,
    refs: Mutex<HashMap<Key, RefCell>>,
    /// Schema bytes held by `refs`.
    cached_bytes: AtomicUsize,
}

/// One subject's records, built concurrently and emitted in subject order.
struct SubjectDone {
    name: String,
    deleted: bool,
    records: Vec<Record>,
    /// Record names of the latest schema, when a record-name strategy is on.
    record_names: Option<Vec<String>>,
}

impl Ctx<'_> {
    async fn subject(&self, name: String, deleted: bool) -> SubjectDone {
        let mut done = SubjectDone {
            name,
            deleted,
            records: Vec::new(),
            record_names: None,
        };
        if let Err(e) = self.subject_inner(&mut done).await {
            done.records.push(warning(
                "subject_failed",
                "subject",
                Some(done.name.clone()),
                format!("subject `{}` skipped: {e}", done.name),
            ));
        }
        done
    }

    async fn subject_inner(&self, done: &mut SubjectDone) -> Result<(), RegistryError> {
        let c = self.client;
        let name = done.name.clone();
        let live: Vec<i32> = if done.deleted {
            Vec::new()
        } else {
            c.versions(&name, false).await?
        };
        let mut all: Vec<i32> = if self.cfg.include_deleted {
            c.versions(&name, true).await?
        } else {
            live.clone()
        };
        all.extend(live.iter().copied());
        all.sort_unstable();
        all.dedup();
        let latest_n = if done.deleted {
            all.last().copied()
        } else {
            live.iter().max().copied()
        };
        let Some(latest_n) = latest_n else {
            return Err(RegistryError::NotFound {
                what: format!("a version of subject `{name}`"),
                detail: String::new(),
            });
        };
        let latest = c.version(&name, latest_n, done.deleted).await?;

        let (compatibility, compatibility_source) = match c.subject_compatibility(&name).await {
            Ok(Some(level)) => (Some(level), "subject"),
            Ok(None) => (self.global_compat.clone(), "global"),
            Err(e) => {
                done.records.push(warning(
                    "compatibility_unavailable",
                    "subject",
                    Some(name.clone()),
                    format!("cannot read the compatibility of subject `{name}`: {e}"),
                ));
                (None, "global")
            }
        };
        let mode = if self.mode_api {
            match c.subject_mode(&name).await {
                Ok(Some(m)) => Some(m),
                Ok(None) => self.global_mode.clone(),
                Err(e) => {
                    done.records.push(warning(
                        "mode_unavailable",
                        "subject",
                        Some(name.clone()),
                        format!("cannot read the mode of subject `{name}`: {e}"),
                    ));
                    None
                }
            }
        } else {
            None
        };

        let (base_name, role) = split_role(&name);
        let subject_record = Record::Subject(SubjectRecord {
            name: name.clone(),
            base_name,
            role,
            schema_type: latest.schema_type.clone(),
            latest_version: latest.version,
            latest_schema_id: latest.id,
            versions: all.clone(),
            compatibility,
            compatibility_source: compatibility_source.to_string(),
            mode,
            deleted: done.deleted,
        });
        let mut records = vec![subject_record];
        let mut warnings = std::mem::take(&mut done.records);

        if !done.deleted && (self.cfg.record_name_strategy || self.cfg.topic_record_name_strategy) {
            match schema_type(&latest.schema_type)
                .ok_or_else(|| {
                    (
                        false,
                        format!("unsupported schema type `{}`", latest.schema_type),
                    )
                })
                .and_then(|t| {
                    fields::record_names(t, &latest.schema).map_err(|e| (e.is_limit(), e.to_string()))
                }) {
                Ok(names) => done.record_names = Some(names),
                Err((limit, e)) => warnings.push(warning(
                    if limit {
                        "schema_limit_exceeded"
                    } else {
                        "schema_parse_failed"
                    },
                    "schema_version",
                    Some(name.clone()),
                    format!(
                        "record names of subject `{name}` version {latest_n} not read ({e}); it binds to topics by TopicNameStrategy only"
                    ),
                )),
            }
        }

        let wanted: Vec<i32> = match self.cfg.versions {
            VersionsMode::Latest => vec![latest_n],
            VersionsMode::All => all,
        };
        let mut latest = Some(latest);
        for v in wanted {
            let version_deleted = !live.contains(&v);
            let sv = if v == latest_n {
                match latest.take() {
                    Some(sv) => sv,
                    None => continue,
                }
            } else {
                match c.version(&name, v, version_deleted).await {
                    Ok(sv) => sv,
                    Err(e) => {
                        warnings.push(warning(
                            "schema_version_failed",
                            "schema_version",
                            Some(name.clone()),
                            format!("subject `{name}` version {v} skipped: {e}"),
                        ));
                        continue;
                    }
                }
            };
            let fields = self.fields_of(&name, &sv, &mut warnings).await;
            // Refused by the guard (with a warning): not carried either.
            let schema = if sv.schema.len() > MAX_SCHEMA_BYTES {
                String::new()
            } else {
                sv.schema
            };
            records.push(Record::SchemaVersion(SchemaVersionRecord {
                subject: name.clone(),
                version: sv.version,
                id: sv.id,
                schema_type: sv.schema_type,
                schema,
                references: sv.references,
                fields,
                deleted: version_deleted,
            }));
        }
        records.extend(warnings);
        done.records = records;
        Ok(())
    }

    /// Parsed fields of one version; a warning and no fields when the
    /// schema or its references pass a bound, the references cannot be
    /// fetched, or the schema does not parse.
    /// `subject` is the name asked for (the answer's own `subject` is the
    /// registry's say).
    async fn fields_of(
        &self,
        subject: &str,
        sv: &SchemaVersion,
        warnings: &mut Vec<Record>,
    ) -> Vec<SchemaField> {
        let at = format!("subject `{subject}` version {}", sv.version);
        let mut warn = |code: &str, message: String| {
            warnings.push(warning(
                code,
                "schema_version",
                Some(subject.to_string()),
                message,
            ));
        };
        let Some(ty) = schema_type(&sv.schema_type) else {
            warn(
                "schema_parse_failed",
                format!(
                    "{at}: schema type `{}` is not supported (AVRO, JSON, PROTOBUF); no fields",
                    sv.schema_type
                ),
            );
            return Vec::new();
        };
        // Before fetching what it references: a refused schema needs none.
        if let Err(e) = guard::check(ty, &sv.schema) {
            let left_out = if sv.schema.len() > MAX_SCHEMA_BYTES {
                ", and the record leaves the schema text out"
            } else {
                ""
            };
            warn(
                "schema_limit_exceeded",
                format!("{at}: {e}; not parsed, no fields{left_out}"),
            );
            return Vec::new();
        }
        let referenced = match self.references(ty, sv).await {
            Ok(r) => r,
            Err(e) => {
                let code = if e.is_limit() {
                    "schema_limit_exceeded"
                } else {
                    "schema_reference_failed"
                };
                warn(code, format!("{at}: {e}; no fields"));
                return Vec::new();
            }
        };
        // On the blocking pool: protox can spend seconds on a hostile schema of
        // MAX_SCHEMA_BYTES (many aggregate options cost it quadratic time), which must
        // not hold up the async workers the agent's other jobs and heartbeats run on.
        let schema = sv.schema.clone();
        let parsed =
            tokio::task::spawn_blocking(move || fields::parse_fields(ty, &schema, &referenced))
                .await;
        match parsed {
            Ok(Ok(f)) => f,
            Ok(Err(e)) if e.is_limit() => {
                warn("schema_limit_exceeded", format!("{at}: {e}; no fields"));
                Vec::new()
            }
            Ok(Err(e)) => {
                warn(
                    "schema_parse_failed",
                    format!("{at}: the schema does not parse ({e}); no fields"),
                );
                Vec::new()
            }
            Err(e) => {
                let why = if e.is_panic() {
                    "panicked"
                } else {
                    "was cancelled"
                };
                warn(
                    "schema_parse_failed",
                    format!("{at}: the schema parser {why}; no fields"),
                );
                Vec::new()
            }
        }
    }

    /// The transitive references of `sv` ([`ReferenceWalk`]: an explicit
    /// work list, bounded); each (subject, version) fetched once per run
    /// while the cache has room.
    async fn references(
        &self,
        ty: fields::SchemaType,
        sv: &SchemaVersion,
    ) -> Result<Vec<fields::Referenced>, ReferenceError> {
        if sv.references.is_empty() {
            return Ok(Vec::new());
        }
        let mut walk = ReferenceWalk::new(ty, &sv.references)?;
        while let Some(key) = walk.next_fetch() {
            let got = self.fetch_ref(ty, &key).await?;
            walk.add(key, got)?;
        }
        walk.finish()
    }

    async fn fetch_ref(
        &self,
        ty: fields::SchemaType,
        key: &Key,
    ) -> Result<Arc<SchemaVersion>, ReferenceError> {
        let cell = {
            let mut refs = self.refs.lock().unwrap_or_else(PoisonError::into_inner);
            match refs.get(key) {
                Some(cell) => Some(cell.clone()),
                None if self.cached_bytes.load(Ordering::Relaxed) < REFERENCE_CACHE_BYTES => {
                    Some(refs.entry(key.clone()).or_default().clone())
                }
                None => None,
            }
        };
        let fetch = || async {
            let (subject, version) = (&key.0, key.1);
            let sv = self
                .client
                .version(subject, version, self.cfg.include_deleted)
                .await
                .map_err(|e| {
                    ReferenceError::Fetch(format!(
                        "reference to subject `{subject}` version {version} not fetched: {e}"
                    ))
                })?;
            // Not kept (nor cached) when it is over the bound.
            references::check_size(ty, key, &sv.schema)?;
            Ok(Arc::new(sv))
        };
        match cell {
            Some(cell) => {
                let got = cell
                    .get_or_init(|| async {
                        let got = fetch().await;
                        if let Ok(sv) = &got {
                            self.cached_bytes
                                .fetch_add(sv.schema.len(), Ordering::Relaxed);
                        }
                        got
                    })
                    .await;
                got.clone()
            }
            None => fetch().await,
        }
    }
}

fn schema_type(s: &str) -> Option<fields::SchemaType> {
    fields::SchemaType::from_registry(Some(s)).ok()
}

/// `orders-value` → (`orders`, `value`); other names are their own base.
fn split_role(name: &str) -> (String, Option<String>) {
    for role in ["key", "value"] {
        if let Some(base) = name.strip_suffix(&format!("-{role}")) {
            if !base.is_empty() {
                return (base.to_string(), Some(role.to_string()));
            }
        }
    }
    (name.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> SubjectIndex {
        let mut ix = SubjectIndex::new();
        for s in [
            "orders-key",
            "orders-value",
            "orders-values",
            "orders2-value",
            "xorders-value",
            "orders-key-value",
            "Orders-value",
            "com.acme.Order",
            "com.acme.Other",
        ] {
            ix.insert_subject(s);
        }
        ix.insert_record_names(
            "orders-com.acme.Shipped",
            [
                "com.acme.Shipped".to_string(),
                "com.acme.Address".to_string(),
            ],
        );
        // The suffix is not the schema's record name.
        ix.insert_record_names("orders-com.acme.Cancelled", ["com.acme.Order".to_string()]);
        // Another topic's subject that starts with `orders-`.
        ix.insert_record_names("orders-eu-com.acme.X", ["com.acme.X".to_string()]);
        ix
    }

    #[test]
    fn topic_name_strategy_is_exact() {
        let cfg = SchemaRegistryConfig::new("http://sr");
        let ix = index();
        let b = bind(&ix, "orders", &cfg);
        assert_eq!(b.key_subject.as_deref(), Some("orders-key"));
        assert_eq!(b.value_subject.as_deref(), Some("orders-value"));
        assert!(b.others.is_empty(), "{b:?}");
        // Near misses bind nothing to their look-alike topics.
        for t in [
            "order",
            "Orders-",
            "orders-",
            "ord",
            "rders",
            "orders-key",
            "orders-eu",
        ] {
            let b = bind(&ix, t, &cfg);
            assert!(b.value_subject.is_none() || t == "orders-key", "{t}: {b:?}");
        }
        // `orders-key-value` belongs to the topic `orders-key`, not `orders`.
        assert_eq!(
            bind(&ix, "orders-key", &cfg).value_subject.as_deref(),
            Some("orders-key-value")
        );
        assert_eq!(
            bind(&ix, "Orders", &cfg).value_subject.as_deref(),
            Some("Orders-value")
        );
        assert!(bind(&ix, "nothing", &cfg).is_empty());
    }

    #[test]
    fn record_name_strategies_need_exact_names() {
        let mut cfg = SchemaRegistryConfig::new("http://sr");
        let ix = index();
        assert!(bind(&ix, "orders", &cfg).others.is_empty());
        cfg.topic_record_name_strategy = true;
        assert_eq!(
            bind(&ix, "orders", &cfg).others,
            vec!["orders-com.acme.Shipped".to_string()]
        );
        assert_eq!(
            bind(&ix, "orders-eu", &cfg).others,
            vec!["orders-eu-com.acme.X".to_string()]
        );
        cfg.record_name_strategy = true;
        cfg.record_name_topics.insert(
            "com.acme.Order".into(),
            vec!["orders".into(), "orders-archive".into()],
        );
        cfg.record_name_topics
            .insert("com.acme.Missing".into(), vec!["orders".into()]);
        assert_eq!(
            bind(&ix, "orders", &cfg).others,
            vec![
                "com.acme.Order".to_string(),
                "orders-com.acme.Shipped".to_string()
            ]
        );
        assert_eq!(
            bind(&ix, "orders-archive", &cfg).others,
            vec!["com.acme.Order".to_string()]
        );
        // Never by substring: `com.acme.Other` is listed for no topic.
        assert!(bind(&ix, "com.acme.Other", &cfg).others.is_empty());
    }

    #[test]
    fn roles() {
        assert_eq!(
            split_role("orders-value"),
            ("orders".into(), Some("value".into()))
        );
        assert_eq!(
            split_role("orders-key"),
            ("orders".into(), Some("key".into()))
        );
        assert_eq!(
            split_role("com.acme.Order"),
            ("com.acme.Order".into(), None)
        );
        assert_eq!(split_role("-value"), ("-value".into(), None));
    }
}
