//! The model runner on the shipped models, real images, and real bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use inspecta_vision::frame::{Frame, FrameError};
use inspecta_vision::inspection::Verdict;
use inspecta_vision::model::manifest::{ColorOrder, Manifest};
use inspecta_vision::model::{Model, ModelError, RunnerOptions};

use common::*;

#[test]
fn casting_model_sorts_good_from_defective_samples() {
    let model = load("casting");
    let mut session = model.session().unwrap();
    let mut correct = 0;
    let mut total = 0;
    for class in ["good", "defect"] {
        for path in images_in(&samples().join("casting").join(class)) {
            let inspection = session.inspect(&Frame::open(&path).unwrap()).unwrap();
            let expected = if class == "good" {
                Verdict::Good
            } else {
                Verdict::Defect {
                    class: "defect".into(),
                }
            };
            correct += usize::from(inspection.verdict == expected);
            total += 1;
            let sum: f32 = inspection.scores.probabilities.iter().sum();
            assert!((sum - 1.0).abs() < 1e-4, "probabilities sum to {sum}");
        }
    }
    assert_eq!(total, 24);
    assert!(correct >= 22, "{correct}/{total} sample parts judged right");
}

#[test]
fn xsdd_model_names_the_defect_class() {
    let model = load("xsdd");
    let mut session = model.session().unwrap();
    let classes = images_in(&samples().join("xsdd"));
    let mut correct = 0;
    for class_dir in &classes {
        let class = class_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for path in images_in(class_dir) {
            let inspection = session.inspect(&Frame::open(&path).unwrap()).unwrap();
            correct += usize::from(
                inspection.verdict
                    == Verdict::Defect {
                        class: class.clone(),
                    },
            );
        }
    }
    assert_eq!(classes.len(), 7);
    assert!(correct >= 12, "{correct}/14 X-SDD samples named right");
}

#[test]
fn sessions_on_several_threads_agree_with_one() {
    let model = load("casting");
    let images = images_in(&samples().join("casting/defect"));
    let mut session = model.session().unwrap();
    let serial: Vec<f32> = images
        .iter()
        .map(|p| {
            session
                .inspect(&Frame::open(p).unwrap())
                .unwrap()
                .scores
                .defect_score
        })
        .collect();
    let parallel: Vec<Vec<f32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let model = &model;
                let images = &images;
                scope.spawn(move || {
                    let mut s = model.session().unwrap();
                    images
                        .iter()
                        .map(|p| {
                            s.inspect(&Frame::open(p).unwrap())
                                .unwrap()
                                .scores
                                .defect_score
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for scores in parallel {
        assert_eq!(scores, serial);
    }
}

#[test]
fn multithreaded_inference_matches_single_threaded() {
    let path = repo().join("models/casting");
    let single = std::sync::Arc::new(
        Model::load(
            &path,
            RunnerOptions {
                intra_op_threads: 1,
            },
        )
        .unwrap(),
    );
    let multi = std::sync::Arc::new(
        Model::load(
            &path,
            RunnerOptions {
                intra_op_threads: 2,
            },
        )
        .unwrap(),
    );
    let frame = Frame::open(&images_in(&samples().join("casting/good"))[0]).unwrap();
    let a = single
        .session()
        .unwrap()
        .inspect(&frame)
        .unwrap()
        .scores
        .probabilities;
    let b = multi
        .session()
        .unwrap()
        .inspect(&frame)
        .unwrap()
        .scores
        .probabilities;
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

fn sample_jpeg() -> Vec<u8> {
    std::fs::read(&images_in(&samples().join("casting/defect"))[0]).unwrap()
}

#[test]
fn truncated_jpeg_is_refused() {
    let jpeg = sample_jpeg();
    let err = Frame::decode(&jpeg[..jpeg.len() * 2 / 3]).unwrap_err();
    assert!(matches!(err, FrameError::TruncatedJpeg), "{err}");
}

#[test]
fn corrupt_jpeg_is_refused() {
    let mut jpeg = sample_jpeg();
    // Keep the SOI marker, destroy the headers that follow it.
    jpeg[2..200].fill(0x5A);
    let err = Frame::decode(&jpeg).unwrap_err();
    assert!(matches!(err, FrameError::Decode(_)), "{err}");
}

#[test]
fn truncated_png_is_refused() {
    let frame = Frame::open(&images_in(&samples().join("casting/good"))[0]).unwrap();
    let image =
        image::RgbImage::from_raw(frame.width(), frame.height(), frame.rgb().to_vec()).unwrap();
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let png = png.into_inner();
    let err = Frame::decode(&png[..png.len() / 2]).unwrap_err();
    assert!(err.to_string().contains("decode"), "{err}");
}

#[test]
fn text_file_is_not_an_image() {
    let err = Frame::decode(b"name,score\nA,1\n").unwrap_err();
    assert!(matches!(err, FrameError::Decode(_)), "{err}");
}

/// Writes `manifest` into a temp dir beside a copy of the X-SDD ONNX and familiarity files.
fn with_manifest(manifest: &str) -> (tempfile::TempDir, Result<Model, ModelError>) {
    let dir = tempfile::tempdir().unwrap();
    for file in ["model.onnx", "familiarity.safetensors"] {
        std::fs::copy(repo().join("models/xsdd").join(file), dir.path().join(file)).unwrap();
    }
    std::fs::write(dir.path().join("model.toml"), manifest).unwrap();
    let result = Model::load(dir.path(), RunnerOptions::default());
    (dir, result)
}

fn xsdd_manifest() -> String {
    std::fs::read_to_string(repo().join("models/xsdd/model.toml")).unwrap()
}

#[test]
fn manifest_with_too_few_labels_is_refused() {
    let mut manifest = Manifest::from_toml(&xsdd_manifest()).unwrap();
    manifest.labels = vec!["a".into(), "b".into(), "c".into()];
    let manifest = manifest.to_toml().unwrap();
    let (_dir, result) = with_manifest(&manifest);
    let err = result.unwrap_err();
    assert!(matches!(err, ModelError::Incompatible { .. }), "{err}");
    assert!(err.to_string().contains("lists 3 labels"), "{err}");
}

#[test]
fn manifest_with_wrong_input_size_is_refused() {
    let manifest = xsdd_manifest().replace("width = 224", "width = 256");
    let (_dir, result) = with_manifest(&manifest);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("model input is [?, 3, 224, 224]"), "{err}");
}

#[test]
fn manifest_with_unknown_key_names_it() {
    let manifest = xsdd_manifest().replace("[decision]", "[decision]\nreject_above = 0.4");
    let (_dir, result) = with_manifest(&manifest);
    let err = result.unwrap_err();
    assert!(matches!(err, ModelError::Manifest { .. }), "{err}");
    assert!(err.to_string().contains("reject_above"), "{err}");
}

#[test]
fn broken_toml_is_refused() {
    let (_dir, result) = with_manifest("name = \"unterminated\nlabels = [");
    assert!(matches!(result.unwrap_err(), ModelError::Manifest { .. }));
}

#[test]
fn model_without_image_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("vector_input.onnx"),
        dir.path().join("model.onnx"),
    )
    .unwrap();
    let manifest = "name = \"v\"\nversion = \"1\"\nonnx = \"model.onnx\"\nlabels = [\"a\", \"b\"]\n[input]\nwidth = 10\nheight = 1\n";
    std::fs::write(dir.path().join("model.toml"), manifest).unwrap();
    let err = Model::load(dir.path(), RunnerOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("model input is [1, 10]"), "{err}");
}

#[test]
fn onnx_without_manifest_or_metadata_is_refused() {
    let err = Model::load(
        &fixtures().join("vector_input.onnx"),
        RunnerOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ModelError::NoManifest { .. }), "{err}");
}

#[test]
fn file_that_is_not_onnx_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("model.onnx");
    std::fs::write(&fake, sample_jpeg()).unwrap();
    let err = Model::load(&fake, RunnerOptions::default()).unwrap_err();
    assert!(matches!(err, ModelError::Onnx { .. }), "{err}");
}

