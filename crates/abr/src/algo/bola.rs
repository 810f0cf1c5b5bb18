//! BOLA (basic) baseline.
//!
//! Source: Spiteri, Urgaonkar, Sitaraman, "BOLA: Near-Optimal Bitrate
//! Adaptation for Online Videos", INFOCOM 2016 (§IV, BOLA-BASIC), with the
//! utilities and constants of dash.js `src/streaming/rules/abr/BolaRule.js`:
//! utilities `ln(b_i) − ln(b_0) + 1`, `MINIMUM_BUFFER_S = 10`,
//! `MINIMUM_BUFFER_PER_BITRATE_LEVEL_S = 2`, stable buffer time 12 s, so the
//! buffer target is `max(12, 10 + 2·N)` s; `gp = (u_max − 1)/(target/10 − 1)`,
//! `Vp = 10/gp`; pick `argmax_i (Vp·(u_i + gp) − B)/b_i` (ties → higher rung).
//! Basic: no placeholder buffer, no BOLA-O/insufficient-buffer rules.

use super::{AbrAlgorithm, DecisionContext};
use crate::decision::{Decision, Reason};

/// dash.js `MINIMUM_BUFFER_S`.
pub const MINIMUM_BUFFER_S: f64 = 10.0;
/// dash.js `MINIMUM_BUFFER_PER_BITRATE_LEVEL_S`.
pub const MINIMUM_BUFFER_PER_BITRATE_LEVEL_S: f64 = 2.0;
/// dash.js default `stableBufferTime`, s.
pub const STABLE_BUFFER_TIME_S: f64 = 12.0;

/// BOLA-BASIC over the buffer level in seconds.
#[derive(Debug, Clone, Default)]
pub struct Bola;

impl AbrAlgorithm for Bola {
    fn name(&self) -> &'static str {
        "bola"
    }

    fn decide(&mut self, ctx: &DecisionContext<'_>) -> Decision {
        let Some(buffer_ms) = ctx.buffer_ms() else {
            return Decision::capped(0, Reason::NoHistory, ctx.cap());
        };
        let bitrates = ctx.ladder.bitrates_bps();
        let n = bitrates.len();
        if n == 1 {
            return Decision::capped(0, Reason::BolaScore, ctx.cap());
        }
        let u0 = bitrates[0].ln();
        let utilities: Vec<f64> = bitrates.iter().map(|b| b.ln() - u0 + 1.0).collect();
        let target = STABLE_BUFFER_TIME_S
            .max(MINIMUM_BUFFER_S + MINIMUM_BUFFER_PER_BITRATE_LEVEL_S * n as f64);
        let gp = (utilities[n - 1] - 1.0) / (target / MINIMUM_BUFFER_S - 1.0);
        let vp = MINIMUM_BUFFER_S / gp;
        let buffer_s = buffer_ms / 1000.0;
        let mut best = 0;
        let mut best_score = f64::NEG_INFINITY;
        // Only rungs the client may play compete (the cap is a hard constraint).
        for (i, (&u, &b)) in utilities
            .iter()
            .zip(bitrates)
            .enumerate()
            .take(ctx.cap() + 1)
        {
            let s = (vp * (u + gp) - buffer_s) / b;
            if s >= best_score {
                best_score = s;
                best = i;
            }
        }
        Decision::capped(best, Reason::BolaScore, ctx.cap())
    }

    fn reset(&mut self) {}
}
