//! The native TCP stream (port 9000; wire format in `stream-native`, spec
//! in `docs/native-stream.md`).
//!
//! A connection: the client's `hello` (protocol version, the playback token
//! of the control plane's `OpenSession`, the video or channel id) within
//! [`NativeLimits::handshake_timeout`]; the edge checks the token (HS256,
//! shared `CONTROL_TOKEN_SECRET`) and the catalogue, answers `welcome` (the
//! ladder) or a typed error and closes. Then it sends the video frames of
//! one rendition, the audio and the markers from shared [`feed`]s, and
//! switches rendition at the first keyframe of the new one after the
//! control plane's decision for the session arrives on NATS
//! (`P.session.<id>.decision`, published for `CLIENT_KIND_TCP` sessions).
//!
//! Bounds: connections (`EDGE_NATIVE_MAX_CONNECTIONS`; one over the cap is
//! told `busy` and closed), the handshake time, each socket write
//! ([`NativeLimits::write_timeout`]: a client that stops reading is closed),
//! each session's ring of frames (a slow client skips to the next keyframe,
//! counted), the size of a client frame.

pub mod feed;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use stream_auth::TokenSigner;
use stream_catalog::{VideoRecord, VideoStatus};
use stream_native::cmaf::{Codec, Track};
use stream_native::control::{
    AudioInfo, Control, ErrorCode, Metadata, RenditionInfo, MAX_CONTROL_BYTES,
};
use stream_native::frame::{Flags, FrameDecoder, FrameKind, NO_RENDITION, VERSION};
use stream_proto::control::v1 as pb;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::AppState;
use feed::{FeedHub, FeedItem, FeedSpec, MediaFrame, Subscription};

/// Bounds of the native server.
#[derive(Debug, Clone)]
pub struct NativeLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Time for the client's hello.
    pub handshake_timeout: Duration,
    /// Longest one socket write may block before the client is dropped.
    pub write_timeout: Duration,
    /// Frames a session may fall behind its feed before skipping to a
    /// keyframe (the per-session bound).
    pub queue_frames: usize,
    /// Kernel send buffer of a session's socket, bytes: small, so that a
    /// slow client falls behind in the feed's ring (and skips to a
    /// keyframe) instead of in seconds of stale media queued in the kernel.
    pub send_buffer_bytes: usize,
}

impl Default for NativeLimits {
    fn default() -> Self {
        NativeLimits {
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            queue_frames: 256,
            send_buffer_bytes: 256 * 1024,
        }
    }
}

/// Counters of the native server (process-wide).
#[derive(Debug, Default)]
pub struct NativeStats {
    pub sessions_opened: AtomicU64,
    pub sessions_refused: AtomicU64,
    /// Frames skipped by slow sessions (to the next keyframe).
    pub frames_skipped: AtomicU64,
    pub rendition_switches: AtomicU64,
}

/// The native server's shared state.
pub struct NativeServer {
    state: Arc<AppState>,
    hub: Arc<FeedHub>,
    signer: Option<TokenSigner>,
    limits: NativeLimits,
    pub stats: NativeStats,
}

/// Pending video frames held for a switch, at most (about 10 s at 25 fps).
const MAX_HELD: usize = 256;
/// Audio frames waiting for their video, at most (about 5 s at 48 kHz).
const MAX_AUDIO_WAIT: usize = 256;
/// Longest audio waits for the video it goes with (a late video feed
/// must not hold up the sound for long).
const AUDIO_HOLD: Duration = Duration::from_millis(500);

impl NativeServer {
    /// A server over the edge's state; `token_secret` is the control
    /// plane's `CONTROL_TOKEN_SECRET` (without it every hello is refused).
    pub fn new(
        state: Arc<AppState>,
        token_secret: Option<&str>,
        limits: NativeLimits,
        shutdown: CancellationToken,
    ) -> Arc<NativeServer> {
        let hub = FeedHub::new(
            state.store.clone(),
            state.markers.clone(),
            state.live.clone(),
            limits.queue_frames,
            shutdown,
        );
        Arc::new(NativeServer {
            state,
            hub,
            signer: token_secret.map(|s| TokenSigner::new(s.as_bytes(), 0)),
            limits,
            stats: NativeStats::default(),
        })
    }

