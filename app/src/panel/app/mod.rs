//! The operator panel's state, and what an inspector's command does to it. Everything slow
//! happens on workers; the panel only drains their events (within a time budget), draws its
//! screens (one module each), and sends requests.

mod chrome;
mod dialogs;
mod kpis;
mod line;
mod part_view;
mod score_bar;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use egui::{TextureHandle, Ui};
use inspecta_pipeline::store::{Alarm, Kpis, NewReview, Review, ReviewAction};
use inspecta_vision::model::Model;

use super::commands::{self, Command};
use super::desk::{Request, Requests};
use super::events::{Event, LineState, Part};
use super::prefs::Remembered;
use super::review_labels;
use crate::config::UI_SCALES;
use crate::service::Settings;
use crate::users::Role;

/// One Ctrl+Plus: a tenth larger.
const ZOOM_STEP: f32 = 1.1;
use chrome::{apply_theme, help_overlay, save_screenshot};

/// How long one frame may spend taking in worker events before it draws.
const EVENT_BUDGET: Duration = Duration::from_millis(4);

/// What the panel needs to know about the station it shows.
#[derive(Debug, Clone)]
pub struct PanelSetup {
    pub station: String,
    /// Reason codes offered when overriding.
    pub reasons: Vec<String>,
    pub history: usize,
    pub high_contrast: bool,
    pub shift: String,
    /// Where F12 screenshots go.
    pub screenshots: std::path::PathBuf,
    /// The engineer role's PIN; without one the role is off.
    pub engineer_pin: Option<String>,
    /// The model in charge, and what an engineer may change about it.
    pub settings: Settings,
    /// `[panel] ui_scale`, where Ctrl+0 returns.
    pub ui_scale: f32,
    /// The size the operators chose on this station last time (Ctrl+Plus/Minus).
    pub remembered_scale: Option<f32>,
    /// People sign in with a name and PIN from the users file, which gives their role.
    pub named_users: bool,
    /// Judged parts at least this hesitant are asked for ("please review: helps the next
    /// model"), under the active review policy (`[learning]`).
    pub ask_above: Option<f64>,
}

/// Judged parts asked for at once: the newest, so the request never grows into a chore.
const ASKED_MAX: usize = 10;

struct Shown {
    part: Part,
    /// Uploaded while the part is on screen, let go when another takes its place.
    texture: Option<TextureHandle>,
    thumbnail_texture: Option<TextureHandle>,
    heat: Option<HeatDrawing>,
    /// A review was sent and has not been answered yet.
    pending: bool,
}

/// A shown part's heat map as drawn: for the flag level it was coloured at.
struct HeatDrawing {
    level: f32,
    texture: TextureHandle,
    outline: Vec<[[f32; 2]; 2]>,
}

impl std::fmt::Debug for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shown")
            .field("id", &self.part.record.id)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

/// The thresholds an engineer is editing.
#[derive(Debug, Clone, Copy)]
struct Thresholds {
    defect: f32,
    band: [f32; 2],
    /// The value the arrow keys change: 0 the threshold, 1 and 2 the band's ends.
    row: usize,
}

impl Thresholds {
    fn value(&mut self, row: usize) -> &mut f32 {
        match row {
            0 => &mut self.defect,
            1 => &mut self.band[0],
            _ => &mut self.band[1],
        }
    }
}

/// The model an engineer is about to switch to (index into the station's choices).
#[derive(Debug, Clone, Copy)]
struct ModelChoice {
    chosen: usize,
    /// The chosen recipe is for another product and Enter was pressed once: the dialog
    /// says so, and the next Enter switches.
    confirming: bool,
}

/// The candidates dialog: `None` until the desk has listed them.
#[derive(Debug, Default)]
struct CandidateChoice {
    chosen: usize,
    list: Option<Vec<crate::service::candidates::Candidate>>,
}

#[derive(Debug, Default)]
struct Picker {
    label: usize,
    reason: String,
}

