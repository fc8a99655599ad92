//! The payload arena: `cap` bytes addressed by logical, ever-increasing `u64` positions
//! (`pos % cap`). A payload may wrap around the end; it is then copied in two parts.
//!
//! Concurrency model (a seqlock over atomic words, as crossbeam's `SeqLock`-backed
//! `AtomicCell` does): the one writer copies into the arena while readers may be copying the
//! same bytes out. Every access is a *relaxed atomic* load or store of a machine word, so a
//! racing copy is not a data race (which Rust's memory model makes undefined behaviour even
//! when the result is thrown away): it can only return a mix of old and new words. A reader
//! never trusts what it copied until it has re-validated, after an acquire fence, that the
//! writer had not reserved those bytes for overwriting (see `FrameRing::read_at`), and it
//! discards the copy otherwise.
//!
//! Relaxed loads and stores of aligned words compile to plain `ldr`/`str` (`mov` on x86),
//! but the compiler may not merge them into vector copies, so a copy runs word by word
//! (bench/README.md, "Frame ring", has the cost against `memcpy`). A payload that starts or ends
//! inside a word touches that word with a load-merge-store; only the single writer stores,
//! so the bytes of the neighbouring frame it stores back are the ones it wrote before.
//!
//! The same code runs under `cfg(edgecam_loom)`, where the words are loom atomics, so
//! `tests/ring_loom.rs` checks the production copy, not a model of it.

use std::mem::MaybeUninit;

use super::sync::{AtomicUsize, Ordering};

/// Bytes per arena word.
const W: usize = std::mem::size_of::<usize>();

/// The byte storage of one ring, allocated once.
pub(crate) struct Arena {
    /// The payload bytes, packed into native-endian words; the last word may be only
    /// partly used. Atomic so the writer and racing readers never form a data race.
    words: Box<[AtomicUsize]>,
    /// Capacity in bytes (not rounded up to whole words).
    cap: usize,
}

/// `n` zeroed words. Outside loom the allocation is `calloc`-like, so the kernel hands out
/// zero pages lazily, as it did for the old byte arena.
fn zeroed_words(n: usize) -> Box<[AtomicUsize]> {
    #[cfg(not(edgecam_loom))]
    {
        use std::alloc::{Layout, alloc_zeroed, handle_alloc_error};
        if n == 0 {
            return Box::new([]);
        }
        let Ok(layout) = Layout::array::<AtomicUsize>(n) else {
            // `RingSpec::validate` caps the arena far below `isize::MAX` bytes.
            panic!("ring arena of {n} words does not fit the address space");
        };
        // SAFETY: `layout` has a non-zero size (`n > 0`).
        let ptr = unsafe { alloc_zeroed(layout) }.cast::<AtomicUsize>();
        if ptr.is_null() {
            handle_alloc_error(layout);
        }
        // SAFETY: `ptr` is a live allocation from the global allocator with the layout of
        // `[AtomicUsize; n]`, which is what `Box<[AtomicUsize]>` frees with. `AtomicUsize`
        // has the in-memory representation of `usize`, for which all-zero bytes are the
        // valid value 0, so the zeroed memory is `n` initialised atomics. The pointer is
        // owned by the returned box only.
        unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, n)) }
    }
    #[cfg(edgecam_loom)]
    {
        (0..n).map(|_| AtomicUsize::new(0)).collect()
    }
}

impl Arena {
    /// Allocates `cap` zeroed bytes (`cap > 0`).
    pub(crate) fn new(cap: usize) -> Arena {
        Arena {
            words: zeroed_words(cap.div_ceil(W)),
            cap,
        }
    }

    /// Capacity in bytes.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Splits the logical range `[pos, pos + len)` into at most two physical ranges:
    /// `(start, first_len, second_len)`, the second one starting at index 0.
    fn split(&self, pos: u64, len: usize) -> (usize, usize, usize) {
        let cap = self.cap;
        // The remainder is < cap, which is a usize.
        let start = (pos % cap as u64) as usize;
        let first = len.min(cap - start);
        (start, first, len - first)
    }

    /// Copies `src` to logical position `pos`. Only the ring writer calls this, after it
    /// has published `reserved >= pos + src.len()` (and `src.len() <= cap`).
    pub(crate) fn write(&self, pos: u64, src: &[u8]) {
        debug_assert!(src.len() <= self.cap);
        let (start, first, _) = self.split(pos, src.len());
        let (a, b) = src.split_at(first);
        self.store_range(start, a);
        self.store_range(0, b);
    }

