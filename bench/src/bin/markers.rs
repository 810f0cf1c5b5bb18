//! `make bench BENCH=markers`: the marker service in the whole stack
//! (in process, real NATS and Redis).
//!
//! 1. Publish → SSE delivery: one SSE client on a video; markers POSTed at
//!    `RATE` per second for `SECONDS` (default 1 000/s for 30 s), each
//!    carrying its send instant; latency = SSE receipt − POST start.
//!    Target p99 ≤ 20 ms.
//! 2. Range query: a video with 100 000 markers (POSTed in batches of
//!    1 000); `GET …/markers?from=&to=` over random 10 s windows, 2 000
//!    queries. Target p99 ≤ 5 ms.
//!
//! Prints the figures, then one JSON line `{"bench": "markers", ...}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};
use stream_tests::{Stack, StackOptions};

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let rate = env_num("RATE", 1000.0);
    let seconds = env_num("SECONDS", 30.0);
    let range_markers = env_num("RANGE_MARKERS", 100_000.0) as usize;
    let stack = Stack::start(StackOptions::default()).await?;
    let result = run(&stack, rate, seconds, range_markers).await;
    stack.stop().await;
    let line = result?;
    println!("{line}");
    Ok(())
}

async fn run(stack: &Stack, rate: f64, seconds: f64, range_markers: usize) -> Result<Value> {
    // ---- 1. publish → SSE ----
    let duration_s = 3600.0;
    let video = stack.register_video(duration_s).await?;
    let mut feed = stack.marker_events(&video, None).await?;
    let origin = Instant::now();
    let total = (rate * seconds) as usize;
    let http = stack.http.clone();
    let url = format!("{}/v1/videos/{video}/markers", stack.marker);
    let inflight = Arc::new(tokio::sync::Semaphore::new(256));
    let publisher = tokio::spawn(async move {
        let period = Duration::from_secs_f64(1.0 / rate);
        let mut errors = 0usize;
        let mut tasks = Vec::with_capacity(total);
        for i in 0..total {
            let due = origin + period.mul_f64(i as f64);
            tokio::time::sleep_until(due.into()).await;
            let permit = inflight.clone().acquire_owned().await.expect("semaphore");
            let http = http.clone();
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let sent_us = origin.elapsed().as_micros() as u64;
                let body = json!({
                    "kind": "event",
                    "label": format!("{sent_us}"),
                    "media_time": (i as f64 * 0.1) % 3600.0,
                });
                let ok =
                    matches!(http.post(&url).json(&body).send().await, Ok(r) if r.status() == 201);
                drop(permit);
                ok
            }));
        }
        for t in tasks {
            if !t.await.unwrap_or(false) {
                errors += 1;
            }
        }
        errors
    });
    let mut latencies_ms = Vec::with_capacity(total);
    while latencies_ms.len() < total {
        let e = feed.next(Duration::from_secs(10)).await?;
        let now_us = origin.elapsed().as_micros() as u64;
        let d: Value = serde_json::from_str(&e.data)?;
        let sent_us: u64 = d["marker"]["label"].as_str().unwrap_or("0").parse()?;
        latencies_ms.push(now_us.saturating_sub(sent_us) as f64 / 1000.0);
    }
    let wall = origin.elapsed().as_secs_f64();
    let errors = publisher.await?;
    if errors > 0 {
        bail!("{errors} POSTs failed");
    }
    latencies_ms.sort_by(f64::total_cmp);
    let sse_p50 = pct(&latencies_ms, 0.50);
    let sse_p99 = pct(&latencies_ms, 0.99);
    let sse_max = pct(&latencies_ms, 1.0);
    let achieved = total as f64 / wall;
    println!(
        "publish → SSE: {total} markers in {wall:.1} s ({achieved:.0}/s): p50 {sse_p50:.2} ms, p99 {sse_p99:.2} ms, max {sse_max:.2} ms (target p99 ≤ 20 ms)"
    );

    // ---- 2. range queries on 100 000 markers ----
    let big = stack.register_video(duration_s).await?;
    let url = format!("{}/v1/videos/{big}/markers", stack.marker);
    let fill = Instant::now();
    let mut n = 0usize;
    while n < range_markers {
        let count = (range_markers - n).min(1000);
        let batch: Vec<Value> = (n..n + count)
            .map(|i| {
                json!({
                    "kind": "scene",
                    "label": format!("m{i}"),
                    // Spread over the hour, deterministic but not sorted.
                    "media_time": ((i as u64 * 7919) % 3_600_000) as f64 / 1000.0,
                })
            })
            .collect();
        let r = stack.http.post(&url).json(&batch).send().await?;
        if r.status() != 201 {
            bail!("fill: {} {}", r.status(), r.text().await?);
        }
        n += count;
    }
    let fill_s = fill.elapsed().as_secs_f64();
    let queries = 2000usize;
    let mut range_ms = Vec::with_capacity(queries);
    let mut returned = 0usize;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..queries {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let from = (seed % 3_590_000) as f64 / 1000.0;
        let t = Instant::now();
        let r = stack
            .http
            .get(&url)
            .query(&[("from", from), ("to", from + 10.0)])
            .send()
            .await?;
        let bytes = r.bytes().await?;
        // Timed to the last byte received; parsing is the client's business.
        range_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let body: Value = serde_json::from_slice(&bytes)?;
        returned += body["markers"].as_array().map_or(0, Vec::len);
    }
    range_ms.sort_by(f64::total_cmp);
    let range_p50 = pct(&range_ms, 0.50);
    let range_p99 = pct(&range_ms, 0.99);
    let per_query = returned as f64 / queries as f64;
    println!(
        "range query on {range_markers} markers (filled in {fill_s:.1} s): {queries} queries of 10 s windows (~{per_query:.0} markers each): p50 {range_p50:.2} ms, p99 {range_p99:.2} ms (target p99 ≤ 5 ms)"
    );
    Ok(json!({
        "bench": "markers",
        "sse_rate_per_s": (achieved * 10.0).round() / 10.0,
        "sse_markers": total,
        "sse_p50_ms": (sse_p50 * 100.0).round() / 100.0,
        "sse_p99_ms": (sse_p99 * 100.0).round() / 100.0,
        "sse_max_ms": (sse_max * 100.0).round() / 100.0,
        "range_markers": range_markers,
        "range_queries": queries,
        "range_markers_per_query": (per_query * 10.0).round() / 10.0,
        "range_p50_ms": (range_p50 * 100.0).round() / 100.0,
        "range_p99_ms": (range_p99 * 100.0).round() / 100.0,
        "sse_p99_target_ms": 20,
        "range_p99_target_ms": 5,
        "pass": sse_p99 <= 20.0 && range_p99 <= 5.0,
    }))
}
