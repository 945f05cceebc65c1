//! [`WireError`]: what was wrong with a response, allocation-free.

use std::fmt;

/// Which message a [`crate::Reader`] is reading, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// The API's name, e.g. `"DescribeLogDirs"`.
    pub api: &'static str,
    /// The version the message is decoded at.
    pub version: i16,
    /// `"response"` or `"response header"`.
    pub part: &'static str,
}

/// A response that does not decode. Names the API, the version, the part (body or header) and
/// the field, and says what was wrong; it holds no bytes from the peer and allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} v{} {}: {field}: {problem}", .context.api, .context.version, .context.part)]
pub struct WireError {
    pub context: Context,
    /// The field, as a path through the message: `results.topics.partitions`.
    pub field: &'static str,
    pub problem: Problem,
}

/// What was wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The field needs more bytes than are left.
    Truncated { needed: u64, left: usize },
    /// A length or count below -1 (or -1 where null is not allowed, see [`Problem::Null`]).
    NegativeLength(i64),
    /// Null where the schema has no null.
    Null,
    /// An array count that cannot fit in the bytes left, refused before anything is allocated.
    ArrayTooLong {
        count: u64,
        min_bytes: u64,
        left: usize,
    },
    /// An unsigned varint of more than 5 bytes.
    VarintTooLong,
    /// An unsigned varint of 5 bytes whose value does not fit in 32 bits.
    VarintOverflow,
    /// A string that is not UTF-8.
    NotUtf8,
    /// Bytes left after the last field.
    Trailing { left: usize },
    /// A version this decoder does not know.
    UnsupportedVersion { min: i16, max: i16 },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, left } => {
                write!(f, "needs {needed} bytes, only {left} left (truncated)")
            }
            Self::NegativeLength(n) => write!(f, "negative length {n}"),
            Self::Null => f.write_str("null, which this field cannot be"),
            Self::ArrayTooLong {
                count,
                min_bytes,
                left,
            } => write!(
                f,
                "array count {count} needs at least {min_bytes} bytes, only {left} left"
            ),
            Self::VarintTooLong => f.write_str("unsigned varint longer than 5 bytes"),
            Self::VarintOverflow => f.write_str("unsigned varint does not fit in 32 bits"),
            Self::NotUtf8 => f.write_str("string is not UTF-8"),
            Self::Trailing { left } => write!(f, "{left} bytes after the last field"),
            Self::UnsupportedVersion { min, max } => {
                write!(
                    f,
                    "version not supported (this decoder knows v{min} to v{max})"
                )
            }
        }
    }
}
