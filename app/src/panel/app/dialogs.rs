//! The dialogs: sign-in, the engineer PIN, thresholds, the model switch and the override
//! picker. Each takes the keyboard focus once and gives it back when it closes, and each is
//! complete from the keyboard: Up/Down (or a digit) choose, Enter saves, Esc cancels.

use egui::{Key, Modifiers, RichText, Ui};
use inspecta_pipeline::store::ReviewAction;
use inspecta_vision::model::manifest::check_thresholds;

use super::{Panel, Thresholds};
use crate::panel::commands::DIGITS;
use crate::panel::desk::Request;

/// Step of Left/Right on a threshold; Shift takes five.
const NUDGE: f32 = 0.01;

impl Panel {
    pub(super) fn sign_in_dialog(&mut self, ctx: &egui::Context) {
        let named = self.setup.named_users;
        egui::Modal::new(egui::Id::unique("inspecta-sign-in")).show(ctx, |ui| {
            ui.heading("Operator sign-in");
            ui.label("Name or badge id");
            let field =
                ui.add(egui::TextEdit::singleline(&mut self.sign_in).hint_text("name or badge"));
            let pin = named.then(|| {
                ui.label("PIN");
                ui.add(
                    egui::TextEdit::singleline(&mut self.sign_in_pin)
                        .password(true)
                        .hint_text("PIN"),
                )
            });
            let entered = ui.button("Sign in").clicked() || ui.input(|i| i.key_pressed(Key::Enter));
            let name = self.sign_in.trim().to_owned();
            if self.checking_sign_in {
                ui.spinner();
            } else if entered && !name.is_empty() && !named {
                tracing::info!(operator = %name, "operator signed in");
                self.operator = Some(name);
                field.surrender_focus();
            } else if entered && !name.is_empty() && !self.sign_in_pin.is_empty() {
                // The hash check takes a while on purpose: the desk does it.
                let pin = std::mem::take(&mut self.sign_in_pin);
                self.checking_sign_in = self.ask_desk(Request::SignIn { name, pin });
            } else if entered && !name.is_empty() {
                if let Some(pin) = &pin {
                    pin.request_focus();
                }
            } else {
                // A name is there (typed, or kept after a refused PIN): the PIN is next.
                let next = match &pin {
                    Some(pin) if !name.is_empty() => pin,
                    _ => &field,
                };
                claim_focus(ui, next.id);
            }
        });
    }

