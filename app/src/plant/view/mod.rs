//! `inspecta fleet serve`: the plant in a browser. Sites, lines and stations with their
//! live state, yield and defect Pareto per shift, alarms, and each part down to its image,
//! which is fetched from its station's API with the station token (the central store keeps
//! no images), and each station's model rollouts, which an engineer approves here (sent to
//! the station over `[mqtt]`). Every page but sign-in and health needs a signed-in person.

mod auth;
mod chart;
mod image;
mod pages;
mod store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use inspecta_fleet::config::FleetConfig;
use serde::Deserialize;

use crate::api::serve::{Limits, Server};
use crate::plant::rollout::StationPath;
use crate::plant::rollout::broker::Commander;
use crate::users::Users;
use auth::{Sessions, SignedIn};
use store::{Scope, Store, StoreError};

/// Where the stations' API token comes from when `[view] station_token` is not set.
const STATION_TOKEN_ENV: &str = "INSPECTA_STATION_TOKEN";
/// Where `[view.commander]`'s password comes from.
const VIEW_PASSWORD_ENV: &str = "INSPECTA_VIEW_MQTT_PASSWORD";
/// A query slower than this is an error page: the view must not hang on a loaded store.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Alarms listed on the alarms page, and on a level's page.
const ALARMS_PAGE: i64 = 200;
const ALARMS_LEVEL: i64 = 20;
/// Parts listed on a station's page.
const RECENT_PARTS: i64 = 50;
/// Rollouts listed on a station's page.
const ROLLOUTS: i64 = 10;
/// How long an approval waits for the station's answer before the page says it has none.
const APPROVAL_REPLY: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct ViewState {
    store: Store,
    users: Arc<Users>,
    sessions: Sessions,
    stations: image::Stations,
    /// Approvals go to the stations through the broker, when fleet.toml has `[mqtt]`.
    commander: Option<Mutex<Commander>>,
}

type Shared = Arc<ViewState>;

/// Starts the plant view from `fleet.toml`'s `[postgres]` and `[view]`.
pub fn start(config: &FleetConfig) -> anyhow::Result<Server> {
    let view = config
        .view
        .as_ref()
        .context("the plant view needs [view] in the fleet config (listen, users)")?;
    let users = Users::load(&view.users)?;
    if users.users.is_empty() {
        anyhow::bail!(
            "{} lists nobody who could sign in: add someone with `inspecta users add`",
            view.users.display()
        );
    }
    let token = std::env::var(STATION_TOKEN_ENV)
        .ok()
        .or_else(|| view.station_token.clone())
        .filter(|t| !t.trim().is_empty());
    if token.is_none() {
        tracing::warn!(
            "no station token ([view] station_token or {STATION_TOKEN_ENV}): part images only from stations that serve without one"
        );
    }
    let state = Arc::new(ViewState {
        store: Store::new(config.postgres.url_with_password(), QUERY_TIMEOUT),
        users: Arc::new(users),
        sessions: Sessions::new(
            Duration::from_secs(view.session_hours.max(1) * 3600),
            view.secure_cookie,
        ),
        stations: image::Stations::new(token)?,
        commander: approvals(config)?,
    });
    let server = Server::start("plant-view", view.listen, router(state), Limits::scrapes())?;
    tracing::info!(address = %server.address, "plant view listening");
    Ok(server)
}

/// `[view.commander]` on `[mqtt]`'s broker, when both are there.
fn approvals(config: &FleetConfig) -> anyhow::Result<Option<Mutex<Commander>>> {
    let account = config.view.as_ref().and_then(|v| v.commander.as_ref());
    match (&config.mqtt, account) {
        (Some(broker), Some(account)) => {
            let commander =
                Commander::start(broker, account, VIEW_PASSWORD_ENV, &["command/reply"])?;
            Ok(Some(Mutex::new(commander)))
        }
        (None, Some(_)) => anyhow::bail!("[view.commander] needs [mqtt], the broker it is on"),
        _ => {
            tracing::info!("no [view.commander]: the view shows rollouts, approves none");
            Ok(None)
        }
    }
}

fn router(state: Shared) -> Router {
    let guarded = Router::new()
        .route("/", get(plant))
        .route("/alarms", get(alarms))
        .route("/sites/{site}", get(site))
        .route("/sites/{site}/{line}", get(line))
        .route("/sites/{site}/{line}/{station}", get(station))
        .route(
            "/sites/{site}/{line}/{station}/rollouts/{rollout}/approve",
            post(approve),
        )
        .route("/sites/{site}/{line}/{station}/parts/{id}", get(part))
        .route(
            "/sites/{site}/{line}/{station}/parts/{id}/image",
            get(part_image),
        )
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/login", get(auth::form).post(auth::sign_in))
        .route("/logout", post(auth::sign_out))
        .merge(guarded)
        .with_state(state)
}

