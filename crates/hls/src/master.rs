//! The multivariant (master) playlist.

use m3u8_rs::{AlternativeMedia, AlternativeMediaType, MasterPlaylist, Resolution, VariantStream};

/// Audio group id shared by every variant.
pub const AUDIO_GROUP: &str = "aud";

/// One video rendition as listed in the master playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoVariant {
    /// Media playlist URI relative to the master, e.g. `720p/index.m3u8`.
    pub uri: String,
    /// Pixels.
    pub width: u32,
    pub height: u32,
    /// Frames per second.
    pub frame_rate: f64,
    /// RFC 6381 codec string of the video, e.g. `avc1.64001f`.
    pub codecs: String,
    /// Peak / average video bitrate, bit/s (audio is added when listed).
    pub peak_bps: u64,
    pub average_bps: u64,
}

/// The shared audio rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioRendition {
    pub uri: String,
    /// e.g. `mp4a.40.2`.
    pub codecs: String,
    pub channels: u16,
    pub peak_bps: u64,
    pub average_bps: u64,
}

/// Write the master playlist: EXT-X-INDEPENDENT-SEGMENTS, one EXT-X-MEDIA
/// audio rendition (if any) and one EXT-X-STREAM-INF per video variant,
/// highest bandwidth first, with BANDWIDTH and AVERAGE-BANDWIDTH including
/// audio, CODECS listing video and audio, RESOLUTION and FRAME-RATE
/// (RFC 8216 §4.3.4.2, §4.3.4.1).
pub fn write_master(videos: &[VideoVariant], audio: Option<&AudioRendition>) -> String {
    let mut variants: Vec<&VideoVariant> = videos.iter().collect();
    variants.sort_by_key(|v| std::cmp::Reverse(v.peak_bps));
    let alternatives = audio
        .map(|a| {
            vec![AlternativeMedia {
                media_type: AlternativeMediaType::Audio,
                uri: Some(a.uri.clone()),
                group_id: AUDIO_GROUP.into(),
                name: "audio".into(),
                default: true,
                autoselect: true,
                channels: Some(a.channels.to_string()),
                ..Default::default()
            }]
        })
        .unwrap_or_default();
    let master = MasterPlaylist {
        version: Some(7),
        independent_segments: true,
        alternatives,
        variants: variants
            .into_iter()
            .map(|v| VariantStream {
                uri: v.uri.clone(),
                bandwidth: v.peak_bps + audio.map_or(0, |a| a.peak_bps),
                average_bandwidth: Some(v.average_bps + audio.map_or(0, |a| a.average_bps)),
                codecs: Some(match audio {
                    Some(a) => format!("{},{}", v.codecs, a.codecs),
                    None => v.codecs.clone(),
                }),
                resolution: Some(Resolution {
                    width: u64::from(v.width),
                    height: u64::from(v.height),
                }),
                frame_rate: Some((v.frame_rate * 1000.0).round() / 1000.0),
                audio: audio.map(|_| AUDIO_GROUP.to_string()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut out = Vec::new();
    master
        .write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("m3u8-rs writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_master_with_audio_group() {
        let videos = [
            VideoVariant {
                uri: "360p/index.m3u8".into(),
                width: 640,
                height: 360,
                frame_rate: 25.0,
                codecs: "avc1.64001e".into(),
                peak_bps: 1_100_000,
                average_bps: 800_000,
            },
            VideoVariant {
                uri: "720p/index.m3u8".into(),
                width: 1280,
                height: 720,
                frame_rate: 29.97003,
                codecs: "avc1.64001f".into(),
                peak_bps: 4_000_000,
                average_bps: 3_000_000,
            },
        ];
        let audio = AudioRendition {
            uri: "audio/index.m3u8".into(),
            codecs: "mp4a.40.2".into(),
            channels: 2,
            peak_bps: 130_000,
            average_bps: 128_000,
        };
        let text = write_master(&videos, Some(&audio));
        let expected = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,URI=\"audio/index.m3u8\",GROUP-ID=\"aud\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\"
#EXT-X-STREAM-INF:BANDWIDTH=4130000,AVERAGE-BANDWIDTH=3128000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.97,AUDIO=\"aud\"
720p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1230000,AVERAGE-BANDWIDTH=928000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=25,AUDIO=\"aud\"
360p/index.m3u8
";
        assert_eq!(text, expected);
        // And it parses back as a master playlist.
        match m3u8_rs::parse_playlist_res(text.as_bytes()) {
            Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => assert_eq!(m.variants.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
