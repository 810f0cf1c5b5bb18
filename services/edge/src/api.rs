//! The REST facade the web front end uses: thin JSON over the control
//! plane's gRPC API (one origin for the page, no protobuf in the browser).
//!
//! * `GET /api/v1/videos?page_size=&page_token=` → `{"videos": [...], "next_page_token"}`
//! * `GET /api/v1/videos/{id}` → one video
//! * `GET /api/v1/config` → `{"ingest_url", "marker_url"}`: where the page
//!   uploads and where it reads and writes markers
//! * `POST /api/v1/channels` `{"title", "source": {"file": {"video_id",
//!   "loop"}} | {"generator": {"event_interval_s", "width", "height"}} |
//!   {"pull": {"url"}}, "latency": "normal"|"low", "dvr_window_s"}` → 201 and
//!   the channel
//! * `GET /api/v1/channels?page_size=&page_token=` → `{"channels": [...],
//!   "next_page_token"}`
//! * `GET /api/v1/channels/{id}` → one channel
//! * `DELETE /api/v1/channels/{id}` → stops it; 200 and the channel (ready)
//!
//! gRPC codes become HTTP statuses: INVALID_ARGUMENT 400, NOT_FOUND 404,
//! FAILED_PRECONDITION / ABORTED 409, RESOURCE_EXHAUSTED 429, UNAVAILABLE
//! from the control plane 503 (with its reason), DEADLINE_EXCEEDED 504; a
//! control plane that cannot be reached is 502.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
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
    /// `queued` | `processing` | `live` | `ready` | `failed`
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
    /// A live channel (running or ended); `/api/v1/channels/{id}` has its
    /// details.
    #[serde(default)]
    pub live: bool,
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
        renditions: renditions_json(&v.renditions),
        error: (!v.error.is_empty()).then(|| v.error.clone()),
        created_at: rfc3339(v.created_at.as_ref()),
        live: v.live,
    }
}

fn renditions_json(renditions: &[pb::Rendition]) -> Vec<RenditionJson> {
    renditions
        .iter()
        .filter(|r| !r.audio)
        .map(|r| RenditionJson {
            name: r.name.clone(),
            width: r.width,
            height: r.height,
            bandwidth_bps: r.bandwidth_bps,
            ready: r.ready,
        })
        .collect()
}

fn upstream(status: tonic::Status) -> EdgeError {
    match status.code() {
        Code::NotFound => EdgeError::NotFound,
        Code::InvalidArgument => EdgeError::BadRequest(status.message().to_string()),
        _ => EdgeError::Upstream(status.to_string()),
    }
}

/// [`upstream`] for the channel routes, which pass the control plane's
/// reasons for conflicts, caps and missing workers on.
fn channel_upstream(status: tonic::Status) -> EdgeError {
    // A status with a source is tonic's own (transport) error: the control
    // plane was not reached; its message is not for clients.
    if std::error::Error::source(&status).is_some() {
        return EdgeError::Upstream(status.to_string());
    }
    let reason = status.message().to_string();
    match status.code() {
        Code::FailedPrecondition | Code::Aborted => EdgeError::Conflict(reason),
        Code::ResourceExhausted => EdgeError::TooManyRequests(reason),
        Code::Unavailable => EdgeError::Unavailable(reason),
        Code::DeadlineExceeded => EdgeError::Timeout(reason),
        _ => upstream(status),
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

/// A live channel as the front end sees it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ChannelJson {
    pub id: String,
    pub title: String,
    /// `queued` | `processing` | `live` | `ready` | `failed`
    pub status: String,
    /// Edge path of the master playlist (served once `live`); absent when
    /// failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub playback_url: Option<String>,
    /// `normal` | `low`
    pub latency: String,
    /// DVR window, seconds.
    pub dvr_window_s: f64,
    #[serde(rename = "loop")]
    pub looped: bool,
    /// `file`, `generator` or the pulled URL (without credentials or query).
    pub source: String,
    /// RFC 3339 wall clock of source time 0; absent until live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub renditions: Vec<RenditionJson>,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ChannelListJson {
    pub channels: Vec<ChannelJson>,
    pub next_page_token: String,
}

/// Convert the gRPC message.
pub fn channel_json(c: &pb::Channel) -> ChannelJson {
    ChannelJson {
        id: c.id.clone(),
        title: c.title.clone(),
        status: status_name(c.status).to_string(),
        playback_url: (!c.playback_url.is_empty()).then(|| c.playback_url.clone()),
        latency: match pb::LiveLatency::try_from(c.latency) {
            Ok(pb::LiveLatency::Low) => "low",
            _ => "normal",
        }
        .to_string(),
        dvr_window_s: c.dvr_window_s,
        looped: c.r#loop,
        source: c.source.clone(),
        started_at: c.started_at.as_ref().map(|t| rfc3339(Some(t))),
        error: (!c.error.is_empty()).then(|| c.error.clone()),
        renditions: renditions_json(&c.renditions),
        created_at: rfc3339(c.created_at.as_ref()),
    }
}

/// Body of `POST /api/v1/channels`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartChannelJson {
    #[serde(default)]
    pub title: String,
    pub source: SourceJson,
    /// `normal` (default) or `low`.
    #[serde(default)]
    pub latency: Option<String>,
    /// Seconds; 0 or absent = 7200.
    #[serde(default)]
    pub dvr_window_s: f64,
}

