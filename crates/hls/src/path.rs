//! Typed HLS paths. `/hls/<video id>/<rest>` where `<rest>` is one of
//! `master.m3u8`, `<track>/index.m3u8`, `<track>/init.mp4`,
//! `<track>/seg_<5–9 digits>.m4s`, and for live renditions the LL-HLS
//! parts `<track>/part_<5–9 digits>_<1–3 digits>.m4s` (segment, part index).
//! Parsing is the access check: a path that
//! does not parse is a 404 and never reaches the store.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A video id: a ULID (26 Crockford base32 characters), canonical upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VideoId(ulid::Ulid);

impl VideoId {
    /// A new id for the current instant.
    pub fn generate() -> Self {
        VideoId(ulid::Ulid::new())
    }

    /// Creation time encoded in the ULID, Unix milliseconds.
    pub fn timestamp_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }
}

/// Why an id or path did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("not a video id (expected a 26-character ULID)")]
    BadVideoId,
    #[error("not an HLS path")]
    BadPath,
}

impl FromStr for VideoId {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 26 || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(PathError::BadVideoId);
        }
        ulid::Ulid::from_string(s)
            .map(VideoId)
            .map_err(|_| PathError::BadVideoId)
    }
}

impl TryFrom<String> for VideoId {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<VideoId> for String {
    fn from(v: VideoId) -> String {
        v.to_string()
    }
}

impl fmt::Display for VideoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A track (rendition) directory name: 1–16 of `[a-z0-9_]`, e.g. `720p`,
/// `audio`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackName(String);

impl TrackName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TrackName {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=16).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        ok.then(|| TrackName(s.to_string()))
            .ok_or(PathError::BadPath)
    }
}

impl fmt::Display for TrackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a request under `/hls/<video>/` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HlsPath {
    /// `master.m3u8`
    Master,
    /// `<track>/index.m3u8`
    MediaPlaylist(TrackName),
    /// `<track>/init.mp4`
    Init(TrackName),
    /// `<track>/seg_<n>.m4s`
    Segment(TrackName, u32),
    /// `<track>/part_<segment>_<part>.m4s`: a partial segment (LL-HLS).
    Part(TrackName, u32, u32),
}

/// Initialization section file name inside a track directory.
pub const INIT_NAME: &str = "init.mp4";
/// Master playlist file name.
pub const MASTER_NAME: &str = "master.m3u8";

impl HlsPath {
    /// Parse the part after `/hls/<video>/`.
    pub fn parse(rest: &str) -> Result<Self, PathError> {
        if rest == MASTER_NAME {
            return Ok(HlsPath::Master);
        }
        let (track, file) = rest.split_once('/').ok_or(PathError::BadPath)?;
        let track: TrackName = track.parse()?;
        match file {
            "index.m3u8" => Ok(HlsPath::MediaPlaylist(track)),
            "init.mp4" => Ok(HlsPath::Init(track)),
            _ if file.starts_with("part_") => {
                let (seg, part) = file
                    .strip_prefix("part_")
                    .and_then(|f| f.strip_suffix(".m4s"))
                    .and_then(|f| f.split_once('_'))
                    .ok_or(PathError::BadPath)?;
                let numeric = |s: &str, len: std::ops::RangeInclusive<usize>| {
                    len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
                };
                if !numeric(seg, 5..=9) || !numeric(part, 1..=3) {
                    return Err(PathError::BadPath);
                }
                Ok(HlsPath::Part(
                    track,
                    seg.parse().map_err(|_| PathError::BadPath)?,
                    part.parse().map_err(|_| PathError::BadPath)?,
                ))
            }
            _ => {
                let digits = file
                    .strip_prefix("seg_")
                    .and_then(|f| f.strip_suffix(".m4s"))
                    .ok_or(PathError::BadPath)?;
                if !(5..=9).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(PathError::BadPath);
                }
                let n = digits.parse().map_err(|_| PathError::BadPath)?;
                Ok(HlsPath::Segment(track, n))
            }
        }
    }

    /// The object path relative to the video's root, e.g. `720p/init.mp4`.
    pub fn relative(&self) -> String {
        match self {
            HlsPath::Master => MASTER_NAME.to_string(),
            HlsPath::MediaPlaylist(t) => format!("{t}/index.m3u8"),
            HlsPath::Init(t) => format!("{t}/init.mp4"),
            HlsPath::Segment(t, n) => format!("{t}/seg_{n:05}.m4s"),
            HlsPath::Part(t, n, p) => format!("{t}/part_{n:05}_{p}.m4s"),
        }
    }

    /// Whether the object never changes once published (init and media
    /// segments), as opposed to playlists.
    pub fn is_immutable(&self) -> bool {
        matches!(
            self,
            HlsPath::Init(_) | HlsPath::Segment(..) | HlsPath::Part(..)
        )
    }

    /// The `Content-Type` to serve it with (RFC 8216 §4: playlists are
    /// `application/vnd.apple.mpegurl`; fMP4 segments `video/mp4` or
    /// `video/iso.segment`).
    pub fn content_type(&self) -> &'static str {
        match self {
            HlsPath::Master | HlsPath::MediaPlaylist(_) => "application/vnd.apple.mpegurl",
            HlsPath::Init(_) => "video/mp4",
            HlsPath::Segment(..) | HlsPath::Part(..) => "video/iso.segment",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_served_shape() {
        assert_eq!(HlsPath::parse("master.m3u8"), Ok(HlsPath::Master));
        let t: TrackName = "720p".parse().unwrap();
        assert_eq!(
            HlsPath::parse("720p/index.m3u8"),
            Ok(HlsPath::MediaPlaylist(t.clone()))
        );
        assert_eq!(
            HlsPath::parse("720p/init.mp4"),
            Ok(HlsPath::Init(t.clone()))
        );
        assert_eq!(
            HlsPath::parse("720p/seg_00012.m4s"),
            Ok(HlsPath::Segment(t, 12))
        );
        assert_eq!(
            HlsPath::parse("audio/seg_00000.m4s").unwrap().relative(),
            "audio/seg_00000.m4s"
        );
        let t: TrackName = "360p".parse().unwrap();
        assert_eq!(
            HlsPath::parse("360p/part_00012_3.m4s"),
            Ok(HlsPath::Part(t, 12, 3))
        );
        assert_eq!(
            HlsPath::parse("360p/part_00012_3.m4s").unwrap().relative(),
            "360p/part_00012_3.m4s"
        );
    }

    #[test]
    fn rejects_traversal_and_odd_names() {
        for bad in [
            "../master.m3u8",
            "..",
            "720p/../../etc/passwd",
            "%2e%2e/master.m3u8",
            "%252e%252e/x",
            "720p/seg_1.m4s",
            "720p/seg_00001.ts",
            "720P/index.m3u8",
            "720p/index.m3u8/",
            "/etc/passwd",
            "a/b/c",
            "720p/seg_0000000000.m4s",
            "720p/part_00001.m4s",
            "720p/part_00001_.m4s",
            "720p/part_00001_1234.m4s",
            "720p/part_1_1.m4s",
            "720p/part_00001_1_2.m4s",
            "",
        ] {
            assert!(HlsPath::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn video_ids_are_ulids() {
        let id = VideoId::generate();
        assert_eq!(id.to_string().parse::<VideoId>(), Ok(id));
        assert!("..".parse::<VideoId>().is_err());
        assert!("01ARZ3NDEKTSV4RRFFQ69G5FA!".parse::<VideoId>().is_err());
        assert!("01ARZ3NDEKTSV4RRFFQ69G5FAVX".parse::<VideoId>().is_err());
    }
}
