//! H.264 encoding of I420 pictures with openh264, one Annex B access unit per picture.

use super::CodecError;
use super::h264::{self, NAL_IDR, NAL_PPS, NAL_SPS};
use super::yuv::{I420Frame, check_dimensions};
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod,
    RateControlMode, UsageType,
};

/// openh264's `ENCODER_OPTION_TRACE_LEVEL` (codec_app_def.h); the sys crate is not a direct
/// dependency, and this ABI value has not changed since openh264 1.0.
const ENCODER_OPTION_TRACE_LEVEL: i32 = 25;
/// openh264's `WELS_LOG_ERROR`: print errors only.
const WELS_LOG_ERROR: i32 = 1;

/// What an [`H264Encoder`] is set up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSettings {
    /// Picture width in pixels (even).
    pub width: u32,
    /// Picture height in pixels (even).
    pub height: u32,
    /// Frame rate the rate control plans for.
    pub fps: u32,
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Keyframe interval in frames (0 or 1: every frame is a keyframe).
    pub gop: u32,
}

/// One encoded picture, borrowed from the encoder's reused output buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedFrame<'a> {
    /// The access unit in Annex B form; a keyframe starts with SPS and PPS.
    pub data: &'a [u8],
    /// True for an IDR picture.
    pub keyframe: bool,
}

/// An openh264 encoder with a fixed size that emits a keyframe every `gop` frames.
///
/// The GOP is counted here and enforced with "force IDR" rather than openh264's intra period,
/// so keyframes land exactly where the config says, and scene-change detection is off so
/// none appear elsewhere.
pub struct H264Encoder {
    /// The openh264 encoder.
    inner: Encoder,
    /// The configuration, kept to check frame sizes and for the GOP.
    settings: EncoderSettings,
    /// Frames encoded since the last keyframe; `None` before the first frame.
    since_keyframe: Option<u32>,
    /// NAL units as openh264 produced them, before SPS/PPS are (re)inserted; reused.
    scratch: Vec<u8>,
    /// The access unit handed out by [`H264Encoder::encode`]; reused.
    out: Vec<u8>,
    /// The latest SPS and PPS (with start codes), for keyframes openh264 sends without them.
    params: Vec<u8>,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("settings", &self.settings)
            .field("since_keyframe", &self.since_keyframe)
            .finish_non_exhaustive()
    }
}

impl H264Encoder {
    /// Sets up an encoder: constrained baseline (what openh264 makes), single-threaded (the
    /// box runs one encoder per stream), bitrate rate control, no frame skipping.
    pub fn new(settings: EncoderSettings) -> Result<Self, CodecError> {
        check_dimensions(settings.width, settings.height)?;
        let fps = settings.fps.max(1);
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(
                settings.bitrate_kbps.saturating_mul(1000),
            ))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .usage_type(UsageType::CameraVideoRealTime)
            .skip_frames(false)
            .scene_change_detect(false)
            .intra_frame_period(IntraFramePeriod::auto())
            .complexity(Complexity::Low)
            .num_threads(1);
        let mut inner = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| CodecError::openh264("encoder init", e))?;
        // openh264 prints a warning to stderr at initialisation because frame skipping is off
        // (it is off on purpose: a skipped frame is a visible stutter, and the measured rate
        // still meets the target). Keep its console output to errors, from before that point.
        let mut level: i32 = WELS_LOG_ERROR;
        // SAFETY: `inner` holds a created, not yet initialised encoder; openh264's SetOption
        // accepts ENCODER_OPTION_TRACE_LEVEL in that state (welsEncoderExt.cpp) and only reads
        // one 32-bit integer through the pointer, which is valid for the duration of the call.
        // No parameter the crate relies on is touched.
        let rc = unsafe {
            inner
                .raw_api()
                .set_option(ENCODER_OPTION_TRACE_LEVEL, (&raw mut level).cast())
        };
        if rc != 0 {
            tracing::debug!(rc, "openh264 refused to lower its trace level");
        }
        let luma = settings.width as usize * settings.height as usize;
        Ok(H264Encoder {
            inner,
            settings,
            since_keyframe: None,
            scratch: Vec::with_capacity(luma / 2),
            out: Vec::with_capacity(luma / 2),
            params: Vec::with_capacity(64),
        })
    }

    /// The settings this encoder was made with.
    pub fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    /// Encodes one picture. A keyframe is made for the first picture, every `gop` pictures,
    /// and when `force_keyframe` is set. Returns `None` if openh264 skipped the picture.
    pub fn encode(
        &mut self,
        frame: &I420Frame,
        force_keyframe: bool,
    ) -> Result<Option<EncodedFrame<'_>>, CodecError> {
        frame.expect_size(self.settings.width, self.settings.height)?;
        let due = match self.since_keyframe {
            None => true,
            Some(n) => n + 1 >= self.settings.gop,
        };
        if force_keyframe || due {
            self.inner.force_intra_frame();
        }
        let stream = self
            .inner
            .encode(frame)
            .map_err(|e| CodecError::openh264("encode", e))?;
        let frame_type = stream.frame_type();
        if matches!(frame_type, FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        self.scratch.clear();
        for l in 0..stream.num_layers() {
            let Some(layer) = stream.layer(l) else { break };
            for n in 0..layer.nal_count() {
                if let Some(nal) = layer.nal_unit(n) {
                    self.scratch.extend_from_slice(nal);
                }
            }
        }
        let (mut has_sps, mut has_pps, mut keyframe) = (false, false, false);
        for nal in h264::nal_units(&self.scratch) {
            match nal.nal_type() {
                NAL_SPS => has_sps = true,
                NAL_PPS => has_pps = true,
                NAL_IDR => keyframe = true,
                _ => {}
            }
        }
        if has_sps && has_pps {
            self.params.clear();
            for nal in h264::nal_units(&self.scratch) {
                if matches!(nal.nal_type(), NAL_SPS | NAL_PPS) {
                    self.params.extend_from_slice(&h264::START_CODE);
                    self.params.extend_from_slice(nal.body);
                }
            }
        }
        self.out.clear();
        if keyframe && !(has_sps && has_pps) {
            self.out.extend_from_slice(&self.params);
        }
        self.out.extend_from_slice(&self.scratch);
        self.since_keyframe = Some(if keyframe {
            0
        } else {
            self.since_keyframe.map_or(0, |n| n + 1)
        });
        Ok(Some(EncodedFrame {
            data: &self.out,
            keyframe,
        }))
    }
}
