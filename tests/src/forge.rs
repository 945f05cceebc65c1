//! Forged Kafka answers, for the [`RecordingProxy`](crate::RecordingProxy) to send instead of
//! the broker's ([`RecordingProxy::forge`](crate::RecordingProxy::forge)): a hostile broker as
//! the tests an attacker would write need it. The bytes are built by hand, as a hostile peer
//! would send them, after the Kafka protocol guide (request/response headers v0–v2, compact
//! arrays as unsigned varints of length + 1).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use anyhow::{bail, Context, Result};

use crate::{RecordedRequest, CLIENT_TIMEOUT};

/// A client request as the proxy read it: its decoded header and the whole frame (without the
/// 4-byte size).
#[derive(Debug, Clone, Copy)]
pub struct KafkaRequest<'a> {
    pub header: &'a RecordedRequest,
    pub frame: &'a [u8],
}

/// An unsigned varint at `*pos`.
fn uvarint(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl KafkaRequest<'_> {
    pub fn api_key(&self) -> i16 {
        self.header.api_key
    }

    pub fn api_version(&self) -> i16 {
        self.header.api_version
    }

    /// `client_software_name` of an ApiVersions v3+ request (KIP-511): `librdkafka` for
    /// librdkafka's connections, `krawl` for krawl's own DescribeLogDirs client. `None` for other
    /// requests or when it cannot be read.
    pub fn client_software_name(&self) -> Option<String> {
        if self.header.api_key != 18 || self.header.api_version < 3 {
            return None;
        }
        let f = self.frame;
        // Request header v2: key, version, correlation id, nullable client id, tagged fields.
        let id_len = i16::from_be_bytes([*f.get(8)?, *f.get(9)?]);
        let mut pos = 10 + usize::try_from(id_len).unwrap_or(0);
        let tags = uvarint(f, &mut pos)?;
        for _ in 0..tags {
            let _tag = uvarint(f, &mut pos)?;
            let size = uvarint(f, &mut pos)?;
            pos += usize::try_from(size).ok()?;
        }
        let len = usize::try_from(uvarint(f, &mut pos)?.checked_sub(1)?).ok()?;
        let name = f.get(pos..pos + len)?;
        String::from_utf8(name.to_vec()).ok()
    }
}

/// The `(api_key, min, max)` ranges a broker advertises: ApiVersions v0 sent straight to `addr`.
pub fn api_versions_of(addr: SocketAddr) -> Result<Vec<(i16, i16, i16)>> {
    let client_id = b"krawl-tests";
    let mut req = Vec::new();
    req.extend_from_slice(&18i16.to_be_bytes());
    req.extend_from_slice(&0i16.to_be_bytes());
    req.extend_from_slice(&1i32.to_be_bytes());
    req.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    req.extend_from_slice(client_id);
    let mut frame = (req.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&req);
    let mut s = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    s.write_all(&frame).context("sending ApiVersions")?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size)
        .context("reading ApiVersions size")?;
    let size = usize::try_from(i32::from_be_bytes(size)).context("negative size")?;
    if size > 1 << 20 {
        bail!("ApiVersions answer of {size} bytes");
    }
    let mut body = vec![0u8; size];
    s.read_exact(&mut body).context("reading ApiVersions")?;
    // correlation id, error code, array of (key, min, max).
    let count = body
        .get(6..10)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .context("ApiVersions answer too short")?;
    let mut out = Vec::new();
    for i in 0..usize::try_from(count).unwrap_or(0) {
        let at = 10 + i * 6;
        let e = body
            .get(at..at + 6)
            .context("ApiVersions answer truncated")?;
        out.push((
            i16::from_be_bytes([e[0], e[1]]),
            i16::from_be_bytes([e[2], e[3]]),
            i16::from_be_bytes([e[4], e[5]]),
        ));
    }
    Ok(out)
}

/// A well-formed ApiVersions v3/v4 answer (after the correlation id: the response header is v0)
/// advertising `keys`.
pub fn api_versions_answer(keys: &[(i16, i16, i16)]) -> Vec<u8> {
    let mut b = 0i16.to_be_bytes().to_vec(); // error code
    put_uvarint(&mut b, u32::try_from(keys.len() + 1).unwrap_or(u32::MAX));
    for (k, lo, hi) in keys {
        for v in [k, lo, hi] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.push(0); // no tagged fields
    }
    b.extend_from_slice(&0i32.to_be_bytes()); // throttle
    b.push(0); // no tagged fields
    b
}

