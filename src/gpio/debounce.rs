//! Software debounce as a pure state machine fed with timestamps.

use crate::config::ActiveLevel;

/// Debounces one input line: a level change is reported only once the line has stayed at the
/// new level for the whole debounce period; shorter bounces are ignored. Also applies the
/// polarity, so callers see logical "alarm active" rather than electrical levels.
///
/// Feed every edge to [`edge`](Self::edge) and call [`poll`](Self::poll) at
/// [`deadline`](Self::deadline); no sleeping happens in here.
#[derive(Debug, Clone)]
pub struct Debouncer {
    /// The debounce period; zero reports every change at once.
    period_ns: u64,
    /// Which electrical level means "active".
    active: ActiveLevel,
    /// The accepted (debounced) electrical level.
    stable_high: bool,
    /// A change waiting to outlast the period: the new level and when it started.
    pending: Option<(bool, u64)>,
}

impl Debouncer {
    /// A debouncer whose line reads `initial_high` now.
    pub fn new(period_ns: u64, active: ActiveLevel, initial_high: bool) -> Debouncer {
        Debouncer {
            period_ns,
            active,
            stable_high: initial_high,
            pending: None,
        }
    }

    /// Whether the debounced input is active (alarm on).
    pub fn is_active(&self) -> bool {
        self.logical(self.stable_high)
    }

    /// An edge: the line now reads `high`, at `now_ns`. Returns the new logical state when a
    /// change is accepted (a pending one that matured before this edge, or this one at once
    /// when the period is zero).
    pub fn edge(&mut self, high: bool, now_ns: u64) -> Option<bool> {
        let matured = self.poll(now_ns);
        if self.period_ns == 0 {
            self.pending = None;
            if high != self.stable_high {
                self.stable_high = high;
                return Some(self.logical(high));
            }
            return matured;
        }
        if high == self.stable_high {
            // Bounced back before the period ended: forget the change.
            self.pending = None;
        } else if self.pending.is_none_or(|(level, _)| level != high) {
            self.pending = Some((high, now_ns));
        }
        matured
    }

    /// Accepts a pending change whose period has elapsed at `now_ns`; returns the new logical state.
    pub fn poll(&mut self, now_ns: u64) -> Option<bool> {
        match self.pending {
            Some((level, since)) if now_ns >= since.saturating_add(self.period_ns) => {
                self.pending = None;
                self.stable_high = level;
                Some(self.logical(level))
            }
            _ => None,
        }
    }

    /// When the pending change (if any) will be accepted.
    pub fn deadline(&self) -> Option<u64> {
        self.pending
            .map(|(_, since)| since.saturating_add(self.period_ns))
    }

    fn logical(&self, high: bool) -> bool {
        match self.active {
            ActiveLevel::High => high,
            ActiveLevel::Low => !high,
        }
    }
}
