//! The decode stage: demux, decode (and rotate) video, decide keyframes,
//! fan frames out to the rungs and audio packets to the audio stage.

use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use ffmpeg_next as ff;

use super::rotate::RotationFilter;
use super::{fan_out, AudioMsg, CancelRef, FrameMsg, Note, Progress};
use crate::error::MediaError;

pub(super) struct DecodeStats {
    pub(super) frames: u64,
    pub(super) dropped: u64,
    pub(super) decode_errors: u64,
    pub(super) media_end_s: f64,
}

pub(super) struct DecodeStage {
    pub(super) input: ff::format::context::Input,
    pub(super) video_index: usize,
    pub(super) video_tb: ff::Rational,
    pub(super) vdec: ff::decoder::Video,
    pub(super) rotation: u32,
    /// Container start time in the video time base.
    pub(super) start_pts: i64,
    pub(super) segment_ticks: i64,
    pub(super) frame_ticks: i64,
    pub(super) declared_s: f64,
    /// Checks every decoded frame's timestamp (jumps, overflow, bounds).
    pub(super) timestamps: TimestampGuard,
    /// Size every decoded frame must have (the probed coded size), pixels.
    pub(super) frame_size: (u32, u32),
    pub(super) audio_index: Option<usize>,
    pub(super) rung_txs: Vec<Sender<FrameMsg>>,
    pub(super) audio_tx: Option<Sender<AudioMsg>>,
    pub(super) note_tx: Sender<Note>,
    pub(super) started: Instant,
}

/// Consecutive demux errors (other than EOF) tolerated before giving up.
const MAX_READ_ERRORS: u32 = 16;
/// Share of corrupt packets above which the source is rejected.
const MAX_CORRUPT_SHARE: f64 = 0.05;

impl DecodeStage {
    pub(super) fn run(mut self, cancel: &CancelRef) -> Result<DecodeStats, MediaError> {
        let mut rotate = match self.rotation {
            0 => None,
            r => Some(RotationFilter::new(&self.vdec, self.video_tb, r)?),
        };
        let mut state = KeyframeClock::new(self.segment_ticks);
        let mut stats = DecodeStats {
            frames: 0,
            dropped: 0,
            decode_errors: 0,
            media_end_s: 0.0,
        };
        let mut packets = 0u64;
        let mut read_errors = 0;
        let mut last_note = Instant::now();
        let mut last_pts: Option<i64> = None;
        let mut decoded = ff::frame::Video::empty();
        let mut packet = ff::Packet::empty();
        loop {
            if cancel.is_set() {
                return Err(MediaError::Cancelled);
            }
            match packet.read(&mut self.input) {
                Ok(()) => read_errors = 0,
                Err(ff::Error::Eof) => break,
                Err(e) => {
                    read_errors += 1;
                    if read_errors > MAX_READ_ERRORS {
                        return Err(MediaError::Truncated(format!("read failed: {e}")));
                    }
                    continue;
                }
            }
            let index = packet.stream();
            if index == self.video_index {
                packets += 1;
                if self.vdec.send_packet(&packet).is_err() {
                    stats.decode_errors += 1;
                }
                self.drain_video(
                    &mut decoded,
                    &mut rotate,
                    &mut state,
                    &mut last_pts,
                    &mut stats,
                )?;
            } else if Some(index) == self.audio_index {
                if let Some(tx) = &self.audio_tx {
                    let owned = std::mem::replace(&mut packet, ff::Packet::empty());
                    tx.send(AudioMsg::Packet(owned))
                        .map_err(|_| MediaError::Pipeline("audio stage stopped".into()))?;
                }
            }
            if last_note.elapsed() >= Duration::from_millis(500) {
                last_note = Instant::now();
                self.note_progress(&stats);
            }
        }
        // Drain the decoder and the rotation filter.
        let _ = self.vdec.send_eof();
        self.drain_video(
            &mut decoded,
            &mut rotate,
            &mut state,
            &mut last_pts,
            &mut stats,
        )?;
        if let Some(filter) = rotate.as_mut() {
            filter.flush()?;
            while let Some(f) = filter.pull()? {
                self.emit(f, &mut state, &mut last_pts, &mut stats)?;
            }
        }

        if stats.frames == 0 {
            return Err(MediaError::Invalid("no decodable video frames".into()));
        }
        if packets > 20 && stats.decode_errors as f64 > packets as f64 * MAX_CORRUPT_SHARE {
            return Err(MediaError::Invalid(format!(
                "{} of {} video packets are corrupt",
                stats.decode_errors, packets
            )));
        }
        // Less decoded than declared: the file was cut short.
        let frame_s = self.frame_ticks as f64 * f64::from(self.video_tb);
        if self.declared_s > 0.0 && stats.media_end_s + 0.5 + 2.0 * frame_s < self.declared_s * 0.97
        {
            return Err(MediaError::Truncated(format!(
                "decoded {:.2} s of the {:.2} s the header declares",
                stats.media_end_s, self.declared_s
            )));
        }
        for tx in &self.rung_txs {
            tx.send(FrameMsg::End)
                .map_err(|_| MediaError::Pipeline("a rung stopped".into()))?;
        }
        if let Some(tx) = &self.audio_tx {
            tx.send(AudioMsg::End)
                .map_err(|_| MediaError::Pipeline("audio stage stopped".into()))?;
        }
        self.note_progress(&stats);
        Ok(stats)
    }

