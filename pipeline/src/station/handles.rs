//! The one bundle of handles to a running station that every door into it takes: the HTTP
//! API, the OPC UA server and the metrics read the same counters and drive the same
//! switches, instead of each being handed its own selection.

use std::sync::Arc;
use std::time::Duration;

use super::shadow::ShadowSlot;
use super::status::{LinkStatus, StationStatus};
use super::{ModelSwitch, Triggers};
use crate::publish::rollout::RolloutBoard;
use crate::store::RecordStore;

/// Handles only: cheap to clone, and every clone sees the same station.
#[derive(Debug, Clone)]
pub struct StationHandles {
    /// The station's name, as configured (`[station] name`).
    pub name: String,
    pub status: Arc<StationStatus>,
    pub models: ModelSwitch,
    /// None when the station keeps no records (no `[store]`).
    pub store: Option<Arc<RecordStore>>,
    /// The station's triggers, when it judges one part per trigger.
    pub triggers: Option<Triggers>,
    /// How long a trigger may wait for its frame.
    pub frame_timeout: Duration,
    /// The MQTT link's counters, when the station has one.
    pub mqtt: Option<Arc<LinkStatus>>,
    /// The candidate model judging beside the one in charge, when there is one.
    pub shadow: ShadowSlot,
    /// Where the station's last model rollout stands, once there was one.
    pub rollout: RolloutBoard,
}
