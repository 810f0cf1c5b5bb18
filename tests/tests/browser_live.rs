//! A live channel in Debian's headless Chromium: hls.js in lowLatencyMode
//! (live.html) plays it and reports its latency; the main page lists it as
//! LIVE and video.js plays it. Drives `frontend/tests/live.mjs`.

use std::time::Duration;

use stream_bus::media;
use stream_tests::{run_browser_script, Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_low_latency_and_video_js_play_a_channel() {
    let stack = Stack::start(StackOptions {
        ladder: Some("360:800k,240:400k".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let id = stack
        .start_channel(
            "generator",
            media::live_job::Source::Generator(media::LiveGenerator {
                event_interval_s: 5.0,
                width: 640,
                height: 360,
            }),
            media::LiveLatency::Low,
        )
        .await
        .unwrap();
    stack.wait_live(&id, Duration::from_secs(60)).await.unwrap();
    let screenshot = std::env::temp_dir().join(format!("{}-live.png", stack.prefix));
    let out = run_browser_script(
        "live.mjs",
        vec![
            ("BASE_URL", stack.edge.clone()),
            ("CHANNEL_ID", id.clone()),
            ("WATCH_S", "8".into()),
            ("SCREENSHOT", screenshot.display().to_string()),
        ],
    )
    .await
    .unwrap();
    assert!(out.contains("latency: "), "{out}");
    stack.stop().await;
}
