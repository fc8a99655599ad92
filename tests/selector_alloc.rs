//! The selector's hot path does not allocate: a counting global allocator sees zero
//! allocations over many events after warm-up.

use edgecam::config::{AlarmConfig, AlarmMode, Config, Multiple, StreamConfig, StreamKind};
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

fn config(multiple: Multiple) -> Config {
    let mut cfg: Config = toml::from_str("").expect("empty config parses");
    cfg.select.multiple = multiple;
    cfg.select.min_dwell_ms = 200;
    cfg.select.dwell_s = 1;
    cfg.streams = (0..16)
        .map(|i| StreamConfig {
            id: format!("cam{i}"),
            name: None,
            kind: StreamKind::Testpattern,
            url: None,
            transport: Default::default(),
            device: None,
            width: None,
            height: None,
            fps: None,
            bitrate_kbps: None,
            gop: None,
            connect_timeout_ms: 5000,
            stall_timeout_ms: 3000,
            enabled: true,
        })
        .collect();
    let modes = [AlarmMode::Transparent, AlarmMode::Hold, AlarmMode::Latched];
    cfg.alarms = (0..32)
        .map(|i| AlarmConfig {
            id: format!("alarm{i}"),
            name: None,
            stream: format!("cam{}", i % 16),
            priority: (i % 4) as i32,
            mode: modes[i % 3],
            hold_s: 2,
            video_loss: i % 5 == 0,
            video_loss_after_s: 1,
            gpio: None,
            output: None,
        })
        .collect();
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
        let mut sel = Selector::new(&config(multiple), 256, Stamp::from_ms(0));
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
