//! Frames of the native stream: a fixed 28-byte header, the payload and a
//! CRC32C of the payload. The layout is specified in `docs/native-stream.md`;
//! in short (all integers big-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `STMF` ([`MAGIC`]) |
//! | 4 | 1 | version ([`VERSION`] = 1) |
//! | 5 | 1 | type ([`FrameKind`]) |
//! | 6 | 1 | flags ([`Flags`]) |
//! | 7 | 1 | rendition id (index in the ladder, 0 = lowest bitrate; [`NO_RENDITION`] for non-video) |
//! | 8 | 8 | PTS, i64, 90 kHz ticks |
//! | 16 | 4 | duration, u32, 90 kHz ticks |
//! | 20 | 4 | payload length, u32, bytes (≤ the reader's limit) |
//! | 24 | 4 | CRC32C (Castagnoli, RFC 3720 §B.4) of bytes 0–23 |
//! | 28 | n | payload |
//! | 28+n | 4 | CRC32C of the payload |
//!
//! The header has its own checksum so that a reader never waits for the
//! payload of a false magic: after corruption it scans for the next magic,
//! checks the header, then the payload ([`FrameDecoder`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"STMF";
/// Protocol version this crate writes and reads.
pub const VERSION: u8 = 1;
/// Header size, bytes (with its CRC32C).
pub const HEADER_LEN: usize = 28;
/// Trailer size (the payload's CRC32C), bytes.
pub const TRAILER_LEN: usize = 4;
/// Rendition id of frames that belong to no video rendition.
pub const NO_RENDITION: u8 = 0xFF;
/// Default limit of a payload, bytes (a 4K intra frame fits many times).
pub const DEFAULT_MAX_PAYLOAD: u32 = 8 << 20;
/// Media clock of PTS and duration: 90 kHz (as MPEG-TS, ISO/IEC 13818-1).
pub const TICKS_PER_SECOND: i64 = 90_000;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// One H.264 access unit, Annex B byte stream; parameter sets (SPS,
    /// PPS) precede every keyframe.
    Video = 1,
    /// One AAC frame with its ADTS header (ISO/IEC 14496-3 §1.A.2).
    Audio = 2,
    /// JSON: markers and other timed metadata ([`crate::control::Metadata`]).
    Metadata = 3,
    /// JSON: handshake, errors, end of stream ([`crate::control::Control`]).
    Control = 4,
}

impl FrameKind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(FrameKind::Video),
            2 => Some(FrameKind::Audio),
            3 => Some(FrameKind::Metadata),
            4 => Some(FrameKind::Control),
            _ => None,
        }
    }
}

/// Frame flags (a bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// The access unit is an IDR picture: decoding can start here.
    pub const KEYFRAME: Flags = Flags(0x01);
    /// The media timeline is not continuous with the previous frame of
    /// this type (source loop, reconnect, skipped frames of a slow reader).
    pub const DISCONTINUITY: Flags = Flags(0x02);
    /// First frame of another rendition (always a keyframe).
    pub const RENDITION_SWITCH: Flags = Flags(0x04);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// One frame, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub flags: Flags,
    /// Index of the rendition in the ladder (0 = lowest bitrate), or
    /// [`NO_RENDITION`].
    pub rendition: u8,
    /// Presentation time, 90 kHz ticks.
    pub pts: i64,
    /// Duration, 90 kHz ticks.
    pub duration: u32,
    pub payload: Bytes,
}

impl Frame {
    /// A control or metadata frame carrying `json` (no rendition, PTS 0
    /// unless set).
    pub fn json(kind: FrameKind, json: Vec<u8>) -> Frame {
        Frame {
            kind,
            flags: Flags::default(),
            rendition: NO_RENDITION,
            pts: 0,
            duration: 0,
            payload: Bytes::from(json),
        }
    }

    /// Whether the frame is a video keyframe.
    pub fn is_keyframe(&self) -> bool {
        self.kind == FrameKind::Video && self.flags.contains(Flags::KEYFRAME)
    }

