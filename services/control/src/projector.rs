//! Projects the ingest event stream into the catalogue.

use std::time::Duration;

use futures::StreamExt;
use stream_bus::{decode_event, Bus};
use stream_catalog::Catalog;
use stream_runtime::CancellationToken;
use tracing::{info, warn};

/// Durable consumer name.
pub const DURABLE: &str = "catalog";

/// Consume every video event and apply it; ack after the catalogue took it
/// (redelivered otherwise; applying is idempotent).
pub async fn run(bus: Bus, catalog: Catalog, shutdown: CancellationToken) {
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let consumer = match bus.events_consumer(DURABLE).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "event consumer unavailable, retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        let mut messages = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "event stream failed, retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        info!("catalogue projector running");
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = messages.next() => m,
            };
            let Some(msg) = next else { break };
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    warn!(error = %e, "event delivery error");
                    continue;
                }
            };
            match decode_event(&msg.payload) {
                Ok(ev) => match catalog.apply(&ev).await {
                    Ok(_) => {
                        let _ = msg.ack().await;
                    }
                    Err(e) => warn!(error = %e, "catalogue apply failed; will be redelivered"),
                },
                Err(e) => {
                    warn!(error = %e, "undecodable event, dropping");
                    let _ = msg
                        .ack_with(stream_bus::async_nats::jetstream::AckKind::Term)
                        .await;
                }
            }
        }
    }
}
