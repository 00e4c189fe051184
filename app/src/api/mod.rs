//! The station's HTTP API: health and status for monitoring, the record store for review
//! tools, predict and trigger for the line, and Prometheus metrics. It runs on its own
//! threads (a small tokio runtime); store and model work goes to blocking workers so a slow
//! disk never stalls a scrape.

mod error;
mod inspect;
mod kpis;
mod learning;
mod records;
pub mod serve;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use inspecta_pipeline::quality::watch::ProcessWatch;
use inspecta_pipeline::station::StationHandles;
use inspecta_pipeline::station::status::SourceState;
use inspecta_pipeline::store::RecordStore;
use inspecta_vision::model::Session;
use serde_json::json;
use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;

use crate::config::{ApiSection, LearningSection, StationConfig};
use crate::error_text::describe;
use crate::service::candidates::Candidates;
use crate::service::metrics::Metrics;
use crate::service::sinks::{PartWaiters, SharedJsonLines};
use crate::service::{Door, Service};
use error::ApiError;

const TOKEN_ENV: &str = "INSPECTA_API_TOKEN";

/// Opens the API onto `service` when the config asks for one (it serves the record store,
/// so it needs a `[store]`); it closes before the station stops. When it cannot open, the
/// station is stopped and the error returned.
pub fn open(mut service: Service, config: &StationConfig) -> anyhow::Result<Service> {
    let Some(api) = &config.api else {
        return Ok(service);
    };
    let view = service.door_view();
    let Some(store) = view.handles.store.clone() else {
        return Ok(service);
    };
    let started = token(api).and_then(|token| {
        let state = ApiState {
            handles: view.handles,
            store,
            metrics: view.metrics,
            waiters: view.waiters,
            jsonl: view.jsonl,
            token,
            open_metrics: api.open_metrics,
            max_image_pixels: api.max_image_pixels,
            started: Instant::now(),
            sessions: SessionPool::default(),
            predictions: Arc::new(Semaphore::new(api.max_predictions)),
            spc: config.spc.clone().map(ProcessWatch::new),
            finished: view.finished,
            learning: view.learning,
            candidates: view.candidates,
        };
        ApiServer::start(api, state)
    });
    match started {
        Ok(server) => {
            service.attach(Box::new(server));
            Ok(service)
        }
        Err(e) => {
            if let Err(stop) = service.stop() {
                tracing::error!("stopping the station: {}", describe(&stop));
            }
            Err(e)
        }
    }
}

/// The token from the environment, else the config. An empty one is refused: it would
/// silently turn authentication off.
fn token(api: &ApiSection) -> anyhow::Result<Option<String>> {
    let (token, from) = match std::env::var(TOKEN_ENV) {
        Ok(token) => (Some(token), TOKEN_ENV),
        Err(_) => (api.token.clone(), "[api] token"),
    };
    if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        anyhow::bail!(
            "{from} is empty, which would turn the API's authentication off: set a token, or remove it to serve without one"
        );
    }
    Ok(token)
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct ApiState {
    pub handles: StationHandles,
    /// The API serves the record store, so it runs only where there is one.
    pub store: Arc<RecordStore>,
    pub metrics: Arc<Metrics>,
    pub waiters: Arc<PartWaiters>,
    /// Uploaded parts are appended to `[output] jsonl` like the line's.
    pub jsonl: Option<SharedJsonLines>,
    pub token: Option<String>,
    /// `/metrics` is served without the token (`[api] open_metrics`).
    pub open_metrics: bool,
    /// Pixels an uploaded image may declare (`[api] max_image_pixels`).
    pub max_image_pixels: u64,
    pub started: Instant,
    pub sessions: SessionPool,
    /// `POST /predict` inferences at once (`[api] max_predictions`): inference is CPU-bound
    /// and shares the cores with the line, so excess uploads are refused, not queued.
    pub predictions: Arc<Semaphore>,
    /// The control charts, when `[spc]` is configured.
    pub spc: Option<ProcessWatch>,
    /// Set once a finite source has ended and every verdict from it is stored.
    pub finished: Arc<AtomicBool>,
    pub learning: LearningSection,
    pub candidates: Option<Candidates>,
}

/// Model sessions for `POST /predict`, reused across requests (each holds its buffers).
#[derive(Debug, Default)]
pub struct SessionPool(Mutex<Vec<Session>>);

type Shared = Arc<ApiState>;

/// The running API server; closing it finishes open requests and returns.
#[derive(Debug)]
pub struct ApiServer(serve::Server);

impl ApiServer {
    /// Binds `config.listen` (failing here, before the station runs, if the port is taken)
    /// and serves on a thread of its own.
    pub fn start(config: &ApiSection, state: ApiState) -> anyhow::Result<Self> {
        if state.token.is_none() {
            tracing::warn!(listen = %config.listen, "the API serves anyone who can reach it: set [api] token or INSPECTA_API_TOKEN");
        }
        let app = router(Arc::new(state), config.max_upload_bytes);
        let server = serve::Server::start("api", config.listen, app, serve::Limits::new(config))?;
        tracing::info!(address = %server.address, "API listening");
        Ok(Self(server))
    }
}

impl Door for ApiServer {
    fn close(self: Box<Self>) {
        self.0.stop();
    }
}

