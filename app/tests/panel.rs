//! The real binary opens the operator panel on a real X server (Xvfb, Mesa's software
//! OpenGL through the glow renderer), runs its station behind it, and stops cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

#[test]
fn the_panel_opens_on_a_real_display_runs_the_station_and_stops_on_sigterm() {
    let xvfb = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("station.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"panel-e2e\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
             [source]\nkind = \"folder\"\npath = \"samples/casting\"\nparts_per_second = 50.0\n\
             [store]\ndir = \"{}\"\n",
            dir.path().join("records").display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .current_dir(repo())
        .args(["run", "--config"])
        .arg(&config)
        .env("DISPLAY", &xvfb.display)
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    wait_for("the panel window", || {
        xdotool(&xvfb.display, &["search", "--name", "Inspecta: panel-e2e"]).is_some()
    });
    let db = dir.path().join("records/records.sqlite");
    wait_for("every sample part stored", || records(&db) == 24);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{log}", out.status);
    assert!(log.contains("station stopped"), "{log}");
    assert!(
        xdotool(&xvfb.display, &["search", "--name", "Inspecta: panel-e2e"]).is_none(),
        "the window is gone"
    );
}
