//! The bounded event history and the name interner it refers to.
//!
//! History entries are `Copy` and name streams and alarms through [`NameId`]s, and the ring
//! holds them inline (`heapless::HistoryBuf`, its bound a compile-time constant), so recording
//! an event never allocates. The interner only grows (a name keeps its id across config changes),
//! which keeps old entries readable after streams or alarms are renamed or removed.

use super::Stamp;
use super::alarm::AlarmState;

/// Most alarm names a [`EventKind::ActiveChanged`] entry keeps for a `sequence` reason.
pub const SEQUENCE_NAMES_MAX: usize = 8;

/// An interned stream or alarm id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NameId(pub(crate) u32);

/// Append-only table of the names ever seen, so history entries can hold plain integers.
#[derive(Debug, Default)]
pub(crate) struct Names {
    /// Every distinct name, at the position its [`NameId`] gives.
    names: Vec<Box<str>>,
}

impl Names {
    /// The id of `name`, adding it when new. Config-time only (it may allocate).
    pub(crate) fn intern(&mut self, name: &str) -> NameId {
        if let Some(pos) = self.names.iter().position(|n| &**n == name) {
            return NameId(pos as u32);
        }
        self.names.push(name.into());
        NameId((self.names.len() - 1) as u32)
    }

    /// The name behind an id.
    pub(crate) fn get(&self, id: NameId) -> &str {
        self.names.get(id.0 as usize).map_or("?", |n| n)
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The shown stream or its reason changed.
    ActiveChanged {
        /// The stream now shown, `None` when there are no streams at all.
        stream: Option<NameId>,
        /// Why it is shown.
        reason: super::Reason,
        /// What allowed the change (for the anti-flicker rule and for humans).
        cause: super::ChangeCause,
        /// The view left an alarm for the user's choice or the default because the alarms
        /// ended (cleared or expired; an acknowledgement is the user's action and a config
        /// change its own cause).
        returned: bool,
    },
    /// The user chose a stream (or cleared the choice with `None`).
    UserSelected {
        /// The chosen stream.
        stream: Option<NameId>,
    },
    /// An alarm went from idle to active (an input, an API pulse, video loss, or a latched
    /// alarm restored at start-up).
    AlarmRaised {
        /// Which alarm.
        alarm: NameId,
        /// Its state right after.
        state: AlarmState,
    },
    /// An alarm's input cleared. The alarm may stay active: `state` is `holding` for a hold
    /// alarm, `latched` for an unacknowledged latched one, `idle` otherwise.
    AlarmCleared {
        /// Which alarm.
        alarm: NameId,
        /// Its state right after.
        state: AlarmState,
    },
    /// A latched alarm was acknowledged.
    AlarmAcknowledged {
        /// Which alarm.
        alarm: NameId,
        /// Its state right after (`idle`, or `active` while its input is still on).
        state: AlarmState,
    },
    /// A hold (or an API pulse) ran out and the alarm became idle.
    AlarmHoldExpired {
        /// Which alarm.
        alarm: NameId,
    },
}

/// One history entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEvent {
    /// When it happened.
    pub at: Stamp,
    /// What happened.
    pub kind: EventKind,
}

/// A fixed-capacity ring of [`HistoryEvent`]s; the oldest entry is overwritten when full.
#[derive(Debug)]
pub(crate) struct History<const N: usize> {
    /// The newest `N` entries, stored inline: `N` is a compile-time constant, so the ring
    /// needs no allocation at all.
    buf: heapless::HistoryBuf<HistoryEvent, N>,
    /// Entries ever recorded, so clients can tell how many they missed.
    total: u64,
}

impl<const N: usize> History<N> {
    /// An empty ring of `N` entries (at least one).
    pub(crate) fn new() -> History<N> {
        const { assert!(N > 0, "a history holds at least one entry") };
        History {
            buf: heapless::HistoryBuf::new(),
            total: 0,
        }
    }

    /// Records an entry, dropping the oldest when full.
    pub(crate) fn push(&mut self, ev: HistoryEvent) {
        self.buf.write(ev);
        self.total += 1;
    }

    /// Entries oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &HistoryEvent> {
        self.buf.oldest_ordered()
    }

    /// Number of entries held.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Entries ever recorded.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The bound.
    pub(crate) fn capacity(&self) -> usize {
        N
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ms: u64) -> HistoryEvent {
        HistoryEvent {
            at: Stamp::from_ms(ms),
            kind: EventKind::AlarmHoldExpired { alarm: NameId(0) },
        }
    }

    #[test]
    fn ring_keeps_the_newest_in_order() {
        let mut h = History::<3>::new();
        for ms in 0..5 {
            h.push(ev(ms));
        }
        let got: Vec<u64> = h.iter().map(|e| e.at.mono_ns / 1_000_000).collect();
        assert_eq!(got, vec![2, 3, 4]);
        assert_eq!(h.total(), 5);
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn interner_reuses_ids() {
        let mut n = Names::default();
        let a = n.intern("a");
        let b = n.intern("b");
        assert_eq!(n.intern("a"), a);
        assert_ne!(a, b);
        assert_eq!(n.get(b), "b");
    }
}
