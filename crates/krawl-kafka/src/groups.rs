//! Consumer groups many per request, over krawl's own client: ListGroups to
//! every broker (each lists the groups it coordinates, so no FindCoordinator
//! is needed), DescribeGroups with many groups per request to each
//! coordinator, and their committed offsets many groups per OffsetFetch
//! (v8–v9, KIP-709).
//!
//! # Why
//!
//! librdkafka's DescribeConsumerGroups and ListConsumerGroupOffsets ask one
//! group per request, each after a FindCoordinator (and, from librdkafka 2.10,
//! a ConsumerGroupDescribe that a classic group answers with
//! GROUP_ID_NOT_FOUND first). On a network with 20 ms of round trip, 2,500
//! groups cost about 120 dependent round trips that way. Here a coordinator
//! answers [`GROUPS_PER_REQUEST`] groups per request, [`REQUESTS_IN_FLIGHT`]
//! requests at a time.
//!
//! # Same answers as librdkafka
//!
//! What is built here is what `admin_ext` builds from librdkafka's results:
//! the listing keeps only consumer groups (protocol type `consumer`) and
//! simple groups (none), as librdkafka does; state names are librdkafka's
//! (matched without case, `Unknown` otherwise); a member's assignment is read
//! as librdkafka reads it (version, then topics and partitions); the
//! coordinator is the broker as Metadata named it, without a rack.
//!
//! # Fallback
//!
//! Whatever this module does not answer cleanly is left to librdkafka, which
//! reports errors in krawl's usual terms:
//! - the listing, when any broker fails, refuses or answers with an error code
//!   (librdkafka then lists all groups and names the broker that failed);
//! - a group of type `consumer` (KIP-848: described with
//!   ConsumerGroupDescribe), a group with an error code (e.g.
//!   NOT_COORDINATOR after a coordinator moved, GROUP_AUTHORIZATION_FAILED),
//!   a group whose protocol type is neither, a member assignment that does not
//!   decode, and a group an answer leaves out;
//! - committed offsets from a coordinator without OffsetFetch v8 (Kafka before
//!   3.0), with a group or partition error code, or left out.
//!
//! A coordinator that fails (connection, protocol, version) is not asked
//! again for that API in this phase. An answer counts only for groups its
//! request named. Connections are kept for the groups phase and reused across
//! its batches.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use futures::stream::{self, StreamExt, TryStreamExt};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;
use krawl_wire::{
    ApiVersionsResponse, CommittedPartition, ConsumerProtocolAssignment, DescribeGroupsResponse,
    DescribeGroupsVisitor, DescribedGroup, DescribedMember, ListGroupsResponse, ListGroupsVisitor,
    ListedGroup, OffsetFetchResponse, OffsetFetchVisitor,
};

use crate::admin_ext::{CommittedOffset, GroupDescription, GroupListing, MemberDescription, Node};
use crate::broker_client::{
    version_of, BrokerClient, BrokerError, Call, Conn, Next, MAX_CONCURRENT_BROKERS,
};

/// Groups per DescribeGroups and per OffsetFetch request.
pub const GROUPS_PER_REQUEST: usize = 50;
/// Requests in flight on one coordinator connection.
pub const REQUESTS_IN_FLIGHT: usize = 16;
/// Groups one broker may list: a hostile answer of 100 MB could otherwise
/// name 25 million groups and cost gigabytes as listings.
pub const MAX_GROUPS_PER_BROKER: usize = 1_000_000;
/// Members, assigned partitions and committed offsets one coordinator's
/// answers may hold per call (about 100 bytes each once built): a hostile
/// answer of 100 MB could otherwise name 25 million of them. Past it the call
/// fails and librdkafka, one group at a time, asks for the rest.
pub const MAX_ENTRIES_PER_CALL: usize = 500_000;
const LIST_GROUPS: (i16, i16) = (0, 5);
const DESCRIBE_GROUPS: (i16, i16) = (0, 6);
const OFFSET_FETCH: (i16, i16) = (8, 9);

