//! The responses krawl's DescribeLogDirs client reads, decoded by their published schemas
//! (apache/kafka `clients/src/main/resources/common/message/*Response.json`).
//!
//! Every decoder reads the whole body and refuses trailing bytes. Only
//! [`ApiVersionsResponse`] allocates (one `Vec` of 6-byte entries, each read from at least 6
//! input bytes); the others borrow from the body.

use crate::error::{Context, Problem, WireError};
use crate::reader::Reader;

type Result<T> = std::result::Result<T, WireError>;

/// What every response type knows about itself.
pub trait Message {
    /// The API's name, as errors show it.
    const NAME: &'static str;
    const API_KEY: i16;
    /// The versions this crate decodes.
    const MIN_VERSION: i16;
    const MAX_VERSION: i16;
    /// The response header version that goes with a body version (0: correlation id only,
    /// 1: followed by tagged fields).
    fn header_version(version: i16) -> i16;
}

/// Kafka's UNSUPPORTED_VERSION error code.
pub const UNSUPPORTED_VERSION: i16 = 35;

pub(crate) fn body_reader<M: Message>(body: &[u8], version: i16) -> Result<Reader<'_>> {
    let r = Reader::new(
        body,
        Context {
            api: M::NAME,
            version,
            part: "response",
        },
    );
    if (M::MIN_VERSION..=M::MAX_VERSION).contains(&version) {
        Ok(r)
    } else {
        Err(r.error(
            "version",
            Problem::UnsupportedVersion {
                min: M::MIN_VERSION,
                max: M::MAX_VERSION,
            },
        ))
    }
}

// ------------------------------------------------------------------------------------------------
// Response header
// ------------------------------------------------------------------------------------------------

/// The response header (ResponseHeader.json): the correlation id, then tagged fields from header
/// version 1 (flexible APIs, except ApiVersions, whose header stays version 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeader {
    pub correlation_id: i32,
}

impl ResponseHeader {
    /// Splits a response frame (what follows the 4-byte size) of `M` at `version` into its header
    /// and its body.
    pub fn split<M: Message>(frame: &[u8], version: i16) -> Result<(Self, &[u8])> {
        let header_version = M::header_version(version);
        let mut r = Reader::new(
            frame,
            Context {
                api: M::NAME,
                version,
                part: "response header",
            },
        );
        let correlation_id = r.i32("correlation_id")?;
        match header_version {
            0 => {}
            1 => r.skip_tagged_fields("_tagged_fields")?,
            _ => {
                return Err(r.error(
                    "header version",
                    Problem::UnsupportedVersion { min: 0, max: 1 },
                ))
            }
        }
        Ok((Self { correlation_id }, r.rest()))
    }
}

// ------------------------------------------------------------------------------------------------
// ApiVersions
// ------------------------------------------------------------------------------------------------

/// One API a broker supports, with its version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion {
    pub api_key: i16,
    pub min_version: i16,
    pub max_version: i16,
}

/// ApiVersionsResponse v0–v3 (flexible from v3). The v3 tagged fields (supported and finalized
/// features) are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersionsResponse {
    pub error_code: i16,
    pub api_keys: Vec<ApiVersion>,
    /// 0 before v1.
    pub throttle_time_ms: i32,
}

impl Message for ApiVersionsResponse {
    const NAME: &'static str = "ApiVersions";
    const API_KEY: i16 = 18;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 3;
    fn header_version(_version: i16) -> i16 {
        // Always 0, so that a client can read the answer of a broker that does not know the
        // version it asked for (KIP-511).
        0
    }
}

impl ApiVersionsResponse {
    pub fn decode(body: &[u8], version: i16) -> Result<Self> {
        let mut r = body_reader::<Self>(body, version)?;
        let flexible = version >= 3;
        let error_code = r.i16("error_code")?;
        let count = r.array_len("api_keys", flexible, if flexible { 7 } else { 6 })?;
        // At most one 6-byte entry per 6 (or 7) input bytes.
        let mut api_keys = Vec::with_capacity(count);
        for _ in 0..count {
            api_keys.push(ApiVersion {
                api_key: r.i16("api_keys.api_key")?,
                min_version: r.i16("api_keys.min_version")?,
                max_version: r.i16("api_keys.max_version")?,
            });
            if flexible {
                r.skip_tagged_fields("api_keys._tagged_fields")?;
            }
        }
        let throttle_time_ms = if version >= 1 {
            r.i32("throttle_time_ms")?
        } else {
            0
        };
        if flexible {
            r.skip_tagged_fields("_tagged_fields")?;
        }
        r.finish()?;
        Ok(Self {
            error_code,
            api_keys,
            throttle_time_ms,
        })
    }

