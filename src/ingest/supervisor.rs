//! One task per stream that keeps its source running: timeouts, backoff, panics, statistics.
//!
//! The loop: bump the epoch, run one attempt ([`Source::run`]), and when it ends for any
//! reason wait a backoff delay and start over. An attempt is raced (`tokio::select!`) against
//! a watcher that enforces two deadlines:
//!
//! * connect timeout: attempt start → first frame (`connecting`);
//! * stall timeout: last frame → now, once `live`. On expiry the state is `stalled`, the
//!   attempt's future is dropped (sources are cancel-safe by contract) and the state becomes
//!   `backoff`.
//!
//! A [`SourceError::Config`] puts the stream in `failed`, where it stays (still beating) until
//! the supervisor is stopped; a config change replaces the supervisor. A
//! [`SourceError::Rejected`] (wrong credentials, no such stream, unsupported codec) is
//! `failed` too, but retried after [`SupervisorConfig::failed_retry`] (minutes) or at once
//! when [`StreamStats::retry_now`] is called (*Test connection*): never in a tight loop,
//! because cameras lock an account after a few bad logins.
//!
//! # The first keyframe
//!
//! A source that says what it waits for ([`Waiting`]) gets one of three sentences when the
//! connect timeout passes: no RTSP answer, no packets, or video without a keyframe. The last
//! wait is longer: frames before the first keyframe cannot be shown, and a camera with a
//! long GOP sends P-frames for seconds before it. It lasts two of the camera's keyframe
//! intervals as measured on its earlier keyframes (at least the connect timeout, at most
//! [`KEYFRAME_WAIT_CAP`]), or the cap while the interval is still unknown.
//!
//! # Back as soon as the camera is
//!
//! The backoff ceiling grows while a camera is gone (to 30 s), so a camera back after a
//! reboot could wait that long. When an attempt ends [`SourceError::Unreachable`] (nothing
//! answered at its address), the backoff wait probes the camera every
//! [`SupervisorConfig::probe_every`] ([`Source::probe`]: for RTSP a bare TCP connect) and the
//! next attempt starts as soon as a probe succeeds. The expensive attempts stay rate-limited:
//! a camera that answers but fails (401, 503, no video) is never probed, only retried after
//! its backoff; and the first failure of a camera that answers again after being unreachable
//! restarts its ladder from the base delay, so a camera still booting is retried soon.
//!
//! # Ownership of the sink, and panics
//!
//! The supervisor task owns the stream's writer `W` for its whole life. Each attempt borrows
//! it through a counting wrapper, and the attempt runs *in the supervisor's own task* under
//! [`FutureExt::catch_unwind`] (with `AssertUnwindSafe`). A panic in the source therefore
//! unwinds only the attempt's future; the writer is still here for the next attempt, with no
//! `Arc<Mutex<_>>` on the per-frame path and no hand-over through a `JoinHandle` (which would
//! lose the writer on a panic). This is sound for the ring because a source can only panic
//! between `push_frame` calls or inside its own code: `push_frame` is synchronous, so a
//! frame is either fully stored or not at all. A panic *inside* the sink would be a ring bug;
//! it is caught and counted the same way. What catch_unwind cannot do is preempt a source
//! that blocks its thread: that is what the liveness beat (`last_beat_mono_ns`, bumped at
//! least once a second in every state) is for, for an outside watchdog to see
//! ([`crate::health`]). Release builds set `panic = "abort"`, so there a panicking source ends
//! the whole process (systemd restarts it); the catch_unwind above works in debug and test
//! builds only.
//!
//! Stopping: [`SupervisorHandle::stop`] or dropping the handle aborts the task; that drops
//! the attempt at an `.await`, never inside `push_frame`. Nothing is shared between
//! supervisors, so stopping one never touches another.

