//! The central half of a plant: every station's verdicts, reviews, alarms, KPIs and
//! presence, from the broker into one PostgreSQL store (`inspecta fleet ingest`), with SQL
//! views for the plant's figures and the stations listed for Prometheus.

pub mod central;
pub mod config;
pub mod ingest;
pub mod payload;
pub mod targets;
