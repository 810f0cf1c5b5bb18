//! The edge: what viewers talk to.
//!
//! * [`hls`] — `/hls/{video}/…` from the media store (typed paths, ETag,
//!   Range, cache policy).
//! * [`native`] — the native TCP stream (port 9000).
//! * [`api`] — `/api/v1/…`, a REST facade over the control plane for the
//!   front end.
//! * `/` — the built front end (`frontend/dist`).
//! * [`knsock`] — the kn-sock 0.3.0 compatible stream on its own three TCP
//!   ports (off unless configured).
//! * [`config`], [`error`].

pub mod api;
pub mod config;
pub mod error;
pub mod hls;
pub mod knsock;
pub mod live;
pub mod native;

use std::future::IntoFuture;
use std::sync::Arc;

use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use stream_catalog::Catalog;
use stream_proto::control::v1::control_plane_client::ControlPlaneClient;
use stream_runtime::CancellationToken;
use stream_store::MediaStore;
use tonic::transport::Channel;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};

pub use config::EdgeConfig;

/// State of the edge's handlers.
pub struct AppState {
    pub store: MediaStore,
    pub catalog: Catalog,
    /// Markers, read to add DATERANGEs to served media playlists.
    pub markers: stream_markers::MarkerStore,
    pub control: ControlPlaneClient<Channel>,
    /// The control plane for calls that may take longer than the 10 s of
    /// `control`: StartLive and StopLive (which waits up to 15 s for the
    /// worker).
    pub control_live: ControlPlaneClient<Channel>,
    pub ingest_public_url: String,
    pub marker_public_url: String,
    /// Wakes blocked LL-HLS requests (fed by [`live::run_notifications`]).
    pub live: Arc<live::LiveNotifier>,
    /// Slots of LL-HLS requests waiting for a part.
    pub blocked: Arc<tokio::sync::Semaphore>,
    /// NATS, for live part notifications.
    pub nats: stream_bus::async_nats::Client,
    /// Subject prefix.
    pub bus_prefix: String,
}

/// Connect to Redis and the store; the control channel connects lazily.
pub async fn connect(config: &EdgeConfig) -> anyhow::Result<Arc<AppState>> {
    let catalog = Catalog::connect(&config.common.redis_url, &config.common.redis_prefix).await?;
    let store = MediaStore::open(&config.common.media_store)?;
    let markers =
        stream_markers::MarkerStore::connect(&config.common.redis_url, &config.common.redis_prefix)
            .await?;
    let endpoint = tonic::transport::Endpoint::from_shared(config.control_url.clone())?
        .connect_timeout(std::time::Duration::from_secs(3));
    let channel = endpoint
        .clone()
        .timeout(std::time::Duration::from_secs(10))
        .connect_lazy();
    let live_channel = endpoint
        .timeout(std::time::Duration::from_secs(25))
        .connect_lazy();
    Ok(Arc::new(AppState {
        store,
        catalog,
        markers,
        control: ControlPlaneClient::new(channel),
        control_live: ControlPlaneClient::new(live_channel),
        ingest_public_url: config.ingest_public_url.clone(),
        marker_public_url: config.marker_public_url.clone(),
        live: Arc::new(live::LiveNotifier::default()),
        blocked: Arc::new(tokio::sync::Semaphore::new(config.max_blocked_requests)),
        nats: stream_bus::async_nats::connect(&config.common.nats_url).await?,
        bus_prefix: config.common.bus_prefix.clone(),
    }))
}