use super::stats::{StreamState, StreamStats};
use super::{AttemptPhase, Source, SourceCtx, SourceError, Waiting};
use crate::backoff::{Backoff, BackoffConfig};
use crate::clock::Clock;
use crate::config::schema::StreamConfig;
use crate::frame::{FrameInfo, FrameSink, SinkError};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Longest the loop goes without beating or refreshing the rates.
const BEAT_PERIOD: Duration = Duration::from_secs(1);

/// How often an unreachable camera is probed during its backoff: a camera that comes back is
/// retried within this, well inside the one second an operator notices.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);

/// The longest an attempt waits for its first keyframe while other frames arrive, and the
/// wait while the camera's keyframe interval is not known yet.
pub const KEYFRAME_WAIT_CAP: Duration = Duration::from_secs(30);

/// Timeouts and backoff of one stream's supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// Attempt start → first frame; longer and the attempt is abandoned.
    pub connect_timeout: Duration,
    /// Longest gap between frames of a live stream before it counts as stalled.
    pub stall_timeout: Duration,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
    /// While an unreachable camera waits its backoff, probe it this often and retry as soon
    /// as it answers; zero never probes.
    pub probe_every: Duration,
    /// Epoch before the first attempt; each attempt uses the next value. A replacement
    /// supervisor writing into the same ring passes the old one's last epoch here.
    pub first_epoch: u32,
    /// How long a stream the camera refused for good ([`SourceError::Rejected`]) stays
    /// `failed` before the next attempt.
    pub failed_retry: Duration,
}

impl SupervisorConfig {
    /// The stream's timeouts from its config, with the default backoff.
    pub fn from_stream(cfg: &StreamConfig) -> Self {
        SupervisorConfig {
            connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
            stall_timeout: Duration::from_millis(cfg.stall_timeout_ms),
            backoff: BackoffConfig::default(),
            probe_every: PROBE_EVERY,
            first_epoch: 0,
            failed_retry: Duration::from_secs(cfg.failed_retry_s),
        }
    }
}

/// A running supervisor. Dropping it stops the stream (aborts its task).
#[derive(Debug)]
pub struct SupervisorHandle {
    /// The stream's statistics, shared with the task.
    stats: Arc<StreamStats>,
    /// The task; `None` only after [`SupervisorHandle::stop`] took it.
    task: Option<JoinHandle<()>>,
}

impl SupervisorHandle {
    /// The stream's live statistics.
    pub fn stats(&self) -> Arc<StreamStats> {
        Arc::clone(&self.stats)
    }

    /// True once the task has ended (stopped, or aborted by the runtime shutting down).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the stream without waiting: the task is aborted at its next `.await`.
    pub fn abort(&self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }

    /// Stops the stream and waits until the task (and so the source and the sink) is gone.
    pub async fn stop(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            // The only possible error is the cancellation we just asked for.
            let _ = t.await;
        }
    }
}

impl Drop for SupervisorHandle {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Starts supervising one stream on the current tokio runtime. Frames go into `sink`; the
/// supervisor owns it until it is stopped.
pub fn spawn_supervisor<W: FrameSink + 'static>(
    id: String,
    source: Arc<dyn Source>,
    cfg: SupervisorConfig,
    sink: W,
    clock: Arc<dyn Clock>,
) -> SupervisorHandle {
    let stats = Arc::new(StreamStats::new(id));
    let sup = Supervisor {
        stats: Arc::clone(&stats),
        source,
        cfg,
        clock,
        base: Instant::now(),
        last_frame_at: AtomicU64::new(0),
        live_since_at: AtomicU64::new(0),
        last_key_pts_us: AtomicI64::new(i64::MIN),
        last_key_epoch: AtomicU32::new(0),
    };
    let task = tokio::spawn(sup.run(sink));
    SupervisorHandle {
        stats,
        task: Some(task),
    }
}

