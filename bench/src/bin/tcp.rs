//! `make bench BENCH=tcp`: the native TCP stream under load, on loopback.
//!
//! * **Native clients**: a stack runs in this process (ingest, control,
//!   marker), the edge under test as its own process
//!   (`target/release/edge`, so its CPU and memory are its own). N clients
//!   (`TCP_STEPS`, default 250,500,1000,1500,2000,3000), each with its own
//!   `OpenSession` token, receive the 720p rendition (3 Mbit/s) of the
//!   720p25 bigbuckbunny sample played live, for `BENCH_SECONDS` (15) after
//!   a 3 s warm-up. A step passes when every client receives ≥ 95 % of 25
//!   fps and no gap between two video frames exceeds 200 ms. Figures: the
//!   largest passing N, edge CPU per client (ms of CPU per second) and per
//!   delivered frame, edge memory per client.
//! * **kn-sock compatible mode and kn-sock's own server**: the `knsock`
//!   bench runs first in `make bench BENCH=tcp` (same machine, same run);
//!   its JSON line comes in `KNSOCK_RESULT` and its figures join this
//!   line (`compat_*`, `knsock_*`).
//! * **Live latency over the native stream**: a low-latency generator
//!   channel; for each video frame a client receives, its arrival time −
//!   the wall-clock time of its source frame (the channel's
//!   EXT-X-PROGRAM-DATE-TIME mapping), p50/p99.
//!
//! Ends with one JSON line.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use stream_native::cmaf::Track;
use stream_native::frame::{FrameKind, VERSION};
use stream_native::Control;
use stream_proto::control::v1 as pb;
use stream_proto::control::v1::control_plane_client::ControlPlaneClient;
use stream_tests::{Stack, StackOptions, TOKEN_SECRET};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FPS: f64 = 25.0;
const WARMUP: Duration = Duration::from_secs(3);
const STALL_MS: f64 = 200.0;