/// With a token configured, every endpoint but `/health` needs it (records, part images and
/// KPIs are factory data); `/metrics` too unless `open_metrics` says otherwise.
fn router(state: Shared, max_upload_bytes: usize) -> Router {
    let uploads = Router::new()
        .route("/predict", post(inspect::predict))
        .layer(DefaultBodyLimit::max(max_upload_bytes));
    let mut guarded = Router::new()
        .route("/status", get(status))
        .route("/spc", get(spc))
        .route("/kpis", get(kpis::kpis))
        .route("/verdicts", get(records::list))
        .route("/verdicts/{id}", get(records::get_one))
        .route("/verdicts/{id}/image", get(records::image))
        .route("/trigger", post(inspect::trigger))
        .route("/verdicts/{id}/review", post(records::review))
        .route("/review-requests", get(learning::review_requests))
        .route("/candidates", get(learning::candidates))
        .route("/candidates/{id}/promote", post(learning::promote))
        .merge(uploads);
    let mut open = Router::new().route("/health", get(health));
    if state.open_metrics {
        open = open.route("/metrics", get(metrics));
    } else {
        guarded = guarded.route("/metrics", get(metrics));
    }
    let guarded = guarded.route_layer(middleware::from_fn_with_state(
        Arc::clone(&state),
        require_token,
    ));
    open.merge(guarded)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method (see the README's API table)",
            )
        })
        .with_state(state)
}

/// `Authorization: Bearer <token>` (the scheme in any case), when a token is configured.
async fn require_token(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let Some(expected) = state.token.as_deref() else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        next.run(request).await
    } else {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this endpoint needs Authorization: Bearer <token>",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        response
    }
}

/// The credentials of a `Bearer` authorization; the scheme is case-insensitive (RFC 9110).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Frames in a row the model may fail before the station reports itself unhealthy: one
/// odd frame is logged, a model that fails every frame is a station that judges nothing.
const MODEL_FAILURES_UNHEALTHY: u64 = 3;

/// 200 while the station can inspect and keep what it judges; 503 with the reasons while its
/// source is lost, its model or store fails, or its broker is away, so a monitor alarms.
async fn health(State(state): State<Shared>) -> Response {
    let snapshot = state.handles.status.snapshot();
    let source = snapshot.source;
    let store = state.store.failing();
    let mut reasons = Vec::new();
    if let SourceState::Reconnecting { error, .. } = &source {
        reasons.push(format!("source: {error}"));
    }
    if let Some(error) = &store {
        reasons.push(format!("store: verdicts are not being kept: {error}"));
    }
    let model_failing = snapshot
        .model_failing
        .as_ref()
        .filter(|(frames, _)| *frames >= MODEL_FAILURES_UNHEALTHY);
    if let Some((frames, error)) = model_failing {
        reasons.push(format!(
            "model: the last {frames} frames could not be inspected: {error}"
        ));
    }
    // Failing only once a connection attempt failed: connecting at start is no fault.
    if let Some(mqtt) = &state.handles.mqtt
        && !mqtt.connected()
        && mqtt.connection_errors() > 0
    {
        reasons.push(
            "mqtt: the broker is unreachable; verdicts wait in the store until it is back".into(),
        );
    }
    let healthy = reasons.is_empty();
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "reasons": reasons,
        "source": source,
        "store": if store.is_some() { "failing" } else { "ok" },
        "model": if model_failing.is_some() { "failing" } else { "ok" },
    });
    (code, Json(body)).into_response()
}

async fn status(State(state): State<Shared>) -> Result<Json<serde_json::Value>, ApiError> {
    let store = Arc::clone(&state.store);
    let records = tokio::task::spawn_blocking(move || store.count()).await??;
    let snapshot = state.handles.status.snapshot();
    let model = state.handles.models.current();
    let manifest = model.manifest();
    Ok(Json(json!({
        "station": state.handles.name,
        "model": {
            "name": manifest.name,
            "version": manifest.version,
            "fingerprint": model.fingerprint(),
            "labels": manifest.labels,
        },
        "shadow": state.handles.shadow.current().map(|s| s.snapshot()),
        "rollout": state.handles.rollout.get(),
        "uptime_s": state.started.elapsed().as_secs(),
        "mode": if state.handles.triggers.is_some() { "triggered" } else { "free_run" },
        "source": snapshot.source,
        "finished": state.finished.load(Ordering::Relaxed),
        "frames_in": snapshot.frames_in,
        "frames_dropped": snapshot.frames_dropped,
        "unreadable": snapshot.unreadable,
        "triggers": snapshot.triggers,
        "triggers_missed": snapshot.triggers_missed,
        "inspected": snapshot.inspected(),
        "verdicts": snapshot.verdicts,
        "uncertain": snapshot.uncertain,
        "model_failing": snapshot.model_failing.map(|(frames, error)| json!({"frames": frames, "error": error})),
        "store": {
            "records": records,
            "image_bytes": state.store.image_bytes(),
            "image_errors": state.store.image_errors(),
        },
        "mqtt": state.handles.mqtt.as_ref().map(|link| json!({
            "connected": link.connected(),
            "published": link.published(),
            "connection_errors": link.connection_errors(),
        })),
    })))
}

/// The control charts (centre line, limits, points, signals) and the latest alarms.
async fn spc(State(state): State<Shared>) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(watch) = state.spc.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no control charts: add an [spc] section",
        ));
    };
    let store = Arc::clone(&state.store);
    let (charts, alarms) = tokio::task::spawn_blocking(move || {
        Ok::<_, inspecta_pipeline::store::StoreError>((
            watch.charts(&store)?,
            store.recent_alarms(20)?,
        ))
    })
    .await??;
    Ok(Json(json!({ "charts": charts, "alarms": alarms })))
}

async fn metrics(State(state): State<Shared>) -> Result<Response, ApiError> {
    let text = state.metrics.render().map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
