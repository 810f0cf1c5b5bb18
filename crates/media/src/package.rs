//! HLS packaging with libavformat's `hls` muxer: one muxer per track
//! (each video rendition, and the shared audio rendition), fMP4/CMAF
//! segments, RFC 8216 media playlists of type EVENT that end with
//! `EXT-X-ENDLIST` when the track finishes.
//!
//! Layout under the output directory, per track `NAME`:
//! `NAME/index.m3u8`, `NAME/init.mp4`, `NAME/seg_00000.m4s`, ...

use std::path::{Path, PathBuf};

use ffmpeg_next as ff;

use crossbeam_channel::{Receiver, Sender};

use crate::error::{MediaError, Stage};
use crate::pipeline::{Note, PacketMsg};

/// Media playlist file name inside a track directory.
pub const PLAYLIST_NAME: &str = "index.m3u8";
/// Initialization segment file name inside a track directory.
pub const INIT_NAME: &str = "init.mp4";

/// One open HLS muxer.
pub(crate) struct TrackMuxer {
    output: ff::format::context::Output,
    /// Stream time base, read after `write_header` (the fMP4 muxer picks the
    /// track timescale).
    time_base: ff::Rational,
    segment_duration_s: f64,
    /// PTS (s) of the track's first packet: the muxer measures segment
    /// boundaries from it.
    start_s: Option<f64>,
    /// Time since `start_s` (s) at which the muxer cuts the next segment;
    /// used to tell the caller that a segment just closed.
    next_cut_s: f64,
    packets: u64,
    is_video: bool,
    /// The last packet, held until the next one gives its true duration
    /// (next DTS − its DTS): constant durations overlap the next DTS when
    /// timestamps are off the frame grid or the source is VFR, and the mp4
    /// muxer then rewrites timestamps.
    pending: Option<ff::Packet>,
}

impl TrackMuxer {
    /// Create `dir/NAME/` and an HLS muxer writing into it, with one stream
    /// described by `encoder`'s parameters.
    pub fn create<E: AsRef<ff::codec::Context>>(
        dir: &Path,
        name: &str,
        encoder: &E,
        encoder_codec: ff::Codec,
        segment_duration_s: f64,
        is_video: bool,
    ) -> Result<Self, MediaError> {
        let track_dir = dir.join(name);
        std::fs::create_dir_all(&track_dir)?;
        let playlist: PathBuf = track_dir.join(PLAYLIST_NAME);
        let mut output = ff::format::output_as(&playlist, "hls").stage("hls muxer")?;
        {
            let mut stream = output.add_stream(encoder_codec).stage("hls stream")?;
            stream.set_parameters(encoder);
            stream.set_time_base(encoder.as_ref().time_base());
            // SAFETY: codec_tag is a plain field; 0 lets the mp4 muxer pick.
            unsafe {
                (*stream.parameters().as_mut_ptr()).codec_tag = 0;
            }
        }
        let mut options = ff::Dictionary::new();
        options.set("hls_time", &format!("{segment_duration_s}"));
        options.set("hls_list_size", "0");
        options.set("hls_playlist_type", "event");
        options.set("hls_segment_type", "fmp4");
        options.set("hls_fmp4_init_filename", INIT_NAME);
        options.set(
            "hls_segment_filename",
            track_dir.join("seg_%05d.m4s").to_str().ok_or_else(|| {
                MediaError::Pipeline(format!("non UTF-8 output path {track_dir:?}"))
            })?,
        );
        options.set("hls_flags", "independent_segments+temp_file");
        let unused: Vec<String> = output
            .write_header_with(options)
            .stage("hls header")?
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        if !unused.is_empty() {
            return Err(MediaError::Pipeline(format!(
                "hls muxer did not accept options {unused:?}"
            )));
        }
        let time_base = output
            .stream(0)
            .ok_or_else(|| MediaError::Pipeline("hls muxer lost its stream".into()))?
            .time_base();
        Ok(TrackMuxer {
            output,
            time_base,
            segment_duration_s,
            start_s: None,
            next_cut_s: segment_duration_s,
            packets: 0,
            is_video,
            pending: None,
        })
    }

    /// Take one encoded packet (timestamps in `from` time base); the
    /// previous packet is written now that its duration is known. Returns
    /// `true` when that write closed a segment, i.e. the track's playlist on
    /// disk just gained an entry.
    pub fn write(
        &mut self,
        mut packet: ff::Packet,
        from: ff::Rational,
    ) -> Result<bool, MediaError> {
        packet.rescale_ts(from, self.time_base);
        packet.set_stream(0);
        packet.set_position(-1);
        let Some(mut previous) = self.pending.replace(packet) else {
            return Ok(false);
        };
        if let (Some(prev_dts), Some(next_dts)) = (
            previous.dts(),
            self.pending.as_ref().and_then(ff::Packet::dts),
        ) {
            if next_dts > prev_dts {
                previous.set_duration(next_dts - prev_dts);
            }
        }
        self.write_now(previous)
    }

    fn write_now(&mut self, packet: ff::Packet) -> Result<bool, MediaError> {
        let pts_s = packet
            .pts()
            .map(|p| p as f64 * f64::from(self.time_base))
            .unwrap_or(0.0);
        let rel_s = pts_s - *self.start_s.get_or_insert(pts_s);
        let is_key = packet.is_key();
        packet.write(&mut self.output).stage("hls write")?;
        self.packets += 1;
        // The hls muxer (libavformat hlsenc.c, hls_write_packet) cuts on the
        // first packet that may start a segment (a keyframe for video, any
        // packet for audio) once `pts - start >= hls_time × segments so far`.
        let cut = self.packets > 1 && (!self.is_video || is_key) && rel_s + 1e-6 >= self.next_cut_s;
        if cut {
            // The first multiple of the segment duration past this packet,
            // computed (not stepped to) so a far timestamp costs nothing.
            let n = ((rel_s + 1e-6) / self.segment_duration_s).floor() + 1.0;
            self.next_cut_s = n * self.segment_duration_s;
        }
        Ok(cut)
    }

    /// Write the trailer: the last segment is closed and the playlist gets
    /// `EXT-X-ENDLIST`.
    pub fn finish(mut self) -> Result<(), MediaError> {
        if let Some(last) = self.pending.take() {
            self.write_now(last)?;
        }
        self.output.write_trailer().stage("hls trailer")
    }
}

/// Packager: one HLS muxer per track; trailers (ENDLIST) only when every
/// track ended cleanly.
pub(crate) fn package_stage(
    mut muxers: Vec<TrackMuxer>,
    rx: Receiver<PacketMsg>,
    notes: Sender<Note>,
) -> Result<(), MediaError> {
    let mut ended = vec![false; muxers.len()];
    while ended.iter().any(|e| !e) {
        match rx.recv() {
            Ok(PacketMsg::Packet {
                track,
                packet,
                time_base,
            }) => {
                if muxers[track].write(packet, time_base)? {
                    notes
                        .send(Note::SegmentClosed(track))
                        .map_err(|_| MediaError::Pipeline("caller stopped".into()))?;
                }
            }
            Ok(PacketMsg::End { track }) => ended[track] = true,
            Err(_) => return Err(MediaError::Pipeline("an encoder stopped".into())),
        }
    }
    for (track, muxer) in muxers.into_iter().enumerate() {
        muxer.finish()?;
        notes
            .send(Note::SegmentClosed(track))
            .map_err(|_| MediaError::Pipeline("caller stopped".into()))?;
    }
    Ok(())
}
