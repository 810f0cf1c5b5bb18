//! Live channels: validating a start request (pure), starting one (catalogue
//! record under the running-channel cap, `Accepted` event, `LiveJob`),
//! stopping one (core NATS request to the ingest worker running it) and
//! reading them back.
//!
//! A channel is a video whose `Accepted` event carries `ChannelInfo`; the
//! catalogue indexes it in `P:channels` and counts it in
//! `P:channels:running` while it is queued, processing or live (see
//! `stream_catalog`). The control plane writes only the `Accepted` event
//! (and `failed` when it could not queue the job); everything after is the
//! worker's.

use std::time::Duration;

use bytes::Bytes;
use stream_bus::async_nats::{self, RequestErrorKind};
use stream_bus::{media, video_event::Kind, Bus, LiveJob};
use stream_catalog::{Catalog, CatalogError, VideoRecord, VideoStatus};
use stream_hls::VideoId;
use stream_store::{MediaStore, StoreError};
use tonic::Status;
use tracing::{info, warn};

/// DVR window when the request leaves it at 0, seconds.
pub const DEFAULT_DVR_WINDOW_S: f64 = 7_200.0;
/// Shortest / longest DVR window a request may ask for, seconds.
pub const MIN_DVR_WINDOW_S: f64 = 60.0;
pub const MAX_DVR_WINDOW_S: f64 = 86_400.0;
/// How long `StopLive` waits for the worker's answer.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest title, characters (like uploads).
const MAX_TITLE_CHARS: usize = 200;
/// Title of a channel started without one.
const DEFAULT_TITLE: &str = "live";
/// Longest pull URL, bytes.
const MAX_URL_BYTES: usize = 2_048;
/// URL schemes a pull channel may use.
const PULL_SCHEMES: [&str; 5] = ["http", "https", "rtmp", "rtsp", "srt"];
/// Generator bounds: event interval (s), picture width and height (pixels).
const GENERATOR_INTERVAL_S: (f64, f64) = (1.0, 3_600.0);
const GENERATOR_WIDTH: (u32, u32) = (64, 1_920);
const GENERATOR_HEIGHT: (u32, u32) = (64, 1_080);
/// Longest error text of a worker's stop answer kept in the status, chars.
const MAX_WORKER_ERROR_CHARS: usize = 500;

/// Errors of channel operations; one `From<LiveError> for Status`.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The request is invalid (the message says why).
    #[error("{0}")]
    Invalid(String),
    #[error("no channel {0}")]
    NotFound(String),
    #[error("channel {id} has ended ({status})")]
    Ended { id: String, status: &'static str },
    #[error("{max} live channels are running already (LIVE_MAX_CHANNELS); stop one first")]
    Cap { max: u64 },
    #[error("no worker runs this channel")]
    NoWorker,
    #[error("the worker did not confirm the stop within {0:?}")]
    StopTimeout(Duration),
    #[error("the worker could not stop the channel: {0}")]
    StopRefused(String),
    #[error("catalogue: {0}")]
    Catalog(#[from] CatalogError),
    #[error("bus: {0}")]
    Bus(String),
    #[error("media store: {0}")]
    Store(#[from] StoreError),
}

impl From<LiveError> for Status {
    fn from(e: LiveError) -> Status {
        match e {
            LiveError::Invalid(m) => Status::invalid_argument(m),
            LiveError::NotFound(_) => Status::not_found(e.to_string()),
            LiveError::Ended { .. } => Status::failed_precondition(e.to_string()),
            LiveError::Cap { .. } | LiveError::Catalog(CatalogError::ChannelCap { .. }) => {
                Status::resource_exhausted(e.to_string())
            }
            LiveError::NoWorker => Status::unavailable(e.to_string()),
            LiveError::StopTimeout(_) => Status::deadline_exceeded(e.to_string()),
            LiveError::StopRefused(_) => Status::aborted(e.to_string()),
            LiveError::Catalog(e) => {
                warn!(error = %e, "catalogue error");
                Status::unavailable("catalogue unavailable; retry")
            }
            LiveError::Bus(e) => {
                warn!(error = %e, "bus error");
                Status::unavailable("message bus unavailable; retry")
            }
            LiveError::Store(e) => {
                warn!(error = %e, "media store error");
                Status::unavailable("media store unavailable; retry")
            }
        }
    }
}

fn invalid(msg: impl Into<String>) -> LiveError {
    LiveError::Invalid(msg.into())
}

/// Encoder latency profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    Normal,
    Low,
}

/// What a channel plays.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveSource {
    /// A stored video's uploaded source, once or looped.
    File { video_id: VideoId, looped: bool },
    /// The test pattern. `event_interval_s` 0 = the worker's default (10 s);
    /// `width`/`height` 0 = 1280x720.
    Generator {
        event_interval_s: f64,
        width: u32,
        height: u32,
    },
    /// A URL restreamed live.
    Pull { url: url::Url },
}

