//! `inspecta run --headless`: a station without a display, until the source ends or the
//! service is told to stop (SIGINT/SIGTERM). Every verdict goes through the [`Recorder`]
//! (store, metrics, log, JSON lines); the API, when configured, serves the same store and
//! keeps serving after a finite source has ended.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use inspecta_pipeline::station::{Station, Triggers};
use inspecta_pipeline::store::RecordStore;

use crate::api::{ApiServer, ApiState, SessionPool, TriggerInput};
use crate::config::StationConfig;
use crate::metrics::{Identity, Metrics};
use crate::recorder::{PartWaiters, Recorder};

const STATUS_EVERY: Duration = Duration::from_secs(10);
const TOKEN_ENV: &str = "INSPECTA_API_TOKEN";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Station config (TOML); see samples/station.example.toml.
    #[arg(long, short)]
    config: PathBuf,
    /// Run without the operator panel.
    #[arg(long)]
    headless: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if !args.headless {
        bail!("the operator panel is not available yet: run with --headless");
    }
    let config = StationConfig::from_path(&args.config)?;
    let model = super::load_model(&config.model.path, config.model.threads)?;
    let store = config
        .store
        .as_ref()
        .map(|s| {
            RecordStore::open(s)
                .map(Arc::new)
                .with_context(|| format!("cannot open the record store in {}", s.dir.display()))
        })
        .transpose()?;

    let stopping = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stopping);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("installing the signal handler")?;

    let frame_timeout = Duration::from_millis(config.trigger.frame_timeout_ms);
    let (station, triggers) = if config.trigger.enabled {
        let (station, triggers) = Station::start_triggered(
            &model,
            config.source.clone(),
            config.reconnect,
            frame_timeout,
        )?;
        (station, Some(triggers))
    } else {
        (
            Station::start(&model, config.source.clone(), config.reconnect)?,
            None,
        )
    };
    let manifest = model.manifest();
    let metrics = Arc::new(Metrics::new(
        Identity {
            station: &config.station.name,
            model: &manifest.name,
            model_version: &manifest.version,
        },
        Arc::clone(station.status()),
        store.clone(),
    ));
    let waiters = Arc::new(PartWaiters::default());
    let finished = Arc::new(AtomicBool::new(false));
    let mut recorder = Recorder::new(
        config.station.name.clone(),
        Arc::clone(&model),
        store.clone(),
        config.output.jsonl.as_deref(),
        Arc::clone(&metrics),
        Arc::clone(&waiters),
    )?;
    let api = match (&config.api, &store) {
        (Some(api), Some(store)) => {
            let state = ApiState {
                station: config.station.name.clone(),
                model: Arc::clone(&model),
                store: Arc::clone(store),
                status: Arc::clone(station.status()),
                metrics: Arc::clone(&metrics),
                trigger: triggers.clone().map(|triggers| TriggerInput {
                    triggers,
                    frame_timeout,
                }),
                waiters,
                token: std::env::var(TOKEN_ENV).ok().or_else(|| api.token.clone()),
                started: Instant::now(),
                sessions: SessionPool::default(),
                finished: Arc::clone(&finished),
            };
            match ApiServer::start(api, state) {
                Ok(server) => Some(server),
                Err(e) => {
                    station.stop();
                    return Err(e);
                }
            }
        }
        _ => None,
    };
    if config.trigger.stdin
        && let Some(triggers) = triggers
    {
        read_stdin_triggers(triggers, config.station.name.clone())?;
    }
    tracing::info!(station = %config.station.name, model = %manifest.name, "station running");

    let mut last_status = Instant::now();
    let mut source_ended = false;
    while !stopping.load(Ordering::Relaxed) {
        if source_ended {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        match station.results().recv_timeout(Duration::from_millis(200)) {
            Ok(verdict) => recorder.record(&verdict)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) if api.is_some() => {
                tracing::info!("source ended; the API keeps serving until the service is stopped");
                finished.store(true, Ordering::Relaxed);
                source_ended = true;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_status.elapsed() >= STATUS_EVERY {
            let status = station.status().snapshot();
            tracing::info!(frames = status.frames_in, dropped = status.frames_dropped, inspected = status.inspected(), source = ?status.source, "status");
            last_status = Instant::now();
        }
    }
    // Stop taking requests first, then the station; verdicts made before the stop still
    // reach the store, the log and the file.
    if let Some(api) = api {
        api.stop();
    }
    let (pending, status) = station.stop();
    for verdict in &pending {
        recorder.record(verdict)?;
    }
    tracing::info!(
        frames = status.frames_in,
        dropped = status.frames_dropped,
        unreadable = status.unreadable,
        verdicts = ?status.verdicts,
        "station stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// Fires one trigger per line of standard input (the line is the part id) on a thread of
/// its own; the end of input ends the triggers, not the station.
fn read_stdin_triggers(triggers: Triggers, station: String) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("stdin-triggers".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let line = match line {
                    Ok(line) => line,
                    Err(e) => {
                        tracing::warn!("stdin triggers stopped: {e}");
                        return;
                    }
                };
                let part_id = match line.trim() {
                    "" => crate::api::generated_part_id(&station),
                    id => id.to_owned(),
                };
                if let Err(e) = triggers.fire(part_id.clone()) {
                    tracing::warn!(part_id, "trigger refused: {e}");
                }
            }
            tracing::info!("stdin closed: no more stdin triggers");
        })
        .context("starting the stdin trigger reader")?;
    Ok(())
}
