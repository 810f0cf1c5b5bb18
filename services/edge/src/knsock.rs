//! The kn-sock 0.3.0 compatible stream: three TCP ports (video, audio,
//! control) speaking kn-sock's `live_stream` protocol, playing the
//! catalogue's ready VOD videos as live (see `docs/knsock.md` for the wire
//! format, the pairing of connections and the errors).
//!
//! Shape: one [`VideoStream`] per video with viewers, started on its first
//! viewer (the rendition's init + segments copied from the media store into
//! a scratch directory, then a `stream_media::knsock::KnSockProducer`) and
//! stopped when the last `Arc` to it drops. A fan-out thread per stream
//! takes the producer's JPEG frames and PCM chunks, prefixes kn-sock's
//! headers once per (frame, tier) as `Bytes`, and `try_send`s them to each
//! connection's bounded queue (a full queue drops that item, counted).
//! A video connection is a [`Session`]: its JPEG quality follows the
//! feedback of the control connection paired with it; its audio
//! connection gets the selected video's audio.
//!
//! Bounds: connections on all three ports (`EDGE_KNSOCK_MAX_CONNECTIONS`),
//! [`HANDSHAKE_TIMEOUT`], [`CONTROL_IDLE_TIMEOUT`], [`WRITE_STALL_TIMEOUT`],
//! [`MAX_LINE`], [`VIDEO_QUEUE`] / [`AUDIO_QUEUE`] per connection,
//! [`MAX_VIDEOS`] offered, [`MAX_SOURCE_BYTES`] copied per rendition.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use stream_media::knsock::{
    tier_of_quality, KnSockInput, KnSockOutput, KnSockProducer, StopOnDrop, TierDemand, TIER_COUNT,
};
use stream_proto::control::v1 as pb;
use stream_proto::control::v1::control_plane_client::ControlPlaneClient;
use stream_runtime::CancellationToken;
use stream_store::MediaStore;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tonic::transport::Channel;

use crate::config::KnSockConfig;

/// A video connection must send its selection within this time; an audio
/// or control connection waits this long for its session's selection.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A control connection silent this long is closed (kn-sock's client
/// reports every second).
pub const CONTROL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A single write blocked this long closes the connection.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest line read on any port, bytes (newline excluded).
pub const MAX_LINE: usize = 4096;
/// Video frames queued per connection; more are dropped.
pub const VIDEO_QUEUE: usize = 8;
/// Audio chunks queued per connection (~0.74 s); more are dropped.
pub const AUDIO_QUEUE: usize = 32;
/// Videos offered in the handshake (one `ListVideos` page).
pub const MAX_VIDEOS: u32 = 100;
/// Largest rendition copied to scratch for a stream, bytes.
pub const MAX_SOURCE_BYTES: u64 = 4 << 30;
/// kn-sock's starting JPEG quality.
pub const START_QUALITY: u8 = 80;

/// kn-sock's magic before every audio chunk.
pub const AUDIO_MAGIC: &[u8; 4] = b"AUD0";

/// kn-sock 0.3.0's control rule for one `buffer_level` report (seconds of
/// video buffered by the client): below 0.1 s one step (10) down, above
/// 0.3 s one step up; quality stays within 40–90.
pub fn next_quality(quality: u8, buffer_level_s: f64) -> u8 {
    let q = if buffer_level_s < 0.1 && quality > 40 {
        quality - 10
    } else if buffer_level_s > 0.3 && quality < 90 {
        quality + 10
    } else {
        quality
    };
    q.clamp(40, 90)
}

/// A video frame as kn-sock sends it: `!dI` (timestamp s, length) + JPEG.
pub fn video_frame(pts_s: f64, jpeg: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(12 + jpeg.len());
    b.put_f64(pts_s);
    b.put_u32(jpeg.len() as u32);
    b.put_slice(jpeg);
    b.freeze()
}

/// An audio chunk as kn-sock sends it: `AUD0` + `!dI` + PCM.
pub fn audio_chunk(pts_s: f64, pcm: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(16 + pcm.len());
    b.put_slice(AUDIO_MAGIC);
    b.put_f64(pts_s);
    b.put_u32(pcm.len() as u32);
    b.put_slice(pcm);
    b.freeze()
}

/// Why a selection line is refused.
#[derive(Debug, PartialEq)]
pub enum SelectionError {
    NotJson,
    NoIndex,
    OutOfRange { index: i64, count: usize },
}

impl std::fmt::Display for SelectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SelectionError::NotJson => write!(f, "the selection is not a JSON object"),
            SelectionError::NoIndex => write!(f, "the selection has no integer \"index\""),
            SelectionError::OutOfRange { index, count } => {
                write!(f, "index {index} is not one of the {count} offered videos")
            }
        }
    }
}

