//! The OPC UA server of the real binary, driven by a real OPC UA client (async-opcua's) the
//! way a PLC drives a vision system: PartId, Trigger -> Busy -> ResultReady -> Ack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/plc.rs"]
mod plc;

use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, headless, terminate};
use opcua::client::IdentityToken;
use opcua::types::{StatusCode, TimestampsToReturn, UAString, Variant};
use plc::{ENCRYPTED, NONE, Plc};

const FOLDER: &str = "kind = \"folder\"\npath = \"samples/casting\"\nrepeat = true\n";

/// The station with `source`, triggered, its OPC UA server on `port` configured further by
/// `opcua`; and its API's port.
fn start_station(dir: &Path, port: u16, source: &str, trigger: &str, opcua: &str) -> (Child, u16) {
    let config = dir.join("station.toml");
    let api = free_port();
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"opcua-test\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
             [source]\n{source}[trigger]\nenabled = true\n{trigger}\
             [reconnect]\nstall_timeout_ms = 600000\n\
             [store]\ndir = \"{}\"\n[api]\nlisten = \"127.0.0.1:{api}\"\n\
             [opcua]\nlisten = \"127.0.0.1:{port}\"\n{opcua}",
            dir.join("records").display(),
        ),
    )
    .unwrap();
    (headless(&config), api)
}

