//! The pictures the panel shows: a part's image at screen size, and a heat map coloured as
//! an overlay.

use inspecta_vision::frame::Frame;
use inspecta_vision::inspection::HeatMap;

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

/// The heat map as an overlay: clear where the part looks normal, from yellow to opaque
/// red as a cell nears and passes the defect threshold.
pub fn heat_image(heat: &HeatMap) -> egui::ColorImage {
    let pixels = heat
        .values()
        .iter()
        .map(|v| {
            let v = v.clamp(0.0, 1.0);
            let alpha = ((v - 0.25) / 0.75).clamp(0.0, 1.0) * 200.0;
            let green = (1.0 - v) * 2.0 * 220.0;
            egui::Color32::from_rgba_unmultiplied(
                255,
                green.clamp(0.0, 220.0) as u8,
                0,
                alpha as u8,
            )
        })
        .collect();
    egui::ColorImage::new(heat.size(), pixels)
}
