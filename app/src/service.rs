//! A running station with everything around it: model, record store, [`Recorder`], API and
//! triggers, wired from one config. `run --headless` drives it from the main thread; the
//! operator panel drives it from a worker thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use inspecta_pipeline::model::Model;
use inspecta_pipeline::publish::mqtt::{MqttLink, PlantCommand};
use inspecta_pipeline::publish::opcua::{OpcUaServer, StationView};
use inspecta_pipeline::quality::watch::ProcessWatch;
use inspecta_pipeline::station::shadow::Shadow;
use inspecta_pipeline::station::{LiveVerdict, ModelSwitch, Station, Triggers};
use inspecta_pipeline::store::{ChangeKind, NewChange, RecordStore};
use inspecta_pipeline::verdict::DecisionRule;

use crate::api::{ApiServer, ApiState, SessionPool, TriggerInput};
use crate::config::StationConfig;
use crate::metrics::Metrics;
use crate::recorder::{PartWaiters, Recorder};

const STATUS_EVERY: Duration = Duration::from_secs(10);
/// How often the control charts are redrawn from the store.
const SPC_EVERY: Duration = Duration::from_secs(5);
const TOKEN_ENV: &str = "INSPECTA_API_TOKEN";

#[derive(Debug)]
pub struct Service {
    name: String,
    settings: Settings,
    store: Option<Arc<RecordStore>>,
    station: Station,
    recorder: Recorder,
    api: Option<ApiServer>,
    mqtt: Option<MqttLink>,
    opcua: Option<OpcUaServer>,
    watch: Option<(ProcessWatch, Instant)>,
    triggers: Option<Triggers>,
    /// Tells API clients that a finite source has been judged and stored to the end.
    finished: Arc<AtomicBool>,
    last_status: Instant,
}

/// What one [`Service::step`] did.
#[derive(Debug)]
pub enum Step {
    /// A verdict was recorded (with its record id when a store is configured).
    Recorded(Box<LiveVerdict>, Option<i64>),
    Idle,
    /// A finite source has ended and every verdict from it is recorded.
    Ended,
}

