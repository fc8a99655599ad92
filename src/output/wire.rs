//! The fixed header in front of every binary live frame on `/api/live`.
//!
//! Layout (little-endian, [`HEADER_LEN`] bytes), followed directly by the payload:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | version, currently [`WIRE_VERSION`] |
//! | 1 | 1 | codec ([`WireCodec`]: 0 = H.264 Annex B access unit, 1 = JPEG, 2 = fragmented MP4) |
//! | 2 | 1 | flags ([`FLAG_KEYFRAME`], [`FLAG_DISCONTINUITY`], [`FLAG_CATCH_UP`], [`FLAG_PARAMS_CHANGED`], [`FLAG_INIT`]) |
//! | 3 | 1 | reserved, 0 |
//! | 4 | 4 | stream number: the `sid` of the `init` message this frame belongs to |
//! | 8 | 8 | ring sequence number of the frame |
//! | 16 | 8 | receive wall time in µs since the UNIX epoch (when ingest got the frame) |
//! | 24 | 4 | frames this client has skipped so far (slow client, bounded queue) |
//! | 28 | 8 | presentation timestamp in µs on the source's own timeline (`i64`) |
//!
//! The page uses the receive time to measure ingest-to-paint latency and shows the skipped
//! counter; the stream number lets it drop frames of a stream it has already switched away from.
//! The presentation timestamp is what WebCodecs chunks carry: with B-frames the access units
//! come in decode order and the decoder hands pictures out in presentation order, stamped with
//! their own chunk's timestamp.
//!
//! On the MSE path (codec 2) a message flagged [`FLAG_INIT`] carries an fMP4 init segment
//! (`ftyp` + `moov`); every other one is one `moof` + `mdat` holding one access unit, whose
//! `tfdt` (version 1) is the big-endian `u64` at payload bytes [`TFDT_AT`]`..+8`, in 90 kHz
//! ticks, and the first sample's composition time offset (`i32`) is at [`CTO_AT`]`..+4`, so
//! the page can match a painted frame's media time (decode time + offset) to the receive time
//! above.

use crate::frame::{Codec, FrameMeta};

/// What a binary live message's payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireCodec {
    /// One H.264 access unit, Annex B (for WebCodecs).
    H264 = 0,
    /// One JPEG picture.
    Jpeg = 1,
    /// Fragmented MP4 for Media Source Extensions: an init segment or one fragment.
    Fmp4 = 2,
    /// An H.265 access unit in Annex B form (VPS/SPS/PPS in front of keyframes), for a
    /// WebCodecs client that decodes `hvc1`.
    H265 = 3,
}

impl WireCodec {
    /// The value of header byte 1.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The inverse of [`WireCodec::as_u8`]; `None` for a value no codec uses.
    pub fn from_u8(v: u8) -> Option<WireCodec> {
        match v {
            0 => Some(WireCodec::H264),
            1 => Some(WireCodec::Jpeg),
            2 => Some(WireCodec::Fmp4),
            3 => Some(WireCodec::H265),
            _ => None,
        }
    }
}

impl From<Codec> for WireCodec {
    fn from(c: Codec) -> WireCodec {
        match c {
            Codec::H264 => WireCodec::H264,
            Codec::Jpeg => WireCodec::Jpeg,
            Codec::H265 => WireCodec::H265,
        }
    }
}

/// Header size in bytes.
pub const HEADER_LEN: usize = 36;
/// The header version this server writes.
pub const WIRE_VERSION: u8 = 2;
/// The frame is a keyframe (an IDR with SPS/PPS, or a JPEG): a decoder may start here.
pub const FLAG_KEYFRAME: u8 = 1;
/// Frames were skipped before this one (the client fell behind); it is always a keyframe.
pub const FLAG_DISCONTINUITY: u8 = 2;
/// Part of a catch-up burst (the GOP sent on connect or switch): decode it, paint only the last.
pub const FLAG_CATCH_UP: u8 = 4;
/// SPS/PPS changed with this frame; a decoder must be reconfigured.
pub const FLAG_PARAMS_CHANGED: u8 = 8;
/// MSE path: the payload is an fMP4 init segment, to append before the fragments after it.
pub const FLAG_INIT: u8 = 16;
/// MSE path: where a fragment's `tfdt` decode time (`u64`, big-endian) starts in the payload:
/// `moof` header (8), `mfhd` (16), `traf` header (8), `tfhd` (16), `tfdt` header and version (12).
pub const TFDT_AT: usize = 60;
/// MSE path: where the fragment's composition time offset (`i32`, big-endian; `trun` version
/// 1 with flags 0xf01) starts in the payload: after the `tfdt` (20), the `trun` header,
/// version and flags (12), sample count, data offset, duration, size and flags (4 each).
pub const CTO_AT: usize = 100;

