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
            PipelineEvent::Progress(_) | PipelineEvent::SceneChange { .. } => {}
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

/// Generate a fixture with the ffmpeg CLI (libavfilter sources).
fn fixture(dir: &std::path::Path, name: &str, args: &[&str]) -> std::path::PathBuf {
    let out = dir.join(name);
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg CLI for fixtures");
    assert!(status.success(), "fixture {name}");
    out
}

/// Decode the first frame of a rendition (init + first segment).
fn first_frame(track_dir: &std::path::Path) -> ffmpeg_next::frame::Video {
    use ffmpeg_next as ff;
    let mut bytes = std::fs::read(track_dir.join("init.mp4")).unwrap();
    bytes.extend(std::fs::read(track_dir.join("seg_00000.m4s")).unwrap());
    let tmp = track_dir.join("first.mp4");
    std::fs::write(&tmp, bytes).unwrap();
    let mut input = ff::format::input(&tmp).unwrap();
    let stream = input.streams().best(ff::media::Type::Video).unwrap();
    let index = stream.index();
    let mut dec = ff::codec::context::Context::from_parameters(stream.parameters())
        .unwrap()
        .decoder()
        .video()
        .unwrap();
    let mut frame = ff::frame::Video::empty();
    for (s, packet) in input.packets() {
        if s.index() == index {
            dec.send_packet(&packet).unwrap();
            if dec.receive_frame(&mut frame).is_ok() {
                return frame;
            }
        }
    }
    dec.send_eof().unwrap();
    dec.receive_frame(&mut frame).unwrap();
    frame
}

/// Mean of a plane's rows `rows` (8-bit samples).
fn plane_mean(
    frame: &ffmpeg_next::frame::Video,
    plane: usize,
    rows: std::ops::Range<usize>,
) -> f64 {
    let stride = frame.stride(plane);
    let width = frame.plane_width(plane) as usize;
    let data = frame.data(plane);
    let mut sum = 0u64;
    let mut n = 0u64;
    for y in rows {
        for x in 0..width {
            sum += u64::from(data[y * stride + x]);
            n += 1;
        }
    }
    sum as f64 / n as f64
}

#[test]
fn rotation_metadata_is_applied_clockwise() {
    let dir = tempfile::tempdir().unwrap();
    // 320x240, left half red, right half blue, displayed rotated 90°
    // clockwise: the red half must end up on top of a 240x320 picture.
    let src = fixture(
        dir.path(),
        "rotated.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=red:size=160x240:rate=25:duration=2",
            "-f",
            "lavfi",
            "-i",
            "color=blue:size=160x240:rate=25:duration=2",
            "-filter_complex",
            "[0][1]hstack",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let src = with_display_rotation(&src, &dir.path().join("rotated-cw90.mp4"), 90.0);
    let info = stream_media::probe(&src, &stream_media::Limits::default()).unwrap();
    assert_eq!(info.video.rotation, 90);
    assert_eq!(
        (info.video.display_width, info.video.display_height),
        (240, 320)
    );
    let out = tempfile::tempdir().unwrap();
    let cancel = AtomicBool::new(false);
    let mut plan = None;
    transcode(
        &src,
        out.path(),
        &TranscodeOptions::default(),
        &cancel,
        |ev| {
            if let PipelineEvent::Planned(p) = ev {
                plan = Some(p)
            }
        },
    )
    .unwrap();
    let plan = plan.unwrap();
    assert_eq!(plan.tracks[0].name, "240p");
    let r = decode_rendition(&out.path().join("240p")).unwrap();
    assert_eq!(r.video_size, Some((180, 240)));
    assert_eq!(r.decoded_units, 50);
    let f = first_frame(&out.path().join("240p"));
    // Cr (plane 2) is high for red, low for blue.
    let top = plane_mean(&f, 2, 0..40);
    let bottom = plane_mean(&f, 2, 80..120);
    assert!(
        top > 200.0 && bottom < 130.0,
        "Cr top {top:.0}, bottom {bottom:.0}"
    );
}

#[test]
fn odd_sized_444_source_gets_even_420_output() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(
        dir.path(),
        "odd.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=321x241:rate=30000/1001:duration=2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv444p",
        ],
    );
    let (out, plan, _) = run_path(&src);
    assert_eq!(plan.tracks.len(), 1);
    let r = decode_rendition(&out.path().join("240p")).unwrap();
    assert_eq!(r.video_size, Some((320, 240)));
    assert_eq!(r.decoded_units, 60);
}

fn run_path(src: &std::path::Path) -> (tempfile::TempDir, stream_media::Plan, Vec<String>) {
    let out = tempfile::tempdir().unwrap();
    let mut plan = None;
    let cancel = AtomicBool::new(false);
    transcode(
        src,
        out.path(),
        &TranscodeOptions::default(),
        &cancel,
        |ev| {
            if let PipelineEvent::Planned(p) = ev {
                plan = Some(p)
            }
        },
    )
    .unwrap();
    (out, plan.unwrap(), Vec::new())
}

