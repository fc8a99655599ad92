//! The H.264 sequence parameter set as far as decoder latency needs it, and a bit-exact
//! rewrite of its VUI `bitstream_restriction` (issue 16 item 4).
//!
//! Why: a decoder that follows the spec may hold decoded pictures for reordering until its
//! DPB is full when the SPS does not say otherwise. Chromium's hardware `H264Decoder`
//! (VAAPI, V4L2; `media/gpu/h264_decoder.cc`, `UpdateMaxNumReorderFrames`) sets
//! `max_num_reorder_frames` to the whole DPB size (up to 16 frames, from the level and the
//! picture size) when `bitstream_restriction_flag` is absent. Writing
//! `max_num_reorder_frames = 0` into the SPS of a stream that has no reordering lets such a
//! decoder output every picture as soon as it is decoded. See `bench/README.md`, "Decoder
//! reorder hold (issue 16 item 4)", for what was measured.
//!
//! The rewrite keeps every bit of the SPS up to the field it changes and writes the rest
//! anew: the `bitstream_restriction` fields, `rbsp_trailing_bits`, and the emulation
//! prevention bytes of the whole NAL unit.

use thiserror::Error;

use super::h264::{NAL_SPS, nal_units};

/// Why an SPS cannot be read or rewritten.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SpsError {
    /// The NAL unit is not an SPS (its type is given).
    #[error("NAL unit of type {0} is not an SPS")]
    NotSps(u8),
    /// The SPS ends before a field it must have.
    #[error("SPS truncated")]
    Truncated,
    /// An Exp-Golomb code longer than 32 bits: not a valid SPS.
    #[error("exp-golomb code too long in SPS")]
    BadGolomb,
    /// A field holds a value the spec does not allow (the field is named).
    #[error("SPS field {0} out of range")]
    OutOfRange(&'static str),
}

/// The `bitstream_restriction` values a decoder sizes its output delay by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restriction {
    /// Most frames that may precede any frame in decoding order and follow it in output
    /// order: 0 means output order is decoding order.
    pub max_num_reorder_frames: u32,
    /// Frames of DPB the stream needs; at least `max_num_ref_frames`.
    pub max_dec_frame_buffering: u32,
}

/// What the latency decision needs to know about one SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// `profile_idc`: 66 (Baseline) has no B slices.
    pub profile_idc: u8,
    /// `level_idc`: sets the DPB size a decoder assumes without a restriction.
    pub level_idc: u8,
    /// `pic_order_cnt_type`: 2 means output order is decoding order.
    pub pic_order_cnt_type: u32,
    /// `max_num_ref_frames`: the floor of `max_dec_frame_buffering`.
    pub max_num_ref_frames: u32,
    /// `vui_parameters_present_flag`.
    pub vui_present: bool,
    /// The VUI's `bitstream_restriction`, when the SPS has one.
    pub restriction: Option<Restriction>,
    /// Cropped picture width in pixels (the MP4 init segment's size).
    pub width: u32,
    /// Cropped picture height in pixels.
    pub height: u32,
    /// The frame interval (µs) the VUI's timing information states (two ticks a frame), when
    /// it does and the rate is plausible (1 to 250 fps): the fMP4 timeline's first guess.
    pub frame_us: Option<i64>,
}

impl SpsInfo {
    /// True when the SPS itself rules out reordering: Baseline profile (no B slices) or
    /// `pic_order_cnt_type` 2 (output order is decoding order, spec 8.2.1.3).
    pub fn no_reordering(&self) -> bool {
        self.profile_idc == 66 || self.pic_order_cnt_type == 2
    }

    /// The restriction that says "no reordering" for this SPS.
    pub fn low_delay_restriction(&self) -> Restriction {
        Restriction {
            max_num_reorder_frames: 0,
            max_dec_frame_buffering: self.max_num_ref_frames.max(1),
        }
    }
}

/// Profiles whose SPS carries `chroma_format_idc` and the bit depths (spec 7.3.2.1.1).
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Bit reader over an RBSP that knows where it is.
pub(crate) struct Reader<'a> {
    /// The RBSP bytes (emulation prevention removed).
    pub(crate) data: &'a [u8],
    /// Next bit, counted from the first byte's most significant bit.
    pub(crate) pos: usize,
}

