//! The operator panel's state and screens. Everything slow happens on workers; this only
//! drains their events (within a time budget), draws, and sends review requests.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use egui::{Color32, RichText, TextureHandle, Ui};
use inspecta_pipeline::model::Model;
use inspecta_pipeline::model::manifest::check_thresholds;
use inspecta_pipeline::store::{Alarm, Kpis, NewReview, Review, ReviewAction};

use super::commands::{self, Command, OVERRIDE_HELP, SHORTCUTS};
use super::desk::{Event, Part, Request};
use super::review_labels;
use crate::service::Settings;

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
}

struct Shown {
    part: Part,
    texture: Option<TextureHandle>,
    heat_texture: Option<TextureHandle>,
    /// A review was sent and has not been answered yet.
    pending: bool,
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
}

/// The model an engineer is about to switch to (index into the station's choices).
#[derive(Debug, Clone, Copy)]
struct ModelChoice(usize);

#[derive(Debug, Default)]
struct Picker {
    label: usize,
    reason: String,
}

#[derive(Debug)]
pub struct Panel {
    setup: PanelSetup,
    events: Receiver<Event>,
    requests: Sender<Request>,
    history: VecDeque<Shown>,
    /// Uncertain parts nobody has labelled, oldest first (record ids).
    queue: VecDeque<i64>,
    /// The part under review; `None` follows the newest part.
    selected: Option<i64>,
    /// The part the live view froze on.
    paused: Option<i64>,
    operator: Option<String>,
    sign_in: String,
    /// The operator has entered the engineer PIN.
    engineer: bool,
    /// The engineer PIN being typed.
    pin_entry: Option<String>,
    thresholds: Option<Thresholds>,
    model_choice: Option<ModelChoice>,
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
    kpis: Kpis,
    /// The shift's latest process alarm, shown until the shift ends.
    alarm: Option<Alarm>,
    message: Option<(String, bool)>,
    source_ended: bool,
}

