//! The tests an attacker would write (issue 11, item 6): the real `krawl run` agent against a
//! COMPROMISED control plane ([`HostileControlPlane`]: it hands out whatever spec the test
//! pushes, where the reference control plane would refuse it at submit), a hostile broker (a
//! [`krawl_tests::RecordingProxy`] in front of Tansu that forges answers) and a [`Sink`] that
//! records anything that reaches it.
//!
//! For every attack the test asserts what the operator relies on: the job fails with the
//! expected class and a message naming the entry and the policy key (or the spec position);
//! no canary (the Kafka password, the agent's own control-plane token, a file outside the
//! allowed directory) is in a completion message, a chunk or an agent log line; the sink saw
//! no connection; a FIFO "tripwire" named by the spec was never opened; and the agent is still
//! serving afterwards (a legitimate job succeeds, `/healthz` answers, its RSS is bounded).
//!
//! Each test shares one broker, one hostile control plane and one agent across its attacks: a
//! refused job costs milliseconds.
#![allow(clippy::unwrap_used)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use krawl_model::Record;
use krawl_protocol::CompletionStatus;
use krawl_tests::forge::{self, KafkaRequest};
use krawl_tests::hostile_cp::{Completion, HostileControlPlane, Misbehaviour};
use krawl_tests::sink::Sink;
use krawl_tests::stack::{Agent, AgentOpts};
use krawl_tests::{create_topics, ProxiedTansu, Tansu, TansuOpts};
use serde_json::{json, Value};

/// The Kafka password the agent can read (`env://KAFKA_PASSWORD`): what an attacker wants.
const PASSWORD_CANARY: &str = "canary-kafka-password-61c3";
/// The agent's own control-plane token (`env://KRAWL_CONTROL_PLANE_TOKEN`).
const CP_TOKEN_CANARY: &str = "canary-cp-token-9e07";
/// The content of a file outside the allowed directory.
const FILE_CANARY: &str = "canary-outside-file-2b5d";
const CANARIES: &[&str] = &[PASSWORD_CANARY, CP_TOKEN_CANARY, FILE_CANARY];
/// Values the attacks put at credential positions: no message or log line may quote them.
const ECHOES: &[&str] = &["hunter2", "123456789", "Bearer forged", "tok-literal"];

/// How long one job may take end to end (refusals take milliseconds).
const JOB_TIMEOUT: Duration = Duration::from_secs(60);
/// The agent's resident memory (its peak, `VmHWM`) must stay below this whatever it is sent.
const RSS_BOUND: u64 = 300 * 1024 * 1024;

// ------------------------------------------------------------------------------------------------
// The stack
// ------------------------------------------------------------------------------------------------

/// One agent (`krawl run`) against a hostile control plane, with the canaries in its
/// environment and the control-plane token as a secret reference that jobs' allowlist would
/// match (`env://K*`): only its reservation keeps it from jobs.
fn agent(cp: &HostileControlPlane, policy_toml: String) -> Agent {
    Agent::start_at(
        &cp.url(),
        AgentOpts {
            name: "hostile-suite".into(),
            policy_toml,
            auth_toml: Some(
                "[control_plane.auth]\nbootstrap_token = \"env://KRAWL_CONTROL_PLANE_TOKEN\"\n"
                    .into(),
            ),
            env: vec![
                ("KAFKA_PASSWORD".into(), PASSWORD_CANARY.into()),
                ("KRAWL_CONTROL_PLANE_TOKEN".into(), CP_TOKEN_CANARY.into()),
            ],
            ..AgentOpts::default()
        },
    )
    .unwrap()
}

/// Pushes a job and waits for its completion; fails at once when the agent dies meanwhile.
async fn run(cp: &HostileControlPlane, agent: &Agent, kind: &str, spec: Value) -> Completion {
    let id = cp.push(kind, spec);
    let log = || format!("agent log:\n{}", agent.log());
    tokio::select! {
        done = cp.wait_complete(&id, JOB_TIMEOUT, log) => done,
        () = async {
            while agent.alive() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        } => panic!("the agent died during job {id}:\n{}", log()),
    }
}

/// No canary in `text`.
fn assert_no_canary(what: &str, text: &[u8]) {
    for c in CANARIES {
        assert!(
            !text.windows(c.len()).any(|w| w == c.as_bytes()),
            "{c} appears in {what}"
        );
    }
}

