//! JSON payloads of control and metadata frames: the handshake, typed
//! errors, the end of a stream, and markers.
//!
//! A session: the client sends [`Control::Hello`]; the server answers
//! [`Control::Welcome`] and starts sending media, or [`Control::Error`] and
//! closes. The server ends a finished VOD or channel with [`Control::End`].

use serde::{Deserialize, Serialize};

use crate::frame::{Frame, FrameKind};

/// Longest control payload either side accepts, bytes.
pub const MAX_CONTROL_BYTES: usize = 64 * 1024;

/// A control message (`"type"` names the variant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// Client → server, first frame of a connection.
    Hello {
        /// Protocol version the client speaks ([`crate::frame::VERSION`]).
        version: u8,
        /// Playback token from the control plane's `OpenSession` (HS256 JWT).
        token: String,
        /// Video or channel id (ULID).
        id: String,
        /// Rendition name to start with (e.g. the session's
        /// `initial_rendition`); the lowest bitrate when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rendition: Option<String>,
    },
    /// Server → client: the session is open; media follows.
    Welcome {
        session_id: String,
        video_id: String,
        /// A running live channel (no end) rather than a VOD played live.
        live: bool,
        /// The ladder, lowest bitrate first; a frame's rendition id is the
        /// index in this list.
        renditions: Vec<RenditionInfo>,
        /// Index of the rendition the stream starts with.
        rendition: u8,
        /// The audio track, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio: Option<AudioInfo>,
    },
    /// Server → client, then the connection closes.
    Error { code: ErrorCode, reason: String },
    /// Server → client: the video or channel ended; the connection closes.
    End { reason: String },
}

/// Why the server refused or ended a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The first frame was not a valid hello (or came too late).
    BadRequest,
    /// The client speaks another protocol version.
    UnsupportedVersion,
    /// Missing, invalid or expired token, or a token for another video.
    Unauthorized,
    /// No such video or channel, or nothing playable yet.
    NotFound,
    /// The connection cap is reached.
    Busy,
    /// The server failed; the reason says how.
    Internal,
}

/// One rendition of the ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionInfo {
    /// Name, e.g. "720p" (the HLS track name).
    pub name: String,
    /// Peak bitrate, bit/s.
    pub bandwidth_bps: u64,
    pub width: u32,
    pub height: u32,
    /// RFC 6381 codec string, e.g. "avc1.64001f".
    pub codecs: String,
}

/// The audio track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInfo {
    /// Samples per second, Hz.
    pub sample_rate: u32,
    pub channels: u8,
    /// RFC 6381 codec string, e.g. "mp4a.40.2".
    pub codecs: String,
}

/// A metadata frame's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Metadata {
    /// Timeline markers (all of them at the start, then each change).
    Markers { markers: Vec<serde_json::Value> },
    /// A marker was deleted.
    MarkerDeleted { id: String },
}

impl Control {
    /// This message as a control frame.
    pub fn to_frame(&self) -> Frame {
        Frame::json(
            FrameKind::Control,
            serde_json::to_vec(self).unwrap_or_default(),
        )
    }

    /// Parse a control frame's payload.
    ///
    /// Errors: a reason when the frame is not a control frame, too large,
    /// or not a known message.
    pub fn from_frame(frame: &Frame) -> Result<Control, String> {
        if frame.kind != FrameKind::Control {
            return Err(format!("expected a control frame, got {:?}", frame.kind));
        }
        if frame.payload.len() > MAX_CONTROL_BYTES {
            return Err(format!(
                "control frame of {} bytes is over the limit of {MAX_CONTROL_BYTES}",
                frame.payload.len()
            ));
        }
        serde_json::from_slice(&frame.payload).map_err(|e| format!("bad control message: {e}"))
    }
}

impl Metadata {
    /// This message as a metadata frame at `pts` (90 kHz ticks).
    pub fn to_frame(&self, pts: i64) -> Frame {
        let mut f = Frame::json(
            FrameKind::Metadata,
            serde_json::to_vec(self).unwrap_or_default(),
        );
        f.pts = pts;
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip_and_shape() {
        let h = Control::Hello {
            version: 1,
            token: "t".into(),
            id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            rendition: None,
        };
        let f = h.to_frame();
        assert_eq!(
            std::str::from_utf8(&f.payload).unwrap(),
            r#"{"type":"hello","version":1,"token":"t","id":"01ARZ3NDEKTSV4RRFFQ69G5FAV"}"#
        );
        assert_eq!(Control::from_frame(&f).unwrap(), h);
        let e = Control::Error {
            code: ErrorCode::Unauthorized,
            reason: "expired".into(),
        };
        assert_eq!(
            std::str::from_utf8(&e.to_frame().payload).unwrap(),
            r#"{"type":"error","code":"unauthorized","reason":"expired"}"#
        );
    }

    #[test]
    fn bad_control_payloads_are_reasons() {
        let f = Frame::json(FrameKind::Control, b"{\"type\":\"nope\"}".to_vec());
        assert!(Control::from_frame(&f)
            .unwrap_err()
            .contains("bad control message"));
        let f = Frame::json(FrameKind::Metadata, b"{}".to_vec());
        assert!(Control::from_frame(&f).is_err());
        let f = Frame::json(FrameKind::Control, vec![b' '; MAX_CONTROL_BYTES + 1]);
        assert!(Control::from_frame(&f)
            .unwrap_err()
            .contains("over the limit"));
    }
}
