//! The edge's HTTP error: a status and a short reason; details are logged.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::warn;

#[derive(Debug)]
pub enum EdgeError {
    NotFound,
    BadRequest(String),
    /// The media store failed.
    Store(String),
    /// The control plane failed or is unreachable.
    Upstream(String),
    /// The resource is not in a state that allows it (409).
    Conflict(String),
    /// A cap is reached (429).
    TooManyRequests(String),
    /// A dependency behind the control plane is unavailable (503).
    Unavailable(String),
    /// The control plane ran out of time (504).
    Timeout(String),
}

impl IntoResponse for EdgeError {
    fn into_response(self) -> Response {
        let (status, reason) = match self {
            EdgeError::NotFound => (StatusCode::NOT_FOUND, "not found".to_string()),
            EdgeError::BadRequest(r) => (StatusCode::BAD_REQUEST, r),
            EdgeError::Store(e) => {
                warn!(error = %e, "media store error");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "media store unavailable".into(),
                )
            }
            EdgeError::Conflict(r) => (StatusCode::CONFLICT, r),
            EdgeError::TooManyRequests(r) => (StatusCode::TOO_MANY_REQUESTS, r),
            EdgeError::Unavailable(r) => (StatusCode::SERVICE_UNAVAILABLE, r),
            EdgeError::Timeout(r) => (StatusCode::GATEWAY_TIMEOUT, r),
            EdgeError::Upstream(e) => {
                warn!(error = %e, "control plane error");
                (StatusCode::BAD_GATEWAY, "control plane unavailable".into())
            }
        };
        (status, Json(json!({ "error": reason }))).into_response()
    }
}
