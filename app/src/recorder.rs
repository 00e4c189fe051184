//! Where every live verdict goes: the record store first (it is the station's memory),
//! then the metrics, the log, the JSON-lines file and whoever waits for that part.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, UNIX_EPOCH};

use anyhow::Context as _;
use inspecta_pipeline::model::Inspection;
use inspecta_pipeline::station::LiveVerdict;
use inspecta_pipeline::station::shadow::Shadow;
use inspecta_pipeline::store::{NewRecord, Record, RecordStore};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::metrics::Metrics;

#[derive(Debug)]
pub struct Recorder {
    station: String,
    store: Option<Arc<RecordStore>>,
    jsonl: Option<BufWriter<File>>,
    metrics: Arc<Metrics>,
    waiters: Arc<PartWaiters>,
    shadow: Option<Arc<Shadow>>,
}

/// One verdict as a JSON line.
#[derive(Serialize)]
struct Line<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    station: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    part_id: Option<&'a str>,
    sequence: u64,
    model: &'a str,
    model_version: &'a str,
    captured_unix_ms: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<&'a Path>,
    latency_ms: f64,
    #[serde(flatten)]
    inspection: &'a Inspection,
}

impl Recorder {
    pub fn new(
        station: String,
        store: Option<Arc<RecordStore>>,
        jsonl: Option<&Path>,
        metrics: Arc<Metrics>,
        waiters: Arc<PartWaiters>,
        shadow: Option<Arc<Shadow>>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            station,
            store,
            jsonl: jsonl.map(open_jsonl).transpose()?,
            metrics,
            waiters,
            shadow,
        })
    }

    /// Keeps one verdict. A store failure (disk full, say) is logged and counted but does
    /// not stop the line; the verdict still reaches the log and the JSON-lines file.
    /// Returns the record id when the store kept it.
    pub fn record(&mut self, v: &LiveVerdict) -> anyhow::Result<Option<i64>> {
        self.metrics.observe(v);
        let id = self.store(v);
        let name = v.inspection.verdict.name();
        let latency_ms = v.latency.as_secs_f64() * 1e3;
        let origin = v.origin.as_deref();
        tracing::info!(id, part_id = v.part_id, sequence = v.sequence, verdict = name, score = v.inspection.scores.defect_score, latency_ms, origin = ?origin, "verdict");
        if let Some(out) = self.jsonl.as_mut() {
            let manifest = v.model.manifest();
            let line = Line {
                id,
                station: &self.station,
                part_id: v.part_id.as_deref(),
                sequence: v.sequence,
                model: &manifest.name,
                model_version: &manifest.version,
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
        if let Some(shadow) = &self.shadow {
            shadow.offer(v);
        }
        if let (Some(part_id), Some(id), Some(store)) = (&v.part_id, id, &self.store) {
            match store.get(id) {
                Ok(record) => self.waiters.complete(part_id, record),
                Err(e) => tracing::error!(id, "cannot read back record: {e}"),
            }
        }
        Ok(id)
    }

    fn store(&self, v: &LiveVerdict) -> Option<i64> {
        let store = self.store.as_ref()?;
        let origin = v.origin.as_deref().map(|p| p.display().to_string());
        let record = NewRecord {
            station: &self.station,
            part_id: v.part_id.as_deref(),
            sequence: Some(v.sequence),
            origin: origin.as_deref(),
            captured_at: v.captured_at,
            model: v.model.manifest(),
            inspection: &v.inspection,
            latency: Some(v.latency),
            frame: Some(&v.frame),
        };
        let started = Instant::now();
        match store.insert(&record) {
            Ok(id) => {
                self.metrics.stored(started.elapsed());
                Some(id)
            }
            Err(e) => {
                self.metrics.store_failed();
                tracing::error!(sequence = v.sequence, "verdict not stored: {e}");
                None
            }
        }
    }
}

fn open_jsonl(path: &Path) -> anyhow::Result<BufWriter<File>> {
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

/// Callers waiting for the record of a triggered part (an HTTP trigger answers with it).
#[derive(Debug, Default)]
pub struct PartWaiters {
    waiting: Mutex<HashMap<String, oneshot::Sender<Record>>>,
}

impl PartWaiters {
    /// Registers interest in `part_id`; `None` if someone already waits for that part.
    pub fn wait_for(&self, part_id: &str) -> Option<oneshot::Receiver<Record>> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if waiting.contains_key(part_id) {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        waiting.insert(part_id.to_owned(), sender);
        Some(receiver)
    }

    pub fn forget(&self, part_id: &str) {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(part_id);
    }

    fn complete(&self, part_id: &str, record: Record) {
        let waiter = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(part_id);
        if let Some(waiter) = waiter {
            // The caller may have given up (timeout); the record is stored either way.
            let _ = waiter.send(record);
        }
    }
}
