//! Every decoder against bytes from `kafka-protocol`'s own encoders (generated from Kafka's
//! message schemas), for every supported version: the same values come out. Then the same bytes
//! cut at every offset, with a byte too many, and with hostile counts and lengths: an error each
//! time, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response as kav;
use kafka_protocol::messages::consumer_protocol_assignment as kca;
use kafka_protocol::messages::describe_groups_response as kdg;
use kafka_protocol::messages::describe_log_dirs_response as kdl;
use kafka_protocol::messages::list_groups_response as klg;
use kafka_protocol::messages::list_offsets_response as klo;
use kafka_protocol::messages::metadata_response as kmd;
use kafka_protocol::messages::offset_fetch_response as kof;
use kafka_protocol::messages::{
    BrokerId, GroupId, ResponseHeader as KHeader, SaslAuthenticateResponse as KAuth,
    SaslHandshakeResponse as KHandshake, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use krawl_wire::{
    ApiVersion, ApiVersionsResponse, CommittedPartition, ConsumerProtocolAssignment,
    DescribeGroupsResponse, DescribeGroupsVisitor, DescribeLogDirsResponse, DescribedGroup,
    DescribedMember, ListGroupsResponse, ListGroupsVisitor, ListOffsetsPartition,
    ListOffsetsResponse, ListOffsetsVisitor, ListedGroup, LogDirPartition, LogDirsVisitor,
    MetadataBroker, MetadataPartition, MetadataResponse, MetadataTopic, MetadataVisitor,
    OffsetFetchResponse, OffsetFetchVisitor, Problem, ResponseHeader, SaslAuthenticateResponse,
    SaslHandshakeResponse, WireError,
};

fn encode<M: Encodable>(m: &M, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    m.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn unknown_tags() -> BTreeMap<i32, Bytes> {
    BTreeMap::from([
        (7, Bytes::from_static(b"seven")),
        (300, Bytes::from_static(&[0; 200])),
    ])
}

/// `decode` accepts `bytes` whole, and refuses every strict prefix and one trailing byte
/// with an error naming `api`.
fn refuses_cut_and_extended(
    api: &str,
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<(), WireError>,
) {
    assert!(decode(bytes).is_ok(), "{api}: the whole message");
    for cut in 0..bytes.len() {
        let e = decode(&bytes[..cut])
            .err()
            .unwrap_or_else(|| panic!("{api}: cut at {cut} of {} decoded", bytes.len()));
        assert!(e.to_string().starts_with(api), "{e}");
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    let e = decode(&longer).expect_err("a trailing byte is refused");
    assert_eq!(e.problem, Problem::Trailing { left: 1 }, "{api}: {e}");
}

// -- Response header -------------------------------------------------------------------------

#[test]
fn response_header_v0_and_v1() {
    // DescribeLogDirs v1 has header v0; v2 and later header v1 (tagged fields).
    for (version, header_version) in [(1, 0), (4, 1)] {
        let mut h = KHeader::default().with_correlation_id(-77);
        if header_version == 1 {
            h = h.with_unknown_tagged_fields(unknown_tags());
        }
        let mut frame = encode(&h, header_version);
        let header_len = frame.len();
        frame.extend_from_slice(b"body");
        let (got, body) =
            ResponseHeader::split::<DescribeLogDirsResponse>(&frame, version).unwrap();
        assert_eq!(got.correlation_id, -77);
        assert_eq!(body, b"body");
        for cut in 0..header_len {
            let e = ResponseHeader::split::<DescribeLogDirsResponse>(&frame[..cut], version)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("DescribeLogDirs v{version} response header: ")),
                "{e}"
            );
        }
    }
}

// -- ApiVersions -----------------------------------------------------------------------------

fn k_api_versions(error_code: i16) -> kav::ApiVersionsResponse {
    kav::ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(vec![
            kav::ApiVersion::default()
                .with_api_key(18)
                .with_min_version(0)
                .with_max_version(3),
            kav::ApiVersion::default()
                .with_api_key(35)
                .with_min_version(1)
                .with_max_version(4),
            kav::ApiVersion::default()
                .with_api_key(-5)
                .with_min_version(-1)
                .with_max_version(i16::MAX)
                .with_unknown_tagged_fields(unknown_tags()),
        ])
        .with_throttle_time_ms(1234)
        .with_supported_features(vec![kav::SupportedFeatureKey::default()
            .with_name(s("metadata.version"))
            .with_min_version(1)
            .with_max_version(20)])
        .with_finalized_features_epoch(9)
        .with_finalized_features(vec![kav::FinalizedFeatureKey::default()
            .with_name(s("metadata.version"))
            .with_min_version_level(1)
            .with_max_version_level(20)])
        .with_zk_migration_ready(true)
        .with_unknown_tagged_fields(unknown_tags())
}

#[test]
fn api_versions_v0_to_v3_match_kafka_protocol() {
    let k = k_api_versions(0);
    let want_keys = vec![
        ApiVersion {
            api_key: 18,
            min_version: 0,
            max_version: 3,
        },
        ApiVersion {
            api_key: 35,
            min_version: 1,
            max_version: 4,
        },
        ApiVersion {
            api_key: -5,
            min_version: -1,
            max_version: i16::MAX,
        },
    ];
    for version in 0..=3 {
        let bytes = encode(&k, version);
        let got = ApiVersionsResponse::decode(&bytes, version).unwrap();
        assert_eq!(
            got,
            ApiVersionsResponse {
                error_code: 0,
                api_keys: want_keys.clone(),
                throttle_time_ms: if version >= 1 { 1234 } else { 0 },
            },
            "v{version}"
        );
        assert_eq!(got.pick(35, 1, 4), Some(4));
        assert_eq!(got.pick(35, 1, 2), Some(2));
        assert_eq!(got.pick(35, 5, 6), None);
        assert_eq!(got.pick(36, 0, 2), None);
        refuses_cut_and_extended(&format!("ApiVersions v{version}"), &bytes, |b| {
            ApiVersionsResponse::decode(b, version).map(|_| ())
        });
        let (answer, decoded_at) = ApiVersionsResponse::decode_answer(&bytes, version).unwrap();
        assert_eq!((answer, decoded_at), (got, version));
    }
    assert!(matches!(
        ApiVersionsResponse::decode(&encode(&k, 3), 4)
            .unwrap_err()
            .problem,
        Problem::UnsupportedVersion { min: 0, max: 3 }
    ));
}

/// KIP-511: a broker that does not know v3 answers in the v0 format with UNSUPPORTED_VERSION
/// and the ranges it supports.
#[test]
fn api_versions_answer_falls_back_to_v0() {
    let bytes = encode(&k_api_versions(35), 0);
    let (got, version) = ApiVersionsResponse::decode_answer(&bytes, 3).unwrap();
    assert_eq!(version, 0);
    assert_eq!(got.error_code, 35);
    assert_eq!(got.api_keys.len(), 3);
    // Read as v3 the same bytes are garbage, which is why the error code decides.
    assert!(ApiVersionsResponse::decode(&bytes, 3).is_err());
    let e = ApiVersionsResponse::decode_answer(&[0], 3).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ApiVersions v3 response: error_code: needs 2 bytes, only 1 left (truncated)"
    );
}

