//! `krawl extract`: one extraction, NDJSON records to stdout or a file, a
//! human summary (and a progress indicator on a terminal) to stderr.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use krawl_kafka::config::{
    ConfigError, ExtractConfig, SaslConfig, SaslMechanism, SecurityProtocol, TlsConfig,
};
use krawl_kafka::extract::RegistrySetup;
use krawl_kafka::{Connection, ExtractError, Extractor, KafkaConfig, Progress, RecordSink};
use krawl_model::{Envelope, Record, SummaryRecord};
use krawl_schema_registry::{RegistryClient, SchemaRegistryConfig, VersionsMode};
use krawl_secrets::{Resolver, SecretRef};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML config file ([kafka] and [extract] sections; see deploy/krawl.example.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Write records here instead of stdout (written to FILE.partial, renamed when complete).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Comma-separated host:port list; overrides kafka.bootstrap_servers.
    #[arg(long, value_delimiter = ',')]
    bootstrap_servers: Vec<String>,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(long)]
    security_protocol: Option<String>,
    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (OAUTHBEARER needs a config file).
    #[arg(long)]
    sasl_mechanism: Option<String>,
    #[arg(long)]
    sasl_username: Option<String>,
    /// A secret reference: env://NAME, file:///path[#key] (a literal works but lands in shell history).
    #[arg(long)]
    sasl_password: Option<String>,
    /// PEM CA bundle for TLS (system roots otherwise).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// PEM client certificate for mTLS.
    #[arg(long)]
    client_cert: Option<PathBuf>,
    /// PEM client key for mTLS, as a secret reference (file:///path).
    #[arg(long)]
    client_key: Option<String>,
    /// Timeout of the connection and of each Kafka call, seconds (default 30).
    #[arg(long)]
    timeout: Option<u64>,
    /// Only topics matching this regex (repeatable).
    #[arg(long = "include-topic")]
    include_topics: Vec<String>,
    /// Skip topics matching this regex (repeatable).
    #[arg(long = "exclude-topic")]
    exclude_topics: Vec<String>,
    /// Include internal topics (__consumer_offsets, ...).
    #[arg(long)]
    include_internal: bool,
    /// Only groups matching this regex (repeatable).
    #[arg(long = "include-group")]
    include_groups: Vec<String>,
    /// Skip groups matching this regex (repeatable).
    #[arg(long = "exclude-group")]
    exclude_groups: Vec<String>,
    /// Only groups in this state (repeatable): Stable, Empty, ...
    #[arg(long = "group-state")]
    group_states: Vec<String>,
    /// Skip consumer groups.
    #[arg(long)]
    no_groups: bool,
    /// Also extract this Schema Registry (no auth; use a config file's
    /// [schema_registry] section for auth, TLS and options).
    #[arg(long)]
    schema_registry_url: Option<String>,
    /// With --schema-registry-url: every version of each subject, not only the latest.
    #[arg(long)]
    all_schema_versions: bool,
    /// No summary or progress on stderr.
    #[arg(long, short)]
    quiet: bool,
}

