//! Test support shared by edgecam's integration tests and `edgecam-bench`: the GStreamer RTSP
//! test server (`tests/support/rtsp_server.py`, gst-rtsp-server driven by Python) as a child
//! process, serving `/cam0` .. `/cam{N-1}` on 127.0.0.1.
//!
//! One launcher for both: [`ServerOpts`] holds every option of the script, with defaults that
//! suit the tests (light content, live encoding, stderr inherited); the bench sets the options
//! only it needs (a cached clip, an H.264 profile, periodic drops, a log file) with struct
//! update syntax. [`RtspServer::launch`] returns an error, for the bench;
//! [`RtspServer::start`] panics with the packages to install, for the tests.
//!
//! [`impair`] is an impairing relay to put between that server and the daemon: delay,
//! jitter, loss, bandwidth caps, stalls, resets and outages, over TCP and UDP.

pub mod impair;
pub mod mosquitto;

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The interpreter with Debian's GObject bindings (a pyenv `python3` on PATH lacks them).
pub const PYTHON: &str = "/usr/bin/python3";

/// The server script, in this source tree.
pub const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/support/rtsp_server.py"
);

/// What the server needs, for error messages.
const PACKAGES: &str = "gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi \
                        gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
                        gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly";

/// How often the launcher looks for the `READY` line (and calls the caller's poll hook).
const POLL: Duration = Duration::from_millis(50);

/// Lines of the server's stdout kept for error messages.
const KEEP_LINES: usize = 50;

/// What the test server serves, and how it runs.
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
    /// Keyframe interval in frames (0 = two seconds).
    pub gop: u32,
    /// H.264 profile: `baseline` (x264 ultrafast, cheapest to encode: the tests), `main` or
    /// `high` (x264 veryfast, what IP cameras send: the benchmarks), or `high-4:4:4` (4:4:4
    /// chroma, which openh264 cannot decode: the undecodable-stream tests).
    pub profile: String,
    /// B-frames between reference frames (0 = none, x264's zerolatency tune). More than 0
    /// needs `main` or `high` and live encoding: frames then arrive in decode order, with
    /// presentation timestamps out of order, as relays of libx264 files send them.
    pub bframes: u32,
    /// Require these credentials on every mount (digest auth, or Basic with `basic_auth`).
    pub auth: Option<(String, String)>,
    /// With `auth`: HTTP Basic instead of Digest.
    pub basic_auth: bool,
    /// Refuse RTP over the RTSP TCP connection (461 to an interleaved `SETUP`), like VLC's
    /// RTSP server: only UDP works.
    pub udp_only: bool,
    /// Fixed port; `None` lets the server pick a free one.
    pub port: Option<u16>,
    /// 0: encode live. N: encode N seconds once (cached in `cache_dir`), then loop the clip;
    /// nearly free while serving, which is what 1080p benchmarks on a small box need.
    pub clip_seconds: u32,
    /// Also serve `/audio`: audio only, no video.
    pub audio_mount: bool,
    /// Also serve `/jpeg` (RTP/JPEG video only, an older MJPEG camera) and `/both` (RTP/JPEG
    /// listed first, then H.264): the JPEG ingest path and the choice of H.264 over it.
    pub jpeg_mounts: bool,
    /// Also serve `/h265`: H.265 Main from x265enc, like most current IP cameras' main stream.
    pub h265_mount: bool,
    /// Also serve the camera zoo: `/av` (audio listed first, then H.264), `/va` (H.264, then
    /// audio), `/sdp-params` (SPS/PPS only in the SDP) and `/resize` (the picture halves in
    /// size `resize_after_s` into each session).
    pub zoo_mounts: bool,
    /// With `zoo_mounts`: seconds into a `/resize` session before the size halves.
    pub resize_after_s: u32,
    /// Close every client's session every this many seconds (0 = never): camera outages.
    pub drop_every_s: u32,
    /// Where encoded clips are cached; `None` is the script's default (under the system's
    /// temporary directory).
    pub cache_dir: Option<PathBuf>,
    /// Write the server's stderr to this file; `None` passes it through to ours.
    pub log: Option<PathBuf>,
    /// How long the server may take to print `READY`: encoding a clip the first time takes a
    /// while on a small, busy machine.
    pub ready_timeout: Duration,
}

