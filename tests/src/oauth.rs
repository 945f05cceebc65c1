//! A stub OAuth2 token endpoint for the agent's client-credentials tests (no OAuth2 server is
//! installable here). It follows RFC 6749 §4.4 (client credentials grant) exactly, for one
//! registered confidential client:
//!
//! - only `POST` (§3.2), body `application/x-www-form-urlencoded` (§4.4.2), else
//!   `400 invalid_request`;
//! - `grant_type=client_credentials` required: missing → `400 invalid_request`, another value →
//!   `400 unsupported_grant_type` (§5.2);
//! - client authentication (§2.3.1) with HTTP Basic (`client_id:client_secret`, each
//!   form-urlencoded before base64, which the server MUST support) or with `client_id` and
//!   `client_secret` in the body (which it MAY support; this stub does); using both at once is
//!   `400 invalid_request` (§2.3: one method per request); none, an unknown client or a wrong
//!   secret is `401 invalid_client`, with `WWW-Authenticate: Basic` when Basic was tried (§5.2);
//! - success (§4.4.3, §5.1): `200`, `Content-Type: application/json;charset=UTF-8`,
//!   `Cache-Control: no-store`, `Pragma: no-cache`,
//!   `{"access_token", "token_type": "Bearer", "expires_in"}` (plus `scope` when one was asked).
//!
//! `scope` (§3.3) and the non-standard `audience` (Auth0, Okta) are recorded, not enforced. Every
//! request is recorded ([`TokenRequest`]) so tests can check what the client sent.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

/// What the stub issues and to whom.
#[derive(Debug, Clone)]
pub struct TokenEndpointOpts {
    pub client_id: String,
    pub client_secret: String,
    /// The `access_token` of every successful answer.
    pub access_token: String,
    /// `expires_in` of every successful answer (changeable later with
    /// [`TokenEndpoint::set_expires_in`]).
    pub expires_in: u64,
}

/// How the client authenticated in one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic` (RFC 6749 §2.3.1, first form).
    Basic,
    /// `client_id` + `client_secret` in the body (§2.3.1, second form).
    Body,
    /// Both at once (refused).
    Both,
    None,
}

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub at: Instant,
    pub method: String,
    pub content_type: Option<String>,
    /// The decoded form parameters (`client_secret` replaced by `<set>`).
    pub form: BTreeMap<String, String>,
    pub auth: ClientAuth,
    /// The client id it authenticated as (from Basic or the body).
    pub client_id: Option<String>,
    /// Whether the presented secret was the right one.
    pub secret_ok: bool,
    /// The HTTP status answered.
    pub status: u16,
}

impl TokenRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form.get(name).map(String::as_str)
    }
}

#[derive(Debug)]
struct Shared {
    opts: TokenEndpointOpts,
    expires_in: AtomicU64,
    requests: Mutex<Vec<TokenRequest>>,
}

/// A running token endpoint at `http://127.0.0.1:PORT/oauth2/token`. Stops on drop.
#[derive(Debug)]
pub struct TokenEndpoint {
    port: u16,
    shared: Arc<Shared>,
    _server: crate::http_server::ServerThread,
}

/// Decodes `application/x-www-form-urlencoded` (`+` is a space, `%XX` a byte).
pub fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn parse_form(body: &str) -> Option<BTreeMap<String, String>> {
    let mut form = BTreeMap::new();
    for pair in body.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        // §3.2: parameters MUST NOT be included more than once.
        if form.insert(form_decode(k)?, form_decode(v)?).is_some() {
            return None;
        }
    }
    Some(form)
}

fn json(status: StatusCode, body: serde_json::Value, basic_tried: bool) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert("pragma", HeaderValue::from_static("no-cache"));
    if status == StatusCode::UNAUTHORIZED && basic_tried {
        h.insert(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=\"krawl-test\""),
        );
    }
    resp
}

