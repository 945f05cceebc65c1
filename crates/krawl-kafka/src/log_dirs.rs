//! Partition sizes on disk, from the Kafka `DescribeLogDirs` API.
//!
//! # Why this exists
//!
//! librdkafka (and so `rdkafka`) has no DescribeLogDirs API, so the admin
//! client cannot tell how many bytes a topic takes on disk. This module asks
//! each broker directly, over krawl's own client ([`crate::broker_client`]:
//! connection, TLS, SASL, bounded decoding); a hostile broker costs its own
//! entry in [`LogDirSizes::broker_errors`], never the process.
//!
//! # Invariants
//!
//! - **Bounded**: at most [`MAX_CONCURRENT_BROKERS`] brokers at a time, one
//!   connection each; requests carry at most [`TOPICS_PER_REQUEST`] topics and
//!   about [`PARTITIONS_PER_REQUEST`] partitions; a response larger than
//!   [`MAX_RESPONSE_BYTES`] is refused before it is read; each request is
//!   built when it is sent, at most [`PIPELINE_DEPTH`] are in flight on a
//!   connection (so a slow network costs a round trip per
//!   [`PIPELINE_DEPTH`] requests, not per request), and a response is
//!   decoded in place and visited, so memory grows only with the sizes table
//!   (one `Option<i64>` per requested partition, a [`PartitionTable`]) and at
//!   most [`MAX_LOG_DIR_ERRORS`] log-dir errors are kept per broker.
//! - **Counted once**: a response adds only the partitions of its own
//!   request. A broker that answers beyond what it was asked (noida-db
//!   answers every request with all its partitions) has its first such
//!   answer counted for every topic not yet counted, and is asked nothing
//!   more: before this rule every size was multiplied by the number of
//!   requests, and the work grew with the square of the topic count.
//! - **Failures are per broker**: a broker that cannot be reached, refuses the
//!   login or reports a log-dir error becomes an entry in
//!   [`LogDirSizes::broker_errors`]; the other brokers still count.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use futures::{FutureExt, StreamExt};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{ApiKey, DescribeLogDirsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use krawl_wire::{shown, DescribeLogDirsResponse, LogDirPartition, LogDirsVisitor};

use crate::broker_client::{kafka_error, version_of, BrokerClient, Next};
pub use crate::broker_client::{
    BrokerError, BrokerSettings, SaslMechanism, SaslSettings, SecurityProtocol, TlsSettings,
    MAX_CONCURRENT_BROKERS, PIPELINE_DEPTH,
};
use crate::partition_table::PartitionTable;

/// Topics per DescribeLogDirs request.
pub const TOPICS_PER_REQUEST: usize = 1000;
/// Partitions per DescribeLogDirs request (a single larger topic goes alone).
pub const PARTITIONS_PER_REQUEST: usize = 10_000;
/// Log-dir errors kept per broker; the rest are counted in one more entry.
pub const MAX_LOG_DIR_ERRORS: usize = 16;

const DESCRIBE_LOG_DIRS_MIN: i16 = 1;
const DESCRIBE_LOG_DIRS_MAX: i16 = 4;

/// What [`partition_sizes`] found.
#[derive(Debug, Default)]
pub struct LogDirSizes {
    /// Bytes on disk per partition of the requested topics (addressed by the
    /// topic's index in the request and the partition id), summed over the
    /// replicas on all brokers that answered (future replicas of a log-dir
    /// move excluded). `None` when no answering broker reported it (e.g. its
    /// replicas are on a failed broker): unknown, not 0.
    pub sizes: PartitionTable<Option<i64>>,
    /// Brokers (or log dirs of a broker) that could not be described.
    pub broker_errors: Vec<(i32, BrokerError)>,
}

/// A topic to describe: its name and partition count (partitions `0..count`).
///
/// DescribeLogDirs has no "all partitions of this topic" form: a request
/// names each partition, so the caller passes the counts from Metadata.
pub type TopicPartitionCount<'a> = (&'a str, i32);

