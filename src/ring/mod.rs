//! The frame ring: one preallocated, lock-free, single-writer/multi-reader store of
//! encoded frames per stream.
//!
//! A ring is a byte arena for payloads plus a fixed table of slot descriptors, both
//! allocated once by [`FrameRing::new`]. The [`RingWriter`] (the stream's [`FrameSink`])
//! never waits: it overwrites the oldest payload bytes and the oldest slot. Readers
//! ([`Reader`]) copy frames out and validate them seqlock-style, so they never return torn
//! data; a reader that falls behind gets [`Lagged`] (never silently).
//!
//! # Protocol
//! Arena bytes are addressed by logical `u64` positions that only grow (`pos % cap` is the
//! physical index). For each push of sequence number `seq` the writer:
//! 1. advances the oldest valid sequence number past every frame whose slot it is about to
//!    reuse or whose first byte it is about to overwrite, and publishes it as `tail`;
//! 2. publishes `reserved = end of the new payload` (the high-water mark of bytes that may
//!    be changing), marks the slot odd (`2*seq+1`), then `fence(Release)`;
//! 3. copies the payload, stores the descriptor and publishes the slot (`2*seq+2`, release);
//! 4. stores `head = seq + 1` (release), the latest keyframe, and wakes waiting readers.
//!
//! A reader validates the slot (stamp before and after, see `slot.rs`), copies the payload,
//! issues `fence(Acquire)` and reloads `reserved`: the copy is accepted only if
//! `reserved <= off + cap`, i.e. the writer had not yet been allowed to touch any byte it
//! copied. Otherwise the frame counts as overwritten.
//!
//! # Sizes
//! The largest frame accepted is `arena_bytes / 4` ([`FrameRing::max_frame_bytes`]), so a
//! full arena always holds at least four maximum-size frames. A larger push returns
//! [`SinkError::FrameTooLarge`] and counts as dropped.
//!
//! Both sizes come from the config (`[ring] bytes_per_stream`, `slots_per_stream`) and, while
//! event clips are on, from the stream's measured rates ([`sizing`], [`rates`]), chosen when
//! the stream starts; they are not known when the crate is compiled. So the
//! slot table is a `Box<[Slot]>` (and the arena a boxed slice of atomic words), allocated once when the
//! ring is made ([`FrameRing::new`]) and never resized, rather than a `heapless` or
//! const-generic array: a compile-time size would either fix every installation to one ring
//! size or give every size its own ring type, and hundreds of slots (512 by default) plus
//! megabytes of arena do not belong inline in a struct or on a stack. What matters, no
//! allocation while frames flow, holds all the same (`tests/ring_alloc.rs`).

mod arena;
pub mod rates;
mod reader;
pub mod sizing;
mod slot;
mod sync;

use std::sync::Arc;

use thiserror::Error;

use crate::config::RingConfig;
use crate::frame::{FrameInfo, FrameMeta, FrameSink, SinkError};
use arena::Arena;
use slot::{Desc, Slot, SlotRead};
use sync::{AtomicU64, Ordering, StatCounter, fence};

pub use reader::{Lagged, Reader, Start};

/// Smallest arena accepted (a 1-byte maximum frame); tests use tiny rings.
const MIN_ARENA_BYTES: usize = 4;
/// Largest arena accepted (1 TiB): anything above is a configuration mistake.
const MAX_ARENA_BYTES: u64 = 1 << 40;
/// Largest descriptor table accepted (16 Mi slots).
const MAX_SLOTS: u64 = 1 << 24;

/// How big a ring is; fixed for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSpec {
    /// Payload arena size in bytes; the largest frame is a quarter of it.
    pub arena_bytes: usize,
    /// Number of slot descriptors: the most frames the ring holds at once.
    pub slots: usize,
}

/// Why a ring could not be built.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RingError {
    /// The arena is too small to hold any frame.
    #[error("ring arena of {bytes} bytes is too small (minimum {min})")]
    ArenaTooSmall {
        /// Requested arena size.
        bytes: u64,
        /// Smallest size accepted.
        min: u64,
    },
    /// The arena is larger than this build accepts (or than the address space).
    #[error("ring arena of {bytes} bytes is larger than the {max}-byte limit")]
    ArenaTooLarge {
        /// Requested arena size.
        bytes: u64,
        /// Largest size accepted.
        max: u64,
    },
    /// Zero slots, or more than the limit.
    #[error("ring slot count {slots} is out of range (1..={max})")]
    BadSlotCount {
        /// Requested slot count.
        slots: u64,
        /// Largest count accepted.
        max: u64,
    },
}

