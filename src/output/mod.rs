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

/// Which of a camera's streams a picture output (snapshot, MJPEG, the JPEG live path)
/// decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pick {
    /// The sub stream while it is live (a fraction of the main stream's decode), else the
    /// main stream: what pictures use unless asked otherwise.
    #[default]
    Pictures,
    /// Always the main stream (`?stream=main`).
    Main,
}

/// The stream a camera's pictures are decoded from.
#[derive(Clone)]
pub struct PictureStream {
    /// The key its shared decoder and last good picture go under in the
    /// [`jpeg::JpegHub`]: the camera id for the main stream, `id/sub` for the sub stream.
    pub key: String,
    /// The stream itself (its ring, stats; the camera's display name).
    pub stream: LiveStream,
}

/// Why the box makes no pictures (snapshots, thumbnails, MJPEG, JPEG clients) of an H.265
/// stream, and what to change. Shown by `snapshot.jpg`, `/mjpeg` and the live JPEG path.
pub const H265_NO_PICTURES: &str = "the camera sends H.265, which this box cannot turn into \
    pictures (it has no H.265 decoder); set the camera's sub stream to H.264 and enter its \
    URL as this camera's sub_url, or set the camera's main stream to H.264";

/// What a live client that cannot decode H.265 is told about an H.265 stream.
pub const H265_NOT_IN_BROWSER: &str = "the camera sends H.265, which this browser cannot \
    decode; set the camera's main stream to H.264 (or give the camera an H.264 sub stream), \
    or open this page in a browser that plays H.265 (Safari, or Chrome or Edge with hardware \
    video decoding)";

impl LiveStream {
    /// Why the box cannot make pictures of this stream from its own frames: `Some` for a
    /// codec it has no decoder for (H.265). Snapshots, thumbnails, MJPEG and JPEG clients
    /// then need an H.264 stream of the same camera (its sub stream); the live view in a
    /// browser that decodes the codec still works. `None` for H.264 and JPEG, and before the
    /// first frame.
    pub fn no_pictures_reason(&self) -> Option<&'static str> {
        match self.stats.codec() {
            Some(c) if !c.decodable_here() => Some(H265_NO_PICTURES),
            _ => None,
        }
    }
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

    /// The stream pictures of camera `id` are decoded from now, as `pick` asks. Without sub
    /// streams this is the camera's own stream.
    fn picture_stream(&self, id: &str, pick: Pick) -> Option<PictureStream> {
        let _ = pick;
        self.live_stream(id).map(|stream| PictureStream {
            key: id.to_string(),
            stream,
        })
    }
}
