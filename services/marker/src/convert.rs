//! Protobuf (`streaming.marker.v1`) ⇄ domain markers: the only place that
//! knows both.

use stream_bus::marker as pb;
use stream_markers::{Change, ChangeOp, Marker, MarkerInput, ValidationError};
use time::OffsetDateTime;

/// A producer's proto marker → domain input; `index` names it in errors.
pub fn input_from_proto(index: usize, m: &pb::MarkerInput) -> Result<MarkerInput, ValidationError> {
    let bad = |field: &'static str, reason: String| ValidationError::Field {
        index,
        field,
        reason,
    };
    let source_time = m
        .source_time_ms
        .map(|ms| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .map_err(|e| bad("source_time", e.to_string()))
        })
        .transpose()?;
    let data = m
        .data_json
        .as_deref()
        .map(|s| {
            if s.len() > stream_markers::limits::MAX_DATA_BYTES {
                return Err(bad("data", "too large".into()));
            }
            match serde_json::from_str::<serde_json::Value>(s) {
                Ok(serde_json::Value::Object(o)) => Ok(o),
                Ok(_) => Err(bad("data", "not a JSON object".into())),
                Err(e) => Err(bad("data", e.to_string())),
            }
        })
        .transpose()?;
    Ok(MarkerInput {
        kind: m.kind.clone(),
        label: m.label.clone(),
        media_time: m.media_time_s,
        duration: m.duration_s,
        source_time,
        data,
    })
}

/// Domain input → proto (producers in Rust use this shape).
pub fn input_to_proto(m: &MarkerInput) -> pb::MarkerInput {
    pb::MarkerInput {
        kind: m.kind.clone(),
        label: m.label.clone(),
        media_time_s: m.media_time,
        duration_s: m.duration,
        source_time_ms: m
            .source_time
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64),
        data_json: m.data.as_ref().and_then(|d| serde_json::to_string(d).ok()),
    }
}

/// A stored change → the NATS change event.
pub fn change_to_proto(video_id: &str, c: &Change) -> pb::MarkerChange {
    use pb::marker_change::Kind;
    let kind = match c.op {
        ChangeOp::Created => Kind::Created,
        ChangeOp::Updated => Kind::Updated,
        ChangeOp::Deleted => Kind::Deleted,
    };
    pb::MarkerChange {
        kind: kind as i32,
        video_id: video_id.to_string(),
        marker_id: c.marker_id.clone(),
        marker: c.marker.as_ref().map(marker_to_proto),
        change_id: c.id.to_string(),
    }
}

fn marker_to_proto(m: &Marker) -> pb::Marker {
    pb::Marker {
        id: m.id.clone(),
        video_id: m.video_id.clone(),
        input: Some(input_to_proto(&m.input)),
        created_at_ms: (m.created_at.unix_timestamp_nanos() / 1_000_000) as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let json = r#"{"kind":"scene","label":"cut","media_time":2.04,"duration":1.0,
            "source_time":"2026-01-02T03:04:05.250Z","data":{"score":0.7}}"#;
        let m: MarkerInput = serde_json::from_str(json).unwrap();
        assert_eq!(input_from_proto(0, &input_to_proto(&m)).unwrap(), m);
        let mut bad = input_to_proto(&m);
        bad.data_json = Some("[1]".into());
        assert!(input_from_proto(2, &bad)
            .unwrap_err()
            .to_string()
            .contains("markers[2].data"));
    }
}
