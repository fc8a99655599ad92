//! A V4L2 camera whose driver does not answer: every step of an attempt (open, format
//! negotiation, buffer set-up, the first dequeue) that hangs ends in the supervisor's connect
//! timeout with a `last_error` that names the step; the next attempt does not start a second
//! thread beside the stuck one but says the driver is stuck; and once the driver answers again
//! the stream goes live. A fake device stands in for the camera (this machine has none); the
//! real backend is the thin `v4l` layer in `src/ingest/v4l2/device.rs`.
//!
//! Time: the first part runs on tokio's paused clock. The test blocks the runtime's only
//! thread until the fake's capture thread has reached the step under test, so the timeout
//! cannot fire early; only then does virtual time run. The recovery part resumes real time.

#![cfg(feature = "v4l2")]

mod support;

use edgecam::backoff::BackoffConfig;
use edgecam::clock::{Clock, ManualClock};
use edgecam::codec::{CaptureFormat, EncoderSettings};
use edgecam::config::schema::StreamConfig;
use edgecam::ingest::SourceError;
use edgecam::ingest::stats::{StreamState, StreamStats};
use edgecam::ingest::supervisor::{SupervisorConfig, SupervisorHandle, spawn_supervisor};
use edgecam::ingest::v4l2::{BufferMeta, CameraBackend, CameraDevice, Configured, V4l2Source};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use support::{SharedSink, StateLog, wait_until};

/// The device path every test uses.
const PATH: &str = "/dev/video-fake0";

/// Where the fake device blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `open(2)`.
    Open,
    /// Format and rate negotiation.
    Configure,
    /// Buffer set-up.
    Start,
    /// The first dequeue.
    FirstBuffer,
}

/// What the fake does, shared between the test and the capture thread.
#[derive(Debug, Default)]
struct Script {
    /// The stage to block in, until [`Fake::release`].
    hang_at: Option<Stage>,
    /// The stage the capture thread has reached and is blocked in.
    reached: Option<Stage>,
    /// Deliver H.264 delta frames only (never a keyframe) instead of JPEG pictures.
    no_keyframe: bool,
    /// Buffers delivered so far.
    delivered: u32,
}

/// A camera backend whose driver can be made to hang at one stage.
#[derive(Debug, Default)]
struct Fake {
    /// The script and where the thread is.
    script: Mutex<Script>,
    /// Wakes the test (stage reached) and the blocked thread (released).
    changed: Condvar,
    /// Capture threads inside a driver call right now.
    inside: AtomicU32,
    /// The most capture threads ever inside the fake at once.
    max_inside: AtomicU32,
}

impl Fake {
    fn new(hang_at: Option<Stage>, no_keyframe: bool) -> Arc<Fake> {
        let fake = Fake::default();
        {
            let mut s = fake.script.lock().expect("script");
            s.hang_at = hang_at;
            s.no_keyframe = no_keyframe;
        }
        Arc::new(fake)
    }

    /// Called by the device at each stage: blocks there while the script says so, then fails
    /// the call (a driver that finally answers with an error).
    fn stage(&self, stage: Stage) -> Result<(), SourceError> {
        let mut s = self.script.lock().expect("script");
        if s.hang_at != Some(stage) {
            return Ok(());
        }
        s.reached = Some(stage);
        self.changed.notify_all();
        while s.hang_at == Some(stage) {
            s = self.changed.wait(s).expect("script");
        }
        Err(SourceError::Stream(format!("{PATH}: the driver gave up")))
    }

    /// Blocks the calling thread (on purpose: the test's runtime thread, so virtual time
    /// stands still) until a capture thread is blocked in `stage`.
    fn wait_reached(&self, stage: Stage) {
        let s = self.script.lock().expect("script");
        let (s, timeout) = self
            .changed
            .wait_timeout_while(s, Duration::from_secs(30), |s| s.reached != Some(stage))
            .expect("script");
        assert!(
            !timeout.timed_out(),
            "the capture thread never reached {stage:?}: {s:?}"
        );
    }

    /// Blocks until the device has delivered `n` buffers.
    fn wait_delivered(&self, n: u32) {
        let s = self.script.lock().expect("script");
        let (_s, timeout) = self
            .changed
            .wait_timeout_while(s, Duration::from_secs(30), |s| s.delivered < n)
            .expect("script");
        assert!(
            !timeout.timed_out(),
            "the device never delivered {n} buffers"
        );
    }

