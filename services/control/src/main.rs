use clap::Parser;
use stream_control::ControlConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ControlConfig::parse();
    if let Err(e) = config.validate() {
        stream_runtime::exit_config_error("control", &e);
    }
    stream_runtime::init_tracing(&config.common.log_format);
    let listener = tokio::net::TcpListener::bind(config.grpc_addr).await?;
    let shutdown = stream_runtime::shutdown_signal();
    stream_control::run(config, listener, shutdown).await
}
