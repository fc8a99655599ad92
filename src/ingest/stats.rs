//! Per-stream statistics, written by the stream's supervisor and read by anyone.
//!
//! Counters are atomics so `/api/status`, metrics and the watchdog read them without
//! stopping the stream. The last error is a small mutex-guarded string: it changes only
//! when an attempt ends. State changes are also published on a [`tokio::sync::broadcast`]
//! channel, so a reader can follow every transition (even `stalled`, which lasts only as
//! long as dropping the attempt) instead of polling.

use crate::health::beacon::Beacon;
use serde::Serialize;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use tokio::sync::broadcast;

/// State changes kept for a slow subscriber before it sees `Lagged`.
const STATE_EVENTS: usize = 64;

/// Where a stream's supervisor is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum StreamState {
    /// An attempt is running and has not delivered a frame yet.
    Connecting = 0,
    /// Frames are arriving.
    Live = 1,
    /// No frame for the stall timeout; the attempt is being dropped.
    Stalled = 2,
    /// Waiting before the next attempt.
    Backoff = 3,
    /// The config cannot work; nothing is retried until it changes.
    Failed = 4,
}

impl StreamState {
    /// The inverse of `as u8`; unknown values read as `Failed` (they cannot be stored).
    fn from_u8(v: u8) -> StreamState {
        match v {
            0 => StreamState::Connecting,
            1 => StreamState::Live,
            2 => StreamState::Stalled,
            3 => StreamState::Backoff,
            _ => StreamState::Failed,
        }
    }

    /// The lowercase name used in the API and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Connecting => "connecting",
            StreamState::Live => "live",
            StreamState::Stalled => "stalled",
            StreamState::Backoff => "backoff",
            StreamState::Failed => "failed",
        }
    }
}

impl std::fmt::Display for StreamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Live statistics of one stream. Shared as `Arc<StreamStats>`.
#[derive(Debug)]
pub struct StreamStats {
    /// Stream id, so a snapshot is self-describing.
    id: String,
    /// Current [`StreamState`] as its `u8`, for lock-free reads.
    state: AtomicU8,
    /// Every state change, for readers that want to be told (sending never blocks).
    state_tx: broadcast::Sender<StreamState>,
    /// Frames accepted by the sink since the supervisor started.
    frames: AtomicU64,
    /// Payload bytes of those frames.
    bytes: AtomicU64,
    /// Frames the sink refused (e.g. larger than the ring allows).
    dropped: AtomicU64,
    /// Attempts started after the first one.
    reconnects: AtomicU64,
    /// Attempts that ended in a panic of the source.
    panics: AtomicU64,
    /// Attempts dropped because frames stopped arriving.
    stalls: AtomicU64,
    /// Epoch of the current attempt (stamped on its frames).
    epoch: AtomicU32,
    /// Frames per second over the last rate window, times 1000.
    fps_milli: AtomicU32,
    /// Bits per second over the last rate window.
    bitrate_bps: AtomicU64,
    /// Monotonic receive time of the newest accepted frame (ns, the stream's clock).
    last_frame_mono_ns: AtomicU64,
    /// Monotonic time the supervisor loop last proved it is alive (ns, the stream's clock).
    last_beat_mono_ns: AtomicU64,
    /// Number of beats, so a watchdog can tell "alive" from "same timestamp twice".
    beats: AtomicU64,
    /// Why the last attempt ended, as a sentence for the operator; empty if none did yet.
    last_error: Mutex<String>,
    /// The daemon's watchdog beacon for this stream's loop, attached once after start.
    beacon: OnceLock<Beacon>,
}

/// A point-in-time copy of [`StreamStats`] for the status API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamStatus {
    /// Stream id.
    pub id: String,
    /// Supervisor state.
    pub state: StreamState,
    /// Frames per second over the last second or so.
    pub fps: f32,
    /// Received bitrate over the last second or so, kbit/s.
    pub bitrate_kbps: u32,
    /// Frames stored since start.
    pub frames: u64,
    /// Payload bytes stored since start.
    pub bytes: u64,
    /// Frames refused by the ring.
    pub dropped: u64,
    /// Attempts after the first.
    pub reconnects: u64,
    /// Source panics caught by the supervisor.
    pub panics: u64,
    /// Attempts dropped because the stream stalled.
    pub stalls: u64,
    /// Epoch of the current attempt.
    pub epoch: u32,
    /// Why the last attempt ended; `None` if none ended yet.
    pub last_error: Option<String>,
}

impl StreamStats {
    /// Fresh statistics in state `connecting`.
    pub fn new(id: impl Into<String>) -> Self {
        let (state_tx, _) = broadcast::channel(STATE_EVENTS);
        StreamStats {
            id: id.into(),
            state: AtomicU8::new(StreamState::Connecting as u8),
            state_tx,
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            epoch: AtomicU32::new(0),
            fps_milli: AtomicU32::new(0),
            bitrate_bps: AtomicU64::new(0),
            last_frame_mono_ns: AtomicU64::new(0),
            last_beat_mono_ns: AtomicU64::new(0),
            beacon: OnceLock::new(),
            beats: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
        }
    }

