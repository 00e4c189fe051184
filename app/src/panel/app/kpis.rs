//! The shift's figures beside the part: first-pass yield, rates with their counts, and the
//! defect Pareto.

use egui::{Color32, RichText, Ui};

use super::Panel;

impl Panel {
    pub(super) fn kpi_panel(&self, ui: &mut Ui) {
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
