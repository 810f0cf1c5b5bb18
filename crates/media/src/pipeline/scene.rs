//! The scene-detector stage: feeds decoded frames to [`crate::scene`].

use crossbeam_channel::{Receiver, Sender};
use ffmpeg_next as ff;

use super::{FrameMsg, Note};
use crate::error::MediaError;

/// The scene detector: another consumer of decoded frames (its own thread
/// and bounded channel, like a rung). Only 8-bit YUV luma is read; other
/// pixel formats run no detection.
pub(super) fn scene_stage(
    threshold: f64,
    video_tb: ff::Rational,
    rx: Receiver<FrameMsg>,
    note_tx: Sender<Note>,
) -> Result<(), MediaError> {
    use ff::format::Pixel;
    let mut detector = crate::scene::SceneDetector::new(threshold);
    loop {
        let src = match rx.recv() {
            Ok(FrameMsg::Frame(f)) => f,
            Ok(FrameMsg::End) => return Ok(()),
            Err(_) => return Err(MediaError::Pipeline("decoder stopped".into())),
        };
        let f = &src.frame;
        if !matches!(
            f.format(),
            Pixel::YUV420P
                | Pixel::YUVJ420P
                | Pixel::YUV422P
                | Pixel::YUVJ422P
                | Pixel::YUV444P
                | Pixel::YUVJ444P
                | Pixel::NV12
                | Pixel::GRAY8
        ) {
            continue;
        }
        let grid = crate::scene::luma_grid(
            f.data(0),
            f.width() as usize,
            f.height() as usize,
            f.stride(0),
        );
        if let Some(score) = detector.push(grid) {
            let media_time_s = src.pts as f64 * f64::from(video_tb);
            // The relay loop drains notes continuously; a closed channel
            // means the job is ending anyway.
            let _ = note_tx.send(Note::Scene {
                media_time_s,
                score,
            });
        }
    }
}
