//! The review desk: a worker thread between the panel and the record store. Reviews are
//! written here, KPIs computed here, settings changed here, so the UI thread never touches
//! SQLite or waits for a model to load.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inspecta_pipeline::store::{NewReview, Query, RecordStore, Review};
use inspecta_vision::frame::Frame;

use super::events::{Event, Events, Part};
use super::prefs::{self, Remembered};
use crate::error_text::describe;
use crate::service::Settings;
use crate::service::candidates::{Candidate, Candidates, PromoteError};
use crate::users::Users;

const NO_CANDIDATES: &str = "this station has no candidates folder ([learning] candidates)";

/// Requests waiting for the desk. The UI never waits for room: a full queue means the desk
/// is stuck, and the operator is told.
const REQUEST_QUEUE: usize = 64;

/// What the panel asks of the desk.
#[derive(Debug)]
pub enum Request {
    Review {
        id: i64,
        review: NewReview,
    },
    SetThresholds {
        who: String,
        threshold: f32,
        band: [f32; 2],
    },
    /// Loads the model (a second or two) here, not on the UI thread.
    SwitchModel {
        who: String,
        path: PathBuf,
    },
    /// Puts recipe `recipe` (its index) in charge; `confirmed` when it is for another product.
    SwitchRecipe {
        who: String,
        recipe: usize,
        confirmed: bool,
    },
    /// Checks a name and PIN against the users file (a deliberately slow hash).
    SignIn {
        name: String,
        pin: String,
    },
    /// Writes what the panel remembers for the next run (a file, so not on the UI thread).
    Remember(Remembered),
    /// Lists the candidate models (reads their folders).
    ListCandidates,
    /// Puts candidate `id` in charge (loads it), with its comparison's consent.
    Promote {
        who: String,
        id: String,
    },
    Stop,
}

/// Uncertain parts from earlier in the shift loaded into the queue at start.
const QUEUE_BACKLOG: u32 = 200;
const KPI_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Desk {
    thread: Option<JoinHandle<()>>,
    requests: Option<Requests>,
}

/// The panel's end of the desk's request queue.
#[derive(Debug, Clone)]
pub struct Requests(SyncSender<Request>);

impl Requests {
    /// Hands `request` to the desk without waiting; says why not when it cannot.
    pub fn send(&self, request: Request) -> Result<(), &'static str> {
        self.0.try_send(request).map_err(|e| match e {
            TrySendError::Full(_) => "the review desk is busy; try again",
            TrySendError::Disconnected(_) => "the review desk has stopped",
        })
    }
}

impl Desk {
    /// Starts the desk: it first sends the shift's KPIs and the parts still waiting for
    /// review, then serves review requests.
    pub fn start(
        store: Arc<RecordStore>,
        settings: Settings,
        shift_start: jiff::Timestamp,
        users: Option<Arc<Users>>,
        candidates: Option<Candidates>,
        events: Events,
    ) -> std::io::Result<(Self, Requests)> {
        let (requests, inbox) = sync_channel(REQUEST_QUEUE);
        let requests = Requests(requests);
        let worker = Worker {
            store,
            settings,
            shift_start,
            users,
            candidates,
            events,
        };
        let thread = std::thread::Builder::new()
            .name("review-desk".into())
            .spawn(move || worker.run(&inbox))?;
        Ok((
            Self {
                thread: Some(thread),
                requests: Some(requests.clone()),
            },
            requests,
        ))
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        // Stop, or (queue full) the end of the queue once the panel's end is gone too.
        if let Some(requests) = self.requests.take() {
            let _ = requests.send(Request::Stop);
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the review desk panicked");
        }
    }
}

fn log_review(id: i64, result: &Result<Review, String>) {
    if let Ok(r) = result {
        tracing::info!(id, reviewer = %r.reviewer, before = %r.before, after = %r.after, "review (panel)");
    } else if let Err(e) = result {
        tracing::warn!(id, "review refused: {e}");
    }
}

struct Worker {
    store: Arc<RecordStore>,
    settings: Settings,
    shift_start: jiff::Timestamp,
    users: Option<Arc<Users>>,
    candidates: Option<Candidates>,
    events: Events,
}

