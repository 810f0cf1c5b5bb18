//! Deterministic trace-driven chunk-level simulator.
//!
//! A port of Pensieve's `test/fixed_env.py` (Mao et al., SIGCOMM 2017;
//! github.com/hongzimao/pensieve, commit a49b2ac) plus the reward of its test
//! scripts (`test/bb.py`, `test/mpc.py`):
//!
//! - the link delivers `throughput × duration × 0.95` bytes per trace sample
//!   (payload factor [`SimConfig::payload_factor`]); each chunk also pays one
//!   80 ms round trip ([`SimConfig::rtt_ms`]);
//! - the trace pointer starts at sample 1 with the link clock at sample 0's
//!   time, and wraps to sample 1 with the link clock at 0 when the trace ends;
//! - after each chunk: stall = max(download − buffer, 0); buffer =
//!   max(buffer − download, 0) + chunk duration; above 60 s the client pauses
//!   in 500 ms steps until the buffer is back under the cap, the link clock
//!   advancing meanwhile;
//! - 48 chunks per session, chunk 0 at rendition 1 (no decision);
//! - QoE_lin of chunk k = R_k/1000 − 4.3·stall_k(s) − |R_k − R_{k−1}|/1000
//!   with R in kbps; a session scores chunks 1..=47 (chunk 0 is excluded), and
//!   all session statistics (bitrate, stall, switches) use the same chunks.
//!
//! Report impairment (not in Pensieve): the report about chunk k is sent when
//! the client requests chunk k+1; with [`SimConfig::report_delay_ms`] = d it
//! becomes visible to the algorithm d ms later (visible for the decision at
//! time t iff `sent_at + d ≤ t`), and with [`SimConfig::report_loss`] = p it
//! is dropped with probability p, drawn from an RNG seeded by
//! ([`SimConfig::seed`], session index) — identical for every algorithm.
//!
//! Traces come in as data ([`Trace`]); reading files is the caller's job.

pub mod synthetic;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::algo::{AbrAlgorithm, DecisionContext};
use crate::decision::Reason;
use crate::error::AbrError;
use crate::ladder::Ladder;
use crate::observation::Observation;

/// A throughput trace: sample times in seconds (non-decreasing, from ≥ 0)
/// and the throughput in Mbit/s that holds until each sample's time (Pensieve
/// "cooked" trace format: `time_s throughput_mbps` per line).
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    name: String,
    times_s: Vec<f64>,
    mbps: Vec<f64>,
}

impl Trace {
    /// Validates and builds a trace.
    ///
    /// Errors ([`AbrError::BadTrace`]): fewer than 2 samples, length
    /// mismatch, non-finite or negative values, decreasing times, zero total
    /// duration, or zero total throughput (nothing could ever be delivered).
    pub fn new(
        name: impl Into<String>,
        times_s: Vec<f64>,
        mbps: Vec<f64>,
    ) -> Result<Self, AbrError> {
        let name = name.into();
        let bad = |reason: String| AbrError::BadTrace {
            name: name.clone(),
            reason,
        };
        if times_s.len() != mbps.len() {
            return Err(bad(format!(
                "{} times but {} throughputs",
                times_s.len(),
                mbps.len()
            )));
        }
        if times_s.len() < 2 {
            return Err(bad(format!(
                "needs at least 2 samples, got {}",
                times_s.len()
            )));
        }
        for (i, (&t, &b)) in times_s.iter().zip(&mbps).enumerate() {
            if !t.is_finite() || t < 0.0 || !b.is_finite() || b < 0.0 {
                return Err(bad(format!(
                    "sample {i}: time {t} s, throughput {b} Mbit/s must be finite and >= 0"
                )));
            }
            if i > 0 && t < times_s[i - 1] {
                return Err(bad(format!(
                    "sample {i}: time goes backwards ({t} < {})",
                    times_s[i - 1]
                )));
            }
        }
        if times_s[times_s.len() - 1] <= 0.0 {
            return Err(bad("total duration is zero".into()));
        }
        // Bytes one full loop delivers (after wrap-around the clock restarts at 0).
        let loop_mbit: f64 = (1..times_s.len())
            .map(|i| mbps[i] * (times_s[i] - if i == 1 { 0.0 } else { times_s[i - 1] }))
            .sum();
        if loop_mbit <= 0.0 {
            return Err(bad("total throughput is zero".into()));
        }
        Ok(Self {
            name,
            times_s,
            mbps,
        })
    }