fn main() -> Result<()> {
    raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

fn raise_nofile() {
    // SAFETY: plain getrlimit/setrlimit on this process's own limits.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of `pid`, seconds.
fn cpu_s(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').map(|r| r.1).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    Ok((ut + st) / ticks)
}

/// Resident memory of `pid`, bytes.
fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| anyhow!("no VmRSS"))?;
    Ok(kb * 1024)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Edge {
    child: std::process::Child,
    native: String,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_edge(stack: &Stack) -> Result<Edge> {
    let root = stream_testkit::workspace_root();
    let bin = root.join("target/release/edge");
    let native = format!("127.0.0.1:{}", free_port()?);
    let child = std::process::Command::new(&bin)
        .env("NATS_URL", stream_testkit::env::nats_url())
        .env("REDIS_URL", stream_testkit::env::redis_url())
        .env("BUS_PREFIX", &stack.prefix)
        .env("REDIS_PREFIX", &stack.prefix)
        .env("MEDIA_STORE", stack.media_store())
        .env("EDGE_HTTP_ADDR", format!("127.0.0.1:{}", free_port()?))
        .env("EDGE_NATIVE_ADDR", &native)
        .env("EDGE_NATIVE_MAX_CONNECTIONS", "20000")
        .env("EDGE_STATIC_DIR", root.join("frontend/dist"))
        .env("CONTROL_URL", &stack.control)
        .env("CONTROL_TOKEN_SECRET", TOKEN_SECRET)
        .env("RUST_LOG", "warn")
        .spawn()
        .with_context(|| format!("start {} (make build)", bin.display()))?;
    Ok(Edge { child, native })
}

async fn wait_port(addr: &str) -> Result<()> {
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{addr} never accepted")
}

async fn tokens(stack: &Stack, video: &str, n: usize) -> Result<Vec<String>> {
    let mut client = ControlPlaneClient::connect(stack.control.clone()).await?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let r = client
            .open_session(pb::OpenSessionRequest {
                video_id: video.into(),
                client_kind: pb::ClientKind::Tcp as i32,
                capabilities: None,
            })
            .await?
            .into_inner();
        out.push(r.playback_token);
    }
    Ok(out)
}

/// What one load client saw after the warm-up.
#[derive(Debug, Default, Clone)]
struct ClientStats {
    video_frames: u64,
    max_gap_ms: f64,
    bytes: u64,
    /// Per video frame: arrival (Unix ms) and PTS (ticks), when asked for.
    arrivals: Vec<(f64, i64)>,
    error: Option<String>,
}

fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// A load client: hello, then walk the frame headers (no copy, no CRC:
/// the edge is measured, not the client) until `until`.
async fn client(
    addr: String,
    token: String,
    id: String,
    rendition: Option<String>,
    measure_from: Instant,
    until: Instant,
    keep_arrivals: bool,
) -> ClientStats {
    let mut st = ClientStats::default();
    let run = async {
        let mut s = TcpStream::connect(&addr).await?;
        s.set_nodelay(true)?;
        let hello = Control::Hello {
            version: VERSION,
            token,
            id,
            rendition,
        };
        s.write_all(&hello.to_frame().encode()).await?;
        let mut buf = vec![0u8; 256 * 1024];
        let (mut have, mut pos) = (0usize, 0usize);
        let mut last_video: Option<Instant> = None;
        let mut first = true;
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok::<_, anyhow::Error>(());
            }
            if pos > 0 && (have - pos) < 64 * 1024 {
                buf.copy_within(pos..have, 0);
                have -= pos;
                pos = 0;
            }
            if have == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            let n = match tokio::time::timeout(until - now, s.read(&mut buf[have..])).await {
                Err(_) => return Ok(()),
                Ok(r) => r?,
            };
            if n == 0 {
                bail!("the edge closed the connection");
            }
            have += n;
            let now = Instant::now();
            if now >= measure_from {
                st.bytes += n as u64;
            }
            // Bounded: each turn consumes one whole frame or stops.
            while have - pos >= 28 {
                let h = &buf[pos..pos + 28];
                if &h[..4] != b"STMF" {
                    bail!("lost sync");
                }
                let len = u32::from_be_bytes([h[20], h[21], h[22], h[23]]) as usize;
                let total = 28 + len + 4;
                if have - pos < total {
                    break;
                }
                let kind = h[5];
                if first {
                    first = false;
                    let frame = stream_native::frame::FrameDecoder::default()
                        .decode_frame(&mut bytes::BytesMut::from(&buf[pos..pos + total]))?
                        .ok_or_else(|| anyhow!("bad first frame"))?;
                    if let Control::Error { code, reason } =
                        Control::from_frame(&frame).map_err(|e| anyhow!(e))?
                    {
                        bail!("refused: {code:?}: {reason}");
                    }
                } else if kind == FrameKind::Video as u8 {
                    if now >= measure_from {
                        st.video_frames += 1;
                        if let Some(l) = last_video.filter(|l| *l >= measure_from) {
                            st.max_gap_ms = st
                                .max_gap_ms
                                .max(now.duration_since(l).as_secs_f64() * 1000.0);
                        }
                        if keep_arrivals {
                            let pts = i64::from_be_bytes(h[8..16].try_into().unwrap_or([0; 8]));
                            st.arrivals.push((unix_ms(), pts));
                        }
                    }
                    last_video = Some(now);
                }
                pos += total;
            }
        }
    };
    if let Err(e) = run.await {
        st.error = Some(e.to_string());
    }
    st
}

struct Step {
    clients: usize,
    ok: bool,
    min_fps: f64,
    max_gap_ms: f64,
    errors: usize,
    edge_cpu_cores: f64,
    edge_cpu_ms_per_frame: f64,
    rss_per_client_kb: f64,
    frames: u64,
}

