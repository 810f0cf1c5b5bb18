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
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use ff::Rescale;
use ffmpeg_next as ff;
use serde::Serialize;

use crate::codecs::{avc_codecs_string, AAC_LC};
use crate::encode::{extradata, open_audio_encoder, open_video_encoder, VideoEncoderSettings};
use crate::error::{MediaError, Stage};
use crate::ladder::{Ladder, RenditionPlan};
use crate::limits::{open_untrusted, Limits};
use crate::package::TrackMuxer;
use crate::probe::{inspect, SourceInfo};

/// Name of the audio track (directory and rendition name).
pub const AUDIO_TRACK: &str = "audio";

/// How to transcode one source.
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone, Serialize)]
pub struct Track {
    /// Directory and rendition name, e.g. `720p` or `audio`.
    pub name: String,
    /// RFC 6381 codec string, e.g. `avc1.64001f` or `mp4a.40.2`.
    pub codecs: String,
    pub kind: TrackKind,
}

/// What a track carries.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub source: SourceInfo,
    /// Video renditions highest first, then the audio track if any.
    pub tracks: Vec<Track>,
}

/// Transcode progress.
#[derive(Debug, Clone, Copy, Serialize)]
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
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone, Serialize)]
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
        handles.push(spawn("audio", move || {
            audio_stage_run(track, adec, enc, out_rate, rx, pkt_tx)
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

fn spawn(
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
struct CancelRef(Arc<AtomicBool>);

impl CancelRef {
    fn new(initial: &AtomicBool) -> Self {
        CancelRef(Arc::new(AtomicBool::new(initial.load(Ordering::Relaxed))))
    }
    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

enum Note {
    Progress(Progress),
    SegmentClosed(usize),
    Scene { media_time_s: f64, score: f64 },
}

/// The scene detector: another consumer of decoded frames (its own thread
/// and bounded channel, like a rung). Only 8-bit YUV luma is read; other
/// pixel formats run no detection.
fn scene_stage(
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

/// A decoded (and rotated) frame with its encoder-time-base PTS and the
/// keyframe decision every rung applies.
struct SourceFrame {
    frame: ff::frame::Video,
    pts: i64,
    keyframe: bool,
}

enum FrameMsg {
    Frame(Arc<SourceFrame>),
    End,
}

enum AudioMsg {
    Packet(ff::Packet),
    End,
}

enum PacketMsg {
    Packet {
        track: usize,
        packet: ff::Packet,
        time_base: ff::Rational,
    },
    End {
        track: usize,
    },
}

struct DecodeStats {
    frames: u64,
    dropped: u64,
    decode_errors: u64,
    media_end_s: f64,
}

struct DecodeStage {
    input: ff::format::context::Input,
    video_index: usize,
    video_tb: ff::Rational,
    vdec: ff::decoder::Video,
    rotation: u32,
    /// Container start time in the video time base.
    start_pts: i64,
    segment_ticks: i64,
    frame_ticks: i64,
    declared_s: f64,
    audio_index: Option<usize>,
    rung_txs: Vec<Sender<FrameMsg>>,
    audio_tx: Option<Sender<AudioMsg>>,
    note_tx: Sender<Note>,
    started: Instant,
}

/// Consecutive demux errors (other than EOF) tolerated before giving up.
const MAX_READ_ERRORS: u32 = 16;
/// Share of corrupt packets above which the source is rejected.
const MAX_CORRUPT_SHARE: f64 = 0.05;

impl DecodeStage {
    fn run(mut self, cancel: &CancelRef) -> Result<DecodeStats, MediaError> {
        let mut rotate = match self.rotation {
            0 => None,
            r => Some(RotationFilter::new(&self.vdec, self.video_tb, r)?),
        };
        let mut state = KeyframeClock::new(self.segment_ticks);
        let mut stats = DecodeStats {
            frames: 0,
            dropped: 0,
            decode_errors: 0,
            media_end_s: 0.0,
        };
        let mut packets = 0u64;
        let mut read_errors = 0;
        let mut last_note = Instant::now();
        let mut last_pts: Option<i64> = None;
        let mut decoded = ff::frame::Video::empty();
        let mut packet = ff::Packet::empty();
        loop {
            if cancel.is_set() {
                return Err(MediaError::Cancelled);
            }
            match packet.read(&mut self.input) {
                Ok(()) => read_errors = 0,
                Err(ff::Error::Eof) => break,
                Err(e) => {
                    read_errors += 1;
                    if read_errors > MAX_READ_ERRORS {
                        return Err(MediaError::Truncated(format!("read failed: {e}")));
                    }
                    continue;
                }
            }
            let index = packet.stream();
            if index == self.video_index {
                packets += 1;
                if self.vdec.send_packet(&packet).is_err() {
                    stats.decode_errors += 1;
                }
                self.drain_video(
                    &mut decoded,
                    &mut rotate,
                    &mut state,
                    &mut last_pts,
                    &mut stats,
                )?;
            } else if Some(index) == self.audio_index {
                if let Some(tx) = &self.audio_tx {
                    let owned = std::mem::replace(&mut packet, ff::Packet::empty());
                    tx.send(AudioMsg::Packet(owned))
                        .map_err(|_| MediaError::Pipeline("audio stage stopped".into()))?;
                }
            }
            if last_note.elapsed() >= Duration::from_millis(500) {
                last_note = Instant::now();
                self.note_progress(&stats);
            }
        }
        // Drain the decoder and the rotation filter.
        let _ = self.vdec.send_eof();
        self.drain_video(
            &mut decoded,
            &mut rotate,
            &mut state,
            &mut last_pts,
            &mut stats,
        )?;
        if let Some(filter) = rotate.as_mut() {
            filter.flush()?;
            while let Some(f) = filter.pull()? {
                self.emit(f, &mut state, &mut last_pts, &mut stats)?;
            }
        }

        if stats.frames == 0 {
            return Err(MediaError::Invalid("no decodable video frames".into()));
        }
        if packets > 20 && stats.decode_errors as f64 > packets as f64 * MAX_CORRUPT_SHARE {
            return Err(MediaError::Invalid(format!(
                "{} of {} video packets are corrupt",
                stats.decode_errors, packets
            )));
        }
        // Less decoded than declared: the file was cut short.
        let frame_s = self.frame_ticks as f64 * f64::from(self.video_tb);
        if self.declared_s > 0.0 && stats.media_end_s + 0.5 + 2.0 * frame_s < self.declared_s * 0.97
        {
            return Err(MediaError::Truncated(format!(
                "decoded {:.2} s of the {:.2} s the header declares",
                stats.media_end_s, self.declared_s
            )));
        }
        for tx in &self.rung_txs {
            tx.send(FrameMsg::End)
                .map_err(|_| MediaError::Pipeline("a rung stopped".into()))?;
        }
        if let Some(tx) = &self.audio_tx {
            tx.send(AudioMsg::End)
                .map_err(|_| MediaError::Pipeline("audio stage stopped".into()))?;
        }
        self.note_progress(&stats);
        Ok(stats)
    }

    fn note_progress(&self, stats: &DecodeStats) {
        let wall = self.started.elapsed().as_secs_f64().max(1e-3);
        let percent = if self.declared_s > 0.0 {
            (stats.media_end_s / self.declared_s * 100.0).clamp(0.0, 100.0)
        } else {
            0.0
        };
        // Progress is advisory: drop it if the caller is behind.
        let _ = self.note_tx.try_send(Note::Progress(Progress {
            media_time_s: stats.media_end_s,
            percent,
            fps: stats.frames as f64 / wall,
            speed: stats.media_end_s / wall,
        }));
    }

    fn drain_video(
        &mut self,
        decoded: &mut ff::frame::Video,
        rotate: &mut Option<RotationFilter>,
        state: &mut KeyframeClock,
        last_pts: &mut Option<i64>,
        stats: &mut DecodeStats,
    ) -> Result<(), MediaError> {
        while self.vdec.receive_frame(decoded).is_ok() {
            let mut frame = std::mem::replace(decoded, ff::frame::Video::empty());
            let ts = frame
                .timestamp()
                .or(frame.pts())
                .map(|t| t - self.start_pts)
                .unwrap_or_else(|| last_pts.map_or(0, |p| p + self.frame_ticks));
            frame.set_pts(Some(ts));
            match rotate.as_mut() {
                None => self.emit(frame, state, last_pts, stats)?,
                Some(filter) => {
                    filter.push(&frame)?;
                    while let Some(f) = filter.pull()? {
                        self.emit(f, state, last_pts, stats)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn emit(
        &self,
        mut frame: ff::frame::Video,
        state: &mut KeyframeClock,
        last_pts: &mut Option<i64>,
        stats: &mut DecodeStats,
    ) -> Result<(), MediaError> {
        let pts = frame.pts().unwrap_or(0);
        if last_pts.is_some_and(|last| pts <= last) {
            stats.dropped += 1;
            return Ok(());
        }
        *last_pts = Some(pts);
        let keyframe = state.is_boundary(pts);
        // The picture type carries the shared keyframe decision: a rung
        // that encodes the source size sends this very frame.
        frame.set_kind(if keyframe {
            ff::picture::Type::I
        } else {
            ff::picture::Type::None
        });
        stats.frames += 1;
        stats.media_end_s = ((pts + self.frame_ticks) as f64 * f64::from(self.video_tb)).max(0.0);
        let shared = Arc::new(SourceFrame {
            frame,
            pts,
            keyframe,
        });
        for tx in &self.rung_txs {
            tx.send(FrameMsg::Frame(shared.clone()))
                .map_err(|_| MediaError::Pipeline("a rung stopped".into()))?;
        }
        Ok(())
    }
}

/// Decides which frames start a segment: the first frame, then the first
/// frame at or after each multiple of the segment duration from it. Every
/// rung applies the same decision, so keyframes align across the ladder.
struct KeyframeClock {
    segment_ticks: i64,
    first: Option<i64>,
    next: i64,
}

impl KeyframeClock {
    fn new(segment_ticks: i64) -> Self {
        KeyframeClock {
            segment_ticks: segment_ticks.max(1),
            first: None,
            next: 0,
        }
    }

    fn is_boundary(&mut self, pts: i64) -> bool {
        match self.first {
            None => {
                self.first = Some(pts);
                self.next = pts + self.segment_ticks;
                true
            }
            Some(_) if pts >= self.next => {
                while self.next <= pts {
                    self.next += self.segment_ticks;
                }
                true
            }
            Some(_) => false,
        }
    }
}

/// Applies display rotation with libavfilter (`transpose`, `hflip,vflip`).
struct RotationFilter {
    graph: ff::filter::Graph,
}

impl RotationFilter {
    fn new(dec: &ff::decoder::Video, tb: ff::Rational, rotation: u32) -> Result<Self, MediaError> {
        let mut graph = ff::filter::Graph::new();
        let fmt = dec.format();
        let pix: ff::ffi::AVPixelFormat = fmt.into();
        let sar = dec.aspect_ratio();
        let (sn, sd) = if sar.numerator() > 0 && sar.denominator() > 0 {
            (sar.numerator(), sar.denominator())
        } else {
            (1, 1)
        };
        let args = format!(
            "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
            dec.width(),
            dec.height(),
            pix as i32,
            tb.numerator(),
            tb.denominator(),
            sn,
            sd
        );
        let buffer = ff::filter::find("buffer")
            .ok_or_else(|| MediaError::Pipeline("libavfilter has no buffer source".into()))?;
        let sink = ff::filter::find("buffersink")
            .ok_or_else(|| MediaError::Pipeline("libavfilter has no buffersink".into()))?;
        graph.add(&buffer, "in", &args).stage("rotate source")?;
        graph.add(&sink, "out", "").stage("rotate sink")?;
        let spec = match rotation {
            90 => "transpose=clock",
            180 => "hflip,vflip",
            270 => "transpose=cclock",
            _ => "null",
        };
        graph
            .output("in", 0)
            .and_then(|p| p.input("out", 0))
            .and_then(|p| p.parse(spec))
            .stage("rotate graph")?;
        graph.validate().stage("rotate graph")?;
        Ok(RotationFilter { graph })
    }

    fn push(&mut self, frame: &ff::frame::Video) -> Result<(), MediaError> {
        self.graph
            .get("in")
            .ok_or_else(|| MediaError::Pipeline("rotate source missing".into()))?
            .source()
            .add(frame)
            .stage("rotate push")
    }

    fn flush(&mut self) -> Result<(), MediaError> {
        self.graph
            .get("in")
            .ok_or_else(|| MediaError::Pipeline("rotate source missing".into()))?
            .source()
            .flush()
            .stage("rotate flush")
    }

    fn pull(&mut self) -> Result<Option<ff::frame::Video>, MediaError> {
        let mut out = ff::frame::Video::empty();
        let mut ctx = self
            .graph
            .get("out")
            .ok_or_else(|| MediaError::Pipeline("rotate sink missing".into()))?;
        match ctx.sink().frame(&mut out) {
            Ok(()) => Ok(Some(out)),
            Err(ff::Error::Eof) => Ok(None),
            Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => Ok(None),
            Err(e) => Err(MediaError::Libav {
                stage: "rotate pull",
                source: e,
            }),
        }
    }
}

/// One rung: scale (swscale, bicubic as the ffmpeg CLI's `scale` filter
/// defaults) and encode with libx264.
fn rung_stage(
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

struct AudioDecoder {
    time_base: ff::Rational,
    decoder: ff::decoder::Audio,
    /// Container start time in the audio stream time base.
    start: i64,
}

/// Audio: decode, downmix to stereo and resample (libavfilter `aresample`
/// and `aformat`), cut into exact 1024-sample frames by the buffersink
/// (the AAC encoder pads short frames with silence otherwise), encode AAC.
fn audio_stage_run(
    track: usize,
    mut dec: AudioDecoder,
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
    while !ended {
        let msg = rx
            .recv()
            .map_err(|_| MediaError::Pipeline("decoder stopped".into()))?;
        match msg {
            AudioMsg::Packet(p) => {
                // A corrupt audio packet is skipped, not fatal.
                let _ = dec.decoder.send_packet(&p);
            }
            AudioMsg::End => {
                let _ = dec.decoder.send_eof();
                ended = true;
            }
        }
        while dec.decoder.receive_frame(&mut decoded).is_ok() {
            if decoded.samples() == 0 {
                continue;
            }
            if decoded.channel_layout().is_empty() {
                let channels = decoded.channels();
                decoded.set_channel_layout(ff::ChannelLayout::default(i32::from(channels)));
            }
            if graph.is_none() {
                graph = Some(audio_graph(&decoded, out_rate, frame_size)?);
            }
            let g = graph.as_mut().expect("graph set above");
            // Timestamps in 1/sample_rate of the source, from the common zero.
            let src_rate = decoded.rate().max(1) as i32;
            let pts = decoded
                .timestamp()
                .or(decoded.pts())
                .map(|t| (t - dec.start).rescale(dec.time_base, ff::Rational::new(1, src_rate)));
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

fn audio_graph(
    first: &ff::frame::Audio,
    out_rate: u32,
    frame_size: u32,
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
            p.parse(&format!(
                "aresample={out_rate},aformat=sample_fmts=fltp:channel_layouts=stereo"
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

/// Packager: one HLS muxer per track; trailers (ENDLIST) only when every
/// track ended cleanly.
fn package_stage(
    mut muxers: Vec<TrackMuxer>,
    rx: Receiver<PacketMsg>,
    notes: Sender<Note>,
) -> Result<(), MediaError> {
    let mut ended = vec![false; muxers.len()];
    while ended.iter().any(|e| !e) {
        match rx.recv() {
            Ok(PacketMsg::Packet {
                track,
                packet,
                time_base,
            }) => {
                if muxers[track].write(packet, time_base)? {
                    notes
                        .send(Note::SegmentClosed(track))
                        .map_err(|_| MediaError::Pipeline("caller stopped".into()))?;
                }
            }
            Ok(PacketMsg::End { track }) => ended[track] = true,
            Err(_) => return Err(MediaError::Pipeline("an encoder stopped".into())),
        }
    }
    for (track, muxer) in muxers.into_iter().enumerate() {
        muxer.finish()?;
        notes
            .send(Note::SegmentClosed(track))
            .map_err(|_| MediaError::Pipeline("caller stopped".into()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::KeyframeClock;

    #[test]
    fn keyframes_at_first_frame_then_each_boundary_25fps() {
        // 25 fps in 1/12800: 512 ticks a frame, 2 s = 25600 ticks.
        let mut clock = KeyframeClock::new(25_600);
        let keys: Vec<i64> = (0..200)
            .map(|i| i * 512)
            .filter(|&p| clock.is_boundary(p))
            .collect();
        assert_eq!(keys, vec![0, 25_600, 51_200, 76_800]);
    }

    #[test]
    fn keyframes_ntsc_rate_land_on_first_frame_past_boundary() {
        // 29.97 fps in 1/30000: 1001 ticks a frame, 2 s = 60000 ticks.
        let mut clock = KeyframeClock::new(60_000);
        let frames: Vec<i64> = (0..130).map(|i| 500 + i * 1001).collect();
        let keys: Vec<i64> = frames
            .iter()
            .copied()
            .filter(|&p| clock.is_boundary(p))
            .collect();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[0], 500);
        assert!(keys[1] - 500 >= 60_000 && keys[1] - 500 < 61_001);
        assert!(keys[2] - 500 >= 120_000 && keys[2] - 500 < 121_001);
    }
}