/// How one attempt ended.
enum AttemptEnd {
    /// The source returned.
    Returned(Result<(), SourceError>),
    /// The source panicked; the message if it was a string.
    Panicked(String),
    /// No frame within the connect timeout (or the keyframe wait).
    ConnectTimeout {
        /// The step the source was in, if it said.
        step: Option<String>,
        /// What it waited for, if it said.
        waiting: Option<Waiting>,
        /// The transport of the session, if it said (for the "no packets" hint).
        transport: Option<&'static str>,
        /// How long the attempt waited.
        waited: Duration,
    },
    /// No frame within the stall timeout of the previous one.
    Stalled,
}

/// The task's state.
struct Supervisor {
    /// Shared statistics.
    stats: Arc<StreamStats>,
    /// The camera.
    source: Arc<dyn Source>,
    /// Timeouts and backoff.
    cfg: SupervisorConfig,
    /// Receive timestamps and beats.
    clock: Arc<dyn Clock>,
    /// Origin of `last_frame_at`; tokio time so that paused-time tests drive the deadlines.
    base: Instant,
    /// Nanoseconds after `base` of the current attempt's last frame, plus one; 0 = none yet.
    /// Written by the counting sink, read by the watcher (same task, so `Relaxed` suffices).
    last_frame_at: AtomicU64,
    /// Same encoding: when the current attempt's first stored frame arrived (went `live`).
    live_since_at: AtomicU64,
    /// Presentation time of the newest stored keyframe (µs; `i64::MIN`: none yet), to
    /// measure the camera's keyframe interval.
    last_key_pts_us: AtomicI64,
    /// Epoch of that keyframe: intervals are measured within one session only.
    last_key_epoch: AtomicU32,
}

/// What the loop does after an attempt ended.
enum Next {
    /// Retry after a backoff delay; the error sentence.
    Retry(String),
    /// `failed` until the config changes.
    Park(String),
    /// `failed`, retried after [`SupervisorConfig::failed_retry`] or when asked.
    Refused(String),
}

impl Supervisor {
    /// The supervision loop; ends only when aborted.
    async fn run<W: FrameSink>(self, mut sink: W) {
        let id = self.stats.id().to_string();
        let mut backoff = Backoff::new(self.cfg.backoff);
        let mut epoch = self.cfg.first_epoch;
        let mut first = true;
        let mut was_unreachable = false;
        loop {
            epoch = epoch.wrapping_add(1);
            if !first {
                self.stats.record_reconnect();
            }
            first = false;
            self.stats.set_epoch(epoch);
            self.stats.set_state(StreamState::Connecting);
            tracing::debug!(stream = %id, epoch, "attempt starting");
            let (end, live_for) = self.attempt(&mut sink, &id, epoch).await;
            self.stats.set_rates(0.0, 0.0);
            self.stats.set_waiting(None);
            let unreachable = matches!(end, AttemptEnd::Returned(Err(SourceError::Unreachable(_))));
            let msg = match self.next_step(end) {
                Next::Park(msg) => {
                    self.set_error(&msg);
                    self.stats.set_state(StreamState::Failed);
                    tracing::error!(stream = %id, error = %msg, "stream failed; fix its config");
                    self.idle_forever().await;
                    return;
                }
                Next::Refused(msg) => {
                    self.set_error(&msg);
                    self.wait_failed(&id, &msg).await;
                    // Whatever happens next starts a fresh ladder.
                    backoff.reset();
                    was_unreachable = false;
                    continue;
                }
                Next::Retry(msg) => msg,
            };
            self.set_error(&msg);
            if was_unreachable && !unreachable {
                // It answers again: whatever failed now, start the ladder from the base.
                backoff.reset();
            }
            was_unreachable = unreachable;
            backoff.attempt_ended(live_for);
            let delay = backoff.next_delay(fastrand::f64());
            tracing::warn!(stream = %id, error = %msg, retry_in_ms = delay.as_millis() as u64, "attempt ended");
            self.stats.set_state(StreamState::Backoff);
            if !unreachable {
                self.sleep_beating(delay).await;
            } else if self.wait_probing(delay).await {
                tracing::info!(stream = %id, "camera answers again; retrying now");
            }
        }
    }

