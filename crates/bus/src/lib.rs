//! The message bus: NATS subjects, JetStream streams, and protobuf payloads.
//!
//! One place knows the names (prefix `P`, upper-cased for stream names):
//!
//! | what | subject | stream |
//! |---|---|---|
//! | transcode jobs | `P.jobs.transcode` | `P_JOBS` (work queue, dedup by `Nats-Msg-Id` = video id) |
//! | video events | `P.video.<id>.<kind>` | `P_VIDEO_EVENTS` (limits: 7 days, 1 GiB) |
//! | marker batches from producers | `P.ingest.markers` | `P_MARKER_INGEST` (work queue, ≤ 100 000 batches, discard new) |
//! | marker changes | `P.markers.<id>.<change>` | `P_MARKER_EVENTS` (limits: 7 days, 1 GiB) |
//!
//! Marker `<change>` is `created`, `updated` or `deleted`; payloads are
//! `streaming.marker.v1` messages ([`MarkerBatch`], [`MarkerChange`]).
//!
//! `<kind>` is one of `accepted`, `started`, `progress`, `rendition_ready`,
//! `playable`, `ready`, `failed`; payloads are `streaming.media.v1`
//! messages ([`TranscodeJob`], [`VideoEvent`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use prost::Message;

pub use async_nats;
pub use stream_proto::marker::v1 as marker;
pub use stream_proto::marker::v1::{marker_change, MarkerBatch, MarkerChange};
pub use stream_proto::media::v1 as media;
pub use stream_proto::media::v1::{video_event, LiveJob, TranscodeJob, VideoEvent};

/// Bus errors.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("nats connect: {0}")]
    Connect(String),
    #[error("jetstream: {0}")]
    JetStream(String),
    #[error("decode {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: prost::DecodeError,
    },
}

fn js_err(e: impl std::fmt::Display) -> BusError {
    BusError::JetStream(e.to_string())
}

/// Subject and stream names under one prefix.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// `prefix` must be a valid NATS token (see `stream_runtime::valid_prefix`).
    pub fn new(prefix: &str) -> Self {
        Subjects {
            prefix: prefix.to_string(),
        }
    }

    pub fn jobs(&self) -> String {
        format!("{}.jobs.transcode", self.prefix)
    }

    pub fn jobs_stream(&self) -> String {
        format!("{}_JOBS", self.stream_token())
    }

    /// Live channel jobs ([`LiveJob`]): `P.jobs.live`.
    pub fn live_jobs(&self) -> String {
        format!("{}.jobs.live", self.prefix)
    }

    pub fn live_jobs_stream(&self) -> String {
        format!("{}_LIVE_JOBS", self.stream_token())
    }

    /// Request to stop a live channel (core NATS, request/reply; the worker
    /// running it answers): `P.live.<id>.stop`.
    pub fn live_stop(&self, video_id: &str) -> String {
        format!("{}.live.{video_id}.stop", self.prefix)
    }

    /// A part or segment of a live rendition was published (core NATS; the
    /// edge wakes blocked playlist requests): `P.live.<id>.<track>.part`.
    pub fn live_part(&self, video_id: &str, track: &str) -> String {
        format!("{}.live.{video_id}.{track}.part", self.prefix)
    }

    /// Every live part notification: `P.live.*.*.part`.
    pub fn all_live_parts(&self) -> String {
        format!("{}.live.*.*.part", self.prefix)
    }

    pub fn events_stream(&self) -> String {
        format!("{}_VIDEO_EVENTS", self.stream_token())
    }

    /// `P.video.<id>.<kind>`
    pub fn video_event(&self, video_id: &str, kind: &str) -> String {
        format!("{}.video.{video_id}.{kind}", self.prefix)
    }

    /// Every event of every video: `P.video.>`.
    pub fn all_video_events(&self) -> String {
        format!("{}.video.>", self.prefix)
    }

    /// Every event of one video: `P.video.<id>.*`.
    pub fn video_events(&self, video_id: &str) -> String {
        format!("{}.video.{video_id}.*", self.prefix)
    }

    /// Session lifecycle events: `P.session.<id>.<kind>` (`expired`, `closed`).
    pub fn session_event(&self, session_id: &str, kind: &str) -> String {
        format!("{}.session.{session_id}.{kind}", self.prefix)
    }

    /// Quality decisions for native TCP sessions: `P.session.<id>.decision`.
    pub fn session_decision(&self, session_id: &str) -> String {
        format!("{}.session.{session_id}.decision", self.prefix)
    }

    /// Where producers (detectors, ingest) publish [`MarkerBatch`]es:
    /// `P.ingest.markers`.
    pub fn marker_ingest(&self) -> String {
        format!("{}.ingest.markers", self.prefix)
    }

    pub fn marker_ingest_stream(&self) -> String {
        format!("{}_MARKER_INGEST", self.stream_token())
    }

    /// One marker change: `P.markers.<id>.<change>`.
    pub fn marker_change(&self, video_id: &str, change: &str) -> String {
        format!("{}.markers.{video_id}.{change}", self.prefix)
    }

    /// Every marker change: `P.markers.>`.
    pub fn all_marker_changes(&self) -> String {
        format!("{}.markers.>", self.prefix)
    }

    pub fn marker_events_stream(&self) -> String {
        format!("{}_MARKER_EVENTS", self.stream_token())
    }

    fn stream_token(&self) -> String {
        self.prefix.to_uppercase().replace('-', "_")
    }
}

