//! Live station benchmark: the real `Station` (capture thread, newest-frame mailbox,
//! inspection thread) on a 30 fps video of the sample parts, played in real time like a camera
//! and unthrottled, with 1 and 2 intra-op threads and with tract's threading thresholds moved;
//! beside it, the model alone on the same images, as a reference. Every configuration runs
//! once per round, in turn, so machine noise hits them alike.
//!
//! `make bench-live` (or `cargo bench -p inspecta-pipeline --bench live`).
//! Env: BENCH_MODEL (default models/casting), BENCH_LOOPS (the clip shows the sample parts
//! this many times, 8 s each; default 3), BENCH_ROUNDS (default 2). Needs gst-launch-1.0 for
//! `scripts/make-clip.sh`. Output: `target/bench/live.md`.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inspecta_pipeline::source::SourceSpec;
use inspecta_pipeline::station::{Reconnect, Station};
use inspecta_vision::evaluation::metrics::Percentiles;
use inspecta_vision::frame::Frame;
use inspecta_vision::model::{Model, RunnerOptions};
use tract_linalg::multithread as mt;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The first verdicts of each run are left out of the latency figures: they carry the
/// pipeline's start and the new session's first-run allocations.
const WARM_UP_VERDICTS: usize = 3;
const FRAME_PERIOD: Duration = Duration::from_nanos(1_000_000_000 / 30);

/// tract's gates for threading one operation (see `tract_linalg::multithread`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Thresholds {
    /// Matrix products with fewer panels than this run on one thread...
    panels: usize,
    /// ...unless they have at least this many multiply-accumulates.
    macs: usize,
    /// Element-wise, depthwise-convolution and packing work below this many elements runs on
    /// one thread.
    elements: usize,
}

impl Thresholds {
    const DEFAULT: Self = Self {
        panels: 64,
        macs: 1 << 21,
        elements: 32_768,
    };

    fn apply(self) {
        mt::set_threading_panel_threshold(self.panels);
        mt::set_threading_mac_threshold(self.macs);
        mt::set_threading_element_threshold(self.elements);
    }

