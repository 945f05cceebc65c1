//! The registry client and extraction against the fake Confluent Schema
//! Registry of the test harness.

use std::time::{Duration, Instant};

use krawl_model::{Record, SchemaVersionRecord, SubjectRecord, WarningRecord};
use krawl_schema_registry::client::VersionSpec;
use krawl_schema_registry::config::RegistryTls;
use krawl_schema_registry::extract::extract;
use krawl_schema_registry::{
    bind, RegistryAuth, RegistryClient, RegistryError, RegistryExtractError, RegistryOutput,
    RegistrySecrets, SchemaRegistryConfig, VersionsMode,
};
use krawl_secrets::{Resolver, SecretRef, SecretString};
use krawl_tests::schema_registry::{FakeRegistry, FakeRegistryOpts};
use krawl_tests::TestPki;

const CANARY: &str = "canary-sr-7f3a9c-do-not-print";

fn cfg(reg: &FakeRegistry) -> SchemaRegistryConfig {
    let mut c = SchemaRegistryConfig::new(reg.url());
    c.timeout_secs = 5;
    c.retries = 0;
    c
}

async fn client(cfg: &SchemaRegistryConfig) -> RegistryClient {
    let job = Resolver::default().job("test");
    let secrets = cfg.resolve_secrets(&job).await.expect("secrets resolve");
    RegistryClient::new(cfg, secrets).expect("client builds")
}

async fn run(cfg: &SchemaRegistryConfig) -> (Vec<Record>, RegistryOutput) {
    let c = client(cfg).await;
    let mut records = Vec::new();
    let out = extract(&c, cfg, &mut records)
        .await
        .expect("extraction succeeds");
    (records, out)
}

fn subjects(records: &[Record]) -> Vec<&SubjectRecord> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Subject(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn versions<'a>(records: &'a [Record], subject: &str) -> Vec<&'a SchemaVersionRecord> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::SchemaVersion(v) if v.subject == subject => Some(v),
            _ => None,
        })
        .collect()
}

fn warnings(records: &[Record]) -> Vec<&WarningRecord> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Warning(w) => Some(w),
            _ => None,
        })
        .collect()
}

fn subject<'a>(records: &'a [Record], name: &str) -> &'a SubjectRecord {
    subjects(records)
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no subject record {name}"))
}

const ADDRESS_AVRO: &str = r#"{"type":"record","name":"Address","namespace":"com.acme",
  "fields":[{"name":"city","type":"string"},{"name":"zip","type":["null","string"],"default":null}]}"#;
const ORDER_AVRO_V1: &str = r#"{"type":"record","name":"Order","namespace":"com.acme",
  "fields":[{"name":"id","type":"long"},{"name":"ship_to","type":"com.acme.Address"}]}"#;
const ORDER_AVRO_V2: &str = r#"{"type":"record","name":"Order","namespace":"com.acme",
  "fields":[{"name":"id","type":"long"},{"name":"ship_to","type":"com.acme.Address"},
  {"name":"note","type":["null","string"],"default":null}]}"#;
const COMMON_PROTO: &str = r#"syntax = "proto3";
package acme.common;
message Money { string currency = 1; int64 units = 2; }
"#;
const PAYMENT_PROTO: &str = r#"syntax = "proto3";
package acme.payments;
import "acme/common.proto";
message Payment { string id = 1; acme.common.Money amount = 2; }
"#;
const ADDRESS_JSON: &str = r#"{"$id":"address.json","type":"object",
  "properties":{"street":{"type":"string"}},"required":["street"]}"#;
const USER_JSON: &str = r#"{"title":"com.acme.User","type":"object",
  "properties":{"name":{"type":"string"},"home":{"$ref":"address.json"}},"required":["name"]}"#;

/// Avro, Protobuf and JSON Schema subjects, each with a reference.
fn seed_three_types(reg: &FakeRegistry) {
    reg.register("com.acme.Address", "AVRO", ADDRESS_AVRO, &[])
        .expect("register");
    let r = [("com.acme.Address", "com.acme.Address", 1)];
    reg.register("orders-value", "AVRO", ORDER_AVRO_V1, &r)
        .expect("register");
    reg.register("orders-value", "AVRO", ORDER_AVRO_V2, &r)
        .expect("register");
    reg.register("acme-common", "PROTOBUF", COMMON_PROTO, &[])
        .expect("register");
    reg.register(
        "payments-value",
        "PROTOBUF",
        PAYMENT_PROTO,
        &[("acme/common.proto", "acme-common", 1)],
    )
    .expect("register");
    reg.register("address-json", "JSON", ADDRESS_JSON, &[])
        .expect("register");
    reg.register(
        "users-value",
        "JSON",
        USER_JSON,
        &[("address.json", "address-json", 1)],
    )
    .expect("register");
}

