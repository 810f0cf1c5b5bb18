//! URL imports: loopback refused by the SSRF guard by default; allowed when
//! configured, and then transcoded like an upload.

use std::time::Duration;

use axum::routing::get;
use stream_testkit::samples;
use stream_tests::{Outcome, Stack, StackOptions};

async fn serve_sample() -> String {
    let bytes = std::fs::read(samples::path(samples::CARPHONE)).unwrap();
    let app = axum::Router::new()
        .route("/clip.mp4", get(move || async move { bytes.clone() }))
        .route(
            "/redirect",
            get(|| async { (axum::http::StatusCode::FOUND, [("location", "/clip.mp4")]) }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

async fn import(stack: &Stack, url: &str) -> reqwest::Response {
    stack
        .http
        .post(format!("{}/v1/videos", stack.ingest))
        .json(&serde_json::json!({ "url": url, "title": "imported" }))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_urls_are_refused_by_default() {
    let origin = serve_sample().await;
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    for url in [
        format!("{origin}/clip.mp4"),
        "http://169.254.169.254/latest/meta-data".to_string(),
        "file:///etc/passwd".to_string(),
        "gopher://example.com/".to_string(),
    ] {
        let r = import(&stack, &url).await;
        assert_eq!(r.status(), 400, "{url}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("rejected"),
            "{url}: {body}"
        );
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_follow_redirects_when_allowed() {
    let origin = serve_sample().await;
    let stack = Stack::start(StackOptions {
        allow_private_urls: true,
        ladder: Some("240:400k".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut outcomes = stack.watch_outcomes().await.unwrap();
    let r = import(&stack, &format!("{origin}/redirect")).await;
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    match outcomes.wait(&id, Duration::from_secs(120)).await.unwrap() {
        Outcome::Ready(r) => assert!((r.duration_s - 4.004).abs() < 0.04),
        Outcome::Failed(f) => panic!("import failed: {}", f.reason),
    }
    stack.stop().await;
}
