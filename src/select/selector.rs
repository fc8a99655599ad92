//! The [`Selector`] state machine: its state, configuration and public API.

use super::alarm::{AlarmSlot, AlarmState};
use super::history::{EventKind, History, HistoryEvent, NameId, Names};
use super::reason::{ChangeCause, Reason, write_reason};
use super::rules::{AlarmOp, BASE_RANK, Force};
use super::{SelectError, Stamp};
use crate::config::{AlarmConfig, AlarmMode, Config, Multiple, SelectConfig};
use std::fmt;
use std::time::Duration;

/// History capacity of a [`Selector`] unless its type says otherwise (the daemon's).
pub const DEFAULT_HISTORY: usize = 256;

/// One stream in the stream table.
#[derive(Debug, Clone)]
pub(super) struct StreamSlot {
    /// The stream id, interned.
    pub(super) name: NameId,
    /// Monotonic time since when the stream has been lost; `None` while live (or never reported).
    pub(super) lost_since: Option<u64>,
}

/// The active-stream state machine. See the module docs for the rules.
///
/// `HISTORY` is the bound of its event history, a compile-time constant: the entries live
/// inline (a `heapless` ring), so recording never allocates, not even at construction. The
/// daemon uses [`DEFAULT_HISTORY`]; tests pick small bounds to see the ring wrap.
#[derive(Debug)]
pub struct Selector<const HISTORY: usize = DEFAULT_HISTORY> {
    /// Every stream and alarm id ever seen; history entries point here.
    pub(super) names: Names,
    /// Selectable streams, by position.
    pub(super) streams: Vec<StreamSlot>,
    /// Alarms, by position (config order).
    pub(super) alarms: Vec<AlarmSlot>,
    /// Target stream ids of the alarms, parallel to `alarms`, to re-resolve on stream changes.
    pub(super) alarm_targets: Vec<NameId>,
    /// `select.default` as configured, resolved against `streams` on every change.
    pub(super) default_name: Option<NameId>,
    /// The resolved default stream position.
    pub(super) default_stream: Option<usize>,
    /// `sequence` or `latest`.
    pub(super) multiple: Multiple,
    /// Turn length in `sequence`.
    pub(super) dwell_ns: u64,
    /// Anti-flicker minimum between changes of the shown stream.
    pub(super) min_dwell_ns: u64,
    /// The user's selection.
    pub(super) user: Option<usize>,
    /// The stream shown.
    pub(super) shown: Option<usize>,
    /// Why it is shown.
    pub(super) shown_reason: Reason,
    /// Priority of the shown view, for the preemption rule.
    pub(super) shown_rank: i64,
    /// When the shown stream last changed.
    pub(super) last_change_ns: Option<u64>,
    /// In `sequence`, the alarm whose turn it is.
    pub(super) seq_current: Option<usize>,
    /// When that turn began.
    pub(super) seq_started_ns: u64,
    /// Counter stamping raises, for `latest`.
    pub(super) raise_counter: u64,
    /// Bounded event log.
    pub(super) history: History<HISTORY>,
    /// Bumped when the persisted part (user choice, latched alarms) changes.
    pub(super) persist_gen: u64,
    /// Bumped when the shown stream or reason changes.
    pub(super) view_gen: u64,
}

impl<const HISTORY: usize> Selector<HISTORY> {
    /// A selector for `cfg`'s enabled streams and alarms, holding `HISTORY` history entries.
    pub fn new(cfg: &Config, now: Stamp) -> Self {
        let mut sel = Selector {
            names: Names::default(),
            streams: Vec::new(),
            alarms: Vec::new(),
            alarm_targets: Vec::new(),
            default_name: None,
            default_stream: None,
            multiple: Multiple::Sequence,
            dwell_ns: 0,
            min_dwell_ns: 0,
            user: None,
            shown: None,
            shown_reason: Reason::Nothing,
            shown_rank: BASE_RANK,
            last_change_ns: None,
            seq_current: None,
            seq_started_ns: 0,
            raise_counter: 0,
            history: History::new(),
            persist_gen: 0,
            view_gen: 0,
        };
        sel.apply_config(cfg, now);
        sel
    }