/// A validated `StartLive` request.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveStart {
    pub title: String,
    pub source: LiveSource,
    pub latency: Latency,
    /// Seconds, in `MIN_DVR_WINDOW_S..=MAX_DVR_WINDOW_S`.
    pub dvr_window_s: f64,
}

/// A title with control characters dropped, at most 200 characters, trimmed;
/// "live" when nothing is left.
pub fn clean_title(raw: &str) -> String {
    let t: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TITLE_CHARS)
        .collect();
    match t.trim() {
        "" => DEFAULT_TITLE.to_string(),
        t => t.to_string(),
    }
}

/// The DVR window in seconds: 0 = [`DEFAULT_DVR_WINDOW_S`], otherwise
/// 60–86 400.
///
/// Errors: [`LiveError::Invalid`] outside that range or not finite.
pub fn dvr_window(raw_s: f64) -> Result<f64, LiveError> {
    if raw_s == 0.0 {
        return Ok(DEFAULT_DVR_WINDOW_S);
    }
    if raw_s.is_finite() && (MIN_DVR_WINDOW_S..=MAX_DVR_WINDOW_S).contains(&raw_s) {
        Ok(raw_s)
    } else {
        Err(invalid(format!(
            "dvr_window_s must be 0 (default {DEFAULT_DVR_WINDOW_S} s) or \
             {MIN_DVR_WINDOW_S}–{MAX_DVR_WINDOW_S} s"
        )))
    }
}

/// A generator source: interval 0 or 1–3 600 s; size 0x0 or even, width
/// 64–1 920, height 64–1 080 (pixels).
///
/// Errors: [`LiveError::Invalid`] naming the bad field.
pub fn generator(event_interval_s: f64, width: u32, height: u32) -> Result<LiveSource, LiveError> {
    let (lo, hi) = GENERATOR_INTERVAL_S;
    if !(event_interval_s == 0.0
        || (event_interval_s.is_finite() && (lo..=hi).contains(&event_interval_s)))
    {
        return Err(invalid(format!(
            "generator event_interval_s must be 0 (default) or {lo}–{hi} s"
        )));
    }
    if (width, height) != (0, 0) {
        let in_range = |v: u32, (lo, hi): (u32, u32)| (lo..=hi).contains(&v) && v & 1 == 0;
        if !(in_range(width, GENERATOR_WIDTH) && in_range(height, GENERATOR_HEIGHT)) {
            return Err(invalid(format!(
                "generator size {width}x{height}: use 0x0 (1280x720) or even sizes, width {}–{}, height {}–{}",
                GENERATOR_WIDTH.0, GENERATOR_WIDTH.1, GENERATOR_HEIGHT.0, GENERATOR_HEIGHT.1
            )));
        }
    }
    Ok(LiveSource::Generator {
        event_interval_s,
        width,
        height,
    })
}

