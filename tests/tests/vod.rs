//! Upload → ready event on NATS → HLS through the edge → decoded and
//! checked, for every sample; bad inputs fail cleanly while a good job
//! queued behind them succeeds.

use std::time::Duration;

use stream_testkit::hls::decode_rendition;
use stream_testkit::samples;
use stream_tests::{ffmpeg, fixture_dir, Outcome, Stack, StackOptions};

const JOB_TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_become_aligned_hls_ladders() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let mut outcomes = stack.watch_outcomes().await.unwrap();
    // (sample, frame duration s, source duration s, expected video renditions)
    let cases = [
        (
            samples::BIG_BUCK_BUNNY,
            1.0 / 25.0,
            5.28,
            vec!["720p", "480p", "360p", "240p"],
            true,
        ),
        (samples::BIKES, 1.0 / 25.0, 10.0, vec!["240p"], false),
        (
            samples::CARPHONE,
            1001.0 / 30000.0,
            4.004,
            vec!["144p"],
            false,
        ),
    ];
    let mut ids = Vec::new();
    for (i, (sample, ..)) in cases.iter().enumerate() {
        let path = samples::path(sample);
        let id = if i == 1 {
            // The browser's way: multipart/form-data.
            let bytes = tokio::fs::read(&path).await.unwrap();
            let form = reqwest::multipart::Form::new().text("title", "bikes").part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name("bikes.mp4"),
            );
            let resp = stack
                .http
                .post(format!("{}/v1/videos", stack.ingest))
                .multipart(form)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 202);
            let v: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(v["title"], "bikes");
            v["id"].as_str().unwrap().to_string()
        } else {
            let bytes = tokio::fs::read(&path).await.unwrap();
            stack
                .upload_ok(bytes, sample.trim_end_matches(".mp4"))
                .await
                .unwrap()
        };
        // Status is visible at once.
        let status: serde_json::Value = stack
            .http
            .get(format!("{}/v1/videos/{id}", stack.ingest))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            matches!(
                status["status"].as_str(),
                Some("queued" | "processing" | "ready")
            ),
            "{status}"
        );
        ids.push(id);
    }
    for ((sample, frame_s, source_s, expected, has_audio), id) in cases.iter().zip(&ids) {
        let ready = match outcomes.wait(id, JOB_TIMEOUT).await.unwrap() {
            Outcome::Ready(r) => r,
            Outcome::Failed(f) => panic!("{sample} failed: {}", f.reason),
        };
        // Event order: accepted, started, ..., playable before ready.
        let kinds: Vec<&'static str> = outcomes
            .events(id)
            .iter()
            .map(stream_bus::event_kind)
            .collect();
        let playable = kinds
            .iter()
            .position(|k| *k == "playable")
            .expect("playable event");
        let ready_at = kinds.iter().position(|k| *k == "ready").unwrap();
        assert!(playable < ready_at, "{kinds:?}");
        assert!(kinds.contains(&"rendition_ready"), "{kinds:?}");

        let dir = tempfile::tempdir().unwrap();
        let master = stack.download_hls(id, dir.path()).await.unwrap();
        let names: Vec<String> = master
            .variants
            .iter()
            .map(|v| v.uri.split('/').next().unwrap().to_string())
            .collect();
        assert_eq!(&names, expected, "{sample}");
        assert_eq!(
            master.alternatives.len(),
            usize::from(*has_audio),
            "{sample}"
        );
        for v in &master.variants {
            assert!(v.bandwidth > 0 && v.average_bandwidth.unwrap() > 0);
            assert!(v.bandwidth >= v.average_bandwidth.unwrap());
            assert!(v.codecs.as_deref().unwrap().starts_with("avc1."));
            assert!(v.resolution.is_some() && v.frame_rate.is_some());
            assert_eq!(
                v.codecs.as_deref().unwrap().contains("mp4a.40.2"),
                *has_audio
            );
        }
        let mut boundaries: Option<Vec<f64>> = None;
        for name in &names {
            let r = decode_rendition(&dir.path().join(name)).unwrap();
            assert!(r.ended, "{sample} {name}: no ENDLIST");
            assert!(
                (r.playlist_duration_s - source_s).abs() <= frame_s + 1e-3,
                "{sample} {name}: playlist {:.4} s vs source {source_s} s",
                r.playlist_duration_s
            );
            assert!(
                (r.decoded_duration_s - source_s).abs() <= frame_s + 1e-3,
                "{sample} {name}: decoded {:.4} s vs source {source_s} s",
                r.decoded_duration_s
            );
            assert!(
                r.segment_starts.iter().all(|(_, key)| *key),
                "{sample} {name}: segment without keyframe start"
            );
            let starts: Vec<f64> = r
                .segment_starts
                .iter()
                .map(|(p, _)| (p * 1000.0).round())
                .collect();
            match &boundaries {
                None => boundaries = Some(starts),
                Some(b) => assert_eq!(b, &starts, "{sample}: {name} keyframes not aligned"),
            }
        }
        if *has_audio {
            let a = decode_rendition(&dir.path().join("audio")).unwrap();
            assert!(
                (a.decoded_duration_s - source_s).abs() < 0.1,
                "audio {}",
                a.decoded_duration_s
            );
        }
        assert!((ready.duration_s - source_s).abs() <= frame_s + 1e-3);
        // The control plane's catalogue agrees, through the edge's REST facade.
        let v: serde_json::Value = stack
            .edge_get(&format!("/api/v1/videos/{id}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["status"], "ready", "{v}");
        assert_eq!(v["playback_url"], format!("/hls/{id}/master.m3u8"));
        assert_eq!(v["renditions"].as_array().unwrap().len(), expected.len());
    }
    let list: serde_json::Value = stack
        .edge_get("/api/v1/videos")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["videos"].as_array().unwrap().len(), 3);
    stack.stop().await;
}

