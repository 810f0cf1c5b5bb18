//! Live channel workers: pull [`LiveJob`]s from their own JetStream work
//! queue, run the channel ([`stream_media::live`]) and publish it as LL-HLS
//! while it runs.
//!
//! * A worker holds a channel's job with in-progress acks for as long as
//!   the channel runs, and acks it after the recording is `ready`.
//! * Publishing order per part: the part's file, then (when it ends a
//!   segment) the segment's file, then the media playlist, then a core
//!   NATS notification on `P.live.<id>.<track>.part` that wakes the edge's
//!   blocked playlist requests. The master is written and `live` announced
//!   once every track has a complete segment (players that join a
//!   playlist of parts only, hls.js among them, may never start). A served
//!   playlist never names an unpublished part or segment.
//! * `P.live.<id>.stop` (request/reply) stops a channel cleanly: the last
//!   parts are cut, every playlist gets `EXT-X-ENDLIST`, the catalogue says
//!   `ready` (VOD of what was published, no re-transcode), then the reply.
//! * A source that fails or ends stops the channel the same way (a reason
//!   is logged); one that fails before anything was published fails the
//!   channel with the reason.
//! * The DVR window (`LIVE_DVR_WINDOW_S`) slides: segments that leave the
//!   playlist are deleted; parts that leave the part window are deleted
//!   [`PART_LINGER`] later (clients may still be fetching them).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use stream_bus::async_nats::jetstream::{self, AckKind};
use stream_bus::{decode_live_job, event, media, media::live_job::Source, video_event::Kind};
use stream_hls::live::{LiveConfig, LivePlaylist, RenderOptions, RenditionReport};
use stream_hls::path::MASTER_NAME;
use stream_hls::VideoId;
use stream_media::live::{run_live, LiveEvent, LiveOptions, LiveSource};
use stream_media::{Track, PLAYLIST_NAME};
use stream_store::MediaStore;
use tokio::sync::{mpsc, Semaphore};
use tracing::{info, instrument, warn};

use crate::publish::{master_text, rendition_of, target_bitrates};
use crate::Shared;

/// Interval of in-progress acks while a channel runs (the live consumer's
/// ack wait is `stream_bus::LIVE_ACK_WAIT`, 10 s).
const HEARTBEAT: Duration = Duration::from_secs(3);
/// How long a part stays downloadable after it left the playlist
/// (draft-pantos-hls-rfc8216bis §6.2.2 asks for at least 3 target
/// durations; parts are also inside their segment's file).
const PART_LINGER: Duration = Duration::from_secs(12);
/// Events between the libav thread and the publisher.
const EVENT_QUEUE: usize = 256;

