//! `edgecam-bench ingest`: the CPU and memory of the daemon ingesting N RTSP streams into its
//! rings with no viewer, against one full `ffmpeg` decoder per stream on the same streams.
//!
//! Plan: start the RTSP test server (a pre-encoded clip looped at real-time pace, so the
//! server costs next to nothing); run the release `edgecam` binary on a generated config,
//! wait until every stream is live, warm up, then sample `/proc/<pid>/stat` and `status` at
//! the start and end of the window; stop it; do the same with N `ffmpeg ... -f null -`.

use crate::child::{self, Guard, Lines, wait_until};
use crate::procfs::{self, Machine, ProcSample};
use crate::rates;
use crate::report::{IngestReport, Measured, Params, Window};
use crate::server::{self, PictureArgs, RtspServer};
use anyhow::{Context, anyhow, bail};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long every stream may take to deliver its first frame.
const LIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// Options of `edgecam-bench ingest`.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// RTSP streams, each on its own server mount.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub streams: u32,
    /// Length of each measured window, seconds (the daemon logs its stream counters every
    /// 10 s; per-stream rates need two of those lines inside the window, so 20 or more).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: u64,
    /// The picture.
    #[command(flatten)]
    pub picture: PictureArgs,
    /// Seconds each side runs, once all its streams deliver frames, before the window opens.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// H.264 profile of the served clip: `high` (x264 veryfast) is what IP cameras send;
    /// `baseline` (x264 ultrafast) is the cheapest there is to decode.
    #[arg(long, default_value = "high", value_parser = ["baseline", "main", "high"])]
    pub profile: String,
    /// Directory for the results files [default: bench/results in the source tree].
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// A scratch directory for the run (config, state, logs), removed when dropped.
pub(crate) struct WorkDir(pub(crate) PathBuf);

