//! Shared feeds of the native stream: one producer per (video, track) reads
//! the published fMP4 from the media store once, turns it into frames
//! encoded once ([`MediaFrame`]), and hands the same `Bytes` to every
//! session through a bounded `broadcast` ring. A session that falls more
//! than the ring behind gets `Lagged` and skips to the next keyframe; it
//! never holds up the producer or the other sessions.
//!
//! * A **VOD** is played as a live stream (kn-sock's semantics), looped,
//!   paced by its PTS against one [`PlayClock`] per video, so that every
//!   rendition and the audio of a video are at the same position and a
//!   session can switch renditions at an aligned keyframe.
//! * A **live channel** is followed part by part: each LL-HLS part is sent
//!   as soon as the playlist that lists it is published (woken by the same
//!   NATS notification as blocked playlist requests, [`LiveNotifier`]).
//! * **Markers** of a video: one Redis change feed per video with viewers,
//!   forwarded as metadata frames.
//!
//! A feed lives while someone holds a [`Subscription`]: the last one
//! dropped cancels its producer.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use stream_hls::live::{LiveConfig, LivePlaylist};
use stream_native::cmaf::Track;
use stream_native::control::Metadata;
use stream_native::frame::{Flags, Frame, FrameKind, TICKS_PER_SECOND};
use stream_store::MediaStore;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::live::LiveNotifier;

/// A frame as every session sends it: decoded fields (to re-encode with
/// other flags, e.g. a rendition switch) and the wire bytes, encoded once.
#[derive(Debug)]
pub struct MediaFrame {
    pub frame: Frame,
    pub wire: Bytes,
}

impl MediaFrame {
    /// Encode `frame` once.
    pub fn new(frame: Frame) -> Arc<MediaFrame> {
        let wire = frame.encode();
        Arc::new(MediaFrame { frame, wire })
    }
}

/// What a feed carries.
#[derive(Debug, Clone)]
pub enum FeedItem {
    Media(Arc<MediaFrame>),
    /// The source ended (a channel stopped) or failed; the reason says which.
    End(Arc<str>),
}

/// What to read for a feed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeedSpec {
    pub video: String,
    /// Track directory, e.g. "720p" or "audio"; "" for markers.
    pub track: String,
    /// Media playlist path relative to the video root, e.g. "720p/index.m3u8".
    pub playlist: String,
    /// Rendition id written in the frames ([`stream_native::frame::NO_RENDITION`] for audio).
    pub rendition: u8,
    pub kind: FrameKind,
    /// Follow a running channel's parts instead of looping a VOD.
    pub live: bool,
}

/// A video's shared playback clock (VOD played live): media time 0 of loop
/// 0 is at `anchor`.
#[derive(Debug)]
pub struct PlayClock {
    anchor: Instant,
}

/// Video frames a feed keeps for joiners at most (its current GOP).
const RECENT_FRAMES: usize = 512;
/// Audio a feed keeps for joiners, 90 kHz ticks (3 s).
const RECENT_AUDIO_TICKS: i64 = 3 * TICKS_PER_SECOND;

/// What the producer and the subscribers share: the ring and the recent
/// frames a joiner starts with (the GOP cache: from the last keyframe for
/// video, the last 3 s for audio), so that a session joins at once, at a
/// keyframe, with its audio from the same moment.
struct FeedCore {
    kind: FrameKind,
    tx: broadcast::Sender<FeedItem>,
    recent: Mutex<VecDeque<Arc<MediaFrame>>>,
}

impl FeedCore {
    fn publish(&self, frame: Frame) {
        let f = MediaFrame::new(frame);
        // The lock spans the send so that a joiner's backlog and ring meet
        // exactly (see `join`).
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        match self.kind {
            FrameKind::Video if f.frame.is_keyframe() => recent.clear(),
            FrameKind::Audio => {
                while recent
                    .front()
                    .is_some_and(|o| f.frame.pts - o.frame.pts > RECENT_AUDIO_TICKS)
                {
                    recent.pop_front();
                }
            }
            _ => {}
        }
        if self.kind != FrameKind::Metadata {
            if recent.len() >= RECENT_FRAMES {
                recent.pop_front();
            }
            recent.push_back(f.clone());
        }
        let _ = self.tx.send(FeedItem::Media(f));
    }

