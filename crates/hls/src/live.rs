//! The Low-Latency HLS media playlist of one live rendition (pure: no I/O,
//! no clock), per draft-pantos-hls-rfc8216bis-17: complete segments, with
//! the parts (§4.4.4.9) of those near the live edge, the parts of the
//! segment in progress, a preload hint (§4.4.5.3), rendition reports
//! (§4.4.5.4), delta updates (§6.2.5.1), a sliding DVR window (§6.2.2) and
//! the blocking-reload decision ([`blocking_reload`], §6.2.5.2). m3u8-rs 6
//! has none of these tags, so the text is written here.
//!
//! Durations are seconds, written with 5 decimals (as in the spec's
//! examples); program date-times are Unix ms, written as ISO 8601 UTC with
//! ms. URIs are the caller's and are written as given.
//!
//! A segment's PDT and DISCONTINUITY are declared by
//! [`LivePlaylist::begin_segment`], before its first part: they must precede
//! the segment's first EXT-X-PART (§4.4.4.9), and a published playlist may
//! only grow (§6.2.1), so they cannot wait for the segment to close.

use std::collections::VecDeque;
use std::fmt::{Display, Write as _};

/// Fixed settings of a rendition's playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveConfig {
    /// s; floor of EXT-X-TARGETDURATION, which must not change (§6.2.1): the
    /// rounded duration of the longest segment the packager cuts.
    pub target_duration_s: u32,
    /// s; floor of PART-TARGET: the nominal part duration.
    pub part_target_s: f64,
    /// s; DVR window: the oldest segments are dropped while the others still
    /// last this long, and at least 3 × target duration (§6.2.2).
    pub window_s: f64,
    /// EXT-X-MAP URI of the fMP4 initialisation section, e.g. `init.mp4`.
    pub map_uri: Option<String>,
}

impl LiveConfig {
    /// Settings for reading a stored playlist back ([`LivePlaylist::parse`])
    /// only to inspect or re-render it: floors that never win over what
    /// the text says, an unbounded window, `init.mp4` as the map.
    pub fn for_reading() -> Self {
        LiveConfig {
            target_duration_s: 1,
            part_target_s: 0.01,
            window_s: f64::MAX,
            map_uri: Some(crate::path::INIT_NAME.into()),
        }
    }
}

/// A partial segment (EXT-X-PART).
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub uri: String,
    /// s.
    pub duration_s: f64,
    /// Starts with an independent (key) frame → `INDEPENDENT=YES`.
    pub independent: bool,
}

/// A complete media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub uri: String,
    /// s → EXTINF.
    pub duration_s: f64,
    /// Unix ms → EXT-X-PROGRAM-DATE-TIME.
    pub pdt_ms: Option<i64>,
    /// Preceded by EXT-X-DISCONTINUITY.
    pub discontinuity: bool,
    /// Its parts; emptied once it starts more than 3 target durations before
    /// the live edge (§6.2.2).
    pub parts: Vec<Part>,
}

/// The segment in progress.
#[derive(Debug, Clone, Default, PartialEq)]
struct Open {
    pdt_ms: Option<i64>,
    discontinuity: bool,
    parts: Vec<Part>,
}

/// A place in a rendition: media sequence number and part index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub msn: u64,
    /// `None` when the segment has no parts.
    pub part: Option<u32>,
}

/// EXT-X-RENDITION-REPORT of a sibling rendition (§4.4.5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionReport {
    /// Its media playlist, relative to the playlist being written.
    pub uri: String,
    /// Its [`LivePlaylist::last_position`] → LAST-MSN, LAST-PART.
    pub last: Position,
}

/// URIs that left the playlist in one call. Keep them downloadable before
/// deleting them: parts 3 target durations, segments their Availability
/// Duration (§6.2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub segments: Vec<String>,
    pub parts: Vec<String>,
}

/// What a render writes besides the playlist itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions<'a> {
    /// `_HLS_skip=YES|v2`: a delta update (ignored once ended, §6.2.5.1).
    pub skip: bool,
    pub reports: &'a [RenditionReport],
}

/// Why a change to the playlist was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LiveError {
    #[error("the playlist has ended")]
    Ended,
    #[error("duration {0} s is not positive and finite")]
    BadDuration(f64),
    #[error("URI {0:?} is empty, starts with '#' or holds a quote or control character")]
    BadUri(String),
    #[error("program date-time {0} ms is out of range")]
    BadPdt(i64),
    #[error("the segment in progress already has parts")]
    SegmentStarted,
    #[error("a segment without parts needs a duration")]
    NoDuration,
    #[error("{0} parts are in no closed segment")]
    OpenParts(usize),
}

/// A broken playlist invariant (see [`LivePlaylist::check`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Violation {
    #[error("part {0} lasts {1} s, more than PART-TARGET {2} s")]
    PartOverTarget(String, f64, f64),
    #[error("segment {0} lasts {1} s, more than TARGETDURATION {2} s once rounded")]
    SegmentOverTarget(String, f64, u32),
    #[error("segment {0}: EXTINF {1} s but its parts sum to {2} s")]
    PartsSum(String, f64, f64),
}

/// The LL-HLS media playlist of one live rendition.
#[derive(Debug, Clone)]
pub struct LivePlaylist {
    config: LiveConfig,
    media_sequence: u64,
    discontinuity_sequence: u64,
    segments: VecDeque<Segment>,
    open: Open,
    preload_hint: Option<String>,
    /// s; longest part / segment ever published.
    max_part_s: f64,
    max_segment_s: f64,
    ended: bool,
}

fn duration(s: f64) -> Result<f64, LiveError> {
    let ok = s.is_finite() && s > 0.0;
    ok.then_some(s).ok_or(LiveError::BadDuration(s))
}

fn uri(s: &str) -> Result<String, LiveError> {
    let bad = s.is_empty() || s.starts_with('#') || s.chars().any(|c| c == '"' || c.is_control());
    (!bad)
        .then(|| s.into())
        .ok_or_else(|| LiveError::BadUri(s.into()))
}

