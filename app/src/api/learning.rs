//! The learning loop over HTTP: the parts the station asks its operators to review, and the
//! candidate models trained from those reviews, which an engineer promotes.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use inspecta_pipeline::learning::{self, Policy, ReviewRequest};
use serde::Deserialize;
use serde_json::json;

use super::Shared;
use super::error::ApiError;
use crate::error_text::describe;
use crate::service::candidates::{Candidate, Candidates, PromoteError, Refusal};

const DEFAULT_REQUESTS: usize = 20;
const MAX_REQUESTS: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    /// The station's `[learning] policy` unless given.
    policy: Option<Policy>,
    limit: Option<usize>,
}

/// `GET /review-requests?policy=&limit=`: unreviewed parts in the order the policy asks
/// for them; review each with `POST /verdicts/{id}/review`.
pub async fn review_requests(
    State(state): State<Shared>,
    query: Result<Query<RequestsQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(ApiError::rejected)?;
    let policy = query.policy.unwrap_or(state.learning.policy);
    let limit = query
        .limit
        .unwrap_or(DEFAULT_REQUESTS)
        .clamp(1, MAX_REQUESTS);
    let store = Arc::clone(&state.store);
    let items: Vec<ReviewRequest> =
        tokio::task::spawn_blocking(move || learning::review_requests(&store, policy, limit))
            .await??;
    Ok(Json(json!({ "policy": policy, "items": items })))
}

/// `GET /candidates`: candidate models with their comparison, shadow figures and reviews.
pub async fn candidates(State(state): State<Shared>) -> Result<Json<Vec<Candidate>>, ApiError> {
    let candidates = folder(&state)?;
    let list = tokio::task::spawn_blocking(move || candidates.list())
        .await?
        .map_err(|e| ApiError::internal(describe(&e)))?;
    Ok(Json(list))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteBody {
    /// Who promotes it, for the settings log.
    who: String,
    /// Promote without a comparison, or against one that found it worse.
    #[serde(default)]
    force: bool,
}

/// `POST /candidates/{id}/promote` with `{"who": "...", "force": false}`: the candidate
/// judges from the next part on; 409 when its comparison does not support it.
pub async fn promote(
    State(state): State<Shared>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<PromoteBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Path(id) = id.map_err(ApiError::rejected)?;
    let Json(body) = body.map_err(ApiError::rejected)?;
    if body.who.trim().is_empty() {
        return Err(ApiError::bad_request(
            "say who promotes it: {\"who\": \"name\"}",
        ));
    }
    let candidates = folder(&state)?;
    let summary =
        tokio::task::spawn_blocking(move || candidates.promote(&id, body.who.trim(), body.force))
            .await?
            .map_err(|e| match e {
                PromoteError::Refusal(r @ Refusal::Unknown(_)) => {
                    ApiError::new(StatusCode::NOT_FOUND, r.to_string())
                }
                PromoteError::Refusal(r) => ApiError::new(StatusCode::CONFLICT, r.to_string()),
                PromoteError::Failed(e) => ApiError::internal(describe(&e)),
            })?;
    let model = state.handles.models.current();
    Ok(Json(json!({
        "summary": summary,
        "model": {
            "name": model.manifest().name,
            "version": model.manifest().version,
            "fingerprint": model.fingerprint(),
        },
    })))
}

fn folder(state: &Shared) -> Result<Candidates, ApiError> {
    state.candidates.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this station has no candidates folder ([learning] candidates)",
        )
    })
}