#[derive(Debug)]
pub struct Panel {
    setup: PanelSetup,
    events: Receiver<Event>,
    requests: Requests,
    history: VecDeque<Shown>,
    /// Uncertain parts nobody has labelled, oldest first (record ids).
    queue: VecDeque<i64>,
    /// Judged parts the review policy asks for, oldest first; they do not hold the history.
    asked: VecDeque<i64>,
    /// The part under review; `None` follows the newest part.
    selected: Option<i64>,
    /// The part the live view froze on.
    paused: Option<i64>,
    operator: Option<String>,
    sign_in: String,
    /// The PIN typed at sign-in (named users only), and whether the desk is checking it.
    sign_in_pin: String,
    checking_sign_in: bool,
    /// The operator has entered the engineer PIN.
    engineer: bool,
    /// The engineer PIN being typed.
    pin_entry: Option<String>,
    thresholds: Option<Thresholds>,
    model_choice: Option<ModelChoice>,
    candidates: Option<CandidateChoice>,
    /// The model judging the parts, as of the last settings change.
    model: Arc<Model>,
    /// Labels an inspector can give: "good" first, then the model's defect classes.
    labels: Vec<String>,
    picker: Option<Picker>,
    help: bool,
    heat_map_hidden: bool,
    fullscreen: bool,
    high_contrast: bool,
    /// The theme last handed to egui; set again only when it changes.
    theme_applied: Option<bool>,
    scale: f32,
    scale_applied: Option<f32>,
    kpis: Kpis,
    /// The shift's latest process alarm, shown until the shift ends.
    alarm: Option<Alarm>,
    message: Option<(String, bool)>,
    line: LineState,
}

impl Panel {
    pub fn new(setup: PanelSetup, events: Receiver<Event>, requests: Requests) -> Self {
        let high_contrast = setup.high_contrast;
        let scale = setup.remembered_scale.unwrap_or(setup.ui_scale);
        let model = setup.settings.model();
        let labels = review_labels(&model);
        Self {
            setup,
            events,
            requests,
            history: VecDeque::new(),
            queue: VecDeque::new(),
            asked: VecDeque::new(),
            selected: None,
            paused: None,
            operator: None,
            sign_in: String::new(),
            sign_in_pin: String::new(),
            checking_sign_in: false,
            engineer: false,
            pin_entry: None,
            thresholds: None,
            model_choice: None,
            candidates: None,
            model,
            labels,
            picker: None,
            help: false,
            heat_map_hidden: false,
            fullscreen: false,
            high_contrast,
            theme_applied: None,
            scale,
            scale_applied: None,
            kpis: Kpis::default(),
            alarm: None,
            message: None,
            line: LineState::default(),
        }
    }

    /// Whether the window opens fullscreen, so F11 toggles from there.
    pub fn fullscreen(mut self, fullscreen: bool) -> Self {
        self.fullscreen = fullscreen;
        self
    }

    #[cfg(test)]
    pub fn operator(&self) -> Option<&str> {
        self.operator.as_deref()
    }

    /// Takes in worker events, newest parts first in line, for at most [`EVENT_BUDGET`].
    pub fn drain_events(&mut self) {
        let started = Instant::now();
        while started.elapsed() < EVENT_BUDGET {
            let Ok(event) = self.events.try_recv() else {
                return;
            };
            self.apply(event);
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Part(part) => self.add_part(*part),
            Event::Kpis(kpis) => self.kpis = kpis,
            Event::Alarm(alarm) => self.alarm = Some(alarm),
            Event::Reviewed { id, result } => self.reviewed(id, result),
            Event::Line(line) => self.line = line,
            Event::Failed(message) => self.message = Some((message, true)),
            Event::SettingsChanged(Ok(summary)) => {
                self.model = self.setup.settings.model();
                self.labels = review_labels(&self.model);
                self.message = Some((summary, false));
            }
            Event::SettingsChanged(Err(reason)) => self.message = Some((reason, true)),
            Event::SignedIn(result) => self.signed_in(result),
            Event::Candidates(Ok(list)) => {
                if let Some(choice) = &mut self.candidates {
                    choice.list = Some(list);
                }
            }
            Event::Candidates(Err(reason)) => {
                self.candidates = None;
                self.message = Some((reason, true));
            }
        }
    }

