//! Test helpers for krawl's own Kafka client: free ports, a noida-db broker
//! per test, seeding, plaintext settings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener as StdListener;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::broker_client::{BrokerSettings, SecurityProtocol};

/// A free port never handed out before in this process (see krawl_tests::free_port: two
/// bind(0) calls may get the same port, and these tests start servers concurrently).
pub(crate) fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A process group started by the test, killed (by its id) on drop.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.0.id()) {
            // SAFETY: kill(2) on the process group this test created.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.0.wait();
    }
}

pub(crate) fn spawn(cmd: &mut Command, port: u16) -> Proc {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{cmd:?} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    proc
}

pub(crate) struct Noida {
    pub(crate) port: u16,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

pub(crate) fn noida() -> Noida {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let proc = spawn(
        Command::new(std::env::var("KRAWL_NOIDA_BIN").unwrap_or("noida-db".into()))
            .args(["start", "--only", "kafka", "--kafka-port"])
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(dir.path().join("data")),
        port,
    );
    Noida {
        port,
        _proc: proc,
        _dir: dir,
    }
}

pub(crate) const NOIDA_NODE_ID: i32 = 1;

/// Creates `topic` with `counts.len()` partitions and `counts[p]` messages of
/// 100 bytes in partition `p`.
pub(crate) async fn seed(port: u16, topic: &str, counts: &[i64]) {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", format!("127.0.0.1:{port}"));
    let admin: AdminClient<DefaultClientContext> = cfg.create().unwrap();
    let partitions = i32::try_from(counts.len()).unwrap();
    let res = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(res.iter().all(Result::is_ok), "{res:?}");
    let producer: FutureProducer = cfg
        .clone()
        .set("linger.ms", "0")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    let payload = "x".repeat(100);
    for (p, &n) in counts.iter().enumerate() {
        for i in 0..n {
            let key = format!("k{i}");
            producer
                .send(
                    FutureRecord::to(topic)
                        .partition(i32::try_from(p).unwrap())
                        .key(&key)
                        .payload(&payload),
                    Duration::from_secs(20),
                )
                .await
                .map_err(|(e, _)| e)
                .unwrap();
        }
    }
}

pub(crate) fn plaintext() -> BrokerSettings {
    BrokerSettings {
        security_protocol: SecurityProtocol::Plaintext,
        sasl: None,
        tls: None,
        client_id: "krawl-test".into(),
        timeout: Duration::from_secs(10),
    }
}
