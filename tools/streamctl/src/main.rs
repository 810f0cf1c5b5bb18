//! `streamctl` — operator and developer command-line tool.
//!
//! Subcommands:
//! - `abr-sim`: run ABR algorithms through the trace-driven simulator of
//!   `stream_abr::sim` and print a table plus one JSON summary line.
//! - `live start|stop|ls`: live channels through the control plane's gRPC
//!   API.
//! - `play tcp://HOST:9000/<id>`: the native stream's client (jitter
//!   buffer, decoding, feedback, stats, one JSON summary line).

use streamctl::{abr_sim, live, play};

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "streamctl", version, about = "Streaming platform control tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate ABR algorithms on throughput traces (Pensieve fixed_env semantics).
    AbrSim(abr_sim::Args),
    /// Live channels: start, stop, list (control plane gRPC).
    Live(live::Args),
    /// Play a video or channel over the native TCP stream.
    Play(play::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::AbrSim(args) => abr_sim::run(&args),
        Command::Live(args) => live::run(&args),
        Command::Play(args) => play::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamctl: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
