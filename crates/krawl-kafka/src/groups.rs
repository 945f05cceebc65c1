//! Committed offsets of many consumer groups per request (OffsetFetch v8–v9,
//! KIP-709), asked of each group's coordinator over krawl's own client.
//!
//! # Why
//!
//! librdkafka's ListConsumerGroupOffsets takes one group per call, so 10,000
//! groups cost 10,000 OffsetFetch round trips (16 at a time). A broker that
//! speaks OffsetFetch v8 answers [`GROUPS_PER_REQUEST`] groups in one.
//!
//! # Fallback
//!
//! Whatever this pass does not answer cleanly is left to librdkafka's
//! per-group call, which reports errors in krawl's usual terms: a
//! coordinator without v8 (Kafka before 3.0), a coordinator that fails or the
//! policy refuses, a group with an error code (e.g. GROUP_AUTHORIZATION_FAILED
//! or COORDINATOR_LOAD_IN_PROGRESS), a group with a partition error, and a
//! group the answer leaves out. An answer counts only for groups its request
//! named. Connections to a coordinator are kept for the groups phase and
//! reused across its batches.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{ApiKey, GroupId, OffsetFetchRequest};
use kafka_protocol::protocol::StrBytes;
use krawl_wire::{CommittedPartition, OffsetFetchResponse, OffsetFetchVisitor};

use crate::admin_ext::CommittedOffset;
use crate::broker_client::{BrokerClient, BrokerError, Conn, Next, PIPELINE_DEPTH};

/// Groups per OffsetFetch request.
pub const GROUPS_PER_REQUEST: usize = 50;
const OFFSET_FETCH_MIN: i16 = 8;
const OFFSET_FETCH_MAX: i16 = 9;

/// Groups whose coordinator is one broker.
#[derive(Debug)]
pub struct Coordinator<'g> {
    pub broker: i32,
    pub host: String,
    pub port: u16,
    pub groups: Vec<&'g str>,
}

/// Committed offsets by group id, for the groups answered cleanly.
pub type Committed = HashMap<String, Vec<CommittedOffset>>;

/// Open connections to coordinators (with the OffsetFetch version each
/// speaks), kept across the batches of one groups phase.
pub struct CoordinatorPool<'c> {
    client: &'c BrokerClient<'c>,
    idle: Mutex<HashMap<i32, Vec<(Conn, i16)>>>,
    /// Coordinators that do not speak v8 or failed: not asked again.
    skip: Mutex<HashSet<i32>>,
}

impl std::fmt::Debug for CoordinatorPool<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorPool").finish_non_exhaustive()
    }
}

impl<'c> CoordinatorPool<'c> {
    pub fn new(client: &'c BrokerClient<'c>) -> Self {
        Self {
            client,
            idle: Mutex::new(HashMap::new()),
            skip: Mutex::new(HashSet::new()),
        }
    }

    /// The committed offsets of `coordinator`'s groups that it answered
    /// cleanly, and the number of requests sent. A coordinator that fails
    /// is not asked again in this phase.
    pub async fn fetch(&self, coordinator: &Coordinator<'_>) -> (Committed, u64) {
        let broker = coordinator.broker;
        if self
            .skip
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&broker)
        {
            return (Committed::new(), 0);
        }
        let mut out = Committed::new();
        let mut requests = 0;
        match self.fetch_on(coordinator, &mut out, &mut requests).await {
            Ok(()) => {}
            Err(e) => {
                tracing::info!(broker, error = %e, "multi-group OffsetFetch over krawl's own client failed; asking librdkafka for those groups");
                self.skip
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(broker);
            }
        }
        (out, requests)
    }

    async fn fetch_on(
        &self,
        coordinator: &Coordinator<'_>,
        out: &mut Committed,
        requests: &mut u64,
    ) -> Result<(), BrokerError> {
        let broker = coordinator.broker;
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&broker)
            .and_then(Vec::pop);
        let (mut conn, version) = match idle {
            Some(c) => c,
            None => {
                let (conn, versions) = self
                    .client
                    .open(broker, &coordinator.host, coordinator.port)
                    .await?;
                let Some(version) = versions.pick(
                    ApiKey::OffsetFetch as i16,
                    OFFSET_FETCH_MIN,
                    OFFSET_FETCH_MAX,
                ) else {
                    return Err(BrokerError::Unsupported(format!(
                        "broker {broker} does not offer OffsetFetch v{OFFSET_FETCH_MIN} (many groups a request)"
                    )));
                };
                (conn, version)
            }
        };
        conn.pipeline(
            version,
            PIPELINE_DEPTH,
            coordinator.groups.chunks(GROUPS_PER_REQUEST),
            |batch| {
                *requests += 1;
                request(batch)
            },
            |conn, body, batch| {
                let response =
                    OffsetFetchResponse::parse(body, version).map_err(|e| conn.decode_error(e))?;
                let mut visitor = Collect {
                    asked: batch,
                    current: None,
                    out: &mut *out,
                };
                response
                    .visit(&mut visitor)
                    .map_err(|e| conn.decode_error(e))?;
                Ok(Next::More)
            },
        )
        .await?;
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(broker)
            .or_default()
            .push((conn, version));
        Ok(())
    }
}

