//! Smoke tests of the end-to-end harness: the brokers start, the data set is what
//! `SeededDataset` says, TLS/mTLS through stunnel work, the recording proxy sees requests, and
//! processes do not outlive their guards. They also pin down what each broker reports (see
//! `BrokerKind`), which the krawl end-to-end tests rely on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use krawl_tests::*;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

fn admin(bootstrap: &str, props: &[(String, String)]) -> Result<AdminClient<DefaultClientContext>> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    for (k, v) in props {
        cfg.set(k, v);
    }
    cfg.create().context("admin client")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Checks metadata, watermarks and committed offsets against the data set.
fn check_dataset(ds: &SeededDataset, props: &[(String, String)]) -> Result<()> {
    let consumer = probe_consumer(&ds.bootstrap, props)?;
    let md = consumer.fetch_metadata(None, CLIENT_TIMEOUT)?;

    assert_eq!(md.brokers().len(), 1, "single broker");
    assert_eq!(md.brokers()[0].id(), ds.broker.broker_id());

    let listed: BTreeMap<String, i32> = md
        .topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect();
    let mut expected: BTreeMap<String, i32> = ds
        .topics
        .values()
        .map(|t| (t.name.clone(), t.partitions))
        .collect();
    expected.extend(ds.broker.internal_topics());
    assert_eq!(listed, expected, "topics and partition counts");

    for t in ds.topics.values() {
        for p in 0..t.partitions {
            let wm = consumer.fetch_watermarks(&t.name, p, CLIENT_TIMEOUT)?;
            assert_eq!(
                wm,
                (0, t.latest_offset(p).expect("partition")),
                "{}/{p}",
                t.name
            );
        }
    }

    for g in ds.groups.values() {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &ds.bootstrap)
            .set("group.id", &g.name)
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000");
        for (k, v) in props {
            cfg.set(k, v);
        }
        let c: BaseConsumer = cfg.create()?;
        let mut tpl = TopicPartitionList::new();
        // Ask for every partition of the group's topics: uncommitted ones must come back Invalid.
        for topic in ds.group_topics(&g.name) {
            for p in 0..ds.topic(&topic).expect("topic").partitions {
                tpl.add_partition(&topic, p);
            }
        }
        let got = c.committed_offsets(tpl, CLIENT_TIMEOUT)?;
        for e in got.elements() {
            let want = ds.committed(&g.name, e.topic(), e.partition());
            match want {
                Some(o) => assert_eq!(e.offset(), Offset::Offset(o), "{} {e:?}", g.name),
                None => assert_eq!(e.offset(), Offset::Invalid, "{} {e:?}", g.name),
            }
        }
    }
    Ok(())
}

fn check_topic_configs(ds: &SeededDataset) -> Result<()> {
    let admin = admin(&ds.bootstrap, &[])?;
    let names: Vec<&str> = ds.topics.keys().map(String::as_str).collect();
    let specs: Vec<ResourceSpecifier<'_>> =
        names.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
    let results = block_on(admin.describe_configs(&specs, &AdminOptions::new()))?;
    for (name, res) in names.iter().zip(results) {
        let res = res.map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
        let t = ds.topic(name).expect("topic");
        assert_eq!(
            res.entries.len(),
            ds.broker.topic_config_count(t.config_overrides.len()),
            "{name}: {:?}",
            res.entries
        );
        let map = res.entry_map();
        for (k, v) in &t.config_overrides {
            let e = map.get(k.as_str()).unwrap_or_else(|| panic!("{name}: {k}"));
            assert_eq!(e.value.as_deref(), Some(v.as_str()), "{name}: {k}");
            assert_eq!(e.source, ds.broker.override_source(), "{name}: {k}");
        }
        if ds.broker.describes_all_topic_configs() {
            for e in &res.entries {
                if !t.config_overrides.contains_key(&e.name) {
                    assert_eq!(
                        e.source,
                        rdkafka::admin::ConfigSource::Default,
                        "{name}: {}",
                        e.name
                    );
                    assert!(e.is_default, "{name}: {}", e.name);
                }
            }
            // Defaults noida reports for topics without overrides.
            if t.config_overrides.is_empty() {
                let v = |k: &str| map.get(k).and_then(|e| e.value.clone());
                assert_eq!(v("retention.ms").as_deref(), Some("604800000"));
                assert_eq!(v("cleanup.policy").as_deref(), Some("delete"));
                assert_eq!(v("max.message.bytes").as_deref(), Some("1048588"));
            }
        }
    }

    let broker = ResourceSpecifier::Broker(ds.broker.broker_id());
    let res = block_on(admin.describe_configs([&broker], &AdminOptions::new()))?;
    let res = res
        .into_iter()
        .next()
        .expect("one result")
        .map_err(|e| anyhow::anyhow!("broker configs: {e:?}"))?;
    let got: BTreeMap<String, String> = res
        .entries
        .iter()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    assert_eq!(got, ds.broker.broker_configs(), "broker configs");
    Ok(())
}

