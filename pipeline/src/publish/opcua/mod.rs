//! An OPC UA server for the PLC and SCADA: the station's status, the last verdict, counters
//! and the last hour's KPIs as variables, and the trigger/result handshake that commercial
//! vision systems offer a PLC:
//!
//! 1. the PLC writes `Handshake/PartId` (optional), then `Handshake/Trigger` = true;
//! 2. the station sets `Busy` and judges the next part;
//! 3. it writes `Result`, `ResultClass`, `ResultScore`, `ResultRecordId`, then sets
//!    `ResultReady` and clears `Busy`;
//! 4. the PLC reads the result and writes `Ack` = true; the station clears `ResultReady`,
//!    `Trigger` and `Ack`, and is ready for the next part.
//!
//! A trigger while busy or unacknowledged is refused (`BadInvalidState`). A part that gets
//! no frame in time ends the cycle with `Fault` set instead of a result.
//!
//! Write callbacks run under the address space's lock, so they only change the handshake
//! state; one task applies every variable change (and polls the station) every 50 ms.

//!
//! The configuration is always built (a config names it); the server is the `opcua`
//! feature.

#[cfg(feature = "opcua")]
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[cfg(feature = "opcua")]
pub use server::{OpcUaError, OpcUaServer};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaConfig {
    /// Address to listen on; `0.0.0.0:4840` by default.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Host name clients are told to connect to (the endpoint URL); default: the listen IP.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Where the server keeps its certificate; default: `opcua-pki` in the store folder.
    #[serde(default)]
    pub pki_dir: Option<PathBuf>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 4840))
}
fn default_namespace() -> String {
    "urn:inspecta".into()
}