/// Size in bytes per (topic, partition), summed over the replicas on all given
/// brokers.
///
/// `brokers` are `(id, host, port)` from Metadata; every one is asked, at most
/// [`MAX_CONCURRENT_BROKERS`] at a time. `topics` are `(name, partition count)`.
///
/// Returns `Err` only for a failure that concerns the whole call:
/// - `Unsupported("OAUTHBEARER")` for that SASL mechanism (not implemented);
/// - `Unsupported(..)` when at least one broker answered ApiVersions and none
///   advertised DescribeLogDirs v1 or later;
/// - `Tls`/`Auth` with broker -1 for unusable TLS files or missing SASL settings.
///
/// With no brokers or no topics nothing is contacted and the result is empty.
pub async fn partition_sizes(
    settings: &BrokerSettings,
    brokers: &[(i32, String, u16)],
    topics: &[TopicPartitionCount<'_>],
) -> Result<LogDirSizes, BrokerError> {
    partition_sizes_with(&BrokerClient::new(settings)?, brokers, topics).await
}

/// [`partition_sizes`] with a client already made (the extraction makes one
/// for all its phases).
pub async fn partition_sizes_with(
    client: &BrokerClient<'_>,
    brokers: &[(i32, String, u16)],
    topics: &[TopicPartitionCount<'_>],
) -> Result<LogDirSizes, BrokerError> {
    let mut out = LogDirSizes {
        sizes: PartitionTable::new(topics.iter().map(|(_, n)| *n), None),
        broker_errors: Vec::new(),
    };
    if brokers.is_empty() || topics.is_empty() {
        return Ok(out);
    }

    let ranges = request_ranges(topics);
    let wanted: HashMap<&str, usize> = topics
        .iter()
        .enumerate()
        .map(|(i, (t, _))| (*t, i))
        .collect();
    // One table for all brokers, filled as each response is visited: the only
    // memory that grows with the cluster (the brokers' futures share one task,
    // so the lock is never contended).
    let sizes = Mutex::new(std::mem::take(&mut out.sizes));
    let ctx = BrokerCtx {
        client,
        topics,
        ranges: &ranges,
        wanted: &wanted,
        sizes: &sizes,
    };

    let mut answered = 0usize;
    let mut supported = 0usize;
    // Futures built up front (see extract.rs: keeps the whole extraction `Send`).
    let brokers: Vec<_> = brokers
        .iter()
        .map(|(id, host, port)| ctx.describe_broker(*id, host, *port).boxed())
        .collect();
    let mut results = futures::stream::iter(brokers).buffer_unordered(MAX_CONCURRENT_BROKERS);
    while let Some(outcome) = results.next().await {
        let BrokerOutcome {
            broker,
            answered_api_versions,
            advertises,
            errors,
        } = outcome;
        answered += usize::from(answered_api_versions);
        supported += usize::from(advertises);
        out.broker_errors
            .extend(errors.into_iter().map(|e| (broker, e)));
    }
    drop(results);
    out.sizes = sizes.into_inner().unwrap_or_else(|e| e.into_inner());
    if answered > 0 && supported == 0 {
        return Err(BrokerError::Unsupported(
            "DescribeLogDirs (API key 35, v1 or later): no broker advertises it".to_string(),
        ));
    }
    out.broker_errors.sort_by_key(|(b, _)| *b);
    Ok(out)
}

/// How `topics` are cut into requests: consecutive ranges of at most
/// [`TOPICS_PER_REQUEST`] topics and about [`PARTITIONS_PER_REQUEST`]
/// partitions (a larger topic goes alone). Topics without partitions are in
/// a range but not in its request.
fn request_ranges(topics: &[TopicPartitionCount<'_>]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut partitions = 0usize;
    for (i, (_, count)) in topics.iter().enumerate() {
        let n = usize::try_from(*count).unwrap_or(0);
        if n > 0
            && partitions > 0
            && (i - start >= TOPICS_PER_REQUEST || partitions + n > PARTITIONS_PER_REQUEST)
        {
            ranges.push(start..i);
            start = i;
            partitions = 0;
        }
        partitions += n;
    }
    if partitions > 0 {
        ranges.push(start..topics.len());
    }
    ranges
}

/// The DescribeLogDirs request for these topics (built when it is sent).
fn request(topics: &[TopicPartitionCount<'_>]) -> DescribeLogDirsRequest {
    let topics = topics
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(name, count)| {
            DescribableLogDirTopic::default()
                .with_topic(TopicName(StrBytes::from_string((*name).to_string())))
                .with_partitions((0..*count).collect())
        })
        .collect();
    DescribeLogDirsRequest::default().with_topics(Some(topics))
}

struct BrokerCtx<'a> {
    client: &'a BrokerClient<'a>,
    topics: &'a [TopicPartitionCount<'a>],
    ranges: &'a [Range<usize>],
    /// Topic name → index in `topics`.
    wanted: &'a HashMap<&'a str, usize>,
    sizes: &'a Mutex<PartitionTable<Option<i64>>>,
}

struct BrokerOutcome {
    broker: i32,
    answered_api_versions: bool,
    advertises: bool,
    errors: Vec<BrokerError>,
}

impl BrokerCtx<'_> {
    async fn describe_broker(&self, broker: i32, host: &str, port: u16) -> BrokerOutcome {
        let mut outcome = BrokerOutcome {
            broker,
            answered_api_versions: false,
            advertises: false,
            errors: Vec::new(),
        };
        let mut dir_errors = DirErrors::default();
        let result = self
            .run(broker, host, port, &mut outcome, &mut dir_errors)
            .await;
        outcome.errors = dir_errors.finish(broker);
        if let Err(e) = result {
            outcome.errors.push(e);
        }
        outcome
    }

    async fn run(
        &self,
        broker: i32,
        host: &str,
        port: u16,
        outcome: &mut BrokerOutcome,
        dir_errors: &mut DirErrors,
    ) -> Result<(), BrokerError> {
        // A connection an earlier phase handed back is ready (authenticated).
        let (mut conn, versions, fresh) = match self.client.idle_conn(broker, host, port) {
            Some((conn, versions)) => (conn, versions, false),
            None => {
                let mut conn = self.client.connect(broker, host, port).await?;
                let versions = conn.api_versions().await?;
                (conn, versions, true)
            }
        };
        outcome.answered_api_versions = true;

        let version = version_of(
            &versions,
            format_args!("broker {broker}"),
            ApiKey::DescribeLogDirs,
            DESCRIBE_LOG_DIRS_MIN,
            DESCRIBE_LOG_DIRS_MAX,
        )?;
        outcome.advertises = true;

        if fresh {
            self.client.authenticate(&mut conn, &versions).await?;
        }

        // Pipelined: up to PIPELINE_DEPTH requests in flight, answers read in order.
        conn.pipeline(
            version,
            PIPELINE_DEPTH,
            self.ranges.iter().cloned(),
            |range| request(&self.topics[range.clone()]),
            |conn, body, range| {
                let response = DescribeLogDirsResponse::parse(body, version)
                    .map_err(|e| conn.decode_error(e))?;
                if let Some(err) = ResponseError::try_from_code(response.error_code) {
                    return Err(kafka_error(broker, "DescribeLogDirs", err, None));
                }
                // An answer beyond the request stands for every topic not yet counted.
                let mut beyond = Beyond {
                    wanted: self.wanted,
                    after: range.end,
                    found: false,
                };
                response
                    .visit(&mut beyond)
                    .map_err(|e| conn.decode_error(e))?;
                let counted = if beyond.found {
                    range.start..self.topics.len()
                } else {
                    range
                };
                // Checked whole by `parse`: the visitor adds a response entirely or not at all.
                let mut sizes = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
                let mut visitor = Aggregate {
                    broker,
                    wanted: self.wanted,
                    counted,
                    sizes: &mut sizes,
                    errors: &mut *dir_errors,
                    dir_ok: false,
                };
                response
                    .visit(&mut visitor)
                    .map_err(|e| conn.decode_error(e))?;
                if beyond.found {
                    tracing::debug!(
                        broker,
                        "DescribeLogDirs answered beyond its request; that answer counted for all remaining topics"
                    );
                    return Ok(Next::Done);
                }
                Ok(Next::More)
            },
        )
        .await?;
        self.client.checkin(host, port, conn, versions);
        Ok(())
    }
}

