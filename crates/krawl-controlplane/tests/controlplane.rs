//! End-to-end tests of the reference control plane: a real server on 127.0.0.1:0, real HTTP.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use krawl_controlplane::admin::AdminClient;
use krawl_controlplane::{start, BootstrapToken, RateLimit, TlsFiles, VerifyHook};
use krawl_protocol::chunk::{self, Encoding};
use krawl_protocol::{paths, ChunkAck, ChunkList, JobHeartbeatResponse, JobState};
use reqwest::StatusCode;
use serde_json::json;

fn extract_job() -> serde_json::Value {
    json!({"kind": "kafka.extract", "spec": {"kafka": {"bootstrap_servers": ["b:9092"]}}})
}

#[tokio::test]
async fn register_and_auth_failures_name_the_expected_token() {
    let cp = start_cp(|_| {}).await;
    let body = json!({"name": "a", "version": "t", "capabilities": [], "max_concurrent_jobs": 1});

    // Registration: missing token, the admin token instead of the bootstrap token.
    let resp = cp
        .http
        .post(cp.url(paths::REGISTER))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, code, msg) = error_of(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert!(msg.contains("bootstrap"), "{msg}");
    let resp = cp
        .http
        .post(cp.url(paths::REGISTER))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, _, msg) = error_of(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(msg.contains("bootstrap") && !msg.contains(ADMIN), "{msg}");

    let a = cp.register("a", json!({})).await;
    let b = cp.register("b", json!({})).await;

    // Agent endpoints: another agent's token, no token, an unknown agent.
    let resp = cp
        .poll_raw(
            &Agent {
                id: a.id.clone(),
                token: b.token.clone(),
            },
            &[],
        )
        .await;
    let (status, _, msg) = error_of(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        msg.contains(&a.id) && msg.contains("agent token") && !msg.contains(&b.token),
        "{msg}"
    );
    let resp = cp
        .http
        .post(cp.url(&paths::agent_heartbeat(&a.id)))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, StatusCode::UNAUTHORIZED);
    let resp = cp
        .poll_raw(
            &Agent {
                id: "agent-nope".into(),
                token: a.token.clone(),
            },
            &[],
        )
        .await;
    assert_eq!(error_of(resp).await.0, StatusCode::UNAUTHORIZED);
    // A token no agent holds (the control plane lost the agent): 404, register again.
    let resp = cp
        .poll_raw(
            &Agent {
                id: a.id.clone(),
                token: "f".repeat(64),
            },
            &[],
        )
        .await;
    let (status, code, msg) = error_of(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(msg.contains("register again"), "{msg}");

    // Admin endpoints: none, an agent token.
    let resp = cp.http.get(cp.url(paths::JOBS)).send().await.unwrap();
    let (status, _, msg) = error_of(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(msg.contains("admin token"), "{msg}");
    let resp = cp
        .http
        .get(cp.url(paths::AGENTS))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, StatusCode::UNAUTHORIZED);

    // Attempt endpoints: only the agent holding the attempt.
    let job = cp.submit(extract_job()).await;
    let lease = cp.poll(&a).await.unwrap();
    assert_eq!(lease.job_id, job.id);
    let resp = cp.job_heartbeat(&b, &lease.job_id, lease.attempt).await;
    let (status, _, msg) = error_of(resp).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!msg.contains(&a.id), "{msg}");
    let resp = cp.job_heartbeat(&a, &lease.job_id, lease.attempt).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = cp.job_heartbeat(&a, "job-unknown", 1).await;
    assert_eq!(error_of(resp).await.0, StatusCode::NOT_FOUND);

    // The admin sees both agents.
    let admin = AdminClient::new(&cp.base, ADMIN, None).unwrap();
    let agents = admin.agents().await.unwrap();
    assert_eq!(agents.agents.len(), 2);
    cp.server.unwrap().shutdown().await;
}

/// Every attempt endpoint, called with this bearer (or none): status and body.
async fn attempt_calls(
    cp: &Cp,
    bearer: Option<&str>,
    job: &str,
    attempt: u32,
) -> Vec<(String, StatusCode, String)> {
    let data = ndjson(1, "x");
    let requests = [
        (
            "job heartbeat",
            cp.http
                .post(cp.url(&paths::job_heartbeat(job, attempt)))
                .json(&json!({})),
        ),
        (
            "chunk put",
            cp.http
                .put(cp.url(&paths::chunk(job, attempt, 0)))
                .header(reqwest::header::CONTENT_ENCODING, "identity")
                .header(
                    krawl_protocol::CHUNK_SHA256_HEADER,
                    chunk::sha256_hex(&data),
                )
                .header(krawl_protocol::CHUNK_RECORDS_HEADER, "1")
                .body(data.clone()),
        ),
        (
            "chunk list",
            cp.http.get(cp.url(&paths::chunks(job, attempt))),
        ),
        (
            "complete",
            cp.http.post(cp.url(&paths::complete(job, attempt))).json(
                &json!({"status": "failed", "chunks": 0, "records": 0, "sha256": "",
                               "error": {"class": "timeout", "message": "x"}}),
            ),
        ),
    ];
    let mut out = Vec::new();
    for (what, req) in requests {
        let req = match bearer {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.unwrap();
        out.push((what.to_string(), resp.status(), resp.text().await.unwrap()));
    }
    out
}

#[tokio::test]
async fn attempt_endpoints_authenticate_first_and_name_no_agent() {
    let cp = start_cp(|_| {}).await;
    let a = cp.register("a", json!({})).await;
    let b = cp.register("b", json!({})).await;
    let job = cp.submit(extract_job()).await;
    let lease = cp.poll(&a).await.unwrap();
    let unknown_token = "0123456789abcdef".repeat(4);

    // No token, or a token no agent holds: 401, whether the attempt exists or not, and the
    // answer names no agent.
    for (job_id, attempt) in [(job.id.as_str(), lease.attempt), ("job-unknown", 1)] {
        for bearer in [None, Some(unknown_token.as_str()), Some(BOOT), Some(ADMIN)] {
            for (what, status, body) in attempt_calls(&cp, bearer, job_id, attempt).await {
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{what} {job_id} with {bearer:?}: {body}"
                );
                assert!(
                    !body.contains("agent-") && !body.contains(&a.id),
                    "{what}: a 401 names an agent: {body}"
                );
            }
        }
    }

    // Another agent's attempt and attempts that do not exist: one and the same 404.
    let theirs = attempt_calls(&cp, Some(&b.token), &job.id, lease.attempt).await;
    let missing_job = attempt_calls(&cp, Some(&b.token), "job-unknown", 1).await;
    let missing_attempt = attempt_calls(&cp, Some(&a.token), &job.id, 9).await;
    for ((t, m), n) in theirs.iter().zip(&missing_job).zip(&missing_attempt) {
        assert_eq!(t.1, StatusCode::NOT_FOUND, "{}: {}", t.0, t.2);
        assert_eq!(t, m, "another agent's attempt and a missing job differ");
        assert_eq!(t, n, "another agent's attempt and a missing attempt differ");
        assert!(!t.2.contains(&a.id) && !t.2.contains("agent-"), "{}", t.2);
    }

    // Nothing of the above touched the attempt: its holder heartbeats, uploads and completes.
    let resp = cp.job_heartbeat(&a, &lease.job_id, lease.attempt).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let part = ndjson(2, "mine");
    assert_eq!(
        cp.put_chunk(&a, &lease, 0, &part).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        cp.complete(&a, &lease, succeeded(&[&part])).await.status(),
        StatusCode::OK
    );
    assert_eq!(cp.job(&job.id).await.state, JobState::Succeeded);
    cp.server.unwrap().shutdown().await;
}

