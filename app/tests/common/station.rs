//! A real headless station with its API, spoken to over HTTP, for the API's tests.

use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::Value;

use super::{free_port, repo};

pub const TOKEN: &str = "s3cret-token";

/// A station process with its API; SIGTERMed (and checked to exit cleanly) on drop.
pub struct Station {
    pub child: Child,
    pub base: String,
    pub client: Client,
    pub dir: tempfile::TempDir,
}

impl Station {
    /// Starts `inspecta run --headless` with `source` and `extra` config, and waits until
    /// its API answers. `{api_url}` in `extra` is the API's address.
    pub fn start(source: &str, extra: &str) -> Self {
        Self::launch(source, extra, None)
    }

    /// As [`Station::start`], with the process allowed `open_files` file handles at most
    /// (`ulimit -n`), as a service unit's `LimitNOFILE` would.
    pub fn with_open_files(source: &str, extra: &str, open_files: u32) -> Self {
        Self::launch(source, extra, Some(open_files))
    }

    fn launch(source: &str, extra: &str, open_files: Option<u32>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("station.toml");
        let extra = extra.replace("{api_url}", &format!("http://127.0.0.1:{port}"));
        std::fs::write(
            &config,
            format!(
                "[station]\nname = \"api-test\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
                 [source]\n{source}\n[store]\ndir = \"{}\"\n\
                 [api]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n{extra}\n",
                dir.path().join("records").display()
            ),
        )
        .unwrap();
        let binary = env!("CARGO_BIN_EXE_inspecta");
        let mut command = match open_files {
            None => Command::new(binary),
            Some(n) => {
                // `exec` keeps the pid, so SIGTERM on drop reaches the station itself.
                let mut shell = Command::new("sh");
                shell.args([
                    "-c",
                    &format!("ulimit -n {n} && exec \"$0\" \"$@\""),
                    binary,
                ]);
                shell
            }
        };
        let child = command
            .current_dir(repo())
            .args(["run", "--headless", "--config"])
            .arg(&config)
            .env_remove("INSPECTA_API_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let station = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            // A fresh connection per request: the server closes one after refusing a
            // body unread (413, 401), and a pooled client would reuse it.
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            dir,
        };
        station.wait_for("the API", |s| s.client.get(s.url("/health")).send().is_ok());
        station
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .unwrap();
        let status = response.status();
        (status, response.json().unwrap_or(Value::Null))
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap();
        let status = response.status();
        (status, response.json().unwrap_or(Value::Null))
    }

    pub fn upload(&self, query: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(&format!("/predict{query}")))
            .bearer_auth(TOKEN)
            .header("content-type", "image/jpeg")
            .body(bytes)
            .send()
            .unwrap();
        let status = response.status();
        (status, response.json().unwrap_or(Value::Null))
    }

    pub fn wait_for(&self, what: &str, ready: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ready(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stdin(&mut self) -> &mut ChildStdin {
        self.child.stdin.as_mut().unwrap()
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().unwrap();
        if !std::thread::panicking() {
            assert!(status.success(), "station exited with {status}");
        }
    }
}

pub fn folder_line() -> String {
    format!(
        "kind = \"folder\"\npath = \"{}\"\nparts_per_second = 100.0",
        repo().join("samples/casting").display()
    )
}

pub fn sample(class: &str, index: usize) -> Vec<u8> {
    let dir = repo().join("samples/casting").join(class);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    std::fs::read(&files[index]).unwrap()
}
