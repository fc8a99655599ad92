//! Retry delays: exponential growth, capped, reset after a stable session (or by the caller,
//! when a camera answers again); with or without jitter.
//!
//! Pure logic: the random draw is passed in, so tests pin it. Delay number `n` (counting
//! failures since the last reset from 0) is `unit · min(cap, base · 2ⁿ)` for the caller's
//! `unit` in `[0, 1]`:
//!
//! - The stream supervisors ([`crate::ingest::supervisor`]) draw `unit` uniformly ("full
//!   jitter"), which spreads the reconnects of many cameras that failed together (a switch
//!   reboot) instead of having them retry in lockstep.
//! - The GPIO input tasks ([`crate::gpio::run_gpio_input`]) pass `1.0`: one task per alarm
//!   line, no herd to spread, and the retry times stay the plain doubling an installer
//!   expects (0.5, 1, 2, 4 ... 30 s).

use std::time::Duration;

/// The knobs of [`Backoff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Ceiling of the first delay; each further failure doubles the ceiling.
    pub base: Duration,
    /// The ceiling never grows beyond this.
    pub cap: Duration,
    /// A session that stayed live at least this long resets the growth.
    pub stable_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            stable_after: Duration::from_secs(30),
        }
    }
}

/// Retry delay state of one stream or one GPIO input.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The knobs.
    cfg: BackoffConfig,
    /// Failures since the last reset; sets the ceiling of the next delay.
    failures: u32,
}

impl Backoff {
    /// A fresh backoff: the next delay is at most `cfg.base`.
    pub fn new(cfg: BackoffConfig) -> Self {
        Backoff { cfg, failures: 0 }
    }

    /// Failures counted since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The largest delay the next call to [`Backoff::next_delay`] can return.
    pub fn ceiling(&self) -> Duration {
        // 2^31 · base overflows nothing in u128 nanoseconds and is far beyond any sane cap.
        let factor = 1u128 << self.failures.min(31);
        let nanos = self.cfg.base.as_nanos().saturating_mul(factor);
        let cap = self.cfg.cap.as_nanos();
        Duration::from_nanos(nanos.min(cap).min(u128::from(u64::MAX)) as u64)
    }

    /// Tells the backoff how long the attempt that just ended was live (zero if it never got
    /// a frame). A stable session forgets earlier failures.
    pub fn attempt_ended(&mut self, live_for: Duration) {
        if live_for >= self.cfg.stable_after {
            self.failures = 0;
        }
    }

    /// Forgets earlier failures: the next delay is at most `cfg.base` again. For a camera
    /// that answers again after it could not be reached, so that a camera still booting
    /// (answering, but failing its first requests) is retried soon rather than after the
    /// ceiling its outage had grown.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The delay before the next attempt, for a uniform random `unit` in `[0, 1)`; counts one
    /// more failure. Values outside `[0, 1]` are clamped.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let delay = self.ceiling().mul_f64(unit.clamp(0.0, 1.0));
        self.failures = self.failures.saturating_add(1);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BackoffConfig {
        BackoffConfig {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            stable_after: Duration::from_secs(30),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let mut b = Backoff::new(cfg());
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(b.ceiling().as_millis());
            b.next_delay(0.5);
        }
        assert_eq!(
            ceilings,
            [
                500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000
            ]
        );
    }

    #[test]
    fn full_jitter_spans_zero_to_ceiling() {
        let mut b = Backoff::new(cfg());
        for _ in 0..3 {
            b.next_delay(0.0);
        }
        // Ceiling is now 4 s.
        assert_eq!(b.clone().next_delay(0.0), Duration::ZERO);
        assert_eq!(b.clone().next_delay(1.0), Duration::from_secs(4));
        assert_eq!(b.clone().next_delay(0.25), Duration::from_secs(1));
        assert_eq!(b.clone().next_delay(7.0), Duration::from_secs(4), "clamped");
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut b = Backoff::new(cfg());
        for _ in 0..10_000 {
            assert!(b.next_delay(1.0) <= Duration::from_secs(30));
        }
        assert_eq!(b.ceiling(), Duration::from_secs(30));
    }

    #[test]
    fn reset_starts_the_ladder_again() {
        let mut b = Backoff::new(cfg());
        for _ in 0..8 {
            b.next_delay(1.0);
        }
        assert_eq!(b.ceiling(), Duration::from_secs(30));
        b.reset();
        assert_eq!((b.failures(), b.ceiling()), (0, Duration::from_millis(500)));
        assert_eq!(b.next_delay(1.0), Duration::from_millis(500));
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn a_stable_session_resets_and_a_short_one_does_not() {
        let mut b = Backoff::new(cfg());
        for _ in 0..5 {
            b.next_delay(1.0);
        }
        b.attempt_ended(Duration::from_secs(29));
        assert_eq!(b.failures(), 5);
        b.attempt_ended(Duration::from_secs(30));
        assert_eq!(b.failures(), 0);
        assert_eq!(b.next_delay(1.0), Duration::from_millis(500));
    }
}
