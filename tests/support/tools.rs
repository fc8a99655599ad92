//! Third-party programs the tests run (VLC, ffmpeg, setpriv), found on PATH or failed for
//! with the Debian package to install, and readiness probes for the servers among them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `tool` on PATH, or a failure naming the Debian `package` that provides it.
pub fn require(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{tool}` is not installed: install the Debian package {package} (.ci/run does)")
        })
}

/// A loopback port that was free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A command that runs `program` (VLC) with `home` as its HOME. Debian's VLC refuses to run
/// as root, so as root it runs as `nobody` (`setpriv`, util-linux), which then owns `home`.
pub fn vlc_command(program: &Path, home: &Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let setpriv = require("setpriv", "util-linux");
        std::os::unix::fs::chown(home, Some(65534), Some(65534)).expect("chown the VLC home");
        let mut c = Command::new(setpriv);
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.env("HOME", home);
    cmd
}

/// Waits until the RTSP server on loopback `port` answers `DESCRIBE` of `path` with 200,
/// or panics after `deadline`. A server that listens is not yet one that serves: VLC's
/// answers 500 until its media is loaded.
pub fn wait_rtsp_ready(port: u16, path: &str, deadline: Duration) {
    let start = Instant::now();
    loop {
        let last = match describe_status(port, path) {
            Ok(line) if line.starts_with("RTSP/1.0 200") => return,
            Ok(line) => line,
            Err(e) => e.to_string(),
        };
        assert!(
            start.elapsed() < deadline,
            "the RTSP server on port {port} never served {path}: {last}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status line of one `DESCRIBE` of `rtsp://127.0.0.1:port/path`.
fn describe_status(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "DESCRIBE rtsp://127.0.0.1:{port}/{path} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"
    )?;
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf)?;
    let text = String::from_utf8_lossy(&buf[..n]);
    Ok(text.lines().next().unwrap_or("").to_string())
}
