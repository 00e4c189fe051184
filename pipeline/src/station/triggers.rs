//! Triggered mode: one part judged per trigger (HTTP, stdin, MQTT, OPC UA), and the one
//! place where part ids are made for triggers that come without one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::status::StationStatus;

/// Triggers waiting for a frame; a PLC firing faster than the station can judge is told so.
const TRIGGER_QUEUE: usize = 16;

pub(super) struct Trigger {
    pub(super) part_id: String,
    pub(super) fired: Instant,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TriggerError {
    #[error("{TRIGGER_QUEUE} triggers are already waiting for a frame")]
    Busy,
    #[error("the station has stopped")]
    Stopped,
}

/// Fires triggers at a triggered station; cheap to clone for every trigger input (HTTP,
/// stdin, plant links).
#[derive(Debug, Clone)]
pub struct Triggers {
    sender: SyncSender<Trigger>,
    status: Arc<StationStatus>,
}

impl Triggers {
    /// Asks for the part `part_id` to be inspected. Returns at once; the verdict arrives
    /// with the station's results, carrying `part_id`.
    pub fn fire(&self, part_id: impl Into<String>) -> Result<(), TriggerError> {
        let trigger = Trigger {
            part_id: part_id.into(),
            fired: Instant::now(),
        };
        match self.sender.try_send(trigger) {
            Ok(()) => {
                self.status.trigger();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(TriggerError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(TriggerError::Stopped),
        }
    }
}

pub(super) struct TriggerInbox {
    pub(super) receiver: Receiver<Trigger>,
    pub(super) frame_timeout: Duration,
}

/// The station's end of a new trigger channel, and a maker for the inputs' end once the
/// station's counters exist.
pub(super) fn channel(
    frame_timeout: Duration,
) -> (TriggerInbox, impl FnOnce(Arc<StationStatus>) -> Triggers) {
    let (sender, receiver) = sync_channel(TRIGGER_QUEUE);
    let inbox = TriggerInbox {
        receiver,
        frame_timeout,
    };
    (inbox, move |status| Triggers { sender, status })
}

/// A part id for a trigger that came without one: station name, trigger time, and a
/// process-wide counter, so two triggers in the same millisecond never share an id.
pub fn generated_part_id(station: &str) -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    format!("{station}-{ms}-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_ids_made_in_the_same_millisecond_differ() {
        let ids: std::collections::BTreeSet<String> =
            (0..1000).map(|_| generated_part_id("cam")).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.starts_with("cam-")));
    }
}
