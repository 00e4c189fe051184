//! Frames no model may pass: blank frames (a covered lens, a dead light), noise, a
//! thumbnail, a part from another line. Each must go to the operator as `uncertain` with
//! its reason, through `predict`, the live station and its metrics, while the parts the
//! models were made for keep their verdicts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, headless, inspecta, repo, terminate};
use image::{Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// Writes the frames a camera shows when something is wrong, as real PNG files.
fn write_bad_frames(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut rng = StdRng::seed_from_u64(5);
    let mut frames = vec![
        ("black.png", RgbImage::new(300, 300), "no_part"),
        (
            "white.png",
            RgbImage::from_pixel(300, 300, Rgb([255; 3])),
            "no_part",
        ),
        (
            "grey.png",
            RgbImage::from_pixel(300, 300, Rgb([128; 3])),
            "no_part",
        ),
        (
            "capped-lens.png",
            RgbImage::from_fn(300, 300, |_, _| Rgb([rng.gen_range(0..10); 3])),
            "no_part",
        ),
        (
            "noise.png",
            RgbImage::from_fn(300, 300, |_, _| Rgb(rng.r#gen())),
            "out_of_distribution",
        ),
        (
            "thumbnail.png",
            RgbImage::from_fn(16, 16, |x, y| Rgb([(x * 16) as u8, (y * 16) as u8, 90])),
            "too_small",
        ),
    ];
    frames
        .drain(..)
        .map(|(name, image, reason)| {
            let path = dir.join(name);
            image.save(&path).unwrap();
            (path, reason)
        })
        .collect()
}

/// Every image in the sample folders under `folder`, sorted.
fn samples(folder: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for class in std::fs::read_dir(repo().join(folder)).unwrap() {
        for file in std::fs::read_dir(class.unwrap().path()).unwrap() {
            files.push(file.unwrap().path());
        }
    }
    files.sort();
    files
}

/// `inspecta predict --json` on `images`: one JSON object per image.
fn predict(model: &str, images: &[PathBuf]) -> Vec<serde_json::Value> {
    let mut args = vec!["predict", "--json", "--model", model];
    let paths: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let out = inspecta(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn blank_noisy_and_tiny_frames_are_never_judged() {
    let dir = tempfile::tempdir().unwrap();
    let frames = write_bad_frames(dir.path());
    let paths: Vec<PathBuf> = frames.iter().map(|(p, _)| p.clone()).collect();
    for model in ["models/casting", "models/xsdd"] {
        for (line, (path, reason)) in predict(model, &paths).iter().zip(&frames) {
            assert_eq!(
                (line["verdict"].as_str(), line["reason"].as_str()),
                (Some("uncertain"), Some(*reason)),
                "{model} on {}: {line}",
                path.display()
            );
        }
    }
}

#[test]
fn a_part_from_another_line_is_out_of_distribution() {
    // Steel strip shown to the casting model, castings shown to the steel model.
    for (model, foreign) in [
        ("models/casting", samples("samples/xsdd")),
        ("models/xsdd", samples("samples/casting")),
    ] {
        let lines = predict(model, &foreign);
        assert_eq!(lines.len(), foreign.len());
        for (line, path) in lines.iter().zip(&foreign) {
            assert_eq!(
                (line["verdict"].as_str(), line["reason"].as_str()),
                (Some("uncertain"), Some("out_of_distribution")),
                "{model} on {}: {line}",
                path.display()
            );
            assert!(line["familiarity"].as_f64().unwrap() > 1.0, "{line}");
        }
    }
}

#[test]
fn the_parts_a_model_was_made_for_stay_familiar() {
    for (model, own) in [
        ("models/casting", samples("samples/casting")),
        ("models/xsdd", samples("samples/xsdd")),
    ] {
        for (line, path) in predict(model, &own).iter().zip(&own) {
            assert_ne!(
                line["reason"].as_str(),
                Some("out_of_distribution"),
                "{model} on {}: {line}",
                path.display()
            );
            assert!(line["familiarity"].as_f64().unwrap() <= 1.0, "{line}");
        }
    }
}

#[test]
fn the_live_station_sends_blank_frames_to_the_operator_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    let frames = write_bad_frames(&parts);
    for (i, sample) in samples("samples/casting").iter().take(4).enumerate() {
        std::fs::copy(sample, parts.join(format!("part-{i}.jpeg"))).unwrap();
    }
    let port = free_port();
    let jsonl = dir.path().join("verdicts.jsonl");
    let config = dir.path().join("station.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"gate\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
             [source]\nkind = \"folder\"\npath = \"{}\"\nparts_per_second = 50.0\n\
             [store]\ndir = \"{}\"\n[output]\njsonl = \"{}\"\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\n",
            parts.display(),
            dir.path().join("store").display(),
            jsonl.display()
        ),
    )
    .unwrap();
    let station = headless(&config);
    let metrics = wait_for_metrics(port, frames.len() + 4);
    let status: serde_json::Value =
        reqwest::blocking::get(format!("http://127.0.0.1:{port}/status"))
            .unwrap()
            .json()
            .unwrap();
    assert_eq!(status["uncertain"]["no_part"], 4, "{status}");
    let (status, log) = terminate(station);
    assert!(status.success(), "{log}");

    let count = |reason: &str| {
        let line = format!("inspecta_uncertain_total{{reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {line} in\n{metrics}"))
    };
    assert_eq!(count("no_part"), 4, "{metrics}");
    assert_eq!(count("out_of_distribution"), 1, "{metrics}");
    assert_eq!(count("too_small"), 1, "{metrics}");

    let records: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (path, reason) in &frames {
        let name = path.file_name().unwrap().to_string_lossy();
        let record = records
            .iter()
            .find(|r| r["origin"].as_str().is_some_and(|o| o.ends_with(&*name)))
            .unwrap_or_else(|| panic!("no verdict for {name}"));
        assert_eq!(record["verdict"], "uncertain", "{record}");
        assert_eq!(record["reason"], *reason, "{record}");
    }
    let judged = records
        .iter()
        .filter(|r| r["origin"].as_str().is_some_and(|o| o.contains("part-")))
        .filter(|r| r["verdict"] != "uncertain")
        .count();
    assert_eq!(judged, 4, "the real parts still get verdicts: {records:?}");
}

/// `/metrics` once the station has inspected `parts` frames.
fn wait_for_metrics(port: u16, parts: usize) -> String {
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        let inspected: u64 = text
            .lines()
            .filter(|l| l.starts_with("inspecta_verdicts_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        if inspected as usize >= parts {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the station did not inspect {parts} frames:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
