//! A fake Confluent Schema Registry for benchmarks.
//!
//! `krawl-fake-registry --port P --subjects N --versions V [--latency-ms L]` seeds N subjects
//! `topic-<i>-value` with V Avro versions each, prints `listening on http://127.0.0.1:P` and
//! serves until killed.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use krawl_tests::schema_registry::{seed, FakeRegistry, FakeRegistryOpts};

fn main() -> Result<()> {
    let mut port: u16 = 8081;
    let mut subjects: usize = 100;
    let mut versions: usize = 3;
    let mut latency_ms: u64 = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => port = value("--port")?.parse().context("--port")?,
            "--subjects" => subjects = value("--subjects")?.parse().context("--subjects")?,
            "--versions" => versions = value("--versions")?.parse().context("--versions")?,
            "--latency-ms" => {
                latency_ms = value("--latency-ms")?.parse().context("--latency-ms")?
            }
            "-h" | "--help" => {
                println!(
                    "usage: krawl-fake-registry [--port P] [--subjects N] [--versions V] \
                     [--latency-ms L]"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    let registry = FakeRegistry::start_on(
        port,
        FakeRegistryOpts {
            latency: Duration::from_millis(latency_ms),
            ..FakeRegistryOpts::default()
        },
    )?;
    seed(&registry, subjects, versions)?;
    println!("listening on {}", registry.url());
    loop {
        std::thread::park();
    }
}
