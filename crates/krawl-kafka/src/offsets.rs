//! Earliest and latest offsets of every partition, asked of each partition's
//! leader over krawl's own client.
//!
//! # Why not librdkafka's
//!
//! librdkafka's ListOffsets looks up each batch's leaders in its metadata
//! cache (filling it with the whole cluster), and merges every answer by
//! topic name: at 50,000 topics a profile put 16% of the extraction in
//! `strcmp` and a quarter in `malloc`. Here the caller has already grouped
//! the partitions by leader (from Metadata); each leader gets one
//! connection, its partitions go out in requests of at most
//! [`PARTITIONS_PER_REQUEST`], earliest and latest as two requests, up to
//! [`REQUESTS_IN_FLIGHT`] in flight, and each answer is walked straight into
//! the offsets table.
//!
//! # What is not done here
//!
//! No retry and no leader refresh: a partition this pass did not fill (a
//! broker that failed, a partition error such as NOT_LEADER_OR_FOLLOWER, a
//! leader the policy refuses, an answer that left it out) keeps
//! [`UNKNOWN`], and the caller asks librdkafka for those, which retries and
//! follows leader changes. An answer counts only for partitions its own
//! request named: a broker cannot set the offsets of partitions it was not
//! asked about.

use std::sync::Mutex;

use futures::{FutureExt, StreamExt};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use krawl_wire::{ListOffsetsResponse, ListOffsetsVisitor};

use crate::broker_client::{version_of, BrokerClient, BrokerError, Next, MAX_CONCURRENT_BROKERS};
use crate::partition_table::PartitionTable;

/// Partitions per ListOffsets request.
pub const PARTITIONS_PER_REQUEST: usize = 5_000;
/// ListOffsets requests in flight on one leader's connection. Answers are read one at a time
/// (about 30 bytes a partition), so depth costs nothing here; with 4, the 60 requests of a
/// 50,000-topic cluster on one leader took 15 round trips at 20 ms.
pub const REQUESTS_IN_FLIGHT: usize = 16;
/// An offset not (yet) known: outside what a broker sends as an offset.
pub const UNKNOWN: i64 = i64::MIN;

const LIST_OFFSETS_MIN: i16 = 1;
const LIST_OFFSETS_MAX: i16 = 10;
/// Kafka's ListOffsets timestamps for "earliest" and "latest", in table slot order.
const SPECS: [i64; 2] = [-2, -1];

/// The partitions led by one broker: `(topic index, partition)`, sorted.
#[derive(Debug)]
pub struct Leader {
    pub broker: i32,
    pub host: String,
    pub port: u16,
    pub partitions: Vec<(u32, i32)>,
}

/// What [`fill`] did.
#[derive(Debug, Default)]
pub struct Filled {
    /// ListOffsets requests sent.
    pub requests: u64,
    /// Brokers that could not be asked, with why (their partitions stay unknown).
    pub broker_errors: Vec<(i32, BrokerError)>,
}

/// Fills `table` (slot 0 earliest, 1 latest) for each leader's partitions.
/// `names` are the topic names by index, sorted (the index of the table).
pub async fn fill(
    client: &BrokerClient<'_>,
    names: &[&str],
    leaders: &[Leader],
    table: &mut PartitionTable<[i64; 2]>,
) -> Filled {
    let shared = Mutex::new((std::mem::take(table), 0u64));
    let ctx = Ctx {
        client,
        names,
        table: &shared,
    };
    let futures: Vec<_> = leaders
        .iter()
        .map(|leader| ctx.leader(leader).map(move |r| (leader.broker, r)).boxed())
        .collect();
    let mut results = futures::stream::iter(futures).buffer_unordered(MAX_CONCURRENT_BROKERS);
    let mut broker_errors = Vec::new();
    while let Some((broker, result)) = results.next().await {
        if let Err(e) = result {
            broker_errors.push((broker, e));
        }
    }
    drop(results);
    let (filled, requests) = shared.into_inner().unwrap_or_else(|e| e.into_inner());
    *table = filled;
    broker_errors.sort_by_key(|(b, _)| *b);
    Filled {
        requests,
        broker_errors,
    }
}

struct Ctx<'a> {
    client: &'a BrokerClient<'a>,
    names: &'a [&'a str],
    /// The table and the request count; the brokers' futures share one task,
    /// so the lock is never contended.
    table: &'a Mutex<(PartitionTable<[i64; 2]>, u64)>,
}