/// Whether a response names a requested topic after its own request's range.
struct Beyond<'a> {
    wanted: &'a HashMap<&'a str, usize>,
    after: usize,
    found: bool,
}

impl LogDirsVisitor for Beyond<'_> {
    fn log_dir(&mut self, _: i16, _: &str) {}

    fn partition(&mut self, p: LogDirPartition<'_>) {
        if !self.found {
            self.found = self.wanted.get(p.topic).is_some_and(|&t| t >= self.after);
        }
    }
}

/// Adds the sizes of one DescribeLogDirs response to the table: partitions
/// of the `counted` topics only, future replicas (a log-dir move in
/// progress) excluded, nothing from a log dir that reports an error.
struct Aggregate<'a> {
    broker: i32,
    wanted: &'a HashMap<&'a str, usize>,
    /// Indexes of the topics this response counts for.
    counted: Range<usize>,
    sizes: &'a mut PartitionTable<Option<i64>>,
    errors: &'a mut DirErrors,
    dir_ok: bool,
}

impl LogDirsVisitor for Aggregate<'_> {
    fn log_dir(&mut self, error_code: i16, path: &str) {
        self.dir_ok = error_code == 0;
        if let Some(err) = ResponseError::try_from_code(error_code) {
            self.errors
                .push(|| kafka_error(self.broker, &format!("log dir {}", shown(path)), err, None));
        }
    }

    fn partition(&mut self, p: LogDirPartition<'_>) {
        if !self.dir_ok || p.is_future_key {
            return;
        }
        let Some(&topic) = self.wanted.get(p.topic) else {
            return;
        };
        if !self.counted.contains(&topic) {
            return;
        }
        let Some(total) = self.sizes.get_mut(topic, p.partition_index) else {
            return;
        };
        // Saturating: a broker's claim of i64::MAX bytes must not overflow the sum.
        *total = Some(total.unwrap_or(0).saturating_add(p.size));
    }
}

/// A broker's log-dir errors: the first [`MAX_LOG_DIR_ERRORS`] kept, the
/// rest counted (a response can name millions of failed dirs).
#[derive(Default)]
struct DirErrors {
    kept: Vec<BrokerError>,
    more: usize,
}

