//! The ingest's counters for Prometheus, read at scrape time: what it stored, what it
//! could not, and how far behind the broker it is (`packaging/prometheus` alerts on them).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use inspecta_fleet::ingest::IngestCounts;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::api::serve::{Limits, Server};

/// Serves `/metrics` on `listen` until the returned server is stopped.
pub fn serve(listen: std::net::SocketAddr, counts: Arc<IngestCounts>) -> anyhow::Result<Server> {
    let mut registry = Registry::with_prefix("inspecta_ingest");
    registry.register_collector(Box::new(CountsCollector(counts)));
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state(Arc::new(registry));
    let server = Server::start("ingest-metrics", listen, app, Limits::scrapes())?;
    tracing::info!(address = %server.address, "ingest metrics listening");
    Ok(server)
}

async fn render(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            e.to_string(),
        ),
    }
}

#[derive(Debug)]
struct CountsCollector(Arc<IngestCounts>);

impl Collector for CountsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let c = &self.0;
        let counters = [
            ("stored", "Messages stored as new rows", &c.stored),
            (
                "duplicates",
                "Redelivered messages already stored",
                &c.duplicates,
            ),
            (
                "dead_letters",
                "Messages kept as dead letters, with their reason",
                &c.rejected,
            ),
            (
                "store_failures",
                "Failed attempts to reach or commit to PostgreSQL",
                &c.store_failures,
            ),
        ];
        for (name, help, value) in counters {
            ConstCounter::new(value.load(Ordering::Relaxed)).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        let gauges = [
            (
                "pending",
                "Messages taken from the broker and not yet committed",
                c.pending.load(Ordering::Relaxed),
            ),
            (
                "last_commit_timestamp_seconds",
                "Unix time of the last commit to PostgreSQL; 0 before the first",
                c.last_commit_s.load(Ordering::Relaxed),
            ),
            (
                "broker_connected",
                "1 while the central broker is connected",
                u64::from(c.broker_connected.load(Ordering::Relaxed)),
            ),
        ];
        for (name, help, value) in gauges {
            let value = i64::try_from(value).unwrap_or(i64::MAX);
            ConstGauge::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}
