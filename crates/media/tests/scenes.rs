//! The scene detector inside the pipeline: a generated clip with known cut
//! positions (ffmpeg CLI, lavfi sources) and bigbuckbunny (a real cut,
//! also reported by libavfilter's `scdet`). Detected within one frame.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use stream_media::{transcode, PipelineEvent, TranscodeOptions};
use stream_testkit::samples;

const FRAME_S: f64 = 1.0 / 25.0;

fn scenes(input: &Path) -> Vec<(f64, f64)> {
    let out = tempfile::tempdir().unwrap();
    let opts = TranscodeOptions {
        ladder: "144:200k".parse().unwrap(),
        x264_preset: "ultrafast".into(),
        ..Default::default()
    };
    let mut cuts = Vec::new();
    transcode(input, out.path(), &opts, &AtomicBool::new(false), |ev| {
        if let PipelineEvent::SceneChange {
            media_time_s,
            score,
        } = ev
        {
            cuts.push((media_time_s, score));
        }
    })
    .unwrap();
    cuts
}

#[test]
fn generated_clip_cuts_are_found_within_one_frame() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("cuts.mp4");
    // testsrc 0–2 s, smptebars 2–3.6 s, rgbtestsrc 3.6–5 s, testsrc2 5–6 s.
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x180:rate=25:duration=2",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "smptebars=size=320x180:rate=25:duration=1.6",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "rgbtestsrc=size=320x180:rate=25:duration=1.4",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=25:duration=1",
        ])
        .args([
            "-filter_complex",
            "[0][1][2][3]concat=n=4:v=1:a=0,format=yuv420p",
        ])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "250"])
        .arg(&clip)
        .status()
        .expect("ffmpeg CLI (apt-get install ffmpeg)");
    assert!(status.success());
    let cuts = scenes(&clip);
    let times: Vec<f64> = cuts.iter().map(|c| c.0).collect();
    let expected = [2.0, 3.6, 5.0];
    assert_eq!(times.len(), expected.len(), "cuts at {times:?}");
    for (got, want) in times.iter().zip(expected) {
        assert!(
            (got - want).abs() <= FRAME_S + 1e-6,
            "cut at {got} s, expected {want} s (all: {times:?})"
        );
    }
}

/// Cuts libavfilter's `scdet` (threshold 10) reports, seconds.
fn scdet(input: &Path) -> Vec<(f64, f64)> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(input)
        .args(["-vf", "scdet=t=10", "-f", "null", "-"])
        .output()
        .expect("ffmpeg CLI");
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .filter_map(|l| {
            let score = l.split("lavfi.scd.score: ").nth(1)?.split(',').next()?;
            let time = l.split("lavfi.scd.time: ").nth(1)?.trim();
            Some((time.parse().ok()?, score.parse().ok()?))
        })
        .collect()
}

/// bikes (real footage with cuts): every clear cut scdet reports (score
/// ≥ 15) is found within one frame, and nothing far from scdet's cuts.
#[test]
fn bikes_real_cuts_match_scdet() {
    let path = samples::path(samples::BIKES);
    let reference = scdet(&path);
    let clear: Vec<f64> = reference
        .iter()
        .filter(|(_, s)| *s >= 15.0)
        .map(|(t, _)| *t)
        .collect();
    assert!(clear.len() >= 3, "scdet found {reference:?}");
    let ours: Vec<f64> = scenes(&path).iter().map(|c| c.0).collect();
    for t in &clear {
        assert!(
            ours.iter().any(|o| (o - t).abs() <= FRAME_S + 1e-6),
            "scdet cut at {t} s not found; ours: {ours:?}"
        );
    }
    for o in &ours {
        assert!(
            reference
                .iter()
                .any(|(t, _)| (o - t).abs() <= FRAME_S + 1e-6),
            "cut at {o} s that scdet does not report: {reference:?}"
        );
    }
}

/// bigbuckbunny's 5.3 s excerpt is one continuous shot (scdet reports no
/// cut either): no false cuts from its motion.
#[test]
fn bigbuckbunny_single_shot_has_no_false_cuts() {
    let path = samples::path(samples::BIG_BUCK_BUNNY);
    assert!(scdet(&path).is_empty());
    assert_eq!(scenes(&path), Vec::<(f64, f64)>::new());
}
