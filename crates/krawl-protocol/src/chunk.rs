//! Result chunks: NDJSON compressed with zstd (gzip accepted), identified by the sha256 of the
//! decoded bytes. Shared by the agent (encode) and the control plane (decode, with a size cap so
//! a small compressed body cannot expand without bound).

use std::io::Read;

/// How a chunk body is compressed (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Zstd,
    Gzip,
    Identity,
}

impl Encoding {
    /// The `Content-Encoding` header value.
    pub fn header_value(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
            Encoding::Identity => "identity",
        }
    }

    /// Parses a `Content-Encoding` header; a missing header means identity.
    pub fn from_header(value: Option<&str>) -> Result<Self, ChunkError> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(Encoding::Identity),
            Some("zstd") => Ok(Encoding::Zstd),
            Some("gzip") | Some("x-gzip") => Ok(Encoding::Gzip),
            Some(other) => Err(ChunkError::UnsupportedEncoding(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("unsupported Content-Encoding {0:?}: send zstd (preferred), gzip or identity")]
    UnsupportedEncoding(String),
    #[error("chunk body is not valid {encoding} data: {source}")]
    Corrupt {
        encoding: &'static str,
        source: std::io::Error,
    },
    #[error("chunk decodes to more than {limit} bytes; split the stream into smaller chunks")]
    TooLarge { limit: usize },
    #[error("chunk sha256 mismatch: header says {expected}, body hashes to {actual}")]
    ShaMismatch { expected: String, actual: String },
    #[error("compressing a chunk failed: {0}")]
    Encode(std::io::Error),
}

/// Compresses NDJSON bytes for upload.
pub fn encode(ndjson: &[u8], encoding: Encoding) -> Result<Vec<u8>, ChunkError> {
    match encoding {
        Encoding::Zstd => zstd::bulk::compress(ndjson, 3).map_err(ChunkError::Encode),
        Encoding::Gzip => {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(ndjson).map_err(ChunkError::Encode)?;
            enc.finish().map_err(ChunkError::Encode)
        }
        Encoding::Identity => Ok(ndjson.to_vec()),
    }
}

/// Decodes a chunk body, refusing anything that expands past `limit` bytes.
pub fn decode(body: &[u8], encoding: Encoding, limit: usize) -> Result<Vec<u8>, ChunkError> {
    let read_capped = |reader: &mut dyn Read, name: &'static str| -> Result<Vec<u8>, ChunkError> {
        let mut out = Vec::new();
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        reader
            .take(cap)
            .read_to_end(&mut out)
            .map_err(|source| ChunkError::Corrupt {
                encoding: name,
                source,
            })?;
        if out.len() > limit {
            return Err(ChunkError::TooLarge { limit });
        }
        Ok(out)
    };
    match encoding {
        Encoding::Identity => {
            if body.len() > limit {
                return Err(ChunkError::TooLarge { limit });
            }
            Ok(body.to_vec())
        }
        Encoding::Gzip => read_capped(&mut flate2::read::GzDecoder::new(body), "gzip"),
        Encoding::Zstd => {
            let mut dec =
                zstd::stream::read::Decoder::new(body).map_err(|source| ChunkError::Corrupt {
                    encoding: "zstd",
                    source,
                })?;
            read_capped(&mut dec, "zstd")
        }
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Checks a decoded chunk against the sha256 its sender announced.
pub fn verify(decoded: &[u8], expected_hex: &str) -> Result<(), ChunkError> {
    let actual = sha256_hex(decoded);
    if actual.eq_ignore_ascii_case(expected_hex.trim()) {
        Ok(())
    } else {
        Err(ChunkError::ShaMismatch {
            expected: expected_hex.trim().to_string(),
            actual,
        })
    }
}

/// sha256 of a whole result stream, fed chunk by chunk in sequence order.
#[derive(Clone)]
pub struct StreamHash(ring::digest::Context);

impl std::fmt::Debug for StreamHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamHash")
    }
}

impl Default for StreamHash {
    fn default() -> Self {
        Self(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl StreamHash {
    pub fn update(&mut self, decoded_chunk: &[u8]) {
        self.0.update(decoded_chunk);
    }

    /// The hex digest so far (the hash state is kept).
    pub fn hex(&self) -> String {
        hex(self.0.clone().finish().as_ref())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_encoding_and_hashes_the_decoded_bytes() {
        let ndjson = b"{\"kind\":\"topic\"}\n{\"kind\":\"summary\"}\n".repeat(100);
        for enc in [Encoding::Zstd, Encoding::Gzip, Encoding::Identity] {
            let body = encode(&ndjson, enc).unwrap();
            let header = Encoding::from_header(Some(enc.header_value())).unwrap();
            let back = decode(&body, header, 1 << 20).unwrap();
            assert_eq!(back, ndjson);
            verify(&back, &sha256_hex(&ndjson)).unwrap();
        }
        // Known vector: sha256("abc").
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn stream_hash_equals_hash_of_concatenation() {
        let mut h = StreamHash::default();
        h.update(b"a\n");
        h.update(b"b\n");
        assert_eq!(h.hex(), sha256_hex(b"a\nb\n"));
    }

    #[test]
    fn bombs_corruption_and_mismatches_are_refused() {
        let big = vec![b'x'; 10_000];
        let body = encode(&big, Encoding::Zstd).unwrap();
        assert!(matches!(
            decode(&body, Encoding::Zstd, 1000),
            Err(ChunkError::TooLarge { limit: 1000 })
        ));
        let gz = encode(&big, Encoding::Gzip).unwrap();
        assert!(matches!(
            decode(&gz, Encoding::Gzip, 1000),
            Err(ChunkError::TooLarge { .. })
        ));
        assert!(matches!(
            decode(b"not zstd", Encoding::Zstd, 1000),
            Err(ChunkError::Corrupt { .. })
        ));
        let err = verify(b"abc", "00").unwrap_err();
        assert!(err.to_string().contains("header says 00"));
        let err = Encoding::from_header(Some("br")).unwrap_err();
        assert!(err.to_string().contains("\"br\""));
    }
}
