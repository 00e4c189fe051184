//! A model rollout at the station. The plant orders it over MQTT (`rollout`); a worker
//! thread fetches the package and checks every byte against the order's digest, the model
//! judges the live parts as the shadow (never slowing the line), and after its shadow parts
//! the order's policy decides: in charge when it agreed often enough, else it waits for an
//! engineer (`approve_rollout`). `rollback` undoes the last step. Each rollout is a folder
//! under `<store>/rollouts/` (its order, its state, the fetched model); `in_charge.json`
//! names the rolled-out model in charge, so a restart keeps it, after checking it again.

mod fetch;
mod kept;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

use inspecta_pipeline::publish::rollout::{
    Phase, Promote, RolloutBoard, RolloutOrder, RolloutState,
};
use inspecta_pipeline::station::shadow::{Shadow, ShadowSlot};
use inspecta_vision::model::Model;

use super::Settings;
use fetch::{FetchError, kept_package};
pub use kept::model_to_start;
use kept::{IN_CHARGE, InCharge, ORDER, STATE, read_json, remove_in_charge, save};

/// How often a rollout in its shadow phase reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Slow work, off the thread that records the verdicts.
enum Job {
    Fetch(RolloutOrder, PathBuf),
    Load(Load),
}

struct Load {
    rollout: String,
    path: PathBuf,
    /// The digest its files must still match before it loads (a promotion).
    digest: Option<String>,
    step: Step,
}

#[derive(Debug, Clone)]
enum Step {
    Promote { who: String },
    RollBack { who: String },
}

enum Done {
    Fetched {
        rollout: String,
        result: Result<Arc<Model>, FetchError>,
    },
    Loaded {
        load: Load,
        result: anyhow::Result<Arc<Model>>,
    },
}

/// The rollout the station reports: the last one ordered.
struct Active {
    order: RolloutOrder,
    state: RolloutState,
    shadow: Option<Arc<Shadow>>,
    /// A load for it is on the worker.
    loading: bool,
}

/// A station's rollouts; driven from the thread that records the verdicts.
pub struct Rollouts {
    dir: PathBuf,
    configured: PathBuf,
    settings: Settings,
    slot: ShadowSlot,
    board: RolloutBoard,
    /// `[model] shadow`, back in the slot when a rollout's shadow phase ends.
    standing: Option<Arc<Shadow>>,
    active: Option<Active>,
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
    /// The rollout, phase and parts judged last reported: a second rollout that ends in the
    /// phase the first ended in is still news.
    reported: Option<Mark>,
    progress: Instant,
}

impl std::fmt::Debug for Rollouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollouts")
            .field("dir", &self.dir)
            .field("active", &self.active.as_ref().map(|a| &a.state))
            .finish_non_exhaustive()
    }
}

