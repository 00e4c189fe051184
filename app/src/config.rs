//! `station.toml`: what a headless station runs. Unknown keys are errors that name the key,
//! so a typo never silently falls back to a default on the line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use inspecta_pipeline::publish::mqtt::MqttConfig;
use inspecta_pipeline::publish::opcua::OpcUaConfig;
use inspecta_pipeline::quality::watch::SpcConfig;
use inspecta_pipeline::source::SourceSpec;
use inspecta_pipeline::station::Reconnect;
use inspecta_pipeline::store::StoreConfig;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationConfig {
    pub station: StationSection,
    pub model: ModelSection,
    pub source: SourceSpec,
    #[serde(default)]
    pub reconnect: Reconnect,
    #[serde(default)]
    pub trigger: TriggerSection,
    #[serde(default)]
    pub output: OutputSection,
    /// Where verdicts, reviews and part images are kept.
    pub store: Option<StoreConfig>,
    /// The HTTP API (REST + Prometheus metrics); needs a store.
    pub api: Option<ApiSection>,
    /// The operator panel (`inspecta run` with a display).
    pub panel: Option<PanelSection>,
    /// Verdicts, reviews and presence to an MQTT broker; needs a store (its outbox).
    pub mqtt: Option<MqttConfig>,
    /// Control charts on the defect rate, with alarms; needs a store.
    pub spc: Option<SpcConfig>,
    /// An OPC UA server for the PLC and SCADA; needs a store.
    pub opcua: Option<OpcUaConfig>,
    /// Products' settings an engineer switches the station between (panel: M).
    #[serde(default, rename = "recipe")]
    pub recipes: Vec<Recipe>,
    /// Which parts to ask the operator about, and the candidate models reviews trained.
    #[serde(default)]
    pub learning: LearningSection,
}

/// The learning loop at the station: reviews asked for by a policy, candidate models
/// (trained from them on the box) shown with their comparison and promoted by an engineer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearningSection {
    /// Which parts `GET /review-requests` and the panel ask for first: `active`
    /// (uncertain, then the most hesitant, spread over labels), `uncertain`, or `random`.
    #[serde(default)]
    pub policy: inspecta_pipeline::learning::Policy,
    /// Hesitation (1 - the gap between the two likeliest labels) from which the panel asks
    /// for a judged part: "please review: helps the next model".
    #[serde(default = "default_ask_above")]
    pub ask_above: f64,
    /// Folder of candidate models, one directory each with its comparison against the
    /// running model in `compare/` [default: `candidates/` in the store folder].
    #[serde(default)]
    pub candidates: Option<PathBuf>,
}

impl Default for LearningSection {
    fn default() -> Self {
        Self {
            policy: inspecta_pipeline::learning::Policy::default(),
            ask_above: default_ask_above(),
            candidates: None,
        }
    }
}

fn default_ask_above() -> f64 {
    0.6
}

impl LearningSection {
    /// The candidates folder, where the station has a store to put it beside.
    pub fn candidates_dir(&self, store: Option<&StoreConfig>) -> Option<PathBuf> {
        self.candidates
            .clone()
            .or_else(|| store.map(|s| s.dir.join("candidates")))
    }
}