fn text(value: &Variant) -> String {
    match value {
        Variant::String(s) => s.as_ref().to_owned(),
        other => panic!("not a string: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plc_triggers_a_part_reads_the_result_and_acknowledges_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (station, _) = start_station(dir.path(), port, FOLDER, "", "");
    let plc = Plc::connect(port, &dir.path().join("plc-pki")).await;

    plc.wait_until("Status.Station", UAString::from("opcua-test").into())
        .await;
    assert_eq!(text(&plc.read("Status.Model").await), "casting-defect");
    assert_eq!(plc.read("Handshake.Busy").await, Variant::Boolean(false));

    // Acknowledging nothing, and writing a number as a part id, are refused.
    assert_eq!(
        plc.write("Handshake.Ack", true).await,
        StatusCode::BadInvalidState
    );
    assert_eq!(
        plc.write("Handshake.PartId", 7i32).await,
        StatusCode::BadTypeMismatch
    );
    assert_eq!(
        plc.write("Handshake.Trigger", 1i32).await,
        StatusCode::BadTypeMismatch
    );
    assert_eq!(plc.read("Handshake.Busy").await, Variant::Boolean(false));

    assert_eq!(
        plc.write("Handshake.PartId", UAString::from("P-1")).await,
        StatusCode::Good
    );
    assert_eq!(plc.write("Handshake.Trigger", true).await, StatusCode::Good);
    plc.wait_until("Handshake.ResultReady", true.into()).await;
    assert_eq!(plc.read("Handshake.Busy").await, Variant::Boolean(false));
    let result = text(&plc.read("Handshake.Result").await);
    assert!(
        ["good", "defect", "uncertain"].contains(&result.as_str()),
        "{result}"
    );
    let Variant::Int64(record) = plc.read("Handshake.ResultRecordId").await else {
        panic!("no record id");
    };
    assert_eq!(record, 1);
    assert_eq!(text(&plc.read("LastVerdict.PartId").await), "P-1");
    assert_eq!(text(&plc.read("LastVerdict.Verdict").await), result);

    // The result must be acknowledged before the next trigger.
    assert_eq!(
        plc.write("Handshake.Trigger", true).await,
        StatusCode::BadInvalidState
    );
    assert_eq!(plc.write("Handshake.Ack", true).await, StatusCode::Good);
    plc.wait_until("Handshake.ResultReady", false.into()).await;
    plc.wait_until("Handshake.Trigger", false.into()).await;

    // A second part, without a part id: the station makes one up.
    assert_eq!(plc.write("Handshake.Trigger", true).await, StatusCode::Good);
    plc.wait_until("Handshake.ResultReady", true.into()).await;
    assert_eq!(
        plc.read("Handshake.ResultRecordId").await,
        Variant::Int64(2)
    );
    assert!(text(&plc.read("LastVerdict.PartId").await).starts_with("opcua-test-"));
    plc.wait_until("Counters.Inspected", 2u64.into()).await;

    let (status, log) = terminate(station);
    assert!(status.success(), "{log}");
    assert!(log.contains("OPC UA trigger"), "{log}");
}

/// A PLC that reads right after each of its writes, 20 cycles: it must never see the
/// previous part's result as the current one, nor a stale flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_right_after_a_write_sees_that_write_20_cycles_in_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (station, _) = start_station(dir.path(), port, FOLDER, "", "");
    let plc = Plc::connect(port, &dir.path().join("plc-pki")).await;
    plc.wait_until("Status.Station", UAString::from("opcua-test").into())
        .await;
    let mut last_record = 0;
    for cycle in 0..20 {
        let part = format!("C-{cycle}");
        assert_eq!(
            plc.write("Handshake.PartId", UAString::from(part.as_str()))
                .await,
            StatusCode::Good
        );
        assert_eq!(
            text(&plc.read("Handshake.PartId").await),
            part,
            "PartId reads back"
        );
        assert_eq!(plc.write("Handshake.Trigger", true).await, StatusCode::Good);
        // Right after the trigger: busy (or already judged), never the last part's result.
        let ready = plc.read("Handshake.ResultReady").await;
        let busy = plc.read("Handshake.Busy").await;
        let record = plc.read("Handshake.ResultRecordId").await;
        match ready {
            Variant::Boolean(false) => {
                assert_eq!(busy, Variant::Boolean(true), "cycle {cycle}");
                assert_eq!(record, Variant::Int64(0), "cycle {cycle}: no stale result");
            }
            Variant::Boolean(true) => {
                assert!(
                    matches!(record, Variant::Int64(r) if r > last_record),
                    "cycle {cycle}: {record:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        plc.wait_until("Handshake.ResultReady", true.into()).await;
        let Variant::Int64(record) = plc.read("Handshake.ResultRecordId").await else {
            panic!("no record id");
        };
        assert!(
            record > last_record,
            "cycle {cycle}: {record} after {last_record}"
        );
        last_record = record;
        assert_eq!(text(&plc.read("LastVerdict.PartId").await), part);
        assert_eq!(
            plc.read("LastVerdict.RecordId").await,
            Variant::Int64(record)
        );
        assert_eq!(plc.write("Handshake.Ack", true).await, StatusCode::Good);
        // Right after the Ack: the result is gone with its flag.
        assert_eq!(
            plc.read("Handshake.ResultReady").await,
            Variant::Boolean(false),
            "cycle {cycle}"
        );
        assert_eq!(
            plc.read("Handshake.ResultRecordId").await,
            Variant::Int64(0),
            "cycle {cycle}"
        );
        assert_eq!(
            plc.read("Handshake.Trigger").await,
            Variant::Boolean(false),
            "cycle {cycle}"
        );
        assert_eq!(plc.write("Handshake.Ack", false).await, StatusCode::Good);
    }
    // Counters for 32-bit PLCs, and KPIs that are never NaN.
    plc.wait_until("Counters32.Inspected", 20u32.into()).await;
    let Variant::Double(yield_) = plc.read("Kpi.Yield").await else {
        panic!("no yield");
    };
    assert!(yield_.is_finite(), "{yield_}");
    let (status, log) = terminate(station);
    assert!(status.success(), "{log}");
}

/// A subscription sampled at a PLC's 10 ms scan sees `Busy` rise and fall around a part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_at_10_ms_sees_busy_then_the_result() {
    use opcua::client::{DataChangeCallback, MonitoredItem};
    use opcua::types::{DataValue, MonitoredItemCreateRequest};

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (station, _) = start_station(dir.path(), port, FOLDER, "", "");
    let plc = Plc::connect(port, &dir.path().join("plc-pki")).await;
    plc.wait_until("Status.Station", UAString::from("opcua-test").into())
        .await;
    let seen: Arc<std::sync::Mutex<Vec<(String, Variant)>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let names = ["Handshake.Busy", "Handshake.ResultReady"];
    let subscription = plc
        .session
        .create_subscription(
            Duration::from_millis(10),
            100,
            10,
            0,
            0,
            true,
            DataChangeCallback::new(move |value: DataValue, item: &MonitoredItem| {
                let name = item.item_to_monitor().node_id.to_string();
                sink.lock()
                    .unwrap()
                    .push((name, value.value.unwrap_or(Variant::Empty)));
            }),
        )
        .await
        .unwrap();
    let items: Vec<MonitoredItemCreateRequest> = names
        .iter()
        .map(|n| {
            let mut request: MonitoredItemCreateRequest = plc.id(n).into();
            request.requested_parameters.sampling_interval = 10.0;
            request
        })
        .collect();
    let created = plc
        .session
        .create_monitored_items(subscription, TimestampsToReturn::Both, items)
        .await
        .unwrap();
    for item in &created {
        assert!(item.result.revised_sampling_interval <= 10.0, "{item:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(plc.write("Handshake.Trigger", true).await, StatusCode::Good);
    plc.wait_until("Handshake.ResultReady", true.into()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = seen.lock().unwrap().clone();
    let busy: Vec<&Variant> = seen
        .iter()
        .filter(|(n, _)| n.ends_with("Handshake.Busy"))
        .map(|(_, v)| v)
        .collect();
    assert!(
        busy.contains(&&Variant::Boolean(true)),
        "Busy never seen through the subscription: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(n, v)| n.ends_with("Handshake.ResultReady") && *v == Variant::Boolean(true)),
        "{seen:?}"
    );
    let (status, log) = terminate(station);
    assert!(status.success(), "{log}");
}

/// A trigger the camera sends no frame for (a live source with a frame every 30 s): the
/// cycle ends with a fault naming the part, and the missed part is a record (uncertain,
/// reason `no_frame`), counted and sent like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_without_a_frame_is_a_fault_and_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let slow = "kind = \"pipeline\"\npipeline = \"videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=1/30\"\n";
    let (station, api) = start_station(dir.path(), port, slow, "frame_timeout_ms = 300\n", "");
    let plc = Plc::connect(port, &dir.path().join("plc-pki")).await;
    plc.wait_until("Status.Source", UAString::from("online").into())
        .await;
    assert_eq!(
        plc.write("Handshake.PartId", UAString::from("LOST-1"))
            .await,
        StatusCode::Good
    );
    assert_eq!(plc.write("Handshake.Trigger", true).await, StatusCode::Good);
    let deadline = Instant::now() + Duration::from_secs(30);
    let fault = loop {
        let fault = text(&plc.read("Handshake.Fault").await);
        if !fault.is_empty() {
            break fault;
        }
        assert!(Instant::now() < deadline, "no fault");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        fault.contains("no frame for part LOST-1 within 300 ms"),
        "{fault}"
    );
    assert_eq!(plc.read("Handshake.Busy").await, Variant::Boolean(false));
    assert_eq!(
        plc.read("Handshake.ResultReady").await,
        Variant::Boolean(false)
    );
    let body: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{api}/verdicts?part_id=LOST-1"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let record = &body["items"][0];
    assert_eq!(record["verdict"], "uncertain", "{body}");
    assert_eq!(record["reason"], "no_frame", "{body}");
    assert_eq!(record["has_image"], false, "{body}");
    // The cycle is over: the next trigger is taken.
    assert_eq!(plc.write("Handshake.Trigger", true).await, StatusCode::Good);
    let (status, log) = terminate(station);
    assert!(status.success(), "{log}");
}

/// The method pair of OPC 40100-style vision systems: `Trigger` returns once the part is
/// judged and stored, with its record id; `GetResultById` reads that record back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plc_calls_trigger_and_reads_the_result_by_its_record_id() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (station, api) = start_station(dir.path(), port, FOLDER, "", "");
    let plc = Plc::connect(port, &dir.path().join("plc-pki")).await;
    plc.wait_until("Status.Station", UAString::from("opcua-test").into())
        .await;

    let out = plc
        .call("Trigger", vec![UAString::from("M-1").into()])
        .await
        .unwrap();
    let [Variant::Int64(record), Variant::String(result)] = &out[..] else {
        panic!("Trigger returned {out:?}");
    };
    let back = plc
        .call("GetResultById", vec![Variant::Int64(*record)])
        .await
        .unwrap();
    assert_eq!(back[0], Variant::String(result.clone()));
    assert!(matches!(back[2], Variant::Double(score) if (0.0..=1.0).contains(&score)));
    assert_eq!(text(&back[3]), "M-1");
    // The record the call named is the one the store holds for that part.
    let body: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{api}/verdicts?part_id=M-1"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(body["items"][0]["id"], *record, "{body}");
    assert_eq!(body["items"][0]["verdict"], result.as_ref(), "{body}");

    assert_eq!(
        plc.call("GetResultById", vec![Variant::Int64(999_999)])
            .await,
        Err(StatusCode::BadNotFound)
    );
    assert_eq!(
        plc.call("Trigger", vec![Variant::Int32(3)]).await,
        Err(StatusCode::BadTypeMismatch)
    );
    // Without a part id the station names the part.
    let out = plc
        .call("Trigger", vec![UAString::null().into()])
        .await
        .unwrap();
    assert!(
        matches!(out[0], Variant::Int64(next) if next > *record),
        "{out:?}"
    );
    let (status, log) = terminate(station);
    assert!(status.success(), "{log}");
    assert!(log.contains("OPC UA Trigger call"), "{log}");
}

/// With users configured, an anonymous client reads but may not write or call; the PLC
/// signs in as a user on the Basic256Sha256 SignAndEncrypt endpoint once an engineer trusts
/// its certificate; a wrong password, or a password on the unsecured endpoint, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_write_over_an_encrypted_channel_and_anonymous_clients_only_read() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let secret = dir.path().join("plc.password");
    std::fs::write(&secret, "plc-secret\n").unwrap();
    let users = format!(
        "[[opcua.users]]\nname = \"plc\"\npassword_file = \"{}\"\n",
        secret.display()
    );
    let (station, _) = start_station(dir.path(), port, FOLDER, "", &users);
    let anonymous = Plc::connect(port, &dir.path().join("hmi-pki")).await;
    anonymous
        .wait_until("Status.Station", UAString::from("opcua-test").into())
        .await;
    assert_eq!(
        anonymous.write("Handshake.Trigger", true).await,
        StatusCode::BadUserAccessDenied
    );
    assert_eq!(
        anonymous
            .call("Trigger", vec![UAString::from("A-1").into()])
            .await,
        Err(StatusCode::BadUserAccessDenied)
    );
    assert_eq!(
        anonymous.read("Handshake.Busy").await,
        Variant::Boolean(false)
    );

    let plc_pki = dir.path().join("plc-pki");
    let user = |password: &str| IdentityToken::UserName("plc".into(), password.into());
    // An unknown client certificate is turned away and kept for the engineer to judge.
    let refused = Plc::try_connect(port, &plc_pki, ENCRYPTED, user("plc-secret")).await;
    assert!(refused.is_err(), "an untrusted certificate was let in");
    let pki = dir.path().join("records/opcua-pki");
    assert!(
        pki.join("own/cert.der").is_file(),
        "the server's own certificate"
    );
    let rejected: Vec<_> = std::fs::read_dir(pki.join("rejected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    let trusted = pki.join("trusted");
    std::fs::create_dir_all(&trusted).unwrap();
    std::fs::rename(&rejected[0], trusted.join(rejected[0].file_name().unwrap())).unwrap();

    let wrong = Plc::try_connect(port, &plc_pki, ENCRYPTED, user("guess")).await;
    assert!(wrong.is_err(), "a wrong password was let in");
    let unsecured = Plc::try_connect(port, &plc_pki, NONE, user("plc-secret")).await;
    assert!(
        unsecured.is_err(),
        "a password was taken over an unsecured channel"
    );
    let plc = Plc::try_connect(port, &plc_pki, ENCRYPTED, user("plc-secret"))
        .await
        .unwrap();
    assert_eq!(plc.write("Handshake.Trigger", true).await, StatusCode::Good);
    plc.wait_until("Handshake.ResultReady", true.into()).await;
    assert_eq!(plc.write("Handshake.Ack", true).await, StatusCode::Good);
    let out = plc
        .call("Trigger", vec![UAString::from("U-1").into()])
        .await
        .unwrap();
    assert!(matches!(out[0], Variant::Int64(_)), "{out:?}");

    let (status, log) = terminate(station);
    assert!(status.success(), "{log}");
    assert!(log.contains("OPC UA sign-in refused"), "{log}");
    assert!(log.contains("OPC UA user signed in"), "{log}");
}