/// The subject token of an event's kind.
pub fn event_kind(ev: &VideoEvent) -> &'static str {
    use video_event::Kind;
    match &ev.kind {
        Some(Kind::Accepted(_)) => "accepted",
        Some(Kind::Started(_)) => "started",
        Some(Kind::Progress(_)) => "progress",
        Some(Kind::RenditionReady(_)) => "rendition_ready",
        Some(Kind::Playable(_)) => "playable",
        Some(Kind::Ready(_)) => "ready",
        Some(Kind::Failed(_)) => "failed",
        Some(Kind::Live(_)) => "live",
        None => "unknown",
    }
}

/// Per-process clock for [`VideoEvent::seq`]: Unix microseconds, bumped so
/// that two events from this process never share a value.
pub fn next_seq() -> (u64, i64) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let micros = now.as_micros() as u64;
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = micros.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return (next, (next / 1000) as i64),
            Err(p) => prev = p,
        }
    }
}

/// Build an event with a fresh `seq`/`at_ms`.
pub fn event(video_id: &str, kind: video_event::Kind) -> VideoEvent {
    let (seq, at_ms) = next_seq();
    VideoEvent {
        video_id: video_id.to_string(),
        seq,
        at_ms,
        kind: Some(kind),
    }
}

/// Name of the durable consumer transcode workers share on the jobs stream.
pub const JOB_CONSUMER: &str = "transcoders";
/// How long a worker may hold a job without a progress ack before JetStream
/// redelivers it.
pub const JOB_ACK_WAIT: Duration = Duration::from_secs(60);
/// Live channel jobs the stream holds at most (channels running or waiting).
pub const LIVE_QUEUE_MAX: i64 = 1_000;
/// Name of the durable consumer live workers share on the live jobs stream.
pub const LIVE_CONSUMER: &str = "live";
/// How long a live worker may go without an in-progress ack before the
/// channel is handed to another worker.
pub const LIVE_ACK_WAIT: Duration = Duration::from_secs(10);
/// Deliveries of one live job (restarts after worker deaths).
pub const LIVE_MAX_DELIVER: i64 = 5;
/// Deliveries of one job before it is given up (bounded retries).
pub const JOB_MAX_DELIVER: i64 = 3;
/// Dedup window for `Nats-Msg-Id` on the jobs stream.
pub const JOB_DEDUP_WINDOW: Duration = Duration::from_secs(600);
/// Jobs the stream holds at most (bounded queue); publishing beyond fails.
pub const JOB_QUEUE_MAX: i64 = 10_000;

/// Marker batches the ingest stream holds at most; publishing beyond fails.
pub const MARKER_INGEST_MAX: i64 = 100_000;

/// The subject token of a marker change.
pub fn marker_change_kind(change: &MarkerChange) -> &'static str {
    use marker_change::Kind;
    match Kind::try_from(change.kind).unwrap_or(Kind::Unspecified) {
        Kind::Created => "created",
        Kind::Updated => "updated",
        Kind::Deleted => "deleted",
        Kind::Unspecified => "unknown",
    }
}

