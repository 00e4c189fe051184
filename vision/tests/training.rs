//! Training on the box: an anomaly model from real good magnetic tiles, a classifier from the
//! X-SDD samples, and what damaged data and damaged model files do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use inspecta_vision::evaluation::dataset::Dataset;
use inspecta_vision::evaluation::metrics::BinaryScores;
use inspecta_vision::evaluation::pixels::{self, PixelScores};
use inspecta_vision::evaluation::{EvalOptions, evaluate};
use inspecta_vision::frame::Frame;
use inspecta_vision::inspection::{UncertainReason, Verdict};
use inspecta_vision::model::familiarity::FamiliaritySpec;
use inspecta_vision::model::head::{ANOMALY_LABELS, HeadSpec};
use inspecta_vision::model::manifest::{DecisionSpec, Manifest, OutputSpec};
use inspecta_vision::model::{Model, ModelError, RunnerOptions};
use inspecta_vision::overlay;
use inspecta_vision::training::{
    self, ANOMALY_FEATURES, Backbone, CLASSIFIER_FEATURES, HEAD_FILE, TRUNK_FILE, TrainError,
    anomaly, classifier,
};

use common::*;

fn backbone(outputs: &[&str]) -> Backbone {
    Backbone::load(&repo().join("models/backbone").join(TRUNK_FILE), outputs).unwrap()
}

fn tiles() -> PathBuf {
    samples().join("magnetic_tile")
}

fn manifest(labels: Vec<String>, head: HeadSpec) -> Manifest {
    Manifest {
        name: "test".into(),
        version: "1".into(),
        description: String::new(),
        onnx: training::BACKBONE_FILE.into(),
        good: vec!["good".into()],
        labels,
        input: training::trunk_input(),
        output: OutputSpec::default(),
        decision: DecisionSpec::default(),
        head: Some(head),
        familiarity: None,
        training: None,
    }
}

/// Trained once for the whole file: the good sample tiles plus two damaged files.
fn anomaly_model() -> &'static (PathBuf, anomaly::AnomalyReport) {
    static MODEL: OnceLock<(PathBuf, anomaly::AnomalyReport)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let good = dir.join("good");
        std::fs::create_dir(&good).unwrap();
        let mut images = images_in(&tiles().join("train/good"));
        let first = std::fs::read(&images[0]).unwrap();
        std::fs::write(good.join("truncated.jpg"), &first[..first.len() / 3]).unwrap();
        std::fs::write(good.join("not-an-image.jpg"), b"GIF89a nonsense").unwrap();
        images.push(good.join("truncated.jpg"));
        images.push(good.join("not-an-image.jpg"));
        let backbone = backbone(&ANOMALY_FEATURES);
        let trained = anomaly::train(
            &backbone,
            &images,
            &anomaly::AnomalyOptions {
                coreset_ratio: 0.1,
                // Enough held-out tiles to even out map positions (see the blowhole test).
                calibration_percent: 20,
                ..anomaly::AnomalyOptions::default()
            },
            &|| {},
        )
        .unwrap();
        let out = dir.join("model");
        let head = HeadSpec::PatchCore {
            weights: HEAD_FILE.into(),
            features: backbone.outputs.clone(),
            reference_distance: trained.reference_distance,
            grid: trained.report.grid,
            smoothing: trained.report.smoothing,
        };
        let model = &trained.model;
        training::write_model_dir(
            &out,
            &manifest(ANOMALY_LABELS.map(String::from).to_vec(), head),
            &backbone.path,
            &model.tensors(),
            None,
            &[],
            false,
        )
        .unwrap();
        (out, trained.report)
    })
}

