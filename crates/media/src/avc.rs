//! H.264 decoder configuration (ISO/IEC 14496-15 §5.3.3 AVCDecoderConfigurationRecord) and
//! the parts of the SPS (ITU-T H.264 §7.3.2.1.1) needed for codec strings and resolution.

use crate::bits::{unescape_rbsp, BitReader};
use crate::error::need;
use crate::MediaError;
use bytes::Bytes;

/// NAL unit type of an IDR slice (H.264 Table 7-1).
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;

/// A parsed AVCDecoderConfigurationRecord. `record` keeps the original bytes: the `avcC` box
/// payload is written verbatim from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// The record as received (the `avcC` payload).
    pub record: Bytes,
    /// profile_idc.
    pub profile: u8,
    /// constraint_set flags byte (profile_compatibility).
    pub compatibility: u8,
    /// level_idc.
    pub level: u8,
    /// Size in bytes of the NAL unit length prefix in samples (1, 2 or 4).
    pub nalu_length_size: u8,
    /// Sequence parameter sets.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets.
    pub pps: Vec<Bytes>,
    /// Facts decoded from the first SPS.
    pub info: SpsInfo,
}

/// Facts decoded from an SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpsInfo {
    /// Display width in pixels (after cropping).
    pub width: u32,
    /// Display height in pixels (after cropping).
    pub height: u32,
    /// chroma_format_idc (1, 4:2:0, unless the profile says otherwise).
    pub chroma_format_idc: u8,
    /// bit_depth_luma_minus8.
    pub bit_depth_luma_minus8: u8,
    /// bit_depth_chroma_minus8.
    pub bit_depth_chroma_minus8: u8,
}

impl AvcConfig {
    /// Parses an AVCDecoderConfigurationRecord.
    pub fn parse(record: Bytes) -> Result<Self, MediaError> {
        const WHAT: &str = "AVCDecoderConfigurationRecord";
        let d = &record[..];
        need(WHAT, d, 7)?;
        if d[0] != 1 {
            return Err(MediaError::Invalid {
                what: WHAT,
                field: "configurationVersion",
                value: u64::from(d[0]),
            });
        }
        let nalu_length_size = (d[4] & 0x03) + 1;
        if nalu_length_size == 3 {
            return Err(MediaError::Invalid {
                what: WHAT,
                field: "lengthSizeMinusOne",
                value: 2,
            });
        }
        let mut pos = 5;
        let num_sps = usize::from(d[pos] & 0x1f);
        pos += 1;
        let mut sps = Vec::with_capacity(num_sps);
        for _ in 0..num_sps {
            let (nal, next) = read_u16_prefixed(&record, pos, WHAT)?;
            sps.push(nal);
            pos = next;
        }
        need(WHAT, d, pos + 1)?;
        let num_pps = usize::from(d[pos]);
        pos += 1;
        let mut pps = Vec::with_capacity(num_pps);
        for _ in 0..num_pps {
            let (nal, next) = read_u16_prefixed(&record, pos, WHAT)?;
            pps.push(nal);
            pos = next;
        }
        let first = sps.first().ok_or(MediaError::Invalid {
            what: WHAT,
            field: "numOfSequenceParameterSets",
            value: 0,
        })?;
        let info = parse_sps(first)?;
        Ok(AvcConfig {
            profile: d[1],
            compatibility: d[2],
            level: d[3],
            nalu_length_size,
            sps,
            pps,
            info,
            record,
        })
    }

    /// The record for one SPS and one PPS received in band (WebRTC sends no record): profile,
    /// compatibility and level from the SPS, 4-byte NAL lengths. Refuses parameter sets of
    /// the wrong type or too large for the record's 16-bit lengths, and SPSs it cannot parse.
    pub fn from_parameter_sets(sps: &[u8], pps: &[u8]) -> Result<Self, MediaError> {
        const WHAT: &str = "in-band parameter sets";
        need(WHAT, sps, 4)?;
        need(WHAT, pps, 1)?;
        if pps[0] & 0x1f != NAL_PPS {
            return Err(MediaError::Invalid {
                what: WHAT,
                field: "PPS nal_unit_type",
                value: u64::from(pps[0] & 0x1f),
            });
        }
        let too_long = |n: &[u8]| n.len() > usize::from(u16::MAX);
        if too_long(sps) || too_long(pps) {
            return Err(MediaError::Invalid {
                what: WHAT,
                field: "parameter set length",
                value: sps.len().max(pps.len()) as u64,
            });
        }
        let mut r = Vec::with_capacity(15 + sps.len() + pps.len());
        r.extend_from_slice(&[1, sps[1], sps[2], sps[3], 0xff, 0xe1]);
        r.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        r.extend_from_slice(sps);
        r.push(1);
        r.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        r.extend_from_slice(pps);
        // the High profiles' fields (ISO/IEC 14496-15 §5.3.3.1.2), no SPS extensions
        if matches!(sps[1], 100 | 110 | 122 | 144) {
            let info = parse_sps(sps)?;
            r.extend_from_slice(&[
                0xfc | info.chroma_format_idc,
                0xf8 | info.bit_depth_luma_minus8,
                0xf8 | info.bit_depth_chroma_minus8,
                0,
            ]);
        }
        Self::parse(Bytes::from(r))
    }

    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }
}

