//! The control plane.
//!
//! * [`service`] — `streaming.control.v1.ControlPlane` over the catalogue.
//! * [`convert`] — catalogue records ⇄ protobuf messages (the only place
//!   both meet).
//! * [`projector`] — applies the ingest event stream to the catalogue
//!   (durable JetStream consumer `catalog`).
//!
//! gRPC reflection, `grpc.health.v1` and gRPC-Web (HTTP/1.1, tonic-web) are on.

pub mod convert;
pub mod projector;
pub mod service;

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
}

/// Serve until `shutdown`, then mark NOT_SERVING and drain.
pub async fn run(
    config: ControlConfig,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let catalog = Catalog::connect(&config.common.redis_url, &config.common.redis_prefix).await?;
    let projector = if config.projector {
        let bus = Bus::connect(&config.common.nats_url, &config.common.bus_prefix).await?;
        Some(tokio::spawn(projector::run(
            bus,
            catalog.clone(),
            shutdown.clone(),
        )))
    } else {
        None
    };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ControlPlaneServer<service::ControlService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(stream_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let control = ControlPlaneServer::new(service::ControlService::new(catalog));
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
    Ok(())
}
