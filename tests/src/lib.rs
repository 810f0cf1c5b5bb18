//! The whole platform in one process for tests: control, ingest (with a
//! worker), edge and marker on `127.0.0.1:0`, a unique NATS/Redis prefix,
//! a temporary media store and scratch directory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap_free::common;
use futures::StreamExt;
use stream_bus::{decode_event, video_event::Kind, VideoEvent};
use stream_runtime::CancellationToken;
use stream_testkit::{env, unique_prefix, workspace_root};
use tokio::net::TcpListener;

/// Config building without going through clap's argv parsing.
mod clap_free {
    pub fn common(prefix: &str, store: &std::path::Path) -> stream_runtime::CommonConfig {
        stream_runtime::CommonConfig {
            nats_url: stream_testkit::env::nats_url(),
            redis_url: stream_testkit::env::redis_url(),
            bus_prefix: prefix.to_string(),
            redis_prefix: prefix.to_string(),
            media_store: store.to_string_lossy().into_owned(),
            log_format: "text".into(),
        }
    }
}

/// Options for [`Stack::start`].
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// Let URL imports reach loopback (the SSRF guard's escape hatch).
    pub allow_private_urls: bool,
    /// Ladder override, e.g. `"720:3000k,360:800k"`.
    pub ladder: Option<String>,
    /// Concurrent uploads the ingest API accepts (default 8).
    pub max_uploads: Option<usize>,
    /// Control plane session settings (defaults when `None`):
    /// (ttl ms, heartbeat ms, max sessions, max per video).
    pub sessions: Option<(u64, u64, u64, u64)>,
    /// Transcoder child binary (default: [`test_transcoder`]).
    pub transcoder_bin: Option<std::path::PathBuf>,
    /// `JOB_MAX_WALL_S` (default 300).
    pub job_max_wall_s: Option<f64>,
    /// Ingest workers (default 1).
    pub workers: Option<usize>,
    /// Live channels ingest runs at once (default 2).
    pub live_channels: Option<usize>,
    /// `LIVE_IDLE_STOP_S` (default 60).
    pub live_idle_stop_s: Option<f64>,
    /// Share another stack's NATS/Redis prefix (default: a new one).
    pub prefix: Option<String>,
    /// Share another stack's media store directory.
    pub media_store: Option<std::path::PathBuf>,
    /// Control plane `LIVE_MAX_CHANNELS` (default 8).
    pub live_max_channels: Option<u64>,
    /// Edge `EDGE_NATIVE_MAX_CONNECTIONS` (default 4096).
    pub native_max_connections: Option<usize>,
    /// Turn on the edge's kn-sock compatible ports (free loopback ports,
    /// in [`Stack::knsock`]).
    pub knsock: bool,
    /// `EDGE_KNSOCK_MAX_CONNECTIONS` of the stack (default 64).
    pub knsock_max_connections: Option<usize>,
}

/// The edge's kn-sock compatible ports of a stack.
#[derive(Debug, Clone, Copy)]
pub struct KnSockPorts {
    pub video: SocketAddr,
    pub audio: SocketAddr,
    pub control: SocketAddr,
}

/// The `test-transcoder` binary of this package: beside the running test
/// or bench executable, or one directory up (tests run from `deps/`).
pub fn test_transcoder() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent();
    while let Some(d) = dir {
        let candidate = d.join("test-transcoder");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d
            .parent()
            .filter(|p| p.ends_with("debug") || p.ends_with("release") || p.ends_with("target"));
    }
    Err(anyhow!(
        "test-transcoder binary not found near {}: build it with `cargo build -p stream-tests --bins`",
        exe.display()
    ))
}

/// Admin bearer token of test stacks.
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// Playback token secret of test stacks.
pub const TOKEN_SECRET: &str = "test-token-secret-0123456789";

