//! Serving `/hls/{video}/{*rest}` from the media store.
//!
//! * The path is parsed into [`HlsPath`] first; anything else is a 404
//!   without a store access (this is the traversal guard).
//! * A video the catalogue marks failed is not served.
//! * `ETag` / `If-None-Match` (304), `Range` on segments (206, 416),
//!   `Cache-Control`: segments and init immutable for a year; a media
//!   playlist with `EXT-X-ENDLIST` an hour; a growing (EVENT) playlist one
//!   second; the master an hour once the video is ready, else one second.
//! * Media playlists are served annotated ([`stream_hls::daterange`]):
//!   `EXT-X-PROGRAM-DATE-TIME` on every segment (anchor: the video id's
//!   ULID timestamp, see [`stream_clock::Anchor::from_ulid_ms`]) and one
//!   `EXT-X-DATERANGE` per marker. Markers change at any time, so their
//!   `ETag` is the stored playlist's tag plus the markers' version (last
//!   change id) and finished playlists are cached briefly and revalidated
//!   ([`CACHE_MARKED`], [`CACHE_FINISHED_UNMARKED`]); a 304 costs one Redis
//!   read and one store read.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use stream_catalog::VideoStatus;
use stream_hls::{HlsPath, VideoId};
use stream_store::object_store::{self, GetOptions, GetRange, ObjectStoreExt};
use stream_store::MediaStore;
use tracing::warn;

use crate::error::EdgeError;
use crate::AppState;

/// Cache-Control of init and media segments (never change once published).
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cache-Control of finished playlists.
pub const CACHE_FINISHED: &str = "public, max-age=3600";
/// Cache-Control of a finished media playlist whose video has markers:
/// a marker change reaches caches within 2 s (then a cheap 304).
pub const CACHE_MARKED: &str = "public, max-age=2, must-revalidate";
/// Cache-Control of a finished media playlist without markers: the first
/// marker reaches caches within a minute.
pub const CACHE_FINISHED_UNMARKED: &str = "public, max-age=60, must-revalidate";
/// Markers written into one media playlist at most.
pub const MAX_PLAYLIST_MARKERS: usize = stream_markers::limits::MAX_RANGE;
/// Cache-Control of playlists still growing (about half a segment).
pub const CACHE_GROWING: &str = "public, max-age=1";

