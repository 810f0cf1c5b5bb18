//! `streamctl abr-sim`: file loading, table and JSON output around
//! `stream_abr::sim`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use stream_abr::sim::synthetic::{scenarios, MarkovModel};
use stream_abr::sim::{run as run_sim, SimConfig, Trace};
use stream_abr::{AlgoKind, Ladder};

/// Arguments of `streamctl abr-sim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Algorithm name, comma-separated names, or `all`
    /// (rb, bba, bola, robust-mpc, robust-mpc-fixed, production).
    #[arg(long, default_value = "all")]
    algo: String,
    /// Directory of cooked traces (`time_s mbps` per line), e.g. shared/abr/norway.
    #[arg(long, required_unless_present_any = ["synthetic", "scenarios"])]
    traces: Option<PathBuf>,
    /// Use N seeded synthetic Markov traces instead of --traces.
    #[arg(long, conflicts_with = "traces")]
    synthetic: Option<usize>,
    /// Use the fixed scenarios (step_down, square_wave, near_outage) instead of --traces.
    #[arg(long, conflicts_with_all = ["traces", "synthetic"])]
    scenarios: bool,
    /// Directory with video_size_0..N (bytes per chunk, one a line).
    /// Default: the parent of --traces; with --synthetic/--scenarios: $ABR_DATA_DIR.
    #[arg(long)]
    video_sizes: Option<PathBuf>,
    /// Reports reach the algorithm this many ms after they were sent.
    #[arg(long, default_value_t = 0.0)]
    report_delay_ms: f64,
    /// Probability in [0, 1] that a report is lost.
    #[arg(long, default_value_t = 0.0)]
    report_loss: f64,
    /// Seed of report loss and synthetic traces.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Client capability cap (highest rendition index allowed).
    #[arg(long)]
    max_rendition: Option<usize>,
}

#[derive(Debug, Serialize)]
struct AlgoResult {
    algo: &'static str,
    production: bool,
    mean_qoe: f64,
    mean_bitrate_kbps: f64,
    rebuffer_s: f64,
    switches: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    traces: usize,
    results: Vec<AlgoResult>,
}

fn parse_algos(spec: &str) -> Result<Vec<AlgoKind>> {
    if spec == "all" {
        return Ok(AlgoKind::ALL.to_vec());
    }
    spec.split(',')
        .map(|n| AlgoKind::parse(n.trim()).map_err(anyhow::Error::from))
        .collect()
}

/// Reads every regular file of `dir` as a trace, in file-name order.
fn load_traces(dir: &Path) -> Result<Vec<Trace>> {
    let entries = fs::read_dir(dir)
        .with_context(|| format!("cannot read trace directory {}", dir.display()))?;
    let mut paths = Vec::new();
    for e in entries {
        let p = e
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if p.is_file() {
            paths.push(p);
        }
    }
    paths.sort();
    if paths.is_empty() {
        bail!("no trace files in {}", dir.display());
    }
    paths
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = fs::read_to_string(p)
                .with_context(|| format!("cannot read trace {}", p.display()))?;
            Trace::parse(name, &text).map_err(anyhow::Error::from)
        })
        .collect()
}

/// Pensieve's ladder with sizes from `dir/video_size_{0..5}`.
fn load_ladder(dir: &Path) -> Result<Ladder> {
    let ladder = Ladder::pensieve();
    let mut sizes = Vec::with_capacity(ladder.len());
    for r in 0..ladder.len() {
        let p = dir.join(format!("video_size_{r}"));
        let text = fs::read_to_string(&p)
            .with_context(|| format!("cannot read chunk sizes {}", p.display()))?;
        let row = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let first = l.split_whitespace().next().unwrap_or("");
                first
                    .parse::<u64>()
                    .with_context(|| format!("{}: bad chunk size {l:?}", p.display()))
            })
            .collect::<Result<Vec<u64>>>()?;
        sizes.push(row);
    }
    let ladder = ladder.with_chunk_sizes(sizes)?;
    Ok(ladder)
}

fn default_data_dir() -> Option<PathBuf> {
    std::env::var_os("ABR_DATA_DIR").map(PathBuf::from)
}

/// Runs the subcommand.
pub fn run(args: &Args) -> Result<()> {
    let algos = parse_algos(&args.algo)?;
    let (traces, sizes_dir) = if let Some(n) = args.synthetic {
        if n == 0 {
            bail!("--synthetic needs at least 1 trace");
        }
        (
            MarkovModel::default().generate(n, args.seed)?,
            args.video_sizes.clone().or_else(default_data_dir),
        )
    } else if args.scenarios {
        (
            scenarios(),
            args.video_sizes.clone().or_else(default_data_dir),
        )
    } else {
        let dir = args.traces.as_deref().context("--traces is required")?;
        if !dir.is_dir() {
            bail!("trace directory {} does not exist", dir.display());
        }
        let sizes = args
            .video_sizes
            .clone()
            .or_else(|| dir.parent().map(Path::to_path_buf));
        (load_traces(dir)?, sizes)
    };
    let ladder = match sizes_dir {
        Some(d) => load_ladder(&d)?,
        None => bail!(
            "--video-sizes is required with --synthetic/--scenarios unless ABR_DATA_DIR is set"
        ),
    };
    let cfg = SimConfig {
        report_delay_ms: args.report_delay_ms,
        report_loss: args.report_loss,
        seed: args.seed,
        max_rendition: args.max_rendition,
        ..SimConfig::default()
    };

    let mut results = Vec::with_capacity(algos.len());
    for kind in algos {
        let mut algo = kind.build();
        let s = run_sim(&traces, &ladder, &cfg, algo.as_mut())?;
        results.push(AlgoResult {
            algo: kind.name(),
            production: kind.is_production(),
            mean_qoe: s.mean_qoe,
            mean_bitrate_kbps: s.mean_bitrate_kbps,
            rebuffer_s: s.rebuffer_s,
            switches: s.switches,
        });
    }

    println!(
        "abr-sim: {} traces, report delay {} ms, report loss {}, seed {}",
        traces.len(),
        args.report_delay_ms,
        args.report_loss,
        args.seed
    );
    println!(
        "{:<18} {:>10} {:>14} {:>12} {:>10}",
        "algo", "mean QoE", "bitrate kbps", "rebuffer s", "switches"
    );
    for r in &results {
        let mark = if r.production { " *" } else { "" };
        println!(
            "{:<18} {:>10.3} {:>14.1} {:>12.3} {:>10.2}{mark}",
            r.algo, r.mean_qoe, r.mean_bitrate_kbps, r.rebuffer_s, r.switches
        );
    }
    println!(
        "{}",
        serde_json::to_string(&Report {
            traces: traces.len(),
            results
        })?
    );
    Ok(())
}