fn paths(v: &SchemaVersionRecord) -> Vec<&str> {
    v.fields.iter().map(|f| f.path.as_str()).collect()
}

#[tokio::test]
async fn all_three_schema_types_with_references() {
    let reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    seed_three_types(&reg);
    let c = cfg(&reg);
    let before = reg.request_count();
    let (records, out) = run(&c).await;
    assert!(warnings(&records).is_empty(), "{:#?}", warnings(&records));
    assert_eq!(out.summary.subjects, 6);
    assert_eq!(out.summary.schema_versions, 6, "latest only");
    assert_eq!(
        out.summary.requests as usize,
        reg.request_count() - before,
        "the client counts every request"
    );

    let orders = subject(&records, "orders-value");
    assert_eq!(orders.base_name, "orders");
    assert_eq!(orders.role.as_deref(), Some("value"));
    assert_eq!(orders.schema_type, "AVRO");
    assert_eq!(orders.latest_version, 2);
    assert_eq!(orders.versions, vec![1, 2]);
    assert!(!orders.deleted);
    let v = versions(&records, "orders-value");
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].version, 2);
    assert_eq!(v[0].id, orders.latest_schema_id);
    assert_eq!(v[0].references.len(), 1);
    let p = paths(v[0]);
    assert!(p.contains(&"ship_to.city"), "{p:?}");
    assert!(p.contains(&"note"), "{p:?}");

    let pay = versions(&records, "payments-value");
    assert_eq!(pay[0].schema_type, "PROTOBUF");
    let p = paths(pay[0]);
    assert!(p.iter().any(|p| p.ends_with("amount.currency")), "{p:?}");

    let users = versions(&records, "users-value");
    assert_eq!(users[0].schema_type, "JSON");
    let p = paths(users[0]);
    assert!(p.contains(&"name"), "{p:?}");
    assert!(p.iter().any(|p| p.ends_with("home.street")), "{p:?}");

    assert!(out.index.contains("orders-value"));
    assert_eq!(subject(&records, "com.acme.Address").role, None);
}

#[tokio::test]
async fn all_versions_and_the_reference_cache() {
    let reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    seed_three_types(&reg);
    let mut c = cfg(&reg);
    c.versions = VersionsMode::All;
    c.include_subjects = vec!["^orders-".into(), "^com\\.acme\\.".into()];
    c.exclude_subjects = vec!["Address".into()];
    reg.clear_requests();
    let (records, out) = run(&c).await;
    assert!(warnings(&records).is_empty(), "{:#?}", warnings(&records));
    let names: Vec<&str> = subjects(&records).iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["orders-value"], "filters apply");
    let v = versions(&records, "orders-value");
    assert_eq!(v.iter().map(|v| v.version).collect::<Vec<_>>(), vec![1, 2]);
    assert!(v.iter().all(|v| !v.fields.is_empty()));
    assert_eq!(out.summary.schema_versions, 2);
    // Both versions reference com.acme.Address v1: fetched once in the run.
    let ref_fetches = reg
        .requests()
        .iter()
        .filter(|(_, p)| p.starts_with("/subjects/com.acme.Address/versions/1"))
        .count();
    assert_eq!(ref_fetches, 1, "{:#?}", reg.requests());
}

