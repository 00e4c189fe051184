//! Record store benchmark: what one `RecordStore::insert` of a real part with its image
//! costs in an empty archive and in one holding 200k images at its byte limit (each insert
//! then prunes the oldest), defects (kept) and passed parts (the ring, full, evicting one
//! per insert); and what opening the full store costs (the one scan that builds the index).
//! The scenarios take turns, round by round, so machine noise hits them alike.
//!
//! `cargo bench -p inspecta-pipeline --bench store`. Env: BENCH_IMAGES (images in the full
//! archive, default 200000), BENCH_INSERTS (per scenario and round, default 200),
//! BENCH_ROUNDS (default 3); the archives go in `TMPDIR`. The pre-filled images are sparse
//! files of the real image's size with a record each, written straight to disk and SQLite.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::error::Error;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use inspecta_pipeline::store::{NewRecord, RecordStore, StoreConfig};
use inspecta_vision::evaluation::metrics::Percentiles;
use inspecta_vision::frame::Frame;
use inspecta_vision::inspection::{Inspection, Verdict};
use inspecta_vision::model::manifest::Manifest;
use inspecta_vision::model::{Model, RunnerOptions};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// One part as the line hands it to the store.
struct Part {
    frame: Frame,
    inspection: Inspection,
}

fn record<'a>(model: &'a Manifest, part: &'a Part) -> NewRecord<'a> {
    NewRecord {
        station: "bench",
        part_id: None,
        sequence: None,
        origin: None,
        captured_at: SystemTime::now(),
        model,
        inspection: &part.inspection,
        latency: None,
        frame: Some(&part.frame),
    }
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let images: usize = env_or("BENCH_IMAGES", 200_000);
    let inserts: usize = env_or("BENCH_INSERTS", 200);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);

    let model = Arc::new(Model::load(
        &repo.join("models/casting"),
        RunnerOptions::default(),
    )?);
    let mut session = model.session()?;
    let samples = repo.join("samples/casting");
    let parts = ["defect/cast_def_0_1007.jpeg", "good"]
        .iter()
        .map(|name| {
            let path = samples.join(name);
            let path = if path.is_dir() {
                std::fs::read_dir(&path)?.next().ok_or("no sample")??.path()
            } else {
                path
            };
            let frame = Frame::open(&path)?;
            let inspection = session.inspect(&frame)?;
            Ok(Part { frame, inspection })
        })
        .collect::<Result<Vec<_>>>()?;
    let (defect, good) = (0, 1);
    if parts[defect].inspection.verdict == Verdict::Good
        || parts[good].inspection.verdict != Verdict::Good
    {
        return Err("the samples are not judged as expected".into());
    }
    let manifest = model.manifest();
    let record = |part| record(manifest, part);

    let dir = tempfile::tempdir()?;
    let image_bytes = {
        let sizing = RecordStore::open(&StoreConfig::in_dir(dir.path().join("sizing")))?;
        sizing.insert(&record(&parts[defect]))?;
        sizing.image_bytes()
    };
    let empty = RecordStore::open(&StoreConfig::in_dir(dir.path().join("empty")))?;
    let full_config = StoreConfig {
        max_image_bytes: image_bytes * images as u64,
        ..StoreConfig::in_dir(dir.path().join("full"))
    };
    let started = Instant::now();
    prefill(&full_config, images, image_bytes)?;
    let prefill_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let full = RecordStore::open(&full_config)?;
    let open_ms = started.elapsed().as_secs_f64() * 1e3;
    if full.image_bytes() != full_config.max_image_bytes {
        return Err("the full archive is not at its limit".into());
    }

    let stores = [empty, full];
    // (name, store, part, per-insert ms)
    let mut scenarios: Vec<(&str, usize, usize, Vec<f64>)> = vec![
        ("empty archive, defect (kept)", 0, defect, Vec::new()),
        (
            "full archive, defect (kept, oldest pruned)",
            1,
            defect,
            Vec::new(),
        ),
        (
            "full archive, passed part (ring full, oldest evicted)",
            1,
            good,
            Vec::new(),
        ),
    ];
    for _ in 0..rounds {
        for (_, store, part, times) in &mut scenarios {
            for _ in 0..inserts {
                let started = Instant::now();
                stores[*store].insert(&record(&parts[*part]))?;
                times.push(started.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let kept = stores[1].image_bytes();
    println!(
        "{images} images of {image_bytes} B pre-filled in {prefill_s:.1} s; opening that store \
         (one scan): {open_ms:.0} ms; kept bytes after the run {kept} (limit {})\n",
        full_config.max_image_bytes
    );
    println!("| scenario | inserts | mean ms | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    for (name, _, _, times) in &scenarios {
        let p = Percentiles::of(times.clone()).ok_or("no inserts")?;
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            times.len(),
            p.mean,
            p.p50,
            p.p95,
            p.p99,
            p.max
        );
    }
    Ok(())
}

/// `count` images of `bytes` each (sparse files) spread over the last 30 days, each with its
/// record, oldest first, and a full ring of passed parts.
fn prefill(config: &StoreConfig, count: usize, bytes: u64) -> Result<()> {
    drop(RecordStore::open(config)?);
    let images = config.dir.join("images");
    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let span_ms = Duration::from_secs(30 * 86_400).as_millis() as i64;
    let mut conn = rusqlite::Connection::open(config.dir.join("records.sqlite"))?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO verdicts (captured_ms, station, model_name, model_version, verdict,
                class, top_label, defect_score, probabilities, preprocess_ms, inference_ms, image)
             VALUES (?1, 'bench', 'casting', '1', ?2, ?3, 'defect', 0.9, '{}', 1, 10, ?4)",
        )?;
        let ring = config.recent_images as usize;
        for n in 0..count + ring {
            let (folder, ms, verdict, class) = if n < count {
                let ms = now_ms - span_ms + span_ms * n as i64 / count as i64;
                (day(ms), ms, "defect", Some("defect"))
            } else {
                ("recent".to_owned(), now_ms - 1000, "good", None)
            };
            let relative = format!("{folder}/{ms:013}-1-{n}.jpg");
            let path = images.join(&relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            File::create(&path)?.set_len(bytes)?;
            insert.execute(rusqlite::params![ms, verdict, class, relative])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn day(unix_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(unix_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%d")
        .to_string()
}
