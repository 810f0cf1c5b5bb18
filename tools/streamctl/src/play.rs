//! `streamctl play tcp://HOST:9000/<video-or-channel-id>`: a native-stream
//! client. Opens a session on the control plane (`OpenSession`, TCP kind)
//! unless `--token` is given, says hello to the edge, plays what arrives
//! through a jitter buffer (`--jitter-ms`), decodes it with libav (unless
//! `--no-decode`), reports its buffer level and throughput on the control
//! plane's Feedback stream (whose decisions the edge applies), prints live
//! stats and ends with one JSON line: `frames`, `fps`, `stalls`,
//! `stall_ms`, `rendition_switches`, `av_sync_ms_max`, `resyncs`, and more.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::Args as ClapArgs;
use futures::StreamExt;
use stream_media::elementary::{Elementary, StreamDecoder};
use stream_native::frame::{Flags, FrameDecoder, FrameKind, VERSION};
use stream_native::Control;
use stream_proto::control::v1 as pb;
use stream_proto::control::v1::control_plane_client::ControlPlaneClient;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use crate::jitter::JitterBuffer;

#[derive(Debug, Clone, ClapArgs)]
pub struct Args {
    /// `tcp://HOST:PORT/<video or channel id>` (not with `--knsock`).
    #[arg(required_unless_present = "knsock", default_value = "")]
    pub url: String,
    /// Play kn-sock 0.3.0's protocol from this video port (audio on +1,
    /// control on +10): the edge's compatible mode or kn-sock's own server.
    #[arg(long, value_name = "HOST:PORT")]
    pub knsock: Option<String>,
    /// With `--knsock`: the index to select from the offered videos.
    #[arg(long, default_value_t = 0)]
    pub knsock_index: usize,
    /// With `--knsock`: the audio port's address (default: video port + 1).
    #[arg(long, value_name = "HOST:PORT")]
    pub knsock_audio: Option<String>,
    /// With `--knsock`: the control port's address (default: video port + 10).
    #[arg(long, value_name = "HOST:PORT")]
    pub knsock_control: Option<String>,
    /// Control plane gRPC URL (sessions, feedback).
    #[arg(
        long,
        env = "STREAMCTL_CONTROL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub control: String,
    /// Playback token (skips OpenSession; no feedback is sent).
    #[arg(long)]
    pub token: Option<String>,
    /// Rendition to start with (default: the session's initial rendition).
    #[arg(long)]
    pub rendition: Option<String>,
    /// Jitter buffer depth, ms.
    #[arg(long, default_value_t = 500)]
    pub jitter_ms: u32,
    /// Stop after this many seconds (default: until the stream ends).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Count frames without decoding them (load tests).
    #[arg(long)]
    pub no_decode: bool,
    /// Write the received video (H.264 Annex B) here; the audio (ADTS)
    /// goes to the same path with `.aac` appended.
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
    /// Print a stats line to stderr this often, ms (0 = never).
    #[arg(long, default_value_t = 1000)]
    pub stats_ms: u64,
    /// Send a buffer report this often, ms.
    #[arg(long, default_value_t = 500)]
    pub report_ms: u64,
}

/// Time after the welcome before A/V sync is measured.
pub const AV_WARMUP: Duration = Duration::from_secs(2);

/// The final figures (one JSON line on stdout).
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Video frames played out.
    pub frames: u64,
    /// Played video frames per second of playback.
    pub fps: f64,
    pub stalls: u64,
    pub stall_ms: f64,
    pub rendition_switches: u64,
    /// Largest |audio PTS − video PTS| of frames arriving together, ms,
    /// after the first [`AV_WARMUP`] (joining sends a burst from the last
    /// keyframe).
    pub av_sync_ms_max: f64,
    /// Times the frame reader lost sync and scanned for the magic.
    pub resyncs: u64,
    pub audio_frames: u64,
    pub bytes: u64,
    pub keyframes: u64,
    pub discontinuities: u64,
    pub markers: u64,
    /// Renditions by name, as switched to, starting with the first.
    pub renditions: Vec<String>,
    /// PTS of each keyframe that carried the switch flag, 90 kHz ticks.
    pub switch_pts: Vec<i64>,
    pub decoded_frames: u64,
    pub decode_errors: u64,
    pub width: u32,
    pub height: u32,
    pub session_id: String,
    /// Why the stream ended (the server's reason, or the client's).
    pub end: String,
}