/// A bounded work-queue stream (file storage): each message is delivered
/// to one consumer and removed on ack; at most `max_messages`, new ones
/// refused when full; `Nats-Msg-Id` dedup over [`JOB_DEDUP_WINDOW`].
fn work_queue(name: String, subject: String, max_messages: i64) -> stream::Config {
    stream::Config {
        name,
        subjects: vec![subject],
        retention: stream::RetentionPolicy::WorkQueue,
        duplicate_window: JOB_DEDUP_WINDOW,
        max_messages,
        discard: stream::DiscardPolicy::New,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// An event log (file storage): kept 7 days or up to 1 GiB, oldest dropped
/// first, read by any number of consumers.
fn event_log(name: String, subject: String) -> stream::Config {
    stream::Config {
        name,
        subjects: vec![subject],
        retention: stream::RetentionPolicy::Limits,
        max_age: Duration::from_secs(7 * 24 * 3600),
        max_bytes: 1 << 30,
        discard: stream::DiscardPolicy::Old,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// A connected bus.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    subjects: Subjects,
}

impl Bus {
    /// Connect and make sure both streams exist.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name("stream")
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| BusError::Connect(e.to_string()))?;
        let bus = Bus {
            js: jetstream::new(client.clone()),
            client,
            subjects: Subjects::new(prefix),
        };
        bus.ensure_streams().await?;
        Ok(bus)
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    async fn ensure_streams(&self) -> Result<(), BusError> {
        let s = &self.subjects;
        self.ensure_stream(work_queue(s.jobs_stream(), s.jobs(), JOB_QUEUE_MAX))
            .await?;
        self.ensure_stream(event_log(s.events_stream(), s.all_video_events()))
            .await?;
        self.ensure_stream(work_queue(
            s.live_jobs_stream(),
            s.live_jobs(),
            LIVE_QUEUE_MAX,
        ))
        .await?;
        self.ensure_stream(stream::Config {
            max_message_size: 1 << 20,
            ..work_queue(
                s.marker_ingest_stream(),
                s.marker_ingest(),
                MARKER_INGEST_MAX,
            )
        })
        .await?;
        self.ensure_stream(event_log(s.marker_events_stream(), s.all_marker_changes()))
            .await
    }

    /// Create a stream unless it exists. Services start concurrently and
    /// race to create the same streams; the loser's create fails (NATS 2.9
    /// answers "subjects overlap"), so a failed create is followed by a
    /// lookup of the winner's stream (bounded retries).
    async fn ensure_stream(&self, config: stream::Config) -> Result<(), BusError> {
        let name = config.name.clone();
        let mut last_err = None;
        for attempt in 0..5u64 {
            match self.js.get_or_create_stream(config.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
                    if self.js.get_stream(&name).await.is_ok() {
                        return Ok(());
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(js_err(
            last_err.map_or_else(|| "unknown".to_string(), |e| e.to_string()),
        ))
    }

    /// Queue a job; a second submission of the same video id inside the
    /// dedup window is dropped by JetStream.
    pub async fn submit_job(&self, job: &TranscodeJob) -> Result<(), BusError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", job.video_id.as_str());
        self.js
            .publish_with_headers(
                self.subjects.jobs(),
                headers,
                Bytes::from(job.encode_to_vec()),
            )
            .await
            .map_err(js_err)?
            .await
            .map_err(js_err)?;
        Ok(())
    }

    /// Publish an event to JetStream and wait for the stream's ack.
    pub async fn publish_event(&self, ev: &VideoEvent) -> Result<(), BusError> {
        let subject = self.subjects.video_event(&ev.video_id, event_kind(ev));
        self.js
            .publish(subject, Bytes::from(ev.encode_to_vec()))
            .await
            .map_err(js_err)?
            .await
            .map_err(js_err)?;
        Ok(())
    }

    /// Queue a marker batch for the marker service (producers: detectors,
    /// ingest); waits for the stream's ack. With `msg_id`, a second batch
    /// with the same id inside the dedup window (10 min) is dropped (a
    /// retried producer does not duplicate its markers).
    pub async fn publish_marker_batch(
        &self,
        batch: &MarkerBatch,
        msg_id: Option<&str>,
    ) -> Result<(), BusError> {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(id) = msg_id {
            headers.insert("Nats-Msg-Id", id);
        }
        self.js
            .publish_with_headers(
                self.subjects.marker_ingest(),
                headers,
                Bytes::from(batch.encode_to_vec()),
            )
            .await
            .map_err(js_err)?
            .await
            .map_err(js_err)?;
        Ok(())
    }

    /// Publish marker changes and wait for every ack (published together,
    /// acked together).
    pub async fn publish_marker_changes(&self, changes: &[MarkerChange]) -> Result<(), BusError> {
        let mut acks = Vec::with_capacity(changes.len());
        for c in changes {
            let subject = self
                .subjects
                .marker_change(&c.video_id, marker_change_kind(c));
            acks.push(
                self.js
                    .publish(subject, Bytes::from(c.encode_to_vec()))
                    .await
                    .map_err(js_err)?,
            );
        }
        for ack in acks {
            ack.await.map_err(js_err)?;
        }
        Ok(())
    }

    /// The durable pull consumer marker services share on the marker
    /// ingest stream.
    pub async fn marker_ingest_consumer(&self) -> Result<consumer::PullConsumer, BusError> {
        let stream = self
            .js
            .get_stream(self.subjects.marker_ingest_stream())
            .await
            .map_err(js_err)?;
        stream
            .get_or_create_consumer(
                "markers",
                consumer::pull::Config {
                    durable_name: Some("markers".into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_deliver: 5,
                    max_ack_pending: 256,
                    ..Default::default()
                },
            )
            .await
            .map_err(js_err)
    }

    /// Jobs waiting in (or held from) the work queue.
    pub async fn queued_jobs(&self) -> Result<u64, BusError> {
        let mut stream = self
            .js
            .get_stream(self.subjects.jobs_stream())
            .await
            .map_err(js_err)?;
        Ok(stream.info().await.map_err(js_err)?.state.messages)
    }

    /// Delete both streams of this prefix (test and teardown use).
    pub async fn delete_streams(&self) -> Result<(), BusError> {
        for name in [
            self.subjects.jobs_stream(),
            self.subjects.live_jobs_stream(),
            self.subjects.events_stream(),
            self.subjects.marker_ingest_stream(),
            self.subjects.marker_events_stream(),
        ] {
            self.js.delete_stream(&name).await.map_err(js_err)?;
        }
        Ok(())
    }

    /// Queue a live channel job (`Nats-Msg-Id` = video id).
    pub async fn publish_live_job(&self, job: &LiveJob) -> Result<(), BusError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", job.video_id.as_str());
        self.js
            .publish_with_headers(
                self.subjects.live_jobs(),
                headers,
                job.encode_to_vec().into(),
            )
            .await
            .map_err(js_err)?
            .await
            .map_err(js_err)?;
        Ok(())
    }

    /// The durable pull consumer live workers share.
    pub async fn live_job_consumer(&self) -> Result<consumer::PullConsumer, BusError> {
        let stream = self
            .js
            .get_stream(self.subjects.live_jobs_stream())
            .await
            .map_err(js_err)?;
        stream
            .get_or_create_consumer(
                LIVE_CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(LIVE_CONSUMER.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: LIVE_ACK_WAIT,
                    max_deliver: LIVE_MAX_DELIVER,
                    max_ack_pending: LIVE_QUEUE_MAX,
                    ..Default::default()
                },
            )
            .await
            .map_err(js_err)
    }

    /// The durable pull consumer transcode workers share.
    pub async fn job_consumer(&self) -> Result<consumer::PullConsumer, BusError> {
        self.job_consumer_with_ack_wait(JOB_ACK_WAIT).await
    }

    /// Subject of JetStream's advisory for a job whose deliveries ran out
    /// without an ack or a term: every worker that took it died (a worker
    /// that fails a job itself terms it and publishes `failed`).
    pub fn job_max_deliveries_subject(&self) -> String {
        format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{JOB_CONSUMER}",
            self.subjects.jobs_stream()
        )
    }

    /// Take the job a max-deliveries advisory names off the work queue
    /// (so it no longer counts against `JOB_QUEUE_MAX`), returning it with
    /// its delivery count. `Ok(None)` when the message is already gone
    /// (another instance took it) or the advisory is not about our stream.
    ///
    /// Errors: an advisory that is not JSON, a job that does not decode.
    pub async fn take_exhausted_job(
        &self,
        advisory: &[u8],
    ) -> Result<Option<(media::TranscodeJob, u64)>, BusError> {
        #[derive(serde::Deserialize)]
        struct MaxDeliveries {
            stream: String,
            stream_seq: u64,
            deliveries: u64,
        }
        let adv: MaxDeliveries = serde_json::from_slice(advisory)
            .map_err(|e| BusError::JetStream(format!("max-deliveries advisory: {e}")))?;
        if adv.stream != self.subjects.jobs_stream() {
            return Ok(None);
        }
        let stream = self.js.get_stream(&adv.stream).await.map_err(js_err)?;
        let Ok(raw) = stream.get_raw_message(adv.stream_seq).await else {
            return Ok(None);
        };
        let job = decode_job(&raw.payload)?;
        // Gone already (another ingest instance): it reports the job.
        match stream.delete_message(adv.stream_seq).await {
            Ok(true) => Ok(Some((job, adv.deliveries))),
            _ => Ok(None),
        }
    }

    /// [`Bus::job_consumer`] with another ack wait (tests use a short one
    /// to run out deliveries quickly; the consumer is created once, so the
    /// first caller's settings stay).
    pub async fn job_consumer_with_ack_wait(
        &self,
        ack_wait: Duration,
    ) -> Result<consumer::PullConsumer, BusError> {
        let stream = self
            .js
            .get_stream(self.subjects.jobs_stream())
            .await
            .map_err(js_err)?;
        stream
            .get_or_create_consumer(
                JOB_CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(JOB_CONSUMER.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait,
                    max_deliver: JOB_MAX_DELIVER,
                    max_ack_pending: 64,
                    ..Default::default()
                },
            )
            .await
            .map_err(js_err)
    }

    /// A durable pull consumer over every video event, named `durable`
    /// (e.g. the catalogue projector).
    pub async fn events_consumer(&self, durable: &str) -> Result<consumer::PullConsumer, BusError> {
        let stream = self
            .js
            .get_stream(self.subjects.events_stream())
            .await
            .map_err(js_err)?;
        stream
            .get_or_create_consumer(
                durable,
                consumer::pull::Config {
                    durable_name: Some(durable.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_deliver: 10,
                    max_ack_pending: 1024,
                    ..Default::default()
                },
            )
            .await
            .map_err(js_err)
    }
}

/// Decode a job payload.
pub fn decode_live_job(payload: &[u8]) -> Result<LiveJob, BusError> {
    LiveJob::decode(payload).map_err(|source| BusError::Decode {
        what: "live job",
        source,
    })
}

pub fn decode_job(payload: &[u8]) -> Result<TranscodeJob, BusError> {
    TranscodeJob::decode(payload).map_err(|source| BusError::Decode {
        what: "TranscodeJob",
        source,
    })
}

/// Decode an event payload.
pub fn decode_event(payload: &[u8]) -> Result<VideoEvent, BusError> {
    VideoEvent::decode(payload).map_err(|source| BusError::Decode {
        what: "VideoEvent",
        source,
    })
}

/// Decode a marker batch payload.
pub fn decode_marker_batch(payload: &[u8]) -> Result<MarkerBatch, BusError> {
    MarkerBatch::decode(payload).map_err(|source| BusError::Decode {
        what: "MarkerBatch",
        source,
    })
}

/// Decode a marker change payload.
pub fn decode_marker_change(payload: &[u8]) -> Result<MarkerChange, BusError> {
    MarkerChange::decode(payload).map_err(|source| BusError::Decode {
        what: "MarkerChange",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let s = Subjects::new("t-abc");
        assert_eq!(s.jobs(), "t-abc.jobs.transcode");
        assert_eq!(s.jobs_stream(), "T_ABC_JOBS");
        assert_eq!(s.video_event("V1", "ready"), "t-abc.video.V1.ready");
        assert_eq!(s.all_video_events(), "t-abc.video.>");
        assert_eq!(s.marker_ingest(), "t-abc.ingest.markers");
        assert_eq!(s.marker_ingest_stream(), "T_ABC_MARKER_INGEST");
        assert_eq!(s.marker_change("V1", "created"), "t-abc.markers.V1.created");
        assert_eq!(s.marker_events_stream(), "T_ABC_MARKER_EVENTS");
    }

    #[test]
    fn seq_is_strictly_increasing() {
        let mut last = 0;
        for _ in 0..1000 {
            let (s, _) = next_seq();
            assert!(s > last);
            last = s;
        }
    }
}
