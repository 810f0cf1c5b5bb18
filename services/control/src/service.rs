//! `ControlPlane` implementation: catalogue, sessions, feedback, live
//! channels (handlers in [`crate::live`]).

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use prost::Message;
use stream_bus::Bus;
use stream_catalog::{Catalog, CatalogError, VideoRecord};
use stream_hls::VideoId;
use stream_proto::control::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use crate::auth::{require_admin, TokenSigner};
use crate::convert;
use crate::feedback::{capability_cap, startup_index, AbrSession, Choice, Reject, Rung};
use crate::live::Channels;
use crate::sessions::{SessionError, SessionStore, TouchUpdate};

/// Default page size of `ListVideos`.
const DEFAULT_PAGE: u32 = 20;
/// Default / largest page of `ListSessions`.
const DEFAULT_SESSION_PAGE: u32 = 100;
const MAX_SESSION_PAGE: u32 = 1000;
/// Decisions buffered per Feedback stream before the sender waits.
const DECISION_QUEUE: usize = 16;
/// Rate-limited reports in a row after which a stream is ended.
const FLOOD_LIMIT: u32 = 200;

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Base URL of the edge as clients reach it, e.g. `http://localhost:8080`.
    pub edge_url: String,
    /// host:port of the native TCP stream.
    pub tcp_endpoint: String,
    /// Expected heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// Segment duration of the ladders, ms.
    pub segment_ms: f64,
    /// Reports per second accepted per session (burst 2 s).
    pub max_reports_per_s: f64,
}

/// What the service needs.
pub struct Inner {
    pub catalog: Catalog,
    pub sessions: SessionStore,
    pub signer: TokenSigner,
    pub admin_token: Option<String>,
    pub bus: Bus,
    pub settings: SessionSettings,
    /// Live channels.
    pub channels: Channels,
}

/// The gRPC service.
#[derive(Clone)]
pub struct ControlService {
    inner: Arc<Inner>,
}

impl ControlService {
    pub fn new(inner: Inner) -> Self {
        ControlService {
            inner: Arc::new(inner),
        }
    }
}

fn unavailable(e: CatalogError) -> Status {
    warn!(error = %e, "catalogue error");
    Status::unavailable("catalogue unavailable; retry")
}