/// A running stack.
pub struct Stack {
    pub prefix: String,
    pub edge: String,
    pub ingest: String,
    pub control: String,
    pub marker: String,
    /// The edge's native TCP stream, `host:port`.
    pub native: SocketAddr,
    /// The kn-sock compatible ports, when [`StackOptions::knsock`].
    pub knsock: Option<KnSockPorts>,
    pub nats: stream_bus::async_nats::Client,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    store: PathBuf,
    _dir: tempfile::TempDir,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn listener() -> Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

impl Stack {
    /// Start every service; returns once each answers its health check.
    pub async fn start(opts: StackOptions) -> Result<Stack> {
        stream_runtime::init_tracing("text");
        let prefix = opts.prefix.clone().unwrap_or_else(unique_prefix);
        let dir = tempfile::tempdir()?;
        let store = opts
            .media_store
            .clone()
            .unwrap_or_else(|| dir.path().join("media"));
        let scratch = dir.path().join("scratch");
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();

        let (l, control_addr) = listener().await?;
        let (ttl, heartbeat, max_sessions, max_per_video) =
            opts.sessions.unwrap_or((30_000, 10_000, 100_000, 20_000));
        let control_cfg = stream_control::ControlConfig {
            common: common(&prefix, &store),
            grpc_addr: control_addr,
            projector: true,
            session_ttl_ms: ttl,
            heartbeat_ms: heartbeat,
            max_sessions,
            max_sessions_per_video: max_per_video,
            max_reports_per_s: 10.0,
            token_secret: Some(TOKEN_SECRET.into()),
            token_ttl_s: 3600,
            admin_token: Some(ADMIN_TOKEN.into()),
            edge_public_url: "http://edge.test".into(),
            tcp_endpoint: "edge.test:9000".into(),
            segment_ms: 2000.0,
            live_max_channels: opts.live_max_channels.unwrap_or(8),
        };
        control_cfg.validate().map_err(|e| anyhow!(e))?;
        let s = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = stream_control::run(control_cfg, l, s).await {
                eprintln!("control stopped: {e:#}");
            }
        }));

        let (l, ingest_addr) = listener().await?;
        let ingest_cfg = stream_ingest::IngestConfig {
            common: common(&prefix, &store),
            http_addr: ingest_addr,
            max_upload_bytes: 64 << 20,
            max_concurrent_uploads: opts.max_uploads.unwrap_or(8),
            workers: opts.workers.unwrap_or(1),
            scratch_dir: scratch,
            ladder: opts
                .ladder
                .as_deref()
                .unwrap_or("1080:5000k,720:3000k,480:1400k,360:800k,240:400k")
                .parse()
                .map_err(|e| anyhow!("{e}"))?,
            segment_seconds: 2.0,
            scene_threshold: stream_media::scene::DEFAULT_THRESHOLD,
            x264_preset: "veryfast".into(),
            x264_threads: 0,
            allow_private_urls: opts.allow_private_urls,
            cors_origins: vec!["http://localhost:8080".into()],
            transcoder_bin: Some(match &opts.transcoder_bin {
                Some(p) => p.clone(),
                None => test_transcoder()?,
            }),
            transcoder_max_memory_bytes: 8 << 30,
            job_max_wall_s: opts.job_max_wall_s.unwrap_or(300.0),
            job_wall_per_media_s: 10.0,
            live_channels: opts.live_channels.unwrap_or(2),
            live_dvr_window_s: 7200.0,
            live_part_seconds: 0.333,
            live_low_part_seconds: 0.2,
            live_idle_stop_s: opts.live_idle_stop_s.unwrap_or(60.0),
        };
        ingest_cfg.validate().map_err(|e| anyhow!(e))?;
        let s = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = stream_ingest::run(ingest_cfg, l, s).await {
                eprintln!("ingest stopped: {e:#}");
            }
        }));

        let (marker_listener, marker_addr) = listener().await?;
        let (l, edge_addr) = listener().await?;
        let (native_listener, native_addr) = listener().await?;
        let knsock = if opts.knsock {
            // Free ports: bound here, released, bound again by the edge.
            let mut addrs = Vec::new();
            for _ in 0..3 {
                addrs.push(listener().await?);
            }
            let ports = KnSockPorts {
                video: addrs[0].1,
                audio: addrs[1].1,
                control: addrs[2].1,
            };
            drop(addrs);
            Some(ports)
        } else {
            None
        };
        let edge_cfg = stream_edge::EdgeConfig {
            common: common(&prefix, &store),
            http_addr: edge_addr,
            static_dir: workspace_root().join("frontend/dist"),
            cors_origins: vec!["http://allowed.example".into()],
            control_url: format!("http://{control_addr}"),
            ingest_public_url: format!("http://{ingest_addr}"),
            marker_public_url: format!("http://{marker_addr}"),
            max_concurrent_requests: 256,
            max_blocked_requests: 4096,
            native_addr,
            native_max_connections: opts.native_max_connections.unwrap_or(4096),
            token_secret: Some(TOKEN_SECRET.into()),
            knsock: stream_edge::config::KnSockConfig {
                video_addr: knsock.map(|k| k.video),
                audio_addr: knsock.map(|k| k.audio),
                control_addr: knsock.map(|k| k.control),
                max_connections: opts.knsock_max_connections.unwrap_or(64),
                scratch_dir: Some(dir.path().join("knsock")),
            },
        };
        let s = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = stream_edge::run_with(edge_cfg, l, native_listener, s).await {
                eprintln!("edge stopped: {e:#}");
            }
        }));

        let l = marker_listener;
        let marker_cfg = stream_marker::MarkerConfig {
            common: common(&prefix, &store),
            http_addr: marker_addr,
            cors_origins: vec![
                "http://allowed.example".into(),
                format!("http://{edge_addr}"),
            ],
            max_sse: 64,
        };
        let s = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = stream_marker::run(marker_cfg, l, s).await {
                eprintln!("marker stopped: {e:#}");
            }
        }));

        let nats = stream_bus::async_nats::connect(env::nats_url()).await?;
        let stack = Stack {
            prefix,
            edge: format!("http://{edge_addr}"),
            ingest: format!("http://{ingest_addr}"),
            control: format!("http://{control_addr}"),
            marker: format!("http://{marker_addr}"),
            native: native_addr,
            knsock,
            nats,
            http: reqwest::Client::new(),
            shutdown,
            store: store.clone(),
            _dir: dir,
            tasks,
        };
        for base in [&stack.ingest, &stack.edge, &stack.marker] {
            stack.wait_ready(&format!("{base}/readyz")).await?;
        }
        Ok(stack)
    }

    async fn wait_ready(&self, url: &str) -> Result<()> {
        for _ in 0..100 {
            if let Ok(r) = self.http.get(url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{url} never became ready")
    }

    /// Subscribe to terminal events (`ready`, `failed`) of every video.
    pub async fn watch_outcomes(&self) -> Result<Outcomes> {
        let sub = self
            .nats
            .subscribe(format!("{}.video.*.*", self.prefix))
            .await?;
        Ok(Outcomes {
            sub,
            seen: HashMap::new(),
        })
    }

    /// Upload a file as the raw request body.
    pub async fn upload_raw(&self, path: &Path, title: &str) -> Result<reqwest::Response> {
        let bytes = tokio::fs::read(path).await?;
        self.upload_bytes(bytes, "video/mp4", title).await
    }

    /// Upload bytes as the raw body with a content type.
    pub async fn upload_bytes(
        &self,
        bytes: Vec<u8>,
        content_type: &str,
        title: &str,
    ) -> Result<reqwest::Response> {
        Ok(self
            .http
            .post(format!("{}/v1/videos", self.ingest))
            .query(&[("title", title)])
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await?)
    }

    /// Upload and return the new id (asserting 202).
    pub async fn upload_ok(&self, bytes: Vec<u8>, title: &str) -> Result<String> {
        let resp = self.upload_bytes(bytes, "video/mp4", title).await?;
        if resp.status() != reqwest::StatusCode::ACCEPTED {
            bail!("upload {title}: {} {}", resp.status(), resp.text().await?);
        }
        let body: serde_json::Value = resp.json().await?;
        body["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no id in {body}"))
    }

    /// Upload a sample (title = its file stem) and wait until it is ready.
    ///
    /// Errors: the upload is refused, the job fails (with its reason), or
    /// no outcome within 240 s.
    pub async fn ingest_ready(&self, sample: &str) -> Result<String> {
        let mut outcomes = self.watch_outcomes().await?;
        let bytes = tokio::fs::read(stream_testkit::samples::path(sample)).await?;
        let id = self
            .upload_ok(bytes, sample.trim_end_matches(".mp4"))
            .await?;
        match outcomes.wait(&id, Duration::from_secs(240)).await? {
            Outcome::Ready(_) => Ok(id),
            Outcome::Failed(f) => bail!("{sample} failed: {}", f.reason),
        }
    }

    /// GET a path on the edge.
    /// Put a video straight into the catalogue (accepted + started with
    /// `duration_s`), without transcoding: enough for the marker API.
    pub async fn register_video(&self, duration_s: f64) -> Result<String> {
        let catalog = stream_catalog::Catalog::connect(&env::redis_url(), &self.prefix).await?;
        let id = ulid::Ulid::new().to_string();
        let accepted = stream_bus::event(
            &id,
            Kind::Accepted(stream_bus::media::Accepted {
                title: "registered".into(),
                size_bytes: 0,
                source: "test".into(),
                channel: None,
            }),
        );
        let started = stream_bus::event(
            &id,
            Kind::Started(stream_bus::media::Started {
                duration_s,
                renditions: Vec::new(),
                attempt: 1,
            }),
        );
        catalog.apply(&accepted).await?;
        catalog.apply(&started).await?;
        Ok(id)
    }

    /// Start a live channel the way the control plane does (an `Accepted`
    /// event with the channel's info, then a `LiveJob` on the live work
    /// queue); returns its id.
    pub async fn start_channel(
        &self,
        title: &str,
        source: stream_bus::media::live_job::Source,
        latency: stream_bus::media::LiveLatency,
    ) -> Result<String> {
        use stream_bus::media;
        let bus = stream_bus::Bus::connect(&env::nats_url(), &self.prefix).await?;
        let id = ulid::Ulid::new().to_string();
        let accepted = stream_bus::event(
            &id,
            Kind::Accepted(media::Accepted {
                title: title.into(),
                size_bytes: 0,
                source: "live:test".into(),
                channel: Some(media::ChannelInfo {
                    latency: latency as i32,
                    dvr_window_s: 7200.0,
                    r#loop: false,
                }),
            }),
        );
        bus.publish_event(&accepted).await?;
        bus.publish_live_job(&stream_bus::LiveJob {
            video_id: id.clone(),
            title: title.into(),
            source: Some(source),
            latency: latency as i32,
            dvr_window_s: 0.0,
            submitted_at_ms: 0,
        })
        .await?;
        Ok(id)
    }

    /// Wait (bounded) until a channel's master playlist is served.
    pub async fn wait_live(&self, id: &str, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self
                .edge_get(&format!("/hls/{id}/master.m3u8"))
                .await?
                .status()
                .is_success()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("channel {id} not live within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `POST {marker}/v1/videos/{id}/markers` with a JSON body.
    pub async fn post_markers(
        &self,
        id: &str,
        body: &serde_json::Value,
    ) -> Result<reqwest::Response> {
        Ok(self
            .http
            .post(format!("{}/v1/videos/{id}/markers", self.marker))
            .json(body)
            .send()
            .await?)
    }

    /// Open the SSE change feed of a video, optionally resuming.
    pub async fn marker_events(&self, id: &str, last_event_id: Option<&str>) -> Result<SseReader> {
        let mut req = self
            .http
            .get(format!("{}/v1/videos/{id}/markers/events", self.marker))
            .header("accept", "text/event-stream");
        if let Some(l) = last_event_id {
            req = req.header("last-event-id", l);
        }
        let resp = req.send().await?;
        if !resp.status().is_success() {
            bail!("events: {}", resp.status());
        }
        Ok(SseReader {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        })
    }

    pub async fn edge_get(&self, path: &str) -> Result<reqwest::Response> {
        Ok(self.http.get(format!("{}{path}", self.edge)).send().await?)
    }

    /// Download a video's published HLS through the edge into `dir`,
    /// mirroring the layout; returns the master playlist.
    pub async fn download_hls(&self, id: &str, dir: &Path) -> Result<m3u8_rs::MasterPlaylist> {
        let master_bytes = self.fetch_ok(&format!("/hls/{id}/master.m3u8")).await?;
        let master = match m3u8_rs::parse_playlist_res(&master_bytes) {
            Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => m,
            other => bail!("master playlist does not parse: {other:?}"),
        };
        let mut uris: Vec<String> = master.variants.iter().map(|v| v.uri.clone()).collect();
        uris.extend(master.alternatives.iter().filter_map(|a| a.uri.clone()));
        for uri in uris {
            let track = uri.split('/').next().unwrap_or_default().to_string();
            let track_dir = dir.join(&track);
            tokio::fs::create_dir_all(&track_dir).await?;
            let text = self.fetch_ok(&format!("/hls/{id}/{uri}")).await?;
            tokio::fs::write(track_dir.join("index.m3u8"), &text).await?;
            let media = match m3u8_rs::parse_playlist_res(&text) {
                Ok(m3u8_rs::Playlist::MediaPlaylist(m)) => m,
                other => bail!("{uri} does not parse: {other:?}"),
            };
            let mut files: Vec<String> = media.segments.iter().map(|s| s.uri.clone()).collect();
            if let Some(map) = media.segments.iter().find_map(|s| s.map.as_ref()) {
                files.push(map.uri.clone());
            }
            for f in files {
                let bytes = self.fetch_ok(&format!("/hls/{id}/{track}/{f}")).await?;
                tokio::fs::write(track_dir.join(&f), &bytes).await?;
            }
        }
        Ok(master)
    }

    /// The media store directory of this stack (`videos/<id>/…`).
    pub fn media_store(&self) -> PathBuf {
        self.store.clone()
    }

    /// Stop every service (as SIGTERM would) and leave the streams, keys
    /// and files to the stacks that share them; the returned directory
    /// holds this stack's files (the media store) until dropped.
    pub async fn shut_down_only(mut self) -> tempfile::TempDir {
        self.shutdown.cancel();
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
        self._dir
    }

    async fn fetch_ok(&self, path: &str) -> Result<bytes::Bytes> {
        let resp = self.edge_get(path).await?;
        if !resp.status().is_success() {
            bail!("GET {path}: {}", resp.status());
        }
        Ok(resp.bytes().await?)
    }

    /// Stop every service, wait for them, and remove this stack's streams
    /// and Redis keys.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
        if let Ok(bus) = stream_bus::Bus::connect(&env::nats_url(), &self.prefix).await {
            let _ = bus.delete_streams().await;
        }
        if let Ok(client) = redis::Client::open(env::redis_url()) {
            if let Ok(mut con) = client.get_multiplexed_async_connection().await {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}:*", self.prefix))
                    .query_async(&mut con)
                    .await
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut con).await;
                }
            }
        }
    }
}

