//! Transcode the real samples and read the outputs back.

use std::sync::atomic::AtomicBool;

use stream_media::{transcode, PipelineEvent, TrackKind, TranscodeOptions};
use stream_testkit::hls::decode_rendition;
use stream_testkit::samples;

fn run(sample: &str) -> (tempfile::TempDir, stream_media::Plan, Vec<String>) {
    let out = tempfile::tempdir().unwrap();
    let mut plan = None;
    let mut closed = Vec::new();
    let cancel = AtomicBool::new(false);
    let report = transcode(
        &samples::path(sample),
        out.path(),
        &TranscodeOptions::default(),
        &cancel,
        |ev| match ev {
            PipelineEvent::Planned(p) => plan = Some(p),
            PipelineEvent::SegmentClosed { track } => closed.push(track),
            PipelineEvent::Progress(_) => {}
        },
    )
    .unwrap_or_else(|e| panic!("{sample}: {e}"));
    assert!(report.frames_decoded > 0);
    (out, plan.expect("plan announced"), closed)
}

#[test]
fn bigbuckbunny_ladder_is_aligned_and_complete() {
    let (out, plan, closed) = run(samples::BIG_BUCK_BUNNY);
    let names: Vec<_> = plan.tracks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["720p", "480p", "360p", "240p", "audio"]);
    assert!(closed.iter().any(|t| t == "720p"));
    let source_s = 5.28;
    let frame_s = 1.0 / 25.0;
    let mut starts: Option<Vec<f64>> = None;
    for track in &plan.tracks {
        let r = decode_rendition(&out.path().join(&track.name)).unwrap();
        assert!(r.ended, "{} has no ENDLIST", track.name);
        match &track.kind {
            TrackKind::Video { plan: p, .. } => {
                assert_eq!(r.video_size, Some((p.width, p.height)));
                assert!(
                    (r.playlist_duration_s - source_s).abs() <= frame_s + 1e-3,
                    "{}: playlist {} s vs source {source_s}",
                    track.name,
                    r.playlist_duration_s
                );
                assert_eq!(r.decoded_units, 132, "{} frames", track.name);
                assert!(r.segment_starts.iter().all(|(_, key)| *key));
                let s: Vec<f64> = r.segment_starts.iter().map(|(p, _)| *p).collect();
                match &starts {
                    None => starts = Some(s),
                    Some(first) => assert_eq!(first, &s, "{} boundaries differ", track.name),
                }
            }
            TrackKind::Audio { .. } => {
                assert!(
                    (r.decoded_duration_s - 5.31).abs() < 0.1,
                    "{}",
                    r.decoded_duration_s
                );
            }
        }
    }
    assert_eq!(starts.unwrap().len(), 3);
}

#[test]
fn silent_wide_and_ntsc_sources() {
    for (sample, frames, duration, size) in [
        (samples::BIKES, 250, 10.0, (564, 240)),
        // carphone is 176x144 with SAR 128:117: displayed (and output) 192x144.
        (samples::CARPHONE, 120, 4.004, (192, 144)),
    ] {
        let (out, plan, _) = run(sample);
        assert_eq!(plan.tracks.len(), 1, "{sample}: video only");
        let r = decode_rendition(&out.path().join(&plan.tracks[0].name)).unwrap();
        assert_eq!(r.decoded_units, frames, "{sample}");
        assert_eq!(r.video_size, Some(size));
        assert!(
            (r.playlist_duration_s - duration).abs() <= 0.034,
            "{sample}: {}",
            r.playlist_duration_s
        );
    }
}
