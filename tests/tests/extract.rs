//! `krawl extract` end to end against real brokers started by the harness:
//! exact values from a known data set, filters, TLS and mTLS, SASL, the
//! read-only proof, bad input and the secret canary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use krawl_model::{ConfigSource, ConsumerGroupRecord, Envelope, Record, TopicRecord};
use krawl_tests::*;
use serde_json::Value;

/// One run of the binary.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn krawl(args: &[&str]) -> Run {
    krawl_env(args, &[])
}

fn krawl_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let bin = krawl_bin().expect("krawl binary");
    let mut cmd = Command::new(bin);
    cmd.arg("extract").args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run krawl");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Parsed and schema-validated records of a successful run.
struct Output {
    records: Vec<Record>,
}

impl Output {
    fn parse(run: &Run) -> Output {
        assert_eq!(run.code, 0, "krawl failed:\n{}", run.stderr);
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(workspace_root().join("schema/records.schema.json")).unwrap(),
        )
        .unwrap();
        let validator = jsonschema::JSONSchema::compile(&schema).unwrap();
        let mut records = Vec::new();
        for line in run.stdout.lines() {
            let v: Value = serde_json::from_str(line).expect("each line is JSON");
            if let Err(errors) = validator.validate(&v) {
                let msgs: Vec<String> = errors.map(|e| e.to_string()).collect();
                panic!("record does not match schema/records.schema.json: {msgs:?}\n{line}");
            }
            let env: Envelope = serde_json::from_value(v).expect("typed record");
            assert_eq!(env.schema_version, krawl_model::SCHEMA_VERSION);
            records.push(env.record);
        }
        let out = Output { records };
        // The summary is last and counts the stream.
        let Some(Record::Summary(s)) = out.records.last() else {
            panic!("last record is not the summary");
        };
        assert_eq!(s.counts.records, out.records.len());
        assert_eq!(s.counts.topics, out.topics().len());
        assert_eq!(s.counts.consumer_groups, out.groups().len());
        assert_eq!(s.counts.warnings, out.warnings().len());
        out
    }

    fn cluster(&self) -> &krawl_model::ClusterRecord {
        self.records
            .iter()
            .find_map(|r| match r {
                Record::Cluster(c) => Some(c),
                _ => None,
            })
            .expect("a cluster record")
    }

    fn topics(&self) -> BTreeMap<String, &TopicRecord> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Topic(t) => Some((t.name.clone(), t)),
                _ => None,
            })
            .collect()
    }

    fn groups(&self) -> BTreeMap<String, &ConsumerGroupRecord> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::ConsumerGroup(g) => Some((g.group_id.clone(), g)),
                _ => None,
            })
            .collect()
    }

    fn warnings(&self) -> Vec<&krawl_model::WarningRecord> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Warning(w) => Some(w),
                _ => None,
            })
            .collect()
    }

    fn summary(&self) -> &krawl_model::SummaryRecord {
        match self.records.last() {
            Some(Record::Summary(s)) => s,
            _ => unreachable!("checked in parse"),
        }
    }
}

fn model_source(s: rdkafka::admin::ConfigSource) -> ConfigSource {
    use rdkafka::admin::ConfigSource as R;
    match s {
        R::DynamicTopic => ConfigSource::Topic,
        R::DynamicBroker => ConfigSource::DynamicBroker,
        R::DynamicDefaultBroker => ConfigSource::DynamicDefaultBroker,
        R::StaticBroker => ConfigSource::StaticBroker,
        R::Default => ConfigSource::Default,
        R::Unknown => ConfigSource::Unknown,
    }
}