/// One request for `groups`, each with all its committed offsets (topics
/// null); `require_stable` off, as librdkafka's default.
fn request(groups: &[&str]) -> OffsetFetchRequest {
    OffsetFetchRequest::default().with_groups(
        groups
            .iter()
            .map(|g| {
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string((*g).to_string())))
                    .with_member_epoch(-1)
                    .with_topics(None)
            })
            .collect(),
    )
}

/// Gathers one answer: a group is kept only if it was asked, has no error
/// code and no partition error.
struct Collect<'a, 'b> {
    asked: &'a [&'a str],
    /// The group being read and its offsets (`None` once it is disqualified).
    current: Option<(String, Option<Vec<CommittedOffset>>)>,
    out: &'b mut Committed,
}

impl Collect<'_, '_> {
    fn end_group(&mut self, ok: bool) {
        if let Some((group, Some(offsets))) = self.current.take() {
            if ok {
                self.out.insert(group, offsets);
            }
        }
    }
}

impl OffsetFetchVisitor for Collect<'_, '_> {
    fn group(&mut self, group_id: &str) {
        self.end_group(false);
        let asked = self.asked.contains(&group_id) && !self.out.contains_key(group_id);
        self.current = Some((group_id.to_string(), asked.then(Vec::new)));
    }

    fn partition(&mut self, p: CommittedPartition<'_>) {
        let Some((_, slot)) = &mut self.current else {
            return;
        };
        if p.error_code != 0 {
            *slot = None;
            return;
        }
        if let Some(offsets) = slot {
            offsets.push(CommittedOffset {
                topic: p.topic.to_string(),
                partition: p.partition_index,
                offset: (p.committed_offset >= 0).then_some(p.committed_offset),
                error: None,
            });
        }
    }

    fn group_error(&mut self, error_code: i16) {
        self.end_group(error_code == 0);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::test_broker::{noida, plaintext, seed, NOIDA_NODE_ID};
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    /// An answer keeps only groups that were asked, without a group error
    /// and without a partition error.
    #[test]
    fn only_clean_answers_to_asked_groups_count() {
        let mut out = Committed::new();
        let mut v = Collect {
            asked: &["a", "b", "c"],
            current: None,
            out: &mut out,
        };
        let p = |topic, partition_index, committed_offset, error_code| CommittedPartition {
            topic,
            partition_index,
            committed_offset,
            error_code,
        };
        v.group("a");
        v.partition(p("t", 0, 5, 0));
        v.partition(p("t", 1, -1, 0));
        v.group_error(0);
        v.group("intruder"); // not asked
        v.partition(p("t", 0, 9, 0));
        v.group_error(0);
        v.group("b"); // a partition error
        v.partition(p("t", 0, 9, 14));
        v.group_error(0);
        v.group("c"); // a group error
        v.group_error(30);
        v.group("a"); // answered twice: the first answer stands
        v.group_error(0);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out["a"],
            vec![
                CommittedOffset {
                    topic: "t".into(),
                    partition: 0,
                    offset: Some(5),
                    error: None
                },
                CommittedOffset {
                    topic: "t".into(),
                    partition: 1,
                    offset: None,
                    error: None
                },
            ]
        );
    }

    /// Three groups with committed offsets (and one without) from a real
    /// broker, in one request, on a connection kept for the next call.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committed_offsets_of_many_groups_from_noida() {
        let n = noida();
        seed(n.port, "read", &[3, 3]).await;
        for (i, group) in ["g1", "g2", "g3"].iter().enumerate() {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", format!("127.0.0.1:{}", n.port))
                .set("group.id", *group)
                .set("enable.auto.commit", "false")
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset("read", 0, Offset::Offset(i as i64 + 1))
                .unwrap();
            tpl.add_partition_offset("read", 1, Offset::Offset(2))
                .unwrap();
            consumer.commit(&tpl, CommitMode::Sync).unwrap();
        }
        let settings = plaintext();
        let client = BrokerClient::new(&settings).unwrap();
        let pool = CoordinatorPool::new(&client);
        let coordinator = Coordinator {
            broker: NOIDA_NODE_ID,
            host: "127.0.0.1".into(),
            port: n.port,
            groups: vec!["g1", "g2", "g3", "never-committed"],
        };
        let (got, requests) = pool.fetch(&coordinator).await;
        assert_eq!(requests, 1, "four groups, one request");
        for (i, group) in ["g1", "g2", "g3"].iter().enumerate() {
            let mut offsets: Vec<(String, i32, Option<i64>)> = got[*group]
                .iter()
                .map(|c| (c.topic.clone(), c.partition, c.offset))
                .collect();
            offsets.sort();
            assert_eq!(
                offsets,
                vec![
                    ("read".to_string(), 0, Some(i as i64 + 1)),
                    ("read".to_string(), 1, Some(2))
                ],
                "{group}"
            );
        }
        assert!(
            got.get("never-committed").is_none_or(Vec::is_empty),
            "{got:?}"
        );
        // The connection was kept: a second call opens none.
        assert_eq!(pool.idle.lock().unwrap()[&NOIDA_NODE_ID].len(), 1);
        let (again, _) = pool.fetch(&coordinator).await;
        assert_eq!(again.len(), got.len());
    }
}