pub async fn serve(
    State(state): State<Arc<AppState>>,
    Path((video, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, EdgeError> {
    let id: VideoId = video.parse().map_err(|_| EdgeError::NotFound)?;
    let path = HlsPath::parse(&rest).map_err(|_| EdgeError::NotFound)?;
    let id = id.to_string();
    // The catalogue decides whether the video may be served at all.
    let status = match state.catalog.get(&id).await {
        Ok(Some(r)) => Some(r.status),
        Ok(None) => return Err(EdgeError::NotFound),
        Err(e) => {
            warn!(error = %e, "catalogue unavailable; serving without it");
            None
        }
    };
    if status == Some(VideoStatus::Failed) {
        return Err(EdgeError::NotFound);
    }
    let key = MediaStore::video_object(&id, &path.relative());
    let store = state.store.objects();
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    let live = status == Some(VideoStatus::Live);
    if let HlsPath::MediaPlaylist(track) = &path {
        let query = query.as_deref().unwrap_or("");
        if live || query.contains("_HLS_") {
            return crate::live::media_playlist(
                &state,
                &id,
                track.as_str(),
                &key,
                query,
                method == Method::HEAD,
            )
            .await;
        }
        return media_playlist(&state, &id, &path, &key, &method, if_none_match).await;
    }
    if let (true, HlsPath::Part(track, ..)) = (live, &path) {
        // A preload-hinted part blocks until it is complete (§6.2.6).
        if !crate::live::wait_for_object(&state, &id, track.as_str(), &key).await? {
            return Err(EdgeError::NotFound);
        }
    }
    if !path.is_immutable() {
        // Playlists: small, read whole; Range is ignored (RFC 9110 §14.2
        // lets a server send the full representation).
        let got = store
            .get_opts(
                &key,
                GetOptions {
                    if_none_match: if_none_match
                        .clone()
                        .map(|e| e.trim_matches('"').to_string()),
                    ..Default::default()
                },
            )
            .await;
        let result = match got {
            Ok(r) => r,
            Err(object_store::Error::NotModified { .. }) => {
                return Ok(not_modified(
                    if_none_match.as_deref(),
                    playlist_cache(&path, status, None),
                ))
            }
            Err(object_store::Error::NotFound { .. }) => return Err(EdgeError::NotFound),
            Err(e) => return Err(EdgeError::Store(e.to_string())),
        };
        let etag = result.meta.e_tag.clone();
        let body = result
            .bytes()
            .await
            .map_err(|e| EdgeError::Store(e.to_string()))?;
        let cache = playlist_cache(&path, status, Some(&body));
        let mut resp = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, path.content_type())
            .header(header::CACHE_CONTROL, cache)
            .header(header::CONTENT_LENGTH, body.len());
        if let Some(tag) = etag {
            resp = resp.header(header::ETAG, quote(&tag));
        }
        let body = if method == Method::HEAD {
            Body::empty()
        } else {
            Body::from(body)
        };
        return resp.body(body).map_err(|e| EdgeError::Store(e.to_string()));
    }

    // Segments: conditional and range requests against the object's metadata.
    let meta = match store.head(&key).await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => return Err(EdgeError::NotFound),
        Err(e) => return Err(EdgeError::Store(e.to_string())),
    };
    let etag = meta.e_tag.as_deref().map(quote);
    if let (Some(inm), Some(tag)) = (if_none_match.as_deref(), etag.as_deref()) {
        if etag_matches(inm, tag) {
            return Ok(not_modified(Some(tag), CACHE_IMMUTABLE));
        }
    }
    let size = meta.size;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(raw) => {
            match http_range_header::parse_range_header(raw).and_then(|r| r.validate(size)) {
                Ok(ranges) if ranges.len() == 1 => Some(ranges[0].clone()),
                // Several ranges: answer with the whole object.
                Ok(_) => None,
                Err(_) => {
                    return Response::builder()
                        .status(StatusCode::RANGE_NOT_SATISFIABLE)
                        .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                        .header(header::CACHE_CONTROL, CACHE_IMMUTABLE)
                        .body(Body::empty())
                        .map_err(|e| EdgeError::Store(e.to_string()));
                }
            }
        }
    };
    let (status_code, length) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.end() - r.start() + 1),
        None => (StatusCode::OK, size),
    };
    let mut resp = Response::builder()
        .status(status_code)
        .header(header::CONTENT_TYPE, path.content_type())
        .header(header::CACHE_CONTROL, CACHE_IMMUTABLE)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, length);
    if let Some(tag) = &etag {
        resp = resp.header(header::ETAG, tag);
    }
    if let Some(r) = &range {
        resp = resp.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", r.start(), r.end()),
        );
    }
    if method == Method::HEAD {
        return resp
            .body(Body::empty())
            .map_err(|e| EdgeError::Store(e.to_string()));
    }
    let options = GetOptions {
        range: range.map(|r| GetRange::Bounded(*r.start()..r.end() + 1)),
        ..Default::default()
    };
    let result = store
        .get_opts(&key, options)
        .await
        .map_err(|e| EdgeError::Store(e.to_string()))?;
    let stream = result
        .into_stream()
        .map_err(|e| std::io::Error::other(e.to_string()));
    resp.body(Body::from_stream(stream))
        .map_err(|e| EdgeError::Store(e.to_string()))
}