/// A pull URL: at most 2 048 bytes, scheme http, https, rtmp, rtsp or srt,
/// with a host. Addresses are not checked here: ingest's SSRF guard checks
/// them when it connects.
///
/// Errors: [`LiveError::Invalid`] with the reason.
pub fn pull_url(raw: &str) -> Result<url::Url, LiveError> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_BYTES {
        return Err(invalid(format!("url longer than {MAX_URL_BYTES} bytes")));
    }
    let url = url::Url::parse(raw).map_err(|e| invalid(format!("url: {e}")))?;
    if !PULL_SCHEMES.contains(&url.scheme()) {
        return Err(invalid(format!(
            "url scheme {:?} not supported; use one of {}",
            url.scheme(),
            PULL_SCHEMES.join(", ")
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("url has no host"));
    }
    Ok(url)
}

/// A file source's video id.
///
/// Errors: [`LiveError::Invalid`] when it is not a ULID.
pub fn file_video_id(raw: &str) -> Result<VideoId, LiveError> {
    raw.parse()
        .map_err(|_| invalid("file video_id is not a ULID"))
}

/// The `Accepted.source` label: `live:file`, `live:generator`, or
/// `live:<url>` without credentials, query or fragment (the label is
/// public; the job carries the full URL).
pub fn source_label(source: &LiveSource) -> String {
    match source {
        LiveSource::File { .. } => "live:file".into(),
        LiveSource::Generator { .. } => "live:generator".into(),
        LiveSource::Pull { url } => {
            let mut shown = url.clone();
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            shown.set_query(None);
            shown.set_fragment(None);
            format!("live:{shown}")
        }
    }
}

fn media_latency(l: Latency) -> media::LiveLatency {
    match l {
        Latency::Normal => media::LiveLatency::Normal,
        Latency::Low => media::LiveLatency::Low,
    }
}

/// The `Accepted` event of a new channel.
pub fn accepted(start: &LiveStart) -> Kind {
    let looped = matches!(start.source, LiveSource::File { looped: true, .. });
    Kind::Accepted(media::Accepted {
        title: start.title.clone(),
        size_bytes: 0,
        source: source_label(&start.source),
        channel: Some(media::ChannelInfo {
            latency: media_latency(start.latency) as i32,
            dvr_window_s: start.dvr_window_s,
            r#loop: looped,
        }),
    })
}

/// The job for the ingest live worker.
pub fn live_job(id: &VideoId, start: &LiveStart, submitted_at_ms: i64) -> LiveJob {
    use media::live_job::Source;
    let source = match &start.source {
        LiveSource::File { video_id, looped } => Source::File(media::LiveFile {
            object_key: MediaStore::source_key(&video_id.to_string()).to_string(),
            r#loop: *looped,
        }),
        LiveSource::Generator {
            event_interval_s,
            width,
            height,
        } => Source::Generator(media::LiveGenerator {
            event_interval_s: *event_interval_s,
            width: *width,
            height: *height,
        }),
        LiveSource::Pull { url } => Source::Pull(media::LivePull {
            url: url.to_string(),
        }),
    };
    LiveJob {
        video_id: id.to_string(),
        title: start.title.clone(),
        source: Some(source),
        latency: media_latency(start.latency) as i32,
        dvr_window_s: start.dvr_window_s,
        submitted_at_ms,
    }
}

/// Channel settings.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// Channels running at once at most (`LIVE_MAX_CHANNELS`).
    pub max_channels: u64,
    /// How long a stop waits for the worker.
    pub stop_timeout: Duration,
}

/// Channel operations over the catalogue, the bus and the media store.
#[derive(Clone)]
pub struct Channels {
    pub catalog: Catalog,
    pub bus: Bus,
    pub store: MediaStore,
    pub settings: LiveSettings,
}

fn status_name(s: VideoStatus) -> &'static str {
    match s {
        VideoStatus::Queued => "queued",
        VideoStatus::Processing => "processing",
        VideoStatus::Live => "live",
        VideoStatus::Ready => "ready",
        VideoStatus::Failed => "failed",
    }
}

