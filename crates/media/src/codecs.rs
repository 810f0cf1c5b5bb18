//! RFC 6381 `CODECS` strings from encoder extradata.

/// `avc1.PPCCLL` (profile_idc, constraint flags, level_idc in hex) from H.264
/// extradata, either an `avcC` record (ISO/IEC 14496-15 §5.3.3.1) or Annex B
/// start-code-prefixed SPS/PPS (ITU-T H.264 §7.3.2.1.1). `None` if no SPS.
pub fn avc_codecs_string(extradata: &[u8]) -> Option<String> {
    let sps: &[u8] = if extradata.first() == Some(&1) && extradata.len() >= 4 {
        // avcC: version, profile, compat, level.
        &extradata[1..4]
    } else {
        let mut i = 0;
        let mut found = None;
        while i + 3 < extradata.len() {
            let sc3 = extradata[i..i + 3] == [0, 0, 1];
            if sc3 {
                let nal = &extradata[i + 3..];
                if nal.first().map(|b| b & 0x1f) == Some(7) && nal.len() >= 4 {
                    found = Some(&nal[1..4]);
                    break;
                }
                i += 3;
            } else {
                i += 1;
            }
        }
        found?
    };
    Some(format!("avc1.{:02x}{:02x}{:02x}", sps[0], sps[1], sps[2]))
}

/// CODECS value for AAC-LC (RFC 6381 §3.3, object type 0x40, AOT 2).
pub const AAC_LC: &str = "mp4a.40.2";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_sps_high_31() {
        let extradata = [
            0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, 0xac, 0, 0, 0, 1, 0x68, 0xee,
        ];
        assert_eq!(
            avc_codecs_string(&extradata).as_deref(),
            Some("avc1.64001f")
        );
    }

    #[test]
    fn avcc_record() {
        let extradata = [1, 0x4d, 0x40, 0x1e, 0xff, 0xe1];
        assert_eq!(
            avc_codecs_string(&extradata).as_deref(),
            Some("avc1.4d401e")
        );
    }

    #[test]
    fn no_sps_is_none() {
        assert_eq!(avc_codecs_string(&[0, 0, 1, 0x68, 1, 2, 3]), None);
        assert_eq!(avc_codecs_string(&[]), None);
    }
}
