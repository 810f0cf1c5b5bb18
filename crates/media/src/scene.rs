//! Scene-change detection on decoded frames (pure; the pipeline feeds it
//! from its own thread).
//!
//! Each frame's luma plane is reduced to a [`GRID_W`]×[`GRID_H`] grid of
//! block means (cheap, and insensitive to noise and small motion). The
//! score follows libavfilter's `scdet`: `mafd` is the mean absolute
//! difference of consecutive grids in percent of full scale, and the score
//! is `min(mafd, |mafd − previous mafd|)`, so steady motion (large but
//! constant differences) does not count as a cut. A frame whose score
//! reaches the threshold starts a new scene; cuts closer than
//! [`MIN_GAP_FRAMES`] to the previous one are ignored (flashes).

/// Grid width (blocks).
pub const GRID_W: usize = 64;
/// Grid height (blocks).
pub const GRID_H: usize = 36;
/// Frames after a cut during which no other cut is reported.
pub const MIN_GAP_FRAMES: u32 = 5;
/// Default threshold (score 0–100), like `scdet`'s default of 10.
pub const DEFAULT_THRESHOLD: f64 = 10.0;

/// Block means of an 8-bit luma plane.
pub fn luma_grid(plane: &[u8], width: usize, height: usize, stride: usize) -> Vec<u8> {
    let mut out = vec![0u8; GRID_W * GRID_H];
    if width == 0 || height == 0 {
        return out;
    }
    for gy in 0..GRID_H {
        let y0 = gy * height / GRID_H;
        let y1 = ((gy + 1) * height / GRID_H).max(y0 + 1).min(height);
        for gx in 0..GRID_W {
            let x0 = gx * width / GRID_W;
            let x1 = ((gx + 1) * width / GRID_W).max(x0 + 1).min(width);
            let mut sum = 0u64;
            let mut n = 0u64;
            for y in y0..y1 {
                let row = &plane[y * stride..y * stride + width];
                sum += row[x0..x1].iter().map(|&v| u64::from(v)).sum::<u64>();
                n += (x1 - x0) as u64;
            }
            out[gy * GRID_W + gx] = (sum / n.max(1)) as u8;
        }
    }
    out
}

/// The detector's state.
#[derive(Debug, Clone)]
pub struct SceneDetector {
    threshold: f64,
    prev: Option<Vec<u8>>,
    prev_mafd: f64,
    since_cut: u32,
}

impl SceneDetector {
    /// `threshold`: score 0–100 at or above which a frame is a cut.
    pub fn new(threshold: f64) -> Self {
        SceneDetector {
            threshold,
            prev: None,
            prev_mafd: 0.0,
            since_cut: MIN_GAP_FRAMES,
        }
    }

    /// Feed the next frame's grid ([`luma_grid`]); returns the score if this
    /// frame starts a new scene.
    pub fn push(&mut self, grid: Vec<u8>) -> Option<f64> {
        let prev = self.prev.replace(grid)?;
        let cur = self.prev.as_deref().unwrap_or_default();
        let sad: u64 = prev
            .iter()
            .zip(cur)
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        let mafd = sad as f64 / cur.len().max(1) as f64 / 255.0 * 100.0;
        let score = mafd.min((mafd - self.prev_mafd).abs()).clamp(0.0, 100.0);
        self.prev_mafd = mafd;
        self.since_cut = self.since_cut.saturating_add(1);
        if score >= self.threshold && self.since_cut >= MIN_GAP_FRAMES {
            self.since_cut = 0;
            Some(score)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(v: u8) -> Vec<u8> {
        vec![v; GRID_W * GRID_H]
    }

    #[test]
    fn grid_of_a_plane_with_stride() {
        // 128×72 plane, stride 136, left half 0, right half 200.
        let (w, h, stride) = (128, 72, 136);
        let mut plane = vec![7u8; stride * h];
        for y in 0..h {
            for x in 0..w {
                plane[y * stride + x] = if x < w / 2 { 0 } else { 200 };
            }
        }
        let g = luma_grid(&plane, w, h, stride);
        assert_eq!(g[0], 0);
        assert_eq!(g[GRID_W - 1], 200);
        assert_eq!(g[GRID_W * GRID_H - 1], 200);
    }

    #[test]
    fn cuts_but_not_motion_or_flashes() {
        let mut d = SceneDetector::new(DEFAULT_THRESHOLD);
        assert_eq!(d.push(flat(20)), None);
        for _ in 0..10 {
            assert_eq!(d.push(flat(20)), None);
        }
        assert!(d.push(flat(200)).is_some(), "hard cut");
        // A second change right after (flash back) is within the gap.
        assert_eq!(d.push(flat(20)), None);
        // Steady motion: each frame differs from the last by the same amount.
        let mut d = SceneDetector::new(DEFAULT_THRESHOLD);
        let mut cuts = 0;
        for i in 0..40u8 {
            let g: Vec<u8> = (0..GRID_W * GRID_H)
                .map(|k| ((k as u32 * 7 + u32::from(i) * 40) % 256) as u8)
                .collect();
            cuts += usize::from(d.push(g).is_some());
        }
        assert!(cuts <= 1, "steady motion reported {cuts} cuts");
    }
}
