//! The live packager stage: cuts every track's encoded packets into LL-HLS
//! parts (CMAF fragments, [`FragmentMuxer`]) and segments.
//!
//! Cutting rules, per track, decided on the packet that would open the
//! next part (so the current part's length is known exactly):
//! * a **segment** starts at a video keyframe (keyframes are decided once
//!   for every rung: segments align across the ladder) or, for audio, at
//!   the first packet at or after the next multiple of the segment
//!   duration (computed by division, never stepped);
//! * a **part** ends before the packet that would make it longer than the
//!   part target, so every part is ≤ the target unless one packet alone is
//!   longer (the playlist's PART-TARGET is the maximum part ever cut).
//!
//! A packet's duration is the next packet's DTS minus its own (the muxer
//! needs it for the fragment's last sample); the last packet of a track
//! keeps the previous packet's duration.

use crossbeam_channel::{Receiver, Sender};
use ffmpeg_next as ff;

use super::fragment::FragmentMuxer;
use super::LiveEvent;
use crate::error::MediaError;
use crate::pipeline::PacketMsg;

/// One track's cutting state.
pub(crate) struct TrackPackager {
    track: String,
    muxer: FragmentMuxer,
    is_video: bool,
    segment_ticks: i64,
    part_ticks: i64,
    pending: Option<ff::Packet>,
    last_duration: i64,
    /// DTS of the current part's first packet.
    part_start: Option<i64>,
    /// PTS of the current part's first packet.
    part_first_pts: i64,
    part_starts_segment: bool,
    part_independent: bool,
    /// Audio: first PTS and the next segment boundary.
    first_pts: Option<i64>,
    next_boundary: i64,
}

impl TrackPackager {
    /// `segment_s`/`part_s`: nominal segment and part durations, seconds.
    pub(crate) fn new(
        track: String,
        muxer: FragmentMuxer,
        is_video: bool,
        segment_s: f64,
        part_s: f64,
    ) -> Self {
        let tb = f64::from(muxer.time_base());
        TrackPackager {
            track,
            is_video,
            segment_ticks: ((segment_s / tb).round() as i64).max(1),
            part_ticks: ((part_s / tb).round() as i64).max(1),
            muxer,
            pending: None,
            last_duration: 0,
            part_start: None,
            part_first_pts: 0,
            part_starts_segment: true,
            part_independent: true,
            first_pts: None,
            next_boundary: 0,
        }
    }

    fn seconds(&self, ticks: i64) -> f64 {
        ticks as f64 * f64::from(self.muxer.time_base())
    }

    /// Take one packet (timestamps in `from`); may close a part.
    pub(crate) fn push(
        &mut self,
        mut packet: ff::Packet,
        from: ff::Rational,
        notes: &Sender<LiveEvent>,
    ) -> Result<(), MediaError> {
        packet.rescale_ts(from, self.muxer.time_base());
        let Some(dts) = packet.dts().or(packet.pts()) else {
            return Ok(());
        };
        if let Some(mut prev) = self.pending.take() {
            let prev_dts = prev.dts().or(prev.pts()).unwrap_or(dts);
            if dts > prev_dts {
                self.last_duration = dts - prev_dts;
            }
            prev.set_duration(self.last_duration.max(1));
            self.muxer.write(prev)?;
        }
        let starts_segment = self.starts_segment(&packet);
        match self.part_start {
            None => {
                self.part_start = Some(dts);
                self.part_first_pts = packet.pts().unwrap_or(dts);
                self.part_starts_segment = true;
                self.part_independent = !self.is_video || packet.is_key();
            }
            Some(start) => {
                let too_long =
                    dts - start + self.last_duration > self.part_ticks + self.part_ticks / 50;
                if starts_segment || too_long {
                    self.emit_part(dts - start, starts_segment, notes)?;
                    self.part_start = Some(dts);
                    self.part_first_pts = packet.pts().unwrap_or(dts);
                    self.part_starts_segment = starts_segment;
                    self.part_independent = !self.is_video || packet.is_key();
                }
            }
        }
        self.pending = Some(packet);
        Ok(())
    }

    fn starts_segment(&mut self, packet: &ff::Packet) -> bool {
        if self.is_video {
            return packet.is_key();
        }
        let pts = packet.pts().or(packet.dts()).unwrap_or(0);
        match self.first_pts {
            None => {
                self.first_pts = Some(pts);
                self.next_boundary = pts.saturating_add(self.segment_ticks);
                true
            }
            Some(first) if pts >= self.next_boundary => {
                let n = (pts.saturating_sub(first) / self.segment_ticks).saturating_add(1);
                self.next_boundary = first.saturating_add(n.saturating_mul(self.segment_ticks));
                true
            }
            Some(_) => false,
        }
    }

    fn emit_part(
        &mut self,
        duration: i64,
        next_starts_segment: bool,
        notes: &Sender<LiveEvent>,
    ) -> Result<(), MediaError> {
        let bytes = self.muxer.cut()?;
        if bytes.is_empty() {
            return Ok(());
        }
        let start = self.part_start.unwrap_or(0);
        notes
            .send(LiveEvent::Part {
                track: self.track.clone(),
                bytes,
                start_s: self.seconds(start),
                presentation_s: self.seconds(self.part_first_pts),
                duration_s: self.seconds(duration),
                independent: self.part_independent,
                starts_segment: self.part_starts_segment,
                next_starts_segment,
            })
            .map_err(|_| MediaError::Pipeline("caller stopped".into()))
    }

    /// Write the held packet and close the last part.
    pub(crate) fn finish(mut self, notes: &Sender<LiveEvent>) -> Result<(), MediaError> {
        if let Some(mut last) = self.pending.take() {
            let dts = last.dts().or(last.pts()).unwrap_or(0);
            last.set_duration(self.last_duration.max(1));
            self.muxer.write(last)?;
            let start = self.part_start.unwrap_or(dts);
            self.emit_part(dts + self.last_duration.max(1) - start, false, notes)?;
        }
        notes
            .send(LiveEvent::TrackEnded { track: self.track })
            .map_err(|_| MediaError::Pipeline("caller stopped".into()))
    }
}

/// Packager stage: one [`TrackPackager`] per track, until every track ended.
pub(crate) fn live_package_stage(
    mut tracks: Vec<TrackPackager>,
    rx: Receiver<PacketMsg>,
    notes: Sender<LiveEvent>,
) -> Result<(), MediaError> {
    let mut ended = vec![false; tracks.len()];
    let mut done: Vec<Option<TrackPackager>> = Vec::new();
    while ended.iter().any(|e| !e) {
        match rx.recv() {
            Ok(PacketMsg::Packet {
                track,
                packet,
                time_base,
            }) => {
                if !ended[track] {
                    tracks[track].push(packet, time_base, &notes)?;
                }
            }
            Ok(PacketMsg::End { track }) => ended[track] = true,
            Err(_) => return Err(MediaError::Pipeline("an encoder stopped".into())),
        }
    }
    done.extend(tracks.into_iter().map(Some));
    for t in done.into_iter().flatten() {
        t.finish(&notes)?;
    }
    Ok(())
}
