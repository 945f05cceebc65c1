//! `deploy/krawl.example.toml` is the documented config of both `krawl run` and `krawl extract`:
//! the agent reads it as it stands, every key of [`AgentConfig`] (per its JSON Schema, enum
//! variants and their fields included) is named in it, as a key or in a commented-out line, its
//! uncommented values are the defaults, every `KRAWL_*` override is listed, and the commented-out
//! alternatives parse too. (krawl-kafka's `example_config` test does the same for the
//! `krawl extract` tables; this one repeats its small schema walk rather than export a test helper
//! from that crate.)

use std::collections::BTreeSet;

use krawl_agent::config::{AgentConfig, AgentSection, AuthConfig, ClientAuth, ControlPlaneConfig};
use krawl_secrets::SecretRef;

const EXAMPLE: &str = include_str!("../../../deploy/krawl.example.toml");
const PATH: &str = "deploy/krawl.example.toml";

/// Parses and validates as `krawl run` does, with no environment at all.
fn parse(text: &str) -> AgentConfig {
    AgentConfig::from_toml(text, PATH, &|_| None)
        .unwrap_or_else(|e| panic!("{PATH} is not a valid agent config: {e}"))
}

/// Property names of a JSON Schema, walking only schema-valued keywords. An externally tagged
/// enum such as `control_plane.auth` is a `oneOf` of objects whose property is the variant name,
/// so variant names and their fields (`oauth2.token_url`, ...) are collected too.
fn collect_keys(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    let Some(map) = v.as_object() else { return };
    if let Some(props) = map.get("properties").and_then(|p| p.as_object()) {
        for (name, schema) in props {
            out.insert(name.clone());
            collect_keys(schema, out);
        }
    }
    for kw in ["definitions", "anyOf", "allOf", "oneOf", "items"] {
        match map.get(kw) {
            Some(serde_json::Value::Object(defs)) if kw == "definitions" => {
                defs.values().for_each(|d| collect_keys(d, out))
            }
            Some(serde_json::Value::Array(list)) => list.iter().for_each(|d| collect_keys(d, out)),
            Some(other) => collect_keys(other, out),
            None => {}
        }
    }
}

/// `key` is written as a TOML key somewhere (a line, an inline table, a table header, a dotted
/// key), commented out or not; a word merely containing it (`username` for `name`) does not count.
fn documents(text: &str, key: &str) -> bool {
    let pattern = format!(r"(?m)(^|[\s{{,#.\[]){}(\s*=|\]|\.)", regex::escape(key));
    regex::Regex::new(&pattern).is_ok_and(|re| re.is_match(text))
}

/// The agent's part of the example: everything before the shared `[secrets]` table.
fn agent_part() -> &'static str {
    EXAMPLE
        .split_once("\n[secrets]\n")
        .map(|(agent, _)| agent)
        .expect("the example has a [secrets] table")
}

