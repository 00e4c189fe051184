//! Anomaly detection trained from good parts only (PatchCore, Roth et al. 2022): every patch
//! of a good image is remembered in a memory bank; a new patch is as anomalous as it is far
//! from its nearest remembered patch, and an image as anomalous as its worst patch.

pub mod bank;
pub mod coreset;
pub mod patches;

use ndarray::{Array1, Array2, ArrayView3, Axis};

use bank::MemoryBank;

/// Name of the per-cell scale tensor in a model's weights, for models that have one.
pub const CELL_SCALE: &str = "cell_scale";

/// A fitted model: per-channel standardisation (so the 40 fine and 112 coarse channels weigh
/// alike), the bank of standardised good patches, and optionally a scale per map cell.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchCore {
    mean: Array1<f32>,
    inv_std: Array1<f32>,
    bank: MemoryBank,
    /// Brings each position's typical distance on good parts to the map's average: borders and
    /// corners (the trunk's zero padding) are far from the bank on every part, and would
    /// otherwise outshine a real defect in the middle.
    cell_scale: Option<Array1<f32>>,
}

/// The scale that evens out the mean distance per cell of good parts' `maps` (each row-major,
/// all the same size), bounded so a few noisy cells cannot silence a position.
pub fn fit_cell_scale(maps: &[Vec<f32>]) -> Option<Array1<f32>> {
    let cells = maps.first()?.len();
    if cells == 0 || maps.iter().any(|m| m.len() != cells) {
        return None;
    }
    let mut mean = Array1::<f32>::zeros(cells);
    for map in maps {
        mean += &ndarray::ArrayView1::from(map.as_slice());
    }
    mean /= maps.len() as f32;
    let overall = mean.mean()?;
    Some(mean.mapv(|m| (overall / m.max(1e-6)).clamp(0.5, 2.0)))
}

/// How an image's feature maps become its anomaly map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapShape {
    /// Side of the square patch grid every feature map is resized to.
    pub grid: usize,
    /// Gaussian blur of the distance map, in patches (0: none): keeps one noisy patch from
    /// deciding the image.
    pub smoothing: f32,
}

/// Per-patch nearest-neighbour distances of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchScores {
    pub width: usize,
    pub height: usize,
    pub distances: Vec<f32>,
}

impl PatchScores {
    /// The image score: its most anomalous patch.
    pub fn max(&self) -> f32 {
        self.distances.iter().copied().fold(0.0, f32::max)
    }
}

impl PatchCore {
    /// Standardisation from all training patches; the bank from the rows `keep` selects.
    pub fn fit(training: &Array2<f32>, keep: &[usize]) -> Self {
        let mean = training
            .mean_axis(Axis(0))
            .unwrap_or_else(|| Array1::zeros(training.ncols()));
        let std = training.std_axis(Axis(0), 0.0);
        let inv_std = std.mapv(|s| if s > 1e-6 { 1.0 / s } else { 1.0 });
        let mut bank = training.select(Axis(0), keep);
        standardise(&mut bank, &mean, &inv_std);
        Self {
            mean,
            inv_std,
            bank: MemoryBank::new(bank),
            cell_scale: None,
        }
    }

    pub fn from_parts(
        mean: Array1<f32>,
        inv_std: Array1<f32>,
        bank: Array2<f32>,
    ) -> Result<Self, String> {
        let d = bank.ncols();
        if mean.len() != d || inv_std.len() != d {
            return Err(format!(
                "the bank has {d} features per patch but the standardisation has {} and {}",
                mean.len(),
                inv_std.len()
            ));
        }
        if bank.nrows() == 0 {
            return Err("the memory bank is empty".into());
        }
        Ok(Self {
            mean,
            inv_std,
            bank: MemoryBank::new(bank),
            cell_scale: None,
        })
    }

    /// The same model with a scale per cell of its `grid` x `grid` map.
    pub fn with_cell_scale(mut self, scale: Array1<f32>, grid: usize) -> Result<Self, String> {
        if scale.len() != grid * grid || scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(format!(
                "{CELL_SCALE} must hold {} positive values (a {grid} x {grid} map), it holds {}",
                grid * grid,
                scale.len()
            ));
        }
        self.cell_scale = Some(scale);
        Ok(self)
    }

    pub fn cell_scale(&self) -> Option<&Array1<f32>> {
        self.cell_scale.as_ref()
    }

    /// The tensors of the model's weights file, by the names loading expects.
    pub fn tensors(&self) -> Vec<(&'static str, ndarray::ArrayD<f32>)> {
        let mut tensors = vec![
            ("mean", self.mean.clone().into_dyn()),
            ("inv_std", self.inv_std.clone().into_dyn()),
            ("bank", self.bank.patches().to_owned().into_dyn()),
        ];
        tensors.extend(self.cell_scale.clone().map(|s| (CELL_SCALE, s.into_dyn())));
        tensors
    }

    pub fn mean(&self) -> &Array1<f32> {
        &self.mean
    }

    pub fn inv_std(&self) -> &Array1<f32> {
        &self.inv_std
    }

    pub fn bank(&self) -> &MemoryBank {
        &self.bank
    }

    /// Features per patch the backbone maps must add up to.
    pub fn dim(&self) -> usize {
        self.bank.dim()
    }

    /// Distances of raw (unstandardised) patch features to the bank.
    pub fn distances(&self, patches: &mut Array2<f32>) -> Vec<f32> {
        standardise(patches, &self.mean, &self.inv_std);
        self.bank.nearest(&patches.view())
    }

    /// Scores one image from its backbone maps (`[channels, height, width]`).
    pub fn score(
        &self,
        maps: &[ArrayView3<'_, f32>],
        shape: MapShape,
    ) -> Result<PatchScores, String> {
        let mut patches = patches::patch_features(maps, shape.grid);
        if patches.ncols() != self.dim() {
            return Err(format!(
                "the backbone gives {} features per patch, the memory bank holds {}",
                patches.ncols(),
                self.dim()
            ));
        }
        let distances = self.distances(&mut patches);
        let side = shape.grid;
        Ok(PatchScores {
            width: side,
            height: side,
            distances: self.scaled(gaussian_blur(&distances, side, side, shape.smoothing)),
        })
    }
}

