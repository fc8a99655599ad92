//! Test harness for ingest: a real RTSP server (GStreamer's gst-rtsp-server, driven by
//! `rtsp_server.py` and started by `edgecam-testkit`), tiny fake servers for the error cases,
//! and a sink the test can watch while a supervisor owns it.
//!
//! The real server is required, not optional: if GStreamer or its Python bindings are
//! missing, [`RtspServer::start`] panics with the packages to install (CI installs them).
#![allow(dead_code)] // Each test binary uses a different part of the harness.

pub mod daemon_run;
pub mod onvif;
pub mod tools;

use edgecam::frame::{FrameInfo, FrameMeta, FrameSink, SinkError};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The real server: one launcher for the tests and `edgecam-bench` (the `edgecam-testkit`
/// crate in `testkit/`).
#[allow(unused_imports)]
pub use edgecam_testkit::{RtspServer, ServerOpts};

/// [`RtspServer::start`] from async code: it blocks while GStreamer starts, so it runs on
/// tokio's blocking pool.
pub async fn start_rtsp(opts: ServerOpts) -> RtspServer {
    tokio::task::spawn_blocking(move || RtspServer::start(opts))
        .await
        .expect("the RTSP server start")
}

/// `ffprobe -v error -select_streams v:0 <args> <path>`: its output, after asserting that it
/// ran and complained about nothing.
pub fn ffprobe(path: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("ffprobe not runnable ({e}): install the Debian package `ffmpeg`")
        });
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe failed: {errors}");
    assert!(errors.trim().is_empty(), "ffprobe complained: {errors}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One video packet as `ffprobe -show_packets` reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Packet {
    /// Presentation time, s.
    pub pts: f64,
    /// Decode time, s.
    pub dts: f64,
    /// Duration, s (0 when ffprobe gives none).
    pub duration: f64,
    /// A keyframe.
    pub key: bool,
}

/// What [`probe_video`] finds in a file's first video stream.
#[derive(Debug, Clone)]
pub struct VideoProbe {
    /// `codec_name` (`h264`).
    pub codec: String,
    /// Picture size the stream's header states.
    pub size: (u64, u64),
    /// Every packet, in file order.
    pub packets: Vec<Packet>,
}

impl VideoProbe {
    /// From the earliest presentation time to the end of the latest packet, s.
    pub fn duration(&self) -> f64 {
        let first = self.packets.iter().map(|p| p.pts).fold(f64::MAX, f64::min);
        let end = self
            .packets
            .iter()
            .map(|p| p.pts + p.duration)
            .fold(f64::MIN, f64::max);
        end - first
    }

    /// Asserts what every clip must be: `codec`, more than `min` packets, a keyframe first,
    /// decode times that increase.
    pub fn assert_playable(&self, codec: &str, min: usize, what: &str) {
        assert_eq!(self.codec, codec, "{what}");
        assert!(
            self.packets.len() > min,
            "{what}: {} packets",
            self.packets.len()
        );
        assert!(
            self.packets[0].key,
            "{what}: the first packet is a keyframe"
        );
        for w in self.packets.windows(2) {
            assert!(
                w[1].dts > w[0].dts,
                "{what}: decode times increase: {:?} then {:?}",
                w[0],
                w[1]
            );
        }
    }
}

/// The first video stream of `path` through [`ffprobe`] (`-show_streams -show_packets`).
pub fn probe_video(path: &std::path::Path) -> VideoProbe {
    let out = ffprobe(path, &["-show_streams", "-show_packets", "-of", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ffprobe JSON");
    let s = &v["streams"][0];
    let num = |p: &serde_json::Value, k: &str| p[k].as_str().and_then(|s| s.parse::<f64>().ok());
    let packets = v["packets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| Packet {
            pts: num(p, "pts_time").expect("a pts"),
            dts: num(p, "dts_time").expect("a dts"),
            duration: num(p, "duration_time").unwrap_or(0.0),
            key: p["flags"].as_str().unwrap_or("").starts_with('K'),
        })
        .collect();
    VideoProbe {
        codec: s["codec_name"].as_str().unwrap_or("").to_string(),
        size: (
            s["width"].as_u64().unwrap_or(0),
            s["height"].as_u64().unwrap_or(0),
        ),
        packets,
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
    /// True if the payload is framed as a whole JPEG image: SOI first, EOI last.
    pub jpeg: bool,
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
            jpeg: payload.starts_with(&[0xff, 0xd8]) && payload.ends_with(&[0xff, 0xd9]),
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