/// Parse the video port's `{"index": n}` against `count` offered videos.
pub fn parse_selection(line: &str, count: usize) -> Result<usize, SelectionError> {
    let v: serde_json::Value =
        serde_json::from_str(line.trim()).map_err(|_| SelectionError::NotJson)?;
    let obj = v.as_object().ok_or(SelectionError::NotJson)?;
    let index = obj
        .get("index")
        .and_then(serde_json::Value::as_i64)
        .ok_or(SelectionError::NoIndex)?;
    usize::try_from(index)
        .ok()
        .filter(|&i| i < count)
        .ok_or(SelectionError::OutOfRange { index, count })
}

/// One control (or audio) line: kn-sock's feedback, our `session`
/// extension, both, or neither (ignored).
#[derive(Debug, Default, PartialEq)]
pub struct ControlLine {
    /// Seconds of video buffered by the client.
    pub buffer_level_s: Option<f64>,
    /// Bind this connection to the video session with this id.
    pub session: Option<String>,
}

/// Parse one line; `None` when it is not a JSON object.
pub fn parse_control(line: &str) -> Option<ControlLine> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    let obj = v.as_object()?;
    Some(ControlLine {
        buffer_level_s: obj
            .get("buffer_level")
            .and_then(serde_json::Value::as_f64)
            .filter(|l| l.is_finite()),
        session: obj
            .get("session")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string),
    })
}

/// A ready VOD video as offered on the video port.
#[derive(Debug, Clone)]
struct Offer {
    id: String,
    /// Title, or the id when untitled.
    name: String,
    /// Video rendition read (the tallest ≤ 720 lines, else the shortest).
    rendition: String,
    /// The audio rendition's name, when the video has one.
    audio: Option<String>,
}

fn offers(videos: &[pb::Video]) -> Vec<Offer> {
    videos
        .iter()
        .filter(|v| v.status == pb::VideoStatus::Ready as i32 && !v.live)
        .filter_map(|v| {
            let rungs: Vec<&pb::Rendition> = v
                .renditions
                .iter()
                .filter(|r| !r.audio && r.ready)
                .collect();
            let rendition = rungs
                .iter()
                .filter(|r| r.height <= 720)
                .max_by_key(|r| r.height)
                .or_else(|| rungs.iter().min_by_key(|r| r.height))?;
            Some(Offer {
                id: v.id.clone(),
                name: if v.title.is_empty() {
                    v.id.clone()
                } else {
                    v.title.clone()
                },
                rendition: rendition.name.clone(),
                audio: v
                    .renditions
                    .iter()
                    .find(|r| r.audio && r.ready)
                    .map(|r| r.name.clone()),
            })
        })
        .collect()
}

/// Media names in a media playlist: the `EXT-X-MAP` URI and the segments.
/// Only plain file names are accepted (no `/`, no leading `.`).
fn playlist_files(text: &str) -> Result<(String, Vec<String>), String> {
    let plain = |n: &str| {
        !n.is_empty()
            && n.len() <= 128
            && !n.starts_with('.')
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    };
    let mut init = None;
    let mut segments = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:") {
            let uri = rest
                .split("URI=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .ok_or("EXT-X-MAP without URI")?;
            init = Some(uri.to_string());
        } else if !line.is_empty() && !line.starts_with('#') {
            segments.push(line.to_string());
        }
    }
    let init = init.ok_or("no EXT-X-MAP")?;
    if segments.is_empty() {
        return Err("no segments".into());
    }
    for n in std::iter::once(&init).chain(&segments) {
        if !plain(n) {
            return Err(format!("unexpected media name {n:?}"));
        }
    }
    Ok((init, segments))
}

/// A scratch directory removed when dropped.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copy `videos/<id>/<track>/` init + segments into `file`.
async fn copy_rendition(
    store: &MediaStore,
    id: &str,
    track: &str,
    file: &Path,
) -> Result<(), String> {
    let key = MediaStore::video_object(id, &format!("{track}/index.m3u8"));
    let text = store
        .get_bytes(&key)
        .await
        .map_err(|e| format!("media store: {e}"))?
        .ok_or_else(|| format!("{track} has no playlist"))?;
    let (init, segments) =
        playlist_files(&String::from_utf8_lossy(&text)).map_err(|e| format!("{track}: {e}"))?;
    let mut out = tokio::fs::File::create(file)
        .await
        .map_err(|e| format!("scratch file: {e}"))?;
    let mut total = 0u64;
    for name in std::iter::once(&init).chain(&segments) {
        let bytes = store
            .get_bytes(&MediaStore::video_object(id, &format!("{track}/{name}")))
            .await
            .map_err(|e| format!("media store: {e}"))?
            .ok_or_else(|| format!("{track}/{name} is missing"))?;
        total += bytes.len() as u64;
        if total > MAX_SOURCE_BYTES {
            return Err(format!("{track} is larger than {MAX_SOURCE_BYTES} bytes"));
        }
        out.write_all(&bytes)
            .await
            .map_err(|e| format!("scratch file: {e}"))?;
    }
    out.flush().await.map_err(|e| format!("scratch file: {e}"))
}

