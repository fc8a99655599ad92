//! Fragmented MP4 for Media Source Extensions: an init segment (`ftyp` + `moov`) built from an
//! H.264 keyframe's SPS/PPS, then one `moof` + `mdat` per access unit.
//!
//! Written by hand (about a dozen boxes) rather than with a crate. Compared for issue 16:
//! `mp4-atom` is a complete ISOBMFF decoder/encoder (every box type of many codecs, a derive
//! layer): far more code than the twelve boxes needed here, for a binary that must stay under
//! 8 MiB on aarch64. `muxide` and `mp4e` are file muxers driven by a `Write` and a fixed frame
//! rate (`MuxerBuilder::video(codec, w, h, fps)`, `encode_video(data, duration)`); a live
//! fragment per frame with our own `tfdt` timeline across stream switches is not what they
//! are built for. The boxes below are checked by the unit tests here and by real `ffprobe` in
//! `tests/fmp4.rs`.
//!
//! Layout choices: one track (id 1), timescale 90 kHz, AVCC samples with 4-byte lengths,
//! parameter sets only in `avcC` (SPS, PPS and access unit delimiters are dropped from the
//! samples), `default-base-is-moof` so each fragment is self-contained.

use thiserror::Error;

use super::h264::{NAL_PPS, NAL_SPS, nal_units, sps_codec_string};

/// Media timescale: ticks per second of `tfdt` and sample durations.
pub const TIMESCALE: u32 = 90_000;
/// NAL unit type of an access unit delimiter (dropped from samples).
const NAL_AUD: u8 = 9;
/// Duration assumed for a frame before two timestamps were seen (25 fps).
const DEFAULT_DURATION: u32 = TIMESCALE / 25;
/// A timestamp step larger than this (or not positive) is a jump, not a frame interval.
const MAX_STEP_US: i64 = 2_000_000;
/// `trun` sample flags of a sync sample: depends on no other sample.
const FLAGS_SYNC: u32 = 0x0200_0000;
/// `trun` sample flags of any other sample: depends on others, not a sync sample.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// Why no init segment can be made.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Fmp4Error {
    /// The access unit has no SPS (only keyframes carry one).
    #[error("access unit has no SPS")]
    NoSps,
    /// The access unit has no PPS.
    #[error("access unit has no PPS")]
    NoPps,
    /// The SPS could not be parsed for the picture size.
    #[error("SPS cannot be parsed: {0}")]
    BadSps(&'static str),
    /// An SPS or PPS longer than `avcC`'s 16-bit length field can say.
    #[error("parameter set of {0} bytes is too long for an MP4 init segment")]
    ParamSetTooLong(usize),
}

/// An init segment and what a player needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSegment {
    /// `ftyp` + `moov`, to append to the SourceBuffer first.
    pub bytes: Vec<u8>,
    /// RFC 6381 codec string (`avc1.PPCCLL`), for the MIME type.
    pub codec: String,
    /// Picture width from the SPS (after cropping).
    pub width: u32,
    /// Picture height from the SPS (after cropping).
    pub height: u32,
}

impl InitSegment {
    /// The MIME type for `MediaSource.isTypeSupported` / `addSourceBuffer`.
    pub fn mime(&self) -> String {
        format!("video/mp4; codecs=\"{}\"", self.codec)
    }
}

