//! The extraction: Metadata → offsets → consumer groups → topic configs,
//! each record handed to the sink as soon as it is complete.
//!
//! Memory: the engine keeps a compact index of the selected topics (names,
//! partition leaders, replica and ISR ids in one shared vector) and, per
//! partition, two offsets and a size in [`PartitionTable`]s (32 bytes a
//! partition; no allocation per entry), and a count per topic read by a group.
//! Record bodies (configs, members, committed offsets) exist only for the
//! batches in flight and are then written to the sink. Measured in
//! docs/benchmarks.md: peak RSS must not grow with the cluster beyond this
//! index (issue 12).
//!
//! Round trips: every phase keeps several requests in flight
//! ([`OFFSET_BATCHES_IN_FLIGHT`], [`CONFIG_BATCHES_IN_FLIGHT`],
//! [`GROUP_BATCHES_IN_FLIGHT`], the DescribeLogDirs pipeline), so that on a
//! network with latency a phase costs a round trip per that many batches.
//!
//! Phases, in order:
//! 1. `metadata`: brokers, topics, partitions; the cluster record.
//! 2. `offsets`: ListOffsets earliest and latest, `list_offsets_batch`
//!    partitions per call (librdkafka splits each call by leader broker).
//! 3. `sizes`: DescribeLogDirs on every broker through [`crate::log_dirs`]
//!    (librdkafka has no such API), when the brokers offer it.
//! 4. `consumer_groups`: ListConsumerGroups, DescribeConsumerGroups in
//!    batches, committed offsets `offset_fetch_concurrency` groups at once;
//!    lag from phase 2's latest offsets; one record per group.
//! 5. `schema_registry` (when configured): subject and schema-version records
//!    through [`krawl_schema_registry`]; its subject index binds subjects to
//!    topics in the next phase.
//! 6. `topics`: DescribeConfigs, `describe_configs_batch` topics per request;
//!    one record per topic.
//!
//! A per-item failure (a topic, partition or group) becomes a warning record;
//! only losing the cluster itself fails the extraction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use futures::stream::{self, StreamExt};
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use krawl_model::{
    ApiVersionRange, Broker, ClusterRecord, CommittedOffset, ConsumerGroupRecord, Counts,
    GroupMember, PartitionRecord, Phase, Record, SummaryRecord, TopicConfig, TopicPartition,
    TopicRecord, WarningRecord,
};
use krawl_wire::{MetadataBroker, MetadataPartition, MetadataTopic, MetadataVisitor};

use crate::admin_ext::{self, AdminExtError, OffsetSpec};
use crate::api_keys::api_name;
use crate::broker_client::{BrokerClient, BrokerError, MAX_CONCURRENT_BROKERS};
use crate::config::{ExtractOptions, Filters};
use crate::connection::Connection;
use crate::error::ExtractError;
use crate::groups;
use crate::log_dirs;
use crate::metadata;
use crate::offsets;
use crate::partition_table::PartitionTable;
use krawl_schema_registry::{
    Binding, RegistryClient, RegistryExtractError, RegistrySink, SchemaRegistryConfig, SubjectIndex,
};

/// Where records go. Called from one task, in order.
pub trait RecordSink: Send {
    fn emit(&mut self, record: Record) -> impl Future<Output = Result<(), ExtractError>> + Send;
}

/// Progress callbacks for a terminal indicator or job heartbeats.
pub trait Progress: Send + Sync {
    /// A phase starts; `total` items when known.
    fn phase(&self, _name: &str, _total: Option<u64>) {}
    /// `n` more items of the current phase are done.
    fn advance(&self, _n: u64) {}
}

/// Progress that reports nothing.
#[derive(Debug, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// Counts of Kafka admin calls, by API.
#[derive(Debug, Default)]
struct ApiCalls(Mutex<BTreeMap<String, u64>>);

impl ApiCalls {
    fn add(&self, api: &str) {
        self.add_n(api, 1);
    }

    fn add_n(&self, api: &str, n: u64) {
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(api.to_string())
            .or_default() += n;
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A topic as Metadata describes it.
#[derive(Debug)]
struct TopicMeta {
    name: String,
    internal: bool,
    partitions: Vec<PartitionMeta>,
}

impl TopicMeta {
    /// Highest partition id + 1: the slots the topic takes in a [`PartitionTable`].
    fn slots(&self) -> i32 {
        self.partitions.iter().map(|p| p.id + 1).max().unwrap_or(0)
    }
}

/// A partition as Metadata describes it; its replica and ISR broker ids are a
/// range of [`ClusterMeta::nodes`] (one allocation for the cluster, not two
/// per partition).
#[derive(Debug)]
struct PartitionMeta {
    id: i32,
    leader: i32,
    /// Where the replicas start in `nodes`; the ISR follows them.
    start: u32,
    replicas: u16,
    isr: u16,
}

/// ListOffsets batches in flight (each asks earliest and latest at once).
const OFFSET_BATCHES_IN_FLIGHT: usize = 4;
/// DescribeConfigs batches in flight (answers written in order).
const CONFIG_BATCHES_IN_FLIGHT: usize = 4;
/// DescribeGroups batches (with their committed offsets) in flight.
const GROUP_BATCHES_IN_FLIGHT: usize = 4;
/// Groups per batch: described and their offsets fetched together. Bounds
/// what a batch holds (descriptions and committed offsets); librdkafka's
/// part of a batch is asked `describe_groups_batch` groups per call.
const GROUPS_PER_BATCH: usize = 500;

/// Kafka's own internal topics, plus the `__` prefix Kafka and vendors use
/// for system topics (`__cluster_metadata`, `__confluent.*`, `__amazon_msk_canary`).
pub fn is_internal_topic(name: &str) -> bool {
    name.starts_with("__")
}

/// What Metadata told: the selected topics (sorted by name: a topic's index
/// in `topics` is its index in every [`PartitionTable`] of the run), the
/// brokers, and whether they support DescribeLogDirs.
#[derive(Debug)]
struct ClusterMeta {
    topics: Vec<TopicMeta>,
    /// Replica and ISR broker ids of every partition (see [`PartitionMeta`]).
    nodes: Vec<i32>,
    brokers: Vec<BrokerAddr>,
    log_dirs: bool,
}

/// A broker Metadata named: id, host, port.
type BrokerAddr = (i32, String, u16);

impl ClusterMeta {
    /// The index of a selected topic.
    fn topic_index(&self, name: &str) -> Option<usize> {
        self.topics
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
    }

    fn replicas(&self, p: &PartitionMeta) -> &[i32] {
        let start = p.start as usize;
        &self.nodes[start..start + usize::from(p.replicas)]
    }

    fn isr(&self, p: &PartitionMeta) -> &[i32] {
        let start = p.start as usize + usize::from(p.replicas);
        &self.nodes[start..start + usize::from(p.isr)]
    }
}

/// Builds the compact index from a Metadata answer, topic by topic and
/// partition by partition, whichever client read it: krawl's own (walked by
/// `krawl-wire`, [`MetadataVisitor`]) or librdkafka's ([`Self::add_librdkafka`]).
struct IndexBuilder<'f> {
    filters: &'f Filters,
    /// Selected topics, in answer order (sorted by the caller).
    topics: Vec<TopicMeta>,
    nodes: Vec<i32>,
    /// Partitions of every listed topic, selected or not.
    partition_count: usize,
    /// Topics listed without an error.
    listed: usize,
    /// Topics listed with an error, and the error.
    topic_errors: Vec<(String, String)>,
    brokers: Vec<Broker>,
    cluster_id: Option<String>,
    controller_id: Option<i32>,
    /// Where the partitions being read go: `Some(selected)` for a listed topic.
    current: Option<bool>,
    too_many_replicas: bool,
}

impl<'f> IndexBuilder<'f> {
    fn new(filters: &'f Filters) -> Self {
        Self {
            filters,
            topics: Vec::new(),
            nodes: Vec::new(),
            partition_count: 0,
            listed: 0,
            topic_errors: Vec::new(),
            brokers: Vec::new(),
            cluster_id: None,
            controller_id: None,
            current: None,
            too_many_replicas: false,
        }
    }

