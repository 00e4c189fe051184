//! Verdicts, reviews and process alarms to an MQTT broker, QoS 1, under
//! `<prefix>/<site>/<line>/<station>/{verdict,review,alarm,status}`, the last hour's KPIs
//! (retained) on `.../kpi`, and commands from the plant on `.../command` when the
//! configuration allows them.
//!
//! The link keeps a cursor per stream in the store and moves it only when the broker has
//! acknowledged (PUBACK) everything up to it. While the broker is away the records simply
//! wait in the store; when it is back they go out oldest first. A message can go out twice
//! (acknowledged, but the cursor not yet moved when the line dropped): consumers
//! deduplicate by the record's id, which is never reused.

//!
//! The configuration, the plant's commands and the link's counters are always built (a
//! config names them); the link itself is the `mqtt` feature.

#[cfg(feature = "mqtt")]
mod link;

use serde::Deserialize;

#[cfg(feature = "mqtt")]
pub use link::{MqttError, MqttLink};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Defaults to `inspecta-<station>`; must be unique on the broker.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    pub site: String,
    pub line: String,
    #[serde(default)]
    pub username: Option<String>,
    /// Better given as `$INSPECTA_MQTT_PASSWORD` than written in the file.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// How often the last hour's KPIs are published (retained); 0: never.
    #[serde(default = "default_kpi_every")]
    pub kpi_every_s: u64,
    /// Commands accepted on the command topic: `trigger`, `switch_model`. None by default:
    /// a broker is not an authority unless the station's owner says so.
    #[serde(default)]
    pub commands: Vec<String>,
}

/// A command from the plant, as JSON on `<base>/command`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum PlantCommand {
    /// Judge the next part (a triggered station).
    Trigger {
        #[serde(default)]
        part_id: Option<String>,
    },
    /// Put one of the station's configured models in charge.
    SwitchModel {
        path: std::path::PathBuf,
        #[serde(default)]
        who: Option<String>,
    },
}

impl PlantCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Trigger { .. } => "trigger",
            Self::SwitchModel { .. } => "switch_model",
        }
    }
}

fn default_port() -> u16 {
    1883
}
fn default_prefix() -> String {
    "inspecta".into()
}
fn default_keep_alive() -> u64 {
    15
}
fn default_kpi_every() -> u64 {
    60
}