impl Panel {
    pub fn new(setup: PanelSetup, events: Receiver<Event>, requests: Sender<Request>) -> Self {
        let high_contrast = setup.high_contrast;
        let model = setup.settings.model();
        let labels = review_labels(&model);
        Self {
            setup,
            events,
            requests,
            history: VecDeque::new(),
            queue: VecDeque::new(),
            selected: None,
            paused: None,
            operator: None,
            sign_in: String::new(),
            engineer: false,
            pin_entry: None,
            thresholds: None,
            model_choice: None,
            model,
            labels,
            picker: None,
            help: false,
            heat_map_hidden: false,
            fullscreen: false,
            high_contrast,
            theme_applied: None,
            kpis: Kpis::default(),
            alarm: None,
            message: None,
            source_ended: false,
        }
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
            Event::Ended => self.source_ended = true,
            Event::Failed(message) => self.message = Some((message, true)),
            Event::SettingsChanged(Ok(summary)) => {
                self.model = self.setup.settings.model();
                self.labels = review_labels(&self.model);
                self.message = Some((summary, false));
            }
            Event::SettingsChanged(Err(reason)) => self.message = Some((reason, true)),
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
        self.history.push_back(Shown {
            part,
            texture: None,
            heat_texture: None,
            pending: false,
        });
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
                let was_queued = self.queue.contains(&id);
                self.queue.retain(|q| *q != id);
                if was_queued {
                    self.selected = self.queue.front().copied();
                }
            }
            Err(reason) => self.message = Some((format!("part {id}: {reason}"), true)),
        }
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
            Command::NextInQueue => self.selected = self.queue.front().copied(),
            Command::Previous => self.step_history(-1),
            Command::Next => self.step_history(1),
            Command::FollowLive => {
                let closed = self.picker.take().is_some()
                    | self.pin_entry.take().is_some()
                    | self.thresholds.take().is_some()
                    | self.model_choice.take().is_some()
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
                if self.setup.engineer_pin.is_some() {
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
                } else if self.setup.settings.choices().len() < 2 {
                    self.message = Some((
                        "no other model is configured ([model] alternatives)".into(),
                        true,
                    ));
                } else {
                    self.model_choice = Some(ModelChoice(0));
                }
            }
            Command::SignOut => {
                self.operator = None;
                self.engineer = false;
                self.thresholds = None;
                self.model_choice = None;
                self.sign_in.clear();
            }
        }
        None
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
        if self.requests.send(Request::Review { id, review }).is_ok() {
            shown.pending = true;
        } else {
            self.message = Some(("the review desk has stopped".into(), true));
        }
    }

    /// Draws the whole panel.
    pub fn ui(&mut self, ui: &mut Ui) {
        self.drain_events();
        if self.theme_applied != Some(self.high_contrast) {
            apply_theme(ui.ctx(), self.high_contrast);
            self.theme_applied = Some(self.high_contrast);
        }
        let dialog_open = self.picker.is_some()
            || self.pin_entry.is_some()
            || self.thresholds.is_some()
            || self.model_choice.is_some();
        if self.operator.is_some() && !dialog_open {
            for command in commands::pressed(ui.ctx()) {
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
        if self.help {
            help_overlay(ui.ctx(), &mut self.help);
        }
    }

    fn top_bar(&mut self, ui: &mut Ui) {
        egui::Panel::top("top").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading(&self.setup.station);
                let manifest = self.model.manifest();
                ui.label(format!("model {} {}", manifest.name, manifest.version));
                ui.separator();
                let mode = match (self.paused.is_some(), self.source_ended) {
                    (true, _) => RichText::new("PAUSED").color(Color32::YELLOW),
                    (false, true) => RichText::new("SOURCE ENDED"),
                    (false, false) => RichText::new("LIVE").color(Color32::LIGHT_GREEN),
                };
                ui.label(mode.strong());
                ui.separator();
                let queue = format!("Review queue: {}", self.queue.len());
                let queue = if self.queue.is_empty() {
                    RichText::new(queue)
                } else {
                    RichText::new(queue)
                        .color(Color32::from_rgb(255, 170, 0))
                        .strong()
                };
                ui.label(queue);
                if let Some(alarm) = &self.alarm {
                    ui.separator();
                    let at = alarm.raised_at.strftime("%H:%M");
                    ui.label(
                        RichText::new(format!("PROCESS ALARM {at}: {}", alarm.message))
                            .color(Color32::WHITE)
                            .background_color(Color32::from_rgb(200, 0, 0))
                            .strong(),
                    );
                }
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    ui.label("F1: help");
                    if let Some(name) = &self.operator {
                        ui.label(format!("Operator: {name}"));
                    }
                    if self.engineer {
                        ui.label(
                            RichText::new("ENGINEER")
                                .strong()
                                .color(Color32::LIGHT_BLUE),
                        );
                    }
                });
            });
            if let Some((message, error)) = &self.message {
                let text = RichText::new(message);
                ui.label(if *error {
                    text.color(Color32::LIGHT_RED)
                } else {
                    text
                });
            }
        });
    }

    fn part_view(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        let labels = self.labels.clone();
        let Some(id) = self.shown_id() else {
            ui.centered_and_justified(|ui| ui.heading("Waiting for the first part..."));
            return;
        };
        let Some(shown) = self.history.iter_mut().find(|s| s.part.record.id == id) else {
            return;
        };
        let record = &shown.part.record;
        let (text, colour) = banner(&record.label, record.class.as_deref());
        egui::Frame::new()
            .fill(colour)
            .inner_margin(12.0)
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.vertical_centered(|ui| {
                    ui.label(
                        RichText::new(text)
                            .size(56.0)
                            .strong()
                            .color(Color32::BLACK),
                    );
                });
            });
        let reviewed = record.review.as_ref().map_or(String::new(), |r| {
            format!("  ·  reviewed by {} ({})", r.reviewer, r.after)
        });
        let heat = match (&shown.part.heat_map, self.heat_map_hidden) {
            (None, _) => "",
            (Some(_), false) => "  ·  heat map shown (V hides)",
            (Some(_), true) => "  ·  heat map hidden (V shows)",
        };
        ui.label(
            RichText::new(format!(
                "part {}{}  ·  defect score {:.3}  ·  model said {}{}{}",
                record.id,
                record
                    .part_id
                    .as_ref()
                    .map_or(String::new(), |p| format!(" ({p})")),
                record.defect_score,
                record.class.as_deref().unwrap_or(&record.verdict),
                reviewed,
                heat
            ))
            .size(18.0),
        );
        let pending = shown.pending;
        let texture = shown.texture.get_or_insert_with(|| {
            ctx.load_texture(
                format!("part-{id}"),
                shown.part.image.clone(),
                egui::TextureOptions::LINEAR,
            )
        });
        let buttons = 64.0;
        let room = ui.available_size() - egui::vec2(0.0, buttons);
        let size = texture.size_vec2();
        let scale = (room.x / size.x).min(room.y / size.y).max(0.1);
        let response = ui.add(egui::Image::new((texture.id(), size * scale)));
        let region = inspected_region(response.rect, self.model.manifest());
        if let Some(heat) = shown
            .part
            .heat_map
            .as_ref()
            .filter(|_| !self.heat_map_hidden)
        {
            let overlay = shown.heat_texture.get_or_insert_with(|| {
                ctx.load_texture(
                    format!("heat-{id}"),
                    heat.clone(),
                    egui::TextureOptions::LINEAR,
                )
            });
            let whole = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
            ui.painter()
                .image(overlay.id(), region, whole, Color32::WHITE);
        }
        ui.painter().rect_stroke(
            region,
            0.0,
            egui::Stroke::new(2.0, Color32::from_rgb(0, 200, 255)),
            egui::StrokeKind::Inside,
        );
        ui.horizontal(|ui| {
            ui.add_enabled_ui(!pending && self.operator.is_some(), |ui| {
                if ui
                    .button(RichText::new("Confirm (Enter)").size(22.0))
                    .clicked()
                {
                    self.run(Command::Confirm);
                }
                for (n, label) in labels.iter().enumerate().take(9) {
                    let text = RichText::new(format!("{} {label}", n + 1)).size(22.0);
                    if ui.button(text).clicked() {
                        self.run(Command::OverrideTo(n));
                    }
                }
                if ui
                    .button(RichText::new("Override... (O)").size(22.0))
                    .clicked()
                {
                    self.run(Command::OpenPicker);
                }
            });
            if pending {
                ui.spinner();
            }
        });
    }

    fn history_strip(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        let shown = self.shown_id();
        let mut clicked = None;
        egui::ScrollArea::horizontal()
            .stick_to_right(true)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    for item in &mut self.history {
                        let record = &item.part.record;
                        let id = record.id;
                        let (_, colour) = banner(&record.label, record.class.as_deref());
                        let texture = item.texture.get_or_insert_with(|| {
                            ctx.load_texture(
                                format!("part-{id}"),
                                item.part.image.clone(),
                                egui::TextureOptions::LINEAR,
                            )
                        });
                        let image = egui::Image::new((texture.id(), egui::vec2(88.0, 88.0)));
                        let stroke = if Some(id) == shown { 5.0 } else { 3.0 };
                        let response = egui::Frame::new()
                            .stroke(egui::Stroke::new(stroke, colour))
                            .inner_margin(2.0)
                            .show(ui, |ui| {
                                ui.add(egui::Button::image_and_text(
                                    image,
                                    format!("{id} {}", record.label),
                                ))
                            })
                            .inner;
                        if response.clicked() {
                            clicked = Some(id);
                        }
                    }
                });
            });
        if clicked.is_some() {
            self.selected = clicked;
        }
    }

    fn kpi_panel(&self, ui: &mut Ui) {
        let k = &self.kpis;
        ui.heading(format!("Shift since {}", self.setup.shift));
        let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.1} %", v * 100.0));
        egui::Grid::new("kpi-grid").num_columns(2).show(ui, |ui| {
            let rows = [
                ("Parts", k.parts.to_string()),
                ("Good", k.good.to_string()),
                ("First-pass yield", pct(k.first_pass_yield())),
                ("Uncertain rate", pct(k.uncertain_rate())),
                ("Override rate", pct(k.override_rate())),
                ("False-reject rate", pct(k.false_reject_rate())),
                ("Escape estimate", pct(k.escape_estimate())),
                (
                    "Parts / minute",
                    k.parts_per_minute()
                        .map_or("-".into(), |v| format!("{v:.1}")),
                ),
                ("Awaiting review", k.awaiting_review.to_string()),
            ];
            for (name, value) in rows {
                ui.label(RichText::new(name).size(18.0));
                ui.label(RichText::new(value).size(22.0).strong());
                ui.end_row();
            }
        });
        ui.separator();
        ui.label(RichText::new("Defects by class").size(18.0));
        pareto(ui, &k.defects);
    }

    fn sign_in_dialog(&mut self, ctx: &egui::Context) {
        egui::Modal::new(egui::Id::unique("inspecta-sign-in")).show(ctx, |ui| {
            ui.heading("Operator sign-in");
            ui.label("Name or badge id");
            let field =
                ui.add(egui::TextEdit::singleline(&mut self.sign_in).hint_text("name or badge"));
            let entered =
                ui.button("Sign in").clicked() || ui.input(|i| i.key_pressed(egui::Key::Enter));
            let name = self.sign_in.trim();
            if entered && !name.is_empty() {
                tracing::info!(operator = %name, "operator signed in");
                self.operator = Some(name.to_owned());
                field.surrender_focus();
            } else {
                focus_when_free(ui, &field);
            }
        });
    }

    fn pin_dialog(&mut self, ctx: &egui::Context) {
        let Some(mut pin) = self.pin_entry.take() else {
            return;
        };
        let mut entered = false;
        egui::Modal::new(egui::Id::unique("inspecta-engineer")).show(ctx, |ui| {
            ui.heading("Engineer sign-in");
            ui.label("PIN");
            let field = ui.add(egui::TextEdit::singleline(&mut pin).password(true));
            entered = ui.input(|i| i.key_pressed(egui::Key::Enter)) || ui.button("Enter").clicked();
            if entered {
                field.surrender_focus();
            } else {
                focus_when_free(ui, &field);
            }
        });
        if !entered {
            self.pin_entry = Some(pin);
            return;
        }
        let expected = self.setup.engineer_pin.as_deref().unwrap_or_default();
        let matches = !expected.is_empty()
            && bool::from(subtle::ConstantTimeEq::ct_eq(
                pin.as_bytes(),
                expected.as_bytes(),
            ));
        let operator = self.operator.clone().unwrap_or_default();
        if matches {
            tracing::info!(%operator, "engineer role granted");
            self.engineer = true;
            self.message = Some((format!("{operator} has the engineer role"), false));
        } else {
            tracing::warn!(%operator, "wrong engineer PIN");
            self.message = Some(("wrong engineer PIN".into(), true));
        }
    }

    fn thresholds_window(&mut self, ctx: &egui::Context) {
        let Some(mut edit) = self.thresholds.take() else {
            return;
        };
        let mut outcome = None;
        egui::Modal::new(egui::Id::unique("inspecta-thresholds")).show(ctx, |ui| {
            ui.heading("Decision thresholds");
            ui.add(egui::Slider::new(&mut edit.defect, 0.0..=1.0).text("reject threshold"));
            ui.add(egui::Slider::new(&mut edit.band[0], 0.0..=1.0).text("uncertain from"));
            ui.add(egui::Slider::new(&mut edit.band[1], 0.0..=1.0).text("uncertain to"));
            ui.label("Parts scoring inside the uncertain band go to the operator.");
            outcome = save_or_cancel(ui, "Apply");
        });
        match outcome {
            None => self.thresholds = Some(edit),
            Some(false) => {}
            Some(true) => self.apply_thresholds(edit),
        }
    }

    /// Checks the thresholds here (a bad pair keeps the dialog open) and has the desk put
    /// them in charge and into the settings log.
    fn apply_thresholds(&mut self, edit: Thresholds) {
        if let Err(reason) = check_thresholds(edit.defect, edit.band) {
            self.message = Some((reason, true));
            self.thresholds = Some(edit);
            return;
        }
        self.ask_desk(Request::SetThresholds {
            who: self.operator.clone().unwrap_or_default(),
            threshold: edit.defect,
            band: edit.band,
        });
    }

    fn model_dialog(&mut self, ctx: &egui::Context) {
        let Some(ModelChoice(mut chosen)) = self.model_choice.take() else {
            return;
        };
        let choices = self.setup.settings.choices();
        let mut outcome = None;
        egui::Modal::new(egui::Id::unique("inspecta-model")).show(ctx, |ui| {
            ui.heading("Switch the model");
            let manifest = self.model.manifest();
            ui.label(format!(
                "Judging now: {} {}",
                manifest.name, manifest.version
            ));
            for (n, path) in choices.iter().enumerate() {
                ui.radio_value(&mut chosen, n, path.display().to_string());
            }
            ui.label("The next part is judged by the chosen model; nothing restarts.");
            outcome = save_or_cancel(ui, "Switch");
        });
        match outcome {
            None => self.model_choice = Some(ModelChoice(chosen)),
            Some(false) => {}
            Some(true) => {
                let Some(path) = choices.get(chosen).cloned() else {
                    return;
                };
                self.message = Some((format!("loading {}", path.display()), false));
                self.ask_desk(Request::SwitchModel {
                    who: self.operator.clone().unwrap_or_default(),
                    path,
                });
            }
        }
    }

    fn ask_desk(&mut self, request: Request) {
        if self.requests.send(request).is_err() {
            self.message = Some(("the review desk has stopped".into(), true));
        }
    }

    fn picker_dialog(&mut self, ctx: &egui::Context) {
        let Some(mut picker) = self.picker.take() else {
            return;
        };
        let labels = &self.labels;
        let mut outcome = None;
        egui::Modal::new(egui::Id::unique("inspecta-override")).show(ctx, |ui| {
            ui.heading("Override: the part really is");
            for (n, label) in labels.iter().enumerate() {
                ui.radio_value(&mut picker.label, n, format!("{} {label}", n + 1));
            }
            ui.label("Reason");
            for reason in &self.setup.reasons {
                if ui
                    .selectable_label(picker.reason == *reason, reason)
                    .clicked()
                {
                    picker.reason.clone_from(reason);
                }
            }
            ui.text_edit_singleline(&mut picker.reason);
            outcome = save_or_cancel(ui, "Save override");
        });
        match outcome {
            None => self.picker = Some(picker),
            Some(false) => {}
            Some(true) => {
                let reason = picker.reason.trim().to_owned();
                let reason = (!reason.is_empty()).then_some(reason);
                if let Some(label) = self.labels.get(picker.label).cloned() {
                    self.review(ReviewAction::Override, Some(label), reason);
                }
            }
        }
    }
}

