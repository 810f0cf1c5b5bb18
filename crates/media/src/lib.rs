//! Media processing with libav (through ffmpeg-next), in process.
//!
//! * [`limits`] — what an untrusted input may declare; opening it safely
//!   (no network or file reads from inside a media file).
//! * [`probe`] — what a source contains ([`SourceInfo`]), checked against
//!   the limits before anything is decoded.
//! * [`ladder`] — the configured ABR ladder and the renditions planned for
//!   one source (never upscaled, even sizes, aspect kept).
//! * [`pipeline`] — the staged transcode: decode → per-rung scale/encode →
//!   HLS packaging, threads joined by bounded channels.
//! * [`live`] — live channels: a paced source (file, URL, generator)
//!   encoded in real time into the ladder and cut into LL-HLS parts.
//! * [`knsock`] — a stored video played as live for the kn-sock 0.3.0
//!   compatible stream: paced JPEG frames per quality tier (each frame
//!   decoded, scaled and encoded once per tier) and PCM chunks.
//! * [`codecs`] — RFC 6381 `CODECS` strings.
//! * [`elementary`] — decoding received Annex B H.264 / ADTS AAC (the
//!   native stream's client).
//!
//! All libav work runs on threads this crate spawns; callers in async code
//! run [`pipeline::transcode`] on a blocking thread.

pub mod codecs;
pub mod elementary;
mod encode;
pub mod error;
pub mod knsock;
pub mod ladder;
pub mod limits;
pub mod live;
mod package;
pub mod pipeline;
pub mod probe;
pub mod scene;

pub use error::MediaError;
pub use ladder::{Ladder, RenditionPlan};
pub use limits::Limits;
pub use package::{INIT_NAME, PLAYLIST_NAME};
pub use pipeline::{
    transcode, PipelineEvent, Plan, Progress, Track, TrackKind, TranscodeOptions, TranscodeReport,
    AUDIO_TRACK,
};
pub use probe::{probe, SourceInfo};