    fn end(&self, reason: &str) {
        let _ = self.tx.send(FeedItem::End(reason.into()));
    }

    fn join(&self) -> (broadcast::Receiver<FeedItem>, Vec<Arc<MediaFrame>>) {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        (self.tx.subscribe(), recent.iter().cloned().collect())
    }
}

/// One running feed.
pub struct Feed {
    core: Arc<FeedCore>,
    stop: CancellationToken,
    _clock: Option<Arc<PlayClock>>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A session's hold on a feed.
pub struct Subscription {
    pub rx: broadcast::Receiver<FeedItem>,
    /// The feed's recent frames at the moment of joining (oldest first;
    /// video from a keyframe); the ring continues right after them.
    pub backlog: Vec<Arc<MediaFrame>>,
    _feed: Arc<Feed>,
}

/// Feeds by (video, track).
pub struct FeedHub {
    store: MediaStore,
    markers: stream_markers::MarkerStore,
    live: Arc<LiveNotifier>,
    feeds: Mutex<HashMap<FeedSpec, Weak<Feed>>>,
    clocks: Mutex<HashMap<String, Weak<PlayClock>>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Frames a session may fall behind before it skips to a keyframe.
    capacity: usize,
}

/// A live feed re-reads its playlist at least this often, should
/// notifications stop.
const LIVE_SAFETY_WAKE: Duration = Duration::from_secs(1);

impl FeedHub {
    /// A hub whose producers stop at `shutdown`; `capacity` frames per
    /// session ring (≥ 16).
    pub fn new(
        store: MediaStore,
        markers: stream_markers::MarkerStore,
        live: Arc<LiveNotifier>,
        capacity: usize,
        shutdown: CancellationToken,
    ) -> Arc<FeedHub> {
        Arc::new(FeedHub {
            store,
            markers,
            live,
            feeds: Mutex::default(),
            clocks: Mutex::default(),
            tasks: TaskTracker::new(),
            shutdown,
            capacity: capacity.max(16),
        })
    }

    /// Join the feed of `spec`, starting its producer if nobody watches it.
    pub fn subscribe(self: &Arc<Self>, spec: &FeedSpec) -> Subscription {
        let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(feed) = feeds.get(spec).and_then(Weak::upgrade) {
            let (rx, backlog) = feed.core.join();
            return Subscription {
                rx,
                backlog,
                _feed: feed,
            };
        }
        feeds.retain(|_, f| f.strong_count() > 0);
        let core = Arc::new(FeedCore {
            kind: spec.kind,
            tx: broadcast::channel(self.capacity).0,
            recent: Mutex::default(),
        });
        let (rx, backlog) = core.join();
        let stop = self.shutdown.child_token();
        let clock =
            (!spec.live && spec.kind != FrameKind::Metadata).then(|| self.clock(&spec.video));
        let feed = Arc::new(Feed {
            core: core.clone(),
            stop: stop.clone(),
            _clock: clock.clone(),
        });
        feeds.insert(spec.clone(), Arc::downgrade(&feed));
        let hub = self.clone();
        let spec = spec.clone();
        self.tasks.spawn(async move {
            let result = match (spec.kind, spec.live, clock) {
                (FrameKind::Metadata, _, _) => hub.markers(&spec, &core, &stop).await,
                (_, true, _) => hub.follow_live(&spec, &core, &stop).await,
                (_, false, Some(clock)) => hub.play_vod(&spec, &core, &stop, &clock).await,
                (_, false, None) => Err("no play clock".into()),
            };
            if let Err(reason) = result {
                if !stop.is_cancelled() {
                    warn!(video = %spec.video, track = %spec.track, %reason, "native feed failed");
                    core.end(&reason);
                }
            }
        });
        Subscription {
            rx,
            backlog,
            _feed: feed,
        }
    }

