//! The control task: the one owner of the [`Selector`]. Everything that can change the active
//! stream (the page, the HTTP alarm API, GPIO inputs, stream health, config changes) sends it
//! a [`Command`]; it publishes the resulting [`ActiveView`] on a watch channel and persists
//! the user's selection and latched alarms whenever they change.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::Config;
use crate::gpio::{OutputBackend, OutputDriver};
use crate::health::beacon::BeaconGuard;
use crate::ingest::stats::{StreamState, StreamStats};
use crate::select::{DEFAULT_HISTORY, EventsReport, SelectError, Selector, Stamp};
use crate::state::{LatchedAlarm, PersistedState, StateStore};

/// How often stream health is polled for video-loss alarms.
const HEALTH_POLL: Duration = Duration::from_millis(250);

/// A request to the control task.
#[derive(Debug)]
pub enum Command {
    /// The user's choice (`None` clears it, so the default shows when no alarm is active).
    Select {
        /// Stream id.
        stream: Option<String>,
        /// The outcome.
        reply: oneshot::Sender<Result<(), SelectError>>,
    },
    /// An alarm raised from outside (HTTP API), optionally as a pulse of `hold`.
    Trigger {
        /// Alarm id.
        alarm: String,
        /// Pulse length overriding the alarm's own rule.
        hold: Option<Duration>,
        /// The outcome.
        reply: oneshot::Sender<Result<(), SelectError>>,
    },
    /// An alarm input cleared from outside.
    Clear {
        /// Alarm id.
        alarm: String,
        /// The outcome.
        reply: oneshot::Sender<Result<(), SelectError>>,
    },
    /// Acknowledge a latched alarm; the reply says whether a latch was dropped.
    Ack {
        /// Alarm id.
        alarm: String,
        /// The outcome.
        reply: oneshot::Sender<Result<bool, SelectError>>,
    },
    /// A debounced GPIO input level, by alarm index (the GPIO task resolved it once).
    AlarmInput {
        /// Alarm index in the config's alarm list.
        alarm: usize,
        /// True when the contact is in its alarm state.
        on: bool,
    },
    /// A new config: streams and alarms may have come or gone.
    ApplyConfig(Box<Config>),
    /// The set of streams whose health is watched changed.
    WatchStreams(Vec<Arc<StreamStats>>),
    /// The selector's event history (`GET /api/events`), rendered on demand.
    Events {
        /// The history.
        reply: oneshot::Sender<EventsReport>,
    },
}

/// One alarm as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AlarmStatus {
    /// Config id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `idle`, `active`, `holding` or `latched`.
    pub state: &'static str,
    /// The stream it calls up.
    pub stream: String,
    /// When it was raised (wall µs), while it is not idle.
    pub since: Option<i64>,
    /// Times it went from idle to active since start (`/metrics`), counted by the selector.
    pub raised: u64,
}

/// What is shown, and why; published on every change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActiveView {
    /// The active stream, `None` only when no stream is configured.
    pub stream: Option<String>,
    /// `default`, `user`, `alarm:<name>` or `sequence:<names>`.
    pub reason: String,
    /// Every alarm's state.
    pub alarms: Vec<AlarmStatus>,
    /// Bumped on every change, so consumers can tell two equal-looking views apart.
    pub generation: u64,
}

/// The control task is gone (the daemon is shutting down).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// The request was refused by the selector.
    #[error(transparent)]
    Rejected(#[from] SelectError),
    /// The control task has stopped.
    #[error("the daemon is shutting down")]
    Closed,
}

/// A cheap handle for sending commands and watching the view.
#[derive(Debug, Clone)]
pub struct Control {
    /// Command queue into the task.
    tx: mpsc::Sender<Command>,
    /// The latest view.
    view: watch::Receiver<ActiveView>,
}

impl Control {
    /// The current view.
    pub fn view(&self) -> ActiveView {
        self.view.borrow().clone()
    }

    /// A receiver that wakes on every view change.
    pub fn subscribe(&self) -> watch::Receiver<ActiveView> {
        self.view.clone()
    }

