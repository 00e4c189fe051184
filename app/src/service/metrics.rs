//! Prometheus metrics: the station's live counters (read at scrape time from the same
//! `StationStatus` the logs use, so the two never disagree) and latency histograms per
//! stage, fed by the recorder as verdicts pass.

use std::time::Duration;

use inspecta_pipeline::station::status::SourceState;
use inspecta_pipeline::station::{LiveVerdict, StationHandles};
use inspecta_vision::inspection::UncertainReason;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

type Labels = [(&'static str, String); 1];
type StageFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// 0.5 ms to about 8 s: a fast model on a desktop up to a stalled store on an SD card.
fn stage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    stages: StageFamily,
    stored: Counter,
    store_errors: Counter,
    jsonl_errors: Counter,
    reviews: Family<Labels, Counter>,
    predictions: Counter,
}

impl Metrics {
    pub fn new(station: StationHandles) -> Self {
        let mut registry = Registry::with_prefix("inspecta");
        registry.register(
            "station",
            "The station",
            Info::new(vec![("station", station.name.clone())]),
        );
        let stages = StageFamily::new_with_constructor(stage_histogram);
        registry.register(
            "stage_seconds",
            "Time per stage: preprocess, inference, capture_to_verdict (waiting included), store",
            stages.clone(),
        );
        let stored = Counter::default();
        registry.register(
            "records_stored",
            "Verdicts committed to the record store",
            stored.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Verdicts the record store failed to keep (see the log)",
            store_errors.clone(),
        );
        let jsonl_errors = Counter::default();
        registry.register(
            "jsonl_errors",
            "Verdicts left out of the JSON-lines file because it could not be written (they are in the store)",
            jsonl_errors.clone(),
        );
        let reviews = Family::<Labels, Counter>::default();
        registry.register(
            "reviews",
            "Reviews by action (confirm, override)",
            reviews.clone(),
        );
        let predictions = Counter::default();
        registry.register(
            "api_predictions",
            "Images judged through POST /predict",
            predictions.clone(),
        );
        registry.register_collector(Box::new(StationCollector { station }));
        Self {
            registry,
            stages,
            stored,
            store_errors,
            jsonl_errors,
            reviews,
            predictions,
        }
    }

    /// Feeds the stage histograms with one live verdict.
    pub fn observe(&self, verdict: &LiveVerdict) {
        // A trigger without a frame cost no inference; its wait is no capture latency.
        if verdict.frame.is_none() {
            return;
        }
        let timings = &verdict.inspection.timings_ms;
        self.stage("preprocess", timings.preprocess);
        self.stage("inference", timings.inference);
        self.stage("capture_to_verdict", verdict.latency);
    }

    pub fn stored(&self, took: Duration) {
        self.stored.inc();
        self.stage("store", took);
    }

    pub fn store_failed(&self) {
        self.store_errors.inc();
    }

    pub fn jsonl_failed(&self) {
        self.jsonl_errors.inc();
    }

    pub fn reviewed(&self, action: &str) {
        self.reviews
            .get_or_create(&[("action", action.to_owned())])
            .inc();
    }

    pub fn predicted(&self) {
        self.predictions.inc();
    }

    /// The OpenMetrics text exposition Prometheus scrapes.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    fn stage(&self, stage: &'static str, took: Duration) {
        self.stages
            .get_or_create(&[("stage", stage.to_owned())])
            .observe(took.as_secs_f64());
    }
}

/// Reads the station's counters at scrape time.
#[derive(Debug)]
struct StationCollector {
    station: StationHandles,
}

const SOURCE_STATES: [&str; 4] = ["connecting", "online", "reconnecting", "ended"];

