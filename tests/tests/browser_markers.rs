//! Timeline markers in Debian's headless Chromium against the whole stack:
//! a marker posted while playing appears on the progress bar within 1 s
//! (SSE), clicking it seeks to within one frame of its media time, the list
//! seeks, the form adds at the playhead. Drives `frontend/tests/markers.mjs`.

use stream_testkit::samples;
use stream_tests::{run_browser_script, Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_on_the_timeline_live_and_seekable() {
    let stack = Stack::start(StackOptions {
        ladder: Some("360:800k,240:400k".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let id = stack.ingest_ready(samples::BIG_BUCK_BUNNY).await.unwrap();
    run_browser_script(
        "markers.mjs",
        vec![
            ("BASE_URL", stack.edge.clone()),
            ("VIDEO_ID", id),
            ("MARK_AT", "3.0".into()),
        ],
    )
    .await
    .unwrap();
    stack.stop().await;
}