struct VideoSub {
    tier: Arc<AtomicUsize>,
    tx: mpsc::Sender<Bytes>,
    drops: Arc<AtomicU64>,
}

struct AudioSub {
    tx: mpsc::Sender<Bytes>,
    drops: Arc<AtomicU64>,
}

#[derive(Default)]
struct Fanout {
    video: Vec<VideoSub>,
    audio: Vec<AudioSub>,
    /// Set when the producer failed; subscribers are then dropped.
    failed: Option<String>,
}

/// One video played to its viewers.
pub struct VideoStream {
    name: String,
    fanout: Arc<Mutex<Fanout>>,
    demand: Arc<TierDemand>,
    _stop: StopOnDrop,
    _scratch: ScratchDir,
}

impl VideoStream {
    fn subscribe_video(
        &self,
        tier: Arc<AtomicUsize>,
    ) -> Result<(mpsc::Receiver<Bytes>, Arc<AtomicU64>), String> {
        let (tx, rx) = mpsc::channel(VIDEO_QUEUE);
        let drops = Arc::new(AtomicU64::new(0));
        let mut f = self.fanout.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(reason) = &f.failed {
            return Err(reason.clone());
        }
        f.video.push(VideoSub {
            tier,
            tx,
            drops: drops.clone(),
        });
        Ok((rx, drops))
    }

    fn subscribe_audio(&self) -> Result<(mpsc::Receiver<Bytes>, Arc<AtomicU64>), String> {
        let (tx, rx) = mpsc::channel(AUDIO_QUEUE);
        let drops = Arc::new(AtomicU64::new(0));
        let mut f = self.fanout.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(reason) = &f.failed {
            return Err(reason.clone());
        }
        f.audio.push(AudioSub {
            tx,
            drops: drops.clone(),
        });
        Ok((rx, drops))
    }

    fn failure(&self) -> Option<String> {
        self.fanout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failed
            .clone()
    }
}

/// The fan-out thread of one stream: until the producer stops.
fn fan_out(
    rx: crossbeam_channel::Receiver<KnSockOutput>,
    fanout: Arc<Mutex<Fanout>>,
    name: String,
) {
    while let Ok(out) = rx.recv() {
        match out {
            KnSockOutput::Frame(frame) => {
                let encoded: Vec<Option<Bytes>> = frame
                    .tiers
                    .iter()
                    .map(|t| t.as_deref().map(|jpeg| video_frame(frame.pts_s, jpeg)))
                    .collect();
                let mut f = fanout.lock().unwrap_or_else(|e| e.into_inner());
                f.video.retain(|sub| {
                    let want = sub.tier.load(Ordering::Relaxed).min(TIER_COUNT - 1);
                    // The wanted tier, else the nearest encoded one (a tier
                    // is encoded from the frame after a viewer moved to it).
                    let pick = (0..TIER_COUNT)
                        .filter(|&t| encoded[t].is_some())
                        .min_by_key(|&t| (t.abs_diff(want), t));
                    let Some(bytes) = pick.and_then(|t| encoded[t].clone()) else {
                        return true;
                    };
                    match sub.tx.try_send(bytes) {
                        Ok(()) => true,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            sub.drops.fetch_add(1, Ordering::Relaxed);
                            true
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => false,
                    }
                });
            }
            KnSockOutput::Audio(chunk) => {
                let bytes = audio_chunk(chunk.pts_s, &chunk.data);
                let mut f = fanout.lock().unwrap_or_else(|e| e.into_inner());
                f.audio.retain(|sub| match sub.tx.try_send(bytes.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        sub.drops.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                });
            }
            KnSockOutput::Failed(e) => {
                tracing::warn!(video = %name, error = %e, "kn-sock stream failed");
                let mut f = fanout.lock().unwrap_or_else(|e| e.into_inner());
                f.failed = Some(format!("the video cannot be played: {e}"));
                f.video.clear();
                f.audio.clear();
                return;
            }
        }
    }
}

