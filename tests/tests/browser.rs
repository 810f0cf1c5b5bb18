//! The front end in Debian's headless Chromium against the whole stack:
//! the list shows the samples, bigbuckbunny plays (currentTime advances),
//! the quality menu lists the rungs. Drives `frontend/tests/browser.mjs`
//! (playwright-core with executablePath /usr/bin/chromium).

use stream_testkit::samples;
use stream_tests::{run_browser_script, Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_lists_plays_and_offers_quality_levels() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    for sample in samples::ALL {
        stack.ingest_ready(sample).await.unwrap();
    }
    let screenshot = std::env::temp_dir().join(format!("{}-page.png", stack.prefix));
    run_browser_script(
        "browser.mjs",
        vec![
            ("BASE_URL", stack.edge.clone()),
            (
                "EXPECT_TITLES",
                "bigbuckbunny,bikes,carphone_pristine".into(),
            ),
            ("PLAY_TITLE", "bigbuckbunny".into()),
            ("SCREENSHOT", screenshot.display().to_string()),
        ],
    )
    .await
    .unwrap();
    stack.stop().await;
}