fn group_states(bootstrap: &str) -> Result<BTreeMap<String, (String, usize)>> {
    let c = probe_consumer(bootstrap, &[])?;
    let list = c.fetch_group_list(None, CLIENT_TIMEOUT)?;
    Ok(list
        .groups()
        .iter()
        .map(|g| {
            (
                g.name().to_string(),
                (g.state().to_string(), g.members().len()),
            )
        })
        .collect())
}

#[test]
fn noida_seeded_dataset_matches() -> Result<()> {
    let noida = Noida::start()?;
    let ds = seed_dataset(&noida.bootstrap(), BrokerKind::Noida)?;
    check_dataset(&ds, &[])?;
    check_topic_configs(&ds)?;

    let states = group_states(&noida.bootstrap())?;
    for g in [GROUP_BILLING, GROUP_AUDIT] {
        assert_eq!(
            states.get(g),
            Some(&(BrokerKind::Noida.idle_group_state().to_string(), 0)),
            "{states:?}"
        );
    }
    assert_eq!(ds.total_lag(GROUP_BILLING), 6);
    Ok(())
}

#[test]
fn tansu_seeded_dataset_matches() -> Result<()> {
    let tansu = Tansu::start(TansuOpts::default())?;
    let ds = seed_dataset(&tansu.bootstrap(), BrokerKind::Tansu)?;
    check_dataset(&ds, &[])?;
    check_topic_configs(&ds)?;
    let states = group_states(&tansu.bootstrap())?;
    for g in [GROUP_BILLING, GROUP_AUDIT] {
        assert_eq!(
            states.get(g),
            Some(&(BrokerKind::Tansu.idle_group_state().to_string(), 0)),
            "{states:?}"
        );
    }
    Ok(())
}