    fn label(self) -> String {
        if self == Self::DEFAULT {
            return "default".into();
        }
        let macs = match self.macs.checked_ilog2() {
            Some(log) => format!("2^{log}"),
            None => "0".into(),
        };
        format!(
            "panels {} / MACs {macs} / elements {}",
            self.panels, self.elements
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// The station on the clip played at its 30 fps, like a camera.
    RealTime,
    /// The station on the clip decoded as fast as it goes.
    Unthrottled,
    /// No station: the sample images straight through one session, back to back, for what
    /// the model alone costs in this process.
    AloneBackToBack,
    /// No station: one image every 33 ms, the camera's rhythm without its decoding.
    AlonePaced,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    mode: Mode,
    threads: usize,
    thresholds: Thresholds,
}

impl Config {
    fn mode(&self) -> &'static str {
        match self.mode {
            Mode::RealTime => "station, real time 30 fps",
            Mode::Unthrottled => "station, unthrottled",
            Mode::AloneBackToBack => "model alone, back to back",
            Mode::AlonePaced => "model alone, every 33 ms",
        }
    }
}

#[derive(Debug, Default)]
struct Totals {
    runs: usize,
    frames_in: u64,
    inspected: u64,
    dropped: u64,
    seconds: f64,
    latency_ms: Vec<f64>,
    preprocess_ms: Vec<f64>,
    inference_ms: Vec<f64>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn make_clip(repo: &Path, clip: &Path, loops: u32) -> Result<()> {
    let status = Command::new(repo.join("scripts/make-clip.sh"))
        .arg(clip)
        .arg("10")
        .arg(loops.to_string())
        .status()?;
    if !status.success() {
        return Err(format!("scripts/make-clip.sh failed: {status}").into());
    }
    Ok(())
}

/// Runs `config` once and adds what it measured to `totals`. Unthrottled, the clip decodes in
/// a fraction of a second, so it is played again until a real-time run's time is up.
fn run(
    model: &Arc<Model>,
    clip: &Path,
    clip_length: Duration,
    images: &[Frame],
    config: Config,
    totals: &mut Totals,
) -> Result<()> {
    config.thresholds.apply();
    let started = Instant::now();
    let result = match config.mode {
        Mode::RealTime => play(model, clip, true, totals),
        Mode::Unthrottled => loop {
            if let Err(e) = play(model, clip, false, totals) {
                break Err(e);
            }
            if started.elapsed() >= clip_length {
                break Ok(());
            }
        },
        Mode::AloneBackToBack => alone(model, images, None, totals),
        Mode::AlonePaced => alone(model, images, Some(FRAME_PERIOD), totals),
    };
    Thresholds::DEFAULT.apply();
    result
}

/// Inspects each image ten times with a new session, every `period` or back to back.
fn alone(
    model: &Arc<Model>,
    images: &[Frame],
    period: Option<Duration>,
    totals: &mut Totals,
) -> Result<()> {
    let mut session = model.session()?;
    let started = Instant::now();
    let mut due = started;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (i, image) in images.iter().cycle().take(10 * images.len()).enumerate() {
        if let Some(period) = period {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            due += period;
        }
        let inspection = session.inspect(image)?;
        if i >= WARM_UP_VERDICTS {
            let t = inspection.timings_ms;
            totals.latency_ms.push(ms(t.preprocess + t.inference));
            totals.preprocess_ms.push(ms(t.preprocess));
            totals.inference_ms.push(ms(t.inference));
        }
    }
    let n = 10 * images.len() as u64;
    totals.runs += 1;
    totals.frames_in += n;
    totals.inspected += n;
    totals.seconds += started.elapsed().as_secs_f64();
    Ok(())
}

/// Plays the clip once through a new station.
fn play(model: &Arc<Model>, clip: &Path, realtime: bool, totals: &mut Totals) -> Result<()> {
    let spec = SourceSpec::File {
        path: clip.to_owned(),
        realtime,
    };
    let station = Station::start(model, spec, Reconnect::default())?;
    let started = Instant::now();
    // A clip that cannot play makes the station retry for ever; give up well after its end.
    let deadline = started + Duration::from_secs(300);
    let mut verdicts = Vec::new();
    while Instant::now() < deadline {
        match station.results().recv_timeout(Duration::from_millis(200)) {
            Ok(verdict) => verdicts.push((verdict.latency, verdict.inspection.timings_ms)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (rest, status) = station.stop();
    verdicts.extend(
        rest.into_iter()
            .map(|v| (v.latency, v.inspection.timings_ms)),
    );
    if verdicts.len() <= WARM_UP_VERDICTS {
        return Err(format!("too few verdicts ({status:?})").into());
    }
    totals.runs += 1;
    totals.frames_in += status.frames_in;
    totals.inspected += status.inspected();
    totals.dropped += status.frames_dropped;
    totals.seconds += seconds;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (latency, timings) in &verdicts[WARM_UP_VERDICTS..] {
        totals.latency_ms.push(ms(*latency));
        totals.preprocess_ms.push(ms(timings.preprocess));
        totals.inference_ms.push(ms(timings.inference));
    }
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model_dir =
        std::env::var_os("BENCH_MODEL").map_or_else(|| repo.join("models/casting"), PathBuf::from);
    let loops: u32 = env_or("BENCH_LOOPS", 3);
    let rounds: usize = env_or("BENCH_ROUNDS", 2);

    let dir = tempfile::tempdir()?;
    let clip = dir.path().join("casting-line.mkv");
    make_clip(&repo, &clip, loops)?;
    let clip_length = Duration::from_secs(8 * u64::from(loops));

    // Thread every operation; only matrix products; only element-wise, depthwise and packing
    // work; and fewer, larger operations than the default.
    let all = Thresholds {
        panels: 0,
        macs: 0,
        elements: 0,
    };
    let products = Thresholds {
        panels: 0,
        macs: 0,
        ..Thresholds::DEFAULT
    };
    let elementwise = Thresholds {
        elements: 0,
        ..Thresholds::DEFAULT
    };
    let coarser = Thresholds {
        panels: 256,
        macs: 1 << 23,
        elements: 131_072,
    };
    let mut configs = Vec::new();
    for mode in [
        Mode::RealTime,
        Mode::Unthrottled,
        Mode::AloneBackToBack,
        Mode::AlonePaced,
    ] {
        for threads in [1, 2] {
            configs.push(Config {
                mode,
                threads,
                thresholds: Thresholds::DEFAULT,
            });
        }
    }
    // The thresholds only matter with more than one thread, and for latency at the line rate.
    for thresholds in [all, products, elementwise, coarser] {
        configs.push(Config {
            mode: Mode::RealTime,
            threads: 2,
            thresholds,
        });
    }

    let mut images = Vec::new();
    for class in ["good", "defect"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(repo.join("samples/casting").join(class))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        paths.sort();
        for path in paths {
            images.push(Frame::open(&path)?);
        }
    }
    let mut models: BTreeMap<usize, Arc<Model>> = BTreeMap::new();
    for threads in [1, 2] {
        let options = RunnerOptions {
            intra_op_threads: threads,
        };
        models.insert(threads, Arc::new(Model::load(&model_dir, options)?));
    }
    let load_before = load_average();
    let mut totals: Vec<Totals> = configs.iter().map(|_| Totals::default()).collect();
    for round in 0..rounds {
        for (config, totals) in configs.iter().zip(&mut totals) {
            eprintln!(
                "round {}/{rounds}: {}, {} thread(s), thresholds {}",
                round + 1,
                config.mode(),
                config.threads,
                config.thresholds.label()
            );
            run(
                &models[&config.threads],
                &clip,
                clip_length,
                &images,
                *config,
                totals,
            )?;
        }
    }

    let model = &models[&1];
    let mut table = String::new();
    writeln!(
        table,
        "model {} ({}), clip of {} frames at 30 fps (300x300 MJPEG, {loops} x the sample parts), \
         {rounds} rounds, {} logical CPUs, {}, load average {load_before} before and {} after\n",
        model.manifest().name,
        model_dir.display(),
        loops * 240,
        std::thread::available_parallelism()?,
        inspecta_vision::model::cpu::instruction_sets(),
        load_average()
    )?;
    writeln!(
        table,
        "| mode | intra-op threads | tract thresholds | runs | frames in | inspected | dropped | inspected/s | \
         latency p50 | p95 | p99 | max | p99 / baseline | preprocess p50 | p99 | inference p50 | p99 |"
    )?;
    writeln!(table, "|{}", "---|".repeat(17))?;
    let percentiles = |v: &[f64]| Percentiles::of(v.to_vec()).ok_or("no verdicts");
    let baseline = percentiles(&totals[0].latency_ms)?.p99;
    for (config, t) in configs.iter().zip(&totals) {
        let latency = percentiles(&t.latency_ms)?;
        let pre = percentiles(&t.preprocess_ms)?;
        let inf = percentiles(&t.inference_ms)?;
        writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}x | {:.2} | {:.2} | {:.1} | {:.1} |",
            config.mode(),
            config.threads,
            config.thresholds.label(),
            t.runs,
            t.frames_in,
            t.inspected,
            t.dropped,
            t.inspected as f64 / t.seconds,
            latency.p50,
            latency.p95,
            latency.p99,
            latency.max,
            latency.p99 / baseline,
            pre.p50,
            pre.p99,
            inf.p50,
            inf.p99,
        )?;
    }
    writeln!(
        table,
        "\nLatency: capture (frame out of the decoder) to verdict, in ms, mailbox wait included \
         (model alone: preprocess + inference), without the first {WARM_UP_VERDICTS} verdicts of \
         each run (warm-up). Counts are totals over all runs; unthrottled, the clip is replayed \
         for as long as a real-time run lasts."
    )?;
    println!("{table}");
    let work = repo.join("target/bench");
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("live.md"), &table)?;
    Ok(())
}
