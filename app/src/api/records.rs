//! The record store over HTTP: browse verdicts, fetch a part's image, review a verdict.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use inspecta_pipeline::store::{self, NewReview, Page, Record, Review, ReviewAction};

use super::Shared;
use super::error::ApiError;

/// `GET /verdicts?verdict=&part_id=&since=&until=&reviewed=&before=&limit=`
pub async fn list(
    State(state): State<Shared>,
    query: Result<Query<store::Query>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(query) = query.map_err(ApiError::rejected)?;
    let store = Arc::clone(&state.store);
    let page = tokio::task::spawn_blocking(move || store.list(&query)).await??;
    Ok(Json(page))
}

pub async fn get_one(
    State(state): State<Shared>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Record>, ApiError> {
    let Path(id) = id.map_err(ApiError::rejected)?;
    let store = Arc::clone(&state.store);
    let record = tokio::task::spawn_blocking(move || store.get(id)).await??;
    Ok(Json(record))
}

/// The JPEG kept with a record: defects and uncertain parts, until retention removes it.
pub async fn image(
    State(state): State<Shared>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(ApiError::rejected)?;
    let store = Arc::clone(&state.store);
    let path = tokio::task::spawn_blocking(move || store.image_path(id))
        .await??
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no image kept for record {id} (see [store] images; retention may have \
                     removed it)"
                ),
            )
        })?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response())
}

/// `POST /verdicts/{id}/review` with `{"reviewer", "action": "confirm"|"override",
/// "label", "reason"}`.
pub async fn review(
    State(state): State<Shared>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<NewReview>, JsonRejection>,
) -> Result<(StatusCode, Json<Review>), ApiError> {
    let Path(id) = id.map_err(ApiError::rejected)?;
    let Json(mut review) = body.map_err(ApiError::rejected)?;
    if let Some(label) = review.label.take() {
        review.label = Some(known_label(&state, &label)?);
    }
    let store = Arc::clone(&state.store);
    let action = review.action;
    let review = tokio::task::spawn_blocking(move || store.review(id, &review)).await??;
    state.metrics.reviewed(match action {
        ReviewAction::Confirm => "confirm",
        ReviewAction::Override => "override",
    });
    tracing::info!(id, reviewer = %review.reviewer, before = %review.before, after = %review.after, "review");
    Ok((StatusCode::CREATED, Json(review)))
}

/// Reviews speak the verdict's language: `good` or one of the model's defect classes. A
/// model's own good label (`ok`, say) is accepted and stored as `good`.
fn known_label(state: &Shared, label: &str) -> Result<String, ApiError> {
    let model = state.handles.models.current();
    let manifest = model.manifest();
    let label = label.trim();
    if label == "good" || manifest.is_good(label) {
        return Ok("good".into());
    }
    if manifest.labels.iter().any(|l| l == label) {
        return Ok(label.to_owned());
    }
    let defects: Vec<&str> = manifest
        .labels
        .iter()
        .filter(|l| !manifest.is_good(l))
        .map(String::as_str)
        .collect();
    Err(ApiError::bad_request(format!(
        "unknown label {label:?}: use \"good\" or one of {defects:?}"
    )))
}
