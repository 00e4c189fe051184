//! The live screen: the top bar, the part with its verdict banner, heat map and review
//! buttons, and the history strip.

use egui::{Color32, RichText, TextureHandle, Ui};
use inspecta_pipeline::store::Record;
use inspecta_vision::inspection::UncertainReason;

use super::{Panel, Shown};
use crate::panel::commands::Command;

impl Panel {
    pub(super) fn top_bar(&mut self, ui: &mut Ui) {
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

    pub(super) fn part_view(&mut self, ui: &mut Ui) {
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
        let (text, colour) = banner(record);
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
        let picture = if shown.part.image.is_some() {
            ""
        } else {
            "  ·  picture not kept (the panel was behind; the record is stored)"
        };
        ui.label(
            RichText::new(format!(
                "part {}{}  ·  defect score {:.3}  ·  model said {}{}{}{}",
                record.id,
                record
                    .part_id
                    .as_ref()
                    .map_or(String::new(), |p| format!(" ({p})")),
                record.defect_score,
                record.class.as_deref().unwrap_or(&record.verdict),
                reviewed,
                heat,
                picture
            ))
            .size(18.0),
        );
        let pending = shown.pending;
        let texture = part_texture(&ctx, shown);
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

    pub(super) fn history_strip(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        let shown = self.shown_id();
        let mut clicked = None;
        egui::ScrollArea::horizontal()
            .stick_to_right(true)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    for item in &mut self.history {
                        let texture = part_texture(&ctx, item).id();
                        let record = &item.part.record;
                        let id = record.id;
                        let (_, colour) = banner(record);
                        let image = egui::Image::new((texture, egui::vec2(88.0, 88.0)));
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
}

/// The part's picture as a texture, uploaded the first time it is drawn; a grey stand-in
/// when the picture was dropped on the way.
fn part_texture<'a>(ctx: &egui::Context, shown: &'a mut Shown) -> &'a TextureHandle {
    let id = shown.part.record.id;
    let image = &shown.part.image;
    shown.texture.get_or_insert_with(|| {
        let picture = image
            .clone()
            .unwrap_or_else(|| egui::ColorImage::filled([64, 48], Color32::DARK_GRAY));
        ctx.load_texture(format!("part-{id}"), picture, egui::TextureOptions::LINEAR)
    })
}

/// The part of the shown image the model looks at: all of it when the model stretches the
/// frame, the centred crop of the model's aspect ratio when it crops.
fn inspected_region(
    image: egui::Rect,
    manifest: &inspecta_vision::model::manifest::Manifest,
) -> egui::Rect {
    use inspecta_vision::model::manifest::ResizeMode;
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

/// Banner text and colour for a part's current label: colours chosen to read from 2 m.
/// An uncertain part says why, so the inspector checks the camera when nothing is in view.
pub(super) fn banner(record: &Record) -> (String, Color32) {
    let class = record.class.as_deref();
    match record.label.as_str() {
        "good" => ("GOOD".into(), Color32::from_rgb(40, 200, 80)),
        "uncertain" => {
            let why = record
                .reason
                .as_deref()
                .and_then(UncertainReason::from_name)
                .filter(|r| *r != UncertainReason::LowConfidence)
                .map_or(String::new(), |r| format!(": {}", r.describe()));
            (
                format!("UNCERTAIN{why}").to_uppercase(),
                Color32::from_rgb(255, 190, 0),
            )
        }
        other => (
            format!("DEFECT: {}", class.filter(|c| *c == other).unwrap_or(other)).to_uppercase(),
            Color32::from_rgb(235, 50, 50),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inspecta_vision::model::manifest::{Manifest, ResizeMode};

    #[test]
    fn the_inspected_region_follows_the_models_resize_mode() {
        let mut manifest =
            Manifest::from_toml(include_str!("../../../../models/casting/model.toml"))
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
