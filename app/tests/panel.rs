//! The real binary opens the operator panel on a real X server (Xvfb, Mesa's software
//! OpenGL through the glow renderer), runs its station behind it, takes an operator's
//! keystrokes (xdotool through XTEST, as a keyboard would) into the record store, and
//! stops cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// An Xvfb server on a display number of its own; killed on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Self {
        let display = format!(":{}", 50 + std::process::id() % 400);
        let child = Command::new("Xvfb")
            .args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (apt package xvfb, installed by scripts/install-deps.sh)");
        let xvfb = Self { child, display };
        wait_for("the X server", || {
            xdotool(&xvfb.display, &["getmouselocation"]).is_some()
        });
        xvfb
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn xdotool(display: &str, args: &[&str]) -> Option<String> {
    let out = Command::new("xdotool")
        .args(args)
        .env("DISPLAY", display)
        .stderr(Stdio::null())
        .output()
        .expect("xdotool (installed by scripts/install-deps.sh)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn records(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row("SELECT count(*) FROM verdicts", [], |r| r.get(0)))
        .unwrap_or(0)
}

/// (verdict id, reviewer, action, before, after) of every stored review, oldest first.
fn reviews(db: &Path) -> Vec<(i64, String, String, String, String)> {
    let Ok(db) = rusqlite::Connection::open(db) else {
        return Vec::new();
    };
    let Ok(mut query) =
        db.prepare("SELECT verdict_id, reviewer, action, before, after FROM reviews ORDER BY id")
    else {
        return Vec::new();
    };
    query
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .and_then(Iterator::collect)
        .unwrap_or_default()
}

fn last_reason(db: &Path) -> Option<String> {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.query_row("SELECT reason FROM reviews ORDER BY id DESC", [], |r| {
                r.get(0)
            })
        })
        .ok()
        .flatten()
}

/// Collects the child's log as it comes, so the test can wait for a line.
fn collect(
    stderr: impl std::io::Read + Send + 'static,
) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let log = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&log);
    let reader = std::thread::Builder::new()
        .name("test-stderr".into())
        .spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        })
        .unwrap();
    (log, reader)
}

#[test]
fn an_operator_signs_in_and_reviews_parts_from_the_keyboard_on_a_real_display() {
    let xvfb = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("station.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"panel-e2e\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
             [source]\nkind = \"folder\"\npath = \"samples/casting\"\nparts_per_second = 50.0\n\
             [store]\ndir = \"{}\"\n[panel]\nreasons = [\"flash\", \"porosity\"]\n",
            dir.path().join("records").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .current_dir(repo())
        .args(["run", "--config"])
        .arg(&config)
        .env("DISPLAY", &xvfb.display)
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let (log, reader) = collect(child.stderr.take().unwrap());
    let logged = |what: &str| log.lock().unwrap().contains(what);

    let mut window = None;
    wait_for("the panel window", || {
        window = xdotool(&xvfb.display, &["search", "--name", "Inspecta: panel-e2e"]);
        window.is_some()
    });
    let window = window.unwrap();
    let db = dir.path().join("records/records.sqlite");
    wait_for("every sample part stored", || records(&db) == 24);

    // The keyboard, as an inspector uses it: sign in, then override the newest part
    // (a good one) to the defect class with "2", step back with Left, confirm with Enter.
    let keys = |args: &[&str]| {
        let all = [&["windowfocus", "--sync", window.as_str()], args].concat();
        assert!(xdotool(&xvfb.display, &all).is_some(), "xdotool {args:?}");
    };
    keys(&["type", "--delay", "40", "e2e-inspector"]);
    keys(&["key", "Return"]);
    wait_for("the sign-in", || logged("operator signed in"));
    keys(&["key", "2"]);
    wait_for("the override", || reviews(&db).len() == 1);
    keys(&["key", "Left"]);
    keys(&["key", "Return"]);
    wait_for("the confirmation", || reviews(&db).len() == 2);
    // The override picker from the keys alone: O, 2 for the label, the start of a reason
    // code (typed, so the digit also arrives as text), Enter.
    keys(&["key", "o"]);
    keys(&["key", "2"]);
    keys(&["type", "--delay", "40", "fla"]);
    keys(&["key", "Return"]);
    wait_for("the picked override", || reviews(&db).len() == 3);
    let stored = reviews(&db);
    let row = |id: i64, action: &str, before: &str, after: &str| {
        (
            id,
            "e2e-inspector".to_owned(),
            action.to_owned(),
            before.to_owned(),
            after.to_owned(),
        )
    };
    assert_eq!(
        stored,
        vec![
            row(24, "override", "good", "defect"),
            row(23, "confirm", "good", "good"),
            row(23, "override", "good", "defect"),
        ],
        "the keys went into the record store, with who and what"
    );
    assert_eq!(last_reason(&db).as_deref(), Some("flash"));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let log = log.lock().unwrap().clone();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(log.contains("station stopped"), "{log}");
    assert!(
        xdotool(&xvfb.display, &["search", "--name", "Inspecta: panel-e2e"]).is_none(),
        "the window is gone"
    );
}