/// A video connection and what is paired with it.
pub struct Session {
    id: String,
    audio_paired: AtomicBool,
    control_paired: AtomicBool,
    /// Current tier (mirror of `quality` for the fan-out thread).
    tier: Arc<AtomicUsize>,
    quality: Mutex<QualityState>,
    /// The selected stream, while the video connection lives.
    selected: watch::Sender<Option<Arc<VideoStream>>>,
}

struct QualityState {
    quality: u8,
    /// The stream whose demand counts this session's tier.
    demand: Option<Arc<TierDemand>>,
}

impl Session {
    /// Apply one `buffer_level` report; returns the new quality.
    fn feedback(&self, level_s: f64) -> u8 {
        let mut s = self.quality.lock().unwrap_or_else(|e| e.into_inner());
        let old = s.quality;
        let new = next_quality(old, level_s);
        let (old_t, new_t) = (tier_of_quality(old), tier_of_quality(new));
        s.quality = new;
        if old_t != new_t {
            if let Some(d) = &s.demand {
                d.add(new_t);
                d.remove(old_t);
            }
            self.tier.store(new_t, Ordering::Relaxed);
        }
        new
    }

    fn attach(&self, demand: Arc<TierDemand>) {
        let mut s = self.quality.lock().unwrap_or_else(|e| e.into_inner());
        demand.add(tier_of_quality(s.quality));
        if let Some(old) = s.demand.replace(demand) {
            old.remove(tier_of_quality(s.quality));
        }
    }

    fn detach(&self) {
        let mut s = self.quality.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = s.demand.take() {
            d.remove(tier_of_quality(s.quality));
        }
    }

    /// Wait (bounded) for the video connection's selection.
    async fn selection(&self) -> Result<Arc<VideoStream>, String> {
        let mut rx = self.selected.subscribe();
        let waited = tokio::time::timeout(HANDSHAKE_TIMEOUT, rx.wait_for(Option::is_some)).await;
        let selected = match &waited {
            Ok(Ok(s)) => Option::clone(s),
            _ => None,
        };
        drop(waited);
        selected.ok_or_else(|| {
            format!(
                "the paired video connection selected no video within {} s",
                HANDSHAKE_TIMEOUT.as_secs()
            )
        })
    }
}

#[derive(Clone, Copy)]
enum Role {
    Audio,
    Control,
}

#[derive(Default)]
struct Registry {
    /// Sessions per peer IP, in accept order.
    by_ip: HashMap<IpAddr, Vec<Weak<Session>>>,
    by_id: HashMap<String, (IpAddr, Weak<Session>)>,
}

/// Removes its session from the registry and releases its stream.
struct SessionGuard {
    shared: Arc<Shared>,
    session: Arc<Session>,
    ip: IpAddr,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.session.detach();
        self.session.selected.send_replace(None);
        let mut r = self
            .shared
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        r.by_id.remove(&self.session.id);
        if let Some(list) = r.by_ip.get_mut(&self.ip) {
            list.retain(|w| w.upgrade().is_some_and(|s| !Arc::ptr_eq(&s, &self.session)));
            if list.is_empty() {
                r.by_ip.remove(&self.ip);
            }
        }
    }
}

struct Shared {
    control: ControlPlaneClient<Channel>,
    store: MediaStore,
    scratch: PathBuf,
    permits: Arc<Semaphore>,
    registry: Mutex<Registry>,
    /// Streams by video id; the lock is held while one is prepared.
    streams: tokio::sync::Mutex<HashMap<String, Weak<VideoStream>>>,
    ids: RandomState,
    next: AtomicU64,
}

