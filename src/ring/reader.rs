//! Reading a ring: a cursor plus the three read modes (`next`, `latest`, `keyframes`).

use std::sync::Arc;

use thiserror::Error;

use super::{FrameRing, ReadAt};
use crate::frame::FrameMeta;

/// Where a new [`Reader`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the oldest frame still stored.
    Oldest,
    /// At the next frame to be written (nothing already stored is returned).
    Newest,
    /// At the latest stored keyframe (the current GOP), or like [`Start::Newest`] when the
    /// ring holds no keyframe.
    LatestKeyframe,
}

/// A reader fell behind: frames it had not read were overwritten. Never silent.
///
/// After `next_into` reports it, the cursor is at the latest keyframe if one is still stored
/// after the lost frames, else at the oldest frame still stored (or just past the lost
/// frame, if the writer evicted nothing more meanwhile). After `latest_into` /
/// `keyframe_into` it is just past the frame that was lost.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("ring reader lagged: {skipped} frames skipped, resuming at {resume_at}")]
pub struct Lagged {
    /// Frames between the old cursor and the new one that this reader will never see.
    pub skipped: u64,
    /// The cursor after the jump: the next sequence number the reader tries.
    pub resume_at: u64,
}

/// One consumer's position in a ring. Cheap; each consumer owns one.
pub struct Reader {
    /// The ring read from.
    ring: Arc<FrameRing>,
    /// Next sequence number this reader wants.
    cursor: u64,
    /// Frames passed over deliberately by `latest_into` / `keyframe_into` (not lag).
    passed_over: u64,
}

impl Reader {
    /// A reader of `ring` positioned by `start`.
    pub(crate) fn new(ring: Arc<FrameRing>, start: Start) -> Reader {
        let cursor = match start {
            Start::Oldest => ring.oldest(),
            Start::Newest => ring.head(),
            Start::LatestKeyframe => ring.latest_keyframe().unwrap_or_else(|| ring.head()),
        };
        Reader {
            ring,
            cursor,
            passed_over: 0,
        }
    }

    /// Next sequence number this reader will try.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Frames `latest_into` / `keyframe_into` skipped on purpose (lag is reported apart).
    pub fn passed_over(&self) -> u64 {
        self.passed_over
    }

    /// The ring this reader reads.
    pub fn ring(&self) -> &Arc<FrameRing> {
        &self.ring
    }

    /// Mode `next`: the frame at the cursor, then the one after, every frame in order.
    /// `Ok(None)` when nothing new is stored. `buf` is cleared and filled with the payload,
    /// reusing its capacity. On [`Lagged`] the cursor has moved (see there).
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<FrameMeta>, Lagged> {
        if self.cursor >= self.ring.head() {
            buf.clear();
            return Ok(None);
        }
        if self.cursor < self.ring.oldest() {
            buf.clear();
            return Err(self.lag_next());
        }
        match self.ring.read_at(self.cursor, buf) {
            ReadAt::Found(meta) => {
                self.cursor += 1;
                Ok(Some(meta))
            }
            ReadAt::Overwritten => Err(self.lag_next()),
            ReadAt::NotYet => Ok(None),
        }
    }

    /// Mode `latest`: the newest frame if this reader has not returned it yet; older unread
    /// frames are passed over (counted in [`passed_over`](Self::passed_over)).
    pub fn latest_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<FrameMeta>, Lagged> {
        let head = self.ring.head();
        if head <= self.cursor {
            buf.clear();
            return Ok(None);
        }
        let target = head - 1;
        match self.ring.read_at(target, buf) {
            ReadAt::Found(meta) => {
                self.passed_over += target - self.cursor;
                self.cursor = head;
                Ok(Some(meta))
            }
            ReadAt::Overwritten | ReadAt::NotYet => Err(self.lag_to(head)),
        }
    }

    /// Mode `keyframes`: the latest keyframe if this reader has not returned it yet; other
    /// frames are passed over. If that keyframe was evicted before it could be read, this
    /// reports [`Lagged`] and moves past it.
    pub fn keyframe_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<FrameMeta>, Lagged> {
        let Some(k) = self
            .ring
            .marks
            .latest_key
            .load(super::Ordering::Acquire)
            .checked_sub(1)
        else {
            buf.clear();
            return Ok(None);
        };
        if k < self.cursor {
            buf.clear();
            return Ok(None);
        }
        if k < self.ring.oldest() {
            buf.clear();
            return Err(self.lag_to(k + 1));
        }
        match self.ring.read_at(k, buf) {
            ReadAt::Found(meta) => {
                self.passed_over += k - self.cursor;
                self.cursor = k + 1;
                Ok(Some(meta))
            }
            ReadAt::Overwritten | ReadAt::NotYet => Err(self.lag_to(k + 1)),
        }
    }

    /// Moves the cursor to the latest stored keyframe (backwards or forwards), so the next
    /// `next_into` starts the current GOP. Returns false (cursor unchanged) if the ring holds
    /// no keyframe. A deliberate jump, so it is not counted as lag.
    pub fn jump_to_latest_keyframe(&mut self) -> bool {
        match self.ring.latest_keyframe() {
            Some(k) => {
                self.cursor = k;
                true
            }
            None => false,
        }
    }

    /// Moves the cursor to `seq` (clamped to the stored range), e.g. back to a keyframe found
    /// by an earlier scan. A deliberate jump, not counted as lag.
    pub fn seek(&mut self, seq: u64) {
        self.cursor = seq.clamp(self.ring.oldest(), self.ring.head());
    }

    /// Waits until a frame after the cursor is stored (returns at once if one is). Cancel-safe.
    pub async fn wait(&mut self) {
        self.ring.wait_for(self.cursor).await;
    }

    /// Lag in mode `next`: resume at the latest keyframe after the lost frame if one is
    /// stored, else at the oldest stored frame (never before the lost one).
    fn lag_next(&mut self) -> Lagged {
        let floor = self.ring.oldest().max(self.cursor + 1);
        let key = self
            .ring
            .marks
            .latest_key
            .load(super::Ordering::Acquire)
            .checked_sub(1);
        let target = match key {
            Some(k) if k >= floor => k,
            _ => floor,
        };
        self.lag_to(target)
    }

    /// Moves the cursor forward to `target`, counting and reporting the frames lost.
    fn lag_to(&mut self, target: u64) -> Lagged {
        let skipped = target - self.cursor;
        self.cursor = target;
        self.ring.count_lag(skipped);
        Lagged {
            skipped,
            resume_at: target,
        }
    }
}
