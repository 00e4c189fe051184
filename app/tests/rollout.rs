//! Model rollout end to end: real mosquitto, real headless stations judging the sample
//! parts, `inspecta fleet rollout|approve|rollback` as an engineer runs them, and a
//! hostile package server the station must not believe.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::broker::{Broker, wait_for};
use common::{free_port, headless, repo, terminate};
use inspecta_pipeline::publish::rollout::Package;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

const STATION: &str = "plant-a/line-2/rollout-test";

/// A station on the sample parts, round and round, that takes rollout commands.
struct Line {
    dir: PathBuf,
    /// `[model] path`.
    model: &'static str,
    broker_port: u16,
    api: u16,
    child: Option<Child>,
}

impl Line {
    fn start(dir: &Path, broker: &Broker) -> Self {
        let mut line = Self {
            dir: dir.to_owned(),
            model: "models/casting",
            broker_port: broker.port,
            api: free_port(),
            child: None,
        };
        line.resume();
        line
    }

    fn resume(&mut self) {
        let config = self.dir.join("station.toml");
        std::fs::write(
            &config,
            format!(
                "[station]\nname = \"rollout-test\"\n[model]\npath = \"{}\"\nthreads = 1\n\
                 [source]\nkind = \"folder\"\npath = \"samples/casting\"\nparts_per_second = 20.0\nrepeat = true\n\
                 [store]\ndir = \"{}\"\n[api]\nlisten = \"127.0.0.1:{}\"\n\
                 [mqtt]\nhost = \"127.0.0.1\"\nport = {}\nsite = \"plant-a\"\nline = \"line-2\"\n\
                 commands = [\"rollout\", \"approve_rollout\", \"rollback\"]\n",
                self.model,
                self.dir.join("records").display(),
                self.api,
                self.broker_port,
            ),
        )
        .unwrap();
        self.child = Some(headless(&config));
        let api = self.api;
        wait_for("the station's API", Duration::from_secs(60), || {
            reqwest::blocking::get(format!("http://127.0.0.1:{api}/health")).is_ok()
        });
    }

    /// SIGTERM; the station must stop cleanly. Its log, for the assertions.
    fn stop(&mut self) -> String {
        let (status, log) = terminate(self.child.take().unwrap());
        assert!(status.success(), "station exited with {status}: {log}");
        log
    }

    fn status(&self) -> Value {
        reqwest::blocking::get(format!("http://127.0.0.1:{}/status", self.api))
            .unwrap()
            .json()
            .unwrap()
    }

    fn model_version(&self) -> String {
        self.status()["model"]["version"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = terminate(child);
        }
    }
}

/// `models/casting` as another version: the same weights, so it agrees on every part.
fn casting_as(dir: &Path, version: &str) -> PathBuf {
    let model = dir.join(format!("casting-{version}"));
    std::fs::create_dir_all(&model).unwrap();
    for entry in std::fs::read_dir(repo().join("models/casting")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, model.join(path.file_name().unwrap())).unwrap();
    }
    let manifest = model.join("model.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("version = \"2.0.0\"", &format!("version = \"{version}\"")),
    )
    .unwrap();
    model
}

fn fleet_config(dir: &Path, broker: &Broker) -> PathBuf {
    let path = dir.join("fleet.toml");
    std::fs::write(
        &path,
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"ingest-1\"\n\
             [postgres]\nurl = \"host=/nonexistent dbname=none\"\n\
             [rollout]\nclient_id = \"engineer\"\n",
            broker.port
        ),
    )
    .unwrap();
    path
}

