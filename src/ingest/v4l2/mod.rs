//! USB cameras through V4L2 (feature `v4l2`).
//!
//! A capture thread per connection attempt opens the device, picks a format (H.264, then
//! MJPEG, then YUYV, then NV12), and hands every buffer, cut to `bytesused`, to a
//! [`CaptureProcessor`], which does all the format work (and is tested without a device).
//! Finished frames travel to the async side in recycled buffers; it stamps receive times
//! and pushes them into the sink.
//!
//! # A driver that does not answer
//!
//! Every driver call is made on the capture thread, and each step names itself in the
//! attempt's [`AttemptPhase`], so the supervisor's connect timeout ends an attempt whose open,
//! format negotiation, buffer set-up or first dequeue hangs, and says which step it was
//! ("timed out: no video within 20.0 s of connecting, still opening /dev/video0"). A thread
//! stuck inside the kernel cannot be stopped; the next attempt sees it still running and
//! fails at once with a sentence that says so, rather than piling up more stuck threads or
//! reporting the device as busy. The device calls sit behind [`CameraBackend`] and
//! [`CameraDevice`] ([`device::V4lBackend`] is the real one), so all of this is tested with a
//! fake device.

mod device;
pub use device::V4lBackend;

use super::gate::{Gated, KeyframeGate};
use super::{AttemptPhase, Source, SourceCtx, SourceError};
use crate::codec::{CaptureFormat, CaptureProcessor, EncoderSettings};
use crate::config::schema::StreamConfig;
use crate::frame::{Codec, FrameInfo};
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;

/// Frames in circulation between the capture thread and the async side.
const BUFFERS: usize = 3;
/// Consecutive unusable buffers after which the session counts as broken.
const MAX_BAD_BUFFERS: u32 = 30;
/// How long a new attempt waits for the last attempt's capture thread to end. A thread that
/// is not stuck ends within one device poll timeout (500 ms) of its attempt ending.
const EXIT_GRACE: Duration = Duration::from_millis(1500);
/// How often the flag is checked meanwhile.
const EXIT_POLL: Duration = Duration::from_millis(20);

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

/// What the device says about one filled buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferMeta {
    /// Bytes of the buffer that hold data; the rest is stale.
    pub bytesused: usize,
    /// Driver timestamp in microseconds.
    pub pts_us: i64,
    /// The driver flagged the buffer as corrupted (`V4L2_BUF_FLAG_ERROR`).
    pub corrupted: bool,
}

/// The format and rate a device agreed to.
#[derive(Debug, Clone)]
pub struct Configured {
    /// The device's name (`card`), for the log.
    pub card: String,
    /// The pixel format's four-character code.
    pub fourcc: [u8; 4],
    /// Picture width the driver chose (it may differ from the request).
    pub width: u32,
    /// Picture height the driver chose.
    pub height: u32,
    /// Frames per second the driver chose.
    pub fps: u32,
    /// How [`CaptureProcessor`] must read the buffers.
    pub capture: CaptureFormat,
}

/// One open camera: the driver calls a capture session makes, in this order. Each may block
/// (a driver may never answer); they run on the capture thread, never on the runtime.
pub trait CameraDevice: Send {
    /// Checks the device can stream, negotiates format, size and frame rate.
    fn configure(&mut self, settings: &EncoderSettings) -> Result<Configured, SourceError>;
    /// Sets up the capture buffers.
    fn start(&mut self) -> Result<(), SourceError>;
    /// The next filled buffer (the first call starts streaming), or `Ok(None)` when none
    /// came within the device's poll timeout; the thread then checks it is still wanted.
    fn next_buffer(&mut self) -> Result<Option<(&[u8], BufferMeta)>, SourceError>;
}

/// Opens cameras by path: [`V4lBackend`] for real devices, a fake in tests.
pub trait CameraBackend: Send + Sync + std::fmt::Debug {
    /// Opens `path`. May block, like a real `open(2)` on a wedged driver.
    fn open(&self, path: &str) -> Result<Box<dyn CameraDevice>, SourceError>;
}

/// A `v4l2` stream: a local camera.
#[derive(Debug)]
pub struct V4l2Source {
    /// Stream id, for log fields and the thread name.
    id: String,
    /// Device path such as `/dev/video0`; `None` when the config lacks one.
    device: Option<String>,
    /// Requested size and rate, and encoder parameters for raw formats.
    settings: EncoderSettings,
    /// The device calls.
    backend: Arc<dyn CameraBackend>,
    /// The last attempt's capture thread: a flag that is true while it runs, and the step it
    /// is in. A new attempt starts no second thread while that one is stuck in the driver.
    previous: Mutex<Option<(Arc<AtomicBool>, AttemptPhase)>>,
}

impl V4l2Source {
    /// A source for one `[[streams]]` entry, on the real V4L2 devices.
    pub fn new(cfg: &StreamConfig) -> Self {
        Self::with_backend(cfg, Arc::new(V4lBackend))
    }

