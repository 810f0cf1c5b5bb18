//! The marker service's HTTP error: a status and a reason; internals are
//! logged, not shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use stream_markers::{StoreError, ValidationError};
use tracing::warn;

/// Errors of the marker service.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error("not found")]
    NotFound,
    /// Malformed request (JSON syntax, query parameters).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but refused (times, sizes).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{0}")]
    TooMany(String),
    #[error("too many event streams open")]
    Busy,
    #[error("store: {0}")]
    Store(StoreError),
    #[error("catalogue: {0}")]
    Catalog(#[from] stream_catalog::CatalogError),
}

impl From<StoreError> for MarkerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooMany { .. } => MarkerError::TooMany(e.to_string()),
            e => MarkerError::Store(e),
        }
    }
}

impl IntoResponse for MarkerError {
    fn into_response(self) -> Response {
        let status = match &self {
            MarkerError::NotFound => StatusCode::NOT_FOUND,
            MarkerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            MarkerError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            MarkerError::TooMany(_) => StatusCode::PAYLOAD_TOO_LARGE,
            MarkerError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            MarkerError::Store(_) | MarkerError::Catalog(_) => {
                warn!(error = %self, "marker backend error");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({ "error": "storage unavailable" })),
                )
                    .into_response();
            }
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}
