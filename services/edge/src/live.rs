//! LL-HLS at the edge: blocking playlist reload (`_HLS_msn`, `_HLS_part`),
//! delta updates (`_HLS_skip`), and preload-hinted parts that block until
//! they exist (draft-pantos-hls-rfc8216bis §6.2.5).
//!
//! No polling: ingest publishes a core NATS message on
//! `P.live.<id>.<track>.part` after each playlist update; one subscription
//! per edge process ([`run_notifications`]) wakes the requests waiting on
//! that rendition ([`LiveNotifier`], a `watch` channel per rendition that
//! someone waits on). A woken request re-reads the playlist from the store,
//! so any number of edge replicas serve the same channel with no state of
//! their own. A request registers before it reads, so a part published in
//! between is never missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use stream_hls::live::{
    blocking_reload, Directives, LiveConfig, LivePlaylist, Reload, RenderOptions,
};
use stream_store::object_store::{self, ObjectStoreExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::error::EdgeError;
use crate::AppState;

/// Cache-Control of a live media playlist: always revalidated (blocking
/// requests carry their own query, so they are distinct URLs anyway).
pub const CACHE_LIVE: &str = "no-cache";
/// Longest a preload-hinted part request waits for its part.
pub const PART_WAIT: Duration = Duration::from_secs(6);

/// How long a read playlist may be reused for the same notification count
/// (a safety net should notifications stop).
const PLAYLIST_REUSE: Duration = Duration::from_millis(500);

/// A playlist read once and shared by the requests a notification woke.
#[derive(Clone)]
struct SharedRead {
    version: u64,
    at: tokio::time::Instant,
    /// As stored; `None` when the playlist does not exist yet.
    raw: Option<bytes::Bytes>,
    /// With the markers' DATERANGEs.
    annotated: Option<bytes::Bytes>,
}

/// One rendition someone waits on.
struct Rendition {
    updates: watch::Sender<u64>,
    /// Single flight: the first request after a notification reads the
    /// store (and the markers), the others it woke reuse that read.
    read: Arc<tokio::sync::Mutex<Option<SharedRead>>>,
}

/// Wakes requests waiting on a rendition (`<video>/<track>`).
#[derive(Default)]
pub struct LiveNotifier {
    renditions: Mutex<HashMap<String, Rendition>>,
}

/// A request's hold on a rendition: its update receiver and shared read.
pub struct Watch {
    updates: watch::Receiver<u64>,
    read: Arc<tokio::sync::Mutex<Option<SharedRead>>>,
}

impl LiveNotifier {
    /// A receiver that changes at the rendition's next update.
    pub fn watch(&self, video: &str, track: &str) -> Watch {
        let mut map = self.renditions.lock().unwrap_or_else(|e| e.into_inner());
        let r = map
            .entry(format!("{video}/{track}"))
            .or_insert_with(|| Rendition {
                updates: watch::channel(0).0,
                read: Arc::default(),
            });
        Watch {
            updates: r.updates.subscribe(),
            read: r.read.clone(),
        }
    }

    /// A bare receiver of the rendition's update count (for readers that
    /// follow every update, e.g. the native stream's live feeds).
    pub fn updates(&self, video: &str, track: &str) -> watch::Receiver<u64> {
        self.watch(video, track).updates
    }

    /// The rendition was updated: wake its waiters; forget renditions
    /// nobody waits on (the map holds only renditions with waiters).
    pub fn notify(&self, video: &str, track: &str) {
        let mut map = self.renditions.lock().unwrap_or_else(|e| e.into_inner());
        let key = format!("{video}/{track}");
        if let Some(r) = map.get(&key) {
            r.updates.send_modify(|n| *n = n.wrapping_add(1));
        }
        map.retain(|_, r| r.updates.receiver_count() > 0);
    }
}

/// Forward `P.live.*.*.part` notifications to `notifier` until `shutdown`;
/// resubscribes if the subscription ends.
pub async fn run_notifications(
    client: stream_bus::async_nats::Client,
    prefix: String,
    notifier: Arc<LiveNotifier>,
    shutdown: CancellationToken,
) {
    let subject = stream_bus::Subjects::new(&prefix).all_live_parts();
    loop {
        let mut sub = match client.subscribe(subject.clone()).await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "live notifications unavailable, retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = sub.next() => m,
            };
            let Some(msg) = msg else { break };
            // <prefix>.live.<id>.<track>.part
            let tokens: Vec<&str> = msg.subject.as_str().rsplitn(4, '.').collect();
            if let [_, track, id, _] = tokens.as_slice() {
                notifier.notify(id, track);
            }
        }
    }
}

