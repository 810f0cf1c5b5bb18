//! Markers and their validation (pure).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Bounds on what a producer may submit.
pub mod limits {
    /// Markers in one request or NATS batch.
    pub const MAX_BATCH: usize = 1_000;
    /// Bytes of a label (UTF-8).
    pub const MAX_LABEL_BYTES: usize = 200;
    /// Bytes of `data` serialised as JSON.
    pub const MAX_DATA_BYTES: usize = 4_096;
    /// Characters of a kind (`[a-z0-9_-]`).
    pub const MAX_KIND_LEN: usize = 32;
    /// Markers one video may hold.
    pub const MAX_MARKERS_PER_VIDEO: usize = 200_000;
    /// Markers a range query returns at most.
    pub const MAX_RANGE: usize = 1_000;
    /// Approximate length of a video's change stream (`XADD MAXLEN ~`);
    /// a client further behind gets a `reset` and reloads.
    pub const CHANGE_STREAM_MAXLEN: usize = 10_000;
}

/// A marker as a producer submits it (HTTP JSON body or NATS batch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkerInput {
    /// `scene`, `event`, `chapter`, … (1–32 of `[a-z0-9_-]`).
    pub kind: String,
    /// Short human label, ≤ [`limits::MAX_LABEL_BYTES`] bytes.
    pub label: String,
    /// Seconds on the presentation timeline; `0 ≤ media_time ≤ duration of
    /// the video`.
    pub media_time: f64,
    /// Seconds; a range marker `[media_time, media_time + duration]`, which
    /// must end within the video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Wall-clock instant of the source frame (RFC 3339), for live sources.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_time: Option<OffsetDateTime>,
    /// Opaque JSON object, ≤ [`limits::MAX_DATA_BYTES`] bytes serialised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A stored marker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    /// ULID, assigned by the marker service (sorts by creation).
    pub id: String,
    pub video_id: String,
    #[serde(flatten)]
    pub input: MarkerInput,
    /// When the marker service stored it.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Why a marker was refused. The `Display` text is the reason a client
/// sees.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    #[error("markers[{index}].{field}: {reason}")]
    Field {
        index: usize,
        field: &'static str,
        reason: String,
    },
    #[error("a batch holds 1..={max} markers, got {got}")]
    BatchSize { got: usize, max: usize },
}

fn field(index: usize, field: &'static str, reason: impl Into<String>) -> ValidationError {
    ValidationError::Field {
        index,
        field,
        reason: reason.into(),
    }
}

impl MarkerInput {
    /// Check one marker (number `index` in its batch) against the video's
    /// duration in seconds (`None` or 0 while still unknown: only the lower
    /// bound is checked).
    pub fn validate(
        &self,
        index: usize,
        video_duration: Option<f64>,
    ) -> Result<(), ValidationError> {
        if self.kind.is_empty()
            || self.kind.len() > limits::MAX_KIND_LEN
            || !self
                .kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(field(
                index,
                "kind",
                format!("1..={} of [a-z0-9_-]", limits::MAX_KIND_LEN),
            ));
        }
        if self.label.len() > limits::MAX_LABEL_BYTES {
            return Err(field(
                index,
                "label",
                format!(
                    "{} bytes, at most {}",
                    self.label.len(),
                    limits::MAX_LABEL_BYTES
                ),
            ));
        }
        if self.label.chars().any(char::is_control) {
            return Err(field(index, "label", "control characters"));
        }
        let t = self.media_time;
        if !t.is_finite() {
            return Err(field(index, "media_time", "not a finite number"));
        }
        if t < 0.0 {
            return Err(field(index, "media_time", "negative"));
        }
        let limit = video_duration.filter(|d| *d > 0.0);
        if let Some(d) = limit {
            if t > d {
                return Err(field(
                    index,
                    "media_time",
                    format!("{t} s is beyond the video's duration {d} s"),
                ));
            }
        }
        if let Some(len) = self.duration {
            if !len.is_finite() || len < 0.0 {
                return Err(field(index, "duration", "not a finite number ≥ 0"));
            }
            if let Some(d) = limit {
                if t + len > d + 1e-6 {
                    return Err(field(
                        index,
                        "duration",
                        format!("ends at {} s, beyond the video's duration {d} s", t + len),
                    ));
                }
            }
        }
        if let Some(data) = &self.data {
            let n = serde_json::to_vec(data)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if n > limits::MAX_DATA_BYTES {
                return Err(field(
                    index,
                    "data",
                    format!("{n} bytes as JSON, at most {}", limits::MAX_DATA_BYTES),
                ));
            }
        }
        Ok(())
    }
}

