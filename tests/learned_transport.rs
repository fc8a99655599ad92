//! The RTSP transport learned for a camera survives a restart of the real binary: a camera
//! that refuses RTSP over TCP (461, as VLC's server answers) costs the fallback once, and the
//! next start of the box goes to UDP at once (`<state_dir>/rtsp-transports.json`).

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{RtspServer, ServerOpts};

/// How long the daemon may take to play the camera.
const DEADLINE: Duration = Duration::from_secs(30);

/// One run of `edgecam run --config` at `info`, with its log lines on a channel; killed when
/// dropped.
struct Run {
    /// The process.
    child: Child,
    /// Every log line (stderr) as it comes.
    lines: mpsc::Receiver<String>,
}

impl Run {
    fn start(config: &Path) -> Run {
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
        Run { child, lines }
    }

    /// The lines up to and including the first that contains `want`.
    fn until(&self, want: &str) -> Vec<String> {
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

    /// SIGTERM, as systemd stops the service, and the exit.
    fn stop(mut self) {
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

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_camera_that_refuses_tcp_is_played_over_udp_at_once_after_a_restart() {
    let camera = RtspServer::start(ServerOpts {
        udp_only: true,
        ..ServerOpts::default()
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[web]\nlisten = \"127.0.0.1:0\"\nhttps = false\n\n[paths]\nstate_dir = \"{}\"\n\n\
             [[streams]]\nid = \"vlc\"\nkind = \"rtsp\"\nurl = \"{}\"\n",
            state.display(),
            camera.url(0)
        ),
    )
    .expect("config written");
    let file = state.join(edgecam::ingest::learned::FILE);

    // First start: TCP is refused, UDP plays, and that is remembered.
    let first = Run::start(&config);
    let log = first.until("rtsp transport remembered for this camera");
    assert!(
        log.iter()
            .any(|l| l.contains("camera refused the RTSP transport")),
        "the first start falls back from TCP"
    );
    first.stop();
    let saved = std::fs::read_to_string(&file).expect("the learned transport is saved");
    let v: serde_json::Value = serde_json::from_str(&saved).expect("JSON");
    let cameras = v["cameras"].as_object().expect("a cameras object");
    assert_eq!(cameras.len(), 1, "{saved}");
    let (url, transport) = cameras.iter().next().expect("one camera");
    assert_eq!(transport, "udp", "{saved}");
    assert!(
        url.starts_with("rtsp://127.0.0.1:") && !url.contains('@'),
        "the key is the camera's URL without credentials: {url}"
    );

    // Second start: UDP first, no refusal on the way.
    let second = Run::start(&config);
    let log = second.until("rtsp session playing");
    assert!(
        log.iter()
            .any(|l| l.contains("learned rtsp transports loaded")),
        "the file is read at start"
    );
    assert!(
        !log.iter().any(|l| l.contains("refused the RTSP transport")),
        "the second start goes to UDP at once:\n{}",
        log.join("\n")
    );
    assert!(
        log.last().is_some_and(|l| l.contains("transport=\"udp\"")),
        "{:?}",
        log.last()
    );
    second.stop();
}
