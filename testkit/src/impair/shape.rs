//! The arithmetic of impairment, free of sockets and tasks: when a chunk may leave (delay and
//! jitter, never reordering), how long a bandwidth cap holds it (a token bucket), and whether
//! a datagram is lost. Random draws are passed in, so tests pin them; time is tokio's
//! [`Instant`], so paused-time tests drive it.

use std::time::Duration;
use tokio::time::Instant;

/// A bandwidth cap: a bucket of byte tokens refilled at a fixed rate up to a depth (the burst
/// a link passes at full speed). A send may take more tokens than there are; the debt is paid
/// by waiting, so a chunk larger than the bucket still goes, only later.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Refill rate, bytes per second.
    bytes_per_s: f64,
    /// Most tokens the bucket holds, bytes.
    depth: f64,
    /// Tokens now (negative: debt still to wait out).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl TokenBucket {
    /// A full bucket for a cap of `rate_bps` bits per second and a burst of `burst_bytes`.
    pub fn new(rate_bps: u64, burst_bytes: u64, now: Instant) -> Self {
        let depth = burst_bytes.max(1) as f64;
        TokenBucket {
            bytes_per_s: (rate_bps.max(1) as f64) / 8.0,
            depth,
            tokens: depth,
            at: now,
        }
    }

    /// Takes `n` bytes' worth at `now`; returns how long the sender must wait before those
    /// bytes may go (zero when the bucket had them).
    pub fn take(&mut self, now: Instant, n: usize) -> Duration {
        if now > self.at {
            let dt = (now - self.at).as_secs_f64();
            self.tokens = (self.tokens + dt * self.bytes_per_s).min(self.depth);
            self.at = now;
        }
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.bytes_per_s)
        }
    }
}

/// Delay with jitter that keeps order: each chunk is due `delay ± jitter` after it arrived
/// (uniform, never before it arrived), but never before the chunk ahead of it. That is what
/// TCP does with a jittery path (the receiver's stack reorders, the application sees a late
/// in-order byte stream), and what a router queue with a varying delay does to datagrams.
#[derive(Debug, Clone)]
pub struct DelayLine {
    /// Mean one-way delay.
    delay: Duration,
    /// Half-width of the uniform spread around `delay`.
    jitter: Duration,
    /// When the previous chunk is due: no later chunk leaves before it.
    last: Option<Instant>,
}

impl DelayLine {
    /// A line with this mean delay and spread.
    pub fn new(delay: Duration, jitter: Duration) -> Self {
        DelayLine {
            delay,
            jitter,
            last: None,
        }
    }

    /// When a chunk arriving at `now` is due, for a uniform draw `unit` in `[0, 1)`.
    pub fn due(&mut self, now: Instant, unit: f64) -> Instant {
        let spread = self.jitter.as_secs_f64() * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let offset = (self.delay.as_secs_f64() + spread).max(0.0);
        let mut due = now + Duration::from_secs_f64(offset);
        if let Some(last) = self.last {
            due = due.max(last);
        }
        self.last = Some(due);
        due
    }
}

/// Whether a datagram is lost, for loss probability `p` and a uniform draw `unit`.
pub fn lost(p: f64, unit: f64) -> bool {
    unit < p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_bucket_passes_its_burst_then_paces_at_the_rate() {
        let t0 = Instant::now();
        // 8000 bit/s = 1000 bytes/s, 500-byte burst.
        let mut b = TokenBucket::new(8000, 500, t0);
        assert_eq!(b.take(t0, 500), Duration::ZERO, "the burst goes at once");
        assert_eq!(b.take(t0, 250), ms(250), "then 1000 bytes/s");
        // The sender waited 250 ms: the debt is paid, the next 100 bytes wait 100 ms.
        assert_eq!(b.take(t0 + ms(250), 100), ms(100));
        // A long idle spell refills to the depth, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.take(later, 500), Duration::ZERO);
        assert_eq!(b.take(later, 1), ms(1));
    }

    #[test]
    fn a_chunk_larger_than_the_bucket_waits_for_its_size() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(8000, 100, t0);
        assert_eq!(b.take(t0, 1100), Duration::from_secs(1));
    }

    #[test]
    fn over_a_long_run_the_bucket_delivers_the_rate() {
        // 3 Mbit/s cap fed 1400-byte packets as fast as it lets them go, for 10 s.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3_000_000, 16_000, t0);
        let mut now = t0;
        let mut sent = 0u64;
        while now < t0 + Duration::from_secs(10) {
            now += b.take(now, 1400);
            sent += 1400;
        }
        let rate = sent as f64 * 8.0 / (now - t0).as_secs_f64();
        assert!((2_990_000.0..3_020_000.0).contains(&rate), "{rate}");
    }

    #[test]
    fn jitter_delays_within_its_bounds_and_never_reorders() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(ms(50), ms(40));
        let mut rng = fastrand::Rng::with_seed(7);
        let mut prev = t0;
        let mut clamped = 0;
        for i in 0..10_000u64 {
            // One chunk a millisecond: much denser than the spread, so order matters.
            let at = t0 + ms(i);
            let unit = rng.f64();
            let due = line.due(at, unit);
            assert!(due >= prev, "chunk {i} would overtake the one before it");
            let d = due - at;
            assert!(d >= ms(10) && d <= ms(90), "chunk {i}: {d:?}");
            if d > ms(10) + ms(80).mul_f64(unit) + Duration::from_micros(1) {
                clamped += 1;
            }
            prev = due;
        }
        assert!(
            clamped > 1000,
            "the order clamp did its work {clamped} times"
        );
    }

    #[test]
    fn jitter_larger_than_the_delay_never_sends_early() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(ms(10), ms(40));
        assert_eq!(line.due(t0, 0.0), t0);
        let mut line = DelayLine::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(line.due(t0 + ms(5), 0.9), t0 + ms(5));
    }

    #[test]
    fn loss_hits_its_rate_with_a_seeded_generator() {
        for seed in [1, 2, 3] {
            let mut rng = fastrand::Rng::with_seed(seed);
            let n = 100_000;
            let lost_n = (0..n).filter(|_| lost(0.02, rng.f64())).count();
            let rate = lost_n as f64 / n as f64;
            // Binomial sd at n = 1e5, p = 0.02 is 0.044 %; this is more than 6 sd.
            assert!((0.0175..0.0225).contains(&rate), "seed {seed}: {rate}");
        }
        let mut rng = fastrand::Rng::with_seed(9);
        assert!((0..1000).all(|_| !lost(0.0, rng.f64())));
        assert!((0..1000).all(|_| lost(1.0, rng.f64())));
    }
}