fn fleet(args: &[&str]) -> Output {
    let out = common::inspecta(&[&["fleet"], args].concat());
    println!(
        "inspecta fleet {}:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `inspecta fleet rollout` promoted from `auto_promote` agreement on, served on `listen`.
fn roll_out(
    config: &Path,
    model: &Path,
    stations: &str,
    shadow_parts: u32,
    auto_promote: f64,
    listen: &str,
) -> Output {
    fleet(&[
        "rollout",
        "--config",
        config.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--stations",
        stations,
        "--shadow-parts",
        &shadow_parts.to_string(),
        "--auto-promote",
        &auto_promote.to_string(),
        "--listen",
        listen,
        "--wait-s",
        "120",
    ])
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_rolled_out_model_is_checked_shadowed_promoted_kept_over_a_restart_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut line = Line::start(dir.path(), &broker);
    assert_eq!(line.model_version(), "2.0.0");
    let model = casting_as(dir.path(), "2.1.0");
    let config = fleet_config(dir.path(), &broker);
    let listen = format!("127.0.0.1:{}", free_port());

    let out = roll_out(&config, &model, STATION, 15, 0.95, &listen);
    let report = stdout(&out);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("Shadow"), "{report}");
    assert!(report.contains("Promoted"), "{report}");
    assert!(report.contains("agreement 100.00 %"), "{report}");
    assert_eq!(
        line.model_version(),
        "2.1.0",
        "the rolled-out model is in charge"
    );
    let status = line.status();
    assert!(
        status["shadow"].is_null(),
        "the shadow stops once it is promoted"
    );
    assert_eq!(status["rollout"]["phase"], "promoted", "{status}");
    assert_eq!(status["rollout"]["replaced"], "casting-defect 2.0.0");

    // A restart keeps the rolled-out model, after checking it again.
    let log = line.stop();
    assert!(log.contains("rolled-out model in charge"), "{log}");
    line.resume();
    assert_eq!(line.model_version(), "2.1.0");

    let out = fleet(&[
        "rollback",
        "--config",
        config.to_str().unwrap(),
        "--stations",
        STATION,
        "--wait-s",
        "60",
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("RolledBack"), "{}", stdout(&out));
    assert_eq!(line.model_version(), "2.0.0", "the model before it is back");

    // The rollback holds over a restart too.
    line.stop();
    line.resume();
    assert_eq!(line.model_version(), "2.0.0");

    // A rolled-out model whose files change on disk is never run again.
    let rollout_again = || roll_out(&config, &model, STATION, 5, 0.95, &listen);
    let out = rollout_again();
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(line.model_version(), "2.1.0");
    line.stop();
    let in_charge: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("records/rollouts/in_charge.json")).unwrap(),
    )
    .unwrap();
    let fetched = Path::new(in_charge["model"].as_str().unwrap()).join("model.toml");
    let text = std::fs::read_to_string(&fetched).unwrap();
    std::fs::write(
        &fetched,
        text.replace("defect_threshold = 0.5", "defect_threshold = 0.9"),
    )
    .unwrap();
    line.resume();
    assert_eq!(
        line.model_version(),
        "2.0.0",
        "a rolled-out model that changed on disk must not run"
    );
    let log = line.stop();
    assert!(log.contains("no longer matches its digest"), "{log}");

    // A config changed after a rollout took charge wins over the rollout.
    line.resume();
    let out = rollout_again();
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(line.model_version(), "2.1.0");
    line.stop();
    line.model = "models/xsdd";
    line.resume();
    assert_eq!(
        line.status()["model"]["name"],
        "xsdd-steel",
        "[model] path wins"
    );
    let log = line.stop();
    assert!(log.contains("[model] path changed"), "{log}");
}

#[test]
fn a_model_that_disagrees_waits_for_an_engineer_who_approves_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let line = Line::start(dir.path(), &broker);
    let config = fleet_config(dir.path(), &broker);
    let listen = format!("127.0.0.1:{}", free_port());
    let xsdd = repo().join("models/xsdd");

    let out = roll_out(
        &config,
        &xsdd,
        "plant-a/line-2/rollout-*",
        10,
        0.99,
        &listen,
    );
    // The pattern needs the central store, which this test has none of: a clear error.
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("central store"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = roll_out(&config, &xsdd, STATION, 10, 0.99, &listen);
    let report = stdout(&out);
    assert!(
        out.status.success(),
        "waiting for approval is a good end: {report}"
    );
    assert!(report.contains("AwaitingApproval"), "{report}");
    assert!(report.contains("is under the 99.00 %"), "{report}");
    assert_eq!(line.model_version(), "2.0.0", "not promoted on its own");
    let rollout = report
        .strip_prefix("rollout ")
        .and_then(|rest| rest.split(':').next())
        .unwrap()
        .to_owned();

    let out = fleet(&[
        "approve",
        "--config",
        config.to_str().unwrap(),
        "--rollout",
        &rollout,
        "--stations",
        STATION,
        "--who",
        "quality-engineer",
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    let status = line.status();
    assert_eq!(status["model"]["name"], "xsdd-steel", "{status}");

    // Approving again changes nothing (it is in charge); an unknown rollout is refused.
    let again = |rollout: &str| {
        fleet(&[
            "approve",
            "--config",
            config.to_str().unwrap(),
            "--rollout",
            rollout,
            "--stations",
            STATION,
            "--wait-s",
            "20",
        ])
    };
    assert!(again(&rollout).status.success());
    let out = again("no-such-rollout");
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("is not this station's current one"),
        "{}",
        stdout(&out)
    );
}

/// An HTTP server that answers each path with fixed bytes, as a rogue would.
fn serve(files: HashMap<String, Vec<u8>>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::Builder::new()
        .name("rogue-http".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let (status, body) = files
                    .get(&path)
                    .map_or(("404 Not Found", &b""[..]), |b| ("200 OK", b.as_slice()));
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(body);
            }
        })
        .unwrap();
    port
}