/// Seconds as written: 5 decimals.
fn secs(s: f64) -> String {
    format!("{s:.5}")
}

fn round5(s: f64) -> f64 {
    (s * 1e5).round() / 1e5
}

fn sum(parts: &[Part]) -> f64 {
    parts.iter().map(|p| p.duration_s).sum()
}

impl LivePlaylist {
    /// An empty playlist at media sequence 0.
    pub fn new(config: LiveConfig) -> Self {
        LivePlaylist {
            config,
            media_sequence: 0,
            discontinuity_sequence: 0,
            segments: VecDeque::new(),
            open: Open::default(),
            preload_hint: None,
            max_part_s: 0.0,
            max_segment_s: 0.0,
            ended: false,
        }
    }

    /// EXT-X-MEDIA-SEQUENCE: the MSN of the first listed segment.
    pub fn media_sequence(&self) -> u64 {
        self.media_sequence
    }

    /// Complete segments, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter()
    }

    /// MSN of the segment in progress (the next to close).
    pub fn next_msn(&self) -> u64 {
        self.media_sequence + self.segments.len() as u64
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// EXT-X-TARGETDURATION, s: the configured floor, or the longest segment
    /// ever published rounded to the nearest integer if longer (§4.4.3.1:
    /// every EXTINF, rounded, is at most the target duration).
    pub fn target_duration(&self) -> u32 {
        (self.max_segment_s.round() as u32).max(self.config.target_duration_s)
    }

    /// PART-TARGET, s: the longest part ever published (never an average:
    /// no part may exceed it, §4.4.4.9), at least the configured one.
    pub fn part_target(&self) -> f64 {
        self.max_part_s.max(self.config.part_target_s)
    }

    /// The last published segment or part, as a rendition report gives it
    /// (§4.4.5.4); `None` while nothing is published.
    pub fn last_position(&self) -> Option<Position> {
        let index = |parts: &[Part]| parts.len().checked_sub(1).map(|i| i as u32);
        if !self.open.parts.is_empty() {
            return Some(Position {
                msn: self.next_msn(),
                part: index(&self.open.parts),
            });
        }
        self.segments.back().map(|s| Position {
            msn: self.next_msn() - 1,
            part: index(&s.parts),
        })
    }

    /// This rendition's report for its siblings' playlists, under `uri`.
    pub fn report(&self, uri: &str) -> Option<RenditionReport> {
        self.last_position().map(|last| RenditionReport {
            uri: uri.into(),
            last,
        })
    }

    fn live(&self) -> Result<(), LiveError> {
        (!self.ended).then_some(()).ok_or(LiveError::Ended)
    }

    /// Declare the next segment's program date-time (Unix ms) and whether a
    /// discontinuity precedes it, before its first part. Without it the
    /// segment has neither.
    pub fn begin_segment(
        &mut self,
        pdt_ms: Option<i64>,
        discontinuity: bool,
    ) -> Result<(), LiveError> {
        self.live()?;
        if !self.open.parts.is_empty() {
            return Err(LiveError::SegmentStarted);
        }
        if let Some(ms) = pdt_ms.filter(|ms| chrono::DateTime::from_timestamp_millis(*ms).is_none())
        {
            return Err(LiveError::BadPdt(ms));
        }
        self.open.pdt_ms = pdt_ms;
        self.open.discontinuity = discontinuity;
        Ok(())
    }

    /// Publish a part (`duration_s` s) of the segment in progress. Clears the
    /// preload hint: set the next one after this. Returns the parts that
    /// moved out of the part window.
    pub fn push_part(
        &mut self,
        part_uri: &str,
        duration_s: f64,
        independent: bool,
    ) -> Result<Removed, LiveError> {
        self.live()?;
        let part = Part {
            uri: uri(part_uri)?,
            duration_s: duration(duration_s)?,
            independent,
        };
        self.max_part_s = self.max_part_s.max(duration_s);
        self.open.parts.push(part);
        self.preload_hint = None;
        let mut removed = Removed::default();
        self.prune_parts(&mut removed);
        Ok(removed)
    }

    /// EXT-X-PRELOAD-HINT:TYPE=PART: the URI of the next part.
    pub fn set_preload_hint(&mut self, part_uri: &str) -> Result<(), LiveError> {
        self.live()?;
        self.preload_hint = Some(uri(part_uri)?);
        Ok(())
    }

    /// Close the segment in progress as `segment_uri`, with its parts. Its
    /// duration (s) is `duration_s` or, if `None`, the sum of its parts (the
    /// exact EXTINF of a segment cut into parts). Drops the segments beyond
    /// the DVR window and the parts beyond the part window; returns them.
    pub fn close_segment(
        &mut self,
        segment_uri: &str,
        duration_s: Option<f64>,
    ) -> Result<Removed, LiveError> {
        self.live()?;
        let uri = uri(segment_uri)?;
        let d = match duration_s {
            Some(d) => duration(d)?,
            None if self.open.parts.is_empty() => return Err(LiveError::NoDuration),
            None => sum(&self.open.parts),
        };
        let open = std::mem::take(&mut self.open);
        self.max_segment_s = self.max_segment_s.max(d);
        self.segments.push_back(Segment {
            uri,
            duration_s: d,
            pdt_ms: open.pdt_ms,
            discontinuity: open.discontinuity,
            parts: open.parts,
        });
        let mut removed = Removed::default();
        // Never shorter than 3 target durations (§6.2.2).
        let keep = self
            .config
            .window_s
            .max(3.0 * f64::from(self.target_duration()));
        let mut total: f64 = self.segments.iter().map(|s| s.duration_s).sum();
        while self.segments.len() > 1 && total - self.segments[0].duration_s >= keep - 1e-9 {
            let s = self.segments.pop_front().expect("more than one segment");
            total -= s.duration_s;
            self.media_sequence += 1;
            // Keep the discontinuity sequence numbers of the rest (§6.2.2).
            self.discontinuity_sequence += u64::from(s.discontinuity);
            removed.segments.push(s.uri);
            removed.parts.extend(s.parts.into_iter().map(|p| p.uri));
        }
        self.prune_parts(&mut removed);
        Ok(removed)
    }

    /// The stream is over: EXT-X-ENDLIST, no preload hint (§4.4.5.3). Close
    /// the last segment first.
    pub fn end(&mut self) -> Result<(), LiveError> {
        if !self.open.parts.is_empty() {
            return Err(LiveError::OpenParts(self.open.parts.len()));
        }
        self.ended = true;
        self.preload_hint = None;
        Ok(())
    }

    /// Drop the parts of segments starting more than 3 target durations
    /// before the live edge (§6.2.2), oldest first.
    fn prune_parts(&mut self, removed: &mut Removed) {
        let limit = 3.0 * f64::from(self.target_duration()) + 1e-9;
        let mut distance =
            sum(&self.open.parts) + self.segments.iter().map(|s| s.duration_s).sum::<f64>();
        for s in self.segments.iter_mut() {
            if distance <= limit {
                break;
            }
            removed.parts.extend(s.parts.drain(..).map(|p| p.uri));
            distance -= s.duration_s;
        }
    }

    /// How many segments a delta update skips: those starting more than
    /// `until` s before the live edge (§6.2.5.1).
    fn skippable(&self, until: f64) -> usize {
        let mut distance = sum(&self.open.parts);
        let recent = self
            .segments
            .iter()
            .rev()
            .take_while(|s| {
                distance += s.duration_s;
                distance <= until + 1e-9
            })
            .count();
        self.segments.len() - recent
    }

    /// The playlist text. EXT-X-VERSION is the lowest that fits (§6.2.1,
    /// §8): 9 with EXT-X-SKIP, 6 with EXT-X-MAP, else 3. Once ended,
    /// SERVER-CONTROL and PART-INF stay as they were (every rendition must
    /// carry the same SERVER-CONTROL, §6.2.4; listed parts need PART-INF).
    pub fn render(&self, opts: &RenderOptions) -> String {
        let td = self.target_duration();
        let part_target = round5(self.part_target());
        let skip_until = 6.0 * f64::from(td);
        let skipped = match opts.skip && !self.ended {
            true => self.skippable(skip_until),
            false => 0,
        };
        let version = match (skipped, &self.config.map_uri) {
            (1.., _) => 9,
            (0, Some(_)) => 6,
            (0, None) => 3,
        };
        let mut w = Writer::default();
        w.line("#EXTM3U");
        w.tag("EXT-X-VERSION", version);
        w.tag("EXT-X-TARGETDURATION", td);
        w.tag(
            "EXT-X-SERVER-CONTROL",
            format_args!(
                "CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={},CAN-SKIP-UNTIL={}",
                secs(3.0 * part_target),
                secs(skip_until)
            ),
        );
        w.tag(
            "EXT-X-PART-INF",
            format_args!("PART-TARGET={}", secs(part_target)),
        );
        w.tag("EXT-X-MEDIA-SEQUENCE", self.media_sequence);
        w.tag("EXT-X-DISCONTINUITY-SEQUENCE", self.discontinuity_sequence);
        w.line("#EXT-X-INDEPENDENT-SEGMENTS");
        if skipped > 0 {
            w.tag("EXT-X-SKIP", format_args!("SKIPPED-SEGMENTS={skipped}"));
        }
        if let Some(map) = &self.config.map_uri {
            w.tag("EXT-X-MAP", format_args!("URI=\"{map}\""));
        }
        for s in self.segments.iter().skip(skipped) {
            w.head(s.discontinuity, s.pdt_ms);
            s.parts.iter().for_each(|p| w.part(p));
            w.tag("EXTINF", format_args!("{},", secs(s.duration_s)));
            w.line(&s.uri);
        }
        if !self.open.parts.is_empty() {
            w.head(self.open.discontinuity, self.open.pdt_ms);
            self.open.parts.iter().for_each(|p| w.part(p));
        }
        if let Some(hint) = self.preload_hint.as_ref().filter(|_| !self.ended) {
            w.tag(
                "EXT-X-PRELOAD-HINT",
                format_args!("TYPE=PART,URI=\"{hint}\""),
            );
        }
        for r in opts.reports {
            let part = r
                .last
                .part
                .map(|p| format!(",LAST-PART={p}"))
                .unwrap_or_default();
            w.tag(
                "EXT-X-RENDITION-REPORT",
                format_args!("URI=\"{}\",LAST-MSN={}{part}", r.uri, r.last.msn),
            );
        }
        if self.ended {
            w.line("#EXT-X-ENDLIST");
        }
        w.0
    }

    /// Invariants of the written text: every part at most PART-TARGET
    /// (§4.4.4.9), every segment at most TARGETDURATION once rounded
    /// (§4.4.3.1), and a segment's parts summing to its EXTINF within
    /// `frame_s` s (one frame).
    pub fn check(&self, frame_s: f64) -> Result<(), Violation> {
        let (td, pt) = (self.target_duration(), round5(self.part_target()));
        let listed = self.segments.iter().flat_map(|s| &s.parts);
        if let Some(p) = listed
            .chain(&self.open.parts)
            .find(|p| round5(p.duration_s) > pt)
        {
            return Err(Violation::PartOverTarget(p.uri.clone(), p.duration_s, pt));
        }
        for s in &self.segments {
            if s.duration_s.round() > f64::from(td) {
                return Err(Violation::SegmentOverTarget(
                    s.uri.clone(),
                    s.duration_s,
                    td,
                ));
            }
            let parts = sum(&s.parts);
            if !s.parts.is_empty() && (parts - s.duration_s).abs() > frame_s {
                return Err(Violation::PartsSum(s.uri.clone(), s.duration_s, parts));
            }
        }
        Ok(())
    }
}