#[test]
fn api_versions_hostile_counts() {
    // 0x7fff_ffff entries with 10 bytes left (v0 and the fallback path).
    let mut b = 35i16.to_be_bytes().to_vec();
    b.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    b.extend_from_slice(&[0; 10]);
    let e = ApiVersionsResponse::decode_answer(&b, 3).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ApiVersions v0 response: api_keys: array count 2147483647 needs at least 12884901882 bytes, only 10 left"
    );
    // Compact count u32::MAX (4,294,967,294 entries) at v3.
    let mut b = 0i16.to_be_bytes().to_vec();
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    b.extend_from_slice(&[0; 10]);
    assert!(matches!(
        ApiVersionsResponse::decode(&b, 3).unwrap_err().problem,
        Problem::ArrayTooLong {
            count: 4_294_967_294,
            left: 10,
            ..
        }
    ));
    // A varint of 6 bytes, negative and null counts.
    let mut b = 0i16.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert_eq!(
        ApiVersionsResponse::decode(&b, 3).unwrap_err().problem,
        Problem::VarintTooLong
    );
    let mut b = 0i16.to_be_bytes().to_vec();
    b.extend_from_slice(&(-2i32).to_be_bytes());
    assert_eq!(
        ApiVersionsResponse::decode(&b, 1).unwrap_err().problem,
        Problem::NegativeLength(-2)
    );
    let mut b = 0i16.to_be_bytes().to_vec();
    b.extend_from_slice(&(-1i32).to_be_bytes());
    assert_eq!(
        ApiVersionsResponse::decode(&b, 1).unwrap_err().problem,
        Problem::Null
    );
    // A tagged field whose size runs past the end.
    let plain = kav::ApiVersionsResponse::default().with_api_keys(vec![kav::ApiVersion::default()]);
    let mut b = encode(&plain, 3);
    assert_eq!(b.last(), Some(&0), "no tagged fields");
    let last = b.len() - 1;
    b[last] = 1; // one tagged field follows...
    b.extend_from_slice(&[5, 0x7f]); // ...tag 5, 127 bytes, none there
    let e = ApiVersionsResponse::decode(&b, 3).unwrap_err();
    assert_eq!(e.field, "_tagged_fields");
    assert!(
        matches!(
            e.problem,
            Problem::Truncated {
                needed: 127,
                left: 0
            }
        ),
        "{e}"
    );
}

// -- SaslHandshake ---------------------------------------------------------------------------

#[test]
fn sasl_handshake_v0_v1_match_kafka_protocol() {
    for version in 0..=1 {
        let k = KHandshake::default()
            .with_error_code(33)
            .with_mechanisms(vec![s("PLAIN"), s("SCRAM-SHA-512"), s("")]);
        let bytes = encode(&k, version);
        let got = SaslHandshakeResponse::decode(&bytes, version).unwrap();
        assert_eq!(got.error_code, 33);
        assert_eq!(got.mechanisms.len(), 3);
        assert_eq!(
            got.mechanisms.iter().collect::<Vec<_>>(),
            ["PLAIN", "SCRAM-SHA-512", ""]
        );
        refuses_cut_and_extended(&format!("SaslHandshake v{version}"), &bytes, |b| {
            SaslHandshakeResponse::decode(b, version).map(|_| ())
        });
    }
    // A mechanism whose length runs past the end.
    let mut b = 0i16.to_be_bytes().to_vec();
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&[0x7f, 0xff, b'P']);
    let e = SaslHandshakeResponse::decode(&b, 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "SaslHandshake v1 response: mechanisms: needs 32767 bytes, only 1 left (truncated)"
    );
}

// -- SaslAuthenticate ------------------------------------------------------------------------

#[test]
fn sasl_authenticate_v0_to_v2_match_kafka_protocol() {
    for version in 0..=2 {
        for message in [None, Some("bad password")] {
            let k = KAuth::default()
                .with_error_code(58)
                .with_error_message(message.map(s))
                .with_auth_bytes(Bytes::from_static(b"r=abc,s=c2FsdA==,i=4096"))
                .with_session_lifetime_ms(3_600_000)
                .with_unknown_tagged_fields(unknown_tags());
            let bytes = encode(&k, version);
            let got = SaslAuthenticateResponse::decode(&bytes, version).unwrap();
            assert_eq!(
                got,
                SaslAuthenticateResponse {
                    error_code: 58,
                    error_message: message,
                    auth_bytes: b"r=abc,s=c2FsdA==,i=4096",
                    session_lifetime_ms: if version >= 1 { 3_600_000 } else { 0 },
                },
                "v{version}"
            );
            refuses_cut_and_extended(&format!("SaslAuthenticate v{version}"), &bytes, |b| {
                SaslAuthenticateResponse::decode(b, version).map(|_| ())
            });
        }
    }
    // Negative and past-the-end lengths of auth_bytes.
    let mut b = 0i16.to_be_bytes().to_vec();
    b.extend_from_slice(&(-1i16).to_be_bytes()); // null message
    b.extend_from_slice(&(-7i32).to_be_bytes());
    assert_eq!(
        SaslAuthenticateResponse::decode(&b, 0).unwrap_err().problem,
        Problem::NegativeLength(-7)
    );
    let mut b = 0i16.to_be_bytes().to_vec();
    b.push(0); // null message (compact)
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // 4 GiB of auth bytes
    b.extend_from_slice(&[0; 10]);
    let e = SaslAuthenticateResponse::decode(&b, 2).unwrap_err();
    assert_eq!(e.field, "auth_bytes");
    assert!(
        matches!(e.problem, Problem::Truncated { left: 10, .. }),
        "{e}"
    );
}

