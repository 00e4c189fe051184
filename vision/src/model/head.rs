//! Heads trained by Inspecta itself on a frozen ONNX backbone: the backbone (run by tract)
//! gives feature maps, the head (plain Rust) turns them into label probabilities, and for
//! anomaly models a heat map. The manifest's `[head]` section says which head and where its
//! weights are.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ArrayView3, Axis};
use serde::{Deserialize, Serialize};

use super::weights::Weights;
use crate::anomaly::{CELL_SCALE, MapShape, PatchCore, defect_score};
use crate::inspection::HeatMap;

/// Labels of an anomaly model: it knows good parts, and everything else.
pub const ANOMALY_LABELS: [&str; 2] = ["good", "anomaly"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HeadSpec {
    /// Nearest-neighbour distance of each patch to a bank of good patches (PatchCore).
    PatchCore {
        /// Weights file, relative to the manifest: tensors `mean`, `inv_std`, `bank`.
        weights: PathBuf,
        /// Backbone outputs, finest first.
        features: Vec<String>,
        /// Patch distance that maps to defect score 0.5; chosen on good parts at training.
        reference_distance: f32,
        /// Side of the square patch grid the maps are resized to.
        grid: usize,
        /// Gaussian blur of the distance map, in patches; the reference was chosen with it.
        #[serde(default)]
        smoothing: f32,
    },
    /// Softmax regression on the mean and max of every backbone channel.
    Linear {
        /// Weights file: tensors `mean`, `inv_std` (feature standardisation), `weights`
        /// `[labels, features]`, `bias`.
        weights: PathBuf,
        features: Vec<String>,
    },
}

impl HeadSpec {
    pub fn features(&self) -> &[String] {
        match self {
            Self::PatchCore { features, .. } | Self::Linear { features, .. } => features,
        }
    }

    pub fn weights(&self) -> &Path {
        match self {
            Self::PatchCore { weights, .. } | Self::Linear { weights, .. } => weights,
        }
    }
}

#[derive(Debug)]
pub enum Head {
    PatchCore {
        model: PatchCore,
        reference_distance: f32,
        shape: MapShape,
    },
    Linear(LinearHead),
}

/// What a head makes of one image.
#[derive(Debug)]
pub struct HeadOutput {
    pub probabilities: Vec<f32>,
    pub heat_map: Option<HeatMap>,
}

impl Head {
    /// Loads the weights `spec` names (relative to `dir`) and checks them against `labels`.
    pub fn load(spec: &HeadSpec, dir: &Path, labels: usize) -> Result<Self, String> {
        let path = dir.join(spec.weights());
        let weights = Weights::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_weights(spec, &weights, labels).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn from_weights(spec: &HeadSpec, weights: &Weights, labels: usize) -> Result<Self, String> {
        let vector = |name: &str| weights.vector(name);
        let matrix = |name: &str| weights.matrix(name);
        match spec {
            HeadSpec::PatchCore {
                reference_distance,
                grid,
                smoothing,
                ..
            } => {
                if labels != ANOMALY_LABELS.len() {
                    return Err(format!(
                        "an anomaly model has the labels {ANOMALY_LABELS:?}, the manifest lists {labels}"
                    ));
                }
                if !(reference_distance.is_finite() && *reference_distance > 0.0) {
                    return Err("`head.reference_distance` must be positive".into());
                }
                if !(1..=256).contains(grid) {
                    return Err(format!("`head.grid` must be within 1..=256, got {grid}"));
                }
                let mut model =
                    PatchCore::from_parts(vector("mean")?, vector("inv_std")?, matrix("bank")?)?;
                if weights.has(CELL_SCALE) {
                    model = model.with_cell_scale(vector(CELL_SCALE)?, *grid)?;
                }
                Ok(Self::PatchCore {
                    model,
                    reference_distance: *reference_distance,
                    shape: MapShape {
                        grid: *grid,
                        smoothing: smoothing.max(0.0),
                    },
                })
            }
            HeadSpec::Linear { .. } => {
                let head = LinearHead {
                    mean: vector("mean")?,
                    inv_std: vector("inv_std")?,
                    weights: matrix("weights")?,
                    bias: vector("bias")?,
                };
                head.check(labels)?;
                Ok(Self::Linear(head))
            }
        }
    }

    /// Channels the backbone maps must add up to.
    pub fn channels(&self) -> usize {
        match self {
            Self::PatchCore { model, .. } => model.dim(),
            Self::Linear(head) => head.mean.len() / 2,
        }
    }

    pub fn apply(&self, maps: &[ArrayView3<'_, f32>]) -> Result<HeadOutput, String> {
        match self {
            Self::PatchCore {
                model,
                reference_distance,
                shape,
            } => {
                let scores = model.score(maps, *shape)?;
                let defect = defect_score(scores.max(), *reference_distance);
                // Each cell on the part's own scale: the part's score is its highest cell.
                let cells = scores
                    .distances
                    .iter()
                    .map(|d| defect_score(*d, *reference_distance))
                    .collect();
                Ok(HeadOutput {
                    probabilities: vec![1.0 - defect, defect],
                    heat_map: HeatMap::new(scores.width, scores.height, cells),
                })
            }
            Self::Linear(head) => Ok(HeadOutput {
                probabilities: head.probabilities(&pooled_features(maps))?,
                heat_map: None,
            }),
        }
    }
}

/// A softmax regression on standardised pooled features.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    pub mean: Array1<f32>,
    pub inv_std: Array1<f32>,
    pub weights: Array2<f32>,
    pub bias: Array1<f32>,
}

impl LinearHead {
    fn check(&self, labels: usize) -> Result<(), String> {
        let d = self.mean.len();
        if self.inv_std.len() != d || self.weights.ncols() != d {
            return Err(format!(
                "feature sizes disagree: mean {d}, inv_std {}, weights {:?}",
                self.inv_std.len(),
                self.weights.dim()
            ));
        }
        if self.weights.nrows() != labels || self.bias.len() != labels {
            return Err(format!(
                "weights {:?} and bias {} do not match the manifest's {labels} labels",
                self.weights.dim(),
                self.bias.len()
            ));
        }
        Ok(())
    }

    /// Raw (unstandardised) pooled features -> label probabilities.
    pub fn probabilities(&self, features: &Array1<f32>) -> Result<Vec<f32>, String> {
        if features.len() != self.mean.len() {
            return Err(format!(
                "the backbone gives {} pooled features, the head takes {}",
                features.len(),
                self.mean.len()
            ));
        }
        let x = (features - &self.mean) * &self.inv_std;
        let logits = self.weights.dot(&x) + &self.bias;
        Ok(super::softmax(
            logits.as_slice().unwrap_or(&logits.to_vec()),
        ))
    }
}

/// Mean then max of every channel of every map, maps in order: mean pooling sees surface
/// texture, max pooling one local blemish.
pub fn pooled_features(maps: &[ArrayView3<'_, f32>]) -> Array1<f32> {
    let mut out = Vec::with_capacity(maps.iter().map(|m| 2 * m.dim().0).sum());
    for map in maps {
        let planes = || map.axis_iter(Axis(0));
        out.extend(planes().map(|p| p.mean().unwrap_or(0.0)));
        out.extend(planes().map(|p| p.fold(f32::NEG_INFINITY, |a, &b| a.max(b))));
    }
    Array1::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, array};

    #[test]
    fn pooling_is_mean_then_max_per_map() {
        let map = Array3::from_shape_vec((1, 2, 2), vec![1.0f32, 2.0, 3.0, 6.0]).expect("shape");
        assert_eq!(pooled_features(&[map.view()]).to_vec(), vec![3.0, 6.0]);
    }

    #[test]
    fn a_linear_head_with_the_wrong_label_count_is_refused() {
        let head = LinearHead {
            mean: array![0.0f32, 0.0],
            inv_std: array![1.0f32, 1.0],
            weights: Array2::zeros((3, 2)),
            bias: Array1::zeros(3),
        };
        assert!(head.check(3).is_ok());
        assert!(head.check(2).expect_err("3 rows").contains("2 labels"));
    }

    #[test]
    fn unknown_head_kind_is_named() {
        let err = toml::from_str::<HeadSpec>("kind = \"svm\"\nweights = \"w\"\nfeatures = []")
            .expect_err("unknown kind");
        assert!(err.to_string().contains("svm"), "{err}");
    }
}
