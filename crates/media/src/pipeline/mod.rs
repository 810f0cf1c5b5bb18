//! The transcode pipeline: stages on their own threads joined by bounded
//! channels.
//!
//! ```text
//!             ┌─> rung 0: swscale → libx264 ─┐
//! demux/decode├─> rung 1: swscale → libx264 ─┼─> packager (hls muxer per track)
//!   (+rotate) ├─> ...                        │
//!             └─> audio: downmix/resample → AAC ┘
//! ```
//!
//! * Decode runs once; every rung gets the same decoded frame (shared with
//!   `Arc`, no copy) and the same keyframe decision, so keyframes are aligned
//!   across rungs at every segment boundary.
//! * Every channel is bounded ([`TranscodeOptions::queue_frames`]): a slow
//!   encoder back-pressures the decoder, memory stays flat.
//! * A stage ends cleanly only on an explicit end-of-stream message; a
//!   disconnected channel means another stage failed, and nothing is
//!   finalised (no `EXT-X-ENDLIST` is written for a failed job).
//! * Progress and "segment closed" notes reach the caller's callback on the
//!   calling thread.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::{bounded, Sender};
use ff::Rescale;
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use crate::codecs::{avc_codecs_string, AAC_LC};
use crate::encode::{extradata, open_audio_encoder, open_video_encoder, VideoEncoderSettings};
use crate::error::{MediaError, Stage};
use crate::ladder::{Ladder, RenditionPlan};
use crate::limits::{open_untrusted, Limits};
use crate::package::{package_stage, TrackMuxer};
use crate::probe::{inspect, SourceInfo};

pub(crate) mod audio;
pub(crate) mod decode;
mod rotate;
pub(crate) mod rung;
mod scene;

use audio::{audio_stage_run, AudioDecoder};
use decode::DecodeStage;
use rung::rung_stage;
use scene::scene_stage;

/// Name of the audio track (directory and rendition name).
pub const AUDIO_TRACK: &str = "audio";

/// How to transcode one source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranscodeOptions {
    pub ladder: Ladder,
    /// Segment duration and keyframe interval, seconds (default 2).
    pub segment_duration_s: f64,
    /// x264 preset (default `veryfast`).
    pub x264_preset: String,
    /// x264 threads per rung; 0 = x264's choice.
    pub x264_threads: usize,
    /// AAC bitrate, bit/s (default 128 000).
    pub audio_bitrate: u64,
    pub limits: Limits,
    /// Capacity of each inter-stage channel, frames (default 8).
    pub queue_frames: usize,
    /// Scene-change threshold (score 0–100, see [`crate::scene`]); `None`
    /// runs no detector. Default `Some(`[`crate::scene::DEFAULT_THRESHOLD`]`)`.
    pub scene_threshold: Option<f64>,
}

impl Default for TranscodeOptions {
    fn default() -> Self {
        TranscodeOptions {
            ladder: Ladder::default(),
            segment_duration_s: 2.0,
            x264_preset: "veryfast".into(),
            x264_threads: 0,
            audio_bitrate: 128_000,
            limits: Limits::default(),
            queue_frames: 8,
            scene_threshold: Some(crate::scene::DEFAULT_THRESHOLD),
        }
    }
}

/// A track the pipeline produces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Track {
    /// Directory and rendition name, e.g. `720p` or `audio`.
    pub name: String,
    /// RFC 6381 codec string, e.g. `avc1.64001f` or `mp4a.40.2`.
    pub codecs: String,
    pub kind: TrackKind,
}

/// What a track carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TrackKind {
    Video {
        plan: RenditionPlan,
        /// Frames per second.
        frame_rate: f64,
    },
    Audio {
        channels: u16,
        /// Hz.
        sample_rate: u32,
        /// bit/s.
        bitrate: u64,
    },
}

/// The plan, announced before the first frame is encoded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub source: SourceInfo,
    /// Video renditions highest first, then the audio track if any.
    pub tracks: Vec<Track>,
}

/// Transcode progress.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Progress {
    /// Presentation time of the last decoded video frame, seconds.
    pub media_time_s: f64,
    /// 0–100, from `media_time_s` over the declared duration.
    pub percent: f64,
    /// Decoded frames per wall-clock second.
    pub fps: f64,
    /// Media seconds per wall-clock second (1.0 = real time).
    pub speed: f64,
}

/// What the pipeline reports while it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PipelineEvent {
    Planned(Plan),
    Progress(Progress),
    /// A segment of `track` was closed: its playlist on disk gained an entry.
    SegmentClosed {
        track: String,
    },
    /// The scene detector saw a cut: the frame at `media_time_s` (seconds
    /// on the presentation timeline: its PTS from the container start)
    /// starts a new scene; `score` 0–100.
    SceneChange {
        media_time_s: f64,
        score: f64,
    },
}

