//! A hostile (compromised) Schema Registry against the extraction, served by the fake registry of
//! the test harness (`FakeRegistry::answer` for raw answers, `register_unchecked` for what the
//! real registry's validation refuses).
//!
//! For each attack: the attacked subject gets a warning naming it and the limit, the honest
//! subjects next to it are still extracted with their fields, and the process lives. The
//! extraction runs on tokio workers with 1 MiB stacks, half of tokio's default: an attack that
//! recursed on registry data would overflow them and abort this test binary.

use std::convert::Infallible;
use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use krawl_model::{Record, SchemaVersionRecord, WarningRecord};
use krawl_schema_registry::extract::extract;
use krawl_schema_registry::{
    RegistryClient, RegistryError, RegistryExtractError, RegistryOutput, SchemaRegistryConfig,
};
use krawl_secrets::Resolver;
use krawl_tests::schema_registry::{FakeRegistry, FakeRegistryOpts, RawAnswer, RawBody};

const HONEST_AVRO: &str = r#"{"type":"record","name":"Order","namespace":"com.acme",
  "fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"]}]}"#;
const HONEST_PROTO: &str = r#"syntax = "proto3";
package acme;
message Payment { string id = 1; int64 cents = 2; }
"#;
const HONEST_JSON: &str =
    r#"{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}"#;

/// Honest subjects of each type, extracted next to the attack.
fn seed_honest(reg: &FakeRegistry) {
    reg.register("honest-avro-value", "AVRO", HONEST_AVRO, &[])
        .expect("register");
    reg.register("honest-proto-value", "PROTOBUF", HONEST_PROTO, &[])
        .expect("register");
    reg.register("honest-json-value", "JSON", HONEST_JSON, &[])
        .expect("register");
}

fn cfg(reg: &FakeRegistry) -> SchemaRegistryConfig {
    let mut c = SchemaRegistryConfig::new(reg.url());
    c.timeout_secs = 30;
    c.retries = 0;
    c
}

type Extracted = Result<(Vec<Record>, RegistryOutput), RegistryExtractError<Infallible>>;

/// The extraction, spawned on a runtime whose two workers have 1 MiB stacks.
fn extract_on_small_workers(cfg: SchemaRegistryConfig) -> Extracted {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(1024 * 1024)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        tokio::spawn(async move {
            let job = Resolver::default().job("hostile");
            let secrets = cfg.resolve_secrets(&job).await.expect("secrets resolve");
            let client = RegistryClient::new(&cfg, secrets).expect("client builds");
            let mut records = Vec::new();
            let out = extract(&client, &cfg, &mut records).await?;
            Ok((records, out))
        })
        .await
        .expect("the extraction task does not panic")
    })
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

fn version<'a>(records: &'a [Record], subject: &str) -> Option<&'a SchemaVersionRecord> {
    records.iter().find_map(|r| match r {
        Record::SchemaVersion(v) if v.subject == subject => Some(v),
        _ => None,
    })
}

/// The honest subjects are all there, with their fields, and warned about nothing.
fn assert_honest_extracted(records: &[Record]) {
    for (subject, field) in [
        ("honest-avro-value", "note"),
        ("honest-proto-value", "cents"),
        ("honest-json-value", "name"),
    ] {
        let v = version(records, subject).unwrap_or_else(|| panic!("{subject} extracted"));
        assert!(
            v.fields.iter().any(|f| f.path == field),
            "{subject}: {:?}",
            v.fields
        );
        assert!(
            warnings(records)
                .iter()
                .all(|w| w.subject.as_deref() != Some(subject)),
            "{subject} is not warned about"
        );
    }
}

/// The one warning about `subject`, with its code, naming the subject and every `needles`.
fn assert_warned(records: &[Record], subject: &str, code: &str, needles: &[&str]) {
    let about: Vec<&WarningRecord> = warnings(records)
        .into_iter()
        .filter(|w| w.subject.as_deref() == Some(subject))
        .collect();
    let w = about
        .iter()
        .find(|w| w.code == code)
        .unwrap_or_else(|| panic!("no {code} warning about {subject}: {about:#?}"));
    assert!(w.message.contains(&format!("`{subject}`")), "{}", w.message);
    for n in needles {
        assert!(w.message.contains(n), "{n:?} not in: {}", w.message);
    }
    assert!(
        w.message.len() < 2000,
        "a short message: {}",
        w.message.len()
    );
}