#[tokio::test]
async fn compatibility_subject_or_global_and_mode() {
    let reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    seed_three_types(&reg);
    reg.set_compatibility(None, "FULL_TRANSITIVE").expect("set");
    reg.set_compatibility(Some("orders-value"), "NONE")
        .expect("set");
    reg.set_mode(Some("orders-value"), "READONLY").expect("set");
    let c = cfg(&reg);
    let (records, _) = run(&c).await;
    let orders = subject(&records, "orders-value");
    assert_eq!(orders.compatibility.as_deref(), Some("NONE"));
    assert_eq!(orders.compatibility_source, "subject");
    assert_eq!(orders.mode.as_deref(), Some("READONLY"));
    let users = subject(&records, "users-value");
    assert_eq!(users.compatibility.as_deref(), Some("FULL_TRANSITIVE"));
    assert_eq!(users.compatibility_source, "global");
    assert_eq!(users.mode.as_deref(), Some("READWRITE"));

    let cl = client(&c).await;
    assert_eq!(
        cl.compatibility("orders-value").await.expect("compat"),
        (Some("NONE".to_string()), "subject")
    );
    assert_eq!(
        cl.compatibility("users-value").await.expect("compat"),
        (Some("FULL_TRANSITIVE".to_string()), "global")
    );
    assert_eq!(
        cl.mode("orders-value").await.expect("mode").as_deref(),
        Some("READONLY")
    );
    assert_eq!(
        cl.mode("users-value").await.expect("mode").as_deref(),
        Some("READWRITE")
    );

    // A registry without the mode API: mode is null, no per-subject calls.
    reg.fail("/mode", 404, 1000, None);
    reg.clear_requests();
    let (records, _) = run(&c).await;
    assert!(warnings(&records).is_empty(), "{:#?}", warnings(&records));
    assert!(subjects(&records).iter().all(|s| s.mode.is_none()));
    let mode_calls = reg
        .requests()
        .iter()
        .filter(|(_, p)| p.starts_with("/mode"))
        .count();
    assert_eq!(mode_calls, 1, "only GET /mode");
    assert_eq!(cl.mode("orders-value").await.expect("mode"), None);
}

#[tokio::test]
async fn soft_deleted_subjects_only_with_include_deleted() {
    let reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    seed_three_types(&reg);
    reg.register("legacy-value", "AVRO", r#"{"type":"string"}"#, &[])
        .expect("register");
    reg.soft_delete("legacy-value").expect("soft delete");
    let mut c = cfg(&reg);
    let (records, out) = run(&c).await;
    assert!(!subjects(&records).iter().any(|s| s.name == "legacy-value"));
    assert!(!out.index.contains("legacy-value"));

    c.include_deleted = true;
    let (records, out) = run(&c).await;
    assert!(warnings(&records).is_empty(), "{:#?}", warnings(&records));
    let legacy = subject(&records, "legacy-value");
    assert!(legacy.deleted);
    assert_eq!(legacy.versions, vec![1]);
    let v = versions(&records, "legacy-value");
    assert_eq!(v.len(), 1);
    assert!(v[0].deleted);
    assert!(!subject(&records, "orders-value").deleted);
    assert!(versions(&records, "orders-value")
        .iter()
        .all(|v| !v.deleted));
    assert!(!out.index.contains("legacy-value"), "never bound to topics");
}

#[tokio::test]
async fn http_errors_have_actionable_messages() {
    let reg = FakeRegistry::start(FakeRegistryOpts {
        basic_auth: Some(("KEY".into(), "right".into())),
        ..Default::default()
    })
    .expect("fake registry");
    seed_three_types(&reg);
    let mut c = cfg(&reg);
    c.auth = RegistryAuth::Basic {
        username: "KEY".into(),
        password: SecretRef::Literal(SecretString::new(CANARY)),
    };
    // 401: wrong secret.
    let cl = client(&c).await;
    let err = cl.subjects(false).await.expect_err("401").to_string();
    assert!(err.starts_with("authentication failed: check schema_registry.auth (for Confluent Cloud, an API key and secret of the Schema Registry cluster"), "{err}");
    assert!(!err.contains(CANARY), "{err}");
    let mut records = Vec::new();
    let e = extract(&cl, &c, &mut records).await.expect_err("401 fails");
    assert!(matches!(
        e,
        RegistryExtractError::Registry(RegistryError::Unauthorized { .. })
    ));
    assert!(records.is_empty());

    c.auth = RegistryAuth::Basic {
        username: "KEY".into(),
        password: SecretRef::Literal(SecretString::new("right")),
    };
    let cl = client(&c).await;
    // 403
    reg.fail("/subjects/orders-value", 403, 1, None);
    let err = cl
        .versions("orders-value", false)
        .await
        .expect_err("403")
        .to_string();
    assert!(err.contains("permission denied: the principal needs read (DeveloperRead / Subject Read) on subject `orders-value`"), "{err}");
    assert!(err.contains("40301"), "{err}");
    // 404: subject, version.
    let err = cl.versions("nope-value", false).await.expect_err("404");
    assert!(err.is_not_found());
    let err = err.to_string();
    assert!(err.contains("subject `nope-value` not found"), "{err}");
    assert!(err.contains("error_code 40401"), "{err}");
    let err = cl
        .version("orders-value", 99, false)
        .await
        .expect_err("404")
        .to_string();
    assert!(
        err.contains("subject `orders-value` version 99 not found"),
        "{err}"
    );
    assert!(err.contains("error_code 40402"), "{err}");
    // 500, past the retries.
    reg.fail("/subjects", 500, 1, None);
    let err = cl.subjects(false).await.expect_err("500").to_string();
    assert!(
        err.starts_with("the registry failed (HTTP 500, error_code 50001)"),
        "{err}"
    );
    assert!(err.contains("Error in the backend data store"), "{err}");
    // A 500 within the retries is retried.
    let mut c2 = c.clone();
    c2.retries = 2;
    let cl2 = client(&c2).await;
    reg.fail("/subjects", 500, 2, None);
    let n0 = cl2.request_count();
    assert!(!cl2.subjects(false).await.expect("retried").is_empty());
    assert_eq!(cl2.request_count() - n0, 3);

    // One subject failing is a warning; the rest is extracted.
    reg.fail("/subjects/orders-value/versions", 500, 1, None);
    let mut records = Vec::new();
    let out = extract(&cl, &c, &mut records).await.expect("extraction");
    let w = warnings(&records);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].code, "subject_failed");
    assert_eq!(w[0].subject.as_deref(), Some("orders-value"));
    assert!(w[0].message.contains("HTTP 500"), "{}", w[0].message);
    assert_eq!(out.summary.subjects, 5);
    assert!(
        out.index.contains("orders-value"),
        "it exists; binding still works"
    );
}