// -- DescribeLogDirs -------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Seen {
    Dir(i16, String),
    Partition(String, i32, i64, bool),
}

#[derive(Default)]
struct Record(Vec<Seen>);

impl LogDirsVisitor for Record {
    fn log_dir(&mut self, error_code: i16, path: &str) {
        self.0.push(Seen::Dir(error_code, path.to_string()));
    }
    fn partition(&mut self, p: LogDirPartition<'_>) {
        self.0.push(Seen::Partition(
            p.topic.to_string(),
            p.partition_index,
            p.size,
            p.is_future_key,
        ));
    }
}

fn k_log_dirs() -> kdl::DescribeLogDirsResponse {
    let partition = |i: i32, size: i64, future: bool| {
        kdl::DescribeLogDirsPartition::default()
            .with_partition_index(i)
            .with_partition_size(size)
            .with_offset_lag(17)
            .with_is_future_key(future)
            .with_unknown_tagged_fields(unknown_tags())
    };
    kdl::DescribeLogDirsResponse::default()
        .with_throttle_time_ms(5)
        .with_error_code(0)
        .with_results(vec![
            kdl::DescribeLogDirsResult::default()
                .with_error_code(57)
                .with_log_dir(s("/broken"))
                .with_total_bytes(-1)
                .with_usable_bytes(-1),
            kdl::DescribeLogDirsResult::default()
                .with_log_dir(s("/var/lib/kafka/data"))
                .with_topics(vec![
                    kdl::DescribeLogDirsTopic::default()
                        .with_name(TopicName(s("orders")))
                        .with_partitions(vec![
                            partition(0, 1_000, false),
                            partition(1, i64::MAX, false),
                            partition(1, 55, true),
                        ])
                        .with_unknown_tagged_fields(unknown_tags()),
                    kdl::DescribeLogDirsTopic::default()
                        .with_name(TopicName(s("empty")))
                        .with_partitions(vec![]),
                    kdl::DescribeLogDirsTopic::default()
                        .with_name(TopicName(s("ünïcode")))
                        .with_partitions(vec![partition(-3, -1, false)]),
                ])
                .with_total_bytes(1 << 40)
                .with_usable_bytes(1 << 39)
                .with_unknown_tagged_fields(unknown_tags()),
        ])
        .with_unknown_tagged_fields(unknown_tags())
}

fn seen_in(k: &kdl::DescribeLogDirsResponse) -> Vec<Seen> {
    let mut out = Vec::new();
    for r in &k.results {
        out.push(Seen::Dir(r.error_code, r.log_dir.to_string()));
        for t in &r.topics {
            for p in &t.partitions {
                out.push(Seen::Partition(
                    t.name.0.to_string(),
                    p.partition_index,
                    p.partition_size,
                    p.is_future_key,
                ));
            }
        }
    }
    out
}

#[test]
fn describe_log_dirs_v1_to_v4_match_kafka_protocol() {
    for version in 1..=4 {
        for top_error in [0, 31] {
            let k = k_log_dirs().with_error_code(top_error);
            let bytes = encode(&k, version);
            let got = DescribeLogDirsResponse::parse(&bytes, version).unwrap();
            assert_eq!(got.throttle_time_ms, 5);
            assert_eq!(got.error_code, if version >= 3 { top_error } else { 0 });
            let mut seen = Record::default();
            got.visit(&mut seen).unwrap();
            assert_eq!(seen.0, seen_in(&k), "v{version}");
            refuses_cut_and_extended(&format!("DescribeLogDirs v{version}"), &bytes, |b| {
                DescribeLogDirsResponse::parse(b, version).map(|_| ())
            });
        }
    }
    for version in [0, 5] {
        assert!(matches!(
            DescribeLogDirsResponse::parse(&[], version)
                .unwrap_err()
                .problem,
            Problem::UnsupportedVersion { min: 1, max: 4 }
        ));
    }
}

#[test]
fn describe_log_dirs_hostile_counts() {
    // v1 (legacy): one dir, one topic, 0x7fff_ffff partitions with 10 bytes left.
    let mut b = 0i32.to_be_bytes().to_vec();
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&2i16.to_be_bytes());
    b.extend_from_slice(b"/d");
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(b"t");
    b.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    b.extend_from_slice(&[0; 10]);
    let e = DescribeLogDirsResponse::parse(&b, 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "DescribeLogDirs v1 response: results.topics.partitions: array count 2147483647 needs at least 45097156587 bytes, only 10 left"
    );
    // v4 (compact): 4,294,967,294 results.
    let mut b = 0i32.to_be_bytes().to_vec();
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    b.extend_from_slice(&[0; 10]);
    let e = DescribeLogDirsResponse::parse(&b, 4).unwrap_err();
    assert_eq!(e.field, "results");
    assert!(
        matches!(
            e.problem,
            Problem::ArrayTooLong {
                count: 4_294_967_294,
                ..
            }
        ),
        "{e}"
    );
    // A log dir path with a negative length, and one not UTF-8.
    let mut b = 0i32.to_be_bytes().to_vec();
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(-3i16).to_be_bytes());
    b.extend_from_slice(&[0; 10]);
    let e = DescribeLogDirsResponse::parse(&b, 1).unwrap_err();
    assert_eq!(
        (e.field, e.problem),
        ("results.log_dir", Problem::NegativeLength(-3))
    );
    let mut b = 0i32.to_be_bytes().to_vec();
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&2i16.to_be_bytes());
    b.extend_from_slice(&[0xc3, 0x28]);
    b.extend_from_slice(&0i32.to_be_bytes());
    let e = DescribeLogDirsResponse::parse(&b, 1).unwrap_err();
    assert_eq!((e.field, e.problem), ("results.log_dir", Problem::NotUtf8));
}

