//! `edgecam-bench e2e`: edgecam end to end against the two designs users would pick instead,
//! on the same RTSP streams in the same run, for several camera counts.
//!
//! Per camera count N: the release daemon with no viewer, then with one live WebSocket client
//! on the H.264 (WebCodecs) path, one on the MSE path and one on the JPEG path (CPU, RSS,
//! connect / switch / alarm to first frame, ingest-to-receive latency from the frame headers,
//! skips and ring overwrites), then ten clients at once on the H.264 and on the MSE path (CPU
//! and frame rate); then
//! one `ffmpeg -f null` decoder per stream; then the GStreamer decode-all MJPEG switcher
//! (`bench/mjpeg_switcher.py`) with one HTTP client.

use crate::child::{self, Guard, Lines, wait_until};
use crate::e2e_report::{AtN, Crowd, E2eParams, E2eReport, Edgecam, Pcts, Viewer};
use crate::http;
use crate::ingest::{self, FfmpegPlan, WorkDir};
use crate::peers::{self, SwitcherPlan};
use crate::procfs::{self, ProcSample};
use crate::rates;
use crate::report::RunInfo;
use crate::server::{self, PictureArgs, RtspServer};
use crate::stats::Usage;
use crate::wsclient::{LiveClient, LivePath};
use anyhow::{Context, anyhow, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The bearer token written into the daemon's config for the bench's API calls.
pub const TOKEN: &str = "edgecam-bench-e2e-token-0123456789";
/// How long every stream may take to go live.
const LIVE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the ring arenas may take to fill (16 MiB at 4 Mbit/s: about 32 s).
const RING_WRAP_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a probe may wait for its frame.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// After this many probes without a frame, the remaining probes of a phase are skipped.
pub const GIVE_UP: u32 = 3;
/// Pause between probes, so each starts from a steady view.
const PROBE_GAP: Duration = Duration::from_millis(400);

/// Options of `edgecam-bench e2e`.
#[derive(Debug, Clone, clap::Args)]
pub struct E2eArgs {
    /// Camera counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 4, 8, 16])]
    pub streams: Vec<u32>,
    /// Length of each measured window, seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..))]
    pub seconds: u64,
    /// Seconds after start-up before each window.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Switches, alarms and fresh connections measured per viewer (and for the switcher).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub probes: u32,
    /// The picture.
    #[command(flatten)]
    pub picture: PictureArgs,
    /// H.264 profile of the served clip.
    #[arg(long, default_value = "high", value_parser = ["baseline", "main", "high"])]
    pub profile: String,
    /// Skip the two peers (edgecam only).
    #[arg(long)]
    pub no_peers: bool,
    /// Skip the callgrind instruction count (`ring-instr`, needs valgrind).
    #[arg(long)]
    pub no_ring_instr: bool,
    /// Directory for the results [default: bench/results in the source tree].
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Directory for the PNG plots [default: docs in the source tree].
    #[arg(long)]
    pub plot_dir: Option<PathBuf>,
}

/// Paths and constants every phase needs.
struct Env {
    /// The release daemon next to this program.
    daemon_exe: PathBuf,
    /// Scratch directory.
    work: WorkDir,
    /// Clock ticks per second.
    tck: u64,
}

/// Runs the benchmark, prints the table, writes JSON, Markdown and plots.
pub fn run(args: &E2eArgs) -> anyhow::Result<()> {
    let (date, started) = procfs::utc_now();
    let daemon_exe = child::sibling_daemon()?;
    if args.streams.is_empty() || args.streams.iter().any(|&n| n == 0 || n > 64) {
        bail!("--streams takes counts from 1 to 64");
    }
    if !args.no_peers {
        ingest::check_ffmpeg()?;
    }
    let load_avg_start = procfs::load_avg();
    let env = Env {
        daemon_exe,
        work: WorkDir::create()?,
        tck: procfs::clock_ticks(),
    };
    let cache = child::bench_cache(&env.daemon_exe);
    let mounts = args.streams.iter().copied().max().unwrap_or(1);
    eprintln!("starting the RTSP server with {mounts} mounts");
    let mut server = server::start(
        args.picture.server_opts(mounts, &args.profile),
        &cache,
        &env.work.0.join("server.log"),
    )?;
    let ring_instructions_per_frame = if args.no_ring_instr {
        None
    } else {
        Some(crate::ringinstr::measure(&std::env::current_exe()?, 2000)?)
    };
    let mut results = Vec::new();
    let mut ring_bytes = 0;
    for &n in &args.streams {
        eprintln!("\n=== {n} streams ===");
        let load_avg = procfs::load_avg()[0];
        let (edgecam, server_cpu_pct, rb) = measure_edgecam(args, &env, &mut server, n)?;
        ring_bytes = rb;
        let (ffmpeg, gstreamer) = if args.no_peers {
            (None, None)
        } else {
            let plan = FfmpegPlan {
                streams: n,
                warmup: args.warmup,
                seconds: args.seconds,
            };
            let f = ingest::measure_ffmpeg(&plan, &mut server, env.tck)?;
            let urls: Vec<String> = (0..n).map(|i| server.url(i)).collect();
            let g = peers::measure_switcher(&SwitcherPlan {
                urls: &urls,
                warmup: args.warmup,
                seconds: args.seconds,
                probes: args.probes,
                tck: env.tck,
                log: &env.work.0.join(format!("switcher-{n}.log")),
            })?;
            (Some(f), Some(g))
        };
        results.push(AtN {
            streams: n,
            edgecam,
            ffmpeg,
            gstreamer,
            server_cpu_pct,
            load_avg,
        });
    }
    drop(server);
    let report = E2eReport {
        run: RunInfo::ending_now("e2e", started, load_avg_start),
        params: E2eParams {
            counts: args.streams.clone(),
            seconds: args.seconds,
            warmup_s: args.warmup,
            probes: args.probes,
            width: args.picture.width,
            height: args.picture.height,
            fps: args.picture.fps,
            bitrate_kbps: args.picture.bitrate,
            profile: args.profile.clone(),
            ring_bytes_per_stream: ring_bytes,
        },
        ring_instructions_per_frame,
        results,
    };
    println!("{}", report.markdown());
    let out = crate::results_dir(args.out_dir.as_deref());
    let json = report.write(&out, &date)?;
    let plots = args
        .plot_dir
        .clone()
        .unwrap_or_else(|| crate::repo_dir().join("docs"));
    let pngs = crate::plot::render(&report, &plots)?;
    eprintln!(
        "wrote {}, {} and {}",
        json.display(),
        out.join("e2e-latest.md").display(),
        pngs.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// A running daemon with its log and web address; dropping it kills the process.
pub struct Daemon {
    /// The process.
    pub guard: Guard,
    /// Its stderr (the tracing log).
    pub log: Lines,
    /// Its web server.
    pub addr: SocketAddr,
}

impl Daemon {
    /// Writes a config for `urls` (with the bench token, one alarm `a<i>` per stream and no
    /// anti-flicker delay), starts the daemon and waits until every stream is live. Returns it
    /// and the ring arena size per stream.
    /// `ring_bytes` overrides the ring arena per stream.
    pub fn start(
        exe: &Path,
        urls: &[String],
        work: &Path,
        ring_bytes: Option<u64>,
    ) -> anyhow::Result<(Daemon, u64)> {
        let port = ingest::free_port()?;
        let (config, ring_bytes) = config(urls, &work.join("state"), port, ring_bytes)?;
        let (guard, log) = child::spawn_daemon(exe, work, "edgecam-e2e", &config)?;
        let mut d = Daemon {
            guard,
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let want = urls.len();
        let log = d.log.clone();
        wait_until(
            "every edgecam stream to go live",
            LIVE_TIMEOUT,
            || d.ensure_running(),
            || rates::daemon_live_streams(&log.snapshot()).len() >= want,
        )?;
        Ok((d, ring_bytes))
    }

    /// Fails with the log's tail if the daemon exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.guard
            .ensure_running()
            .map_err(|e| anyhow!("{e}; its log ends with:\n{}", self.log.tail(20)))
    }

    /// `GET /metrics` with the bench token.
    pub fn metrics(&self) -> anyhow::Result<String> {
        http::ok(self.addr, "GET", "/metrics", Some(TOKEN), None)
    }

    /// Sum of one metric over its label sets (0 when absent).
    pub fn metric(&self, name: &str) -> anyhow::Result<u64> {
        Ok(http::metric_sum(&self.metrics()?, name).unwrap_or(0.0) as u64)
    }

    /// An authenticated `POST`.
    pub fn post(&self, path: &str, body: Option<&str>) -> anyhow::Result<String> {
        http::ok(self.addr, "POST", path, Some(TOKEN), body)
    }
}

/// The daemon config for the e2e bench; returns the TOML and the ring arena per stream.
fn config(
    urls: &[String],
    state_dir: &Path,
    port: u16,
    ring_bytes: Option<u64>,
) -> anyhow::Result<(String, u64)> {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let state = state_dir.to_str().context("temporary path is not UTF-8")?;
    let mut text = format!(
        "[web]\nlisten = {}\nhttps_listen = \"127.0.0.1:0\"\n\n[[web.tokens]]\nname = \"bench\"\ntoken = {}\nrole = \"operator\"\n\n\
         [paths]\nstate_dir = {}\n\n[select]\nmin_dwell_ms = 0\n",
        quote(&format!("127.0.0.1:{port}")),
        quote(TOKEN),
        quote(state)
    );
    if let Some(b) = ring_bytes {
        text += &format!("\n[ring]\nbytes_per_stream = {b}\n");
    }
    for (i, url) in urls.iter().enumerate() {
        text += &format!(
            "\n[[streams]]\nid = \"cam{i}\"\nkind = \"rtsp\"\nurl = {}\ntransport = \"tcp\"\n",
            quote(url)
        );
    }
    for i in 0..urls.len() {
        text +=
            &format!("\n[[alarms]]\nid = \"a{i}\"\nstream = \"cam{i}\"\nmode = \"transparent\"\n");
    }
    let cfg = edgecam::config::parse(&text).map_err(|errors| {
        anyhow!(
            "the generated config is invalid:\n{}",
            edgecam::config::report(&errors)
        )
    })?;
    Ok((text, cfg.ring.bytes_per_stream))
}

/// Samples every process in `pids` once a second for `seconds` (plus the ends), checking
/// `alive` each time.
pub fn sample_window(
    pids: &[u32],
    seconds: u64,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Vec<ProcSample>>> {
    let sample = || {
        pids.iter()
            .map(|&p| procfs::sample(p))
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let mut out = vec![sample()?];
    let start = Instant::now();
    for i in 1..=seconds {
        let next = start + Duration::from_secs(i);
        child::sleep(next.saturating_duration_since(Instant::now()))?;
        alive()?;
        out.push(sample()?);
    }
    Ok(out)
}

/// edgecam at `n` streams: idle, then one H.264 viewer, then one JPEG viewer.
fn measure_edgecam(
    args: &E2eArgs,
    env: &Env,
    server: &mut RtspServer,
    n: u32,
) -> anyhow::Result<(Edgecam, f64, u64)> {
    let urls: Vec<String> = (0..n).map(|i| server.url(i)).collect();
    eprintln!("edgecam: waiting for {n} streams to go live");
    let (mut d, ring_bytes) = Daemon::start(&env.daemon_exe, &urls, &env.work.0, None)?;
    child::sleep(Duration::from_secs(args.warmup))?;
    // Warm means every ring's arena has been written through once: until then its pages are
    // still being touched and RSS grows. (Overwritten frames are not enough: the slot table
    // can wrap before the arena does.)
    eprintln!("edgecam: waiting until every ring arena has been filled once (RSS steady)");
    let filled = |text: &str| {
        let v = http::metric_values(text, "edgecam_stream_bytes_total");
        v.len() >= urls.len() && v.iter().all(|&x| x >= ring_bytes as f64)
    };
    let addr = d.addr;
    wait_until(
        "every ring arena to fill",
        RING_WRAP_TIMEOUT,
        || d.ensure_running(),
        || http::ok(addr, "GET", "/metrics", Some(TOKEN), None).is_ok_and(|m| filled(&m)),
    )?;
    let pid = d.guard.pid();

    eprintln!("edgecam: no viewer, {} s", args.seconds);
    let ov0 = d.metric("edgecam_ring_overwritten_frames_total")?;
    let srv0 = procfs::sample(server.pid())?;
    let samples = sample_window(&[pid], args.seconds, || d.ensure_running())?;
    let srv1 = procfs::sample(server.pid())?;
    let idle = Usage::from_samples(&samples, n, env.tck);
    let idle_ring_overwritten = d
        .metric("edgecam_ring_overwritten_frames_total")?
        .saturating_sub(ov0);
    let server_cpu = procfs::CpuShare::between(&[srv0], &[srv1], env.tck).total_pct();
    eprintln!(
        "edgecam idle: {:.2} % of one core ({:.3} per stream), RSS {:.1} MiB",
        idle.cpu_pct, idle.cpu_pct_per_stream, idle.rss_mib
    );
    let h264 = viewer_phase(args, env, &mut d, n, LivePath::H264)?;
    let mse = viewer_phase(args, env, &mut d, n, LivePath::Mse)?;
    let jpeg = viewer_phase(args, env, &mut d, n, LivePath::Jpeg)?;
    let crowds = vec![
        crowd_phase(args, env, &mut d, n, LivePath::H264)?,
        crowd_phase(args, env, &mut d, n, LivePath::Mse)?,
    ];
    let reconnects = rates::daemon_restarts(
        &d.log.snapshot(),
        samples[0][0].at,
        Instant::now() + Duration::from_secs(1),
    );
    Ok((
        Edgecam {
            idle,
            idle_ring_overwritten,
            h264,
            mse,
            jpeg,
            crowds,
            reconnects,
        },
        server_cpu,
        ring_bytes,
    ))
}

/// One viewer on one path: a steady window, then switch and alarm probes, then fresh
/// connections for the first-frame time.
fn viewer_phase(
    args: &E2eArgs,
    env: &Env,
    d: &mut Daemon,
    n: u32,
    path: LivePath,
) -> anyhow::Result<Viewer> {
    let name = path.name();
    d.post("/api/active", Some(r#"{"stream":"cam0"}"#))?;
    let skipped0 = d.metric("edgecam_live_skipped_frames_total")?;
    let client = LiveClient::connect(d.addr, TOKEN, path)?;
    let mut failed = 0;
    let mut first = Vec::new();
    keep(
        client.first_frame(PROBE_TIMEOUT),
        &mut first,
        &mut failed,
        "first frame",
    );
    // Let the catch-up burst (and the JPEG decoder's start) pass before the window.
    child::sleep(Duration::from_secs(2))?;
    eprintln!("edgecam: one {name} viewer, {} s", args.seconds);
    let ov0 = d.metric("edgecam_ring_overwritten_frames_total")?;
    let t0 = Instant::now();
    let pid = d.guard.pid();
    let samples = sample_window(&[pid], args.seconds, || d.ensure_running())?;
    let usage = Usage::from_samples(&samples, n, env.tck);
    let ring_overwritten = d
        .metric("edgecam_ring_overwritten_frames_total")?
        .saturating_sub(ov0);
    let frames = client.frames_since(t0);
    let window = t0.elapsed().as_secs_f64();
    let lat: Vec<f64> = frames
        .iter()
        .filter(|f| !f.catch_up())
        .map(|f| f.latency_us() as f64 / 1e3)
        .collect();

    let (mut switches, mut alarms) = (Vec::new(), Vec::new());
    if n >= 2 {
        let mut cur = 0;
        for _ in 0..args.probes {
            if failed >= GIVE_UP {
                break;
            }
            let target = (cur + 1) % n;
            let t = Instant::now();
            d.post(
                "/api/active",
                Some(&format!(r#"{{"stream":"cam{target}"}}"#)),
            )?;
            let r = client.first_frame_of(&format!("cam{target}"), t, PROBE_TIMEOUT);
            keep(r, &mut switches, &mut failed, "switch");
            cur = target;
            child::sleep(PROBE_GAP)?;
        }
        for _ in 0..args.probes {
            if failed >= GIVE_UP {
                break;
            }
            let target = (cur + 1) % n;
            let t = Instant::now();
            d.post(&format!("/api/alarms/a{target}/trigger"), None)?;
            let r = client.first_frame_of(&format!("cam{target}"), t, PROBE_TIMEOUT);
            keep(r, &mut alarms, &mut failed, "alarm");
            child::sleep(PROBE_GAP)?;
            let t = Instant::now();
            d.post(&format!("/api/alarms/a{target}/clear"), None)?;
            let _ = client.first_frame_of(&format!("cam{cur}"), t, PROBE_TIMEOUT);
            child::sleep(PROBE_GAP)?;
        }
    }
    drop(client);
    for _ in 1..args.probes {
        if failed >= GIVE_UP {
            break;
        }
        child::sleep(Duration::from_millis(200))?;
        let c = LiveClient::connect(d.addr, TOKEN, path)?;
        keep(
            c.first_frame(PROBE_TIMEOUT),
            &mut first,
            &mut failed,
            "first frame",
        );
    }
    let client_skipped = d
        .metric("edgecam_live_skipped_frames_total")?
        .saturating_sub(skipped0);
    let v = Viewer {
        path: name.to_string(),
        usage,
        fps: frames.len() as f64 / window.max(1e-9),
        ingest_to_recv_ms: Pcts::of(&lat),
        first_frame_ms: Pcts::of_durations(&first),
        switch_ms: Pcts::of_durations(&switches),
        alarm_ms: Pcts::of_durations(&alarms),
        client_skipped,
        ring_overwritten,
        probes_timed_out: failed,
    };
    eprintln!(
        "edgecam {name}: {:.2} % CPU, {:.1} fps, first frame p95 {} ms, switch p95 {} ms, \
         alarm p95 {} ms, ingest->recv p99 {} ms",
        v.usage.cpu_pct,
        v.fps,
        show(v.first_frame_ms.map(|p| p.ranks.p95)),
        show(v.switch_ms.map(|p| p.ranks.p95)),
        show(v.alarm_ms.map(|p| p.ranks.p95)),
        show(v.ingest_to_recv_ms.map(|p| p.ranks.p99)),
    );
    Ok(v)
}

/// Keeps a probe's duration, or counts (and reports) a probe that got no frame in time.
/// Viewers in the crowd phase (the issue's "10 such viewers").
const CROWD: usize = 10;

/// [`CROWD`] viewers on one path watching the same stream: the daemon's CPU and the slowest
/// viewer's frame rate over a steady window.
fn crowd_phase(
    args: &E2eArgs,
    env: &Env,
    d: &mut Daemon,
    n: u32,
    path: LivePath,
) -> anyhow::Result<Crowd> {
    d.post("/api/active", Some(r#"{"stream":"cam0"}"#))?;
    let clients = (0..CROWD)
        .map(|_| LiveClient::connect(d.addr, TOKEN, path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for c in &clients {
        c.first_frame(PROBE_TIMEOUT)?;
    }
    child::sleep(Duration::from_secs(2))?;
    eprintln!(
        "edgecam: {CROWD} {} viewers, {} s",
        path.name(),
        args.seconds
    );
    let t0 = Instant::now();
    let pid = d.guard.pid();
    let samples = sample_window(&[pid], args.seconds, || d.ensure_running())?;
    let usage = Usage::from_samples(&samples, n, env.tck);
    let window = t0.elapsed().as_secs_f64().max(1e-9);
    let min_fps = clients
        .iter()
        .map(|c| c.frames_since(t0).len() as f64 / window)
        .fold(f64::INFINITY, f64::min);
    drop(clients);
    eprintln!(
        "edgecam {CROWD} {}: {:.2} % CPU, slowest viewer {:.1} fps",
        path.name(),
        usage.cpu_pct,
        min_fps
    );
    Ok(Crowd {
        path: path.name().to_string(),
        viewers: CROWD as u32,
        usage,
        min_fps,
    })
}

pub fn keep(r: anyhow::Result<Duration>, into: &mut Vec<Duration>, failed: &mut u32, what: &str) {
    match r {
        Ok(d) => into.push(d),
        Err(e) => {
            *failed += 1;
            eprintln!("  {what} probe failed: {e:#}");
        }
    }
}

fn show(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_token_an_alarm_per_stream_and_no_dwell() {
        let urls = vec![
            "rtsp://127.0.0.1:1/cam0".to_string(),
            "rtsp://127.0.0.1:1/cam1".to_string(),
        ];
        let (text, _) = config(&urls, Path::new("/tmp/s"), 9000, Some(1 << 20)).unwrap();
        let cfg = edgecam::config::parse(&text).unwrap();
        assert_eq!(cfg.web.tokens[0].token, TOKEN);
        assert_eq!(cfg.alarms.len(), 2);
        assert_eq!(cfg.alarms[1].stream, "cam1");
        assert_eq!(cfg.select.min_dwell_ms, 0);
        assert_eq!(cfg.ring.bytes_per_stream, 1 << 20);
    }
}
