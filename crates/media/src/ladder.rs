//! The ABR ladder: configured rungs and the plan for one source.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::probe::VideoInfo;

/// One configured rung: a target height and its video bitrate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rung {
    /// Output height, pixels (the width follows the source's display aspect).
    pub height: u32,
    /// Target average video bitrate, bit/s. The VBV cap (`maxrate`) is 1.5×
    /// this with a 2× buffer, per Apple's HLS authoring spec §1.14 guidance
    /// of peak ≤ 200 % of average for VOD.
    pub video_bitrate: u64,
}

/// The configured ladder, highest rung first.
///
/// Parsed from text like `1080:5000k,720:3000k,480:1400k,360:800k,240:400k`
/// (height in pixels, with an optional `p`; bitrate in bit/s with optional
/// `k`/`M` suffixes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ladder {
    pub rungs: Vec<Rung>,
}

impl Default for Ladder {
    /// 1080/720/480/360/240 p at 5000/3000/1400/800/400 kbit/s (in line with
    /// Apple's HLS authoring spec §2.3 example ladder for H.264).
    fn default() -> Self {
        "1080:5000k,720:3000k,480:1400k,360:800k,240:400k"
            .parse()
            .expect("default ladder parses")
    }
}

/// Why a ladder text did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid ladder {text:?}: {reason}")]
pub struct LadderParseError {
    text: String,
    reason: String,
}

impl FromStr for Ladder {
    type Err = LadderParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| LadderParseError {
            text: text.to_string(),
            reason,
        };
        let mut rungs = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (h, b) = item
                .split_once(':')
                .ok_or_else(|| err(format!("rung {item:?} is not HEIGHT:BITRATE")))?;
            let height: u32 = h
                .trim()
                .trim_end_matches('p')
                .parse()
                .map_err(|_| err(format!("height {h:?} is not a number")))?;
            if !(16..=4320).contains(&height) {
                return Err(err(format!("height {height} outside 16..=4320")));
            }
            let video_bitrate = parse_bitrate(b.trim())
                .ok_or_else(|| err(format!("bitrate {b:?} is not like 800k or 5M")))?;
            if !(50_000..=100_000_000).contains(&video_bitrate) {
                return Err(err(format!("bitrate {video_bitrate} outside 50k..=100M")));
            }
            rungs.push(Rung {
                height,
                video_bitrate,
            });
        }
        if rungs.is_empty() {
            return Err(err("no rungs".into()));
        }
        rungs.sort_by_key(|r| std::cmp::Reverse(r.height));
        rungs.dedup_by_key(|r| r.height);
        Ok(Ladder { rungs })
    }
}

impl fmt::Display for Ladder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .rungs
            .iter()
            .map(|r| format!("{}:{}k", r.height, r.video_bitrate / 1000))
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn parse_bitrate(s: &str) -> Option<u64> {
    let (digits, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1_000.0),
        'm' | 'M' => (&s[..s.len() - 1], 1_000_000.0),
        _ => (s, 1.0),
    };
    let v: f64 = digits.parse().ok()?;
    (v.is_finite() && v > 0.0).then(|| (v * mult).round() as u64)
}

/// One rendition to produce for a given source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenditionPlan {
    /// Stable name used in paths and the master playlist, e.g. `720p`.
    pub name: String,
    /// Output size, pixels; both even (4:2:0 chroma), aspect ratio of the
    /// displayed source kept to within one pixel pair.
    pub width: u32,
    pub height: u32,
    /// Target average video bitrate, bit/s.
    pub video_bitrate: u64,
    /// VBV maximum rate, bit/s.
    pub max_bitrate: u64,
    /// VBV buffer size, bits.
    pub buffer_size: u64,
}