/// Run live workers: at most `shared.live_channels` channels at once in
/// this process, until shutdown (running channels are stopped cleanly).
pub async fn run(shared: Arc<Shared>) {
    if shared.live_channels == 0 {
        return;
    }
    let consumer = loop {
        match shared.bus.live_job_consumer().await {
            Ok(c) => break c,
            Err(e) => {
                warn!(error = %e, "live job consumer unavailable, retrying");
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };
    let slots = Arc::new(Semaphore::new(shared.live_channels));
    let mut running = tokio::task::JoinSet::new();
    info!(channels = shared.live_channels, "live worker ready");
    loop {
        let permit = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let batch = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            b = consumer.batch().max_messages(1).expires(Duration::from_secs(5)).messages() => b,
        };
        let mut messages = match batch {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "fetching live jobs failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let next = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            m = messages.next() => m,
        };
        if let Some(msg) = next {
            match msg {
                // Taken while shutting down: straight back to the queue.
                Ok(msg) if shared.shutdown.is_cancelled() => {
                    let _ = msg.ack_with(AckKind::Nak(None)).await;
                }
                Ok(msg) => {
                    let shared = shared.clone();
                    running.spawn(async move {
                        handle(&shared, msg).await;
                        drop(permit);
                    });
                }
                Err(e) => warn!(error = %e, "bad live job message"),
            }
        }
        // Reap finished channels (and surface a panicked one).
        while let Some(done) = running.try_join_next() {
            if let Err(e) = done {
                warn!(error = %e, "a live channel task died");
            }
        }
    }
    // Shutdown: channels see the same token and stop cleanly.
    while running.join_next().await.is_some() {}
}

async fn handle(shared: &Arc<Shared>, msg: jetstream::Message) {
    let msg = Arc::new(msg);
    let job = match decode_live_job(&msg.payload) {
        Ok(job) if job.video_id.parse::<VideoId>().is_ok() => job,
        Ok(job) => {
            warn!(video_id = %job.video_id, "live job with a bad id, dropping");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
        Err(e) => {
            warn!(error = %e, "undecodable live job, dropping");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    let heartbeat = {
        let msg = msg.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                // Retried on the next beat rather than given up.
                let _ = msg.ack_with(AckKind::Progress).await;
            }
        })
    };
    let video_id = job.video_id.clone();
    let result = run_channel(shared, &job).await;
    heartbeat.abort();
    let _ = tokio::fs::remove_dir_all(shared.scratch_dir.join(format!("live-{video_id}"))).await;
    match result {
        Ok(Outcome::Ended) => {
            let _ = msg.double_ack().await;
        }
        Ok(Outcome::HandedOff) => {
            info!(%video_id, "channel handed back for another worker to continue");
            let _ = msg.ack_with(AckKind::Nak(None)).await;
        }
        Err(reason) => {
            warn!(%video_id, %reason, "channel failed");
            shared.fail_video(&video_id, reason, true).await;
            let _ = msg.ack_with(AckKind::Term).await;
        }
    }
}

/// How a channel's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Stopped (request, source end, idleness): the recording is `ready`.
    Ended,
    /// This worker is shutting down: the playlists stay open and the job
    /// goes back to the queue; the next worker continues the channel after
    /// an `EXT-X-DISCONTINUITY`.
    HandedOff,
}