impl DirErrors {
    fn push(&mut self, error: impl FnOnce() -> BrokerError) {
        if self.kept.len() < MAX_LOG_DIR_ERRORS {
            self.kept.push(error());
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self, broker: i32) -> Vec<BrokerError> {
        if self.more > 0 {
            self.kept.push(BrokerError::Protocol {
                broker,
                cause: format!("{} more log dirs reported errors", self.more),
            });
        }
        self.kept
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::test_broker::*;
    use std::path::PathBuf;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use krawl_secrets::SecretString;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // -- Requests ------------------------------------------------------------------------------

    #[test]
    fn requests_are_chunked() {
        let names: Vec<String> = (0..2500).map(|i| format!("t{i}")).collect();
        let topics: Vec<(&str, i32)> = names.iter().map(|n| (n.as_str(), 3)).collect();
        let ranges = request_ranges(&topics);
        assert_eq!(ranges, vec![0..1000, 1000..2000, 2000..2500]);
        let r = request(&topics[ranges[0].clone()]);
        assert_eq!(r.topics.as_ref().unwrap().len(), 1000);
        assert_eq!(r.topics.as_ref().unwrap()[0].partitions, vec![0, 1, 2]);
        // By partitions: 4,000-partition topics go 2 per request; a huge one alone; a topic
        // without partitions is in a range but not in its request.
        let topics = [
            ("a", 4000),
            ("b", 4000),
            ("c", 4000),
            ("huge", 20_000),
            ("empty", 0),
        ];
        let ranges = request_ranges(&topics);
        assert_eq!(ranges, vec![0..2, 2..3, 3..5]);
        let last = request(&topics[3..5]);
        assert_eq!(last.topics.as_ref().unwrap().len(), 1);
        assert!(request_ranges(&[("empty", 0)]).is_empty());
    }

    // -- Aggregation ---------------------------------------------------------------------------

    /// What the visitor adds: requested partitions of healthy log dirs, no future replicas,
    /// sums that saturate instead of overflowing, and a bounded list of log-dir errors.
    #[test]
    fn aggregate_counts_only_what_was_asked() {
        // Topics 0 ("before") and 2 ("after") exist but are outside this response's range.
        let wanted: HashMap<&str, usize> = HashMap::from([("before", 0), ("t", 1), ("after", 2)]);
        let mut sizes = PartitionTable::new([1, 2, 1], None);
        let mut errors = DirErrors::default();
        let mut v = Aggregate {
            broker: 4,
            wanted: &wanted,
            counted: 1..2,
            sizes: &mut sizes,
            errors: &mut errors,
            dir_ok: false,
        };
        let p = |topic, partition_index, size, is_future_key| LogDirPartition {
            topic,
            partition_index,
            size,
            is_future_key,
        };
        v.log_dir(0, "/a");
        for part in [
            p("t", 0, i64::MAX, false),
            p("t", 0, 5, false),
            p("t", 1, 7, false),
            p("t", 1, 1000, true),   // future replica
            p("t", 2, 1000, false),  // not requested
            p("t", -1, 1000, false), // not a partition
            p("other", 0, 1000, false),
            p("before", 0, 1000, false), // not in this response's range
            p("after", 0, 1000, false),
        ] {
            v.partition(part);
        }
        for i in 0..100 {
            v.log_dir(56, &format!("/broken{i}\n"));
            v.partition(p("t", 1, 1000, false));
        }
        assert_eq!(sizes.values(), &[None, Some(i64::MAX), Some(7), None]);
        let errors = errors.finish(4);
        assert_eq!(errors.len(), MAX_LOG_DIR_ERRORS + 1);
        assert!(
            matches!(&errors[0], BrokerError::Protocol { broker: 4, cause }
                if cause.starts_with("log dir /broken0\\n: ")),
            "{}",
            errors[0]
        );
        assert_eq!(
            errors[MAX_LOG_DIR_ERRORS].to_string(),
            "broker 4: protocol error: 84 more log dirs reported errors"
        );
    }

    // -- Brokers -------------------------------------------------------------------------------

    fn topics<'a>(list: &[(&'a str, i32)]) -> Vec<(&'a str, i32)> {
        list.to_vec()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sizes_from_noida_plaintext_and_sasl_plain() {
        let n = noida();
        seed(n.port, "sized", &[5, 20, 0]).await;
        let brokers = [(NOIDA_NODE_ID, "127.0.0.1".to_string(), n.port)];
        let want = topics(&[("sized", 3), ("missing-topic", 2)]);

        let got = partition_sizes(&plaintext(), &brokers, &want)
            .await
            .unwrap();
        eprintln!("noida sizes: {:?}", got.sizes);
        assert!(got.broker_errors.is_empty(), "{:?}", got.broker_errors);
        let size = |p: i32| got.sizes.get(0, p).flatten();
        assert!(size(0).unwrap() > 0);
        assert!(size(1).unwrap() > size(0).unwrap());
        assert_eq!(size(2), Some(0));
        assert_eq!(got.sizes.get(1, 0), Some(None), "missing-topic");

        // SASL_PLAINTEXT with PLAIN (noida accepts any password).
        let sasl = BrokerSettings {
            security_protocol: SecurityProtocol::SaslPlaintext,
            sasl: Some(SaslSettings {
                mechanism: SaslMechanism::Plain,
                username: "alice".into(),
                password: SecretString::new("s3cret-pw"),
            }),
            ..plaintext()
        };
        let got_sasl = partition_sizes(&sasl, &brokers, &want).await.unwrap();
        assert!(
            got_sasl.broker_errors.is_empty(),
            "{:?}",
            got_sasl.broker_errors
        );
        assert_eq!(got_sasl.sizes, got.sizes);

        // noida has no SCRAM: a clear Auth error naming the enabled mechanisms,
        // without the password.
        let scram = BrokerSettings {
            sasl: Some(SaslSettings {
                mechanism: SaslMechanism::ScramSha256,
                ..sasl.sasl.clone().unwrap()
            }),
            ..sasl.clone()
        };
        let got = partition_sizes(&scram, &brokers, &want).await.unwrap();
        assert!(got.sizes.values().iter().all(Option::is_none));
        let [(NOIDA_NODE_ID, BrokerError::Auth { cause, .. })] = &got.broker_errors[..] else {
            panic!("{:?}", got.broker_errors)
        };
        eprintln!("noida SCRAM: {cause}");
        assert!(
            cause.contains("SCRAM-SHA-256") && !cause.contains("s3cret"),
            "{cause}"
        );

        // OAUTHBEARER is refused before anything is contacted.
        let oauth = BrokerSettings {
            sasl: Some(SaslSettings {
                mechanism: SaslMechanism::OauthBearer,
                ..sasl.sasl.clone().unwrap()
            }),
            ..sasl
        };
        assert!(matches!(
            partition_sizes(&oauth, &brokers, &want).await,
            Err(BrokerError::Unsupported(m)) if m == "OAUTHBEARER"
        ));
    }

    /// noida-db answers every DescribeLogDirs request with all its partitions. Split over
    /// several requests, each partition is still counted once (it was counted once per request,
    /// a size 2× too large here and 50× on the 50,000-topic benchmark), and the broker is asked
    /// once, not once per request.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broker_answering_beyond_the_request_is_counted_once() {
        let n = noida();
        seed(n.port, "counted-once", &[7, 3]).await;
        let brokers = [(NOIDA_NODE_ID, "127.0.0.1".to_string(), n.port)];
        let alone = partition_sizes(&plaintext(), &brokers, &[("counted-once", 2)])
            .await
            .unwrap();
        let (a0, a1) = (
            alone.sizes.get(0, 0).flatten(),
            alone.sizes.get(0, 1).flatten(),
        );
        assert!(a0.unwrap() > a1.unwrap(), "{alone:?}");

        // The real topic sorts into the second request (TOPICS_PER_REQUEST names before it).
        let names: Vec<String> = (0..TOPICS_PER_REQUEST + 10)
            .map(|i| format!("absent-{i:05}"))
            .collect();
        let mut want: Vec<(&str, i32)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        want.insert(TOPICS_PER_REQUEST + 5, ("counted-once", 2));
        assert_eq!(request_ranges(&want).len(), 2);
        let got = partition_sizes(&plaintext(), &brokers, &want)
            .await
            .unwrap();
        assert!(got.broker_errors.is_empty(), "{:?}", got.broker_errors);
        let t = TOPICS_PER_REQUEST + 5;
        assert_eq!(got.sizes.get(t, 0).flatten(), a0);
        assert_eq!(got.sizes.get(t, 1).flatten(), a1);
        assert!(got.sizes.get(0, 0).unwrap().is_none());
    }

    /// A broker that accepts connections and never answers.
    async fn silent_broker() -> (u16, tokio::task::JoinHandle<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        (port, task)
    }

    /// A broker that answers ApiVersions v3 the way an old broker does: the v0
    /// format, UNSUPPORTED_VERSION, and its ranges, here without key 35.
    async fn old_broker() -> (u16, tokio::task::JoinHandle<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let len = s.read_i32().await.unwrap();
                    let mut req = vec![0u8; usize::try_from(len).unwrap()];
                    s.read_exact(&mut req).await.unwrap();
                    assert_eq!(i16::from_be_bytes([req[0], req[1]]), 18, "only ApiVersions");
                    let corr = &req[4..8];
                    let keys: &[(i16, i16, i16)] = &[(3, 0, 9), (17, 0, 1), (18, 0, 2), (36, 0, 1)];
                    let mut body = Vec::new();
                    body.extend_from_slice(corr);
                    body.extend_from_slice(&35i16.to_be_bytes());
                    body.extend_from_slice(&i32::try_from(keys.len()).unwrap().to_be_bytes());
                    for (k, lo, hi) in keys {
                        for v in [k, lo, hi] {
                            body.extend_from_slice(&v.to_be_bytes());
                        }
                    }
                    let mut frame = i32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
                    frame.extend(body);
                    s.write_all(&frame).await.unwrap();
                    let _ = s.read_i32().await; // hold until the client closes
                });
            }
        });
        (port, task)
    }

    #[tokio::test]
    async fn unreachable_and_silent_brokers_are_broker_errors() {
        let refused = free_port();
        let (silent, task) = silent_broker().await;
        let settings = BrokerSettings {
            timeout: Duration::from_secs(1),
            ..plaintext()
        };
        let brokers = [
            (1, "127.0.0.1".to_string(), refused),
            (2, "127.0.0.1".to_string(), silent),
        ];
        let start = Instant::now();
        let got = partition_sizes(&settings, &brokers, &topics(&[("t", 1)]))
            .await
            .unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert!(got.sizes.values().iter().all(Option::is_none));
        let errs: Vec<String> = got
            .broker_errors
            .iter()
            .map(|(_, e)| e.to_string())
            .collect();
        eprintln!("{errs:?}");
        assert!(matches!(
            got.broker_errors[0],
            (1, BrokerError::Connect { broker: 1, .. })
        ));
        assert!(matches!(
            got.broker_errors[1],
            (2, BrokerError::Timeout { broker: 2 })
        ));
        task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn broker_without_describe_log_dirs() {
        let (old, task) = old_broker().await;
        let old_only = [(7, "127.0.0.1".to_string(), old)];
        let e = partition_sizes(&plaintext(), &old_only, &topics(&[("t", 1)]))
            .await
            .unwrap_err();
        assert!(matches!(e, BrokerError::Unsupported(_)), "{e}");
        eprintln!("{e}");

        // Mixed with a broker that has it: the old one is a broker error.
        let n = noida();
        seed(n.port, "mixed", &[3]).await;
        let brokers = [
            (NOIDA_NODE_ID, "127.0.0.1".to_string(), n.port),
            (7, "127.0.0.1".to_string(), old),
        ];
        let got = partition_sizes(&plaintext(), &brokers, &topics(&[("mixed", 1)]))
            .await
            .unwrap();
        assert!(got.sizes.get(0, 0).flatten().unwrap() > 0);
        assert!(
            matches!(&got.broker_errors[..], [(7, BrokerError::Unsupported(_))]),
            "{:?}",
            got.broker_errors
        );
        task.abort();
    }

    // -- Hostile brokers -----------------------------------------------------------------------

    /// What a hostile broker answers.
    #[derive(Clone, Copy, Debug)]
    enum Hostile {
        /// ApiVersions v3 whose compact `api_keys` count claims 4,294,967,294 entries.
        ApiVersionsHugeCount,
        /// The KIP-511 fallback (v0 format, UNSUPPORTED_VERSION) with a legacy count of 2^31 - 1.
        ApiVersionsFallbackHugeCount,
        /// A sane ApiVersions (DescribeLogDirs up to `max`), then a DescribeLogDirs answer whose
        /// partition count claims 4,294,967,294 (flexible) or 2^31 - 1 (v1) entries.
        LogDirsHugeCount { max: i16 },
        /// A sane ApiVersions, then a DescribeLogDirs v4 answer with a whole partition of a
        /// requested topic, cut short after it (in the log dir's `total_bytes`).
        LogDirsTruncated,
    }

    /// A broker that answers every request from a script written to attack the decoder: the
    /// bytes are built by hand here, as a hostile peer would send them.
    async fn hostile_broker(mode: Hostile) -> (u16, tokio::task::JoinHandle<()>) {
        fn uvarint(out: &mut Vec<u8>, mut v: u32) {
            while v >= 0x80 {
                out.push((v as u8) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }
        /// A well-formed ApiVersions v3 body advertising DescribeLogDirs v1..=`max`.
        fn api_versions_v3(max: i16) -> Vec<u8> {
            let keys: &[(i16, i16, i16)] = &[(17, 0, 1), (18, 0, 3), (35, 1, max), (36, 0, 2)];
            let mut b = 0i16.to_be_bytes().to_vec();
            uvarint(&mut b, u32::try_from(keys.len() + 1).unwrap());
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
        fn answer(mode: Hostile, key: i16, version: i16) -> Vec<u8> {
            let mut b = Vec::new();
            match (mode, key) {
                (Hostile::ApiVersionsHugeCount, 18) => {
                    b.extend_from_slice(&0i16.to_be_bytes());
                    uvarint(&mut b, u32::MAX);
                    b.extend_from_slice(&[0; 10]);
                }
                (Hostile::ApiVersionsFallbackHugeCount, 18) => {
                    b.extend_from_slice(&35i16.to_be_bytes());
                    b.extend_from_slice(&i32::MAX.to_be_bytes());
                    b.extend_from_slice(&[0; 10]);
                }
                (Hostile::LogDirsHugeCount { max }, 18) => b = api_versions_v3(max),
                (Hostile::LogDirsTruncated, 18) => b = api_versions_v3(4),
                (Hostile::LogDirsHugeCount { .. }, 35) if version >= 2 => {
                    b.push(0); // response header v1: no tagged fields
                    b.extend_from_slice(&0i32.to_be_bytes()); // throttle
                    if version >= 3 {
                        b.extend_from_slice(&0i16.to_be_bytes());
                    }
                    uvarint(&mut b, 2); // one log dir
                    b.extend_from_slice(&0i16.to_be_bytes());
                    uvarint(&mut b, 3);
                    b.extend_from_slice(b"/d");
                    uvarint(&mut b, 2); // one topic
                    uvarint(&mut b, 2);
                    b.extend_from_slice(b"t");
                    uvarint(&mut b, u32::MAX); // partitions
                    b.extend_from_slice(&[0; 10]);
                }
                (Hostile::LogDirsHugeCount { .. }, 35) => {
                    b.extend_from_slice(&0i32.to_be_bytes()); // throttle
                    b.extend_from_slice(&1i32.to_be_bytes()); // one log dir
                    b.extend_from_slice(&0i16.to_be_bytes());
                    b.extend_from_slice(&2i16.to_be_bytes());
                    b.extend_from_slice(b"/d");
                    b.extend_from_slice(&1i32.to_be_bytes()); // one topic
                    b.extend_from_slice(&1i16.to_be_bytes());
                    b.extend_from_slice(b"t");
                    b.extend_from_slice(&i32::MAX.to_be_bytes()); // partitions
                    b.extend_from_slice(&[0; 10]);
                }
                (Hostile::LogDirsTruncated, 35) => {
                    b.push(0); // response header v1: no tagged fields
                    b.extend_from_slice(&0i32.to_be_bytes()); // throttle
                    b.extend_from_slice(&0i16.to_be_bytes()); // error code (v3+)
                    uvarint(&mut b, 2);
                    b.extend_from_slice(&0i16.to_be_bytes());
                    uvarint(&mut b, 3);
                    b.extend_from_slice(b"/d");
                    uvarint(&mut b, 2); // one topic, a requested one
                    uvarint(&mut b, 6);
                    b.extend_from_slice(b"sized");
                    uvarint(&mut b, 2); // one whole partition: 100 bytes in sized-0
                    b.extend_from_slice(&0i32.to_be_bytes());
                    b.extend_from_slice(&100i64.to_be_bytes());
                    b.extend_from_slice(&0i64.to_be_bytes());
                    b.push(0);
                    b.push(0);
                    b.push(0); // end of the topic
                    b.extend_from_slice(&[0, 0, 0]); // total_bytes (v4), cut short
                }
                _ => panic!("{mode:?}: unexpected request key {key} v{version}"),
            }
            b
        }
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    while let Ok(len) = s.read_i32().await {
                        let mut req = vec![0u8; usize::try_from(len).unwrap()];
                        s.read_exact(&mut req).await.unwrap();
                        let key = i16::from_be_bytes([req[0], req[1]]);
                        let version = i16::from_be_bytes([req[2], req[3]]);
                        let mut body = req[4..8].to_vec(); // correlation id
                        body.extend(answer(mode, key, version));
                        let mut frame = i32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
                        frame.extend(body);
                        if s.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, task)
    }

    /// A broker that sends huge array counts or a cut-off body costs its own entry in
    /// `broker_errors` (a protocol error naming the broker and the API), never the process; the
    /// real broker in the same call still counts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hostile_brokers_are_protocol_errors() {
        let n = noida();
        seed(n.port, "sized", &[3]).await;
        let want = topics(&[("sized", 1)]);
        let noida_only = [(NOIDA_NODE_ID, "127.0.0.1".to_string(), n.port)];
        let honest = partition_sizes(&plaintext(), &noida_only, &want)
            .await
            .unwrap();
        assert!(honest.sizes.get(0, 0).flatten().unwrap() > 0, "{honest:?}");
        let cases = [
            (11, Hostile::ApiVersionsHugeCount, "ApiVersions"),
            (12, Hostile::ApiVersionsFallbackHugeCount, "ApiVersions"),
            (13, Hostile::LogDirsHugeCount { max: 4 }, "DescribeLogDirs"),
            (14, Hostile::LogDirsHugeCount { max: 1 }, "DescribeLogDirs"),
            (15, Hostile::LogDirsTruncated, "DescribeLogDirs"),
        ];
        let mut brokers = vec![(NOIDA_NODE_ID, "127.0.0.1".to_string(), n.port)];
        let mut tasks = Vec::new();
        for (id, mode, _) in cases {
            let (port, task) = hostile_broker(mode).await;
            brokers.push((id, "127.0.0.1".to_string(), port));
            tasks.push(task);
        }
        let got = partition_sizes(&plaintext(), &brokers, &want)
            .await
            .unwrap();
        // The real broker still counts; nothing of a refused response does (the cut one
        // carries 100 bytes for sized-0 before its end).
        assert_eq!(got.sizes, honest.sizes);
        assert_eq!(
            got.broker_errors.len(),
            cases.len(),
            "{:?}",
            got.broker_errors
        );
        for ((id, mode, api), (broker, e)) in cases.iter().zip(&got.broker_errors) {
            let shown = e.to_string();
            eprintln!("{mode:?}: {shown}");
            assert_eq!(broker, id, "{shown}");
            assert!(
                matches!(e, BrokerError::Protocol { broker, .. } if broker == id),
                "{mode:?}: {shown}"
            );
            assert!(
                shown.starts_with(&format!("broker {id}: protocol error: {api} v")),
                "{mode:?}: {shown}"
            );
        }
        for t in tasks {
            t.abort();
        }
    }

    // -- TLS (stunnel in front of noida) -------------------------------------------------------

    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
        fn read(&self, name: &str) -> String {
            std::fs::read_to_string(self.path(name)).unwrap()
        }
    }

    /// CA, a server certificate for IP 127.0.0.1 only (not "localhost"), a
    /// client certificate, and an unrelated CA.
    fn pki() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        // Distinct names: OpenSSL (stunnel) takes a leaf named like its issuer for self-signed.
        let dn = |cn: &str| {
            let mut dn = rcgen::DistinguishedName::new();
            dn.push(rcgen::DnType::CommonName, cn);
            dn
        };
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
        let ca = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name = dn(&format!("krawl {name}"));
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let key = KeyPair::generate().unwrap();
            let cert = p.self_signed(&key).unwrap();
            write(&format!("{name}.pem"), cert.pem());
            (cert, key)
        };
        let (ca_cert, ca_key) = ca("ca");
        ca("wrong-ca");
        for (name, sans, eku) in [
            (
                "server",
                vec!["127.0.0.1".to_string()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            ("client", vec![], ExtendedKeyUsagePurpose::ClientAuth),
        ] {
            let mut p = CertificateParams::new(sans).unwrap();
            p.distinguished_name = dn(&format!("krawl {name}"));
            p.is_ca = IsCa::ExplicitNoCa;
            p.extended_key_usages = vec![eku];
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        Pki { dir }
    }

    /// stunnel on `port` forwarding to noida; with `mtls`, client certificates
    /// signed by the CA are required.
    fn stunnel(pki: &Pki, port: u16, noida_port: u16, mtls: bool) -> Proc {
        let mut conf = format!(
            "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{noida_port}\ncert = {}\nkey = {}\n",
            pki.path("server.pem").display(),
            pki.path("server.key").display()
        );
        if mtls {
            conf.push_str(&format!(
                "CAfile = {}\nverify = 2\n",
                pki.path("ca.pem").display()
            ));
        }
        let conf_path = pki.path(&format!("stunnel-{port}.conf"));
        std::fs::write(&conf_path, conf).unwrap();
        spawn(Command::new("stunnel4").arg(conf_path), port)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_and_mtls_through_stunnel() {
        let n = noida();
        seed(n.port, "tls", &[4, 0]).await;
        let pki = pki();
        let (tls_port, mtls_port) = (free_port(), free_port());
        let _tls = stunnel(&pki, tls_port, n.port, false);
        let _mtls = stunnel(&pki, mtls_port, n.port, true);
        let want = &topics(&[("tls", 2)]);
        let plain = partition_sizes(
            &plaintext(),
            &[(NOIDA_NODE_ID, "127.0.0.1".into(), n.port)],
            want,
        )
        .await
        .unwrap();
        assert!(plain.sizes.get(0, 0).flatten().unwrap() > 0);

        let ssl = |tls: TlsSettings| BrokerSettings {
            security_protocol: SecurityProtocol::Ssl,
            tls: Some(tls),
            timeout: Duration::from_secs(5),
            ..plaintext()
        };
        let ca = TlsSettings {
            ca_file: Some(pki.path("ca.pem")),
            client_cert_file: None,
            client_key_pem: None,
            verify_hostname: true,
        };
        let run = |settings: BrokerSettings, host: &'static str, port: u16| async move {
            partition_sizes(&settings, &[(NOIDA_NODE_ID, host.to_string(), port)], want).await
        };

        // Name matches (IP SAN): same sizes as plaintext.
        let got = run(ssl(ca.clone()), "127.0.0.1", tls_port).await.unwrap();
        assert!(got.broker_errors.is_empty(), "{:?}", got.broker_errors);
        assert_eq!(got.sizes, plain.sizes);

        // "localhost" is not in the certificate: refused, unless the name check is off.
        let got = run(ssl(ca.clone()), "localhost", tls_port).await.unwrap();
        let [(_, BrokerError::Tls { cause, .. })] = &got.broker_errors[..] else {
            panic!("{:?}", got.broker_errors)
        };
        eprintln!("wrong name: {cause}");
        let no_name = TlsSettings {
            verify_hostname: false,
            ..ca.clone()
        };
        let got = run(ssl(no_name.clone()), "localhost", tls_port)
            .await
            .unwrap();
        assert!(got.broker_errors.is_empty(), "{:?}", got.broker_errors);
        assert_eq!(got.sizes, plain.sizes);

        // Without the name check the chain is still verified.
        let wrong_ca = TlsSettings {
            ca_file: Some(pki.path("wrong-ca.pem")),
            ..no_name
        };
        let got = run(ssl(wrong_ca), "localhost", tls_port).await.unwrap();
        let [(_, BrokerError::Tls { cause, .. })] = &got.broker_errors[..] else {
            panic!("{:?}", got.broker_errors)
        };
        eprintln!("wrong CA, no name check: {cause}");

        // mTLS: with the client certificate it works; without, the broker hangs up.
        let with_cert = TlsSettings {
            client_cert_file: Some(pki.path("client.pem")),
            client_key_pem: Some(SecretString::new(pki.read("client.key"))),
            ..ca.clone()
        };
        let got = run(ssl(with_cert), "127.0.0.1", mtls_port).await.unwrap();
        assert!(got.broker_errors.is_empty(), "{:?}", got.broker_errors);
        assert_eq!(got.sizes, plain.sizes);
        let got = run(ssl(ca.clone()), "127.0.0.1", mtls_port).await.unwrap();
        assert!(got.sizes.values().iter().all(Option::is_none));
        assert!(
            matches!(&got.broker_errors[..], [(_, BrokerError::Tls { .. })]),
            "{:?}",
            got.broker_errors
        );
        eprintln!("mTLS without certificate: {}", got.broker_errors[0].1);

        // SASL_SSL with PLAIN through the same tunnel.
        let sasl_ssl = BrokerSettings {
            security_protocol: SecurityProtocol::SaslSsl,
            sasl: Some(SaslSettings {
                mechanism: SaslMechanism::Plain,
                username: "u".into(),
                password: SecretString::new("p"),
            }),
            ..ssl(ca.clone())
        };
        let got = run(sasl_ssl, "127.0.0.1", tls_port).await.unwrap();
        assert!(got.broker_errors.is_empty(), "{:?}", got.broker_errors);
        assert_eq!(got.sizes, plain.sizes);

        // Unusable TLS files fail the whole call and never echo the key.
        let bad_key = TlsSettings {
            client_cert_file: Some(pki.path("client.pem")),
            client_key_pem: Some(SecretString::new("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n")),
            ..ca
        };
        let e = run(ssl(bad_key), "127.0.0.1", tls_port).await.unwrap_err();
        assert!(matches!(e, BrokerError::Tls { broker: -1, .. }), "{e}");
        assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
        eprintln!("bad key: {e}");
    }
}
