//! Live counters and source state, shared by the station's threads and read by whoever
//! reports on the station (logs now; the API and metrics read the same numbers).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

    pub fn trigger(&self) {
        self.triggers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn trigger_missed(&self) {
        self.triggers_missed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn verdict(&self, name: &str) {
        let mut verdicts = self
            .verdicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *verdicts.entry(name.to_owned()).or_default() += 1;
    }

    /// Records a state change; returns whether it was a change.
    pub fn set_source(&self, state: SourceState) -> bool {
        let mut current = self
            .source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = *current != state;
        *current = state;
        changed
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        StatusSnapshot {
            frames_in: self.frames_in.load(Ordering::Relaxed),
            frames_dropped: self.frames_dropped.load(Ordering::Relaxed),
            unreadable: self.unreadable.load(Ordering::Relaxed),
            triggers: self.triggers.load(Ordering::Relaxed),
            triggers_missed: self.triggers_missed.load(Ordering::Relaxed),
            verdicts: self
                .verdicts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            source: self
                .source
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
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
