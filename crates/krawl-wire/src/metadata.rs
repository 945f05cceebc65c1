//! MetadataResponse v1–v12, ListOffsetsResponse v1–v10 and OffsetFetchResponse v8–v9, by
//! Kafka's published schemas (`MetadataResponse.json`, `ListOffsetsResponse.json`,
//! `OffsetFetchResponse.json`): the answers that grow with the cluster when krawl indexes it and
//! reads its offsets and its groups' committed offsets.
//!
//! Like DescribeLogDirs, each is checked whole by `parse` (every count, length, string and the
//! end) and then walked by a visitor, never built: a Metadata answer for 100,000 topics is 12 MB
//! on the wire and would be several times that as a tree of `Vec`s and `String`s (librdkafka's
//! copy of it was 48 MB, its cache another 58 MB), while the caller's own index is all that
//! grows here. Replica and ISR lists are handed out as checked slices of the body ([`I32s`]).

use crate::error::WireError;
use crate::messages::{body_reader, Message};
use crate::reader::Reader;

type Result<T> = std::result::Result<T, WireError>;

/// A checked array of big-endian `i32`s, borrowed from the body (broker ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct I32s<'a>(&'a [u8]);

impl<'a> I32s<'a> {
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = i32> + 'a {
        self.0
            .chunks_exact(4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

pub(crate) fn i32s<'a>(
    r: &mut Reader<'a>,
    field: &'static str,
    flexible: bool,
) -> Result<I32s<'a>> {
    let n = r.array_len(field, flexible, 4)?;
    // n × 4 fits: array_len checked it against the bytes left.
    Ok(I32s(r.take(n * 4, field)?))
}

// ------------------------------------------------------------------------------------------------
// Metadata
// ------------------------------------------------------------------------------------------------

/// A broker, as [`MetadataVisitor::broker`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataBroker<'a> {
    pub node_id: i32,
    pub host: &'a str,
    pub port: i32,
    pub rack: Option<&'a str>,
}

/// A topic; its partitions follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataTopic<'a> {
    pub error_code: i16,
    pub name: &'a str,
    pub is_internal: bool,
}

/// A partition of the topic announced last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataPartition<'a> {
    pub error_code: i16,
    pub partition_index: i32,
    pub leader_id: i32,
    pub replicas: I32s<'a>,
    pub isr: I32s<'a>,
}

