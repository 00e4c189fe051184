//! Inspecta's live line: frames from sources, through the station loop, to the record store
//! and the plant. Data flows one way: [`source`] -> [`station`] -> [`store`] -> sinks
//! ([`publish`], the app's panel and API). The vision engine itself is `inspecta-vision`.

pub mod learning;
mod mailbox;
pub mod publish;
pub mod quality;
pub mod source;
pub mod station;
pub mod store;
