//! Typed errors of the ABR crate.

use thiserror::Error;

/// Errors building ABR inputs (ladders, traces, simulator configuration).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AbrError {
    /// A ladder needs at least one rendition.
    #[error("ladder has no renditions")]
    EmptyLadder,
    /// Rendition bitrates must be finite, positive and strictly ascending.
    #[error("ladder bitrates must be positive and strictly ascending (rung {index}: {bitrate_bps} bit/s)")]
    BadBitrate { index: usize, bitrate_bps: f64 },
    /// Chunk-size tables must have one row per rendition, all of equal length.
    #[error("chunk sizes: expected {expected} rows of equal length, got {got}")]
    ChunkSizeShape { expected: usize, got: String },
    /// Chunk duration must be finite and positive.
    #[error("chunk duration must be positive, got {0} ms")]
    BadChunkDuration(f64),
    /// A throughput trace is unusable.
    #[error("trace {name:?}: {reason}")]
    BadTrace { name: String, reason: String },
    /// Simulator configuration is out of range.
    #[error("simulator config: {0}")]
    BadConfig(String),
    /// The simulated download made no progress (guards against endless loops
    /// on traces with near-zero throughput).
    #[error("trace {name:?}: download of chunk {chunk} did not finish (throughput too low)")]
    Stalled { name: String, chunk: usize },
    /// Unknown algorithm name.
    #[error("unknown ABR algorithm {0:?} (expected one of: {known})", known = crate::algo::AlgoKind::NAMES.join(", "))]
    UnknownAlgorithm(String),
}

/// Why a client report was rejected by [`crate::Observation::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum ObservationError {
    /// Throughput must be finite and > 0 bit/s.
    #[error("throughput must be finite and positive, got {0} bit/s")]
    Throughput(f64),
    /// Buffer level must be finite and >= 0 ms.
    #[error("buffer level must be finite and non-negative, got {0} ms")]
    Buffer(f64),
    /// Download time must be finite and >= 0 ms.
    #[error("download time must be finite and non-negative, got {0} ms")]
    DownloadTime(f64),
    /// Rebuffer time must be finite and >= 0 ms.
    #[error("rebuffer time must be finite and non-negative, got {0} ms")]
    Rebuffer(f64),
    /// Report timestamp must be finite.
    #[error("report timestamp must be finite, got {0} ms")]
    Timestamp(f64),
}
