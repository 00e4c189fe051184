//! `GET /kpis`: the plant's quality figures over a span, as a whole and hour by hour.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::error::ApiError;

/// The longest span one request may fold: a year of a fast line is millions of records,
/// read in one query on the store's read connection.
const MAX_SPAN_DAYS: i64 = 366;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span {
    /// RFC 3339; default: 24 hours before `until`.
    since: Option<jiff::Timestamp>,
    /// RFC 3339; default: now.
    until: Option<jiff::Timestamp>,
}

pub async fn kpis(
    State(state): State<Shared>,
    span: Result<Query<Span>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(span) = span.map_err(ApiError::rejected)?;
    let until = span.until.unwrap_or_else(jiff::Timestamp::now);
    let since = match span.since {
        Some(since) => since,
        // Near the ends of the calendar there is no day before `until`.
        None => until
            .checked_sub(jiff::SignedDuration::from_hours(24))
            .map_err(|_| ApiError::bad_request("`until` is too early to count a day back from"))?,
    };
    if since > until {
        return Err(ApiError::bad_request("`since` is after `until`"));
    }
    if until.duration_since(since) > jiff::SignedDuration::from_hours(24 * MAX_SPAN_DAYS) {
        return Err(ApiError::bad_request(format!(
            "the span is longer than {MAX_SPAN_DAYS} days: ask for a year at a time"
        )));
    }
    let store = Arc::clone(&state.store);
    let (total, hours) =
        tokio::task::spawn_blocking(move || store.kpis_by_hour(since, until)).await??;
    let hours: Vec<Value> = hours
        .iter()
        .map(|(start, k)| {
            let mut hour = k.report();
            hour["hour"] = json!(start);
            hour
        })
        .collect();
    Ok(Json(json!({
        "since": since,
        "until": until,
        "total": total.report(),
        "hours": hours,
    })))
}
