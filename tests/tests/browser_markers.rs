//! Timeline markers in Debian's headless Chromium against the whole stack:
//! a marker posted while playing appears on the progress bar within 1 s
//! (SSE), clicking it seeks to within one frame of its media time, the list
//! seeks, the form adds at the playhead. Drives `frontend/tests/markers.mjs`.

use std::time::Duration;

use stream_testkit::{samples, workspace_root};
use stream_tests::{Outcome, Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_on_the_timeline_live_and_seekable() {
    let frontend = workspace_root().join("frontend");
    assert!(
        frontend.join("dist/index.html").is_file()
            && frontend.join("node_modules/playwright-core").is_dir(),
        "front end not built: run `make frontend` (npm ci && npm run build in frontend/)"
    );
    let stack = Stack::start(StackOptions {
        ladder: Some("360:800k,240:400k".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut outcomes = stack.watch_outcomes().await.unwrap();
    let id = stack
        .upload_ok(
            std::fs::read(samples::path(samples::BIG_BUCK_BUNNY)).unwrap(),
            "bigbuckbunny",
        )
        .await
        .unwrap();
    assert!(matches!(
        outcomes.wait(&id, Duration::from_secs(240)).await.unwrap(),
        Outcome::Ready(_)
    ));
    let edge = stack.edge.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("tests/markers.mjs")
            .current_dir(&frontend)
            .env("BASE_URL", edge)
            .env("VIDEO_ID", id)
            .env("MARK_AT", "3.0")
            .output()
    })
    .await
    .unwrap()
    .expect("run node (apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "markers browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    stack.stop().await;
}