    /// Sorts how an attempt ended into what to do next, with the sentence for `last_error`.
    fn next_step(&self, end: AttemptEnd) -> Next {
        match end {
            AttemptEnd::Returned(Err(e)) if e.is_permanent() => Next::Park(e.to_string()),
            AttemptEnd::Returned(Err(e)) if e.is_rejection() => Next::Refused(e.to_string()),
            AttemptEnd::Returned(Err(e)) => Next::Retry(e.to_string()),
            AttemptEnd::Returned(Ok(())) => Next::Retry("source ended without an error".into()),
            AttemptEnd::Panicked(p) => {
                self.stats.record_panic();
                Next::Retry(format!("source panicked: {p}"))
            }
            AttemptEnd::ConnectTimeout {
                step,
                waiting,
                transport,
                waited,
            } => Next::Retry(timeout_sentence(
                step,
                waiting,
                transport,
                waited,
                self.stats.keyframe_interval_ms(),
            )),
            AttemptEnd::Stalled => {
                self.stats.record_stall();
                Next::Retry(format!(
                    "stream stalled: no frame for {:.1} s",
                    self.cfg.stall_timeout.as_secs_f64()
                ))
            }
        }
    }

    /// Sets `last_error`, stamped with the stream clock's wall time.
    fn set_error(&self, msg: &str) {
        self.stats.set_error(msg, self.clock.wall_us());
    }

    /// The `failed` state of a refused stream: beats until [`SupervisorConfig::failed_retry`]
    /// has passed or a retry is asked for ([`StreamStats::retry_now`]).
    async fn wait_failed(&self, id: &str, msg: &str) {
        let wait = self.cfg.failed_retry;
        // A request made before the stream failed is not one for this wait.
        let _ = self.stats.retry_requested().now_or_never();
        let due = self.clock.wall_us() + wait.as_micros() as i64;
        self.stats.set_retry_at(Some(due));
        self.stats.set_state(StreamState::Failed);
        tracing::warn!(stream = %id, error = %msg, retry_in_s = wait.as_secs(), "camera refused the stream; retrying later");
        tokio::select! {
            () = self.sleep_beating(wait) => {}
            () = self.stats.retry_requested() => {
                tracing::info!(stream = %id, "retry asked for; trying now");
            }
        }
        self.stats.set_retry_at(None);
    }

    /// Waits `d` like [`Supervisor::sleep_beating`], probing the camera every `probe_every`;
    /// returns true as soon as a probe succeeds, false when `d` is over (or the source cannot
    /// be probed, or probing is off).
    async fn wait_probing(&self, d: Duration) -> bool {
        let every = self.cfg.probe_every;
        if every.is_zero() {
            self.sleep_beating(d).await;
            return false;
        }
        let end = Instant::now() + d;
        let mut next_probe = Instant::now() + every;
        loop {
            self.beat().await;
            let now = Instant::now();
            if now >= end {
                return false;
            }
            if now >= next_probe {
                next_probe = now + every;
                let Some(probe) = self.source.probe() else {
                    self.sleep_beating(end - now).await;
                    return false;
                };
                if tokio::time::timeout(every, probe).await == Ok(true) {
                    return true;
                }
                continue;
            }
            tokio::time::sleep_until(end.min(next_probe).min(now + BEAT_PERIOD)).await;
        }
    }

