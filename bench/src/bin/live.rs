//! `make bench BENCH=live`: live channels on this machine.
//!
//! * **Real-time factor** of the default ladder (720/480/360/240 p from the
//!   720p25 bigbuckbunny sample, looped, x264 `veryfast`, normal latency):
//!   the live pipeline unpaced for `LIVE_RTF_S` (30) media seconds; media s
//!   per wall s. Then the same channel paced: CPU cores it uses.
//! * **Glass-to-glass at the edge**, per latency option: a 1280×720
//!   generator channel with the default ladder through the whole stack;
//!   a client follows the 720p rendition with blocking playlist reloads and
//!   notes, for every part, (time the playlist naming it was served) −
//!   (wall-clock time of the part's first frame: its PDT, which the channel
//!   stamps with the frame's release instant). The first frame of a part is
//!   its oldest, so this is each part's worst frame. `LIVE_G2G_S` (30) s.
//! * **hls.js latency** in Debian's Chromium (`frontend/tests/live.mjs`,
//!   lowLatencyMode) on the `low` channel: `hls.latency` p50/p99.
//! * **Blocking-reload wake-up**: 1,000 requests wait for the next part;
//!   per request, (response received) − (ingest's part notification seen on
//!   NATS). `LIVE_WAKE_ROUNDS` (5) rounds.
//!
//! Peers: MediaMTX reports 1–2 s through its hls.js page, OvenMediaEngine
//! documents 2–5 s, Owncast tells users ~6 s (documented figures; none of
//! them runs here). Ends with one JSON line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use futures::StreamExt;
use stream_bench::{cpu_seconds, RUSAGE_SELF};
use stream_bus::media;
use stream_hls::live::{LiveConfig, LivePlaylist};
use stream_media::live::{run_live, LiveEvent, LiveOptions, LiveSource};
use stream_testkit::samples;
use stream_tests::{run_browser_script, Stack, StackOptions};

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Unpaced real-time factor and paced CPU of the default ladder.
fn ladder_speed(media_s: f64) -> Result<(f64, f64, u64)> {
    let source = LiveSource::File {
        path: samples::path(samples::BIG_BUCK_BUNNY),
        looped: true,
    };
    let run = |paced: bool, limit: f64| -> Result<(f64, f64, f64, u64)> {
        let opts = LiveOptions {
            paced,
            ..LiveOptions::default()
        };
        let stop = AtomicBool::new(false);
        let (t0, cpu0) = (Instant::now(), cpu_seconds(RUSAGE_SELF));
        let mut reached = 0.0;
        let mut dropped = 0;
        run_live(&source, &opts, &stop, |ev| {
            if let LiveEvent::Progress {
                media_time_s,
                dropped: d,
                ..
            } = ev
            {
                reached = media_time_s;
                dropped = d;
            }
            let stop_now = if paced {
                t0.elapsed().as_secs_f64() >= limit
            } else {
                reached >= limit
            };
            if stop_now {
                stop.store(true, Ordering::Relaxed);
            }
        })
        .map_err(|e| anyhow!("live pipeline: {e}"))?;
        Ok((
            reached,
            t0.elapsed().as_secs_f64(),
            cpu_seconds(RUSAGE_SELF) - cpu0,
            dropped,
        ))
    };
    let (media, wall, _, _) = run(false, media_s)?;
    let rtf = media / wall;
    println!("unpaced: {media:.1} media s in {wall:.1} s: real-time factor {rtf:.2}");
    let (_, wall, cpu, dropped) = run(true, 20.0)?;
    let cores = cpu / wall;
    println!("paced: {cpu:.1} CPU-s in {wall:.1} s: {cores:.2} cores, {dropped} frames dropped");
    Ok((rtf, cores, dropped))
}

