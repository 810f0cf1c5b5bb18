//! The marker service: timeline markers of videos.
//!
//! * [`api`] — HTTP: `POST/GET /v1/videos/{id}/markers`, `PUT/DELETE
//!   /v1/videos/{id}/markers/{marker}`, and the Server-Sent Events change
//!   feed `GET /v1/videos/{id}/markers/events` (resumes from
//!   `Last-Event-ID`).
//! * [`intake`] — the NATS producer subject (`P.ingest.markers`, batches
//!   from detectors and ingest), through the same validation and store.
//! * [`convert`] — protobuf ⇄ domain markers.
//! * [`config`], [`error`].
//!
//! Every accepted change is stored first (Redis, [`stream_markers`]) and
//! then announced on NATS (`P.markers.<id>.<change>`); the SSE feed reads
//! the Redis change stream, so it never depends on NATS delivery.

pub mod api;
pub mod config;
pub mod convert;
pub mod error;
pub mod intake;

use std::sync::Arc;

use axum::http::{header, HeaderValue, Method};
use stream_bus::Bus;
use stream_catalog::Catalog;
use stream_markers::{Marker, MarkerInput, MarkerStore};
use stream_runtime::CancellationToken;
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::warn;

pub use config::MarkerConfig;
pub use error::MarkerError;

/// Shared state of handlers and the intake loop.
pub struct AppState {
    pub bus: Bus,
    pub catalog: Catalog,
    pub store: MarkerStore,
    /// Permits for open SSE connections (`MARKER_MAX_SSE`).
    pub sse_slots: Arc<Semaphore>,
    /// Ends open SSE streams on shutdown so the server can drain.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// Validate a batch for `video_id` (which must be in the catalogue),
    /// store it atomically and announce the changes. Returns the stored
    /// markers.
    pub async fn add(
        &self,
        video_id: &str,
        inputs: Vec<MarkerInput>,
    ) -> Result<Vec<Marker>, MarkerError> {
        let duration = self.video_duration(video_id).await?;
        stream_markers::model::validate_batch(&inputs, duration)?;
        let markers: Vec<Marker> = inputs
            .into_iter()
            .map(|i| Marker::new(video_id, i))
            .collect();
        let ids = self.store.insert(video_id, &markers).await?;
        let changes: Vec<_> = markers
            .iter()
            .zip(ids)
            .map(|(m, id)| {
                convert::change_to_proto(
                    video_id,
                    &stream_markers::Change {
                        id,
                        op: stream_markers::ChangeOp::Created,
                        marker_id: m.id.clone(),
                        marker: Some(m.clone()),
                    },
                )
            })
            .collect();
        self.announce(&changes).await;
        Ok(markers)
    }

    /// The video's duration in seconds (`None` while unknown); 404 when the
    /// catalogue does not know the video.
    pub async fn video_duration(&self, video_id: &str) -> Result<Option<f64>, MarkerError> {
        if ulid::Ulid::from_string(video_id).is_err() {
            return Err(MarkerError::NotFound);
        }
        let record = self
            .catalog
            .get(video_id)
            .await?
            .ok_or(MarkerError::NotFound)?;
        Ok(Some(record.duration_s).filter(|d| *d > 0.0))
    }

    /// Publish change events. The change is already stored (and visible to
    /// the SSE feed); a NATS failure is logged, not returned.
    pub async fn announce(&self, changes: &[stream_bus::MarkerChange]) {
        if let Err(e) = self.bus.publish_marker_changes(changes).await {
            warn!(error = %e, "marker change events not published");
        }
    }
}

/// Connect to NATS, Redis (catalogue and markers).
pub async fn connect(
    config: &MarkerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<Arc<AppState>> {
    let bus = Bus::connect(&config.common.nats_url, &config.common.bus_prefix).await?;
    let catalog = Catalog::connect(&config.common.redis_url, &config.common.redis_prefix).await?;
    let store = MarkerStore::connect(&config.common.redis_url, &config.common.redis_prefix).await?;
    Ok(Arc::new(AppState {
        bus,
        catalog,
        store,
        sse_slots: Arc::new(Semaphore::new(config.max_sse)),
        shutdown,
    }))
}

/// The HTTP app with CORS for the configured origins.
pub fn router(state: Arc<AppState>, config: &MarkerConfig) -> axum::Router {
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::HeaderName::from_static("last-event-id"),
        ]);
    api::routes(state).layer(cors)
}

/// Serve until `shutdown`.
pub async fn run(
    config: MarkerConfig,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let state = connect(&config, shutdown.clone()).await?;
    let intake = tokio::spawn(intake::run(state.clone(), shutdown.clone()));
    let app = router(state, &config).layer(tower_http::trace::TraceLayer::new_for_http());
    tracing::info!(addr = %listener.local_addr()?, "marker listening");
    // SSE events are small writes: without TCP_NODELAY, Nagle's algorithm
    // and delayed ACKs hold them back by up to ~40 ms.
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    let _ = intake.await;
    Ok(())
}
