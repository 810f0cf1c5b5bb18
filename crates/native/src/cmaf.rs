//! Reading back what the packagers publish: the CMAF (fragmented MP4,
//! ISO/IEC 14496-12 and 23000-19) init segment and media segments or parts
//! of one track, turned into the native stream's access units: H.264 in
//! Annex B with parameter sets before every keyframe (ISO/IEC 14496-15
//! §5.3.2 `avcC` → ITU-T H.264 Annex B), AAC with ADTS headers (ISO/IEC
//! 14496-3 §1.A.2).
//!
//! Every loop is bounded by the input's length: box sizes are checked
//! against what is left before use, sample counts against the bytes the
//! `trun` box holds. Errors are [`CmafError`] with a reason, never a panic.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::frame::ticks_from_timescale;

/// Errors of malformed or unsupported input.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CmafError {
    #[error("malformed {0}: {1}")]
    Malformed(&'static str, String),
    #[error("unsupported: {0}")]
    Unsupported(String),
}

fn bad(what: &'static str, why: impl Into<String>) -> CmafError {
    CmafError::Malformed(what, why.into())
}

/// A track's codec configuration, from the init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    /// H.264 with its parameter sets and NAL length size (1, 2 or 4 bytes).
    H264 {
        nal_length_size: u8,
        sps: Vec<Bytes>,
        pps: Vec<Bytes>,
    },
    /// AAC with its AudioSpecificConfig fields.
    Aac {
        /// Audio object type (2 = AAC-LC).
        object_type: u8,
        /// Sampling frequency index (ISO/IEC 14496-3 Table 1.18).
        frequency_index: u8,
        sample_rate: u32,
        channels: u8,
    },
}

/// The track of an init segment (the first `trak` of `moov`; our
/// packagers write one track per rendition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub track_id: u32,
    /// Media time units per second (`mdhd`).
    pub timescale: u32,
    pub codec: Codec,
    /// `trex` defaults, used when `tfhd`/`trun` carry none.
    default_duration: u32,
    default_size: u32,
    default_flags: u32,
}

/// One sample (access unit) of a media segment, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Decode time, in the track's timescale.
    pub dts: i64,
    /// Presentation time (dts + composition offset), in the track's timescale.
    pub pts: i64,
    /// Duration, in the track's timescale.
    pub duration: u32,
    /// A sync sample (IDR for video).
    pub keyframe: bool,
    /// The sample's bytes (length-prefixed NAL units for H.264, a raw AAC
    /// frame for AAC); a slice of the segment, not a copy.
    pub data: Bytes,
}

/// One access unit in the native stream's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// Presentation time, 90 kHz ticks.
    pub pts: i64,
    /// Decode time, 90 kHz ticks (≤ `pts`; what a sender paces by, since
    /// access units go out in decode order).
    pub dts: i64,
    /// Duration, 90 kHz ticks.
    pub duration: u32,
    pub keyframe: bool,
    /// Annex B H.264 or ADTS AAC.
    pub payload: Bytes,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CmafError> {
        if self.left() < n {
            return Err(bad(
                self.what,
                format!("needs {n} bytes at {}, {} left", self.pos, self.left()),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, CmafError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, CmafError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, CmafError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, CmafError> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
    }
}

/// A box: its type, its body's range in the parent buffer, and where the
/// box itself starts.
#[derive(Debug, Clone, Copy)]
struct BoxRef {
    kind: [u8; 4],
    start: usize,
    body: (usize, usize),
}

/// The boxes directly inside `buf[from..to]`.
fn boxes(buf: &[u8], from: usize, to: usize) -> Result<Vec<BoxRef>, CmafError> {
    let mut out = Vec::new();
    let mut pos = from;
    // Bounded: every box is at least 8 bytes long.
    while pos < to {
        if to - pos < 8 {
            return Err(bad("box", format!("{} stray bytes at {pos}", to - pos)));
        }
        let size32 = u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]);
        let kind = [buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]];
        let (header, size) = match size32 {
            0 => (8, (to - pos) as u64),
            1 => {
                if to - pos < 16 {
                    return Err(bad("box", "truncated 64-bit size"));
                }
                let s = u64::from_be_bytes(buf[pos + 8..pos + 16].try_into().unwrap_or([0; 8]));
                (16, s)
            }
            s => (8, u64::from(s)),
        };
        if size < header as u64 || size > (to - pos) as u64 {
            return Err(bad(
                "box",
                format!(
                    "{} box at {pos} of size {size} does not fit ({} left)",
                    fourcc(kind),
                    to - pos
                ),
            ));
        }
        let end = pos + size as usize;
        out.push(BoxRef {
            kind,
            start: pos,
            body: (pos + header, end),
        });
        pos = end;
    }
    Ok(out)
}