    fn signed_in(&mut self, result: Result<(String, Role), String>) {
        self.checking_sign_in = false;
        self.sign_in_pin.clear();
        match result {
            Ok((name, role)) => {
                let engineer = role == Role::Engineer;
                tracing::info!(operator = %name, engineer, "operator signed in");
                self.engineer = engineer;
                self.message = Some((format!("{name} signed in ({role:?})"), false));
                self.operator = Some(name);
            }
            Err(reason) => self.message = Some((reason, true)),
        }
    }

    fn add_part(&mut self, part: Part) {
        let id = part.record.id;
        if self.history.iter().any(|s| s.part.record.id == id) {
            return;
        }
        if part.record.label == "uncertain" && !self.queue.contains(&id) {
            self.queue.push_back(id);
        }
        let asked = self.setup.ask_above.is_some_and(|above| {
            part.record.review.is_none()
                && inspecta_pipeline::learning::worth_asking(&part.record, above)
        });
        if asked {
            self.asked.push_back(id);
            if self.asked.len() > ASKED_MAX {
                self.asked.pop_front();
            }
        }
        self.history.push_back(Shown {
            part,
            texture: None,
            thumbnail_texture: None,
            heat: None,
            pending: false,
        });
        // Only the part on screen keeps its full-size textures (2 MB each).
        let shown = self.shown_id();
        for other in self
            .history
            .iter_mut()
            .filter(|s| Some(s.part.record.id) != shown)
        {
            other.texture = None;
            other.heat = None;
        }
        // Parts still waiting for review stay, however long the history.
        while self.history.len() > self.setup.history.max(1) {
            let Some(pos) = self
                .history
                .iter()
                .position(|s| !self.queue.contains(&s.part.record.id))
            else {
                break;
            };
            self.history.remove(pos);
        }
        let history = &self.history;
        self.asked
            .retain(|id| history.iter().any(|s| s.part.record.id == *id));
    }

    /// Whether the review policy asks for this judged part.
    fn is_asked(&self, id: i64) -> bool {
        self.asked.contains(&id)
    }

    fn reviewed(&mut self, id: i64, result: Result<Review, String>) {
        let Some(shown) = self.history.iter_mut().find(|s| s.part.record.id == id) else {
            return;
        };
        shown.pending = false;
        match result {
            Ok(review) => {
                self.message = Some((
                    format!(
                        "part {id}: {} {} by {}",
                        review.after,
                        if review.action == ReviewAction::Confirm {
                            "confirmed"
                        } else {
                            "(override)"
                        },
                        review.reviewer
                    ),
                    false,
                ));
                shown.part.record.label.clone_from(&review.after);
                shown.part.record.review = Some(review);
                let was_queued = self.queue.contains(&id) || self.asked.contains(&id);
                self.queue.retain(|q| *q != id);
                self.asked.retain(|q| *q != id);
                if was_queued {
                    self.selected = self.next_to_review();
                }
            }
            Err(reason) => self.message = Some((format!("part {id}: {reason}"), true)),
        }
    }

    /// Uncertain parts first: the line needs their verdict; then the asked ones.
    fn next_to_review(&self) -> Option<i64> {
        self.queue.front().or(self.asked.front()).copied()
    }

    /// The part on screen: the selected one, the one the view froze on, or the newest.
    fn shown_id(&self) -> Option<i64> {
        self.selected
            .or(self.paused)
            .or_else(|| self.history.back().map(|s| s.part.record.id))
    }

    fn shown(&self) -> Option<&Shown> {
        let id = self.shown_id()?;
        self.history.iter().find(|s| s.part.record.id == id)
    }

