//! A running station with everything around it: model, record store, the [`Recorder`] and
//! its sinks, the plant links, wired from one config. `run --headless` drives it from the
//! main thread; the operator panel drives it from a worker thread. Doors that serve people
//! and other programs (the HTTP API) are attached from outside and closed first on stop.

pub mod candidates;
pub mod metrics;
pub mod recorder;
#[cfg(feature = "mqtt")]
mod rollout;
mod settings;
pub mod sinks;
mod summary;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
#[cfg(feature = "mqtt")]
use inspecta_pipeline::publish::mqtt::{CommandMessage, CommandReply, MqttLink, PlantCommand};
use inspecta_pipeline::publish::rollout::RolloutBoard;
use inspecta_pipeline::quality::watch::ProcessWatch;
use inspecta_pipeline::source::SourceSpec;
use inspecta_pipeline::station::shadow::{Shadow, ShadowSlot};
use inspecta_pipeline::station::{Station, StationHandles, Triggers};
use inspecta_pipeline::store::RecordStore;
use inspecta_vision::model::Model;

use crate::config::{LearningSection, StationConfig};
use candidates::Candidates;
use metrics::Metrics;
use recorder::Recorder;
pub use recorder::Sink;
pub use settings::Settings;
use sinks::{JsonLines, JsonLinesSink, PartWaiters, ShadowSink, SharedJsonLines, WaitersSink};
use summary::LineSummary;

/// How often the control charts are redrawn from the store.
const SPC_EVERY: Duration = Duration::from_secs(5);

/// A way into the station from outside (the HTTP API): closed before the station stops.
pub trait Door: Send + std::fmt::Debug {
    fn close(self: Box<Self>);
}

#[derive(Debug)]
pub struct Service {
    handles: StationHandles,
    /// Changed through the panel and MQTT commands; a build with neither only keeps it.
    #[cfg_attr(not(any(feature = "panel", feature = "mqtt")), allow(dead_code))]
    settings: Settings,
    station: Station,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    waiters: Arc<PartWaiters>,
    jsonl: Option<SharedJsonLines>,
    doors: Vec<Box<dyn Door>>,
    #[cfg(feature = "mqtt")]
    mqtt: Option<MqttLink>,
    /// Model rollouts from the plant, with a store to keep them in and a link to report on.
    #[cfg(feature = "mqtt")]
    rollouts: Option<rollout::Rollouts>,
    watch: Option<(ProcessWatch, Instant)>,
    /// Tells API clients that a finite source has been judged and stored to the end.
    finished: Arc<AtomicBool>,
    summary: LineSummary,
    learning: LearningSection,
    candidates: Option<Candidates>,
}

/// What one [`Service::step`] did.
#[derive(Debug)]
pub enum Step {
    /// A verdict was stored and handed to every sink.
    Recorded,
    Idle,
    /// A finite source has ended and every verdict from it is recorded.
    Ended,
}

/// What a door needs from the service it opens onto.
#[derive(Debug, Clone)]
pub struct DoorView {
    pub handles: StationHandles,
    pub metrics: Arc<Metrics>,
    pub waiters: Arc<PartWaiters>,
    /// `[output] jsonl`, which takes the API's verdicts too.
    pub jsonl: Option<SharedJsonLines>,
    pub finished: Arc<AtomicBool>,
    pub learning: LearningSection,
    /// Where the station has a store to keep them beside.
    pub candidates: Option<Candidates>,
}

