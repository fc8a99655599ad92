//! The history as the API shows it: owned, serializable records made on demand.
//!
//! Recording stays allocation-free (the history holds `Copy` entries with interned names);
//! only a reader asking for the events (`GET /api/events`) pays for the strings.

use serde::Serialize;

use super::alarm::AlarmState;
use super::history::{EventKind, HistoryEvent, NameId};
use super::reason::ChangeCause;
use super::selector::Selector;

/// One history entry for `GET /api/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    /// Position in everything ever recorded (0 = the first event since start), so a client
    /// polling the bounded history can tell new entries and missed ones.
    pub seq: u64,
    /// Wall time, µs since the UNIX epoch.
    pub at_us: i64,
    /// `active` (the shown stream or its reason changed), `select` (the user chose a stream)
    /// or `alarm` (an alarm changed).
    pub kind: &'static str,
    /// What happened: `switched` / `relabelled` (`active`), `selected` (`select`), `raised` /
    /// `cleared` / `acknowledged` / `hold-expired` (`alarm`).
    pub action: &'static str,
    /// The stream shown or chosen; for alarms, the stream the alarm calls up.
    pub stream: Option<String>,
    /// The alarm concerned (`alarm` events).
    pub alarm: Option<String>,
    /// `active`: the new reason (`user`, `default`, `alarm:<id>`, `sequence:<ids>`);
    /// `select`: `user`, or `default` when the choice was cleared;
    /// `alarm`: the alarm's state right after (`active`, `holding`, `latched`, `idle`).
    pub detail: String,
    /// `active` only: what let the change through: `user` (a click or an acknowledgement),
    /// `preempt` (an alarm outranked the view), `dwell`, `config`, `relabel` (same stream),
    /// or `return-after-clear` (the alarms ended and the view went back to the user's choice
    /// or the default).
    pub cause: Option<&'static str>,
}

/// The bounded history with its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventsReport {
    /// The entries held, oldest first.
    pub events: Vec<EventRecord>,
    /// Entries ever recorded (more than `events.len()` once the oldest were overwritten).
    pub total: u64,
    /// Most entries held.
    pub capacity: usize,
}

impl<const HISTORY: usize> Selector<HISTORY> {
    /// The history as owned records, oldest first (allocates; for the API only).
    pub fn events_report(&self) -> EventsReport {
        let total = self.history_total();
        let first = total - self.history_len() as u64;
        let events = self
            .history()
            .zip(first..)
            .map(|(ev, seq)| self.record_of(ev, seq))
            .collect();
        EventsReport {
            events,
            total,
            capacity: self.history_capacity(),
        }
    }

    /// The held entries from position `seq` on (everything ever recorded counts, as in
    /// [`EventRecord::seq`]), oldest first; entries already overwritten are not there.
    pub fn events_since(&self, seq: u64) -> impl Iterator<Item = EventRecord> + '_ {
        let first = self.history_total() - self.history_len() as u64;
        self.history()
            .zip(first..)
            .filter(move |(_, s)| *s >= seq)
            .map(|(ev, s)| self.record_of(ev, s))
    }

    fn record_of(&self, ev: &HistoryEvent, seq: u64) -> EventRecord {
        let name = |id: NameId| Some(self.name(id).to_string());
        let mut rec = EventRecord {
            seq,
            at_us: ev.at.wall_us,
            kind: "alarm",
            action: "",
            stream: None,
            alarm: None,
            detail: String::new(),
            cause: None,
        };
        let alarm = |rec: &mut EventRecord, id: NameId, action, state: AlarmState| {
            rec.action = action;
            rec.alarm = name(id);
            rec.stream = self.alarm_target(id).and_then(name);
            rec.detail = state.as_str().to_string();
        };
        match ev.kind {
            EventKind::ActiveChanged {
                stream,
                reason,
                cause,
                returned,
            } => {
                rec.kind = "active";
                rec.action = if cause == ChangeCause::Relabel {
                    "relabelled"
                } else {
                    "switched"
                };
                rec.stream = stream.and_then(name);
                // Writing into a String cannot fail.
                let _ = self.write_reason(&reason, &mut rec.detail);
                rec.cause = Some(if returned {
                    "return-after-clear"
                } else {
                    cause_str(cause)
                });
            }
            EventKind::UserSelected { stream } => {
                rec.kind = "select";
                rec.action = "selected";
                rec.stream = stream.and_then(name);
                rec.detail = if stream.is_some() { "user" } else { "default" }.to_string();
            }
            EventKind::AlarmRaised { alarm: id, state } => alarm(&mut rec, id, "raised", state),
            EventKind::AlarmCleared { alarm: id, state } => alarm(&mut rec, id, "cleared", state),
            EventKind::AlarmAcknowledged { alarm: id, state } => {
                alarm(&mut rec, id, "acknowledged", state)
            }
            EventKind::AlarmHoldExpired { alarm: id } => {
                alarm(&mut rec, id, "hold-expired", AlarmState::Idle)
            }
        }
        rec
    }
}