#[test]
fn references_in_cycles_under_many_names() {
    let reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    seed_honest(&reg);
    // Three subjects in a cycle, a → b → c → a, each reference repeated under 20,000 names.
    let cycle = ["cycle-a-value", "cycle-b-value", "cycle-c-value"];
    for (i, subject) in cycle.iter().enumerate() {
        let next = cycle[(i + 1) % cycle.len()];
        let names: Vec<String> = (0..20_000).map(|n| format!("{next}-{n}.avsc")).collect();
        let refs: Vec<(&str, &str, i32)> = names.iter().map(|n| (n.as_str(), next, 1)).collect();
        reg.register_unchecked(subject, "AVRO", HONEST_AVRO, &refs);
    }
    // A subject referencing 300 distinct subjects (each fine on its own).
    let wide: Vec<String> = (0..300).map(|i| format!("part-{i:03}")).collect();
    for s in &wide {
        reg.register_unchecked(s, "AVRO", r#""string""#, &[]);
    }
    let refs: Vec<(&str, &str, i32)> = wide.iter().map(|s| (s.as_str(), s.as_str(), 1)).collect();
    reg.register_unchecked("wide-value", "AVRO", HONEST_AVRO, &refs);

    let (records, _) = extract_on_small_workers(cfg(&reg)).expect("the registry phase runs");
    for subject in cycle.iter().chain(&["wide-value"]) {
        assert_warned(
            &records,
            subject,
            "schema_limit_exceeded",
            &["version 1", "more than 256", "MAX_REFERENCES"],
        );
        let v = version(&records, subject).expect("the version record is still emitted");
        assert!(v.fields.is_empty());
    }
    assert_honest_extracted(&records);
}

#[test]
fn protobuf_imports_chained_256_deep() {
    let reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    seed_honest(&reg);
    // chain-000 imports chain-001 imports ... chain-255: 256 subjects, each valid on its own,
    // within MAX_REFERENCES, but protox would open them recursively.
    let n = 256;
    for i in (0..n).rev() {
        let (imports, refs) = if i + 1 < n {
            let next = format!("chain-{:03}", i + 1);
            (
                format!("import \"{next}.proto\";\n"),
                vec![(format!("{next}.proto"), next)],
            )
        } else {
            (String::new(), vec![])
        };
        let refs: Vec<(&str, &str, i32)> = refs
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_str(), 1))
            .collect();
        let schema = format!(
            "syntax = \"proto3\";\npackage p{i};\n{imports}message M{i} {{ int32 a = 1; }}\n"
        );
        reg.register(&format!("chain-{i:03}"), "PROTOBUF", &schema, &refs)
            .expect("register");
    }
    let (records, _) = extract_on_small_workers(cfg(&reg)).expect("the registry phase runs");
    // Every subject whose chain is longer than the bound is refused; the short ones parse.
    let limit = krawl_schema_registry::guard::MAX_PROTOBUF_IMPORT_DEPTH;
    for i in 0..n {
        let subject = format!("chain-{i:03}");
        if n - i > limit {
            assert_warned(
                &records,
                &subject,
                "schema_limit_exceeded",
                &["version 1", "MAX_PROTOBUF_IMPORT_DEPTH"],
            );
        } else {
            let v = version(&records, &subject).expect("emitted");
            assert_eq!(v.fields.len(), 1, "{subject}");
        }
    }
    assert_honest_extracted(&records);
}

/// A Protobuf schema whose file option is nested `depth` braces deep.
fn proto_deep_option(depth: usize) -> String {
    format!(
        "syntax = \"proto3\";\nimport \"google/protobuf/descriptor.proto\";\n\
         message R {{ int32 f = 1; }}\nmessage M {{ M a = 1; }}\n\
         extend google.protobuf.FileOptions {{ M x = 50000; }}\n\
         option (x) = {}{{ }}{};\n",
        "{ a: ".repeat(depth - 1),
        " }".repeat(depth - 1),
    )
}