pub fn run(args: &Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let summary = match &args.knsock {
        Some(addr) => rt.block_on(crate::knsock::play(args, addr))?,
        None => rt.block_on(play(args))?,
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

fn parse_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("tcp://")
        .ok_or_else(|| anyhow!("{url:?}: expected tcp://HOST:PORT/<id>"))?;
    let (addr, id) = rest
        .split_once('/')
        .ok_or_else(|| anyhow!("{url:?}: no video or channel id after the address"))?;
    if addr.is_empty() || id.is_empty() || id.contains('/') {
        bail!("{url:?}: expected tcp://HOST:PORT/<id>");
    }
    Ok((addr.to_string(), id.to_string()))
}

/// Bytes-per-second estimate from back-to-back arrivals (packet-train
/// dispersion): reads less than 2 ms apart form a train; a train of at
/// least 64 KiB measures what the path can carry, which the paced average
/// (the rendition's own bitrate) cannot.
#[derive(Debug, Default)]
struct Throughput {
    train_start: Option<Instant>,
    last: Option<Instant>,
    train_bytes: u64,
    /// bit/s, smoothed.
    estimate: Option<f64>,
    interval_bytes: u64,
}

impl Throughput {
    fn on_read(&mut self, n: usize, now: Instant) {
        self.interval_bytes += n as u64;
        let close = self
            .last
            .is_some_and(|l| now.duration_since(l) < Duration::from_millis(2));
        if !close {
            self.close_train();
            self.train_start = Some(now);
            self.train_bytes = 0;
        }
        self.train_bytes += n as u64;
        self.last = Some(now);
    }

    fn close_train(&mut self) {
        if let (Some(s), Some(l)) = (self.train_start, self.last) {
            let secs = l.duration_since(s).as_secs_f64();
            if self.train_bytes >= 64 * 1024 && secs > 0.0 {
                let bps = self.train_bytes as f64 * 8.0 / secs;
                self.estimate = Some(self.estimate.map_or(bps, |e| 0.7 * e + 0.3 * bps));
            }
        }
        self.train_start = None;
    }

    /// bit/s to report: the train estimate, else the interval's average.
    fn report(&mut self, interval_s: f64) -> f64 {
        let avg = self.interval_bytes as f64 * 8.0 / interval_s.max(0.001);
        self.interval_bytes = 0;
        self.estimate.unwrap_or(avg).max(avg).clamp(1.0, 10e9)
    }
}

async fn open_session(
    args: &Args,
    id: &str,
) -> Result<(
    Option<ControlPlaneClient<tonic::transport::Channel>>,
    String,
    Option<String>,
)> {
    if let Some(t) = &args.token {
        return Ok((None, t.clone(), args.rendition.clone()));
    }
    let channel = tonic::transport::Endpoint::from_shared(args.control.clone())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("connect to the control plane at {}", args.control))?;
    let mut client = ControlPlaneClient::new(channel);
    let resp = client
        .open_session(pb::OpenSessionRequest {
            video_id: id.to_string(),
            client_kind: pb::ClientKind::Tcp as i32,
            capabilities: None,
        })
        .await
        .map_err(|s| anyhow!("OpenSession: {}: {}", s.code(), s.message()))?
        .into_inner();
    let rendition = args.rendition.clone().or_else(|| {
        resp.initial_rendition
            .map(|r| r.name)
            .filter(|n| !n.is_empty())
    });
    Ok((Some(client), resp.playback_token, rendition))
}