/// librdkafka's consumer group state names (`rd_kafka_consumer_group_state_name`).
const STATES: [&str; 6] = [
    "Unknown",
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
    "Empty",
];

/// A broker's state name as librdkafka names it.
fn state_name(state: &str) -> &'static str {
    STATES
        .iter()
        .find(|s| s.eq_ignore_ascii_case(state))
        .copied()
        .unwrap_or("Unknown")
}

/// A broker's group type as librdkafka names it (`None`: unknown, e.g. `share`).
fn type_name(group_type: &str) -> Option<&'static str> {
    ["Consumer", "Classic"]
        .into_iter()
        .find(|t| t.eq_ignore_ascii_case(group_type))
}

/// Groups whose coordinator is one broker.
#[derive(Debug)]
pub struct Coordinator<'g> {
    pub broker: i32,
    pub host: String,
    pub port: u16,
    pub groups: Vec<&'g str>,
}

/// A group as its coordinator listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub listing: GroupListing,
    /// The broker that listed it: its coordinator.
    pub coordinator: i32,
}

/// What is left of [`MAX_ENTRIES_PER_CALL`] for one call.
#[derive(Debug)]
struct Budget {
    left: usize,
    exceeded: bool,
}

impl Budget {
    fn new() -> Self {
        Self {
            left: MAX_ENTRIES_PER_CALL,
            exceeded: false,
        }
    }

    /// Takes `n` entries; false (and marked exceeded) when there are not that many left.
    fn take(&mut self, n: usize) -> bool {
        match self.left.checked_sub(n) {
            Some(left) if !self.exceeded => {
                self.left = left;
                true
            }
            _ => {
                self.exceeded = true;
                false
            }
        }
    }

    /// An error once the budget ran out.
    fn check(&self, conn: &Conn, api: &str) -> Result<(), BrokerError> {
        if self.exceeded {
            return Err(conn.protocol(format!(
                "{api} answers hold more than {MAX_ENTRIES_PER_CALL} members, assigned partitions or committed offsets"
            )));
        }
        Ok(())
    }
}

/// Committed offsets by group id, for the groups answered cleanly.
pub type Committed = HashMap<String, Vec<CommittedOffset>>;
/// Descriptions by group id, for the groups answered cleanly.
pub type Described = HashMap<String, GroupDescription>;