/// Follow a rendition with blocking reloads for `secs`; per part, served
/// time − PDT of its first frame, seconds.
async fn glass_to_glass(stack: &Stack, id: &str, track: &str, secs: f64) -> Result<Vec<f64>> {
    let http = reqwest::Client::new();
    let base = format!("{}/hls/{id}/{track}/index.m3u8", stack.edge);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut query = String::new();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        let resp = http.get(format!("{base}{query}")).send().await?;
        let served = unix_ms();
        if !resp.status().is_success() {
            bail!("{track} playlist: {}", resp.status());
        }
        let text = resp.text().await?;
        let pl =
            LivePlaylist::parse(&text, LiveConfig::for_reading()).map_err(|e| anyhow!("{e}"))?;
        let mut note = |pdt: Option<i64>, parts: &[stream_hls::live::Part]| {
            let Some(pdt) = pdt else { return };
            let mut offset = 0.0;
            for p in parts {
                if seen.insert(p.uri.clone()) {
                    out.push((served - (pdt as f64 + offset * 1000.0)) / 1000.0);
                }
                offset += p.duration_s;
            }
        };
        let first_round = query.is_empty();
        for s in pl.segments() {
            note(s.pdt_ms, &s.parts);
        }
        let (pdt, parts) = pl.open_segment();
        note(pdt, parts);
        if first_round {
            // Parts that existed before we started are not measurements.
            out.clear();
        }
        let next = pl
            .last_position()
            .ok_or_else(|| anyhow!("empty playlist"))?;
        query = match next.part {
            Some(p) => format!("?_HLS_msn={}&_HLS_part={}", next.msn, p + 1),
            None => format!("?_HLS_msn={}", next.msn + 1),
        };
    }
    Ok(out)
}

/// 1,000 requests wait for the next part; wake-up latency of each, ms.
async fn wakeups(stack: &Stack, id: &str, track: &str, waiters: usize) -> Result<Vec<f64>> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(waiters)
        .build()?;
    let base = format!("{}/hls/{id}/{track}/index.m3u8", stack.edge);
    let text = http.get(&base).send().await?.text().await?;
    let pl = LivePlaylist::parse(&text, LiveConfig::for_reading()).map_err(|e| anyhow!("{e}"))?;
    let last = pl
        .last_position()
        .ok_or_else(|| anyhow!("empty playlist"))?;
    // Two parts ahead: every request is surely waiting before it appears.
    let want = (last.msn, last.part.map_or(0, |p| p + 2));
    let mut sub = stack
        .nats
        .subscribe(format!("{}.live.{id}.{track}.part", stack.prefix))
        .await?;
    let url = format!("{base}?_HLS_msn={}&_HLS_part={}", want.0, want.1);
    let mut tasks = Vec::new();
    for _ in 0..waiters {
        let http = http.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let r = http.get(&url).send().await;
            let at = unix_ms();
            match r {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                    Ok(at)
                }
                Ok(r) => Err(anyhow!("{}", r.status())),
                Err(e) => Err(anyhow!(e)),
            }
        }));
    }
    // The notification that publishes the wanted part (or a later one).
    let notified = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await?
            .ok_or_else(|| anyhow!("subscription closed"))?;
        let at = unix_ms();
        let text = String::from_utf8_lossy(&msg.payload).to_string();
        let (msn, part) = text.split_once('.').unwrap_or(("0", "-1"));
        let (msn, part): (u64, i64) = (msn.parse()?, part.parse()?);
        if (msn, part) >= (want.0, want.1 as i64) || msn > want.0 {
            break at;
        }
    };
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await?? - notified);
    }
    Ok(out)
}

