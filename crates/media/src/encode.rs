//! Opening libx264 / AAC encoders with checked options.

use ff::codec;
use ffmpeg_next as ff;

use crate::error::{MediaError, Stage};
use crate::ladder::RenditionPlan;
use crate::probe::FrameRate;

/// Settings shared by every video rung of one job.
#[derive(Debug, Clone)]
pub struct VideoEncoderSettings {
    /// x264 preset, e.g. `veryfast`.
    pub preset: String,
    /// Segment (and GOP) duration, seconds.
    pub segment_duration_s: f64,
    /// x264 threads per rung; 0 lets x264 decide.
    pub threads: usize,
    /// x264 `tune=zerolatency` (no B-frames, no lookahead, sliced
    /// threads): frames leave the encoder as soon as they enter it, for the
    /// shortest glass-to-glass latency of live channels, at a bitrate cost.
    pub zero_latency: bool,
    /// x264 sliced threads instead of frame threads (live channels): each
    /// frame is split across threads, so threading adds no frames of
    /// encoder delay (frame threads add one per thread, plus a synced
    /// lookahead); rate control, B-frames and lookahead are unchanged.
    pub sliced_threads: bool,
}

/// Open libx264 for one rung.
///
/// Keyframes are aligned across rungs by forcing an IDR on the same source
/// frames (the decode stage marks them); x264's own keyframe placement is
/// pinned so it never adds one: `keyint = min-keyint = ceil(fps × segment) + 1`,
/// `scenecut=0`, closed GOPs.
pub fn open_video_encoder(
    plan: &RenditionPlan,
    time_base: ff::Rational,
    frame_rate: FrameRate,
    settings: &VideoEncoderSettings,
) -> Result<ff::encoder::video::Encoder, MediaError> {
    let codec = ff::encoder::find_by_name("libx264")
        .ok_or_else(|| MediaError::Pipeline("libx264 encoder is not available".into()))?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .stage("video encoder")?;
    enc.set_width(plan.width);
    enc.set_height(plan.height);
    enc.set_format(ff::format::Pixel::YUV420P);
    enc.set_time_base(time_base);
    enc.set_frame_rate(Some(ff::Rational::new(frame_rate.num, frame_rate.den)));
    enc.set_bit_rate(plan.video_bitrate as usize);
    enc.set_max_bit_rate(plan.max_bitrate as usize);
    enc.set_flags(codec::Flags::GLOBAL_HEADER);
    let gop = (frame_rate.fps() * settings.segment_duration_s).ceil() as u32 + 1;
    enc.set_gop(gop);
    // SAFETY: plain field writes on an allocated, not yet opened context.
    unsafe {
        let raw = enc.as_mut_ptr();
        (*raw).rc_buffer_size = plan.buffer_size.min(i32::MAX as u64) as i32;
        (*raw).keyint_min = gop as i32;
        (*raw).thread_count = settings.threads as i32;
    }
    let mut options = ff::Dictionary::new();
    options.set("preset", &settings.preset);
    if settings.zero_latency {
        options.set("tune", "zerolatency");
    }
    options.set("profile", "high");
    options.set("forced-idr", "1");
    options.set(
        "x264-params",
        &format!(
            "keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0{}",
            if settings.sliced_threads {
                ":sliced-threads=1"
            } else {
                ""
            }
        ),
    );
    let opened = open_checked(enc.0, codec, options, "libx264")?;
    Ok(ff::encoder::video::Encoder(ff::encoder::video::Video(
        opened,
    )))
}

/// Open the native AAC-LC encoder: stereo, planar float, `sample_rate` Hz,
/// `bitrate` bit/s.
pub fn open_audio_encoder(
    sample_rate: u32,
    bitrate: u64,
) -> Result<ff::encoder::audio::Encoder, MediaError> {
    let codec = ff::encoder::find(codec::Id::AAC)
        .ok_or_else(|| MediaError::Pipeline("AAC encoder is not available".into()))?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .stage("audio encoder")?;
    enc.set_rate(sample_rate as i32);
    enc.set_channel_layout(ff::ChannelLayout::STEREO);
    enc.set_channels(2);
    enc.set_format(ff::format::Sample::F32(ff::format::sample::Type::Planar));
    enc.set_bit_rate(bitrate as usize);
    enc.set_time_base(ff::Rational::new(1, sample_rate as i32));
    enc.set_flags(codec::Flags::GLOBAL_HEADER);
    let opened = open_checked(enc.0, codec, ff::Dictionary::new(), "aac")?;
    Ok(ff::encoder::audio::Encoder(ff::encoder::audio::Audio(
        opened,
    )))
}

/// `avcodec_open2` that fails loudly when an option key was not consumed
/// (ffmpeg-next's `open_with` drops them silently, so a typo would change
/// nothing).
fn open_checked(
    mut enc: ff::encoder::Encoder,
    codec: ff::Codec,
    options: ff::Dictionary,
    name: &'static str,
) -> Result<ff::encoder::Encoder, MediaError> {
    // SAFETY: `enc` owns an allocated codec context; the dictionary is
    // disowned to libav and re-owned right after the call.
    unsafe {
        let mut opts = options.disown();
        let res = ff::ffi::avcodec_open2(enc.as_mut_ptr(), codec.as_ptr(), &mut opts);
        let left = ff::Dictionary::own(opts);
        if res < 0 {
            return Err(MediaError::Libav {
                stage: name,
                source: ff::Error::from(res),
            });
        }
        let unused: Vec<String> = left.iter().map(|(k, _)| k.to_string()).collect();
        if !unused.is_empty() {
            return Err(MediaError::Pipeline(format!(
                "{name} did not accept options {unused:?}"
            )));
        }
    }
    Ok(enc)
}

/// The encoder's extradata (SPS/PPS for H.264, AudioSpecificConfig for AAC).
pub fn extradata(ctx: &ff::codec::Context) -> Vec<u8> {
    // SAFETY: extradata/extradata_size describe one buffer owned by the
    // context, valid while `ctx` lives; we copy it out.
    unsafe {
        let raw = ctx.as_ptr();
        if (*raw).extradata.is_null() || (*raw).extradata_size <= 0 {
            return Vec::new();
        }
        std::slice::from_raw_parts((*raw).extradata, (*raw).extradata_size as usize).to_vec()
    }
}
