//! Transcode workers: pull jobs from the JetStream work queue, transcode,
//! publish, and only then ack.
//!
//! * Redelivery is idempotent: a job starts by deleting whatever an earlier
//!   attempt published under the video's prefix, and the catalogue only
//!   marks renditions ready at the very end.
//! * A job holds its message with in-progress acks every
//!   [`HEARTBEAT`]; a worker that dies stops them and JetStream redelivers
//!   after the ack wait, at most `JOB_MAX_DELIVER` times.
//! * Input errors fail at once (no retry); other errors are retried with a
//!   delay; the last failed attempt publishes `failed`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use stream_bus::async_nats::jetstream::{self, AckKind};
use stream_bus::{decode_job, event, media, media::transcode_job::Source, video_event::Kind};
use stream_media::PipelineEvent;
use stream_runtime::CancellationToken;
use stream_store::MediaStore;
use tokio::sync::mpsc;
use tracing::{info, instrument, warn};

use crate::fetch;
use crate::publish::Publisher;
use crate::transcoder::{ChildError, ChildRequest};
use crate::Shared;

/// Interval of in-progress acks while a job runs.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Minimum interval between progress events.
const PROGRESS_EVERY: Duration = Duration::from_millis(1000);
/// Delay before a failed attempt is retried.
const RETRY_DELAY: Duration = Duration::from_secs(5);

/// Why a job failed.
#[derive(Debug)]
pub struct JobError {
    pub reason: String,
    /// The input is at fault: retrying cannot help.
    pub input: bool,
    /// No retry (the input's fault, or a time limit a retry would hit
    /// again): the video fails now.
    pub terminal: bool,
    /// The worker is shutting down: hand the job back untouched.
    pub cancelled: bool,
}

impl JobError {
    fn input(reason: impl Into<String>) -> Self {
        JobError {
            reason: reason.into(),
            input: true,
            terminal: true,
            cancelled: false,
        }
    }
    fn retry(reason: impl Into<String>) -> Self {
        JobError {
            reason: reason.into(),
            input: false,
            terminal: false,
            cancelled: false,
        }
    }
}

