//! `/api/live`: the active stream pushed to one browser over a WebSocket.
//!
//! Protocol:
//! 1. The client sends a `hello` text message saying what it can decode:
//!    `{"type":"hello","codecs":["h264","jpeg"]}` (`h264` only where WebCodecs exists).
//! 2. For every stream it shows, the server sends an `init` text message
//!    (`{"type":"init","sid":n,"stream":..,"name":..,"reason":..,"codec":"avc1.42c01f"|"jpeg",
//!    "width":..,"height":..,"alarms":[..]}`), then binary frames ([`super::wire`] header +
//!    payload) whose first one is a keyframe. When only the reason or the alarms change, a
//!    `view` text message carries them.
//! 3. On connect and on every switch the H.264 client gets the current GOP from the ring's
//!    latest keyframe at once (frames flagged `catch-up` except the newest); nobody waits for
//!    the camera's next IDR. The JPEG client gets the newest picture of the shared decoder.
//!
//! Backpressure: each client is its own task with its own ring [`Reader`], so the ring is its
//! queue and nobody else waits for it. When it is more than `queue_frames` behind the writer it
//! jumps to the newest keyframe and counts the skipped frames (sent in every header). A send
//! that does not complete within `send_timeout` drops the client.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use serde::{Deserialize, Serialize};

use super::jpeg::JpegWatch;
use super::wire::{FLAG_CATCH_UP, FLAG_DISCONTINUITY, FrameHeader, encode_frame};
use crate::codec::h264::avc_codec_string;
use crate::select::{ActiveView, AlarmStatus};
use crate::frame::{Codec, FrameMeta};
use crate::health::beacon::BeaconGuard;
use crate::ring::{FrameRing, Reader, Start};
use crate::web::AppState;

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

/// How often a client re-checks that its stream's ring is still the one running (a stream
/// restarted by a config change gets a fresh ring).
const RING_RECHECK: Duration = Duration::from_secs(1);
/// How long a closing handshake may take before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Most frames sent in one go before the view is re-checked.
const BURST_LIMIT: usize = 64;

/// What the client can decode.
#[derive(Debug, Deserialize)]
struct Hello {
    /// `"hello"`.
    #[serde(rename = "type")]
    kind: String,
    /// `"h264"`, `"jpeg"`.
    #[serde(default)]
    codecs: Vec<String>,
}

/// The delivery path chosen for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Access units for WebCodecs.
    H264,
    /// Pictures from the shared decoder.
    Jpeg,
}

/// The `init` and `view` text messages.
#[derive(Debug, Serialize)]
struct ViewMsg<'a> {
    /// `init` or `view`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// Stream number the following frames carry.
    sid: u32,
    /// The active stream id.
    stream: Option<&'a str>,
    /// Its display name.
    name: Option<&'a str>,
    /// Why it is active.
    reason: &'a str,
    /// WebCodecs codec string or `jpeg`; `None` when the stream has no video yet.
    codec: Option<&'a str>,
    /// Picture width, when known.
    width: Option<u32>,
    /// Picture height, when known.
    height: Option<u32>,
    /// Every alarm's state, for the banner.
    alarms: &'a [AlarmStatus],
}

/// Why a client's session ended.
#[derive(Debug)]
enum End {
    /// The client closed or the socket failed.
    Closed,
    /// A send timed out: the client stopped reading.
    Stuck,
    /// The daemon is shutting down.
    Shutdown,
}

/// The stream a client is currently watching.
struct Current {
    /// Display name.
    name: String,
    /// The ring (kept to notice a restarted stream).
    ring: Arc<FrameRing>,
    /// Configured size, when known.
    size: (Option<u32>, Option<u32>),
    /// H.264 path: this client's position in the ring.
    reader: Option<Reader>,
    /// JPEG path: the shared decoder's pictures.
    jpeg: Option<JpegWatch>,
    /// The `init` for this stream has been sent.
    init_sent: bool,
    /// JPEG path: sequence number of the last picture sent.
    last_jpeg: Option<u64>,
    /// Frames must be skipped until the next keyframe (start, or after a lag).
    need_key: bool,
    /// The next frame sent follows skipped frames.
    discontinuity: bool,
}