/// Playlist text, a tag or URI a line.
#[derive(Default)]
struct Writer(String);

impl Writer {
    fn line(&mut self, line: impl Display) {
        let _ = writeln!(self.0, "{line}");
    }

    fn tag(&mut self, name: &str, value: impl Display) {
        let _ = writeln!(self.0, "#{name}:{value}");
    }

    /// The segment tags that precede a segment's first part (§4.4.4.9).
    fn head(&mut self, discontinuity: bool, pdt_ms: Option<i64>) {
        if discontinuity {
            self.line("#EXT-X-DISCONTINUITY");
        }
        if let Some(date) = pdt_ms.and_then(chrono::DateTime::from_timestamp_millis) {
            let date = date.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            self.tag("EXT-X-PROGRAM-DATE-TIME", date);
        }
    }

    fn part(&mut self, p: &Part) {
        let independent = if p.independent {
            ",INDEPENDENT=YES"
        } else {
            ""
        };
        let (d, uri) = (secs(p.duration_s), &p.uri);
        self.tag(
            "EXT-X-PART",
            format_args!("DURATION={d},URI=\"{uri}\"{independent}"),
        );
    }
}

/// Why a stored playlist text could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not an LL-HLS media playlist written by this module: {0}")]
    Shape(String),
}

/// The value of `NAME=` in an attribute list (quoted or not).
fn attr<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = list;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], q[end + 1..].trim_start_matches(','))
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            }
        };
        if key.trim() == name {
            return Some(value);
        }
        rest = next;
    }
    None
}

