//! RobustMPC baseline.
//!
//! Source: Yin, Jindal, Sekar, Sinopoli, "A Control-Theoretic Approach for
//! Dynamic Adaptive Video Streaming over HTTP", SIGCOMM 2015 (§4–5,
//! RobustMPC), with the semantics of Pensieve's `test/mpc.py`:
//!
//! - throughput prediction: harmonic mean of the last 5 measured
//!   throughputs, divided by `1 + max` of the last 5 relative prediction
//!   errors `|prediction − measured| / measured`;
//! - horizon 5 chunks (fewer at the end of the title), exhaustive search over
//!   every rung sequence, objective = Σ bitrate (Mbit/s) − 4.3 · predicted
//!   rebuffer (s) − Σ |Δ bitrate| (Mbit/s), ties resolved to the
//!   lexicographically last plan;
//! - buffer model: subtract the predicted download time, stall at zero, add
//!   one chunk duration.
//!
//! `mpc.py` keeps `past_errors` and `past_bandwidth_ests` at module level,
//! so they carry over from one trace (session) to the next: the first
//! predictions of a session are scored against the previous session's last
//! estimate. The reference figures (41.19 / 43.63 on Norway) depend on that,
//! so [`RobustMpc::new`] reproduces it ([`RobustMpc::carry_over`] = true);
//! [`AbrAlgorithm::reset`] then only forgets which reports were consumed.
//! [`RobustMpc::per_session`] gives the clean per-session variant.
//!
//! `mpc.py` as shipped looks up the size of future chunk `next + i + 1`
//! instead of `next + i` (its `index = last_index + position + 1`, where
//! `last_index` already is the next chunk): [`ChunkIndexing::AsShipped`]
//! reproduces that, [`ChunkIndexing::Fixed`] corrects it.

use super::{harmonic_mean, AbrAlgorithm, DecisionContext};
use crate::decision::{Decision, Reason};
use crate::ladder::Ladder;

/// Look-ahead horizon, chunks (`MPC_FUTURE_CHUNK_COUNT`).
pub const MPC_HORIZON: usize = 5;
/// Throughput samples in the harmonic mean.
pub const MPC_WINDOW: usize = 5;
/// Rebuffer penalty of QoE_lin, per second of stall (Pensieve `REBUF_PENALTY`).
pub const REBUF_PENALTY: f64 = 4.3;

/// Which future chunk sizes the planner uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkIndexing {
    /// Pensieve's `mpc.py`: sizes of chunks `next+1 ..= next+h` (off by one);
    /// past the known sizes a chunk weighs 0 bytes, as in `get_chunk_size`.
    AsShipped,
    /// Sizes of chunks `next ..= next+h−1`.
    Fixed,
}

/// RobustMPC with Pensieve's error bookkeeping (one instance per session).
#[derive(Debug, Clone)]
pub struct RobustMpc {
    indexing: ChunkIndexing,
    past_errors: Vec<f64>,
    past_estimates: Vec<f64>,
    /// Highest report `seq` already scored against a prediction.
    consumed: Option<u64>,
    /// Keep the error history across sessions, as `mpc.py` does.
    pub carry_over: bool,
}

impl RobustMpc {
    /// A fresh instance with `mpc.py`'s cross-session error memory.
    pub fn new(indexing: ChunkIndexing) -> Self {
        Self {
            indexing,
            past_errors: Vec::new(),
            past_estimates: Vec::new(),
            consumed: None,
            carry_over: true,
        }
    }

    /// A fresh instance whose error history restarts with every session.
    pub fn per_session(indexing: ChunkIndexing) -> Self {
        Self {
            carry_over: false,
            ..Self::new(indexing)
        }
    }
}

/// Bytes of chunk `index` of rendition `r` as the planner sees it.
fn planned_bytes(ladder: &Ladder, indexing: ChunkIndexing, r: usize, index: usize) -> f64 {
    match (indexing, ladder.sized_chunks()) {
        (ChunkIndexing::AsShipped, Some(_)) => {
            ladder.exact_chunk_bytes(r, index).map_or(0.0, |b| b as f64)
        }
        _ => ladder.chunk_bytes(r, index),
    }
}

