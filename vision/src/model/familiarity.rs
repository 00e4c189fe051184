//! How familiar a frame looks to the model: the Mahalanobis distance of its pooled features
//! to the nearest class of its training images (Lee et al. 2018: class means, one shared
//! covariance). A classifier knows only its classes, so a covered lens, a part from another
//! line or sensor noise still gets a confident class; this distance is what tells the
//! station the model is out of its depth. The covariance is what makes it work: an image
//! from elsewhere moves the features along combinations the training images never vary in,
//! which a plain distance hardly sees.
//!
//! The threshold is the largest distance of training images held out of the fit, times a
//! margin, so in-distribution parts almost never trip it.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::weights::{self, Weights};

/// Every how-many-th training image is held out of the fit to set the threshold.
const CALIBRATION_EVERY: usize = 5;
/// Headroom over the largest held-out distance: new lots, light changes and camera
/// settings move in-distribution images a little further than the calibration set.
const MARGIN: f32 = 1.25;
/// Weight of the identity in the (standardised) covariance: keeps it invertible when
/// features are fewer than images or move together.
const SHRINKAGE: f64 = 0.01;

/// The manifest's `[familiarity]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamiliaritySpec {
    /// Weights file, relative to the manifest: tensors `mean`, `inv_std`, `class_means`,
    /// `cholesky`, `threshold`.
    pub weights: PathBuf,
    /// Network outputs the features come from: `[1, C, H, W]` maps, each pooled by mean and
    /// max per channel like a linear head's.
    pub features: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Familiarity {
    mean: Array1<f32>,
    inv_std: Array1<f32>,
    /// One row per class, standardised.
    class_means: Array2<f32>,
    /// Lower Cholesky factor of the shared standardised covariance.
    cholesky: Array2<f32>,
    threshold: f32,
}

/// What fitting found, for the training report.
#[derive(Debug, Clone, Serialize)]
pub struct FamiliarityReport {
    pub images: usize,
    pub classes: usize,
    pub calibration_images: usize,
    /// Held-out distances: median, 99th percentile, largest.
    pub calibration_distances: [f32; 3],
    pub threshold: f32,
}

