//! The control plane over a real gRPC socket with Redis and NATS: sessions,
//! caps, expiry and reaping, feedback decisions, bad reports, admin auth.

use std::time::Duration;

use futures::StreamExt;
use stream_proto::control::v1 as pb;
use stream_proto::control::v1::control_plane_client::ControlPlaneClient;
use stream_testkit::samples;
use stream_tests::{Stack, StackOptions, ADMIN_TOKEN, TOKEN_SECRET};
use tonic::{Code, Request};

fn open(video: &str, kind: pb::ClientKind, max_height: u32, tput: f64) -> pb::OpenSessionRequest {
    pb::OpenSessionRequest {
        video_id: video.into(),
        client_kind: kind as i32,
        capabilities: Some(pb::Capabilities {
            max_height,
            codecs: vec!["avc1".into(), "mp4a".into()],
            initial_throughput_bps: tput,
        }),
    }
}

fn report(session: &str, seq: u64, buffer_ms: f64, tput: f64, rendition: &str) -> pb::BufferReport {
    pb::BufferReport {
        session_id: session.into(),
        sequence: seq,
        buffer_level_ms: buffer_ms,
        throughput_bps: tput,
        current_rendition: rendition.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_feedback_caps_expiry_and_auth() {
    let stack = Stack::start(StackOptions {
        ladder: Some("480:1400k,360:800k,240:400k".into()),
        // ttl 1.5 s, heartbeat 400 ms, 50 sessions, 3 per video
        sessions: Some((1_500, 400, 50, 3)),
        ..Default::default()
    })
    .await
    .unwrap();
    let bbb = stack.ingest_ready(samples::BIG_BUCK_BUNNY).await.unwrap();
    let bikes = stack.ingest_ready(samples::BIKES).await.unwrap();
    let mut client = ControlPlaneClient::connect(stack.control.clone())
        .await
        .unwrap();

    // grpc.health.v1 reports SERVING for the control plane.
    let channel = tonic::transport::Channel::from_shared(stack.control.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let h = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "streaming.control.v1.ControlPlane".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        h.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    // ListVideos pages newest first, without overlap.
    let page1 = client
        .list_videos(pb::ListVideosRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page1.videos.len(), 1);
    assert_eq!(page1.videos[0].id, bikes);
    let page2 = client
        .list_videos(pb::ListVideosRequest {
            page_size: 1,
            page_token: page1.next_page_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page2.videos[0].id, bbb);
    assert!(page2.next_page_token.is_empty());
    let v = client
        .get_video(pb::GetVideoRequest {
            video_id: bbb.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.status, pb::VideoStatus::Ready as i32);
    assert_eq!(v.playback_url, format!("/hls/{bbb}/master.m3u8"));
    assert!((v.duration_s - 5.28).abs() < 0.05);
    let e = client
        .list_videos(pb::ListVideosRequest {
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Bad requests.
    let e = client
        .open_session(open("nope", pb::ClientKind::Hls, 0, 0.0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = client
        .open_session(open(
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            pb::ClientKind::Hls,
            0,
            0.0,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = client
        .open_session(open(&bbb, pb::ClientKind::Unspecified, 0, 0.0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = client
        .open_session(open(&bbb, pb::ClientKind::Hls, 0, f64::NAN))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Open: token, URLs, initial rendition within caps and the estimate.
    let s = client
        .open_session(open(&bbb, pb::ClientKind::Hls, 360, 50e6))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.hls_url, format!("http://edge.test/hls/{bbb}/master.m3u8"));
    assert_eq!(s.tcp_endpoint, "edge.test:9000");
    assert_eq!((s.heartbeat_interval_ms, s.session_ttl_ms), (400, 1_500));
    assert_eq!(
        s.initial_rendition.as_ref().unwrap().name,
        "360p",
        "capped at 360p"
    );
    let claims = stream_control::auth::TokenSigner::new(TOKEN_SECRET.as_bytes(), 60)
        .verify(&s.playback_token)
        .unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.vid.as_str()),
        (s.session_id.as_str(), bbb.as_str())
    );
    let low = client
        .open_session(open(&bbb, pb::ClientKind::Hls, 0, 300_000.0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(low.initial_rendition.unwrap().name, "240p");

    // Feedback: decisions for good reports; stale, duplicate and NaN ones
    // are ignored and counted; never above the capability cap.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut decisions = client
        .feedback(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut answered = Vec::new();
    let mut seq = 0;
    for i in 0..6u64 {
        seq += 1;
        tx.send(report(
            &s.session_id,
            seq,
            8_000.0 + 2_000.0 * i as f64,
            20e6,
            "360p",
        ))
        .await
        .unwrap();
        let d = tokio::time::timeout(Duration::from_secs(5), decisions.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(d.rendition.as_ref().unwrap().index <= 1, "{d:?}");
        answered.push(d.sequence);
    }
    assert_eq!(answered, vec![1, 2, 3, 4, 5, 6]);
    for bad in [
        report(&s.session_id, 3, 8_000.0, 20e6, "360p"), // stale
        report(&s.session_id, 6, 8_000.0, 20e6, "360p"), // duplicate
        report(&s.session_id, 7, f64::NAN, 20e6, "360p"), // NaN
        report(&s.session_id, 8, 8_000.0, -1.0, "360p"), // negative
        report(&s.session_id, 9, 1e12, 20e6, "360p"),    // absurd
    ] {
        tx.send(bad).await.unwrap();
    }
    tx.send(report(&s.session_id, 10, 12_000.0, 20e6, "360p"))
        .await
        .unwrap();
    let d = tokio::time::timeout(Duration::from_secs(5), decisions.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(d.sequence, 10, "bad reports got no decision");
    // Missing reports fall back safely: silence for 3 heartbeats → lowest rung.
    let d = tokio::time::timeout(Duration::from_secs(5), decisions.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(d.reason, pb::DecisionReason::NoFeedback as i32);
    assert_eq!(d.rendition.unwrap().index, 0);
    drop(tx);
    while decisions.next().await.is_some() {}

    // Admin: auth required; counts visible.
    let e = client
        .list_sessions(pb::ListSessionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut wrong = Request::new(pb::ListSessionsRequest::default());
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(
        client.list_sessions(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut admin = Request::new(pb::ListSessionsRequest::default());
    admin.metadata_mut().insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    let list = client.list_sessions(admin).await.unwrap().into_inner();
    let mine = list
        .sessions
        .iter()
        .find(|x| x.session_id == s.session_id)
        .expect("listed");
    assert_eq!(
        (mine.reports_accepted, mine.reports_rejected),
        (7, 5),
        "{mine:?}"
    );

    // Per-video cap: 2 open on bbb, a third fits, a fourth does not.
    client
        .open_session(open(&bbb, pb::ClientKind::Hls, 0, 0.0))
        .await
        .unwrap();
    let e = client
        .open_session(open(&bbb, pb::ClientKind::Hls, 0, 0.0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    // ... but another video has room, and a session can switch to it.
    let sel = client
        .select_video(pb::SelectVideoRequest {
            session_id: low.session_id.clone(),
            video_id: bikes.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        sel.hls_url,
        format!("http://edge.test/hls/{bikes}/master.m3u8")
    );

    // Expiry and reaping: without heartbeats a session expires and the
    // reaper announces it on NATS; heartbeats keep another alive.
    let mut expired = stack
        .nats
        .subscribe(format!("{}.session.*.expired", stack.prefix))
        .await
        .unwrap();
    let kept = client
        .open_session(open(&bikes, pb::ClientKind::Tcp, 0, 0.0))
        .await
        .unwrap()
        .into_inner();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    let mut seen = std::collections::HashSet::new();
    while tokio::time::Instant::now() < deadline {
        client
            .heartbeat(pb::HeartbeatRequest {
                session_id: kept.session_id.clone(),
            })
            .await
            .unwrap();
        if let Ok(Some(msg)) =
            tokio::time::timeout(Duration::from_millis(300), expired.next()).await
        {
            let ev = <pb::SessionEvent as prost_decode::Message>::decode(msg.payload).unwrap();
            assert_eq!(ev.kind, "expired");
            seen.insert(ev.session_id);
        }
    }
    assert!(
        seen.contains(&s.session_id) && seen.contains(&low.session_id),
        "{seen:?}"
    );
    assert!(!seen.contains(&kept.session_id));
    let e = client
        .heartbeat(pb::HeartbeatRequest {
            session_id: s.session_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // TCP sessions' decisions are published on NATS for the edge.
    let mut tcp_decisions = stack
        .nats
        .subscribe(format!(
            "{}.session.{}.decision",
            stack.prefix, kept.session_id
        ))
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut decisions = client
        .feedback(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(report(&kept.session_id, 1, 4_000.0, 2e6, "240p"))
        .await
        .unwrap();
    let on_stream = decisions.next().await.unwrap().unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(3), tcp_decisions.next())
        .await
        .unwrap()
        .unwrap();
    let on_nats = <pb::QualityDecision as prost_decode::Message>::decode(msg.payload).unwrap();
    assert_eq!(on_nats.sequence, on_stream.sequence);
    drop(tx);

    // Close: gone at once; an unknown session's feedback stream is refused.
    client
        .close_session(pb::CloseSessionRequest {
            session_id: kept.session_id.clone(),
        })
        .await
        .unwrap();
    let e = client
        .heartbeat(pb::HeartbeatRequest {
            session_id: kept.session_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut decisions = client
        .feedback(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(report(&kept.session_id, 1, 4_000.0, 2e6, "240p"))
        .await
        .unwrap();
    let e = decisions.next().await.unwrap().unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    stack.stop().await;
}

mod prost_decode {
    pub use stream_proto::prost::Message;
}