/// Bad inputs, each with the words its failure reason must contain.
fn bad_inputs() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let dir = fixture_dir();
    let bbb = std::fs::read(samples::path(samples::BIG_BUCK_BUNNY)).unwrap();
    // Truncated, index at the end: cut in half.
    let cut_tail = bbb[..bbb.len() / 2].to_vec();
    // Truncated with the index first (faststart): only the media is cut.
    let fast = dir.join("fast.mp4");
    ffmpeg(&[
        "-i",
        samples::path(samples::BIG_BUCK_BUNNY).to_str().unwrap(),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        fast.to_str().unwrap(),
    ])
    .unwrap();
    let fast = std::fs::read(&fast).unwrap();
    let cut_media = fast[..fast.len() * 2 / 5].to_vec();
    // Random bytes (deterministic).
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let random: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec();
    // A header declaring 10000x10000 frames.
    let mut huge = b"YUV4MPEG2 W10000 H10000 F25:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    huge.extend(vec![128u8; 65536]);
    // A Matroska header declaring a ~31-year duration.
    let mkv = dir.join("long.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64:rate=10:duration=1",
        "-c:v",
        "libx264",
        mkv.to_str().unwrap(),
    ])
    .unwrap();
    let mut long = std::fs::read(&mkv).unwrap();
    let pos = long
        .windows(3)
        .position(|w| w == [0x44, 0x89, 0x88])
        .expect("Matroska Duration element");
    long[pos + 3..pos + 11].copy_from_slice(&1e12f64.to_be_bytes());
    let hls =
        b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
            .to_vec();
    let concat = b"ffconcat version 1.0\nfile /etc/passwd\n".to_vec();
    // Video timestamps that jump 10^12 s ahead after one second, no
    // duration in the header (this once pinned a worker for good).
    let jump = dir.join("jump.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=3",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=3",
        "-vf",
        "setpts='if(gte(N,25),PTS+1e12/TB,PTS)'",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        "-live",
        "1",
        jump.to_str().unwrap(),
    ])
    .unwrap();
    let jump = std::fs::read(&jump).unwrap();
    // 320x240, then 640x480 in the same MPEG-TS stream.
    let mut sizes = Vec::new();
    for (size, offset) in [("320x240", "0"), ("640x480", "2")] {
        let part = dir.join(format!("{size}.ts"));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=25:duration=2"),
            "-output_ts_offset",
            offset,
            "-c:v",
            "libx264",
            part.to_str().unwrap(),
        ])
        .unwrap();
        sizes.extend(std::fs::read(&part).unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
    vec![
        ("truncated", cut_tail, "unsupported"),
        ("truncated-faststart", cut_media, "truncated"),
        ("random", random, "unsupported"),
        ("pdf", pdf, "unsupported"),
        ("huge-dimensions", huge, "10000x10000"),
        ("absurd-duration", long, "duration"),
        ("hls-disguised", hls, "unsupported"),
        ("concat-disguised", concat, "unsupported"),
        ("timestamp-jump", jump, "timestamps jump"),
        ("size-change", sizes, "frame size changes mid-stream"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_fail_cleanly_and_the_worker_goes_on() {
    let stack = Stack::start(StackOptions {
        ladder: Some("360:800k,240:400k".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut outcomes = stack.watch_outcomes().await.unwrap();

    // Zero bytes never becomes a job.
    let resp = stack
        .upload_bytes(Vec::new(), "video/mp4", "empty")
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("empty"));
    // Not a video content type.
    let resp = stack
        .upload_bytes(b"x".to_vec(), "text/plain", "txt")
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);

    let bad = bad_inputs();
    let mut ids = Vec::new();
    for (name, bytes, _) in &bad {
        ids.push(stack.upload_ok(bytes.clone(), name).await.unwrap());
    }
    let good = stack
        .upload_ok(
            std::fs::read(samples::path(samples::CARPHONE)).unwrap(),
            "good",
        )
        .await
        .unwrap();
    for ((name, _, words), id) in bad.iter().zip(&ids) {
        match outcomes.wait(id, JOB_TIMEOUT).await.unwrap() {
            Outcome::Failed(f) => {
                assert!(f.input_error, "{name}: {}", f.reason);
                assert!(
                    f.reason.to_lowercase().contains(words),
                    "{name}: reason {:?} lacks {words:?}",
                    f.reason
                );
                // Visible in the API, and nothing is served.
                let v: serde_json::Value = stack
                    .http
                    .get(format!("{}/v1/videos/{id}", stack.ingest))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(v["status"], "failed", "{name}");
                assert_eq!(v["error"].as_str(), Some(f.reason.as_str()));
                let master = stack
                    .edge_get(&format!("/hls/{id}/master.m3u8"))
                    .await
                    .unwrap();
                assert_eq!(master.status(), 404, "{name}: master served after failure");
            }
            Outcome::Ready(_) => panic!("{name} was accepted as a video"),
        }
    }
    assert!(matches!(
        outcomes.wait(&good, JOB_TIMEOUT).await.unwrap(),
        Outcome::Ready(_)
    ));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_beyond_the_limit_are_shed_not_queued() {
    let stack = Stack::start(StackOptions {
        max_uploads: Some(1),
        ..Default::default()
    })
    .await
    .unwrap();
    // One upload that keeps streaming until we let it go.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tx.send(Ok(bytes::Bytes::from_static(b"\0\0\0\x18ftypmp42")))
        .await
        .unwrap();
    let slow = {
        let http = stack.http.clone();
        let url = format!("{}/v1/videos", stack.ingest);
        tokio::spawn(async move {
            http.post(url)
                .header("content-type", "video/mp4")
                .body(reqwest::Body::wrap_stream(
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                ))
                .send()
                .await
        })
    };
    // Wait until the slow upload holds the slot, then a second one is shed.
    let mut shed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = stack
            .upload_bytes(b"x".to_vec(), "video/mp4", "second")
            .await
            .unwrap();
        if r.status() == 503 {
            assert!(r.text().await.unwrap().contains("too many uploads"));
            shed = true;
            break;
        }
    }
    assert!(shed, "a second concurrent upload was not refused");
    // Status requests are not held up by uploads.
    let r = stack
        .http
        .get(format!(
            "{}/v1/videos/01ARZ3NDEKTSV4RRFFQ69G5FAV",
            stack.ingest
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    drop(tx);
    let _ = slow.await;
    stack.stop().await;
}
