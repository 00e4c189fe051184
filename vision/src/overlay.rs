//! How a heat map is drawn over its part, the same in the panel and in the HTML report. A wash
//! of colour over the whole part hides the part and says nothing; so colour starts just below
//! the score at which the part stops being passed (the rule's flag level), turns red at it,
//! and the red region gets an outline: where to look.

use image::RgbImage;
use ndarray::Array3;

use crate::anomaly::patches::bilinear;
use crate::frame::Frame;
use crate::inspection::HeatMap;

/// Cells are upsampled this much before colouring and outlining, so the outline follows the
/// hot region rather than the model's patch grid.
const UPSAMPLE: usize = 4;
/// Colour fades in from this share of the flag level.
const FADE_FROM: f32 = 0.9;

/// A heat map ready to draw over the inspected region.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlay {
    pub width: usize,
    pub height: usize,
    /// Row-major RGBA, not premultiplied; alpha 0 where the part looks normal.
    pub rgba: Vec<[u8; 4]>,
    /// Edges around the cells at or over the flag level, in 0..1 of the region's width and
    /// height.
    pub outline: Vec<[[f32; 2]; 2]>,
    /// Row-major: which cells are at or over the flag level (the outlined region).
    pub flagged: Vec<bool>,
}

impl Overlay {
    /// Share of the region at or over the flag level.
    pub fn flagged_share(&self) -> f32 {
        self.flagged.iter().filter(|&&f| f).count() as f32 / self.flagged.len().max(1) as f32
    }
}

/// One step of the colour legend: a score as a share of the flag level and its colour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LegendStop {
    pub share_of_level: f32,
    pub rgba: [u8; 4],
    pub label: &'static str,
}

/// What the colours mean, left to right.
pub fn legend(level: f32) -> [LegendStop; 4] {
    let stop = |share: f32, label| LegendStop {
        share_of_level: share,
        rgba: colour(share * level, level),
        label,
    };
    [
        stop(FADE_FROM, "normal"),
        stop(0.97, "near the flag level"),
        stop(1.0, "at or over the flag level"),
        stop(1.0 / level.max(1e-6), "highest score"),
    ]
}

/// The colour of a cell with defect score `score` when parts are flagged from `level`.
pub fn colour(score: f32, level: f32) -> [u8; 4] {
    let level = level.max(1e-6);
    let share = score / level;
    if share < FADE_FROM {
        return [0, 0, 0, 0];
    }
    if share < 1.0 {
        // Yellow to orange, mostly clear: close, but not why the part was flagged.
        let t = (share - FADE_FROM) / (1.0 - FADE_FROM);
        return [255, (210.0 - 80.0 * t) as u8, 0, (30.0 + 70.0 * t) as u8];
    }
    // Red, more opaque the further over: the part still shows through.
    let over = ((score - level) / (1.0 - level).max(1e-6)).clamp(0.0, 1.0);
    [220, 20, 20, (130.0 + 60.0 * over) as u8]
}

/// The overlay of `heat` for a rule that flags parts from `level` on.
pub fn overlay(heat: &HeatMap, level: f32) -> Overlay {
    let [w, h] = heat.size();
    let (width, height) = (w * UPSAMPLE, h * UPSAMPLE);
    let values = Array3::from_shape_vec((1, h, w), heat.values().to_vec())
        .map(|grid| {
            bilinear(&grid.view(), height, width)
                .into_raw_vec_and_offset()
                .0
        })
        .unwrap_or_else(|_| vec![0.0; width * height]);
    let flagged: Vec<bool> = values.iter().map(|&v| v >= level).collect();
    Overlay {
        width,
        height,
        rgba: values.iter().map(|&v| colour(v, level)).collect(),
        outline: outline(&flagged, width, height),
        flagged,
    }
}

/// Outline colour: magenta stands out on grey metal, on the red fill and on the panel's cyan
/// frame of the inspected region.
pub const OUTLINE_RGB: [u8; 3] = [255, 0, 255];

/// `frame` with `heat` drawn over `region` of it (see [`draw_on`]), for a rule that flags
/// parts from `level`.
pub fn picture(frame: &Frame, heat: &HeatMap, level: f32, region: [f32; 4]) -> RgbImage {
    let mut image = RgbImage::from_raw(frame.width(), frame.height(), frame.rgb().to_vec())
        .unwrap_or_else(|| RgbImage::new(frame.width(), frame.height()));
    let line = (image.width().max(image.height()) / 200).max(2);
    draw_on(&mut image, region, &overlay(heat, level), line);
    image
}

/// Draws `overlay` over `region` (x, y, width, height in 0..1) of `image`, outline on top,
/// `line` pixels wide.
pub fn draw_on(image: &mut RgbImage, region: [f32; 4], overlay: &Overlay, line: u32) {
    let (iw, ih) = (image.width() as f32, image.height() as f32);
    let [x0, y0] = [region[0] * iw, region[1] * ih];
    let [rw, rh] = [region[2] * iw, region[3] * ih];
    for y in y0 as u32..((y0 + rh) as u32).min(image.height()) {
        for x in x0 as u32..((x0 + rw) as u32).min(image.width()) {
            let cx = (((x as f32 - x0) / rw) * overlay.width as f32) as usize;
            let cy = (((y as f32 - y0) / rh) * overlay.height as f32) as usize;
            let [r, g, b, a] = overlay.rgba
                [cy.min(overlay.height - 1) * overlay.width + cx.min(overlay.width - 1)];
            let a = f32::from(a) / 255.0;
            let pixel = image.get_pixel_mut(x, y);
            for (channel, over) in pixel.0.iter_mut().zip([r, g, b]) {
                *channel = (f32::from(*channel) * (1.0 - a) + f32::from(over) * a) as u8;
            }
        }
    }
    let half = line as f32 / 2.0;
    for [[ax, ay], [bx, by]] in &overlay.outline {
        let (ax, bx) = (x0 + ax * rw, x0 + bx * rw);
        let (ay, by) = (y0 + ay * rh, y0 + by * rh);
        fill(
            image,
            [ax.min(bx) - half, ay.min(by) - half],
            [ax.max(bx) + half, ay.max(by) + half],
        );
    }
}

