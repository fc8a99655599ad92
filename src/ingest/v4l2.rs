//! USB cameras through V4L2 (feature `v4l2`).
//!
//! A capture thread per connection attempt opens the device, picks a format (H.264, then
//! MJPEG, then YUYV, then NV12), and hands every buffer, cut to `bytesused`, to a
//! [`CaptureProcessor`], which does all the format work (and is tested without a device).
//! Finished frames travel to the async side in recycled buffers; it stamps receive times
//! and pushes them into the sink.

use super::gate::{Gated, KeyframeGate};
use super::{Source, SourceCtx, SourceError};
use crate::codec::{CaptureFormat, CaptureProcessor, EncoderSettings};
use crate::config::schema::StreamConfig;
use crate::frame::{Codec, FrameInfo};
use futures::future::BoxFuture;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use v4l::buffer::{Flags as BufferFlags, Type};
use v4l::capability::Flags as CapFlags;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::video::capture::Parameters;
use v4l::{Device, Format, FourCC};

/// Frames in circulation between the capture thread and the async side.
const BUFFERS: usize = 3;
/// Kernel buffers to queue on the device.
const DEVICE_BUFFERS: u32 = 4;
/// How long a dequeue may block before the thread checks whether it is still wanted.
const POLL_TIMEOUT: Duration = Duration::from_millis(500);
/// Consecutive unusable buffers after which the session counts as broken.
const MAX_BAD_BUFFERS: u32 = 30;

/// Formats in order of preference, with the name used in messages.
const PREFERENCE: [(&[u8; 4], &str); 4] = [
    (b"H264", "H.264"),
    (b"MJPG", "MJPEG"),
    (b"YUYV", "YUYV"),
    (b"NV12", "NV12"),
];

/// One frame from the capture thread.
#[derive(Debug)]
struct Captured {
    /// The payload; its capacity is reused.
    data: Vec<u8>,
    /// Payload encoding.
    codec: Codec,
    /// A reader may start here.
    keyframe: bool,
    /// Decoders must reset here.
    params_changed: bool,
    /// Driver timestamp of the buffer in microseconds.
    pts_us: i64,
}

/// What the capture thread sends.
#[derive(Debug)]
enum Msg {
    /// A finished frame.
    Frame(Captured),
    /// The thread stopped for this reason.
    Failed(SourceError),
}

/// A `v4l2` stream: a local camera.
#[derive(Debug, Clone)]
pub struct V4l2Source {
    /// Stream id, for log fields and the thread name.
    id: String,
    /// Device path such as `/dev/video0`; `None` when the config lacks one.
    device: Option<String>,
    /// Requested size and rate, and encoder parameters for raw formats.
    settings: EncoderSettings,
}

impl V4l2Source {
    /// A source for one `[[streams]]` entry.
    pub fn new(cfg: &StreamConfig) -> Self {
        V4l2Source {
            id: cfg.id.clone(),
            device: cfg.device.clone(),
            settings: EncoderSettings {
                width: cfg.width_or_default(),
                height: cfg.height_or_default(),
                fps: cfg.fps_or_default(),
                bitrate_kbps: cfg.bitrate_kbps_or_default(),
                gop: cfg.gop_or_default(),
            },
        }
    }