impl Args {
    /// The config file (if any) with the flags applied on top, validated.
    fn config(&self) -> Result<ExtractConfig, ConfigError> {
        let mut cfg = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::Parse(format!("cannot read {}: {e}", path.display()))
                })?;
                ExtractConfig::from_toml(&text)
                    .map_err(|e| ConfigError::Parse(format!("{}: {e}", path.display())))?
            }
            None => {
                if self.bootstrap_servers.is_empty() {
                    return Err(ConfigError::Missing {
                        key: "kafka.bootstrap_servers".into(),
                        hint: "pass --bootstrap-servers host:port or --config FILE".into(),
                    });
                }
                ExtractConfig::new(KafkaConfig::new(Vec::new()))
            }
        };
        let k = &mut cfg.kafka;
        if !self.bootstrap_servers.is_empty() {
            k.bootstrap_servers = self.bootstrap_servers.clone();
        }
        if let Some(p) = &self.security_protocol {
            k.security_protocol = SecurityProtocol::parse(p).ok_or_else(|| {
                ConfigError::invalid("--security-protocol", p, SecurityProtocol::ACCEPTED)
            })?;
        }
        if let Some(m) = &self.sasl_mechanism {
            let mechanism = SaslMechanism::parse(m).ok_or_else(|| {
                ConfigError::invalid("--sasl-mechanism", m, SaslMechanism::ACCEPTED)
            })?;
            let sasl = k.sasl.get_or_insert(SaslConfig {
                mechanism,
                username: None,
                password: None,
                oauthbearer: None,
            });
            sasl.mechanism = mechanism;
        }
        if self.sasl_username.is_some() || self.sasl_password.is_some() {
            let Some(sasl) = k.sasl.as_mut() else {
                return Err(ConfigError::Missing {
                    key: "--sasl-mechanism".into(),
                    hint: "SASL credentials need a mechanism".into(),
                });
            };
            if let Some(u) = &self.sasl_username {
                sasl.username = Some(u.clone());
            }
            if let Some(p) = &self.sasl_password {
                sasl.password =
                    Some(SecretRef::parse(p).map_err(|source| ConfigError::Secret {
                        key: "--sasl-password".into(),
                        source,
                    })?);
            }
        }
        if self.ca_file.is_some() || self.client_cert.is_some() || self.client_key.is_some() {
            let tls = k.tls.get_or_insert(TlsConfig {
                ca_file: None,
                client_cert_file: None,
                client_key: None,
                client_key_password: None,
                verify_hostname: true,
            });
            if let Some(ca) = &self.ca_file {
                tls.ca_file = Some(ca.clone());
            }
            if let Some(c) = &self.client_cert {
                tls.client_cert_file = Some(c.clone());
            }
            if let Some(key) = &self.client_key {
                tls.client_key =
                    Some(SecretRef::parse(key).map_err(|source| ConfigError::Secret {
                        key: "--client-key".into(),
                        source,
                    })?);
            }
        }
        if let Some(t) = self.timeout {
            k.timeout_secs = t;
        }
        let x = &mut cfg.extract;
        x.include_topics.extend(self.include_topics.iter().cloned());
        x.exclude_topics.extend(self.exclude_topics.iter().cloned());
        x.include_groups.extend(self.include_groups.iter().cloned());
        x.exclude_groups.extend(self.exclude_groups.iter().cloned());
        x.group_states.extend(self.group_states.iter().cloned());
        x.include_internal_topics |= self.include_internal;
        if self.no_groups {
            x.consumer_groups = false;
        }
        if let Some(url) = &self.schema_registry_url {
            let sr = cfg
                .schema_registry
                .get_or_insert_with(|| SchemaRegistryConfig::new(url.clone()));
            sr.url = url.clone();
        }
        if self.all_schema_versions {
            if let Some(sr) = cfg.schema_registry.as_mut() {
                sr.versions = VersionsMode::All;
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// NDJSON to a buffered writer.
struct NdjsonSink {
    out: BufWriter<Box<dyn Write + Send>>,
}

impl RecordSink for NdjsonSink {
    async fn emit(&mut self, record: Record) -> Result<(), ExtractError> {
        serde_json::to_writer(&mut self.out, &Envelope::new(record))
            .map_err(|e| ExtractError::Output(e.to_string()))?;
        self.out
            .write_all(b"\n")
            .map_err(|e| ExtractError::Output(e.to_string()))
    }
}

/// A spinner/bar on stderr, only on a terminal.
struct TerminalProgress {
    bar: Mutex<Option<ProgressBar>>,
}

impl TerminalProgress {
    fn new(enabled: bool) -> Self {
        Self {
            bar: Mutex::new(enabled.then(ProgressBar::hidden)),
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            bar.finish_and_clear();
        }
    }
}

impl Progress for TerminalProgress {
    fn phase(&self, name: &str, total: Option<u64>) {
        let Ok(mut guard) = self.bar.lock() else {
            return;
        };
        let Some(old) = guard.take() else { return };
        old.finish_and_clear();
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{spinner} {msg:16} [{bar:30}] {pos}/{len} ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner(),
        };
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_message(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        *guard = Some(bar);
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = self.bar.lock().ok().as_ref().and_then(|b| b.as_ref()) {
            bar.inc(n);
        }
    }
}

pub async fn run(args: Args) -> i32 {
    match run_inner(&args).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.class().exit_code()
        }
    }
}

