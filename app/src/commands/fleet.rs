//! `inspecta fleet`: the plant's central half, beside the broker and PostgreSQL.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use inspecta_fleet::ingest::{Ingest, IngestConfig, IngestCounts};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Store every station's verdicts, reviews, alarms, KPIs and presence in PostgreSQL,
    /// acknowledging each message to the broker only once its row is committed.
    Ingest {
        /// fleet.toml: [mqtt] and [postgres]; see samples/fleet.example.toml.
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// How often the ingest says what it did.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.action {
        Action::Ingest { config } => ingest(config),
    }
}

fn ingest(path: &PathBuf) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config: IngestConfig = toml::from_str(&text)
        .with_context(|| format!("invalid fleet config {}", path.display()))?;
    let stopping = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stopping);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("installing the signal handler")?;
    let ingest = Ingest::start(&config).context("starting the ingest")?;
    tracing::info!(
        broker = %format!("{}:{}", config.mqtt.host, config.mqtt.port),
        group = config.mqtt.group,
        "ingest started"
    );
    let mut last = Instant::now();
    while !stopping.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        if last.elapsed() >= SUMMARY_EVERY {
            summary(ingest.counts());
            last = Instant::now();
        }
    }
    summary(ingest.counts());
    ingest.stop();
    tracing::info!("ingest stopped");
    Ok(ExitCode::SUCCESS)
}

fn summary(counts: &IngestCounts) {
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    tracing::info!(
        stored = get(&counts.stored),
        duplicates = get(&counts.duplicates),
        dead_letters = get(&counts.rejected),
        store_failures = get(&counts.store_failures),
        "ingest"
    );
}