/// 150,000 partitions in one response: parsed and visited without building it.
#[test]
fn describe_log_dirs_large_response() {
    let partitions: Vec<_> = (0..150_000)
        .map(|i| {
            kdl::DescribeLogDirsPartition::default()
                .with_partition_index(i)
                .with_partition_size(i64::from(i))
        })
        .collect();
    let k = kdl::DescribeLogDirsResponse::default().with_results(vec![
        kdl::DescribeLogDirsResult::default()
            .with_log_dir(s("/d"))
            .with_topics(vec![kdl::DescribeLogDirsTopic::default()
                .with_name(TopicName(s("big")))
                .with_partitions(partitions)]),
    ]);
    let bytes = encode(&k, 4);
    struct Sum(i64, usize);
    impl LogDirsVisitor for Sum {
        fn log_dir(&mut self, _: i16, _: &str) {}
        fn partition(&mut self, p: LogDirPartition<'_>) {
            self.0 += p.size;
            self.1 += 1;
        }
    }
    let mut sum = Sum(0, 0);
    DescribeLogDirsResponse::parse(&bytes, 4)
        .unwrap()
        .visit(&mut sum)
        .unwrap();
    assert_eq!(sum.1, 150_000);
    assert_eq!(sum.0, (0..150_000i64).sum::<i64>());
}

// -- Metadata ---------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Md {
    Broker(i32, String, i32, Option<String>),
    Cluster(Option<String>, i32),
    Topic(i16, String, bool),
    Partition(i16, i32, i32, Vec<i32>, Vec<i32>),
}

#[derive(Default)]
struct MdRecord(Vec<Md>);

impl MetadataVisitor for MdRecord {
    fn broker(&mut self, b: MetadataBroker<'_>) {
        self.0.push(Md::Broker(
            b.node_id,
            b.host.to_string(),
            b.port,
            b.rack.map(str::to_string),
        ));
    }
    fn cluster(&mut self, cluster_id: Option<&str>, controller_id: i32) {
        self.0
            .push(Md::Cluster(cluster_id.map(str::to_string), controller_id));
    }
    fn topic(&mut self, t: MetadataTopic<'_>) {
        self.0
            .push(Md::Topic(t.error_code, t.name.to_string(), t.is_internal));
    }
    fn partition(&mut self, p: MetadataPartition<'_>) {
        assert_eq!(p.replicas.len(), p.replicas.iter().count());
        self.0.push(Md::Partition(
            p.error_code,
            p.partition_index,
            p.leader_id,
            p.replicas.iter().collect(),
            p.isr.iter().collect(),
        ));
    }
}

/// A Metadata answer with every field `version` has set (kafka-protocol refuses to encode a
/// field its version lacks).
fn k_metadata(version: i16) -> kmd::MetadataResponse {
    let v = |min: i16, max: i16| (min..=max).contains(&version);
    let partition = |i: i32, leader: i32, replicas: &[i32], isr: &[i32]| {
        kmd::MetadataResponsePartition::default()
            .with_error_code(if i < 0 { 9 } else { 0 })
            .with_partition_index(i)
            .with_leader_id(BrokerId(leader))
            .with_leader_epoch(if v(7, 13) { 4 } else { -1 })
            .with_replica_nodes(replicas.iter().copied().map(BrokerId).collect())
            .with_isr_nodes(isr.iter().copied().map(BrokerId).collect())
            .with_offline_replicas(if v(5, 13) { vec![BrokerId(9)] } else { vec![] })
            .with_unknown_tagged_fields(unknown_tags())
    };
    kmd::MetadataResponse::default()
        .with_throttle_time_ms(if v(3, 13) { 5 } else { 0 })
        .with_brokers(vec![
            kmd::MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(s("b1.internal"))
                .with_port(9092)
                .with_rack(Some(s("eu-1a")))
                .with_unknown_tagged_fields(unknown_tags()),
            kmd::MetadataResponseBroker::default()
                .with_node_id(BrokerId(2))
                .with_host(s("b2.internal"))
                .with_port(9093),
        ])
        .with_cluster_id(v(2, 13).then(|| s("kRaWl-cluster")))
        .with_controller_id(BrokerId(2))
        .with_topics(vec![
            kmd::MetadataResponseTopic::default()
                .with_name(Some(TopicName(s("orders"))))
                .with_topic_id(if v(10, 13) {
                    uuid::Uuid::from_u128(7)
                } else {
                    uuid::Uuid::nil()
                })
                .with_partitions(vec![
                    partition(0, 1, &[1, 2], &[1, 2]),
                    partition(1, 2, &[2, 1], &[2]),
                ])
                .with_topic_authorized_operations(if v(8, 13) { 8 } else { i32::MIN })
                .with_unknown_tagged_fields(unknown_tags()),
            kmd::MetadataResponseTopic::default()
                .with_error_code(29)
                .with_name(Some(TopicName(s("secret")))),
            kmd::MetadataResponseTopic::default()
                .with_name(Some(TopicName(s("__consumer_offsets"))))
                .with_is_internal(true)
                .with_partitions(vec![partition(-1, -1, &[], &[])]),
        ])
        .with_cluster_authorized_operations(if v(8, 10) { 3 } else { i32::MIN })
        .with_unknown_tagged_fields(unknown_tags())
}

fn md_seen(k: &kmd::MetadataResponse) -> Vec<Md> {
    let mut out: Vec<Md> = k
        .brokers
        .iter()
        .map(|b| {
            Md::Broker(
                b.node_id.0,
                b.host.to_string(),
                b.port,
                b.rack.as_ref().map(|r| r.to_string()),
            )
        })
        .collect();
    out.push(Md::Cluster(
        k.cluster_id.as_ref().map(|c| c.to_string()),
        k.controller_id.0,
    ));
    for t in &k.topics {
        out.push(Md::Topic(
            t.error_code,
            t.name.as_ref().unwrap().0.to_string(),
            t.is_internal,
        ));
        for p in &t.partitions {
            out.push(Md::Partition(
                p.error_code,
                p.partition_index,
                p.leader_id.0,
                p.replica_nodes.iter().map(|b| b.0).collect(),
                p.isr_nodes.iter().map(|b| b.0).collect(),
            ));
        }
    }
    out
}

