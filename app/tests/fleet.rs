//! The fleet's central store, end to end on real servers: a real station publishes to a real
//! mosquitto, two `inspecta fleet ingest` processes each store every message into a real
//! PostgreSQL; PostgreSQL stops under load and one ingest is killed with SIGKILL, and still
//! every verdict is one row, bad messages are dead letters with their reason, and the views
//! give the plant's figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::broker::{Broker, wait_for};
use common::fleet::{ingest, try_count};
use common::postgres::Postgres;
use common::station::{Station, TOKEN};
use common::terminate;
use rumqttc::{Client, MqttOptions, QoS};
use serde_json::json;

const PARTS: i64 = 24;

fn count(postgres: &Postgres, sql: &str) -> i64 {
    postgres
        .connect()
        .query_one(sql, &[])
        .map_or(-1, |row| row.get(0))
}

fn publisher(broker: &Broker) -> Client {
    let options = MqttOptions::new("hostile-test", "127.0.0.1", broker.port);
    let (client, mut connection) = Client::new(options, 16);
    std::thread::Builder::new()
        .name("hostile-mqtt".into())
        .spawn(move || for _ in connection.iter() {})
        .unwrap();
    client
}

#[test]
fn every_verdict_is_one_row_through_a_store_outage_and_a_killed_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut postgres = Postgres::start();
    let mut first = ingest(dir.path(), "ingest-1", &broker, &postgres, "");
    let second = ingest(dir.path(), "ingest-2", &broker, &postgres, "");
    wait_for("the schema", Duration::from_secs(60), || {
        try_count(
            &postgres,
            "SELECT max(version)::bigint FROM schema_migrations",
        ) == 3
    });
    // Both subscribed before anything is published.
    std::thread::sleep(Duration::from_secs(2));

    // Bad input first: each is a dead letter with its reason, and the ingest goes on.
    let hostile = publisher(&broker);
    let origin = r#""site":"plant-a","line":"line-2","station":"api-test""#;
    for (topic, payload) in [
        (
            "inspecta/plant-a/line-2/api-test/verdict",
            "{\"schema\":1,".to_owned(),
        ),
        (
            "inspecta/plant-a/line-2/api-test/verdict",
            format!(r#"{{"schema":9,{origin},"id":1}}"#),
        ),
        (
            "inspecta/plant-a/line-2/forged/verdict",
            format!(r#"{{"schema":1,{origin},"id":1}}"#),
        ),
        (
            "inspecta/plant-a/line-2/api-test/review",
            format!(r#"{{"schema":1,{origin},"id":1}}"#),
        ),
    ] {
        hostile
            .publish(topic, QoS::AtLeastOnce, false, payload.into_bytes())
            .unwrap();
    }
    wait_for("the dead letters", Duration::from_secs(30), || {
        try_count(&postgres, "SELECT count(*) FROM dead_letters") == 4
    });
    let mut store = postgres.connect();
    let reasons: Vec<String> = store
        .query("SELECT reason FROM dead_letters ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    drop(store);
    let said = reasons.join("\n");
    for expected in [
        "not a JSON object",
        "schema 9 is not one this ingest reads",
        "the topic says station \"forged\" but the payload says \"api-test\"",
        "no usable verdict_id",
    ] {
        assert!(said.contains(expected), "{expected:?} in\n{said}");
    }

    // The store goes away; the line runs on, and one ingest dies holding messages.
    postgres.pause();
    let station = Station::start(
        "kind = \"folder\"\npath = \"samples/casting\"\nparts_per_second = 8.0",
        &format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nsite = \"plant-a\"\nline = \"line-2\"\n",
            broker.port
        ),
    );
    station.wait_for("every part judged", |s| {
        s.get("/verdicts?limit=100").1["items"]
            .as_array()
            .is_some_and(|items| items.len() == PARTS as usize)
    });
    let items = station.get("/verdicts?limit=100").1["items"].clone();
    let overridden = items
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"] == "good")
        .and_then(|r| r["id"].as_i64())
        .expect("a part judged good");
    let (status, answer) = station.post(
        &format!("/verdicts/{overridden}/review"),
        Some(TOKEN),
        &json!({"reviewer": "ana", "action": "override", "label": "defect"}),
    );
    assert!(status.is_success(), "{answer}");
    std::thread::sleep(Duration::from_secs(2));
    first.kill().unwrap();
    first.wait().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    postgres.resume();
    let first = ingest(dir.path(), "ingest-1", &broker, &postgres, "");

    wait_for(
        "every verdict in the store",
        Duration::from_secs(90),
        || try_count(&postgres, "SELECT count(*) FROM verdicts") == PARTS,
    );
    wait_for("the review in the store", Duration::from_secs(30), || {
        try_count(&postgres, "SELECT count(*) FROM reviews") == 1
    });
    // Once each: the keys hold against redelivery (replayed here on purpose too).
    let mut store = postgres.connect();
    let ids: Vec<i64> = store
        .query(
            "SELECT id FROM verdicts WHERE site = 'plant-a' AND line = 'line-2' \
             AND station = 'api-test' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, (1..=PARTS).collect::<Vec<_>>());
    let stored: serde_json::Value = store
        .query_one("SELECT payload FROM verdicts WHERE id = 5", &[])
        .unwrap()
        .get(0);
    hostile
        .publish(
            "inspecta/plant-a/line-2/api-test/verdict",
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&stored).unwrap(),
        )
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&postgres, "SELECT count(*) FROM verdicts"), PARTS);
    assert_eq!(count(&postgres, "SELECT count(*) FROM dead_letters"), 4);

    // The plant's figures, from the views.
    let row = store
        .query_one(
            "SELECT parts, good, override_rate::float8 FROM fleet_shift_kpis \
             WHERE station = 'api-test'",
            &[],
        )
        .unwrap();
    let (parts, good, override_rate): (i64, i64, f64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(parts, PARTS);
    let judged_good = count(
        &postgres,
        &format!("SELECT count(*) FROM verdicts WHERE label = 'good' AND id <> {overridden}"),
    );
    assert_eq!(
        good, judged_good,
        "the overridden part is held to be a defect now"
    );
    assert!((override_rate - 1.0 / PARTS as f64).abs() < 1e-3);
    assert_eq!(
        count(
            &postgres,
            "SELECT count(*) FROM station_status WHERE station = 'api-test' AND state = 'online'"
        ),
        1
    );
    let pareto = count(
        &postgres,
        "SELECT parts FROM fleet_defect_pareto WHERE site = 'plant-a' AND defect = 'defect'",
    );
    assert_eq!(pareto, PARTS - judged_good);

    drop(station);
    for process in [first, second] {
        let (status, log) = terminate(process);
        assert!(status.success(), "{log}");
        assert!(log.contains("ingest stopped"), "{log}");
    }
}
