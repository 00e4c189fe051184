//! Faults injected for real into a running station: the disk under its part images or its
//! JSON-lines file fills up, or is mounted read-only, or a crash left a torn line. The disk
//! faults run the real binary in a private mount namespace (`unshare`, no root needed) with
//! a small or read-only tmpfs where the station writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::repo;

/// Parts in `samples/casting`: the line the station judges.
const PARTS: i64 = 24;

/// What a station run inside its namespace left: the JSON lines it wrote, the `.partial`
/// files left on the tmpfs, its log.
struct Run {
    lines: Vec<serde_json::Value>,
    partials: usize,
    log: String,
}

/// Writes a station config over `samples/casting` (store and JSON lines under `dir`).
fn config(dir: &Path, jsonl: &Path) -> std::path::PathBuf {
    let config = dir.join("station.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"faults\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
             [source]\nkind = \"folder\"\npath = \"{}\"\nparts_per_second = 100.0\n\
             [store]\ndir = \"{}\"\n[output]\njsonl = \"{}\"\n",
            repo().join("samples/casting").display(),
            dir.join("store").display(),
            jsonl.display(),
        ),
    )
    .unwrap();
    config
}

/// Runs the station in a private mount namespace with a tmpfs mounted at `mount` with
/// `options`, and reads what it left there before the namespace (and the tmpfs) goes.
fn run_with_tmpfs(dir: &Path, mount: &Path, options: &str, jsonl: &Path) -> Run {
    let config = config(dir, jsonl);
    let script = r#"set -e
mkdir -p "$1"
mount -t tmpfs -o "$2" tmpfs "$1"
"$3" run --headless --config "$4" || { echo "station exit $?" >&2; exit 1; }
cat "$5" 2>/dev/null || true
echo "partials $(find "$1" -name '*.partial' | wc -l)""#;
    let out = Command::new("unshare")
        .args(["--map-root-user", "--mount", "sh", "-c", script, "sh"])
        .arg(mount)
        .arg(options)
        .arg(env!("CARGO_BIN_EXE_inspecta"))
        .arg(&config)
        .arg(jsonl)
        .current_dir(repo())
        .output()
        .expect("unshare (util-linux) runs");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{log}");
    let (lines, partials) = stdout
        .trim_end()
        .rsplit_once('\n')
        .map_or(("", stdout.trim_end()), |(l, p)| (l, p));
    let partials = partials
        .strip_prefix("partials ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no partial count: {stdout}"));
    let lines = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn JSON line {l:?}: {e}")))
        .collect();
    Run {
        lines,
        partials,
        log,
    }
}

/// Polls `/health` every 200 ms until `done` says so; its status and body then.
fn poll_health(
    port: u16,
    what: &str,
    mut done: impl FnMut(reqwest::StatusCode, &serde_json::Value) -> bool,
) -> (reqwest::StatusCode, serde_json::Value) {
    let url = format!("http://127.0.0.1:{port}/health");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "/health never said {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        let Ok(response) = reqwest::blocking::get(&url) else {
            continue;
        };
        let code = response.status();
        let body: serde_json::Value = response.json().unwrap();
        if done(code, &body) {
            return (code, body);
        }
    }
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

fn check_every_part_is_recorded(run: &Run, dir: &Path) -> (i64, i64) {
    assert_eq!(run.partials, 0, "no .partial file is left behind");
    let (all, flagged, with_image) = stored(dir);
    assert_eq!(all, PARTS, "every part has its record\n{}", run.log);
    assert!(flagged > 0, "the samples have defects");
    assert!(
        run.log.contains("part image not kept, its record is"),
        "{}",
        run.log
    );
    // Every verdict in the JSON lines names a stored record.
    let ids = run.lines.iter().filter(|v| v["id"].is_i64()).count();
    assert_eq!(i64::try_from(ids).unwrap(), PARTS);
    (flagged, with_image)
}

#[test]
fn a_full_image_disk_keeps_every_record_and_the_images_that_fit() {
    let dir = tempfile::tempdir().unwrap();
    let (images, jsonl) = (
        dir.path().join("store/images"),
        dir.path().join("verdicts.jsonl"),
    );
    // Room for about two of the sample parts' JPEGs.
    let run = run_with_tmpfs(dir.path(), &images, "size=64k", &jsonl);
    let (flagged, with_image) = check_every_part_is_recorded(&run, dir.path());
    assert!(
        with_image < flagged,
        "some images cannot fit: {with_image} of {flagged}"
    );
}

#[test]
fn a_read_only_image_folder_keeps_every_record_without_images() {
    let dir = tempfile::tempdir().unwrap();
    let (images, jsonl) = (
        dir.path().join("store/images"),
        dir.path().join("verdicts.jsonl"),
    );
    let run = run_with_tmpfs(dir.path(), &images, "ro", &jsonl);
    let (_, with_image) = check_every_part_is_recorded(&run, dir.path());
    assert_eq!(with_image, 0);
}