fn fourcc(k: [u8; 4]) -> String {
    k.iter()
        .map(|&c| if c.is_ascii_graphic() { c as char } else { '?' })
        .collect()
}

fn child(buf: &[u8], parent: BoxRef, kind: &[u8; 4]) -> Result<Option<BoxRef>, CmafError> {
    Ok(boxes(buf, parent.body.0, parent.body.1)?
        .into_iter()
        .find(|b| &b.kind == kind))
}

fn need(buf: &[u8], parent: BoxRef, kind: &'static [u8; 4]) -> Result<BoxRef, CmafError> {
    child(buf, parent, kind)?.ok_or_else(|| {
        bad(
            "init segment",
            format!("no {} in {}", fourcc(*kind), fourcc(parent.kind)),
        )
    })
}

/// ISO/IEC 14496-3 Table 1.18.
const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

impl Track {
    /// Read the track of an init segment (`ftyp` + `moov`).
    ///
    /// Errors: [`CmafError`] when the boxes are malformed, no track is
    /// there, or its codec is neither H.264 (`avc1`/`avc3`) nor AAC (`mp4a`).
    pub fn parse_init(init: &[u8]) -> Result<Track, CmafError> {
        let top = boxes(init, 0, init.len())?;
        let moov = top
            .iter()
            .find(|b| &b.kind == b"moov")
            .copied()
            .ok_or_else(|| bad("init segment", "no moov"))?;
        let trak = need(init, moov, b"trak")?;
        let tkhd = need(init, trak, b"tkhd")?;
        let mut r = Reader::new(&init[tkhd.body.0..tkhd.body.1], "tkhd");
        let version = r.u8()?;
        r.take(3)?;
        r.take(if version == 1 { 16 } else { 8 })?;
        let track_id = r.u32()?;
        let mdia = need(init, trak, b"mdia")?;
        let mdhd = need(init, mdia, b"mdhd")?;
        let mut r = Reader::new(&init[mdhd.body.0..mdhd.body.1], "mdhd");
        let version = r.u8()?;
        r.take(3)?;
        r.take(if version == 1 { 16 } else { 8 })?;
        let timescale = r.u32()?;
        if timescale == 0 {
            return Err(bad("mdhd", "timescale 0"));
        }
        let minf = need(init, mdia, b"minf")?;
        let stbl = need(init, minf, b"stbl")?;
        let stsd = need(init, stbl, b"stsd")?;
        // stsd: full box header + entry count, then sample entries.
        let entries_at = stsd.body.0 + 8;
        if entries_at > stsd.body.1 {
            return Err(bad("stsd", "truncated"));
        }
        let entry = boxes(init, entries_at, stsd.body.1)?
            .into_iter()
            .next()
            .ok_or_else(|| bad("stsd", "no sample entry"))?;
        let codec = match &entry.kind {
            b"avc1" | b"avc3" => {
                // VisualSampleEntry: 78 bytes before its child boxes.
                let at = entry.body.0 + 78;
                if at > entry.body.1 {
                    return Err(bad("avc1", "truncated"));
                }
                let avcc = boxes(init, at, entry.body.1)?
                    .into_iter()
                    .find(|b| &b.kind == b"avcC")
                    .ok_or_else(|| bad("avc1", "no avcC"))?;
                parse_avcc(&init[avcc.body.0..avcc.body.1])?
            }
            b"mp4a" => {
                // AudioSampleEntry: 28 bytes before its child boxes.
                let at = entry.body.0 + 28;
                if at > entry.body.1 {
                    return Err(bad("mp4a", "truncated"));
                }
                let esds = boxes(init, at, entry.body.1)?
                    .into_iter()
                    .find(|b| &b.kind == b"esds")
                    .ok_or_else(|| bad("mp4a", "no esds"))?;
                parse_esds(&init[esds.body.0..esds.body.1])?
            }
            other => {
                return Err(CmafError::Unsupported(format!(
                    "sample entry {}",
                    fourcc(*other)
                )))
            }
        };
        let (mut default_duration, mut default_size, mut default_flags) = (0, 0, 0);
        if let Some(mvex) = child(init, moov, b"mvex")? {
            for trex in boxes(init, mvex.body.0, mvex.body.1)?
                .into_iter()
                .filter(|b| &b.kind == b"trex")
            {
                let mut r = Reader::new(&init[trex.body.0..trex.body.1], "trex");
                r.take(4)?;
                if r.u32()? == track_id {
                    r.u32()?; // sample description index
                    default_duration = r.u32()?;
                    default_size = r.u32()?;
                    default_flags = r.u32()?;
                }
            }
        }
        Ok(Track {
            track_id,
            timescale,
            codec,
            default_duration,
            default_size,
            default_flags,
        })
    }