/// Receives a Metadata response piece by piece, in wire order: the brokers, the cluster, then
/// each topic followed by its partitions.
pub trait MetadataVisitor {
    fn broker(&mut self, broker: MetadataBroker<'_>);
    /// After the brokers: the cluster id (from v2) and the controller.
    fn cluster(&mut self, cluster_id: Option<&str>, controller_id: i32);
    fn topic(&mut self, topic: MetadataTopic<'_>);
    fn partition(&mut self, partition: MetadataPartition<'_>);
}

struct CheckMetadata;

impl MetadataVisitor for CheckMetadata {
    fn broker(&mut self, _: MetadataBroker<'_>) {}
    fn cluster(&mut self, _: Option<&str>, _: i32) {}
    fn topic(&mut self, _: MetadataTopic<'_>) {}
    fn partition(&mut self, _: MetadataPartition<'_>) {}
}

/// MetadataResponse v1–v12 (flexible from v9; topic ids from v10), checked whole by
/// [`Self::parse`] and walked by [`Self::visit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataResponse<'a> {
    /// 0 before v3.
    pub throttle_time_ms: i32,
    body: &'a [u8],
    version: i16,
}

impl Message for MetadataResponse<'_> {
    const NAME: &'static str = "Metadata";
    const API_KEY: i16 = 3;
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 12;
    fn header_version(version: i16) -> i16 {
        i16::from(version >= 9)
    }
}

impl<'a> MetadataResponse<'a> {
    pub fn parse(body: &'a [u8], version: i16) -> Result<Self> {
        let throttle_time_ms = walk_metadata(body, version, &mut CheckMetadata)?;
        Ok(Self {
            throttle_time_ms,
            body,
            version,
        })
    }

    /// Hands each broker, the cluster, each topic and partition to `visitor`. The response was
    /// checked by [`Self::parse`]: the visitor never sees part of a response that is refused.
    pub fn visit<V: MetadataVisitor + ?Sized>(&self, visitor: &mut V) -> Result<()> {
        walk_metadata(self.body, self.version, visitor).map(|_| ())
    }
}

fn walk_metadata<V: MetadataVisitor + ?Sized>(
    body: &[u8],
    version: i16,
    visitor: &mut V,
) -> Result<i32> {
    let mut r = body_reader::<MetadataResponse<'_>>(body, version)?;
    let flexible = version >= 9;
    let (tags, str_len, arr_len) = if flexible { (1, 1, 1) } else { (0, 2, 4) };
    let min_broker = 4 + str_len + 4 + str_len + tags;
    let min_partition = 2
        + 4
        + 4
        + if version >= 7 { 4 } else { 0 }
        + 2 * arr_len
        + if version >= 5 { arr_len } else { 0 }
        + tags;
    let min_topic = 2
        + str_len
        + if version >= 10 { 16 } else { 0 }
        + 1
        + arr_len
        + if version >= 8 { 4 } else { 0 }
        + tags;

    let throttle_time_ms = if version >= 3 {
        r.i32("throttle_time_ms")?
    } else {
        0
    };
    let brokers = r.array_len("brokers", flexible, min_broker)?;
    for _ in 0..brokers {
        let node_id = r.i32("brokers.node_id")?;
        let host = r.string("brokers.host", flexible)?;
        let port = r.i32("brokers.port")?;
        let rack = r.nullable_string("brokers.rack", flexible)?;
        if flexible {
            r.skip_tagged_fields("brokers._tagged_fields")?;
        }
        visitor.broker(MetadataBroker {
            node_id,
            host,
            port,
            rack,
        });
    }
    let cluster_id = if version >= 2 {
        r.nullable_string("cluster_id", flexible)?
    } else {
        None
    };
    let controller_id = r.i32("controller_id")?;
    visitor.cluster(cluster_id, controller_id);
    let topics = r.array_len("topics", flexible, min_topic)?;
    for _ in 0..topics {
        let error_code = r.i16("topics.error_code")?;
        let name = r.string("topics.name", flexible)?;
        if version >= 10 {
            r.take(16, "topics.topic_id")?;
        }
        let is_internal = r.bool("topics.is_internal")?;
        visitor.topic(MetadataTopic {
            error_code,
            name,
            is_internal,
        });
        let partitions = r.array_len("topics.partitions", flexible, min_partition)?;
        for _ in 0..partitions {
            let error_code = r.i16("topics.partitions.error_code")?;
            let partition_index = r.i32("topics.partitions.partition_index")?;
            let leader_id = r.i32("topics.partitions.leader_id")?;
            if version >= 7 {
                r.i32("topics.partitions.leader_epoch")?;
            }
            let replicas = i32s(&mut r, "topics.partitions.replica_nodes", flexible)?;
            let isr = i32s(&mut r, "topics.partitions.isr_nodes", flexible)?;
            if version >= 5 {
                i32s(&mut r, "topics.partitions.offline_replicas", flexible)?;
            }
            if flexible {
                r.skip_tagged_fields("topics.partitions._tagged_fields")?;
            }
            visitor.partition(MetadataPartition {
                error_code,
                partition_index,
                leader_id,
                replicas,
                isr,
            });
        }
        if version >= 8 {
            r.i32("topics.topic_authorized_operations")?;
        }
        if flexible {
            r.skip_tagged_fields("topics._tagged_fields")?;
        }
    }
    if (8..=10).contains(&version) {
        r.i32("cluster_authorized_operations")?;
    }
    if flexible {
        r.skip_tagged_fields("_tagged_fields")?;
    }
    r.finish()?;
    Ok(throttle_time_ms)
}

// ------------------------------------------------------------------------------------------------
// ListOffsets
// ------------------------------------------------------------------------------------------------

/// One partition's answer, as [`ListOffsetsVisitor::partition`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOffsetsPartition<'a> {
    pub topic: &'a str,
    pub partition_index: i32,
    pub error_code: i16,
    pub timestamp: i64,
    pub offset: i64,
}

/// Receives a ListOffsets response one partition at a time, in wire order.
pub trait ListOffsetsVisitor {
    fn partition(&mut self, partition: ListOffsetsPartition<'_>);
}

struct CheckOffsets;

impl ListOffsetsVisitor for CheckOffsets {
    fn partition(&mut self, _: ListOffsetsPartition<'_>) {}
}

/// ListOffsetsResponse v1–v10 (flexible from v6; leader epoch from v4), checked whole by
/// [`Self::parse`] and walked by [`Self::visit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOffsetsResponse<'a> {
    /// 0 before v2.
    pub throttle_time_ms: i32,
    body: &'a [u8],
    version: i16,
}

impl Message for ListOffsetsResponse<'_> {
    const NAME: &'static str = "ListOffsets";
    const API_KEY: i16 = 2;
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 10;
    fn header_version(version: i16) -> i16 {
        i16::from(version >= 6)
    }
}

impl<'a> ListOffsetsResponse<'a> {
    pub fn parse(body: &'a [u8], version: i16) -> Result<Self> {
        let throttle_time_ms = walk_offsets(body, version, &mut CheckOffsets)?;
        Ok(Self {
            throttle_time_ms,
            body,
            version,
        })
    }

    /// Hands each partition to `visitor` (the response was checked by [`Self::parse`]).
    pub fn visit<V: ListOffsetsVisitor + ?Sized>(&self, visitor: &mut V) -> Result<()> {
        walk_offsets(self.body, self.version, visitor).map(|_| ())
    }
}

fn walk_offsets<V: ListOffsetsVisitor + ?Sized>(
    body: &[u8],
    version: i16,
    visitor: &mut V,
) -> Result<i32> {
    let mut r = body_reader::<ListOffsetsResponse<'_>>(body, version)?;
    let flexible = version >= 6;
    let (tags, str_len, arr_len) = if flexible { (1, 1, 1) } else { (0, 2, 4) };
    let min_partition = 4 + 2 + 8 + 8 + if version >= 4 { 4 } else { 0 } + tags;
    let min_topic = str_len + arr_len + tags;
    let throttle_time_ms = if version >= 2 {
        r.i32("throttle_time_ms")?
    } else {
        0
    };
    let topics = r.array_len("topics", flexible, min_topic)?;
    for _ in 0..topics {
        let topic = r.string("topics.name", flexible)?;
        let partitions = r.array_len("topics.partitions", flexible, min_partition)?;
        for _ in 0..partitions {
            let partition_index = r.i32("topics.partitions.partition_index")?;
            let error_code = r.i16("topics.partitions.error_code")?;
            let timestamp = r.i64("topics.partitions.timestamp")?;
            let offset = r.i64("topics.partitions.offset")?;
            if version >= 4 {
                r.i32("topics.partitions.leader_epoch")?;
            }
            if flexible {
                r.skip_tagged_fields("topics.partitions._tagged_fields")?;
            }
            visitor.partition(ListOffsetsPartition {
                topic,
                partition_index,
                error_code,
                timestamp,
                offset,
            });
        }
        if flexible {
            r.skip_tagged_fields("topics._tagged_fields")?;
        }
    }
    if flexible {
        r.skip_tagged_fields("_tagged_fields")?;
    }
    r.finish()?;
    Ok(throttle_time_ms)
}

// ------------------------------------------------------------------------------------------------
// OffsetFetch (multi-group)
// ------------------------------------------------------------------------------------------------

/// One committed offset, as [`OffsetFetchVisitor::partition`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedPartition<'a> {
    pub topic: &'a str,
    pub partition_index: i32,
    /// -1 when the group has no committed offset for the partition.
    pub committed_offset: i64,
    pub error_code: i16,
}

/// Receives a multi-group OffsetFetch response in wire order: each group's partitions, then
/// the group's own error code.
pub trait OffsetFetchVisitor {
    /// A group; its partitions follow.
    fn group(&mut self, group_id: &str);
    fn partition(&mut self, partition: CommittedPartition<'_>);
    /// After the group's partitions: its error code (0: none).
    fn group_error(&mut self, error_code: i16);
}

struct CheckOffsetFetch;

impl OffsetFetchVisitor for CheckOffsetFetch {
    fn group(&mut self, _: &str) {}
    fn partition(&mut self, _: CommittedPartition<'_>) {}
    fn group_error(&mut self, _: i16) {}
}

/// OffsetFetchResponse v8–v9, the versions that answer for many groups at once (KIP-709),
/// checked whole by [`Self::parse`] and walked by [`Self::visit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetFetchResponse<'a> {
    pub throttle_time_ms: i32,
    body: &'a [u8],
    version: i16,
}

impl Message for OffsetFetchResponse<'_> {
    const NAME: &'static str = "OffsetFetch";
    const API_KEY: i16 = 9;
    const MIN_VERSION: i16 = 8;
    const MAX_VERSION: i16 = 9;
    fn header_version(_version: i16) -> i16 {
        1
    }
}

impl<'a> OffsetFetchResponse<'a> {
    pub fn parse(body: &'a [u8], version: i16) -> Result<Self> {
        let throttle_time_ms = walk_offset_fetch(body, version, &mut CheckOffsetFetch)?;
        Ok(Self {
            throttle_time_ms,
            body,
            version,
        })
    }

    /// Hands each group and partition to `visitor` (the response was checked by [`Self::parse`]).
    pub fn visit<V: OffsetFetchVisitor + ?Sized>(&self, visitor: &mut V) -> Result<()> {
        walk_offset_fetch(self.body, self.version, visitor).map(|_| ())
    }
}

fn walk_offset_fetch<V: OffsetFetchVisitor + ?Sized>(
    body: &[u8],
    version: i16,
    visitor: &mut V,
) -> Result<i32> {
    let mut r = body_reader::<OffsetFetchResponse<'_>>(body, version)?;
    // Always flexible: compact strings and arrays, tagged fields at every level.
    let min_partition = 4 + 8 + 4 + 1 + 2 + 1;
    let min_topic = 1 + 1 + 1;
    let min_group = 1 + 1 + 2 + 1;
    let throttle_time_ms = r.i32("throttle_time_ms")?;
    let groups = r.array_len("groups", true, min_group)?;
    for _ in 0..groups {
        let group_id = r.string("groups.group_id", true)?;
        visitor.group(group_id);
        let topics = r.array_len("groups.topics", true, min_topic)?;
        for _ in 0..topics {
            let topic = r.string("groups.topics.name", true)?;
            let partitions = r.array_len("groups.topics.partitions", true, min_partition)?;
            for _ in 0..partitions {
                let partition_index = r.i32("groups.topics.partitions.partition_index")?;
                let committed_offset = r.i64("groups.topics.partitions.committed_offset")?;
                r.i32("groups.topics.partitions.committed_leader_epoch")?;
                r.nullable_string("groups.topics.partitions.metadata", true)?;
                let error_code = r.i16("groups.topics.partitions.error_code")?;
                r.skip_tagged_fields("groups.topics.partitions._tagged_fields")?;
                visitor.partition(CommittedPartition {
                    topic,
                    partition_index,
                    committed_offset,
                    error_code,
                });
            }
            r.skip_tagged_fields("groups.topics._tagged_fields")?;
        }
        let error_code = r.i16("groups.error_code")?;
        visitor.group_error(error_code);
        r.skip_tagged_fields("groups._tagged_fields")?;
    }
    r.skip_tagged_fields("_tagged_fields")?;
    r.finish()?;
    Ok(throttle_time_ms)
}
