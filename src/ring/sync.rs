//! The synchronisation primitives the ring's protocol uses, swapped for loom's under
//! `cfg(edgecam_loom)` so `tests/ring_loom.rs` can explore every interleaving of the
//! publish/validate protocol.
//!
//! Only the atomics that carry the protocol (stamps, descriptor words, `head`, `tail`,
//! `reserved`, the latest keyframe and the arena's words) come from here.
//! Statistics counters use [`StatCounter`], which stays a plain std atomic even under loom:
//! they are never used to decide anything, and keeping them out of the model keeps loom's
//! state space small.

#[cfg(edgecam_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(edgecam_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};

/// A statistics counter: relaxed increments, never part of the protocol (see module doc).
pub(crate) type StatCounter = std::sync::atomic::AtomicU64;
