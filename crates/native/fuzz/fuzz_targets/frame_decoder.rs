//! The native stream's frame reader on arbitrary bytes, fed in arbitrary
//! splits: it must never panic, never loop without consuming, and every
//! frame it returns must re-encode to bytes it reads back identically.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use stream_native::frame::FrameDecoder;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(1, |b| usize::from(*b).max(1));
    let mut dec = FrameDecoder::new(1 << 16);
    let mut buf = BytesMut::new();
    for chunk in data.chunks(split) {
        buf.extend_from_slice(chunk);
        // Each successful call consumes a frame: at most len + 1 calls.
        for _ in 0..=buf.len() {
            match dec.decode_frame(&mut buf) {
                Ok(Some(frame)) => {
                    let wire = frame.encode();
                    let mut again = BytesMut::from(&wire[..]);
                    let back = FrameDecoder::new(1 << 16).decode_frame(&mut again);
                    assert_eq!(back, Ok(Some(frame)));
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
});
