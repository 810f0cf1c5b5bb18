//! The client's jitter buffer: frames wait `depth_ms` before playout, then
//! leave at the pace of their PTS against the local clock. When the buffer
//! runs dry the playout clock stops (a stall, counted with its length) and
//! restarts once `depth_ms` is buffered again, as a player rebuffers.
//!
//! Pure: the caller passes the wall clock (ms) in.

use std::collections::VecDeque;

/// 90 kHz ticks per ms.
const TICKS_PER_MS: f64 = 90.0;

/// A PTS jump larger than this (either way) restarts the playout clock
/// (a new source timeline after a discontinuity), 90 kHz ticks (10 s).
const RESET_JUMP_TICKS: i64 = 900_000;

/// One queued frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<T> {
    /// 90 kHz ticks.
    pub pts: i64,
    /// 90 kHz ticks.
    pub duration: u32,
    pub item: T,
}

/// Playout state.
#[derive(Debug)]
pub struct JitterBuffer<T> {
    depth_ticks: i64,
    queue: VecDeque<Entry<T>>,
    /// End (pts + duration) of the newest frame pushed, ticks.
    newest_end: Option<i64>,
    /// While playing: (media position, wall ms) of the clock's base.
    base: Option<(i64, f64)>,
    /// Media position where playout stopped (start, stall).
    held_at: Option<i64>,
    stall_started_ms: Option<f64>,
    started: bool,
    /// Stalls after the first start.
    pub stalls: u64,
    /// Their total length, ms.
    pub stall_ms: f64,
    /// Timeline restarts (PTS jumps).
    pub resets: u64,
}

impl<T> JitterBuffer<T> {
    /// A buffer that holds `depth_ms` before playing (and after a stall).
    pub fn new(depth_ms: u32) -> Self {
        JitterBuffer {
            depth_ticks: (f64::from(depth_ms) * TICKS_PER_MS) as i64,
            queue: VecDeque::new(),
            newest_end: None,
            base: None,
            held_at: None,
            stall_started_ms: None,
            started: false,
            stalls: 0,
            stall_ms: 0.0,
            resets: 0,
        }
    }

    /// Current media position, ticks.
    fn position(&self, now_ms: f64) -> Option<i64> {
        match self.base {
            Some((media, wall)) => Some(media + ((now_ms - wall) * TICKS_PER_MS) as i64),
            None => self.held_at,
        }
    }

    /// Queue a frame received at `now_ms`.
    pub fn push(&mut self, pts: i64, duration: u32, item: T, now_ms: f64) {
        if let Some(end) = self.newest_end {
            if (pts - end).abs() > RESET_JUMP_TICKS {
                self.queue.clear();
                self.base = None;
                self.held_at = None;
                self.newest_end = None;
                self.resets += 1;
                let _ = now_ms;
            }
        }
        let end = pts + i64::from(duration);
        self.newest_end = Some(self.newest_end.map_or(end, |e| e.max(end)));
        if self.held_at.is_none() && self.base.is_none() {
            self.held_at = Some(pts);
        }
        self.queue.push_back(Entry {
            pts,
            duration,
            item,
        });
    }

    /// Media buffered ahead of the playout position, ms.
    pub fn level_ms(&self, now_ms: f64) -> f64 {
        match (self.newest_end, self.position(now_ms)) {
            (Some(end), Some(pos)) => ((end - pos).max(0) as f64) / TICKS_PER_MS,
            _ => 0.0,
        }
    }

    /// Whether playout is running (not starting, not stalled).
    pub fn playing(&self) -> bool {
        self.base.is_some()
    }

    /// Advance to `now_ms`: the frames due, in order.
    pub fn poll(&mut self, now_ms: f64) -> Vec<Entry<T>> {
        let mut due = Vec::new();
        if self.base.is_none() {
            let (Some(end), Some(at)) = (self.newest_end, self.held_at) else {
                return due;
            };
            if end - at < self.depth_ticks {
                return due;
            }
            self.base = Some((at, now_ms));
            if let Some(s) = self.stall_started_ms.take() {
                self.stall_ms += now_ms - s;
            }
            self.started = true;
        }
        let pos = self.position(now_ms).unwrap_or(0);
        // Bounded by the queue's length.
        while self.queue.front().is_some_and(|e| e.pts <= pos) {
            if let Some(e) = self.queue.pop_front() {
                due.push(e);
            }
        }
        if let Some(end) = self.newest_end {
            if pos > end && self.queue.is_empty() {
                // Dry: stop the clock at the end of what was played.
                self.base = None;
                self.held_at = Some(end);
                self.stall_started_ms = Some(now_ms);
                self.stalls += 1;
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_depth_then_plays_at_pts_pace() {
        let mut j = JitterBuffer::new(200);
        // 40 ms frames (3600 ticks) arriving in real time from t = 0:
        // 160 ms buffered after four, still filling.
        for i in 0..4 {
            j.push(i * 3600, 3600, i, i as f64 * 40.0);
            assert!(j.poll(i as f64 * 40.0).is_empty(), "still filling at {i}");
        }
        // The fifth makes 200 ms: playout starts with frame 0.
        j.push(4 * 3600, 3600, 4, 160.0);
        let due = j.poll(160.0);
        assert_eq!(due.iter().map(|e| e.item).collect::<Vec<_>>(), vec![0]);
        assert!(j.playing());
        // 80 ms later the clock is at 7200 ticks: frames 1 and 2 are due.
        let due = j.poll(240.0);
        assert_eq!(due.iter().map(|e| e.item).collect::<Vec<_>>(), vec![1, 2]);
        assert!(
            (j.level_ms(240.0) - 120.0).abs() < 1.0,
            "{}",
            j.level_ms(240.0)
        );
        assert_eq!(j.stalls, 0);
    }

    #[test]
    fn stalls_when_dry_and_counts_their_length() {
        let mut j = JitterBuffer::new(80);
        j.push(0, 3600, (), 0.0);
        j.push(3600, 3600, (), 0.0);
        assert_eq!(j.poll(0.0).len(), 1);
        assert_eq!(j.poll(40.0).len(), 1);
        // Nothing more arrives: at 100 ms the buffer is dry.
        j.poll(100.0);
        assert_eq!(j.stalls, 1);
        assert!(!j.playing());
        // Frames come back at 300 ms; playout restarts once 80 ms are in.
        j.push(7200, 3600, (), 300.0);
        j.push(10800, 3600, (), 300.0);
        assert_eq!(j.poll(300.0).len(), 1);
        assert!((j.stall_ms - 200.0).abs() < 1.0, "{}", j.stall_ms);
    }

    #[test]
    fn a_large_pts_jump_restarts_the_timeline() {
        let mut j = JitterBuffer::new(40);
        j.push(0, 3600, (), 0.0);
        j.poll(0.0);
        j.push(100 * 90_000, 3600, (), 10.0);
        assert_eq!(j.resets, 1);
        assert_eq!(j.poll(10.0).len(), 1);
    }
}
