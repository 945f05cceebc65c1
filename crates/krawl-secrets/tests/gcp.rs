//! `gcp-sm://` against a real Secret Manager API server: the emulator
//! `drongo` 0.8.0 (PyPI; `scripts/testbed-install.sh` installs it), started on
//! a free loopback port per test and killed (with its process group) on drop.
//!
//! The binary is found through `KRAWL_DRONGO_BIN`, then
//! `<repo>/.testbed/bin/drongo`, then `PATH`; without it the tests fail.
//!
//! drongo checks no credentials, so PERMISSION_DENIED and UNAUTHENTICATED
//! answers cannot be produced here; their mapping is unit-tested in
//! `src/gcp.rs`. Credential failures that happen on our side (unreadable,
//! malformed or unusable credential files, a broken ADC file) are tested here.
#![cfg(feature = "gcp")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use krawl_secrets::gcp::{GcpConfig, GcpProvider};
use krawl_secrets::{Resolver, SecretError, SecretRef, SecretString};

const CANARY: &str = "canary-gcp-5d1e77-do-not-print";

// --- the emulator --------------------------------------------------------------------------

fn drongo_bin() -> PathBuf {
    krawl_tests::testbed_bin(
        "KRAWL_DRONGO_BIN",
        "drongo",
        "run scripts/testbed-install.sh (pip install drongo)",
    )
    .unwrap_or_else(|e| panic!("{e:#}"))
}

fn free_port() -> u16 {
    krawl_tests::free_port()
}

/// A running drongo; killed with its whole process group on drop.
struct Drongo {
    child: Option<Child>,
    port: u16,
}

impl Drongo {
    fn start() -> Self {
        use std::os::unix::process::CommandExt;
        let bin = drongo_bin();
        let port = free_port();
        let child = Command::new(&bin)
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut me = Self {
            child: Some(child),
            port,
        };
        if let Some(child) = me.child.as_mut() {
            krawl_tests::wait_for_http_server(
                child,
                port,
                "drongo",
                Duration::from_secs(30),
                String::new,
            );
        }
        me
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            krawl_tests::kill_process_group(&mut child);
        }
        // Wait until the port is closed, so that the next call is refused.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One plain HTTP/1.1 request; returns (status, body).
    fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn create_secret(&self, project: &str, secret: &str) {
        let (status, body) = self.http(
            "POST",
            &format!("/v1/projects/{project}/secrets?secretId={secret}"),
            r#"{"replication":{"automatic":{}}}"#,
        );
        assert_eq!(status, 200, "create secret {secret}: {body}");
    }