    fn add_topic(&mut self, name: &str, error: Option<String>) {
        if let Some(err) = error {
            self.topic_errors.push((name.to_string(), err));
            self.current = None;
            return;
        }
        self.listed += 1;
        let internal = is_internal_topic(name);
        let selected = self.filters.topic(name, internal);
        if selected {
            self.topics.push(TopicMeta {
                name: name.to_string(),
                internal,
                partitions: Vec::new(),
            });
        }
        self.current = Some(selected);
    }

    fn add_partition(
        &mut self,
        id: i32,
        leader: i32,
        replicas: impl Iterator<Item = i32>,
        isr: impl Iterator<Item = i32>,
    ) {
        let Some(selected) = self.current else {
            return;
        };
        self.partition_count += 1;
        if !selected {
            return;
        }
        let Ok(start) = u32::try_from(self.nodes.len()) else {
            self.too_many_replicas = true;
            return;
        };
        // A broker list longer than u16::MAX is cut: no real cluster has one.
        let before = self.nodes.len();
        self.nodes.extend(replicas.take(usize::from(u16::MAX)));
        let replicas = self.nodes.len() - before;
        self.nodes.extend(isr.take(usize::from(u16::MAX)));
        let isr = self.nodes.len() - before - replicas;
        if let Some(topic) = self.topics.last_mut() {
            topic.partitions.push(PartitionMeta {
                id,
                leader,
                start,
                replicas: replicas as u16,
                isr: isr as u16,
            });
        }
    }

    fn add_librdkafka(&mut self, md: &rdkafka::metadata::Metadata) {
        for t in md.topics() {
            self.add_topic(t.name(), t.error().map(|e| format!("{e:?}")));
            for p in t.partitions() {
                self.add_partition(
                    p.id(),
                    p.leader(),
                    p.replicas().iter().copied(),
                    p.isr().iter().copied(),
                );
            }
        }
        self.brokers = librdkafka_brokers(md);
    }
}

impl MetadataVisitor for IndexBuilder<'_> {
    fn broker(&mut self, b: MetadataBroker<'_>) {
        self.brokers.push(Broker {
            id: b.node_id,
            host: b.host.to_string(),
            port: u16::try_from(b.port).unwrap_or(0),
            rack: b.rack.map(str::to_string),
        });
    }

    fn cluster(&mut self, cluster_id: Option<&str>, controller_id: i32) {
        self.cluster_id = cluster_id.map(str::to_string);
        self.controller_id = (controller_id >= 0).then_some(controller_id);
    }

    fn topic(&mut self, t: MetadataTopic<'_>) {
        let error = ResponseError::try_from_code(t.error_code).map(|e| format!("{e:?}"));
        self.add_topic(t.name, error);
    }

    fn partition(&mut self, p: MetadataPartition<'_>) {
        self.add_partition(
            p.partition_index,
            p.leader_id,
            p.replicas.iter(),
            p.isr.iter(),
        );
    }
}

/// krawl's own Kafka client for one extraction, or why it cannot be used.
type OwnClient<'c, 's> = Result<&'c BrokerClient<'s>, &'c BrokerError>;

/// What the topic records are completed with.
#[derive(Debug)]
struct Lookups<'c> {
    /// Registry subjects and the binding settings, when a registry was read.
    subjects: Option<(SubjectIndex, &'c SchemaRegistryConfig)>,
    offsets: Offsets,
    /// Bytes on disk per partition, summed over replicas.
    sizes: PartitionTable<Option<i64>>,
    /// Consumer groups reading each topic, by topic index.
    group_counts: Vec<usize>,
}

/// Earliest and latest offset of one partition, when known.
type OffsetPair = (Option<i64>, Option<i64>);

/// Earliest and latest offset of each partition of the selected topics:
/// 16 bytes a partition ([`UNKNOWN`] for an offset not fetched).
#[derive(Debug, Default)]
struct Offsets(PartitionTable<[i64; 2]>);

/// An offset that was not fetched (see [`offsets::UNKNOWN`]).
use offsets::UNKNOWN;

impl Offsets {
    /// `None` when the partition is not one of the selected topics'.
    fn get(&self, topic: usize, partition: i32) -> Option<OffsetPair> {
        let [earliest, latest] = self.0.get(topic, partition)?;
        let known = |o: i64| (o != UNKNOWN).then_some(o);
        Some((known(earliest), known(latest)))
    }
}

/// What a run has written so far: the sink and the counts for the summary.
struct Out<'s, S> {
    sink: &'s mut S,
    counts: Counts,
    warnings: BTreeMap<String, u64>,
    phases: Vec<Phase>,
}

impl<S: RecordSink> Out<'_, S> {
    async fn emit(&mut self, record: Record) -> Result<(), ExtractError> {
        self.counts.records += 1;
        match &record {
            Record::Warning(w) => {
                self.counts.warnings += 1;
                *self.warnings.entry(w.code.clone()).or_default() += 1;
                tracing::info!(code = %w.code, subject = ?w.subject, "{}", w.message);
            }
            Record::Topic(t) => {
                self.counts.topics += 1;
                self.counts.partitions += t.partitions.len();
            }
            Record::ConsumerGroup(_) => self.counts.consumer_groups += 1,
            Record::Subject(_) => self.counts.subjects += 1,
            Record::SchemaVersion(_) => self.counts.schema_versions += 1,
            Record::Cluster(c) => self.counts.brokers = c.broker_count,
            Record::Summary(_)
            | Record::ConnectionTest(_)
            | Record::Permission(_)
            | Record::TopicListing(_) => {}
        }
        self.sink.emit(record).await
    }

    async fn warn(
        &mut self,
        code: &str,
        scope: &str,
        subject: Option<String>,
        message: String,
    ) -> Result<(), ExtractError> {
        self.emit(Record::Warning(WarningRecord {
            code: code.to_string(),
            scope: scope.to_string(),
            subject,
            message,
        }))
        .await
    }

    fn phase_done(&mut self, name: &str, t: Instant) {
        self.phases.push(Phase {
            name: name.to_string(),
            millis: millis(t.elapsed()),
        });
    }
}