/// The part of the shown image the model looks at: all of it when the model stretches the
/// frame, the centred crop of the model's aspect ratio when it crops.
fn inspected_region(
    image: egui::Rect,
    manifest: &inspecta_pipeline::model::manifest::Manifest,
) -> egui::Rect {
    use inspecta_pipeline::model::manifest::ResizeMode;
    if manifest.input.resize == ResizeMode::Stretch {
        return image;
    }
    let aspect = manifest.input.width as f32 / manifest.input.height as f32;
    let size = if image.width() / image.height() > aspect {
        egui::vec2(image.height() * aspect, image.height())
    } else {
        egui::vec2(image.width(), image.width() / aspect)
    };
    egui::Rect::from_center_size(image.center(), size)
}

/// A dialog's closing buttons: `Some(true)` saved, `Some(false)` cancelled, `None` still open.
fn save_or_cancel(ui: &mut Ui, save: &str) -> Option<bool> {
    ui.horizontal(|ui| {
        if ui.button(save).clicked() {
            Some(true)
        } else if ui.button("Cancel (Esc)").clicked() {
            Some(false)
        } else {
            None
        }
    })
    .inner
}

/// Banner text and colour for a part's current label: colours chosen to read from 2 m.
fn banner(label: &str, class: Option<&str>) -> (String, Color32) {
    match label {
        "good" => ("GOOD".into(), Color32::from_rgb(40, 200, 80)),
        "uncertain" => ("UNCERTAIN".into(), Color32::from_rgb(255, 190, 0)),
        other => (
            format!("DEFECT: {}", class.filter(|c| *c == other).unwrap_or(other)).to_uppercase(),
            Color32::from_rgb(235, 50, 50),
        ),
    }
}