impl Service {
    /// Starts the station; `sinks` get every verdict after the service's own sinks.
    pub fn start(config: &StationConfig, sinks: Vec<Box<dyn Sink>>) -> anyhow::Result<Self> {
        let started = model_to_start(config);
        let model = crate::engine::load_model(&started, config.model.threads)?;
        let store = open_store(config)?;
        #[cfg(feature = "mqtt")]
        let mqtt = start_mqtt(config, store.as_ref())?;
        #[cfg(not(feature = "mqtt"))]
        refuse_mqtt(config)?;
        let frame_timeout = Duration::from_millis(config.trigger.frame_timeout_ms);
        let source = resume_point(config, store.as_deref())?;
        let (station, triggers) = start_station(config, source, &model, frame_timeout)?;
        let shadow = ShadowSlot::new(start_shadow(config)?);
        let handles = StationHandles {
            name: config.station.name.clone(),
            status: Arc::clone(station.status()),
            models: station.models().clone(),
            store: store.clone(),
            triggers,
            frame_timeout,
            #[cfg(feature = "mqtt")]
            mqtt: mqtt.as_ref().map(|link| Arc::clone(link.status())),
            #[cfg(not(feature = "mqtt"))]
            mqtt: None,
            shadow,
            rollout: RolloutBoard::default(),
        };
        let mut choices = vec![started];
        for path in std::iter::once(&config.model.path).chain(&config.model.alternatives) {
            if !choices.contains(path) {
                choices.push(path.clone());
            }
        }
        let settings = Settings::new(
            handles.models.clone(),
            choices,
            config.recipes.clone(),
            config.model.threads,
            store,
        );
        let candidates = config
            .learning
            .candidates_dir(config.store.as_ref())
            .map(|dir| Candidates::new(dir, settings.clone(), handles.shadow.clone()));
        #[cfg(feature = "mqtt")]
        let rollouts = match open_rollouts(config, mqtt.as_ref(), &settings, &handles) {
            Ok(rollouts) => rollouts,
            Err(e) => {
                station.stop();
                return Err(e);
            }
        };
        let metrics = Arc::new(Metrics::new(handles.clone()));
        let waiters = Arc::new(PartWaiters::default());
        let built = open_jsonl(config, &metrics).and_then(|jsonl| {
            let recorder =
                build_recorder(config, &handles, &metrics, &waiters, jsonl.as_ref(), sinks)?;
            Ok((recorder, jsonl))
        });
        let (recorder, jsonl) = match built {
            Ok(built) => built,
            Err(e) => {
                station.stop();
                return Err(e);
            }
        };
        tracing::info!(station = %config.station.name, model = %model.manifest().name, "station running");
        Ok(Self {
            handles,
            settings,
            station,
            recorder,
            metrics,
            waiters,
            jsonl,
            doors: Vec::new(),
            #[cfg(feature = "mqtt")]
            mqtt,
            #[cfg(feature = "mqtt")]
            rollouts,
            watch: config
                .spc
                .clone()
                .map(|spc| (ProcessWatch::new(spc), Instant::now())),
            finished: Arc::new(AtomicBool::new(false)),
            summary: LineSummary::new(Duration::from_secs(config.output.summary_every_s)),
            learning: config.learning.clone(),
            candidates,
        })
    }

    #[cfg(feature = "panel")]
    pub fn name(&self) -> &str {
        &self.handles.name
    }

    #[cfg(feature = "panel")]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    #[cfg(feature = "panel")]
    pub fn store(&self) -> Option<&Arc<RecordStore>> {
        self.handles.store.as_ref()
    }

    /// The hesitation from which the panel asks for a judged part, under the active policy.
    #[cfg(feature = "panel")]
    pub fn asks_above(&self) -> Option<f64> {
        (self.learning.policy == inspecta_pipeline::learning::Policy::Active)
            .then_some(self.learning.ask_above)
    }

    #[cfg(feature = "panel")]
    pub fn candidates(&self) -> Option<&Candidates> {
        self.candidates.as_ref()
    }

    pub fn triggers(&self) -> Option<&Triggers> {
        self.handles.triggers.as_ref()
    }

    /// What a door (the API) serves.
    pub fn door_view(&self) -> DoorView {
        DoorView {
            handles: self.handles.clone(),
            metrics: Arc::clone(&self.metrics),
            waiters: Arc::clone(&self.waiters),
            jsonl: self.jsonl.clone(),
            finished: Arc::clone(&self.finished),
            learning: self.learning.clone(),
            candidates: self.candidates.clone(),
        }
    }

    /// Keeps `door` open until the service stops.
    pub fn attach(&mut self, door: Box<dyn Door>) {
        self.doors.push(door);
    }

