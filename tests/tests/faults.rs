//! Faults injected for real into the transcode path: the transcoder child
//! crashes (SIGSEGV), hangs past its deadline, or is killed with SIGKILL
//! mid-job. The worker survives each; a crashed job is retried and fails
//! with a reason after its last delivery; a killed one completes on retry
//! with exactly one set of outputs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stream_bus::video_event::Kind;
use stream_testkit::samples;
use stream_tests::{Outcome, Stack, StackOptions};

const JOB_TIMEOUT: Duration = Duration::from_secs(240);

/// A stand-in transcoder: a shell script with `body`.
fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("transcoder.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcoder_that_crashes_every_time_fails_the_job_after_its_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(StackOptions {
        transcoder_bin: Some(script(dir.path(), "kill -SEGV $$")),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut outcomes = stack.watch_outcomes().await.unwrap();
    let id = stack
        .upload_ok(
            std::fs::read(samples::path(samples::CARPHONE)).unwrap(),
            "crash",
        )
        .await
        .unwrap();
    match outcomes.wait(&id, JOB_TIMEOUT).await.unwrap() {
        Outcome::Failed(f) => {
            assert!(!f.input_error, "{}", f.reason);
            assert!(
                f.reason.contains("crashed") && f.reason.contains("signal 11"),
                "{}",
                f.reason
            );
        }
        Outcome::Ready(_) => panic!("a crashing transcoder produced a video"),
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcode_past_its_deadline_is_killed_and_fails_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    // Never answers: the stand-in for a decoder stuck inside libav.
    let marker = format!("{}", 5_000 + std::process::id() % 1_000);
    let stack = Stack::start(StackOptions {
        transcoder_bin: Some(script(dir.path(), &format!("exec sleep {marker}"))),
        job_max_wall_s: Some(2.0),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut outcomes = stack.watch_outcomes().await.unwrap();
    let started = Instant::now();
    let id = stack
        .upload_ok(
            std::fs::read(samples::path(samples::CARPHONE)).unwrap(),
            "hang",
        )
        .await
        .unwrap();
    match outcomes.wait(&id, Duration::from_secs(60)).await.unwrap() {
        Outcome::Failed(f) => {
            assert!(f.reason.contains("time limit of 2 s"), "{}", f.reason);
        }
        Outcome::Ready(_) => panic!("a hung transcoder produced a video"),
    }
    // Failed at the first deadline, not after three.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let left = std::process::Command::new("pgrep")
        .args(["-f", &format!("sleep {marker}")])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "the hung child still runs");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_transcoder_mid_job_retries_and_publishes_one_set_of_outputs() {
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
            "killed",
        )
        .await
        .unwrap();
    // Wait for the first child to run, then kill it the hard way.
    let me = std::process::id().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid = loop {
        let out = std::process::Command::new("pgrep")
            .args(["-P", &me, "-f", "test-transcoder"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !text.is_empty() {
            break text.lines().next().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no transcoder child appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let status = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    assert!(status.success());

    let ready = match outcomes.wait(&id, JOB_TIMEOUT).await.unwrap() {
        Outcome::Ready(r) => r,
        Outcome::Failed(f) => panic!("failed after one crash: {}", f.reason),
    };
    let attempts: Vec<u32> = outcomes
        .events(&id)
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Started(s)) => Some(s.attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts.last(), Some(&2), "started events: {attempts:?}");
    // Exactly one set of outputs: every file in the store is named by the
    // playlists (or is a playlist/init), and every named file exists.
    let video_dir = stack.media_store().join("videos").join(&id);
    for r in &ready.renditions {
        let track = video_dir.join(&r.name);
        let text = std::fs::read(track.join("index.m3u8")).unwrap();
        let media = match m3u8_rs::parse_playlist_res(&text) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(m)) => m,
            other => panic!("{}: {other:?}", r.name),
        };
        let mut named: Vec<String> = media.segments.iter().map(|s| s.uri.clone()).collect();
        named.extend(["index.m3u8".to_string(), "init.mp4".to_string()]);
        let mut on_disk: Vec<String> = std::fs::read_dir(&track)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        named.sort();
        assert_eq!(on_disk, named, "{}", r.name);
    }
    let dir = tempfile::tempdir().unwrap();
    stack.download_hls(&id, dir.path()).await.unwrap();
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_every_worker_died_is_marked_failed() {
    // No ingest workers: the test plays the workers, each killed before it
    // could ack or fail the job (it takes the job and never answers).
    let stack = Stack::start(StackOptions {
        workers: Some(0),
        ..Default::default()
    })
    .await
    .unwrap();
    let bus = stream_bus::Bus::connect(&stream_testkit::env::nats_url(), &stack.prefix)
        .await
        .unwrap();
    let consumer = bus
        .job_consumer_with_ack_wait(Duration::from_millis(500))
        .await
        .unwrap();
    let mut outcomes = stack.watch_outcomes().await.unwrap();
    let id = stack
        .upload_ok(
            std::fs::read(samples::path(samples::CARPHONE)).unwrap(),
            "orphan",
        )
        .await
        .unwrap();
    let mut deliveries = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while deliveries < stream_bus::JOB_MAX_DELIVER {
        assert!(Instant::now() < deadline, "only {deliveries} deliveries");
        use futures::StreamExt;
        let mut batch = consumer
            .batch()
            .max_messages(1)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .unwrap();
        if let Some(msg) = batch.next().await {
            let _dead_worker_never_acks = msg.unwrap();
            deliveries += 1;
        }
    }
    // Live workers keep asking for jobs: that is when JetStream finds the
    // job's deliveries exhausted and announces it.
    let asking = tokio::spawn(async move {
        use futures::StreamExt;
        let mut extra = 0;
        for _ in 0..30 {
            let mut batch = consumer
                .batch()
                .max_messages(1)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .unwrap();
            while let Some(msg) = batch.next().await {
                msg.unwrap();
                extra += 1;
            }
        }
        extra
    });
    match outcomes.wait(&id, Duration::from_secs(30)).await.unwrap() {
        Outcome::Failed(f) => {
            assert!(
                f.reason.contains("abandoned after 3 deliveries"),
                "{}",
                f.reason
            );
            assert!(!f.input_error);
        }
        Outcome::Ready(_) => panic!("no worker ran it"),
    }
    // Off the queue: it no longer counts against the queue bound.
    let start = Instant::now();
    while bus.queued_jobs().await.unwrap() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "job left in the queue"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    asking.abort();
    stack.stop().await;
}