    fn add_version(&self, project: &str, secret: &str, data: &[u8]) {
        let (status, body) = self.http(
            "POST",
            &format!("/v1/projects/{project}/secrets/{secret}:addVersion"),
            &format!(r#"{{"payload":{{"data":"{}"}}}}"#, base64(data)),
        );
        assert_eq!(status, 200, "add version to {secret}: {body}");
    }

    fn version_action(&self, project: &str, secret: &str, version: &str, action: &str) {
        let (status, body) = self.http(
            "POST",
            &format!("/v1/projects/{project}/secrets/{secret}/versions/{version}:{action}"),
            "{}",
        );
        assert_eq!(status, 200, "{action} {secret}/{version}: {body}");
    }
}

impl Drop for Drongo {
    fn drop(&mut self) {
        self.stop();
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// --- the public API ------------------------------------------------------------------------

fn emulator_config(endpoint: &str) -> GcpConfig {
    GcpConfig {
        endpoint: Some(endpoint.to_string()),
        anonymous: true,
        timeout_secs: 5,
        retries: 1,
        ..GcpConfig::default()
    }
}

async fn resolver(cfg: GcpConfig) -> Resolver {
    let provider = GcpProvider::new(cfg).await.unwrap();
    Resolver::from_parts(vec![Arc::new(provider)], None, Duration::ZERO)
}

async fn resolve(r: &Resolver, reference: &str) -> Result<SecretString, SecretError> {
    // A fresh job each time: nothing is memoised between calls.
    r.job("test")
        .resolve(&SecretRef::parse(reference).unwrap())
        .await
}

async fn resolve_err(r: &Resolver, reference: &str) -> SecretError {
    let e = resolve(r, reference).await.expect_err(reference);
    let (shown, debug) = (e.to_string(), format!("{e:?}"));
    assert!(
        !shown.contains(CANARY) && !debug.contains(CANARY),
        "value leaked: {shown}"
    );
    assert!(
        shown.contains(reference.split('#').next().unwrap_or(reference))
            || shown.contains("gcp-sm://"),
        "{shown}"
    );
    e
}

// --- tests ---------------------------------------------------------------------------------

#[tokio::test]
async fn latest_and_pinned_versions() {
    let srv = Drongo::start();
    srv.create_secret("p1", "kafka-pw");
    srv.add_version("p1", "kafka-pw", b"first-value");
    srv.add_version("p1", "kafka-pw", CANARY.as_bytes());
    let r = resolver(emulator_config(&srv.endpoint())).await;

    let latest = resolve(&r, "gcp-sm://projects/p1/secrets/kafka-pw")
        .await
        .unwrap();
    assert_eq!(latest.expose(), CANARY);
    let explicit = resolve(&r, "gcp-sm://projects/p1/secrets/kafka-pw/versions/latest")
        .await
        .unwrap();
    assert_eq!(explicit.expose(), CANARY);
    let v1 = resolve(&r, "gcp-sm://projects/p1/secrets/kafka-pw/versions/1")
        .await
        .unwrap();
    assert_eq!(v1.expose(), "first-value");
    let v2 = resolve(&r, "gcp-sm://projects/p1/secrets/kafka-pw/versions/2")
        .await
        .unwrap();
    assert_eq!(v2.expose(), CANARY);
    // Values are never printed.
    assert!(!format!("{latest:?} {latest}").contains(CANARY));
}

#[tokio::test]
async fn json_secret_with_key() {
    let srv = Drongo::start();
    srv.create_secret("p1", "kafka");
    let json = format!(r#"{{"username":"svc-krawl","password":"{CANARY}","port":9093}}"#);
    srv.add_version("p1", "kafka", json.as_bytes());
    srv.create_secret("p1", "plain");
    srv.add_version("p1", "plain", CANARY.as_bytes());
    let r = resolver(emulator_config(&srv.endpoint())).await;

    let pw = resolve(&r, "gcp-sm://projects/p1/secrets/kafka#password")
        .await
        .unwrap();
    assert_eq!(pw.expose(), CANARY);
    let user = resolve(&r, "gcp-sm://projects/p1/secrets/kafka/versions/1#username")
        .await
        .unwrap();
    assert_eq!(user.expose(), "svc-krawl");
    let port = resolve(&r, "gcp-sm://projects/p1/secrets/kafka#port")
        .await
        .unwrap();
    assert_eq!(port.expose(), "9093");
    let whole = resolve(&r, "gcp-sm://projects/p1/secrets/kafka")
        .await
        .unwrap();
    assert_eq!(whole.expose(), json);

    let e = resolve_err(&r, "gcp-sm://projects/p1/secrets/kafka#nope").await;
    assert!(
        matches!(e, SecretError::KeyMissing { ref key, .. } if key == "nope"),
        "{e:?}"
    );
    let e = resolve_err(&r, "gcp-sm://projects/p1/secrets/plain#password").await;
    assert!(matches!(e, SecretError::KeyMissing { .. }), "{e:?}");
    assert!(e.to_string().contains("not a JSON object"), "{e}");
}

#[tokio::test]
async fn missing_secret_version_and_project_are_not_found() {
    let srv = Drongo::start();
    srv.create_secret("p1", "kafka");
    srv.add_version("p1", "kafka", CANARY.as_bytes());
    srv.create_secret("p1", "empty");
    let r = resolver(emulator_config(&srv.endpoint())).await;

    for reference in [
        "gcp-sm://projects/p1/secrets/nope",
        "gcp-sm://projects/p1/secrets/kafka/versions/9",
        "gcp-sm://projects/p2/secrets/kafka",
        "gcp-sm://projects/p1/secrets/empty",
    ] {
        let e = resolve_err(&r, reference).await;
        assert!(
            matches!(
                e,
                SecretError::NotFound {
                    backend: "gcp-sm",
                    ..
                }
            ),
            "{reference}: {e:?}"
        );
        let s = e.to_string();
        assert!(s.contains("gcloud secrets versions list"), "{s}");
        assert!(s.contains(&srv.endpoint()), "{s}");
    }
    let e = resolve_err(&r, "gcp-sm://projects/p1/secrets/kafka/versions/9").await;
    assert!(
        e.to_string()
            .contains("projects/p1/secrets/kafka/versions/9"),
        "{e}"
    );
}

#[tokio::test]
async fn disabled_and_destroyed_versions_say_so() {
    let srv = Drongo::start();
    srv.create_secret("p1", "kafka");
    srv.add_version("p1", "kafka", CANARY.as_bytes());
    srv.add_version("p1", "kafka", CANARY.as_bytes());
    srv.version_action("p1", "kafka", "1", "disable");
    srv.version_action("p1", "kafka", "2", "destroy");
    let r = resolver(emulator_config(&srv.endpoint())).await;

    for (version, state) in [("1", "DISABLED"), ("2", "DESTROYED")] {
        let reference = format!("gcp-sm://projects/p1/secrets/kafka/versions/{version}");
        let e = resolve_err(&r, &reference).await;
        assert!(matches!(e, SecretError::Backend { .. }), "{e:?}");
        let s = e.to_string();
        assert!(s.contains("disabled or destroyed"), "{s}");
        assert!(s.contains(state), "{s}");
        assert!(
            s.contains(&format!(
                "gcloud secrets versions enable {version} --secret kafka --project p1"
            )),
            "{s}"
        );
    }
}

#[tokio::test]
async fn non_utf8_payload_is_refused() {
    let srv = Drongo::start();
    srv.create_secret("p1", "bin");
    srv.add_version("p1", "bin", &[0xff, 0xfe, 0x00, 0x80]);
    let r = resolver(emulator_config(&srv.endpoint())).await;
    let e = resolve_err(&r, "gcp-sm://projects/p1/secrets/bin").await;
    assert!(matches!(e, SecretError::Backend { .. }), "{e:?}");
    assert!(e.to_string().contains("not UTF-8"), "{e}");
}

#[tokio::test]
async fn stopped_server_is_unreachable_naming_the_endpoint() {
    let mut srv = Drongo::start();
    srv.create_secret("p1", "kafka");
    srv.add_version("p1", "kafka", CANARY.as_bytes());
    let endpoint = srv.endpoint();
    let r = resolver(emulator_config(&endpoint)).await;
    let reference = "gcp-sm://projects/p1/secrets/kafka";
    assert_eq!(resolve(&r, reference).await.unwrap().expose(), CANARY);

    srv.stop();
    let started = Instant::now();
    let e = resolve_err(&r, reference).await;
    assert!(
        matches!(
            e,
            SecretError::Unreachable {
                backend: "gcp-sm",
                ..
            }
        ),
        "{e:?}"
    );
    let s = e.to_string();
    assert!(s.contains(&endpoint), "{s}");
    assert!(s.contains("after 2 attempt(s)"), "retries = 1: {s}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn silent_server_times_out_as_unreachable() {
    // A socket that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let cfg = GcpConfig {
        timeout_secs: 1,
        retries: 0,
        ..emulator_config(&endpoint)
    };
    let r = resolver(cfg).await;
    let started = Instant::now();
    let e = resolve_err(&r, "gcp-sm://projects/p1/secrets/kafka").await;
    assert!(matches!(e, SecretError::Unreachable { .. }), "{e:?}");
    let s = e.to_string();
    assert!(s.contains(&endpoint) && s.contains("within 1 s"), "{s}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}

/// A service-account key with a fresh RSA key (openssl), as `gcloud iam
/// service-accounts keys create` writes it.
fn service_account_key(dir: &Path) -> PathBuf {
    let pem = dir.join("sa.pem");
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed to make a test service-account key");
    assert!(status.success());
    let key = std::fs::read_to_string(&pem).unwrap();
    let json = serde_json::json!({
        "type": "service_account",
        "project_id": "p1",
        "private_key_id": "0123456789abcdef",
        "private_key": key,
        "client_email": "krawl@p1.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    let path = dir.join("sa.json");
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

#[tokio::test]
async fn service_account_key_file_and_adc() {
    let srv = Drongo::start();
    srv.create_secret("p1", "kafka");
    srv.add_version("p1", "kafka", CANARY.as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let key = service_account_key(dir.path());
    let reference = "gcp-sm://projects/p1/secrets/kafka";

    // credentials_file: the key signs a self-signed JWT (no token endpoint is
    // called); drongo ignores it, so success proves the path works end to end.
    let cfg = GcpConfig {
        anonymous: false,
        credentials_file: Some(key.clone()),
        ..emulator_config(&srv.endpoint())
    };
    let r = resolver(cfg).await;
    assert_eq!(resolve(&r, reference).await.unwrap().expose(), CANARY);

    // Application Default Credentials. Only this test reads ADC (the others
    // are anonymous or use credentials_file), so changing the variables ADC
    // reads races with no other test.
    let adc = GcpConfig {
        anonymous: false,
        ..emulator_config(&srv.endpoint())
    };
    let saved: Vec<(&str, Option<std::ffi::OsString>)> = [
        "GOOGLE_APPLICATION_CREDENTIALS",
        "HOME",
        "GCE_METADATA_HOST",
    ]
    .into_iter()
    .map(|k| (k, std::env::var_os(k)))
    .collect();
    let home = tempfile::tempdir().unwrap(); // no gcloud credentials in it
    let mds = FakeMetadataServer::start(true);
    let odd_mds = FakeMetadataServer::start(false);
    let closed = format!("127.0.0.1:{}", free_port());

    // 1. GOOGLE_APPLICATION_CREDENTIALS names a service-account key.
    std::env::set_var("GOOGLE_APPLICATION_CREDENTIALS", &key);
    let from_env = resolve(&resolver(adc.clone()).await, reference).await;
    // 2. ... a file that does not exist.
    std::env::set_var(
        "GOOGLE_APPLICATION_CREDENTIALS",
        dir.path().join("missing.json"),
    );
    let missing_file = resolve(&resolver(adc.clone()).await, reference).await;
    // 3. Nothing configured: the metadata server (GCE, GKE Workload Identity).
    std::env::remove_var("GOOGLE_APPLICATION_CREDENTIALS");
    std::env::set_var("HOME", home.path());
    std::env::set_var("GCE_METADATA_HOST", &mds.addr);
    let from_mds = resolve(&resolver(adc.clone()).await, reference).await;
    // 3b. A metadata server that answers the universe-domain query with a token.
    std::env::set_var("GCE_METADATA_HOST", &odd_mds.addr);
    let odd = resolve(&resolver(adc.clone()).await, reference).await;
    // 4. Nothing configured and no metadata server: a machine without GCP.
    std::env::set_var("GCE_METADATA_HOST", &closed);
    let started = Instant::now();
    let no_gcp = resolve(&resolver(adc).await, reference).await;
    let no_gcp_took = started.elapsed();
    for (k, v) in saved {
        match v {
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    }

    assert_eq!(from_env.unwrap().expose(), CANARY);
    assert_eq!(from_mds.unwrap().expose(), CANARY);
    let seen = mds.requests();
    assert!(
        seen.iter().any(|r| r
            .contains("/computeMetadata/v1/instance/service-accounts/default/token")
            && r.to_ascii_lowercase().contains("metadata-flavor: google")),
        "{seen:?}"
    );
    let e = odd.expect_err("odd metadata server");
    assert!(matches!(e, SecretError::AuthFailed { .. }), "{e:?}");
    assert!(
        !format!("{e} {e:?}").contains(FakeMetadataServer::TOKEN),
        "token leaked: {e}"
    );
    for (case, result) in [
        ("missing GOOGLE_APPLICATION_CREDENTIALS file", missing_file),
        ("no GCP at all", no_gcp),
    ] {
        let e = result.expect_err(case);
        assert!(
            matches!(
                e,
                SecretError::AuthFailed {
                    backend: "gcp-sm",
                    ..
                }
            ),
            "{case}: {e:?}"
        );
        let s = e.to_string();
        assert!(
            !s.contains(CANARY) && !s.contains(FakeMetadataServer::TOKEN),
            "{s}"
        );
        assert!(
            s.contains("Application Default Credentials") && s.contains("Workload Identity"),
            "{case}: {s}"
        );
    }
    assert!(no_gcp_took < Duration::from_secs(10), "{no_gcp_took:?}");
}

/// A stand-in for the GCE/GKE metadata server's token endpoint (drongo has
/// none): answers token requests with an access token and the universe-domain
/// query with `googleapis.com` (or, when `!well_behaved`, everything with the
/// token), and records requests.
struct FakeMetadataServer {
    addr: String,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeMetadataServer {
    const TOKEN: &'static str = "ya29.fake-mds-token-8c1f";

    fn start(well_behaved: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        // Ends with the test process (the thread blocks in accept).
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 8192];
                let n = stream.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                let (body, kind) = if well_behaved && request.contains("universe-domain") {
                    ("googleapis.com".to_string(), "text/plain")
                } else {
                    (
                        format!(
                            r#"{{"access_token":"{}","expires_in":3599,"token_type":"Bearer"}}"#,
                            Self::TOKEN
                        ),
                        "application/json",
                    )
                };
                log.lock().unwrap().push(request);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nMetadata-Flavor: Google\r\nContent-Type: {kind}\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { addr, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn broken_credential_files_are_auth_failures() {
    let srv = Drongo::start();
    srv.create_secret("p1", "kafka");
    srv.add_version("p1", "kafka", b"value");
    let dir = tempfile::tempdir().unwrap();
    let reference = "gcp-sm://projects/p1/secrets/kafka";

    // The canary stands for key material: it must not appear in any error.
    let bad_key = serde_json::json!({
        "type": "service_account",
        "project_id": "p1",
        "private_key_id": "k1",
        "private_key": format!("-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----\n"),
        "client_email": "krawl@p1.iam.gserviceaccount.com",
    });
    let cases: [(&str, String, &str); 5] = [
        (
            "missing.json",
            String::new(),
            "cannot read secrets.gcp.credentials_file",
        ),
        ("garbage.json", format!("not json {CANARY}"), "is not JSON"),
        (
            "weird.json",
            r#"{"type":"gdch_service_account"}"#.into(),
            "supported: service_account",
        ),
        (
            "partial.json",
            r#"{"type":"service_account","private_key_id":"x"}"#.into(),
            "not a usable service_account",
        ),
        (
            "badkey.json",
            bad_key.to_string(),
            "cannot obtain credentials",
        ),
    ];
    for (file, content, needle) in cases {
        let path = dir.path().join(file);
        if !content.is_empty() {
            std::fs::write(&path, content).unwrap();
        }
        let cfg = GcpConfig {
            anonymous: false,
            credentials_file: Some(path.clone()),
            ..emulator_config(&srv.endpoint())
        };
        // Construction reads nothing; the failure comes with the first fetch.
        let r = resolver(cfg).await;
        let e = resolve_err(&r, reference).await;
        assert!(
            matches!(
                e,
                SecretError::AuthFailed {
                    backend: "gcp-sm",
                    ..
                }
            ),
            "{file}: {e:?}"
        );
        let s = e.to_string();
        assert!(s.contains(needle), "{file}: {s}");
        assert!(s.contains("credentials_file"), "{file}: {s}");
    }
}

/// A full `krawl extract` whose SASL password comes from GCP Secret Manager
/// (drongo): it works, the value appears in no output or log line (trace
/// level), and with the emulator down the run fails with exit code 10.
#[test]
fn full_extraction_with_the_password_from_gcp() {
    let mut drongo = Drongo::start();
    drongo.create_secret("p1", "kafka-e2e");
    drongo.add_version("p1", "kafka-e2e", CANARY.as_bytes());
    let broker = krawl_tests::Noida::start().unwrap();
    let secrets = format!(
        "[secrets.gcp]\nendpoint = \"{}\"\nanonymous = true\ntimeout_secs = 3\nretries = 0\n",
        drongo.endpoint()
    );
    let reference = "gcp-sm://projects/p1/secrets/kafka-e2e";
    let run = krawl_tests::extract_with_sasl_password(&broker, reference, &secrets, &[]).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("\"sasl_mechanism\":\"PLAIN\""));
    assert!(!run.stdout.contains(CANARY) && !run.stderr.contains(CANARY));

    let endpoint = drongo.endpoint();
    drongo.stop();
    let run = krawl_tests::extract_with_sasl_password(&broker, reference, &secrets, &[]).unwrap();
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(
        run.stderr.contains("gcp-sm") && run.stderr.contains(&endpoint),
        "{}",
        run.stderr
    );
}