/// Serve a live rendition's media playlist, blocking per `query`'s
/// delivery directives: 400 for bad directives, 503 when the requested
/// part does not appear within 3 target durations.
pub async fn media_playlist(
    state: &AppState,
    id: &str,
    track: &str,
    key: &object_store::path::Path,
    query: &str,
    head: bool,
) -> Result<Response, EdgeError> {
    let directives = Directives::parse(query).map_err(|e| EdgeError::BadRequest(e.to_string()))?;
    let _slot = blocking_slot(state, directives.msn.is_some())?;
    let mut watch = state.live.watch(id, track);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let read = shared_read(state, id, key, &mut watch).await?;
        let text = match read.raw {
            Some(t) => Some(t),
            None if directives.msn.is_some() => None,
            None => return Err(EdgeError::NotFound),
        };
        let mut target_s = 2.0;
        if let Some(text) = &text {
            let raw = String::from_utf8_lossy(text);
            let Ok(playlist) = LivePlaylist::parse(&raw, LiveConfig::for_reading()) else {
                return Ok(respond(text.clone(), head));
            };
            target_s = f64::from(playlist.target_duration());
            match blocking_reload(&playlist, &directives) {
                Reload::BadRequest(e) => return Err(EdgeError::BadRequest(e.to_string())),
                Reload::Ready if directives.skip => {
                    let mut out = playlist.render(&RenderOptions {
                        skip: true,
                        reports: &[],
                    });
                    // Keep the stored rendition reports.
                    for line in raw
                        .lines()
                        .filter(|l| l.starts_with("#EXT-X-RENDITION-REPORT"))
                    {
                        out.push_str(line);
                        out.push('\n');
                    }
                    return Ok(respond(with_markers(state, id, &out).await, head));
                }
                Reload::Ready => {
                    let body = read.annotated.unwrap_or_else(|| text.clone());
                    return Ok(respond(body, head));
                }
                Reload::Wait => {}
            }
        }
        let until = *deadline.get_or_insert_with(|| {
            tokio::time::Instant::now() + Duration::from_secs_f64(3.0 * target_s)
        });
        tokio::select! {
            changed = watch.updates.changed() => {
                if changed.is_err() {
                    watch = state.live.watch(id, track);
                }
            }
            _ = tokio::time::sleep_until(until) => {
                return Err(EdgeError::Unavailable(
                    "the requested part did not appear within 3 target durations".into(),
                ));
            }
        }
    }
}

/// The rendition's playlist as of the latest notification this request has
/// seen: read from the store (and annotated with markers) by the first
/// request after that notification, reused by the others.
async fn shared_read(
    state: &AppState,
    id: &str,
    key: &object_store::path::Path,
    watch: &mut Watch,
) -> Result<SharedRead, EdgeError> {
    let version = *watch.updates.borrow_and_update();
    let mut slot = watch.read.lock().await;
    if let Some(r) = slot
        .as_ref()
        .filter(|r| r.version == version && r.at.elapsed() < PLAYLIST_REUSE)
    {
        return Ok(r.clone());
    }
    let raw = match state.store.objects().get(key).await {
        Ok(r) => Some(
            r.bytes()
                .await
                .map_err(|e| EdgeError::Store(e.to_string()))?,
        ),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => return Err(EdgeError::Store(e.to_string())),
    };
    let annotated = match &raw {
        Some(t) => Some(with_markers(state, id, &String::from_utf8_lossy(t)).await),
        None => None,
    };
    let read = SharedRead {
        version,
        at: tokio::time::Instant::now(),
        raw,
        annotated,
    };
    *slot = Some(read.clone());
    Ok(read)
}

/// The playlist with the video's markers as EXT-X-DATERANGE (as for VOD:
/// START-DATE = the id's anchor + media time, which is the channel's PDT
/// clock). Without the marker store the playlist goes out as it is.
async fn with_markers(state: &AppState, id: &str, text: &str) -> bytes::Bytes {
    let Ok(video) = id.parse::<stream_hls::VideoId>() else {
        return bytes::Bytes::from(text.to_string());
    };
    let anchor = stream_clock::Anchor::from_ulid_ms(video.timestamp_ms());
    match state
        .markers
        .range(
            id,
            f64::NEG_INFINITY,
            f64::INFINITY,
            crate::hls::MAX_PLAYLIST_MARKERS,
        )
        .await
    {
        Ok(range) => bytes::Bytes::from(stream_hls::annotate_live_playlist(
            text,
            anchor,
            &crate::hls::playlist_markers(&range.markers),
        )),
        Err(e) => {
            warn!(error = %e, video_id = %id, "markers unavailable; live playlist served without them");
            bytes::Bytes::from(text.to_string())
        }
    }
}

/// Wait (bounded by [`PART_WAIT`]) until `key` exists; `false` on timeout.
pub async fn wait_for_object(
    state: &AppState,
    id: &str,
    track: &str,
    key: &object_store::path::Path,
) -> Result<bool, EdgeError> {
    let _slot = blocking_slot(state, true)?;
    let mut watch = state.live.watch(id, track);
    let until = tokio::time::Instant::now() + PART_WAIT;
    loop {
        match state.store.objects().head(key).await {
            Ok(_) => return Ok(true),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(EdgeError::Store(e.to_string())),
        }
        tokio::select! {
            changed = watch.updates.changed() => {
                if changed.is_err() {
                    watch = state.live.watch(id, track);
                }
            }
            _ = tokio::time::sleep_until(until) => return Ok(false),
        }
    }
}

/// A slot of `EDGE_MAX_BLOCKED_REQUESTS` for a request that may wait;
/// 503 when all are taken.
fn blocking_slot(
    state: &AppState,
    may_wait: bool,
) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, EdgeError> {
    if !may_wait {
        return Ok(None);
    }
    state
        .blocked
        .clone()
        .try_acquire_owned()
        .map(Some)
        .map_err(|_| EdgeError::Unavailable("too many blocked playlist requests".into()))
}

fn respond(body: bytes::Bytes, head: bool) -> Response {
    let len = body.len();
    let mut resp = Response::new(if head {
        Body::empty()
    } else {
        Body::from(body)
    });
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/vnd.apple.mpegurl"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static(CACHE_LIVE),
    );
    h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    *resp.status_mut() = StatusCode::OK;
    resp
}