    /// A source that opens its device through `backend` (tests use a fake device).
    pub fn with_backend(cfg: &StreamConfig, backend: Arc<dyn CameraBackend>) -> Self {
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
            backend,
            previous: Mutex::new(None),
        }
    }

    /// Fails when the previous attempt's capture thread is still inside a driver call (after
    /// giving it [`EXIT_GRACE`] to notice it is no longer wanted); else records
    /// `running`/`phase` as the thread of this attempt.
    async fn claim_thread(
        &self,
        device: &str,
        running: &Arc<AtomicBool>,
        phase: &AttemptPhase,
    ) -> Result<(), SourceError> {
        let previous = self
            .previous
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some((busy, step)) = previous {
            let deadline = tokio::time::Instant::now() + EXIT_GRACE;
            while busy.load(Ordering::Acquire) {
                if tokio::time::Instant::now() >= deadline {
                    let step = step.get().unwrap_or_else(|| format!("using {device}"));
                    return Err(SourceError::Connect(format!(
                        "the last capture of {device} is still stuck in the camera driver \
                         ({step}); unplug and replug the camera, or restart the box"
                    )));
                }
                tokio::time::sleep(EXIT_POLL).await;
            }
        }
        *self.previous.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Arc::clone(running), phase.clone()));
        Ok(())
    }

    /// One attempt: start the capture thread and push what it delivers.
    async fn run_attempt(&self, ctx: SourceCtx<'_>) -> Result<(), SourceError> {
        let Some(device) = self.device.clone() else {
            return Err(SourceError::Config(
                "a v4l2 stream needs `device`, e.g. \"/dev/video0\"".to_string(),
            ));
        };
        let running = Arc::new(AtomicBool::new(true));
        self.claim_thread(&device, &running, &ctx.phase).await?;
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
            device: device.clone(),
            settings: self.settings,
            backend: Arc::clone(&self.backend),
            phase: ctx.phase.clone(),
            free: free_rx,
            filled: filled_tx,
            want_keyframe: Arc::clone(&want_keyframe),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("v4l2-{}", self.id))
            .spawn(move || {
                let _running = RunningFlag(running);
                thread.run();
            });
        if let Err(e) = spawned {
            return Err(SourceError::Connect(format!(
                "cannot start the capture thread: {e}"
            )));
        }

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

/// Clears the "capture thread running" flag when the thread ends, however it ends.
struct RunningFlag(
    /// The flag [`V4l2Source::claim_thread`] checks.
    Arc<AtomicBool>,
);

impl Drop for RunningFlag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
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
    /// The device calls.
    backend: Arc<dyn CameraBackend>,
    /// Where each step is named, for the supervisor's timeout message.
    phase: AttemptPhase,
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
        self.phase.set(format!("opening {path}"));
        let mut dev = self.backend.open(path)?;
        self.phase
            .set(format!("setting up {path} (format, size and frame rate)"));
        let configured = dev.configure(&self.settings)?;
        tracing::info!(stream = %self.id, device = %path, card = %configured.card,
            format = %String::from_utf8_lossy(&configured.fourcc),
            width = configured.width, height = configured.height, fps = configured.fps,
            requested_width = self.settings.width, requested_height = self.settings.height,
            "camera configured");
        let settings = EncoderSettings {
            width: configured.width,
            height: configured.height,
            fps: configured.fps.max(1),
            ..self.settings
        };
        let mut processor = CaptureProcessor::new(configured.capture, settings).map_err(|e| {
            SourceError::Config(format!("{path}: cannot handle the camera's format: {e}"))
        })?;
        self.phase
            .set(format!("setting up capture buffers on {path}"));
        dev.start()?;
        self.phase
            .set(format!("waiting for the first frame from {path}"));
        self.pump(&mut *dev, &mut processor)
    }

    /// Moves buffers from the device through `processor` to the async side until an error
    /// or until the async side is gone (`Ok`).
    fn pump(
        &self,
        dev: &mut dyn CameraDevice,
        processor: &mut CaptureProcessor,
    ) -> Result<(), SourceError> {
        let path = self.device.as_str();
        let mut bad_buffers = 0u32;
        // Until the first keyframe: whether the phase already says buffers arrive.
        let mut keyframe_seen = false;
        let mut buffers_noted = false;
        loop {
            if self.filled.is_closed() {
                return Ok(());
            }
            let Some((buf, meta)) = dev.next_buffer()? else {
                continue;
            };
            if !keyframe_seen && !buffers_noted {
                buffers_noted = true;
                self.phase.set(format!(
                    "waiting for a keyframe: frames from {path} arrive, but none can start a picture"
                ));
            }
            if meta.corrupted {
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
            let frame = match processor.process(buf, meta.bytesused) {
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
            keyframe_seen |= frame.keyframe;
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
            out.pts_us = meta.pts_us;
            if self.filled.blocking_send(Msg::Frame(out)).is_err() {
                return Ok(());
            }
        }
    }
}

/// Formats in order of preference, with the name used in messages.
const PREFERENCE: [(&[u8; 4], &str); 4] = [
    (b"H264", "H.264"),
    (b"MJPG", "MJPEG"),
    (b"YUYV", "YUYV"),
    (b"NV12", "NV12"),
];
