//! Peer (b): the GStreamer decode-all MJPEG switcher (`bench/mjpeg_switcher.py`) as a child
//! process, and an HTTP multipart client that records which stream each JPEG came from (the
//! switcher's `X-Stream` part header) and when it arrived.

use crate::child::{self, Guard, Lines, wait_until};
use crate::e2e::{GIVE_UP, keep, sample_window};
use crate::e2e_report::{GstSwitcher, Pcts};
use crate::http;
use crate::stats::Usage;
use anyhow::{Context, anyhow, bail};
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The interpreter with Debian's GObject bindings.
const PYTHON: &str = "/usr/bin/python3";
/// The switcher script, in this source tree.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/mjpeg_switcher.py");
/// How long a probe may wait for its picture.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What to measure.
pub struct SwitcherPlan<'a> {
    /// One RTSP URL per stream.
    pub urls: &'a [String],
    /// Seconds after the first picture before the window.
    pub warmup: u64,
    /// Window length, seconds.
    pub seconds: u64,
    /// Switches and fresh connections measured.
    pub probes: u32,
    /// Clock ticks per second.
    pub tck: u64,
    /// Where its stderr goes.
    pub log: &'a Path,
}

/// The running switcher; dropping it kills the process.
struct Switcher {
    /// The process.
    guard: Guard,
    /// Closing it makes the switcher exit; kept open.
    _stdin: ChildStdin,
    /// Its HTTP address.
    addr: SocketAddr,
    /// Its stderr.
    errors: Lines,
}

impl Switcher {
    fn start(urls: &[String], log: &Path) -> anyhow::Result<Switcher> {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(SCRIPT)
            .args(urls)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = Guard::spawn(
            "the GStreamer MJPEG switcher",
            &mut cmd,
            "apt-get install python3-gi gstreamer1.0-libav gstreamer1.0-plugins-good",
        )?;
        let child = guard.child_mut();
        let stdin = child.stdin.take().context("no stdin pipe")?;
        let out = Lines::capture(child.stdout.take().context("no stdout pipe")?, None)?;
        let errors = Lines::capture(
            child.stderr.take().context("no stderr pipe")?,
            Some(log.to_path_buf()),
        )?;
        let port = || {
            out.snapshot()
                .iter()
                .find_map(|(_, l)| l.strip_prefix("READY port=")?.trim().parse::<u16>().ok())
        };
        wait_until(
            "the MJPEG switcher to listen",
            Duration::from_secs(30),
            || {
                guard
                    .ensure_running()
                    .map_err(|e| anyhow!("{e}; its errors:\n{}", errors.tail(10)))
            },
            || port().is_some(),
        )?;
        let port = port().context("READY line vanished")?;
        Ok(Switcher {
            guard,
            _stdin: stdin,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            errors,
        })
    }

    fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.guard
            .ensure_running()
            .map_err(|e| anyhow!("{e}; its errors:\n{}", self.errors.tail(10)))
    }
}

/// One JPEG part received.
#[derive(Debug, Clone, Copy)]
struct Part {
    /// When the whole part had arrived.
    at: Instant,
    /// The stream index from `X-Stream`.
    stream: u32,
}

/// An HTTP client reading `/stream` on its own thread; dropping it closes the socket.
struct MjpegClient {
    /// When the connection was started.
    started: Instant,
    /// Parts so far.
    parts: Arc<Mutex<Vec<Part>>>,
    /// The socket, to shut it down.
    sock: TcpStream,
}

impl MjpegClient {
    fn connect(addr: SocketAddr) -> anyhow::Result<MjpegClient> {
        let started = Instant::now();
        let mut sock = TcpStream::connect(addr).context("cannot connect to the switcher")?;
        sock.set_nodelay(true)?;
        std::io::Write::write_all(
            &mut sock,
            b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )?;
        let parts = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&parts);
        let reader = sock.try_clone()?;
        std::thread::spawn(move || {
            let _ = read_parts(reader, &shared);
        });
        Ok(MjpegClient {
            started,
            parts,
            sock,
        })
    }

    /// Waits for the first part received at or after `after` from `stream` (any stream
    /// when `None`); returns the time from `after`.
    fn wait(
        &self,
        stream: Option<u32>,
        after: Instant,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(p) = self
                .parts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find(|p| p.at >= after && stream.is_none_or(|s| s == p.stream))
            {
                return Ok(p.at.saturating_duration_since(after));
            }
            if Instant::now() >= end {
                bail!("no MJPEG part within {} s", timeout.as_secs());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn count_since(&self, t: Instant) -> usize {
        self.parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|p| p.at >= t)
            .count()
    }
}