impl Shared {
    fn new_session(self: &Arc<Self>, ip: IpAddr) -> SessionGuard {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:016x}", self.ids.hash_one(n));
        let session = Arc::new(Session {
            id: id.clone(),
            audio_paired: AtomicBool::new(false),
            control_paired: AtomicBool::new(false),
            tier: Arc::new(AtomicUsize::new(tier_of_quality(START_QUALITY))),
            quality: Mutex::new(QualityState {
                quality: START_QUALITY,
                demand: None,
            }),
            selected: watch::channel(None).0,
        });
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        r.by_ip
            .entry(ip)
            .or_default()
            .push(Arc::downgrade(&session));
        r.by_id.insert(id, (ip, Arc::downgrade(&session)));
        SessionGuard {
            shared: self.clone(),
            session,
            ip,
        }
    }

    /// The oldest session from `ip` without a connection of `role`, else
    /// the newest session from `ip`.
    fn pair(&self, ip: IpAddr, role: Role) -> Option<Arc<Session>> {
        let r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let live: Vec<Arc<Session>> = r.by_ip.get(&ip)?.iter().filter_map(Weak::upgrade).collect();
        fn flag(s: &Session, role: Role) -> &AtomicBool {
            match role {
                Role::Audio => &s.audio_paired,
                Role::Control => &s.control_paired,
            }
        }
        live.iter()
            .find(|s| {
                flag(s, role)
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .or(live.last())
            .cloned()
    }

    fn session(&self, id: &str) -> Option<Arc<Session>> {
        let r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        r.by_id.get(id).and_then(|(_, w)| w.upgrade())
    }

    async fn offers(&self) -> Result<Vec<Offer>, String> {
        let mut client = self.control.clone();
        let resp = client
            .list_videos(pb::ListVideosRequest {
                page_size: MAX_VIDEOS,
                page_token: String::new(),
            })
            .await
            .map_err(|e| format!("the catalogue is unavailable ({})", e.code()))?
            .into_inner();
        Ok(offers(&resp.videos))
    }

    /// The running stream of `offer`, or a new one.
    async fn stream(&self, offer: &Offer) -> Result<Arc<VideoStream>, String> {
        let mut streams = self.streams.lock().await;
        if let Some(s) = streams.get(&offer.id).and_then(Weak::upgrade) {
            return Ok(s);
        }
        streams.retain(|_, w| w.strong_count() > 0);
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .scratch
            .join(format!("{}-{:08x}", offer.id, self.ids.hash_one(n) as u32));
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| format!("scratch directory: {e}"))?;
        let scratch = ScratchDir(dir.clone());
        let video = dir.join("video.mp4");
        copy_rendition(&self.store, &offer.id, &offer.rendition, &video).await?;
        let audio = match &offer.audio {
            Some(track) => {
                let path = dir.join("audio.mp4");
                copy_rendition(&self.store, &offer.id, track, &path).await?;
                Some(path)
            }
            None => None,
        };
        let producer = KnSockProducer::start(KnSockInput { video, audio })
            .map_err(|e| format!("the video cannot be played: {e}"))?;
        let demand = producer.demand().clone();
        let (rx, stop) = producer.into_parts();
        let fanout = Arc::new(Mutex::new(Fanout::default()));
        let (f, name) = (fanout.clone(), offer.name.clone());
        std::thread::Builder::new()
            .name("knsock-fanout".into())
            .spawn(move || fan_out(rx, f, name))
            .map_err(|e| format!("fan-out thread: {e}"))?;
        let stream = Arc::new(VideoStream {
            name: offer.name.clone(),
            fanout,
            demand,
            _stop: stop,
            _scratch: scratch,
        });
        tracing::info!(video = %offer.id, name = %offer.name, rendition = %offer.rendition, "kn-sock stream started");
        streams.insert(offer.id.clone(), Arc::downgrade(&stream));
        Ok(stream)
    }
}

/// The three bound ports.
pub struct KnSockListeners {
    pub video: TcpListener,
    pub audio: TcpListener,
    pub control: TcpListener,
}

/// Bind the ports of `config`; `None` when the mode is off.
///
/// Errors: an address cannot be bound.
pub async fn bind(config: &KnSockConfig) -> std::io::Result<Option<KnSockListeners>> {
    let (Some(v), Some(a), Some(c)) = (config.video_addr, config.audio_addr, config.control_addr)
    else {
        return Ok(None);
    };
    Ok(Some(KnSockListeners {
        video: TcpListener::bind(v).await?,
        audio: TcpListener::bind(a).await?,
        control: TcpListener::bind(c).await?,
    }))
}

