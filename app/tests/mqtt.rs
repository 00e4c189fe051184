//! The MQTT link against a real broker (mosquitto) that goes away in the middle of a run and
//! comes back: every verdict must arrive, in order, none lost; duplicates (QoS 1) are
//! removed by record id as a plant consumer would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::broker::{Broker, wait_for};
use common::{free_port, headless, terminate};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

/// What the plant-side consumer received: (topic, JSON payload), in arrival order.
type Inbox = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// A plant-side consumer: a persistent QoS 1 subscription to everything the station says.
fn subscribe(port: u16) -> (Client, Inbox) {
    let mut options = MqttOptions::new("plant-consumer", "127.0.0.1", port);
    options.set_clean_session(false);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(options, 16);
    let publisher = client.clone();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    let subscribed = Arc::new(Mutex::new(false));
    let acked = Arc::clone(&subscribed);
    std::thread::Builder::new()
        .name("test-subscriber".into())
        .spawn(move || {
            client.subscribe("inspecta/#", QoS::AtLeastOnce).unwrap();
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let value = serde_json::from_slice(&p.payload).unwrap();
                        sink.lock().unwrap().push((p.topic.clone(), value));
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => *acked.lock().unwrap() = true,
                    Ok(_) => {}
                    // The broker is away: rumqttc reconnects on the next poll.
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        })
        .unwrap();
    wait_for("the subscription", Duration::from_secs(10), || {
        *subscribed.lock().unwrap()
    });
    (publisher, received)
}

fn verdict_ids(received: &Mutex<Vec<(String, serde_json::Value)>>) -> Vec<i64> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(topic, _)| topic.ends_with("/verdict"))
        .map(|(_, v)| v["id"].as_i64().unwrap())
        .collect()
}

fn presence(received: &Mutex<Vec<(String, serde_json::Value)>>) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(topic, _)| topic == "inspecta/plant-a/line-2/mqtt-test/status")
        .map(|(_, v)| v["state"].as_str().unwrap().to_owned())
        .collect()
}

/// The real binary, headless, on the sample parts at `rate` parts/s, linked to `broker`.
/// The station, and the port of its API.
fn start_station(dir: &Path, broker: &Broker, rate: f32, extra: &str) -> (Child, u16) {
    let link = format!(
        "host = \"127.0.0.1\"\nport = {}\nsite = \"plant-a\"\nline = \"line-2\"\n{extra}",
        broker.port
    );
    start_station_with_link(dir, &link, rate)
}

/// As [`start_station`], with the whole `[mqtt]` section (and what follows it) given.
fn start_station_with_link(dir: &Path, link: &str, rate: f32) -> (Child, u16) {
    let config = dir.join("station.toml");
    let api = free_port();
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"mqtt-test\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
             [source]\nkind = \"folder\"\npath = \"samples/casting\"\nparts_per_second = {rate:.1}\n\
             [store]\ndir = \"{}\"\n[api]\nlisten = \"127.0.0.1:{}\"\n[mqtt]\n{link}",
            dir.join("records").display(),
            api,
        ),
    )
    .unwrap();
    (headless(&config), api)
}

/// `/health`'s status code and its reasons.
fn health(api: u16) -> (u16, String) {
    reqwest::blocking::get(format!("http://127.0.0.1:{api}/health"))
        .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()))
        .unwrap_or((0, String::new()))
}

#[test]
fn every_verdict_reaches_the_plant_in_order_across_a_broker_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path());
    let (_, received) = subscribe(broker.port);

    let (station, api) = start_station(dir.path(), &broker, 3.0, "");

    wait_for("the first verdicts", Duration::from_secs(60), || {
        verdict_ids(&received).len() >= 4
    });
    assert_eq!(health(api).0, 200, "{}", health(api).1);
    broker.pause();
    // The line goes on while the broker is away: these parts wait in the store, and the
    // station says its plant link is down.
    wait_for(
        "/health to report the broker",
        Duration::from_secs(30),
        || {
            let (code, body) = health(api);
            code == 503 && body.contains("mqtt: the broker is unreachable")
        },
    );
    let before_outage_ended = verdict_ids(&received).len();
    broker.resume();
    wait_for("all 24 verdicts", Duration::from_secs(60), || {
        verdict_ids(&received).iter().collect::<BTreeSet<_>>().len() == 24
    });

    let ids = verdict_ids(&received);
    let mut first_seen = Vec::new();
    for id in &ids {
        if !first_seen.contains(id) {
            first_seen.push(*id);
        }
    }
    assert_eq!(
        first_seen,
        (1..=24).collect::<Vec<_>>(),
        "in order, none lost"
    );
    assert!(
        before_outage_ended < 24,
        "the outage really held verdicts back ({before_outage_ended} arrived before it ended)"
    );
    assert_eq!(
        presence(&received).first().map(String::as_str),
        Some("online")
    );

    wait_for("/health to be ok again", Duration::from_secs(30), || {
        health(api).0 == 200
    });
    let (status, log) = terminate(station);
    assert!(status.success(), "{log}");
    assert!(
        log.contains("MQTT link down"),
        "the outage is in the log:\n{log}"
    );
    wait_for("the goodbye", Duration::from_secs(10), || {
        presence(&received).last().map(String::as_str) == Some("offline")
    });
    let cursor: i64 = rusqlite::Connection::open(dir.path().join("records/records.sqlite"))
        .unwrap()
        .query_row(
            "SELECT last_id FROM forwarded WHERE link = 'mqtt' AND stream = 'verdicts'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(cursor, 24, "the store knows the broker has everything");
}