#[tokio::test]
async fn long_poll_answers_204_then_200_when_a_job_arrives_mid_poll() {
    let cp = start_cp(|c| c.poll_wait = Duration::from_secs(1)).await;
    let a = cp.register("a", json!({})).await;
    let t = Instant::now();
    assert!(cp.poll(&a).await.is_none());
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    cp.server.unwrap().shutdown().await;

    let cp = start_cp(|c| c.poll_wait = Duration::from_secs(10)).await;
    let a = cp.register("a", json!({})).await;
    let t = Instant::now();
    let poller = {
        let (http, url, token) = (
            cp.http.clone(),
            cp.url(&paths::poll(&a.id)),
            a.token.clone(),
        );
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({"free_slots": 1}))
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = cp.submit(extract_job()).await;
    let resp = poller.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let lease: krawl_protocol::JobLease = resp.json().await.unwrap();
    assert_eq!((lease.job_id.as_str(), lease.attempt), (job.id.as_str(), 1));
    assert_eq!(lease.spec["kafka"]["bootstrap_servers"][0], "b:9092");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "woken, not timed out: {:?}",
        t.elapsed()
    );
    assert_eq!(cp.job(&job.id).await.state, JobState::Running);
    cp.server.unwrap().shutdown().await;
}

#[tokio::test]
async fn a_job_is_leased_once_to_concurrent_pollers_and_routed_by_labels_and_kinds() {
    let cp = start_cp(|c| c.poll_wait = Duration::from_secs(1)).await;
    let agents = [
        cp.register("a", json!({})).await,
        cp.register("b", json!({})).await,
    ];
    let job = cp.submit(extract_job()).await;
    let mut polls = Vec::new();
    for i in 0..8 {
        let agent = agents[i % 2].clone();
        let (http, url) = (cp.http.clone(), cp.url(&paths::poll(&agent.id)));
        polls.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(agent.token)
                .json(&json!({"free_slots": 1}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut leased = 0;
    for p in polls {
        if p.await.unwrap() == StatusCode::OK {
            leased += 1;
        }
    }
    assert_eq!(leased, 1, "exactly one poll gets the job");
    let view = cp.job(&job.id).await;
    assert_eq!(view.attempts.len(), 1);

    // Labels: the job needs env=prod; kinds: the poll restricts kinds.
    let plain = cp.register("plain", json!({})).await;
    let prod = cp
        .register_with(PROD, "prod", json!({"env": "prod", "zone": "a"}))
        .await;
    let job = cp
        .submit(json!({"kind": "kafka.preflight", "spec": {"kafka": {"bootstrap_servers": ["b:9092"]}}, "labels": {"env": "prod"}}))
        .await;
    assert_eq!(job.labels.get("env").map(String::as_str), Some("prod"));
    assert!(cp.poll(&plain).await.is_none());
    assert_eq!(
        cp.poll_raw(&prod, &["kafka.extract"]).await.status(),
        StatusCode::NO_CONTENT
    );
    let resp = cp
        .poll_raw(&prod, &["kafka.extract", "kafka.preflight"])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let lease: krawl_protocol::JobLease = resp.json().await.unwrap();
    assert_eq!(lease.job_id, job.id);
    cp.server.unwrap().shutdown().await;
}

#[tokio::test]
async fn bootstrap_tokens_bind_labels_so_a_dev_token_never_gets_prod_jobs() {
    let cp = start_cp(|_| {}).await;

    // The dev token cannot claim env=prod, nor a label key it does not grant.
    let resp = cp.register_raw(DEV, "rogue", json!({"env": "prod"})).await;
    let (status, code, msg) = error_of(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert!(
        msg.contains("token `dev`")
            && msg.contains("label `env`")
            && msg.contains("--bootstrap-tokens")
            && !msg.contains(DEV),
        "{msg}"
    );
    let resp = cp
        .register_raw(DEV, "rogue", json!({"env": "dev", "zone": "eu"}))
        .await;
    let (status, _, msg) = error_of(resp).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        msg.contains("label `zone`") && !msg.contains("`env`"),
        "{msg}"
    );

    // The single token grants no labels: the refusal says what to write instead.
    let resp = cp
        .register_raw(BOOT, "legacy", json!({"env": "prod"}))
        .await;
    let (status, _, msg) = error_of(resp).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        msg.contains("--bootstrap-token-file / KRAWL_CP_BOOTSTRAP_TOKEN")
            && msg.contains("grants no labels")
            && msg.contains("[[token]]\nname = \"prod\"\ntoken_file = \"/etc/krawl-cp/prod.token\"\nlabels = { env = \"prod\" }")
            && msg.contains("--bootstrap-tokens FILE")
            && !msg.contains(BOOT),
        "{msg}"
    );
    let agents = AdminClient::new(&cp.base, ADMIN, None)
        .unwrap()
        .agents()
        .await
        .unwrap();
    assert!(
        agents.agents.is_empty(),
        "refused agents are not registered"
    );

    // Within their grants: accepted ("*" is any value).
    let dev = cp
        .register_with(DEV, "dev", json!({"env": "dev", "team": "payments"}))
        .await;
    let prod = cp
        .register_with(PROD, "prod", json!({"env": "prod", "zone": "eu"}))
        .await;
    let plain = cp.register("plain", json!({})).await;

    // A heartbeat carrying labels changes nothing: labels are set at registration only.
    let resp = cp
        .http
        .post(cp.url(&paths::agent_heartbeat(&dev.id)))
        .bearer_auth(&dev.token)
        .json(&json!({"running_jobs": 0, "labels": {"env": "prod"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // A prod job: the dev and plain agents never lease it; the prod agent does, and only it
    // can heartbeat or complete it.
    let job = cp
        .submit(json!({"kind": "kafka.extract", "spec": {"kafka": {"bootstrap_servers": ["b:9092"]}}, "labels": {"env": "prod"}}))
        .await;
    for _ in 0..2 {
        assert!(cp.poll(&dev).await.is_none());
        assert!(cp.poll(&plain).await.is_none());
    }
    let lease = cp.poll(&prod).await.unwrap();
    assert_eq!(lease.job_id, job.id);
    let resp = cp.job_heartbeat(&dev, &lease.job_id, lease.attempt).await;
    assert_eq!(error_of(resp).await.0, StatusCode::NOT_FOUND);
    let resp = cp.complete(&dev, &lease, succeeded(&[])).await;
    assert_eq!(error_of(resp).await.0, StatusCode::NOT_FOUND);
    assert_eq!(cp.job(&job.id).await.state, JobState::Running);

    // The admin API shows the token behind each agent, and the labels it holds.
    let agents = AdminClient::new(&cp.base, ADMIN, None)
        .unwrap()
        .agents()
        .await
        .unwrap();
    let shown: Vec<(String, Option<String>, Option<String>)> = agents
        .agents
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                a.bootstrap_token.clone(),
                a.labels.get("env").cloned(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("dev".into(), Some("dev".into()), Some("dev".into())),
            ("prod".into(), Some("prod".into()), Some("prod".into())),
            (
                "plain".into(),
                Some(krawl_controlplane::LEGACY_TOKEN_NAME.into()),
                None
            ),
        ]
    );
    cp.server.unwrap().shutdown().await;
}

#[tokio::test]
async fn a_restart_revokes_agents_whose_token_no_longer_grants_their_labels() {
    let cp = start_cp(|_| {}).await;
    let prod = cp.register_with(PROD, "prod", json!({"env": "prod"})).await;
    let dev = cp.register_with(DEV, "dev", json!({"env": "dev"})).await;
    let plain = cp.register("plain", json!({})).await;
    let kept = cp.register_with(DEV, "kept", json!({"team": "a"})).await;

    // The prod token is removed; the dev token now grants team only.
    let cp = cp
        .restart(|c| {
            c.bootstrap_tokens
                .retain(|t| t.name != "prod" && t.name != "dev");
            c.bootstrap_tokens
                .push(BootstrapToken::scoped("dev", DEV, [("team", "*")]));
        })
        .await;
    for gone in [&prod, &dev] {
        let (status, _, msg) = error_of(cp.poll_raw(gone, &[]).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{msg}");
        assert!(msg.contains("register again"), "{msg}");
    }
    assert!(cp.poll(&plain).await.is_none());
    assert!(cp.poll(&kept).await.is_none());
    let names: Vec<String> = AdminClient::new(&cp.base, ADMIN, None)
        .unwrap()
        .agents()
        .await
        .unwrap()
        .agents
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["plain", "kept"]);
    // Registering again goes by today's grants.
    let resp = cp.register_raw(PROD, "prod", json!({"env": "prod"})).await;
    assert_eq!(error_of(resp).await.0, StatusCode::UNAUTHORIZED);
    let resp = cp.register_raw(DEV, "dev", json!({"env": "dev"})).await;
    assert_eq!(error_of(resp).await.0, StatusCode::FORBIDDEN);
    cp.server.unwrap().shutdown().await;
}

#[tokio::test]
async fn chunks_dedup_conflict_and_refuse_bad_sha_or_record_counts() {
    let cp = start_cp(|_| {}).await;
    let a = cp.register("a", json!({})).await;
    cp.submit(extract_job()).await;
    let lease = cp.poll(&a).await.unwrap();
    let data = ndjson(5, "x");

    let resp = cp.put_chunk(&a, &lease, 0, &data).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<ChunkAck>().await.unwrap(),
        ChunkAck {
            seq: 0,
            duplicate: false
        }
    );
    // Same body again (another encoding even): a duplicate, stored once.
    let resp = cp.put_chunk_enc(&a, &lease, 0, &data, Encoding::Gzip).await;
    assert_eq!(
        resp.json::<ChunkAck>().await.unwrap(),
        ChunkAck {
            seq: 0,
            duplicate: true
        }
    );
    // A different body for seq 0: conflict.
    let resp = cp.put_chunk(&a, &lease, 0, &ndjson(5, "y")).await;
    let (status, code, msg) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "conflict"));
    assert!(msg.contains("chunk 0"), "{msg}");

    // sha256 header does not match the body.
    let body = chunk::encode(&data, Encoding::Zstd).unwrap();
    let resp = cp
        .put_chunk_raw(
            &a,
            &lease.job_id,
            lease.attempt,
            1,
            body.clone(),
            Encoding::Zstd,
            &"0".repeat(64),
            5,
        )
        .await;
    let (status, code, msg) = error_of(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    assert!(msg.contains("sha256 mismatch"), "{msg}");
    // Records header does not match the lines.
    let resp = cp
        .put_chunk_raw(
            &a,
            &lease.job_id,
            lease.attempt,
            1,
            body.clone(),
            Encoding::Zstd,
            &chunk::sha256_hex(&data),
            4,
        )
        .await;
    let (status, _, msg) = error_of(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        msg.contains("says 4 records") && msg.contains("5 lines"),
        "{msg}"
    );
    // Not zstd at all; an unknown encoding.
    let resp = cp
        .put_chunk_raw(
            &a,
            &lease.job_id,
            lease.attempt,
            1,
            b"garbage".to_vec(),
            Encoding::Zstd,
            &chunk::sha256_hex(&data),
            5,
        )
        .await;
    assert_eq!(error_of(resp).await.0, StatusCode::BAD_REQUEST);

    let list: ChunkList = cp
        .http
        .get(cp.url(&paths::chunks(&lease.job_id, lease.attempt)))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.chunks.len(), 1);
    assert_eq!((list.chunks[0].seq, list.chunks[0].records), (0, 5));
    assert_eq!(list.chunks[0].sha256, chunk::sha256_hex(&data));
    cp.server.unwrap().shutdown().await;
}

#[tokio::test]
async fn complete_verifies_chunks_records_and_stream_sha_then_results_equal_the_upload() {
    let cp = start_cp(|_| {}).await;
    let a = cp.register("a", json!({})).await;
    let job = cp
        .submit(json!({"kind": "kafka.extract", "spec": {"kafka": {"bootstrap_servers": ["b:9092"]}}, "max_attempts": 5}))
        .await;
    let parts = [ndjson(3, "a"), ndjson(1, "b"), ndjson(2, "c")];
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();

    // Attempt 1: chunk 1 never uploaded.
    let lease = cp.poll(&a).await.unwrap();
    cp.put_chunk(&a, &lease, 0, &parts[0]).await;
    cp.put_chunk(&a, &lease, 2, &parts[2]).await;
    let (status, code, msg) = error_of(cp.complete(&a, &lease, succeeded(&refs)).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    assert!(
        msg.contains("chunk(s) 1 of attempt 1 were never uploaded") && msg.contains("queued"),
        "{msg}"
    );
    // The attempt is over: its lease is lost.
    let (status, code, _) = error_of(cp.job_heartbeat(&a, &job.id, 1).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "lease_lost")
    );

    // Attempt 2: wrong record total; also an extra chunk 3.
    let lease = cp.poll(&a).await.unwrap();
    assert_eq!(lease.attempt, 2);
    for (i, p) in parts.iter().enumerate() {
        cp.put_chunk(&a, &lease, i as u32, p).await;
    }
    let mut claim = succeeded(&refs);
    claim["records"] = json!(7);
    let (status, _, msg) = error_of(cp.complete(&a, &lease, claim).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        msg.contains("claims 7 records") && msg.contains("hold 6"),
        "{msg}"
    );

    // Attempt 3: wrong stream sha (chunks hashed out of order).
    let lease = cp.poll(&a).await.unwrap();
    for (i, p) in parts.iter().enumerate() {
        cp.put_chunk(&a, &lease, i as u32, p).await;
    }
    let claim = json!({"status": "succeeded", "chunks": 3, "records": 6,
                       "sha256": chunk::sha256_hex(&[parts[1].clone(), parts[0].clone(), parts[2].clone()].concat())});
    let (status, _, msg) = error_of(cp.complete(&a, &lease, claim).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        msg.contains("stream sha256") && msg.contains("hash to"),
        "{msg}"
    );

    // Attempt 4: an extra chunk past the claimed count.
    let lease = cp.poll(&a).await.unwrap();
    for (i, p) in parts.iter().enumerate() {
        cp.put_chunk(&a, &lease, i as u32, p).await;
    }
    cp.put_chunk(&a, &lease, 3, &ndjson(1, "extra")).await;
    let (status, _, msg) = error_of(cp.complete(&a, &lease, succeeded(&refs)).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(msg.contains("chunk(s) 3 were also uploaded"), "{msg}");

    // Attempt 5: right, with every encoding.
    let results_before = cp.results(&job.id).await;
    let (status, code, msg) = error_of(results_before).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "conflict"));
    assert!(msg.contains("queued"), "{msg}");
    let lease = cp.poll(&a).await.unwrap();
    assert_eq!(lease.attempt, 5);
    for (i, (p, enc)) in parts
        .iter()
        .zip([Encoding::Zstd, Encoding::Gzip, Encoding::Identity])
        .enumerate()
    {
        assert_eq!(
            cp.put_chunk_enc(&a, &lease, i as u32, p, enc)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let resp = cp.complete(&a, &lease, succeeded(&refs)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["state"],
        "succeeded"
    );

    let view = cp.job(&job.id).await;
    assert_eq!(view.state, JobState::Succeeded);
    let result = view.result.unwrap();
    assert_eq!((result.attempt, result.chunks, result.records), (5, 3, 6));
    assert_eq!(result.sha256, chunk::sha256_hex(&parts.concat()));
    assert_eq!(
        view.attempts.iter().filter(|a| a.state == "failed").count(),
        4
    );
    assert_eq!(view.attempts[0].error.as_ref().unwrap().class, "output");

    let resp = cp.results(&job.id).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), parts.concat());
    cp.server.unwrap().shutdown().await;
}

/// Pauses every completion's stream verification after its first chunk until the test lets
/// it go on: the verification is then midway, with the store's lock not held.
struct Gate {
    paused: std::sync::Mutex<std::sync::mpsc::Receiver<u32>>,
    resume: std::sync::mpsc::Sender<()>,
}

impl Gate {
    fn hook() -> (Gate, VerifyHook) {
        let (paused_tx, paused_rx) = std::sync::mpsc::channel();
        let (resume_tx, resume_rx) = std::sync::mpsc::channel::<()>();
        let resume_rx = std::sync::Mutex::new(resume_rx);
        let hook = VerifyHook::new(move |_job, _attempt, seq| {
            if seq == 0 {
                let _ = paused_tx.send(seq);
                let _ = resume_rx.lock().unwrap().recv();
            }
        });
        (
            Gate {
                paused: std::sync::Mutex::new(paused_rx),
                resume: resume_tx,
            },
            hook,
        )
    }

    /// Waits until a verification is paused after chunk 0.
    async fn wait_paused(self: &std::sync::Arc<Self>) {
        let gate = std::sync::Arc::clone(self);
        let seq = tokio::task::spawn_blocking(move || gate.paused.lock().unwrap().recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seq, 0);
    }

    fn resume(&self) {
        self.resume.send(()).unwrap();
    }
}

/// Awaits a request that must not wait for the paused verification. With the lock held by the
/// verification it would never complete: the timeout only turns that deadlock into a failure.
async fn served<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| {
            panic!("{what} waited for the paused verification: it holds the store's lock")
        })
}

