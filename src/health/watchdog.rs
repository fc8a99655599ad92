//! The health-gated watchdog: `WATCHDOG=1` to systemd only while every beacon is fresh.
//!
//! systemd's `WatchdogSec=` only proves that *something* in the process can still send a
//! datagram. Pinging from a timer would keep a daemon whose control task or one stream loop
//! is deadlocked alive forever, so the task pings every half watchdog period only after
//! checking the [`BeaconTable`]. The first time a loop misses its budget it is logged, named
//! in `STATUS=`, and the pings stop for good: systemd kills and restarts the service once
//! `WatchdogSec` passes. A camera that is merely offline does not trip it: its supervisor
//! keeps beating while it backs off.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::beacon::{BeaconTable, Stale};
use super::notify;
use crate::clock::Clock;

/// How often beacons are checked when systemd asked for no watchdog (stale loops are still
/// logged and shown in `STATUS=`).
const CHECK_WITHOUT_WATCHDOG: Duration = Duration::from_secs(1);

/// What one check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every loop is alive: ping.
    Ping,
    /// This loop just missed its budget: report it, and never ping again.
    Tripped(Stale),
    /// A loop missed its budget earlier: stay silent.
    Silent,
}

/// The watchdog's memory: whether it has tripped.
#[derive(Debug, Default)]
pub struct WatchdogState {
    /// The loop that tripped it, once one did.
    tripped: Option<Stale>,
}

impl WatchdogState {
    /// Checks the table at `now_ns`.
    pub fn check(&mut self, table: &BeaconTable, now_ns: u64) -> Verdict {
        if self.tripped.is_some() {
            return Verdict::Silent;
        }
        match table.stalest(now_ns) {
            None => Verdict::Ping,
            Some(stale) => {
                self.tripped = Some(stale.clone());
                Verdict::Tripped(stale)
            }
        }
    }

    /// The loop that tripped the watchdog, if one did.
    pub fn tripped(&self) -> Option<&Stale> {
        self.tripped.as_ref()
    }
}

/// The `STATUS=` line once a loop has tripped the watchdog.
pub fn stale_status(stale: &Stale) -> String {
    format!(
        "watchdog: loop {} stuck for {:.1} s (budget {:.1} s); waiting to be restarted",
        stale.name,
        stale.age.as_secs_f64(),
        stale.budget.as_secs_f64()
    )
}

/// Runs the watchdog: checks `table` every half `period` (pinging systemd while all is
/// well) or every second without a period, and forwards every new line of `status` as
/// `STATUS=` until a loop trips it.
pub fn spawn_watchdog(
    table: Arc<BeaconTable>,
    clock: Arc<dyn Clock>,
    period: Option<Duration>,
    status: watch::Receiver<String>,
) -> JoinHandle<()> {
    tokio::spawn(run(table, clock, period, status))
}

async fn run(
    table: Arc<BeaconTable>,
    clock: Arc<dyn Clock>,
    period: Option<Duration>,
    status: watch::Receiver<String>,
) {
    let every = period.map_or(CHECK_WITHOUT_WATCHDOG, |p| p / 2);
    tracing::info!(
        watchdog_ms = period.map_or(0, |p| p.as_millis() as u64),
        check_ms = every.as_millis() as u64,
        loops = ?table.names(),
        "health watchdog running"
    );
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = WatchdogState::default();
    let mut status = Some(status);
    if let Some(rx) = &mut status {
        notify::status(&rx.borrow_and_update());
    }
    loop {
        tokio::select! {
            _ = ticks.tick() => match state.check(&table, clock.mono_ns()) {
                Verdict::Ping => {
                    if period.is_some() {
                        notify::watchdog();
                    }
                }
                Verdict::Tripped(stale) => {
                    tracing::error!(
                        loop = %stale.name,
                        age_ms = stale.age.as_millis() as u64,
                        budget_ms = stale.budget.as_millis() as u64,
                        "a loop stopped beating; no more watchdog pings, systemd will restart us"
                    );
                    notify::status(&stale_status(&stale));
                }
                Verdict::Silent => {}
            },
            changed = next_status(&mut status) => match changed {
                Some(line) if state.tripped().is_none() => notify::status(&line),
                Some(_) => {}
                None => status = None,
            },
        }
    }
}

/// The next status line; `None` once the sender is gone (then never resolves again).
async fn next_status(rx: &mut Option<watch::Receiver<String>>) -> Option<String> {
    match rx {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn pings_while_fresh_then_trips_once_and_stays_silent() {
        let table = BeaconTable::new(4);
        let control = table
            .register("control", Duration::from_secs(5), 0)
            .unwrap();
        let cam = table
            .register("stream:cam2", Duration::from_secs(3), 0)
            .unwrap();
        let mut wd = WatchdogState::default();
        assert_eq!(wd.check(&table, S), Verdict::Ping);
        control.beat(4 * S);
        cam.beat(4 * S);
        assert_eq!(wd.check(&table, 6 * S), Verdict::Ping);
        control.beat(8 * S);
        match wd.check(&table, 8 * S) {
            Verdict::Tripped(s) => {
                assert_eq!(s.name, "stream:cam2");
                assert!(stale_status(&s).contains("stream:cam2"));
            }
            v => panic!("expected a trip, got {v:?}"),
        }
        // Even if the loop comes back, the watchdog stays silent until the restart.
        cam.beat(9 * S);
        control.beat(9 * S);
        assert_eq!(wd.check(&table, 9 * S), Verdict::Silent);
        assert_eq!(wd.tripped().map(|s| s.name.as_str()), Some("stream:cam2"));
    }
}
