//! Live sources, paced by their own timestamps against a monotonic clock:
//! a demuxed input (a stored file, once or looped; a pulled URL) or a
//! generator (libavfilter `testsrc` with its burnt-in clock, a `sine` tone,
//! and now and then a mint square that is reported as a source event).
//!
//! Output timestamps are continuous across loops: pass `n` is shifted by
//! the duration of the passes before it, and the whole timeline by the
//! caller's offset (the channel's clock).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use ff::Rescale;
use ffmpeg_next as ff;

use super::LiveEvent;
use crate::error::{MediaError, Stage};
use crate::pipeline::decode::KeyframeClock;
use crate::pipeline::{fan_out, AudioMsg, FrameMsg};

/// Longest single sleep of the pacer: the stop flag is read at least this
/// often while waiting.
const PACE_SLICE: Duration = Duration::from_millis(100);

/// Sleeps until a timestamp's wall-clock due time (no busy wait, no
/// `sleep(1/fps)`): due = start + (t − first t).
pub(crate) struct Pacer {
    start: Instant,
    origin_s: Option<f64>,
    /// `false`: never wait (as fast as the encoders go).
    enabled: bool,
}

impl Pacer {
    pub(crate) fn new(enabled: bool) -> Self {
        Pacer {
            start: Instant::now(),
            origin_s: None,
            enabled,
        }
    }

    /// Wait until `t_s` is due; `false` when `stop` was set meanwhile.
    pub(crate) fn wait(&mut self, t_s: f64, stop: &AtomicBool) -> bool {
        let origin = *self.origin_s.get_or_insert(t_s);
        if !self.enabled {
            return !stop.load(Ordering::Relaxed);
        }
        let ahead = (t_s - origin).max(0.0);
        let due = self.start + Duration::from_secs_f64(ahead.min(1e9));
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= due {
                return true;
            }
            std::thread::sleep((due - now).min(PACE_SLICE));
        }
    }

    /// How late `t_s` is against its due time, seconds (0 when on time).
    pub(crate) fn lateness_s(&self, t_s: f64) -> f64 {
        let Some(origin) = self.origin_s else {
            return 0.0;
        };
        let due = (t_s - origin).max(0.0);
        (self.start.elapsed().as_secs_f64() - due).max(0.0)
    }
}

/// Fans paced video frames out to the rungs with the shared keyframe
/// decision, and audio to the audio stage.
///
/// Drop policy when the encoders fall behind real time: a video frame that
/// finds any rung's queue full is dropped before encode (for every rung,
/// so rungs stay aligned); the next frame sent takes over a keyframe
/// decision that was due. Audio is never dropped (cheap to encode; its
/// timestamps keep A/V sync). Drops are counted and reported.
pub(crate) struct Emitter {
    pub(crate) rung_txs: Vec<Sender<FrameMsg>>,
    pub(crate) audio_tx: Option<Sender<AudioMsg>>,
    pub(crate) notes: Sender<LiveEvent>,
    pub(crate) keyframes: KeyframeClock,
    pub(crate) pacer: Pacer,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) time_base: ff::Rational,
    pub(crate) last_pts: Option<i64>,
    pub(crate) frames: u64,
    pub(crate) dropped: u64,
    pub(crate) last_report: Instant,
}

impl Emitter {
    /// Pace and send one video frame at output `pts` (time-base ticks).
    /// `Ok(false)` once stopped.
    pub(crate) fn video(
        &mut self,
        mut frame: ff::frame::Video,
        pts: i64,
    ) -> Result<bool, MediaError> {
        let t = pts as f64 * f64::from(self.time_base);
        if !self.pacer.wait(t, &self.stop) {
            return Ok(false);
        }
        if self.last_pts.is_some_and(|last| pts <= last) {
            return Ok(true);
        }
        if self.pacer.enabled && self.rung_txs.iter().any(|tx| tx.is_full()) {
            self.dropped += 1;
            self.report(false);
            return Ok(true);
        }
        self.last_pts = Some(pts);
        let keyframe = self.keyframes.is_boundary(pts);
        frame.set_pts(Some(pts));
        fan_out(&self.rung_txs, frame, pts, keyframe)?;
        self.frames += 1;
        self.report(false);
        Ok(true)
    }