/// The stream hash is fed as chunks arrive, in order even when uploads overtake each other: a
/// completion then hashes nothing again, and a wrong claim is still refused. Without the running
/// hash (a restarted control plane, or `running_hashes = 0`) the completion hashes every chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_hashes_only_what_the_uploads_did_not_feed() {
    let mut sizes = Vec::new();
    for (running_hashes, order, wrong_claim, hashed_at_completion) in [
        (1024, [0u32, 1, 2], false, 0usize),
        (1024, [2, 0, 1], false, 0),
        (1024, [1, 2, 0], true, 0),
        (0, [0, 1, 2], false, 3),
    ] {
        let hashed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&hashed);
        let hook = VerifyHook::new(move |_, _, _| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let cp = start_cp(|c| {
            c.verify_hook = Some(hook);
            c.running_hashes = running_hashes;
        })
        .await;
        let a = cp.register("a", json!({})).await;
        let job = cp.submit(extract_job()).await;
        let lease = cp.poll(&a).await.unwrap();
        let parts = [ndjson(3, "p0"), ndjson(4, "p1"), ndjson(5, "p2")];
        for seq in order {
            let resp = cp.put_chunk(&a, &lease, seq, &parts[seq as usize]).await;
            assert_eq!(resp.status(), StatusCode::OK);
        }
        let case = format!("running_hashes {running_hashes}, uploads {order:?}");
        let mut refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        if wrong_claim {
            refs.swap(0, 1);
        }
        let resp = cp
            .http
            .post(cp.url(&paths::complete(&lease.job_id, lease.attempt)))
            .bearer_auth(&a.token)
            .json(&succeeded(&refs))
            .send()
            .await
            .unwrap();
        if wrong_claim {
            let (status, _, msg) = error_of(resp).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
            assert!(msg.contains("claims stream sha256"), "{case}: {msg}");
        } else {
            assert_eq!(resp.status(), StatusCode::OK, "{case}");
            let view = cp.job(&job.id).await;
            assert_eq!(view.state, JobState::Succeeded, "{case}");
            let result = view.result.unwrap();
            assert_eq!(result.records, 12, "{case}");
            assert_eq!(result.sha256, succeeded(&refs)["sha256"], "{case}");
            let stored = cp.results(&job.id).await.bytes().await.unwrap().to_vec();
            assert_eq!(stored, parts.concat(), "{case}");
            sizes.push(result.bytes);
        }
        assert_eq!(
            hashed.load(std::sync::atomic::Ordering::SeqCst),
            hashed_at_completion,
            "{case}: chunks hashed at completion"
        );
        cp.server.unwrap().shutdown().await;
    }
    // The stored size is the same whether it was summed from the chunks read at completion or
    // from the database.
    assert!(
        sizes[0] > 0 && sizes.iter().all(|b| *b == sizes[0]),
        "{sizes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_verifies_the_stream_outside_the_store_lock() {
    let (gate, hook) = Gate::hook();
    let gate = std::sync::Arc::new(gate);
    let cp = start_cp(|c| {
        c.verify_hook = Some(hook);
        // Every chunk is then hashed at completion, where the gate pauses it.
        c.running_hashes = 0;
    })
    .await;
    let a = cp.register("a", json!({})).await;
    let b = cp.register("b", json!({})).await;
    let big = cp.submit(extract_job()).await;
    let lease = cp.poll(&a).await.unwrap();
    let other = cp.submit(extract_job()).await;
    let other_lease = cp.poll(&b).await.unwrap();
    assert_eq!(other_lease.job_id, other.id);
    let parts = [ndjson(3, "p0"), ndjson(4, "p1"), ndjson(5, "p2")];
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(
            cp.put_chunk(&a, &lease, i as u32, p).await.status(),
            StatusCode::OK
        );
    }
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();

    // Attempt 1 completes; its verification stops after chunk 0 of 3.
    let completing = {
        let (http, url, token, body) = (
            cp.http.clone(),
            cp.url(&paths::complete(&lease.job_id, lease.attempt)),
            a.token.clone(),
            succeeded(&refs),
        );
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        })
    };
    gate.wait_paused().await;

    // Meanwhile every kind of request is served: another agent's heartbeat and chunk, a poll,
    // the job API reading and writing.
    let resp = served("a job heartbeat", cp.job_heartbeat(&b, &other.id, 1)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = served(
        "a chunk upload",
        cp.put_chunk(&b, &other_lease, 0, &ndjson(2, "b")),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    served("a poll", cp.poll(&b)).await;
    let view = served("a job view", cp.job(&big.id)).await;
    assert_eq!(
        view.state,
        JobState::Running,
        "not completed while verifying"
    );
    served("a submission", cp.submit(extract_job())).await;

    gate.resume();
    let resp = completing.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let view = cp.job(&big.id).await;
    assert_eq!(view.state, JobState::Succeeded);
    assert_eq!(view.result.unwrap().records, 12);
    assert_eq!(
        cp.results(&big.id).await.bytes().await.unwrap().to_vec(),
        parts.concat()
    );
    cp.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_rechecks_the_attempt_and_its_chunks_after_verifying() {
    let (gate, hook) = Gate::hook();
    let gate = std::sync::Arc::new(gate);
    let cp = start_cp(|c| {
        c.verify_hook = Some(hook);
        // Every chunk is then hashed at completion, where the gate pauses it.
        c.running_hashes = 0;
    })
    .await;
    let a = cp.register("a", json!({})).await;
    let job = cp
        .submit(json!({"kind": "kafka.extract", "spec": {"kafka": {"bootstrap_servers": ["b:9092"]}}, "max_attempts": 5}))
        .await;
    let parts = [ndjson(2, "x0"), ndjson(2, "x1")];
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    let spawn_complete = |lease: &krawl_protocol::JobLease, body: serde_json::Value| {
        let (http, url, token) = (
            cp.http.clone(),
            cp.url(&paths::complete(&lease.job_id, lease.attempt)),
            a.token.clone(),
        );
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        })
    };

    // A chunk uploaded while the completion is verified: the result is refused.
    let lease = cp.poll(&a).await.unwrap();
    for (i, p) in parts.iter().enumerate() {
        cp.put_chunk(&a, &lease, i as u32, p).await;
    }
    let completing = spawn_complete(&lease, succeeded(&refs));
    gate.wait_paused().await;
    assert_eq!(
        cp.put_chunk(&a, &lease, 2, &ndjson(1, "late"))
            .await
            .status(),
        StatusCode::OK
    );
    gate.resume();
    let (status, _, msg) = error_of(completing.await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        msg.contains("uploaded while the completion was verified"),
        "{msg}"
    );
    assert_eq!(cp.job(&job.id).await.attempts[0].state, "failed");

    // The attempt ended meanwhile (here: the agent reported a failure): lease_lost, and the
    // failure stands.
    let lease = cp.poll(&a).await.unwrap();
    assert_eq!(lease.attempt, 2);
    for (i, p) in parts.iter().enumerate() {
        cp.put_chunk(&a, &lease, i as u32, p).await;
    }
    let completing = spawn_complete(&lease, succeeded(&refs));
    gate.wait_paused().await;
    let failed = json!({"status": "failed", "chunks": 0, "records": 0, "sha256": "",
                        "error": {"class": "timeout", "message": "slow"}});
    assert_eq!(
        cp.complete(&a, &lease, failed).await.status(),
        StatusCode::OK
    );
    gate.resume();
    let (status, code, _) = error_of(completing.await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "lease_lost")
    );
    let view = cp.job(&job.id).await;
    assert_eq!(view.attempts[1].state, "failed");
    assert_eq!(view.state, JobState::Queued);
    cp.server.unwrap().shutdown().await;
}

