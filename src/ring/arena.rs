//! The payload arena: `cap` bytes addressed by logical, ever-increasing `u64` positions
//! (`pos % cap`). A payload may wrap around the end; it is then copied in two parts.
//!
//! Concurrency model (a seqlock over atomic words, as crossbeam's `SeqLock`-backed
//! `AtomicCell` does): the one writer copies into the arena while readers may be copying the
//! same bytes out. Every access is a *relaxed atomic* load or store (of a machine word in the
//! portable copy, of bytes in the bulk copy below), so a racing copy is not a data race (which
//! Rust's memory model makes undefined behaviour even when the result is thrown away): it can
//! only return a mix of old and new words or bytes. A reader
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
//! # The bulk copy (x86_64, aarch64)
//!
//! The word loop above cannot vectorise, which made one reader about 2x slower than `memcpy`
//! at 64 KiB (bench/README.md, "The sound arena"). On x86_64 and aarch64 the arena is
//! therefore copied, in both directions, by an `asm!` loop of 16-byte vector loads and stores
//! (`movups` on x86_64, `ldp`/`stp q` on aarch64), with single relaxed `AtomicU8` accesses
//! for the last `len % 16` bytes. The argument that this is sound:
//!
//! - An `asm!` block is opaque to the compiler ("rules for inline assembly" in the Rust
//!   reference: `asm.rules.black-box`, `asm.rules.mem-same-as-ffi`): its memory accesses are
//!   not Rust non-atomic accesses, and it is sound as long as its effect is one that some
//!   sequence of abstract-machine operations could have had. The sequence chosen here is the
//!   "byte-wise atomic memcpy" of C++ proposal P1478: one relaxed atomic load (reader) or
//!   store (writer) per byte. A vector access on these CPUs is single-copy atomic per byte
//!   (every byte it reads holds some value that was stored to that byte), and P1478 states
//!   that copying several bytes in one operation "is indistinguishable from running them so
//!   quickly that the intermediate state is not observed". This is the argument of taiki-e's
//!   `atomic-memcpy` crate (an implementation of P1478 whose implementation notes quote that
//!   sentence; it copies with relaxed `AtomicUsize` loads, i.e. our word loop, so depending on
//!   it would not be faster) and of `atomic-maybe-uninit`, which implements atomic loads and
//!   stores with inline assembly, "currently the only sound way" for its values, and warns
//!   that this makes it invisible to Miri and "most kinds of Sanitizers".
//! - Mixed sizes: Rust's memory model does not allow racing atomic accesses of *different
//!   sizes* to the same bytes (std::sync::atomic, "memory model for atomic accesses"; the
//!   `AtomicU8::from_ptr` contract says so too), and
//!   `atomic-memcpy` likewise requires that load and store use "the same granularity". So in
//!   this build the writer uses the same byte-wise path as the readers: every access to the
//!   arena's bytes, from any thread, is (equivalent to) a relaxed byte access, and nothing
//!   touches them as `AtomicUsize` after `new` (outside the single-threaded unit test that
//!   compares the two copies). That also removes the writer's
//!   load-merge-store of a partly used word: it stores only its own bytes.
//! - Ordering: the bulk copy stays between the same fences as the word loop (the `asm!`
//!   blocks may access memory, so the compiler does not move them across `fence` or other
//!   atomics). x86 keeps ordinary loads in order with loads and stores with stores (`movups`,
//!   not `rep movsb`, whose fast-string stores the Intel SDM allows to complete out of
//!   order); aarch64's `dmb` fences order SIMD loads and stores like any other.
//!
//! The word loop stays for every other target (armv7 included), under `cfg(edgecam_loom)`
//! (loom models the word atomics; `tests/ring_loom.rs` checks the production word copy, not
//! a model of it) and under `cfg(edgecam_word_copy)`, which CI's ThreadSanitizer stage sets
//! because TSan cannot see accesses made inside `asm!` (docs/testing.md, "ThreadSanitizer").

use std::mem::MaybeUninit;

