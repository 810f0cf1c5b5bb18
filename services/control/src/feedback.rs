//! Per-session ABR on the server: report validation, staleness, rate
//! limiting and decisions through `stream_abr`'s production algorithm.
//!
//! [`AbrSession`] is pure (time comes in as `now_ms`); the gRPC stream task
//! in `service.rs` owns one per Feedback stream.

use std::collections::VecDeque;

use stream_abr::algo::production::{Production, ProductionConfig};
use stream_abr::{AbrAlgorithm, DecisionContext, Ladder, Observation, Reason};
use stream_proto::control::v1 as pb;

/// Largest plausible buffer level, ms (10 minutes).
pub const MAX_BUFFER_MS: f64 = 600_000.0;
/// Largest plausible throughput, bit/s (10 Gbit/s).
pub const MAX_THROUGHPUT_BPS: f64 = 10e9;
/// Reports kept for the algorithm.
const HISTORY: usize = 64;

/// One rung of a video's ladder, ascending by bandwidth.
#[derive(Debug, Clone, PartialEq)]
pub struct Rung {
    pub name: String,
    /// Pixels.
    pub height: u32,
    /// Peak bitrate, bit/s.
    pub bandwidth_bps: u64,
}

/// Why a report was not used.
#[derive(Debug, Clone, PartialEq)]
pub enum Reject {
    /// Sequence not above the last accepted one.
    Stale,
    /// A value is NaN, infinite, negative or implausible.
    Invalid(String),
    /// Over the per-session report rate.
    RateLimited,
}

/// A token bucket: `rate` tokens/s up to `burst`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last_ms: i64,
}

impl RateLimit {
    pub fn new(rate_per_s: f64, burst: f64, now_ms: i64) -> Self {
        RateLimit {
            rate: rate_per_s,
            burst,
            tokens: burst,
            last_ms: now_ms,
        }
    }

    /// Take a token if one is available.
    pub fn allow(&mut self, now_ms: i64) -> bool {
        let elapsed = (now_ms - self.last_ms).max(0) as f64 / 1000.0;
        self.last_ms = now_ms;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A decision in domain terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub index: usize,
    pub reason: pb::DecisionReason,
    pub detail: &'static str,
}

/// ABR state of one session.
pub struct AbrSession {
    rungs: Vec<Rung>,
    ladder: Ladder,
    algo: Production,
    history: VecDeque<Observation>,
    /// Highest rung index the client may get.
    cap: usize,
    last: usize,
    last_seq: u64,
    started_ms: i64,
    reports: u64,
    total_chunks: usize,
    limit: RateLimit,
}

impl AbrSession {
    /// `rungs` ascending by bandwidth (non-empty); `max_height` 0 = no cap;
    /// `segment_ms` the segment duration; `duration_s` the video's.
    pub fn new(
        rungs: Vec<Rung>,
        max_height: u32,
        segment_ms: f64,
        duration_s: f64,
        last_seq: u64,
        now_ms: i64,
        max_reports_per_s: f64,
    ) -> Result<Self, String> {
        let bitrates: Vec<f64> = rungs.iter().map(|r| r.bandwidth_bps as f64).collect();
        let ladder = Ladder::new(bitrates, segment_ms).map_err(|e| e.to_string())?;
        let cap = capability_cap(&rungs, max_height);
        Ok(AbrSession {
            rungs,
            ladder,
            algo: Production::with_config(ProductionConfig::default()),
            history: VecDeque::with_capacity(HISTORY),
            cap,
            last: 0,
            last_seq,
            started_ms: now_ms,
            reports: 0,
            total_chunks: ((duration_s * 1000.0 / segment_ms).ceil() as usize).max(1),
            limit: RateLimit::new(max_reports_per_s, max_reports_per_s * 2.0, now_ms),
        })
    }

    pub fn rungs(&self) -> &[Rung] {
        &self.rungs
    }

    /// The first rendition: the highest within the cap whose bandwidth fits
    /// 80 % of the initial throughput estimate, else the lowest.
    pub fn startup(&mut self, initial_throughput_bps: f64) -> Choice {
        let index = startup_index(&self.rungs, self.cap, initial_throughput_bps);
        self.last = index;
        Choice {
            index,
            reason: pb::DecisionReason::Startup,
            detail: "initial throughput estimate",
        }
    }

