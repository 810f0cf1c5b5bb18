//! Timeline markers in served media playlists (pure): every segment gets an
//! `EXT-X-PROGRAM-DATE-TIME` (from the video's [`Anchor`], unless it
//! already has one) and every marker an `EXT-X-DATERANGE`:
//!
//! ```text
//! #EXT-X-DATERANGE:ID="<marker id>",CLASS="<kind>",START-DATE="<anchor + media_time>",DURATION=<s>,X-LABEL="<label>",X-KIND="<kind>"
//! ```
//!
//! placed before the segment that contains its start. `X-…` attributes and
//! PDT are what hls.js needs to turn a DATERANGE into a metadata cue;
//! Safari and VHS read them as well. Markers after the last listed segment
//! of a growing playlist are left out until their segment is published;
//! with `EXT-X-ENDLIST` they go on the last segment.

use stream_clock::{Anchor, Segment};

use crate::m3u8_rs::{self, ExtTag, Playlist};

/// What a DATERANGE says about a marker.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaylistMarker {
    /// Marker id (ULID) → `ID`.
    pub id: String,
    /// `CLASS` and `X-KIND`.
    pub kind: String,
    /// `X-LABEL`.
    pub label: String,
    /// Seconds on the presentation timeline → `START-DATE`.
    pub media_time: f64,
    /// Seconds → `DURATION` (absent for point markers).
    pub duration: Option<f64>,
}

