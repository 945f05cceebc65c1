//! `krawl controlplane` ([`ServeArgs`], [`serve`]) and `krawl jobs` ([`JobsCommand`], [`jobs`]).
//!
//! Tokens never come from the command line (they would show in `ps` and shell history): the
//! server reads `KRAWL_CP_ADMIN_TOKEN` / `KRAWL_CP_BOOTSTRAP_TOKEN` or `--*-token-file`, and
//! the label-scoped bootstrap tokens from the files or variables `--bootstrap-tokens` names; the
//! client reads `KRAWL_CP_ADMIN_TOKEN` or `--admin-token-file`.
//!
//! Exit codes: 0 success; 1 the job ended failed or cancelled (`submit --wait`, `wait`);
//! 2 usage or configuration error; 3 the control plane refused the request or could not be
//! reached; 4 `--wait` timed out.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use krawl_protocol::{JobState, JobView, SubmitJob};

use crate::admin::{AdminClient, AdminError};
use crate::{BootstrapToken, RateLimit, ServerConfig, TlsFiles};

pub const EXIT_OK: i32 = 0;
pub const EXIT_JOB_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_SERVER: i32 = 3;
pub const EXIT_TIMEOUT: i32 = 4;

const ADMIN_TOKEN_ENV: &str = "KRAWL_CP_ADMIN_TOKEN";
const BOOTSTRAP_TOKEN_ENV: &str = "KRAWL_CP_BOOTSTRAP_TOKEN";

/// `krawl controlplane`: run the reference control plane.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// SQLite database (created if missing).
    #[arg(long = "db", default_value = "krawl-controlplane.db")]
    pub db: PathBuf,
    /// File holding the admin token (else KRAWL_CP_ADMIN_TOKEN).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// File holding the single bootstrap (agent registration) token (else
    /// KRAWL_CP_BOOTSTRAP_TOKEN). It grants no labels: agents that claim labels need a token of
    /// --bootstrap-tokens.
    #[arg(long)]
    pub bootstrap_token_file: Option<PathBuf>,
    /// TOML file of bootstrap tokens scoped to labels: an agent registering with a token may
    /// claim only the labels it grants. Each entry: `[[token]]` with `name = "dev"`,
    /// `token_file = "/etc/krawl-cp/dev.token"` (or `token_env = "VAR"`) and
    /// `labels = { env = "dev", team = "*" }` (`*`: any value). The file holds no token itself.
    #[arg(long, value_name = "FILE")]
    pub bootstrap_tokens: Option<PathBuf>,
    /// Server certificate chain (PEM); with --tls-key enables HTTPS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Seconds a poll is held open before answering 204.
    #[arg(long, default_value_t = 30)]
    pub poll_wait_secs: u64,
    /// Lease TTL (seconds) of jobs that do not set one.
    #[arg(long, default_value_t = 60)]
    pub lease_ttl_secs: u64,
    /// Attempts of jobs that do not set a maximum.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
    /// Largest request body in MiB (a compressed chunk).
    #[arg(long, default_value_t = 16)]
    pub max_body_mib: usize,
    /// Most result chunks one job attempt may store; past it a chunk is refused (413) and the
    /// job fails without a retry.
    #[arg(long, default_value_t = crate::DEFAULT_MAX_ATTEMPT_CHUNKS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempt_chunks: u32,
    /// Most compressed result bytes one job attempt may store: a number of bytes, or with a
    /// unit (KiB, MiB, GiB, TiB); past it a chunk is refused (413) and the job fails without a
    /// retry.
    #[arg(long, default_value = "4GiB", value_parser = parse_size)]
    pub max_attempt_bytes: u64,
    /// Per-agent request limit: RATE or RATE/BURST requests per second (e.g. 20/40).
    #[arg(long)]
    pub agent_rate_limit: Option<RateLimit>,
    /// Days a finished job (succeeded, failed, cancelled) and its results are kept; 0 keeps
    /// them forever.
    #[arg(long, default_value_t = crate::DEFAULT_RETENTION_DAYS)]
    pub retention_days: u64,
}