impl WorkDir {
    /// Creates `$TMPDIR/edgecam-bench-<pid>`.
    pub(crate) fn create() -> anyhow::Result<WorkDir> {
        let dir = std::env::temp_dir().join(format!("edgecam-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(WorkDir(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the benchmark, prints the JSON and the table, and writes both under `out_dir`.
pub fn run(args: &IngestArgs) -> anyhow::Result<()> {
    let (date, started) = procfs::utc_now();
    let daemon_exe = child::sibling_daemon()?;
    check_ffmpeg()?;
    let machine = Machine::detect();
    let tck = procfs::clock_ticks();
    let work = WorkDir::create()?;
    let cache = child::bench_cache(&daemon_exe);

    eprintln!(
        "starting the RTSP server: {} x {}x{}@{} {} kbit/s (the first run encodes a {} s clip \
         into {}; that takes a while)",
        args.streams,
        args.picture.width,
        args.picture.height,
        args.picture.fps,
        args.picture.bitrate,
        args.picture.clip_seconds,
        cache.display()
    );
    let mut server = server::start(
        args.picture.server_opts(args.streams, &args.profile),
        &cache,
        &work.0.join("server.log"),
    )?;
    let (edgecam, ring_bytes) = measure_edgecam(args, &daemon_exe, &mut server, &work.0, tck)?;
    let plan = FfmpegPlan {
        streams: args.streams,
        warmup: args.warmup,
        seconds: args.seconds,
    };
    let ffmpeg = measure_ffmpeg(&plan, &mut server, tck)?;
    drop(server);

    let params = Params {
        streams: args.streams,
        seconds: args.seconds,
        warmup_s: args.warmup,
        width: args.picture.width,
        height: args.picture.height,
        fps: args.picture.fps,
        bitrate_kbps: args.picture.bitrate,
        clip_seconds: args.picture.clip_seconds,
        profile: args.profile.clone(),
        ring_bytes_per_stream: ring_bytes,
    };
    let report = IngestReport::new(started, machine, tck, params, edgecam, ffmpeg);
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!();
    print!("{}", report.markdown());
    let out = crate::results_dir(args.out_dir.as_deref());
    let json = report.write(&out, &date)?;
    eprintln!(
        "\nwrote {} and {}",
        json.display(),
        out.join("ingest-latest.md").display()
    );
    Ok(())
}

/// Fails with the install hint unless `ffmpeg` runs.
pub(crate) fn check_ffmpeg() -> anyhow::Result<()> {
    match Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("`ffmpeg -version` failed ({s})"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("ffmpeg not found; it is the decode-all baseline: apt-get install ffmpeg")
        }
        Err(e) => Err(anyhow!(e).context("cannot run ffmpeg")),
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for the daemon's web server.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

/// The daemon's config: one RTSP stream per server mount, state and web on throwaway places.
/// Returns the TOML text and the ring arena size per stream it implies.
fn daemon_config(
    urls: &[String],
    state_dir: &Path,
    web_port: u16,
) -> anyhow::Result<(String, u64)> {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let state = state_dir
        .to_str()
        .context("the temporary directory's path is not UTF-8")?;
    let mut text = format!(
        "[web]\nlisten = {}\nhttps_listen = \"127.0.0.1:0\"\n\n[paths]\nstate_dir = {}\n",
        quote(&format!("127.0.0.1:{web_port}")),
        quote(state)
    );
    for (i, url) in urls.iter().enumerate() {
        text += &format!(
            "\n[[streams]]\nid = \"cam{i}\"\nkind = \"rtsp\"\nurl = {}\ntransport = \"tcp\"\n",
            quote(url)
        );
    }
    let cfg = edgecam::config::parse(&text).map_err(|errors| {
        anyhow!(
            "the generated config is invalid:\n{}",
            edgecam::config::report(&errors)
        )
    })?;
    Ok((text, cfg.ring.bytes_per_stream))
}

/// Runs the daemon on every stream and measures it; returns the measurements and the ring
/// arena size per stream.
fn measure_edgecam(
    args: &IngestArgs,
    exe: &Path,
    server: &mut RtspServer,
    work: &Path,
    tck: u64,
) -> anyhow::Result<(Measured, u64)> {
    let urls: Vec<String> = (0..args.streams).map(|i| server.url(i)).collect();
    let (config, ring_bytes) = daemon_config(&urls, &work.join("state"), free_port()?)?;
    let (mut daemon, log) = child::spawn_daemon(exe, work, "edgecam", &config)?;
    let died = |e: anyhow::Error, log: &Lines| anyhow!("{e}; its log ends with:\n{}", log.tail(20));

    eprintln!("edgecam: waiting for {} streams to go live", args.streams);
    wait_until(
        "every edgecam stream to go live",
        LIVE_TIMEOUT,
        || daemon.ensure_running(),
        || rates::daemon_live_streams(&log.snapshot()).len() >= args.streams as usize,
    )
    .map_err(|e| died(e, &log))?;
    eprintln!(
        "edgecam: all live; warming up {} s, then measuring {} s",
        args.warmup, args.seconds
    );
    child::sleep(Duration::from_secs(args.warmup))?;

    let mut window = measure_window(&[daemon.pid()], server, args.seconds, || {
        daemon.ensure_running().map_err(|e| died(e, &log))
    })?;
    // The last stats line of the window may still be in the pipe.
    child::sleep(Duration::from_millis(200))?;
    let lines = log.snapshot();
    let (t0, t1) = (window.start[0].at, window.end[0].at);
    window.streams = rates::daemon_rates(&lines, t0, t1);
    window.restarts = rates::daemon_restarts(&lines, t0, t1);
    let measured = Measured::from_window(window, args.streams, tck);
    say("edgecam", &measured);
    Ok((measured, ring_bytes))
}

/// How many decoders to run and for how long (shared with `e2e`).
pub(crate) struct FfmpegPlan {
    /// Decoders, one per mount `/cam0` ..
    pub streams: u32,
    /// Seconds after every decoder outputs frames before the window.
    pub warmup: u64,
    /// Window length, seconds.
    pub seconds: u64,
}

/// One full ffmpeg decoder per stream: the baseline.
struct Decoder {
    /// The stream id it decodes.
    id: String,
    /// The ffmpeg process.
    guard: Guard,
    /// Its `-progress` output (`frame=N` every second).
    progress: Lines,
    /// Its errors.
    errors: Lines,
}

impl Decoder {
    /// Fails with ffmpeg's own error lines if it exited.
    fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.guard
            .ensure_running()
            .map_err(|e| anyhow!("{e}; its errors:\n{}", self.errors.tail(10)))
    }
}

/// Runs `ffmpeg -rtsp_transport tcp -i URL -f null -` on every stream and measures them.
pub(crate) fn measure_ffmpeg(
    args: &FfmpegPlan,
    server: &mut RtspServer,
    tck: u64,
) -> anyhow::Result<Measured> {
    let mut decoders = Vec::new();
    for i in 0..args.streams {
        let url = server.url(i);
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-loglevel", "error", "-nostats"])
            .args(["-progress", "pipe:1", "-stats_period", "1"])
            .args(["-rtsp_transport", "tcp", "-i", &url, "-f", "null", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let id = format!("cam{i}");
        let mut guard = Guard::spawn(&format!("ffmpeg {id}"), &mut cmd, "apt-get install ffmpeg")?;
        let child = guard.child_mut();
        let progress = Lines::capture(child.stdout.take().context("no stdout pipe")?, None)?;
        let errors = Lines::capture(child.stderr.take().context("no stderr pipe")?, None)?;
        decoders.push(Decoder {
            id,
            guard,
            progress,
            errors,
        });
    }
    eprintln!(
        "ffmpeg: waiting for {} decoders to output frames",
        args.streams
    );
    let progress: Vec<Lines> = decoders.iter().map(|d| d.progress.clone()).collect();
    wait_until(
        "every ffmpeg to decode frames",
        LIVE_TIMEOUT,
        || decoders.iter_mut().try_for_each(Decoder::ensure_running),
        || {
            progress
                .iter()
                .all(|p| rates::ffmpeg_frames(&p.snapshot()) > 0)
        },
    )?;
    eprintln!(
        "ffmpeg: all decoding; warming up {} s, then measuring {} s",
        args.warmup, args.seconds
    );
    child::sleep(Duration::from_secs(args.warmup))?;

    let pids: Vec<u32> = decoders.iter().map(|d| d.guard.pid()).collect();
    let mut window = measure_window(&pids, server, args.seconds, || {
        decoders.iter_mut().try_for_each(Decoder::ensure_running)
    })?;
    window.streams = decoders
        .iter()
        .zip(window.start.iter().zip(&window.end))
        .map(|(d, (s, e))| rates::ffmpeg_rate(&d.id, &d.progress.snapshot(), s.at, e.at))
        .collect();
    let measured = Measured::from_window(window, args.streams, tck);
    say("ffmpeg", &measured);
    Ok(measured)
}

/// Samples `pids`, the server and the load average, waits `seconds`, and samples them again.
/// `alive` runs before the second samples: a dead process has no VmRSS, and its error says
/// why. The window's rates and restarts are left for the caller to fill in.
fn measure_window(
    pids: &[u32],
    server: &mut RtspServer,
    seconds: u64,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Window> {
    let sample_all = |server: &RtspServer| -> anyhow::Result<(Vec<ProcSample>, ProcSample)> {
        let procs = pids
            .iter()
            .map(|&pid| procfs::sample(pid))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok((procs, procfs::sample(server.pid())?))
    };
    let (start, server0) = sample_all(server)?;
    let load0 = procfs::load_avg();
    child::sleep(Duration::from_secs(seconds))?;
    alive()?;
    server.ensure_running()?;
    let (end, server1) = sample_all(server)?;
    Ok(Window {
        start,
        end,
        server: (server0, server1),
        load: (load0, procfs::load_avg()),
        streams: Vec::new(),
        restarts: 0,
    })
}

/// One line on stderr with what a side cost.
fn say(side: &str, m: &Measured) {
    let u = &m.usage;
    eprintln!(
        "{side}: {:.2} % of one core ({:.3} per stream), RSS {:.1} MiB",
        u.cpu_pct, u.cpu_pct_per_stream, u.rss_mib
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_config_is_valid_and_names_every_mount() {
        let urls = vec![
            "rtsp://127.0.0.1:8554/cam0".to_string(),
            "rtsp://127.0.0.1:8554/cam1".to_string(),
        ];
        let (text, ring) = daemon_config(&urls, Path::new("/tmp/x \"y\""), 9000).unwrap();
        let cfg = edgecam::config::parse(&text).unwrap();
        assert_eq!(cfg.streams.len(), 2);
        assert_eq!(cfg.streams[1].url.as_deref(), Some(urls[1].as_str()));
        assert_eq!(cfg.paths.state_dir, Path::new("/tmp/x \"y\""));
        assert_eq!(cfg.web.listen, "127.0.0.1:9000");
        assert_eq!(ring, cfg.ring.bytes_per_stream);
    }
}