    /// Sends a command without waiting for an answer (GPIO inputs, config changes).
    pub async fn send(&self, cmd: Command) -> Result<(), ControlError> {
        self.tx.send(cmd).await.map_err(|_| ControlError::Closed)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, SelectError>>) -> Command,
    ) -> Result<T, ControlError> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply)).await?;
        Ok(rx.await.map_err(|_| ControlError::Closed)??)
    }

    /// The user selects a stream.
    pub async fn select(&self, stream: Option<String>) -> Result<(), ControlError> {
        self.ask(|reply| Command::Select { stream, reply }).await
    }

    /// Raises an alarm from outside.
    pub async fn trigger(&self, alarm: &str, hold: Option<Duration>) -> Result<(), ControlError> {
        let alarm = alarm.to_string();
        self.ask(|reply| Command::Trigger { alarm, hold, reply })
            .await
    }

    /// Clears an alarm input from outside.
    pub async fn clear(&self, alarm: &str) -> Result<(), ControlError> {
        let alarm = alarm.to_string();
        self.ask(|reply| Command::Clear { alarm, reply }).await
    }

    /// Acknowledges a latched alarm.
    pub async fn ack(&self, alarm: &str) -> Result<bool, ControlError> {
        let alarm = alarm.to_string();
        self.ask(|reply| Command::Ack { alarm, reply }).await
    }

    /// The selector's bounded history of selection and alarm events, oldest first.
    pub async fn events(&self) -> Result<EventsReport, ControlError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Events { reply }).await?;
        rx.await.map_err(|_| ControlError::Closed)
    }
}

/// Starts the control task with `config`, restoring the persisted state from `store`.
pub fn spawn_control(
    config: &Config,
    clock: Arc<dyn Clock>,
    store: StateStore,
    output_backend: Arc<dyn OutputBackend>,
    beacon: Option<BeaconGuard>,
) -> (Control, JoinHandle<()>) {
    let now = Stamp::now(clock.as_ref());
    let mut selector = Selector::new(config, DEFAULT_HISTORY, now);
    let mut saved = store.load().into_state();
    for msg in saved.reconcile(config) {
        tracing::warn!("{msg}");
    }
    let latched: Vec<(String, i64)> = saved
        .latched_alarms
        .iter()
        .map(|l| (l.id.clone(), l.since_wall_us))
        .collect();
    selector.restore(saved.user_selection.as_deref(), &latched, now);
    let outputs = open_outputs(output_backend.as_ref(), config);
    let mut task = ControlTask {
        outputs,
        output_backend,
        alarms: config.alarms.clone(),
        selector,
        clock,
        store: Arc::new(store),
        saved,
        watched: Vec::new(),
        published: None,
        beacon,
    };
    let (view_tx, view) = watch::channel(ActiveView::default());
    // Publish before the task runs, so callers see the restored view straight away.
    task.publish(&view_tx);
    let (tx, rx) = mpsc::channel(256);
    let handle = tokio::spawn(task.run(rx, view_tx));
    (Control { tx, view }, handle)
}

/// Opens the relay/buzzer lines of `config`'s alarms; a line that cannot be opened is logged
/// and left out, the others work.
fn open_outputs(backend: &dyn OutputBackend, config: &Config) -> OutputDriver {
    let (driver, errors) = OutputDriver::open(backend, &config.alarms);
    for (i, e) in errors {
        let alarm = config.alarms.get(i).map_or("?", |a| a.id.as_str());
        tracing::warn!(alarm = %alarm, error = %e, "alarm output line unavailable");
    }
    driver
}

/// State owned by the control task.
struct ControlTask {
    /// Relay/buzzer lines driven while their alarm is active.
    outputs: OutputDriver,
    /// Opens output lines again after a config change.
    output_backend: Arc<dyn OutputBackend>,
    /// Alarm configs, for names and target streams in the status.
    alarms: Vec<crate::config::AlarmConfig>,
    /// The state machine.
    selector: Selector,
    /// Time source for every stamp.
    clock: Arc<dyn Clock>,
    /// Where the selection and latched alarms are persisted (shared with the blocking save).
    store: Arc<StateStore>,
    /// What was last persisted, so unchanged state is not rewritten.
    saved: PersistedState,
    /// Streams whose health feeds video-loss alarms, with the last health reported.
    watched: Vec<(Arc<StreamStats>, Option<bool>)>,
    /// (view generation, state generation, events recorded) last published; `None` forces
    /// a publish. Every alarm change is recorded, so the alarm states follow the history.
    published: Option<(u64, u64, u64)>,
    /// The task's watchdog slot, beaten on every loop iteration (the health poll makes
    /// that at least four times a second).
    beacon: Option<BeaconGuard>,
}

