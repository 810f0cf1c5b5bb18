//! Input limits and the safe way to open an untrusted media file.

use std::path::Path;

use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use crate::error::MediaError;

/// Demuxers accepted for uploads. Anything that can make libavformat read
/// other files or URLs (hls, dash, concat, image2 patterns, tee, sdp, rtsp,
/// ...) is deliberately absent: a media file must never open another resource.
pub const ALLOWED_DEMUXERS: &str =
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,ogg,asf,mxf,ivf,wav,mp3,aac,h264,hevc,m4v,yuv4mpegpipe";

/// Video decoders accepted for uploads (libavcodec codec names). Decoders
/// are a large attack surface (OSS-Fuzz finds bugs in rarely used ones
/// every month); only the codecs people actually upload are decoded.
pub const ALLOWED_VIDEO_DECODERS: &[&str] = &[
    "h264",
    "hevc",
    "vp8",
    "vp9",
    "av1",
    "mpeg4",
    "mpeg2video",
    "mpeg1video",
    "h263",
    "mjpeg",
    "prores",
    "dnxhd",
    "theora",
    "rawvideo",
    "msmpeg4v3",
    "wmv3",
    "vc1",
    "ffv1",
];

/// Audio decoders accepted for uploads; a stream with another codec is
/// dropped (the video is still published), never decoded.
pub const ALLOWED_AUDIO_DECODERS: &[&str] = &[
    "aac",
    "mp3",
    "mp2",
    "opus",
    "vorbis",
    "flac",
    "ac3",
    "eac3",
    "alac",
    "wmav2",
    "pcm_s16le",
    "pcm_s16be",
    "pcm_s24le",
    "pcm_s32le",
    "pcm_f32le",
    "pcm_u8",
    "pcm_alaw",
    "pcm_mulaw",
];

/// Bounds applied to an input before and while it is decoded.
///
/// Defaults: 8192×8192 pixels at most and 35.4 Mpx per frame (8K UHD),
/// 6 hours, 1–240 frames/s, 16 streams, timestamps that never jump more
/// than 10 s between consecutive frames.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    /// Largest accepted width or height, pixels.
    pub max_dimension: u32,
    /// Largest accepted width × height, pixels.
    pub max_pixels: u64,
    /// Longest accepted duration, seconds.
    pub max_duration_s: f64,
    /// Highest accepted average frame rate, frames/s.
    pub max_frame_rate: f64,
    /// Most streams a container may declare.
    pub max_streams: usize,
    /// Largest accepted jump, forward or backward, between the timestamps
    /// of consecutive video frames or audio frames, seconds. A larger jump
    /// is an input error ("timestamps jump"), never a gap to fill.
    pub max_timestamp_gap_s: f64,
}

impl Limits {
    /// Most video frames a job may decode: the longest duration at the
    /// highest frame rate (a bound on work however the timestamps lie).
    pub fn max_frames(&self) -> u64 {
        (self.max_duration_s * self.max_frame_rate).ceil() as u64
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_dimension: 8192,
            max_pixels: 7680 * 4608,
            max_duration_s: 6.0 * 3600.0,
            max_frame_rate: 240.0,
            max_streams: 16,
            max_timestamp_gap_s: 10.0,
        }
    }
}

/// Open `path` as an untrusted local media file: only the `file` protocol,
/// only [`ALLOWED_DEMUXERS`], bounded probing.
///
/// Errors: [`MediaError::Unsupported`] when libavformat cannot recognise or
/// refuses the format.
pub fn open_untrusted(path: &Path) -> Result<ff::format::context::Input, MediaError> {
    let mut options = ff::Dictionary::new();
    options.set("protocol_whitelist", "file");
    options.set("format_whitelist", ALLOWED_DEMUXERS);
    // Bounded probing: 20 MB / 10 s of media is plenty for any sane header.
    options.set("probesize", "20000000");
    options.set("analyzeduration", "10000000");
    ff::format::input_with_dictionary(path, options).map_err(|e| {
        MediaError::Unsupported(match e {
            ff::Error::InvalidData => "not a recognised media container".to_string(),
            other => other.to_string(),
        })
    })
}
