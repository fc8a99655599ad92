//! One captured camera buffer in, one encoded frame out: the device-independent half of a
//! V4L2 source, kept here so it is tested without a camera.
//!
//! H.264 passes through (with SPS/PPS re-inserted before keyframes when the camera leaves
//! them out), MJPEG passes through as JPEG keyframes, YUYV and NV12 are converted to I420
//! and encoded with [`H264Encoder`].

use super::CodecError;
use super::encode::{EncoderSettings, H264Encoder};
use super::h264::ParamSets;
use super::yuv::{I420Frame, nv12_to_i420, yuyv_to_i420};
use crate::frame::{Codec, FrameInfo};

/// The pixel format a camera delivers, as far as ingest cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// H.264 Annex B access units, stored as they come.
    H264,
    /// Motion JPEG: every buffer is one JPEG picture.
    Mjpeg,
    /// Packed YUYV 4:2:2 with the given bytes per line (0 = packed).
    Yuyv {
        /// Bytes per line the driver reported.
        stride: usize,
    },
    /// NV12 with the given bytes per line (0 = packed).
    Nv12 {
        /// Bytes per line the driver reported.
        stride: usize,
    },
}

impl CaptureFormat {
    /// True for formats that must be encoded here.
    pub fn is_raw(&self) -> bool {
        matches!(
            self,
            CaptureFormat::Yuyv { .. } | CaptureFormat::Nv12 { .. }
        )
    }
}

/// A frame ready for the sink: codec, flags and the payload as parts to concatenate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessedFrame<'a> {
    /// How the payload is encoded.
    pub codec: Codec,
    /// A reader may start here.
    pub keyframe: bool,
    /// Decoders must reset before this frame (first keyframe, or new parameter sets).
    pub params_changed: bool,
    /// The payload; unused parts are empty.
    pub parts: [&'a [u8]; 3],
}

impl ProcessedFrame<'_> {
    /// The sink's description of this frame, given the times and epoch only the caller knows.
    pub fn info(&self, pts_us: i64, recv_mono_ns: u64, recv_wall_us: i64, epoch: u32) -> FrameInfo {
        FrameInfo {
            codec: self.codec,
            keyframe: self.keyframe,
            params_changed: self.params_changed,
            pts_us,
            recv_mono_ns,
            recv_wall_us,
            epoch,
        }
    }

    /// Total payload length in bytes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum()
    }

    /// True when the payload is empty (never the case for a frame `process` returns).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-format state that turns captured buffers into frames.
#[derive(Debug)]
pub enum CaptureProcessor {
    /// Camera H.264: only parameter-set bookkeeping.
    H264 {
        /// SPS/PPS cache and the keyframe gate.
        params: ParamSets,
    },
    /// Camera MJPEG.
    Mjpeg {
        /// No JPEG sent yet in this session, so the next one is flagged `params_changed`.
        first: bool,
    },
    /// Raw pictures that are converted and encoded.
    Raw {
        /// Format and stride of the camera buffers.
        format: CaptureFormat,
        /// Conversion target, reused for every frame.
        picture: I420Frame,
        /// The encoder for the converted pictures.
        encoder: Box<H264Encoder>,
        /// Set when the next encoded picture must be a keyframe.
        force_keyframe: bool,
        /// No keyframe sent yet in this session.
        first: bool,
    },
}

impl CaptureProcessor {
    /// Prepares for `format`. For raw formats `settings` gives the picture size the driver
    /// agreed to and the encoder parameters; for the others only its size is ignored.
    pub fn new(format: CaptureFormat, settings: EncoderSettings) -> Result<Self, CodecError> {
        Ok(match format {
            CaptureFormat::H264 => CaptureProcessor::H264 {
                params: ParamSets::new(),
            },
            CaptureFormat::Mjpeg => CaptureProcessor::Mjpeg { first: true },
            CaptureFormat::Yuyv { .. } | CaptureFormat::Nv12 { .. } => CaptureProcessor::Raw {
                format,
                picture: I420Frame::new(settings.width, settings.height)?,
                encoder: Box::new(H264Encoder::new(settings)?),
                force_keyframe: false,
                first: true,
            },
        })
    }

    /// Asks for the next frame to be a keyframe (after the sink dropped one). Only raw
    /// formats can honour it; camera streams bring their own keyframes.
    pub fn request_keyframe(&mut self) {
        if let CaptureProcessor::Raw { force_keyframe, .. } = self {
            *force_keyframe = true;
        }
    }

    /// Processes one buffer, of which the first `bytesused` bytes are valid. `Ok(None)`
    /// means the buffer yields no frame to store (before the first keyframe, an encoder
    /// skip, an empty buffer).
    pub fn process<'a>(
        &'a mut self,
        buf: &'a [u8],
        bytesused: usize,
    ) -> Result<Option<ProcessedFrame<'a>>, CodecError> {
        let data = &buf[..bytesused.min(buf.len())];
        match self {
            CaptureProcessor::H264 { params } => {
                Ok(params.normalize(data).map(|n| ProcessedFrame {
                    codec: Codec::H264,
                    keyframe: n.keyframe,
                    params_changed: n.params_changed,
                    parts: n.parts,
                }))
            }
            CaptureProcessor::Mjpeg { first } => {
                if data.is_empty() {
                    return Ok(None);
                }
                if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
                    return Err(CodecError::NotJpeg { len: data.len() });
                }
                let params_changed = std::mem::replace(first, false);
                Ok(Some(ProcessedFrame {
                    codec: Codec::Jpeg,
                    keyframe: true,
                    params_changed,
                    parts: [data, &[], &[]],
                }))
            }
            CaptureProcessor::Raw {
                format,
                picture,
                encoder,
                force_keyframe,
                first,
            } => {
                match *format {
                    CaptureFormat::Yuyv { stride } => {
                        yuyv_to_i420(data, data.len(), stride, picture)?
                    }
                    CaptureFormat::Nv12 { stride } => {
                        nv12_to_i420(data, data.len(), stride, picture)?
                    }
                    CaptureFormat::H264 | CaptureFormat::Mjpeg => {}
                }
                let force = std::mem::replace(force_keyframe, false);
                let Some(encoded) = encoder.encode(picture, force)? else {
                    return Ok(None);
                };
                let params_changed = encoded.keyframe && std::mem::replace(first, false);
                Ok(Some(ProcessedFrame {
                    codec: Codec::H264,
                    keyframe: encoded.keyframe,
                    params_changed,
                    parts: [encoded.data, &[], &[]],
                }))
            }
        }
    }
}