impl Service {
    pub fn start(config: &StationConfig) -> anyhow::Result<Self> {
        let model = crate::commands::load_model(&config.model.path, config.model.threads)?;
        let store = config
            .store
            .as_ref()
            .map(|s| {
                RecordStore::open(s)
                    .map(Arc::new)
                    .with_context(|| format!("cannot open the record store in {}", s.dir.display()))
            })
            .transpose()?;
        let mqtt = match (&config.mqtt, &store) {
            (Some(mqtt), Some(store)) => Some(
                MqttLink::start(mqtt, &config.station.name, Arc::clone(store))
                    .context("cannot start the MQTT link")?,
            ),
            _ => None,
        };
        let frame_timeout = Duration::from_millis(config.trigger.frame_timeout_ms);
        let (station, triggers) = if config.trigger.enabled {
            let (station, triggers) = Station::start_triggered(
                &model,
                config.source.clone(),
                config.reconnect,
                frame_timeout,
            )?;
            (station, Some(triggers))
        } else {
            let station = Station::start(&model, config.source.clone(), config.reconnect)?;
            (station, None)
        };
        let settings = Settings::new(
            station.models().clone(),
            std::iter::once(&config.model.path)
                .chain(&config.model.alternatives)
                .cloned()
                .collect(),
            config.model.threads,
            store.clone(),
        );
        let shadow = match &config.model.shadow {
            Some(path) => {
                let model = crate::commands::load_model(path, 1)
                    .with_context(|| format!("cannot load the shadow model {}", path.display()))?;
                Some(Arc::new(
                    Shadow::start(&model).context("cannot start the shadow model")?,
                ))
            }
            None => None,
        };
        let metrics = Arc::new(Metrics::new(
            &config.station.name,
            station.models().clone(),
            Arc::clone(station.status()),
            store.clone(),
            mqtt.as_ref().map(|link| Arc::clone(link.status())),
            shadow.clone(),
        ));
        let waiters = Arc::new(PartWaiters::default());
        let finished = Arc::new(AtomicBool::new(false));
        let recorder = Recorder::new(
            config.station.name.clone(),
            store.clone(),
            config.output.jsonl.as_deref(),
            Arc::clone(&metrics),
            Arc::clone(&waiters),
            shadow.clone(),
        )?;
        let opcua = match (&config.opcua, &store) {
            (Some(opcua), Some(store)) => {
                let pki = opcua.pki_dir.clone().unwrap_or_else(|| {
                    store
                        .path()
                        .parent()
                        .map_or_else(|| "opcua-pki".into(), |dir| dir.join("opcua-pki"))
                });
                let view = StationView {
                    name: config.station.name.clone(),
                    status: Arc::clone(station.status()),
                    models: station.models().clone(),
                    store: Arc::clone(store),
                    triggers: triggers.clone(),
                    frame_timeout,
                };
                match OpcUaServer::start(opcua, pki, view) {
                    Ok(server) => Some(server),
                    Err(e) => {
                        station.stop();
                        return Err(anyhow::Error::new(e).context("cannot start the OPC UA server"));
                    }
                }
            }
            _ => None,
        };
        let api = match (&config.api, &store) {
            (Some(api), Some(store)) => {
                let state = ApiState {
                    station: config.station.name.clone(),
                    models: station.models().clone(),
                    store: Arc::clone(store),
                    status: Arc::clone(station.status()),
                    metrics,
                    trigger: triggers.clone().map(|triggers| TriggerInput {
                        triggers,
                        frame_timeout,
                    }),
                    waiters,
                    token: std::env::var(TOKEN_ENV).ok().or_else(|| api.token.clone()),
                    started: Instant::now(),
                    sessions: SessionPool::default(),
                    mqtt: mqtt.as_ref().map(|link| Arc::clone(link.status())),
                    spc: config.spc.clone().map(ProcessWatch::new),
                    finished: Arc::clone(&finished),
                    shadow,
                };
                match ApiServer::start(api, state) {
                    Ok(server) => Some(server),
                    Err(e) => {
                        station.stop();
                        return Err(e);
                    }
                }
            }
            _ => None,
        };
        tracing::info!(station = %config.station.name, model = %model.manifest().name, "station running");
        Ok(Self {
            name: config.station.name.clone(),
            settings,
            store,
            station,
            recorder,
            api,
            mqtt,
            opcua,
            watch: config
                .spc
                .clone()
                .map(|spc| (ProcessWatch::new(spc), Instant::now())),
            triggers,
            finished,
            last_status: Instant::now(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> Option<&Arc<RecordStore>> {
        self.store.as_ref()
    }

    pub fn triggers(&self) -> Option<&Triggers> {
        self.triggers.as_ref()
    }

    /// Whether something (the API) still serves after the source has ended.
    pub fn keeps_serving(&self) -> bool {
        self.api.is_some()
    }

    /// Records the next verdict, waiting at most `timeout` for it.
    pub fn step(&mut self, timeout: Duration) -> anyhow::Result<Step> {
        if self.last_status.elapsed() >= STATUS_EVERY {
            let status = self.station.status().snapshot();
            tracing::info!(frames = status.frames_in, dropped = status.frames_dropped, inspected = status.inspected(), source = ?status.source, "status");
            self.last_status = Instant::now();
        }
        self.watch_process();
        self.obey_plant();
        match self.station.results().recv_timeout(timeout) {
            Ok(verdict) => {
                let id = self.recorder.record(&verdict)?;
                self.tell_opcua(id);
                Ok(Step::Recorded(Box::new(verdict), id))
            }
            Err(RecvTimeoutError::Timeout) => Ok(Step::Idle),
            Err(RecvTimeoutError::Disconnected) => {
                self.finished.store(true, Ordering::Relaxed);
                Ok(Step::Ended)
            }
        }
    }

    /// Hands a stored verdict to the OPC UA server (its variables and the PLC handshake).
    fn tell_opcua(&self, id: Option<i64>) {
        let (Some(server), Some(store), Some(id)) = (&self.opcua, &self.store, id) else {
            return;
        };
        match store.get(id) {
            Ok(record) => server.verdict(record),
            Err(e) => tracing::error!(id, "cannot read back record for OPC UA: {e}"),
        }
    }

    /// Carries out the commands the plant sent over MQTT (the link has checked them
    /// against `[mqtt] commands`).
    fn obey_plant(&self) {
        let Some(link) = &self.mqtt else {
            return;
        };
        while let Some(command) = link.next_command() {
            match command {
                PlantCommand::Trigger { part_id } => {
                    let part_id =
                        part_id.unwrap_or_else(|| crate::api::generated_part_id(&self.name));
                    match &self.triggers {
                        Some(triggers) => {
                            if let Err(e) = triggers.fire(part_id.clone()) {
                                tracing::warn!(%part_id, "MQTT trigger refused: {e}");
                            }
                        }
                        None => {
                            tracing::warn!(%part_id, "MQTT trigger ignored: the station is not triggered ([trigger] enabled)");
                        }
                    }
                }
                PlantCommand::SwitchModel { path, who } => {
                    let who = who.unwrap_or_else(|| "mqtt".into());
                    if let Err(e) = self.settings.switch_model(&path, &who) {
                        tracing::warn!(path = %path.display(), "MQTT model switch refused: {e:#}");
                    }
                }
            }
        }
    }

    /// Redraws the control charts now and then; a rule broken is an alarm in the store
    /// (and so on the links and the API) and in the log.
    fn watch_process(&mut self) {
        let (Some((watch, last)), Some(store)) = (self.watch.as_mut(), self.store.as_ref()) else {
            return;
        };
        if last.elapsed() < SPC_EVERY {
            return;
        }
        *last = Instant::now();
        match watch.check(store) {
            Ok(alarms) => {
                for alarm in alarms {
                    tracing::warn!(id = alarm.id, chart = %alarm.chart, rule = %alarm.rule, "process alarm: {}", alarm.message);
                }
            }
            Err(e) => tracing::error!("cannot draw the control charts: {e}"),
        }
    }

    /// Stops taking requests, then the station; verdicts made before the stop still reach
    /// the store, the log and the file.
    pub fn stop(self) -> anyhow::Result<()> {
        if let Some(api) = self.api {
            api.stop();
        }
        let (pending, status) = self.station.stop();
        let mut recorder = self.recorder;
        for verdict in &pending {
            recorder.record(verdict)?;
        }
        // Last: it sends what the broker has not taken yet, the verdicts above included.
        if let Some(mqtt) = self.mqtt {
            mqtt.stop();
        }
        if let Some(opcua) = self.opcua {
            opcua.stop();
        }
        tracing::info!(
            frames = status.frames_in,
            dropped = status.frames_dropped,
            unreadable = status.unreadable,
            verdicts = ?status.verdicts,
            "station stopped"
        );
        Ok(())
    }
}

/// What an engineer may change on a running station: its model (among the configured
/// ones) and the model's decision thresholds. Every change lands in the store's settings
/// log with who made it. Cheap to clone; the panel and plant commands each hold one.
#[derive(Debug, Clone)]
pub struct Settings {
    models: ModelSwitch,
    /// `[model] path` first, then the alternatives.
    choices: Vec<PathBuf>,
    threads: usize,
    store: Option<Arc<RecordStore>>,
}

impl Settings {
    /// `choices`: the paths an engineer may switch to, the one in charge first.
    pub fn new(
        models: ModelSwitch,
        choices: Vec<PathBuf>,
        threads: usize,
        store: Option<Arc<RecordStore>>,
    ) -> Self {
        Self {
            models,
            choices,
            threads,
            store,
        }
    }

    /// The model judging the parts now.
    pub fn model(&self) -> Arc<Model> {
        self.models.current()
    }

    pub fn choices(&self) -> &[PathBuf] {
        &self.choices
    }

    /// Loads `path` (one of [`Self::choices`]) and puts it in charge from the next frame
    /// on. Loading takes a while: call it from a worker, never the UI thread.
    pub fn switch_model(&self, path: &Path, who: &str) -> anyhow::Result<String> {
        if !self.choices.iter().any(|c| c == path) {
            bail!(
                "{} is not one of this station's models ([model] path and alternatives)",
                path.display()
            );
        }
        let model = crate::commands::load_model(path, self.threads)?;
        let old = self
            .models
            .switch(&model)
            .context("preparing the new model")?;
        let (before, after) = (describe_model(&old), describe_model(&model));
        tracing::warn!(%who, %before, %after, "model switched at the station");
        self.log(who, ChangeKind::Model, before, after)
    }

    /// Changes the decision thresholds of the model judging now; the next part is judged
    /// with them.
    pub fn set_thresholds(
        &self,
        who: &str,
        threshold: f32,
        band: [f32; 2],
    ) -> anyhow::Result<String> {
        let model = self.models.current();
        let previous = model.set_thresholds(threshold, band)?;
        let (before, after) = (describe_rule(&previous), describe_rule(&model.rule()));
        tracing::warn!(%who, %before, %after, "decision thresholds changed at the station");
        self.log(who, ChangeKind::Thresholds, before, after)
    }

    /// Keeps the change in the settings log; says what changed, for the person who did it.
    fn log(
        &self,
        who: &str,
        kind: ChangeKind,
        before: String,
        after: String,
    ) -> anyhow::Result<String> {
        let summary = format!("{before} -> {after} (by {who})");
        if let Some(store) = &self.store {
            let change = NewChange {
                who: who.to_owned(),
                kind,
                before,
                after,
            };
            store
                .log_change(&change)
                .context("the change is in effect but the settings log could not keep it")?;
        }
        Ok(summary)
    }
}

fn describe_model(model: &Model) -> String {
    let manifest = model.manifest();
    format!("{} {}", manifest.name, manifest.version)
}

fn describe_rule(rule: &DecisionRule) -> String {
    let [low, high] = rule.uncertain_band();
    format!(
        "reject >= {:.3}, uncertain [{low:.3}, {high:.3})",
        rule.defect_threshold()
    )
}