impl Default for ServerOpts {
    /// Light content for tests on a 2-core box: one mount, 640x360 at 25 fps, 800 kbit/s,
    /// baseline profile, 1 s GOP, encoded live.
    fn default() -> Self {
        ServerOpts {
            mounts: 1,
            width: 640,
            height: 360,
            fps: 25,
            bitrate_kbps: 800,
            gop: 25,
            profile: "baseline".to_string(),
            bframes: 0,
            auth: None,
            basic_auth: false,
            udp_only: false,
            port: None,
            clip_seconds: 0,
            audio_mount: false,
            jpeg_mounts: false,
            h265_mount: false,
            zoo_mounts: false,
            resize_after_s: 3,
            drop_every_s: 0,
            cache_dir: None,
            log: None,
            ready_timeout: Duration::from_secs(120),
        }
    }
}

impl ServerOpts {
    /// The keyframe interval the server uses, in frames: `gop`, or two seconds' worth when 0.
    pub fn gop_frames(&self) -> u32 {
        if self.gop == 0 {
            2 * self.fps
        } else {
            self.gop
        }
    }

    /// The script's command line.
    fn command(&self) -> Command {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(SCRIPT)
            .args(["--mounts", &self.mounts.to_string()])
            .args(["--width", &self.width.to_string()])
            .args(["--height", &self.height.to_string()])
            .args(["--fps", &self.fps.to_string()])
            .args(["--bitrate", &self.bitrate_kbps.to_string()])
            .args(["--gop", &self.gop.to_string()])
            .args(["--profile", &self.profile])
            .args(["--port", &self.port.unwrap_or(0).to_string()])
            .args(["--clip-seconds", &self.clip_seconds.to_string()])
            .args(["--drop-every", &self.drop_every_s.to_string()])
            .args(["--bframes", &self.bframes.to_string()]);
        if self.audio_mount {
            cmd.arg("--audio-mount");
        }
        if self.jpeg_mounts {
            cmd.arg("--jpeg-mounts");
        }
        if self.h265_mount {
            cmd.arg("--h265-mount");
        }
        if self.zoo_mounts {
            cmd.arg("--zoo-mounts")
                .args(["--resize-after", &self.resize_after_s.to_string()]);
        }
        if self.udp_only {
            cmd.arg("--udp-only");
        }
        if self.basic_auth {
            cmd.args(["--auth", "basic"]);
        }
        if let Some((user, pass)) = &self.auth {
            cmd.args(["--user", user, "--password", pass]);
        }
        if let Some(dir) = &self.cache_dir {
            cmd.arg("--cache-dir").arg(dir);
        }
        cmd
    }
}

/// Why the server could not be started or driven.
#[derive(Debug, Clone)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// A running `rtsp_server.py`. Dropping it kills the process.
pub struct RtspServer {
    /// The options it was started with (restart reuses them, with the same port).
    opts: ServerOpts,
    /// The port it listens on, on 127.0.0.1.
    port: u16,
    /// The Python process.
    child: Child,
    /// Its stdin, for `pause` / `resume` / `quit`; closing it makes the server exit, so it
    /// stays open while the server is in use.
    stdin: ChildStdin,
}

