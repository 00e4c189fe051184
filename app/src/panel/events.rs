//! What the workers tell the panel, and the bounded queue they tell it through. Each part
//! carries a 720 px picture (about 1.5 MB), so the queue is short; the station never waits
//! for it: when the screen falls behind, held-back parts lose their pictures but keep their
//! place, so every stored part still reaches the history and the review queue.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};

use inspecta_pipeline::station::status::SourceState;
use inspecta_pipeline::store::{Alarm, Kpis, Record, Review};
use inspecta_vision::frame::Frame;
use inspecta_vision::inspection::HeatMap;

use super::pictures::{display_image, thumbnail};
use crate::service::recorder::{Delivery, Sink};
use crate::users::Role;

/// Events waiting for the UI: at most this many pictures are in flight (about 24 MB).
const EVENT_QUEUE: usize = 16;
/// Parts the station holds back (without pictures) while the queue is full; beyond this the
/// oldest are dropped from the panel (they stay in the store).
const HELD_PARTS: usize = 10_000;

/// Something for the panel to show.
#[derive(Debug)]
pub enum Event {
    /// A new part, live or from the review queue.
    Part(Box<Part>),
    Kpis(Kpis),
    Reviewed {
        id: i64,
        result: Result<Review, String>,
    },
    /// The line's state changed.
    Line(LineState),
    Failed(String),
    /// The shift's latest process alarm (control charts, `[spc]`).
    Alarm(Alarm),
    /// A name and PIN matched a person of the users file (their name and role), or not.
    SignedIn(Result<(String, Role), String>),
    /// A threshold change or model switch took effect (what changed), or why not.
    SettingsChanged(Result<String, String>),
    /// The candidate models of the learning loop, or why they cannot be listed.
    Candidates(Result<Vec<crate::service::candidates::Candidate>, String>),
}

/// What the line is doing, as the panel shows it: sent when it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineState {
    pub source: SourceState,
    /// Why the model cannot judge the latest frames, while it cannot.
    pub model_failing: Option<String>,
}

impl Default for LineState {
    fn default() -> Self {
        Self {
            source: SourceState::Connecting,
            model_failing: None,
        }
    }
}

/// A stored part with its picture.
#[derive(Debug)]
pub struct Part {
    pub record: Record,
    /// None when it was dropped on the way because the panel was behind.
    pub image: Option<egui::ColorImage>,
    /// For the history strip; kept when the picture is dropped (a few KB).
    pub thumbnail: Option<egui::ColorImage>,
    /// The model's heat map, when it gave one; coloured when shown, against the rule then.
    pub heat_map: Option<HeatMap>,
}

impl Part {
    /// A stored part with the pictures made from its frame and heat map.
    pub fn new(record: Record, frame: Option<&Frame>, heat_map: Option<&HeatMap>) -> Self {
        Self {
            record,
            image: frame.map(display_image),
            thumbnail: frame.map(thumbnail),
            heat_map: heat_map.cloned(),
        }
    }

    /// Keeps the record, lets go of the pictures.
    fn without_pictures(mut self) -> Self {
        self.image = None;
        self.heat_map = None;
        self
    }
}

/// The longest a new event waits to be drawn.
const REDRAW_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Wakes the UI after an event was sent, once there is a UI: the station starts before the
/// window opens.
#[derive(Debug, Clone, Default)]
pub struct Waker(Arc<OnceLock<egui::Context>>);

impl Waker {
    pub fn set(&self, ctx: egui::Context) {
        let _ = self.0.set(ctx);
    }

    /// Asks for a redraw within [`REDRAW_EVERY`]: parts that come faster are drawn together,
    /// so 30 parts/s cost 10 frames, not 30 (keys still redraw at once).
    pub fn wake(&self) {
        if let Some(ctx) = self.0.get() {
            ctx.request_repaint_after(REDRAW_EVERY);
        }
    }
}

/// The workers' end of the event queue.
#[derive(Debug, Clone)]
pub struct Events {
    sender: SyncSender<Event>,
    waker: Waker,
}

/// A new event queue; the receiver is the panel's.
pub fn channel(waker: Waker) -> (Events, Receiver<Event>) {
    let (sender, receiver) = sync_channel(EVENT_QUEUE);
    (Events { sender, waker }, receiver)
}