/// What a page could not show, as a page that says why.
#[derive(Debug)]
enum PageError {
    Store(StoreError),
    NotFound(String),
    BadRequest(String),
    Station(String),
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            Self::Store(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The central store is not answering",
                e.to_string(),
            ),
            Self::NotFound(what) => (StatusCode::NOT_FOUND, "Not found", what),
            Self::BadRequest(why) => (StatusCode::BAD_REQUEST, "Bad request", why),
            Self::Station(why) => (StatusCode::BAD_GATEWAY, "The station did not answer", why),
        };
        tracing::warn!(%status, "plant view: {message}");
        (
            status,
            Html(pages::error(None, title, &message).into_string()),
        )
            .into_response()
    }
}

type Page = Result<Html<String>, PageError>;

#[derive(Debug, Deserialize)]
struct ShiftQuery {
    shift: Option<String>,
}

impl ShiftQuery {
    /// The shift asked for, as the store writes shift starts; None for the current one.
    fn start(&self) -> Result<Option<String>, PageError> {
        let Some(text) = self.shift.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let at: jiff::Timestamp = text.parse().map_err(|e| {
            PageError::BadRequest(format!("shift {text:?} is no RFC 3339 time: {e}"))
        })?;
        Ok(Some(at.to_string()))
    }
}

async fn health(State(state): State<Shared>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// A plant, site or line page: the levels below it in the shift asked for.
async fn level_page(state: &ViewState, who: &str, path: Vec<&str>, shift: &ShiftQuery) -> Page {
    let shift = shift.start()?;
    let scope = Scope {
        site: path.first().map(|s| (*s).to_owned()),
        line: path.get(1).map(|s| (*s).to_owned()),
        station: None,
    };
    let store = &state.store;
    let shift_ref = shift.as_deref();
    let (rows, yields, pareto, alarms) = tokio::try_join!(
        store.summaries(&scope, shift_ref),
        store.yield_by_shift(&scope),
        store.pareto(&scope, shift_ref),
        store.alarms(&scope, ALARMS_LEVEL),
    )?;
    if !path.is_empty() && rows.is_empty() {
        return Err(PageError::NotFound(format!(
            "nothing is known of {}",
            path.join(" / ")
        )));
    }
    let presence = if scope.line.is_some() {
        store.presence(&scope).await?
    } else {
        Vec::new()
    };
    let (title, rows_are) = match path.as_slice() {
        [] => ("Plant".to_owned(), "Site"),
        [site] => (format!("Site {site}"), "Line"),
        [site, line, ..] => (format!("{site} / {line}"), "Station"),
    };
    Ok(Html(
        pages::level(&pages::Level {
            who,
            title,
            path,
            rows_are,
            shift: shift_ref,
            rows,
            presence,
            yields,
            pareto,
            alarms,
        })
        .into_string(),
    ))
}

async fn plant(
    State(state): State<Shared>,
    Extension(SignedIn { name: who, .. }): Extension<SignedIn>,
    Query(shift): Query<ShiftQuery>,
) -> Page {
    level_page(&state, &who, Vec::new(), &shift).await
}

async fn site(
    State(state): State<Shared>,
    Extension(SignedIn { name: who, .. }): Extension<SignedIn>,
    Path(site): Path<String>,
    Query(shift): Query<ShiftQuery>,
) -> Page {
    level_page(&state, &who, vec![&site], &shift).await
}

async fn line(
    State(state): State<Shared>,
    Extension(SignedIn { name: who, .. }): Extension<SignedIn>,
    Path((site, line)): Path<(String, String)>,
    Query(shift): Query<ShiftQuery>,
) -> Page {
    level_page(&state, &who, vec![&site, &line], &shift).await
}

fn station_scope(site: &str, line: &str, station: &str) -> Scope {
    Scope {
        site: Some(site.to_owned()),
        line: Some(line.to_owned()),
        station: Some(station.to_owned()),
    }
}

#[derive(Debug, Deserialize)]
struct StationQuery {
    /// What became of an approval this page sent: `accepted` or `unanswered`.
    approval: Option<String>,
}

async fn station(
    State(state): State<Shared>,
    Extension(signed): Extension<SignedIn>,
    Path((site, line, station)): Path<(String, String, String)>,
    Query(query): Query<StationQuery>,
) -> Page {
    let scope = station_scope(&site, &line, &station);
    let store = &state.store;
    let (summaries, presence, yields, parts, alarms, rollouts) = tokio::try_join!(
        store.summaries(&scope, None),
        store.presence(&scope),
        store.yield_by_shift(&scope),
        store.recent_parts(&scope, RECENT_PARTS),
        store.alarms(&scope, ALARMS_LEVEL),
        store.rollouts(&scope, ROLLOUTS),
    )?;
    if presence.is_empty() && parts.is_empty() {
        return Err(PageError::NotFound(format!(
            "no station {site} / {line} / {station} has reported"
        )));
    }
    let note = match query.approval.as_deref() {
        Some("accepted") => Some("The station took the approval: the model takes charge now."),
        Some("unanswered") => Some("The approval was sent; the station has not answered yet."),
        _ => None,
    };
    let may_approve = signed.engineer && state.commander.is_some();
    Ok(Html(
        pages::station(&pages::StationPage {
            who: &signed.name,
            path: [&site, &line, &station],
            summary: summaries.into_iter().next(),
            presence: presence.into_iter().next(),
            yields,
            parts,
            alarms,
            rollouts,
            approve: may_approve.then_some(signed.token.as_str()),
            note,
        })
        .into_string(),
    ))
}

#[derive(Debug, Deserialize)]
struct ApprovalForm {
    token: String,
}

/// An engineer approves a waiting rollout: `approve_rollout` to the station, then back to
/// its page with what the station answered.
async fn approve(
    State(state): State<Shared>,
    Extension(signed): Extension<SignedIn>,
    Path((site, line, station, rollout)): Path<(String, String, String, String)>,
    Form(form): Form<ApprovalForm>,
) -> Response {
    if !signed.sent(&form.token) {
        return (
            StatusCode::FORBIDDEN,
            "this form is not from your session: reload the page",
        )
            .into_response();
    }
    if !signed.engineer {
        return (StatusCode::FORBIDDEN, "only engineers approve rollouts").into_response();
    }
    if state.commander.is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the plant view has no [mqtt] to reach the stations",
        )
            .into_response();
    }
    let target = StationPath {
        site,
        line,
        station,
    };
    let page = pages::href(&["sites", &target.site, &target.line, &target.station]);
    let request_id = format!(
        "view-{}-{}",
        signed.name,
        jiff::Timestamp::now().as_millisecond()
    );
    let body = serde_json::json!({
        "command": "approve_rollout", "rollout": rollout, "who": signed.name, "request_id": request_id,
    });
    tracing::warn!(user = %signed.name, station = %target, %rollout, "plant view: rollout approved");
    let shared = Arc::clone(&state);
    let sent = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<serde_json::Value>> {
        let Some(commander) = &shared.commander else {
            return Ok(None);
        };
        let commander = commander
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        commander.command(&target, &body)?;
        Ok(commander.reply_to(&target, &request_id, APPROVAL_REPLY))
    })
    .await;
    match sent {
        Ok(Ok(Some(reply))) if reply["status"] == "accepted" => {
            Redirect::to(&format!("{page}?approval=accepted#rollouts")).into_response()
        }
        Ok(Ok(Some(reply))) => PageError::Station(format!(
            "the station refused the approval: {}",
            reply["reason"].as_str().unwrap_or("no reason given")
        ))
        .into_response(),
        Ok(Ok(None)) => {
            Redirect::to(&format!("{page}?approval=unanswered#rollouts")).into_response()
        }
        Ok(Err(e)) => {
            PageError::Station(format!("cannot send the approval: {e:#}")).into_response()
        }
        Err(e) => PageError::Station(format!("cannot send the approval: {e}")).into_response(),
    }
}

