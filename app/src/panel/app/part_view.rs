//! The live screen: the top bar, the part with its verdict banner, heat map and review
//! buttons, and the history strip.

use egui::{Color32, RichText, TextureHandle, Ui};
use inspecta_pipeline::store::Record;
use inspecta_vision::inspection::UncertainReason;
use inspecta_vision::overlay::{OUTLINE_RGB, legend};

use super::{HeatDrawing, Panel, Shown, line, score_bar};
use crate::panel::pictures::heat_overlay;

/// Wider than tall by this much, the verdict goes beside the picture.
const WIDE: f32 = 1.3;
/// The least width of the verdict column beside the picture.
const VERDICT_COLUMN: f32 = 320.0;
/// Height kept under the picture for the review buttons when they form a row.
const BUTTON_ROW: f32 = 56.0;
/// Height kept under the picture for the heat map's legend.
const LEGEND_ROW: f32 = 28.0;
use crate::panel::commands::Command;

impl Panel {
    pub(super) fn top_bar(&mut self, ui: &mut Ui) {
        egui::Panel::top("top").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading(&self.setup.station);
                let manifest = self.model.manifest();
                ui.label(format!("model {} {}", manifest.name, manifest.version));
                ui.separator();
                ui.label(line::mode(&self.line, self.paused.is_some()));
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
                if !self.asked.is_empty() {
                    ui.label(
                        RichText::new(format!("Please review: {}", self.asked.len()))
                            .color(Color32::from_rgb(120, 190, 255)),
                    );
                }
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

    /// The part fills the room it has: beside its verdict when the screen is wide, under
    /// it when it is tall.
    pub(super) fn part_view(&mut self, ui: &mut Ui) {
        line::line_banner(ui, &self.line);
        let Some(id) = self.shown_id() else {
            ui.centered_and_justified(|ui| ui.heading("Waiting for the first part..."));
            return;
        };
        let room = ui.available_size();
        if room.x > room.y * WIDE {
            let column = (room.x - room.y).max(VERDICT_COLUMN);
            let picture = egui::vec2(room.x - column - ui.spacing().item_spacing.x, room.y);
            ui.horizontal_top(|ui| {
                ui.allocate_ui(picture, |ui| self.picture(ui, id, picture));
                ui.allocate_ui(egui::vec2(column, room.y), |ui| {
                    ui.vertical(|ui| {
                        self.verdict(ui, id);
                        ui.add_space(12.0);
                        self.review_buttons(ui, id, true);
                    });
                });
            });
        } else {
            self.verdict(ui, id);
            let picture = ui.available_size() - egui::vec2(0.0, BUTTON_ROW);
            self.picture(ui, id, picture);
            ui.horizontal_wrapped(|ui| self.review_buttons(ui, id, false));
        }
    }

    /// The verdict banner, the score against the thresholds, and what is known of the part.
    fn verdict(&self, ui: &mut Ui, id: i64) {
        let Some(shown) = self.history.iter().find(|s| s.part.record.id == id) else {
            return;
        };
        let record = &shown.part.record;
        let (text, colour) = banner(record, &self.labels);
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
        if self.is_asked(id) {
            ui.label(
                RichText::new("Please review: helps the next model (U: next)")
                    .size(20.0)
                    .strong()
                    .color(Color32::from_rgb(120, 190, 255)),
            );
        }
        let rule = self.model.rule();
        if rule.has_good_label() {
            score_bar::show(
                ui,
                record.defect_score as f32,
                rule.defect_threshold(),
                rule.uncertain_band(),
            );
        }
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
    }

    /// The part's picture scaled into `room`, with the model's region and heat map on it.
    fn picture(&mut self, ui: &mut Ui, id: i64, room: egui::Vec2) {
        let ctx = ui.ctx().clone();
        let Some(shown) = self.history.iter_mut().find(|s| s.part.record.id == id) else {
            return;
        };
        let heat_shown = shown.part.heat_map.is_some() && !self.heat_map_hidden;
        // The legend's row comes out of the picture's room.
        let room = room - egui::vec2(0.0, if heat_shown { LEGEND_ROW } else { 0.0 });
        let texture = part_texture(&ctx, shown);
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
            let level = self.model.rule().flag_level();
            let drawing = match shown.heat.take() {
                Some(drawing) if drawing.level == level => drawing,
                _ => {
                    let (colours, outline) = heat_overlay(heat, level);
                    let texture = ctx.load_texture(
                        format!("heat-{id}"),
                        colours,
                        egui::TextureOptions::LINEAR,
                    );
                    HeatDrawing {
                        level,
                        texture,
                        outline,
                    }
                }
            };
            let whole = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
            let painter = ui.painter();
            painter.image(drawing.texture.id(), region, whole, Color32::WHITE);
            let at =
                |[x, y]: [f32; 2]| region.min + egui::vec2(x * region.width(), y * region.height());
            for [from, to] in &drawing.outline {
                painter.line_segment([at(*from), at(*to)], outline_stroke());
            }
            shown.heat = Some(drawing);
            heat_legend(ui, level);
        }
        ui.painter().rect_stroke(
            region,
            0.0,
            egui::Stroke::new(2.0, Color32::from_rgb(0, 200, 255)),
            egui::StrokeKind::Inside,
        );
    }

