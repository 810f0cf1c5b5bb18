//! The CMAF reader on arbitrary bytes: a big-endian u16 length, that many
//! bytes of init segment, the rest a media segment (seed it with a real
//! `init.mp4` + segment in that layout to start deep). Errors are fine;
//! panics and hangs are not.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use stream_native::cmaf::Track;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let n = usize::from(u16::from_be_bytes([data[0], data[1]])).min(data.len() - 2);
    let (init, segment) = data[2..].split_at(n);
    if let Ok(track) = Track::parse_init(init) {
        if let Ok(samples) = track.samples(&Bytes::copy_from_slice(segment)) {
            for s in &samples {
                let _ = track.access_unit(s);
            }
        }
    }
});