/// A media playlist with PDTs and the video's markers as DATERANGEs.
async fn media_playlist(
    state: &AppState,
    id: &str,
    path: &HlsPath,
    key: &stream_store::object_store::path::Path,
    method: &Method,
    if_none_match: Option<String>,
) -> Result<Response, EdgeError> {
    // Markers first: a change after this read gets a new tag next time.
    let marks = state
        .markers
        .range(id, f64::NEG_INFINITY, f64::INFINITY, MAX_PLAYLIST_MARKERS)
        .await;
    let result = match state.store.objects().get(key).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Err(EdgeError::NotFound),
        Err(e) => return Err(EdgeError::Store(e.to_string())),
    };
    let object_tag = result.meta.e_tag.clone().unwrap_or_default();
    let body = result
        .bytes()
        .await
        .map_err(|e| EdgeError::Store(e.to_string()))?;
    let finished = contains(&body, b"#EXT-X-ENDLIST");
    if contains(&body, b"#EXT-X-PART-INF") {
        // A channel's recording: LL-HLS text m3u8-rs cannot rewrite (it has
        // PDTs of its own already); markers go in as they do for live.
        let cache = if finished {
            CACHE_FINISHED
        } else {
            CACHE_GROWING
        };
        let video: VideoId = id.parse().map_err(|_| EdgeError::NotFound)?;
        let anchor = stream_clock::Anchor::from_ulid_ms(video.timestamp_ms());
        let body = match &marks {
            Ok(range) => bytes::Bytes::from(stream_hls::annotate_live_playlist(
                &String::from_utf8_lossy(&body),
                anchor,
                &playlist_markers(&range.markers),
            )),
            Err(_) => body,
        };
        let mut resp = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, path.content_type())
            .header(header::CACHE_CONTROL, cache)
            .header(header::CONTENT_LENGTH, body.len());
        if !object_tag.is_empty() {
            resp = resp.header(header::ETAG, quote(&object_tag));
        }
        let body = if *method == Method::HEAD {
            Body::empty()
        } else {
            Body::from(body)
        };
        return resp.body(body).map_err(|e| EdgeError::Store(e.to_string()));
    }
    let video: VideoId = id.parse().map_err(|_| EdgeError::NotFound)?;
    let anchor = stream_clock::Anchor::from_ulid_ms(video.timestamp_ms());
    let (text, etag, cache) = match &marks {
        Ok(range) => {
            let markers = playlist_markers(&range.markers);
            let cache = match (finished, markers.is_empty()) {
                (false, _) => CACHE_GROWING,
                (true, false) => CACHE_MARKED,
                (true, true) => CACHE_FINISHED_UNMARKED,
            };
            match stream_hls::annotate_media_playlist(&body, anchor, &markers) {
                Ok(text) => (
                    bytes::Bytes::from(text),
                    Some(format!(
                        "\"{}.m{}\"",
                        object_tag.trim_matches('"'),
                        range.version
                    )),
                    cache,
                ),
                Err(e) => {
                    warn!(error = %e, video_id = %id, "playlist not annotated");
                    (body, None, CACHE_GROWING)
                }
            }
        }
        Err(e) => {
            warn!(error = %e, video_id = %id, "markers unavailable; playlist served without them");
            (body, None, CACHE_GROWING)
        }
    };
    if let (Some(inm), Some(tag)) = (if_none_match.as_deref(), etag.as_deref()) {
        if etag_matches(inm, tag) {
            return Ok(not_modified(Some(tag), cache));
        }
    }
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, path.content_type())
        .header(header::CACHE_CONTROL, cache)
        .header(header::CONTENT_LENGTH, text.len());
    if let Some(tag) = etag {
        resp = resp.header(header::ETAG, tag);
    }
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(text)
    };
    resp.body(body).map_err(|e| EdgeError::Store(e.to_string()))
}

/// Markers as DATERANGE sources.
pub(crate) fn playlist_markers(
    markers: &[stream_markers::Marker],
) -> Vec<stream_hls::PlaylistMarker> {
    markers
        .iter()
        .map(|m| stream_hls::PlaylistMarker {
            id: m.id.clone(),
            kind: m.input.kind.clone(),
            label: m.input.label.clone(),
            media_time: m.input.media_time,
            duration: m.input.duration,
        })
        .collect()
}

fn playlist_cache(
    path: &HlsPath,
    status: Option<VideoStatus>,
    body: Option<&[u8]>,
) -> &'static str {
    match path {
        HlsPath::Master if status == Some(VideoStatus::Ready) => CACHE_FINISHED,
        HlsPath::Master => CACHE_GROWING,
        _ => match body {
            Some(b) if contains(b, b"#EXT-X-ENDLIST") => CACHE_FINISHED,
            Some(_) => CACHE_GROWING,
            None if status == Some(VideoStatus::Ready) => CACHE_FINISHED,
            None => CACHE_GROWING,
        },
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn quote(tag: &str) -> String {
    if tag.starts_with('"') || tag.starts_with("W/") {
        tag.to_string()
    } else {
        format!("\"{tag}\"")
    }
}

/// `If-None-Match` (a list, or `*`) against a strong tag (RFC 9110 §13.1.2,
/// weak comparison).
fn etag_matches(if_none_match: &str, tag: &str) -> bool {
    let bare = |t: &str| {
        t.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_string()
    };
    if_none_match.trim() == "*" || if_none_match.split(',').any(|t| bare(t) == bare(tag))
}

fn not_modified(etag: Option<&str>, cache: &'static str) -> Response {
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
        r.headers_mut().insert(header::ETAG, tag);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_comparison() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("W/\"abc\", \"x\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }

    #[test]
    fn playlist_cache_policy() {
        let media = HlsPath::parse("720p/index.m3u8").unwrap();
        assert_eq!(
            playlist_cache(&media, None, Some(b"#EXTM3U\n#EXT-X-ENDLIST\n")),
            CACHE_FINISHED
        );
        assert_eq!(
            playlist_cache(&media, None, Some(b"#EXTM3U\n")),
            CACHE_GROWING
        );
        assert_eq!(
            playlist_cache(&HlsPath::Master, Some(VideoStatus::Ready), None),
            CACHE_FINISHED
        );
        assert_eq!(
            playlist_cache(&HlsPath::Master, Some(VideoStatus::Processing), None),
            CACHE_GROWING
        );
    }
}