    /// Confirm, one button per label, and the override picker; a column or a row.
    fn review_buttons(&mut self, ui: &mut Ui, id: i64, column: bool) {
        let pending = self
            .history
            .iter()
            .find(|s| s.part.record.id == id)
            .is_some_and(|s| s.pending);
        let labels = self.labels.clone();
        let width = if column { ui.available_width() } else { 0.0 };
        let button = |ui: &mut Ui, text: String| {
            ui.add(
                egui::Button::new(RichText::new(text).size(22.0)).min_size(egui::vec2(width, 40.0)),
            )
            .clicked()
        };
        ui.add_enabled_ui(!pending && self.operator.is_some(), |ui| {
            if button(ui, "Confirm (Enter)".into()) {
                self.run(Command::Confirm);
            }
            for (n, label) in labels.iter().enumerate().take(9) {
                if button(ui, format!("{} {label}", n + 1)) {
                    self.run(Command::OverrideTo(n));
                }
            }
            if button(ui, "Override... (O)".into()) {
                self.run(Command::OpenPicker);
            }
        });
        if pending {
            ui.spinner();
        }
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
                        let texture = thumbnail_texture(&ctx, item).id();
                        let record = &item.part.record;
                        let id = record.id;
                        let (_, colour) = banner(record, &self.labels);
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

/// What the overlay's colours mean, under the picture: text a person can read, swatches in
/// the overlay's own colours.
fn heat_legend(ui: &mut Ui, level: f32) {
    ui.horizontal(|ui| {
        for stop in &legend(level)[1..3] {
            let [r, g, b, a] = stop.rgba;
            swatch(ui, Color32::from_rgba_unmultiplied(r, g, b, a.max(140)));
            ui.label(RichText::new(stop.label).size(16.0));
        }
        let (rect, _) = ui.allocate_exact_size(egui::vec2(18.0, 18.0), egui::Sense::hover());
        ui.painter().rect_stroke(
            rect.shrink(2.0),
            0.0,
            outline_stroke(),
            egui::StrokeKind::Inside,
        );
        ui.label(
            RichText::new(format!("outlined: at or over {level:.2}, where to look")).size(16.0),
        );
    });
}

/// The flagged region's outline, on the picture and in the legend.
fn outline_stroke() -> egui::Stroke {
    let [r, g, b] = OUTLINE_RGB;
    egui::Stroke::new(2.5, Color32::from_rgb(r, g, b))
}

fn swatch(ui: &mut Ui, colour: Color32) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(18.0, 18.0), egui::Sense::hover());
    ui.painter().rect_filled(rect, 2.0, colour);
}

/// The part's picture as a texture, uploaded the first time it is drawn (parts that came
/// and went between two frames never are); the thumbnail, else grey, when the picture was
/// dropped on the way.
fn part_texture<'a>(ctx: &egui::Context, shown: &'a mut Shown) -> &'a TextureHandle {
    let id = shown.part.record.id;
    let picture = shown.part.image.as_ref().or(shown.part.thumbnail.as_ref());
    shown
        .texture
        .get_or_insert_with(|| load(ctx, format!("part-{id}"), picture))
}

/// The strip's small texture for a part.
fn thumbnail_texture<'a>(ctx: &egui::Context, shown: &'a mut Shown) -> &'a TextureHandle {
    let id = shown.part.record.id;
    let picture = shown.part.thumbnail.as_ref();
    shown
        .thumbnail_texture
        .get_or_insert_with(|| load(ctx, format!("thumbnail-{id}"), picture))
}

fn load(ctx: &egui::Context, name: String, picture: Option<&egui::ColorImage>) -> TextureHandle {
    let picture = picture
        .cloned()
        .unwrap_or_else(|| egui::ColorImage::filled([64, 48], Color32::DARK_GRAY));
    ctx.load_texture(name, picture, egui::TextureOptions::LINEAR)
}

/// The part of the shown image the model looks at: all of it when the model stretches the
/// frame, the centred crop of the model's aspect ratio when it crops.
fn inspected_region(
    image: egui::Rect,
    manifest: &inspecta_vision::model::manifest::Manifest,
) -> egui::Rect {
    let [x, y, w, h] = manifest
        .input
        .region(image.width() as u32, image.height() as u32);
    egui::Rect::from_min_size(
        image.min + egui::vec2(x * image.width(), y * image.height()),
        egui::vec2(w * image.width(), h * image.height()),
    )
}

/// Banner text and colour for a part's current label: colours chosen to read from 2 m.
/// An uncertain part says why, so the inspector checks the camera when nothing is in view;
/// a defect names its class when the model has more than one (`labels`: good first).
pub(super) fn banner(record: &Record, labels: &[String]) -> (String, Color32) {
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
        _ if labels.len() <= 2 => ("DEFECT".into(), Color32::from_rgb(235, 50, 50)),
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
