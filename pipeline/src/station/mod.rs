//! The live station: a capture thread feeds the newest frame to an inspection thread, which
//! sends verdicts on. Cameras that drop out are reopened with backoff; a slow model makes
//! the station skip frames (counted), never fall behind. In triggered mode the inspection
//! thread judges one frame per trigger (a part arriving), taken after the trigger fired.

pub mod handles;
pub mod model_switch;
pub mod shadow;
pub mod status;
pub mod triggers;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use inspecta_vision::frame::Frame;
use inspecta_vision::inspection::Inspection;
use inspecta_vision::model::{Model, ModelError, Session};
use serde::{Deserialize, Serialize};

use crate::mailbox::{Mailbox, Take};
use crate::source::{CapturedFrame, FrameSource, SourceError, SourceSpec};
pub use handles::StationHandles;
pub use model_switch::ModelSwitch;
use status::{SourceState, StationStatus, StatusSnapshot};
use triggers::{Trigger, TriggerInbox};
pub use triggers::{TriggerError, Triggers, generated_part_id};

/// How often blocked threads look up to see whether the station is stopping.
const POLL: Duration = Duration::from_millis(100);
/// Verdicts waiting for the sinks; beyond this the inspection thread waits (and the
/// mailbox drops frames) rather than memory growing.
const RESULT_QUEUE: usize = 256;

/// When and how often a lost source is reopened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconnect {
    /// First wait after a failure; doubles with each failed attempt.
    #[serde(default = "default_initial_ms")]
    pub initial_ms: u64,
    #[serde(default = "default_max_ms")]
    pub max_ms: u64,
    /// A source that delivers nothing for this long is treated as lost.
    #[serde(default = "default_stall_ms")]
    pub stall_timeout_ms: u64,
}

fn default_initial_ms() -> u64 {
    500
}
fn default_max_ms() -> u64 {
    10_000
}
fn default_stall_ms() -> u64 {
    5_000
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            initial_ms: default_initial_ms(),
            max_ms: default_max_ms(),
            stall_timeout_ms: default_stall_ms(),
        }
    }
}

impl Reconnect {
    fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(20);
        Duration::from_millis(self.initial_ms.saturating_mul(factor).min(self.max_ms))
    }
}

/// A verdict on one live frame, with the frame for sinks that keep images.
#[derive(Debug, Clone)]
pub struct LiveVerdict {
    /// The part id given with the trigger, in triggered mode.
    pub part_id: Option<String>,
    /// The frame's number from the source; None for a trigger that got no frame.
    pub sequence: Option<u64>,
    /// When the frame was captured, or the trigger fired for a part without one.
    pub captured_at: SystemTime,
    pub origin: Option<PathBuf>,
    pub inspection: Inspection,
    /// The model that judged this frame: the station's model can change between frames.
    pub model: Arc<Model>,
    /// From capture to verdict, waiting in the mailbox included.
    pub latency: Duration,
    /// None for a trigger that got no frame (`uncertain`, reason `no_frame`).
    pub frame: Option<Frame>,
}

#[derive(Debug)]
pub struct Station {
    status: Arc<StationStatus>,
    stop: Arc<AtomicBool>,
    results: Receiver<LiveVerdict>,
    threads: Vec<JoinHandle<()>>,
    models: ModelSwitch,
}

impl Station {
    /// Starts capturing from `source` and inspecting every frame (live sources: the newest
    /// frame whenever the model is free) with `model`.
    pub fn start(
        model: &Arc<Model>,
        source: SourceSpec,
        reconnect: Reconnect,
    ) -> Result<Self, ModelError> {
        Self::launch(model, source, reconnect, None)
    }

    /// Starts a station that inspects one frame per trigger: the first frame captured after
    /// the trigger (from a live source), or the next part (from a folder). A trigger that
    /// gets no frame within `frame_timeout` is counted as missed.
    pub fn start_triggered(
        model: &Arc<Model>,
        source: SourceSpec,
        reconnect: Reconnect,
        frame_timeout: Duration,
    ) -> Result<(Self, Triggers), ModelError> {
        let (inbox, make_triggers) = triggers::channel(frame_timeout);
        let station = Self::launch(model, source, reconnect, Some(inbox))?;
        let triggers = make_triggers(Arc::clone(&station.status));
        Ok((station, triggers))
    }

