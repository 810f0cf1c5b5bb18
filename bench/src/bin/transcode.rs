//! `make bench BENCH=transcode`: a 60 s real clip (bigbuckbunny concatenated
//! 12 times by stream copy) through the default ladder.
//!
//! * ours: the whole service path in process — upload over HTTP, a JetStream
//!   job, the libav pipeline in its transcoder child process, publishing to
//!   the store — timed from "upload finished" to the `ready` event; CPU =
//!   this process's and its children's rusage over that span. Also time to first playable: master playlist and the first
//!   segment of its first variant servable by the edge.
//! * peer: the ffmpeg CLI, one process, the same ladder (filter_complex
//!   split + scale, libx264 with the same preset, bitrates, VBV, GOP and
//!   keyframe forcing, stereo AAC once), fMP4 HLS out; CPU from
//!   RUSAGE_CHILDREN.
//!
//! `BENCH_ROUNDS` (default 3) alternating rounds; medians are reported.
//! Ends with one JSON line of figures and ratios.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use stream_bench::{cpu_seconds, RUSAGE_CHILDREN, RUSAGE_SELF};
use stream_media::{Limits, TranscodeOptions};
use stream_testkit::samples;
use stream_tests::{Outcome, Stack, StackOptions};

fn main() -> Result<()> {
    let work = stream_testkit::workspace_root().join(".cache/bench");
    std::fs::create_dir_all(&work)?;
    let clip = make_clip(&work)?;
    let opts = TranscodeOptions::default();
    let info = stream_media::probe(&clip, &Limits::default())?;
    let plan = opts.ladder.plan(&info.video);
    println!(
        "clip: {} ({:.1} s, {}x{}), ladder: {}",
        clip.display(),
        info.duration_s,
        info.video.display_width,
        info.video.display_height,
        plan.iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join("/")
    );

    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (mut ffmpeg_runs, mut our_runs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate who goes first so drift in machine load hits both.
        let mut ours_first = round % 2 == 1;
        for _ in 0..2 {
            if ours_first {
                let r = rt.block_on(run_ours(&clip))?;
                println!(
                    "round {round}: ours       {:.2} s wall, {:.2} CPU-s, first playable {:.2} s",
                    r.0, r.1, r.2
                );
                our_runs.push(r);
            } else {
                let r = run_ffmpeg(&clip, &work.join("ffmpeg"), &opts, &plan)?;
                println!(
                    "round {round}: ffmpeg CLI {:.2} s wall, {:.2} CPU-s",
                    r.0, r.1
                );
                ffmpeg_runs.push(r);
            }
            ours_first = !ours_first;
        }
    }
    let ffmpeg_wall = median(ffmpeg_runs.iter().map(|r| r.0));
    let ffmpeg_cpu = median(ffmpeg_runs.iter().map(|r| r.1));
    let ours_wall = median(our_runs.iter().map(|r| r.0));
    let ours_cpu = median(our_runs.iter().map(|r| r.1));
    let first_playable = median(our_runs.iter().map(|r| r.2));
    println!("medians of {rounds} rounds: ffmpeg CLI {ffmpeg_wall:.2} s / {ffmpeg_cpu:.2} CPU-s; ours {ours_wall:.2} s / {ours_cpu:.2} CPU-s");
    let wall_ratio = ours_wall / ffmpeg_wall;
    let cpu_ratio = ours_cpu / ffmpeg_cpu;
    println!("wall ratio {wall_ratio:.3} (target ≤ 0.85), CPU ratio {cpu_ratio:.3} (target ≤ 1.0), first playable {first_playable:.2} s (target ≤ 2)");
    println!(
        "{}",
        serde_json::json!({
            "bench": "transcode",
            "ours_wall_s": round(ours_wall),
            "ffmpeg_wall_s": round(ffmpeg_wall),
            "wall_ratio": round(wall_ratio),
            "ours_cpu_s": round(ours_cpu),
            "ffmpeg_cpu_s": round(ffmpeg_cpu),
            "cpu_ratio": round(cpu_ratio),
            "first_playable_s": round(first_playable),
        })
    );
    Ok(())
}

fn median(xs: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = xs.collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// bigbuckbunny × 12 by stream copy (concat demuxer).
fn make_clip(work: &Path) -> Result<PathBuf> {
    let clip = work.join("bigbuckbunny-x12.mp4");
    if clip.is_file() {
        return Ok(clip);
    }
    let list = work.join("concat.txt");
    let src = samples::path(samples::BIG_BUCK_BUNNY);
    std::fs::write(&list, format!("file '{}'\n", src.display()).repeat(12))?;
    let ok = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
        ])
        .arg(&list)
        .args(["-c", "copy"])
        .arg(&clip)
        .status()?
        .success();
    if !ok {
        bail!("could not build the 60 s clip");
    }
    Ok(clip)
}