/// The groups phase's calls to brokers, on connections the client keeps
/// between calls ([`BrokerClient::checkout`]).
pub struct CoordinatorPool<'c> {
    client: &'c BrokerClient<'c>,
    /// (broker, API key) pairs that failed: not asked again.
    skip: Mutex<HashSet<(i32, i16)>>,
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
            skip: Mutex::new(HashSet::new()),
        }
    }

    /// Every consumer group, from ListGroups to each of `brokers`, with the
    /// broker that listed it. An error when any broker fails or answers with
    /// an error code: the caller then lists with librdkafka.
    pub async fn list(&self, brokers: &[(i32, String, u16)]) -> Result<Vec<Listed>, BrokerError> {
        // Built up front: a stream that keeps the closure is not `Send` for
        // every lifetime (rust-lang/rust#102211).
        let calls: Vec<_> = brokers
            .iter()
            .map(|(broker, host, port)| self.list_on(*broker, host, *port))
            .collect();
        let per_broker: Vec<Vec<Listed>> = stream::iter(calls)
            .buffer_unordered(MAX_CONCURRENT_BROKERS)
            .try_collect()
            .await?;
        Ok(per_broker.into_iter().flatten().collect())
    }

    async fn list_on(
        &self,
        broker: i32,
        host: &str,
        port: u16,
    ) -> Result<Vec<Listed>, BrokerError> {
        let api = ApiKey::ListGroups;
        let (mut conn, versions) = self.client.checkout(broker, host, port).await?;
        let version = version_of(
            &versions,
            format_args!("broker {broker}"),
            api,
            LIST_GROUPS.0,
            LIST_GROUPS.1,
        )?;
        let body = conn.call(&ListGroupsRequest::default(), version).await?;
        let response =
            ListGroupsResponse::parse(&body, version).map_err(|e| conn.decode_error(e))?;
        if response.error_code != 0 {
            return Err(conn.protocol(format!(
                "ListGroups answered with error code {}",
                response.error_code
            )));
        }
        let mut listed = ListAll {
            coordinator: broker,
            out: Vec::new(),
            too_many: false,
        };
        response
            .visit(&mut listed)
            .map_err(|e| conn.decode_error(e))?;
        if listed.too_many {
            return Err(conn.protocol(format!(
                "ListGroups lists more than {MAX_GROUPS_PER_BROKER} groups"
            )));
        }
        self.client.checkin(host, port, conn, versions);
        Ok(listed.out)
    }

    /// The descriptions of `coordinator`'s groups that it answered cleanly
    /// (see the module doc), and the number of requests sent.
    pub async fn describe(&self, coordinator: &Coordinator<'_>) -> (Described, u64) {
        let mut out = Described::new();
        let node = Node {
            id: coordinator.broker,
            host: coordinator.host.clone(),
            port: coordinator.port,
            rack: None,
        };
        let mut budget = Budget::new();
        let requests = self
            .each_request(
                coordinator,
                ApiKey::DescribeGroups,
                DESCRIBE_GROUPS,
                describe_request,
                |conn, body, batch, version| {
                    let response = DescribeGroupsResponse::parse(body, version)
                        .map_err(|e| conn.decode_error(e))?;
                    let mut visitor = Describe {
                        asked: batch,
                        node: &node,
                        current: None,
                        out: &mut out,
                        budget: &mut budget,
                    };
                    response
                        .visit(&mut visitor)
                        .map_err(|e| conn.decode_error(e))?;
                    visitor.end_group();
                    budget.check(conn, "DescribeGroups")
                },
            )
            .await;
        (out, requests)
    }

    /// The committed offsets of `coordinator`'s groups that it answered
    /// cleanly, and the number of requests sent.
    pub async fn fetch(&self, coordinator: &Coordinator<'_>) -> (Committed, u64) {
        let mut out = Committed::new();
        let mut budget = Budget::new();
        let requests = self
            .each_request(
                coordinator,
                ApiKey::OffsetFetch,
                OFFSET_FETCH,
                fetch_request,
                |conn, body, batch, version| {
                    let response = OffsetFetchResponse::parse(body, version)
                        .map_err(|e| conn.decode_error(e))?;
                    let mut visitor = Collect {
                        asked: batch,
                        current: None,
                        out: &mut out,
                        budget: &mut budget,
                    };
                    response
                        .visit(&mut visitor)
                        .map_err(|e| conn.decode_error(e))?;
                    budget.check(conn, "OffsetFetch")
                },
            )
            .await;
        (out, requests)
    }

    /// Asks `coordinator` about its groups [`GROUPS_PER_REQUEST`] at a time,
    /// [`REQUESTS_IN_FLIGHT`] requests in flight, and hands each answer to
    /// `answer` with the groups its request named; returns the number of
    /// requests sent. On a failure the coordinator is not asked `api` again
    /// in this phase, and what was not answered is left to librdkafka.
    async fn each_request<R, B, A>(
        &self,
        coordinator: &Coordinator<'_>,
        api: ApiKey,
        range: (i16, i16),
        build: B,
        mut answer: A,
    ) -> u64
    where
        R: Call + Send + Sync,
        B: Fn(&[&str]) -> R,
        A: FnMut(&Conn, &[u8], &[&str], i16) -> Result<(), BrokerError>,
    {
        let mut requests = 0;
        let result = async {
            let Some((mut conn, versions, version)) =
                self.checkout_for(coordinator, api, range).await?
            else {
                return Ok(());
            };
            conn.pipeline(
                version,
                REQUESTS_IN_FLIGHT,
                coordinator.groups.chunks(GROUPS_PER_REQUEST),
                |batch| {
                    requests += 1;
                    build(batch)
                },
                |conn, body, batch| {
                    answer(conn, body, batch, version)?;
                    Ok(Next::More)
                },
            )
            .await?;
            self.client
                .checkin(&coordinator.host, coordinator.port, conn, versions);
            Ok::<(), BrokerError>(())
        }
        .await;
        if let Err(e) = result {
            self.give_up(coordinator.broker, api, &e);
        }
        requests
    }

    /// A connection to `coordinator` and the version of `api` to speak on it
    /// (the highest in `range`); `None` when that pair failed before.
    async fn checkout_for(
        &self,
        coordinator: &Coordinator<'_>,
        api: ApiKey,
        range: (i16, i16),
    ) -> Result<Option<(Conn, ApiVersionsResponse, i16)>, BrokerError> {
        let broker = coordinator.broker;
        if self
            .skip
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(broker, api as i16))
        {
            return Ok(None);
        }
        let (conn, versions) = self
            .client
            .checkout(broker, &coordinator.host, coordinator.port)
            .await?;
        let version = version_of(
            &versions,
            format_args!("broker {broker}"),
            api,
            range.0,
            range.1,
        )?;
        Ok(Some((conn, versions, version)))
    }

    fn give_up(&self, broker: i32, api: ApiKey, e: &BrokerError) {
        let api_name = crate::api_keys::api_name(api as i16);
        tracing::info!(broker, api = api_name, error = %e, "many groups per request over krawl's own client failed; asking librdkafka for those groups");
        self.skip
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((broker, api as i16));
    }
}

