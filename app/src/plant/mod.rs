//! The plant's central half as the binary serves it: the plant view in the browser over the
//! central store, the ingest's own metrics for Prometheus, and model rollouts.

pub mod ingest_metrics;
pub mod rollout;
pub mod view;
