//! HTTP API (JSON). Times are seconds on the video's presentation
//! timeline.
//!
//! * `POST /v1/videos/{id}/markers` — a marker object or an array of them
//!   (≤ 1 000) → 201 `{"markers": [...]}`; all or nothing. 404 unknown
//!   video; 400 malformed JSON (NaN is not JSON); 422 invalid marker, with
//!   the reason; 413 body or per-video limit.
//! * `GET /v1/videos/{id}/markers?from=&to=&limit=` → `{"markers",
//!   "truncated", "version"}` ordered by media time, then id; `version` is
//!   the change id to resume the event feed after.
//! * `PUT /v1/videos/{id}/markers/{marker}` — replace (keeps `id` and
//!   `created_at`); `DELETE` — remove (204, 404 if absent).
//! * `GET /v1/videos/{id}/markers/events` — Server-Sent Events: one event
//!   per change (`event:` created/updated/deleted, `id:` change id, `data:`
//!   `{"op","id","marker"}`), from `Last-Event-ID` (header) or `?after=`
//!   (a `version`), else from now. A resume point older than the trimmed
//!   change stream first gets `event: reset` (reload the range).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::{Json, Router};
use bytes::Bytes;
use futures::Stream;
use serde_json::json;
use stream_markers::{limits, Change, ChangeFeed, ChangeId, Marker, MarkerInput};
use tokio::sync::OwnedSemaphorePermit;

use crate::{convert, AppState, MarkerError};

/// Largest request body (a full batch with maximal data fits).
pub const MAX_BODY_BYTES: usize = 6 << 20;

pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/videos/{id}/markers", get(range).post(create))
        .route("/v1/videos/{id}/markers/events", get(events))
        .route(
            "/v1/videos/{id}/markers/{marker}",
            put(update).delete(remove),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn readyz(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    let nats = matches!(
        s.bus.client().connection_state(),
        stream_bus::async_nats::connection::State::Connected
    );
    let redis = s.store.ping().await.is_ok();
    let code = if nats && redis {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({ "nats": nats, "redis": redis })))
}

/// Parse a body holding one marker or an array; errors name the index.
fn parse_inputs(body: &[u8]) -> Result<Vec<MarkerInput>, MarkerError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| MarkerError::BadRequest(format!("invalid JSON: {e}")))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        obj @ serde_json::Value::Object(_) => vec![obj],
        _ => {
            return Err(MarkerError::BadRequest(
                "expected a marker object or an array of them".into(),
            ))
        }
    };
    if items.len() > limits::MAX_BATCH {
        return Err(MarkerError::Invalid(
            stream_markers::ValidationError::BatchSize {
                got: items.len(),
                max: limits::MAX_BATCH,
            },
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(v)
                .map_err(|e| MarkerError::BadRequest(format!("markers[{i}]: {e}")))
        })
        .collect()
}

async fn create(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, MarkerError> {
    // 404 before looking at the body.
    state.video_duration(&id).await?;
    let inputs = parse_inputs(&body)?;
    let markers = state.add(&id, inputs).await?;
    Ok((StatusCode::CREATED, Json(json!({ "markers": markers }))))
}

fn seconds(q: &HashMap<String, String>, name: &str) -> Result<Option<f64>, MarkerError> {
    q.get(name)
        .map(|s| match s.parse::<f64>() {
            Ok(v) if !v.is_nan() => Ok(v),
            _ => Err(MarkerError::BadRequest(format!(
                "{name}: not a number of seconds"
            ))),
        })
        .transpose()
}

async fn range(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, MarkerError> {
    let from = seconds(&q, "from")?.unwrap_or(f64::NEG_INFINITY);
    let to = seconds(&q, "to")?.unwrap_or(f64::INFINITY);
    if from > to {
        return Err(MarkerError::BadRequest("from > to".into()));
    }
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| MarkerError::BadRequest("limit: not a count".into()))?,
        None => limits::MAX_RANGE,
    };
    state.video_duration(&id).await?;
    // The stored JSON of each marker is passed through as is (it is this
    // service's own serialisation): no parse and re-serialise per marker.
    let (markers, truncated, version) = state.store.range_json(&id, from, to, limit).await?;
    let mut body = String::with_capacity(64 + markers.iter().map(|m| m.len() + 1).sum::<usize>());
    body.push_str("{\"markers\":[");
    for (i, m) in markers.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(m);
    }
    body.push_str(&format!(
        "],\"truncated\":{truncated},\"version\":\"{version}\"}}"
    ));
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    ))
}

