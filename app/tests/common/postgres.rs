//! A real PostgreSQL server of its own for a test: a fresh cluster in a temp dir, on a free
//! port, stopped (and started again) as a plant's would be.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::free_port;

pub struct Postgres {
    running: bool,
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    as_root: bool,
    _dir: tempfile::TempDir,
}

/// Debian's server binaries (package postgresql, installed by scripts/install-deps.sh).
fn server_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL (apt package postgresql, installed by scripts/install-deps.sh)")
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("a PostgreSQL server under /usr/lib/postgresql")
}

impl Postgres {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        if as_root {
            // The server refuses to run as root: its files belong to the postgres user.
            Command::new("chmod")
                .arg("755")
                .arg(dir.path())
                .status()
                .unwrap();
            std::fs::create_dir(&data).unwrap();
            Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&data)
                .status()
                .unwrap();
        }
        let mut server = Self {
            running: false,
            bin: server_bin(),
            data,
            port: free_port(),
            as_root,
            _dir: dir,
        };
        let initdb = server
            .command("initdb")
            .args([
                "--auth=trust",
                "--username=inspecta",
                "--encoding=UTF8",
                "-D",
            ])
            .arg(&server.data)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        server.resume();
        server
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// A libpq connection string for it.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=inspecta dbname=postgres",
            self.port
        )
    }

    pub fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).unwrap()
    }

    /// `pg_ctl start`: returns once the server takes connections.
    pub fn resume(&mut self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            self.port,
            self.data.display()
        );
        self.pg_ctl(
            &["start", "-w", "-t", "60", "-o", &options, "-l"],
            Some("server.log"),
        );
        self.running = true;
    }

    /// A fast shutdown: connections are cut, the server goes away.
    pub fn pause(&mut self) {
        self.pg_ctl(&["stop", "-w", "-m", "fast"], None);
        self.running = false;
    }

    fn pg_ctl(&self, args: &[&str], log: Option<&str>) {
        let mut command = self.command("pg_ctl");
        command.args(args);
        if let Some(log) = log {
            command.arg(self.data.join(log));
        }
        let out = command
            .arg("-D")
            .arg(&self.data)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .command("pg_ctl")
                .args(["stop", "-m", "immediate", "-D"])
                .arg(&self.data)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
