//! Golden values: the baselines reproduce the reference mean QoE_lin on
//! Norway (shared/abr/README.md), and production beats RobustMPC under
//! report impairment.

mod common;

use stream_abr::sim::{run, SimConfig};
use stream_abr::AlgoKind;

const TOLERANCE: f64 = 0.05;

fn mean_qoe(kind: AlgoKind, cfg: &SimConfig) -> f64 {
    let traces = common::norway();
    assert_eq!(traces.len(), 142, "expected the 142 Norway traces");
    let mut algo = kind.build();
    run(&traces, &common::ladder(), cfg, algo.as_mut())
        .expect("simulation runs")
        .mean_qoe
}

fn assert_golden(kind: AlgoKind, reference: f64) {
    let got = mean_qoe(kind, &SimConfig::default());
    assert!(
        (got - reference).abs() <= TOLERANCE,
        "{}: mean QoE_lin {got:.4}, reference {reference}",
        kind.name()
    );
}

#[test]
fn bba_matches_reference() {
    assert_golden(AlgoKind::Bba, 30.04);
}

#[test]
fn rb_matches_reference() {
    assert_golden(AlgoKind::Rb, 35.02);
}

#[test]
fn bola_matches_reference() {
    assert_golden(AlgoKind::Bola, 35.90);
}

#[test]
fn robust_mpc_as_shipped_matches_reference() {
    assert_golden(AlgoKind::RobustMpcAsShipped, 41.19);
}

#[test]
fn robust_mpc_fixed_matches_reference() {
    assert_golden(AlgoKind::RobustMpcFixed, 43.63);
}

#[test]
fn production_beats_robust_mpc_under_impairment() {
    let impaired = SimConfig {
        report_delay_ms: 1000.0,
        report_loss: 0.1,
        seed: 42,
        ..SimConfig::default()
    };
    let production = mean_qoe(AlgoKind::Production, &impaired);
    let mpc = mean_qoe(AlgoKind::RobustMpcFixed, &impaired);
    assert!(
        production > 43.63,
        "production {production:.3} <= RobustMPC reference 43.63"
    );
    assert!(
        production > mpc,
        "production {production:.3} <= RobustMPC-fixed under impairment {mpc:.3}"
    );
}