#[tokio::test]
async fn rate_limits_honour_retry_after() {
    let reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    seed_three_types(&reg);
    let mut c = cfg(&reg);
    c.retries = 1;
    let cl = client(&c).await;
    reg.fail("/subjects", 429, 1, Some(1));
    reg.clear_requests();
    let t = Instant::now();
    let subjects = cl.subjects(false).await.expect("retried after 429");
    assert!(!subjects.is_empty());
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(reg.request_count(), 2);

    // Still limited after the retries: a clear error.
    reg.fail("/subjects", 429, 2, Some(0));
    let err = cl.subjects(false).await.expect_err("429").to_string();
    assert!(err.contains("HTTP 429") && err.contains("42901"), "{err}");
}

#[tokio::test]
async fn an_unreachable_registry_fails_the_extraction() {
    let mut reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    let c = cfg(&reg);
    reg.stop();
    let cl = client(&c).await;
    let mut records = Vec::new();
    let err = extract(&cl, &c, &mut records)
        .await
        .expect_err("unreachable");
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            RegistryExtractError::Registry(RegistryError::Unreachable { .. })
        ),
        "{msg}"
    );
    assert!(msg.contains(&format!("cannot reach {}", c.url)), "{msg}");
    assert!(records.is_empty());
}

#[tokio::test]
async fn basic_and_bearer_auth() {
    let reg = FakeRegistry::start(FakeRegistryOpts {
        basic_auth: Some(("KEY".into(), CANARY.into())),
        ..Default::default()
    })
    .expect("fake registry");
    seed_three_types(&reg);
    std::env::set_var("KRAWL_TEST_SR_SECRET", CANARY);
    let mut c = cfg(&reg);
    c.auth = RegistryAuth::Basic {
        username: "KEY".into(),
        password: SecretRef::parse("env://KRAWL_TEST_SR_SECRET").expect("ref"),
    };
    let (records, _) = run(&c).await;
    assert_eq!(subjects(&records).len(), 6);
    assert!(!format!("{:?}", client(&c).await).contains(CANARY));

    let reg = FakeRegistry::start(FakeRegistryOpts {
        bearer_token: Some("tok-123".into()),
        ..Default::default()
    })
    .expect("fake registry");
    seed_three_types(&reg);
    let mut c = cfg(&reg);
    c.auth = RegistryAuth::Bearer {
        token: SecretRef::parse("tok-123").expect("ref"),
    };
    let (records, _) = run(&c).await;
    assert_eq!(subjects(&records).len(), 6);
    c.auth = RegistryAuth::Bearer {
        token: SecretRef::parse("tok-wrong").expect("ref"),
    };
    let err = client(&c).await.subjects(false).await.expect_err("401");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
}