async fn step(edge: &Edge, video: &str, tokens: &[String], n: usize, secs: f64) -> Result<Step> {
    let pid = edge.child.id();
    let rss0 = rss(pid)?;
    let start = Instant::now();
    let measure_from = start + WARMUP + Duration::from_millis(n as u64); // connects spread ~1 ms apart
    let until = measure_from + Duration::from_secs_f64(secs);
    let mut set = tokio::task::JoinSet::new();
    for t in tokens.iter().take(n) {
        set.spawn(client(
            edge.native.clone(),
            t.clone(),
            video.to_string(),
            Some("720p".into()),
            measure_from,
            until,
            false,
        ));
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu0 = cpu_s(pid)?;
    tokio::time::sleep(Duration::from_secs_f64(secs * 0.5)).await;
    let rss1 = rss(pid)?;
    let mut stats = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        stats.push(r?);
    }
    let cpu = cpu_s(pid)? - cpu0;
    let frames: u64 = stats.iter().map(|s| s.video_frames).sum();
    let errors = stats.iter().filter(|s| s.error.is_some()).count();
    if let Some(e) = stats.iter().find_map(|s| s.error.clone()) {
        eprintln!("tcp: {n} clients: first error: {e}");
    }
    let min_fps = stats
        .iter()
        .map(|s| s.video_frames as f64 / secs)
        .fold(f64::INFINITY, f64::min);
    let max_gap_ms = stats.iter().map(|s| s.max_gap_ms).fold(0.0, f64::max);
    let ok = errors == 0 && min_fps >= 0.95 * FPS && max_gap_ms <= STALL_MS;
    let s = Step {
        clients: n,
        ok,
        min_fps,
        max_gap_ms,
        errors,
        edge_cpu_cores: cpu / secs,
        edge_cpu_ms_per_frame: if frames > 0 {
            cpu * 1000.0 / frames as f64
        } else {
            0.0
        },
        rss_per_client_kb: (rss1.saturating_sub(rss0)) as f64 / 1024.0 / n as f64,
        frames,
    };
    println!(
        "tcp: {n:5} clients: {}  min fps {:.1}  max gap {:.0} ms  errors {}  edge {:.2} cores, {:.3} ms CPU/frame, {:.1} KiB/client",
        if ok { "ok  " } else { "FAIL" },
        s.min_fps,
        s.max_gap_ms,
        s.errors,
        s.edge_cpu_cores,
        s.edge_cpu_ms_per_frame,
        s.rss_per_client_kb
    );
    // Let the edge drop the sessions before the next step.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(s)
}

