//! The one path every live verdict takes: the record store first (it is the station's
//! memory), then the metrics and the log, then each sink in the order it was added (the
//! JSON-lines file, the shadow model, waiting HTTP triggers, the OPC UA server, the panel). A sink sees
//! the record as the store keeps it, so every door shows the same thing. The MQTT link is no sink: it reads the store itself, after its own cursor, so
//! nothing is lost while the broker is away.

use std::sync::Arc;
use std::time::Instant;

use inspecta_pipeline::station::LiveVerdict;
use inspecta_pipeline::store::{NewRecord, Record, RecordStore};

use super::metrics::Metrics;

/// One verdict on its way to the sinks.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub verdict: &'a LiveVerdict,
    /// The record as stored; None without a store, or when the store failed it.
    pub record: Option<&'a Record>,
}

/// Where a verdict goes once the store has it. Sinks run on the station's thread, one after
/// another: each hands the verdict on or drops it, and never waits for a person or a
/// network.
pub trait Sink: Send + std::fmt::Debug {
    /// An error stops the station (a JSON-lines file that cannot be written, say); a sink
    /// that can do without a verdict logs and returns `Ok`.
    fn deliver(&mut self, delivery: Delivery<'_>) -> anyhow::Result<()>;

    /// Called when no verdict came for a while: passes on what the sink held back.
    fn flush(&mut self) {}

    /// The station has stopped and every verdict was delivered.
    fn close(self: Box<Self>) {}
}

#[derive(Debug)]
pub struct Recorder {
    station: String,
    store: Option<Arc<RecordStore>>,
    metrics: Arc<Metrics>,
    sinks: Vec<Box<dyn Sink>>,
}

impl Recorder {
    pub fn new(station: String, store: Option<Arc<RecordStore>>, metrics: Arc<Metrics>) -> Self {
        Self {
            station,
            store,
            metrics,
            sinks: Vec::new(),
        }
    }

    /// Adds a sink after those already there.
    pub fn add(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }

    /// Keeps one verdict. A store failure (disk full, say) is logged and counted but does
    /// not stop the line; the verdict still reaches the sinks.
    pub fn record(&mut self, v: &LiveVerdict) -> anyhow::Result<()> {
        self.metrics.observe(v);
        let record = self.store(v);
        let id = record.as_ref().map(|r| r.id);
        let name = v.inspection.verdict.name();
        let latency_ms = v.latency.as_secs_f64() * 1e3;
        tracing::debug!(id, part_id = v.part_id, sequence = v.sequence, verdict = name, score = v.inspection.scores.defect_score, latency_ms, origin = ?v.origin, "verdict");
        let delivery = Delivery {
            verdict: v,
            record: record.as_ref(),
        };
        for sink in &mut self.sinks {
            sink.deliver(delivery)?;
        }
        Ok(())
    }

    pub fn flush(&mut self) {
        for sink in &mut self.sinks {
            sink.flush();
        }
    }

    /// Closes the sinks in the order they were added.
    pub fn close(self) {
        for sink in self.sinks {
            sink.close();
        }
    }

    fn store(&self, v: &LiveVerdict) -> Option<Record> {
        let store = self.store.as_ref()?;
        let origin = v.origin.as_deref().map(|p| p.display().to_string());
        let record = NewRecord {
            station: &self.station,
            part_id: v.part_id.as_deref(),
            sequence: v.sequence,
            origin: origin.as_deref(),
            captured_at: v.captured_at,
            model: v.model.manifest(),
            inspection: &v.inspection,
            latency: Some(v.latency),
            frame: v.frame.as_ref(),
        };
        let started = Instant::now();
        match store.insert_returning(&record) {
            Ok(record) => {
                self.metrics.stored(started.elapsed());
                Some(record)
            }
            Err(e) => {
                self.metrics.store_failed();
                tracing::error!(sequence = v.sequence, "verdict not stored: {e}");
                None
            }
        }
    }
}
