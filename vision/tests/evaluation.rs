//! Offline evaluation end to end: real images, a bad image in the folder, the reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use inspecta_vision::evaluation::dataset::Dataset;
use inspecta_vision::evaluation::{EvalError, EvalOptions, EvalReport, evaluate, html};

use common::*;

fn options() -> EvalOptions {
    EvalOptions {
        threads: 2,
        target_escape_rate: 0.0,
        target_false_reject_rate: 0.01,
    }
}

fn run(model: &str, folder: &Path, map: &[(&str, &str)]) -> Result<EvalReport, EvalError> {
    let map: BTreeMap<String, String> = map
        .iter()
        .map(|(a, b)| ((*a).into(), (*b).into()))
        .collect();
    let dataset = Dataset::discover(folder, &map).unwrap();
    evaluate(&load(model), &dataset, &options(), &|| {})
}

/// A copy of the casting samples with one corrupt and one truncated image among them.
fn samples_with_bad_images() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for class in ["good", "defect"] {
        let to = dir.path().join(class);
        std::fs::create_dir_all(&to).unwrap();
        for image in images_in(&samples().join("casting").join(class)) {
            std::fs::copy(&image, to.join(image.file_name().unwrap())).unwrap();
        }
    }
    let jpeg = std::fs::read(&images_in(&samples().join("casting/good"))[0]).unwrap();
    std::fs::write(
        dir.path().join("good/zz_truncated.jpeg"),
        &jpeg[..jpeg.len() / 3],
    )
    .unwrap();
    std::fs::write(
        dir.path().join("defect/zz_not_an_image.png"),
        b"not a png at all",
    )
    .unwrap();
    dir
}

#[test]
fn report_counts_add_up_and_bad_images_are_listed() {
    let dir = samples_with_bad_images();
    let report = run("casting", dir.path(), &[]).unwrap();
    assert_eq!(
        (report.images, report.evaluated, report.failed),
        (26, 24, 2)
    );
    let failed: Vec<String> = report
        .failures
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(failed.len(), 2);
    assert!(
        failed.contains(&"zz_truncated.jpeg".to_string())
            && failed.contains(&"zz_not_an_image.png".to_string())
    );
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.error.contains("truncated"))
    );

    let c = &report.confusion;
    assert_eq!(c.truth, ["defect", "good"]);
    assert_eq!(c.predicted, ["good", "defect", "uncertain"]);
    assert_eq!(c.counts.iter().flatten().sum::<usize>(), 24);
    let correct = c.counts[0][1] + c.counts[1][0];
    assert!((report.accuracy - correct as f64 / 24.0).abs() < 1e-12);
    assert!(report.accuracy >= 0.9, "accuracy {}", report.accuracy);

    let binary = report.binary.as_ref().expect("good and defect images");
    assert_eq!((binary.good_images, binary.defect_images), (12, 12));
    assert!(binary.auroc > 0.95, "auroc {}", binary.auroc);
    assert_eq!(
        binary.recommended.point.escape_rate, 0.0,
        "target escape rate 0 must be met"
    );
    let rec = &binary.recommended;
    let nearest = report
        .samples
        .iter()
        .map(|s| (s.defect_score - rec.point.threshold).abs())
        .fold(f32::INFINITY, f32::min);
    assert!(
        rec.margin > 0.0 && (rec.margin - nearest).abs() < 1e-6,
        "the threshold keeps its stated margin to every score: {} vs {nearest}",
        rec.margin
    );
    assert_eq!((rec.escapes.count, rec.escapes.of), (0, 12));
    assert!(
        rec.warnings
            .iter()
            .any(|w| w.starts_with("12 defective parts cannot show")),
        "12 defects cannot support a 0 % escape target: {:?}",
        rec.warnings
    );
    assert_eq!(binary.sweep.len(), 101);
    assert_eq!(report.per_class["good"].support, 12);
    assert!(report.latency_ms.total.is_some() && report.images_per_second > 0.0);
}

#[test]
fn html_and_json_reports_are_complete() {
    let report = run("casting", &samples().join("casting"), &[]).unwrap();
    let page = html::render(&report);
    for part in [
        "Confusion matrix",
        "ROC AUC",
        "<svg",
        "Threshold sweep",
        "Latency per image",
        "</html>",
    ] {
        assert!(page.contains(part), "report lacks {part}");
    }
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(json["samples"].as_array().unwrap().len(), 24);
    assert!(json["binary"]["auroc"].as_f64().unwrap() > 0.95);
    let recommended = &json["binary"]["recommended"];
    assert!(
        recommended["threshold"].is_number() && recommended["escape_rate"].is_number(),
        "the operating point reads as before: {recommended}"
    );
    assert_eq!(recommended["escapes"]["of"], 12);
    assert!(recommended["escapes"]["upper_bound"].as_f64().unwrap() > 0.2);
}

