//! Live channels: a source encoded in real time into the ABR ladder and
//! cut into LL-HLS parts (draft-pantos-hls-rfc8216bis §4.4.4.9).
//!
//! ```text
//!  source (paced by PTS) ─┬─> rung 0: swscale → libx264 ─┐
//!  file / URL / generator ├─> rung 1 ...                 ├─> live packager → parts (CMAF
//!                         └─> audio → AAC ───────────────┘    fragments) per track
//! ```
//!
//! The rung and audio stages are the VOD pipeline's; the source stage
//! paces frames by their timestamps against a monotonic clock and drops
//! whole frames (counted) when the encoders fall behind; the packager cuts
//! parts and segments ([`packager`]). Everything reaches the caller as
//! [`LiveEvent`]s on the calling thread; the caller publishes parts,
//! playlists (`stream_hls::live`) and the master. Setting `stop` ends the
//! channel cleanly: the source stops, encoders flush, the last parts are
//! cut and every track reports [`LiveEvent::TrackEnded`].

mod fragment;
mod packager;
mod source;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::bounded;
use ffmpeg_next as ff;

use crate::codecs::{avc_codecs_string, AAC_LC};
use crate::encode::{extradata, open_audio_encoder, open_video_encoder, VideoEncoderSettings};
use crate::error::MediaError;
use crate::ladder::Ladder;
use crate::limits::{open_untrusted, Limits, ALLOWED_DEMUXERS};
use crate::pipeline::audio::{audio_stage_run, AudioDecoder};
use crate::pipeline::decode::KeyframeClock;
use crate::pipeline::rung::rung_stage;
use crate::pipeline::{spawn, AudioMsg, FrameMsg, PacketMsg, Plan, Track, TrackKind, AUDIO_TRACK};
use crate::probe::{inspect, FrameRate, SourceInfo, VideoInfo};
use fragment::FragmentMuxer;
use packager::{live_package_stage, TrackPackager};
use source::{Demuxed, Emitter, Generator, Pacer};

/// What a channel plays.
#[derive(Debug, Clone)]
pub enum LiveSource {
    /// A local media file (untrusted: same rules as uploads), once or
    /// looped.
    File { path: PathBuf, looped: bool },
    /// The test pattern generator.
    Generator {
        /// Pixels (even).
        width: u32,
        height: u32,
        /// Mean seconds between events.
        event_interval_s: f64,
        /// Seed of the event times.
        seed: u64,
    },
    /// A URL libavformat reads live (http(s) file or HLS, RTMP, RTSP, SRT).
    /// The caller checks the address first (SSRF guard).
    Url { url: String },
}

/// How to run a channel.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub ladder: Ladder,
    /// Segment duration and keyframe interval, seconds (default 2).
    pub segment_duration_s: f64,
    /// Nominal part duration, seconds (default 0.5; PART-TARGET is the
    /// longest part actually cut).
    pub part_duration_s: f64,
    /// x264 preset (default `veryfast`).
    pub x264_preset: String,
    /// `tune=zerolatency` (no B-frames, no lookahead).
    pub low_latency: bool,
    /// AAC bitrate, bit/s.
    pub audio_bitrate: u64,
    pub limits: Limits,
    /// Capacity of each inter-stage channel, frames (default 4: a small
    /// queue keeps latency low and makes falling behind visible as drops).
    pub queue_frames: usize,
    /// Pace the source by its timestamps (real time). Off only to measure
    /// how fast the ladder can encode (benchmarks).
    pub paced: bool,
    /// The channel's clock zero, Unix ms: the first frame's output time is
    /// the wall clock when the source starts minus this (read just before
    /// the pacer starts), so PDT = anchor + media time is the wall-clock
    /// instant each frame was released, in every run of the channel.
    /// `None`: output time starts at 0.
    pub clock_anchor_ms: Option<i64>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            ladder: Ladder::default(),
            segment_duration_s: 2.0,
            part_duration_s: 0.5,
            x264_preset: "veryfast".into(),
            low_latency: false,
            audio_bitrate: 128_000,
            limits: Limits::default(),
            queue_frames: 4,
            paced: true,
            clock_anchor_ms: None,
        }
    }
}

