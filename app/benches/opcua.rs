//! The PLC's view of the OPC UA handshake: how long from writing `Trigger` to reading
//! `ResultReady` = TRUE, for a PLC that scans every 10 ms, and how long a `Trigger` method
//! call takes; each beside the part's own model time (preprocess + inference, from its
//! record), so what the handshake adds shows apart from the model.
//!
//! `cargo bench --workspace --bench opcua`. The real binary (release), a folder line over
//! samples/casting at 30 parts/s (a camera's frame rate: a trigger waits up to 33 ms for its
//! frame), a real OPC UA client on localhost. Env: BENCH_CYCLES (default 100),
//! BENCH_SCAN_MS (default 10). Output: stderr and `target/bench/opcua.md`.
#![allow(clippy::print_stderr, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opcua::types::{StatusCode, UAString, Variant, WriteValue};
use plc::Plc;

#[path = "../tests/common/plc.rs"]
mod plc;

const WARM_UP: usize = 5;

fn main() {
    let cycles = env("BENCH_CYCLES", 100);
    let scan = Duration::from_millis(env("BENCH_SCAN_MS", 10) as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(run(cycles, scan));
    eprintln!("{report}");
    let out = repo().join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("opcua.md"), report).unwrap();
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn run(cycles: usize, scan: Duration) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (port, api) = (free_port(), free_port());
    let station = start_station(dir.path(), port, api);
    let plc = Plc::connect(port, &dir.path().join("plc-pki")).await;
    let http = reqwest::Client::new();

    let mut flags = Samples::default();
    for cycle in 0..WARM_UP + cycles {
        let (elapsed, record) = plc.flag_cycle(cycle, scan).await;
        if cycle >= WARM_UP {
            flags.push(elapsed, model_ms(&http, api, record).await);
        }
    }
    let mut calls = Samples::default();
    for cycle in 0..WARM_UP + cycles {
        let (elapsed, record) = plc.method_cycle(cycle).await;
        if cycle >= WARM_UP {
            calls.push(elapsed, model_ms(&http, api, record).await);
        }
    }
    stop(station);

    let mut md = String::new();
    writeln!(
        md,
        "OPC UA handshake, {cycles} cycles each after {WARM_UP} warm-up, models/casting, 1 thread, \
         localhost, CPU ISA {}\n",
        isa()
    )
    .unwrap();
    md.push_str("| path | p50 ms | p99 ms | model p50 ms | beyond the model p50 ms | p99 ms |\n");
    md.push_str("|---|---|---|---|---|---|\n");
    flags.row(
        &mut md,
        &format!(
            "Trigger write -> ResultReady read, {} ms scan",
            scan.as_millis()
        ),
    );
    calls.row(&mut md, "Trigger(PartId) method call, round trip");
    md
}

fn isa() -> String {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    if has("avx512f") {
        "x86-64 AVX-512".into()
    } else if has("avx2") {
        "x86-64 AVX2+FMA".into()
    } else {
        std::env::consts::ARCH.into()
    }
}

/// The part's preprocess + inference time, as its record holds it.
async fn model_ms(http: &reqwest::Client, api: u16, record: i64) -> f64 {
    let body: serde_json::Value = http
        .get(format!("http://127.0.0.1:{api}/verdicts/{record}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = &body["timings"];
    t["preprocess_ms"].as_f64().unwrap_or(0.0) + t["inference_ms"].as_f64().unwrap_or(0.0)
}

#[derive(Default)]
struct Samples {
    total: Vec<f64>,
    model: Vec<f64>,
}

impl Samples {
    fn push(&mut self, elapsed: Duration, model_ms: f64) {
        self.total.push(elapsed.as_secs_f64() * 1e3);
        self.model.push(model_ms);
    }

    fn row(&self, md: &mut String, name: &str) {
        let beyond: Vec<f64> = self
            .total
            .iter()
            .zip(&self.model)
            .map(|(t, m)| t - m)
            .collect();
        writeln!(
            md,
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            percentile(&self.total, 0.5),
            percentile(&self.total, 0.99),
            percentile(&self.model, 0.5),
            percentile(&beyond, 0.5),
            percentile(&beyond, 0.99),
        )
        .unwrap();
    }
}

fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn start_station(dir: &Path, port: u16, api: u16) -> Child {
    let config = dir.join("station.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"bench\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
             [source]\nkind = \"folder\"\npath = \"samples/casting\"\nrepeat = true\nparts_per_second = 30.0\n\
             [trigger]\nenabled = true\n[store]\ndir = \"{}\"\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\n[opcua]\nlisten = \"127.0.0.1:{port}\"\n",
            dir.join("records").display()
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .current_dir(repo())
        .args(["--log", "warn", "run", "--headless", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn stop(mut station: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &station.id().to_string()])
        .status();
    let _ = station.wait();
}

/// The flag handshake and the method call, as a PLC runs them.
impl Plc {
    /// PartId and Trigger in one write, then a read of ResultReady every scan; the Ack.
    async fn flag_cycle(&self, cycle: usize, scan: Duration) -> (Duration, i64) {
        let part = UAString::from(format!("F-{cycle}").as_str());
        let start = Instant::now();
        self.write_all(vec![
            ("Handshake.PartId", part.into()),
            ("Handshake.Trigger", true.into()),
        ])
        .await;
        let mut next_scan = start;
        while self.read("Handshake.ResultReady").await != Variant::Boolean(true) {
            next_scan += scan;
            tokio::time::sleep_until(next_scan.into()).await;
        }
        let elapsed = start.elapsed();
        let Variant::Int64(record) = self.read("Handshake.ResultRecordId").await else {
            panic!("no record id");
        };
        assert_eq!(self.write("Handshake.Ack", true).await, StatusCode::Good);
        assert_eq!(self.write("Handshake.Ack", false).await, StatusCode::Good);
        (elapsed, record)
    }

    async fn method_cycle(&self, cycle: usize) -> (Duration, i64) {
        let part = UAString::from(format!("M-{cycle}").as_str());
        let start = Instant::now();
        let outputs = self.call("Trigger", vec![part.into()]).await.unwrap();
        let elapsed = start.elapsed();
        let Some(Variant::Int64(record)) = outputs.first() else {
            panic!("Trigger returned {outputs:?}");
        };
        (elapsed, *record)
    }

    /// Several variables in one Write request, as a PLC's WriteList sends them.
    async fn write_all(&self, values: Vec<(&str, Variant)>) {
        let writes: Vec<WriteValue> = values
            .into_iter()
            .map(|(path, value)| WriteValue::value_attr(self.id(path), value))
            .collect();
        let results = self.session.write(&writes).await.unwrap();
        assert!(
            results.iter().all(|s| *s == StatusCode::Good),
            "{results:?}"
        );
    }
}