    /// Wait for every producer after shutdown (bounded by the caller).
    pub async fn closed(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn clock(&self, video: &str) -> Arc<PlayClock> {
        let mut clocks = self.clocks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clocks.get(video).and_then(Weak::upgrade) {
            return c;
        }
        clocks.retain(|_, c| c.strong_count() > 0);
        let c = Arc::new(PlayClock {
            anchor: Instant::now(),
        });
        clocks.insert(video.to_string(), Arc::downgrade(&c));
        c
    }

    async fn get(&self, video: &str, rel: &str) -> Result<Bytes, String> {
        let key = MediaStore::video_object(video, rel);
        match self.store.get_bytes(&key).await {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Err(format!("{rel} is not in the media store")),
            Err(e) => Err(format!("reading {rel}: {e}")),
        }
    }

    async fn track(&self, spec: &FeedSpec) -> Result<Track, String> {
        let init = self
            .get(
                &spec.video,
                &format!("{}/{}", spec.track, stream_hls::path::INIT_NAME),
            )
            .await?;
        Track::parse_init(&init).map_err(|e| format!("{}/init.mp4: {e}", spec.track))
    }

    /// The frames of one segment or part with their decode times, both
    /// shifted by `pts_offset` ticks.
    async fn frames(
        &self,
        spec: &FeedSpec,
        track: &Track,
        uri: &str,
        pts_offset: i64,
    ) -> Result<Vec<(i64, Frame)>, String> {
        let rel = format!("{}/{uri}", spec.track);
        let bytes = self.get(&spec.video, &rel).await?;
        let samples = track.samples(&bytes).map_err(|e| format!("{rel}: {e}"))?;
        samples
            .iter()
            .map(|s| {
                let au = track.access_unit(s).map_err(|e| format!("{rel}: {e}"))?;
                let frame = Frame {
                    kind: spec.kind,
                    flags: if au.keyframe && spec.kind == FrameKind::Video {
                        Flags::KEYFRAME
                    } else {
                        Flags::default()
                    },
                    rendition: spec.rendition,
                    pts: au.pts.saturating_add(pts_offset),
                    duration: au.duration,
                    payload: au.payload,
                };
                Ok((au.dts.saturating_add(pts_offset), frame))
            })
            .collect()
    }

    /// Loop a VOD rendition at real time against the video's play clock.
    async fn play_vod(
        &self,
        spec: &FeedSpec,
        core: &FeedCore,
        stop: &CancellationToken,
        clock: &PlayClock,
    ) -> Result<(), String> {
        let text = self.get(&spec.video, &spec.playlist).await?;
        let playlist = stream_hls::m3u8_rs::parse_media_playlist_res(&text)
            .map_err(|e| format!("{}: not a media playlist: {e:?}", spec.playlist))?;
        let segments: Vec<(String, f64)> = playlist
            .segments
            .iter()
            .map(|s| (s.uri.clone(), f64::from(s.duration)))
            .collect();
        let total_s: f64 = segments.iter().map(|s| s.1).sum();
        if segments.is_empty() || total_s <= 0.0 {
            return Err(format!("{} lists no segment", spec.playlist));
        }
        let track = self.track(spec).await?;
        let total = Duration::from_secs_f64(total_s);
        let elapsed = clock.anchor.elapsed();
        let mut lap = (elapsed.as_secs_f64() / total_s).floor() as u32;
        // Start with the segment that holds the clock's position (its
        // first frame is a keyframe, aligned across renditions).
        let position = elapsed.as_secs_f64() - f64::from(lap) * total_s;
        let mut start = 0usize;
        let mut at = 0.0;
        for (i, (_, d)) in segments.iter().enumerate() {
            if at + d > position {
                start = i;
                break;
            }
            at += d;
        }
        // Bounded by `stop`: one lap per pass over the segment list. Laps
        // continue the PTS (no discontinuity: the timeline is continuous).
        loop {
            let lap_start = clock.anchor + total * lap;
            let offset = (f64::from(lap) * total_s * TICKS_PER_SECOND as f64).round() as i64;
            for (uri, _) in &segments[start..] {
                let frames = self.frames(spec, &track, uri, offset).await?;
                // Paced by decode time: access units go out in decode order,
                // evenly (pacing by PTS would burst B-frames after their P).
                for (dts, frame) in frames {
                    let media = Duration::from_secs_f64(
                        ((dts - offset).max(0)) as f64 / TICKS_PER_SECOND as f64,
                    );
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep_until(lap_start + media) => {}
                    }
                    core.publish(frame);
                }
            }
            start = 0;
            lap += 1;
        }
    }

