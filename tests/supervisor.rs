//! The supervisor's state machine: scripted fake sources under tokio's paused clock (exact,
//! deterministic timings), then a real RTSP server that is killed, restarted and paused.

mod support;

use edgecam::backoff::BackoffConfig;
use edgecam::clock::{Clock, ManualClock, SystemClock};
use edgecam::config::schema::Transport;
use edgecam::frame::{Codec, FrameInfo};
use edgecam::ingest::rtsp::RtspSource;
use edgecam::ingest::stats::StreamState::{self, Backoff, Connecting, Failed, Live, Stalled};
use edgecam::ingest::supervisor::{
    KEYFRAME_WAIT_CAP, SupervisorConfig, SupervisorHandle, spawn_supervisor,
};
use edgecam::ingest::{Source, SourceCtx, SourceError, Waiting};
use futures::future::BoxFuture;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{RtspServer, ServerOpts, SharedSink, StateLog, wait_until};
use tokio::time::Instant;

/// One step of a scripted attempt.
#[derive(Debug, Clone)]
enum Step {
    /// Push `n` frames, one every `every` (the first is a keyframe).
    Frames(u32, Duration),
    /// Push `n` frames, one every `every`, every `gop`-th of them a keyframe (the first too).
    Gop(u32, Duration, u32),
    /// Say what the attempt waits for (a network source's part of the session).
    Wait(Waiting),
    /// Never return (a camera that keeps the session open but sends nothing).
    Hang,
    /// Name the step the attempt is in (what a connect timeout then reports).
    Phase(&'static str),
    /// Say which transport the session runs over.
    Transport(&'static str),
    /// Sleep (a session set-up that takes time).
    Pause(Duration),
    /// Return this error.
    Fail(fn(String) -> SourceError, &'static str),
    /// Panic with this message.
    Panic(&'static str),
}

/// A source that plays one script per attempt (the last script repeats).
struct Scripted {
    /// Scripts for the coming attempts.
    scripts: Mutex<VecDeque<Vec<Step>>>,
    /// Attempts started.
    attempts: AtomicU32,
    /// Attempt futures dropped or finished (proves cancellation).
    ended: Arc<AtomicU32>,
}

impl Scripted {
    fn new(scripts: Vec<Vec<Step>>) -> Arc<Scripted> {
        Arc::new(Scripted {
            scripts: Mutex::new(scripts.into()),
            attempts: AtomicU32::new(0),
            ended: Arc::new(AtomicU32::new(0)),
        })
    }
}

/// Counts itself into `ended` when the attempt's future goes away, however it goes.
struct EndGuard(Arc<AtomicU32>);
impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Source for Scripted {
    fn run<'a>(&'a self, ctx: SourceCtx<'a>) -> BoxFuture<'a, Result<(), SourceError>> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let script = {
            let mut q = self.scripts.lock().expect("script lock");
            if q.len() > 1 {
                q.pop_front().unwrap_or_default()
            } else {
                q.front().cloned().unwrap_or_default()
            }
        };
        let guard = EndGuard(Arc::clone(&self.ended));
        Box::pin(async move {
            let _guard = guard;
            let mut pts = 0;
            for step in script {
                let (n, every, gop) = match step {
                    Step::Frames(n, every) => (n, every, u32::MAX),
                    Step::Gop(n, every, gop) => (n, every, gop),
                    _ => (0, Duration::ZERO, 1),
                };
                match step {
                    Step::Frames(..) | Step::Gop(..) => {
                        for i in 0..n {
                            let info = FrameInfo {
                                codec: Codec::H264,
                                keyframe: i % gop == 0,
                                params_changed: i % gop == 0,
                                pts_us: pts,
                                recv_mono_ns: ctx.clock.mono_ns(),
                                recv_wall_us: ctx.clock.wall_us(),
                                epoch: ctx.epoch,
                            };
                            pts += 40_000;
                            let _ = ctx
                                .sink
                                .push_frame(&info, &[&[0, 0, 0, 1, 0x65], &[1, 2, 3]]);
                            tokio::time::sleep(every).await;
                        }
                    }
                    Step::Hang => futures::future::pending::<()>().await,
                    Step::Wait(w) => ctx.phase.set_waiting(w),
                    Step::Phase(step) => ctx.phase.set(step),
                    Step::Transport(t) => ctx.phase.set_transport(t),
                    Step::Pause(d) => tokio::time::sleep(d).await,
                    Step::Fail(kind, msg) => return Err(kind(msg.to_string())),
                    Step::Panic(msg) => panic!("{msg}"),
                }
            }
            Ok(())
        })
    }
}

fn paused_cfg() -> SupervisorConfig {
    SupervisorConfig {
        connect_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_secs(2),
        backoff: BackoffConfig {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(4),
            stable_after: Duration::from_secs(30),
        },
        probe_every: Duration::from_millis(250),
        first_epoch: 0,
        failed_retry: Duration::from_secs(300),
    }
}

fn start(
    source: Arc<dyn Source>,
    cfg: SupervisorConfig,
) -> (SupervisorHandle, SharedSink, StateLog) {
    let sink = SharedSink::default();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let h = spawn_supervisor("fake".into(), source, cfg, sink.clone(), clock);
    let log = StateLog::record(&h.stats());
    (h, sink, log)
}

/// Time of the `n`-th (0-based) occurrence of `state` in the log.
fn nth(log: &StateLog, state: StreamState, n: usize) -> Instant {
    let ev = log.events.lock().expect("log lock");
    ev.iter()
        .filter(|e| e.0 == state)
        .nth(n)
        .map(|e| e.1)
        .unwrap_or_else(|| {
            panic!(
                "no {state} #{n} in {:?}",
                ev.iter().map(|e| e.0).collect::<Vec<_>>()
            )
        })
}

#[tokio::test(start_paused = true)]
async fn live_then_stall_is_detected_at_the_stall_timeout_and_retried() {
    let src = Scripted::new(vec![
        vec![Step::Frames(25, Duration::from_millis(40)), Step::Hang],
        vec![Step::Frames(1000, Duration::from_millis(40))],
    ]);
    let t0 = Instant::now();
    let (h, sink, log) = start(src.clone(), paused_cfg());
    let stats = h.stats();
    assert!(
        wait_until(Duration::from_secs(30), || stats.epoch() == 2
            && stats.state() == Live)
        .await
    );

    // Attempt 1: live at once, last frame at 24 × 40 ms = 960 ms, stalled 2 s later.
    assert_eq!(
        log.find(0, &[Live, Stalled, Backoff, Connecting, Live]),
        Some(0),
        "{:?}",
        log.states()
    );
    assert_eq!(
        nth(&log, Stalled, 0) - t0,
        Duration::from_millis(960 + 2000)
    );
    // First backoff delay is within [0, base].
    let gap = nth(&log, Connecting, 0) - nth(&log, Backoff, 0);
    assert!(gap <= Duration::from_millis(500), "{gap:?}");
    assert_eq!(
        src.ended.load(Ordering::SeqCst),
        1,
        "the hung attempt was dropped"
    );

    let s = stats.snapshot();
    assert_eq!((s.stalls, s.reconnects, s.panics), (1, 1, 0));
    assert_eq!(
        s.last_error.as_deref(),
        Some("stream stalled: no frame for 2.0 s")
    );
    // Frames of the second attempt carry epoch 2 and start with a keyframe.
    let frames = sink.snapshot();
    let second = frames
        .iter()
        .position(|f| f.meta.info.epoch == 2)
        .expect("epoch 2 frames");
    assert_eq!(second, 25);
    assert!(frames[second].meta.info.keyframe);
}

/// `live` and the session's transport reach the status together: a page that sees the
/// stream live also sees how it came (they were a supervisor beat apart).
#[tokio::test(start_paused = true)]
async fn the_transport_is_in_the_status_as_soon_as_the_stream_is_live() {
    // The set-up takes 100 ms: the supervisor's first look at the attempt came before it.
    let src = Scripted::new(vec![vec![
        Step::Pause(Duration::from_millis(100)),
        Step::Transport("udp"),
        Step::Frames(1, Duration::ZERO),
        Step::Hang,
    ]]);
    let (h, _sink, _log) = start(src, paused_cfg());
    let stats = h.stats();
    // Well before the supervisor's next beat (a second).
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(stats.state(), Live);
    assert_eq!(stats.snapshot().transport, Some("udp"));
}

#[tokio::test(start_paused = true)]
async fn no_first_frame_within_the_connect_timeout_is_a_retried_failure() {
    let src = Scripted::new(vec![vec![Step::Hang]]);
    let t0 = Instant::now();
    let (h, _sink, log) = start(src.clone(), paused_cfg());
    let stats = h.stats();
    assert!(wait_until(Duration::from_secs(60), || stats.reconnects() >= 3).await);
    assert_eq!(nth(&log, Backoff, 0) - t0, Duration::from_secs(5));
    assert_eq!(
        log.find(0, &[Backoff, Connecting, Backoff]),
        Some(0),
        "{:?}",
        log.states()
    );
    assert!(!log.states().contains(&Live) && !log.states().contains(&Stalled));
    assert_eq!(
        stats.last_error().as_deref(),
        Some("timed out: no video within 5.0 s of connecting")
    );
    assert_eq!(stats.stalls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_connect_timeout_names_the_step_the_source_was_in() {
    let src = Scripted::new(vec![vec![
        Step::Phase("opening /dev/video0"),
        Step::Phase("waiting for the first frame from /dev/video0"),
        Step::Hang,
    ]]);
    let t0 = Instant::now();
    let (h, _sink, log) = start(src.clone(), paused_cfg());
    let stats = h.stats();
    assert!(wait_until(Duration::from_secs(60), || stats.reconnects() >= 1).await);
    assert_eq!(nth(&log, Backoff, 0) - t0, Duration::from_secs(5));
    assert_eq!(
        stats.last_error().as_deref(),
        Some(
            "timed out: no video within 5.0 s of connecting, still waiting for the first \
             frame from /dev/video0"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_with_full_jitter_up_to_the_cap() {
    let src = Scripted::new(vec![vec![Step::Fail(
        SourceError::Connect,
        "connection to cam:554 refused (nothing listening)",
    )]]);
    let (h, _sink, log) = start(src.clone(), paused_cfg());
    let stats = h.stats();
    assert!(wait_until(Duration::from_secs(300), || stats.reconnects() >= 12).await);
    // Delay n is in [0, min(4 s, 0.5 s · 2^n)]; the failures are instant, so the delay is the
    // time from entering backoff to the next connecting.
    for n in 0..12 {
        let delay = nth(&log, Connecting, n) - nth(&log, Backoff, n);
        let ceiling = Duration::from_millis(500 * (1 << n.min(3)));
        assert!(delay <= ceiling, "delay {n} = {delay:?} > {ceiling:?}");
    }
    assert!(matches!(stats.state(), Backoff | Connecting));
    assert_eq!(
        stats.last_error().as_deref(),
        Some("connection to cam:554 refused (nothing listening)")
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_source_is_restarted_and_counted() {
    let src = Scripted::new(vec![
        vec![Step::Panic("decoder exploded")],
        vec![
            Step::Frames(3, Duration::from_millis(40)),
            Step::Panic("again"),
        ],
        vec![Step::Frames(1000, Duration::from_millis(40))],
    ]);
    let (h, sink, _log) = start(src.clone(), paused_cfg());
    let stats = h.stats();
    assert!(
        wait_until(Duration::from_secs(30), || stats.epoch() == 3
            && sink.len() > 10)
        .await
    );
    let s = stats.snapshot();
    assert_eq!((s.panics, s.reconnects, s.state), (2, 2, Live));
    assert_eq!(s.last_error.as_deref(), Some("source panicked: again"));
    // The sink survived both panics: the frames of all attempts are in it, in sequence.
    let frames = sink.snapshot();
    assert!(
        frames
            .windows(2)
            .all(|w| w[1].meta.seq == w[0].meta.seq + 1)
    );
    assert_eq!(frames[0].meta.info.epoch, 2);
    assert_eq!(frames[3].meta.info.epoch, 3);
}

#[tokio::test(start_paused = true)]
async fn a_config_error_parks_in_failed_and_the_loop_keeps_beating() {
    let src = Scripted::new(vec![vec![Step::Fail(
        SourceError::Config,
        "stream cam has no url",
    )]]);
    let (h, _sink, log) = start(src.clone(), paused_cfg());
    let stats = h.stats();
    assert!(wait_until(Duration::from_secs(5), || stats.state() == Failed).await);
    let beats = stats.beats();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        stats.beats() >= beats + 9,
        "beats {beats} -> {}",
        stats.beats()
    );
    assert_eq!(src.attempts.load(Ordering::SeqCst), 1, "not retried");
    assert_eq!(log.states(), vec![Failed]);
}

/// The supervisor config of the `failed` tests: a 300 s retry of refused streams.
fn failing_cfg() -> SupervisorConfig {
    SupervisorConfig {
        failed_retry: Duration::from_secs(300),
        ..paused_cfg()
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_stream_is_failed_and_retried_only_after_the_long_interval() {
    let src = Scripted::new(vec![vec![Step::Fail(
        SourceError::Rejected,
        "the camera refused the user name or password",
    )]]);
    let t0 = Instant::now();
    let (h, _sink, log) = start(src.clone(), failing_cfg());
    let stats = h.stats();
    assert!(wait_until(Duration::from_secs(5), || stats.state() == Failed).await);
    let s = stats.snapshot();
    assert_eq!(
        s.last_error.as_deref(),
        Some("the camera refused the user name or password")
    );
    // The stream clock's wall time (a ManualClock that paused tokio time does not move).
    assert_eq!(s.last_error_at_us, Some(1_700_000_000_000_000));
    assert_eq!(s.retry_at_us, Some(1_700_000_000_000_000 + 300_000_000));
    // One login in the first 299 s, however long the camera keeps refusing.
    tokio::time::sleep(Duration::from_secs(299)).await;
    assert_eq!(src.attempts.load(Ordering::SeqCst), 1, "{:?}", log.states());
    assert!(stats.beats() >= 299, "the loop kept beating while failed");
    assert!(
        wait_until(Duration::from_secs(10), || src
            .attempts
            .load(Ordering::SeqCst)
            == 2)
        .await
    );
    assert_eq!(nth(&log, Connecting, 0) - t0, Duration::from_secs(300));
    assert!(wait_until(Duration::from_secs(1), || stats.state() == Failed).await);
    assert_eq!(log.states(), vec![Failed, Connecting, Failed]);
    assert_eq!(stats.reconnects(), 1);
}

#[tokio::test(start_paused = true)]
async fn test_connection_retries_a_failed_stream_at_once() {
    let src = Scripted::new(vec![
        vec![Step::Fail(
            SourceError::Rejected,
            "no stream at /nope (404)",
        )],
        vec![Step::Frames(1000, Duration::from_millis(40))],
    ]);
    let (h, _sink, log) = start(src.clone(), failing_cfg());
    let stats = h.stats();
    assert!(wait_until(Duration::from_secs(5), || stats.state() == Failed).await);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(src.attempts.load(Ordering::SeqCst), 1);
    let asked = Instant::now();
    stats.retry_now();
    assert!(wait_until(Duration::from_secs(1), || stats.state() == Live).await);
    assert_eq!(nth(&log, Connecting, 0), asked, "retried at once");
    let s = stats.snapshot();
    // Live again: the error is kept as history, with its time, and no retry is planned.
    assert_eq!((s.state, s.retry_at_us), (Live, None));
    assert_eq!(s.last_error.as_deref(), Some("no stream at /nope (404)"));
    assert!(s.last_error_at_us.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_retry_asked_for_while_live_does_not_cut_a_later_failed_wait_short() {
    let src = Scripted::new(vec![
        vec![Step::Frames(10, Duration::from_millis(40))],
        vec![Step::Fail(SourceError::Rejected, "401")],
    ]);
    let (h, _sink, _log) = start(src.clone(), failing_cfg());
    let stats = h.stats();
    assert!(wait_until(Duration::from_secs(5), || stats.state() == Live).await);
    stats.retry_now();
    assert!(wait_until(Duration::from_secs(10), || stats.state() == Failed).await);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(src.attempts.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn each_wait_of_a_session_has_its_own_sentence() {
    for (wait, starts) in [
        (
            Waiting::Answer,
            "no RTSP answer from the camera within 5.0 s",
        ),
        (
            Waiting::Packets,
            "the camera set up the session but sent no video packets within 5.0 s",
        ),
    ] {
        let src = Scripted::new(vec![vec![Step::Wait(wait), Step::Hang]]);
        let t0 = Instant::now();
        let (h, _sink, log) = start(src, paused_cfg());
        let stats = h.stats();
        assert!(
            wait_until(Duration::from_secs(4), || stats.snapshot().waiting_for
                == Some(wait.as_str()))
            .await
        );
        assert!(wait_until(Duration::from_secs(10), || stats.reconnects() >= 1).await);
        assert_eq!(nth(&log, Backoff, 0) - t0, Duration::from_secs(5));
        let e = stats.last_error().expect("an error");
        assert!(e.starts_with(starts), "{e}");
    }
}

#[tokio::test(start_paused = true)]
async fn video_without_a_keyframe_waits_two_measured_gops() {
    // Attempt 1: a 4 s GOP (100 frames at 40 ms), measured, then the camera freezes.
    // Attempt 2: frames arrive but no keyframe: the wait is 2 x 4 s, not the 5 s timeout.
    let src = Scripted::new(vec![
        vec![Step::Gop(250, Duration::from_millis(40), 100), Step::Hang],
        vec![Step::Wait(Waiting::Keyframe), Step::Hang],
    ]);
    let (h, _sink, log) = start(src, paused_cfg());
    let stats = h.stats();
    assert!(wait_until(Duration::from_secs(60), || stats.reconnects() >= 2).await);
    assert_eq!(stats.keyframe_interval_ms(), Some(4000));
    let waited = nth(&log, Backoff, 1) - nth(&log, Connecting, 0);
    assert_eq!(waited, Duration::from_secs(8), "{:?}", log.states());
    let e = stats.last_error().expect("an error");
    assert_eq!(
        e,
        "connected and video arrives, but no keyframe came within 8.0 s (its keyframe \
         interval was 4.0 s); set the camera's keyframe (I-frame) interval to 1-2 s"
    );
}

#[tokio::test(start_paused = true)]
async fn video_without_a_keyframe_from_an_unmeasured_camera_waits_the_cap() {
    let src = Scripted::new(vec![vec![Step::Wait(Waiting::Keyframe), Step::Hang]]);
    let t0 = Instant::now();
    let (h, _sink, log) = start(src, paused_cfg());
    let stats = h.stats();
    assert!(wait_until(Duration::from_secs(60), || stats.reconnects() >= 1).await);
    assert_eq!(nth(&log, Backoff, 0) - t0, KEYFRAME_WAIT_CAP);
}

#[tokio::test(start_paused = true)]
async fn the_loop_beats_every_second_while_waiting_for_a_camera() {
    let mut cfg = paused_cfg();
    cfg.connect_timeout = Duration::from_secs(3600);
    let src = Scripted::new(vec![vec![Step::Hang]]);
    let (h, _sink, _log) = start(src, cfg);
    let stats = h.stats();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let beats = stats.beats();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        stats.beats() >= beats + 9,
        "beats {beats} -> {}",
        stats.beats()
    );
    assert_eq!(stats.state(), Connecting);
}

#[tokio::test(start_paused = true)]
async fn stopping_one_supervisor_drops_its_source_and_leaves_the_other_running() {
    let a = Scripted::new(vec![vec![Step::Frames(100_000, Duration::from_millis(40))]]);
    let b = Scripted::new(vec![vec![Step::Frames(100_000, Duration::from_millis(40))]]);
    let (ha, _sa, _) = start(a.clone(), paused_cfg());
    let (hb, sb, _) = start(b.clone(), paused_cfg());
    tokio::time::sleep(Duration::from_secs(1)).await;
    ha.stop().await;
    assert_eq!(
        a.ended.load(Ordering::SeqCst),
        1,
        "stopped attempt's future was dropped"
    );
    let before = sb.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(sb.len() >= before + 20);
    assert_eq!(hb.stats().state(), Live);
    drop(hb);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        b.ended.load(Ordering::SeqCst),
        1,
        "dropping the handle stops the stream"
    );
}

/// A camera whose port the test opens and closes. Closed: attempts fail as unreachable and
/// the probe says no. Open: the probe says yes, and an attempt fails with an RTSP error while
/// `fails_when_open` lasts, then sends frames until the port closes again.
struct Switchable {
    /// The port accepts connections.
    open: AtomicBool,
    /// RTSP failures still to give while open (`u32::MAX`: forever).
    fails_when_open: AtomicU32,
    /// Attempts started.
    attempts: AtomicU32,
    /// Probes made.
    probes: AtomicU32,
}

impl Switchable {
    fn new(open: bool, fails_when_open: u32) -> Arc<Switchable> {
        Arc::new(Switchable {
            open: AtomicBool::new(open),
            fails_when_open: AtomicU32::new(fails_when_open),
            attempts: AtomicU32::new(0),
            probes: AtomicU32::new(0),
        })
    }
}

impl Source for Switchable {
    fn run<'a>(&'a self, ctx: SourceCtx<'a>) -> BoxFuture<'a, Result<(), SourceError>> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if !self.open.load(Ordering::SeqCst) {
                return Err(SourceError::Unreachable(
                    "connection to cam:554 refused (nothing listening)".into(),
                ));
            }
            let left = self.fails_when_open.load(Ordering::SeqCst);
            if left > 0 {
                if left != u32::MAX {
                    self.fails_when_open.store(left - 1, Ordering::SeqCst);
                }
                return Err(SourceError::Connect(
                    "camera answered RTSP status 503: Service Unavailable".into(),
                ));
            }
            let mut pts = 0;
            while self.open.load(Ordering::SeqCst) {
                let info = FrameInfo {
                    codec: Codec::H264,
                    keyframe: pts == 0,
                    params_changed: pts == 0,
                    pts_us: pts,
                    recv_mono_ns: ctx.clock.mono_ns(),
                    recv_wall_us: ctx.clock.wall_us(),
                    epoch: ctx.epoch,
                };
                pts += 40_000;
                let _ = ctx.sink.push_frame(&info, &[&[0, 0, 0, 1, 0x65]]);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            Err(SourceError::Stream(
                "camera at cam:554 ended the session".into(),
            ))
        })
    }

    fn probe(&self) -> Option<BoxFuture<'_, bool>> {
        self.probes.fetch_add(1, Ordering::SeqCst);
        Some(Box::pin(std::future::ready(
            self.open.load(Ordering::SeqCst),
        )))
    }
}

/// The reconnect tests' config: a 30 s backoff cap (what the daemon uses), probes every
/// 250 ms.
fn probing_cfg() -> SupervisorConfig {
    SupervisorConfig {
        backoff: BackoffConfig {
            cap: Duration::from_secs(30),
            ..paused_cfg().backoff
        },
        ..paused_cfg()
    }
}

/// Supervises `cam` (closed) for 20 s of refused attempts, by which time the backoff
/// ceiling has grown to 30 s, then opens it. Returns the attempts made while it was closed
/// and how long after it opened the stream went live.
async fn live_after_reopening(cam: &Arc<Switchable>, cfg: SupervisorConfig) -> (u32, Duration) {
    let (h, _sink, log) = start(cam.clone(), cfg);
    let stats = h.stats();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let tried = cam.attempts.load(Ordering::SeqCst);
    let back = Instant::now();
    cam.open.store(true, Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(120), || stats.state() == Live).await,
        "{:?}",
        stats.snapshot()
    );
    (tried, nth(&log, Live, 0) - back)
}

#[tokio::test(start_paused = true)]
async fn a_camera_that_returns_is_retried_within_one_probe_interval() {
    let cam = Switchable::new(false, 0);
    let (tried, waited) = live_after_reopening(&cam, probing_cfg()).await;
    assert!(tried >= 3, "{tried}");
    assert!(
        waited <= Duration::from_millis(250),
        "live {waited:?} after the return"
    );
    assert!(
        cam.probes.load(Ordering::SeqCst) >= 10,
        "probed while it was down"
    );
    // Probes are not attempts: the backoff still spaced the real ones.
    assert!(
        cam.attempts.load(Ordering::SeqCst) < 20,
        "{}",
        cam.attempts.load(Ordering::SeqCst)
    );
}

#[tokio::test(start_paused = true)]
async fn a_camera_that_answers_but_fails_is_not_probed_and_waits_its_backoff() {
    let cam = Switchable::new(true, u32::MAX);
    let (h, _sink, log) = start(cam.clone(), probing_cfg());
    let stats = h.stats();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(cam.probes.load(Ordering::SeqCst), 0);
    // Probing would allow four attempts a second; full-jitter backoff to 30 s gives a handful.
    let attempts = cam.attempts.load(Ordering::SeqCst);
    assert!((2..40).contains(&attempts), "{attempts}");
    assert!(!log.states().contains(&Live));
    assert_eq!(
        stats.last_error().as_deref(),
        Some("camera answered RTSP status 503: Service Unavailable")
    );
}

#[tokio::test(start_paused = true)]
async fn after_the_camera_answers_again_the_backoff_starts_from_its_base() {
    // Back after 20 s, but its RTSP service needs one more try (a camera still booting).
    let cam = Switchable::new(false, 1);
    let (_, waited) = live_after_reopening(&cam, probing_cfg()).await;
    // One probe interval to notice, then the 503, then at most the base delay (0.5 s),
    // not the 30 s the ceiling had grown to.
    assert!(
        waited <= Duration::from_millis(250 + 500),
        "live {waited:?} after the return"
    );
    assert_eq!(cam.fails_when_open.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn without_probing_an_unreachable_camera_waits_out_its_backoff() {
    let cam = Switchable::new(false, 0);
    let cfg = SupervisorConfig {
        probe_every: Duration::ZERO,
        ..probing_cfg()
    };
    // Live again when its backoff delay (anything up to 30 s) is over.
    live_after_reopening(&cam, cfg).await;
    assert_eq!(cam.probes.load(Ordering::SeqCst), 0);
}

// ---- against a real RTSP server ----

fn real_cfg() -> SupervisorConfig {
    SupervisorConfig {
        connect_timeout: Duration::from_secs(4),
        stall_timeout: Duration::from_secs(1),
        backoff: BackoffConfig {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(1),
            stable_after: Duration::from_secs(30),
        },
        probe_every: Duration::from_millis(250),
        first_epoch: 0,
        failed_retry: Duration::from_secs(300),
    }
}

fn supervise_real(id: &str, url: &str) -> (SupervisorHandle, SharedSink, StateLog) {
    // Supervisor logs go to the test's output, shown when a test fails.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let source = RtspSource::new(url, Transport::Tcp).expect("valid test url");
    let sink = SharedSink::default();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let h = spawn_supervisor(id.into(), Arc::new(source), real_cfg(), sink.clone(), clock);
    let log = StateLog::record(&h.stats());
    (h, sink, log)
}

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_frozen_killed_and_restarted_on_the_same_port() {
    let mut a = RtspServer::start(ServerOpts {
        mounts: 2,
        ..ServerOpts::default()
    });
    let other = RtspServer::start(ServerOpts::default());
    let streams: Vec<_> = (0..2)
        .map(|i| supervise_real(&format!("a{i}"), &a.url(i)))
        .collect();
    let (bh, _bsink, _) = supervise_real("other", &other.url(0));
    let b = bh.stats();
    for (h, _, _) in &streams {
        let s = h.stats();
        assert!(
            wait_until(DEADLINE, || s.state() == Live).await,
            "{:?}",
            s.snapshot()
        );
    }
    assert!(wait_until(DEADLINE, || b.state() == Live).await);

    // 1. Frozen server (sockets open, nothing sent): stalled after the stall timeout, then backoff.
    let frozen = Instant::now();
    let b_at_freeze = b.frames();
    a.freeze();
    for (h, _, log) in &streams {
        assert!(
            wait_until(DEADLINE, || log.find(0, &[Stalled, Backoff]).is_some()).await,
            "{} states {:?} {:?}",
            h.stats().id(),
            log.states(),
            h.stats().snapshot()
        );
        eprintln!(
            "{}: freeze -> stalled {:?}",
            h.stats().id(),
            nth(log, Stalled, 0) - frozen
        );
        assert_eq!(h.stats().stalls(), 1);
        assert_eq!(
            h.stats().last_error().as_deref(),
            Some("stream stalled: no frame for 1.0 s")
        );
    }
    assert!(
        b.frames() > b_at_freeze,
        "the other server's stream kept going"
    );

    // 2. Killed server: the kernel closes the sessions; attempts are refused and retried.
    let killed_at: Vec<usize> = streams
        .iter()
        .map(|(_, _, log)| log.states().len())
        .collect();
    a.kill();
    for (h, _, _) in &streams {
        let s = h.stats();
        assert!(
            wait_until(DEADLINE, || s
                .last_error()
                .is_some_and(|e| e.ends_with("refused (nothing listening)")))
            .await,
            "{:?}",
            s.snapshot()
        );
    }

    // 3. Restarted on the same port: live again within cap + connect time.
    let b_at_restart = b.frames();
    let restarted = Instant::now();
    a.restart();
    for ((h, sink, log), from) in streams.iter().zip(killed_at) {
        let s = h.stats();
        assert!(
            wait_until(DEADLINE, || log.states()[from..].contains(&Live)).await,
            "{} did not come back: {:?} {:?}",
            s.id(),
            log.states(),
            s.snapshot()
        );
        let back = log
            .events
            .lock()
            .expect("log")
            .iter()
            .rev()
            .find(|e| e.0 == Live)
            .map(|e| e.1)
            .expect("live");
        eprintln!(
            "{}: restart -> live {:?}, reconnects {}",
            s.id(),
            back - restarted,
            s.reconnects()
        );
        // The first frame of the new session starts a new epoch with a decodable keyframe.
        let frames = sink.snapshot();
        let epoch = s.epoch();
        assert!(epoch > 2);
        let first_new = frames
            .iter()
            .find(|f| f.meta.info.epoch == epoch)
            .expect("new-epoch frame");
        assert!(first_new.meta.info.keyframe && first_new.meta.info.params_changed);
        assert!(first_new.nal_types.contains(&7) && first_new.nal_types.contains(&5));
    }
    assert!(b.frames() > b_at_restart);
    let bs = b.snapshot();
    assert_eq!((bs.state, bs.reconnects, bs.stalls), (Live, 0, 0), "{bs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_ends_the_session_at_once() {
    let mut server = RtspServer::start(ServerOpts::default());
    let (h, _sink, log) = supervise_real("killed", &server.url(0));
    let s = h.stats();
    assert!(
        wait_until(DEADLINE, || s.state() == Live && s.frames() > 5).await,
        "{:?}",
        s.snapshot()
    );
    server.kill();
    assert!(wait_until(DEADLINE, || s.reconnects() >= 1).await);
    eprintln!("error after kill: {:?}", s.last_error());
    // A closed TCP connection is noticed without waiting for the stall timeout.
    assert_eq!(log.find(0, &[Live, Backoff]), Some(0), "{:?}", log.states());
    assert_eq!(s.stalls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_stalls_the_stream_and_resuming_brings_it_back() {
    let mut server = RtspServer::start(ServerOpts::default());
    let (h, _sink, log) = supervise_real("paused", &server.url(0));
    let s = h.stats();
    assert!(
        wait_until(DEADLINE, || s.state() == Live).await,
        "{:?}",
        s.snapshot()
    );
    server.pause();
    assert!(
        wait_until(DEADLINE, || log.find(0, &[Stalled, Backoff]).is_some()).await,
        "{:?}",
        log.states()
    );
    // While paused the server accepts connections but sends nothing (it cannot even answer
    // DESCRIBE before its paused pipeline prerolls): attempts time out, saying what was
    // missing, and are retried.
    assert!(
        wait_until(DEADLINE, || s.last_error().is_some_and(|e| e
            .starts_with("no RTSP answer from the camera within 4.0 s")
            || e.contains("sent no video packets within 4.0 s")))
        .await,
        "{:?}",
        s.snapshot()
    );
    server.resume();
    let stalled_at = log.find(0, &[Stalled]).expect("stalled");
    assert!(
        wait_until(DEADLINE, || log.states()[stalled_at..].contains(&Live)).await,
        "{:?} {:?}",
        log.states(),
        s.snapshot()
    );
}
