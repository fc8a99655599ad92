//! The rules: timers, what the view should be, and when the shown view may follow it.

use super::alarm::{AlarmSlot, Levels};
use super::history::{EventKind, HistoryEvent, NameId, SEQUENCE_NAMES_MAX};
use super::reason::{ChangeCause, Reason};
use super::selector::Selector;
use super::{SelectError, Stamp};
use crate::config::Multiple;

/// Rank of a view with no alarm behind it; every alarm outranks it.
pub(super) const BASE_RANK: i64 = i64::MIN;

/// Whether an evaluation may bypass the minimum dwell.
#[derive(Debug, Clone, Copy)]
pub(super) enum Force {
    /// No: the normal rules apply.
    No,
    /// Yes, with this cause (config change, acknowledgement).
    Always(ChangeCause),
    /// Yes, but only when no alarm is behind the new view (a click).
    IfNoAlarm(ChangeCause),
}

impl Force {
    /// The cause to record when a change to a view of `rank` is let through by force.
    pub(super) fn cause(self, rank: i64) -> Option<ChangeCause> {
        match self {
            Force::No => None,
            Force::Always(c) => Some(c),
            Force::IfNoAlarm(c) => (rank == BASE_RANK).then_some(c),
        }
    }
}

/// What changed an alarm, for the history entry it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AlarmOp {
    /// An input level (contact, API, video loss) or an API pulse.
    Input,
    /// A hold ran out.
    Expire,
    /// An operator acknowledged it.
    Ack,
}

/// What the rules want to show right now (before the anti-flicker rule).
#[derive(Debug, Clone, Copy)]
pub(super) struct Desired {
    /// Stream position, `None` with no streams.
    pub(super) stream: Option<usize>,
    /// Why.
    pub(super) reason: Reason,
    /// Priority of the view, [`BASE_RANK`] when no alarm is behind it.
    pub(super) rank: i64,
    /// In `sequence`, the alarm picked for this turn.
    pub(super) seq_pick: Option<usize>,
    /// In `sequence`, when the current turn ends.
    pub(super) seq_deadline: Option<u64>,
}

impl<const HISTORY: usize> Selector<HISTORY> {
    /// `Ok` when `alarm` is a valid alarm position.
    pub(super) fn check_alarm(&self, alarm: usize) -> Result<(), SelectError> {
        if alarm < self.alarms.len() {
            Ok(())
        } else {
            Err(SelectError::UnknownAlarm(format!("#{alarm}")))
        }
    }

    /// Bookkeeping after an alarm changed, then re-evaluation.
    pub(super) fn after_alarm(&mut self, alarm: usize, before: Levels, op: AlarmOp, now: Stamp) {
        self.after_alarm_quiet(alarm, before, op, now);
        self.evaluate(now, Force::No);
    }

    /// Bookkeeping after `op` changed an alarm whose levels were `before`: the history entry
    /// saying what happened, the raise count, and the persistence generation.
    pub(super) fn after_alarm_quiet(
        &mut self,
        alarm: usize,
        before: Levels,
        op: AlarmOp,
        now: Stamp,
    ) {
        let slot = &mut self.alarms[alarm];
        let after = slot.levels();
        if after.latched != before.latched {
            self.persist_gen += 1;
        }
        let (id, state) = (slot.id, slot.state());
        let kind = if !before.active && after.active {
            slot.raised_total += 1;
            EventKind::AlarmRaised { alarm: id, state }
        } else if op == AlarmOp::Ack {
            EventKind::AlarmAcknowledged { alarm: id, state }
        } else if before.input && !after.input {
            EventKind::AlarmCleared { alarm: id, state }
        } else if op == AlarmOp::Expire && before.active && !after.active {
            EventKind::AlarmHoldExpired { alarm: id }
        } else {
            return;
        };
        self.record(now, kind);
    }

    /// Appends to the history.
    pub(super) fn record(&mut self, at: Stamp, kind: EventKind) {
        self.history.push(HistoryEvent { at, kind });
    }

    /// Runs the timers, then moves the shown view towards the desired one as the rules allow.
    /// `forced` lets the change through regardless of the minimum dwell.
    pub(super) fn evaluate(&mut self, now: Stamp, forced: Force) {
        self.run_timers(now);
        self.update_view(now, forced);
    }

    /// Ends elapsed holds and raises due video-loss alarms. Event handlers call this before
    /// applying their event, so that an event never lands on state that is already out of date.
    pub(super) fn run_timers(&mut self, now: Stamp) {
        for i in 0..self.alarms.len() {
            let before = self.alarms[i].levels();
            if self.alarms[i].expire(now) {
                self.after_alarm_quiet(i, before, AlarmOp::Expire, now);
            }
            let a = &self.alarms[i];
            if let (Some(after), Some(s), false) = (a.video_loss_after_ns, a.stream, a.vl_input)
                && let Some(since) = self.streams[s].lost_since
                && since.saturating_add(after) <= now.mono_ns
            {
                self.raise_counter += 1;
                let seq = self.raise_counter;
                let before = self.alarms[i].levels();
                self.alarms[i].set_input(true, true, now, seq);
                self.after_alarm_quiet(i, before, AlarmOp::Input, now);
            }
        }
    }

    /// Moves the shown view towards the desired one as the anti-flicker rule allows.
    pub(super) fn update_view(&mut self, now: Stamp, forced: Force) {
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

    /// Makes `d` the shown view and records the change.
    pub(super) fn show(
        &mut self,
        d: Desired,
        now: Stamp,
        cause: ChangeCause,
        stream_changed: bool,
    ) {
        let from_alarm = matches!(
            self.shown_reason,
            Reason::Alarm(_) | Reason::Sequence { .. }
        );
        let to_base = matches!(d.reason, Reason::User | Reason::Default);
        // An acknowledgement or a config change is its own cause, not the alarms ending.
        let returned =
            from_alarm && to_base && !matches!(cause, ChangeCause::User | ChangeCause::Config);
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
                returned,
            },
        );
    }

    /// What the rules want at monotonic time `now_ns`. Pure and allocation-free.
    pub(super) fn desired(&self, now_ns: u64) -> Desired {
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