impl LivePlaylist {
    /// Read back a playlist [`LivePlaylist::render`] wrote (without skip),
    /// with `config`'s window and floors: the edge decides blocking
    /// reloads and writes delta updates from it, and a worker that takes
    /// over a channel continues it. Rendition reports are not kept (they
    /// are render options). Bounded: one pass over the lines.
    ///
    /// Errors: [`ParseError::Shape`] for text that is not such a playlist
    /// (missing header, a number that does not parse, EXT-X-SKIP).
    pub fn parse(text: &str, config: LiveConfig) -> Result<Self, ParseError> {
        let bad = |what: &str| ParseError::Shape(what.to_string());
        let num = |v: &str, what: &str| v.trim().parse::<f64>().map_err(|_| bad(what));
        let mut pl = LivePlaylist::new(config);
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some("#EXTM3U") {
            return Err(bad("no #EXTM3U"));
        }
        let mut head = Open::default();
        let mut extinf: Option<f64> = None;
        for line in lines {
            let line = line.trim();
            let (tag, value) = line.split_once(':').unwrap_or((line, ""));
            match tag {
                "#EXT-X-MEDIA-SEQUENCE" => {
                    pl.media_sequence = value.parse().map_err(|_| bad("media sequence"))?
                }
                "#EXT-X-DISCONTINUITY-SEQUENCE" => {
                    pl.discontinuity_sequence =
                        value.parse().map_err(|_| bad("discontinuity sequence"))?
                }
                "#EXT-X-TARGETDURATION" => {
                    let td = num(value, "target duration")?;
                    pl.max_segment_s = pl.max_segment_s.max(td - 0.5);
                }
                "#EXT-X-PART-INF" => {
                    let pt = num(attr(value, "PART-TARGET").unwrap_or(""), "part target")?;
                    pl.max_part_s = pl.max_part_s.max(pt);
                }
                "#EXT-X-SKIP" => return Err(bad("a delta update")),
                "#EXT-X-DISCONTINUITY" => head.discontinuity = true,
                "#EXT-X-PROGRAM-DATE-TIME" => {
                    let date = chrono::DateTime::parse_from_rfc3339(value)
                        .map_err(|_| bad("program date-time"))?;
                    head.pdt_ms = Some(date.timestamp_millis());
                }
                "#EXT-X-PART" => {
                    let d = num(attr(value, "DURATION").unwrap_or(""), "part duration")?;
                    let uri = attr(value, "URI").ok_or_else(|| bad("part URI"))?;
                    pl.max_part_s = pl.max_part_s.max(d);
                    head.parts.push(Part {
                        uri: uri.to_string(),
                        duration_s: d,
                        independent: attr(value, "INDEPENDENT") == Some("YES"),
                    });
                }
                "#EXTINF" => {
                    let d = value.split(',').next().unwrap_or("");
                    extinf = Some(num(d, "EXTINF")?);
                }
                "#EXT-X-PRELOAD-HINT" => pl.preload_hint = attr(value, "URI").map(str::to_string),
                "#EXT-X-ENDLIST" => pl.ended = true,
                _ if !line.is_empty() && !line.starts_with('#') => {
                    let d = extinf.take().ok_or_else(|| bad("a URI without EXTINF"))?;
                    let h = std::mem::take(&mut head);
                    pl.max_segment_s = pl.max_segment_s.max(d);
                    pl.segments.push_back(Segment {
                        uri: line.to_string(),
                        duration_s: d,
                        pdt_ms: h.pdt_ms,
                        discontinuity: h.discontinuity,
                        parts: h.parts,
                    });
                }
                _ => {}
            }
        }
        pl.open = head;
        Ok(pl)
    }

    /// The segment in progress: its program date-time (Unix ms) and the
    /// parts published so far.
    pub fn open_segment(&self) -> (Option<i64>, &[Part]) {
        (self.open.pdt_ms, &self.open.parts)
    }

    /// The DVR window's length now, seconds (sum of listed EXTINFs).
    pub fn listed_s(&self) -> f64 {
        self.segments.iter().map(|s| s.duration_s).sum()
    }
}

/// Delivery directives of a playlist request (§6.2.5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    /// `_HLS_msn`.
    pub msn: Option<u64>,
    /// `_HLS_part`.
    pub part: Option<u32>,
    /// `_HLS_skip=YES` or `v2` (no DATERANGEs here, so `v2` skips the same).
    pub skip: bool,
}

