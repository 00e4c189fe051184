//! The sinks a headless station has: the JSON-lines file, the shadow model, callers waiting
//! for a triggered part, and the OPC UA server. (The panel adds its own.)

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use inspecta_pipeline::station::shadow::ShadowSlot;
use inspecta_pipeline::store::Record;
use inspecta_vision::inspection::Inspection;
use serde::Serialize;
use tokio::sync::oneshot;

use super::metrics::Metrics;
use super::recorder::{Delivery, Sink};

/// Every verdict as one JSON line, appended to a file: the line's, and those `POST /predict`
/// gives, so the file misses no part the store has. A line is written whole or not at all: a
/// write that fails half-way (disk full) is cut off again, and a line torn by a crash is cut
/// off when the file is opened, so a reader never meets broken JSON. A file that cannot be
/// written never stops the line: the store has every record; the gap is counted and logged.
#[derive(Debug)]
pub struct JsonLines {
    path: PathBuf,
    file: File,
    /// Bytes of whole lines in the file: where a failed write is cut back to.
    len: u64,
    failures: u64,
    metrics: Arc<Metrics>,
}

/// The JSON-lines file, shared by the line's recorder and the API's uploads.
pub type SharedJsonLines = Arc<Mutex<JsonLines>>;

/// One verdict as a JSON line.
#[derive(Serialize)]
pub struct Line<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    station: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    part_id: Option<&'a str>,
    /// The frame's number from the source; uploads have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
    model: &'a str,
    model_version: &'a str,
    captured_unix_ms: i64,
    /// The frame's file for folder sources, `api` for uploads.
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<Cow<'a, str>>,
    /// From capture to verdict, for live frames.
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
    #[serde(flatten)]
    inspection: &'a Inspection,
}

impl<'a> Line<'a> {
    fn live(station: &'a str, delivery: Delivery<'a>) -> Self {
        let v = delivery.verdict;
        let manifest = v.model.manifest();
        Self {
            id: delivery.record.map(|r| r.id),
            station,
            part_id: v.part_id.as_deref(),
            sequence: v.sequence,
            model: &manifest.name,
            model_version: &manifest.version,
            captured_unix_ms: unix_ms(v.captured_at),
            origin: v.origin.as_deref().map(Path::to_string_lossy),
            latency_ms: Some(v.latency.as_secs_f64() * 1e3),
            inspection: &v.inspection,
        }
    }

    /// A stored record that came without a frame from the line (`POST /predict`).
    pub fn stored(record: &'a Record, inspection: &'a Inspection) -> Self {
        Self {
            id: Some(record.id),
            station: &record.station,
            part_id: record.part_id.as_deref(),
            sequence: record.sequence,
            model: &record.model.name,
            model_version: &record.model.version,
            captured_unix_ms: record.captured_at.as_millisecond(),
            origin: record.origin.as_deref().map(Cow::Borrowed),
            latency_ms: record.timings.latency_ms,
            inspection,
        }
    }
}

fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl JsonLines {
    pub fn open(path: &Path, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut file = File::options()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let len = whole_lines(&mut file)
            .with_context(|| format!("cannot read the end of {}", path.display()))?;
        let found = file.metadata().map_or(len, |m| m.len());
        if found != len {
            tracing::warn!(path = %path.display(), bytes = found - len, "cutting off a JSON line torn by an earlier stop");
            file.set_len(len)
                .with_context(|| format!("cannot repair {}", path.display()))?;
        }
        Ok(Self {
            path: path.to_owned(),
            file,
            len,
            failures: 0,
            metrics,
        })
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self.file.write_all(line) {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Whatever part of the line reached the disk goes again.
                if let Err(cut) = self.file.set_len(self.len) {
                    tracing::error!(path = %self.path.display(), "cannot cut off a half-written JSON line: {cut}");
                }
                Err(e)
            }
        }
    }

    /// Appends one verdict. A failed write is counted and logged, never returned: the store
    /// has the record.
    pub fn append(&mut self, line: &Line<'_>) {
        let mut bytes = match serde_json::to_vec(line) {
            Ok(bytes) => bytes,
            Err(e) => return tracing::error!("a verdict cannot be written as JSON: {e}"),
        };
        bytes.push(b'\n');
        if let Err(e) = self.write_line(&bytes) {
            self.metrics.jsonl_failed();
            self.failures += 1;
            // Once per doubling: a full disk fails every part, the log need not.
            if self.failures.is_power_of_two() {
                tracing::error!(path = %self.path.display(), failures = self.failures, "verdict left out of the JSON-lines file (it is in the store): {e}");
            }
        }
    }
}

/// The line's verdicts into the shared JSON-lines file.
#[derive(Debug)]
pub struct JsonLinesSink {
    pub station: String,
    pub file: SharedJsonLines,
}

impl Sink for JsonLinesSink {
    fn deliver(&mut self, delivery: Delivery<'_>) -> anyhow::Result<()> {
        let line = Line::live(&self.station, delivery);
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(&line);
        Ok(())
    }
}

/// The length of `file` up to and including its last newline: what a reader can trust.
/// Reads backwards a chunk at a time, so a long file costs one chunk.
fn whole_lines(file: &mut File) -> std::io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = file.metadata()?.len();
    let mut chunk = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        file.seek(SeekFrom::Start(start))?;
        chunk.clear();
        std::io::Read::by_ref(file)
            .take(end - start)
            .read_to_end(&mut chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The candidate model judges the part too, on its own thread, when it is free.
#[derive(Debug)]
pub struct ShadowSink(pub ShadowSlot);

impl Sink for ShadowSink {
    fn deliver(&mut self, delivery: Delivery<'_>) -> anyhow::Result<()> {
        if let Some(shadow) = self.0.current() {
            shadow.offer(delivery.verdict);
        }
        Ok(())
    }
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

    fn complete(&self, part_id: &str, record: &Record) {
        let waiter = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(part_id);
        if let Some(waiter) = waiter {
            // The caller may have given up (timeout); the record is stored either way.
            let _ = waiter.send(record.clone());
        }
    }
}

/// Hands each stored triggered part to whoever waits for it.
#[derive(Debug)]
pub struct WaitersSink(pub Arc<PartWaiters>);

impl Sink for WaitersSink {
    fn deliver(&mut self, delivery: Delivery<'_>) -> anyhow::Result<()> {
        if let (Some(part_id), Some(record)) = (&delivery.verdict.part_id, delivery.record) {
            self.0.complete(part_id, record);
        }
        Ok(())
    }
}

/// The OPC UA server's last-verdict variables and the PLC handshake.
#[cfg(feature = "opcua")]
#[derive(Debug)]
pub struct OpcUaSink(pub inspecta_pipeline::publish::opcua::OpcUaServer);

#[cfg(feature = "opcua")]
impl Sink for OpcUaSink {
    fn deliver(&mut self, delivery: Delivery<'_>) -> anyhow::Result<()> {
        if let Some(record) = delivery.record {
            self.0.verdict(record);
        }
        Ok(())
    }

    fn close(self: Box<Self>) {
        self.0.stop();
    }
}