#[tokio::test]
async fn per_attempt_quotas_refuse_chunks_with_413_and_the_attempt_still_ends_cleanly() {
    let part = ndjson(5, "q");
    let len = part.len() as u64;
    let cp = start_cp(|c| {
        c.max_attempt_chunks = 2;
        c.max_attempt_bytes = 2 * len + len / 2;
    })
    .await;
    let a = cp.register("a", json!({})).await;
    let failed = |class: &str| {
        json!({"status": "failed", "chunks": 0, "records": 0, "sha256": "",
               "error": {"class": class, "message": "cannot upload the results"}})
    };

    // The chunk quota: the third chunk is refused, naming the limit and the flag.
    let job = cp
        .submit(json!({"kind": "kafka.extract", "spec": {"kafka": {"bootstrap_servers": ["b:9092"]}}, "max_attempts": 3}))
        .await;
    let lease = cp.poll(&a).await.unwrap();
    for seq in 0..2 {
        let resp = cp
            .put_chunk_enc(
                &a,
                &lease,
                seq,
                &ndjson(1, &seq.to_string()),
                Encoding::Identity,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp = cp.put_chunk(&a, &lease, 2, &ndjson(1, "2")).await;
    let (status, code, msg) = error_of(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    assert!(
        msg.contains("2 chunks") && msg.contains("--max-attempt-chunks 2"),
        "{msg}"
    );
    // A repeat of a stored chunk is still acknowledged; the attempt still heartbeats.
    let resp = cp
        .put_chunk_enc(&a, &lease, 1, &ndjson(1, "1"), Encoding::Identity)
        .await;
    assert!(resp.json::<ChunkAck>().await.unwrap().duplicate);
    let resp = cp.job_heartbeat(&a, &lease.job_id, lease.attempt).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // The agent reports the failure: the job fails for good, not re-queued although its class
    // is transient and attempts remain.
    let resp = cp.complete(&a, &lease, failed("output")).await;
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["state"],
        "failed"
    );
    let view = cp.job(&job.id).await;
    assert_eq!(view.attempts.len(), 1);
    let err = view.error.unwrap();
    assert!(
        err.message.contains("not retried") && err.message.contains("--max-attempt-chunks"),
        "{err:?}"
    );

    // The byte quota: a chunk that would take the attempt past it is refused; the chunks stored
    // before it complete as a result.
    let job = cp
        .submit(json!({"kind": "kafka.extract", "spec": {"kafka": {"bootstrap_servers": ["b:9092"]}}, "max_attempts": 3}))
        .await;
    let lease = cp.poll(&a).await.unwrap();
    let resp = cp
        .put_chunk_enc(&a, &lease, 0, &part, Encoding::Identity)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = cp
        .put_chunk_enc(
            &a,
            &lease,
            1,
            &[part.clone(), part.clone()].concat(),
            Encoding::Identity,
        )
        .await;
    let (status, _, msg) = error_of(resp).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        msg.contains("--max-attempt-bytes")
            && msg.contains(&format!("limit of {} bytes", 2 * len + len / 2)),
        "{msg}"
    );
    let resp = cp.complete(&a, &lease, succeeded(&[&part])).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let view = cp.job(&job.id).await;
    assert_eq!(view.state, JobState::Succeeded);
    assert_eq!(view.result.unwrap().bytes, len);

    // An attempt over its quota that is interrupted or expires is not retried either.
    let job = cp
        .submit(json!({"kind": "kafka.extract", "spec": {"kafka": {"bootstrap_servers": ["b:9092"]}}, "max_attempts": 3}))
        .await;
    let lease = cp.poll(&a).await.unwrap();
    for seq in 0..2 {
        cp.put_chunk_enc(&a, &lease, seq, &ndjson(1, "i"), Encoding::Identity)
            .await;
    }
    let resp = cp.put_chunk(&a, &lease, 2, &ndjson(1, "i")).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let resp = cp
        .complete(
            &a,
            &lease,
            json!({"status": "interrupted", "chunks": 0, "records": 0, "sha256": ""}),
        )
        .await;
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["state"],
        "failed"
    );
    assert!(cp.poll(&a).await.is_none(), "{:?}", cp.job(&job.id).await);
    cp.server.unwrap().shutdown().await;
}