/// The full app: HLS, API, health, static front end; CORS on everything
/// (errors included); bounded concurrency.
pub fn router(state: Arc<AppState>, config: &EdgeConfig) -> Router {
    // Validated by `EdgeConfig::validate`.
    let origins = stream_runtime::parse_origins("EDGE_CORS_ORIGINS", &config.cors_origins)
        .unwrap_or_default();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers([header::RANGE, header::IF_NONE_MATCH])
        .expose_headers([
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::ETAG,
            header::ACCEPT_RANGES,
        ]);
    let index = config.static_dir.join("index.html");
    let frontend = ServeDir::new(&config.static_dir)
        .append_index_html_on_directories(true)
        .not_found_service(ServeFile::new(index));
    let health_state = state.clone();
    // HLS has its own bound: requests waiting for an LL-HLS part hold a
    // slot of `EDGE_MAX_BLOCKED_REQUESTS` instead (see `live`).
    let hls_routes = Router::new()
        .route("/hls/{video}/{*rest}", get(hls::serve).head(hls::serve))
        .with_state(state.clone())
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            config.max_concurrent_requests + config.max_blocked_requests,
        ));
    Router::new()
        .route("/api/v1/videos", get(api::list_videos))
        .route("/api/v1/videos/{id}", get(api::get_video))
        .route("/api/v1/config", get(api::config))
        .route(
            "/api/v1/channels",
            post(api::start_channel).get(api::list_channels),
        )
        .route(
            "/api/v1/channels/{id}",
            get(api::get_channel).delete(api::stop_channel),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let state = health_state.clone();
                async move {
                    let redis = state.catalog.ping().await.is_ok();
                    let code = if redis {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (code, Json(serde_json::json!({ "redis": redis }))).into_response()
                }
            }),
        )
        .with_state(state)
        .fallback_service(frontend)
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            config.max_concurrent_requests,
        ))
        .merge(hls_routes)
        .layer(cors)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Serve HTTP on `listener`, the native stream on `config.native_addr`
/// and the kn-sock ports (when configured) until `shutdown`. The kn-sock
/// ports are bound before anything else is served and run as a supervised
/// task: if they stop on their own, the edge shuts down with that error.
pub async fn run(
    config: EdgeConfig,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let native = tokio::net::TcpListener::bind(config.native_addr)
        .await
        .map_err(|e| anyhow::anyhow!("EDGE_NATIVE_ADDR={}: {e}", config.native_addr))?;
    run_with(config, listener, native, shutdown).await
}

/// [`run`] with the HTTP and native listeners bound by the caller (tests
/// bind port 0).
pub async fn run_with(
    config: EdgeConfig,
    listener: tokio::net::TcpListener,
    native_listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let knsock_listeners = knsock::bind(&config.knsock).await?;
    let state = connect(&config).await?;
    let notifications = tokio::spawn(live::run_notifications(
        state.nats.clone(),
        state.bus_prefix.clone(),
        state.live.clone(),
        shutdown.clone(),
    ));
    let native = native::NativeServer::new(
        state.clone(),
        config.token_secret.as_deref(),
        native::NativeLimits {
            max_connections: config.native_max_connections,
            ..Default::default()
        },
        shutdown.clone(),
    );
    let native = tokio::spawn(native.serve(native_listener, shutdown.clone()));
    let knsock_task = knsock_listeners.map(|l| {
        tokio::spawn(knsock::serve(
            l,
            config.knsock.clone(),
            state.control.clone(),
            state.store.clone(),
            shutdown.clone(),
        ))
    });
    let app = router(state, &config);
    tracing::info!(addr = %listener.local_addr()?, "edge listening");
    let server = axum::serve(listener, app)
        .with_graceful_shutdown({
            let shutdown = shutdown.clone();
            async move { shutdown.cancelled().await }
        })
        .into_future();
    let mut server = std::pin::pin!(server);
    let result: anyhow::Result<()> = match knsock_task {
        None => server.await.map_err(Into::into),
        Some(mut task) => tokio::select! {
            r = &mut server => {
                shutdown.cancel();
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut task).await;
                r.map_err(Into::into)
            }
            r = &mut task => {
                let stopped_alone = !shutdown.is_cancelled();
                shutdown.cancel();
                let _ = server.await;
                match r {
                    Ok(Ok(())) if !stopped_alone => Ok(()),
                    Ok(Ok(())) => Err(anyhow::anyhow!("the kn-sock server stopped")),
                    Ok(Err(e)) => Err(e.context("the kn-sock server failed")),
                    Err(e) => Err(anyhow::anyhow!("the kn-sock server panicked: {e}")),
                }
            }
        },
    };
    shutdown.cancel();
    let _ = notifications.await;
    let _ = native.await;
    result
}
