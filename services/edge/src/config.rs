//! Edge configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use stream_runtime::CommonConfig;

/// `edge` settings.
#[derive(Debug, Clone, Parser)]
#[command(name = "edge", about = "HLS, REST facade and web front end")]
pub struct EdgeConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    /// HTTP listen address.
    #[arg(long, env = "EDGE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Built front end (index.html and assets).
    #[arg(long, env = "EDGE_STATIC_DIR", default_value = "frontend/dist")]
    pub static_dir: PathBuf,
    /// Origins allowed to fetch HLS and the API cross-origin (comma-separated).
    #[arg(
        long,
        env = "EDGE_CORS_ORIGINS",
        default_value = "http://localhost:8080,http://127.0.0.1:8080",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Control plane gRPC endpoint.
    #[arg(long, env = "CONTROL_URL", default_value = "http://127.0.0.1:50051")]
    pub control_url: String,
    /// Ingest base URL as browsers reach it (for the upload form).
    #[arg(
        long,
        env = "EDGE_INGEST_PUBLIC_URL",
        default_value = "http://localhost:8081"
    )]
    pub ingest_public_url: String,
    /// Marker service base URL as browsers reach it (markers API and SSE,
    /// called cross-origin by the page; see ARCHITECTURE.md).
    #[arg(
        long,
        env = "EDGE_MARKER_PUBLIC_URL",
        default_value = "http://localhost:8082"
    )]
    pub marker_public_url: String,
    /// Requests served at once; more wait (bounded by the OS backlog).
    #[arg(long, env = "EDGE_MAX_CONCURRENT_REQUESTS", default_value_t = 4096)]
    pub max_concurrent_requests: usize,
    /// LL-HLS requests that may wait at once for a part (blocking reload,
    /// preload hints); they hold no slot of
    /// `EDGE_MAX_CONCURRENT_REQUESTS`; more get 503.
    #[arg(long, env = "EDGE_MAX_BLOCKED_REQUESTS", default_value_t = 10_000)]
    pub max_blocked_requests: usize,
    /// Native TCP stream listen address (`docs/native-stream.md`).
    #[arg(long, env = "EDGE_NATIVE_ADDR", default_value = "0.0.0.0:9000")]
    pub native_addr: SocketAddr,
    /// Native stream connections at most; one more is told `busy`.
    #[arg(long, env = "EDGE_NATIVE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub native_max_connections: usize,
    /// The control plane's playback-token secret, to check the native
    /// stream's hello; without it every native session is refused.
    #[arg(long, env = "CONTROL_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// The kn-sock 0.3.0 compatible stream (off unless its three addresses
    /// are set).
    #[command(flatten)]
    pub knsock: KnSockConfig,
}

/// The kn-sock 0.3.0 compatible ports (`docs/knsock.md`): all three
/// addresses, or none (off).
#[derive(Debug, Clone, clap::Args)]
pub struct KnSockConfig {
    /// Video port (kn-sock: 8000): handshake and JPEG frames.
    #[arg(long = "knsock-video-addr", env = "EDGE_KNSOCK_VIDEO_ADDR")]
    pub video_addr: Option<SocketAddr>,
    /// Audio port (kn-sock: video + 1): `AUD0` PCM chunks.
    #[arg(long = "knsock-audio-addr", env = "EDGE_KNSOCK_AUDIO_ADDR")]
    pub audio_addr: Option<SocketAddr>,
    /// Control port (kn-sock: video + 10): `buffer_level` feedback lines.
    #[arg(long = "knsock-control-addr", env = "EDGE_KNSOCK_CONTROL_ADDR")]
    pub control_addr: Option<SocketAddr>,
    /// Connections open at once on the three ports together; more are
    /// refused with a reason.
    #[arg(
        long = "knsock-max-connections",
        env = "EDGE_KNSOCK_MAX_CONNECTIONS",
        default_value_t = 1000
    )]
    pub max_connections: usize,
    /// Where a played video's rendition is copied (default: the system
    /// temporary directory's `edge-knsock`).
    #[arg(long = "knsock-scratch-dir", env = "EDGE_KNSOCK_SCRATCH_DIR")]
    pub scratch_dir: Option<PathBuf>,
}

impl Default for KnSockConfig {
    /// Off.
    fn default() -> Self {
        KnSockConfig {
            video_addr: None,
            audio_addr: None,
            control_addr: None,
            max_connections: 1000,
            scratch_dir: None,
        }
    }
}

impl KnSockConfig {
    /// Whether the ports are configured.
    pub fn enabled(&self) -> bool {
        self.video_addr.is_some()
    }

    pub fn validate(&self) -> Result<(), String> {
        let set = [self.video_addr, self.audio_addr, self.control_addr]
            .iter()
            .filter(|a| a.is_some())
            .count();
        if set != 0 && set != 3 {
            return Err("EDGE_KNSOCK_VIDEO_ADDR, EDGE_KNSOCK_AUDIO_ADDR and EDGE_KNSOCK_CONTROL_ADDR: set all three or none".into());
        }
        if self.max_connections == 0 {
            return Err("EDGE_KNSOCK_MAX_CONNECTIONS must be > 0".into());
        }
        Ok(())
    }
}

impl EdgeConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.common.validate()?;
        stream_runtime::parse_origins("EDGE_CORS_ORIGINS", &self.cors_origins)?;
        if !self.control_url.starts_with("http://") && !self.control_url.starts_with("https://") {
            return Err(format!(
                "CONTROL_URL={:?}: expected http(s)://host:port",
                self.control_url
            ));
        }
        if self.max_concurrent_requests == 0 {
            return Err("EDGE_MAX_CONCURRENT_REQUESTS must be > 0".into());
        }
        if self.native_max_connections == 0 {
            return Err("EDGE_NATIVE_MAX_CONNECTIONS must be > 0".into());
        }
        if self.token_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err("CONTROL_TOKEN_SECRET must be at least 16 bytes".into());
        }
        self.knsock.validate()?;
        Ok(())
    }
}