impl RtspServer {
    /// Starts a server and waits until it listens. Panics with a clear message if it cannot.
    /// On a fixed port it retries for a while: a restart can race the old socket's teardown.
    pub fn start(opts: ServerOpts) -> RtspServer {
        let deadline = Instant::now() + opts.ready_timeout;
        loop {
            match Self::launch(&opts) {
                Ok(s) => return s,
                Err(e) if Instant::now() < deadline && opts.port.is_some() => {
                    eprintln!("rtsp test server: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Starts a server and waits until it listens.
    pub fn launch(opts: &ServerOpts) -> Result<RtspServer, Error> {
        Self::launch_with(opts, || Ok::<(), Error>(()))
    }

    /// [`RtspServer::launch`], calling `poll` every 50 ms while it waits: an error from `poll`
    /// (the caller was interrupted, say) kills the server and is returned.
    pub fn launch_with<E: From<Error>>(
        opts: &ServerOpts,
        mut poll: impl FnMut() -> Result<(), E>,
    ) -> Result<RtspServer, E> {
        let fail = |why: String| {
            Error(format!(
                "cannot start the GStreamer RTSP test server: {why}. It needs {PYTHON} with \
                 Debian's packages {PACKAGES}"
            ))
        };
        let mut cmd = opts.command();
        let stderr = match &opts.log {
            Some(path) => Stdio::from(
                File::create(path)
                    .map_err(|e| fail(format!("cannot create {}: {e}", path.display())))?,
            ),
            None => Stdio::inherit(),
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| fail(format!("cannot run {PYTHON}: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail("no stdin or stdout pipe".into()).into());
        };
        // Keeps draining stdout after READY, so the server never blocks on a full pipe.
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut v = sink.lock().unwrap_or_else(|p| p.into_inner());
                if v.len() == KEEP_LINES {
                    v.pop_front();
                }
                v.push_back(line);
            }
        });
        let mut server = RtspServer {
            opts: opts.clone(),
            port: 0,
            child,
            stdin,
        };
        let deadline = Instant::now() + opts.ready_timeout;
        loop {
            let seen: Vec<String> = lines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect();
            if let Some(p) = seen.iter().find_map(|l| l.strip_prefix("READY port=")) {
                server.port = p
                    .trim()
                    .parse()
                    .map_err(|e| fail(format!("bad READY line {p:?}: {e}")))?;
                return Ok(server);
            }
            let output = || output_tail(&seen, opts.log.as_deref());
            if let Err(e) = server.ensure_running() {
                return Err(fail(format!("{e}{}", output())).into());
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "no READY line within {} s{}",
                    opts.ready_timeout.as_secs(),
                    output()
                ))
                .into());
            }
            poll()?;
            std::thread::sleep(POLL);
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

    /// The process id, to measure the server's own CPU or to signal it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails, with its exit status, if the server has exited.
    pub fn ensure_running(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error(format!("the RTSP test server exited ({status})"))),
            Err(e) => Err(Error(format!("cannot check on the RTSP test server: {e}"))),
        }
    }

    /// SIGKILL: the kernel closes its sockets, so sessions end at once (no TEARDOWN).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the server (if alive) and starts it again on the same port. Panics if it cannot.
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

/// The server's last stdout lines and, when stderr went to a file, that file's last lines.
fn output_tail(stdout: &[String], log: Option<&Path>) -> String {
    let mut lines: Vec<String> = stdout[stdout.len().saturating_sub(5)..].to_vec();
    if let Some(text) = log.and_then(|p| std::fs::read_to_string(p).ok()) {
        let err: Vec<&str> = text.lines().collect();
        lines.extend(
            err[err.len().saturating_sub(20)..]
                .iter()
                .map(|l| l.to_string()),
        );
    }
    if lines.is_empty() {
        return String::new();
    }
    let quoted: String = lines.iter().map(|l| format!("\n  | {l}")).collect();
    format!("; its output:{quoted}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_names_every_option_the_script_takes() {
        let opts = ServerOpts {
            auth: Some(("u".into(), "p".into())),
            basic_auth: true,
            udp_only: true,
            audio_mount: true,
            cache_dir: Some("/tmp/clips".into()),
            ..ServerOpts::default()
        };
        let cmd = opts.command();
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let script = std::fs::read_to_string(SCRIPT).expect("the script is in the tree");
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            assert!(
                script.contains(&format!("\"{flag}\"")),
                "rtsp_server.py takes no {flag}"
            );
        }
        let joined = args.join(" ");
        assert!(joined.contains("--profile baseline --port 0"), "{joined}");
        assert!(joined.ends_with("--user u --password p --cache-dir /tmp/clips"));
    }

    #[test]
    fn a_launch_that_cannot_run_python_names_the_packages() {
        // A missing log directory fails before anything is spawned.
        let opts = ServerOpts {
            log: Some("/nonexistent-dir/server.log".into()),
            ..ServerOpts::default()
        };
        let e = RtspServer::launch(&opts)
            .err()
            .expect("cannot create the log");
        assert!(e.to_string().contains("gir1.2-gst-rtsp-server-1.0"), "{e}");
    }

    #[test]
    fn output_tail_quotes_stdout_and_the_log() {
        let dir = std::env::temp_dir().join(format!("edgecam-testkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("server.log");
        std::fs::write(&log, "gst: warning\nTraceback: boom\n").unwrap();
        let t = output_tail(&["ERROR could not bind".to_string()], Some(&log));
        assert_eq!(
            t,
            "; its output:\n  | ERROR could not bind\n  | gst: warning\n  | Traceback: boom"
        );
        assert_eq!(output_tail(&[], None), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