    /// Whether a door still serves after the source has ended.
    pub fn keeps_serving(&self) -> bool {
        !self.doors.is_empty()
    }

    /// Records the next verdict, waiting at most `timeout` for it.
    pub fn step(&mut self, timeout: Duration) -> anyhow::Result<Step> {
        if self.summary.due() {
            self.summary.log(self.handles.status.snapshot());
        }
        self.watch_process();
        #[cfg(feature = "mqtt")]
        self.obey_plant();
        match self.station.results().recv_timeout(timeout) {
            Ok(verdict) => {
                self.recorder.record(&verdict)?;
                Ok(Step::Recorded)
            }
            Err(RecvTimeoutError::Timeout) => {
                self.recorder.flush();
                Ok(Step::Idle)
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.recorder.flush();
                self.finished.store(true, Ordering::Relaxed);
                Ok(Step::Ended)
            }
        }
    }

    /// Lets the sinks pass on what they held back (the panel's parts while it was behind);
    /// for a driver that stopped stepping after the source ended.
    #[cfg(feature = "panel")]
    pub fn flush(&mut self) {
        self.recorder.flush();
    }

    /// Carries out the commands the plant sent over MQTT (the link has checked them
    /// against `[mqtt] commands`) and answers each.
    #[cfg(feature = "mqtt")]
    fn obey_plant(&mut self) {
        while let Some(message) = self.mqtt.as_ref().and_then(MqttLink::next_command) {
            let reply = self.obey(&message);
            if let Some(link) = &self.mqtt {
                link.reply(reply);
            }
        }
        let state = self.rollouts.as_mut().and_then(rollout::Rollouts::tick);
        if let (Some(link), Some(state)) = (&self.mqtt, state) {
            link.report_rollout(state);
        }
    }

    #[cfg(feature = "mqtt")]
    fn obey(&mut self, message: &CommandMessage) -> CommandReply {
        match &message.command {
            PlantCommand::Trigger { part_id } => {
                let part_id = part_id.clone().unwrap_or_else(|| {
                    inspecta_pipeline::station::generated_part_id(&self.handles.name)
                });
                let Some(triggers) = &self.handles.triggers else {
                    tracing::warn!(%part_id, "MQTT trigger ignored: the station is not triggered ([trigger] enabled)");
                    let reason = "the station is not in triggered mode ([trigger] enabled)".into();
                    return CommandReply::refused(message, Some(part_id), reason);
                };
                match triggers.fire(part_id.clone()) {
                    Ok(()) => CommandReply::accepted(message, Some(part_id)),
                    Err(e) => {
                        tracing::warn!(%part_id, "MQTT trigger refused: {e}");
                        CommandReply::refused(message, Some(part_id), e.to_string())
                    }
                }
            }
            PlantCommand::SwitchModel { path, who } => {
                let who = who.as_deref().unwrap_or("mqtt");
                match self.settings.switch_model(path, who) {
                    Ok(_) => CommandReply::accepted(message, None),
                    Err(e) => {
                        let reason = crate::error_text::describe(&e);
                        tracing::warn!(path = %path.display(), "MQTT model switch refused: {reason}");
                        CommandReply::refused(message, None, reason)
                    }
                }
            }
            PlantCommand::Rollout(order) => self.roll(message, |r| r.order(order.clone())),
            PlantCommand::ApproveRollout { rollout, who } => self.roll(message, |r| {
                r.approve(rollout, who.as_deref().unwrap_or("mqtt"))
            }),
            PlantCommand::Rollback { who } => {
                self.roll(message, |r| r.rollback(who.as_deref().unwrap_or("mqtt")))
            }
        }
    }