/// What a channel reports while it runs.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// Tracks and their codecs, before the first part.
    Planned(Plan),
    /// A track's initialization section (`ftyp`+`moov`).
    Init { track: String, bytes: Vec<u8> },
    /// A part (one CMAF fragment) is complete.
    Part {
        track: String,
        bytes: Vec<u8>,
        /// Decode time of its first sample, seconds (parts follow each other
        /// without gaps on this clock).
        start_s: f64,
        /// Presentation time of its first sample, seconds: for a part that
        /// starts a segment (a keyframe of a closed GOP), the segment's
        /// earliest presentation time — its PDT's media time. With B-frames
        /// it is later than `start_s` by the reorder delay.
        presentation_s: f64,
        duration_s: f64,
        /// Starts with a keyframe (always for audio).
        independent: bool,
        /// First part of a new segment.
        starts_segment: bool,
        /// The next part starts a new segment: this one ends its segment
        /// (false for a track's last part, which [`LiveEvent::TrackEnded`]
        /// closes).
        next_starts_segment: bool,
    },
    /// A track's last part was delivered (the channel stopped).
    TrackEnded { track: String },
    /// The generator showed an event on the frame at `media_time_s`
    /// (output time, seconds; `source_time_s` on the generator's clock).
    SourceEvent {
        media_time_s: f64,
        source_time_s: f64,
    },
    /// About once a second.
    Progress {
        media_time_s: f64,
        frames: u64,
        /// Frames dropped before encode since the start.
        dropped: u64,
        /// How late the source is against real time, seconds.
        lateness_s: f64,
    },
}

/// Figures of a finished channel.
#[derive(Debug, Clone, Copy)]
pub struct LiveReport {
    pub wall_s: f64,
}

/// Network protocols a pulled URL may use (and the ones HLS needs inside).
const PULL_PROTOCOLS: &str = "http,https,tcp,tls,crypto,rtmp,rtmps,rtsp,srt,udp,hls";
/// Times a pulled source that fails is reopened before the channel stops.
const PULL_RECONNECTS: u32 = 3;
/// Video time base of generated frames (90 kHz, as MPEG systems).
const GENERATOR_TIME_BASE: i32 = 90_000;

fn open_url(url: &str) -> Result<ff::format::context::Input, MediaError> {
    let mut options = ff::Dictionary::new();
    options.set("protocol_whitelist", PULL_PROTOCOLS);
    options.set(
        "format_whitelist",
        &format!("{ALLOWED_DEMUXERS},hls,rtsp,sdp"),
    );
    options.set("probesize", "5000000");
    options.set("analyzeduration", "5000000");
    // A source that stalls for 10 s fails the channel (µs).
    options.set("rw_timeout", "10000000");
    options.set("timeout", "10000000");
    ff::format::input_with_dictionary(&url, options)
        .map_err(|e| MediaError::Unsupported(format!("cannot open the source URL: {e}")))
}

