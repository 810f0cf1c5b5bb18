//! Media for the kn-sock 0.3.0 compatible stream (see `docs/knsock.md`):
//! a stored video played as live, as JPEG frames per quality tier and PCM
//! chunks, paced at real time.
//!
//! One [`KnSockProducer`] per video serves every viewer of it. Two threads
//! of this crate do the libav work and send into one bounded channel
//! ([`OUTPUT_QUEUE`] items; a full channel blocks them, pacing resumes
//! against the same clock):
//!
//! * video: demux → decode (frame threads) → one swscale to `yuvj420p`
//!   fitting [`MAX_WIDTH`]×[`MAX_HEIGHT`] → one mjpeg encode per quality
//!   tier that has a viewer ([`TierDemand`]) → [`KnSockOutput::Frame`].
//!   Each frame is released at its presentation time (source frame rate);
//!   a frame more than [`LATE_DROP_S`] late is dropped before scaling
//!   (counted).
//! * audio: demux → decode → swresample to s16le stereo 44 100 Hz → a byte
//!   FIFO cut into chunks of exactly [`PCM_CHUNK_FRAMES`] frames →
//!   [`KnSockOutput::Audio`], released at their media time. Without an
//!   audio file, silence at the same rate.
//!
//! Both loop the file forever on one media timeline (seconds from the
//! producer's start; a loop continues after the end of the previous
//! pass), until [`KnSockProducer`] is dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use ffmpeg_next as ff;

use crate::error::{MediaError, Stage};
use crate::limits::{open_untrusted, Limits, ALLOWED_AUDIO_DECODERS, ALLOWED_VIDEO_DECODERS};

/// kn-sock's JPEG qualities (its control rule moves in steps of 10 between
/// 40 and 90), lowest first; index = tier.
pub const QUALITY_TIERS: [u8; 6] = [40, 50, 60, 70, 80, 90];
/// Number of quality tiers.
pub const TIER_COUNT: usize = QUALITY_TIERS.len();
/// libavcodec mjpeg quantiser scale per tier: its tables are
/// `mpeg1_intra × qscale / 8`; each value is the qscale whose table is
/// closest (log error) to libjpeg's table at that quality.
pub const MJPEG_QSCALE: [i32; TIER_COUNT] = [15, 12, 9, 7, 5, 3];
/// Output frames are scaled to fit this width (pixels), aspect kept.
pub const MAX_WIDTH: u32 = 1280;
/// Output frames are scaled to fit this height (pixels), aspect kept.
pub const MAX_HEIGHT: u32 = 720;
/// PCM sample rate, Hz.
pub const PCM_RATE: u32 = 44_100;
/// PCM channels (interleaved).
pub const PCM_CHANNELS: usize = 2;
/// Frames (samples per channel) per audio chunk.
pub const PCM_CHUNK_FRAMES: usize = 1024;
/// Bytes per audio chunk: frames × channels × 2 (s16le).
pub const PCM_CHUNK_BYTES: usize = PCM_CHUNK_FRAMES * PCM_CHANNELS * 2;
/// Items between the media threads and the consumer.
pub const OUTPUT_QUEUE: usize = 16;
/// A video frame this late against the clock (seconds) is dropped.
pub const LATE_DROP_S: f64 = 0.5;
/// libavcodec's `FF_QP2LAMBDA`: lambda units per quantiser step.
const QP2LAMBDA: i32 = 118;
/// Longest sleep between checks of the stop flag.
const PACE_SLICE: Duration = Duration::from_millis(50);

/// The tier of a kn-sock JPEG quality (rounded to the nearest tier,
/// clamped to 40–90).
pub fn tier_of_quality(quality: u8) -> usize {
    let q = quality.clamp(QUALITY_TIERS[0], QUALITY_TIERS[TIER_COUNT - 1]);
    usize::from((q - QUALITY_TIERS[0] + 5) / 10).min(TIER_COUNT - 1)
}

/// Viewers per quality tier: the video thread encodes only tiers with at
/// least one viewer (and tier 4, quality 80, kn-sock's start, while there
/// is none at all, so a new viewer's first frame is ready).
#[derive(Debug, Default)]
pub struct TierDemand([AtomicUsize; TIER_COUNT]);

