//! Exercises every `krawl_kafka::admin_ext` wrapper in a loop; used by
//! `scripts/leak-check.sh` under valgrind.
//!
//! ```text
//! admin_ext_loop --bootstrap HOST:PORT [--iterations N] [--timeout-ms MS]
//!                [--seed] [--live-member] [--error-paths]
//!                [--legacy-api VERSION] [--verbose]
//! ```
//!
//! * `--seed` creates a test topic, produces a few messages and commits
//!   offsets for a consumer group, then exits (test fixture only — the
//!   wrappers themselves never write).
//! * `--live-member` keeps a subscribed consumer in the group
//!   `krawl-leak-live` while looping, so DescribeConsumerGroups sees members.
//! * `--error-paths` additionally calls every wrapper once against an
//!   unreachable bootstrap (`127.0.0.1:1`, 1 s timeout), so the timeout /
//!   error paths run under the leak checker too; errors there are expected.
//! * `--legacy-api VERSION` disables the ApiVersions handshake on the admin
//!   client (`api.version.request=false`,
//!   `broker.version.fallback=VERSION`), so librdkafka treats the broker as
//!   that old Kafka version and some calls take the "unsupported by broker"
//!   path; unsupported results are tolerated and counted.
//!
//! Prints one summary line; exits 1 if any wrapper failed unexpectedly
//! (DescribeCluster being unsupported by the broker is tolerated).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use krawl_kafka::admin_ext::{self, AdminExtError, OffsetSpec};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const SEED_TOPIC: &str = "krawl-leak-t1";
const SEED_PARTITIONS: i32 = 3;
const SEED_GROUP: &str = "krawl-leak-g1";
const LIVE_GROUP: &str = "krawl-leak-live";

struct Args {
    bootstrap: String,
    iterations: u32,
    timeout: Duration,
    seed: bool,
    live_member: bool,
    legacy_api: Option<String>,
    error_paths: bool,
    verbose: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut bootstrap = None;
    let mut iterations = 1;
    let mut timeout = Duration::from_secs(10);
    let mut seed = false;
    let mut live_member = false;
    let mut legacy_api = None;
    let mut error_paths = false;
    let mut verbose = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bootstrap" => bootstrap = it.next(),
            "--iterations" => {
                iterations = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--iterations needs a number")?
            }
            "--timeout-ms" => {
                timeout = Duration::from_millis(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--timeout-ms needs a number")?,
                )
            }
            "--seed" => seed = true,
            "--live-member" => live_member = true,
            "--legacy-api" => legacy_api = Some(it.next().ok_or("--legacy-api needs a version")?),
            "--error-paths" => error_paths = true,
            "--verbose" | "-v" => verbose = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        bootstrap: bootstrap.ok_or("--bootstrap HOST:PORT is required")?,
        iterations,
        timeout,
        seed,
        live_member,
        legacy_api,
        error_paths,
        verbose,
    })
}

fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

async fn seed(args: &Args) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = base_config(&args.bootstrap)
        .create()
        .map_err(|e| format!("admin client: {e}"))?;
    let topic = NewTopic::new(SEED_TOPIC, SEED_PARTITIONS, TopicReplication::Fixed(1));
    let res = admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .map_err(|e| format!("create_topics: {e}"))?;
    for r in res {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(format!("create topic {t}: {e}")),
        }
    }

    let producer: BaseProducer = base_config(&args.bootstrap)
        .create()
        .map_err(|e| format!("producer: {e}"))?;
    for p in 0..SEED_PARTITIONS {
        for i in 0..5 {
            let payload = format!("message {i} for partition {p}");
            producer
                .send(
                    BaseRecord::<(), _>::to(SEED_TOPIC)
                        .partition(p)
                        .payload(&payload),
                )
                .map_err(|(e, _)| format!("produce: {e}"))?;
        }
    }
    producer
        .flush(Duration::from_secs(15))
        .map_err(|e| format!("flush: {e}"))?;

    let consumer: BaseConsumer = base_config(&args.bootstrap)
        .set("group.id", SEED_GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    // Partition 2 deliberately gets no committed offset.
    tpl.add_partition_offset(SEED_TOPIC, 0, Offset::Offset(3))
        .map_err(|e| format!("tpl: {e}"))?;
    tpl.add_partition_offset(SEED_TOPIC, 1, Offset::Offset(5))
        .map_err(|e| format!("tpl: {e}"))?;
    consumer
        .commit(&tpl, CommitMode::Sync)
        .map_err(|e| format!("commit: {e}"))?;
    println!("seeded topic={SEED_TOPIC} partitions={SEED_PARTITIONS} group={SEED_GROUP}");
    Ok(())
}

