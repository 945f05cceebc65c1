//! ListGroupsResponse v0–v5, DescribeGroupsResponse v0–v6 and the consumer protocol's member
//! assignment (ConsumerProtocolAssignment v0–v3), by Kafka's published schemas
//! (`ListGroupsResponse.json`, `DescribeGroupsResponse.json`,
//! `ConsumerProtocolAssignment.json`): what the extraction reads about consumer groups when it
//! asks many groups per request itself.
//!
//! Checked whole by `parse`, then walked by a visitor, like the other answers that grow with the
//! cluster (see [`crate::metadata`]). A member's assignment is handed out as the raw bytes the
//! broker sent; [`ConsumerProtocolAssignment`] checks and walks them in turn.

use crate::error::WireError;
use crate::messages::{body_reader, Message};
use crate::metadata::{i32s, I32s};
use crate::reader::Reader;
use crate::Context;

type Result<T> = std::result::Result<T, WireError>;

// ------------------------------------------------------------------------------------------------
// ListGroups
// ------------------------------------------------------------------------------------------------

/// One listed group, as [`ListGroupsVisitor::group`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedGroup<'a> {
    pub group_id: &'a str,
    /// "consumer" for consumer groups, empty for groups that only commit offsets (simple).
    pub protocol_type: &'a str,
    /// v4+: "Stable", "Empty", … (`None` before v4).
    pub group_state: Option<&'a str>,
    /// v5+: "classic", "consumer", "share" (`None` before v5).
    pub group_type: Option<&'a str>,
}

/// Receives a ListGroups response's groups in wire order.
pub trait ListGroupsVisitor {
    fn group(&mut self, group: ListedGroup<'_>);
}

struct CheckListGroups;

impl ListGroupsVisitor for CheckListGroups {
    fn group(&mut self, _: ListedGroup<'_>) {}
}

/// ListGroupsResponse v0–v5: the groups one broker coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListGroupsResponse<'a> {
    pub throttle_time_ms: i32,
    /// The broker's error (0: none); the groups may then be empty.
    pub error_code: i16,
    body: &'a [u8],
    version: i16,
}

impl Message for ListGroupsResponse<'_> {
    const NAME: &'static str = "ListGroups";
    const API_KEY: i16 = 16;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    fn header_version(version: i16) -> i16 {
        i16::from(version >= 3)
    }
}

impl<'a> ListGroupsResponse<'a> {
    pub fn parse(body: &'a [u8], version: i16) -> Result<Self> {
        let (throttle_time_ms, error_code) = walk_list_groups(body, version, &mut CheckListGroups)?;
        Ok(Self {
            throttle_time_ms,
            error_code,
            body,
            version,
        })
    }

    /// Hands each group to `visitor` (the response was checked by [`Self::parse`]).
    pub fn visit<V: ListGroupsVisitor + ?Sized>(&self, visitor: &mut V) -> Result<()> {
        walk_list_groups(self.body, self.version, visitor).map(|_| ())
    }
}

fn walk_list_groups<V: ListGroupsVisitor + ?Sized>(
    body: &[u8],
    version: i16,
    visitor: &mut V,
) -> Result<(i32, i16)> {
    let mut r = body_reader::<ListGroupsResponse<'_>>(body, version)?;
    let flexible = version >= 3;
    // Two strings (and the state and type), plus tagged fields when flexible.
    let min_group = if flexible {
        2 + usize::from(version >= 4) + usize::from(version >= 5) + 1
    } else {
        4
    };
    let throttle_time_ms = if version >= 1 {
        r.i32("throttle_time_ms")?
    } else {
        0
    };
    let error_code = r.i16("error_code")?;
    let groups = r.array_len("groups", flexible, min_group)?;
    for _ in 0..groups {
        let group_id = r.string("groups.group_id", flexible)?;
        let protocol_type = r.string("groups.protocol_type", flexible)?;
        let group_state = if version >= 4 {
            Some(r.string("groups.group_state", flexible)?)
        } else {
            None
        };
        let group_type = if version >= 5 {
            Some(r.string("groups.group_type", flexible)?)
        } else {
            None
        };
        if flexible {
            r.skip_tagged_fields("groups._tagged_fields")?;
        }
        visitor.group(ListedGroup {
            group_id,
            protocol_type,
            group_state,
            group_type,
        });
    }
    if flexible {
        r.skip_tagged_fields("_tagged_fields")?;
    }
    r.finish()?;
    Ok((throttle_time_ms, error_code))
}

// ------------------------------------------------------------------------------------------------
// DescribeGroups
// ------------------------------------------------------------------------------------------------

/// One described group, as [`DescribeGroupsVisitor::group`] sees it; its members follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescribedGroup<'a> {
    pub error_code: i16,
    pub group_id: &'a str,
    pub group_state: &'a str,
    pub protocol_type: &'a str,
    /// The chosen protocol: for consumer groups, the partition assignor.
    pub protocol_data: &'a str,
}

/// One member of a described group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescribedMember<'a> {
    pub member_id: &'a str,
    /// v4+: static membership id.
    pub group_instance_id: Option<&'a str>,
    pub client_id: &'a str,
    pub client_host: &'a str,
    /// For consumer groups a [`ConsumerProtocolAssignment`]; may be empty.
    pub member_assignment: &'a [u8],
}

