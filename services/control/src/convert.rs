//! Catalogue records → `streaming.control.v1` messages.

use stream_catalog::{RenditionRecord, VideoRecord, VideoStatus as Status};
use stream_proto::control::v1 as pb;

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn status(s: Status) -> pb::VideoStatus {
    match s {
        Status::Queued => pb::VideoStatus::Queued,
        Status::Processing => pb::VideoStatus::Processing,
        Status::Ready => pb::VideoStatus::Ready,
        Status::Failed => pb::VideoStatus::Failed,
        Status::Live => pb::VideoStatus::Live,
    }
}

fn rendition(r: &RenditionRecord) -> pb::Rendition {
    pb::Rendition {
        name: r.name.clone(),
        width: r.width,
        height: r.height,
        bandwidth_bps: r.bandwidth_bps,
        average_bandwidth_bps: r.average_bandwidth_bps,
        codecs: r.codecs.clone(),
        frame_rate: r.frame_rate,
        audio: r.audio,
        ready: r.ready,
    }
}

/// The edge path of a video's master playlist.
pub fn playback_url(id: &str, master: &str) -> String {
    format!("/hls/{id}/{master}")
}

/// A record as the API's `Video`.
pub fn video(r: &VideoRecord) -> pb::Video {
    pb::Video {
        id: r.id.clone(),
        title: r.title.clone(),
        status: status(r.status) as i32,
        progress_percent: r.progress_percent,
        duration_s: r.duration_s,
        renditions: r.renditions.iter().map(rendition).collect(),
        playback_url: match (&r.master_playlist, r.is_playable()) {
            (Some(m), true) => playback_url(&r.id, m),
            _ => String::new(),
        },
        error: r.error.clone().unwrap_or_default(),
        created_at: Some(timestamp(r.created_at_ms)),
        updated_at: Some(timestamp(r.updated_at_ms)),
    }
}