fn pareto(ui: &mut Ui, defects: &[(String, u64)]) {
    let most = defects.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    for (class, count) in defects {
        ui.horizontal(|ui| {
            ui.add_sized([110.0, 20.0], egui::Label::new(class));
            let width = 160.0 * *count as f32 / most as f32;
            let (rect, _) =
                ui.allocate_exact_size(egui::vec2(width.max(2.0), 18.0), egui::Sense::hover());
            ui.painter()
                .rect_filled(rect, 2.0, Color32::from_rgb(235, 50, 50));
            ui.label(count.to_string());
        });
    }
}

fn help_overlay(ctx: &egui::Context, open: &mut bool) {
    egui::Window::new("Keyboard shortcuts")
        .open(open)
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
        .show(ctx, |ui| {
            egui::Grid::new("help-grid").num_columns(2).show(ui, |ui| {
                for (keys, does) in SHORTCUTS
                    .iter()
                    .map(|s| (s.keys, s.does))
                    .chain(std::iter::once(OVERRIDE_HELP))
                {
                    ui.label(RichText::new(keys).strong().monospace());
                    ui.label(does);
                    ui.end_row();
                }
            });
        });
}

/// Writes a screenshot as PNG on a thread of its own (encoding takes longer than a frame).
fn save_screenshot(dir: &std::path::Path, image: &egui::ColorImage) {
    let path = dir.join(format!(
        "panel-{}.png",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S%.3fZ")
    ));
    let (w, h) = (image.size[0] as u32, image.size[1] as u32);
    let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    let written = std::thread::Builder::new()
        .name("screenshot".into())
        .spawn(move || {
            let saved = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    image::save_buffer(&path, &rgba, w, h, image::ExtendedColorType::Rgba8)
                        .map_err(|e| e.to_string())
                });
            match saved {
                Ok(()) => tracing::info!(path = %path.display(), "screenshot saved"),
                Err(e) => tracing::error!(path = %path.display(), "screenshot not saved: {e}"),
            }
        });
    if let Err(e) = written {
        tracing::error!("cannot start the screenshot writer: {e}");
    }
}

