//! `inspecta train`: models trained on the box, in Rust, on the bundled frozen backbone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use inspecta_vision::anomaly::{MapShape, defect_score};
use inspecta_vision::evaluation::dataset::Dataset;
use inspecta_vision::evaluation::threshold::CONFIDENCE;
use inspecta_vision::model::familiarity::{FamiliarityReport, FamiliaritySpec};
use inspecta_vision::model::head::{ANOMALY_LABELS, HeadSpec};
use inspecta_vision::model::manifest::{DecisionSpec, Manifest, OutputSpec};
use inspecta_vision::training::{
    self, ANOMALY_FEATURES, ANOMALY_GRID, Backbone, CLASSIFIER_FEATURES, HEAD_FILE, TRUNK_FILE,
    anomaly, classifier,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(Debug, clap::Subcommand)]
enum Kind {
    /// An anomaly model (PatchCore) from a folder of good parts only; gives a heat map.
    Anomaly(AnomalyArgs),
    /// A classifier from class folders (`<data>/<class>/*.jpg`, e.g. `export-dataset` output).
    Classifier(ClassifierArgs),
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Model directory to write (model.toml, backbone.onnx, head.safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Model name in the manifest (default: the --out folder name).
    #[arg(long)]
    name: Option<String>,
    /// Model version in the manifest (default: the UTC time of training, YYYY.MM.DD-HHMMSS).
    #[arg(long)]
    version: Option<String>,
    /// Frozen feature trunk (ONNX) with outputs add_77, add_171 and add_234
    /// [default: the bundled models/backbone/efficientnet_lite0_trunk.onnx, here or installed].
    #[arg(long)]
    backbone: Option<PathBuf>,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
    /// Worker threads for the backbone (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, clap::Args)]
struct AnomalyArgs {
    /// Folder of good parts (images directly inside it, or MVTec `train/good`).
    #[arg(long)]
    good: PathBuf,
    /// Share of training patches kept in the memory bank.
    #[arg(long, default_value_t = 0.01)]
    coreset: f64,
    /// Most patches in the memory bank (bounds inference time).
    #[arg(long, default_value_t = 16_384)]
    max_bank: usize,
    /// Share of good parts the chosen threshold may reject.
    #[arg(long, default_value_t = 0.01)]
    false_reject: f64,
    /// Percentage of good images held out of the bank to choose the threshold.
    #[arg(long, default_value_t = 10)]
    calibration_percent: u8,
    /// Gaussian blur of each anomaly map, in patches (0: none).
    #[arg(long, default_value_t = 2.0)]
    smoothing: f32,
    /// Do not scale each map position by its typical distance on held-out good parts.
    #[arg(long)]
    keep_positions: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
struct ClassifierArgs {
    /// Folder of class sub-folders; repeat to train on several (a seed set and the
    /// operators' reviews from `export-dataset`, whose `provenance.csv` is kept with the model).
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Labels that mean a good part (default: a class named `good`, if any).
    #[arg(long = "good-label")]
    good: Vec<String>,
    /// Optimiser steps (full batch).
    #[arg(long, default_value_t = 500)]
    steps: usize,
    /// L2 penalty on the weights.
    #[arg(long, default_value_t = 1e-3)]
    l2: f32,
    /// Defect scores from LOW up to HIGH go to the operator as uncertain (models with a
    /// good label; default: none).
    #[arg(long, num_args = 2, value_names = ["LOW", "HIGH"])]
    uncertain_band: Option<Vec<f32>>,
    #[command(flatten)]
    common: Common,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.kind {
        Kind::Anomaly(a) => train_anomaly(a),
        Kind::Classifier(c) => train_classifier(c),
    }
}

fn train_anomaly(args: &AnomalyArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..1.0).contains(&args.false_reject) || !(0.0..=1.0).contains(&args.coreset) {
        bail!("--false-reject must be within 0..1 and --coreset within 0..=1");
    }
    let folder = match args.good.join("train/good") {
        mvtec if mvtec.is_dir() => mvtec,
        _ => args.good.clone(),
    };
    let images = training::images_in(&folder)
        .with_context(|| format!("cannot list good images in {}", folder.display()))?;
    let common = &args.common;
    let backbone = load_backbone(common, &ANOMALY_FEATURES)?;
    let options = anomaly::AnomalyOptions {
        coreset_ratio: args.coreset,
        max_bank: args.max_bank,
        calibration_percent: args.calibration_percent,
        false_reject_target: args.false_reject,
        shape: MapShape {
            grid: ANOMALY_GRID,
            smoothing: args.smoothing.max(0.0),
        },
        even_out_positions: !args.keep_positions,
        seed: 0,
        threads: threads(common),
    };
    tracing::info!(images = images.len(), folder = %folder.display(), "training an anomaly model");
    let bar = progress(images.len(), common.quiet)?;
    let trained = anomaly::train(&backbone, &images, &options, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let r = &trained.report;
    let reference = trained.reference_distance;
    let mut manifest = base_manifest(
        common,
        format!(
            "Anomaly model (PatchCore) from {} good parts in {}",
            r.images - r.unreadable,
            folder.display()
        ),
    );
    manifest.labels = ANOMALY_LABELS.map(String::from).to_vec();
    manifest.good = vec![ANOMALY_LABELS[0].to_owned()];
    // Parts within 10 % of the reference distance go to the operator.
    manifest.decision = DecisionSpec {
        uncertain_band: [
            defect_score(0.9 * reference, reference),
            defect_score(1.1 * reference, reference),
        ],
        ..DecisionSpec::default()
    };
    manifest.head = Some(HeadSpec::PatchCore {
        weights: HEAD_FILE.into(),
        features: backbone.outputs.clone(),
        reference_distance: reference,
        grid: r.grid,
        smoothing: r.smoothing,
    });
    manifest.training = Some(provenance(&folder, r)?);
    let model = &trained.model;
    training::write_model_dir(
        &common.out,
        &manifest,
        &backbone.path,
        &model.tensors(),
        // An anomaly model's score already is its distance to the training images.
        None,
        &[],
        common.force,
    )?;
    println!(
        "{}: {} good images ({} held out for the threshold, {} unreadable), {} patches -> bank of {} x {}",
        common.out.display(),
        r.images,
        r.calibration_images,
        r.unreadable,
        r.patches,
        r.bank,
        r.features_per_patch
    );
    println!(
        "held-out good scores: min {:.3}  median {:.3}  max {:.3}; reference distance (defect score 0.5) {:.3}",
        r.calibration_scores.min, r.calibration_scores.median, r.calibration_scores.max, reference
    );
    let f = &r.false_rejects;
    println!(
        "false reject on held-out good images: {:.2}% ({} of {}), at most {:.2}% at {:.0}% confidence",
        f.rate * 100.0,
        f.count,
        f.of,
        f.upper_bound * 100.0,
        CONFIDENCE * 100.0
    );
    if let Some(warning) = &r.warning {
        println!("warning: {warning}");
    }
    if !r.evened_out_positions && !args.keep_positions {
        println!(
            "note: map positions not evened out: {} held-out good images, {} needed \
             (more good images, or a larger --calibration-percent)",
            r.calibration_images,
            anomaly::MIN_SCALE_IMAGES
        );
    }
    print_time_and_memory(r.extract_seconds, r.total_seconds);
    Ok(ExitCode::SUCCESS)
}

fn train_classifier(args: &ClassifierArgs) -> anyhow::Result<ExitCode> {
    if let Some([low, high]) = args.uncertain_band.as_deref() {
        let threshold = DecisionSpec::default().defect_threshold;
        inspecta_vision::model::manifest::check_thresholds(threshold, [*low, *high])
            .map_err(|reason| anyhow::anyhow!("--uncertain-band {low} {high}: {reason}"))?;
    }
    let mut found = Vec::new();
    for folder in &args.data {
        found.extend(Dataset::discover(folder, &BTreeMap::new())?.samples);
    }
    let labels: Vec<String> = found
        .iter()
        .map(|s| s.class.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if labels.len() < 2 {
        bail!(
            "{} has {} class folder(s); a classifier needs at least two",
            data_list(&args.data),
            labels.len()
        );
    }
    let samples: Vec<(PathBuf, usize)> = found
        .iter()
        .map(|s| {
            let class = labels.iter().position(|l| *l == s.class).unwrap_or(0);
            (s.path.clone(), class)
        })
        .collect();
    let reviews = ReviewProvenance::gather(&args.data)?;
    let common = &args.common;
    let backbone = load_backbone(common, &CLASSIFIER_FEATURES)?;
    let options = classifier::ClassifierOptions {
        steps: args.steps,
        l2: args.l2,
        threads: threads(common),
        ..classifier::ClassifierOptions::default()
    };
    tracing::info!(
        images = samples.len(),
        classes = labels.len(),
        "training a classifier"
    );
    let bar = progress(samples.len(), common.quiet)?;
    let trained = classifier::train(&backbone, labels, &samples, &options, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let good = if args.good.is_empty() {
        trained
            .labels
            .iter()
            .filter(|l| *l == "good")
            .cloned()
            .collect()
    } else {
        args.good.clone()
    };
    let r = &trained.report;
    let mut manifest = base_manifest(
        common,
        format!(
            "Classifier ({} classes) on a frozen EfficientNet-Lite0 trunk, from {}",
            trained.labels.len(),
            data_list(&args.data)
        ),
    );
    manifest.labels = trained.labels.clone();
    manifest.good = good;
    if let Some([low, high]) = args.uncertain_band.as_deref() {
        manifest.decision.uncertain_band = [*low, *high];
    }
    manifest.head = Some(HeadSpec::Linear {
        weights: HEAD_FILE.into(),
        features: backbone.outputs.clone(),
    });
    manifest.familiarity = Some(FamiliaritySpec {
        weights: training::FAMILIARITY_FILE.into(),
        features: backbone.outputs.clone(),
    });
    let mut training = provenance(Path::new(&data_list(&args.data)), r)?;
    reviews.describe(&mut training);
    manifest.training = Some(training);
    let manifest = Manifest::from_toml(&manifest.to_toml()?)
        .map_err(|reason| anyhow::anyhow!("the trained manifest is invalid: {reason}"))?;
    let head = &trained.head;
    training::write_model_dir(
        &common.out,
        &manifest,
        &backbone.path,
        &[
            ("mean", head.mean.clone().into_dyn()),
            ("inv_std", head.inv_std.clone().into_dyn()),
            ("weights", head.weights.clone().into_dyn()),
            ("bias", head.bias.clone().into_dyn()),
        ],
        Some(&trained.familiarity),
        &reviews.files()?,
        common.force,
    )?;
    let counts: Vec<String> = r
        .per_class
        .iter()
        .map(|(l, n)| format!("{l} {n}"))
        .collect();
    println!(
        "{}: {} images ({}), {} unreadable, {} features; training accuracy {:.4}, loss {:.4}",
        common.out.display(),
        r.images,
        counts.join(", "),
        r.unreadable,
        r.features,
        r.train_accuracy,
        r.final_loss
    );
    print_familiarity(&r.familiarity);
    print_time_and_memory(r.extract_seconds, r.extract_seconds + r.fit_seconds);
    Ok(ExitCode::SUCCESS)
}

fn data_list(folders: &[PathBuf]) -> String {
    let names: Vec<String> = folders.iter().map(|f| f.display().to_string()).collect();
    names.join(", ")
}

/// The operator reviews a model learnt from: the `provenance.csv` rows `export-dataset`
/// wrote into its data folders, kept with the model as `reviews.csv` so every model can
/// name the records (and people) that taught it.
#[derive(Debug, Default)]
struct ReviewProvenance {
    header: Option<csv::StringRecord>,
    rows: Vec<csv::StringRecord>,
}

impl ReviewProvenance {
    const SOURCE: &str = "provenance.csv";
    const KEPT: &str = "reviews.csv";

    fn gather(folders: &[PathBuf]) -> anyhow::Result<Self> {
        let mut gathered = Self::default();
        for folder in folders {
            let path = folder.join(Self::SOURCE);
            if !path.is_file() {
                continue;
            }
            let mut reader = csv::Reader::from_path(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let header = reader
                .headers()
                .with_context(|| format!("cannot read the header of {}", path.display()))?
                .clone();
            if header.iter().all(|h| h != "record_id") {
                bail!(
                    "{} has no record_id column: is it an export-dataset provenance file?",
                    path.display()
                );
            }
            if gathered.header.as_ref().is_some_and(|h| *h != header) {
                bail!(
                    "{} has other columns than the first provenance.csv",
                    path.display()
                );
            }
            for row in reader.records() {
                gathered
                    .rows
                    .push(row.with_context(|| format!("a bad row in {}", path.display()))?);
            }
            gathered.header = Some(header);
        }
        Ok(gathered)
    }

    /// `reviews` (how many) and `reviews_file` in the manifest's `[training]`.
    fn describe(&self, training: &mut toml::Table) {
        if self.header.is_some() {
            training.insert(
                "reviews".into(),
                toml::Value::Integer(self.rows.len() as i64),
            );
            training.insert("reviews_file".into(), Self::KEPT.into());
        }
    }

    fn files(&self) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
        let Some(header) = &self.header else {
            return Ok(Vec::new());
        };
        let mut writer = csv::Writer::from_writer(Vec::new());
        for row in std::iter::once(header).chain(&self.rows) {
            writer.write_record(row).context("writing reviews.csv")?;
        }
        let bytes = writer.into_inner().context("writing reviews.csv")?;
        Ok(vec![(Self::KEPT, bytes)])
    }
}

/// How far in-distribution images fall from the training set, and where the gate is.
pub fn print_familiarity(r: &FamiliarityReport) {
    let [median, p99, max] = r.calibration_distances;
    println!(
        "familiarity: {} classes; {} held-out images at distance median {median:.2}, p99 {p99:.2}, max {max:.2}; frames beyond {:.2} go to the operator as out_of_distribution",
        r.classes, r.calibration_images, r.threshold
    );
}

fn load_backbone(common: &Common, outputs: &[&str]) -> anyhow::Result<Backbone> {
    let path = match &common.backbone {
        Some(path) => path.clone(),
        None => super::bundled(&Path::new("backbone").join(TRUNK_FILE), "--backbone FILE")?,
    };
    Backbone::load(&path, outputs).with_context(|| {
        format!(
            "cannot load the backbone {} (rebuild it with `make backbone`, or pass --backbone)",
            path.display()
        )
    })
}

fn base_manifest(common: &Common, description: String) -> Manifest {
    let name = common.name.clone().unwrap_or_else(|| {
        common
            .out
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned())
    });
    let version = common.version.clone().unwrap_or_else(|| {
        jiff::Timestamp::now()
            .strftime("%Y.%m.%d-%H%M%S")
            .to_string()
    });
    Manifest {
        name,
        version,
        description,
        onnx: training::BACKBONE_FILE.into(),
        labels: Vec::new(),
        good: Vec::new(),
        input: training::trunk_input(),
        output: OutputSpec::default(),
        decision: DecisionSpec::default(),
        head: None,
        familiarity: None,
        training: None,
    }
}

/// The training report and where the data came from, as the manifest's `[training]` table.
fn provenance(data: &Path, report: &impl serde::Serialize) -> anyhow::Result<toml::Table> {
    let mut table = toml::Table::try_from(report).context("training report")?;
    table.insert("data".into(), data.display().to_string().into());
    table.insert(
        "trained_at".into(),
        jiff::Timestamp::now().to_string().into(),
    );
    if let Some(peak) = peak_memory_mib() {
        table.insert("peak_memory_mib".into(), toml::Value::Integer(peak as i64));
    }
    Ok(table)
}

fn threads(common: &Common) -> usize {
    threads_or_all(common.threads)
}

/// `--threads`, or every core.
pub(super) fn threads_or_all(threads: Option<usize>) -> usize {
    threads
        .unwrap_or_else(crate::engine::available_threads)
        .max(1)
}

pub(super) fn progress(len: usize, quiet: bool) -> anyhow::Result<ProgressBar> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  eta {eta}")
            .context("progress bar template")?,
    );
    Ok(bar)
}

pub(super) fn print_time_and_memory(extract_seconds: f64, total_seconds: f64) {
    let memory = peak_memory_mib().map_or_else(|| "unknown".into(), |m| format!("{m} MiB"));
    println!(
        "time: {total_seconds:.1} s ({extract_seconds:.1} s in the backbone); peak memory {memory}"
    );
}

/// Peak resident memory of this process (Linux `VmHWM`).
fn peak_memory_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
