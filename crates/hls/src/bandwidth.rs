//! Segment bitrates of a media playlist.

/// Peak and average bitrate, bit/s, over segments given as
/// `(duration seconds, size bytes)`.
///
/// RFC 8216 §4.3.4.2: BANDWIDTH is the largest segment bitrate (size over
/// duration; segments shorter than half the target duration are measured
/// over the target duration, so a tiny final segment cannot inflate it) and
/// AVERAGE-BANDWIDTH the total bits over the total duration.
/// Returns `(0, 0)` for no segments.
pub fn measure(segments: &[(f64, u64)], target_duration_s: f64) -> (u64, u64) {
    let mut peak = 0f64;
    let (mut bits, mut seconds) = (0f64, 0f64);
    for &(duration, size) in segments {
        if !(duration.is_finite() && duration > 0.0) {
            continue;
        }
        let span = duration.max(target_duration_s / 2.0);
        peak = peak.max(size as f64 * 8.0 / span);
        bits += size as f64 * 8.0;
        seconds += duration;
    }
    let average = if seconds > 0.0 { bits / seconds } else { 0.0 };
    (peak.ceil() as u64, average.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::measure;

    #[test]
    fn peak_and_average() {
        let (peak, avg) = measure(&[(2.0, 250_000), (2.0, 500_000), (1.0, 100_000)], 2.0);
        assert_eq!(peak, 2_000_000);
        assert_eq!(avg, (850_000.0 * 8.0 / 5.0) as u64);
    }

    #[test]
    fn short_last_segment_does_not_inflate_peak() {
        let (peak, _) = measure(&[(2.0, 250_000), (0.04, 20_000)], 2.0);
        assert_eq!(peak, 1_000_000);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(measure(&[], 2.0), (0, 0));
    }
}