/// Run a channel until the source ends (not looped) or `stop` is set.
/// Blocks the calling thread; `on_event` runs on it.
///
/// Errors: input errors ([`MediaError::is_input_error`]: unreadable or
/// invalid source, timestamps that jump) and libav failures.
pub fn run_live(
    source: &LiveSource,
    opts: &LiveOptions,
    stop: &AtomicBool,
    mut on_event: impl FnMut(LiveEvent),
) -> Result<LiveReport, MediaError> {
    let started = Instant::now();
    ff::init().map_err(|e| MediaError::Libav {
        stage: "libav init",
        source: e,
    })?;
    // The source: its video description, time base, audio decoder.
    let (info, video_tb, frame_rate, demux) = match source {
        LiveSource::Generator { width, height, .. } => {
            let (w, h) = (*width & !1, *height & !1);
            let video = VideoInfo {
                index: 0,
                coded_width: w,
                coded_height: h,
                display_width: w,
                display_height: h,
                rotation: 0,
                frame_rate: FrameRate { num: 25, den: 1 },
                codec: "rawvideo".into(),
            };
            let info = SourceInfo {
                format: "lavfi".into(),
                duration_s: 0.0,
                video,
                audio: None,
            };
            (
                info,
                ff::Rational::new(1, GENERATOR_TIME_BASE),
                FrameRate { num: 25, den: 1 },
                None,
            )
        }
        LiveSource::File { path, .. } => {
            let input = open_untrusted(path)?;
            let info = inspect(&input, &opts.limits)?;
            let tb = input
                .stream(info.video.index)
                .ok_or_else(|| MediaError::Invalid("video stream vanished".into()))?
                .time_base();
            let rate = info.video.frame_rate;
            (info, tb, rate, Some(input))
        }
        LiveSource::Url { url } => {
            let input = open_url(url)?;
            let info = inspect(&input, &opts.limits)?;
            let tb = input
                .stream(info.video.index)
                .ok_or_else(|| MediaError::Invalid("video stream vanished".into()))?
                .time_base();
            let rate = info.video.frame_rate;
            (info, tb, rate, Some(input))
        }
    };
    let plans = opts.ladder.plan(&info.video);
    let settings = VideoEncoderSettings {
        preset: opts.x264_preset.clone(),
        segment_duration_s: opts.segment_duration_s,
        threads: 0,
        zero_latency: opts.low_latency,
        sliced_threads: true,
    };
    let x264 = ff::encoder::find_by_name("libx264")
        .ok_or_else(|| MediaError::Pipeline("libx264 encoder is not available".into()))?;
    let mut tracks = Vec::new();
    let mut packagers = Vec::new();
    let mut inits = Vec::new();
    let mut encoders = Vec::new();
    for plan in &plans {
        let enc = open_video_encoder(plan, video_tb, frame_rate, &settings)?;
        let codecs = avc_codecs_string(&extradata(enc.as_ref()))
            .ok_or_else(|| MediaError::Pipeline("libx264 produced no SPS in extradata".into()))?;
        let (muxer, init) = FragmentMuxer::create(&enc, x264)?;
        packagers.push(TrackPackager::new(
            plan.name.clone(),
            muxer,
            true,
            opts.segment_duration_s,
            opts.part_duration_s,
        ));
        inits.push(init);
        tracks.push(Track {
            name: plan.name.clone(),
            codecs,
            kind: TrackKind::Video {
                plan: plan.clone(),
                frame_rate: frame_rate.fps(),
            },
        });
        encoders.push((plan.clone(), enc));
    }
    // Audio: the source's (decoded here), or the generator's tone.
    let audio_decoder = match (&demux, &info.audio) {
        (Some(input), Some(a)) => {
            let astream = input
                .stream(a.index)
                .ok_or_else(|| MediaError::Invalid("audio stream vanished".into()))?;
            let decoder = ff::codec::context::Context::from_parameters(astream.parameters())
                .and_then(|c| c.decoder().audio())
                .map_err(|e| MediaError::Unsupported(format!("audio cannot be decoded: {e}")))?;
            // SAFETY: reading a plain field of an open format context.
            let start_us = unsafe { (*input.as_ptr()).start_time };
            let start_us = if start_us == ff::ffi::AV_NOPTS_VALUE {
                0
            } else {
                start_us
            };
            use ff::Rescale;
            Some(Some((
                AudioDecoder {
                    time_base: astream.time_base(),
                    decoder,
                    start: start_us.rescale(ff::rescale::TIME_BASE, astream.time_base()),
                },
                a.sample_rate,
            )))
        }
        (None, _) => Some(None),
        (Some(_), None) => None,
    };
    let mut audio_stage = None;
    if let Some(decoder) = audio_decoder {
        let src_rate = decoder.as_ref().map_or(48_000, |(_, r)| *r);
        let out_rate = if src_rate == 44_100 { 44_100 } else { 48_000 };
        let enc = open_audio_encoder(out_rate, opts.audio_bitrate)?;
        let aac = ff::encoder::find(ff::codec::Id::AAC)
            .ok_or_else(|| MediaError::Pipeline("AAC encoder is not available".into()))?;
        let (muxer, init) = FragmentMuxer::create(&enc, aac)?;
        packagers.push(TrackPackager::new(
            AUDIO_TRACK.into(),
            muxer,
            false,
            opts.segment_duration_s,
            opts.part_duration_s,
        ));
        inits.push(init);
        tracks.push(Track {
            name: AUDIO_TRACK.into(),
            codecs: AAC_LC.into(),
            kind: TrackKind::Audio {
                channels: 2,
                sample_rate: out_rate,
                bitrate: opts.audio_bitrate,
            },
        });
        audio_stage = Some((decoder.map(|(d, _)| d), enc, out_rate));
    }
    let track_names: Vec<String> = tracks.iter().map(|t| t.name.clone()).collect();
    on_event(LiveEvent::Planned(Plan {
        source: info.clone(),
        tracks: tracks.clone(),
    }));
    for (name, bytes) in track_names.iter().zip(inits) {
        on_event(LiveEvent::Init {
            track: name.clone(),
            bytes,
        });
    }

    // Stages.
    let depth = opts.queue_frames.max(1);
    let (note_tx, note_rx) = bounded::<LiveEvent>(256);
    let (pkt_tx, pkt_rx) = bounded::<PacketMsg>(depth * (tracks.len() + 1) * 4);
    let mut handles = Vec::new();
    {
        let note_tx = note_tx.clone();
        handles.push(spawn("live-package", move || {
            live_package_stage(packagers, pkt_rx, note_tx)
        })?);
    }
    let frame_ticks = (1.0 / frame_rate.fps() / f64::from(video_tb))
        .round()
        .max(1.0) as i64;
    let mut rung_txs = Vec::new();
    for (track, (plan, enc)) in encoders.into_iter().enumerate() {
        let (tx, rx) = bounded::<FrameMsg>(depth);
        rung_txs.push(tx);
        let pkt_tx = pkt_tx.clone();
        handles.push(spawn("live-rung", move || {
            rung_stage(track, plan, enc, video_tb, frame_ticks, rx, pkt_tx)
        })?);
    }
    let mut audio_tx = None;
    let mut audio_rate = 48_000;
    if let Some((decoder, enc, out_rate)) = audio_stage {
        let (tx, rx) = bounded::<AudioMsg>(depth * 16);
        audio_tx = Some(tx);
        audio_rate = out_rate;
        let track = tracks.len() - 1;
        let pkt_tx = pkt_tx.clone();
        let max_gap = opts.limits.max_timestamp_gap_s;
        handles.push(spawn("live-audio", move || {
            audio_stage_run(track, decoder, max_gap, true, enc, out_rate, rx, pkt_tx)
        })?);
    }
    drop(pkt_tx);
    let stop_flag = Arc::new(AtomicBool::new(stop.load(Ordering::Relaxed)));
    // Encoders are open: the clock starts now.
    let offset_s = opts.clock_anchor_ms.map_or(0.0, |anchor| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        (now - anchor).max(0) as f64 / 1000.0
    });
    let emitter = Emitter {
        rung_txs,
        audio_tx,
        notes: note_tx.clone(),
        keyframes: KeyframeClock::new(
            (opts.segment_duration_s / f64::from(video_tb)).round() as i64
        ),
        pacer: Pacer::new(opts.paced),
        stop: stop_flag.clone(),
        time_base: video_tb,
        last_pts: None,
        frames: 0,
        dropped: 0,
        last_report: Instant::now(),
    };
    let offset_ticks = (offset_s / f64::from(video_tb)).round() as i64;
    let source_handle = match source {
        LiveSource::Generator {
            event_interval_s,
            seed,
            ..
        } => {
            let g = Generator {
                width: info.video.coded_width,
                height: info.video.coded_height,
                fps: 25,
                event_interval_s: if *event_interval_s > 0.0 {
                    *event_interval_s
                } else {
                    10.0
                },
                seed: *seed,
                offset_ticks,
                audio_rate,
            };
            spawn("live-source", move || g.run(emitter))?
        }
        LiveSource::File { path, looped } => {
            drop(demux);
            let path = path.clone();
            let d = Demuxed {
                open: Box::new(move || open_untrusted(&path)),
                looped: *looped,
                reconnects: 0,
                video_index: info.video.index,
                audio_index: info.audio.as_ref().map(|a| a.index),
                frame_ticks,
                offset_ticks,
                max_gap_ticks: (opts.limits.max_timestamp_gap_s / f64::from(video_tb)) as i64,
            };
            spawn("live-source", move || d.run(emitter))?
        }
        LiveSource::Url { url } => {
            drop(demux);
            let url = url.clone();
            let d = Demuxed {
                open: Box::new(move || open_url(&url)),
                looped: false,
                reconnects: PULL_RECONNECTS,
                video_index: info.video.index,
                audio_index: info.audio.as_ref().map(|a| a.index),
                frame_ticks,
                offset_ticks,
                max_gap_ticks: (opts.limits.max_timestamp_gap_s / f64::from(video_tb)) as i64,
            };
            spawn("live-source", move || d.run(emitter))?
        }
    };
    drop(note_tx);

    // Relay notes until every stage has dropped its sender; mirror `stop`.
    loop {
        match note_rx.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(event) => on_event(event),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if stop.load(Ordering::Relaxed) {
            stop_flag.store(true, Ordering::Relaxed);
        }
    }
    let mut first_err: Option<MediaError> = None;
    let mut keep = |e: MediaError| {
        let replace = match &first_err {
            None => true,
            Some(MediaError::Pipeline(_)) => !matches!(e, MediaError::Pipeline(_)),
            Some(_) => false,
        };
        if replace {
            first_err = Some(e);
        }
    };
    match source_handle.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => keep(e),
        Err(_) => keep(MediaError::Pipeline("live source panicked".into())),
    }
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => keep(e),
            Err(_) => keep(MediaError::Pipeline("a live stage panicked".into())),
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(LiveReport {
        wall_s: started.elapsed().as_secs_f64(),
    })
}