/// Run one channel until it ends or is handed off. `Err(reason)` only when
/// nothing was ever published for it.
#[instrument(skip_all, fields(video_id = %job.video_id))]
async fn run_channel(shared: &Arc<Shared>, job: &media::LiveJob) -> Result<Outcome, String> {
    let video_id = job.video_id.clone();
    let scratch = shared.scratch_dir.join(format!("live-{video_id}"));
    let source = prepare_source(shared, job, &scratch).await?;
    // The channel's clock: media time = wall clock − the id's instant, so
    // PDT = anchor + media time is the wall clock (stream-clock's anchor).
    let anchor_ms = video_id
        .parse::<VideoId>()
        .map(|v| v.timestamp_ms() as i64)
        .map_err(|e| e.to_string())?;
    let low = job.latency == media::LiveLatency::Low as i32;
    let part_s = if low {
        shared.live_low_part_s
    } else {
        shared.live_part_s
    };
    let opts = LiveOptions {
        ladder: shared.transcode.ladder.clone(),
        segment_duration_s: shared.transcode.segment_duration_s,
        part_duration_s: part_s,
        x264_preset: shared.transcode.x264_preset.clone(),
        low_latency: low,
        limits: shared.transcode.limits.clone(),
        clock_anchor_ms: Some(anchor_ms),
        ..LiveOptions::default()
    };
    let window_s = if job.dvr_window_s > 0.0 {
        job.dvr_window_s
    } else {
        shared.live_dvr_window_s
    };

    // Stop requests: set the flag, answer once the recording is ready.
    let stop = Arc::new(AtomicBool::new(false));
    let mut stop_sub = shared
        .bus
        .client()
        .subscribe(shared.bus.subjects().live_stop(&video_id))
        .await
        .map_err(|e| format!("stop subscription: {e}"))?;

    let (tx, mut rx) = mpsc::channel::<LiveEvent>(EVENT_QUEUE);
    let blocking = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            run_live(&source, &opts, &stop, |ev| {
                // Progress is advisory; everything else must arrive.
                if matches!(ev, LiveEvent::Progress { .. }) {
                    let _ = tx.try_send(ev);
                } else if tx.blocking_send(ev).is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
            })
        })
    };
    let mut publisher =
        ChannelPublisher::new(shared.clone(), &video_id, anchor_ms, window_s, part_s);
    let mut reply_to = Vec::new();
    let mut publish_error: Option<String> = None;
    let mut events_sent = 0u64;
    // Pulled channels stop by themselves when nobody watches
    // (`LIVE_IDLE_STOP_S`): viewers are the control plane's sessions.
    let idle_stop = matches!(job.source, Some(Source::Pull(_))) && shared.live_idle_stop_s > 0.0;
    let mut idle_check = tokio::time::interval(Duration::from_secs(1));
    let mut last_viewer = Instant::now();
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = idle_check.tick(), if idle_stop && !stop.load(Ordering::Relaxed) => {
                match shared.catalog.live_sessions(&video_id, unix_ms()).await {
                    Ok(0) => {}
                    Ok(_) => last_viewer = Instant::now(),
                    // Unknown: keep the channel (and look again).
                    Err(e) => {
                        warn!(error = %e, "viewer count unavailable");
                        last_viewer = Instant::now();
                    }
                }
                if last_viewer.elapsed().as_secs_f64() >= shared.live_idle_stop_s {
                    info!(idle_s = shared.live_idle_stop_s, "no viewers: stopping the pulled channel");
                    stop.store(true, Ordering::Relaxed);
                }
                continue;
            }
            Some(req) = stop_sub.next() => {
                stop.store(true, Ordering::Relaxed);
                if let Some(r) = req.reply {
                    reply_to.push(r);
                }
                continue;
            }
            _ = shared.shutdown.cancelled(), if !stop.load(Ordering::Relaxed) => {
                // A worker going away hands the channel on; only StopLive,
                // the source's end or idleness end it.
                publisher.handing_off = true;
                stop.store(true, Ordering::Relaxed);
                continue;
            }
        };
        let Some(ev) = ev else { break };
        if publish_error.is_some() {
            continue;
        }
        let res = match ev {
            LiveEvent::Planned(plan) => publisher.plan(plan.tracks).await,
            LiveEvent::Init { track, bytes } => publisher.init(&track, bytes).await,
            LiveEvent::Part {
                track,
                bytes,
                start_s,
                presentation_s,
                duration_s,
                independent,
                starts_segment,
                next_starts_segment,
            } => {
                publisher
                    .part(
                        &track,
                        bytes,
                        start_s,
                        presentation_s,
                        duration_s,
                        independent,
                        starts_segment,
                        next_starts_segment,
                    )
                    .await
            }
            LiveEvent::TrackEnded { track } => publisher.end_track(&track).await,
            LiveEvent::SourceEvent {
                media_time_s,
                source_time_s,
            } => {
                events_sent += 1;
                publish_event_marker(shared, &video_id, events_sent, media_time_s, source_time_s)
                    .await;
                Ok(())
            }
            LiveEvent::Progress {
                dropped,
                lateness_s,
                ..
            } => {
                publisher.note_drops(dropped, lateness_s);
                Ok(())
            }
        };
        if let Err(e) = res {
            publish_error = Some(e);
            stop.store(true, Ordering::Relaxed);
        }
    }
    let result = blocking.await.map_err(|e| format!("live task: {e}"))?;
    if let Err(e) = &result {
        warn!(error = %e, "channel source ended with an error");
    }
    if let Some(e) = &publish_error {
        warn!(error = %e, "channel publishing failed");
    }
    let outcome = if publisher.handing_off && publisher.published_anything() {
        publisher.hand_off().await.map(|()| Outcome::HandedOff)
    } else if publisher.published_anything() {
        publisher.finish().await.map(|()| Outcome::Ended)
    } else {
        Err(match (result, publish_error) {
            (Err(e), _) => e.to_string(),
            (_, Some(e)) => e,
            (Ok(_), None) => "the source produced nothing".into(),
        })
    };
    for r in reply_to {
        let body = match &outcome {
            Ok(Outcome::Ended) => Bytes::new(),
            Ok(Outcome::HandedOff) => {
                Bytes::from("the worker is shutting down; the channel goes on")
            }
            Err(e) => Bytes::from(e.clone()),
        };
        let _ = shared.bus.client().publish(r, body).await;
    }
    outcome
}

