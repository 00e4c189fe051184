//! Inspecta's pipeline: frames from sources, through a model, to verdicts and reports.
//! Data flows one way: source -> [`frame::Frame`] -> [`model::Session`] -> [`verdict::Verdict`] -> sinks.

pub mod anomaly;
pub mod evaluation;
pub mod frame;
pub mod model;
pub mod publish;
pub mod quality;
pub mod source;
pub mod station;
pub mod store;
pub mod training;
pub mod verdict;