/// Builds the init segment from a keyframe access unit (Annex B, SPS and PPS in it).
pub fn init_segment(keyframe: &[u8]) -> Result<InitSegment, Fmp4Error> {
    let sps = nal_units(keyframe)
        .find(|n| n.nal_type() == NAL_SPS)
        .ok_or(Fmp4Error::NoSps)?
        .body;
    let pps = nal_units(keyframe)
        .find(|n| n.nal_type() == NAL_PPS)
        .ok_or(Fmp4Error::NoPps)?
        .body;
    let (width, height) = sps_size(sps)?;
    let (sps_len, pps_len) = (param_len(sps)?, param_len(pps)?);
    // `sps_size` checked that the SPS has its profile, compatibility and level bytes.
    let codec = sps_codec_string(sps).ok_or(Fmp4Error::BadSps("too short"))?;
    let (profile, compat, level) = (sps[1], sps[2], sps[3]);
    let (w16, h16) = (width.min(0xffff) as u16, height.min(0xffff) as u16);
    let mut out = Vec::with_capacity(700 + sps.len() + pps.len());
    bx(&mut out, b"ftyp", |o| {
        o.extend_from_slice(b"isom");
        put32(o, 0x200);
        for brand in [b"isom", b"iso6", b"avc1", b"mp41"] {
            o.extend_from_slice(brand);
        }
    });
    bx(&mut out, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            put32s(o, &[0, 0, 1000, 0, 0x0001_0000]);
            put16(o, 0x0100);
            o.extend_from_slice(&[0; 10]);
            matrix(o);
            o.extend_from_slice(&[0; 24]);
            put32(o, 2); // next track id
        });
        bx(o, b"trak", |o| {
            full(o, b"tkhd", 0, 3, |o| {
                put32s(o, &[0, 0, 1, 0, 0, 0, 0]);
                put32s(o, &[0, 0]); // layer, alternate group, volume, reserved
                matrix(o);
                put32s(o, &[width << 16, height << 16]);
            });
            bx(o, b"mdia", |o| {
                full(o, b"mdhd", 0, 0, |o| {
                    put32s(o, &[0, 0, TIMESCALE, 0]);
                    put16(o, 0x55c4); // "und"
                    put16(o, 0);
                });
                full(o, b"hdlr", 0, 0, |o| {
                    put32(o, 0);
                    o.extend_from_slice(b"vide");
                    o.extend_from_slice(&[0; 12]);
                    o.extend_from_slice(b"edgecam\0");
                });
                bx(o, b"minf", |o| {
                    full(o, b"vmhd", 0, 1, |o| o.extend_from_slice(&[0; 8]));
                    bx(o, b"dinf", |o| {
                        full(o, b"dref", 0, 0, |o| {
                            put32(o, 1);
                            full(o, b"url ", 0, 1, |_| {});
                        });
                    });
                    bx(o, b"stbl", |o| {
                        full(o, b"stsd", 0, 0, |o| {
                            put32(o, 1);
                            bx(o, b"avc1", |o| {
                                o.extend_from_slice(&[0; 6]);
                                put16(o, 1); // data reference index
                                o.extend_from_slice(&[0; 16]);
                                put16(o, w16);
                                put16(o, h16);
                                put32s(o, &[0x0048_0000, 0x0048_0000, 0]);
                                put16(o, 1); // frame count
                                o.extend_from_slice(&[0; 32]); // compressor name
                                put16(o, 0x0018);
                                put16(o, 0xffff);
                                bx(o, b"avcC", |o| {
                                    o.extend_from_slice(&[1, profile, compat, level, 0xff, 0xe1]);
                                    put16(o, sps_len);
                                    o.extend_from_slice(sps);
                                    o.push(1);
                                    put16(o, pps_len);
                                    o.extend_from_slice(pps);
                                });
                            });
                        });
                        full(o, b"stts", 0, 0, |o| put32(o, 0));
                        full(o, b"stsc", 0, 0, |o| put32(o, 0));
                        full(o, b"stsz", 0, 0, |o| put32s(o, &[0, 0]));
                        full(o, b"stco", 0, 0, |o| put32(o, 0));
                    });
                });
            });
        });
        bx(o, b"mvex", |o| {
            full(o, b"trex", 0, 0, |o| put32s(o, &[1, 1, 0, 0, 0]));
        });
    });
    Ok(InitSegment {
        bytes: out,
        codec,
        width,
        height,
    })
}

/// The length of a parameter set as `avcC` stores it.
fn param_len(nal: &[u8]) -> Result<u16, Fmp4Error> {
    u16::try_from(nal.len()).map_err(|_| Fmp4Error::ParamSetTooLong(nal.len()))
}

/// Turns access units into fragments on one continuous decode timeline.
///
/// The timeline survives a stream switch ([`Fragmenter::restart`]): the new stream's first
/// fragment starts where the previous one ended, so a SourceBuffer in `segments` mode sees
/// monotonic timestamps and never needs a reset.
///
/// Catch-up frames ([`Fragmenter::fragment_catch_up`], the GOP a viewer gets at once on a
/// switch) are packed [`CATCH_UP_TICKS`] apart whatever their timestamps, so the newest frame
/// of the burst lands a few milliseconds after the previous end and a player at the live edge
/// shows it at once instead of replaying the GOP in real time.
#[derive(Debug, Clone)]
pub struct Fragmenter {
    /// `mfhd` sequence number of the next fragment (starts at 1).
    seq: u32,
    /// Decode time (ticks) of the last fragment written; `None` before the first.
    last_dts: Option<u64>,
    /// Source timestamp (µs) of the last access unit, to time the next; `None` after a restart.
    last_pts_us: Option<i64>,
    /// The latest frame interval seen (ticks): the duration of a live sample.
    interval: u32,
    /// Duration written for the last sample: the next one starts where it ends.
    last_len: u32,
}

