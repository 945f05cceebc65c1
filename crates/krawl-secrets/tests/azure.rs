//! Azure Key Vault provider against local stubs.
//!
//! No Key Vault emulator exists, so this file holds a small HTTPS stub of the
//! Key Vault data plane and of the Microsoft Entra ID token endpoint, and a
//! plain-HTTP stub of the Azure Instance Metadata Service, written to
//! Microsoft's published API references:
//! - "Get Secret - REST API (Azure Key Vault)" 7.4
//!   (learn.microsoft.com/rest/api/keyvault/secrets/get-secret/get-secret):
//!   `GET {vault}/secrets/{name}[/{version}]?api-version=7.4`, 200 with
//!   `{"value","id","attributes"}`, errors as `{"error":{"code","message"}}`;
//! - "Azure Key Vault REST API error codes" and "Authentication in Azure Key
//!   Vault" (learn.microsoft.com/azure/key-vault/general/rest-error-codes,
//!   .../general/authentication): 401 with `WWW-Authenticate: Bearer
//!   authorization="https://login.microsoftonline.com/<tenant>",
//!   resource="https://vault.azure.net"`, 403 `Forbidden` with
//!   `innererror.code = AccessDenied`, 404 `SecretNotFound`;
//! - "Microsoft identity platform and the OAuth 2.0 client credentials flow"
//!   (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow):
//!   form POST to `/{tenant}/oauth2/v2.0/token` (grant_type, client_id,
//!   scope, client_secret | client_assertion_type + client_assertion), 200
//!   `{"token_type":"Bearer","expires_in":3599,"access_token":...}`, errors
//!   `{"error":"invalid_client","error_description":"AADSTS7000215: ...",...}`;
//! - "How to use managed identities for Azure resources on an Azure VM to
//!   acquire an access token" (learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token):
//!   `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=...`
//!   with `Metadata: true`, numbers as strings in the answer.
#![cfg(feature = "azure")]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use krawl_secrets::azure::{AzureAuth, AzureConfig, AzureProvider};
use krawl_secrets::{Resolver, SecretError, SecretRef};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const CANARY: &str = "canary-az-5d1e77-secret-value";
const CLIENT_SECRET: &str = "canary-az-client-secret-91b2";
const FED_TOKEN: &str = "eyJfederated.canary-az-fed-3c4d.sig";
const KV_TOKEN: &str = "kv-access-token-7a8b";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT_ID: &str = "fad7d5b3-69d6-4b48-9259-8d12124e1cf1";
const PINNED: &str = "4387e9f3d6e14c459867679a90fd0f79";

#[derive(Debug, Clone)]
struct Req {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Req {
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    fn query(&self) -> HashMap<String, String> {
        self.target
            .split_once('?')
            .map(|(_, q)| form_decode(q))
            .unwrap_or_default()
    }
    fn everything(&self) -> String {
        format!(
            "{} {} {:?} {}",
            self.method, self.target, self.headers, self.body
        )
    }
}

struct Resp {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn json(status: u16, body: serde_json::Value) -> Resp {
    Resp {
        status,
        headers: vec![("Content-Type", "application/json; charset=utf-8".into())],
        body: body.to_string(),
    }
}

fn form_decode(s: &str) -> HashMap<String, String> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(h, 16).unwrap());
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    s.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (dec(k), dec(v)))
        .collect()
}

type Handler = Arc<dyn Fn(&Req) -> Resp + Send + Sync>;