    /// Applies a new config live: alarms keep their state by id, the user's choice and the
    /// shown stream are kept when their streams still exist, otherwise the view falls back.
    pub fn apply_config(&mut self, cfg: &Config, now: Stamp) {
        self.apply_select(&cfg.select);
        self.set_alarms(&cfg.alarms);
        let ids: Vec<&str> = cfg
            .streams
            .iter()
            .filter(|s| s.enabled)
            .map(|s| s.id.as_str())
            .collect();
        self.set_streams(&ids, now);
    }

    /// Takes the `[select]` settings (applied at the next evaluation).
    fn apply_select(&mut self, sel: &SelectConfig) {
        self.default_name = sel.default.as_deref().map(|d| self.names.intern(d));
        self.multiple = sel.multiple;
        // A turn shorter than the minimum dwell could not be shown; zero would spin the timer.
        self.dwell_ns = (u64::from(sel.dwell_s) * 1_000_000_000).max(1_000_000);
        self.min_dwell_ns = u64::from(sel.min_dwell_ms) * 1_000_000;
    }

    /// Replaces the alarm table, carrying live state over for ids that remain.
    fn set_alarms(&mut self, alarms: &[AlarmConfig]) {
        let seq_id = self.seq_current.map(|i| self.alarms[i].id);
        let mut table = Vec::with_capacity(alarms.len());
        let mut targets = Vec::with_capacity(alarms.len());
        for cfg in alarms {
            let id = self.names.intern(&cfg.id);
            let mut slot = AlarmSlot::new(cfg, id, None);
            if let Some(old) = self.alarms.iter().find(|a| a.id == id) {
                slot.input = old.input;
                slot.vl_input = old.vl_input && slot.video_loss_after_ns.is_some();
                slot.hold_until = old
                    .hold_until
                    .filter(|_| slot.mode != AlarmMode::Transparent);
                slot.latched = old.latched && slot.mode == AlarmMode::Latched;
                slot.raised_seq = old.raised_seq;
                slot.since = old.since.filter(|_| slot.is_active());
                slot.raised_total = old.raised_total;
            }
            targets.push(self.names.intern(&cfg.stream));
            table.push(slot);
        }
        self.alarms = table;
        self.alarm_targets = targets;
        self.seq_current = seq_id.and_then(|id| self.alarms.iter().position(|a| a.id == id));
    }