    /// Use one report; returns the decision for the next segment.
    pub fn on_report(&mut self, r: &pb::BufferReport, now_ms: i64) -> Result<Choice, Reject> {
        if !self.limit.allow(now_ms) {
            return Err(Reject::RateLimited);
        }
        if r.sequence <= self.last_seq {
            return Err(Reject::Stale);
        }
        validate(r).map_err(Reject::Invalid)?;
        self.last_seq = r.sequence;
        self.reports += 1;
        let rendition = self
            .rungs
            .iter()
            .position(|x| x.name == r.current_rendition)
            .unwrap_or(self.last);
        let download_ms = if r.last_download_ms > 0.0 {
            r.last_download_ms
        } else if r.last_segment_bytes > 0 {
            r.last_segment_bytes as f64 * 8.0 / r.throughput_bps * 1000.0
        } else {
            self.ladder.chunk_ms() * self.ladder.bitrates_bps()[rendition] / r.throughput_bps
        };
        let chunk_bytes = if r.last_segment_bytes > 0 {
            r.last_segment_bytes
        } else {
            (r.throughput_bps * download_ms / 8000.0) as u64
        };
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        // Server receive time is the one clock the algorithm sees.
        let t = (now_ms - self.started_ms) as f64;
        self.history.push_back(Observation {
            seq: r.sequence,
            sent_at_ms: t,
            buffer_ms: r.buffer_level_ms,
            throughput_bps: r.throughput_bps,
            download_ms,
            rebuffer_ms: r.rebuffer_ms,
            rebuffer_events: r.rebuffer_events,
            rendition,
            chunk_bytes,
        });
        let history: Vec<Observation> = self.history.iter().cloned().collect();
        let ctx = DecisionContext {
            ladder: &self.ladder,
            history: &history,
            now_ms: t,
            buffer_estimate_ms: Some(r.buffer_level_ms),
            last_rendition: self.last,
            next_chunk: (self.reports as usize).min(self.total_chunks.saturating_sub(1)),
            total_chunks: self.total_chunks,
            max_rendition: self.cap,
        };
        let d = self.algo.decide(&ctx);
        let index = d.rendition.min(self.cap);
        self.last = index;
        let (reason, detail) = map_reason(d.reason);
        Ok(Choice {
            index,
            reason,
            detail,
        })
    }

