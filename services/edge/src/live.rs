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

/// Wakes requests waiting on a rendition (`<video>/<track>`).
#[derive(Default)]
pub struct LiveNotifier {
    renditions: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl LiveNotifier {
    /// A receiver that changes at the rendition's next update.
    pub fn watch(&self, video: &str, track: &str) -> watch::Receiver<u64> {
        let mut map = self.renditions.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(format!("{video}/{track}"))
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// The rendition was updated: wake its waiters; forget renditions
    /// nobody waits on (the map holds only renditions with waiters).
    pub fn notify(&self, video: &str, track: &str) {
        let mut map = self.renditions.lock().unwrap_or_else(|e| e.into_inner());
        let key = format!("{video}/{track}");
        if let Some(tx) = map.get(&key) {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
        map.retain(|_, tx| tx.receiver_count() > 0);
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

fn config() -> LiveConfig {
    // Floors that never win over what the text says.
    LiveConfig {
        target_duration_s: 1,
        part_target_s: 0.01,
        window_s: f64::MAX,
        map_uri: Some(stream_hls::path::INIT_NAME.into()),
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
    let mut updates = state.live.watch(id, track);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let text = match state.store.objects().get(key).await {
            Ok(r) => Some(
                r.bytes()
                    .await
                    .map_err(|e| EdgeError::Store(e.to_string()))?,
            ),
            Err(object_store::Error::NotFound { .. }) if directives.msn.is_some() => None,
            Err(object_store::Error::NotFound { .. }) => return Err(EdgeError::NotFound),
            Err(e) => return Err(EdgeError::Store(e.to_string())),
        };
        let mut target_s = 2.0;
        if let Some(text) = &text {
            let raw = String::from_utf8_lossy(text);
            let Ok(playlist) = LivePlaylist::parse(&raw, config()) else {
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
                    return Ok(respond(bytes::Bytes::from(out), head));
                }
                Reload::Ready => return Ok(respond(text.clone(), head)),
                Reload::Wait => {}
            }
        }
        let until = *deadline.get_or_insert_with(|| {
            tokio::time::Instant::now() + Duration::from_secs_f64(3.0 * target_s)
        });
        tokio::select! {
            changed = updates.changed() => {
                if changed.is_err() {
                    updates = state.live.watch(id, track);
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

/// Wait (bounded by [`PART_WAIT`]) until `key` exists; `false` on timeout.
pub async fn wait_for_object(
    state: &AppState,
    id: &str,
    track: &str,
    key: &object_store::path::Path,
) -> Result<bool, EdgeError> {
    let _slot = blocking_slot(state, true)?;
    let mut updates = state.live.watch(id, track);
    let until = tokio::time::Instant::now() + PART_WAIT;
    loop {
        match state.store.objects().head(key).await {
            Ok(_) => return Ok(true),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(EdgeError::Store(e.to_string())),
        }
        tokio::select! {
            changed = updates.changed() => {
                if changed.is_err() {
                    updates = state.live.watch(id, track);
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
