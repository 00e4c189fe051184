//! Frames no model should judge: nothing in view, or too few pixels. A covered lens, a dead
//! light or a camera showing one flat colour gives a frame any classifier calls good with
//! confidence; these checks are cheap and need no training, and the model's own familiarity
//! ([`super::familiarity`]) catches the rest (noise, another part, another scene).

use crate::frame::Frame;
use crate::inspection::UncertainReason;

/// Side of the grid the frame is averaged onto before its contrast is measured: averaging
/// removes sensor noise, so a capped lens reads as flat however grainy it is.
const GRID: usize = 32;
/// Standard deviation of the averaged luminance (0..255) below which nothing is in view.
/// Real parts under any usable light measure tens; a capped lens or a blank frame, under 1.
pub const MIN_CONTRAST: f32 = 2.0;
/// A frame must have at least this fraction of the model's input side, on both axes.
const MIN_SIDE_FRACTION: u32 = 4;

/// Why `frame` cannot be judged by a model taking `input` (width, height) images, if so.
pub fn check(frame: &Frame, input: [u32; 2]) -> Option<UncertainReason> {
    let [w, h] = input;
    if frame.width() * MIN_SIDE_FRACTION < w || frame.height() * MIN_SIDE_FRACTION < h {
        return Some(UncertainReason::TooSmall);
    }
    (contrast(frame) < MIN_CONTRAST).then_some(UncertainReason::NoPart)
}

/// Standard deviation of the frame's luminance averaged onto a `GRID` x `GRID` grid.
pub fn contrast(frame: &Frame) -> f32 {
    let (width, height) = (frame.width() as usize, frame.height() as usize);
    let (cols, rows) = (GRID.min(width), GRID.min(height));
    let mut sums = vec![0f64; cols * rows];
    let mut counts = vec![0u32; cols * rows];
    for (y, line) in frame.rgb().chunks_exact(width * 3).enumerate() {
        let cell_row = y * rows / height;
        for (x, px) in line.chunks_exact(3).enumerate() {
            let cell = cell_row * cols + x * cols / width;
            sums[cell] +=
                0.299 * f64::from(px[0]) + 0.587 * f64::from(px[1]) + 0.114 * f64::from(px[2]);
            counts[cell] += 1;
        }
    }
    let means: Vec<f64> = sums
        .iter()
        .zip(&counts)
        .map(|(s, &c)| s / f64::from(c.max(1)))
        .collect();
    let n = means.len() as f64;
    let mean = means.iter().sum::<f64>() / n;
    let variance = means.iter().map(|m| (m - mean) * (m - mean)).sum::<f64>() / n;
    variance.sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng as _, SeedableRng as _};

    fn frame(width: u32, height: u32, pixel: impl FnMut(u32, u32) -> u8) -> Frame {
        let mut pixel = pixel;
        let rgb = (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .flat_map(|(x, y)| [pixel(x, y); 3])
            .collect();
        Frame::from_rgb8(width, height, rgb).expect("frame")
    }

    #[test]
    fn flat_and_grainy_blank_frames_have_no_part() {
        let mut rng = StdRng::seed_from_u64(1);
        for blank in [
            frame(320, 240, |_, _| 0),
            frame(320, 240, |_, _| 255),
            frame(320, 240, |_, _| 128),
            // A capped lens: black with sensor noise.
            frame(320, 240, |_, _| rng.gen_range(0..12)),
        ] {
            assert_eq!(check(&blank, [224, 224]), Some(UncertainReason::NoPart));
        }
    }

    #[test]
    fn a_part_on_a_background_is_judged() {
        let part = frame(320, 240, |x, y| {
            let (dx, dy) = (x as i32 - 160, y as i32 - 120);
            if dx * dx + dy * dy < 80 * 80 { 180 } else { 40 }
        });
        assert_eq!(check(&part, [224, 224]), None);
    }

    #[test]
    fn a_thumbnail_is_too_small() {
        let tiny = frame(16, 16, |x, _| (x * 16) as u8);
        assert_eq!(check(&tiny, [224, 224]), Some(UncertainReason::TooSmall));
        assert_eq!(check(&tiny, [64, 64]), None);
    }
}