    /// The samples of a media segment or part (any number of `moof`+`mdat`
    /// pairs; `styp`, `sidx`, `prft` and the like are skipped). Fragments of
    /// other tracks are skipped.
    ///
    /// Errors: [`CmafError::Malformed`] with the box at fault.
    pub fn samples(&self, segment: &Bytes) -> Result<Vec<Sample>, CmafError> {
        let buf = &segment[..];
        let mut out = Vec::new();
        for moof in boxes(buf, 0, buf.len())?
            .into_iter()
            .filter(|b| &b.kind == b"moof")
        {
            for traf in boxes(buf, moof.body.0, moof.body.1)?
                .into_iter()
                .filter(|b| &b.kind == b"traf")
            {
                self.traf_samples(segment, moof, traf, &mut out)?;
            }
        }
        Ok(out)
    }

    fn traf_samples(
        &self,
        seg: &Bytes,
        moof: BoxRef,
        traf: BoxRef,
        out: &mut Vec<Sample>,
    ) -> Result<(), CmafError> {
        let buf = &seg[..];
        let inner = boxes(buf, traf.body.0, traf.body.1)?;
        let tfhd = inner
            .iter()
            .find(|b| &b.kind == b"tfhd")
            .ok_or_else(|| bad("traf", "no tfhd"))?;
        let mut r = Reader::new(&buf[tfhd.body.0..tfhd.body.1], "tfhd");
        let flags = r.u32()? & 0x00FF_FFFF;
        if r.u32()? != self.track_id {
            return Ok(());
        }
        let mut base = moof.start as u64;
        if flags & 0x01 != 0 {
            base = r.u64()?;
        }
        if flags & 0x02 != 0 {
            r.u32()?;
        }
        let mut duration = self.default_duration;
        let mut size = self.default_size;
        let mut sflags = self.default_flags;
        if flags & 0x08 != 0 {
            duration = r.u32()?;
        }
        if flags & 0x10 != 0 {
            size = r.u32()?;
        }
        if flags & 0x20 != 0 {
            sflags = r.u32()?;
        }
        let mut dts: i64 = match inner.iter().find(|b| &b.kind == b"tfdt") {
            Some(t) => {
                let mut r = Reader::new(&buf[t.body.0..t.body.1], "tfdt");
                let version = r.u8()?;
                r.take(3)?;
                let v = if version == 1 {
                    r.u64()?
                } else {
                    u64::from(r.u32()?)
                };
                i64::try_from(v).map_err(|_| bad("tfdt", "decode time overflows"))?
            }
            None => return Err(bad("traf", "no tfdt")),
        };
        let mut next_offset: Option<u64> = None;
        for trun in inner.iter().filter(|b| &b.kind == b"trun") {
            let mut r = Reader::new(&buf[trun.body.0..trun.body.1], "trun");
            let vf = r.u32()?;
            let version = vf >> 24;
            let tflags = vf & 0x00FF_FFFF;
            let count = r.u32()? as usize;
            let mut offset = match tflags & 0x01 {
                0 => next_offset.unwrap_or(base),
                _ => {
                    let d = r.u32()? as i32;
                    base.checked_add_signed(i64::from(d))
                        .ok_or_else(|| bad("trun", "negative data offset"))?
                }
            };
            let first_flags = if tflags & 0x04 != 0 {
                Some(r.u32()?)
            } else {
                None
            };
            let per = [0x100, 0x200, 0x400, 0x800]
                .iter()
                .filter(|&&f| tflags & f != 0)
                .count()
                * 4;
            if count.saturating_mul(per) > r.left() {
                return Err(bad(
                    "trun",
                    format!("{count} samples do not fit in {} bytes", r.left()),
                ));
            }
            if per == 0 && count > buf.len() {
                return Err(bad("trun", format!("{count} samples without entries")));
            }
            for i in 0..count {
                let d = if tflags & 0x100 != 0 {
                    r.u32()?
                } else {
                    duration
                };
                let s = if tflags & 0x200 != 0 { r.u32()? } else { size };
                let f = if tflags & 0x400 != 0 {
                    r.u32()?
                } else if i == 0 {
                    first_flags.unwrap_or(sflags)
                } else {
                    sflags
                };
                let cto = if tflags & 0x800 != 0 {
                    let v = r.u32()?;
                    if version == 0 {
                        i64::from(v)
                    } else {
                        i64::from(v as i32)
                    }
                } else {
                    0
                };
                let start = usize::try_from(offset).map_err(|_| bad("trun", "offset overflows"))?;
                let end = start
                    .checked_add(s as usize)
                    .filter(|&e| e <= buf.len())
                    .ok_or_else(|| {
                        bad(
                            "trun",
                            format!("sample {i} at {start}+{s} is past the end ({})", buf.len()),
                        )
                    })?;
                out.push(Sample {
                    dts,
                    pts: dts + cto,
                    duration: d,
                    keyframe: f & 0x0001_0000 == 0,
                    data: seg.slice(start..end),
                });
                dts += i64::from(d);
                offset = end as u64;
            }
            next_offset = Some(offset);
        }
        Ok(())
    }

