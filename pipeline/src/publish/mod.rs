//! Links to the plant. Each reads what it sends from the record store (the store is the
//! outbox), so a link that is down loses nothing and catches up in order. `rollout` is
//! what a model rollout sends and reports over the MQTT link.

pub mod mqtt;
pub mod opcua;
pub mod rollout;
