//! `edgecam-bench browser`: live-view latency in a real browser, as issue 5 asks to measure.
//!
//! It runs the release `edgecam demo --streams 4` (a throwaway state directory, the web page on
//! a free 127.0.0.1 port) and `tests/browser/bench.mjs`, which drives one headless Debian
//! Chromium through playwright-core: it logs in with the demo's one-time password and sets a
//! new one (as a user does on the page), adds an alarm, and measures for the WebCodecs path
//! and the JPEG path (`?mode=jpeg`) at `http://127.0.0.1:PORT`, and for the MSE path the page
//! chooses by itself at `http://edgebox.test:PORT` (the demo runs with `--hostname
//! edgebox.test`, Chromium maps the name to 127.0.0.1: a plain-HTTP origin that is not a
//! secure context), and for WebCodecs again at `https://edgebox.test:HTTPS_PORT` (the box's own
//! certificate accepted: a secure context on a LAN name), page connect → first frame painted,
//! click → new stream
//! painted, alarm API → painted, and ingest → paint in steady state, using the recorder built
//! into the page (`window.edgecam.stats`). This side reduces the samples to p50/p95/p99,
//! judges the targets and writes the results. With `--rtsp` the demo's test patterns are
//! replaced, through the config API, by RTSP cameras serving the bench's 1080p25 clip (issue
//! 16's setting). Every process it starts (the demo, Node and the
//! browser under it) is killed when it ends, however it ends.

mod report;

use crate::child::{self, Guard, Lines, wait_until};
use crate::procfs::{self, Machine};
use crate::server::{self, PictureArgs, RtspServer, ServerOpts};
use anyhow::{Context, anyhow, bail};
use report::{BrowserReport, Params, ReportHead};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the demo may take to print its one-time password.
const DEMO_TIMEOUT: Duration = Duration::from_secs(60);
/// The LAN-style name the MSE row opens the page by (`--hostname` of the demo; Chromium maps
/// it to 127.0.0.1), so the page is a plain-HTTP, non-secure origin.
const LAN_NAME: &str = "edgebox.test";
/// Seconds of demo running before the browser starts, so every stream has a full GOP.
const DEMO_WARMUP: Duration = Duration::from_secs(3);

