//! The producer subject: [`stream_bus::MarkerBatch`]es on
//! `P.ingest.markers` (durable pull consumer `markers`, shared by every
//! marker service instance). A batch goes through the same validation and
//! atomic store as an HTTP POST. A batch that can never be stored (unknown
//! video, invalid marker, undecodable) is acked as terminated and logged;
//! a storage failure leaves it for redelivery (at most 5 deliveries).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use stream_bus::async_nats::jetstream::AckKind;
use stream_bus::decode_marker_batch;
use stream_runtime::CancellationToken;
use tracing::{info, warn};

use crate::{convert, AppState, MarkerError};

pub async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let messages = match state.bus.marker_ingest_consumer().await {
            Ok(c) => c.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "marker intake unavailable, retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        info!("marker intake running");
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = messages.next() => m,
            };
            let Some(msg) = next else { break };
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    warn!(error = %e, "marker intake delivery error");
                    continue;
                }
            };
            let outcome = match decode_marker_batch(&msg.payload) {
                Ok(batch) => store(&state, batch).await,
                Err(e) => Err(MarkerError::BadRequest(e.to_string())),
            };
            let ack = match outcome {
                Ok(()) => AckKind::Ack,
                Err(e @ (MarkerError::Store(_) | MarkerError::Catalog(_))) => {
                    warn!(error = %e, "marker batch not stored; will be redelivered");
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, "marker batch refused");
                    AckKind::Term
                }
            };
            let _ = msg.ack_with(ack).await;
        }
    }
}

async fn store(state: &AppState, batch: stream_bus::MarkerBatch) -> Result<(), MarkerError> {
    let inputs = batch
        .markers
        .iter()
        .enumerate()
        .map(|(i, m)| convert::input_from_proto(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let stored = state.add(&batch.video_id, inputs).await?;
    info!(video_id = %batch.video_id, markers = stored.len(), "marker batch stored");
    Ok(())
}
