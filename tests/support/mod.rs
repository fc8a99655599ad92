//! Test harness for ingest: a real RTSP server (GStreamer's gst-rtsp-server, driven by
//! `rtsp_server.py`), tiny fake servers for the error cases, and a sink the test can watch
//! while a supervisor owns it.
//!
//! The real server is required, not optional: if GStreamer or its Python bindings are
//! missing, [`RtspServer::start`] panics with the packages to install (CI installs them).
#![allow(dead_code)] // Each test binary uses a different part of the harness.

use edgecam::frame::{FrameInfo, FrameMeta, FrameSink, SinkError};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The interpreter with Debian's GObject bindings (a pyenv `python3` on PATH lacks them).
const PYTHON: &str = "/usr/bin/python3";

/// How long the server may take to print `READY` (encoding a clip included).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What the test server serves.
#[derive(Debug, Clone)]
pub struct ServerOpts {
    /// Mounts `/cam0` .. `/cam{n-1}`.
    pub mounts: u32,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Encoder bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Keyframe interval in frames (0 = two seconds).
    pub gop: u32,
    /// Require these credentials (digest auth) on every mount.
    pub auth: Option<(String, String)>,
    /// Fixed port; `None` lets the server pick a free one.
    pub port: Option<u16>,
    /// 0: encode live. N: encode N seconds once (cached), then loop the clip; nearly free
    /// while serving, which is what 1080p benchmarks on a small box need.
    pub clip_seconds: u32,
    /// Also serve `/audio`: audio only, no video.
    pub audio_mount: bool,
}

impl Default for ServerOpts {
    /// Light content for tests on a 2-core box: 640x360 at 25 fps, 800 kbit/s, 1 s GOP.
    fn default() -> Self {
        ServerOpts {
            mounts: 1,
            width: 640,
            height: 360,
            fps: 25,
            bitrate_kbps: 800,
            gop: 25,
            auth: None,
            port: None,
            clip_seconds: 0,
            audio_mount: false,
        }
    }
}

/// A running `rtsp_server.py`. Dropping it kills the process.
pub struct RtspServer {
    /// The options it was started with (restart reuses them, with the same port).
    opts: ServerOpts,
    /// The port it listens on, on 127.0.0.1.
    port: u16,
    /// The Python process.
    child: Child,
    /// Its stdin, for `pause` / `resume` / `quit`.
    stdin: ChildStdin,
}

impl RtspServer {
    /// Starts a server and waits until it listens. Panics with a clear message if it cannot.
    pub fn start(opts: ServerOpts) -> RtspServer {
        // A restart on a fixed port can race the old socket's teardown; retry briefly.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match Self::try_start(&opts) {
                Ok(s) => return s,
                Err(e) if Instant::now() < deadline && opts.port.is_some() => {
                    eprintln!("rtsp test server: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!(
                    "cannot start the GStreamer RTSP test server: {e}. It needs {PYTHON} with \
                     Debian's packages gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi \
                     gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
                     gstreamer1.0-plugins-ugly"
                ),
            }
        }
    }

    fn try_start(opts: &ServerOpts) -> Result<RtspServer, String> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/rtsp_server.py");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script)
            .args(["--mounts", &opts.mounts.to_string()])
            .args(["--width", &opts.width.to_string()])
            .args(["--height", &opts.height.to_string()])
            .args(["--fps", &opts.fps.to_string()])
            .args(["--bitrate", &opts.bitrate_kbps.to_string()])
            .args(["--gop", &opts.gop.to_string()])
            .args(["--port", &opts.port.unwrap_or(0).to_string()])
            .args(["--clip-seconds", &opts.clip_seconds.to_string()]);
        if opts.audio_mount {
            cmd.arg("--audio-mount");
        }
        if let Some((user, pass)) = &opts.auth {
            cmd.args(["--user", user, "--password", pass]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {PYTHON}: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, rx) = mpsc::channel();
        // Reads READY, then keeps draining so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(p) = line.strip_prefix("READY port=") {
                        let port = p
                            .trim()
                            .parse()
                            .map_err(|e| format!("bad READY line: {e}"))?;
                        return Ok(RtspServer {
                            opts: opts.clone(),
                            port,
                            child,
                            stdin,
                        });
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(format!("no READY line from the server (exit: {status})"));
                }
            }
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rtsp://127.0.0.1:PORT/camN`.
    pub fn url(&self, mount: u32) -> String {
        format!("rtsp://127.0.0.1:{}/cam{mount}", self.port)
    }

    /// `rtsp://user:pass@127.0.0.1:PORT/camN`.
    pub fn url_with_creds(&self, mount: u32, user: &str, pass: &str) -> String {
        format!("rtsp://{user}:{pass}@127.0.0.1:{}/cam{mount}", self.port)
    }

    /// SIGKILL: the kernel closes its sockets, so sessions end at once (no TEARDOWN).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the server (if alive) and starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let mut opts = self.opts.clone();
        opts.port = Some(self.port);
        *self = RtspServer::start(opts);
    }

    /// SIGSTOP: the process freezes with its sockets open, like a camera whose network
    /// vanished (no FIN, no RST); clients see a stall, not a closed session.
    pub fn freeze(&mut self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`RtspServer::freeze`].
    pub fn thaw(&mut self) {
        self.signal("-CONT");
    }

    fn signal(&mut self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill {sig}: {e}"));
        assert!(status.success(), "kill {sig} failed: {status}");
    }

    /// Stops producing frames on every mount; sessions stay open.
    pub fn pause(&mut self) {
        self.command("pause");
    }

    /// Produces frames again after [`RtspServer::pause`].
    pub fn resume(&mut self) {
        self.command("resume");
    }

    fn command(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("rtsp test server is gone ({cmd}): {e}"));
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port with nothing listening (bound, then released).
pub fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A server that accepts connections and never says anything. Returns its port; the
/// listener lives until the test process ends.
pub fn silent_server() -> u16 {
    fake_server(|mut s| {
        // Read and discard whatever the client sends, never answer, keep the socket open.
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    })
}

