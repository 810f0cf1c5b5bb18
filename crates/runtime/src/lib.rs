//! Plumbing every service shares.
//!
//! * [`CommonConfig`] — NATS/Redis addresses, key/subject prefixes, media
//!   store, logging; flags with `env` fallbacks (clap).
//! * [`init_tracing`] — `tracing` subscriber (text or JSON, `RUST_LOG`).
//! * [`shutdown_signal`] — a [`CancellationToken`] cancelled on SIGTERM or
//!   SIGINT, for graceful draining.
//! * [`exit_config_error`] — the exit path for bad configuration (code 64,
//!   `EX_USAGE`), taken before any port is bound.

use clap::Args;
pub use tokio_util::sync::CancellationToken;

/// Settings shared by all services.
#[derive(Debug, Clone, Args)]
pub struct CommonConfig {
    /// NATS server URL.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Redis URL.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Prefix of NATS subjects and JetStream stream names (`[a-z0-9_-]+`).
    #[arg(long, env = "BUS_PREFIX", default_value = "stream")]
    pub bus_prefix: String,
    /// Prefix of Redis keys (`[a-z0-9_-]+`).
    #[arg(long, env = "REDIS_PREFIX", default_value = "stream")]
    pub redis_prefix: String,
    /// Media store: a directory, or an object_store URL (`file:///…`, `memory://`).
    #[arg(long, env = "MEDIA_STORE", default_value = "var/media")]
    pub media_store: String,
    /// Log format: `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl CommonConfig {
    /// Check values that clap cannot.
    ///
    /// Errors: a sentence naming the setting and what is wrong with it.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("BUS_PREFIX", &self.bus_prefix),
            ("REDIS_PREFIX", &self.redis_prefix),
        ] {
            if !valid_prefix(value) {
                return Err(format!(
                    "{name}={value:?}: use 1-32 characters of a-z, 0-9, '_' or '-'"
                ));
            }
        }
        if !self.nats_url.starts_with("nats://") && !self.nats_url.starts_with("tls://") {
            return Err(format!(
                "NATS_URL={:?}: expected nats://host:port",
                self.nats_url
            ));
        }
        if !self.redis_url.starts_with("redis://") && !self.redis_url.starts_with("rediss://") {
            return Err(format!(
                "REDIS_URL={:?}: expected redis://host:port",
                self.redis_url
            ));
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(format!(
                "LOG_FORMAT={:?}: expected text or json",
                self.log_format
            ));
        }
        Ok(())
    }
}

/// Parse a CORS allow-list (`https://host[:port]` origins; never `*`).
///
/// Errors: a sentence naming `var` and the first value that is not an
/// origin.
pub fn parse_origins(var: &str, origins: &[String]) -> Result<Vec<http::HeaderValue>, String> {
    origins
        .iter()
        .map(|o| {
            let ok = (o.starts_with("http://") || o.starts_with("https://")) && !o.ends_with('/');
            http::HeaderValue::from_str(o)
                .ok()
                .filter(|_| ok)
                .ok_or_else(|| format!("{var}: {o:?} is not an origin (scheme://host[:port])"))
        })
        .collect()
}

/// A prefix usable in NATS subjects, stream names and Redis keys.
pub fn valid_prefix(p: &str) -> bool {
    (1..=32).contains(&p.len())
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Install the global tracing subscriber. `RUST_LOG` filters (default
/// `info`); `format` is `text` or `json`. Safe to call twice (the second
/// call does nothing).
pub fn init_tracing(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// A token cancelled when the process receives SIGTERM or SIGINT.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received, draining");
        t.cancel();
    });
    token
}

/// Print a configuration error and exit with code 64 (`EX_USAGE`).
pub fn exit_config_error(service: &str, message: &str) -> ! {
    eprintln!("{service}: configuration error: {message}");
    std::process::exit(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let ok = vec![
            "http://localhost:8080".to_string(),
            "https://a.example".to_string(),
        ];
        assert_eq!(parse_origins("X", &ok).unwrap().len(), 2);
        assert!(parse_origins("X", &["*".to_string()]).is_err());
        assert!(parse_origins("X", &["http://a.example/".to_string()]).is_err());
        assert!(parse_origins("X", &["a.example".to_string()]).is_err());
    }

    #[test]
    fn prefixes() {
        assert!(valid_prefix("stream"));
        assert!(valid_prefix("t1a2b3-x_y"));
        assert!(!valid_prefix(""));
        assert!(!valid_prefix("a.b"));
        assert!(!valid_prefix("A"));
        assert!(!valid_prefix("a b"));
    }
}