/// Play until the stream ends, `args.seconds` pass or an error; the
/// summary.
///
/// Errors: no session (control plane), no connection, a refused hello
/// (the edge's typed error and reason).
pub async fn play(args: &Args) -> Result<Summary> {
    let (addr, id) = parse_url(&args.url)?;
    let (control, token, rendition) = open_session(args, &id).await?;
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&addr))
        .await
        .map_err(|_| anyhow!("connect to {addr}: timed out"))?
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (rd, mut wr) = stream.into_split();
    let hello = Control::Hello {
        version: VERSION,
        token,
        id: id.clone(),
        rendition,
    };
    wr.write_all(&hello.to_frame().encode()).await?;
    let mut reader = FramedRead::with_capacity(
        CountingRead::new(rd),
        FrameDecoder::new(16 << 20),
        256 * 1024,
    );
    let first = tokio::time::timeout(Duration::from_secs(10), reader.next())
        .await
        .map_err(|_| anyhow!("no answer to the hello within 10 s"))?
        .ok_or_else(|| anyhow!("the edge closed the connection"))??;
    let (session_id, renditions) = match Control::from_frame(&first).map_err(|e| anyhow!(e))? {
        Control::Welcome {
            session_id,
            renditions,
            rendition,
            ..
        } => {
            let names: Vec<String> = renditions.iter().map(|r| r.name.clone()).collect();
            eprintln!(
                "play: session {session_id}, ladder {}, starting at {}",
                names.join(","),
                names
                    .get(usize::from(rendition))
                    .cloned()
                    .unwrap_or_default()
            );
            (session_id, names)
        }
        Control::Error { code, reason } => bail!("the edge refused: {code:?}: {reason}"),
        other => bail!("unexpected first frame {other:?}"),
    };

    // Feedback: reports out, decisions (applied by the edge) drained.
    let (report_tx, report_rx) = tokio::sync::mpsc::channel::<pb::BufferReport>(8);
    if let Some(mut client) = control {
        let stream = tokio_stream::wrappers::ReceiverStream::new(report_rx);
        tokio::spawn(async move {
            if let Ok(resp) = client.feedback(stream).await {
                let mut decisions = resp.into_inner();
                while let Some(Ok(d)) = decisions.next().await {
                    if let Some(r) = d.rendition {
                        eprintln!("play: decision {} ({})", r.name, d.detail);
                    }
                }
            }
        });
    }

    let mut out_video = match &args.output {
        Some(p) => {
            Some(std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?)
        }
        None => None,
    };
    let mut out_audio = match &args.output {
        Some(p) => {
            let mut a = p.as_os_str().to_owned();
            a.push(".aac");
            Some(std::fs::File::create(&a)?)
        }
        None => None,
    };
    let mut video_decoder = if args.no_decode {
        None
    } else {
        Some(StreamDecoder::start(Elementary::H264)?)
    };
    let mut audio_decoder = if args.no_decode {
        None
    } else {
        Some(StreamDecoder::start(Elementary::AacAdts)?)
    };

    let started = Instant::now();
    let ms = |t: Instant| t.duration_since(started).as_secs_f64() * 1000.0;
    let deadline = args.seconds.map(|s| started + Duration::from_secs_f64(s));
    let mut jitter: JitterBuffer<Bytes> = JitterBuffer::new(args.jitter_ms);
    let mut s = Summary {
        session_id: session_id.clone(),
        ..Default::default()
    };
    let mut current: Option<u8> = None;
    let mut last_video_pts: Option<i64> = None;
    let mut last_audio_pts: Option<i64> = None;
    let mut first_play: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut stats_at = Instant::now();
    let mut report_at = Instant::now();
    let mut sequence = 0u64;
    let mut reported_stalls = (0u64, 0.0f64);
    let mut frames_at_stats = 0u64;
    let mut throughput = Throughput::default();
    // Bounded by the stream's end, the deadline or an error.
    s.end = loop {
        let frame = tokio::select! {
            _ = tick.tick() => None,
            f = reader.next() => match f {
                None => break "the edge closed the connection".into(),
                Some(Err(e)) => break format!("stream error: {e}"),
                Some(Ok(f)) => Some(f),
            },
        };
        let now = Instant::now();
        for (n, at) in reader.get_mut().take_reads() {
            s.bytes += n as u64;
            throughput.on_read(n, at);
        }
        if let Some(f) = frame {
            match f.kind {
                FrameKind::Video => {
                    if f.flags.contains(Flags::DISCONTINUITY) {
                        s.discontinuities += 1;
                    }
                    if f.flags.contains(Flags::KEYFRAME) {
                        s.keyframes += 1;
                    }
                    if current != Some(f.rendition) {
                        if current.is_some() {
                            if !f.flags.contains(Flags::RENDITION_SWITCH) {
                                break format!(
                                    "rendition changed to {} without the switch flag",
                                    f.rendition
                                );
                            }
                            s.rendition_switches += 1;
                            s.switch_pts.push(f.pts);
                        }
                        current = Some(f.rendition);
                        s.renditions.push(
                            renditions
                                .get(usize::from(f.rendition))
                                .cloned()
                                .unwrap_or_else(|| f.rendition.to_string()),
                        );
                    }
                    if let Some(o) = out_video.as_mut() {
                        o.write_all(&f.payload)?;
                    }
                    last_video_pts = Some(f.pts);
                    if let (Some(a), true) = (last_audio_pts, started.elapsed() >= AV_WARMUP) {
                        s.av_sync_ms_max = s.av_sync_ms_max.max((a - f.pts).abs() as f64 / 90.0);
                    }
                    jitter.push(f.pts, f.duration, f.payload, ms(now));
                }
                FrameKind::Audio => {
                    s.audio_frames += 1;
                    if let Some(o) = out_audio.as_mut() {
                        o.write_all(&f.payload)?;
                    }
                    if let Some(d) = audio_decoder.as_mut() {
                        d.submit(&f.payload);
                    }
                    last_audio_pts = Some(f.pts);
                    if let (Some(v), true) = (last_video_pts, started.elapsed() >= AV_WARMUP) {
                        s.av_sync_ms_max = s.av_sync_ms_max.max((f.pts - v).abs() as f64 / 90.0);
                    }
                }
                FrameKind::Metadata => s.markers += 1,
                FrameKind::Control => match Control::from_frame(&f) {
                    Ok(Control::End { reason }) => break format!("end: {reason}"),
                    Ok(Control::Error { code, reason }) => {
                        break format!("error: {code:?}: {reason}")
                    }
                    _ => {}
                },
            }
        }
        for e in jitter.poll(ms(now)) {
            s.frames += 1;
            first_play.get_or_insert(now);
            if let Some(d) = video_decoder.as_mut() {
                d.submit(&e.item);
            }
        }
        if report_at.elapsed() >= Duration::from_millis(args.report_ms) {
            let interval = report_at.elapsed().as_secs_f64();
            report_at = now;
            sequence += 1;
            let report = pb::BufferReport {
                session_id: session_id.clone(),
                sequence,
                buffer_level_ms: jitter.level_ms(ms(now)).min(600_000.0),
                throughput_bps: throughput.report(interval),
                rebuffer_events: (jitter.stalls - reported_stalls.0) as u32,
                rebuffer_ms: jitter.stall_ms - reported_stalls.1,
                dropped_frames: 0,
                current_rendition: current
                    .and_then(|c| renditions.get(usize::from(c)).cloned())
                    .unwrap_or_default(),
                last_segment_bytes: 0,
                last_download_ms: 0.0,
            };
            reported_stalls = (jitter.stalls, jitter.stall_ms);
            let _ = report_tx.try_send(report);
        }
        if args.stats_ms > 0 && stats_at.elapsed() >= Duration::from_millis(args.stats_ms) {
            let secs = stats_at.elapsed().as_secs_f64();
            stats_at = now;
            eprintln!(
                "play: {} {:5.1} fps  buffer {:6.0} ms  stalls {} ({:.0} ms)  switches {}  rendition {}  resyncs {}",
                if jitter.playing() { "playing  " } else { "buffering" },
                (s.frames - frames_at_stats) as f64 / secs,
                jitter.level_ms(ms(now)),
                jitter.stalls,
                jitter.stall_ms,
                s.rendition_switches,
                current.and_then(|c| renditions.get(usize::from(c)).cloned()).unwrap_or_default(),
                reader.decoder().stats.resyncs,
            );
            frames_at_stats = s.frames;
        }
        if deadline.is_some_and(|d| now >= d) {
            break "the requested time is over".into();
        }
    };
    s.stalls = jitter.stalls;
    s.stall_ms = jitter.stall_ms;
    s.resyncs = reader.decoder().stats.resyncs;
    if let Some(t) = first_play {
        let secs = t.elapsed().as_secs_f64();
        if secs > 0.0 {
            s.fps = s.frames as f64 / secs;
        }
    }
    drop(report_tx);
    if let Some(d) = video_decoder.take() {
        let r = tokio::task::spawn_blocking(move || d.finish()).await?;
        s.decoded_frames = r.frames;
        s.decode_errors = r.errors;
        s.width = r.width;
        s.height = r.height;
    }
    if let Some(d) = audio_decoder.take() {
        let r = tokio::task::spawn_blocking(move || d.finish()).await?;
        s.decode_errors += r.errors;
    }
    let _ = wr.shutdown().await;
    Ok(s)
}

