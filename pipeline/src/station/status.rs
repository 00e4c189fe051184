//! Live counters and source state, shared by the station's threads and read by whoever
//! reports on the station (logs now; the API and metrics read the same numbers).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use inspecta_vision::inspection::Verdict;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SourceState {
    Connecting,
    Online,
    Reconnecting {
        attempt: u32,
        error: String,
    },
    /// A finite source (file, folder) played to its end.
    Ended,
}

#[derive(Debug)]
pub struct StationStatus {
    frames_in: AtomicU64,
    frames_dropped: AtomicU64,
    unreadable: AtomicU64,
    triggers: AtomicU64,
    triggers_missed: AtomicU64,
    verdicts: Mutex<BTreeMap<String, u64>>,
    uncertain: Mutex<BTreeMap<&'static str, u64>>,
    /// Why the frames since the last good inspection failed, and how many there were.
    model_failing: Mutex<Option<(u64, String)>>,
    source: Mutex<SourceState>,
}

/// A consistent copy of the counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusSnapshot {
    pub frames_in: u64,
    pub frames_dropped: u64,
    pub unreadable: u64,
    /// Triggers accepted (triggered mode).
    pub triggers: u64,
    /// Triggers for which no frame came in time.
    pub triggers_missed: u64,
    pub verdicts: BTreeMap<String, u64>,
    /// Uncertain parts by why the model did not decide: `low_confidence`, `no_part`,
    /// `too_small`, `out_of_distribution`.
    pub uncertain: BTreeMap<&'static str, u64>,
    /// Frames in a row the model could not inspect, and the latest error; None while it
    /// inspects.
    pub model_failing: Option<(u64, String)>,
    pub source: SourceState,
}

impl StatusSnapshot {
    pub fn inspected(&self) -> u64 {
        self.verdicts.values().sum()
    }
}

impl Default for StationStatus {
    fn default() -> Self {
        Self {
            frames_in: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            unreadable: AtomicU64::new(0),
            triggers: AtomicU64::new(0),
            triggers_missed: AtomicU64::new(0),
            verdicts: Mutex::new(BTreeMap::new()),
            uncertain: Mutex::new(BTreeMap::new()),
            model_failing: Mutex::new(None),
            source: Mutex::new(SourceState::Connecting),
        }
    }
}

impl StationStatus {
    pub fn frame_in(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    pub fn frame_dropped(&self) {
        self.frames_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unreadable(&self) {
        self.unreadable.fetch_add(1, Ordering::Relaxed);
    }

    /// A frame the model could not inspect: counted as unreadable, and remembered until
    /// the next frame it can.
    pub fn inspection_failed(&self, error: String) {
        self.unreadable();
        let mut failing = lock(&self.model_failing);
        let count = failing.as_ref().map_or(0, |(n, _)| *n) + 1;
        *failing = Some((count, error));
    }

    pub fn trigger(&self) {
        self.triggers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn trigger_missed(&self) {
        self.triggers_missed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn verdict(&self, verdict: &Verdict) {
        *lock(&self.model_failing) = None;
        *lock(&self.verdicts)
            .entry(verdict.name().to_owned())
            .or_default() += 1;
        if let Some(reason) = verdict.uncertain_reason() {
            *lock(&self.uncertain).entry(reason.name()).or_default() += 1;
        }
    }

    /// Records a state change; returns whether it was a change.
    pub fn set_source(&self, state: SourceState) -> bool {
        let mut current = lock(&self.source);
        let changed = *current != state;
        *current = state;
        changed
    }

    /// The source's state alone, for a watcher that polls it often (the panel).
    pub fn source(&self) -> SourceState {
        lock(&self.source).clone()
    }

    /// Why the model cannot judge the latest frames, while it cannot.
    pub fn model_failing(&self) -> Option<String> {
        lock(&self.model_failing)
            .as_ref()
            .map(|(_, why)| why.clone())
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        StatusSnapshot {
            frames_in: self.frames_in.load(Ordering::Relaxed),
            frames_dropped: self.frames_dropped.load(Ordering::Relaxed),
            unreadable: self.unreadable.load(Ordering::Relaxed),
            triggers: self.triggers.load(Ordering::Relaxed),
            triggers_missed: self.triggers_missed.load(Ordering::Relaxed),
            verdicts: lock(&self.verdicts).clone(),
            uncertain: lock(&self.uncertain).clone(),
            model_failing: lock(&self.model_failing).clone(),
            source: lock(&self.source).clone(),
        }
    }
}

/// Counters stay good to read after a panic elsewhere: they are only ever incremented.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A plant link's own counters (the MQTT link's today), read by metrics and the status
/// endpoint.
#[derive(Debug, Default)]
pub struct LinkStatus {
    pub(crate) connected: AtomicBool,
    pub(crate) published: AtomicU64,
    pub(crate) connection_errors: AtomicU64,
}

impl LinkStatus {
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
    /// Messages the broker acknowledged.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
    pub fn connection_errors(&self) -> u64 {
        self.connection_errors.load(Ordering::Relaxed)
    }
}
