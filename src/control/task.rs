//! The loop behind a [`Control`] handle: it owns the selector, drives the alarm output lines,
//! polls stream health for video-loss alarms and saves the persisted state.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{Command, Control};
use crate::clock::Clock;
use crate::config::Config;
use crate::gpio::{OutputBackend, OutputDriver};
use crate::health::beacon::BeaconGuard;
use crate::ingest::stats::{StreamState, StreamStats};
use crate::select::{ActiveView, AlarmStatus, EventRecord, SelectError, Selector, Stamp};
use crate::state::{LatchedAlarm, PersistedState, StateStore};

/// How often stream health is polled for video-loss alarms.
const HEALTH_POLL: Duration = Duration::from_millis(250);

/// Starts the control task with `config`, restoring the persisted state from `store`.
pub fn spawn_control(
    config: &Config,
    clock: Arc<dyn Clock>,
    store: StateStore,
    output_backend: Arc<dyn OutputBackend>,
    beacon: Option<BeaconGuard>,
) -> (Control, JoinHandle<()>) {
    let (control, handle, gate) = spawn_control_gated(config, clock, store, output_backend, beacon);
    gate.open();
    (control, handle)
}

/// Holds a control task spawned by [`spawn_control_gated`] before its first command.
#[derive(Debug)]
pub struct ControlGate {
    /// Sent (or dropped) to let the task run.
    go: oneshot::Sender<()>,
}

impl ControlGate {
    /// Lets the task serve its commands (those queued meanwhile first).
    pub fn open(self) {
        let _ = self.go.send(());
    }
}

/// Like [`spawn_control`], but the task serves no command (and so records no event) until
/// the [`ControlGate`] is opened (or dropped): the daemon subscribes its webhooks and MQTT
/// bridge to the event feed and the view first, so nothing an input raises at start is lost
/// to them. Commands sent meanwhile wait in the queue.
pub fn spawn_control_gated(
    config: &Config,
    clock: Arc<dyn Clock>,
    store: StateStore,
    output_backend: Arc<dyn OutputBackend>,
    beacon: Option<BeaconGuard>,
) -> (Control, JoinHandle<()>, ControlGate) {
    let now = Stamp::now(clock.as_ref());
    let mut selector: Selector = Selector::new(config, now);
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
    let (events, _) = broadcast::channel(super::EVENT_FEED);
    let emitted = selector.history_total();
    let mut task = ControlTask {
        events: events.clone(),
        emitted,
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
    let (go, gate) = oneshot::channel();
    let handle = tokio::spawn(async move {
        // Sent or dropped, either way the daemon is done setting up.
        let _ = gate.await;
        task.run(rx, view_tx).await;
    });
    (Control { tx, view, events }, handle, ControlGate { go })
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
    /// The event feed: new history entries go out here (webhooks listen).
    events: broadcast::Sender<Arc<EventRecord>>,
    /// History entries already sent on `events` (everything ever recorded counts).
    emitted: u64,
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
                    Some(Command::Stop) | None => break,
                    Some(cmd) => self.handle(cmd, &view_tx),
                },
                _ = sleep => self.selector.tick(self.now()),
                _ = health.tick() => self.poll_health(),
            }
            self.publish(&view_tx);
            self.emit_events();
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
            // The loop ends on it before calling this.
            Command::Stop => {}
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

    /// Sends the history entries recorded since the last call on the event feed. A broadcast
    /// send never waits; with nobody listening nothing is rendered at all.
    fn emit_events(&mut self) {
        let total = self.selector.history_total();
        if total == self.emitted {
            return;
        }
        if self.events.receiver_count() > 0 {
            for rec in self.selector.events_since(self.emitted) {
                // Fails only when every receiver has gone since the check: nobody to tell.
                let _ = self.events.send(Arc::new(rec));
            }
        }
        self.emitted = total;
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
                    priority: a.priority,
                    mode: a.mode.as_str(),
                    acknowledgeable: self.selector.alarm_ack_pending(i),
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