/// What a product needs from the station: its model and thresholds, under a name an
/// engineer picks instead of a file path.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    /// What the recipe inspects; a switch to another product's recipe must be confirmed.
    pub product: String,
    pub model: PathBuf,
    /// The reject threshold, when not the model manifest's.
    pub threshold: Option<f32>,
    /// The uncertain band, when not the model manifest's.
    pub uncertain_band: Option<[f32; 2]>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelSection {
    /// Parts kept in the history strip (parts waiting for review always stay).
    #[serde(default = "default_history")]
    pub history: usize,
    /// Local shift start times ("HH:MM"); the KPI panel covers the current shift.
    #[serde(default)]
    pub shifts: Vec<String>,
    /// Reason codes offered when an inspector overrides a verdict.
    #[serde(default)]
    pub reasons: Vec<String>,
    #[serde(default)]
    pub high_contrast: bool,
    /// PIN for the engineer role (thresholds); without it nobody can change them here.
    pub engineer_pin: Option<String>,
    /// Named operators and engineers, each with their own PIN (`inspecta users add`);
    /// replaces the free-text name and the shared `engineer_pin`.
    pub users: Option<PathBuf>,
    /// Size of text and pictures (1.0 = egui's own; 1.5 reads from 2 m on a 24" screen).
    /// Ctrl+Plus/Minus change it for the station and are remembered; Ctrl+0 returns here.
    #[serde(default = "default_ui_scale")]
    pub ui_scale: f32,
    /// Open fullscreen (F11 toggles).
    #[serde(default)]
    pub fullscreen: bool,
}

fn default_history() -> usize {
    24
}

/// The sizes the panel can take, smallest and largest.
pub const UI_SCALES: (f32, f32) = (0.5, 3.0);

fn default_ui_scale() -> f32 {
    1.0
}