    /// A sample in the native stream's form (90 kHz, Annex B or ADTS).
    ///
    /// Errors: [`CmafError::Malformed`] when a NAL length runs past the
    /// sample, or an AAC frame is too long for ADTS (8 KiB).
    pub fn access_unit(&self, s: &Sample) -> Result<AccessUnit, CmafError> {
        let payload = match &self.codec {
            Codec::H264 {
                nal_length_size,
                sps,
                pps,
            } => annex_b(&s.data, *nal_length_size, s.keyframe.then_some((sps, pps)))?,
            Codec::Aac {
                object_type,
                frequency_index,
                channels,
                ..
            } => adts(&s.data, *object_type, *frequency_index, *channels)?,
        };
        Ok(AccessUnit {
            pts: ticks_from_timescale(s.pts, self.timescale),
            dts: ticks_from_timescale(s.dts, self.timescale),
            duration: u32::try_from(ticks_from_timescale(i64::from(s.duration), self.timescale))
                .unwrap_or(u32::MAX),
            keyframe: s.keyframe,
            payload,
        })
    }
}

fn parse_avcc(b: &[u8]) -> Result<Codec, CmafError> {
    let mut r = Reader::new(b, "avcC");
    r.take(4)?; // version, profile, compatibility, level
    let nal_length_size = (r.u8()? & 0x03) + 1;
    if nal_length_size == 3 {
        return Err(bad("avcC", "NAL length size 3"));
    }
    let n_sps = r.u8()? & 0x1F;
    let mut sps = Vec::new();
    for _ in 0..n_sps {
        let len = r.u16()? as usize;
        sps.push(Bytes::copy_from_slice(r.take(len)?));
    }
    let n_pps = r.u8()?;
    let mut pps = Vec::new();
    for _ in 0..n_pps {
        let len = r.u16()? as usize;
        pps.push(Bytes::copy_from_slice(r.take(len)?));
    }
    if sps.is_empty() || pps.is_empty() {
        return Err(bad("avcC", "no SPS or PPS"));
    }
    Ok(Codec::H264 {
        nal_length_size,
        sps,
        pps,
    })
}

