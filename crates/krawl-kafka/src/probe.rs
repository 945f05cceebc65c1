//! Read-only probes behind the agent's short jobs: the verdict of a connection test
//! (`kafka.test_connection`), the permission checks of `kafka.preflight` and the topic list of
//! `kafka.list_topics`.
//!
//! Every function takes an already connected [`Connection`] (or, for a failed connection, the
//! [`ExtractError`] it failed with) and returns `krawl_model` records, so the probes can be
//! tested against a broker without the agent. They send only APIs of
//! [`crate::api_keys::READ_ONLY_APIS`]: Metadata, DescribeCluster, DescribeConfigs, ListOffsets,
//! ListGroups, DescribeGroups, OffsetFetch and DescribeLogDirs (through [`crate::log_dirs`]).
//!
//! Preflight checks what an extraction needs, one [`PermissionRecord`] per permission, with
//! Kafka's documented operation/resource mapping for each API:
//!
//! | permission | API | ACL |
//! |---|---|---|
//! | `describe_cluster` | DescribeCluster | DESCRIBE on the cluster |
//! | `describe_topics` | Metadata | DESCRIBE on topics |
//! | `describe_configs` | DescribeConfigs | DESCRIBE_CONFIGS on topics |
//! | `list_offsets` | ListOffsets | DESCRIBE on topics |
//! | `describe_groups` | ListGroups + DescribeGroups | DESCRIBE on the cluster (ListGroups lists every group) or on each group; DESCRIBE on groups |
//! | `describe_group_offsets` | OffsetFetch | DESCRIBE on groups and on their topics |
//! | `describe_log_dirs` | DescribeLogDirs | DESCRIBE on the cluster |
//! | `read_schema_registry` | `GET /subjects` | a registry role with subject read |
//!
//! `granted` is `true` when the call succeeded, `false` when the broker answered with an
//! authorization error (then `remedy` is the `kafka-acls` command to run), and `null` when it
//! could not be told (unsupported API, nothing to try it on, a broker that hides what the
//! principal may not see): `detail` then says why.

use std::time::{Duration, Instant};

use krawl_model::{
    ApiVersionRange, Broker, ConnectionTestRecord, PermissionRecord, TopicListingRecord,
};
use krawl_schema_registry::{RegistryClient, RegistryError};

use crate::admin_ext::{self, AdminExtError, OffsetSpec};
use crate::api_keys::api_name;
use crate::config::{Filters, KafkaConfig, SaslMechanism};
use crate::connection::Connection;
use crate::error::{ExtractError, FailureClass};
use crate::extract::is_internal_topic;
use crate::log_dirs;

/// Topics (and groups) preflight tries the per-item calls on.
pub const PREFLIGHT_SAMPLE: usize = 5;

/// What a cluster says about itself: for the connection test.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterInfo {
    pub cluster_id: Option<String>,
    pub controller_id: Option<i32>,
    pub brokers: Vec<Broker>,
    pub api_versions: Vec<ApiVersionRange>,
}