impl Rollouts {
    /// `dir`: where rollouts are kept; `configured`: `[model] path`; `threads`: the
    /// model's, for a model that takes charge. Resumes the last rollout if it was under way.
    pub fn open(
        dir: PathBuf,
        configured: PathBuf,
        threads: usize,
        settings: Settings,
        slot: ShadowSlot,
        board: RolloutBoard,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).map_err(|e| {
            anyhow::anyhow!("cannot create the rollouts folder {}: {e}", dir.display())
        })?;
        let (jobs, inbox) = sync_channel(4);
        let (finished, done) = sync_channel(4);
        std::thread::Builder::new()
            .name("rollout".into())
            .spawn(move || work(&inbox, &finished, threads))
            .map_err(|e| anyhow::anyhow!("cannot start the rollout thread: {e}"))?;
        let mut rollouts = Self {
            dir,
            configured,
            settings,
            standing: slot.current(),
            slot,
            board,
            active: None,
            jobs,
            done,
            reported: None,
            progress: Instant::now(),
        };
        rollouts.resume();
        Ok(rollouts)
    }

    /// The last rollout from its folder; one cut short by a restart starts again (a fetched
    /// package that still matches is not fetched twice).
    fn resume(&mut self) {
        let Some((order, state)) = self.latest() else {
            return;
        };
        let under_way = matches!(state.phase, Phase::Downloading | Phase::Shadow);
        self.active = Some(Active {
            order,
            state,
            shadow: None,
            loading: false,
        });
        if under_way {
            tracing::info!("resuming the rollout the station was in when it stopped");
            self.start_fetch();
        }
    }

    fn latest(&self) -> Option<(RolloutOrder, RolloutState)> {
        std::fs::read_dir(&self.dir)
            .ok()?
            .flatten()
            .filter_map(|entry| {
                let path = entry.path();
                let order = read_json::<RolloutOrder>(&path.join(ORDER))?;
                let state = read_json::<RolloutState>(&path.join(STATE))?;
                Some((order, state))
            })
            .max_by_key(|(_, state)| state.at)
    }

    /// Takes an order. The same rollout again is answered with where it stands (and tried
    /// again if it failed); a new one supersedes one under way.
    pub fn order(&mut self, order: RolloutOrder) -> Result<String, String> {
        order.check()?;
        if let Some(active) = &self.active
            && active.order.rollout == order.rollout
            && active.state.phase != Phase::Failed
        {
            self.reported = None;
            return Ok(format!(
                "rollout {} is {:?}",
                order.rollout, active.state.phase
            ));
        }
        let folder = self.dir.join(&order.rollout);
        if let Some(earlier) = read_json::<RolloutState>(&folder.join(STATE))
            && earlier.phase.is_settled()
            && earlier.phase != Phase::Failed
            && self
                .active
                .as_ref()
                .is_none_or(|a| a.order.rollout != order.rollout)
        {
            return Err(format!(
                "rollout {} ended here as {:?} at {}; order a new one",
                order.rollout, earlier.phase, earlier.at
            ));
        }
        self.supersede(&order.rollout);
        std::fs::create_dir_all(&folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
        save(&folder.join(ORDER), &order);
        tracing::warn!(rollout = %order.rollout, digest = %order.digest, url = %order.package_url, "model rollout ordered");
        self.active = Some(Active {
            state: RolloutState::ordered(&order),
            order,
            shadow: None,
            loading: false,
        });
        self.persist();
        self.start_fetch();
        Ok("fetching the package".into())
    }

    fn start_fetch(&mut self) {
        let Some(active) = &mut self.active else {
            return;
        };
        active.state.enter(Phase::Downloading, None);
        let job = Job::Fetch(active.order.clone(), self.dir.join(&active.order.rollout));
        if self.jobs.try_send(job).is_err() {
            active.state.enter(
                Phase::Failed,
                Some("the rollout worker is busy or gone".into()),
            );
        }
        self.persist();
    }

    /// A rollout under way ends as superseded when another is ordered.
    fn supersede(&mut self, by: &str) {
        if let Some(active) = &mut self.active
            && matches!(
                active.state.phase,
                Phase::Downloading | Phase::Shadow | Phase::AwaitingApproval
            )
        {
            active
                .state
                .enter(Phase::Superseded, Some(format!("rollout {by} was ordered")));
            self.end_shadow();
            self.persist();
        }
    }

    /// An engineer puts the waiting (or still shadowing) model in charge.
    pub fn approve(&mut self, rollout: &str, who: &str) -> Result<String, String> {
        let Some(active) = &mut self.active else {
            return Err("there is no rollout at this station".into());
        };
        if active.order.rollout != rollout {
            return Err(format!(
                "rollout {rollout} is not this station's current one ({})",
                active.order.rollout
            ));
        }
        if !matches!(active.state.phase, Phase::AwaitingApproval | Phase::Shadow) {
            return Err(format!(
                "rollout {rollout} is {:?}: nothing to approve",
                active.state.phase
            ));
        }
        active.state.who = Some(who.to_owned());
        self.load(Step::Promote {
            who: who.to_owned(),
        })?;
        Ok(format!("rollout {rollout} approved: taking charge"))
    }

    /// Stops a rollout under way, or puts back the model the rolled-out one replaced.
    pub fn rollback(&mut self, who: &str) -> Result<String, String> {
        if let Some(active) = &mut self.active
            && matches!(
                active.state.phase,
                Phase::Downloading | Phase::Shadow | Phase::AwaitingApproval
            )
        {
            active.state.who = Some(who.to_owned());
            active
                .state
                .enter(Phase::Cancelled, Some(format!("rolled back by {who}")));
            let rollout = active.order.rollout.clone();
            self.end_shadow();
            self.persist();
            return Ok(format!("rollout {rollout} cancelled before it took charge"));
        }
        let Some(in_charge) = read_json::<InCharge>(&self.dir.join(IN_CHARGE)) else {
            return Err("no rolled-out model is in charge here".into());
        };
        self.activate(&in_charge.rollout)?;
        let job = Job::Load(Load {
            rollout: in_charge.rollout.clone(),
            path: in_charge.previous,
            digest: None,
            step: Step::RollBack {
                who: who.to_owned(),
            },
        });
        self.send(job)?;
        Ok(format!(
            "rolling back {}: the model before it takes charge",
            in_charge.rollout
        ))
    }

    /// Makes `rollout` (from its folder) the one the station reports.
    fn activate(&mut self, rollout: &str) -> Result<(), String> {
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.order.rollout == rollout)
        {
            return Ok(());
        }
        let folder = self.dir.join(rollout);
        let (Some(order), Some(state)) = (
            read_json::<RolloutOrder>(&folder.join(ORDER)),
            read_json::<RolloutState>(&folder.join(STATE)),
        ) else {
            return Err(format!("rollout {rollout}'s folder is incomplete"));
        };
        self.active = Some(Active {
            order,
            state,
            shadow: None,
            loading: false,
        });
        Ok(())
    }

    fn load(&mut self, step: Step) -> Result<(), String> {
        let Some(active) = &mut self.active else {
            return Err("there is no rollout at this station".into());
        };
        if active.loading {
            return Err("the rollout's model is already being loaded".into());
        }
        let job = Job::Load(Load {
            rollout: active.order.rollout.clone(),
            path: self.dir.join(&active.order.rollout).join("model"),
            digest: Some(active.order.digest.clone()),
            step,
        });
        // Marked only once the worker has it: a refused job is tried again at the next tick.
        self.send(job)?;
        if let Some(active) = &mut self.active {
            active.loading = true;
        }
        Ok(())
    }

    fn send(&self, job: Job) -> Result<(), String> {
        self.jobs
            .try_send(job)
            .map_err(|_| "the rollout worker is busy; try again".to_owned())
    }

    /// Moves the rollout on (fetched, shadow parts judged, loaded); the state to report on
    /// `.../rollout` when it changed (the station's board shows it too).
    pub fn tick(&mut self) -> Option<RolloutState> {
        loop {
            match self.done.try_recv() {
                Ok(Done::Fetched { rollout, result }) => self.fetched(&rollout, result),
                Ok(Done::Loaded { load, result }) => self.loaded(load, result),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        self.watch_shadow();
        let active = self.active.as_ref()?;
        let mark = (
            active.order.rollout.clone(),
            active.state.phase,
            active.state.judged,
        );
        if !is_news(self.reported.as_ref(), &mark, self.progress.elapsed()) {
            return None;
        }
        self.reported = Some(mark);
        self.progress = Instant::now();
        // Each report carries its own time: the central store keeps the newest.
        let active = self.active.as_mut()?;
        active.state.at = jiff::Timestamp::now();
        self.board.set(active.state.clone());
        Some(active.state.clone())
    }

    fn fetched(&mut self, rollout: &str, result: Result<Arc<Model>, FetchError>) {
        let Some(active) = self.active.as_mut().filter(|a| a.order.rollout == rollout) else {
            return;
        };
        if active.state.phase != Phase::Downloading {
            return;
        }
        let model = match result {
            Ok(model) => model,
            Err(e) => {
                let phase = match e {
                    FetchError::Rejected(_) => Phase::Rejected,
                    FetchError::Failed(_) => Phase::Failed,
                };
                tracing::error!(%rollout, "model rollout {phase:?}: {e}");
                active.state.enter(phase, Some(e.to_string()));
                self.persist();
                return;
            }
        };
        let manifest = model.manifest();
        active.state.model.clone_from(&manifest.name);
        active.state.version.clone_from(&manifest.version);
        match Shadow::start(&model) {
            Ok(shadow) => {
                let shadow = Arc::new(shadow);
                self.slot.replace(Some(Arc::clone(&shadow)));
                active.shadow = Some(shadow);
                active.state.enter(Phase::Shadow, None);
                tracing::warn!(%rollout, model = %manifest.name, version = %manifest.version, parts = active.order.shadow_parts, "rolled-out model checked; judging as the shadow");
            }
            Err(e) => active
                .state
                .enter(Phase::Failed, Some(format!("cannot start the model: {e}"))),
        }
        self.persist();
    }

    /// Copies the shadow's figures; after its parts, the order's policy decides.
    fn watch_shadow(&mut self) {
        let Some(active) = &mut self.active else {
            return;
        };
        let (Phase::Shadow, Some(shadow)) = (active.state.phase, &active.shadow) else {
            return;
        };
        let figures = shadow.snapshot();
        let state = &mut active.state;
        state.judged = figures.judged;
        state.disagreements = figures.disagreements;
        state.skipped = figures.skipped;
        state.pairs = figures.pairs;
        state.agreement = (figures.judged > 0)
            .then(|| 1.0 - figures.disagreements as f64 / figures.judged as f64);
        if figures.judged < active.order.shadow_parts || active.loading {
            return;
        }
        let agreement = state.agreement.unwrap_or(0.0);
        let decision = match active.order.promote {
            Promote::Auto { min_agreement } if agreement >= min_agreement => Ok(format!(
                "rollout {} (agreement {:.2} % over {} parts)",
                active.order.rollout,
                agreement * 100.0,
                figures.judged
            )),
            Promote::Auto { min_agreement } => Err(format!(
                "agreement {:.2} % is under the {:.2} % the order asks for: an engineer decides",
                agreement * 100.0,
                min_agreement * 100.0
            )),
            Promote::Approval => Err("the order asks for an engineer's approval".into()),
        };
        match decision {
            Ok(who) => {
                if let Err(e) = self.load(Step::Promote { who }) {
                    tracing::warn!("cannot promote the rolled-out model yet: {e}");
                }
            }
            Err(reason) => {
                tracing::warn!(rollout = %active.order.rollout, "rolled-out model waits for approval: {reason}");
                active.state.enter(Phase::AwaitingApproval, Some(reason));
                self.end_shadow();
                self.persist();
            }
        }
    }

    fn loaded(&mut self, load: Load, result: anyhow::Result<Arc<Model>>) {
        let Some(active) = self
            .active
            .as_mut()
            .filter(|a| a.order.rollout == load.rollout)
        else {
            return;
        };
        active.loading = false;
        let model = match result {
            Ok(model) => model,
            Err(e) => {
                let reason = crate::error_text::describe(&e);
                tracing::error!(rollout = %load.rollout, "the rollout's model could not take charge: {reason}");
                active.state.reason = Some(reason);
                return;
            }
        };
        let outcome = match load.step {
            Step::Promote { who } => self.promote(&load.path, &model, &who),
            Step::RollBack { who } => self.roll_back(&load.path, &model, &who),
        };
        if let Err(e) = outcome {
            let reason = crate::error_text::describe(&e);
            tracing::error!(rollout = %load.rollout, "{reason}");
            if let Some(active) = &mut self.active {
                active.state.reason = Some(reason);
            }
        }
    }

    fn promote(&mut self, path: &Path, model: &Arc<Model>, who: &str) -> anyhow::Result<()> {
        let Some(active) = &mut self.active else {
            return Ok(());
        };
        if !matches!(active.state.phase, Phase::Shadow | Phase::AwaitingApproval) {
            return Ok(());
        }
        let previous = self.settings.model_path();
        let running = self.settings.model();
        let replaced = format!("{} {}", running.manifest().name, running.manifest().version);
        install(&self.settings, path, model, who)?;
        let in_charge = InCharge {
            rollout: active.order.rollout.clone(),
            digest: active.order.digest.clone(),
            model: path.to_owned(),
            previous,
            configured: self.configured.clone(),
            who: who.to_owned(),
            at: jiff::Timestamp::now(),
            before: read_json::<InCharge>(&self.dir.join(IN_CHARGE)).map(Box::new),
        };
        save(&self.dir.join(IN_CHARGE), &in_charge);
        active.state.replaced = Some(replaced);
        active.state.who = Some(who.to_owned());
        active.state.enter(Phase::Promoted, None);
        tracing::warn!(rollout = %active.order.rollout, %who, "rolled-out model in charge");
        self.end_shadow();
        self.persist();
        Ok(())
    }

    fn roll_back(&mut self, path: &Path, model: &Arc<Model>, who: &str) -> anyhow::Result<()> {
        let Some(in_charge) = read_json::<InCharge>(&self.dir.join(IN_CHARGE)) else {
            return Ok(());
        };
        install(&self.settings, path, model, who)?;
        match in_charge.before {
            Some(before) => save(&self.dir.join(IN_CHARGE), &before),
            None => remove_in_charge(&self.dir),
        }
        if let Some(active) = &mut self.active {
            active.state.who = Some(who.to_owned());
            active
                .state
                .enter(Phase::RolledBack, Some(format!("rolled back by {who}")));
            tracing::warn!(rollout = %active.order.rollout, %who, model = %path.display(), "rollout rolled back");
        }
        self.persist();
        Ok(())
    }

    /// The rollout's shadow stops; `[model] shadow` judges again.
    fn end_shadow(&mut self) {
        if let Some(active) = &mut self.active
            && active.shadow.take().is_some()
        {
            self.slot.replace(self.standing.clone());
        }
    }

    fn persist(&self) {
        if let Some(active) = &self.active {
            let folder = self.dir.join(&active.order.rollout);
            save(&folder.join(STATE), &active.state);
        }
    }
}

type Mark = (String, Phase, u64);

/// Whether `mark` is worth a report after `reported`: another rollout or phase always is,
/// more parts judged once per [`PROGRESS_EVERY`].
fn is_news(reported: Option<&Mark>, mark: &Mark, since: Duration) -> bool {
    reported.is_none_or(|(rollout, phase, judged)| {
        *rollout != mark.0 || *phase != mark.1 || (*judged != mark.2 && since >= PROGRESS_EVERY)
    })
}

/// The rollout worker: fetches and loads, one job at a time.
fn work(inbox: &Receiver<Job>, done: &SyncSender<Done>, threads: usize) {
    while let Ok(job) = inbox.recv() {
        let result = match job {
            Job::Fetch(order, dir) => Done::Fetched {
                rollout: order.rollout.clone(),
                result: fetch_model(&order, &dir),
            },
            Job::Load(load) => {
                let result =
                    checked(&load).and_then(|()| crate::engine::load_model(&load.path, threads));
                Done::Loaded { load, result }
            }
        };
        if done.send(result).is_err() {
            return;
        }
    }
}

/// A model that takes charge from a rollout matches its digest, read from the disk now.
fn checked(load: &Load) -> anyhow::Result<()> {
    let (Some(digest), Some(folder)) = (&load.digest, load.path.parent()) else {
        return Ok(());
    };
    kept_package(folder, digest)
        .and_then(|package| Ok(package.verify(&load.path)?))
        .map_err(|e| anyhow::anyhow!("the rolled-out model no longer matches its digest: {e}"))
}

/// The package, fetched and checked, loaded as a shadow (one thread) and checked to be the
/// model the package says.
fn fetch_model(order: &RolloutOrder, dir: &Path) -> Result<Arc<Model>, FetchError> {
    let package = fetch::fetch(order, dir)?;
    let model = crate::engine::load_model(&dir.join("model"), 1)
        .map_err(|e| FetchError::Rejected(crate::error_text::describe(&e)))?;
    let manifest = model.manifest();
    if manifest.name != package.model || manifest.version != package.version {
        return Err(FetchError::Rejected(format!(
            "the package says {} {}, its model.toml {} {}",
            package.model, package.version, manifest.name, manifest.version
        )));
    }
    Ok(model)
}

/// Puts `model` in charge. A settings log that cannot keep the change is logged, not a
/// failure: the model is in charge either way, and the rollout's state must say so.
fn install(settings: &Settings, path: &Path, model: &Arc<Model>, who: &str) -> anyhow::Result<()> {
    if let Err(e) = settings.install(path, model, who) {
        if !Arc::ptr_eq(&settings.model(), model) {
            return Err(e);
        }
        tracing::error!("{}", crate::error_text::describe(&e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_rollout_ending_as_the_first_did_is_reported() {
        let first = ("tampered".to_owned(), Phase::Rejected, 0);
        let second = ("forged".to_owned(), Phase::Rejected, 0);
        assert!(is_news(Some(&first), &second, Duration::ZERO));
        assert!(!is_news(Some(&first), &first, PROGRESS_EVERY));
    }

    #[test]
    fn shadow_progress_is_reported_at_most_every_few_seconds() {
        let before = ("r".to_owned(), Phase::Shadow, 3);
        let after = ("r".to_owned(), Phase::Shadow, 4);
        assert!(!is_news(Some(&before), &after, Duration::from_millis(10)));
        assert!(is_news(Some(&before), &after, PROGRESS_EVERY));
        assert!(is_news(None, &after, Duration::ZERO));
    }
}
