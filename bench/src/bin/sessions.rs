//! `make bench BENCH=sessions`: the control plane under 10,000 concurrent
//! sessions, each with its own Feedback stream over real gRPC (HTTP/2,
//! spread over 32 connections), one report a second per session
//! (staggered). Measures decisions per second and decision latency (report
//! sent → decision received) p50/p99, with the control plane as a separate
//! process (target/release/control) against the real Redis and NATS.
//!
//! `SESSIONS` (default 10000) and `BENCH_SECONDS` (default 20) override.
//! Ends with one JSON line.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use stream_bus::{event, media, video_event::Kind};
use stream_catalog::Catalog;
use stream_proto::control::v1 as pb;
use stream_proto::control::v1::control_plane_client::ControlPlaneClient;
use stream_testkit::{env, unique_prefix, workspace_root};
use tonic::transport::Channel;

const CONNECTIONS: usize = 32;

fn main() -> Result<()> {
    let sessions: usize = std::env::var("SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(sessions, seconds))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run(sessions: usize, seconds: u64) -> Result<()> {
    let prefix = unique_prefix();
    // A playable video in the catalogue (the control plane only reads it).
    let catalog = Catalog::connect(&env::redis_url(), &prefix).await?;
    let video = stream_hls_id();
    let renditions: Vec<media::Rendition> = [
        (240, 426, 500_000u64),
        (360, 640, 1_000_000),
        (480, 852, 1_800_000),
        (720, 1280, 4_000_000),
    ]
    .iter()
    .map(|(h, w, b)| media::Rendition {
        name: format!("{h}p"),
        width: *w,
        height: *h,
        bandwidth_bps: *b,
        average_bandwidth_bps: b * 3 / 4,
        codecs: "avc1.64001f".into(),
        frame_rate: 25.0,
        playlist: format!("{h}p/index.m3u8"),
        audio: false,
        ready: true,
    })
    .collect();
    catalog
        .apply(&event(
            &video,
            Kind::Ready(media::Ready {
                duration_s: 600.0,
                renditions,
                master_playlist: "master.m3u8".into(),
            }),
        ))
        .await?;

    let port = free_port()?;
    let bin = workspace_root().join("target/release/control");
    if !bin.is_file() {
        bail!("{} missing: cargo build --release --bins", bin.display());
    }
    let _server = Server(
        Command::new(&bin)
            .env("CONTROL_GRPC_ADDR", format!("127.0.0.1:{port}"))
            .env("NATS_URL", env::nats_url())
            .env("REDIS_URL", env::redis_url())
            .env("BUS_PREFIX", &prefix)
            .env("REDIS_PREFIX", &prefix)
            .env("CONTROL_MAX_SESSIONS", (sessions * 2).to_string())
            .env("CONTROL_MAX_SESSIONS_PER_VIDEO", (sessions * 2).to_string())
            .env("CONTROL_PROJECTOR", "false")
            .env("RUST_LOG", "warn")
            .spawn()
            .context("start control")?,
    );
    let url = format!("http://127.0.0.1:{port}");
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        let ch = loop {
            match Channel::from_shared(url.clone())?.connect().await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        channels.push(ch);
    }

    // Open the sessions.
    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(sessions);
    let mut opens = futures::stream::iter((0..sessions).map(|i| {
        let mut c = ControlPlaneClient::new(channels[i % CONNECTIONS].clone());
        let video = video.clone();
        async move {
            c.open_session(pb::OpenSessionRequest {
                video_id: video,
                client_kind: pb::ClientKind::Hls as i32,
                capabilities: Some(pb::Capabilities {
                    max_height: 0,
                    codecs: vec![],
                    initial_throughput_bps: 2e6,
                }),
            })
            .await
            .map(|r| r.into_inner().session_id)
        }
    }))
    .buffer_unordered(128);
    while let Some(r) = opens.next().await {
        ids.push(r?);
    }
    let open_s = t0.elapsed().as_secs_f64();
    println!(
        "opened {} sessions in {open_s:.2} s ({:.0}/s)",
        ids.len(),
        ids.len() as f64 / open_s
    );

    // Feedback streams: one report a second each, staggered.
    let decisions = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<f64>::with_capacity(
        sessions * seconds as usize,
    )));
    let first_latencies = Arc::new(std::sync::Mutex::new(Vec::<f64>::with_capacity(sessions)));
    let start = Instant::now() + Duration::from_millis(500);
    let end = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (i, id) in ids.into_iter().enumerate() {
        let mut c = ControlPlaneClient::new(channels[i % CONNECTIONS].clone());
        let (decisions, errors, latencies) = (decisions.clone(), errors.clone(), latencies.clone());
        let first_latencies = first_latencies.clone();
        let phase = Duration::from_micros((i as u64 * 1_000_000 / sessions as u64) % 1_000_000);
        tasks.push(tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            let mut inbound = match c
                .feedback(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
            {
                Ok(r) => r.into_inner(),
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let mut tick = tokio::time::interval_at((start + phase).into(), Duration::from_secs(1));
            let mut seq = 0u64;
            let mut local = Vec::new();
            loop {
                let at = tick.tick().await;
                if Instant::now() >= end {
                    break;
                }
                let _ = at;
                seq += 1;
                let buffer = 4_000.0 + (seq % 10) as f64 * 1_000.0;
                let sent = Instant::now();
                if tx
                    .send(pb::BufferReport {
                        session_id: id.clone(),
                        sequence: seq,
                        buffer_level_ms: buffer,
                        throughput_bps: 1.5e6 + (seq % 7) as f64 * 5e5,
                        current_rendition: "360p".into(),
                        last_segment_bytes: 250_000,
                        last_download_ms: 900.0,
                        ..Default::default()
                    })
                    .await
                    .is_err()
                {
                    errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                match inbound.next().await {
                    Some(Ok(_)) => {
                        decisions.fetch_add(1, Ordering::Relaxed);
                        let ms = sent.elapsed().as_secs_f64() * 1000.0;
                        if seq == 1 {
                            // Stream setup: session and ladder loads.
                            first_latencies.lock().expect("latency lock").push(ms);
                        } else {
                            local.push(ms);
                        }
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            latencies.lock().expect("latency lock").extend(local);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = seconds as f64;
    let mut lat = std::mem::take(&mut *latencies.lock().expect("latency lock"));
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let mut first = std::mem::take(&mut *first_latencies.lock().expect("latency lock"));
    first.sort_by(f64::total_cmp);
    let first_p99 = first
        .get(((first.len() as f64 - 1.0) * 0.99).round() as usize)
        .copied()
        .unwrap_or(f64::NAN);
    let n = decisions.load(Ordering::Relaxed);
    let rate = n as f64 / elapsed;
    println!(
        "{sessions} sessions, {seconds} s: {n} decisions ({rate:.0}/s, offered {sessions}/s), steady-state latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; first decision of a stream p99 {first_p99:.2} ms; errors {}",
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        errors.load(Ordering::Relaxed)
    );
    if let Ok(bus) = stream_bus::Bus::connect(&env::nats_url(), &prefix).await {
        let _ = bus.delete_streams().await;
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "sessions",
            "sessions": sessions,
            "seconds": seconds,
            "decisions_per_s": (rate * 10.0).round() / 10.0,
            "offered_per_s": sessions,
            "p50_ms": (pct(0.5) * 100.0).round() / 100.0,
            "p99_ms": (pct(0.99) * 100.0).round() / 100.0,
            "open_per_s": (sessions as f64 / open_s).round(),
            "first_decision_p99_ms": (first_p99 * 100.0).round() / 100.0,
            "errors": errors.load(Ordering::Relaxed),
        })
    );
    Ok(())
}

fn stream_hls_id() -> String {
    ulid_string()
}

fn ulid_string() -> String {
    // A ULID from the current time (the catalogue pages by ULID order).
    stream_hls::VideoId::generate().to_string()
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
