//! Inspections asked for over HTTP: judge an uploaded image, or trigger the camera.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest as _, Multipart, Query, Request, State};
use axum::http::{StatusCode, header};
use inspecta_pipeline::station::{TriggerError, generated_part_id};
use inspecta_pipeline::store::{NewRecord, Record};
use inspecta_vision::frame::{Frame, FrameError};
use serde::Deserialize;

use super::error::ApiError;
use super::{ApiState, Shared};
use crate::service::sinks::Line;

/// Beyond the frame timeout, how long a triggered part may take to be judged and stored.
const TRIGGER_SLACK: Duration = Duration::from_secs(10);
/// An upload refused for want of a free inference slot may come back after this long:
/// one inference takes tens of milliseconds.
const RETRY_PREDICT_S: u32 = 1;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartQuery {
    part_id: Option<String>,
}

/// `POST /predict[?part_id=]`: the image as the raw body (any image content type) or as a
/// multipart form field. The verdict is stored like any other part and returned.
pub async fn predict(
    State(state): State<Shared>,
    query: Result<Query<PartQuery>, QueryRejection>,
    request: Request,
) -> Result<(StatusCode, Json<Record>), ApiError> {
    let Query(query) = query.map_err(ApiError::rejected)?;
    // Taken before the body is read, so refused uploads cost neither memory nor a core; held
    // by the worker, so a client that hangs up does not free it before the inference ends.
    let slot = Arc::clone(&state.predictions)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::busy(
                "every inference slot is taken ([api] max_predictions): try again shortly",
                RETRY_PREDICT_S,
            )
        })?;
    let bytes = upload(request, &state).await?;
    let worker = Arc::clone(&state);
    let record = tokio::task::spawn_blocking(move || {
        let judged = judge(&worker, &bytes, query.part_id.as_deref());
        drop(slot);
        judged
    })
    .await??;
    state.metrics.predicted();
    Ok((StatusCode::CREATED, Json(record)))
}

/// The image bytes of a request: a multipart form's first file field, or the whole body.
async fn upload(request: Request, state: &Shared) -> Result<Bytes, ApiError> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let bytes = if multipart {
        let mut form = Multipart::from_request(request, state)
            .await
            .map_err(ApiError::rejected)?;
        loop {
            let field = form
                .next_field()
                .await
                .map_err(ApiError::rejected)?
                .ok_or_else(|| ApiError::bad_request("the form holds no image file field"))?;
            if field.file_name().is_some() || field.name() == Some("image") {
                break field.bytes().await.map_err(ApiError::rejected)?;
            }
        }
    } else {
        Bytes::from_request(request, state)
            .await
            .map_err(ApiError::rejected)?
    };
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "no image: send it as the request body or a multipart file field",
        ));
    }
    Ok(bytes)
}

fn judge(state: &ApiState, bytes: &[u8], part_id: Option<&str>) -> Result<Record, ApiError> {
    let frame = Frame::decode_limited(bytes, state.max_image_pixels).map_err(|e| match e {
        FrameError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        e => ApiError::bad_request(e.to_string()),
    })?;
    let model = state.handles.models.current();
    let pooled = state
        .sessions
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop();
    // Sessions of a model that has since been switched out are dropped, not reused.
    let mut session = match pooled {
        Some(session) if Arc::ptr_eq(session.model(), &model) => session,
        _ => model.session().map_err(ApiError::internal)?,
    };
    let inspection = session.inspect(&frame);
    state
        .sessions
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(session);
    let inspection = inspection.map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Committed and returned in one step: once the record is kept, nothing can turn the
    // answer into an error (a retry would store the part twice).
    let record = state.store.insert_returning(&NewRecord {
        station: &state.handles.name,
        part_id,
        sequence: None,
        origin: Some("api"),
        captured_at: SystemTime::now(),
        model: model.manifest(),
        inspection: &inspection,
        latency: None,
        frame: Some(&frame),
    })?;
    tracing::info!(
        id = record.id,
        part_id,
        verdict = inspection.verdict.name(),
        "verdict (POST /predict)"
    );
    if let Some(file) = &state.jsonl {
        file.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(&Line::stored(&record, &inspection));
    }
    Ok(record)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    part_id: Option<String>,
}

/// `POST /trigger` with an optional `{"part_id": "..."}`: the camera's next frame is judged
/// and the stored record returned once it is committed.
pub async fn trigger(
    State(state): State<Shared>,
    body: Result<Json<TriggerBody>, JsonRejection>,
) -> Result<Json<Record>, ApiError> {
    let body = match body {
        Ok(Json(body)) => body,
        // No body at all is a trigger without a part id.
        Err(JsonRejection::MissingJsonContentType(_)) => TriggerBody::default(),
        Err(rejection) => return Err(ApiError::rejected(rejection)),
    };
    let frame_timeout = state.handles.frame_timeout;
    let triggers = state.handles.triggers.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "the station is not in triggered mode: set [trigger] enabled = true",
        )
    })?;
    let part_id = body
        .part_id
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| generated_part_id(&state.handles.name));
    let waiting = state.waiters.wait_for(&part_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("part {part_id:?} is already being inspected"),
        )
    })?;
    if let Err(e) = triggers.fire(part_id.clone()) {
        state.waiters.forget(&part_id);
        let status = match e {
            TriggerError::Busy => StatusCode::TOO_MANY_REQUESTS,
            TriggerError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        };
        return Err(ApiError::new(status, e.to_string()));
    }
    match tokio::time::timeout(frame_timeout + TRIGGER_SLACK, waiting).await {
        Ok(Ok(record)) => Ok(Json(record)),
        Ok(Err(_)) | Err(_) => {
            state.waiters.forget(&part_id);
            Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "part {part_id:?} got no verdict: no frame from the source within {} ms",
                    frame_timeout.as_millis()
                ),
            ))
        }
    }
}
