//! Per-stream statistics, written by the stream's supervisor and read by anyone.
//!
//! Counters are atomics so `/api/status`, metrics and the watchdog read them without
//! stopping the stream. The last error is a small mutex-guarded string: it changes only
//! when an attempt ends. State changes are also published on a [`tokio::sync::broadcast`]
//! channel, so a reader can follow every transition (even `stalled`, which lasts only as
//! long as dropping the attempt) instead of polling.

use super::phase::Waiting;
use crate::frame::Codec;
use crate::health::beacon::Beacon;
use serde::Serialize;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use tokio::sync::{Notify, broadcast};

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
    /// The config cannot work, or the camera refused it for good (wrong credentials, no such
    /// stream, a codec edgecam cannot show): retried only on a long interval, on *Test
    /// connection* or on a config change (a config error only on a config change).
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
    /// When `last_error` was set (wall µs, the stream's clock; 0 = never), so the page can
    /// show an error of the past as history once the stream is live again.
    last_error_at_us: AtomicI64,
    /// RTP packets lost (sequence gaps) since the supervisor started.
    lost_packets: AtomicU64,
    /// Frames that arrived after lost packets (their data, or frames before them, missing).
    incomplete_frames: AtomicU64,
    /// The transport of the current (or last) session, for RTSP (`tcp` / `udp`).
    transport: Mutex<Option<&'static str>>,
    /// [`Waiting`] of the current attempt as its `u8` (0: not connecting, or not said).
    waiting: AtomicU8,
    /// The camera's keyframe interval measured from its stored keyframes, ms (0: unknown);
    /// sets how long a new session waits for its first keyframe.
    keyframe_interval_ms: AtomicU64,
    /// While `failed`: when the next attempt is due (wall µs; 0 = none planned).
    retry_at_us: AtomicI64,
    /// [`Codec`] of the newest stored frame as its `u8` plus one (0: no frame yet): an RTSP
    /// camera may send H.264 or JPEG, and the status says which.
    codec: AtomicU8,
    /// Wakes a `failed` stream for an attempt now (*Test connection*).
    retry_now: Notify,
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
    /// Why the last attempt ended; `None` if none ended yet. Kept once the stream is live
    /// again (with `state` then `live`), as history.
    pub last_error: Option<String>,
    /// When `last_error` was set, wall µs since the Unix epoch (like the events' `at_us`).
    pub last_error_at_us: Option<i64>,
    /// RTP packets lost since start.
    pub lost_packets: u64,
    /// Frames with missing data (they came right after lost packets) since start.
    pub incomplete_frames: u64,
    /// `tcp` or `udp` for an RTSP stream once a session was set up; `None` otherwise.
    pub transport: Option<&'static str>,
    /// While `connecting`: `answer` (no RTSP answer yet), `packets` (playing, no video
    /// packet yet) or `keyframe` (video arrives, no keyframe yet); `None` when not said.
    pub waiting_for: Option<&'static str>,
    /// The keyframe interval measured on the stream, ms; `None` until two keyframes came.
    pub keyframe_interval_ms: Option<u64>,
    /// While `failed`: when the next attempt is due, wall µs; `None` when none is planned
    /// (a config error waits for a config change).
    pub retry_at_us: Option<i64>,
    /// `h264` or `jpeg`: the codec of the newest stored frame; `None` before the first.
    pub codec: Option<&'static str>,
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
            last_error_at_us: AtomicI64::new(0),
            lost_packets: AtomicU64::new(0),
            incomplete_frames: AtomicU64::new(0),
            transport: Mutex::new(None),
            waiting: AtomicU8::new(0),
            keyframe_interval_ms: AtomicU64::new(0),
            retry_at_us: AtomicI64::new(0),
            codec: AtomicU8::new(0),
            retry_now: Notify::new(),
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

    /// When the last error was set (wall µs); `None` if never.
    pub fn last_error_at_us(&self) -> Option<i64> {
        nonzero_i64(self.last_error_at_us.load(Ordering::Relaxed))
    }

    /// RTP packets lost so far.
    pub fn lost_packets(&self) -> u64 {
        self.lost_packets.load(Ordering::Relaxed)
    }

    /// Frames with missing data so far.
    pub fn incomplete_frames(&self) -> u64 {
        self.incomplete_frames.load(Ordering::Relaxed)
    }

    /// The RTSP transport in use, once a session was set up.
    pub fn transport(&self) -> Option<&'static str> {
        *self.transport.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the connecting attempt waits for, if its source said.
    pub fn waiting_for(&self) -> Option<Waiting> {
        Waiting::from_u8(self.waiting.load(Ordering::Relaxed))
    }

    /// The measured keyframe interval, ms; `None` until measured.
    pub fn keyframe_interval_ms(&self) -> Option<u64> {
        let v = self.keyframe_interval_ms.load(Ordering::Relaxed);
        (v > 0).then_some(v)
    }

    /// The codec of the newest stored frame; `None` before the first.
    pub fn codec(&self) -> Option<Codec> {
        let v = self.codec.load(Ordering::Relaxed);
        Codec::from_u8(v.checked_sub(1)?)
    }

    /// Asks a `failed` stream to make an attempt now instead of at its long retry interval
    /// (*Test connection* does, after its own run). No effect in other states, and no
    /// effect on a config error, which needs a config change.
    pub fn retry_now(&self) {
        self.retry_now.notify_one();
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
            last_error_at_us: self.last_error_at_us(),
            lost_packets: self.lost_packets(),
            incomplete_frames: self.incomplete_frames(),
            transport: self.transport(),
            waiting_for: self.waiting_for().map(Waiting::as_str),
            keyframe_interval_ms: self.keyframe_interval_ms(),
            retry_at_us: nonzero_i64(self.retry_at_us.load(Ordering::Relaxed)),
            codec: self.codec().map(Codec::name),
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

    /// Counts one stored frame of `len` bytes in `codec`, received at `mono_ns`.
    pub(crate) fn record_frame(&self, len: usize, codec: Codec, mono_ns: u64) {
        self.codec.store(codec.as_u8() + 1, Ordering::Relaxed);
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

    /// Replaces the last error sentence, set at `at_wall_us`.
    pub(crate) fn set_error(&self, msg: &str, at_wall_us: i64) {
        let mut e = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        e.clear();
        e.push_str(msg);
        // 0 means "never"; a clock at exactly the epoch is a broken RTC, shown one µs late.
        self.last_error_at_us.store(
            if at_wall_us == 0 { 1 } else { at_wall_us },
            Ordering::Relaxed,
        );
    }

    /// Sets the RTP loss totals since start: `packets` lost, `frames` hit by it.
    pub(crate) fn set_loss(&self, packets: u64, frames: u64) {
        self.lost_packets.store(packets, Ordering::Relaxed);
        self.incomplete_frames.store(frames, Ordering::Relaxed);
    }

    /// Sets the transport of the current session.
    pub(crate) fn set_transport(&self, t: Option<&'static str>) {
        *self.transport.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    /// Sets what the connecting attempt waits for (`None` once live, or between attempts).
    pub(crate) fn set_waiting(&self, w: Option<Waiting>) {
        self.waiting
            .store(w.map_or(0, |w| w as u8), Ordering::Relaxed);
    }

    /// Stores a measured keyframe interval.
    pub(crate) fn set_keyframe_interval_ms(&self, ms: u64) {
        self.keyframe_interval_ms.store(ms, Ordering::Relaxed);
    }

    /// Sets when a `failed` stream's next attempt is due (`None`: none planned).
    pub(crate) fn set_retry_at(&self, wall_us: Option<i64>) {
        self.retry_at_us
            .store(wall_us.unwrap_or(0), Ordering::Relaxed);
    }

    /// Resolves when [`StreamStats::retry_now`] is called (or was, since the last time).
    pub(crate) async fn retry_requested(&self) {
        self.retry_now.notified().await;
    }
}

/// `None` for the "never" value 0.
fn nonzero_i64(v: i64) -> Option<i64> {
    (v != 0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reflects_writes_and_serializes_with_api_names() {
        let s = StreamStats::new("cam1");
        assert_eq!(s.snapshot().codec, None);
        s.record_frame(1000, Codec::H264, 5);
        s.record_frame(500, Codec::Jpeg, 9);
        s.record_drop();
        s.record_reconnect();
        s.set_rates(25.0, 4_000_000.0);
        s.set_state(StreamState::Live);
        s.set_error(
            "connection to cam:554 refused (nothing listening)",
            1_700_000_000_000_000,
        );
        s.set_loss(5, 2);
        s.set_transport(Some("udp"));
        let snap = s.snapshot();
        assert_eq!(snap.frames, 2);
        assert_eq!(snap.codec, Some("jpeg"), "the newest frame's codec");
        assert_eq!(snap.bytes, 1500);
        assert_eq!(snap.dropped, 1);
        assert_eq!(snap.reconnects, 1);
        assert_eq!(snap.fps, 25.0);
        assert_eq!(snap.bitrate_kbps, 4000);
        assert_eq!(s.last_frame_mono_ns(), 9);
        assert_eq!(snap.last_error_at_us, Some(1_700_000_000_000_000));
        assert_eq!((snap.lost_packets, snap.incomplete_frames), (5, 2));
        assert_eq!(snap.transport, Some("udp"));
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
        assert_eq!((s.last_error(), s.last_error_at_us()), (None, None));
        s.set_error("boom", 42);
        assert_eq!(s.last_error().as_deref(), Some("boom"));
        assert_eq!(s.last_error_at_us(), Some(42));
    }
}
