//! Marker service configuration.

use std::net::SocketAddr;

use clap::Parser;
use stream_runtime::CommonConfig;

/// `marker` settings.
#[derive(Debug, Clone, Parser)]
#[command(name = "marker", about = "Timeline markers")]
pub struct MarkerConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    /// HTTP listen address.
    #[arg(long, env = "MARKER_HTTP_ADDR", default_value = "0.0.0.0:8082")]
    pub http_addr: SocketAddr,
    /// Origins allowed to call the API from a browser (comma-separated;
    /// the page is served by the edge, another origin).
    #[arg(
        long,
        env = "MARKER_CORS_ORIGINS",
        default_value = "http://localhost:8080,http://127.0.0.1:8080",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Server-Sent Events connections at once; more get 503. Each holds one
    /// Redis connection for its blocking reads.
    #[arg(long, env = "MARKER_MAX_SSE", default_value_t = 512)]
    pub max_sse: usize,
}

impl MarkerConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.common.validate()?;
        for o in &self.cors_origins {
            if http::HeaderValue::from_str(o).is_err() || !o.starts_with("http") {
                return Err(format!("MARKER_CORS_ORIGINS: {o:?} is not an origin"));
            }
        }
        if self.max_sse == 0 {
            return Err("MARKER_MAX_SSE must be > 0".into());
        }
        Ok(())
    }
}
