//! What each job kind does. INTERFACE (shared by the agent loop and the executors; change it only
//! together with `agent.rs`):
//!
//! ```ignore
//! let deps = JobDeps::new(resolver, policy.compile()?, ConnectionPool::new(idle_ttl));
//! let outcome: Result<(), JobFailure> = jobs::execute(&deps, &ctx, &mut sink).await;
//! ```
//!
//! - `execute` parses the spec for `ctx.kind`, checks the policy before contacting anything,
//!   resolves the job's secrets (never cached past the job), takes a connection from the pool,
//!   runs the kind and emits records into `sink`, returning when done, failed or cancelled.
//! - An unknown kind or malformed spec is a `JobFailure` with class `invalid_job`; it never panics.
//!
//! Order of work, for every kind: kind known? (`invalid_job`) → kind allowed?
//! ([`policy::CompiledPolicy::check_kind`], `policy`) → spec parsed (`invalid_job`: not an object, a
//! `secrets` section, a field serde refuses, named with its section) → settings valid (`config`,
//! naming the key, as `krawl extract` does) → destinations and secret references allowed
//! ([`policy::CompiledPolicy::check`], `policy`; floors applied) → only then secrets are resolved (per job, through
//! `deps.resolver.job(job_id)`) and the cluster is contacted.
//!
//! The kinds:
//! - `kafka.extract`: what `krawl extract` does (cluster, topics, groups, Schema Registry when
//!   `schema_registry` is set), streamed into the sink, the summary record last.
//! - `kafka.test_connection`: one `connection_test` record. A test that fails to connect is a
//!   SUCCESSFUL job whose record says `ok: false` with the error class and the hint: the verdict
//!   is the result, and a retry by the control plane would not change it. Only a refused policy,
//!   an invalid spec, a cancellation or a sink failure fail the job.
//! - `kafka.preflight`: one `permission` record per permission ([`krawl_kafka::probe`]), plus
//!   `read_schema_registry` when `schema_registry` is set. Failing to connect fails the job (there
//!   is nothing to check permissions on): run `kafka.test_connection` for the why.
//! - `kafka.list_topics`: one `topic_listing` record per topic the `extract` filters select
//!   (internal topics only with `include_internal_topics`), sorted by name, from one Metadata
//!   call; a topic the broker answered with an error is a `warning` record.
//!
//! Cancellation: `ctx.cancel` is checked before contacting anything and raced against the whole
//! run; a cancelled job returns class `cancelled` at once (the engine's in-flight librdkafka calls
//! finish on their own within their timeout and are discarded). The caller decides whether that
//! is a control-plane cancel or a shutdown (`interrupted`).

pub mod policy;
pub mod pool;

use std::sync::Arc;
use std::time::Instant;

use krawl_kafka::config::{ExtractOptions, KafkaConfig};
use krawl_kafka::extract::RegistrySetup;
use krawl_kafka::{probe, ExtractError, Extractor, FailureClass, RecordSink};
use krawl_model::{Record, WarningRecord};
use krawl_protocol::{JobKind, JobSpec};
use krawl_schema_registry::{RegistryClient, SchemaRegistryConfig};
use tokio_util::sync::CancellationToken;

use crate::progress::JobProgress;

/// Everything a job needs from the agent, shared by all jobs.
#[derive(Debug)]
pub struct JobDeps {
    pub resolver: krawl_secrets::Resolver,
    pub policy: policy::CompiledPolicy,
    pub pool: pool::ConnectionPool,
}

/// One running job attempt.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub job_id: String,
    pub attempt: u32,
    /// The wire kind string (`kafka.extract`, ...), possibly unknown.
    pub kind: String,
    pub spec: serde_json::Value,
    /// Cancelled on control-plane cancel or agent shutdown; the executor stops promptly.
    pub cancel: CancellationToken,
    pub progress: Arc<JobProgress>,
}

/// Why a job failed: a stable class (see `krawl_protocol::JobError`) and an actionable message
/// that never contains a secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{class}: {message}")]
pub struct JobFailure {
    pub class: String,
    pub message: String,
}

impl JobFailure {
    pub fn new(class: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            class: class.into(),
            message: message.into(),
        }
    }

    fn invalid_job(message: impl Into<String>) -> Self {
        Self::new("invalid_job", message)
    }

    fn cancelled() -> Self {
        Self::new("cancelled", "the job was cancelled before it finished")
    }
}

impl From<&ExtractError> for JobFailure {
    /// The engine's error class as the protocol's class string, with the actionable message.
    fn from(e: &ExtractError) -> Self {
        let class = match e {
            ExtractError::Cancelled => "cancelled",
            e => e.class().as_str(),
        };
        Self::new(class, e.to_string())
    }
}