/// Every value of the seeded data set, as the user would check it.
fn assert_dataset(out: &Output, ds: &SeededDataset, groups_read: &BTreeMap<&str, usize>) {
    let topics = out.topics();
    assert_eq!(
        topics.keys().cloned().collect::<BTreeSet<_>>(),
        ds.topic_names(),
        "internal topics are off by default; every seeded topic is there"
    );
    for (name, seeded) in &ds.topics {
        let t = topics[name];
        assert!(!t.internal);
        assert_eq!(t.partition_count, seeded.partitions as usize, "{name}");
        assert_eq!(t.replication_factor, 1, "{name}");
        for p in &t.partitions {
            let expected = seeded.latest_offset(p.partition).unwrap();
            assert_eq!(p.earliest_offset, Some(0), "{name}/{}", p.partition);
            assert_eq!(p.latest_offset, Some(expected), "{name}/{}", p.partition);
            assert_eq!(p.leader, Some(ds.broker.broker_id()));
            assert_eq!(p.replicas, vec![ds.broker.broker_id()]);
            assert_eq!(p.isr, vec![ds.broker.broker_id()]);
            assert!(!p.offline && !p.under_replicated);
        }
        assert_eq!(t.record_count, Some(seeded.total_messages()), "{name}");
        // Size on disk where the broker answers DescribeLogDirs (noida), else null.
        if ds.broker == BrokerKind::Noida {
            for p in &t.partitions {
                let size = p
                    .size_bytes
                    .unwrap_or_else(|| panic!("{name}/{} size", p.partition));
                let messages = seeded.latest_offset(p.partition).unwrap();
                assert_eq!(
                    size > 0,
                    messages > 0,
                    "{name}/{}: {size} bytes",
                    p.partition
                );
            }
            let sum: i64 = t.partitions.iter().filter_map(|p| p.size_bytes).sum();
            assert_eq!(t.size_bytes, Some(sum), "{name}");
        } else {
            assert_eq!(t.size_bytes, None);
            assert!(t.partitions.iter().all(|p| p.size_bytes.is_none()));
        }
        assert_eq!(
            t.consumer_group_count,
            groups_read.get(name.as_str()).copied().unwrap_or(0),
            "groups reading {name}"
        );
        // Configs: every override with its value and the broker's source.
        assert_eq!(
            t.configs.len(),
            ds.broker.topic_config_count(seeded.config_overrides.len()),
            "{name}: {:?}",
            t.configs.iter().map(|c| &c.name).collect::<Vec<_>>()
        );
        let by_name: BTreeMap<&str, &krawl_model::TopicConfig> =
            t.configs.iter().map(|c| (c.name.as_str(), c)).collect();
        for (k, v) in &seeded.config_overrides {
            let c = by_name
                .get(k.as_str())
                .unwrap_or_else(|| panic!("{name}: {k}"));
            assert_eq!(c.value.as_deref(), Some(v.as_str()), "{name}: {k}");
            assert_eq!(
                c.source,
                model_source(ds.broker.override_source()),
                "{name}: {k}"
            );
        }
        if ds.broker.describes_all_topic_configs() {
            // Defaults are reported too, with their source.
            let seg = by_name["segment.bytes"];
            assert_eq!(seg.source, ConfigSource::Default);
            assert!(seg.value.is_some());
            if !seeded.config_overrides.contains_key("cleanup.policy") {
                assert_eq!(by_name["cleanup.policy"].value.as_deref(), Some("delete"));
            }
        }
        for c in &t.configs {
            if c.sensitive {
                assert_eq!(c.value, None, "sensitive values are never emitted");
            }
        }
    }

    let groups = out.groups();
    for (gname, seeded) in &ds.groups {
        let g = groups
            .get(gname.as_str())
            .unwrap_or_else(|| panic!("group {gname}"));
        assert_eq!(g.state, ds.broker.idle_group_state(), "{gname}");
        assert!(g.members.is_empty(), "{gname}");
        let committed: BTreeMap<(String, i32), i64> = g
            .offsets
            .iter()
            .map(|o| ((o.topic.clone(), o.partition), o.committed_offset))
            .collect();
        assert_eq!(committed, seeded.committed, "{gname} committed offsets");
        let lags: BTreeMap<(String, i32), i64> = g
            .offsets
            .iter()
            .map(|o| ((o.topic.clone(), o.partition), o.lag.unwrap()))
            .collect();
        assert_eq!(lags, ds.lags(gname), "{gname} lag");
        for o in &g.offsets {
            assert_eq!(o.latest_offset, ds.latest_offset(&o.topic, o.partition));
        }
        assert_eq!(g.total_lag, ds.total_lag(gname), "{gname} total lag");
        assert_eq!(
            g.topics.iter().cloned().collect::<BTreeSet<_>>(),
            ds.group_topics(gname)
        );
        assert!(g.coordinator.is_some(), "{gname} coordinator");
    }
}