/// The JSON-lines file fills its disk part-way through the line: judging goes on, every
/// record is stored, and the file holds whole lines only.
#[test]
fn a_full_disk_under_the_json_lines_never_stops_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = run_with_tmpfs(dir.path(), &out, "size=8k", &out.join("verdicts.jsonl"));
    assert_eq!(stored(dir.path()).0, PARTS, "{}", run.log);
    let written = i64::try_from(run.lines.len()).unwrap();
    assert!(
        0 < written && written < PARTS,
        "{written} lines fit in 8 KiB"
    );
    // Whole lines (they parsed), in the order the parts were judged.
    let sequences: Vec<u64> = run
        .lines
        .iter()
        .map(|l| l["sequence"].as_u64().unwrap())
        .collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    assert_eq!(sequences[0], 0);
    assert!(
        run.log.contains("verdict left out of the JSON-lines file"),
        "{}",
        run.log
    );
}

/// A line torn by a crash (the disk filled, the power went) is cut off when the station
/// starts again, so the next line does not run into it.
#[test]
fn a_json_line_torn_by_a_crash_is_cut_off_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("verdicts.jsonl");
    std::fs::write(&jsonl, "{\"id\":1,\"sequence\":0}\n{\"id\":2,\"seq").unwrap();
    let config = config(dir.path(), &jsonl);
    let out = common::inspecta(&["run", "--headless", "--config", config.to_str().unwrap()]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("cutting off a JSON line torn"), "{log}");
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(i64::try_from(lines.len()).unwrap(), 1 + PARTS);
    assert_eq!(lines[0]["id"], 1);
}

/// The store's own disk fills while the line runs: `/health` turns 503 and says the store is
/// not keeping verdicts, so a monitor alarms instead of trusting a yield of 100 %.
#[test]
fn a_store_on_a_full_disk_makes_health_fail_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let port = common::free_port();
    let config = dir.path().join("station.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"faults\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
             [source]\nkind = \"folder\"\npath = \"{}\"\nparts_per_second = 50.0\nrepeat = true\n\
             [store]\ndir = \"{}\"\nimages = \"none\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n",
            repo().join("samples/casting").display(),
            store.display(),
        ),
    )
    .unwrap();
    let script = r#"set -e
mkdir -p "$1"
mount -t tmpfs -o size=256k tmpfs "$1"
exec "$2" run --headless --config "$3""#;
    let child = Command::new("unshare")
        .args(["--map-root-user", "--mount", "sh", "-c", script, "sh"])
        .arg(&store)
        .arg(env!("CARGO_BIN_EXE_inspecta"))
        .arg(&config)
        .current_dir(repo())
        .env_remove("INSPECTA_API_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen_ok = false;
    let health = poll_health(port, "the store fails", |code, body| {
        seen_ok |= code == reqwest::StatusCode::OK;
        body["store"] == "failing"
    });
    let (status, log) = common::terminate(child);
    assert!(seen_ok, "healthy before the disk filled\n{log}");
    assert_eq!(health.0, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let reasons = health.1["reasons"].to_string();
    assert!(
        reasons.contains("store: verdicts are not being kept"),
        "{reasons}"
    );
    assert!(log.contains("verdict not stored"), "{log}");
    assert!(
        status.success(),
        "a full store does not crash the station\n{log}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "injects its panic through a fail point: build with --features failpoints (make test does)"
)]
fn a_panic_on_a_station_thread_ends_the_process_for_its_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("verdicts.jsonl");
    let config = config(dir.path(), &jsonl);
    // The capture thread panics on its sixth frame, as a bug in a source would make it.
    let out = Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .current_dir(repo())
        .args(["run", "--headless", "--config"])
        .arg(&config)
        .env(
            "FAILPOINTS",
            "capture-frame=5*off->panic(injected capture fault)",
        )
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(70), "{log}");
    assert!(
        log.contains("thread 'capture'")
            && log.contains("panicked")
            && log.contains("injected capture fault"),
        "{log}"
    );
    assert!(log.contains("supervisor restarts it"), "{log}");
    // Whatever was stored before the panic is intact and readable.
    let (records, _, _) = stored(dir.path());
    assert!(records <= 5, "{records} records from 5 frames");
}

/// A model that fails on every frame (a fail point makes each inference return an error)
/// leaves a station that captures but judges nothing: `/health` must say so, with the
/// reason, instead of "ok".
#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "injects its fault through a fail point: build with --features failpoints (make test does)"
)]
fn a_model_failing_on_every_frame_makes_health_fail_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = dir.path().join("station.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"faults\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
             [source]\nkind = \"folder\"\npath = \"{}\"\nparts_per_second = 50.0\nrepeat = true\n\
             [store]\ndir = \"{}\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n",
            repo().join("samples/casting").display(),
            dir.path().join("store").display(),
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .current_dir(repo())
        .args(["run", "--headless", "--config"])
        .arg(&config)
        .env("FAILPOINTS", "inspect-frame=return(injected model fault)")
        .env_remove("INSPECTA_API_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let health = poll_health(port, "the model fails", |_, body| {
        body["model"] == "failing"
    });
    let (status, log) = common::terminate(child);
    assert_eq!(health.0, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let reasons = health.1["reasons"].to_string();
    assert!(
        reasons.contains("model: the last") && reasons.contains("injected model fault"),
        "{reasons}"
    );
    assert!(log.contains("frame not inspected"), "{log}");
    assert!(status.success(), "{log}");
    let (records, _, _) = stored(dir.path());
    assert_eq!(records, 0, "a frame that was not judged is never recorded");
}
