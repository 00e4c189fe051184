//! `inspecta familiarize`: teaches a model what its training images look like, so a station
//! sends frames unlike them (another part, a covered lens, noise) to the operator instead
//! of trusting a confident class. For models trained elsewhere (the bundled ones, any
//! ONNX classifier); `inspecta train classifier` does this by itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use inspecta_vision::evaluation::dataset::Dataset;
use inspecta_vision::model::familiarity::{Familiarity, FamiliaritySpec, stack};
use inspecta_vision::model::head::pooled_features;
use inspecta_vision::model::manifest::{MANIFEST_FILE, Manifest};
use inspecta_vision::model::{Model, RunnerOptions};
use inspecta_vision::training::{Backbone, FAMILIARITY_FILE};

use super::train::{print_familiarity, print_time_and_memory, progress, threads_or_all};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory (with model.toml) to add familiarity data to.
    model: PathBuf,
    /// The model's training images: class folders (`<data>/<class>/*.jpg`), every class.
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Network outputs (`[1, C, H, W]` feature maps) to compare images by; default: what
    /// the model's trained head reads.
    #[arg(long)]
    features: Vec<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let manifest_path = args.model.join(MANIFEST_FILE);
    let mut manifest = Manifest::from_path(&manifest_path)?;
    let features = match (&args.features, &manifest.head) {
        (given, _) if !given.is_empty() => given.clone(),
        (_, Some(head)) => head.features().to_vec(),
        (_, None) => bail!(
            "{} has no trained head to take features from: name the network's feature maps with --features (the bundled models: `relu2 relu4 features` for models/casting, `add_171` for models/xsdd)",
            args.model.display()
        ),
    };
    let (images, classes) = training_images(&args.data)?;
    let network = Backbone::with_input(
        &args.model.join(&manifest.onnx),
        &manifest.input,
        features.clone(),
    )
    .with_context(|| {
        format!(
            "cannot read the feature maps {features:?} of {}",
            args.model.display()
        )
    })?;
    let bar = progress(images.len(), args.quiet)?;
    let pooled = network.extract(
        &images,
        threads_or_all(args.threads),
        &|| bar.inc(1),
        pooled_features,
    )?;
    bar.finish_and_clear();
    let extract_seconds = started.elapsed().as_secs_f64();
    let (rows, classes): (Vec<_>, Vec<_>) = pooled
        .into_iter()
        .zip(classes)
        .filter_map(|(row, class)| Some((row?, class)))
        .unzip();
    let rows = stack(&rows).context("the feature maps changed size between images")?;
    let (familiarity, report) = Familiarity::fit(&rows.view(), &classes)
        .map_err(|reason| anyhow::anyhow!("{}: {reason}", args.model.display()))?;
    save(&args.model, &familiarity)?;
    manifest.familiarity = Some(FamiliaritySpec {
        weights: FAMILIARITY_FILE.into(),
        features,
    });
    write_manifest(&manifest_path, &manifest)?;
    // The model must load as a station would load it, or nothing was gained.
    Model::load(&args.model, RunnerOptions::default())
        .map(Arc::new)
        .with_context(|| {
            format!(
                "{} does not load with its familiarity data",
                args.model.display()
            )
        })?;
    println!(
        "{}: {} training images read",
        args.model.display(),
        images.len()
    );
    print_familiarity(&report);
    print_time_and_memory(extract_seconds, started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// Every image under the class folders, with the index of its class (by name, across all
/// the folders).
fn training_images(folders: &[PathBuf]) -> anyhow::Result<(Vec<PathBuf>, Vec<usize>)> {
    let mut names: Vec<String> = Vec::new();
    let mut images = Vec::new();
    for folder in folders {
        let dataset = Dataset::discover(folder, &BTreeMap::new())
            .with_context(|| format!("cannot list the images in {}", folder.display()))?;
        for sample in dataset.samples {
            let class = names
                .iter()
                .position(|n| *n == sample.class)
                .unwrap_or_else(|| {
                    names.push(sample.class.clone());
                    names.len() - 1
                });
            images.push((sample.path, class));
        }
    }
    if images.is_empty() {
        bail!("no images in {folders:?}");
    }
    Ok(images.into_iter().unzip())
}

/// Written beside and renamed into place: a station loading the model meanwhile reads the
/// old file or the new one, never half of one.
fn save(model_dir: &Path, familiarity: &Familiarity) -> anyhow::Result<()> {
    let path = model_dir.join(FAMILIARITY_FILE);
    let partial = path.with_extension("safetensors.partial");
    familiarity
        .save(&partial)
        .map_err(|reason| anyhow::anyhow!("cannot write {}: {reason}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))
}

/// Keeps the manifest's leading comment (who wrote it) above the new contents.
fn write_manifest(path: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let old =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let header: String = old
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = format!("{header}{}", manifest.to_toml()?);
    let partial = path.with_extension("toml.partial");
    std::fs::write(&partial, text)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))
}