    /// Parses the cooked text format (`time_s <whitespace> mbps` per line;
    /// blank lines ignored). Pure: the caller reads the file.
    pub fn parse(name: impl Into<String>, text: &str) -> Result<Self, AbrError> {
        let name = name.into();
        let mut times = Vec::new();
        let mut mbps = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let mut it = line.split_whitespace();
            let (Some(t), Some(b)) = (it.next(), it.next()) else {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(AbrError::BadTrace {
                    name,
                    reason: format!("line {}: expected `time_s mbps`", n + 1),
                });
            };
            let parse = |s: &str| s.parse::<f64>();
            match (parse(t), parse(b)) {
                (Ok(t), Ok(b)) => {
                    times.push(t);
                    mbps.push(b);
                }
                _ => {
                    return Err(AbrError::BadTrace {
                        name,
                        reason: format!("line {}: not numbers: {line:?}", n + 1),
                    })
                }
            }
        }
        Self::new(name, times, mbps)
    }

    /// Trace name (file name for Norway traces).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sample times, s.
    pub fn times_s(&self) -> &[f64] {
        &self.times_s
    }

    /// Throughput samples, Mbit/s.
    pub fn mbps(&self) -> &[f64] {
        &self.mbps
    }

    /// Time-weighted mean throughput over one loop, Mbit/s.
    pub fn mean_mbps(&self) -> f64 {
        let t = &self.times_s;
        let total: f64 = (1..t.len()).map(|i| self.mbps[i] * (t[i] - t[i - 1])).sum();
        total / (t[t.len() - 1] - t[0]).max(f64::MIN_POSITIVE)
    }
}

/// Simulator parameters. [`SimConfig::default`] is Pensieve's test setup
/// without impairment.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Round trip paid once per chunk, ms (`LINK_RTT` = 80).
    pub rtt_ms: f64,
    /// Share of link throughput carrying payload (`PACKET_PAYLOAD_PORTION` = 0.95).
    pub payload_factor: f64,
    /// Buffer cap, ms (`BUFFER_THRESH` = 60 000).
    pub buffer_cap_ms: f64,
    /// Pause granularity when the buffer is full, ms (`DRAIN_BUFFER_SLEEP_TIME` = 500).
    pub sleep_step_ms: f64,
    /// Chunks per session (`TOTAL_VIDEO_CHUNCK` = 48).
    pub total_chunks: usize,
    /// Rendition of chunk 0 (`DEFAULT_QUALITY` = 1).
    pub first_rendition: usize,
    /// QoE_lin rebuffer penalty per stall second (4.3).
    pub rebuffer_penalty: f64,
    /// QoE_lin smoothness penalty per Mbit/s of switch (1.0).
    pub smooth_penalty: f64,
    /// Report delay, ms (0 = Pensieve).
    pub report_delay_ms: f64,
    /// Report loss probability in [0, 1] (0 = Pensieve).
    pub report_loss: f64,
    /// Seed of the report-loss RNG.
    pub seed: u64,
    /// Client capability cap (highest rendition allowed); `None` = ladder top.
    pub max_rendition: Option<usize>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            rtt_ms: 80.0,
            payload_factor: 0.95,
            buffer_cap_ms: 60_000.0,
            sleep_step_ms: 500.0,
            total_chunks: 48,
            first_rendition: 1,
            rebuffer_penalty: 4.3,
            smooth_penalty: 1.0,
            report_delay_ms: 0.0,
            report_loss: 0.0,
            seed: 0,
            max_rendition: None,
        }
    }
}