/// An MPEG-4 descriptor's tag and body (ISO/IEC 14496-1 §7.2.2.1: size in
/// up to four 7-bit groups).
fn descriptor<'a>(r: &mut Reader<'a>) -> Result<(u8, &'a [u8]), CmafError> {
    let tag = r.u8()?;
    let mut size = 0usize;
    for _ in 0..4 {
        let b = r.u8()?;
        size = (size << 7) | usize::from(b & 0x7F);
        if b & 0x80 == 0 {
            break;
        }
    }
    Ok((tag, r.take(size)?))
}

fn parse_esds(b: &[u8]) -> Result<Codec, CmafError> {
    let mut r = Reader::new(b, "esds");
    r.take(4)?; // full box
    let (tag, es) = descriptor(&mut r)?;
    if tag != 0x03 {
        return Err(bad(
            "esds",
            format!("expected ES_Descriptor, got tag {tag}"),
        ));
    }
    let mut r = Reader::new(es, "ES_Descriptor");
    r.u16()?;
    let flags = r.u8()?;
    if flags & 0x80 != 0 {
        r.u16()?;
    }
    if flags & 0x40 != 0 {
        let n = r.u8()? as usize;
        r.take(n)?;
    }
    if flags & 0x20 != 0 {
        r.u16()?;
    }
    let (tag, dc) = descriptor(&mut r)?;
    if tag != 0x04 {
        return Err(bad(
            "esds",
            format!("expected DecoderConfigDescriptor, got tag {tag}"),
        ));
    }
    let mut r = Reader::new(dc, "DecoderConfigDescriptor");
    let oti = r.u8()?;
    if oti != 0x40 {
        return Err(CmafError::Unsupported(format!(
            "audio object type indication {oti:#x} (not AAC)"
        )));
    }
    r.take(12)?;
    let (tag, asc) = descriptor(&mut r)?;
    if tag != 0x05 || asc.len() < 2 {
        return Err(bad("esds", "no AudioSpecificConfig"));
    }
    let object_type = asc[0] >> 3;
    let frequency_index = ((asc[0] & 0x07) << 1) | (asc[1] >> 7);
    let channels = (asc[1] >> 3) & 0x0F;
    let sample_rate = *AAC_RATES.get(usize::from(frequency_index)).ok_or_else(|| {
        CmafError::Unsupported(format!("AAC sampling frequency index {frequency_index}"))
    })?;
    if !(1..=4).contains(&object_type) || !(1..=7).contains(&channels) {
        return Err(CmafError::Unsupported(format!(
            "AAC object type {object_type} with channel configuration {channels} (ADTS carries types 1–4, configurations 1–7)"
        )));
    }
    Ok(Codec::Aac {
        object_type,
        frequency_index,
        sample_rate,
        channels,
    })
}

