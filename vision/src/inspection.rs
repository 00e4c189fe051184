//! What one inspection of one part produced: the verdict, the scores behind it, where the
//! model saw something wrong, and what each stage cost. Every later stage (station, store,
//! panel, plant links) speaks these types, so they depend on nothing but serde.

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    Good,
    Defect { class: String },
    Uncertain,
}

impl Verdict {
    /// The name shown to people and used in reports: `good`, the defect class, or `uncertain`.
    pub fn name(&self) -> &str {
        match self {
            Self::Good => "good",
            Self::Defect { class } => class,
            Self::Uncertain => "uncertain",
        }
    }
}

/// Where in the inspected region a model saw something wrong: a grid laid over the region
/// the model looks at, row-major, 0 for normal and 1 for "at the defect threshold or
/// worse". Anomaly models give one; plain classifiers do not.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatMap {
    width: usize,
    height: usize,
    values: Vec<f32>,
}

impl HeatMap {
    /// None when `values` does not fill a `width` x `height` grid.
    pub fn new(width: usize, height: usize, values: Vec<f32>) -> Option<Self> {
        (width > 0 && height > 0 && values.len() == width * height).then_some(Self {
            width,
            height,
            values,
        })
    }

    pub fn size(&self) -> [usize; 2] {
        [self.width, self.height]
    }

    pub fn values(&self) -> &[f32] {
        &self.values
    }
}

/// What one inference produced, before any rule is applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// One probability per label, in manifest order.
    pub probabilities: Vec<f32>,
    /// `1 - sum(P(good labels))`; 1 for models without a good label.
    pub defect_score: f32,
    /// Index of the most probable label.
    pub top: usize,
}

/// Time spent in each stage of one inspection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageTimings {
    #[serde(serialize_with = "as_millis")]
    pub preprocess: Duration,
    #[serde(serialize_with = "as_millis")]
    pub inference: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    #[serde(flatten)]
    pub verdict: Verdict,
    #[serde(flatten)]
    pub scores: Scores,
    /// Kept out of JSON lines and API answers: a picture, not a figure.
    #[serde(skip)]
    pub heat_map: Option<HeatMap>,
    pub timings_ms: StageTimings,
}
