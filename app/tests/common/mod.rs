#![allow(dead_code, clippy::unwrap_used)]
//! Helpers the end-to-end tests share: the repository, a free port, and stopping the binary
//! the way systemd does.

pub mod broker;
pub mod fleet;
pub mod postgres;
pub mod station;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

/// The repository root: the binary runs from here, so `models/` and `samples/` resolve.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SIGTERM, then waits: the exit status and what the binary logged (its piped stderr).
pub fn terminate(child: Child) -> (ExitStatus, String) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `inspecta ARGS` from the repository root to completion.
pub fn inspecta(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap()
}

/// Starts `inspecta run --headless --config CONFIG` from the repository root; its log
/// (stderr) is piped for [`terminate`].
pub fn headless(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .current_dir(repo())
        .args(["run", "--headless", "--config"])
        .arg(config)
        .env_remove("INSPECTA_API_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}
