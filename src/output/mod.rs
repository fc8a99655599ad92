//! Outputs of the active stream and of any stream: the live WebSocket push ([`live`]) with its
//! frame header ([`wire`]), the shared decoder and JPEG encoder ([`jpeg`]) and MJPEG ([`mjpeg`]).

pub mod jpeg;
pub mod live;
pub mod mjpeg;
pub mod wire;

use std::sync::Arc;

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
}
