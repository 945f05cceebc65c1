//! The fake Confluent Schema Registry (`krawl_tests::schema_registry`) over HTTP(S).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use krawl_tests::schema_registry::{
    FakeRegistry, FakeRegistryOpts, RawAnswer, RawBody, SR_CONTENT_TYPE,
};
use krawl_tests::TestPki;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const AVRO_V1: &str =
    r#"{"type":"record","name":"User","namespace":"t","fields":[{"name":"id","type":"long"}]}"#;
const AVRO_V2: &str = r#"{"type":"record","name":"User","namespace":"t","fields":[{"name":"id","type":"long"},{"name":"email","type":["null","string"],"default":null}]}"#;

fn start() -> FakeRegistry {
    FakeRegistry::start(FakeRegistryOpts::default()).unwrap()
}

struct Resp {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
    /// Asserts a Confluent error body.
    fn assert_error(&self, status: u16, code: i64) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        let v = self.json();
        assert_eq!(v["error_code"], json!(code), "{}", self.text);
        v["message"].as_str().unwrap().to_string()
    }
}

async fn call(client: &Client, method: Method, url: String, body: Option<Value>) -> Resp {
    let mut req = client.request(method, url);
    if let Some(b) = body {
        req = req
            .header("Content-Type", SR_CONTENT_TYPE)
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    Resp {
        status: resp.status(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

async fn get(reg: &FakeRegistry, path: &str) -> Resp {
    call(
        &Client::new(),
        Method::GET,
        format!("{}{path}", reg.url()),
        None,
    )
    .await
}

async fn post_schema(reg: &FakeRegistry, subject: &str, body: Value) -> Resp {
    call(
        &Client::new(),
        Method::POST,
        format!("{}/subjects/{subject}/versions", reg.url()),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn root_subjects_and_content_type() {
    let reg = start();
    let r = get(&reg, "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({}));
    assert_eq!(r.headers["content-type"], SR_CONTENT_TYPE);
    assert_eq!(get(&reg, "/subjects").await.json(), json!([]));
    assert_eq!(
        get(&reg, "/schemas/types").await.json(),
        json!(["JSON", "PROTOBUF", "AVRO"])
    );
    get(&reg, "/nope").await.assert_error(404, 404);
}

#[tokio::test]
async fn register_and_read_back() {
    let reg = start();
    let r = post_schema(&reg, "users-value", json!({"schema": AVRO_V1})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id1 = r.json()["id"].as_i64().unwrap();
    // Same schema again: same id, no new version.
    let r = post_schema(&reg, "users-value", json!({"schema": AVRO_V1})).await;
    assert_eq!(r.json()["id"].as_i64().unwrap(), id1);
    let r = post_schema(
        &reg,
        "users-value",
        json!({"schema": AVRO_V2, "schemaType": "AVRO"}),
    )
    .await;
    let id2 = r.json()["id"].as_i64().unwrap();
    assert_ne!(id1, id2);

    assert_eq!(get(&reg, "/subjects").await.json(), json!(["users-value"]));
    assert_eq!(
        get(&reg, "/subjects/users-value/versions").await.json(),
        json!([1, 2])
    );
    let v1 = get(&reg, "/subjects/users-value/versions/1").await.json();
    assert_eq!(
        v1,
        json!({"subject": "users-value", "version": 1, "id": id1, "schema": AVRO_V1})
    );
    assert!(v1.get("schemaType").is_none(), "AVRO omits schemaType");
    let latest = get(&reg, "/subjects/users-value/versions/latest")
        .await
        .json();
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["id"], id2);
    assert_eq!(
        get(&reg, "/subjects/users-value/versions/-1").await.json()["version"],
        2
    );
    let raw = get(&reg, "/subjects/users-value/versions/1/schema").await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.text, AVRO_V1);
    assert_eq!(
        get(&reg, &format!("/schemas/ids/{id2}")).await.json(),
        json!({"schema": AVRO_V2})
    );

    // Same schema under another subject: same id, version 1 there.
    let r = post_schema(&reg, "other-value", json!({"schema": AVRO_V1})).await;
    assert_eq!(r.json()["id"].as_i64().unwrap(), id1);
    assert_eq!(
        get(&reg, "/subjects/other-value/versions/latest")
            .await
            .json()["version"],
        1
    );

    // JSON Schema and Protobuf carry schemaType.
    let js = r#"{"type":"object","properties":{"a":{"type":"string"}}}"#;
    let r = post_schema(
        &reg,
        "js-value",
        json!({"schema": js, "schemaType": "JSON"}),
    )
    .await;
    let id = r.json()["id"].as_i64().unwrap();
    let v = get(&reg, "/subjects/js-value/versions/1").await.json();
    assert_eq!(v["schemaType"], "JSON");
    assert_eq!(
        get(&reg, &format!("/schemas/ids/{id}")).await.json()["schemaType"],
        "JSON"
    );
    let proto = "syntax = \"proto3\";\nmessage M { string a = 1; }\n";
    let r = post_schema(
        &reg,
        "pb-value",
        json!({"schema": proto, "schemaType": "PROTOBUF"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The handle registers with the same rules and the same dedup.
    assert_eq!(
        reg.register("users-value", "AVRO", AVRO_V2, &[]).unwrap(),
        (id2 as i32, 2)
    );
}

#[tokio::test]
async fn error_codes() {
    let reg = start();
    reg.register("s", "AVRO", AVRO_V1, &[]).unwrap();

    let m = get(&reg, "/subjects/missing/versions")
        .await
        .assert_error(404, 40401);
    assert_eq!(m, "Subject 'missing' not found.");
    get(&reg, "/subjects/missing/versions/1")
        .await
        .assert_error(404, 40401);
    let m = get(&reg, "/subjects/s/versions/7")
        .await
        .assert_error(404, 40402);
    assert_eq!(m, "Version 7 not found.");
    get(&reg, "/subjects/s/versions/7/schema")
        .await
        .assert_error(404, 40402);
    let m = get(&reg, "/schemas/ids/999").await.assert_error(404, 40403);
    assert_eq!(m, "Schema 999 not found");
    get(&reg, "/subjects/s/versions/0")
        .await
        .assert_error(422, 42202);
    get(&reg, "/subjects/s/versions/abc")
        .await
        .assert_error(422, 42202);
    get(&reg, "/subjects/s/versions/-2")
        .await
        .assert_error(422, 42202);

    for bad in [
        json!({"schema": "{not json"}),
        json!({"schema": r#"{"type":"record","name":"X"}"#}),
        json!({"schema": r#"{"type":"record","name":"X","fields":[{"name":"a","type":"Nope"}]}"#}),
        json!({"schema": r#"{"type":"enum","name":"E"}"#}),
        json!({"schema": "[]", "schemaType": "JSON"}),
        json!({"schema": "\"string\"", "schemaType": "XML"}),
        json!({"schema": ""}),
        json!({}),
    ] {
        post_schema(&reg, "s", bad).await.assert_error(422, 42201);
    }
    assert!(reg
        .register("s", "AVRO", "{bad", &[])
        .unwrap_err()
        .to_string()
        .contains("42201"));

    // Unsupported request content type, unsupported Accept, wrong method.
    let r = Client::new()
        .post(format!("{}/subjects/s/versions", reg.url()))
        .header("Content-Type", "text/plain")
        .body(json!({"schema": AVRO_V1}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = Client::new()
        .get(format!("{}/subjects", reg.url()))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    for ct in ["application/json", "application/vnd.schemaregistry+json"] {
        let r = Client::new()
            .post(format!("{}/subjects/s/versions", reg.url()))
            .header("Content-Type", ct)
            .header(
                "Accept",
                "application/vnd.schemaregistry.v1+json, application/json",
            )
            .body(json!({"schema": AVRO_V1}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{ct}");
    }
    call(
        &Client::new(),
        Method::DELETE,
        format!("{}/config", reg.url()),
        None,
    )
    .await
    .assert_error(405, 405);
}

#[tokio::test]
async fn soft_and_hard_delete() {
    let reg = start();
    let (id1, _) = reg.register("a", "AVRO", AVRO_V1, &[]).unwrap();
    let (id2, _) = reg.register("a", "AVRO", AVRO_V2, &[]).unwrap();
    reg.register("b", "AVRO", AVRO_V1, &[]).unwrap();
    let client = Client::new();
    let url = |p: &str| format!("{}{p}", reg.url());

    // Hard delete before soft delete: 40405.
    call(
        &client,
        Method::DELETE,
        url("/subjects/a?permanent=true"),
        None,
    )
    .await
    .assert_error(404, 40405);
    let r = call(&client, Method::DELETE, url("/subjects/a"), None).await;
    assert_eq!(r.json(), json!([1, 2]));
    // Twice: 40404.
    call(&client, Method::DELETE, url("/subjects/a"), None)
        .await
        .assert_error(404, 40404);
    call(&client, Method::DELETE, url("/subjects/nope"), None)
        .await
        .assert_error(404, 40401);

    assert_eq!(get(&reg, "/subjects").await.json(), json!(["b"]));
    assert_eq!(
        get(&reg, "/subjects?deleted=true").await.json(),
        json!(["a", "b"])
    );
    get(&reg, "/subjects/a/versions")
        .await
        .assert_error(404, 40401);
    get(&reg, "/subjects/a/versions/1")
        .await
        .assert_error(404, 40401);
    assert_eq!(
        get(&reg, "/subjects/a/versions?deleted=true").await.json(),
        json!([1, 2])
    );
    let v = get(&reg, "/subjects/a/versions/2?deleted=true")
        .await
        .json();
    assert_eq!(v["id"], id2);
    // Schema ids survive a soft delete.
    assert_eq!(get(&reg, &format!("/schemas/ids/{id2}")).await.status, 200);

    // Hard delete after soft delete: gone, unused ids too; ids still used elsewhere stay.
    let r = call(
        &client,
        Method::DELETE,
        url("/subjects/a?permanent=true"),
        None,
    )
    .await;
    assert_eq!(r.json(), json!([1, 2]));
    assert_eq!(
        get(&reg, "/subjects?deleted=true").await.json(),
        json!(["b"])
    );
    get(&reg, &format!("/schemas/ids/{id2}"))
        .await
        .assert_error(404, 40403);
    assert_eq!(get(&reg, &format!("/schemas/ids/{id1}")).await.status, 200);

    // Handle soft delete; re-registering continues the version numbering.
    assert_eq!(reg.soft_delete("b").unwrap(), vec![1]);
    assert!(reg.soft_delete("b").is_err());
    assert_eq!(get(&reg, "/subjects").await.json(), json!([]));
    assert_eq!(reg.register("b", "AVRO", AVRO_V1, &[]).unwrap(), (id1, 2));
    assert_eq!(get(&reg, "/subjects/b/versions").await.json(), json!([2]));
}

#[tokio::test]
async fn references() {
    let reg = start();
    let base = r#"{"type":"record","name":"Address","namespace":"t","fields":[{"name":"city","type":"string"}]}"#;
    let user = r#"{"type":"record","name":"User","namespace":"t","fields":[{"name":"addr","type":"t.Address"}]}"#;
    reg.register("address", "AVRO", base, &[]).unwrap();
    let refs = json!([{"name": "t.Address", "subject": "address", "version": 1}]);
    let r = post_schema(
        &reg,
        "user-value",
        json!({"schema": user, "references": refs}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json()["id"].as_i64().unwrap();
    let v = get(&reg, "/subjects/user-value/versions/latest")
        .await
        .json();
    assert_eq!(v["references"], refs);
    assert_eq!(
        get(&reg, &format!("/schemas/ids/{id}")).await.json()["references"],
        refs
    );
    // Missing reference subject or version: 42201.
    for bad in [
        json!([{"name": "t.Address", "subject": "address", "version": 9}]),
        json!([{"name": "t.Address", "subject": "nope", "version": 1}]),
    ] {
        post_schema(&reg, "u2", json!({"schema": user, "references": bad}))
            .await
            .assert_error(422, 42201);
    }
    assert!(reg
        .register("u3", "AVRO", user, &[("t.Address", "address", 2)])
        .is_err());
    // Without the reference the name is undefined.
    post_schema(&reg, "u4", json!({"schema": user}))
        .await
        .assert_error(422, 42201);
    let (_, v) = reg
        .register("u5", "AVRO", user, &[("t.Address", "address", 1)])
        .unwrap();
    assert_eq!(v, 1);
}

#[tokio::test]
async fn global_and_subject_config() {
    let reg = start();
    let client = Client::new();
    let url = |p: &str| format!("{}{p}", reg.url());
    assert_eq!(
        get(&reg, "/config").await.json(),
        json!({"compatibilityLevel": "BACKWARD"})
    );
    let r = call(
        &client,
        Method::PUT,
        url("/config"),
        Some(json!({"compatibility": "FULL"})),
    )
    .await;
    assert_eq!(r.json(), json!({"compatibility": "FULL"}));
    assert_eq!(
        get(&reg, "/config").await.json()["compatibilityLevel"],
        "FULL"
    );

    let m = get(&reg, "/config/s-value").await.assert_error(404, 40408);
    assert_eq!(
        m,
        "Subject 's-value' does not have subject-level compatibility configured"
    );
    assert_eq!(
        get(&reg, "/config/s-value?defaultToGlobal=true")
            .await
            .json(),
        json!({"compatibilityLevel": "FULL"})
    );
    let r = call(
        &client,
        Method::PUT,
        url("/config/s-value"),
        Some(json!({"compatibility": "NONE"})),
    )
    .await;
    assert_eq!(r.json(), json!({"compatibility": "NONE"}));
    assert_eq!(
        get(&reg, "/config/s-value").await.json(),
        json!({"compatibilityLevel": "NONE"})
    );
    assert_eq!(
        get(&reg, "/config").await.json()["compatibilityLevel"],
        "FULL"
    );
    call(
        &client,
        Method::PUT,
        url("/config"),
        Some(json!({"compatibility": "SIDEWAYS"})),
    )
    .await
    .assert_error(422, 42203);

    reg.set_compatibility(None, "forward_transitive").unwrap();
    reg.set_compatibility(Some("t-value"), "FULL_TRANSITIVE")
        .unwrap();
    assert!(reg.set_compatibility(None, "bogus").is_err());
    assert_eq!(
        get(&reg, "/config").await.json()["compatibilityLevel"],
        "FORWARD_TRANSITIVE"
    );
    assert_eq!(
        get(&reg, "/config/t-value").await.json()["compatibilityLevel"],
        "FULL_TRANSITIVE"
    );
}

#[tokio::test]
async fn global_and_subject_mode() {
    let reg = start();
    let client = Client::new();
    let url = |p: &str| format!("{}{p}", reg.url());
    assert_eq!(
        get(&reg, "/mode").await.json(),
        json!({"mode": "READWRITE"})
    );
    get(&reg, "/mode/s").await.assert_error(404, 40409);
    assert_eq!(
        get(&reg, "/mode/s?defaultToGlobal=true").await.json(),
        json!({"mode": "READWRITE"})
    );
    let r = call(
        &client,
        Method::PUT,
        url("/mode/s"),
        Some(json!({"mode": "READONLY"})),
    )
    .await;
    assert_eq!(r.json(), json!({"mode": "READONLY"}));
    assert_eq!(
        get(&reg, "/mode/s").await.json(),
        json!({"mode": "READONLY"})
    );
    post_schema(&reg, "s", json!({"schema": AVRO_V1}))
        .await
        .assert_error(422, 42205);
    let r = call(
        &client,
        Method::PUT,
        url("/mode"),
        Some(json!({"mode": "IMPORT"})),
    )
    .await;
    assert_eq!(r.json(), json!({"mode": "IMPORT"}));
    call(
        &client,
        Method::PUT,
        url("/mode"),
        Some(json!({"mode": "WRONG"})),
    )
    .await
    .assert_error(422, 42204);
    reg.set_mode(None, "READWRITE").unwrap();
    reg.set_mode(Some("s"), "READWRITE").unwrap();
    assert_eq!(get(&reg, "/mode").await.json()["mode"], "READWRITE");
    assert_eq!(
        post_schema(&reg, "s", json!({"schema": AVRO_V1}))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn basic_and_bearer_auth() {
    let reg = FakeRegistry::start(FakeRegistryOpts {
        basic_auth: Some(("alice".into(), "s3cret".into())),
        bearer_token: Some("tok-123".into()),
        ..Default::default()
    })
    .unwrap();
    let url = format!("{}/subjects", reg.url());
    let client = Client::new();

    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], 401);

    let r = client
        .get(&url)
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(r.status(), 401);

    let r = client
        .get(&url)
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(&url)
        .bearer_auth("tok-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(reg.request_count(), 5);
}

fn tls_client(
    ca: &std::path::Path,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let mut b = Client::builder().tls_certs_only([ca]);
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend(std::fs::read(key).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

#[tokio::test]
async fn https_and_mtls() {
    let pki = TestPki::generate().unwrap();
    let reg = FakeRegistry::start(FakeRegistryOpts {
        tls: Some((pki.server_cert.clone(), pki.server_key.clone())),
        ..Default::default()
    })
    .unwrap();
    assert!(reg.url().starts_with("https://127.0.0.1:"));
    reg.register("s", "AVRO", AVRO_V1, &[]).unwrap();
    let url = format!("{}/subjects", reg.url());
    let r = tls_client(&pki.ca_cert, None)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!(["s"]));
    // A client trusting another CA refuses the server; plain HTTP gets nothing useful.
    assert!(tls_client(&pki.wrong_ca_cert, None)
        .get(&url)
        .send()
        .await
        .is_err());
    // Plain HTTP to the HTTPS port gets no successful answer.
    let plain = Client::new()
        .get(url.replace("https://", "http://"))
        .send()
        .await;
    assert!(plain.map_or(true, |r| !r.status().is_success()));

    let mtls = FakeRegistry::start(FakeRegistryOpts {
        tls: Some((pki.server_cert.clone(), pki.server_key.clone())),
        client_ca: Some(pki.ca_cert.clone()),
        ..Default::default()
    })
    .unwrap();
    let url = format!("{}/subjects", mtls.url());
    assert!(tls_client(&pki.ca_cert, None)
        .get(&url)
        .send()
        .await
        .is_err());
    assert!(tls_client(
        &pki.ca_cert,
        Some((&pki.wrong_client_cert, &pki.wrong_client_key))
    )
    .get(&url)
    .send()
    .await
    .is_err());
    let r = tls_client(&pki.ca_cert, Some((&pki.client_cert, &pki.client_key)))
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    assert!(FakeRegistry::start(FakeRegistryOpts {
        client_ca: Some(pki.ca_cert.clone()),
        ..Default::default()
    })
    .is_err());
}

#[tokio::test]
async fn injected_failures_and_retry_after() {
    let reg = start();
    reg.register("s", "AVRO", AVRO_V1, &[]).unwrap();
    reg.fail("/subjects", 429, 2, Some(3));
    for _ in 0..2 {
        let r = get(&reg, "/subjects").await;
        r.assert_error(429, 42901);
        assert_eq!(r.headers["retry-after"], "3");
    }
    assert_eq!(get(&reg, "/subjects").await.status, 200);
    // Prefix match only.
    reg.fail("/schemas/", 500, 1, None);
    assert_eq!(get(&reg, "/subjects/s/versions").await.status, 200);
    let r = get(&reg, "/schemas/ids/1").await;
    r.assert_error(500, 50001);
    assert!(r.headers.get("retry-after").is_none());
    assert_eq!(get(&reg, "/schemas/ids/1").await.status, 200);
    reg.fail("/", 403, 1, None);
    get(&reg, "/config").await.assert_error(403, 40301);
    assert_eq!(get(&reg, "/config").await.status, 200);
}

#[tokio::test]
async fn hostile_raw_answers() {
    let reg = start();
    reg.register("s", "AVRO", AVRO_V1, &[]).unwrap();
    // Any status, headers and body, for the next `times` requests of a path prefix.
    reg.answer("/subjects", RawAnswer::ok("not json"), Some(1));
    let r = get(&reg, "/subjects").await;
    assert_eq!((r.status.as_u16(), r.text.as_str()), (200, "not json"));
    assert_eq!(r.headers["content-type"], SR_CONTENT_TYPE);
    assert_eq!(get(&reg, "/subjects").await.json(), json!(["s"]));
    // A redirect (reqwest's default client would follow it; this one does not).
    reg.answer(
        "/subjects/s/",
        RawAnswer::redirect("http://127.0.0.1:9/steal"),
        Some(1),
    );
    let no_redirects = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(format!("{}/subjects/s/versions/1", reg.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "http://127.0.0.1:9/steal");
    // A large body, streamed with its length announced (never built in memory).
    let len = 10 * 1024 * 1024;
    reg.answer(
        "/config",
        RawAnswer {
            status: 200,
            headers: vec![("x-hostile".into(), "yes".into())],
            body: RawBody::Padded {
                prefix: br#"{"compatibilityLevel":""#.to_vec(),
                fill: b'A',
                len,
                suffix: br#""}"#.to_vec(),
                announce_length: true,
            },
        },
        None,
    );
    for _ in 0..2 {
        let r = Client::new()
            .get(format!("{}/config", reg.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-hostile"], "yes");
        assert_eq!(r.content_length(), Some(len + 2));
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        let level = v["compatibilityLevel"].as_str().unwrap();
        assert_eq!(level.len() as u64, len - 23);
        assert!(level.bytes().all(|b| b == b'A'));
    }
    // An endless chunked body: the client decides when to stop.
    reg.answer(
        "/mode",
        RawAnswer {
            status: 200,
            headers: Vec::new(),
            body: RawBody::Endless {
                prefix: b"[".to_vec(),
                fill: b' ',
            },
        },
        Some(1),
    );
    let mut r = Client::new()
        .get(format!("{}/mode", reg.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.content_length(), None);
    let mut read = 0usize;
    while read < 20 * 1024 * 1024 {
        read += r.chunk().await.unwrap().expect("never ends").len();
    }
    drop(r);
    // The registry still serves, and logged every request.
    assert_eq!(
        get(&reg, "/mode").await.json(),
        json!({"mode": "READWRITE"})
    );
    assert_eq!(reg.request_count(), 7);
}

#[tokio::test]
async fn unchecked_registration_serves_what_validation_refuses() {
    let reg = start();
    // Validation refuses references to versions that do not exist...
    let refs = [("y.avsc", "y", 1)];
    assert!(reg.register("x", "AVRO", AVRO_V1, &refs).is_err());
    // ...so only an unchecked registry can serve a cycle, or a schema it would not parse.
    assert_eq!(reg.register_unchecked("x", "AVRO", AVRO_V1, &refs), (1, 1));
    assert_eq!(
        reg.register_unchecked("y", "AVRO", "{{{ not avro", &[("x.avsc", "x", 1)]),
        (2, 1)
    );
    let x = get(&reg, "/subjects/x/versions/1").await.json();
    assert_eq!(
        x["references"],
        json!([{"name": "y.avsc", "subject": "y", "version": 1}])
    );
    let y = get(&reg, "/subjects/y/versions/latest").await.json();
    assert_eq!(y["schema"], "{{{ not avro");
    assert_eq!(y["references"][0]["subject"], "x");
    assert_eq!(get(&reg, "/subjects").await.json(), json!(["x", "y"]));
}

#[tokio::test]
async fn request_log_latency_and_stop() {
    let mut reg = FakeRegistry::start(FakeRegistryOpts {
        latency: Duration::from_millis(150),
        ..Default::default()
    })
    .unwrap();
    let client = Client::new();
    let t = Instant::now();
    let r = client
        .get(format!("{}/subjects?deleted=true", reg.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    call(
        &client,
        Method::PUT,
        format!("{}/mode", reg.url()),
        Some(json!({"mode": "READONLY"})),
    )
    .await;
    assert_eq!(
        reg.requests(),
        vec![
            ("GET".to_string(), "/subjects?deleted=true".to_string()),
            ("PUT".to_string(), "/mode".to_string()),
        ]
    );
    assert_eq!(reg.request_count(), 2);
    reg.clear_requests();
    assert_eq!(reg.request_count(), 0);

    let url = format!("{}/subjects", reg.url());
    reg.stop();
    // Even the pooled keep-alive connection is gone: the request fails.
    let err = client.get(&url).send().await.unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    let err = Client::new().get(&url).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}

#[test]
fn sync_use_and_drop() {
    let port;
    {
        let reg = start();
        port = reg.port();
        reg.register("x", "avro", AVRO_V1, &[]).unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn benchmark_binary_seeds_and_serves() {
    use std::io::BufRead;
    let port = krawl_tests::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_krawl-fake-registry"))
        .args([
            "--port",
            &port.to_string(),
            "--subjects",
            "3",
            "--versions",
            "4",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), format!("listening on http://127.0.0.1:{port}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async {
        let base = format!("http://127.0.0.1:{port}");
        let subjects: Value = reqwest::get(format!("{base}/subjects"))
            .await?
            .json()
            .await?;
        let versions: Value = reqwest::get(format!("{base}/subjects/topic-2-value/versions"))
            .await?
            .json()
            .await?;
        let latest: Value = reqwest::get(format!("{base}/subjects/topic-2-value/versions/latest"))
            .await?
            .json()
            .await?;
        Ok::<_, reqwest::Error>((subjects, versions, latest))
    });
    let _ = child.kill();
    let _ = child.wait();
    let (subjects, versions, latest) = result.unwrap();
    assert_eq!(
        subjects,
        json!(["topic-0-value", "topic-1-value", "topic-2-value"])
    );
    assert_eq!(versions, json!([1, 2, 3, 4]));
    let schema: Value = serde_json::from_str(latest["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema["fields"].as_array().unwrap().len(), 6);
    assert_eq!(schema["fields"][5]["type"], json!(["null", "string"]));
}