impl SimConfig {
    fn validate(&self) -> Result<(), AbrError> {
        let nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if !nonneg(self.rtt_ms) || !nonneg(self.report_delay_ms) || !nonneg(self.buffer_cap_ms) {
            return Err(AbrError::BadConfig(
                "rtt, report delay and buffer cap must be finite and >= 0".into(),
            ));
        }
        if !(self.payload_factor > 0.0 && self.payload_factor <= 1.0) {
            return Err(AbrError::BadConfig(format!(
                "payload factor {} not in (0, 1]",
                self.payload_factor
            )));
        }
        if !(self.sleep_step_ms.is_finite() && self.sleep_step_ms > 0.0) {
            return Err(AbrError::BadConfig("sleep step must be > 0".into()));
        }
        if !(0.0..=1.0).contains(&self.report_loss) {
            return Err(AbrError::BadConfig(format!(
                "report loss {} not in [0, 1]",
                self.report_loss
            )));
        }
        if self.total_chunks < 2 {
            return Err(AbrError::BadConfig(
                "need at least 2 chunks per session".into(),
            ));
        }
        Ok(())
    }
}

/// What happened to one chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRecord {
    /// Chunk index.
    pub index: usize,
    /// Rendition downloaded.
    pub rendition: usize,
    /// Its bitrate, kbps.
    pub bitrate_kbps: f64,
    /// Why the algorithm chose it (`None` for chunk 0).
    pub reason: Option<Reason>,
    /// Download time including the round trip, ms.
    pub download_ms: f64,
    /// Stall caused by this download, ms.
    pub rebuffer_ms: f64,
    /// Buffer after the chunk was appended and any pause, ms.
    pub buffer_ms: f64,
    /// Buffer-full pause after the chunk, ms.
    pub sleep_ms: f64,
    /// QoE_lin of this chunk.
    pub qoe: f64,
}

/// One session (one trace played once through the title).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionResult {
    /// Trace name.
    pub trace: String,
    /// Every chunk, 0..total_chunks.
    pub chunks: Vec<ChunkRecord>,
    /// Σ QoE_lin over chunks 1.. (chunk 0 excluded).
    pub qoe: f64,
    /// Mean bitrate over chunks 1.., kbps.
    pub mean_bitrate_kbps: f64,
    /// Total stall over chunks 1.., s.
    pub rebuffer_s: f64,
    /// Rendition switches over chunks 1.. (each compared with its predecessor).
    pub switches: usize,
}

/// Means over sessions (traces in the given order).
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Per-session results.
    pub sessions: Vec<SessionResult>,
    /// Mean session QoE_lin.
    pub mean_qoe: f64,
    /// Mean of the sessions' mean bitrates, kbps.
    pub mean_bitrate_kbps: f64,
    /// Mean stall per session, s.
    pub rebuffer_s: f64,
    /// Mean switches per session.
    pub switches: f64,
}

/// The emulated link: `fixed_env.py`'s trace pointer and clock.
struct Link<'a> {
    trace: &'a Trace,
    ptr: usize,
    last_time: f64,
}

/// Upper bound on trace samples walked for one chunk before giving up.
const MAX_STEPS_PER_CHUNK: usize = 50_000_000;

impl<'a> Link<'a> {
    fn new(trace: &'a Trace) -> Self {
        Self {
            trace,
            ptr: 1,
            last_time: trace.times_s[0],
        }
    }

    fn advance(&mut self) {
        self.last_time = self.trace.times_s[self.ptr];
        self.ptr += 1;
        if self.ptr >= self.trace.mbps.len() {
            self.ptr = 1;
            self.last_time = 0.0;
        }
    }

    /// Seconds to deliver `bytes`, or `None` if the guard trips.
    fn download(&mut self, bytes: f64, payload_factor: f64) -> Option<f64> {
        let mut delay = 0.0;
        let mut sent = 0.0;
        for _ in 0..MAX_STEPS_PER_CHUNK {
            let throughput = self.trace.mbps[self.ptr] * 1_000_000.0 / 8.0;
            let duration = self.trace.times_s[self.ptr] - self.last_time;
            let payload = throughput * duration * payload_factor;
            if sent + payload > bytes {
                let fractional = (bytes - sent) / throughput / payload_factor;
                delay += fractional;
                self.last_time += fractional;
                return Some(delay);
            }
            sent += payload;
            delay += duration;
            self.advance();
        }
        None
    }

    /// Lets `sleep_ms` of link time pass.
    fn sleep(&mut self, mut sleep_ms: f64) -> Option<()> {
        for _ in 0..MAX_STEPS_PER_CHUNK {
            let duration = self.trace.times_s[self.ptr] - self.last_time;
            if duration > sleep_ms / 1000.0 {
                self.last_time += sleep_ms / 1000.0;
                return Some(());
            }
            sleep_ms -= duration * 1000.0;
            self.advance();
        }
        None
    }
}

