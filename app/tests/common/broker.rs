//! A real mosquitto on its own port for the tests, and waiting for what it delivers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// mosquitto on its own port, persisting sessions to disk so a restart keeps the test
/// subscriber's queue, as a production broker would.
pub struct Broker {
    child: Option<Child>,
    config: PathBuf,
    pub port: u16,
}

impl Broker {
    pub fn start(dir: &Path) -> Self {
        Self::with_listeners(dir, "")
    }

    /// As [`Broker::start`], with more of mosquitto's config (other listeners) after it.
    pub fn with_listeners(dir: &Path, more: &str) -> Self {
        let port = free_port();
        let config = dir.join("mosquitto.conf");
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        std::fs::write(
            &config,
            format!(
                "per_listener_settings false\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\n{}listener {port} 127.0.0.1\n{more}",
                dir.display(),
                if as_root { "user root\n" } else { "" }
            ),
        )
        .unwrap();
        let mut broker = Self {
            child: None,
            config,
            port,
        };
        broker.resume();
        broker
    }

    pub fn resume(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (installed by scripts/install-deps.sh)");
        self.child = Some(child);
        let port = self.port;
        wait_for("the broker", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// SIGTERM: the broker saves its sessions and goes away.
    pub fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