impl Reader<'_> {
    pub(crate) fn bit(&mut self) -> Result<u32, SpsError> {
        let byte = self.data.get(self.pos / 8).ok_or(SpsError::Truncated)?;
        self.pos += 1;
        Ok(u32::from(byte >> (7 - (self.pos - 1) % 8)) & 1)
    }

    pub(crate) fn flag(&mut self) -> Result<bool, SpsError> {
        Ok(self.bit()? == 1)
    }

    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, SpsError> {
        (0..n).try_fold(0, |acc, _| Ok(acc << 1 | self.bit()?))
    }

    pub(crate) fn ue(&mut self) -> Result<u32, SpsError> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(SpsError::BadGolomb);
            }
        }
        let v = (1u64 << zeros) - 1 + u64::from(self.bits(zeros)?);
        u32::try_from(v).map_err(|_| SpsError::BadGolomb)
    }

    fn se(&mut self) -> Result<i64, SpsError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Bit writer for the rewritten RBSP.
#[derive(Default)]
struct Writer {
    /// Whole bytes written.
    data: Vec<u8>,
    /// Bits of the byte being filled, left-aligned as they come.
    cur: u8,
    /// How many bits of `cur` are used (0..8).
    used: u32,
}

impl Writer {
    fn bit(&mut self, b: u32) {
        self.cur |= ((b & 1) as u8) << (7 - self.used);
        self.used += 1;
        if self.used == 8 {
            self.data.push(self.cur);
            self.cur = 0;
            self.used = 0;
        }
    }

    fn ue(&mut self, v: u32) {
        let v = u64::from(v) + 1;
        let len = 64 - v.leading_zeros();
        for _ in 1..len {
            self.bit(0);
        }
        for i in (0..len).rev() {
            self.bit((v >> i) as u32 & 1);
        }
    }

    /// `rbsp_trailing_bits`: a one, then zeros to the byte boundary.
    fn finish(mut self) -> Vec<u8> {
        self.bit(1);
        while self.used != 0 {
            self.bit(0);
        }
        self.data
    }
}