    /// Replaces the contents of `dst` with the `len` bytes at logical position `pos`.
    /// The copy is unvalidated: the caller must check the writer's `reserved` mark
    /// afterwards and discard `dst` if it may have raced. Reuses `dst`'s capacity, so it
    /// allocates only when `dst` is too small.
    pub(crate) fn read_into(&self, pos: u64, len: usize, dst: &mut Vec<u8>) {
        debug_assert!(len <= self.cap);
        let (start, first, second) = self.split(pos, len);
        // The words go straight into the spare capacity: zero-filling first (`resize`) cost
        // a whole extra pass, 25 to 40 % of the copy at 512 KiB, and appending a word at a
        // time with `extend_from_slice` measured 3.5x slower at 64 KiB.
        dst.clear();
        dst.reserve(len);
        let (a, b) = dst.spare_capacity_mut()[..len].split_at_mut(first);
        self.load_range(start, a);
        self.load_range(0, &mut b[..second]);
        // SAFETY: `len <= capacity` (reserved above), and the two `load_range` calls wrote
        // every one of the first `len` elements: `a` is `[0, first)` and `b[..second]` is
        // `[first, first + second)`, with `first + second == len` (`split`). `u8` has no
        // invalid bit patterns and no drop.
        unsafe { dst.set_len(len) };
    }

    /// Writer: stores `src` at physical byte index `start` (`start + src.len() <= cap`).
    fn store_range(&self, start: usize, src: &[u8]) {
        let mut word = start / W;
        let mut src = src;
        let lead = start % W;
        if lead != 0 && !src.is_empty() {
            let take = (W - lead).min(src.len());
            self.merge(word, lead, &src[..take]);
            src = &src[take..];
            word += 1;
        }
        let mut chunks = src.chunks_exact(W);
        for (slot, chunk) in self.words[word..].iter().zip(&mut chunks) {
            let mut bytes = [0u8; W];
            bytes.copy_from_slice(chunk);
            slot.store(usize::from_ne_bytes(bytes), Ordering::Relaxed);
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            self.merge(word + src.len() / W, 0, tail);
        }
    }

    /// Writer: replaces bytes `lead..lead + part.len()` of word `word`, keeping the others.
    /// The relaxed load returns this thread's own last store (the writer is the only
    /// thread that stores), so the kept bytes are stored back unchanged.
    fn merge(&self, word: usize, lead: usize, part: &[u8]) {
        let slot = &self.words[word];
        let mut bytes = slot.load(Ordering::Relaxed).to_ne_bytes();
        bytes[lead..lead + part.len()].copy_from_slice(part);
        slot.store(usize::from_ne_bytes(bytes), Ordering::Relaxed);
    }

    /// Reader: initialises every byte of `dst` from physical byte index `start`
    /// (`start + dst.len() <= cap`).
    fn load_range(&self, start: usize, dst: &mut [MaybeUninit<u8>]) {
        let mut word = start / W;
        let mut dst = dst;
        let lead = start % W;
        if lead != 0 && !dst.is_empty() {
            let take = (W - lead).min(dst.len());
            let bytes = self.words[word].load(Ordering::Relaxed).to_ne_bytes();
            let (head, rest) = dst.split_at_mut(take);
            fill(head, &bytes[lead..lead + take]);
            dst = rest;
            word += 1;
        }
        let full = dst.len() / W;
        let (body, tail) = dst.split_at_mut(full * W);
        for (slot, chunk) in self.words[word..].iter().zip(body.chunks_exact_mut(W)) {
            // One 8-byte (4 on 32-bit ARM) store after optimisation.
            fill(chunk, &slot.load(Ordering::Relaxed).to_ne_bytes());
        }
        if !tail.is_empty() {
            let bytes = self.words[word + full]
                .load(Ordering::Relaxed)
                .to_ne_bytes();
            fill(tail, &bytes[..tail.len()]);
        }
    }
}

/// Initialises `dst` with `src` (same length).
#[inline(always)]
fn fill(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    for (d, &b) in dst.iter_mut().zip(src) {
        d.write(b);
    }
}

#[cfg(all(test, not(edgecam_loom)))]
mod tests {
    use super::Arena;

    /// Every start offset and length (including wraps and partial words) reads back what
    /// was written, and a write never changes a byte outside its range.
    #[test]
    fn unaligned_writes_read_back_and_leave_neighbours_alone() {
        for cap in [1usize, 7, 8, 9, 23, 64] {
            for pos in 0..(2 * cap as u64) {
                for len in 0..=cap {
                    let arena = Arena::new(cap);
                    let fill: Vec<u8> = (0..cap).map(|i| 0xA0 ^ i as u8).collect();
                    arena.write(0, &fill);
                    let src: Vec<u8> = (0..len).map(|i| i as u8 + 1).collect();
                    arena.write(pos, &src);
                    let mut got = Vec::new();
                    arena.read_into(pos, len, &mut got);
                    assert_eq!(got, src, "cap {cap} pos {pos} len {len}");
                    let mut all = Vec::new();
                    arena.read_into(0, cap, &mut all);
                    for (i, b) in all.iter().enumerate() {
                        let logical = (i + cap - (pos as usize % cap)) % cap;
                        let want = if logical < len { src[logical] } else { fill[i] };
                        assert_eq!(*b, want, "cap {cap} pos {pos} len {len} byte {i}");
                    }
                }
            }
        }
    }
}
