//! Client buffer/throughput reports.

use crate::error::ObservationError;

/// One client report, sent after a chunk (segment) finished downloading and
/// was appended to the playback buffer — the payload of the buffer-feedback
/// gRPC message, in domain units.
///
/// Reports may arrive late or not at all; algorithms must treat the history
/// as possibly stale and gappy (`seq` tells which chunks are missing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Sequence number: the index of the chunk this report is about.
    pub seq: u64,
    /// Client wall time when the report was sent, ms (after the chunk was
    /// appended and after any buffer-full pause; the next chunk is requested
    /// at this instant).
    pub sent_at_ms: f64,
    /// Buffer level when the report was sent, ms of media.
    pub buffer_ms: f64,
    /// Throughput measured over the download, bit/s (chunk bytes × 8 over the
    /// download time including the request round trip).
    pub throughput_bps: f64,
    /// Download time of the chunk including the request round trip, ms.
    pub download_ms: f64,
    /// Stall (rebuffer) time during this download, ms.
    pub rebuffer_ms: f64,
    /// Number of distinct rebuffer events during this download (0 or 1 in the
    /// simulator).
    pub rebuffer_events: u32,
    /// Rendition index of the downloaded chunk.
    pub rendition: usize,
    /// Size of the downloaded chunk, bytes.
    pub chunk_bytes: u64,
}

impl Observation {
    /// Checks every numeric field: throughput finite and > 0; buffer,
    /// download time and rebuffer finite and ≥ 0; timestamp finite.
    pub fn validate(&self) -> Result<(), ObservationError> {
        if !self.throughput_bps.is_finite() || self.throughput_bps <= 0.0 {
            return Err(ObservationError::Throughput(self.throughput_bps));
        }
        if !self.buffer_ms.is_finite() || self.buffer_ms < 0.0 {
            return Err(ObservationError::Buffer(self.buffer_ms));
        }
        if !self.download_ms.is_finite() || self.download_ms < 0.0 {
            return Err(ObservationError::DownloadTime(self.download_ms));
        }
        if !self.rebuffer_ms.is_finite() || self.rebuffer_ms < 0.0 {
            return Err(ObservationError::Rebuffer(self.rebuffer_ms));
        }
        if !self.sent_at_ms.is_finite() {
            return Err(ObservationError::Timestamp(self.sent_at_ms));
        }
        Ok(())
    }

    /// True if [`Observation::validate`] passes. Algorithms skip reports that
    /// are not usable rather than failing the decision.
    pub fn is_usable(&self) -> bool {
        self.validate().is_ok()
    }
}