/// Where the control plane is and how to authenticate (every `krawl jobs` subcommand).
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Control-plane base URL.
    #[arg(long, env = "KRAWL_CP_URL", default_value = "http://127.0.0.1:8443")]
    pub server: String,
    /// CA certificate (PEM) to trust for the control plane (instead of the system roots).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// File holding the admin token (else KRAWL_CP_ADMIN_TOKEN).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `krawl jobs …`: the control plane's job API.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum JobsCommand {
    /// Submit a job.
    Submit {
        /// Job kind: kafka.extract, kafka.test_connection, kafka.preflight, kafka.list_topics.
        #[arg(long)]
        kind: String,
        /// Job spec as a JSON file.
        #[arg(
            long,
            conflicts_with = "spec_json",
            required_unless_present = "spec_json"
        )]
        spec: Option<PathBuf>,
        /// Job spec as inline JSON.
        #[arg(long)]
        spec_json: Option<String>,
        /// Only agents with this label get the job (KEY=VALUE, repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Attempts before the job fails for good (server default when unset).
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Lease TTL in seconds (server default when unset).
        #[arg(long)]
        lease_ttl_secs: Option<u32>,
        /// Wait until the job ends.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List jobs.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one job.
    Get {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Download a succeeded job's results (NDJSON).
    Results {
        id: String,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a queued or running job.
    Cancel {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Wait until a job ends.
    Wait {
        id: String,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List registered agents.
    Agents {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Ask an agent to drain (stop polling, finish its jobs, exit).
    Drain {
        agent_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

// ------------------------------------------------------------------------------------------------
// krawl controlplane
// ------------------------------------------------------------------------------------------------

/// Runs the control plane until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> i32 {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let cfg = match server_config(&args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("error: {msg}");
            return EXIT_USAGE;
        }
    };
    let server = match crate::start(cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the control plane: {e:#}");
            return EXIT_USAGE;
        }
    };
    eprintln!("krawl control plane listening on {}", server.base_url());
    wait_for_signal().await;
    eprintln!("shutting down");
    server.shutdown().await;
    EXIT_OK
}

fn server_config(args: &ServeArgs) -> Result<ServerConfig, String> {
    let admin = read_token(
        args.admin_token_file.as_deref(),
        ADMIN_TOKEN_ENV,
        "admin",
        "--admin-token-file",
    )?;
    // The single token is optional once a tokens file is given.
    let single = match read_token(
        args.bootstrap_token_file.as_deref(),
        BOOTSTRAP_TOKEN_ENV,
        "bootstrap",
        "--bootstrap-token-file",
    ) {
        Ok(t) => Some(t),
        Err(_) if args.bootstrap_token_file.is_none() => None,
        Err(e) => return Err(e),
    };
    let mut bootstrap_tokens: Vec<BootstrapToken> =
        single.into_iter().map(BootstrapToken::single).collect();
    if let Some(path) = &args.bootstrap_tokens {
        bootstrap_tokens.extend(crate::tokens::load_file(path, &|var| {
            std::env::var(var).ok()
        })?);
    }
    crate::tokens::check_set(&bootstrap_tokens, &admin)?;
    if args.poll_wait_secs == 0 || args.lease_ttl_secs == 0 || args.max_attempts == 0 {
        return Err(
            "--poll-wait-secs, --lease-ttl-secs and --max-attempts must be at least 1".to_string(),
        );
    }
    let mut cfg = ServerConfig::new(args.listen, args.db.clone(), admin, String::new());
    cfg.bootstrap_tokens = bootstrap_tokens;
    cfg.tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(TlsFiles {
            cert_pem: c.clone(),
            key_pem: k.clone(),
        }),
        _ => None,
    };
    if cfg.tls.is_none() && !args.listen.ip().is_loopback() {
        eprintln!(
            "warning: serving plain HTTP on {}: tokens and results cross the network in clear; use --tls-cert/--tls-key",
            args.listen
        );
    }
    cfg.poll_wait = Duration::from_secs(args.poll_wait_secs);
    cfg.default_lease_ttl = Duration::from_secs(args.lease_ttl_secs);
    cfg.default_max_attempts = args.max_attempts;
    cfg.max_body_bytes = args.max_body_mib.saturating_mul(1024 * 1024).max(1024);
    cfg.max_attempt_chunks = args.max_attempt_chunks;
    cfg.max_attempt_bytes = args.max_attempt_bytes;
    cfg.agent_rate_limit = args.agent_rate_limit;
    cfg.retention = match args.retention_days {
        0 => None,
        days => Some(Duration::from_secs(days.saturating_mul(86_400))),
    };
    Ok(cfg)
}

/// A size: whole bytes, or a whole number with a binary unit (`512MiB`, `4 GiB`).
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        format!("{s:?} is not a size: give bytes, or a number with KiB, MiB, GiB or TiB")
    })?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        other => {
            return Err(format!(
                "unknown size unit {other:?}: use KiB, MiB, GiB or TiB (powers of 1024)"
            ))
        }
    };
    let bytes = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if bytes == 0 {
        return Err("the size must be at least 1 byte".to_string());
    }
    Ok(bytes)
}