/// Why a playlist was not annotated.
#[derive(Debug, thiserror::Error)]
pub enum AnnotateError {
    #[error("not a media playlist")]
    NotMedia,
    #[error("playlist does not parse: {0}")]
    Parse(String),
    /// A window not starting at sequence 0 without PDTs: the media start of
    /// its first segment is unknown here.
    #[error("media sequence {0} without program date-times")]
    Unanchored(u64),
    #[error("clock: {0}")]
    Clock(#[from] stream_clock::ClockError),
}

/// An HLS quoted-string may not hold `"`, CR or LF.
fn quoted(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

fn date(ms: i64) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .fixed_offset()
}

/// The attribute list of a marker's `EXT-X-DATERANGE` (RFC 8216 §4.3.2.7):
/// `ID`, `CLASS`, `START-DATE` (anchor + media time), `DURATION` (s, when
/// set), `X-LABEL`, `X-KIND`.
pub fn daterange_attributes(m: &PlaylistMarker, anchor: Anchor) -> String {
    let start = anchor.pdt(m.media_time);
    let mut rest = format!(
        "ID=\"{}\",CLASS=\"{}\",START-DATE=\"{}\"",
        quoted(&m.id),
        quoted(&m.kind),
        date(start).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    if let Some(d) = m.duration.filter(|d| d.is_finite() && *d > 0.0) {
        rest.push_str(&format!(",DURATION={d:.3}"));
    }
    rest.push_str(&format!(
        ",X-LABEL=\"{}\",X-KIND=\"{}\"",
        quoted(&m.label),
        quoted(&m.kind)
    ));
    rest
}

/// Add the markers' DATERANGEs to an LL-HLS media playlist as written by
/// [`crate::live`] (text kept as it is; m3u8-rs cannot carry its tags).
/// Its segments already have PDTs (anchor + media time); markers from the
/// first listed PDT on are written, by start then id, before the first
/// media line. Playlists without a PDT come back unchanged.
pub fn annotate_live_playlist(text: &str, anchor: Anchor, markers: &[PlaylistMarker]) -> String {
    let first_pdt = text.lines().find_map(|l| {
        l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:")
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
            .map(|d| d.timestamp_millis())
    });
    let Some(first_pdt) = first_pdt else {
        return text.to_string();
    };
    let mut sorted: Vec<&PlaylistMarker> = markers
        .iter()
        .filter(|m| anchor.pdt(m.media_time) >= first_pdt)
        .collect();
    if sorted.is_empty() {
        return text.to_string();
    }
    sorted.sort_by(|a, b| a.media_time.total_cmp(&b.media_time).then(a.id.cmp(&b.id)));
    let mut out = String::with_capacity(text.len() + sorted.len() * 160);
    let mut written = false;
    for line in text.lines() {
        let media = [
            "#EXT-X-DISCONTINUITY",
            "#EXT-X-PROGRAM-DATE-TIME",
            "#EXT-X-PART:",
            "#EXTINF",
        ]
        .iter()
        .any(|t| line.starts_with(t));
        if media && !written {
            for m in &sorted {
                out.push_str("#EXT-X-DATERANGE:");
                out.push_str(&daterange_attributes(m, anchor));
                out.push('\n');
            }
            written = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Add PDTs and the markers' DATERANGEs to a media playlist (`text`);
/// returns the new playlist text. `markers` in any order; they are written
/// by start, then id.
pub fn annotate_media_playlist(
    text: &[u8],
    anchor: Anchor,
    markers: &[PlaylistMarker],
) -> Result<String, AnnotateError> {
    let mut pl = match m3u8_rs::parse_playlist_res(text) {
        Ok(Playlist::MediaPlaylist(p)) => p,
        Ok(Playlist::MasterPlaylist(_)) => return Err(AnnotateError::NotMedia),
        Err(e) => return Err(AnnotateError::Parse(e.to_string())),
    };
    let segments: Vec<Segment> = pl
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| Segment {
            sequence: pl.media_sequence + i as u64,
            duration: f64::from(s.duration),
            pdt: s.program_date_time.map(|d| d.timestamp_millis()),
        })
        .collect();
    let pdts: Vec<i64> = if segments.iter().all(|s| s.pdt.is_some()) {
        segments.iter().filter_map(|s| s.pdt).collect()
    } else if pl.media_sequence == 0 {
        stream_clock::stamp(anchor, 0.0, &segments)?
    } else {
        return Err(AnnotateError::Unanchored(pl.media_sequence));
    };
    let end = match (pdts.last(), segments.last()) {
        (Some(p), Some(s)) => p + (s.duration * 1000.0).round() as i64,
        _ => anchor.epoch,
    };
    let mut sorted: Vec<&PlaylistMarker> = markers.iter().collect();
    sorted.sort_by(|a, b| a.media_time.total_cmp(&b.media_time).then(a.id.cmp(&b.id)));
    for (i, seg) in pl.segments.iter_mut().enumerate() {
        seg.program_date_time = Some(date(pdts[i]));
    }
    let last = pl.segments.len().saturating_sub(1);
    for m in sorted {
        let start = anchor.pdt(m.media_time);
        if start > end || (start == end && !pl.end_list) || pl.segments.is_empty() {
            continue;
        }
        // The last segment starting at or before the marker.
        let idx = pdts
            .partition_point(|p| *p <= start)
            .saturating_sub(1)
            .min(last);
        let rest = daterange_attributes(m, anchor);
        pl.segments[idx].unknown_tags.push(ExtTag {
            tag: "X-DATERANGE".into(),
            rest: Some(rest),
        });
    }
    let mut out = Vec::new();
    pl.write_to(&mut out)
        .map_err(|e| AnnotateError::Parse(e.to_string()))?;
    String::from_utf8(out).map_err(|e| AnnotateError::Parse(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-01-01T00:00:00Z
    const ANCHOR: Anchor = Anchor {
        epoch: 1_767_225_600_000,
    };

    const EVENT: &str = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:2.000000,
seg_00000.m4s
#EXTINF:1.960000,
seg_00001.m4s
#EXTINF:2.040000,
seg_00002.m4s
";

    fn marker(id: &str, t: f64, label: &str) -> PlaylistMarker {
        PlaylistMarker {
            id: id.into(),
            kind: "scene".into(),
            label: label.into(),
            media_time: t,
            duration: None,
        }
    }

    #[test]
    fn live_playlists_get_dateranges_before_their_first_segment() {
        let text = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:10.000Z\n#EXT-X-PART:DURATION=0.50000,URI=\"p.m4s\",INDEPENDENT=YES\n#EXTINF:2.00000,\nseg_00005.m4s\n";
        let markers = [marker("01B", 11.0, "in"), marker("01A", 3.0, "gone")];
        let out = annotate_live_playlist(text, ANCHOR, &markers);
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-DATERANGE:ID=\"01B\",CLASS=\"scene\",START-DATE=\"2026-01-01T00:00:11.000Z\",X-LABEL=\"in\",X-KIND=\"scene\"\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:10.000Z\n#EXT-X-PART:DURATION=0.50000,URI=\"p.m4s\",INDEPENDENT=YES\n#EXTINF:2.00000,\nseg_00005.m4s\n"
        );
        assert_eq!(
            annotate_live_playlist("#EXTM3U\n", ANCHOR, &markers),
            "#EXTM3U\n"
        );
    }

    #[test]
    fn golden_growing_playlist() {
        let markers = [
            marker("01B", 3.96, "cut \"two\""),
            marker("01A", 0.5, "cut one"),
            PlaylistMarker {
                id: "01C".into(),
                kind: "chapter".into(),
                label: "Middle".into(),
                media_time: 4.0,
                duration: Some(1.5),
            },
            marker("01D", 6.5, "not yet published"),
        ];
        let out = annotate_media_playlist(EVENT.as_bytes(), ANCHOR, &markers).unwrap();
        // m3u8-rs writes header tags in its own order and leaves out the
        // default MEDIA-SEQUENCE:0.
        let golden = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-TARGETDURATION:2
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z
#EXT-X-DATERANGE:ID=\"01A\",CLASS=\"scene\",START-DATE=\"2026-01-01T00:00:00.500Z\",X-LABEL=\"cut one\",X-KIND=\"scene\"
#EXTINF:2,
seg_00000.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:02.000Z
#EXTINF:1.96,
seg_00001.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:03.960Z
#EXT-X-DATERANGE:ID=\"01B\",CLASS=\"scene\",START-DATE=\"2026-01-01T00:00:03.960Z\",X-LABEL=\"cut 'two'\",X-KIND=\"scene\"
#EXT-X-DATERANGE:ID=\"01C\",CLASS=\"chapter\",START-DATE=\"2026-01-01T00:00:04.000Z\",DURATION=1.500,X-LABEL=\"Middle\",X-KIND=\"chapter\"
#EXTINF:2.04,
seg_00002.m4s
";
        assert_eq!(out, golden);
    }

    #[test]
    fn finished_playlist_parses_back_with_dateranges() {
        let text = format!("{EVENT}#EXT-X-ENDLIST\n");
        let markers = [
            marker("01A", 1.0, "a"),
            marker("01Z", 6.0, "at the very end"),
        ];
        let out = annotate_media_playlist(text.as_bytes(), ANCHOR, &markers).unwrap();
        assert!(out.ends_with("#EXT-X-ENDLIST\n"), "{out}");
        let Ok(Playlist::MediaPlaylist(p)) = m3u8_rs::parse_playlist_res(out.as_bytes()) else {
            panic!("does not parse: {out}");
        };
        assert!(p.segments.iter().all(|s| s.program_date_time.is_some()));
        // m3u8-rs keeps one DATERANGE per segment in `daterange`.
        let ranges: Vec<_> = p
            .segments
            .iter()
            .filter_map(|s| s.daterange.as_ref())
            .collect();
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0].id, "01A");
        assert_eq!(ranges[1].id, "01Z");
        assert_eq!(
            ranges[1].start_date.timestamp_millis(),
            ANCHOR.epoch + 6_000
        );
        // Idempotent on PDTs already present: annotating again keeps them.
        let again = annotate_media_playlist(out.as_bytes(), ANCHOR, &[]).unwrap();
        assert_eq!(again.matches("PROGRAM-DATE-TIME").count(), 3);
    }

    #[test]
    fn windows_without_pdt_are_refused() {
        let text = EVENT.replace("MEDIA-SEQUENCE:0", "MEDIA-SEQUENCE:7");
        assert!(matches!(
            annotate_media_playlist(text.as_bytes(), ANCHOR, &[]),
            Err(AnnotateError::Unanchored(7))
        ));
        assert!(annotate_media_playlist(
            b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n",
            ANCHOR,
            &[]
        )
        .is_err());
    }
}