fn read_u16_prefixed(
    record: &Bytes,
    pos: usize,
    what: &'static str,
) -> Result<(Bytes, usize), MediaError> {
    need(what, record, pos + 2)?;
    let len = usize::from(u16::from_be_bytes([record[pos], record[pos + 1]]));
    need(what, record, pos + 2 + len)?;
    Ok((record.slice(pos + 2..pos + 2 + len), pos + 2 + len))
}

/// Parses the width and height out of an SPS NAL unit (with its 1-byte NAL header).
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, MediaError> {
    const WHAT: &str = "H.264 SPS";
    need(WHAT, nal, 4)?;
    if nal[0] & 0x1f != NAL_SPS {
        return Err(MediaError::Invalid {
            what: WHAT,
            field: "nal_unit_type",
            value: u64::from(nal[0] & 0x1f),
        });
    }
    let rbsp = unescape_rbsp(&nal[1..]);
    let mut r = BitReader::new(&rbsp, WHAT);
    let profile_idc = r.bits(8)?;
    r.skip(16)?; // constraint flags + level_idc
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = 0;
    let (mut depth_luma, mut depth_chroma) = (0, 0);
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        depth_luma = r.ue()?;
        depth_chroma = r.ue()?;
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            // seq_scaling_matrix_present_flag
            let lists = if chroma_format_idc != 3 { 8 } else { 12 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    let poc_type = r.ue()?;
    if poc_type == 0 {
        r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
    } else if poc_type == 1 {
        r.bit()?; // delta_pic_order_always_zero_flag
        r.se()?; // offset_for_non_ref_pic
        r.se()?; // offset_for_top_to_bottom_field
        let n = r.ue()?;
        if n > 255 {
            return Err(MediaError::Invalid {
                what: WHAT,
                field: "num_ref_frames_in_pic_order_cnt_cycle",
                value: u64::from(n),
            });
        }
        for _ in 0..n {
            r.se()?;
        }
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = u64::from(r.bit()?);
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
    if r.bit()? == 1 {
        crop_l = u64::from(r.ue()?);
        crop_r = u64::from(r.ue()?);
        crop_t = u64::from(r.ue()?);
        crop_b = u64::from(r.ue()?);
    }
    let chroma_array_type = if separate_colour_plane == 1 {
        0
    } else {
        chroma_format_idc
    };
    let (sub_w, sub_h) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let (crop_unit_x, crop_unit_y) = if chroma_array_type == 0 {
        (1, 2 - frame_mbs_only)
    } else {
        (sub_w, sub_h * (2 - frame_mbs_only))
    };
    let width = (width_mbs * 16).saturating_sub(crop_unit_x * (crop_l + crop_r));
    let height = ((2 - frame_mbs_only) * height_map_units * 16)
        .saturating_sub(crop_unit_y * (crop_t + crop_b));
    if width == 0 || height == 0 || width > 16_384 || height > 16_384 {
        return Err(MediaError::Invalid {
            what: WHAT,
            field: "picture size",
            value: width.max(height),
        });
    }
    let small = |field: &'static str, v: u32, max: u32| {
        if v > max {
            Err(MediaError::Invalid {
                what: WHAT,
                field,
                value: u64::from(v),
            })
        } else {
            Ok(v as u8)
        }
    };
    Ok(SpsInfo {
        width: width as u32,
        height: height as u32,
        chroma_format_idc: small("chroma_format_idc", chroma_format_idc, 3)?,
        bit_depth_luma_minus8: small("bit_depth_luma_minus8", depth_luma, 6)?,
        bit_depth_chroma_minus8: small("bit_depth_chroma_minus8", depth_chroma, 6)?,
    })
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), MediaError> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            // delta_scale is -128..=127 (H.264 §7.4.2.1.1.1); more would overflow the sum
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(MediaError::Invalid {
                    what: "H.264 SPS",
                    field: "delta_scale",
                    value: u64::from(delta.unsigned_abs()),
                });
            }
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Iterates the NAL units of a length-prefixed (AVCC) sample. Stops at the first malformed
/// length (returning an error item).
pub fn nal_units(
    sample: &[u8],
    length_size: u8,
) -> impl Iterator<Item = Result<&[u8], MediaError>> {
    let ls = usize::from(length_size);
    let mut pos = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= sample.len() {
            return None;
        }
        if pos + ls > sample.len() {
            failed = true;
            return Some(Err(MediaError::Truncated {
                what: "AVCC NAL length",
                need: pos + ls,
                have: sample.len(),
            }));
        }
        let mut len = 0usize;
        for b in &sample[pos..pos + ls] {
            len = (len << 8) | usize::from(*b);
        }
        let start = pos + ls;
        if start + len > sample.len() {
            failed = true;
            return Some(Err(MediaError::Truncated {
                what: "AVCC NAL unit",
                need: start + len,
                have: sample.len(),
            }));
        }
        pos = start + len;
        Some(Ok(&sample[start..start + len]))
    })
}

