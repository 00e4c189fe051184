//! What one inspection of one part produced: the verdict, the scores behind it, where the
//! model saw something wrong, and what each stage cost. Every later stage (station, store,
//! panel, plant links) speaks these types, so they depend on nothing but serde.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    Good,
    Defect {
        class: String,
    },
    /// The operator decides; the reason says why the model did not.
    Uncertain {
        reason: UncertainReason,
    },
}

/// Why a part went to the operator instead of getting a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UncertainReason {
    /// The defect score fell in the uncertain band, or no defect class was sure enough.
    LowConfidence,
    /// Nothing in view: a covered lens, a dead light, a blank frame.
    NoPart,
    /// Too few pixels for the model's input to mean anything.
    TooSmall,
    /// Unlike anything the model was trained on: another part, another scene, noise.
    OutOfDistribution,
    /// A trigger that got no frame in time: the part was there, the picture was not.
    NoFrame,
}

impl UncertainReason {
    pub const ALL: [Self; 5] = [
        Self::LowConfidence,
        Self::NoPart,
        Self::TooSmall,
        Self::OutOfDistribution,
        Self::NoFrame,
    ];

    /// The name used in records, metrics and the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::LowConfidence => "low_confidence",
            Self::NoPart => "no_part",
            Self::TooSmall => "too_small",
            Self::OutOfDistribution => "out_of_distribution",
            Self::NoFrame => "no_frame",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// What the operator reads.
    pub fn describe(self) -> &'static str {
        match self {
            Self::LowConfidence => "the model is not sure",
            Self::NoPart => "no part in view (blank frame)",
            Self::TooSmall => "image too small to judge",
            Self::OutOfDistribution => "unlike the parts the model was trained on",
            Self::NoFrame => "no picture came for this part",
        }
    }
}

impl Verdict {
    /// The name shown to people and used in reports: `good`, the defect class, or `uncertain`.
    pub fn name(&self) -> &str {
        match self {
            Self::Good => "good",
            Self::Defect { class } => class,
            Self::Uncertain { .. } => "uncertain",
        }
    }

    /// Why the operator has to decide, for uncertain verdicts.
    pub fn uncertain_reason(&self) -> Option<UncertainReason> {
        match self {
            Self::Uncertain { reason } => Some(*reason),
            _ => None,
        }
    }
}

/// Where in the inspected region a model saw something wrong: a grid laid over the region
/// the model looks at, row-major, each cell a defect score on the part's own scale (the
/// part's score is its highest cell), so the decision rule's threshold applies to cells too.
/// Anomaly models give one; plain classifiers do not.
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
    /// Distance of the frame's features to the training images', relative to the largest
    /// distance seen on in-distribution images: above 1 the model is out of its depth.
    /// None for models without familiarity data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub familiarity: Option<f32>,
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

impl Inspection {
    /// A triggered part that got no frame: still a part, so it is recorded, counted and
    /// sent, as `uncertain` with reason `no_frame`, no scores and no cost.
    pub fn no_frame() -> Self {
        Self {
            verdict: Verdict::Uncertain {
                reason: UncertainReason::NoFrame,
            },
            scores: Scores {
                probabilities: Vec::new(),
                defect_score: 0.0,
                top: 0,
                familiarity: None,
            },
            heat_map: None,
            timings_ms: StageTimings::default(),
        }
    }
}
