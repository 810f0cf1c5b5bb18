//! Rate-based (RB) baseline: highest rung at or below the harmonic mean of
//! the last 5 measured throughputs.
//!
//! Source: the "RB" baseline of Mao et al., Pensieve (SIGCOMM 2017, §5.1);
//! harmonic-mean estimator from Jiang et al., FESTIVE (CoNEXT 2012, §5.1).

use super::{harmonic_mean, AbrAlgorithm, DecisionContext};
use crate::decision::{Decision, Reason};

/// Number of past throughput samples averaged.
pub const RB_WINDOW: usize = 5;

/// Rate-based ABR. Stateless; lowest rung until the first usable report.
#[derive(Debug, Clone, Default)]
pub struct RateBased;

impl AbrAlgorithm for RateBased {
    fn name(&self) -> &'static str {
        "rb"
    }

    fn decide(&mut self, ctx: &DecisionContext<'_>) -> Decision {
        match harmonic_mean(&ctx.recent_throughputs(RB_WINDOW)) {
            None => Decision::capped(0, Reason::NoHistory, ctx.cap()),
            Some(h) => Decision::capped(
                ctx.ladder.highest_at_most(h),
                Reason::ThroughputRule,
                ctx.cap(),
            ),
        }
    }

    fn reset(&mut self) {}
}