#[cfg(not(any(
    edgecam_loom,
    edgecam_word_copy,
    not(any(target_arch = "x86_64", target_arch = "aarch64"))
)))]
use std::sync::atomic::AtomicU8;

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
        #[cfg(any(
            edgecam_loom,
            edgecam_word_copy,
            not(any(target_arch = "x86_64", target_arch = "aarch64"))
        ))]
        self.store_words(start, src);
        #[cfg(not(any(
            edgecam_loom,
            edgecam_word_copy,
            not(any(target_arch = "x86_64", target_arch = "aarch64"))
        )))]
        self.store_bytes(start, src);
    }

    /// Reader: initialises every byte of `dst` from physical byte index `start`
    /// (`start + dst.len() <= cap`).
    fn load_range(&self, start: usize, dst: &mut [MaybeUninit<u8>]) {
        #[cfg(any(
            edgecam_loom,
            edgecam_word_copy,
            not(any(target_arch = "x86_64", target_arch = "aarch64"))
        ))]
        self.load_words(start, dst);
        #[cfg(not(any(
            edgecam_loom,
            edgecam_word_copy,
            not(any(target_arch = "x86_64", target_arch = "aarch64"))
        )))]
        self.load_bytes(start, dst);
    }

    /// [`Arena::store_range`] as relaxed `AtomicUsize` stores, word by word.
    #[cfg(any(
        test,
        edgecam_loom,
        edgecam_word_copy,
        not(any(target_arch = "x86_64", target_arch = "aarch64"))
    ))]
    fn store_words(&self, start: usize, src: &[u8]) {
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
    #[cfg(any(
        test,
        edgecam_loom,
        edgecam_word_copy,
        not(any(target_arch = "x86_64", target_arch = "aarch64"))
    ))]
    fn merge(&self, word: usize, lead: usize, part: &[u8]) {
        let slot = &self.words[word];
        let mut bytes = slot.load(Ordering::Relaxed).to_ne_bytes();
        bytes[lead..lead + part.len()].copy_from_slice(part);
        slot.store(usize::from_ne_bytes(bytes), Ordering::Relaxed);
    }

    /// [`Arena::load_range`] as relaxed `AtomicUsize` loads, word by word.
    #[cfg(any(
        test,
        edgecam_loom,
        edgecam_word_copy,
        not(any(target_arch = "x86_64", target_arch = "aarch64"))
    ))]
    fn load_words(&self, start: usize, dst: &mut [MaybeUninit<u8>]) {
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

/// The byte-wise path (module doc, "The bulk copy"): `asm!` vector copies for whole 16-byte
/// blocks, relaxed `AtomicU8` accesses for the rest. In this build nothing accesses the arena
/// as words, so every racing access to its bytes has the same (byte) granularity.
#[cfg(not(any(
    edgecam_loom,
    edgecam_word_copy,
    not(any(target_arch = "x86_64", target_arch = "aarch64"))
)))]
impl Arena {
    /// The arena's first byte. Derived from `&self.words`, whose `AtomicUsize`s are
    /// `UnsafeCell`s, so stores through it are allowed while `&self` is shared.
    fn base(&self) -> *mut u8 {
        self.words.as_ptr().cast::<u8>().cast_mut()
    }

    /// [`Arena::store_range`], byte-wise (the writer's half of P1478's atomic memcpy).
    fn store_bytes(&self, start: usize, src: &[u8]) {
        assert!(start <= self.cap && src.len() <= self.cap - start);
        let bulk = src.len() / BLOCK * BLOCK;
        // SAFETY: `[start, start + src.len())` is inside the arena's `cap <= words.len() * W`
        // bytes (asserted), and `src` is a live slice of that length that cannot overlap the
        // arena (the arena is only reachable through `&self` and never hands out `&[u8]`).
        // `bulk_copy`'s stores are single-copy atomic per byte, so the block stands for
        // `bulk` relaxed `AtomicU8` stores (module doc), the granularity of every other
        // access to these bytes in this build.
        unsafe { bulk_copy(self.base().add(start), src.as_ptr(), bulk) };
        for (i, &b) in src.iter().enumerate().skip(bulk) {
            // SAFETY: `start + i < start + src.len() <= cap`, inside the allocation; `u8`
            // needs no alignment; every concurrent access to this byte is a byte-sized atomic
            // one (loads by readers, via `bulk_copy` or here), as `AtomicU8::from_ptr` needs.
            unsafe { AtomicU8::from_ptr(self.base().add(start + i)) }.store(b, Ordering::Relaxed);
        }
    }

