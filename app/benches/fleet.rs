//! The fleet at scale, with its faults: stations -> mosquitto -> two `inspecta fleet ingest`
//! -> PostgreSQL, while one ingest is killed with SIGKILL and restarted, the broker is
//! restarted, and PostgreSQL is stopped for a minute under load. Reports the ingest rate,
//! the end-to-end lag (captured -> committed), the backlog drain rate, and rows lost.
//!
//! `make bench-fleet` (`cargo bench -p inspecta --bench fleet`). Real `inspecta` stations
//! (folder sources over copies of samples/casting) plus simulated ones: one MQTT client each,
//! publishing a real station's verdict payload with its own site, line, station and ids.
//! Env: BENCH_GROUP (default empty: each ingest stores every message; a name: a shared
//! subscription), BENCH_REAL (default 4) at BENCH_REAL_RATE parts/s (2), BENCH_SIMULATED (46) at
//! BENCH_RATE verdicts/s (10), BENCH_OUTAGE_S (60). Output: stderr and `target/bench/fleet.md`.
#![allow(
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::broker::{Broker, wait_for};
use common::fleet::try_count;
use common::postgres::Postgres;
use common::repo;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

/// The timeline, in seconds from the start of the load.
const KILL_INGEST_AT: u64 = 15;
const RESTART_INGEST_AT: u64 = 25;
const RESTART_BROKER_AT: u64 = 35;
const STOP_STORE_AT: u64 = 45;
/// Load after PostgreSQL is back, so the drain is measured under load.
const LOAD_AFTER_OUTAGE: u64 = 20;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ingest(dir: &Path, name: &str, broker: &Broker, postgres: &Postgres) -> Child {
    let group: String = env("BENCH_GROUP", String::new());
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"{name}\"\ngroup = \"{group}\"\n\
             [postgres]\nurl = \"{}\"\nbatch = 200\n",
            broker.port,
            postgres.url()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .args(["fleet", "ingest", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// A real station over `parts` copies of the sample parts, finite so every part it judged
/// can be counted in the store.
fn real_station(dir: &Path, index: usize, parts: usize, rate: f64, broker: &Broker) -> Child {
    let station_dir = dir.join(format!("real-{index}"));
    let images = station_dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let samples: Vec<_> = std::fs::read_dir(repo().join("samples/casting"))
        .unwrap()
        .flat_map(|class| std::fs::read_dir(class.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "jpeg" || e == "jpg" || e == "png")
        })
        .collect();
    for n in 0..parts {
        let from = &samples[n % samples.len()];
        let name = format!("{n:06}.{}", from.extension().unwrap().to_string_lossy());
        std::os::unix::fs::symlink(from.canonicalize().unwrap(), images.join(name)).unwrap();
    }
    let config = station_dir.join("station.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"real-{index}\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
             [source]\nkind = \"folder\"\npath = \"{}\"\nparts_per_second = {rate}\n\
             [store]\ndir = \"{}\"\n\
             [mqtt]\nhost = \"127.0.0.1\"\nport = {}\nsite = \"plant-a\"\nline = \"line-1\"\n",
            images.display(),
            station_dir.join("records").display(),
            broker.port
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_inspecta"))
        .current_dir(repo())
        .args(["--log", "warn", "run", "--headless", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// One simulated station: its own client, a verdict every `1/rate` s while `running`.
struct Simulated {
    published: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

fn simulate(
    index: usize,
    template: &Value,
    rate: f64,
    broker: &Broker,
    running: &Arc<AtomicBool>,
) -> Simulated {
    let site = format!("plant-{}", ["b", "c"][index % 2]);
    let line = format!("line-{}", index % 5 + 1);
    let station = format!("sim-{index:03}");
    let topic = format!("inspecta/{site}/{line}/{station}/verdict");
    let mut options = MqttOptions::new(&station, "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(10));
    // What was not acknowledged is sent again after a broker restart, as a real station
    // sends again from its store.
    options.set_clean_session(false);
    let (client, mut connection) = Client::new(options, 1000);
    let acked = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&acked);
    std::thread::Builder::new()
        .name(format!("{station}-mqtt"))
        .spawn(move || {
            loop {
                match connection.recv_timeout(Duration::from_millis(500)) {
                    Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(rumqttc::ConnectionError::RequestsDone)) => return,
                    Ok(Err(_)) => std::thread::sleep(Duration::from_millis(500)),
                }
            }
        })
        .unwrap();
    let published = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&published);
    let running = Arc::clone(running);
    let mut body = template.clone();
    body["site"] = site.into();
    body["line"] = line.into();
    body["station"] = station.clone().into();
    let every = Duration::from_secs_f64(1.0 / rate);
    let thread = std::thread::Builder::new()
        .name(station)
        .spawn(move || {
            let mut next = Instant::now();
            let mut id = 0_i64;
            while running.load(Ordering::Relaxed) {
                id += 1;
                body["id"] = id.into();
                body["captured_at"] = jiff::Timestamp::now().to_string().into();
                // Blocks while the broker is away, as a station's backlog waits in its store.
                client
                    .publish(
                        &topic,
                        QoS::AtLeastOnce,
                        false,
                        serde_json::to_vec(&body).unwrap(),
                    )
                    .unwrap();
                count.fetch_add(1, Ordering::Relaxed);
                next += every;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            // Let the last acknowledgements arrive, then close.
            std::thread::sleep(Duration::from_secs(5));
            let _ = client.disconnect();
        })
        .unwrap();
    Simulated {
        published,
        acked,
        thread,
    }
}

fn kill9(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn terminate(child: Child) {
    common::terminate(child);
}

fn stored(postgres: &Postgres) -> i64 {
    try_count(postgres, "SELECT count(*) FROM verdicts")
}

/// Lag percentiles (ms) from capture to commit, for the parts captured in [from, until).
fn lag(postgres: &Postgres, from: jiff::Timestamp, until: jiff::Timestamp) -> (f64, f64, i64) {
    let row = postgres
        .connect()
        .query_one(
            "WITH l AS (SELECT (extract(epoch FROM received_at - captured_at) * 1000)::float8 AS ms
                        FROM verdicts WHERE captured_at >= ($1::text)::timestamptz
                                        AND captured_at < ($2::text)::timestamptz)
             SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY ms),
                    percentile_disc(0.99) WITHIN GROUP (ORDER BY ms), count(*) FROM l",
            &[&from.to_string(), &until.to_string()],
        )
        .unwrap();
    let ms = |i| row.get::<_, Option<f64>>(i).unwrap_or(f64::NAN);
    (ms(0), ms(1), row.get(2))
}

/// The first few missing ids of each simulated station that has any, with when they were
/// published (id / rate seconds into the load): where a loss happened says which fault.
fn missing_ids(postgres: &Postgres, published: &[i64], rate: f64) -> String {
    let mut client = postgres.connect();
    let mut said = Vec::new();
    for (index, &count) in published.iter().enumerate() {
        let station = format!("sim-{index:03}");
        let rows = client
            .query(
                "SELECT n FROM generate_series(1::int8, $2::int8) n WHERE NOT EXISTS
                 (SELECT 1 FROM verdicts v WHERE v.station = $1 AND v.id = n) ORDER BY n LIMIT 5",
                &[&station, &count],
            )
            .unwrap();
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            let (first, last): (i64, i64) = (first.get(0), last.get(0));
            said.push(format!(
                "{station}: {first}..{last} ({:.0}-{:.0} s)",
                first as f64 / rate,
                last as f64 / rate
            ));
        }
    }
    said.join("; ")
}

fn main() {
    let reals: usize = env("BENCH_REAL", 4);
    let real_rate: f64 = env("BENCH_REAL_RATE", 2.0);
    let sims: usize = env("BENCH_SIMULATED", 46);
    let rate: f64 = env("BENCH_RATE", 10.0);
    let outage: u64 = env("BENCH_OUTAGE_S", 60);
    let load_s = STOP_STORE_AT + outage + LOAD_AFTER_OUTAGE;

    let dir = tempfile::tempdir().unwrap();
    eprintln!(
        "working in {} (BENCH_KEEP=1 keeps it: logs of the broker and ingests)",
        dir.path().display()
    );
    // The broker keeps every ingest's backlog however long the store is away.
    let mut broker = Broker::with_listeners(
        dir.path(),
        &format!(
            "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 200\n\
             log_dest file {}/mosquitto.log\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n",
            dir.path().display()
        ),
    );
    let mut postgres = Postgres::start();
    let mut first = ingest(dir.path(), "ingest-1", &broker, &postgres);
    let second = ingest(dir.path(), "ingest-2", &broker, &postgres);
    wait_for("the schema", Duration::from_secs(60), || {
        try_count(&postgres, "SELECT count(*) FROM schema_migrations") == 2
    });
    std::thread::sleep(Duration::from_secs(2));

    let real_parts = (real_rate * load_s as f64) as usize;
    let stations: Vec<Child> = (1..=reals)
        .map(|i| real_station(dir.path(), i, real_parts, real_rate, &broker))
        .collect();
    wait_for("a real station's verdict", Duration::from_secs(120), || {
        stored(&postgres) > 0
    });
    let template: Value = postgres
        .connect()
        .query_one("SELECT payload FROM verdicts LIMIT 1", &[])
        .unwrap()
        .get(0);

    let running = Arc::new(AtomicBool::new(true));
    let start = Instant::now();
    let started_at = jiff::Timestamp::now();
    let simulated: Vec<Simulated> = (0..sims)
        .map(|i| simulate(i, &template, rate, &broker, &running))
        .collect();
    let at = |s: u64| {
        let due = start + Duration::from_secs(s);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    };
    let published = || -> u64 {
        simulated
            .iter()
            .map(|s| s.published.load(Ordering::Relaxed))
            .sum()
    };

    at(KILL_INGEST_AT);
    let steady_until = jiff::Timestamp::now();
    eprintln!("t={KILL_INGEST_AT}s: SIGKILL ingest-1");
    kill9(&mut first);
    at(RESTART_INGEST_AT);
    eprintln!("t={RESTART_INGEST_AT}s: ingest-1 restarted");
    let first = ingest(dir.path(), "ingest-1", &broker, &postgres);
    at(RESTART_BROKER_AT);
    eprintln!("t={RESTART_BROKER_AT}s: broker restarted");
    broker.pause();
    broker.resume();
    at(STOP_STORE_AT);
    let before_outage = stored(&postgres);
    eprintln!("t={STOP_STORE_AT}s: PostgreSQL stopped for {outage} s");
    postgres.pause();
    at(STOP_STORE_AT + outage);
    postgres.resume();
    let resumed = Instant::now();
    let backlog_target = published() as i64;
    eprintln!(
        "PostgreSQL back; backlog about {} verdicts",
        backlog_target - before_outage
    );
    let mut drained: Option<Duration> = None;
    while start.elapsed() < Duration::from_secs(load_s) {
        if drained.is_none() && stored(&postgres) >= backlog_target {
            drained = Some(resumed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    running.store(false, Ordering::Relaxed);
    let load_ended = jiff::Timestamp::now();
    let load_seconds = start.elapsed().as_secs_f64();
    let (mut sim_published, mut sim_acked) = (0, 0);
    let mut per_station = Vec::new();
    for s in simulated {
        s.thread.join().unwrap();
        per_station.push(s.published.load(Ordering::Relaxed) as i64);
        sim_published += s.published.load(Ordering::Relaxed);
        sim_acked += s.acked.load(Ordering::Relaxed);
    }

    // Everything the real stations judged, and everything the simulated ones published.
    let expected = sim_published as i64 + (reals * real_parts) as i64;
    let settled = Instant::now();
    let mut last = -1;
    while settled.elapsed() < Duration::from_secs(180) {
        let now = stored(&postgres);
        if now >= expected {
            break;
        }
        if now == last && settled.elapsed() > Duration::from_secs(60) {
            break;
        }
        last = now;
        std::thread::sleep(Duration::from_secs(1));
    }
    let rows = stored(&postgres);
    let sim_rows = try_count(
        &postgres,
        "SELECT count(*) FROM verdicts WHERE station LIKE 'sim-%'",
    );
    let real_rows = rows - sim_rows;
    let duplicates = try_count(
        &postgres,
        "SELECT count(*) FROM (SELECT 1 FROM verdicts GROUP BY site, line, station, id HAVING count(*) > 1) d",
    );
    let missing = missing_ids(&postgres, &per_station, rate);
    let (steady_p50, steady_p99, steady_n) = lag(&postgres, started_at, steady_until);
    let (all_p50, all_p99, all_n) = lag(&postgres, started_at, load_ended);
    let peak: i64 = postgres
        .connect()
        .query_one(
            "SELECT COALESCE(max(n), 0) FROM (SELECT count(*) AS n FROM verdicts
             GROUP BY date_trunc('second', received_at)) s",
            &[],
        )
        .unwrap()
        .get(0);
    let bytes: i64 = postgres
        .connect()
        .query_one("SELECT pg_total_relation_size('verdicts')", &[])
        .unwrap()
        .get(0);
    for station in stations {
        terminate(station);
    }
    terminate(first);
    terminate(second);

    let offered = sims as f64 * rate + reals as f64 * real_rate;
    let backlog = backlog_target - before_outage;
    let drain = drained.map_or(f64::NAN, |d| d.as_secs_f64());
    let drain_rate = backlog as f64 / drain + offered;
    let per_row = bytes as f64 / rows.max(1) as f64;
    let mut report = String::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l[13..].trim().to_owned())
        })
        .unwrap_or_default();
    let group: String = env("BENCH_GROUP", String::new());
    let mode = if group.is_empty() {
        "each ingest subscribed on its own".to_owned()
    } else {
        format!("shared subscription $share/{group}")
    };
    writeln!(report, "## bench-fleet ({mode}): {} stations ({reals} real at {real_rate}/s, {sims} simulated at {rate}/s) -> mosquitto -> 2 ingests -> PostgreSQL", reals + sims).unwrap();
    writeln!(report, "\n{} cores, {cpu}; load {load_seconds:.0} s, offered {offered:.0} verdicts/s; faults: SIGKILL ingest-1 at {KILL_INGEST_AT} s (back at {RESTART_INGEST_AT} s), broker restart at {RESTART_BROKER_AT} s, PostgreSQL stopped {STOP_STORE_AT}-{} s.\n", std::thread::available_parallelism().map_or(0, std::num::NonZero::get), STOP_STORE_AT + outage).unwrap();
    writeln!(report, "| figure | value |\n|---|---|").unwrap();
    writeln!(report, "| verdicts published (simulated, acknowledged by the broker) | {sim_published} ({sim_acked}) |").unwrap();
    writeln!(
        report,
        "| verdicts judged by the real stations | {} |",
        reals * real_parts
    )
    .unwrap();
    writeln!(
        report,
        "| rows in PostgreSQL (simulated + real) | {rows} ({sim_rows} + {real_rows}) |"
    )
    .unwrap();
    writeln!(
        report,
        "| **rows lost** | **{}** |",
        (expected - rows).max(0)
    )
    .unwrap();
    writeln!(report, "| duplicate rows | {duplicates} |").unwrap();
    if !missing.is_empty() {
        writeln!(
            report,
            "| missing (station: ids, at about t =) | {missing} |"
        )
        .unwrap();
    }
    writeln!(report, "| lag capture -> commit, steady (first {KILL_INGEST_AT} s, {steady_n} parts) p50 / p99 | {steady_p50:.0} / {steady_p99:.0} ms |").unwrap();
    writeln!(report, "| lag over the whole run, faults included ({all_n} parts) p50 / p99 | {all_p50:.0} / {all_p99:.0} ms |").unwrap();
    writeln!(
        report,
        "| backlog when PostgreSQL came back | {backlog} verdicts |"
    )
    .unwrap();
    writeln!(
        report,
        "| drained in (under the running load) | {drain:.1} s |"
    )
    .unwrap();
    writeln!(
        report,
        "| ingest rate while draining, 2 ingests | {drain_rate:.0} verdicts/s |"
    )
    .unwrap();
    writeln!(report, "| peak commits in one second | {peak} |").unwrap();
    writeln!(
        report,
        "| table size per verdict (row, JSON payload, indexes) | {per_row:.0} bytes |"
    )
    .unwrap();
    eprintln!("{report}");
    let out = repo().join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("fleet.md"), report).unwrap();
    if std::env::var_os("BENCH_KEEP").is_some() {
        let _ = dir.keep();
    }
}
