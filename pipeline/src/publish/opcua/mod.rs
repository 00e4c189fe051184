//! An OPC UA server for the PLC and SCADA: the station's status, the last verdict, counters
//! and the last hour's KPIs as variables, and the trigger/result handshake that commercial
//! vision systems offer a PLC:
//!
//! 1. the PLC writes `Handshake/PartId` (optional), then `Handshake/Trigger` = true;
//! 2. the station sets `Busy` and judges the next part;
//! 3. once the part is judged and stored, `ResultReady` is set, `Busy` cleared, and `Result`,
//!    `ResultClass`, `ResultScore`, `ResultRecordId` hold that part's verdict;
//! 4. the PLC reads the result and writes `Ack` = true; `ResultReady` and `Trigger` clear and
//!    the result reads empty again; the station is ready for the next part. The PLC resets
//!    `Ack` when it likes.
//!
//! Each step is visible to the very next read: the handshake's variables are read from its
//! state (`handshake.rs`), not copied into nodes later. A trigger while busy or
//! unacknowledged is refused (`BadInvalidState`). A part that gets no frame within
//! `[trigger] frame_timeout_ms` ends the cycle with `Fault` set instead of a result (and is
//! recorded as `uncertain`, reason `no_frame`).

//!
//! The configuration is always built (a config names it); the server is the `opcua`
//! feature.

#[cfg(feature = "opcua")]
mod handshake;
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
    /// Address to listen on; `127.0.0.1:4840` by default: serving the plant network
    /// (`0.0.0.0:4840`) is a choice to write down.
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
    SocketAddr::from(([127, 0, 0, 1], 4840))
}
fn default_namespace() -> String {
    "urn:inspecta".into()
}
