//! What the outputs need of an H.265 (HEVC) bitstream without decoding it: NAL unit types,
//! which access units are keyframes, the picture size and the RFC 6381 codec string from
//! the SPS, and the `hvcC` decoder configuration record (ISO/IEC 14496-15 8.3.3) for the MSE
//! init segment.
//!
//! H.265 access units are stored in the ring as Annex B, with VPS, SPS and PPS in front of
//! every keyframe (retina's `FrameFormat::SIMPLE`), like H.264. The box has no H.265
//! decoder: snapshots, MJPEG and JPEG clients of an H.265 stream need an H.264 sub stream.

use super::h264::nal_units;
use super::sps::{Reader, SpsError, unescape};

/// NAL unit type of a video parameter set.
pub const NAL_VPS: u8 = 32;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 34;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 35;
/// IRAP (intra random access point) pictures: BLA (16..18), IDR (19, 20), CRA (21); 22 and
/// 23 are reserved IRAP types. A reader may start at an access unit holding one.
pub const IRAP: std::ops::RangeInclusive<u8> = 16..=23;

/// The NAL unit type of an H.265 NAL unit (header first): bits 1..7 of its first byte.
pub fn nal_type(body: &[u8]) -> u8 {
    body.first().map_or(0xff, |b| (b >> 1) & 0x3f)
}

/// Whether an Annex B access unit holds an IRAP picture (a keyframe).
pub fn is_keyframe(au: &[u8]) -> bool {
    nal_units(au).any(|n| IRAP.contains(&nal_type(n.body)))
}

/// What the SPS says that the outputs use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcSps {
    /// The 12 bytes of the general profile, tier and level: profile space, tier and profile
    /// (1), compatibility flags (4), constraint flags (6), level (1). `hvcC` copies them.
    pub general: [u8; 12],
    /// `sps_max_sub_layers_minus1 + 1`: `hvcC`'s `numTemporalLayers`.
    pub sub_layers: u8,
    /// `sps_temporal_id_nesting_flag`: `hvcC`'s `temporalIdNested`.
    pub temporal_id_nested: bool,
    /// `chroma_format_idc` (1 = 4:2:0).
    pub chroma_format_idc: u8,
    /// Luma bit depth minus 8.
    pub bit_depth_luma_minus8: u8,
    /// Chroma bit depth minus 8.
    pub bit_depth_chroma_minus8: u8,
    /// Picture width after the conformance window.
    pub width: u32,
    /// Picture height after the conformance window.
    pub height: u32,
    /// `sps_max_num_reorder_pics` of the highest sub-layer: how many pictures may precede
    /// one in decode order and follow it in output order (0: no B-frame reordering). `None`
    /// when the SPS ends before it.
    pub max_num_reorder_pics: Option<u32>,
}

