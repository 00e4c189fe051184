//! `inspecta run --headless`: a station without a display, until the source ends or the
//! service is told to stop (SIGINT/SIGTERM). Every verdict is logged and, if configured,
//! appended to a JSON-lines file that is flushed line by line.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use inspecta_pipeline::station::{LiveVerdict, Station};
use serde::Serialize;

use crate::config::StationConfig;

const STATUS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Station config (TOML); see samples/station.example.toml.
    #[arg(long, short)]
    config: PathBuf,
    /// Run without the operator panel.
    #[arg(long)]
    headless: bool,
}

#[derive(Serialize)]
struct Line<'a> {
    station: &'a str,
    sequence: u64,
    captured_unix_ms: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<&'a std::path::Path>,
    latency_ms: f64,
    #[serde(flatten)]
    inspection: &'a inspecta_pipeline::model::Inspection,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if !args.headless {
        bail!("the operator panel is not available yet: run with --headless");
    }
    let config = StationConfig::from_path(&args.config)?;
    let model = super::load_model(&config.model.path, config.model.threads)?;
    let mut output = config
        .output
        .jsonl
        .as_deref()
        .map(open_output)
        .transpose()?;

    let stopping = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stopping);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("installing the signal handler")?;

    let station = Station::start(&model, config.source.clone(), config.reconnect)?;
    tracing::info!(station = %config.station.name, model = %model.manifest().name, "station running");
    let mut last_status = Instant::now();
    while !stopping.load(Ordering::Relaxed) {
        match station.results().recv_timeout(Duration::from_millis(200)) {
            Ok(verdict) => record(&config.station.name, &verdict, output.as_mut())?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_status.elapsed() >= STATUS_EVERY {
            let status = station.status().snapshot();
            tracing::info!(frames = status.frames_in, dropped = status.frames_dropped, inspected = status.inspected(), source = ?status.source, "status");
            last_status = Instant::now();
        }
    }
    // Verdicts made before the stop still reach the log and the file.
    let (pending, status) = station.stop();
    for verdict in &pending {
        record(&config.station.name, verdict, output.as_mut())?;
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

fn open_output(path: &std::path::Path) -> anyhow::Result<BufWriter<File>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok(BufWriter::new(file))
}

fn record(
    station: &str,
    v: &LiveVerdict,
    output: Option<&mut BufWriter<File>>,
) -> anyhow::Result<()> {
    let name = v.inspection.verdict.name();
    let latency_ms = v.latency.as_secs_f64() * 1e3;
    let origin = v.origin.as_deref();
    tracing::info!(sequence = v.sequence, verdict = name, score = v.inspection.scores.defect_score, latency_ms, origin = ?origin, "verdict");
    if let Some(out) = output {
        let line = Line {
            station,
            sequence: v.sequence,
            captured_unix_ms: v
                .captured_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            origin,
            latency_ms,
            inspection: &v.inspection,
        };
        serde_json::to_writer(&mut *out, &line).context("writing a verdict")?;
        out.write_all(b"\n").context("writing a verdict")?;
        out.flush().context("writing a verdict")?;
    }
    Ok(())
}