/// Serve the three ports until `shutdown`; connections are then closed.
pub async fn serve(
    listeners: KnSockListeners,
    config: KnSockConfig,
    control: ControlPlaneClient<Channel>,
    store: MediaStore,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let scratch = config
        .scratch_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("edge-knsock"));
    tokio::fs::create_dir_all(&scratch).await?;
    let shared = Arc::new(Shared {
        control,
        store,
        scratch,
        permits: Arc::new(Semaphore::new(config.max_connections)),
        registry: Mutex::new(Registry::default()),
        streams: tokio::sync::Mutex::new(HashMap::new()),
        ids: RandomState::new(),
        next: AtomicU64::new(0),
    });
    tracing::info!(
        video = %listeners.video.local_addr()?,
        audio = %listeners.audio.local_addr()?,
        control = %listeners.control.local_addr()?,
        "kn-sock compatible ports listening"
    );
    let mut set = JoinSet::new();
    set.spawn(accept_loop(
        listeners.video,
        Port::Video,
        shared.clone(),
        shutdown.clone(),
    ));
    set.spawn(accept_loop(
        listeners.audio,
        Port::Audio,
        shared.clone(),
        shutdown.clone(),
    ));
    set.spawn(accept_loop(
        listeners.control,
        Port::Control,
        shared,
        shutdown.clone(),
    ));
    while let Some(r) = set.join_next().await {
        if !shutdown.is_cancelled() {
            anyhow::bail!("kn-sock accept loop ended unexpectedly: {r:?}");
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
enum Port {
    Video,
    Audio,
    Control,
}

async fn accept_loop(
    listener: TcpListener,
    port: Port,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (sock, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, ?port, "kn-sock accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = sock.set_nodelay(true);
        let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
            let (_, mut wr) = sock.into_split();
            conns.spawn(async move { close_with(&mut wr, "too many connections").await });
            continue;
        };
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        conns.spawn(async move {
            let _permit: OwnedSemaphorePermit = permit;
            match port {
                Port::Video => video_conn(shared, sock, peer, shutdown).await,
                Port::Audio => audio_conn(shared, sock, peer, shutdown).await,
                Port::Control => control_conn(shared, sock, peer, shutdown).await,
            }
        });
    }
    conns.shutdown().await;
}

/// Send `{"error": reason}\n` (bounded wait) and close the write side.
async fn close_with(wr: &mut OwnedWriteHalf, reason: &str) {
    let line = format!("{}\n", serde_json::json!({ "error": reason }));
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        wr.write_all(line.as_bytes()).await?;
        wr.shutdown().await
    })
    .await;
}

async fn write(wr: &mut OwnedWriteHalf, bytes: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(WRITE_STALL_TIMEOUT, wr.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

fn line_error(e: &LinesCodecError) -> Option<String> {
    match e {
        LinesCodecError::MaxLineLengthExceeded => {
            Some(format!("line longer than {MAX_LINE} bytes"))
        }
        LinesCodecError::Io(_) => None,
    }
}

#[tracing::instrument(name = "knsock_video", skip_all, fields(peer = %peer))]
async fn video_conn(
    shared: Arc<Shared>,
    sock: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let (rd, mut wr) = sock.into_split();
    let guard = shared.new_session(peer.ip());
    let session = guard.session.clone();
    let offers = match shared.offers().await {
        Ok(o) => o,
        Err(reason) => return close_with(&mut wr, &reason).await,
    };
    let names: Vec<&str> = offers.iter().map(|o| o.name.as_str()).collect();
    let hello = format!(
        "{}\n",
        serde_json::json!({ "videos": names, "session": session.id })
    );
    if !write(&mut wr, hello.as_bytes()).await {
        return;
    }
    let mut lines = FramedRead::new(rd, LinesCodec::new_with_max_length(MAX_LINE));
    let line = tokio::select! {
        _ = shutdown.cancelled() => return,
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, lines.next()) => r,
    };
    let line = match line {
        Err(_) => {
            let reason = format!("no selection within {} s", HANDSHAKE_TIMEOUT.as_secs());
            return close_with(&mut wr, &reason).await;
        }
        Ok(None) => return,
        Ok(Some(Err(e))) => {
            if let Some(reason) = line_error(&e) {
                close_with(&mut wr, &reason).await;
            }
            return;
        }
        Ok(Some(Ok(line))) => line,
    };
    let offer = match parse_selection(&line, offers.len()) {
        Ok(i) => &offers[i],
        Err(e) => {
            tracing::info!(error = %e, "kn-sock selection refused");
            return close_with(&mut wr, &e.to_string()).await;
        }
    };
    let stream = match shared.stream(offer).await {
        Ok(s) => s,
        Err(reason) => return close_with(&mut wr, &reason).await,
    };
    session.attach(stream.demand.clone());
    session.selected.send_replace(Some(stream.clone()));
    let (mut rx, drops) = match stream.subscribe_video(session.tier.clone()) {
        Ok(x) => x,
        Err(reason) => return close_with(&mut wr, &reason).await,
    };
    tracing::info!(video = %stream.name, session = %session.id, "kn-sock viewer");
    let mut sent = 0u64;
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled() => break,
            item = rx.recv() => item,
        };
        match item {
            Some(bytes) => {
                if !write(&mut wr, &bytes).await {
                    break;
                }
                sent += 1;
            }
            None => {
                if let Some(reason) = stream.failure() {
                    close_with(&mut wr, &reason).await;
                }
                break;
            }
        }
    }
    tracing::info!(
        sent,
        dropped = drops.load(Ordering::Relaxed),
        "kn-sock viewer left"
    );
    drop(guard);
}

