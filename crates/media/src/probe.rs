//! What a source contains, checked against [`Limits`] before decoding.

use std::path::Path;

use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use crate::error::MediaError;
use crate::limits::{open_untrusted, Limits, ALLOWED_AUDIO_DECODERS, ALLOWED_VIDEO_DECODERS};

/// A rational frame rate, frames per second = `num / den`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRate {
    pub num: i32,
    pub den: i32,
}

impl FrameRate {
    /// Frames per second as a float.
    pub fn fps(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }
}

/// The video stream of a source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VideoInfo {
    /// Stream index in the container.
    pub index: usize,
    /// Coded width and height, pixels.
    pub coded_width: u32,
    pub coded_height: u32,
    /// Width and height as displayed: sample aspect ratio applied and
    /// rotation applied (90°/270° swap them), pixels.
    pub display_width: u32,
    pub display_height: u32,
    /// Clockwise rotation to apply for display, one of 0, 90, 180, 270.
    pub rotation: u32,
    /// Average frame rate.
    pub frame_rate: FrameRate,
    /// Codec name, e.g. `h264`.
    pub codec: String,
}

/// The audio stream of a source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AudioInfo {
    /// Stream index in the container.
    pub index: usize,
    /// Channel count (6 for 5.1).
    pub channels: u16,
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// Codec name, e.g. `aac`.
    pub codec: String,
}

/// A probed source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Demuxer that recognised the file, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub format: String,
    /// Declared duration, seconds (0 when the header declares none).
    pub duration_s: f64,
    pub video: VideoInfo,
    pub audio: Option<AudioInfo>,
}

/// Open and validate `path`; see [`inspect`].
pub fn probe(path: &Path, limits: &Limits) -> Result<SourceInfo, MediaError> {
    let input = open_untrusted(path)?;
    inspect(&input, limits)
}

/// Describe an opened input and check it against `limits`.
///
/// Errors: [`MediaError::Invalid`] without a decodable video stream,
/// [`MediaError::Unsupported`] for a video codec outside
/// [`ALLOWED_VIDEO_DECODERS`], [`MediaError::LimitExceeded`] for dimensions, duration, frame rate or
/// stream count beyond `limits`.
pub fn inspect(
    input: &ff::format::context::Input,
    limits: &Limits,
) -> Result<SourceInfo, MediaError> {
    if input.nb_streams() as usize > limits.max_streams {
        return Err(MediaError::LimitExceeded(format!(
            "{} streams declared, at most {} accepted",
            input.nb_streams(),
            limits.max_streams
        )));
    }
    let duration_s = if input.duration() > 0 {
        input.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE)
    } else {
        0.0
    };
    if duration_s > limits.max_duration_s {
        return Err(MediaError::LimitExceeded(format!(
            "duration {duration_s:.0} s declared, at most {:.0} s accepted",
            limits.max_duration_s
        )));
    }

    let vstream = input
        .streams()
        .best(ff::media::Type::Video)
        .ok_or_else(|| MediaError::Invalid("no video stream".into()))?;
    let vparams = vstream.parameters();
    let vcodec_name = vparams.id().name();
    if !ALLOWED_VIDEO_DECODERS.contains(&vcodec_name) {
        return Err(MediaError::Unsupported(format!(
            "video codec {vcodec_name:?} is not accepted"
        )));
    }
    let vcodec = ff::codec::context::Context::from_parameters(vparams.clone())
        .map_err(|e| MediaError::Invalid(format!("video stream: {e}")))?;
    let vdec = vcodec
        .decoder()
        .video()
        .map_err(|e| MediaError::Unsupported(format!("video codec cannot be decoded: {e}")))?;
    let (w, h) = (vdec.width(), vdec.height());
    if w == 0 || h == 0 {
        return Err(MediaError::Invalid(format!(
            "video stream declares {w}x{h} pixels"
        )));
    }
    if w > limits.max_dimension
        || h > limits.max_dimension
        || u64::from(w) * u64::from(h) > limits.max_pixels
    {
        return Err(MediaError::LimitExceeded(format!(
            "video is {w}x{h} pixels, at most {m}x{m} and {p} pixels accepted",
            m = limits.max_dimension,
            p = limits.max_pixels
        )));
    }
    let frame_rate = pick_frame_rate(&vstream, limits)?;
    let rotation = display_rotation(&vstream);
    // Sample aspect ratio: widen (or narrow) the displayed width.
    let sar = vdec.aspect_ratio();
    let mut display_width = w;
    if sar.numerator() > 0 && sar.denominator() > 0 && sar.numerator() != sar.denominator() {
        let dw = f64::from(w) * f64::from(sar.numerator()) / f64::from(sar.denominator());
        display_width = (dw.round() as u32).clamp(2, limits.max_dimension * 2);
    }
    let (display_width, display_height) = if rotation % 180 == 90 {
        (h, display_width)
    } else {
        (display_width, h)
    };
    let video = VideoInfo {
        index: vstream.index(),
        coded_width: w,
        coded_height: h,
        display_width,
        display_height,
        rotation,
        frame_rate,
        codec: vdec.id().name().to_string(),
    };

    let audio = match input.streams().best(ff::media::Type::Audio) {
        None => None,
        // An audio codec outside the allow-list is dropped, never decoded.
        Some(astream) if !ALLOWED_AUDIO_DECODERS.contains(&astream.parameters().id().name()) => {
            None
        }
        Some(astream) => {
            let actx = ff::codec::context::Context::from_parameters(astream.parameters())
                .map_err(|e| MediaError::Invalid(format!("audio stream: {e}")))?;
            match actx.decoder().audio() {
                Ok(adec) if adec.channels() > 0 && adec.rate() > 0 => Some(AudioInfo {
                    index: astream.index(),
                    channels: adec.channels(),
                    sample_rate: adec.rate(),
                    codec: adec.id().name().to_string(),
                }),
                // An audio track we cannot decode is dropped, not fatal: the
                // video is still worth publishing.
                _ => None,
            }
        }
    };

    Ok(SourceInfo {
        format: input.format().name().to_string(),
        duration_s,
        video,
        audio,
    })
}

