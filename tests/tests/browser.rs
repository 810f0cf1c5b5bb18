//! The front end in Debian's headless Chromium against the whole stack:
//! the list shows the samples, bigbuckbunny plays (currentTime advances),
//! the quality menu lists the rungs. Drives `frontend/tests/browser.mjs`
//! (playwright-core with executablePath /usr/bin/chromium).

use std::time::Duration;

use stream_testkit::{samples, workspace_root};
use stream_tests::{Outcome, Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_lists_plays_and_offers_quality_levels() {
    let frontend = workspace_root().join("frontend");
    assert!(
        frontend.join("dist/index.html").is_file()
            && frontend.join("node_modules/playwright-core").is_dir(),
        "front end not built: run `make frontend` (npm ci && npm run build in frontend/)"
    );
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let mut outcomes = stack.watch_outcomes().await.unwrap();
    let mut ids = Vec::new();
    for sample in samples::ALL {
        let title = sample.trim_end_matches(".mp4");
        ids.push(
            stack
                .upload_ok(std::fs::read(samples::path(sample)).unwrap(), title)
                .await
                .unwrap(),
        );
    }
    for id in &ids {
        assert!(matches!(
            outcomes.wait(id, Duration::from_secs(240)).await.unwrap(),
            Outcome::Ready(_)
        ));
    }
    let screenshot = std::env::temp_dir().join(format!("{}-page.png", stack.prefix));
    let edge = stack.edge.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("tests/browser.mjs")
            .current_dir(&frontend)
            .env("BASE_URL", edge)
            .env("EXPECT_TITLES", "bigbuckbunny,bikes,carphone_pristine")
            .env("PLAY_TITLE", "bigbuckbunny")
            .env("SCREENSHOT", &screenshot)
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
        "browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    stack.stop().await;
}
