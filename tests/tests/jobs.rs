//! The agent's job executors (`krawl_agent::jobs::execute`) against real brokers, without the
//! agent loop: each job writes into an in-memory sink.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use krawl_agent::jobs::policy::Policy;
use krawl_agent::jobs::pool::ConnectionPool;
use krawl_agent::jobs::{execute, JobContext, JobDeps, JobFailure};
use krawl_agent::progress::JobProgress;
use krawl_kafka::{ExtractError, RecordSink};
use krawl_model::{ConnectionTestRecord, PermissionRecord, Record, TopicListingRecord};
use krawl_tests::schema_registry::{FakeRegistry, FakeRegistryOpts};
use krawl_tests::{free_port, seed_dataset, BrokerKind, Noida, GROUP_AUDIT, GROUP_BILLING};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Records in memory.
#[derive(Debug, Default)]
struct VecSink(Vec<Record>);

impl RecordSink for VecSink {
    async fn emit(&mut self, record: Record) -> Result<(), ExtractError> {
        self.0.push(record);
        Ok(())
    }
}

fn local_policy() -> Policy {
    Policy {
        allowed_bootstrap_servers: vec!["127.0.0.1:*".into()],
        allowed_schema_registry_urls: vec!["http://127.0.0.1:*".into()],
        ..Policy::default()
    }
}

fn deps(policy: Policy, idle_ttl: Duration) -> JobDeps {
    JobDeps::new(
        krawl_secrets::Resolver::default(),
        policy.compile().expect("the test policy compiles"),
        ConnectionPool::new(idle_ttl),
    )
}

fn ctx(kind: &str, spec: Value) -> JobContext {
    JobContext {
        job_id: format!("job-{kind}"),
        attempt: 1,
        kind: kind.to_string(),
        spec,
        cancel: CancellationToken::new(),
        progress: Arc::new(JobProgress::default()),
    }
}

async fn run(deps: &JobDeps, kind: &str, spec: Value) -> Result<Vec<Record>, JobFailure> {
    let mut sink = VecSink::default();
    execute(deps, &ctx(kind, spec), &mut sink).await?;
    Ok(sink.0)
}

fn plain(bootstrap: &str) -> Value {
    json!({ "kafka": { "bootstrap_servers": [bootstrap], "timeout_secs": 10 } })
}

fn permissions(records: &[Record]) -> BTreeMap<String, PermissionRecord> {
    records
        .iter()
        .map(|r| match r {
            Record::Permission(p) => (p.permission.clone(), p.clone()),
            other => panic!("preflight emitted {other:?}"),
        })
        .collect()
}

