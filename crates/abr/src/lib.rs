//! Adaptive-bitrate (ABR) selection for the streaming platform: pure logic only.
//!
//! Architecture invariant: this crate does no I/O, reads no clock, spawns
//! nothing and is not async. Time always comes in as data (`now_ms` in a
//! [`DecisionContext`], trace timestamps in [`sim::Trace`]); the only
//! randomness is a caller-seeded RNG (report loss in [`sim`], the synthetic
//! trace generator in [`sim::synthetic`]).
//!
//! Module map:
//! - [`ladder`] — [`Ladder`]: the rendition bitrates (bit/s) and optional
//!   per-chunk sizes (bytes) of one title.
//! - [`observation`] — [`Observation`]: one buffer/throughput report from a
//!   client (what the gRPC buffer-feedback message carries), and its checks.
//! - [`decision`] — [`Decision`] and [`Reason`].
//! - [`algo`] — the [`AbrAlgorithm`] trait, [`DecisionContext`], the baseline
//!   algorithms (RB, BBA, BOLA, RobustMPC) and the production algorithm
//!   ([`algo::production::Production`]).
//! - [`sim`] — a deterministic trace-driven chunk-level simulator with the
//!   semantics of Pensieve's `test/fixed_env.py`, QoE_lin scoring, report
//!   delay/loss impairment, and a seeded synthetic trace generator.
//! - [`error`] — typed errors.
//!
//! Units are in the names: `_ms` milliseconds, `_s` seconds, `_bps` bit/s,
//! `_kbps` kilobit/s (1 kbps = 1000 bit/s), `_bytes` bytes.

pub mod algo;
pub mod decision;
pub mod error;
pub mod ladder;
pub mod observation;
pub mod sim;

pub use algo::{AbrAlgorithm, AlgoKind, DecisionContext};
pub use decision::{Decision, Reason};
pub use error::{AbrError, ObservationError};
pub use ladder::Ladder;
pub use observation::Observation;