async fn update(
    State(state): State<Arc<AppState>>,
    Path((id, marker_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<impl IntoResponse, MarkerError> {
    let duration = state.video_duration(&id).await?;
    let input: MarkerInput = serde_json::from_slice(&body)
        .map_err(|e| MarkerError::BadRequest(format!("invalid marker: {e}")))?;
    input.validate(0, duration)?;
    // `created_at` stays that of the original (404 if there is none; a
    // concurrent delete is caught by the atomic update below).
    let existing = state
        .store
        .get(&id, &marker_id)
        .await?
        .ok_or(MarkerError::NotFound)?;
    let marker = Marker {
        id: marker_id.clone(),
        video_id: id.clone(),
        input,
        created_at: existing.created_at,
    };
    let ids = state
        .store
        .update(&id, std::slice::from_ref(&marker))
        .await?
        .ok_or(MarkerError::NotFound)?;
    let change = Change {
        id: ids[0],
        op: stream_markers::ChangeOp::Updated,
        marker_id,
        marker: Some(marker.clone()),
    };
    state
        .announce(&[convert::change_to_proto(&id, &change)])
        .await;
    Ok(Json(json!({ "marker": marker })))
}

async fn remove(
    State(state): State<Arc<AppState>>,
    Path((id, marker_id)): Path<(String, String)>,
) -> Result<impl IntoResponse, MarkerError> {
    state.video_duration(&id).await?;
    let change_id = state
        .store
        .delete(&id, &marker_id)
        .await?
        .ok_or(MarkerError::NotFound)?;
    let change = Change {
        id: change_id,
        op: stream_markers::ChangeOp::Deleted,
        marker_id,
        marker: None,
    };
    state
        .announce(&[convert::change_to_proto(&id, &change)])
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// JSON of one SSE change event.
pub fn change_json(c: &Change) -> serde_json::Value {
    json!({ "op": c.op.as_str(), "id": c.marker_id, "marker": c.marker })
}

struct Feed {
    feed: ChangeFeed,
    after: ChangeId,
    pending: std::collections::VecDeque<Change>,
    first: Option<Event>,
    state: Arc<AppState>,
    _permit: OwnedSemaphorePermit,
}

async fn events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, MarkerError> {
    state.video_duration(&id).await?;
    let permit = state
        .sse_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| MarkerError::Busy)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get("after").cloned());
    let (after, first) = match resume {
        Some(raw) => {
            let after: ChangeId = raw.parse().map_err(|_| {
                MarkerError::BadRequest("Last-Event-ID / after: not a change id".into())
            })?;
            if state.store.gap_after(&id, after).await? {
                let now = state.store.version(&id).await?;
                (
                    now,
                    Some(
                        Event::default()
                            .event("reset")
                            .id(now.to_string())
                            .data("{}"),
                    ),
                )
            } else {
                (after, None)
            }
        }
        None => (state.store.version(&id).await?, None),
    };
    let feed = Feed {
        feed: state.store.feed(&id).await?,
        after,
        pending: Default::default(),
        first,
        state: state.clone(),
        _permit: permit,
    };
    let stream = futures::stream::unfold(feed, |mut f| async move {
        if let Some(ev) = f.first.take() {
            return Some((Ok(ev), f));
        }
        loop {
            if let Some(c) = f.pending.pop_front() {
                let ev = Event::default()
                    .event(c.op.as_str())
                    .id(c.id.to_string())
                    .data(change_json(&c).to_string());
                return Some((Ok(ev), f));
            }
            let next = tokio::select! {
                _ = f.state.shutdown.cancelled() => return None,
                r = f.feed.next_after(f.after, 256) => r,
            };
            match next {
                Ok(changes) => {
                    if let Some(last) = changes.last() {
                        f.after = last.id;
                    }
                    f.pending.extend(changes);
                }
                Err(e) => {
                    // The client reconnects with Last-Event-ID.
                    tracing::warn!(error = %e, "marker feed read failed; closing the stream");
                    return None;
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