#[test]
fn noida_extracts_the_seeded_cluster_exactly() {
    let broker = Noida::start().unwrap();
    let ds = seed_dataset(&broker.bootstrap(), BrokerKind::Noida).unwrap();
    let live = LiveMember::join(&broker.bootstrap(), "live-readers", &[TOPIC_PAYMENTS]).unwrap();

    let run = krawl(&["--bootstrap-servers", &broker.bootstrap()]);
    let out = Output::parse(&run);

    let c = out.cluster();
    assert_eq!(c.broker_count, 1);
    assert_eq!(c.brokers[0].id, 1);
    assert_eq!(c.brokers[0].port, broker.port());
    assert_eq!(c.controller_id, Some(1));
    assert!(c.cluster_id.as_deref().is_some_and(|id| !id.is_empty()));
    let internal: i32 = BrokerKind::Noida.internal_topics().values().sum();
    let seeded_partitions: i32 = ds.topics.values().map(|t| t.partitions).sum();
    assert_eq!(c.topic_count, ds.topics.len() + 2);
    assert_eq!(c.partition_count, (seeded_partitions + internal) as usize);
    assert_eq!(c.security_protocol, "PLAINTEXT");
    assert_eq!(c.sasl_mechanism, None);
    let apis: BTreeMap<&str, (i16, i16)> = c
        .api_versions
        .iter()
        .map(|a| (a.name.as_str(), (a.min_version, a.max_version)))
        .collect();
    for api in ["Metadata", "DescribeConfigs", "ListOffsets", "ApiVersions"] {
        assert!(apis.contains_key(api), "{api} in {apis:?}");
    }

    let mut groups_read = BTreeMap::new();
    groups_read.insert(TOPIC_ORDERS, 1);
    groups_read.insert(TOPIC_PAYMENTS, 2); // billing + the live group
    groups_read.insert(TOPIC_AUDIT_LOG, 1);
    assert_dataset(&out, &ds, &groups_read);

    // The group with a live member: state, member, client id, assignment.
    let groups = out.groups();
    let g = groups["live-readers"];
    assert_eq!(g.state, "Stable");
    assert_eq!(g.protocol_type, "consumer");
    assert_eq!(g.members.len(), 1);
    let m = &g.members[0];
    assert_eq!(m.client_id, live.client_id());
    assert!(!m.member_id.is_empty() && !m.host.is_empty());
    let assigned: BTreeSet<(String, i32)> = m
        .assignments
        .iter()
        .map(|a| (a.topic.clone(), a.partition))
        .collect();
    let expected: BTreeSet<(String, i32)> = live.assignment().iter().cloned().collect();
    assert_eq!(assigned, expected);
    assert_eq!(g.topics, vec![TOPIC_PAYMENTS.to_string()]);

    // No warnings; calls were batched.
    let codes: Vec<&str> = out.warnings().iter().map(|w| w.code.as_str()).collect();
    assert!(codes.is_empty(), "{codes:?}");
    let calls = &out.summary().api_calls;
    assert_eq!(calls["DescribeConfigs"], 1, "{calls:?}");
    assert_eq!(
        calls["ListOffsets"], 2,
        "one earliest + one latest batch: {calls:?}"
    );
    assert_eq!(
        calls["OffsetFetch"], 1,
        "the three groups' committed offsets in one OffsetFetch v8 request: {calls:?}"
    );
    assert_eq!(calls["DescribeLogDirs"], 1, "{calls:?}");
    assert!(
        run.stderr.contains("topics 4"),
        "human summary: {}",
        run.stderr
    );
    drop(live);
}

#[test]
fn filters_select_topics_groups_and_internal_topics() {
    let broker = Noida::start().unwrap();
    let bs = broker.bootstrap();
    let ds = seed_dataset(&bs, BrokerKind::Noida).unwrap();

    let out = Output::parse(&krawl(&[
        "--bootstrap-servers",
        &bs,
        "--include-topic",
        "^orders$",
        "--exclude-group",
        "^audit$",
    ]));
    assert_eq!(out.topics().keys().collect::<Vec<_>>(), vec![TOPIC_ORDERS]);
    assert_eq!(
        out.groups().keys().cloned().collect::<Vec<_>>(),
        vec![GROUP_BILLING.to_string()]
    );
    // Lag of billing on payments (outside the topic filter) is still known.
    let billing = out.groups()[GROUP_BILLING];
    let pay = billing
        .offsets
        .iter()
        .find(|o| o.topic == TOPIC_PAYMENTS)
        .unwrap();
    assert_eq!(pay.lag, ds.lag(GROUP_BILLING, TOPIC_PAYMENTS, 0));

    let out = Output::parse(&krawl(&[
        "--bootstrap-servers",
        &bs,
        "--include-internal",
        "--no-groups",
    ]));
    let topics = out.topics();
    assert!(out.groups().is_empty());
    for (name, partitions) in BrokerKind::Noida.internal_topics() {
        let t = topics
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name}"));
        assert!(t.internal);
        assert_eq!(t.partition_count, partitions as usize);
    }

    let out = Output::parse(&krawl(&[
        "--bootstrap-servers",
        &bs,
        "--group-state",
        "Stable",
    ]));
    assert!(
        out.groups().is_empty(),
        "no group is Stable without members"
    );
}

