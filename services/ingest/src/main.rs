use clap::Parser;
use stream_ingest::IngestConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = IngestConfig::parse();
    if let Err(e) = config.validate() {
        stream_runtime::exit_config_error("ingest", &e);
    }
    stream_runtime::init_tracing(&config.common.log_format);
    let listener = tokio::net::TcpListener::bind(config.http_addr).await?;
    tracing::info!(addr = %config.http_addr, "ingest listening");
    let shutdown = stream_runtime::shutdown_signal();
    stream_ingest::run(config, listener, shutdown).await
}