#[test]
fn metadata_v1_to_v12_match_kafka_protocol() {
    for version in 1..=12 {
        let k = k_metadata(version);
        let bytes = encode(&k, version);
        let got = MetadataResponse::parse(&bytes, version).unwrap();
        assert_eq!(got.throttle_time_ms, if version >= 3 { 5 } else { 0 });
        let mut seen = MdRecord::default();
        got.visit(&mut seen).unwrap();
        assert_eq!(seen.0, md_seen(&k), "v{version}");
        refuses_cut_and_extended(&format!("Metadata v{version}"), &bytes, |b| {
            MetadataResponse::parse(b, version).map(|_| ())
        });
    }
    for version in [0, 13] {
        assert!(matches!(
            MetadataResponse::parse(&[], version).unwrap_err().problem,
            Problem::UnsupportedVersion { min: 1, max: 12 }
        ));
    }
}

#[test]
fn metadata_hostile_counts() {
    // v12: no brokers, no cluster id, controller 1, one topic whose replica list claims
    // 2^32 - 2 broker ids with 20 bytes left.
    let mut b = 0i32.to_be_bytes().to_vec();
    b.push(1); // brokers: 0
    b.push(0); // cluster_id: null
    b.extend_from_slice(&1i32.to_be_bytes());
    b.push(2); // topics: 1
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&[2, b't']);
    b.extend_from_slice(&[0; 16]); // topic id
    b.push(0); // is_internal
    b.push(2); // partitions: 1
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    b.extend_from_slice(&[0; 20]);
    let e = MetadataResponse::parse(&b, 12).unwrap_err();
    assert_eq!(e.field, "topics.partitions.replica_nodes");
    assert!(
        matches!(
            e.problem,
            Problem::ArrayTooLong {
                count: 4_294_967_294,
                ..
            }
        ),
        "{e}"
    );
    // v1: 2^31 - 1 topics in 10 bytes.
    let mut b = 0i32.to_be_bytes().to_vec(); // brokers: 0
    b.extend_from_slice(&1i32.to_be_bytes()); // controller
    b.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    b.extend_from_slice(&[0; 10]);
    let e = MetadataResponse::parse(&b, 1).unwrap_err();
    assert_eq!(e.field, "topics");
    // A null topic name (v12 allows it on the wire; krawl asked by name) is refused.
    let mut b = 0i32.to_be_bytes().to_vec();
    b.extend_from_slice(&[1, 0]);
    b.extend_from_slice(&1i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.push(0); // name: null
    b.extend_from_slice(&[0; 30]);
    let e = MetadataResponse::parse(&b, 12).unwrap_err();
    assert_eq!((e.field, e.problem), ("topics.name", Problem::Null));
}

/// 100,000 topics × 3 partitions in one answer: parsed and visited without building it.
#[test]
fn metadata_large_response() {
    let topics: Vec<_> = (0..100_000)
        .map(|i| {
            kmd::MetadataResponseTopic::default()
                .with_name(Some(TopicName(s(&format!("topic-{i:06}")))))
                .with_partitions(
                    (0..3)
                        .map(|p| {
                            kmd::MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(BrokerId(p))
                                .with_replica_nodes(vec![BrokerId(p)])
                                .with_isr_nodes(vec![BrokerId(p)])
                        })
                        .collect(),
                )
        })
        .collect();
    let bytes = encode(&kmd::MetadataResponse::default().with_topics(topics), 12);
    struct Count(usize, usize, i64);
    impl MetadataVisitor for Count {
        fn broker(&mut self, _: MetadataBroker<'_>) {}
        fn cluster(&mut self, _: Option<&str>, _: i32) {}
        fn topic(&mut self, _: MetadataTopic<'_>) {
            self.0 += 1;
        }
        fn partition(&mut self, p: MetadataPartition<'_>) {
            self.1 += 1;
            self.2 += i64::from(p.leader_id);
        }
    }
    let mut count = Count(0, 0, 0);
    MetadataResponse::parse(&bytes, 12)
        .unwrap()
        .visit(&mut count)
        .unwrap();
    assert_eq!((count.0, count.1, count.2), (100_000, 300_000, 300_000));
}

// -- ListOffsets ------------------------------------------------------------------------------

#[derive(Default)]
struct LoRecord(Vec<(String, i32, i16, i64, i64)>);

impl ListOffsetsVisitor for LoRecord {
    fn partition(&mut self, p: ListOffsetsPartition<'_>) {
        self.0.push((
            p.topic.to_string(),
            p.partition_index,
            p.error_code,
            p.timestamp,
            p.offset,
        ));
    }
}

fn k_list_offsets(version: i16) -> klo::ListOffsetsResponse {
    let partition = |i: i32, error: i16, offset: i64| {
        klo::ListOffsetsPartitionResponse::default()
            .with_partition_index(i)
            .with_error_code(error)
            .with_timestamp(-1)
            .with_offset(offset)
            .with_leader_epoch(if version >= 4 { 3 } else { -1 })
            .with_unknown_tagged_fields(unknown_tags())
    };
    klo::ListOffsetsResponse::default()
        .with_throttle_time_ms(if version >= 2 { 5 } else { 0 })
        .with_topics(vec![
            klo::ListOffsetsTopicResponse::default()
                .with_name(TopicName(s("orders")))
                .with_partitions(vec![partition(0, 0, 42), partition(1, 6, -1)])
                .with_unknown_tagged_fields(unknown_tags()),
            klo::ListOffsetsTopicResponse::default().with_name(TopicName(s("empty"))),
            klo::ListOffsetsTopicResponse::default()
                .with_name(TopicName(s("big")))
                .with_partitions(vec![partition(7, 0, i64::MAX)]),
        ])
        .with_unknown_tagged_fields(unknown_tags())
}

#[test]
fn list_offsets_v1_to_v10_match_kafka_protocol() {
    let expected: Vec<_> = k_list_offsets(10)
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.error_code,
                    p.timestamp,
                    p.offset,
                )
            })
        })
        .collect();
    for version in 1..=10 {
        let bytes = encode(&k_list_offsets(version), version);
        let got = ListOffsetsResponse::parse(&bytes, version).unwrap();
        assert_eq!(got.throttle_time_ms, if version >= 2 { 5 } else { 0 });
        let mut seen = LoRecord::default();
        got.visit(&mut seen).unwrap();
        assert_eq!(seen.0, expected, "v{version}");
        refuses_cut_and_extended(&format!("ListOffsets v{version}"), &bytes, |b| {
            ListOffsetsResponse::parse(b, version).map(|_| ())
        });
    }
    for version in [0, 11] {
        assert!(matches!(
            ListOffsetsResponse::parse(&[], version)
                .unwrap_err()
                .problem,
            Problem::UnsupportedVersion { min: 1, max: 10 }
        ));
    }
    // 2^31 - 1 partitions in 10 bytes.
    let mut b = 0i32.to_be_bytes().to_vec();
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&[0, 1, b't']);
    b.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    b.extend_from_slice(&[0; 10]);
    let e = ListOffsetsResponse::parse(&b, 2).unwrap_err();
    assert_eq!(e.field, "topics.partitions");
}