    /// One attempt: start the capture thread and push what it delivers.
    async fn run_attempt(&self, ctx: SourceCtx<'_>) -> Result<(), SourceError> {
        let Some(device) = self.device.clone() else {
            return Err(SourceError::Config(
                "a v4l2 stream needs `device`, e.g. \"/dev/video0\"".to_string(),
            ));
        };
        let (filled_tx, mut filled_rx) = mpsc::channel::<Msg>(BUFFERS);
        let (free_tx, free_rx) = std::sync::mpsc::sync_channel::<Captured>(BUFFERS);
        for _ in 0..BUFFERS {
            let buf = Captured {
                data: Vec::new(),
                codec: Codec::H264,
                keyframe: false,
                params_changed: false,
                pts_us: 0,
            };
            // Cannot fail: the channel holds exactly BUFFERS and the receiver is alive.
            let _ = free_tx.try_send(buf);
        }
        let want_keyframe = Arc::new(AtomicBool::new(false));
        let thread = CaptureThread {
            id: self.id.clone(),
            device,
            settings: self.settings,
            free: free_rx,
            filled: filled_tx,
            want_keyframe: Arc::clone(&want_keyframe),
        };
        std::thread::Builder::new()
            .name(format!("v4l2-{}", self.id))
            .spawn(move || thread.run())
            .map_err(|e| SourceError::Connect(format!("cannot start the capture thread: {e}")))?;

        let mut gate = KeyframeGate::new();
        loop {
            let frame = match filled_rx.recv().await {
                Some(Msg::Frame(f)) => f,
                Some(Msg::Failed(e)) => return Err(e),
                None => return Err(SourceError::Stream("capture thread stopped".to_string())),
            };
            let info = FrameInfo {
                codec: frame.codec,
                keyframe: frame.keyframe,
                params_changed: frame.params_changed,
                pts_us: frame.pts_us,
                recv_mono_ns: ctx.clock.mono_ns(),
                recv_wall_us: ctx.clock.wall_us(),
                epoch: ctx.epoch,
            };
            if gate.push(ctx.sink, ctx.id, &info, &[&frame.data]) == Gated::Refused {
                want_keyframe.store(true, Ordering::Relaxed);
            }
            // Never full: at most BUFFERS frames exist and this one is back from the sink.
            let _ = free_tx.try_send(frame);
        }
    }
}

impl Source for V4l2Source {
    fn run<'a>(&'a self, ctx: SourceCtx<'a>) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(self.run_attempt(ctx))
    }
}

/// Everything the capture thread owns.
struct CaptureThread {
    /// Stream id for log fields.
    id: String,
    /// Device path.
    device: String,
    /// Requested size and rate, encoder parameters.
    settings: EncoderSettings,
    /// Empty buffers coming back from the async side.
    free: std::sync::mpsc::Receiver<Captured>,
    /// Finished frames (or the reason the thread stopped) going to the async side.
    filled: mpsc::Sender<Msg>,
    /// Set by the async side when the sink dropped a frame and a keyframe would help.
    want_keyframe: Arc<AtomicBool>,
}

impl CaptureThread {
    /// Runs the session and reports how it ended (unless nobody is listening any more).
    fn run(self) {
        if let Err(e) = self.capture() {
            let _ = self.filled.blocking_send(Msg::Failed(e));
        }
    }

    /// Opens and configures the device, then captures until an error or until the async
    /// side is gone (`Ok`).
    fn capture(&self) -> Result<(), SourceError> {
        let path = self.device.as_str();
        let dev = Device::with_path(path).map_err(|e| open_error(path, &e))?;
        let caps = dev
            .query_caps()
            .map_err(|e| SourceError::Connect(format!("{path}: cannot query the device: {e}")))?;
        if !caps.capabilities.contains(CapFlags::VIDEO_CAPTURE)
            || !caps.capabilities.contains(CapFlags::STREAMING)
        {
            return Err(SourceError::Config(format!(
                "{path} ({}) is not a streaming video capture device",
                caps.card
            )));
        }
        let (format, capture) = choose_format(&dev, path, &self.settings)?;
        let fps = match dev.set_params(&Parameters::with_fps(self.settings.fps.max(1))) {
            Ok(p) if p.interval.numerator > 0 => p.interval.denominator / p.interval.numerator,
            _ => self.settings.fps,
        };
        tracing::info!(stream = %self.id, device = %path, card = %caps.card,
            format = %String::from_utf8_lossy(&format.fourcc.repr),
            width = format.width, height = format.height, fps,
            requested_width = self.settings.width, requested_height = self.settings.height,
            "camera configured");
        let settings = EncoderSettings {
            width: format.width,
            height: format.height,
            fps: fps.max(1),
            ..self.settings
        };
        let mut processor = CaptureProcessor::new(capture, settings).map_err(|e| {
            SourceError::Config(format!("{path}: cannot handle the camera's format: {e}"))
        })?;
        let mut stream = Stream::with_buffers(&dev, Type::VideoCapture, DEVICE_BUFFERS)
            .map_err(|e| device_error(path, "cannot set up capture buffers", &e))?;
        stream.set_timeout(POLL_TIMEOUT);

        let mut bad_buffers = 0u32;
        loop {
            if self.filled.is_closed() {
                return Ok(());
            }
            let (buf, meta) = match stream.next() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
                Err(e) => {
                    // Once streaming, anything but a timeout ends the session.
                    return Err(match device_error(path, "capture failed", &e) {
                        SourceError::Connect(msg) => SourceError::Stream(msg),
                        other => other,
                    });
                }
            };
            if meta.flags.contains(BufferFlags::ERROR) {
                bad_buffers += 1;
                if bad_buffers >= MAX_BAD_BUFFERS {
                    return Err(SourceError::Stream(format!(
                        "{path}: {bad_buffers} corrupted buffers in a row"
                    )));
                }
                continue;
            }
            if self.want_keyframe.swap(false, Ordering::Relaxed) {
                processor.request_keyframe();
            }
            // `time_t` is 32 bits on some 32-bit ARM targets, so the conversion is not useless there.
            #[allow(clippy::useless_conversion)]
            let pts_us = i64::from(meta.timestamp.sec) * 1_000_000 + i64::from(meta.timestamp.usec);
            let frame = match processor.process(buf, meta.bytesused as usize) {
                Ok(Some(f)) => f,
                Ok(None) => continue,
                Err(e) => {
                    bad_buffers += 1;
                    tracing::debug!(stream = %self.id, error = %e, "unusable buffer skipped");
                    if bad_buffers >= MAX_BAD_BUFFERS {
                        return Err(SourceError::Stream(format!(
                            "{path}: {bad_buffers} unusable buffers in a row, the last: {e}"
                        )));
                    }
                    continue;
                }
            };
            bad_buffers = 0;
            // Waits only if the async side holds every buffer, i.e. it is behind.
            let Ok(mut out) = self.free.recv() else {
                return Ok(());
            };
            out.data.clear();
            for part in frame.parts {
                out.data.extend_from_slice(part);
            }
            out.codec = frame.codec;
            out.keyframe = frame.keyframe;
            out.params_changed = frame.params_changed;
            out.pts_us = pts_us;
            if self.filled.blocking_send(Msg::Frame(out)).is_err() {
                return Ok(());
            }
        }
    }
}