/// Parses an SPS NAL unit (with its two-byte header, emulation prevention in place) as far as
/// the sub-layer ordering info (7.3.2.2.1).
pub fn parse_sps(nal: &[u8]) -> Result<HevcSps, SpsError> {
    let t = nal_type(nal);
    if t != NAL_SPS {
        return Err(SpsError::NotSps(t));
    }
    let rbsp = unescape(nal.get(2..).ok_or(SpsError::Truncated)?);
    let mut general = [0u8; 12];
    general.copy_from_slice(rbsp.get(1..13).ok_or(SpsError::Truncated)?);
    let mut r = Reader {
        data: &rbsp,
        pos: 0,
    };
    r.bits(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    let temporal_id_nesting = r.flag()?;
    r.pos += 96; // general profile, tier and level (copied above)
    skip_sub_layers(&mut r, max_sub_layers_minus1)?;
    r.ue()?; // sps_seq_parameter_set_id
    let chroma = r.ue()?;
    if chroma > 3 {
        return Err(SpsError::OutOfRange("chroma_format_idc"));
    }
    let separate_planes = chroma == 3 && r.flag()?;
    let coded_w = r.ue()?;
    let coded_h = r.ue()?;
    let (mut w, mut h) = (coded_w, coded_h);
    if r.flag()? {
        let (l, rt, t, b) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        // Offsets count chroma samples (table 6-1); 4:4:4 and separate planes count luma.
        let (sw, sh) = match (chroma, separate_planes) {
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        let crop_w = l.saturating_add(rt).saturating_mul(sw);
        let crop_h = t.saturating_add(b).saturating_mul(sh);
        if crop_w >= w || crop_h >= h {
            return Err(SpsError::OutOfRange("conf_win_offset"));
        }
        w -= crop_w;
        h -= crop_h;
    }
    let luma = r.ue()?;
    let chroma_depth = r.ue()?;
    if luma > 8 || chroma_depth > 8 {
        return Err(SpsError::OutOfRange("bit_depth_minus8"));
    }
    if w == 0 || h == 0 || w > 16_888 || h > 16_888 {
        return Err(SpsError::OutOfRange("pic_width_in_luma_samples"));
    }
    let max_num_reorder_pics = reorder_pics(&mut r, max_sub_layers_minus1).ok();
    Ok(HevcSps {
        general,
        sub_layers: max_sub_layers_minus1 as u8 + 1,
        temporal_id_nested: temporal_id_nesting,
        chroma_format_idc: chroma as u8,
        bit_depth_luma_minus8: luma as u8,
        bit_depth_chroma_minus8: chroma_depth as u8,
        width: w,
        height: h,
        max_num_reorder_pics,
    })
}

/// Reads `log2_max_pic_order_cnt_lsb_minus4` and the sub-layer ordering info; returns
/// `sps_max_num_reorder_pics` of the highest sub-layer (the last one given).
fn reorder_pics(r: &mut Reader, max_sub_layers_minus1: u32) -> Result<u32, SpsError> {
    r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
    let all_layers = r.flag()?;
    let first = if all_layers { 0 } else { max_sub_layers_minus1 };
    let mut reorder = 0;
    for _ in first..=max_sub_layers_minus1 {
        let dec_buffering_minus1 = r.ue()?;
        reorder = r.ue()?;
        r.ue()?; // sps_max_latency_increase_plus1
        // At most the DPB (A.4.2: up to 16 pictures): a larger value is a broken SPS.
        if reorder > dec_buffering_minus1 || dec_buffering_minus1 > 15 {
            return Err(SpsError::OutOfRange("sps_max_num_reorder_pics"));
        }
    }
    Ok(reorder)
}

/// Skips the sub-layer part of `profile_tier_level` (7.3.3).
fn skip_sub_layers(r: &mut Reader, max_sub_layers_minus1: u32) -> Result<(), SpsError> {
    let mut present = Vec::with_capacity(max_sub_layers_minus1 as usize);
    for _ in 0..max_sub_layers_minus1 {
        present.push((r.flag()?, r.flag()?));
    }
    if max_sub_layers_minus1 > 0 {
        r.pos += 2 * (8 - max_sub_layers_minus1 as usize);
    }
    for (profile, level) in present {
        r.pos += if profile { 88 } else { 0 } + if level { 8 } else { 0 };
    }
    // Make a truncated SPS fail here rather than in a later read.
    if r.pos > r.data.len() * 8 {
        return Err(SpsError::Truncated);
    }
    Ok(())
}

impl HevcSps {
    /// The RFC 6381 codec string of an `hvc1` sample entry (ISO/IEC 14496-15 E.3), for
    /// example `hvc1.1.6.L93.90`: profile space letter and profile, compatibility flags in
    /// reverse bit order (hex), tier letter and level, constraint bytes (hex, trailing zero
    /// bytes left out).
    pub fn codec_string(&self) -> String {
        let g = &self.general;
        let space = ["", "A", "B", "C"][usize::from(g[0] >> 6)];
        let tier = if g[0] & 0x20 != 0 { 'H' } else { 'L' };
        let compat = u32::from_be_bytes([g[1], g[2], g[3], g[4]]).reverse_bits();
        let mut s = format!("hvc1.{space}{}.{compat:X}.{tier}{}", g[0] & 0x1f, g[11]);
        let constraint = &g[5..11];
        let keep = constraint
            .iter()
            .rposition(|b| *b != 0)
            .map_or(1, |i| i + 1);
        for b in &constraint[..keep] {
            s.push_str(&format!(".{b:02X}"));
        }
        s
    }
}

/// The codec string of the SPS in an access unit (a keyframe), if it has one that parses.
pub fn hvc_codec_string(au: &[u8]) -> Option<String> {
    keyframe_sps(au).map(|s| s.codec_string())
}

/// The parsed SPS of an access unit, if it has one that parses.
pub fn keyframe_sps(au: &[u8]) -> Option<HevcSps> {
    let sps = nal_units(au).find(|n| nal_type(n.body) == NAL_SPS)?.body;
    parse_sps(sps).ok()
}

/// Why no `hvcC` can be made from a keyframe.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HvccError {
    /// The access unit lacks a parameter set (only keyframes carry them); its type is named.
    #[error("H.265 keyframe has no {0}")]
    Missing(&'static str),
    /// The SPS does not parse.
    #[error("H.265 SPS cannot be parsed: {0}")]
    BadSps(#[from] SpsError),
    /// A parameter set longer than the record's 16-bit length field.
    #[error("H.265 parameter set of {0} bytes is too long for an MP4 init segment")]
    TooLong(usize),
}

/// The `hvcC` box body (HEVCDecoderConfigurationRecord) for a keyframe with VPS, SPS and
/// PPS, with the parsed SPS. NAL units are stored with 4-byte lengths in the samples.
pub fn hvcc(keyframe: &[u8]) -> Result<(Vec<u8>, HevcSps), HvccError> {
    let find = |t: u8, name: &'static str| {
        nal_units(keyframe)
            .find(|n| nal_type(n.body) == t)
            .map(|n| n.body)
            .ok_or(HvccError::Missing(name))
    };
    let (vps, sps_nal, pps) = (
        find(NAL_VPS, "VPS")?,
        find(NAL_SPS, "SPS")?,
        find(NAL_PPS, "PPS")?,
    );
    let sps = parse_sps(sps_nal)?;
    let mut o = Vec::with_capacity(40 + vps.len() + sps_nal.len() + pps.len());
    o.push(1); // configurationVersion
    o.extend_from_slice(&sps.general);
    o.extend_from_slice(&[0xf0, 0x00]); // reserved, min_spatial_segmentation_idc 0
    o.push(0xfc); // reserved, parallelismType 0 (unknown)
    o.push(0xfc | sps.chroma_format_idc);
    o.push(0xf8 | sps.bit_depth_luma_minus8);
    o.push(0xf8 | sps.bit_depth_chroma_minus8);
    o.extend_from_slice(&[0, 0]); // avgFrameRate: unknown
    // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
    o.push(((sps.sub_layers & 7) << 3) | (u8::from(sps.temporal_id_nested) << 2) | 3);
    o.push(3); // numOfArrays
    for (t, nal) in [(NAL_VPS, vps), (NAL_SPS, sps_nal), (NAL_PPS, pps)] {
        let len = u16::try_from(nal.len()).map_err(|_| HvccError::TooLong(nal.len()))?;
        o.push(0x80 | t); // array_completeness: all of this type are here
        o.extend_from_slice(&1u16.to_be_bytes());
        o.extend_from_slice(&len.to_be_bytes());
        o.extend_from_slice(nal);
    }
    Ok((o, sps))
}

/// Whether a NAL unit goes into an MP4 sample: parameter sets live in `hvcC`, delimiters
/// nowhere.
pub fn keep_in_sample(body: &[u8]) -> bool {
    !matches!(nal_type(body), NAL_VPS | NAL_SPS | NAL_PPS | NAL_AUD)
}

/// The newest VPS, SPS and PPS of an H.265 stream, so every keyframe is stored with them.
///
/// retina prepends the parameter sets to IDR pictures only and marks only those as random
/// access points; encoders with open GOPs (x265's default, many cameras) send later
/// keyframes as CRA pictures without parameter sets. Ingest keeps the sets here and puts
/// them in front of each IRAP access unit that lacks them, so a reader can start at any.
#[derive(Debug, Clone, Default)]
pub struct ParamSets {
    /// VPS, SPS and PPS in Annex B form (start codes), in that order; empty before any.
    annex_b: Vec<u8>,
}

impl ParamSets {
    /// Learns the parameter sets in `au`, if it has all three, and returns what to store in
    /// front of it: the known sets for a keyframe without its own, else nothing.
    pub fn prefix_for(&mut self, au: &[u8], keyframe: bool) -> &[u8] {
        let has = |t: u8| nal_units(au).any(|n| nal_type(n.body) == t);
        if has(NAL_VPS) && has(NAL_SPS) && has(NAL_PPS) {
            self.annex_b.clear();
            for t in [NAL_VPS, NAL_SPS, NAL_PPS] {
                if let Some(n) = nal_units(au).find(|n| nal_type(n.body) == t) {
                    self.annex_b.extend_from_slice(&super::h264::START_CODE);
                    self.annex_b.extend_from_slice(n.body);
                }
            }
            return &[];
        }
        if keyframe && !has(NAL_SPS) {
            return &self.annex_b;
        }
        &[]
    }

    /// Whether no parameter sets are known yet.
    pub fn is_empty(&self) -> bool {
        self.annex_b.is_empty()
    }

    /// Takes the parameter sets from an `hvcC` record (what retina has from the session
    /// description's `sprop-vps/sps/pps`, or from the stream so far). Ignores a malformed one.
    pub fn learn_hvcc(&mut self, record: &[u8]) {
        let mut out = Vec::new();
        let mut i = 23;
        let Some(&arrays) = record.get(22) else {
            return;
        };
        for _ in 0..arrays {
            let Some(count) = record.get(i + 1..i + 3) else {
                return;
            };
            let count = u16::from_be_bytes([count[0], count[1]]);
            i += 3;
            for _ in 0..count {
                let Some(len) = record.get(i..i + 2) else {
                    return;
                };
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let Some(nal) = record.get(i + 2..i + 2 + len) else {
                    return;
                };
                out.extend_from_slice(&super::h264::START_CODE);
                out.extend_from_slice(nal);
                i += 2 + len;
            }
        }
        let mut sets = ParamSets::default();
        sets.prefix_for(&out, false);
        if !sets.is_empty() {
            *self = sets;
        }
    }
}

/// Test data: the parameter sets of real x265 output (GStreamer `x265enc tune=zerolatency`,
/// I420, Main profile), shared by the fmp4 tests.
#[cfg(test)]
pub(crate) mod testdata {
    /// VPS, SPS, PPS of 320x240 (level 2.1, `hvc1.1.6.L63.90`).
    pub const PARAMS_320X240: [&str; 3] = [
        "40010c01ffff01600000030090000003000003003f928090",
        "42010101600000030090000003000003003fa00a080f16592a4932bffc00040005a83030302000000300200000030321",
        "4401c172b46240",
    ];
    /// The SPS of x265 320x240 with `bframes=0` (`sps_max_num_reorder_pics` 0, as ffmpeg's
    /// `trace_headers` reads it).
    pub const SPS_NO_BFRAMES: &str =
        "4201010408000003009e0800000300003c90014101e2cb2549265780b7020200040000030004000003002820";
    /// The SPS of x265 320x240 with `bframes=3` (`sps_max_num_reorder_pics` 2).
    pub const SPS_BFRAMES_3: &str =
        "4201010408000003009e0800000300003c90014101e2cb2b2c9265780b702020004000000300400000030282";
    /// The SPS of 1280x720 (level 3.1, `hvc1.1.6.L93.90`).
    pub const SPS_1280X720: &str = "42010101600000030090000003000003005da00280802d16592a4932bffc00040005a80808082000000300200000030321";

    /// Bytes of a hex string.
    pub fn unhex(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// An Annex B keyframe: the 320x240 parameter sets and a (fake, short) IDR_W_RADL slice.
    pub fn keyframe() -> Vec<u8> {
        let mut au = Vec::new();
        for p in PARAMS_320X240 {
            au.extend_from_slice(&[0, 0, 0, 1]);
            au.extend_from_slice(&unhex(p));
        }
        au.extend_from_slice(&[0, 0, 0, 1, 0x26, 0x01, 0xaf, 0x1d, 0x80]);
        au
    }
}

#[cfg(test)]
mod tests {
    use super::testdata::*;
    use super::*;

    #[test]
    fn reads_size_and_codec_string_of_real_x265_output() {
        let s = parse_sps(&unhex(PARAMS_320X240[1])).expect("sps");
        assert_eq!((s.width, s.height), (320, 240));
        assert_eq!(s.codec_string(), "hvc1.1.6.L63.90");
        assert_eq!((s.chroma_format_idc, s.bit_depth_luma_minus8), (1, 0));
        assert_eq!((s.sub_layers, s.temporal_id_nested), (1, true));
        let s = parse_sps(&unhex(SPS_1280X720)).expect("sps");
        assert_eq!((s.width, s.height), (1280, 720));
        assert_eq!(s.codec_string(), "hvc1.1.6.L93.90");
    }

    #[test]
    fn reads_the_reorder_depth_of_real_x265_output() {
        let no_b = parse_sps(&unhex(SPS_NO_BFRAMES)).expect("sps");
        assert_eq!(no_b.max_num_reorder_pics, Some(0));
        let b3 = parse_sps(&unhex(SPS_BFRAMES_3)).expect("sps");
        assert_eq!(b3.max_num_reorder_pics, Some(2));
        assert_eq!((b3.width, b3.height), (320, 240));
    }

    #[test]
    fn codec_string_follows_14496_15_annex_e() {
        let mut s = parse_sps(&unhex(SPS_1280X720)).expect("sps");
        // Main 10, high tier, level 5.1, profile space 1, no constraint flags.
        s.general[0] = 0x40 | 0x20 | 2;
        s.general[1..5].copy_from_slice(&0x2000_0000u32.to_be_bytes());
        s.general[5..11].fill(0);
        s.general[11] = 153;
        assert_eq!(s.codec_string(), "hvc1.A2.4.H153.00");
        s.general[5] = 0xb0;
        s.general[7] = 0x01;
        assert_eq!(s.codec_string(), "hvc1.A2.4.H153.B0.00.01");
    }

    #[test]
    fn keyframes_are_irap_pictures() {
        assert!(is_keyframe(&keyframe()));
        // TRAIL_R (1) and a prefix SEI (39) are not.
        assert!(!is_keyframe(&[
            0, 0, 0, 1, 0x02, 0x01, 0xd0, 0, 0, 1, 0x4e, 0x01, 5
        ]));
        // CRA (21) is.
        assert!(is_keyframe(&[0, 0, 1, 0x2a, 0x01, 0xaf]));
    }

    #[test]
    fn hvcc_holds_the_parameter_sets_and_the_sps_fields() {
        let (rec, sps) = hvcc(&keyframe()).expect("hvcc");
        assert_eq!(rec[0], 1);
        assert_eq!(&rec[1..13], &sps.general);
        assert_eq!(rec[16], 0xfc | 1, "4:2:0");
        assert_eq!(rec[21] & 3, 3, "4-byte lengths");
        assert_eq!(rec[22], 3, "three arrays");
        let vps = unhex(PARAMS_320X240[0]);
        assert_eq!(rec[23], 0x80 | NAL_VPS);
        assert_eq!(&rec[26..28], &(vps.len() as u16).to_be_bytes());
        assert_eq!(&rec[28..28 + vps.len()], &vps[..]);
        let total: usize = PARAMS_320X240.iter().map(|p| p.len() / 2 + 5).sum();
        assert_eq!(rec.len(), 23 + total);
        let no_pps = &keyframe()[..keyframe().len() - 9 - 11];
        assert_eq!(hvcc(no_pps).unwrap_err(), HvccError::Missing("PPS"));
    }

    #[test]
    fn keyframes_without_parameter_sets_get_the_last_ones() {
        let idr = keyframe();
        let cra: &[u8] = &[0, 0, 0, 1, 0x2a, 0x01, 0xaf, 0x1d];
        let trail: &[u8] = &[0, 0, 0, 1, 0x02, 0x01, 0xd0];
        let mut sets = ParamSets::default();
        assert!(sets.prefix_for(cra, true).is_empty(), "none known yet");
        assert!(
            sets.prefix_for(&idr, true).is_empty(),
            "the IDR has its own"
        );
        assert!(sets.prefix_for(trail, false).is_empty());
        let stored = [sets.prefix_for(cra, true), cra].concat();
        assert_eq!(hvcc(&stored).expect("decodable alone").1.width, 320);
        // From an hvcC record, as retina keeps it from the session description.
        let mut from_record = ParamSets::default();
        from_record.learn_hvcc(&hvcc(&idr).expect("hvcc").0);
        assert_eq!(
            from_record.prefix_for(cra, true),
            sets.prefix_for(cra, true)
        );
        from_record.learn_hvcc(&[1, 2, 3]);
        assert!(
            !from_record.is_empty(),
            "a malformed record changes nothing"
        );
    }

    #[test]
    fn a_truncated_or_foreign_sps_is_refused() {
        let sps = unhex(PARAMS_320X240[1]);
        for n in 0..20 {
            assert!(parse_sps(&sps[..n]).is_err(), "cut at {n}");
        }
        assert_eq!(
            parse_sps(&unhex(PARAMS_320X240[0])),
            Err(SpsError::NotSps(NAL_VPS))
        );
    }
}
