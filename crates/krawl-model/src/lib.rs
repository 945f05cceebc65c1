//! The metadata records krawl emits, shared by the extraction engine, the CLI
//! and the control-plane protocol.
//!
//! Every record is one JSON object on its own line (NDJSON) with two envelope
//! fields: `kind` (which record this is) and `schema_version`
//! ([`SCHEMA_VERSION`]). The JSON Schema for the whole stream is generated from
//! these types ([`json_schema`]) and committed as `schema/records.schema.json`;
//! a test keeps the two in sync.
//!
//! Invariants:
//! - A record never carries a secret: sensitive config values are emitted as
//!   `null` with `sensitive: true`.
//! - Fields are only ever added within a schema version; renaming or removing
//!   one bumps [`SCHEMA_VERSION`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the record format. Bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// One line of the output stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope {
    /// Version of the record format ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    #[serde(flatten)]
    pub record: Record,
}

impl Envelope {
    pub fn new(record: Record) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            record,
        }
    }
}

/// The record itself, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Cluster(ClusterRecord),
    Topic(TopicRecord),
    ConsumerGroup(ConsumerGroupRecord),
    Subject(SubjectRecord),
    SchemaVersion(SchemaVersionRecord),
    Warning(WarningRecord),
    Summary(SummaryRecord),
    ConnectionTest(ConnectionTestRecord),
    Permission(PermissionRecord),
    TopicListing(TopicListingRecord),
}

impl Record {
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Cluster(_) => "cluster",
            Record::Topic(_) => "topic",
            Record::ConsumerGroup(_) => "consumer_group",
            Record::Subject(_) => "subject",
            Record::SchemaVersion(_) => "schema_version",
            Record::Warning(_) => "warning",
            Record::Summary(_) => "summary",
            Record::ConnectionTest(_) => "connection_test",
            Record::Permission(_) => "permission",
            Record::TopicListing(_) => "topic_listing",
        }
    }
}

/// A broker as the cluster advertises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Broker {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// A Kafka API and the version range a broker supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApiVersionRange {
    pub api_key: i16,
    pub name: String,
    pub min_version: i16,
    pub max_version: i16,
}

/// The cluster as a whole. Counts cover every topic in the cluster, before
/// filters; the summary record counts what was extracted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterRecord {
    pub cluster_id: Option<String>,
    pub controller_id: Option<i32>,
    pub brokers: Vec<Broker>,
    pub broker_count: usize,
    pub topic_count: usize,
    pub partition_count: usize,
    /// Security protocol of the connection: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub security_protocol: String,
    /// SASL mechanism in use, when the protocol is SASL_*.
    pub sasl_mechanism: Option<String>,
    /// APIs the brokers krawl talked to support (the narrowest range across them).
    pub api_versions: Vec<ApiVersionRange>,
}