impl Events {
    /// Waits while the queue is full; for workers that may wait (the review desk). False
    /// once the panel is gone.
    pub fn send(&self, event: Event) -> bool {
        let sent = self.sender.send(event).is_ok();
        self.waker.wake();
        sent
    }

    /// Never waits; false when the queue is full or the panel gone. For the station's own
    /// thread, which must not stall on a panel that is not drawing (a minimised window).
    pub fn offer(&self, event: Event) -> bool {
        let sent = self.sender.try_send(event).is_ok();
        self.waker.wake();
        sent
    }

    /// Never waits: the part comes back when the queue is full.
    fn try_send(&self, part: Box<Part>) -> Result<(), Refused> {
        let sent = match self.sender.try_send(Event::Part(part)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Event::Part(part))) => Err(Refused::Full(part)),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Refused::Gone),
        };
        self.waker.wake();
        sent
    }
}

/// Why a part did not go.
enum Refused {
    Full(Box<Part>),
    /// The panel has closed.
    Gone,
}

/// The station's sink for the panel: every stored part, with its picture while the panel
/// keeps up.
#[derive(Debug)]
pub struct PanelSink {
    events: Events,
    held: Held,
}

impl PanelSink {
    pub fn new(events: Events) -> Self {
        Self {
            events,
            held: Held::default(),
        }
    }
}

impl Sink for PanelSink {
    fn deliver(&mut self, delivery: Delivery<'_>) -> anyhow::Result<()> {
        // A verdict the store could not keep has no record to review.
        let Some(record) = delivery.record else {
            return Ok(());
        };
        let verdict = delivery.verdict;
        self.held.push(Part::new(
            record.clone(),
            verdict.frame.as_ref(),
            verdict.inspection.heat_map.as_ref(),
        ));
        self.held.flush(&self.events);
        Ok(())
    }

    fn flush(&mut self) {
        self.held.flush(&self.events);
    }
}

/// Parts waiting for room in the queue, oldest first; only the newest keeps its pictures.
#[derive(Debug, Default)]
struct Held {
    parts: VecDeque<Part>,
    dropped: u64,
}

impl Held {
    fn push(&mut self, part: Part) {
        if let Some(newest) = self.parts.pop_back() {
            self.parts.push_back(newest.without_pictures());
        }
        if self.parts.len() == HELD_PARTS {
            self.parts.pop_front();
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    "the panel is not taking parts; the oldest are left out (they are stored)"
                );
            }
        }
        self.parts.push_back(part);
    }

    /// Sends what fits; a part that does not fit waits at the front, without its pictures
    /// unless it is the newest.
    fn flush(&mut self, events: &Events) {
        while let Some(part) = self.parts.pop_front() {
            match events.try_send(Box::new(part)) {
                Ok(()) => {}
                Err(Refused::Full(part)) => {
                    let part = if self.parts.is_empty() {
                        *part
                    } else {
                        part.without_pictures()
                    };
                    self.parts.push_front(part);
                    return;
                }
                Err(Refused::Gone) => {
                    self.parts.clear();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn part(id: i64, template: &Part) -> Part {
        let mut record = template.record.clone();
        record.id = id;
        Part {
            record,
            image: template.image.clone(),
            thumbnail: template.thumbnail.clone(),
            heat_map: None,
        }
    }

    /// The panel stalls while 20 parts arrive: the first 16 fill the queue with their
    /// pictures, the rest wait without them (the newest keeps its own), and once the panel
    /// drains, all 20 arrive in order.
    #[test]
    fn a_stalled_panel_gets_every_record_id_but_not_every_picture() {
        let (_dir, template) = super::super::ui_tests::stored_part();
        let (events, inbox) = channel(Waker::default());
        let mut held = Held::default();
        for id in 1..=20 {
            held.push(part(id, &template));
            held.flush(&events);
        }
        let mut got = Vec::new();
        while let Ok(Event::Part(part)) = inbox.try_recv() {
            got.push((part.record.id, part.image.is_some()));
        }
        held.flush(&events);
        while let Ok(Event::Part(part)) = inbox.try_recv() {
            got.push((part.record.id, part.image.is_some()));
        }
        let ids: Vec<i64> = got.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, (1..=20).collect::<Vec<_>>());
        let with_pictures: Vec<i64> = got.iter().filter(|g| g.1).map(|g| g.0).collect();
        assert_eq!(with_pictures, (1..=16).chain([20]).collect::<Vec<_>>());
    }
}
