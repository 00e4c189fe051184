//! Every API error is JSON `{"error": "..."}` with a status code that says whose fault it
//! is, so a PLC integrator or a script can tell a bad image from a broken station.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use inspecta_pipeline::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// Seconds after which the client may try again (`Retry-After`), for refusals that pass.
    retry_after_s: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// 503 with `Retry-After`: the station is busy now, not broken.
    pub fn busy(message: impl Into<String>, retry_after_s: u32) -> Self {
        Self {
            retry_after_s: Some(retry_after_s),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// An extractor's rejection (bad JSON, unknown query key, body too large) keeps its
    /// status and message.
    pub fn rejected(rejection: impl IntoResponse + std::fmt::Display) -> Self {
        let message = rejection.to_string();
        Self::new(rejection.into_response().status(), message)
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!("API: {message}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, error.to_string()),
            StoreError::Invalid(message) => Self::bad_request(message),
            other => Self::internal(other),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::internal(format!("worker failed: {error}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}
