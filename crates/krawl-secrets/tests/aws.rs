//! The AWS Secrets Manager provider against a real moto server
//! (PyPI `moto[server]`, installed by `scripts/testbed-install.sh`).
//!
//! Each test starts its own `moto_server` on a free loopback port (in its own
//! process group, killed on drop), seeds secrets through the AWS SDK itself,
//! and resolves references through the public API.
//!
//! Credentials: the provider uses the standard AWS chain. This test binary
//! points the chain at its own shared credentials file (profile
//! `krawl-test`, dummy keys: moto checks no signature), disables EC2
//! metadata, and clears the `AWS_*` variables that would take precedence, once,
//! before any test touches the SDK. moto has no IAM, so access denied cannot
//! be produced here; `src/aws.rs` unit-tests that mapping.
//!
//! The server binary: `$KRAWL_MOTO_SERVER_BIN`, else
//! `<repo>/.testbed/bin/moto_server`, else `moto_server` on `PATH`.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::Client;
use krawl_secrets::aws::{AwsConfig, AwsProvider};
use krawl_secrets::{Resolver, SecretError, SecretRef, SecretString};

const CANARY: &str = "canary-aws-5b1e8d-do-not-print";
const PROFILE: &str = "krawl-test";
const REGION: &str = "us-east-1";
/// A profile with the same dummy keys and no region.
const NO_REGION: &str = "krawl-noregion";

fn test_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("krawl-secrets-aws")
}

/// Point the AWS chain of this process at a test-only profile, once.
fn setup_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let dir = test_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let creds = dir.join("credentials");
        let config = dir.join("config");
        // Dummy keys: moto accepts any signature.
        std::fs::write(
            &creds,
            format!(
                "[{PROFILE}]\naws_access_key_id = AKIAKRAWLTEST\naws_secret_access_key = krawl-test-dummy\n\
                 [{NO_REGION}]\naws_access_key_id = AKIAKRAWLTEST\naws_secret_access_key = krawl-test-dummy\n"
            ),
        )
        .unwrap();
        std::fs::write(
            &config,
            format!("[profile {PROFILE}]\nregion = {REGION}\n[profile {NO_REGION}]\n"),
        )
        .unwrap();
        for var in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        ] {
            std::env::remove_var(var);
        }
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &creds);
        std::env::set_var("AWS_CONFIG_FILE", &config);
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    });
}

fn moto_bin() -> PathBuf {
    krawl_tests::testbed_bin(
        "KRAWL_MOTO_SERVER_BIN",
        "moto_server",
        "run scripts/testbed-install.sh (pip install 'moto[server]')",
    )
    .unwrap_or_else(|e| panic!("{e:#}"))
}

fn free_port() -> u16 {
    krawl_tests::free_port()
}

/// A moto server on a free port; killed (whole process group) on drop.
struct Moto {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Moto {
    fn start() -> Self {
        setup_env();
        let bin = moto_bin();
        let port = free_port();
        let log = test_dir().join(format!("moto-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut moto = Self {
            child: Some(child),
            port,
            log,
        };
        let log = moto.log.clone();
        if let Some(child) = moto.child.as_mut() {
            // moto answers with `Server: Werkzeug/… Python/…`.
            krawl_tests::wait_for_http_server(
                child,
                port,
                "werkzeug",
                Duration::from_secs(60),
                || std::fs::read_to_string(&log).unwrap_or_default(),
            );
        }
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            krawl_tests::kill_process_group(&mut child);
        }
    }

    /// An SDK client for seeding, with static dummy keys, in `region`.
    fn seeder(&self, region: &str) -> Client {
        let conf = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new(
                "AKIAKRAWLSEED",
                "seed",
                None,
                None,
                "seed",
            ))
            .build();
        Client::from_conf(conf)
    }