/// Figures of a finished transcode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranscodeReport {
    pub frames_decoded: u64,
    /// Frames dropped for non-increasing timestamps.
    pub frames_dropped: u64,
    /// Packets the decoder rejected as corrupt.
    pub decode_errors: u64,
    /// Presentation time covered by decoded video, seconds.
    pub media_duration_s: f64,
    pub wall_s: f64,
}

/// Transcode `input` into HLS tracks under `output_dir`.
///
/// Blocks the calling thread until done; spawns one thread per stage.
/// `on_event` runs on the calling thread. Setting `cancel` stops the job
/// with [`MediaError::Cancelled`].
///
/// Errors: input problems ([`MediaError::is_input_error`]) and libav or I/O
/// failures; on error the output directory holds no finished playlist.
pub fn transcode(
    input_path: &Path,
    output_dir: &Path,
    opts: &TranscodeOptions,
    cancel: &AtomicBool,
    mut on_event: impl FnMut(PipelineEvent),
) -> Result<TranscodeReport, MediaError> {
    let started = Instant::now();
    ff::init().stage("libav init")?;
    let input = open_untrusted(input_path)?;
    let source = inspect(&input, &opts.limits)?;
    let plans = opts.ladder.plan(&source.video);

    // Decoders.
    let vstream = input
        .stream(source.video.index)
        .ok_or_else(|| MediaError::Invalid("video stream vanished".into()))?;
    let video_tb = vstream.time_base();
    let declared_video_s = if vstream.duration() > 0 {
        vstream.duration() as f64 * f64::from(video_tb)
    } else {
        source.duration_s
    };
    let mut vctx = ff::codec::context::Context::from_parameters(vstream.parameters())
        .stage("video decoder")?;
    // Frames larger than the limit are refused by the decoder itself, not
    // only by the header check (a stream may change size mid-way).
    // SAFETY: max_pixels is a plain field of the unopened codec context.
    unsafe {
        (*vctx.as_mut_ptr()).max_pixels = i64::try_from(opts.limits.max_pixels).unwrap_or(i64::MAX);
    }
    vctx.set_threading(ff::threading::Config {
        kind: ff::threading::Type::Frame,
        count: 0,
        ..Default::default()
    });
    let vdec = vctx
        .decoder()
        .video()
        .map_err(|e| MediaError::Unsupported(format!("video cannot be decoded: {e}")))?;
    let audio = match &source.audio {
        None => None,
        Some(a) => {
            let astream = input
                .stream(a.index)
                .ok_or_else(|| MediaError::Invalid("audio stream vanished".into()))?;
            let atb = astream.time_base();
            let adec = ff::codec::context::Context::from_parameters(astream.parameters())
                .and_then(|c| c.decoder().audio())
                .map_err(|e| MediaError::Unsupported(format!("audio cannot be decoded: {e}")))?;
            Some((a.index, atb, adec, a.sample_rate))
        }
    };
    // Common zero: the container's start time, so A/V sync is kept.
    // SAFETY: reading a plain field of an open format context.
    let start_us = unsafe { (*input.as_ptr()).start_time };
    let start_us = if start_us == ff::ffi::AV_NOPTS_VALUE {
        0
    } else {
        start_us
    };

    // Encoders and muxers.
    let settings = VideoEncoderSettings {
        preset: opts.x264_preset.clone(),
        segment_duration_s: opts.segment_duration_s,
        threads: opts.x264_threads,
        zero_latency: false,
        sliced_threads: false,
    };
    let x264 = ff::encoder::find_by_name("libx264")
        .ok_or_else(|| MediaError::Pipeline("libx264 encoder is not available".into()))?;
    let mut tracks = Vec::new();
    let mut muxers = Vec::new();
    let mut video_encoders = Vec::new();
    let threads = rung_threads(&plans, opts.x264_threads);
    for (plan, threads) in plans.iter().zip(threads) {
        let settings = VideoEncoderSettings {
            threads,
            ..settings.clone()
        };
        let enc = open_video_encoder(plan, video_tb, source.video.frame_rate, &settings)?;
        let codecs = avc_codecs_string(&extradata(enc.as_ref()))
            .ok_or_else(|| MediaError::Pipeline("libx264 produced no SPS in extradata".into()))?;
        muxers.push(TrackMuxer::create(
            output_dir,
            &plan.name,
            &enc,
            x264,
            opts.segment_duration_s,
            true,
        )?);
        tracks.push(Track {
            name: plan.name.clone(),
            codecs,
            kind: TrackKind::Video {
                plan: plan.clone(),
                frame_rate: source.video.frame_rate.fps(),
            },
        });
        video_encoders.push((plan.clone(), enc));
    }
    let mut audio_stage = None;
    if let Some((index, atb, adec, src_rate)) = audio {
        let out_rate = if src_rate == 44_100 { 44_100 } else { 48_000 };
        let enc = open_audio_encoder(out_rate, opts.audio_bitrate)?;
        let aac = ff::encoder::find(ff::codec::Id::AAC)
            .ok_or_else(|| MediaError::Pipeline("AAC encoder is not available".into()))?;
        muxers.push(TrackMuxer::create(
            output_dir,
            AUDIO_TRACK,
            &enc,
            aac,
            opts.segment_duration_s,
            false,
        )?);
        tracks.push(Track {
            name: AUDIO_TRACK.into(),
            codecs: AAC_LC.into(),
            kind: TrackKind::Audio {
                channels: 2,
                sample_rate: out_rate,
                bitrate: opts.audio_bitrate,
            },
        });
        audio_stage = Some((index, atb, adec, enc, out_rate));
    }
    on_event(PipelineEvent::Planned(Plan {
        source: source.clone(),
        tracks: tracks.clone(),
    }));

    // Channels and stages.
    let depth = opts.queue_frames.max(1);
    let (note_tx, note_rx) = bounded::<Note>(64);
    let (pkt_tx, pkt_rx) = bounded::<PacketMsg>(depth * (muxers.len() + 1));
    let track_names: Vec<String> = tracks.iter().map(|t| t.name.clone()).collect();
    let mut handles: Vec<thread::JoinHandle<Result<(), MediaError>>> = Vec::new();

    {
        let note_tx = note_tx.clone();
        handles.push(spawn("package", move || {
            package_stage(muxers, pkt_rx, note_tx)
        })?);
    }
    let frame_ticks = (1.0 / source.video.frame_rate.fps() / f64::from(video_tb))
        .round()
        .max(1.0) as i64;
    let mut rung_txs = Vec::new();
    for (track, (plan, enc)) in video_encoders.into_iter().enumerate() {
        let (tx, rx) = bounded::<FrameMsg>(depth);
        rung_txs.push(tx);
        let pkt_tx = pkt_tx.clone();
        handles.push(spawn("rung", move || {
            rung_stage(track, plan, enc, video_tb, frame_ticks, rx, pkt_tx)
        })?);
    }
    if let Some(threshold) = opts.scene_threshold {
        let (tx, rx) = bounded::<FrameMsg>(depth);
        rung_txs.push(tx);
        let note_tx = note_tx.clone();
        handles.push(spawn("scenes", move || {
            scene_stage(threshold, video_tb, rx, note_tx)
        })?);
    }
    let mut audio_tx = None;
    let mut audio_index = None;
    if let Some((index, atb, adec, enc, out_rate)) = audio_stage {
        let (tx, rx) = bounded::<AudioMsg>(depth * 4);
        audio_tx = Some(tx);
        let start = start_us.rescale(ff::rescale::TIME_BASE, atb);
        let adec = AudioDecoder {
            time_base: atb,
            decoder: adec,
            start,
        };
        audio_index = Some(index);
        let track = tracks.len() - 1;
        let pkt_tx = pkt_tx.clone();
        let max_gap = opts.limits.max_timestamp_gap_s;
        handles.push(spawn("audio", move || {
            audio_stage_run(track, Some(adec), max_gap, false, enc, out_rate, rx, pkt_tx)
        })?);
    }
    drop(pkt_tx);

    let decode = DecodeStage {
        input,
        video_index: source.video.index,
        video_tb,
        vdec,
        rotation: source.video.rotation,
        start_pts: start_us.rescale(ff::rescale::TIME_BASE, video_tb),
        segment_ticks: (opts.segment_duration_s / f64::from(video_tb)).round() as i64,
        frame_ticks,
        declared_s: declared_video_s,
        timestamps: decode::TimestampGuard {
            tick_s: f64::from(video_tb),
            max_gap: (opts.limits.max_timestamp_gap_s / f64::from(video_tb)) as i64,
            max_end: (opts.limits.max_duration_s / f64::from(video_tb)) as i64,
            max_frames: opts.limits.max_frames(),
        },
        frame_size: (source.video.coded_width, source.video.coded_height),
        audio_index,
        rung_txs,
        audio_tx,
        note_tx,
        started,
    };
    let cancel_flag = CancelRef::new(cancel);
    let decode_handle = {
        let cancel = cancel_flag.clone();
        thread::Builder::new()
            .name("decode".into())
            .spawn(move || decode.run(&cancel))
            .map_err(MediaError::Io)?
    };

    // Relay notes until every stage has dropped its sender.
    for note in note_rx.iter() {
        match note {
            Note::Progress(p) => on_event(PipelineEvent::Progress(p)),
            Note::SegmentClosed(track) => on_event(PipelineEvent::SegmentClosed {
                track: track_names[track].clone(),
            }),
            Note::Scene {
                media_time_s,
                score,
            } => on_event(PipelineEvent::SceneChange {
                media_time_s,
                score,
            }),
        }
        if cancel.load(Ordering::Relaxed) {
            cancel_flag.set();
        }
    }
    let decode_result = decode_handle
        .join()
        .map_err(|_| MediaError::Pipeline("decode stage panicked".into()))?;
    let mut first_err: Option<MediaError> = None;
    let mut keep = |e: MediaError| {
        // Root causes beat the disconnections they cause in other stages.
        let replace = match &first_err {
            None => true,
            Some(MediaError::Pipeline(_)) => !matches!(e, MediaError::Pipeline(_)),
            Some(_) => false,
        };
        if replace {
            first_err = Some(e);
        }
    };
    let stats = match decode_result {
        Ok(stats) => Some(stats),
        Err(e) => {
            keep(e);
            None
        }
    };
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => keep(e),
            Err(_) => keep(MediaError::Pipeline("a stage panicked".into())),
        }
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(MediaError::Cancelled);
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let stats = stats.ok_or_else(|| MediaError::Pipeline("decode produced no stats".into()))?;
    Ok(TranscodeReport {
        frames_decoded: stats.frames,
        frames_dropped: stats.dropped,
        decode_errors: stats.decode_errors,
        media_duration_s: stats.media_end_s,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// x264 threads for each rung. `requested > 0` applies to every rung.
/// `0` shares the machine's cores by pixel count: the rungs already run in
/// parallel, so each gets `ceil(cores × its share of the ladder's pixels)`
/// threads. Frame threads cost x264 compression efficiency and CPU, so the
/// small rungs get one and only the large ones more.
fn rung_threads(plans: &[RenditionPlan], requested: usize) -> Vec<usize> {
    if requested > 0 {
        return vec![requested; plans.len()];
    }
    let cores = thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    let pixels: Vec<f64> = plans
        .iter()
        .map(|p| f64::from(p.width) * f64::from(p.height))
        .collect();
    let total: f64 = pixels.iter().sum::<f64>().max(1.0);
    pixels
        .iter()
        .map(|px| ((cores * px / total).ceil() as usize).clamp(1, 16))
        .collect()
}

pub(crate) fn spawn(
    name: &str,
    f: impl FnOnce() -> Result<(), MediaError> + Send + 'static,
) -> Result<thread::JoinHandle<Result<(), MediaError>>, MediaError> {
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(MediaError::Io)
}

/// A cancel flag the decode thread can poll; the caller's `&AtomicBool` is
/// mirrored into it from the relay loop (the caller's borrow cannot cross
/// into a `'static` thread).
#[derive(Clone)]
pub(crate) struct CancelRef(Arc<AtomicBool>);

impl CancelRef {
    fn new(initial: &AtomicBool) -> Self {
        CancelRef(Arc::new(AtomicBool::new(initial.load(Ordering::Relaxed))))
    }
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

pub(crate) enum Note {
    Progress(Progress),
    SegmentClosed(usize),
    Scene { media_time_s: f64, score: f64 },
}

/// A decoded (and rotated) frame with its encoder-time-base PTS and the
/// keyframe decision every rung applies.
pub(crate) struct SourceFrame {
    pub(crate) frame: ff::frame::Video,
    pub(crate) pts: i64,
    pub(crate) keyframe: bool,
}

/// Send one decoded frame (at `pts`, encoder time-base ticks) to every rung
/// with the shared keyframe decision. The picture type carries the
/// decision too: a rung that encodes the source size sends this very frame.
pub(crate) fn fan_out(
    rung_txs: &[Sender<FrameMsg>],
    mut frame: ff::frame::Video,
    pts: i64,
    keyframe: bool,
) -> Result<(), MediaError> {
    frame.set_kind(if keyframe {
        ff::picture::Type::I
    } else {
        ff::picture::Type::None
    });
    let shared = Arc::new(SourceFrame {
        frame,
        pts,
        keyframe,
    });
    for tx in rung_txs {
        tx.send(FrameMsg::Frame(shared.clone()))
            .map_err(|_| MediaError::Pipeline("a rung stopped".into()))?;
    }
    Ok(())
}

pub(crate) enum FrameMsg {
    Frame(Arc<SourceFrame>),
    End,
}

pub(crate) enum AudioMsg {
    /// A compressed packet for the stage's decoder.
    Packet(ff::Packet),
    /// A raw frame (generators), PTS in 1/sample rate on the output clock.
    Frame(ff::frame::Audio),
    End,
}

pub(crate) enum PacketMsg {
    Packet {
        track: usize,
        packet: ff::Packet,
        time_base: ff::Rational,
    },
    End {
        track: usize,
    },
}
