//! Media codecs: H.264 encode/decode over openh264, raw pixel conversion, the step that
//! turns one captured camera buffer into an encoded frame, and the H.264 bitstream work of the
//! output (Annex B parsing, fMP4, the low-delay SPS rewrite in [`sps`], the size of a JPEG in
//! [`jfif`], the H.265 SPS and `hvcC` in [`hevc`]).
//!
//! Everything here is synchronous CPU work; sources run it on their own threads.

pub mod capture;
pub mod decode;
pub mod encode;
pub mod fmp4;
pub mod h264;
pub mod hevc;
pub mod jfif;
pub mod sps;
pub mod yuv;

pub use capture::{CaptureFormat, CaptureProcessor, ProcessedFrame};
pub use decode::H264Decoder;
pub use encode::{EncodedFrame, EncoderSettings, H264Encoder};
pub use yuv::I420Frame;

use thiserror::Error;

/// Why a codec operation failed.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The picture size cannot be used (zero, odd, or beyond what H.264 level 5.2 allows).
    #[error("unusable picture size {width}x{height}: {reason}")]
    BadDimensions {
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
        /// Why the size was refused.
        reason: &'static str,
    },
    /// A raw buffer holds fewer bytes than its format and size need.
    #[error("{format} buffer too short: {have} bytes, {need} needed for {width}x{height}")]
    ShortBuffer {
        /// The pixel format being read.
        format: &'static str,
        /// Bytes available (after the `bytesused` cut).
        have: usize,
        /// Bytes the picture needs.
        need: usize,
        /// Picture width in pixels.
        width: u32,
        /// Picture height in pixels.
        height: u32,
    },
    /// A frame of another size was handed to an encoder or converter set up for a fixed size.
    #[error("frame is {got_w}x{got_h} but {want_w}x{want_h} was expected")]
    SizeMismatch {
        /// Width of the frame given.
        got_w: u32,
        /// Height of the frame given.
        got_h: u32,
        /// Width expected.
        want_w: u32,
        /// Height expected.
        want_h: u32,
    },
    /// The line stride is smaller than a line of pixels.
    #[error("stride of {stride} bytes is shorter than one {format} line of {width} pixels")]
    BadStride {
        /// The pixel format being read.
        format: &'static str,
        /// Bytes per line claimed.
        stride: usize,
        /// Picture width in pixels.
        width: u32,
    },
    /// A buffer from an MJPEG camera does not start with a JPEG SOI marker.
    #[error("MJPEG buffer of {len} bytes is not a JPEG picture")]
    NotJpeg {
        /// Bytes in the buffer after the `bytesused` cut.
        len: usize,
    },
    /// openh264 reported an error (its messages are terse; the operation says where).
    #[error("openh264 {op} failed: {msg}")]
    OpenH264 {
        /// What was being done: "encoder init", "encode", "decode".
        op: &'static str,
        /// openh264's own description.
        msg: String,
    },
}

impl CodecError {
    /// Wraps an openh264 error with the operation that produced it.
    pub(crate) fn openh264(op: &'static str, e: openh264::Error) -> Self {
        CodecError::OpenH264 {
            op,
            msg: e.to_string(),
        }
    }
}