    /// The answer to an ApiVersions request sent at `requested`. A broker that does not know
    /// that version answers in the v0 format with UNSUPPORTED_VERSION and the ranges it does
    /// support (KIP-511); such an answer is decoded as v0. Returns the response and the version
    /// it was decoded at.
    pub fn decode_answer(body: &[u8], requested: i16) -> Result<(Self, i16)> {
        let mut peek = body_reader::<Self>(body, requested)?;
        let error_code = peek.i16("error_code")?;
        let version = if error_code == UNSUPPORTED_VERSION {
            0
        } else {
            requested
        };
        Ok((Self::decode(body, version)?, version))
    }

    /// The newest version of `api_key` both sides speak, given that we speak `min..=max`.
    pub fn pick(&self, api_key: i16, min: i16, max: i16) -> Option<i16> {
        let k = self.api_keys.iter().find(|k| k.api_key == api_key)?;
        let v = k.max_version.min(max);
        (v >= k.min_version.max(min)).then_some(v)
    }
}

// ------------------------------------------------------------------------------------------------
// SaslHandshake
// ------------------------------------------------------------------------------------------------

/// SaslHandshakeResponse v0–v1 (never flexible).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslHandshakeResponse<'a> {
    pub error_code: i16,
    /// The mechanisms the broker enables.
    pub mechanisms: StrList<'a>,
}

impl Message for SaslHandshakeResponse<'_> {
    const NAME: &'static str = "SaslHandshake";
    const API_KEY: i16 = 17;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    fn header_version(_version: i16) -> i16 {
        0
    }
}

impl<'a> SaslHandshakeResponse<'a> {
    pub fn decode(body: &'a [u8], version: i16) -> Result<Self> {
        let mut r = body_reader::<Self>(body, version)?;
        let error_code = r.i16("error_code")?;
        let count = r.array_len("mechanisms", false, 2)?;
        let start = r.rest();
        for _ in 0..count {
            r.string("mechanisms", false)?;
        }
        let raw = &start[..start.len() - r.remaining()];
        r.finish()?;
        Ok(Self {
            error_code,
            mechanisms: StrList { raw, count },
        })
    }
}

/// A checked array of legacy strings, read in place: iterating allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrList<'a> {
    raw: &'a [u8],
    count: usize,
}

impl<'a> StrList<'a> {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut r = Reader::new(
            self.raw,
            Context {
                api: "",
                version: 0,
                part: "",
            },
        );
        // Checked when decoded: every read succeeds.
        (0..self.count).map_while(move |_| r.string("", false).ok())
    }
}

// ------------------------------------------------------------------------------------------------
// SaslAuthenticate
// ------------------------------------------------------------------------------------------------

/// SaslAuthenticateResponse v0–v2 (flexible from v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslAuthenticateResponse<'a> {
    pub error_code: i16,
    pub error_message: Option<&'a str>,
    pub auth_bytes: &'a [u8],
    /// 0 before v1.
    pub session_lifetime_ms: i64,
}

impl Message for SaslAuthenticateResponse<'_> {
    const NAME: &'static str = "SaslAuthenticate";
    const API_KEY: i16 = 36;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    fn header_version(version: i16) -> i16 {
        i16::from(version >= 2)
    }
}

impl<'a> SaslAuthenticateResponse<'a> {
    pub fn decode(body: &'a [u8], version: i16) -> Result<Self> {
        let mut r = body_reader::<Self>(body, version)?;
        let flexible = version >= 2;
        let error_code = r.i16("error_code")?;
        let error_message = r.nullable_string("error_message", flexible)?;
        let auth_bytes = r.bytes("auth_bytes", flexible)?;
        let session_lifetime_ms = if version >= 1 {
            r.i64("session_lifetime_ms")?
        } else {
            0
        };
        if flexible {
            r.skip_tagged_fields("_tagged_fields")?;
        }
        r.finish()?;
        Ok(Self {
            error_code,
            error_message,
            auth_bytes,
            session_lifetime_ms,
        })
    }
}

// ------------------------------------------------------------------------------------------------
// DescribeLogDirs
// ------------------------------------------------------------------------------------------------

/// One partition replica in a log dir, as [`LogDirsVisitor::partition`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogDirPartition<'a> {
    pub topic: &'a str,
    pub partition_index: i32,
    /// Bytes of the partition's log segments in this dir.
    pub size: i64,
    /// A future replica (a log-dir move in progress, AlterReplicaLogDirs).
    pub is_future_key: bool,
}