impl Collector for StationCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.station.status.snapshot();
        let counters = [
            ("frames", "Frames delivered by the source", s.frames_in),
            (
                "frames_dropped",
                "Live frames replaced by a newer one before the model was free",
                s.frames_dropped,
            ),
            (
                "frames_unreadable",
                "Frames or files that could not be judged",
                s.unreadable,
            ),
            ("triggers", "Triggers accepted", s.triggers),
            (
                "triggers_missed",
                "Triggers that got no frame in time",
                s.triggers_missed,
            ),
        ];
        for (name, help, value) in counters {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }

        if let Some(shadow) = self.station.shadow.current() {
            let s = shadow.snapshot();
            let mut parts = encoder.encode_descriptor(
                "shadow_parts",
                "Parts offered to the shadow model, by result: agreed, disagreed, skipped (busy), failed",
                None,
                MetricType::Counter,
            )?;
            let results = [
                ("agreed", s.judged - s.disagreements),
                ("disagreed", s.disagreements),
                ("skipped", s.skipped),
                ("failed", s.failed),
            ];
            for (result, count) in results {
                ConstCounter::new(count).encode(parts.encode_family(&[("result", result)])?)?;
            }
        }

        let mut verdicts = encoder.encode_descriptor(
            "verdicts",
            "Verdicts by name: good, uncertain, or the defect class",
            None,
            MetricType::Counter,
        )?;
        for (name, count) in &s.verdicts {
            let labels = [("verdict", name.as_str())];
            ConstCounter::new(*count).encode(verdicts.encode_family(&labels)?)?;
        }

        let mut uncertain = encoder.encode_descriptor(
            "uncertain",
            "Uncertain parts by why the model did not decide: low_confidence, no_part, too_small, out_of_distribution",
            None,
            MetricType::Counter,
        )?;
        for reason in UncertainReason::ALL.map(UncertainReason::name) {
            let count = s.uncertain.get(reason).copied().unwrap_or(0);
            ConstCounter::new(count).encode(uncertain.encode_family(&[("reason", reason)])?)?;
        }

        let current = match &s.source {
            SourceState::Connecting => "connecting",
            SourceState::Online => "online",
            SourceState::Reconnecting { .. } => "reconnecting",
            SourceState::Ended => "ended",
        };
        let mut state = encoder.encode_descriptor(
            "source_state",
            "1 for the source's current state",
            None,
            MetricType::Gauge,
        )?;
        for name in SOURCE_STATES {
            let labels = [("state", name)];
            ConstGauge::new(i64::from(name == current)).encode(state.encode_family(&labels)?)?;
        }
        let attempt = match &s.source {
            SourceState::Reconnecting { attempt, .. } => i64::from(*attempt),
            _ => 0,
        };
        ConstGauge::new(attempt).encode(encoder.encode_descriptor(
            "source_reconnect_attempt",
            "Reconnection attempts since the source was last online",
            None,
            MetricType::Gauge,
        )?)?;

        let model = self.station.models.current();
        let manifest = model.manifest();
        let labels = [
            ("model", manifest.name.as_str()),
            ("model_version", manifest.version.as_str()),
        ];
        let mut current = encoder.encode_descriptor(
            "model",
            "1 for the model judging the parts now (it can be switched while running)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1).encode(current.encode_family(&labels)?)?;

        if let Some(link) = &self.station.mqtt {
            ConstGauge::new(i64::from(link.connected())).encode(encoder.encode_descriptor(
                "mqtt_connected",
                "1 while the MQTT broker is connected",
                None,
                MetricType::Gauge,
            )?)?;
            ConstCounter::new(link.published()).encode(encoder.encode_descriptor(
                "mqtt_published",
                "Messages the MQTT broker acknowledged",
                None,
                MetricType::Counter,
            )?)?;
            ConstCounter::new(link.connection_errors()).encode(encoder.encode_descriptor(
                "mqtt_connection_errors",
                "Times the MQTT link lost or could not reach the broker",
                None,
                MetricType::Counter,
            )?)?;
        }

        if let Some(store) = &self.station.store {
            // The last hour's quality, computed at scrape time from the store.
            let since = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
            if let Ok(k) = store.kpis(since) {
                let rates = [
                    ("yield", k.first_pass_yield()),
                    ("uncertain", k.uncertain_rate()),
                    ("override", k.override_rate()),
                    ("false_reject", k.false_reject_rate()),
                    ("escape_estimate", k.escape_estimate()),
                ];
                let mut family = encoder.encode_descriptor(
                    "quality_rate_last_hour",
                    "Quality rates over the last hour (parts with a rate to show only)",
                    None,
                    MetricType::Gauge,
                )?;
                for (rate, value) in rates {
                    if let Some(value) = value {
                        let labels = [("rate", rate)];
                        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
                    }
                }
            }
            if let Ok(alarms) = store.alarm_count() {
                ConstCounter::new(alarms).encode(encoder.encode_descriptor(
                    "spc_alarms",
                    "SPC alarms the station raised (control limits, runs)",
                    None,
                    MetricType::Counter,
                )?)?;
            }
            let bytes = i64::try_from(store.image_bytes()).unwrap_or(i64::MAX);
            ConstGauge::new(bytes).encode(encoder.encode_descriptor(
                "store_image_bytes",
                "Bytes of part images kept by the record store",
                None,
                MetricType::Gauge,
            )?)?;
            ConstCounter::new(store.image_errors()).encode(encoder.encode_descriptor(
                "store_image_errors",
                "Part images that could not be written (disk full, read-only); their records were stored",
                None,
                MetricType::Counter,
            )?)?;
        }
        Ok(())
    }
}