    /// The stream id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The current state.
    pub fn state(&self) -> StreamState {
        StreamState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// A receiver of every state change from now on (read [`StreamStats::state`] for the
    /// current one).
    pub fn subscribe_state(&self) -> broadcast::Receiver<StreamState> {
        self.state_tx.subscribe()
    }

    /// Frames stored so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Payload bytes stored so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Frames refused by the sink so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Attempts after the first.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Source panics caught so far.
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// Stalls detected so far.
    pub fn stalls(&self) -> u64 {
        self.stalls.load(Ordering::Relaxed)
    }

    /// Epoch of the current attempt.
    pub fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Monotonic time of the newest stored frame, ns (0 before the first).
    pub fn last_frame_mono_ns(&self) -> u64 {
        self.last_frame_mono_ns.load(Ordering::Relaxed)
    }

    /// Monotonic time of the supervisor's last beat, ns; a watchdog compares it with now.
    pub fn last_beat_mono_ns(&self) -> u64 {
        self.last_beat_mono_ns.load(Ordering::Relaxed)
    }

    /// Number of beats so far.
    pub fn beats(&self) -> u64 {
        self.beats.load(Ordering::Relaxed)
    }

    /// Why the last attempt ended; `None` if none ended yet.
    pub fn last_error(&self) -> Option<String> {
        let e = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        (!e.is_empty()).then(|| e.clone())
    }

    /// A consistent-enough copy of everything (each field is read atomically on its own).
    pub fn snapshot(&self) -> StreamStatus {
        StreamStatus {
            id: self.id.clone(),
            state: self.state(),
            fps: self.fps_milli.load(Ordering::Relaxed) as f32 / 1000.0,
            bitrate_kbps: (self.bitrate_bps.load(Ordering::Relaxed) / 1000).min(u64::from(u32::MAX))
                as u32,
            frames: self.frames(),
            bytes: self.bytes(),
            dropped: self.dropped(),
            reconnects: self.reconnects(),
            panics: self.panics(),
            stalls: self.stalls(),
            epoch: self.epoch(),
            last_error: self.last_error(),
        }
    }

    // ---- writers: the supervisor (and its counting sink) only ----

    /// Moves to `state` and tells subscribers; a no-op if already there.
    pub(crate) fn set_state(&self, state: StreamState) {
        let old = self.state.swap(state as u8, Ordering::AcqRel);
        if old != state as u8 {
            // An error only means nobody is subscribed.
            let _ = self.state_tx.send(state);
        }
    }

    /// Counts one stored frame of `len` bytes received at `mono_ns`.
    pub(crate) fn record_frame(&self, len: usize, mono_ns: u64) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.last_frame_mono_ns.store(mono_ns, Ordering::Relaxed);
    }

    /// Counts one frame the sink refused.
    pub(crate) fn record_drop(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an attempt after the first.
    pub(crate) fn record_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a caught panic.
    pub(crate) fn record_panic(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a stall.
    pub(crate) fn record_stall(&self) {
        self.stalls.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the epoch of the attempt that is starting.
    pub(crate) fn set_epoch(&self, epoch: u32) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// Publishes rates measured over the last window.
    pub(crate) fn set_rates(&self, fps: f64, bits_per_s: f64) {
        self.fps_milli
            .store((fps * 1000.0).round().max(0.0) as u32, Ordering::Relaxed);
        self.bitrate_bps
            .store(bits_per_s.round().max(0.0) as u64, Ordering::Relaxed);
    }

    /// Records that the supervisor loop is alive at `mono_ns`.
    pub(crate) fn beat(&self, mono_ns: u64) {
        self.last_beat_mono_ns.store(mono_ns, Ordering::Relaxed);
        self.beats.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = self.beacon.get() {
            b.beat(mono_ns);
        }
    }

    /// Forwards every later beat to `beacon` (the daemon's watchdog). Only the first call
    /// takes effect; returns false for later ones.
    pub fn attach_beacon(&self, beacon: Beacon) -> bool {
        self.beacon.set(beacon).is_ok()
    }

    /// Replaces the last error sentence.
    pub(crate) fn set_error(&self, msg: &str) {
        let mut e = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        e.clear();
        e.push_str(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reflects_writes_and_serializes_with_api_names() {
        let s = StreamStats::new("cam1");
        s.record_frame(1000, 5);
        s.record_frame(500, 9);
        s.record_drop();
        s.record_reconnect();
        s.set_rates(25.0, 4_000_000.0);
        s.set_state(StreamState::Live);
        s.set_error("connection to cam:554 refused (nothing listening)");
        let snap = s.snapshot();
        assert_eq!(snap.frames, 2);
        assert_eq!(snap.bytes, 1500);
        assert_eq!(snap.dropped, 1);
        assert_eq!(snap.reconnects, 1);
        assert_eq!(snap.fps, 25.0);
        assert_eq!(snap.bitrate_kbps, 4000);
        assert_eq!(s.last_frame_mono_ns(), 9);
        // Through serde (toml is already a dependency): the API names states in lowercase.
        let text = toml::to_string(&snap).unwrap_or_else(|e| format!("{e}"));
        assert!(text.contains("state = \"live\""), "{text}");
        assert!(text.contains("bitrate_kbps = 4000"), "{text}");
    }

    #[test]
    fn state_changes_reach_subscribers_once() {
        let s = StreamStats::new("x");
        let mut rx = s.subscribe_state();
        s.set_state(StreamState::Connecting);
        assert!(rx.try_recv().is_err(), "same state is not a change");
        s.set_state(StreamState::Stalled);
        s.set_state(StreamState::Backoff);
        assert_eq!(rx.try_recv().ok(), Some(StreamState::Stalled));
        assert_eq!(rx.try_recv().ok(), Some(StreamState::Backoff));
        assert!(rx.try_recv().is_err());
        assert_eq!(s.state(), StreamState::Backoff);
    }

    #[test]
    fn last_error_is_none_until_set() {
        let s = StreamStats::new("x");
        assert_eq!(s.last_error(), None);
        s.set_error("boom");
        assert_eq!(s.last_error().as_deref(), Some("boom"));
    }
}