/// What a channel plays: exactly one of `file`, `generator`, `pull`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceJson {
    File {
        video_id: String,
        #[serde(default, rename = "loop")]
        looped: bool,
    },
    Generator {
        /// Seconds between events; 0 = 10.
        #[serde(default)]
        event_interval_s: f64,
        /// Pixels; 0 = 1280x720.
        #[serde(default)]
        width: u32,
        #[serde(default)]
        height: u32,
    },
    Pull {
        url: String,
    },
}

/// The gRPC request for a JSON body.
///
/// Errors: [`EdgeError::BadRequest`] for an unknown latency name.
pub fn start_request(body: StartChannelJson) -> Result<pb::StartLiveRequest, EdgeError> {
    use pb::start_live_request::Source;
    let latency = match body.latency.as_deref() {
        None | Some("normal") => pb::LiveLatency::Normal,
        Some("low") => pb::LiveLatency::Low,
        Some(other) => {
            return Err(EdgeError::BadRequest(format!(
                "latency {other:?}: use \"normal\" or \"low\""
            )))
        }
    };
    let source = match body.source {
        SourceJson::File { video_id, looped } => Source::File(pb::FileSource {
            video_id,
            r#loop: looped,
        }),
        SourceJson::Generator {
            event_interval_s,
            width,
            height,
        } => Source::Generator(pb::GeneratorSource {
            event_interval_s,
            width,
            height,
        }),
        SourceJson::Pull { url } => Source::Pull(pb::PullSource { url }),
    };
    Ok(pb::StartLiveRequest {
        title: body.title,
        source: Some(source),
        latency: latency as i32,
        dvr_window_s: body.dvr_window_s,
    })
}

pub async fn start_channel(
    State(state): State<Arc<AppState>>,
    body: Result<Json<StartChannelJson>, JsonRejection>,
) -> Result<(StatusCode, Json<ChannelJson>), EdgeError> {
    let Json(body) = body.map_err(|e| EdgeError::BadRequest(e.body_text()))?;
    let request = start_request(body)?;
    let mut client = state.control_live.clone();
    let c = client
        .start_live(request)
        .await
        .map_err(channel_upstream)?
        .into_inner();
    Ok((StatusCode::CREATED, Json(channel_json(&c))))
}

pub async fn list_channels(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ChannelListJson>, EdgeError> {
    let mut client = state.control.clone();
    let resp = client
        .list_channels(pb::ListChannelsRequest {
            page_size: q.page_size.unwrap_or(0),
            page_token: q.page_token.unwrap_or_default(),
        })
        .await
        .map_err(channel_upstream)?
        .into_inner();
    Ok(Json(ChannelListJson {
        channels: resp.channels.iter().map(channel_json).collect(),
        next_page_token: resp.next_page_token,
    }))
}

pub async fn get_channel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<ChannelJson>, EdgeError> {
    let mut client = state.control.clone();
    let c = client
        .get_channel(pb::GetChannelRequest { channel_id: id })
        .await
        .map_err(channel_upstream)?
        .into_inner();
    Ok(Json(channel_json(&c)))
}

pub async fn stop_channel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<ChannelJson>, EdgeError> {
    let mut client = state.control_live.clone();
    let c = client
        .stop_live(pb::StopLiveRequest { channel_id: id })
        .await
        .map_err(channel_upstream)?
        .into_inner();
    Ok(Json(channel_json(&c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<pb::StartLiveRequest, String> {
        let body: StartChannelJson = serde_json::from_str(json).map_err(|e| e.to_string())?;
        start_request(body).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn start_bodies() {
        use pb::start_live_request::Source;
        let r = parse(r#"{"title":"t","source":{"file":{"video_id":"X","loop":true}},"latency":"low","dvr_window_s":600}"#).unwrap();
        assert_eq!(r.latency, pb::LiveLatency::Low as i32);
        assert_eq!(r.dvr_window_s, 600.0);
        assert!(matches!(r.source, Some(Source::File(f)) if f.video_id == "X" && f.r#loop));
        let r = parse(r#"{"source":{"generator":{}}}"#).unwrap();
        assert_eq!(r.latency, pb::LiveLatency::Normal as i32);
        assert!(matches!(r.source, Some(Source::Generator(_))));
        let r = parse(r#"{"source":{"pull":{"url":"rtmp://h/a"}}}"#).unwrap();
        assert!(matches!(r.source, Some(Source::Pull(p)) if p.url == "rtmp://h/a"));
        for bad in [
            r#"{"source":{}}"#,
            r#"{"source":{"file":{}}}"#,
            r#"{"source":{"generator":{}},"latency":"ultra"}"#,
            r#"{"source":{"generator":{}},"extra":1}"#,
            r#"{"title":"no source"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn channel_codes_map_to_http() {
        let cases = [
            (tonic::Status::invalid_argument("x"), 400),
            (tonic::Status::not_found("x"), 404),
            (tonic::Status::failed_precondition("x"), 409),
            (tonic::Status::aborted("x"), 409),
            (tonic::Status::resource_exhausted("x"), 429),
            (
                tonic::Status::unavailable("no worker runs this channel"),
                503,
            ),
            (tonic::Status::deadline_exceeded("x"), 504),
            (tonic::Status::internal("x"), 502),
        ];
        for (status, want) in cases {
            let code = status.code();
            let resp = axum::response::IntoResponse::into_response(channel_upstream(status));
            assert_eq!(resp.status().as_u16(), want, "{code:?}");
        }
    }
}