/// The agent still serves: `/healthz` answers, its memory is bounded, a legitimate job against
/// the allowed broker succeeds, and no canary is in its log.
async fn assert_still_serving(cp: &HostileControlPlane, agent: &Agent, bootstrap: &str) {
    assert!(agent.alive(), "the agent exited:\n{}", agent.log());
    let health = reqwest::get(agent.health_url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let peak = agent.peak_rss_bytes().unwrap();
    assert!(peak < RSS_BOUND, "the agent's RSS peaked at {peak} bytes");
    let done = run(
        cp,
        agent,
        "kafka.list_topics",
        json!({"kafka": {"bootstrap_servers": [bootstrap], "timeout_secs": 10}}),
    )
    .await;
    assert_eq!(
        done.status,
        CompletionStatus::Succeeded,
        "{:?}\n{}",
        done.error,
        agent.log()
    );
    assert!(
        done.records
            .iter()
            .all(|r| matches!(r, Record::TopicListing(_) | Record::Warning(_))),
        "{:?}",
        done.records
    );
    assert_no_canary("the agent log", agent.log().as_bytes());
}

/// A FIFO that records whether anything opened it: a thread waits in `open(O_WRONLY)`, which
/// returns only once a reader opens the other end. A path the spec names for a library, a
/// command or a secret file points here; "never opened" is then a fact, not a guess.
struct Tripwire {
    path: PathBuf,
    tripped: Arc<AtomicBool>,
    releasing: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Tripwire {
    fn new(path: PathBuf) -> Tripwire {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo(3) on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        let tripped = Arc::new(AtomicBool::new(false));
        let releasing = Arc::new(AtomicBool::new(false));
        let (t, r, p) = (tripped.clone(), releasing.clone(), path.clone());
        let thread = std::thread::spawn(move || {
            let opened = std::fs::OpenOptions::new().write(true).open(&p);
            if opened.is_ok() && !r.load(Ordering::SeqCst) {
                t.store(true, Ordering::SeqCst);
            }
        });
        Tripwire {
            path,
            tripped,
            releasing,
            thread: Some(thread),
        }
    }

    fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        self.releasing.store(true, Ordering::SeqCst);
        // Our own reader releases the waiting writer.
        let _reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Specs
// ------------------------------------------------------------------------------------------------

fn plain(bootstrap: &str) -> Value {
    json!({"kafka": {"bootstrap_servers": [bootstrap], "timeout_secs": 5}})
}

fn servers(list: &[&str]) -> Value {
    json!({"kafka": {"bootstrap_servers": list, "timeout_secs": 5}})
}

/// SASL/PLAIN over plaintext with `password` (any JSON) at `kafka.sasl.password`.
fn sasl_plain(bootstrap: &str, password: Value) -> Value {
    json!({"kafka": {"bootstrap_servers": [bootstrap], "timeout_secs": 5,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl": {"mechanism": "PLAIN", "username": "krawl", "password": password}}})
}

fn oauth(bootstrap: &str, endpoint: &str, extensions: Value) -> Value {
    json!({"kafka": {"bootstrap_servers": [bootstrap], "timeout_secs": 5,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl": {"mechanism": "OAUTHBEARER", "oauthbearer": {
            "token_endpoint_url": endpoint, "client_id": "krawl",
            "client_secret": "env://KAFKA_PASSWORD", "extensions": extensions}}}})
}

/// SSL to `bootstrap` with `tls` as the job's `kafka.tls`.
fn tls(bootstrap: &str, tls: Value) -> Value {
    json!({"kafka": {"bootstrap_servers": [bootstrap], "timeout_secs": 5,
        "security_protocol": "SSL", "tls": tls}})
}

fn with_registry(bootstrap: &str, url: &str) -> Value {
    let mut s = plain(bootstrap);
    s["schema_registry"] = json!({"url": url});
    s
}

fn with_properties(bootstrap: &str, props: Value) -> Value {
    let mut s = plain(bootstrap);
    s["kafka"]["properties"] = props;
    s
}

/// SASL_SSL/SCRAM-SHA-512 to `bootstrap` (what the floor over `localhost:*` asks for), with
/// `tls` as the job's `kafka.tls`.
fn scram_tls(bootstrap: &str, tls: Value) -> Value {
    json!({"kafka": {"bootstrap_servers": [bootstrap], "timeout_secs": 5,
        "security_protocol": "SASL_SSL", "tls": tls,
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": "krawl", "password": "env://KAFKA_PASSWORD"}}})
}

/// One attack: the lease the compromised control plane hands out, and what the agent must
/// answer: a `failed` completion of `class` whose message contains every needle.
struct Attack {
    name: String,
    kind: String,
    spec: Value,
    class: &'static str,
    needles: Vec<String>,
}

fn attack(name: impl Into<String>, spec: Value, class: &'static str, needles: &[&str]) -> Attack {
    Attack {
        name: name.into(),
        kind: "kafka.extract".into(),
        spec,
        class,
        needles: needles.iter().map(|n| n.to_string()).collect(),
    }
}

// ------------------------------------------------------------------------------------------------
// A compromised control plane's job specs
// ------------------------------------------------------------------------------------------------

/// Every attack through the job spec, and the variants an attacker tries next: each refused
/// before anything is contacted or read, naming the entry and the policy key or spec position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compromised_control_plane_gets_nothing_out_of_the_agent() {
    let started = Instant::now();
    let broker = Tansu::start(TansuOpts::default()).unwrap();
    let b = broker.bootstrap();
    let bp = broker.advertised_port();
    let sink = Sink::start().unwrap();
    let s = sink.host_port();
    let sp = sink.port();
    let sink_url = sink.url();
    let cp = HostileControlPlane::start().unwrap();

    // Files: an allowed directory, a secret outside it, links and FIFOs.
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    let d = dir.display().to_string();
    std::fs::create_dir_all(dir.join("allowed")).unwrap();
    std::fs::create_dir_all(dir.join("outside")).unwrap();
    std::fs::write(dir.join("allowed/pw"), "allowed-password").unwrap();
    std::fs::write(dir.join("outside/secret"), FILE_CANARY).unwrap();
    std::os::unix::fs::symlink(dir.join("outside/secret"), dir.join("allowed/link")).unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", dir.join("allowed/environ")).unwrap();
    std::fs::write(dir.join("ca.pem"), "pinned CA").unwrap();
    std::fs::write(dir.join("other-ca.pem"), "another CA").unwrap();
    let fifo_secret = Tripwire::new(dir.join("allowed/fifo"));
    let engine = Tripwire::new(dir.join("engine.so"));
    let plugin = Tripwire::new(dir.join("plugin.so"));
    let ca_fifo = Tripwire::new(dir.join("ca-fifo.pem"));
    let pwned = dir.join("pwned");

    let policy = format!(
        r#"[policy]
allowed_bootstrap_servers = ["127.0.0.1:{bp}", "localhost:{bp}"]
allowed_schema_registry_urls = ["http://*.allowed.host:8081"]
allowed_token_endpoints = ["https://idp.allowed.host/oauth2"]
allowed_secret_refs = ["env://K*", "file://{d}/allowed/*"]

[[policy.floors]]
bootstrap_servers = ["localhost:*"]
require_tls = true
require_hostname_verification = true
sasl_mechanisms = ["SCRAM-SHA-512"]
ca_file = "{d}/ca.pem"
"#
    );
    let agent = agent(&cp, policy);

    let bootstrap_pos = "spec.kafka.bootstrap_servers[0] must be exactly one host:port";
    let not_allowed = "policy.allowed_bootstrap_servers";
    let attacks = vec![
        // One entry, several hosts: librdkafka would split it and send the password to each.
        attack(format!("bootstrap {b},{s}"), plain(&format!("{b},{s}")), "invalid_job", &[bootstrap_pos]),
        attack(format!("bootstrap {b} {s}"), plain(&format!("{b} {s}")), "invalid_job", &[bootstrap_pos]),
        attack(format!("bootstrap {b};{s}"), plain(&format!("{b};{s}")), "invalid_job", &[bootstrap_pos]),
        attack("bootstrap SASL_SSL://sink", plain(&format!("SASL_SSL://{s}")), "invalid_job", &[bootstrap_pos]),
        attack("bootstrap user:pw@sink", plain(&format!("user:pw@{s}")), "invalid_job", &[bootstrap_pos]),
        attack("bootstrap 0x7f.1:sink", plain(&format!("0x7f.1:{sp}")), "invalid_job", &[bootstrap_pos]),
        attack("bootstrap 2130706433:sink", plain(&format!("2130706433:{sp}")), "invalid_job", &[bootstrap_pos]),
        attack("bootstrap 127.1:sink", plain(&format!("127.1:{sp}")), "invalid_job", &[bootstrap_pos]),
        // Well-formed, not allowed.
        attack("bootstrap sink", plain(&s), "policy", &[&format!("\"{s}\""), not_allowed]),
        attack("bootstrap localhost:sink", plain(&format!("localhost:{sp}")), "policy", &[&format!("\"localhost:{sp}\""), not_allowed]),
        attack("bootstrap [::ffff:127.0.0.1]:sink", plain(&format!("[::ffff:127.0.0.1]:{sp}")), "policy", &[&format!("\"[::ffff:127.0.0.1]:{sp}\""), not_allowed]),
        attack("bootstrap [::1]:broker-port", plain(&format!("[::1]:{bp}")), "policy", &[&format!("\"[::1]:{bp}\""), not_allowed]),
        attack("bootstrap broker, then sink", servers(&[&b, &s]), "policy", &[&format!("\"{s}\""), not_allowed]),
        // The OAuth client secret goes to the token endpoint.
        attack("token endpoint = sink", oauth(&b, &format!("{sink_url}/token"), json!({})), "policy",
            &[&format!("\"{sink_url}/token\""), "policy.allowed_token_endpoints"]),
        attack("token endpoint on another port", oauth(&b, &format!("https://idp.allowed.host:{sp}/oauth2/token"), json!({})), "policy",
            &["policy.allowed_token_endpoints"]),
        attack("token endpoint, http", oauth(&b, "http://idp.allowed.host/oauth2/token", json!({})), "policy",
            &["policy.allowed_token_endpoints"]),
        attack("token endpoint, path outside the prefix", oauth(&b, "https://idp.allowed.host/oauth2x/token", json!({})), "policy",
            &["policy.allowed_token_endpoints"]),
        attack("token endpoint with userinfo", oauth(&b, &format!("https://idp.allowed.host@{s}/oauth2/token"), json!({})), "invalid_job",
            &["spec.kafka.sasl.oauthbearer.token_endpoint_url must be an http(s) URL without credentials"]),
        attack("token endpoint with user:pw", oauth(&b, "https://u:pw@idp.allowed.host/oauth2/token", json!({})), "invalid_job",
            &["spec.kafka.sasl.oauthbearer.token_endpoint_url must be an http(s) URL without credentials"]),
        // OAuth extensions: a value forging `,auth=`; a credential-named one with a literal.
        attack("extension forging ,auth=", oauth(&b, "https://idp.allowed.host/oauth2/token", json!({"logicalCluster": "lkc-1,auth=Bearer forged"})), "config",
            &["kafka.sasl.oauthbearer.extensions.logicalCluster", "forge"]),
        attack("extension named auth", oauth(&b, "https://idp.allowed.host/oauth2/token", json!({"auth": "Bearer forged"})), "config",
            &["kafka.sasl.oauthbearer.extensions", "reserved"]),
        attack("credential-named extension, literal", oauth(&b, "https://idp.allowed.host/oauth2/token", json!({"apiToken": "tok-literal"})), "policy",
            &["`kafka.sasl.oauthbearer.extensions.apiToken`", "literal secret", "policy.allow_literal_secrets"]),
        // Registries.
        attack("registry = sink", with_registry(&b, &sink_url), "policy",
            &[&format!("\"{sink_url}\""), "policy.allowed_schema_registry_urls"]),
        attack("registry, pattern in the path", with_registry(&b, &format!("{sink_url}/.allowed.host:8081")), "policy",
            &["policy.allowed_schema_registry_urls"]),
        attack("registry, pattern in the query", with_registry(&b, &format!("{sink_url}?.allowed.host:8081")), "config",
            &["`schema_registry.url`", "without a query"]),
        attack("registry, pattern in the fragment", with_registry(&b, &format!("{sink_url}#.allowed.host:8081")), "config",
            &["`schema_registry.url`", "without a query or fragment"]),
        attack("registry, allowed host as userinfo", with_registry(&b, &format!("http://sr.allowed.host:8081@{s}")), "invalid_job",
            &["spec.schema_registry.url must be an http(s) URL without credentials"]),
        attack("registry with user:pw", with_registry(&b, "http://u:pw@sr.allowed.host:8081"), "invalid_job",
            &["spec.schema_registry.url must be an http(s) URL without credentials"]),
        attack("registry, suffix of an allowed host", with_registry(&b, "http://sr.allowed.host.evil.example:8081"), "policy",
            &["policy.allowed_schema_registry_urls"]),
        // file:// secrets.
        attack("file:// with ..", sasl_plain(&b, json!(format!("file://{d}/allowed/../outside/secret"))), "invalid_job",
            &["spec.kafka.sasl.password is not a well-formed secret reference", "`..`"]),
        attack("file:// symlink out of the allowed dir", sasl_plain(&b, json!(format!("file://{d}/allowed/link"))), "policy",
            &[&format!("file://{d}/outside/secret"), "kafka.sasl.password", "policy.allowed_secret_refs"]),
        attack("file:///proc/self/environ", sasl_plain(&b, json!("file:///proc/self/environ")), "policy",
            &["kafka.sasl.password", "/proc"]),
        attack("file:// symlink to /proc/self/environ", sasl_plain(&b, json!(format!("file://{d}/allowed/environ"))), "policy",
            &["kafka.sasl.password", "/proc"]),
        attack("file:///dev/zero", sasl_plain(&b, json!("file:///dev/zero")), "policy",
            &["kafka.sasl.password", "/dev"]),
        attack("file:// a FIFO in the allowed dir", sasl_plain(&b, json!(format!("file://{d}/allowed/fifo"))), "policy",
            &["kafka.sasl.password", "not a regular file"]),
        // librdkafka passthrough: code, commands, destinations, credentials.
        attack("properties: ssl.engine.location", with_properties(&b, json!({"ssl.engine.location": engine.path.display().to_string()})), "invalid_job",
            &["spec.kafka.properties", "\"ssl.engine.location\""]),
        attack("properties: plugin.library.paths", with_properties(&b, json!({"plugin.library.paths": plugin.path.display().to_string()})), "invalid_job",
            &["spec.kafka.properties", "\"plugin.library.paths\""]),
        attack("properties: sasl.kerberos.kinit.cmd", with_properties(&b, json!({"sasl.kerberos.kinit.cmd": format!("touch {}", pwned.display())})), "invalid_job",
            &["spec.kafka.properties", "\"sasl.kerberos.kinit.cmd\""]),
        attack("properties: bootstrap.servers", with_properties(&b, json!({"bootstrap.servers": s})), "invalid_job",
            &["spec.kafka.properties", "\"bootstrap.servers\""]),
        attack("properties: metadata.broker.list", with_properties(&b, json!({"metadata.broker.list": s})), "invalid_job",
            &["spec.kafka.properties", "\"metadata.broker.list\""]),
        attack("properties: sasl.password", with_properties(&b, json!({"sasl.password": "hunter2"})), "invalid_job",
            &["spec.kafka.properties", "\"sasl.password\""]),
        attack("properties: sasl.oauthbearer.token.endpoint.url", with_properties(&b, json!({"sasl.oauthbearer.token.endpoint.url": sink_url})), "invalid_job",
            &["spec.kafka.properties", "\"sasl.oauthbearer.token.endpoint.url\""]),
        attack("properties: debug=all", with_properties(&b, json!({"debug": "all"})), "invalid_job",
            &["spec.kafka.properties", "\"debug\""]),
        attack("properties: SSL.ENGINE.LOCATION", with_properties(&b, json!({"SSL.ENGINE.LOCATION": engine.path.display().to_string()})), "invalid_job",
            &["spec.kafka.properties", "\"SSL.ENGINE.LOCATION\""]),
        // The agent's own credential, to a broker the policy allows.
        attack("password = the agent's control-plane token", sasl_plain(&b, json!("env://KRAWL_CONTROL_PLANE_TOKEN")), "secret",
            &["env://KRAWL_CONTROL_PLANE_TOKEN", "control_plane.auth"]),
        attack("OAuth client secret = the agent's token", {
            let mut j = oauth(&b, "https://idp.allowed.host/oauth2/token", json!({}));
            j["kafka"]["sasl"]["oauthbearer"]["client_secret"] = json!("env://KRAWL_CONTROL_PLANE_TOKEN");
            j
        }, "secret", &["env://KRAWL_CONTROL_PLANE_TOKEN", "control_plane.auth"]),
        // Files librdkafka or the agent would read as certificates.
        attack("tls.ca_file = /dev/zero", tls(&b, json!({"ca_file": "/dev/zero"})), "config",
            &["`kafka.tls.ca_file`", "/dev"]),
        attack("tls.ca_file = /proc/self/environ", tls(&b, json!({"ca_file": "/proc/self/environ"})), "config",
            &["`kafka.tls.ca_file`", "/proc"]),
        attack("tls.ca_file = a FIFO", tls(&b, json!({"ca_file": ca_fifo.path.display().to_string()})), "config",
            &["`kafka.tls.ca_file`", "not a regular file"]),
        attack("tls.client_cert_file = /proc/self/environ", tls(&b, json!({"client_cert_file": "/proc/self/environ", "client_key": "env://KAFKA_PASSWORD"})), "config",
            &["`kafka.tls.client_cert_file`", "/proc"]),
        attack("schema_registry.tls.ca_file = /dev/zero", {
            let mut j = with_registry(&b, "https://sr.allowed.host");
            j["schema_registry"]["tls"] = json!({"ca_file": "/dev/zero"});
            j
        }, "config", &["`schema_registry.tls.ca_file`", "/dev"]),
        attack("literal tls.client_key", tls(&b, json!({"client_cert_file": format!("{d}/ca.pem"), "client_key": "-----BEGIN PRIVATE KEY-----hunter2"})), "policy",
            &["`kafka.tls.client_key` is a literal secret", "policy.allow_literal_secrets"]),
        // Literal credentials in every shape; no value echoed.
        attack("literal password", sasl_plain(&b, json!("hunter2-literal")), "policy",
            &["kafka.sasl.password", "literal secret", "policy.allow_literal_secrets"]),
        attack("password as a number", sasl_plain(&b, json!(123456789)), "invalid_job",
            &["spec.kafka.sasl.password must be a string"]),
        attack("password as an array", sasl_plain(&b, json!(["hunter2-in-array"])), "invalid_job",
            &["spec.kafka.sasl.password must be a string"]),
        attack("password as an object", sasl_plain(&b, json!({"value": "hunter2-in-object"})), "invalid_job",
            &["spec.kafka.sasl.password must be a string"]),
        // Floors over localhost:*: TLS, SASL mechanism, host-name verification, pinned CA.
        attack("floor: PLAINTEXT", plain(&format!("localhost:{bp}")), "policy",
            &[&format!("\"localhost:{bp}\""), "policy.floors[0]", "require_tls"]),
        attack("floor: SASL_PLAINTEXT", sasl_plain(&format!("localhost:{bp}"), json!("env://KAFKA_PASSWORD")), "policy",
            &[&format!("\"localhost:{bp}\""), "policy.floors[0]", "require_tls"]),
        attack("floor: SASL_SSL with PLAIN", {
            let mut j = scram_tls(&format!("localhost:{bp}"), json!({}));
            j["kafka"]["sasl"]["mechanism"] = json!("PLAIN");
            j
        }, "policy", &[&format!("\"localhost:{bp}\""), "policy.floors[0]", "sasl_mechanisms"]),
        attack("floor: verify_hostname = false", scram_tls(&format!("localhost:{bp}"), json!({"verify_hostname": false})), "policy",
            &[&format!("\"localhost:{bp}\""), "policy.floors[0]", "require_hostname_verification"]),
        attack("floor: another ca_file", scram_tls(&format!("localhost:{bp}"), json!({"ca_file": format!("{d}/other-ca.pem")})), "policy",
            &[&format!("\"localhost:{bp}\""), "policy.floors[0]", "ca_file"]),
        // Kinds and shapes.
        Attack { kind: "kafka.produce".into(), ..attack("unknown kind", plain(&b), "invalid_job", &["\"kafka.produce\""]) },
        attack("spec is a number", json!(5), "invalid_job", &["JSON object"]),
        attack("spec is an array", json!([plain(&b)]), "invalid_job", &["JSON object"]),
        attack("kafka is a number", json!({"kafka": 5}), "invalid_job", &["spec.kafka"]),
        attack("no bootstrap servers", json!({"kafka": {}}), "invalid_job", &["bootstrap_servers"]),
        attack("empty bootstrap list", json!({"kafka": {"bootstrap_servers": []}}), "invalid_job", &["spec.kafka.bootstrap_servers"]),
        attack("a secrets section", json!({"kafka": {"bootstrap_servers": [b]}, "secrets": {"vault": {"token": "x"}}}), "invalid_job",
            &["secrets"]),
        Attack { kind: "k".repeat(1024 * 1024), ..attack("a 1 MB kind", plain(&b), "invalid_job", &["unknown job kind"]) },
        attack("a 1 MB unknown key", {
            let mut j = plain(&b);
            j["kafka"]["k".repeat(1024 * 1024)] = json!(1);
            j
        }, "invalid_job", &["spec.kafka has unknown key(s)"]),
        attack("10 MB under an unknown key", {
            let mut j = plain(&b);
            j["padding"] = json!("A".repeat(10 * 1024 * 1024));
            j
        }, "invalid_job", &["\"padding\""]),
        attack("10 MB of bootstrap entries", servers(&vec![s.as_str(); 10 * 1024 * 1024 / 18]), "policy",
            &[&format!("\"{s}\""), not_allowed]),
    ];
    let count = attacks.len();
    // Every attack runs; what went wrong is reported at the end, all of it.
    let mut problems: Vec<String> = Vec::new();
    for a in attacks {
        let done = run(&cp, &agent, &a.kind, a.spec).await;
        let msg = done.message().to_string();
        eprintln!("{:<45} {:<12} {msg}", a.name, done.class());
        let mut wrong = |what: String| {
            problems.push(format!(
                "{}: {what}\n    got: {} {msg:.600}",
                a.name,
                done.class()
            ))
        };
        if done.status != CompletionStatus::Failed {
            wrong(format!("status {:?}, not failed", done.status));
        }
        if done.class() != a.class {
            wrong(format!("class {:?}, not {:?}", done.class(), a.class));
        }
        for n in &a.needles {
            if !msg.contains(n.as_str()) {
                wrong(format!("{n:?} is not in the message"));
            }
        }
        // Value-free, and short: a 10 MB spec is not echoed into the message or the log.
        if msg.len() > 2048 {
            wrong(format!("a {}-byte message", msg.len()));
        }
        for echo in ECHOES.iter().chain(CANARIES) {
            if msg.contains(echo) {
                wrong(format!("the message echoes {echo:?}"));
            }
            if done
                .ndjson
                .windows(echo.len())
                .any(|w| w == echo.as_bytes())
            {
                wrong(format!("a chunk holds {echo:?}"));
            }
        }
        if sink.connections() > 0 {
            wrong(format!("the sink was reached: {}", sink.describe()));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {count} attacks were not refused as expected:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(!fifo_secret.tripped(), "the FIFO secret file was opened");
    assert!(!engine.tripped(), "ssl.engine.location was opened");
    assert!(!plugin.tripped(), "plugin.library.paths was opened");
    assert!(!ca_fifo.tripped(), "the FIFO CA file was opened");
    assert!(!pwned.exists(), "sasl.kerberos.kinit.cmd ran");
    let log = agent.log();
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 8192, "a {longest}-byte log line");
    for echo in ECHOES {
        assert!(!log.contains(echo), "the agent log echoes {echo}");
    }

    // A job that names the agent's token for its (allowed) registry: the registry is left out
    // with a warning saying why, the Kafka part is delivered; the token is never resolved.
    let mut j = with_registry(&b, "http://sr.allowed.host:8081");
    j["schema_registry"]["auth"] = json!({"method": "basic", "username": "krawl", "password": "env://KRAWL_CONTROL_PLANE_TOKEN"});
    let done = run(&cp, &agent, "kafka.extract", j).await;
    assert_eq!(done.status, CompletionStatus::Succeeded, "{:?}", done.error);
    let warning = done
        .records
        .iter()
        .find_map(|r| match r {
            Record::Warning(w) if w.scope == "schema_registry" => Some(w.message.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no registry warning: {:?}", done.records));
    eprintln!("registry password = the agent's token: warning: {warning}");
    assert!(
        warning.contains("env://KRAWL_CONTROL_PLANE_TOKEN")
            && warning.contains("control_plane.auth"),
        "{warning}"
    );
    assert_no_canary("the registry job's records", &done.ndjson);

    // A secret file read as a CA bundle: the TLS setup fails, and nothing quotes the file.
    let done = run(
        &cp,
        &agent,
        "kafka.extract",
        tls(&b, json!({"ca_file": format!("{d}/outside/secret")})),
    )
    .await;
    eprintln!(
        "tls.ca_file = a secret file: {} {}",
        done.class(),
        done.message()
    );
    assert_eq!(
        (done.status, done.class()),
        (CompletionStatus::Failed, "config")
    );
    assert!(
        done.message()
            .contains(&format!("kafka.tls.ca_file = {d}/outside/secret")),
        "{}",
        done.message()
    );
    assert_no_canary("the CA job's completion", done.message().as_bytes());
    assert_no_canary("the CA job's chunks", &done.ndjson);

    // 127.0.0.1:BROKER, which no floor covers, still works; so does everything else.
    assert_still_serving(&cp, &agent, &b).await;
    let done = run(&cp, &agent, "kafka.extract", plain(&b)).await;
    assert_eq!(done.status, CompletionStatus::Succeeded, "{:?}", done.error);
    assert!(matches!(done.records.last(), Some(Record::Summary(_))));
    assert_eq!(sink.connections(), 0, "{}", sink.describe());
    eprintln!(
        "{count} attacks refused in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ------------------------------------------------------------------------------------------------
// A hostile broker
// ------------------------------------------------------------------------------------------------

/// An agent whose policy allows `bootstrap` and `env://K*` secrets: the hostile broker tests'.
fn agent_for_broker(cp: &HostileControlPlane, bootstrap: &str) -> Agent {
    agent(
        cp,
        format!(
            "[policy]\nallowed_bootstrap_servers = [\"{bootstrap}\"]\nallowed_secret_refs = [\"env://K*\"]\n"
        ),
    )
}

/// ApiVersions from krawl's own DescribeLogDirs client (KIP-511 software name `krawl`), not
/// librdkafka's.
fn krawl_api_versions(r: &KafkaRequest<'_>) -> bool {
    r.api_key() == 18 && r.client_software_name().as_deref() == Some("krawl")
}

/// Makes librdkafka believe the broker offers DescribeLogDirs (Tansu does not), so that the
/// extraction's sizes phase runs krawl's own client against the proxy.
fn advertise_describe_log_dirs(broker: &ProxiedTansu) {
    let mut keys = forge::api_versions_of(broker.tansu.listen_addr()).unwrap();
    keys.retain(|(k, _, _)| *k != 35);
    keys.push((35, 1, 4));
    broker.proxy.forge(
        "librdkafka ApiVersions + DescribeLogDirs",
        |r| r.api_key() == 18 && r.client_software_name().as_deref() == Some("librdkafka"),
        move |_| forge::api_versions_answer(&keys),
    );
}

/// A broker that answers with huge array counts costs the extraction a warning naming the
/// broker (sizes null), never the agent: the job succeeds with the summary last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_broker_costs_a_warning_not_the_agent() {
    let broker = ProxiedTansu::start().unwrap();
    create_topics(&broker.bootstrap(), "sized", 2, 2).unwrap();
    let b = broker.bootstrap();
    let sink = Sink::start().unwrap();
    let cp = HostileControlPlane::start().unwrap();
    let agent = agent_for_broker(&cp, &b);
    advertise_describe_log_dirs(&broker);

    // DescribeLogDirs answered with 0x7fffffff partitions; krawl's ApiVersions answered with
    // 4,294,967,294 API keys.
    // (attack, the API the warning names, the forgery that must have answered, the forgeries)
    type Forged = Box<dyn Fn(&ProxiedTansu)>;
    let attacks: Vec<(&str, &str, &str, Forged)> = vec![
        (
            "DescribeLogDirs with 0x7fffffff partitions",
            "DescribeLogDirs",
            "DescribeLogDirs",
            Box::new(|broker: &ProxiedTansu| {
                broker
                    .proxy
                    .forge("krawl ApiVersions", krawl_api_versions, |_| {
                        forge::api_versions_answer(&[
                            (17, 0, 1),
                            (18, 0, 3),
                            (35, 1, 4),
                            (36, 0, 2),
                        ])
                    });
                broker.proxy.forge(
                    "DescribeLogDirs",
                    |r| r.api_key() == 35,
                    |r| forge::describe_log_dirs_huge_partition_count(r.api_version(), "sized-0"),
                );
            }),
        ),
        (
            "krawl's ApiVersions with 4,294,967,294 keys",
            "ApiVersions",
            "krawl ApiVersions",
            Box::new(|broker: &ProxiedTansu| {
                broker
                    .proxy
                    .forge("krawl ApiVersions", krawl_api_versions, |_| {
                        forge::api_versions_huge_count()
                    });
            }),
        ),
    ];
    for (name, api, forgery, arm) in attacks {
        broker.proxy.clear_forgeries();
        advertise_describe_log_dirs(&broker);
        arm(&broker);
        let done = run(&cp, &agent, "kafka.extract", plain(&b)).await;
        assert_eq!(
            done.status,
            CompletionStatus::Succeeded,
            "{name}: {:?}\n{}",
            done.error,
            agent.log()
        );
        assert!(
            broker.proxy.forged(forgery) >= 1,
            "{name}: nothing asked what {forgery:?} answers: the attack did not happen"
        );
        let warnings: Vec<_> = done
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Warning(w) if w.code == "log_dirs_failed" => Some(w),
                _ => None,
            })
            .collect();
        assert_eq!(warnings.len(), 1, "{name}: {:?}", done.records);
        let w = warnings[0];
        eprintln!("{name}: {} {:?}: {}", w.code, w.subject, w.message);
        assert_eq!(w.scope, "broker", "{name}");
        let id = w.subject.clone().unwrap();
        assert!(
            w.message
                .contains(&format!("broker {id}: protocol error: {api} v")),
            "{name}: {}",
            w.message
        );
        let topics: Vec<_> = done
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Topic(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(topics.len(), 2, "{name}");
        assert!(
            topics
                .iter()
                .all(|t| t.size_bytes.is_none()
                    && t.partitions.iter().all(|p| p.size_bytes.is_none())),
            "{name}: {topics:?}"
        );
        assert!(
            matches!(done.records.last(), Some(Record::Summary(_))),
            "{name}: the summary is not last"
        );
        assert_no_canary(name, &done.ndjson);
    }
    broker.proxy.clear_forgeries();
    assert_still_serving(&cp, &agent, &b).await;
    assert_eq!(sink.connections(), 0, "{}", sink.describe());
}

/// A coordinator whose DescribeGroups answer announces 2^31 members for a group costs krawl's
/// own client that answer, never the agent: it is refused before anything is allocated and the
/// group is left to librdkafka; the job succeeds with the topics and the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_coordinator_costs_its_answer_not_the_agent() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let broker = ProxiedTansu::start().unwrap();
    let b = broker.bootstrap();
    create_topics(&b, "grouped", 1, 1).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", "hostile-g")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("grouped-00000", 0, Offset::Offset(0))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
    drop(consumer);
    let sink = Sink::start().unwrap();
    let cp = HostileControlPlane::start().unwrap();
    let agent = agent_for_broker(&cp, &b);
    broker.proxy.forge(
        "DescribeGroups",
        |r| r.api_key() == 15,
        |r| forge::describe_groups_huge_member_count(r.api_version(), "hostile-g"),
    );
    let done = run(&cp, &agent, "kafka.extract", plain(&b)).await;
    assert_eq!(
        done.status,
        CompletionStatus::Succeeded,
        "{:?}\n{}",
        done.error,
        agent.log()
    );
    assert!(
        broker.proxy.forged("DescribeGroups") >= 1,
        "nothing asked DescribeGroups: the attack did not happen"
    );
    // krawl's own client refused the answer, so librdkafka asked for the group: Tansu offers
    // ConsumerGroupDescribe, which librdkafka 2.12 tries first and which is not forged here, so
    // the group comes back whole. Where that too were hostile, the group would be a warning;
    // either way it is never lost silently.
    let described: Vec<_> = done
        .records
        .iter()
        .filter_map(|r| match r {
            Record::ConsumerGroup(g) if g.group_id == "hostile-g" => Some(g),
            _ => None,
        })
        .collect();
    let warned = done.records.iter().any(|r| {
        matches!(r, Record::Warning(w) if w.subject.as_deref() == Some("hostile-g")
            && w.code == "describe_group_failed")
    });
    assert!(
        described.len() + usize::from(warned) == 1,
        "{:?}",
        done.records
    );
    if let Some(g) = described.first() {
        assert!(g.members.is_empty(), "{g:?}");
        assert_eq!(g.offsets.len(), 1, "{g:?}");
        assert_eq!(g.offsets[0].committed_offset, 0, "{g:?}");
    }
    assert!(
        done.records
            .iter()
            .any(|r| matches!(r, Record::Topic(t) if t.name == "grouped-00000")),
        "{:?}",
        done.records
    );
    // krawl's own client said why it left the group to librdkafka.
    assert!(agent.log().contains("groups.members"), "{}", agent.log());
    broker.proxy.clear_forgeries();
    assert_still_serving(&cp, &agent, &b).await;
    assert_eq!(sink.connections(), 0, "{}", sink.describe());
}

// ------------------------------------------------------------------------------------------------
// A hostile control plane's transport
// ------------------------------------------------------------------------------------------------

/// How many polls the agent logged as failed.
fn failed_polls(agent: &Agent) -> usize {
    agent.log().matches("\"poll failed\"").count()
}

/// A poll answered with an endless or a 200 MB body, invalid JSON, a redirect to the sink or a
/// lease nested 100,000 levels deep: the agent logs the error, keeps running with bounded
/// memory, contacts nothing else, and takes the next normal lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_control_plane_answer_costs_one_poll() {
    let broker = Tansu::start(TansuOpts::default()).unwrap();
    let b = broker.bootstrap();
    let sink = Sink::start().unwrap();
    let cp = HostileControlPlane::start().unwrap();
    let agent = agent(
        &cp,
        format!("[policy]\nallowed_bootstrap_servers = [\"{b}\"]\n"),
    );
    let nested = format!(
        "{{\"job_id\":\"j\",\"kind\":\"kafka.extract\",\"attempt\":1,\"lease_ttl_secs\":60,\"spec\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let answers = [
        (
            "an endless body",
            Misbehaviour::EndlessBody,
            "larger than the limit",
        ),
        (
            "a 200 MB body",
            Misbehaviour::HugeBody {
                bytes: 200 * 1024 * 1024,
            },
            "larger than the limit",
        ),
        (
            "invalid JSON",
            Misbehaviour::InvalidJson,
            "unexpected answer",
        ),
        (
            "a redirect to the sink",
            Misbehaviour::RedirectTo(format!("{}/v1/agents/hostile-agent/poll", sink.url())),
            "302",
        ),
        (
            "a lease nested 100,000 levels deep",
            Misbehaviour::Raw {
                status: 200,
                content_type: "application/json",
                body: nested.into_bytes(),
            },
            "recursion limit",
        ),
    ];
    for (name, m, needle) in answers {
        let before = failed_polls(&agent);
        cp.misbehave(m);
        // The next normal lease is taken once the agent has backed off.
        let done = run(&cp, &agent, "kafka.list_topics", plain(&b)).await;
        assert_eq!(
            done.status,
            CompletionStatus::Succeeded,
            "{name}: {:?}",
            done.error
        );
        // Memory first: a peak, so that memory used and freed again still counts.
        let peak = agent.peak_rss_bytes().unwrap();
        assert!(
            peak < RSS_BOUND,
            "{name}: the agent's RSS peaked at {peak} bytes"
        );
        assert_eq!(sink.connections(), 0, "{name}: {}", sink.describe());
        assert_eq!(failed_polls(&agent), before + 1, "{name}:\n{}", agent.log());
        let line = agent
            .log()
            .lines()
            .rfind(|l| l.contains("\"poll failed\""))
            .unwrap()
            .to_string();
        eprintln!("{name}: {line}");
        assert!(line.contains(needle), "{name}: {line}");
        assert!(line.len() < 4096, "{name}: a {}-byte log line", line.len());
    }
    assert_eq!(cp.misbehaved(), 5);
    assert_still_serving(&cp, &agent, &b).await;
}

/// The tripwire itself: a reader opening the FIFO trips it.
#[test]
fn a_tripwire_trips_when_opened() {
    let tmp = tempfile::tempdir().unwrap();
    let wire = Tripwire::new(tmp.path().join("wire"));
    assert!(!wire.tripped());
    let _reader = std::fs::File::open(&wire.path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !wire.tripped() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(wire.tripped());
}
