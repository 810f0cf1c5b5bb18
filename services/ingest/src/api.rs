//! The ingest HTTP API.
//!
//! * `POST /v1/videos` — a new video, from one of:
//!   - the raw request body (`Content-Type: video/*` or
//!     `application/octet-stream`), title from `?title=`;
//!   - `multipart/form-data` with a `file` field (and optional `title`);
//!   - `application/json` `{"url": "https://…", "title": "…"}` (import).
//!
//!   Bodies stream to the media store (never whole in memory) under the
//!   size cap. Answers `202 {"id", "status": "queued"}` at once.
//! * `GET /v1/videos/{id}` — status and progress from the catalogue.
//! * `GET /healthz` (alive), `GET /readyz` (NATS and Redis reachable).

use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::json;
use stream_bus::{event, media, video_event::Kind};
use stream_hls::VideoId;
use stream_store::{MediaStore, StoreError};
use tracing::{info, warn};

use crate::fetch;
use crate::Shared;

/// An API error: status and a reason for the client; internals are logged,
/// not sent.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: String,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            reason: reason.into(),
        }
    }
    fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        warn!(error = %e, "{context}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{context}; try again"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.reason }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("upload exceeds the limit of {limit} bytes"),
            ),
            StoreError::Body(reason) => ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("upload interrupted: {reason}"),
            ),
            other => ApiError::internal("media store unavailable", other),
        }
    }
}

/// Largest JSON body (URL import), bytes.
const MAX_JSON_BYTES: usize = 64 * 1024;
/// Longest title, characters.
const MAX_TITLE_CHARS: usize = 200;

/// The router (without CORS; see `crate::router`). At most
/// `max_concurrent_uploads` uploads stream in at once; more are answered
/// 503 at once (load shedding), never queued. Status and health requests
/// are not limited by uploads.
pub fn routes(shared: Arc<Shared>, max_concurrent_uploads: usize) -> Router {
    let upload_limit = tower::ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(
            |_: tower::BoxError| async {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many uploads in progress; retry later",
                )
            },
        ))
        .load_shed()
        .concurrency_limit(max_concurrent_uploads);
    Router::new()
        .route("/v1/videos", post(create_video).layer(upload_limit))
        .route("/v1/videos/{id}", get(get_video))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(shared)
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let nats_ok = matches!(
        shared.bus.client().connection_state(),
        stream_bus::async_nats::connection::State::Connected
    );
    let redis_ok = shared.catalog.ping().await.is_ok();
    let status = if nats_ok && redis_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "nats": nats_ok, "redis": redis_ok }))).into_response()
}

#[derive(Deserialize)]
struct CreateQuery {
    title: Option<String>,
}

#[derive(Deserialize)]
struct ImportBody {
    url: String,
    title: Option<String>,
}

fn clean_title(raw: Option<&str>, fallback: &str) -> String {
    let t: String = raw
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TITLE_CHARS)
        .collect();
    let t = t.trim();
    if t.is_empty() {
        fallback.chars().take(MAX_TITLE_CHARS).collect()
    } else {
        t.to_string()
    }
}

/// Title fallback from a file name: without directories and extension.
fn title_from_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
    clean_title(Some(stem), "untitled")
}