impl ControlTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, view_tx: watch::Sender<ActiveView>) {
        let mut health = tokio::time::interval(HEALTH_POLL);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            crate::health::fault::checkpoint("control", "").await;
            if let Some(b) = &self.beacon {
                b.beat(self.clock.mono_ns());
            }
            let sleep = self.sleep_until_deadline();
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd, &view_tx),
                    None => break,
                },
                _ = sleep => self.selector.tick(self.now()),
                _ = health.tick() => self.poll_health(),
            }
            self.publish(&view_tx);
            if let Err(e) = self.outputs.apply(self.selector.outputs()) {
                tracing::warn!(error = %e, "cannot drive an alarm output line");
            }
            self.persist().await;
        }
        self.persist().await;
    }

    fn now(&self) -> Stamp {
        Stamp::now(self.clock.as_ref())
    }

    /// A sleep until the selector's next timer, or a long one when it has none.
    fn sleep_until_deadline(&self) -> tokio::time::Sleep {
        let wait = match self.selector.next_deadline() {
            Some(deadline) => Duration::from_nanos(deadline.saturating_sub(self.clock.mono_ns())),
            None => Duration::from_secs(3600),
        };
        tokio::time::sleep(wait)
    }

    /// Applies one command. A command with a reply is answered only after the new view is
    /// published, so a caller that reads [`Control::view`] right after the answer (as the
    /// `POST /api/active` handler does) sees its own change.
    fn handle(&mut self, cmd: Command, view_tx: &watch::Sender<ActiveView>) {
        let now = self.now();
        match cmd {
            Command::Select { stream, reply } => {
                let r = self.selector.select(stream.as_deref(), now);
                self.publish(view_tx);
                let _ = reply.send(r);
            }
            Command::Trigger { alarm, hold, reply } => {
                let r = self
                    .alarm(&alarm)
                    .and_then(|i| self.selector.trigger(i, hold, now));
                self.publish(view_tx);
                let _ = reply.send(r);
            }
            Command::Clear { alarm, reply } => {
                let r = self.alarm(&alarm).and_then(|i| self.selector.clear(i, now));
                self.publish(view_tx);
                let _ = reply.send(r);
            }
            Command::Ack { alarm, reply } => {
                let r = self.alarm(&alarm).and_then(|i| self.selector.ack(i, now));
                self.publish(view_tx);
                let _ = reply.send(r);
            }
            Command::AlarmInput { alarm, on } => {
                if let Err(e) = self.selector.alarm_input(alarm, on, now) {
                    tracing::warn!(error = %e, "GPIO input for an alarm that is gone");
                }
            }
            Command::ApplyConfig(cfg) => {
                self.selector.apply_config(&cfg, now);
                // Release the old lines before opening the new ones: they may be the same.
                self.outputs = OutputDriver::open(self.output_backend.as_ref(), &[]).0;
                self.outputs = open_outputs(self.output_backend.as_ref(), &cfg);
                self.alarms = cfg.alarms.clone();
                self.published = None;
            }
            Command::WatchStreams(stats) => {
                self.watched = stats.into_iter().map(|s| (s, None)).collect();
            }
            Command::Events { reply } => {
                let _ = reply.send(self.selector.events_report());
            }
        }
    }

    fn alarm(&self, id: &str) -> Result<usize, SelectError> {
        self.selector
            .alarm_index(id)
            .ok_or_else(|| SelectError::UnknownAlarm(id.to_string()))
    }

    /// Reports stream health transitions to the selector (video-loss alarms).
    fn poll_health(&mut self) {
        let now = self.now();
        for (stats, last) in &mut self.watched {
            let up = stats.state() == StreamState::Live;
            if *last == Some(up) {
                continue;
            }
            *last = Some(up);
            if let Some(i) = self.selector.stream_index(stats.id()) {
                // The index came from the selector itself, so this cannot fail.
                let _ = self.selector.stream_health(i, up, now);
            }
        }
        self.selector.tick(now);
    }

    /// Publishes the view when it changed.
    fn publish(&mut self, tx: &watch::Sender<ActiveView>) {
        let generations = (
            self.selector.view_generation(),
            self.selector.generation(),
            self.selector.history_total(),
        );
        if Some(generations) == self.published {
            return;
        }
        self.published = Some(generations);
        let view = ActiveView {
            stream: self.selector.active_stream_id().map(str::to_string),
            reason: self.selector.reason_string(),
            alarms: self.alarm_statuses(),
            generation: self.selector.generation(),
        };
        tx.send_if_modified(|old| {
            if *old == view {
                return false;
            }
            if let Some(stream) = &view.stream
                && (old.stream != view.stream || old.reason != view.reason)
            {
                tracing::info!(stream = %stream, reason = %view.reason, "active stream");
            }
            *old = view;
            true
        });
    }

    fn alarm_statuses(&self) -> Vec<AlarmStatus> {
        self.alarms
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let state = self.selector.alarm_state(i);
                AlarmStatus {
                    id: a.id.clone(),
                    name: a.display_name().to_string(),
                    state: state.map_or("idle", |s| s.as_str()),
                    stream: a.stream.clone(),
                    since: self.selector.alarm_since_wall_us(i),
                    raised: self.selector.alarm_raised_total(i),
                }
            })
            .collect()
    }

    /// Saves the selection and latched alarms when they differ from what was saved.
    async fn persist(&mut self) {
        let (user, latched) = self.selector.snapshot();
        let state = PersistedState {
            user_selection: user,
            latched_alarms: latched
                .into_iter()
                .map(|(id, since_wall_us)| LatchedAlarm { id, since_wall_us })
                .collect(),
        };
        if state == self.saved {
            return;
        }
        let store = Arc::clone(&self.store);
        let to_save = state.clone();
        let result = tokio::task::spawn_blocking(move || store.save(&to_save)).await;
        match result {
            Ok(Ok(())) => self.saved = state,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot save the state file; will retry on the next change")
            }
            Err(e) => tracing::warn!(error = %e, "state save task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::gpio::mock::MockOutputs;

    const S: u64 = 1_000_000_000;

    fn config(dir: &std::path::Path) -> Config {
        let mut cfg: Config = toml::from_str(
            "[[streams]]\nid = \"cam1\"\nkind = \"testpattern\"\n\n\
             [[streams]]\nid = \"cam2\"\nkind = \"testpattern\"\n\n\
             [[alarms]]\nid = \"door\"\nstream = \"cam2\"\nmode = \"hold\"\nhold_s = 2\n",
        )
        .unwrap();
        cfg.paths.state_dir = dir.to_path_buf();
        cfg.select.min_dwell_ms = 0;
        cfg
    }

    /// A hold that runs out is recorded by the control task itself, with the injected clock's
    /// wall time, although no command arrives; the raise count follows the same history.
    #[tokio::test(start_paused = true)]
    async fn hold_expiry_is_recorded_by_the_timer_with_the_clock_wall_time() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000_000_000));
        let (control, task) = spawn_control(
            &config(dir.path()),
            Arc::clone(&clock) as Arc<dyn Clock>,
            StateStore::new(dir.path()),
            Arc::new(MockOutputs::default()),
            None,
        );
        control.trigger("door", None).await.unwrap();
        control.clear("door").await.unwrap();
        assert_eq!(control.view().stream.as_deref(), Some("cam2"));
        let held = control.events().await.unwrap();
        assert!(
            !held.events.iter().any(|e| e.action == "hold-expired"),
            "{held:?}"
        );

        clock.advance_ns(3 * S);
        // Let the control task's timers run (paused time advances by itself).
        tokio::time::sleep(Duration::from_secs(1)).await;
        let report = control.events().await.unwrap();
        let expired = report
            .events
            .iter()
            .find(|e| e.action == "hold-expired")
            .expect("the hold expiry is recorded");
        assert_eq!(expired.alarm.as_deref(), Some("door"));
        assert_eq!(expired.at_us, 1_000_000_000_000 + 3_000_000);
        let back = report.events.last().unwrap();
        assert_eq!(
            (back.stream.as_deref(), back.cause),
            (Some("cam1"), Some("return-after-clear"))
        );
        assert_eq!(control.view().stream.as_deref(), Some("cam1"));
        assert_eq!(control.view().alarms[0].raised, 1);
        drop(control);
        task.await.unwrap();
    }
}