/// Why a playlist request is a Bad Request (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectiveError {
    #[error("{0} is not a decimal integer")]
    NotANumber(&'static str),
    #[error("{0} is given twice")]
    Repeated(&'static str),
    #[error("_HLS_skip is neither YES nor v2")]
    BadSkip,
    #[error("_HLS_part without _HLS_msn")]
    PartWithoutMsn,
    #[error("_HLS_msn={msn} is beyond {limit}, the last segment plus two")]
    MsnTooFar { msn: u64, limit: u64 },
    #[error("_HLS_part={part} is more than {limit} parts past the last part")]
    PartTooFar { part: u32, limit: u64 },
}

fn once<T>(slot: &mut Option<T>, key: &'static str, value: T) -> Result<(), DirectiveError> {
    match slot.replace(value) {
        Some(_) => Err(DirectiveError::Repeated(key)),
        None => Ok(()),
    }
}

fn number<T: std::str::FromStr>(key: &'static str, value: &str) -> Result<T, DirectiveError> {
    match value.bytes().all(|b| b.is_ascii_digit()) {
        true => value.parse().map_err(|_| DirectiveError::NotANumber(key)),
        false => Err(DirectiveError::NotANumber(key)),
    }
}

impl Directives {
    /// Read `_HLS_msn`, `_HLS_part` and `_HLS_skip` from a query string
    /// (other parameters are ignored). `_HLS_part` without `_HLS_msn` is a
    /// Bad Request (§6.2.5.2), and so are malformed or repeated values.
    pub fn parse(query: &str) -> Result<Self, DirectiveError> {
        let (mut msn, mut part, mut skip) = (None, None, None);
        for pair in query.trim_start_matches('?').split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "_HLS_msn" => once(&mut msn, "_HLS_msn", number("_HLS_msn", value)?)?,
                "_HLS_part" => once(&mut part, "_HLS_part", number("_HLS_part", value)?)?,
                "_HLS_skip" if matches!(value, "YES" | "v2") => once(&mut skip, "_HLS_skip", ())?,
                "_HLS_skip" => return Err(DirectiveError::BadSkip),
                _ => {}
            }
        }
        if part.is_some() && msn.is_none() {
            return Err(DirectiveError::PartWithoutMsn);
        }
        Ok(Directives {
            msn,
            part,
            skip: skip.is_some(),
        })
    }
}

/// What to do with a playlist request (§6.2.5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// Answer now (render with `skip` from the directives).
    Ready,
    /// Hold the request until a change makes it [`Reload::Ready`], at most 3 ×
    /// the target duration; then Service Unavailable (503).
    Wait,
    /// Bad Request (400).
    BadRequest(DirectiveError),
}