#[test]
fn protobuf_option_nested_100000_deep() {
    let reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    seed_honest(&reg);
    reg.register_unchecked(
        "deep-proto-value",
        "PROTOBUF",
        &proto_deep_option(100_000),
        &[],
    );
    // The same schema as a reference of an innocent-looking one.
    reg.register_unchecked(
        "imports-deep-value",
        "PROTOBUF",
        "syntax = \"proto3\";\nimport \"deep.proto\";\nmessage U { R r = 1; }\n",
        &[("deep.proto", "deep-proto-value", 1)],
    );
    let (records, _) = extract_on_small_workers(cfg(&reg)).expect("the registry phase runs");
    assert_warned(
        &records,
        "deep-proto-value",
        "schema_limit_exceeded",
        &["version 1", "limit of 32 levels", "MAX_PROTOBUF_NESTING"],
    );
    assert_warned(
        &records,
        "imports-deep-value",
        "schema_limit_exceeded",
        &["version 1", "deep.proto", "MAX_PROTOBUF_NESTING"],
    );
    // The schema text is kept (it is not too large, only too deep).
    let v = version(&records, "deep-proto-value").expect("emitted");
    assert!(v.schema.len() > 100_000 && v.fields.is_empty());
    assert_honest_extracted(&records);
}

#[test]
fn avro_and_json_nested_100000_deep() {
    let reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    seed_honest(&reg);
    let deep = 100_000;
    let avro = format!("{}\"int\"{}", r#"{"type":"#.repeat(deep), "}".repeat(deep));
    let avro_union = format!("{}\"int\"{}", "[".repeat(deep), "]".repeat(deep));
    let json = format!("{}1{}", r#"{"a":"#.repeat(deep), "}".repeat(deep));
    reg.register_unchecked("deep-avro-value", "AVRO", &avro, &[]);
    reg.register_unchecked("deep-union-value", "AVRO", &avro_union, &[]);
    reg.register_unchecked("deep-json-value", "JSON", &json, &[]);
    let mut c = cfg(&reg);
    // Record names are read from the latest schema too: also guarded.
    c.record_name_strategy = true;
    let (records, _) = extract_on_small_workers(c).expect("the registry phase runs");
    for subject in ["deep-avro-value", "deep-union-value", "deep-json-value"] {
        assert_warned(
            &records,
            subject,
            "schema_limit_exceeded",
            &["version 1", "limit of 100 levels", "MAX_JSON_NESTING"],
        );
    }
    assert_honest_extracted(&records);
}

/// A `GET /subjects/{s}/versions/1` answer whose schema string makes the body `len` bytes.
fn padded_version(subject: &str, len: u64, announce_length: bool) -> RawAnswer {
    RawAnswer {
        status: 200,
        headers: Vec::new(),
        body: RawBody::Padded {
            prefix: format!(r#"{{"subject":"{subject}","version":1,"id":99,"schema":""#)
                .into_bytes(),
            fill: b'a',
            len,
            suffix: br#""}"#.to_vec(),
            announce_length,
        },
    }
}

#[test]
fn huge_and_endless_bodies() {
    let reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    seed_honest(&reg);
    for s in [
        "big-value",
        "endless-value",
        "chunked-value",
        "large-schema-value",
    ] {
        reg.register(s, "AVRO", HONEST_AVRO, &[]).expect("register");
    }
    // 100 MB, announced: refused before a byte of the body is read.
    reg.answer(
        "/subjects/big-value/versions/",
        padded_version("big-value", 100_000_000, true),
        None,
    );
    // 100 MB, chunked: cut off at the limit.
    reg.answer(
        "/subjects/chunked-value/versions/",
        padded_version("chunked-value", 100_000_000, false),
        None,
    );
    // Never ends.
    reg.answer(
        "/subjects/endless-value/versions/",
        RawAnswer {
            status: 200,
            headers: Vec::new(),
            body: RawBody::Endless {
                prefix: br#"{"subject":"endless-value","version":1,"id":98,"schema":""#.to_vec(),
                fill: b'a',
            },
        },
        None,
    );
    // 2 MiB: a body within the limit, a schema over MAX_SCHEMA_BYTES.
    let schema = format!(
        r#"{{"type":"record","name":"L","fields":[],"doc":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let body = serde_json::json!({"subject": "large-schema-value", "version": 1, "id": 97, "schema": schema});
    reg.answer(
        "/subjects/large-schema-value/versions/",
        RawAnswer::ok(body.to_string()),
        None,
    );

    let (records, _) = extract_on_small_workers(cfg(&reg)).expect("the registry phase runs");
    let limit = krawl_http::limits::SCHEMA_REGISTRY.to_string();
    for subject in ["big-value", "chunked-value", "endless-value"] {
        assert_warned(
            &records,
            subject,
            "subject_failed",
            &[
                &format!("GET /subjects/{subject}/versions/1"),
                &format!("limit of {limit} bytes"),
            ],
        );
    }
    assert_warned(
        &records,
        "large-schema-value",
        "schema_limit_exceeded",
        &[
            "version 1",
            "MAX_SCHEMA_BYTES",
            "leaves the schema text out",
        ],
    );
    let v = version(&records, "large-schema-value").expect("emitted");
    assert!(
        v.schema.is_empty() && v.fields.is_empty(),
        "{}",
        v.schema.len()
    );
    assert_honest_extracted(&records);
}

#[test]
fn an_endless_subject_list_fails_the_registry_phase() {
    let reg = FakeRegistry::start(FakeRegistryOpts::default()).expect("fake registry");
    seed_honest(&reg);
    reg.answer(
        "/subjects",
        RawAnswer {
            status: 200,
            headers: Vec::new(),
            body: RawBody::Endless {
                prefix: b"[\"".to_vec(),
                fill: b'a',
            },
        },
        Some(1),
    );
    // Like any other error listing the subjects: `Err`, which the Kafka extraction turns into
    // one `schema_registry_unavailable` warning.
    match extract_on_small_workers(cfg(&reg)) {
        Err(RegistryExtractError::Registry(e @ RegistryError::TooLarge { .. })) => {
            let msg = e.to_string();
            assert!(msg.contains("GET /subjects"), "{msg}");
            assert!(msg.contains("the subject list"), "{msg}");
        }
        other => panic!("{:?}", other.map(|(r, _)| r.len())),
    }
    // The next extraction, against the same registry, is whole.
    let (records, _) = extract_on_small_workers(cfg(&reg)).expect("the registry phase runs");
    assert_honest_extracted(&records);
}

/// A local listener that records every connection made to it (and what was sent).
struct Sink {
    port: u16,
    connections: Arc<AtomicUsize>,
    received: Arc<std::sync::Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    fn start() -> Sink {
        let port = krawl_tests::free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("sink binds");
        listener.set_nonblocking(true).expect("nonblocking");
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, r, s) = (connections.clone(), received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                        let mut buf = [0u8; 4096];
                        if let Ok(n) = stream.read(&mut buf) {
                            r.lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .extend_from_slice(&buf[..n]);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Sink {
            port,
            connections,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/steal", self.port)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn redirects_reach_nothing() {
    let secret = "sr-password-canary-5d1e";
    let reg = FakeRegistry::start(FakeRegistryOpts {
        basic_auth: Some(("svc".into(), secret.into())),
        ..Default::default()
    })
    .expect("fake registry");
    seed_honest(&reg);
    reg.register("moved-value", "AVRO", HONEST_AVRO, &[])
        .expect("register");
    reg.register("moved-config-value", "AVRO", HONEST_AVRO, &[])
        .expect("register");
    let sink = Sink::start();
    // A subject's schema, and another subject's compatibility, "moved" to the sink.
    reg.answer(
        "/subjects/moved-value/versions/",
        RawAnswer::redirect(&sink.url()),
        None,
    );
    reg.answer(
        "/config/moved-config-value",
        RawAnswer::redirect(&sink.url()),
        None,
    );
    std::env::set_var("KRAWL_TEST_HOSTILE_SR_PASSWORD", secret);
    let mut c = cfg(&reg);
    c.auth = krawl_schema_registry::RegistryAuth::Basic {
        username: "svc".into(),
        password: krawl_secrets::SecretRef::parse("env://KRAWL_TEST_HOSTILE_SR_PASSWORD")
            .expect("ref"),
    };
    let (records, _) = extract_on_small_workers(c).expect("the registry phase runs");
    // Give a stray connection time to land before looking (the sink polls every 10 ms).
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        sink.connections.load(Ordering::Relaxed),
        0,
        "the sink received: {:?}",
        String::from_utf8_lossy(&sink.received.lock().unwrap_or_else(|p| p.into_inner()))
    );
    assert_warned(
        &records,
        "moved-value",
        "subject_failed",
        &[
            "HTTP 302",
            "does not follow redirects",
            "schema_registry.url",
        ],
    );
    assert_warned(
        &records,
        "moved-config-value",
        "compatibility_unavailable",
        &["HTTP 302", "does not follow redirects"],
    );
    assert!(
        !format!("{records:?}").contains(&sink.url()),
        "the target is not echoed"
    );
    assert_honest_extracted(&records);
}
