//! The video catalogue: what the platform knows of each video, in Redis.
//!
//! The catalogue is a projection of the ingest events (`streaming.media.v1.
//! VideoEvent`): [`fold`] is the pure function that applies one event to a
//! record, and [`Catalog::apply`] stores the result with a compare-and-set
//! on the record's `seq`, so applying the same events twice, or from two
//! appliers (the ingest worker directly and the control plane from the
//! JetStream event stream), converges on the same record; an event older
//! than the record is skipped.
//!
//! Redis keys (prefix `P`):
//! * `P:video:<id>` — hash `{seq, json}`: the [`VideoRecord`] as JSON and the
//!   `seq` of the last event applied;
//! * `P:videos` — sorted set of ids, all with score 0, so `ZREVRANGEBYLEX`
//!   pages newest first (ULIDs sort by creation time);
//! * `P:channels` — the same for the videos that are live channels (running
//!   or ended);
//! * `P:channels:running` — set of the channels that hold a slot: status
//!   queued, processing or live. Both channel keys are written by the same
//!   compare-and-set script as the record, so they never disagree with it,
//!   and [`Catalog::start_channel`] checks the cap in that script too.

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use stream_bus::{media, video_event::Kind, VideoEvent};

/// Catalogue errors.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("corrupt record {id}: {source}")]
    Corrupt {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("concurrent updates to {0} did not settle")]
    Contended(String),
    /// [`Catalog::start_channel`]: `max` channels are running already.
    #[error("{max} live channels are running already")]
    ChannelCap { max: u64 },
}

/// Lifecycle of a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoStatus {
    Queued,
    Processing,
    /// A live channel that is running: playable, growing LL-HLS playlists.
    Live,
    Ready,
    Failed,
}

/// What makes a video a live channel (set from its `Accepted` event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelRecord {
    /// `normal` or `low`.
    pub latency: String,
    /// DVR window, seconds.
    pub dvr_window_s: f64,
    pub looped: bool,
    /// "file", "generator" or the pulled URL.
    pub source: String,
    /// Wall clock of source time 0, Unix ms (0 until live).
    pub started_at_ms: i64,
}

/// One rendition of a video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionRecord {
    pub name: String,
    /// Pixels; 0 for audio.
    pub width: u32,
    pub height: u32,
    /// Peak / average bitrate, bit/s (0 until measured).
    pub bandwidth_bps: u64,
    pub average_bandwidth_bps: u64,
    pub codecs: String,
    /// Frames per second; 0 for audio.
    pub frame_rate: f64,
    /// Media playlist path relative to the video root.
    pub playlist: String,
    pub audio: bool,
    pub ready: bool,
}

/// What the catalogue holds for one video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoRecord {
    /// ULID.
    pub id: String,
    pub title: String,
    pub status: VideoStatus,
    /// 0–100.
    pub progress_percent: f64,
    /// Seconds; 0 until known.
    pub duration_s: f64,
    pub renditions: Vec<RenditionRecord>,
    /// Master playlist path relative to the video root, once playable.
    pub master_playlist: Option<String>,
    pub error: Option<String>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Delivery attempt of the current transcode (1-based; 0 before).
    pub attempt: u32,
    /// Set for live channels (also after they stop and become VOD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelRecord>,
}

impl VideoRecord {
    /// Whether the master playlist may be served.
    pub fn is_playable(&self) -> bool {
        self.master_playlist.is_some() && self.status != VideoStatus::Failed
    }

    /// A live channel that holds a slot (queued, processing or live); an
    /// ended channel (ready or failed) does not.
    pub fn is_running_channel(&self) -> bool {
        self.channel.is_some()
            && matches!(
                self.status,
                VideoStatus::Queued | VideoStatus::Processing | VideoStatus::Live
            )
    }
}

fn rendition(r: &media::Rendition) -> RenditionRecord {
    RenditionRecord {
        name: r.name.clone(),
        width: r.width,
        height: r.height,
        bandwidth_bps: r.bandwidth_bps,
        average_bandwidth_bps: r.average_bandwidth_bps,
        codecs: r.codecs.clone(),
        frame_rate: r.frame_rate,
        playlist: r.playlist.clone(),
        audio: r.audio,
        ready: r.ready,
    }
}

