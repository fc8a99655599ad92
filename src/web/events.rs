//! Recent selection and alarm events for `GET /api/events` and the alarm counts in `/metrics`,
//! recorded from the control task's view changes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::daemon::control::ActiveView;

/// Events kept.
pub const EVENT_CAPACITY: usize = 200;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Wall time, µs since the epoch.
    pub at_us: i64,
    /// `active` (the shown stream or its reason changed) or `alarm` (an alarm changed state).
    pub kind: &'static str,
    /// The stream concerned.
    pub stream: Option<String>,
    /// The alarm concerned (`alarm` events).
    pub alarm: Option<String>,
    /// The new reason (`active`) or alarm state (`alarm`).
    pub detail: String,
}

/// The bounded log, shared.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    /// Events (oldest first) and alarm raise counts.
    inner: Arc<Mutex<Inner>>,
}

/// The log's data.
#[derive(Debug, Default)]
struct Inner {
    /// The newest [`EVENT_CAPACITY`] events.
    events: VecDeque<Event>,
    /// Times each alarm went from idle to not idle.
    raised: HashMap<String, u64>,
    /// Events ever recorded.
    total: u64,
}

impl EventLog {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, ev: Event) {
        let mut inner = self.lock();
        if inner.events.len() == EVENT_CAPACITY {
            inner.events.pop_front();
        }
        inner.events.push_back(ev);
        inner.total += 1;
    }

    /// Events, oldest first, and how many were ever recorded.
    pub fn snapshot(&self) -> (Vec<Event>, u64) {
        let inner = self.lock();
        (inner.events.iter().cloned().collect(), inner.total)
    }

    /// Times `alarm` was raised since start.
    pub fn raised(&self, alarm: &str) -> u64 {
        self.lock().raised.get(alarm).copied().unwrap_or(0)
    }

    /// Records what changed between two views.
    pub fn record_change(&self, old: &ActiveView, new: &ActiveView, at_us: i64) {
        if old.stream != new.stream || old.reason != new.reason {
            self.push(Event {
                at_us,
                kind: "active",
                stream: new.stream.clone(),
                alarm: None,
                detail: new.reason.clone(),
            });
        }
        for a in &new.alarms {
            let before = old
                .alarms
                .iter()
                .find(|o| o.id == a.id)
                .map_or("idle", |o| o.state);
            if before == a.state {
                continue;
            }
            if before == "idle" {
                *self.lock().raised.entry(a.id.clone()).or_insert(0) += 1;
            }
            self.push(Event {
                at_us,
                kind: "alarm",
                stream: Some(a.stream.clone()),
                alarm: Some(a.id.clone()),
                detail: a.state.to_string(),
            });
        }
    }
}

/// Records every view change until the control task ends.
pub async fn record(mut rx: watch::Receiver<ActiveView>, log: EventLog, clock: Arc<dyn Clock>) {
    let mut last = rx.borrow_and_update().clone();
    log.record_change(&ActiveView::default(), &last, clock.wall_us());
    while rx.changed().await.is_ok() {
        let view = rx.borrow_and_update().clone();
        log.record_change(&last, &view, clock.wall_us());
        last = view;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::control::AlarmStatus;

    fn view(stream: &str, reason: &str, door: &'static str) -> ActiveView {
        ActiveView {
            stream: Some(stream.into()),
            reason: reason.into(),
            alarms: vec![AlarmStatus {
                id: "door".into(),
                name: "Door".into(),
                state: door,
                stream: "cam2".into(),
                since: None,
            }],
            generation: 0,
        }
    }

    #[test]
    fn records_switches_and_alarm_transitions() {
        let log = EventLog::default();
        let a = view("cam1", "default", "idle");
        let b = view("cam2", "alarm:door", "active");
        let c = view("cam1", "default", "idle");
        log.record_change(&a, &b, 1);
        log.record_change(&b, &c, 2);
        log.record_change(&c, &c, 3);
        let (events, total) = log.snapshot();
        assert_eq!(total, 4);
        assert_eq!(events[0].kind, "active");
        assert_eq!(events[0].detail, "alarm:door");
        assert_eq!(events[1].alarm.as_deref(), Some("door"));
        assert_eq!(events[1].detail, "active");
        assert_eq!(events[3].detail, "idle");
        assert_eq!(log.raised("door"), 1);
    }
}