#[test]
fn an_anomaly_model_from_good_tiles_flags_defects_and_points_at_them() {
    let (dir, report) = anomaly_model();
    assert_eq!(report.unreadable, 2, "the truncated and the bogus file");
    assert_eq!(report.images, 26);
    assert!(report.calibration_images > 0 && report.bank > 0);
    assert_eq!(report.features_per_patch, 112 + 192);
    assert!(
        report.evened_out_positions,
        "{} held-out tiles are enough to even out positions",
        report.calibration_images
    );
    // A handful of held-out tiles cannot show a 1 % false-reject rate, and training says so.
    assert_eq!(report.false_rejects.of, report.calibration_images);
    assert!(report.false_rejects.upper_bound > 0.01);
    let warning = report.warning.as_deref().expect("too few held-out tiles");
    assert!(warning.contains("299 held-out good images"), "{warning}");

    let model = Arc::new(Model::load(dir, RunnerOptions::default()).unwrap());
    assert_eq!(model.fingerprint().len(), 64);
    let dataset = Dataset::discover(&tiles(), &Default::default()).unwrap();
    let options = EvalOptions {
        threads: 2,
        target_escape_rate: 0.0,
        target_false_reject_rate: 0.01,
    };
    let eval = evaluate(&model, &dataset, &options, &|| {}).unwrap();
    assert_eq!(eval.evaluated, 12);
    let binary = eval.binary.expect("good and defective tiles");
    assert!(binary.auroc >= 0.8, "image AUROC {}", binary.auroc);
    let pixel = eval
        .pixel_auroc
        .expect("heat maps and masks give a pixel AUROC");
    assert!(pixel >= 0.9, "pixel AUROC {pixel}");
    assert_eq!(pixel, pixel_auroc_by_hand(&model, &dataset));

    let break_tile = images_in(&tiles().join("test/break"))[0].clone();
    let mut session = model.session().unwrap();
    let inspection = session.inspect(&Frame::open(&break_tile).unwrap()).unwrap();
    let heat = inspection
        .heat_map
        .expect("an anomaly model gives a heat map");
    assert_eq!(heat.size(), [28, 28]);
}

/// MVTec's pixel AUROC: every pixel of every test image, a good tile's all normal. The anomaly
/// model's own `good` label must count as MVTec's `good` folder here.
fn pixel_auroc_by_hand(model: &Arc<Model>, dataset: &Dataset) -> f64 {
    let mut session = model.session().unwrap();
    let mut all = PixelScores::default();
    let mut good_tiles = 0;
    for sample in &dataset.samples {
        let heat = session
            .inspect(&Frame::open(&sample.path).unwrap())
            .unwrap()
            .heat_map
            .unwrap();
        let mask = (sample.class != "good").then(|| sample.mask.clone().unwrap());
        good_tiles += usize::from(mask.is_none());
        all.extend(pixels::split(&heat, mask.as_deref()).unwrap());
    }
    assert!(good_tiles > 0);
    BinaryScores::new(all.normal, all.defect).unwrap().auroc()
}

/// Share of the outlined cells that lie on the defect, and of the defect that is outlined.
fn outline_against_mask(model: &Arc<Model>, tile: &Path, mask: &Path) -> (f32, f32) {
    let mut session = model.session().unwrap();
    let inspection = session.inspect(&Frame::open(tile).unwrap()).unwrap();
    let heat = inspection
        .heat_map
        .expect("an anomaly model gives a heat map");
    let o = overlay::overlay(&heat, model.rule().flag_level());
    let mask = image::open(mask).unwrap().to_luma8();
    let mask = image::imageops::resize(
        &mask,
        o.width as u32,
        o.height as u32,
        image::imageops::FilterType::Nearest,
    );
    let on_defect: Vec<bool> = mask.pixels().map(|p| p.0[0] > 127).collect();
    let both = o
        .flagged
        .iter()
        .zip(&on_defect)
        .filter(|(f, d)| **f && **d)
        .count() as f32;
    let flagged = o.flagged.iter().filter(|f| **f).count() as f32;
    let defect = on_defect.iter().filter(|d| **d).count() as f32;
    (both / flagged.max(1.0), both / defect.max(1.0))
}

#[test]
fn the_outline_of_a_blowhole_tile_lies_on_the_blowhole() {
    let (dir, _) = anomaly_model();
    let model = Arc::new(Model::load(dir, RunnerOptions::default()).unwrap());
    for tile in images_in(&tiles().join("test/blowhole")) {
        let stem = tile.file_stem().unwrap().to_string_lossy().into_owned();
        let mask = tiles().join(format!("ground_truth/blowhole/{stem}_mask.png"));
        let (on_defect, covered) = outline_against_mask(&model, &tile, &mask);
        // The pore is a few cells of the 28x28 map, the blur spreads it: the outline is larger
        // than the pore, but it must be around it, not at a corner.
        assert!(
            on_defect > 0.0 && covered >= 0.5,
            "{stem}: {on_defect:.3} of the outlined region on the blowhole, {covered:.3} of it outlined"
        );
    }
}