    /// The frame on the wire: header, payload, trailer in one buffer, so
    /// that it can be shared by every session that sends it.
    ///
    /// Panics never; a payload over `u32::MAX` bytes cannot be built by
    /// this crate's readers (their limit is far below).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(HEADER_LEN + self.payload.len() + TRAILER_LEN);
        self.encode_into(&mut out);
        out.freeze()
    }

    /// Append the frame's wire form to `out`.
    pub fn encode_into(&self, out: &mut BytesMut) {
        let len = u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
        let start = out.len();
        out.put_slice(&MAGIC);
        out.put_u8(VERSION);
        out.put_u8(self.kind as u8);
        out.put_u8(self.flags.0);
        out.put_u8(self.rendition);
        out.put_i64(self.pts);
        out.put_u32(self.duration);
        out.put_u32(len);
        let header_crc = crc32c::crc32c(&out[start..start + 24]);
        out.put_u32(header_crc);
        out.put_slice(&self.payload);
        out.put_u32(crc32c::crc32c(&self.payload));
    }

    /// The same frame, sent with other flags (e.g. a keyframe that a session
    /// sends as its rendition switch): only this frame is re-encoded.
    pub fn with_flags(&self, flags: Flags) -> Frame {
        Frame {
            flags,
            ..self.clone()
        }
    }
}

/// Errors a reader cannot resynchronise past.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// A frame with a valid header checksum names a version this reader
    /// does not speak.
    #[error("unsupported protocol version {0} (this reader speaks {VERSION})")]
    UnsupportedVersion(u8),
    /// Read error of the underlying transport (only through the tokio codec).
    #[error("transport error: {0}")]
    Io(String),
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        FrameError::Io(e.to_string())
    }
}

/// Counters of what a reader skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Times the reader lost the frame boundary and scanned for the magic
    /// (bad header or payload checksum, garbage, oversized length).
    pub resyncs: u64,
    /// Bytes thrown away while scanning.
    pub skipped_bytes: u64,
    /// Well-formed frames of an unknown type (skipped, for forward
    /// compatibility).
    pub unknown_frames: u64,
}

/// Incremental frame reader with resynchronisation.
///
/// Every call consumes at least one byte or returns (`Ok(None)` = needs
/// more input), so a hostile stream cannot make it spin; memory is bounded
/// by `max_payload` + header + trailer of buffered input per frame.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_payload: u32,
    /// Set after a loss of sync, until the next good frame.
    lost: bool,
    pub stats: DecodeStats,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_PAYLOAD)
    }
}

impl FrameDecoder {
    /// A reader that treats any length over `max_payload` bytes as
    /// corruption.
    pub fn new(max_payload: u32) -> Self {
        FrameDecoder {
            max_payload,
            lost: false,
            stats: DecodeStats::default(),
        }
    }

    fn skip(&mut self, buf: &mut BytesMut, n: usize) {
        if !self.lost {
            self.lost = true;
            self.stats.resyncs += 1;
        }
        self.stats.skipped_bytes += n as u64;
        buf.advance(n);
    }

