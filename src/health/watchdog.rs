//! The health-gated watchdog: `WATCHDOG=1` to systemd only while every beacon is fresh.
//!
//! systemd's `WatchdogSec=` only proves that *something* in the process can still send a
//! datagram. Pinging from a timer would keep a daemon whose control task or one stream loop
//! is deadlocked alive forever, so the task pings every half watchdog period only after
//! checking the [`BeaconTable`]. The first time a loop misses its budget it is logged, named
//! in `STATUS=`, and the pings stop for good: systemd kills and restarts the service once
//! `WatchdogSec` passes. A camera that is merely offline does not trip it: its supervisor
//! keeps beating while it backs off.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::beacon::{BeaconReport, BeaconTable, Stale};
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

/// What the watchdog task has done, shared with the API (the System tab). Updated with
/// atomics on every tick; the trip, which happens once, takes a lock.
#[derive(Debug, Default)]
pub struct WatchdogStatus {
    /// The watchdog task has started.
    running: AtomicBool,
    /// `WATCHDOG_USEC` as nanoseconds; 0 when systemd asked for no watchdog.
    period_ns: AtomicU64,
    /// `WATCHDOG=1` pings sent.
    pings: AtomicU64,
    /// Clock time of the last ping (valid once `pings` > 0).
    last_ping_ns: AtomicU64,
    /// The loop that stopped the pings, once one did.
    tripped: Mutex<Option<Stale>>,
}

impl WatchdogStatus {
    /// The task started with systemd's `period` (`None`: no watchdog requested).
    fn started(&self, period: Option<Duration>) {
        let ns = period.map_or(0, |p| u64::try_from(p.as_nanos()).unwrap_or(u64::MAX));
        self.period_ns.store(ns, Ordering::Relaxed);
        self.running.store(true, Ordering::Release);
    }

    /// A ping was sent at `now_ns`.
    fn pinged(&self, now_ns: u64) {
        self.last_ping_ns.store(now_ns, Ordering::Relaxed);
        self.pings.fetch_add(1, Ordering::Release);
    }

    /// `stale` stopped the pings.
    fn trip(&self, stale: &Stale) {
        *self.tripped.lock().unwrap_or_else(|e| e.into_inner()) = Some(stale.clone());
    }

    /// The watchdog's state and every beacon's at `now_ns`, as the API shows it.
    pub fn report(&self, table: &BeaconTable, now_ns: u64) -> WatchdogReport {
        let period_ns = self.period_ns.load(Ordering::Relaxed);
        let pings = self.pings.load(Ordering::Acquire);
        let period_ms = (period_ns > 0).then_some(period_ns / 1_000_000);
        let tripped = self.tripped.lock().unwrap_or_else(|e| e.into_inner());
        WatchdogReport {
            running: self.running.load(Ordering::Acquire),
            enabled: period_ns > 0,
            period_ms,
            ping_every_ms: period_ms.map(|p| p / 2),
            pings,
            last_ping_age_ms: (pings > 0).then(|| {
                now_ns.saturating_sub(self.last_ping_ns.load(Ordering::Relaxed)) / 1_000_000
            }),
            tripped: tripped.as_ref().map(|s| s.name.clone()),
            beacons: table.report(now_ns),
        }
    }
}

/// The watchdog as `/api/status` shows it (`watchdog`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchdogReport {
    /// The health watchdog task runs (it does under `edgecam run` and `demo`).
    pub running: bool,
    /// systemd asked for pings (`WATCHDOG_USEC` is set for this process).
    pub enabled: bool,
    /// `WATCHDOG_USEC` in ms.
    pub period_ms: Option<u64>,
    /// How often a ping is due (half the period).
    pub ping_every_ms: Option<u64>,
    /// `WATCHDOG=1` pings sent since start.
    pub pings: u64,
    /// Time since the last ping, ms.
    pub last_ping_age_ms: Option<u64>,
    /// The loop that stopped the pings for good, if one did (systemd will restart us).
    pub tripped: Option<String>,
    /// Every watched loop.
    pub beacons: Vec<BeaconReport>,
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
/// `STATUS=` until a loop trips it. What it does is kept in `report` for the API.
pub fn spawn_watchdog(
    table: Arc<BeaconTable>,
    clock: Arc<dyn Clock>,
    period: Option<Duration>,
    status: watch::Receiver<String>,
    report: Arc<WatchdogStatus>,
) -> JoinHandle<()> {
    tokio::spawn(run(table, clock, period, status, report))
}

async fn run(
    table: Arc<BeaconTable>,
    clock: Arc<dyn Clock>,
    period: Option<Duration>,
    status: watch::Receiver<String>,
    report: Arc<WatchdogStatus>,
) {
    report.started(period);
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
                        report.pinged(clock.mono_ns());
                    }
                }
                Verdict::Tripped(stale) => {
                    report.trip(&stale);
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

    /// The task's record for the System tab: pings counted with their time while every beacon
    /// is fresh, then the loop that stopped them. Paused tokio time drives the task's timer,
    /// the manual clock the beacons.
    #[tokio::test(start_paused = true)]
    async fn the_status_counts_pings_and_names_the_loop_that_stopped_them() {
        let clock = Arc::new(crate::clock::ManualClock::new(0));
        let table = BeaconTable::new(2);
        let cam = table
            .register("stream:cam1", Duration::from_secs(5), 0)
            .unwrap();
        let status = Arc::new(WatchdogStatus::default());
        let before = status.report(&table, 0);
        assert!(!before.running && !before.enabled && before.last_ping_age_ms.is_none());
        let (_tx, rx) = watch::channel(String::new());
        let task = spawn_watchdog(
            Arc::clone(&table),
            clock.clone(),
            Some(Duration::from_secs(2)),
            rx,
            Arc::clone(&status),
        );
        for _ in 0..3 {
            clock.advance_ns(S);
            cam.beat(clock.mono_ns());
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        clock.advance_ns(S / 2);
        let r = status.report(&table, clock.mono_ns());
        assert!(r.running && r.enabled);
        assert_eq!((r.period_ms, r.ping_every_ms), (Some(2000), Some(1000)));
        assert!(r.pings >= 3, "{r:?}");
        assert_eq!(r.last_ping_age_ms, Some(500));
        assert_eq!(r.tripped, None);
        assert!(r.beacons[0].fresh);
        // The stream loop hangs: no beat for longer than its budget.
        let pings = r.pings;
        clock.advance_ns(6 * S);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let r = status.report(&table, clock.mono_ns());
        assert_eq!(r.tripped.as_deref(), Some("stream:cam1"));
        assert_eq!(r.pings, pings, "no ping after the trip");
        assert_eq!(r.beacons[0].name, "stream:cam1");
        assert!(!r.beacons[0].fresh);
        task.abort();
    }
}