#[tokio::test]
async fn an_expired_lease_requeues_with_attempt_2_and_the_old_attempt_gets_lease_lost() {
    let cp = start_cp(|c| c.poll_wait = Duration::from_secs(5)).await;
    let a = cp.register("a", json!({})).await;
    let b = cp.register("b", json!({})).await;
    let job = cp
        .submit(json!({"kind": "kafka.extract", "spec": {"kafka": {"bootstrap_servers": ["b:9092"]}}, "lease_ttl_secs": 1}))
        .await;
    let old = cp.poll(&a).await.unwrap();
    assert_eq!(old.lease_ttl_secs, 1);
    // The reaper re-queues within about a second of expiry; b's poll is woken then.
    let new = cp.poll(&b).await.expect("re-queued job leased to b");
    assert_eq!((new.job_id.as_str(), new.attempt), (job.id.as_str(), 2));

    let (status, code, msg) = error_of(cp.job_heartbeat(&a, &old.job_id, old.attempt).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "lease_lost")
    );
    assert!(msg.contains("attempt 1"), "{msg}");
    let (_, code, _) = error_of(cp.put_chunk(&a, &old, 0, &ndjson(1, "x")).await).await;
    assert_eq!(code, "lease_lost");
    let (_, code, _) = error_of(cp.complete(&a, &old, succeeded(&[])).await).await;
    assert_eq!(code, "lease_lost");

    let view = cp.job(&job.id).await;
    assert_eq!(view.attempts[0].state, "expired");
    assert_eq!(
        view.attempts[0].error.as_ref().unwrap().class,
        "lease_expired"
    );
    assert_eq!(view.attempts[1].agent_id, b.id);
    // Heartbeats keep attempt 2 alive past its TTL.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let hb: JobHeartbeatResponse = cp
            .job_heartbeat(&b, &new.job_id, 2)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            hb,
            JobHeartbeatResponse {
                lease_ttl_secs: 1,
                cancel: false
            }
        );
    }
    assert_eq!(cp.job(&job.id).await.progress.unwrap().phase, "upload");
    cp.server.unwrap().shutdown().await;
}

