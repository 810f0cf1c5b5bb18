use clap::Parser;
use stream_marker::MarkerConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = MarkerConfig::parse();
    if let Err(e) = config.validate() {
        stream_runtime::exit_config_error("marker", &e);
    }
    stream_runtime::init_tracing(&config.common.log_format);
    let listener = tokio::net::TcpListener::bind(config.http_addr).await?;
    let shutdown = stream_runtime::shutdown_signal();
    stream_marker::run(config, listener, shutdown).await
}