fn main() -> Result<()> {
    let rtf_media_s = env_f64("LIVE_RTF_S", 30.0);
    let g2g_s = env_f64("LIVE_G2G_S", 30.0);
    let rounds = env_f64("LIVE_WAKE_ROUNDS", 5.0) as usize;
    let (rtf, cores, paced_dropped) = ladder_speed(rtf_media_s)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let figures = rt.block_on(async {
        let stack = Stack::start(StackOptions::default()).await?;
        let mut g2g = Vec::new();
        let mut low_id = String::new();
        for latency in [media::LiveLatency::Normal, media::LiveLatency::Low] {
            let id = stack
                .start_channel(
                    "bench",
                    media::live_job::Source::Generator(media::LiveGenerator {
                        event_interval_s: 3600.0,
                        width: 1280,
                        height: 720,
                    }),
                    latency,
                )
                .await?;
            stack.wait_live(&id, Duration::from_secs(60)).await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let lat = glass_to_glass(&stack, &id, "720p", g2g_s).await?;
            println!(
                "glass-to-glass {:?}: {} parts, p50 {:.3} s, p99 {:.3} s",
                latency,
                lat.len(),
                percentile(&lat, 0.5),
                percentile(&lat, 0.99)
            );
            g2g.push((percentile(&lat, 0.5), percentile(&lat, 0.99), lat.len()));
            if latency == media::LiveLatency::Low {
                low_id = id;
            } else {
                stack
                    .nats
                    .request(
                        stream_bus::Subjects::new(&stack.prefix).live_stop(&id),
                        "".into(),
                    )
                    .await?;
            }
        }
        // Wake-up latency of 1,000 blocked requests.
        let mut wake = Vec::new();
        for _ in 0..rounds.max(1) {
            wake.extend(wakeups(&stack, &low_id, "720p", 1000).await?);
        }
        println!(
            "wake-up of 1000 blocked requests: p50 {:.1} ms, p99 {:.1} ms ({} samples)",
            percentile(&wake, 0.5),
            percentile(&wake, 0.99),
            wake.len()
        );
        stack
            .nats
            .request(
                stream_bus::Subjects::new(&stack.prefix).live_stop(&low_id),
                "".into(),
            )
            .await?;
        // hls.js in Chromium on a low-latency 640x360 channel (two rungs):
        // Chromium decodes in software, and on this 2-core machine the
        // 720p ladder's encoders (1.3 cores) would starve it into stalls
        // that measure the machine, not the stream.
        let browser_id = stack
            .start_channel(
                "bench browser",
                media::live_job::Source::Generator(media::LiveGenerator {
                    event_interval_s: 3600.0,
                    width: 640,
                    height: 360,
                }),
                media::LiveLatency::Low,
            )
            .await?;
        stack
            .wait_live(&browser_id, Duration::from_secs(60))
            .await?;
        let out = run_browser_script(
            "live.mjs",
            vec![
                ("BASE_URL", stack.edge.clone()),
                ("CHANNEL_ID", browser_id.clone()),
                ("WATCH_S", "20".into()),
            ],
        )
        .await?;
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix("latency: "))
            .ok_or_else(|| anyhow!("no latency line from the browser"))?;
        println!("hls.js: {line}");
        let hlsjs: serde_json::Value = serde_json::from_str(line)?;
        stack.stop().await;
        Ok::<_, anyhow::Error>((g2g, hlsjs, wake))
    })?;
    let (g2g, hlsjs, wake) = figures;
    let json = serde_json::json!({
        "bench": "live",
        "ladder": "720/480/360/240",
        "hlsjs_channel": "generator 640x360 (360/240), low latency",
        "preset": "veryfast",
        "rtf_4rung": round3(rtf),
        "paced_channel_cpu_cores": round3(cores),
        "paced_channel_dropped_frames": paced_dropped,
        "g2g_normal_p50_s": round3(g2g[0].0),
        "g2g_normal_p99_s": round3(g2g[0].1),
        "g2g_low_p50_s": round3(g2g[1].0),
        "g2g_low_p99_s": round3(g2g[1].1),
        "g2g_parts": g2g[0].2 + g2g[1].2,
        "hlsjs_latency_p50_s": hlsjs["p50"].as_f64().map(round3),
        "hlsjs_latency_p99_s": hlsjs["p99"].as_f64().map(round3),
        "reload_wakeup_p50_ms": round3(percentile(&wake, 0.5)),
        "reload_wakeup_p99_ms": round3(percentile(&wake, 0.99)),
        "reload_waiters": 1000,
        "peer_latency_s": {"mediamtx_hlsjs": "1-2", "ovenmediaengine": "2-5", "owncast": "~6"},
        "targets": {
            "rtf_ge_1_2": rtf >= 1.2,
            "g2g_normal_p99_le_1_0": g2g[0].1 <= 1.0,
            "g2g_low_p99_le_0_6": g2g[1].1 <= 0.6,
            "hlsjs_p50_le_1_5": hlsjs["p50"].as_f64().is_some_and(|v| v <= 1.5),
            "hlsjs_p99_le_2_0": hlsjs["p99"].as_f64().is_some_and(|v| v <= 2.0),
        },
    });
    println!("{json}");
    Ok(())
}