    pub(crate) fn audio(&self, msg: AudioMsg) -> Result<(), MediaError> {
        if let Some(tx) = &self.audio_tx {
            tx.send(msg)
                .map_err(|_| MediaError::Pipeline("audio stage stopped".into()))?;
        }
        Ok(())
    }

    fn report(&mut self, force: bool) {
        if force || self.last_report.elapsed() >= Duration::from_secs(1) {
            self.last_report = Instant::now();
            let t = self.last_pts.unwrap_or(0) as f64 * f64::from(self.time_base);
            // Advisory: dropped when the caller is behind.
            let _ = self.notes.try_send(LiveEvent::Progress {
                media_time_s: t,
                frames: self.frames,
                dropped: self.dropped,
                lateness_s: self.pacer.lateness_s(t),
            });
        }
    }

    /// Tell every stage the source ended.
    pub(crate) fn end(mut self) -> Result<(), MediaError> {
        self.report(true);
        for tx in &self.rung_txs {
            tx.send(FrameMsg::End)
                .map_err(|_| MediaError::Pipeline("a rung stopped".into()))?;
        }
        if let Some(tx) = &self.audio_tx {
            tx.send(AudioMsg::End)
                .map_err(|_| MediaError::Pipeline("audio stage stopped".into()))?;
        }
        Ok(())
    }
}

/// A demuxed source (file or URL): `open` opens it for each pass.
pub(crate) struct Demuxed {
    pub(crate) open: Box<dyn Fn() -> Result<ff::format::context::Input, MediaError> + Send>,
    pub(crate) looped: bool,
    pub(crate) video_index: usize,
    pub(crate) audio_index: Option<usize>,
    pub(crate) frame_ticks: i64,
    /// Added to every output timestamp, video time-base ticks.
    pub(crate) offset_ticks: i64,
    pub(crate) max_gap_ticks: i64,
    /// Times a failing source is reopened (pulled URLs); the timeline goes
    /// on after what was played, like a loop.
    pub(crate) reconnects: u32,
}

/// Consecutive video packets the decoder may refuse before the source is
/// given up (a codec change mid-stream, garbage).
const MAX_DECODE_FAILURES: u32 = 100;
/// Wait before reopening a failed source.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