fn run_ffmpeg(
    clip: &Path,
    out: &Path,
    opts: &TranscodeOptions,
    plan: &[stream_media::RenditionPlan],
) -> Result<(f64, f64)> {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out)?;
    let fps = 25.0;
    let gop = (fps * opts.segment_duration_s).ceil() as u32 + 1;
    let n = plan.len();
    let mut graph = format!("[0:v]split={n}");
    for i in 0..n {
        graph += &format!("[s{i}]");
    }
    for (i, p) in plan.iter().enumerate() {
        graph += &format!(";[s{i}]scale={}:{}[o{i}]", p.width, p.height);
    }
    let mut args: Vec<String> = vec![
        "-hide_banner".into(),
        "-loglevel".into(),
        "error".into(),
        "-y".into(),
        "-i".into(),
        clip.display().to_string(),
        "-filter_complex".into(),
        graph,
    ];
    let hls = |dir: &Path| -> Vec<String> {
        vec![
            "-f".into(),
            "hls".into(),
            "-hls_time".into(),
            format!("{}", opts.segment_duration_s),
            "-hls_list_size".into(),
            "0".into(),
            "-hls_playlist_type".into(),
            "event".into(),
            "-hls_segment_type".into(),
            "fmp4".into(),
            "-hls_flags".into(),
            "independent_segments".into(),
            "-hls_segment_filename".into(),
            dir.join("seg_%05d.m4s").display().to_string(),
            dir.join("index.m3u8").display().to_string(),
        ]
    };
    for (i, p) in plan.iter().enumerate() {
        let dir = out.join(&p.name);
        std::fs::create_dir_all(&dir)?;
        args.extend([
            "-map".into(),
            format!("[o{i}]"),
            "-c:v".into(),
            "libx264".into(),
            "-preset".into(),
            opts.x264_preset.clone(),
            "-profile:v".into(),
            "high".into(),
            "-pix_fmt".into(),
            "yuv420p".into(),
            "-b:v".into(),
            p.video_bitrate.to_string(),
            "-maxrate".into(),
            p.max_bitrate.to_string(),
            "-bufsize".into(),
            p.buffer_size.to_string(),
            "-g".into(),
            gop.to_string(),
            "-keyint_min".into(),
            gop.to_string(),
            "-sc_threshold".into(),
            "0".into(),
            "-force_key_frames".into(),
            format!("expr:gte(t,n_forced*{})", opts.segment_duration_s),
            "-forced-idr".into(),
            "1".into(),
            "-x264-params".into(),
            format!("keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0"),
        ]);
        args.extend(hls(&dir));
    }
    let adir = out.join("audio");
    std::fs::create_dir_all(&adir)?;
    args.extend([
        "-map".into(),
        "0:a:0".into(),
        "-c:a".into(),
        "aac".into(),
        "-b:a".into(),
        opts.audio_bitrate.to_string(),
        "-ac".into(),
        "2".into(),
        "-ar".into(),
        "48000".into(),
    ]);
    args.extend(hls(&adir));
    let cpu0 = cpu_seconds(RUSAGE_CHILDREN);
    let t0 = Instant::now();
    let status = Command::new("ffmpeg")
        .args(&args)
        .status()
        .context("run ffmpeg")?;
    let wall = t0.elapsed().as_secs_f64();
    if !status.success() {
        bail!("ffmpeg failed: {args:?}");
    }
    Ok((wall, cpu_seconds(RUSAGE_CHILDREN) - cpu0))
}

async fn run_ours(clip: &Path) -> Result<(f64, f64, f64)> {
    let stack = Stack::start(StackOptions::default()).await?;
    let mut outcomes = stack.watch_outcomes().await?;
    let bytes = tokio::fs::read(clip).await?;
    let id = stack.upload_ok(bytes, "bench").await?;
    // The service process plus its transcoder child (reaped before
    // `ready` is published, so RUSAGE_CHILDREN has it by then).
    let cpu_now = || cpu_seconds(RUSAGE_SELF) + cpu_seconds(RUSAGE_CHILDREN);
    let (t0, cpu0) = (Instant::now(), cpu_now());
    let first_playable = first_playable(&stack, &id, t0).await?;
    let outcome = outcomes.wait(&id, Duration::from_secs(600)).await?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_now() - cpu0;
    if let Outcome::Failed(f) = outcome {
        bail!("our transcode failed: {}", f.reason);
    }
    stack.stop().await;
    Ok((wall, cpu, first_playable))
}

/// Seconds from `t0` until the master playlist and the first segment of
/// its first variant are servable by the edge.
async fn first_playable(stack: &Stack, id: &str, t0: Instant) -> Result<f64> {
    let deadline = t0 + Duration::from_secs(120);
    let mut first_segment: Option<String> = None;
    while Instant::now() < deadline {
        match &first_segment {
            None => {
                let r = stack.edge_get(&format!("/hls/{id}/master.m3u8")).await?;
                if r.status().is_success() {
                    let bytes = r.bytes().await?;
                    if let Ok(m3u8_rs::Playlist::MasterPlaylist(m)) =
                        m3u8_rs::parse_playlist_res(&bytes)
                    {
                        let uri = &m.variants[0].uri;
                        let track = uri.split('/').next().unwrap_or_default();
                        let media = stack
                            .edge_get(&format!("/hls/{id}/{uri}"))
                            .await?
                            .bytes()
                            .await?;
                        if let Ok(m3u8_rs::Playlist::MediaPlaylist(p)) =
                            m3u8_rs::parse_playlist_res(&media)
                        {
                            if let Some(seg) = p.segments.first() {
                                first_segment = Some(format!("/hls/{id}/{track}/{}", seg.uri));
                                continue;
                            }
                        }
                    }
                }
            }
            Some(path) => {
                if stack.edge_get(path).await?.status().is_success() {
                    return Ok(t0.elapsed().as_secs_f64());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("never playable within 120 s")
}
