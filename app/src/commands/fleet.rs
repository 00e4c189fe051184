//! `inspecta fleet`: the plant's central half, beside the broker and PostgreSQL.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use inspecta_fleet::config::FleetConfig;
use inspecta_fleet::ingest::{Ingest, IngestCounts};

use crate::plant;

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
        /// fleet.toml: [mqtt], [postgres], [prometheus]; see samples/fleet.example.toml.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Serve the plant view in the browser: sites, lines, stations, shifts, alarms, parts.
    Serve {
        /// fleet.toml: [postgres] and [view]; see samples/fleet.example.toml.
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// How often the ingest says what it did.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.action {
        Action::Ingest { config } => ingest(&load(config)?),
        Action::Serve { config } => serve(&load(config)?),
    }
}

fn load(path: &PathBuf) -> anyhow::Result<FleetConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid fleet config {}", path.display()))
}

/// Runs `tick` every `every` until SIGINT or SIGTERM.
fn until_signalled(every: Duration, mut tick: impl FnMut()) -> anyhow::Result<()> {
    let stopping = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stopping);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("installing the signal handler")?;
    let mut last = Instant::now();
    while !stopping.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        if last.elapsed() >= every {
            tick();
            last = Instant::now();
        }
    }
    Ok(())
}

fn ingest(config: &FleetConfig) -> anyhow::Result<ExitCode> {
    let ingest = Ingest::start(config).context("starting the ingest")?;
    let metrics = match config.prometheus.listen {
        Some(listen) => Some(plant::ingest_metrics::serve(listen, ingest.counts())?),
        None => None,
    };
    if let Some(mqtt) = &config.mqtt {
        tracing::info!(
            broker = %format!("{}:{}", mqtt.host, mqtt.port),
            group = mqtt.group,
            "ingest started"
        );
    }
    let counts = ingest.counts();
    until_signalled(SUMMARY_EVERY, || summary(&counts))?;
    summary(&counts);
    ingest.stop();
    if let Some(metrics) = metrics {
        metrics.stop();
    }
    tracing::info!("ingest stopped");
    Ok(ExitCode::SUCCESS)
}

fn serve(config: &FleetConfig) -> anyhow::Result<ExitCode> {
    let server = plant::view::start(config).context("starting the plant view")?;
    until_signalled(Duration::from_secs(3600), || {})?;
    server.stop();
    tracing::info!("plant view stopped");
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
