//! Live channels in the media crate: the generator and a file played live
//! become LL-HLS parts that are valid CMAF and decode, paced in real time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use stream_media::live::{run_live, LiveEvent, LiveOptions, LiveSource};
use stream_testkit::samples;

#[derive(Default)]
struct TrackOut {
    init: Vec<u8>,
    parts: Vec<(f64, f64, bool, bool, usize)>, // start, duration, independent, starts_segment, bytes
    bytes: Vec<u8>,
    ended: bool,
}

fn run(
    source: LiveSource,
    stop_after: Option<Duration>,
) -> (BTreeMap<String, TrackOut>, Vec<f64>, f64) {
    run_with(source, stop_after, true)
}

fn run_with(
    source: LiveSource,
    stop_after: Option<Duration>,
    paced: bool,
) -> (BTreeMap<String, TrackOut>, Vec<f64>, f64) {
    let opts = LiveOptions {
        paced,
        ladder: "360:800k,240:400k".parse().unwrap(),
        // The channel's clock started 100 s ago.
        clock_anchor_ms: Some(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64
                - 100_000,
        ),
        ..Default::default()
    };
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut tracks: BTreeMap<String, TrackOut> = BTreeMap::new();
    let mut events = Vec::new();
    run_live(&source, &opts, &stop, |ev| {
        if stop_after.is_some_and(|d| started.elapsed() >= d) {
            stop.store(true, Ordering::Relaxed);
        }
        match ev {
            LiveEvent::Init { track, bytes } => tracks.entry(track).or_default().init = bytes,
            LiveEvent::Part {
                track,
                bytes,
                start_s,
                duration_s,
                independent,
                starts_segment,
                ..
            } => {
                let t = tracks.entry(track).or_default();
                t.parts.push((
                    start_s,
                    duration_s,
                    independent,
                    starts_segment,
                    bytes.len(),
                ));
                t.bytes.extend(bytes);
            }
            LiveEvent::TrackEnded { track } => tracks.entry(track).or_default().ended = true,
            LiveEvent::SourceEvent { media_time_s, .. } => events.push(media_time_s),
            _ => {}
        }
    })
    .unwrap();
    (tracks, events, started.elapsed().as_secs_f64())
}

fn frames(dir: &std::path::Path, name: &str, t: &TrackOut) -> (u64, f64) {
    let path = dir.join(format!("{name}.mp4"));
    let mut all = t.init.clone();
    all.extend(&t.bytes);
    std::fs::write(&path, all).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames:format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let n = lines.next().unwrap_or("0").trim().parse().unwrap_or(0);
    let d = lines.next().unwrap_or("0").trim().parse().unwrap_or(0.0);
    (n, d)
}

fn check_parts(name: &str, t: &TrackOut, part_target: f64, frame_s: f64) {
    assert!(t.ended, "{name} did not end");
    assert!(!t.parts.is_empty(), "{name} has no parts");
    assert!(t.parts[0].3, "{name}: first part starts a segment");
    for w in t.parts.windows(2) {
        // Continuous timeline: each part starts where the last ended.
        assert!(
            (w[0].0 + w[0].1 - w[1].0).abs() < 1e-3,
            "{name}: gap between parts {w:?}"
        );
    }
    for p in &t.parts {
        assert!(
            p.1 <= part_target + frame_s + 1e-6,
            "{name}: part of {} s",
            p.1
        );
        if p.3 {
            assert!(p.2, "{name}: a segment starts with an independent part");
        }
    }
    assert!(
        (t.parts[0].0 - 100.0).abs() < 0.2,
        "{name}: timeline offset, starts at {}",
        t.parts[0].0
    );
}

#[test]
fn a_file_played_live_is_paced_and_cut_into_parts_that_decode() {
    let (tracks, _, wall) = run(
        LiveSource::File {
            path: samples::path(samples::BIG_BUCK_BUNNY),
            looped: false,
        },
        None,
    );
    // 5.3 s of media take about 5.3 s of wall time: paced, not raced.
    assert!(wall >= 4.8, "played in {wall:.2} s");
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(tracks.keys().collect::<Vec<_>>(), ["240p", "360p", "audio"]);
    for (name, t) in &tracks {
        check_parts(name, t, 0.5, 0.04);
        let (n, d) = frames(dir.path(), name, t);
        if name != "audio" {
            assert_eq!(n, 132, "{name}: frames decoded");
            // Segments start every 2 s: keyframes aligned.
            let starts: Vec<f64> = t.parts.iter().filter(|p| p.3).map(|p| p.0).collect();
            assert_eq!(starts.len(), 3, "{name}: {starts:?}");
        }
        assert!(d > 5.0, "{name}: {d} s");
    }
}

#[test]
fn the_generator_runs_until_stopped_and_reports_events() {
    let (tracks, events, wall) = run(
        LiveSource::Generator {
            width: 640,
            height: 360,
            event_interval_s: 1.0,
            seed: 7,
        },
        Some(Duration::from_secs(6)),
    );
    assert!(wall < 15.0, "stop took too long: {wall:.1} s");
    assert!(!events.is_empty(), "no generator events in 6 s at 1/s");
    let dir = tempfile::tempdir().unwrap();
    for (name, t) in &tracks {
        check_parts(name, t, 0.5, 0.04);
        let (n, _) = frames(dir.path(), name, t);
        if name != "audio" {
            assert!(n >= 100, "{name}: {n} frames in 6 s");
        }
    }
    for e in &events {
        assert!(*e >= 100.0, "event media time on the channel clock: {e}");
    }
}

#[test]
fn a_looped_file_continues_its_timeline_across_loops() {
    // Unpaced (as fast as the encoders go) for 3 s of wall time: about two
    // passes of the 5.3 s sample; audio runs past the last frame of each
    // pass, so the next pass must start after both.
    let (tracks, _, _) = run_with(
        LiveSource::File {
            path: samples::path(samples::BIG_BUCK_BUNNY),
            looped: true,
        },
        Some(Duration::from_secs(3)),
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, t) in &tracks {
        check_parts(name, t, 0.5, 0.04);
        let (n, d) = frames(dir.path(), name, t);
        if name != "audio" {
            assert!(n > 132, "{name}: {n} frames: did not loop");
        }
        assert!(d > 5.3, "{name}: {d} s");
    }
}
