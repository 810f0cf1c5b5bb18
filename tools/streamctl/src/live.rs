//! `streamctl live …`: start, stop and list live channels through the
//! control plane's gRPC API (`StartLive`, `StopLive`, `ListChannels`).

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use stream_proto::control::v1 as pb;
use stream_proto::control::v1::control_plane_client::ControlPlaneClient;
use tonic::transport::Channel;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Control plane gRPC URL.
    #[arg(
        long,
        global = true,
        env = "STREAMCTL_CONTROL",
        default_value = "http://127.0.0.1:50051"
    )]
    control: String,
    #[command(subcommand)]
    command: LiveCommand,
}

#[derive(Debug, Subcommand)]
enum LiveCommand {
    /// Start a channel; prints it.
    Start(StartArgs),
    /// Stop a running channel (waits for its worker, up to 15 s); prints it.
    Stop {
        /// Channel id (ULID).
        id: String,
    },
    /// List channels, newest first.
    Ls {
        /// Channels at most (1–100).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

/// Exactly one source.
#[derive(Debug, ClapArgs)]
#[group(required = true, multiple = false)]
struct SourceArgs {
    /// Play a stored video's uploaded source (its video id).
    #[arg(long, value_name = "VIDEO_ID")]
    file: Option<String>,
    /// Play the test pattern generator.
    #[arg(long)]
    generator: bool,
    /// Restream an http(s)/rtmp/rtsp/srt URL.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Latency {
    Normal,
    Low,
}

#[derive(Debug, ClapArgs)]
struct StartArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Loop the file instead of ending the channel at its end.
    #[arg(long = "loop")]
    looped: bool,
    /// Generator: mean seconds between events (1–3600; 0 = 10).
    #[arg(long, default_value_t = 0.0)]
    event_interval: f64,
    /// Generator: picture size WIDTHxHEIGHT, even, up to 1920x1080.
    #[arg(long, value_parser = parse_size)]
    size: Option<(u32, u32)>,
    /// Channel title.
    #[arg(long, default_value = "")]
    title: String,
    /// Encoder latency: low = no B-frames, no lookahead.
    #[arg(long, value_enum, default_value_t = Latency::Normal)]
    latency: Latency,
    /// DVR window, seconds (60–86400; 0 = 7200).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    dvr_window: f64,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?}: use WIDTHxHEIGHT"))?;
    let n = |v: &str| v.parse::<u32>().map_err(|e| format!("{v:?}: {e}"));
    Ok((n(w)?, n(h)?))
}

impl StartArgs {
    /// The gRPC request.
    ///
    /// Errors: an option that does not fit the source (`--loop` without
    /// `--file`, generator options without `--generator`).
    fn request(&self) -> Result<pb::StartLiveRequest> {
        use pb::start_live_request::Source;
        let s = &self.source;
        if self.looped && s.file.is_none() {
            anyhow::bail!("--loop needs --file");
        }
        if (self.size.is_some() || self.event_interval != 0.0) && !s.generator {
            anyhow::bail!("--size and --event-interval need --generator");
        }
        let source = if let Some(video_id) = &s.file {
            Source::File(pb::FileSource {
                video_id: video_id.clone(),
                r#loop: self.looped,
            })
        } else if let Some(url) = &s.url {
            Source::Pull(pb::PullSource { url: url.clone() })
        } else {
            let (width, height) = self.size.unwrap_or((0, 0));
            Source::Generator(pb::GeneratorSource {
                event_interval_s: self.event_interval,
                width,
                height,
            })
        };
        Ok(pb::StartLiveRequest {
            title: self.title.clone(),
            source: Some(source),
            latency: match self.latency {
                Latency::Normal => pb::LiveLatency::Normal,
                Latency::Low => pb::LiveLatency::Low,
            } as i32,
            dvr_window_s: self.dvr_window,
        })
    }
}

/// Run a `live` subcommand.
///
/// Errors: the control plane is unreachable or answers with an error
/// status (printed as `code: message`).
pub fn run(args: &Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: &Args) -> Result<()> {
    if let LiveCommand::Start(start) = &args.command {
        start.request()?;
    }
    let channel = tonic::transport::Endpoint::from_shared(args.control.clone())
        .context("--control is not a URL")?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("connect to the control plane at {}", args.control))?;
    let mut client = ControlPlaneClient::new(channel);
    match &args.command {
        LiveCommand::Start(start) => {
            let c = call(client.start_live(start.request()?).await)?;
            print_channel(&c);
        }
        LiveCommand::Stop { id } => {
            let c = call(
                client
                    .stop_live(pb::StopLiveRequest {
                        channel_id: id.clone(),
                    })
                    .await,
            )?;
            print_channel(&c);
        }
        LiveCommand::Ls { limit } => list(&mut client, *limit).await?,
    }
    Ok(())
}

