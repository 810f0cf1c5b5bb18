//! The REST facade the web front end uses: thin JSON over the control
//! plane's gRPC API (one origin for the page, no protobuf in the browser).
//!
//! * `GET /api/v1/videos?page_size=&page_token=` → `{"videos": [...], "next_page_token"}`
//! * `GET /api/v1/videos/{id}` → one video
//! * `GET /api/v1/config` → `{"ingest_url", "marker_url"}`: where the page
//!   uploads and where it reads and writes markers

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use stream_proto::control::v1 as pb;
use time::format_description::well_known::Rfc3339;
use tonic::Code;

use crate::error::EdgeError;
use crate::AppState;

/// A rendition as the front end sees it (video rungs only).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct RenditionJson {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Peak bitrate including audio is in the master playlist; this is the
    /// rendition's own, bit/s.
    pub bandwidth_bps: u64,
    pub ready: bool,
}

/// A video as the front end sees it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct VideoJson {
    pub id: String,
    pub title: String,
    /// `queued` | `processing` | `ready` | `failed`
    pub status: String,
    /// 0–100.
    pub progress_percent: f64,
    /// Seconds.
    pub duration_s: f64,
    /// Edge path of the master playlist; absent until playable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub playback_url: Option<String>,
    pub renditions: Vec<RenditionJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VideoListJson {
    pub videos: Vec<VideoJson>,
    pub next_page_token: String,
}

fn status_name(s: i32) -> &'static str {
    match pb::VideoStatus::try_from(s).unwrap_or(pb::VideoStatus::Unspecified) {
        pb::VideoStatus::Queued => "queued",
        pb::VideoStatus::Processing => "processing",
        pb::VideoStatus::Ready => "ready",
        pb::VideoStatus::Failed => "failed",
        pb::VideoStatus::Live => "live",
        pb::VideoStatus::Unspecified => "unknown",
    }
}

fn rfc3339(ts: Option<&prost_timestamp::Timestamp>) -> String {
    ts.and_then(|t| {
        time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos),
        )
        .ok()
    })
    .and_then(|t| t.format(&Rfc3339).ok())
    .unwrap_or_default()
}

mod prost_timestamp {
    pub use stream_proto::prost_types::Timestamp;
}

/// Convert the gRPC message.
pub fn video_json(v: &pb::Video) -> VideoJson {
    VideoJson {
        id: v.id.clone(),
        title: v.title.clone(),
        status: status_name(v.status).to_string(),
        progress_percent: v.progress_percent,
        duration_s: v.duration_s,
        playback_url: (!v.playback_url.is_empty()).then(|| v.playback_url.clone()),
        renditions: v
            .renditions
            .iter()
            .filter(|r| !r.audio)
            .map(|r| RenditionJson {
                name: r.name.clone(),
                width: r.width,
                height: r.height,
                bandwidth_bps: r.bandwidth_bps,
                ready: r.ready,
            })
            .collect(),
        error: (!v.error.is_empty()).then(|| v.error.clone()),
        created_at: rfc3339(v.created_at.as_ref()),
    }
}

fn upstream(status: tonic::Status) -> EdgeError {
    match status.code() {
        Code::NotFound => EdgeError::NotFound,
        Code::InvalidArgument => EdgeError::BadRequest(status.message().to_string()),
        _ => EdgeError::Upstream(status.to_string()),
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    page_size: Option<u32>,
    page_token: Option<String>,
}

pub async fn list_videos(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<VideoListJson>, EdgeError> {
    let mut client = state.control.clone();
    let resp = client
        .list_videos(pb::ListVideosRequest {
            page_size: q.page_size.unwrap_or(0),
            page_token: q.page_token.unwrap_or_default(),
        })
        .await
        .map_err(upstream)?
        .into_inner();
    Ok(Json(VideoListJson {
        videos: resp.videos.iter().map(video_json).collect(),
        next_page_token: resp.next_page_token,
    }))
}

pub async fn get_video(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<VideoJson>, EdgeError> {
    let mut client = state.control.clone();
    let v = client
        .get_video(pb::GetVideoRequest { video_id: id })
        .await
        .map_err(upstream)?
        .into_inner();
    Ok(Json(video_json(&v)))
}

pub async fn config(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "ingest_url": state.ingest_public_url,
        "marker_url": state.marker_public_url,
    }))
}