impl RingSpec {
    /// The spec for the `[ring]` section of the config, checked as [`FrameRing::new`] would.
    pub fn from_config(cfg: &RingConfig) -> Result<RingSpec, RingError> {
        let too_large = RingError::ArenaTooLarge {
            bytes: cfg.bytes_per_stream,
            max: MAX_ARENA_BYTES,
        };
        let arena_bytes = usize::try_from(cfg.bytes_per_stream).map_err(|_| too_large)?;
        let slots = usize::try_from(cfg.slots_per_stream).map_err(|_| RingError::BadSlotCount {
            slots: u64::from(cfg.slots_per_stream),
            max: MAX_SLOTS,
        })?;
        let spec = RingSpec { arena_bytes, slots };
        spec.check()?;
        Ok(spec)
    }

    /// Rejects sizes the ring cannot work with.
    fn check(&self) -> Result<(), RingError> {
        let bytes = self.arena_bytes as u64;
        if self.arena_bytes < MIN_ARENA_BYTES {
            return Err(RingError::ArenaTooSmall {
                bytes,
                min: MIN_ARENA_BYTES as u64,
            });
        }
        if bytes > MAX_ARENA_BYTES || self.arena_bytes > isize::MAX as usize {
            return Err(RingError::ArenaTooLarge {
                bytes,
                max: MAX_ARENA_BYTES,
            });
        }
        if self.slots == 0 || self.slots as u64 > MAX_SLOTS {
            return Err(RingError::BadSlotCount {
                slots: self.slots as u64,
                max: MAX_SLOTS,
            });
        }
        Ok(())
    }
}

/// A snapshot of a ring's counters (each read relaxed; they may be mutually a little stale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingStats {
    /// Frames stored.
    pub written: u64,
    /// Frames evicted by the writer (slot reused or bytes overwritten).
    pub overwritten: u64,
    /// Times a reader reported [`Lagged`].
    pub lag_events: u64,
    /// Frames readers skipped because of lag (sum of [`Lagged::skipped`]).
    pub lagged_frames: u64,
    /// Frames refused because they were larger than [`FrameRing::max_frame_bytes`].
    pub dropped: u64,
    /// Payload bytes stored.
    pub bytes_written: u64,
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// Number of slot descriptors.
    pub slots: usize,
}

/// The shared half of a ring: storage, publication marks, counters and the wakeup.
pub struct FrameRing {
    /// Payload bytes.
    arena: Arena,
    /// Descriptor table, indexed by `seq % slots.len()`.
    slots: Box<[Slot]>,
    /// The publication marks every push stores and every read loads, on their own cache line.
    marks: Marks,
    /// Largest payload accepted (`arena_bytes / 4`).
    max_frame: usize,
    /// Statistics, on their own cache line so counting does not disturb `marks`.
    counters: Counters,
    /// Wakes readers waiting for a new frame (`notify_waiters` after each publish). Kept in
    /// loom builds too (outside the loom model) so the rest of the crate compiles unchanged.
    notify: tokio::sync::Notify,
}

/// The writer's publication marks, grouped (and aligned) so a push dirties one cache line.
#[repr(align(128))]
struct Marks {
    /// Sequence number of the next frame to publish (= frames published so far).
    head: AtomicU64,
    /// Oldest sequence number not yet evicted; stored by the writer before it overwrites.
    tail: AtomicU64,
    /// End (logical position) of the bytes the writer may currently be writing; readers
    /// reject a copy if this passed the copied payload's start plus the capacity.
    reserved: AtomicU64,
    /// Latest keyframe's sequence number plus one; 0 = no keyframe yet.
    latest_key: AtomicU64,
}