/// Picks the first format of [`PREFERENCE`] the device offers and accepts.
fn choose_format(
    dev: &Device,
    path: &str,
    settings: &EncoderSettings,
) -> Result<(Format, CaptureFormat), SourceError> {
    let offered = dev
        .enum_formats()
        .map_err(|e| device_error(path, "cannot list formats", &e))?;
    for (fourcc, name) in PREFERENCE {
        if !offered.iter().any(|d| d.fourcc.repr == *fourcc) {
            continue;
        }
        let want = Format::new(settings.width, settings.height, FourCC::new(fourcc));
        let got = dev
            .set_format(&want)
            .map_err(|e| device_error(path, "cannot set the format", &e))?;
        if got.fourcc.repr != *fourcc {
            tracing::debug!(device = %path, format = name, "driver refused the format");
            continue;
        }
        let capture = match fourcc {
            b"H264" => CaptureFormat::H264,
            b"MJPG" => CaptureFormat::Mjpeg,
            b"YUYV" => CaptureFormat::Yuyv {
                stride: got.stride as usize,
            },
            _ => CaptureFormat::Nv12 {
                stride: got.stride as usize,
            },
        };
        return Ok((got, capture));
    }
    let names: Vec<String> = offered
        .iter()
        .map(|d| String::from_utf8_lossy(&d.fourcc.repr).into_owned())
        .collect();
    Err(SourceError::Config(format!(
        "{path} offers none of H264, MJPG, YUYV, NV12 (it offers: {})",
        names.join(", ")
    )))
}

/// A human sentence for a failed `open`.
fn open_error(path: &str, e: &io::Error) -> SourceError {
    match e.kind() {
        io::ErrorKind::NotFound => SourceError::Connect(format!("{path} does not exist")),
        io::ErrorKind::PermissionDenied => SourceError::Connect(format!(
            "no permission to open {path} (is the service user in the `video` group?)"
        )),
        _ => device_error(path, "cannot open", e),
    }
}

/// A human sentence for a failed device call; EBUSY and a vanished device get their own.
fn device_error(path: &str, what: &str, e: &io::Error) -> SourceError {
    const EBUSY: i32 = 16;
    const ENODEV: i32 = 19;
    match e.raw_os_error() {
        Some(EBUSY) => SourceError::Connect(format!(
            "{path} is busy (another program is using the camera)"
        )),
        Some(ENODEV) => SourceError::Connect(format!("{path} was disconnected")),
        _ => SourceError::Connect(format!("{path}: {what}: {e}")),
    }
}
