//! A [`Sink`]: the place an attacker wants the agent to send something. A loopback TCP listener
//! that accepts anything (HTTP, Kafka, TLS, …) and records every connection and the bytes it
//! received, so a test can assert that nothing reached it: `sink.connections() == 0`.
//!
//! It speaks just enough HTTP to make a client send what it came to send: a request whose head
//! is complete is answered `200` with a small JSON body (an OAuth2 client then has POSTed its
//! `client_secret`, a registry client its `Authorization` header). Anything else (a Kafka
//! request, a TLS ClientHello) is recorded and never answered. A connection is counted when it
//! is accepted, before any byte arrives: a client that connects and says nothing still counts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// Bytes kept per connection; the rest is read and dropped.
const KEEP_PER_CONNECTION: usize = 1024 * 1024;

/// One connection the sink accepted.
#[derive(Debug, Clone, Default)]
pub struct SinkConnection {
    pub peer: Option<SocketAddr>,
    /// The first [`KEEP_PER_CONNECTION`] bytes received.
    pub bytes: Vec<u8>,
    /// Whether it was answered as an HTTP request.
    pub answered_http: bool,
}

#[derive(Debug, Default)]
struct Shared {
    connections: Mutex<Vec<SinkConnection>>,
    stop: AtomicBool,
}

impl Shared {
    fn update(&self, i: usize, f: impl FnOnce(&mut SinkConnection)) {
        let mut all = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = all.get_mut(i) {
            f(c);
        }
    }
}

/// A listener on 127.0.0.1 that records everything that reaches it. Stops on drop.
#[derive(Debug)]
pub struct Sink {
    port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    /// Listens on a free port of 127.0.0.1 ([`crate::bind_free_port`]).
    pub fn start() -> Result<Sink> {
        let (listener, port) = crate::bind_free_port("sink")?;
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sink-{port}"))
            .spawn(move || {
                for stream in listener.incoming() {
                    if sh.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let index = {
                        let mut all = sh.connections.lock().unwrap_or_else(|p| p.into_inner());
                        all.push(SinkConnection {
                            peer: stream.peer_addr().ok(),
                            ..SinkConnection::default()
                        });
                        all.len() - 1
                    };
                    let sh = sh.clone();
                    let _ = std::thread::Builder::new()
                        .name(format!("sink-{port}-{index}"))
                        .spawn(move || serve(stream, index, &sh));
                }
            })
            .context("sink: spawning its thread")?;
        Ok(Sink {
            port,
            shared,
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.lock().len()
    }

    /// Every connection so far, with what it sent.
    pub fn received(&self) -> Vec<SinkConnection> {
        self.lock().clone()
    }

    /// Whether any connection sent `needle`.
    pub fn saw(&self, needle: &[u8]) -> bool {
        !needle.is_empty()
            && self
                .lock()
                .iter()
                .any(|c| c.bytes.windows(needle.len()).any(|w| w == needle))
    }

    /// What reached the sink, for an assertion message (the first 300 bytes of each
    /// connection, escaped).
    pub fn describe(&self) -> String {
        let all = self.lock();
        if all.is_empty() {
            return "nothing reached the sink".to_string();
        }
        all.iter()
            .enumerate()
            .map(|(i, c)| {
                let head: String = c.bytes[..c.bytes.len().min(300)]
                    .iter()
                    .flat_map(|b| std::ascii::escape_default(*b))
                    .map(char::from)
                    .collect();
                format!(
                    "connection {i} from {:?}: {} bytes: {head}",
                    c.peer,
                    c.bytes.len()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SinkConnection>> {
        self.shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop; it sees `stop` before recording this connection.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one connection to its end (or until the peer is quiet for 10 s), keeping the first
/// bytes; answers an HTTP request once its head and announced body are in.
fn serve(mut stream: TcpStream, index: usize, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut kept = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut answered = false;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let room = KEEP_PER_CONNECTION.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        shared.update(index, |c| c.bytes = kept.clone());
        if !answered && http_request_complete(&kept) {
            answered = true;
            shared.update(index, |c| c.answered_http = true);
            let body = br#"{"access_token":"sink-token","token_type":"Bearer","expires_in":60}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
            let _ = stream.flush();
            // `connection: close`: the answer ends here; what the client still sends is read.
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
    }
}

/// Whether `bytes` start with an HTTP/1 request whose head and `content-length` body are in.
fn http_request_complete(bytes: &[u8]) -> bool {
    let starts_like_http = bytes
        .iter()
        .position(|b| *b == b' ')
        .is_some_and(|sp| sp > 0 && sp < 10 && bytes[..sp].iter().all(u8::is_ascii_uppercase));
    if !starts_like_http {
        return false;
    }
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    bytes.len() >= end + 4 + length
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_every_connection_and_answers_http() {
        let sink = Sink::start().unwrap();
        assert_eq!(sink.connections(), 0);
        // A silent connection counts.
        drop(TcpStream::connect(("127.0.0.1", sink.port())).unwrap());
        // An HTTP POST gets its 200, after its body.
        let mut s = TcpStream::connect(("127.0.0.1", sink.port())).unwrap();
        s.write_all(b"POST /token HTTP/1.1\r\nhost: x\r\ncontent-length: 13\r\n\r\nclient_secret")
            .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !sink.saw(b"client_secret") && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(sink.saw(b"client_secret"), "{}", sink.describe());
        assert_eq!(sink.connections(), 2, "{}", sink.describe());
        // Bytes that are not HTTP are recorded, not answered.
        assert!(!http_request_complete(b"\x00\x00\x00\x10\x00\x12"));
    }
}