/// The counters behind [`RingStats`], away from the marks (128-byte aligned: two cache
/// lines on CPUs whose prefetcher pairs them).
#[repr(align(128))]
#[derive(Default)]
struct Counters {
    /// Behind [`RingStats::written`]; only the writer stores it.
    written: StatCounter,
    /// Behind [`RingStats::overwritten`]; only the writer stores it.
    overwritten: StatCounter,
    /// Behind [`RingStats::dropped`]; only the writer stores it.
    dropped: StatCounter,
    /// Behind [`RingStats::bytes_written`]; only the writer stores it.
    bytes_written: StatCounter,
    /// Behind [`RingStats::lag_events`]; readers add to it.
    lag_events: StatCounter,
    /// Behind [`RingStats::lagged_frames`]; readers add to it.
    lagged_frames: StatCounter,
}

impl Counters {
    /// Adds `n` to a counter only the (single) writer changes: a plain load and store,
    /// no read-modify-write needed.
    fn bump(c: &StatCounter, n: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        c.store(c.load(Relaxed) + n, Relaxed);
    }
}

/// What [`FrameRing::read_at`] found.
pub(crate) enum ReadAt {
    /// The frame, its payload in the caller's buffer.
    Found(FrameMeta),
    /// The frame was evicted (or was being overwritten during the copy).
    Overwritten,
    /// The frame is not published yet.
    NotYet,
}

impl FrameRing {
    /// Builds a ring of `spec`'s size: the only allocations it will ever make.
    pub fn new(spec: RingSpec) -> Result<(RingWriter, Arc<FrameRing>), RingError> {
        spec.check()?;
        let ring = Arc::new(FrameRing {
            arena: Arena::new(spec.arena_bytes),
            slots: (0..spec.slots).map(|_| Slot::new()).collect(),
            marks: Marks {
                head: AtomicU64::new(0),
                tail: AtomicU64::new(0),
                reserved: AtomicU64::new(0),
                latest_key: AtomicU64::new(0),
            },
            max_frame: spec.arena_bytes / 4,
            counters: Counters::default(),
            notify: tokio::sync::Notify::new(),
        });
        let writer = RingWriter {
            ring: Arc::clone(&ring),
            seq: 0,
            pos: 0,
            oldest: 0,
        };
        Ok((writer, ring))
    }

    /// The size the ring was made with.
    pub fn spec(&self) -> RingSpec {
        RingSpec {
            arena_bytes: self.arena.cap(),
            slots: self.slots.len(),
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RingStats {
        let get = |c: &StatCounter| c.load(std::sync::atomic::Ordering::Relaxed);
        RingStats {
            written: get(&self.counters.written),
            overwritten: get(&self.counters.overwritten),
            lag_events: get(&self.counters.lag_events),
            lagged_frames: get(&self.counters.lagged_frames),
            dropped: get(&self.counters.dropped),
            bytes_written: get(&self.counters.bytes_written),
            arena_bytes: self.arena.cap(),
            slots: self.slots.len(),
        }
    }

    /// Sequence number the next frame will get (= number of frames stored so far).
    pub fn head(&self) -> u64 {
        self.marks.head.load(Ordering::Acquire)
    }

    /// Oldest sequence number still stored (equal to [`head`](Self::head) when empty).
    pub fn oldest(&self) -> u64 {
        self.marks.tail.load(Ordering::Acquire)
    }

    /// Sequence number of the latest keyframe, if one was stored and is not yet evicted.
    pub fn latest_keyframe(&self) -> Option<u64> {
        let k = self
            .marks
            .latest_key
            .load(Ordering::Acquire)
            .checked_sub(1)?;
        (k >= self.oldest()).then_some(k)
    }

    /// Largest payload accepted: a quarter of the arena.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame
    }

    /// A reader positioned by `start`.
    pub fn reader(self: &Arc<Self>, start: Start) -> Reader {
        Reader::new(Arc::clone(self), start)
    }

    /// Waits until frame `seq` is published (`head > seq`). Cancel-safe.
    pub async fn wait_for(&self, seq: u64) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Register before checking, so a publish between the check and the await
            // still wakes us.
            notified.as_mut().enable();
            if self.head() > seq {
                return;
            }
            notified.await;
        }
    }

    /// Counts one lag report of `skipped` frames.
    pub(crate) fn count_lag(&self, skipped: u64) {
        self.counters
            .lag_events
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.counters
            .lagged_frames
            .fetch_add(skipped, std::sync::atomic::Ordering::Relaxed);
    }

    /// A validated copy of frame `seq` into `buf` (cleared unless the frame is found).
    pub(crate) fn read_at(&self, seq: u64, buf: &mut Vec<u8>) -> ReadAt {
        let slot = &self.slots[(seq % self.slots.len() as u64) as usize];
        let d = match slot.read(seq) {
            SlotRead::Found(d) => d,
            SlotRead::Overwritten => {
                buf.clear();
                return ReadAt::Overwritten;
            }
            SlotRead::NotYet => {
                buf.clear();
                return ReadAt::NotYet;
            }
        };
        let cap = self.arena.cap() as u64;
        // A validated descriptor always has len <= max_frame; checked anyway because the
        // copy below trusts it.
        if d.len > self.max_frame || self.marks.reserved.load(Ordering::Relaxed) > d.off + cap {
            buf.clear();
            return ReadAt::Overwritten;
        }
        self.arena.read_into(d.off, d.len, buf);
        fence(Ordering::Acquire);
        if self.marks.reserved.load(Ordering::Acquire) > d.off + cap {
            buf.clear();
            return ReadAt::Overwritten;
        }
        ReadAt::Found(FrameMeta {
            seq,
            len: d.len,
            info: d.info,
        })
    }
}