fn fill(image: &mut RgbImage, from: [f32; 2], to: [f32; 2]) {
    let clamp = |v: f32, max: u32| (v.max(0.0) as u32).min(max);
    for y in clamp(from[1], image.height())..clamp(to[1], image.height()) {
        for x in clamp(from[0], image.width())..clamp(to[0], image.width()) {
            image.put_pixel(x, y, image::Rgb(OUTLINE_RGB));
        }
    }
}

/// The edges between flagged cells and the rest (or the border), merged along rows and
/// columns so a straight stretch is one segment.
fn outline(flagged: &[bool], width: usize, height: usize) -> Vec<[[f32; 2]; 2]> {
    let at = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < width
            && (y as usize) < height
            && flagged[y as usize * width + x as usize]
    };
    let (fw, fh) = (width as f32, height as f32);
    let (w, h) = (width as isize, height as isize);
    // Horizontal edges: above row y, between cells (x, y - 1) and (x, y).
    let rows = runs(h, w, |y, x| at(x, y - 1) != at(x, y)).map(|(y, x0, x1)| {
        [
            [x0 as f32 / fw, y as f32 / fh],
            [x1 as f32 / fw, y as f32 / fh],
        ]
    });
    // Vertical edges: left of column x.
    let columns = runs(w, h, |x, y| at(x - 1, y) != at(x, y)).map(|(x, y0, y1)| {
        [
            [x as f32 / fw, y0 as f32 / fh],
            [x as f32 / fw, y1 as f32 / fh],
        ]
    });
    rows.chain(columns).collect()
}

/// Along each of the `lines + 1` grid lines, the stretches `(line, start, end)` of the `len`
/// cells where `edge(line, cell)` holds, each stretch once.
fn runs(
    lines: isize,
    len: isize,
    edge: impl Fn(isize, isize) -> bool,
) -> impl Iterator<Item = (isize, isize, isize)> {
    (0..=lines).flat_map(move |line| {
        let mut stretches = Vec::new();
        let mut start = None;
        for cell in 0..=len {
            match (cell < len && edge(line, cell), start) {
                (true, None) => start = Some(cell),
                (false, Some(s)) => {
                    stretches.push((line, s, cell));
                    start = None;
                }
                _ => {}
            }
        }
        stretches
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cells_stay_clear_and_flagged_ones_turn_red() {
        assert_eq!(
            colour(0.3, 0.5)[3],
            0,
            "well below the level: the part shows"
        );
        let near = colour(0.48, 0.5);
        let over = colour(0.7, 0.5);
        assert!(near[3] > 0 && near[3] < over[3]);
        assert!(near[1] > over[1], "yellow below the level, red over it");
        assert!(over[3] < 255, "even red lets the part show through");
    }

    #[test]
    fn the_outline_encloses_the_hot_cells_only() {
        // One hot cell in the middle of a 3x3 grid.
        let mut values = vec![0.1; 9];
        values[4] = 0.9;
        let heat = HeatMap::new(3, 3, values).expect("3x3");
        let o = overlay(&heat, 0.5);
        assert_eq!((o.width, o.height), (12, 12));
        assert!(!o.outline.is_empty());
        for [[x0, y0], [x1, y1]] in &o.outline {
            for v in [x0, y0, x1, y1] {
                assert!(
                    (0.2..=0.8).contains(v),
                    "outline at {v} strays from the centre"
                );
            }
        }
        assert!(o.flagged_share() > 0.0 && o.flagged_share() < 0.34);
        let clear = overlay(&HeatMap::new(3, 3, vec![0.1; 9]).expect("3x3"), 0.5);
        assert!(clear.outline.is_empty() && clear.rgba.iter().all(|p| p[3] == 0));
    }

    #[test]
    fn drawing_tints_the_hot_region_and_outlines_it() {
        let mut values = vec![0.1; 16];
        values[5] = 0.9; // cell (1, 1) of 4x4
        let o = overlay(&HeatMap::new(4, 4, values).expect("4x4"), 0.5);
        let mut picture = RgbImage::from_pixel(80, 40, image::Rgb([128, 128, 128]));
        // The region is the centred 40x40 square.
        draw_on(&mut picture, [0.25, 0.0, 0.5, 1.0], &o, 2);
        assert_eq!(
            picture.get_pixel(2, 2).0,
            [128, 128, 128],
            "outside the region"
        );
        assert_eq!(picture.get_pixel(30, 35).0, [128, 128, 128], "normal cell");
        let hot = picture.get_pixel(35, 15).0;
        assert!(hot[0] > 150 && hot[1] < 100, "hot cell tinted red: {hot:?}");
        let outlined = picture.pixels().filter(|p| p.0 == OUTLINE_RGB).count();
        assert!(outlined > 0, "the outline is drawn");
    }

    #[test]
    fn a_square_region_is_outlined_by_four_straight_edges() {
        let mut flagged = vec![false; 16];
        for (x, y) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
            flagged[y * 4 + x] = true;
        }
        let segments = outline(&flagged, 4, 4);
        assert_eq!(segments.len(), 4, "{segments:?}");
        assert!(segments.contains(&[[0.25, 0.25], [0.75, 0.25]]));
    }
}
