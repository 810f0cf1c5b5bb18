//! The marker service. Today it holds its Redis and NATS connections and
//! reports health (`/healthz`, `/readyz`); the marker API, clock mapping and
//! scene detector come with the markers issue.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use redis::aio::ConnectionManager;
use stream_bus::Bus;
use stream_runtime::{CancellationToken, CommonConfig};

/// `marker` settings.
#[derive(Debug, Clone, Parser)]
#[command(name = "marker", about = "Timeline markers")]
pub struct MarkerConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    /// HTTP listen address.
    #[arg(long, env = "MARKER_HTTP_ADDR", default_value = "0.0.0.0:8082")]
    pub http_addr: SocketAddr,
}

struct AppState {
    bus: Bus,
    redis: ConnectionManager,
}

async fn readyz(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    let nats = matches!(
        s.bus.client().connection_state(),
        stream_bus::async_nats::connection::State::Connected
    );
    let mut con = s.redis.clone();
    let redis = redis::cmd("PING")
        .query_async::<String>(&mut con)
        .await
        .is_ok();
    let code = if nats && redis {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(serde_json::json!({ "nats": nats, "redis": redis })),
    )
}

/// Serve until `shutdown`.
pub async fn run(
    config: MarkerConfig,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let bus = Bus::connect(&config.common.nats_url, &config.common.bus_prefix).await?;
    let redis =
        ConnectionManager::new(redis::Client::open(config.common.redis_url.as_str())?).await?;
    let state = Arc::new(AppState { bus, redis });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    tracing::info!(addr = %listener.local_addr()?, "marker listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
