//! What a connection attempt is doing right now, so a timeout can say what it waited for, and
//! what the source measured on the way (RTP loss, the transport in use).
//!
//! A source sets the step it is in ("opening /dev/video0", "waiting for the first frame from
//! /dev/video0") on the [`AttemptPhase`] in its [`super::SourceCtx`]; when the supervisor's
//! connect timeout ends the attempt, the stream's `last_error` names that step. A network
//! source also says which of the three waits of a session it is in ([`Waiting`]): for the
//! camera's answer, for the first packet, or for the first keyframe while other frames
//! already arrive; the supervisor gives the last one more time (two GOPs) and names each in
//! its own sentence. Steps change a few times per attempt, never per frame, so a mutex is
//! cheap here; the loss counters are atomics because they may change per frame. The handle
//! is shared (an `Arc` inside) because a source may do its blocking work on a thread of its
//! own that outlives the attempt's future.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Which part of a network session an attempt is waiting for, before its first stored frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Waiting {
    /// Connected (or connecting); the camera has not answered the session's requests yet.
    Answer = 1,
    /// The session is set up and playing; no video packet has arrived yet.
    Packets = 2,
    /// Video arrives, but no keyframe yet: the frames before it cannot be decoded.
    Keyframe = 3,
}

impl Waiting {
    /// The name used in `/api/status` (`waiting_for`).
    pub fn as_str(self) -> &'static str {
        match self {
            Waiting::Answer => "answer",
            Waiting::Packets => "packets",
            Waiting::Keyframe => "keyframe",
        }
    }

    /// The inverse of `as u8`; 0 and unknown values are "not said".
    pub(crate) fn from_u8(v: u8) -> Option<Waiting> {
        match v {
            1 => Some(Waiting::Answer),
            2 => Some(Waiting::Packets),
            3 => Some(Waiting::Keyframe),
            _ => None,
        }
    }
}

/// What one attempt shares with its supervisor; see the module doc.
#[derive(Debug, Default)]
struct Shared {
    /// The step, `None` until the source says.
    step: Mutex<Option<Cow<'static, str>>>,
    /// [`Waiting`] as its `u8`; 0 until the source says (sources that never do get the
    /// generic timeout message).
    waiting: AtomicU8,
    /// RTP packets the source saw lost in this attempt (sequence-number gaps).
    lost_packets: AtomicU64,
    /// Frames that arrived right after lost packets in this attempt: their data, or whole
    /// frames before them, are missing.
    incomplete_frames: AtomicU64,
    /// The transport the session runs over (`tcp`, `udp`), once it is set up.
    transport: Mutex<Option<&'static str>>,
}

/// A shared, settable description of the current step of one connection attempt.
#[derive(Debug, Clone, Default)]
pub struct AttemptPhase {
    /// Shared with the source's threads and the supervisor.
    shared: Arc<Shared>,
}

impl AttemptPhase {
    /// A phase with no step yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Says what the attempt is doing now, as a phrase that completes "timed out while …"
    /// (for example "opening /dev/video0").
    pub fn set(&self, step: impl Into<Cow<'static, str>>) {
        *lock(&self.shared.step) = Some(step.into());
    }

    /// The current step, if the source named one.
    pub fn get(&self) -> Option<String> {
        lock(&self.shared.step).as_deref().map(str::to_string)
    }

    /// Says which part of the session the attempt waits for now.
    pub fn set_waiting(&self, w: Waiting) {
        self.shared.waiting.store(w as u8, Ordering::Relaxed);
    }

    /// What the attempt waits for, if the source said.
    pub fn waiting(&self) -> Option<Waiting> {
        Waiting::from_u8(self.shared.waiting.load(Ordering::Relaxed))
    }

    /// Counts `packets` RTP packets lost before a frame; a non-zero count also counts that
    /// frame as incomplete (its start, or whole frames before it, are missing).
    pub fn record_loss(&self, packets: u64) {
        if packets > 0 {
            self.shared
                .lost_packets
                .fetch_add(packets, Ordering::Relaxed);
            self.shared
                .incomplete_frames
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// RTP packets lost in this attempt so far.
    pub fn lost_packets(&self) -> u64 {
        self.shared.lost_packets.load(Ordering::Relaxed)
    }

    /// Frames with missing data in this attempt so far.
    pub fn incomplete_frames(&self) -> u64 {
        self.shared.incomplete_frames.load(Ordering::Relaxed)
    }

    /// Says which transport the session runs over.
    pub fn set_transport(&self, transport: &'static str) {
        *lock(&self.shared.transport) = Some(transport);
    }

    /// The transport the session runs over, once the source said.
    pub fn transport(&self) -> Option<&'static str> {
        *lock(&self.shared.transport)
    }
}

/// Locks `m`, ignoring poisoning: every value here is valid whatever a panicking writer did.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_step() {
        let p = AttemptPhase::new();
        assert_eq!(p.get(), None);
        let q = p.clone();
        q.set("opening /dev/video0");
        assert_eq!(p.get().as_deref(), Some("opening /dev/video0"));
        p.set(format!("starting capture on {}", "/dev/video1"));
        assert_eq!(q.get().as_deref(), Some("starting capture on /dev/video1"));
    }

    #[test]
    fn waits_loss_and_transport_are_shared() {
        let p = AttemptPhase::new();
        let q = p.clone();
        assert_eq!((p.waiting(), p.transport()), (None, None));
        q.set_waiting(Waiting::Keyframe);
        q.set_transport("udp");
        q.record_loss(3);
        q.record_loss(0);
        q.record_loss(1);
        assert_eq!(p.waiting(), Some(Waiting::Keyframe));
        assert_eq!(p.transport(), Some("udp"));
        assert_eq!((p.lost_packets(), p.incomplete_frames()), (4, 2));
    }
}