    /// Runs one command; returns a viewport command for the window, if any.
    pub fn run(&mut self, command: Command) -> Option<egui::ViewportCommand> {
        match command {
            Command::Confirm => self.review(ReviewAction::Confirm, None, None),
            Command::OverrideTo(n) => {
                if let Some(label) = self.labels.get(n).cloned() {
                    self.review(ReviewAction::Override, Some(label), None);
                }
            }
            Command::OpenPicker => {
                if self.shown().is_some() {
                    self.picker = Some(Picker::default());
                }
            }
            Command::NextInQueue => match self.next_to_review() {
                Some(id) => self.selected = Some(id),
                None => self.message = Some(("no part is waiting for review".into(), false)),
            },
            Command::Previous => self.step_history(-1),
            Command::Next => self.step_history(1),
            Command::FollowLive => {
                let closed = self.picker.take().is_some()
                    | self.pin_entry.take().is_some()
                    | self.thresholds.take().is_some()
                    | self.model_choice.take().is_some()
                    | self.candidates.take().is_some()
                    | std::mem::take(&mut self.help);
                if !closed {
                    self.selected = None;
                }
            }
            Command::TogglePause => {
                self.paused = match self.paused {
                    Some(_) => None,
                    None => self.history.back().map(|s| s.part.record.id),
                };
            }
            Command::ToggleFullscreen => {
                self.fullscreen = !self.fullscreen;
                return Some(egui::ViewportCommand::Fullscreen(self.fullscreen));
            }
            Command::ToggleContrast => self.high_contrast = !self.high_contrast,
            Command::ToggleHelp => self.help = !self.help,
            Command::ToggleHeatMap => self.heat_map_hidden = !self.heat_map_hidden,
            Command::Screenshot => {
                let dir = self.setup.screenshots.clone();
                return Some(egui::ViewportCommand::Screenshot(
                    egui::ScreenshotCallback::new(move |image| save_screenshot(&dir, &image)),
                ));
            }
            Command::EngineerSignIn => {
                if self.setup.named_users {
                    let text = if self.engineer {
                        "you have the engineer role"
                    } else {
                        "the engineer role comes with an engineer's own sign-in (Ctrl+L, then name and PIN)"
                    };
                    self.message = Some((text.into(), !self.engineer));
                } else if self.setup.engineer_pin.is_some() {
                    self.pin_entry = Some(String::new());
                } else {
                    self.message = Some((
                        "no engineer PIN is configured ([panel] engineer_pin)".into(),
                        true,
                    ));
                }
            }
            Command::Thresholds => {
                if self.engineer {
                    let rule = self.model.rule();
                    self.thresholds = Some(Thresholds {
                        defect: rule.defect_threshold(),
                        band: rule.uncertain_band(),
                        row: 0,
                    });
                } else {
                    self.message = Some((
                        "changing thresholds needs the engineer role (E)".into(),
                        true,
                    ));
                }
            }
            Command::SwitchModel => {
                if !self.engineer {
                    self.message = Some((
                        "switching the model needs the engineer role (E)".into(),
                        true,
                    ));
                } else if self.setup.settings.recipes().is_empty()
                    && self.setup.settings.choices().len() < 2
                {
                    self.message = Some((
                        "no recipe or other model is configured ([[recipe]], [model] alternatives)"
                            .into(),
                        true,
                    ));
                } else {
                    self.model_choice = Some(ModelChoice {
                        chosen: 0,
                        confirming: false,
                    });
                }
            }
            Command::Candidates => {
                if !self.engineer {
                    self.message =
                        Some(("candidate models need the engineer role (E)".into(), true));
                } else if self.ask_desk(Request::ListCandidates) {
                    self.candidates = Some(CandidateChoice::default());
                }
            }
            Command::ZoomIn => self.zoom(Some(ZOOM_STEP)),
            Command::ZoomOut => self.zoom(Some(1.0 / ZOOM_STEP)),
            Command::ZoomReset => self.zoom(None),
            Command::SignOut => {
                if let Some(operator) = self.operator.take() {
                    tracing::info!(%operator, engineer = self.engineer, "operator signed out");
                }
                self.engineer = false;
                self.thresholds = None;
                self.model_choice = None;
                self.candidates = None;
                self.sign_in.clear();
            }
        }
        None
    }

    /// Scales by `factor` and remembers it for the station; None goes back to the config's
    /// size and forgets.
    fn zoom(&mut self, factor: Option<f32>) {
        let (low, high) = UI_SCALES;
        self.scale = match factor {
            Some(factor) => ((self.scale * factor * 20.0).round() / 20.0).clamp(low, high),
            None => self.setup.ui_scale,
        };
        self.message = Some((format!("size {:.0} %", self.scale * 100.0), false));
        let remembered = Remembered {
            ui_scale: factor.map(|_| self.scale),
        };
        self.ask_desk(Request::Remember(remembered));
    }

