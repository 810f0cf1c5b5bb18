//! Property tests over every algorithm: cap respected, no panics on garbage,
//! stable decisions on constant throughput.

use proptest::prelude::*;
use stream_abr::sim::{run, SimConfig, Trace};
use stream_abr::{AlgoKind, DecisionContext, Ladder, Observation};

/// Floats including the nasty ones.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-1.0),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        -1e9f64..1e9,
        0.0f64..1e8,
    ]
}

fn observation() -> impl Strategy<Value = Observation> {
    (
        0u64..60,
        any_f64(),
        any_f64(),
        any_f64(),
        any_f64(),
        any_f64(),
        0usize..12,
        0u64..10_000_000,
    )
        .prop_map(
            |(
                seq,
                sent_at_ms,
                buffer_ms,
                throughput_bps,
                download_ms,
                rebuffer_ms,
                rendition,
                chunk_bytes,
            )| Observation {
                seq,
                sent_at_ms,
                buffer_ms,
                throughput_bps,
                download_ms,
                rebuffer_ms,
                rebuffer_events: 0,
                rendition,
                chunk_bytes,
            },
        )
}

fn ladder() -> impl Strategy<Value = Ladder> {
    (
        prop::collection::vec(1.0f64..2e6, 1..7),
        100.0f64..10_000.0,
        any::<bool>(),
    )
        .prop_map(|(steps, chunk_ms, sized)| {
            let mut acc = 0.0;
            let bitrates: Vec<f64> = steps
                .iter()
                .map(|s| {
                    acc += s;
                    acc
                })
                .collect();
            let n = bitrates.len();
            let l = Ladder::new(bitrates, chunk_ms).expect("ascending positive");
            if sized {
                let sizes = (0..n)
                    .map(|r| (0..10).map(|c| (r as u64 + 1) * 1000 + c).collect())
                    .collect();
                l.with_chunk_sizes(sizes).expect("shape")
            } else {
                l
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Whatever the reports hold, every algorithm returns a rung within the
    /// ladder and at or below the capability cap, without panicking, over a
    /// sequence of decisions on one instance.
    #[test]
    fn never_above_cap_nor_outside_ladder(
        ladder in ladder(),
        mut history in prop::collection::vec(observation(), 0..12),
        buffer in prop::option::of(any_f64()),
        now_ms in any_f64(),
        last in 0usize..12,
        next in 0usize..60,
        total in 0usize..60,
        cap in 0usize..10,
    ) {
        history.sort_by_key(|o| o.seq);
        for kind in AlgoKind::ALL {
            let mut algo = kind.build();
            for step in 0..3 {
                let ctx = DecisionContext {
                    ladder: &ladder,
                    history: &history[..history.len() * (step + 1) / 3],
                    now_ms: now_ms + step as f64,
                    buffer_estimate_ms: buffer,
                    last_rendition: last,
                    next_chunk: next + step,
                    total_chunks: total,
                    max_rendition: cap,
                };
                let d = algo.decide(&ctx);
                prop_assert!(d.rendition <= cap, "{} picked {} above cap {}", kind.name(), d.rendition, cap);
                prop_assert!(d.rendition < ladder.len(), "{} picked {} outside ladder of {}", kind.name(), d.rendition, ladder.len());
            }
        }
    }

    /// The cap also holds end to end in the simulator, on a random trace.
    #[test]
    fn simulator_respects_cap(mbps in prop::collection::vec(0.05f64..8.0, 2..40), cap in 0usize..6) {
        let times: Vec<f64> = (0..mbps.len()).map(|i| i as f64).collect();
        let trace = Trace::new("random", times, mbps).expect("valid trace");
        let cfg = SimConfig { max_rendition: Some(cap), total_chunks: 12, ..SimConfig::default() };
        for kind in AlgoKind::ALL {
            let mut algo = kind.build();
            let s = run(std::slice::from_ref(&trace), &Ladder::pensieve(), &cfg, algo.as_mut()).expect("runs");
            prop_assert!(s.sessions[0].chunks.iter().all(|c| c.rendition <= cap), "{} exceeded cap {cap}", kind.name());
        }
    }

    /// Constant throughput: production and RB do not oscillate — over the
    /// last 20 chunks they switch at most once (an MPC may step up once near
    /// the end of the title to spend its buffer). The baselines BBA, BOLA and
    /// RobustMPC (faithful ports) do dither on such traces (BBA's rate map
    /// and the chunk-size-dependent measured throughput), within 3 rungs.
    #[test]
    fn stable_on_constant_throughput(mbps in 0.2f64..8.0) {
        let trace = Trace::new("constant", vec![0.0, 10_000.0], vec![mbps, mbps]).expect("valid trace");
        let cfg = SimConfig::default();
        for kind in AlgoKind::ALL {
            let mut algo = kind.build();
            let s = run(std::slice::from_ref(&trace), &Ladder::pensieve(), &cfg, algo.as_mut()).expect("runs");
            let tail: Vec<usize> = s.sessions[0].chunks[28..].iter().map(|c| c.rendition).collect();
            let (lo, hi) = (*tail.iter().min().unwrap(), *tail.iter().max().unwrap());
            match kind {
                AlgoKind::Bba | AlgoKind::Bola | AlgoKind::RobustMpcAsShipped | AlgoKind::RobustMpcFixed => prop_assert!(hi - lo <= 2, "{} tail {tail:?}", kind.name()),
                _ => {
                    let steps: Vec<i64> = tail.windows(2).map(|w| w[1] as i64 - w[0] as i64).filter(|d| *d != 0).collect();
                    prop_assert!(steps.len() <= 1, "{} oscillates at {mbps} Mbit/s: {tail:?}", kind.name());
                }
            }
        }
    }
}

#[test]
fn garbage_reports_are_rejected_with_typed_errors() {
    use stream_abr::ObservationError;
    let ok = Observation {
        seq: 0,
        sent_at_ms: 0.0,
        buffer_ms: 0.0,
        throughput_bps: 1.0,
        download_ms: 0.0,
        rebuffer_ms: 0.0,
        rebuffer_events: 0,
        rendition: 0,
        chunk_bytes: 1,
    };
    assert_eq!(ok.validate(), Ok(()));
    let t = |v| {
        Observation {
            throughput_bps: v,
            ..ok
        }
        .validate()
    };
    assert_eq!(t(0.0), Err(ObservationError::Throughput(0.0)));
    assert!(matches!(t(f64::NAN), Err(ObservationError::Throughput(_))));
    assert!(matches!(
        t(f64::INFINITY),
        Err(ObservationError::Throughput(_))
    ));
    assert_eq!(
        Observation {
            buffer_ms: -1.0,
            ..ok
        }
        .validate(),
        Err(ObservationError::Buffer(-1.0))
    );
    assert!(matches!(
        Observation {
            sent_at_ms: f64::NAN,
            ..ok
        }
        .validate(),
        Err(ObservationError::Timestamp(_))
    ));
}
