//! The native TCP stream end to end: `streamctl play` against a real edge
//! (VOD played live and a live channel: frames decode, audio in sync),
//! the handshake and its typed refusals, hostile client bytes, the
//! connection cap, a rendition switch exactly at a keyframe after the
//! control plane's decision, and a slow reader that skips without holding
//! up a fast one.

use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use prost::Message;
use stream_native::frame::{Flags, Frame, FrameDecoder, FrameKind, VERSION};
use stream_native::{Control, ErrorCode};
use stream_proto::control::v1 as pb;
use stream_proto::control::v1::control_plane_client::ControlPlaneClient;
use stream_tests::{Stack, StackOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

const LADDER: &str = "480:1400k,240:400k";

async fn stack(opts: StackOptions) -> Stack {
    Stack::start(StackOptions {
        ladder: Some(LADDER.into()),
        ..opts
    })
    .await
    .expect("stack starts")
}

/// `OpenSession` for a TCP client: (session id, token).
async fn open_session(stack: &Stack, video: &str) -> (String, String) {
    let mut client = ControlPlaneClient::connect(stack.control.clone())
        .await
        .unwrap();
    let r = client
        .open_session(pb::OpenSessionRequest {
            video_id: video.into(),
            client_kind: pb::ClientKind::Tcp as i32,
            capabilities: None,
        })
        .await
        .expect("OpenSession")
        .into_inner();
    (r.session_id, r.playback_token)
}

type Reader = FramedRead<tokio::net::tcp::OwnedReadHalf, FrameDecoder>;

/// Connect and say hello; the reader and the first frame's message.
async fn hello(
    stack: &Stack,
    token: &str,
    id: &str,
    rendition: Option<&str>,
) -> (Reader, tokio::net::tcp::OwnedWriteHalf, Control) {
    let s = TcpStream::connect(stack.native).await.unwrap();
    let (rd, mut wr) = s.into_split();
    let hello = Control::Hello {
        version: VERSION,
        token: token.into(),
        id: id.into(),
        rendition: rendition.map(Into::into),
    };
    wr.write_all(&hello.to_frame().encode()).await.unwrap();
    let mut reader = FramedRead::new(rd, FrameDecoder::default());
    let first = tokio::time::timeout(Duration::from_secs(10), reader.next())
        .await
        .expect("an answer to the hello")
        .expect("a frame")
        .expect("a good frame");
    (reader, wr, Control::from_frame(&first).unwrap())
}

async fn next_frame(reader: &mut Reader, within: Duration) -> Option<Frame> {
    match tokio::time::timeout(within, reader.next()).await {
        Ok(Some(Ok(f))) => Some(f),
        _ => None,
    }
}

fn play_args(stack: &Stack, id: &str, seconds: f64) -> streamctl::play::Args {
    streamctl::play::Args {
        url: format!("tcp://{}/{id}", stack.native),
        knsock: None,
        knsock_index: 0,
        knsock_audio: None,
        knsock_control: None,
        control: stack.control.clone(),
        token: None,
        rendition: None,
        jitter_ms: 500,
        seconds: Some(seconds),
        no_decode: false,
        output: None,
        stats_ms: 0,
        report_ms: 500,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vod_plays_over_the_native_stream_and_refusals_are_typed() {
    let stack = stack(StackOptions::default()).await;
    let video = stack.ingest_ready("bigbuckbunny.mp4").await.unwrap();

    // streamctl play: decodes, audio in sync, no stall, written file probes.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.h264");
    let mut args = play_args(&stack, &video, 6.0);
    args.output = Some(out.clone());
    let s = streamctl::play::play(&args).await.expect("play");
    println!("summary: {}", serde_json::to_string(&s).unwrap());
    assert!(s.frames >= 100, "frames {}", s.frames);
    assert!(s.fps > 20.0 && s.fps < 30.0, "fps {}", s.fps);
    assert_eq!(s.decode_errors, 0);
    assert!(
        s.decoded_frames + 5 >= s.frames,
        "decoded {} of {}",
        s.decoded_frames,
        s.frames
    );
    assert!(s.width > 0 && s.height > 0);
    assert!(s.audio_frames > 100, "audio frames {}", s.audio_frames);
    // Audio waits for its video at the edge, at most 0.5 s (AUDIO_HOLD).
    assert!(s.av_sync_ms_max < 600.0, "A/V skew {} ms", s.av_sync_ms_max);
    assert_eq!(s.stalls, 0);
    assert_eq!(s.resyncs, 0);
    assert!(s.markers >= 1, "the marker snapshot frame");
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success() && text.starts_with("h264,"),
        "ffprobe: {text} {}",
        String::from_utf8_lossy(&probe.stderr)
    );

    // Refusals: a bad token, a token for another video, a wrong version,
    // garbage instead of a hello.
    let (_, token) = open_session(&stack, &video).await;
    let (_, _, answer) = hello(&stack, "not-a-token", &video, None).await;
    assert!(
        matches!(
            answer,
            Control::Error {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{answer:?}"
    );
    let other = ulid::Ulid::new().to_string();
    let (_, _, answer) = hello(&stack, &token, &other, None).await;
    assert!(
        matches!(&answer, Control::Error { code: ErrorCode::Unauthorized, reason } if reason.contains("token is for video")),
        "{answer:?}"
    );
    let (_, _, answer) = hello(&stack, &token, &video, Some("9999p")).await;
    assert!(
        matches!(
            answer,
            Control::Error {
                code: ErrorCode::BadRequest,
                ..
            }
        ),
        "{answer:?}"
    );

    let mut s = TcpStream::connect(stack.native).await.unwrap();
    let mut garbage = vec![0u8; 1 << 20];
    for (i, b) in garbage.iter_mut().enumerate() {
        *b = (i * 7919 % 251) as u8;
    }
    let _ = s.write_all(&garbage).await;
    // No hello can be found: the handshake times out with a typed error.
    let mut buf = BytesMut::new();
    let mut dec = FrameDecoder::default();
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(f) = dec.decode_frame(&mut buf).unwrap() {
                return Some(f);
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("an answer within the handshake timeout")
    .expect("an error frame");
    assert!(
        matches!(
            Control::from_frame(&answer),
            Ok(Control::Error {
                code: ErrorCode::BadRequest,
                ..
            })
        ),
        "{answer:?}"
    );

    // The edge still serves after all that.
    let (_, token) = open_session(&stack, &video).await;
    let (mut reader, _wr, welcome) = hello(&stack, &token, &video, None).await;
    assert!(matches!(welcome, Control::Welcome { .. }), "{welcome:?}");
    let mut saw_video = false;
    for _ in 0..50 {
        if let Some(f) = next_frame(&mut reader, Duration::from_secs(5)).await {
            saw_video |= f.kind == FrameKind::Video;
        }
    }
    assert!(saw_video);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switches_rendition_exactly_at_a_keyframe_after_a_decision() {
    let stack = stack(StackOptions::default()).await;
    let video = stack.ingest_ready("bigbuckbunny.mp4").await.unwrap();
    let (session, token) = open_session(&stack, &video).await;
    let (mut reader, _wr, welcome) = hello(&stack, &token, &video, Some("240p")).await;
    let Control::Welcome {
        renditions,
        rendition,
        ..
    } = welcome
    else {
        panic!("{welcome:?}")
    };
    assert_eq!(renditions[usize::from(rendition)].name, "240p");
    let high = renditions.iter().position(|r| r.name == "480p").unwrap() as u8;

    // A second of 240p, then the control plane's decision for 480p.
    let mut old = Vec::new();
    let t0 = tokio::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(1) {
        let f = next_frame(&mut reader, Duration::from_secs(5))
            .await
            .expect("frames");
        if f.kind == FrameKind::Video {
            assert_eq!(f.rendition, rendition);
            old.push(f);
        }
    }
    assert!(old[0].is_keyframe(), "a session starts at a keyframe");
    let decision = pb::QualityDecision {
        session_id: session.clone(),
        sequence: 1,
        rendition: Some(pb::RenditionChoice {
            name: "480p".into(),
            index: 1,
            bandwidth_bps: 1_400_000,
        }),
        reason: pb::DecisionReason::ThroughputPlan as i32,
        detail: "test".into(),
        decided_at: None,
    };
    let subject = stream_bus::Subjects::new(&stack.prefix).session_decision(&session);
    stack
        .nats
        .publish(subject, decision.encode_to_vec().into())
        .await
        .unwrap();
    stack.nats.flush().await.unwrap();

    // Frames keep coming in 240p until a 480p keyframe flagged as the
    // switch, later than every 240p frame, with no gap; then only 480p.
    let switch = loop {
        let f = next_frame(&mut reader, Duration::from_secs(5))
            .await
            .expect("frames until the switch");
        if f.kind != FrameKind::Video {
            continue;
        }
        if f.rendition == rendition {
            assert!(!f.flags.contains(Flags::RENDITION_SWITCH));
            old.push(f);
            assert!(
                t0.elapsed() < Duration::from_secs(8),
                "no switch within a segment or two"
            );
            continue;
        }
        break f;
    };
    assert_eq!(switch.rendition, high);
    assert!(switch.is_keyframe(), "the switch is at a keyframe");
    assert!(switch.flags.contains(Flags::RENDITION_SWITCH));
    let max_old = old.iter().map(|f| f.pts).max().unwrap();
    let frame = i64::from(old[0].duration);
    assert!(
        switch.pts > max_old,
        "switch {} after old {}",
        switch.pts,
        max_old
    );
    assert!(
        switch.pts - max_old <= frame + 1,
        "no gap: switch {} old {} frame {}",
        switch.pts,
        max_old,
        frame
    );
    for _ in 0..100 {
        let f = next_frame(&mut reader, Duration::from_secs(5))
            .await
            .expect("frames after the switch");
        if f.kind == FrameKind::Video {
            assert_eq!(f.rendition, high);
            assert!(!f.flags.contains(Flags::RENDITION_SWITCH));
        }
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_reader_skips_to_a_keyframe_without_stalling_a_fast_one_and_the_cap_holds() {
    let stack = stack(StackOptions {
        native_max_connections: Some(2),
        ..Default::default()
    })
    .await;
    let video = stack.ingest_ready("bigbuckbunny.mp4").await.unwrap();
    let (_, token_slow) = open_session(&stack, &video).await;
    let (_, token_fast) = open_session(&stack, &video).await;

    // The slow reader: a small receive buffer, 8 KiB every 200 ms (40 KB/s,
    // a quarter of the 480p rendition's bitrate).
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(8 * 1024).unwrap();
    let mut slow = sock.connect(stack.native).await.unwrap();
    let slow_hello = Control::Hello {
        version: VERSION,
        token: token_slow,
        id: video.clone(),
        rendition: Some("480p".into()),
    };
    slow.write_all(&slow_hello.to_frame().encode())
        .await
        .unwrap();
    let slow_task = tokio::spawn(async move {
        let mut dec = FrameDecoder::default();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let t0 = tokio::time::Instant::now();
        while t0.elapsed() < Duration::from_secs(25) {
            let mut chunk = vec![0u8; 8 * 1024];
            match tokio::time::timeout(Duration::from_secs(5), slow.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            }
            while let Some(f) = dec.decode_frame(&mut buf).unwrap() {
                frames.push(f);
            }
            // Slow for 20 s, then as fast as it can (to read what the edge
            // sent after skipping, behind what the kernel buffered).
            if t0.elapsed() < Duration::from_secs(20) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        frames
    });

    // The fast reader gets real time meanwhile.
    let (mut fast, _wr, welcome) = hello(&stack, &token_fast, &video, Some("480p")).await;
    assert!(matches!(welcome, Control::Welcome { .. }), "{welcome:?}");
    // A third connection is over the cap of 2.
    let (_, token3) = open_session(&stack, &video).await;
    let (_, _, busy) = hello(&stack, &token3, &video, None).await;
    assert!(
        matches!(
            busy,
            Control::Error {
                code: ErrorCode::Busy,
                ..
            }
        ),
        "{busy:?}"
    );

    let t0 = tokio::time::Instant::now();
    let mut fast_video = 0u32;
    let mut first_pts = None;
    let mut last_pts = 0;
    while t0.elapsed() < Duration::from_secs(20) {
        let f = next_frame(&mut fast, Duration::from_secs(2))
            .await
            .expect("the fast reader never waits 2 s");
        if f.kind == FrameKind::Video {
            fast_video += 1;
            first_pts.get_or_insert(f.pts);
            last_pts = f.pts;
            assert!(
                !f.flags.contains(Flags::DISCONTINUITY) || fast_video == 1,
                "the fast reader skips nothing"
            );
        }
    }
    let media_s = (last_pts - first_pts.unwrap()) as f64 / 90_000.0;
    assert!(
        media_s > 17.0,
        "fast reader got {media_s:.1} s of media in 20 s ({fast_video} frames)"
    );
    assert!(
        fast_video >= 450,
        "fast reader got {fast_video} video frames in 20 s at 25 fps"
    );

    let slow_frames = slow_task.await.unwrap();
    assert!(matches!(
        Control::from_frame(&slow_frames[0]),
        Ok(Control::Welcome { .. })
    ));
    let skipped = slow_frames
        .iter()
        .skip(1)
        .filter(|f| f.kind == FrameKind::Video)
        .skip(1)
        .find(|f| f.flags.contains(Flags::DISCONTINUITY));
    let n_video = slow_frames
        .iter()
        .filter(|f| f.kind == FrameKind::Video)
        .count();
    let last = slow_frames
        .last()
        .map(|f| (f.kind, Control::from_frame(f).ok()));
    let skipped = skipped.unwrap_or_else(|| panic!("the slow reader skipped ahead (a discontinuity): {n_video} video frames, last {last:?}"));
    assert!(skipped.is_keyframe(), "it resumes at a keyframe");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_channel_plays_over_the_native_stream() {
    let stack = stack(StackOptions::default()).await;
    use stream_bus::media;
    let id = stack
        .start_channel(
            "native generator",
            media::live_job::Source::Generator(media::LiveGenerator {
                event_interval_s: 3600.0,
                width: 640,
                height: 360,
            }),
            media::LiveLatency::Low,
        )
        .await
        .unwrap();
    stack.wait_live(&id, Duration::from_secs(60)).await.unwrap();
    let mut args = play_args(&stack, &id, 6.0);
    args.jitter_ms = 300;
    let s = streamctl::play::play(&args).await.expect("play");
    println!("summary: {}", serde_json::to_string(&s).unwrap());
    assert!(s.frames >= 80, "frames {}", s.frames);
    assert_eq!(s.decode_errors, 0);
    assert!(s.decoded_frames + 5 >= s.frames);
    assert!(s.audio_frames > 50, "audio {}", s.audio_frames);
    assert!(s.av_sync_ms_max < 600.0, "A/V skew {} ms", s.av_sync_ms_max);
    assert_eq!(s.resyncs, 0);
    stack.stop().await;
}