#[derive(Default)]
struct Totals {
    anchored_brokers: usize,
    groups: usize,
    broker_errors: usize,
    described: usize,
    members: usize,
    committed: usize,
    committed_none: usize,
    cluster_ok: usize,
    cluster_unsupported: usize,
    cached_cluster_ok: usize,
    partitions: usize,
    topic_configs: usize,
    config_entries: usize,
    offsets_ok: usize,
    offsets_err: usize,
    failures: usize,
}

fn fail(t: &mut Totals, what: &str, e: &AdminExtError) {
    t.failures += 1;
    eprintln!("FAIL {what}: {e} (retriable={})", e.is_retriable());
}

async fn one_iteration(
    client: &Arc<AdminClient<DefaultClientContext>>,
    args: &Args,
    t: &mut Totals,
) {
    let timeout = args.timeout;

    // The metadata anchor (a topic handle) made and destroyed around a
    // brokers-only Metadata request, which then names the anchor's topic.
    match admin_ext::MetadataAnchor::new(client) {
        Ok(anchor) => {
            match admin_ext::probe_brokers(client, timeout).await {
                Ok(brokers) => t.anchored_brokers += brokers.len(),
                Err(e) => eprintln!("probe_brokers with anchor: {e}"),
            }
            drop(anchor);
        }
        Err(e) => eprintln!("metadata anchor: {e}"),
    }

    let group_ids = match admin_ext::list_consumer_groups(client, timeout).await {
        Ok((groups, errors)) => {
            if args.verbose {
                println!("groups: {groups:?} errors: {errors:?}");
            }
            t.groups += groups.len();
            t.broker_errors += errors.len();
            groups.into_iter().map(|g| g.group_id).collect::<Vec<_>>()
        }
        Err(e) => {
            fail(t, "list_consumer_groups", &e);
            Vec::new()
        }
    };

    match admin_ext::describe_consumer_groups(client, &group_ids, timeout).await {
        Ok(descs) => {
            if args.verbose {
                println!("descriptions: {descs:#?}");
            }
            t.described += descs.len();
            t.members += descs.iter().map(|d| d.members.len()).sum::<usize>();
            for d in descs.iter().filter(|d| d.error.is_some()) {
                eprintln!("group {} error: {:?}", d.group_id, d.error);
                t.failures += 1;
            }
        }
        Err(e) => fail(t, "describe_consumer_groups", &e),
    }

    for g in &group_ids {
        match admin_ext::list_consumer_group_offsets(client, g, timeout).await {
            Ok(offsets) => {
                if args.verbose {
                    println!("offsets of {g}: {offsets:?}");
                }
                t.committed += offsets.iter().filter(|o| o.offset.is_some()).count();
                t.committed_none += offsets.iter().filter(|o| o.offset.is_none()).count();
            }
            Err(e) => fail(t, &format!("list_consumer_group_offsets({g})"), &e),
        }
    }

    match admin_ext::describe_cluster(client, timeout).await {
        Ok(c) => {
            if args.verbose {
                println!("cluster: {c:?}");
            }
            t.cluster_ok += 1;
        }
        Err(e @ AdminExtError::Unsupported { .. }) => {
            if args.verbose {
                println!("describe_cluster unsupported: {e}");
            }
            t.cluster_unsupported += 1;
        }
        Err(e) => fail(t, "describe_cluster", &e),
    }

    let partitions: Vec<(String, i32)> = match client.inner().fetch_metadata(None, timeout) {
        Ok(md) => md
            .topics()
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions()
                    .iter()
                    .map(|p| (topic.name().to_owned(), p.id()))
                    .collect::<Vec<_>>()
            })
            .collect(),
        Err(e) => {
            t.failures += 1;
            eprintln!("FAIL metadata: {e}");
            Vec::new()
        }
    };
    t.partitions += partitions.len();

    let mut topics: Vec<String> = partitions.iter().map(|(t, _)| t.clone()).collect();
    topics.dedup();
    match admin_ext::describe_topic_configs(client, &topics, timeout).await {
        Ok(v) => {
            for tc in &v {
                match &tc.result {
                    Ok(entries) => {
                        t.topic_configs += 1;
                        t.config_entries += entries.len();
                        if args.verbose && tc.name == SEED_TOPIC {
                            println!("configs of {}: {entries:?}", tc.name);
                        }
                    }
                    Err(e) => {
                        t.failures += 1;
                        eprintln!("FAIL configs of {}: {e}", tc.name);
                    }
                }
            }
        }
        Err(e) => fail(t, "describe_topic_configs", &e),
    }
    let (cluster_id, controller) = admin_ext::cluster_id_and_controller(client, timeout).await;
    if args.verbose {
        println!("cached cluster id {cluster_id:?} controller {controller:?}");
    }
    if cluster_id.is_some() && controller.is_some() {
        t.cached_cluster_ok += 1;
    }
    for spec in [OffsetSpec::Earliest, OffsetSpec::Latest] {
        match admin_ext::list_offsets(client, &partitions, spec, timeout).await {
            Ok(v) => {
                if args.verbose {
                    println!("{spec:?}: {v:?}");
                }
                for p in &v {
                    match &p.result {
                        Ok(_) => t.offsets_ok += 1,
                        Err(e) => {
                            t.offsets_err += 1;
                            eprintln!("offset {}/{} {spec:?}: {e}", p.topic, p.partition);
                        }
                    }
                }
            }
            Err(e) => fail(t, &format!("list_offsets({spec:?})"), &e),
        }
    }
}