impl Worker {
    fn run(&self, inbox: &Receiver<Request>) {
        self.send_backlog();
        self.send_kpis();
        let mut last_kpis = Instant::now();
        loop {
            match inbox.recv_timeout(KPI_EVERY) {
                Ok(Request::Review { id, review }) => {
                    let result = self.store.review(id, &review).map_err(|e| e.to_string());
                    log_review(id, &result);
                    if !self.send(Event::Reviewed { id, result }) {
                        return;
                    }
                    self.send_kpis();
                    last_kpis = Instant::now();
                }
                Ok(Request::SetThresholds {
                    who,
                    threshold,
                    band,
                }) => {
                    let result = self.settings.set_thresholds(&who, threshold, band);
                    if !self.send(Event::SettingsChanged(result.map_err(|e| describe(&e)))) {
                        return;
                    }
                }
                Ok(Request::SwitchModel { who, path }) => {
                    let result = self.settings.switch_model(&path, &who);
                    if !self.send(Event::SettingsChanged(result.map_err(|e| describe(&e)))) {
                        return;
                    }
                }
                Ok(Request::SwitchRecipe {
                    who,
                    recipe,
                    confirmed,
                }) => {
                    let result = self.settings.switch_recipe(recipe, &who, confirmed);
                    if !self.send(Event::SettingsChanged(result.map_err(|e| describe(&e)))) {
                        return;
                    }
                }
                Ok(Request::SignIn { name, pin }) => {
                    let known = self.users.as_ref().and_then(|u| u.sign_in(&name, &pin));
                    if known.is_none() {
                        tracing::warn!(%name, "panel sign-in refused: unknown name or wrong PIN");
                    }
                    let result = known.ok_or_else(|| "unknown name or wrong PIN".to_owned());
                    if !self.send(Event::SignedIn(result)) {
                        return;
                    }
                }
                Ok(Request::Remember(remembered)) => {
                    let path = prefs::path(&self.store);
                    if let Err(e) = prefs::save(&path, &remembered) {
                        tracing::warn!(path = %path.display(), "panel preferences not saved: {e}");
                    }
                }
                Ok(Request::ListCandidates) => {
                    if !self.send(Event::Candidates(self.list_candidates())) {
                        return;
                    }
                }
                Ok(Request::Promote { who, id }) => {
                    let result = self.promote(&who, &id);
                    if !self.send(Event::SettingsChanged(result)) {
                        return;
                    }
                }
                Ok(Request::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            // Live parts and API reviews change the figures too.
            if last_kpis.elapsed() >= KPI_EVERY {
                if !self.send_kpis() {
                    return;
                }
                last_kpis = Instant::now();
            }
        }
    }

    fn list_candidates(&self) -> Result<Vec<Candidate>, String> {
        let candidates = self.candidates.as_ref().ok_or(NO_CANDIDATES)?;
        candidates.list().map_err(|e| describe(&e))
    }

    /// The panel only offers Promote with a comparison that does not find it worse.
    fn promote(&self, who: &str, id: &str) -> Result<String, String> {
        let candidates = self.candidates.as_ref().ok_or(NO_CANDIDATES)?;
        candidates.promote(id, who, false).map_err(|e| match e {
            PromoteError::Failed(e) => describe(&e),
            refused @ PromoteError::Refusal(_) => refused.to_string(),
        })
    }

    /// Uncertain parts of this shift nobody has labelled yet, oldest first.
    fn send_backlog(&self) {
        let query = Query {
            verdict: Some("uncertain".into()),
            reviewed: Some(false),
            since: Some(self.shift_start),
            limit: Some(QUEUE_BACKLOG),
            ..Query::default()
        };
        let page = match self.store.list(&query) {
            Ok(page) => page,
            Err(e) => {
                self.send(Event::Failed(format!("cannot load the review queue: {e}")));
                return;
            }
        };
        for record in page.items.into_iter().rev() {
            let frame = self
                .store
                .image_path(record.id)
                .ok()
                .flatten()
                .and_then(|path| Frame::open(&path).ok());
            let part = Part::new(record, frame.as_ref(), None);
            if !self.send(Event::Part(Box::new(part))) {
                return;
            }
        }
    }

    fn send_kpis(&self) -> bool {
        let sent = match self.store.kpis(self.shift_start) {
            Ok(kpis) => self.send(Event::Kpis(kpis)),
            Err(e) => self.send(Event::Failed(format!("cannot compute KPIs: {e}"))),
        };
        match self.store.recent_alarms(1) {
            Ok(alarms) => match alarms.into_iter().next() {
                Some(alarm) if alarm.raised_at >= self.shift_start => {
                    sent && self.send(Event::Alarm(alarm))
                }
                _ => sent,
            },
            Err(e) => self.send(Event::Failed(format!("cannot read the alarms: {e}"))),
        }
    }

    /// False once the panel is gone.
    fn send(&self, event: Event) -> bool {
        self.events.send(event)
    }
}