fn listings(records: &[Record]) -> Vec<TopicListingRecord> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::TopicListing(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn connection_test(records: &[Record]) -> ConnectionTestRecord {
    match records {
        [Record::ConnectionTest(t)] => t.clone(),
        other => panic!("expected one connection_test record, got {other:?}"),
    }
}

/// Every kind against one seeded noida, all through one pooled client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_against_noida_through_one_pooled_client() {
    let broker = Noida::start().unwrap();
    let bs = broker.bootstrap();
    let ds = seed_dataset(&bs, BrokerKind::Noida).unwrap();
    let deps = deps(local_policy(), Duration::from_secs(300));

    // kafka.extract: what `krawl extract` gives.
    let c = ctx("kafka.extract", plain(&bs));
    let mut sink = VecSink::default();
    execute(&deps, &c, &mut sink).await.unwrap();
    let records = sink.0;
    let topics: BTreeSet<String> = records
        .iter()
        .filter_map(|r| match r {
            Record::Topic(t) => Some(t.name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(topics, ds.topic_names());
    let groups: BTreeSet<String> = records
        .iter()
        .filter_map(|r| match r {
            Record::ConsumerGroup(g) => Some(g.group_id.clone()),
            _ => None,
        })
        .collect();
    assert!(
        groups.contains(GROUP_BILLING) && groups.contains(GROUP_AUDIT),
        "{groups:?}"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| matches!(r, Record::Cluster(_)))
            .count(),
        1
    );
    let Some(Record::Summary(summary)) = records.last() else {
        panic!("the summary is not last: {:?}", records.last());
    };
    assert_eq!(summary.counts.records, records.len());
    assert_eq!(summary.counts.topics, ds.topics.len());
    let partitions: i32 = ds.topics.values().map(|t| t.partitions).sum();
    assert_eq!(summary.counts.partitions, partitions as usize);
    assert_eq!(summary.counts.consumer_groups, groups.len());
    assert_eq!(c.progress.snapshot().phase, "topics");

    // kafka.list_topics: names and partition counts as created, sorted, internal ones left out.
    let got = listings(&run(&deps, "kafka.list_topics", plain(&bs)).await.unwrap());
    let want: Vec<(String, usize)> = ds
        .topics
        .values()
        .map(|t| (t.name.clone(), t.partitions as usize))
        .collect();
    assert_eq!(
        got.iter()
            .map(|t| (t.name.clone(), t.partitions))
            .collect::<Vec<_>>(),
        want
    );
    assert!(got.iter().all(|t| !t.internal));
    // ... honouring the extract filters.
    let mut spec = plain(&bs);
    spec["extract"] = json!({ "include_topics": ["^orders$", "^pay"], "include_internal_topics": true, "exclude_topics": ["^__trans"] });
    let got = listings(&run(&deps, "kafka.list_topics", spec).await.unwrap());
    assert_eq!(
        got.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["orders", "payments"]
    );
    let mut spec = plain(&bs);
    spec["extract"] = json!({ "include_topics": ["^__"], "include_internal_topics": true });
    let got = listings(&run(&deps, "kafka.list_topics", spec).await.unwrap());
    assert_eq!(
        got.iter()
            .map(|t| (t.name.as_str(), t.partitions, t.internal))
            .collect::<Vec<_>>(),
        [
            ("__consumer_offsets", 50, true),
            ("__transaction_state", 50, true)
        ]
    );

    // kafka.test_connection: the verdict with cluster id, brokers and API versions.
    let t = connection_test(
        &run(&deps, "kafka.test_connection", plain(&bs))
            .await
            .unwrap(),
    );
    assert!(t.ok && t.reachable && t.authenticated, "{t:?}");
    assert_eq!(t.error_class, None);
    assert!(
        t.cluster_id.as_deref().is_some_and(|id| !id.is_empty()),
        "{t:?}"
    );
    assert_eq!(t.brokers.len(), 1);
    assert_eq!((t.brokers[0].id, t.brokers[0].port), (1, broker.port()));
    let apis: BTreeSet<&str> = t.api_versions.iter().map(|a| a.name.as_str()).collect();
    for api in ["Metadata", "ApiVersions", "ListOffsets", "DescribeConfigs"] {
        assert!(apis.contains(api), "{api} in {apis:?}");
    }
    assert!(t.verdict.contains("connected"), "{}", t.verdict);
    assert_eq!(t.security_protocol, "PLAINTEXT");

    // kafka.preflight: every permission noida grants (it has no ACLs).
    let p = permissions(&run(&deps, "kafka.preflight", plain(&bs)).await.unwrap());
    for (name, rec) in &p {
        eprintln!(
            "preflight on noida: {name}: {:?}: {}",
            rec.granted, rec.detail
        );
    }
    assert_eq!(
        p.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from([
            "describe_cluster",
            "describe_topics",
            "describe_configs",
            "list_offsets",
            "describe_groups",
            "describe_group_offsets",
            "describe_log_dirs",
        ])
    );
    for name in [
        "describe_topics",
        "describe_configs",
        "list_offsets",
        "describe_groups",
        "describe_group_offsets",
        "describe_log_dirs",
    ] {
        assert_eq!(p[name].granted, Some(true), "{name}: {}", p[name].detail);
        assert!(p[name].remedy.is_none());
    }
    // noida 0.2.3 answers DescribeCluster too.
    assert_eq!(
        p["describe_cluster"].granted,
        Some(true),
        "{:?}",
        p["describe_cluster"]
    );

    // One client served every job: one connect, the rest were hits.
    let stats = deps.pool.stats();
    assert_eq!(
        (stats.open, stats.misses, stats.hits),
        (1, 1, 5),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_connection_test_is_a_successful_job_saying_ok_false() {
    let deps = deps(local_policy(), Duration::from_secs(300));
    let closed = format!("127.0.0.1:{}", free_port());
    let mut spec = plain(&closed);
    spec["kafka"]["timeout_secs"] = json!(5);
    let started = Instant::now();
    let t = connection_test(
        &run(&deps, "kafka.test_connection", spec.clone())
            .await
            .unwrap(),
    );
    assert!(!t.ok && !t.reachable && !t.authenticated, "{t:?}");
    assert_eq!(
        t.error_class.as_deref(),
        Some("connection_refused"),
        "{t:?}"
    );
    assert!(
        t.verdict.contains(&closed) && t.verdict.contains("hint:"),
        "{}",
        t.verdict
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(deps.pool.stats().open, 0, "a failed connect is not pooled");

    // The other kinds fail the job with the same class.
    let e = run(&deps, "kafka.list_topics", spec).await.unwrap_err();
    assert_eq!(e.class, "connection_refused", "{e}");

    // Authentication: noida has no SCRAM.
    let broker = Noida::start().unwrap();
    std::env::set_var("KRAWL_JOBS_TEST_SCRAM_PW", "pw");
    let spec = json!({ "kafka": {
        "bootstrap_servers": [broker.bootstrap()], "timeout_secs": 10,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl": { "mechanism": "SCRAM-SHA-256", "username": "reader", "password": "env://KRAWL_JOBS_TEST_SCRAM_PW" }
    }});
    let t = connection_test(&run(&deps, "kafka.test_connection", spec).await.unwrap());
    assert!(!t.ok && t.reachable && !t.authenticated, "{t:?}");
    assert_eq!(t.error_class.as_deref(), Some("authentication"), "{t:?}");
    assert_eq!(t.sasl_mechanism.as_deref(), Some("SCRAM-SHA-256"));
    assert!(!t.verdict.contains("\"pw\""), "{}", t.verdict);
}

/// A listener that counts the connections it accepts.
struct CountingListener {
    addr: String,
    accepted: Arc<AtomicUsize>,
}

impl CountingListener {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = l.local_addr().expect("local address").to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let n = Arc::clone(&accepted);
        std::thread::spawn(move || {
            // Accepted sockets are kept open and never answered.
            let mut held = Vec::new();
            for s in l.incoming().flatten() {
                n.fetch_add(1, Ordering::SeqCst);
                held.push(s);
            }
        });
        Self { addr, accepted }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_refuses_before_any_contact_or_secret_resolution() {
    let target = CountingListener::start();
    let strict = Policy {
        allowed_bootstrap_servers: vec!["kafka-*.prod.internal:9093".into()],
        allowed_schema_registry_urls: vec!["https://sr.prod.internal".into()],
        allowed_secret_refs: vec!["vault://secret/kafka/*".into()],
        allowed_job_kinds: vec![
            "kafka.test_connection".into(),
            "kafka.preflight".into(),
            "kafka.extract".into(),
        ],
        ..Policy::default()
    };
    let deps = deps(strict.clone(), Duration::from_secs(300));

    // A bootstrap server outside the list.
    for kind in ["kafka.test_connection", "kafka.preflight", "kafka.extract"] {
        let e = run(&deps, kind, plain(&target.addr)).await.unwrap_err();
        assert_eq!(e.class, "policy", "{e}");
        assert!(
            e.message.contains(&target.addr)
                && e.message.contains("policy.allowed_bootstrap_servers"),
            "{e}"
        );
    }
    // A kind outside the list.
    let e = run(&deps, "kafka.list_topics", plain(&target.addr))
        .await
        .unwrap_err();
    assert_eq!(e.class, "policy");
    assert!(e.message.contains("policy.allowed_job_kinds"), "{e}");

    // Allowed server, but a secret reference outside the list: refused before it is resolved
    // (the variable is unset: resolving it would be a `secret` failure).
    let deps = deps_with_server(&strict, &target.addr);
    let spec = json!({ "kafka": {
        "bootstrap_servers": [target.addr], "security_protocol": "SASL_PLAINTEXT",
        "sasl": { "mechanism": "PLAIN", "username": "u", "password": "env://KRAWL_JOBS_TEST_UNSET_PW" }
    }});
    let e = run(&deps, "kafka.test_connection", spec).await.unwrap_err();
    assert_eq!(e.class, "policy", "{e}");
    assert!(
        e.message.contains("env://KRAWL_JOBS_TEST_UNSET_PW")
            && e.message.contains("policy.allowed_secret_refs"),
        "{e}"
    );
    // A literal secret in a spec.
    let spec = json!({ "kafka": {
        "bootstrap_servers": [target.addr], "security_protocol": "SASL_PLAINTEXT",
        "sasl": { "mechanism": "PLAIN", "username": "u", "password": "hunter2" }
    }});
    let e = run(&deps, "kafka.test_connection", spec).await.unwrap_err();
    assert_eq!(e.class, "policy", "{e}");
    assert!(e.message.contains("policy.allow_literal_secrets"), "{e}");
    assert!(!e.message.contains("hunter2"), "{e}");
    // A registry outside the list.
    let mut spec = plain(&target.addr);
    spec["schema_registry"] = json!({ "url": "http://127.0.0.1:1" });
    let e = run(&deps, "kafka.preflight", spec).await.unwrap_err();
    assert_eq!(e.class, "policy", "{e}");
    assert!(
        e.message.contains("policy.allowed_schema_registry_urls"),
        "{e}"
    );
    // The default policy allows no cluster at all.
    let e = run(
        &self::deps(Policy::default(), Duration::from_secs(1)),
        "kafka.test_connection",
        plain(&target.addr),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class, "policy", "{e}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        target.accepted.load(Ordering::SeqCst),
        0,
        "a refused job contacted the target"
    );

    // Control: an allowed job does reach it.
    let mut spec = plain(&target.addr);
    spec["kafka"]["timeout_secs"] = json!(2);
    let t = connection_test(&run(&deps, "kafka.test_connection", spec).await.unwrap());
    assert!(!t.ok);
    assert!(target.accepted.load(Ordering::SeqCst) > 0);
}

fn deps_with_server(policy: &Policy, server: &str) -> JobDeps {
    let mut p = policy.clone();
    p.allowed_bootstrap_servers.push(server.to_string());
    deps(p, Duration::from_secs(300))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kinds_and_malformed_specs_are_invalid_jobs_without_panics() {
    // No server is allowed: whatever parses ends at the policy, never on the network.
    let deps = deps(Policy::default(), Duration::from_secs(1));
    let e = run(&deps, "kafka.produce", plain("b:9092"))
        .await
        .unwrap_err();
    assert_eq!(e.class, "invalid_job");
    assert!(
        e.message.contains("\"kafka.produce\"") && e.message.contains("kafka.list_topics"),
        "{e}"
    );
    for kind in ["", "KAFKA.EXTRACT", "kafka.extract ", "\u{0}"] {
        assert_eq!(
            run(&deps, kind, plain("b:9092")).await.unwrap_err().class,
            "invalid_job"
        );
    }

    let cases: Vec<(Value, &str)> = vec![
        (json!(null), "JSON object"),
        (json!("kafka"), "JSON object"),
        (json!([1, 2]), "JSON object"),
        (json!({}), "kafka"),
        (json!({ "kafka": "b:9092" }), "spec.kafka must be an object"),
        (
            json!({ "kafka": { "bootstrap_servers": "b:9092" } }),
            "spec.kafka.bootstrap_servers must be an array",
        ),
        (
            json!({ "kafka": { "bootstrap_servers": ["b:9092"], "bogus": 1 } }),
            "spec.kafka has unknown key(s) \"bogus\"",
        ),
        (
            json!({ "kafka": { "bootstrap_servers": ["b:9092"], "security_protocol": "TLS" } }),
            "spec.kafka.security_protocol must be one of",
        ),
        (
            json!({ "kafka": { "bootstrap_servers": ["b:9092"] }, "extract": { "include_topics": "x" } }),
            "spec.extract.include_topics must be an array",
        ),
        (
            json!({ "kafka": { "bootstrap_servers": ["b:9092"] }, "schema_registry": "http://sr" }),
            "spec.schema_registry must be an object",
        ),
        (
            json!({ "kafka": { "bootstrap_servers": ["b:9092"] }, "secrets": { "allow": ["*"] } }),
            "secrets",
        ),
    ];
    for (spec, needle) in cases {
        let e = run(&deps, "kafka.extract", spec.clone()).await.unwrap_err();
        assert_eq!(e.class, "invalid_job", "{spec}: {e}");
        assert!(e.message.contains(needle), "{spec}: {e}");
    }
    // A bootstrap entry that is not exactly one host:port: refused by the spec's structure,
    // naming the position.
    let e = run(
        &deps,
        "kafka.extract",
        json!({ "kafka": { "bootstrap_servers": ["nohostport"] } }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class, "invalid_job", "{e}");
    assert!(e.message.contains("spec.kafka.bootstrap_servers[0]"), "{e}");
    // Parsed but invalid settings: class config, naming the key.
    let e = run(
        &deps,
        "kafka.list_topics",
        json!({ "kafka": { "bootstrap_servers": ["b:1"] }, "extract": { "include_topics": ["("] } }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class, "config", "{e}");
    assert!(e.message.contains("extract.include_topics"), "{e}");

    // Mutations of a full spec: each is refused with a class, none panics.
    let base = json!({
        "kafka": { "bootstrap_servers": ["b:9092"], "security_protocol": "SASL_SSL", "timeout_secs": 10,
            "sasl": { "mechanism": "PLAIN", "username": "u", "password": "env://X" },
            "properties": { "socket.keepalive.enable": "true" } },
        "extract": { "include_topics": ["^a"], "describe_configs_batch": 10, "group_states": ["Stable"] },
        "schema_registry": { "url": "https://sr:8081", "auth": { "method": "basic", "username": "k", "password": "env://Y" } }
    });
    let replacements = [
        json!(null),
        json!(-1),
        json!(0),
        json!(u64::MAX),
        json!(""),
        json!("\u{0}"),
        json!([]),
        json!({}),
        json!(true),
        json!(1.5),
        json!(["x", 1]),
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut classes = BTreeMap::new();
    for _ in 0..400 {
        let mut spec = base.clone();
        let mut v = &mut spec;
        loop {
            let keys: Vec<String> = match v.as_object() {
                Some(o) if !o.is_empty() => o.keys().cloned().collect(),
                _ => break,
            };
            let k = &keys[(next() as usize) % keys.len()];
            if next() % 3 == 0 {
                break;
            }
            v = v.get_mut(k).unwrap();
        }
        *v = replacements[(next() as usize) % replacements.len()].clone();
        let e = run(&deps, "kafka.extract", spec).await.unwrap_err();
        assert!(
            ["invalid_job", "config", "policy"].contains(&e.class.as_str()),
            "{e}"
        );
        *classes.entry(e.class).or_insert(0) += 1;
    }
    assert!(classes.len() >= 2, "{classes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_reads_the_schema_registry_with_its_credentials() {
    let broker = Noida::start().unwrap();
    let bs = broker.bootstrap();
    seed_dataset(&bs, BrokerKind::Noida).unwrap();
    let registry = FakeRegistry::start(FakeRegistryOpts {
        basic_auth: Some(("krawl".into(), "right".into())),
        ..Default::default()
    })
    .unwrap();
    registry
        .register("orders-value", "AVRO", r#"{"type":"string"}"#, &[])
        .unwrap();
    std::env::set_var("KRAWL_JOBS_TEST_SR_WRONG", "wrong");
    std::env::set_var("KRAWL_JOBS_TEST_SR_RIGHT", "right");
    let deps = deps(local_policy(), Duration::from_secs(300));
    let spec = |pw: &str| {
        let mut s = plain(&bs);
        s["schema_registry"] = json!({ "url": registry.url(),
            "auth": { "method": "basic", "username": "krawl", "password": pw } });
        s
    };

    let p = permissions(
        &run(
            &deps,
            "kafka.preflight",
            spec("env://KRAWL_JOBS_TEST_SR_WRONG"),
        )
        .await
        .unwrap(),
    );
    let sr = &p["read_schema_registry"];
    assert_eq!(sr.granted, Some(false), "{sr:?}");
    assert!(sr.detail.contains("401"), "{sr:?}");
    assert!(
        sr.remedy
            .as_deref()
            .is_some_and(|r| r.contains("schema_registry.auth")),
        "{sr:?}"
    );
    assert!(!format!("{sr:?}").contains("wrong"), "{sr:?}");
    assert_eq!(p.len(), 8);

    let p = permissions(
        &run(
            &deps,
            "kafka.preflight",
            spec("env://KRAWL_JOBS_TEST_SR_RIGHT"),
        )
        .await
        .unwrap(),
    );
    let sr = &p["read_schema_registry"];
    assert_eq!(sr.granted, Some(true), "{sr:?}");
    assert!(sr.detail.contains("1 subject"), "{sr:?}");
    assert!(sr.remedy.is_none());

    // A 403 says which role to grant.
    registry.fail("/subjects", 403, 1, None);
    let p = permissions(
        &run(
            &deps,
            "kafka.preflight",
            spec("env://KRAWL_JOBS_TEST_SR_RIGHT"),
        )
        .await
        .unwrap(),
    );
    let sr = &p["read_schema_registry"];
    assert_eq!(sr.granted, Some(false), "{sr:?}");
    assert!(sr.detail.contains("403"), "{sr:?}");
    assert!(
        sr.remedy
            .as_deref()
            .is_some_and(|r| r.contains("DeveloperRead")),
        "{sr:?}"
    );

    // A registry that is down: not checked (null), the Kafka permissions still reported.
    let url = registry.url();
    drop(registry);
    let mut s = plain(&bs);
    s["schema_registry"] = json!({ "url": url, "timeout_secs": 2, "retries": 0 });
    let p = permissions(&run(&deps, "kafka.preflight", s).await.unwrap());
    assert_eq!(
        p["read_schema_registry"].granted, None,
        "{:?}",
        p["read_schema_registry"]
    );
    assert_eq!(p["describe_topics"].granted, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_reuses_reconnects_on_a_new_password_and_closes_idle_clients() {
    let broker = Noida::start().unwrap();
    let deps = deps(local_policy(), Duration::from_secs(2));
    let spec = json!({ "kafka": {
        "bootstrap_servers": [broker.bootstrap()], "timeout_secs": 10,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl": { "mechanism": "PLAIN", "username": "reader", "password": "env://KRAWL_JOBS_TEST_POOL_PW" }
    }});
    std::env::set_var("KRAWL_JOBS_TEST_POOL_PW", "one");
    // Two concurrent jobs, then a later one: one client.
    let (a, b) = tokio::join!(
        run(&deps, "kafka.test_connection", spec.clone()),
        run(&deps, "kafka.list_topics", spec.clone())
    );
    assert!(connection_test(&a.unwrap()).ok);
    b.unwrap();
    let t = connection_test(
        &run(&deps, "kafka.test_connection", spec.clone())
            .await
            .unwrap(),
    );
    assert!(t.ok);
    let s = deps.pool.stats();
    assert_eq!((s.open, s.misses, s.hits), (1, 1, 2), "{s:?}");

    // A rotated password: a new client (the old one ages out).
    std::env::set_var("KRAWL_JOBS_TEST_POOL_PW", "two");
    assert!(
        connection_test(
            &run(&deps, "kafka.test_connection", spec.clone())
                .await
                .unwrap()
        )
        .ok
    );
    let s = deps.pool.stats();
    assert_eq!((s.open, s.misses, s.hits), (2, 2, 2), "{s:?}");
    // The key holds no secret.
    assert!(!format!("{:?}", deps.pool).contains("two"));

    // Idle for the TTL: both closed by the sweeper.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let s = deps.pool.stats();
    assert_eq!((s.open, s.closed), (0, 2), "{s:?}");
    // And the next job connects afresh.
    assert!(connection_test(&run(&deps, "kafka.test_connection", spec).await.unwrap()).ok);
    assert_eq!(deps.pool.stats().misses, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_stops_promptly() {
    // A broker that accepts and never answers: the job would wait for its timeout.
    let silent = CountingListener::start();
    let deps = deps(local_policy(), Duration::from_secs(300));
    let mut spec = plain(&silent.addr);
    spec["kafka"]["timeout_secs"] = json!(60);
    let c = ctx("kafka.extract", spec.clone());
    let cancel = c.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    let mut sink = VecSink::default();
    let e = execute(&deps, &c, &mut sink).await.unwrap_err();
    assert_eq!(e.class, "cancelled", "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Cancelled before it starts: nothing is contacted.
    let before = silent.accepted.load(Ordering::SeqCst);
    let c = ctx("kafka.test_connection", spec);
    c.cancel.cancel();
    let e = execute(&deps, &c, &mut sink).await.unwrap_err();
    assert_eq!(e.class, "cancelled");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(silent.accepted.load(Ordering::SeqCst), before);
}

/// Tansu: a broker with other gaps (no internal topics, its own group listing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_list_topics_and_preflight_against_tansu() {
    let broker = krawl_tests::Tansu::start(krawl_tests::TansuOpts::default()).unwrap();
    let bs = broker.bootstrap();
    let ds = seed_dataset(&bs, BrokerKind::Tansu).unwrap();
    let deps = deps(local_policy(), Duration::from_secs(300));

    let t = connection_test(
        &run(&deps, "kafka.test_connection", plain(&bs))
            .await
            .unwrap(),
    );
    assert!(t.ok, "{t:?}");
    assert_eq!(
        t.brokers.iter().map(|b| b.id).collect::<Vec<_>>(),
        [BrokerKind::Tansu.broker_id()]
    );
    assert!(!t.api_versions.is_empty());

    let got = listings(&run(&deps, "kafka.list_topics", plain(&bs)).await.unwrap());
    assert_eq!(
        got.iter()
            .map(|t| (t.name.clone(), t.partitions))
            .collect::<Vec<_>>(),
        ds.topics
            .values()
            .map(|t| (t.name.clone(), t.partitions as usize))
            .collect::<Vec<_>>()
    );

    let p = permissions(&run(&deps, "kafka.preflight", plain(&bs)).await.unwrap());
    for (name, rec) in &p {
        eprintln!(
            "preflight on tansu: {name}: {:?}: {}",
            rec.granted, rec.detail
        );
    }
    assert_eq!(p.len(), 7);
    // Tansu has no authorizer: nothing is denied.
    assert!(p.values().all(|r| r.granted != Some(false)), "{p:?}");
    for name in ["describe_topics", "describe_configs", "list_offsets"] {
        assert_eq!(p[name].granted, Some(true), "{name}: {}", p[name].detail);
    }
    // Tansu does not offer DescribeLogDirs: unknown, and the detail says so.
    let logs = &p["describe_log_dirs"];
    assert_eq!(logs.granted, None, "{logs:?}");
    assert!(logs.detail.contains("API 35"), "{logs:?}");
}

/// The read-only proof for the short job kinds (as `a_full_extraction_sends_only_read_only_apis`
/// is for extraction): every request of a connection test, a topic listing and a preflight, seen
/// by a recording proxy all client connections go through, is in `READ_ONLY_APIS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_short_job_kinds_send_only_read_only_apis() {
    let broker = krawl_tests::ProxiedTansu::start().unwrap();
    let bs = broker.bootstrap();
    seed_dataset(&bs, BrokerKind::Tansu).unwrap();
    broker.proxy.clear();
    let deps = deps(local_policy(), Duration::from_secs(300));

    for kind in [
        "kafka.test_connection",
        "kafka.list_topics",
        "kafka.preflight",
    ] {
        let records = run(&deps, kind, plain(&bs)).await.unwrap();
        assert!(!records.is_empty(), "{kind}");
    }
    deps.pool.close_all();

    let used = broker.proxy.api_keys();
    let allowed: BTreeSet<i16> = krawl_kafka::api_keys::READ_ONLY_APIS
        .iter()
        .copied()
        .collect();
    assert!(
        used.is_subset(&allowed),
        "non-read-only APIs sent: {:?}",
        used.difference(&allowed)
            .map(|k| krawl_tests::api_name(*k))
            .collect::<Vec<_>>()
    );
    // The preflight really exercised its calls through the proxy.
    for needed in ["Metadata", "DescribeConfigs", "ListOffsets", "ListGroups"] {
        assert!(
            used.iter().any(|k| krawl_tests::api_name(*k) == needed),
            "{needed} not seen: {used:?}"
        );
    }
}

/// Issue 11: a broker in the allowed list could advertise any host, and librdkafka (with the
/// job's credentials) and the DescribeLogDirs client would connect there. The brokers a cluster
/// advertises must match `policy.allowed_bootstrap_servers` too. noida advertises
/// `127.0.0.1:PORT`: an agent that allows only `localhost:PORT` reaches the bootstrap server
/// but refuses the job once the cluster names a host it does not allow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertised_brokers_outside_the_policy_are_refused() {
    let broker = Noida::start().unwrap();
    let port = broker.bootstrap().rsplit_once(':').unwrap().1.to_string();
    let via_localhost = format!("localhost:{port}");
    let only_localhost = Policy {
        allowed_bootstrap_servers: vec![via_localhost.clone()],
        ..Policy::default()
    };
    let deps = deps(only_localhost, Duration::from_secs(300));
    for kind in [
        "kafka.extract",
        "kafka.list_topics",
        "kafka.test_connection",
        "kafka.preflight",
    ] {
        let e = run(&deps, kind, plain(&via_localhost)).await.unwrap_err();
        assert_eq!(e.class, "policy", "{kind}: {e}");
        assert!(
            e.message.contains("advertises broker")
                && e.message.contains(&format!("127.0.0.1:{port}"))
                && e.message.contains("policy.allowed_bootstrap_servers"),
            "{kind}: {e}"
        );
    }
    // The client it refused is not kept for the next job.
    assert_eq!(deps.pool.stats().open, 0);
    // Allowing the advertised address too makes the same job work.
    let both = Policy {
        allowed_bootstrap_servers: vec![via_localhost.clone(), format!("127.0.0.1:{port}")],
        ..Policy::default()
    };
    let deps = self::deps(both, Duration::from_secs(300));
    run(&deps, "kafka.list_topics", plain(&via_localhost))
        .await
        .unwrap();
}
