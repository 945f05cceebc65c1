//! [`Reader`]: Kafka's primitive types, read from a byte slice with every length checked
//! against the bytes left before it is used.

use crate::error::{Context, Problem, WireError};

/// Kafka's primitive types over `&[u8]`. Nothing here allocates: strings and byte fields are
/// borrowed from the input, and an array is read as a count the caller loops over, checked first
/// against the bytes left ([`Reader::array_len`]), so a caller that reserves `count` elements
/// reserves no more than the input could hold.
///
/// `field` arguments name the field in errors, as a path (`results.topics.name`).
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    context: Context,
}

type Result<T> = std::result::Result<T, WireError>;

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], context: Context) -> Self {
        Self {
            buf,
            pos: 0,
            context,
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub fn context(&self) -> Context {
        self.context
    }

    /// An error about `field` in this message.
    pub fn error(&self, field: &'static str, problem: Problem) -> WireError {
        WireError {
            context: self.context,
            field,
            problem,
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        let left = self.remaining();
        if n > left {
            return Err(self.error(
                field,
                Problem::Truncated {
                    needed: n as u64,
                    left,
                },
            ));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }

    pub fn i8(&mut self, field: &'static str) -> Result<i8> {
        Ok(i8::from_be_bytes(self.array(field)?))
    }

    /// A boolean: any non-zero byte is true (as Kafka's own reader does).
    pub fn bool(&mut self, field: &'static str) -> Result<bool> {
        Ok(self.u8(field)? != 0)
    }

    pub fn i16(&mut self, field: &'static str) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    pub fn i32(&mut self, field: &'static str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    pub fn i64(&mut self, field: &'static str) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    /// An unsigned varint: at most 5 bytes, the value within 32 bits.
    pub fn uvarint(&mut self, field: &'static str) -> Result<u32> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.u8(field)?;
            let bits = u32::from(b & 0x7f);
            if i == 4 {
                if b & 0x80 != 0 {
                    return Err(self.error(field, Problem::VarintTooLong));
                }
                if bits > 0x0f {
                    return Err(self.error(field, Problem::VarintOverflow));
                }
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        // The fifth byte either returned or failed above.
        Err(self.error(field, Problem::VarintTooLong))
    }

    /// A length prefix: `i16` (legacy strings), `i32` (legacy bytes and arrays) or a varint
    /// holding length + 1 (compact forms). `None` is null (-1, or varint 0).
    fn length(&mut self, field: &'static str, kind: LengthKind) -> Result<Option<u64>> {
        let n: i64 = match kind {
            LengthKind::I16 => i64::from(self.i16(field)?),
            LengthKind::I32 => i64::from(self.i32(field)?),
            LengthKind::Compact => i64::from(self.uvarint(field)?) - 1,
        };
        match n {
            -1 => Ok(None),
            n if n < -1 => Err(self.error(field, Problem::NegativeLength(n))),
            n => Ok(Some(n.unsigned_abs())),
        }
    }

    fn sized(&mut self, field: &'static str, len: u64) -> Result<&'a [u8]> {
        let left = self.remaining();
        match usize::try_from(len) {
            Ok(n) if n <= left => self.take(n, field),
            _ => Err(self.error(field, Problem::Truncated { needed: len, left })),
        }
    }

    fn utf8(&self, field: &'static str, bytes: &'a [u8]) -> Result<&'a str> {
        std::str::from_utf8(bytes).map_err(|_| self.error(field, Problem::NotUtf8))
    }

    /// A nullable string: `i16` length (legacy) or compact (`flexible`).
    pub fn nullable_string(
        &mut self,
        field: &'static str,
        flexible: bool,
    ) -> Result<Option<&'a str>> {
        let kind = if flexible {
            LengthKind::Compact
        } else {
            LengthKind::I16
        };
        match self.length(field, kind)? {
            None => Ok(None),
            Some(len) => {
                let bytes = self.sized(field, len)?;
                self.utf8(field, bytes).map(Some)
            }
        }
    }

    /// A string that cannot be null.
    pub fn string(&mut self, field: &'static str, flexible: bool) -> Result<&'a str> {
        self.nullable_string(field, flexible)?
            .ok_or_else(|| self.error(field, Problem::Null))
    }

    /// Nullable bytes: `i32` length (legacy) or compact (`flexible`).
    pub fn nullable_bytes(
        &mut self,
        field: &'static str,
        flexible: bool,
    ) -> Result<Option<&'a [u8]>> {
        let kind = if flexible {
            LengthKind::Compact
        } else {
            LengthKind::I32
        };
        match self.length(field, kind)? {
            None => Ok(None),
            Some(len) => self.sized(field, len).map(Some),
        }
    }

    /// Bytes that cannot be null.
    pub fn bytes(&mut self, field: &'static str, flexible: bool) -> Result<&'a [u8]> {
        self.nullable_bytes(field, flexible)?
            .ok_or_else(|| self.error(field, Problem::Null))
    }

    /// The count of a nullable array: `i32` (legacy) or compact (`flexible`), refused unless
    /// `count × min_element_size` fits in the bytes left. `min_element_size` is the smallest
    /// encoding of one element (at least 1 is assumed), so nothing sized by the count can
    /// outgrow the input.
    pub fn nullable_array_len(
        &mut self,
        field: &'static str,
        flexible: bool,
        min_element_size: usize,
    ) -> Result<Option<usize>> {
        let kind = if flexible {
            LengthKind::Compact
        } else {
            LengthKind::I32
        };
        let Some(count) = self.length(field, kind)? else {
            return Ok(None);
        };
        let left = self.remaining();
        let min_bytes = count.saturating_mul(min_element_size.max(1) as u64);
        if min_bytes > left as u64 {
            return Err(self.error(
                field,
                Problem::ArrayTooLong {
                    count,
                    min_bytes,
                    left,
                },
            ));
        }
        // count <= left, which is a usize.
        Ok(Some(usize::try_from(count).unwrap_or(left)))
    }

    /// The count of an array that cannot be null; see [`Reader::nullable_array_len`].
    pub fn array_len(
        &mut self,
        field: &'static str,
        flexible: bool,
        min_element_size: usize,
    ) -> Result<usize> {
        self.nullable_array_len(field, flexible, min_element_size)?
            .ok_or_else(|| self.error(field, Problem::Null))
    }

    /// Skips a tagged-field section (flexible versions): a count, then per field a tag and a
    /// size-prefixed value. The count is checked against the bytes left (2 bytes per field at
    /// least) and each value is skipped within bounds. Unknown tags are ignored, as Kafka's own
    /// readers do.
    pub fn skip_tagged_fields(&mut self, field: &'static str) -> Result<()> {
        let count = self.uvarint(field)?;
        let left = self.remaining();
        let min_bytes = u64::from(count) * 2;
        if min_bytes > left as u64 {
            return Err(self.error(
                field,
                Problem::ArrayTooLong {
                    count: u64::from(count),
                    min_bytes,
                    left,
                },
            ));
        }
        for _ in 0..count {
            self.uvarint(field)?; // tag
            let size = self.uvarint(field)?;
            self.sized(field, u64::from(size))?;
        }
        Ok(())
    }

    /// Ends the message: anything left is an error.
    pub fn finish(self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            left => Err(self.error("end of message", Problem::Trailing { left })),
        }
    }
}

#[derive(Clone, Copy)]
enum LengthKind {
    I16,
    I32,
    Compact,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CTX: Context = Context {
        api: "Test",
        version: 7,
        part: "response",
    };

    fn r(bytes: &[u8]) -> Reader<'_> {
        Reader::new(bytes, CTX)
    }

    #[test]
    fn fixed_width_ints_are_big_endian() {
        let mut rd = r(&[0x01, 0xff, 0xfe, 0x00, 0x00, 0x01, 0x00, 0x80]);
        assert_eq!(rd.u8("a").unwrap(), 1);
        assert_eq!(rd.i16("b").unwrap(), -2);
        assert_eq!(rd.i32("c").unwrap(), 256);
        assert!(rd.bool("d").unwrap());
        rd.finish().unwrap();
        let e = r(&[0, 0, 0]).i32("field.x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Test v7 response: field.x: needs 4 bytes, only 3 left (truncated)"
        );
    }

    #[test]
    fn varints_stop_at_five_bytes_and_32_bits() {
        for (bytes, want) in [
            (&[0x00][..], 0u32),
            (&[0x7f], 127),
            (&[0x80, 0x01], 128),
            (&[0xff, 0xff, 0xff, 0xff, 0x0f], u32::MAX),
            // Non-minimal encodings are accepted (Kafka's reader accepts them too).
            (&[0x80, 0x00], 0),
        ] {
            let mut rd = r(bytes);
            assert_eq!(rd.uvarint("v").unwrap(), want, "{bytes:?}");
            rd.finish().unwrap();
        }
        for (bytes, problem) in [
            (&[0xff, 0xff, 0xff, 0xff, 0x10][..], Problem::VarintOverflow),
            (
                &[0xff, 0xff, 0xff, 0xff, 0x8f, 0x01],
                Problem::VarintTooLong,
            ),
            (
                &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80],
                Problem::VarintTooLong,
            ),
            (&[0x80, 0x80], Problem::Truncated { needed: 1, left: 0 }),
        ] {
            assert_eq!(
                r(bytes).uvarint("v").unwrap_err().problem,
                problem,
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn strings_legacy_and_compact() {
        let mut rd = r(&[0, 2, b'h', b'i', 0xff, 0xff, 3, b'y', b'o', 0]);
        assert_eq!(rd.string("a", false).unwrap(), "hi");
        assert_eq!(rd.nullable_string("b", false).unwrap(), None);
        assert_eq!(rd.string("c", true).unwrap(), "yo");
        assert_eq!(rd.nullable_string("d", true).unwrap(), None);
        rd.finish().unwrap();

        assert_eq!(
            r(&[0xff, 0xff]).string("s", false).unwrap_err().problem,
            Problem::Null
        );
        assert_eq!(
            r(&[0]).string("s", true).unwrap_err().problem,
            Problem::Null
        );
        assert_eq!(
            r(&[0xff, 0xfe]).string("s", false).unwrap_err().problem,
            Problem::NegativeLength(-2)
        );
        // A length past the end.
        assert_eq!(
            r(&[0x7f, 0xff, b'a'])
                .string("s", false)
                .unwrap_err()
                .problem,
            Problem::Truncated {
                needed: 32767,
                left: 1
            }
        );
        assert_eq!(
            r(&[0xff, 0xff, 0xff, 0xff, 0x0f, b'a'])
                .string("s", true)
                .unwrap_err()
                .problem,
            Problem::Truncated {
                needed: u64::from(u32::MAX) - 1,
                left: 1
            }
        );
        assert_eq!(
            r(&[0, 1, 0xff]).string("s", false).unwrap_err().problem,
            Problem::NotUtf8
        );
    }

    #[test]
    fn bytes_legacy_and_compact() {
        let mut rd = r(&[0, 0, 0, 1, 9, 0xff, 0xff, 0xff, 0xff, 2, 8, 0]);
        assert_eq!(rd.bytes("a", false).unwrap(), &[9]);
        assert_eq!(rd.nullable_bytes("b", false).unwrap(), None);
        assert_eq!(rd.bytes("c", true).unwrap(), &[8]);
        assert_eq!(rd.nullable_bytes("d", true).unwrap(), None);
        rd.finish().unwrap();
        assert_eq!(
            r(&[0x80, 0, 0, 0]).bytes("b", false).unwrap_err().problem,
            Problem::NegativeLength(i64::from(i32::MIN))
        );
        assert_eq!(
            r(&[0x7f, 0xff, 0xff, 0xff])
                .bytes("b", false)
                .unwrap_err()
                .problem,
            Problem::Truncated {
                needed: i32::MAX as u64,
                left: 0
            }
        );
    }

    #[test]
    fn array_counts_are_checked_before_use() {
        // 0x7fff_ffff elements with 10 bytes left.
        let mut bytes = vec![0x7f, 0xff, 0xff, 0xff];
        bytes.extend([0; 10]);
        let e = r(&bytes).array_len("items", false, 6).unwrap_err();
        assert_eq!(
            e.problem,
            Problem::ArrayTooLong {
                count: 0x7fff_ffff,
                min_bytes: 0x7fff_ffff * 6,
                left: 10
            }
        );
        assert_eq!(
            e.to_string(),
            "Test v7 response: items: array count 2147483647 needs at least 12884901882 bytes, only 10 left"
        );
        // Compact: u32::MAX means 4,294,967,294 elements.
        let mut bytes = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
        bytes.extend([0; 10]);
        assert!(matches!(
            r(&bytes).array_len("items", true, 1).unwrap_err().problem,
            Problem::ArrayTooLong {
                count: 4_294_967_294,
                ..
            }
        ));
        // Exactly enough bytes is fine; null and negative counts.
        assert_eq!(r(&[0, 0, 0, 2, 1, 2]).array_len("a", false, 1).unwrap(), 2);
        assert_eq!(r(&[3, 1, 2]).array_len("a", true, 1).unwrap(), 2);
        assert_eq!(r(&[0]).nullable_array_len("a", true, 1).unwrap(), None);
        assert_eq!(
            r(&[0]).array_len("a", true, 1).unwrap_err().problem,
            Problem::Null
        );
        assert_eq!(
            r(&[0xff, 0xff, 0xff, 0xfe])
                .array_len("a", false, 1)
                .unwrap_err()
                .problem,
            Problem::NegativeLength(-2)
        );
    }

    #[test]
    fn tagged_fields_are_skipped_within_bounds() {
        let mut rd = r(&[2, 0, 1, 7, 5, 2, 8, 9]);
        rd.skip_tagged_fields("_tagged").unwrap();
        rd.finish().unwrap();
        // A value past the end, and a count the bytes cannot hold.
        assert!(matches!(
            r(&[1, 0, 5, 1])
                .skip_tagged_fields("t")
                .unwrap_err()
                .problem,
            Problem::Truncated { needed: 5, left: 1 }
        ));
        assert!(matches!(
            r(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0])
                .skip_tagged_fields("t")
                .unwrap_err()
                .problem,
            Problem::ArrayTooLong { .. }
        ));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut rd = r(&[0, 1, 2]);
        rd.i16("x").unwrap();
        assert_eq!(
            rd.finish().unwrap_err().to_string(),
            "Test v7 response: end of message: 1 bytes after the last field"
        );
    }
}