/// Gives an open dialog's text field the keyboard focus when no widget holds it. Asking
/// again every frame interrupts the input method each time, and on X11 that loop starves
/// the window of every key and mouse event. A dialog that closes surrenders the focus
/// instead, or the panel's first shortcut after it would be taken for typing.
fn focus_when_free(ui: &Ui, field: &egui::Response) {
    if ui.memory(|m| m.focused().is_none()) {
        field.request_focus();
    }
}

fn apply_theme(ctx: &egui::Context, high_contrast: bool) {
    let mut visuals = egui::Visuals::dark();
    if high_contrast {
        visuals.override_text_color = Some(Color32::WHITE);
        visuals.panel_fill = Color32::BLACK;
        visuals.window_fill = Color32::BLACK;
        visuals.widgets.noninteractive.fg_stroke = egui::Stroke::new(2.0, Color32::WHITE);
    }
    ctx.set_visuals(visuals);
}

#[cfg(test)]
mod tests {
    use super::*;
    use inspecta_pipeline::model::manifest::{Manifest, ResizeMode};

    #[test]
    fn the_inspected_region_follows_the_models_resize_mode() {
        let mut manifest = Manifest::from_toml(include_str!("../../../models/casting/model.toml"))
            .expect("the bundled manifest");
        let wide = egui::Rect::from_min_size(egui::pos2(0.0, 0.0), egui::vec2(400.0, 200.0));
        assert_eq!(inspected_region(wide, &manifest), wide);
        manifest.input.resize = ResizeMode::CenterCrop;
        let crop = inspected_region(wide, &manifest);
        assert_eq!(
            crop.size(),
            egui::vec2(200.0, 200.0),
            "224x224 input: a centred square"
        );
        assert_eq!(crop.center(), wide.center());
    }
}
