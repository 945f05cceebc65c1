//! Outbound HTTP helpers shared by every krawl component that reads an answer from a peer it does
//! not control: the control plane (agent), the Schema Registry, the secret stores and the OAuth2
//! token endpoints.
//!
//! # Why
//!
//! `reqwest::Response::bytes()` and `json()` read a body of any size into memory. A hostile or
//! broken peer can answer a small question with gigabytes and take the whole agent down (every
//! job on it, not just the one that asked). [`read_capped`] refuses a body past a limit before it
//! is buffered: at once when `Content-Length` says so, else as soon as the streamed bytes pass it.
//!
//! The limits are per call site ([`limits`]), sized far above any honest answer.

pub use bytes::Bytes;
use bytes::BytesMut;

/// Body size limits by kind of answer. Each is far above an honest answer and far below what
/// would hurt the agent.
pub mod limits {
    /// A Schema Registry answer about one subject (a schema version, its versions, its config):
    /// real schemas are kilobytes and krawl parses none over 1 MiB; this leaves room for JSON
    /// escaping. Up to `schema_registry.concurrency` of them are in flight at once, so this
    /// (not the list's limit) bounds the registry phase's memory: 8 × 4 MiB by default.
    pub const SCHEMA_REGISTRY: usize = 4 * 1024 * 1024;
    /// The Schema Registry's subject list, fetched once per extraction (a million subjects of
    /// 60 bytes is 60 MB).
    pub const SCHEMA_REGISTRY_SUBJECTS: usize = 64 * 1024 * 1024;
    /// A secret store answer (Vault, Azure Key Vault): secrets are at most 64 KiB in Vault's
    /// default KV and 25 KiB in Azure; metadata and login answers are smaller still.
    pub const SECRET_STORE: usize = 1024 * 1024;
    /// An OAuth2 token endpoint answer (an access token and a few fields).
    pub const TOKEN_ENDPOINT: usize = 256 * 1024;
    /// A control-plane answer to the agent (a lease with its job spec, an ack).
    pub const CONTROL_PLANE: usize = 16 * 1024 * 1024;
}

/// A body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The peer sent (or announced) more than the limit; nothing past the limit was buffered.
    #[error("the response body is larger than the limit of {limit} bytes (announced or read: {seen} bytes)")]
    TooLarge { limit: usize, seen: u64 },
    /// The transfer failed midway.
    #[error("reading the response body failed: {0}")]
    Transport(#[source] reqwest::Error),
}

/// Reads `resp`'s body, refusing it once it passes `limit` bytes. An announced
/// `Content-Length` above the limit is refused before any byte is read.
pub async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Result<Bytes, BodyError> {
    if let Some(announced) = resp.content_length() {
        if announced > limit as u64 {
            return Err(BodyError::TooLarge {
                limit,
                seen: announced,
            });
        }
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        let seen = buf.len() as u64 + chunk.len() as u64;
        if seen > limit as u64 {
            return Err(BodyError::TooLarge { limit, seen });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP/1.1 server that answers with `head` then `body_len` bytes of `x`,
    /// written in 8 KiB pieces (stops quietly when the client hangs up).
    async fn serve(head: String, body_len: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req).await;
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let piece = vec![b'x'; 8192];
            let mut left = body_len;
            while left > 0 {
                let n = left.min(piece.len());
                if s.write_all(&piece[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let url = serve(
            "HTTP/1.1 200 OK\r\ncontent-length: 5000\r\nconnection: close\r\n\r\n".into(),
            5000,
        )
        .await;
        let resp = reqwest::get(&url).await.unwrap();
        assert_eq!(read_capped(resp, 5000).await.unwrap().len(), 5000);
    }

    #[tokio::test]
    async fn an_announced_length_past_the_limit_is_refused_before_reading() {
        // Announces 10 GB and sends nothing: the refusal cannot have come from reading.
        let url = serve(
            "HTTP/1.1 200 OK\r\ncontent-length: 10000000000\r\nconnection: close\r\n\r\n".into(),
            0,
        )
        .await;
        let resp = reqwest::get(&url).await.unwrap();
        match read_capped(resp, 1024).await {
            Err(BodyError::TooLarge { limit, seen }) => {
                assert_eq!((limit, seen), (1024, 10_000_000_000))
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_chunked_body_is_cut_off_at_the_limit() {
        // No length announced (the body runs to the end of the connection): 1 MiB against a
        // 64 KiB limit.
        let url = serve(
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".into(),
            1024 * 1024,
        )
        .await;
        let resp = reqwest::get(&url).await.unwrap();
        match read_capped(resp, 64 * 1024).await {
            Err(BodyError::TooLarge { limit, seen }) => {
                assert_eq!(limit, 64 * 1024);
                assert!(seen > 64 * 1024 && seen <= 64 * 1024 + 8192 * 4, "{seen}");
            }
            other => panic!("{other:?}"),
        }
    }
}
