//! The ONVIF test camera (`onvif_camera.py`, standard-library Python): device, media and
//! PullPoint events services on loopback, the WS-Security digest checked on a clock an hour
//! ahead of the machine's; motion events sent on command.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The camera script, in this source tree.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/onvif_camera.py");
/// The camera's ONVIF user.
pub const USER: &str = "admin";
/// Its password (a `:` in it, to be percent-encoded in URLs).
pub const PASSWORD: &str = "s3cret:pw";
/// Its clock runs this far ahead of the box's.
const SKEW_S: &str = "3600";

/// A running `onvif_camera.py`; killed on drop.
pub struct Camera {
    /// The process.
    child: Child,
    /// Where commands go.
    stdin: ChildStdin,
    /// Where answers come from.
    stdout: BufReader<ChildStdout>,
    /// Its HTTP port.
    pub port: u16,
}

impl Camera {
    /// A camera on `port` (0: any free one) that grants subscriptions `lifetime_s` seconds.
    pub fn start(port: u16, lifetime_s: u32) -> Camera {
        Self::start_with(port, lifetime_s, &[])
    }

    /// Like [`Camera::start`], answering HTTPS only with a self-signed certificate of its own
    /// (made by the `openssl` command), its service addresses `https://` ones.
    pub fn start_tls(port: u16, lifetime_s: u32) -> Camera {
        Self::start_with(port, lifetime_s, &["--tls"])
    }

    fn start_with(port: u16, lifetime_s: u32, extra: &[&str]) -> Camera {
        let mut child = Command::new("/usr/bin/python3")
            .args([
                SCRIPT,
                "--port",
                &port.to_string(),
                "--user",
                USER,
                "--password",
                PASSWORD,
            ])
            .args(["--skew-s", SKEW_S, "--lifetime-s", &lifetime_s.to_string()])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect(
                "/usr/bin/python3 runs the ONVIF test camera; install the Debian package python3",
            );
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the ONVIF test camera did not start: {line:?}"));
        Camera {
            child,
            stdin,
            stdout,
            port,
        }
    }

    fn command(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line
    }

    /// Sends a motion event (`IsMotion` = `on`) to every subscription.
    pub fn motion(&mut self, on: bool) {
        self.command(&format!("motion {on}"));
    }

    /// The camera's request counters: subscribe, renew, unsubscribe, pull, refused.
    pub fn stats(&mut self) -> HashMap<String, u64> {
        let line = self.command("stats");
        line.split_whitespace()
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
            .collect()
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