/// An ApiVersions v3 answer claiming 4,294,967,294 API keys in a 12-byte body: a client that
/// allocates by the count it reads aborts.
pub fn api_versions_huge_count() -> Vec<u8> {
    let mut b = 0i16.to_be_bytes().to_vec();
    put_uvarint(&mut b, u32::MAX);
    b.extend_from_slice(&[0; 10]);
    b
}

/// A DescribeLogDirs answer at `version` (1–4) with one log dir, one topic `topic` and
/// 0x7fffffff partitions announced, none sent.
pub fn describe_log_dirs_huge_partition_count(version: i16, topic: &str) -> Vec<u8> {
    let mut b = Vec::new();
    if version >= 2 {
        b.push(0); // response header v1: no tagged fields
        b.extend_from_slice(&0i32.to_be_bytes()); // throttle
        if version >= 3 {
            b.extend_from_slice(&0i16.to_be_bytes()); // error code
        }
        put_uvarint(&mut b, 2); // one log dir
        b.extend_from_slice(&0i16.to_be_bytes());
        put_uvarint(&mut b, 3);
        b.extend_from_slice(b"/d");
        put_uvarint(&mut b, 2); // one topic
        put_uvarint(&mut b, u32::try_from(topic.len() + 1).unwrap_or(1));
        b.extend_from_slice(topic.as_bytes());
        put_uvarint(&mut b, 0x8000_0000); // 0x7fffffff partitions
    } else {
        b.extend_from_slice(&0i32.to_be_bytes()); // throttle
        b.extend_from_slice(&1i32.to_be_bytes()); // one log dir
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&2i16.to_be_bytes());
        b.extend_from_slice(b"/d");
        b.extend_from_slice(&1i32.to_be_bytes()); // one topic
        b.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        b.extend_from_slice(topic.as_bytes());
        b.extend_from_slice(&i32::MAX.to_be_bytes()); // partitions
    }
    b.extend_from_slice(&[0; 10]);
    b
}

/// A DescribeGroups answer at `version` (0–6) describing `group` (no error, a consumer group)
/// with 0x7fffffff members announced, none sent.
pub fn describe_groups_huge_member_count(version: i16, group: &str) -> Vec<u8> {
    let flexible = version >= 5;
    let mut b = Vec::new();
    let string = |b: &mut Vec<u8>, s: &str| {
        if flexible {
            put_uvarint(b, u32::try_from(s.len() + 1).unwrap_or(1));
        } else {
            b.extend_from_slice(&(s.len() as i16).to_be_bytes());
        }
        b.extend_from_slice(s.as_bytes());
    };
    if flexible {
        b.push(0); // response header v1: no tagged fields
    }
    if version >= 1 {
        b.extend_from_slice(&0i32.to_be_bytes()); // throttle
    }
    if flexible {
        put_uvarint(&mut b, 2); // one group
    } else {
        b.extend_from_slice(&1i32.to_be_bytes());
    }
    b.extend_from_slice(&0i16.to_be_bytes()); // error code
    if version >= 6 {
        b.push(0); // error message: null
    }
    for s in [group, "Stable", "consumer", "range"] {
        string(&mut b, s);
    }
    if flexible {
        put_uvarint(&mut b, 0x8000_0000); // 0x7fffffff members
    } else {
        b.extend_from_slice(&i32::MAX.to_be_bytes());
    }
    b.extend_from_slice(&[0; 10]);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_client_software_name_of_api_versions_v3() {
        // Header v2 (client id "krawl", no tags), then "librdkafka", "2.12.1", no tags.
        let mut f = vec![0, 18, 0, 3, 0, 0, 0, 9, 0, 5];
        f.extend_from_slice(b"krawl");
        f.push(0);
        f.push(11);
        f.extend_from_slice(b"librdkafka");
        f.push(7);
        f.extend_from_slice(b"2.12.1");
        f.push(0);
        let header = crate::decode_request_header(0, &f).unwrap();
        let req = KafkaRequest {
            header: &header,
            frame: &f,
        };
        assert_eq!(req.client_software_name().as_deref(), Some("librdkafka"));
        assert_eq!(req.api_key(), 18);
    }
}