/// Exhaustive horizon search of `mpc.py`: returns the first rung of the best
/// plan. `future_bps` > 0; `buffer_s` ≥ 0; `sizes(r, i)` gives the bytes of
/// the `i`-th future chunk at rung `r`.
pub(crate) fn plan_first_rung(
    ladder: &Ladder,
    cap: usize,
    last: usize,
    horizon: usize,
    buffer_s: f64,
    future_bps: f64,
    sizes: &dyn Fn(usize, usize) -> f64,
) -> usize {
    let chunk_s = ladder.chunk_ms() / 1000.0;
    let levels = cap + 1;
    let mut combo = vec![0usize; horizon];
    let mut best_reward = -100_000_000.0;
    let mut best_first = 0;
    loop {
        let mut rebuffer = 0.0;
        let mut buffer = buffer_s;
        let mut bitrate_sum = 0.0;
        let mut smooth = 0.0;
        let mut prev = last;
        for (pos, &q) in combo.iter().enumerate() {
            let download = sizes(q, pos) / 1_000_000.0 / (future_bps / 8_000_000.0);
            if buffer < download {
                rebuffer += download - buffer;
                buffer = 0.0;
            } else {
                buffer -= download;
            }
            buffer += chunk_s;
            bitrate_sum += ladder.kbps(q);
            smooth += (ladder.kbps(q) - ladder.kbps(prev)).abs();
            prev = q;
        }
        let reward = bitrate_sum / 1000.0 - REBUF_PENALTY * rebuffer - smooth / 1000.0;
        if reward >= best_reward {
            best_reward = reward;
            best_first = combo.first().copied().unwrap_or(0);
        }
        // Odometer over levels^horizon in lexicographic order.
        let mut i = horizon;
        loop {
            if i == 0 {
                return best_first;
            }
            i -= 1;
            combo[i] += 1;
            if combo[i] < levels {
                break;
            }
            combo[i] = 0;
        }
    }
}

impl AbrAlgorithm for RobustMpc {
    fn name(&self) -> &'static str {
        match self.indexing {
            ChunkIndexing::AsShipped => "robust-mpc",
            ChunkIndexing::Fixed => "robust-mpc-fixed",
        }
    }

    fn decide(&mut self, ctx: &DecisionContext<'_>) -> Decision {
        // Score every newly received report against the latest prediction.
        let consumed = self.consumed;
        for o in ctx.usable().filter(|o| consumed.is_none_or(|c| o.seq > c)) {
            let err = self
                .past_estimates
                .last()
                .map_or(0.0, |p| (p - o.throughput_bps).abs() / o.throughput_bps);
            self.past_errors.push(err);
            self.consumed = Some(o.seq);
        }
        let Some(harmonic) = harmonic_mean(&ctx.recent_throughputs(MPC_WINDOW)) else {
            return Decision::capped(0, Reason::NoHistory, ctx.cap());
        };
        let from = self.past_errors.len().saturating_sub(MPC_WINDOW);
        let max_error = self.past_errors[from..].iter().copied().fold(0.0, f64::max);
        let future_bps = harmonic / (1.0 + max_error);
        self.past_estimates.push(harmonic);

        let horizon = MPC_HORIZON.min(ctx.total_chunks.saturating_sub(ctx.next_chunk));
        if horizon == 0 {
            return Decision::capped(ctx.last(), Reason::EndOfTitle, ctx.cap());
        }
        let buffer_s = ctx.buffer_ms().unwrap_or(0.0) / 1000.0;
        let offset = match self.indexing {
            ChunkIndexing::AsShipped => 1,
            ChunkIndexing::Fixed => 0,
        };
        let indexing = self.indexing;
        let ladder = ctx.ladder;
        let sizes = |r: usize, pos: usize| {
            planned_bytes(ladder, indexing, r, ctx.next_chunk + pos + offset)
        };
        let first = plan_first_rung(
            ladder,
            ctx.cap(),
            ctx.last(),
            horizon,
            buffer_s,
            future_bps,
            &sizes,
        );
        Decision::capped(first, Reason::MpcPlan, ctx.cap())
    }

    fn reset(&mut self) {
        if !self.carry_over {
            self.past_errors.clear();
            self.past_estimates.clear();
        }
        self.consumed = None;
    }
}