/// Apply one event to a record (pure). `None` in, `Accepted` or any other
/// event: a record is created (an event may overtake `Accepted`).
pub fn fold(record: Option<VideoRecord>, ev: &VideoEvent) -> VideoRecord {
    let mut r = record.unwrap_or_else(|| VideoRecord {
        id: ev.video_id.clone(),
        title: ev.video_id.clone(),
        status: VideoStatus::Queued,
        progress_percent: 0.0,
        duration_s: 0.0,
        renditions: Vec::new(),
        master_playlist: None,
        error: None,
        created_at_ms: ev.at_ms,
        updated_at_ms: ev.at_ms,
        attempt: 0,
        channel: None,
    });
    r.updated_at_ms = r.updated_at_ms.max(ev.at_ms);
    match &ev.kind {
        Some(Kind::Accepted(a)) => {
            r.title = a.title.clone();
            r.created_at_ms = r.created_at_ms.min(ev.at_ms);
            if let Some(ch) = &a.channel {
                let latency = match media::LiveLatency::try_from(ch.latency) {
                    Ok(media::LiveLatency::Low) => "low",
                    _ => "normal",
                };
                r.channel = Some(ChannelRecord {
                    latency: latency.into(),
                    dvr_window_s: ch.dvr_window_s,
                    looped: ch.r#loop,
                    source: a.source.strip_prefix("live:").unwrap_or(&a.source).into(),
                    started_at_ms: r.channel.as_ref().map_or(0, |c| c.started_at_ms),
                });
            }
        }
        Some(Kind::Live(l)) => {
            r.status = VideoStatus::Live;
            r.renditions = l.renditions.iter().map(rendition).collect();
            r.master_playlist = Some(l.master_playlist.clone());
            r.error = None;
            if let Some(ch) = r.channel.as_mut() {
                ch.started_at_ms = l.started_at_ms;
            }
        }
        Some(Kind::Started(s)) => {
            r.status = VideoStatus::Processing;
            r.duration_s = s.duration_s;
            r.renditions = s.renditions.iter().map(rendition).collect();
            r.attempt = s.attempt;
            r.progress_percent = 0.0;
            r.master_playlist = None;
            r.error = None;
        }
        Some(Kind::Progress(p)) => {
            if r.status == VideoStatus::Queued {
                r.status = VideoStatus::Processing;
            }
            if p.percent.is_finite() {
                r.progress_percent = p.percent.clamp(0.0, 100.0);
            }
        }
        Some(Kind::RenditionReady(rr)) => {
            if let Some(new) = rr.rendition.as_ref() {
                let new = rendition(new);
                match r.renditions.iter_mut().find(|x| x.name == new.name) {
                    Some(slot) => *slot = new,
                    None => r.renditions.push(new),
                }
            }
        }
        Some(Kind::Playable(p)) => r.master_playlist = Some(p.master_playlist.clone()),
        Some(Kind::Ready(done)) => {
            r.status = VideoStatus::Ready;
            r.progress_percent = 100.0;
            r.duration_s = done.duration_s;
            r.renditions = done.renditions.iter().map(rendition).collect();
            r.master_playlist = Some(done.master_playlist.clone());
            r.error = None;
        }
        Some(Kind::Failed(f)) => {
            r.status = VideoStatus::Failed;
            r.error = Some(f.reason.clone());
            r.master_playlist = None;
        }
        None => {}
    }
    r
}

/// Store `json` at `seq` if the stored seq is still `ARGV[1]` ("" = absent)
/// and index the id (`ARGV[4]`) in `P:videos`. For a channel (`ARGV[5]` =
/// `running` or `ended`) also index it in `P:channels` and add it to / remove
/// it from `P:channels:running`; with a cap `ARGV[6]` > 0 a channel that is
/// not yet running is refused when the running set already holds that many.
/// Returns 1 when written, 0 on a lost race, -1 when over the cap (nothing
/// written).
const CAS_SCRIPT: &str = r#"
local cur = redis.call('HGET', KEYS[1], 'seq')
if (cur or '') ~= ARGV[1] then return 0 end
local id = ARGV[4]
if ARGV[5] == 'running' then
  local cap = tonumber(ARGV[6])
  if cap > 0 and redis.call('SISMEMBER', KEYS[4], id) == 0
     and redis.call('SCARD', KEYS[4]) >= cap then
    return -1
  end
  redis.call('SADD', KEYS[4], id)
elseif ARGV[5] == 'ended' then
  redis.call('SREM', KEYS[4], id)
end
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[3], 0, id) end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'json', ARGV[3])
redis.call('ZADD', KEYS[2], 0, id)
return 1
"#;

