//! The server (async-opcua): the address space, the handshake's read and write callbacks,
//! and the task that refreshes the status, counters and KPIs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use opcua::nodes::AccessLevel;
use opcua::server::address_space::Variable;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager};
use opcua::server::{ServerBuilder, ServerHandle, SubscriptionCache};
use opcua::types::{DataValue, NodeId, StatusCode, UAString, Variant};

use super::OpcUaConfig;
use super::access::{self, AccessError, StationAccess};
use super::handshake::{self, Handshake};
use super::methods::{self, PendingCalls, TriggerCall};
use crate::station::StationHandles;
use crate::station::status::SourceState;
use crate::store::{Record, RecordStore};

const TICK: Duration = Duration::from_millis(50);
/// The fastest sampling a client may ask for: a PLC's scan.
const MIN_SAMPLING_MS: f64 = 10.0;
/// Status and counters every this many ticks; KPIs (a store query) less often.
const STATUS_TICKS: u32 = 10;
const KPI_TICKS: u32 = 100;

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
    #[error(transparent)]
    Access(#[from] AccessError),
}

/// A running server; [`OpcUaServer::stop`] closes its sessions and returns.
pub struct OpcUaServer {
    handle: ServerHandle,
    handshake: Arc<Mutex<Handshake>>,
    calls: Arc<PendingCalls>,
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
        let (server, handle) = builder(config, &station.name, &host, pki_dir)?
            .discovery_urls(vec![endpoint.clone()])
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
        let handshake = Arc::new(Mutex::new(Handshake::new(
            &station.name,
            station.frame_timeout,
        )));
        install_handshake(&nodes, &ids, &handshake, &station);
        let calls = Arc::new(PendingCalls::default());
        let call = TriggerCall {
            pending: Arc::clone(&calls),
            triggers: station.triggers.clone(),
            station: station.name.clone(),
            frame_timeout: station.frame_timeout,
        };
        methods::install(
            &nodes,
            |name| ids.id(name),
            &ids.id("Station"),
            call,
            Arc::clone(&store),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let updater = Updater {
            nodes,
            subscriptions: Arc::clone(handle.subscriptions()),
            ids,
            station,
            store,
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
            handshake,
            calls,
            stop,
            thread: Some(thread),
            endpoint,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A stored verdict: the last verdict, and the handshake's result when the PLC is
    /// waiting for this part, readable at once.
    pub fn verdict(&self, record: &Record) {
        lock(&self.handshake).judged(record);
        self.calls.judged(record);
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

/// The server as configured: its endpoints, users, certificate and limits.
fn builder(
    config: &OpcUaConfig,
    station: &str,
    host: &str,
    pki_dir: PathBuf,
) -> Result<ServerBuilder, OpcUaError> {
    let auth = StationAccess::new(config)?;
    if !auth.has_users() {
        tracing::warn!(
            "OPC UA: no [[opcua.users]], so any client that reaches the port may trigger parts"
        );
    }
    let mut builder = ServerBuilder::new()
        .application_name(format!("Inspecta {station}"))
        .application_uri(format!("urn:inspecta:{station}"))
        .product_uri("urn:inspecta")
        .host(host)
        .port(config.listen.port())
        .pki_dir(pki_dir)
        .create_sample_keypair(true)
        .trust_client_certs(config.trust_client_certs)
        .diagnostics_enabled(false)
        .with_authenticator(Arc::new(auth))
        .with_node_manager(simple_node_manager(
            NamespaceMetadata {
                namespace_uri: config.namespace.clone(),
                ..Default::default()
            },
            "inspecta",
        ));
    for (id, endpoint) in access::endpoints(config)? {
        builder = builder.add_endpoint(id, endpoint);
    }
    for (id, token) in access::user_tokens(config) {
        builder = builder.add_user_token(id, token);
    }
    // A PLC scanning every 10 ms sees each handshake step (the library's floor is 100).
    let limits = &mut builder.limits_mut().subscriptions;
    limits.min_sampling_interval_ms = MIN_SAMPLING_MS;
    limits.min_publishing_interval_ms = MIN_SAMPLING_MS;
    Ok(builder)
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
    Count32,
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
        "Counters32",
        &[
            ("Inspected", Init::Count32, false),
            ("Good", Init::Count32, false),
            ("Defect", Init::Count32, false),
            ("Uncertain", Init::Count32, false),
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
        Init::Count32 => 0u32.into(),
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

/// The PLC's writes move the handshake on (or are refused when it is not their turn); every
/// handshake variable is read from it, so no read can lag behind a write.
fn install_handshake(
    nodes: &SimpleNodeManager,
    ids: &Ids,
    handshake: &Arc<Mutex<Handshake>>,
    station: &StationHandles,
) {
    let manager = nodes.inner();
    for variable in handshake::VARIABLES {
        let state = Arc::clone(handshake);
        manager.add_read_callback(ids.id(&format!("Handshake.{variable}")), move |_, _, _| {
            lock(&state)
                .read(variable)
                .map(DataValue::new_now)
                .ok_or(StatusCode::BadNodeIdUnknown)
        });
    }
    for variable in handshake::LAST_VERDICT {
        let state = Arc::clone(handshake);
        manager.add_read_callback(
            ids.id(&format!("LastVerdict.{variable}")),
            move |_, _, _| {
                lock(&state)
                    .read_last(variable)
                    .map(DataValue::new_now)
                    .ok_or(StatusCode::BadNodeIdUnknown)
            },
        );
    }

    let state = Arc::clone(handshake);
    manager.add_write_callback(ids.id("Handshake.PartId"), move |value, _| {
        match value.value {
            Some(Variant::String(s)) => {
                lock(&state).write_part_id(s.as_ref().to_owned());
                StatusCode::Good
            }
            _ => StatusCode::BadTypeMismatch,
        }
    });

    let state = Arc::clone(handshake);
    let triggers = station.triggers.clone();
    manager.add_write_callback(ids.id("Handshake.Trigger"), move |value, _| {
        match value.value {
            Some(Variant::Boolean(true)) => {}
            Some(Variant::Boolean(false)) => return StatusCode::Good,
            _ => return StatusCode::BadTypeMismatch,
        }
        let Some(triggers) = &triggers else {
            return StatusCode::BadNotSupported;
        };
        lock(&state).trigger(|part_id| triggers.fire(part_id))
    });

    let state = Arc::clone(handshake);
    manager.add_write_callback(ids.id("Handshake.Ack"), move |value, _| match value.value {
        Some(Variant::Boolean(true)) => lock(&state).acknowledge(),
        Some(Variant::Boolean(false)) => {
            lock(&state).release_ack();
            StatusCode::Good
        }
        _ => StatusCode::BadTypeMismatch,
    });
}

fn lock(handshake: &Mutex<Handshake>) -> std::sync::MutexGuard<'_, Handshake> {
    handshake.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Updater {
    nodes: Arc<SimpleNodeManager>,
    subscriptions: Arc<SubscriptionCache>,
    ids: Ids,
    station: StationHandles,
    store: Arc<RecordStore>,
    stop: Arc<AtomicBool>,
}

impl Updater {
    async fn run(self) {
        let mut tick = tokio::time::interval(TICK);
        let mut n: u32 = 0;
        while !self.stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let mut values: Vec<(NodeId, DataValue)> = Vec::new();
            if n.is_multiple_of(STATUS_TICKS) {
                self.status(&mut values);
            }
            if n.is_multiple_of(KPI_TICKS) {
                self.kpis(&mut values);
            }
            n = n.wrapping_add(1);
            if !values.is_empty() {
                let updates = values.iter().map(|(id, v)| (id, None, v.clone()));
                if let Err(e) = self.nodes.set_values(&self.subscriptions, updates) {
                    tracing::warn!("OPC UA update failed: {e}");
                }
            }
        }
    }

    fn set(&self, values: &mut Vec<(NodeId, DataValue)>, path: &str, value: impl Into<Variant>) {
        values.push((self.ids.id(path), DataValue::new_now(value.into())));
    }

    /// A count as UInt64, and under `Counters32/` as UInt32 wrapping at 2^32, for PLCs
    /// without 64-bit integers (S7-1200).
    fn count(&self, values: &mut Vec<(NodeId, DataValue)>, path: &str, value: u64) {
        self.set(values, path, value);
        if let Some(name) = path.strip_prefix("Counters.") {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "wraps on purpose, as PLC counters do"
            )]
            self.set(values, &format!("Counters32.{name}"), value as u32);
        }
    }

    /// A rate with nothing to divide by (no parts in the hour) reads 0 with the status
    /// `Uncertain`, never NaN, which PLC arithmetic and SCADA trends choke on.
    fn rate(&self, values: &mut Vec<(NodeId, DataValue)>, path: &str, value: Option<f64>) {
        let mut data = DataValue::new_now(value.unwrap_or(0.0));
        if value.is_none() {
            data.status = Some(StatusCode::Uncertain);
        }
        values.push((self.ids.id(path), data));
    }

    fn status(&self, values: &mut Vec<(NodeId, DataValue)>) {
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
        self.count(values, "Counters.Inspected", inspected);
        self.count(values, "Counters.Good", good);
        self.count(values, "Counters.Uncertain", uncertain);
        self.count(values, "Counters.Defect", inspected - good - uncertain);
    }

    /// The last hour's rates.
    fn kpis(&self, values: &mut Vec<(NodeId, DataValue)>) {
        let since = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
        let Ok(k) = self.store.kpis(since) else {
            return;
        };
        self.set(values, "Kpi.Parts", k.parts);
        self.rate(values, "Kpi.Yield", k.first_pass_yield());
        self.rate(values, "Kpi.FalseRejectRate", k.false_reject_rate());
        self.rate(values, "Kpi.EscapeEstimate", k.escape_estimate());
        self.rate(values, "Kpi.OverrideRate", k.override_rate());
    }
}
