//! How familiar a frame looks to the model: the distance of its pooled features to the
//! nearest training image's (deep nearest neighbours, Sun et al. 2022). A classifier knows
//! only its classes, so a covered lens, a part from another line or sensor noise still gets
//! a confident class; this distance is what tells the station the model is out of its depth.
//!
//! Features are standardised with the training set's statistics and scaled to unit length,
//! so the distance is a cosine-like measure in which no single channel dominates. The
//! threshold is the largest distance seen on training images kept out of the bank, times a
//! margin, so in-distribution parts almost never trip it.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ArrayView2, Axis, Ix1, Ix2};
use serde::{Deserialize, Serialize};

use super::weights::{self, Weights};
use crate::anomaly::bank::MemoryBank;
use crate::anomaly::coreset::greedy_coreset;

/// Training images kept as neighbours: enough to cover every class's variety, few enough
/// that the search costs a fraction of a millisecond.
pub const BANK_SIZE: usize = 1024;
/// Every how-many-th training image is held out of the bank to set the threshold.
const CALIBRATION_EVERY: usize = 5;
/// Headroom over the largest held-out distance: new lots, light changes and camera
/// settings move in-distribution images a little further than the calibration set.
const MARGIN: f32 = 1.25;
const SEED: u64 = 17;

/// The manifest's `[familiarity]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamiliaritySpec {
    /// Weights file, relative to the manifest: tensors `mean`, `inv_std`, `bank`, `threshold`.
    pub weights: PathBuf,
    /// Network outputs the features come from: `[1, C, H, W]` maps, each pooled by mean and
    /// max per channel like a linear head's.
    pub features: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Familiarity {
    mean: Array1<f32>,
    inv_std: Array1<f32>,
    bank: MemoryBank,
    threshold: f32,
}

/// What fitting found, for the training report.
#[derive(Debug, Clone, Serialize)]
pub struct FamiliarityReport {
    pub images: usize,
    pub bank: usize,
    pub calibration_images: usize,
    /// Held-out distances: median, 99th percentile, largest.
    pub calibration_distances: [f32; 3],
    pub threshold: f32,
}