/// Uncomments the lines `# key = ...` (and `# [header]` for keys given as `[header]`) of the
/// agent's part.
fn uncomment(text: &str, keys: &[&str]) -> String {
    text.lines()
        .map(|line| {
            let body = line.strip_prefix("# ").unwrap_or(line);
            let hit = keys.iter().any(|k| {
                if k.starts_with('[') {
                    body == *k
                } else {
                    body.starts_with(&format!("{k} = "))
                }
            });
            if hit && body != line {
                format!("{body}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect()
}

const BOOTSTRAP_LINE: &str = "auth = { bootstrap_token = \"env://KRAWL_CONTROL_PLANE_TOKEN\" }\n";

#[test]
fn the_agent_reads_the_example() {
    let cfg = parse(EXAMPLE);
    assert_eq!(cfg.control_plane.url, "https://krawl.example.com");
    assert!(matches!(
        cfg.control_plane.auth,
        Some(AuthConfig::BootstrapToken(SecretRef::Env(ref n))) if n == "KRAWL_CONTROL_PLANE_TOKEN"
    ));
    assert_eq!(
        cfg.agent.labels.get("env").map(String::as_str),
        Some("prod")
    );
    assert!(!cfg.policy.allowed_bootstrap_servers.is_empty());
    assert!(!cfg.secrets.allow.is_empty());
}

#[test]
fn the_example_names_every_agent_key() {
    let schema = serde_json::to_value(schemars::schema_for!(AgentConfig)).expect("schema");
    let mut keys = BTreeSet::new();
    collect_keys(&schema, &mut keys);
    // The walk reached the sections, the secret stores and the auth variants' fields.
    for expected in [
        "max_concurrent_jobs",
        "request_timeout_secs",
        "bootstrap_token",
        "static_token",
        "oauth2",
        "audience",
        "allowed_job_kinds",
        "cache_ttl_secs",
    ] {
        assert!(keys.contains(expected), "schema walk missed {expected}");
    }
    assert!(keys.len() > 40, "{keys:?}");
    let missing: Vec<&String> = keys.iter().filter(|k| !documents(EXAMPLE, k)).collect();
    assert!(
        missing.is_empty(),
        "{PATH} does not document these agent config keys: {missing:?}"
    );
    // The matcher is not fooled by longer words.
    assert!(!documents("username = \"u\"", "name"));
    assert!(documents("# [control_plane.auth.oauth2]", "oauth2"));
}

#[test]
fn uncommented_values_are_the_defaults() {
    let cfg = parse(EXAMPLE);
    let (a, d) = (&cfg.agent, AgentSection::default());
    assert_eq!(a.max_concurrent_jobs, d.max_concurrent_jobs);
    assert_eq!(a.shutdown_grace_secs, d.shutdown_grace_secs);
    assert_eq!(a.health_listen, d.health_listen);
    assert_eq!(a.connection_idle_secs, d.connection_idle_secs);
    assert_eq!(a.chunk_max_records, d.chunk_max_records);
    assert_eq!(a.chunk_max_bytes, d.chunk_max_bytes);
    assert_eq!(a.upload_retry_secs, d.upload_retry_secs);
    let (c, d) = (&cfg.control_plane, ControlPlaneConfig::default());
    assert_eq!(c.connect_timeout_secs, d.connect_timeout_secs);
    assert_eq!(c.request_timeout_secs, d.request_timeout_secs);
    assert!(!cfg.policy.allow_literal_secrets, "default false");
}

#[test]
fn every_environment_override_is_listed() {
    let source = include_str!("../src/config.rs");
    let vars: BTreeSet<&str> = source
        .split("get(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|v| v.starts_with("KRAWL_"))
        .collect();
    assert!(vars.len() >= 10, "{vars:?}");
    let missing: Vec<&&str> = vars.iter().filter(|v| !EXAMPLE.contains(**v)).collect();
    assert!(
        missing.is_empty(),
        "{PATH} does not list these environment overrides: {missing:?}"
    );
}

#[test]
fn commented_out_alternatives_parse() {
    let rest = &EXAMPLE[agent_part().len()..];

    let optional = uncomment(agent_part(), &["name", "ca_file", "proxy", "no_proxy"]) + rest;
    let cfg = parse(&optional);
    assert_eq!(cfg.agent.name, "kafka-prod-agent-1");
    assert!(cfg.control_plane.ca_file.is_some());
    assert!(cfg.control_plane.proxy.is_some() && cfg.control_plane.no_proxy.is_some());

    let without_bootstrap = agent_part().replacen(BOOTSTRAP_LINE, "", 1);
    assert_ne!(
        without_bootstrap,
        agent_part(),
        "the bootstrap_token line moved"
    );

    let static_token = uncomment(&without_bootstrap, &["auth"]) + rest;
    assert!(matches!(
        parse(&static_token).control_plane.auth,
        Some(AuthConfig::StaticToken(SecretRef::File { .. }))
    ));

    let oauth2 = uncomment(
        &without_bootstrap,
        &[
            "[control_plane.auth.oauth2]",
            "token_url",
            "client_id",
            "client_secret",
            "scope",
            "audience",
            "client_auth",
        ],
    ) + rest;
    match parse(&oauth2).control_plane.auth {
        Some(AuthConfig::Oauth2(o)) => {
            assert!(o.token_url.starts_with("https://"));
            assert!(o.scope.is_some() && o.audience.is_some());
            assert_eq!(o.client_auth, ClientAuth::default());
        }
        other => panic!("expected oauth2, got {other:?}"),
    }
}

/// `krawl check --offline` accepts the example (its CA file and token reference are not
/// touched) and says what it skipped; without `--offline` the unset token fails the check.
#[tokio::test]
async fn check_offline_validates_without_contacting_anything() {
    let cfg = parse(EXAMPLE);
    let report = krawl_agent::agent::check(&cfg, true).await;
    let text = report.to_string();
    assert!(report.ok(), "{text}");
    assert!(text.contains("[ ok ] config: valid"), "{text}");
    assert!(text.contains("skipped (--offline)"), "{text}");
    assert!(!text.contains("] credential:"), "{text}");
    assert!(!text.contains("] control plane reachable:"), "{text}");
    if std::env::var_os("KRAWL_CONTROL_PLANE_TOKEN").is_none() {
        let report = krawl_agent::agent::check(&cfg, false).await;
        assert!(!report.ok(), "{report}");
        assert!(report.to_string().contains("[FAIL] credential"), "{report}");
    }
}
