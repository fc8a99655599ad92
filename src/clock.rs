//! Time as the rest of the crate sees it, so that time-dependent logic can be tested.
//!
//! Production code uses [`SystemClock`]; tests use [`ManualClock`] and move time by hand.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A source of monotonic and wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Monotonic nanoseconds since an arbitrary origin fixed when the clock was made.
    fn mono_ns(&self) -> u64;
    /// Wall-clock microseconds since the UNIX epoch.
    fn wall_us(&self) -> i64;
}

/// The real clocks of the machine.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    /// The instant that `mono_ns` counts from, so values fit comfortably in a `u64`.
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn mono_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn wall_us(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_micros() as i64,
            // A clock set before 1970 is a broken RTC; report it as negative rather than panic.
            Err(e) => -(e.duration().as_micros() as i64),
        }
    }
}

/// A clock that moves only when told to; for deterministic tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    /// Current monotonic time in nanoseconds.
    mono: AtomicU64,
    /// Current wall time in microseconds since the UNIX epoch.
    wall: AtomicI64,
}

impl ManualClock {
    /// A clock at monotonic 0 and the given wall time.
    pub fn new(wall_us: i64) -> Self {
        ManualClock {
            mono: AtomicU64::new(0),
            wall: AtomicI64::new(wall_us),
        }
    }

    /// Moves both clocks forward by `ns` nanoseconds.
    pub fn advance_ns(&self, ns: u64) {
        self.mono.fetch_add(ns, Ordering::SeqCst);
        self.wall.fetch_add((ns / 1000) as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn mono_ns(&self) -> u64 {
        self.mono.load(Ordering::SeqCst)
    }

    fn wall_us(&self) -> i64 {
        self.wall.load(Ordering::SeqCst)
    }
}