// -- OffsetFetch (multi-group) -----------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Of {
    Group(String),
    Partition(String, i32, i64, i16),
    GroupError(i16),
}

#[derive(Default)]
struct OfRecord(Vec<Of>);

impl OffsetFetchVisitor for OfRecord {
    fn group(&mut self, group_id: &str) {
        self.0.push(Of::Group(group_id.to_string()));
    }
    fn partition(&mut self, p: CommittedPartition<'_>) {
        self.0.push(Of::Partition(
            p.topic.to_string(),
            p.partition_index,
            p.committed_offset,
            p.error_code,
        ));
    }
    fn group_error(&mut self, error_code: i16) {
        self.0.push(Of::GroupError(error_code));
    }
}

fn k_offset_fetch() -> kof::OffsetFetchResponse {
    let partition = |i: i32, offset: i64, error: i16| {
        kof::OffsetFetchResponsePartitions::default()
            .with_partition_index(i)
            .with_committed_offset(offset)
            .with_committed_leader_epoch(2)
            .with_metadata(Some(s("consumer metadata")))
            .with_error_code(error)
            .with_unknown_tagged_fields(unknown_tags())
    };
    kof::OffsetFetchResponse::default()
        .with_throttle_time_ms(5)
        .with_groups(vec![
            kof::OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(s("payments")))
                .with_topics(vec![kof::OffsetFetchResponseTopics::default()
                    .with_name(TopicName(s("orders")))
                    .with_partitions(vec![partition(0, 42, 0), partition(1, -1, 0)])
                    .with_unknown_tagged_fields(unknown_tags())])
                .with_unknown_tagged_fields(unknown_tags()),
            kof::OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(s("forbidden")))
                .with_error_code(30),
        ])
        .with_unknown_tagged_fields(unknown_tags())
}

#[test]
fn offset_fetch_v8_v9_match_kafka_protocol() {
    let expected = vec![
        Of::Group("payments".into()),
        Of::Partition("orders".into(), 0, 42, 0),
        Of::Partition("orders".into(), 1, -1, 0),
        Of::GroupError(0),
        Of::Group("forbidden".into()),
        Of::GroupError(30),
    ];
    for version in 8..=9 {
        let bytes = encode(&k_offset_fetch(), version);
        let got = OffsetFetchResponse::parse(&bytes, version).unwrap();
        assert_eq!(got.throttle_time_ms, 5);
        let mut seen = OfRecord::default();
        got.visit(&mut seen).unwrap();
        assert_eq!(seen.0, expected, "v{version}");
        refuses_cut_and_extended(&format!("OffsetFetch v{version}"), &bytes, |b| {
            OffsetFetchResponse::parse(b, version).map(|_| ())
        });
    }
    for version in [7, 10] {
        assert!(matches!(
            OffsetFetchResponse::parse(&[], version)
                .unwrap_err()
                .problem,
            Problem::UnsupportedVersion { min: 8, max: 9 }
        ));
    }
    // 2^32 - 2 groups in 10 bytes.
    let mut b = 0i32.to_be_bytes().to_vec();
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    b.extend_from_slice(&[0; 10]);
    let e = OffsetFetchResponse::parse(&b, 8).unwrap_err();
    assert_eq!(e.field, "groups");
}

// -- ListGroups ----------------------------------------------------------------------------------

#[derive(Default)]
struct LgRecord(Vec<(String, String, Option<String>, Option<String>)>);

impl ListGroupsVisitor for LgRecord {
    fn group(&mut self, g: ListedGroup<'_>) {
        self.0.push((
            g.group_id.to_string(),
            g.protocol_type.to_string(),
            g.group_state.map(str::to_string),
            g.group_type.map(str::to_string),
        ));
    }
}

fn k_list_groups() -> klg::ListGroupsResponse {
    let group = |id: &str, protocol: &str, state: &str, ty: &str| {
        klg::ListedGroup::default()
            .with_group_id(GroupId(s(id)))
            .with_protocol_type(s(protocol))
            .with_group_state(s(state))
            .with_group_type(s(ty))
            .with_unknown_tagged_fields(unknown_tags())
    };
    klg::ListGroupsResponse::default()
        .with_throttle_time_ms(5)
        .with_error_code(0)
        .with_groups(vec![
            group("payments", "consumer", "Stable", "classic"),
            group("offsets-only", "", "Empty", "classic"),
            group("connect-cluster", "connect", "Stable", "classic"),
        ])
        .with_unknown_tagged_fields(unknown_tags())
}

