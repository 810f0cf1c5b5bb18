//! Against the real NATS (`NATS_URL`), one random prefix a test.

use stream_bus::{media, Bus, TranscodeJob};

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn prefix() -> String {
    format!("t{}", std::process::id())
        + &format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % 0xffffff
        )
}

fn job(id: &str) -> TranscodeJob {
    TranscodeJob {
        video_id: id.into(),
        title: "t".into(),
        source: Some(media::transcode_job::Source::ObjectKey(format!(
            "uploads/{id}/source"
        ))),
        size_bytes: 1,
        submitted_at_ms: 0,
    }
}

#[tokio::test]
async fn a_resubmitted_job_is_deduplicated_by_video_id() {
    let bus = Bus::connect(&nats_url(), &prefix()).await.unwrap();
    bus.submit_job(&job("01JAAAAAAAAAAAAAAAAAAAAAA1"))
        .await
        .unwrap();
    bus.submit_job(&job("01JAAAAAAAAAAAAAAAAAAAAAA1"))
        .await
        .unwrap();
    assert_eq!(bus.queued_jobs().await.unwrap(), 1);
    bus.submit_job(&job("01JAAAAAAAAAAAAAAAAAAAAAA2"))
        .await
        .unwrap();
    assert_eq!(bus.queued_jobs().await.unwrap(), 2);
    bus.delete_streams().await.unwrap();
}

#[tokio::test]
async fn concurrent_connects_share_the_streams() {
    let p = prefix() + "c";
    let url = nats_url();
    let connects = (0..4).map(|_| Bus::connect(&url, &p));
    let buses = futures::future::join_all(connects).await;
    assert!(
        buses.iter().all(Result::is_ok),
        "{:?}",
        buses
            .iter()
            .filter_map(|b| b.as_ref().err())
            .collect::<Vec<_>>()
    );
    buses[0].as_ref().unwrap().delete_streams().await.unwrap();
}
