//! The production session model reconstructs the client buffer and the
//! throughput samples from request timing alone.

mod common;

use stream_abr::algo::production::{ProductionConfig, SessionModel};
use stream_abr::algo::rb::RateBased;
use stream_abr::sim::{simulate_session, SimConfig};
use stream_abr::DecisionContext;

#[test]
fn model_tracks_true_buffer_without_reports() {
    let ladder = common::ladder();
    let traces = common::norway();
    let cfg = SimConfig::default();
    for trace in traces.iter().step_by(10) {
        let s = simulate_session(trace, &ladder, &cfg, &mut RateBased, 0).expect("runs");
        let mut model = SessionModel::default();
        let mut now = 0.0;
        for k in 1..s.chunks.len() {
            let prev = &s.chunks[k - 1];
            now += prev.download_ms + prev.sleep_ms;
            let ctx = DecisionContext {
                ladder: &ladder,
                history: &[],
                now_ms: now,
                buffer_estimate_ms: None,
                last_rendition: prev.rendition,
                next_chunk: k,
                total_chunks: s.chunks.len(),
                max_rendition: 5,
            };
            let state = model.observe(&ctx, &ProductionConfig::default());
            assert!(
                (state.buffer_ms - prev.buffer_ms).abs() < 1e-6,
                "{} chunk {k}: modelled {} ms, true {} ms",
                trace.name(),
                state.buffer_ms,
                prev.buffer_ms
            );
            // The newest sample is the client's own measurement unless it paused.
            if prev.sleep_ms == 0.0 && prev.buffer_ms < 59_000.0 {
                let measured =
                    ladder.chunk_bytes(prev.rendition, k - 1) * 8.0 / (prev.download_ms / 1000.0);
                let got = *state.samples.last().expect("a sample");
                assert!(
                    (got - measured).abs() / measured < 1e-9,
                    "sample {got} vs {measured}"
                );
            }
        }
    }
}
