//! Links to the plant. Each reads what it sends from the record store (the store is the
//! outbox), so a link that is down loses nothing and catches up in order.

pub mod mqtt;
pub mod opcua;