/// Run one worker loop until `shared.shutdown` is cancelled.
pub async fn run(shared: Arc<Shared>, worker: usize) {
    let consumer = loop {
        match shared.bus.job_consumer().await {
            Ok(c) => break c,
            Err(e) => {
                warn!(worker, error = %e, "job consumer unavailable, retrying");
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };
    info!(worker, "transcode worker ready");
    loop {
        let batch = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            b = consumer.batch().max_messages(1).expires(Duration::from_secs(5)).messages() => b,
        };
        let mut messages = match batch {
            Ok(m) => m,
            Err(e) => {
                warn!(worker, error = %e, "fetching jobs failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(msg) => handle(&shared, msg).await,
                Err(e) => warn!(worker, error = %e, "bad job message"),
            }
            if shared.shutdown.is_cancelled() {
                return;
            }
        }
    }
}

/// Report jobs whose deliveries ran out because every worker that took
/// one died (JetStream's max-deliveries advisory; a worker that fails a job
/// itself publishes `failed` and terms it): the video is marked `failed`
/// with the reason, its partial output deleted, the message removed from
/// the queue. Instances share the advisory through a queue group, and only
/// the one whose delete succeeds reports. Runs until shutdown.
pub async fn report_exhausted(shared: Arc<Shared>) {
    let subject = shared.bus.job_max_deliveries_subject();
    let mut sub = loop {
        match shared
            .bus
            .client()
            .queue_subscribe(subject.clone(), "ingest-exhausted".into())
            .await
        {
            Ok(s) => break s,
            Err(e) => {
                warn!(error = %e, "advisory subscription failed, retrying");
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };
    loop {
        let msg = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            m = sub.next() => match m {
                Some(m) => m,
                None => return,
            },
        };
        let (job, deliveries) = match shared.bus.take_exhausted_job(&msg.payload).await {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(e) => {
                warn!(error = %e, "max-deliveries advisory not handled");
                continue;
            }
        };
        let video_id = job.video_id;
        let done = matches!(
            shared.catalog.get(&video_id).await,
            Ok(Some(r)) if matches!(r.status, stream_catalog::VideoStatus::Ready | stream_catalog::VideoStatus::Failed)
        );
        if done {
            continue;
        }
        let reason = format!(
            "transcode abandoned after {deliveries} deliveries: the worker stopped during each"
        );
        warn!(%video_id, deliveries, "job deliveries exhausted");
        shared.fail_video(&video_id, reason, false).await;
    }
}

async fn handle(shared: &Arc<Shared>, msg: jetstream::Message) {
    let msg = Arc::new(msg);
    let job = match decode_job(&msg.payload) {
        Ok(job) => job,
        Err(e) => {
            warn!(error = %e, "undecodable job, dropping");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    let attempt = msg.info().map(|i| i.delivered).unwrap_or(1).max(1) as u32;
    let heartbeat = {
        let msg = msg.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                if msg.ack_with(AckKind::Progress).await.is_err() {
                    return;
                }
            }
        })
    };
    let result = process(shared, &job, attempt).await;
    heartbeat.abort();
    let video_id = job.video_id.clone();
    let _ = tokio::fs::remove_dir_all(shared.scratch_dir.join(&video_id)).await;
    match result {
        Ok(()) => {
            if let Err(e) = msg.double_ack().await {
                warn!(%video_id, error = %e, "ack failed; the job may run again (idempotent)");
            }
        }
        Err(e) if e.cancelled => {
            info!(%video_id, "job interrupted by shutdown, handing it back");
            let _ = msg.ack_with(AckKind::Nak(None)).await;
        }
        Err(e) => {
            let last = e.terminal || i64::from(attempt) >= stream_bus::JOB_MAX_DELIVER;
            if last {
                warn!(%video_id, attempt, reason = %e.reason, input = e.input, "job failed");
                shared
                    .fail_video(&video_id, e.reason.clone(), e.input)
                    .await;
                let _ = msg.ack_with(AckKind::Term).await;
            } else {
                // Nothing partial stays served while waiting for the retry.
                let _ = shared
                    .store
                    .delete_prefix(&MediaStore::video_prefix(&video_id))
                    .await;
                warn!(%video_id, attempt, reason = %e.reason, "attempt failed, will retry");
                let _ = msg.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await;
            }
        }
    }
}

#[instrument(skip_all, fields(video_id = %job.video_id, attempt))]
async fn process(
    shared: &Arc<Shared>,
    job: &media::TranscodeJob,
    attempt: u32,
) -> Result<(), JobError> {
    let video_id = job.video_id.clone();
    let scratch = shared.scratch_dir.join(&video_id);
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    let out_dir = scratch.join("out");
    tokio::fs::create_dir_all(&out_dir)
        .await
        .map_err(|e| JobError::retry(format!("scratch: {e}")))?;
    let source = scratch.join("source");
    fetch_source(shared, job, &source).await?;
    // An earlier attempt may have published some of it.
    shared
        .store
        .delete_prefix(&MediaStore::video_prefix(&video_id))
        .await
        .map_err(|e| JobError::retry(e.to_string()))?;

    let (tx, mut rx) = mpsc::channel::<PipelineEvent>(64);
    let kill = CancellationToken::new();
    let child = {
        let transcoder = shared.transcoder.clone();
        let request = ChildRequest {
            input: source.clone(),
            output_dir: out_dir.clone(),
            options: shared.transcode.clone(),
        };
        let kill = kill.clone();
        tokio::spawn(async move { transcoder.run(&request, tx, kill).await })
    };
    let mut budget = JobBudget::new(
        Instant::now(),
        shared.job_max_wall_s,
        shared.job_wall_per_media_s,
    );
    let mut publisher: Option<Publisher> = None;
    let mut last_progress = Instant::now() - PROGRESS_EVERY;
    // Why the child was stopped early, if it was.
    let mut stopped: Option<JobError> = None;
    let mut scenes: Vec<(f64, f64)> = Vec::new();
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = shared.shutdown.cancelled(), if stopped.is_none() => {
                kill.cancel();
                stopped = Some(JobError {
                    reason: "cancelled".into(),
                    input: false,
                    terminal: false,
                    cancelled: true,
                });
                continue;
            }
            _ = tokio::time::sleep_until(budget.deadline().into()), if stopped.is_none() => {
                kill.cancel();
                stopped = Some(JobError {
                    reason: format!(
                        "transcode exceeded its time limit of {:.0} s",
                        budget.limit_s()
                    ),
                    input: false,
                    terminal: true,
                    cancelled: false,
                });
                continue;
            }
        };
        let Some(ev) = ev else { break };
        if stopped.is_some() {
            continue;
        }
        match ev {
            PipelineEvent::Planned(plan) => {
                budget.saw_media(plan.source.duration_s);
                let p = Publisher::new(shared.store.clone(), &video_id, &out_dir, &plan.tracks);
                shared
                    .emit(event(
                        &video_id,
                        Kind::Started(media::Started {
                            duration_s: plan.source.duration_s,
                            renditions: p.renditions(false),
                            attempt,
                        }),
                    ))
                    .await;
                info!(
                    tracks = plan.tracks.len(),
                    duration_s = plan.source.duration_s,
                    "transcode started"
                );
                publisher = Some(p);
            }
            PipelineEvent::SceneChange {
                media_time_s,
                score,
            } => scenes.push((media_time_s, score)),
            PipelineEvent::Progress(p) => {
                budget.saw_media(p.media_time_s);
                if last_progress.elapsed() >= PROGRESS_EVERY {
                    last_progress = Instant::now();
                    shared
                        .emit(event(
                            &video_id,
                            Kind::Progress(media::Progress {
                                percent: p.percent,
                                fps: p.fps,
                                speed: p.speed,
                                media_time_s: p.media_time_s,
                            }),
                        ))
                        .await;
                }
            }
            PipelineEvent::SegmentClosed { track } => {
                let Some(p) = publisher.as_mut() else {
                    continue;
                };
                if let Err(e) = p.sync_track(&track).await {
                    stopped = Some(JobError::retry(format!("publish: {e}")));
                    kill.cancel();
                    continue;
                }
                match p.publish_master_if_playable().await {
                    Ok(true) => {
                        shared
                            .emit(event(
                                &video_id,
                                Kind::Playable(media::Playable {
                                    master_playlist: stream_hls::path::MASTER_NAME.into(),
                                }),
                            ))
                            .await;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        stopped = Some(JobError::retry(format!("publish: {e}")));
                        kill.cancel();
                    }
                }
            }
        }
    }
    let result = child
        .await
        .map_err(|e| JobError::retry(format!("transcode task: {e}")))?;
    if let Some(e) = stopped {
        return Err(e);
    }
    if let Err(e) = result {
        return Err(match e {
            ChildError::Media {
                reason,
                input_error: true,
            } => JobError::input(reason),
            other => JobError::retry(other.to_string()),
        });
    }
    let mut p = publisher.ok_or_else(|| JobError::retry("pipeline announced no plan"))?;
    let names: Vec<String> = p.renditions(false).into_iter().map(|r| r.name).collect();
    for name in &names {
        p.sync_track(name)
            .await
            .map_err(|e| JobError::retry(format!("publish: {e}")))?;
    }
    if !p.all_tracks_ended() {
        return Err(JobError::retry(
            "packager finished without closing every playlist",
        ));
    }
    p.publish_final_master()
        .await
        .map_err(|e| JobError::retry(format!("publish: {e}")))?;
    for name in p.ended_tracks() {
        if let Some(r) = p.rendition_by_name(&name) {
            shared
                .emit(event(
                    &video_id,
                    Kind::RenditionReady(media::RenditionReady { rendition: Some(r) }),
                ))
                .await;
        }
    }
    let ready = event(
        &video_id,
        Kind::Ready(media::Ready {
            duration_s: p.duration_s(),
            renditions: p.renditions(true),
            master_playlist: stream_hls::path::MASTER_NAME.into(),
        }),
    );
    shared
        .emit_required(ready)
        .await
        .map_err(|e| JobError::retry(format!("publish ready event: {e}")))?;
    info!(duration_s = p.duration_s(), "video ready");
    publish_scenes(shared, &video_id, &scenes).await;
    Ok(())
}

