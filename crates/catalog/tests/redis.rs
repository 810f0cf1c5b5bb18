//! Catalogue against the real Redis (`REDIS_URL`), one random prefix a test.

use stream_bus::{event, media, video_event::Kind};
use stream_catalog::{Catalog, VideoStatus};
use stream_testkit::{env, unique_prefix};

async fn catalog() -> Catalog {
    Catalog::connect(&env::redis_url(), &unique_prefix())
        .await
        .expect("redis reachable at REDIS_URL")
}

fn accepted(id: &str, title: &str) -> stream_bus::VideoEvent {
    event(
        id,
        Kind::Accepted(media::Accepted {
            title: title.into(),
            size_bytes: 1,
            source: "upload".into(),
            channel: None,
        }),
    )
}

#[tokio::test]
async fn apply_is_idempotent_and_skips_stale_events() {
    let c = catalog().await;
    let id = ulid_like(1);
    let a = accepted(&id, "first");
    let progress = event(
        &id,
        Kind::Progress(media::Progress {
            percent: 50.0,
            ..Default::default()
        }),
    );
    assert!(c.apply(&a).await.unwrap());
    assert!(c.apply(&progress).await.unwrap());
    // Replays and the older event are no-ops.
    assert!(!c.apply(&progress).await.unwrap());
    assert!(!c.apply(&a).await.unwrap());
    let r = c.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.progress_percent),
        (VideoStatus::Processing, 50.0)
    );
    assert!(c.get(&ulid_like(99)).await.unwrap().is_none());
}

#[tokio::test]
async fn list_pages_newest_first_without_overlap() {
    let c = catalog().await;
    for i in 0..7 {
        c.apply(&accepted(&ulid_like(i), &format!("v{i}")))
            .await
            .unwrap();
    }
    let (page1, next) = c.list(3, None).await.unwrap();
    let titles: Vec<_> = page1.iter().map(|r| r.title.as_str()).collect();
    assert_eq!(titles, ["v6", "v5", "v4"]);
    let (page2, next) = c.list(3, next.as_deref()).await.unwrap();
    assert_eq!(
        page2.iter().map(|r| r.title.as_str()).collect::<Vec<_>>(),
        ["v3", "v2", "v1"]
    );
    let (page3, next) = c.list(3, next.as_deref()).await.unwrap();
    assert_eq!(page3.len(), 1);
    assert!(next.is_none());
}

fn channel(id: &str) -> stream_bus::VideoEvent {
    event(
        id,
        Kind::Accepted(media::Accepted {
            title: format!("ch {id}"),
            size_bytes: 0,
            source: "live:generator".into(),
            channel: Some(media::ChannelInfo {
                latency: media::LiveLatency::Low as i32,
                dvr_window_s: 600.0,
                r#loop: false,
            }),
        }),
    )
}

#[tokio::test]
async fn channels_are_indexed_and_capped_atomically() {
    let c = catalog().await;
    c.apply(&accepted(&ulid_like(0), "plain video"))
        .await
        .unwrap();
    let first = channel(&ulid_like(1));
    assert!(c.start_channel(&first, 2).await.unwrap());
    // The same event again is a no-op, not a second slot.
    assert!(!c.start_channel(&first, 2).await.unwrap());
    assert!(c.start_channel(&channel(&ulid_like(2)), 2).await.unwrap());
    assert_eq!(c.running_channels().await.unwrap(), 2);
    let err = c
        .start_channel(&channel(&ulid_like(3)), 2)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        stream_catalog::CatalogError::ChannelCap { max: 2 }
    ));
    assert!(
        c.get(&ulid_like(3)).await.unwrap().is_none(),
        "nothing written"
    );

    // A channel that ends frees its slot and stays listed.
    c.apply(&event(
        &ulid_like(1),
        Kind::Failed(media::Failed {
            reason: "source gone".into(),
            input_error: true,
        }),
    ))
    .await
    .unwrap();
    assert_eq!(c.running_channels().await.unwrap(), 1);
    assert!(c.start_channel(&channel(&ulid_like(3)), 2).await.unwrap());

    let (page, next) = c.list_channels(2, None).await.unwrap();
    let ids: Vec<_> = page.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, [ulid_like(3), ulid_like(2)]);
    let r = &page[0];
    assert_eq!(r.status, VideoStatus::Queued);
    let ch = r.channel.as_ref().unwrap();
    assert_eq!(
        (ch.latency.as_str(), ch.dvr_window_s, ch.source.as_str()),
        ("low", 600.0, "generator")
    );
    let (page2, next) = c.list_channels(2, next.as_deref()).await.unwrap();
    assert_eq!(page2.len(), 1);
    assert_eq!(page2[0].status, VideoStatus::Failed);
    assert!(next.is_none());
    // Channels are videos too.
    let (all, _) = c.list(10, None).await.unwrap();
    assert_eq!(all.len(), 4);
}

/// Ids that sort in creation order like ULIDs do.
fn ulid_like(i: u32) -> String {
    format!("01JAAAAAAAAAAAAAAAAAAAA{i:03}")
}