/// Cluster id, brokers and API versions of a connected cluster. Proves the cluster still
/// answers a Metadata request first (a pooled connection may be older than the cluster's
/// last restart); a failure is classified like a failed connect.
pub async fn cluster_info(conn: &Connection) -> Result<ClusterInfo, ExtractError> {
    let timeout = conn.timeout();
    let admin = conn.admin();
    admin_ext::probe_brokers(admin, timeout)
        .await
        .map_err(|e| {
            let class = crate::error::classify(&conn.context().errors())
                .map(|(c, _)| c)
                .unwrap_or(if matches!(e, AdminExtError::TimedOut { .. }) {
                    FailureClass::Timeout
                } else {
                    FailureClass::Other
                });
            ExtractError::Connect {
                hosts: conn.hosts().to_string(),
                class,
                cause: format!("Metadata failed: {e}"),
            }
        })?;
    let (cluster_id, controller_id, mut brokers) =
        match admin_ext::describe_cluster(admin, timeout).await {
            Ok(d) => (
                d.cluster_id,
                d.controller.map(|c| c.id),
                d.nodes.into_iter().map(broker).collect::<Vec<_>>(),
            ),
            Err(_) => {
                let md = conn.metadata().await?;
                let brokers = crate::extract::librdkafka_brokers(&md);
                let (id, ctl) = admin_ext::cluster_id_and_controller(admin, timeout).await;
                (id, ctl, brokers)
            }
        };
    brokers.sort_by_key(|b| b.id);
    let api_versions = conn
        .context()
        .settled_api_versions(Duration::from_secs(2))
        .await
        .iter()
        .map(|(k, (lo, hi))| ApiVersionRange {
            api_key: *k,
            name: api_name(*k).to_string(),
            min_version: *lo,
            max_version: *hi,
        })
        .collect();
    Ok(ClusterInfo {
        cluster_id,
        controller_id,
        brokers,
        api_versions,
    })
}

