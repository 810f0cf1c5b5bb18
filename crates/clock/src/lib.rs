//! The platform's clocks and the one place that maps between them. Pure:
//! no I/O, no reading of the system clock.
//!
//! * **Media time** — seconds on a video's presentation timeline, the clock
//!   markers are stored on (0 = start of the segment with media sequence 0).
//! * **Program date-time (PDT)** — the wall-clock instant HLS attaches to
//!   segments (`EXT-X-PROGRAM-DATE-TIME`) and DATERANGEs (`START-DATE`). An
//!   [`Anchor`] ties the two: `pdt = anchor + media_time`. For VOD the
//!   anchor is the video's ULID timestamp ([`Anchor::from_ulid_ms`]): fixed
//!   per video, identical across renditions, stable across re-publication.
//! * **Source time** — the wall-clock instant a source frame was captured
//!   (live); [`SourceClock`] is `source = pdt + offset`.
//! * **Player time** — a player's `currentTime`. It depends on where the
//!   player started and what it loaded, so it is mapped through the PDT of
//!   segments the player knows ([`PlayerClock`]), never as `sequence ×
//!   target duration`.
//!
//! Instants are [`Pdt`]: integer milliseconds since the Unix epoch (the
//! precision of `EXT-X-PROGRAM-DATE-TIME` in practice); durations and media
//! times are `f64` seconds.

use std::collections::BTreeMap;

/// An instant: milliseconds since the Unix epoch (UTC).
pub type Pdt = i64;

/// Errors of the mapping.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClockError {
    #[error("segment {0} has no program date-time")]
    NoPdt(u64),
    #[error("media sequence {0} is not after the known segments")]
    Gap(u64),
    #[error("segment duration {0} is not a finite positive number")]
    Duration(f64),
}

fn ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// `pdt = anchor + media_time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// PDT of media time 0.
    pub epoch: Pdt,
}

impl Anchor {
    /// The VOD anchor of a video: the millisecond timestamp of its ULID (the
    /// instant the video was accepted).
    pub fn from_ulid_ms(ulid_ms: u64) -> Anchor {
        Anchor {
            epoch: ulid_ms as i64,
        }
    }

    /// PDT of a media time (seconds).
    pub fn pdt(&self, media_time: f64) -> Pdt {
        self.epoch + ms(media_time)
    }

    /// Media time (seconds) of a PDT.
    pub fn media_time(&self, pdt: Pdt) -> f64 {
        (pdt - self.epoch) as f64 / 1000.0
    }
}

/// `source_time = pdt + offset` (live: capture clock vs packager clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceClock {
    /// Milliseconds from PDT to source time.
    pub offset_ms: i64,
}

impl SourceClock {
    pub fn source_time(&self, pdt: Pdt) -> Pdt {
        pdt + self.offset_ms
    }
    pub fn pdt(&self, source_time: Pdt) -> Pdt {
        source_time - self.offset_ms
    }
}

/// A segment as a media playlist lists it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Media sequence number.
    pub sequence: u64,
    /// `EXTINF`, seconds.
    pub duration: f64,
    /// `EXT-X-PROGRAM-DATE-TIME`, if the playlist has one for it.
    pub pdt: Option<Pdt>,
}

/// The PDT of each segment (serving side): `anchor + media start`, where
/// the media start of the first listed segment is `first_media_start`
/// (0 for a playlist that starts at sequence 0; the stored start of that
/// segment for a sliding window) and each next one starts where the
/// previous ended. Returns one PDT per segment.
pub fn stamp(
    anchor: Anchor,
    first_media_start: f64,
    segments: &[Segment],
) -> Result<Vec<Pdt>, ClockError> {
    let mut start = first_media_start;
    segments
        .iter()
        .map(|s| {
            if !s.duration.is_finite() || s.duration <= 0.0 {
                return Err(ClockError::Duration(s.duration));
            }
            let pdt = anchor.pdt(start);
            start += s.duration;
            Ok(pdt)
        })
        .collect()
}

