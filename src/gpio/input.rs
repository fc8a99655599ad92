//! The input task: open, debounce, report, and retry with backoff on failure.

use super::{Debouncer, GpioError, InputBackend, InputLine};
use crate::backoff::{Backoff, BackoffConfig};
use crate::clock::Clock;
use crate::config::GpioInputConfig;
use crate::health::beacon::Beacon;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

/// How often an input task beats its watchdog beacon, whether it is watching a quiet line or
/// waiting to retry a failed one (see [`crate::health::GPIO_BUDGET`]).
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// A debounced, logical alarm input change, for the selector task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmSignal {
    /// Position of the alarm in the config (the selector's alarm index).
    pub alarm: usize,
    /// Whether the input is now active.
    pub on: bool,
    /// Monotonic time ([`Clock::mono_ns`]) when the change was accepted.
    pub mono_ns: u64,
}

/// How an input is doing, for `/api/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputState {
    /// Not opened yet.
    Starting,
    /// Open and watching edges.
    Ok,
    /// Could not open or failed; being retried. The message is for the operator.
    Failed(String),
}

/// Shared status of one input task.
#[derive(Debug)]
pub struct InputStatus {
    /// The current state.
    state: Mutex<InputState>,
    /// Failed attempts since start, for metrics.
    failures: AtomicU64,
    /// The watchdog slot the task beats, and the loop kind (`gpio`, `onvif`) and alarm id
    /// that name it for fault injection; set once by the daemon ([`InputStatus::watch_with`]).
    /// Unset in tests that need no watchdog.
    watched: OnceLock<(Beacon, &'static str, String)>,
}

impl Default for InputStatus {
    fn default() -> Self {
        InputStatus {
            state: Mutex::new(InputState::Starting),
            failures: AtomicU64::new(0),
            watched: OnceLock::new(),
        }
    }
}

impl InputStatus {
    /// The current state.
    pub fn state(&self) -> InputState {
        match self.state.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Failed attempts since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Makes the input task beat `beacon` (at least every [`HEARTBEAT`]); `alarm_id` names the
    /// loop for fault injection (`hang:gpio:<alarm id>`). Only the first call takes effect.
    pub fn watch_with(&self, beacon: Beacon, alarm_id: &str) {
        self.watch_as(beacon, "gpio", alarm_id);
    }

    /// Like [`InputStatus::watch_with`] for an input task of another `kind` (`onvif`), which
    /// names it for fault injection (`hang:onvif:<alarm id>`).
    pub fn watch_as(&self, beacon: Beacon, kind: &'static str, alarm_id: &str) {
        let _ = self.watched.set((beacon, kind, alarm_id.to_string()));
    }

    /// Beats the beacon, if any, and passes the fault-injection checkpoint. Input tasks call
    /// it at least every [`HEARTBEAT`].
    pub async fn beat(&self, now_ns: u64) {
        if let Some((beacon, kind, id)) = self.watched.get() {
            beacon.beat(now_ns);
            crate::health::fault::checkpoint(kind, id).await;
        }
    }

    /// Sets the state (input tasks of other kinds, such as ONVIF events, report here too);
    /// a `Failed` state counts as a failure.
    pub fn set(&self, state: InputState) {
        if matches!(state, InputState::Failed(_)) {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        match self.state.lock() {
            Ok(mut s) => *s = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }
}

/// Watches one alarm input until the receiver of `tx` is dropped.
///
/// On open, the current logical level is sent once (so the selector resyncs after a failure),
/// then every debounced change. Failures set `status` to [`InputState::Failed`] and are retried
/// after a capped, doubling delay without jitter (`retry`; [`BackoffConfig::default`] doubles
/// from 0.5 s to 30 s and starts over after an attempt that lasted 30 s). Never returns an
/// error: the daemon keeps running.
pub async fn run_gpio_input(
    alarm: usize,
    cfg: GpioInputConfig,
    backend: Arc<dyn InputBackend>,
    clock: Arc<dyn Clock>,
    status: Arc<InputStatus>,
    tx: mpsc::Sender<AlarmSignal>,
    retry: BackoffConfig,
) {
    let line_name = cfg.line.to_string();
    let mut backoff = Backoff::new(retry);
    loop {
        if tx.is_closed() {
            return;
        }
        let started = tokio::time::Instant::now();
        let err = match backend.open_input(&cfg) {
            Ok(line) => {
                status.set(InputState::Ok);
                tracing::info!(alarm, chip = %cfg.chip, line = %line_name, "GPIO input open");
                match watch(alarm, &cfg, line, clock.as_ref(), &status, &tx).await {
                    Ok(()) => return,
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        // An attempt that worked for a good while (`stable_after`) makes this a fresh
        // failure, not a retry storm: the delays start over.
        backoff.attempt_ended(started.elapsed());
        let delay = backoff.next_delay(1.0);
        tracing::warn!(alarm, chip = %cfg.chip, line = %line_name, error = %err,
            retry_in_ms = delay.as_millis() as u64, "GPIO input failed");
        status.set(InputState::Failed(err.to_string()));
        // Wait out the delay in heartbeat steps: a failed input is a healthy loop.
        let retry_at = Instant::now() + delay;
        loop {
            status.beat(clock.mono_ns()).await;
            let now = Instant::now();
            if now >= retry_at {
                break;
            }
            tokio::time::sleep_until(retry_at.min(now + HEARTBEAT)).await;
        }
    }
}

/// Serves an open line; `Ok` when the selector went away, `Err` when the line failed.
async fn watch(
    alarm: usize,
    cfg: &GpioInputConfig,
    mut line: Box<dyn InputLine>,
    clock: &dyn Clock,
    status: &InputStatus,
    tx: &mpsc::Sender<AlarmSignal>,
) -> Result<(), GpioError> {
    let period_ns = if line.debounced() {
        0
    } else {
        u64::from(cfg.debounce_ms) * 1_000_000
    };
    let mut deb = Debouncer::new(period_ns, cfg.active, line.read_high()?);
    let send = |on: bool| AlarmSignal {
        alarm,
        on,
        mono_ns: clock.mono_ns(),
    };
    if tx.send(send(deb.is_active())).await.is_err() {
        return Ok(());
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let deadline = deb.deadline();
        let settle = async {
            match deadline {
                Some(at) => {
                    tokio::time::sleep(Duration::from_nanos(at.saturating_sub(clock.mono_ns())))
                        .await
                }
                None => std::future::pending().await,
            }
        };
        // `next_edge` is cancel-safe (edges queue in the line), so losing the race costs
        // nothing.
        let changed = tokio::select! {
            edge = line.next_edge() => deb.edge(edge?, clock.mono_ns()),
            () = settle => deb.poll(clock.mono_ns()),
            _ = heartbeat.tick() => {
                status.beat(clock.mono_ns()).await;
                None
            }
        };
        if let Some(on) = changed
            && tx.send(send(on)).await.is_err()
        {
            return Ok(());
        }
    }
}