impl JobDeps {
    pub fn new(
        resolver: krawl_secrets::Resolver,
        policy: policy::CompiledPolicy,
        pool: pool::ConnectionPool,
    ) -> Self {
        Self {
            resolver,
            policy,
            pool,
        }
    }
}

/// The shape of a `kafka.*` job spec, for its JSON Schema: the keys of `krawl extract --config`'s
/// `[kafka]`, `[extract]` and `[schema_registry]` tables. The schema is committed as
/// `schema/job-spec.schema.json` (`job_spec_schema_is_current` keeps it in sync) and checked
/// by the control plane at submit and by the agent before parsing ([`krawl_protocol::spec`]).
#[derive(Debug, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
pub struct JobSpecSchema {
    kafka: KafkaConfig,
    extract: Option<ExtractOptions>,
    schema_registry: Option<SchemaRegistryConfig>,
}

impl JobSpecSchema {
    /// The JSON Schema, pretty-printed as committed.
    pub fn json() -> String {
        // An optional field is its type's schema, not `anyOf [T, null]`: validators report
        // inside an `anyOf` only that none matched. The checker drops null values first
        // (serde reads null as absent for every optional field).
        let settings = schemars::gen::SchemaSettings::draft07().with(|s| {
            s.option_add_null_type = false;
            s.option_nullable = false;
        });
        let schema = settings
            .into_generator()
            .into_root_schema_for::<JobSpecSchema>();
        let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// A parsed, validated job spec.
#[derive(Debug, Clone)]
pub struct ParsedSpec {
    pub kafka: KafkaConfig,
    pub extract: ExtractOptions,
    pub schema_registry: Option<SchemaRegistryConfig>,
}

/// Parse and validate a `kafka.*` job spec ([`JobSpec`]: `kafka`, optional `extract` and
/// `schema_registry`, with the keys of `krawl extract --config`). Contacts nothing.
pub fn parse_spec(spec: &serde_json::Value) -> Result<ParsedSpec, JobFailure> {
    let Some(obj) = spec.as_object() else {
        return Err(JobFailure::invalid_job(format!(
            "the job spec must be a JSON object with a `kafka` object, not {}",
            json_type(spec)
        )));
    };
    if obj.contains_key("secrets") {
        return Err(JobFailure::invalid_job(
            "the job spec has a `secrets` section: secret stores are configured on the agent ([secrets] in its config), a job names secrets by reference only; remove `secrets` from the spec",
        ));
    }
    // The structure first, with messages that name positions and never quote a value (a
    // literal credential at a wrong position must not end in the job's error).
    krawl_protocol::spec::check(spec, krawl_protocol::spec::Checker::Agent).map_err(
        |problems| JobFailure::invalid_job(format!("invalid job spec: {}", problems.join("; "))),
    )?;
    let raw: JobSpec =
        krawl_protocol::body::from_value(spec, "job spec").map_err(JobFailure::invalid_job)?;
    let kafka: KafkaConfig = section("kafka", raw.kafka)?;
    let extract: ExtractOptions = match raw.extract {
        None | Some(serde_json::Value::Null) => ExtractOptions::default(),
        Some(v) => section("extract", v)?,
    };
    let schema_registry: Option<SchemaRegistryConfig> = match raw.schema_registry {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(section("schema_registry", v)?),
    };
    let config = |e: &dyn std::fmt::Display| JobFailure::new("config", e.to_string());
    kafka.validate().map_err(|e| config(&e))?;
    extract.validate().map_err(|e| config(&e))?;
    if let Some(sr) = &schema_registry {
        sr.validate().map_err(|e| config(&e))?;
    }
    Ok(ParsedSpec {
        kafka,
        extract,
        schema_registry,
    })
}

fn section<T: serde::de::DeserializeOwned>(
    name: &str,
    v: serde_json::Value,
) -> Result<T, JobFailure> {
    if !v.is_object() {
        return Err(JobFailure::invalid_job(format!(
            "invalid job spec: `{name}` must be an object, not {}",
            json_type(&v)
        )));
    }
    krawl_protocol::body::from_value(&v, &format!("job spec `{name}`"))
        .map_err(JobFailure::invalid_job)
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Longest control-plane string (a job kind) quoted whole in a message or a log field.
const MAX_SHOWN: usize = 64;

/// `s` for a message or a log field: whole up to [`MAX_SHOWN`] characters, else its start and
/// its length. A job kind comes from the control plane, which must not be able to fill the
/// agent's log (the kind is on every line of the job) or its completions with megabytes.
pub fn abbreviated(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(MAX_SHOWN) {
        None => std::borrow::Cow::Borrowed(s),
        Some((end, _)) => format!("{}… ({} bytes)", &s[..end], s.len()).into(),
    }
}

/// Run one job: see the module documentation.
pub async fn execute<S: RecordSink>(
    deps: &JobDeps,
    ctx: &JobContext,
    sink: &mut S,
) -> Result<(), JobFailure> {
    let kind: JobKind = ctx.kind.parse().map_err(|_| {
        JobFailure::invalid_job(format!(
            "unknown job kind {:?}; this agent runs: {}",
            abbreviated(&ctx.kind),
            policy::known_kinds()
        ))
    })?;
    deps.policy.check_kind(kind)?;
    ctx.progress.set_phase("validate");
    let mut spec = parse_spec(&ctx.spec)?;
    deps.policy.check(&mut spec)?;
    let spec = spec;
    if ctx.cancel.is_cancelled() {
        return Err(JobFailure::cancelled());
    }
    let run = async {
        match kind {
            JobKind::Extract => extract(deps, ctx, &spec, sink).await,
            JobKind::TestConnection => test_connection(deps, ctx, &spec, sink).await,
            JobKind::Preflight => preflight(deps, ctx, &spec, sink).await,
            JobKind::ListTopics => list_topics(deps, ctx, &spec, sink).await,
        }
    };
    tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => Err(JobFailure::cancelled()),
        r = run => r,
    }
}

/// Connection-level classes: the pooled client is dropped so the next job starts afresh.
fn lost_cluster(e: &ExtractError) -> bool {
    matches!(e, ExtractError::Connect { .. })
        || matches!(
            e.class(),
            FailureClass::Dns
                | FailureClass::ConnectionRefused
                | FailureClass::Tls
                | FailureClass::Authentication
                | FailureClass::Timeout
        )
}

async fn emit<S: RecordSink>(sink: &mut S, record: Record) -> Result<(), JobFailure> {
    sink.emit(record).await.map_err(|e| JobFailure::from(&e))
}

/// The registry client, or why there is none (then the run says so in a record).
async fn registry_setup(
    sr: &SchemaRegistryConfig,
    job: &krawl_secrets::JobSecrets,
) -> Result<RegistryClient, String> {
    match sr.resolve_secrets(job).await {
        Ok(secrets) => RegistryClient::new(sr, secrets).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The job's pooled connection, once the brokers its cluster advertises are known to be allowed
/// (a refused one evicts the client: nothing more is sent on it).
async fn pooled(
    deps: &JobDeps,
    spec: &ParsedSpec,
    job: &krawl_secrets::JobSecrets,
) -> Result<pool::PooledConnection, JobFailure> {
    let conn = deps
        .pool
        .get(&spec.kafka, job)
        .await
        .map_err(|e| JobFailure::from(&e))?;
    if let Err(e) = deps.policy.check_advertised(conn.advertised_brokers()) {
        conn.evict();
        return Err(e);
    }
    Ok(conn)
}

/// The job's pooled connection and, when the spec names a registry, its client (or why there is
/// none). The job's resolved secrets are dropped before this returns: the pooled client keeps its
/// own copy (see pool.rs).
async fn connect<'s>(
    deps: &JobDeps,
    ctx: &JobContext,
    spec: &'s ParsedSpec,
) -> Result<
    (
        pool::PooledConnection,
        Option<(&'s SchemaRegistryConfig, Result<RegistryClient, String>)>,
    ),
    JobFailure,
> {
    ctx.progress.set_phase("connect");
    let job = deps.resolver.job(&ctx.job_id);
    let conn = pooled(deps, spec, &job).await?;
    let registry = match &spec.schema_registry {
        Some(sr) => Some((sr, registry_setup(sr, &job).await)),
        None => None,
    };
    Ok((conn, registry))
}

async fn extract<S: RecordSink>(
    deps: &JobDeps,
    ctx: &JobContext,
    spec: &ParsedSpec,
    sink: &mut S,
) -> Result<(), JobFailure> {
    let (conn, registry) = connect(deps, ctx, spec).await?;
    let registry = registry.map(|(sr, client)| RegistrySetup {
        config: sr.clone(),
        client,
    });
    let policy = deps.policy.clone();
    let extractor = Extractor::new(&conn, spec.extract.clone(), ctx.progress.as_ref())
        .map_err(|e| JobFailure::from(&e))?
        .with_schema_registry(registry)
        .with_broker_check(Some(std::sync::Arc::new(move |h: &str, p: u16| {
            policy.broker_allowed(h, p)
        })));
    match extractor.run(sink).await {
        Ok(_summary) => Ok(()),
        Err(e) => {
            if lost_cluster(&e)
                || matches!(
                    e,
                    ExtractError::Call {
                        api: "Metadata",
                        ..
                    }
                )
            {
                conn.evict();
            }
            Err(JobFailure::from(&e))
        }
    }
}

async fn test_connection<S: RecordSink>(
    deps: &JobDeps,
    ctx: &JobContext,
    spec: &ParsedSpec,
    sink: &mut S,
) -> Result<(), JobFailure> {
    let started = Instant::now();
    ctx.progress.set_phase("connect");
    let job = deps.resolver.job(&ctx.job_id);
    let record = match deps.pool.get(&spec.kafka, &job).await {
        Ok(conn) => {
            if let Err(e) = deps.policy.check_advertised(conn.advertised_brokers()) {
                conn.evict();
                return Err(e);
            }
            drop(job);
            ctx.progress.set_phase("probe");
            let r = probe::connection_test(&conn, started).await;
            if !r.ok {
                conn.evict();
            }
            r
        }
        Err(e) => probe::connection_test_failed(&spec.kafka, &e, started),
    };
    emit(sink, Record::ConnectionTest(record)).await
}

async fn preflight<S: RecordSink>(
    deps: &JobDeps,
    ctx: &JobContext,
    spec: &ParsedSpec,
    sink: &mut S,
) -> Result<(), JobFailure> {
    let (conn, registry) = connect(deps, ctx, spec).await?;
    ctx.progress.set_phase("permissions");
    for record in probe::preflight(&conn).await {
        emit(sink, Record::Permission(record)).await?;
    }
    if let Some((sr, client)) = registry {
        if ctx.cancel.is_cancelled() {
            return Err(JobFailure::cancelled());
        }
        ctx.progress.set_phase("schema_registry");
        let record = match client {
            Ok(client) => probe::registry_permission(&client).await,
            Err(why) => probe::registry_permission_unchecked(&sr.url, &why),
        };
        emit(sink, Record::Permission(record)).await?;
    }
    Ok(())
}

async fn list_topics<S: RecordSink>(
    deps: &JobDeps,
    ctx: &JobContext,
    spec: &ParsedSpec,
    sink: &mut S,
) -> Result<(), JobFailure> {
    let filters = spec
        .extract
        .filters()
        .map_err(|e| JobFailure::new("config", e.to_string()))?;
    ctx.progress.set_phase("connect");
    let job = deps.resolver.job(&ctx.job_id);
    let conn = pooled(deps, spec, &job).await?;
    drop(job);
    ctx.progress.set_phase("metadata");
    let (topics, errors) = match probe::list_topics(&conn, &filters).await {
        Ok(v) => v,
        Err(e) => {
            conn.evict();
            return Err(JobFailure::from(&e));
        }
    };
    for (name, err) in errors {
        emit(
            sink,
            Record::Warning(WarningRecord {
                code: "topic_metadata_failed".into(),
                scope: "topic".into(),
                message: format!(
                    "Metadata returned {err} for this topic; if TopicAuthorizationFailed, grant DESCRIBE on it"
                ),
                subject: Some(name),
            }),
        )
        .await?;
    }
    for t in topics {
        emit(sink, Record::TopicListing(t)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod schema_tests {
    use super::*;

    #[test]
    fn long_kinds_are_abbreviated() {
        assert_eq!(abbreviated("kafka.extract"), "kafka.extract");
        let long = "k".repeat(1_000_000);
        let shown = abbreviated(&long);
        assert!(
            shown.len() < 100 && shown.ends_with("… (1000000 bytes)"),
            "{shown}"
        );
        // Never cut inside a character.
        assert!(abbreviated(&"é".repeat(100)).starts_with(&"é".repeat(64)));
    }

    /// `schema/job-spec.schema.json` (what the control plane checks specs with) is what the
    /// agent's config types say. `KRAWL_BLESS=1 cargo test -p krawl-agent` rewrites it.
    #[test]
    fn job_spec_schema_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schema/job-spec.schema.json"
        );
        let now = JobSpecSchema::json();
        if std::env::var_os("KRAWL_BLESS").is_some() {
            std::fs::write(path, &now).expect("write the schema");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == now,
            "schema/job-spec.schema.json is stale: run KRAWL_BLESS=1 cargo test -p krawl-agent job_spec_schema"
        );
        assert!(
            committed == krawl_protocol::spec::JOB_SPEC_SCHEMA,
            "krawl-protocol embeds an older schema/job-spec.schema.json: rebuild it"
        );
    }
}