async fn prepare_source(
    shared: &Shared,
    job: &media::LiveJob,
    scratch: &Path,
) -> Result<LiveSource, String> {
    match &job.source {
        Some(Source::File(f)) => {
            tokio::fs::create_dir_all(scratch)
                .await
                .map_err(|e| format!("scratch: {e}"))?;
            let path = scratch.join("source");
            let key = stream_store::object_store::path::Path::from(f.object_key.as_str());
            shared
                .store
                .download_to_file(&key, &path)
                .await
                .map_err(|e| format!("read the channel's file: {e}"))?;
            Ok(LiveSource::File {
                path,
                looped: f.r#loop,
            })
        }
        Some(Source::Generator(g)) => {
            let size = |v: u32, default: u32, max: u32| {
                if v == 0 {
                    default
                } else {
                    v.clamp(64, max) & !1
                }
            };
            Ok(LiveSource::Generator {
                width: size(g.width, 1280, 1920),
                height: size(g.height, 720, 1080),
                event_interval_s: g.event_interval_s.clamp(0.0, 3600.0),
                seed: unix_ms() as u64,
            })
        }
        Some(Source::Pull(p)) => {
            let url = crate::fetch::check_pull_url(&p.url).map_err(|e| e.to_string())?;
            crate::fetch::resolve_checked(&url, shared.allow_private_urls)
                .await
                .map_err(|e| e.to_string())?;
            Ok(LiveSource::Url {
                url: url.to_string(),
            })
        }
        None => Err("the channel names no source".into()),
    }
}