/// A token from `file` (trimmed), else from the environment variable `env`.
fn read_token(file: Option<&Path>, env: &str, what: &str, flag: &str) -> Result<String, String> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the {what} token file {}: {e}", path.display()))?,
        None => std::env::var(env).unwrap_or_default(),
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(format!("no {what} token: set {env} or pass {flag} FILE"));
    }
    Ok(token)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

// ------------------------------------------------------------------------------------------------
// krawl jobs
// ------------------------------------------------------------------------------------------------

/// Runs one `krawl jobs` subcommand; messages on stderr, results on stdout.
pub async fn jobs(cmd: JobsCommand) -> i32 {
    match run_jobs(cmd).await {
        Ok(code) => code,
        Err(CliError::Usage(msg)) => {
            eprintln!("error: {msg}");
            EXIT_USAGE
        }
        Err(CliError::Admin(AdminError::Config(msg))) => {
            eprintln!("error: {msg}");
            EXIT_USAGE
        }
        Err(CliError::Admin(e @ AdminError::Timeout { .. })) => {
            eprintln!("error: {e}");
            EXIT_TIMEOUT
        }
        Err(CliError::Admin(e)) => {
            eprintln!("error: {e}");
            EXIT_SERVER
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Admin(#[from] AdminError),
}

fn client(args: &ClientArgs) -> Result<AdminClient, CliError> {
    let token = read_token(
        args.admin_token_file.as_deref(),
        ADMIN_TOKEN_ENV,
        "admin",
        "--admin-token-file",
    )
    .map_err(CliError::Usage)?;
    Ok(AdminClient::new(
        &args.server,
        &token,
        args.ca_file.as_deref(),
    )?)
}

async fn run_jobs(cmd: JobsCommand) -> Result<i32, CliError> {
    match cmd {
        JobsCommand::Submit {
            kind,
            spec,
            spec_json,
            labels,
            max_attempts,
            lease_ttl_secs,
            wait,
            timeout_secs,
            client: args,
        } => {
            let spec = read_spec(spec.as_deref(), spec_json.as_deref())?;
            let labels = parse_labels(&labels)?;
            if let Err(e) = kind.parse::<krawl_protocol::JobKind>() {
                eprintln!("warning: {e}; submitting anyway");
            }
            let c = client(&args)?;
            let view = c
                .submit(&SubmitJob {
                    kind,
                    spec,
                    labels,
                    max_attempts,
                    lease_ttl_secs,
                })
                .await?;
            if !wait {
                if args.json {
                    print_json(&view);
                } else {
                    println!("{}", view.id);
                    eprintln!(
                        "submitted job {} ({}), {}",
                        view.id,
                        view.kind,
                        view.state.as_str()
                    );
                }
                return Ok(EXIT_OK);
            }
            eprintln!("submitted job {}; waiting", view.id);
            let view = c.wait(&view.id, Duration::from_secs(timeout_secs)).await?;
            show_job(&view, args.json);
            Ok(exit_for(&view))
        }
        JobsCommand::List { client: args } => {
            let list = client(&args)?.list().await?;
            if args.json {
                print_json(&list);
            } else if list.jobs.is_empty() {
                eprintln!("no jobs");
            } else {
                println!(
                    "{:<42} {:<22} {:<10} {:>8} {:<24}",
                    "ID", "KIND", "STATE", "ATTEMPTS", "CREATED"
                );
                for j in &list.jobs {
                    println!(
                        "{:<42} {:<22} {:<10} {:>8} {:<24}",
                        j.id,
                        j.kind,
                        j.state.as_str(),
                        j.attempts.len(),
                        j.created_at
                    );
                }
            }
            Ok(EXIT_OK)
        }
        JobsCommand::Get { id, client: args } => {
            let view = client(&args)?.get(&id).await?;
            show_job(&view, args.json);
            Ok(EXIT_OK)
        }
        JobsCommand::Results {
            id,
            output,
            client: args,
        } => {
            let body = client(&args)?.results(&id).await?;
            match output {
                Some(path) => {
                    std::fs::write(&path, &body).map_err(|e| {
                        CliError::Usage(format!("cannot write {}: {e}", path.display()))
                    })?;
                    eprintln!("wrote {} bytes to {}", body.len(), path.display());
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&body)
                        .and_then(|_| out.flush())
                        .map_err(|e| CliError::Usage(format!("cannot write to stdout: {e}")))?;
                }
            }
            Ok(EXIT_OK)
        }
        JobsCommand::Cancel { id, client: args } => {
            let view = client(&args)?.cancel(&id).await?;
            if args.json {
                print_json(&view);
            } else if view.state == JobState::Cancelled {
                eprintln!("job {id} cancelled");
            } else {
                eprintln!(
                    "job {id} is {}: its agent will be told to stop at its next heartbeat",
                    view.state.as_str()
                );
            }
            Ok(EXIT_OK)
        }
        JobsCommand::Wait {
            id,
            timeout_secs,
            client: args,
        } => {
            let view = client(&args)?
                .wait(&id, Duration::from_secs(timeout_secs))
                .await?;
            show_job(&view, args.json);
            Ok(exit_for(&view))
        }
        JobsCommand::Agents { client: args } => {
            let list = client(&args)?.agents().await?;
            if args.json {
                print_json(&list);
            } else if list.agents.is_empty() {
                eprintln!("no agents");
            } else {
                println!(
                    "{:<44} {:<20} {:<12} {:>7} {:<9} {:<24} LABELS",
                    "ID", "NAME", "TOKEN", "RUNNING", "DRAINING", "LAST SEEN"
                );
                for a in &list.agents {
                    let labels = a
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",");
                    println!(
                        "{:<44} {:<20} {:<12} {:>7} {:<9} {:<24} {}",
                        a.id,
                        a.name,
                        a.bootstrap_token.as_deref().unwrap_or("-"),
                        a.running_jobs,
                        a.draining,
                        a.last_seen_at,
                        if labels.is_empty() { "-" } else { &labels }
                    );
                }
            }
            Ok(EXIT_OK)
        }
        JobsCommand::Drain {
            agent_id,
            client: args,
        } => {
            client(&args)?.drain(&agent_id).await?;
            eprintln!("agent {agent_id} asked to drain");
            Ok(EXIT_OK)
        }
    }
}

fn exit_for(view: &JobView) -> i32 {
    match view.state {
        JobState::Succeeded => EXIT_OK,
        _ => EXIT_JOB_FAILED,
    }
}

fn read_spec(file: Option<&Path>, inline: Option<&str>) -> Result<serde_json::Value, CliError> {
    let (text, source) = match (file, inline) {
        (Some(path), _) => (
            std::fs::read_to_string(path).map_err(|e| {
                CliError::Usage(format!("cannot read the spec {}: {e}", path.display()))
            })?,
            path.display().to_string(),
        ),
        (None, Some(s)) => (s.to_string(), "--spec-json".to_string()),
        (None, None) => {
            return Err(CliError::Usage(
                "give the job spec with --spec FILE.json or --spec-json '{...}'".to_string(),
            ))
        }
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{source} is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(CliError::Usage(format!(
            "{source} must be a JSON object (e.g. {{\"kafka\": {{...}}}})"
        )));
    }
    Ok(value)
}

fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(CliError::Usage(format!(
                "--label {l:?}: expected KEY=VALUE"
            ))),
        })
        .collect()
}

fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode the answer as JSON: {e}"),
    }
}

fn show_job(view: &JobView, json: bool) {
    if json {
        print_json(view);
        return;
    }
    println!("job        {}", view.id);
    println!("kind       {}", view.kind);
    println!("state      {}", view.state.as_str());
    println!("created    {}", view.created_at);
    println!("updated    {}", view.updated_at);
    println!(
        "attempts   {} of at most {}",
        view.attempts.len(),
        view.max_attempts
    );
    for a in &view.attempts {
        let err = a
            .error
            .as_ref()
            .map(|e| format!(" [{}] {}", e.class, e.message))
            .unwrap_or_default();
        println!(
            "  #{} {} on {} started {} chunks {} records {}{err}",
            a.attempt, a.state, a.agent_id, a.started_at, a.chunks, a.records
        );
    }
    if let Some(p) = &view.progress {
        println!(
            "progress   phase {} records {} chunks {}",
            p.phase, p.records, p.chunks
        );
    }
    if let Some(r) = &view.result {
        println!(
            "result     attempt {} chunks {} records {} bytes {} sha256 {}",
            r.attempt, r.chunks, r.records, r.bytes, r.sha256
        );
    }
    if let Some(e) = &view.error {
        println!("error      [{}] {}", e.class, e.message);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Top,
    }
    #[derive(Debug, clap::Subcommand)]
    enum Top {
        Controlplane(ServeArgs),
        #[command(subcommand)]
        Jobs(JobsCommand),
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "krawl",
            "controlplane",
            "--listen",
            "0.0.0.0:9000",
            "--db",
            "x.db",
            "--agent-rate-limit",
            "5/10",
            "--poll-wait-secs",
            "2",
        ])
        .unwrap();
        let Top::Controlplane(a) = cli.cmd else {
            panic!()
        };
        assert_eq!(
            a.agent_rate_limit,
            Some(RateLimit {
                per_second: 5.0,
                burst: 10
            })
        );
        assert_eq!(a.poll_wait_secs, 2);

        let cli = Cli::try_parse_from([
            "krawl",
            "jobs",
            "submit",
            "--kind",
            "kafka.extract",
            "--spec-json",
            "{}",
            "--label",
            "env=prod",
            "--wait",
            "--server",
            "https://cp:8443",
            "--json",
        ])
        .unwrap();
        let Top::Jobs(JobsCommand::Submit {
            labels,
            wait,
            client,
            ..
        }) = cli.cmd
        else {
            panic!()
        };
        assert!(wait && client.json);
        assert_eq!(parse_labels(&labels).unwrap()["env"], "prod");
        assert!(Cli::try_parse_from(["krawl", "jobs", "submit", "--kind", "k"]).is_err());
        assert!(parse_labels(&["novalue".to_string()]).is_err());
    }

    #[test]
    fn retention_defaults_to_30_days_and_0_keeps_forever() {
        let dir = tempfile::tempdir().unwrap();
        let (admin, boot) = (dir.path().join("admin"), dir.path().join("boot"));
        std::fs::write(&admin, "admin-token").unwrap();
        std::fs::write(&boot, "bootstrap-token").unwrap();
        let cfg = |extra: &[&str]| {
            let mut argv = vec!["krawl", "controlplane", "--admin-token-file"];
            argv.push(admin.to_str().unwrap());
            argv.push("--bootstrap-token-file");
            argv.push(boot.to_str().unwrap());
            argv.extend_from_slice(extra);
            let Top::Controlplane(a) = Cli::try_parse_from(argv).unwrap().cmd else {
                panic!()
            };
            server_config(&a).unwrap()
        };
        assert_eq!(cfg(&[]).retention, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(
            cfg(&["--retention-days", "7"]).retention,
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(cfg(&["--retention-days", "0"]).retention, None);
    }

    #[test]
    fn bootstrap_tokens_come_from_the_tokens_file_the_single_token_or_both() {
        let dir = tempfile::tempdir().unwrap();
        let (admin, boot, tokens, dev) = (
            dir.path().join("admin"),
            dir.path().join("boot"),
            dir.path().join("tokens.toml"),
            dir.path().join("dev.token"),
        );
        std::fs::write(&admin, "admin-token").unwrap();
        std::fs::write(&boot, "bootstrap-token").unwrap();
        std::fs::write(&dev, "dev-token\n").unwrap();
        std::fs::write(
            &tokens,
            format!(
                "[[token]]\nname = \"dev\"\ntoken_file = {:?}\nlabels = {{ env = \"dev\" }}\n",
                dev.display().to_string()
            ),
        )
        .unwrap();
        let cfg = |extra: &[&Path]| {
            let mut argv = vec![
                "krawl".to_string(),
                "controlplane".into(),
                "--admin-token-file".into(),
                admin.display().to_string(),
            ];
            for (flag, path) in ["--bootstrap-tokens", "--bootstrap-token-file"]
                .iter()
                .zip(extra)
            {
                argv.push(flag.to_string());
                argv.push(path.display().to_string());
            }
            let Top::Controlplane(a) = Cli::try_parse_from(argv).unwrap().cmd else {
                panic!()
            };
            server_config(&a)
        };
        // KRAWL_CP_BOOTSTRAP_TOKEN is not set under cargo test.
        let only_file = cfg(&[&tokens]).unwrap();
        let names: Vec<&str> = only_file
            .bootstrap_tokens
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["dev"]);
        assert_eq!(only_file.bootstrap_tokens[0].token, "dev-token");
        let both = cfg(&[&tokens, &boot]).unwrap();
        let names: Vec<&str> = both
            .bootstrap_tokens
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, [crate::LEGACY_TOKEN_NAME, "dev"]);
        let err = cfg(&[]).unwrap_err();
        assert!(
            err.contains("KRAWL_CP_BOOTSTRAP_TOKEN")
                && err.contains("--bootstrap-token-file")
                && err.contains("--bootstrap-tokens"),
            "{err}"
        );
        std::fs::write(&dev, "admin-token").unwrap();
        let err = cfg(&[&tokens]).unwrap_err();
        assert!(err.contains("`dev` is the admin token"), "{err}");
        assert!(!format!("{both:?}").contains("dev-token"));
    }

    #[test]
    fn attempt_quotas_default_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let (admin, boot) = (dir.path().join("admin"), dir.path().join("boot"));
        std::fs::write(&admin, "admin-token").unwrap();
        std::fs::write(&boot, "bootstrap-token").unwrap();
        let parse = |extra: &[&str]| {
            let mut argv = vec![
                "krawl",
                "controlplane",
                "--admin-token-file",
                admin.to_str().unwrap(),
                "--bootstrap-token-file",
                boot.to_str().unwrap(),
            ];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).map(|cli| {
                let Top::Controlplane(a) = cli.cmd else {
                    panic!()
                };
                server_config(&a).unwrap()
            })
        };
        let cfg = parse(&[]).unwrap();
        assert_eq!(cfg.max_attempt_chunks, 100_000);
        assert_eq!(cfg.max_attempt_bytes, 4 * 1024 * 1024 * 1024);
        let cfg = parse(&["--max-attempt-chunks", "7", "--max-attempt-bytes", "512MiB"]).unwrap();
        assert_eq!(
            (cfg.max_attempt_chunks, cfg.max_attempt_bytes),
            (7, 512 << 20)
        );
        assert!(parse(&["--max-attempt-chunks", "0"]).is_err());
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size(" 4 GiB "), Ok(4 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("4GB")
            .unwrap_err()
            .contains("KiB, MiB, GiB or TiB"));
        assert!(parse_size("99999999999TiB")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn spec_must_be_a_json_object() {
        assert!(read_spec(None, Some("[1]")).is_err());
        assert!(read_spec(None, Some("{")).is_err());
        assert!(read_spec(None, Some(r#"{"kafka":{}}"#)).is_ok());
    }
}