fn error(status: StatusCode, code: &str, description: &str, basic: bool) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({ "error": code, "error_description": description }),
        basic,
    )
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Full<Bytes>>, std::convert::Infallible> {
    use base64::Engine as _;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let basic = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| rest.trim().to_string())
        });
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut record = TokenRequest {
        at: Instant::now(),
        method: method.to_string(),
        content_type: content_type.clone(),
        form: BTreeMap::new(),
        auth: ClientAuth::None,
        client_id: None,
        secret_ok: false,
        status: 0,
    };
    let resp = (|| {
        if path != "/oauth2/token" {
            return error(
                StatusCode::NOT_FOUND,
                "invalid_request",
                "no such endpoint",
                false,
            );
        }
        if method != Method::POST {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "the token endpoint takes POST (RFC 6749 section 3.2)",
                false,
            );
        }
        let form_type = content_type
            .as_deref()
            .and_then(|c| c.split(';').next())
            .is_some_and(|c| {
                c.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form_type {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
                basic.is_some(),
            );
        }
        let Some(form) = parse_form(&body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "malformed or repeated form parameter",
                basic.is_some(),
            );
        };
        let mut shown = form.clone();
        if shown.contains_key("client_secret") {
            shown.insert("client_secret".into(), "<set>".into());
        }
        record.form = shown;
        // Client authentication, §2.3.1.
        let from_basic = basic.as_deref().map(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .and_then(|s| {
                    let (id, secret) = s.split_once(':')?;
                    Some((form_decode(id)?, form_decode(secret)?))
                })
        });
        let from_body = form.get("client_secret").map(|s| {
            (
                form.get("client_id").cloned().unwrap_or_default(),
                s.clone(),
            )
        });
        let (id, secret) = match (from_basic, from_body) {
            (Some(_), Some(_)) => {
                record.auth = ClientAuth::Both;
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "more than one client authentication method (RFC 6749 section 2.3)",
                    true,
                );
            }
            (Some(Some(creds)), None) => {
                record.auth = ClientAuth::Basic;
                creds
            }
            (Some(None), None) => {
                record.auth = ClientAuth::Basic;
                return error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "malformed Basic credentials",
                    true,
                );
            }
            (None, Some(creds)) => {
                record.auth = ClientAuth::Body;
                creds
            }
            (None, None) => {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "client authentication required",
                    false,
                );
            }
        };
        let basic_tried = record.auth == ClientAuth::Basic;
        record.client_id = Some(id.clone());
        record.secret_ok = id == shared.opts.client_id && secret == shared.opts.client_secret;
        if !record.secret_ok {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
                basic_tried,
            );
        }
        match form.get("grant_type").map(String::as_str) {
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "grant_type is missing",
                    basic_tried,
                )
            }
            Some("client_credentials") => {}
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "only client_credentials is supported",
                    basic_tried,
                )
            }
        }
        let mut answer = serde_json::json!({
            "access_token": shared.opts.access_token,
            "token_type": "Bearer",
            "expires_in": shared.expires_in.load(Ordering::SeqCst),
        });
        if let Some(scope) = form.get("scope") {
            answer["scope"] = serde_json::Value::String(scope.clone());
        }
        json(StatusCode::OK, answer, false)
    })();
    record.status = resp.status().as_u16();
    if let Ok(mut r) = shared.requests.lock() {
        r.push(record);
    }
    Ok(resp)
}

impl TokenEndpoint {
    /// Starts on a free port of 127.0.0.1.
    pub fn start(opts: TokenEndpointOpts) -> Result<TokenEndpoint> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).context("token endpoint: binding")?;
        listener
            .set_nonblocking(true)
            .context("token endpoint: set_nonblocking")?;
        let port = listener
            .local_addr()
            .context("token endpoint: local_addr")?
            .port();
        let shared = Arc::new(Shared {
            expires_in: AtomicU64::new(opts.expires_in),
            opts,
            requests: Mutex::new(Vec::new()),
        });
        let sh = shared.clone();
        let server = crate::http_server::ServerThread::spawn(
            &format!("token-endpoint-{port}"),
            listener,
            move |req| handle(sh.clone(), req),
        )?;
        Ok(TokenEndpoint {
            port,
            shared,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/oauth2/token", self.port)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Requests answered with a token.
    pub fn issued(&self) -> Vec<TokenRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.status == 200)
            .collect()
    }

    /// `expires_in` of the tokens issued from now on.
    pub fn set_expires_in(&self, secs: u64) {
        self.shared.expires_in.store(secs, Ordering::SeqCst);
    }
}
