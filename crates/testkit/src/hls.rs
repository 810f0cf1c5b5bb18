//! Read an HLS rendition back and decode it.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ffmpeg_next as ff;

/// What decoding a whole rendition found.
#[derive(Debug, Clone)]
pub struct DecodedRendition {
    /// Sum of `EXTINF` durations, seconds.
    pub playlist_duration_s: f64,
    /// `EXTINF` duration of each segment, seconds.
    pub segment_durations_s: Vec<f64>,
    /// Whether the playlist ends with `EXT-X-ENDLIST`.
    pub ended: bool,
    /// For each segment: PTS (s) of its first frame, and whether that frame
    /// is a keyframe.
    pub segment_starts: Vec<(f64, bool)>,
    /// Frames (video) or samples (audio) decoded over all segments.
    pub decoded_units: u64,
    /// Presentation span decoded: last PTS + last duration − first PTS, s.
    pub decoded_duration_s: f64,
    /// Video size of the decoded frames, if video.
    pub video_size: Option<(u32, u32)>,
}

/// Parse `dir/index.m3u8` and decode `init.mp4` + each segment.
pub fn decode_rendition(dir: &Path) -> Result<DecodedRendition> {
    ff::init()?;
    let text = std::fs::read(dir.join("index.m3u8")).context("read media playlist")?;
    let playlist = match m3u8_rs::parse_playlist_res(&text) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => p,
        Ok(_) => bail!("{} is a master playlist", dir.display()),
        Err(e) => bail!("playlist does not parse: {e:?}"),
    };
    let init_uri = playlist
        .segments
        .iter()
        .find_map(|s| s.map.as_ref().map(|m| m.uri.clone()))
        .ok_or_else(|| anyhow!("no EXT-X-MAP in {}", dir.display()))?;
    let init = std::fs::read(dir.join(&init_uri)).context("read init segment")?;
    let mut out = DecodedRendition {
        playlist_duration_s: 0.0,
        segment_durations_s: Vec::new(),
        ended: playlist.end_list,
        segment_starts: Vec::new(),
        decoded_units: 0,
        decoded_duration_s: 0.0,
        video_size: None,
    };
    let scratch = std::env::temp_dir().join(format!("seg-{}.mp4", crate::unique_prefix()));
    let mut first_pts: Option<f64> = None;
    let mut last_end = 0.0f64;
    for seg in &playlist.segments {
        out.playlist_duration_s += f64::from(seg.duration);
        out.segment_durations_s.push(f64::from(seg.duration));
        let mut bytes = init.clone();
        bytes.extend(std::fs::read(dir.join(&seg.uri)).with_context(|| seg.uri.clone())?);
        std::fs::write(&scratch, &bytes)?;
        let (start, units, end, size) =
            decode_file(&scratch).with_context(|| format!("decode {}", seg.uri))?;
        out.segment_starts.push(start);
        out.decoded_units += units;
        first_pts.get_or_insert(start.0);
        last_end = last_end.max(end);
        if size.is_some() {
            out.video_size = size;
        }
    }
    let _ = std::fs::remove_file(&scratch);
    out.decoded_duration_s = last_end - first_pts.unwrap_or(0.0);
    Ok(out)
}

type Decoded = ((f64, bool), u64, f64, Option<(u32, u32)>);

fn decode_file(path: &Path) -> Result<Decoded> {
    let mut input = ff::format::input(path)?;
    let stream = input.streams().next().ok_or_else(|| anyhow!("no stream"))?;
    let tb = stream.time_base();
    let index = stream.index();
    let ctx = ff::codec::context::Context::from_parameters(stream.parameters())?;
    let medium = ctx.medium();
    let mut first: Option<(f64, bool)> = None;
    let mut units = 0u64;
    let mut end = 0.0f64;
    let mut size = None;
    match medium {
        ff::media::Type::Video => {
            let mut dec = ctx.decoder().video()?;
            let mut frame = ff::frame::Video::empty();
            let mut handle = |frame: &ff::frame::Video| {
                let pts = frame.timestamp().unwrap_or(0) as f64 * f64::from(tb);
                first.get_or_insert((pts, frame.is_key()));
                units += 1;
                let dur = frame.packet().duration as f64 * f64::from(tb);
                end = end.max(pts + dur);
                size = Some((frame.width(), frame.height()));
            };
            for (s, packet) in input.packets() {
                if s.index() != index {
                    continue;
                }
                dec.send_packet(&packet)?;
                while dec.receive_frame(&mut frame).is_ok() {
                    handle(&frame);
                }
            }
            dec.send_eof()?;
            while dec.receive_frame(&mut frame).is_ok() {
                handle(&frame);
            }
        }
        ff::media::Type::Audio => {
            let mut dec = ctx.decoder().audio()?;
            let mut frame = ff::frame::Audio::empty();
            let rate = f64::from(dec.rate().max(1));
            let mut handle = |frame: &ff::frame::Audio| {
                let pts = frame.timestamp().unwrap_or(0) as f64 * f64::from(tb);
                first.get_or_insert((pts, true));
                units += frame.samples() as u64;
                end = end.max(pts + frame.samples() as f64 / rate);
            };
            for (s, packet) in input.packets() {
                if s.index() != index {
                    continue;
                }
                dec.send_packet(&packet)?;
                while dec.receive_frame(&mut frame).is_ok() {
                    handle(&frame);
                }
            }
            dec.send_eof()?;
            while dec.receive_frame(&mut frame).is_ok() {
                handle(&frame);
            }
        }
        other => bail!("unexpected stream type {other:?}"),
    }
    let first = first.ok_or_else(|| anyhow!("segment decoded to nothing"))?;
    Ok((first, units, end, size))
}

/// Decode the video of a whole media file and return, for every frame, its
/// presentation time (s) and the Y, U, V samples at pixel (`x`, `y`)
/// (8-bit 4:2:0 video).
pub fn pixel_track(path: &Path, x: u32, y: u32) -> Result<Vec<(f64, [u8; 3])>> {
    ff::init()?;
    let mut input = ff::format::input(path)?;
    let stream = input
        .streams()
        .best(ff::media::Type::Video)
        .ok_or_else(|| anyhow!("no video stream"))?;
    let (tb, index) = (stream.time_base(), stream.index());
    let mut dec = ff::codec::context::Context::from_parameters(stream.parameters())?
        .decoder()
        .video()?;
    let mut out = Vec::new();
    let mut frame = ff::frame::Video::empty();
    let mut take = |f: &ff::frame::Video| {
        let pts = f.timestamp().unwrap_or(0) as f64 * f64::from(tb);
        let (cx, cy) = ((x / 2) as usize, (y / 2) as usize);
        let yv = f.data(0)[y as usize * f.stride(0) + x as usize];
        let u = f.data(1)[cy * f.stride(1) + cx];
        let v = f.data(2)[cy * f.stride(2) + cx];
        out.push((pts, [yv, u, v]));
    };
    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        dec.send_packet(&packet)?;
        while dec.receive_frame(&mut frame).is_ok() {
            take(&frame);
        }
    }
    dec.send_eof()?;
    while dec.receive_frame(&mut frame).is_ok() {
        take(&frame);
    }
    Ok(out)
}
