//! The payload arena: `cap` bytes addressed by logical, ever-increasing `u64` positions
//! (`pos % cap`). A payload may wrap around the end; it is then copied in two parts.
//!
//! Concurrency model (seqlock bytes, the crossbeam `AtomicCell` precedent): the one writer
//! copies into the arena while readers may be copying the same bytes out. A reader never
//! trusts what it copied until it has re-validated, after an acquire fence, that the writer
//! had not reserved those bytes for overwriting (see `FrameRing::read_at`). Bytes have no
//! invalid bit patterns, and unvalidated copies are discarded, so a racing copy can only
//! produce garbage that is thrown away, never a value that is used.
//!
//! Under `cfg(edgecam_loom)` every byte is a loom `AtomicU8` accessed with relaxed ordering,
//! so loom sees (and checks) exactly the races the protocol has to tolerate.

#[cfg(not(edgecam_loom))]
use std::cell::UnsafeCell;

#[cfg(edgecam_loom)]
use super::sync::{AtomicU8, Ordering};

/// The byte storage of one ring, allocated once.
pub(crate) struct Arena {
    /// The bytes. `UnsafeCell` because the writer mutates them through a shared reference
    /// while readers copy them out (validated afterwards, see the module doc).
    #[cfg(not(edgecam_loom))]
    bytes: Box<[UnsafeCell<u8>]>,
    /// Loom build: one atomic per byte so the model checker tracks every access.
    #[cfg(edgecam_loom)]
    bytes: Box<[AtomicU8]>,
}

// SAFETY: the arena is shared between the single writer and the readers. Concurrent
// access to the same bytes is the seqlock pattern: readers validate every copy against the
// writer's `reserved` mark (with fences) and discard anything that may have raced, and `u8`
// has no invalid values, so no torn value is ever used. Only one `RingWriter` exists (it is
// not `Clone`), so there are never two concurrent writers.
#[cfg(not(edgecam_loom))]
unsafe impl Sync for Arena {}

impl Arena {
    /// Allocates `cap` zeroed bytes (`cap > 0`).
    pub(crate) fn new(cap: usize) -> Arena {
        #[cfg(not(edgecam_loom))]
        {
            let zeroed: Box<[u8]> = vec![0u8; cap].into_boxed_slice();
            let raw = Box::into_raw(zeroed) as *mut [UnsafeCell<u8>];
            // SAFETY: `UnsafeCell<u8>` is `repr(transparent)` over `u8`, so a `[u8]` slice
            // has the same layout as a `[UnsafeCell<u8>]` of the same length; the pointer
            // comes from `Box::into_raw` and is turned back into a `Box` exactly once.
            // (`vec![0; n]` lets the allocator hand out lazily zeroed pages.)
            let bytes = unsafe { Box::from_raw(raw) };
            Arena { bytes }
        }
        #[cfg(edgecam_loom)]
        {
            Arena {
                bytes: (0..cap).map(|_| AtomicU8::new(0)).collect(),
            }
        }
    }

    /// Capacity in bytes.
    pub(crate) fn cap(&self) -> usize {
        self.bytes.len()
    }

    /// Splits the logical range `[pos, pos + len)` into at most two physical ranges:
    /// `(start, first_len, second_len)`, the second one starting at index 0.
    fn split(&self, pos: u64, len: usize) -> (usize, usize, usize) {
        let cap = self.cap();
        // The remainder is < cap, which is a usize.
        let start = (pos % cap as u64) as usize;
        let first = len.min(cap - start);
        (start, first, len - first)
    }

    /// Copies `src` to logical position `pos`. Only the ring writer calls this, after it
    /// has published `reserved >= pos + src.len()` (and `src.len() <= cap`).
    pub(crate) fn write(&self, pos: u64, src: &[u8]) {
        debug_assert!(src.len() <= self.cap());
        let (start, first, second) = self.split(pos, src.len());
        #[cfg(not(edgecam_loom))]
        {
            let base = UnsafeCell::raw_get(self.bytes.as_ptr());
            // SAFETY: `start + first <= cap` and `second <= start` (the payload is never
            // longer than the arena), so both destination ranges are inside the allocation,
            // and the source is a distinct `&[u8]`, so they do not overlap. Readers racing
            // with these writes are tolerated by the seqlock validation (see `Arena`'s Sync
            // impl); there is only one writer.
            unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr(), base.add(start), first);
                std::ptr::copy_nonoverlapping(src.as_ptr().add(first), base, second);
            }
        }
        #[cfg(edgecam_loom)]
        {
            for (i, b) in src[..first].iter().enumerate() {
                self.bytes[start + i].store(*b, Ordering::Relaxed);
            }
            for (i, b) in src[first..].iter().enumerate() {
                self.bytes[i].store(*b, Ordering::Relaxed);
            }
            let _ = second;
        }
    }

    /// Replaces the contents of `dst` with the `len` bytes at logical position `pos`.
    /// The copy is unvalidated: the caller must check the writer's `reserved` mark
    /// afterwards and discard `dst` if it may have raced. Reuses `dst`'s capacity, so it
    /// allocates only when `dst` is too small.
    pub(crate) fn read_into(&self, pos: u64, len: usize, dst: &mut Vec<u8>) {
        debug_assert!(len <= self.cap());
        dst.clear();
        dst.reserve(len);
        let (start, first, second) = self.split(pos, len);
        #[cfg(not(edgecam_loom))]
        {
            let base = UnsafeCell::raw_get(self.bytes.as_ptr()) as *const u8;
            // SAFETY: the source ranges are inside the arena (see `write`), `dst` has room
            // for `len = first + second` bytes after `reserve`, and `dst` is a separate
            // allocation. The bytes may be concurrently overwritten by the writer; `u8` has
            // no invalid values and the caller validates before using them (module doc).
            // `set_len` is sound because all `len` bytes were just initialised.
            unsafe {
                let out = dst.as_mut_ptr();
                std::ptr::copy_nonoverlapping(base.add(start), out, first);
                std::ptr::copy_nonoverlapping(base, out.add(first), second);
                dst.set_len(len);
            }
        }
        #[cfg(edgecam_loom)]
        {
            for b in &self.bytes[start..start + first] {
                dst.push(b.load(Ordering::Relaxed));
            }
            for b in &self.bytes[..second] {
                dst.push(b.load(Ordering::Relaxed));
            }
        }
    }
}