/// Decide a (blocking) playlist request against the playlist's state. The
/// request is ready once the playlist holds segment `_HLS_msn` (with
/// `_HLS_part`: that part of it, or any later one; a part index past the
/// last of a complete segment means part 0 of the next). Bad Requests:
/// `_HLS_msn` past the last complete segment plus two, or `_HLS_part` more
/// than the Advance Part Limit (3 / PART-TARGET parts, or 3 when PART-TARGET
/// ≥ 1 s) past the last part. An ended playlist is always ready: its
/// directives are ignored.
pub fn blocking_reload(playlist: &LivePlaylist, directives: &Directives) -> Reload {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let Some(msn) = directives.msn.filter(|_| !playlist.ended) else {
        return Reload::Ready;
    };
    let next = playlist.next_msn();
    if msn > next + 1 {
        let limit = next + 1;
        return Reload::BadRequest(DirectiveError::MsnTooFar { msn, limit });
    }
    let open = playlist.open.parts.len() as u64;
    if let Some(part) = directives.part {
        let pt = playlist.part_target();
        let limit = if pt < 1.0 {
            (3.0 / pt + 1e-9).floor() as u64
        } else {
            3
        };
        // Parts still to come before the requested one (a lower bound).
        let ahead = match msn.cmp(&next) {
            Less => 0,
            Equal => (u64::from(part) + 1).saturating_sub(open),
            Greater => u64::from(part) + 1,
        };
        if ahead > limit {
            return Reload::BadRequest(DirectiveError::PartTooFar { part, limit });
        }
    }
    let ready = match (msn.cmp(&next), directives.part) {
        (Less, None) => true,
        (Less, Some(part)) => {
            let index = msn.checked_sub(playlist.media_sequence);
            let parts = index
                .and_then(|i| playlist.segments.get(i as usize))
                .map_or(0, |s| s.parts.len());
            (part as usize) < parts || msn + 1 < next || open > 0
        }
        (Equal, Some(part)) => u64::from(part) < open,
        (Equal, None) | (Greater, _) => false,
    };
    if ready {
        Reload::Ready
    } else {
        Reload::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::m3u8_rs;

    // 2026-01-01T00:00:00Z
    const T0: i64 = 1_767_225_600_000;

    fn playlist(window_s: f64) -> LivePlaylist {
        LivePlaylist::new(LiveConfig {
            target_duration_s: 1,
            part_target_s: 0.5,
            window_s,
            map_uri: Some("init.mp4".into()),
        })
    }

    /// Segment `n` (1 s from T0 + n s): parts `p<n>.<i>.m4s` of `parts` s,
    /// then `s<n>.m4s` with the duration of its parts.
    fn segment(pl: &mut LivePlaylist, n: i64, parts: &[f64]) -> Removed {
        pl.begin_segment(Some(T0 + n * 1000), false).unwrap();
        let mut removed = Removed::default();
        for (i, d) in parts.iter().enumerate() {
            let r = pl.push_part(&format!("p{n}.{i}.m4s"), *d, i == 0).unwrap();
            removed.parts.extend(r.parts);
        }
        let r = pl.close_segment(&format!("s{n}.m4s"), None).unwrap();
        removed.segments.extend(r.segments);
        removed.parts.extend(r.parts);
        removed
    }

    fn parses(text: &str, segments: usize) -> m3u8_rs::MediaPlaylist {
        let pl = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect(text);
        assert_eq!(pl.segments.len(), segments, "{text}");
        assert!(pl
            .segments
            .iter()
            .all(|s| s.uri.ends_with(".m4s") && s.duration > 0.0));
        pl
    }

    const HEAD: &str = "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.50000,CAN-SKIP-UNTIL=6.00000
#EXT-X-PART-INF:PART-TARGET=0.50000
";

    #[test]
    fn golden_live_edge_with_parts_hint_and_reports() {
        let mut pl = playlist(30.0);
        for n in 0..4 {
            segment(&mut pl, n, &[0.5, 0.5]);
        }
        segment(&mut pl, 4, &[0.52, 0.48]);
        pl.begin_segment(Some(T0 + 5000), false).unwrap();
        let removed = pl.push_part("p5.0.m4s", 0.5, true).unwrap();
        // Segment 2 now starts 3.5 s before the live edge: out of the part window.
        assert_eq!(removed.parts, ["p2.0.m4s", "p2.1.m4s"]);
        pl.set_preload_hint("p5.1.m4s").unwrap();
        let reports = [
            RenditionReport {
                uri: "../720p/index.m3u8".into(),
                last: Position {
                    msn: 5,
                    part: Some(0),
                },
            },
            pl.report("../audio/index.m3u8").unwrap(),
        ];
        let text = pl.render(&RenderOptions {
            skip: false,
            reports: &reports,
        });
        let golden = "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.56000,CAN-SKIP-UNTIL=6.00000
#EXT-X-PART-INF:PART-TARGET=0.52000
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z
#EXTINF:1.00000,
s0.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:01.000Z
#EXTINF:1.00000,
s1.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:02.000Z
#EXTINF:1.00000,
s2.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:03.000Z
#EXT-X-PART:DURATION=0.50000,URI=\"p3.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.50000,URI=\"p3.1.m4s\"
#EXTINF:1.00000,
s3.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:04.000Z
#EXT-X-PART:DURATION=0.52000,URI=\"p4.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.48000,URI=\"p4.1.m4s\"
#EXTINF:1.00000,
s4.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:05.000Z
#EXT-X-PART:DURATION=0.50000,URI=\"p5.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p5.1.m4s\"
#EXT-X-RENDITION-REPORT:URI=\"../720p/index.m3u8\",LAST-MSN=5,LAST-PART=0
#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=5,LAST-PART=0
";
        assert_eq!(text, golden);
        pl.check(1.0 / 50.0).unwrap();
        let parsed = parses(&text, 5);
        assert!(!parsed.end_list);
        // m3u8-rs keeps the LL-HLS tags it does not know as unknown tags.
        let parts = &parsed.segments[4].unknown_tags;
        assert_eq!((parts.len(), parts[0].tag.as_str()), (2, "X-PART"));
    }

    #[test]
    fn golden_delta_update_skips_old_segments() {
        let mut pl = playlist(30.0);
        for n in 0..10 {
            segment(&mut pl, n, &[0.5, 0.5]);
        }
        pl.begin_segment(Some(T0 + 10_000), false).unwrap();
        pl.push_part("p10.0.m4s", 0.5, true).unwrap();
        pl.set_preload_hint("p10.1.m4s").unwrap();
        let d = Directives::parse("_HLS_msn=10&_HLS_part=0&_HLS_skip=YES").unwrap();
        assert_eq!(blocking_reload(&pl, &d), Reload::Ready);
        let text = pl.render(&RenderOptions {
            skip: d.skip,
            reports: &[],
        });
        // The live edge is at 10.5 s; CAN-SKIP-UNTIL is 6 s: segments starting
        // before 4.5 s are skipped.
        let mut golden = HEAD.replace("VERSION:6", "VERSION:9");
        golden.push_str(
            "#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-SKIP:SKIPPED-SEGMENTS=5
#EXT-X-MAP:URI=\"init.mp4\"
",
        );
        for n in 5..10 {
            golden.push_str(&format!(
                "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:{n:02}.000Z\n"
            ));
            if n >= 8 {
                golden.push_str(&format!(
                    "#EXT-X-PART:DURATION=0.50000,URI=\"p{n}.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.50000,URI=\"p{n}.1.m4s\"
"
                ));
            }
            golden.push_str(&format!("#EXTINF:1.00000,\ns{n}.m4s\n"));
        }
        golden.push_str(
            "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:10.000Z
#EXT-X-PART:DURATION=0.50000,URI=\"p10.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p10.1.m4s\"
",
        );
        assert_eq!(text, golden);
        assert_eq!(parses(&text, 5).segments[0].uri, "s5.m4s");
        // Without _HLS_skip: all ten, version 6.
        let full = pl.render(&RenderOptions::default());
        assert!(full.starts_with(HEAD) && !full.contains("SKIP:"), "{full}");
        parses(&full, 10);
    }

    #[test]
    fn golden_sliding_window_advances_sequences() {
        let mut pl = playlist(3.0);
        pl.config.map_uri = None;
        let mut dropped = Vec::new();
        for n in 0..6 {
            // The encoder restarted before segments 1 and 4.
            let pdt = T0 + n * 1000 + if n >= 4 { 60_000 } else { 0 };
            pl.begin_segment(Some(pdt), n == 1 || n == 4).unwrap();
            let removed = pl.close_segment(&format!("s{n}.m4s"), Some(1.0)).unwrap();
            dropped.extend(removed.segments);
        }
        assert_eq!(dropped, ["s0.m4s", "s1.m4s", "s2.m4s"]);
        pl.set_preload_hint("p6.0.m4s").unwrap();
        let text = pl.render(&RenderOptions::default());
        let golden = HEAD.replace("VERSION:6", "VERSION:3")
            + "#EXT-X-MEDIA-SEQUENCE:3
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:03.000Z
#EXTINF:1.00000,
s3.m4s
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:01:04.000Z
#EXTINF:1.00000,
s4.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:01:05.000Z
#EXTINF:1.00000,
s5.m4s
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p6.0.m4s\"
";
        assert_eq!(text, golden);
        let parsed = parses(&text, 3);
        assert_eq!(
            (parsed.media_sequence, parsed.discontinuity_sequence),
            (3, 1)
        );
        assert!(parsed.segments[1].discontinuity);
    }

    #[test]
    fn golden_ended_playlist() {
        let mut pl = playlist(30.0);
        for n in 0..3 {
            segment(&mut pl, n, &[0.5, 0.5]);
        }
        pl.begin_segment(Some(T0 + 3000), false).unwrap();
        pl.push_part("p3.0.m4s", 0.5, true).unwrap();
        assert_eq!(pl.end(), Err(LiveError::OpenParts(1)));
        pl.push_part("p3.1.m4s", 0.5, false).unwrap();
        pl.close_segment("s3.m4s", None).unwrap();
        pl.set_preload_hint("p4.0.m4s").unwrap();
        pl.end().unwrap();
        let text = pl.render(&RenderOptions::default());
        let mut golden = HEAD.to_string()
            + "#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init.mp4\"
";
        for n in 0..4 {
            golden.push_str(&format!(
                "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:{n:02}.000Z\n"
            ));
            if n >= 1 {
                golden.push_str(&format!(
                    "#EXT-X-PART:DURATION=0.50000,URI=\"p{n}.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.50000,URI=\"p{n}.1.m4s\"
"
                ));
            }
            golden.push_str(&format!("#EXTINF:1.00000,\ns{n}.m4s\n"));
        }
        golden.push_str("#EXT-X-ENDLIST\n");
        assert_eq!(text, golden);
        assert!(parses(&text, 4).end_list);
        // _HLS_skip is ignored once ended (§6.2.5.1), and so is a far _HLS_msn.
        assert_eq!(
            pl.render(&RenderOptions {
                skip: true,
                reports: &[]
            }),
            text
        );
        let far = Directives::parse("_HLS_msn=99&_HLS_part=0").unwrap();
        assert_eq!(blocking_reload(&pl, &far), Reload::Ready);
        assert_eq!(pl.push_part("p4.0.m4s", 0.5, true), Err(LiveError::Ended));
        assert_eq!(pl.close_segment("s4.m4s", Some(1.0)), Err(LiveError::Ended));
    }

    /// Segments 0–2 complete with two parts each, segment 3 with one part.
    fn edge() -> LivePlaylist {
        let mut pl = playlist(30.0);
        for n in 0..3 {
            segment(&mut pl, n, &[0.5, 0.5]);
        }
        pl.push_part("p3.0.m4s", 0.5, true).unwrap();
        pl
    }

    fn decide(pl: &LivePlaylist, query: &str) -> Reload {
        match Directives::parse(query) {
            Ok(d) => blocking_reload(pl, &d),
            Err(e) => Reload::BadRequest(e),
        }
    }

    #[test]
    fn blocking_reload_decision_table() {
        use DirectiveError::*;
        let pl = edge();
        assert_eq!(
            pl.last_position(),
            Some(Position {
                msn: 3,
                part: Some(0)
            })
        );
        let cases = [
            ("", Reload::Ready),
            ("_HLS_skip=YES", Reload::Ready),
            ("_HLS_msn=0", Reload::Ready),
            ("_HLS_msn=2", Reload::Ready),
            ("_HLS_msn=2&_HLS_part=1", Reload::Ready),
            // Past the last part of segment 2: part 0 of segment 3, published.
            ("_HLS_msn=2&_HLS_part=7", Reload::Ready),
            ("_HLS_msn=3&_HLS_part=0", Reload::Ready),
            ("?_HLS_msn=3&_HLS_part=1&_HLS_skip=v2&token=x", Reload::Wait),
            ("_HLS_msn=3", Reload::Wait),
            ("_HLS_msn=4&_HLS_part=0", Reload::Wait),
            // Advance Part Limit: 3 / 0.5 s = 6 parts past p3.0.
            ("_HLS_msn=3&_HLS_part=6", Reload::Wait),
            (
                "_HLS_msn=3&_HLS_part=7",
                Reload::BadRequest(PartTooFar { part: 7, limit: 6 }),
            ),
            (
                "_HLS_msn=4&_HLS_part=6",
                Reload::BadRequest(PartTooFar { part: 6, limit: 6 }),
            ),
            // Last segment (2) plus two is 4.
            (
                "_HLS_msn=5",
                Reload::BadRequest(MsnTooFar { msn: 5, limit: 4 }),
            ),
            ("_HLS_part=1", Reload::BadRequest(PartWithoutMsn)),
            ("_HLS_msn=x", Reload::BadRequest(NotANumber("_HLS_msn"))),
            ("_HLS_msn=", Reload::BadRequest(NotANumber("_HLS_msn"))),
            ("_HLS_msn=+3", Reload::BadRequest(NotANumber("_HLS_msn"))),
            ("_HLS_msn=-1", Reload::BadRequest(NotANumber("_HLS_msn"))),
            (
                "_HLS_msn=3&_HLS_part=1.5",
                Reload::BadRequest(NotANumber("_HLS_part")),
            ),
            (
                "_HLS_msn=1&_HLS_msn=2",
                Reload::BadRequest(Repeated("_HLS_msn")),
            ),
            ("_HLS_msn=1&_HLS_skip=NO", Reload::BadRequest(BadSkip)),
        ];
        for (query, expected) in cases {
            assert_eq!(decide(&pl, query), expected, "{query}");
        }
        // Once segment 3 closes without new parts, part 1 of it means part 0 of 4.
        let mut pl = pl;
        pl.close_segment("s3.m4s", Some(0.5)).unwrap();
        assert_eq!(
            pl.last_position(),
            Some(Position {
                msn: 3,
                part: Some(0)
            })
        );
        assert_eq!(decide(&pl, "_HLS_msn=3"), Reload::Ready);
        assert_eq!(decide(&pl, "_HLS_msn=3&_HLS_part=1"), Reload::Wait);
        assert_eq!(decide(&pl, "_HLS_msn=5"), Reload::Wait);
        pl.end().unwrap();
        assert_eq!(decide(&pl, "_HLS_msn=3&_HLS_part=1"), Reload::Ready);
        assert_eq!(
            decide(&pl, "_HLS_part=1"),
            Reload::BadRequest(PartWithoutMsn)
        );
    }

    #[test]
    fn rendered_text_reads_back_to_the_same_playlist() {
        let mut pl = playlist(30.0);
        for n in 0..4 {
            segment(&mut pl, n, &[0.5, 0.5]);
        }
        pl.begin_segment(Some(T0 + 4000), true).unwrap();
        pl.push_part("p4.0.m4s", 0.5, true).unwrap();
        pl.set_preload_hint("p4.1.m4s").unwrap();
        let text = pl.render(&RenderOptions::default());
        let back = LivePlaylist::parse(&text, pl.config.clone()).unwrap();
        assert_eq!(back.render(&RenderOptions::default()), text);
        assert_eq!(back.last_position(), pl.last_position());
        let d = Directives::parse("_HLS_msn=4&_HLS_part=1").unwrap();
        assert_eq!(blocking_reload(&back, &d), Reload::Wait);
        let d = Directives::parse("_HLS_msn=4&_HLS_part=0").unwrap();
        assert_eq!(blocking_reload(&back, &d), Reload::Ready);
        assert!(LivePlaylist::parse("#EXTM3U\n#EXTINF:x,\na.m4s\n", pl.config.clone()).is_err());
        assert!(LivePlaylist::parse("garbage", pl.config.clone()).is_err());
    }

    #[test]
    fn part_target_is_the_longest_part_ever_published() {
        let mut pl = playlist(30.0);
        segment(&mut pl, 0, &[0.61, 0.39]);
        assert_eq!(pl.part_target(), 0.61);
        // Short parts later, and the long one leaving the part window, keep it.
        for n in 1..6 {
            segment(&mut pl, n, &[0.3, 0.3, 0.3, 0.1]);
        }
        assert!(pl.segments().next().unwrap().parts.is_empty());
        assert_eq!(pl.part_target(), 0.61);
        let text = pl.render(&RenderOptions::default());
        assert!(text.contains("PART-HOLD-BACK=1.83000,"), "{text}");
        assert!(
            text.contains("#EXT-X-PART-INF:PART-TARGET=0.61000\n"),
            "{text}"
        );
        pl.check(0.02).unwrap();
        // Never below the configured nominal part duration either.
        assert_eq!(edge().part_target(), 0.5);
    }

    #[test]
    fn segment_duration_and_invariants() {
        let mut pl = playlist(30.0);
        // Parts of 10, 10 and 9 frames at 30 fps: the EXTINF is their sum.
        for (i, d) in [1.0 / 3.0, 1.0 / 3.0, 0.3].into_iter().enumerate() {
            pl.push_part(&format!("p0.{i}.m4s"), d, i == 0).unwrap();
        }
        pl.close_segment("s0.m4s", None).unwrap();
        let s0 = pl.segments().next().unwrap();
        assert!((s0.duration_s - 29.0 / 30.0).abs() < 1e-12);
        assert_eq!(pl.close_segment("s1.m4s", None), Err(LiveError::NoDuration));
        pl.check(1.0 / 30.0).unwrap();
        // A caller's EXTINF two frames off its parts is caught.
        pl.push_part("p1.0.m4s", 0.5, true).unwrap();
        pl.close_segment("s1.m4s", Some(0.5 + 2.0 / 30.0)).unwrap();
        assert!(matches!(pl.check(1.0 / 30.0), Err(Violation::PartsSum(u, ..)) if u == "s1.m4s"));
        // A longer segment raises TARGETDURATION (rounded, §4.4.3.1).
        pl.close_segment("s2.m4s", Some(1.6)).unwrap();
        assert_eq!(pl.target_duration(), 2);
        // Refused input.
        assert_eq!(
            pl.push_part("p3.0.m4s", 0.0, true),
            Err(LiveError::BadDuration(0.0))
        );
        assert!(matches!(
            pl.push_part("a\"b", 0.5, true),
            Err(LiveError::BadUri(_))
        ));
        assert!(matches!(
            pl.set_preload_hint("a\nb"),
            Err(LiveError::BadUri(_))
        ));
        assert_eq!(
            pl.begin_segment(Some(i64::MAX), false),
            Err(LiveError::BadPdt(i64::MAX))
        );
        pl.push_part("p3.0.m4s", 0.5, true).unwrap();
        assert_eq!(pl.begin_segment(None, true), Err(LiveError::SegmentStarted));
    }

    #[test]
    fn window_keeps_three_target_durations_and_returns_parts() {
        // A window shorter than 3 target durations still keeps 3 s.
        let mut pl = playlist(1.0);
        let mut removed = Removed::default();
        for n in 0..5 {
            let r = segment(&mut pl, n, &[0.5, 0.5]);
            removed.segments.extend(r.segments);
            removed.parts.extend(r.parts);
        }
        assert_eq!(pl.media_sequence(), 2);
        assert_eq!(removed.segments, ["s0.m4s", "s1.m4s"]);
        // Every part of a dropped segment left the playlist too, once.
        assert_eq!(
            removed.parts,
            ["p0.0.m4s", "p0.1.m4s", "p1.0.m4s", "p1.1.m4s"]
        );
    }
}
