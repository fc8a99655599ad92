//! Ingest: sources that produce encoded frames, and the supervisor that keeps each one running.
//!
//! A source's `run` function is one connection attempt: it connects, pushes frames into
//! [`SourceCtx::sink`] until something goes wrong, and returns the error. The supervisor
//! owns timeouts, backoff, restarts and the per-stream statistics.

pub mod font;
pub mod gate;
pub mod learned;
pub mod phase;
pub mod probe;
pub mod sources;
pub mod testpattern;
#[cfg(feature = "v4l2")]
pub mod v4l2;

use crate::clock::Clock;
use crate::frame::FrameSink;
pub use phase::{AttemptPhase, Waiting};
use thiserror::Error;

/// What a source gets from its supervisor for one connection attempt.
pub struct SourceCtx<'a> {
    /// Stream id, for log fields.
    pub id: &'a str,
    /// Where frames go (the stream's ring writer, wrapped so the supervisor can count them).
    pub sink: &'a mut dyn FrameSink,
    /// Time source for receive timestamps.
    pub clock: &'a dyn Clock,
    /// Epoch of this attempt; every frame's [`crate::frame::FrameInfo::epoch`] carries it.
    pub epoch: u32,
    /// Where the source says which step it is in, so a connect timeout can name what it
    /// waited for. Sources that never set it get the generic timeout message.
    pub phase: AttemptPhase,
}

/// Why a connection attempt ended.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The config cannot work (bad URL, unsupported format, missing feature). Not retried
    /// until the config changes: the stream goes to `failed`.
    #[error("{0}")]
    Config(String),
    /// Could not connect or set up (refused, 503, device missing or busy). Retried with backoff.
    #[error("{0}")]
    Connect(String),
    /// The camera answered and refused in a way that retrying soon cannot change: wrong
    /// credentials (401/403), no such stream (404), no video codec edgecam can show. The
    /// stream goes to `failed` and is retried only on a long interval
    /// ([`crate::ingest::supervisor::SupervisorConfig::failed_retry`]), on *Test connection*
    /// or on a config change: a camera that locks an account after a few bad logins must not
    /// see one every second.
    #[error("{0}")]
    Rejected(String),
    /// Nothing answered at the camera's address (connection refused, timed out, no route):
    /// retried with backoff, and meanwhile the supervisor probes the camera cheaply
    /// ([`Source::probe`]) to retry as soon as it answers.
    #[error("{0}")]
    Unreachable(String),
    /// The session broke after it was set up (peer closed, garbage, decoder error). Retried.
    #[error("{0}")]
    Stream(String),
}

impl SourceError {
    /// True when retrying cannot help until the config changes.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SourceError::Config(_))
    }

    /// True when the camera refused the attempt for good ([`SourceError::Rejected`]): retried
    /// only on the long `failed` interval or when asked.
    pub fn is_rejection(&self) -> bool {
        matches!(self, SourceError::Rejected(_))
    }
}

/// A kind of camera. One value per configured stream; the supervisor calls [`Source::run`]
/// once per connection attempt and owns everything around it (timeouts, backoff, stats).
pub trait Source: Send + Sync {
    /// One connection attempt: connect, push frames into `ctx.sink` until the session ends,
    /// and return why it ended. Frames before the first keyframe of the attempt are dropped
    /// by the source. The future must be cancel-safe: the supervisor drops it on a timeout.
    fn run<'a>(
        &'a self,
        ctx: SourceCtx<'a>,
    ) -> futures::future::BoxFuture<'a, Result<(), SourceError>>;

    /// A cheap check, made between attempts while the camera is [`SourceError::Unreachable`],
    /// that it answers again (for RTSP: a TCP connect to its port, closed at once); true when
    /// it does. The supervisor bounds it with a timeout. `None` (the default): this kind
    /// cannot be probed, and waits its backoff out.
    fn probe(&self) -> Option<futures::future::BoxFuture<'_, bool>> {
        None
    }
}

pub mod redact;
pub mod rtsp;
pub mod stats;
pub mod supervisor;
