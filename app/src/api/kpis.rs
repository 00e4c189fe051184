//! `GET /kpis`: the plant's quality figures over a span, as a whole and hour by hour.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use inspecta_pipeline::store::Kpis;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::error::ApiError;

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
    let since = span
        .since
        .unwrap_or_else(|| until - jiff::SignedDuration::from_hours(24));
    if since > until {
        return Err(ApiError::bad_request("`since` is after `until`"));
    }
    let store = Arc::clone(&state.store);
    let (total, hours) =
        tokio::task::spawn_blocking(move || store.kpis_by_hour(since, until)).await??;
    let hours: Vec<Value> = hours
        .iter()
        .map(|(start, k)| {
            let mut hour = kpi_json(k);
            hour["hour"] = json!(start);
            hour
        })
        .collect();
    Ok(Json(json!({
        "since": since,
        "until": until,
        "total": kpi_json(&total),
        "hours": hours,
    })))
}

/// Counts and the rates made of them; a rate with nothing to divide by is null.
pub fn kpi_json(k: &Kpis) -> Value {
    json!({
        "parts": k.parts,
        "good": k.good,
        "defects": k.defects.iter().map(|(class, n)| json!({"class": class, "parts": n})).collect::<Vec<_>>(),
        "uncertain": k.uncertain,
        "awaiting_review": k.awaiting_review,
        "reviewed": k.reviewed,
        "overridden": k.overridden,
        "reviewed_defects": k.reviewed_defects,
        "false_rejects": k.false_rejects,
        "reviewed_good": k.reviewed_good,
        "escapes_found": k.escapes_found,
        "rates": {
            "yield": k.first_pass_yield(),
            "uncertain": k.uncertain_rate(),
            "override": k.override_rate(),
            "false_reject": k.false_reject_rate(),
            "escape_estimate": k.escape_estimate(),
        },
        "parts_per_minute": k.parts_per_minute(),
    })
}