    fn config(&self) -> AwsConfig {
        AwsConfig {
            region: Some(REGION.into()),
            endpoint_url: Some(self.endpoint()),
            profile: Some(PROFILE.into()),
            timeout_secs: 5,
            retries: 2,
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
        // Keep the server's log only when the test failed.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

async fn resolver(cfg: AwsConfig) -> Resolver {
    let provider = AwsProvider::new(cfg).await.unwrap();
    Resolver::from_parts(vec![Arc::new(provider)], None, Duration::ZERO)
}

async fn resolve(r: &Resolver, reference: &str) -> Result<SecretString, SecretError> {
    r.job("test")
        .resolve(&SecretRef::parse(reference).unwrap())
        .await
}

async fn expose(r: &Resolver, reference: &str) -> String {
    match resolve(r, reference).await {
        Ok(v) => v.expose().to_string(),
        Err(e) => panic!("{reference}: {e}"),
    }
}

/// The error, checked to carry neither the canary nor a key.
async fn error(r: &Resolver, reference: &str) -> SecretError {
    let e = match resolve(r, reference).await {
        Ok(_) => panic!("{reference}: resolved, expected an error"),
        Err(e) => e,
    };
    // Shown with --nocapture: what a user would read.
    eprintln!("{reference}\n  -> {e}");
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(
            !text.contains(CANARY),
            "{reference}: canary in error: {text}"
        );
        assert!(
            !text.contains("krawl-test-dummy"),
            "{reference}: key in error: {text}"
        );
    }
    e
}

async fn create(c: &Client, name: &str, value: &str) -> String {
    c.create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap()
}

#[tokio::test]
async fn string_json_and_binary_secrets() {
    let moto = Moto::start();
    let c = moto.seeder(REGION);
    create(&c, "kafka/plain", CANARY).await;
    create(
        &c,
        "kafka/json",
        &format!(r#"{{"username":"svc-krawl","password":"{CANARY}","port":9092}}"#),
    )
    .await;
    c.create_secret()
        .name("kafka/binary")
        .secret_binary(Blob::new(format!("bin-{CANARY}").into_bytes()))
        .send()
        .await
        .unwrap();
    let mut not_utf8 = vec![0xff, 0xfe];
    not_utf8.extend_from_slice(CANARY.as_bytes());
    c.create_secret()
        .name("kafka/not-utf8")
        .secret_binary(Blob::new(not_utf8))
        .send()
        .await
        .unwrap();

    let r = resolver(moto.config()).await;
    assert_eq!(expose(&r, "aws-sm://kafka/plain").await, CANARY);
    assert_eq!(expose(&r, "aws-sm://kafka/json#password").await, CANARY);
    assert_eq!(
        expose(&r, "aws-sm://kafka/json#username").await,
        "svc-krawl"
    );
    assert_eq!(expose(&r, "aws-sm://kafka/json#port").await, "9092");
    assert_eq!(
        expose(&r, "aws-sm://kafka/binary").await,
        format!("bin-{CANARY}")
    );

    let e = error(&r, "aws-sm://kafka/json#nope").await;
    assert!(
        matches!(e, SecretError::KeyMissing { ref key, .. } if key == "nope"),
        "{e}"
    );
    assert!(e.to_string().contains("aws-sm://kafka/json#nope"), "{e}");
    let e = error(&r, "aws-sm://kafka/plain#password").await;
    assert!(matches!(e, SecretError::KeyMissing { .. }), "{e}");
    assert!(e.to_string().contains("not a JSON object"), "{e}");

    let e = error(&r, "aws-sm://kafka/not-utf8").await;
    assert!(matches!(e, SecretError::Backend { .. }), "{e}");
    assert!(e.to_string().contains("not UTF-8"), "{e}");
}

#[tokio::test]
async fn version_stages_and_ids() {
    const V1: &str = "00000000-0000-4000-8000-000000000001";
    const V2: &str = "00000000-0000-4000-8000-000000000002";
    let moto = Moto::start();
    let c = moto.seeder(REGION);
    c.create_secret()
        .name("kafka/rotated")
        .client_request_token(V1)
        .secret_string(format!("v1-{CANARY}"))
        .send()
        .await
        .unwrap();
    c.put_secret_value()
        .secret_id("kafka/rotated")
        .client_request_token(V2)
        .secret_string(format!("v2-{CANARY}"))
        .send()
        .await
        .unwrap();
    // A custom staging label on the old version.
    c.update_secret_version_stage()
        .secret_id("kafka/rotated")
        .version_stage("KRAWL_BLUE")
        .move_to_version_id(V1)
        .send()
        .await
        .unwrap();

    let r = resolver(moto.config()).await;
    let v1 = format!("v1-{CANARY}");
    let v2 = format!("v2-{CANARY}");
    assert_eq!(expose(&r, "aws-sm://kafka/rotated").await, v2);
    assert_eq!(
        expose(&r, "aws-sm://kafka/rotated?version-stage=AWSCURRENT").await,
        v2
    );
    assert_eq!(
        expose(&r, "aws-sm://kafka/rotated?version-stage=AWSPREVIOUS").await,
        v1
    );
    assert_eq!(
        expose(&r, "aws-sm://kafka/rotated?version-stage=KRAWL_BLUE").await,
        v1
    );
    assert_eq!(
        expose(&r, &format!("aws-sm://kafka/rotated?version-id={V1}")).await,
        v1
    );
    assert_eq!(
        expose(&r, &format!("aws-sm://kafka/rotated?version-id={V2}")).await,
        v2
    );

    let e = error(&r, "aws-sm://kafka/rotated?version-stage=NOPE").await;
    assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("staging label `NOPE`"), "{e}");
    let e = error(
        &r,
        "aws-sm://kafka/rotated?version-id=00000000-0000-4000-8000-00000000dead",
    )
    .await;
    assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("version id"), "{e}");
}

#[tokio::test]
async fn arn_carries_its_region() {
    let moto = Moto::start();
    // The secret lives in eu-west-1; the provider's region is us-east-1.
    let c = moto.seeder("eu-west-1");
    let arn = create(&c, "kafka/eu", &format!(r#"{{"password":"{CANARY}"}}"#)).await;
    assert!(
        arn.starts_with("arn:aws:secretsmanager:eu-west-1:"),
        "{arn}"
    );

    let r = resolver(moto.config()).await;
    assert_eq!(
        expose(&r, &format!("aws-sm://{arn}#password")).await,
        CANARY
    );
    assert_eq!(
        expose(
            &r,
            &format!("aws-sm://{arn}?version-stage=AWSCURRENT#password")
        )
        .await,
        CANARY
    );
    // By name it is looked up in us-east-1, where it does not exist.
    let e = error(&r, "aws-sm://kafka/eu#password").await;
    assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("region us-east-1"), "{e}");

    // No region anywhere (config, env, profile): an ARN still works, a name
    // is refused before any call, saying where to set one.
    let r = resolver(AwsConfig {
        region: None,
        profile: Some(NO_REGION.into()),
        ..moto.config()
    })
    .await;
    assert_eq!(
        expose(&r, &format!("aws-sm://{arn}#password")).await,
        CANARY
    );
    let e = error(&r, "aws-sm://kafka/eu#password").await;
    assert!(matches!(e, SecretError::NotConfigured { .. }), "{e}");
    assert!(e.to_string().contains("secrets.aws.region"), "{e}");
}

#[tokio::test]
async fn region_from_the_profile_when_not_configured() {
    let moto = Moto::start();
    create(&moto.seeder(REGION), "kafka/plain", CANARY).await;
    // secrets.aws.region unset: the chain's region (the profile's us-east-1).
    let r = resolver(AwsConfig {
        region: None,
        ..moto.config()
    })
    .await;
    assert_eq!(expose(&r, "aws-sm://kafka/plain").await, CANARY);
}

#[tokio::test]
async fn missing_secret_is_not_found() {
    let moto = Moto::start();
    create(&moto.seeder(REGION), "kafka/present", CANARY).await;
    let r = resolver(moto.config()).await;
    let e = error(&r, "aws-sm://kafka/absent#password").await;
    let s = e.to_string();
    assert!(
        matches!(
            e,
            SecretError::NotFound {
                backend: "aws-sm",
                ..
            }
        ),
        "{s}"
    );
    assert!(s.contains("aws-sm://kafka/absent#password"), "{s}");
    assert!(s.contains("check the secret name or ARN"), "{s}");
    assert!(s.contains(&moto.endpoint()), "{s}");
}

#[tokio::test]
async fn unknown_profile_is_auth_failure() {
    let moto = Moto::start();
    create(&moto.seeder(REGION), "kafka/plain", CANARY).await;
    let r = resolver(AwsConfig {
        profile: Some("krawl-no-such-profile".into()),
        ..moto.config()
    })
    .await;
    let e = error(&r, "aws-sm://kafka/plain").await;
    let s = e.to_string();
    assert!(
        matches!(
            e,
            SecretError::AuthFailed {
                backend: "aws-sm",
                ..
            }
        ),
        "{s}"
    );
    assert!(s.contains("credential chain"), "{s}");
    assert!(s.contains("krawl-no-such-profile"), "{s}");
}

#[tokio::test]
async fn stopped_server_is_unreachable() {
    let mut moto = Moto::start();
    create(&moto.seeder(REGION), "kafka/plain", CANARY).await;
    let r = resolver(moto.config()).await;
    assert_eq!(expose(&r, "aws-sm://kafka/plain").await, CANARY);
    let endpoint = moto.endpoint();
    moto.stop();

    let started = Instant::now();
    let e = error(&r, "aws-sm://kafka/plain").await;
    let s = e.to_string();
    assert!(
        matches!(
            e,
            SecretError::Unreachable {
                backend: "aws-sm",
                ..
            }
        ),
        "{s}"
    );
    assert!(s.contains(&endpoint), "{s}");
    assert!(s.contains("3 attempt(s)"), "{s}");
    // Two retries with backoff, bounded.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn silent_endpoint_times_out() {
    setup_env();
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let r = resolver(AwsConfig {
        region: Some(REGION.into()),
        endpoint_url: Some(endpoint.clone()),
        profile: Some(PROFILE.into()),
        timeout_secs: 1,
        retries: 0,
    })
    .await;
    let started = Instant::now();
    let e = error(&r, "aws-sm://kafka/plain").await;
    let s = e.to_string();
    assert!(matches!(e, SecretError::Unreachable { .. }), "{s}");
    assert!(
        s.contains(&format!("no answer from {endpoint} within 1 s")),
        "{s}"
    );
    assert!(s.contains("1 attempt(s)"), "{s}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A full `krawl extract` whose SASL password comes from AWS Secrets Manager
/// (moto): it works, the value appears in no output or log line (trace
/// level), and with the endpoint down the run fails with exit code 10.
#[tokio::test(flavor = "multi_thread")]
async fn full_extraction_with_the_password_from_aws() {
    setup_env();
    let mut moto = Moto::start();
    create(
        &moto.seeder(REGION),
        "kafka-e2e",
        &format!(r#"{{"password":"{CANARY}"}}"#),
    )
    .await;
    let broker = krawl_tests::Noida::start().unwrap();
    let secrets = format!(
        "[secrets.aws]\nregion = \"{REGION}\"\nendpoint_url = \"{}\"\nprofile = \"{PROFILE}\"\ntimeout_secs = 3\nretries = 0\n",
        moto.endpoint()
    );
    let reference = "aws-sm://kafka-e2e#password";
    let run = tokio::task::block_in_place(|| {
        krawl_tests::extract_with_sasl_password(&broker, reference, &secrets, &[])
    })
    .unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("\"sasl_mechanism\":\"PLAIN\""));
    assert!(!run.stdout.contains(CANARY) && !run.stderr.contains(CANARY));

    let endpoint = moto.endpoint();
    moto.stop();
    let run = tokio::task::block_in_place(|| {
        krawl_tests::extract_with_sasl_password(&broker, reference, &secrets, &[])
    })
    .unwrap();
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(
        run.stderr.contains("aws-sm") && run.stderr.contains(&endpoint),
        "{}",
        run.stderr
    );
}
