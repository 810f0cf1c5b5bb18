//! The [`AbrAlgorithm`] trait, its input ([`DecisionContext`]) and the
//! algorithms.
//!
//! | name | module | source |
//! |---|---|---|
//! | `rb` | [`rb`] | rate-based: highest rung ≤ harmonic mean of the last 5 throughputs (Pensieve baseline; Jiang et al., FESTIVE, CoNEXT 2012 for the harmonic mean) |
//! | `bba` | [`bba`] | Huang et al., SIGCOMM 2014, as in Pensieve `test/bb.py` |
//! | `bola` | [`bola`] | Spiteri et al., INFOCOM 2016; dash.js `BolaRule.js` |
//! | `robust-mpc`, `robust-mpc-fixed` | [`mpc`] | Yin et al., SIGCOMM 2015; Pensieve `test/mpc.py` |
//! | `production` | [`production`] | ours: see the module doc |

pub mod bba;
pub mod bola;
pub mod mpc;
pub mod production;
pub mod rb;

use crate::decision::Decision;
use crate::error::AbrError;
use crate::ladder::Ladder;
use crate::observation::Observation;

/// Everything an algorithm may look at to pick the rendition of the next
/// chunk. Built by the caller (the control service per session, or the
/// simulator) for every decision.
#[derive(Debug, Clone, Copy)]
pub struct DecisionContext<'a> {
    /// The title's ladder, with per-chunk sizes when known (future chunk sizes
    /// come from here).
    pub ladder: &'a Ladder,
    /// Reports received so far, ascending by `seq`; possibly stale (the most
    /// recent chunks may have no report yet) and gappy (lost reports).
    /// Entries may hold garbage (NaN, negative): use [`Observation::is_usable`].
    pub history: &'a [Observation],
    /// Server wall time of this decision, ms, on the same clock as
    /// [`Observation::sent_at_ms`] (the simulator's session clock). This is
    /// when the client asked for chunk `next_chunk`.
    pub now_ms: f64,
    /// Latest buffer level known from reports, ms (`None` before the first
    /// usable report). Not extrapolated: stale by the report delay.
    pub buffer_estimate_ms: Option<f64>,
    /// Rendition of the previous chunk (what the client plays right now).
    pub last_rendition: usize,
    /// Index of the chunk to decide for.
    pub next_chunk: usize,
    /// Number of chunks in the title.
    pub total_chunks: usize,
    /// Client capability cap: highest rendition index the client may receive.
    pub max_rendition: usize,
}

impl DecisionContext<'_> {
    /// Effective cap: `max_rendition` limited to the ladder's top rung.
    pub fn cap(&self) -> usize {
        self.max_rendition.min(self.ladder.top())
    }

    /// Usable reports, oldest first.
    pub fn usable(&self) -> impl DoubleEndedIterator<Item = &Observation> + '_ {
        self.history.iter().filter(|o| o.is_usable())
    }

    /// Throughputs (bit/s) of the last `n` usable reports, oldest first.
    pub fn recent_throughputs(&self, n: usize) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .usable()
            .rev()
            .take(n)
            .map(|o| o.throughput_bps)
            .collect();
        v.reverse();
        v
    }

    /// The naive buffer estimate, sanitised: finite and ≥ 0, else `None`.
    pub fn buffer_ms(&self) -> Option<f64> {
        self.buffer_estimate_ms
            .filter(|b| b.is_finite())
            .map(|b| b.max(0.0))
    }

    /// `last_rendition` clamped into the ladder.
    pub fn last(&self) -> usize {
        self.last_rendition.min(self.ladder.top())
    }
}

/// An ABR algorithm: one instance per streaming session (it may keep state
/// between decisions, e.g. prediction errors).
///
/// Contract: `decide` never panics, whatever the context holds, and returns
/// a rendition ≤ [`DecisionContext::cap`].
pub trait AbrAlgorithm: Send {
    /// Stable short name (`rb`, `bba`, ...), as used by `streamctl`.
    fn name(&self) -> &'static str;
    /// Picks the rendition of chunk `ctx.next_chunk`.
    fn decide(&mut self, ctx: &DecisionContext<'_>) -> Decision;
    /// Forgets per-session state (a new session starts).
    fn reset(&mut self);
}

/// Harmonic mean of positive finite values; `None` if there are none.
pub fn harmonic_mean(values: &[f64]) -> Option<f64> {
    let v: Vec<f64> = values
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    if v.is_empty() {
        return None;
    }
    let inv: f64 = v.iter().map(|x| 1.0 / x).sum();
    Some(1.0 / (inv / v.len() as f64))
}

/// The algorithms `streamctl abr-sim --algo` knows, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgoKind {
    /// [`rb::RateBased`].
    Rb,
    /// [`bba::Bba`].
    Bba,
    /// [`bola::Bola`].
    Bola,
    /// [`mpc::RobustMpc`] with Pensieve's off-by-one chunk-size index.
    RobustMpcAsShipped,
    /// [`mpc::RobustMpc`] with the chunk-size index fixed.
    RobustMpcFixed,
    /// [`production::Production`].
    Production,
}

impl AlgoKind {
    /// Every algorithm, baselines first.
    pub const ALL: [AlgoKind; 6] = [
        AlgoKind::Rb,
        AlgoKind::Bba,
        AlgoKind::Bola,
        AlgoKind::RobustMpcAsShipped,
        AlgoKind::RobustMpcFixed,
        AlgoKind::Production,
    ];
    /// Names, in the order of [`AlgoKind::ALL`].
    pub const NAMES: [&'static str; 6] = [
        "rb",
        "bba",
        "bola",
        "robust-mpc",
        "robust-mpc-fixed",
        production::NAME,
    ];

    /// Name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        Self::NAMES[Self::ALL.iter().position(|k| *k == self).unwrap_or(0)]
    }

    /// Parses a name from [`AlgoKind::NAMES`].
    pub fn parse(name: &str) -> Result<Self, AbrError> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| AbrError::UnknownAlgorithm(name.to_owned()))
    }

    /// True for the algorithm we ship.
    pub fn is_production(self) -> bool {
        self == AlgoKind::Production
    }

    /// A fresh instance with the documented default parameters.
    pub fn build(self) -> Box<dyn AbrAlgorithm> {
        match self {
            AlgoKind::Rb => Box::new(rb::RateBased),
            AlgoKind::Bba => Box::new(bba::Bba::default()),
            AlgoKind::Bola => Box::new(bola::Bola),
            AlgoKind::RobustMpcAsShipped => {
                Box::new(mpc::RobustMpc::new(mpc::ChunkIndexing::AsShipped))
            }
            AlgoKind::RobustMpcFixed => Box::new(mpc::RobustMpc::new(mpc::ChunkIndexing::Fixed)),
            AlgoKind::Production => Box::new(production::Production::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in AlgoKind::ALL {
            assert_eq!(AlgoKind::parse(k.name()), Ok(k));
        }
        assert!(matches!(
            AlgoKind::parse("pensieve"),
            Err(AbrError::UnknownAlgorithm(_))
        ));
    }

    #[test]
    fn harmonic_mean_ignores_garbage() {
        assert_eq!(harmonic_mean(&[]), None);
        assert_eq!(harmonic_mean(&[f64::NAN, -1.0, 0.0]), None);
        let h = harmonic_mean(&[1.0, 4.0, f64::INFINITY]).unwrap();
        assert!((h - 1.6).abs() < 1e-12, "{h}");
    }
}