    pub(super) fn pin_dialog(&mut self, ctx: &egui::Context) {
        let Some(mut pin) = self.pin_entry.take() else {
            return;
        };
        let mut entered = false;
        egui::Modal::new(egui::Id::unique("inspecta-engineer")).show(ctx, |ui| {
            ui.heading("Engineer sign-in");
            ui.label("PIN");
            let id = egui::Id::unique("inspecta-engineer-pin");
            claim_focus(ui, id);
            let field = ui.add(egui::TextEdit::singleline(&mut pin).password(true).id(id));
            entered = ui.input(|i| i.key_pressed(Key::Enter)) || ui.button("Enter").clicked();
            if entered {
                field.surrender_focus();
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

    pub(super) fn thresholds_window(&mut self, ctx: &egui::Context) {
        let Some(mut edit) = self.thresholds.take() else {
            return;
        };
        let mut outcome = None;
        egui::Modal::new(egui::Id::unique("inspecta-thresholds")).show(ctx, |ui| {
            choose_with_keys(ui, &mut edit.row, 3, false);
            nudge_with_keys(ui, edit.value(edit.row));
            ui.heading("Decision thresholds");
            let rows = ["reject threshold", "uncertain from", "uncertain to"];
            for (n, name) in rows.into_iter().enumerate() {
                let name = if n == edit.row {
                    RichText::new(name).strong().underline()
                } else {
                    RichText::new(name)
                };
                ui.add(egui::Slider::new(edit.value(n), 0.0..=1.0).text(name));
            }
            ui.label("Parts scoring inside the uncertain band go to the operator.");
            keys_hint(
                ui,
                "Up/Down choose, Left/Right adjust (Shift: 0.05), Enter applies",
            );
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

    /// Recipes by name when the station has them, else the model paths; a recipe for
    /// another product takes a second Enter.
    pub(super) fn model_dialog(&mut self, ctx: &egui::Context) {
        let Some(mut choice) = self.model_choice.take() else {
            return;
        };
        let settings = self.setup.settings.clone();
        let recipes = settings.recipes();
        let entries: Vec<String> = if recipes.is_empty() {
            settings
                .choices()
                .iter()
                .map(|p| p.display().to_string())
                .collect()
        } else {
            recipes
                .iter()
                .map(|r| format!("{} ({}): {}", r.name, r.product, r.model.display()))
                .collect()
        };
        let before = choice.chosen;
        let mut outcome = None;
        egui::Modal::new(egui::Id::unique("inspecta-model")).show(ctx, |ui| {
            choose_with_keys(ui, &mut choice.chosen, entries.len(), true);
            ui.heading(if recipes.is_empty() {
                "Switch the model"
            } else {
                "Switch the recipe"
            });
            let manifest = self.model.manifest();
            let recipe = settings.recipe().map_or(String::new(), |r| {
                format!(", recipe {} ({})", r.name, r.product)
            });
            ui.label(format!(
                "Judging now: {} {}{recipe}",
                manifest.name, manifest.version
            ));
            for (n, entry) in entries.iter().enumerate() {
                ui.radio_value(&mut choice.chosen, n, format!("{} {entry}", n + 1));
            }
            if choice.confirming
                && let Some((from, to)) = settings.product_change(choice.chosen)
            {
                ui.label(
                    RichText::new(format!(
                        "This recipe is for {to}; the line runs {from}. Enter again to switch."
                    ))
                    .strong()
                    .color(egui::Color32::from_rgb(255, 170, 0)),
                );
            }
            ui.label("The next part is judged by the chosen model; nothing restarts.");
            keys_hint(ui, "Up/Down or 1-9 choose, Enter switches");
            outcome = save_or_cancel(ui, "Switch");
        });
        if choice.chosen != before {
            choice.confirming = false;
        }
        let who = self.operator.clone().unwrap_or_default();
        match outcome {
            None => self.model_choice = Some(choice),
            Some(false) => {}
            Some(true) if recipes.is_empty() => {
                let Some(path) = settings.choices().get(choice.chosen).cloned() else {
                    return;
                };
                self.message = Some((format!("loading {}", path.display()), false));
                self.ask_desk(Request::SwitchModel { who, path });
            }
            Some(true) => {
                let other_product = settings.product_change(choice.chosen).is_some();
                if other_product && !choice.confirming {
                    choice.confirming = true;
                    self.model_choice = Some(choice);
                    return;
                }
                self.message = Some((format!("switching to {}", entries[choice.chosen]), false));
                self.ask_desk(Request::SwitchRecipe {
                    who,
                    recipe: choice.chosen,
                    confirmed: other_product,
                });
            }
        }
    }

    /// The candidate models with what an engineer decides on (their comparison with the
    /// running model, reviews, shadow agreement); Enter promotes the chosen one.
    pub(super) fn candidates_dialog(&mut self, ctx: &egui::Context) {
        let Some(mut choice) = self.candidates.take() else {
            return;
        };
        let mut outcome = None;
        egui::Modal::new(egui::Id::unique("inspecta-candidates")).show(ctx, |ui| {
            ui.heading("Candidate models");
            let manifest = self.model.manifest();
            ui.label(format!("Judging now: {} {}", manifest.name, manifest.version));
            match &choice.list {
                None => {
                    ui.label("Reading the candidates folder...");
                    keys_hint(ui, "Please wait");
                }
                Some(list) if list.is_empty() => {
                    ui.label("No candidate yet: train one from the reviews into the candidates folder ([learning] candidates), with its comparison in compare/.");
                    keys_hint(ui, "Nothing to promote");
                }
                Some(list) => {
                    choose_with_keys(ui, &mut choice.chosen, list.len(), true);
                    for (n, c) in list.iter().enumerate() {
                        ui.radio_value(&mut choice.chosen, n, format!("{} {}", n + 1, candidate_title(c)));
                        ui.label(RichText::new(candidate_figures(c)).weak());
                    }
                    keys_hint(ui, "Up/Down or 1-9 choose, Enter promotes");
                    outcome = save_or_cancel(ui, "Promote");
                }
            }
        });
        let chosen = choice
            .list
            .as_ref()
            .and_then(|l| l.get(choice.chosen))
            .map(|c| c.id.clone());
        match (outcome, chosen) {
            (Some(true), Some(id)) => {
                let who = self.operator.clone().unwrap_or_default();
                self.message = Some((format!("promoting candidate {id}"), false));
                self.ask_desk(Request::Promote { who, id });
            }
            (Some(_), _) => {}
            (None, _) => self.candidates = Some(choice),
        }
    }

    /// Hands `request` to the desk; false (and the operator told why) when it cannot.
    pub(super) fn ask_desk(&mut self, request: Request) -> bool {
        match self.requests.send(request) {
            Ok(()) => true,
            Err(why) => {
                self.message = Some((why.into(), true));
                false
            }
        }
    }

    pub(super) fn picker_dialog(&mut self, ctx: &egui::Context) {
        let Some(mut picker) = self.picker.take() else {
            return;
        };
        let labels = &self.labels;
        let mut outcome = None;
        let reasons = &self.setup.reasons;
        egui::Modal::new(egui::Id::unique("inspecta-override")).show(ctx, |ui| {
            // Digits pick the label until a reason is being typed; then they are text.
            choose_with_keys(
                ui,
                &mut picker.label,
                labels.len(),
                picker.reason.is_empty(),
            );
            ui.heading("Override: the part really is");
            for (n, label) in labels.iter().enumerate() {
                ui.radio_value(&mut picker.label, n, format!("{} {label}", n + 1));
            }
            ui.label("Reason (type it, or the start of a reason code)");
            for reason in reasons {
                if ui
                    .selectable_label(picker.reason == *reason, reason)
                    .clicked()
                {
                    picker.reason.clone_from(reason);
                }
            }
            let id = egui::Id::unique("inspecta-override-reason");
            claim_focus(ui, id);
            let field = ui.add(
                egui::TextEdit::singleline(&mut picker.reason)
                    .hint_text("reason (optional)")
                    .id(id),
            );
            let label = labels.get(picker.label).map_or("", String::as_str);
            let reason = completed_reason(&picker.reason, reasons);
            keys_hint(
                ui,
                &format!(
                    "Up/Down or 1-9 choose, Enter saves: {label}{}",
                    reason.map_or(String::new(), |r| format!(", reason {r}"))
                ),
            );
            outcome = save_or_cancel(ui, "Save override");
            if outcome == Some(true) {
                field.surrender_focus();
            }
        });
        match outcome {
            None => self.picker = Some(picker),
            Some(false) => {}
            Some(true) => {
                let reason = completed_reason(&picker.reason, &self.setup.reasons);
                if let Some(label) = self.labels.get(picker.label).cloned() {
                    self.review(ReviewAction::Override, Some(label), reason);
                }
            }
        }
    }
}

/// The reason to store: the one reason code the typed text starts (ignoring case), else
/// the text itself; None when nothing was typed.
fn completed_reason(typed: &str, codes: &[String]) -> Option<String> {
    let typed = typed.trim();
    if typed.is_empty() {
        return None;
    }
    let lower = typed.to_lowercase();
    let mut matching = codes
        .iter()
        .filter(|c| c.to_lowercase().starts_with(&lower));
    match (matching.next(), matching.next()) {
        (Some(only), None) => Some(only.clone()),
        _ => Some(typed.to_owned()),
    }
}

/// Up/Down move `chosen` within `0..count`; with `digits`, 1-9 pick directly (and are not
/// typed into a text field).
fn choose_with_keys(ui: &mut Ui, chosen: &mut usize, count: usize, digits: bool) {
    if count == 0 {
        return;
    }
    ui.input_mut(|i| {
        if i.consume_key(Modifiers::NONE, Key::ArrowDown) {
            *chosen = (*chosen + 1).min(count - 1);
        }
        if i.consume_key(Modifiers::NONE, Key::ArrowUp) {
            *chosen = chosen.saturating_sub(1);
        }
        if digits {
            for (n, key) in DIGITS.iter().enumerate().take(count) {
                if i.consume_key(Modifiers::NONE, *key) {
                    *chosen = n;
                }
            }
            i.events.retain(
                |e| !matches!(e, egui::Event::Text(t) if t.chars().all(|c| c.is_ascii_digit())),
            );
        }
    });
}

/// Left/Right change `value` by [`NUDGE`], five times that with Shift.
fn nudge_with_keys(ui: &mut Ui, value: &mut f32) {
    ui.input_mut(|i| {
        for (modifiers, step) in [(Modifiers::NONE, NUDGE), (Modifiers::SHIFT, 5.0 * NUDGE)] {
            if i.consume_key(modifiers, Key::ArrowRight) {
                *value += step;
            }
            if i.consume_key(modifiers, Key::ArrowLeft) {
                *value -= step;
            }
        }
    });
    *value = (*value * 1000.0).round() / 1000.0;
    *value = value.clamp(0.0, 1.0);
}

fn keys_hint(ui: &mut Ui, text: &str) {
    ui.label(RichText::new(format!("{text}, Esc cancels")).weak());
}

/// A dialog's closing buttons and keys: `Some(true)` saved (the button or Enter),
/// `Some(false)` cancelled, `None` still open.
fn save_or_cancel(ui: &mut Ui, save: &str) -> Option<bool> {
    let enter = ui.input(|i| i.key_pressed(Key::Enter));
    ui.horizontal(|ui| {
        if ui.button(save).clicked() || enter {
            Some(true)
        } else if ui.button("Cancel (Esc)").clicked() {
            Some(false)
        } else {
            None
        }
    })
    .inner
}

/// Gives an open dialog's text field the keyboard focus when no widget holds it. Asking
/// again every frame interrupts the input method each time, and on X11 that loop starves
/// the window of every key and mouse event. A dialog that closes surrenders the focus
/// instead, or the panel's first shortcut after it would be taken for typing.
/// Gives `id` the keyboard unless another widget has it. Called before the field is added,
/// the field takes the keys typed in the very frame its dialog opened.
fn claim_focus(ui: &Ui, id: egui::Id) {
    if ui.memory(|m| m.focused().is_none()) {
        ui.memory_mut(|m| m.request_focus(id));
    }
}

fn candidate_title(c: &crate::service::candidates::Candidate) -> String {
    let promoted = c.promoted.as_ref().map_or(String::new(), |p| {
        format!(" (promoted by {} {})", p.who, p.at)
    });
    format!("{}: {} {}{promoted}", c.id, c.name, c.version)
}

/// One line of evidence: the comparison's verdict, its paired test, reviews and shadow.
fn candidate_figures(c: &crate::service::candidates::Candidate) -> String {
    let mut parts = Vec::new();
    match &c.comparison {
        Some(k) => {
            let against = if c.compared_with_running {
                String::new()
            } else {
                format!(" (against {}, not the running model)", k.a)
            };
            parts.push(format!(
                "{}; McNemar p {:.3}{against}",
                k.reason, k.mcnemar_p
            ));
        }
        None => parts.push("no comparison yet".into()),
    }
    if let Some(n) = c.reviews {
        parts.push(format!("{n} reviews"));
    }
    if let Some(s) = &c.shadow {
        parts.push(format!(
            "shadow: {} of {} parts disagreed",
            s.disagreements, s.judged
        ));
    }
    parts.join("  ·  ")
}