impl Demuxed {
    pub(crate) fn run(self, mut out: Emitter) -> Result<(), MediaError> {
        let mut pass_offset = self.offset_ticks;
        let mut reconnects_left = self.reconnects;
        let mut reconnecting = false;
        'passes: loop {
            let mut input = match (self.open)() {
                Ok(i) => i,
                Err(e) if reconnecting && reconnects_left > 0 => {
                    reconnects_left -= 1;
                    warn_reconnect(&e.to_string());
                    if !sleep_unless_stopped(RECONNECT_DELAY, &out.stop) {
                        break 'passes;
                    }
                    continue 'passes;
                }
                Err(e) => return Err(e),
            };
            let vstream = input
                .stream(self.video_index)
                .ok_or_else(|| MediaError::Invalid("video stream vanished".into()))?;
            let tb = vstream.time_base();
            let atb = self
                .audio_index
                .and_then(|i| input.stream(i))
                .map(|s| s.time_base());
            let mut vctx = ff::codec::context::Context::from_parameters(vstream.parameters())
                .stage("video decoder")?;
            vctx.set_threading(ff::threading::Config {
                kind: ff::threading::Type::Frame,
                count: 0,
                ..Default::default()
            });
            let mut vdec = vctx
                .decoder()
                .video()
                .map_err(|e| MediaError::Unsupported(format!("video cannot be decoded: {e}")))?;
            // SAFETY: reading a plain field of an open format context.
            let start_us = unsafe { (*input.as_ptr()).start_time };
            let start_us = if start_us == ff::ffi::AV_NOPTS_VALUE {
                0
            } else {
                start_us
            };
            let start = start_us.rescale(ff::rescale::TIME_BASE, tb);
            let mut pass_end = pass_offset;
            let mut last_src: Option<i64> = None;
            let mut decoded = ff::frame::Video::empty();
            let mut packet = ff::Packet::empty();
            let mut read_errors = 0;
            let mut decode_failures = 0u32;
            let mut eof = false;
            reconnecting = false;
            while !eof {
                match packet.read(&mut input) {
                    Ok(()) => read_errors = 0,
                    Err(ff::Error::Eof) => {
                        eof = true;
                        let _ = vdec.send_eof();
                    }
                    Err(e) => {
                        read_errors += 1;
                        if read_errors > 16 {
                            if reconnects_left > 0 && !out.stop.load(Ordering::Relaxed) {
                                reconnects_left -= 1;
                                warn_reconnect(&e.to_string());
                                reconnecting = true;
                                break;
                            }
                            return Err(MediaError::Truncated(format!("source read failed: {e}")));
                        }
                        continue;
                    }
                }
                if !eof && packet.stream() == self.video_index {
                    if vdec.send_packet(&packet).is_err() {
                        decode_failures += 1;
                        if decode_failures > MAX_DECODE_FAILURES {
                            return Err(MediaError::Invalid(
                                "the source's video no longer decodes (did its codec change?)"
                                    .into(),
                            ));
                        }
                    } else {
                        decode_failures = 0;
                    }
                } else if !eof && Some(packet.stream()) == self.audio_index {
                    let mut owned = std::mem::replace(&mut packet, ff::Packet::empty());
                    if let Some(atb) = atb {
                        // The next pass starts after the longer of the
                        // video and the audio of this one (audio often
                        // runs a few ms past the last frame).
                        if let Some(p) = owned.pts() {
                            let a_start = start_us.rescale(ff::rescale::TIME_BASE, atb);
                            let end =
                                (p.saturating_add(owned.duration()) - a_start).rescale(atb, tb);
                            pass_end = pass_end.max(end.saturating_add(pass_offset));
                        }
                        let shift = pass_offset.rescale(tb, atb);
                        owned.set_pts(owned.pts().map(|p| p.saturating_add(shift)));
                        owned.set_dts(owned.dts().map(|p| p.saturating_add(shift)));
                    }
                    out.audio(AudioMsg::Packet(owned))?;
                    continue;
                } else if !eof {
                    continue;
                }
                while vdec.receive_frame(&mut decoded).is_ok() {
                    let frame = std::mem::replace(&mut decoded, ff::frame::Video::empty());
                    let Some(src) = frame.timestamp().or(frame.pts()) else {
                        continue;
                    };
                    let rel = src.saturating_sub(start);
                    if let Some(last) = last_src {
                        if (rel - last).abs() > self.max_gap_ticks {
                            return Err(MediaError::Invalid(format!(
                                "source timestamps jump {:.1} s",
                                (rel - last) as f64 * f64::from(tb)
                            )));
                        }
                    }
                    last_src = Some(rel);
                    let pts = rel.saturating_add(pass_offset);
                    pass_end = pass_end.max(pts.saturating_add(self.frame_ticks));
                    if !out.video(frame, pts)? {
                        break 'passes;
                    }
                }
            }
            if reconnecting {
                pass_offset = pass_end;
                if !sleep_unless_stopped(RECONNECT_DELAY, &out.stop) {
                    break;
                }
                continue;
            }
            if !self.looped || out.stop.load(Ordering::Relaxed) || pass_end <= pass_offset {
                break;
            }
            pass_offset = pass_end;
        }
        out.end()
    }
}

fn warn_reconnect(reason: &str) {
    tracing::warn!(reason, "live source failed; reconnecting");
}

/// Sleep `d` in slices; `false` when `stop` was set.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(PACE_SLICE.min(until - Instant::now()));
    }
    !stop.load(Ordering::Relaxed)
}

/// The generator: `testsrc` (which draws its own running clock), a sine
/// tone, and events.
pub(crate) struct Generator {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) fps: i32,
    /// Mean seconds between events (exponentially distributed).
    pub(crate) event_interval_s: f64,
    pub(crate) seed: u64,
    pub(crate) offset_ticks: i64,
    pub(crate) audio_rate: u32,
}

/// How long an event's mint square stays on screen, frames.
const EVENT_FRAMES: u64 = 25;

