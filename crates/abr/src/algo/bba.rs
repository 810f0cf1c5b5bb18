//! Buffer-based (BBA) baseline.
//!
//! Source: Huang et al., "A Buffer-Based Approach to Rate Adaptation",
//! SIGCOMM 2014 (§4, BBA-0 rate map), in the variant of Pensieve's
//! `test/bb.py`: reservoir 5 s, cushion 10 s, rung index linear in the
//! buffer inside the cushion, `int((N−1)·(B−5)/10)`.

use super::{AbrAlgorithm, DecisionContext};
use crate::decision::{Decision, Reason};

/// BBA with a reservoir and cushion in ms.
#[derive(Debug, Clone)]
pub struct Bba {
    /// Below this buffer level (ms), pick the lowest rung. Pensieve: 5000.
    pub reservoir_ms: f64,
    /// Width of the linear region (ms). Pensieve: 10000.
    pub cushion_ms: f64,
}

impl Default for Bba {
    fn default() -> Self {
        Self {
            reservoir_ms: 5000.0,
            cushion_ms: 10000.0,
        }
    }
}

impl AbrAlgorithm for Bba {
    fn name(&self) -> &'static str {
        "bba"
    }

    fn decide(&mut self, ctx: &DecisionContext<'_>) -> Decision {
        let Some(buffer) = ctx.buffer_ms() else {
            return Decision::capped(0, Reason::NoHistory, ctx.cap());
        };
        let top = ctx.ladder.top();
        if buffer < self.reservoir_ms {
            Decision::capped(0, Reason::Reservoir, ctx.cap())
        } else if buffer >= self.reservoir_ms + self.cushion_ms {
            Decision::capped(top, Reason::UpperReservoir, ctx.cap())
        } else {
            // Same float order as bb.py: (A_DIM-1) * (buffer - RESERVOIR) / CUSHION, truncated.
            let r = (top as f64 * (buffer / 1000.0 - self.reservoir_ms / 1000.0)
                / (self.cushion_ms / 1000.0)) as usize;
            Decision::capped(r.min(top), Reason::Cushion, ctx.cap())
        }
    }

    fn reset(&mut self) {}
}