#[tokio::test]
async fn max_attempts_fail_the_job_and_failure_classes_decide_retries() {
    let cp = start_cp(|c| c.poll_wait = Duration::from_secs(5)).await;
    let a = cp.register("a", json!({})).await;
    let job = cp
        .submit(
            json!({"kind": "kafka.extract", "spec": {"kafka": {"bootstrap_servers": ["b:9092"]}}, "lease_ttl_secs": 1, "max_attempts": 2}),
        )
        .await;
    let l1 = cp.poll(&a).await.unwrap();
    let l2 = cp.poll(&a).await.unwrap();
    assert_eq!((l1.attempt, l2.attempt), (1, 2));
    let deadline = Instant::now() + Duration::from_secs(10);
    let view = loop {
        let v = cp.job(&job.id).await;
        if v.state.is_terminal() || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(view.state, JobState::Failed);
    let err = view.error.unwrap();
    assert_eq!(err.class, "lease_expired");
    assert!(err.message.contains("no attempts left"), "{}", err.message);
    assert!(cp.poll(&a).await.is_none());

    // A transient failure re-queues; a permanent one fails at once.
    let job = cp
        .submit(
            json!({"kind": "kafka.extract", "spec": {"kafka": {"bootstrap_servers": ["b:9092"]}}}),
        )
        .await;
    let l = cp.poll(&a).await.unwrap();
    let resp = cp
        .complete(
            &a,
            &l,
            json!({"status": "failed", "chunks": 0, "records": 0, "sha256": "",
                                 "error": {"class": "timeout", "message": "brokers slow"}}),
        )
        .await;
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["state"],
        "queued"
    );
    let l = cp.poll(&a).await.unwrap();
    assert_eq!(l.attempt, 2);
    // Interrupted: back to the queue without using up an attempt.
    let resp = cp
        .complete(
            &a,
            &l,
            json!({"status": "interrupted", "chunks": 0, "records": 0, "sha256": ""}),
        )
        .await;
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["state"],
        "queued"
    );
    let l = cp.poll(&a).await.unwrap();
    assert_eq!(l.attempt, 3);
    let resp = cp
        .complete(
            &a,
            &l,
            json!({"status": "failed", "chunks": 0, "records": 0, "sha256": "",
                                 "error": {"class": "authentication", "message": "SASL failed"}}),
        )
        .await;
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["state"],
        "failed"
    );
    let view = cp.job(&job.id).await;
    assert_eq!(view.error.unwrap().class, "authentication");
    assert_eq!(view.attempts[1].state, "interrupted");
    cp.server.unwrap().shutdown().await;
}

#[tokio::test]
async fn a_restart_on_the_same_database_keeps_jobs_chunks_and_tokens() {
    let cp = start_cp(|_| {}).await;
    let a = cp.register("a", json!({})).await;
    let job = cp.submit(extract_job()).await;
    let queued = cp.submit(extract_job()).await;
    let lease = cp.poll(&a).await.unwrap();
    let parts = [ndjson(4, "p0"), ndjson(2, "p1")];
    assert_eq!(
        cp.put_chunk(&a, &lease, 0, &parts[0]).await.status(),
        StatusCode::OK
    );

    let cp = cp.restart(|_| {}).await;

    // The agent's token and attempt survived; the server holds chunk 0.
    let list: ChunkList = cp
        .http
        .get(cp.url(&paths::chunks(&lease.job_id, lease.attempt)))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.chunks.iter().map(|c| c.seq).collect::<Vec<_>>(), [0]);
    assert_eq!(
        cp.job_heartbeat(&a, &lease.job_id, lease.attempt)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        cp.put_chunk(&a, &lease, 1, &parts[1]).await.status(),
        StatusCode::OK
    );
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    assert_eq!(
        cp.complete(&a, &lease, succeeded(&refs)).await.status(),
        StatusCode::OK
    );
    let body = cp.results(&job.id).await.bytes().await.unwrap();
    assert_eq!(body.to_vec(), parts.concat());
    // The other job is still queued and leasable.
    assert_eq!(cp.job(&queued.id).await.state, JobState::Queued);
    assert_eq!(cp.poll(&a).await.unwrap().job_id, queued.id);
    cp.server.unwrap().shutdown().await;
}