#[test]
fn missing_model_is_refused() {
    let err = Model::load(Path::new("/nonexistent/model"), RunnerOptions::default()).unwrap_err();
    assert!(matches!(err, ModelError::Io { .. }), "{err}");
}

#[test]
fn custom_vision_metadata_stands_in_for_a_manifest() {
    let model = std::sync::Arc::new(
        Model::load(&fixtures().join("custom_vision"), RunnerOptions::default()).unwrap(),
    );
    let manifest = model.manifest();
    assert_eq!(manifest.input.color, ColorOrder::Bgr);
    assert_eq!(manifest.input.std, [255.0; 3]);
    assert_eq!(manifest.labels, ["reddish", "blueish"]);
    let mut session = model.session().unwrap();
    let solid = |rgb: [u8; 3]| Frame::from_rgb8(40, 30, rgb.repeat(40 * 30)).unwrap();
    let red = session.inspect(&solid([255, 0, 0])).unwrap();
    let blue = session.inspect(&solid([0, 0, 255])).unwrap();
    assert_eq!(red.scores.top, 0);
    assert_eq!(blue.scores.top, 1);
    assert!(
        (red.scores.probabilities[0] - 0.8808).abs() < 1e-3,
        "{:?}",
        red.scores
    );
}

#[test]
fn thresholds_change_at_run_time_for_every_session() {
    let model = load("casting");
    let mut session = model.session().unwrap();
    let defect = images_in(&samples().join("casting/defect"))
        .into_iter()
        .map(|p| Frame::open(&p).unwrap())
        .find(|f| {
            let score = session.inspect(f).unwrap().scores.defect_score;
            (0.75..0.999).contains(&score)
        })
        .expect("a defect sample scored between 0.75 and 0.999");
    let before = session.inspect(&defect).unwrap();
    assert!(matches!(before.verdict, Verdict::Defect { .. }));

    // Raise the reject threshold above this part's score: the same part is now good.
    let previous = model.set_thresholds(0.9995, [0.9995, 0.9995]).unwrap();
    assert_eq!(previous.defect_threshold(), 0.5);
    let after = session.inspect(&defect).unwrap();
    assert_eq!(after.verdict, Verdict::Good);
    assert_eq!(model.rule().defect_threshold(), 0.9995);

    // A band that does not hold the threshold is refused, and the rule stays as it was.
    let err = model
        .set_thresholds(0.5, [0.6, 0.9])
        .unwrap_err()
        .to_string();
    assert!(err.contains("uncertain_band"), "{err}");
    assert_eq!(model.rule().defect_threshold(), 0.9995);
}