#[test]
fn list_groups_v0_to_v5_match_kafka_protocol() {
    for version in 0..=5i16 {
        let bytes = encode(&k_list_groups(), version);
        let got = ListGroupsResponse::parse(&bytes, version).unwrap();
        assert_eq!(got.throttle_time_ms, if version >= 1 { 5 } else { 0 });
        assert_eq!(got.error_code, 0);
        let mut seen = LgRecord::default();
        got.visit(&mut seen).unwrap();
        let state = |v: &str| (version >= 4).then(|| v.to_string());
        let ty = (version >= 5).then(|| "classic".to_string());
        assert_eq!(
            seen.0,
            vec![
                (
                    "payments".into(),
                    "consumer".into(),
                    state("Stable"),
                    ty.clone()
                ),
                ("offsets-only".into(), "".into(), state("Empty"), ty.clone()),
                (
                    "connect-cluster".into(),
                    "connect".into(),
                    state("Stable"),
                    ty.clone()
                ),
            ],
            "v{version}"
        );
        refuses_cut_and_extended(&format!("ListGroups v{version}"), &bytes, |b| {
            ListGroupsResponse::parse(b, version).map(|_| ())
        });
    }
    let bytes = encode(&k_list_groups().with_error_code(29).with_groups(vec![]), 4);
    assert_eq!(ListGroupsResponse::parse(&bytes, 4).unwrap().error_code, 29);
    // 2^31 - 1 groups in 10 bytes (v2: legacy counts).
    let mut b = 0i32.to_be_bytes().to_vec();
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    b.extend_from_slice(&[0; 10]);
    let e = ListGroupsResponse::parse(&b, 2).unwrap_err();
    assert_eq!(e.field, "groups");
    assert!(matches!(e.problem, Problem::ArrayTooLong { .. }), "{e}");
}

// -- DescribeGroups and the consumer protocol assignment -----------------------------------------

#[derive(Debug, PartialEq)]
enum Dg {
    Group(i16, String, String, String, String),
    Member(String, Option<String>, String, String, Vec<u8>),
}

#[derive(Default)]
struct DgRecord(Vec<Dg>);

impl DescribeGroupsVisitor for DgRecord {
    fn group(&mut self, g: DescribedGroup<'_>) {
        self.0.push(Dg::Group(
            g.error_code,
            g.group_id.to_string(),
            g.group_state.to_string(),
            g.protocol_type.to_string(),
            g.protocol_data.to_string(),
        ));
    }
    fn member(&mut self, m: DescribedMember<'_>) {
        self.0.push(Dg::Member(
            m.member_id.to_string(),
            m.group_instance_id.map(str::to_string),
            m.client_id.to_string(),
            m.client_host.to_string(),
            m.member_assignment.to_vec(),
        ));
    }
}

/// A member assignment as Kafka's ConsumerProtocol writes it: the version, then the struct.
fn k_assignment(version: i16) -> Vec<u8> {
    let assignment = kca::ConsumerProtocolAssignment::default()
        .with_assigned_partitions(vec![
            kca::TopicPartition::default()
                .with_topic(TopicName(s("orders")))
                .with_partitions(vec![0, 2, 4]),
            kca::TopicPartition::default()
                .with_topic(TopicName(s("refunds")))
                .with_partitions(vec![]),
        ])
        .with_user_data(Some(Bytes::from_static(b"sticky user data")));
    let mut bytes = version.to_be_bytes().to_vec();
    bytes.extend_from_slice(&encode(&assignment, version));
    bytes
}

fn k_describe_groups(assignment: &[u8], version: i16) -> kdg::DescribeGroupsResponse {
    let member = kdg::DescribedGroupMember::default()
        .with_member_id(s("consumer-1-4f2a"))
        .with_group_instance_id(Some(s("instance-1")))
        .with_client_id(s("billing"))
        .with_client_host(s("/10.0.0.7"))
        .with_member_metadata(Bytes::from_static(b"subscription"))
        .with_member_assignment(Bytes::copy_from_slice(assignment))
        .with_unknown_tagged_fields(unknown_tags());
    kdg::DescribeGroupsResponse::default()
        .with_throttle_time_ms(5)
        .with_groups(vec![
            kdg::DescribedGroup::default()
                .with_group_id(GroupId(s("payments")))
                .with_group_state(s("Stable"))
                .with_protocol_type(s("consumer"))
                .with_protocol_data(s("range"))
                .with_members(vec![member])
                .with_authorized_operations(if version >= 3 { 0x0f } else { i32::MIN })
                .with_unknown_tagged_fields(unknown_tags()),
            kdg::DescribedGroup::default()
                .with_error_code(16)
                .with_error_message((version >= 6).then(|| s("not the coordinator")))
                .with_group_id(GroupId(s("elsewhere")))
                .with_group_state(s(""))
                .with_protocol_type(s(""))
                .with_protocol_data(s("")),
        ])
        .with_unknown_tagged_fields(unknown_tags())
}

#[test]
fn describe_groups_v0_to_v6_match_kafka_protocol() {
    let assignment = k_assignment(1);
    for version in 0..=6i16 {
        let bytes = encode(&k_describe_groups(&assignment, version), version);
        let got = DescribeGroupsResponse::parse(&bytes, version).unwrap();
        assert_eq!(got.throttle_time_ms, if version >= 1 { 5 } else { 0 });
        let mut seen = DgRecord::default();
        got.visit(&mut seen).unwrap();
        assert_eq!(
            seen.0,
            vec![
                Dg::Group(
                    0,
                    "payments".into(),
                    "Stable".into(),
                    "consumer".into(),
                    "range".into()
                ),
                Dg::Member(
                    "consumer-1-4f2a".into(),
                    (version >= 4).then(|| "instance-1".to_string()),
                    "billing".into(),
                    "/10.0.0.7".into(),
                    assignment.clone()
                ),
                Dg::Group(16, "elsewhere".into(), "".into(), "".into(), "".into()),
            ],
            "v{version}"
        );
        refuses_cut_and_extended(&format!("DescribeGroups v{version}"), &bytes, |b| {
            DescribeGroupsResponse::parse(b, version).map(|_| ())
        });
    }
    // 2^31 - 1 members in 10 bytes (v0).
    let mut b = 1i32.to_be_bytes().to_vec();
    b.extend_from_slice(&0i16.to_be_bytes());
    for _ in 0..4 {
        b.extend_from_slice(&0i16.to_be_bytes());
    }
    b.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    b.extend_from_slice(&[0; 10]);
    let e = DescribeGroupsResponse::parse(&b, 0).unwrap_err();
    assert_eq!(e.field, "groups.members");
}