/// The audio of `session`'s selected video: the stream, its chunks and
/// this subscriber's drop counter.
async fn audio_of(
    session: &Session,
) -> Result<(Arc<VideoStream>, mpsc::Receiver<Bytes>, Arc<AtomicU64>), String> {
    let stream = session.selection().await?;
    let (rx, drops) = stream.subscribe_audio()?;
    Ok((stream, rx, drops))
}

#[tracing::instrument(name = "knsock_audio", skip_all, fields(peer = %peer))]
async fn audio_conn(
    shared: Arc<Shared>,
    sock: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let (rd, mut wr) = sock.into_split();
    let Some(mut session) = shared.pair(peer.ip(), Role::Audio) else {
        return close_with(
            &mut wr,
            "no video connection from this address to pair with",
        )
        .await;
    };
    let mut lines = FramedRead::new(rd, LinesCodec::new_with_max_length(MAX_LINE));
    let (mut stream, mut rx, mut drops) = match audio_of(&session).await {
        Ok(x) => x,
        Err(reason) => return close_with(&mut wr, &reason).await,
    };
    let mut sent = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            item = rx.recv() => match item {
                Some(bytes) => {
                    if !write(&mut wr, &bytes).await {
                        break;
                    }
                    sent += 1;
                }
                None => {
                    if let Some(reason) = stream.failure() {
                        close_with(&mut wr, &reason).await;
                    }
                    break;
                }
            },
            line = lines.next() => match line {
                None => break,
                Some(Err(e)) => {
                    if let Some(reason) = line_error(&e) {
                        close_with(&mut wr, &reason).await;
                    }
                    break;
                }
                Some(Ok(line)) => {
                    let Some(id) = parse_control(&line).and_then(|c| c.session) else {
                        continue;
                    };
                    let Some(s) = shared.session(&id) else {
                        close_with(&mut wr, &format!("unknown session {id:?}")).await;
                        break;
                    };
                    session = s;
                    (stream, rx, drops) = match audio_of(&session).await {
                        Ok(x) => x,
                        Err(reason) => {
                            close_with(&mut wr, &reason).await;
                            break;
                        }
                    };
                }
            },
        }
    }
    tracing::info!(sent, dropped = drops.load(Ordering::Relaxed), session = %session.id, "kn-sock audio left");
}