    /// [`Arena::load_range`], byte-wise (the reader's half of P1478's atomic memcpy).
    fn load_bytes(&self, start: usize, dst: &mut [MaybeUninit<u8>]) {
        assert!(start <= self.cap && dst.len() <= self.cap - start);
        let bulk = dst.len() / BLOCK * BLOCK;
        // SAFETY: as in `store_bytes`, with the roles swapped: the source range is inside the
        // arena, `dst` is an exclusively borrowed buffer of `dst.len()` bytes outside it
        // (writing `MaybeUninit<u8>` initialises it), and the loads stand for relaxed
        // `AtomicU8` loads racing only with the writer's byte-sized stores.
        unsafe { bulk_copy(dst.as_mut_ptr().cast::<u8>(), self.base().add(start), bulk) };
        for (i, d) in dst.iter_mut().enumerate().skip(bulk) {
            // SAFETY: as in `store_bytes`' tail loop.
            d.write(
                unsafe { AtomicU8::from_ptr(self.base().add(start + i)) }.load(Ordering::Relaxed),
            );
        }
    }
}

/// Bytes per `bulk_copy` step (one 128-bit vector register).
#[cfg(not(any(
    edgecam_loom,
    edgecam_word_copy,
    not(any(target_arch = "x86_64", target_arch = "aarch64"))
)))]
const BLOCK: usize = 16;

/// Copies `n` bytes (a multiple of [`BLOCK`]) from `src` to `dst`, 64 bytes per loop
/// iteration, then 16, with unaligned 128-bit vector loads and stores in ascending order.
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `n` bytes, the ranges must not
/// overlap, and any concurrent access to either range must be a byte-sized atomic one (the
/// block is sound as the equivalent sequence of relaxed `AtomicU8` loads and stores; module
/// doc, "The bulk copy").
#[cfg(all(target_arch = "x86_64", not(any(edgecam_loom, edgecam_word_copy))))]
#[inline]
unsafe fn bulk_copy(dst: *mut u8, src: *const u8, n: usize) {
    debug_assert_eq!(n % BLOCK, 0);
    // SAFETY: the caller guarantees both ranges; the loop reads `[src, src + n)` and writes
    // `[dst, dst + n)` only (SSE2, part of the x86_64 baseline), clobbers only the registers
    // declared, and uses no stack. `movups` accepts any alignment.
    unsafe {
        std::arch::asm!(
            "cmp {n}, 64",
            "jb 3f",
            "2:",
            "movups {a}, xmmword ptr [{src}]",
            "movups {b}, xmmword ptr [{src} + 16]",
            "movups {c}, xmmword ptr [{src} + 32]",
            "movups {d}, xmmword ptr [{src} + 48]",
            "movups xmmword ptr [{dst}], {a}",
            "movups xmmword ptr [{dst} + 16], {b}",
            "movups xmmword ptr [{dst} + 32], {c}",
            "movups xmmword ptr [{dst} + 48], {d}",
            "add {src}, 64",
            "add {dst}, 64",
            "sub {n}, 64",
            "cmp {n}, 64",
            "jae 2b",
            "3:",
            "test {n}, {n}",
            "jz 5f",
            "4:",
            "movups {a}, xmmword ptr [{src}]",
            "movups xmmword ptr [{dst}], {a}",
            "add {src}, 16",
            "add {dst}, 16",
            "sub {n}, 16",
            "jnz 4b",
            "5:",
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            n = inout(reg) n => _,
            a = out(xmm_reg) _,
            b = out(xmm_reg) _,
            c = out(xmm_reg) _,
            d = out(xmm_reg) _,
            options(nostack),
        );
    }
}

