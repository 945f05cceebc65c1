//! `krawl run` (the agent daemon) and `krawl check` (validate its config, reach the control
//! plane, run nothing).

use std::path::PathBuf;

use krawl_agent::config::{AgentConfig, DEFAULT_CONFIG_PATH};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Agent config (TOML); KRAWL_* environment variables override its keys.
    #[arg(long, short, env = "KRAWL_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    args: Args,
    /// Validate the config, policy and secret-store settings without resolving secrets,
    /// reading referenced files or contacting anything (CI, render checks).
    #[arg(long)]
    offline: bool,
}

fn load(args: &Args) -> Result<AgentConfig, i32> {
    AgentConfig::load(Some(&args.config)).map_err(|e| {
        eprintln!("error: {e}");
        2
    })
}

/// Runs the agent until SIGTERM/SIGINT (a second signal stops at once).
pub async fn run(args: Args) -> i32 {
    let cfg = match load(&args) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let (shutdown, hard_stop) = match krawl_agent::agent::install_signal_handlers() {
        Ok(tokens) => tokens,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return 1;
        }
    };
    match krawl_agent::agent::run(cfg, shutdown, hard_stop).await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("agent stopped: {e:#}");
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// Prints one line per check; exit 0 only when all pass.
pub async fn check(check: CheckArgs) -> i32 {
    let CheckArgs { args, offline } = check;
    let cfg = match load(&args) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let report = krawl_agent::agent::check(&cfg, offline).await;
    print!("{report}");
    if report.ok() {
        0
    } else {
        1
    }
}