/// The Schema Registry part of a run: its settings and the client, or why
/// there is none (a secret that did not resolve, a client that could not be
/// built): then the run says so in a warning and delivers the Kafka part.
#[derive(Debug)]
pub struct RegistrySetup {
    pub config: SchemaRegistryConfig,
    pub client: Result<RegistryClient, String>,
}

/// Hands the registry's records to the run's output.
struct RegistryOut<'o, 's, S>(&'o mut Out<'s, S>);

impl<S: RecordSink> RegistrySink for RegistryOut<'_, '_, S> {
    type Error = ExtractError;

    async fn emit(&mut self, record: Record) -> Result<(), ExtractError> {
        self.0.emit(record).await
    }
}

/// One extraction run over a connection.
pub struct Extractor<'a> {
    conn: &'a Connection,
    opts: ExtractOptions,
    filters: Filters,
    calls: ApiCalls,
    progress: &'a dyn Progress,
    registry: Option<RegistrySetup>,
    broker_check: Option<BrokerCheck>,
}

/// Whether krawl may connect to a broker the cluster advertises (`host`, `port`): the agent's
/// policy. A broker it refuses is not contacted by the DescribeLogDirs client.
pub type BrokerCheck = std::sync::Arc<dyn Fn(&str, u16) -> bool + Send + Sync>;

impl std::fmt::Debug for Extractor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("conn", self.conn)
            .finish_non_exhaustive()
    }
}

type ConfigResult = Result<Vec<admin_ext::ConfigEntry>, AdminExtError>;

/// A described group and its committed offsets (`None` when its description failed).
type FetchedGroup = (
    admin_ext::GroupDescription,
    Option<Result<Vec<admin_ext::CommittedOffset>, AdminExtError>>,
);

impl<'a> Extractor<'a> {
    pub fn new(
        conn: &'a Connection,
        opts: ExtractOptions,
        progress: &'a dyn Progress,
    ) -> Result<Self, ExtractError> {
        opts.validate()?;
        let filters = opts.filters()?;
        Ok(Self {
            conn,
            opts,
            filters,
            calls: ApiCalls::default(),
            progress,
            registry: None,
            broker_check: None,
        })
    }

    /// Connect to an advertised broker only when `check` allows it (the agent's policy): a
    /// hostile broker that advertises other hosts mid-job cannot make the DescribeLogDirs client
    /// contact them (those brokers' sizes are null, with a warning).
    pub fn with_broker_check(mut self, check: Option<BrokerCheck>) -> Self {
        self.broker_check = check;
        self
    }

    /// Also extract this Schema Registry and bind its subjects to the topics.
    pub fn with_schema_registry(mut self, registry: Option<RegistrySetup>) -> Self {
        self.registry = registry;
        self
    }

    /// Run the whole extraction, writing every record (the summary last) to `sink`.
    pub async fn run<S: RecordSink>(self, sink: &mut S) -> Result<SummaryRecord, ExtractError> {
        let started = SystemTime::now();
        let t0 = Instant::now();
        let mut out = Out {
            sink,
            counts: Counts::default(),
            warnings: BTreeMap::new(),
            phases: Vec::new(),
        };

        // krawl's own Kafka client (metadata, offsets, sizes, committed
        // offsets): its settings checked and its TLS configuration built once
        // per extraction. Its error (OAUTHBEARER, unusable TLS files) sends
        // every phase to librdkafka, and the sizes phase reports it.
        let settings = self.conn.broker_settings();
        let client = BrokerClient::new(&settings);
        let client = client.as_ref();

        let t = Instant::now();
        self.progress.phase("metadata", None);
        let meta = self.metadata_phase(client, &mut out).await?;
        out.phase_done("metadata", t);

        let t = Instant::now();
        let partitions: usize = meta.topics.iter().map(|t| t.partitions.len()).sum();
        self.progress.phase("offsets", Some(partitions as u64));
        let offsets = self.offsets_phase(client, &meta, &mut out).await?;
        out.phase_done("offsets", t);

        let t = Instant::now();
        self.progress.phase("sizes", None);
        let sizes = self.sizes_phase(client, &meta, &mut out).await?;
        out.phase_done("sizes", t);

        let t = Instant::now();
        let group_counts = if self.opts.consumer_groups {
            self.groups_phase(client, &meta, &offsets, &mut out).await?
        } else {
            vec![0; meta.topics.len()]
        };
        out.phase_done("consumer_groups", t);

        let t = Instant::now();
        let subjects = match &self.registry {
            Some(setup) => {
                self.progress.phase("schema_registry", None);
                let index = self.registry_phase(setup, &mut out).await?;
                out.phase_done("schema_registry", t);
                index.map(|i| (i, &setup.config))
            }
            None => None,
        };

        let t = Instant::now();
        self.progress
            .phase("topics", Some(meta.topics.len() as u64));
        let lookups = Lookups {
            offsets,
            sizes,
            group_counts,
            subjects,
        };
        self.topics_phase(&meta, &lookups, &mut out).await?;
        out.phase_done("topics", t);

        out.counts.records += 1; // the summary itself
        let summary = SummaryRecord {
            started_at: humantime::format_rfc3339_millis(started).to_string(),
            finished_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            duration_ms: millis(t0.elapsed()),
            counts: out.counts.clone(),
            phases: out.phases.clone(),
            api_calls: self.calls.snapshot(),
            warnings: out.warnings.clone(),
        };
        out.sink.emit(Record::Summary(summary.clone())).await?;
        Ok(summary)
    }