impl Ctx<'_> {
    async fn leader(&self, leader: &Leader) -> Result<(), BrokerError> {
        let (mut conn, versions) = self
            .client
            .checkout(leader.broker, &leader.host, leader.port)
            .await?;
        let version = version_of(
            &versions,
            format_args!("broker {}", leader.broker),
            ApiKey::ListOffsets,
            LIST_OFFSETS_MIN,
            LIST_OFFSETS_MAX,
        )?;
        let timeout_ms = i32::try_from(self.client.timeout().as_millis()).unwrap_or(i32::MAX);
        // (batch, slot) in send order: each batch asked for earliest, then latest.
        let items = leader
            .partitions
            .chunks(PARTITIONS_PER_REQUEST)
            .flat_map(|batch| [(batch, 0usize), (batch, 1)]);
        conn.pipeline(
            version,
            REQUESTS_IN_FLIGHT,
            items,
            |&(batch, slot)| {
                if let Ok(mut shared) = self.table.lock() {
                    shared.1 += 1;
                }
                self.request(batch, SPECS[slot], timeout_ms)
            },
            |conn, body, (batch, slot)| {
                let response =
                    ListOffsetsResponse::parse(body, version).map_err(|e| conn.decode_error(e))?;
                let mut shared = self.table.lock().unwrap_or_else(|e| e.into_inner());
                let mut visitor = Record {
                    names: self.names,
                    asked: batch,
                    slot,
                    table: &mut shared.0,
                };
                response
                    .visit(&mut visitor)
                    .map_err(|e| conn.decode_error(e))?;
                Ok(Next::More)
            },
        )
        .await?;
        self.client
            .checkin(&leader.host, leader.port, conn, versions);
        Ok(())
    }

    /// One ListOffsets request for `batch` (sorted by topic index), built when it is sent.
    fn request(&self, batch: &[(u32, i32)], timestamp: i64, timeout_ms: i32) -> ListOffsetsRequest {
        let mut topics: Vec<ListOffsetsTopic> = Vec::new();
        let mut current: Option<u32> = None;
        for &(t, p) in batch {
            if current != Some(t) {
                current = Some(t);
                let name = self.names.get(t as usize).copied().unwrap_or_default();
                topics.push(
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name.to_string()))),
                );
            }
            if let Some(topic) = topics.last_mut() {
                topic.partitions.push(
                    ListOffsetsPartition::default()
                        .with_partition_index(p)
                        .with_timestamp(timestamp),
                );
            }
        }
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(topics)
            .with_timeout_ms(timeout_ms)
    }
}

/// Writes one answer's offsets into the table: only partitions of its own
/// request, only without an error code.
struct Record<'a> {
    names: &'a [&'a str],
    asked: &'a [(u32, i32)],
    slot: usize,
    table: &'a mut PartitionTable<[i64; 2]>,
}