/// One frame's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload codec.
    pub codec: WireCodec,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// Stream number from the client's latest `init`.
    pub sid: u32,
    /// Ring sequence number.
    pub seq: u64,
    /// Ingest receive time, wall clock, µs since the epoch.
    pub recv_wall_us: i64,
    /// Frames skipped by this client so far.
    pub skipped: u32,
    /// Presentation timestamp (µs, source timeline): the WebCodecs chunk timestamp, which
    /// differs from decode order when the stream has B-frames.
    pub pts_us: i64,
}

impl FrameHeader {
    /// The header for a frame read from a ring.
    pub fn for_frame(meta: &FrameMeta, sid: u32, extra_flags: u8, skipped: u32) -> FrameHeader {
        let mut flags = extra_flags;
        if meta.info.keyframe {
            flags |= FLAG_KEYFRAME;
        }
        if meta.info.params_changed {
            flags |= FLAG_PARAMS_CHANGED;
        }
        FrameHeader {
            codec: meta.info.codec.into(),
            flags,
            sid,
            seq: meta.seq,
            recv_wall_us: meta.info.recv_wall_us,
            skipped,
            pts_us: meta.info.pts_us,
        }
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`.
    pub fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = WIRE_VERSION;
        out[1] = self.codec.as_u8();
        out[2] = self.flags;
        out[3] = 0;
        out[4..8].copy_from_slice(&self.sid.to_le_bytes());
        out[8..16].copy_from_slice(&self.seq.to_le_bytes());
        out[16..24].copy_from_slice(&self.recv_wall_us.to_le_bytes());
        out[24..28].copy_from_slice(&self.skipped.to_le_bytes());
        out[28..36].copy_from_slice(&self.pts_us.to_le_bytes());
    }

    /// Parses a header from the start of a message; `None` when it is too short, of another
    /// version or of an unknown codec.
    pub fn parse(msg: &[u8]) -> Option<FrameHeader> {
        let h = msg.get(..HEADER_LEN)?;
        if h[0] != WIRE_VERSION {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[i..i + 8]);
            u64::from_le_bytes(b)
        };
        Some(FrameHeader {
            codec: WireCodec::from_u8(h[1])?,
            flags: h[2],
            sid: u32_at(4),
            seq: u64_at(8),
            recv_wall_us: u64_at(16) as i64,
            skipped: u32_at(24),
            pts_us: u64_at(28) as i64,
        })
    }
}

/// Builds `header + payload` into `out`, reusing its capacity (one message per frame).
pub fn encode_frame(header: &FrameHeader, payload: &[u8], out: &mut Vec<u8>) {
    encode_header(header, payload.len(), out);
    out.extend_from_slice(payload);
}

/// Writes only the header into `out` (cleared first), with room for a payload of
/// `payload_len` bytes that the caller writes after it in place (the MSE path's fragment),
/// so the payload is not built elsewhere and copied.
pub fn encode_header(header: &FrameHeader, payload_len: usize, out: &mut Vec<u8>) {
    let mut h = [0u8; HEADER_LEN];
    header.write(&mut h);
    out.clear();
    out.reserve(HEADER_LEN + payload_len);
    out.extend_from_slice(&h);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = FrameHeader {
            codec: WireCodec::Fmp4,
            flags: FLAG_KEYFRAME | FLAG_INIT,
            sid: 7,
            seq: 1 << 40,
            recv_wall_us: 1_700_000_000_123_456,
            skipped: 99,
            pts_us: -40_000,
        };
        let mut out = Vec::new();
        encode_frame(&h, b"abc", &mut out);
        assert_eq!(out.len(), HEADER_LEN + 3);
        assert_eq!(FrameHeader::parse(&out), Some(h));
        assert_eq!(&out[HEADER_LEN..], b"abc");
        assert_eq!(FrameHeader::parse(&out[..HEADER_LEN - 1]), None);
        out[0] = 9;
        assert_eq!(FrameHeader::parse(&out), None);
    }
}
