//! Display rotation with libavfilter.

use ffmpeg_next as ff;

use crate::error::{MediaError, Stage};

/// Applies display rotation with libavfilter (`transpose`, `hflip,vflip`).
pub(super) struct RotationFilter {
    graph: ff::filter::Graph,
}

impl RotationFilter {
    pub(super) fn new(
        dec: &ff::decoder::Video,
        tb: ff::Rational,
        rotation: u32,
    ) -> Result<Self, MediaError> {
        let mut graph = ff::filter::Graph::new();
        let fmt = dec.format();
        let pix: ff::ffi::AVPixelFormat = fmt.into();
        let sar = dec.aspect_ratio();
        let (sn, sd) = if sar.numerator() > 0 && sar.denominator() > 0 {
            (sar.numerator(), sar.denominator())
        } else {
            (1, 1)
        };
        let args = format!(
            "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
            dec.width(),
            dec.height(),
            pix as i32,
            tb.numerator(),
            tb.denominator(),
            sn,
            sd
        );
        let buffer = ff::filter::find("buffer")
            .ok_or_else(|| MediaError::Pipeline("libavfilter has no buffer source".into()))?;
        let sink = ff::filter::find("buffersink")
            .ok_or_else(|| MediaError::Pipeline("libavfilter has no buffersink".into()))?;
        graph.add(&buffer, "in", &args).stage("rotate source")?;
        graph.add(&sink, "out", "").stage("rotate sink")?;
        let spec = match rotation {
            90 => "transpose=clock",
            180 => "hflip,vflip",
            270 => "transpose=cclock",
            _ => "null",
        };
        graph
            .output("in", 0)
            .and_then(|p| p.input("out", 0))
            .and_then(|p| p.parse(spec))
            .stage("rotate graph")?;
        graph.validate().stage("rotate graph")?;
        Ok(RotationFilter { graph })
    }

    pub(super) fn push(&mut self, frame: &ff::frame::Video) -> Result<(), MediaError> {
        self.graph
            .get("in")
            .ok_or_else(|| MediaError::Pipeline("rotate source missing".into()))?
            .source()
            .add(frame)
            .stage("rotate push")
    }

    pub(super) fn flush(&mut self) -> Result<(), MediaError> {
        self.graph
            .get("in")
            .ok_or_else(|| MediaError::Pipeline("rotate source missing".into()))?
            .source()
            .flush()
            .stage("rotate flush")
    }

    pub(super) fn pull(&mut self) -> Result<Option<ff::frame::Video>, MediaError> {
        let mut out = ff::frame::Video::empty();
        let mut ctx = self
            .graph
            .get("out")
            .ok_or_else(|| MediaError::Pipeline("rotate sink missing".into()))?;
        match ctx.sink().frame(&mut out) {
            Ok(()) => Ok(Some(out)),
            Err(ff::Error::Eof) => Ok(None),
            Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => Ok(None),
            Err(e) => Err(MediaError::Libav {
                stage: "rotate pull",
                source: e,
            }),
        }
    }
}