    /// No usable feedback for too long: the lowest rung.
    pub fn fallback(&mut self) -> Choice {
        self.last = 0;
        Choice {
            index: 0,
            reason: pb::DecisionReason::NoFeedback,
            detail: "no usable feedback; lowest rendition until reports resume",
        }
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

/// Highest rung index whose height fits `max_height` (0 = no cap); 0 when
/// none fits.
pub fn capability_cap(rungs: &[Rung], max_height: u32) -> usize {
    if max_height == 0 {
        return rungs.len().saturating_sub(1);
    }
    rungs
        .iter()
        .rposition(|r| r.height <= max_height)
        .unwrap_or(0)
}

/// Startup rung (see [`AbrSession::startup`]).
pub fn startup_index(rungs: &[Rung], cap: usize, initial_throughput_bps: f64) -> usize {
    if !(initial_throughput_bps.is_finite() && initial_throughput_bps > 0.0) {
        return 0;
    }
    rungs
        .iter()
        .enumerate()
        .take(cap + 1)
        .filter(|(_, r)| r.bandwidth_bps as f64 <= 0.8 * initial_throughput_bps)
        .map(|(i, _)| i)
        .next_back()
        .unwrap_or(0)
}

/// Check a report's numbers.
pub fn validate(r: &pb::BufferReport) -> Result<(), String> {
    let finite_in = |name: &str, v: f64, lo: f64, hi: f64| -> Result<(), String> {
        if !v.is_finite() {
            Err(format!("{name} is not finite"))
        } else if v < lo || v > hi {
            Err(format!("{name} {v} outside {lo}..={hi}"))
        } else {
            Ok(())
        }
    };
    finite_in("buffer_level_ms", r.buffer_level_ms, 0.0, MAX_BUFFER_MS)?;
    finite_in("throughput_bps", r.throughput_bps, 1.0, MAX_THROUGHPUT_BPS)?;
    finite_in("rebuffer_ms", r.rebuffer_ms, 0.0, 3_600_000.0)?;
    finite_in("last_download_ms", r.last_download_ms, 0.0, 3_600_000.0)?;
    Ok(())
}

fn map_reason(r: Reason) -> (pb::DecisionReason, &'static str) {
    match r {
        Reason::MpcPlan => (pb::DecisionReason::ThroughputPlan, "model-predictive plan"),
        Reason::ThroughputRule => (pb::DecisionReason::ThroughputPlan, "throughput rule"),
        Reason::BufferSafety => (
            pb::DecisionReason::BufferSafety,
            "buffer below safety level",
        ),
        Reason::CapabilityCap => (pb::DecisionReason::CapabilityCap, "client capability cap"),
        Reason::NoHistory => (pb::DecisionReason::Startup, "no usable history yet"),
        Reason::Reservoir | Reason::Cushion | Reason::UpperReservoir => {
            (pb::DecisionReason::Other, "buffer-based rule")
        }
        Reason::BolaScore => (pb::DecisionReason::Other, "buffer utility score"),
        Reason::EndOfTitle => (pb::DecisionReason::Other, "end of title"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rungs() -> Vec<Rung> {
        [
            ("240p", 240, 500_000),
            ("360p", 360, 1_000_000),
            ("480p", 480, 1_800_000),
            ("720p", 720, 4_000_000),
        ]
        .iter()
        .map(|(n, h, b)| Rung {
            name: n.to_string(),
            height: *h,
            bandwidth_bps: *b,
        })
        .collect()
    }

    fn report(seq: u64, buffer: f64, tput: f64) -> pb::BufferReport {
        pb::BufferReport {
            session_id: "S".into(),
            sequence: seq,
            buffer_level_ms: buffer,
            throughput_bps: tput,
            current_rendition: "360p".into(),
            ..Default::default()
        }
    }

    #[test]
    fn startup_respects_estimate_and_cap() {
        let r = rungs();
        assert_eq!(startup_index(&r, 3, 0.0), 0);
        assert_eq!(startup_index(&r, 3, 3_000_000.0), 2);
        assert_eq!(startup_index(&r, 1, 50e6), 1);
        assert_eq!(capability_cap(&r, 480), 2);
        assert_eq!(capability_cap(&r, 100), 0);
        assert_eq!(capability_cap(&r, 0), 3);
    }

    #[test]
    fn bad_and_stale_reports_are_rejected() {
        let mut s = AbrSession::new(rungs(), 0, 2000.0, 60.0, 0, 0, 100.0).unwrap();
        for bad in [
            report(1, f64::NAN, 1e6),
            report(1, -5.0, 1e6),
            report(1, 1000.0, f64::INFINITY),
            report(1, 1000.0, 0.0),
            report(1, 1e9, 1e6),
        ] {
            assert!(
                matches!(s.on_report(&bad, 10), Err(Reject::Invalid(_))),
                "{bad:?}"
            );
        }
        assert!(s.on_report(&report(1, 4000.0, 3e6), 20).is_ok());
        assert_eq!(s.on_report(&report(1, 4000.0, 3e6), 30), Err(Reject::Stale));
        assert_eq!(s.on_report(&report(0, 4000.0, 3e6), 30), Err(Reject::Stale));
    }

    #[test]
    fn floods_are_rate_limited() {
        let mut s = AbrSession::new(rungs(), 0, 2000.0, 60.0, 0, 0, 10.0).unwrap();
        let accepted = (1..=100)
            .filter(|i| s.on_report(&report(*i, 4000.0, 3e6), 0).is_ok())
            .count();
        assert_eq!(accepted, 20, "burst of 2 s worth at 10/s");
        // A second later, ten more tokens.
        assert!(s.on_report(&report(101, 4000.0, 3e6), 1000).is_ok());
    }

    #[test]
    fn never_above_the_capability_cap_and_climbs_on_good_throughput() {
        let mut capped = AbrSession::new(rungs(), 360, 2000.0, 120.0, 0, 0, 100.0).unwrap();
        let mut free = AbrSession::new(rungs(), 0, 2000.0, 120.0, 0, 0, 100.0).unwrap();
        let mut last_free = 0;
        for i in 1..=30u64 {
            let t = i as i64 * 2000;
            let c = capped.on_report(&report(i, 20_000.0, 20e6), t).unwrap();
            assert!(c.index <= 1, "{c:?}");
            last_free = free.on_report(&report(i, 20_000.0, 20e6), t).unwrap().index;
        }
        assert_eq!(
            last_free, 3,
            "20 Mbit/s and a full buffer reach the top rung"
        );
    }

    #[test]
    fn fallback_is_the_lowest_rung() {
        let mut s = AbrSession::new(rungs(), 0, 2000.0, 60.0, 0, 0, 10.0).unwrap();
        s.startup(10e6);
        assert_eq!(s.fallback().index, 0);
    }
}
