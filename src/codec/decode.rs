//! H.264 decoding to I420 with openh264, for snapshots, JPEG output and tests.
//!
//! openh264 holds pictures back when the stream reorders them (B-frames: decode order is
//! not presentation order), so a picture comes out one or more access units after its own.
//! The decoder here never flushes on its own: openh264's flush-after-every-decode (the
//! crate's default) hands out a held-back picture early and then fails on the next
//! reordered frame (`dsOutOfMemory`, then `dsNoParamSets` until the next keyframe), which is
//! what left B-frame streams without snapshots. Instead a caller that wants the newest
//! picture that can be produced now calls [`H264Decoder::flush`] once it has fed every
//! frame it has, and starts again from a keyframe afterwards.

use super::CodecError;
use super::yuv::I420Frame;
use openh264::OpenH264API;
use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;

/// An openh264 decoder that copies each picture into a reused [`I420Frame`].
pub struct H264Decoder {
    /// The openh264 decoder; replaced on [`H264Decoder::reset`].
    inner: Decoder,
    /// The latest picture the decoder gave out; reallocated only when the size changes. It
    /// survives a decode error, so a caller can keep showing the last good picture.
    frame: Option<I420Frame>,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder")
            .field("size", &self.frame.as_ref().map(|f| (f.width, f.height)))
            .finish_non_exhaustive()
    }
}

/// A decoder that only flushes when asked (see the module comment).
fn new_decoder() -> Result<Decoder, CodecError> {
    let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
    Decoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| CodecError::openh264("decoder init", e))
}

impl H264Decoder {
    /// A decoder waiting for a keyframe with SPS/PPS.
    pub fn new() -> Result<Self, CodecError> {
        Ok(H264Decoder {
            inner: new_decoder()?,
            frame: None,
        })
    }

    /// Forgets all decoder state; call it before a frame flagged `params_changed`, after a
    /// [`flush`](Self::flush) and after a decode error. The last picture is kept.
    pub fn reset(&mut self) -> Result<(), CodecError> {
        self.inner = new_decoder()?;
        Ok(())
    }

    /// Decodes one Annex B access unit. Returns the picture the decoder gave out, or `None`
    /// when it gave none (only parameter sets, or a picture held back for reordering). With
    /// B-frames the picture is an earlier one in presentation order than `au`'s.
    pub fn decode(&mut self, au: &[u8]) -> Result<Option<&I420Frame>, CodecError> {
        let decoded = self
            .inner
            .decode(au)
            .map_err(|e| CodecError::openh264("decode", e))?;
        let Some(yuv) = decoded else {
            return Ok(None);
        };
        copy_picture(&mut self.frame, &yuv)
    }

    /// Drains the pictures held back for reordering and returns the last of them (the newest
    /// in presentation order), or `None` if none was held. The decoder cannot go on with the
    /// same stream after this: [`reset`](Self::reset) it and start at a keyframe.
    pub fn flush(&mut self) -> Result<Option<&I420Frame>, CodecError> {
        let held = self
            .inner
            .flush_remaining()
            .map_err(|e| CodecError::openh264("flush", e))?;
        let Some(yuv) = held.last() else {
            return Ok(None);
        };
        copy_picture(&mut self.frame, yuv)
    }

    /// Decodes `au` and drains the decoder: the newest picture that can be produced from
    /// what was fed so far. Resets the decoder afterwards, so the next frame must be a
    /// keyframe. For one-shot decodes (a probe, a snapshot of a single keyframe).
    pub fn decode_flushed(&mut self, au: &[u8]) -> Result<Option<&I420Frame>, CodecError> {
        let got = self.decode(au)?.is_some();
        let flushed = self.flush()?.is_some();
        self.reset()?;
        if got || flushed {
            Ok(self.frame.as_ref())
        } else {
            Ok(None)
        }
    }

    /// The latest picture given out, also after a later decode error.
    pub fn last_picture(&self) -> Option<&I420Frame> {
        self.frame.as_ref()
    }
}

/// Copies openh264's picture (strided planes) into `slot`, reallocating on a size change.
fn copy_picture<'a>(
    slot: &'a mut Option<I420Frame>,
    yuv: &DecodedYUV<'_>,
) -> Result<Option<&'a I420Frame>, CodecError> {
    let (w, h) = yuv.dimensions();
    let (width, height) = (w as u32, h as u32);
    if slot
        .as_ref()
        .is_none_or(|f| f.width != width || f.height != height)
    {
        *slot = Some(I420Frame::new(width, height)?);
    }
    let Some(frame) = slot.as_mut() else {
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
