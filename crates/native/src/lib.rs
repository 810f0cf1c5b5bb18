//! The native TCP stream (edge port 9000): one crate owns its wire format.
//!
//! * [`frame`] — frames (magic, version, type, flags, rendition, PTS and
//!   duration in 90 kHz ticks, length, payload, CRC32C) and the resyncing
//!   reader;
//! * [`control`] — the JSON handshake, typed errors and metadata;
//! * [`cmaf`] — the published fMP4 (init + segments or LL-HLS parts) read
//!   back into access units: Annex B H.264 and ADTS AAC.
//!
//! The specification for client authors is `docs/native-stream.md`.

pub mod cmaf;
pub mod control;
pub mod frame;

pub use control::{AudioInfo, Control, ErrorCode, Metadata, RenditionInfo};
pub use frame::{Flags, Frame, FrameDecoder, FrameEncoder, FrameError, FrameKind};
