//! Offline evaluation of a model on a labelled image folder: per-image inspection on all
//! cores, then the metrics and reports a quality engineer picks models and thresholds by.

pub mod charts;
pub mod compare;
pub mod dataset;
pub mod html;
pub mod metrics;
pub mod pixels;
pub mod threshold;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Serialize;

use crate::decision::DecisionRule;
use crate::frame::Frame;
use crate::inspection::{HeatMap, Verdict};
use crate::model::manifest::InputSpec;
use crate::model::{Model, ModelError};
use dataset::{Dataset, DatasetLayout, MVTEC_GOOD, Sample};
use metrics::{BinaryScores, ClassMetrics, OperatingPoint, Percentiles, RocPoint};
use pixels::PixelScores;
use threshold::Recommendation;

const UNCERTAIN: &str = "uncertain";
/// Points kept on the ROC curve in the report; the AUROC uses every score.
const ROC_POINTS: usize = 400;

fn unknown_folders(classes: &[String]) -> String {
    let quoted: Vec<String> = classes.iter().map(|c| format!("{c:?}")).collect();
    match quoted.as_slice() {
        [one] => format!("class folder {one} is"),
        many => format!("class folders {} are", many.join(", ")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Every unknown folder at once, so the user fixes the command line in one go.
    #[error(
        "{} not a label of the model (labels: {labels}); rename with {}",
        unknown_folders(classes),
        classes.iter().map(|c| format!("--map {c}=<label>")).collect::<Vec<_>>().join(" ")
    )]
    UnknownClasses {
        classes: Vec<String>,
        labels: String,
    },
    #[error("cannot start {threads} worker threads: {source}")]
    Threads {
        threads: usize,
        source: rayon::ThreadPoolBuildError,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    pub threads: usize,
    /// Escape rate the recommended threshold must not exceed.
    pub target_escape_rate: f64,
    /// False-reject rate above the proposed uncertain band.
    pub target_false_reject_rate: f64,
}

/// Ground truth of one sample, resolved against the model's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    Label(usize),
    /// MVTec `good` folder.
    Good,
    /// MVTec defect type the model has no label for: any defect verdict is right.
    OtherDefect,
}

impl Truth {
    /// The truth of a class, or the class back when it is a folder the model has no label for.
    fn resolve(class: &str, rule: &DecisionRule, layout: DatasetLayout) -> Result<Self, String> {
        if let Some(i) = rule.labels().iter().position(|l| l == class) {
            return Ok(Self::Label(i));
        }
        match layout {
            DatasetLayout::MvTec if class == MVTEC_GOOD => Ok(Self::Good),
            DatasetLayout::MvTec => Ok(Self::OtherDefect),
            DatasetLayout::ClassFolders => Err(class.to_owned()),
        }
    }

    fn is_defect(self, rule: &DecisionRule) -> bool {
        match self {
            Self::Label(i) => !rule.is_good_label(i),
            Self::Good => false,
            Self::OtherDefect => true,
        }
    }

    fn accepts(self, rule: &DecisionRule, verdict: &Verdict) -> bool {
        match (self, verdict) {
            (_, Verdict::Uncertain { .. }) => false,
            (Self::Good, v) => *v == Verdict::Good,
            (Self::OtherDefect, v) => matches!(v, Verdict::Defect { .. }),
            (Self::Label(i), Verdict::Good) => rule.is_good_label(i),
            (Self::Label(i), Verdict::Defect { class }) => rule.labels()[i] == *class,
        }
    }

    /// Whether a report column (a verdict name) is this truth's right answer.
    fn matches_column(self, rule: &DecisionRule, column: &str) -> bool {
        match self {
            Self::Label(i) if rule.is_good_label(i) => column == "good",
            Self::Label(i) => rule.labels()[i] == column,
            Self::Good => column == "good",
            // A defect type the model has no label for belongs to its defect column only
            // when it has a single one (an anomaly model's `anomaly`, a good/defect model's
            // `defect`); with several, it belongs to none.
            Self::OtherDefect => {
                let mut defects = (0..rule.labels().len()).filter(|i| !rule.is_good_label(*i));
                match (defects.next(), defects.next()) {
                    (Some(only), None) => rule.labels()[only] == column,
                    _ => false,
                }
            }
        }
    }
}

