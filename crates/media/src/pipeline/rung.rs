//! A rung: swscale and libx264.

use crossbeam_channel::{Receiver, Sender};
use ffmpeg_next as ff;

use super::{FrameMsg, PacketMsg};
use crate::error::{MediaError, Stage};
use crate::ladder::RenditionPlan;

/// One rung: scale (swscale, bicubic as the ffmpeg CLI's `scale` filter
/// defaults) and encode with libx264.
pub(crate) fn rung_stage(
    track: usize,
    plan: RenditionPlan,
    mut enc: ff::encoder::video::Encoder,
    time_base: ff::Rational,
    frame_ticks: i64,
    rx: Receiver<FrameMsg>,
    tx: Sender<PacketMsg>,
) -> Result<(), MediaError> {
    let mut scaler: Option<(ff::format::Pixel, u32, u32, ff::software::scaling::Context)> = None;
    let mut scaled = ff::frame::Video::empty();
    let send_packets = |enc: &mut ff::encoder::video::Encoder| -> Result<(), MediaError> {
        let mut packet = ff::Packet::empty();
        while enc.receive_packet(&mut packet).is_ok() {
            let mut owned = std::mem::replace(&mut packet, ff::Packet::empty());
            // libx264 leaves durations unset; the muxer needs them to time
            // the last frame of each segment (EXTINF) exactly.
            if owned.duration() <= 0 {
                owned.set_duration(frame_ticks);
            }
            tx.send(PacketMsg::Packet {
                track,
                packet: owned,
                time_base,
            })
            .map_err(|_| MediaError::Pipeline("packager stopped".into()))?;
        }
        Ok(())
    };
    loop {
        let msg = rx
            .recv()
            .map_err(|_| MediaError::Pipeline("decoder stopped".into()))?;
        let src = match msg {
            FrameMsg::Frame(f) => f,
            FrameMsg::End => break,
        };
        let (fmt, w, h) = (src.frame.format(), src.frame.width(), src.frame.height());
        if fmt == ff::format::Pixel::YUV420P && w == plan.width && h == plan.height {
            // Source size and format: no scaling, no copy (the encoder
            // takes its own reference).
            enc.send_frame(&src.frame).stage("libx264 encode")?;
            send_packets(&mut enc)?;
            continue;
        }
        if !matches!(&scaler, Some((f, sw, sh, _)) if *f == fmt && *sw == w && *sh == h) {
            let ctx = ff::software::scaling::Context::get(
                fmt,
                w,
                h,
                ff::format::Pixel::YUV420P,
                plan.width,
                plan.height,
                ff::software::scaling::Flags::BICUBIC,
            )
            .stage("swscale")?;
            scaler = Some((fmt, w, h, ctx));
        }
        let (_, _, _, ctx) = scaler.as_mut().expect("scaler set above");
        // Reuse the output buffer once the encoder has let go of it.
        // SAFETY: av_frame_is_writable only reads the frame's buffer refs.
        if unsafe { ff::ffi::av_frame_is_writable(scaled.as_mut_ptr()) } == 0 {
            scaled = ff::frame::Video::empty();
        }
        ctx.run(&src.frame, &mut scaled).stage("swscale")?;
        // swscale output carries no PTS: copy it from the source frame.
        scaled.set_pts(Some(src.pts));
        scaled.set_kind(if src.keyframe {
            ff::picture::Type::I
        } else {
            ff::picture::Type::None
        });
        enc.send_frame(&scaled).stage("libx264 encode")?;
        send_packets(&mut enc)?;
    }
    enc.send_eof().stage("libx264 flush")?;
    send_packets(&mut enc)?;
    tx.send(PacketMsg::End { track })
        .map_err(|_| MediaError::Pipeline("packager stopped".into()))?;
    Ok(())
}