    /// Replaces the list of selectable streams. The user's choice is kept if its stream
    /// remains; if the shown stream is gone, the view falls back at once.
    pub fn set_streams(&mut self, ids: &[&str], now: Stamp) {
        let user_name = self.user.map(|i| self.streams[i].name);
        let shown_name = self.shown.map(|i| self.streams[i].name);
        let mut table = Vec::with_capacity(ids.len());
        for id in ids {
            let name = self.names.intern(id);
            if table.iter().any(|s: &StreamSlot| s.name == name) {
                continue;
            }
            let lost_since = self
                .streams
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.lost_since);
            table.push(StreamSlot { name, lost_since });
        }
        self.streams = table;
        let find = |n: NameId, t: &[StreamSlot]| t.iter().position(|s| s.name == n);
        self.user = user_name.and_then(|n| find(n, &self.streams));
        if user_name.is_some() && self.user.is_none() {
            self.persist_gen += 1;
        }
        self.shown = shown_name.and_then(|n| find(n, &self.streams));
        self.default_stream = self
            .default_name
            .and_then(|n| find(n, &self.streams))
            .or((!self.streams.is_empty()).then_some(0));
        for (slot, target) in self.alarms.iter_mut().zip(&self.alarm_targets) {
            slot.stream = find(*target, &self.streams);
        }
        let forced = if shown_name.is_none() || self.shown.is_none() {
            Force::Always(ChangeCause::Config)
        } else {
            Force::No
        };
        self.evaluate(now, forced);
    }

    /// Position of a stream id.
    pub fn stream_index(&self, id: &str) -> Option<usize> {
        self.streams
            .iter()
            .position(|s| self.names.get(s.name) == id)
    }

    /// Position of an alarm id, so the hot path can use indices.
    pub fn alarm_index(&self, id: &str) -> Option<usize> {
        self.alarms.iter().position(|a| self.names.get(a.id) == id)
    }

    /// Number of selectable streams.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Number of alarms.
    pub fn alarm_count(&self) -> usize {
        self.alarms.len()
    }

    /// The id of the stream at `index`.
    pub fn stream_id(&self, index: usize) -> Option<&str> {
        self.streams.get(index).map(|s| self.names.get(s.name))
    }

    /// The id of the alarm at `index`.
    pub fn alarm_id(&self, index: usize) -> Option<&str> {
        self.alarms.get(index).map(|a| self.names.get(a.id))
    }

    /// The stream id (interned) that the alarm with interned id `alarm` calls up, while that
    /// alarm is configured.
    pub(super) fn alarm_target(&self, alarm: NameId) -> Option<NameId> {
        let i = self.alarms.iter().position(|a| a.id == alarm)?;
        self.alarm_targets.get(i).copied()
    }

    /// The text behind an interned id found in a [`Reason`] or [`HistoryEvent`].
    pub fn name(&self, id: NameId) -> &str {
        self.names.get(id)
    }

    /// The user selects a stream by id (`None` clears the choice, back to the default).
    pub fn select(&mut self, stream: Option<&str>, now: Stamp) -> Result<(), SelectError> {
        let index = match stream {
            Some(id) => Some(
                self.stream_index(id)
                    .ok_or_else(|| SelectError::UnknownStream(id.to_string()))?,
            ),
            None => None,
        };
        self.select_index(index, now)
    }

    /// The user selects a stream by position. Takes effect at once when no alarm is active.
    pub fn select_index(&mut self, stream: Option<usize>, now: Stamp) -> Result<(), SelectError> {
        if let Some(i) = stream
            && i >= self.streams.len()
        {
            return Err(SelectError::UnknownStream(format!("#{i}")));
        }
        if self.user != stream {
            self.user = stream;
            self.persist_gen += 1;
        }
        let name = stream.map(|i| self.streams[i].name);
        self.record(now, EventKind::UserSelected { stream: name });
        // A click shows the chosen stream at once, unless an alarm is showing (alarms beat the
        // user; the click must not hurry an alarm-to-alarm change past the minimum dwell).
        self.evaluate(now, Force::IfNoAlarm(ChangeCause::User));
        Ok(())
    }

    /// Sets an alarm's input level (a contact, or the API's trigger/clear without hold override).
    pub fn alarm_input(&mut self, alarm: usize, on: bool, now: Stamp) -> Result<(), SelectError> {
        self.check_alarm(alarm)?;
        self.run_timers(now);
        self.raise_counter += 1;
        let seq = self.raise_counter;
        let before = self.alarms[alarm].levels();
        self.alarms[alarm].set_input(false, on, now, seq);
        self.after_alarm(alarm, before, AlarmOp::Input, now);
        Ok(())
    }

    /// The API's trigger: with `hold_override`, a pulse active for that long (no clear needed;
    /// latched alarms latch as usual); without, the same as `alarm_input(alarm, true)`.
    pub fn trigger(
        &mut self,
        alarm: usize,
        hold_override: Option<Duration>,
        now: Stamp,
    ) -> Result<(), SelectError> {
        let Some(hold) = hold_override else {
            return self.alarm_input(alarm, true, now);
        };
        self.check_alarm(alarm)?;
        self.run_timers(now);
        self.raise_counter += 1;
        let seq = self.raise_counter;
        let before = self.alarms[alarm].levels();
        let hold_ns = u64::try_from(hold.as_nanos()).unwrap_or(u64::MAX);
        self.alarms[alarm].pulse(hold_ns, now, seq);
        self.after_alarm(alarm, before, AlarmOp::Input, now);
        Ok(())
    }

    /// The API's clear: the input goes inactive (hold and latch rules still apply).
    pub fn clear(&mut self, alarm: usize, now: Stamp) -> Result<(), SelectError> {
        self.alarm_input(alarm, false, now)
    }

    /// Acknowledges an alarm: drops a latch and ends a running hold (or API pulse). Returns
    /// `Ok(true)` when that changed something, `Ok(false)` when there was nothing to
    /// acknowledge. If the input is still active the alarm stays active, as if transparent,
    /// until the input clears. Errors for a `transparent` alarm with no hold running.
    /// Like a click, the resulting view change is not held back by the minimum dwell.
    pub fn ack(&mut self, alarm: usize, now: Stamp) -> Result<bool, SelectError> {
        self.check_alarm(alarm)?;
        let slot = &self.alarms[alarm];
        if !slot.acknowledgeable() {
            return Err(SelectError::NotAcknowledgeable(
                self.names.get(slot.id).to_string(),
            ));
        }
        if !slot.ack_pending() {
            self.evaluate(now, Force::No);
            return Ok(false);
        }
        self.run_timers(now);
        let before = self.alarms[alarm].levels();
        self.alarms[alarm].acknowledge(now);
        // An acknowledgement is a deliberate operator action, not chatter: whatever comes
        // next is shown at once.
        self.after_alarm_quiet(alarm, before, AlarmOp::Ack, now);
        self.evaluate(now, Force::Always(ChangeCause::User));
        Ok(true)
    }

    /// A stream's health changed: `up` when live, `false` when stalled or reconnecting.
    /// Video-loss alarms on that stream clear at once when it comes back, and are raised by a
    /// later [`tick`](Self::tick) when it stays lost long enough.
    pub fn stream_health(
        &mut self,
        stream: usize,
        up: bool,
        now: Stamp,
    ) -> Result<(), SelectError> {
        let slot = self
            .streams
            .get_mut(stream)
            .ok_or_else(|| SelectError::UnknownStream(format!("#{stream}")))?;
        if up {
            slot.lost_since = None;
            for i in 0..self.alarms.len() {
                if self.alarms[i].stream == Some(stream) && self.alarms[i].vl_input {
                    let before = self.alarms[i].levels();
                    self.alarms[i].set_input(true, false, now, 0);
                    // Restoring is not a change to save: keep the persistence generation.
                    let generation = self.persist_gen;
                    self.after_alarm_quiet(i, before, AlarmOp::Input, now);
                    self.persist_gen = generation;
                }
            }
        } else if slot.lost_since.is_none() {
            slot.lost_since = Some(now.mono_ns);
        }
        self.evaluate(now, Force::No);
        Ok(())
    }

    /// Advances timers (hold expiry, video loss, sequence turns, pending anti-flicker changes).
    pub fn tick(&mut self, now: Stamp) {
        self.evaluate(now, Force::No);
    }

    /// The earliest time at which [`tick`](Self::tick) would change something; sleep until then.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut best: Option<u64> = None;
        let mut take = |t: u64| best = Some(best.map_or(t, |b: u64| b.min(t)));
        for a in &self.alarms {
            if let Some(t) = a.hold_until {
                take(t);
            }
            if let (Some(after), Some(s), false) = (a.video_loss_after_ns, a.stream, a.vl_input)
                && let Some(since) = self.streams[s].lost_since
            {
                take(since.saturating_add(after));
            }
        }
        // Evaluated at the start of the current turn, so that a turn's end shows up as
        // `seq_deadline` and anything else that differs is a change held back by the min dwell.
        let d = self.desired(self.seq_started_ns);
        let dwell_end = self
            .last_change_ns
            .map_or(0, |t| t.saturating_add(self.min_dwell_ns));
        if let Some(t) = d.seq_deadline
            && d.seq_pick == self.seq_current
        {
            // The next turn cannot start before the anti-flicker rule allows a change.
            take(t.max(dwell_end));
        }
        if d.stream != self.shown && self.last_change_ns.is_some() {
            take(dwell_end);
        }
        best
    }

    /// The stream shown, by position.
    pub fn active_stream(&self) -> Option<usize> {
        self.shown
    }

    /// The stream shown, by id.
    pub fn active_stream_id(&self) -> Option<&str> {
        self.shown.map(|i| self.names.get(self.streams[i].name))
    }

    /// Why the shown stream is shown.
    pub fn reason(&self) -> Reason {
        self.shown_reason
    }

    /// The reason as the API spells it: `default`, `user`, `alarm:<id>`, `sequence:<id>,<id>`.
    pub fn reason_string(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_reason(&self.shown_reason, &mut s);
        s
    }

    /// Writes any reason (for example one from the history) as the API spells it.
    pub fn write_reason(&self, reason: &Reason, out: &mut dyn fmt::Write) -> fmt::Result {
        write_reason(&self.names, reason, out)
    }

    /// The stream the rules want at `now`, before the anti-flicker rule holds it back.
    /// Equal to [`active_stream`](Self::active_stream) whenever the minimum dwell has elapsed.
    pub fn desired_stream(&self, now: Stamp) -> Option<usize> {
        self.desired(now.mono_ns).stream
    }

    /// When the shown stream last changed.
    pub fn last_change_ns(&self) -> Option<u64> {
        self.last_change_ns
    }

    /// The user's selection, by position.
    pub fn user_selection(&self) -> Option<usize> {
        self.user
    }

    /// The state of the alarm at `index`.
    pub fn alarm_state(&self, index: usize) -> Option<AlarmState> {
        self.alarms.get(index).map(AlarmSlot::state)
    }

    /// Whether acknowledging the alarm at `index` now would change anything (see
    /// [`ack`](Self::ack)): a latch to drop, a hold to end, a coming hold to waive.
    pub fn alarm_ack_pending(&self, index: usize) -> bool {
        self.alarms
            .get(index)
            .is_some_and(|a| a.acknowledgeable() && a.ack_pending())
    }

    /// Whether the alarm at `index` is active.
    pub fn alarm_active(&self, index: usize) -> bool {
        self.alarms.get(index).is_some_and(AlarmSlot::is_active)
    }

    /// Wall time (µs) when the alarm at `index` became active; `None` while idle.
    pub fn alarm_since_wall_us(&self, index: usize) -> Option<i64> {
        self.alarms.get(index)?.since.map(|s| s.wall_us)
    }

    /// Times the alarm at `index` went from idle to active since the selector was made
    /// (kept across config changes while its id stays), for `/metrics`.
    pub fn alarm_raised_total(&self, index: usize) -> u64 {
        self.alarms.get(index).map_or(0, |a| a.raised_total)
    }

    /// Whether the GPIO output of the alarm at `index` should be on (configured and active).
    pub fn output_on(&self, index: usize) -> bool {
        self.alarms
            .get(index)
            .is_some_and(|a| a.has_output && a.is_active())
    }

    /// `(alarm index, on)` for every alarm that has an output; the GPIO layer drives these.
    pub fn outputs(&self) -> impl Iterator<Item = (usize, bool)> + '_ {
        self.alarms
            .iter()
            .enumerate()
            .filter(|(_, a)| a.has_output)
            .map(|(i, a)| (i, a.is_active()))
    }

    /// History entries, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &HistoryEvent> {
        self.history.iter()
    }

    /// Entries held in the history (never more than [`history_capacity`](Self::history_capacity)).
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// The history bound.
    pub fn history_capacity(&self) -> usize {
        self.history.capacity()
    }

    /// Entries ever recorded.
    pub fn history_total(&self) -> u64 {
        self.history.total()
    }

    /// Bumped when the persisted part (user choice, latched alarms) changes; save when it moves.
    pub fn generation(&self) -> u64 {
        self.persist_gen
    }

    /// Bumped when the shown stream or its reason changes; outputs re-read the view when it moves.
    pub fn view_generation(&self) -> u64 {
        self.view_gen
    }

    /// What to persist: the user's selection and the latched, unacknowledged alarms with the
    /// wall time (µs) they were raised. Matches the state file's `PersistedState`.
    pub fn snapshot(&self) -> (Option<String>, Vec<(String, i64)>) {
        let user = self
            .user
            .map(|i| self.names.get(self.streams[i].name).to_string());
        let latched = self
            .alarms
            .iter()
            .filter(|a| a.latched)
            .map(|a| {
                let since = a.since.map_or(0, |s| s.wall_us);
                (self.names.get(a.id).to_string(), since)
            })
            .collect();
        (user, latched)
    }

    /// Brings back a [`snapshot`](Self::snapshot) at start-up. Entries naming streams or alarms
    /// that no longer exist (or alarms no longer latched) are skipped with a warning.
    pub fn restore(&mut self, user: Option<&str>, latched: &[(String, i64)], now: Stamp) {
        if let Some(id) = user {
            match self.stream_index(id) {
                Some(i) => self.user = Some(i),
                None => tracing::warn!(stream = %id, "saved selection names an unknown stream"),
            }
        }
        for (id, since_wall_us) in latched {
            match self.alarm_index(id) {
                Some(i) if self.alarms[i].mode == AlarmMode::Latched => {
                    self.raise_counter += 1;
                    let seq = self.raise_counter;
                    let before = self.alarms[i].levels();
                    let slot = &mut self.alarms[i];
                    slot.pulse(0, now, seq);
                    slot.since = Some(Stamp {
                        mono_ns: now.mono_ns,
                        wall_us: *since_wall_us,
                    });
                    // Restoring is not a change to save: keep the persistence generation.
                    let generation = self.persist_gen;
                    self.after_alarm_quiet(i, before, AlarmOp::Input, now);
                    self.persist_gen = generation;
                }
                _ => tracing::warn!(alarm = %id, "saved latched alarm is unknown or not latched"),
            }
        }
        self.evaluate(now, Force::Always(ChangeCause::Config));
    }
}
