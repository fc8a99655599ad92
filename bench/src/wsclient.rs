//! A live-path client (`/api/live`, the browser's WebSocket) that records what it receives and
//! when: every `init` (which stream a `sid` is) and every binary frame's 36-byte header with
//! the client's own receive time. It runs on its own thread with a one-thread tokio runtime,
//! so the bench's blocking code can ask it questions while it keeps reading.

use anyhow::{Context, bail};
use edgecam::output::wire::{FLAG_CATCH_UP, FLAG_INIT, FrameHeader};
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Which delivery path a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LivePath {
    /// H.264 access units (the page's WebCodecs path).
    H264,
    /// Fragmented MP4 (the page's MSE path).
    Mse,
    /// Pictures re-encoded by the box (the last resort).
    Jpeg,
}

impl LivePath {
    /// The name in reports and in the `hello`.
    pub fn name(self) -> &'static str {
        match self {
            LivePath::H264 => "h264",
            LivePath::Mse => "mse",
            LivePath::Jpeg => "jpeg",
        }
    }
}

/// One binary frame as received.
#[derive(Debug, Clone, Copy)]
pub struct FrameEvent {
    /// When the client had the whole message.
    pub at: Instant,
    /// The same moment on the wall clock, µs since the epoch (compared with the header's
    /// ingest receive time; daemon and client share the machine's clock).
    pub at_wall_us: i64,
    /// The parsed header.
    pub header: FrameHeader,
}

impl FrameEvent {
    /// Ingest to client receive, µs.
    pub fn latency_us(&self) -> i64 {
        self.at_wall_us - self.header.recv_wall_us
    }

    /// Part of the catch-up burst sent on connect or switch (old frames by design).
    pub fn catch_up(&self) -> bool {
        self.header.flags & FLAG_CATCH_UP != 0
    }
}

/// Everything the client has seen so far.
#[derive(Debug, Default)]
struct Seen {
    /// (when, sid, stream id) of every `init` message.
    inits: Vec<(Instant, u32, Option<String>)>,
    /// Every binary frame.
    frames: Vec<FrameEvent>,
    /// Why the connection ended, once it has.
    ended: Option<String>,
}

/// A connected (or connecting) live client; dropping it closes the socket.
pub struct LiveClient {
    /// When the connection was started: the origin of the first-frame time.
    pub started: Instant,
    /// What the reader thread recorded.
    seen: Arc<Mutex<Seen>>,
    /// Tells the reader to close; `None` once sent.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The reader thread.
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The wall clock in µs since the epoch.
pub fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl LiveClient {
    /// Opens `/api/live` on `addr` with a bearer token and says hello for `path`.
    pub fn connect(addr: SocketAddr, token: &str, path: LivePath) -> anyhow::Result<LiveClient> {
        let jpeg = path == LivePath::Jpeg;
        let url = if jpeg {
            format!("ws://{addr}/api/live?mode=jpeg")
        } else {
            format!("ws://{addr}/api/live")
        };
        let mut req = url.into_client_request().context("bad WebSocket URL")?;
        req.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).context("bad token")?,
        );
        let hello = match path {
            LivePath::Jpeg => r#"{"type":"hello","codecs":["jpeg"]}"#,
            LivePath::Mse => r#"{"type":"hello","codecs":["mse","jpeg"]}"#,
            LivePath::H264 => r#"{"type":"hello","codecs":["h264","jpeg"]}"#,
        };
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the client's runtime")?;
        let started = Instant::now();
        let shared = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            let end = rt.block_on(read_loop(req, hello, Arc::clone(&shared), stop_rx));
            lock(&shared).ended = Some(end);
        });
        Ok(LiveClient {
            started,
            seen,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Waits for the first frame; returns connect-to-first-frame.
    pub fn first_frame(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let since = self.started;
        self.wait_for(timeout, |s| {
            s.frames
                .first()
                .map(|f| f.at.saturating_duration_since(since))
        })
    }

    /// Waits for the first frame of `stream` received after `after`; returns the time from
    /// `after` to it.
    pub fn first_frame_of(
        &self,
        stream: &str,
        after: Instant,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        self.wait_for(timeout, |s| {
            let sids: Vec<u32> = s
                .inits
                .iter()
                .filter(|(_, _, st)| st.as_deref() == Some(stream))
                .map(|(_, sid, _)| *sid)
                .collect();
            s.frames
                .iter()
                .find(|f| f.at >= after && sids.contains(&f.header.sid))
                .map(|f| f.at.saturating_duration_since(after))
        })
    }

    /// Frames received at or after `from`.
    pub fn frames_since(&self, from: Instant) -> Vec<FrameEvent> {
        lock(&self.seen)
            .frames
            .iter()
            .filter(|f| f.at >= from)
            .copied()
            .collect()
    }

    /// Polls `found` every millisecond until it answers, the connection ends, or `timeout`.
    fn wait_for<T>(
        &self,
        timeout: Duration,
        mut found: impl FnMut(&Seen) -> Option<T>,
    ) -> anyhow::Result<T> {
        let end = Instant::now() + timeout;
        loop {
            {
                let s = lock(&self.seen);
                if let Some(v) = found(&s) {
                    return Ok(v);
                }
                if let Some(why) = &s.ended {
                    bail!("the live connection ended: {why}");
                }
            }
            if Instant::now() >= end {
                bail!("no such frame within {} s", timeout.as_secs_f64());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for LiveClient {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(m: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Connects, says hello, and records messages until told to stop; returns why it ended.
async fn read_loop(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
    hello: &'static str,
    seen: Arc<Mutex<Seen>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> String {
    let mut ws = match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => ws,
        Err(e) => return format!("cannot connect: {e}"),
    };
    if let Err(e) = ws.send(Message::text(hello)).await {
        return format!("cannot send hello: {e}");
    }
    loop {
        tokio::select! {
            _ = &mut stop => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                return "closed by the bench".to_string();
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    let (at, at_wall_us) = (Instant::now(), wall_us());
                    // An MSE init segment is not a frame.
                    if let Some(header) = FrameHeader::parse(&b)
                        && header.flags & FLAG_INIT == 0
                    {
                        lock(&seen).frames.push(FrameEvent { at, at_wall_us, header });
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    let at = Instant::now();
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str())
                        && v["type"] == "init"
                    {
                        let sid = v["sid"].as_u64().unwrap_or(0) as u32;
                        let stream = v["stream"].as_str().map(str::to_string);
                        lock(&seen).inits.push((at, sid, stream));
                    }
                }
                Some(Ok(Message::Close(_))) | None => return "closed by the server".to_string(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return format!("socket error: {e}"),
            }
        }
    }
}
