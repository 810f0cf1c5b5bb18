//! Seeded synthetic throughput traces and fixed stress scenarios.
//!
//! The generator is a continuous-time Markov chain over throughput states
//! (mean Mbit/s, mean dwell time s): dwell times are exponential, the next
//! state is a neighbour (±1, or ±2 with lower odds), and every sample carries
//! log-normal noise `exp(σ·z − σ²/2)` (mean-preserving). This is the model
//! family Pensieve used to synthesise its training traces (Mao et al.,
//! SIGCOMM 2017, §5.1: "a Markovian model where each state represented an
//! average throughput"), with noise log-normal instead of Gaussian so the
//! throughput stays positive. Deterministic for a given seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Trace;
use crate::error::AbrError;

/// One state of the chain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarkovState {
    /// Mean throughput in this state, Mbit/s.
    pub mean_mbps: f64,
    /// Mean dwell time, s.
    pub mean_dwell_s: f64,
}

/// Parameters of the generator.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkovModel {
    /// States, in ascending throughput (neighbours are adjacent indices).
    pub states: Vec<MarkovState>,
    /// σ of the log-normal per-sample noise.
    pub noise_sigma: f64,
    /// Sample spacing, s.
    pub sample_interval_s: f64,
    /// Trace length, s (the simulator loops traces).
    pub duration_s: f64,
}

impl Default for MarkovModel {
    /// Six states spanning the Pensieve ladder (0.35–5.5 Mbit/s), dwell
    /// 6–20 s, σ = 0.3, 0.5 s samples, 320 s long: roughly the range and
    /// variability of the HSDPA Norway traces.
    fn default() -> Self {
        let s = |mean_mbps, mean_dwell_s| MarkovState {
            mean_mbps,
            mean_dwell_s,
        };
        Self {
            states: vec![
                s(0.35, 6.0),
                s(0.8, 10.0),
                s(1.4, 14.0),
                s(2.2, 16.0),
                s(3.3, 18.0),
                s(5.5, 20.0),
            ],
            noise_sigma: 0.3,
            sample_interval_s: 0.5,
            duration_s: 320.0,
        }
    }
}

/// Standard normal draw (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

impl MarkovModel {
    /// Generates `n` traces named `synthetic_000`, … from `seed`.
    ///
    /// Errors: [`AbrError::BadConfig`] if the model is empty or has
    /// non-positive means, dwell times, interval or duration.
    pub fn generate(&self, n: usize, seed: u64) -> Result<Vec<Trace>, AbrError> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        if self.states.is_empty()
            || self
                .states
                .iter()
                .any(|s| !ok(s.mean_mbps) || !ok(s.mean_dwell_s))
            || !ok(self.sample_interval_s)
            || !ok(self.duration_s)
            || !(self.noise_sigma.is_finite() && self.noise_sigma >= 0.0)
        {
            return Err(AbrError::BadConfig(
                "synthetic model: states, interval and duration must be positive".into(),
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let samples = (self.duration_s / self.sample_interval_s).ceil() as usize + 1;
        let last = self.states.len() - 1;
        (0..n)
            .map(|i| {
                let mut state = rng.random_range(0..=last);
                let mut left = -self.states[state].mean_dwell_s * (1.0 - rng.random::<f64>()).ln();
                let mut times = Vec::with_capacity(samples);
                let mut mbps = Vec::with_capacity(samples);
                for j in 0..samples {
                    let t = j as f64 * self.sample_interval_s;
                    while left <= 0.0 {
                        let step: i64 = match rng.random_range(0..6) {
                            0 => -2,
                            1 | 2 => -1,
                            3 | 4 => 1,
                            _ => 2,
                        };
                        state = (state as i64 + step).clamp(0, last as i64) as usize;
                        left += -self.states[state].mean_dwell_s * (1.0 - rng.random::<f64>()).ln();
                    }
                    left -= self.sample_interval_s;
                    let sigma = self.noise_sigma;
                    let noise = (sigma * normal(&mut rng) - sigma * sigma / 2.0).exp();
                    times.push(t);
                    mbps.push(self.states[state].mean_mbps * noise);
                }
                Trace::new(format!("synthetic_{i:03}"), times, mbps)
            })
            .collect()
    }
}

/// Piecewise-constant trace from `(duration_s, mbps)` segments, sampled
/// every 0.5 s.
fn piecewise(name: &str, segments: &[(f64, f64)]) -> Trace {
    let mut times = vec![0.0];
    let mut mbps = vec![segments[0].1];
    let mut t = 0.0;
    for &(dur, rate) in segments {
        let steps = (dur / 0.5).round() as usize;
        for _ in 0..steps {
            t += 0.5;
            times.push(t);
            mbps.push(rate);
        }
    }
    // Constant, finite, positive segments: `new` cannot fail.
    Trace::new(name, times, mbps).unwrap_or_else(|e| unreachable!("fixed scenario is valid: {e}"))
}

/// Fixed stress scenarios (each ≥ 200 s, looped by the simulator):
///
/// - `step_down`: 60 s at 5 Mbit/s, then 0.8 Mbit/s — a sudden cell change;
/// - `square_wave`: 20 s at 4 Mbit/s, 20 s at 0.6 Mbit/s, repeated;
/// - `near_outage`: 3 Mbit/s with 8 s dips to 0.05 Mbit/s every 40 s.
pub fn scenarios() -> Vec<Trace> {
    let square: Vec<(f64, f64)> = (0..6).flat_map(|_| [(20.0, 4.0), (20.0, 0.6)]).collect();
    let outage: Vec<(f64, f64)> = (0..6).flat_map(|_| [(32.0, 3.0), (8.0, 0.05)]).collect();
    vec![
        piecewise("step_down", &[(60.0, 5.0), (180.0, 0.8)]),
        piecewise("square_wave", &square),
        piecewise("near_outage", &outage),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_and_seed_sensitive() {
        let m = MarkovModel::default();
        let a = m.generate(3, 7).unwrap();
        assert_eq!(a, m.generate(3, 7).unwrap());
        assert_ne!(a, m.generate(3, 8).unwrap());
        assert_eq!(a[2].name(), "synthetic_002");
        for t in &a {
            assert!(t.mbps().iter().all(|b| b.is_finite() && *b > 0.0));
            let mean = t.mean_mbps();
            assert!(mean > 0.2 && mean < 8.0, "mean {mean}");
        }
    }

    #[test]
    fn generator_rejects_empty_model() {
        let m = MarkovModel {
            states: vec![],
            ..MarkovModel::default()
        };
        assert!(m.generate(1, 0).is_err());
    }

    #[test]
    fn scenarios_have_expected_shape() {
        let s = scenarios();
        assert_eq!(
            s.iter().map(Trace::name).collect::<Vec<_>>(),
            ["step_down", "square_wave", "near_outage"]
        );
        assert!((s[0].mbps()[10] - 5.0).abs() < 1e-12 && (s[0].mbps()[200] - 0.8).abs() < 1e-12);
    }
}