impl PatchCore {
    /// A blurred distance map with the cell scale applied, when the model has one.
    pub fn scaled(&self, mut map: Vec<f32>) -> Vec<f32> {
        if let Some(scale) = &self.cell_scale {
            for (d, s) in map.iter_mut().zip(scale) {
                *d *= s;
            }
        }
        map
    }
}

/// Separable Gaussian blur of a row-major `width` x `height` map, edges clamped.
pub fn gaussian_blur(map: &[f32], width: usize, height: usize, sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 || map.len() != width * height {
        return map.to_vec();
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-0.5 * (i as f32 / sigma).powi(2)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    let pass = |source: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0.0; source.len()];
        for y in 0..height {
            for x in 0..width {
                let mut sum = 0.0;
                for (k, weight) in kernel.iter().enumerate() {
                    let offset = k as isize - radius;
                    let (sx, sy) = if horizontal {
                        (
                            (x as isize + offset).clamp(0, width as isize - 1) as usize,
                            y,
                        )
                    } else {
                        (
                            x,
                            (y as isize + offset).clamp(0, height as isize - 1) as usize,
                        )
                    };
                    sum += weight * source[sy * width + sx];
                }
                out[y * width + x] = sum / total;
            }
        }
        out
    };
    pass(&pass(map, true), false)
}

fn standardise(rows: &mut Array2<f32>, mean: &Array1<f32>, inv_std: &Array1<f32>) {
    for mut row in rows.rows_mut() {
        row -= mean;
        row *= inv_std;
    }
}

/// Maps a distance to a defect score in `[0, 1)`: 0.5 at `reference`, monotonic, so ranking
/// metrics (AUROC) are those of the raw distance and the usual 0.5 threshold means "as far
/// from every good patch as the threshold chosen on good parts".
pub fn defect_score(distance: f32, reference: f32) -> f32 {
    let d = distance.max(0.0);
    d / (d + reference)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, array};

    #[test]
    fn a_patch_unlike_every_good_one_scores_highest() {
        let good = Array3::from_shape_fn((2, 4, 4), |(c, y, x)| (c + y + x) as f32 * 0.1);
        let shape = MapShape {
            grid: 4,
            smoothing: 0.0,
        };
        let training = patches::patch_features(&[good.view()], 4);
        let keep: Vec<usize> = (0..training.nrows()).collect();
        let model = PatchCore::fit(&training, &keep);
        let same = model.score(&[good.view()], shape).expect("score");
        assert!(same.max() < 1e-3, "a training image scores {}", same.max());
        let mut odd = good;
        odd[[0, 3, 0]] = 9.0;
        let scores = model.score(&[odd.view()], shape).expect("score");
        let worst = scores
            .distances
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        assert_eq!(worst, Some(12), "row 3, column 0");
        assert_eq!((scores.width, scores.height), (4, 4));
    }

    #[test]
    fn wrong_feature_count_is_refused() {
        let model =
            PatchCore::from_parts(array![0.0f32], array![1.0f32], array![[0.0f32]]).expect("model");
        let maps = Array3::<f32>::zeros((2, 2, 2));
        let err = model
            .score(
                &[maps.view()],
                MapShape {
                    grid: 2,
                    smoothing: 0.0,
                },
            )
            .expect_err("two features, bank of one");
        assert!(err.contains("2 features"), "{err}");
    }

    #[test]
    fn blurring_spreads_a_peak_and_keeps_a_flat_map() {
        let flat = gaussian_blur(&[2.0; 9], 3, 3, 1.0);
        assert!(flat.iter().all(|v| (v - 2.0).abs() < 1e-6), "{flat:?}");
        let mut peak = vec![0.0; 25];
        peak[12] = 1.0;
        let blurred = gaussian_blur(&peak, 5, 5, 1.0);
        assert!(blurred[12] < 1.0 && blurred[11] > 0.0 && blurred[11] == blurred[13]);
        assert_eq!(gaussian_blur(&peak, 5, 5, 0.0), peak);
    }

    #[test]
    fn the_cell_scale_evens_out_a_border_that_is_always_far() {
        // Cell 0 is twice as far as the others on every good part.
        let maps = vec![vec![2.0, 1.0, 1.0, 1.0], vec![4.0, 2.0, 2.0, 2.0]];
        let scale = fit_cell_scale(&maps).expect("same-sized maps");
        let evened: Vec<f32> = maps[0].iter().zip(&scale).map(|(d, s)| d * s).collect();
        assert!((evened[0] - evened[1]).abs() < 1e-5, "{evened:?}");
        assert!(fit_cell_scale(&[vec![1.0; 4], vec![1.0; 3]]).is_none());
        let bounded = fit_cell_scale(&[vec![100.0, 1.0, 1.0, 1.0]]).expect("one map");
        assert_eq!(bounded[0], 0.5, "a noisy cell is not silenced");
    }

    #[test]
    fn defect_score_is_half_at_the_reference() {
        assert_eq!(defect_score(2.0, 2.0), 0.5);
        assert!(defect_score(1.0, 2.0) < 0.5 && defect_score(3.0, 2.0) > 0.5);
    }
}
