//! `make bench BENCH=knsock`: the edge's kn-sock compatible mode against
//! kn-sock 0.3.0's own `LiveStreamServer`, same source (the 720p25
//! bigbuckbunny sample; ours plays its 720p rendition), same client
//! protocol (video port: handshake, `{"index": 0}`, `!dI` + JPEG frames).
//!
//! Clients run in a child process (this binary with `--load`), so the
//! server's CPU is measured alone: ours = this process (`RUSAGE_SELF`,
//! the whole in-process stack), kn-sock = its Python process and its
//! children (`/proc/<pid>/stat` utime + stime + cutime + cstime: it runs
//! the ffmpeg CLI per connection). For each client count, clients read
//! for `KNSOCK_BENCH_S` (10) s after a 3 s warm-up; reported: delivered
//! frames/s per client (the slowest), server CPU ms per delivered frame.
//! The largest client count where the slowest client still gets ≥ 24.5
//! frames/s is the capacity at 25 fps. Ratios: kn-sock's cheapest CPU per
//! frame over ours at our capacity (where the shared decode/encode is
//! spread over the most viewers), and the capacities. Ends with one JSON
//! line.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use stream_bench::{cpu_seconds, RUSAGE_SELF};
use stream_testkit::samples;
use stream_tests::{Stack, StackOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WARMUP: Duration = Duration::from_secs(3);

fn bench_s() -> f64 {
    std::env::var("KNSOCK_BENCH_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0)
}

/// One client: frames read inside the measured window.
async fn client(addr: SocketAddr, name: String, start: Instant, end: Instant) -> Result<u64> {
    let sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    let mut r = BufReader::with_capacity(1 << 20, sock);
    let mut hello = String::new();
    r.read_line(&mut hello).await?;
    let v: serde_json::Value = serde_json::from_str(&hello)?;
    let names: Vec<&str> = v["videos"]
        .as_array()
        .ok_or_else(|| anyhow!("no videos in {hello}"))?
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    let index = names
        .iter()
        .position(|n| *n == name)
        .ok_or_else(|| anyhow!("{name} not offered: {names:?}"))?;
    r.get_mut()
        .write_all(format!("{{\"index\": {index}}}\n").as_bytes())
        .await?;
    let mut frames = 0u64;
    let mut jpeg = Vec::new();
    loop {
        let mut header = [0u8; 12];
        let now = Instant::now();
        if now >= end {
            return Ok(frames);
        }
        match tokio::time::timeout(end - now, r.read_exact(&mut header)).await {
            Err(_) => return Ok(frames),
            Ok(res) => {
                res?;
            }
        }
        let len = u32::from_be_bytes(header[8..].try_into()?) as usize;
        if len > 32 << 20 {
            bail!("frame of {len} bytes");
        }
        jpeg.resize(len, 0);
        r.read_exact(&mut jpeg).await?;
        let t = Instant::now();
        if t >= start && t < end {
            frames += 1;
        }
    }
}

/// `--load ADDR NAME N`: N clients; prints the frames of each as JSON.
async fn load(addr: SocketAddr, name: String, n: usize) -> Result<()> {
    let start = Instant::now() + WARMUP;
    let end = start + Duration::from_secs_f64(bench_s());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        set.spawn(client(addr, name.clone(), start, end));
        // kn-sock's accept queue is 5 deep: don't flood it.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut frames = Vec::new();
    while let Some(r) = set.join_next().await {
        frames.push(r?.unwrap_or(0));
    }
    println!("{}", serde_json::json!({ "frames": frames }));
    Ok(())
}

/// Run the load child; returns (slowest client fps, total frames, server
/// CPU seconds over the measured window).
async fn measure(
    addr: SocketAddr,
    name: &str,
    n: usize,
    server_cpu: &dyn Fn() -> f64,
) -> Result<(f64, u64, f64)> {
    let exe = std::env::current_exe()?;
    let child = tokio::process::Command::new(exe)
        .args(["--load", &addr.to_string(), name, &n.to_string()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    tokio::time::sleep(WARMUP).await;
    let cpu0 = server_cpu();
    tokio::time::sleep(Duration::from_secs_f64(bench_s())).await;
    let cpu1 = server_cpu();
    let out = child.wait_with_output().await?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("load output {:?}", String::from_utf8_lossy(&out.stdout)))?;
    let frames: Vec<u64> = v["frames"]
        .as_array()
        .ok_or_else(|| anyhow!("no frames"))?
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    let slowest = frames.iter().copied().min().unwrap_or(0) as f64 / bench_s();
    Ok((slowest, frames.iter().sum(), cpu1 - cpu0))
}

/// CPU seconds of `pid` and its waited-for children.
fn proc_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the command name (which may contain spaces).
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // utime, stime, cutime, cstime are fields 14–17 (index 11–14 here).
    (f[11] + f[12] + f[13] + f[14]) / tck
}

async fn sweep(
    label: &str,
    addr: SocketAddr,
    name: &str,
    counts: &[usize],
    server_cpu: &dyn Fn() -> f64,
) -> Result<(Vec<serde_json::Value>, usize, f64)> {
    let mut rows = Vec::new();
    let mut capacity = 0;
    // CPU per frame at the largest count still at 25 fps (the shared work
    // is spread over the most viewers there), else at the first count.
    let mut ms_at_capacity = f64::NAN;
    for &n in counts {
        let (slowest, frames, cpu) = measure(addr, name, n, server_cpu).await?;
        let ms = if frames > 0 {
            cpu * 1000.0 / frames as f64
        } else {
            f64::NAN
        };
        if ms_at_capacity.is_nan() {
            ms_at_capacity = ms;
        }
        eprintln!(
            "{label}: {n} clients: slowest {slowest:.1} fps, {frames} frames, {ms:.3} ms CPU/frame"
        );
        rows.push(serde_json::json!({
            "clients": n, "slowest_fps": (slowest * 10.0).round() / 10.0,
            "frames": frames, "cpu_ms_per_frame": (ms * 1000.0).round() / 1000.0,
        }));
        if slowest >= 24.5 {
            capacity = n;
            ms_at_capacity = ms;
        } else {
            break;
        }
    }
    Ok((rows, capacity, ms_at_capacity))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--load") {
        let addr = args.get(2).ok_or_else(|| anyhow!("addr"))?.parse()?;
        let name = args.get(3).ok_or_else(|| anyhow!("name"))?.clone();
        let n = args.get(4).ok_or_else(|| anyhow!("n"))?.parse()?;
        return load(addr, name, n).await;
    }

    // kn-sock 0.3.0's server on the sample.
    let peer = stream_tests::KnSockServer::start(&samples::path(samples::BIG_BUCK_BUNNY)).await?;
    let pid = peer.child.id().ok_or_else(|| anyhow!("kn-sock pid"))?;
    let peer_addr: SocketAddr = peer.video;
    let (peer_rows, peer_capacity, _) = sweep(
        "kn-sock",
        peer_addr,
        "bigbuckbunny.mp4",
        &[1, 2, 4],
        &|| proc_cpu(pid),
    )
    .await?;
    drop(peer);
    // The peer at its cheapest per frame (its best case).
    let peer_ms = peer_rows
        .iter()
        .filter_map(|r| r["cpu_ms_per_frame"].as_f64())
        .fold(f64::INFINITY, f64::min);

    // Ours, in process.
    let stack = Stack::start(StackOptions {
        knsock: true,
        ladder: Some("720:3000k".into()),
        knsock_max_connections: Some(2000),
        ..Default::default()
    })
    .await?;
    stack.ingest_ready(samples::BIG_BUCK_BUNNY).await?;
    let ours = stack.knsock.ok_or_else(|| anyhow!("no kn-sock ports"))?;
    let (rows, capacity, ms) = sweep(
        "ours",
        ours.video,
        "bigbuckbunny",
        &[1, 10, 50, 100, 200, 400, 800],
        &|| cpu_seconds(RUSAGE_SELF),
    )
    .await?;
    stack.stop().await;

    let cpu_ratio = peer_ms / ms;
    let capacity_ratio = capacity as f64 / (peer_capacity.max(1)) as f64;
    println!(
        "{}",
        serde_json::json!({
            "bench": "knsock",
            "ours": { "rows": rows, "clients_at_25fps": capacity, "cpu_ms_per_frame_at_capacity": ms },
            "knsock_0_3_0": { "rows": peer_rows, "clients_at_25fps": peer_capacity, "cpu_ms_per_frame_best": peer_ms },
            "cpu_per_frame_ratio": cpu_ratio,
            "clients_ratio": capacity_ratio,
            "targets": { "cpu_per_frame_ratio_min": 50, "clients_ratio_min": 20 },
        })
    );
    Ok(())
}