/// Terminal outcomes of videos, from NATS.
/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// A minimal `text/event-stream` reader (comments and keep-alives skipped).
pub struct SseReader {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl SseReader {
    /// The next event, or an error after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Result<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent {
                    id: None,
                    event: "message".into(),
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some((k, v)) = line.split_once(':') {
                        let v = v.strip_prefix(' ').unwrap_or(v);
                        match k {
                            "id" => ev.id = Some(v.to_string()),
                            "event" => ev.event = v.to_string(),
                            "data" => {
                                if !ev.data.is_empty() {
                                    ev.data.push('\n');
                                }
                                ev.data.push_str(v);
                            }
                            _ => continue,
                        }
                        any = true;
                    }
                }
                if any {
                    return Ok(ev);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .context("no SSE event in time")?
                .ok_or_else(|| anyhow!("event stream ended"))??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

pub struct Outcomes {
    sub: stream_bus::async_nats::Subscriber,
    seen: HashMap<String, Vec<VideoEvent>>,
}

/// How a video ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ready(stream_bus::media::Ready),
    Failed(stream_bus::media::Failed),
}

impl Outcomes {
    /// Wait (bounded) for `id`'s `ready` or `failed` event.
    pub async fn wait(&mut self, id: &str, timeout: Duration) -> Result<Outcome> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(evs) = self.seen.get(id) {
                for ev in evs {
                    match &ev.kind {
                        Some(Kind::Ready(r)) => return Ok(Outcome::Ready(r.clone())),
                        Some(Kind::Failed(f)) => return Ok(Outcome::Failed(f.clone())),
                        _ => {}
                    }
                }
            }
            let msg = tokio::time::timeout_at(deadline, self.sub.next())
                .await
                .with_context(|| format!("no outcome for {id} within {timeout:?}"))?
                .ok_or_else(|| anyhow!("subscription closed"))?;
            let ev = decode_event(&msg.payload)?;
            self.seen.entry(ev.video_id.clone()).or_default().push(ev);
        }
    }

    /// Every event seen so far for `id`, in arrival order.
    pub fn events(&self, id: &str) -> &[VideoEvent] {
        self.seen.get(id).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Run a browser test script of `frontend/tests` (playwright-core on
/// Debian's Chromium) with `env`, requiring exit 0 and a final
/// `N passed, 0 failed` line. Returns its stdout.
pub async fn run_browser_script(script: &str, env: Vec<(&'static str, String)>) -> Result<String> {
    let frontend = workspace_root().join("frontend");
    if !(frontend.join("dist/index.html").is_file()
        && frontend.join("node_modules/playwright-core").is_dir())
    {
        bail!("front end not built: run `make frontend` (npm ci && npm run build in frontend/)");
    }
    let script = script.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(format!("tests/{script}"))
            .current_dir(&frontend)
            .envs(env)
            .output()
    })
    .await?
    .context("run node (apt-get install nodejs)")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    if !out.status.success() || !stdout.contains(" passed, 0 failed") {
        bail!("browser test failed:\n{stdout}\n{stderr}");
    }
    Ok(stdout)
}

/// Generate a file with the ffmpeg CLI (test fixtures only; the platform
/// itself never spawns ffmpeg).
pub fn ffmpeg(args: &[&str]) -> Result<()> {
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .context("run ffmpeg (apt-get install ffmpeg)")?;
    if !status.success() {
        bail!("ffmpeg {args:?} failed");
    }
    Ok(())
}

/// A scratch path for fixtures.
pub fn fixture_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("stream-fixtures-{}", unique_prefix()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// kn-sock 0.3.0's own `LiveStreamServer` (the PyPI package in the venv
/// that `scripts/deps.sh` makes; `KNSOCK_PYTHON` overrides the Python),
/// playing `video`, with its default port layout: video `port`, audio
/// `port + 1`, control `port + 10`. Killed when dropped.
pub struct KnSockServer {
    pub child: tokio::process::Child,
    /// The video port's address.
    pub video: SocketAddr,
    _dir: tempfile::TempDir,
}

impl KnSockServer {
    /// The venv's Python.
    pub fn python() -> std::path::PathBuf {
        match std::env::var_os("KNSOCK_PYTHON") {
            Some(p) => p.into(),
            None => workspace_root().join(".cache/knsock-venv/bin/python"),
        }
    }

    /// Start it on free ports and wait (30 s at most) until it listens.
    pub async fn start(video: &Path) -> Result<KnSockServer> {
        use tokio::io::AsyncBufReadExt;
        let python = Self::python();
        let dir = tempfile::tempdir()?;
        let free = |q: u16| std::net::TcpListener::bind(("127.0.0.1", q)).is_ok();
        let mut port = 0;
        for _ in 0..100 {
            let p = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            if p < 65_000 && free(p + 1) && free(p + 10) {
                port = p;
                break;
            }
        }
        if port == 0 {
            bail!("no free ports for kn-sock's server");
        }
        // pyaudio is stubbed: no sound device here, and the server only
        // names its constants.
        let script = format!(
            "import sys, types, time\n\
             sys.modules['pyaudio'] = types.SimpleNamespace(paInt16=8, PyAudio=None)\n\
             from kn_sock.live_stream import LiveStreamServer\n\
             s = LiveStreamServer([{path:?}], host='127.0.0.1', video_port={port}, audio_port={a}, control_port={c})\n\
             s.start(); print('ready', flush=True)\n\
             time.sleep(1e9)\n",
            path = video.display().to_string(),
            a = port + 1,
            c = port + 10,
        );
        let mut child = tokio::process::Command::new(&python)
            .args(["-c", &script])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("{} (run scripts/deps.sh)", python.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::io::BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .map_err(|_| anyhow!("kn-sock's server did not start within 30 s"))??;
        if line.trim() != "ready" {
            bail!("kn-sock's server did not start: {line:?}");
        }
        Ok(KnSockServer {
            child,
            video: format!("127.0.0.1:{port}").parse()?,
            _dir: dir,
        })
    }
}
