//! The [`Selector`] state machine.

use super::alarm::{AlarmSlot, AlarmState};
use super::history::{EventKind, History, HistoryEvent, NameId, Names, SEQUENCE_NAMES_MAX};
use super::{SelectError, Stamp};
use crate::config::{AlarmConfig, AlarmMode, Config, Multiple, SelectConfig};
use std::fmt;
use std::time::Duration;

/// History capacity the daemon uses unless told otherwise.
pub const DEFAULT_HISTORY: usize = 256;

/// Rank of a view with no alarm behind it; every alarm outranks it.
const BASE_RANK: i64 = i64::MIN;

/// Why the shown stream is shown. `Copy` and allocation-free; render it with
/// [`Selector::write_reason`] or [`Selector::reason_string`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// There are no streams at all.
    Nothing,
    /// `select.default`, or the first stream.
    Default,
    /// The user's selection.
    User,
    /// One alarm (`alarm:<id>`).
    Alarm(NameId),
    /// Cycling among several alarms of the top priority (`sequence:<id>,<id>...`).
    Sequence {
        /// The alarm whose stream is shown now.
        current: NameId,
        /// The alarms in the cycle, in config order (the first [`SEQUENCE_NAMES_MAX`]).
        members: [NameId; SEQUENCE_NAMES_MAX],
        /// How many of `members` are used.
        len: u8,
    },
}

/// What allowed a change of the shown stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeCause {
    /// The minimum dwell had elapsed since the previous change (or there was none).
    Dwell,
    /// The new view outranks the shown one (alarm over user, higher priority over lower).
    Preempt,
    /// An operator action: the user chose a stream or acknowledged an alarm.
    User,
    /// The config or restored state changed the candidates.
    Config,
    /// Same stream, new reason; not a visible change, so never held back.
    Relabel,
}

/// Whether an evaluation may bypass the minimum dwell.
#[derive(Debug, Clone, Copy)]
enum Force {
    /// No: the normal rules apply.
    No,
    /// Yes, with this cause (config change, acknowledgement).
    Always(ChangeCause),
    /// Yes, but only when no alarm is behind the new view (a click).
    IfNoAlarm(ChangeCause),
}

impl Force {
    /// The cause to record when a change to a view of `rank` is let through by force.
    fn cause(self, rank: i64) -> Option<ChangeCause> {
        match self {
            Force::No => None,
            Force::Always(c) => Some(c),
            Force::IfNoAlarm(c) => (rank == BASE_RANK).then_some(c),
        }
    }
}

/// One stream in the stream table.
#[derive(Debug, Clone)]
struct StreamSlot {
    /// The stream id, interned.
    name: NameId,
    /// Monotonic time since when the stream has been lost; `None` while live (or never reported).
    lost_since: Option<u64>,
}

/// What the rules want to show right now (before the anti-flicker rule).
#[derive(Debug, Clone, Copy)]
struct Desired {
    /// Stream position, `None` with no streams.
    stream: Option<usize>,
    /// Why.
    reason: Reason,
    /// Priority of the view, [`BASE_RANK`] when no alarm is behind it.
    rank: i64,
    /// In `sequence`, the alarm picked for this turn.
    seq_pick: Option<usize>,
    /// In `sequence`, when the current turn ends.
    seq_deadline: Option<u64>,
}

/// The active-stream state machine. See the module docs for the rules.
#[derive(Debug)]
pub struct Selector {
    /// Every stream and alarm id ever seen; history entries point here.
    names: Names,
    /// Selectable streams, by position.
    streams: Vec<StreamSlot>,
    /// Alarms, by position (config order).
    alarms: Vec<AlarmSlot>,
    /// Target stream ids of the alarms, parallel to `alarms`, to re-resolve on stream changes.
    alarm_targets: Vec<NameId>,
    /// `select.default` as configured, resolved against `streams` on every change.
    default_name: Option<NameId>,
    /// The resolved default stream position.
    default_stream: Option<usize>,
    /// `sequence` or `latest`.
    multiple: Multiple,
    /// Turn length in `sequence`.
    dwell_ns: u64,
    /// Anti-flicker minimum between changes of the shown stream.
    min_dwell_ns: u64,
    /// The user's selection.
    user: Option<usize>,
    /// The stream shown.
    shown: Option<usize>,
    /// Why it is shown.
    shown_reason: Reason,
    /// Priority of the shown view, for the preemption rule.
    shown_rank: i64,
    /// When the shown stream last changed.
    last_change_ns: Option<u64>,
    /// In `sequence`, the alarm whose turn it is.
    seq_current: Option<usize>,
    /// When that turn began.
    seq_started_ns: u64,
    /// Counter stamping raises, for `latest`.
    raise_counter: u64,
    /// Bounded event log.
    history: History,
    /// Bumped when the persisted part (user choice, latched alarms) changes.
    persist_gen: u64,
    /// Bumped when the shown stream or reason changes.
    view_gen: u64,
}

