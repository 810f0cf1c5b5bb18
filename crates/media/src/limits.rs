//! Input limits and the safe way to open an untrusted media file.

use std::path::Path;

use ffmpeg_next as ff;

use crate::error::MediaError;

/// Demuxers accepted for uploads. Anything that can make libavformat read
/// other files or URLs (hls, dash, concat, image2 patterns, tee, sdp, rtsp,
/// ...) is deliberately absent: a media file must never open another resource.
pub const ALLOWED_DEMUXERS: &str =
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,ogg,asf,mxf,ivf,wav,mp3,aac,h264,hevc,m4v,yuv4mpegpipe";

/// Bounds applied to an input before any frame is decoded.
///
/// Defaults: 8192×8192 pixels at most and 35.4 Mpx per frame (8K UHD),
/// 6 hours, 1–240 frames/s, 16 streams.
#[derive(Debug, Clone)]
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_dimension: 8192,
            max_pixels: 7680 * 4608,
            max_duration_s: 6.0 * 3600.0,
            max_frame_rate: 240.0,
            max_streams: 16,
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
