//! The edge's HTTP behaviour on a published video: traversal, Range,
//! conditional requests, CORS on success and error, content types.

use stream_testkit::samples;
use stream_tests::{Stack, StackOptions};

const ALLOWED: &str = "http://allowed.example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_serves_hls_safely_and_correctly() {
    let stack = Stack::start(StackOptions {
        ladder: Some("240:400k".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let id = stack.ingest_ready(samples::CARPHONE).await.unwrap();
    let base = format!("{}/hls/{id}", stack.edge);
    let get = |url: String| stack.http.get(url);

    // Content types and cache policy.
    for (path, ctype, cache) in [
        (
            "master.m3u8",
            "application/vnd.apple.mpegurl",
            "public, max-age=3600",
        ),
        (
            "144p/index.m3u8",
            "application/vnd.apple.mpegurl",
            stream_edge::hls::CACHE_FINISHED_UNMARKED,
        ),
        (
            "144p/init.mp4",
            "video/mp4",
            "public, max-age=31536000, immutable",
        ),
        (
            "144p/seg_00000.m4s",
            "video/iso.segment",
            "public, max-age=31536000, immutable",
        ),
    ] {
        let r = get(format!("{base}/{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], ctype, "{path}");
        assert_eq!(r.headers()["cache-control"], cache, "{path}");
        assert!(r.headers().contains_key("etag"), "{path}");
    }

    // Range: a slice, a suffix, and an unsatisfiable one.
    let full = get(format!("{base}/144p/seg_00000.m4s"))
        .send()
        .await
        .unwrap();
    let etag = full.headers()["etag"].to_str().unwrap().to_string();
    let full = full.bytes().await.unwrap();
    let r = get(format!("{base}/144p/seg_00000.m4s"))
        .header("range", "bytes=10-109")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 10-109/{}", full.len())
    );
    assert_eq!(r.bytes().await.unwrap(), full.slice(10..110));
    let r = get(format!("{base}/144p/seg_00000.m4s"))
        .header("range", "bytes=-16")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), full.slice(full.len() - 16..));
    let r = get(format!("{base}/144p/seg_00000.m4s"))
        .header("range", format!("bytes={}-", full.len() + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{}", full.len())
    );

    // Conditional: same ETag → 304.
    let r = get(format!("{base}/144p/seg_00000.m4s"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = get(format!("{base}/master.m3u8"))
        .header("if-none-match", "\"not-the-tag\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Traversal and odd paths: 404 whatever the encoding.
    for path in [
        format!("/hls/{id}/../../../etc/passwd"),
        format!("/hls/{id}/%2e%2e/%2e%2e/etc/passwd"),
        format!("/hls/{id}/%252e%252e/master.m3u8"),
        format!("/hls/{id}/144p/..%2f..%2fmaster.m3u8"),
        format!("/hls/{id}/144p/seg_1.m4s"),
        format!("/hls/{id}/144p/seg_00099.m4s"),
        "/hls/..%2f..%2fetc/passwd".to_string(),
        "/hls/not-a-ulid/master.m3u8".to_string(),
        "/hls/01ARZ3NDEKTSV4RRFFQ69G5FAV/master.m3u8".to_string(),
    ] {
        let r = stack
            .http
            .get(format!("{}{path}", stack.edge))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }

    // CORS: allowed origin on success and on error; other origins get nothing.
    let r = get(format!("{base}/master.m3u8"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED);
    let r = get(format!("{base}/144p/seg_09999.m4s"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED);
    let r = get(format!("{base}/master.m3u8"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    let r = stack
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{base}/144p/seg_00000.m4s"),
        )
        .header("origin", ALLOWED)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED);

    // Markers in served media playlists: PDT on every segment, one
    // DATERANGE per marker (parsed by m3u8-rs), ETag and cache policy
    // follow marker changes.
    let playlist = format!("{base}/144p/index.m3u8");
    let before = get(playlist.clone()).send().await.unwrap();
    let tag0 = before.headers()["etag"].to_str().unwrap().to_string();
    let text0 = before.text().await.unwrap();
    let Ok(m3u8_rs::Playlist::MediaPlaylist(p0)) = m3u8_rs::parse_playlist_res(text0.as_bytes())
    else {
        panic!("{text0}")
    };
    assert!(p0.segments.iter().all(|s| s.program_date_time.is_some()));
    // PDT of segment 0 = the video's anchor (its ULID timestamp).
    let anchor_ms = p0.segments[0].program_date_time.unwrap().timestamp_millis();
    let ulid_ms = ulid::Ulid::from_string(&id).unwrap().timestamp_ms() as i64;
    assert_eq!(anchor_ms, ulid_ms);
    let r = get(playlist.clone())
        .header("if-none-match", &tag0)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = stack
        .post_markers(
            &id,
            &serde_json::json!([
                {"kind": "chapter", "label": "Start", "media_time": 0.0, "duration": 1.0},
                {"kind": "event", "label": "Ring \"ring\"", "media_time": 2.5},
            ]),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // The old tag no longer matches: the new representation carries them.
    let r = get(playlist.clone())
        .header("if-none-match", &tag0)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], stream_edge::hls::CACHE_MARKED);
    let tag1 = r.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(tag1, tag0);
    let text1 = r.text().await.unwrap();
    let Ok(m3u8_rs::Playlist::MediaPlaylist(p1)) = m3u8_rs::parse_playlist_res(text1.as_bytes())
    else {
        panic!("{text1}")
    };
    let ranges: Vec<_> = p1
        .segments
        .iter()
        .filter_map(|s| s.daterange.as_ref())
        .collect();
    assert_eq!(ranges.len(), 2, "{text1}");
    assert_eq!(ranges[0].class.as_deref(), Some("chapter"));
    assert_eq!(ranges[0].duration, Some(1.0));
    assert_eq!(ranges[0].start_date.timestamp_millis(), ulid_ms);
    assert_eq!(ranges[1].start_date.timestamp_millis(), ulid_ms + 2500);
    let x = ranges[1].x_prefixed.as_ref().unwrap();
    assert!(
        format!("{:?}", x["X-LABEL"]).contains("Ring 'ring'"),
        "{x:?}"
    );
    let r = get(playlist.clone())
        .header("if-none-match", &tag1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // API errors are JSON with a reason.
    let r = stack.edge_get("/api/v1/videos/not-a-ulid").await.unwrap();
    assert_eq!(r.status(), 400);
    let r = stack
        .edge_get("/api/v1/videos/01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = stack
        .http
        .get(format!("{}/v1/videos/nope", stack.ingest))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    stack.stop().await;
}