/// A reader that notes the size and time of each read (for the
/// throughput estimate).
struct CountingRead<R> {
    inner: R,
    reads: Vec<(usize, Instant)>,
}

impl<R> CountingRead<R> {
    fn new(inner: R) -> Self {
        CountingRead {
            inner,
            reads: Vec::new(),
        }
    }

    fn take_reads(&mut self) -> Vec<(usize, Instant)> {
        std::mem::take(&mut self.reads)
    }
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for CountingRead<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 && self.reads.len() < 4096 {
            self.reads.push((n, Instant::now()));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("tcp://127.0.0.1:9000/01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap(),
            ("127.0.0.1:9000".into(), "01ARZ3NDEKTSV4RRFFQ69G5FAV".into())
        );
        assert!(parse_url("http://x/1").is_err());
        assert!(parse_url("tcp://x:1").is_err());
        assert!(parse_url("tcp://x:1/a/b").is_err());
    }

    #[test]
    fn throughput_from_trains() {
        let mut t = Throughput::default();
        let t0 = Instant::now();
        // 1 MiB in 1 ms reads of 64 KiB: ~8 Gbit/s of train.
        for i in 0..16 {
            t.on_read(64 * 1024, t0 + Duration::from_micros(62 * i));
        }
        t.on_read(10, t0 + Duration::from_millis(500));
        let bps = t.report(1.0);
        assert!(bps > 1e9, "{bps}");
    }
}