/// Compare-and-set attempts before [`CatalogError::Contended`].
const MAX_CAS_ATTEMPTS: usize = 8;
/// Largest page of [`Catalog::list`].
pub const MAX_PAGE: usize = 100;

/// The catalogue in Redis.
#[derive(Clone)]
pub struct Catalog {
    redis: ConnectionManager,
    prefix: String,
    cas: redis::Script,
}

impl Catalog {
    /// Connect to `redis_url`; keys are under `prefix:`.
    pub async fn connect(redis_url: &str, prefix: &str) -> Result<Self, CatalogError> {
        let client = redis::Client::open(redis_url)?;
        let redis = ConnectionManager::new(client).await?;
        Ok(Catalog::with_connection(redis, prefix))
    }

    /// Use an existing connection manager.
    pub fn with_connection(redis: ConnectionManager, prefix: &str) -> Self {
        Catalog {
            redis,
            prefix: prefix.to_string(),
            cas: redis::Script::new(CAS_SCRIPT),
        }
    }

    fn video_key(&self, id: &str) -> String {
        format!("{}:video:{id}", self.prefix)
    }

    fn index_key(&self) -> String {
        format!("{}:videos", self.prefix)
    }

    fn channels_key(&self) -> String {
        format!("{}:channels", self.prefix)
    }

    fn running_channels_key(&self) -> String {
        format!("{}:channels:running", self.prefix)
    }

    /// Check the connection (`PING`).
    pub async fn ping(&self) -> Result<(), CatalogError> {
        let mut con = self.redis.clone();
        redis::cmd("PING").query_async::<String>(&mut con).await?;
        Ok(())
    }