    /// Follow a running channel's rendition part by part.
    async fn follow_live(
        &self,
        spec: &FeedSpec,
        core: &FeedCore,
        stop: &CancellationToken,
    ) -> Result<(), String> {
        let mut updates = self.live.updates(&spec.video, &spec.track);
        let track = self.track(spec).await?;
        // The next part to send: (media sequence number, part index).
        let mut next: Option<(u64, usize)> = None;
        loop {
            let text = self.get(&spec.video, &spec.playlist).await?;
            let playlist =
                LivePlaylist::parse(&String::from_utf8_lossy(&text), LiveConfig::for_reading())
                    .map_err(|e| format!("{}: {e}", spec.playlist))?;
            // Every listed part in order, with its position.
            let mut parts = Vec::new();
            for (msn, seg) in (playlist.media_sequence()..).zip(playlist.segments()) {
                for (j, p) in seg.parts.iter().enumerate() {
                    parts.push((
                        (msn, j),
                        p.uri.clone(),
                        p.independent,
                        j == 0 && seg.discontinuity,
                        p.duration_s,
                    ));
                }
            }
            for (j, p) in playlist.open_segment().1.iter().enumerate() {
                parts.push((
                    (playlist.next_msn(), j),
                    p.uri.clone(),
                    p.independent,
                    false,
                    p.duration_s,
                ));
            }
            let from = match next {
                Some(n) => n,
                // Video joins at the newest independent part (decoding
                // starts there, up to a segment back); audio, every part of
                // which is independent, as far back as a segment can be
                // (the session drops what precedes its first keyframe).
                None if spec.kind == FrameKind::Audio => {
                    let back = f64::from(playlist.target_duration()) + 0.5;
                    let mut covered = 0.0;
                    let mut from = (u64::MAX, 0);
                    for p in parts.iter().rev() {
                        from = p.0;
                        covered += p.4;
                        if covered >= back {
                            break;
                        }
                    }
                    from
                }
                None => parts
                    .iter()
                    .rev()
                    .find(|p| p.2)
                    .map(|p| p.0)
                    .unwrap_or((u64::MAX, 0)),
            };
            for (pos, uri, _, discontinuity, _) in parts.iter().filter(|p| p.0 >= from) {
                let frames = self.frames(spec, &track, uri, 0).await?;
                for (i, (_, mut frame)) in frames.into_iter().enumerate() {
                    if i == 0 && *discontinuity {
                        frame.flags = frame.flags | Flags::DISCONTINUITY;
                    }
                    core.publish(frame);
                }
                next = Some((pos.0, pos.1 + 1));
            }
            if playlist.is_ended() {
                core.end("the channel ended");
                return Ok(());
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                changed = updates.changed() => {
                    if changed.is_err() {
                        updates = self.live.updates(&spec.video, &spec.track);
                    }
                }
                // A safety net should notifications stop.
                _ = tokio::time::sleep(LIVE_SAFETY_WAKE) => {}
            }
        }
    }

    /// Forward a video's marker changes as metadata frames.
    async fn markers(
        &self,
        spec: &FeedSpec,
        core: &FeedCore,
        stop: &CancellationToken,
    ) -> Result<(), String> {
        let mut after = self
            .markers
            .version(&spec.video)
            .await
            .map_err(|e| e.to_string())?;
        let mut feed = self
            .markers
            .feed(&spec.video)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let changes = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                c = feed.next_after(after, 100) => c,
            };
            let changes = match changes {
                Ok(c) => c,
                Err(e) => {
                    debug!(error = %e, "marker feed read failed; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            for change in changes {
                after = change.id;
                let meta = match &change.marker {
                    Some(m) => Metadata::Markers {
                        markers: vec![serde_json::to_value(m).unwrap_or_default()],
                    },
                    None => Metadata::MarkerDeleted {
                        id: change.marker_id.clone(),
                    },
                };
                let pts = change
                    .marker
                    .as_ref()
                    .map(|m| (m.input.media_time * TICKS_PER_SECOND as f64).round() as i64)
                    .unwrap_or(0);
                core.publish(meta.to_frame(pts));
            }
        }
    }
}