/// Media start (seconds) of each segment of a playlist whose segments carry
/// PDTs: `pdt − anchor` (exact for any sequence start, window, rendition).
pub fn media_starts(anchor: Anchor, segments: &[Segment]) -> Result<Vec<f64>, ClockError> {
    segments
        .iter()
        .map(|s| {
            s.pdt
                .map(|p| anchor.media_time(p))
                .ok_or(ClockError::NoPdt(s.sequence))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Known {
    player_start: f64,
    duration: f64,
    pdt: Pdt,
}

/// What a player knows: the player-time start, duration and PDT of the
/// segments it has seen, by media sequence. Refreshes of a sliding window
/// keep the start of segments seen before; a rendition switch maps the new
/// rendition's segments through their PDT.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlayerClock {
    known: BTreeMap<u64, Known>,
}

impl PlayerClock {
    /// A clock from a first playlist whose first segment starts at
    /// `player_start` (0 for VOD).
    pub fn new(segments: &[Segment], player_start: f64) -> Result<PlayerClock, ClockError> {
        let mut c = PlayerClock::default();
        let mut start = player_start;
        for s in segments {
            c.insert(s, start)?;
            start += s.duration;
        }
        Ok(c)
    }

    fn insert(&mut self, s: &Segment, player_start: f64) -> Result<(), ClockError> {
        if !s.duration.is_finite() || s.duration <= 0.0 {
            return Err(ClockError::Duration(s.duration));
        }
        let pdt = s.pdt.ok_or(ClockError::NoPdt(s.sequence))?;
        self.known.insert(
            s.sequence,
            Known {
                player_start,
                duration: s.duration,
                pdt,
            },
        );
        Ok(())
    }

    /// Merge a refresh of the same rendition (sliding window: old segments
    /// gone, new ones appended). Segments already known keep their start;
    /// a new one starts where its predecessor ended.
    pub fn refresh(&mut self, segments: &[Segment]) -> Result<(), ClockError> {
        for s in segments {
            if self.known.contains_key(&s.sequence) {
                continue;
            }
            let prev = s
                .sequence
                .checked_sub(1)
                .and_then(|p| self.known.get(&p).copied())
                .ok_or(ClockError::Gap(s.sequence))?;
            self.insert(s, prev.player_start + prev.duration)?;
        }
        Ok(())
    }

    /// Switch to another rendition: its segments are placed on the player
    /// timeline by PDT (sequence numbers may differ between renditions).
    pub fn switch(&self, segments: &[Segment]) -> Result<PlayerClock, ClockError> {
        let mut c = PlayerClock::default();
        for s in segments {
            let pdt = s.pdt.ok_or(ClockError::NoPdt(s.sequence))?;
            if let Some(start) = self.player_time(pdt) {
                c.insert(s, start)?;
            }
        }
        if c.known.is_empty() {
            return Err(ClockError::Gap(segments.first().map_or(0, |s| s.sequence)));
        }
        // Segments after the overlap continue from their predecessor.
        c.refresh(segments)?;
        Ok(c)
    }

    /// PDT at a player time, from the segment that contains it (or the
    /// nearest known one, extrapolated).
    pub fn pdt_at(&self, player_time: f64) -> Option<Pdt> {
        let k = self
            .known
            .values()
            .find(|k| player_time >= k.player_start && player_time < k.player_start + k.duration)
            .or_else(|| {
                self.known.values().min_by(|a, b| {
                    let da = (a.player_start - player_time).abs();
                    let db = (b.player_start - player_time).abs();
                    da.total_cmp(&db)
                })
            })?;
        Some(k.pdt + ms(player_time - k.player_start))
    }

    /// Player time of a PDT, if it falls in a known segment (or just after
    /// the last one: the end of a VOD).
    pub fn player_time(&self, pdt: Pdt) -> Option<f64> {
        let mut last = None;
        for k in self.known.values() {
            let end = k.pdt + ms(k.duration);
            if pdt >= k.pdt && pdt < end {
                return Some(k.player_start + (pdt - k.pdt) as f64 / 1000.0);
            }
            last = Some((k, end));
        }
        match last {
            Some((k, end)) if pdt == end => Some(k.player_start + k.duration),
            _ => None,
        }
    }
}

/// Player time of a marker at `media_time`.
pub fn media_to_player(anchor: Anchor, clock: &PlayerClock, media_time: f64) -> Option<f64> {
    clock.player_time(anchor.pdt(media_time))
}

/// Media time of the playhead at `player_time`.
pub fn player_to_media(anchor: Anchor, clock: &PlayerClock, player_time: f64) -> Option<f64> {
    clock.pdt_at(player_time).map(|p| anchor.media_time(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANCHOR: Anchor = Anchor {
        epoch: 1_767_225_600_000,
    }; // 2026-01-01T00:00:00Z

    fn segs(first_seq: u64, durations: &[f64], first_media_start: f64) -> Vec<Segment> {
        let plain: Vec<Segment> = durations
            .iter()
            .enumerate()
            .map(|(i, d)| Segment {
                sequence: first_seq + i as u64,
                duration: *d,
                pdt: None,
            })
            .collect();
        let pdts = stamp(ANCHOR, first_media_start, &plain).unwrap();
        plain
            .into_iter()
            .zip(pdts)
            .map(|(s, p)| Segment { pdt: Some(p), ..s })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 0.001
    }

    #[test]
    fn anchor_round_trip() {
        assert_eq!(ANCHOR.pdt(12.345), ANCHOR.epoch + 12_345);
        assert!(close(ANCHOR.media_time(ANCHOR.pdt(12.345)), 12.345));
        let src = SourceClock { offset_ms: -2_500 };
        assert_eq!(src.pdt(src.source_time(ANCHOR.epoch)), ANCHOR.epoch);
    }

    #[test]
    fn variable_segment_durations() {
        // Segments of 2, 1.96, 2.04, 0.5 s: the third starts at 3.96, not 4.
        let s = segs(0, &[2.0, 1.96, 2.04, 0.5], 0.0);
        assert_eq!(s[2].pdt, Some(ANCHOR.epoch + 3_960));
        let starts = media_starts(ANCHOR, &s).unwrap();
        assert!(close(starts[3], 6.0));
        let clock = PlayerClock::new(&s, 0.0).unwrap();
        // A marker at 4.5 s is 0.54 s into segment 2; `2 × target` would
        // put segment 2 at 4 s.
        assert!(close(media_to_player(ANCHOR, &clock, 4.5).unwrap(), 4.5));
        assert!(close(player_to_media(ANCHOR, &clock, 6.2).unwrap(), 6.2));
        assert!(close(media_to_player(ANCHOR, &clock, 6.5).unwrap(), 6.5)); // end
        assert_eq!(media_to_player(ANCHOR, &clock, 7.0), None);
        assert!(stamp(
            ANCHOR,
            0.0,
            &[Segment {
                sequence: 0,
                duration: f64::NAN,
                pdt: None
            }]
        )
        .is_err());
    }

    #[test]
    fn media_sequence_not_starting_at_zero() {
        // The playlist starts at sequence 1000, whose media start is 2000 s;
        // a player joining there calls its first segment 0.
        let s = segs(1000, &[2.0, 2.0, 2.0], 2000.0);
        let clock = PlayerClock::new(&s, 0.0).unwrap();
        assert!(close(media_to_player(ANCHOR, &clock, 2003.0).unwrap(), 3.0));
        assert!(close(player_to_media(ANCHOR, &clock, 1.5).unwrap(), 2001.5));
        // sequence × target duration would say 2000 + 1.5 only by luck of
        // equal durations; the media start comes from PDT:
        assert!(close(media_starts(ANCHOR, &s).unwrap()[0], 2000.0));
    }

    #[test]
    fn sliding_window_keeps_player_positions() {
        let first = segs(10, &[2.0, 3.0, 2.0], 20.0);
        let mut clock = PlayerClock::new(&first, 0.0).unwrap();
        // Window slides: 10 and 11 drop out, 13 and 14 (1.5 s) arrive.
        let next = segs(12, &[2.0, 2.0, 1.5], 25.0);
        assert_eq!(next[0].pdt, first[2].pdt);
        clock.refresh(&next).unwrap();
        // Segment 14 starts at player 9 (2 + 3 + 2 + 2), media 29.
        assert!(close(media_to_player(ANCHOR, &clock, 29.75).unwrap(), 9.75));
        assert!(close(player_to_media(ANCHOR, &clock, 9.75).unwrap(), 29.75));
        // A refresh with a hole is refused.
        let hole = segs(20, &[2.0], 40.0);
        assert_eq!(clock.refresh(&hole), Err(ClockError::Gap(20)));
    }

    #[test]
    fn rendition_switch_maps_through_pdt() {
        // Rendition A: sequences from 0; B numbers its segments from 500
        // (another packager) and has slightly different durations (audio-
        // like boundaries), but the same PDTs at shared instants.
        let a = segs(0, &[2.0, 2.0, 2.0, 2.0], 0.0);
        let clock = PlayerClock::new(&a, 0.0).unwrap();
        let b = vec![
            Segment {
                sequence: 500,
                duration: 2.0,
                pdt: Some(ANCHOR.pdt(2.0)),
            },
            Segment {
                sequence: 501,
                duration: 2.5,
                pdt: Some(ANCHOR.pdt(4.0)),
            },
            Segment {
                sequence: 502,
                duration: 2.0,
                pdt: Some(ANCHOR.pdt(6.5)),
            },
        ];
        let switched = clock.switch(&b).unwrap();
        assert!(close(media_to_player(ANCHOR, &switched, 6.0).unwrap(), 6.0));
        assert!(close(media_to_player(ANCHOR, &switched, 7.0).unwrap(), 7.0));
        assert!(close(player_to_media(ANCHOR, &switched, 8.4).unwrap(), 8.4));
        // Same answers as before the switch where both know the instant.
        assert_eq!(
            media_to_player(ANCHOR, &clock, 5.0),
            media_to_player(ANCHOR, &switched, 5.0)
        );
        // No PDT, no mapping.
        let bare = [Segment {
            sequence: 1,
            duration: 2.0,
            pdt: None,
        }];
        assert_eq!(clock.switch(&bare), Err(ClockError::NoPdt(1)));
    }
}