impl Default for PanelSection {
    fn default() -> Self {
        Self {
            history: default_history(),
            shifts: Vec::new(),
            reasons: Vec::new(),
            high_contrast: false,
            engineer_pin: None,
            users: None,
            ui_scale: default_ui_scale(),
            fullscreen: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationSection {
    /// Shown in logs and, later, in every record and message of this station.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Model directory, manifest or .onnx (relative paths: from the working directory).
    pub path: PathBuf,
    /// Threads inside one inference; more lowers the latency of each part.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Other models an engineer may switch the running station to (panel, plant commands).
    #[serde(default)]
    pub alternatives: Vec<PathBuf>,
    /// A candidate model that judges the same parts on its own thread; its disagreements
    /// with the live model are logged and counted, its verdicts never acted on.
    #[serde(default)]
    pub shadow: Option<PathBuf>,
}

fn default_threads() -> usize {
    crate::engine::available_threads()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Append every verdict as one JSON line to this file.
    pub jsonl: Option<PathBuf>,
    /// One log line per this many seconds says what the line did; each part is logged at
    /// debug level only (`--log inspecta=debug`).
    #[serde(default = "default_summary_every_s")]
    pub summary_every_s: u64,
}

fn default_summary_every_s() -> u64 {
    10
}

impl Default for OutputSection {
    fn default() -> Self {
        Self {
            jsonl: None,
            summary_every_s: default_summary_every_s(),
        }
    }
}

/// Inspect every frame, or one frame per part when a trigger says a part is in view.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSection {
    /// Inspect only on a trigger (HTTP `POST /trigger`, or stdin when `stdin = true`).
    #[serde(default)]
    pub enabled: bool,
    /// Read triggers from standard input: one part id per line (an empty line gets a
    /// generated id).
    #[serde(default)]
    pub stdin: bool,
    /// A trigger that gets no frame within this long is counted as missed.
    #[serde(default = "default_frame_timeout_ms")]
    pub frame_timeout_ms: u64,
}

fn default_frame_timeout_ms() -> u64 {
    2_000
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Address and port to serve on, e.g. `127.0.0.1:8080` or `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// Bearer token every endpoint but `/health` needs once set (records, images and KPIs
    /// are factory data). The environment variable INSPECTA_API_TOKEN overrides it; an empty
    /// token is refused.
    pub token: Option<String>,
    /// Serve `/metrics` without the token, for a Prometheus that cannot send one.
    #[serde(default)]
    pub open_metrics: bool,
    /// Largest image `POST /predict` accepts.
    #[serde(default = "default_max_upload_bytes")]
    pub max_upload_bytes: usize,
    /// Most pixels an uploaded image may declare; checked in its header before decoding, so
    /// a small file that would decode to gigabytes is refused (413) at no cost.
    #[serde(default = "default_max_image_pixels")]
    pub max_image_pixels: u64,
    /// A client that has not sent a whole request head within this is disconnected, so
    /// idle or half-open sockets cannot pile up.
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// A request body (an upload) must arrive whole within this.
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// Connections served at once; more wait to be accepted. Well under the process's file
    /// handle limit (`LimitNOFILE=8192` in samples/inspecta.service), so the line always
    /// has handles for its images and its store.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// `POST /predict` inferences at once; more get 503 with `Retry-After`. Inference is
    /// CPU-bound and shares the cores with the line.
    #[serde(default = "default_max_predictions")]
    pub max_predictions: usize,
}

fn default_header_timeout_ms() -> u64 {
    10_000
}

fn default_body_timeout_ms() -> u64 {
    60_000
}

fn default_max_connections() -> usize {
    256
}

fn default_max_predictions() -> usize {
    1
}

fn default_max_image_pixels() -> u64 {
    inspecta_vision::frame::DEFAULT_MAX_PIXELS
}

fn default_max_upload_bytes() -> usize {
    16 * 1024 * 1024
}

impl StationConfig {
    pub fn from_path(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let config: Self = toml::from_str(&text)
            .with_context(|| format!("invalid station config {}", path.display()))?;
        config
            .check()
            .with_context(|| format!("invalid station config {}", path.display()))?;
        Ok(config)
    }

    /// Rules that span sections, which serde cannot check.
    fn check(&self) -> anyhow::Result<()> {
        if self.api.is_some() && self.store.is_none() {
            bail!("[api] serves the record store: add a [store] section");
        }
        if self.mqtt.is_some() && self.store.is_none() {
            bail!(
                "[mqtt] sends from the record store, which keeps what the broker has not taken yet: add a [store] section"
            );
        }
        if self.opcua.is_some() && self.store.is_none() {
            bail!("[opcua] serves KPIs from the record store: add a [store] section");
        }
        if self.spc.is_some() && self.store.is_none() {
            bail!("[spc] charts the record store: add a [store] section");
        }
        if self.trigger.stdin && !self.trigger.enabled {
            bail!("[trigger] stdin = true needs enabled = true");
        }
        self.check_numbers()
    }

    /// Numbers a typo can make absurd (a rate of 1e-30 parts per second is a dead station
    /// that looks alive): each is refused with its key and the range that makes sense.
    fn check_numbers(&self) -> anyhow::Result<()> {
        if let SourceSpec::Folder {
            parts_per_second, ..
        } = &self.source
        {
            within(
                "[source] parts_per_second",
                *parts_per_second,
                0.001,
                10_000.0,
            )?;
        }
        within("[model] threads", self.model.threads, 1, 256)?;
        within("[learning] ask_above", self.learning.ask_above, 0.0, 1.0)?;
        if self.trigger.enabled {
            within(
                "[trigger] frame_timeout_ms",
                self.trigger.frame_timeout_ms,
                1,
                3_600_000,
            )?;
        }
        let reconnect = &self.reconnect;
        within("[reconnect] initial_ms", reconnect.initial_ms, 1, 3_600_000)?;
        within(
            "[reconnect] max_ms",
            reconnect.max_ms,
            reconnect.initial_ms,
            86_400_000,
        )?;
        within(
            "[reconnect] stall_timeout_ms",
            reconnect.stall_timeout_ms,
            1,
            3_600_000,
        )?;
        if let Some(store) = &self.store {
            within(
                "[store] max_image_bytes",
                store.max_image_bytes,
                1 << 20,
                u64::MAX,
            )?;
            within("[store] max_image_days", store.max_image_days, 1, 36_500)?;
            within("[store] recent_images", store.recent_images, 0, 100_000)?;
            within(
                "[store] recent_image_minutes",
                store.recent_image_minutes,
                1,
                10_080,
            )?;
        }
        if let Some(api) = &self.api {
            within(
                "[api] max_upload_bytes",
                api.max_upload_bytes,
                1024,
                1 << 30,
            )?;
            within("[api] max_image_pixels", api.max_image_pixels, 1, 1 << 30)?;
            within(
                "[api] header_timeout_ms",
                api.header_timeout_ms,
                100,
                600_000,
            )?;
            within("[api] body_timeout_ms", api.body_timeout_ms, 100, 3_600_000)?;
            within("[api] max_connections", api.max_connections, 1, 4096)?;
            within("[api] max_predictions", api.max_predictions, 1, 64)?;
        }
        if let Some(spc) = &self.spc {
            within("[spc] subgroup", spc.subgroup, 2, 100_000)?;
            within("[spc] baseline", spc.baseline, 1, 100_000)?;
            within("[spc] window", spc.window, 1, 100_000)?;
            if let Some(centre) = spc.centre {
                within("[spc] centre", centre, 0.0, 1.0)?;
            }
        }
        if let Some(mqtt) = &self.mqtt {
            within("[mqtt] keep_alive_s", mqtt.keep_alive_s, 5, 3600)?;
            within("[mqtt] kpi_every_s", mqtt.kpi_every_s, 1, 86_400)?;
        }
        for (n, recipe) in self.recipes.iter().enumerate() {
            if self.recipes[..n].iter().any(|r| r.name == recipe.name) {
                bail!("[[recipe]] name = {:?} is there twice", recipe.name);
            }
            if let Some(threshold) = recipe.threshold {
                within(
                    &format!("recipe {:?} threshold", recipe.name),
                    threshold,
                    0.0,
                    1.0,
                )?;
            }
            if let Some([low, high]) = recipe.uncertain_band
                && !(0.0 <= low && low <= high && high <= 1.0)
            {
                bail!(
                    "recipe {:?} uncertain_band = [{low}, {high}]: it must be [low, high] within 0..=1",
                    recipe.name
                );
            }
            if let (Some(threshold), Some(band)) = (recipe.threshold, recipe.uncertain_band) {
                inspecta_vision::model::manifest::check_thresholds(threshold, band)
                    .map_err(|reason| anyhow::anyhow!("recipe {:?}: {reason}", recipe.name))?;
            }
        }
        within(
            "[output] summary_every_s",
            self.output.summary_every_s,
            1,
            86_400,
        )?;
        if let Some(panel) = &self.panel {
            within("[panel] history", panel.history, 1, 1000)?;
            let (low, high) = UI_SCALES;
            within("[panel] ui_scale", panel.ui_scale, low, high)?;
            if panel.users.is_some() && panel.engineer_pin.is_some() {
                bail!(
                    "[panel] users and engineer_pin: with a users file, engineers sign in with \
                     their own PIN; remove engineer_pin"
                );
            }
        }
        Ok(())
    }
}

/// `value` within `[low, high]` (NaN never is), or an error naming `key`.
fn within<T: PartialOrd + Copy + std::fmt::Display>(
    key: &str,
    value: T,
    low: T,
    high: T,
) -> anyhow::Result<()> {
    if value >= low && value <= high {
        Ok(())
    } else {
        bail!("{key} = {value} is out of range: it must be from {low} to {high}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StationConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn example_config_parses() {
        let config =
            parse(include_str!("../../samples/station.example.toml")).expect("example parses");
        assert_eq!(config.station.name, "line1-cam1");
        assert!(matches!(config.source, SourceSpec::Folder { .. }));
        assert_eq!(config.reconnect.max_ms, 10_000);
        assert!(config.store.is_some());
        assert!(config.api.is_some());
        config.check().expect("consistent");
    }

    #[test]
    fn a_recipe_whose_threshold_is_outside_its_band_is_refused() {
        let base = "[station]\nname = \"s\"\n[model]\npath = \"m\"\n[source]\nkind = \"folder\"\n\
                    path = \"p\"\n[[recipe]]\nname = \"a\"\nproduct = \"x\"\nmodel = \"m\"\n";
        let good = format!("{base}threshold = 0.6\nuncertain_band = [0.4, 0.7]\n");
        let config = parse(&good).expect("parses");
        config.check().expect("a good recipe");
        assert_eq!(config.recipes[0].product, "x");
        let bad = format!("{base}threshold = 0.8\nuncertain_band = [0.4, 0.7]\n");
        let err = parse(&bad).expect("parses").check().expect_err("outside");
        assert!(err.to_string().contains("recipe \"a\""), "{err}");
    }

    #[test]
    fn users_and_a_shared_engineer_pin_are_one_too_many() {
        let text = "[station]\nname = \"s\"\n[model]\npath = \"m\"\n[source]\nkind = \"folder\"\n\
                    path = \"p\"\n[panel]\nusers = \"u.toml\"\nengineer_pin = \"4711\"\n";
        let err = parse(text).expect("parses").check().expect_err("both");
        assert!(err.to_string().contains("remove engineer_pin"), "{err}");
    }

    #[test]
    fn an_api_without_a_store_is_refused() {
        let text = "[station]\nname = \"s\"\n[model]\npath = \"m\"\n[source]\nkind = \"folder\"\n\
                    path = \"p\"\n[api]\nlisten = \"127.0.0.1:8080\"\n";
        let err = parse(text).expect("parses").check().expect_err("no store");
        assert!(err.to_string().contains("[store]"), "{err}");
    }

    #[test]
    fn absurd_numbers_are_refused_with_their_key() {
        let example = include_str!("../../samples/station.example.toml");
        let cases = [
            (
                "parts_per_second = 4.0",
                "parts_per_second = 1e-30",
                "[source] parts_per_second",
            ),
            (
                "parts_per_second = 4.0",
                "parts_per_second = nan",
                "[source] parts_per_second",
            ),
            (
                "parts_per_second = 4.0",
                "parts_per_second = -4.0",
                "[source] parts_per_second",
            ),
            ("[model]", "[model]\nthreads = 0", "[model] threads"),
            (
                "max_image_days = 90",
                "max_image_days = 0",
                "[store] max_image_days",
            ),
            (
                "recent_image_minutes = 10",
                "recent_image_minutes = 0",
                "[store] recent_image_minutes",
            ),
            (
                "recent_images = 500",
                "recent_images = 1_000_000",
                "[store] recent_images",
            ),
            (
                "max_upload_bytes = 16_777_216",
                "max_upload_bytes = 3",
                "[api] max_upload_bytes",
            ),
            (
                "max_connections = 256",
                "max_connections = 100_000",
                "[api] max_connections",
            ),
            (
                "header_timeout_ms = 10_000",
                "header_timeout_ms = 0",
                "[api] header_timeout_ms",
            ),
        ];
        for (from, to, key) in cases {
            assert!(example.contains(from), "the example has {from}");
            let text = example.replacen(from, to, 1);
            let err = parse(&text).expect("parses").check().expect_err(to);
            assert!(err.to_string().contains(key), "{to}: {err}");
        }
    }

    #[test]
    fn unknown_store_key_is_named() {
        let text = include_str!("../../samples/station.example.toml")
            .replace("[store]", "[store]\nmax_days = 3");
        let err = parse(&text).expect_err("unknown key").to_string();
        assert!(err.contains("max_days"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let text = include_str!("../../samples/station.example.toml")
            .replace("[station]", "[station]\nlocation = \"hall 3\"");
        let err = parse(&text).expect_err("unknown key").to_string();
        assert!(err.contains("location"), "{err}");
    }

    #[test]
    fn unknown_source_kind_is_named() {
        let text = "[station]\nname = \"s\"\n[model]\npath = \"m\"\n[source]\nkind = \"gige\"\n";
        let err = parse(text).expect_err("unknown kind").to_string();
        assert!(err.contains("gige"), "{err}");
    }
}