/// Spacing (and duration) of catch-up frames on the timeline: 1 ms.
pub const CATCH_UP_TICKS: u32 = TIMESCALE / 1000;

impl Default for Fragmenter {
    fn default() -> Self {
        Fragmenter::new()
    }
}

impl Fragmenter {
    /// A timeline starting at zero.
    pub fn new() -> Fragmenter {
        Fragmenter {
            seq: 1,
            last_dts: None,
            last_pts_us: None,
            interval: DEFAULT_DURATION,
            last_len: DEFAULT_DURATION,
        }
    }

    /// Another source follows (a stream switch): its first fragment continues the timeline
    /// one frame after the last one written, whatever its own timestamps.
    pub fn restart(&mut self) {
        self.last_pts_us = None;
    }

    /// Decode time (ticks) of the next fragment for a source timestamp of `pts_us`, and the
    /// duration to write for it. Learns the frame interval from the source timestamps.
    ///
    /// Each sample starts where the last one ended, and lasts the latest frame interval (the
    /// step into it): the timeline follows the source's clock one frame late, but has no hole
    /// or overlap however the timestamps jitter, so a player never stalls between fragments.
    fn next_timing(&mut self, pts_us: i64, catch_up: bool) -> (u64, u32) {
        let step = self
            .last_pts_us
            .map(|p| pts_us - p)
            .filter(|s| *s > 0 && *s <= MAX_STEP_US);
        if let Some(s) = step {
            let ticks = (s as u64 * TIMESCALE as u64 / 1_000_000).clamp(1, u32::MAX as u64);
            self.interval = ticks as u32;
        }
        let len = if catch_up {
            CATCH_UP_TICKS
        } else {
            self.interval
        };
        let dts = self
            .last_dts
            .map_or(0, |last| last + u64::from(self.last_len));
        (dts, len)
    }

    /// Writes one access unit (Annex B) as `moof` + `mdat` into `out` (cleared first).
    pub fn fragment(&mut self, au: &[u8], pts_us: i64, keyframe: bool, out: &mut Vec<u8>) {
        self.write(au, pts_us, keyframe, false, out);
    }

    /// Like [`Fragmenter::fragment`] for a catch-up frame: one that is decoded but not meant
    /// to be shown for long, packed [`CATCH_UP_TICKS`] after the previous fragment.
    pub fn fragment_catch_up(&mut self, au: &[u8], pts_us: i64, keyframe: bool, out: &mut Vec<u8>) {
        self.write(au, pts_us, keyframe, true, out);
    }

