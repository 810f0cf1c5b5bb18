//! Decoding received elementary streams (the native stream's Annex B H.264
//! access units and ADTS AAC frames) on a thread of its own, behind a
//! bounded channel: the client (`streamctl play`) checks that what it
//! receives decodes, and how long decoding takes.

use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender, TrySendError};
use ffmpeg_next as ffmpeg;

use crate::error::MediaError;

/// Access units queued for the decoder thread at most.
pub const DECODE_QUEUE: usize = 256;

/// Which elementary stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elementary {
    /// H.264, Annex B byte stream with in-band parameter sets.
    H264,
    /// AAC with ADTS headers.
    AacAdts,
    /// Baseline JPEG pictures (kn-sock's video frames).
    Jpeg,
}

/// What a decoder thread saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeReport {
    /// Packets given to the decoder.
    pub packets: u64,
    /// Frames it produced (pictures, or audio frames).
    pub frames: u64,
    /// Packets it refused (corrupt input, or no keyframe yet).
    pub errors: u64,
    /// Packets dropped because the decoder thread fell behind.
    pub dropped: u64,
    /// Size of the last picture, pixels (0 for audio).
    pub width: u32,
    pub height: u32,
}

/// A decoder thread.
pub struct StreamDecoder {
    tx: Option<Sender<Vec<u8>>>,
    dropped: u64,
    thread: Option<JoinHandle<DecodeReport>>,
}

impl StreamDecoder {
    /// Start a decoder thread for `kind`.
    ///
    /// Errors: [`MediaError`] if libav has no such decoder.
    pub fn start(kind: Elementary) -> Result<StreamDecoder, MediaError> {
        ffmpeg::init().map_err(|e| MediaError::Pipeline(format!("libav init: {e}")))?;
        let id = match kind {
            Elementary::H264 => ffmpeg::codec::Id::H264,
            Elementary::AacAdts => ffmpeg::codec::Id::AAC,
            Elementary::Jpeg => ffmpeg::codec::Id::MJPEG,
        };
        let codec = ffmpeg::decoder::find(id)
            .ok_or_else(|| MediaError::Pipeline(format!("no {id:?} decoder")))?;
        let ctx = ffmpeg::codec::Context::new_with_codec(codec);
        let mut decoder = ctx
            .decoder()
            .open_as(codec)
            .map_err(|e| MediaError::Pipeline(format!("opening the {id:?} decoder: {e}")))?;
        let (tx, rx) = bounded::<Vec<u8>>(DECODE_QUEUE);
        let thread = std::thread::Builder::new()
            .name(format!("decode-{kind:?}"))
            .spawn(move || {
                let mut report = DecodeReport::default();
                let mut picture = ffmpeg::frame::Video::empty();
                let mut samples = ffmpeg::frame::Audio::empty();
                let mut drain = |decoder: &mut ffmpeg::decoder::Opened,
                                 report: &mut DecodeReport| {
                    // Bounded: each call returns one frame or an error.
                    if kind != Elementary::AacAdts {
                        while decoder.receive_frame(&mut picture).is_ok() {
                            report.frames += 1;
                            report.width = picture.width();
                            report.height = picture.height();
                        }
                    } else {
                        while decoder.receive_frame(&mut samples).is_ok() {
                            report.frames += 1;
                        }
                    }
                };
                for payload in rx {
                    report.packets += 1;
                    let packet = ffmpeg::Packet::copy(&payload);
                    if decoder.send_packet(&packet).is_err() {
                        report.errors += 1;
                    }
                    drain(&mut decoder, &mut report);
                }
                let _ = decoder.send_eof();
                drain(&mut decoder, &mut report);
                report
            })
            .map_err(|e| MediaError::Pipeline(format!("decoder thread: {e}")))?;
        Ok(StreamDecoder {
            tx: Some(tx),
            dropped: 0,
            thread: Some(thread),
        })
    }

    /// Queue one access unit; dropped (and counted) if the thread is
    /// [`DECODE_QUEUE`] behind.
    pub fn submit(&mut self, payload: &[u8]) {
        if let Some(tx) = &self.tx {
            match tx.try_send(payload.to_vec()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.dropped += 1
                }
            }
        }
    }

    /// Flush and join the thread.
    pub fn finish(mut self) -> DecodeReport {
        self.tx = None;
        let mut report = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        report.dropped = self.dropped;
        report
    }
}
