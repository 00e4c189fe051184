//! The part's defect score on a 0..1 bar with the reject threshold and the uncertain band
//! drawn on it, as an inspection sensor shows it: how far from the line the part was.

use egui::{Color32, RichText, Stroke, Ui};

const HEIGHT: f32 = 26.0;
const GOOD: Color32 = Color32::from_rgb(40, 120, 60);
const BAND: Color32 = Color32::from_rgb(200, 150, 0);
const REJECT: Color32 = Color32::from_rgb(150, 40, 40);

pub(super) fn show(ui: &mut Ui, score: f32, threshold: f32, band: [f32; 2]) {
    let width = ui.available_width();
    let (rect, response) = ui.allocate_exact_size(egui::vec2(width, HEIGHT), egui::Sense::hover());
    let x = |v: f32| rect.left() + rect.width() * v.clamp(0.0, 1.0);
    let span = |from: f32, to: f32| egui::Rect::from_x_y_ranges(x(from)..=x(to), rect.y_range());
    let painter = ui.painter();
    painter.rect_filled(span(0.0, threshold), 0.0, GOOD);
    painter.rect_filled(span(threshold, 1.0), 0.0, REJECT);
    let [low, high] = band;
    if low < high {
        painter.rect_filled(span(low, high), 0.0, BAND);
    }
    painter.vline(
        x(threshold),
        rect.y_range(),
        Stroke::new(3.0, Color32::WHITE),
    );
    let marker = x(score);
    painter.vline(
        marker,
        rect.expand(4.0).y_range(),
        Stroke::new(5.0, Color32::BLACK),
    );
    painter.vline(marker, rect.y_range(), Stroke::new(2.0, Color32::WHITE));
    let band_text = if low < high {
        format!("  ·  uncertain {low:.2}-{high:.2}")
    } else {
        String::new()
    };
    let caption = format!("score {score:.3}  ·  reject at {threshold:.2}{band_text}");
    response.on_hover_text(caption.clone());
    ui.label(RichText::new(caption).size(18.0));
}