async fn create_video(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<CreateQuery>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.max_upload_bytes.saturating_add(64 * 1024)) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "upload exceeds the limit of {} bytes",
                shared.max_upload_bytes
            ),
        ));
    }
    let id = VideoId::generate().to_string();
    let key = MediaStore::source_key(&id);
    let (title, source, size) = if content_type.starts_with("application/json") {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_JSON_BYTES)
            .await
            .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "JSON body too large"))?;
        let body: ImportBody = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?;
        let url = fetch::check_url(&body.url)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        fetch::resolve_checked(&url, shared.allow_private_urls)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        let fallback = url
            .path_segments()
            .and_then(|mut s| s.next_back().map(title_from_filename))
            .unwrap_or_else(|| "untitled".into());
        let title = clean_title(body.title.as_deref().or(q.title.as_deref()), &fallback);
        (title, media::transcode_job::Source::Url(url.to_string()), 0)
    } else if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
        let mut title = q.title.clone();
        let mut stored: Option<(u64, String)> = None;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?
        {
            match field.name() {
                Some("title") => {
                    let text = field
                        .text()
                        .await
                        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
                    title = Some(text.chars().take(MAX_TITLE_CHARS * 4).collect());
                }
                Some("file") if stored.is_none() => {
                    let filename = field.file_name().unwrap_or("untitled").to_string();
                    let stream = field.map_err(|e| e.body_text());
                    let size = shared
                        .store
                        .put_stream(&key, Box::pin(stream), shared.max_upload_bytes)
                        .await?;
                    stored = Some((size, filename));
                }
                _ => {}
            }
        }
        let (size, filename) = stored
            .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "no `file` field in the form"))?;
        (
            clean_title(title.as_deref(), &title_from_filename(&filename)),
            media::transcode_job::Source::ObjectKey(key.to_string()),
            size,
        )
    } else if content_type.starts_with("video/") || content_type == "application/octet-stream" {
        let stream = request.into_body().into_data_stream();
        let size = shared
            .store
            .put_stream(&key, stream, shared.max_upload_bytes)
            .await?;
        (
            clean_title(q.title.as_deref(), "untitled"),
            media::transcode_job::Source::ObjectKey(key.to_string()),
            size,
        )
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the file as video/* or application/octet-stream, as multipart/form-data, or JSON {\"url\": ...}",
        ));
    };
    let is_upload = matches!(source, media::transcode_job::Source::ObjectKey(_));
    if is_upload && size == 0 {
        let _ = shared.store.delete(&key).await;
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the upload is empty (0 bytes)",
        ));
    }
    let source_label = match &source {
        media::transcode_job::Source::Url(u) => u.clone(),
        media::transcode_job::Source::ObjectKey(_) => "upload".into(),
    };
    let accepted = event(
        &id,
        Kind::Accepted(media::Accepted {
            title: title.clone(),
            size_bytes: size,
            source: source_label,
            channel: None,
        }),
    );
    if let Err(e) = shared.emit_required(accepted).await {
        let _ = shared.store.delete(&key).await;
        // The catalogue already has the record: close it.
        let failed = event(
            &id,
            Kind::Failed(media::Failed {
                reason: "the event bus was unavailable; upload again".into(),
                input_error: false,
            }),
        );
        let _ = shared.catalog.apply(&failed).await;
        return Err(ApiError::internal("event bus unavailable", e));
    }
    let job = media::TranscodeJob {
        video_id: id.clone(),
        title: title.clone(),
        source: Some(source),
        size_bytes: size,
        submitted_at_ms: stream_bus::next_seq().1,
    };
    if let Err(e) = shared.bus.submit_job(&job).await {
        let _ = shared.store.delete(&key).await;
        shared
            .emit(event(
                &id,
                Kind::Failed(media::Failed {
                    reason: "the job queue is unavailable or full; upload again later".into(),
                    input_error: false,
                }),
            ))
            .await;
        return Err(ApiError::internal("job queue unavailable or full", e));
    }
    info!(video_id = %id, size, %title, "video accepted");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/videos/{id}"))],
        Json(json!({ "id": id, "status": "queued", "title": title })),
    )
        .into_response())
}

async fn get_video(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: VideoId = id.parse().map_err(|e: stream_hls::path::PathError| {
        ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
    })?;
    let record = shared
        .catalog
        .get(&id.to_string())
        .await
        .map_err(|e| ApiError::internal("catalogue unavailable", e))?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such video"))?;
    Ok(Json(record).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_cleaned() {
        assert_eq!(title_from_filename("C:\\clips\\my.video.mp4"), "my.video");
        assert_eq!(title_from_filename("bigbuckbunny.mp4"), "bigbuckbunny");
        assert_eq!(clean_title(Some("  a\u{0}b \n"), "x"), "ab");
        assert_eq!(clean_title(Some("   "), "fallback"), "fallback");
        assert_eq!(
            clean_title(Some(&"x".repeat(500)), "f").len(),
            MAX_TITLE_CHARS
        );
    }
}