impl Familiarity {
    /// Fits on raw features of in-distribution images (rows) and their class indices.
    pub fn fit(
        features: &ArrayView2<'_, f32>,
        classes: &[usize],
    ) -> Result<(Self, FamiliarityReport), String> {
        let n = features.nrows();
        if n < 2 * CALIBRATION_EVERY || classes.len() != n {
            return Err(format!(
                "{n} images are too few to learn what the model's images look like (at least {})",
                2 * CALIBRATION_EVERY
            ));
        }
        let (calibration, rest): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|i| i % CALIBRATION_EVERY == 0);
        let pick = |rows: &[usize]| {
            let labels: Vec<usize> = rows.iter().map(|&i| classes[i]).collect();
            (features.select(Axis(0), rows), labels)
        };
        let (rest_features, rest_classes) = pick(&rest);
        let without = Self::fit_with_threshold(&rest_features.view(), &rest_classes, 1.0)?;
        let (held_out, _) = pick(&calibration);
        let mut distances: Vec<f32> = held_out
            .rows()
            .into_iter()
            .map(|row| without.distance(&row))
            .collect();
        distances.sort_by(f32::total_cmp);
        let largest = distances.last().copied().unwrap_or(0.0);
        let threshold = (largest * MARGIN).max(f32::EPSILON);
        let familiarity = Self::fit_with_threshold(features, classes, threshold)?;
        let report = FamiliarityReport {
            images: n,
            classes: familiarity.class_means.nrows(),
            calibration_images: distances.len(),
            calibration_distances: [
                quantile(&distances, 0.5),
                quantile(&distances, 0.99),
                largest,
            ],
            threshold,
        };
        Ok((familiarity, report))
    }

    fn fit_with_threshold(
        features: &ArrayView2<'_, f32>,
        classes: &[usize],
        threshold: f32,
    ) -> Result<Self, String> {
        let x = features.mapv(f64::from);
        let dim = x.ncols();
        let mean = x.mean_axis(Axis(0)).ok_or("no features")?;
        let inv_std = x
            .std_axis(Axis(0), 0.0)
            .mapv(|s| if s > 1e-6 { 1.0 / s } else { 1.0 });
        let z = (&x - &mean) * &inv_std;
        let labels = classes.iter().max().map_or(0, |m| m + 1);
        let mut class_means = Array2::<f64>::zeros((labels, dim));
        let mut counts = vec![0usize; labels];
        for (row, &class) in z.rows().into_iter().zip(classes) {
            let mut m = class_means.row_mut(class);
            m += &row;
            counts[class] += 1;
        }
        for (mut m, &count) in class_means.rows_mut().into_iter().zip(&counts) {
            m /= count.max(1) as f64;
        }
        // Within-class scatter: each image less its class mean.
        let mut centred = z;
        for (mut row, &class) in centred.rows_mut().into_iter().zip(classes) {
            row -= &class_means.row(class);
        }
        let n = centred.nrows() as f64;
        let mut covariance = centred.t().dot(&centred) / n;
        covariance *= 1.0 - SHRINKAGE;
        for i in 0..dim {
            covariance[[i, i]] += SHRINKAGE;
        }
        let cholesky =
            cholesky(&covariance).ok_or("the features' covariance is not positive definite")?;
        let populated: Vec<usize> = (0..labels).filter(|&c| counts[c] > 0).collect();
        Ok(Self {
            mean: mean.mapv(|v| v as f32),
            inv_std: inv_std.mapv(|v| v as f32),
            class_means: class_means.select(Axis(0), &populated).mapv(|v| v as f32),
            cholesky: cholesky.mapv(|v| v as f32),
            threshold,
        })
    }

    /// Mahalanobis distance of raw `features` to the nearest class mean.
    fn distance(&self, features: &ArrayView1<'_, f32>) -> f32 {
        let z = (features - &self.mean) * &self.inv_std;
        self.class_means
            .rows()
            .into_iter()
            .map(|m| {
                let y = solve_lower(&self.cholesky, &(&z - &m));
                y.dot(&y)
            })
            .fold(f32::INFINITY, f32::min)
            .sqrt()
    }

    /// Distance of `features` to the training images, over the threshold: above 1 the
    /// frame is unlike anything the model was trained on.
    pub fn score(&self, features: &Array1<f32>) -> Result<f32, String> {
        if features.len() != self.mean.len() {
            return Err(format!(
                "the network gives {} familiarity features, the model was fitted on {}",
                features.len(),
                self.mean.len()
            ));
        }
        let distance = self.distance(&features.view());
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
                ("class_means", self.class_means.clone().into_dyn()),
                ("cholesky", self.cholesky.clone().into_dyn()),
                ("threshold", Array1::from(vec![self.threshold]).into_dyn()),
            ],
        )
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let weights = Weights::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_weights(&weights).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn from_weights(weights: &Weights) -> Result<Self, String> {
        let vector = |name: &str| weights.vector(name);
        let matrix = |name: &str| weights.matrix(name);
        let (mean, inv_std) = (vector("mean")?, vector("inv_std")?);
        let (class_means, cholesky) = (matrix("class_means")?, matrix("cholesky")?);
        let threshold = vector("threshold")?.first().copied().unwrap_or(0.0);
        let d = mean.len();
        if inv_std.len() != d
            || class_means.ncols() != d
            || class_means.nrows() == 0
            || cholesky.dim() != (d, d)
        {
            return Err(format!(
                "sizes disagree: mean {d}, inv_std {}, class_means {:?}, cholesky {:?}",
                inv_std.len(),
                class_means.dim(),
                cholesky.dim()
            ));
        }
        if (0..d).any(|i| cholesky[[i, i]].is_nan() || cholesky[[i, i]] <= 0.0) {
            return Err("the cholesky factor has a diagonal entry that is not positive".into());
        }
        if !(threshold.is_finite() && threshold > 0.0) {
            return Err(format!("threshold {threshold} is not a positive distance"));
        }
        Ok(Self {
            mean,
            inv_std,
            class_means,
            cholesky,
            threshold,
        })
    }
}