    /// Accept connections until `shutdown`, then end every session (each
    /// is told `end`) and wait for them.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.limits.max_connections));
        let sessions = TaskTracker::new();
        info!(addr = ?listener.local_addr().ok(), "native stream listening");
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    warn!(error = %e, "native accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                self.stats.sessions_refused.fetch_add(1, Ordering::Relaxed);
                // One non-blocking write, no task: the refusal costs nothing.
                let err = Control::Error {
                    code: ErrorCode::Busy,
                    reason: format!(
                        "the edge has {} native connections, its limit",
                        self.limits.max_connections
                    ),
                };
                let _ = stream.try_write(&err.to_frame().encode());
                continue;
            };
            let server = self.clone();
            let shutdown = shutdown.clone();
            sessions.spawn(async move {
                server.session(stream, peer, shutdown).await;
                drop(slot);
            });
        }
        sessions.close();
        if tokio::time::timeout(Duration::from_secs(5), sessions.wait())
            .await
            .is_err()
        {
            warn!("native sessions did not end within 5 s of shutdown");
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.hub.closed()).await;
    }

    async fn session(&self, stream: TcpStream, peer: SocketAddr, shutdown: CancellationToken) {
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(self.limits.send_buffer_bytes);
        let (rd, mut wr) = stream.into_split();
        let mut reader = FramedRead::new(rd, FrameDecoder::new(MAX_CONTROL_BYTES as u32));
        let hello = match tokio::time::timeout(self.limits.handshake_timeout, reader.next()).await {
            Err(_) => Err((
                ErrorCode::BadRequest,
                format!("no hello within {:?}", self.limits.handshake_timeout),
            )),
            Ok(None) => return,
            Ok(Some(Err(e))) => Err((ErrorCode::UnsupportedVersion, e.to_string())),
            Ok(Some(Ok(frame))) => {
                Control::from_frame(&frame).map_err(|e| (ErrorCode::BadRequest, e))
            }
        };
        let plan = match hello {
            Ok(hello) => self.open(hello).await,
            Err(e) => Err(e),
        };
        let plan = match plan {
            Ok(p) => p,
            Err((code, reason)) => {
                self.stats.sessions_refused.fetch_add(1, Ordering::Relaxed);
                debug!(%peer, ?code, %reason, "native hello refused");
                let err = Control::Error { code, reason };
                let _ = self.write(&mut wr, &err.to_frame().encode()).await;
                let _ = wr.shutdown().await;
                return;
            }
        };
        self.stats.sessions_opened.fetch_add(1, Ordering::Relaxed);
        info!(%peer, session = %plan.session_id, video = %plan.video.id, "native session opened");
        let session_id = plan.session_id.clone();
        let mut skipped = 0u64;
        let reason = self
            .stream(plan, &mut reader, &mut wr, &shutdown, &mut skipped)
            .await;
        let end = Control::End {
            reason: reason.clone(),
        };
        let _ = self.write(&mut wr, &end.to_frame().encode()).await;
        let _ = wr.shutdown().await;
        info!(%peer, session = %session_id, %reason, frames_skipped = skipped, "native session ended");
    }

    async fn write(&self, wr: &mut OwnedWriteHalf, bytes: &Bytes) -> Result<(), String> {
        match tokio::time::timeout(self.limits.write_timeout, wr.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Err(_) => Err(format!(
                "the client read nothing for {:?}",
                self.limits.write_timeout
            )),
        }
    }

    /// Check the hello; the session's plan or a typed refusal.
    async fn open(&self, hello: Control) -> Result<Plan, (ErrorCode, String)> {
        let Control::Hello {
            version,
            token,
            id,
            rendition,
        } = hello
        else {
            return Err((
                ErrorCode::BadRequest,
                "the first frame must be a hello".into(),
            ));
        };
        if version != VERSION {
            return Err((
                ErrorCode::UnsupportedVersion,
                format!("protocol version {version}; this edge speaks {VERSION}"),
            ));
        }
        let signer = self.signer.as_ref().ok_or((
            ErrorCode::Unauthorized,
            "this edge has no CONTROL_TOKEN_SECRET to check playback tokens".to_string(),
        ))?;
        let claims = signer.verify(&token).map_err(|e| {
            (
                ErrorCode::Unauthorized,
                format!("playback token refused: {e}"),
            )
        })?;
        if claims.vid != id {
            return Err((
                ErrorCode::Unauthorized,
                format!("the token is for video {}, not {id}", claims.vid),
            ));
        }
        if id.parse::<stream_hls::VideoId>().is_err() {
            return Err((
                ErrorCode::BadRequest,
                format!("{id:?} is not a video id (ULID)"),
            ));
        }
        let video = self
            .state
            .catalog
            .get(&id)
            .await
            .map_err(|e| (ErrorCode::Internal, format!("catalogue: {e}")))?
            .ok_or((ErrorCode::NotFound, format!("no video {id}")))?;
        let live = match video.status {
            VideoStatus::Live => true,
            VideoStatus::Ready => false,
            other => {
                return Err((
                    ErrorCode::NotFound,
                    format!("video {id} is {other:?}, not playable"),
                ));
            }
        };
        let mut ladder: Vec<_> = video
            .renditions
            .iter()
            .filter(|r| !r.audio && (live || r.ready))
            .cloned()
            .collect();
        ladder.sort_by_key(|r| r.bandwidth_bps);
        ladder.truncate(usize::from(NO_RENDITION));
        if ladder.is_empty() {
            return Err((
                ErrorCode::NotFound,
                format!("video {id} has no video rendition"),
            ));
        }
        let start = match &rendition {
            Some(name) => ladder
                .iter()
                .position(|r| &r.name == name)
                .ok_or((ErrorCode::BadRequest, format!("no rendition {name:?}")))?,
            None => 0,
        };
        let audio = match video
            .renditions
            .iter()
            .find(|r| r.audio && (live || r.ready))
        {
            Some(r) => self.audio_info(&id, r).await,
            None => None,
        };
        Ok(Plan {
            session_id: claims.sub,
            live,
            ladder,
            start: start as u8,
            audio,
            video,
        })
    }

    async fn audio_info(
        &self,
        id: &str,
        r: &stream_catalog::RenditionRecord,
    ) -> Option<(String, String, AudioInfo)> {
        let track = r.playlist.split('/').next()?.to_string();
        let key = stream_store::MediaStore::video_object(
            id,
            &format!("{track}/{}", stream_hls::path::INIT_NAME),
        );
        let init = self.state.store.get_bytes(&key).await.ok()??;
        match Track::parse_init(&init) {
            Ok(Track {
                codec:
                    Codec::Aac {
                        sample_rate,
                        channels,
                        ..
                    },
                ..
            }) => Some((
                track,
                r.playlist.clone(),
                AudioInfo {
                    sample_rate,
                    channels,
                    codecs: r.codecs.clone(),
                },
            )),
            Ok(_) => None,
            Err(e) => {
                warn!(video = %id, error = %e, "audio track unreadable; streaming video only");
                None
            }
        }
    }

    fn spec(&self, plan: &Plan, rendition: u8) -> FeedSpec {
        let r = &plan.ladder[usize::from(rendition)];
        FeedSpec {
            video: plan.video.id.clone(),
            track: r.playlist.split('/').next().unwrap_or(&r.name).to_string(),
            playlist: r.playlist.clone(),
            rendition,
            kind: FrameKind::Video,
            live: plan.live,
        }
    }

    /// Send media until the client leaves, the source ends or `shutdown`;
    /// returns why.
    async fn stream(
        &self,
        plan: Plan,
        reader: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, FrameDecoder>,
        wr: &mut OwnedWriteHalf,
        shutdown: &CancellationToken,
        skipped: &mut u64,
    ) -> String {
        let welcome = Control::Welcome {
            session_id: plan.session_id.clone(),
            video_id: plan.video.id.clone(),
            live: plan.live,
            renditions: plan
                .ladder
                .iter()
                .map(|r| RenditionInfo {
                    name: r.name.clone(),
                    bandwidth_bps: r.bandwidth_bps,
                    width: r.width,
                    height: r.height,
                    codecs: r.codecs.clone(),
                })
                .collect(),
            rendition: plan.start,
            audio: plan.audio.as_ref().map(|a| a.2.clone()),
        };
        if let Err(e) = self.write(wr, &welcome.to_frame().encode()).await {
            return e;
        }
        // Markers so far, then their changes.
        let markers = self.hub.subscribe(&FeedSpec {
            video: plan.video.id.clone(),
            track: String::new(),
            playlist: String::new(),
            rendition: NO_RENDITION,
            kind: FrameKind::Metadata,
            live: plan.live,
        });
        if let Ok((jsons, _, _)) = self
            .state
            .markers
            .range_json(&plan.video.id, f64::NEG_INFINITY, f64::INFINITY, 1000)
            .await
        {
            let markers = jsons
                .iter()
                .filter_map(|j| serde_json::from_str(j).ok())
                .collect();
            let frame = Metadata::Markers { markers }.to_frame(0);
            if let Err(e) = self.write(wr, &frame.encode()).await {
                return e;
            }
        }
        let subject =
            stream_bus::Subjects::new(&self.state.bus_prefix).session_decision(&plan.session_id);
        let mut decisions = match self.state.nats.subscribe(subject).await {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "no decision subscription; the session keeps its rendition");
                None
            }
        };
        let mut s = SessionState {
            current: plan.start,
            video: self.hub.subscribe(&self.spec(&plan, plan.start)),
            pending: None,
            held: VecDeque::new(),
            max_pts: None,
            need_key: true,
            discontinuity: false,
            audio_wait: VecDeque::new(),
            audio_from: None,
        };
        let mut audio = plan.audio.as_ref().map(|(track, playlist, _)| {
            self.hub.subscribe(&FeedSpec {
                video: plan.video.id.clone(),
                track: track.clone(),
                playlist: playlist.clone(),
                rendition: NO_RENDITION,
                kind: FrameKind::Audio,
                live: plan.live,
            })
        });
        // Join with the feeds' recent frames: video from its last keyframe,
        // audio from the same moment.
        if let Some(a) = audio.as_mut() {
            for f in std::mem::take(&mut a.backlog) {
                s.queue_audio(f);
            }
        }
        for f in std::mem::take(&mut s.video.backlog) {
            if let Some(e) = self.on_video(&mut s, f, wr).await {
                return e;
            }
        }
        let mut markers = Some(markers);
        // Bounded by the client, the feeds and `shutdown`.
        loop {
            let audio_due = s.audio_wait.front().map(|(_, at)| *at + AUDIO_HOLD);
            tokio::select! {
                _ = shutdown.cancelled() => return "the edge is shutting down".into(),
                item = s.video.rx.recv() => {
                    match item {
                        Ok(FeedItem::Media(f)) => {
                            if let Some(e) = self.on_video(&mut s, f, wr).await {
                                return e;
                            }
                        }
                        Ok(FeedItem::End(reason)) => return reason.to_string(),
                        Err(RecvError::Lagged(n)) => {
                            self.stats.frames_skipped.fetch_add(n, Ordering::Relaxed);
                            *skipped += n;
                            s.need_key = true;
                            s.discontinuity = true;
                        }
                        Err(RecvError::Closed) => return "the feed closed".into(),
                    }
                }
                item = recv(&mut s.pending) => {
                    match item {
                        Some(Ok(FeedItem::Media(f))) => s.hold(f),
                        Some(Err(RecvError::Lagged(_))) => s.held.clear(),
                        Some(Ok(FeedItem::End(_)) | Err(RecvError::Closed)) => {
                            s.pending = None;
                            s.held.clear();
                        }
                        None => {}
                    }
                    if s.held.len() > MAX_HELD {
                        if let Some(e) = self.switch(&mut s, wr).await {
                            return e;
                        }
                    }
                }
                item = recv(&mut audio) => {
                    match item {
                        Some(Ok(FeedItem::Media(f))) => s.queue_audio(f),
                        Some(Err(RecvError::Lagged(n))) => {
                            self.stats.frames_skipped.fetch_add(n, Ordering::Relaxed);
                            *skipped += n;
                        }
                        Some(Ok(FeedItem::End(_)) | Err(RecvError::Closed)) => audio = None,
                        None => {}
                    }
                }
                _ = sleep_until(audio_due) => {
                    if let Some(e) = self.flush_audio(&mut s, wr, true).await {
                        return e;
                    }
                }
                item = recv(&mut markers) => {
                    match item {
                        Some(Ok(FeedItem::Media(f))) => {
                            if let Err(e) = self.write(wr, &f.wire).await {
                                return e;
                            }
                        }
                        Some(Ok(FeedItem::End(_)) | Err(RecvError::Closed)) => markers = None,
                        _ => {}
                    }
                }
                msg = next_decision(&mut decisions) => {
                    match msg {
                        Some(msg) => self.on_decision(&plan, &mut s, &msg.payload),
                        None => decisions = None,
                    }
                }
                frame = reader.next() => {
                    match frame {
                        None => return "the client closed the connection".into(),
                        Some(Err(e)) => return format!("client stream: {e}"),
                        // Nothing is expected from the client after the
                        // hello yet; frames are read (bounded) and ignored.
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
    }

    async fn on_video(
        &self,
        s: &mut SessionState,
        f: Arc<MediaFrame>,
        wr: &mut OwnedWriteHalf,
    ) -> Option<String> {
        if s.held.front().is_some_and(|k| f.frame.pts >= k.frame.pts) {
            // The old rendition reached the new one's keyframe: switch.
            return self.switch(s, wr).await;
        }
        let mut bytes = f.wire.clone();
        if s.need_key {
            if !f.frame.is_keyframe() {
                return None;
            }
            s.need_key = false;
            s.audio_from.get_or_insert(f.frame.pts);
            if std::mem::take(&mut s.discontinuity) {
                bytes = f
                    .frame
                    .with_flags(f.frame.flags | Flags::DISCONTINUITY)
                    .encode();
            }
        }
        s.max_pts = Some(s.max_pts.map_or(f.frame.pts, |m| m.max(f.frame.pts)));
        if let Err(e) = self.write(wr, &bytes).await {
            return Some(e);
        }
        self.flush_audio(s, wr, false).await
    }

    /// Send the waiting audio up to the video sent (all of what waited
    /// [`AUDIO_HOLD`] when `overdue`).
    async fn flush_audio(
        &self,
        s: &mut SessionState,
        wr: &mut OwnedWriteHalf,
        overdue: bool,
    ) -> Option<String> {
        let Some(from) = s.audio_from else {
            // No video yet: keep only what can still be in sync.
            return None;
        };
        let upto = s.max_pts.unwrap_or(from);
        // Bounded by the queue's length.
        while let Some((f, at)) = s.audio_wait.front() {
            let due = f.frame.pts <= upto || (overdue && at.elapsed() >= AUDIO_HOLD);
            if !due {
                break;
            }
            let Some((f, _)) = s.audio_wait.pop_front() else {
                break;
            };
            if f.frame.pts + i64::from(f.frame.duration) < from {
                continue;
            }
            if let Err(e) = self.write(wr, &f.wire).await {
                return Some(e);
            }
        }
        None
    }

    /// Send the held frames of the pending rendition (the first flagged as
    /// the switch) and make it current.
    async fn switch(&self, s: &mut SessionState, wr: &mut OwnedWriteHalf) -> Option<String> {
        let Some(pending) = s.pending.take() else {
            s.held.clear();
            return None;
        };
        let (rendition, sub) = pending;
        s.video = sub;
        s.current = rendition;
        s.need_key = false;
        s.discontinuity = false;
        self.stats
            .rendition_switches
            .fetch_add(1, Ordering::Relaxed);
        let held: Vec<_> = s.held.drain(..).collect();
        for (i, f) in held.into_iter().enumerate() {
            s.max_pts = Some(s.max_pts.map_or(f.frame.pts, |m| m.max(f.frame.pts)));
            let result = if i == 0 {
                let frame = f.frame.with_flags(f.frame.flags | Flags::RENDITION_SWITCH);
                self.write(wr, &frame.encode()).await
            } else {
                self.write(wr, &f.wire).await
            };
            if let Err(e) = result {
                return Some(e);
            }
        }
        self.flush_audio(s, wr, false).await
    }

    fn on_decision(&self, plan: &Plan, s: &mut SessionState, payload: &[u8]) {
        let Ok(d) = pb::QualityDecision::decode(payload) else {
            warn!(session = %plan.session_id, "undecodable quality decision ignored");
            return;
        };
        let Some(choice) = d.rendition else { return };
        let Some(target) = plan.ladder.iter().position(|r| r.name == choice.name) else {
            debug!(session = %plan.session_id, rendition = %choice.name, "decision for a rendition this session does not stream");
            return;
        };
        let target = target as u8;
        if s.pending.as_ref().map(|p| p.0) == Some(target) {
            return;
        }
        s.held.clear();
        s.pending =
            (target != s.current).then(|| (target, self.hub.subscribe(&self.spec(plan, target))));
        if let Some((_, sub)) = s.pending.as_mut() {
            for f in std::mem::take(&mut sub.backlog) {
                s.hold(f);
            }
        }
    }
}

/// What an accepted hello leads to.
struct Plan {
    session_id: String,
    live: bool,
    /// Video renditions, lowest bitrate first.
    ladder: Vec<stream_catalog::RenditionRecord>,
    start: u8,
    /// (track, playlist, info) of the audio track.
    audio: Option<(String, String, AudioInfo)>,
    video: VideoRecord,
}

/// One session's position in its feeds.
struct SessionState {
    current: u8,
    video: Subscription,
    /// The rendition decided but not switched to yet.
    pending: Option<(u8, Subscription)>,
    /// Frames of `pending` from its first keyframe after what was sent.
    held: VecDeque<Arc<MediaFrame>>,
    /// Largest video PTS sent, 90 kHz ticks.
    max_pts: Option<i64>,
    /// Skip video until a keyframe (start, after a lag).
    need_key: bool,
    /// Flag the next keyframe sent as a discontinuity (after a lag).
    discontinuity: bool,
    /// Audio waiting for the video it goes with (sent interleaved by PTS),
    /// with its arrival time.
    audio_wait: VecDeque<(Arc<MediaFrame>, std::time::Instant)>,
    /// PTS of the first video keyframe sent: earlier audio is dropped.
    audio_from: Option<i64>,
}

impl SessionState {
    fn queue_audio(&mut self, f: Arc<MediaFrame>) {
        if self.audio_wait.len() >= MAX_AUDIO_WAIT {
            self.audio_wait.pop_front();
        }
        self.audio_wait.push_back((f, std::time::Instant::now()));
    }

    fn hold(&mut self, f: Arc<MediaFrame>) {
        if self.held.is_empty() {
            // Start at a keyframe later than anything sent (a new VOD feed
            // starts at the current segment's beginning: skip that part).
            let later = self.max_pts.is_none_or(|m| f.frame.pts > m);
            if f.frame.is_keyframe() && later {
                self.held.push_back(f);
            }
        } else {
            self.held.push_back(f);
        }
    }
}

async fn recv(sub: &mut Option<impl SubscriptionLike>) -> Option<Result<FeedItem, RecvError>> {
    match sub {
        Some(s) => Some(s.rx().recv().await),
        None => std::future::pending().await,
    }
}

trait SubscriptionLike {
    fn rx(&mut self) -> &mut tokio::sync::broadcast::Receiver<FeedItem>;
}

impl SubscriptionLike for Subscription {
    fn rx(&mut self) -> &mut tokio::sync::broadcast::Receiver<FeedItem> {
        &mut self.rx
    }
}

impl SubscriptionLike for (u8, Subscription) {
    fn rx(&mut self) -> &mut tokio::sync::broadcast::Receiver<FeedItem> {
        &mut self.1.rx
    }
}

async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn next_decision(
    sub: &mut Option<stream_bus::async_nats::Subscriber>,
) -> Option<stream_bus::async_nats::Message> {
    match sub {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}