impl Generator {
    pub(crate) fn run(self, mut out: Emitter) -> Result<(), MediaError> {
        let mut video = source_graph(
            "buffersink",
            &format!(
                "testsrc=size={}x{}:rate={}:decimals=2,format=yuv420p",
                self.width, self.height, self.fps
            ),
        )?;
        let mut audio = source_graph(
            "abuffersink",
            &format!(
                "sine=frequency=880:beep_factor=2:sample_rate={}:samples_per_frame=1024",
                self.audio_rate
            ),
        )?;
        let tb = out.time_base;
        let frame_ticks = 1i64.rescale(ff::Rational::new(1, self.fps), tb);
        let audio_shift = self
            .offset_ticks
            .rescale(tb, ff::Rational::new(1, self.audio_rate as i32));
        // Spread the seed over all bits (Fibonacci hashing) before xorshift.
        let mut rng = self
            .seed
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            | 1;
        let mut next_event = self.next_interval(&mut rng);
        let mut event_left = 0u64;
        let mut audio_samples: i64 = 0;
        for n in 0u64.. {
            let mut frame = ff::frame::Video::empty();
            sink_frame(&mut video, &mut frame)?;
            let source_s = n as f64 / f64::from(self.fps);
            // Audio up to this frame's end.
            while (audio_samples as f64) / f64::from(self.audio_rate)
                < source_s + 1.0 / f64::from(self.fps)
            {
                let mut a = ff::frame::Audio::empty();
                sink_frame(&mut audio, &mut a)?;
                let samples = a.samples() as i64;
                a.set_pts(Some(audio_samples + audio_shift));
                audio_samples += samples;
                out.audio(AudioMsg::Frame(a))?;
            }
            let pts = (n as i64)
                .saturating_mul(frame_ticks)
                .saturating_add(self.offset_ticks);
            if source_s >= next_event {
                next_event = source_s + self.next_interval(&mut rng);
                event_left = EVENT_FRAMES;
                let _ = out.notes.send(LiveEvent::SourceEvent {
                    media_time_s: pts as f64 * f64::from(tb),
                    source_time_s: source_s,
                });
            }
            if event_left > 0 {
                event_left -= 1;
                draw_mint_square(&mut frame)?;
            }
            if !out.video(frame, pts)? {
                break;
            }
        }
        out.end()
    }

    fn next_interval(&self, rng: &mut u64) -> f64 {
        // xorshift64; u in (0, 1]
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        let u = ((*rng >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        // At least a second without the square between two events, so
        // every event is its own onset on screen.
        let min = EVENT_FRAMES as f64 / f64::from(self.fps) + 1.0;
        (-u.ln() * self.event_interval_s).clamp(min, (100.0 * self.event_interval_s).max(min))
    }
}

/// A graph of one libavfilter source chain ending in `sink`.
fn source_graph(sink: &str, spec: &str) -> Result<ff::filter::Graph, MediaError> {
    let mut graph = ff::filter::Graph::new();
    let out = ff::filter::find(sink)
        .ok_or_else(|| MediaError::Pipeline(format!("libavfilter has no {sink}")))?;
    graph.add(&out, "out", "").stage("generator sink")?;
    graph
        .input("out", 0)
        .and_then(|p| p.parse(spec))
        .stage("generator graph")?;
    graph.validate().stage("generator graph")?;
    Ok(graph)
}

fn sink_frame(graph: &mut ff::filter::Graph, frame: &mut ff::Frame) -> Result<(), MediaError> {
    let mut ctx = graph
        .get("out")
        .ok_or_else(|| MediaError::Pipeline("generator sink missing".into()))?;
    ctx.sink().frame(frame).stage("generator pull")
}

/// A mint-green square (RGB 152,255,152 → BT.601 Y 212, U 94, V 85) in the
/// top-left quarter: the visible event python-hls-stream draws.
fn draw_mint_square(frame: &mut ff::frame::Video) -> Result<(), MediaError> {
    // SAFETY: make the frame's buffers writable (copies if shared with
    // the filter's pool) before touching its planes.
    let res = unsafe { ff::ffi::av_frame_make_writable(frame.as_mut_ptr()) };
    if res < 0 {
        return Err(MediaError::Libav {
            stage: "generator frame",
            source: ff::Error::from(res),
        });
    }
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let side = (h / 4).max(2) & !1;
    let (x0, y0) = ((w / 8) & !1, (h / 8) & !1);
    for (plane, value, shift) in [(0usize, 212u8, 0usize), (1, 94, 1), (2, 85, 1)] {
        let stride = frame.stride(plane);
        let data = frame.data_mut(plane);
        for y in (y0 >> shift)..((y0 + side) >> shift) {
            let row = y * stride;
            let (a, b) = (row + (x0 >> shift), row + ((x0 + side) >> shift));
            if b <= data.len() {
                data[a..b].fill(value);
            }
        }
    }
    Ok(())
}