#[tokio::test]
async fn oversized_and_malformed_bodies_get_precise_errors() {
    let cp = start_cp(|c| c.max_body_bytes = 1024).await;
    let big = json!({"kind": "kafka.extract", "spec": {"pad": "x".repeat(2000)}});
    let resp = cp.submit_raw(big.to_string()).await;
    let (status, code, msg) = error_of(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    assert!(msg.contains("1024 bytes"), "{msg}");

    let resp = cp.submit_raw(r#"{"kind": 5, "spec": {}}"#).await;
    let (status, code, msg) = error_of(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    assert!(
        msg == "malformed job submission: field `kind` must be a string, found an integer",
        "{msg}"
    );
    let resp = cp.submit_raw(r#"{"kind": "kafka.extract"}"#).await;
    let (_, _, msg) = error_of(resp).await;
    assert!(msg.contains("missing field `spec`"), "{msg}");
    let resp = cp.submit_raw("{not json").await;
    assert_eq!(error_of(resp).await.0, StatusCode::BAD_REQUEST);

    // Unknown ids and paths are 404 ErrorBodies; a non-numeric attempt is a 400.
    let resp = cp
        .http
        .get(cp.url(&paths::job("job-nope")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let (status, code, msg) = error_of(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(msg.contains("job-nope"), "{msg}");
    let resp = cp.http.get(cp.url("/v2/nothing")).send().await.unwrap();
    assert_eq!(error_of(resp).await.1, "not_found");
    let resp = cp
        .http
        .post(cp.url("/v1/jobs/j/attempts/x/heartbeat"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, StatusCode::BAD_REQUEST);
    cp.server.unwrap().shutdown().await;
}

#[tokio::test]
async fn agents_over_their_rate_get_429_with_retry_after() {
    let cp = start_cp(|c| {
        c.agent_rate_limit = Some(RateLimit {
            per_second: 0.5,
            burst: 2,
        })
    })
    .await;
    let a = cp.register("a", json!({})).await;
    let hb = || {
        cp.http
            .post(cp.url(&paths::agent_heartbeat(&a.id)))
            .bearer_auth(&a.token)
            .json(&json!({"running_jobs": 0, "draining": false}))
            .send()
    };
    assert_eq!(hb().await.unwrap().status(), StatusCode::OK);
    assert_eq!(hb().await.unwrap().status(), StatusCode::OK);
    let resp = hb().await.unwrap();
    let retry: u64 = resp.headers()[reqwest::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let (status, code, _) = error_of(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    // Another agent has its own bucket.
    let b = cp.register("b", json!({})).await;
    let resp = cp
        .http
        .post(cp.url(&paths::agent_heartbeat(&b.id)))
        .bearer_auth(&b.token)
        .json(&json!({"running_jobs": 0, "draining": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    cp.server.unwrap().shutdown().await;
}

#[tokio::test]
async fn admin_cancel_reaches_the_agent_and_drain_stops_polls() {
    let cp = start_cp(|_| {}).await;
    let a = cp.register("a", json!({})).await;
    let admin = AdminClient::new(&cp.base, ADMIN, None).unwrap();

    // A queued job is cancelled at once; a running one through its heartbeat.
    let queued = cp.submit(extract_job()).await;
    assert_eq!(
        admin.cancel(&queued.id).await.unwrap().state,
        JobState::Cancelled
    );
    let err = admin.cancel(&queued.id).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    let job = cp.submit(extract_job()).await;
    let lease = cp.poll(&a).await.unwrap();
    assert_eq!(lease.job_id, job.id, "the cancelled job is never leased");
    let hb: JobHeartbeatResponse = cp.job_heartbeat(&a, &job.id, 1).await.json().await.unwrap();
    assert!(!hb.cancel);
    assert_eq!(
        admin.cancel(&job.id).await.unwrap().state,
        JobState::Running
    );
    let hb: JobHeartbeatResponse = cp.job_heartbeat(&a, &job.id, 1).await.json().await.unwrap();
    assert!(hb.cancel);
    let resp = cp
        .complete(
            &a,
            &lease,
            json!({"status": "cancelled", "chunks": 0, "records": 0, "sha256": ""}),
        )
        .await;
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["state"],
        "cancelled"
    );
    assert_eq!(
        admin
            .wait(&job.id, Duration::from_secs(5))
            .await
            .unwrap()
            .state,
        JobState::Cancelled
    );

    // Drain.
    let hb = |agent: &Agent| {
        cp.http
            .post(cp.url(&paths::agent_heartbeat(&agent.id)))
            .bearer_auth(agent.token.clone())
            .json(&json!({"running_jobs": 1, "draining": false}))
            .send()
    };
    let r: krawl_protocol::AgentHeartbeatResponse = hb(&a).await.unwrap().json().await.unwrap();
    assert!(!r.drain);
    admin.drain(&a.id).await.unwrap();
    assert_eq!(
        admin.drain("agent-nope").await.unwrap_err().status(),
        Some(404)
    );
    let r: krawl_protocol::AgentHeartbeatResponse = hb(&a).await.unwrap().json().await.unwrap();
    assert!(r.drain);
    cp.submit(extract_job()).await;
    let t = Instant::now();
    assert!(cp.poll(&a).await.is_none(), "a draining agent gets no job");
    assert!(t.elapsed() < Duration::from_millis(500));
    let agents = admin.agents().await.unwrap();
    assert!(agents.agents[0].draining);
    assert_eq!(agents.agents[0].running_jobs, 1);
    cp.server.unwrap().shutdown().await;
}

/// TLS with a private CA; the admin client trusts only that CA.
#[tokio::test]
async fn tls_serving_and_the_admin_client() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let (cert_pem, key_pem, ca_pem) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert_pem, leaf.pem()).unwrap();
    std::fs::write(&key_pem, leaf_key.serialize_pem()).unwrap();
    std::fs::write(&ca_pem, ca.pem()).unwrap();

    let mut cfg = common::config(dir.path());
    cfg.tls = Some(TlsFiles { cert_pem, key_pem });
    let server = start(cfg).await.unwrap();
    let base = server.base_url();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");

    let admin = AdminClient::new(&base, ADMIN, Some(&ca_pem)).unwrap();
    let job = admin
        .submit(&krawl_protocol::SubmitJob {
            kind: "kafka.list_topics".into(),
            spec: json!({"kafka": {"bootstrap_servers": ["b:9092"]}}),
            labels: Default::default(),
            max_attempts: Some(1),
            lease_ttl_secs: None,
        })
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.max_attempts, 1);
    assert_eq!(admin.list().await.unwrap().jobs.len(), 1);
    assert_eq!(admin.get(&job.id).await.unwrap().id, job.id);
    let err = admin.results(&job.id).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    let err = admin
        .wait(&job.id, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("still queued"), "{err}");

    // Without the CA the handshake fails; a wrong admin token is a 401.
    let untrusting = AdminClient::new(&base, ADMIN, None).unwrap();
    assert!(untrusting.list().await.unwrap_err().status().is_none());
    let wrong = AdminClient::new(&base, "wrong-token-xyz", Some(&ca_pem)).unwrap();
    let err = wrong.list().await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(
        !err.to_string().contains("wrong-token-xyz"),
        "the token is never echoed: {err}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_with_a_literal_credential_is_refused_and_not_stored() {
    let cp = start_cp(|_| {}).await;
    let canary = "literal-password-canary-7d1e";
    let job = json!({"kind": "kafka.extract",
                     "spec": {"kafka": {"bootstrap_servers": ["b:9092"],
                                        "sasl": {"mechanism": "PLAIN", "username": "u", "password": canary}}}});
    let resp = cp.submit_raw(job.to_string()).await;
    let (status, code, msg) = error_of(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    assert!(msg.contains("spec.kafka.sasl.password"), "{msg}");
    assert!(!msg.contains(canary), "{msg}");
    // Issue 11: the shapes a literal took past the old key-name check, and the kinds this
    // control plane does not know. Each is refused, naming the position, never the value.
    let kafka = |extra: serde_json::Value| {
        let mut k = json!({"bootstrap_servers": ["b:9092"], "security_protocol": "SASL_SSL"});
        for (key, v) in extra.as_object().unwrap() {
            k[key] = v.clone();
        }
        json!({"kind": "kafka.extract", "spec": {"kafka": k}})
    };
    let oauth = |ext: serde_json::Value, url: String| {
        kafka(json!({"sasl": {"mechanism": "OAUTHBEARER", "oauthbearer": {
            "token_endpoint_url": url, "client_id": "c", "client_secret": "env://S", "extensions": ext}}}))
    };
    let attacks = [
        (
            kafka(
                json!({"sasl": {"mechanism": "PLAIN", "username": "u", "password": 7_123_456_789u64}}),
            ),
            "spec.kafka.sasl.password",
        ),
        (
            kafka(json!({"sasl": {"mechanism": "PLAIN", "username": "u", "password": [canary]}})),
            "spec.kafka.sasl.password",
        ),
        (
            kafka(json!({"properties": {"sasl.password": canary}})),
            "spec.kafka.properties",
        ),
        (
            kafka(json!({"properties": {"ssl.key.pem": canary}})),
            "spec.kafka.properties",
        ),
        (
            kafka(json!({"tls": {"client_key": canary}})),
            "spec.kafka.tls.client_key",
        ),
        (
            kafka(json!({"bootstrap_servers": [format!("u:{canary}@b:9092")]})),
            "spec.kafka.bootstrap_servers[0]",
        ),
        (
            oauth(json!({"apiToken": canary}), "https://idp/t".into()),
            "spec.kafka.sasl.oauthbearer.extensions.apiToken",
        ),
        (
            oauth(json!({}), format!("https://c:{canary}@idp/t")),
            "spec.kafka.sasl.oauthbearer.token_endpoint_url",
        ),
        (
            json!({"kind": "kafka.extract", "spec": {"kafka": {"bootstrap_servers": ["b:9092"]},
            "schema_registry": {"url": format!("https://u:{canary}@sr")}}}),
            "spec.schema_registry.url",
        ),
        (
            json!({"kind": "vendor.custom", "spec": {"db": {"password": canary}}}),
            "spec.db.password",
        ),
        (
            json!({"kind": "vendor.custom", "spec": {"db": {"token": 7_123_456_789u64}}}),
            "spec.db.token",
        ),
        (
            json!({"kind": "vendor.custom", "spec": {"url": format!("https://a:{canary}@h/")}}),
            "spec.url",
        ),
    ];
    for (job, position) in attacks {
        let (status, _, msg) = error_of(cp.submit_raw(job.to_string()).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{job}: {msg}");
        assert!(msg.contains(position), "{job}: {msg}");
        assert!(
            !msg.contains(canary) && !msg.contains("7123456789"),
            "{msg}"
        );
    }
    // The same job with a reference is taken; nothing refused was stored.
    let mut ok = job.clone();
    ok["spec"]["kafka"]["sasl"]["password"] = json!("vault://secret/kafka#password");
    cp.submit(ok).await;
    let db = std::fs::read(cp.dir.path().join("cp.db")).unwrap_or_default();
    let wal = std::fs::read(cp.dir.path().join("cp.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        for needle in [canary, "7123456789"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "a refused credential reached the database"
            );
        }
    }
}

#[tokio::test]
async fn finished_jobs_past_their_retention_are_deleted_with_their_results() {
    // First run keeps everything: one succeeded job with a chunk, one cancelled, one running,
    // one queued.
    let cp = start_cp(|cfg| cfg.retention = None).await;
    let a = cp.register("a", json!({})).await;
    let done = cp.submit(extract_job()).await;
    let lease = cp.poll(&a).await.unwrap();
    let part = ndjson(3, "kept-until-pruned");
    assert_eq!(
        cp.put_chunk(&a, &lease, 0, &part).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        cp.complete(&a, &lease, succeeded(&[&part])).await.status(),
        StatusCode::OK
    );
    let running = cp.submit(extract_job()).await;
    assert_eq!(cp.poll(&a).await.unwrap().job_id, running.id);
    let cancelled = cp.submit(extract_job()).await;
    let admin = AdminClient::new(&cp.base, ADMIN, None).unwrap();
    assert_eq!(
        admin.cancel(&cancelled.id).await.unwrap().state,
        JobState::Cancelled
    );
    let queued = cp.submit(extract_job()).await;
    assert_eq!(cp.results(&done.id).await.status(), StatusCode::OK);

    // Restarted on the same database with a retention the finished jobs are already past.
    let cp = cp
        .restart(|cfg| cfg.retention = Some(Duration::from_millis(1)))
        .await;
    let status = |id: String| {
        let req = cp.http.get(cp.url(&paths::job(&id))).bearer_auth(ADMIN);
        async move { req.send().await.unwrap().status() }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(done.id.clone()).await != StatusCode::NOT_FOUND {
        assert!(Instant::now() < deadline, "the finished job was not pruned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(cancelled.id.clone()).await, StatusCode::NOT_FOUND);
    assert_eq!(cp.results(&done.id).await.status(), StatusCode::NOT_FOUND);
    // The stored chunks went with the job.
    let db = rusqlite::Connection::open(cp.dir.path().join("cp.db")).unwrap();
    let chunks: i64 = db
        .query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(chunks, 0);
    // Unfinished jobs are kept: the running one can still heartbeat, the queued one is leased.
    assert_eq!(cp.job(&running.id).await.state, JobState::Running);
    assert_eq!(
        cp.job_heartbeat(&a, &running.id, 1).await.status(),
        StatusCode::OK
    );
    assert_eq!(cp.job(&queued.id).await.state, JobState::Queued);
    assert_eq!(cp.poll(&a).await.unwrap().job_id, queued.id);
    cp.server.unwrap().shutdown().await;
}
