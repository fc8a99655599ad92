//! One slot descriptor: where a frame's payload lies and what the source said about it,
//! guarded by a seqlock stamp.
//!
//! The stamp of the slot holding sequence number `seq` is `2 * seq + 1` while the writer
//! fills it and `2 * seq + 2` once it is published; stamps only grow. A reader loads the
//! stamp (acquire), the fields (relaxed), issues an acquire fence and reloads the stamp: the
//! fields belong to `seq` only if both loads saw `2 * seq + 2`.

use super::sync::{AtomicU64, Ordering, fence};
use crate::frame::{Codec, FrameInfo};

/// Bit in the tag word: the frame is a keyframe.
const TAG_KEYFRAME: u64 = 1 << 40;
/// Bit in the tag word: codec parameters changed with this frame.
const TAG_PARAMS: u64 = 1 << 41;

/// A frame's descriptor as the writer stores it and a reader gets it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Desc {
    /// Logical arena position of the first payload byte.
    pub(crate) off: u64,
    /// Payload length in bytes.
    pub(crate) len: usize,
    /// The source's description of the frame.
    pub(crate) info: FrameInfo,
}

/// What a validated slot read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotRead {
    /// The slot holds the requested frame; the descriptor is consistent.
    Found(Desc),
    /// The slot has been (or is being) reused for a newer frame.
    Overwritten,
    /// The requested frame has not been published yet.
    NotYet,
}

/// The descriptor table entry. Every field is an atomic word so readers can load it while
/// the writer stores it; consistency comes from the stamp.
pub(crate) struct Slot {
    /// Seqlock stamp: `2*seq+1` while being written, `2*seq+2` when published, 0 = never used.
    stamp: AtomicU64,
    /// Logical arena position of the payload (see [`Desc::off`]).
    off: AtomicU64,
    /// Payload length in bytes.
    len: AtomicU64,
    /// Packed small fields: epoch (bits 0..32), codec (32..40), keyframe and
    /// params-changed flags (bits 40, 41); packed to keep the per-frame atomic count low.
    tag: AtomicU64,
    /// Presentation timestamp (µs), stored as the bits of an `i64`.
    pts_us: AtomicU64,
    /// Monotonic receive time (ns).
    recv_mono_ns: AtomicU64,
    /// Wall-clock receive time (µs since the epoch), stored as the bits of an `i64`.
    recv_wall_us: AtomicU64,
}

impl Slot {
    /// An empty slot (stamp 0 matches no sequence number).
    pub(crate) fn new() -> Slot {
        Slot {
            stamp: AtomicU64::new(0),
            off: AtomicU64::new(0),
            len: AtomicU64::new(0),
            tag: AtomicU64::new(0),
            pts_us: AtomicU64::new(0),
            recv_mono_ns: AtomicU64::new(0),
            recv_wall_us: AtomicU64::new(0),
        }
    }

    /// Writer, step 1: marks the slot as being rewritten for `seq` (odd stamp). The caller
    /// issues a release fence after this and before touching the fields or the payload.
    pub(crate) fn begin(&self, seq: u64) {
        self.stamp.store(2 * seq + 1, Ordering::Relaxed);
    }

    /// Writer, step 2: stores the descriptor and publishes it for `seq` (even stamp,
    /// release, so the fields and the payload copied before it are visible to a reader
    /// that acquires the stamp).
    pub(crate) fn publish(&self, seq: u64, d: &Desc) {
        let tag = u64::from(d.info.epoch)
            | (u64::from(d.info.codec.as_u8()) << 32)
            | if d.info.keyframe { TAG_KEYFRAME } else { 0 }
            | if d.info.params_changed { TAG_PARAMS } else { 0 };
        self.off.store(d.off, Ordering::Relaxed);
        self.len.store(d.len as u64, Ordering::Relaxed);
        self.tag.store(tag, Ordering::Relaxed);
        self.pts_us.store(d.info.pts_us as u64, Ordering::Relaxed);
        self.recv_mono_ns
            .store(d.info.recv_mono_ns, Ordering::Relaxed);
        self.recv_wall_us
            .store(d.info.recv_wall_us as u64, Ordering::Relaxed);
        self.stamp.store(2 * seq + 2, Ordering::Release);
    }

    /// The writer's own view of where the payload in this slot lies (it wrote it, so a
    /// relaxed load is exact). Used to decide which frames a new payload evicts.
    pub(crate) fn writer_extent(&self) -> u64 {
        self.off.load(Ordering::Relaxed)
    }

    /// Reader: a validated read of the descriptor of `seq`.
    pub(crate) fn read(&self, seq: u64) -> SlotRead {
        let want = 2 * seq + 2;
        let s1 = self.stamp.load(Ordering::Acquire);
        if s1 < want {
            return SlotRead::NotYet;
        }
        if s1 > want {
            return SlotRead::Overwritten;
        }
        let off = self.off.load(Ordering::Relaxed);
        let len = self.len.load(Ordering::Relaxed);
        let tag = self.tag.load(Ordering::Relaxed);
        let pts_us = self.pts_us.load(Ordering::Relaxed) as i64;
        let recv_mono_ns = self.recv_mono_ns.load(Ordering::Relaxed);
        let recv_wall_us = self.recv_wall_us.load(Ordering::Relaxed) as i64;
        fence(Ordering::Acquire);
        if self.stamp.load(Ordering::Relaxed) != s1 {
            return SlotRead::Overwritten;
        }
        // The stamp did not change, so these are the values the writer published for `seq`;
        // the codec byte therefore came from `Codec::as_u8`.
        let Some(codec) = Codec::from_u8((tag >> 32) as u8) else {
            return SlotRead::Overwritten;
        };
        let Ok(len) = usize::try_from(len) else {
            return SlotRead::Overwritten;
        };
        SlotRead::Found(Desc {
            off,
            len,
            info: FrameInfo {
                codec,
                keyframe: tag & TAG_KEYFRAME != 0,
                params_changed: tag & TAG_PARAMS != 0,
                pts_us,
                recv_mono_ns,
                recv_wall_us,
                epoch: tag as u32,
            },
        })
    }
}
