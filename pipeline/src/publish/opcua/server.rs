//! The server (async-opcua): the address space, the handshake's write callbacks and the
//! one task that applies every variable change.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opcua::nodes::AccessLevel;
use opcua::server::address_space::Variable;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager};
use opcua::server::{ServerBuilder, ServerHandle, SubscriptionCache};
use opcua::types::{DataValue, NodeId, StatusCode, UAString, Variant};

use super::OpcUaConfig;
use crate::station::status::SourceState;
use crate::station::{StationHandles, generated_part_id};
use crate::store::{Record, RecordStore};

const TICK: Duration = Duration::from_millis(50);
/// Status and counters every this many ticks; KPIs (a store query) less often.
const STATUS_TICKS: u32 = 10;
const KPI_TICKS: u32 = 100;
/// Changes waiting for the updater, which takes them every tick. Full only when the
/// updater is stuck; a change is then dropped and logged rather than stalling the line or
/// a PLC's write.
const CHANGE_QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum OpcUaError {
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("the OPC UA server: {0}")]
    Server(String),
    #[error("cannot start the OPC UA thread: {0}")]
    Thread(std::io::Error),
}

/// The handshake, as the PLC drives it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Idle,
    Busy { part_id: String, since: Instant },
    ResultReady,
}

#[derive(Debug)]
struct Handshake {
    phase: Phase,
    part_id: String,
}

/// A change for the updater task to apply.
#[derive(Debug)]
enum Change {
    Verdict(Box<Record>),
    Triggered,
    Acknowledged,
}

/// A running server; [`OpcUaServer::stop`] closes its sessions and returns.
pub struct OpcUaServer {
    handle: ServerHandle,
    changes: SyncSender<Change>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    endpoint: String,
}