impl TierDemand {
    /// One more viewer on `tier` (0–5; larger values are clamped).
    pub fn add(&self, tier: usize) {
        self.0[tier.min(TIER_COUNT - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// One viewer fewer on `tier` (never below zero).
    pub fn remove(&self, tier: usize) {
        let _ = self.0[tier.min(TIER_COUNT - 1)].fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |n| n.checked_sub(1),
        );
    }

    /// Which tiers to encode now.
    pub fn wanted(&self) -> [bool; TIER_COUNT] {
        let mut w = [false; TIER_COUNT];
        for (i, n) in self.0.iter().enumerate() {
            w[i] = n.load(Ordering::Relaxed) > 0;
        }
        if !w.iter().any(|&x| x) {
            w[tier_of_quality(80)] = true;
        }
        w
    }
}

/// One video frame as JPEGs.
#[derive(Debug)]
pub struct JpegFrame {
    /// Media time, seconds (producer timeline).
    pub pts_s: f64,
    /// JPEG bytes per tier ([`QUALITY_TIERS`] order); `None` for tiers
    /// nobody watched when the frame was encoded.
    pub tiers: [Option<Vec<u8>>; TIER_COUNT],
}

/// One audio chunk.
#[derive(Debug)]
pub struct PcmChunk {
    /// Media time of its first frame, seconds (producer timeline).
    pub pts_s: f64,
    /// [`PCM_CHUNK_BYTES`] bytes: s16le, stereo interleaved, 44 100 Hz.
    pub data: Vec<u8>,
}

/// What the producer's threads send.
#[derive(Debug)]
pub enum KnSockOutput {
    Frame(JpegFrame),
    Audio(PcmChunk),
    /// A thread stopped on an error; the producer is unusable.
    Failed(MediaError),
}

/// Where a producer reads its media: local files, e.g. a rendition's
/// `init.mp4` + segments concatenated (fragmented MP4).
#[derive(Debug, Clone)]
pub struct KnSockInput {
    /// File with a video stream.
    pub video: PathBuf,
    /// File with an audio stream; `None` → silence.
    pub audio: Option<PathBuf>,
}

/// Counters of a producer.
#[derive(Debug, Default)]
pub struct KnSockStats {
    /// Video frames released.
    pub frames: AtomicU64,
    /// Video frames dropped for lateness (never encoded).
    pub late_drops: AtomicU64,
    /// JPEG encodes (frames × tiers encoded).
    pub encodes: AtomicU64,
    /// Audio chunks released.
    pub chunks: AtomicU64,
}

/// A running producer; dropping it (or the [`StopOnDrop`] of
/// [`KnSockProducer::into_parts`]) stops its threads within
/// [`PACE_SLICE`] or one frame's work.
pub struct KnSockProducer {
    rx: Receiver<KnSockOutput>,
    stop: StopOnDrop,
    stats: Arc<KnSockStats>,
    demand: Arc<TierDemand>,
}

impl KnSockProducer {
    /// Start the video and audio threads. The files are opened on those
    /// threads; a failure arrives as [`KnSockOutput::Failed`].
    ///
    /// Errors: the threads cannot be spawned.
    pub fn start(input: KnSockInput) -> Result<Self, MediaError> {
        ff::init().map_err(|e| MediaError::Pipeline(format!("libav init: {e}")))?;
        let (tx, rx) = bounded(OUTPUT_QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(KnSockStats::default());
        let demand = Arc::new(TierDemand::default());
        let ctx = ThreadCtx {
            tx,
            stop: stop.clone(),
            stats: stats.clone(),
            clock: Instant::now(),
        };
        let vctx = ctx.clone();
        let vdemand = demand.clone();
        let video = input.video.clone();
        std::thread::Builder::new()
            .name("knsock-video".into())
            .spawn(move || {
                if let Err(e) = video_thread(&video, &vdemand, &vctx) {
                    vctx.fail(e);
                }
            })?;
        let audio = input.audio.clone();
        std::thread::Builder::new()
            .name("knsock-audio".into())
            .spawn(move || {
                let result = match &audio {
                    Some(path) => audio_thread(path, &ctx),
                    None => silence_thread(&ctx),
                };
                if let Err(e) = result {
                    ctx.fail(e);
                }
            })?;
        Ok(KnSockProducer {
            rx,
            stop: StopOnDrop(stop),
            stats,
            demand,
        })
    }

    /// Frames, chunks and failures, in release order per thread.
    pub fn output(&self) -> &Receiver<KnSockOutput> {
        &self.rx
    }

    /// Viewers per tier; the consumer keeps it current.
    pub fn demand(&self) -> &Arc<TierDemand> {
        &self.demand
    }

    /// Counters.
    pub fn stats(&self) -> &Arc<KnSockStats> {
        &self.stats
    }

    /// The output and the stop handle apart (the receiver can then live on
    /// a fan-out thread while the handle lives with the viewers).
    pub fn into_parts(self) -> (Receiver<KnSockOutput>, StopOnDrop) {
        (self.rx, self.stop)
    }
}

/// Sets a producer's stop flag when dropped.
pub struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct ThreadCtx {
    tx: Sender<KnSockOutput>,
    stop: Arc<AtomicBool>,
    stats: Arc<KnSockStats>,
    clock: Instant,
}

impl ThreadCtx {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleep until `t_s` on the producer clock; `false` when stopped.
    fn wait_until(&self, t_s: f64) -> bool {
        let due = self.clock + Duration::from_secs_f64(t_s.clamp(0.0, 1e9));
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= due {
                return true;
            }
            std::thread::sleep((due - now).min(PACE_SLICE));
        }
    }

    /// Seconds `t_s` is late against the clock (negative: early).
    fn lateness_s(&self, t_s: f64) -> f64 {
        self.clock.elapsed().as_secs_f64() - t_s
    }

    /// Send; `false` when the consumer is gone (stop).
    fn send(&self, out: KnSockOutput) -> bool {
        !self.stopped() && self.tx.send(out).is_ok()
    }

    fn fail(&self, e: MediaError) {
        if !self.stopped() {
            tracing::warn!(error = %e, "kn-sock producer failed");
            let _ = self.tx.send(KnSockOutput::Failed(e));
        }
    }
}

/// The output size for a `w`×`h` source: fits [`MAX_WIDTH`]×[`MAX_HEIGHT`],
/// aspect kept, even dimensions, at least 2×2, never upscaled.
pub fn output_size(w: u32, h: u32) -> (u32, u32) {
    let (w, h) = (w.max(2), h.max(2));
    let scale = (f64::from(MAX_WIDTH) / f64::from(w))
        .min(f64::from(MAX_HEIGHT) / f64::from(h))
        .min(1.0);
    let even = |x: f64| ((x / 2.0).round() as u32 * 2).max(2);
    (even(f64::from(w) * scale), even(f64::from(h) * scale))
}

/// Open a mjpeg encoder at a fixed quantiser (`qscale`, 1–31).
fn open_mjpeg(
    w: u32,
    h: u32,
    time_base: ff::Rational,
    qscale: i32,
) -> Result<ff::encoder::video::Encoder, MediaError> {
    let codec = ff::encoder::find(ff::codec::Id::MJPEG)
        .ok_or_else(|| MediaError::Pipeline("the mjpeg encoder is not available".into()))?;
    let mut enc = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .stage("mjpeg encoder")?;
    enc.set_width(w);
    enc.set_height(h);
    enc.set_format(ff::format::Pixel::YUVJ420P);
    enc.set_time_base(time_base);
    enc.set_flags(ff::codec::Flags::QSCALE);
    enc.set_global_quality(qscale * QP2LAMBDA);
    enc.set_qmin(qscale.min(2));
    enc.set_qmax(qscale.max(2));
    // SAFETY: plain field write on an allocated, not yet opened context.
    unsafe {
        (*enc.as_mut_ptr()).color_range = ff::ffi::AVColorRange::AVCOL_RANGE_JPEG;
    }
    enc.open_as(codec).stage("mjpeg encoder open")
}

struct Tiers {
    size: (u32, u32),
    time_base: ff::Rational,
    encoders: [Option<ff::encoder::video::Encoder>; TIER_COUNT],
}

impl Tiers {
    /// Encode `frame` for every wanted tier.
    fn encode(
        &mut self,
        frame: &mut ff::frame::Video,
        wanted: [bool; TIER_COUNT],
    ) -> Result<[Option<Vec<u8>>; TIER_COUNT], MediaError> {
        let mut out: [Option<Vec<u8>>; TIER_COUNT] = Default::default();
        let mut packet = ff::Packet::empty();
        for tier in 0..TIER_COUNT {
            if !wanted[tier] {
                continue;
            }
            if self.encoders[tier].is_none() {
                self.encoders[tier] = Some(open_mjpeg(
                    self.size.0,
                    self.size.1,
                    self.time_base,
                    MJPEG_QSCALE[tier],
                )?);
            }
            let enc = self.encoders[tier].as_mut().expect("opened above");
            // SAFETY: plain field write on an owned, allocated frame; with
            // AV_CODEC_FLAG_QSCALE the encoder takes its lambda from it.
            unsafe {
                (*frame.as_mut_ptr()).quality = MJPEG_QSCALE[tier] * QP2LAMBDA;
            }
            enc.send_frame(&*frame).stage("mjpeg encode")?;
            if enc.receive_packet(&mut packet).is_ok() {
                out[tier] = packet.data().map(<[u8]>::to_vec);
            }
        }
        Ok(out)
    }
}

fn open_decoder(
    input: &ff::format::context::Input,
    kind: ff::media::Type,
) -> Result<(usize, ff::Rational, ff::codec::context::Context), MediaError> {
    let stream = input
        .streams()
        .best(kind)
        .ok_or_else(|| MediaError::Invalid(format!("no {kind:?} stream")))?;
    let name = stream.parameters().id().name();
    let allowed = match kind {
        ff::media::Type::Video => ALLOWED_VIDEO_DECODERS,
        _ => ALLOWED_AUDIO_DECODERS,
    };
    if !allowed.contains(&name) {
        return Err(MediaError::Unsupported(format!(
            "codec {name:?} is not accepted"
        )));
    }
    let ctx = ff::codec::context::Context::from_parameters(stream.parameters())
        .stage("decoder parameters")?;
    Ok((stream.index(), stream.time_base(), ctx))
}

/// Frame duration (s) from the stream's average rate; 1/25 when unknown.
fn frame_duration_s(input: &ff::format::context::Input, index: usize) -> f64 {
    input
        .stream(index)
        .map(|s| s.avg_frame_rate())
        .filter(|r| r.numerator() > 0 && r.denominator() > 0)
        .map_or(1.0 / 25.0, |r| {
            f64::from(r.denominator()) / f64::from(r.numerator())
        })
        .clamp(1.0 / 240.0, 1.0)
}

fn video_thread(path: &Path, demand: &TierDemand, ctx: &ThreadCtx) -> Result<(), MediaError> {
    let limits = Limits::default();
    let mut offset_s = 0.0f64;
    let mut scaler: Option<(
        ff::software::scaling::Context,
        (u32, u32, ff::format::Pixel),
    )> = None;
    let mut tiers: Option<Tiers> = None;
    let mut last_out: Option<f64> = None;
    loop {
        let mut input = open_untrusted(path)?;
        let (index, tb, dctx) = open_decoder(&input, ff::media::Type::Video)?;
        let frame_s = frame_duration_s(&input, index);
        let mut dctx = dctx;
        dctx.set_threading(ff::threading::Config {
            kind: ff::threading::Type::Frame,
            count: 0,
            ..Default::default()
        });
        let mut decoder = dctx
            .decoder()
            .video()
            .map_err(|e| MediaError::Unsupported(format!("video cannot be decoded: {e}")))?;
        let mut first: Option<i64> = None;
        let mut pass_end = 0.0f64;
        let mut decoded = ff::frame::Video::empty();
        let mut packet = ff::Packet::empty();
        let mut eof = false;
        let mut frames_in_pass = 0u64;
        while !eof {
            match packet.read(&mut input) {
                Ok(()) if packet.stream() == index => {
                    // A corrupt packet is skipped, not fatal.
                    let _ = decoder.send_packet(&packet);
                }
                Ok(()) => continue,
                Err(ff::Error::Eof) => {
                    eof = true;
                    let _ = decoder.send_eof();
                }
                Err(e) => return Err(MediaError::Truncated(format!("video read failed: {e}"))),
            }
            while decoder.receive_frame(&mut decoded).is_ok() {
                let Some(ts) = decoded.timestamp().or(decoded.pts()) else {
                    continue;
                };
                let origin = *first.get_or_insert(ts);
                let rel_s = ts.saturating_sub(origin) as f64 * f64::from(tb);
                let pts_s = offset_s + rel_s;
                if let Some(last) = last_out {
                    if pts_s <= last {
                        continue;
                    }
                    if pts_s - last > limits.max_timestamp_gap_s {
                        return Err(MediaError::Invalid(format!(
                            "video timestamps jump {:.1} s",
                            pts_s - last
                        )));
                    }
                }
                let (w, h) = (decoded.width(), decoded.height());
                if w == 0 || h == 0 || u64::from(w) * u64::from(h) > limits.max_pixels {
                    return Err(MediaError::LimitExceeded(format!("frame size {w}x{h}")));
                }
                frames_in_pass += 1;
                pass_end = pass_end.max(rel_s + frame_s);
                last_out = Some(pts_s);
                if !ctx.wait_until(pts_s) {
                    return Ok(());
                }
                if ctx.lateness_s(pts_s) > LATE_DROP_S {
                    ctx.stats.late_drops.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let shape = (w, h, decoded.format());
                if scaler.as_ref().map(|s| s.1) != Some(shape) {
                    let (ow, oh) = output_size(w, h);
                    if tiers.as_ref().is_some_and(|t| t.size != (ow, oh)) {
                        return Err(MediaError::Invalid(format!(
                            "frame size changes mid-stream (to {w}x{h})"
                        )));
                    }
                    let s = ff::software::scaling::Context::get(
                        decoded.format(),
                        w,
                        h,
                        ff::format::Pixel::YUVJ420P,
                        ow,
                        oh,
                        ff::software::scaling::Flags::BILINEAR,
                    )
                    .stage("scaler")?;
                    scaler = Some((s, shape));
                    if tiers.is_none() {
                        tiers = Some(Tiers {
                            size: (ow, oh),
                            time_base: ff::Rational::new(1, 1000),
                            encoders: Default::default(),
                        });
                    }
                }
                let (s, _) = scaler.as_mut().expect("set above");
                let mut scaled = ff::frame::Video::empty();
                s.run(&decoded, &mut scaled).stage("scale")?;
                scaled.set_pts(Some((pts_s * 1000.0).round() as i64));
                let t = tiers.as_mut().expect("set with the scaler");
                let wanted = demand.wanted();
                let jpegs = t.encode(&mut scaled, wanted)?;
                ctx.stats
                    .encodes
                    .fetch_add(jpegs.iter().flatten().count() as u64, Ordering::Relaxed);
                ctx.stats.frames.fetch_add(1, Ordering::Relaxed);
                if !ctx.send(KnSockOutput::Frame(JpegFrame {
                    pts_s,
                    tiers: jpegs,
                })) {
                    return Ok(());
                }
            }
        }
        if frames_in_pass == 0 {
            return Err(MediaError::Invalid("no decodable video frames".into()));
        }
        offset_s += pass_end;
    }
}

/// Push a frame's samples through `fifo`, releasing full chunks.
struct PcmFifo {
    bytes: Vec<u8>,
    chunks: u64,
}

impl PcmFifo {
    /// Release every full chunk; `false` when stopped.
    fn drain(&mut self, ctx: &ThreadCtx) -> bool {
        while self.bytes.len() >= PCM_CHUNK_BYTES {
            let data: Vec<u8> = self.bytes.drain(..PCM_CHUNK_BYTES).collect();
            let pts_s = (self.chunks * PCM_CHUNK_FRAMES as u64) as f64 / f64::from(PCM_RATE);
            self.chunks += 1;
            if !ctx.wait_until(pts_s) {
                return false;
            }
            ctx.stats.chunks.fetch_add(1, Ordering::Relaxed);
            if !ctx.send(KnSockOutput::Audio(PcmChunk { pts_s, data })) {
                return false;
            }
        }
        true
    }
}

fn audio_thread(path: &Path, ctx: &ThreadCtx) -> Result<(), MediaError> {
    let mut fifo = PcmFifo {
        bytes: Vec::with_capacity(PCM_CHUNK_BYTES * 4),
        chunks: 0,
    };
    let out_format = ff::format::Sample::I16(ff::format::sample::Type::Packed);
    let mut resampler: Option<(
        ff::software::resampling::Context,
        (u32, ff::format::Sample, u64),
    )> = None;
    loop {
        let mut input = open_untrusted(path)?;
        let (index, _tb, dctx) = open_decoder(&input, ff::media::Type::Audio)?;
        let mut decoder = dctx
            .decoder()
            .audio()
            .map_err(|e| MediaError::Unsupported(format!("audio cannot be decoded: {e}")))?;
        let mut decoded = ff::frame::Audio::empty();
        let mut packet = ff::Packet::empty();
        let mut eof = false;
        let mut samples_in_pass = 0u64;
        while !eof {
            match packet.read(&mut input) {
                Ok(()) if packet.stream() == index => {
                    let _ = decoder.send_packet(&packet);
                }
                Ok(()) => continue,
                Err(ff::Error::Eof) => {
                    eof = true;
                    let _ = decoder.send_eof();
                }
                Err(e) => return Err(MediaError::Truncated(format!("audio read failed: {e}"))),
            }
            while decoder.receive_frame(&mut decoded).is_ok() {
                if decoded.samples() == 0 || decoded.rate() == 0 {
                    continue;
                }
                let shape = crate::pipeline::audio::frame_shape(&mut decoded);
                if resampler.as_ref().map(|r| r.1) != Some(shape) {
                    if resampler.is_some() {
                        return Err(MediaError::Invalid(
                            "audio format changes mid-stream".into(),
                        ));
                    }
                    let r = ff::software::resampling::Context::get(
                        decoded.format(),
                        decoded.channel_layout(),
                        decoded.rate(),
                        out_format,
                        ff::ChannelLayout::STEREO,
                        PCM_RATE,
                    )
                    .stage("resampler")?;
                    resampler = Some((r, shape));
                }
                let (r, _) = resampler.as_mut().expect("set above");
                let capacity = (decoded.samples() as u64 * u64::from(PCM_RATE)
                    / u64::from(decoded.rate())) as usize
                    + 256;
                let mut out =
                    ff::frame::Audio::new(out_format, capacity, ff::ChannelLayout::STEREO);
                r.run(&decoded, &mut out).stage("resample")?;
                let n = out.samples() * PCM_CHANNELS * 2;
                fifo.bytes.extend_from_slice(&out.data(0)[..n]);
                samples_in_pass += decoded.samples() as u64;
                if !fifo.drain(ctx) {
                    return Ok(());
                }
            }
        }
        if samples_in_pass == 0 {
            return Err(MediaError::Invalid("no decodable audio".into()));
        }
    }
}

fn silence_thread(ctx: &ThreadCtx) -> Result<(), MediaError> {
    let mut fifo = PcmFifo {
        bytes: Vec::new(),
        chunks: 0,
    };
    loop {
        fifo.bytes.resize(PCM_CHUNK_BYTES, 0);
        if !fifo.drain(ctx) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_maps_to_tiers() {
        assert_eq!(tier_of_quality(40), 0);
        assert_eq!(tier_of_quality(80), 4);
        assert_eq!(tier_of_quality(90), 5);
        assert_eq!(tier_of_quality(0), 0);
        assert_eq!(tier_of_quality(255), 5);
        assert_eq!(tier_of_quality(64), 2);
        assert_eq!(tier_of_quality(66), 3);
    }

    #[test]
    fn demand_defaults_to_quality_80() {
        let d = TierDemand::default();
        assert_eq!(d.wanted(), [false, false, false, false, true, false]);
        d.add(1);
        d.add(1);
        d.remove(1);
        assert_eq!(d.wanted(), [false, true, false, false, false, false]);
        d.remove(1);
        d.remove(1);
        assert_eq!(d.wanted(), [false, false, false, false, true, false]);
    }

    #[test]
    fn output_fits_720p_even() {
        assert_eq!(output_size(1920, 1080), (1280, 720));
        assert_eq!(output_size(640, 272), (640, 272));
        assert_eq!(output_size(175, 143), (176, 144));
        assert_eq!(output_size(720, 1280), (406, 720));
    }
}