/// SplitMix64 finaliser: decorrelates (seed, session) pairs.
fn mix(seed: u64, session: u64) -> u64 {
    let mut z = seed ^ session.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Plays one session of `trace` with `algo` (reset first).
/// `session` selects the report-loss stream.
pub fn simulate_session(
    trace: &Trace,
    ladder: &Ladder,
    cfg: &SimConfig,
    algo: &mut dyn AbrAlgorithm,
    session: u64,
) -> Result<SessionResult, AbrError> {
    cfg.validate()?;
    algo.reset();
    let cap = cfg.max_rendition.unwrap_or(usize::MAX).min(ladder.top());
    let mut rng = StdRng::seed_from_u64(mix(cfg.seed, session));
    let mut link = Link::new(trace);
    let mut buffer_ms: f64 = 0.0;
    let mut now_ms = 0.0;
    let mut sent: Vec<Observation> = Vec::with_capacity(cfg.total_chunks);
    let mut visible: Vec<Observation> = Vec::with_capacity(cfg.total_chunks);
    let mut next_visible = 0;
    let mut chunks = Vec::with_capacity(cfg.total_chunks);
    let mut rendition = cfg.first_rendition.min(cap);
    let mut reason = None;
    let mut last = rendition;

    for k in 0..cfg.total_chunks {
        if k > 0 {
            while next_visible < sent.len()
                && sent[next_visible].sent_at_ms + cfg.report_delay_ms <= now_ms
            {
                visible.push(sent[next_visible]);
                next_visible += 1;
            }
            let ctx = DecisionContext {
                ladder,
                history: &visible,
                now_ms,
                buffer_estimate_ms: visible.last().map(|o| o.buffer_ms),
                last_rendition: last,
                next_chunk: k,
                total_chunks: cfg.total_chunks,
                max_rendition: cap,
            };
            let d = algo.decide(&ctx);
            rendition = d.rendition.min(cap);
            reason = Some(d.reason);
        }
        let bytes = ladder.chunk_bytes(rendition, k);
        let stalled = || AbrError::Stalled {
            name: trace.name.clone(),
            chunk: k,
        };
        let delay_ms = link
            .download(bytes, cfg.payload_factor)
            .ok_or_else(stalled)?
            * 1000.0
            + cfg.rtt_ms;
        let rebuffer_ms = (delay_ms - buffer_ms).max(0.0);
        buffer_ms = (buffer_ms - delay_ms).max(0.0) + ladder.chunk_ms();
        let mut sleep_ms = 0.0;
        if buffer_ms > cfg.buffer_cap_ms {
            sleep_ms =
                ((buffer_ms - cfg.buffer_cap_ms) / cfg.sleep_step_ms).ceil() * cfg.sleep_step_ms;
            buffer_ms -= sleep_ms;
            link.sleep(sleep_ms).ok_or_else(stalled)?;
        }
        now_ms += delay_ms + sleep_ms;

        let r = ladder.kbps(rendition);
        let qoe = r / 1000.0
            - cfg.rebuffer_penalty * rebuffer_ms / 1000.0
            - cfg.smooth_penalty * (r - ladder.kbps(last)).abs() / 1000.0;
        chunks.push(ChunkRecord {
            index: k,
            rendition,
            bitrate_kbps: r,
            reason,
            download_ms: delay_ms,
            rebuffer_ms,
            buffer_ms,
            sleep_ms,
            qoe,
        });
        last = rendition;

        let lost = cfg.report_loss > 0.0 && rng.random::<f64>() < cfg.report_loss;
        if !lost {
            sent.push(Observation {
                seq: k as u64,
                sent_at_ms: now_ms,
                buffer_ms,
                throughput_bps: bytes * 8.0 / (delay_ms / 1000.0),
                download_ms: delay_ms,
                rebuffer_ms,
                rebuffer_events: u32::from(rebuffer_ms > 0.0),
                rendition,
                chunk_bytes: bytes as u64,
            });
        }
    }

    let scored = &chunks[1..];
    let n = scored.len() as f64;
    Ok(SessionResult {
        trace: trace.name.clone(),
        qoe: scored.iter().map(|c| c.qoe).sum(),
        mean_bitrate_kbps: scored.iter().map(|c| c.bitrate_kbps).sum::<f64>() / n,
        rebuffer_s: scored.iter().map(|c| c.rebuffer_ms).sum::<f64>() / 1000.0,
        switches: chunks
            .windows(2)
            .filter(|w| w[0].rendition != w[1].rendition)
            .count(),
        chunks,
    })
}

/// Plays every trace once (session index = position in `traces`) and
/// averages. Errors: [`AbrError::BadConfig`] for an empty trace list, or the
/// first session error.
pub fn run(
    traces: &[Trace],
    ladder: &Ladder,
    cfg: &SimConfig,
    algo: &mut dyn AbrAlgorithm,
) -> Result<RunSummary, AbrError> {
    if traces.is_empty() {
        return Err(AbrError::BadConfig("no traces".into()));
    }
    let sessions = traces
        .iter()
        .enumerate()
        .map(|(i, t)| simulate_session(t, ladder, cfg, algo, i as u64))
        .collect::<Result<Vec<_>, _>>()?;
    let n = sessions.len() as f64;
    let mean = |f: &dyn Fn(&SessionResult) -> f64| sessions.iter().map(f).sum::<f64>() / n;
    Ok(RunSummary {
        mean_qoe: mean(&|s| s.qoe),
        mean_bitrate_kbps: mean(&|s| s.mean_bitrate_kbps),
        rebuffer_s: mean(&|s| s.rebuffer_s),
        switches: mean(&|s| s.switches as f64),
        sessions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Decision;

    /// Always picks `rung`; records how many reports each decision saw.
    struct Spy {
        rung: usize,
        seen: Vec<usize>,
    }

    impl AbrAlgorithm for Spy {
        fn name(&self) -> &'static str {
            "spy"
        }
        fn decide(&mut self, ctx: &DecisionContext<'_>) -> Decision {
            self.seen.push(ctx.history.len());
            Decision {
                rendition: self.rung,
                reason: Reason::ThroughputRule,
            }
        }
        fn reset(&mut self) {
            self.seen.clear();
        }
    }

    fn constant(mbps: f64) -> Trace {
        Trace::new("c", vec![0.0, 1000.0], vec![mbps, mbps]).unwrap()
    }

    fn ladder() -> Ladder {
        // 1 Mbit/s and 2 Mbit/s, 4 s chunks: 500 000 and 1 000 000 bytes nominal.
        Ladder::new(vec![1e6, 2e6], 4000.0).unwrap()
    }

    #[test]
    fn hand_computed_session() {
        // 8 Mbit/s link, 0.95 payload: 950 000 B/s. Chunk 0 at rung 1 (1 MB).
        let cfg = SimConfig {
            total_chunks: 3,
            ..SimConfig::default()
        };
        let mut spy = Spy {
            rung: 0,
            seen: vec![],
        };
        let s = simulate_session(&constant(8.0), &ladder(), &cfg, &mut spy, 0).unwrap();
        let d0 = 1_000_000.0 / 950_000.0 * 1000.0 + 80.0;
        assert!((s.chunks[0].download_ms - d0).abs() < 1e-6);
        assert!(
            (s.chunks[0].rebuffer_ms - d0).abs() < 1e-6,
            "startup stalls for the whole download"
        );
        assert!((s.chunks[0].buffer_ms - 4000.0).abs() < 1e-6);
        let d1 = 500_000.0 / 950_000.0 * 1000.0 + 80.0;
        assert_eq!(s.chunks[1].rebuffer_ms, 0.0);
        assert!((s.chunks[1].buffer_ms - (8000.0 - d1)).abs() < 1e-6);
        // Chunk 1: 1000 kbps, switch down from 2000: 1.0 − 1.0 = 0; chunk 2: 1.0.
        assert!((s.chunks[1].qoe - 0.0).abs() < 1e-9 && (s.chunks[2].qoe - 1.0).abs() < 1e-9);
        assert!((s.qoe - 1.0).abs() < 1e-9, "chunk 0 excluded");
        assert_eq!(s.switches, 1);
        assert_eq!(
            spy.seen,
            vec![1, 2],
            "no delay: every report visible at the next decision"
        );
    }

    #[test]
    fn buffer_cap_pauses_in_steps() {
        let cfg = SimConfig {
            total_chunks: 30,
            ..SimConfig::default()
        };
        let mut spy = Spy {
            rung: 0,
            seen: vec![],
        };
        let s = simulate_session(&constant(100.0), &ladder(), &cfg, &mut spy, 0).unwrap();
        assert!(s.chunks.iter().all(|c| c.buffer_ms <= 60_000.0 + 1e-9));
        let paused: Vec<_> = s.chunks.iter().filter(|c| c.sleep_ms > 0.0).collect();
        assert!(!paused.is_empty());
        assert!(paused.iter().all(|c| (c.sleep_ms / 500.0).fract() == 0.0));
    }

    #[test]
    fn report_delay_and_loss_hide_reports() {
        let mut spy = Spy {
            rung: 0,
            seen: vec![],
        };
        let delayed = SimConfig {
            total_chunks: 6,
            report_delay_ms: 1e9,
            ..SimConfig::default()
        };
        simulate_session(&constant(8.0), &ladder(), &delayed, &mut spy, 0).unwrap();
        assert_eq!(spy.seen, vec![0; 5]);
        // Rung-0 downloads take ~0.61 s: a 1 s delay hides the two latest reports.
        let one_s = SimConfig {
            total_chunks: 6,
            report_delay_ms: 1000.0,
            ..SimConfig::default()
        };
        simulate_session(&constant(8.0), &ladder(), &one_s, &mut spy, 0).unwrap();
        assert_eq!(spy.seen, vec![0, 0, 1, 2, 3]);
        let all_lost = SimConfig {
            total_chunks: 6,
            report_loss: 1.0,
            ..SimConfig::default()
        };
        simulate_session(&constant(8.0), &ladder(), &all_lost, &mut spy, 0).unwrap();
        assert_eq!(spy.seen, vec![0; 5]);
        let lossy = |seed| {
            let cfg = SimConfig {
                total_chunks: 40,
                report_loss: 0.5,
                seed,
                ..SimConfig::default()
            };
            let mut spy = Spy {
                rung: 0,
                seen: vec![],
            };
            simulate_session(&constant(8.0), &ladder(), &cfg, &mut spy, 3).unwrap();
            spy.seen
        };
        assert_eq!(lossy(1), lossy(1), "seeded");
        assert_ne!(lossy(1), lossy(2));
        let last = *lossy(1).last().unwrap();
        assert!(
            last > 5 && last < 35,
            "about half the reports survive, got {last}"
        );
    }

    #[test]
    fn bad_traces_are_rejected() {
        let zero = Trace::new("z", vec![0.0, 1.0, 2.0], vec![0.0, 0.0, 0.0]);
        assert!(
            matches!(zero, Err(AbrError::BadTrace { ref reason, .. }) if reason.contains("zero"))
        );
        assert!(Trace::new("n", vec![0.0, 1.0], vec![f64::NAN, 1.0]).is_err());
        assert!(Trace::new("b", vec![0.0, 2.0, 1.0], vec![1.0, 1.0, 1.0]).is_err());
        assert!(Trace::new("s", vec![0.0], vec![1.0]).is_err());
        assert!(Trace::parse("p", "").is_err());
        assert!(Trace::parse("p", "0 1\nx y\n").is_err());
        let t = Trace::parse("p", "0.0\t1.5\n\n0.5 2.5\n").unwrap();
        assert_eq!(t.mbps(), &[1.5, 2.5]);
    }

    #[test]
    fn bad_config_is_rejected() {
        let mut spy = Spy {
            rung: 0,
            seen: vec![],
        };
        for cfg in [
            SimConfig {
                report_loss: 1.5,
                ..SimConfig::default()
            },
            SimConfig {
                report_delay_ms: f64::NAN,
                ..SimConfig::default()
            },
            SimConfig {
                payload_factor: 0.0,
                ..SimConfig::default()
            },
        ] {
            assert!(matches!(
                simulate_session(&constant(1.0), &ladder(), &cfg, &mut spy, 0),
                Err(AbrError::BadConfig(_))
            ));
        }
        assert!(run(&[], &ladder(), &SimConfig::default(), &mut spy).is_err());
    }
}
