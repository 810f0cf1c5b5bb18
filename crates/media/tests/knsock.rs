//! The kn-sock producer on the samples: JPEG tiers that decode and differ
//! in quantisation, exact PCM chunks, one paced media timeline across
//! loops, silence without audio, a clear failure on a bad file.

use std::time::{Duration, Instant};

use ffmpeg_next as ff;
use stream_media::knsock::{
    KnSockInput, KnSockOutput, KnSockProducer, PCM_CHUNK_BYTES, PCM_CHUNK_FRAMES, PCM_RATE,
};
use stream_testkit::samples;

/// Sum of the luma quantisation table (DQT table 0) of a baseline JPEG.
fn luma_dqt_sum(jpeg: &[u8]) -> u32 {
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        assert_eq!(jpeg[i], 0xff, "marker expected at {i}");
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if marker == 0xdb && jpeg[i + 4] & 0x0f == 0 && jpeg[i + 4] >> 4 == 0 {
            return jpeg[i + 5..i + 5 + 64].iter().map(|&b| u32::from(b)).sum();
        }
        i += 2 + len;
    }
    panic!("no luma DQT")
}

/// Decode one JPEG with libavcodec's mjpeg decoder: (width, height).
fn decode_jpeg(jpeg: &[u8]) -> (u32, u32) {
    let codec = ff::decoder::find(ff::codec::Id::MJPEG).unwrap();
    let mut dec = ff::codec::context::Context::new_with_codec(codec)
        .decoder()
        .video()
        .unwrap();
    let packet = ff::Packet::copy(jpeg);
    dec.send_packet(&packet).unwrap();
    dec.send_eof().unwrap();
    let mut frame = ff::frame::Video::empty();
    dec.receive_frame(&mut frame).unwrap();
    (frame.width(), frame.height())
}

#[test]
fn tiers_decode_and_timeline_is_paced_across_loops() {
    let producer = KnSockProducer::start(KnSockInput {
        video: samples::path(samples::CARPHONE),
        audio: Some(samples::path(samples::BIG_BUCK_BUNNY)),
    })
    .unwrap();
    producer.demand().add(0);
    producer.demand().add(5);
    let started = Instant::now();
    let (mut frames, mut chunks) = (Vec::new(), Vec::new());
    // carphone: 4.004 s at 29.97 fps; read past one loop.
    while frames.len() < 150 {
        match producer
            .output()
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
        {
            KnSockOutput::Frame(f) => frames.push(f),
            KnSockOutput::Audio(c) => chunks.push(c),
            KnSockOutput::Failed(e) => panic!("failed: {e}"),
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let media = frames.last().unwrap().pts_s - frames[0].pts_s;
    assert!(media > 4.5, "150 frames span {media} s");
    assert!(
        wall > media * 0.9,
        "not paced: {media} s of media in {wall} s"
    );
    assert!(
        frames.windows(2).all(|w| w[1].pts_s > w[0].pts_s),
        "PTS increase across the loop"
    );
    let steps: Vec<f64> = frames.windows(2).map(|w| w[1].pts_s - w[0].pts_s).collect();
    assert!(
        steps.iter().all(|&d| (d - 1001.0 / 30000.0).abs() < 0.002),
        "frame steps {steps:?}"
    );
    // Frames after the demand was registered carry tiers 0 and 5 only.
    let f = &frames[100];
    assert!(f.tiers[1].is_none() && f.tiers[4].is_none());
    let (low, high) = (f.tiers[0].as_ref().unwrap(), f.tiers[5].as_ref().unwrap());
    assert_eq!(decode_jpeg(low), (176, 144));
    assert_eq!(decode_jpeg(high), (176, 144));
    assert!(luma_dqt_sum(low) > 2 * luma_dqt_sum(high));
    assert!(low.len() < high.len());
    // Audio: exact chunks on their own exact timeline.
    assert!(chunks.len() > 100, "{} chunks", chunks.len());
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.data.len(), PCM_CHUNK_BYTES);
        let expected = (i * PCM_CHUNK_FRAMES) as f64 / f64::from(PCM_RATE);
        assert!((c.pts_s - expected).abs() < 1e-9);
    }
    assert!(
        chunks.iter().any(|c| c.data.iter().any(|&b| b != 0)),
        "bigbuckbunny is not silent"
    );
    let snapshot = producer.stats().clone();
    drop(producer);
    assert!(snapshot.encodes.load(std::sync::atomic::Ordering::Relaxed) >= 150);
}

#[test]
fn no_audio_is_silence_and_a_bad_file_fails() {
    let producer = KnSockProducer::start(KnSockInput {
        video: samples::path(samples::BIKES),
        audio: None,
    })
    .unwrap();
    let mut silent = 0;
    while silent < 20 {
        match producer
            .output()
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
        {
            KnSockOutput::Audio(c) => {
                assert!(c.data.iter().all(|&b| b == 0));
                silent += 1;
            }
            KnSockOutput::Frame(f) => {
                // Nobody watches: quality 80 (tier 4) only.
                assert!(f.tiers[4].is_some());
                assert_eq!(f.tiers.iter().flatten().count(), 1);
            }
            KnSockOutput::Failed(e) => panic!("failed: {e}"),
        }
    }
    drop(producer);

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.mp4");
    std::fs::write(&bad, b"not a video at all").unwrap();
    let producer = KnSockProducer::start(KnSockInput {
        video: bad.clone(),
        audio: Some(bad),
    })
    .unwrap();
    match producer
        .output()
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
    {
        KnSockOutput::Failed(e) => assert!(e.is_input_error(), "{e}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}