/// Validate a batch: size bounds and every marker. The first error wins;
/// nothing of a refused batch is stored.
pub fn validate_batch(
    batch: &[MarkerInput],
    video_duration: Option<f64>,
) -> Result<(), ValidationError> {
    if batch.is_empty() || batch.len() > limits::MAX_BATCH {
        return Err(ValidationError::BatchSize {
            got: batch.len(),
            max: limits::MAX_BATCH,
        });
    }
    batch
        .iter()
        .enumerate()
        .try_for_each(|(i, m)| m.validate(i, video_duration))
}

impl Marker {
    /// A new marker with a fresh ULID and `created_at` = now. Ids are
    /// monotonic within this process (ULIDs of the same millisecond are
    /// incremented, not random), so markers at equal times keep their
    /// creation order.
    pub fn new(video_id: &str, input: MarkerInput) -> Marker {
        static GEN: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
        let id = {
            let mut g = GEN.lock().unwrap_or_else(|p| p.into_inner());
            g.get_or_insert_with(ulid::Generator::new)
                .generate()
                .unwrap_or_else(|_| ulid::Ulid::new())
        };
        Marker {
            id: id.to_string(),
            video_id: video_id.to_string(),
            input,
            created_at: OffsetDateTime::now_utc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(t: f64) -> MarkerInput {
        MarkerInput {
            kind: "event".into(),
            label: "goal".into(),
            media_time: t,
            duration: None,
            source_time: None,
            data: None,
        }
    }

    #[test]
    fn times_are_checked_against_the_duration() {
        assert!(input(0.0).validate(0, Some(10.0)).is_ok());
        assert!(input(10.0).validate(0, Some(10.0)).is_ok());
        let e = input(10.5).validate(3, Some(10.0)).unwrap_err().to_string();
        assert!(
            e.contains("markers[3].media_time") && e.contains("beyond"),
            "{e}"
        );
        assert!(input(-1.0).validate(0, None).is_err());
        assert!(input(f64::NAN).validate(0, None).is_err());
        assert!(input(f64::INFINITY).validate(0, None).is_err());
        let mut m = input(8.0);
        m.duration = Some(3.0);
        assert!(m.validate(0, Some(10.0)).is_err());
        m.duration = Some(2.0);
        assert!(m.validate(0, Some(10.0)).is_ok());
        m.duration = Some(-2.0);
        assert!(m.validate(0, Some(10.0)).is_err());
    }

    #[test]
    fn sizes_are_bounded() {
        let mut m = input(1.0);
        m.label = "x".repeat(limits::MAX_LABEL_BYTES + 1);
        assert!(m
            .validate(0, None)
            .unwrap_err()
            .to_string()
            .contains("label"));
        let mut m = input(1.0);
        let mut data = serde_json::Map::new();
        data.insert("blob".into(), "y".repeat(limits::MAX_DATA_BYTES).into());
        m.data = Some(data);
        assert!(m
            .validate(0, None)
            .unwrap_err()
            .to_string()
            .contains("data"));
        let mut m = input(1.0);
        m.kind = "Scene!".into();
        assert!(m.validate(0, None).is_err());
        assert!(validate_batch(&[], None).is_err());
        let many = vec![input(1.0); limits::MAX_BATCH + 1];
        assert!(validate_batch(&many, None).is_err());
    }

    #[test]
    fn json_shape() {
        let m: MarkerInput = serde_json::from_str(
            r#"{"kind":"chapter","label":"Intro","media_time":1.5,"duration":2,
                "source_time":"2026-01-02T03:04:05.5Z","data":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(m.duration, Some(2.0));
        assert_eq!(m.source_time.unwrap().unix_timestamp(), 1767323045);
        assert!(serde_json::from_str::<MarkerInput>(
            r#"{"kind":"a","label":"b","media_time":1,"x":1}"#
        )
        .is_err());
        let stored = Marker::new("V", m);
        let back: Marker = serde_json::from_str(&serde_json::to_string(&stored).unwrap()).unwrap();
        assert_eq!(back, stored);
    }
}
