//! The bitrate ladder of one title.

use crate::error::AbrError;

/// Pensieve's test ladder: 300, 750, 1200, 1850, 2850, 4300 kbps
/// (Mao et al., "Neural Adaptive Video Streaming with Pensieve", SIGCOMM 2017,
/// §5.1; `test/*.py` `VIDEO_BIT_RATE`).
pub const PENSIEVE_BITRATES_KBPS: [u32; 6] = [300, 750, 1200, 1850, 2850, 4300];

/// Chunk (segment) duration of Pensieve's test video, ms (`fixed_env.py`
/// `VIDEO_CHUNCK_LEN`).
pub const PENSIEVE_CHUNK_MS: f64 = 4000.0;

/// A rendition ladder: bitrates in bit/s, strictly ascending (index 0 is the
/// lowest rung), a chunk duration in ms, and optionally the exact size in
/// bytes of every chunk of every rendition (`sizes[rendition][chunk]`).
///
/// Without sizes, a chunk of rendition `r` is assumed to weigh
/// `bitrate_bps[r] * chunk_ms / 8000` bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Ladder {
    bitrates_bps: Vec<f64>,
    chunk_ms: f64,
    sizes: Option<Vec<Vec<u64>>>,
}

impl Ladder {
    /// Builds a ladder from bitrates in bit/s.
    ///
    /// Errors: [`AbrError::EmptyLadder`], [`AbrError::BadBitrate`] (non-finite,
    /// non-positive or not strictly ascending), [`AbrError::BadChunkDuration`].
    pub fn new(bitrates_bps: Vec<f64>, chunk_ms: f64) -> Result<Self, AbrError> {
        if bitrates_bps.is_empty() {
            return Err(AbrError::EmptyLadder);
        }
        for (index, &b) in bitrates_bps.iter().enumerate() {
            let ascending = index == 0 || b > bitrates_bps[index - 1];
            if !b.is_finite() || b <= 0.0 || !ascending {
                return Err(AbrError::BadBitrate {
                    index,
                    bitrate_bps: b,
                });
            }
        }
        if !chunk_ms.is_finite() || chunk_ms <= 0.0 {
            return Err(AbrError::BadChunkDuration(chunk_ms));
        }
        Ok(Self {
            bitrates_bps,
            chunk_ms,
            sizes: None,
        })
    }

    /// Attaches per-chunk sizes in bytes, one row per rendition
    /// (`sizes[rendition][chunk]`), all rows of equal, non-zero length.
    pub fn with_chunk_sizes(mut self, sizes: Vec<Vec<u64>>) -> Result<Self, AbrError> {
        let n = sizes.first().map_or(0, Vec::len);
        if sizes.len() != self.bitrates_bps.len() || n == 0 || sizes.iter().any(|r| r.len() != n) {
            let got = sizes
                .iter()
                .map(|r| r.len().to_string())
                .collect::<Vec<_>>()
                .join(",");
            return Err(AbrError::ChunkSizeShape {
                expected: self.bitrates_bps.len(),
                got: format!("row lengths [{got}]"),
            });
        }
        self.sizes = Some(sizes);
        Ok(self)
    }

    /// Pensieve's six-rung test ladder ([`PENSIEVE_BITRATES_KBPS`], 4 s chunks),
    /// without chunk sizes.
    pub fn pensieve() -> Self {
        let b = PENSIEVE_BITRATES_KBPS
            .iter()
            .map(|&k| f64::from(k) * 1000.0)
            .collect();
        Self {
            bitrates_bps: b,
            chunk_ms: PENSIEVE_CHUNK_MS,
            sizes: None,
        }
    }

    /// Number of renditions (rungs).
    pub fn len(&self) -> usize {
        self.bitrates_bps.len()
    }

    /// Always false: a ladder has at least one rung.
    pub fn is_empty(&self) -> bool {
        self.bitrates_bps.is_empty()
    }

    /// Index of the top rung.
    pub fn top(&self) -> usize {
        self.bitrates_bps.len() - 1
    }

    /// Bitrates in bit/s, ascending.
    pub fn bitrates_bps(&self) -> &[f64] {
        &self.bitrates_bps
    }

    /// Bitrate of rung `r` in kbps. Panics if `r` is out of range.
    pub fn kbps(&self, r: usize) -> f64 {
        self.bitrates_bps[r] / 1000.0
    }

    /// Chunk duration, ms.
    pub fn chunk_ms(&self) -> f64 {
        self.chunk_ms
    }

    /// Number of chunks with known sizes, if sizes are attached.
    pub fn sized_chunks(&self) -> Option<usize> {
        self.sizes.as_ref().map(|s| s[0].len())
    }

    /// Exact size in bytes of chunk `chunk` of rendition `r`, if known.
    pub fn exact_chunk_bytes(&self, r: usize, chunk: usize) -> Option<u64> {
        self.sizes
            .as_ref()
            .and_then(|s| s.get(r))
            .and_then(|row| row.get(chunk))
            .copied()
    }

    /// Size in bytes of chunk `chunk` of rendition `r`: exact if known, else
    /// the nominal `bitrate × duration / 8`.
    pub fn chunk_bytes(&self, r: usize, chunk: usize) -> f64 {
        match self.exact_chunk_bytes(r, chunk) {
            Some(b) => b as f64,
            None => self.bitrates_bps[r] * self.chunk_ms / 8000.0,
        }
    }

    /// Highest rung whose bitrate is ≤ `throughput_bps`, or 0 if none is.
    pub fn highest_at_most(&self, throughput_bps: f64) -> usize {
        self.bitrates_bps
            .iter()
            .rposition(|&b| b <= throughput_bps)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_ladders() {
        assert_eq!(Ladder::new(vec![], 4000.0), Err(AbrError::EmptyLadder));
        assert!(matches!(
            Ladder::new(vec![1.0, 1.0], 4000.0),
            Err(AbrError::BadBitrate { index: 1, .. })
        ));
        assert!(matches!(
            Ladder::new(vec![f64::NAN], 4000.0),
            Err(AbrError::BadBitrate { index: 0, .. })
        ));
        assert!(matches!(
            Ladder::new(vec![1.0], 0.0),
            Err(AbrError::BadChunkDuration(_))
        ));
        let l = Ladder::new(vec![1.0, 2.0], 1.0).unwrap();
        assert!(l.clone().with_chunk_sizes(vec![vec![1]]).is_err());
        assert!(l.with_chunk_sizes(vec![vec![1, 2], vec![3]]).is_err());
    }

    #[test]
    fn highest_at_most_picks_the_right_rung() {
        let l = Ladder::pensieve();
        assert_eq!(l.highest_at_most(0.0), 0);
        assert_eq!(l.highest_at_most(1_199_999.0), 1);
        assert_eq!(l.highest_at_most(1_200_000.0), 2);
        assert_eq!(l.highest_at_most(1e12), 5);
    }
}
