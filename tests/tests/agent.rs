//! End to end: a real `krawl controlplane`, real `krawl run` agents and a real broker, each its
//! own process (tests/src/stack.rs). What is asserted is what an operator would check: the job's
//! state and attempts in the job API, and the result records.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use krawl_model::{Envelope, Record};
use krawl_protocol::JobState;
use krawl_tests::stack::{
    eventually, kafka_spec, Agent, AgentOpts, ControlPlane, ControlPlaneOpts, ScopedToken,
    BOOTSTRAP_TOKEN,
};
use krawl_tests::{seed_dataset, BrokerKind, Noida, ProxiedTansu};
use serde_json::json;

const CANARY: &str = "canary-agent-e2e-4f2a-do-not-print";

fn topic_names(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Topic(t) => Some(t.name.clone()),
            _ => None,
        })
        .collect()
}

/// `krawl_chunks_uploaded_total` from an agent's `/metrics`.
async fn chunks_uploaded(metrics_url: &str) -> f64 {
    let Ok(resp) = reqwest::get(metrics_url).await else {
        return 0.0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("krawl_chunks_uploaded_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_kind_returns_correct_results() {
    let broker = Noida::start().unwrap();
    let seeded = seed_dataset(&broker.bootstrap(), BrokerKind::Noida).unwrap();
    let cp = ControlPlane::start().unwrap();
    let agent = Agent::start(&cp, AgentOpts::default()).unwrap();

    // kafka.extract: the seeded topics and groups, nothing duplicated, summary last.
    let id = cp
        .submit("kafka.extract", kafka_spec(&broker.bootstrap()))
        .await;
    let view = cp.wait_terminal(&id, Some(&agent)).await;
    assert_eq!(view.state, JobState::Succeeded, "{view:?}");
    let recs = cp.records(&id).await;
    let names = topic_names(&recs);
    let unique: BTreeSet<_> = names.iter().cloned().collect();
    assert_eq!(names.len(), unique.len(), "duplicate topic records");
    for (name, t) in &seeded.topics {
        let topic = recs
            .iter()
            .find_map(|r| match r {
                Record::Topic(x) if &x.name == name => Some(x),
                _ => None,
            })
            .unwrap_or_else(|| panic!("topic {name} missing"));
        assert_eq!(
            topic.partition_count,
            usize::try_from(t.partitions).unwrap()
        );
        assert_eq!(topic.record_count, Some(t.messages.iter().sum::<i64>()));
    }
    for group in seeded.groups.keys() {
        assert!(
            recs.iter()
                .any(|r| matches!(r, Record::ConsumerGroup(g) if &g.group_id == group)),
            "group {group} missing"
        );
    }
    assert!(matches!(recs.last(), Some(Record::Summary(_))));
    let result = view.result.unwrap();
    assert_eq!(result.records, u64::try_from(recs.len()).unwrap());

    // kafka.list_topics: names and partition counts.
    let id = cp
        .submit("kafka.list_topics", kafka_spec(&broker.bootstrap()))
        .await;
    assert_eq!(
        cp.wait_terminal(&id, Some(&agent)).await.state,
        JobState::Succeeded
    );
    let listing: BTreeMap<String, usize> = cp
        .records(&id)
        .await
        .into_iter()
        .filter_map(|r| match r {
            Record::TopicListing(t) if !t.internal => Some((t.name, t.partitions)),
            _ => None,
        })
        .collect();
    let expected: BTreeMap<String, usize> = seeded
        .topics
        .values()
        .map(|t| (t.name.clone(), usize::try_from(t.partitions).unwrap()))
        .collect();
    assert_eq!(listing, expected);

    // kafka.test_connection: a verdict, for a live cluster and a closed port.
    let id = cp
        .submit("kafka.test_connection", kafka_spec(&broker.bootstrap()))
        .await;
    assert_eq!(
        cp.wait_terminal(&id, Some(&agent)).await.state,
        JobState::Succeeded
    );
    let recs = cp.records(&id).await;
    let Some(Record::ConnectionTest(ok)) = recs.first() else {
        panic!("{recs:?}")
    };
    assert!(ok.ok && ok.reachable && ok.authenticated, "{ok:?}");
    assert_eq!(ok.brokers.len(), 1);
    assert!(!ok.api_versions.is_empty());

    let closed = format!("127.0.0.1:{}", krawl_tests::free_port());
    let mut dead = kafka_spec(&closed);
    dead["kafka"]["timeout_secs"] = json!(3);
    let id = cp.submit("kafka.test_connection", dead).await;
    assert_eq!(
        cp.wait_terminal(&id, Some(&agent)).await.state,
        JobState::Succeeded
    );
    let recs = cp.records(&id).await;
    let Some(Record::ConnectionTest(bad)) = recs.first() else {
        panic!("{recs:?}")
    };
    assert!(!bad.ok && !bad.reachable, "{bad:?}");
    assert_eq!(bad.error_class.as_deref(), Some("connection_refused"));
    assert!(bad.verdict.contains(&closed), "{}", bad.verdict);

    // kafka.preflight: one record per permission, the describe ones granted on noida.
    let id = cp
        .submit("kafka.preflight", kafka_spec(&broker.bootstrap()))
        .await;
    assert_eq!(
        cp.wait_terminal(&id, Some(&agent)).await.state,
        JobState::Succeeded
    );
    let perms: BTreeMap<String, Option<bool>> = cp
        .records(&id)
        .await
        .into_iter()
        .filter_map(|r| match r {
            Record::Permission(p) => Some((p.permission, p.granted)),
            _ => None,
        })
        .collect();
    for p in [
        "describe_cluster",
        "describe_topics",
        "describe_configs",
        "list_offsets",
    ] {
        assert_eq!(perms.get(p), Some(&Some(true)), "{p}: {perms:?}");
    }

    // The CLI shows the same jobs.
    let out = cp.jobs_cli(&["list"]).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_job_gets_an_error_result_and_the_agent_keeps_serving() {
    let broker = Noida::start().unwrap();
    let cp = ControlPlane::start().unwrap();
    let agent = Agent::start(&cp, AgentOpts::default()).unwrap();

    let unknown = cp
        .submit("kafka.produce", kafka_spec(&broker.bootstrap()))
        .await;
    // A spec the control plane stores (it has a kafka job's structure) that the agent still
    // refuses: SASL_SSL without a [kafka.sasl] section. (A spec without that structure never
    // gets this far: the control plane refuses it at submit, by position.)
    let invalid = cp
        .submit(
            "kafka.extract",
            json!({ "kafka": { "bootstrap_servers": [broker.bootstrap()], "security_protocol": "SASL_SSL" } }),
        )
        .await;
    for (id, class) in [(&unknown, "invalid_job"), (&invalid, "config")] {
        let view = cp.wait_terminal(id, Some(&agent)).await;
        assert_eq!(view.state, JobState::Failed, "{view:?}");
        let err = view.error.clone().unwrap();
        assert_eq!(err.class, class, "{err:?}");
        // Permanent: not retried.
        assert_eq!(view.attempts.len(), 1, "{view:?}");
    }
    let refused = cp
        .admin()
        .submit(&krawl_protocol::SubmitJob {
            kind: "kafka.extract".into(),
            spec: json!({ "kafka": 5 }),
            labels: Default::default(),
            max_attempts: None,
            lease_ttl_secs: None,
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("spec.kafka must be an object"),
        "{refused}"
    );
    let err = cp.admin().get(&unknown).await.unwrap().error.unwrap();
    assert!(err.message.contains("kafka.produce"), "{err:?}");

    let id = cp
        .submit("kafka.list_topics", kafka_spec(&broker.bootstrap()))
        .await;
    assert_eq!(
        cp.wait_terminal(&id, Some(&agent)).await.state,
        JobState::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_killed_mid_upload_loses_and_duplicates_nothing() {
    let broker = Noida::start().unwrap();
    seed_dataset(&broker.bootstrap(), BrokerKind::Noida).unwrap();
    // Enough topics for many small chunks.
    krawl_tests::create_topics(&broker.bootstrap(), "bulk", 3000, 1).unwrap();
    let cp_opts = ControlPlaneOpts::default();
    let mut cp = ControlPlane::start_with(cp_opts).unwrap();
    let agent = Agent::start(
        &cp,
        AgentOpts {
            chunk_max_records: Some(5),
            ..AgentOpts::default()
        },
    )
    .unwrap();

    let id = cp
        .submit("kafka.extract", kafka_spec(&broker.bootstrap()))
        .await;
    // Kill the control plane as soon as the agent says some chunks are in (its metrics), keep
    // it down a while, restart it on the same database.
    let metrics = agent.health_url("/metrics");
    eventually("first chunks", Duration::from_secs(60), async || {
        chunks_uploaded(&metrics).await >= 2.0
    })
    .await;
    cp.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cp.restart().unwrap();

    let view = cp.wait_terminal(&id, Some(&agent)).await;
    assert_eq!(view.state, JobState::Succeeded, "{view:?}");
    let recs = cp.records(&id).await;
    let names = topic_names(&recs);
    let unique: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(names.len(), unique.len(), "duplicated topic records");

    // The same cluster through `krawl extract` alone: the same set of topics.
    let direct = std::process::Command::new(krawl_tests::krawl_bin().unwrap())
        .args(["extract", "--bootstrap-servers", &broker.bootstrap()])
        .output()
        .unwrap();
    assert!(direct.status.success());
    let direct: BTreeSet<String> = String::from_utf8_lossy(&direct.stdout)
        .lines()
        .filter_map(
            |l| match serde_json::from_str::<Envelope>(l).unwrap().record {
                Record::Topic(t) => Some(t.name),
                _ => None,
            },
        )
        .collect();
    assert_eq!(unique, direct, "records lost");
    let result = view.result.unwrap();
    assert!(result.chunks > 10, "{result:?}");
    // The kill really happened mid-upload: the agent had to retry a chunk.
    assert!(
        agent.log().contains("retrying the same chunk"),
        "no chunk was retried: the control plane died after the upload?\n{}",
        agent.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_job_reports_interrupted_and_the_retry_succeeds() {
    let broker = ProxiedTansu::start().unwrap();
    let cp = ControlPlane::start().unwrap();
    let mut agent = Agent::start(
        &cp,
        AgentOpts {
            shutdown_grace_secs: 1,
            ..AgentOpts::default()
        },
    )
    .unwrap();
    // DescribeConfigs never answered: the job hangs in its configs phase.
    let id = cp.submit_hung_extraction(&broker, 60).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status:?}\n{}", agent.log());

    let view = cp.admin().get(&id).await.unwrap();
    assert_eq!(view.attempts[0].state, "interrupted", "{view:?}");
    assert_eq!(view.state, JobState::Queued, "{view:?}");

    broker.proxy.unswallow(32);
    let agent2 = Agent::start(&cp, AgentOpts::default()).unwrap();
    let view = cp.wait_terminal(&id, Some(&agent2)).await;
    assert_eq!(view.state, JobState::Succeeded, "{view:?}");
    assert_eq!(view.attempts.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_requeues_the_job() {
    let broker = ProxiedTansu::start().unwrap();
    let cp = ControlPlane::start_with(ControlPlaneOpts {
        lease_ttl_secs: Some(3),
        ..ControlPlaneOpts::default()
    })
    .unwrap();
    let mut first = Agent::start(&cp, AgentOpts::default()).unwrap();
    // Metadata (3) unanswered: the first attempt hangs while connecting ...
    broker.proxy.swallow(3);
    let mut s = kafka_spec(&broker.bootstrap());
    s["kafka"]["timeout_secs"] = json!(60);
    let id = cp.submit("kafka.list_topics", s).await;
    eventually(
        "the lease to be taken",
        Duration::from_secs(30),
        async || {
            cp.admin()
                .get(&id)
                .await
                .is_ok_and(|v| v.state == JobState::Running)
        },
    )
    .await;
    // ... and its agent dies without a word (SIGKILL: no completion, no more heartbeats).
    first.signal(libc::SIGKILL);
    let _ = first.wait_exit(Duration::from_secs(10));
    broker.proxy.unswallow(3);
    let second = Agent::start(&cp, AgentOpts::default()).unwrap();
    let view = cp.wait_terminal(&id, Some(&second)).await;
    assert_eq!(view.state, JobState::Succeeded, "{view:?}");
    assert_eq!(view.attempts.len(), 2, "{view:?}");
    assert_eq!(view.attempts[0].state, "expired", "{view:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_honoured_with_retry_after() {
    let broker = Noida::start().unwrap();
    let cp = ControlPlane::start_with(ControlPlaneOpts {
        agent_rate_limit: Some("1/1".into()),
        poll_wait_secs: Some(2),
        ..ControlPlaneOpts::default()
    })
    .unwrap();
    let agent = Agent::start(&cp, AgentOpts::default()).unwrap();
    let ids = [
        cp.submit("kafka.list_topics", kafka_spec(&broker.bootstrap()))
            .await,
        cp.submit("kafka.test_connection", kafka_spec(&broker.bootstrap()))
            .await,
    ];
    for id in &ids {
        let view = cp.wait_terminal(id, Some(&agent)).await;
        assert_eq!(view.state, JobState::Succeeded, "{view:?}");
    }
    let log = agent.log();
    let limited = log.matches("slow down").count();
    assert!(limited >= 1, "the control plane never rate-limited: {log}");
    // Honouring Retry-After (1 s at 1 request/s) keeps 429s rare: a client that retried at
    // once would collect one per few milliseconds.
    let answered_429 = cp.output().matches("\"status\":429").count();
    assert!(answered_429 <= 20, "{answered_429} answers of 429");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_gives_a_clear_error_and_the_agent_backs_off() {
    let cp = ControlPlane::start().unwrap();
    let agent = Agent::start(
        &cp,
        AgentOpts {
            bootstrap_token: "not-the-token".into(),
            ..AgentOpts::default()
        },
    )
    .unwrap();
    agent.wait_log("rejected", Duration::from_secs(20)).unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let log = agent.log();
    assert!(!log.contains("not-the-token"), "token printed: {log}");
    let attempts = cp.output().matches("\"status\":401").count();
    assert!(
        (1..=6).contains(&attempts),
        "{attempts} registration attempts in ~8 s: no back-off?\n{}",
        cp.output()
    );
    let ready = reqwest::get(agent.health_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let alive = reqwest::get(agent.health_url("/healthz")).await.unwrap();
    assert_eq!(alive.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_scoped_bootstrap_tokens_keep_prod_jobs_on_prod_agents() {
    const DEV: &str = "dev-token-e2e-31d7";
    const PROD: &str = "prod-token-e2e-8a4c";
    let broker = Noida::start().unwrap();
    let cp = ControlPlane::start_with(ControlPlaneOpts {
        poll_wait_secs: Some(2),
        bootstrap_tokens: vec![
            ScopedToken::new("dev", DEV, &[("env", "dev")]),
            ScopedToken::new("prod", PROD, &[("env", "prod"), ("team", "*")]),
        ],
        ..ControlPlaneOpts::default()
    })
    .unwrap();
    let labelled = |name: &str, token: &str, labels: &[(&str, &str)]| AgentOpts {
        name: name.into(),
        bootstrap_token: token.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..AgentOpts::default()
    };
    let dev = Agent::start(&cp, labelled("dev-agent", DEV, &[("env", "dev")])).unwrap();
    let prod = Agent::start(
        &cp,
        labelled("prod-agent", PROD, &[("env", "prod"), ("team", "data")]),
    )
    .unwrap();
    // Holders of the dev token, or of the single token, cannot claim env=prod: the agent logs
    // why, and what to change, and keeps trying without registering.
    let rogue = Agent::start(&cp, labelled("rogue-agent", DEV, &[("env", "prod")])).unwrap();
    let legacy = Agent::start(
        &cp,
        labelled("legacy-agent", BOOTSTRAP_TOKEN, &[("env", "prod")]),
    )
    .unwrap();
    for a in [&dev, &prod] {
        a.wait_log("registered with the control plane", Duration::from_secs(30))
            .unwrap();
    }
    rogue.wait_log("HTTP 403", Duration::from_secs(30)).unwrap();
    let log = rogue.log();
    assert!(
        log.contains("bootstrap token `dev` does not grant the label `env`")
            && log.contains("[agent] labels")
            && !log.contains(DEV),
        "{log}"
    );
    legacy
        .wait_log("HTTP 403", Duration::from_secs(30))
        .unwrap();
    let log = legacy.log();
    assert!(
        log.contains("grants no labels")
            && log.contains("[[token]]")
            && log.contains("--bootstrap-tokens FILE")
            && !log.contains(BOOTSTRAP_TOKEN),
        "{log}"
    );

    // The agents list: only the two within their grants, each with its token.
    let out = cp.jobs_cli(&["agents"]).unwrap();
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(name))
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
    };
    assert_eq!(row("dev-agent").unwrap()[2], "dev", "{table}");
    assert_eq!(row("prod-agent").unwrap()[2], "prod", "{table}");
    assert!(
        row("rogue-agent").is_none() && row("legacy-agent").is_none(),
        "{table}"
    );
    let agents = cp.admin().agents().await.unwrap().agents;
    let id_of = |name: &str| {
        agents
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.id.clone())
            .unwrap()
    };
    let (dev_id, prod_id) = (id_of("dev-agent"), id_of("prod-agent"));

    // Jobs labelled env=prod all run on the prod agent, env=dev on the dev agent.
    let mut jobs = Vec::new();
    for env in ["prod", "prod", "prod", "dev"] {
        let id = cp
            .submit_labelled(
                "kafka.list_topics",
                kafka_spec(&broker.bootstrap()),
                &[("env", env)],
            )
            .await;
        jobs.push((env, id));
    }
    for (env, id) in &jobs {
        let view = cp.wait_terminal(id, Some(&prod)).await;
        assert_eq!(view.state, JobState::Succeeded, "{view:?}");
        let ran_on: Vec<&str> = view.attempts.iter().map(|a| a.agent_id.as_str()).collect();
        let want = if *env == "prod" { &prod_id } else { &dev_id };
        assert_eq!(ran_on, [want.as_str()], "a {env} job ran elsewhere");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_over_the_attempt_quota_fails_the_job_once_and_the_agent_keeps_serving() {
    let broker = Noida::start().unwrap();
    krawl_tests::create_topics(&broker.bootstrap(), "quota", 4, 1).unwrap();
    let cp = ControlPlane::start_with(ControlPlaneOpts {
        poll_wait_secs: Some(2),
        max_attempt_chunks: Some(2),
        ..ControlPlaneOpts::default()
    })
    .unwrap();
    let agent = Agent::start(
        &cp,
        AgentOpts {
            chunk_max_records: Some(1),
            ..AgentOpts::default()
        },
    )
    .unwrap();

    // Four topics, one record a chunk: the third chunk is refused (413). The agent starts no
    // chunk after that, sends no refused chunk again, and reports the failure; the job is not
    // retried. (Chunks already in flight when the refusal arrives, up to UPLOADS_IN_FLIGHT, may
    // each be refused once.)
    let id = cp
        .submit("kafka.list_topics", kafka_spec(&broker.bootstrap()))
        .await;
    let view = cp.wait_terminal(&id, Some(&agent)).await;
    assert_eq!(view.state, JobState::Failed, "{view:?}");
    assert_eq!(view.attempts.len(), 1, "retried: {view:?}");
    let err = view.error.unwrap();
    assert!(
        err.message.contains("--max-attempt-chunks 2") && err.message.contains("not retried"),
        "{err:?}"
    );
    let out = cp.output();
    let refused = out.matches("\"status\":413").count();
    assert!(
        (1..=krawl_agent::upload::UPLOADS_IN_FLIGHT).contains(&refused),
        "{refused} refusals:\n{out}"
    );
    let refusals: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("\"status\":413"))
        .collect();
    for seq in 0..6 {
        let refused = format!("\"chunk {seq} refused");
        assert!(
            refusals.iter().filter(|l| l.contains(&refused)).count() <= 1,
            "chunk {seq} was sent again after its refusal:\n{out}"
        );
    }

    // A job whose result fits (one record) still runs on the same agent.
    let id = cp
        .submit("kafka.test_connection", kafka_spec(&broker.bootstrap()))
        .await;
    assert_eq!(
        cp.wait_terminal(&id, Some(&agent)).await.state,
        JobState::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_password_is_resolved_per_job_and_printed_nowhere() {
    let broker = Noida::start().unwrap();
    let cp = ControlPlane::start().unwrap();
    let agent = Agent::start(
        &cp,
        AgentOpts {
            env: vec![("KRAWL_TEST_KAFKA_PASSWORD".into(), CANARY.into())],
            ..AgentOpts::default()
        },
    )
    .unwrap();
    let s = json!({ "kafka": {
        "bootstrap_servers": [broker.bootstrap()],
        "security_protocol": "SASL_PLAINTEXT",
        "sasl": { "mechanism": "PLAIN", "username": "krawl", "password": "env://KRAWL_TEST_KAFKA_PASSWORD" }
    }});
    let id = cp.submit("kafka.extract", s).await;
    let view = cp.wait_terminal(&id, Some(&agent)).await;
    assert_eq!(view.state, JobState::Succeeded, "{view:?}");
    let body = cp.admin().results(&id).await.unwrap();
    let metrics = reqwest::get(agent.health_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("krawl_jobs"), "{metrics}");
    let db = std::fs::read(cp.db_path()).unwrap();
    for (what, text) in [
        ("agent log", agent.log().into_bytes()),
        ("control-plane log", cp.output().into_bytes()),
        ("results", body),
        ("metrics", metrics.into_bytes()),
        ("control-plane database", db),
    ] {
        assert!(
            !text.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
            "the password appears in the {what}"
        );
    }
    // Every log line of the job carries its id.
    let log = agent.log();
    let job_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"kind\":\"kafka.extract\""))
        .collect();
    assert!(!job_lines.is_empty());
    assert!(job_lines.iter().all(|l| l.contains(&id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_jobs_run_at_once_by_default_and_the_sixth_waits() {
    let broker = ProxiedTansu::start().unwrap();
    krawl_tests::create_topics(&broker.bootstrap(), "t", 2, 1).unwrap();
    let cp = ControlPlane::start().unwrap();
    let agent = Agent::start(&cp, AgentOpts::default()).unwrap();
    // DescribeConfigs unanswered: every extraction holds its slot until released.
    broker.proxy.swallow(32);
    let mut s = kafka_spec(&broker.bootstrap());
    s["kafka"]["timeout_secs"] = json!(20);
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(cp.submit("kafka.extract", s.clone()).await);
    }
    let states = async || {
        let mut running = 0;
        let mut queued = 0;
        for id in &ids {
            match cp.admin().get(id).await.unwrap().state {
                JobState::Running => running += 1,
                JobState::Queued => queued += 1,
                _ => {}
            }
        }
        (running, queued)
    };
    eventually("five running jobs", Duration::from_secs(30), async || {
        states().await == (5, 1)
    })
    .await;
    // Held there: the sixth is not taken while five run.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(states().await, (5, 1));

    // Released, all six finish, the sixth after a slot frees up.
    broker.proxy.unswallow(32);
    for id in &ids {
        let view = cp.wait_terminal(id, Some(&agent)).await;
        assert_eq!(view.state, JobState::Succeeded, "{view:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_vault_at_start_is_waited_for_not_fatal() {
    let cp = ControlPlane::start().unwrap();
    let dead_vault = format!("http://127.0.0.1:{}", krawl_tests::free_port());
    let mut agent = Agent::start(
        &cp,
        AgentOpts {
            auth_toml: Some(
                "[control_plane.auth]\nbootstrap_token = \"vault://secret/krawl/agent#token\"\n"
                    .into(),
            ),
            extra_toml: format!(
                "[secrets.vault]\naddress = \"{dead_vault}\"\ntimeout_secs = 2\n\
                 [secrets.vault.auth]\nmethod = \"token\"\ntoken = \"env://KRAWL_TEST_VAULT_TOKEN\"\n"
            ),
            env: vec![("KRAWL_TEST_VAULT_TOKEN".into(), "root".into())],
            ..AgentOpts::default()
        },
    )
    .unwrap();
    agent
        .wait_log(
            "cannot resolve the control-plane credential yet",
            Duration::from_secs(30),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(agent.is_running(), "the agent exited:\n{}", agent.log());
    let ready = reqwest::get(agent.health_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let reason = ready.text().await.unwrap();
    assert!(reason.contains("vault://secret/krawl/agent"), "{reason}");
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{status:?}");
}

/// systemd's notify protocol (sd_notify(3)): datagrams to `$NOTIFY_SOCKET`. The test plays
/// systemd's side with a real unix datagram socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_systemd_the_agent_notifies_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let cp = ControlPlane::start().unwrap();
    let mut agent = Agent::start(
        &cp,
        AgentOpts {
            env: vec![
                ("NOTIFY_SOCKET".into(), path.display().to_string()),
                // 0.6 s: the agent pets the watchdog every 0.3 s.
                ("WATCHDOG_USEC".into(), "600000".into()),
            ],
            ..AgentOpts::default()
        },
    )
    .unwrap();
    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 256];
    let receive = |seen: &mut Vec<String>, buf: &mut [u8], until: Duration| {
        let deadline = std::time::Instant::now() + until;
        while std::time::Instant::now() < deadline {
            if let Ok(n) = sock.recv(buf) {
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    };
    receive(&mut seen, &mut buf, Duration::from_secs(3));
    let ready = seen.iter().position(|m| m == "READY=1");
    assert!(ready.is_some(), "no READY=1: {seen:?}\n{}", agent.log());
    // READY comes once the agent is registered.
    assert!(agent.log().contains("registered with the control plane"));
    let pets = seen.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(pets >= 4, "{pets} watchdog notifications in ~3 s: {seen:?}");

    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{status:?}");
    receive(&mut seen, &mut buf, Duration::from_millis(500));
    assert!(
        seen.iter().any(|m| m == "STOPPING=1"),
        "no STOPPING=1: {seen:?}"
    );
}
