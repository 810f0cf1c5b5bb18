//! Live channels through the whole stack: a LiveJob on the live work
//! queue → ingest runs the channel → LL-HLS at the edge (valid playlists,
//! blocking reload, preload-hinted parts) → stop → VOD that decodes whole.

use std::time::{Duration, Instant};

use futures::StreamExt;
use stream_bus::{media, video_event::Kind, Bus};
use stream_hls::live::{LiveConfig, LivePlaylist};
use stream_testkit::samples;
use stream_tests::{Outcome, Stack, StackOptions};

async fn start(
    stack: &Stack,
    source: media::live_job::Source,
    latency: media::LiveLatency,
) -> (Bus, String) {
    let bus = Bus::connect(&stream_testkit::env::nats_url(), &stack.prefix)
        .await
        .unwrap();
    let id = stack
        .start_channel("test channel", source, latency)
        .await
        .unwrap();
    (bus, id)
}

async fn wait_live(stack: &Stack, id: &str) {
    stack.wait_live(id, Duration::from_secs(60)).await.unwrap();
}

async fn playlist(stack: &Stack, id: &str, track: &str, query: &str) -> (u16, String) {
    let resp = stack
        .edge_get(&format!("/hls/{id}/{track}/index.m3u8{query}"))
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_channel_serves_ll_hls_with_blocking_reload_and_becomes_vod() {
    let stack = Stack::start(StackOptions {
        ladder: Some("360:800k,240:400k".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut outcomes = stack.watch_outcomes().await.unwrap();
    let (bus, id) = start(
        &stack,
        media::live_job::Source::Generator(media::LiveGenerator {
            event_interval_s: 2.0,
            width: 640,
            height: 360,
        }),
        media::LiveLatency::Low,
    )
    .await;
    wait_live(&stack, &id).await;
    // Let a few segments accumulate.
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Playlists are valid LL-HLS in every rendition.
    for track in ["360p", "240p", "audio"] {
        let (status, text) = playlist(&stack, &id, track, "").await;
        assert_eq!(status, 200, "{track}");
        for tag in [
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES",
            "#EXT-X-PART-INF:PART-TARGET=",
            "#EXT-X-PART:",
            "INDEPENDENT=YES",
            "#EXT-X-PRELOAD-HINT:TYPE=PART",
            "#EXT-X-RENDITION-REPORT:",
            "#EXT-X-PROGRAM-DATE-TIME:",
            "#EXT-X-MAP:URI=\"init.mp4\"",
        ] {
            assert!(text.contains(tag), "{track} lacks {tag}:\n{text}");
        }
        let pl = LivePlaylist::parse(&text, LiveConfig::for_reading()).unwrap();
        // PART-TARGET ≥ every part; parts sum to their segment within a frame.
        pl.check(0.04)
            .unwrap_or_else(|e| panic!("{track}: {e:?}\n{text}"));
        assert!(
            pl.segments().count() >= 1,
            "{track}: no segment yet\n{text}"
        );
        // Media sequence numbers: segments are named by theirs.
        for (i, s) in pl.segments().enumerate() {
            assert_eq!(
                s.uri,
                format!("seg_{:05}.m4s", pl.media_sequence() + i as u64)
            );
        }
    }

    // Blocking reload: ask for the next part; the answer comes when it is
    // published (well before the 3-target-duration timeout).
    let (_, text) = playlist(&stack, &id, "360p", "").await;
    let pl = LivePlaylist::parse(&text, LiveConfig::for_reading()).unwrap();
    let last = pl.last_position().unwrap();
    let (msn, part) = (last.msn, last.part.map_or(0, |p| p + 1));
    let mut notes = stack
        .nats
        .subscribe(format!("{}.live.{id}.360p.part", stack.prefix))
        .await
        .unwrap();
    let asked = Instant::now();
    let (status, blocked) = playlist(
        &stack,
        &id,
        "360p",
        &format!("?_HLS_msn={msn}&_HLS_part={part}"),
    )
    .await;
    let answered = asked.elapsed();
    assert_eq!(status, 200);
    let after = LivePlaylist::parse(&blocked, LiveConfig::for_reading()).unwrap();
    let now = after.last_position().unwrap();
    assert!(
        (now.msn, now.part.map_or(-1, i64::from)) >= (msn, i64::from(part)) || now.msn > msn,
        "answered before the part existed: {now:?} for {msn}.{part}"
    );
    assert!(answered < Duration::from_secs(5), "held {answered:?}");
    // It was woken by a notification, not a timeout: one arrived meanwhile.
    assert!(
        tokio::time::timeout(Duration::from_millis(10), notes.next())
            .await
            .is_ok()
            || answered < Duration::from_secs(2)
    );

    // Beyond the next segment + 1: 400; malformed: 400.
    let (status, _) = playlist(&stack, &id, "360p", &format!("?_HLS_msn={}", now.msn + 5)).await;
    assert_eq!(status, 400);
    let (status, _) = playlist(&stack, &id, "360p", "?_HLS_part=1").await;
    assert_eq!(status, 400);

    // A preload-hinted part blocks until complete, then is served whole.
    let (_, text) = playlist(&stack, &id, "240p", "").await;
    let hint = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .map(|l| l.trim_end_matches('"').to_string())
        .expect("preload hint");
    let resp = stack
        .edge_get(&format!("/hls/{id}/240p/{hint}"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "hinted part {hint}");
    assert!(resp.bytes().await.unwrap().len() > 100);

    // Generator events became markers on the channel's timeline.
    let markers: serde_json::Value = stack
        .http
        .get(format!("{}/v1/videos/{id}/markers", stack.marker))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = markers["markers"].as_array().cloned().unwrap_or_default();
    assert!(!list.is_empty(), "no event markers: {markers}");
    // ...and EXT-X-DATERANGEs of the live playlists (hls.js makes cues of
    // them; START-DATE on the same clock as the PDTs).
    let (_, text) = playlist(&stack, &id, "360p", "").await;
    assert!(
        text.contains("#EXT-X-DATERANGE:") && text.contains("X-KIND=\"event\""),
        "no DATERANGE in the live playlist:\n{text}"
    );

    // Stop: the reply comes once the recording is ready.
    let reply = stack
        .nats
        .request(bus.subjects().live_stop(&id), "".into())
        .await
        .unwrap();
    assert!(reply.payload.is_empty(), "{:?}", reply.payload);
    match outcomes.wait(&id, Duration::from_secs(30)).await.unwrap() {
        Outcome::Ready(r) => assert!(r.duration_s > 5.0, "{}", r.duration_s),
        Outcome::Failed(f) => panic!("{}", f.reason),
    }
    let (_, text) = playlist(&stack, &id, "360p", "").await;
    assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    assert!(!text.contains("#EXT-X-PRELOAD-HINT"));
    // The recording decodes whole.
    let dir = tempfile::tempdir().unwrap();
    stack.download_hls(&id, dir.path()).await.unwrap();
    let pl = LivePlaylist::parse(&text, LiveConfig::for_reading()).unwrap();
    let mut bytes = std::fs::read(dir.path().join("360p/init.mp4")).unwrap();
    for s in pl.segments() {
        bytes.extend(std::fs::read(dir.path().join("360p").join(&s.uri)).unwrap());
    }
    let file = dir.path().join("360p.mp4");
    std::fs::write(&file, bytes).unwrap();
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each generator event marker sits on the frame that first shows the
    // mint square (within one frame, 40 ms at 25 fps).
    let (w, h) = (640u32, 360u32);
    let side = (h / 4) & !1;
    let (cx, cy) = ((w / 8) & !1, (h / 8) & !1);
    let frames = stream_testkit::hls::pixel_track(&file, cx + side / 2, cy + side / 2).unwrap();
    let mint =
        |p: [u8; 3]| p[0].abs_diff(212) < 16 && p[1].abs_diff(94) < 12 && p[2].abs_diff(85) < 12;
    let onsets: Vec<f64> = frames
        .windows(2)
        .filter(|w| !mint(w[0].1) && mint(w[1].1))
        .map(|w| w[1].0)
        .collect();
    let markers: serde_json::Value = stack
        .http
        .get(format!("{}/v1/videos/{id}/markers", stack.marker))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let times: Vec<f64> = markers["markers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["media_time"].as_f64().unwrap())
        .filter(|t| {
            frames.first().is_some_and(|f| *t > f.0) && frames.last().is_some_and(|f| *t < f.0)
        })
        .collect();
    assert!(
        !times.is_empty() && !onsets.is_empty(),
        "markers {times:?}, onsets {onsets:?}"
    );
    for t in &times {
        assert!(
            onsets.iter().any(|o| (o - t).abs() <= 0.040 + 1e-6),
            "marker at {t} s: no mint square starts within a frame (onsets {onsets:?})"
        );
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_played_live_once_ends_by_itself_as_vod() {
    let stack = Stack::start(StackOptions {
        ladder: Some("240:400k".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut outcomes = stack.watch_outcomes().await.unwrap();
    // Any object in the store can be played: upload carphone as a video
    // first and play its source.
    let vod = stack.ingest_ready(samples::CARPHONE).await.unwrap();
    let (_, id) = start(
        &stack,
        media::live_job::Source::File(media::LiveFile {
            object_key: format!("uploads/{vod}/source"),
            r#loop: false,
        }),
        media::LiveLatency::Normal,
    )
    .await;
    let ready = match outcomes.wait(&id, Duration::from_secs(60)).await.unwrap() {
        Outcome::Ready(r) => r,
        Outcome::Failed(f) => panic!("{}", f.reason),
    };
    let events: Vec<_> = outcomes
        .events(&id)
        .iter()
        .filter(|e| matches!(e.kind, Some(Kind::Live(_))))
        .collect();
    assert_eq!(events.len(), 1, "one live event before ready");
    assert_eq!(ready.renditions.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    stack.download_hls(&id, dir.path()).await.unwrap();
    let name = &ready.renditions[0].name;
    let text = std::fs::read_to_string(dir.path().join(name).join("index.m3u8")).unwrap();
    let pl = LivePlaylist::parse(&text, LiveConfig::for_reading()).unwrap();
    let total: f64 = pl.segments().map(|s| s.duration_s).sum();
    // carphone: 120 frames at 29.97 fps.
    assert!((total - 4.004).abs() < 0.05, "recording lasts {total} s");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pulled_url_goes_live_and_stops_when_nobody_watches() {
    // The source: the bbb sample over HTTP from this test (loopback, so the
    // SSRF guard's escape hatch is on).
    let dir = samples::path(samples::BIG_BUCK_BUNNY)
        .parent()
        .unwrap()
        .to_path_buf();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let app = axum::Router::new().fallback_service(tower_http::services::ServeDir::new(dir));
        axum::serve(listener, app).await.unwrap();
    });
    let stack = Stack::start(StackOptions {
        ladder: Some("240:400k".into()),
        allow_private_urls: true,
        live_idle_stop_s: Some(2.0),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut outcomes = stack.watch_outcomes().await.unwrap();
    let url = format!(
        "http://{addr}/{}",
        samples::path(samples::BIG_BUCK_BUNNY)
            .file_name()
            .unwrap()
            .to_string_lossy()
    );
    let (_, id) = start(
        &stack,
        media::live_job::Source::Pull(media::LivePull { url }),
        media::LiveLatency::Low,
    )
    .await;
    wait_live(&stack, &id).await;
    let ready = match outcomes.wait(&id, Duration::from_secs(60)).await.unwrap() {
        Outcome::Ready(r) => r,
        Outcome::Failed(f) => panic!("{}", f.reason),
    };
    let name = &ready.renditions[0].name;
    let (_, text) = playlist(&stack, &id, name, "").await;
    let pl = LivePlaylist::parse(&text, LiveConfig::for_reading()).unwrap();
    let total: f64 = pl.segments().map(|s| s.duration_s).sum();
    // Stopped for idleness (2 s without viewers), before the 5.3 s source ended.
    assert!(total > 0.5 && total < 5.0, "recording lasts {total} s");
    server.abort();
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_goes_away_hands_its_channel_to_another_which_continues_it() {
    // Two ingest workers (two stacks) on one NATS/Redis prefix and store;
    // only the first runs live channels at first.
    let first = Stack::start(StackOptions {
        ladder: Some("240:400k".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let id = first
        .start_channel(
            "handed over",
            media::live_job::Source::Generator(media::LiveGenerator {
                event_interval_s: 3600.0,
                width: 320,
                height: 240,
            }),
            media::LiveLatency::Low,
        )
        .await
        .unwrap();
    first.wait_live(&id, Duration::from_secs(60)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let second = Stack::start(StackOptions {
        ladder: Some("240:400k".into()),
        prefix: Some(first.prefix.clone()),
        media_store: Some(first.media_store()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut outcomes = second.watch_outcomes().await.unwrap();
    let (status, before) = playlist(&second, &id, "240p", "").await;
    assert_eq!(status, 200, "{before}");
    assert!(before.starts_with("#EXTM3U"), "{before:?}");
    let before = LivePlaylist::parse(&before, LiveConfig::for_reading()).unwrap();
    // SIGTERM-like shutdown of the first: the channel is not ended.
    let _first_files = first.shut_down_only().await;
    let (_, text) = playlist(&second, &id, "240p", "").await;
    assert!(
        !text.contains("#EXT-X-ENDLIST"),
        "ended by a shutdown:\n{text}"
    );
    // The second worker continues it: the playlist grows past the
    // hand-over with a discontinuity, media sequence never going back.
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let (status, text) = playlist(&second, &id, "240p", "").await;
        let pl = LivePlaylist::parse(&text, LiveConfig::for_reading())
            .unwrap_or_else(|e| panic!("{e}: {status} {text}"));
        if text.contains("#EXT-X-DISCONTINUITY\n")
            && pl.segments().count() > before.segments().count() + 1
        {
            break pl;
        }
        assert!(Instant::now() < deadline, "not continued:\n{text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(after.media_sequence(), before.media_sequence());
    let first_uris: Vec<String> = before.segments().map(|s| s.uri.clone()).collect();
    let now_uris: Vec<String> = after.segments().map(|s| s.uri.clone()).collect();
    assert_eq!(
        &now_uris[..first_uris.len()],
        &first_uris[..],
        "earlier segments kept"
    );
    assert!(after.segments().any(|s| s.discontinuity));
    // Stopping ends the one recording.
    let reply = second
        .nats
        .request(
            stream_bus::Subjects::new(&second.prefix).live_stop(&id),
            "".into(),
        )
        .await
        .unwrap();
    assert!(reply.payload.is_empty());
    assert!(matches!(
        outcomes.wait(&id, Duration::from_secs(30)).await.unwrap(),
        Outcome::Ready(_)
    ));
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dvr_window_plays_back_from_a_minute_ago() {
    let stack = Stack::start(StackOptions {
        ladder: Some("240:300k".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let id = stack
        .start_channel(
            "dvr",
            media::live_job::Source::Generator(media::LiveGenerator {
                event_interval_s: 3600.0,
                width: 320,
                height: 240,
            }),
            media::LiveLatency::Normal,
        )
        .await
        .unwrap();
    stack.wait_live(&id, Duration::from_secs(60)).await.unwrap();
    // Wait (in real time: it is live) until the window holds over 64 s.
    let deadline = Instant::now() + Duration::from_secs(150);
    let pl = loop {
        let (_, text) = playlist(&stack, &id, "240p", "").await;
        let pl = LivePlaylist::parse(&text, LiveConfig::for_reading()).unwrap();
        if pl.listed_s() > 64.0 {
            break pl;
        }
        assert!(
            Instant::now() < deadline,
            "window holds only {} s",
            pl.listed_s()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    // Seek 60 s back: the segment whose PDT is a minute before the newest.
    let segments: Vec<_> = pl.segments().cloned().collect();
    let newest = segments.last().unwrap().pdt_ms.unwrap();
    let back = segments
        .iter()
        .position(|s| s.pdt_ms.unwrap() >= newest - 60_000)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = stack
        .edge_get(&format!("/hls/{id}/240p/init.mp4"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    for s in &segments[back..back + 3] {
        let resp = stack
            .edge_get(&format!("/hls/{id}/240p/{}", s.uri))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", s.uri);
        bytes.extend(resp.bytes().await.unwrap());
    }
    let file = dir.path().join("dvr.mp4");
    std::fs::write(&file, bytes).unwrap();
    let frames = stream_testkit::hls::pixel_track(&file, 10, 10).unwrap();
    // Three 2 s segments at 25 fps.
    assert!(frames.len() >= 140, "{} frames decoded", frames.len());
    // Their media times are a minute behind the live edge.
    let anchor = id.parse::<stream_hls::VideoId>().unwrap().timestamp_ms() as f64;
    let first_s = (segments[back].pdt_ms.unwrap() as f64 - anchor) / 1000.0;
    // Within the B-frame reorder delay (normal latency: the mp4 muxer's
    // composition offsets put the first displayed frame up to 3 frames
    // after the keyframe PTS the PDT is stamped from).
    assert!(
        (frames[0].0 - first_s).abs() < 0.125,
        "{} vs {first_s}",
        frames[0].0
    );
    stack.stop().await;
}