/// A generator event → an `event` marker on the marker intake, stamped
/// with the media time of the frame that shows it (and its source time).
async fn publish_event_marker(
    shared: &Shared,
    video_id: &str,
    n: u64,
    media_time_s: f64,
    source_time_s: f64,
) {
    let batch = stream_bus::MarkerBatch {
        video_id: video_id.to_string(),
        markers: vec![stream_bus::marker::MarkerInput {
            kind: "event".into(),
            label: format!("Mint square {n}"),
            media_time_s,
            duration_s: Some(1.0),
            source_time_ms: Some((source_time_s * 1000.0).round() as i64),
            data_json: None,
        }],
    };
    let msg_id = format!(
        "{video_id}-event-{}",
        (media_time_s * 1000.0).round() as i64
    );
    if let Err(e) = shared.bus.publish_marker_batch(&batch, Some(&msg_id)).await {
        warn!(error = %e, "event marker not published");
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One track's publishing state.
struct TrackState {
    track: Track,
    playlist: LivePlaylist,
    /// Media sequence number of the segment being built, and its next part.
    msn: u64,
    part: u32,
    /// The open segment's bytes (its parts, concatenated).
    segment: Vec<u8>,
    init_published: bool,
    ended: bool,
    /// End of the last part, output seconds.
    end_s: f64,
    /// The next segment starts a new run of the channel (a worker took it
    /// over): EXT-X-DISCONTINUITY before it.
    discontinuity: bool,
}

/// Turns a channel's events into store objects, playlists and events.
struct ChannelPublisher {
    shared: Arc<Shared>,
    video_id: String,
    anchor_ms: i64,
    window_s: f64,
    /// Nominal part duration (PART-TARGET floor), seconds.
    part_s: f64,
    tracks: Vec<TrackState>,
    by_name: HashMap<String, usize>,
    live_announced: bool,
    /// An earlier run published this channel (this run continues it).
    resumed: bool,
    /// Shutting down: end the run without ending the playlists.
    handing_off: bool,
    /// Parts that left their playlist, deleted after [`PART_LINGER`].
    expired_parts: VecDeque<(Instant, String)>,
    dropped: u64,
}

impl ChannelPublisher {
    fn new(
        shared: Arc<Shared>,
        video_id: &str,
        anchor_ms: i64,
        window_s: f64,
        part_s: f64,
    ) -> Self {
        ChannelPublisher {
            part_s,
            shared,
            video_id: video_id.to_string(),
            anchor_ms,
            window_s,
            tracks: Vec::new(),
            by_name: HashMap::new(),
            live_announced: false,
            resumed: false,
            handing_off: false,
            expired_parts: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Set up the tracks; a rendition an earlier run left open (its worker
    /// died or shut down) is continued: its playlist is read back, a
    /// segment it left unfinished is closed from its parts, and this run's
    /// first segment follows an EXT-X-DISCONTINUITY.
    async fn plan(&mut self, tracks: Vec<Track>) -> Result<(), String> {
        let segment_s = self.shared.transcode.segment_duration_s;
        for t in tracks {
            let config = LiveConfig {
                target_duration_s: segment_s.round().max(1.0) as u32,
                part_target_s: self.part_s,
                window_s: self.window_s,
                map_uri: Some(stream_media::INIT_NAME.into()),
            };
            let stored = self
                .shared
                .store
                .get_bytes(&self.key(&t.name, PLAYLIST_NAME))
                .await
                .map_err(|e| format!("read {}/{PLAYLIST_NAME}: {e}", t.name))?;
            let earlier = stored
                .and_then(|b| {
                    LivePlaylist::parse(&String::from_utf8_lossy(&b), config.clone()).ok()
                })
                .filter(|p| !p.is_ended() && p.last_position().is_some());
            let resumed = earlier.is_some();
            let playlist = earlier.unwrap_or_else(|| LivePlaylist::new(config));
            self.by_name.insert(t.name.clone(), self.tracks.len());
            self.tracks.push(TrackState {
                msn: playlist.next_msn(),
                playlist,
                track: t,
                part: 0,
                segment: Vec::new(),
                init_published: false,
                ended: false,
                end_s: 0.0,
                discontinuity: resumed,
            });
            if resumed {
                self.resumed = true;
                let i = self.tracks.len() - 1;
                self.close_unfinished(i).await?;
            }
        }
        if self.resumed {
            info!("continuing the channel after an earlier run");
        }
        Ok(())
    }

    /// Close the segment an earlier run left open, from its part files.
    async fn close_unfinished(&mut self, i: usize) -> Result<(), String> {
        let name = self.tracks[i].track.name.clone();
        let parts: Vec<String> = self.tracks[i]
            .playlist
            .open_segment()
            .1
            .iter()
            .map(|p| p.uri.clone())
            .collect();
        if parts.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for uri in &parts {
            let part = self
                .shared
                .store
                .get_bytes(&self.key(&name, uri))
                .await
                .map_err(|e| format!("read {name}/{uri}: {e}"))?
                .ok_or_else(|| format!("{name}/{uri} is listed but missing"))?;
            bytes.extend_from_slice(&part);
        }
        self.tracks[i].segment = bytes;
        let mut gone = Vec::new();
        self.close_segment(i, &mut gone).await
    }

    fn index(&self, track: &str) -> Result<usize, String> {
        self.by_name
            .get(track)
            .copied()
            .ok_or_else(|| format!("unknown track {track}"))
    }

    fn key(&self, track: &str, file: &str) -> stream_store::object_store::path::Path {
        MediaStore::video_object(&self.video_id, &format!("{track}/{file}"))
    }

    async fn put(&self, track: &str, file: &str, bytes: Bytes) -> Result<(), String> {
        self.shared
            .store
            .put_bytes(&self.key(track, file), bytes)
            .await
            .map_err(|e| format!("publish {track}/{file}: {e}"))
    }

    async fn init(&mut self, track: &str, bytes: Vec<u8>) -> Result<(), String> {
        let i = self.index(track)?;
        self.put(track, stream_media::INIT_NAME, Bytes::from(bytes))
            .await?;
        self.tracks[i].init_published = true;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn part(
        &mut self,
        track: &str,
        bytes: Vec<u8>,
        start_s: f64,
        presentation_s: f64,
        duration_s: f64,
        independent: bool,
        starts_segment: bool,
        next_starts_segment: bool,
    ) -> Result<(), String> {
        let i = self.index(track)?;
        let anchor_ms = self.anchor_ms;
        {
            let t = &mut self.tracks[i];
            if starts_segment {
                // PDT: the wall-clock instant of the segment's first frame.
                let pdt = anchor_ms + (presentation_s * 1000.0).round() as i64;
                t.playlist
                    .begin_segment(Some(pdt), std::mem::take(&mut t.discontinuity))
                    .map_err(|e| format!("{track}: {e}"))?;
            }
        }
        let (msn, part) = (self.tracks[i].msn, self.tracks[i].part);
        let part_uri = format!("part_{msn:05}_{part}.m4s");
        self.put(track, &part_uri, Bytes::copy_from_slice(&bytes))
            .await?;
        let mut gone = Vec::new();
        {
            let t = &mut self.tracks[i];
            t.segment.extend_from_slice(&bytes);
            t.end_s = start_s + duration_s;
            let removed = t
                .playlist
                .push_part(&part_uri, duration_s, independent)
                .map_err(|e| format!("{track}: {e}"))?;
            gone.extend(removed.parts);
            t.part += 1;
        }
        if next_starts_segment {
            self.close_segment(i, &mut gone).await?;
        }
        {
            let t = &mut self.tracks[i];
            let next = format!("part_{:05}_{}.m4s", t.msn, t.part);
            t.playlist
                .set_preload_hint(&next)
                .map_err(|e| format!("{track}: {e}"))?;
        }
        self.publish_playlist(i).await?;
        let now = Instant::now();
        for uri in gone {
            self.expired_parts
                .push_back((now, format!("{track}/{uri}")));
        }
        self.delete_expired_parts().await;
        if !self.live_announced
            && self
                .tracks
                .iter()
                .all(|t| t.playlist.segments().next().is_some())
        {
            self.announce_live().await?;
        }
        Ok(())
    }

    /// Publish the open segment of track `i` and close it in the playlist;
    /// segments that left the DVR window are deleted now, their parts are
    /// queued in `gone`.
    async fn close_segment(&mut self, i: usize, gone: &mut Vec<String>) -> Result<(), String> {
        let name = self.tracks[i].track.name.clone();
        let msn = self.tracks[i].msn;
        let seg_uri = format!("seg_{msn:05}.m4s");
        let bytes = std::mem::take(&mut self.tracks[i].segment);
        self.put(&name, &seg_uri, Bytes::from(bytes)).await?;
        let removed = {
            let t = &mut self.tracks[i];
            let removed = t
                .playlist
                .close_segment(&seg_uri, None)
                .map_err(|e| format!("{name}: {e}"))?;
            t.msn += 1;
            t.part = 0;
            removed
        };
        gone.extend(removed.parts);
        for seg in removed.segments {
            let _ = self.shared.store.delete(&self.key(&name, &seg)).await;
        }
        Ok(())
    }

    async fn publish_playlist(&self, i: usize) -> Result<(), String> {
        let t = &self.tracks[i];
        let reports: Vec<RenditionReport> = self
            .tracks
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .filter_map(|(_, o)| {
                o.playlist
                    .report(&format!("../{}/{PLAYLIST_NAME}", o.track.name))
            })
            .collect();
        let text = t.playlist.render(&RenderOptions {
            skip: false,
            reports: &reports,
        });
        self.put(&t.track.name, PLAYLIST_NAME, Bytes::from(text))
            .await?;
        // Wake blocked playlist requests at the edge (core NATS; a lost
        // notification only delays them until their next poll or timeout).
        let pos = t.playlist.last_position();
        let payload = pos.map_or(String::new(), |p| {
            format!("{}.{}", p.msn, p.part.map_or(-1, i64::from))
        });
        let _ = self
            .shared
            .bus
            .client()
            .publish(
                self.shared
                    .bus
                    .subjects()
                    .live_part(&self.video_id, &t.track.name),
                Bytes::from(payload),
            )
            .await;
        Ok(())
    }

    async fn delete_expired_parts(&mut self) {
        while let Some((at, _)) = self.expired_parts.front() {
            if at.elapsed() < PART_LINGER {
                break;
            }
            let Some((_, rel)) = self.expired_parts.pop_front() else {
                break;
            };
            let key = MediaStore::video_object(&self.video_id, &rel);
            let _ = self.shared.store.delete(&key).await;
        }
    }

    async fn announce_live(&mut self) -> Result<(), String> {
        let tracks: Vec<(&Track, (u64, u64))> = self
            .tracks
            .iter()
            .map(|t| (&t.track, target_bitrates(&t.track)))
            .collect();
        let master = master_text(&tracks);
        self.shared
            .store
            .put_bytes(
                &MediaStore::video_object(&self.video_id, MASTER_NAME),
                Bytes::from(master),
            )
            .await
            .map_err(|e| format!("publish master: {e}"))?;
        let renditions = self
            .tracks
            .iter()
            .map(|t| rendition_of(&t.track, target_bitrates(&t.track), false))
            .collect();
        self.shared
            .emit_required(event(
                &self.video_id,
                Kind::Live(media::Live {
                    renditions,
                    master_playlist: MASTER_NAME.into(),
                    started_at_ms: self.anchor_ms,
                }),
            ))
            .await
            .map_err(|e| format!("announce live: {e}"))?;
        self.live_announced = true;
        info!("channel live");
        Ok(())
    }

    async fn end_track(&mut self, track: &str) -> Result<(), String> {
        let i = self.index(track)?;
        if !self.tracks[i].segment.is_empty() {
            let mut gone = Vec::new();
            self.close_segment(i, &mut gone).await?;
        }
        let t = &mut self.tracks[i];
        if !self.handing_off {
            t.playlist.end().map_err(|e| format!("{track}: {e}"))?;
        }
        t.ended = true;
        self.publish_playlist(i).await
    }

    fn note_drops(&mut self, dropped: u64, lateness_s: f64) {
        if dropped > self.dropped {
            warn!(
                dropped,
                new = dropped - self.dropped,
                lateness_s,
                "encoders behind real time: frames dropped before encode"
            );
            self.dropped = dropped;
        }
    }

    fn published_anything(&self) -> bool {
        self.live_announced || self.resumed
    }

    /// Shutting down: close what is open, leave the playlists without
    /// EXT-X-ENDLIST for the next worker.
    async fn hand_off(&mut self) -> Result<(), String> {
        for i in 0..self.tracks.len() {
            if !self.tracks[i].segment.is_empty() {
                let mut gone = Vec::new();
                self.close_segment(i, &mut gone).await?;
                self.publish_playlist(i).await?;
            }
        }
        Ok(())
    }

    /// Every track ended: the recording is VOD now.
    async fn finish(&mut self) -> Result<(), String> {
        for i in 0..self.tracks.len() {
            if !self.tracks[i].ended {
                // The source died before flushing: close what is there.
                if !self.tracks[i].segment.is_empty() {
                    let mut gone = Vec::new();
                    self.close_segment(i, &mut gone).await?;
                }
                let t = &mut self.tracks[i];
                // Refused only with open parts, which were just closed.
                let _ = t.playlist.end();
                t.ended = true;
                self.publish_playlist(i).await?;
            }
        }
        let renditions: Vec<media::Rendition> = self
            .tracks
            .iter()
            .map(|t| rendition_of(&t.track, target_bitrates(&t.track), true))
            .collect();
        let duration_s = self.tracks.iter().map(|t| t.end_s).fold(0.0, f64::max);
        self.shared
            .emit_required(event(
                &self.video_id,
                Kind::Ready(media::Ready {
                    duration_s,
                    renditions,
                    master_playlist: MASTER_NAME.into(),
                }),
            ))
            .await
            .map_err(|e| format!("publish ready: {e}"))?;
        info!(duration_s, "channel stopped; recording ready");
        Ok(())
    }
}