#[test]
fn playlists_name_relative_uris() {
    let (out, plan, _) = run(samples::CARPHONE);
    let text =
        std::fs::read_to_string(out.path().join(&plan.tracks[0].name).join("index.m3u8")).unwrap();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{text}");
    assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{text}");
    assert!(text.contains("\nseg_00000.m4s\n"), "{text}");
    assert!(!text.contains('/'), "absolute or nested URIs: {text}");
}

/// Remux `src` to `dst` with a display matrix that rotates the picture
/// `cw_degrees` clockwise for display (`av_display_rotation_set` in FFmpeg
/// 5.1 takes a clockwise angle; ffprobe then shows "rotation: -90", as for a
/// phone's portrait clip). FFmpeg 5.1's CLI has no option to write one.
fn with_display_rotation(
    src: &std::path::Path,
    dst: &std::path::Path,
    cw_degrees: f64,
) -> std::path::PathBuf {
    use ffmpeg_next as ff;
    ff::init().unwrap();
    let mut input = ff::format::input(src).unwrap();
    let mut output = ff::format::output(dst).unwrap();
    let in_stream = input.streams().best(ff::media::Type::Video).unwrap();
    let index = in_stream.index();
    let in_tb = in_stream.time_base();
    {
        let mut out_stream = output
            .add_stream(ff::encoder::find(ff::codec::Id::None))
            .unwrap();
        out_stream.set_parameters(in_stream.parameters());
        // SAFETY: codec_tag reset and a 9 x i32 side data buffer allocated by
        // libav and filled by av_display_rotation_set.
        unsafe {
            (*out_stream.parameters().as_mut_ptr()).codec_tag = 0;
            let data = ff::ffi::av_stream_new_side_data(
                out_stream.as_mut_ptr(),
                ff::ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
                9 * 4,
            );
            assert!(!data.is_null());
            ff::ffi::av_display_rotation_set(data as *mut i32, cw_degrees);
        }
    }
    output.write_header().unwrap();
    let out_tb = output.stream(0).unwrap().time_base();
    for (stream, mut packet) in input.packets() {
        if stream.index() != index {
            continue;
        }
        packet.rescale_ts(in_tb, out_tb);
        packet.set_stream(0);
        packet.set_position(-1);
        packet.write_interleaved(&mut output).unwrap();
    }
    output.write_trailer().unwrap();
    dst.to_path_buf()
}

/// Hostile timestamps and mid-stream size changes are input errors with a
/// reason, found within the first seconds of decoding (never a loop that
/// steps through the gap).
#[test]
fn hostile_timestamps_and_size_changes_fail_fast_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    // Video timestamps jump 10^12 s ahead after one second; no duration in
    // the header (Matroska written as live).
    let jump = fixture(
        dir.path(),
        "jump.mkv",
        &[
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
        ],
    );
    // 320x240 then 640x480 in one MPEG-TS (two streams cut together).
    let a = fixture(
        dir.path(),
        "a.ts",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=2",
            "-c:v",
            "libx264",
        ],
    );
    let b = fixture(
        dir.path(),
        "b.ts",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x480:rate=25:duration=2",
            "-output_ts_offset",
            "2",
            "-c:v",
            "libx264",
        ],
    );
    let sizes = dir.path().join("sizes.ts");
    let mut bytes = std::fs::read(&a).unwrap();
    bytes.extend(std::fs::read(&b).unwrap());
    std::fs::write(&sizes, bytes).unwrap();
    // Timestamps that go back a minute after two seconds: a stream at
    // 60 s, then the same one at 0 s.
    let late = fixture(
        dir.path(),
        "late.ts",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=2",
            "-output_ts_offset",
            "60",
            "-c:v",
            "libx264",
        ],
    );
    let back = dir.path().join("back.ts");
    let mut bytes = std::fs::read(&late).unwrap();
    bytes.extend(std::fs::read(&a).unwrap());
    std::fs::write(&back, bytes).unwrap();

    for (src, words) in [
        (&jump, "timestamps jump"),
        (&back, "timestamps go back"),
        (
            &sizes,
            "frame size changes mid-stream from 320x240 to 640x480",
        ),
    ] {
        let out = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let err = transcode(
            src,
            out.path(),
            &TranscodeOptions::default(),
            &AtomicBool::new(false),
            |_| {},
        )
        .expect_err("hostile input accepted");
        assert!(err.is_input_error(), "{src:?}: {err}");
        assert!(err.to_string().contains(words), "{src:?}: {err}");
        // Generous bound for a loaded 2-core machine: the old stepping loop
        // never returned at all.
        assert!(
            started.elapsed().as_secs() < 60,
            "{src:?} took {:?}",
            started.elapsed()
        );
    }
}
