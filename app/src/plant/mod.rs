//! The plant's central half as the binary serves it: the plant view in the browser over the
//! central store, and the ingest's own metrics for Prometheus.

pub mod ingest_metrics;
pub mod view;
