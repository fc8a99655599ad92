//! The RTSP test server (`tests/support/rtsp_server.py`, GStreamer's gst-rtsp-server) as a
//! child process, serving `/cam0` .. `/cam{N-1}` on 127.0.0.1.

use crate::child::{Guard, Lines, wait_until};
use anyhow::{Context, anyhow};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

/// The interpreter with Debian's GObject bindings (a pyenv `python3` on PATH lacks them).
const PYTHON: &str = "/usr/bin/python3";

/// The server script, in this source tree.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/rtsp_server.py");

/// How long the server may take to print `READY`: encoding the 1080p clip the first time
/// takes a while on a small, busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// What the server serves.
#[derive(Debug, Clone)]
pub struct ServerOpts {
    /// Mounts `/cam0` .. `/cam{n-1}`, one per stream.
    pub mounts: u32,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// x264 bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Seconds of clip encoded once and looped (live x264 at 8 x 1080p25 needs more cores
    /// than a small box has).
    pub clip_seconds: u32,
    /// H.264 profile of the clip (`baseline`, `main` or `high`).
    pub profile: String,
    /// Close every client's session every this many seconds (0 = never): the soak's camera
    /// outages.
    pub drop_every_s: u32,
}

/// A running server; dropping it kills the process.
pub struct RtspServer {
    /// The process.
    guard: Guard,
    /// Its stdin: closing it makes the server exit, so it is kept open while the bench runs.
    _stdin: ChildStdin,
    /// The port it listens on, on 127.0.0.1.
    port: u16,
}

impl RtspServer {
    /// Starts the server (encoding the clip into `cache_dir` if it is not there yet) and waits
    /// until it listens. `log` receives its stderr.
    pub fn start(opts: &ServerOpts, cache_dir: &Path, log: &Path) -> anyhow::Result<RtspServer> {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(SCRIPT)
            .args(["--mounts", &opts.mounts.to_string()])
            .args(["--width", &opts.width.to_string()])
            .args(["--height", &opts.height.to_string()])
            .args(["--fps", &opts.fps.to_string()])
            .args(["--bitrate", &opts.bitrate_kbps.to_string()])
            .args(["--clip-seconds", &opts.clip_seconds.to_string()])
            .args(["--profile", &opts.profile])
            .args(["--drop-every", &opts.drop_every_s.to_string()])
            .arg("--cache-dir")
            .arg(cache_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = Guard::spawn(
            "the RTSP test server",
            &mut cmd,
            &format!("{PYTHON} not found; apt-get install python3-gi gir1.2-gst-rtsp-server-1.0"),
        )?;
        let child = guard.child_mut();
        let stdin = child.stdin.take().context("no stdin pipe")?;
        let stdout = Lines::capture(child.stdout.take().context("no stdout pipe")?, None)?;
        let stderr = Lines::capture(
            child.stderr.take().context("no stderr pipe")?,
            Some(log.to_path_buf()),
        )?;
        let ready_port = || {
            stdout
                .snapshot()
                .iter()
                .find_map(|(_, l)| l.strip_prefix("READY port=")?.trim().parse::<u16>().ok())
        };
        wait_until(
            "the RTSP test server to listen",
            READY_TIMEOUT,
            || {
                guard.ensure_running().map_err(|e| {
                    anyhow!(
                        "{e}. It needs {PYTHON} with Debian's gstreamer1.0-rtsp \
                         gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base \
                         gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
                         gstreamer1.0-plugins-ugly. Its output:\n{}{}",
                        stdout.tail(5),
                        stderr.tail(20)
                    )
                })
            },
            || ready_port().is_some(),
        )?;
        let port = ready_port().context("READY line vanished")?;
        Ok(RtspServer {
            guard,
            _stdin: stdin,
            port,
        })
    }

    /// The URL of mount `i`.
    pub fn url(&self, i: u32) -> String {
        format!("rtsp://127.0.0.1:{}/cam{i}", self.port)
    }

    /// The process id, to measure the server's own CPU.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Fails if the server has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.guard.ensure_running()
    }
}
