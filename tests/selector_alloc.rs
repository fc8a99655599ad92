//! The selector's hot path does not allocate: a counting global allocator sees zero
//! allocations over many events after warm-up.

mod common;

use edgecam::config::{Config, Multiple};
use edgecam::select::{Selector, Stamp};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counts allocations made by threads that opted in.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Only the measuring thread counts, so the test harness's own threads cannot interfere.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The selector's reference load ([`common::sixteen_streams_32_alarms`]) with `multiple`.
fn config(multiple: Multiple) -> Config {
    let mut cfg = common::sixteen_streams_32_alarms();
    cfg.select.multiple = multiple;
    cfg
}

/// A deterministic mix of every kind of event.
fn drive(sel: &mut Selector, rng: &mut fastrand::Rng, now_ms: &mut u64, n: usize) {
    for _ in 0..n {
        *now_ms += rng.u64(0..300);
        let now = Stamp::from_ms(*now_ms);
        let a = rng.usize(0..32);
        let r = match rng.u8(0..10) {
            0..=4 => sel.alarm_input(a, rng.bool(), now),
            5 => sel.trigger(a, Some(Duration::from_millis(500)), now),
            6 => {
                if sel.alarm_state(a).is_some() && a % 3 == 2 {
                    sel.ack(a, now).map(|_| ())
                } else {
                    Ok(())
                }
            }
            7 => sel.stream_health(rng.usize(0..16), rng.bool(), now),
            8 => sel.select_index(Some(rng.usize(0..16)), now),
            _ => {
                sel.tick(now);
                Ok(())
            }
        };
        assert!(r.is_ok());
        std::hint::black_box(sel.next_deadline());
        std::hint::black_box(sel.active_stream());
    }
}

#[test]
fn steady_state_events_do_not_allocate() {
    for multiple in [Multiple::Sequence, Multiple::Latest] {
        let mut sel = Selector::<256>::new(&config(multiple), Stamp::from_ms(0));
        let mut rng = fastrand::Rng::with_seed(7);
        let mut now_ms = 0;
        // Warm-up: fills the history ring to its bound.
        drive(&mut sel, &mut rng, &mut now_ms, 2_000);
        assert_eq!(sel.history_len(), sel.history_capacity());

        ALLOCS.store(0, Ordering::Relaxed);
        COUNTING.with(|c| c.set(true));
        drive(&mut sel, &mut rng, &mut now_ms, 100_000);
        COUNTING.with(|c| c.set(false));
        assert_eq!(
            ALLOCS.load(Ordering::Relaxed),
            0,
            "allocations in steady state ({multiple:?})"
        );
        // The run did something: the view and alarms moved.
        assert!(sel.view_generation() > 100);
    }
}