#[tracing::instrument(name = "knsock_control", skip_all, fields(peer = %peer))]
async fn control_conn(
    shared: Arc<Shared>,
    sock: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let (rd, mut wr) = sock.into_split();
    let Some(mut session) = shared.pair(peer.ip(), Role::Control) else {
        return close_with(
            &mut wr,
            "no video connection from this address to pair with",
        )
        .await;
    };
    let mut lines = FramedRead::new(rd, LinesCodec::new_with_max_length(MAX_LINE));
    let (mut reports, mut ignored) = (0u64, 0u64);
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = tokio::time::timeout(CONTROL_IDLE_TIMEOUT, lines.next()) => r,
        };
        let line = match next {
            Err(_) => {
                let reason = format!("no control line for {} s", CONTROL_IDLE_TIMEOUT.as_secs());
                close_with(&mut wr, &reason).await;
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                if let Some(reason) = line_error(&e) {
                    close_with(&mut wr, &reason).await;
                }
                break;
            }
            Ok(Some(Ok(line))) => line,
        };
        let Some(c) = parse_control(&line) else {
            ignored += 1;
            continue;
        };
        if let Some(id) = &c.session {
            match shared.session(id) {
                Some(s) => session = s,
                None => {
                    close_with(&mut wr, &format!("unknown session {id:?}")).await;
                    break;
                }
            }
        }
        match c.buffer_level_s {
            Some(level) => {
                let q = session.feedback(level);
                reports += 1;
                tracing::debug!(level, quality = q, session = %session.id, "kn-sock feedback");
            }
            None if c.session.is_none() => ignored += 1,
            None => {}
        }
    }
    tracing::info!(reports, ignored, session = %session.id, "kn-sock control left");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_follows_knsock_rule() {
        assert_eq!(next_quality(80, 0.0), 70);
        assert_eq!(next_quality(80, 0.2), 80);
        assert_eq!(next_quality(80, 0.31), 90);
        assert_eq!(next_quality(90, 5.0), 90);
        assert_eq!(next_quality(40, 0.0), 40);
        assert_eq!(next_quality(80, -1.0), 70);
        let mut q = 80;
        for _ in 0..5 {
            q = next_quality(q, 0.05);
        }
        assert_eq!(q, 40);
    }

    #[test]
    fn frames_have_knsock_headers() {
        let f = video_frame(1.5, b"\xff\xd8jpeg");
        assert_eq!(&f[..8], &1.5f64.to_be_bytes());
        assert_eq!(&f[8..12], &6u32.to_be_bytes());
        assert_eq!(&f[12..], b"\xff\xd8jpeg");
        let a = audio_chunk(0.25, &[1, 2, 3, 4]);
        assert_eq!(&a[..4], b"AUD0");
        assert_eq!(&a[4..12], &0.25f64.to_be_bytes());
        assert_eq!(&a[12..16], &4u32.to_be_bytes());
        assert_eq!(&a[16..], &[1, 2, 3, 4]);
    }

    #[test]
    fn selection_is_checked() {
        assert_eq!(parse_selection("{\"index\": 1}\n", 2), Ok(1));
        assert_eq!(parse_selection("{\"index\": 0}", 1), Ok(0));
        assert_eq!(parse_selection("garbage", 2), Err(SelectionError::NotJson));
        assert_eq!(parse_selection("[1]", 2), Err(SelectionError::NotJson));
        assert_eq!(
            parse_selection("{\"index\": \"1\"}", 2),
            Err(SelectionError::NoIndex)
        );
        assert_eq!(
            parse_selection("{\"index\": 2}", 2),
            Err(SelectionError::OutOfRange { index: 2, count: 2 })
        );
        assert_eq!(
            parse_selection("{\"index\": -1}", 2),
            Err(SelectionError::OutOfRange {
                index: -1,
                count: 2
            })
        );
    }

    #[test]
    fn control_lines_parse() {
        assert_eq!(
            parse_control("{\"buffer_level\": 0.25}"),
            Some(ControlLine {
                buffer_level_s: Some(0.25),
                session: None
            })
        );
        assert_eq!(
            parse_control("{\"session\": \"ab\", \"buffer_level\": 1}"),
            Some(ControlLine {
                buffer_level_s: Some(1.0),
                session: Some("ab".into())
            })
        );
        assert_eq!(
            parse_control("{\"buffer_level\": \"x\"}"),
            Some(ControlLine::default())
        );
        assert_eq!(parse_control("not json"), None);
    }

    #[test]
    fn playlist_names_are_plain_files() {
        let text = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.0,\nseg_00000.m4s\n#EXTINF:1.0,\nseg_00001.m4s\n#EXT-X-ENDLIST\n";
        let (init, segs) = playlist_files(text).unwrap();
        assert_eq!(init, "init.mp4");
        assert_eq!(segs, ["seg_00000.m4s", "seg_00001.m4s"]);
        assert!(playlist_files("#EXT-X-MAP:URI=\"init.mp4\"\n../x.m4s\n").is_err());
        assert!(playlist_files("#EXT-X-MAP:URI=\"/etc/passwd\"\nseg.m4s\n").is_err());
        assert!(playlist_files("seg.m4s\n").is_err());
    }

    fn video(
        title: &str,
        status: pb::VideoStatus,
        rungs: &[(&str, u32)],
        audio: bool,
    ) -> pb::Video {
        let mut renditions: Vec<pb::Rendition> = rungs
            .iter()
            .map(|(n, h)| pb::Rendition {
                name: n.to_string(),
                height: *h,
                ready: true,
                ..Default::default()
            })
            .collect();
        if audio {
            renditions.push(pb::Rendition {
                name: "audio".into(),
                audio: true,
                ready: true,
                ..Default::default()
            });
        }
        pb::Video {
            id: format!("id-{title}"),
            title: title.into(),
            status: status as i32,
            renditions,
            ..Default::default()
        }
    }

    #[test]
    fn offers_are_ready_vod_with_a_rung_up_to_720p() {
        let videos = [
            video(
                "a",
                pb::VideoStatus::Ready,
                &[("1080p", 1080), ("720p", 720), ("360p", 360)],
                true,
            ),
            video("b", pb::VideoStatus::Processing, &[("360p", 360)], false),
            video("", pb::VideoStatus::Ready, &[("1080p", 1080)], false),
            video("d", pb::VideoStatus::Ready, &[], true),
        ];
        let o = offers(&videos);
        assert_eq!(o.len(), 2);
        assert_eq!((o[0].name.as_str(), o[0].rendition.as_str()), ("a", "720p"));
        assert_eq!(o[0].audio.as_deref(), Some("audio"));
        assert_eq!(
            (o[1].name.as_str(), o[1].rendition.as_str()),
            ("id-", "1080p")
        );
        assert_eq!(o[1].audio, None);
    }
}
