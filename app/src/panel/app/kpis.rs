//! The shift's figures beside the part: first-pass yield, rates with the counts they are
//! made of (greyed while too few to mean much), and the defect Pareto.

use egui::{Color32, RichText, Ui};

use super::Panel;

/// Below this many parts a rate is shown greyed: 1 of 2 is not an escape rate of 50 %.
const FEW: u64 = 30;

impl Panel {
    pub(super) fn kpi_panel(&self, ui: &mut Ui) {
        let k = &self.kpis;
        ui.heading(format!("Shift since {}", self.setup.shift));
        egui::Grid::new("kpi-grid").num_columns(3).show(ui, |ui| {
            let count = |name: &str, value: String| (name.to_owned(), value, None);
            let rate =
                |name: &str, n: u64, of: u64| (name.to_owned(), percent(n, of), Some((n, of)));
            let rows = [
                count("Parts", k.parts.to_string()),
                count("Good", k.good.to_string()),
                rate("First-pass yield", k.good, k.parts),
                rate("Uncertain rate", k.uncertain, k.parts),
                rate("Override rate", k.overridden, k.reviewed),
                rate("False-reject rate", k.false_rejects, k.reviewed_defects),
                rate("Escape estimate", k.escapes_found, k.reviewed_good),
                count(
                    "Parts / minute",
                    k.parts_per_minute()
                        .map_or("-".into(), |v| format!("{v:.1}")),
                ),
                count("Awaiting review", k.awaiting_review.to_string()),
            ];
            for (name, value, counts) in rows {
                ui.label(RichText::new(name).size(18.0));
                let few = counts.is_some_and(|(_, of)| of < FEW);
                let value = RichText::new(value).size(22.0).strong();
                ui.label(if few { value.weak() } else { value });
                match counts {
                    Some((n, of)) => {
                        let response = ui.label(RichText::new(format!("{n} of {of}")).size(16.0));
                        if few {
                            response.on_hover_text(format!(
                                "fewer than {FEW}: too few parts for a reliable rate"
                            ));
                        }
                    }
                    None => {
                        ui.label("");
                    }
                }
                ui.end_row();
            }
        });
        ui.separator();
        ui.label(RichText::new("Defects by class").size(18.0));
        pareto(ui, &k.defects);
    }
}

fn percent(n: u64, of: u64) -> String {
    if of == 0 {
        "-".to_owned()
    } else {
        format!("{:.1} %", n as f64 / of as f64 * 100.0)
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
