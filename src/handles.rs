//! What the daemon lends the web server: narrow handles instead of the daemon itself.
//!
//! The daemon ([`crate::daemon`]) owns its streams, rings, GPIO inputs and the control task,
//! and its main loop is the only code that changes them. The web server gets a [`Handles`]:
//!
//! - [`Control`]: selection and alarm commands, and the active view (a watch channel).
//! - [`StatusReader`]: what runs ([`Status`]: the config in force, the running streams with
//!   their rings and statistics, the GPIO inputs), republished by the daemon after its start
//!   and after every config apply. Reading it clones an `Arc` under the watch channel's lock
//!   and lets go at once, so no lock is ever held across a send to a client.
//! - [`ConfigHandle`]: config changes, sent to the daemon's loop over a channel and answered
//!   once the new config is validated, saved atomically and running ([`ApplyError`] says why
//!   not).
//! - The beacon table and the watchdog status, for the System tab and the live push's
//!   watchdog slot.
//!
//! Nothing here names the daemon or the web server, so both can depend on it.

use std::sync::Arc;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{Config, ConfigError, FieldError, StreamConfig};
use crate::control::Control;
use crate::gpio::{InputState, InputStatus};
use crate::health::beacon::BeaconTable;
use crate::health::watchdog::WatchdogStatus;
use crate::hooks::WebhookStats;
use crate::ingest::stats::StreamState;
use crate::ingest::stats::StreamStats;
use crate::output::clips::ClipsHandle;
use crate::output::{LiveStream, Pick, PictureStream, StreamLookup};
use crate::ring::rates::RateBook;
use crate::ring::{FrameRing, RingError};

/// Everything the web server may use of the daemon.
#[derive(Debug, Clone)]
pub struct Handles {
    /// Selection and alarm commands; the active view.
    pub control: Control,
    /// The config in force and what runs, as of the last start or config apply.
    pub status: StatusReader,
    /// Config changes, applied by the daemon's loop.
    pub config: ConfigHandle,
    /// The daemon's liveness beacons: the web registers the live pusher's slot here and the
    /// System tab lists them.
    pub beacons: Arc<BeaconTable>,
    /// What the watchdog task has done (pings, trip), for the System tab.
    pub watchdog: Arc<WatchdogStatus>,
    /// The event clip store (`GET /api/clips`), when clips are on.
    pub clips: ClipsHandle,
}

/// One running stream as the web reads it.
#[derive(Clone)]
pub struct RunningStream {
    /// The config it runs with (id, display name, size for the live `init`).
    pub config: StreamConfig,
    /// Its frame ring; a restarted stream gets a fresh one, which live clients notice.
    pub ring: Arc<FrameRing>,
    /// Its live statistics (state, fps, reconnects) for the status page and `/metrics`.
    pub stats: Arc<StreamStats>,
    /// The camera's sub stream (`sub_url`), when it has one: pictures decode it while live.
    pub sub: Option<SubStream>,
}

/// A camera's running sub stream as the web reads it.
#[derive(Clone)]
pub struct SubStream {
    /// Its frame ring.
    pub ring: Arc<FrameRing>,
    /// Its live statistics, shown as the camera's `sub` in `/api/status` and `/metrics`.
    pub stats: Arc<StreamStats>,
}

impl std::fmt::Debug for SubStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubStream")
            .field("ring", &self.ring.stats())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RunningStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningStream")
            .field("id", &self.config.id)
            .field("ring", &self.ring.stats())
            .finish_non_exhaustive()
    }
}

/// What the daemon runs, published after its start and after every config apply.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The config in force, disabled streams included (`GET /api/config`, the status rows).
    pub config: Config,
    /// The running (enabled) streams, in config order.
    pub streams: Vec<RunningStream>,
    /// Every alarm input (GPIO, ONVIF, MQTT), by alarm id: a missing chip or an unreachable
    /// camera or broker shows on the status page.
    pub inputs: Vec<InputEntry>,
    /// Every webhook's counters, in config order.
    pub webhooks: Vec<Arc<WebhookStats>>,
    /// Each stream's measured peak rates (what its ring is sized from at its next start),
    /// for the status's ring warnings.
    pub rates: Arc<RateBook>,
}

impl Status {
    /// A running stream by id.
    pub fn stream(&self, id: &str) -> Option<&RunningStream> {
        self.streams.iter().find(|s| s.config.id == id)
    }

    /// Every alarm input's alarm id, kind and state.
    pub fn input_states(&self) -> impl Iterator<Item = (&str, &'static str, InputState)> {
        self.inputs
            .iter()
            .map(|e| (e.alarm.as_str(), e.kind, e.status.state()))
    }
}