/// Options of `edgecam-bench browser`.
#[derive(Debug, Clone, clap::Args)]
pub struct BrowserArgs {
    /// Measurements per metric and path (first frame, switch, alarm).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub iterations: u32,
    /// Seconds of steady-state viewing per path for ingest-to-paint.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub steady: u64,
    /// Test-pattern streams in the demo (the alarm calls up the last one; at least 4).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(4..=16))]
    pub streams: u32,
    /// Keyframe interval of every demo stream, frames [default: the demo's own]; set through
    /// the config API before measuring.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub gop: Option<u32>,
    /// The edgecam binary to run [default: `edgecam` next to this program]; another build,
    /// for a before/after comparison in the same session.
    #[arg(long)]
    pub edgecam: Option<PathBuf>,
    /// Replace the demo's test patterns by RTSP cameras serving the camera-like clip
    /// (`--width` ... below; x264, `--gop` frames a keyframe, default 2 s), added through the
    /// config API as an installer adds them: issue 16's 1080p25 setting.
    #[arg(long)]
    pub rtsp: bool,
    /// The RTSP clip's picture (with `--rtsp`).
    #[command(flatten)]
    pub picture: PictureArgs,
    /// H.264 profile of the RTSP clip (with `--rtsp`).
    #[arg(long, default_value = "high", value_parser = ["baseline", "main", "high"])]
    pub profile: String,
    /// A name for the run, kept in the results and their file name (e.g. `before`).
    #[arg(long)]
    pub label: Option<String>,
    /// Directory for the results files [default: bench/results in the source tree].
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// Node with the bench script under it, in its own process group: dropping it kills the
/// group, so Chromium (Node's child) goes too.
struct NodeGroup {
    /// The Node process, leader of the group.
    child: Child,
}

impl Drop for NodeGroup {
    fn drop(&mut self) {
        // The group id is the leader's pid. `kill` may fail only because all are gone.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch directory for the run (state, logs), removed when dropped.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the benchmark, prints the JSON and the table, and writes both under `out_dir`.
pub fn run(args: &BrowserArgs) -> anyhow::Result<()> {
    let (date, started_utc) = procfs::utc_now();
    let load_avg_start = procfs::load_avg();
    let daemon_exe = match &args.edgecam {
        Some(p) if p.is_file() => p.clone(),
        Some(p) => bail!("{} not found", p.display()),
        None => child::sibling_daemon()?,
    };
    let script_dir = &crate::repo_dir().join("tests/browser");
    let chromium = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    check_tools(script_dir, &chromium)?;
    let work =
        WorkDir(std::env::temp_dir().join(format!("edgecam-bench-browser-{}", std::process::id())));
    std::fs::create_dir_all(work.0.join("state"))
        .with_context(|| format!("cannot create {}", work.0.display()))?;

    let cameras = if args.rtsp {
        eprintln!("starting the RTSP server with {} mounts", args.streams);
        let opts = ServerOpts {
            gop: args.gop.unwrap_or(0),
            ..args.picture.server_opts(args.streams, &args.profile)
        };
        let cache = child::bench_cache(&daemon_exe);
        Some(server::start(opts, &cache, &work.0.join("server.log"))?)
    } else {
        None
    };
    let port = free_port()?;
    let https_port = free_port()?;
    eprintln!(
        "starting {} demo --streams {} on 127.0.0.1:{port} (load average {:.2} {:.2} {:.2})",
        daemon_exe.display(),
        args.streams,
        load_avg_start[0],
        load_avg_start[1],
        load_avg_start[2]
    );
    let mut demo_cmd = Command::new(&daemon_exe);
    demo_cmd
        .args(["demo", "--streams", &args.streams.to_string(), "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--hostname", LAN_NAME])
        .arg("--https-listen")
        .arg(format!("127.0.0.1:{https_port}"))
        .arg("--state-dir")
        .arg(work.0.join("state"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut demo = Guard::spawn("edgecam demo", &mut demo_cmd, child::BUILD_HINT)?;
    let stdout = Lines::capture(
        demo.child_mut().stdout.take().context("no stdout pipe")?,
        None,
    )?;
    let stderr = Lines::capture(
        demo.child_mut().stderr.take().context("no stderr pipe")?,
        Some(work.0.join("edgecam.log")),
    )?;
    let password = || {
        stdout.snapshot().iter().find_map(|(_, l)| {
            Some(
                l.split("one-time admin password: ")
                    .nth(1)?
                    .trim()
                    .to_string(),
            )
        })
    };
    wait_until(
        "the demo's one-time password",
        DEMO_TIMEOUT,
        || demo.ensure_running(),
        || password().is_some(),
    )
    .map_err(|e| anyhow!("{e}; its log ends with:\n{}", stderr.tail(20)))?;
    let password = password().context("the password line vanished")?;
    child::sleep(DEMO_WARMUP)?;

    let ports = (port, https_port);
    let raw = run_script(
        script_dir,
        &chromium,
        ports,
        &password,
        args,
        cameras.as_ref(),
    )?;
    demo.ensure_running()
        .map_err(|e| anyhow!("{e}; its log ends with:\n{}", stderr.tail(20)))?;
    drop(demo);
    drop(cameras);

    let head = ReportHead {
        label: args.label.clone(),
        started_utc,
        command: command_line(args),
        machine: Machine::detect(),
        load_avg_start,
        params: Params {
            streams: args.streams,
            stream_format: if args.rtsp {
                rtsp_format(args)
            } else {
                stream_format(args.streams, args.gop)
            },
            iterations: args.iterations,
            steady_s: args.steady,
            edgecam_binary: daemon_exe.display().to_string(),
            chromium: None,
        },
    };
    let report = BrowserReport::new(&raw, head, procfs::load_avg())?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!();
    print!("{}", report.markdown());
    let out = crate::results_dir(args.out_dir.as_deref());
    let (json, md) = report.write(&out, &date)?;
    eprintln!("\nwrote {} and {}", json.display(), md.display());
    Ok(())
}

/// Fails with an install hint unless Node, playwright-core and Chromium are there.
fn check_tools(script_dir: &Path, chromium: &Path) -> anyhow::Result<()> {
    if !chromium.is_file() {
        bail!(
            "{} not found: apt-get install chromium (or set CHROMIUM)",
            chromium.display()
        );
    }
    if !script_dir.join("node_modules/playwright-core").is_dir() {
        bail!(
            "playwright-core is missing: run `npm ci` in {}",
            script_dir.display()
        );
    }
    match Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("`node --version` failed ({s})"),
        Err(_) => bail!("node not found: apt-get install nodejs"),
    }
}

/// Runs `bench.mjs` against the demo's `(http, https)` ports (with `cameras` to add, if any)
/// and returns the document of its `RESULT` line. Its progress goes to our stderr as it
/// happens.
fn run_script(
    script_dir: &Path,
    chromium: &Path,
    (port, https_port): (u16, u16),
    password: &str,
    args: &BrowserArgs,
    cameras: Option<&RtspServer>,
) -> anyhow::Result<serde_json::Value> {
    let mut cmd = Command::new("node");
    if let Some(server) = cameras {
        let urls: Vec<String> = (0..args.streams).map(|i| server.url(i)).collect();
        cmd.env("BENCH_CAMERAS", serde_json::to_string(&urls)?);
    }
    cmd.arg(script_dir.join("bench.mjs"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(password)
        .arg(args.iterations.to_string())
        .arg(args.steady.to_string())
        .arg(args.gop.unwrap_or(0).to_string())
        .arg(format!("http://{LAN_NAME}:{port}"))
        .arg(format!("https://{LAN_NAME}:{https_port}"))
        .env("CHROMIUM", chromium)
        .current_dir(script_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0);
    let mut node = NodeGroup {
        child: cmd.spawn().context("cannot start node")?,
    };
    let out = Lines::capture(node.child.stdout.take().context("no stdout pipe")?, None)?;
    // Generous: a measurement takes about a second, a page load a few on a busy machine.
    let limit =
        Duration::from_secs(240 + u64::from(args.iterations) * 4 * 3 * 10 + 4 * args.steady);
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(status) = node.child.try_wait().context("cannot check on node")? {
            break status;
        }
        if Instant::now() >= end {
            bail!("bench.mjs did not finish within {} s", limit.as_secs());
        }
        child::sleep(Duration::from_millis(200))?;
    };
    // The last lines may still be in the pipe.
    child::sleep(Duration::from_millis(200))?;
    let lines = out.snapshot();
    if !status.success() {
        bail!("bench.mjs failed ({status}); its output:\n{}", out.tail(20));
    }
    let result = lines
        .iter()
        .find_map(|(_, l)| l.strip_prefix("RESULT "))
        .context("bench.mjs printed no RESULT line")?;
    serde_json::from_str(result).context("bench.mjs printed a RESULT that is not JSON")
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for the demo's web server.
fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

/// The demo's per-stream format, from the config it uses (and `--gop`).
fn stream_format(streams: u32, gop: Option<u32>) -> String {
    let cfg = edgecam::daemon::demo_config(
        streams,
        ([127, 0, 0, 1], 0).into(),
        Path::new("/nonexistent"),
    );
    cfg.streams.first().map_or_else(String::new, |s| {
        format!(
            "{}x{}, {} fps, {} kbit/s, GOP {} frames",
            s.width.unwrap_or(0),
            s.height.unwrap_or(0),
            s.fps_or_default(),
            s.bitrate_kbps.unwrap_or(0),
            gop.unwrap_or_else(|| s.gop_or_default())
        )
    })
}

/// The RTSP cameras' format (`--rtsp`).
fn rtsp_format(args: &BrowserArgs) -> String {
    let p = &args.picture;
    let opts = ServerOpts {
        gop: args.gop.unwrap_or(0),
        ..p.server_opts(args.streams, &args.profile)
    };
    format!(
        "RTSP cameras: {}x{}, {} fps, {} kbit/s, GOP {} frames, x264 {}",
        p.width,
        p.height,
        p.fps,
        p.bitrate,
        opts.gop_frames(),
        args.profile
    )
}

/// The command that reproduces a run with these options.
fn command_line(args: &BrowserArgs) -> String {
    let mut c = format!(
        "cargo run --release -p edgecam-bench -- browser --iterations {} --steady {} --streams {}",
        args.iterations, args.steady, args.streams
    );
    if let Some(g) = args.gop {
        c += &format!(" --gop {g}");
    }
    if args.rtsp {
        let p = &args.picture;
        c += &format!(
            " --rtsp --width {} --height {} --fps {} --bitrate {} --clip-seconds {} --profile {}",
            p.width, p.height, p.fps, p.bitrate, p.clip_seconds, args.profile
        );
    }
    if let Some(l) = &args.label {
        c += &format!(" --label {l}");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_comes_from_the_demo_config() {
        let f = stream_format(4, None);
        assert!(f.starts_with("640x360, 25 fps"), "{f}");
        assert!(f.contains("GOP 25 frames"), "{f}");
        assert!(stream_format(4, Some(50)).ends_with("GOP 50 frames"));
    }

    #[test]
    fn the_command_names_the_options() {
        let args = BrowserArgs {
            iterations: 5,
            steady: 3,
            streams: 4,
            gop: Some(25),
            edgecam: None,
            rtsp: false,
            picture: PictureArgs::default(),
            profile: "high".into(),
            label: Some("before".into()),
            out_dir: None,
        };
        assert_eq!(
            command_line(&args),
            "cargo run --release -p edgecam-bench -- browser --iterations 5 --steady 3 \
             --streams 4 --gop 25 --label before"
        );
        let rtsp = BrowserArgs { rtsp: true, ..args };
        assert_eq!(
            command_line(&rtsp),
            "cargo run --release -p edgecam-bench -- browser --iterations 5 --steady 3 \
             --streams 4 --gop 25 --rtsp --width 1920 --height 1080 --fps 25 --bitrate 4000 \
             --clip-seconds 4 --profile high --label before"
        );
        assert_eq!(
            rtsp_format(&rtsp),
            "RTSP cameras: 1920x1080, 25 fps, 4000 kbit/s, GOP 25 frames, x264 high"
        );
    }
}
