//! Verdicts, reviews and process alarms to an MQTT broker, QoS 1, under
//! `<prefix>/<site>/<line>/<station>/{verdict,review,alarm,status}`, the last hour's KPIs
//! (retained) on `.../kpi`, a model rollout's state (retained) on `.../rollout`, and
//! commands from the plant on `.../command` when the configuration allows them, each
//! answered on `.../command/reply`. Every payload carries
//! `schema` ([`SCHEMA`]), `site` and `line`, so a consumer far from the topic tree (a
//! historian, a bridge) still knows what it holds.
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
#[cfg(feature = "mqtt")]
mod tls;
#[cfg(feature = "mqtt")]
mod topics;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[cfg(feature = "mqtt")]
pub use link::{MqttError, MqttLink};

use crate::publish::rollout::RolloutOrder;

/// Every command a station takes, as `[mqtt] commands` names them.
pub const COMMANDS: [&str; 5] = [
    "trigger",
    "switch_model",
    "rollout",
    "approve_rollout",
    "rollback",
];

/// The version of every payload's layout: raised when a field changes meaning or goes away
/// (new fields may come without it).
pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    pub host: String,
    /// 1883, or 8883 with `tls`.
    #[serde(default)]
    pub port: Option<u16>,
    /// Defaults to `inspecta-<site>-<line>-<station>`; must be unique on the broker.
    #[serde(default)]
    pub client_id: Option<String>,
    /// TLS (rustls) to the broker, checked against `ca` (PEM).
    #[serde(default)]
    pub tls: bool,
    /// The CA certificate(s) that signed the broker's certificate; needed with `tls`.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (PEM), for brokers that require them.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
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
    /// Commands accepted on the command topic ([`COMMANDS`]). None by default: a broker is
    /// not an authority unless the station's owner says so.
    #[serde(default)]
    pub commands: Vec<String>,
    /// The station's HTTP API as the plant reaches it (`http://10.0.2.14:8080`), announced
    /// with its presence: the plant view fetches part images there and the fleet's
    /// Prometheus finds the station by it.
    #[serde(default)]
    pub api_url: Option<String>,
}

impl MqttConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.tls { 8883 } else { 1883 })
    }
}

/// A command from the plant, as JSON on `<base>/command`. Fields it does not know are
/// ignored, so a plant may send more (a timestamp, its own ids) than a station reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CommandMessage {
    #[serde(flatten)]
    pub command: PlantCommand,
    /// Echoed in the reply, so the sender can match it.
    #[serde(default)]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum PlantCommand {
    /// Judge the next part (a triggered station).
    Trigger {
        #[serde(default)]
        part_id: Option<String>,
    },
    /// Put one of the station's configured models in charge.
    SwitchModel {
        path: PathBuf,
        #[serde(default)]
        who: Option<String>,
    },
    /// Fetch a model package, check it against its digest, run it as a shadow, and put it
    /// in charge when the order's policy says.
    Rollout(RolloutOrder),
    /// Put a rolled-out model in charge that waits for an engineer.
    ApproveRollout {
        rollout: String,
        #[serde(default)]
        who: Option<String>,
    },
    /// Undo the last rollout: the model before it takes charge again, or a rollout not yet
    /// in charge stops.
    Rollback {
        #[serde(default)]
        who: Option<String>,
    },
}

impl PlantCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Trigger { .. } => "trigger",
            Self::SwitchModel { .. } => "switch_model",
            Self::Rollout(_) => "rollout",
            Self::ApproveRollout { .. } => "approve_rollout",
            Self::Rollback { .. } => "rollback",
        }
    }
}

/// What became of a command, published on `<base>/command/reply` (QoS 1, not retained).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandReply {
    /// One of [`COMMANDS`], or `?` when unreadable.
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_id: Option<String>,
    pub status: ReplyStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `judged`: the record of the triggered part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyStatus {
    /// Carried out (a model switched) or under way (a trigger fired: `judged` follows).
    Accepted,
    /// Not carried out; `reason` says why.
    Refused,
    /// The triggered part's verdict is stored and sent on `.../verdict`.
    Judged,
}

impl CommandReply {
    pub fn accepted(message: &CommandMessage, part_id: Option<String>) -> Self {
        Self::to(message, ReplyStatus::Accepted, part_id, None)
    }

    pub fn refused(message: &CommandMessage, part_id: Option<String>, reason: String) -> Self {
        Self::to(message, ReplyStatus::Refused, part_id, Some(reason))
    }

    fn to(
        message: &CommandMessage,
        status: ReplyStatus,
        part_id: Option<String>,
        reason: Option<String>,
    ) -> Self {
        Self {
            command: message.command.name().to_owned(),
            request_id: message.request_id.clone(),
            part_id,
            status,
            reason,
            record_id: None,
        }
    }
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