/// Receives a DescribeLogDirs response piece by piece, in wire order: each log dir, then the
/// partitions in it.
pub trait LogDirsVisitor {
    /// A log dir and its error code (0: none); its partitions follow.
    fn log_dir(&mut self, error_code: i16, path: &str);
    /// A partition replica in the log dir announced last.
    fn partition(&mut self, partition: LogDirPartition<'_>);
}

/// A visitor that does nothing (the checking pass).
struct Check;

impl LogDirsVisitor for Check {
    fn log_dir(&mut self, _: i16, _: &str) {}
    fn partition(&mut self, _: LogDirPartition<'_>) {}
}

/// DescribeLogDirsResponse v1–v4 (flexible from v2; a top-level error code from v3; total and
/// usable bytes per log dir from v4), checked whole but not built: [`Self::visit`] walks it.
///
/// One response can describe hundreds of thousands of partitions. Building it as a tree of
/// `Vec`s would cost memory in proportion; walking it costs none, so the caller's aggregate is
/// the only memory that grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescribeLogDirsResponse<'a> {
    pub throttle_time_ms: i32,
    /// 0 before v3.
    pub error_code: i16,
    body: &'a [u8],
    version: i16,
}

impl Message for DescribeLogDirsResponse<'_> {
    const NAME: &'static str = "DescribeLogDirs";
    const API_KEY: i16 = 35;
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 4;
    fn header_version(version: i16) -> i16 {
        i16::from(version >= 2)
    }
}

impl<'a> DescribeLogDirsResponse<'a> {
    /// Checks the whole body (every count, length, string and the end) without keeping
    /// anything but the top-level fields. A response that passes can be visited.
    pub fn parse(body: &'a [u8], version: i16) -> Result<Self> {
        let (throttle_time_ms, error_code) = walk(body, version, &mut Check)?;
        Ok(Self {
            throttle_time_ms,
            error_code,
            body,
            version,
        })
    }

    /// Hands each log dir and partition to `visitor`, in wire order. The response was checked
    /// by [`Self::parse`], so the visitor never sees part of a response that is then refused;
    /// the same checks run again here, and fail only if `parse` did.
    pub fn visit<V: LogDirsVisitor + ?Sized>(&self, visitor: &mut V) -> Result<()> {
        walk(self.body, self.version, visitor).map(|_| ())
    }
}

/// Reads a DescribeLogDirs body, feeding `visitor`; returns (throttle, error code).
/// Loops only: the nesting depth is fixed by the schema, not by the input.
fn walk<V: LogDirsVisitor + ?Sized>(
    body: &[u8],
    version: i16,
    visitor: &mut V,
) -> Result<(i32, i16)> {
    let mut r = body_reader::<DescribeLogDirsResponse<'_>>(body, version)?;
    let flexible = version >= 2;
    // Smallest encodings: a tag section is 1 byte, a compact string or array count 1, a legacy
    // string length 2, a legacy array count 4.
    let (tags, str_len, arr_len) = if flexible { (1, 1, 1) } else { (0, 2, 4) };
    let min_result = 2 + str_len + arr_len + if version >= 4 { 16 } else { 0 } + tags;
    let min_topic = str_len + arr_len + tags;
    let min_partition = 4 + 8 + 8 + 1 + tags;

    let throttle_time_ms = r.i32("throttle_time_ms")?;
    let error_code = if version >= 3 {
        r.i16("error_code")?
    } else {
        0
    };
    let results = r.array_len("results", flexible, min_result)?;
    for _ in 0..results {
        let dir_error = r.i16("results.error_code")?;
        let path = r.string("results.log_dir", flexible)?;
        visitor.log_dir(dir_error, path);
        let topics = r.array_len("results.topics", flexible, min_topic)?;
        for _ in 0..topics {
            let topic = r.string("results.topics.name", flexible)?;
            let partitions = r.array_len("results.topics.partitions", flexible, min_partition)?;
            for _ in 0..partitions {
                let partition_index = r.i32("results.topics.partitions.partition_index")?;
                let size = r.i64("results.topics.partitions.partition_size")?;
                r.i64("results.topics.partitions.offset_lag")?;
                let is_future_key = r.bool("results.topics.partitions.is_future_key")?;
                if flexible {
                    r.skip_tagged_fields("results.topics.partitions._tagged_fields")?;
                }
                visitor.partition(LogDirPartition {
                    topic,
                    partition_index,
                    size,
                    is_future_key,
                });
            }
            if flexible {
                r.skip_tagged_fields("results.topics._tagged_fields")?;
            }
        }
        if version >= 4 {
            r.i64("results.total_bytes")?;
            r.i64("results.usable_bytes")?;
        }
        if flexible {
            r.skip_tagged_fields("results._tagged_fields")?;
        }
    }
    if flexible {
        r.skip_tagged_fields("_tagged_fields")?;
    }
    r.finish()?;
    Ok((throttle_time_ms, error_code))
}
