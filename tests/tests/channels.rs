//! Live channels through the control plane (gRPC) and the edge's REST
//! facade: start-request validation, the running-channel cap, the catalogue
//! record and the queued `LiveJob`, stopping (no worker, a worker that
//! confirms, a worker that refuses, an ended channel).
//!
//! The stack's ingest runs no live worker: channels stay `queued`, and a
//! test plays the worker's side of a stop itself (it answers on
//! `P.live.<id>.stop` after applying `ready` to the catalogue). Should
//! ingest gain live workers that take jobs in test stacks, the `LiveJob`
//! reads here compete with them: keep the asserts on the catalogue record
//! and the gRPC / HTTP statuses.

use std::time::Duration;

use futures::StreamExt;
use stream_bus::{media, video_event::Kind};
use stream_proto::control::v1 as pb;
use stream_proto::control::v1::control_plane_client::ControlPlaneClient;
use stream_proto::control::v1::start_live_request::Source;
use stream_testkit::env;
use stream_tests::{Stack, StackOptions};
use tonic::transport::Channel;
use tonic::Code;

async fn client(stack: &Stack) -> ControlPlaneClient<Channel> {
    ControlPlaneClient::connect(stack.control.clone())
        .await
        .expect("control plane reachable")
}

fn start(source: Source) -> pb::StartLiveRequest {
    pb::StartLiveRequest {
        title: String::new(),
        source: Some(source),
        latency: pb::LiveLatency::Unspecified as i32,
        dvr_window_s: 0.0,
    }
}

fn generator() -> Source {
    Source::Generator(pb::GeneratorSource::default())
}

fn file(video_id: &str, looped: bool) -> Source {
    Source::File(pb::FileSource {
        video_id: video_id.into(),
        r#loop: looped,
    })
}

/// A video in the catalogue with an uploaded source object in the store
/// (no transcode).
async fn stored_video(stack: &Stack) -> String {
    let id = stack.register_video(10.0).await.unwrap();
    let dir = stack.media_store().join("uploads").join(&id);
    tokio::fs::create_dir_all(&dir).await.unwrap();
    tokio::fs::write(dir.join("source"), b"not really media")
        .await
        .unwrap();
    id
}

async fn catalog(stack: &Stack) -> stream_catalog::Catalog {
    stream_catalog::Catalog::connect(&env::redis_url(), &stack.prefix)
        .await
        .unwrap()
}