fn broker(n: admin_ext::Node) -> Broker {
    Broker {
        id: n.id,
        host: n.host,
        port: n.port,
        rack: n.rack,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The verdict of a connection test that connected: `ok` when the cluster also told its
/// brokers. `started` is when the test began (connecting included).
pub async fn connection_test(conn: &Connection, started: Instant) -> ConnectionTestRecord {
    let cfg = conn.config();
    match cluster_info(conn).await {
        Ok(info) => ConnectionTestRecord {
            ok: true,
            verdict: format!(
                "connected to cluster {} at {}: {} broker(s), {} over {}{}",
                info.cluster_id.as_deref().unwrap_or("(id unknown)"),
                conn.hosts(),
                info.brokers.len(),
                if cfg.sasl_mechanism().is_some() {
                    "authenticated"
                } else {
                    "no authentication"
                },
                cfg.security_protocol.as_str(),
                cfg.sasl_mechanism()
                    .map(|m| format!(" ({})", m.as_str()))
                    .unwrap_or_default()
            ),
            bootstrap_servers: conn.hosts().to_string(),
            security_protocol: cfg.security_protocol.as_str().to_string(),
            sasl_mechanism: cfg.sasl_mechanism().map(|m| m.as_str().to_string()),
            reachable: true,
            authenticated: true,
            error_class: None,
            cluster_id: info.cluster_id,
            brokers: info.brokers,
            api_versions: info.api_versions,
            duration_ms: millis(started.elapsed()),
        },
        Err(e) => connection_test_failed(cfg, &e, started),
    }
}

/// The verdict of a connection test that failed with `err` (from [`Connection::connect`] or
/// [`cluster_info`]): `ok: false`, the error class, and the message with its hint.
pub fn connection_test_failed(
    cfg: &KafkaConfig,
    err: &ExtractError,
    started: Instant,
) -> ConnectionTestRecord {
    let class = err.class();
    // What got through before the failure: TCP (and TLS) for a failed login or an
    // authorization error; nothing for the rest.
    let (reachable, authenticated) = match class {
        FailureClass::Authentication => (true, false),
        FailureClass::Authorization => (true, true),
        _ => (false, false),
    };
    let mut verdict = format!("{} failed: {err}", class.as_str());
    if !matches!(err, ExtractError::Connect { .. }) {
        verdict.push_str(&format!("\n  hint: {}", class.hint()));
    }
    ConnectionTestRecord {
        ok: false,
        verdict,
        bootstrap_servers: cfg.bootstrap_servers.join(", "),
        security_protocol: cfg.security_protocol.as_str().to_string(),
        sasl_mechanism: cfg.sasl_mechanism().map(|m| m.as_str().to_string()),
        reachable,
        authenticated,
        error_class: Some(class.as_str().to_string()),
        cluster_id: None,
        brokers: Vec::new(),
        api_versions: Vec::new(),
        duration_ms: millis(started.elapsed()),
    }
}

/// One listing per topic of one Metadata call, those `filters` select, sorted by name.
/// Topics the broker returned with an error are in the second list (name, error).
pub async fn list_topics(
    conn: &Connection,
    filters: &Filters,
) -> Result<(Vec<TopicListingRecord>, Vec<(String, String)>), ExtractError> {
    let md = conn.metadata().await?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for t in md.topics() {
        let internal = is_internal_topic(t.name());
        if !filters.topic(t.name(), internal) {
            continue;
        }
        if let Some(err) = t.error() {
            errors.push((t.name().to_string(), format!("{err:?}")));
            continue;
        }
        out.push(TopicListingRecord {
            name: t.name().to_string(),
            partitions: t.partitions().len(),
            internal,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    errors.sort();
    Ok((out, errors))
}

// ------------------------------------------------------------------------------------------------
// Preflight
// ------------------------------------------------------------------------------------------------

/// Which resource an ACL is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Cluster,
    Topic,
    Group,
}

/// Builds `kafka-acls` commands for the connection's principal.
#[derive(Debug, Clone)]
struct Acl {
    bootstrap: String,
    principal: String,
}

impl Acl {
    fn new(cfg: &KafkaConfig) -> Self {
        let principal = match (cfg.sasl_mechanism(), cfg.sasl.as_ref()) {
            (Some(SaslMechanism::OauthBearer), _) => {
                "User:<principal of the OAuth token, usually its sub claim>".to_string()
            }
            (Some(_), Some(s)) => format!("User:{}", s.username.as_deref().unwrap_or("<user>")),
            _ if cfg.security_protocol.uses_tls()
                && cfg
                    .tls
                    .as_ref()
                    .is_some_and(|t| t.client_cert_file.is_some()) =>
            {
                "'User:<distinguished name of the client certificate>'".to_string()
            }
            _ => "User:<principal>".to_string(),
        };
        Self {
            bootstrap: cfg
                .bootstrap_servers
                .first()
                .cloned()
                .unwrap_or_else(|| "<broker:port>".to_string()),
            principal,
        }
    }

    /// `kafka-acls ... --add --allow-principal P --operation OP --<resource> ['*']`.
    fn command(&self, operation: &str, resource: Resource) -> String {
        let target = match resource {
            Resource::Cluster => "--cluster".to_string(),
            Resource::Topic => "--topic '*'".to_string(),
            Resource::Group => "--group '*'".to_string(),
        };
        format!(
            "kafka-acls --bootstrap-server {} --add --allow-principal {} --operation {operation} {target}",
            self.bootstrap, self.principal
        )
    }
}

fn record(
    permission: &str,
    granted: Option<bool>,
    detail: impl Into<String>,
    remedy: Option<String>,
) -> PermissionRecord {
    PermissionRecord {
        permission: permission.to_string(),
        granted,
        detail: detail.into(),
        remedy: if granted == Some(false) { remedy } else { None },
    }
}

/// An admin error as a verdict: authorization → denied, anything else → unknown.
fn from_error(permission: &str, what: &str, e: &AdminExtError, remedy: String) -> PermissionRecord {
    if e.is_authorization() {
        record(
            permission,
            Some(false),
            format!("{what} was refused: {e}"),
            Some(remedy),
        )
    } else if e.is_unsupported() {
        record(
            permission,
            None,
            format!("{what} is not supported by the brokers: {e}"),
            None,
        )
    } else {
        record(
            permission,
            None,
            format!("{what} failed, so the permission could not be checked: {e}"),
            None,
        )
    }
}

/// Every Kafka-side permission an extraction needs (see the module doc), in a fixed order:
/// describe_cluster, describe_topics, describe_configs, list_offsets, describe_groups,
/// describe_group_offsets, describe_log_dirs. Read-only calls only; per-item calls go to at
/// most [`PREFLIGHT_SAMPLE`] topics and groups.
pub async fn preflight(conn: &Connection) -> Vec<PermissionRecord> {
    let cfg = conn.config();
    let acl = Acl::new(cfg);
    let admin = conn.admin();
    let timeout = conn.timeout();
    let mut out = Vec::new();

    // describe_cluster: DescribeCluster → Cluster DESCRIBE.
    out.push(match admin_ext::describe_cluster(admin, timeout).await {
        Ok(d) => record(
            "describe_cluster",
            Some(true),
            format!(
                "DescribeCluster answered: cluster {}, {} broker(s)",
                d.cluster_id.as_deref().unwrap_or("(id unknown)"),
                d.nodes.len()
            ),
            None,
        ),
        Err(e) => from_error(
            "describe_cluster",
            "DescribeCluster",
            &e,
            acl.command("Describe", Resource::Cluster),
        ),
    });

    // describe_topics: Metadata (all topics) → Topic DESCRIBE. Kafka leaves the topics the
    // principal may not describe out of the answer, so "no topics" cannot be told from
    // "no permission".
    let mut sample: Vec<(String, usize)> = Vec::new();
    let topics_remedy = acl.command("Describe", Resource::Topic);
    match conn.metadata().await {
        Ok(md) => {
            let mut listed: Vec<(String, usize)> = Vec::new();
            let mut denied: Vec<String> = Vec::new();
            for t in md.topics() {
                match t.error() {
                    None => listed.push((t.name().to_string(), t.partitions().len())),
                    Some(e)
                        if format!("{e:?}")
                            .to_ascii_uppercase()
                            .contains("AUTHORIZATION") =>
                    {
                        denied.push(t.name().to_string())
                    }
                    Some(_) => {}
                }
            }
            listed.sort();
            // Sample user topics first: they are what an extraction is for.
            sample = listed
                .iter()
                .filter(|(n, p)| !is_internal_topic(n) && *p > 0)
                .chain(
                    listed
                        .iter()
                        .filter(|(n, p)| is_internal_topic(n) && *p > 0),
                )
                .take(PREFLIGHT_SAMPLE)
                .cloned()
                .collect();
            out.push(if !denied.is_empty() {
                denied.sort();
                record(
                    "describe_topics",
                    Some(false),
                    format!(
                        "Metadata refused {} topic(s) ({}); {} listed",
                        denied.len(),
                        denied.join(", "),
                        listed.len()
                    ),
                    Some(topics_remedy.clone()),
                )
            } else if listed.is_empty() {
                record(
                    "describe_topics",
                    None,
                    format!(
                        "Metadata listed no topics: the cluster has none, or the principal may describe none (Kafka omits those); if topics exist, run: {topics_remedy}"
                    ),
                    None,
                )
            } else {
                record(
                    "describe_topics",
                    Some(true),
                    format!(
                        "Metadata listed {} topic(s) (topics the principal may not DESCRIBE are left out by the broker)",
                        listed.len()
                    ),
                    None,
                )
            });
        }
        Err(e) => out.push(record(
            "describe_topics",
            None,
            format!("Metadata failed, so topic permissions could not be checked: {e}"),
            None,
        )),
    }
    let sample_names: Vec<String> = sample.iter().map(|(n, _)| n.clone()).collect();
    let no_topic = "no topic to try it on (Metadata listed none)";

    // describe_configs: DescribeConfigs on sampled topics → Topic DESCRIBE_CONFIGS.
    let configs_remedy = acl.command("DescribeConfigs", Resource::Topic);
    out.push(if sample_names.is_empty() {
        record("describe_configs", None, no_topic, None)
    } else {
        match admin_ext::describe_topic_configs(admin, &sample_names, timeout).await {
            Ok(results) => {
                let denied: Vec<&str> = results
                    .iter()
                    .filter(|t| {
                        t.result
                            .as_ref()
                            .is_err_and(AdminExtError::is_authorization)
                    })
                    .map(|t| t.name.as_str())
                    .collect();
                let failed: Vec<String> = results
                    .iter()
                    .filter_map(|t| match &t.result {
                        Err(e) if !e.is_authorization() => Some(format!("{}: {e}", t.name)),
                        _ => None,
                    })
                    .collect();
                if !denied.is_empty() {
                    record(
                        "describe_configs",
                        Some(false),
                        format!("DescribeConfigs refused on {}", denied.join(", ")),
                        Some(configs_remedy),
                    )
                } else if !failed.is_empty() {
                    record(
                        "describe_configs",
                        None,
                        format!("DescribeConfigs failed: {}", failed.join("; ")),
                        None,
                    )
                } else {
                    record(
                        "describe_configs",
                        Some(true),
                        format!("DescribeConfigs answered for {}", sample_names.join(", ")),
                        None,
                    )
                }
            }
            Err(e) => from_error("describe_configs", "DescribeConfigs", &e, configs_remedy),
        }
    });

    // list_offsets: ListOffsets (latest) on partition 0 of sampled topics → Topic DESCRIBE.
    out.push(if sample_names.is_empty() {
        record("list_offsets", None, no_topic, None)
    } else {
        let parts: Vec<(String, i32)> = sample_names.iter().map(|n| (n.clone(), 0)).collect();
        match admin_ext::list_offsets(admin, &parts, OffsetSpec::Latest, timeout).await {
            Ok(results) => {
                let denied: Vec<String> = results
                    .iter()
                    .filter(|p| {
                        p.result
                            .as_ref()
                            .is_err_and(AdminExtError::is_authorization)
                    })
                    .map(|p| format!("{}/{}", p.topic, p.partition))
                    .collect();
                let failed: Vec<String> = results
                    .iter()
                    .filter_map(|p| match &p.result {
                        Err(e) if !e.is_authorization() => {
                            Some(format!("{}/{}: {e}", p.topic, p.partition))
                        }
                        _ => None,
                    })
                    .collect();
                if !denied.is_empty() {
                    record(
                        "list_offsets",
                        Some(false),
                        format!("ListOffsets refused on {}", denied.join(", ")),
                        Some(topics_remedy.clone()),
                    )
                } else if !failed.is_empty() {
                    record(
                        "list_offsets",
                        None,
                        format!("ListOffsets failed: {}", failed.join("; ")),
                        None,
                    )
                } else {
                    record(
                        "list_offsets",
                        Some(true),
                        format!(
                            "ListOffsets answered for partition 0 of {}",
                            sample_names.join(", ")
                        ),
                        None,
                    )
                }
            }
            Err(e) => from_error("list_offsets", "ListOffsets", &e, topics_remedy.clone()),
        }
    });

    // describe_groups: ListGroups (Cluster DESCRIBE lists all; else the groups with Group
    // DESCRIBE) + DescribeGroups on sampled groups (Group DESCRIBE).
    let groups_remedy = acl.command("Describe", Resource::Group);
    let mut described_groups: Vec<String> = Vec::new();
    out.push(match admin_ext::list_consumer_groups(admin, timeout).await {
        Err(e) => from_error(
            "describe_groups",
            "ListGroups",
            &e,
            format!(
                "{} (lists every group), or per group: {groups_remedy}",
                acl.command("Describe", Resource::Cluster)
            ),
        ),
        Ok((listings, broker_errors)) => {
            let mut ids: Vec<String> = listings.into_iter().map(|g| g.group_id).collect();
            ids.sort();
            ids.dedup();
            let partial = if broker_errors.is_empty() {
                String::new()
            } else {
                let errs: Vec<String> = broker_errors.iter().map(ToString::to_string).collect();
                format!("; some brokers did not list their groups: {}", errs.join("; "))
            };
            if ids.is_empty() {
                if broker_errors.iter().any(AdminExtError::is_authorization) {
                    record(
                        "describe_groups",
                        Some(false),
                        format!("ListGroups was refused{partial}"),
                        Some(groups_remedy.clone()),
                    )
                } else {
                    record(
                        "describe_groups",
                        None,
                        format!(
                            "ListGroups listed no groups: the cluster has none, or the principal may describe none (Kafka lists only those it may); if groups exist, run: {groups_remedy}{partial}"
                        ),
                        None,
                    )
                }
            } else {
                let batch: Vec<String> = ids.iter().take(PREFLIGHT_SAMPLE).cloned().collect();
                match admin_ext::describe_consumer_groups(admin, &batch, timeout).await {
                    Err(e) => from_error("describe_groups", "DescribeGroups", &e, groups_remedy.clone()),
                    Ok(descriptions) => {
                        let denied: Vec<&str> = descriptions
                            .iter()
                            .filter(|d| d.error.as_ref().is_some_and(AdminExtError::is_authorization))
                            .map(|d| d.group_id.as_str())
                            .collect();
                        let failed: Vec<String> = descriptions
                            .iter()
                            .filter_map(|d| match &d.error {
                                Some(e) if !e.is_authorization() => {
                                    Some(format!("{}: {e}", d.group_id))
                                }
                                _ => None,
                            })
                            .collect();
                        described_groups = descriptions
                            .iter()
                            .filter(|d| d.error.is_none())
                            .map(|d| d.group_id.clone())
                            .collect();
                        if !denied.is_empty() {
                            record(
                                "describe_groups",
                                Some(false),
                                format!("DescribeGroups refused on {}", denied.join(", ")),
                                Some(groups_remedy.clone()),
                            )
                        } else if !failed.is_empty() && described_groups.is_empty() {
                            record(
                                "describe_groups",
                                None,
                                format!("DescribeGroups failed: {}", failed.join("; ")),
                                None,
                            )
                        } else {
                            record(
                                "describe_groups",
                                Some(true),
                                format!(
                                    "ListGroups listed {} group(s); DescribeGroups answered for {}{partial}",
                                    ids.len(),
                                    described_groups.join(", ")
                                ),
                                None,
                            )
                        }
                    }
                }
            }
        }
    });

    // describe_group_offsets: OffsetFetch → Group DESCRIBE + Topic DESCRIBE.
    out.push(if described_groups.is_empty() {
        record(
            "describe_group_offsets",
            None,
            "no group to try it on (none listed and described)",
            None,
        )
    } else {
        let mut denied_groups = Vec::new();
        let mut denied_topics = Vec::new();
        let mut failed = Vec::new();
        let mut answered = Vec::new();
        for g in &described_groups {
            match admin_ext::list_consumer_group_offsets(admin, g, timeout).await {
                Ok(offsets) => {
                    for o in offsets {
                        match o.error {
                            Some(e) if e.is_authorization() => {
                                denied_topics.push(format!("{}/{}", o.topic, o.partition))
                            }
                            Some(e) => failed.push(format!("{g} {}/{}: {e}", o.topic, o.partition)),
                            None => {}
                        }
                    }
                    answered.push(g.clone());
                }
                Err(e) if e.is_authorization() => denied_groups.push(format!("{g} ({e})")),
                Err(e) => failed.push(format!("{g}: {e}")),
            }
        }
        if !denied_groups.is_empty() {
            record(
                "describe_group_offsets",
                Some(false),
                format!("OffsetFetch refused for {}", denied_groups.join(", ")),
                Some(format!(
                    "{groups_remedy}; and on the topics they read: {topics_remedy}"
                )),
            )
        } else if !denied_topics.is_empty() {
            record(
                "describe_group_offsets",
                Some(false),
                format!(
                    "OffsetFetch refused the committed offsets of {} (no DESCRIBE on those topics)",
                    denied_topics.join(", ")
                ),
                Some(topics_remedy.clone()),
            )
        } else if answered.is_empty() {
            record(
                "describe_group_offsets",
                None,
                format!("OffsetFetch failed: {}", failed.join("; ")),
                None,
            )
        } else {
            record(
                "describe_group_offsets",
                Some(true),
                format!("OffsetFetch answered for {}", answered.join(", ")),
                None,
            )
        }
    });

    out.push(log_dirs_permission(conn, &sample, &acl).await);
    out
}

/// describe_log_dirs: DescribeLogDirs on every broker for partition 0 of one sampled topic →
/// Cluster DESCRIBE.
async fn log_dirs_permission(
    conn: &Connection,
    sample: &[(String, usize)],
    acl: &Acl,
) -> PermissionRecord {
    const P: &str = "describe_log_dirs";
    let remedy = acl.command("Describe", Resource::Cluster);
    let api = conn
        .context()
        .settled_api_versions(Duration::from_secs(2))
        .await;
    if !api.is_empty() && !api.contains_key(&35) {
        return record(
            P,
            None,
            "the brokers do not support DescribeLogDirs (API 35): extractions report size_bytes as null",
            None,
        );
    }
    let Some((topic, _)) = sample.first() else {
        return record(
            P,
            None,
            "no topic to try it on (Metadata listed none)",
            None,
        );
    };
    let brokers: Vec<(i32, String, u16)> = match conn.metadata().await {
        Ok(md) => md
            .brokers()
            .iter()
            .map(|b| {
                (
                    b.id(),
                    b.host().to_string(),
                    u16::try_from(b.port()).unwrap_or(0),
                )
            })
            .collect(),
        Err(e) => {
            return record(
                P,
                None,
                format!("Metadata failed, no brokers to ask: {e}"),
                None,
            )
        }
    };
    let settings = conn.broker_settings();
    match log_dirs::partition_sizes(&settings, &brokers, &[(topic.as_str(), 1)]).await {
        Err(log_dirs::BrokerError::Unsupported(what)) => record(
            P,
            None,
            format!("DescribeLogDirs cannot be used here: {what} unsupported; extractions report size_bytes as null"),
            None,
        ),
        Err(e) => record(P, None, format!("DescribeLogDirs failed: {e}"), None),
        Ok(sizes) => {
            let denied: Vec<String> = sizes
                .broker_errors
                .iter()
                .filter(|(_, e)| {
                    matches!(e, log_dirs::BrokerError::Auth { cause, .. } if cause.to_ascii_lowercase().contains("authorization"))
                })
                .map(|(b, e)| format!("broker {b}: {e}"))
                .collect();
            if !denied.is_empty() {
                record(
                    P,
                    Some(false),
                    format!("DescribeLogDirs refused: {}", denied.join("; ")),
                    Some(remedy),
                )
            } else if !sizes.broker_errors.is_empty() {
                let errs: Vec<String> = sizes
                    .broker_errors
                    .iter()
                    .map(|(b, e)| format!("broker {b}: {e}"))
                    .collect();
                record(P, None, format!("DescribeLogDirs failed: {}", errs.join("; ")), None)
            } else if sizes.sizes.get(0, 0).flatten().is_some() {
                record(
                    P,
                    Some(true),
                    format!(
                        "DescribeLogDirs answered on {} broker(s) (size of {topic}/0 reported)",
                        brokers.len()
                    ),
                    None,
                )
            } else {
                record(
                    P,
                    None,
                    format!(
                        "DescribeLogDirs answered without the size of {topic}/0: brokers before Kafka 2.x answer an unauthorized request with an empty result; if sizes stay null, run: {remedy}"
                    ),
                    None,
                )
            }
        }
    }
}

/// read_schema_registry: `GET /subjects` with the configured auth.
pub async fn registry_permission(client: &RegistryClient) -> PermissionRecord {
    const P: &str = "read_schema_registry";
    match client.subjects(false).await {
        Ok(subjects) => record(
            P,
            Some(true),
            format!("GET /subjects on {} listed {} subject(s)", client.url(), subjects.len()),
            None,
        ),
        Err(e @ RegistryError::Unauthorized { .. }) => record(
            P,
            Some(false),
            format!("GET /subjects on {} was refused (HTTP 401): {e}", client.url()),
            Some(
                "fix schema_registry.auth: the username and password (on Confluent Cloud a Schema Registry API key and secret, not a Kafka one) or the bearer token the registry accepts".to_string(),
            ),
        ),
        Err(e @ RegistryError::Forbidden { .. }) => record(
            P,
            Some(false),
            format!("GET /subjects on {} was refused (HTTP 403): {e}", client.url()),
            Some(
                "grant the registry principal read on all subjects, e.g. Confluent RBAC: confluent iam rbac role-binding create --principal User:<user> --role DeveloperRead --resource Subject:* --schema-registry-cluster <id>; or a Schema Registry ACL / role with subject read".to_string(),
            ),
        ),
        Err(e) => record(
            P,
            None,
            format!("GET /subjects on {} failed, so read access could not be checked: {e}", client.url()),
            None,
        ),
    }
}

/// read_schema_registry when no client could be built (a secret that did not resolve, bad TLS
/// files): not checked.
pub fn registry_permission_unchecked(url: &str, why: &str) -> PermissionRecord {
    record(
        "read_schema_registry",
        None,
        format!("Schema Registry {url} not contacted: {why}"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_commands_follow_kafkas_mapping() {
        let mut cfg = KafkaConfig::new(vec!["b1:9092".into(), "b2:9092".into()]);
        let acl = Acl::new(&cfg);
        assert_eq!(
            acl.command("Describe", Resource::Topic),
            "kafka-acls --bootstrap-server b1:9092 --add --allow-principal User:<principal> --operation Describe --topic '*'"
        );
        cfg.security_protocol = crate::config::SecurityProtocol::SaslPlaintext;
        cfg.sasl = Some(crate::config::SaslConfig {
            mechanism: SaslMechanism::Plain,
            username: Some("svc-krawl".into()),
            password: None,
            oauthbearer: None,
        });
        let acl = Acl::new(&cfg);
        assert!(acl
            .command("DescribeConfigs", Resource::Topic)
            .ends_with("--allow-principal User:svc-krawl --operation DescribeConfigs --topic '*'"));
        assert!(acl
            .command("Describe", Resource::Cluster)
            .ends_with("--operation Describe --cluster"));
        assert!(acl
            .command("Describe", Resource::Group)
            .ends_with("--operation Describe --group '*'"));
    }

    #[test]
    fn remedy_only_when_denied() {
        assert!(record("x", Some(true), "d", Some("r".into()))
            .remedy
            .is_none());
        assert!(record("x", None, "d", Some("r".into())).remedy.is_none());
        assert_eq!(
            record("x", Some(false), "d", Some("r".into()))
                .remedy
                .as_deref(),
            Some("r")
        );
    }

    #[test]
    fn failed_test_verdicts_say_what_got_through() {
        let cfg = KafkaConfig::new(vec!["127.0.0.1:1".into()]);
        let err = ExtractError::Connect {
            hosts: "127.0.0.1:1".into(),
            class: FailureClass::ConnectionRefused,
            cause: "Connection refused".into(),
        };
        let r = connection_test_failed(&cfg, &err, Instant::now());
        assert!(!r.ok && !r.reachable && !r.authenticated);
        assert_eq!(r.error_class.as_deref(), Some("connection_refused"));
        assert!(r.verdict.contains("hint:"), "{}", r.verdict);
        let err = ExtractError::Connect {
            hosts: "h:1".into(),
            class: FailureClass::Authentication,
            cause: "SASL authentication error".into(),
        };
        let r = connection_test_failed(&cfg, &err, Instant::now());
        assert!(r.reachable && !r.authenticated);
    }
}