async fn run_inner(args: &Args) -> Result<(), ExtractError> {
    let cfg = args.config()?;
    let resolver = Resolver::new(&cfg.secrets)
        .await
        .map_err(|source| ConfigError::Secret {
            key: "secrets".into(),
            source,
        })?;
    // One job: its secrets are fetched once and dropped when it ends.
    let job = resolver.job(format!("extract-{}", std::process::id()));
    let conn = Connection::connect(&cfg.kafka, &job).await?;
    let registry = match &cfg.schema_registry {
        Some(sr) => Some(RegistrySetup {
            config: sr.clone(),
            client: match sr.resolve_secrets(&job).await {
                Ok(secrets) => RegistryClient::new(sr, secrets).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
        }),
        None => None,
    };
    drop(job);
    let partial = args.output.as_ref().map(|p| {
        let mut s = p.clone().into_os_string();
        s.push(".partial");
        PathBuf::from(s)
    });
    let writer: Box<dyn Write + Send> = match &partial {
        Some(p) => Box::new(
            File::create(p)
                .map_err(|e| ExtractError::Output(format!("cannot create {}: {e}", p.display())))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let mut sink = NdjsonSink {
        out: BufWriter::with_capacity(256 * 1024, writer),
    };
    let progress = TerminalProgress::new(!args.quiet && std::io::stderr().is_terminal());
    let result = Extractor::new(&conn, cfg.extract.clone(), &progress)?
        .with_schema_registry(registry)
        .run(&mut sink)
        .await;
    progress.finish();
    let summary = result?;
    sink.out
        .flush()
        .map_err(|e| ExtractError::Output(e.to_string()))?;
    drop(sink);
    if let (Some(partial), Some(out)) = (&partial, &args.output) {
        std::fs::rename(partial, out).map_err(|e| {
            ExtractError::Output(format!(
                "cannot rename {} to {}: {e}",
                partial.display(),
                out.display()
            ))
        })?;
    }
    if !args.quiet {
        eprint!("{}", render_summary(&summary, &conn, args.output.as_ref()));
    }
    // The process exits next: skip the client's orderly teardown (joining
    // librdkafka's threads costs ~0.15 s and there is nothing to flush).
    std::mem::forget(conn);
    Ok(())
}

fn render_summary(s: &SummaryRecord, conn: &Connection, output: Option<&PathBuf>) -> String {
    let c = &s.counts;
    let mut out = format!(
        "krawl: extracted {} ({} brokers) in {:.1} s\n  topics {}  partitions {}  consumer groups {}",
        conn.hosts(),
        c.brokers,
        s.duration_ms as f64 / 1000.0,
        c.topics,
        c.partitions,
        c.consumer_groups,
    );
    if c.subjects > 0 || c.schema_versions > 0 {
        out.push_str(&format!(
            "  subjects {}  schema versions {}",
            c.subjects, c.schema_versions
        ));
    }
    out.push_str(&format!("  warnings {}\n", c.warnings));
    let phases: Vec<String> = s
        .phases
        .iter()
        .map(|p| format!("{} {} ms", p.name, p.millis))
        .collect();
    out.push_str(&format!("  phases: {}\n", phases.join(", ")));
    let calls: Vec<String> = s
        .api_calls
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    out.push_str(&format!("  Kafka calls: {}\n", calls.join(", ")));
    if !s.warnings.is_empty() {
        let w: Vec<String> = s.warnings.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!(
            "  warnings: {} (see the warning records)\n",
            w.join(", ")
        ));
    }
    match output {
        Some(p) => out.push_str(&format!(
            "  {} records written to {}\n",
            c.records,
            p.display()
        )),
        None => out.push_str(&format!("  {} records written to stdout\n", c.records)),
    }
    out
}