/// The API spelling of a change cause.
fn cause_str(cause: ChangeCause) -> &'static str {
    match cause {
        ChangeCause::Dwell => "dwell",
        ChangeCause::Preempt => "preempt",
        ChangeCause::User => "user",
        ChangeCause::Config => "config",
        ChangeCause::Relabel => "relabel",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AlarmConfig, AlarmMode, Config, StreamConfig};
    use crate::select::Stamp;
    use std::time::Duration;

    fn config() -> Config {
        let mut cfg = Config::default();
        for id in ["a", "b"] {
            let mut s: StreamConfig =
                toml::from_str(&format!("id = \"{id}\"\nkind = \"testpattern\"")).unwrap();
            s.enabled = true;
            cfg.streams.push(s);
        }
        cfg.select.min_dwell_ms = 0;
        let mut door: AlarmConfig =
            toml::from_str("id = \"door\"\nstream = \"b\"\nmode = \"hold\"\nhold_s = 5").unwrap();
        door.priority = 1;
        let mut gate = door.clone();
        gate.id = "gate".into();
        gate.mode = AlarmMode::Latched;
        cfg.alarms = vec![door, gate];
        cfg
    }

    fn summary<const H: usize>(sel: &Selector<H>) -> Vec<String> {
        sel.events_report()
            .events
            .iter()
            .map(|e| {
                format!(
                    "{}:{}:{}:{}:{}",
                    e.kind,
                    e.action,
                    e.alarm.as_deref().or(e.stream.as_deref()).unwrap_or("-"),
                    e.detail,
                    e.cause.unwrap_or("-")
                )
            })
            .collect()
    }

    #[test]
    fn records_raise_clear_hold_expiry_ack_and_the_return_with_wall_times() {
        let mut sel = Selector::<64>::new(&config(), Stamp::from_ms(0));
        let door = sel.alarm_index("door").unwrap();
        let gate = sel.alarm_index("gate").unwrap();
        sel.select(Some("a"), Stamp::from_ms(1_000)).unwrap();
        sel.alarm_input(door, true, Stamp::from_ms(2_000)).unwrap();
        sel.alarm_input(door, false, Stamp::from_ms(3_000)).unwrap();
        // The hold ends with no event from outside: only the timer.
        sel.tick(Stamp::from_ms(8_000));
        sel.trigger(gate, Some(Duration::ZERO), Stamp::from_ms(9_000))
            .unwrap();
        assert!(sel.ack(gate, Stamp::from_ms(10_000)).unwrap());
        let got = summary(&sel);
        let want = [
            "active:switched:a:default:config",
            "select:selected:a:user:-",
            "active:relabelled:a:user:relabel",
            "alarm:raised:door:active:-",
            "active:switched:b:alarm:door:preempt",
            "alarm:cleared:door:holding:-",
            "alarm:hold-expired:door:idle:-",
            "active:switched:a:user:return-after-clear",
            "alarm:raised:gate:latched:-",
            "active:switched:b:alarm:gate:preempt",
            "alarm:acknowledged:gate:idle:-",
            "active:switched:a:user:user",
        ];
        assert_eq!(got, want);
        let report = sel.events_report();
        let at: Vec<i64> = report.events.iter().map(|e| e.at_us).collect();
        assert_eq!(at[6], 8_000_000, "the expiry carries the timer's wall time");
        assert_eq!(report.events[3].stream.as_deref(), Some("b"));
        assert_eq!(report.total, want.len() as u64);
        assert_eq!(report.events.last().unwrap().seq, report.total - 1);
        assert_eq!(sel.alarm_raised_total(door), 1);
        assert_eq!(sel.alarm_raised_total(gate), 1);
    }

    #[test]
    fn sequence_numbers_continue_past_the_bound() {
        let mut sel = Selector::<4>::new(&config(), Stamp::from_ms(0));
        let door = sel.alarm_index("door").unwrap();
        for k in 0..10u64 {
            sel.alarm_input(door, k % 2 == 0, Stamp::from_ms(k * 10_000))
                .unwrap();
        }
        let report = sel.events_report();
        assert_eq!(report.events.len(), 4);
        assert_eq!(report.capacity, 4);
        let seqs: Vec<u64> = report.events.iter().map(|e| e.seq).collect();
        let t = report.total;
        assert_eq!(seqs, vec![t - 4, t - 3, t - 2, t - 1]);
        assert_eq!(sel.alarm_raised_total(door), 5);
    }
}