/// Wall clock of PTS 0 of a live rendition, Unix ms: a segment's
/// EXT-X-PROGRAM-DATE-TIME minus the PTS of its first frame.
async fn live_anchor(stack: &Stack, id: &str, track: &str) -> Result<f64> {
    use stream_hls::live::{LiveConfig, LivePlaylist};
    let text = stack
        .edge_get(&format!("/hls/{id}/{track}/index.m3u8"))
        .await?
        .text()
        .await?;
    let pl = LivePlaylist::parse(&text, LiveConfig::for_reading()).map_err(|e| anyhow!("{e}"))?;
    let seg = pl
        .segments()
        .filter(|s| s.pdt_ms.is_some() && !s.parts.is_empty())
        .last()
        .ok_or_else(|| anyhow!("no segment with parts and PDT"))?;
    let init = stack
        .edge_get(&format!("/hls/{id}/{track}/init.mp4"))
        .await?
        .bytes()
        .await?;
    let part = stack
        .edge_get(&format!("/hls/{id}/{track}/{}", seg.parts[0].uri))
        .await?
        .bytes()
        .await?;
    let track = Track::parse_init(&init).map_err(|e| anyhow!("{e}"))?;
    let samples = track.samples(&part).map_err(|e| anyhow!("{e}"))?;
    let first = samples
        .iter()
        .map(|s| s.pts)
        .min()
        .ok_or_else(|| anyhow!("empty part"))?;
    let pts_ms = first as f64 * 1000.0 / f64::from(track.timescale);
    Ok(seg.pdt_ms.unwrap_or(0) as f64 - pts_ms)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn run() -> Result<()> {
    let steps: Vec<usize> = std::env::var("TCP_STEPS")
        .unwrap_or_else(|_| "250,500,1000,1500,2000,3000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let secs: f64 = env_or("BENCH_SECONDS", 15.0);
    let stack = Stack::start(StackOptions {
        ladder: Some("720:3000k,480:1400k,360:800k,240:400k".into()),
        ..Default::default()
    })
    .await?;
    let video = stack.ingest_ready("bigbuckbunny.mp4").await?;
    let edge = start_edge(&stack)?;
    wait_port(&edge.native).await?;
    let max = steps.iter().copied().max().unwrap_or(0);
    let all_tokens = tokens(&stack, &video, max).await?;
    println!("tcp: {max} sessions open; edge pid {}", edge.child.id());

    let mut results = Vec::new();
    for &n in &steps {
        let s = step(&edge, &video, &all_tokens, n, secs).await?;
        let ok = s.ok;
        results.push(s);
        if !ok {
            break;
        }
    }
    let best = results.iter().filter(|s| s.ok).max_by_key(|s| s.clients);

    // Live latency over the native stream: a low-latency generator channel.
    use stream_bus::media;
    let channel = stack
        .start_channel(
            "tcp bench",
            media::live_job::Source::Generator(media::LiveGenerator {
                event_interval_s: 3600.0,
                width: 1280,
                height: 720,
            }),
            media::LiveLatency::Low,
        )
        .await?;
    stack.wait_live(&channel, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let anchor = live_anchor(&stack, &channel, "720p").await?;
    let token = tokens(&stack, &channel, 1).await?.remove(0);
    let start = Instant::now();
    let st = client(
        edge.native.clone(),
        token,
        channel.clone(),
        Some("720p".into()),
        start + Duration::from_secs(2),
        start + Duration::from_secs(22),
        true,
    )
    .await;
    if let Some(e) = &st.error {
        bail!("live client: {e}");
    }
    let mut lat: Vec<f64> = st
        .arrivals
        .iter()
        .map(|(at, pts)| (at - (anchor + *pts as f64 / 90.0)) / 1000.0)
        .collect();
    let (p50, p99) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99));
    println!(
        "tcp: live latency over the native stream: p50 {p50:.3} s, p99 {p99:.3} s ({} frames)",
        lat.len()
    );

    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    let knsock: serde_json::Value = std::env::var("KNSOCK_RESULT")
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null);
    let line = serde_json::json!({
        "bench": "tcp",
        "native_max_clients": best.map(|s| s.clients),
        "native_clients_tried": results.iter().map(|s| s.clients).collect::<Vec<_>>(),
        "native_edge_cpu_ms_per_client_s": best.map(|s| round(s.edge_cpu_cores * 1000.0 / s.clients as f64)),
        "native_edge_cpu_ms_per_frame": best.map(|s| round(s.edge_cpu_ms_per_frame)),
        "native_edge_rss_kib_per_client": best.map(|s| round(s.rss_per_client_kb)),
        "native_min_fps": best.map(|s| round(s.min_fps)),
        "native_max_gap_ms": best.map(|s| round(s.max_gap_ms)),
        "native_frames_delivered": best.map(|s| s.frames),
        "compat_clients_at_25fps": knsock["ours"]["clients_at_25fps"],
        "compat_cpu_ms_per_frame": knsock["ours"]["cpu_ms_per_frame_at_capacity"],
        "knsock_clients_at_25fps": knsock["knsock_0_3_0"]["clients_at_25fps"],
        "knsock_cpu_ms_per_frame": knsock["knsock_0_3_0"]["cpu_ms_per_frame_best"],
        "compat_vs_knsock_cpu_per_frame_ratio": knsock["cpu_per_frame_ratio"],
        "compat_vs_knsock_clients_ratio": knsock["clients_ratio"],
        "live_latency_p50_s": round(p50),
        "live_latency_p99_s": round(p99),
        "targets": {
            "native_ge_1000_clients": best.is_some_and(|s| s.clients >= 1000),
            "live_p99_le_0_5_s": p99 <= 0.5,
            "compat_cpu_le_1_50_of_knsock": knsock["cpu_per_frame_ratio"].as_f64().map(|r| r >= 50.0),
            "compat_clients_ge_20x_knsock": knsock["clients_ratio"].as_f64().map(|r| r >= 20.0),
        },
    });
    println!("{line}");
    drop(edge);
    stack.stop().await;
    Ok(())
}