/// Where a config value comes from (Kafka's DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfigSource {
    /// Set on the topic itself.
    Topic,
    DynamicBroker,
    DynamicDefaultBroker,
    StaticBroker,
    Default,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TopicConfig {
    pub name: String,
    /// `null` when the value is sensitive (never emitted) or unset.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PartitionRecord {
    pub partition: i32,
    /// Leader broker id; `null` when the partition has no leader.
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: bool,
    pub under_replicated: bool,
    /// `null` when ListOffsets failed for this partition (see the warnings).
    pub earliest_offset: Option<i64>,
    pub latest_offset: Option<i64>,
    /// Bytes on disk summed over the replicas (DescribeLogDirs); `null` when unknown.
    pub size_bytes: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TopicRecord {
    pub name: String,
    pub internal: bool,
    pub partition_count: usize,
    pub replication_factor: usize,
    /// Every config the broker reports for the topic, sorted by name.
    /// Empty when DescribeConfigs failed for it (see the warnings).
    pub configs: Vec<TopicConfig>,
    pub partitions: Vec<PartitionRecord>,
    /// Sum over partitions of latest − earliest offset; `null` if any is unknown.
    pub record_count: Option<i64>,
    /// Bytes on disk, all partitions and replicas (DescribeLogDirs); `null`
    /// when any partition's size is unknown (see the warnings).
    pub size_bytes: Option<i64>,
    /// Number of consumer groups with committed offsets on or members assigned to this topic.
    pub consumer_group_count: usize,
    /// Schema Registry subject of the record keys (TopicNameStrategy
    /// `<topic>-key`, or TopicRecordNameStrategy when enabled); `null` when none.
    #[serde(default)]
    pub key_subject: Option<String>,
    /// Schema Registry subject of the record values; `null` when none.
    #[serde(default)]
    pub value_subject: Option<String>,
    /// Further subjects bound by RecordNameStrategy / TopicRecordNameStrategy.
    #[serde(default)]
    pub other_subjects: Vec<String>,
    /// Whether any subject is bound to this topic.
    #[serde(default)]
    pub schema_managed: bool,
}

/// A Schema Registry subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubjectRecord {
    pub name: String,
    /// The name without a `-key` / `-value` suffix.
    pub base_name: String,
    /// `key` or `value` when the name ends with `-key` / `-value`.
    pub role: Option<String>,
    /// AVRO, JSON or PROTOBUF.
    pub schema_type: String,
    pub latest_version: i32,
    pub latest_schema_id: i32,
    /// All versions (live ones; soft-deleted ones too when asked for).
    pub versions: Vec<i32>,
    /// Compatibility level in force (BACKWARD, FULL_TRANSITIVE, NONE, ...).
    pub compatibility: Option<String>,
    /// `subject` when the subject sets its own level, else `global`.
    pub compatibility_source: String,
    /// READWRITE, READONLY, IMPORT, ...; `null` when the registry has no mode API.
    pub mode: Option<String>,
    /// Soft-deleted (only listed when soft-deleted subjects are asked for).
    pub deleted: bool,
}

/// A reference from one schema to another subject's version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SchemaReference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// One field of a parsed schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SchemaField {
    /// Dotted path from the root (`customer.address.city`).
    pub path: String,
    pub name: String,
    /// The field's type as the schema language names it (`string`, `long`,
    /// `com.acme.Address`, `array<string>`, `int64`, ...).
    #[serde(rename = "type")]
    pub type_name: String,
    pub doc: Option<String>,
    /// Avro union with null, JSON Schema property not in `required`, Protobuf
    /// `optional` / message field.
    pub nullable: bool,
}

/// One version of a subject's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SchemaVersionRecord {
    pub subject: String,
    pub version: i32,
    /// Global schema id.
    pub id: i32,
    pub schema_type: String,
    /// The schema text as registered.
    pub schema: String,
    pub references: Vec<SchemaReference>,
    /// Parsed fields, nested ones with their path; empty when parsing failed (see the warnings).
    pub fields: Vec<SchemaField>,
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    pub assignments: Vec<TopicPartition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    /// Latest offset of the partition; `null` when unknown.
    pub latest_offset: Option<i64>,
    /// latest − committed, never negative; `null` when the latest offset is unknown.
    pub lag: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConsumerGroupRecord {
    pub group_id: String,
    /// Stable, Empty, PreparingRebalance, CompletingRebalance, Dead or Unknown.
    pub state: String,
    /// "consumer" for Kafka consumer groups; empty for simple (assign-only) groups.
    pub protocol_type: String,
    pub partition_assignor: Option<String>,
    pub simple: bool,
    pub coordinator: Option<Broker>,
    pub members: Vec<GroupMember>,
    pub offsets: Vec<CommittedOffset>,
    pub total_lag: i64,
    /// Topics the group commits offsets on or is assigned, sorted.
    pub topics: Vec<String>,
}