impl ListOffsetsVisitor for Record<'_> {
    fn partition(&mut self, p: krawl_wire::ListOffsetsPartition<'_>) {
        if p.error_code != 0 || p.offset < -1 {
            return;
        }
        let Ok(topic) = self.names.binary_search(&p.topic) else {
            return;
        };
        let Ok(topic32) = u32::try_from(topic) else {
            return;
        };
        if self
            .asked
            .binary_search(&(topic32, p.partition_index))
            .is_err()
        {
            return;
        }
        if let Some(entry) = self.table.get_mut(topic, p.partition_index) {
            entry[self.slot] = p.offset;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::metadata;
    use crate::test_broker::{free_port, noida, plaintext, seed, NOIDA_NODE_ID};
    use krawl_wire::{MetadataBroker, MetadataPartition, MetadataTopic, MetadataVisitor};

    /// An answer sets only the partitions its request named, only without an error.
    #[test]
    fn an_answer_counts_only_for_what_it_was_asked() {
        let names = ["a", "b"];
        let mut table = PartitionTable::new([2, 2], [UNKNOWN; 2]);
        let mut v = Record {
            names: &names,
            asked: &[(0, 1), (1, 0)],
            slot: 1,
            table: &mut table,
        };
        let p = |topic, partition_index, error_code, offset| krawl_wire::ListOffsetsPartition {
            topic,
            partition_index,
            error_code,
            timestamp: -1,
            offset,
        };
        for part in [
            p("a", 1, 0, 42),
            p("a", 0, 0, 7),     // not asked
            p("b", 0, 6, 9),     // NOT_LEADER_OR_FOLLOWER
            p("c", 0, 0, 1),     // not a topic of the run
            p("b", 1, 0, 3),     // not asked
            p("a", 1, 0, -9999), // not an offset
        ] {
            v.partition(part);
        }
        let u = UNKNOWN;
        assert_eq!(table.values(), &[[u, u], [u, 42], [u, u], [u, u]]);
    }

    type SeenPartition = (i32, i32, Vec<i32>);

    #[derive(Default)]
    struct Seen {
        brokers: Vec<(i32, String, i32)>,
        /// Each topic and its partitions: (id, leader, replicas).
        topics: Vec<(String, Vec<SeenPartition>)>,
        cluster_id: Option<String>,
    }

    impl MetadataVisitor for Seen {
        fn broker(&mut self, b: MetadataBroker<'_>) {
            self.brokers.push((b.node_id, b.host.to_string(), b.port));
        }
        fn cluster(&mut self, cluster_id: Option<&str>, _: i32) {
            self.cluster_id = cluster_id.map(str::to_string);
        }
        fn topic(&mut self, t: MetadataTopic<'_>) {
            self.topics.push((t.name.to_string(), Vec::new()));
        }
        fn partition(&mut self, p: MetadataPartition<'_>) {
            let replicas = p.replicas.iter().collect();
            if let Some(t) = self.topics.last_mut() {
                t.1.push((p.partition_index, p.leader_id, replicas));
            }
        }
    }

    /// Metadata and offsets over krawl's own client, from a real broker: the
    /// topics and leaders it has, and the offsets of what was produced.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metadata_and_offsets_from_noida() {
        let n = noida();
        seed(n.port, "counted", &[5, 20, 0]).await;
        let settings = plaintext();
        let client = BrokerClient::new(&settings).unwrap();

        // The first bootstrap server refuses connections: the next one answers.
        let dead = free_port();
        let servers = [
            ("127.0.0.1".to_string(), dead),
            ("127.0.0.1".to_string(), n.port),
        ];
        let mut seen = Seen::default();
        metadata::all_topics(&client, &servers, &mut seen)
            .await
            .unwrap();
        assert_eq!(
            seen.brokers,
            vec![(NOIDA_NODE_ID, "127.0.0.1".to_string(), i32::from(n.port))]
        );
        assert!(seen.cluster_id.is_some());
        let (_, partitions) = seen.topics.iter().find(|(t, _)| t == "counted").unwrap();
        let mut partitions = partitions.clone();
        partitions.sort();
        assert_eq!(
            partitions,
            (0..3)
                .map(|p| (p, NOIDA_NODE_ID, vec![NOIDA_NODE_ID]))
                .collect::<Vec<_>>()
        );

        // "absent" is not on the broker: its partition stays unknown.
        let names = ["absent", "counted"];
        let leaders = [Leader {
            broker: NOIDA_NODE_ID,
            host: "127.0.0.1".into(),
            port: n.port,
            partitions: vec![(0, 0), (1, 0), (1, 1), (1, 2)],
        }];
        let mut table = PartitionTable::new([1, 3], [UNKNOWN; 2]);
        let filled = fill(&client, &names, &leaders, &mut table).await;
        assert!(
            filled.broker_errors.is_empty(),
            "{:?}",
            filled.broker_errors
        );
        assert_eq!(filled.requests, 2, "earliest and latest, one request each");
        assert_eq!(table.values(), &[[UNKNOWN; 2], [0, 5], [0, 20], [0, 0]]);

        // A leader that cannot be reached: a broker error, its partitions unknown
        // (the extraction asks librdkafka for them).
        let gone = [Leader {
            broker: 7,
            host: "127.0.0.1".into(),
            port: dead,
            partitions: vec![(1, 0)],
        }];
        let mut table = PartitionTable::new([1, 3], [UNKNOWN; 2]);
        let filled = fill(&client, &names, &gone, &mut table).await;
        assert!(
            matches!(
                &filled.broker_errors[..],
                [(7, BrokerError::Connect { broker: 7, .. })]
            ),
            "{:?}",
            filled.broker_errors
        );
        assert!(table.values().iter().all(|o| *o == [UNKNOWN; 2]));
    }
}