    /// Runs one attempt against its deadlines. Returns how it ended and how long it was live.
    async fn attempt<W: FrameSink>(
        &self,
        sink: &mut W,
        id: &str,
        epoch: u32,
    ) -> (AttemptEnd, Duration) {
        self.last_frame_at.store(0, Ordering::Relaxed);
        self.live_since_at.store(0, Ordering::Relaxed);
        self.last_key_pts_us.store(i64::MIN, Ordering::Relaxed);
        let started = Instant::now();
        let phase = AttemptPhase::new();
        let mut counting = CountingSink {
            inner: sink,
            sup: self,
            phase: &phase,
        };
        let ctx = SourceCtx {
            id,
            sink: &mut counting,
            clock: &*self.clock,
            epoch,
            phase: phase.clone(),
        };
        let loss_base = (self.stats.lost_packets(), self.stats.incomplete_frames());
        let run = AssertUnwindSafe(self.source.run(ctx)).catch_unwind();
        let end = tokio::select! {
            r = run => match r {
                Ok(result) => AttemptEnd::Returned(result),
                Err(payload) => AttemptEnd::Panicked(panic_message(&*payload)),
            },
            end = self.watch(started, &phase, loss_base) => end,
        };
        self.sync_phase(&phase, loss_base);
        // Live from the first frame to the last one; zero if the attempt never went live.
        let live_for = match (self.live_since(), self.last_frame()) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Duration::ZERO,
        };
        (end, live_for)
    }

    /// Enforces the attempt's deadlines, refreshes the rates, copies what the source says
    /// into the stats and beats. Returns only when a deadline passes.
    async fn watch(
        &self,
        started: Instant,
        phase: &AttemptPhase,
        loss_base: (u64, u64),
    ) -> AttemptEnd {
        let mut window_start = Instant::now();
        let mut window_frames = self.stats.frames();
        let mut window_bytes = self.stats.bytes();
        loop {
            self.beat().await;
            self.sync_phase(phase, loss_base);
            let now = Instant::now();
            let elapsed = now - window_start;
            if elapsed >= BEAT_PERIOD {
                let (f, b) = (self.stats.frames(), self.stats.bytes());
                let secs = elapsed.as_secs_f64();
                self.stats.set_rates(
                    (f - window_frames) as f64 / secs,
                    (b - window_bytes) as f64 * 8.0 / secs,
                );
                (window_start, window_frames, window_bytes) = (now, f, b);
            }
            let deadline = match self.last_frame() {
                None => started + self.first_frame_wait(phase.waiting()),
                Some(t) => t + self.cfg.stall_timeout,
            };
            if now >= deadline {
                return match self.last_frame() {
                    None => AttemptEnd::ConnectTimeout {
                        step: phase.get(),
                        waiting: phase.waiting(),
                        transport: phase.transport(),
                        waited: now - started,
                    },
                    Some(_) => {
                        self.stats.set_state(StreamState::Stalled);
                        AttemptEnd::Stalled
                    }
                };
            }
            tokio::time::sleep_until(deadline.min(now + BEAT_PERIOD)).await;
        }
    }

    /// How long an attempt may take to its first stored frame: the connect timeout, or,
    /// while frames without a keyframe arrive, two measured keyframe intervals (see the
    /// module doc).
    fn first_frame_wait(&self, waiting: Option<Waiting>) -> Duration {
        let connect = self.cfg.connect_timeout;
        if waiting != Some(Waiting::Keyframe) {
            return connect;
        }
        let two_gops = match self.stats.keyframe_interval_ms() {
            Some(ms) => Duration::from_millis(ms.saturating_mul(2)).min(KEYFRAME_WAIT_CAP),
            None => KEYFRAME_WAIT_CAP,
        };
        connect.max(two_gops)
    }

    /// Copies what the attempt's source said (wait, transport, RTP loss) into the stats.
    fn sync_phase(&self, phase: &AttemptPhase, (lost, incomplete): (u64, u64)) {
        if self.last_frame().is_none() {
            self.stats.set_waiting(phase.waiting());
        }
        if let Some(t) = phase.transport() {
            self.stats.set_transport(Some(t));
        }
        self.stats.set_loss(
            lost + phase.lost_packets(),
            incomplete + phase.incomplete_frames(),
        );
    }

    /// Sleeps `d`, beating at least once a second.
    async fn sleep_beating(&self, d: Duration) {
        let end = Instant::now() + d;
        loop {
            self.beat().await;
            let now = Instant::now();
            if now >= end {
                return;
            }
            tokio::time::sleep_until(end.min(now + BEAT_PERIOD)).await;
        }
    }

    /// The `failed` state: nothing to do but prove the loop is alive, until aborted.
    async fn idle_forever(&self) {
        loop {
            self.beat().await;
            tokio::time::sleep(BEAT_PERIOD).await;
        }
    }

    /// Proves the loop is alive (to the stats and, through them, the watchdog). With the
    /// `fault-injection` feature this is where a test can hang or panic the loop.
    async fn beat(&self) {
        crate::health::fault::checkpoint("stream", self.stats.id()).await;
        self.stats.beat(self.clock.mono_ns());
    }

    /// Measures the keyframe interval: the pts distance to the previous keyframe of the
    /// same session, when it is plausible (0 to 60 s).
    fn keyframe_stored(&self, info: &FrameInfo) {
        let prev = self.last_key_pts_us.swap(info.pts_us, Ordering::Relaxed);
        let prev_epoch = self.last_key_epoch.swap(info.epoch, Ordering::Relaxed);
        if prev == i64::MIN || prev_epoch != info.epoch {
            return;
        }
        let ms = info.pts_us.saturating_sub(prev) / 1000;
        if (1..=60_000).contains(&ms) {
            self.stats.set_keyframe_interval_ms(ms as u64);
        }
    }

    /// When the current attempt's newest frame arrived, if any.
    fn last_frame(&self) -> Option<Instant> {
        self.decode_at(self.last_frame_at.load(Ordering::Relaxed))
    }

    /// When the attempt's first frame arrived, if any.
    fn live_since(&self) -> Option<Instant> {
        self.decode_at(self.live_since_at.load(Ordering::Relaxed))
    }

    /// Turns a stored `nanos after base + 1` back into an instant.
    fn decode_at(&self, v: u64) -> Option<Instant> {
        match v {
            0 => None,
            n => Some(self.base + Duration::from_nanos(n - 1)),
        }
    }

    /// Stores "now" in the `nanos after base + 1` encoding.
    fn encode_now(&self) -> u64 {
        (Instant::now() - self.base).as_nanos() as u64 + 1
    }
}