    /// Lets the driver answer again.
    fn release(&self) {
        let mut s = self.script.lock().expect("script");
        s.hang_at = None;
        s.reached = None;
        self.changed.notify_all();
    }
}

/// Counts a capture thread in while it is inside the fake.
struct Inside<'a>(&'a Fake);

impl<'a> Inside<'a> {
    fn enter(fake: &'a Fake) -> Inside<'a> {
        let now = fake.inside.fetch_add(1, Ordering::SeqCst) + 1;
        fake.max_inside.fetch_max(now, Ordering::SeqCst);
        Inside(fake)
    }
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.inside.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The backend the source opens its device through.
#[derive(Debug)]
struct FakeBackend(
    /// The shared script.
    Arc<Fake>,
);

impl CameraBackend for FakeBackend {
    fn open(&self, path: &str) -> Result<Box<dyn CameraDevice>, SourceError> {
        assert_eq!(path, PATH);
        {
            let _inside = Inside::enter(&self.0);
            self.0.stage(Stage::Open)?;
        }
        Ok(Box::new(FakeDevice {
            fake: Arc::clone(&self.0),
            buf: Vec::new(),
        }))
    }
}

/// One open fake device.
struct FakeDevice {
    /// The shared script.
    fake: Arc<Fake>,
    /// The buffer handed out by `next_buffer`.
    buf: Vec<u8>,
}

impl CameraDevice for FakeDevice {
    fn configure(&mut self, _settings: &EncoderSettings) -> Result<Configured, SourceError> {
        let _inside = Inside::enter(&self.fake);
        self.fake.stage(Stage::Configure)?;
        let no_keyframe = self.fake.script.lock().expect("script").no_keyframe;
        Ok(Configured {
            card: "fake camera".to_string(),
            fourcc: if no_keyframe { *b"H264" } else { *b"MJPG" },
            width: 64,
            height: 48,
            fps: 25,
            capture: if no_keyframe {
                CaptureFormat::H264
            } else {
                CaptureFormat::Mjpeg
            },
        })
    }

    fn start(&mut self) -> Result<(), SourceError> {
        let _inside = Inside::enter(&self.fake);
        self.fake.stage(Stage::Start)
    }

    fn next_buffer(&mut self) -> Result<Option<(&[u8], BufferMeta)>, SourceError> {
        let _inside = Inside::enter(&self.fake);
        let delivered = self.fake.script.lock().expect("script").delivered;
        if delivered == 0 {
            self.fake.stage(Stage::FirstBuffer)?;
        }
        // A camera at 100 frames/s of real time.
        std::thread::sleep(Duration::from_millis(10));
        let no_keyframe = {
            let mut s = self.fake.script.lock().expect("script");
            s.delivered += 1;
            self.fake.changed.notify_all();
            s.no_keyframe
        };
        self.buf.clear();
        if no_keyframe {
            // A non-IDR slice: frames arrive, none can start a picture.
            self.buf
                .extend_from_slice(&[0, 0, 0, 1, 0x41, 0x9a, 0x02, 0x03]);
        } else {
            self.buf
                .extend_from_slice(&[0xFF, 0xD8, 0x01, 0x02, 0xFF, 0xD9]);
        }
        let meta = BufferMeta {
            bytesused: self.buf.len(),
            pts_us: i64::from(delivered) * 10_000,
            corrupted: false,
        };
        Ok(Some((&self.buf, meta)))
    }
}

fn stream_config() -> StreamConfig {
    toml::from_str(&format!(
        "id = \"usb\"\nkind = \"v4l2\"\ndevice = \"{PATH}\"\nwidth = 64\nheight = 48\nfps = 25\n"
    ))
    .expect("valid stream config")
}

/// The stream's `last_error` each time it went to `backoff`, in order: the errors of the
/// attempts one by one (polling `last_error` could miss one that a quick retry replaced).
#[derive(Debug, Clone, Default)]
struct Errors(Arc<Mutex<Vec<String>>>);

impl Errors {
    fn record(stats: Arc<StreamStats>) -> Errors {
        let errors = Errors::default();
        let seen = Arc::clone(&errors.0);
        let mut rx = stats.subscribe_state();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(StreamState::Backoff) => seen
                        .lock()
                        .expect("errors")
                        .push(stats.last_error().unwrap_or_default()),
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        });
        errors
    }

    fn get(&self) -> Vec<String> {
        self.0.lock().expect("errors").clone()
    }
}

