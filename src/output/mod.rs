//! Outputs of the active stream and of any stream: the live WebSocket push ([`live`]) with its
//! frame header ([`wire`]), the shared decoder and JPEG encoder ([`jpeg`]), MJPEG ([`mjpeg`])
//! and the "no video" picture it sends while a stream has none ([`placeholder`]).
//!
//! Outputs know rings and the selector's view, not who runs the streams: the web server hands
//! them what they need ([`live::LiveContext`], a [`StreamLookup`]).

pub mod clips;
pub mod jpeg;
pub mod live;
pub mod mjpeg;
pub mod placeholder;
pub mod wire;

use std::sync::Arc;

use crate::ingest::stats::StreamStats;
use crate::ring::FrameRing;

/// A running stream as the outputs need it.
#[derive(Clone)]
pub struct LiveStream {
    /// Display name.
    pub name: String,
    /// Its ring.
    pub ring: Arc<FrameRing>,
    /// Configured width, when the config says (test pattern, V4L2).
    pub width: Option<u32>,
    /// Configured height, likewise.
    pub height: Option<u32>,
    /// Its supervisor's state and last error, so an output can say why there is no video.
    pub stats: Arc<StreamStats>,
}

/// Finds a running stream by id. Streams come and go with config changes (a restarted one
/// gets a fresh ring), so outputs look again instead of keeping what they found.
pub trait StreamLookup: Send + Sync {
    /// The running stream `id`; `None` when no such stream runs.
    fn live_stream(&self, id: &str) -> Option<LiveStream>;

    /// The display name of stream `id`, also when it does not run (disabled, or not started
    /// yet); `None` for an unknown id.
    fn display_name(&self, id: &str) -> Option<String> {
        self.live_stream(id).map(|s| s.name)
    }
}