#[tokio::test]
async fn https_with_a_private_ca_and_mtls() {
    let pki = TestPki::generate().expect("pki");
    let reg = FakeRegistry::start(FakeRegistryOpts {
        tls: Some((pki.server_cert.clone(), pki.server_key.clone())),
        ..Default::default()
    })
    .expect("fake registry");
    seed_three_types(&reg);
    let mut c = cfg(&reg);
    assert!(c.url.starts_with("https://"));
    // The system roots alone do not trust the test CA.
    let err = client(&c)
        .await
        .subjects(false)
        .await
        .expect_err("untrusted");
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{msg}");
    assert!(msg.contains("schema_registry.tls.ca_file"), "{msg}");
    c.tls = Some(RegistryTls {
        ca_file: Some(pki.ca_cert.clone()),
        ..Default::default()
    });
    let (records, _) = run(&c).await;
    assert_eq!(subjects(&records).len(), 6);
    c.tls = Some(RegistryTls {
        ca_file: Some(pki.wrong_ca_cert.clone()),
        ..Default::default()
    });
    assert!(client(&c).await.subjects(false).await.is_err());

    // mTLS: the server requires a client certificate signed by the CA.
    let mtls = FakeRegistry::start(FakeRegistryOpts {
        tls: Some((pki.server_cert.clone(), pki.server_key.clone())),
        client_ca: Some(pki.ca_cert.clone()),
        ..Default::default()
    })
    .expect("fake registry");
    seed_three_types(&mtls);
    let mut c = cfg(&mtls);
    c.tls = Some(RegistryTls {
        ca_file: Some(pki.ca_cert.clone()),
        ..Default::default()
    });
    assert!(
        client(&c).await.subjects(false).await.is_err(),
        "no client certificate"
    );
    c.tls = Some(RegistryTls {
        ca_file: Some(pki.ca_cert.clone()),
        client_cert_file: Some(pki.client_cert.clone()),
        client_key: Some(
            SecretRef::parse(&format!("file://{}", pki.client_key.display())).expect("ref"),
        ),
    });
    let (records, _) = run(&c).await;
    assert_eq!(subjects(&records).len(), 6);
    c.tls = Some(RegistryTls {
        ca_file: Some(pki.ca_cert.clone()),
        client_cert_file: Some(pki.wrong_client_cert.clone()),
        client_key: Some(
            SecretRef::parse(&format!("file://{}", pki.wrong_client_key.display())).expect("ref"),
        ),
    });
    assert!(client(&c).await.subjects(false).await.is_err());
}