/// The sink a source sees: forwards to the stream's writer and counts into the stats.
struct CountingSink<'a, W> {
    /// The stream's writer.
    inner: &'a mut W,
    /// Where to count, and the attempt's frame clock.
    sup: &'a Supervisor,
    /// What the attempt's source said, so that `live` and its transport reach the status
    /// together rather than a supervisor beat apart.
    phase: &'a AttemptPhase,
}

impl<W: FrameSink> FrameSink for CountingSink<'_, W> {
    fn push_frame(&mut self, info: &FrameInfo, parts: &[&[u8]]) -> Result<u64, SinkError> {
        let sup = self.sup;
        // Any frame, stored or refused, proves the camera is sending: it resets the stall timer.
        let now = sup.encode_now();
        sup.last_frame_at.store(now, Ordering::Relaxed);
        match self.inner.push_frame(info, parts) {
            Ok(seq) => {
                let len = parts.iter().map(|p| p.len()).sum();
                sup.stats.record_frame(len, info.codec, info.recv_mono_ns);
                if info.keyframe {
                    sup.keyframe_stored(info);
                }
                if sup.live_since_at.load(Ordering::Relaxed) == 0 {
                    sup.live_since_at.store(now, Ordering::Relaxed);
                    sup.stats.set_waiting(None);
                    if let Some(t) = self.phase.transport() {
                        sup.stats.set_transport(Some(t));
                    }
                    sup.stats.set_state(StreamState::Live);
                    tracing::info!(stream = %sup.stats.id(), epoch = info.epoch, "stream live");
                }
                Ok(seq)
            }
            Err(e) => {
                sup.stats.record_drop();
                Err(e)
            }
        }
    }
}