fn session_status(e: SessionError) -> Status {
    match e {
        SessionError::GlobalCap(_) | SessionError::VideoCap(_) => {
            Status::resource_exhausted(e.to_string())
        }
        SessionError::NotFound => Status::not_found(e.to_string()),
        SessionError::Redis(e) => {
            warn!(error = %e, "session store error");
            Status::unavailable("session store unavailable; retry")
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn parse_video_id(raw: &str) -> Result<String, Status> {
    raw.parse::<VideoId>()
        .map(|v| v.to_string())
        .map_err(|_| Status::invalid_argument("video_id is not a ULID"))
}

fn parse_channel_id(raw: &str) -> Result<VideoId, Status> {
    raw.parse::<VideoId>()
        .map_err(|_| Status::invalid_argument("channel_id is not a ULID"))
}

/// A page size of `ListVideos` / `ListChannels`: 0 = 20, at most the
/// catalogue's largest page.
fn catalog_page_size(raw: u32) -> Result<usize, Status> {
    match raw {
        0 => Ok(DEFAULT_PAGE as usize),
        n if n > stream_catalog::MAX_PAGE as u32 => Err(Status::invalid_argument(format!(
            "page_size {n} exceeds {}",
            stream_catalog::MAX_PAGE
        ))),
        n => Ok(n as usize),
    }
}

/// The id to continue after from a `page_token` ("" = first page).
fn catalog_page_token(raw: &str) -> Result<Option<String>, Status> {
    if raw.is_empty() {
        return Ok(None);
    }
    let id: VideoId = raw
        .parse()
        .map_err(|_| Status::invalid_argument("page_token is not from a previous page"))?;
    Ok(Some(id.to_string()))
}

/// A channel record as the API's `Channel`.
fn channel_proto(record: &VideoRecord) -> Result<pb::Channel, Status> {
    convert::channel(record).ok_or_else(|| Status::not_found(format!("no channel {}", record.id)))
}

fn parse_session_id(raw: &str) -> Result<String, Status> {
    raw.parse::<ulid::Ulid>()
        .map(|u| u.to_string())
        .map_err(|_| Status::invalid_argument("session_id is not a ULID"))
}

/// A playable video's video rungs, ascending by bandwidth.
fn ladder_of(record: &VideoRecord) -> Result<Vec<Rung>, Status> {
    if !record.is_playable() {
        return Err(Status::failed_precondition(format!(
            "video {} is not playable yet ({:?})",
            record.id, record.status
        )));
    }
    let mut rungs: Vec<Rung> = record
        .renditions
        .iter()
        .filter(|r| !r.audio && r.bandwidth_bps > 0)
        .map(|r| Rung {
            name: r.name.clone(),
            height: r.height,
            bandwidth_bps: r.bandwidth_bps,
        })
        .collect();
    rungs.sort_by_key(|r| r.bandwidth_bps);
    rungs.dedup_by_key(|r| r.bandwidth_bps);
    if rungs.is_empty() {
        return Err(Status::failed_precondition("video has no video renditions"));
    }
    Ok(rungs)
}

fn choice_proto(rungs: &[Rung], index: usize) -> pb::RenditionChoice {
    let r = &rungs[index.min(rungs.len() - 1)];
    pb::RenditionChoice {
        name: r.name.clone(),
        index: index as u32,
        bandwidth_bps: r.bandwidth_bps,
    }
}

impl Inner {
    async fn playable_video(&self, video_id: &str) -> Result<VideoRecord, Status> {
        self.catalog
            .get(video_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| Status::not_found(format!("no video {video_id}")))
    }

    fn hls_url(&self, video_id: &str) -> String {
        format!(
            "{}/hls/{video_id}/master.m3u8",
            self.settings.edge_url.trim_end_matches('/')
        )
    }

    async fn publish_session_event(&self, session_id: &str, video_id: &str, kind: &str) {
        let ev = pb::SessionEvent {
            session_id: session_id.to_string(),
            video_id: video_id.to_string(),
            kind: kind.to_string(),
            at: Some(timestamp(now_ms())),
        };
        let subject = self.bus.subjects().session_event(session_id, kind);
        if let Err(e) = self
            .bus
            .client()
            .publish(subject, ev.encode_to_vec().into())
            .await
        {
            warn!(error = %e, "session event not published");
        }
    }
}

type DecisionStream = Pin<Box<dyn Stream<Item = Result<pb::QualityDecision, Status>> + Send>>;

#[tonic::async_trait]
impl pb::control_plane_server::ControlPlane for ControlService {
    async fn list_videos(
        &self,
        request: Request<pb::ListVideosRequest>,
    ) -> Result<Response<pb::ListVideosResponse>, Status> {
        let req = request.into_inner();
        let size = catalog_page_size(req.page_size)?;
        let after = catalog_page_token(&req.page_token)?;
        let (records, next) = self
            .inner
            .catalog
            .list(size, after.as_deref())
            .await
            .map_err(unavailable)?;
        Ok(Response::new(pb::ListVideosResponse {
            videos: records.iter().map(convert::video).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn get_video(
        &self,
        request: Request<pb::GetVideoRequest>,
    ) -> Result<Response<pb::Video>, Status> {
        let id = parse_video_id(&request.into_inner().video_id)?;
        let record = self
            .inner
            .catalog
            .get(&id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| Status::not_found(format!("no video {id}")))?;
        Ok(Response::new(convert::video(&record)))
    }

    async fn open_session(
        &self,
        request: Request<pb::OpenSessionRequest>,
    ) -> Result<Response<pb::OpenSessionResponse>, Status> {
        let req = request.into_inner();
        let video_id = parse_video_id(&req.video_id)?;
        let kind = pb::ClientKind::try_from(req.client_kind).unwrap_or(pb::ClientKind::Unspecified);
        if kind == pb::ClientKind::Unspecified {
            return Err(Status::invalid_argument("client_kind must be HLS or TCP"));
        }
        let caps = req.capabilities.unwrap_or_default();
        if !(caps.initial_throughput_bps.is_finite() && caps.initial_throughput_bps >= 0.0) {
            return Err(Status::invalid_argument(
                "initial_throughput_bps must be finite and ≥ 0",
            ));
        }
        if caps.max_height > 16_384 {
            return Err(Status::invalid_argument("max_height above 16384"));
        }
        if !caps.codecs.is_empty() && !caps.codecs.iter().any(|c| c.starts_with("avc1")) {
            return Err(Status::failed_precondition(
                "the client decodes none of the video codecs (avc1)",
            ));
        }
        let record = self.inner.playable_video(&video_id).await?;
        let rungs = ladder_of(&record)?;
        let session_id = ulid::Ulid::new().to_string();
        let now = now_ms();
        self.inner
            .sessions
            .open(&session_id, &video_id, kind as i32, caps.max_height, now)
            .await
            .map_err(session_status)?;
        let cap = capability_cap(&rungs, caps.max_height);
        let initial = startup_index(&rungs, cap, caps.initial_throughput_bps);
        let (token, exp) = self
            .inner
            .signer
            .sign(&session_id, &video_id, now / 1000)
            .map_err(|e| Status::internal(format!("token signing failed: {e}")))?;
        Ok(Response::new(pb::OpenSessionResponse {
            session_id,
            playback_token: token,
            token_expires_at: Some(timestamp(exp * 1000)),
            hls_url: self.inner.hls_url(&video_id),
            tcp_endpoint: self.inner.settings.tcp_endpoint.clone(),
            initial_rendition: Some(choice_proto(&rungs, initial)),
            heartbeat_interval_ms: self.inner.settings.heartbeat_ms as u32,
            session_ttl_ms: self.inner.sessions.limits.ttl_ms as u32,
        }))
    }

    async fn select_video(
        &self,
        request: Request<pb::SelectVideoRequest>,
    ) -> Result<Response<pb::SelectVideoResponse>, Status> {
        let req = request.into_inner();
        let session_id = parse_session_id(&req.session_id)?;
        let video_id = parse_video_id(&req.video_id)?;
        let now = now_ms();
        let session = self
            .inner
            .sessions
            .get(&session_id, now)
            .await
            .map_err(session_status)?;
        let record = self.inner.playable_video(&video_id).await?;
        let rungs = ladder_of(&record)?;
        self.inner
            .sessions
            .select_video(&session_id, &video_id, now)
            .await
            .map_err(session_status)?;
        let cap = capability_cap(&rungs, session.max_height);
        let (token, _) = self
            .inner
            .signer
            .sign(&session_id, &video_id, now / 1000)
            .map_err(|e| Status::internal(format!("token signing failed: {e}")))?;
        Ok(Response::new(pb::SelectVideoResponse {
            hls_url: self.inner.hls_url(&video_id),
            initial_rendition: Some(choice_proto(&rungs, startup_index(&rungs, cap, 0.0))),
            playback_token: token,
        }))
    }

    type FeedbackStream = DecisionStream;

    async fn feedback(
        &self,
        request: Request<Streaming<pb::BufferReport>>,
    ) -> Result<Response<Self::FeedbackStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(DECISION_QUEUE);
        tokio::spawn(run_feedback(self.inner.clone(), inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let id = parse_session_id(&request.into_inner().session_id)?;
        let expiry = self
            .inner
            .sessions
            .touch(&id, now_ms(), &TouchUpdate::default())
            .await
            .map_err(session_status)?;
        Ok(Response::new(pb::HeartbeatResponse {
            expires_at: Some(timestamp(expiry)),
        }))
    }

    async fn close_session(
        &self,
        request: Request<pb::CloseSessionRequest>,
    ) -> Result<Response<pb::CloseSessionResponse>, Status> {
        let id = parse_session_id(&request.into_inner().session_id)?;
        match self
            .inner
            .sessions
            .close(&id)
            .await
            .map_err(session_status)?
        {
            Some(video) => {
                self.inner
                    .publish_session_event(&id, &video, "closed")
                    .await;
                Ok(Response::new(pb::CloseSessionResponse {}))
            }
            None => Err(Status::not_found("no such session (closed or expired)")),
        }
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        require_admin(&request, self.inner.admin_token.as_deref())?;
        let req = request.into_inner();
        let size = match req.page_size {
            0 => DEFAULT_SESSION_PAGE,
            n if n > MAX_SESSION_PAGE => {
                return Err(Status::invalid_argument(format!(
                    "page_size above {MAX_SESSION_PAGE}"
                )))
            }
            n => n,
        } as usize;
        let offset: usize = if req.page_token.is_empty() {
            0
        } else {
            req.page_token
                .parse()
                .map_err(|_| Status::invalid_argument("page_token is not from a previous page"))?
        };
        let (records, total) = self
            .inner
            .sessions
            .list(now_ms(), offset, size)
            .await
            .map_err(session_status)?;
        let next = offset + records.len();
        Ok(Response::new(pb::ListSessionsResponse {
            next_page_token: if (next as u64) < total && !records.is_empty() {
                next.to_string()
            } else {
                String::new()
            },
            sessions: records
                .into_iter()
                .map(|r| pb::Session {
                    session_id: r.id,
                    video_id: r.video_id,
                    client_kind: r.kind,
                    created_at: Some(timestamp(r.created_ms)),
                    expires_at: Some(timestamp(r.expires_ms)),
                    rendition: r.rendition,
                    reports_accepted: r.accepted,
                    reports_rejected: r.rejected,
                })
                .collect(),
        }))
    }

    async fn start_live(
        &self,
        request: Request<pb::StartLiveRequest>,
    ) -> Result<Response<pb::Channel>, Status> {
        let start = convert::live_start(request.into_inner())?;
        let record = self.inner.channels.start(start).await?;
        Ok(Response::new(channel_proto(&record)?))
    }

    async fn stop_live(
        &self,
        request: Request<pb::StopLiveRequest>,
    ) -> Result<Response<pb::Channel>, Status> {
        let id = parse_channel_id(&request.into_inner().channel_id)?;
        let record = self.inner.channels.stop(&id).await?;
        Ok(Response::new(channel_proto(&record)?))
    }

    async fn get_channel(
        &self,
        request: Request<pb::GetChannelRequest>,
    ) -> Result<Response<pb::Channel>, Status> {
        let id = parse_channel_id(&request.into_inner().channel_id)?;
        let record = self.inner.channels.get(&id).await?;
        Ok(Response::new(channel_proto(&record)?))
    }

    async fn list_channels(
        &self,
        request: Request<pb::ListChannelsRequest>,
    ) -> Result<Response<pb::ListChannelsResponse>, Status> {
        let req = request.into_inner();
        let size = catalog_page_size(req.page_size)?;
        let after = catalog_page_token(&req.page_token)?;
        let (records, next) = self.inner.channels.list(size, after.as_deref()).await?;
        Ok(Response::new(pb::ListChannelsResponse {
            channels: records.iter().filter_map(convert::channel).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }
}

/// One Feedback stream: reports in, decisions out, until the client ends
/// the stream, the session expires, or it floods past the rate limit.
async fn run_feedback(
    inner: Arc<Inner>,
    mut inbound: Streaming<pb::BufferReport>,
    tx: mpsc::Sender<Result<pb::QualityDecision, Status>>,
) {
    let silence = Duration::from_millis(3 * inner.settings.heartbeat_ms.max(100));
    let touch_every = Duration::from_millis((inner.sessions.limits.ttl_ms / 4).max(100));
    let mut state: Option<(String, i32, AbrSession)> = None;
    let mut pending = TouchUpdate::default();
    // Sessions opened together must not refresh together: start each
    // stream at a random phase of the touch interval.
    let mut last_touch = Instant::now()
        - Duration::from_millis(rand::random_range(0..touch_every.as_millis().max(1) as u64));
    let mut flood = 0u32;
    loop {
        let next = tokio::time::timeout(silence, inbound.message()).await;
        let report = match next {
            Err(_) => {
                // No report for 3 heartbeat intervals: fall back safely.
                let Some((id, kind, abr)) = state.as_mut() else {
                    let _ = tx
                        .send(Err(Status::deadline_exceeded("no report received")))
                        .await;
                    return;
                };
                if let Err(e) = inner
                    .sessions
                    .touch(id, now_ms(), &TouchUpdate::default())
                    .await
                {
                    let _ = tx.send(Err(session_status(e))).await;
                    return;
                }
                let choice = abr.fallback();
                let d = decision(id, 0, abr.rungs(), &choice);
                publish_tcp(&inner, id, *kind, &d).await;
                if tx.send(Ok(d)).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(Err(status)) => {
                debug!(%status, "feedback stream ended by client error");
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(r))) => r,
        };
        let now = now_ms();
        if state.is_none() {
            match open_state(&inner, &report, now).await {
                Ok(s) => state = Some(s),
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
        }
        let (id, kind, abr) = state.as_mut().expect("state set above");
        if !report.session_id.is_empty() && report.session_id != *id {
            pending.rejected += 1;
            continue;
        }
        match abr.on_report(&report, now) {
            Ok(choice) => {
                flood = 0;
                pending.accepted += 1;
                pending.last_seq = abr.last_seq();
                pending.rendition = Some(abr.rungs()[choice.index].name.clone());
                let d = decision(id, report.sequence, abr.rungs(), &choice);
                publish_tcp(&inner, id, *kind, &d).await;
                if tx.send(Ok(d)).await.is_err() {
                    break;
                }
            }
            Err(Reject::RateLimited) => {
                pending.rejected += 1;
                flood += 1;
                if flood > FLOOD_LIMIT {
                    let _ = tx
                        .send(Err(Status::resource_exhausted(format!(
                            "more than {} reports/s; stream closed",
                            inner.settings.max_reports_per_s
                        ))))
                        .await;
                    break;
                }
            }
            Err(Reject::Stale) | Err(Reject::Invalid(_)) => pending.rejected += 1,
        }
        if last_touch.elapsed() >= touch_every {
            last_touch = Instant::now();
            let update = std::mem::take(&mut pending);
            if let Err(e) = inner.sessions.touch(id, now, &update).await {
                let _ = tx.send(Err(session_status(e))).await;
                return;
            }
        }
    }
    if let Some((id, _, _)) = state {
        if pending.accepted + pending.rejected > 0 {
            let _ = inner.sessions.touch(&id, now_ms(), &pending).await;
        }
    }
}

async fn open_state(
    inner: &Inner,
    first: &pb::BufferReport,
    now: i64,
) -> Result<(String, i32, AbrSession), Status> {
    if first.session_id.is_empty() {
        return Err(Status::invalid_argument(
            "the first report must carry session_id",
        ));
    }
    let id = parse_session_id(&first.session_id)?;
    let session = inner.sessions.get(&id, now).await.map_err(session_status)?;
    let record = inner.playable_video(&session.video_id).await?;
    let rungs = ladder_of(&record)?;
    let abr = AbrSession::new(
        rungs,
        session.max_height,
        inner.settings.segment_ms,
        record.duration_s.max(inner.settings.segment_ms / 1000.0),
        session.last_seq,
        now,
        inner.settings.max_reports_per_s,
    )
    .map_err(Status::failed_precondition)?;
    Ok((id, session.kind, abr))
}

fn decision(session_id: &str, sequence: u64, rungs: &[Rung], c: &Choice) -> pb::QualityDecision {
    pb::QualityDecision {
        session_id: session_id.to_string(),
        sequence,
        rendition: Some(choice_proto(rungs, c.index)),
        reason: c.reason as i32,
        detail: c.detail.to_string(),
        decided_at: Some(timestamp(now_ms())),
    }
}

/// TCP sessions' decisions also go to the edge over NATS.
async fn publish_tcp(inner: &Inner, session_id: &str, kind: i32, d: &pb::QualityDecision) {
    if kind != pb::ClientKind::Tcp as i32 {
        return;
    }
    let subject = inner.bus.subjects().session_decision(session_id);
    if let Err(e) = inner
        .bus
        .client()
        .publish(subject, d.encode_to_vec().into())
        .await
    {
        warn!(error = %e, "TCP decision not published");
    }
}

/// Reap expired sessions every second until `shutdown`, publishing an
/// `expired` event for each.
pub async fn reaper(inner: Arc<Inner>, shutdown: stream_runtime::CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        match inner.sessions.reap(now_ms()).await {
            Ok(reaped) => {
                for (id, video) in reaped {
                    inner.publish_session_event(&id, &video, "expired").await;
                }
            }
            Err(e) => warn!(error = %e, "reaper pass failed"),
        }
    }
}

impl ControlService {
    /// Shared state, for the reaper.
    pub fn inner(&self) -> Arc<Inner> {
        self.inner.clone()
    }
}
