//! Ingest configuration (flags with environment fallbacks).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use stream_media::Ladder;
use stream_runtime::CommonConfig;

/// `ingest` settings.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ingest",
    about = "Uploads, transcode workers and HLS publishing"
)]
pub struct IngestConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    /// HTTP API listen address.
    #[arg(long, env = "INGEST_HTTP_ADDR", default_value = "0.0.0.0:8081")]
    pub http_addr: SocketAddr,
    /// Largest accepted upload or import, bytes (default 4 GiB).
    #[arg(long, env = "INGEST_MAX_UPLOAD_BYTES", default_value_t = 4 << 30)]
    pub max_upload_bytes: u64,
    /// Uploads streaming in at once; more get 503.
    #[arg(long, env = "INGEST_MAX_CONCURRENT_UPLOADS", default_value_t = 16)]
    pub max_concurrent_uploads: usize,
    /// Transcode jobs this process runs at once (0 = API only).
    #[arg(long, env = "INGEST_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Local scratch space for sources and packager output.
    #[arg(long, env = "INGEST_SCRATCH_DIR", default_value = "var/scratch")]
    pub scratch_dir: PathBuf,
    /// ABR ladder, `HEIGHT:BITRATE,...`.
    #[arg(
        long,
        env = "INGEST_LADDER",
        default_value = "1080:5000k,720:3000k,480:1400k,360:800k,240:400k"
    )]
    pub ladder: Ladder,
    /// Segment and GOP duration, seconds.
    #[arg(long, env = "INGEST_SEGMENT_SECONDS", default_value_t = 2.0)]
    pub segment_seconds: f64,
    /// Scene-change detector threshold (score 0–100, libavfilter `scdet`
    /// scale); detected cuts become `scene` markers. 0 disables it.
    #[arg(long, env = "INGEST_SCENE_THRESHOLD", default_value_t = stream_media::scene::DEFAULT_THRESHOLD)]
    pub scene_threshold: f64,
    /// libx264 preset.
    #[arg(long, env = "INGEST_X264_PRESET", default_value = "veryfast")]
    pub x264_preset: String,
    /// libx264 threads per rung (0 = x264 decides).
    #[arg(long, env = "INGEST_X264_THREADS", default_value_t = 0)]
    pub x264_threads: usize,
    /// Allow URL imports from loopback/private/link-local addresses (SSRF
    /// guard off). Only for trusted networks and tests.
    #[arg(long, env = "INGEST_ALLOW_PRIVATE_URLS", default_value_t = false)]
    pub allow_private_urls: bool,
    /// The transcoder binary each job runs as a child process (default:
    /// `transcoder` beside this executable).
    #[arg(long, env = "INGEST_TRANSCODER_BIN")]
    pub transcoder_bin: Option<PathBuf>,
    /// Address-space limit of each transcoder child, bytes (default 8 GiB).
    #[arg(long, env = "INGEST_TRANSCODER_MAX_MEMORY", default_value_t = 8 << 30)]
    pub transcoder_max_memory_bytes: u64,
    /// Wall-clock budget of a job, seconds, before any media is counted.
    #[arg(long, env = "JOB_MAX_WALL_S", default_value_t = 300.0)]
    pub job_max_wall_s: f64,
    /// Wall-clock budget added per second of media (the longer of the
    /// declared duration and what was decoded), seconds.
    #[arg(long, env = "JOB_WALL_PER_MEDIA_S", default_value_t = 10.0)]
    pub job_wall_per_media_s: f64,
    /// Live channels this process runs at once (0 = none).
    #[arg(long, env = "INGEST_LIVE_CHANNELS", default_value_t = 4)]
    pub live_channels: usize,
    /// Seconds of every live rendition kept and listed (the DVR window),
    /// unless the channel sets its own.
    #[arg(long, env = "LIVE_DVR_WINDOW_S", default_value_t = 7200.0)]
    pub live_dvr_window_s: f64,
    /// Nominal LL-HLS part duration, seconds.
    #[arg(long, env = "LIVE_PART_SECONDS", default_value_t = 0.333)]
    pub live_part_seconds: f64,
    /// Nominal part duration of `low` latency channels, seconds (MediaMTX
    /// uses 200 ms parts).
    #[arg(long, env = "LIVE_LOW_PART_SECONDS", default_value_t = 0.2)]
    pub live_low_part_seconds: f64,
    /// A pulled channel whose viewers (control-plane sessions) have all
    /// been gone this long stops by itself, seconds (0 = never).
    #[arg(long, env = "LIVE_IDLE_STOP_S", default_value_t = 60.0)]
    pub live_idle_stop_s: f64,
    /// Browser origins allowed to call the API (comma-separated).
    #[arg(
        long,
        env = "INGEST_CORS_ORIGINS",
        default_value = "http://localhost:8080,http://127.0.0.1:8080",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
}