    fn launch(
        model: &Arc<Model>,
        source: SourceSpec,
        reconnect: Reconnect,
        triggers: Option<TriggerInbox>,
    ) -> Result<Self, ModelError> {
        let status = Arc::new(StationStatus::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mailbox = Arc::new(Mailbox::default());
        let (sender, results) = sync_channel(RESULT_QUEUE);
        let session = model.session()?;
        let models = ModelSwitch::new(model);
        let capture = Capture {
            spec: source,
            reconnect,
            triggered: triggers.is_some(),
            mailbox: Arc::clone(&mailbox),
            status: Arc::clone(&status),
            stop: Arc::clone(&stop),
        };
        let inspect = Inspect {
            session,
            models: models.clone(),
            mailbox,
            status: Arc::clone(&status),
            stop: Arc::clone(&stop),
            results: sender,
            triggers,
        };
        let threads = vec![
            spawn("capture", move || capture.run()),
            spawn("inspect", move || inspect.run()),
        ];
        Ok(Self {
            status,
            stop,
            results,
            threads,
            models,
        })
    }

    pub fn status(&self) -> &Arc<StationStatus> {
        &self.status
    }

    pub fn models(&self) -> &ModelSwitch {
        &self.models
    }

    /// Verdicts in the order they were made. Disconnected once a finite source has ended
    /// and every frame taken from it has been inspected.
    pub fn results(&self) -> &Receiver<LiveVerdict> {
        &self.results
    }

    /// Stops capture and inspection and waits for both threads. Returns the verdicts made
    /// but not yet taken from [`Self::results`], so none is lost, and the final counts.
    pub fn stop(mut self) -> (Vec<LiveVerdict>, StatusSnapshot) {
        self.stop.store(true, Ordering::Relaxed);
        let mut pending = Vec::new();
        // Keep taking verdicts so the inspection thread never blocks on a full queue.
        while self.threads.iter().any(|t| !t.is_finished()) {
            if let Ok(verdict) = self.results.recv_timeout(POLL) {
                pending.push(verdict);
            }
        }
        pending.extend(self.results.try_iter());
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a station thread panicked");
            }
        }
        (pending, self.status.snapshot())
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    match std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
    {
        Ok(handle) => handle,
        // Only fails when the OS is out of threads; nothing sensible can run then.
        Err(e) => panic!("cannot start the {name} thread: {e}"),
    }
}

/// A part id and when its trigger fired.
#[derive(Debug, Clone)]
/// A frame in the mailbox, and whether it came from a live source.
struct Handed {
    captured: CapturedFrame,
    live: bool,
}

struct Capture {
    spec: SourceSpec,
    reconnect: Reconnect,
    /// Frames replaced while waiting for a trigger are not drops: nobody asked for them.
    triggered: bool,
    mailbox: Arc<Mailbox<Handed>>,
    status: Arc<StationStatus>,
    stop: Arc<AtomicBool>,
}

/// Why a source stopped delivering.
enum Lost {
    Ended,
    Stopping,
    Failed(SourceError),
}

impl Capture {
    fn run(self) {
        let mut attempt = 0u32;
        while !self.stopping() {
            let outcome = match self.spec.open() {
                Ok(mut source) => {
                    tracing::info!(source = %source.describe(), "source opened");
                    self.pump(source.as_mut(), &mut attempt)
                }
                Err(e) => Lost::Failed(e),
            };
            match outcome {
                Lost::Ended => {
                    self.status.set_source(SourceState::Ended);
                    tracing::info!("source ended");
                    break;
                }
                Lost::Stopping => break,
                Lost::Failed(error) => {
                    attempt += 1;
                    let delay = self.reconnect.delay(attempt);
                    tracing::warn!(attempt, retry_in = ?delay, "source lost: {error}");
                    self.status.set_source(SourceState::Reconnecting {
                        attempt,
                        error: error.to_string(),
                    });
                    self.sleep(delay);
                }
            }
        }
        self.mailbox.close();
    }

    /// Moves frames from `source` to the mailbox until it ends, fails or stalls.
    fn pump(&self, source: &mut dyn FrameSource, attempt: &mut u32) -> Lost {
        let stall = Duration::from_millis(self.reconnect.stall_timeout_ms);
        let mut last_frame = Instant::now();
        while !self.stopping() {
            match source.next_frame(POLL) {
                Ok(Some(frame)) => {
                    // Fault injection for the tests (`--features failpoints`): a panic here
                    // is a dead capture thread.
                    fail::fail_point!("capture-frame");
                    if self.status.set_source(SourceState::Online) {
                        tracing::info!("source online");
                    }
                    *attempt = 0;
                    last_frame = Instant::now();
                    self.status.frame_in();
                    let live = source.is_live();
                    let handed = Handed {
                        captured: frame,
                        live,
                    };
                    if live {
                        if self.mailbox.put(handed).is_some() && !self.triggered {
                            self.status.frame_dropped();
                        }
                    } else if !self.hand_over(handed) {
                        return Lost::Stopping;
                    }
                }
                Ok(None) => return Lost::Ended,
                Err(SourceError::Timeout(_)) if last_frame.elapsed() < stall => {}
                Err(SourceError::Timeout(_)) => {
                    return Lost::Failed(SourceError::Timeout(last_frame.elapsed()));
                }
                Err(e @ SourceError::Image { .. }) => {
                    self.status.unreadable();
                    tracing::warn!("skipped: {e}");
                }
                Err(e) => return Lost::Failed(e),
            }
        }
        Lost::Stopping
    }

