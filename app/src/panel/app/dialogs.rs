//! The dialogs: sign-in, the engineer PIN, thresholds, the model switch and the override
//! picker. Each takes the keyboard focus once and gives it back when it closes.

use egui::Ui;
use inspecta_pipeline::store::ReviewAction;
use inspecta_vision::model::manifest::check_thresholds;

use super::{ModelChoice, Panel, Thresholds};
use crate::panel::desk::Request;

impl Panel {
    pub(super) fn sign_in_dialog(&mut self, ctx: &egui::Context) {
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

    pub(super) fn pin_dialog(&mut self, ctx: &egui::Context) {
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

    pub(super) fn thresholds_window(&mut self, ctx: &egui::Context) {
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

    pub(super) fn model_dialog(&mut self, ctx: &egui::Context) {
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

    pub(super) fn ask_desk(&mut self, request: Request) {
        if let Err(why) = self.requests.send(request) {
            self.message = Some((why.into(), true));
        }
    }

    pub(super) fn picker_dialog(&mut self, ctx: &egui::Context) {
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

/// Gives an open dialog's text field the keyboard focus when no widget holds it. Asking
/// again every frame interrupts the input method each time, and on X11 that loop starves
/// the window of every key and mouse event. A dialog that closes surrenders the focus
/// instead, or the panel's first shortcut after it would be taken for typing.
fn focus_when_free(ui: &Ui, field: &egui::Response) {
    if ui.memory(|m| m.focused().is_none()) {
        field.request_focus();
    }
}