/// Something that could not be extracted. The extraction goes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WarningRecord {
    /// Stable machine-readable code, e.g. `describe_configs_failed`.
    pub code: String,
    /// What the warning is about: cluster, topic, partition, consumer_group.
    pub scope: String,
    /// The topic, group or partition name, when there is one.
    pub subject: Option<String>,
    /// Human-readable cause and what to do.
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Counts {
    pub brokers: usize,
    pub topics: usize,
    pub partitions: usize,
    pub consumer_groups: usize,
    #[serde(default)]
    pub subjects: usize,
    #[serde(default)]
    pub schema_versions: usize,
    pub warnings: usize,
    /// Records in the stream, this summary included.
    pub records: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Phase {
    pub name: String,
    pub millis: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryRecord {
    /// RFC 3339 UTC timestamps.
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub counts: Counts,
    pub phases: Vec<Phase>,
    /// Kafka admin calls made, by API name (e.g. `DescribeConfigs`), and how many.
    pub api_calls: BTreeMap<String, u64>,
    /// Warning counts by code.
    pub warnings: BTreeMap<String, u64>,
}

/// The verdict of a `kafka.test_connection` job: one record per job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectionTestRecord {
    /// `true` when the cluster was reached, authentication passed and metadata came back.
    pub ok: bool,
    /// One line for a human: what worked, or what failed and what to do.
    pub verdict: String,
    pub bootstrap_servers: String,
    pub security_protocol: String,
    pub sasl_mechanism: Option<String>,
    /// A TCP (and TLS, where configured) connection to a bootstrap server succeeded.
    pub reachable: bool,
    /// The cluster accepted the credentials (a metadata request succeeded).
    pub authenticated: bool,
    /// Stable error class when `ok` is false (dns, connection_refused, tls, authentication,
    /// authorization, timeout, secret, config, other).
    pub error_class: Option<String>,
    pub cluster_id: Option<String>,
    pub brokers: Vec<Broker>,
    pub api_versions: Vec<ApiVersionRange>,
    pub duration_ms: u64,
}

/// Whether the principal holds one permission krawl needs (`kafka.preflight`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PermissionRecord {
    /// Stable name: describe_cluster, describe_topics, describe_configs, list_offsets,
    /// describe_groups, describe_group_offsets, describe_log_dirs, read_schema_registry.
    pub permission: String,
    /// `true` granted, `false` denied, `null` when it could not be checked (see `detail`).
    pub granted: Option<bool>,
    /// What was tried and what came back.
    pub detail: String,
    /// For a denied permission: the ACL (or registry role) to add, ready to paste.
    pub remedy: Option<String>,
}

/// A topic name and its partition count (`kafka.list_topics`), for filter pickers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TopicListingRecord {
    pub name: String,
    pub partitions: usize,
    pub internal: bool,
}

/// The JSON Schema of one output line.
pub fn json_schema() -> schemars::schema::RootSchema {
    schemars::schema_for!(Envelope)
}

/// The JSON Schema as committed in `schema/records.schema.json`.
pub fn json_schema_string() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed_schema() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schema/records.schema.json"
        );
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The committed schema is what the types generate. Regenerate with
    /// `KRAWL_BLESS=1 cargo test -p krawl-model`.
    #[test]
    fn committed_schema_is_current() {
        let generated = json_schema_string();
        if std::env::var_os("KRAWL_BLESS").is_some() {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../schema/records.schema.json"
            );
            std::fs::write(path, &generated).expect("write schema");
        }
        assert_eq!(
            committed_schema(),
            generated,
            "schema/records.schema.json is stale: run KRAWL_BLESS=1 cargo test -p krawl-model"
        );
    }

    #[test]
    fn records_round_trip_and_validate() {
        let schema: serde_json::Value =
            serde_json::from_str(&json_schema_string()).expect("schema is JSON");
        let validator = jsonschema::JSONSchema::compile(&schema).expect("schema compiles");
        let rec = Envelope::new(Record::Warning(WarningRecord {
            code: "describe_configs_failed".into(),
            scope: "topic".into(),
            subject: Some("orders".into()),
            message: "not authorized".into(),
        }));
        let json = serde_json::to_value(&rec).expect("serialize");
        assert_eq!(json["kind"], "warning");
        assert_eq!(json["schema_version"], SCHEMA_VERSION);
        assert!(validator.is_valid(&json));
        let back: Envelope = serde_json::from_value(json.clone()).expect("deserialize");
        assert_eq!(back, rec);

        // A record of the wrong shape is rejected by the schema.
        let mut bad = json;
        bad["kind"] = "topic".into();
        assert!(!validator.is_valid(&bad));
    }
}
