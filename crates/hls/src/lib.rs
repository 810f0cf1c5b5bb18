//! HLS (RFC 8216) for the platform: the one crate that writes playlists and
//! knows the layout of served HLS paths.
//!
//! * [`path`] — [`VideoId`] and the typed grammar of `/hls/<video>/...`
//!   paths; anything else (traversal, odd names) does not parse.
//! * [`master`] — the multivariant (master) playlist, written with m3u8-rs.
//! * [`daterange`] — timeline markers as `EXT-X-DATERANGE` (with
//!   `EXT-X-PROGRAM-DATE-TIME` on segments) in served media playlists.
//! * [`bandwidth`] — peak and average segment bitrates of a media playlist
//!   (RFC 8216 §4.3.4.2 BANDWIDTH / AVERAGE-BANDWIDTH).
//! * [`live`] — the Low-Latency HLS media playlist of a live rendition
//!   (parts, preload hint, rendition reports, delta updates, DVR window)
//!   and the blocking-reload decision (`_HLS_msn`, `_HLS_part`, `_HLS_skip`).

pub mod bandwidth;
pub mod daterange;
pub mod live;
pub mod master;
pub mod path;

pub use daterange::{
    annotate_live_playlist, annotate_media_playlist, AnnotateError, PlaylistMarker,
};
pub use live::{
    blocking_reload, Directives, LiveConfig, LivePlaylist, Reload, RenderOptions, RenditionReport,
};
pub use m3u8_rs;
pub use master::{write_master, AudioRendition, VideoVariant};
pub use path::{HlsPath, TrackName, VideoId};
