//! Health: liveness beacons for every long-running loop, a watchdog that pings systemd only
//! while all of them are fresh, and the `sd_notify` messages (`READY`, `STATUS`, `STOPPING`).
//!
//! Who beats: each stream supervisor (through [`crate::ingest::stats::StreamStats`], at least
//! once a second even while backing off), the control task (every loop iteration, at least
//! four times a second), the daemon's main loop (once a second; it also applies config
//! changes, so an apply that hangs stops it), the web server (a self-probe of
//! `GET /api/health` every two seconds, [`probe`]) and the live pusher (every `/api/live`
//! client loop beats its own slot of a member table; [`relay`] forwards the stalest one into
//! the `live` beacon every second, and beats it while there is no client), and each GPIO or ONVIF alarm input task (every second,
//! also while its chip or camera is missing and it waits to retry). Budgets are below.
//!
//! Panics: release builds use `panic = "abort"`, so a panic anywhere ends the process and
//! systemd restarts it. In debug and test builds a panicking task just ends; its beacon goes
//! stale and the watchdog catches it the same way.

pub mod beacon;
pub mod fault;
pub mod notify;
pub mod probe;
pub mod relay;
pub mod watchdog;

use std::time::Duration;

/// Slots in the daemon's beacon table (streams plus single loops).
pub const BEACON_SLOTS: usize = 64;

/// A stream supervisor beats at least once a second; this allows for a busy machine.
pub const STREAM_BUDGET: Duration = Duration::from_secs(5);

/// The control task iterates at least four times a second, but saving the state file to a
/// slow SD card may hold it up for a while.
pub const CONTROL_BUDGET: Duration = Duration::from_secs(10);

/// The daemon's main loop (signals, statistics, the `STATUS=` line) beats once a second.
pub const MAIN_BUDGET: Duration = Duration::from_secs(10);

/// The web self-probe succeeds every two seconds; three misses in a row are tolerated.
pub const WEB_BUDGET: Duration = Duration::from_secs(15);

/// A live client loop iterates at least once a second (its ring recheck) and a send gives up
/// after 5 s; a busy machine may add a few seconds on top.
pub const LIVE_BUDGET: Duration = Duration::from_secs(10);

/// A GPIO input task beats every second ([`crate::gpio::input::HEARTBEAT`]) while it watches
/// its line or waits to retry a failed one.
pub const GPIO_BUDGET: Duration = Duration::from_secs(5);

/// An ONVIF events input task beats every second ([`crate::gpio::input::HEARTBEAT`]) while
/// its PullPoint loop waits on the camera or waits to subscribe again.
pub const ONVIF_BUDGET: Duration = Duration::from_secs(5);

/// Live clients watched one by one; more still work but beat nothing (logged).
pub const LIVE_CLIENT_SLOTS: usize = 128;