fn pick_frame_rate(
    stream: &ff::format::stream::Stream,
    limits: &Limits,
) -> Result<FrameRate, MediaError> {
    let valid = |r: ff::Rational| {
        r.numerator() > 0
            && r.denominator() > 0
            && (f64::from(r.numerator()) / f64::from(r.denominator())) >= 1.0
    };
    let rate = [stream.avg_frame_rate(), stream.rate()]
        .into_iter()
        .find(|r| valid(*r))
        .ok_or_else(|| MediaError::Invalid("video stream declares no frame rate".into()))?;
    let rate = FrameRate {
        num: rate.numerator(),
        den: rate.denominator(),
    };
    if rate.fps() > limits.max_frame_rate {
        return Err(MediaError::LimitExceeded(format!(
            "frame rate {:.2} fps, at most {} accepted",
            rate.fps(),
            limits.max_frame_rate
        )));
    }
    Ok(rate)
}

/// Clockwise display rotation from the stream's display matrix
/// (ISO/IEC 14496-12 `tkhd` matrix, exported as `AV_PKT_DATA_DISPLAYMATRIX`),
/// snapped to a multiple of 90°.
fn display_rotation(stream: &ff::format::stream::Stream) -> u32 {
    for side in stream.side_data() {
        if side.kind() == ff::codec::packet::side_data::Type::DisplayMatrix
            && side.data().len() >= 9 * 4
        {
            // SAFETY: the side data holds a 3×3 i32 matrix (checked length);
            // av_display_rotation_get only reads it.
            let ccw =
                unsafe { ff::ffi::av_display_rotation_get(side.data().as_ptr() as *const i32) };
            if ccw.is_nan() {
                return 0;
            }
            let cw = (-ccw.round() as i64).rem_euclid(360);
            return (((cw + 45) / 90 * 90) % 360) as u32;
        }
    }
    0
}