#[test]
fn a_damaged_or_mismatched_anomaly_model_is_refused_with_its_reason() {
    let (dir, _) = anomaly_model();
    let copy = tempfile::tempdir().unwrap();
    for file in ["model.toml", "backbone.onnx", HEAD_FILE] {
        std::fs::copy(dir.join(file), copy.path().join(file)).unwrap();
    }
    let head = copy.path().join(HEAD_FILE);
    let bytes = std::fs::read(&head).unwrap();
    std::fs::write(&head, &bytes[..bytes.len() / 2]).unwrap();
    let err = refused(copy.path());
    assert!(matches!(err, ModelError::Manifest { .. }), "{err}");
    assert!(err.to_string().contains(HEAD_FILE), "{err}");

    // Only one feature map: the bank was built on 304 features per patch.
    std::fs::write(&head, &bytes).unwrap();
    let manifest_path = copy.path().join("model.toml");
    let mut manifest = Manifest::from_path(&manifest_path).unwrap();
    let Some(HeadSpec::PatchCore { features, .. }) = &mut manifest.head else {
        panic!("an anomaly head")
    };
    features.remove(0);
    std::fs::write(&manifest_path, manifest.to_toml().unwrap()).unwrap();
    let err = refused(copy.path());
    assert!(err.to_string().contains("192 channels"), "{err}");
}

/// The error of a model that must not load (without printing a whole model if it does).
fn refused(dir: &Path) -> ModelError {
    match Model::load(dir, RunnerOptions::default()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(err) => err,
    }
}

#[test]
fn too_few_good_images_are_refused() {
    let images: Vec<PathBuf> = images_in(&tiles().join("train/good"))
        .into_iter()
        .take(3)
        .collect();
    let err = anomaly::train(
        &backbone(&ANOMALY_FEATURES),
        &images,
        &Default::default(),
        &|| {},
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Data { .. }), "{err}");
    assert!(err.to_string().contains("3 readable"), "{err}");
}

#[test]
fn a_classifier_learns_the_sample_classes_and_runs_as_a_model() {
    let data = samples().join("xsdd");
    let dataset = Dataset::discover(&data, &Default::default()).unwrap();
    let labels = dataset.classes();
    let samples: Vec<(PathBuf, usize)> = dataset
        .samples
        .iter()
        .map(|s| {
            (
                s.path.clone(),
                labels.iter().position(|l| *l == s.class).unwrap(),
            )
        })
        .collect();
    let backbone = backbone(&CLASSIFIER_FEATURES);
    let trained = classifier::train(
        &backbone,
        labels.clone(),
        &samples,
        &Default::default(),
        &|| {},
    )
    .unwrap();
    assert_eq!(trained.report.features, 2 * (40 + 112));
    assert!(
        trained.report.train_accuracy >= 0.99,
        "{:?}",
        trained.report
    );

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("xsdd");
    let head = HeadSpec::Linear {
        weights: HEAD_FILE.into(),
        features: backbone.outputs.clone(),
    };
    let mut manifest = manifest(labels, head);
    manifest.good.clear();
    manifest.familiarity = Some(FamiliaritySpec {
        weights: training::FAMILIARITY_FILE.into(),
        features: backbone.outputs.clone(),
    });
    let h = &trained.head;
    let tensors = [
        ("mean", h.mean.clone().into_dyn()),
        ("inv_std", h.inv_std.clone().into_dyn()),
        ("weights", h.weights.clone().into_dyn()),
        ("bias", h.bias.clone().into_dyn()),
    ];
    let write = || {
        training::write_model_dir(
            &dir,
            &manifest,
            &backbone.path,
            &tensors,
            Some(&trained.familiarity),
            &[],
            false,
        )
    };
    write().unwrap();
    let err = write().unwrap_err();
    assert!(matches!(err, TrainError::Exists(_)), "{err}");

    let model = Arc::new(Model::load(&dir, RunnerOptions::default()).unwrap());
    let mut session = model.session().unwrap();
    let right = samples
        .iter()
        .filter(|(path, class)| {
            let inspection = session.inspect(&Frame::open(path).unwrap()).unwrap();
            inspection.scores.top == *class
                && inspection.heat_map.is_none()
                && inspection.scores.familiarity.is_some_and(|f| f <= 1.0)
        })
        .count();
    assert_eq!(right, samples.len());
    // Parts from another line are nothing this model knows: they go to the operator.
    for casting in images_in(&self::samples().join("casting/good")) {
        let inspection = session.inspect(&Frame::open(&casting).unwrap()).unwrap();
        assert_eq!(
            inspection.verdict,
            Verdict::Uncertain {
                reason: UncertainReason::OutOfDistribution
            },
            "{}: {:?}",
            casting.display(),
            inspection.scores
        );
    }
}

#[test]
fn a_class_without_a_readable_image_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff not a jpeg").unwrap();
    let good = images_in(&samples().join("casting/good"))[0].clone();
    let samples = [(good, 0), (broken, 1)];
    let labels = vec!["good".to_owned(), "dent".to_owned()];
    let err = classifier::train(
        &backbone(&CLASSIFIER_FEATURES),
        labels,
        &samples,
        &Default::default(),
        &|| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("\"dent\""), "{err}");
}