/// Play the live worker's side of one stop of `id`: apply `ready` to the
/// catalogue, then answer with `reply` ("" = stopped).
async fn fake_worker(stack: &Stack, id: &str, reply: &'static str) -> tokio::task::JoinHandle<()> {
    let subject = stream_bus::Subjects::new(&stack.prefix).live_stop(id);
    let mut sub = stack.nats.subscribe(subject).await.unwrap();
    stack.nats.flush().await.unwrap();
    let nats = stack.nats.clone();
    let catalog = catalog(stack).await;
    let id = id.to_string();
    tokio::spawn(async move {
        let msg = sub.next().await.expect("a stop request");
        if reply.is_empty() {
            let ready = stream_bus::event(
                &id,
                Kind::Ready(media::Ready {
                    master_playlist: "master.m3u8".into(),
                    duration_s: 12.0,
                    ..Default::default()
                }),
            );
            catalog.apply(&ready).await.unwrap();
        }
        nats.publish(msg.reply.expect("a request"), reply.into())
            .await
            .unwrap();
        nats.flush().await.unwrap();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_live_refuses_bad_requests() {
    let stack = Stack::start(StackOptions {
        live_channels: Some(0),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut control = client(&stack).await;
    let registered_without_source = stack.register_video(10.0).await.unwrap();
    let cases: Vec<(&str, pb::StartLiveRequest)> = vec![
        (
            "no source",
            pb::StartLiveRequest {
                source: None,
                ..start(generator())
            },
        ),
        (
            "file:// URL",
            start(Source::Pull(pb::PullSource {
                url: "file:///etc/passwd".into(),
            })),
        ),
        (
            "ftp URL",
            start(Source::Pull(pb::PullSource {
                url: "ftp://example.com/a.mp4".into(),
            })),
        ),
        (
            "unknown file video",
            start(file(&ulid::Ulid::new().to_string(), false)),
        ),
        ("file id not a ULID", start(file("../../etc", false))),
        (
            "video without a source object",
            start(file(&registered_without_source, true)),
        ),
        (
            "odd generator size",
            start(Source::Generator(pb::GeneratorSource {
                width: 641,
                height: 360,
                ..Default::default()
            })),
        ),
        (
            "generator interval",
            start(Source::Generator(pb::GeneratorSource {
                event_interval_s: 0.5,
                ..Default::default()
            })),
        ),
        (
            "dvr window too short",
            pb::StartLiveRequest {
                dvr_window_s: 30.0,
                ..start(generator())
            },
        ),
        (
            "dvr window too long",
            pb::StartLiveRequest {
                dvr_window_s: 90_000.0,
                ..start(generator())
            },
        ),
    ];
    for (what, req) in cases {
        let err = control.start_live(req).await.expect_err(what);
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
    }
    // Nothing was recorded.
    let list = control
        .list_channels(pb::ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.channels.is_empty(), "{list:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_channels_are_recorded_queued_and_capped() {
    let stack = Stack::start(StackOptions {
        live_max_channels: Some(2),
        // The test plays the live worker.
        live_channels: Some(0),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut control = client(&stack).await;
    let video = stored_video(&stack).await;

    let gen = control
        .start_live(pb::StartLiveRequest {
            title: "  test pattern ".into(),
            latency: pb::LiveLatency::Low as i32,
            dvr_window_s: 600.0,
            ..start(generator())
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gen.status, pb::VideoStatus::Queued as i32);
    assert_eq!(gen.title, "test pattern");
    assert_eq!(gen.source, "generator");
    assert_eq!(gen.latency, pb::LiveLatency::Low as i32);
    assert_eq!(gen.dvr_window_s, 600.0);
    assert_eq!(gen.playback_url, format!("/hls/{}/master.m3u8", gen.id));
    assert!(gen.started_at.is_none());

    let looped = control
        .start_live(start(file(&video, true)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (looped.source.as_str(), looped.r#loop, looped.dvr_window_s),
        ("file", true, 7_200.0)
    );

    // The cap counts running channels.
    let err = control.start_live(start(generator())).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    // Read back: GetChannel, ListChannels newest first, GetVideo says live.
    let got = control
        .get_channel(pb::GetChannelRequest {
            channel_id: gen.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, gen);
    let list = control
        .list_channels(pb::ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = list.channels.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [looped.id.as_str(), gen.id.as_str()]);
    let v = control
        .get_video(pb::GetVideoRequest {
            video_id: gen.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(v.live);
    let err = control
        .get_channel(pb::GetChannelRequest {
            channel_id: video.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "a plain video is no channel");

    // Both jobs are on the live work queue.
    let bus = stream_bus::Bus::connect(&env::nats_url(), &stack.prefix)
        .await
        .unwrap();
    let consumer = bus.live_job_consumer().await.unwrap();
    let mut jobs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while jobs.len() < 2 && tokio::time::Instant::now() < deadline {
        let mut batch = consumer
            .batch()
            .max_messages(2)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .unwrap();
        while let Some(msg) = batch.next().await {
            let msg = msg.unwrap();
            jobs.push(stream_bus::decode_live_job(&msg.payload).unwrap());
            msg.ack().await.unwrap();
        }
    }
    jobs.sort_by(|a, b| a.video_id.cmp(&b.video_id));
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(jobs[0].video_id, gen.id);
    assert_eq!(jobs[0].latency, media::LiveLatency::Low as i32);
    assert_eq!(jobs[0].dvr_window_s, 600.0);
    assert!(matches!(
        jobs[0].source,
        Some(media::live_job::Source::Generator(_))
    ));
    assert_eq!(jobs[1].video_id, looped.id);
    match &jobs[1].source {
        Some(media::live_job::Source::File(f)) => {
            assert_eq!(f.object_key, format!("uploads/{video}/source"));
            assert!(f.r#loop);
        }
        other => panic!("{other:?}"),
    }

    // No worker runs them: stopping is UNAVAILABLE and changes nothing.
    let err = control
        .stop_live(pb::StopLiveRequest {
            channel_id: gen.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("no worker"), "{err:?}");

    // A worker that confirms: the channel comes back ready and frees its
    // slot; stopping it again is FAILED_PRECONDITION.
    let worker = fake_worker(&stack, &gen.id, "").await;
    let stopped = control
        .stop_live(pb::StopLiveRequest {
            channel_id: gen.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    worker.await.unwrap();
    assert_eq!(stopped.status, pb::VideoStatus::Ready as i32);
    let err = control
        .stop_live(pb::StopLiveRequest {
            channel_id: gen.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let again = control.start_live(start(generator())).await.unwrap();
    assert_eq!(again.into_inner().status, pb::VideoStatus::Queued as i32);

    // A worker that refuses: ABORTED with its reason.
    let worker = fake_worker(&stack, &looped.id, "encoder stuck").await;
    let err = control
        .stop_live(pb::StopLiveRequest {
            channel_id: looped.id.clone(),
        })
        .await
        .unwrap_err();
    worker.await.unwrap();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    assert!(err.message().contains("encoder stuck"), "{err:?}");

    for (id, code) in [
        (ulid::Ulid::new().to_string(), Code::NotFound),
        (video.clone(), Code::NotFound),
        ("nope".to_string(), Code::InvalidArgument),
    ] {
        let err = control
            .stop_live(pb::StopLiveRequest { channel_id: id })
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_facade_round_trip() {
    let stack = Stack::start(StackOptions {
        live_max_channels: Some(1),
        // The test plays the live worker.
        live_channels: Some(0),
        ..Default::default()
    })
    .await
    .unwrap();
    let http = &stack.http;
    let channels = format!("{}/api/v1/channels", stack.edge);

    let post = |body: serde_json::Value| http.post(&channels).json(&body).send();
    let resp = post(serde_json::json!({
        "title": "pattern",
        "source": {"generator": {}},
        "latency": "low",
        "dvr_window_s": 120,
    }))
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    let created: serde_json::Value = resp.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["status"], "queued");
    assert_eq!(created["latency"], "low");
    assert_eq!(created["dvr_window_s"], 120.0);
    assert_eq!(created["source"], "generator");
    assert_eq!(created["playback_url"], format!("/hls/{id}/master.m3u8"));

    // Bad requests are 400 with a reason; over the cap 429.
    for bad in [
        serde_json::json!({"source": {"pull": {"url": "gopher://example.com/x"}}}),
        serde_json::json!({"source": {"generator": {}}, "latency": "instant"}),
        serde_json::json!({"source": {"generator": {}}, "dvr_window_s": 10}),
        serde_json::json!({"source": {"file": {"video_id": ulid::Ulid::new().to_string()}}}),
        serde_json::json!({"title": "no source"}),
    ] {
        let resp = post(bad.clone()).await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    let resp = http
        .post(&channels)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = post(serde_json::json!({"source": {"generator": {}}}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);

    // Listed, readable, and flagged live among the videos.
    let list: serde_json::Value = http
        .get(&channels)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["channels"][0]["id"], id.as_str());
    let resp = http.get(format!("{channels}/{id}")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let one: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(one, created);
    let resp = http
        .get(format!("{channels}/{}", ulid::Ulid::new()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let videos: serde_json::Value = stack
        .edge_get("/api/v1/videos")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let v = &videos["videos"][0];
    assert_eq!(
        (v["id"].as_str(), v["live"].as_bool()),
        (Some(id.as_str()), Some(true))
    );

    // DELETE: no worker 503, a worker that stops it 200 (ready), then 409.
    let resp = http
        .delete(format!("{channels}/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let worker = fake_worker(&stack, &id, "").await;
    let resp = http
        .delete(format!("{channels}/{id}"))
        .send()
        .await
        .unwrap();
    worker.await.unwrap();
    assert_eq!(resp.status(), 200);
    let stopped: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(stopped["status"], "ready");
    let resp = http
        .delete(format!("{channels}/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let resp = http
        .delete(format!("{channels}/{}", ulid::Ulid::new()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // The slot is free again.
    let resp = post(serde_json::json!({"source": {"generator": {}}}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    stack.stop().await;
}
