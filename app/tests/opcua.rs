//! The OPC UA server of the real binary, driven by a real OPC UA client (async-opcua's) the
//! way a PLC drives a vision system: PartId, Trigger -> Busy -> ResultReady -> Ack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, headless, terminate};
use opcua::client::{ClientBuilder, IdentityToken, Session};
use opcua::crypto::SecurityPolicy;
use opcua::types::{
    MessageSecurityMode, NodeId, ReadValueId, StatusCode, TimestampsToReturn, UAString, Variant,
    WriteValue,
};

fn start_station(dir: &Path, port: u16) -> Child {
    let config = dir.join("station.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"opcua-test\"\n[model]\npath = \"models/casting\"\nthreads = 1\n\
             [source]\nkind = \"folder\"\npath = \"samples/casting\"\n[trigger]\nenabled = true\n\
             [store]\ndir = \"{}\"\n[api]\nlisten = \"127.0.0.1:{}\"\n\
             [opcua]\nlisten = \"127.0.0.1:{port}\"\n",
            dir.join("records").display(),
            free_port()
        ),
    )
    .unwrap();
    headless(&config)
}

/// A PLC's view of the station.
struct Plc {
    session: Arc<Session>,
    ns: u16,
}

impl Plc {
    async fn connect(port: u16, pki: &Path) -> Self {
        let mut client = ClientBuilder::new()
            .application_name("test PLC")
            .application_uri("urn:inspecta:test-plc")
            .pki_dir(pki)
            .create_sample_keypair(true)
            .trust_server_certs(true)
            .session_retry_limit(3)
            .client()
            .unwrap();
        let url = format!("opc.tcp://127.0.0.1:{port}/");
        let deadline = Instant::now() + Duration::from_secs(60);
        let (session, event_loop) = loop {
            match client
                .connect_to_matching_endpoint(
                    (
                        url.as_str(),
                        SecurityPolicy::None.to_str(),
                        MessageSecurityMode::None,
                    ),
                    IdentityToken::Anonymous,
                )
                .await
            {
                Ok(connected) => break connected,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no OPC UA server: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        event_loop.spawn();
        assert!(session.wait_for_connection().await);
        let ns = session.get_namespace_index("urn:inspecta").await.unwrap();
        Self { session, ns }
    }

    fn id(&self, path: &str) -> NodeId {
        NodeId::new(self.ns, format!("Inspecta.{path}"))
    }

    async fn read(&self, path: &str) -> Variant {
        let values = self
            .session
            .read(
                &[ReadValueId::from(self.id(path))],
                TimestampsToReturn::Neither,
                0.0,
            )
            .await
            .unwrap();
        values[0].value.clone().unwrap_or(Variant::Empty)
    }

    async fn write(&self, path: &str, value: impl Into<Variant>) -> StatusCode {
        let results = self
            .session
            .write(&[WriteValue::value_attr(self.id(path), value.into())])
            .await
            .unwrap();
        results[0]
    }

    async fn wait_until(&self, path: &str, wanted: Variant) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.read(path).await != wanted {
            assert!(Instant::now() < deadline, "{path} never became {wanted:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
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
    let station = start_station(dir.path(), port);
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