impl std::fmt::Debug for OpcUaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpcUaServer")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl OpcUaServer {
    /// Binds the port (failing here if it is taken) and serves on a thread of its own.
    pub fn start(
        config: &OpcUaConfig,
        pki_dir: PathBuf,
        station: StationHandles,
        store: Arc<RecordStore>,
    ) -> Result<Self, OpcUaError> {
        let host = config
            .host
            .clone()
            .unwrap_or_else(|| config.listen.ip().to_string());
        let endpoint = format!("opc.tcp://{host}:{}/", config.listen.port());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("opcua")
            .enable_all()
            .build()
            .map_err(OpcUaError::Thread)?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(config.listen))
            .map_err(|source| OpcUaError::Listen {
                address: config.listen,
                source,
            })?;
        // The server spawns its samplers as it is built: inside the runtime.
        let _entered = runtime.enter();
        let (server, handle) = ServerBuilder::new_anonymous(format!("Inspecta {}", station.name))
            .application_uri(format!("urn:inspecta:{}", station.name))
            .product_uri("urn:inspecta")
            .host(host)
            .port(config.listen.port())
            .pki_dir(pki_dir)
            .create_sample_keypair(true)
            .trust_client_certs(true)
            .diagnostics_enabled(false)
            .discovery_urls(vec![endpoint.clone()])
            .with_node_manager(simple_node_manager(
                NamespaceMetadata {
                    namespace_uri: config.namespace.clone(),
                    ..Default::default()
                },
                "inspecta",
            ))
            .build()
            .map_err(OpcUaError::Server)?;
        let nodes = handle
            .node_managers()
            .get_of_type::<SimpleNodeManager>()
            .ok_or_else(|| OpcUaError::Server("no node manager".into()))?;
        let ns = handle
            .get_namespace_index(&config.namespace)
            .ok_or_else(|| OpcUaError::Server("namespace not registered".into()))?;
        let ids = Ids::new(ns);
        build_address_space(&nodes, &ids, &station.name);
        let (changes, inbox) = sync_channel(CHANGE_QUEUE);
        let handshake = Arc::new(Mutex::new(Handshake {
            phase: Phase::Idle,
            part_id: String::new(),
        }));
        install_handshake(&nodes, &ids, &handshake, &station, &changes);
        let stop = Arc::new(AtomicBool::new(false));
        let updater = Updater {
            nodes,
            subscriptions: Arc::clone(handle.subscriptions()),
            ids,
            station,
            store,
            handshake,
            inbox,
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("opcua".into())
            .spawn(move || {
                runtime.spawn(updater.run());
                if let Err(e) = runtime.block_on(server.run_with(listener)) {
                    tracing::error!("the OPC UA server stopped: {e}");
                }
            })
            .map_err(OpcUaError::Thread)?;
        tracing::info!(%endpoint, "OPC UA server up");
        Ok(Self {
            handle,
            changes,
            stop,
            thread: Some(thread),
            endpoint,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A stored verdict: the last verdict's variables, and the handshake's result when the
    /// PLC is waiting for this part.
    pub fn verdict(&self, record: Record) {
        send(&self.changes, Change::Verdict(Box::new(record)));
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.cancel();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the OPC UA server panicked");
        }
    }
}

/// Every node id of the station's address space.
#[derive(Debug, Clone)]
struct Ids {
    ns: u16,
}

impl Ids {
    fn new(ns: u16) -> Self {
        Self { ns }
    }

    fn id(&self, path: &str) -> NodeId {
        NodeId::new(self.ns, format!("Inspecta.{path}"))
    }
}

/// (folder, [(variable, initial value, writable by the PLC)]).
type Folder = (&'static str, &'static [(&'static str, Init, bool)]);

#[derive(Debug, Clone, Copy)]
enum Init {
    Text,
    Flag,
    Number,
    Count,
    Id,
}

const FOLDERS: &[Folder] = &[
    (
        "Status",
        &[
            ("Station", Init::Text, false),
            ("Source", Init::Text, false),
            ("Model", Init::Text, false),
            ("ModelVersion", Init::Text, false),
            ("FramesIn", Init::Count, false),
            ("FramesDropped", Init::Count, false),
            ("Unreadable", Init::Count, false),
            ("TriggersMissed", Init::Count, false),
        ],
    ),
    (
        "LastVerdict",
        &[
            ("Verdict", Init::Text, false),
            ("Class", Init::Text, false),
            ("Score", Init::Number, false),
            ("PartId", Init::Text, false),
            ("Sequence", Init::Count, false),
            ("RecordId", Init::Id, false),
        ],
    ),
    (
        "Counters",
        &[
            ("Inspected", Init::Count, false),
            ("Good", Init::Count, false),
            ("Defect", Init::Count, false),
            ("Uncertain", Init::Count, false),
        ],
    ),
    (
        "Kpi",
        &[
            ("Parts", Init::Count, false),
            ("Yield", Init::Number, false),
            ("FalseRejectRate", Init::Number, false),
            ("EscapeEstimate", Init::Number, false),
            ("OverrideRate", Init::Number, false),
        ],
    ),
    (
        "Handshake",
        &[
            ("Trigger", Init::Flag, true),
            ("PartId", Init::Text, true),
            ("Busy", Init::Flag, false),
            ("ResultReady", Init::Flag, false),
            ("Ack", Init::Flag, true),
            ("Result", Init::Text, false),
            ("ResultClass", Init::Text, false),
            ("ResultScore", Init::Number, false),
            ("ResultRecordId", Init::Id, false),
            ("Fault", Init::Text, false),
        ],
    ),
];

fn initial(init: Init) -> Variant {
    match init {
        Init::Text => UAString::from("").into(),
        Init::Flag => false.into(),
        Init::Number => 0.0f64.into(),
        Init::Count => 0u64.into(),
        Init::Id => 0i64.into(),
    }
}

/// `Objects/Inspecta/<station>/{Status,LastVerdict,Counters,Kpi,Handshake}/...`; node ids
/// are `ns=<namespace>;s=Inspecta.<Folder>.<Variable>`.
fn build_address_space(nodes: &SimpleNodeManager, ids: &Ids, station: &str) {
    let mut space = nodes.address_space().write();
    let root = ids.id("Station");
    space.add_folder(&root, station, station, &NodeId::objects_folder_id());
    for (folder, variables) in FOLDERS {
        let folder_id = ids.id(folder);
        space.add_folder(&folder_id, *folder, *folder, &root);
        let variables = variables
            .iter()
            .map(|(name, init, writable)| {
                let mut variable = Variable::new(
                    &ids.id(&format!("{folder}.{name}")),
                    *name,
                    *name,
                    initial(*init),
                );
                if *writable {
                    variable.set_writable(true);
                    variable.set_user_access_level(
                        AccessLevel::CURRENT_READ | AccessLevel::CURRENT_WRITE,
                    );
                }
                variable
            })
            .collect();
        space.add_variables(variables, &folder_id);
    }
}

/// The PLC's writes: PartId is kept for the next trigger; Trigger and Ack move the
/// handshake on (or are refused when it is not their turn).
fn install_handshake(
    nodes: &SimpleNodeManager,
    ids: &Ids,
    handshake: &Arc<Mutex<Handshake>>,
    station: &StationHandles,
    changes: &SyncSender<Change>,
) {
    let state = Arc::clone(handshake);
    nodes
        .inner()
        .add_write_callback(ids.id("Handshake.PartId"), move |value, _| {
            let text = match value.value {
                Some(Variant::String(s)) => s.as_ref().to_owned(),
                _ => return StatusCode::BadTypeMismatch,
            };
            lock(&state).part_id = text;
            StatusCode::Good
        });

    let state = Arc::clone(handshake);
    let triggers = station.triggers.clone();
    let name = station.name.clone();
    let sender = changes.clone();
    nodes
        .inner()
        .add_write_callback(ids.id("Handshake.Trigger"), move |value, _| {
            match value.value {
                Some(Variant::Boolean(true)) => {}
                Some(Variant::Boolean(false)) => return StatusCode::Good,
                _ => return StatusCode::BadTypeMismatch,
            }
            let Some(triggers) = &triggers else {
                return StatusCode::BadNotSupported;
            };
            let mut state = lock(&state);
            if state.phase != Phase::Idle {
                return StatusCode::BadInvalidState;
            }
            let part_id = match std::mem::take(&mut state.part_id) {
                id if id.is_empty() => generated_part_id(&name),
                id => id,
            };
            if let Err(e) = triggers.fire(part_id.clone()) {
                tracing::warn!(%part_id, "OPC UA trigger refused: {e}");
                return StatusCode::BadResourceUnavailable;
            }
            tracing::info!(%part_id, "OPC UA trigger");
            state.phase = Phase::Busy {
                part_id,
                since: Instant::now(),
            };
            send(&sender, Change::Triggered);
            StatusCode::Good
        });

    let state = Arc::clone(handshake);
    let sender = changes.clone();
    nodes
        .inner()
        .add_write_callback(ids.id("Handshake.Ack"), move |value, _| {
            match value.value {
                Some(Variant::Boolean(true)) => {}
                Some(Variant::Boolean(false)) => return StatusCode::Good,
                _ => return StatusCode::BadTypeMismatch,
            }
            let mut state = lock(&state);
            if state.phase != Phase::ResultReady {
                return StatusCode::BadInvalidState;
            }
            state.phase = Phase::Idle;
            send(&sender, Change::Acknowledged);
            StatusCode::Good
        });
}

fn lock(handshake: &Mutex<Handshake>) -> std::sync::MutexGuard<'_, Handshake> {
    handshake.lock().unwrap_or_else(PoisonError::into_inner)
}

fn send(changes: &SyncSender<Change>, change: Change) {
    match changes.try_send(change) {
        Ok(()) | Err(TrySendError::Disconnected(_)) => {}
        Err(TrySendError::Full(change)) => {
            tracing::error!(?change, "OPC UA updater is not keeping up; change dropped");
        }
    }
}

struct Updater {
    nodes: Arc<SimpleNodeManager>,
    subscriptions: Arc<SubscriptionCache>,
    ids: Ids,
    station: StationHandles,
    store: Arc<RecordStore>,
    handshake: Arc<Mutex<Handshake>>,
    inbox: Receiver<Change>,
    stop: Arc<AtomicBool>,
}

impl Updater {
    async fn run(self) {
        let mut tick = tokio::time::interval(TICK);
        let mut n: u32 = 0;
        while !self.stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let mut values: Vec<(NodeId, Variant)> = Vec::new();
            while let Ok(change) = self.inbox.try_recv() {
                self.apply(change, &mut values);
            }
            self.check_timeout(&mut values);
            if n.is_multiple_of(STATUS_TICKS) {
                self.status(&mut values);
            }
            if n.is_multiple_of(KPI_TICKS) {
                self.kpis(&mut values);
            }
            n = n.wrapping_add(1);
            if !values.is_empty() {
                let updates = values
                    .iter()
                    .map(|(id, v)| (id, None, DataValue::new_now(v.clone())));
                if let Err(e) = self.nodes.set_values(&self.subscriptions, updates) {
                    tracing::warn!("OPC UA update failed: {e}");
                }
            }
        }
    }

    fn set(&self, values: &mut Vec<(NodeId, Variant)>, path: &str, value: impl Into<Variant>) {
        values.push((self.ids.id(path), value.into()));
    }

    fn apply(&self, change: Change, values: &mut Vec<(NodeId, Variant)>) {
        match change {
            Change::Triggered => {
                self.set(values, "Handshake.Trigger", true);
                self.set(values, "Handshake.Busy", true);
                self.set(values, "Handshake.ResultReady", false);
                self.set(values, "Handshake.Fault", UAString::from(""));
            }
            Change::Acknowledged => {
                self.set(values, "Handshake.ResultReady", false);
                self.set(values, "Handshake.Trigger", false);
                self.set(values, "Handshake.Ack", false);
            }
            Change::Verdict(record) => self.verdict(&record, values),
        }
    }

    fn verdict(&self, record: &Record, values: &mut Vec<(NodeId, Variant)>) {
        let class = UAString::from(record.class.clone().unwrap_or_default());
        let part_id = record.part_id.clone().unwrap_or_default();
        self.set(
            values,
            "LastVerdict.Verdict",
            UAString::from(record.verdict.as_str()),
        );
        self.set(values, "LastVerdict.Class", class.clone());
        self.set(values, "LastVerdict.Score", record.defect_score);
        self.set(
            values,
            "LastVerdict.PartId",
            UAString::from(part_id.as_str()),
        );
        self.set(values, "LastVerdict.Sequence", record.sequence.unwrap_or(0));
        self.set(values, "LastVerdict.RecordId", record.id);
        let mut state = lock(&self.handshake);
        let awaited = matches!(&state.phase, Phase::Busy { part_id: p, .. } if *p == part_id);
        if awaited {
            // The result first, then the flag: a PLC that sees ResultReady reads a result.
            values.push((
                self.ids.id("Handshake.Result"),
                UAString::from(record.verdict.as_str()).into(),
            ));
            values.push((self.ids.id("Handshake.ResultClass"), class.into()));
            values.push((
                self.ids.id("Handshake.ResultScore"),
                record.defect_score.into(),
            ));
            values.push((self.ids.id("Handshake.ResultRecordId"), record.id.into()));
            values.push((self.ids.id("Handshake.Busy"), false.into()));
            values.push((self.ids.id("Handshake.ResultReady"), true.into()));
            state.phase = Phase::ResultReady;
        }
    }

    /// A trigger whose part never came: end the cycle with a fault, not a hang.
    fn check_timeout(&self, values: &mut Vec<(NodeId, Variant)>) {
        let mut state = lock(&self.handshake);
        let Phase::Busy { part_id, since } = &state.phase else {
            return;
        };
        if since.elapsed() < self.station.frame_timeout + Duration::from_secs(2) {
            return;
        }
        let fault = format!("no frame for part {part_id}");
        tracing::warn!("OPC UA handshake: {fault}");
        state.phase = Phase::Idle;
        drop(state);
        self.set(values, "Handshake.Fault", UAString::from(fault));
        self.set(values, "Handshake.Busy", false);
        self.set(values, "Handshake.Trigger", false);
    }

    fn status(&self, values: &mut Vec<(NodeId, Variant)>) {
        let s = self.station.status.snapshot();
        let model = self.station.models.current();
        let manifest = model.manifest();
        let source = match &s.source {
            SourceState::Connecting => "connecting",
            SourceState::Online => "online",
            SourceState::Reconnecting { .. } => "reconnecting",
            SourceState::Ended => "ended",
        };
        let count = |name: &str| s.verdicts.get(name).copied().unwrap_or(0);
        let inspected = s.inspected();
        let (good, uncertain) = (count("good"), count("uncertain"));
        self.set(
            values,
            "Status.Station",
            UAString::from(self.station.name.as_str()),
        );
        self.set(values, "Status.Source", UAString::from(source));
        self.set(
            values,
            "Status.Model",
            UAString::from(manifest.name.as_str()),
        );
        self.set(
            values,
            "Status.ModelVersion",
            UAString::from(manifest.version.as_str()),
        );
        self.set(values, "Status.FramesIn", s.frames_in);
        self.set(values, "Status.FramesDropped", s.frames_dropped);
        self.set(values, "Status.Unreadable", s.unreadable);
        self.set(values, "Status.TriggersMissed", s.triggers_missed);
        self.set(values, "Counters.Inspected", inspected);
        self.set(values, "Counters.Good", good);
        self.set(values, "Counters.Uncertain", uncertain);
        self.set(values, "Counters.Defect", inspected - good - uncertain);
    }

    /// The last hour's rates; a rate with nothing to divide by reads as NaN.
    fn kpis(&self, values: &mut Vec<(NodeId, Variant)>) {
        let since = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
        let Ok(k) = self.store.kpis(since) else {
            return;
        };
        self.set(values, "Kpi.Parts", k.parts);
        self.set(
            values,
            "Kpi.Yield",
            k.first_pass_yield().unwrap_or(f64::NAN),
        );
        self.set(
            values,
            "Kpi.FalseRejectRate",
            k.false_reject_rate().unwrap_or(f64::NAN),
        );
        self.set(
            values,
            "Kpi.EscapeEstimate",
            k.escape_estimate().unwrap_or(f64::NAN),
        );
        self.set(
            values,
            "Kpi.OverrideRate",
            k.override_rate().unwrap_or(f64::NAN),
        );
    }
}