    fn write(&mut self, au: &[u8], pts_us: i64, keyframe: bool, catch_up: bool, out: &mut Vec<u8>) {
        let (dts, len) = self.next_timing(pts_us, catch_up);
        self.last_dts = Some(dts);
        self.last_pts_us = Some(pts_us);
        self.last_len = len;
        out.clear();
        out.reserve(120 + au.len());
        let flags = if keyframe { FLAGS_SYNC } else { FLAGS_NON_SYNC };
        // The sample size and data offset are patched in once the mdat is written, so the
        // access unit is scanned for NAL units once.
        let (mut offset_at, mut size_at) = (0, 0);
        bx(out, b"moof", |o| {
            full(o, b"mfhd", 0, 0, |o| put32(o, self.seq));
            bx(o, b"traf", |o| {
                full(o, b"tfhd", 0, 0x02_0000, |o| put32(o, 1));
                full(o, b"tfdt", 1, 0, |o| {
                    o.extend_from_slice(&dts.to_be_bytes())
                });
                full(o, b"trun", 0, 0x0701, |o| {
                    put32(o, 1);
                    offset_at = o.len();
                    put32(o, 0); // data offset
                    put32(o, len);
                    size_at = o.len();
                    put32s(o, &[0, flags]); // sample size, sample flags
                });
            });
        });
        // The sample starts right after the mdat header, counted from the moof's first byte.
        let sample_start = out.len() + 8;
        bx(out, b"mdat", |o| {
            for nal in nal_units(au).filter(|n| keep_nal(n.nal_type())) {
                put32(o, nal.body.len() as u32);
                o.extend_from_slice(nal.body);
            }
        });
        let sample_len = (out.len() - sample_start) as u32;
        out[offset_at..offset_at + 4].copy_from_slice(&(sample_start as u32).to_be_bytes());
        out[size_at..size_at + 4].copy_from_slice(&sample_len.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
    }
}

/// Whether a NAL unit goes into a sample: parameter sets live in `avcC`, delimiters nowhere.
fn keep_nal(t: u8) -> bool {
    !matches!(t, NAL_SPS | NAL_PPS | NAL_AUD)
}

/// Writes a box: size, type, then what `body` writes; the size is patched afterwards.
fn bx(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Writes a full box: a box whose body starts with a version byte and 24 bits of flags.
fn full(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    bx(out, kind, |o| {
        put32(o, (version as u32) << 24 | (flags & 0x00ff_ffff));
        body(o);
    });
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put32s(out: &mut Vec<u8>, vs: &[u32]) {
    for &v in vs {
        put32(out, v);
    }
}

/// The identity transformation matrix of `mvhd` and `tkhd`.
fn matrix(out: &mut Vec<u8>) {
    put32s(
        out,
        &[0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000],
    );
}

/// Reads the bits of an SPS payload (emulation prevention bytes removed).
struct Bits {
    /// The RBSP bytes.
    data: Vec<u8>,
    /// Next bit to read, counted from the first byte's most significant bit.
    pos: usize,
}

impl Bits {
    fn bit(&mut self) -> Result<u32, Fmp4Error> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or(Fmp4Error::BadSps("truncated"))?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(b as u32)
    }

    fn bits(&mut self, n: u32) -> Result<u32, Fmp4Error> {
        (0..n).try_fold(0, |acc, _| Ok(acc << 1 | self.bit()?))
    }

    /// An unsigned Exp-Golomb number.
    fn ue(&mut self) -> Result<u32, Fmp4Error> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(Fmp4Error::BadSps("exp-golomb code too long"));
            }
        }
        Ok(((1u64 << zeros) - 1 + self.bits(zeros)? as u64) as u32)
    }

    /// A signed Exp-Golomb number.
    fn se(&mut self) -> Result<i32, Fmp4Error> {
        let k = self.ue()? as i64;
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) } as i32)
    }
}

/// The cropped picture size an SPS (NAL body, header byte first) describes.
pub fn sps_size(sps: &[u8]) -> Result<(u32, u32), Fmp4Error> {
    if sps.len() < 4 {
        return Err(Fmp4Error::BadSps("too short"));
    }
    let mut data = Vec::with_capacity(sps.len());
    let mut zeros = 0;
    for &b in &sps[1..] {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        data.push(b);
    }
    let mut r = Bits { data, pos: 24 };
    let profile = sps[1];
    r.ue()?; // seq_parameter_set_id
    let mut chroma = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma = r.ue()?;
        if chroma == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            let lists = if chroma == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256) % 256;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            for _ in 0..r.ue()?.min(255) {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let w_mbs = r.ue()? as u64 + 1;
    let h_units = r.ue()? as u64 + 1;
    let frame_mbs_only = r.bit()? as u64;
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if r.bit()? == 1 {
        let (l, rt, t, b) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (unit_x, unit_y) = match chroma {
            0 => (1, 2 - frame_mbs_only),
            1 => (2, 2 * (2 - frame_mbs_only)),
            2 => (2, 2 - frame_mbs_only),
            _ => (1, 2 - frame_mbs_only),
        };
        crop_x = unit_x * (l as u64 + rt as u64);
        crop_y = unit_y * (t as u64 + b as u64);
    }
    let width = (w_mbs * 16).checked_sub(crop_x);
    let height = ((2 - frame_mbs_only) * h_units * 16).checked_sub(crop_y);
    match (width, height) {
        (Some(w), Some(h)) if w > 0 && h > 0 && w <= 16_384 && h <= 16_384 => {
            Ok((w as u32, h as u32))
        }
        _ => Err(Fmp4Error::BadSps("picture size out of range")),
    }
}