async fn part(
    State(state): State<Shared>,
    Extension(SignedIn { name: who, .. }): Extension<SignedIn>,
    Path((site, line, station, id)): Path<(String, String, String, i64)>,
) -> Page {
    let scope = station_scope(&site, &line, &station);
    let record = state.store.part(&scope, id).await?.ok_or_else(|| {
        PageError::NotFound(format!("no part {id} from {site} / {line} / {station}"))
    })?;
    Ok(Html(
        pages::part(&who, [&site, &line, &station], &record).into_string(),
    ))
}

async fn part_image(
    State(state): State<Shared>,
    Path((site, line, station, id)): Path<(String, String, String, i64)>,
) -> Result<Response, PageError> {
    let scope = station_scope(&site, &line, &station);
    let api = state.store.station_api(&scope).await?.ok_or_else(|| {
        PageError::NotFound(format!(
            "{site} / {line} / {station} has not announced its API ([mqtt] api_url at the station)"
        ))
    })?;
    state
        .stations
        .image(&api, id)
        .await
        .map_err(|e| PageError::Station(format!("{station}: {e}")))
}

async fn alarms(
    State(state): State<Shared>,
    Extension(SignedIn { name: who, .. }): Extension<SignedIn>,
) -> Page {
    let alarms = state.store.alarms(&Scope::default(), ALARMS_PAGE).await?;
    Ok(Html(pages::alarms(&who, &alarms).into_string()))
}