fn annex_b(
    data: &[u8],
    nal_length_size: u8,
    params: Option<(&Vec<Bytes>, &Vec<Bytes>)>,
) -> Result<Bytes, CmafError> {
    const START: [u8; 4] = [0, 0, 0, 1];
    let mut out = BytesMut::with_capacity(data.len() + 64);
    let n = usize::from(nal_length_size);
    let mut nals = Vec::new();
    let mut pos = 0;
    // Bounded: each NAL advances by at least its length prefix.
    while pos < data.len() {
        if data.len() - pos < n {
            return Err(bad("sample", "truncated NAL length"));
        }
        let len = data[pos..pos + n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        pos += n;
        if len > data.len() - pos {
            return Err(bad(
                "sample",
                format!("NAL of {len} bytes runs past the sample"),
            ));
        }
        nals.push(&data[pos..pos + len]);
        pos += len;
    }
    let has_sps = nals
        .iter()
        .any(|nal| nal.first().is_some_and(|h| h & 0x1F == 7));
    if let (Some((sps, pps)), false) = (params, has_sps) {
        // Access unit delimiters and SEI stay first (H.264 §7.4.1.2.3).
        let lead = nals
            .iter()
            .take_while(|nal| nal.first().is_some_and(|h| matches!(h & 0x1F, 9 | 6)))
            .count();
        for nal in &nals[..lead] {
            out.put_slice(&START);
            out.put_slice(nal);
        }
        for p in sps.iter().chain(pps.iter()) {
            out.put_slice(&START);
            out.put_slice(p);
        }
        nals.drain(..lead);
    }
    for nal in nals {
        out.put_slice(&START);
        out.put_slice(nal);
    }
    Ok(out.freeze())
}

fn adts(
    data: &[u8],
    object_type: u8,
    frequency_index: u8,
    channels: u8,
) -> Result<Bytes, CmafError> {
    let len = data.len() + 7;
    if len >= 1 << 13 {
        return Err(bad(
            "AAC frame",
            format!("{} bytes is too long for ADTS", data.len()),
        ));
    }
    let profile = object_type - 1;
    let mut out = BytesMut::with_capacity(len);
    out.put_u8(0xFF);
    out.put_u8(0xF1); // MPEG-4, layer 0, no CRC
    out.put_u8((profile << 6) | (frequency_index << 2) | (channels >> 2));
    out.put_u8(((channels & 0x03) << 6) | ((len >> 11) as u8 & 0x03));
    out.put_u8((len >> 3) as u8);
    out.put_u8((((len & 0x07) as u8) << 5) | 0x1F);
    out.put_u8(0xFC);
    out.put_slice(data);
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn init_h264() -> Vec<u8> {
        let mut tkhd = vec![0u8; 4 + 8];
        tkhd.extend_from_slice(&1u32.to_be_bytes());
        tkhd.extend_from_slice(&[0u8; 60]);
        let mut mdhd = vec![0u8; 4 + 8];
        mdhd.extend_from_slice(&12_800u32.to_be_bytes());
        mdhd.extend_from_slice(&[0u8; 8]);
        let avcc = [
            1, 0x64, 0, 0x1f, 0xFF, 0xE1, 0, 3, 0x67, 1, 2, 1, 0, 2, 0x68, 9,
        ];
        let mut avc1 = vec![0u8; 78];
        avc1.extend_from_slice(&bx(b"avcC", &avcc));
        let mut stsd = vec![0u8, 0, 0, 0, 0, 0, 0, 1];
        stsd.extend_from_slice(&bx(b"avc1", &avc1));
        let stbl = bx(b"stbl", &bx(b"stsd", &stsd));
        let minf = bx(b"minf", &stbl);
        let mut mdia = bx(b"mdhd", &mdhd);
        mdia.extend_from_slice(&minf);
        let mut trak = bx(b"tkhd", &tkhd);
        trak.extend_from_slice(&bx(b"mdia", &mdia));
        let mut trex = vec![0u8; 4];
        for v in [1u32, 1, 512, 0, 0x0001_0000] {
            trex.extend_from_slice(&v.to_be_bytes());
        }
        let mut moov = bx(b"trak", &trak);
        moov.extend_from_slice(&bx(b"mvex", &bx(b"trex", &trex)));
        let mut out = bx(b"ftyp", b"iso6\0\0\0\0");
        out.extend_from_slice(&bx(b"moov", &moov));
        out
    }

    /// A segment of two samples: an IDR (keyframe) and a P slice.
    fn segment(tfdt: u64) -> Vec<u8> {
        let s1 = [0u8, 0, 0, 2, 0x65, 0xAA];
        let s2 = [0u8, 0, 0, 3, 0x41, 0xBB, 0xCC];
        let mut tfhd = vec![0x00, 0x02, 0x00, 0x00];
        tfhd.extend_from_slice(&1u32.to_be_bytes());
        let mut tfdt_b = vec![1, 0, 0, 0];
        tfdt_b.extend_from_slice(&tfdt.to_be_bytes());
        // trun: data offset, first sample flags, per-sample size + cts.
        let build = |data_offset: i32| {
            let mut t = vec![0x01, 0x00, 0x0A, 0x05];
            t.extend_from_slice(&2u32.to_be_bytes());
            t.extend_from_slice(&data_offset.to_be_bytes());
            t.extend_from_slice(&0u32.to_be_bytes()); // first sample: sync
            for (size, cto) in [(6u32, 1024i32), (7, -512)] {
                t.extend_from_slice(&size.to_be_bytes());
                t.extend_from_slice(&cto.to_be_bytes());
            }
            t
        };
        let traf_len = |off| {
            let mut traf = bx(b"tfhd", &tfhd);
            traf.extend_from_slice(&bx(b"tfdt", &tfdt_b));
            traf.extend_from_slice(&bx(b"trun", &build(off)));
            bx(b"moof", &bx(b"traf", &traf)).len()
        };
        let off = traf_len(0) as i32 + 8;
        let mut traf = bx(b"tfhd", &tfhd);
        traf.extend_from_slice(&bx(b"tfdt", &tfdt_b));
        traf.extend_from_slice(&bx(b"trun", &build(off)));
        let mut out = bx(b"moof", &bx(b"traf", &traf));
        let mut mdat = s1.to_vec();
        mdat.extend_from_slice(&s2);
        out.extend_from_slice(&bx(b"mdat", &mdat));
        out
    }

    #[test]
    fn reads_init_and_samples_into_annex_b() {
        let track = Track::parse_init(&init_h264()).unwrap();
        assert_eq!(track.timescale, 12_800);
        assert_eq!(track.track_id, 1);
        let seg = Bytes::from(segment(25_600));
        let samples = track.samples(&seg).unwrap();
        assert_eq!(samples.len(), 2);
        assert!(samples[0].keyframe && !samples[1].keyframe);
        assert_eq!(
            (samples[0].dts, samples[0].pts, samples[0].duration),
            (25_600, 26_624, 512)
        );
        assert_eq!((samples[1].dts, samples[1].pts), (26_112, 25_600));
        let au = track.access_unit(&samples[0]).unwrap();
        assert_eq!(au.pts, 26_624 * 90_000 / 12_800);
        assert_eq!(au.duration, 3600);
        // SPS, PPS, then the IDR slice.
        assert_eq!(
            &au.payload[..],
            &[0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 9, 0, 0, 0, 1, 0x65, 0xAA]
        );
        let au = track.access_unit(&samples[1]).unwrap();
        assert_eq!(&au.payload[..], &[0, 0, 0, 1, 0x41, 0xBB, 0xCC]);
    }

    #[test]
    fn hostile_segments_are_errors() {
        let track = Track::parse_init(&init_h264()).unwrap();
        let good = segment(0);
        // Truncated anywhere: an error or fewer samples, never a panic.
        for cut in 0..good.len() {
            let _ = track.samples(&Bytes::copy_from_slice(&good[..cut]));
        }
        // A trun claiming 2^32-1 samples.
        let mut bad_count = good.clone();
        let at = bad_count.windows(4).position(|w| w == b"trun").unwrap() + 8;
        bad_count[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(track
            .samples(&Bytes::from(bad_count))
            .unwrap_err()
            .to_string()
            .contains("do not fit"));
        // A box larger than its parent.
        let mut big = good.clone();
        big[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(track.samples(&Bytes::from(big)).is_err());
        // Init garbage.
        assert!(Track::parse_init(b"\0\0\0\x08moov").is_err());
        assert!(Track::parse_init(&[0xFF; 64]).is_err());
        // A NAL longer than its sample.
        assert!(annex_b(&[0, 0, 0, 9, 1], 4, None).is_err());
    }

    #[test]
    fn adts_header() {
        let f = adts(&[0xAB; 100], 2, 3, 2).unwrap();
        assert_eq!(f.len(), 107);
        assert_eq!(&f[..2], &[0xFF, 0xF1]);
        // profile LC (1), 48 kHz (3), 2 channels.
        assert_eq!(f[2], (1 << 6) | (3 << 2));
        let len =
            ((usize::from(f[3]) & 3) << 11) | (usize::from(f[4]) << 3) | (usize::from(f[5]) >> 5);
        assert_eq!(len, 107);
    }
}
