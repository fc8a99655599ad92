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
use super::hevc::{self, HvccError};
use super::sps::{self, SpsError};
use crate::frame::Codec;

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
    BadSps(#[from] SpsError),
    /// The SPS is too short for its profile and level bytes (the codec string).
    #[error("SPS too short for a codec string")]
    ShortSps,
    /// An H.265 keyframe that cannot make an `hvcC`.
    #[error(transparent)]
    Hevc(#[from] HvccError),
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
    let codec = sps_codec_string(sps).ok_or(Fmp4Error::ShortSps)?;
    let (profile, compat, level) = (sps[1], sps[2], sps[3]);
    let bytes = init_with(width, height, b"avc1", |o| {
        visual_entry(o, b"avc1", width, height, |o| {
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
    Ok(InitSegment {
        bytes,
        codec,
        width,
        height,
    })
}

/// Builds the init segment from an H.265 keyframe access unit (Annex B, VPS, SPS and PPS in
/// it): an `hvc1` sample entry (parameter sets only in its `hvcC`, none in the samples).
pub fn hevc_init_segment(keyframe: &[u8]) -> Result<InitSegment, Fmp4Error> {
    let (record, sps) = hevc::hvcc(keyframe)?;
    let (width, height) = (sps.width, sps.height);
    let bytes = init_with(width, height, b"hvc1", |o| {
        visual_entry(o, b"hvc1", width, height, |o| {
            bx(o, b"hvcC", |o| o.extend_from_slice(&record));
        });
    });
    Ok(InitSegment {
        bytes,
        codec: sps.codec_string(),
        width,
        height,
    })
}

/// The init segment for a keyframe of `codec` (H.264 or H.265); JPEG has none.
pub fn init_segment_for(codec: Codec, keyframe: &[u8]) -> Result<InitSegment, Fmp4Error> {
    match codec {
        Codec::H265 => hevc_init_segment(keyframe),
        Codec::H264 | Codec::Jpeg => init_segment(keyframe),
    }
}

/// A visual sample entry (`avc1`, `hvc1`) of `width` x `height`, its configuration box
/// written by `config`.
fn visual_entry(
    o: &mut Vec<u8>,
    kind: &[u8; 4],
    width: u32,
    height: u32,
    config: impl FnOnce(&mut Vec<u8>),
) {
    let (w16, h16) = (width.min(0xffff) as u16, height.min(0xffff) as u16);
    bx(o, kind, |o| {
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
        config(o);
    });
}

/// `ftyp` + `moov` of one video track of `width` x `height` whose sample entry `entry`
/// writes; `brand` is the codec's compatible brand.
fn init_with(
    width: u32,
    height: u32,
    brand: &[u8; 4],
    entry: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    bx(&mut out, b"ftyp", |o| {
        o.extend_from_slice(b"isom");
        put32(o, 0x200);
        for brand in [b"isom", b"iso6", brand, b"mp41"] {
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
                            entry(o);
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
    out
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
///
/// Streams with B-frames arrive in decode order, their timestamps (presentation times) out
/// of order. The `tfdt` timeline above is the decode timeline; each sample's presentation
/// time is written as a composition time offset (`trun` version 1, never negative). The
/// offset counts frames: (presentation index − decode index + reorder delay) × the sample's
/// duration, the indexes counted from the GOP's keyframe and the presentation index from the
/// timestamps. The reorder delay comes from the SPS (`max_num_reorder_frames`) or, without
/// one, is learned as frames need more. A stream without B-frames gets offset 0.
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
    /// Presentation order of the current GOP: where composition offsets come from.
    order: Reorder,
    /// The access units are H.265: other NAL unit types stay out of the samples, and the
    /// reorder delay is read from the H.265 SPS.
    hevc: bool,
}

/// Timestamp steps kept to find the frame interval of a reordered stream.
const STEPS_KEPT: usize = 16;

/// What a [`Fragmenter`] knows of the presentation order of the frames it wrote.
#[derive(Debug, Clone, Default)]
struct Reorder {
    /// Frames decoded since the GOP's keyframe (the keyframe is 0); `None` until a keyframe
    /// follows a restart (no offset can be given then).
    decoded: Option<i64>,
    /// Presentation index of the latest frame, in frame intervals from the keyframe's.
    shown: i64,
    /// Reorder delay in frames: how far a frame may be decoded ahead of its presentation.
    delay: i64,
    /// The highest presentation index among this GOP's catch-up frames: a live frame shown
    /// before it is still packed as catch-up, or it would be presented after it.
    catch_up_shown: Option<i64>,
    /// Sizes of recent timestamp steps (µs, not zero); the smallest is the frame interval
    /// (two B-frames in a row are one frame apart, as are all frames of other streams).
    steps: std::collections::VecDeque<i64>,
    /// The frame interval the SPS states (VUI timing), for the first frames of a source.
    sps_frame_us: Option<i64>,
    /// Highest timestamp so far (µs).
    top: Option<i64>,
    /// A frame came with a timestamp below the highest one: the stream has B-frames.
    reordered: bool,
}

impl Reorder {
    /// Forgets the source (a switch or a jump in its timestamps); the delay is kept.
    fn restart(&mut self) {
        let delay = self.delay;
        *self = Reorder {
            delay,
            ..Reorder::default()
        };
    }

    /// The frame interval (µs): the smallest recent step, or what the SPS says, or 25 fps.
    fn unit_us(&self) -> i64 {
        let seen = self.steps.iter().copied().chain(self.sps_frame_us).min();
        seen.unwrap_or(1_000_000 / 25).max(1)
    }

    /// Takes in the next frame in decode order; `step` is its timestamp minus the previous
    /// frame's (`None` after a restart). Returns whether it must be packed as catch-up.
    fn push(
        &mut self,
        au: &[u8],
        hevc: bool,
        pts_us: i64,
        step: Option<i64>,
        keyframe: bool,
        catch_up: bool,
    ) -> bool {
        if let Some(s) = step.filter(|s| *s != 0) {
            if self.steps.len() == STEPS_KEPT {
                self.steps.pop_front();
            }
            self.steps.push_back(s.abs());
        }
        if self.top.is_some_and(|t| pts_us < t) {
            self.reordered = true;
        }
        self.top = Some(self.top.map_or(pts_us, |t| t.max(pts_us)));
        if keyframe {
            if hevc {
                let n = crate::codec::hevc::keyframe_sps(au).and_then(|s| s.max_num_reorder_pics);
                if let Some(n) = n {
                    self.delay = i64::from(n.min(16));
                }
            } else if let Some(sps) = keyframe_sps(au) {
                if let Some(n) = sps.reorder_frames {
                    self.delay = i64::from(n.min(16));
                }
                self.sps_frame_us = sps.frame_us.or(self.sps_frame_us);
            }
            self.decoded = Some(0);
            self.shown = 0;
            self.catch_up_shown = None;
        } else if let (Some(k), Some(s)) = (self.decoded, step) {
            let unit = self.unit_us();
            self.decoded = Some(k + 1);
            // Rounded to whole frames step by step: neighbours in decode order are a few
            // frames apart at most, so jitter of the timestamps does not move the index.
            self.shown += (s + s.signum() * unit / 2) / unit;
        }
        let packed = catch_up || self.catch_up_shown.is_some_and(|c| self.shown < c);
        if packed && self.decoded.is_some() {
            self.catch_up_shown = Some(
                self.catch_up_shown
                    .map_or(self.shown, |c| c.max(self.shown)),
            );
        }
        packed
    }

    /// The duration (ticks) of a live sample of a reordered stream: one frame interval.
    fn interval(&self) -> u32 {
        (self.unit_us().min(MAX_STEP_US) as u64 * TIMESCALE as u64 / 1_000_000).max(1) as u32
    }

    /// Composition time offset (ticks) of the latest frame, lasting `len` ticks; raises the
    /// delay if this frame needs more (so the offset is never negative).
    fn offset(&mut self, len: u32) -> u32 {
        // A stream whose SPS allows no reordering and whose timestamps never went backwards
        // has no B-frames: presentation is decode order. Counting frames from its steps
        // would only turn a late or dropped source frame into an offset that lasts the rest
        // of the GOP (and a player matching painted frames by their time would lose them).
        let Some(k) = self.decoded.filter(|_| self.reordered || self.delay > 0) else {
            return 0;
        };
        let ahead = self.shown - k;
        if ahead + self.delay < 0 {
            tracing::debug!(delay = -ahead, "fMP4: reorder delay raised");
            self.delay = -ahead;
        }
        let frames = (ahead + self.delay).clamp(0, 64) as u32;
        frames.saturating_mul(len)
    }
}

/// What the SPS of a keyframe access unit says, if it has one that parses.
fn keyframe_sps(au: &[u8]) -> Option<SpsInfo> {
    let sps = nal_units(au).find(|n| n.nal_type() == NAL_SPS)?.body;
    parse_sps(sps).ok()
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
            order: Reorder::default(),
            hevc: false,
        }
    }

    /// Says whether the next access units are H.265 (`true`) or H.264 (the default); set
    /// before each fragment of a source whose codec may change.
    pub fn set_hevc(&mut self, hevc: bool) {
        self.hevc = hevc;
    }

    /// Another source follows (a stream switch): its first fragment continues the timeline
    /// one frame after the last one written, whatever its own timestamps.
    pub fn restart(&mut self) {
        self.last_pts_us = None;
        self.order.restart();
    }

    /// Decode time (ticks) of the next fragment for a source timestamp of `pts_us`, the
    /// duration to write for it and its composition time offset. Learns the frame interval
    /// from the source timestamps.
    ///
    /// Each sample starts where the last one ended, and lasts the latest frame interval (the
    /// step into it; for a stream with B-frames, the average advance of its timestamps over
    /// the latest frames): the timeline follows the source's clock about one frame late, but
    /// has no hole or overlap however the timestamps jitter, so a player never stalls
    /// between fragments.
    fn next_timing(
        &mut self,
        au: &[u8],
        pts_us: i64,
        keyframe: bool,
        catch_up: bool,
    ) -> (u64, u32, u32) {
        let mut step = self.last_pts_us.map(|p| pts_us - p);
        if step.is_some_and(|s| s.abs() > MAX_STEP_US) {
            // A jump in the source's clock: counting frames across it means nothing.
            self.order.restart();
            step = None;
        }
        let catch_up = self
            .order
            .push(au, self.hevc, pts_us, step, keyframe, catch_up);
        if self.order.reordered {
            self.interval = self.order.interval();
        } else if let Some(s) = step.filter(|s| *s > 0) {
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
        (dts, len, self.order.offset(len))
    }

    /// Writes one access unit (Annex B) as `moof` + `mdat` into `out` (cleared first).
    pub fn fragment(&mut self, au: &[u8], pts_us: i64, keyframe: bool, out: &mut Vec<u8>) {
        out.clear();
        self.append(au, pts_us, keyframe, false, out);
    }

    /// Like [`Fragmenter::fragment`] for a catch-up frame: one that is decoded but not meant
    /// to be shown for long, packed [`CATCH_UP_TICKS`] after the previous fragment.
    pub fn fragment_catch_up(&mut self, au: &[u8], pts_us: i64, keyframe: bool, out: &mut Vec<u8>) {
        out.clear();
        self.append(au, pts_us, keyframe, true, out);
    }

    /// Appends the fragment (a catch-up one when `catch_up`) to what `out` holds already (a
    /// message header: the live path builds its message in one buffer, with no copy of the
    /// fragment). Offsets inside the fragment count from its own first byte.
    pub fn append(
        &mut self,
        au: &[u8],
        pts_us: i64,
        keyframe: bool,
        catch_up: bool,
        out: &mut Vec<u8>,
    ) {
        let (dts, len, offset) = self.next_timing(au, pts_us, keyframe, catch_up);
        self.last_dts = Some(dts);
        self.last_pts_us = Some(pts_us);
        self.last_len = len;
        let base = out.len();
        out.reserve(124 + au.len());
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
                // Version 1: signed composition offsets (ours are never negative).
                full(o, b"trun", 1, TRUN_FLAGS, |o| {
                    put32(o, 1);
                    offset_at = o.len();
                    put32(o, 0); // data offset
                    put32(o, len);
                    size_at = o.len();
                    put32s(o, &[0, flags, offset]); // sample size, flags, composition offset
                });
            });
        });
        // The sample starts right after the mdat header, counted from the moof's first byte.
        let sample_start = out.len() + 8;
        let data_offset = (sample_start - base) as u32;
        bx(out, b"mdat", |o| {
            let hevc = self.hevc;
            let keep = |n: &super::h264::Nal| {
                if hevc {
                    hevc::keep_in_sample(n.body)
                } else {
                    keep_nal(n.nal_type())
                }
            };
            for nal in nal_units(au).filter(keep) {
                put32(o, nal.body.len() as u32);
                o.extend_from_slice(nal.body);
            }
        });
        let sample_len = (out.len() - sample_start) as u32;
        out[offset_at..offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
        out[size_at..size_at + 4].copy_from_slice(&sample_len.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
    }
}

/// `trun` flags: data offset, and per sample its duration, size, flags and composition time
/// offset.
const TRUN_FLAGS: u32 = 0x0f01;

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

/// The cropped picture size an SPS (NAL body, header byte first) describes.
pub fn sps_size(sps: &[u8]) -> Result<(u32, u32), Fmp4Error> {
    parse_sps(sps).map(|s| (s.width, s.height))
}

/// What the fragmenter reads from an SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SpsInfo {
    /// Cropped picture width.
    width: u32,
    /// Cropped picture height.
    height: u32,
    /// `max_num_reorder_frames` of the VUI's bitstream restriction: how many frames may be
    /// decoded ahead of one shown before them. `None` when the SPS does not say (or its VUI
    /// cannot be read: the size is still good).
    reorder_frames: Option<u32>,
    /// The frame interval (µs) the VUI's timing information states, if it does.
    frame_us: Option<i64>,
}

/// Parses an SPS (NAL body, header byte first) for [`SpsInfo`], with [`sps::parse_lenient`]:
/// one SPS parser in the crate, the one the low-delay rewrite uses.
fn parse_sps(sps: &[u8]) -> Result<SpsInfo, Fmp4Error> {
    let info = sps::parse_lenient(sps)?;
    Ok(SpsInfo {
        width: info.width,
        height: info.height,
        reorder_frames: info.restriction.map(|r| r.max_num_reorder_frames),
        frame_us: info.frame_us,
    })
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
pub(crate) mod tests {
    use super::*;

    /// A real 160x96 constrained-baseline SPS (openh264) and a PPS, with an IDR slice (the
    /// SPS tests read theirs from it too).
    pub(crate) fn keyframe() -> Vec<u8> {
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

    /// x264's SPS of a 320x240 Main profile stream with `bframes=2` (b-pyramid): its VUI
    /// says up to two frames are decoded ahead of one shown before them.
    const X264_MAIN_SPS: &str = "674d4015eca0a0fd80b5060606a5000003000100000300328f162d96";
    /// The same at High profile.
    const X264_HIGH_SPS: &str = "67640014acd94141fb016a0c0c0d4a000003000200000300651e28532c";

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_sps_vui_gives_the_reorder_delay() {
        for sps in [X264_MAIN_SPS, X264_HIGH_SPS] {
            let info = parse_sps(&unhex(sps)).unwrap();
            assert_eq!((info.width, info.height), (320, 240));
            assert_eq!(info.reorder_frames, Some(2), "{sps}");
            assert_eq!(info.frame_us, Some(40_000), "25 fps: {sps}");
        }
        // openh264's baseline SPS: no B-frames.
        let key = keyframe();
        assert!(keyframe_sps(&key).is_some_and(|s| s.reorder_frames.unwrap_or(0) == 0));
    }

    /// Presentation time (decode time + composition offset) and decode time of a fragment.
    fn pts_dts(out: &[u8]) -> (u64, u64) {
        let trun = find(out, &[b"moof", b"traf", b"trun"]).expect("trun");
        assert_eq!(trun[0], 1, "trun version 1");
        assert_eq!(
            u32::from_be_bytes([0, trun[1], trun[2], trun[3]]),
            TRUN_FLAGS
        );
        let cto = i32::from_be_bytes([trun[24], trun[25], trun[26], trun[27]]);
        assert!(cto >= 0);
        let (dts, _) = timing(out);
        (dts + cto as u64, dts)
    }

    #[test]
    fn an_appended_fragment_is_the_same_bytes_after_what_was_there() {
        let au = keyframe();
        let (mut a, mut b) = (Fragmenter::new(), Fragmenter::new());
        let mut alone = Vec::new();
        let mut after = vec![0xee; 36];
        for (i, pts) in [0i64, 40_000, 80_000].into_iter().enumerate() {
            a.fragment(&au, pts, i == 0, &mut alone);
            after.truncate(36);
            b.append(&au, pts, i == 0, false, &mut after);
            assert_eq!(&after[..36], &[0xee; 36], "the header is left alone");
            assert_eq!(
                &after[36..],
                &alone[..],
                "fragment {i}: offsets from its own start"
            );
        }
    }

    #[test]
    fn a_stream_without_b_frames_gets_no_offset_when_a_source_frame_is_late_or_lost() {
        let au = keyframe();
        let mut f = Fragmenter::new();
        let mut out = Vec::new();
        // 25 fps with jitter, one frame late by 25 ms and one lost (an 80 ms step).
        let mut pts = 0i64;
        for (i, step) in [
            0, 40_000, 39_000, 41_000, 65_000, 15_000, 40_000, 80_000, 40_000,
        ]
        .into_iter()
        .enumerate()
        {
            pts += step;
            f.fragment(&au, pts, i == 0, &mut out);
            let (p, d) = pts_dts(&out);
            assert_eq!(p, d, "frame {i}: presentation is decode time");
        }
    }

    /// An H.265 keyframe with `sps` (x265 output) and a short IDR slice.
    fn hevc_keyframe(sps: &str) -> Vec<u8> {
        use crate::codec::hevc::testdata::PARAMS_320X240;
        let mut au = Vec::new();
        for p in [PARAMS_320X240[0], sps, PARAMS_320X240[2]] {
            au.extend_from_slice(&[0, 0, 0, 1]);
            au.extend_from_slice(&unhex(p));
        }
        au.extend_from_slice(&[0, 0, 0, 1, 0x26, 0x01, 0xaf, 0x1d, 0x80]);
        au
    }

    /// The H.265 SPS's `sps_max_num_reorder_pics` is the reorder delay from the keyframe
    /// on: the keyframe of a stream with B-frames is presented two frames after its decode
    /// time (when it was learned, the GOP's first frames were given too little and the
    /// offsets grew mid-GOP), and a stream the SPS says has none gets no offset.
    #[test]
    fn the_h265_sps_gives_the_reorder_delay() {
        use crate::codec::hevc::testdata::{SPS_BFRAMES_3, SPS_NO_BFRAMES};
        for (sps, frames) in [(SPS_BFRAMES_3, 2), (SPS_NO_BFRAMES, 0)] {
            let mut f = Fragmenter::new();
            f.set_hevc(true);
            let mut out = Vec::new();
            let delta = [0u8, 0, 0, 1, 0x02, 0x01, 0xd0];
            f.fragment(&hevc_keyframe(sps), 0, true, &mut out);
            f.fragment(&delta, 40_000, false, &mut out);
            f.fragment(&delta, 80_000, false, &mut out);
            let (p, d) = pts_dts(&out);
            let (_, len) = timing(&out);
            assert_eq!(p - d, frames * u64::from(len), "{sps}");
        }
    }

    /// Decode-order frames of a GOP with B-frames (`I0 P3 B1 B2 P6 B4 B5 ...`, 40 ms apart in
    /// presentation), keyframe first, starting at `start_us`; returns (pts_us, keyframe).
    fn b_gop(start_us: i64, frames: i64) -> Vec<(i64, bool)> {
        let mut v = vec![(start_us, true)];
        let mut p = 0;
        while p + 3 < frames {
            for q in [p + 3, p + 1, p + 2] {
                v.push((start_us + q * 40_000, false));
            }
            p += 3;
        }
        v
    }

    #[test]
    fn b_frames_get_presentation_times_in_timestamp_order_on_a_monotonic_decode_timeline() {
        let mut key = Vec::new();
        key.extend_from_slice(&[0, 0, 0, 1]);
        key.extend_from_slice(&unhex(X264_MAIN_SPS));
        key.extend_from_slice(&keyframe()[4..]);
        let delta = [0u8, 0, 0, 1, 0x41, 0x9a, 0x00];
        let mut f = Fragmenter::new();
        let mut out = Vec::new();
        // A catch-up GOP, then two live GOPs.
        let mut frames: Vec<(i64, bool, bool)> = Vec::new();
        frames.extend(b_gop(0, 13).into_iter().map(|(p, k)| (p, k, true)));
        frames.extend(b_gop(520_000, 13).into_iter().map(|(p, k)| (p, k, false)));
        frames.extend(b_gop(1_040_000, 13).into_iter().map(|(p, k)| (p, k, false)));
        let mut got = Vec::new();
        for &(pts, keyframe, catch_up) in &frames {
            let au: &[u8] = if keyframe { &key } else { &delta };
            if catch_up {
                f.fragment_catch_up(au, pts, keyframe, &mut out);
            } else {
                f.fragment(au, pts, keyframe, &mut out);
            }
            let (p, d) = pts_dts(&out);
            let (_, len) = timing(&out);
            got.push((pts, p, d, len));
        }
        for w in got.windows(2) {
            assert_eq!(
                w[0].2 + u64::from(w[0].3),
                w[1].2,
                "one decode timeline: {got:?}"
            );
        }
        // Sorted by source timestamp, the presentation times increase strictly.
        let mut by_pts = got.clone();
        by_pts.sort_by_key(|g| g.0);
        for w in by_pts.windows(2) {
            assert!(w[0].1 < w[1].1, "presentation order: {w:?} in {got:?}");
        }
        // Live frames last a frame (40 ms) and are shown 40 ms apart.
        let live: Vec<_> = by_pts.iter().filter(|g| g.0 >= 600_000).collect();
        for w in live.windows(2) {
            assert_eq!(w[1].1 - w[0].1, 3600, "{live:?}");
            assert_eq!(w[1].3, 3600, "{live:?}");
        }
    }
}