impl Ladder {
    /// The renditions for a source: every rung at or below the source's
    /// displayed height, never upscaled. A source smaller than the lowest
    /// rung gets one rendition at its own (even-rounded) size, with the
    /// lowest rung's bitrate scaled by pixel count.
    pub fn plan(&self, video: &VideoInfo) -> Vec<RenditionPlan> {
        let (sw, sh) = (video.display_width.max(2), video.display_height.max(2));
        let mut plans: Vec<RenditionPlan> = self
            .rungs
            .iter()
            .filter(|r| r.height <= sh)
            .map(|r| rendition(r.height, sw, sh, r.video_bitrate))
            .collect();
        if plans.is_empty() {
            let lowest = self.rungs.last().expect("ladder has rungs");
            let lw = f64::from(lowest.height) * f64::from(sw) / f64::from(sh);
            let ratio = (f64::from(sw) * f64::from(sh)) / (lw * f64::from(lowest.height));
            let bitrate = ((lowest.video_bitrate as f64) * ratio.clamp(0.25, 1.0)) as u64;
            plans.push(rendition(sh, sw, sh, bitrate.max(64_000)));
        }
        plans
    }
}

fn rendition(height: u32, sw: u32, sh: u32, video_bitrate: u64) -> RenditionPlan {
    let height = even(height);
    let width = even(((f64::from(height) * f64::from(sw) / f64::from(sh)).round()) as u32);
    RenditionPlan {
        name: format!("{height}p"),
        width,
        height,
        video_bitrate,
        max_bitrate: video_bitrate * 3 / 2,
        buffer_size: video_bitrate * 2,
    }
}

/// Round down to an even number, at least 2.
fn even(v: u32) -> u32 {
    (v & !1).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::FrameRate;

    fn video(w: u32, h: u32) -> VideoInfo {
        VideoInfo {
            index: 0,
            coded_width: w,
            coded_height: h,
            display_width: w,
            display_height: h,
            rotation: 0,
            frame_rate: FrameRate { num: 25, den: 1 },
            codec: "h264".into(),
        }
    }

    #[test]
    fn default_ladder_on_720p_source_has_four_rungs_and_no_upscale() {
        let plan = Ladder::default().plan(&video(1280, 720));
        let names: Vec<_> = plan.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["720p", "480p", "360p", "240p"]);
        assert_eq!((plan[0].width, plan[0].height), (1280, 720));
        assert_eq!((plan[1].width, plan[1].height), (852, 480));
        assert_eq!((plan[3].width, plan[3].height), (426, 240));
    }

    #[test]
    fn wide_source_keeps_aspect_and_even_sizes() {
        // bikes.mp4: 640x272 (2.35:1)
        let plan = Ladder::default().plan(&video(640, 272));
        assert_eq!(plan.len(), 1);
        assert_eq!((plan[0].width, plan[0].height), (564, 240));
        assert!(plan.iter().all(|p| p.width % 2 == 0 && p.height % 2 == 0));
    }

    #[test]
    fn tiny_source_gets_one_rendition_at_its_own_size() {
        // carphone: 176x144, below the lowest rung.
        let plan = Ladder::default().plan(&video(176, 144));
        assert_eq!(plan.len(), 1);
        assert_eq!((plan[0].width, plan[0].height), (176, 144));
        assert_eq!(plan[0].name, "144p");
        assert!(plan[0].video_bitrate < 400_000);
    }

    #[test]
    fn odd_source_sizes_become_even() {
        let plan = Ladder::default().plan(&video(321, 241));
        assert_eq!((plan[0].width, plan[0].height), (320, 240));
    }

    #[test]
    fn portrait_source_plans_by_height() {
        let plan = Ladder::default().plan(&video(720, 1280));
        assert_eq!(plan[0].name, "1080p");
        assert_eq!((plan[1].width, plan[1].height), (404, 720));
    }

    #[test]
    fn ladder_text_round_trips_and_rejects_garbage() {
        let l: Ladder = "720p:3M, 360:800k".parse().unwrap();
        assert_eq!(l.rungs[0].video_bitrate, 3_000_000);
        assert_eq!(l.to_string(), "720:3000k,360:800k");
        assert!("".parse::<Ladder>().is_err());
        assert!("720".parse::<Ladder>().is_err());
        assert!("720:abc".parse::<Ladder>().is_err());
        assert!("99999:1M".parse::<Ladder>().is_err());
    }
}