impl Channels {
    /// Start a channel: check a file source exists, record the channel
    /// (refused past the cap), publish its `Accepted` event, queue its
    /// job. Returns the new record (status queued).
    ///
    /// Errors: [`LiveError::Invalid`] for an unknown file video or missing
    /// source object, [`LiveError::Cap`], and catalogue / store / bus
    /// failures (after a bus failure the channel is marked failed).
    pub async fn start(&self, start: LiveStart) -> Result<VideoRecord, LiveError> {
        if let LiveSource::File { video_id, .. } = &start.source {
            let vid = video_id.to_string();
            if self.catalog.get(&vid).await?.is_none() {
                return Err(invalid(format!("file video {vid} is not in the catalogue")));
            }
            if !self.store.exists(&MediaStore::source_key(&vid)).await? {
                return Err(invalid(format!(
                    "file video {vid} has no uploaded source in the media store"
                )));
            }
        }
        let id = VideoId::generate();
        let ev = stream_bus::event(&id.to_string(), accepted(&start));
        match self
            .catalog
            .start_channel(&ev, self.settings.max_channels)
            .await
        {
            Ok(_) => {}
            Err(CatalogError::ChannelCap { max }) => return Err(LiveError::Cap { max }),
            Err(e) => return Err(e.into()),
        }
        let queued = async {
            self.bus.publish_event(&ev).await?;
            self.bus
                .publish_live_job(&live_job(&id, &start, ev.at_ms))
                .await
        }
        .await;
        if let Err(e) = queued {
            self.fail(&id, &format!("could not queue the channel: {e}"))
                .await;
            return Err(LiveError::Bus(e.to_string()));
        }
        info!(channel_id = %id, source = %source_label(&start.source), "channel queued");
        let id = id.to_string();
        Ok(match self.catalog.get(&id).await? {
            Some(r) => r,
            None => stream_catalog::fold(None, &ev),
        })
    }

    /// Mark a channel failed (catalogue first, then the bus); best effort.
    async fn fail(&self, id: &VideoId, reason: &str) {
        let ev = stream_bus::event(
            &id.to_string(),
            Kind::Failed(media::Failed {
                reason: reason.to_string(),
                input_error: false,
            }),
        );
        if let Err(e) = self.catalog.apply(&ev).await {
            warn!(error = %e, channel_id = %id, "could not mark the channel failed");
        }
        if let Err(e) = self.bus.publish_event(&ev).await {
            warn!(error = %e, channel_id = %id, "failed event not published");
        }
    }

    /// One channel.
    ///
    /// Errors: [`LiveError::NotFound`] for an unknown id or a video that is
    /// not a channel; catalogue failures.
    pub async fn get(&self, id: &VideoId) -> Result<VideoRecord, LiveError> {
        let id = id.to_string();
        match self.catalog.get(&id).await? {
            Some(r) if r.channel.is_some() => Ok(r),
            _ => Err(LiveError::NotFound(id)),
        }
    }

    /// Channels newest first; see `Catalog::list_channels`.
    ///
    /// Errors: catalogue failures.
    pub async fn list(
        &self,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<VideoRecord>, Option<String>), LiveError> {
        Ok(self.catalog.list_channels(limit, after).await?)
    }