/// Iterates over the top-level boxes of `data`: (type, body). Stops at the first box whose
/// size does not fit. For tests and tools that check what [`init_segment`] and
/// [`Fragmenter::fragment`] wrote.
pub fn boxes(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let size = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let kind: [u8; 4] = rest.get(4..8)?.try_into().ok()?;
        if size < 8 || size > rest.len() {
            return None;
        }
        let body = &rest[8..size];
        rest = &rest[size..];
        Some((kind, body))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real 160x96 constrained-baseline SPS (openh264) and a PPS, with an IDR slice.
    fn keyframe() -> Vec<u8> {
        let settings = crate::codec::EncoderSettings {
            width: 160,
            height: 96,
            fps: 25,
            bitrate_kbps: 200,
            gop: 10,
        };
        let mut enc = crate::codec::H264Encoder::new(settings).expect("encoder");
        let pic = crate::codec::I420Frame::new(160, 96).expect("frame");
        let f = enc.encode(&pic, true).expect("encode").expect("frame");
        f.data.to_vec()
    }

    fn find<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> Option<&'a [u8]> {
        let (first, rest) = path.split_first()?;
        let (_, body) = boxes(data).find(|(k, _)| k == *first)?;
        if rest.is_empty() {
            Some(body)
        } else {
            find(body, rest)
        }
    }

    #[test]
    fn sps_size_reads_cropping() {
        // 1920x1080 high profile: 120x68 macroblocks cropped by 8 lines (libx264 via ffmpeg).
        let sps = [
            0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00,
            0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xc8, 0x3c, 0x60, 0xc6, 0x58,
        ];
        assert_eq!(sps_size(&sps), Ok((1920, 1080)));
        assert!(sps_size(&[0x67, 0x42]).is_err());
        assert!(sps_size(&[0x67, 0x42, 0, 0x1f, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn init_segment_has_the_boxes_a_player_needs() {
        let init = init_segment(&keyframe()).expect("init");
        assert_eq!((init.width, init.height), (160, 96));
        assert!(init.codec.starts_with("avc1.42"), "{}", init.codec);
        assert_eq!(init.mime(), format!("video/mp4; codecs=\"{}\"", init.codec));
        let top: Vec<[u8; 4]> = boxes(&init.bytes).map(|(k, _)| k).collect();
        assert_eq!(top, [*b"ftyp", *b"moov"]);
        let total: usize = boxes(&init.bytes).map(|(_, b)| b.len() + 8).sum();
        assert_eq!(total, init.bytes.len(), "sizes add up");
        let stsd = find(
            &init.bytes,
            &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"],
        )
        .expect("stsd");
        // stsd: full-box header + entry count, then the avc1 entry.
        let avc1 = find(&stsd[8..], &[b"avc1"]).expect("avc1");
        assert_eq!(&avc1[24..28], &[0, 160, 0, 96], "width and height");
        let avcc = find(&avc1[78..], &[b"avcC"]).expect("avcC");
        assert_eq!(avcc[0], 1);
        assert_eq!(avcc[4], 0xff, "4-byte NAL lengths");
        assert_eq!(avcc[8] & 0x1f, NAL_SPS);
        let trex = find(&init.bytes, &[b"moov", b"mvex", b"trex"]).expect("trex");
        assert_eq!(&trex[4..8], &[0, 0, 0, 1], "track 1");
        assert_eq!(init_segment(&[0, 0, 1, 0x65, 1]), Err(Fmp4Error::NoSps));
    }

    #[test]
    fn fragments_carry_sequence_time_flags_and_avcc_samples() {
        let au = keyframe();
        let mut f = Fragmenter::new();
        let mut out = Vec::new();
        f.fragment(&au, 1_000_000, true, &mut out);
        let top: Vec<[u8; 4]> = boxes(&out).map(|(k, _)| k).collect();
        assert_eq!(top, [*b"moof", *b"mdat"]);
        let mfhd = find(&out, &[b"moof", b"mfhd"]).expect("mfhd");
        assert_eq!(&mfhd[4..8], &[0, 0, 0, 1]);
        let tfhd = find(&out, &[b"moof", b"traf", b"tfhd"]).expect("tfhd");
        assert_eq!(&tfhd[..4], &[0, 2, 0, 0], "default-base-is-moof");
        let tfdt = find(&out, &[b"moof", b"traf", b"tfdt"]).expect("tfdt");
        assert_eq!(tfdt[0], 1, "64-bit time");
        assert_eq!(&tfdt[4..12], &0u64.to_be_bytes());
        let trun = find(&out, &[b"moof", b"traf", b"trun"]).expect("trun");
        let word = |i: usize| u32::from_be_bytes([trun[i], trun[i + 1], trun[i + 2], trun[i + 3]]);
        assert_eq!(word(4), 1, "one sample");
        let moof_len = boxes(&out).next().map(|(_, b)| b.len() + 8).unwrap_or(0);
        assert_eq!(
            word(8) as usize,
            moof_len + 8,
            "data offset points into mdat"
        );
        assert_eq!(word(12), DEFAULT_DURATION);
        assert_eq!(word(20), FLAGS_SYNC);
        let mdat = find(&out, &[b"mdat"]).expect("mdat");
        assert_eq!(word(16) as usize, mdat.len());
        // AVCC: the first NAL's length prefix covers it exactly; no SPS/PPS in the sample.
        let first = u32::from_be_bytes([mdat[0], mdat[1], mdat[2], mdat[3]]) as usize;
        assert!(first + 4 <= mdat.len());
        assert!(!matches!(mdat[4] & 0x1f, NAL_SPS | NAL_PPS));

        // 40 ms later: 3600 ticks on, sequence 2, a non-sync sample.
        f.fragment(&au, 1_040_000, false, &mut out);
        let tfdt = find(&out, &[b"moof", b"traf", b"tfdt"]).expect("tfdt");
        assert_eq!(&tfdt[4..12], &3600u64.to_be_bytes());
        let trun = find(&out, &[b"moof", b"traf", b"trun"]).expect("trun");
        assert_eq!(&trun[20..24], &FLAGS_NON_SYNC.to_be_bytes());
        // A switch to a source with an unrelated clock continues one frame later.
        f.restart();
        f.fragment(&au, 5, true, &mut out);
        let tfdt = find(&out, &[b"moof", b"traf", b"tfdt"]).expect("tfdt");
        assert_eq!(&tfdt[4..12], &7200u64.to_be_bytes());
        let mfhd = find(&out, &[b"moof", b"mfhd"]).expect("mfhd");
        assert_eq!(&mfhd[4..8], &[0, 0, 0, 3]);
    }

    /// Decode time and duration of a fragment.
    fn timing(out: &[u8]) -> (u64, u32) {
        let tfdt = find(out, &[b"moof", b"traf", b"tfdt"]).expect("tfdt");
        let trun = find(out, &[b"moof", b"traf", b"trun"]).expect("trun");
        let mut t = [0u8; 8];
        t.copy_from_slice(&tfdt[4..12]);
        let d = u32::from_be_bytes([trun[12], trun[13], trun[14], trun[15]]);
        (u64::from_be_bytes(t), d)
    }

    #[test]
    fn a_catch_up_burst_is_packed_and_the_timeline_has_no_gap() {
        let au = keyframe();
        let mut f = Fragmenter::new();
        let mut out = Vec::new();
        // Live at 25 fps: 3600 ticks a frame.
        f.fragment(&au, 0, true, &mut out);
        f.fragment(&au, 40_000, false, &mut out);
        assert_eq!(timing(&out), (3600, 3600));
        // A switch: three catch-up frames, then the newest, then live again.
        f.restart();
        let mut got = Vec::new();
        for (i, pts) in [10_000_000i64, 10_040_000, 10_080_000].iter().enumerate() {
            f.fragment_catch_up(&au, *pts, i == 0, &mut out);
            got.push(timing(&out));
        }
        f.fragment(&au, 10_120_000, false, &mut out);
        got.push(timing(&out));
        f.fragment(&au, 10_160_000, false, &mut out);
        got.push(timing(&out));
        let c = u64::from(CATCH_UP_TICKS);
        assert_eq!(
            got,
            [
                (7200, CATCH_UP_TICKS),
                (7200 + c, CATCH_UP_TICKS),
                (7200 + 2 * c, CATCH_UP_TICKS),
                (7200 + 3 * c, 3600),
                (7200 + 3 * c + 3600, 3600),
            ]
        );
        // Each sample starts where the one before it ends.
        for w in got.windows(2) {
            assert_eq!(w[0].0 + u64::from(w[0].1), w[1].0, "{got:?}");
        }
    }
}
