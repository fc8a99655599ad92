//! The beacon table: one slot per long-running loop, each with its own staleness budget.
//!
//! The table is allocated once with a fixed number of slots (a `Box<[Slot]>`: the count is a
//! parameter, [`super::BEACON_SLOTS`] for the daemon's loops, [`super::LIVE_CLIENT_SLOTS`] for
//! live clients, a handful in tests, so a compile-time `heapless` array would not fit). A loop
//! registers a slot when it starts (or when a config change starts it) and gets a
//! [`BeaconGuard`]; dropping the guard
//! frees the slot. Beating is one atomic load and one atomic store, no allocation and no lock,
//! so it can sit on any hot path. The watchdog reads every slot with [`BeaconTable::stalest`].
//!
//! Each registration bumps the slot's generation; a [`Beacon`] (the cheap, cloneable beating
//! end) only writes while its generation is current, so a loop that outlives its slot (an
//! aborted task finishing its last poll) can never make a reused slot look fresh.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;

/// Every slot is taken.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("beacon table is full ({0} slots); loop `{1}` is not watched")]
pub struct TableFull(
    /// The table's capacity.
    pub usize,
    /// The loop that could not register.
    pub String,
);

/// One loop's slot.
#[derive(Debug, Default)]
struct Slot {
    /// True while a guard owns the slot.
    used: AtomicBool,
    /// Bumped on every registration and release; beats carrying another value are ignored.
    generation: AtomicU64,
    /// Longest gap between beats before the loop counts as hung (ns).
    budget_ns: AtomicU64,
    /// Clock time of the last beat (ns, [`crate::clock::Clock::mono_ns`]).
    last_beat_ns: AtomicU64,
    /// The loop's name (`stream:cam1`, `control`); written at registration, read only when
    /// reporting, so the lock is never taken on the beat path.
    name: Mutex<String>,
}

/// A loop that missed its budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// The loop's name.
    pub name: String,
    /// Time since its last beat.
    pub age: Duration,
    /// Its budget.
    pub budget: Duration,
}

/// One loop as the System tab shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BeaconReport {
    /// The loop's name (`stream:cam1`, `control`, `live`).
    pub name: String,
    /// Time since its last beat, ms.
    pub age_ms: u64,
    /// Its staleness budget, ms.
    pub budget_ms: u64,
    /// Whether it beat within its budget (the watchdog pings only while all are).
    pub fresh: bool,
}

/// A fixed table of beacons, shared as `Arc<BeaconTable>`.
#[derive(Debug)]
pub struct BeaconTable {
    /// The slots, allocated once.
    slots: Box<[Slot]>,
}

impl BeaconTable {
    /// A table of `capacity` free slots.
    pub fn new(capacity: usize) -> Arc<BeaconTable> {
        let slots = (0..capacity).map(|_| Slot::default()).collect();
        Arc::new(BeaconTable { slots })
    }

    /// Registers the loop `name` with `budget`, counted as having beaten at `now_ns`.
    pub fn register(
        self: &Arc<Self>,
        name: &str,
        budget: Duration,
        now_ns: u64,
    ) -> Result<BeaconGuard, TableFull> {
        for (index, slot) in self.slots.iter().enumerate() {
            if slot
                .used
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            {
                let mut n = slot.name.lock().unwrap_or_else(|e| e.into_inner());
                n.clear();
                n.push_str(name);
            }
            slot.budget_ns
                .store(budget.as_nanos() as u64, Ordering::Relaxed);
            slot.last_beat_ns.store(now_ns, Ordering::Relaxed);
            let generation = slot.generation.fetch_add(1, Ordering::AcqRel) + 1;
            return Ok(BeaconGuard {
                beacon: Beacon {
                    table: Arc::clone(self),
                    index,
                    generation,
                },
            });
        }
        Err(TableFull(self.slots.len(), name.to_string()))
    }

    /// The registered loop that is furthest past its budget at `now_ns`, if any is.
    pub fn stalest(&self, now_ns: u64) -> Option<Stale> {
        let mut worst: Option<(usize, u64, u64)> = None;
        for (i, slot) in self.slots.iter().enumerate() {
            if !slot.used.load(Ordering::Acquire) {
                continue;
            }
            let age = now_ns.saturating_sub(slot.last_beat_ns.load(Ordering::Relaxed));
            let budget = slot.budget_ns.load(Ordering::Relaxed);
            if age > budget && worst.is_none_or(|(_, a, b)| age - budget > a - b) {
                worst = Some((i, age, budget));
            }
        }
        worst.map(|(i, age, budget)| Stale {
            name: self.slots[i]
                .name
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            age: Duration::from_nanos(age),
            budget: Duration::from_nanos(budget),
        })
    }

    /// The oldest last beat among the registered loops (`None` when none is registered): a
    /// group of loops is as alive as its least recently beaten member.
    pub fn oldest_beat(&self) -> Option<u64> {
        self.slots
            .iter()
            .filter(|s| s.used.load(Ordering::Acquire))
            .map(|s| s.last_beat_ns.load(Ordering::Relaxed))
            .min()
    }

