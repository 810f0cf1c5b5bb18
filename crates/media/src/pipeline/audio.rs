//! The audio stage: decode, downmix/resample, 1024-sample framing, AAC.

use crossbeam_channel::{Receiver, Sender};
use ff::Rescale;
use ffmpeg_next as ff;

use super::{AudioMsg, PacketMsg};
use crate::error::{MediaError, Stage};

pub(crate) struct AudioDecoder {
    pub(crate) time_base: ff::Rational,
    pub(crate) decoder: ff::decoder::Audio,
    /// Container start time in the audio stream time base.
    pub(crate) start: i64,
}

/// Audio: decode, downmix to stereo and resample (libavfilter `aresample`
/// and `aformat`), cut into exact 1024-sample frames by the buffersink
/// (the AAC encoder pads short frames with silence otherwise), encode AAC.
/// `dec` decodes [`AudioMsg::Packet`]s; without one only raw
/// [`AudioMsg::Frame`]s are accepted. A jump of more than `max_gap_s`
/// between consecutive frames is an input error; with `fill_gaps` (live)
/// smaller gaps are filled with silence and drift is absorbed
/// (`aresample=async=1`: silence for gaps over 0.1 s, stretching below),
/// so the audio timeline has no holes for players to stall on.
#[allow(clippy::too_many_arguments)]
pub(crate) fn audio_stage_run(
    track: usize,
    mut dec: Option<AudioDecoder>,
    max_gap_s: f64,
    fill_gaps: bool,
    mut enc: ff::encoder::audio::Encoder,
    out_rate: u32,
    rx: Receiver<AudioMsg>,
    tx: Sender<PacketMsg>,
) -> Result<(), MediaError> {
    let enc_tb = ff::Rational::new(1, out_rate as i32);
    let frame_size = enc.frame_size().max(1);
    let mut graph: Option<ff::filter::Graph> = None;
    let mut decoded = ff::frame::Audio::empty();
    let send_packets = |enc: &mut ff::encoder::audio::Encoder| -> Result<(), MediaError> {
        let mut packet = ff::Packet::empty();
        while enc.receive_packet(&mut packet).is_ok() {
            let owned = std::mem::replace(&mut packet, ff::Packet::empty());
            tx.send(PacketMsg::Packet {
                track,
                packet: owned,
                time_base: enc_tb,
            })
            .map_err(|_| MediaError::Pipeline("packager stopped".into()))?;
        }
        Ok(())
    };
    let pull = |graph: &mut ff::filter::Graph,
                enc: &mut ff::encoder::audio::Encoder|
     -> Result<(), MediaError> {
        loop {
            let mut out = ff::frame::Audio::empty();
            let mut sink = graph
                .get("out")
                .ok_or_else(|| MediaError::Pipeline("audio sink missing".into()))?;
            match sink.sink().frame(&mut out) {
                Ok(()) => {
                    enc.send_frame(&out).stage("aac encode")?;
                    send_packets(enc)?;
                }
                Err(ff::Error::Eof) => return Ok(()),
                Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => return Ok(()),
                Err(e) => {
                    return Err(MediaError::Libav {
                        stage: "audio filter",
                        source: e,
                    })
                }
            }
        }
    };
    let mut ended = false;
    let mut first_shape = None;
    let mut expected_pts: Option<i64> = None;
    let mut raw: Option<ff::frame::Audio> = None;
    while !ended {
        let msg = rx
            .recv()
            .map_err(|_| MediaError::Pipeline("decoder stopped".into()))?;
        match (msg, dec.as_mut()) {
            (AudioMsg::Packet(p), Some(dec)) => {
                // A corrupt audio packet is skipped, not fatal.
                let _ = dec.decoder.send_packet(&p);
            }
            (AudioMsg::Packet(_), None) => {
                return Err(MediaError::Pipeline(
                    "audio packet without a decoder".into(),
                ))
            }
            (AudioMsg::Frame(f), _) => raw = Some(f),
            (AudioMsg::End, dec) => {
                if let Some(dec) = dec {
                    let _ = dec.decoder.send_eof();
                }
                ended = true;
            }
        }
        loop {
            // Decoded frames get timestamps in 1/sample_rate from the common
            // zero; raw frames (generators) come with them.
            let pts = if let Some(f) = raw.take() {
                decoded = f;
                decoded.pts()
            } else if let Some(dec) = dec.as_mut() {
                if dec.decoder.receive_frame(&mut decoded).is_err() {
                    break;
                }
                let src_rate = decoded.rate().max(1) as i32;
                match decoded.timestamp().or(decoded.pts()) {
                    Some(t) => Some(
                        t.checked_sub(dec.start)
                            .ok_or_else(|| MediaError::Invalid("audio timestamps overflow".into()))?
                            .rescale(dec.time_base, ff::Rational::new(1, src_rate)),
                    ),
                    None => None,
                }
            } else {
                break;
            };
            if decoded.samples() == 0 {
                continue;
            }
            let shape = frame_shape(&mut decoded);
            if graph.is_none() {
                graph = Some(audio_graph(&decoded, out_rate, frame_size, fill_gaps)?);
                first_shape = Some(shape);
            }
            if first_shape != Some(shape) {
                return Err(MediaError::Invalid(format!(
                    "audio format changes mid-stream ({} Hz to {} Hz, or sample format or channels)",
                    first_shape.map_or(0, |s| s.0),
                    shape.0
                )));
            }
            let g = graph.as_mut().expect("graph set above");
            let src_rate = decoded.rate().max(1) as i32;
            if let (Some(pts), Some(expected)) = (pts, expected_pts) {
                let max_gap = (max_gap_s * f64::from(src_rate)) as i64;
                let step = pts.saturating_sub(expected);
                if step.saturating_abs() > max_gap {
                    return Err(MediaError::Invalid(format!(
                        "audio timestamps jump {:.1} s at {:.2} s",
                        step as f64 / f64::from(src_rate),
                        expected as f64 / f64::from(src_rate)
                    )));
                }
            }
            // A small overlap (a loop, a spliced source) would make the
            // encoder's timestamps go back: start this frame where the last
            // one ended.
            let pts = match (pts, expected_pts) {
                (Some(p), Some(e)) if p < e => Some(e),
                (p, _) => p,
            };
            expected_pts = pts.map(|p| p.saturating_add(decoded.samples() as i64));
            decoded.set_pts(pts);
            g.get("in")
                .ok_or_else(|| MediaError::Pipeline("audio source missing".into()))?
                .source()
                .add(&decoded)
                .stage("audio filter push")?;
            pull(g, &mut enc)?;
        }
    }
    if let Some(g) = graph.as_mut() {
        g.get("in")
            .ok_or_else(|| MediaError::Pipeline("audio source missing".into()))?
            .source()
            .flush()
            .stage("audio filter flush")?;
        pull(g, &mut enc)?;
    }
    enc.send_eof().stage("aac flush")?;
    send_packets(&mut enc)?;
    tx.send(PacketMsg::End { track })
        .map_err(|_| MediaError::Pipeline("packager stopped".into()))?;
    Ok(())
}

