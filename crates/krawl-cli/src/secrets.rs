//! `krawl secrets check REF...`: does each reference resolve? Never prints values.

use std::path::PathBuf;
use std::time::Instant;

use krawl_kafka::config::ExtractConfig;
use krawl_secrets::{Resolver, SecretRef, SecretsConfig};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Config file whose [secrets] section configures the stores (and whose
    /// secret references are checked too when no REF is given).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// References to check, e.g. vault://secret/kafka#password.
    references: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Resolve each reference and say whether it worked (values are never printed).
    Check(CheckArgs),
}

pub async fn run(cmd: Command) -> i32 {
    let Command::Check(args) = cmd;
    let (secrets_cfg, mut refs) = match &args.config {
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| ExtractConfig::from_toml(&t).map_err(|e| e.to_string()))
        {
            Ok(cfg) => {
                let refs: Vec<(String, SecretRef)> = cfg
                    .kafka
                    .secret_refs()
                    .into_iter()
                    .map(|(k, r)| (k.to_string(), r.clone()))
                    .collect();
                (cfg.secrets, refs)
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return 2;
            }
        },
        None => (SecretsConfig::default(), Vec::new()),
    };
    if !args.references.is_empty() {
        refs.clear();
        for r in &args.references {
            match SecretRef::parse(r) {
                Ok(parsed) => refs.push((parsed.to_string(), parsed)),
                Err(e) => {
                    eprintln!("error: {e}");
                    return 2;
                }
            }
        }
    }
    if refs.is_empty() {
        eprintln!("error: nothing to check: pass references or --config FILE");
        return 2;
    }
    let resolver = match Resolver::new(&secrets_cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: [secrets]: {e}");
            return 2;
        }
    };
    let job = resolver.job("secrets-check");
    let mut failed = 0;
    for (label, r) in &refs {
        let t = Instant::now();
        match job.resolve(r).await {
            Ok(v) => println!(
                "ok    {label} ({}, {} bytes, {} ms)",
                r.backend(),
                v.expose().len(),
                t.elapsed().as_millis()
            ),
            Err(e) => {
                failed += 1;
                println!("FAIL  {label}: {e}");
            }
        }
    }
    if failed == 0 {
        0
    } else {
        1
    }
}
