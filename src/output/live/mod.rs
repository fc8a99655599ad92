//! `/api/live`: the active stream pushed to one browser over a WebSocket.
//!
//! Protocol:
//! 1. The client sends a `hello` text message saying what it can decode:
//!    `{"type":"hello","codecs":["h264","mse","jpeg"]}` (`h264` where WebCodecs exists, `mse`
//!    where Media Source Extensions play fragmented MP4). The server takes the first of h264,
//!    mse, jpeg the client offers; `?mode=jpeg` on the URL forces JPEG. `hvc1` (WebCodecs
//!    decodes H.265) and `mse-hvc1` (MSE plays `hvc1` fMP4) say the client takes an H.265
//!    stream on that path: its frames go out as they are (wire codec H.265, `init` codec
//!    `hvc1.…`) or in an `hvc1` init segment. A client without it, and every JPEG client
//!    (the box has no H.265 decoder), gets for an H.265 stream an `init` without a codec
//!    whose `video` says `"state":"unsupported"` and, in `error`, what to change.
//! 2. For every stream it shows, the server sends an `init` text message
//!    (`{"type":"init","sid":n,"stream":..,"name":..,"reason":..,"codec":"avc1.42c01f"|"jpeg",
//!    "width":..,"height":..,"alarms":[..],"video":{"live":true,..}}`), then binary frames
//!    ([`super::wire`] header + payload) whose first one is a keyframe. When only the reason
//!    or the alarms change, a `view` text message carries them.
//!
//!    A switch to a stream without video (down, not running, no keyframe yet) gets its
//!    `init` at once all the same, with `"codec":null` and
//!    `"video":{"live":false,"state":"backoff","error":"..","down_s":42}`; the `init` with
//!    the codec follows with the first keyframe. While a stream is shown, a
//!    `{"type":"video","sid":n,"live":..,"state":..,"error":..,"down_s":..}` message says
//!    when it goes down or comes back. A stream that is down starts at its next new frame,
//!    never at the stale GOP still in its ring.
//!    On the MSE path the `init` also carries `"mime"` (for `addSourceBuffer`/`changeType`)
//!    and the size from the SPS, and is followed by a binary message flagged
//!    [`super::wire::FLAG_INIT`] holding the fMP4 init segment; every frame is then one
//!    `moof` + `mdat` on one decode timeline for the whole session (a switch appends a new init
//!    segment to the same SourceBuffer). When the SPS/PPS change, the `init` (same `sid`) and a
//!    new init segment come again before the frame.
//!
//!    Every keyframe goes out with [`crate::codec::sps::low_delay_if`] applied to its SPS (on
//!    both paths, so the MSE init segment's `avcC` has it too): an SPS that rules reordering
//!    out without saying so, or one of a stream this client has seen a whole GOP of in
//!    presentation order (`order.rs`), gets a `bitstream_restriction` with
//!    `max_num_reorder_frames` 0, so a hardware decoder outputs each frame at once. When that
//!    changes the SPS of a stream already shown (after its first GOP, or back when a frame
//!    comes out of order), the MSE path gets a new init segment, as for an SPS change.
//! 3. On connect and on every switch the H.264 or MSE client gets the current GOP from the ring's
//!    latest keyframe at once (frames flagged `catch-up` except the newest); nobody waits for
//!    the camera's next IDR. The JPEG client gets the newest picture of the shared decoder.
//!
//! What a client needs comes in a [`LiveContext`] (built by the web server for each
//! connection): the view channel, a [`StreamLookup`] for rings, the JPEG hub, the metrics,
//! the clock, the shutdown signal and the watchdog member table. The per-client loop is in
//! `client.rs`.
//!
//! Backpressure: each client is its own task with its own ring [`Reader`], so the ring is its
//! queue and nobody else waits for it. When it is more than `queue_frames` behind the writer it
//! jumps to the newest keyframe and counts the skipped frames (sent in every header). A send
//! that does not complete within `send_timeout` drops the client.

mod client;
mod order;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::Deserialize;
use tokio::sync::watch;

use super::StreamLookup;
use super::jpeg::JpegHub;
use crate::clock::Clock;
use crate::health::LIVE_BUDGET;
use crate::health::beacon::{BeaconGuard, BeaconTable};
use crate::select::ActiveView;
use client::Client;

/// Tuning of the live push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveOptions {
    /// Most frames a client may be behind the writer before it skips to the newest keyframe.
    pub queue_frames: u64,
    /// A send that takes longer drops the client (it stopped reading).
    pub send_timeout: Duration,
    /// How long to wait for the client's `hello`.
    pub hello_timeout: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            queue_frames: 50,
            send_timeout: Duration::from_secs(5),
            hello_timeout: Duration::from_secs(5),
        }
    }
}

/// The live push's own metrics; the web server registers them for `/metrics`. Clones share
/// the same values.
#[derive(Debug, Clone)]
pub struct LiveMetrics {
    /// Open `/api/live` connections.
    pub live_clients: Gauge,
    /// Frames skipped by live clients that fell behind.
    pub skipped_frames: Counter,
    /// Frames sent to live clients.
    pub sent_frames: Counter,
    /// Live clients dropped because they stopped reading.
    pub dropped_clients: Counter,
    /// Seconds from ingest (ring receive time) to the frame being handed to the socket.
    pub ingest_to_send: Histogram,
}

