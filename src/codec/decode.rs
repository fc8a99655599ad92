//! H.264 decoding to I420 with openh264, for snapshots, JPEG output and tests.

use super::CodecError;
use super::yuv::I420Frame;
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

/// An openh264 decoder that copies each picture into a reused [`I420Frame`].
pub struct H264Decoder {
    /// The openh264 decoder; replaced on [`H264Decoder::reset`].
    inner: Decoder,
    /// The latest decoded picture; reallocated only when the size changes.
    frame: Option<I420Frame>,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder")
            .field("size", &self.frame.as_ref().map(|f| (f.width, f.height)))
            .finish_non_exhaustive()
    }
}

impl H264Decoder {
    /// A decoder waiting for a keyframe with SPS/PPS.
    pub fn new() -> Result<Self, CodecError> {
        Ok(H264Decoder {
            inner: Decoder::new().map_err(|e| CodecError::openh264("decoder init", e))?,
            frame: None,
        })
    }

    /// Forgets all decoder state; call it before a frame flagged `params_changed`.
    pub fn reset(&mut self) -> Result<(), CodecError> {
        self.inner = Decoder::new().map_err(|e| CodecError::openh264("decoder init", e))?;
        Ok(())
    }

    /// Decodes one Annex B access unit. Returns the picture, or `None` when the data made
    /// no picture (for example only parameter sets).
    pub fn decode(&mut self, au: &[u8]) -> Result<Option<&I420Frame>, CodecError> {
        let decoded = self
            .inner
            .decode(au)
            .map_err(|e| CodecError::openh264("decode", e))?;
        let Some(yuv) = decoded else {
            return Ok(None);
        };
        let (w, h) = yuv.dimensions();
        let (width, height) = (w as u32, h as u32);
        if self
            .frame
            .as_ref()
            .is_none_or(|f| f.width != width || f.height != height)
        {
            self.frame = Some(I420Frame::new(width, height)?);
        }
        let Some(frame) = self.frame.as_mut() else {
            return Ok(None);
        };
        let (sy, su, sv) = yuv.strides();
        let (cw, ch) = (w / 2, h / 2);
        for row in 0..h {
            frame.y[row * w..][..w].copy_from_slice(&yuv.y()[row * sy..][..w]);
        }
        for row in 0..ch {
            frame.u[row * cw..][..cw].copy_from_slice(&yuv.u()[row * su..][..cw]);
            frame.v[row * cw..][..cw].copy_from_slice(&yuv.v()[row * sv..][..cw]);
        }
        Ok(Some(frame))
    }
}