    async fn read(&self, id: &str) -> Result<Option<(String, VideoRecord)>, CatalogError> {
        let mut con = self.redis.clone();
        let (seq, json): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.video_key(id))
            .arg("seq")
            .arg("json")
            .query_async(&mut con)
            .await?;
        match (seq, json) {
            (Some(seq), Some(json)) => {
                let record =
                    serde_json::from_str(&json).map_err(|source| CatalogError::Corrupt {
                        id: id.to_string(),
                        source,
                    })?;
                Ok(Some((seq, record)))
            }
            _ => Ok(None),
        }
    }

    /// Apply an event. Returns `false` when the record already reflects a
    /// newer (or the same) event.
    ///
    /// Errors: Redis, a corrupt stored record, [`CatalogError::Contended`]
    /// after 8 lost races.
    pub async fn apply(&self, ev: &VideoEvent) -> Result<bool, CatalogError> {
        self.apply_capped(ev, 0).await
    }

    /// Apply the `Accepted` event of a new live channel unless `max_running`
    /// (> 0) channels are running already; the check and the write are one
    /// Redis script, so concurrent starts never exceed the cap. Returns
    /// `false` like [`Catalog::apply`] when the event was applied before.
    ///
    /// Errors: [`CatalogError::ChannelCap`] when the cap is reached (nothing
    /// written), and those of [`Catalog::apply`].
    pub async fn start_channel(
        &self,
        ev: &VideoEvent,
        max_running: u64,
    ) -> Result<bool, CatalogError> {
        self.apply_capped(ev, max_running.max(1)).await
    }

    async fn apply_capped(&self, ev: &VideoEvent, cap: u64) -> Result<bool, CatalogError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = self.read(&ev.video_id).await?;
            let (expected, record) = match current {
                Some((seq, record)) => {
                    if seq.parse::<u64>().unwrap_or(0) >= ev.seq {
                        return Ok(false);
                    }
                    (seq, Some(record))
                }
                None => (String::new(), None),
            };
            let next = fold(record, ev);
            let channel = match (&next.channel, next.is_running_channel()) {
                (None, _) => "",
                (Some(_), true) => "running",
                (Some(_), false) => "ended",
            };
            let json = serde_json::to_string(&next).map_err(|source| CatalogError::Corrupt {
                id: ev.video_id.clone(),
                source,
            })?;
            let mut con = self.redis.clone();
            let written: i64 = self
                .cas
                .key(self.video_key(&ev.video_id))
                .key(self.index_key())
                .key(self.channels_key())
                .key(self.running_channels_key())
                .arg(&expected)
                .arg(ev.seq.to_string())
                .arg(json)
                .arg(&ev.video_id)
                .arg(channel)
                .arg(cap)
                .invoke_async(&mut con)
                .await?;
            match written {
                1 => return Ok(true),
                -1 => return Err(CatalogError::ChannelCap { max: cap }),
                _ => {}
            }
        }
        Err(CatalogError::Contended(ev.video_id.clone()))
    }

    /// One video.
    pub async fn get(&self, id: &str) -> Result<Option<VideoRecord>, CatalogError> {
        Ok(self.read(id).await?.map(|(_, r)| r))
    }

    /// Viewer sessions of a video alive at `now_ms` (Unix ms): members of
    /// the control plane's `P:video-sessions:<id>` whose expiry is later
    /// (read only here; the control plane's session scripts write it).
    /// Live workers stop an idle pulled channel by it.
    pub async fn live_sessions(&self, id: &str, now_ms: i64) -> Result<u64, CatalogError> {
        let mut conn = self.redis.clone();
        let key = format!("{}:video-sessions:{id}", self.prefix);
        let n: u64 = redis::cmd("ZCOUNT")
            .arg(&key)
            .arg(format!("({now_ms}"))
            .arg("+inf")
            .query_async(&mut conn)
            .await?;
        Ok(n)
    }

    /// Videos newest first: up to `limit` (clamped to 1..=[`MAX_PAGE`])
    /// strictly older than `after` (an id from a previous page). Returns the
    /// page and the id to continue after, if more may follow.
    pub async fn list(
        &self,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<VideoRecord>, Option<String>), CatalogError> {
        self.page(self.index_key(), limit, after).await
    }

    /// Live channels (running and ended) newest first, paged like
    /// [`Catalog::list`].
    pub async fn list_channels(
        &self,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<VideoRecord>, Option<String>), CatalogError> {
        self.page(self.channels_key(), limit, after).await
    }

    /// How many channels hold a slot (queued, processing or live): one
    /// `SCARD`.
    pub async fn running_channels(&self) -> Result<u64, CatalogError> {
        let mut con = self.redis.clone();
        Ok(redis::cmd("SCARD")
            .arg(self.running_channels_key())
            .query_async(&mut con)
            .await?)
    }

    async fn page(
        &self,
        index: String,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<VideoRecord>, Option<String>), CatalogError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let max = match after {
            Some(id) => format!("({id}"),
            None => "+".to_string(),
        };
        let mut con = self.redis.clone();
        let ids: Vec<String> = redis::cmd("ZREVRANGEBYLEX")
            .arg(index)
            .arg(max)
            .arg("-")
            .arg("LIMIT")
            .arg(0)
            .arg(limit + 1)
            .query_async(&mut con)
            .await?;
        let more = ids.len() > limit;
        let mut out = Vec::with_capacity(limit);
        for id in ids.iter().take(limit) {
            if let Some(r) = self.get(id).await? {
                out.push(r);
            }
        }
        let next = if more {
            ids.get(limit - 1).cloned()
        } else {
            None
        };
        Ok((out, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stream_bus::{event, media};

    fn id() -> String {
        "01JABCDEFGHJKMNPQRSTVWXYZ0".to_string()
    }

    #[test]
    fn fold_walks_the_lifecycle() {
        let r = fold(
            None,
            &event(
                &id(),
                Kind::Accepted(media::Accepted {
                    title: "bunny".into(),
                    size_bytes: 10,
                    source: "upload".into(),
                    channel: None,
                }),
            ),
        );
        assert_eq!((r.status, r.title.as_str()), (VideoStatus::Queued, "bunny"));
        let r = fold(
            Some(r),
            &event(
                &id(),
                Kind::Progress(media::Progress {
                    percent: 42.0,
                    ..Default::default()
                }),
            ),
        );
        assert_eq!(
            (r.status, r.progress_percent),
            (VideoStatus::Processing, 42.0)
        );
        let r = fold(
            Some(r),
            &event(
                &id(),
                Kind::Failed(media::Failed {
                    reason: "truncated".into(),
                    input_error: true,
                }),
            ),
        );
        assert_eq!(r.status, VideoStatus::Failed);
        assert!(!r.is_playable());
        assert_eq!(r.error.as_deref(), Some("truncated"));
    }

    #[test]
    fn nan_progress_is_ignored() {
        let r = fold(
            None,
            &event(
                &id(),
                Kind::Progress(media::Progress {
                    percent: f64::NAN,
                    ..Default::default()
                }),
            ),
        );
        assert_eq!(r.progress_percent, 0.0);
    }
}