#[test]
fn misclassified_images_get_thumbnails() {
    // The casting model has no idea about steel strips: every X-SDD image is an error
    // of some kind, and each error shows as an embedded thumbnail.
    let report = run(
        "casting",
        &samples().join("xsdd"),
        &[
            ("finishing roll printing", "defect"),
            ("iron sheet ash", "defect"),
            ("oxide scale of plate system", "defect"),
            ("oxide scale of temperature system", "defect"),
            ("red iron", "good"),
            ("slag inclusion", "good"),
            ("surface scratch", "good"),
        ],
    )
    .unwrap();
    let wrong = report.misclassified().count();
    assert!(wrong > 0);
    assert_eq!(
        html::render(&report)
            .matches("data:image/jpeg;base64,")
            .count(),
        wrong
    );
}

#[test]
fn unknown_class_folder_asks_for_a_mapping() {
    let err = run("casting", &datasets().join("casting/train"), &[]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("--map def_front=<label> --map ok_front=<label>"),
        "both folders in one error: {text}"
    );
}

#[test]
fn multi_class_model_without_good_label_has_no_binary_section() {
    let report = run("xsdd", &samples().join("xsdd"), &[]).unwrap();
    assert!(report.binary.is_none());
    assert_eq!(report.per_class.len(), 7);
    assert!(report.top1_accuracy.unwrap() >= 0.85);
}

/// A tenth of the real casting data, through the class-folder mapping a user would type.
#[test]
fn casting_dataset_subset_scores_high() {
    let source = datasets().join("casting/train");
    let dir = tempfile::tempdir().unwrap();
    for (folder, label) in [("ok_front", "ok_front"), ("def_front", "def_front")] {
        let to = dir.path().join(label);
        std::fs::create_dir_all(&to).unwrap();
        for image in images_in(&source.join(folder)).into_iter().step_by(25) {
            std::os::unix::fs::symlink(&image, to.join(image.file_name().unwrap())).unwrap();
        }
    }
    let report = run(
        "casting",
        dir.path(),
        &[("ok_front", "good"), ("def_front", "defect")],
    )
    .unwrap();
    assert!(report.evaluated > 250, "{}", report.evaluated);
    assert_eq!(report.failed, 0);
    assert!(
        report.top1_accuracy.unwrap() >= 0.97,
        "top-1 {:?}",
        report.top1_accuracy
    );
    assert!(report.binary.unwrap().auroc >= 0.99);
}

/// An MVTec AD style category built from the magnetic-tile set: `good` plus defect types the
/// casting model has no label for, which count as defects.
#[test]
fn mvtec_layout_scores_unlabelled_defect_types_as_defects() {
    let source = datasets().join("magnetic_tile");
    let dir = tempfile::tempdir().unwrap();
    for (folder, class) in [("MT_Free", "good"), ("MT_Blowhole", "blowhole")] {
        let images: Vec<_> = images_in(&source.join(folder).join("Imgs"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .take(6)
            .collect();
        let test = dir.path().join("test").join(class);
        std::fs::create_dir_all(&test).unwrap();
        for image in images {
            std::os::unix::fs::symlink(&image, test.join(image.file_name().unwrap())).unwrap();
            if class != "good" {
                let mask = dir.path().join("ground_truth").join(class);
                std::fs::create_dir_all(&mask).unwrap();
                let stem = image.file_stem().unwrap().to_string_lossy().into_owned();
                std::os::unix::fs::symlink(
                    image.with_extension("png"),
                    mask.join(format!("{stem}_mask.png")),
                )
                .unwrap();
            }
        }
    }
    std::fs::create_dir_all(dir.path().join("train/good")).unwrap();
    let dataset = Dataset::discover(dir.path(), &BTreeMap::new()).unwrap();
    assert!(
        dataset
            .samples
            .iter()
            .filter(|s| s.class == "blowhole")
            .all(|s| s.mask.is_some())
    );
    let report = evaluate(&load("casting"), &dataset, &options(), &|| {}).unwrap();
    assert_eq!(report.evaluated, 12);
    assert_eq!(report.confusion.truth, ["blowhole", "good"]);
    let binary = report.binary.expect("good and defect images");
    assert_eq!((binary.good_images, binary.defect_images), (6, 6));
    assert_eq!(report.per_class["good"].support, 6);
    assert_eq!(
        report.per_class["defect"].support, 6,
        "blowhole is no label of the model, whose only defect label takes it"
    );
    // Every blowhole image judged a defect counts as right, whatever class it was given.
    let blowhole_defects = report
        .samples
        .iter()
        .filter(|s| s.truth == "blowhole" && s.verdict == "defect")
        .count();
    let blowhole_right = report
        .samples
        .iter()
        .filter(|s| s.truth == "blowhole" && s.correct)
        .count();
    assert_eq!(blowhole_defects, blowhole_right);
}