/// One DescribeGroups request for `groups` (authorized operations not asked).
fn describe_request(groups: &[&str]) -> DescribeGroupsRequest {
    DescribeGroupsRequest::default().with_groups(
        groups
            .iter()
            .map(|g| GroupId(StrBytes::from_string((*g).to_string())))
            .collect(),
    )
}

/// Gathers one ListGroups answer: consumer and simple groups, as librdkafka,
/// at most [`MAX_GROUPS_PER_BROKER`].
struct ListAll {
    coordinator: i32,
    out: Vec<Listed>,
    too_many: bool,
}

impl ListGroupsVisitor for ListAll {
    fn group(&mut self, g: ListedGroup<'_>) {
        if self.out.len() >= MAX_GROUPS_PER_BROKER {
            self.too_many = true;
            return;
        }
        let is_simple = g.protocol_type.is_empty();
        if !is_simple && g.protocol_type != "consumer" {
            return;
        }
        self.out.push(Listed {
            listing: GroupListing {
                group_id: g.group_id.to_string(),
                is_simple,
                state: g.group_state.map_or("Unknown", state_name).to_string(),
                group_type: g.group_type.and_then(type_name).map(str::to_string),
            },
            coordinator: self.coordinator,
        });
    }
}

/// Gathers one DescribeGroups answer: a group is kept only if it was asked,
/// has no error code, is a consumer or simple group and every member's
/// assignment decodes.
struct Describe<'a, 'b> {
    asked: &'a [&'a str],
    node: &'a Node,
    /// The group being read (`None` once it is disqualified).
    current: Option<GroupDescription>,
    out: &'b mut Described,
    budget: &'b mut Budget,
}

impl Describe<'_, '_> {
    fn end_group(&mut self) {
        if let Some(d) = self.current.take() {
            self.out.entry(d.group_id.clone()).or_insert(d);
        }
    }
}

impl DescribeGroupsVisitor for Describe<'_, '_> {
    fn group(&mut self, g: DescribedGroup<'_>) {
        self.end_group();
        let is_simple = g.protocol_type.is_empty();
        let clean = g.error_code == 0 && (is_simple || g.protocol_type == "consumer");
        if !clean || !self.asked.contains(&g.group_id) {
            return;
        }
        self.current = Some(GroupDescription {
            group_id: g.group_id.to_string(),
            error: None,
            is_simple,
            partition_assignor: Some(g.protocol_data.to_string()).filter(|s| !s.is_empty()),
            state: state_name(g.group_state).to_string(),
            group_type: Some("Classic".to_string()),
            coordinator: Some(self.node.clone()),
            members: Vec::new(),
        });
    }