/// A one-request-per-connection HTTP/1.1 server, over TLS or not. Records
/// every request. Stopped (port closed) on drop or `stop()`.
struct Stub {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Req>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stub {
    async fn start(tls: Option<tokio_rustls::TlsAcceptor>, handler: Handler) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (tls, handler, log) = (tls.clone(), handler.clone(), log2.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acc) => {
                            if let Ok(s) = acc.accept(sock).await {
                                serve(s, handler, log).await;
                            }
                        }
                        None => serve(sock, handler, log).await,
                    }
                });
            }
        });
        Stub { addr, log, task }
    }
    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
    fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    handler: Handler,
    log: Arc<Mutex<Vec<Req>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let Ok(n) = s.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let Ok(n) = s.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
    let req = Req {
        method,
        target,
        headers,
        body,
    };
    log.lock().unwrap().push(req.clone());
    let resp = handler(&req);
    let reason = match resp.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Error",
    };
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", resp.status);
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        resp.body.len()
    ));
    out.push_str(&resp.body);
    let _ = s.write_all(out.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// Test CA and a server certificate for localhost/127.0.0.1.
struct Pki {
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca_p = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_p.self_signed(&ca_key).unwrap();
    let srv_p =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let srv_key = KeyPair::generate().unwrap();
    let srv = srv_p.signed_by(&srv_key, &ca, &ca_key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![srv.der().clone()],
        rustls_pki_types::PrivateKeyDer::try_from(srv_key.serialize_der()).unwrap(),
    )
    .unwrap();
    Pki {
        _dir: dir,
        ca_file,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
    }
}

/// The Key Vault data plane: secrets by name → [(version, value)], latest last.
fn key_vault(vault_url: Arc<Mutex<String>>) -> Handler {
    let mut secrets: HashMap<&str, Vec<(&str, String)>> = HashMap::new();
    secrets.insert(
        "kafka-pw",
        vec![
            (PINNED, "old-password".to_string()),
            ("b0e6c8a1d5f34e2a9c7b1f0e3d2c4b5a", CANARY.to_string()),
        ],
    );
    secrets.insert(
        "kafka-json",
        vec![(
            "0d1c2b3a",
            format!(r#"{{"username":"svc-krawl","password":"{CANARY}"}}"#),
        )],
    );
    secrets.insert("payroll", vec![("1", "not-for-krawl".to_string())]);
    // A hostile vault's answer: 2 MiB, past the 1 MiB cap on secret-store bodies.
    secrets.insert("huge", vec![("1", "x".repeat(2 * 1024 * 1024))]);
    Arc::new(move |req: &Req| {
        let base = vault_url.lock().unwrap().clone();
        if req.query().get("api-version").map(String::as_str) != Some("7.4") {
            return json(
                400,
                serde_json::json!({"error":{"code":"BadParameter","message":"The specified api-version is not valid"}}),
            );
        }
        if req.headers.get("authorization").map(String::as_str)
            != Some(&format!("Bearer {KV_TOKEN}"))
        {
            let mut r = json(
                401,
                serde_json::json!({"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}),
            );
            r.headers.push((
                "WWW-Authenticate",
                format!(r#"Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="https://vault.azure.net""#),
            ));
            return r;
        }
        let parts: Vec<&str> = req.path().trim_start_matches('/').split('/').collect();
        let (name, version) = match parts.as_slice() {
            ["secrets", n] => (*n, None),
            ["secrets", n, v] => (*n, Some(*v)),
            _ => {
                return json(
                    400,
                    serde_json::json!({"error":{"code":"BadParameter","message":"bad path"}}),
                )
            }
        };
        if name == "payroll" {
            return json(
                403,
                serde_json::json!({"error":{"code":"Forbidden","message":format!("The user, group or application 'appid={CLIENT_ID};iss=https://sts.windows.net/{TENANT}/' does not have secrets get permission on key vault 'kv;location=westeurope'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"),"innererror":{"code":"AccessDenied"}}}),
            );
        }
        let found = secrets.get(name).and_then(|vs| match version {
            None => vs.last(),
            Some(v) => vs.iter().find(|(ver, _)| *ver == v),
        });
        match found {
            Some((ver, value)) => json(
                200,
                serde_json::json!({
                    "value": value,
                    "id": format!("{base}/secrets/{name}/{ver}"),
                    "attributes": {"enabled": true, "created": 1493938410, "updated": 1493938410, "recoveryLevel": "Recoverable+Purgeable"}
                }),
            ),
            None => json(
                404,
                serde_json::json!({"error":{"code":"SecretNotFound","message":format!("A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")}}),
            ),
        }
    })
}

/// The Entra ID v2.0 token endpoint (client credentials).
fn entra() -> Handler {
    Arc::new(|req: &Req| {
        if req.method != "POST" || req.path() != format!("/{TENANT}/oauth2/v2.0/token") {
            return json(
                400,
                serde_json::json!({"error":"invalid_request","error_description":"AADSTS90002: Tenant not found."}),
            );
        }
        let f = form_decode(&req.body);
        let ok_client = f.get("grant_type").map(String::as_str) == Some("client_credentials")
            && f.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && f.get("scope").map(String::as_str) == Some("https://vault.azure.net/.default");
        let ok_secret = f.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
        let ok_assertion = f.get("client_assertion_type").map(String::as_str)
            == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            && f.get("client_assertion").map(String::as_str) == Some(FED_TOKEN);
        if ok_client && (ok_secret || ok_assertion) {
            json(
                200,
                serde_json::json!({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":KV_TOKEN}),
            )
        } else {
            json(
                401,
                serde_json::json!({
                    "error":"invalid_client",
                    "error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app 'fad7d5b3-69d6-4b48-9259-8d12124e1cf1'.\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2025-01-01 00:00:00Z",
                    "error_codes":[7000215],
                    "timestamp":"2025-01-01 00:00:00Z",
                    "trace_id":"0000aaaa-11bb-cccc-dd22-eeeeee333333",
                    "correlation_id":"aaaa0000-bb11-2222-33cc-444444dddddd",
                    "error_uri":"https://login.microsoftonline.com/error?code=7000215"
                }),
            )
        }
    })
}

/// Azure IMDS (managed identity), plain HTTP.
fn imds() -> Handler {
    Arc::new(|req: &Req| {
        if req.headers.get("metadata").map(String::as_str) != Some("true") {
            return json(
                400,
                serde_json::json!({"error":"invalid_request","error_description":"Required metadata header not specified"}),
            );
        }
        let q = req.query();
        if req.path() != "/metadata/identity/oauth2/token"
            || q.get("api-version").map(String::as_str) != Some("2018-02-01")
            || q.get("resource").map(String::as_str) != Some("https://vault.azure.net")
        {
            return json(
                400,
                serde_json::json!({"error":"invalid_request","error_description":"Invalid request"}),
            );
        }
        if q.get("client_id").is_some_and(|c| c != CLIENT_ID) {
            return json(
                400,
                serde_json::json!({"error":"invalid_request","error_description":"Identity not found"}),
            );
        }
        json(
            200,
            serde_json::json!({
                "access_token": KV_TOKEN, "client_id": CLIENT_ID, "expires_in": "86399",
                "expires_on": "4102444800", "ext_expires_in": "86399", "not_before": "1700000000",
                "resource": "https://vault.azure.net", "token_type": "Bearer"
            }),
        )
    })
}

struct Env {
    pki: Pki,
    vault: Stub,
    login: Stub,
}

async fn env() -> Env {
    let pki = pki();
    let url = Arc::new(Mutex::new(String::new()));
    let vault = Stub::start(Some(pki.acceptor.clone()), key_vault(url.clone())).await;
    *url.lock().unwrap() = format!("https://{}", vault.addr);
    let login = Stub::start(Some(pki.acceptor.clone()), entra()).await;
    Env { pki, vault, login }
}

fn config(e: &Env, auth: AzureAuth) -> AzureConfig {
    AzureConfig {
        auth,
        authority_host: Some(format!("https://{}", e.login.addr)),
        ca_file: Some(e.pki.ca_file.clone()),
        verify_challenge_resource: false,
        ..AzureConfig::default()
    }
}

fn client_secret_auth(var: &str) -> AzureAuth {
    AzureAuth::ClientSecret {
        tenant_id: TENANT.into(),
        client_id: CLIENT_ID.into(),
        client_secret: SecretRef::parse(&format!("env://{var}")).unwrap(),
    }
}

fn resolver(cfg: AzureConfig) -> Resolver {
    Resolver::from_parts(
        vec![Arc::new(AzureProvider::new(cfg).unwrap())],
        None,
        Duration::ZERO,
    )
}

async fn resolve(r: &Resolver, reference: &str) -> Result<String, SecretError> {
    r.job("test")
        .resolve(&SecretRef::parse(reference).unwrap())
        .await
        .map(|v| v.expose().to_string())
}

fn assert_clean(err: &SecretError) {
    let s = format!("{err} {err:?}");
    eprintln!("error: {err}");
    for c in [CANARY, CLIENT_SECRET, FED_TOKEN, KV_TOKEN] {
        assert!(!s.contains(c), "a secret leaked into an error: {s}");
    }
}

#[tokio::test]
async fn client_secret_auth_through_the_challenge() {
    std::env::set_var("KRAWL_AZ_TEST_CS_OK", CLIENT_SECRET);
    let e = env().await;
    let r = resolver(config(&e, client_secret_auth("KRAWL_AZ_TEST_CS_OK")));
    let v = e.vault.addr;

    // Latest version.
    assert_eq!(
        resolve(&r, &format!("azure-kv://{v}/kafka-pw"))
            .await
            .unwrap(),
        CANARY
    );
    let reqs = e.vault.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].target, "/secrets/kafka-pw?api-version=7.4");
    assert!(
        !reqs[0].headers.contains_key("authorization"),
        "first request goes without a token"
    );
    assert_eq!(
        reqs[1].headers["authorization"],
        format!("Bearer {KV_TOKEN}")
    );
    let tok = e.login.requests();
    assert_eq!(tok.len(), 1);
    assert_eq!(tok[0].method, "POST");
    assert_eq!(tok[0].path(), format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(
        tok[0].headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    let f = form_decode(&tok[0].body);
    assert_eq!(f["grant_type"], "client_credentials");
    assert_eq!(f["client_id"], CLIENT_ID);
    assert_eq!(f["client_secret"], CLIENT_SECRET);
    assert_eq!(f["scope"], "https://vault.azure.net/.default");

    // Pinned version and a JSON field, with the cached token: no new token
    // request, and the token goes along at once.
    assert_eq!(
        resolve(&r, &format!("azure-kv://{v}/kafka-pw/{PINNED}"))
            .await
            .unwrap(),
        "old-password"
    );
    assert_eq!(
        resolve(&r, &format!("azure-kv://{v}/kafka-json#password"))
            .await
            .unwrap(),
        CANARY
    );
    assert_eq!(
        resolve(&r, &format!("azure-kv://{v}/kafka-json#username"))
            .await
            .unwrap(),
        "svc-krawl"
    );
    assert_eq!(e.login.requests().len(), 1, "the access token is cached");
    let reqs = e.vault.requests();
    assert_eq!(
        reqs[2].target,
        format!("/secrets/kafka-pw/{PINNED}?api-version=7.4")
    );
    assert!(reqs[2..]
        .iter()
        .all(|q| q.headers.contains_key("authorization")));

    // The client secret went only to the token endpoint; the secret value nowhere.
    for q in e.vault.requests() {
        assert!(!q.everything().contains(CLIENT_SECRET), "{q:?}");
        assert!(!q.everything().contains(CANARY));
    }
    for q in e.login.requests() {
        assert!(!q.everything().contains(CANARY));
    }
}

#[tokio::test]
async fn not_found_and_permission_denied() {
    std::env::set_var("KRAWL_AZ_TEST_CS_NF", CLIENT_SECRET);
    let e = env().await;
    let r = resolver(config(&e, client_secret_auth("KRAWL_AZ_TEST_CS_NF")));
    let v = e.vault.addr;

    let err = resolve(&r, &format!("azure-kv://{v}/nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    let s = err.to_string();
    assert!(
        s.contains(&format!("azure-kv://{v}/nope")) && s.contains("SecretNotFound"),
        "{s}"
    );
    assert_clean(&err);

    let err = resolve(&r, &format!("azure-kv://{v}/kafka-pw/ffffffff"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("version `ffffffff`"), "{err}");

    let err = resolve(&r, &format!("azure-kv://{v}/payroll"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::PermissionDenied { .. }), "{err}");
    let s = err.to_string();
    assert!(
        s.contains("Key Vault Secrets User") && s.contains("`get` secret permission"),
        "{s}"
    );
    assert!(s.contains(CLIENT_ID), "names the identity: {s}");
    assert_clean(&err);

    let err = resolve(&r, &format!("azure-kv://{v}/kafka-json#nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::KeyMissing { .. }), "{err}");
    assert_clean(&err);
}

/// Issue 11: a store's answer is read with a cap; a huge one is an error naming the limit,
/// not an allocation of whatever the store sends.
#[tokio::test]
async fn a_huge_answer_is_refused_with_the_limit() {
    std::env::set_var("KRAWL_AZ_TEST_CS_HUGE", CLIENT_SECRET);
    let e = env().await;
    let r = resolver(config(&e, client_secret_auth("KRAWL_AZ_TEST_CS_HUGE")));
    let err = resolve(&r, &format!("azure-kv://{}/huge", e.vault.addr))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("larger than the limit of 1048576 bytes"),
        "{err}"
    );
    assert_clean(&err);
}

#[tokio::test]
async fn wrong_client_secret_is_auth_failed() {
    std::env::set_var("KRAWL_AZ_TEST_CS_BAD", "not-the-secret");
    let e = env().await;
    let r = resolver(config(&e, client_secret_auth("KRAWL_AZ_TEST_CS_BAD")));
    let err = resolve(&r, &format!("azure-kv://{}/kafka-pw", e.vault.addr))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::AuthFailed { .. }), "{err}");
    let s = err.to_string();
    assert!(
        s.contains("invalid_client") && s.contains("AADSTS7000215"),
        "{s}"
    );
    assert!(
        !s.contains("Trace ID"),
        "only the first line of the description: {s}"
    );
    assert!(!s.contains("not-the-secret"), "{s}");
    assert_clean(&err);
    // Nothing but the anonymous first request reached the vault.
    assert!(e
        .vault
        .requests()
        .iter()
        .all(|q| !q.headers.contains_key("authorization")));

    // A missing secret variable is an auth failure naming the variable.
    let r = resolver(config(&e, client_secret_auth("KRAWL_AZ_TEST_UNSET_VAR")));
    let err = resolve(&r, &format!("azure-kv://{}/kafka-pw", e.vault.addr))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::AuthFailed { .. }), "{err}");
    assert!(err.to_string().contains("KRAWL_AZ_TEST_UNSET_VAR"), "{err}");
}

#[tokio::test]
async fn managed_identity_through_imds() {
    let e = env().await;
    let imds = Stub::start(None, imds()).await;
    let mut cfg = config(
        &e,
        AzureAuth::ManagedIdentity {
            client_id: Some(CLIENT_ID.into()),
        },
    );
    cfg.imds_endpoint = Some(format!(
        "http://{}/metadata/identity/oauth2/token",
        imds.addr
    ));
    let r = resolver(cfg.clone());
    assert_eq!(
        resolve(
            &r,
            &format!("azure-kv://{}/kafka-json#password", e.vault.addr)
        )
        .await
        .unwrap(),
        CANARY
    );
    let q = imds.requests();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].method, "GET");
    assert_eq!(q[0].headers["metadata"], "true");
    let qp = q[0].query();
    assert_eq!(qp["resource"], "https://vault.azure.net");
    assert_eq!(qp["api-version"], "2018-02-01");
    assert_eq!(qp["client_id"], CLIENT_ID);
    assert!(
        e.login.requests().is_empty(),
        "managed identity never calls the authority"
    );

    // An identity the VM does not have.
    cfg.auth = AzureAuth::ManagedIdentity {
        client_id: Some("00000000-0000-0000-0000-000000000000".into()),
    };
    let err = resolve(
        &resolver(cfg),
        &format!("azure-kv://{}/kafka-pw", e.vault.addr),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SecretError::AuthFailed { .. }), "{err}");
    assert!(err.to_string().contains("Identity not found"), "{err}");
    assert_clean(&err);
}

#[tokio::test]
async fn workload_identity_with_a_federated_token_file() {
    let e = env().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, format!("{FED_TOKEN}\n")).unwrap();
    let auth = AzureAuth::WorkloadIdentity {
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT_ID.into()),
        token_file: Some(file.clone()),
    };
    let r = resolver(config(&e, auth));
    assert_eq!(
        resolve(&r, &format!("azure-kv://{}/kafka-pw", e.vault.addr))
            .await
            .unwrap(),
        CANARY
    );
    let tok = e.login.requests();
    assert_eq!(tok.len(), 1);
    let f = form_decode(&tok[0].body);
    assert_eq!(f["grant_type"], "client_credentials");
    assert_eq!(
        f["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(f["client_assertion"], FED_TOKEN);
    assert_eq!(f["client_id"], CLIENT_ID);
    assert_eq!(f["scope"], "https://vault.azure.net/.default");
    assert!(!f.contains_key("client_secret"));
    for q in e.vault.requests() {
        assert!(!q.everything().contains(FED_TOKEN));
    }

    // A missing token file: auth failure naming the file.
    let auth = AzureAuth::WorkloadIdentity {
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT_ID.into()),
        token_file: Some(dir.path().join("missing")),
    };
    let err = resolve(
        &resolver(config(&e, auth)),
        &format!("azure-kv://{}/kafka-pw", e.vault.addr),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SecretError::AuthFailed { .. }), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[tokio::test]
async fn untrusted_certificate_is_a_tls_error_naming_the_host() {
    std::env::set_var("KRAWL_AZ_TEST_CS_TLS", CLIENT_SECRET);
    let e = env().await;
    let mut cfg = config(&e, client_secret_auth("KRAWL_AZ_TEST_CS_TLS"));
    cfg.ca_file = None;
    let err = resolve(
        &resolver(cfg),
        &format!("azure-kv://{}/kafka-pw", e.vault.addr),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SecretError::Unreachable { .. }), "{err}");
    let s = err.to_string();
    assert!(
        s.contains("TLS") && s.contains(&e.vault.addr.to_string()) && s.contains("ca_file"),
        "{s}"
    );
    assert_clean(&err);
    // No request got through the failed handshake.
    assert!(e.vault.requests().is_empty());
    assert!(e.login.requests().is_empty());
}

#[tokio::test]
async fn stopped_vault_is_unreachable() {
    std::env::set_var("KRAWL_AZ_TEST_CS_DOWN", CLIENT_SECRET);
    let e = env().await;
    let mut cfg = config(&e, client_secret_auth("KRAWL_AZ_TEST_CS_DOWN"));
    cfg.timeout_secs = 2;
    let r = resolver(cfg);
    let reference = format!("azure-kv://{}/kafka-pw", e.vault.addr);
    assert_eq!(resolve(&r, &reference).await.unwrap(), CANARY);
    e.vault.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = resolve(&r, &reference).await.unwrap_err();
    assert!(matches!(err, SecretError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("https://{}", e.vault.addr)),
        "{err}"
    );
    assert_clean(&err);
}

#[tokio::test]
async fn challenge_resource_must_match_the_vault() {
    std::env::set_var("KRAWL_AZ_TEST_CS_RES", CLIENT_SECRET);
    let e = env().await;
    let mut cfg = config(&e, client_secret_auth("KRAWL_AZ_TEST_CS_RES"));
    cfg.verify_challenge_resource = true;
    let err = resolve(
        &resolver(cfg),
        &format!("azure-kv://{}/kafka-pw", e.vault.addr),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SecretError::AuthFailed { .. }), "{err}");
    assert!(err.to_string().contains("https://vault.azure.net"), "{err}");
    // No credential was sent anywhere.
    assert!(e.login.requests().is_empty());

    // A challenge naming another tenant is refused too.
    let mut cfg = config(
        &e,
        AzureAuth::ClientSecret {
            tenant_id: "11111111-2222-3333-4444-555555555555".into(),
            client_id: CLIENT_ID.into(),
            client_secret: SecretRef::parse("env://KRAWL_AZ_TEST_CS_RES").unwrap(),
        },
    );
    cfg.verify_challenge_resource = false;
    let err = resolve(
        &resolver(cfg),
        &format!("azure-kv://{}/kafka-pw", e.vault.addr),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SecretError::AuthFailed { .. }), "{err}");
    assert!(err.to_string().contains(TENANT), "{err}");
    assert!(e.login.requests().is_empty());
}

/// A full `krawl extract` whose SASL password comes from Azure Key Vault (the
/// HTTPS stub): it works through the challenge, the value appears in no
/// output or log line (trace level), and with the vault down it fails with
/// exit code 10.
#[tokio::test(flavor = "multi_thread")]
async fn full_extraction_with_the_password_from_azure() {
    let e = env().await;
    let broker = krawl_tests::Noida::start().unwrap();
    let secrets = format!(
        "[secrets.azure]\nauthority_host = \"https://{}\"\nca_file = \"{}\"\nverify_challenge_resource = false\ntimeout_secs = 3\nretries = 0\n\
         auth = {{ method = \"client_secret\", tenant_id = \"{TENANT}\", client_id = \"{CLIENT_ID}\", client_secret = \"env://KRAWL_E2E_AZ_CS\" }}\n",
        e.login.addr,
        e.pki.ca_file.display()
    );
    let reference = format!("azure-kv://{}/kafka-json#password", e.vault.addr);
    let env = [("KRAWL_E2E_AZ_CS", CLIENT_SECRET)];
    let run = tokio::task::block_in_place(|| {
        krawl_tests::extract_with_sasl_password(&broker, &reference, &secrets, &env)
    })
    .unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("\"sasl_mechanism\":\"PLAIN\""));
    for canary in [CANARY, CLIENT_SECRET, KV_TOKEN] {
        assert!(
            !run.stdout.contains(canary) && !run.stderr.contains(canary),
            "{canary}"
        );
    }

    e.vault.stop();
    let run = tokio::task::block_in_place(|| {
        krawl_tests::extract_with_sasl_password(&broker, &reference, &secrets, &env)
    })
    .unwrap();
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(run.stderr.contains("azure-kv"), "{}", run.stderr);
}