    /// Take the next good frame out of `buf`.
    ///
    /// Errors: [`FrameError::UnsupportedVersion`] for a frame with a valid
    /// header checksum and another version. Corruption is not an error: it
    /// is skipped and counted in [`DecodeStats`].
    pub fn decode_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        // Bounded: each turn either returns or advances `buf` by ≥ 1 byte.
        loop {
            match find_magic(buf) {
                Some(0) => {}
                Some(i) => {
                    self.skip(buf, i);
                    continue;
                }
                None => {
                    // Keep a tail that may be the start of a magic.
                    let keep = buf.len().min(MAGIC.len() - 1);
                    let drop = buf.len() - keep;
                    if drop > 0 {
                        self.skip(buf, drop);
                    }
                    return Ok(None);
                }
            }
            if buf.len() < HEADER_LEN {
                return Ok(None);
            }
            let header = &buf[..HEADER_LEN];
            let stated = u32::from_be_bytes([header[24], header[25], header[26], header[27]]);
            if crc32c::crc32c(&header[..24]) != stated {
                self.skip(buf, 1);
                continue;
            }
            let version = header[4];
            if version != VERSION {
                return Err(FrameError::UnsupportedVersion(version));
            }
            let len = u32::from_be_bytes([header[20], header[21], header[22], header[23]]);
            if len > self.max_payload {
                self.skip(buf, 1);
                continue;
            }
            let total = HEADER_LEN + len as usize + TRAILER_LEN;
            if buf.len() < total {
                buf.reserve(total - buf.len());
                return Ok(None);
            }
            let body = &buf[HEADER_LEN..HEADER_LEN + len as usize];
            let t = &buf[total - TRAILER_LEN..total];
            if crc32c::crc32c(body) != u32::from_be_bytes([t[0], t[1], t[2], t[3]]) {
                self.skip(buf, 1);
                continue;
            }
            let kind = header[5];
            let flags = Flags(header[6]);
            let rendition = header[7];
            let pts = i64::from_be_bytes(header[8..16].try_into().unwrap_or([0; 8]));
            let duration = u32::from_be_bytes([header[16], header[17], header[18], header[19]]);
            let mut frame = buf.split_to(total);
            frame.advance(HEADER_LEN);
            frame.truncate(len as usize);
            self.lost = false;
            let Some(kind) = FrameKind::from_u8(kind) else {
                self.stats.unknown_frames += 1;
                continue;
            };
            return Ok(Some(Frame {
                kind,
                flags,
                rendition,
                pts,
                duration,
                payload: frame.freeze(),
            }));
        }
    }
}

fn find_magic(buf: &[u8]) -> Option<usize> {
    buf.windows(MAGIC.len()).position(|w| w == MAGIC)
}

impl tokio_util::codec::Decoder for FrameDecoder {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        self.decode_frame(src)
    }
}

/// Writes frames (for `FramedWrite`); shared pre-encoded frames are better
/// written as [`Bytes`] directly.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameEncoder;

impl tokio_util::codec::Encoder<Frame> for FrameEncoder {
    type Error = FrameError;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        item.encode_into(dst);
        Ok(())
    }
}

/// Seconds → 90 kHz ticks (rounded).
pub fn ticks_from_secs(s: f64) -> i64 {
    (s * TICKS_PER_SECOND as f64).round() as i64
}

