//! The control plane.
//!
//! * [`service`] — `streaming.control.v1.ControlPlane`: catalogue, sessions,
//!   the Feedback stream, the session reaper.
//! * [`sessions`] — playback sessions in Redis (caps, TTL, reaping).
//! * [`feedback`] — per-session server-side ABR (validation, staleness, rate
//!   limit, `stream_abr` production algorithm).
//! * [`auth`] — signed playback tokens (JWT HS256), admin bearer check.
//! * [`live`] — live channels: start-request validation, StartLive (cap,
//!   `Accepted`, `LiveJob`), StopLive (NATS request to the worker), reads.
//! * [`convert`] — catalogue records and requests ⇄ protobuf messages (the
//!   only place both meet).
//! * [`projector`] — applies the ingest event stream to the catalogue
//!   (durable JetStream consumer `catalog`).
//!
//! gRPC reflection, `grpc.health.v1` and gRPC-Web (HTTP/1.1, tonic-web) are on.

pub mod auth;
pub mod convert;
pub mod feedback;
pub mod live;
pub mod projector;
pub mod service;
pub mod sessions;

use std::net::SocketAddr;

use clap::Parser;
use stream_bus::Bus;
use stream_catalog::Catalog;
use stream_proto::control::v1::control_plane_server::ControlPlaneServer;
use stream_runtime::{CancellationToken, CommonConfig};
use tokio_stream::wrappers::TcpListenerStream;
use tracing::info;

/// `control` settings.
#[derive(Debug, Clone, Parser)]
#[command(name = "control", about = "gRPC control plane")]
pub struct ControlConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    /// gRPC listen address.
    #[arg(long, env = "CONTROL_GRPC_ADDR", default_value = "0.0.0.0:50051")]
    pub grpc_addr: SocketAddr,
    /// Project ingest events into the catalogue.
    #[arg(long, env = "CONTROL_PROJECTOR", default_value_t = true, action = clap::ArgAction::Set)]
    pub projector: bool,
    /// A session without heartbeat or report expires after this, ms.
    #[arg(long, env = "CONTROL_SESSION_TTL_MS", default_value_t = 30_000)]
    pub session_ttl_ms: u64,
    /// Heartbeat interval asked of clients, ms.
    #[arg(long, env = "CONTROL_HEARTBEAT_MS", default_value_t = 10_000)]
    pub heartbeat_ms: u64,
    /// Live sessions at most, all videos.
    #[arg(long, env = "CONTROL_MAX_SESSIONS", default_value_t = 100_000)]
    pub max_sessions: u64,
    /// Live sessions at most on one video.
    #[arg(long, env = "CONTROL_MAX_SESSIONS_PER_VIDEO", default_value_t = 20_000)]
    pub max_sessions_per_video: u64,
    /// Buffer reports accepted per session per second (burst: 2 s worth).
    #[arg(long, env = "CONTROL_MAX_REPORTS_PER_S", default_value_t = 10.0)]
    pub max_reports_per_s: f64,
    /// Secret for playback tokens (shared by every replica and the edge);
    /// random per process when unset.
    #[arg(long, env = "CONTROL_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// Playback token lifetime, s.
    #[arg(long, env = "CONTROL_TOKEN_TTL_S", default_value_t = 3600)]
    pub token_ttl_s: i64,
    /// Bearer token for admin calls (ListSessions); admin calls are off when unset.
    #[arg(long, env = "CONTROL_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Edge base URL as clients reach it (for hls_url).
    #[arg(
        long,
        env = "CONTROL_EDGE_PUBLIC_URL",
        default_value = "http://localhost:8080"
    )]
    pub edge_public_url: String,
    /// host:port of the native TCP stream, as clients reach it.
    #[arg(long, env = "CONTROL_TCP_ENDPOINT", default_value = "localhost:9000")]
    pub tcp_endpoint: String,
    /// Segment duration of the ladders, ms (ingest's INGEST_SEGMENT_SECONDS).
    #[arg(long, env = "CONTROL_SEGMENT_MS", default_value_t = 2000.0)]
    pub segment_ms: f64,
    /// Live channels running at once at most (queued, processing or live);
    /// StartLive is RESOURCE_EXHAUSTED beyond.
    #[arg(long, env = "LIVE_MAX_CHANNELS", default_value_t = 8)]
    pub live_max_channels: u64,
}

