//! Pixel-level evaluation of anomaly heat maps against ground-truth masks (MVTec AD layout):
//! does the model point at the defect, not just flag the image.

use std::path::Path;

use image::imageops::FilterType;
use ndarray::Array3;

use crate::anomaly::patches::bilinear;
use crate::inspection::HeatMap;

/// Side of the square grid heat maps and masks are compared on: fine enough for the
/// smallest defects of the magnetic tile set at 224 px, small enough to keep every pixel.
pub const GRID: usize = 64;

/// Heat-map values of one image's pixels, split by the mask.
#[derive(Debug, Clone, Default)]
pub struct PixelScores {
    pub normal: Vec<f32>,
    pub defect: Vec<f32>,
}

impl PixelScores {
    pub fn extend(&mut self, other: Self) {
        self.normal.extend(other.normal);
        self.defect.extend(other.defect);
    }
}

/// `mask`: None for a good image (every pixel normal).
pub fn split(heat: &HeatMap, mask: Option<&Path>) -> Result<PixelScores, String> {
    let [w, h] = heat.size();
    let grid =
        Array3::from_shape_vec((1, h, w), heat.values().to_vec()).map_err(|e| e.to_string())?;
    let values = bilinear(&grid.view(), GRID, GRID);
    let defect = match mask {
        None => vec![false; GRID * GRID],
        Some(path) => {
            let mask = image::open(path).map_err(|e| format!("mask {}: {e}", path.display()))?;
            let small = image::imageops::resize(
                &mask.to_luma8(),
                GRID as u32,
                GRID as u32,
                FilterType::Nearest,
            );
            small.pixels().map(|p| p.0[0] > 127).collect()
        }
    };
    let mut scores = PixelScores::default();
    for (v, d) in values.iter().zip(defect) {
        if d {
            scores.defect.push(*v);
        } else {
            scores.normal.push(*v);
        }
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_follow_the_mask() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mask.png");
        // Left half defective.
        let mask =
            image::GrayImage::from_fn(8, 8, |x, _| image::Luma([if x < 4 { 255 } else { 0 }]));
        mask.save(&path).expect("save mask");
        let heat = HeatMap::new(2, 1, vec![1.0, 0.0]).expect("heat");
        let scores = split(&heat, Some(&path)).expect("split");
        assert_eq!(scores.defect.len(), GRID * GRID / 2);
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        assert!(mean(&scores.defect) > 0.7 && mean(&scores.normal) < 0.3);
        let good = split(&heat, None).expect("good image");
        assert!(good.defect.is_empty() && good.normal.len() == GRID * GRID);
    }
}