    fn step_history(&mut self, delta: isize) {
        let Some(current) = self.shown_id() else {
            return;
        };
        let Some(pos) = self
            .history
            .iter()
            .position(|s| s.part.record.id == current)
        else {
            return;
        };
        let next = pos
            .checked_add_signed(delta)
            .filter(|p| *p < self.history.len());
        if let Some(next) = next {
            self.selected = Some(self.history[next].part.record.id);
        }
    }

    /// Sends a review of the part on screen, in the signed-in operator's name.
    fn review(&mut self, action: ReviewAction, label: Option<String>, reason: Option<String>) {
        let Some(reviewer) = self.operator.clone() else {
            return;
        };
        let Some(id) = self.shown_id() else {
            return;
        };
        let Some(shown) = self.history.iter_mut().find(|s| s.part.record.id == id) else {
            return;
        };
        if shown.pending {
            return;
        }
        if action == ReviewAction::Confirm && shown.part.record.label == "uncertain" {
            self.message = Some((
                "an uncertain part needs a label: press 1-9 or O".into(),
                true,
            ));
            return;
        }
        if label.as_deref() == Some(shown.part.record.label.as_str()) {
            // Overriding to the label it already has is a confirmation.
            return self.review(ReviewAction::Confirm, None, reason);
        }
        let review = NewReview {
            reviewer,
            action,
            label,
            reason,
        };
        match self.requests.send(Request::Review { id, review }) {
            Ok(()) => shown.pending = true,
            Err(why) => self.message = Some((why.into(), true)),
        }
    }

    /// Keys are commands while someone is signed in and no dialog has them.
    fn takes_commands(&self) -> bool {
        let dialog_open = self.picker.is_some()
            || self.pin_entry.is_some()
            || self.thresholds.is_some()
            || self.model_choice.is_some()
            || self.candidates.is_some();
        self.operator.is_some() && !dialog_open
    }

    /// Draws the whole panel.
    pub fn ui(&mut self, ui: &mut Ui) {
        self.drain_events();
        if self.theme_applied != Some(self.high_contrast) {
            apply_theme(ui.ctx(), self.high_contrast);
            self.theme_applied = Some(self.high_contrast);
        }
        if self.scale_applied != Some(self.scale) {
            // The panel's own Ctrl+Plus/Minus, which remember; not egui's, which do not.
            ui.ctx().options_mut(|o| o.zoom_with_keyboard = false);
            ui.ctx().set_zoom_factor(self.scale);
            self.scale_applied = Some(self.scale);
        }
        if self.takes_commands() {
            // One at a time: a key that opens a dialog (or signs out) leaves the keys after
            // it to the dialog.
            while self.takes_commands() {
                let Some(command) = commands::next_pressed(ui.ctx()) else {
                    break;
                };
                if let Some(viewport) = self.run(command) {
                    ui.ctx().send_viewport_cmd(viewport);
                }
            }
        } else if ui.ctx().input(|i| i.key_pressed(egui::Key::Escape)) {
            self.run(Command::FollowLive);
        }
        self.top_bar(ui);
        egui::Panel::right("kpis")
            .default_size(340.0)
            .show(ui, |ui| self.kpi_panel(ui));
        egui::Panel::bottom("history")
            .resizable(false)
            .show(ui, |ui| self.history_strip(ui));
        egui::CentralPanel::default_margins().show(ui, |ui| self.part_view(ui));
        if self.operator.is_none() {
            self.sign_in_dialog(ui.ctx());
        }
        if self.picker.is_some() {
            self.picker_dialog(ui.ctx());
        }
        if self.pin_entry.is_some() {
            self.pin_dialog(ui.ctx());
        }
        if self.thresholds.is_some() {
            self.thresholds_window(ui.ctx());
        }
        if self.model_choice.is_some() {
            self.model_dialog(ui.ctx());
        }
        if self.candidates.is_some() {
            self.candidates_dialog(ui.ctx());
        }
        if self.help {
            help_overlay(ui.ctx(), &mut self.help);
        }
    }
}