#[test]
fn tansu_extracts_the_seeded_cluster() {
    let broker = Tansu::start(TansuOpts::default()).unwrap();
    let ds = seed_dataset(&broker.bootstrap(), BrokerKind::Tansu).unwrap();
    let out = Output::parse(&krawl(&["--bootstrap-servers", &broker.bootstrap()]));
    assert_eq!(out.cluster().brokers[0].id, BrokerKind::Tansu.broker_id());
    let mut groups_read = BTreeMap::new();
    groups_read.insert(TOPIC_ORDERS, 1);
    groups_read.insert(TOPIC_PAYMENTS, 1);
    groups_read.insert(TOPIC_AUDIT_LOG, 1);
    assert_dataset(&out, &ds, &groups_read);
    // Tansu has no DescribeLogDirs: one warning says so.
    let codes: Vec<&str> = out.warnings().iter().map(|w| w.code.as_str()).collect();
    assert_eq!(codes, vec!["log_dirs_unavailable"]);
    assert!(out.warnings()[0].message.contains("DescribeLogDirs"));
}

#[test]
fn tls_mtls_and_a_wrong_ca() {
    let pki = TestPki::generate().unwrap();
    let ca = pki.ca_cert.display().to_string();

    // TLS with the test CA.
    let tls = TlsTansu::start(&pki, false).unwrap();
    let ds =
        seed_dataset_with(&tls.bootstrap(), BrokerKind::Tansu, &tls.client_props(&pki)).unwrap();
    let out = Output::parse(&krawl(&[
        "--bootstrap-servers",
        &tls.bootstrap(),
        "--security-protocol",
        "SSL",
        "--ca-file",
        &ca,
    ]));
    assert_eq!(out.cluster().security_protocol, "SSL");
    assert_eq!(
        out.topics().keys().cloned().collect::<BTreeSet<_>>(),
        ds.topic_names()
    );

    // The wrong CA: a TLS error that says so, exit code 5, within the timeout.
    let run = krawl(&[
        "--bootstrap-servers",
        &tls.bootstrap(),
        "--security-protocol",
        "SSL",
        "--ca-file",
        &pki.wrong_ca_cert.display().to_string(),
        "--timeout",
        "10",
    ]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains(&tls.bootstrap()), "{}", run.stderr);
    assert!(
        run.stderr.contains("certificate verify failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("kafka.tls.ca_file"), "{}", run.stderr);
    assert!(run.stdout.is_empty());

    // mTLS: with the client certificate it works; without, a TLS failure.
    let mtls = TlsTansu::start(&pki, true).unwrap();
    let key_ref = format!("file://{}", pki.client_key.display());
    let out = Output::parse(&krawl(&[
        "--bootstrap-servers",
        &mtls.bootstrap(),
        "--security-protocol",
        "SSL",
        "--ca-file",
        &ca,
        "--client-cert",
        &pki.client_cert.display().to_string(),
        "--client-key",
        &key_ref,
    ]));
    assert_eq!(out.cluster().broker_count, 1);
    let run = krawl(&[
        "--bootstrap-servers",
        &mtls.bootstrap(),
        "--security-protocol",
        "SSL",
        "--ca-file",
        &ca,
        "--timeout",
        "10",
    ]);
    assert_ne!(run.code, 0, "mTLS without a client certificate must fail");
    assert!(
        run.code == 5 || run.code == 4,
        "a TLS/transport error, got {}: {}",
        run.code,
        run.stderr
    );
}

#[test]
fn sasl_plain_against_noida_and_a_mechanism_the_broker_refuses() {
    let broker = Noida::start().unwrap();
    let bs = broker.bootstrap();
    seed_dataset(&bs, BrokerKind::Noida).unwrap();
    let out = Output::parse(&krawl_env(
        &[
            "--bootstrap-servers",
            &bs,
            "--security-protocol",
            "SASL_PLAINTEXT",
            "--sasl-mechanism",
            "PLAIN",
            "--sasl-username",
            "reader",
            "--sasl-password",
            "env://KRAWL_TEST_KAFKA_PW",
        ],
        &[("KRAWL_TEST_KAFKA_PW", "pw")],
    ));
    assert_eq!(out.cluster().security_protocol, "SASL_PLAINTEXT");
    assert_eq!(out.cluster().sasl_mechanism.as_deref(), Some("PLAIN"));
    assert_eq!(out.topics().len(), 4);

    // noida has no SCRAM: authentication fails, exit code 6, naming the host.
    let run = krawl_env(
        &[
            "--bootstrap-servers",
            &bs,
            "--security-protocol",
            "SASL_PLAINTEXT",
            "--sasl-mechanism",
            "SCRAM-SHA-256",
            "--sasl-username",
            "reader",
            "--sasl-password",
            "env://KRAWL_TEST_KAFKA_PW",
            "--timeout",
            "10",
        ],
        &[("KRAWL_TEST_KAFKA_PW", "pw")],
    );
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(run.stderr.contains(&bs), "{}", run.stderr);
    assert!(
        run.stderr.contains("kafka.sasl.mechanism"),
        "{}",
        run.stderr
    );
}

/// The read-only proof: every request of a full extraction, recorded by a
/// proxy that all client connections go through, is in the read-only set.
#[test]
fn a_full_extraction_sends_only_read_only_apis() {
    let broker = ProxiedTansu::start().unwrap();
    seed_dataset(&broker.bootstrap(), BrokerKind::Tansu).unwrap();
    broker.proxy.clear();

    let out = Output::parse(&krawl(&["--bootstrap-servers", &broker.bootstrap()]));
    assert_eq!(out.topics().len(), 4);
    assert_eq!(out.groups().len(), 2);

    let used = broker.proxy.api_keys();
    let allowed: BTreeSet<i16> = krawl_kafka::api_keys::READ_ONLY_APIS
        .iter()
        .copied()
        .collect();
    let names: BTreeSet<&str> = used.iter().map(|k| api_name(*k)).collect();
    assert!(
        used.is_subset(&allowed),
        "non-read-only APIs sent: {:?}",
        used.difference(&allowed)
            .map(|k| api_name(*k))
            .collect::<Vec<_>>()
    );
    for k in [0, 1, 8, 11, 12, 13, 14, 19, 20, 21, 33, 37, 42, 44] {
        assert!(!used.contains(&k), "{} sent", api_name(k));
    }
    for needed in [
        "ApiVersions",
        "Metadata",
        "DescribeConfigs",
        "ListOffsets",
        "ListGroups",
        "DescribeGroups",
        "OffsetFetch",
    ] {
        assert!(names.contains(needed), "{needed} not seen in {names:?}");
    }
    // Groups are described by the broker that listed them, many per
    // request: no FindCoordinator, one DescribeGroups for both groups, and
    // the proxy saw what krawl counted.
    assert!(!names.contains("FindCoordinator"), "{names:?}");
    assert_eq!(broker.proxy.count(15), 1);
    // krawl's own client hands its connection from phase to phase: the one that described the
    // groups also carried the offsets and the listing, and was opened (ApiVersions) once.
    let records = broker.proxy.records();
    let on = |conn: u64| -> Vec<&str> {
        records
            .iter()
            .filter(|r| r.connection == conn)
            .map(|r| r.api_name())
            .collect()
    };
    let groups_conn = records
        .iter()
        .find(|r| r.api_key == 15)
        .map(|r| r.connection)
        .unwrap();
    let used = on(groups_conn);
    for api in ["ListOffsets", "ListGroups", "DescribeGroups", "OffsetFetch"] {
        assert!(
            used.contains(&api),
            "{api} not on connection {groups_conn}: {used:?}"
        );
    }
    assert_eq!(
        used.iter().filter(|a| **a == "ApiVersions").count(),
        1,
        "{used:?}"
    );
    assert_eq!(
        broker.proxy.count(15) as u64,
        out.summary().api_calls["DescribeGroups"]
    );
    // The proxy saw the same number of DescribeConfigs requests as krawl counted.
    assert_eq!(
        broker.proxy.count(32) as u64,
        out.summary().api_calls["DescribeConfigs"]
    );
}

#[test]
fn bad_input_fails_fast_with_a_classified_error() {
    // Connection refused: exit 4, names the host.
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let run = krawl(&["--bootstrap-servers", &host, "--timeout", "3"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains(&host) && run.stderr.contains("Connection refused"));
    assert!(run.stdout.is_empty());

    // DNS: exit 3.
    let run = krawl(&[
        "--bootstrap-servers",
        "no-such-host.invalid:9092",
        "--timeout",
        "5",
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("no-such-host.invalid"),
        "{}",
        run.stderr
    );

    // Invalid settings: exit 2, naming the key and the accepted values.
    let run = krawl(&["--bootstrap-servers", "b:1", "--security-protocol", "TLS"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--security-protocol") && run.stderr.contains("SASL_SSL"));
    let run = krawl(&[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("kafka.bootstrap_servers"),
        "{}",
        run.stderr
    );

    let dir = tempfile::tempdir().unwrap();
    for (body, key) in [
        (
            "[kafka]\nbootstrap_servers = [\"b:1\"]\nsecurity_protocol = \"SASL_SSL\"\n",
            "kafka.sasl",
        ),
        (
            "[kafka]\nbootstrap_servers = [\"b:1\"]\n[kafka.properties]\n\"group.id\" = \"x\"\n",
            "group.id",
        ),
        (
            "[kafka]\nbootstrap_servers = [\"b:1\"]\n[extract]\ninclude_topics = [\"(\"]\n",
            "extract.include_topics",
        ),
        ("this is not toml", "invalid config"),
        ("[kafka]\nbootstrap_servers = 7\n", "bootstrap_servers"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, body).unwrap();
        let run = krawl(&["--config", &path.display().to_string()]);
        assert_eq!(run.code, 2, "{body}: {}", run.stderr);
        assert!(run.stderr.contains(key), "{body}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"));
    }
}

/// A unique password is resolved from a file and used for a full extraction
/// with trace logging: it appears in no output record, log line or error.
#[test]
fn the_sasl_password_never_appears_in_output_or_logs() {
    let broker = Noida::start().unwrap();
    let bs = broker.bootstrap();
    seed_dataset(&bs, BrokerKind::Noida).unwrap();
    let canary = format!("canary-{}-{}", std::process::id(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("kafka.json");
    std::fs::write(&secret, format!(r#"{{"password":"{canary}"}}"#)).unwrap();
    let reference = format!("file://{}#password", secret.display());
    let args = [
        "--bootstrap-servers",
        bs.as_str(),
        "--security-protocol",
        "SASL_PLAINTEXT",
        "--sasl-mechanism",
        "PLAIN",
        "--sasl-username",
        "reader",
        "--sasl-password",
        reference.as_str(),
        "--log-level",
        "trace",
    ];
    let run = krawl(&args);
    Output::parse(&run);
    assert!(run.stderr.lines().count() > 10, "trace logging is on");
    assert!(!run.stdout.contains(&canary));
    assert!(!run.stderr.contains(&canary));

    // Failing runs do not print it either (SCRAM is refused by noida).
    let mut failing = args.to_vec();
    failing[5] = "SCRAM-SHA-512";
    let run = krawl(&failing);
    assert_ne!(run.code, 0);
    assert!(!run.stderr.contains(&canary) && !run.stdout.contains(&canary));
}

/// SCRAM against a real SCRAM-capable broker. Opt-in: the only one that
/// installs here is a Tansu built from source (11 minutes);
/// `scripts/scram-test.sh` builds it and runs this test for both mechanisms
/// over SASL_PLAINTEXT and SASL_SSL (docs/testing.md). By hand:
/// `KRAWL_SCRAM_BOOTSTRAP=host:port KRAWL_SCRAM_USERNAME=u KRAWL_SCRAM_PASSWORD=p
///  [KRAWL_SCRAM_MECHANISM=SCRAM-SHA-512] [KRAWL_SCRAM_PROTOCOL=SASL_SSL KRAWL_SCRAM_CA_FILE=ca.pem]
///  cargo test -p krawl-tests --test extract -- --ignored scram`.
#[test]
#[ignore = "needs a SCRAM-capable broker: see docs/testing.md"]
fn scram_against_a_real_broker() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("set {k} (docs/testing.md)"));
    let bootstrap = var("KRAWL_SCRAM_BOOTSTRAP");
    let user = var("KRAWL_SCRAM_USERNAME");
    let mechanism =
        std::env::var("KRAWL_SCRAM_MECHANISM").unwrap_or_else(|_| "SCRAM-SHA-512".to_string());
    let ca_file = std::env::var("KRAWL_SCRAM_CA_FILE").unwrap_or_default();
    let args = |password_ref: &'static str| {
        let mut args = vec![
            "--bootstrap-servers".to_string(),
            bootstrap.clone(),
            "--security-protocol".to_string(),
            std::env::var("KRAWL_SCRAM_PROTOCOL").unwrap_or_else(|_| "SASL_PLAINTEXT".into()),
            "--sasl-mechanism".to_string(),
            mechanism.clone(),
            "--sasl-username".to_string(),
            user.clone(),
            "--sasl-password".to_string(),
            password_ref.to_string(),
            "--timeout".to_string(),
            "15".to_string(),
        ];
        if !ca_file.is_empty() {
            args.extend(["--ca-file".to_string(), ca_file.clone()]);
        }
        args
    };
    let ok = args("env://KRAWL_SCRAM_PASSWORD");
    let ok: Vec<&str> = ok.iter().map(String::as_str).collect();
    let out = Output::parse(&krawl(&ok));
    assert_eq!(
        out.cluster().sasl_mechanism.as_deref(),
        Some(mechanism.as_str())
    );

    let bad = args("env://KRAWL_SCRAM_WRONG_PASSWORD");
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    let run = krawl_env(&bad, &[("KRAWL_SCRAM_WRONG_PASSWORD", "definitely-wrong")]);
    assert_eq!(
        run.code, 6,
        "a wrong SCRAM password is an authentication failure: {}",
        run.stderr
    );
}

/// A broker that never answers DescribeConfigs: every topic gets a warning
/// naming it, the topic records (offsets, partitions) and the groups are
/// still delivered, and the run succeeds.
#[test]
fn a_failing_call_becomes_warnings_and_the_rest_is_delivered() {
    let broker = ProxiedTansu::start().unwrap();
    let ds = seed_dataset(&broker.bootstrap(), BrokerKind::Tansu).unwrap();
    broker.proxy.swallow(32); // DescribeConfigs
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("krawl.toml");
    std::fs::write(
        &cfg,
        format!(
            "[kafka]\nbootstrap_servers = [\"{}\"]\ntimeout_secs = 2\n[extract]\nretries = 1\n",
            broker.bootstrap()
        ),
    )
    .unwrap();
    let out = Output::parse(&krawl(&["--config", &cfg.display().to_string()]));
    let topics = out.topics();
    assert_eq!(
        topics.keys().cloned().collect::<BTreeSet<_>>(),
        ds.topic_names()
    );
    for (name, t) in &topics {
        assert!(t.configs.is_empty(), "{name}");
        assert_eq!(
            t.record_count,
            Some(ds.topic(name).unwrap().total_messages())
        );
    }
    let failed: BTreeSet<String> = out
        .warnings()
        .iter()
        .filter(|w| w.code == "describe_configs_failed")
        .filter_map(|w| w.subject.clone())
        .collect();
    assert_eq!(failed, ds.topic_names(), "one warning per topic");
    assert_eq!(out.groups().len(), ds.groups.len());
    // Retried once: two requests reached the proxy.
    assert_eq!(out.summary().api_calls["DescribeConfigs"], 2);
}

/// `krawl secrets check` says whether each reference resolves, never the value.
#[test]
fn secrets_check_reports_without_printing_values() {
    let canary = format!("canary-check-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.json");
    std::fs::write(&file, format!(r#"{{"password":"{canary}"}}"#)).unwrap();
    let file_ref = format!("file://{}#password", file.display());
    let out = Command::new(krawl_bin().unwrap())
        .args([
            "secrets",
            "check",
            "env://KRAWL_CHECK_PW",
            &file_ref,
            "env://KRAWL_CHECK_UNSET",
        ])
        .env("KRAWL_CHECK_PW", &canary)
        .env_remove("KRAWL_CHECK_UNSET")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one reference fails: {stdout}{stderr}"
    );
    assert!(stdout.contains("ok    env://KRAWL_CHECK_PW"), "{stdout}");
    assert!(stdout.contains(&format!("ok    {file_ref}")), "{stdout}");
    assert!(
        stdout.contains("FAIL  env://KRAWL_CHECK_UNSET")
            && stdout.contains("set the environment variable")
    );
    assert!(!stdout.contains(&canary) && !stderr.contains(&canary));
}

/// Schema Registry alongside the cluster: subject and schema-version records,
/// exact topic binding (near-miss subjects never bind), and a registry that
/// goes away costs a warning, not the Kafka part.
#[test]
fn schema_registry_subjects_versions_and_topic_binding() {
    use krawl_tests::schema_registry::{FakeRegistry, FakeRegistryOpts};
    let broker = Noida::start().unwrap();
    let ds = seed_dataset(&broker.bootstrap(), BrokerKind::Noida).unwrap();
    let mut registry = FakeRegistry::start(FakeRegistryOpts::default()).unwrap();
    let address = r#"{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"city","type":"string"}]}"#;
    registry.register("address", "AVRO", address, &[]).unwrap();
    let order = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null},{"name":"ship_to","type":"com.acme.Address"}]}"#;
    registry
        .register(
            "orders-value",
            "AVRO",
            order,
            &[("com.acme.Address", "address", 1)],
        )
        .unwrap();
    let order2 = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null},{"name":"ship_to","type":"com.acme.Address"},{"name":"total","type":["null","double"],"default":null}]}"#;
    registry
        .register(
            "orders-value",
            "AVRO",
            order2,
            &[("com.acme.Address", "address", 1)],
        )
        .unwrap();
    registry
        .register("orders-key", "AVRO", r#""string""#, &[])
        .unwrap();
    registry
        .register(
            "payments-value",
            "JSON",
            r#"{"type":"object","properties":{"amount":{"type":"number"},"currency":{"type":"string"}},"required":["amount"]}"#,
            &[],
        )
        .unwrap();
    registry
        .register(
            "audit-log-value",
            "PROTOBUF",
            "syntax = \"proto3\";\npackage audit;\nmessage Entry { string actor = 1; optional int64 at = 2; }\n",
            &[],
        )
        .unwrap();
    // Near misses: none may bind.
    for s in [
        "orders-values",
        "xorders-value",
        "empty-topic2-value",
        "Payments-value",
    ] {
        registry.register(s, "AVRO", r#""string""#, &[]).unwrap();
    }
    registry
        .set_compatibility(Some("orders-value"), "FULL")
        .unwrap();

    let out = Output::parse(&krawl(&[
        "--bootstrap-servers",
        &broker.bootstrap(),
        "--schema-registry-url",
        &registry.url(),
        "--all-schema-versions",
    ]));
    let topics = out.topics();
    assert_eq!(
        topics.keys().cloned().collect::<BTreeSet<_>>(),
        ds.topic_names()
    );
    let orders = topics[TOPIC_ORDERS];
    assert_eq!(orders.key_subject.as_deref(), Some("orders-key"));
    assert_eq!(orders.value_subject.as_deref(), Some("orders-value"));
    assert!(orders.schema_managed);
    assert_eq!(
        topics[TOPIC_PAYMENTS].value_subject.as_deref(),
        Some("payments-value")
    );
    assert_eq!(topics[TOPIC_PAYMENTS].key_subject, None);
    assert_eq!(
        topics[TOPIC_AUDIT_LOG].value_subject.as_deref(),
        Some("audit-log-value")
    );
    let empty = topics[TOPIC_EMPTY];
    assert!(!empty.schema_managed && empty.key_subject.is_none() && empty.value_subject.is_none());

    let subjects: BTreeMap<String, krawl_model::SubjectRecord> = out
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Subject(s) => Some((s.name.clone(), s.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(subjects.len(), 9);
    let ov = &subjects["orders-value"];
    assert_eq!((ov.latest_version, ov.versions.clone()), (2, vec![1, 2]));
    assert_eq!(ov.role.as_deref(), Some("value"));
    assert_eq!(ov.base_name, "orders");
    assert_eq!(
        (
            ov.compatibility.as_deref(),
            ov.compatibility_source.as_str()
        ),
        (Some("FULL"), "subject")
    );
    assert_eq!(subjects["payments-value"].compatibility_source, "global");
    assert_eq!(subjects["payments-value"].schema_type, "JSON");
    assert_eq!(subjects["audit-log-value"].schema_type, "PROTOBUF");

    let versions: Vec<&krawl_model::SchemaVersionRecord> = out
        .records
        .iter()
        .filter_map(|r| match r {
            Record::SchemaVersion(v) => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(versions.len(), 10, "all versions of every subject");
    let v2 = versions
        .iter()
        .find(|v| v.subject == "orders-value" && v.version == 2)
        .unwrap();
    let paths: Vec<(&str, bool)> = v2
        .fields
        .iter()
        .map(|f| (f.path.as_str(), f.nullable))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("id", false),
            ("note", true),
            ("ship_to", false),
            ("ship_to.city", false),
            ("total", true)
        ]
    );
    assert_eq!(v2.references[0].subject, "address");
    let summary = out.summary();
    assert_eq!(
        (summary.counts.subjects, summary.counts.schema_versions),
        (9, 10)
    );
    assert!(summary.api_calls["SchemaRegistry (HTTP)"] > 0);

    // The registry goes away: the Kafka part is still delivered, with a warning.
    let url = registry.url();
    registry.stop();
    let out = Output::parse(&krawl(&[
        "--bootstrap-servers",
        &broker.bootstrap(),
        "--schema-registry-url",
        &url,
    ]));
    assert_eq!(out.topics().len(), ds.topics.len());
    assert!(out.topics().values().all(|t| !t.schema_managed));
    let w: Vec<_> = out
        .warnings()
        .into_iter()
        .filter(|w| w.code == "schema_registry_unavailable")
        .collect();
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("cannot reach"), "{}", w[0].message);
}