/// `value` in `1/timescale` units → 90 kHz ticks (exact integer scaling in
/// i128, rounded toward zero; `timescale` 0 is treated as 1).
pub fn ticks_from_timescale(value: i64, timescale: u32) -> i64 {
    let ts = i128::from(timescale.max(1));
    let v = i128::from(value) * i128::from(TICKS_PER_SECOND) / ts;
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn video(pts: i64, key: bool, payload: &[u8]) -> Frame {
        Frame {
            kind: FrameKind::Video,
            flags: if key {
                Flags::KEYFRAME
            } else {
                Flags::default()
            },
            rendition: 2,
            pts,
            duration: 3600,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn decode_all(dec: &mut FrameDecoder, bytes: &[u8]) -> Vec<Frame> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(f) = dec.decode_frame(&mut buf).expect("decode") {
            out.push(f);
        }
        out
    }

    #[test]
    fn round_trip_and_layout() {
        let f = video(123_456, true, b"\0\0\0\x01\x65abc");
        let wire = f.encode();
        assert_eq!(wire.len(), HEADER_LEN + 8 + TRAILER_LEN);
        assert_eq!(&wire[..4], b"STMF");
        assert_eq!(wire[4], VERSION);
        assert_eq!(wire[5], 1);
        assert_eq!(wire[6], 0x01);
        assert_eq!(wire[7], 2);
        assert_eq!(&wire[8..16], &123_456i64.to_be_bytes());
        assert_eq!(&wire[20..24], &8u32.to_be_bytes());
        let mut dec = FrameDecoder::default();
        assert_eq!(decode_all(&mut dec, &wire), vec![f]);
        assert_eq!(dec.stats, DecodeStats::default());
    }

    #[test]
    fn resyncs_after_garbage_and_corruption() {
        let a = video(0, true, b"first");
        let b = video(3600, false, b"second");
        let c = video(7200, false, b"third");
        let mut wire = b"garbage before".to_vec();
        wire.extend_from_slice(&a.encode());
        let mut bad = b.encode().to_vec();
        let n = bad.len();
        bad[n - 6] ^= 0xFF; // payload corrupted: payload CRC fails
        wire.extend_from_slice(&bad);
        wire.extend_from_slice(b"STMF"); // a false magic
        wire.extend_from_slice(&c.encode());
        let mut dec = FrameDecoder::default();
        assert_eq!(decode_all(&mut dec, &wire), vec![a, c]);
        assert!(dec.stats.resyncs >= 2, "{:?}", dec.stats);
    }

    #[test]
    fn oversized_and_truncated_lengths_do_not_wait_or_allocate() {
        // A header claiming 4 GiB with a valid header CRC: skipped as
        // corruption, the next frame is read at once.
        let mut hdr = BytesMut::new();
        video(0, true, b"").encode_into(&mut hdr);
        hdr.truncate(HEADER_LEN);
        hdr[20..24].copy_from_slice(&u32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&hdr[..24]);
        hdr[24..28].copy_from_slice(&crc.to_be_bytes());
        let good = video(1, true, b"ok");
        let mut wire = hdr.to_vec();
        wire.extend_from_slice(&good.encode());
        let mut dec = FrameDecoder::new(1 << 20);
        assert_eq!(decode_all(&mut dec, &wire), vec![good.clone()]);
        assert_eq!(dec.stats.resyncs, 1);
        // A truncated frame: nothing yet, then the rest completes it.
        let wire = good.encode();
        let mut buf = BytesMut::from(&wire[..wire.len() - 3]);
        let mut dec = FrameDecoder::default();
        assert_eq!(dec.decode_frame(&mut buf), Ok(None));
        buf.extend_from_slice(&wire[wire.len() - 3..]);
        assert_eq!(dec.decode_frame(&mut buf), Ok(Some(good)));
    }

    #[test]
    fn other_version_is_an_error_unknown_kind_is_skipped() {
        let mut w = video(0, true, b"x").encode().to_vec();
        w[4] = 9;
        let crc = crc32c::crc32c(&w[..24]);
        w[24..28].copy_from_slice(&crc.to_be_bytes());
        let mut dec = FrameDecoder::default();
        let mut buf = BytesMut::from(&w[..]);
        assert_eq!(
            dec.decode_frame(&mut buf),
            Err(FrameError::UnsupportedVersion(9))
        );

        let mut w = video(0, true, b"x").encode().to_vec();
        w[5] = 77;
        let crc = crc32c::crc32c(&w[..24]);
        w[24..28].copy_from_slice(&crc.to_be_bytes());
        let next = video(5, false, b"y");
        w.extend_from_slice(&next.encode());
        let mut dec = FrameDecoder::default();
        assert_eq!(decode_all(&mut dec, &w), vec![next]);
        assert_eq!(dec.stats.unknown_frames, 1);
    }

    #[test]
    fn ticks() {
        assert_eq!(ticks_from_timescale(12_800, 12_800), 90_000);
        assert_eq!(ticks_from_timescale(1024, 48_000), 1920);
        assert_eq!(ticks_from_timescale(i64::MAX, 1), i64::MAX);
        assert_eq!(ticks_from_secs(0.04), 3600);
    }

    proptest! {
        // Whatever bytes come in, the reader never panics and returns.
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut dec = FrameDecoder::new(1 << 16);
            let mut buf = BytesMut::from(&bytes[..]);
            for _ in 0..bytes.len() + 1 {
                match dec.decode_frame(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }

        // Frames survive being split at any point and surrounded by noise.
        #[test]
        fn frames_survive_noise_and_splits(
            noise in proptest::collection::vec(any::<u8>(), 0..64),
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
            split in 1usize..64,
        ) {
            let frames: Vec<Frame> = payloads.iter().enumerate()
                .map(|(i, p)| video(i as i64 * 3600, i == 0, p)).collect();
            let mut wire = noise.clone();
            for f in &frames { wire.extend_from_slice(&f.encode()); }
            let mut dec = FrameDecoder::default();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(split) {
                buf.extend_from_slice(chunk);
                while let Some(f) = dec.decode_frame(&mut buf).unwrap() { got.push(f); }
            }
            prop_assert_eq!(got, frames);
        }
    }
}
