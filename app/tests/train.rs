//! `inspecta train`, `eval --compare` and a shadow model, through the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{free_port, headless, inspecta, repo, terminate};
use serde_json::Value;
use std::process::Output;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the command succeeded and returns what it printed.
fn stdout_of(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn a_classifier_trained_on_the_box_is_compared_with_the_bundled_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("xsdd-rust");
    let out_arg = out.to_str().unwrap();
    let trained = inspecta(&[
        "train",
        "classifier",
        "--data",
        "samples/xsdd",
        "--out",
        out_arg,
        "--quiet",
    ]);
    let stdout = stdout_of(&trained);
    assert!(stdout.contains("training accuracy 1.0000"), "{stdout}");
    let manifest = std::fs::read_to_string(out.join("model.toml")).unwrap();
    assert!(manifest.contains("kind = \"linear\""), "{manifest}");

    let again = inspecta(&[
        "train",
        "classifier",
        "--data",
        "samples/xsdd",
        "--out",
        out_arg,
    ]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );

    let report = dir.path().join("compare");
    let compared = inspecta(&[
        "eval",
        "--compare",
        "models/xsdd",
        out_arg,
        "samples/xsdd",
        "--out",
        report.to_str().unwrap(),
        "--quiet",
    ]);
    let stdout = stdout_of(&compared);
    assert!(stdout.contains("verdict:"), "{stdout}");
    let comparison: Value =
        serde_json::from_slice(&std::fs::read(report.join("compare.json")).unwrap()).unwrap();
    assert_eq!(comparison["criteria"][0]["name"], "verdict accuracy");
    // The Rust head was trained on these very images: it cannot be worse on them.
    assert_ne!(comparison["better"], "A", "{comparison}");
    assert!(report.join("A/report.html").is_file() && report.join("B/report.html").is_file());
}

#[test]
fn an_anomaly_model_is_trained_from_good_tiles_and_evaluated_with_masks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiles");
    let trained = inspecta(&[
        "train",
        "anomaly",
        "--good",
        "samples/magnetic_tile",
        "--out",
        out.to_str().unwrap(),
        "--coreset",
        "0.1",
        "--quiet",
    ]);
    let stdout = stdout_of(&trained);
    assert!(stdout.contains("24 good images"), "{stdout}");
    assert!(stdout.contains("peak memory"), "{stdout}");
    assert!(
        stdout.contains("false reject on held-out good images") && stdout.contains("warning:"),
        "a handful of held-out tiles cannot show 1 % and training says so: {stdout}"
    );
    assert!(
        stdout.contains("map positions not evened out"),
        "too few held-out tiles to even out positions, and training says so: {stdout}"
    );

    let report = dir.path().join("eval");
    let evaluated = inspecta(&[
        "eval",
        "--model",
        out.to_str().unwrap(),
        "samples/magnetic_tile",
        "--out",
        report.to_str().unwrap(),
        "--quiet",
    ]);
    let stdout = stdout_of(&evaluated);
    assert!(stdout.contains("pixel AUC"), "{stdout}");

    // Each tile comes back as a PNG of its own size with the heat map drawn on.
    let overlays = dir.path().join("overlays");
    let blowholes = repo().join("samples/magnetic_tile/test/blowhole");
    let predicted = inspecta(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--overlays",
        overlays.to_str().unwrap(),
        blowholes.to_str().unwrap(),
    ]);
    stdout_of(&predicted);
    for tile in std::fs::read_dir(&blowholes).unwrap() {
        let tile = tile.unwrap().path();
        let drawn = overlays.join(tile.with_extension("png").file_name().unwrap());
        let (original, drawn) = (image::open(&tile).unwrap(), image::open(&drawn).unwrap());
        assert_eq!(
            (drawn.width(), drawn.height()),
            (original.width(), original.height())
        );
    }

    let missing = inspecta(&["train", "anomaly", "--good", "no/such/folder", "--out", "x"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("no/such/folder"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn a_shadow_model_judges_the_same_parts_and_its_disagreements_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("station.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"shadow-test\"\n\
             [model]\npath = \"models/casting\"\nthreads = 1\nshadow = \"models/xsdd\"\n\
             [source]\nkind = \"folder\"\npath = \"{}\"\nparts_per_second = 20.0\n\
             [store]\ndir = \"{}\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n",
            repo().join("samples/casting").display(),
            dir.path().join("records").display()
        ),
    )
    .unwrap();
    let child = headless(&config);
    let client = reqwest::blocking::Client::new();
    let status = |path: &str| -> Option<Value> {
        client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .ok()?
            .json()
            .ok()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let shadow = loop {
        assert!(
            Instant::now() < deadline,
            "the shadow never saw all 24 parts"
        );
        if let Some(s) = status("/status")
            && s["finished"] == true
        {
            let shadow = s["shadow"].clone();
            let seen = ["judged", "skipped", "failed"]
                .iter()
                .map(|k| shadow[k].as_u64().unwrap_or(0))
                .sum::<u64>();
            if seen == 24 {
                break shadow;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(shadow["model"], "xsdd-steel");
    assert_eq!(shadow["fingerprint"].as_str().map(str::len), Some(64));
    let judged = shadow["judged"].as_u64().unwrap();
    assert!(judged > 0, "{shadow}");
    // A steel-defect model calls every casting part some steel defect.
    assert_eq!(shadow["disagreements"], judged, "{shadow}");
    let metrics = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "inspecta_shadow_parts_total{{result=\"disagreed\"}} {judged}"
        )),
        "{metrics}"
    );
    let (exit, log) = terminate(child);
    assert!(exit.success(), "{log}");
    assert!(log.contains("shadow model disagrees"), "{log}");
}