/// The one writer of a ring (not `Clone`): the stream's [`FrameSink`].
pub struct RingWriter {
    /// The ring written to.
    ring: Arc<FrameRing>,
    /// Sequence number of the next frame.
    seq: u64,
    /// Logical arena position of the next payload byte.
    pos: u64,
    /// Oldest frame not yet evicted (the writer's copy of `tail`).
    oldest: u64,
}

impl RingWriter {
    /// The ring this writer fills.
    pub fn ring(&self) -> &Arc<FrameRing> {
        &self.ring
    }
}

impl FrameSink for RingWriter {
    fn push_frame(&mut self, info: &FrameInfo, parts: &[&[u8]]) -> Result<u64, SinkError> {
        let r = &*self.ring;
        let len = parts.iter().fold(0usize, |a, p| a.saturating_add(p.len()));
        if len > r.max_frame {
            Counters::bump(&r.counters.dropped, 1);
            return Err(SinkError::FrameTooLarge {
                len,
                max: r.max_frame,
            });
        }
        let cap = r.arena.cap() as u64;
        let n = r.slots.len() as u64;
        let seq = self.seq;
        let start = self.pos;
        let end = start + len as u64;

        // 1. Evict every frame whose slot we reuse or whose first byte we overwrite
        //    (frames lie in order, so this is always a prefix), and say so first.
        let mut oldest = self.oldest;
        while oldest < seq
            && (seq - oldest >= n || r.slots[(oldest % n) as usize].writer_extent() + cap < end)
        {
            oldest += 1;
        }
        if oldest != self.oldest {
            r.marks.tail.store(oldest, Ordering::Release);
            Counters::bump(&r.counters.overwritten, oldest - self.oldest);
            self.oldest = oldest;
        }

        // 2. Reserve the bytes and the slot before touching them.
        let slot = &r.slots[(seq % n) as usize];
        r.marks.reserved.store(end, Ordering::Release);
        slot.begin(seq);
        fence(Ordering::Release);

        // 3. Copy and publish the descriptor.
        let mut at = start;
        for p in parts {
            r.arena.write(at, p);
            at += p.len() as u64;
        }
        slot.publish(
            seq,
            &Desc {
                off: start,
                len,
                info: *info,
            },
        );

        // 4. Publish the frame.
        r.marks.head.store(seq + 1, Ordering::Release);
        if info.keyframe {
            r.marks.latest_key.store(seq + 1, Ordering::Release);
        }
        self.seq = seq + 1;
        self.pos = end;
        Counters::bump(&r.counters.written, 1);
        Counters::bump(&r.counters.bytes_written, len as u64);
        r.notify.notify_waiters();
        Ok(seq)
    }
}

#[cfg(all(test, not(edgecam_loom)))]
mod tests;