    /// Run `f` with retries on retriable errors, counting each attempt as a call.
    async fn call<T, F, Fut>(&self, api: &'static str, mut f: F) -> Result<T, AdminExtError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AdminExtError>>,
    {
        let mut attempt = 0u32;
        loop {
            self.calls.add(api);
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() && attempt < self.opts.retries => {
                    attempt += 1;
                    tracing::debug!(api, attempt, error = %e, "retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn metadata_phase<S: RecordSink>(
        &self,
        client: OwnClient<'_, '_>,
        out: &mut Out<'_, S>,
    ) -> Result<ClusterMeta, ExtractError> {
        let mut index = IndexBuilder::new(&self.filters);
        // krawl's own client first (no copy of the cluster in librdkafka's
        // cache); librdkafka when it cannot (OAUTHBEARER) or fails.
        let wire = match client {
            Ok(client) => {
                self.calls.add("Metadata");
                let servers = self.conn.bootstrap_servers();
                match metadata::all_topics(client, &servers, &mut index).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::info!(error = %e, "Metadata over krawl's own client failed; asking librdkafka");
                        index = IndexBuilder::new(&self.filters);
                        false
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "krawl's own client cannot connect; Metadata from librdkafka");
                false
            }
        };
        if !wire {
            let mut attempt = 0;
            let md = loop {
                self.calls.add("Metadata");
                match self.conn.metadata().await {
                    Ok(md) => break md,
                    Err(e) if attempt < self.opts.retries => {
                        attempt += 1;
                        tracing::debug!(attempt, error = %e, "retrying Metadata");
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            index.add_librdkafka(&md);
        }
        if index.too_many_replicas {
            return Err(ExtractError::Call {
                api: "Metadata",
                message: format!(
                    "more than {} partition replicas; krawl cannot index this cluster",
                    u32::MAX
                ),
            });
        }
        let IndexBuilder {
            topics: mut all,
            mut nodes,
            partition_count,
            listed,
            topic_errors,
            brokers: md_brokers,
            cluster_id: md_cluster_id,
            controller_id: md_controller,
            ..
        } = index;
        nodes.shrink_to_fit();
        let topic_count = listed + topic_errors.len();

        let api = self
            .conn
            .context()
            .settled_api_versions(Duration::from_secs(2))
            .await;
        let timeout = self.conn.timeout();
        let admin = self.conn.admin();
        // krawl's own Metadata carries the cluster id, the controller and
        // the racks: nothing more to ask. After librdkafka's, DescribeCluster
        // (answered from Metadata v10+) gives racks; cluster id and
        // controller alone are the fallback.
        let (cluster_id, controller_id, mut brokers) = if wire {
            (md_cluster_id, md_controller, md_brokers)
        } else {
            let described = match self
                .call("DescribeCluster", || {
                    admin_ext::describe_cluster(admin, timeout)
                })
                .await
            {
                Ok(d) => Some(d),
                Err(e) => {
                    out.warn(
                        "describe_cluster_failed",
                        "cluster",
                        None,
                        format!("DescribeCluster failed ({e}); broker racks are unknown, cluster id and controller come from Metadata"),
                    )
                    .await?;
                    None
                }
            };
            match described {
                Some(d) => (
                    d.cluster_id,
                    d.controller.map(|c| c.id),
                    d.nodes.into_iter().map(broker).collect(),
                ),
                None => {
                    let (id, ctl) = admin_ext::cluster_id_and_controller(admin, timeout).await;
                    (id, ctl, md_brokers)
                }
            }
        };
        brokers.sort_by_key(|b| b.id);
        let broker_addrs = brokers
            .iter()
            .map(|b| (b.id, b.host.clone(), b.port))
            .collect();

        let api_versions = api
            .iter()
            .map(|(k, (lo, hi))| ApiVersionRange {
                api_key: *k,
                name: api_name(*k).to_string(),
                min_version: *lo,
                max_version: *hi,
            })
            .collect();
        let cluster = ClusterRecord {
            cluster_id,
            controller_id,
            broker_count: brokers.len(),
            brokers,
            topic_count,
            partition_count,
            security_protocol: self.conn.security_protocol().as_str().to_string(),
            sasl_mechanism: self.conn.sasl_mechanism().map(|m| m.as_str().to_string()),
            api_versions,
        };
        out.emit(Record::Cluster(cluster)).await?;

        for (name, err) in topic_errors {
            if self.filters.topic(&name, is_internal_topic(&name)) {
                out.warn(
                    "topic_metadata_failed",
                    "topic",
                    Some(name),
                    format!("Metadata returned {err} for this topic; if TopicAuthorizationFailed, grant DESCRIBE on it"),
                )
                .await?;
            }
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        // Metadata names each topic once; a broker that repeats one must not
        // make the name lookup ambiguous.
        all.dedup_by(|a, b| a.name == b.name);
        Ok(ClusterMeta {
            topics: all,
            nodes,
            brokers: broker_addrs,
            log_dirs: api.contains_key(&35),
        })
    }

    /// Subjects and schema versions; an unreachable or failing registry is a
    /// warning and the Kafka part is still delivered.
    async fn registry_phase<S: RecordSink>(
        &self,
        setup: &RegistrySetup,
        out: &mut Out<'_, S>,
    ) -> Result<Option<SubjectIndex>, ExtractError> {
        let client = match &setup.client {
            Ok(c) => c,
            Err(message) => {
                out.warn(
                    "schema_registry_unavailable",
                    "schema_registry",
                    Some(setup.config.url.clone()),
                    format!("Schema Registry not extracted: {message}"),
                )
                .await?;
                return Ok(None);
            }
        };
        let result =
            krawl_schema_registry::extract::extract(client, &setup.config, &mut RegistryOut(out))
                .await;
        self.calls
            .add_n("SchemaRegistry (HTTP)", client.request_count());
        match result {
            Ok(output) => Ok(Some(output.index)),
            Err(RegistryExtractError::Sink(e)) => Err(e),
            Err(RegistryExtractError::Registry(e)) => {
                out.warn(
                    "schema_registry_unavailable",
                    "schema_registry",
                    Some(setup.config.url.clone()),
                    format!("Schema Registry not extracted: {e}; topics carry no subjects"),
                )
                .await?;
                Ok(None)
            }
        }
    }

    /// Partition sizes from DescribeLogDirs, through krawl's own small
    /// client (librdkafka has no such API): one connection per broker.
    async fn sizes_phase<S: RecordSink>(
        &self,
        client: OwnClient<'_, '_>,
        meta: &ClusterMeta,
        out: &mut Out<'_, S>,
    ) -> Result<PartitionTable<Option<i64>>, ExtractError> {
        let unknown = || PartitionTable::new(meta.topics.iter().map(TopicMeta::slots), None);
        if meta.topics.is_empty() {
            return Ok(unknown());
        }
        if !meta.log_dirs {
            out.warn(
                "log_dirs_unavailable",
                "cluster",
                None,
                "size on disk not collected: the brokers do not support DescribeLogDirs (API 35); size_bytes is null".to_string(),
            )
            .await?;
            return Ok(unknown());
        }
        let wanted: Vec<log_dirs::TopicPartitionCount> = meta
            .topics
            .iter()
            .map(|t| (t.name.as_str(), t.slots()))
            .collect();
        let (brokers, refused): (Vec<_>, Vec<_>) = meta
            .brokers
            .iter()
            .cloned()
            .partition(|(_, h, p)| self.allowed(h, *p));
        for (id, host, port) in &refused {
            out.warn(
                "log_dirs_failed",
                "broker",
                Some(id.to_string()),
                format!("broker {id} is advertised at {host}:{port}, which this agent's policy does not allow (policy.allowed_bootstrap_servers): it is not contacted, and sizes of partitions with a replica there are null"),
            )
            .await?;
        }
        self.calls.add("DescribeLogDirs");
        let sized = match client {
            Ok(client) => log_dirs::partition_sizes_with(client, &brokers, &wanted)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut sizes = match sized {
            Ok(s) => s,
            Err(e) => {
                out.warn(
                    "log_dirs_unavailable",
                    "cluster",
                    None,
                    format!("size on disk not collected: {e}; size_bytes is null"),
                )
                .await?;
                return Ok(unknown());
            }
        };
        // A partition with a replica on a broker that did not answer has an
        // incomplete sum: forget it rather than under-report.
        let mut failed: BTreeSet<i32> = sizes.broker_errors.iter().map(|(b, _)| *b).collect();
        failed.extend(refused.iter().map(|(id, _, _)| *id));
        for (broker, e) in sizes.broker_errors {
            out.warn(
                "log_dirs_failed",
                "broker",
                Some(broker.to_string()),
                format!("DescribeLogDirs failed on broker {broker}: {e}; sizes of partitions with a replica there are null"),
            )
            .await?;
        }
        if !failed.is_empty() {
            for (i, t) in meta.topics.iter().enumerate() {
                for p in &t.partitions {
                    if meta.replicas(p).iter().any(|r| failed.contains(r)) {
                        if let Some(size) = sizes.sizes.get_mut(i, p.id) {
                            *size = None;
                        }
                    }
                }
            }
        }
        Ok(sizes.sizes)
    }

    async fn offsets_phase<S: RecordSink>(
        &self,
        client: OwnClient<'_, '_>,
        meta: &ClusterMeta,
        out: &mut Out<'_, S>,
    ) -> Result<Offsets, ExtractError> {
        let mut offsets = Offsets(PartitionTable::new(
            meta.topics.iter().map(TopicMeta::slots),
            [UNKNOWN; 2],
        ));
        // First each leader directly, over krawl's own client.
        if let Ok(client) = client {
            let names: Vec<&str> = meta.topics.iter().map(|t| t.name.as_str()).collect();
            let leaders = self.leaders(meta);
            let filled = offsets::fill(client, &names, &leaders, &mut offsets.0).await;
            self.calls.add_n("ListOffsets", filled.requests);
            for (broker, e) in &filled.broker_errors {
                tracing::info!(broker, error = %e, "ListOffsets over krawl's own client failed; asking librdkafka for that broker's partitions");
            }
        }
        // Then librdkafka, which retries and follows leader changes, for
        // every partition still unknown (all of them with OAUTHBEARER).
        // (topic index, partition): 8 bytes a partition; a batch's names are
        // made when its request is.
        let all: Vec<(u32, i32)> = meta
            .topics
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                let offsets = &offsets;
                t.partitions.iter().filter_map(move |p| {
                    let known = offsets
                        .0
                        .get(i, p.id)
                        .is_some_and(|o| o[0] != UNKNOWN && o[1] != UNKNOWN);
                    (!known).then_some((i as u32, p.id))
                })
            })
            .collect();
        let total: usize = meta.topics.iter().map(|t| t.partitions.len()).sum();
        self.progress.advance((total - all.len()) as u64);
        let admin = self.conn.admin();
        let timeout = self.conn.timeout();
        // The batch futures are built up front (unstarted, one small box per batch; they borrow
        // the batches) so that no closure over a borrowed slice sits in the stream's type: such a
        // closure trips rustc's higher-ranked `Send` inference and made the whole extraction
        // non-`Send`. Earliest and latest of a batch are asked at the same time, and
        // OFFSET_BATCHES_IN_FLIGHT batches at once: on a network with latency the phase costs
        // a round trip per that many batches, not two per batch.
        let batches: Vec<_> = all
            .chunks(self.opts.list_offsets_batch)
            .map(|batch| {
                async move {
                    let named: Vec<(String, i32)> = batch
                        .iter()
                        .map(|&(t, p)| (meta.topics[t as usize].name.clone(), p))
                        .collect();
                    let named = &named;
                    let (earliest, latest) = futures::join!(
                        self.call("ListOffsets", || {
                            admin_ext::list_offsets(admin, named, OffsetSpec::Earliest, timeout)
                        }),
                        self.call("ListOffsets", || {
                            admin_ext::list_offsets(admin, named, OffsetSpec::Latest, timeout)
                        })
                    );
                    (batch, [earliest, latest])
                }
                .boxed()
            })
            .collect();
        let mut results = stream::iter(batches).buffer_unordered(OFFSET_BATCHES_IN_FLIGHT);
        while let Some((batch, results)) = results.next().await {
            for (slot, res) in [0usize, 1].into_iter().zip(results) {
                let label = if slot == 1 { "latest" } else { "earliest" };
                match res {
                    Ok(list) => {
                        for po in list {
                            match po.result {
                                Ok(off) => {
                                    let entry = meta
                                        .topic_index(&po.topic)
                                        .and_then(|t| offsets.0.get_mut(t, po.partition));
                                    if let Some(entry) = entry {
                                        entry[slot] = off;
                                    }
                                }
                                Err(e) => {
                                    out.warn(
                                        "list_offsets_failed",
                                        "partition",
                                        Some(format!("{}/{}", po.topic, po.partition)),
                                        format!("ListOffsets ({label}) failed: {e}"),
                                    )
                                    .await?
                                }
                            }
                        }
                    }
                    Err(e) => {
                        for &(t, p) in batch {
                            out.warn(
                                "list_offsets_failed",
                                "partition",
                                Some(format!("{}/{p}", meta.topics[t as usize].name)),
                                format!("ListOffsets ({label}) failed for the whole batch: {e}"),
                            )
                            .await?;
                        }
                    }
                }
            }
            self.progress.advance(batch.len() as u64);
        }
        Ok(offsets)
    }

    /// Whether the agent's policy lets krawl's own client contact a broker
    /// that Metadata named (always, without a policy).
    fn allowed(&self, host: &str, port: u16) -> bool {
        self.broker_check
            .as_ref()
            .is_none_or(|allowed| allowed(host, port))
    }

    /// The selected partitions grouped by leader, for brokers Metadata
    /// named and the policy allows (the others are left to librdkafka).
    fn leaders(&self, meta: &ClusterMeta) -> Vec<offsets::Leader> {
        let led = meta.topics.iter().enumerate().flat_map(|(i, t)| {
            t.partitions
                .iter()
                .map(move |p| (p.leader, (i as u32, p.id)))
        });
        self.by_allowed_broker(meta, led)
            .into_iter()
            .map(|((id, host, port), mut partitions)| {
                partitions.sort_unstable();
                offsets::Leader {
                    broker: *id,
                    host: host.clone(),
                    port: *port,
                    partitions,
                }
            })
            .collect()
    }

    /// `items` by broker id, for the brokers Metadata named (in its order)
    /// that the policy allows; the items of any other id (-1: none, or a
    /// broker Metadata did not name or the policy refuses) are left out, for
    /// librdkafka.
    fn by_allowed_broker<'m, T>(
        &self,
        meta: &'m ClusterMeta,
        items: impl Iterator<Item = (i32, T)>,
    ) -> Vec<(&'m BrokerAddr, Vec<T>)> {
        let mut by_broker: BTreeMap<i32, Vec<T>> = BTreeMap::new();
        for (broker, item) in items {
            if broker >= 0 {
                by_broker.entry(broker).or_default().push(item);
            }
        }
        meta.brokers
            .iter()
            .filter(|(_, host, port)| self.allowed(host, *port))
            .filter_map(|b| Some((b, by_broker.remove(&b.0)?)))
            .collect()
    }

    async fn groups_phase<S: RecordSink>(
        &self,
        client: OwnClient<'_, '_>,
        meta: &ClusterMeta,
        offsets: &Offsets,
        out: &mut Out<'_, S>,
    ) -> Result<Vec<usize>, ExtractError> {
        let mut topic_groups = vec![0usize; meta.topics.len()];
        // Many groups per request where the brokers offer it (groups.rs),
        // librdkafka for the rest.
        let pool = client.ok().map(groups::CoordinatorPool::new);
        let pool = pool.as_ref();
        let Some(mut listed) = self.list_groups(pool, meta, out).await? else {
            return Ok(topic_groups);
        };
        listed.retain(|g| {
            self.filters.group(&g.listing.group_id) && self.filters.group_state(&g.listing.state)
        });
        // Sorted by id; a group two brokers listed (its coordinator moving)
        // keeps the first, and a wrong guess goes to librdkafka.
        listed.sort_by(|a, b| a.listing.group_id.cmp(&b.listing.group_id));
        listed.dedup_by(|a, b| a.listing.group_id == b.listing.group_id);
        self.progress
            .phase("consumer_groups", Some(listed.len() as u64));

        // A batch is DescribeGroups, then the committed offsets of its
        // groups; GROUP_BATCHES_IN_FLIGHT batches run at once and are written
        // in order. The futures are built up front, as in the offsets phase.
        let batches: Vec<_> = listed
            .chunks(GROUPS_PER_BATCH)
            .map(|batch| self.describe_group_batch(batch, pool, meta).boxed())
            .collect();
        let mut results = stream::iter(batches).buffered(GROUP_BATCHES_IN_FLIGHT);
        while let Some((failed, fetched)) = results.next().await {
            for (group, e) in failed {
                self.progress.advance(1);
                out.warn(
                    "describe_group_failed",
                    "consumer_group",
                    Some(group),
                    format!("DescribeGroups failed: {e}"),
                )
                .await?;
            }
            for (d, committed) in fetched {
                self.progress.advance(1);
                if let Some(e) = &d.error {
                    out.warn(
                        "describe_group_failed",
                        "consumer_group",
                        Some(d.group_id.clone()),
                        format!("DescribeGroups failed for this group: {e}"),
                    )
                    .await?;
                    continue;
                }
                if !self.filters.group_state(&d.state) {
                    continue;
                }
                let committed = match committed {
                    Some(Ok(c)) => c,
                    Some(Err(e)) => {
                        out.warn(
                            "offset_fetch_failed",
                            "consumer_group",
                            Some(d.group_id.clone()),
                            format!("committed offsets not fetched: {e}; the group record has no offsets"),
                        )
                        .await?;
                        Vec::new()
                    }
                    None => Vec::new(),
                };
                let record = self.group_record(d, committed, meta, offsets, out).await?;
                for t in &record.topics {
                    if let Some(i) = meta.topic_index(t) {
                        topic_groups[i] += 1;
                    }
                }
                out.emit(Record::ConsumerGroup(record)).await?;
            }
        }
        Ok(topic_groups)
    }

    /// Every consumer group: from ListGroups over krawl's own client (which
    /// also says who coordinates each), or from librdkafka when that fails
    /// anywhere or the policy refuses a broker. `None` when no listing
    /// worked (a warning was written).
    async fn list_groups<S: RecordSink>(
        &self,
        pool: Option<&groups::CoordinatorPool<'_>>,
        meta: &ClusterMeta,
        out: &mut Out<'_, S>,
    ) -> Result<Option<Vec<groups::Listed>>, ExtractError> {
        let every_broker_allowed = meta
            .brokers
            .iter()
            .all(|(_, host, port)| self.allowed(host, *port));
        if let (Some(pool), true, false) = (pool, every_broker_allowed, meta.brokers.is_empty()) {
            match pool.list(&meta.brokers).await {
                Ok(listed) => {
                    self.calls.add_n("ListGroups", meta.brokers.len() as u64);
                    return Ok(Some(listed));
                }
                Err(e) => {
                    tracing::info!(error = %e, "ListGroups over krawl's own client failed; listing the groups with librdkafka");
                }
            }
        }
        let admin = self.conn.admin();
        let timeout = self.conn.timeout();
        let (listings, broker_errors) = match self
            .call("ListGroups", || {
                admin_ext::list_consumer_groups(admin, timeout)
            })
            .await
        {
            Ok(v) => v,
            Err(e) => {
                out.warn(
                    "list_groups_failed",
                    "cluster",
                    None,
                    format!("ListGroups failed, no consumer groups extracted: {e}; if not authorized, grant DESCRIBE on the groups"),
                )
                .await?;
                return Ok(None);
            }
        };
        for e in broker_errors {
            out.warn(
                "list_groups_partial",
                "cluster",
                None,
                format!("a broker did not list its groups: {e}; some groups may be missing"),
            )
            .await?;
        }
        Ok(Some(
            listings
                .into_iter()
                .map(|listing| groups::Listed {
                    listing,
                    coordinator: -1,
                })
                .collect(),
        ))
    }

    /// The groups of `batch` described (by their coordinators many at once,
    /// by librdkafka the rest) with their committed offsets, sorted by
    /// group id; and the groups whose librdkafka call failed, with its error.
    async fn describe_group_batch(
        &self,
        batch: &[groups::Listed],
        pool: Option<&groups::CoordinatorPool<'_>>,
        meta: &ClusterMeta,
    ) -> (Vec<(String, AdminExtError)>, Vec<FetchedGroup>) {
        let mut descriptions = Vec::with_capacity(batch.len());
        let mut described = match pool {
            Some(pool) => self.describe_many(pool, batch, meta).await,
            None => groups::Described::new(),
        };
        let rest: Vec<String> = batch
            .iter()
            .filter_map(|g| match described.remove(&g.listing.group_id) {
                Some(d) => {
                    descriptions.push(d);
                    None
                }
                None => Some(g.listing.group_id.clone()),
            })
            .collect();
        let mut failed = Vec::new();
        let admin = self.conn.admin();
        let timeout = self.conn.timeout();
        for chunk in rest.chunks(self.opts.describe_groups_batch) {
            match self
                .call("DescribeGroups", || {
                    admin_ext::describe_consumer_groups(admin, chunk, timeout)
                })
                .await
            {
                Ok(d) => descriptions.extend(d),
                Err(e) => failed.extend(chunk.iter().map(|g| (g.clone(), e.clone()))),
            }
        }
        let mut committed = match pool {
            Some(pool) => self.fetch_many(pool, &descriptions, meta).await,
            None => groups::Committed::new(),
        };
        let fetches: Vec<_> = descriptions
            .into_iter()
            .map(|d| match committed.remove(&d.group_id) {
                Some(offsets) => futures::future::ready((d, Some(Ok(offsets)))).boxed(),
                None => self.fetch_committed(d).boxed(),
            })
            .collect();
        let mut fetched: Vec<FetchedGroup> = stream::iter(fetches)
            .buffer_unordered(self.opts.offset_fetch_concurrency)
            .collect()
            .await;
        fetched.sort_by(|a, b| a.0.group_id.cmp(&b.0.group_id));
        (failed, fetched)
    }

    /// Descriptions of the listed groups from the brokers that listed them,
    /// many groups a request (classic groups only: a KIP-848 group is
    /// librdkafka's, which asks ConsumerGroupDescribe).
    async fn describe_many(
        &self,
        pool: &groups::CoordinatorPool<'_>,
        batch: &[groups::Listed],
        meta: &ClusterMeta,
    ) -> groups::Described {
        let coordinators = self.coordinators(
            meta,
            batch
                .iter()
                .filter(|g| g.listing.group_type.as_deref() != Some("Consumer"))
                .map(|g| (g.coordinator, g.listing.group_id.as_str())),
        );
        let calls: Vec<_> = coordinators.iter().map(|c| pool.describe(c)).collect();
        self.gather("DescribeGroups", calls).await
    }

    /// Committed offsets of the described groups from their coordinators,
    /// many groups a request; groups missing from the result go to librdkafka.
    async fn fetch_many(
        &self,
        pool: &groups::CoordinatorPool<'_>,
        descriptions: &[admin_ext::GroupDescription],
        meta: &ClusterMeta,
    ) -> groups::Committed {
        let coordinators = self.coordinators(
            meta,
            descriptions
                .iter()
                .filter(|d| d.error.is_none())
                .filter_map(|d| {
                    let c = d.coordinator.as_ref()?;
                    Some((c.id, d.group_id.as_str()))
                }),
        );
        let calls: Vec<_> = coordinators.iter().map(|c| pool.fetch(c)).collect();
        self.gather("OffsetFetch", calls).await
    }

    /// The answers of calls to several coordinators, `MAX_CONCURRENT_BROKERS`
    /// at a time, merged; their requests counted as `api`. The calls come
    /// built: a stream that kept the closure building them would not be
    /// `Send` for every lifetime (rust-lang/rust#102211).
    async fn gather<T, F>(&self, api: &str, calls: Vec<F>) -> HashMap<String, T>
    where
        F: Future<Output = (HashMap<String, T>, u64)>,
    {
        let answers: Vec<_> = stream::iter(calls)
            .buffer_unordered(MAX_CONCURRENT_BROKERS)
            .collect()
            .await;
        let mut merged = HashMap::new();
        for (answered, requests) in answers {
            self.calls.add_n(api, requests);
            merged.extend(answered);
        }
        merged
    }

    /// `(coordinator id, group)` pairs by coordinator, for the coordinators
    /// Metadata named and the policy allows (the others' groups are left to
    /// librdkafka).
    fn coordinators<'g>(
        &self,
        meta: &ClusterMeta,
        groups: impl Iterator<Item = (i32, &'g str)>,
    ) -> Vec<groups::Coordinator<'g>> {
        self.by_allowed_broker(meta, groups)
            .into_iter()
            .map(|((id, host, port), groups)| groups::Coordinator {
                broker: *id,
                host: host.clone(),
                port: *port,
                groups,
            })
            .collect()
    }

    async fn fetch_committed(&self, d: admin_ext::GroupDescription) -> FetchedGroup {
        if d.error.is_some() {
            return (d, None);
        }
        let admin = self.conn.admin();
        let timeout = self.conn.timeout();
        let committed = self
            .call("OffsetFetch", || {
                admin_ext::list_consumer_group_offsets(admin, &d.group_id, timeout)
            })
            .await;
        (d, Some(committed))
    }

    async fn group_record<S: RecordSink>(
        &self,
        d: admin_ext::GroupDescription,
        committed: Vec<admin_ext::CommittedOffset>,
        meta: &ClusterMeta,
        offsets: &Offsets,
        out: &mut Out<'_, S>,
    ) -> Result<ConsumerGroupRecord, ExtractError> {
        let known = |topic: &str, partition: i32| {
            meta.topic_index(topic)
                .and_then(|t| offsets.get(t, partition))
        };
        // Latest offsets for committed partitions outside the selected topics.
        let missing: Vec<(String, i32)> = committed
            .iter()
            .filter(|c| c.offset.is_some() && known(&c.topic, c.partition).is_none())
            .map(|c| (c.topic.clone(), c.partition))
            .collect();
        let mut extra: HashMap<(String, i32), i64> = HashMap::new();
        if !missing.is_empty() {
            let admin = self.conn.admin();
            let timeout = self.conn.timeout();
            match self
                .call("ListOffsets", || {
                    admin_ext::list_offsets(admin, &missing, OffsetSpec::Latest, timeout)
                })
                .await
            {
                Ok(list) => {
                    for po in list {
                        match po.result {
                            Ok(o) => {
                                extra.insert((po.topic, po.partition), o);
                            }
                            Err(e) => {
                                out.warn(
                                    "list_offsets_failed",
                                    "consumer_group",
                                    Some(d.group_id.clone()),
                                    format!(
                                        "latest offset of {}/{} not fetched, its lag is unknown: {e}",
                                        po.topic, po.partition
                                    ),
                                )
                                .await?
                            }
                        }
                    }
                }
                Err(e) => {
                    out.warn(
                        "list_offsets_failed",
                        "consumer_group",
                        Some(d.group_id.clone()),
                        format!("latest offsets for the lag of topics outside the filter not fetched: {e}"),
                    )
                    .await?
                }
            }
        }
        let mut topics = BTreeSet::new();
        let mut offsets_out = Vec::new();
        let mut total_lag = 0i64;
        for c in committed {
            if let Some(e) = &c.error {
                out.warn(
                    "offset_fetch_failed",
                    "consumer_group",
                    Some(d.group_id.clone()),
                    format!(
                        "committed offset of {}/{} not fetched: {e}",
                        c.topic, c.partition
                    ),
                )
                .await?;
                continue;
            }
            let Some(committed_offset) = c.offset else {
                continue;
            };
            topics.insert(c.topic.clone());
            let latest = known(&c.topic, c.partition)
                .and_then(|(_, l)| l)
                .or_else(|| extra.get(&(c.topic.clone(), c.partition)).copied());
            let lag = latest.map(|l| (l - committed_offset).max(0));
            total_lag += lag.unwrap_or(0);
            offsets_out.push(CommittedOffset {
                topic: c.topic,
                partition: c.partition,
                committed_offset,
                latest_offset: latest,
                lag,
            });
        }
        offsets_out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        let mut members: Vec<GroupMember> = d
            .members
            .into_iter()
            .map(|m| {
                let mut assignments: Vec<TopicPartition> = m
                    .assignment
                    .into_iter()
                    .map(|(topic, partition)| TopicPartition { topic, partition })
                    .collect();
                assignments.sort();
                for a in &assignments {
                    topics.insert(a.topic.clone());
                }
                GroupMember {
                    member_id: m.member_id,
                    client_id: m.client_id,
                    host: m.host,
                    assignments,
                }
            })
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(ConsumerGroupRecord {
            group_id: d.group_id,
            state: d.state,
            protocol_type: if d.is_simple {
                String::new()
            } else {
                "consumer".to_string()
            },
            partition_assignor: d.partition_assignor.filter(|s| !s.is_empty()),
            simple: d.is_simple,
            coordinator: d.coordinator.map(broker),
            members,
            offsets: offsets_out,
            total_lag,
            topics: topics.into_iter().collect(),
        })
    }

    async fn topics_phase<S: RecordSink>(
        &self,
        meta: &ClusterMeta,
        lookups: &Lookups<'_>,
        out: &mut Out<'_, S>,
    ) -> Result<(), ExtractError> {
        let admin = self.conn.admin();
        let timeout = self.conn.timeout();
        // CONFIG_BATCHES_IN_FLIGHT requests in flight (written in order): the
        // round trips overlap writing the batches before them, and at most
        // that many batches of configs are held.
        let per_batch = self.opts.describe_configs_batch;
        let batches: Vec<_> = meta
            .topics
            .chunks(per_batch)
            .enumerate()
            .map(|(n, batch)| {
                async move {
                    let names: Vec<String> = batch.iter().map(|t| t.name.clone()).collect();
                    let res = self
                        .call("DescribeConfigs", || {
                            admin_ext::describe_topic_configs(admin, &names, timeout)
                        })
                        .await;
                    (n * per_batch, batch, res)
                }
                .boxed()
            })
            .collect();
        let mut results = stream::iter(batches).buffered(CONFIG_BATCHES_IN_FLIGHT);
        while let Some((first, batch, res)) = results.next().await {
            let mut by_name: HashMap<String, ConfigResult> = match res {
                Ok(list) => list.into_iter().map(|tc| (tc.name, tc.result)).collect(),
                Err(e) => batch
                    .iter()
                    .map(|t| (t.name.clone(), Err(e.clone())))
                    .collect(),
            };
            for (index, t) in (first..).zip(batch) {
                let configs = match by_name.remove(&t.name) {
                    Some(Ok(entries)) => entries,
                    Some(Err(e)) => {
                        out.warn(
                            "describe_configs_failed",
                            "topic",
                            Some(t.name.clone()),
                            format!(
                                "DescribeConfigs failed: {e}; the topic record has no configs{}",
                                if e.is_authorization() {
                                    " (grant DESCRIBE_CONFIGS on the topic)"
                                } else {
                                    ""
                                }
                            ),
                        )
                        .await?;
                        Vec::new()
                    }
                    None => {
                        out.warn(
                            "describe_configs_failed",
                            "topic",
                            Some(t.name.clone()),
                            "DescribeConfigs returned nothing for this topic; the topic record has no configs".to_string(),
                        )
                        .await?;
                        Vec::new()
                    }
                };
                let record = topic_record(meta, index, configs, lookups);
                out.emit(Record::Topic(record)).await?;
            }
            self.progress.advance(batch.len() as u64);
        }
        Ok(())
    }
}

/// The brokers of a librdkafka Metadata answer (it carries no racks).
pub(crate) fn librdkafka_brokers(md: &rdkafka::metadata::Metadata) -> Vec<Broker> {
    md.brokers()
        .iter()
        .map(|b| Broker {
            id: b.id(),
            host: b.host().to_string(),
            port: u16::try_from(b.port()).unwrap_or(0),
            rack: None,
        })
        .collect()
}

fn broker(n: admin_ext::Node) -> Broker {
    Broker {
        id: n.id,
        host: n.host,
        port: n.port,
        rack: n.rack,
    }
}

/// The record of topic number `index` of `meta`.
fn topic_record(
    meta: &ClusterMeta,
    index: usize,
    configs: Vec<admin_ext::ConfigEntry>,
    lookups: &Lookups<'_>,
) -> TopicRecord {
    let t = &meta.topics[index];
    let mut configs: Vec<TopicConfig> = configs
        .into_iter()
        .map(|c| TopicConfig {
            // A sensitive value is never emitted.
            value: if c.sensitive { None } else { c.value },
            name: c.name,
            source: c.source,
            read_only: c.read_only,
            sensitive: c.sensitive,
        })
        .collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut partitions: Vec<PartitionRecord> = t
        .partitions
        .iter()
        .map(|p| {
            let (earliest, latest) = lookups.offsets.get(index, p.id).unwrap_or((None, None));
            let leader = (p.leader >= 0).then_some(p.leader);
            PartitionRecord {
                partition: p.id,
                leader,
                replicas: meta.replicas(p).to_vec(),
                isr: meta.isr(p).to_vec(),
                offline: leader.is_none(),
                under_replicated: p.isr < p.replicas,
                earliest_offset: earliest,
                latest_offset: latest,
                size_bytes: lookups.sizes.get(index, p.id).flatten(),
            }
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    let record_count = partitions
        .iter()
        .map(|p| Some((p.latest_offset? - p.earliest_offset?).max(0)))
        .sum::<Option<i64>>();
    let size_bytes = partitions.iter().map(|p| p.size_bytes).sum::<Option<i64>>();
    let binding = match &lookups.subjects {
        Some((index, cfg)) => krawl_schema_registry::bind(index, &t.name, cfg),
        None => Binding::default(),
    };
    TopicRecord {
        name: t.name.clone(),
        internal: t.internal,
        partition_count: partitions.len(),
        replication_factor: t
            .partitions
            .iter()
            .map(|p| usize::from(p.replicas))
            .max()
            .unwrap_or(0),
        configs,
        partitions,
        record_count,
        size_bytes,
        consumer_group_count: lookups.group_counts.get(index).copied().unwrap_or(0),
        schema_managed: !binding.is_empty(),
        key_subject: binding.key_subject,
        value_subject: binding.value_subject,
        other_subjects: binding.others,
    }
}

/// Exponential backoff before retry `attempt` (1-based): 400 ms, 800 ms, … 6.4 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64 << attempt.min(5))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