/// See the x86_64 version: the same loop with `ldp`/`stp` of `q` registers (NEON, part of the
/// aarch64 baseline), two 16-byte registers per instruction.
///
/// # Safety
/// As for the x86_64 version.
#[cfg(all(target_arch = "aarch64", not(any(edgecam_loom, edgecam_word_copy))))]
#[inline]
unsafe fn bulk_copy(dst: *mut u8, src: *const u8, n: usize) {
    debug_assert_eq!(n % BLOCK, 0);
    // SAFETY: as for x86_64. Unaligned SIMD loads and stores are allowed on normal memory.
    unsafe {
        std::arch::asm!(
            "cmp {n}, #64",
            "b.lo 3f",
            "2:",
            "ldp {a:q}, {b:q}, [{src}]",
            "ldp {c:q}, {d:q}, [{src}, #32]",
            "add {src}, {src}, #64",
            "stp {a:q}, {b:q}, [{dst}]",
            "stp {c:q}, {d:q}, [{dst}, #32]",
            "add {dst}, {dst}, #64",
            "sub {n}, {n}, #64",
            "cmp {n}, #64",
            "b.hs 2b",
            "3:",
            "cbz {n}, 5f",
            "4:",
            "ldr {a:q}, [{src}], #16",
            "str {a:q}, [{dst}], #16",
            "subs {n}, {n}, #16",
            "b.ne 4b",
            "5:",
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            n = inout(reg) n => _,
            a = out(vreg) _,
            b = out(vreg) _,
            c = out(vreg) _,
            d = out(vreg) _,
            options(nostack),
        );
    }
}

/// Initialises `dst` with `src` (same length).
#[cfg(any(
    test,
    edgecam_loom,
    edgecam_word_copy,
    not(any(target_arch = "x86_64", target_arch = "aarch64"))
))]
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

    /// The `asm!` bulk path against the word loop, both ways round: bytes stored by one are
    /// read back by the other, at every start offset over more than one 64-byte block and every
    /// length up to 300 (16-byte blocks, the 64-byte loop and the byte tail, each aligned
    /// or not), and a store never changes a byte outside its range.
    #[cfg(not(any(
        edgecam_loom,
        edgecam_word_copy,
        not(any(target_arch = "x86_64", target_arch = "aarch64"))
    )))]
    #[test]
    fn bulk_copy_matches_the_word_loop() {
        use std::mem::MaybeUninit;
        const CAP: usize = 512;
        let background: Vec<u8> = (0..CAP).map(|i| 0x5A ^ (i as u8).wrapping_mul(7)).collect();
        let read = |arena: &Arena, start: usize, len: usize, bulk: bool| -> Vec<u8> {
            let mut out = vec![MaybeUninit::<u8>::uninit(); len];
            if bulk {
                arena.load_bytes(start, &mut out);
            } else {
                arena.load_words(start, &mut out);
            }
            // SAFETY: `load_bytes` and `load_words` initialise every element.
            out.into_iter()
                .map(|b| unsafe { b.assume_init() })
                .collect()
        };
        for start in 0..80 {
            for len in 0..=300 {
                let src: Vec<u8> = (0..len)
                    .map(|i| (i as u8).wrapping_mul(13) ^ 0xC3)
                    .collect();
                for bulk_store in [true, false] {
                    let arena = Arena::new(CAP);
                    arena.store_words(0, &background);
                    if bulk_store {
                        arena.store_bytes(start, &src);
                    } else {
                        arena.store_words(start, &src);
                    }
                    let mut want = background.clone();
                    want[start..start + len].copy_from_slice(&src);
                    for bulk_load in [true, false] {
                        let ctx = format!(
                            "start {start} len {len} bulk store {bulk_store} load {bulk_load}"
                        );
                        assert_eq!(read(&arena, start, len, bulk_load), src, "{ctx}");
                        assert_eq!(read(&arena, 0, CAP, bulk_load), want, "{ctx}");
                    }
                }
            }
        }
    }
}
