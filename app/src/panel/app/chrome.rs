//! What sits around the screens: the F1 help overlay, screenshots and the theme.

use egui::{Color32, RichText};

use crate::panel::commands::{OVERRIDE_HELP, SHORTCUTS};

pub(super) fn help_overlay(ctx: &egui::Context, open: &mut bool) {
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
pub(super) fn save_screenshot(dir: &std::path::Path, image: &egui::ColorImage) {
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

/// Text sizes for a screen read from 1.5 m: egui's defaults (12.5 px body) are for a desk.
const TEXT_SIZES: [(egui::TextStyle, f32); 5] = [
    (egui::TextStyle::Small, 14.0),
    (egui::TextStyle::Body, 18.0),
    (egui::TextStyle::Monospace, 17.0),
    (egui::TextStyle::Button, 20.0),
    (egui::TextStyle::Heading, 26.0),
];

pub(super) fn apply_theme(ctx: &egui::Context, high_contrast: bool) {
    ctx.global_style_mut(|style| {
        for (text_style, size) in TEXT_SIZES {
            if let Some(font) = style.text_styles.get_mut(&text_style) {
                font.size = size;
            }
        }
    });
    let mut visuals = egui::Visuals::dark();
    if high_contrast {
        visuals.override_text_color = Some(Color32::WHITE);
        visuals.panel_fill = Color32::BLACK;
        visuals.window_fill = Color32::BLACK;
        visuals.widgets.noninteractive.fg_stroke = egui::Stroke::new(2.0, Color32::WHITE);
    }
    ctx.set_visuals(visuals);
}