/// Lower factor `L` with `L L^T = a`, for a symmetric positive definite `a`.
fn cholesky(a: &Array2<f64>) -> Option<Array2<f64>> {
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for j in 0..n {
        let diagonal = a[[j, j]] - (0..j).map(|k| l[[j, k]] * l[[j, k]]).sum::<f64>();
        // NaN (features that were NaN) is no factor either.
        if diagonal.is_nan() || diagonal <= 0.0 {
            return None;
        }
        let pivot = diagonal.sqrt();
        l[[j, j]] = pivot;
        for i in j + 1..n {
            let dot: f64 = (0..j).map(|k| l[[i, k]] * l[[j, k]]).sum();
            l[[i, j]] = (a[[i, j]] - dot) / pivot;
        }
    }
    Some(l)
}

/// `y` with `l y = v`, for a lower triangular `l` (forward substitution).
fn solve_lower(l: &Array2<f32>, v: &Array1<f32>) -> Array1<f32> {
    let mut y = Array1::<f32>::zeros(v.len());
    for i in 0..v.len() {
        let known: f32 = (0..i).map(|k| l[[i, k]] * y[k]).sum();
        y[i] = (v[i] - known) / l[[i, i]];
    }
    y
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

    /// Two classes in 8 dimensions whose features move together: each class varies along
    /// one shared direction only, plus a little noise.
    fn training() -> (Array2<f32>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(3);
        let mut rows = Vec::new();
        let mut classes = Vec::new();
        for i in 0..400 {
            let class = i % 2;
            let t: f32 = rng.gen_range(-2.0..2.0);
            for j in 0..8 {
                let centre = if class == 0 { 0.0 } else { 5.0 };
                rows.push(centre + t + rng.gen_range(-0.05..0.05) * (j as f32 + 1.0));
            }
            classes.push(class);
        }
        (
            Array2::from_shape_vec((400, 8), rows).expect("shape"),
            classes,
        )
    }

    #[test]
    fn training_images_are_familiar_and_others_are_not() {
        let (train, classes) = training();
        let (familiarity, report) = Familiarity::fit(&train.view(), &classes).expect("fit");
        assert_eq!((report.calibration_images, report.classes), (80, 2));
        for row in train.rows() {
            assert!(familiarity.score(&row.to_owned()).expect("score") < 1.0);
        }
        // Within the training range on every feature, but against how they move together.
        let odd = Array1::from(vec![1.0f32, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]);
        assert!(familiarity.score(&odd).expect("score") > 1.0);
        let far = Array1::from(vec![40.0f32; 8]);
        assert!(familiarity.score(&far).expect("score") > 1.0);
        let nan = Array1::from(vec![f32::NAN; 8]);
        assert_eq!(familiarity.score(&nan).expect("score"), f32::INFINITY);
        let short = Array1::from(vec![1.0f32; 3]);
        assert!(familiarity.score(&short).is_err());
    }

    #[test]
    fn fitted_familiarity_round_trips_through_its_file() {
        let (train, classes) = training();
        let (familiarity, _) = Familiarity::fit(&train.view(), &classes).expect("fit");
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
    fn cholesky_factors_and_solves() {
        let a = ndarray::array![[4.0, 2.0], [2.0, 3.0]];
        let l = cholesky(&a).expect("positive definite");
        assert!((l.dot(&l.t()) - &a).iter().all(|d| d.abs() < 1e-12));
        let y = solve_lower(&l.mapv(|v| v as f32), &ndarray::array![2.0f32, 1.0]);
        assert!((y[0] - 1.0).abs() < 1e-6, "{y}");
        assert!(cholesky(&ndarray::array![[1.0, 2.0], [2.0, 1.0]]).is_none());
    }

    #[test]
    fn too_few_images_are_refused() {
        let few = Array2::<f32>::zeros((5, 4));
        assert!(
            Familiarity::fit(&few.view(), &[0; 5])
                .expect_err("5 images")
                .contains("too few")
        );
    }
}
