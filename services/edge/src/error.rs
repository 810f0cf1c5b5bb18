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
    /// Not available yet (a blocked LL-HLS request that timed out).
    Unavailable(String),
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
            EdgeError::Unavailable(r) => (StatusCode::SERVICE_UNAVAILABLE, r),
            EdgeError::Upstream(e) => {
                warn!(error = %e, "control plane error");
                (StatusCode::BAD_GATEWAY, "control plane unavailable".into())
            }
        };
        (status, Json(json!({ "error": reason }))).into_response()
    }
}
