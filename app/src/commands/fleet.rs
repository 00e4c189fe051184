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
use crate::plant::rollout::{self, RolloutRequest};

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
    /// Roll a model out to stations: served with its SHA-256, checked and run as a shadow
    /// at each, then promoted by policy or on approval. Exits non-zero unless every
    /// station ends in charge or waiting for approval.
    Rollout {
        /// fleet.toml: [mqtt] (an account that may command stations), [postgres] (to
        /// match a pattern against the stations it knows).
        #[arg(long, short)]
        config: PathBuf,
        /// The model directory to roll out (model.toml and the files it names).
        #[arg(long)]
        model: PathBuf,
        /// `<site>/<line>/<station>`, each part may be a pattern: 'plant-a/line-2/*'.
        #[arg(long)]
        stations: String,
        /// Parts the model judges beside the running one before it may take charge.
        #[arg(long, default_value_t = 200)]
        shadow_parts: u64,
        /// Promote on its own when it agreed with the running model on at least this share
        /// of the shadow parts (0.99 = 99 %); without it, only on approval.
        #[arg(long)]
        auto_promote: Option<f64>,
        /// Where the package is served.
        #[arg(long, default_value = "0.0.0.0:8470")]
        listen: std::net::SocketAddr,
        /// How the stations reach --listen (http://10.0.0.5:8470).
        #[arg(long)]
        url: Option<String>,
        /// Who orders it, for every station's settings log.
        #[arg(long, env = "USER", default_value = "engineer")]
        who: String,
        /// Give up following after this many seconds.
        #[arg(long, default_value_t = 3600)]
        wait_s: u64,
    },
    /// Put a rollout that waits for approval in charge.
    Approve {
        /// The rollout's id, as `fleet rollout` printed it.
        #[arg(long)]
        rollout: String,
        #[command(flatten)]
        to: OneStep,
    },
    /// Undo the last rollout: the model before it takes charge again (or a rollout not
    /// yet in charge stops).
    Rollback {
        #[command(flatten)]
        to: OneStep,
    },
}

/// Where a one-step rollout command goes, from whom, and how long its outcome is followed.
#[derive(Debug, clap::Args)]
struct OneStep {
    /// fleet.toml: [mqtt] and [rollout] (and [postgres] for a pattern).
    #[arg(long, short)]
    config: PathBuf,
    #[arg(long)]
    stations: String,
    #[arg(long, env = "USER", default_value = "engineer")]
    who: String,
    #[arg(long, default_value_t = 120)]
    wait_s: u64,
}

/// How often the ingest says what it did.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.action {
        Action::Ingest { config } => ingest(&load(config)?),
        Action::Serve { config } => serve(&load(config)?),
        Action::Rollout {
            config,
            model,
            stations,
            shadow_parts,
            auto_promote,
            listen,
            url,
            who,
            wait_s,
        } => {
            let request = RolloutRequest {
                model: model.clone(),
                stations: stations.clone(),
                shadow_parts: *shadow_parts,
                auto_promote: *auto_promote,
                listen: *listen,
                url: url.clone(),
                who: who.clone(),
                wait: Duration::from_secs(*wait_s),
            };
            outcome(rollout::rollout(&load(config)?, &request)?)
        }
        Action::Approve { rollout, to } => outcome(rollout::approve(
            &load(&to.config)?,
            rollout,
            &to.stations,
            &to.who,
            Duration::from_secs(to.wait_s),
        )?),
        Action::Rollback { to } => outcome(rollout::rollback(
            &load(&to.config)?,
            &to.stations,
            &to.who,
            Duration::from_secs(to.wait_s),
        )?),
    }
}

fn outcome(all_good: bool) -> anyhow::Result<ExitCode> {
    Ok(if all_good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
