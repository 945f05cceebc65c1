//! What krawl's own Kafka client (`krawl_kafka::broker_client` and the modules over it) reads
//! from a broker, decoded with every length checked before it is used; and the SASL SCRAM
//! client exchange.
//!
//! # Why this exists
//!
//! A broker is a peer krawl does not control. The `kafka-protocol` crate's decoders reserve
//! `Vec::with_capacity(n)` for an array count `n` read from the wire, so one answer claiming
//! 2^31 entries aborts the whole agent on the allocation (every job on it dies, and the retried
//! job kills the next agent). Here a count is refused unless `count × smallest element` fits in
//! the bytes left, so nothing sized by the peer outgrows what the peer actually sent.
//!
//! # What is here
//!
//! - [`Reader`]: Kafka's primitive types over `&[u8]`: fixed-width integers, unsigned varints
//!   (at most 5 bytes, 32 bits), legacy and compact (flexible) strings, nullable strings and
//!   bytes, array counts checked against the bytes left before anything is allocated, tagged
//!   field sections skipped within bounds, trailing bytes refused.
//! - [`messages`]: ResponseHeader v0–v1, ApiVersionsResponse v0–v3 (with the KIP-511 fallback),
//!   SaslHandshakeResponse v0–v1, SaslAuthenticateResponse v0–v2 and DescribeLogDirsResponse
//!   v1–v4, by Kafka's published message schemas. DescribeLogDirs is checked whole, then walked
//!   by a [`LogDirsVisitor`]: a response with 150,000 partitions costs no memory beyond what the
//!   caller aggregates.
//! - [`metadata`]: MetadataResponse v1–v12, ListOffsetsResponse v1–v10 and the multi-group
//!   OffsetFetchResponse v8–v9, checked whole and walked the same way (the extraction's index
//!   of the cluster, its offsets, its groups' committed offsets).
//! - [`groups`]: ListGroupsResponse v0–v5, DescribeGroupsResponse v0–v6 and the consumer
//!   protocol's member assignment (ConsumerProtocolAssignment v0–v3), walked the same way.
//! - [`scram`]: SCRAM-SHA-256/512 client messages and the checks of the server's answers.
//!
//! # Invariants
//!
//! - **Pure**: no I/O, no async runtime; bytes in, values or a [`WireError`] out.
//! - **Bounded**: a decoder allocates at most as many bytes as its input has (only
//!   [`ApiVersionsResponse`] allocates at all); the nesting depth is the schema's, walked with
//!   loops, never recursion on anything the input says.
//! - **Every error names the API, the version and the field** (`ApiVersions v3 response:
//!   api_keys: array count 4294967294 needs at least …`), and quotes nothing from the peer.
//!   Strings from the peer that a caller puts in its own messages go through [`shown`].
//! - Fuzzed: `fuzz/fuzz_targets/kafka_responses.rs` and `scram.rs` (see fuzz/README.md).
//!
//! # Requests are not encoded here
//!
//! Requests carry only krawl's own data (topic names from Metadata, our client id), so
//! `krawl_kafka::log_dirs` keeps encoding them with `kafka-protocol`, whose encoders are
//! generated from the same schemas; nothing a broker sends reaches `kafka-protocol`'s decoders.
//! The tests here use those encoders (`broker` feature) as the oracle for every decoder.

pub mod error;
pub mod groups;
pub mod messages;
pub mod metadata;
pub mod reader;
pub mod scram;

pub use error::{Context, Problem, WireError};
pub use groups::{
    ConsumerProtocolAssignment, DescribeGroupsResponse, DescribeGroupsVisitor, DescribedGroup,
    DescribedMember, ListGroupsResponse, ListGroupsVisitor, ListedGroup,
};
pub use messages::{
    ApiVersion, ApiVersionsResponse, DescribeLogDirsResponse, LogDirPartition, LogDirsVisitor,
    Message, ResponseHeader, SaslAuthenticateResponse, SaslHandshakeResponse, StrList,
    UNSUPPORTED_VERSION,
};
pub use metadata::{
    CommittedPartition, I32s, ListOffsetsPartition, ListOffsetsResponse, ListOffsetsVisitor,
    MetadataBroker, MetadataPartition, MetadataResponse, MetadataTopic, MetadataVisitor,
    OffsetFetchResponse, OffsetFetchVisitor,
};
pub use reader::Reader;

/// Characters of a peer's string kept by [`shown`].
pub const SHOWN_CHARS: usize = 100;

/// A string from a peer (a log dir path, a SASL error message, a mechanism name), made fit for
/// an error message: at most [`SHOWN_CHARS`] characters, control characters escaped, `…` when
/// cut.
pub fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(SHOWN_CHARS + 3));
    for (i, c) in s.chars().enumerate() {
        if i == SHOWN_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_cuts_and_escapes() {
        assert_eq!(shown("/var/lib/kafka"), "/var/lib/kafka");
        assert_eq!(shown("a\nb\u{1b}"), "a\\nb\\u{1b}");
        let long = "é".repeat(1000);
        let s = shown(&long);
        assert_eq!(s.chars().count(), SHOWN_CHARS + 1);
        assert!(s.ends_with('…'));
    }
}
