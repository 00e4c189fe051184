//! `inspecta run --headless` as a service runs it: a config file, a real source, signals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn write_config(dir: &Path, source: &str) -> (PathBuf, PathBuf) {
    let jsonl = dir.join("verdicts.jsonl");
    let config = dir.join("station.toml");
    let text = format!(
        "[station]\nname = \"test-station\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
         [source]\n{source}\n[output]\njsonl = \"{}\"\n",
        jsonl.display()
    );
    std::fs::write(&config, text).unwrap();
    (config, jsonl)
}

fn station(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inspecta"));
    command
        .current_dir(repo())
        .args(["run", "--headless", "--config"])
        .arg(config);
    command
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is complete JSON"))
        .collect()
}

#[test]
fn folder_line_runs_to_the_end_and_records_every_part() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "kind = \"folder\"\npath = \"{}\"\nparts_per_second = 100.0",
        repo().join("samples/casting").display()
    );
    let (config, jsonl) = write_config(dir.path(), &source);
    let out = station(&config).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = lines(&jsonl);
    assert_eq!(records.len(), 24);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["sequence"], i as u64);
        assert_eq!(r["station"], "test-station");
        assert!(
            ["good", "defect", "uncertain"].contains(&r["verdict"].as_str().unwrap()),
            "{r}"
        );
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("station stopped"));
}

/// A line logs one summary per interval, not one INFO line per part.
#[test]
fn the_log_says_what_the_line_did_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "kind = \"folder\"\npath = \"{}\"\nparts_per_second = 10.0",
        repo().join("samples/casting").display()
    );
    let (config, _) = write_config(dir.path(), &source);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}summary_every_s = 1\n")).unwrap();
    let out = station(&config).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let summaries: Vec<&str> = log.lines().filter(|l| l.contains("parts (")).collect();
    assert!(summaries.len() >= 2, "{log}");
    assert!(
        summaries.iter().any(|l| l.contains("source online")),
        "{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("INFO") && l.contains(" verdict ")),
        "a line per part at INFO: {log}"
    );
}

#[test]
fn sigterm_stops_a_live_station_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (config, jsonl) = write_config(
        dir.path(),
        "kind = \"test_pattern\"\nfps = 30\nwidth = 320\nheight = 240",
    );
    let child = station(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines(&jsonl).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no verdicts from the live source"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    assert!(String::from_utf8_lossy(&out.stderr).contains("station stopped"));
    let records = lines(&jsonl);
    let sequences: Vec<u64> = records
        .iter()
        .map(|r| r["sequence"].as_u64().unwrap())
        .collect();
    assert!(sequences.windows(2).all(|w| w[1] > w[0]), "{sequences:?}");
}

#[test]
fn config_with_a_typo_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = write_config(
        dir.path(),
        "kind = \"folder\"\npath = \"samples/casting\"\nparts_per_minute = 5",
    );
    let out = station(&config).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("parts_per_minute") && err.contains("station.toml"),
        "{err}"
    );
}

#[test]
fn run_without_headless_says_what_to_do() {
    let out = Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .current_dir(repo())
        .args(["run", "--config", "samples/station.example.toml"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--headless"));
}

/// JSON lines of a file a killed process was writing: the last line may be cut short.
fn complete_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn kill_9_at_any_moment_loses_no_committed_record() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records");
    let source = format!(
        "kind = \"folder\"\npath = \"{}\"\nparts_per_second = 500.0\nrepeat = true",
        repo().join("samples/casting").display()
    );
    let (config, jsonl) = write_config(dir.path(), &source);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[store]\ndir = \"{}\"\nimages = \"all\"\n",
        records.display()
    ));
    std::fs::write(&config, text).unwrap();

    // Kill the station several times, each time a little later into its run; every
    // verdict it reported (a JSON line is written only after the commit) must be stored.
    let mut reported = 0;
    for round in 0..4u64 {
        let mut child = station(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while complete_lines(&jsonl).len() < reported + 5 {
            assert!(Instant::now() < deadline, "the station records nothing");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(37 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reported = complete_lines(&jsonl).len();
    }

    let db = rusqlite::Connection::open(records.join("records.sqlite")).unwrap();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let lines = complete_lines(&jsonl);
    assert!(lines.len() >= 20, "{} verdicts reported", lines.len());
    let mut ids = Vec::new();
    for line in &lines {
        let id = line["id"]
            .as_i64()
            .expect("every reported verdict has a record id");
        let (sequence, image): (i64, Option<String>) = db
            .query_row(
                "SELECT sequence, image FROM verdicts WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("record {id} reported but not stored: {e}"));
        assert_eq!(Some(sequence), line["sequence"].as_i64());
        // The image a committed record points to is complete.
        let image = records.join("images").join(image.expect("images = all"));
        image::open(&image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
        ids.push(id);
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids never reused: {ids:?}"
    );
}

/// A folder line killed half-way and started again carries on after the last part it
/// stored: every file is recorded exactly once, none twice, none skipped.
#[test]
fn a_restarted_folder_line_resumes_after_its_last_stored_part() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records");
    let folder = repo().join("samples/casting");
    let source = format!(
        "kind = \"folder\"\npath = \"{}\"\nparts_per_second = 20.0",
        folder.display()
    );
    let (config, jsonl) = write_config(dir.path(), &source);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("[store]\ndir = \"{}\"\n", records.display()));
    std::fs::write(&config, text).unwrap();

    let mut child = station(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while complete_lines(&jsonl).len() < 8 {
        assert!(Instant::now() < deadline, "the station records nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL, half-way through the folder
    child.wait().unwrap();
    let before = complete_lines(&jsonl).len();
    assert!(before < 24, "killed before the end ({before} parts)");

    let out = station(&config).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("folder source resumes"), "{log}");

    let db = rusqlite::Connection::open(records.join("records.sqlite")).unwrap();
    let mut statement = db
        .prepare("SELECT origin, count(*) FROM verdicts GROUP BY origin")
        .unwrap();
    let counts: Vec<(String, i64)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(counts.len(), 24, "every file of the folder is recorded");
    assert!(
        counts.iter().all(|(_, n)| *n == 1),
        "no part recorded twice: {counts:?}"
    );

    // Once the whole folder is stored, a third start judges nothing again.
    let out = station(&config).output().unwrap();
    assert!(out.status.success());
    let total: i64 = db
        .query_row("SELECT count(*) FROM verdicts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(total, 24);
}