impl Selector {
    /// A selector for `cfg`'s enabled streams and alarms, holding `history_cap` history entries.
    pub fn new(cfg: &Config, history_cap: usize, now: Stamp) -> Selector {
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
            history: History::new(history_cap),
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
        let latched = self.alarms[alarm].latched;
        let changed = self.alarms[alarm].set_input(false, on, now, seq);
        self.after_alarm(alarm, latched, changed, now);
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
        let latched = self.alarms[alarm].latched;
        let hold_ns = u64::try_from(hold.as_nanos()).unwrap_or(u64::MAX);
        let changed = self.alarms[alarm].pulse(hold_ns, now, seq);
        self.after_alarm(alarm, latched, changed, now);
        Ok(())
    }

    /// The API's clear: the input goes inactive (hold and latch rules still apply).
    pub fn clear(&mut self, alarm: usize, now: Stamp) -> Result<(), SelectError> {
        self.alarm_input(alarm, false, now)
    }

    /// Acknowledges a latched alarm. Returns `Ok(true)` when a latch was dropped, `Ok(false)`
    /// when there was nothing to acknowledge. If the input is still active the alarm stays
    /// active, as if transparent, until the input clears. Errors for non-latched alarms.
    /// Like a click, the resulting view change is not held back by the minimum dwell.
    pub fn ack(&mut self, alarm: usize, now: Stamp) -> Result<bool, SelectError> {
        self.check_alarm(alarm)?;
        let slot = &self.alarms[alarm];
        if slot.mode != AlarmMode::Latched {
            return Err(SelectError::NotLatched(self.names.get(slot.id).to_string()));
        }
        if !slot.latched {
            self.evaluate(now, Force::No);
            return Ok(false);
        }
        let id = slot.id;
        self.run_timers(now);
        let changed = self.alarms[alarm].acknowledge(now);
        self.record(now, EventKind::AlarmAcknowledged { alarm: id });
        // An acknowledgement is a deliberate operator action, not chatter: whatever comes
        // next is shown at once.
        self.after_alarm_quiet(alarm, true, changed, now);
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
                    let latched = self.alarms[i].latched;
                    let changed = self.alarms[i].set_input(true, false, now, 0);
                    self.after_alarm_quiet(i, latched, changed, now);
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
        match reason {
            Reason::Nothing => out.write_str("none"),
            Reason::Default => out.write_str("default"),
            Reason::User => out.write_str("user"),
            Reason::Alarm(id) => write!(out, "alarm:{}", self.names.get(*id)),
            Reason::Sequence { members, len, .. } => {
                out.write_str("sequence:")?;
                for (i, m) in members[..usize::from(*len)].iter().enumerate() {
                    if i > 0 {
                        out.write_str(",")?;
                    }
                    out.write_str(self.names.get(*m))?;
                }
                Ok(())
            }
        }
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

    /// Whether the alarm at `index` is active.
    pub fn alarm_active(&self, index: usize) -> bool {
        self.alarms.get(index).is_some_and(AlarmSlot::is_active)
    }

    /// Wall time (µs) when the alarm at `index` became active; `None` while idle.
    pub fn alarm_since_wall_us(&self, index: usize) -> Option<i64> {
        self.alarms.get(index)?.since.map(|s| s.wall_us)
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
                    let slot = &mut self.alarms[i];
                    slot.pulse(0, now, seq);
                    slot.since = Some(Stamp {
                        mono_ns: now.mono_ns,
                        wall_us: *since_wall_us,
                    });
                    let alarm = slot.id;
                    self.record(now, EventKind::AlarmRaised { alarm });
                }
                _ => tracing::warn!(alarm = %id, "saved latched alarm is unknown or not latched"),
            }
        }
        self.evaluate(now, Force::Always(ChangeCause::Config));
    }

    fn check_alarm(&self, alarm: usize) -> Result<(), SelectError> {
        if alarm < self.alarms.len() {
            Ok(())
        } else {
            Err(SelectError::UnknownAlarm(format!("#{alarm}")))
        }
    }

    /// Bookkeeping after an alarm changed, then re-evaluation.
    fn after_alarm(&mut self, alarm: usize, latched_before: bool, changed: bool, now: Stamp) {
        self.after_alarm_quiet(alarm, latched_before, changed, now);
        self.evaluate(now, Force::No);
    }

    /// Bookkeeping after an alarm changed: history and persistence generation.
    fn after_alarm_quiet(&mut self, alarm: usize, latched_before: bool, changed: bool, now: Stamp) {
        let slot = &self.alarms[alarm];
        if slot.latched != latched_before {
            self.persist_gen += 1;
        }
        if changed {
            let id = slot.id;
            let kind = if slot.is_active() {
                EventKind::AlarmRaised { alarm: id }
            } else {
                EventKind::AlarmCleared { alarm: id }
            };
            self.record(now, kind);
        }
    }

    fn record(&mut self, at: Stamp, kind: EventKind) {
        self.history.push(HistoryEvent { at, kind });
    }

    /// Runs the timers, then moves the shown view towards the desired one as the rules allow.
    /// `forced` lets the change through regardless of the minimum dwell.
    fn evaluate(&mut self, now: Stamp, forced: Force) {
        self.run_timers(now);
        self.update_view(now, forced);
    }

    /// Ends elapsed holds and raises due video-loss alarms. Event handlers call this before
    /// applying their event, so that an event never lands on state that is already out of date.
    fn run_timers(&mut self, now: Stamp) {
        for i in 0..self.alarms.len() {
            let latched = self.alarms[i].latched;
            let changed = self.alarms[i].expire(now);
            self.after_alarm_quiet(i, latched, changed, now);
            let a = &self.alarms[i];
            if let (Some(after), Some(s), false) = (a.video_loss_after_ns, a.stream, a.vl_input)
                && let Some(since) = self.streams[s].lost_since
                && since.saturating_add(after) <= now.mono_ns
            {
                self.raise_counter += 1;
                let seq = self.raise_counter;
                let latched = self.alarms[i].latched;
                let changed = self.alarms[i].set_input(true, true, now, seq);
                self.after_alarm_quiet(i, latched, changed, now);
            }
        }
    }

    /// Moves the shown view towards the desired one as the anti-flicker rule allows.
    fn update_view(&mut self, now: Stamp, forced: Force) {
        let d = self.desired(now.mono_ns);
        if d.stream == self.shown {
            if d.reason != self.shown_reason {
                self.show(d, now, ChangeCause::Relabel, false);
            }
            return;
        }
        let cause = if let Some(c) = forced.cause(d.rank) {
            c
        } else if d.rank > self.shown_rank {
            ChangeCause::Preempt
        } else if self
            .last_change_ns
            .is_none_or(|t| now.mono_ns >= t.saturating_add(self.min_dwell_ns))
        {
            ChangeCause::Dwell
        } else {
            return;
        };
        self.show(d, now, cause, true);
    }

    fn show(&mut self, d: Desired, now: Stamp, cause: ChangeCause, stream_changed: bool) {
        self.shown = d.stream;
        self.shown_reason = d.reason;
        self.shown_rank = d.rank;
        if stream_changed {
            self.last_change_ns = Some(now.mono_ns);
        }
        if d.seq_pick != self.seq_current {
            self.seq_current = d.seq_pick;
            self.seq_started_ns = now.mono_ns;
        }
        self.view_gen += 1;
        let stream = d.stream.map(|i| self.streams[i].name);
        self.record(
            now,
            EventKind::ActiveChanged {
                stream,
                reason: d.reason,
                cause,
            },
        );
    }

    /// What the rules want at monotonic time `now_ns`. Pure and allocation-free.
    fn desired(&self, now_ns: u64) -> Desired {
        let mut top: Option<i32> = None;
        let mut count = 0usize;
        for a in self
            .alarms
            .iter()
            .filter(|a| a.stream.is_some() && a.is_active())
        {
            match top {
                Some(p) if a.priority < p => {}
                Some(p) if a.priority == p => count += 1,
                _ => {
                    top = Some(a.priority);
                    count = 1;
                }
            }
        }
        let Some(top) = top else {
            let (stream, reason) = match (self.user, self.default_stream) {
                (Some(u), _) => (Some(u), Reason::User),
                (None, Some(d)) => (Some(d), Reason::Default),
                (None, None) => (None, Reason::Nothing),
            };
            return Desired {
                stream,
                reason,
                rank: BASE_RANK,
                seq_pick: None,
                seq_deadline: None,
            };
        };
        let is_top = |a: &AlarmSlot| a.stream.is_some() && a.is_active() && a.priority == top;
        let rank = i64::from(top);
        if count == 1 || self.multiple == Multiple::Latest {
            let mut best: Option<usize> = None;
            for (i, a) in self.alarms.iter().enumerate().filter(|(_, a)| is_top(a)) {
                if best.is_none_or(|b| a.raised_seq > self.alarms[b].raised_seq) {
                    best = Some(i);
                }
            }
            let pick = best.unwrap_or(0);
            return Desired {
                stream: self.alarms[pick].stream,
                reason: Reason::Alarm(self.alarms[pick].id),
                rank,
                seq_pick: None,
                seq_deadline: None,
            };
        }
        let n = self.alarms.len();
        let pick = match self.seq_current {
            Some(c) if is_top(&self.alarms[c]) && now_ns < self.seq_started_ns + self.dwell_ns => c,
            current => {
                let start = current.map_or(0, |c| c + 1);
                (0..n)
                    .map(|k| (start + k) % n)
                    .find(|&i| is_top(&self.alarms[i]))
                    .unwrap_or(0)
            }
        };
        let mut members = [NameId(0); SEQUENCE_NAMES_MAX];
        let mut len = 0u8;
        for a in self
            .alarms
            .iter()
            .filter(|a| is_top(a))
            .take(SEQUENCE_NAMES_MAX)
        {
            members[usize::from(len)] = a.id;
            len += 1;
        }
        let started = if Some(pick) == self.seq_current {
            self.seq_started_ns
        } else {
            now_ns
        };
        Desired {
            stream: self.alarms[pick].stream,
            reason: Reason::Sequence {
                current: self.alarms[pick].id,
                members,
                len,
            },
            rank,
            seq_pick: Some(pick),
            seq_deadline: Some(started.saturating_add(self.dwell_ns)),
        }
    }
}
