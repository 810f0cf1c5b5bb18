//! CMAF fragments for LL-HLS parts: libavformat's `mp4` muxer with
//! `frag_custom+empty_moov+default_base_moof` writing into a memory buffer
//! (`avio_open_dyn_buf`). The header gives the initialization section
//! (`ftyp`+`moov` without samples); every [`FragmentMuxer::cut`] flushes
//! the packets written since the last cut as one `moof`+`mdat` fragment —
//! an independent LL-HLS part whose `tfdt` (baseMediaDecodeTime) carries
//! the track's continuous decode time. A segment is the concatenation of
//! its parts (CMAF allows several fragments per segment).

use std::ptr;

use ff::packet::Mut;
use ffmpeg_next as ff;

use crate::error::{MediaError, Stage};

/// One track's fragmenting mp4 muxer writing to memory.
pub(crate) struct FragmentMuxer {
    output: ff::format::context::Output,
    /// Stream time base after `write_header` (the track timescale).
    time_base: ff::Rational,
}

// SAFETY: the muxer and its dyn buffer are used from one thread at a time
// (the packager stage owns it); nothing in them is thread-bound.
unsafe impl Send for FragmentMuxer {}

impl FragmentMuxer {
    /// A muxer for one stream described by `encoder`; returns it with the
    /// initialization section's bytes.
    pub(crate) fn create<E: AsRef<ff::codec::Context>>(
        encoder: &E,
        codec: ff::Codec,
    ) -> Result<(Self, Vec<u8>), MediaError> {
        let mut raw: *mut ff::ffi::AVFormatContext = ptr::null_mut();
        // SAFETY: allocates a context for the named muxer; checked below.
        let res = unsafe {
            ff::ffi::avformat_alloc_output_context2(
                &mut raw,
                ptr::null_mut(),
                c"mp4".as_ptr(),
                ptr::null(),
            )
        };
        if res < 0 || raw.is_null() {
            return Err(MediaError::Libav {
                stage: "mp4 muxer",
                source: ff::Error::from(res),
            });
        }
        // SAFETY: `raw` is a fresh output context we own from here on; its
        // `pb` is null until we open the dyn buffer (so the wrapper's
        // destructor never closes a file it did not open).
        let mut output = unsafe { ff::format::context::Output::wrap(raw) };
        {
            let mut stream = output.add_stream(codec).stage("mp4 stream")?;
            stream.set_parameters(encoder);
            stream.set_time_base(encoder.as_ref().time_base());
            // SAFETY: codec_tag is a plain field; 0 lets the muxer pick.
            unsafe {
                (*stream.parameters().as_mut_ptr()).codec_tag = 0;
            }
        }
        // SAFETY: opens a memory AVIOContext into the context's `pb`.
        let res = unsafe { ff::ffi::avio_open_dyn_buf(&mut (*raw).pb) };
        if res < 0 {
            return Err(MediaError::Libav {
                stage: "mp4 buffer",
                source: ff::Error::from(res),
            });
        }
        let mut muxer = FragmentMuxer {
            output,
            time_base: ff::Rational::new(1, 1),
        };
        let mut options = ff::Dictionary::new();
        options.set("movflags", "frag_custom+empty_moov+default_base_moof");
        let unused: Vec<String> = muxer
            .output
            .write_header_with(options)
            .stage("mp4 header")?
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        if !unused.is_empty() {
            return Err(MediaError::Pipeline(format!(
                "mp4 muxer did not accept options {unused:?}"
            )));
        }
        muxer.time_base = muxer
            .output
            .stream(0)
            .ok_or_else(|| MediaError::Pipeline("mp4 muxer lost its stream".into()))?
            .time_base();
        let init = muxer.take_bytes()?;
        if init.is_empty() {
            return Err(MediaError::Pipeline("mp4 muxer wrote no header".into()));
        }
        Ok((muxer, init))
    }

    /// The track timescale packets are written in.
    pub(crate) fn time_base(&self) -> ff::Rational {
        self.time_base
    }

    /// Write one packet whose timestamps and duration are already in
    /// [`FragmentMuxer::time_base`]; it goes into the current fragment.
    pub(crate) fn write(&mut self, mut packet: ff::Packet) -> Result<(), MediaError> {
        packet.set_stream(0);
        packet.set_position(-1);
        // SAFETY: a valid context and packet; av_write_frame does not take
        // ownership (it references or copies the data).
        let res = unsafe { ff::ffi::av_write_frame(self.output.as_mut_ptr(), packet.as_mut_ptr()) };
        if res < 0 {
            return Err(MediaError::Libav {
                stage: "mp4 write",
                source: ff::Error::from(res),
            });
        }
        Ok(())
    }

    /// Close the current fragment; returns its bytes (`moof`+`mdat`), empty
    /// when no packet was written since the last cut.
    pub(crate) fn cut(&mut self) -> Result<Vec<u8>, MediaError> {
        // SAFETY: a NULL packet asks the muxer (frag_custom) to flush.
        let res = unsafe { ff::ffi::av_write_frame(self.output.as_mut_ptr(), ptr::null_mut()) };
        if res < 0 {
            return Err(MediaError::Libav {
                stage: "mp4 fragment",
                source: ff::Error::from(res),
            });
        }
        self.take_bytes()
    }

    /// Everything written to the memory buffer so far; a fresh buffer takes
    /// its place.
    fn take_bytes(&mut self) -> Result<Vec<u8>, MediaError> {
        // SAFETY: `pb` is the dyn buffer we opened; avio_close_dyn_buf
        // flushes and frees it and hands us its bytes (freed with av_free
        // after the copy); then a new dyn buffer replaces it.
        unsafe {
            let ctx = self.output.as_mut_ptr();
            let mut buf: *mut u8 = ptr::null_mut();
            let len = ff::ffi::avio_close_dyn_buf((*ctx).pb, &mut buf);
            (*ctx).pb = ptr::null_mut();
            let bytes = if len > 0 && !buf.is_null() {
                std::slice::from_raw_parts(buf, len as usize).to_vec()
            } else {
                Vec::new()
            };
            ff::ffi::av_free(buf.cast());
            let res = ff::ffi::avio_open_dyn_buf(&mut (*ctx).pb);
            if res < 0 {
                return Err(MediaError::Libav {
                    stage: "mp4 buffer",
                    source: ff::Error::from(res),
                });
            }
            Ok(bytes)
        }
    }
}

impl Drop for FragmentMuxer {
    fn drop(&mut self) {
        // SAFETY: free our dyn buffer and null `pb`, so the wrapper's
        // destructor (avio_close) never sees a memory buffer.
        unsafe {
            let ctx = self.output.as_mut_ptr();
            if !(*ctx).pb.is_null() {
                let mut buf: *mut u8 = ptr::null_mut();
                ff::ffi::avio_close_dyn_buf((*ctx).pb, &mut buf);
                ff::ffi::av_free(buf.cast());
                (*ctx).pb = ptr::null_mut();
            }
        }
    }
}