    /// Stop a channel: ask the worker running it on `P.live.<id>.stop` and
    /// wait (up to the stop timeout) for its answer, given once it stopped
    /// publishing and marked the recording ready. Returns the record read
    /// back then.
    ///
    /// Errors: [`LiveError::NotFound`], [`LiveError::Ended`] (ready or
    /// failed), [`LiveError::NoWorker`] (nobody subscribes: still queued or
    /// its worker died), [`LiveError::StopTimeout`],
    /// [`LiveError::StopRefused`] (the worker's error text), bus and
    /// catalogue failures.
    pub async fn stop(&self, id: &VideoId) -> Result<VideoRecord, LiveError> {
        let record = self.get(id).await?;
        if matches!(record.status, VideoStatus::Ready | VideoStatus::Failed) {
            return Err(LiveError::Ended {
                id: record.id,
                status: status_name(record.status),
            });
        }
        let subject = self.bus.subjects().live_stop(&record.id);
        let request = async_nats::Request::new()
            .payload(Bytes::new())
            .timeout(Some(self.settings.stop_timeout));
        match self.bus.client().send_request(subject, request).await {
            Ok(reply) if reply.payload.is_empty() => {}
            Ok(reply) => {
                let text: String = String::from_utf8_lossy(&reply.payload)
                    .chars()
                    .take(MAX_WORKER_ERROR_CHARS)
                    .collect();
                return Err(LiveError::StopRefused(text));
            }
            Err(e) => {
                return Err(match e.kind() {
                    RequestErrorKind::NoResponders => LiveError::NoWorker,
                    RequestErrorKind::TimedOut => {
                        LiveError::StopTimeout(self.settings.stop_timeout)
                    }
                    _ => LiveError::Bus(e.to_string()),
                })
            }
        }
        info!(channel_id = %id, "channel stopped");
        self.get(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_cleaned() {
        assert_eq!(clean_title("  news\u{7}  "), "news");
        assert_eq!(clean_title("\n\t"), "live");
        assert_eq!(clean_title(&"x".repeat(300)).chars().count(), 200);
    }

    #[test]
    fn dvr_window_defaults_and_bounds() {
        assert_eq!(dvr_window(0.0).unwrap(), 7_200.0);
        assert_eq!(dvr_window(60.0).unwrap(), 60.0);
        assert_eq!(dvr_window(86_400.0).unwrap(), 86_400.0);
        for bad in [59.9, -1.0, 86_401.0, f64::NAN, f64::INFINITY] {
            assert!(
                matches!(dvr_window(bad), Err(LiveError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn generator_bounds() {
        assert!(generator(0.0, 0, 0).is_ok());
        assert!(generator(1.0, 64, 64).is_ok());
        assert!(generator(3_600.0, 1_920, 1_080).is_ok());
        for (i, w, h) in [
            (0.5, 0, 0),
            (3_601.0, 0, 0),
            (f64::NAN, 0, 0),
            (-1.0, 0, 0),
            (0.0, 641, 360),
            (0.0, 640, 0),
            (0.0, 62, 64),
            (0.0, 1_922, 1_080),
            (0.0, 1_920, 1_082),
        ] {
            assert!(generator(i, w, h).is_err(), "{i} {w}x{h}");
        }
    }

    #[test]
    fn pull_urls() {
        for ok in [
            "https://example.com/live/index.m3u8",
            "http://example.com/a.mp4",
            "rtmp://example.com/app/stream",
            "rtsp://10.0.0.1:554/cam",
            "srt://example.com:9000?streamid=x",
        ] {
            assert!(pull_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "file:///etc/passwd",
            "ftp://example.com/a.mp4",
            "javascript:alert(1)",
            "not a url",
            "",
            "http://",
        ] {
            assert!(matches!(pull_url(bad), Err(LiveError::Invalid(_))), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(2_100));
        assert!(pull_url(&long).is_err());
    }

    #[test]
    fn labels_hide_credentials() {
        let url = pull_url("rtmp://user:secret@example.com/app/key?token=t#f").unwrap();
        assert_eq!(
            source_label(&LiveSource::Pull { url }),
            "live:rtmp://example.com/app/key"
        );
        let g = generator(0.0, 0, 0).unwrap();
        assert_eq!(source_label(&g), "live:generator");
    }

    #[test]
    fn jobs_carry_the_source_key_and_settings() {
        let video_id: VideoId = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
        let start = LiveStart {
            title: "loop".into(),
            source: LiveSource::File {
                video_id,
                looped: true,
            },
            latency: Latency::Low,
            dvr_window_s: 600.0,
        };
        let id = VideoId::generate();
        let job = live_job(&id, &start, 42);
        assert_eq!(job.video_id, id.to_string());
        assert_eq!(job.latency, media::LiveLatency::Low as i32);
        assert_eq!(job.dvr_window_s, 600.0);
        match job.source {
            Some(media::live_job::Source::File(f)) => {
                assert_eq!(f.object_key, "uploads/01ARZ3NDEKTSV4RRFFQ69G5FAV/source");
                assert!(f.r#loop);
            }
            other => panic!("{other:?}"),
        }
        let Kind::Accepted(a) = accepted(&start) else {
            panic!("not accepted")
        };
        assert_eq!(a.source, "live:file");
        assert!(a.channel.unwrap().r#loop);
    }
}