    /// The rollout commands, refused where the station keeps no store for rollouts.
    #[cfg(feature = "mqtt")]
    fn roll(
        &mut self,
        message: &CommandMessage,
        act: impl FnOnce(&mut rollout::Rollouts) -> Result<String, String>,
    ) -> CommandReply {
        let Some(rollouts) = &mut self.rollouts else {
            let reason = "this station keeps no rollouts: it needs a [store]".to_owned();
            return CommandReply::refused(message, None, reason);
        };
        match act(rollouts) {
            Ok(summary) => {
                tracing::info!(command = message.command.name(), "{summary}");
                CommandReply::accepted(message, None)
            }
            Err(reason) => {
                tracing::warn!(command = message.command.name(), "refused: {reason}");
                CommandReply::refused(message, None, reason)
            }
        }
    }

    /// Redraws the control charts now and then; a rule broken is an alarm in the store
    /// (and so on the links and the API) and in the log.
    fn watch_process(&mut self) {
        let (Some((watch, last)), Some(store)) = (self.watch.as_mut(), self.handles.store.as_ref())
        else {
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

    /// Closes the doors, then stops the station; verdicts made before the stop still
    /// reach the store and every sink.
    pub fn stop(self) -> anyhow::Result<()> {
        for door in self.doors {
            door.close();
        }
        let (pending, status) = self.station.stop();
        let mut recorder = self.recorder;
        for verdict in &pending {
            recorder.record(verdict)?;
        }
        recorder.close();
        // Last: it sends what the broker has not taken yet, the verdicts above included.
        #[cfg(feature = "mqtt")]
        if let Some(mqtt) = self.mqtt {
            mqtt.stop();
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

fn open_store(config: &StationConfig) -> anyhow::Result<Option<Arc<RecordStore>>> {
    config
        .store
        .as_ref()
        .map(|s| {
            RecordStore::open(s)
                .map(Arc::new)
                .with_context(|| format!("cannot open the record store in {}", s.dir.display()))
        })
        .transpose()
}

#[cfg(feature = "mqtt")]
fn start_mqtt(
    config: &StationConfig,
    store: Option<&Arc<RecordStore>>,
) -> anyhow::Result<Option<MqttLink>> {
    let (Some(mqtt), Some(store)) = (&config.mqtt, store) else {
        return Ok(None);
    };
    MqttLink::start(mqtt, &config.station.name, Arc::clone(store))
        .map(Some)
        .context("cannot start the MQTT link")
}

/// Where a station with a store keeps its rollouts.
#[cfg(feature = "mqtt")]
fn rollouts_dir(config: &StationConfig) -> Option<std::path::PathBuf> {
    config.store.as_ref().map(|s| s.dir.join("rollouts"))
}

/// The rolled-out model in charge when there is one that still checks out, else
/// `[model] path`.
fn model_to_start(config: &StationConfig) -> std::path::PathBuf {
    #[cfg(feature = "mqtt")]
    if let Some(dir) = rollouts_dir(config) {
        return rollout::model_to_start(&dir, &config.model.path);
    }
    config.model.path.clone()
}

#[cfg(feature = "mqtt")]
fn open_rollouts(
    config: &StationConfig,
    link: Option<&MqttLink>,
    settings: &Settings,
    handles: &StationHandles,
) -> anyhow::Result<Option<rollout::Rollouts>> {
    let (Some(dir), Some(_)) = (rollouts_dir(config), link) else {
        return Ok(None);
    };
    let rollouts = rollout::Rollouts::open(
        dir,
        config.model.path.clone(),
        config.model.threads,
        settings.clone(),
        handles.shadow.clone(),
        handles.rollout.clone(),
    )?;
    Ok(Some(rollouts))
}

#[cfg(not(feature = "mqtt"))]
fn refuse_mqtt(config: &StationConfig) -> anyhow::Result<()> {
    if config.mqtt.is_some() {
        anyhow::bail!(
            "the config has an [mqtt] section, but this build has no MQTT link (feature `mqtt`)"
        );
    }
    Ok(())
}

/// The source as configured; a folder line that does not repeat carries on after the last
/// part the store has from it, unless the config says where to start (`start_after`).
fn resume_point(config: &StationConfig, store: Option<&RecordStore>) -> anyhow::Result<SourceSpec> {
    let mut source = config.source.clone();
    if let (
        SourceSpec::Folder {
            path,
            repeat: false,
            start_after: start_after @ None,
            ..
        },
        Some(store),
    ) = (&mut source, store)
    {
        *start_after = store
            .last_origin_under(&config.station.name, path)
            .context("cannot find where the folder line stopped")?;
        if let Some(last) = start_after {
            tracing::info!(after = %last.display(), "resuming the folder after the last part stored from it ([source] start_after = \"\" starts at the first file)");
        }
    }
    Ok(source)
}

fn start_station(
    config: &StationConfig,
    source: SourceSpec,
    model: &Arc<Model>,
    frame_timeout: Duration,
) -> anyhow::Result<(Station, Option<Triggers>)> {
    source.check_built()?;
    if config.trigger.enabled {
        let (station, triggers) =
            Station::start_triggered(model, source, config.reconnect, frame_timeout)?;
        Ok((station, Some(triggers)))
    } else {
        let station = Station::start(model, source, config.reconnect)?;
        Ok((station, None))
    }
}

fn start_shadow(config: &StationConfig) -> anyhow::Result<Option<Arc<Shadow>>> {
    let Some(path) = &config.model.shadow else {
        return Ok(None);
    };
    let model = crate::engine::load_model(path, 1)
        .with_context(|| format!("cannot load the shadow model {}", path.display()))?;
    let shadow = Shadow::start(&model).context("cannot start the shadow model")?;
    Ok(Some(Arc::new(shadow)))
}

fn open_jsonl(
    config: &StationConfig,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Option<SharedJsonLines>> {
    let Some(path) = &config.output.jsonl else {
        return Ok(None);
    };
    let file = JsonLines::open(path, Arc::clone(metrics))?;
    Ok(Some(Arc::new(Mutex::new(file))))
}

/// The service's own sinks first (file, shadow, waiting triggers, OPC UA), then `extra`.
fn build_recorder(
    config: &StationConfig,
    handles: &StationHandles,
    metrics: &Arc<Metrics>,
    waiters: &Arc<PartWaiters>,
    jsonl: Option<&SharedJsonLines>,
    extra: Vec<Box<dyn Sink>>,
) -> anyhow::Result<Recorder> {
    let mut recorder = Recorder::new(
        config.station.name.clone(),
        handles.store.clone(),
        Arc::clone(metrics),
    );
    if let Some(file) = jsonl {
        recorder.add(Box::new(JsonLinesSink {
            station: config.station.name.clone(),
            file: Arc::clone(file),
        }));
    }
    recorder.add(Box::new(ShadowSink(handles.shadow.clone())));
    recorder.add(Box::new(WaitersSink(Arc::clone(waiters))));
    if let (Some(opcua), Some(store)) = (&config.opcua, &handles.store) {
        recorder.add(start_opcua(opcua, handles, store)?);
    }
    for sink in extra {
        recorder.add(sink);
    }
    Ok(recorder)
}

#[cfg(feature = "opcua")]
fn start_opcua(
    config: &inspecta_pipeline::publish::opcua::OpcUaConfig,
    handles: &StationHandles,
    store: &Arc<RecordStore>,
) -> anyhow::Result<Box<dyn Sink>> {
    use inspecta_pipeline::publish::opcua::OpcUaServer;
    let pki = config.pki_dir.clone().unwrap_or_else(|| {
        store
            .path()
            .parent()
            .map_or_else(|| "opcua-pki".into(), |dir| dir.join("opcua-pki"))
    });
    let server = OpcUaServer::start(config, pki, handles.clone(), Arc::clone(store))
        .context("cannot start the OPC UA server")?;
    Ok(Box::new(sinks::OpcUaSink(server)))
}

#[cfg(not(feature = "opcua"))]
fn start_opcua(
    _: &inspecta_pipeline::publish::opcua::OpcUaConfig,
    _: &StationHandles,
    _: &Arc<RecordStore>,
) -> anyhow::Result<Box<dyn Sink>> {
    anyhow::bail!(
        "the config has an [opcua] section, but this build has no OPC UA server (feature `opcua`)"
    )
}