/// True when a length-prefixed sample contains an IDR slice (NAL type 5).
pub fn contains_idr(sample: &[u8], length_size: u8) -> bool {
    nal_units(sample, length_size)
        .filter_map(Result::ok)
        .any(|n| n.first().map(|h| h & 0x1f) == Some(NAL_IDR))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The avcC of the `sample-h264-aac-small.flv` fixture (320x180 Constrained Baseline).
    pub(crate) fn small_record() -> Bytes {
        let file = Bytes::from_static(include_bytes!(
            "../../../tests/fixtures/sample-h264-aac-small.flv"
        ));
        let tags = crate::flv::read_file(&file).unwrap();
        let first_video = tags
            .iter()
            .find(|t| t.kind == crate::flv::FlvTagKind::Video)
            .unwrap();
        match crate::flv::parse_video(&first_video.body).unwrap() {
            crate::flv::VideoTag::AvcSequenceHeader(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_record_and_sps() {
        let c = AvcConfig::parse(small_record()).unwrap();
        assert_eq!(c.codec_string(), "avc1.42c00d");
        assert_eq!(c.profile, 66);
        assert_eq!(c.nalu_length_size, 4);
        assert_eq!(c.sps.len(), 1);
        assert_eq!(c.pps.len(), 1);
        assert_eq!((c.info.width, c.info.height), (320, 180));
    }

    #[test]
    fn record_from_in_band_parameter_sets() {
        let c = AvcConfig::parse(small_record()).unwrap();
        let built = AvcConfig::from_parameter_sets(&c.sps[0], &c.pps[0]).unwrap();
        // the same record as the encoder's own, apart from the length-size byte's reserved bits
        assert_eq!(built.codec_string(), c.codec_string());
        assert_eq!(built.sps, c.sps);
        assert_eq!(built.pps, c.pps);
        assert_eq!(built.info, c.info);
        assert_eq!(built.nalu_length_size, 4);
        assert!(AvcConfig::from_parameter_sets(&c.pps[0], &c.pps[0]).is_err());
        assert!(AvcConfig::from_parameter_sets(&c.sps[0], &c.sps[0]).is_err());
        assert!(AvcConfig::from_parameter_sets(&c.sps[0][..2], &c.pps[0]).is_err());
        assert!(AvcConfig::from_parameter_sets(&c.sps[0], &[]).is_err());
    }

    #[test]
    fn high_profile_record_has_its_extension() {
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/whip-h264-high.h264"
        ))
        .unwrap();
        // the first NAL units of the Annex B stream: SPS, then PPS
        let starts: Vec<usize> = (0..file.len() - 3)
            .filter(|&i| file[i..i + 3] == [0, 0, 1])
            .map(|i| i + 3)
            .take(3)
            .collect();
        let nal = |k: usize| {
            let n = &file[starts[k]..starts[k + 1] - 3];
            n.strip_suffix(&[0]).unwrap_or(n)
        };
        let nals = [nal(0), nal(1)];
        let c = AvcConfig::from_parameter_sets(nals[0], nals[1]).unwrap();
        assert_eq!(c.profile, 100);
        assert_eq!((c.info.width, c.info.height), (640, 360));
        assert_eq!(c.info.chroma_format_idc, 1);
        // chroma 4:2:0, 8-bit luma and chroma, no SPS extensions
        assert!(
            c.record.ends_with(&[0xfd, 0xf8, 0xf8, 0]),
            "{:02x?}",
            c.record
        );
        assert_eq!(
            c.record.len(),
            11 + nals[0].len() + nals[1].len() + 4,
            "{:02x?}",
            c.record
        );
        // a Constrained Baseline record carries none
        let b = AvcConfig::parse(small_record()).unwrap();
        let b = AvcConfig::from_parameter_sets(&b.sps[0], &b.pps[0]).unwrap();
        assert_eq!(b.record.len(), 11 + b.sps[0].len() + b.pps[0].len());
    }

    #[test]
    fn rejects_garbage_without_panic() {
        let rec = small_record();
        for cut in 0..rec.len() {
            let _ = AvcConfig::parse(rec.slice(..cut));
        }
        assert!(AvcConfig::parse(Bytes::from_static(&[2, 0, 0, 0, 0, 0, 0])).is_err());
        assert!(AvcConfig::parse(Bytes::from_static(&[1, 0x42, 0, 0x1e, 0xff, 0xe0, 0])).is_err());
    }

    #[test]
    fn nal_iteration() {
        let sample = [0, 0, 0, 2, 0x65, 0xaa, 0, 0, 0, 1, 0x41];
        let nals: Vec<_> = nal_units(&sample, 4).collect::<Result<_, _>>().unwrap();
        assert_eq!(nals, vec![&[0x65, 0xaa][..], &[0x41][..]]);
        assert!(contains_idr(&sample, 4));
        assert!(!contains_idr(&sample[6..], 4));
        assert!(nal_units(&[0, 0, 0, 9, 1], 4).any(|r| r.is_err()));
    }
}