/// Removes emulation prevention bytes (`00 00 03` → `00 00`).
pub(crate) fn unescape(ebsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ebsp.len());
    let mut zeros = 0;
    for &b in ebsp {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Inserts emulation prevention bytes: no `00 00 0x` (x ≤ 3) may appear in a NAL unit.
fn escape(rbsp: &[u8], out: &mut Vec<u8>) {
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
}

/// A parsed SPS and where in its RBSP the fields a rewrite replaces start.
struct Parsed {
    /// The values.
    info: SpsInfo,
    /// Bit offset of `vui_parameters_present_flag`.
    vui_flag_at: usize,
    /// Bit offset of `bitstream_restriction_flag` (when the VUI is present).
    restriction_flag_at: Option<usize>,
    /// The first four restriction fields (kept as they were on a rewrite).
    restriction_head: Option<[u32; 5]>,
}

fn skip_scaling_lists(r: &mut Reader, lists: usize) -> Result<(), SpsError> {
    for i in 0..lists {
        if r.flag()? {
            let size = if i < 6 { 16 } else { 64 };
            let (mut last, mut next) = (8i64, 8i64);
            for _ in 0..size {
                if next != 0 {
                    next = (last + r.se()? + 256).rem_euclid(256);
                }
                if next != 0 {
                    last = next;
                }
            }
        }
    }
    Ok(())
}

fn skip_hrd(r: &mut Reader) -> Result<(), SpsError> {
    let cpb_cnt = r.ue()? + 1;
    if cpb_cnt > 32 {
        return Err(SpsError::OutOfRange("cpb_cnt_minus1"));
    }
    r.bits(8)?; // bit_rate_scale, cpb_size_scale
    for _ in 0..cpb_cnt {
        r.ue()?; // bit_rate_value_minus1
        r.ue()?; // cpb_size_value_minus1
        r.bit()?; // cbr_flag
    }
    r.bits(20)?; // four 5-bit lengths and delays
    Ok(())
}

/// Reads the VUI up to and including `bitstream_restriction`.
fn parse_vui(r: &mut Reader, p: &mut Parsed) -> Result<(), SpsError> {
    if r.flag()? && r.bits(8)? == 255 {
        r.bits(32)?; // sar_width, sar_height
    }
    if r.flag()? {
        r.bit()?; // overscan_appropriate_flag
    }
    if r.flag()? {
        r.bits(4)?; // video_format, video_full_range_flag
        if r.flag()? {
            r.bits(24)?; // colour primaries, transfer, matrix
        }
    }
    if r.flag()? {
        r.ue()?;
        r.ue()?; // chroma sample locations
    }
    if r.flag()? {
        let units = i64::from(r.bits(32)?); // num_units_in_tick
        let scale = i64::from(r.bits(32)?); // time_scale
        r.bit()?; // fixed_frame_rate_flag
        let us = (scale > 0).then(|| 2 * units * 1_000_000 / scale);
        p.info.frame_us = us.filter(|u| (4_000..=1_000_000).contains(u));
    }
    let nal_hrd = r.flag()?;
    if nal_hrd {
        skip_hrd(r)?;
    }
    let vcl_hrd = r.flag()?;
    if vcl_hrd {
        skip_hrd(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.bit()?; // low_delay_hrd_flag
    }
    r.bit()?; // pic_struct_present_flag
    p.restriction_flag_at = Some(r.pos);
    if r.flag()? {
        let head = [r.bit()?, r.ue()?, r.ue()?, r.ue()?, r.ue()?];
        let restriction = Restriction {
            max_num_reorder_frames: r.ue()?,
            max_dec_frame_buffering: r.ue()?,
        };
        p.restriction_head = Some(head);
        p.info.restriction = Some(restriction);
    }
    Ok(())
}

/// Parses the RBSP of an SPS (the bytes after the NAL header byte, unescaped). `lenient`
/// keeps what was read when the VUI does not parse (the picture size is good anyway).
fn parse_rbsp(rbsp: &[u8], lenient: bool) -> Result<Parsed, SpsError> {
    if rbsp.len() < 3 {
        return Err(SpsError::Truncated);
    }
    let mut r = Reader {
        data: rbsp,
        pos: 24,
    };
    let (profile_idc, level_idc) = (rbsp[0], rbsp[2]);
    r.ue()?; // seq_parameter_set_id
    let mut chroma = 1;
    if HIGH_PROFILES.contains(&profile_idc) {
        chroma = r.ue()?;
        if chroma == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        r.ue()?;
        r.ue()?; // bit depths
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            skip_scaling_lists(&mut r, if chroma == 3 { 12 } else { 8 })?;
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    let pic_order_cnt_type = r.ue()?;
    match pic_order_cnt_type {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let cycle = r.ue()?;
            if cycle > 255 {
                return Err(SpsError::OutOfRange(
                    "num_ref_frames_in_pic_order_cnt_cycle",
                ));
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        2 => {}
        _ => return Err(SpsError::OutOfRange("pic_order_cnt_type")),
    }
    let max_num_ref_frames = r.ue()?;
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let w_mbs = u64::from(r.ue()?) + 1;
    let h_units = u64::from(r.ue()?) + 1; // picture size in macroblocks (map units)
    let frame_mbs_only = u64::from(r.bit()?);
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if r.flag()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        // Crop units (spec 7.4.2.1.1): chroma subsampling and field coding widen them.
        let (unit_x, unit_y) = match chroma {
            1 => (2, 2 * (2 - frame_mbs_only)),
            2 => (2, 2 - frame_mbs_only),
            _ => (1, 2 - frame_mbs_only),
        };
        crop_x = unit_x * (u64::from(left) + u64::from(right));
        crop_y = unit_y * (u64::from(top) + u64::from(bottom));
    }
    let width = (w_mbs * 16).checked_sub(crop_x);
    let height = ((2 - frame_mbs_only) * h_units * 16).checked_sub(crop_y);
    let (width, height) = match (width, height) {
        (Some(w), Some(h)) if (1..=16_384).contains(&w) && (1..=16_384).contains(&h) => {
            (w as u32, h as u32)
        }
        _ => return Err(SpsError::OutOfRange("picture size")),
    };
    let mut p = Parsed {
        info: SpsInfo {
            profile_idc,
            level_idc,
            pic_order_cnt_type,
            max_num_ref_frames,
            vui_present: false,
            restriction: None,
            width,
            height,
            frame_us: None,
        },
        vui_flag_at: r.pos,
        restriction_flag_at: None,
        restriction_head: None,
    };
    if r.flag()? {
        p.info.vui_present = true;
        let vui = parse_vui(&mut r, &mut p);
        if !lenient {
            vui?;
        }
    }
    Ok(p)
}

/// The RBSP of an SPS NAL unit (header byte first, no start code).
fn rbsp_of(sps: &[u8]) -> Result<Vec<u8>, SpsError> {
    let header = *sps.first().ok_or(SpsError::Truncated)?;
    if header & 0x1f != NAL_SPS {
        return Err(SpsError::NotSps(header & 0x1f));
    }
    Ok(unescape(&sps[1..]))
}

/// Reads an SPS NAL unit (header byte first, no start code).
pub fn parse(sps: &[u8]) -> Result<SpsInfo, SpsError> {
    Ok(parse_rbsp(&rbsp_of(sps)?, false)?.info)
}

/// Like [`parse`], but a VUI that does not parse leaves what was read of it: for what only
/// needs the picture size and, if they can be read, the timing and the restriction (the MP4
/// init segment, the fMP4 timeline).
pub fn parse_lenient(sps: &[u8]) -> Result<SpsInfo, SpsError> {
    Ok(parse_rbsp(&rbsp_of(sps)?, true)?.info)
}

/// Rewrites an SPS NAL unit with `restriction` as its VUI `bitstream_restriction` (`None`
/// removes it), and `level_idc` when given. An SPS without VUI gets a VUI that says nothing
/// else. The four restriction fields before the two that matter keep their values; when the
/// SPS had none they get the values the spec infers for an absent restriction.
pub fn rewrite(
    sps: &[u8],
    restriction: Option<Restriction>,
    level_idc: Option<u8>,
) -> Result<Vec<u8>, SpsError> {
    let mut rbsp = rbsp_of(sps)?;
    let p = parse_rbsp(&rbsp, false)?;
    if let Some(level) = level_idc {
        rbsp[2] = level;
    }
    let cut = p.restriction_flag_at.unwrap_or(p.vui_flag_at);
    let mut w = Writer::default();
    let mut r = Reader {
        data: &rbsp,
        pos: 0,
    };
    for _ in 0..cut {
        w.bit(r.bit()?);
    }
    if !p.info.vui_present {
        if restriction.is_none() {
            w.bit(0); // vui_parameters_present_flag
            return Ok(assemble(sps[0], w.finish()));
        }
        w.bit(1);
        // No aspect ratio, overscan, signal type, chroma location, timing, NAL or VCL HRD,
        // picture structure.
        for _ in 0..8 {
            w.bit(0);
        }
    }
    match restriction {
        None => w.bit(0),
        Some(rs) => {
            w.bit(1);
            let head = p.restriction_head.unwrap_or([1, 2, 1, 15, 15]);
            w.bit(head[0]);
            for v in &head[1..] {
                w.ue(*v);
            }
            w.ue(rs.max_num_reorder_frames);
            w.ue(rs.max_dec_frame_buffering);
        }
    }
    Ok(assemble(sps[0], w.finish()))
}

/// A NAL unit from its header byte and RBSP.
fn assemble(header: u8, rbsp: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 64 + 2);
    out.push(header);
    escape(&rbsp, &mut out);
    out
}

/// The low-delay version of an SPS: `Some` with `max_num_reorder_frames = 0` and
/// `max_dec_frame_buffering = max(1, max_num_ref_frames)` added, when the SPS rules out
/// reordering ([`SpsInfo::no_reordering`]) and has no `bitstream_restriction` of its own;
/// `None` when it stays as it is (it has one, or B-frames are possible).
pub fn low_delay(sps: &[u8]) -> Result<Option<Vec<u8>>, SpsError> {
    low_delay_if(sps, false)
}

/// Like [`low_delay`], and also for an SPS that allows B-frames when `seen_in_order` says
/// the stream has been seen not to use them (presentation order equal to decode order).
pub fn low_delay_if(sps: &[u8], seen_in_order: bool) -> Result<Option<Vec<u8>>, SpsError> {
    let info = parse(sps)?;
    if info.restriction.is_some() || !(info.no_reordering() || seen_in_order) {
        return Ok(None);
    }
    rewrite(sps, Some(info.low_delay_restriction()), None).map(Some)
}

/// Rewrites the SPS of an Annex B access unit with [`low_delay_if`] into `out` (cleared
/// first). Returns false (and leaves `out` empty) when nothing changes: no SPS, an SPS that
/// stays as it is, or one that cannot be parsed (the access unit then goes out untouched).
pub fn low_delay_access_unit(au: &[u8], seen_in_order: bool, out: &mut Vec<u8>) -> bool {
    out.clear();
    // Most keyframes need no rewrite: check the (tiny) SPS first rather than copying a whole
    // keyframe only to throw the copy away.
    let needs = |n: &crate::codec::h264::Nal| {
        n.nal_type() == NAL_SPS && matches!(low_delay_if(n.body, seen_in_order), Ok(Some(_)))
    };
    if !nal_units(au).any(|n| needs(&n)) {
        return false;
    }
    let mut changed = false;
    for nal in nal_units(au) {
        let new = if nal.nal_type() == NAL_SPS {
            low_delay_if(nal.body, seen_in_order).ok().flatten()
        } else {
            None
        };
        match new {
            Some(sps) => {
                changed = true;
                out.extend_from_slice(
                    &nal.with_start_code[..nal.with_start_code.len() - nal.body.len()],
                );
                out.extend_from_slice(&sps);
            }
            None => out.extend_from_slice(nal.with_start_code),
        }
    }
    if !changed {
        out.clear();
    }
    changed
}

/// For tests: a 640x368 Constrained Baseline 3.0 SPS without VUI, as some cameras send.
#[cfg(test)]
pub(crate) fn baseline_without_vui() -> Vec<u8> {
    let mut w = Writer::default();
    for byte in [66u32, 0xc0, 30] {
        for i in (0..8).rev() {
            w.bit(byte >> i);
        }
    }
    // id, log2_max_frame_num_minus4, poc type 2, 1 ref frame, no gaps, 40x23 MBs.
    for v in [0, 0, 2, 1] {
        w.ue(v);
    }
    w.bit(0);
    w.ue(39);
    w.ue(22);
    for b in [1, 1, 0, 0] {
        w.bit(b); // frame_mbs_only, direct_8x8, no cropping, no VUI
    }
    assemble(0x67, w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1920x1080 High 4.0 from libx264 (ffmpeg), VUI with timing and a restriction.
    const X264_1080: [u8; 27] = [
        0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00,
        0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xc8, 0x3c, 0x60, 0xc6, 0x58,
    ];

    fn openh264_sps() -> Vec<u8> {
        let key = crate::codec::fmp4::tests::keyframe();
        nal_units(&key)
            .find(|n| n.nal_type() == NAL_SPS)
            .expect("sps")
            .body
            .to_vec()
    }

    #[test]
    fn golomb_and_escaping_round_trip() {
        for v in [0u32, 1, 2, 3, 7, 8, 255, 65_535, u32::MAX - 1] {
            let mut w = Writer::default();
            w.ue(v);
            let data = w.finish();
            let mut r = Reader {
                data: &data,
                pos: 0,
            };
            assert_eq!(r.ue(), Ok(v));
        }
        let rbsp = [0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0];
        let mut out = Vec::new();
        escape(&rbsp, &mut out);
        assert_eq!(
            out,
            [
                0, 0, 3, 0, 0, 3, 0, 1, 0, 0, 3, 2, 0, 0, 3, 3, 0, 0, 4, 0, 0
            ]
        );
        assert_eq!(unescape(&out), rbsp);
    }

    #[test]
    fn reads_the_x264_restriction() {
        let info = parse(&X264_1080).expect("parse");
        assert_eq!((info.profile_idc, info.level_idc), (100, 40));
        assert!(info.vui_present);
        assert_eq!(info.pic_order_cnt_type, 0);
        assert!(info.restriction.is_some(), "{info:?}");
        assert_eq!(parse(&[0x68, 1]), Err(SpsError::NotSps(8)));
        assert_eq!(parse(&[0x67, 0x42]), Err(SpsError::Truncated));
    }

    #[test]
    fn rewrites_round_trip_and_keep_the_rest() {
        let info = parse(&X264_1080).expect("parse");
        let none = rewrite(&X264_1080, None, Some(51)).expect("remove");
        let got = parse(&none).expect("reparse");
        assert_eq!((got.level_idc, got.restriction), (51, None));
        assert!(got.vui_present);
        assert_eq!(
            crate::codec::fmp4::sps_size(&none),
            Ok((1920, 1080)),
            "size fields untouched"
        );
        let r = Restriction {
            max_num_reorder_frames: 0,
            max_dec_frame_buffering: 4,
        };
        let set = rewrite(&none, Some(r), Some(40)).expect("set");
        assert_eq!(parse(&set).map(|i| i.restriction), Ok(Some(r)));
        // Rewriting x264's own restriction gives x264's bytes again, bit for bit.
        let same = rewrite(&X264_1080, info.restriction, None).expect("same");
        assert_eq!(same, X264_1080);
        for nal in [&none, &set] {
            let start_code_like = nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2);
            assert!(!start_code_like, "emulation prevention in {nal:02x?}");
        }
    }

    #[test]
    fn an_sps_without_vui_gets_one() {
        let sps = baseline_without_vui();
        let info = parse(&sps).expect("parse");
        assert!(!info.vui_present && info.no_reordering(), "{info:?}");
        let new = low_delay(&sps).expect("rewrite").expect("changed");
        let got = parse(&new).expect("reparse");
        assert!(got.vui_present);
        assert_eq!(got.restriction, Some(info.low_delay_restriction()));
        let want = Restriction {
            max_num_reorder_frames: 0,
            max_dec_frame_buffering: 1,
        };
        assert_eq!(got.restriction, Some(want));
        assert_eq!(crate::codec::fmp4::sps_size(&new), Ok((640, 368)));
        // Once restricted, it stays as it is; removing the restriction again drops the VUI
        // flag's payload but not the flag.
        assert_eq!(low_delay(&new), Ok(None));
        let bare = rewrite(&new, None, None).expect("remove");
        assert_eq!(parse(&bare).map(|i| i.restriction), Ok(None));
    }

    #[test]
    fn openh264_already_says_no_reordering() {
        let sps = openh264_sps();
        let info = parse(&sps).expect("parse");
        assert_eq!((info.profile_idc, info.pic_order_cnt_type), (66, 2));
        let want = Restriction {
            max_num_reorder_frames: 0,
            max_dec_frame_buffering: 1,
        };
        assert_eq!(info.restriction, Some(want));
        assert_eq!(low_delay(&sps), Ok(None));
        // Without it (as a camera might send it), the rewrite puts it back.
        let bare = rewrite(&sps, None, None).expect("remove");
        let again = low_delay(&bare).expect("rewrite").expect("changed");
        assert_eq!(parse(&again).map(|i| i.restriction), Ok(Some(want)));
    }

    #[test]
    fn high_profile_with_poc_type_0_needs_to_be_seen_in_order() {
        let none = rewrite(&X264_1080, None, None).expect("remove");
        assert_eq!(
            low_delay(&none),
            Ok(None),
            "B-frames possible: no claim made"
        );
        assert_eq!(low_delay(&X264_1080), Ok(None), "has its own restriction");
    }

    #[test]
    fn access_units_get_the_new_sps_and_the_rest_untouched() {
        let sps = baseline_without_vui();
        let au = [
            &[0, 0, 0, 1][..],
            &sps,
            &[0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 9, 9],
        ]
        .concat();
        let mut out = Vec::new();
        assert!(low_delay_access_unit(&au, false, &mut out));
        let nals: Vec<Vec<u8>> = nal_units(&out)
            .map(|n| n.with_start_code.to_vec())
            .collect();
        assert_eq!(nals.len(), 3);
        assert_eq!(&nals[0][..4], &[0, 0, 0, 1]);
        assert_eq!(
            parse(&nals[0][4..]).map(|i| i.restriction.is_some()),
            Ok(true)
        );
        assert_eq!(nals[1], [0, 0, 1, 0x68, 0xce]);
        assert_eq!(nals[2], [0, 0, 0, 1, 0x65, 9, 9]);
        let p_frame = [0, 0, 0, 1, 0x41, 7];
        assert!(!low_delay_access_unit(&p_frame, true, &mut out));
        assert!(out.is_empty());
    }
}