impl Default for LiveMetrics {
    fn default() -> Self {
        LiveMetrics {
            live_clients: Gauge::default(),
            skipped_frames: Counter::default(),
            sent_frames: Counter::default(),
            dropped_clients: Counter::default(),
            // 1 ms .. ~16 s.
            ingest_to_send: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        }
    }
}

/// Everything one client's loop needs, handed over by the web server.
#[derive(Clone)]
pub struct LiveContext {
    /// Live push tuning.
    pub options: LiveOptions,
    /// The active view (the control task's watch channel); a change may switch the stream.
    pub view: watch::Receiver<ActiveView>,
    /// Where the running streams' rings are found, looked up again on every switch and every
    /// ring recheck.
    pub streams: Arc<dyn StreamLookup>,
    /// The shared JPEG decoders, for clients on the JPEG path.
    pub jpeg: JpegHub,
    /// Counters and the latency histogram exported on `/metrics`.
    pub metrics: LiveMetrics,
    /// Wall time for the ingest-to-send latency, monotonic time for the watchdog beats.
    pub clock: Arc<dyn Clock>,
    /// Turns true when the server stops; every client then ends.
    pub shutdown: watch::Receiver<bool>,
    /// The table each client loop registers its watchdog slot in; the web server relays the
    /// stalest into the daemon's `live` beacon.
    pub members: Arc<BeaconTable>,
}

impl LiveContext {
    /// A watchdog slot for one client loop; `None` (logged) when every slot is taken.
    fn beacon(&self) -> Option<BeaconGuard> {
        self.members
            .register("live client", LIVE_BUDGET, self.clock.mono_ns())
            .inspect_err(|e| tracing::warn!(error = %e, "live client not watched"))
            .ok()
    }
}

/// Largest message (and frame) a client may send: its `hello` is well under 1 KiB.
pub const MAX_CLIENT_MESSAGE: usize = 4 * 1024;

/// How long a closing handshake may take before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the client can decode.
#[derive(Debug, Deserialize)]
struct Hello {
    /// `"hello"`.
    #[serde(rename = "type")]
    kind: String,
    /// `"h264"`, `"mse"`, `"jpeg"`.
    #[serde(default)]
    codecs: Vec<String>,
}

/// The delivery path chosen for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Path {
    /// Access units for WebCodecs.
    H264,
    /// The same access units as fragmented MP4, for Media Source Extensions.
    Mse,
    /// Pictures from the shared decoder.
    Jpeg,
}

/// Why a client's session ended.
#[derive(Debug)]
pub(super) enum End {
    /// The client closed or the socket failed.
    Closed,
    /// A send timed out: the client stopped reading.
    Stuck,
    /// The daemon is shutting down.
    Shutdown,
}

/// Runs one client until it leaves, stops reading, or the daemon stops.
pub async fn serve(ctx: LiveContext, mut ws: WebSocket, forced_jpeg: bool) {
    let hello_timeout = ctx.options.hello_timeout;
    let (path, hevc) = match tokio::time::timeout(hello_timeout, read_hello(&mut ws)).await {
        Ok(Some(codecs)) => {
            let offers = |name: &str| codecs.iter().any(|c| c == name);
            if offers("h264") && !forced_jpeg {
                (Path::H264, offers("hvc1"))
            } else if offers("mse") && !forced_jpeg {
                (Path::Mse, offers("mse-hvc1"))
            } else if codecs.iter().any(|c| c == "jpeg") || forced_jpeg {
                (Path::Jpeg, false)
            } else {
                let _ = ws
                    .send(error_msg("no codec this server can send (h264, mse, jpeg)"))
                    .await;
                return;
            }
        }
        Ok(None) => return,
        Err(_) => {
            let _ = ws.send(error_msg("no hello received")).await;
            return;
        }
    };
    // Registered before the client counts as connected, so the watchdog covers it throughout.
    let beacon = ctx.beacon();
    let metrics = ctx.metrics.clone();
    metrics.live_clients.inc();
    let mut client = Client::new(ctx, ws, path, hevc, beacon);
    let end = client.run().await;
    metrics.live_clients.dec();
    match end {
        End::Stuck => {
            // No goodbye: it would wait behind the unread data. Dropping the socket closes it.
            metrics.dropped_clients.inc();
            tracing::info!("live client dropped: it stopped reading");
        }
        End::Closed | End::Shutdown => {
            tracing::debug!(?end, "live client left");
            let goodbye = client.socket().send(Message::Close(None));
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await;
        }
    }
}

/// Waits for the `hello`; `None` when the client left or sent something else.
async fn read_hello(ws: &mut WebSocket) -> Option<Vec<String>> {
    loop {
        match ws.recv().await? {
            Ok(Message::Text(t)) => return parse_hello(t.as_str()),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            _ => return None,
        }
    }
}

/// The codecs of a client's first text message when it is a `hello`; `None` for anything
/// else (not JSON, another type, wrong field types). Never panics, whatever the text.
pub fn parse_hello(text: &str) -> Option<Vec<String>> {
    let hello: Hello = serde_json::from_str(text).ok()?;
    (hello.kind == "hello").then_some(hello.codecs)
}

/// An `error` text message.
fn error_msg(text: &str) -> Message {
    let body = serde_json::json!({"type": "error", "error": text}).to_string();
    Message::Text(Utf8Bytes::from(body))
}
