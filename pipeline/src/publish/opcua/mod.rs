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
mod access;
#[cfg(feature = "opcua")]
mod handshake;
#[cfg(feature = "opcua")]
mod methods;
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
    /// Where the server keeps its certificate (made on first start) and the client
    /// certificates it trusts (`trusted/`) or has turned away (`rejected/`); default:
    /// `opcua-pki` beside the record store.
    #[serde(default)]
    pub pki_dir: Option<PathBuf>,
    /// The endpoints offered: `none`, `sign` and `sign_and_encrypt` (Basic256Sha256).
    #[serde(default = "default_security")]
    pub security: Vec<Security>,
    /// Trust every client certificate on first sight. Off by default: an unknown client's
    /// certificate lands in `<pki_dir>/rejected/` until an engineer moves it to `trusted/`.
    #[serde(default)]
    pub trust_client_certs: bool,
    /// Anonymous sessions. Once `users` exist they may read but not write or call.
    #[serde(default = "yes")]
    pub anonymous: bool,
    /// Who may write the handshake and call the methods, on the signed endpoints only (a
    /// password never crosses an unsecured channel).
    #[serde(default)]
    pub users: Vec<OpcUaUser>,
}

/// An endpoint's message security, always with the Basic256Sha256 policy when not `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    None,
    Sign,
    SignAndEncrypt,
}

/// A user; the password comes from the environment or a file, never the config itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaUser {
    pub name: String,
    /// An environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file holding the password (one line; keep it mode 0600).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

fn default_security() -> Vec<Security> {
    vec![Security::None, Security::Sign, Security::SignAndEncrypt]
}
fn yes() -> bool {
    true
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4840))
}
fn default_namespace() -> String {
    "urn:inspecta".into()
}
