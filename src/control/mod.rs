//! The control task: the one owner of the [`Selector`](crate::select::Selector). Everything
//! that can change the active stream (the page, the HTTP alarm API, GPIO inputs, stream
//! health, config changes) sends it a [`Command`] through a [`Control`] handle; it publishes
//! the resulting [`ActiveView`] on a watch channel and persists the user's selection and
//! latched alarms whenever they change.
//!
//! This file is the handle (what callers hold); `task.rs` is the loop behind it.

mod task;

pub use task::{ControlGate, spawn_control, spawn_control_gated};

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::config::Config;
use crate::ingest::stats::StreamStats;
use crate::select::{ActiveView, EventRecord, EventsReport, SelectError};

/// Entries the event feed ([`Control::subscribe_events`]) holds for a slow receiver.
pub const EVENT_FEED: usize = 256;

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
    /// Save the state one last time and end, although handles may still exist (the web
    /// server's, held by a connection that has not ended yet). Commands queued before it are
    /// served first; later ones find the task gone ([`ControlError::Closed`]).
    Stop,
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
    /// Every new history entry as it is recorded (webhooks); the task only ever does a
    /// non-blocking send, and a receiver that falls behind loses the oldest.
    events: broadcast::Sender<Arc<EventRecord>>,
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

    /// A receiver of every history entry recorded from now on. The control task never waits
    /// for it: a receiver more than [`EVENT_FEED`] entries behind gets
    /// [`broadcast::error::RecvError::Lagged`] and the newest entries.
    pub fn subscribe_events(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.events.subscribe()
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
