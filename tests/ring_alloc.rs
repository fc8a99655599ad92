//! Zero allocations in steady state, counted by a `#[global_allocator]` (this file is its
//! own test binary, so the allocator is not shared with other tests).
//!
//! After a warm-up that sizes the readers' buffers, 100,000 rounds of one push (payload in
//! two parts, random sizes up to the maximum, keyframes now and then) and reads in all
//! three modes (plus a `next` reader that falls behind, reports lag and jumps to the latest
//! keyframe) must allocate nothing on this thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use edgecam::frame::{Codec, FrameInfo, FrameSink};
use edgecam::ring::{FrameRing, RingSpec, Start};

/// Counts allocations made while the current thread has counting switched on.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: delegates every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_allocates_nothing() {
    let (mut w, ring) = FrameRing::new(RingSpec {
        arena_bytes: 256 * 1024,
        slots: 64,
    })
    .unwrap();
    let max = ring.max_frame_bytes();
    let source: Vec<u8> = (0..max).map(|i| i as u8).collect();
    let mut next = ring.reader(Start::Oldest);
    let mut behind = ring.reader(Start::Oldest);
    let mut latest = ring.reader(Start::Newest);
    let mut keys = ring.reader(Start::LatestKeyframe);
    let mut bufs: Vec<Vec<u8>> = (0..4).map(|_| Vec::new()).collect();
    let mut rng = fastrand::Rng::with_seed(7);
    let (mut delivered, mut lags) = (0u64, 0u64);

    let mut round = |i: u64| {
        let len = if i.is_multiple_of(97) {
            max
        } else {
            rng.usize(..=max)
        };
        let cut = rng.usize(..=len);
        let info = FrameInfo {
            codec: Codec::H264,
            keyframe: i.is_multiple_of(30),
            params_changed: false,
            pts_us: i as i64,
            recv_mono_ns: i,
            recv_wall_us: i as i64,
            epoch: 1,
        };
        w.push_frame(&info, &[&source[..cut], &source[cut..len]])
            .expect("fits");
        let [b0, b1, b2, b3] = &mut bufs[..] else {
            unreachable!("four buffers")
        };
        delivered += u64::from(next.next_into(b0).expect("keeps up").is_some());
        delivered += u64::from(latest.latest_into(b1).expect("keeps up").is_some());
        delivered += u64::from(keys.keyframe_into(b2).expect("keeps up").is_some());
        if i.is_multiple_of(200) {
            loop {
                match behind.next_into(b3) {
                    Ok(Some(_)) => delivered += 1,
                    Ok(None) => break,
                    Err(_) => lags += 1,
                }
            }
            behind.jump_to_latest_keyframe();
        }
    };

    for i in 0..1_000 {
        round(i);
    }
    COUNTING.with(|c| c.set(true));
    for i in 1_000..101_000 {
        round(i);
    }
    COUNTING.with(|c| c.set(false));
    let allocs = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(allocs, 0, "allocations in steady state");
    // The loop really exercised all paths.
    assert!(delivered > 100_000 && lags > 0, "{delivered} {lags}");
    assert_eq!(ring.stats().written, 101_000);
}
