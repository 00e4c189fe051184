#![allow(dead_code, clippy::unwrap_used)]
//! A PLC's view of a station's OPC UA server, for the OPC UA tests and the OPC UA bench
//! (which includes this file by path).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opcua::client::{ClientBuilder, IdentityToken, Session};
use opcua::crypto::SecurityPolicy;
use opcua::types::{
    MessageSecurityMode, NodeId, ReadValueId, StatusCode, TimestampsToReturn, Variant, WriteValue,
};

/// A PLC's view of the station.
pub struct Plc {
    pub session: Arc<Session>,
    ns: u16,
}

/// An endpoint's security, as the PLC asks for it.
pub type Security = (SecurityPolicy, MessageSecurityMode);
pub const NONE: Security = (SecurityPolicy::None, MessageSecurityMode::None);
pub const ENCRYPTED: Security = (
    SecurityPolicy::Basic256Sha256,
    MessageSecurityMode::SignAndEncrypt,
);

impl Plc {
    /// Anonymous, unsecured, once the server is up.
    pub async fn connect(port: u16, pki: &Path) -> Self {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match Self::try_connect(port, pki, NONE, IdentityToken::Anonymous).await {
                Ok(plc) => return plc,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no OPC UA server: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// One attempt at a session: the error when the server turns it away.
    pub async fn try_connect(
        port: u16,
        pki: &Path,
        (policy, mode): Security,
        identity: IdentityToken,
    ) -> Result<Self, String> {
        let mut client = ClientBuilder::new()
            .application_name("test PLC")
            .application_uri("urn:inspecta:test-plc")
            .pki_dir(pki)
            .create_sample_keypair(true)
            .trust_server_certs(true)
            .session_retry_limit(0)
            .client()
            .unwrap();
        let url = format!("opc.tcp://127.0.0.1:{port}/");
        let (session, event_loop) = client
            .connect_to_matching_endpoint((url.as_str(), policy.to_str(), mode), identity)
            .await
            .map_err(|e| e.to_string())?;
        // A refused session ends the event loop (no retries): that is the answer.
        let mut events = event_loop.spawn();
        tokio::select! {
            connected = session.wait_for_connection() => {
                if !connected {
                    events.abort();
                    return Err("the session was refused".into());
                }
            }
            ended = &mut events => return Err(format!("the session was refused: {ended:?}")),
            () = tokio::time::sleep(Duration::from_secs(30)) => {
                events.abort();
                return Err("no answer within 30 s".into());
            }
        }
        let ns = session.get_namespace_index("urn:inspecta").await.unwrap();
        Ok(Self { session, ns })
    }

    pub fn id(&self, path: &str) -> NodeId {
        NodeId::new(self.ns, format!("Inspecta.{path}"))
    }

    pub async fn read(&self, path: &str) -> Variant {
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

    pub async fn write(&self, path: &str, value: impl Into<Variant>) -> StatusCode {
        let results = self
            .session
            .write(&[WriteValue::value_attr(self.id(path), value.into())])
            .await
            .unwrap();
        results[0]
    }

    /// A method of the station object: its outputs, or the status it failed with.
    pub async fn call(&self, method: &str, args: Vec<Variant>) -> Result<Vec<Variant>, StatusCode> {
        let result = self
            .session
            .call_one((self.id("Station"), self.id(method), Some(args)))
            .await?;
        if result.status_code.is_good() {
            Ok(result.output_arguments.unwrap_or_default())
        } else {
            Err(result.status_code)
        }
    }

    pub async fn wait_until(&self, path: &str, wanted: Variant) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.read(path).await != wanted {
            assert!(Instant::now() < deadline, "{path} never became {wanted:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
