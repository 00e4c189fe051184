//! `inspecta train anomaly`: a PatchCore model from good parts only. The threshold comes
//! from good parts too: some good images are held out of the memory bank, scored against
//! it, and the reference distance is the score quantile that keeps false rejects at the
//! target rate, since without defect samples there is nothing else to set it from.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ndarray::{Axis, concatenate};
use serde::Serialize;

use super::{Backbone, TrainError, bucket};
use crate::anomaly::{MapShape, PatchCore, coreset, fit_cell_scale, gaussian_blur, patches};
use crate::evaluation::threshold::{BoundedRate, shortfall};

#[derive(Debug, Clone)]
pub struct AnomalyOptions {
    /// Share of all training patches kept in the memory bank.
    pub coreset_ratio: f64,
    /// Upper bound on the bank, which bounds inference time.
    pub max_bank: usize,
    /// Percentage of good images held out to set the threshold.
    pub calibration_percent: u8,
    /// Share of good parts the threshold may reject.
    pub false_reject_target: f64,
    /// Patch grid and blur of each distance map.
    pub shape: MapShape,
    /// Scale each map cell by its typical distance on the held-out good parts.
    pub even_out_positions: bool,
    pub seed: u64,
    pub threads: usize,
}

impl Default for AnomalyOptions {
    fn default() -> Self {
        Self {
            coreset_ratio: 0.01,
            max_bank: 16_384,
            calibration_percent: 10,
            false_reject_target: 0.01,
            shape: MapShape {
                grid: super::ANOMALY_GRID,
                smoothing: 2.0,
            },
            even_out_positions: true,
            seed: 0,
            threads: 1,
        }
    }
}

/// What training measured, kept in the manifest's `[training]` table.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyReport {
    pub images: usize,
    pub calibration_images: usize,
    pub unreadable: usize,
    pub patches: usize,
    pub bank: usize,
    pub features_per_patch: usize,
    /// Image scores (largest patch distance) of the held-out good images.
    pub calibration_scores: ScoreSummary,
    pub reference_distance: f32,
    /// Whether each map position was scaled by its mean on the held-out good images.
    pub evened_out_positions: bool,
    /// Held-out good images at or above the reference distance, with the bound on the rate.
    pub false_rejects: BoundedRate,
    /// Why the held-out images cannot show the false-reject target, when they cannot.
    pub warning: Option<String>,
    pub grid: usize,
    pub smoothing: f32,
    pub extract_seconds: f64,
    pub coreset_seconds: f64,
    pub total_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScoreSummary {
    pub min: f32,
    pub median: f32,
    pub max: f32,
}

#[derive(Debug)]
pub struct AnomalyModel {
    pub model: PatchCore,
    pub reference_distance: f32,
    pub report: AnomalyReport,
}

/// Fewer good images than this cannot give both a bank and a threshold.
const MIN_IMAGES: usize = 8;
/// Held-out good images needed to even out map positions: from 4 the per-cell means were noise
/// (the 24 sample tiles' image AUROC fell from 0.89 to 0.78); from 75 they lifted the full
/// magnetic-tile split's (docs/BENCHMARKS.md).
pub const MIN_SCALE_IMAGES: usize = 5;

pub fn train(
    backbone: &Backbone,
    images: &[PathBuf],
    options: &AnomalyOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<AnomalyModel, TrainError> {
    let started = Instant::now();
    let grid = options.shape.grid;
    let features = backbone.extract(images, options.threads, progress, |maps| {
        patches::patch_features(maps, grid)
    })?;
    let extract_seconds = started.elapsed().as_secs_f64();
    let unreadable = features.iter().filter(|f| f.is_none()).count();
    let (mut fit, mut calibration) = (Vec::new(), Vec::new());
    for (path, image) in images.iter().zip(features) {
        let Some(image) = image else { continue };
        if bucket(path) < options.calibration_percent {
            calibration.push(image);
        } else {
            fit.push(image);
        }
    }
    if fit.len() + calibration.len() < MIN_IMAGES || fit.is_empty() || calibration.is_empty() {
        return Err(TrainError::Data {
            what: "good images".into(),
            reason: format!(
                "{} readable, at least {MIN_IMAGES} are needed (some build the memory bank, \
                 the others set the threshold)",
                fit.len() + calibration.len()
            ),
        });
    }
    let views: Vec<_> = fit.iter().map(|p| p.view()).collect();
    let training = concatenate(Axis(0), &views).map_err(|e| TrainError::Data {
        what: "patch features".into(),
        reason: e.to_string(),
    })?;
    drop(fit);
    let coreset_started = Instant::now();
    let target = ((training.nrows() as f64 * options.coreset_ratio).ceil() as usize)
        .clamp(1, options.max_bank.max(1));
    let keep = coreset::greedy_coreset(&training.view(), target, options.seed);
    let mut model = PatchCore::fit(&training, &keep);
    let coreset_seconds = coreset_started.elapsed().as_secs_f64();

    let maps: Vec<Vec<f32>> = calibration
        .into_iter()
        .map(|mut patches| {
            let distances = model.distances(&mut patches);
            gaussian_blur(&distances, grid, grid, options.shape.smoothing)
        })
        .collect();
    // Too few held-out images leave positions as they are; the report says so.
    let even_out = options.even_out_positions && maps.len() >= MIN_SCALE_IMAGES;
    if even_out && let Some(scale) = fit_cell_scale(&maps) {
        model = model
            .with_cell_scale(scale, grid)
            .map_err(|reason| TrainError::Data {
                what: "cell scale".into(),
                reason,
            })?;
    }
    let mut scores: Vec<f32> = maps
        .into_iter()
        .map(|map| model.scaled(map).into_iter().fold(0.0, f32::max))
        .collect();
    scores.sort_by(f32::total_cmp);
    let reference_distance = quantile(&scores, 1.0 - options.false_reject_target);
    let rejected = scores.len() - scores.partition_point(|&s| s < reference_distance);
    let false_rejects = BoundedRate::new(rejected, scores.len());
    let report = AnomalyReport {
        images: images.len(),
        calibration_images: scores.len(),
        unreadable,
        patches: training.nrows(),
        bank: model.bank().len(),
        features_per_patch: model.dim(),
        calibration_scores: ScoreSummary {
            min: scores[0],
            median: quantile(&scores, 0.5),
            max: scores[scores.len() - 1],
        },
        reference_distance,
        evened_out_positions: model.cell_scale().is_some(),
        false_rejects,
        warning: shortfall(
            &false_rejects,
            options.false_reject_target,
            "held-out good images",
            "a false-reject rate",
        ),
        grid,
        smoothing: options.shape.smoothing,
        extract_seconds,
        coreset_seconds,
        total_seconds: Duration::as_secs_f64(&started.elapsed()),
    };
    Ok(AnomalyModel {
        model,
        reference_distance,
        report,
    })
}

/// Linear interpolation between order statistics of sorted `values`.
fn quantile(sorted: &[f32], q: f64) -> f32 {
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    let t = (position - low as f64) as f32;
    sorted[low] * (1.0 - t) + sorted[high] * t
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 5.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 5.0);
        assert_eq!(quantile(&v, 0.5), 2.5);
    }
}