/// Scene cuts → `scene` markers on the marker intake subject, the path
/// every producer uses. Sent once the video is ready (its duration is in
/// the catalogue, so the marker service can check the times), in batches
/// whose `Nats-Msg-Id` (`<video>-scenes-<n>`) makes a redelivered job's
/// second publication a no-op. Failures are logged: the video is ready
/// either way.
async fn publish_scenes(shared: &Shared, video_id: &str, scenes: &[(f64, f64)]) {
    let inputs: Vec<stream_bus::marker::MarkerInput> = scenes
        .iter()
        .enumerate()
        .map(|(i, (t, score))| stream_bus::marker::MarkerInput {
            kind: "scene".into(),
            label: format!("Scene {}", i + 2),
            media_time_s: *t,
            duration_s: None,
            source_time_ms: None,
            data_json: Some(format!("{{\"score\":{score:.2}}}")),
        })
        .collect();
    for (n, chunk) in inputs.chunks(500).enumerate() {
        let batch = stream_bus::MarkerBatch {
            video_id: video_id.to_string(),
            markers: chunk.to_vec(),
        };
        let msg_id = format!("{video_id}-scenes-{n}");
        if let Err(e) = shared.bus.publish_marker_batch(&batch, Some(&msg_id)).await {
            warn!(error = %e, "scene markers not published");
            return;
        }
    }
    if !scenes.is_empty() {
        info!(scenes = scenes.len(), "scene markers published");
    }
}

