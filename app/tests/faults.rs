//! Faults injected for real into a running station: the disk under its part images fills
//! up, or is mounted read-only. Each runs the real binary in a private mount namespace
//! (`unshare`, no root needed) with a tmpfs over the store's `images` folder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::repo;

/// Parts in `samples/casting`: the line the station judges.
const PARTS: i64 = 24;

/// Runs a station over `samples/casting` with its images on a tmpfs mounted with `options`;
/// stdout ends with the number of `.partial` files left on that tmpfs.
fn run_with_images_on(dir: &Path, options: &str) -> Output {
    let store = dir.join("store");
    let config = dir.join("station.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"faults\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
             [source]\nkind = \"folder\"\npath = \"{}\"\nparts_per_second = 100.0\n\
             [store]\ndir = \"{}\"\n[output]\njsonl = \"{}\"\n",
            repo().join("samples/casting").display(),
            store.display(),
            dir.join("verdicts.jsonl").display(),
        ),
    )
    .unwrap();
    let script = r#"set -e
mkdir -p "$1/images"
mount -t tmpfs -o "$2" tmpfs "$1/images"
"$3" run --headless --config "$4" || echo "station exit $?"
find "$1/images" -name '*.partial' | wc -l"#;
    Command::new("unshare")
        .args(["--map-root-user", "--mount", "sh", "-c", script, "sh"])
        .arg(&store)
        .arg(options)
        .arg(env!("CARGO_BIN_EXE_inspecta"))
        .arg(&config)
        .current_dir(repo())
        .output()
        .expect("unshare (util-linux) runs")
}

/// (records, records of non-good parts, of those the ones with an image).
fn stored(dir: &Path) -> (i64, i64, i64) {
    let db = rusqlite::Connection::open(dir.join("store/records.sqlite")).unwrap();
    let all: i64 = db
        .query_row("SELECT count(*) FROM verdicts", [], |r| r.get(0))
        .unwrap();
    let (flagged, with_image) = db
        .query_row(
            "SELECT count(*), count(image) FROM verdicts WHERE verdict != 'good'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    (all, flagged, with_image)
}

fn check_every_part_is_recorded(out: &Output, dir: &Path) -> (i64, i64) {
    let log = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{log}");
    assert!(!stdout.contains("station exit"), "{stdout}\n{log}");
    assert_eq!(stdout.trim(), "0", "no .partial file is left behind");
    let (all, flagged, with_image) = stored(dir);
    assert_eq!(all, PARTS, "every part has its record\n{log}");
    assert!(flagged > 0, "the samples have defects");
    assert!(log.contains("part image not kept, its record is"), "{log}");
    // Every verdict in the JSON lines names a stored record.
    let lines = std::fs::read_to_string(dir.join("verdicts.jsonl")).unwrap();
    let ids = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["id"].is_i64())
        .count();
    assert_eq!(i64::try_from(ids).unwrap(), PARTS);
    (flagged, with_image)
}

#[test]
fn a_full_image_disk_keeps_every_record_and_the_images_that_fit() {
    let dir = tempfile::tempdir().unwrap();
    // Room for about two of the sample parts' JPEGs.
    let out = run_with_images_on(dir.path(), "size=64k");
    let (flagged, with_image) = check_every_part_is_recorded(&out, dir.path());
    assert!(
        with_image < flagged,
        "some images cannot fit: {with_image} of {flagged}"
    );
}

#[test]
fn a_read_only_image_folder_keeps_every_record_without_images() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_images_on(dir.path(), "ro");
    let (_, with_image) = check_every_part_is_recorded(&out, dir.path());
    assert_eq!(with_image, 0);
}