/// A server that answers every connection with something that is not RTSP.
pub fn garbage_server() -> u16 {
    fake_server(|mut s| {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ =
            s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n\x00\xff\xfe garbage \x01\x02\r\n\r\n");
        let _ = s.flush();
        // Keep it open a little so the client reads the garbage rather than a reset.
        std::thread::sleep(Duration::from_secs(2));
    })
}

fn fake_server(handle: fn(TcpStream)) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let port = l.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || handle(s));
        }
    });
    port
}

/// What the test keeps of one frame: its metadata and the NAL unit types in its payload.
#[derive(Debug, Clone)]
pub struct SeenFrame {
    /// Metadata as a ring reader would see it.
    pub meta: FrameMeta,
    /// NAL unit types (low 5 bits of each NAL header), in order.
    pub nal_types: Vec<u8>,
    /// True if the payload starts with an Annex B start code.
    pub annex_b: bool,
}

/// A sink that a supervisor can own while the test reads what went into it.
#[derive(Debug, Clone, Default)]
pub struct SharedSink {
    /// The frames stored so far.
    pub frames: Arc<Mutex<Vec<SeenFrame>>>,
}

impl SharedSink {
    /// A copy of the frames stored so far.
    pub fn snapshot(&self) -> Vec<SeenFrame> {
        self.frames.lock().expect("sink lock").clone()
    }

    /// Number of frames stored so far.
    pub fn len(&self) -> usize {
        self.frames.lock().expect("sink lock").len()
    }
}

impl FrameSink for SharedSink {
    fn push_frame(&mut self, info: &FrameInfo, parts: &[&[u8]]) -> Result<u64, SinkError> {
        let payload = parts.concat();
        let mut frames = self.frames.lock().expect("sink lock");
        let seq = frames.len() as u64;
        frames.push(SeenFrame {
            meta: FrameMeta {
                seq,
                len: payload.len(),
                info: *info,
            },
            nal_types: nal_types(&payload),
            annex_b: payload.starts_with(&[0, 0, 0, 1]) || payload.starts_with(&[0, 0, 1]),
        });
        Ok(seq)
    }
}

/// NAL unit types of an Annex B access unit.
pub fn nal_types(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(h) = data.get(i + 3) {
                out.push(h & 0x1f);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every state change of one stream, with the (tokio) time it was seen.
#[derive(Debug, Clone, Default)]
pub struct StateLog {
    /// The transitions so far.
    pub events: Arc<Mutex<Vec<(edgecam::ingest::stats::StreamState, tokio::time::Instant)>>>,
}

impl StateLog {
    /// Starts recording the stream's state changes (call right after spawning the supervisor).
    pub fn record(stats: &edgecam::ingest::stats::StreamStats) -> StateLog {
        let log = StateLog::default();
        let mut rx = stats.subscribe_state();
        let events = Arc::clone(&log.events);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(s) => events
                        .lock()
                        .expect("log lock")
                        .push((s, tokio::time::Instant::now())),
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        });
        log
    }

    /// The states seen so far, in order.
    pub fn states(&self) -> Vec<edgecam::ingest::stats::StreamState> {
        self.events
            .lock()
            .expect("log lock")
            .iter()
            .map(|e| e.0)
            .collect()
    }

    /// Index of the first occurrence of `seq` as a contiguous run in the log at or after `from`.
    pub fn find(&self, from: usize, seq: &[edgecam::ingest::stats::StreamState]) -> Option<usize> {
        let s = self.states();
        (from..s.len().saturating_sub(seq.len() - 1)).find(|&i| s[i..].starts_with(seq))
    }
}
