//! The pictures the panel shows: a part's image at screen size, and a heat map coloured as
//! an overlay with the outline of its flagged region.

use inspecta_vision::frame::Frame;
use inspecta_vision::inspection::HeatMap;
use inspecta_vision::overlay;

/// Largest side of the picture kept for the panel: sharp on a 1080p screen, small in memory.
const DISPLAY_SIDE: u32 = 720;
/// Largest side of a history-strip thumbnail (drawn at 88 px).
const THUMBNAIL_SIDE: u32 = 96;

pub fn display_image(frame: &Frame) -> egui::ColorImage {
    scaled(frame, DISPLAY_SIDE)
}

/// The strip's picture: the strip shows every part, so it gets a texture this small rather
/// than the 2 MB of the full picture.
pub fn thumbnail(frame: &Frame) -> egui::ColorImage {
    scaled(frame, THUMBNAIL_SIDE)
}

fn scaled(frame: &Frame, side: u32) -> egui::ColorImage {
    let (w, h) = (frame.width(), frame.height());
    let rgb = image::RgbImage::from_raw(w, h, frame.rgb().to_vec());
    let scaled = match rgb {
        Some(rgb) if w.max(h) > side => {
            let scale = side as f32 / w.max(h) as f32;
            let (nw, nh) = (
                ((w as f32 * scale) as u32).max(1),
                ((h as f32 * scale) as u32).max(1),
            );
            image::imageops::thumbnail(&rgb, nw, nh)
        }
        Some(rgb) => rgb,
        None => return egui::ColorImage::example(),
    };
    let size = [scaled.width() as usize, scaled.height() as usize];
    egui::ColorImage::from_rgb(size, scaled.as_raw())
}

/// The heat map coloured for a rule that flags parts from `level`, and the outline of the
/// flagged region (0..1 of the inspected region).
pub fn heat_overlay(heat: &HeatMap, level: f32) -> (egui::ColorImage, Vec<[[f32; 2]; 2]>) {
    let drawn = overlay::overlay(heat, level);
    let pixels = drawn
        .rgba
        .iter()
        .map(|&[r, g, b, a]| egui::Color32::from_rgba_unmultiplied(r, g, b, a))
        .collect();
    (
        egui::ColorImage::new([drawn.width, drawn.height], pixels),
        drawn.outline,
    )
}
