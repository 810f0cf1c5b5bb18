//! The marker store against the real Redis (`REDIS_URL`), one random
//! prefix per test.

use stream_markers::model::limits;
use stream_markers::{ChangeId, ChangeOp, Marker, MarkerInput, MarkerStore};

async fn store() -> (MarkerStore, String) {
    let prefix = stream_testkit::unique_prefix();
    let s = MarkerStore::connect(&stream_testkit::env::redis_url(), &prefix)
        .await
        .expect("redis");
    (s, prefix)
}

async fn cleanup(prefix: &str) {
    let client = redis::Client::open(stream_testkit::env::redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut con)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut con)
            .await
            .unwrap();
    }
}

fn marker(video: &str, t: f64, label: &str) -> Marker {
    Marker::new(
        video,
        MarkerInput {
            kind: "event".into(),
            label: label.into(),
            media_time: t,
            duration: None,
            source_time: None,
            data: None,
        },
    )
}

#[tokio::test]
async fn range_queries_order_same_second_and_delete() {
    let (s, prefix) = store().await;
    let v = "01JVIDEO";
    let a = marker(v, 5.0, "a");
    let b = marker(v, 1.25, "b");
    let c1 = marker(v, 3.0, "c1");
    let c2 = marker(v, 3.0, "c2"); // same second (same instant) as c1
    let ids = s
        .insert(v, &[a.clone(), b.clone(), c1.clone(), c2.clone()])
        .await
        .unwrap();
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    let all = s.range(v, 0.0, f64::INFINITY, 100).await.unwrap();
    let labels: Vec<_> = all.markers.iter().map(|m| m.input.label.as_str()).collect();
    assert_eq!(labels, ["b", "c1", "c2", "a"]);
    assert_eq!(all.version, ids[3]);
    assert!(!all.truncated);
    assert_eq!(all.markers[0], b);

    let mid = s.range(v, 2.0, 4.0, 100).await.unwrap();
    assert_eq!(mid.markers.len(), 2);
    let one = s.range(v, 0.0, 10.0, 1).await.unwrap();
    assert_eq!(one.markers.len(), 1);
    assert!(one.truncated);

    let del = s.delete(v, &c1.id).await.unwrap().expect("existed");
    assert!(del > ids[3]);
    assert_eq!(s.delete(v, &c1.id).await.unwrap(), None);
    let after: Vec<_> = s
        .range(v, 0.0, f64::INFINITY, 100)
        .await
        .unwrap()
        .markers
        .into_iter()
        .map(|m| m.input.label)
        .collect();
    assert_eq!(after, ["b", "c2", "a"]);
    assert_eq!(s.version(v).await.unwrap(), del);
    assert_eq!(s.version("other").await.unwrap(), ChangeId::ZERO);

    // Updates need an existing marker.
    let mut a2 = a.clone();
    a2.input.label = "a2".into();
    assert!(s
        .update(v, std::slice::from_ref(&a2))
        .await
        .unwrap()
        .is_some());
    assert!(s
        .update(v, std::slice::from_ref(&c1))
        .await
        .unwrap()
        .is_none());
    cleanup(&prefix).await;
}

#[tokio::test]
async fn feed_resumes_without_loss_or_duplicates() {
    let (s, prefix) = store().await;
    let v = "01JFEED";
    let first: Vec<_> = (0..5)
        .map(|i| marker(v, i as f64, &format!("m{i}")))
        .collect();
    let ids = s.insert(v, &first).await.unwrap();
    let mut feed = s.feed(v).await.unwrap();
    let got = feed.next_after(ChangeId::ZERO, 3).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].op, ChangeOp::Created);
    assert_eq!(got[0].marker.as_ref().unwrap(), &first[0]);
    // "Disconnect" after the third, then resume from its id.
    let resume = got[2].id;
    drop(feed);
    s.delete(v, &first[0].id).await.unwrap();
    let mut feed = s.feed(v).await.unwrap();
    let rest = feed.next_after(resume, 100).await.unwrap();
    let seen: Vec<_> = rest.iter().map(|c| (c.op, c.marker_id.clone())).collect();
    assert_eq!(
        seen,
        [
            (ChangeOp::Created, first[3].id.clone()),
            (ChangeOp::Created, first[4].id.clone()),
            (ChangeOp::Deleted, first[0].id.clone()),
        ]
    );
    assert_eq!(rest[0].id, ids[3]);
    assert!(!s.gap_after(v, resume).await.unwrap());
    cleanup(&prefix).await;
}

#[tokio::test]
async fn a_batch_beyond_the_per_video_limit_writes_nothing() {
    let (s, prefix) = store().await;
    let v = "01JFULL";
    // Fill close to the limit through the same script in big batches.
    let client = redis::Client::open(stream_testkit::env::redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    // Pretend the video already holds MAX - 1 markers (hash length is what
    // the script checks).
    let mut pipe = redis::pipe();
    for i in 0..limits::MAX_MARKERS_PER_VIDEO - 1 {
        pipe.hset(format!("{prefix}:markers:{v}:data"), format!("x{i}"), "{}")
            .ignore();
        if i % 10_000 == 9_999 {
            let _: () = pipe.query_async(&mut con).await.unwrap();
            pipe = redis::pipe();
        }
    }
    let _: () = pipe.query_async(&mut con).await.unwrap();
    let two = [marker(v, 1.0, "a"), marker(v, 2.0, "b")];
    let err = s.insert(v, &two).await.unwrap_err();
    assert!(err.to_string().contains("exceed"), "{err}");
    let zcard: usize = redis::cmd("ZCARD")
        .arg(format!("{prefix}:markers:{v}:index"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(zcard, 0, "nothing half-written");
    assert_eq!(s.version(v).await.unwrap(), ChangeId::ZERO);
    s.insert(v, &two[..1]).await.unwrap();
    cleanup(&prefix).await;
}