fn start(fake: &Arc<Fake>) -> (SupervisorHandle, StateLog, Errors) {
    let source = Arc::new(V4l2Source::with_backend(
        &stream_config(),
        Arc::new(FakeBackend(Arc::clone(fake))),
    ));
    let cfg = SupervisorConfig {
        connect_timeout: Duration::from_secs(20),
        stall_timeout: Duration::from_secs(5),
        backoff: BackoffConfig {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(500),
            stable_after: Duration::from_secs(30),
        },
        probe_every: Duration::from_millis(250),
        first_epoch: 0,
        failed_retry: Duration::from_secs(300),
    };
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let h = spawn_supervisor("usb".into(), source, cfg, SharedSink::default(), clock);
    let log = StateLog::record(&h.stats());
    let errors = Errors::record(h.stats());
    (h, log, errors)
}

/// The stage's step as the timeout names it.
fn step(stage: Stage) -> String {
    match stage {
        Stage::Open => format!("opening {PATH}"),
        Stage::Configure => format!("setting up {PATH} (format, size and frame rate)"),
        Stage::Start => format!("setting up capture buffers on {PATH}"),
        Stage::FirstBuffer => format!("waiting for the first frame from {PATH}"),
    }
}

/// One stage: hang there, time out with the step named, refuse a second thread while stuck,
/// go live once the driver answers.
async fn hang_then_recover(stage: Stage) {
    let fake = Fake::new(Some(stage), false);
    let (h, log, errors) = start(&fake);
    let stats = h.stats();
    // Let the supervisor start the attempt (and its thread), then hold virtual time still
    // until the thread is stuck where this test wants it.
    tokio::task::yield_now().await;
    fake.wait_reached(stage);

    assert!(wait_until(Duration::from_secs(60), || !errors.get().is_empty()).await);
    assert_eq!(
        errors.get()[0],
        format!(
            "timed out: no video within 20.0 s of connecting, still {}",
            step(stage)
        ),
        "{stage:?}"
    );

    // The thread is still inside the driver: the next attempts fail at once and say so.
    let stuck = format!(
        "the last capture of {PATH} is still stuck in the camera driver ({}); unplug and \
         replug the camera, or restart the box",
        step(stage)
    );
    assert!(
        wait_until(Duration::from_secs(60), || stats.last_error().as_deref()
            == Some(stuck.as_str()))
        .await,
        "{stage:?}: {:?}",
        stats.last_error()
    );
    assert!(stats.reconnects() >= 1);
    assert_ne!(stats.state(), StreamState::Live);

    // The driver answers (with an error): the stuck thread ends and a new attempt goes live.
    tokio::time::resume();
    fake.release();
    assert!(
        wait_until(Duration::from_secs(30), || stats.state()
            == StreamState::Live)
        .await,
        "{stage:?}: never live again: {:?}, last error {:?}",
        log.states(),
        stats.last_error()
    );
    assert_eq!(
        fake.max_inside.load(Ordering::SeqCst),
        1,
        "{stage:?}: a second capture thread ran beside the stuck one"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_open_that_hangs_times_out_and_says_so() {
    hang_then_recover(Stage::Open).await;
}

#[tokio::test(start_paused = true)]
async fn a_format_negotiation_that_hangs_times_out_and_says_so() {
    hang_then_recover(Stage::Configure).await;
}

#[tokio::test(start_paused = true)]
async fn a_buffer_set_up_that_hangs_times_out_and_says_so() {
    hang_then_recover(Stage::Start).await;
}

#[tokio::test(start_paused = true)]
async fn a_first_dequeue_that_hangs_times_out_and_says_so() {
    hang_then_recover(Stage::FirstBuffer).await;
}

#[tokio::test(start_paused = true)]
async fn frames_without_a_keyframe_time_out_and_say_so() {
    let fake = Fake::new(None, true);
    let (h, _log, errors) = start(&fake);
    let stats = h.stats();
    tokio::task::yield_now().await;
    // Frames are in the channel before virtual time may run: the source sees them first.
    fake.wait_delivered(2);
    assert!(wait_until(Duration::from_secs(60), || !errors.get().is_empty()).await);
    assert_eq!(
        errors.get()[0],
        format!(
            "timed out: no video within 20.0 s of connecting, still waiting for a keyframe: \
             frames from {PATH} arrive, but none can start a picture"
        )
    );
    assert_eq!(stats.frames(), 0);
    h.stop().await;
}