impl Familiarity {
    /// Fits on raw features of in-distribution images (rows), every class together.
    pub fn fit(features: &ArrayView2<'_, f32>) -> Result<(Self, FamiliarityReport), String> {
        let n = features.nrows();
        if n < 2 * CALIBRATION_EVERY {
            return Err(format!(
                "{n} images are too few to learn what the model's images look like (at least {})",
                2 * CALIBRATION_EVERY
            ));
        }
        let mean = features.mean_axis(Axis(0)).ok_or("no features")?;
        let inv_std = features
            .std_axis(Axis(0), 0.0)
            .mapv(|s| if s > 1e-6 { 1.0 / s } else { 1.0 });
        let mut normalised = features.to_owned();
        for mut row in normalised.rows_mut() {
            let scaled = unit((&row - &mean) * &inv_std);
            row.assign(&scaled);
        }
        let (calibration, rest): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|i| i % CALIBRATION_EVERY == 0);
        let rest_bank = bank_of(&normalised.select(Axis(0), &rest).view());
        let mut distances = rest_bank.nearest(&normalised.select(Axis(0), &calibration).view());
        distances.sort_by(f32::total_cmp);
        let largest = distances.last().copied().unwrap_or(0.0);
        let threshold = (largest * MARGIN).max(f32::EPSILON);
        let bank = bank_of(&normalised.view());
        let report = FamiliarityReport {
            images: n,
            bank: bank.len(),
            calibration_images: distances.len(),
            calibration_distances: [
                quantile(&distances, 0.5),
                quantile(&distances, 0.99),
                largest,
            ],
            threshold,
        };
        let familiarity = Self {
            mean,
            inv_std,
            bank,
            threshold,
        };
        Ok((familiarity, report))
    }

    /// Distance of `features` to the nearest training image, over the threshold: above 1
    /// the frame is unlike anything the model was trained on.
    pub fn score(&self, features: &Array1<f32>) -> Result<f32, String> {
        if features.len() != self.mean.len() {
            return Err(format!(
                "the network gives {} familiarity features, the model was fitted on {}",
                features.len(),
                self.mean.len()
            ));
        }
        let query = unit((features - &self.mean) * &self.inv_std).insert_axis(Axis(0));
        let distance = self.bank.nearest(&query.view())[0];
        // NaN features (a broken input) must read as unfamiliar, never as familiar.
        Ok(if distance.is_finite() {
            distance / self.threshold
        } else {
            f32::INFINITY
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        weights::save(
            path,
            &[
                ("mean", self.mean.clone().into_dyn()),
                ("inv_std", self.inv_std.clone().into_dyn()),
                ("bank", self.bank.patches().to_owned().into_dyn()),
                ("threshold", Array1::from(vec![self.threshold]).into_dyn()),
            ],
        )
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let weights = Weights::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_weights(&weights).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn from_weights(weights: &Weights) -> Result<Self, String> {
        let vector = |name: &str| -> Result<Array1<f32>, String> {
            weights
                .tensor(name)?
                .into_dimensionality::<Ix1>()
                .map_err(|_| format!("tensor {name:?} is not a vector"))
        };
        let bank = weights
            .tensor("bank")?
            .into_dimensionality::<Ix2>()
            .map_err(|_| "tensor \"bank\" is not a matrix".to_owned())?;
        let (mean, inv_std) = (vector("mean")?, vector("inv_std")?);
        let threshold = vector("threshold")?.first().copied().unwrap_or(0.0);
        if inv_std.len() != mean.len() || bank.ncols() != mean.len() || bank.nrows() == 0 {
            return Err(format!(
                "sizes disagree: mean {}, inv_std {}, bank {:?}",
                mean.len(),
                inv_std.len(),
                bank.dim()
            ));
        }
        if !(threshold.is_finite() && threshold > 0.0) {
            return Err(format!("threshold {threshold} is not a positive distance"));
        }
        Ok(Self {
            mean,
            inv_std,
            bank: MemoryBank::new(bank),
            threshold,
        })
    }
}

fn bank_of(rows: &ArrayView2<'_, f32>) -> MemoryBank {
    let kept = greedy_coreset(rows, BANK_SIZE, SEED);
    MemoryBank::new(rows.select(Axis(0), &kept))
}

fn unit(v: Array1<f32>) -> Array1<f32> {
    let norm = v.dot(&v).sqrt();
    if norm > 0.0 { v / norm } else { v }
}

fn quantile(sorted: &[f32], q: f64) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Stacks feature vectors into rows; None when they differ in length.
pub fn stack(rows: &[Array1<f32>]) -> Option<Array2<f32>> {
    let dim = rows.first()?.len();
    if rows.iter().any(|r| r.len() != dim) {
        return None;
    }
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Array2::from_shape_vec((rows.len(), dim), flat).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng as _, SeedableRng as _};

    /// Two clusters of in-distribution points in 8 dimensions.
    fn training() -> Array2<f32> {
        let mut rng = StdRng::seed_from_u64(3);
        Array2::from_shape_fn((200, 8), |(i, j)| {
            let centre = if (i % 2 == 0) == (j < 4) { 5.0 } else { 1.0 };
            centre + rng.gen_range(-0.5..0.5)
        })
    }

    #[test]
    fn training_images_are_familiar_and_others_are_not() {
        let train = training();
        let (familiarity, report) = Familiarity::fit(&train.view()).expect("fit");
        assert_eq!(report.calibration_images, 40);
        for row in train.rows() {
            assert!(familiarity.score(&row.to_owned()).expect("score") < 1.0);
        }
        // Between the clusters, and far outside both.
        let between = Array1::from(vec![3.0f32; 8]);
        let far = Array1::from(vec![1.0f32, 5.0, 1.0, 5.0, 1.0, 5.0, 1.0, 5.0]);
        assert!(familiarity.score(&between).expect("score") > 1.0);
        assert!(familiarity.score(&far).expect("score") > 1.0);
        let nan = Array1::from(vec![f32::NAN; 8]);
        assert_eq!(familiarity.score(&nan).expect("score"), f32::INFINITY);
        let short = Array1::from(vec![1.0f32; 3]);
        assert!(familiarity.score(&short).is_err());
    }

    #[test]
    fn fitted_familiarity_round_trips_through_its_file() {
        let (familiarity, _) = Familiarity::fit(&training().view()).expect("fit");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("familiarity.safetensors");
        familiarity.save(&path).expect("save");
        let read = Familiarity::load(&path).expect("load");
        let probe = Array1::from(vec![3.0f32; 8]);
        assert_eq!(
            read.score(&probe).expect("score"),
            familiarity.score(&probe).expect("score")
        );
    }

    #[test]
    fn too_few_images_are_refused() {
        let few = Array2::<f32>::zeros((5, 4));
        assert!(
            Familiarity::fit(&few.view())
                .expect_err("5 images")
                .contains("too few")
        );
    }
}