fn call<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<T> {
    r.map(tonic::Response::into_inner)
        .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))
}

fn status_name(s: i32) -> &'static str {
    match pb::VideoStatus::try_from(s).unwrap_or(pb::VideoStatus::Unspecified) {
        pb::VideoStatus::Queued => "queued",
        pb::VideoStatus::Processing => "processing",
        pb::VideoStatus::Live => "live",
        pb::VideoStatus::Ready => "ready",
        pb::VideoStatus::Failed => "failed",
        pb::VideoStatus::Unspecified => "unknown",
    }
}

fn latency_name(l: i32) -> &'static str {
    match pb::LiveLatency::try_from(l) {
        Ok(pb::LiveLatency::Low) => "low",
        _ => "normal",
    }
}

fn print_channel(c: &pb::Channel) {
    println!("id:           {}", c.id);
    println!("title:        {}", c.title);
    println!("status:       {}", status_name(c.status));
    println!("source:       {}", c.source);
    println!("latency:      {}", latency_name(c.latency));
    println!("dvr window:   {} s", c.dvr_window_s);
    println!("loop:         {}", c.r#loop);
    if !c.playback_url.is_empty() {
        println!("playback url: {}", c.playback_url);
    }
    if !c.error.is_empty() {
        println!("error:        {}", c.error);
    }
}

async fn list(client: &mut ControlPlaneClient<Channel>, limit: u32) -> Result<()> {
    let resp = call(
        client
            .list_channels(pb::ListChannelsRequest {
                page_size: limit,
                page_token: String::new(),
            })
            .await,
    )?;
    println!(
        "{:<26}  {:<10}  {:<7}  {:<24}  TITLE",
        "ID", "STATUS", "LATENCY", "SOURCE"
    );
    for c in &resp.channels {
        println!(
            "{:<26}  {:<10}  {:<7}  {:<24}  {}",
            c.id,
            status_name(c.status),
            latency_name(c.latency),
            c.source,
            c.title
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        live: Args,
    }

    fn start(args: &[&str]) -> Result<pb::StartLiveRequest> {
        let cli = Cli::try_parse_from(std::iter::once("live").chain(args.iter().copied()))?;
        match cli.live.command {
            LiveCommand::Start(s) => s.request(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn start_arguments() {
        use pb::start_live_request::Source;
        let r = start(&["start", "--file", "V", "--loop", "--latency", "low"]).unwrap();
        assert!(matches!(r.source, Some(Source::File(f)) if f.video_id == "V" && f.r#loop));
        assert_eq!(r.latency, pb::LiveLatency::Low as i32);
        let r = start(&[
            "start",
            "--generator",
            "--size",
            "640x360",
            "--dvr-window",
            "600",
        ])
        .unwrap();
        assert!(
            matches!(r.source, Some(Source::Generator(g)) if (g.width, g.height) == (640, 360))
        );
        assert_eq!(r.dvr_window_s, 600.0);
        let r = start(&["start", "--url", "rtmp://h/a", "--title", "t"]).unwrap();
        assert!(matches!(r.source, Some(Source::Pull(p)) if p.url == "rtmp://h/a"));
        // Exactly one source; --loop only with --file.
        assert!(start(&["start"]).is_err());
        assert!(start(&["start", "--generator", "--url", "rtmp://h/a"]).is_err());
        assert!(start(&["start", "--generator", "--loop"]).is_err());
        assert!(start(&["start", "--file", "V", "--size", "640x360"]).is_err());
        assert!(start(&["start", "--generator", "--size", "640"]).is_err());
    }
}