#[test]
fn a_station_that_dies_is_announced_offline_by_its_last_will() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let (_, received) = subscribe(broker.port);
    let (mut station, _) = start_station(dir.path(), &broker, 2.0, "");
    wait_for("online", Duration::from_secs(60), || {
        presence(&received).last().map(String::as_str) == Some("online")
    });
    station.kill().unwrap();
    station.wait().unwrap();
    wait_for("the last will", Duration::from_secs(30), || {
        presence(&received).last().map(String::as_str) == Some("offline")
    });
}

#[test]
fn the_plant_triggers_parts_over_mqtt_and_reads_the_kpis() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let (plant, received) = subscribe(broker.port);
    // [mqtt] continues: trigger commands allowed, model switches not; KPIs every second.
    let extra = "kpi_every_s = 1\ncommands = [\"trigger\"]\n[trigger]\nenabled = true\n";
    let topic = "inspecta/plant-a/line-2/mqtt-test/command";
    // A retained command, left on the broker before the station starts: it would run again
    // on every connect, so it must not run at all.
    let retained = serde_json::json!({"command": "trigger", "part_id": "RETAINED-1"});
    plant
        .publish(topic, QoS::AtLeastOnce, true, retained.to_string())
        .unwrap();
    let (station, _) = start_station(dir.path(), &broker, 50.0, extra);
    wait_for("online", Duration::from_secs(60), || {
        presence(&received).last().map(String::as_str) == Some("online")
    });
    let send = |command: serde_json::Value| {
        plant
            .publish(topic, QoS::AtLeastOnce, false, command.to_string())
            .unwrap();
    };
    send(
        serde_json::json!({"command": "switch_model", "path": "models/xsdd", "request_id": "r-6"}),
    );
    // Fields a station does not know (the plant's own timestamp) are ignored.
    send(
        serde_json::json!({"command": "trigger", "part_id": "P-7", "request_id": "r-7", "sent_at": "2026-12-02T10:00:00Z"}),
    );
    let part_ids = || {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|(topic, _)| topic.ends_with("/verdict"))
            .map(|(_, v)| v["part_id"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    wait_for("the triggered part", Duration::from_secs(30), || {
        part_ids() == ["P-7"]
    });
    wait_for("the KPIs", Duration::from_secs(30), || {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|(topic, v)| topic.ends_with("/kpi") && v["parts"] == 1)
    });

    let (status, log) = terminate(station);
    assert!(status.success(), "{log}");
    assert!(
        log.contains("command from the plant refused"),
        "switch_model is not allowed here:\n{log}"
    );
    assert!(!log.contains("model switched"), "{log}");
    assert!(
        log.contains("retained command from the plant ignored"),
        "{log}"
    );
    assert_eq!(
        part_ids(),
        ["P-7"],
        "one trigger, one part, no retained one"
    );

    // Every command is answered, the trigger twice: accepted, then judged with its record.
    let messages = received.lock().unwrap().clone();
    let replies: Vec<&serde_json::Value> = messages
        .iter()
        .filter(|(topic, _)| topic.ends_with("/command/reply"))
        .map(|(_, v)| v)
        .collect();
    let verdict = &messages
        .iter()
        .find(|(topic, _)| topic.ends_with("/verdict"))
        .unwrap()
        .1;
    let status: Vec<(&str, &str)> = replies
        .iter()
        .map(|r| {
            (
                r["request_id"].as_str().unwrap_or_default(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        status,
        [("r-6", "refused"), ("r-7", "accepted"), ("r-7", "judged")],
        "{replies:?}"
    );
    assert!(
        replies[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not in this station's [mqtt] commands"),
        "{}",
        replies[0]
    );
    assert_eq!(replies[2]["part_id"], "P-7");
    assert_eq!(replies[2]["record_id"], verdict["id"]);
    // Every payload says which layout it follows and where it comes from.
    for (topic, payload) in messages.iter().filter(|(t, _)| !t.ends_with("/command")) {
        assert_eq!(payload["schema"], 1, "{topic}: {payload}");
        assert_eq!(payload["site"], "plant-a", "{topic}: {payload}");
        assert_eq!(payload["line"], "line-2", "{topic}: {payload}");
        assert_eq!(payload["station"], "mqtt-test", "{topic}: {payload}");
    }
    let online = messages
        .iter()
        .find(|(t, v)| t.ends_with("/status") && v["state"] == "online")
        .unwrap();
    assert!(
        online.1["since"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok(),
        "presence carries its birth time: {}",
        online.1
    );
}

/// Makes a test CA and a certificate for `localhost` signed by it (openssl CLI), in `dir`.
fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key) = (
        dir.join(format!("{name}-ca.crt")),
        dir.join(format!("{name}-ca.key")),
    );
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let csr = dir.join(format!("{name}.csr"));
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    let subject = os(&format!("/CN={name} test CA"));
    run(&[
        &os("req"),
        &os("-x509"),
        &os("-newkey"),
        &os("rsa:2048"),
        &os("-nodes"),
        &os("-days"),
        &os("2"),
        &os("-subj"),
        &subject,
        &os("-keyout"),
        ca_key.as_os_str(),
        &os("-out"),
        ca.as_os_str(),
    ]);
    run(&[
        &os("req"),
        &os("-newkey"),
        &os("rsa:2048"),
        &os("-nodes"),
        &os("-subj"),
        &os("/CN=localhost"),
        &os("-keyout"),
        key.as_os_str(),
        &os("-out"),
        csr.as_os_str(),
    ]);
    run(&[
        &os("x509"),
        &os("-req"),
        &os("-in"),
        csr.as_os_str(),
        &os("-CA"),
        ca.as_os_str(),
        &os("-CAkey"),
        ca_key.as_os_str(),
        &os("-CAcreateserial"),
        &os("-days"),
        &os("2"),
        &os("-extfile"),
        ext.as_os_str(),
        &os("-out"),
        cert.as_os_str(),
    ]);
    (ca, cert, key)
}

/// TLS to a real mosquitto TLS listener with certificates made by the test: verdicts arrive
/// over it; a station that trusts another CA never connects and says so on `/health`.
#[test]
fn the_link_speaks_tls_to_a_broker_it_trusts_and_only_to_that_one() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path(), "broker");
    let tls_port = free_port();
    let broker = Broker::with_listeners(
        dir.path(),
        &format!(
            "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
            ca.display(),
            cert.display(),
            key.display()
        ),
    );
    wait_for("the TLS listener", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
    });
    let (_plant, received) = subscribe(broker.port);
    let tls = |ca: &Path| {
        format!(
            "host = \"localhost\"\nport = {tls_port}\nsite = \"plant-a\"\nline = \"line-2\"\n\
             tls = true\nca = \"{}\"\n",
            ca.display()
        )
    };
    let trusted = dir.path().join("trusted");
    std::fs::create_dir(&trusted).unwrap();
    let (station, _) = start_station_with_link(&trusted, &tls(&ca), 50.0);
    wait_for("24 verdicts over TLS", Duration::from_secs(120), || {
        verdict_ids(&received).len() >= 24
    });
    let (status, log) = terminate(station);
    assert!(status.success(), "{log}");

    let (other_ca, _, _) = certificates(dir.path(), "impostor");
    let untrusted = dir.path().join("untrusted");
    std::fs::create_dir(&untrusted).unwrap();
    let (station, api) = start_station_with_link(&untrusted, &tls(&other_ca), 50.0);
    wait_for(
        "/health to say the broker is unreachable",
        Duration::from_secs(60),
        || health(api).1.contains("mqtt: the broker is unreachable"),
    );
    let (status, log) = terminate(station);
    assert!(status.success(), "{log}");
    assert!(log.to_lowercase().contains("certificate"), "{log}");
    assert_eq!(
        verdict_ids(&received).len(),
        24,
        "nothing came over the untrusted link"
    );
}