    /// Waits until inspection takes `frame`; false if the station stops first.
    fn hand_over(&self, mut frame: Handed) -> bool {
        while !self.stopping() {
            match self.mailbox.put_when_empty(frame, POLL) {
                Ok(()) => return true,
                Err(back) => frame = back,
            }
        }
        false
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn sleep(&self, total: Duration) {
        let until = Instant::now() + total;
        while !self.stopping() && Instant::now() < until {
            std::thread::sleep(POLL.min(until - Instant::now()));
        }
    }
}

struct Inspect {
    session: Session,
    models: ModelSwitch,
    mailbox: Arc<Mailbox<Handed>>,
    status: Arc<StationStatus>,
    stop: Arc<AtomicBool>,
    results: SyncSender<LiveVerdict>,
    triggers: Option<TriggerInbox>,
}

impl Inspect {
    fn run(mut self) {
        match self.triggers.take() {
            Some(inbox) => self.run_triggered(&inbox),
            None => self.run_free(),
        }
    }

    fn run_free(&mut self) {
        loop {
            match self.mailbox.take(POLL) {
                Take::Item(handed) => {
                    if !self.inspect(handed.captured, None) {
                        return;
                    }
                }
                Take::Timeout if self.stopping() => return,
                Take::Timeout => {}
                Take::Closed => return,
            }
        }
    }

    fn run_triggered(&mut self, inbox: &TriggerInbox) {
        while !self.stopping() {
            let trigger = match inbox.receiver.recv_timeout(POLL) {
                Ok(trigger) => trigger,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            match self.frame_after(&trigger, inbox.frame_timeout) {
                Take::Item(captured) => {
                    if !self.inspect(captured, Some(trigger.part_id)) {
                        return;
                    }
                }
                Take::Timeout => {
                    self.status.trigger_missed();
                    tracing::warn!(part_id = %trigger.part_id, timeout = ?inbox.frame_timeout, "trigger missed: no frame");
                    if !self.missed(trigger) {
                        return;
                    }
                }
                Take::Closed => return,
            }
        }
    }

    /// The first frame that shows the triggered part: captured after the trigger fired
    /// (older live frames show the previous part), or the next part of a folder.
    fn frame_after(&self, trigger: &Trigger, timeout: Duration) -> Take<CapturedFrame> {
        let deadline = trigger.fired + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stopping() {
                return Take::Timeout;
            }
            match self.mailbox.take(left.min(POLL)) {
                Take::Item(h) if !h.live || h.captured.captured >= trigger.fired => {
                    return Take::Item(h.captured);
                }
                Take::Item(_) | Take::Timeout => {}
                Take::Closed => return Take::Closed,
            }
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn run_model(&mut self, frame: &Frame) -> Result<Inspection, ModelError> {
        // Fault injection for the tests (`--features failpoints`): a model that fails.
        fail::fail_point!("inspect-frame", |message| Err(ModelError::Inference(
            message.unwrap_or_default().into()
        )));
        self.session.inspect(frame)
    }

    /// A trigger without a frame is still a part that went by: it is handed on as
    /// `uncertain` (`no_frame`), so it is stored, counted and sent, never lost silently.
    fn missed(&self, trigger: Trigger) -> bool {
        let inspection = Inspection::no_frame();
        self.status.verdict(&inspection.verdict);
        let verdict = LiveVerdict {
            part_id: Some(trigger.part_id),
            sequence: None,
            captured_at: SystemTime::now()
                .checked_sub(trigger.fired.elapsed())
                .unwrap_or_else(SystemTime::now),
            origin: None,
            latency: trigger.fired.elapsed(),
            inspection,
            model: Arc::clone(self.session.model()),
            frame: None,
        };
        self.results.send(verdict).is_ok()
    }

    /// Inspects one frame and hands the verdict on; false once nobody listens.
    fn inspect(&mut self, captured: CapturedFrame, part_id: Option<String>) -> bool {
        if let Some(session) = self.models.take_pending() {
            let manifest = session.model().manifest();
            tracing::info!(model = %manifest.name, version = %manifest.version, sequence = captured.sequence, "model switched");
            self.session = session;
        }
        let inspection = match self.run_model(&captured.frame) {
            Ok(inspection) => inspection,
            Err(e) => {
                tracing::warn!(sequence = captured.sequence, "frame not inspected: {e}");
                self.status.inspection_failed(e.to_string());
                return true;
            }
        };
        self.status.verdict(&inspection.verdict);
        let verdict = LiveVerdict {
            part_id,
            sequence: Some(captured.sequence),
            captured_at: captured.captured_at,
            origin: captured.origin,
            latency: captured.captured.elapsed(),
            inspection,
            model: Arc::clone(self.session.model()),
            frame: Some(captured.frame),
        };
        self.results.send(verdict).is_ok()
    }
}