/// What happened to one image.
#[derive(Debug, Clone, Serialize)]
pub struct SampleOutcome {
    pub path: PathBuf,
    pub truth: String,
    pub truth_is_defect: bool,
    pub verdict: String,
    pub correct: bool,
    pub defect_score: f32,
    pub top_label: String,
    pub top_probability: f32,
    pub decode_ms: f64,
    pub preprocess_ms: f64,
    pub inference_ms: f64,
    /// Kept for misjudged images only, to draw on their thumbnails; not in the JSON.
    #[serde(skip)]
    pub heat_map: Option<HeatMap>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub path: PathBuf,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub path: PathBuf,
    pub labels: Vec<String>,
    pub good: Vec<String>,
    pub defect_threshold: f32,
    pub uncertain_band: [f32; 2],
    /// The lowest defect score not passed: heat-map cells from here on are outlined.
    pub flag_level: f32,
    pub input: InputSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct Confusion {
    /// Row names: ground-truth classes.
    pub truth: Vec<String>,
    /// Column names: verdicts (`good`, defect classes, `uncertain`).
    pub predicted: Vec<String>,
    pub counts: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BinaryReport {
    pub good_images: usize,
    pub defect_images: usize,
    pub auroc: f64,
    /// The manifest's threshold, band ignored.
    pub at_manifest_threshold: OperatingPoint,
    pub recommended: Recommendation,
    pub sweep: Vec<OperatingPoint>,
    pub roc: Vec<RocPoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub decode: Option<Percentiles>,
    pub preprocess: Option<Percentiles>,
    pub inference: Option<Percentiles>,
    pub total: Option<Percentiles>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub model: ModelInfo,
    pub dataset_root: PathBuf,
    pub layout: DatasetLayout,
    pub images: usize,
    pub evaluated: usize,
    pub failed: usize,
    /// Verdict accuracy: uncertain counts as wrong.
    pub accuracy: f64,
    /// Arg-max label accuracy, thresholds and band ignored (images whose class is a label).
    pub top1_accuracy: Option<f64>,
    pub uncertain_rate: f64,
    pub confusion: Confusion,
    pub per_class: BTreeMap<String, ClassMetrics>,
    pub binary: Option<BinaryReport>,
    /// Heat map against ground-truth masks, every pixel of every image (anomaly models on
    /// an MVTec layout with masks).
    pub pixel_auroc: Option<f64>,
    pub latency_ms: Latency,
    pub threads: usize,
    pub wall_seconds: f64,
    pub images_per_second: f64,
    pub samples: Vec<SampleOutcome>,
    pub failures: Vec<Failure>,
}

impl EvalReport {
    pub fn misclassified(&self) -> impl Iterator<Item = &SampleOutcome> {
        self.samples.iter().filter(|s| !s.correct)
    }
}

/// Runs `model` on every image of `dataset`. Unreadable images are reported, never fatal.
/// `progress` is called once per image, from worker threads.
fn resolve_truths(dataset: &Dataset, rule: &DecisionRule) -> Result<Vec<Truth>, EvalError> {
    let mut truths = Vec::with_capacity(dataset.samples.len());
    let mut unknown = BTreeSet::new();
    for sample in &dataset.samples {
        match Truth::resolve(&sample.class, rule, dataset.layout) {
            Ok(truth) => truths.push(truth),
            Err(class) => {
                unknown.insert(class);
            }
        }
    }
    if unknown.is_empty() {
        Ok(truths)
    } else {
        Err(EvalError::UnknownClasses {
            classes: unknown.into_iter().collect(),
            labels: rule.labels().join(", "),
        })
    }
}

pub fn evaluate(
    model: &Arc<Model>,
    dataset: &Dataset,
    options: &EvalOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<EvalReport, EvalError> {
    let rule = &*model.rule();
    let truths = resolve_truths(dataset, rule)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .thread_name(|i| format!("eval-{i}"))
        .build()
        .map_err(|source| EvalError::Threads {
            threads: options.threads,
            source,
        })?;
    let started = Instant::now();
    let results: Vec<Result<(SampleOutcome, Option<PixelScores>), Failure>> = pool.install(|| {
        dataset
            .samples
            .par_iter()
            .zip(&truths)
            .map_init(
                || model.session(),
                |session, (sample, truth)| {
                    let outcome = match session {
                        Ok(session) => inspect_sample(session, rule, sample, *truth),
                        Err(e) => Err(failure(sample, &e)),
                    };
                    progress();
                    outcome
                },
            )
            .collect()
    });
    let wall = started.elapsed();
    let (samples, failures): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    let mut pixels: Option<PixelScores> = None;
    let samples: Vec<SampleOutcome> = samples
        .into_iter()
        .filter_map(Result::ok)
        .map(|(sample, p)| {
            if let Some(p) = p {
                pixels.get_or_insert_with(PixelScores::default).extend(p);
            }
            sample
        })
        .collect();
    let pixel_auroc = pixels
        .and_then(|p| BinaryScores::new(p.normal, p.defect))
        .map(|b| b.auroc());
    let failures: Vec<Failure> = failures.into_iter().filter_map(Result::err).collect();
    for f in &failures {
        tracing::warn!(path = %f.path.display(), error = %f.error, "skipped image");
    }
    let mut report = build_report(model, dataset, &truths, samples, failures, wall, options);
    report.pixel_auroc = pixel_auroc;
    Ok(report)
}

fn failure(sample: &Sample, error: &dyn std::fmt::Display) -> Failure {
    Failure {
        path: sample.path.clone(),
        error: error.to_string(),
    }
}

fn inspect_sample(
    session: &mut crate::model::Session,
    rule: &DecisionRule,
    sample: &Sample,
    truth: Truth,
) -> Result<(SampleOutcome, Option<PixelScores>), Failure> {
    let started = Instant::now();
    let frame = Frame::open(&sample.path).map_err(|e| failure(sample, &e))?;
    let decode = started.elapsed();
    let inspection = session.inspect(&frame).map_err(|e| failure(sample, &e))?;
    let top = inspection.scores.top;
    // Every pixel of a good part is normal (MVTec's pixel AUROC): whether its folder is
    // MVTec's `good` or the model's own good label, as an anomaly model's is.
    let pixels = match &inspection.heat_map {
        Some(heat) if !truth.is_defect(rule) => Some(pixels::split(heat, None)),
        Some(heat) => sample.mask.as_deref().map(|m| pixels::split(heat, Some(m))),
        None => None,
    }
    .transpose()
    .map_err(|e| failure(sample, &e))?;
    let correct = truth.accepts(rule, &inspection.verdict);
    let outcome = SampleOutcome {
        path: sample.path.clone(),
        truth: sample.class.clone(),
        truth_is_defect: truth.is_defect(rule),
        verdict: inspection.verdict.name().to_owned(),
        correct,
        defect_score: inspection.scores.defect_score,
        top_label: rule.labels()[top].clone(),
        top_probability: inspection.scores.probabilities[top],
        decode_ms: ms(decode),
        preprocess_ms: ms(inspection.timings_ms.preprocess),
        inference_ms: ms(inspection.timings_ms.inference),
        heat_map: inspection.heat_map.filter(|_| !correct),
    };
    Ok((outcome, pixels))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn build_report(
    model: &Model,
    dataset: &Dataset,
    truths: &[Truth],
    samples: Vec<SampleOutcome>,
    failures: Vec<Failure>,
    wall: Duration,
    options: &EvalOptions,
) -> EvalReport {
    let rule = &*model.rule();
    let manifest = model.manifest();
    let truth_of: BTreeMap<&PathBuf, Truth> = dataset
        .samples
        .iter()
        .zip(truths)
        .map(|(s, t)| (&s.path, *t))
        .collect();
    let truth = |s: &SampleOutcome| truth_of.get(&s.path).copied().unwrap_or(Truth::OtherDefect);

    let columns = verdict_columns(rule);
    let rows = dataset.classes();
    let mut counts = vec![vec![0; columns.len()]; rows.len()];
    for s in &samples {
        let (Some(r), Some(c)) = (
            rows.iter().position(|r| *r == s.truth),
            columns.iter().position(|c| *c == s.verdict),
        ) else {
            continue;
        };
        counts[r][c] += 1;
    }
    let per_class = columns
        .iter()
        .filter(|c| c.as_str() != UNCERTAIN)
        .map(|c| {
            let predicted = samples.iter().filter(|s| s.verdict == *c);
            let tp = predicted
                .clone()
                .filter(|s| truth(s).matches_column(rule, c))
                .count();
            let support = samples
                .iter()
                .filter(|s| truth(s).matches_column(rule, c))
                .count();
            (c.clone(), ClassMetrics::new(tp, predicted.count(), support))
        })
        .collect();

    let labelled: Vec<(&SampleOutcome, usize)> = samples
        .iter()
        .filter_map(|s| match truth(s) {
            Truth::Label(i) => Some((s, i)),
            _ => None,
        })
        .collect();
    let top1_correct = labelled
        .iter()
        .filter(|(s, i)| {
            let top = rule
                .labels()
                .iter()
                .position(|l| *l == s.top_label)
                .unwrap_or(usize::MAX);
            top == *i || (rule.is_good_label(top) && rule.is_good_label(*i))
        })
        .count();

    let scores_of = |defect: bool| {
        samples
            .iter()
            .filter(|s| s.truth_is_defect == defect)
            .map(|s| s.defect_score)
            .collect()
    };
    let binary = BinaryScores::new(scores_of(false), scores_of(true))
        .filter(|_| rule.has_good_label())
        .map(|b| binary_report(&b, manifest.decision.defect_threshold, options));

    let stage = |f: fn(&SampleOutcome) -> f64| Percentiles::of(samples.iter().map(f).collect());
    let latency_ms = Latency {
        decode: stage(|s| s.decode_ms),
        preprocess: stage(|s| s.preprocess_ms),
        inference: stage(|s| s.inference_ms),
        total: stage(|s| s.decode_ms + s.preprocess_ms + s.inference_ms),
    };

    let evaluated = samples.len();
    EvalReport {
        model: ModelInfo {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            path: model.onnx_path().to_owned(),
            labels: manifest.labels.clone(),
            good: manifest.good.clone(),
            defect_threshold: manifest.decision.defect_threshold,
            uncertain_band: manifest.decision.uncertain_band,
            flag_level: rule.flag_level(),
            input: manifest.input.clone(),
        },
        dataset_root: dataset.root.clone(),
        layout: dataset.layout,
        images: dataset.samples.len(),
        evaluated,
        failed: failures.len(),
        accuracy: ratio(samples.iter().filter(|s| s.correct).count(), evaluated),
        top1_accuracy: (!labelled.is_empty()).then(|| ratio(top1_correct, labelled.len())),
        uncertain_rate: ratio(
            samples.iter().filter(|s| s.verdict == UNCERTAIN).count(),
            evaluated,
        ),
        confusion: Confusion {
            truth: rows,
            predicted: columns,
            counts,
        },
        per_class,
        binary,
        pixel_auroc: None,
        latency_ms,
        threads: options.threads,
        wall_seconds: wall.as_secs_f64(),
        images_per_second: evaluated as f64 / wall.as_secs_f64().max(1e-9),
        samples,
        failures,
    }
}

/// Verdict names in display order: good, the defect classes, uncertain.
fn verdict_columns(rule: &DecisionRule) -> Vec<String> {
    let good = rule.has_good_label().then(|| "good".to_owned());
    let defects = rule
        .labels()
        .iter()
        .enumerate()
        .filter(|(i, _)| !rule.is_good_label(*i))
        .map(|(_, l)| l.clone());
    good.into_iter()
        .chain(defects)
        .chain([UNCERTAIN.to_owned()])
        .collect()
}

fn binary_report(
    scores: &BinaryScores,
    manifest_threshold: f32,
    options: &EvalOptions,
) -> BinaryReport {
    let roc = scores.roc();
    let step = roc.len().div_ceil(ROC_POINTS).max(1);
    let last = roc.len() - 1;
    BinaryReport {
        good_images: scores.good().len(),
        defect_images: scores.defect().len(),
        auroc: scores.auroc(),
        at_manifest_threshold: scores.at(manifest_threshold),
        recommended: threshold::recommend(
            scores,
            options.target_escape_rate,
            options.target_false_reject_rate,
        ),
        sweep: scores.sweep(100),
        roc: roc
            .iter()
            .enumerate()
            .filter(|(i, _)| i % step == 0 || *i == last)
            .map(|(_, p)| *p)
            .collect(),
    }
}
