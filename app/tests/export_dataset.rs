//! `inspecta export-dataset`: a real headless station fills its store, parts are reviewed
//! over its HTTP API, and the export is checked file by file, row by row, and by `eval`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::{free_port, headless, inspecta, repo, terminate};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

const TOKEN: &str = "export-token";
const HEADER: &str = "file,label,record_id,part_id,station,time,model,model_version,verdict,\
                      reviewer,review_time,action,reason,source_image";

/// A station on the sample parts; SIGTERMed by [`Station::stop`], killed on a panic.
struct Station {
    child: Option<Child>,
    base: String,
    client: Client,
}

impl Station {
    fn start(config: &Path, port: u16) -> Self {
        let child = headless(config);
        let station = Self {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let finished = station
                .client
                .get(format!("{}/status", station.base))
                .bearer_auth(TOKEN)
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|s| s["finished"] == true);
            if finished {
                return station;
            }
            assert!(Instant::now() < deadline, "the station never finished");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn records(&self) -> Vec<Value> {
        let page: Value = self
            .client
            .get(format!("{}/verdicts?limit=500", self.base))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
            .json()
            .unwrap();
        page["items"].as_array().unwrap().clone()
    }

    fn review(&self, id: i64, body: &Value) {
        let response = self
            .client
            .post(format!("{}/verdicts/{id}/review", self.base))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .unwrap();
        let status = response.status();
        assert_eq!(status, StatusCode::CREATED, "{}", response.text().unwrap());
    }

    fn stop(mut self) {
        let (status, log) = terminate(self.child.take().unwrap());
        assert!(status.success(), "station exited with {status}: {log}");
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `inspecta export-dataset`, expecting success; its summary (stdout).
fn export(args: &[&str]) -> String {
    let mut all = vec!["export-dataset"];
    all.extend_from_slice(args);
    let out = inspecta(&all);
    assert!(
        out.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `inspecta export-dataset`, expecting a failure; what it logged.
fn export_fails(args: &[&str]) -> String {
    let mut all = vec!["export-dataset"];
    all.extend_from_slice(args);
    let out = inspecta(&all);
    assert!(!out.status.success(), "export should have failed");
    String::from_utf8(out.stderr).unwrap()
}

/// RFC 4180, written independently of the exporter: header, then one map per row.
fn read_csv(path: &Path) -> (String, Vec<BTreeMap<String, String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut rows: Vec<Vec<String>> = vec![vec![]];
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match (c, chars.peek()) {
                ('"', Some('"')) => {
                    field.push('"');
                    chars.next();
                }
                ('"', _) => in_quotes = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            ',' => rows.last_mut().unwrap().push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                rows.last_mut().unwrap().push(std::mem::take(&mut field));
                rows.push(vec![]);
            }
            _ => field.push(c),
        }
    }
    assert!(
        !in_quotes && field.is_empty() && rows.pop() == Some(vec![]),
        "ends with a line break"
    );
    let header = rows.remove(0);
    let maps = rows
        .into_iter()
        .map(|row| {
            assert_eq!(row.len(), header.len(), "{row:?}");
            header.iter().cloned().zip(row).collect()
        })
        .collect();
    (header.join(","), maps)
}

/// Every file under `dir` (relative, `/`-separated), provenance.csv included.
fn files(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            found.extend(files(&path).into_iter().map(|f| format!("{name}/{f}")));
        } else {
            found.insert(name);
        }
    }
    found
}

/// `<id>_<stem of the sample file>.jpg`, the name the export gives a folder part.
fn expected_name(record: &Value) -> String {
    let origin = PathBuf::from(record["origin"].as_str().unwrap());
    let stem = origin.file_stem().unwrap().to_string_lossy().into_owned();
    format!("{}_{stem}.jpg", record["id"])
}

#[test]
fn reviewed_parts_become_a_class_folder_data_set_that_eval_reads() {
    let dir = tempfile::tempdir().unwrap();
    let records_dir = dir.path().join("records");
    let config = dir.path().join("station.toml");
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"export-test\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
             [source]\nkind = \"folder\"\npath = \"{}\"\nparts_per_second = 100.0\n\
             start_after = \"\"\n\
             [store]\ndir = \"{}\"\nimages = \"not_good\"\nrecent_images = 3\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n",
            repo().join("samples/casting").display(),
            records_dir.display(),
        ),
    )
    .unwrap();
    let station = Station::start(&config, port);
    let records = station.records();
    assert_eq!(records.len(), 24);
    let by_verdict = |verdict: &str| -> Vec<&Value> {
        records.iter().filter(|r| r["verdict"] == verdict).collect()
    };
    let (goods, defects) = (by_verdict("good"), by_verdict("defect"));
    assert!(!goods.is_empty() && defects.len() >= 3, "{records:?}");
    let (good, d1, d2, gone) = (goods[0], defects[0], defects[1], defects[2]);
    let id = |r: &Value| r["id"].as_i64().unwrap();
    // Passed parts keep their image only in the ring: the newest three (records come newest
    // first), so the good part the inspector overrides still has it.
    let with_image = |rs: &[&Value]| -> Vec<i64> {
        rs.iter()
            .filter(|r| r["has_image"] == true)
            .map(|r| id(r))
            .collect()
    };
    assert_eq!(
        with_image(&goods),
        goods[..3].iter().map(|r| id(r)).collect::<Vec<_>>()
    );
    assert_eq!(with_image(&defects).len(), defects.len());

    let reason = "burr, near the \"gate\"";
    station.review(
        id(good),
        &json!({"reviewer": "Ana", "action": "override", "label": "defect", "reason": reason}),
    );
    for part in [d1, d2, gone] {
        station.review(id(part), &json!({"reviewer": "Ben", "action": "confirm"}));
    }
    // One reviewed part whose image file has gone since (deleted by hand, say).
    let db = rusqlite::Connection::open(records_dir.join("records.sqlite")).unwrap();
    let image: String = db
        .query_row(
            "SELECT image FROM verdicts WHERE id = ?1",
            [id(gone)],
            |row| row.get(0),
        )
        .unwrap();
    std::fs::remove_file(records_dir.join("images").join(image)).unwrap();

    // Exported from the store of the running station.
    let out = dir.path().join("dataset");
    let summary = export(&[
        "--store",
        records_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(summary.contains("exported 3 reviewed parts"), "{summary}");
    assert!(summary.contains("skipped (no image): 1"), "{summary}");
    assert!(summary.contains(&out.display().to_string()), "{summary}");
    assert!(summary.contains("defect  3"), "{summary}");
    let name = |r: &Value| expected_name(r);
    assert_eq!(
        files(&out),
        BTreeSet::from([
            "provenance.csv".to_owned(),
            format!("defect/{}", name(good)),
            format!("defect/{}", name(d1)),
            format!("defect/{}", name(d2)),
        ]),
        "only reviewed parts with an image; unreviewed parts absent"
    );

    let text = std::fs::read_to_string(out.join("provenance.csv")).unwrap();
    assert!(
        text.contains(",\"burr, near the \"\"gate\"\"\","),
        "the reason is quoted: {text}"
    );
    let (header, rows) = read_csv(&out.join("provenance.csv"));
    assert_eq!(header, HEADER);
    assert_eq!(rows.len(), 3);
    let row = |r: &Value| {
        rows.iter()
            .find(|row| row["record_id"] == id(r).to_string())
            .unwrap_or_else(|| panic!("no row for {}", id(r)))
            .clone()
    };
    let overridden = row(good);
    assert_eq!(overridden["file"], format!("defect/{}", name(good)));
    assert_eq!(overridden["label"], "defect");
    assert_eq!(overridden["verdict"], "good");
    assert_eq!(overridden["action"], "override");
    assert_eq!(overridden["reviewer"], "Ana");
    assert_eq!(overridden["reason"], reason);
    assert_eq!(overridden["station"], "export-test");
    assert_eq!(overridden["model"], "casting-defect");
    assert_eq!(overridden["model_version"], "2.0.0");
    assert_eq!(overridden["time"], good["captured_at"].as_str().unwrap());
    assert!(overridden["review_time"].parse::<jiff::Timestamp>().is_ok());
    let confirmed = row(d1);
    assert_eq!(
        (
            confirmed["label"].as_str(),
            confirmed["verdict"].as_str(),
            confirmed["action"].as_str(),
            confirmed["reviewer"].as_str(),
            confirmed["reason"].as_str()
        ),
        ("defect", "defect", "confirm", "Ben", "")
    );
    for row in &rows {
        let copy = std::fs::read(out.join(&row["file"])).unwrap();
        assert_eq!(
            copy,
            std::fs::read(&row["source_image"]).unwrap(),
            "a copy of the kept image"
        );
        let decoded = image::load_from_memory(&copy).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (300, 300));
    }
    assert!(
        Path::new(&overridden["source_image"]).exists(),
        "copied, not moved"
    );

    // d1 turns out good: the next export into the same folder moves it, keeps the rest.
    let good_file = out.join("defect").join(name(good));
    let inode = std::fs::metadata(&good_file).unwrap().ino();
    station.review(
        id(d1),
        &json!({"reviewer": "Cleo", "action": "override", "label": "good", "reason": "dust"}),
    );
    let summary = export(&[
        "--store",
        records_dir.join("records.sqlite").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        summary.contains("files: 1 new, 2 unchanged, 1 removed"),
        "{summary}"
    );
    assert_eq!(
        files(&out),
        BTreeSet::from([
            "provenance.csv".to_owned(),
            format!("defect/{}", name(good)),
            format!("good/{}", name(d1)),
            format!("defect/{}", name(d2)),
        ])
    );
    assert_eq!(
        std::fs::metadata(&good_file).unwrap().ino(),
        inode,
        "an identical file is kept as it is"
    );
    let (_, rows) = read_csv(&out.join("provenance.csv"));
    assert_eq!(rows.len(), 3, "the CSV is rewritten, not appended to");
    let relabelled = rows
        .iter()
        .find(|r| r["record_id"] == id(d1).to_string())
        .unwrap();
    assert_eq!(
        (
            relabelled["label"].as_str(),
            relabelled["reviewer"].as_str()
        ),
        ("good", "Cleo")
    );

    // Only overrides, the store found through the station config.
    let overrides = dir.path().join("overrides");
    export(&[
        "--store",
        config.to_str().unwrap(),
        "--out",
        overrides.to_str().unwrap(),
        "--only-overrides",
    ]);
    let (_, rows) = read_csv(&overrides.join("provenance.csv"));
    let ids: BTreeSet<String> = rows.iter().map(|r| r["record_id"].clone()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([id(good).to_string(), id(d1).to_string()]),
        "confirmed d2 is left out"
    );

    // A span before any part: nothing, but a valid (header-only) CSV.
    let empty = dir.path().join("empty");
    let summary = export(&[
        "--store",
        records_dir.to_str().unwrap(),
        "--out",
        empty.to_str().unwrap(),
        "--until",
        "2000-01-01",
    ]);
    assert!(summary.contains("exported 0 reviewed parts"), "{summary}");
    assert_eq!(read_csv(&empty.join("provenance.csv")).1.len(), 0);

    // The line runs on: a second run of the samples (`start_after = ""`: from the first
    // file again, not after the last stored part) flushes the ring, and the overridden
    // passed part still has its image (kept for good by the review), the others not.
    station.stop();
    let station = Station::start(&config, port);
    let now = station.records();
    assert_eq!(now.len(), 48);
    let first_run_goods: Vec<&Value> = now
        .iter()
        .filter(|r| r["verdict"] == "good" && goods.iter().any(|g| id(g) == id(r)))
        .collect();
    assert_eq!(with_image(&first_run_goods), [id(good)]);
    let summary = export(&[
        "--store",
        records_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        summary.contains("files: 0 new, 3 unchanged, 0 removed"),
        "{summary}"
    );
    assert!(good_file.is_file());
    station.stop();

    let eval = inspecta(&[
        "eval",
        "--model",
        "models/casting",
        out.to_str().unwrap(),
        "--out",
        dir.path().join("eval").to_str().unwrap(),
        "--threads",
        "1",
        "--quiet",
    ]);
    assert!(
        eval.status.success(),
        "eval refused the export: {}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("eval/report.json")).unwrap())
            .unwrap();
    assert!(
        report.to_string().contains("\"good\""),
        "eval saw the good class"
    );
}

#[test]
fn a_missing_store_or_an_unusable_out_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-store");
    let out = dir.path().join("out");
    let log = export_fails(&[
        "--store",
        missing.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(log.contains("no record store at"), "{log}");
    assert!(
        !missing.exists() && !out.exists(),
        "nothing created on failure"
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let log = export_fails(&[
        "--store",
        empty.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(log.contains("is not a record store"), "{log}");

    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(
        broken.join("records.sqlite"),
        "not a database at all, just text",
    )
    .unwrap();
    let log = export_fails(&[
        "--store",
        broken.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(log.contains("cannot open the record store"), "{log}");

    // A fresh (empty) store, and an output "folder" that is a file.
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(store.join("records.sqlite"), "").unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let log = export_fails(&[
        "--store",
        store.to_str().unwrap(),
        "--out",
        file.join("dataset").to_str().unwrap(),
    ]);
    assert!(log.contains("cannot create the output folder"), "{log}");
    let log = export_fails(&[
        "--store",
        store.to_str().unwrap(),
        "--out",
        store.join("dataset").to_str().unwrap(),
    ]);
    assert!(log.contains("inside the record store"), "{log}");
    let log = export_fails(&[
        "--store",
        store.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--since",
        "last tuesday",
    ]);
    assert!(log.contains("RFC 3339"), "{log}");
}
