//! The `krawl` binary.

mod extract;
mod logging;
mod run;
mod secrets;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KRAWL_GIT_COMMIT"),
    ")"
);

/// krawl: a self-deployed, read-only metadata agent for Apache Kafka.
#[derive(Debug, Parser)]
#[command(name = "krawl", version = VERSION, about, long_about = None)]
struct Cli {
    /// Log level (error, warn, info, debug, trace) or a tracing filter; RUST_LOG also works.
    /// Default: info for the daemons (run, controlplane), warn for the one-shot commands.
    #[arg(long, global = true, env = "KRAWL_LOG")]
    log_level: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = logging::Format::Text)]
    log_format: logging::Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Extract a cluster's metadata once and write NDJSON records.
    Extract(Box<extract::Args>),
    /// Run the agent: long-poll the control plane, run jobs, stream results back.
    Run(run::Args),
    /// Validate the agent config and reach the control plane, without running jobs.
    Check(run::CheckArgs),
    /// Run the reference control plane (SQLite; agents, jobs, results).
    Controlplane(krawl_controlplane::cli::ServeArgs),
    /// Submit, list, inspect and cancel jobs on a control plane; download results.
    #[command(subcommand)]
    Jobs(krawl_controlplane::cli::JobsCommand),
    /// Operator tools for secret references.
    #[command(subcommand)]
    Secrets(secrets::Command),
}

fn main() -> ExitCode {
    // Before any thread exists (see the function's doc).
    krawl_kafka::admin_ext::limit_malloc_arenas();
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Run(_) | Command::Controlplane(_) => "info,librdkafka=error",
        _ => "warn,librdkafka=error",
    };
    logging::init(
        cli.log_level.as_deref().unwrap_or(default_level),
        cli.log_format,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Extract(args) => extract::run(*args).await,
            Command::Run(args) => run::run(args).await,
            Command::Check(args) => run::check(args).await,
            Command::Controlplane(args) => krawl_controlplane::cli::serve(args).await,
            Command::Jobs(cmd) => krawl_controlplane::cli::jobs(cmd).await,
            Command::Secrets(cmd) => secrets::run(cmd).await,
        }
    });
    // Jobs still winding down on blocking threads (after a second signal) must not hold the
    // process: give them a moment, then exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
