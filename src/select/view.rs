//! The selector's view as everyone else reads it: which stream is shown, why, and every
//! alarm's state. The control task ([`crate::control`]) renders it from the [`Selector`]
//! after every change and publishes it on a watch channel; the live push, the status API, the
//! `STATUS=` line and the metrics read it.
//!
//! [`Selector`]: super::Selector

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
    /// Higher wins the screen; the page orders its banners by it.
    pub priority: i32,
    /// `transparent`, `hold` or `latched`, as configured.
    pub mode: &'static str,
    /// An acknowledgement now would change something (drop a latch, end a hold, waive a
    /// coming hold): the page offers the Acknowledge button only then.
    pub acknowledgeable: bool,
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