    /// Every registered loop with its age and budget at `now_ns` (allocates; for the API).
    pub fn report(&self, now_ns: u64) -> Vec<BeaconReport> {
        self.slots
            .iter()
            .filter(|s| s.used.load(Ordering::Acquire))
            .map(|s| {
                let age = now_ns.saturating_sub(s.last_beat_ns.load(Ordering::Relaxed));
                let budget = s.budget_ns.load(Ordering::Relaxed);
                BeaconReport {
                    name: s.name.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                    age_ms: age / 1_000_000,
                    budget_ms: budget / 1_000_000,
                    fresh: age <= budget,
                }
            })
            .collect()
    }

    /// Names of the registered loops (for logs and tests).
    pub fn names(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|s| s.used.load(Ordering::Acquire))
            .map(|s| s.name.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }
}

/// The beating end of a slot: cheap to clone, harmless after its slot was released.
#[derive(Debug, Clone)]
pub struct Beacon {
    /// The table.
    table: Arc<BeaconTable>,
    /// Which slot.
    index: usize,
    /// The registration this beacon belongs to.
    generation: u64,
}

impl Beacon {
    /// Records that the loop is alive at `now_ns`. Allocation-free and lock-free.
    pub fn beat(&self, now_ns: u64) {
        let slot = &self.table.slots[self.index];
        if slot.generation.load(Ordering::Acquire) == self.generation {
            slot.last_beat_ns.store(now_ns, Ordering::Relaxed);
        }
    }
}

/// Owns a slot; dropping it unregisters the loop.
#[derive(Debug)]
pub struct BeaconGuard {
    /// The slot's beacon.
    beacon: Beacon,
}

impl BeaconGuard {
    /// A beating end to hand to the loop.
    pub fn beacon(&self) -> Beacon {
        self.beacon.clone()
    }

    /// Records that the loop is alive at `now_ns`.
    pub fn beat(&self, now_ns: u64) {
        self.beacon.beat(now_ns);
    }
}

impl Drop for BeaconGuard {
    fn drop(&mut self) {
        let slot = &self.beacon.table.slots[self.beacon.index];
        slot.generation.fetch_add(1, Ordering::AcqRel);
        slot.used.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_loop_goes_stale_only_past_its_own_budget() {
        let t = BeaconTable::new(4);
        let fast = t.register("fast", Duration::from_secs(2), 0).unwrap();
        let _slow = t.register("slow", Duration::from_secs(10), 0).unwrap();
        assert_eq!(t.stalest(2 * S), None);
        fast.beat(2 * S);
        assert_eq!(t.stalest(4 * S), None);
        let stale = t.stalest(5 * S).expect("fast missed its budget");
        assert_eq!(stale.name, "fast");
        assert_eq!(stale.age, Duration::from_secs(3));
        // Both late: the one furthest past its budget is named.
        let stale = t.stalest(20 * S).unwrap();
        assert_eq!(stale.name, "fast");
    }

    #[test]
    fn released_slots_are_reused_and_old_beacons_cannot_refresh_them() {
        let t = BeaconTable::new(1);
        let g = t
            .register("stream:cam1", Duration::from_secs(1), 0)
            .unwrap();
        let old = g.beacon();
        assert!(t.register("x", Duration::from_secs(1), 0).is_err());
        drop(g);
        assert_eq!(t.stalest(100 * S), None, "a released slot is not watched");
        let g2 = t
            .register("stream:cam2", Duration::from_secs(1), 100 * S)
            .unwrap();
        old.beat(200 * S);
        let stale = t
            .stalest(200 * S)
            .expect("the old beacon did not refresh it");
        assert_eq!(stale.name, "stream:cam2");
        g2.beacon().beat(200 * S);
        assert_eq!(t.stalest(200 * S), None);
        assert_eq!(t.names(), vec!["stream:cam2".to_string()]);
    }

    #[test]
    fn reports_ages_and_the_oldest_beat() {
        let t = BeaconTable::new(4);
        assert_eq!(t.oldest_beat(), None);
        let a = t.register("a", Duration::from_secs(2), S).unwrap();
        let _b = t.register("b", Duration::from_secs(5), 2 * S).unwrap();
        assert_eq!(t.oldest_beat(), Some(S));
        a.beat(4 * S);
        assert_eq!(t.oldest_beat(), Some(2 * S));
        let r = t.report(7 * S);
        assert_eq!(
            r,
            vec![
                BeaconReport {
                    name: "a".into(),
                    age_ms: 3000,
                    budget_ms: 2000,
                    fresh: false
                },
                BeaconReport {
                    name: "b".into(),
                    age_ms: 5000,
                    budget_ms: 5000,
                    fresh: true
                },
            ]
        );
    }
}