impl Drop for MjpegClient {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

/// Reads the response headers, then `--frame` parts, recording each.
fn read_parts(sock: TcpStream, parts: &Mutex<Vec<Part>>) -> anyhow::Result<()> {
    let mut r = BufReader::new(sock);
    let mut line = String::new();
    // Response head.
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line.trim().is_empty() {
            break;
        }
    }
    loop {
        let (mut len, mut stream) = (None, 0u32);
        // Boundary line, then part headers up to the blank line.
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let l = line.trim();
            if l.is_empty() && len.is_some() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse::<usize>().ok(),
                    "x-stream" => stream = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; len.unwrap_or(0)];
        r.read_exact(&mut body)?;
        parts.lock().unwrap_or_else(|p| p.into_inner()).push(Part {
            at: Instant::now(),
            stream,
        });
    }
}

/// Runs the switcher on every URL with one viewer and measures it.
pub fn measure_switcher(plan: &SwitcherPlan<'_>) -> anyhow::Result<GstSwitcher> {
    let n = plan.urls.len() as u32;
    eprintln!("gstreamer: starting the MJPEG switcher on {n} streams");
    let mut sw = Switcher::start(plan.urls, plan.log)?;
    let client = MjpegClient::connect(sw.addr)?;
    let mut first = vec![
        client
            .wait(None, client.started, Duration::from_secs(60))
            .map_err(|e| anyhow!("{e}; switcher errors:\n{}", sw.errors.tail(10)))?,
    ];
    child::sleep(Duration::from_secs(plan.warmup))?;
    eprintln!("gstreamer: one viewer, {} s", plan.seconds);
    let t0 = Instant::now();
    let pid = sw.guard.pid();
    let samples = sample_window(&[pid], plan.seconds, || sw.ensure_running())?;
    let usage = Usage::from_samples(&samples, n, plan.tck);
    let fps = client.count_since(t0) as f64 / t0.elapsed().as_secs_f64();
    let mut switches = Vec::new();
    let mut failed = 0;
    if n >= 2 {
        let mut cur = 0;
        for _ in 0..plan.probes {
            if failed >= GIVE_UP {
                break;
            }
            let target = (cur + 1) % n;
            let t = Instant::now();
            http::ok(
                sw.addr,
                "POST",
                &format!("/active?pad={target}"),
                None,
                None,
            )?;
            let r = client.wait(Some(target), t, PROBE_TIMEOUT);
            keep(r, &mut switches, &mut failed, "switcher switch");
            cur = target;
            child::sleep(Duration::from_millis(400))?;
        }
    }
    drop(client);
    for _ in 1..plan.probes {
        if failed >= GIVE_UP {
            break;
        }
        child::sleep(Duration::from_millis(200))?;
        let c = MjpegClient::connect(sw.addr)?;
        keep(
            c.wait(None, c.started, PROBE_TIMEOUT),
            &mut first,
            &mut failed,
            "switcher first frame",
        );
    }
    let g = GstSwitcher {
        usage,
        fps,
        first_frame_ms: Pcts::of_durations(&first),
        switch_ms: Pcts::of_durations(&switches),
        probes_timed_out: failed,
    };
    eprintln!(
        "gstreamer: {:.1} % CPU, RSS {:.0} MiB, {:.1} fps, first frame p95 {:.0} ms, switch p95 {} ms",
        g.usage.cpu_pct,
        g.usage.rss_mib,
        g.fps,
        g.first_frame_ms.map_or(0.0, |p| p.ranks.p95),
        g.switch_ms
            .map_or("n/a".to_string(), |p| format!("{:.0}", p.ranks.p95))
    );
    Ok(g)
}