/// One alarm input as the status lists it.
#[derive(Debug, Clone)]
pub struct InputEntry {
    /// The alarm it raises (an alarm may have several inputs, of different kinds).
    pub alarm: String,
    /// `gpio`, `onvif` or `mqtt`: which section of the config to look at when it fails.
    pub kind: &'static str,
    /// Its state, shared with the task that serves it.
    pub status: Arc<InputStatus>,
}

/// Reads the daemon's latest [`Status`].
#[derive(Debug, Clone)]
pub struct StatusReader {
    /// The daemon's publications; only ever borrowed long enough to clone the `Arc`.
    rx: watch::Receiver<Arc<Status>>,
}

impl StatusReader {
    /// A reader and the sender the daemon publishes with, starting at `first`.
    pub fn channel(first: Status) -> (watch::Sender<Arc<Status>>, StatusReader) {
        let (tx, rx) = watch::channel(Arc::new(first));
        (tx, StatusReader { rx })
    }

    /// The latest status.
    pub fn current(&self) -> Arc<Status> {
        Arc::clone(&self.rx.borrow())
    }
}

impl StreamLookup for StatusReader {
    fn live_stream(&self, id: &str) -> Option<LiveStream> {
        let status = self.current();
        let s = status.stream(id)?;
        Some(LiveStream {
            name: s.config.display_name().to_string(),
            ring: Arc::clone(&s.ring),
            width: s.config.width,
            height: s.config.height,
            stats: Arc::clone(&s.stats),
        })
    }

    fn picture_stream(&self, id: &str, pick: Pick) -> Option<PictureStream> {
        let status = self.current();
        let s = status.stream(id)?;
        let live_sub = match pick {
            Pick::Main => None,
            Pick::Pictures => s
                .sub
                .as_ref()
                .filter(|sub| sub.stats.state() == StreamState::Live),
        };
        let (key, ring, stats, width, height) = match live_sub {
            Some(sub) => (
                format!("{id}/sub"),
                &sub.ring,
                &sub.stats,
                // The configured size is the main stream's; the sub's comes from its frames.
                None,
                None,
            ),
            None => (
                id.to_string(),
                &s.ring,
                &s.stats,
                s.config.width,
                s.config.height,
            ),
        };
        Some(PictureStream {
            key,
            stream: LiveStream {
                name: s.config.display_name().to_string(),
                ring: Arc::clone(ring),
                width,
                height,
                stats: Arc::clone(stats),
            },
        })
    }

    fn display_name(&self, id: &str) -> Option<String> {
        let status = self.current();
        let s = status.config.streams.iter().find(|s| s.id == id)?;
        Some(s.display_name().to_string())
    }
}

/// Why a config change was not applied.
#[derive(Debug, Error)]
pub enum ApplyError {
    /// The config does not validate; nothing was saved or changed.
    #[error("invalid config ({} problems)", .0.len())]
    Invalid(Vec<FieldError>),
    /// The config could not be written; nothing was changed.
    #[error("cannot save the config: {0}")]
    Save(#[source] ConfigError),
    /// The blocking save task died (a panic); nothing was changed.
    #[error("the config save task failed: {0}")]
    SaveTask(#[source] tokio::task::JoinError),
    /// The config was saved but a stream's ring could not be allocated.
    #[error("cannot apply the config: {0}")]
    Apply(#[source] RingError),
    /// The daemon is shutting down and takes no more changes.
    #[error("the daemon is shutting down")]
    Closed,
}

/// A config change on its way to the daemon's loop.
#[derive(Debug)]
pub struct ConfigRequest {
    /// The whole new config.
    pub config: Config,
    /// Answered once the config runs, or with why it does not.
    pub reply: oneshot::Sender<Result<(), ApplyError>>,
}

/// Sends config changes to the daemon's loop, which validates, saves and applies them one at
/// a time.
#[derive(Debug, Clone)]
pub struct ConfigHandle {
    /// Queue into the loop that owns the daemon.
    tx: mpsc::Sender<ConfigRequest>,
}

impl ConfigHandle {
    /// A handle and the receiver the daemon's loop reads.
    pub fn channel() -> (ConfigHandle, mpsc::Receiver<ConfigRequest>) {
        // Changes come from an admin's browser, one at a time; a short queue is plenty.
        let (tx, rx) = mpsc::channel(8);
        (ConfigHandle { tx }, rx)
    }

    /// Validates, saves and applies `config`; returns once it runs.
    pub async fn apply(&self, config: Config) -> Result<(), ApplyError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(ConfigRequest { config, reply })
            .await
            .map_err(|_| ApplyError::Closed)?;
        rx.await.map_err(|_| ApplyError::Closed)?
    }
}