impl ControlConfig {
    /// Check values clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        self.common.validate()?;
        if !(1_000..=3_600_000).contains(&self.session_ttl_ms) {
            return Err("CONTROL_SESSION_TTL_MS: use 1000 to 3600000".into());
        }
        if self.heartbeat_ms == 0 || self.heartbeat_ms >= self.session_ttl_ms {
            return Err("CONTROL_HEARTBEAT_MS must be > 0 and below the session TTL".into());
        }
        if self.max_sessions == 0 || self.max_sessions_per_video == 0 {
            return Err("session caps must be > 0".into());
        }
        if !(self.max_reports_per_s.is_finite() && self.max_reports_per_s > 0.0) {
            return Err("CONTROL_MAX_REPORTS_PER_S must be > 0".into());
        }
        if self.token_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err("CONTROL_TOKEN_SECRET: use at least 16 characters".into());
        }
        if !(self.segment_ms.is_finite() && self.segment_ms >= 100.0) {
            return Err("CONTROL_SEGMENT_MS must be ≥ 100".into());
        }
        if !(1..=stream_bus::LIVE_QUEUE_MAX as u64).contains(&self.live_max_channels) {
            return Err(format!(
                "LIVE_MAX_CHANNELS: use 1 to {}",
                stream_bus::LIVE_QUEUE_MAX
            ));
        }
        Ok(())
    }
}

/// Serve until `shutdown`, then mark NOT_SERVING and drain.
pub async fn run(
    config: ControlConfig,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let catalog = Catalog::connect(&config.common.redis_url, &config.common.redis_prefix).await?;
    let bus = Bus::connect(&config.common.nats_url, &config.common.bus_prefix).await?;
    // Read only: a file channel's source must exist before it is queued.
    let store = stream_store::MediaStore::open(&config.common.media_store)?;
    let projector = if config.projector {
        Some(tokio::spawn(projector::run(
            bus.clone(),
            catalog.clone(),
            shutdown.clone(),
        )))
    } else {
        None
    };
    let redis =
        redis::aio::ConnectionManager::new(redis::Client::open(config.common.redis_url.as_str())?)
            .await?;
    let sessions = sessions::SessionStore::new(
        redis,
        &config.common.redis_prefix,
        sessions::SessionLimits {
            max_sessions: config.max_sessions,
            max_per_video: config.max_sessions_per_video,
            ttl_ms: config.session_ttl_ms,
        },
    );
    let secret = match &config.token_secret {
        Some(s) => s.as_bytes().to_vec(),
        None => {
            tracing::warn!(
                "CONTROL_TOKEN_SECRET unset: playback tokens use a random per-process key"
            );
            ulid::Ulid::new()
                .to_bytes()
                .iter()
                .chain(ulid::Ulid::new().to_bytes().iter())
                .copied()
                .collect()
        }
    };
    let channels = live::Channels {
        catalog: catalog.clone(),
        bus: bus.clone(),
        store,
        settings: live::LiveSettings {
            max_channels: config.live_max_channels,
            stop_timeout: live::STOP_TIMEOUT,
        },
    };
    let service = service::ControlService::new(service::Inner {
        catalog,
        sessions,
        signer: auth::TokenSigner::new(&secret, config.token_ttl_s),
        admin_token: config.admin_token.clone(),
        bus,
        settings: service::SessionSettings {
            edge_url: config.edge_public_url.clone(),
            tcp_endpoint: config.tcp_endpoint.clone(),
            heartbeat_ms: config.heartbeat_ms,
            segment_ms: config.segment_ms,
            max_reports_per_s: config.max_reports_per_s,
        },
        channels,
    });
    let reaper = tokio::spawn(service::reaper(service.inner(), shutdown.clone()));
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ControlPlaneServer<service::ControlService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(stream_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let control = ControlPlaneServer::new(service);
    let addr = listener.local_addr()?;
    info!(%addr, "control plane listening");
    let drain = {
        let shutdown = shutdown.clone();
        let reporter = health_reporter.clone();
        async move {
            shutdown.cancelled().await;
            reporter
                .set_not_serving::<ControlPlaneServer<service::ControlService>>()
                .await;
        }
    };
    tonic::transport::Server::builder()
        .accept_http1(true)
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .max_concurrent_streams(Some(4096))
        .timeout(std::time::Duration::from_secs(30))
        .concurrency_limit_per_connection(256)
        .layer(tonic_web::GrpcWebLayer::new())
        .add_service(health_service)
        .add_service(reflection)
        .add_service(control)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), drain)
        .await?;
    if let Some(p) = projector {
        let _ = p.await;
    }
    let _ = reaper.await;
    Ok(())
}