async fn fetch_source(
    shared: &Shared,
    job: &media::TranscodeJob,
    dest: &Path,
) -> Result<(), JobError> {
    match &job.source {
        Some(Source::ObjectKey(key)) => {
            let key = stream_store::object_store::path::Path::from(key.as_str());
            shared
                .store
                .download_to_file(&key, dest)
                .await
                .map_err(|e| JobError::retry(format!("read upload: {e}")))?;
        }
        Some(Source::Url(url)) => {
            fetch::download(
                url,
                dest,
                shared.max_upload_bytes,
                shared.allow_private_urls,
            )
            .await
            .map_err(|e| match e {
                fetch::FetchError::Failed(reason) => JobError::retry(format!("import: {reason}")),
                other => JobError::input(format!("import: {other}")),
            })?;
        }
        None => return Err(JobError::input("job names no source")),
    }
    Ok(())
}

/// The wall-clock budget of one job: `base_s` plus `per_media_s` for each
/// second of media, counting the longer of the declared duration and the
/// media decoded so far (a source without a declared duration earns its
/// budget as it goes; one stuck anywhere stops earning).
#[derive(Debug, Clone, Copy)]
pub struct JobBudget {
    started: Instant,
    base_s: f64,
    per_media_s: f64,
    media_s: f64,
}

impl JobBudget {
    /// A budget counted from `started`.
    pub fn new(started: Instant, base_s: f64, per_media_s: f64) -> Self {
        JobBudget {
            started,
            base_s,
            per_media_s,
            media_s: 0.0,
        }
    }

    /// Media seconds seen (declared or decoded); the budget only grows.
    pub fn saw_media(&mut self, media_s: f64) {
        if media_s.is_finite() && media_s > self.media_s {
            self.media_s = media_s;
        }
    }

    /// The whole budget so far, seconds.
    pub fn limit_s(&self) -> f64 {
        self.base_s + self.per_media_s * self.media_s
    }

    /// When the job must end.
    pub fn deadline(&self) -> Instant {
        // Bounded: media seconds are bounded by the input limits (6 h).
        self.started + Duration::from_secs_f64(self.limit_s().clamp(0.0, 7.0 * 86_400.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_grows_with_media_and_never_shrinks() {
        let t0 = Instant::now();
        let mut b = JobBudget::new(t0, 120.0, 10.0);
        assert_eq!(b.deadline(), t0 + Duration::from_secs(120));
        b.saw_media(60.0);
        assert_eq!(b.limit_s(), 720.0);
        b.saw_media(30.0);
        b.saw_media(f64::NAN);
        b.saw_media(f64::INFINITY);
        assert_eq!(b.deadline(), t0 + Duration::from_secs(720));
    }
}