/// A decoded audio frame's shape: (sample rate Hz, sample format, channel
/// layout bits). A frame without a layout (some decoders leave it unset)
/// gets the default layout of its channel count first.
pub(crate) fn frame_shape(decoded: &mut ff::frame::Audio) -> (u32, ff::format::Sample, u64) {
    if decoded.channel_layout().is_empty() {
        let channels = decoded.channels();
        decoded.set_channel_layout(ff::ChannelLayout::default(i32::from(channels)));
    }
    (
        decoded.rate(),
        decoded.format(),
        decoded.channel_layout().bits(),
    )
}

fn audio_graph(
    first: &ff::frame::Audio,
    out_rate: u32,
    frame_size: u32,
    fill_gaps: bool,
) -> Result<ff::filter::Graph, MediaError> {
    let mut graph = ff::filter::Graph::new();
    let fmt: ff::ffi::AVSampleFormat = first.format().into();
    let args = format!(
        "time_base=1/{rate}:sample_rate={rate}:sample_fmt={fmt}:channel_layout=0x{layout:x}",
        rate = first.rate(),
        fmt = fmt as i32,
        layout = first.channel_layout().bits()
    );
    let src = ff::filter::find("abuffer")
        .ok_or_else(|| MediaError::Pipeline("libavfilter has no abuffer".into()))?;
    let sink = ff::filter::find("abuffersink")
        .ok_or_else(|| MediaError::Pipeline("libavfilter has no abuffersink".into()))?;
    graph.add(&src, "in", &args).stage("audio filter source")?;
    graph.add(&sink, "out", "").stage("audio filter sink")?;
    graph
        .output("in", 0)
        .and_then(|p| p.input("out", 0))
        .and_then(|p| {
            let fill = if fill_gaps { ":async=1" } else { "" };
            p.parse(&format!(
                "aresample={out_rate}{fill},aformat=sample_fmts=fltp:channel_layouts=stereo"
            ))
        })
        .stage("audio filter graph")?;
    graph.validate().stage("audio filter graph")?;
    graph
        .get("out")
        .ok_or_else(|| MediaError::Pipeline("audio sink missing".into()))?
        .sink()
        .set_frame_size(frame_size);
    Ok(graph)
}