/// x264 presets libx264 accepts.
const PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

impl IngestConfig {
    /// Check values clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        self.common.validate()?;
        if !(0.5..=10.0).contains(&self.segment_seconds) {
            return Err(format!(
                "INGEST_SEGMENT_SECONDS={}: use 0.5 to 10",
                self.segment_seconds
            ));
        }
        if !(0.0..=100.0).contains(&self.scene_threshold) {
            return Err(format!(
                "INGEST_SCENE_THRESHOLD={}: use 0 (off) to 100",
                self.scene_threshold
            ));
        }
        if !PRESETS.contains(&self.x264_preset.as_str()) {
            return Err(format!(
                "INGEST_X264_PRESET={:?}: not an x264 preset",
                self.x264_preset
            ));
        }
        if self.max_upload_bytes == 0 || self.max_concurrent_uploads == 0 {
            return Err(
                "INGEST_MAX_UPLOAD_BYTES and INGEST_MAX_CONCURRENT_UPLOADS must be > 0".into(),
            );
        }
        if self.workers > 16 {
            return Err(format!("INGEST_WORKERS={}: at most 16", self.workers));
        }
        stream_runtime::parse_origins("INGEST_CORS_ORIGINS", &self.cors_origins)?;
        if !(self.job_max_wall_s >= 1.0 && self.job_wall_per_media_s >= 0.0) {
            return Err(format!(
                "JOB_MAX_WALL_S={} and JOB_WALL_PER_MEDIA_S={}: use ≥ 1 and ≥ 0",
                self.job_max_wall_s, self.job_wall_per_media_s
            ));
        }
        if self.live_channels > 64 {
            return Err(format!(
                "INGEST_LIVE_CHANNELS={}: at most 64",
                self.live_channels
            ));
        }
        if !(60.0..=86_400.0).contains(&self.live_dvr_window_s) {
            return Err(format!(
                "LIVE_DVR_WINDOW_S={}: use 60 to 86400",
                self.live_dvr_window_s
            ));
        }
        for (name, v) in [
            ("LIVE_PART_SECONDS", self.live_part_seconds),
            ("LIVE_LOW_PART_SECONDS", self.live_low_part_seconds),
        ] {
            if !(0.1..=self.segment_seconds / 2.0).contains(&v) {
                return Err(format!("{name}={v}: use 0.1 to half a segment"));
            }
        }
        if self.transcoder_max_memory_bytes < (256 << 20) {
            return Err("INGEST_TRANSCODER_MAX_MEMORY: at least 256 MiB".into());
        }
        if self.workers > 0 {
            let bin = self.transcoder_path().map_err(|e| e.to_string())?;
            if !crate::transcoder::is_executable(&bin) {
                return Err(format!(
                    "transcoder binary {} is missing or not executable (INGEST_TRANSCODER_BIN)",
                    bin.display()
                ));
            }
        }
        Ok(())
    }

    /// The transcoder binary to run: `INGEST_TRANSCODER_BIN`, or
    /// `transcoder` beside this executable.
    pub fn transcoder_path(&self) -> std::io::Result<PathBuf> {
        match &self.transcoder_bin {
            Some(p) => Ok(p.clone()),
            None => crate::transcoder::Transcoder::beside_current_exe(),
        }
    }
}