#[test]
fn consumer_protocol_assignment_v0_to_v3_match_kafka_protocol() {
    for version in 0..=3i16 {
        let bytes = k_assignment(version);
        let a = ConsumerProtocolAssignment::parse(&bytes).unwrap();
        assert_eq!(a.version, version);
        let topics: Vec<(String, Vec<i32>)> = a
            .topics()
            .map(|(t, p)| (t.to_string(), p.iter().collect()))
            .collect();
        assert_eq!(
            topics,
            vec![("orders".into(), vec![0, 2, 4]), ("refunds".into(), vec![])]
        );
        // Everything up to the end of the partitions is needed; user data is not read.
        let user_data = 4 + b"sticky user data".len();
        for cut in 0..bytes.len() - user_data {
            let e = ConsumerProtocolAssignment::parse(&bytes[..cut]).unwrap_err();
            assert!(
                e.to_string().starts_with("ConsumerProtocolAssignment"),
                "{e}"
            );
        }
    }
    // 2^31 - 1 topics in 10 bytes.
    let mut b = 0i16.to_be_bytes().to_vec();
    b.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    b.extend_from_slice(&[0; 10]);
    let e = ConsumerProtocolAssignment::parse(&b).unwrap_err();
    assert_eq!(e.field, "assigned_partitions");
}

// -- Fuzz seeds ------------------------------------------------------------------------------

/// Writes the seed corpus of the `kafka_responses` fuzz target: one valid response per decoder,
/// prefixed with the decoder's index in the target's `DECODERS` table, and the hostile counts.
///
/// `KRAWL_FUZZ_SEEDS=$PWD/fuzz/corpus/kafka_responses cargo test -p krawl-wire --test oracle -- --ignored`
#[test]
#[ignore = "writes files; run by hand to refresh the fuzz seeds"]
fn write_fuzz_seeds() {
    let dir =
        std::path::PathBuf::from(std::env::var("KRAWL_FUZZ_SEEDS").expect("KRAWL_FUZZ_SEEDS"));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, selector: u8, body: &[u8]| {
        let mut bytes = vec![selector];
        bytes.extend_from_slice(body);
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let mut frame = encode(&KHeader::default().with_correlation_id(7), 0);
    frame.extend_from_slice(b"body");
    write("header_v0", 0, &frame);
    let mut frame = encode(
        &KHeader::default()
            .with_correlation_id(7)
            .with_unknown_tagged_fields(unknown_tags()),
        1,
    );
    frame.extend_from_slice(b"body");
    write("header_v1", 1, &frame);
    for version in 0..=3i16 {
        write(
            &format!("api_versions_v{version}"),
            2 + version as u8,
            &encode(&k_api_versions(0), version),
        );
    }
    write(
        "api_versions_answer_kip511",
        6,
        &encode(&k_api_versions(35), 0),
    );
    for version in 0..=1i16 {
        let k = KHandshake::default()
            .with_error_code(33)
            .with_mechanisms(vec![s("PLAIN"), s("SCRAM-SHA-512")]);
        write(
            &format!("sasl_handshake_v{version}"),
            7 + version as u8,
            &encode(&k, version),
        );
    }
    for version in 0..=2i16 {
        let k = KAuth::default()
            .with_error_message(Some(s("no")))
            .with_auth_bytes(Bytes::from_static(b"r=abc,s=c2FsdA==,i=4096"))
            .with_session_lifetime_ms(1000);
        write(
            &format!("sasl_authenticate_v{version}"),
            9 + version as u8,
            &encode(&k, version),
        );
    }
    for version in 1..=4i16 {
        write(
            &format!("describe_log_dirs_v{version}"),
            11 + version as u8,
            &encode(&k_log_dirs().with_error_code(0), version),
        );
    }
    // Hostile: huge counts with a few bytes left.
    let mut b = 35i16.to_be_bytes().to_vec();
    b.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    b.extend_from_slice(&[0; 10]);
    write("hostile_api_versions_answer_count", 6, &b);
    let mut b = 0i16.to_be_bytes().to_vec();
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    b.extend_from_slice(&[0; 10]);
    write("hostile_api_versions_v3_count", 5, &b);
    let mut b = 0i32.to_be_bytes().to_vec();
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&[
        2, 0, 0, 3, b'/', b'd', 2, 2, b't', 0xff, 0xff, 0xff, 0xff, 0x0f,
    ]);
    b.extend_from_slice(&[0; 10]);
    write("hostile_describe_log_dirs_v4_partitions", 15, &b);
    for (i, version) in [1i16, 5, 9, 12].into_iter().enumerate() {
        write(
            &format!("metadata_v{version}"),
            16 + i as u8,
            &encode(&k_metadata(version), version),
        );
    }
    for (i, version) in [1i16, 4, 6, 10].into_iter().enumerate() {
        write(
            &format!("list_offsets_v{version}"),
            20 + i as u8,
            &encode(&k_list_offsets(version), version),
        );
    }
    for (i, version) in [8i16, 9].into_iter().enumerate() {
        write(
            &format!("offset_fetch_v{version}"),
            24 + i as u8,
            &encode(&k_offset_fetch(), version),
        );
    }
    for (i, version) in [0i16, 3, 5].into_iter().enumerate() {
        write(
            &format!("list_groups_v{version}"),
            26 + i as u8,
            &encode(&k_list_groups(), version),
        );
    }
    for (i, version) in [0i16, 4, 5, 6].into_iter().enumerate() {
        write(
            &format!("describe_groups_v{version}"),
            29 + i as u8,
            &encode(&k_describe_groups(&k_assignment(1), version), version),
        );
    }
    write("consumer_protocol_assignment_v3", 33, &k_assignment(3));
}
