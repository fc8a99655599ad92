//! The real `edgecam` binary as a test runs it (`edgecam run --config`, log at `info`):
//! its log lines echoed to the test's output and on a channel to wait for, stopped with
//! SIGTERM as systemd does, or killed with SIGKILL as a power cut does.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a wait for a log line or for the exit may take.
const DEADLINE: Duration = Duration::from_secs(40);

/// One run of `edgecam run --config` at `info`, with its log lines on a channel; killed when
/// dropped.
pub struct DaemonRun {
    /// The process.
    pub child: Child,
    /// Every log line (stderr) as it comes.
    lines: mpsc::Receiver<String>,
}

impl DaemonRun {
    /// Starts `edgecam run --config <config>`.
    pub fn start(config: &Path) -> DaemonRun {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgecam"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "edgecam=info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the edgecam binary starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                println!("daemon: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        DaemonRun { child, lines }
    }

    /// The lines up to and including the first that contains `want`.
    pub fn until(&self, want: &str) -> Vec<String> {
        let end = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(want);
                    seen.push(line);
                    if hit {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no log line with {want:?} within {DEADLINE:?}; saw:\n{}",
            seen.join("\n")
        );
    }

    /// `kill -9`: no chance to finish a write, flush or save an index.
    pub fn kill9(mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-KILL", &pid]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -KILL {pid}");
        let _ = self.child.wait();
    }

    /// SIGTERM, as systemd stops the service, and the exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "the daemon stops cleanly: {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the daemon did not stop within {DEADLINE:?} of SIGTERM");
    }
}

impl Drop for DaemonRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
