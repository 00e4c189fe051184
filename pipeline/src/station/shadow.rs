//! A shadow model: a candidate judges the same parts as the live model on its own thread,
//! its verdicts are never acted on, and every disagreement is logged and counted. This is
//! how a plant tries a new model on the real line before switching to it. The shadow only
//! takes a frame when it is idle, so it can never slow the live line down; frames it had no
//! time for are counted as skipped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use serde::Serialize;

use super::LiveVerdict;
use inspecta_vision::frame::Frame;
use inspecta_vision::model::{Model, ModelError, Session};

/// What the shadow is asked to judge: the live verdict to compare against.
struct Job {
    sequence: u64,
    part_id: Option<String>,
    live: String,
    live_score: f32,
    frame: Frame,
}

#[derive(Debug, Default)]
struct Counts {
    judged: AtomicU64,
    disagreements: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    /// "live -> shadow" verdict names of the disagreements.
    pairs: Mutex<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShadowSnapshot {
    pub model: String,
    pub version: String,
    pub fingerprint: String,
    pub judged: u64,
    pub disagreements: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Disagreements by "live -> shadow" verdict.
    pub pairs: BTreeMap<String, u64>,
}

#[derive(Debug)]
pub struct Shadow {
    model: Arc<Model>,
    busy: Arc<AtomicBool>,
    counts: Arc<Counts>,
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Shadow {
    pub fn start(model: &Arc<Model>) -> Result<Self, ModelError> {
        let session = model.session()?;
        let (jobs, inbox) = sync_channel(1);
        let busy = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let worker = Worker {
            session,
            busy: Arc::clone(&busy),
            counts: Arc::clone(&counts),
        };
        let thread = std::thread::Builder::new()
            .name("shadow".into())
            .spawn(move || worker.run(&inbox))
            .map_err(|e| ModelError::Inference(e.into()))?;
        tracing::info!(model = %model.manifest().name, version = %model.manifest().version, "shadow model running");
        Ok(Self {
            model: Arc::clone(model),
            busy,
            counts,
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Hands the part of `live` to the shadow if it is idle; otherwise counts it skipped.
    /// Never blocks.
    pub fn offer(&self, live: &LiveVerdict) {
        let Some(jobs) = &self.jobs else { return };
        // A triggered part without a frame has nothing to judge.
        let (Some(frame), Some(sequence)) = (&live.frame, live.sequence) else {
            return;
        };
        if self.busy.swap(true, Ordering::AcqRel) {
            self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let job = Job {
            sequence,
            part_id: live.part_id.clone(),
            live: live.inspection.verdict.name().to_owned(),
            live_score: live.inspection.scores.defect_score,
            frame: frame.clone(),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = jobs.try_send(job) {
            self.busy.store(false, Ordering::Release);
            self.counts.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The candidate judging as the shadow.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    pub fn snapshot(&self) -> ShadowSnapshot {
        let c = &self.counts;
        let manifest = self.model.manifest();
        ShadowSnapshot {
            model: manifest.name.clone(),
            version: manifest.version.clone(),
            fingerprint: self.model.fingerprint().to_owned(),
            judged: c.judged.load(Ordering::Relaxed),
            disagreements: c.disagreements.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            pairs: c
                .pairs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// Where a running station's shadow is, if it has one: a rollout puts its model there for a
/// while, and every reader (the recorder's sink, the API, the metrics) sees the current one.
#[derive(Debug, Clone, Default)]
pub struct ShadowSlot(Arc<Mutex<Option<Arc<Shadow>>>>);

impl ShadowSlot {
    pub fn new(shadow: Option<Arc<Shadow>>) -> Self {
        Self(Arc::new(Mutex::new(shadow)))
    }

    pub fn current(&self) -> Option<Arc<Shadow>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `shadow` in the slot; the one it replaces stops once its last holder lets go.
    pub fn replace(&self, shadow: Option<Arc<Shadow>>) -> Option<Arc<Shadow>> {
        std::mem::replace(
            &mut *self.0.lock().unwrap_or_else(PoisonError::into_inner),
            shadow,
        )
    }
}

impl Drop for Shadow {
    /// Lets the shadow finish the part it is judging, then stops its thread.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Worker {
    session: Session,
    busy: Arc<AtomicBool>,
    counts: Arc<Counts>,
}

impl Worker {
    fn run(mut self, inbox: &Receiver<Job>) {
        while let Ok(job) = inbox.recv() {
            self.judge(&job);
            self.busy.store(false, Ordering::Release);
        }
    }

    fn judge(&mut self, job: &Job) {
        let inspection = match self.session.inspect(&job.frame) {
            Ok(inspection) => inspection,
            Err(error) => {
                self.counts.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(sequence = job.sequence, %error, "shadow model could not judge the part");
                return;
            }
        };
        self.counts.judged.fetch_add(1, Ordering::Relaxed);
        let shadow = inspection.verdict.name();
        if shadow == job.live {
            return;
        }
        self.counts.disagreements.fetch_add(1, Ordering::Relaxed);
        *self
            .counts
            .pairs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(format!("{} -> {shadow}", job.live))
            .or_default() += 1;
        tracing::info!(
            sequence = job.sequence,
            part_id = job.part_id.as_deref().unwrap_or(""),
            live = %job.live,
            live_score = job.live_score,
            shadow = %shadow,
            shadow_score = inspection.scores.defect_score,
            "shadow model disagrees"
        );
    }
}
