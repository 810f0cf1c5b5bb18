//! Ingest: takes uploads and URL imports, queues transcode jobs on
//! JetStream, runs workers that transcode in process (`stream-media`) and
//! publish HLS to the media store.
//!
//! * [`config`] — settings.
//! * [`api`] — the HTTP API (axum).
//! * [`worker`] — job loop: fetch source, transcode, publish, ack.
//! * [`live`] — live channel workers: run a channel, publish LL-HLS parts,
//!   playlists and the master while it runs, VOD when it stops.
//! * [`publish`] — scratch → media store, master playlist, bitrates.
//! * [`fetch`] — URL imports behind an SSRF guard.
//! * [`transcoder`] — transcodes in a child process under resource limits
//!   (the `transcoder` binary), and the child's side of it.

pub mod api;
pub mod config;
pub mod fetch;
pub mod live;
pub mod publish;
pub mod transcoder;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::Method;
use stream_bus::{Bus, VideoEvent};
use stream_catalog::Catalog;
use stream_media::TranscodeOptions;
use stream_runtime::CancellationToken;
use stream_store::MediaStore;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::warn;

pub use config::IngestConfig;

/// State shared by the API and the workers.
pub struct Shared {
    pub bus: Bus,
    pub catalog: Catalog,
    pub store: MediaStore,
    pub scratch_dir: PathBuf,
    pub transcode: TranscodeOptions,
    /// Runs each transcode in a child process.
    pub transcoder: transcoder::Transcoder,
    /// Live channels this process runs at once.
    pub live_channels: usize,
    /// Default DVR window, seconds.
    pub live_dvr_window_s: f64,
    /// Nominal LL-HLS part duration, seconds.
    pub live_part_s: f64,
    /// Nominal part duration of `low` latency channels, seconds.
    pub live_low_part_s: f64,
    /// A pulled channel without viewer sessions for this long stops, s
    /// (0 = never).
    pub live_idle_stop_s: f64,
    /// Wall-clock budget of a job: base, seconds (`JOB_MAX_WALL_S`).
    pub job_max_wall_s: f64,
    /// Wall-clock budget of a job: seconds per media second.
    pub job_wall_per_media_s: f64,
    pub max_upload_bytes: u64,
    pub allow_private_urls: bool,
    pub shutdown: CancellationToken,
}

impl Shared {
    /// Publish an event and apply it to the catalogue; failures are logged
    /// (the control plane also projects events from the stream).
    pub async fn emit(&self, ev: VideoEvent) {
        if let Err(e) = self.emit_required(ev).await {
            warn!(error = %e, "event not published");
        }
    }

    /// A video failed for good: delete whatever of it was published
    /// (nothing of a failed video is served), then say `failed` with the
    /// reason.
    pub async fn fail_video(&self, video_id: &str, reason: String, input_error: bool) {
        let _ = self
            .store
            .delete_prefix(&MediaStore::video_prefix(video_id))
            .await;
        self.emit(stream_bus::event(
            video_id,
            stream_bus::video_event::Kind::Failed(stream_bus::media::Failed {
                reason,
                input_error,
            }),
        ))
        .await;
    }

    /// Apply an event to the catalogue, then publish it (JetStream ack
    /// awaited): whoever sees the event can read the catalogue reflecting
    /// it. Errors when the bus did not take it (a failed catalogue write is
    /// logged; the control plane's projector applies it from the stream).
    pub async fn emit_required(&self, ev: VideoEvent) -> Result<(), stream_bus::BusError> {
        if let Err(e) = self.catalog.apply(&ev).await {
            warn!(error = %e, video_id = %ev.video_id, "catalogue update failed");
        }
        self.bus.publish_event(&ev).await
    }
}

/// Connect to NATS, Redis and the store.
pub async fn connect(
    config: &IngestConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<Arc<Shared>> {
    let bus = Bus::connect(&config.common.nats_url, &config.common.bus_prefix).await?;
    let catalog = Catalog::connect(&config.common.redis_url, &config.common.redis_prefix).await?;
    let store = MediaStore::open(&config.common.media_store)?;
    std::fs::create_dir_all(&config.scratch_dir)?;
    Ok(Arc::new(Shared {
        bus,
        catalog,
        store,
        scratch_dir: config.scratch_dir.clone(),
        transcode: TranscodeOptions {
            ladder: config.ladder.clone(),
            segment_duration_s: config.segment_seconds,
            x264_preset: config.x264_preset.clone(),
            x264_threads: config.x264_threads,
            scene_threshold: Some(config.scene_threshold).filter(|t| *t > 0.0),
            ..TranscodeOptions::default()
        },
        transcoder: transcoder::Transcoder {
            bin: config.transcoder_path()?,
            limits: transcoder::ChildLimits {
                max_memory_bytes: config.transcoder_max_memory_bytes,
                ..Default::default()
            },
        },
        live_channels: config.live_channels,
        live_dvr_window_s: config.live_dvr_window_s,
        live_part_s: config.live_part_seconds,
        live_low_part_s: config.live_low_part_seconds,
        live_idle_stop_s: config.live_idle_stop_s,
        job_max_wall_s: config.job_max_wall_s,
        job_wall_per_media_s: config.job_wall_per_media_s,
        max_upload_bytes: config.max_upload_bytes,
        allow_private_urls: config.allow_private_urls,
        shutdown,
    }))
}

/// The full HTTP app: routes, CORS allow-list, bounded concurrency.
pub fn router(shared: Arc<Shared>, config: &IngestConfig) -> axum::Router {
    // Validated by `IngestConfig::validate`.
    let origins = stream_runtime::parse_origins("INGEST_CORS_ORIGINS", &config.cors_origins)
        .unwrap_or_default();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([axum::http::header::CONTENT_TYPE])
        .expose_headers([axum::http::header::LOCATION]);
    api::routes(shared, config.max_concurrent_uploads)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(cors)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Serve the API on `listener` and run `config.workers` workers until
/// `shutdown`; in-flight jobs are handed back to the queue.
pub async fn run(
    config: IngestConfig,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let shared = connect(&config, shutdown.clone()).await?;
    let mut workers = Vec::new();
    for w in 0..config.workers {
        workers.push(tokio::spawn(worker::run(shared.clone(), w)));
    }
    workers.push(tokio::spawn(worker::report_exhausted(shared.clone())));
    workers.push(tokio::spawn(live::run(shared.clone())));
    let app = router(shared.clone(), &config);
    let s = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { s.cancelled().await })
        .await?;
    for w in workers {
        let _ = w.await;
    }
    Ok(())
}