/// Receives a DescribeGroups response in wire order: a group, then its members.
pub trait DescribeGroupsVisitor {
    fn group(&mut self, group: DescribedGroup<'_>);
    fn member(&mut self, member: DescribedMember<'_>);
}

struct CheckDescribeGroups;

impl DescribeGroupsVisitor for CheckDescribeGroups {
    fn group(&mut self, _: DescribedGroup<'_>) {}
    fn member(&mut self, _: DescribedMember<'_>) {}
}

/// DescribeGroupsResponse v0–v6 (many groups per request, to their coordinator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescribeGroupsResponse<'a> {
    pub throttle_time_ms: i32,
    body: &'a [u8],
    version: i16,
}

impl Message for DescribeGroupsResponse<'_> {
    const NAME: &'static str = "DescribeGroups";
    const API_KEY: i16 = 15;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 6;
    fn header_version(version: i16) -> i16 {
        i16::from(version >= 5)
    }
}

impl<'a> DescribeGroupsResponse<'a> {
    pub fn parse(body: &'a [u8], version: i16) -> Result<Self> {
        let throttle_time_ms = walk_describe_groups(body, version, &mut CheckDescribeGroups)?;
        Ok(Self {
            throttle_time_ms,
            body,
            version,
        })
    }

    /// Hands each group and member to `visitor` (the response was checked by [`Self::parse`]).
    pub fn visit<V: DescribeGroupsVisitor + ?Sized>(&self, visitor: &mut V) -> Result<()> {
        walk_describe_groups(self.body, self.version, visitor).map(|_| ())
    }
}

fn walk_describe_groups<V: DescribeGroupsVisitor + ?Sized>(
    body: &[u8],
    version: i16,
    visitor: &mut V,
) -> Result<i32> {
    let mut r = body_reader::<DescribeGroupsResponse<'_>>(body, version)?;
    let flexible = version >= 5;
    let (string, bytes) = if flexible { (1, 1) } else { (2, 4) };
    let min_member = 3 * string + 2 * bytes + usize::from(flexible);
    let min_group = 2
        + 4 * string
        + if flexible { 1 } else { 4 }
        + if version >= 3 { 4 } else { 0 }
        + if version >= 6 { 1 } else { 0 }
        + usize::from(flexible);
    let throttle_time_ms = if version >= 1 {
        r.i32("throttle_time_ms")?
    } else {
        0
    };
    let groups = r.array_len("groups", flexible, min_group)?;
    for _ in 0..groups {
        let error_code = r.i16("groups.error_code")?;
        if version >= 6 {
            r.nullable_string("groups.error_message", flexible)?;
        }
        let group_id = r.string("groups.group_id", flexible)?;
        let group_state = r.string("groups.group_state", flexible)?;
        let protocol_type = r.string("groups.protocol_type", flexible)?;
        let protocol_data = r.string("groups.protocol_data", flexible)?;
        visitor.group(DescribedGroup {
            error_code,
            group_id,
            group_state,
            protocol_type,
            protocol_data,
        });
        let members = r.array_len("groups.members", flexible, min_member)?;
        for _ in 0..members {
            let member_id = r.string("groups.members.member_id", flexible)?;
            let group_instance_id = if version >= 4 {
                r.nullable_string("groups.members.group_instance_id", flexible)?
            } else {
                None
            };
            let client_id = r.string("groups.members.client_id", flexible)?;
            let client_host = r.string("groups.members.client_host", flexible)?;
            r.bytes("groups.members.member_metadata", flexible)?;
            let member_assignment = r.bytes("groups.members.member_assignment", flexible)?;
            if flexible {
                r.skip_tagged_fields("groups.members._tagged_fields")?;
            }
            visitor.member(DescribedMember {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                member_assignment,
            });
        }
        if version >= 3 {
            r.i32("groups.authorized_operations")?;
        }
        if flexible {
            r.skip_tagged_fields("groups._tagged_fields")?;
        }
    }
    if flexible {
        r.skip_tagged_fields("_tagged_fields")?;
    }
    r.finish()?;
    Ok(throttle_time_ms)
}

// ------------------------------------------------------------------------------------------------
// ConsumerProtocolAssignment
// ------------------------------------------------------------------------------------------------

/// A consumer group member's assignment (ConsumerProtocolAssignment v0–v3, never flexible): the
/// version, then the assigned partitions by topic. What follows them (user data, and whatever a
/// later version adds) is not read, as librdkafka does not read it either; the bytes the
/// partitions take are checked whole by [`Self::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerProtocolAssignment<'a> {
    pub version: i16,
    /// The `AssignedPartitions` array, checked.
    topics: &'a [u8],
    count: usize,
}

fn assignment_reader(bytes: &[u8], version: i16) -> Reader<'_> {
    Reader::new(
        bytes,
        Context {
            api: "ConsumerProtocolAssignment",
            version,
            part: "member assignment",
        },
    )
}

impl<'a> ConsumerProtocolAssignment<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let version = assignment_reader(bytes, 0).i16("version")?;
        let mut r = assignment_reader(bytes.get(2..).unwrap_or(&[]), version);
        // A topic is at least a string length and an array count.
        let count = r.array_len("assigned_partitions", false, 2 + 4)?;
        let start = r.rest();
        for _ in 0..count {
            r.string("assigned_partitions.topic", false)?;
            i32s(&mut r, "assigned_partitions.partitions", false)?;
        }
        let used = start.len() - r.rest().len();
        Ok(Self {
            version,
            topics: &start[..used],
            count,
        })
    }

    /// Each assigned topic and its partitions, in wire order.
    pub fn topics(&self) -> impl Iterator<Item = (&'a str, I32s<'a>)> + 'a {
        let mut r = assignment_reader(self.topics, self.version);
        (0..self.count).map_while(move |_| {
            // Checked by parse: neither read fails.
            let topic = r.string("assigned_partitions.topic", false).ok()?;
            let partitions = i32s(&mut r, "assigned_partitions.partitions", false).ok()?;
            Some((topic, partitions))
        })
    }
}
