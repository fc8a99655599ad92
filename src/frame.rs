//! The unit that flows from ingest to output: one encoded frame and what is known about it.
//!
//! Sources describe each frame with a [`FrameInfo`] and hand its bytes to a [`FrameSink`]
//! (in the daemon, the stream's ring writer). Readers get the same description back as a
//! [`FrameMeta`], with the sequence number and length the ring assigned.

use thiserror::Error;

/// How a frame's payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Codec {
    /// H.264 access unit in Annex B form (start codes), SPS/PPS in front of every keyframe.
    H264 = 0,
    /// One complete JPEG image (a V4L2 MJPEG camera, an RTP/JPEG camera, or a decoded frame
    /// for JPEG clients).
    Jpeg = 1,
    /// H.265 (HEVC) access unit in Annex B form, VPS/SPS/PPS in front of every keyframe. The
    /// box cannot decode it: it goes only to browsers that do (see [`Codec::decodable_here`]).
    H265 = 2,
}

impl Codec {
    /// The codec stored as a small integer in the ring's descriptors and the wire header.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// `h264`, `jpeg` or `h265`: the name in `/api/status`, *Test connection* and logs.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Jpeg => "jpeg",
            Codec::H265 => "h265",
        }
    }

    /// Whether the box itself can turn this stream into pictures (snapshots, thumbnails,
    /// MJPEG, JPEG clients): H.264 through openh264, JPEG as it is. H.265 cannot; such a
    /// camera needs an H.264 stream (its sub stream) for pictures.
    pub fn decodable_here(self) -> bool {
        matches!(self, Codec::H264 | Codec::Jpeg)
    }

    /// The inverse of [`Codec::as_u8`]; `None` for a value no codec uses.
    pub fn from_u8(v: u8) -> Option<Codec> {
        match v {
            0 => Some(Codec::H264),
            1 => Some(Codec::Jpeg),
            2 => Some(Codec::H265),
            _ => None,
        }
    }
}

/// What a source knows about one frame, apart from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Payload encoding; consumers pick a decoder by it.
    pub codec: Codec,
    /// True for an IDR picture (H.264), an IRAP picture (H.265) or any JPEG: a reader may start here.
    pub keyframe: bool,
    /// True when the SPS/PPS (or resolution) changed with this frame, so decoders must be reset.
    pub params_changed: bool,
    /// Presentation timestamp in microseconds on the source's own timeline.
    pub pts_us: i64,
    /// Monotonic receive time in nanoseconds (see [`crate::clock::Clock::mono_ns`]); latency and stall checks use it.
    pub recv_mono_ns: u64,
    /// Wall-clock receive time in microseconds since the UNIX epoch; sent to browsers so they can measure latency.
    pub recv_wall_us: i64,
    /// Source epoch, bumped by the supervisor on every (re)connect, so readers notice a new session.
    pub epoch: u32,
}

/// A frame as a reader sees it: the source's description plus what the ring assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// Ring sequence number, starting at 0 and increasing by one per stored frame.
    pub seq: u64,
    /// Payload length in bytes.
    pub len: usize,
    /// Everything the source said about the frame.
    pub info: FrameInfo,
}

/// Why a sink refused a frame. The frame is dropped; the source carries on.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// The frame is larger than the ring accepts for one frame.
    #[error("frame of {len} bytes is larger than the {max}-byte limit of this stream's ring")]
    FrameTooLarge {
        /// Size of the refused frame.
        len: usize,
        /// Largest frame the ring accepts.
        max: usize,
    },
}

/// Where a source puts its frames. It never blocks: it stores the frame and returns.
pub trait FrameSink: Send {
    /// Stores one frame whose payload is `parts` concatenated (so a source can write start
    /// codes and NAL units without assembling them first). Returns the sequence number given.
    fn push_frame(&mut self, info: &FrameInfo, parts: &[&[u8]]) -> Result<u64, SinkError>;
}

/// A sink that keeps every frame in memory; for tests and tools, not for the daemon.
#[derive(Debug, Default)]
pub struct VecSink {
    /// Every frame pushed, in order, with its metadata.
    pub frames: Vec<(FrameMeta, Vec<u8>)>,
}

impl FrameSink for VecSink {
    fn push_frame(&mut self, info: &FrameInfo, parts: &[&[u8]]) -> Result<u64, SinkError> {
        let payload = parts.concat();
        let seq = self.frames.len() as u64;
        let meta = FrameMeta {
            seq,
            len: payload.len(),
            info: *info,
        };
        self.frames.push((meta, payload));
        Ok(seq)
    }
}