#[tokio::test]
async fn binding_by_exact_names_for_each_strategy() {
    let reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    let s = |n: &str| {
        format!(
            r#"{{"type":"record","name":"{n}","namespace":"com.acme","fields":[{{"name":"id","type":"long"}}]}}"#
        )
    };
    for (subject, record) in [
        ("orders-key", "OrderKey"),
        ("orders-value", "Order"),
        ("orders-values", "Order"),
        ("orders2-value", "Order"),
        ("xorders-value", "Order"),
        ("orders-key-value", "Order"),
        ("Orders-value", "Order"),
        ("orders-com.acme.Shipped", "Shipped"),
        // TopicRecordNameStrategy look-alike: its record is com.acme.Order.
        ("orders-com.acme.Cancelled", "Order"),
        ("com.acme.Order", "Order"),
        ("com.acme.Refund", "Refund"),
    ] {
        reg.register(subject, "AVRO", &s(record), &[])
            .expect("register");
    }
    let mut c = cfg(&reg);
    let (_, out) = run(&c).await;
    let b = bind(&out.index, "orders", &c);
    assert_eq!(b.key_subject.as_deref(), Some("orders-key"));
    assert_eq!(b.value_subject.as_deref(), Some("orders-value"));
    assert!(b.others.is_empty(), "strategies off: {b:?}");
    for topic in ["order", "orders2x", "xorder", "ORDERS", "orders-"] {
        assert!(bind(&out.index, topic, &c).is_empty(), "{topic}");
    }
    assert_eq!(
        bind(&out.index, "orders-key", &c).value_subject.as_deref(),
        Some("orders-key-value")
    );
    assert_eq!(
        bind(&out.index, "Orders", &c).value_subject.as_deref(),
        Some("Orders-value")
    );

    c.topic_record_name_strategy = true;
    c.record_name_strategy = true;
    c.record_name_topics
        .insert("com.acme.Order".into(), vec!["orders".into()]);
    let (_, out) = run(&c).await;
    let b = bind(&out.index, "orders", &c);
    assert_eq!(b.key_subject.as_deref(), Some("orders-key"));
    assert_eq!(b.value_subject.as_deref(), Some("orders-value"));
    assert_eq!(
        b.others,
        vec![
            "com.acme.Order".to_string(),
            "orders-com.acme.Shipped".to_string()
        ]
    );
    // Not listed in record_name_topics: never bound, whatever its name looks like.
    assert!(bind(&out.index, "refunds", &c).others.is_empty());
    assert!(bind(&out.index, "com.acme.Refund", &c).others.is_empty());
    // `orders2-value` is the subject of the topic `orders2`, not of `orders`.
    assert_eq!(
        bind(&out.index, "orders2", &c).value_subject.as_deref(),
        Some("orders2-value")
    );
}

#[tokio::test]
async fn direct_client_calls() {
    let reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    seed_three_types(&reg);
    let c = cfg(&reg);
    let cl = RegistryClient::new(&c, RegistrySecrets::default()).expect("client");
    let v = cl
        .version("payments-value", VersionSpec::Latest, false)
        .await
        .expect("latest");
    assert_eq!(v.subject, "payments-value");
    assert_eq!(v.schema_type, "PROTOBUF");
    assert_eq!(v.references[0].name, "acme/common.proto");
    let v = cl.version("orders-value", 1, false).await.expect("v1");
    assert_eq!(
        v.schema_type, "AVRO",
        "defaulted when the registry omits it"
    );
    assert_eq!(
        cl.versions("orders-value", false).await.expect("versions"),
        vec![1, 2]
    );
    assert!(reg.requests().iter().all(|(m, _)| m == "GET"));
}

#[tokio::test]
async fn parse_and_reference_failures_are_warnings() {
    let reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    seed_three_types(&reg);
    // Accepted by the fake's lenient Protobuf check, but does not compile.
    reg.register(
        "broken-value",
        "PROTOBUF",
        "message Broken { string = ; ",
        &[],
    )
    .expect("register");
    let mut c = cfg(&reg);
    c.exclude_subjects = vec!["^com\\.acme\\.Address$".into()];
    reg.fail("/subjects/com.acme.Address/versions/1", 500, 1, None);
    let (records, out) = run(&c).await;
    let w = warnings(&records);
    let codes: Vec<(&str, Option<&str>)> = w
        .iter()
        .map(|w| (w.code.as_str(), w.subject.as_deref()))
        .collect();
    assert!(
        codes.contains(&("schema_parse_failed", Some("broken-value"))),
        "{w:#?}"
    );
    assert!(
        codes.contains(&("schema_reference_failed", Some("orders-value"))),
        "{w:#?}"
    );
    assert_eq!(w.len(), 2, "{w:#?}");
    // Both versions are still emitted, with no fields.
    assert!(versions(&records, "broken-value")[0].fields.is_empty());
    assert!(versions(&records, "orders-value")[0].fields.is_empty());
    assert_eq!(out.summary.warnings.values().sum::<u64>(), 2);
}

#[tokio::test]
async fn a_slow_registry_times_out() {
    let reg = FakeRegistry::start(FakeRegistryOpts {
        latency: Duration::from_secs(3),
        ..Default::default()
    })
    .expect("fake registry");
    let mut c = cfg(&reg);
    c.timeout_secs = 1;
    let t = Instant::now();
    let err = client(&c).await.subjects(false).await.expect_err("timeout");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{msg}");
    assert!(msg.contains("schema_registry.timeout_secs"), "{msg}");
}