/// A third-party MQTT client: publishes an order and collects the station's reports.
fn engineer(port: u16) -> (Client, Arc<Mutex<Vec<Value>>>) {
    let options = MqttOptions::new("third-party-engineer", "127.0.0.1", port);
    let (client, mut connection) = Client::new(options, 16);
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&heard);
    let subscriber = client.clone();
    std::thread::Builder::new()
        .name("test-engineer".into())
        .spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => subscriber
                        .subscribe("inspecta/+/+/+/rollout", QoS::AtLeastOnce)
                        .unwrap(),
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        sink.lock()
                            .unwrap()
                            .push(serde_json::from_slice(&p.payload).unwrap());
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        })
        .unwrap();
    (client, heard)
}

#[test]
fn a_package_that_does_not_match_its_digest_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let line = Line::start(dir.path(), &broker);
    let model = casting_as(dir.path(), "6.6.6");
    let names: Vec<String> = ["model.onnx", "model.toml", "familiarity.safetensors"]
        .map(String::from)
        .to_vec();
    let package = Package::of_files(&model, "casting-defect", "6.6.6", &names).unwrap();
    let digest = package.digest();
    let mut onnx = std::fs::read(model.join("model.onnx")).unwrap();
    let middle = onnx.len() / 2;
    onnx[middle] ^= 0x40;
    let mut files = HashMap::new();
    files.insert(
        "/r/package.json".to_owned(),
        serde_json::to_vec(&package).unwrap(),
    );
    for name in &names {
        files.insert(
            format!("/r/files/{name}"),
            std::fs::read(model.join(name)).unwrap(),
        );
    }
    files.insert("/r/files/model.onnx".to_owned(), onnx);
    // A second rollout whose list is not the one the order names.
    let mut forged = package;
    forged.version = "6.6.7".into();
    files.insert(
        "/forged/package.json".to_owned(),
        serde_json::to_vec(&forged).unwrap(),
    );
    let port = serve(files);
    let (client, heard) = engineer(broker.port);

    let order = |id: &str, folder: &str| {
        json!({
            "command": "rollout", "rollout": id, "digest": digest,
            "package_url": format!("http://127.0.0.1:{port}/{folder}"),
            "shadow_parts": 3, "promote": {"policy": "auto", "min_agreement": 0.0},
        })
    };
    let topic = format!("inspecta/{STATION}/command");
    let ended = |id: &str| {
        heard
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s["rollout"] == id && s["phase"] != "downloading")
            .cloned()
    };
    for (id, folder, why) in [
        ("tampered-file", "r", "SHA-256"),
        ("forged-list", "forged", "hashes to"),
    ] {
        let body = serde_json::to_vec(&order(id, folder)).unwrap();
        client
            .publish(&topic, QoS::AtLeastOnce, false, body)
            .unwrap();
        wait_for(id, Duration::from_secs(60), || ended(id).is_some());
        let state = ended(id).unwrap();
        assert_eq!(state["phase"], "rejected", "{state}");
        assert!(state["reason"].as_str().unwrap().contains(why), "{state}");
        assert_eq!(
            state["site"], "plant-a",
            "stamped like every payload: {state}"
        );
        assert_eq!(line.model_version(), "2.0.0");
        assert!(line.status()["shadow"].is_null(), "nothing of it ran");
    }
}
