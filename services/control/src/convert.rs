//! `streaming.control.v1` messages ⇄ domain: catalogue records out, live
//! channel requests in (validated by [`crate::live`]).

use stream_catalog::{RenditionRecord, VideoRecord, VideoStatus as Status};
use stream_hls::HlsPath;
use stream_proto::control::v1 as pb;

use crate::live::{self, Latency, LiveError, LiveSource, LiveStart};

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
        live: r.channel.is_some(),
    }
}

/// A `StartLive` request as a validated [`LiveStart`].
///
/// Errors: [`LiveError::Invalid`] for a missing or bad source, an unknown
/// latency value or a DVR window out of range.
pub fn live_start(req: pb::StartLiveRequest) -> Result<LiveStart, LiveError> {
    use pb::start_live_request::Source;
    let source = match req.source {
        None => {
            return Err(LiveError::Invalid(
                "source is required: file, generator or pull".into(),
            ))
        }
        Some(Source::File(f)) => LiveSource::File {
            video_id: live::file_video_id(&f.video_id)?,
            looped: f.r#loop,
        },
        Some(Source::Generator(g)) => live::generator(g.event_interval_s, g.width, g.height)?,
        Some(Source::Pull(p)) => LiveSource::Pull {
            url: live::pull_url(&p.url)?,
        },
    };
    let latency = match pb::LiveLatency::try_from(req.latency) {
        Ok(pb::LiveLatency::Unspecified | pb::LiveLatency::Normal) => Latency::Normal,
        Ok(pb::LiveLatency::Low) => Latency::Low,
        Err(_) => {
            return Err(LiveError::Invalid(format!(
                "unknown latency {}",
                req.latency
            )))
        }
    };
    Ok(LiveStart {
        title: live::clean_title(&req.title),
        source,
        latency,
        dvr_window_s: live::dvr_window(req.dvr_window_s)?,
    })
}

/// A channel's record as the API's `Channel`; `None` if the record is not a
/// channel.
pub fn channel(r: &VideoRecord) -> Option<pb::Channel> {
    let ch = r.channel.as_ref()?;
    // The path is known before the master exists; the edge serves it once
    // the channel is live.
    let playback_url = if r.status == Status::Failed {
        String::new()
    } else {
        playback_url(&r.id, &HlsPath::Master.relative())
    };
    Some(pb::Channel {
        id: r.id.clone(),
        title: r.title.clone(),
        status: status(r.status) as i32,
        playback_url,
        latency: match ch.latency.as_str() {
            "low" => pb::LiveLatency::Low,
            _ => pb::LiveLatency::Normal,
        } as i32,
        dvr_window_s: ch.dvr_window_s,
        r#loop: ch.looped,
        source: ch.source.clone(),
        started_at: (ch.started_at_ms > 0).then(|| timestamp(ch.started_at_ms)),
        error: r.error.clone().unwrap_or_default(),
        renditions: r.renditions.iter().map(rendition).collect(),
        created_at: Some(timestamp(r.created_at_ms)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(source: Option<pb::start_live_request::Source>) -> pb::StartLiveRequest {
        pb::StartLiveRequest {
            title: String::new(),
            source,
            latency: pb::LiveLatency::Low as i32,
            dvr_window_s: 0.0,
        }
    }

    #[test]
    fn start_requests_are_validated() {
        use pb::start_live_request::Source;
        let ok = live_start(request(Some(Source::Generator(
            pb::GeneratorSource::default(),
        ))))
        .unwrap();
        assert_eq!(
            (ok.title.as_str(), ok.latency, ok.dvr_window_s),
            ("live", Latency::Low, 7_200.0)
        );
        assert!(matches!(
            live_start(request(None)),
            Err(LiveError::Invalid(_))
        ));
        let mut bad_latency = request(Some(Source::Generator(Default::default())));
        bad_latency.latency = 9;
        assert!(live_start(bad_latency).is_err());
        let bad_file = request(Some(Source::File(pb::FileSource {
            video_id: "../etc".into(),
            r#loop: false,
        })));
        assert!(live_start(bad_file).is_err());
        let bad_url = request(Some(Source::Pull(pb::PullSource {
            url: "file:///etc/passwd".into(),
        })));
        assert!(live_start(bad_url).is_err());
    }

    #[test]
    fn only_channels_convert_to_channels() {
        let ev = stream_bus::event(
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            stream_bus::video_event::Kind::Accepted(stream_bus::media::Accepted {
                title: "t".into(),
                size_bytes: 0,
                source: "live:generator".into(),
                channel: Some(stream_bus::media::ChannelInfo {
                    latency: stream_bus::media::LiveLatency::Normal as i32,
                    dvr_window_s: 7_200.0,
                    r#loop: false,
                }),
            }),
        );
        let mut r = stream_catalog::fold(None, &ev);
        let c = channel(&r).unwrap();
        assert_eq!(c.status, pb::VideoStatus::Queued as i32);
        assert_eq!(
            c.playback_url,
            "/hls/01ARZ3NDEKTSV4RRFFQ69G5FAV/master.m3u8"
        );
        assert_eq!(c.source, "generator");
        assert!(c.started_at.is_none());
        assert!(video(&r).live);
        r.channel = None;
        assert!(channel(&r).is_none());
        assert!(!video(&r).live);
    }
}