fn check_live_member(addr: std::net::SocketAddr, kind: BrokerKind) -> Result<()> {
    let bootstrap = addr.to_string();
    let ds = seed_dataset(&bootstrap, kind)?;
    let member = LiveMember::join(&bootstrap, "live", &[TOPIC_ORDERS, TOPIC_PAYMENTS])?;
    let expected: Vec<(String, i32)> = vec![
        (TOPIC_ORDERS.to_string(), 0),
        (TOPIC_ORDERS.to_string(), 1),
        (TOPIC_ORDERS.to_string(), 2),
        (TOPIC_PAYMENTS.to_string(), 0),
    ];
    assert_eq!(member.assignment(), expected.as_slice());
    assert_eq!(member.client_id(), "krawl-live-live");

    let raw = describe_group_plain(addr, "live")?;
    eprintln!("{kind:?} DescribeGroups(live) with member: {raw:?}");
    assert_eq!(raw.error_code, 0);
    assert_eq!(raw.state, "Stable");

    let c = probe_consumer(&bootstrap, &[])?;
    let list = c.fetch_group_list(None, CLIENT_TIMEOUT)?;
    let listed: Vec<&str> = list.groups().iter().map(|g| g.name()).collect();
    assert_eq!(
        listed.contains(&"live"),
        kind.lists_groups_without_offsets(),
        "{listed:?}"
    );
    if kind.reports_group_members() {
        assert_eq!(raw.protocol_type, "consumer");
        assert_eq!(raw.protocol, "range");
        assert_eq!(raw.members.len(), 1);
        let m = &raw.members[0];
        assert_eq!(m.client_id, "krawl-live-live");
        assert_eq!(m.client_host, "/127.0.0.1");
        assert!(
            m.member_id.starts_with("krawl-live-live-"),
            "{}",
            m.member_id
        );
        assert!(!m.assignment.is_empty());

        let list = c.fetch_group_list(Some("live"), CLIENT_TIMEOUT)?;
        let g = list
            .groups()
            .iter()
            .find(|g| g.name() == "live")
            .expect("group live");
        assert_eq!(g.state(), "Stable");
        assert_eq!(g.members().len(), 1);
        assert_eq!(g.members()[0].client_id(), "krawl-live-live");
    } else {
        // Tansu, classic DescribeGroups: member ids only, protocol empty.
        assert_eq!(raw.protocol_type, "consumer");
        assert_eq!(raw.protocol, "");
        assert_eq!(raw.members.len(), 1);
        let m = &raw.members[0];
        assert!(
            m.member_id.starts_with("krawl-live-live-"),
            "{}",
            m.member_id
        );
        assert_eq!(m.client_id, "");
        assert_eq!(m.client_host, "");
        assert!(m.assignment.is_empty() && m.metadata.is_empty());
    }
    // The live member does not commit: the seeded groups are untouched.
    assert_eq!(ds.total_lag(GROUP_BILLING), 6);
    drop(member);

    // After the member left, the group is Empty.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let raw = describe_group_plain(addr, "live")?;
        if raw.state == "Empty" && raw.members.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "group live: {raw:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

#[test]
fn noida_live_member_is_described() -> Result<()> {
    let noida = Noida::start()?;
    check_live_member(noida.addr(), BrokerKind::Noida)
}

#[test]
fn tansu_live_member_is_stable_without_members() -> Result<()> {
    let tansu = Tansu::start(TansuOpts::default())?;
    check_live_member(tansu.listen_addr(), BrokerKind::Tansu)
}

fn metadata_with(bootstrap: &str, props: &[(String, String)]) -> Result<Vec<String>> {
    let mut p = props.to_vec();
    p.push(("socket.timeout.ms".into(), "5000".into()));
    let c = probe_consumer(bootstrap, &p)?;
    let md = c.fetch_metadata(None, Duration::from_secs(5))?;
    Ok(md.topics().iter().map(|t| t.name().to_string()).collect())
}

#[test]
fn tls_tansu_through_stunnel() -> Result<()> {
    let pki = TestPki::generate()?;
    let tls = TlsTansu::start(&pki, false)?;
    let props = tls.client_props(&pki);
    let ds = seed_dataset_with(&tls.bootstrap(), BrokerKind::Tansu, &props)?;
    check_dataset(&ds, &props)?;

    // Trusting the wrong CA fails; plaintext against the TLS port fails.
    let wrong = vec![
        ("security.protocol".to_string(), "ssl".to_string()),
        (
            "ssl.ca.location".to_string(),
            pki.wrong_ca_cert.display().to_string(),
        ),
    ];
    assert!(metadata_with(&tls.bootstrap(), &wrong).is_err());
    assert!(metadata_with(&tls.bootstrap(), &[]).is_err());
    // `localhost` is in the certificate too.
    let by_name = format!("localhost:{}", tls.stunnel.accept_port());
    assert!(metadata_with(&by_name, &props)?.contains(&TOPIC_ORDERS.to_string()));
    Ok(())
}

#[test]
fn mtls_tansu_through_stunnel() -> Result<()> {
    let pki = TestPki::generate()?;
    let tls = TlsTansu::start(&pki, true)?;
    let props = tls.client_props(&pki);
    let ds = seed_dataset_with(&tls.bootstrap(), BrokerKind::Tansu, &props)?;
    check_dataset(&ds, &props)?;

    // Without a client certificate, or with one from the wrong CA: transport failure.
    assert!(metadata_with(&tls.bootstrap(), &pki.rdkafka_tls_props(false)).is_err());
    let mut wrong_client = pki.rdkafka_tls_props(false);
    wrong_client.push((
        "ssl.certificate.location".into(),
        pki.wrong_client_cert.display().to_string(),
    ));
    wrong_client.push((
        "ssl.key.location".into(),
        pki.wrong_client_key.display().to_string(),
    ));
    assert!(metadata_with(&tls.bootstrap(), &wrong_client).is_err());
    Ok(())
}

#[test]
fn proxy_records_requests_of_every_connection() -> Result<()> {
    let pt = ProxiedTansu::start()?;
    let c = probe_consumer(&pt.bootstrap(), &[])?;
    c.fetch_metadata(None, CLIENT_TIMEOUT)?;
    let keys = pt.proxy.api_keys();
    assert!(keys.contains(&3), "{keys:?}");
    assert!(keys.contains(&18), "{keys:?}");
    assert!(pt.proxy.api_names().contains("Metadata"));
    assert!(pt.proxy.requests().contains(&(18, 3)) || pt.proxy.count(18) > 0);
    drop(c);

    // Seeding through the proxy: produce, offset commit etc. all pass through it, because tansu
    // advertises the proxy's port.
    pt.proxy.clear();
    let ds = seed_dataset(&pt.bootstrap(), BrokerKind::Tansu)?;
    check_dataset(&ds, &[])?;
    let names = pt.proxy.api_names();
    for api in [
        "ApiVersions",
        "Metadata",
        "CreateTopics",
        "Produce",
        "ListOffsets",
        "FindCoordinator",
        "OffsetCommit",
        "OffsetFetch",
    ] {
        assert!(names.contains(api), "{api} not in {names:?}");
    }
    assert!(
        pt.proxy.connections() >= 2,
        "bootstrap + broker connections"
    );
    let ids: BTreeSet<Option<String>> = pt
        .proxy
        .records()
        .into_iter()
        .map(|r| r.client_id)
        .collect();
    assert!(
        ids.contains(&Some("krawl-seed-producer".to_string())),
        "{ids:?}"
    );
    eprintln!("requests through proxy: {:?}", pt.proxy.requests());
    Ok(())
}

#[test]
fn processes_do_not_outlive_their_guards() -> Result<()> {
    let noida = Noida::start()?;
    let tansu = Tansu::start(TansuOpts::default())?;
    let pki = TestPki::generate()?;
    let tls = TlsTansu::start(&pki, false)?;
    let groups = [
        noida.pgid(),
        tansu.pgid(),
        tls.tansu.pgid(),
        tls.stunnel.pgid(),
    ];
    for g in groups {
        assert!(process_group_alive(g), "group {g} running");
    }
    drop(noida);
    drop(tansu);
    drop(tls);
    for g in groups {
        assert!(
            wait_process_group_gone(g, Duration::from_secs(5)),
            "group {g} still has processes"
        );
    }
    Ok(())
}

#[test]
fn krawl_bin_is_found_or_explained() {
    match krawl_bin() {
        Ok(p) => assert!(p.is_file()),
        Err(e) => assert!(e.to_string().contains("cargo build -p krawl-cli"), "{e}"),
    }
}
