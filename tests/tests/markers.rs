//! The marker service in the whole stack (real NATS and Redis): validation,
//! range queries and ordering, deletes, the SSE feed resuming after a
//! disconnect with no loss or duplicates, NATS change events and the NATS
//! producer subject.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use stream_tests::{Stack, StackOptions};

const T: Duration = Duration::from_secs(10);

async fn range(stack: &Stack, id: &str, query: &str) -> Value {
    let r = stack
        .http
        .get(format!("{}/v1/videos/{id}/markers{query}", stack.marker))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn labels(v: &Value) -> Vec<String> {
    v["markers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["label"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_and_nothing_half_written() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let id = stack.register_video(10.0).await.unwrap();
    let ok = json!({"kind": "event", "label": "ok", "media_time": 1.0});

    // Unknown video (well-formed and malformed ids).
    let unknown = ulid::Ulid::new().to_string();
    assert_eq!(
        stack.post_markers(&unknown, &ok).await.unwrap().status(),
        404
    );
    assert_eq!(stack.post_markers("nope", &ok).await.unwrap().status(), 404);
    let r = stack
        .http
        .get(format!("{}/v1/videos/{unknown}/markers", stack.marker))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let cases = [
        (
            json!({"kind": "event", "label": "x", "media_time": -0.5}),
            "negative",
        ),
        (
            json!({"kind": "event", "label": "x", "media_time": 10.5}),
            "beyond",
        ),
        (
            json!({"kind": "event", "label": "x", "media_time": 9.0, "duration": 2.0}),
            "beyond",
        ),
        (
            json!({"kind": "event", "label": "x".repeat(201), "media_time": 1.0}),
            "label",
        ),
        (
            json!({"kind": "event", "label": "x", "media_time": 1.0, "data": {"b": "y".repeat(5000)}}),
            "data",
        ),
        (
            json!({"kind": "Bad Kind", "label": "x", "media_time": 1.0}),
            "kind",
        ),
    ];
    for (body, reason) in cases {
        let r = stack.post_markers(&id, &body).await.unwrap();
        assert_eq!(r.status(), 422, "{body}");
        let e: Value = r.json().await.unwrap();
        assert!(
            e["error"].as_str().unwrap().contains(reason),
            "{e} lacks {reason}"
        );
    }
    // NaN is not JSON: a 400 with the parser's reason.
    let r = stack
        .http
        .post(format!("{}/v1/videos/{id}/markers", stack.marker))
        .header("content-type", "application/json")
        .body(r#"{"kind":"event","label":"x","media_time":NaN}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid JSON"));
    // Wrong type.
    let r = stack
        .post_markers(
            &id,
            &json!({"kind": "event", "label": "x", "media_time": "NaN"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A batch with one bad marker stores nothing.
    let batch = json!([ok, ok, {"kind": "event", "label": "late", "media_time": 11.0}]);
    let r = stack.post_markers(&id, &batch).await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("markers[2].media_time"));
    let all = range(&stack, &id, "").await;
    assert!(labels(&all).is_empty());
    assert_eq!(all["version"], "0-0");
    // Too many in one batch.
    let many: Vec<Value> = (0..1001).map(|_| ok.clone()).collect();
    assert_eq!(
        stack
            .post_markers(&id, &json!(many))
            .await
            .unwrap()
            .status(),
        422
    );
    assert_eq!(stack.post_markers(&id, &ok).await.unwrap().status(), 201);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_order_same_second_delete_and_nats_events() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let id = stack.register_video(60.0).await.unwrap();
    let mut changes = stack
        .nats
        .subscribe(format!("{}.markers.{id}.*", stack.prefix))
        .await
        .unwrap();
    let batch = json!([
        {"kind": "chapter", "label": "c", "media_time": 30.0, "duration": 10.0},
        {"kind": "event", "label": "a1", "media_time": 12.0},
        {"kind": "event", "label": "a2", "media_time": 12.0},
        {"kind": "event", "label": "b", "media_time": 12.5, "source_time": "2026-01-02T03:04:05Z", "data": {"team": "home"}},
    ]);
    let r = stack.post_markers(&id, &batch).await.unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["markers"].as_array().unwrap().len(), 4);

    let all = range(&stack, &id, "").await;
    assert_eq!(labels(&all), ["a1", "a2", "b", "c"]);
    assert_eq!(all["markers"][2]["data"]["team"], "home");
    assert_eq!(all["markers"][2]["source_time"], "2026-01-02T03:04:05Z");
    assert_eq!(
        labels(&range(&stack, &id, "?from=12&to=12.4").await),
        ["a1", "a2"]
    );
    assert_eq!(labels(&range(&stack, &id, "?from=13").await), ["c"]);
    let page = range(&stack, &id, "?limit=2").await;
    assert_eq!(labels(&page), ["a1", "a2"]);
    assert_eq!(page["truncated"], true);
    let r = stack
        .http
        .get(format!("{}/v1/videos/{id}/markers?from=abc", stack.marker))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // One NATS change event per created marker, with the marker.
    for _ in 0..4 {
        let msg = tokio::time::timeout(T, changes.next())
            .await
            .unwrap()
            .unwrap();
        assert!(msg.subject.ends_with(".created"), "{}", msg.subject);
        let c = stream_bus::decode_marker_change(&msg.payload).unwrap();
        assert_eq!(c.video_id, id);
        assert!(c.marker.is_some());
    }

    let a1 = all["markers"][0]["id"].as_str().unwrap();
    let url = format!("{}/v1/videos/{id}/markers/{a1}", stack.marker);
    assert_eq!(stack.http.delete(&url).send().await.unwrap().status(), 204);
    assert_eq!(stack.http.delete(&url).send().await.unwrap().status(), 404);
    assert_eq!(labels(&range(&stack, &id, "").await), ["a2", "b", "c"]);
    let msg = tokio::time::timeout(T, changes.next())
        .await
        .unwrap()
        .unwrap();
    assert!(msg.subject.ends_with(".deleted"));

    // Update.
    let b = all["markers"][2]["id"].as_str().unwrap();
    let r = stack
        .http
        .put(format!("{}/v1/videos/{id}/markers/{b}", stack.marker))
        .json(&json!({"kind": "event", "label": "b2", "media_time": 50.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = range(&stack, &id, "").await;
    assert_eq!(labels(&after), ["a2", "c", "b2"]);
    assert_eq!(
        after["markers"][2]["created_at"],
        all["markers"][2]["created_at"]
    );
    let r = stack
        .http
        .put(format!("{}/v1/videos/{id}/markers/{a1}", stack.marker))
        .json(&json!({"kind": "event", "label": "gone", "media_time": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_resumes_after_disconnect_without_loss_or_duplicates() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let id = stack.register_video(60.0).await.unwrap();
    let mut feed = stack.marker_events(&id, None).await.unwrap();
    for i in 0..3 {
        let body = json!({"kind": "event", "label": format!("m{i}"), "media_time": i as f64});
        assert_eq!(stack.post_markers(&id, &body).await.unwrap().status(), 201);
    }
    let e0 = feed.next(T).await.unwrap();
    let e1 = feed.next(T).await.unwrap();
    assert_eq!(e0.event, "created");
    let d0: Value = serde_json::from_str(&e0.data).unwrap();
    assert_eq!(d0["marker"]["label"], "m0");
    let d1: Value = serde_json::from_str(&e1.data).unwrap();
    assert_eq!(d1["marker"]["label"], "m1");
    drop(feed); // disconnect after two events (m2 was sent or not: must come again)

    // Changes while disconnected.
    let more = json!([
        {"kind": "event", "label": "m3", "media_time": 3.0},
        {"kind": "event", "label": "m4", "media_time": 4.0},
    ]);
    assert_eq!(stack.post_markers(&id, &more).await.unwrap().status(), 201);
    let m0 = d0["id"].as_str().unwrap();
    stack
        .http
        .delete(format!("{}/v1/videos/{id}/markers/{m0}", stack.marker))
        .send()
        .await
        .unwrap();

    let mut feed = stack
        .marker_events(&id, Some(e1.id.as_deref().unwrap()))
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        let e = feed.next(T).await.unwrap();
        let d: Value = serde_json::from_str(&e.data).unwrap();
        got.push(format!(
            "{} {}",
            e.event,
            d["marker"]["label"]
                .as_str()
                .unwrap_or(d["id"].as_str().unwrap())
        ));
    }
    assert_eq!(
        got,
        [
            "created m2",
            "created m3",
            "created m4",
            format!("deleted {m0}").as_str()
        ]
    );
    // Nothing more (no duplicates): the next event is a new change.
    let body = json!({"kind": "event", "label": "m5", "media_time": 5.0});
    stack.post_markers(&id, &body).await.unwrap();
    let e = feed.next(T).await.unwrap();
    assert!(e.data.contains("\"m5\""), "{e:?}");
    // A resume point that is not a change id is refused.
    assert!(stack.marker_events(&id, Some("garbage")).await.is_err());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_publish_batches_on_nats() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let id = stack.register_video(20.0).await.unwrap();
    let bus = stream_bus::Bus::connect(&stream_testkit::env::nats_url(), &stack.prefix)
        .await
        .unwrap();
    let mut feed = stack.marker_events(&id, None).await.unwrap();
    let input = |t: f64, label: &str| stream_bus::marker::MarkerInput {
        kind: "scene".into(),
        label: label.into(),
        media_time_s: t,
        duration_s: None,
        source_time_ms: None,
        data_json: Some(r#"{"score":0.8}"#.into()),
    };
    // An invalid batch (beyond the duration) is refused as a whole.
    bus.publish_marker_batch(
        &stream_bus::MarkerBatch {
            video_id: id.clone(),
            markers: vec![input(1.0, "bad-batch"), input(25.0, "late")],
        },
        None,
    )
    .await
    .unwrap();
    bus.publish_marker_batch(
        &stream_bus::MarkerBatch {
            video_id: id.clone(),
            markers: vec![input(4.0, "cut 1"), input(8.0, "cut 2")],
        },
        None,
    )
    .await
    .unwrap();
    let e = feed.next(T).await.unwrap();
    assert!(e.data.contains("cut 1"), "{e:?}");
    let e = feed.next(T).await.unwrap();
    assert!(e.data.contains("cut 2"), "{e:?}");
    let all = range(&stack, &id, "").await;
    assert_eq!(labels(&all), ["cut 1", "cut 2"]);
    assert_eq!(all["markers"][0]["data"]["score"], 0.8);
    stack.stop().await;
}

/// Ingest runs the scene detector and publishes `scene` markers through
/// the NATS producer subject; they arrive on the SSE feed and in the range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_publishes_scene_markers() {
    let stack = Stack::start(StackOptions {
        ladder: Some("240:400k".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut outcomes = stack.watch_outcomes().await.unwrap();
    let sample = stream_testkit::samples::path(stream_testkit::samples::BIKES);
    let id = stack
        .upload_ok(std::fs::read(sample).unwrap(), "bikes")
        .await
        .unwrap();
    let mut feed = stack.marker_events(&id, Some("0-0")).await.unwrap();
    assert!(matches!(
        outcomes.wait(&id, Duration::from_secs(240)).await.unwrap(),
        stream_tests::Outcome::Ready(_)
    ));
    // The clear cuts of bikes (libavfilter scdet agrees, see
    // stream-media's scene tests) at 1.2, 5.48, 7.48, 9.68 s.
    let wanted = [1.2, 5.48, 7.48, 9.68];
    let near = |times: &[f64], want: f64| times.iter().any(|t| (t - want).abs() <= 0.04 + 1e-6);
    let mut times = Vec::new();
    while !wanted.iter().all(|w| near(&times, *w)) {
        let e = feed
            .next(Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{e}; scene markers so far: {times:?}"));
        let d: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(d["marker"]["kind"], "scene");
        times.push(d["marker"]["media_time"].as_f64().unwrap());
    }
    let all = range(&stack, &id, "").await;
    assert!(all["markers"].as_array().unwrap().len() >= 4);
    stack.stop().await;
}