/// One connected client.
struct Client {
    /// Server state: streams, JPEG hub, metrics.
    state: Arc<AppState>,
    /// The socket.
    ws: WebSocket,
    /// H.264 or JPEG.
    path: Path,
    /// Stream number, bumped on every switch.
    sid: u32,
    /// The last view acted on.
    view: ActiveView,
    /// What is shown now.
    current: Option<Current>,
    /// Frames this client skipped.
    skipped: u64,
    /// Payload buffer reused for every frame read.
    buf: Vec<u8>,
    /// This loop's watchdog slot, beaten every iteration and every send.
    beacon: Option<BeaconGuard>,
    /// Catch-up frames were queued on the socket without a flush (a burst goes out in one
    /// write, and the browser gets it at once).
    unflushed: bool,
}

/// Runs one client until it leaves, stops reading, or the daemon stops.
pub async fn serve(state: Arc<AppState>, mut ws: WebSocket, forced_jpeg: bool) {
    let hello_timeout = state.live_options().hello_timeout;
    let path = match tokio::time::timeout(hello_timeout, read_hello(&mut ws)).await {
        Ok(Some(codecs)) => {
            if codecs.iter().any(|c| c == "h264") && !forced_jpeg {
                Path::H264
            } else if codecs.iter().any(|c| c == "jpeg") || forced_jpeg {
                Path::Jpeg
            } else {
                let _ = ws
                    .send(error_msg("no codec this server can send (h264, jpeg)"))
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
    let beacon = state.live_beacon();
    let metrics = Arc::clone(&state.metrics);
    metrics.live_clients.inc();
    let mut client = Client {
        state,
        ws,
        path,
        sid: 0,
        view: ActiveView::default(),
        current: None,
        skipped: 0,
        buf: Vec::with_capacity(256 * 1024),
        beacon,
        unflushed: false,
    };
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
            let goodbye = client.ws.send(Message::Close(None));
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await;
        }
    }
}

/// Waits for the `hello`; `None` when the client left or sent something else.
async fn read_hello(ws: &mut WebSocket) -> Option<Vec<String>> {
    loop {
        match ws.recv().await? {
            Ok(Message::Text(t)) => {
                let hello: Hello = serde_json::from_str(t.as_str()).ok()?;
                return (hello.kind == "hello").then_some(hello.codecs);
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            _ => return None,
        }
    }
}

fn error_msg(text: &str) -> Message {
    let body = serde_json::json!({"type": "error", "error": text}).to_string();
    Message::Text(Utf8Bytes::from(body))
}

impl Client {
    async fn run(&mut self) -> End {
        let Some(mut view_rx) = self.state.subscribe_view().await else {
            return End::Shutdown;
        };
        let mut shutdown = self.state.shutdown_signal();
        let mut recheck = tokio::time::interval(RING_RECHECK);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            // `hang:live:client` (feature `fault-injection`) hangs every client loop here.
            crate::health::fault::checkpoint("live", "client").await;
            self.beat();
            // `changed()` below marks the value seen, so compare instead of asking.
            let view = {
                let v = view_rx.borrow_and_update();
                (self.sid == 0 || *v != self.view).then(|| v.clone())
            };
            if let Some(view) = view
                && let Err(e) = self.apply_view(view).await
            {
                return e;
            }
            if let Err(e) = self.pump().await {
                return e;
            }
            let (reader, jpeg) = match self.current.as_mut() {
                Some(c) => (c.reader.as_mut(), c.jpeg.as_mut()),
                None => (None, None),
            };
            tokio::select! {
                r = view_rx.changed() => if r.is_err() { return End::Shutdown },
                _ = shutdown.changed() => return End::Shutdown,
                msg = self.ws.recv() => match msg {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return End::Closed,
                    Some(Ok(_)) => {}
                },
                _ = wait_reader(reader) => {}
                _ = wait_jpeg(jpeg) => {}
                _ = recheck.tick() => {
                    if let Err(e) = self.recheck_ring().await {
                        return e;
                    }
                }
            }
        }
    }

    /// Acts on a new view: a switch when the stream (or its ring) changed, otherwise a `view`
    /// message when the reason or alarms changed.
    async fn apply_view(&mut self, view: ActiveView) -> Result<(), End> {
        let stream_changed = self.sid == 0 || view.stream != self.view.stream;
        let changed = view.reason != self.view.reason || view.alarms != self.view.alarms;
        self.view = view;
        if stream_changed {
            return self.switch().await;
        }
        if changed && self.current.as_ref().is_none_or(|c| c.init_sent) {
            let msg = self.view_msg("view", None, (None, None));
            self.send(msg).await?;
        }
        Ok(())
    }

    /// Starts showing the view's stream: the current GOP from its latest keyframe.
    async fn switch(&mut self) -> Result<(), End> {
        self.sid = self.sid.wrapping_add(1);
        self.current = None;
        let Some(id) = self.view.stream.clone() else {
            let msg = self.view_msg("init", None, (None, None));
            return self.send(msg).await;
        };
        let Some(found) = self.state.lookup_stream(&id).await else {
            // Not running (yet): tell the page, and look again on the next recheck.
            let msg = self.view_msg("init", None, (None, None));
            return self.send(msg).await;
        };
        let (reader, jpeg) = match self.path {
            Path::H264 => (Some(found.ring.reader(Start::LatestKeyframe)), None),
            Path::Jpeg => (None, Some(self.state.jpeg.subscribe(&id, &found.ring))),
        };
        self.current = Some(Current {
            name: found.name,
            ring: found.ring,
            size: (found.width, found.height),
            reader,
            jpeg,
            init_sent: false,
            last_jpeg: None,
            need_key: true,
            discontinuity: false,
        });
        Ok(())
    }

    /// Switches again when the stream shown has no ring yet or a new one.
    async fn recheck_ring(&mut self) -> Result<(), End> {
        let Some(id) = self.view.stream.clone() else {
            return Ok(());
        };
        let found = self.state.lookup_stream(&id).await;
        let stale = match (&self.current, &found) {
            (Some(c), Some(f)) => !Arc::ptr_eq(&c.ring, &f.ring),
            (None, Some(_)) => true,
            (Some(_), None) => true,
            (None, None) => false,
        };
        if stale {
            self.switch().await?;
        }
        Ok(())
    }

    /// Sends whatever is ready for the current stream.
    async fn pump(&mut self) -> Result<(), End> {
        match self.path {
            Path::H264 => self.pump_h264().await,
            Path::Jpeg => self.pump_jpeg().await,
        }
    }

    /// Sends the H.264 frames that are ready; a catch-up burst is queued and flushed once.
    async fn pump_h264(&mut self) -> Result<(), End> {
        let sent = self.pump_h264_frames().await;
        if std::mem::take(&mut self.unflushed) {
            let timeout = self.state.live_options().send_timeout;
            match tokio::time::timeout(timeout, futures::SinkExt::flush(&mut self.ws)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(End::Closed),
                Err(_) => return Err(End::Stuck),
            }
        }
        sent
    }

    async fn pump_h264_frames(&mut self) -> Result<(), End> {
        let queue = self.state.live_options().queue_frames;
        for _ in 0..BURST_LIMIT {
            let Some(cur) = self.current.as_mut() else {
                return Ok(());
            };
            let Some(reader) = cur.reader.as_mut() else {
                return Ok(());
            };
            // Bounded queue: too far behind, skip to the newest keyframe.
            let head = cur.ring.head();
            if head.saturating_sub(reader.cursor()) > queue
                && let Some(k) = cur.ring.latest_keyframe()
                && k > reader.cursor()
            {
                let skipped = k - reader.cursor();
                reader.jump_to_latest_keyframe();
                self.skipped += skipped;
                self.state.metrics.skipped_frames.inc_by(skipped);
                cur.discontinuity = true;
            }
            let meta = match reader.next_into(&mut self.buf) {
                Ok(Some(meta)) => meta,
                Ok(None) => return Ok(()),
                Err(lag) => {
                    self.skipped += lag.skipped;
                    self.state.metrics.skipped_frames.inc_by(lag.skipped);
                    cur.discontinuity = true;
                    cur.need_key = true;
                    continue;
                }
            };
            if cur.need_key {
                if !meta.info.keyframe {
                    // After a lag these are frames lost to this client; at the start of a
                    // stream without a keyframe yet they were never part of its view.
                    if cur.discontinuity {
                        self.skipped += 1;
                        self.state.metrics.skipped_frames.inc();
                    }
                    continue;
                }
                cur.need_key = false;
            }
            if !cur.init_sent {
                let codec = avc_codec_string(&self.buf);
                let size = cur.size;
                let msg = self.view_msg("init", codec.as_deref(), size);
                self.send(msg).await?;
                if let Some(c) = self.current.as_mut() {
                    c.init_sent = true;
                }
            }
            let Some(cur) = self.current.as_mut() else {
                return Ok(());
            };
            let mut flags = 0;
            if std::mem::take(&mut cur.discontinuity) {
                flags |= FLAG_DISCONTINUITY;
            }
            if meta.seq + 1 < cur.ring.head() {
                flags |= FLAG_CATCH_UP;
            }
            self.send_frame(&meta, flags).await?;
        }
        Ok(())
    }

    async fn pump_jpeg(&mut self) -> Result<(), End> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        let Some(rx) = cur.jpeg.as_mut() else {
            return Ok(());
        };
        let Some(pic) = rx.borrow_and_update().clone() else {
            return Ok(());
        };
        if cur.last_jpeg == Some(pic.meta.seq) {
            return Ok(());
        }
        cur.last_jpeg = Some(pic.meta.seq);
        if !cur.init_sent {
            let msg = self.view_msg("init", Some("jpeg"), (Some(pic.width), Some(pic.height)));
            self.send(msg).await?;
            if let Some(c) = self.current.as_mut() {
                c.init_sent = true;
            }
        }
        let header = FrameHeader {
            codec: Codec::Jpeg,
            flags: super::wire::FLAG_KEYFRAME,
            sid: self.sid,
            seq: pic.meta.seq,
            recv_wall_us: pic.meta.info.recv_wall_us,
            skipped: self.skipped as u32,
        };
        let mut msg = Vec::new();
        encode_frame(&header, &pic.data, &mut msg);
        self.observe_latency(&pic.meta);
        self.send(Message::Binary(msg.into())).await
    }

    /// Sends the frame in `self.buf` with its header. A catch-up frame is only queued: the
    /// newest frame of the burst (or [`Client::pump_h264`]) flushes them all in one write.
    async fn send_frame(&mut self, meta: &FrameMeta, flags: u8) -> Result<(), End> {
        let header = FrameHeader::for_frame(meta, self.sid, flags, self.skipped as u32);
        // One allocation per message: the socket takes ownership of its bytes.
        let mut msg = Vec::new();
        encode_frame(&header, &self.buf, &mut msg);
        self.observe_latency(meta);
        let msg = Message::Binary(msg.into());
        if flags & FLAG_CATCH_UP == 0 {
            self.unflushed = false;
            return self.send(msg).await;
        }
        let timeout = self.state.live_options().send_timeout;
        match tokio::time::timeout(timeout, futures::SinkExt::feed(&mut self.ws, msg)).await {
            Ok(Ok(())) => {
                self.unflushed = true;
                Ok(())
            }
            Ok(Err(_)) => Err(End::Closed),
            Err(_) => Err(End::Stuck),
        }
    }

    fn observe_latency(&self, meta: &FrameMeta) {
        let now = self.state.clock.wall_us();
        let secs = (now - meta.info.recv_wall_us).max(0) as f64 / 1e6;
        self.state.metrics.ingest_to_send.observe(secs);
        self.state.metrics.sent_frames.inc();
    }

    fn view_msg(
        &self,
        kind: &'static str,
        codec: Option<&str>,
        size: (Option<u32>, Option<u32>),
    ) -> Message {
        let msg = ViewMsg {
            kind,
            sid: self.sid,
            stream: self.view.stream.as_deref(),
            name: self.current.as_ref().map(|c| c.name.as_str()),
            reason: &self.view.reason,
            codec,
            width: size.0,
            height: size.1,
            alarms: &self.view.alarms,
        };
        let text = serde_json::to_string(&msg).unwrap_or_default();
        Message::Text(Utf8Bytes::from(text))
    }

    /// Sends one message; a client that does not take it within the timeout is dropped.
    async fn send(&mut self, msg: Message) -> Result<(), End> {
        let timeout = self.state.live_options().send_timeout;
        match tokio::time::timeout(timeout, self.ws.send(msg)).await {
            Ok(Ok(())) => {
                self.beat();
                Ok(())
            }
            Ok(Err(_)) => Err(End::Closed),
            Err(_) => Err(End::Stuck),
        }
    }
}

impl Client {
    /// Tells the watchdog this loop is alive.
    fn beat(&self) {
        if let Some(b) = &self.beacon {
            b.beat(self.state.clock.mono_ns());
        }
    }
}

/// Waits for a new frame in the reader's ring; forever when there is no reader.
async fn wait_reader(reader: Option<&mut Reader>) {
    match reader {
        Some(r) => r.wait().await,
        None => std::future::pending().await,
    }
}

/// Waits for a new JPEG picture; forever when there is no channel (or it closed).
async fn wait_jpeg(rx: Option<&mut JpegWatch>) {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