/// Calls every wrapper once against an unreachable broker; returns how many
/// calls failed (all of them should) and the number of calls made.
async fn error_paths() -> Result<(usize, usize), String> {
    let client: AdminClient<DefaultClientContext> = base_config("127.0.0.1:1")
        .set("log_level", "0")
        .create()
        .map_err(|e| format!("unreachable admin client: {e}"))?;
    let client = Arc::new(client);
    let timeout = Duration::from_secs(1);
    let parts = [(SEED_TOPIC.to_owned(), 0)];
    let groups = [SEED_GROUP.to_owned()];
    let topics = [SEED_TOPIC.to_owned()];
    let results = [
        admin_ext::list_consumer_groups(&client, timeout)
            .await
            .map_or(true, |(_, errs)| !errs.is_empty()),
        admin_ext::describe_consumer_groups(&client, &groups, timeout)
            .await
            .map_or(true, |d| d.iter().all(|g| g.error.is_some())),
        admin_ext::list_consumer_group_offsets(&client, SEED_GROUP, timeout)
            .await
            .is_err(),
        admin_ext::describe_cluster(&client, timeout).await.is_err(),
        admin_ext::list_offsets(&client, &parts, OffsetSpec::Latest, timeout)
            .await
            .map_or(true, |v| v.iter().all(|p| p.result.is_err())),
        admin_ext::describe_topic_configs(&client, &topics, timeout)
            .await
            .map_or(true, |v| v.iter().all(|t| t.result.is_err())),
        admin_ext::cluster_id_and_controller(&client, timeout).await == (None, None),
    ];
    Ok((
        results.iter().filter(|failed| **failed).count(),
        results.len(),
    ))
}

fn spawn_live_member(
    args: &Args,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let consumer: BaseConsumer = base_config(&args.bootstrap)
        .set("group.id", LIVE_GROUP)
        .set("client.id", "krawl-live-member")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("live consumer: {e}"))?;
    consumer
        .subscribe(&[SEED_TOPIC])
        .map_err(|e| format!("subscribe: {e}"))?;
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            // Messages are irrelevant; polling keeps the member alive.
            let _ = consumer.poll(Duration::from_millis(100));
        }
        consumer.unsubscribe();
    }))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.seed {
        return match seed(&args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("seed failed: {e}");
                ExitCode::FAILURE
            }
        };
    }

    let stop = Arc::new(AtomicBool::new(false));
    let live = if args.live_member {
        match spawn_live_member(&args, Arc::clone(&stop)) {
            Ok(h) => {
                // Give the member time to join before the first describe.
                tokio::time::sleep(Duration::from_secs(5)).await;
                Some(h)
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };

    let mut config = base_config(&args.bootstrap);
    if let Some(version) = &args.legacy_api {
        config
            .set("api.version.request", "false")
            .set("broker.version.fallback", version);
    }
    let client: AdminClient<DefaultClientContext> = match config.create() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: admin client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = Arc::new(client);
    let start = Instant::now();
    let mut t = Totals::default();
    for _ in 0..args.iterations {
        one_iteration(&client, &args, &mut t).await;
    }
    let loop_ms = start.elapsed().as_millis();
    drop(client);
    let mut error_paths_summary = String::new();
    if args.error_paths {
        match error_paths().await {
            Ok((failed, calls)) => {
                if failed != calls {
                    eprintln!("FAIL error paths: only {failed}/{calls} calls failed");
                    t.failures += 1;
                }
                error_paths_summary = format!(" error_paths_failed={failed}/{calls}");
            }
            Err(e) => {
                eprintln!("FAIL error paths: {e}");
                t.failures += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = live {
        let _ = h.join();
    }

    println!(
        "admin_ext_loop iterations={} groups={} broker_errors={} described={} members={} \
         committed={} committed_none={} cluster_ok={} cluster_unsupported={} cached_cluster_ok={} \
         partitions={} topic_configs={} config_entries={} offsets_ok={} offsets_err={} failures={} \
         elapsed_ms={}{}",
        args.iterations,
        t.groups,
        t.broker_errors,
        t.described,
        t.members,
        t.committed,
        t.committed_none,
        t.cluster_ok,
        t.cluster_unsupported,
        t.cached_cluster_ok,
        t.partitions,
        t.topic_configs,
        t.config_entries,
        t.offsets_ok,
        t.offsets_err,
        t.failures,
        loop_ms,
        error_paths_summary
    );
    if t.failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