    fn note_progress(&self, stats: &DecodeStats) {
        let wall = self.started.elapsed().as_secs_f64().max(1e-3);
        let percent = if self.declared_s > 0.0 {
            (stats.media_end_s / self.declared_s * 100.0).clamp(0.0, 100.0)
        } else {
            0.0
        };
        // Progress is advisory: drop it if the caller is behind.
        let _ = self.note_tx.try_send(Note::Progress(Progress {
            media_time_s: stats.media_end_s,
            percent,
            fps: stats.frames as f64 / wall,
            speed: stats.media_end_s / wall,
        }));
    }

    fn drain_video(
        &mut self,
        decoded: &mut ff::frame::Video,
        rotate: &mut Option<RotationFilter>,
        state: &mut KeyframeClock,
        last_pts: &mut Option<i64>,
        stats: &mut DecodeStats,
    ) -> Result<(), MediaError> {
        while self.vdec.receive_frame(decoded).is_ok() {
            let mut frame = std::mem::replace(decoded, ff::frame::Video::empty());
            if (frame.width(), frame.height()) != self.frame_size {
                return Err(MediaError::Invalid(format!(
                    "frame size changes mid-stream from {}x{} to {}x{} after {:.2} s",
                    self.frame_size.0,
                    self.frame_size.1,
                    frame.width(),
                    frame.height(),
                    stats.media_end_s
                )));
            }
            let ts = match frame.timestamp().or(frame.pts()) {
                Some(t) => t
                    .checked_sub(self.start_pts)
                    .ok_or_else(|| MediaError::Invalid("video timestamps overflow".into()))?,
                None => last_pts.map_or(0, |p| p.saturating_add(self.frame_ticks)),
            };
            frame.set_pts(Some(ts));
            match rotate.as_mut() {
                None => self.emit(frame, state, last_pts, stats)?,
                Some(filter) => {
                    filter.push(&frame)?;
                    while let Some(f) = filter.pull()? {
                        self.emit(f, state, last_pts, stats)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn emit(
        &self,
        frame: ff::frame::Video,
        state: &mut KeyframeClock,
        last_pts: &mut Option<i64>,
        stats: &mut DecodeStats,
    ) -> Result<(), MediaError> {
        let pts = frame.pts().unwrap_or(0);
        match self.timestamps.check(pts, *last_pts, stats.frames)? {
            Verdict::Accept => {}
            Verdict::Drop => {
                stats.dropped += 1;
                return Ok(());
            }
        }
        *last_pts = Some(pts);
        let keyframe = state.is_boundary(pts);
        stats.frames += 1;
        stats.media_end_s =
            (pts.saturating_add(self.frame_ticks) as f64 * f64::from(self.video_tb)).max(0.0);
        fan_out(&self.rung_txs, frame, pts, keyframe)?;
        Ok(())
    }
}

/// Decides which frames start a segment: the first frame, then the first
/// frame at or after each multiple of the segment duration from it. Every
/// rung applies the same decision, so keyframes align across the ladder.
///
/// The next boundary is computed, not stepped to: a timestamp far ahead
/// costs one division, whatever the input claims.
pub(crate) struct KeyframeClock {
    segment_ticks: i64,
    first: Option<i64>,
    next: i64,
}

impl KeyframeClock {
    pub(crate) fn new(segment_ticks: i64) -> Self {
        KeyframeClock {
            segment_ticks: segment_ticks.max(1),
            first: None,
            next: 0,
        }
    }

    pub(crate) fn is_boundary(&mut self, pts: i64) -> bool {
        match self.first {
            None => {
                self.first = Some(pts);
                self.next = pts.saturating_add(self.segment_ticks);
                true
            }
            Some(first) if pts >= self.next => {
                // The first multiple of the segment duration past `pts`.
                let n = (pts.saturating_sub(first) / self.segment_ticks).saturating_add(1);
                self.next = first.saturating_add(n.saturating_mul(self.segment_ticks));
                true
            }
            Some(_) => false,
        }
    }
}

/// What to do with a decoded frame's timestamp.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Accept,
    /// Not after the previous frame but close to it (a duplicate or a small
    /// reorder glitch): drop the frame, count it.
    Drop,
}

/// Checks each video frame's timestamp (time-base ticks from the
/// container start) before anything is computed from it. Input errors:
/// a jump forward or back by more than `max_gap` ticks, a timestamp past
/// `max_end` ticks (the longest accepted duration), more than `max_frames`
/// frames.
pub(super) struct TimestampGuard {
    pub(super) tick_s: f64,
    pub(super) max_gap: i64,
    pub(super) max_end: i64,
    pub(super) max_frames: u64,
}

impl TimestampGuard {
    pub(super) fn check(
        &self,
        pts: i64,
        last: Option<i64>,
        frames: u64,
    ) -> Result<Verdict, MediaError> {
        let secs = |t: i64| t as f64 * self.tick_s;
        if frames >= self.max_frames {
            return Err(MediaError::LimitExceeded(format!(
                "more than {} video frames",
                self.max_frames
            )));
        }
        let Some(last) = last else {
            return self.within_end(pts);
        };
        let step = pts.saturating_sub(last);
        if step > self.max_gap {
            return Err(MediaError::Invalid(format!(
                "video timestamps jump {:.1} s ahead at {:.2} s",
                secs(step),
                secs(last)
            )));
        }
        if step < -self.max_gap {
            return Err(MediaError::Invalid(format!(
                "video timestamps go back {:.1} s at {:.2} s",
                -secs(step),
                secs(last)
            )));
        }
        if step <= 0 {
            return Ok(Verdict::Drop);
        }
        self.within_end(pts)
    }

    fn within_end(&self, pts: i64) -> Result<Verdict, MediaError> {
        if pts > self.max_end {
            return Err(MediaError::LimitExceeded(format!(
                "video timestamps reach {:.0} s, at most {:.0} s accepted",
                pts as f64 * self.tick_s,
                self.max_end as f64 * self.tick_s
            )));
        }
        Ok(Verdict::Accept)
    }
}

#[cfg(test)]
mod tests {
    use super::{KeyframeClock, TimestampGuard, Verdict};
    use crate::MediaError;

    fn guard() -> TimestampGuard {
        // 1/1000 time base, 10 s gap, 6 h, 1000 frames.
        TimestampGuard {
            tick_s: 0.001,
            max_gap: 10_000,
            max_end: 6 * 3600 * 1000,
            max_frames: 1000,
        }
    }

    #[test]
    fn timestamps_that_jump_go_back_or_run_long_are_input_errors() {
        let g = guard();
        assert_eq!(g.check(0, None, 0).unwrap(), Verdict::Accept);
        assert_eq!(g.check(40, Some(0), 1).unwrap(), Verdict::Accept);
        assert_eq!(g.check(40, Some(40), 2).unwrap(), Verdict::Drop);
        assert_eq!(g.check(20, Some(40), 2).unwrap(), Verdict::Drop);
        let e = g.check(1_000_040, Some(1040), 5).unwrap_err();
        assert!(matches!(e, MediaError::Invalid(_)));
        assert!(
            e.to_string().contains("jump 999.0 s ahead at 1.04 s"),
            "{e}"
        );
        let e = g.check(0, Some(60_000), 5).unwrap_err();
        assert!(e.to_string().contains("go back 60.0 s"), "{e}");
        let e = g.check(i64::MAX, Some(i64::MIN), 5).unwrap_err();
        assert!(e.is_input_error(), "{e}");
        let e = g
            .check(7 * 3600 * 1000, Some(7 * 3600 * 1000 - 40), 5)
            .unwrap_err();
        assert!(matches!(e, MediaError::LimitExceeded(_)), "{e}");
        let e = g.check(80, Some(40), 1000).unwrap_err();
        assert!(e.to_string().contains("1000 video frames"), "{e}");
    }

    #[test]
    fn keyframe_clock_is_arithmetic_for_far_timestamps() {
        let mut clock = KeyframeClock::new(10);
        assert!(clock.is_boundary(0));
        // Stepping 10 ticks at a time to 10^18 would take years.
        assert!(clock.is_boundary(1_000_000_000_000_000_005));
        assert!(!clock.is_boundary(1_000_000_000_000_000_009));
        assert!(clock.is_boundary(1_000_000_000_000_000_010));
    }

    #[test]
    fn keyframes_at_first_frame_then_each_boundary_25fps() {
        // 25 fps in 1/12800: 512 ticks a frame, 2 s = 25600 ticks.
        let mut clock = KeyframeClock::new(25_600);
        let keys: Vec<i64> = (0..200)
            .map(|i| i * 512)
            .filter(|&p| clock.is_boundary(p))
            .collect();
        assert_eq!(keys, vec![0, 25_600, 51_200, 76_800]);
    }

    #[test]
    fn keyframes_ntsc_rate_land_on_first_frame_past_boundary() {
        // 29.97 fps in 1/30000: 1001 ticks a frame, 2 s = 60000 ticks.
        let mut clock = KeyframeClock::new(60_000);
        let frames: Vec<i64> = (0..130).map(|i| 500 + i * 1001).collect();
        let keys: Vec<i64> = frames
            .iter()
            .copied()
            .filter(|&p| clock.is_boundary(p))
            .collect();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[0], 500);
        assert!(keys[1] - 500 >= 60_000 && keys[1] - 500 < 61_001);
        assert!(keys[2] - 500 >= 120_000 && keys[2] - 500 < 121_001);
    }
}