/// The sentence for an attempt that got no frame in time: what it waited for, in words an
/// installer can act on. *Test connection* ([`super::probe`]) says the same.
pub(crate) fn timeout_sentence(
    step: Option<String>,
    waiting: Option<Waiting>,
    transport: Option<&'static str>,
    waited: Duration,
    keyframe_interval_ms: Option<u64>,
) -> String {
    let secs = waited.as_secs_f64();
    match (waiting, step) {
        (Some(Waiting::Answer), _) => format!(
            "no RTSP answer from the camera within {secs:.1} s; check the address and port in \
             the camera URL (the RTSP port is usually 554)"
        ),
        (Some(Waiting::Packets), _) if transport == Some("udp") => format!(
            "the camera set up the session but no video packets came within {secs:.1} s over \
             UDP; a firewall or NAT may block them: try transport = \"tcp\""
        ),
        (Some(Waiting::Packets), _) => {
            format!("the camera set up the session but sent no video packets within {secs:.1} s")
        }
        (Some(Waiting::Keyframe), _) => {
            let gop = keyframe_interval_ms
                .map(|ms| format!(" (its keyframe interval was {:.1} s)", ms as f64 / 1000.0))
                .unwrap_or_default();
            format!(
                "connected and video arrives, but no keyframe came within {secs:.1} s{gop}; set \
                 the camera's keyframe (I-frame) interval to 1-2 s"
            )
        }
        (None, Some(step)) => {
            format!("timed out: no video within {secs:.1} s of connecting, still {step}")
        }
        (None, None) => format!("timed out: no video within {secs:.1} s of connecting"),
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_come_from_the_stream_config() {
        let cfg: StreamConfig = toml::from_str(
            "id = \"c\"\nkind = \"rtsp\"\nurl = \"rtsp://cam/x\"\nstall_timeout_ms = 1500",
        )
        .expect("valid stream config");
        let s = SupervisorConfig::from_stream(&cfg);
        assert_eq!(s.connect_timeout, Duration::from_millis(5000));
        assert_eq!(s.stall_timeout, Duration::from_millis(1500));
        assert_eq!(s.backoff, BackoffConfig::default());
        assert_eq!(s.probe_every, PROBE_EVERY);
        assert_eq!(s.failed_retry, Duration::from_secs(300));
    }

    #[test]
    fn timeout_sentences_name_what_was_missing() {
        let t = Duration::from_secs(5);
        let answer = timeout_sentence(None, Some(Waiting::Answer), None, t, None);
        assert!(
            answer.starts_with("no RTSP answer from the camera within 5.0 s"),
            "{answer}"
        );
        let udp = timeout_sentence(None, Some(Waiting::Packets), Some("udp"), t, None);
        assert!(
            udp.contains("UDP") && udp.contains("transport = \"tcp\""),
            "{udp}"
        );
        let tcp = timeout_sentence(None, Some(Waiting::Packets), Some("tcp"), t, None);
        assert!(!tcp.contains("UDP"), "{tcp}");
        let key = timeout_sentence(None, Some(Waiting::Keyframe), None, t * 4, Some(10_000));
        assert!(
            key.contains("no keyframe came within 20.0 s (its keyframe interval was 10.0 s)"),
            "{key}"
        );
        assert_eq!(
            timeout_sentence(Some("opening /dev/video0".into()), None, None, t, None),
            "timed out: no video within 5.0 s of connecting, still opening /dev/video0"
        );
    }

    #[test]
    fn panic_messages_are_extracted() {
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 7)).expect_err("panics");
        assert_eq!(panic_message(&*caught), "boom 7");
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(5u8)).expect_err("panics");
        assert_eq!(panic_message(&*caught), "(non-string panic payload)");
    }
}