    fn member(&mut self, m: DescribedMember<'_>) {
        if self.current.is_none() {
            return;
        }
        let mut assignment = Vec::new();
        if !m.member_assignment.is_empty() {
            let Ok(a) = ConsumerProtocolAssignment::parse(m.member_assignment) else {
                // librdkafka decides (and reports) this group.
                self.current = None;
                return;
            };
            if !self.budget.take(a.topics().map(|(_, p)| p.len()).sum()) {
                self.current = None;
                return;
            }
            for (topic, partitions) in a.topics() {
                assignment.extend(partitions.iter().map(|p| (topic.to_string(), p)));
            }
        }
        if !self.budget.take(1) {
            self.current = None;
            return;
        }
        let Some(d) = &mut self.current else { return };
        d.members.push(MemberDescription {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            group_instance_id: m
                .group_instance_id
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            assignment,
        });
    }
}

/// One request for `groups`, each with all its committed offsets (topics
/// null); `require_stable` off, as librdkafka's default.
fn fetch_request(groups: &[&str]) -> OffsetFetchRequest {
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
    budget: &'b mut Budget,
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
        if p.error_code != 0 || !self.budget.take(1) {
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
    use crate::admin_ext;
    use crate::test_broker::{noida, plaintext, seed, NOIDA_NODE_ID};
    use rdkafka::admin::AdminClient;
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn commit(port: u16, group: &str, offsets: &[(&str, i32, i64)]) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", format!("127.0.0.1:{port}"))
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, offset) in offsets {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .unwrap();
        }
        consumer.commit(&tpl, CommitMode::Sync).unwrap();
    }

    /// A consumer in `group` subscribed to `topic`, polling in a thread until
    /// dropped; returns once it has an assignment.
    struct Member {
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Member {
        fn join(port: u16, group: &str, topic: &str) -> Self {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", format!("127.0.0.1:{port}"))
                .set("group.id", group)
                .set("client.id", "member-client")
                .set("group.instance.id", "static-1")
                .set("enable.auto.commit", "false")
                .create()
                .unwrap();
            consumer.subscribe(&[topic]).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let (tx, rx) = std::sync::mpsc::channel();
            let flag = stop.clone();
            let thread = std::thread::spawn(move || {
                let mut sent = false;
                while !flag.load(Ordering::SeqCst) {
                    let _ = consumer.poll(Duration::from_millis(50));
                    if !sent && consumer.assignment().is_ok_and(|a| a.count() > 0) {
                        sent = tx.send(()).is_ok();
                    }
                }
                consumer.unsubscribe();
            });
            rx.recv_timeout(Duration::from_secs(30))
                .expect("the member got an assignment");
            Self {
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for Member {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// librdkafka is the judge: on a real broker, with simple groups and a
    /// live consumer group (a member with an assignment and a static id),
    /// the listing and the descriptions built here equal what librdkafka's
    /// ListConsumerGroups and DescribeConsumerGroups give, in fewer requests.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listing_and_descriptions_equal_librdkafka_s() {
        let n = noida();
        seed(n.port, "read", &[3, 3]).await;
        commit(n.port, "simple-1", &[("read", 0, 1)]);
        commit(n.port, "simple-2", &[("read", 1, 2)]);
        let _member = Member::join(n.port, "live", "read");
        let admin: Arc<AdminClient<DefaultClientContext>> = Arc::new(
            ClientConfig::new()
                .set("bootstrap.servers", format!("127.0.0.1:{}", n.port))
                .create()
                .unwrap(),
        );
        let timeout = Duration::from_secs(10);
        let settings = plaintext();
        let client = BrokerClient::new(&settings).unwrap();
        let pool = CoordinatorPool::new(&client);

        // The live group reaches Stable a little after the assignment.
        let deadline = Instant::now() + Duration::from_secs(20);
        let (theirs, ours) = loop {
            let (mut theirs, errors) = admin_ext::list_consumer_groups(&admin, timeout)
                .await
                .unwrap();
            assert!(errors.is_empty(), "{errors:?}");
            theirs.sort_by(|a, b| a.group_id.cmp(&b.group_id));
            let mut ours = pool
                .list(&[(NOIDA_NODE_ID, "127.0.0.1".into(), n.port)])
                .await
                .unwrap();
            ours.sort_by(|a, b| a.listing.group_id.cmp(&b.listing.group_id));
            let stable = |l: &[GroupListing]| {
                l.iter()
                    .any(|g| g.group_id == "live" && g.state == "Stable")
            };
            let ours_listings: Vec<GroupListing> = ours.iter().map(|l| l.listing.clone()).collect();
            if (stable(&theirs) && stable(&ours_listings)) || Instant::now() > deadline {
                break (theirs, ours);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(
            ours.iter().map(|l| &l.listing).collect::<Vec<_>>(),
            theirs.iter().collect::<Vec<_>>()
        );
        assert!(ours.iter().all(|l| l.coordinator == NOIDA_NODE_ID));
        assert_eq!(ours.len(), 3, "{ours:?}");

        let ids: Vec<String> = ["live", "simple-1", "simple-2", "no-such-group"]
            .map(String::from)
            .to_vec();
        let theirs = admin_ext::describe_consumer_groups(&admin, &ids, timeout)
            .await
            .unwrap();
        let node = theirs[0].coordinator.clone().expect("a coordinator");
        let coordinator = Coordinator {
            broker: node.id,
            host: node.host.clone(),
            port: node.port,
            groups: ids.iter().map(String::as_str).collect(),
        };
        let (ours, requests) = pool.describe(&coordinator).await;
        assert_eq!(requests, 1, "four groups, one request");
        let live = &ours["live"];
        assert_eq!(live.members.len(), 1, "{live:?}");
        assert_eq!(
            live.members[0].group_instance_id.as_deref(),
            Some("static-1")
        );
        assert_eq!(live.members[0].client_id, "member-client");
        assert!(!live.members[0].assignment.is_empty(), "{live:?}");
        for d in &theirs {
            match ours.get(&d.group_id) {
                Some(mine) => assert_eq!(mine, d),
                // Left to librdkafka: only a group it reports with an error.
                None => assert!(
                    d.error.is_some() || d.state == "Dead",
                    "{d:?} was not described here"
                ),
            }
        }
        assert!(ours.contains_key("simple-1") && ours.contains_key("simple-2"));
    }

    /// An answer keeps only groups that were asked, without a group error
    /// and without a partition error.
    #[test]
    fn only_clean_answers_to_asked_groups_count() {
        let mut out = Committed::new();
        let mut budget = Budget::new();
        let mut v = Collect {
            asked: &["a", "b", "c"],
            current: None,
            out: &mut out,
            budget: &mut budget,
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

    /// A hostile coordinator cannot make a call build without bound: past
    /// the budget the group being read is dropped and the call fails.
    #[test]
    fn answers_past_the_budget_are_refused() {
        let mut out = Committed::new();
        let mut budget = Budget::new();
        budget.left = 2;
        let mut v = Collect {
            asked: &["a", "b"],
            current: None,
            out: &mut out,
            budget: &mut budget,
        };
        let p = |partition_index| CommittedPartition {
            topic: "t",
            partition_index,
            committed_offset: 1,
            error_code: 0,
        };
        v.group("a");
        v.partition(p(0));
        v.group_error(0);
        v.group("b");
        v.partition(p(0));
        v.partition(p(1));
        v.group_error(0);
        assert_eq!(out.keys().collect::<Vec<_>>(), vec!["a"]);
        assert!(budget.exceeded);
        assert!(!budget.take(0), "once exceeded, always exceeded");
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
        let (conn, versions) = client
            .idle_conn(NOIDA_NODE_ID, "127.0.0.1", n.port)
            .expect("the connection was kept");
        client.checkin("127.0.0.1", n.port, conn, versions);
        let (again, _) = pool.fetch(&coordinator).await;
        assert_eq!(again.len(), got.len());
    }
}
