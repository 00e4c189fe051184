//! `inspecta run --headless`: a station without a display, until the source ends or the
//! service is told to stop (SIGINT/SIGTERM). When an API is configured it keeps serving
//! after a finite source has ended.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use inspecta_pipeline::station::{Triggers, generated_part_id};

use crate::config::StationConfig;
use crate::service::{Service, Step};

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
    let config = StationConfig::from_path(&args.config)?;
    if !args.headless {
        return panel(&config);
    }
    let stopping = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stopping);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("installing the signal handler")?;

    let mut service = crate::api::open(Service::start(&config, Vec::new())?, &config)?;
    if config.trigger.stdin
        && let Some(triggers) = service.triggers()
    {
        read_stdin_triggers(triggers.clone(), config.station.name)?;
    }
    let mut source_ended = false;
    while !stopping.load(Ordering::Relaxed) {
        if source_ended {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        match service.step(Duration::from_millis(200))? {
            Step::Recorded | Step::Idle => {}
            Step::Ended if service.keeps_serving() => {
                tracing::info!("source ended; the API keeps serving until the service is stopped");
                source_ended = true;
            }
            Step::Ended => break,
        }
    }
    service.stop()?;
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
                    "" => generated_part_id(&station),
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

#[cfg(feature = "panel")]
fn panel(config: &StationConfig) -> anyhow::Result<ExitCode> {
    crate::panel::run(config)
}

#[cfg(not(feature = "panel"))]
fn panel(_: &StationConfig) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this build has no operator panel (feature `panel`): run with --headless")
}
