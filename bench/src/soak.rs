//! `edgecam-bench soak`: the daemon with N streams and one H.264 viewer for a long time while
//! the RTSP test server drops every stream periodically (a camera rebooting). Prints the
//! curve of RSS, open file descriptors, threads and the runtime's alive tasks, and with
//! `--check` fails when any of them has grown (a leak check with generous bounds, not a
//! timing check).

use crate::child;
use crate::e2e::{Daemon, sample_window};
use crate::ingest::WorkDir;
use crate::procfs;
use crate::server::{self, ServerOpts};
use crate::wsclient::LiveClient;
use anyhow::{Context, bail};
use std::time::{Duration, Instant};

/// Options of `edgecam-bench soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// RTSP streams.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub streams: u32,
    /// Length of the soak, seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(10..))]
    pub seconds: u64,
    /// The server closes every session this often, seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub drop_every: u32,
    /// Seconds between samples of the curve.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_every: u64,
    /// Picture width.
    #[arg(long, default_value_t = 1920)]
    pub width: u32,
    /// Picture height.
    #[arg(long, default_value_t = 1080)]
    pub height: u32,
    /// Encoder bitrate, kbit/s.
    #[arg(long, default_value_t = 4000)]
    pub bitrate: u32,
    /// Ring arena per stream, bytes [default: the daemon's default].
    #[arg(long)]
    pub ring_bytes: Option<u64>,
    /// Fail unless the last drop cycle's floor of RSS, fds and tasks is within the bounds of
    /// the first full cycle's.
    #[arg(long)]
    pub check: bool,
    /// With `--check`: most RSS growth allowed, MiB.
    #[arg(long, default_value_t = 8.0)]
    pub max_rss_growth_mib: f64,
    /// With `--check`: most growth of open fds, threads or tasks allowed.
    #[arg(long, default_value_t = 8)]
    pub max_count_growth: i64,
}

/// One point of the curve.
#[derive(Debug, Clone, Copy)]
struct Point {
    /// Seconds since the viewer connected.
    t: f64,
    /// Resident memory, MiB.
    rss_mib: f64,
    /// Open file descriptors (`/proc/<pid>/fd`).
    fds: i64,
    /// OS threads (`Threads:` in `/proc/<pid>/status`).
    threads: i64,
    /// Tasks alive in the runtime (`edgecam_runtime_alive_tasks`).
    tasks: i64,
    /// Streams live at that moment.
    live: i64,
    /// Frames the viewer received since the previous point.
    frames: usize,
}

/// Runs the soak and prints the curve.
pub fn run(args: &SoakArgs) -> anyhow::Result<()> {
    let daemon_exe = child::sibling_daemon()?;
    let work = WorkDir::create()?;
    let cache = child::bench_cache(&daemon_exe);
    let mut server = server::start(
        ServerOpts {
            mounts: args.streams,
            width: args.width,
            height: args.height,
            fps: 25,
            bitrate_kbps: args.bitrate,
            drop_every_s: args.drop_every,
            ..server::clip(4, "high")
        },
        &cache,
        &work.0.join("server.log"),
    )?;
    let urls: Vec<String> = (0..args.streams).map(|i| server.url(i)).collect();
    let (mut d, _) = Daemon::start(&daemon_exe, &urls, &work.0, args.ring_bytes)?;
    let client = LiveClient::connect(d.addr, crate::e2e::TOKEN, crate::wsclient::LivePath::H264)?;
    client.first_frame(Duration::from_secs(30))?;
    eprintln!(
        "soak: {} streams, one H.264 viewer, server drops every stream every {} s, {} s",
        args.streams, args.drop_every, args.seconds
    );
    println!("|  t s | RSS MiB | fds | threads | tasks | live | frames |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let t0 = Instant::now();
    let mut last = t0;
    let mut curve = Vec::new();
    let pid = d.guard.pid();
    while t0.elapsed() < Duration::from_secs(args.seconds) {
        child::sleep(Duration::from_secs(args.sample_every))?;
        d.ensure_running()?;
        server.ensure_running()?;
        let s = procfs::sample(pid)?;
        let m = d.metrics()?;
        let now = Instant::now();
        let frames = client.frames_since(last).len();
        last = now;
        let p = Point {
            t: now.duration_since(t0).as_secs_f64(),
            rss_mib: s.rss_kib as f64 / 1024.0,
            fds: count_fds(pid)?,
            threads: threads(pid)?,
            tasks: crate::http::metric_sum(&m, "edgecam_runtime_alive_tasks").unwrap_or(-1.0)
                as i64,
            live: crate::http::metric_sum(&m, "edgecam_stream_live").unwrap_or(0.0) as i64,
            frames,
        };
        println!(
            "| {:4.0} | {:7.1} | {:3} | {:7} | {:5} | {:4} | {:6} |",
            p.t, p.rss_mib, p.fds, p.threads, p.tasks, p.live, p.frames
        );
        curve.push(p);
    }
    let reconnects = crate::rates::daemon_restarts(&d.log.snapshot(), t0, Instant::now());
    println!("\nstream attempts ended (drops seen by the daemon): {reconnects}");
    // The window helper is shared with e2e; one final CPU reading for the record.
    let w = sample_window(&[pid], 2, || d.ensure_running())?;
    let cpu = procfs::CpuShare::between(&w[0], &w[w.len() - 1], procfs::clock_ticks());
    println!(
        "CPU over the last 2 s: {:.1} % of one core",
        cpu.total_pct()
    );
    let verdict = judge(&curve, args.drop_every as f64, args);
    println!("{}", verdict.1);
    if args.check && !verdict.0 {
        bail!("the soak found growth beyond the bounds (see above)");
    }
    if reconnects == 0 && args.seconds > u64::from(args.drop_every) + 10 {
        bail!("the server's drops never reached the daemon: the soak tested nothing");
    }
    Ok(())
}

/// Compares the floor (minimum) of each quantity over the first full drop cycle with the
/// floor over the last one; a leak raises the floor. Returns (within bounds, report).
fn judge(curve: &[Point], cycle_s: f64, args: &SoakArgs) -> (bool, String) {
    let first: Vec<&Point> = curve
        .iter()
        .filter(|p| p.t >= cycle_s && p.t < 2.0 * cycle_s)
        .collect();
    let end = curve.last().map_or(0.0, |p| p.t);
    let last: Vec<&Point> = curve.iter().filter(|p| p.t > end - cycle_s).collect();
    if first.is_empty() || last.is_empty() || end < 2.0 * cycle_s {
        return (
            true,
            "too short to compare two drop cycles; no verdict".to_string(),
        );
    }
    let floor_f =
        |v: &[&Point], f: fn(&Point) -> f64| v.iter().map(|p| f(p)).fold(f64::MAX, f64::min);
    let floor_i = |v: &[&Point], f: fn(&Point) -> i64| v.iter().map(|p| f(p)).min().unwrap_or(0);
    let rss = floor_f(&last, |p| p.rss_mib) - floor_f(&first, |p| p.rss_mib);
    let counts = [
        (
            "fds",
            floor_i(&last, |p| p.fds) - floor_i(&first, |p| p.fds),
        ),
        (
            "threads",
            floor_i(&last, |p| p.threads) - floor_i(&first, |p| p.threads),
        ),
        (
            "tasks",
            floor_i(&last, |p| p.tasks) - floor_i(&first, |p| p.tasks),
        ),
    ];
    let mut ok = rss <= args.max_rss_growth_mib;
    let mut text = format!(
        "growth of the floor, first full cycle to last: RSS {rss:+.1} MiB (bound {})",
        args.max_rss_growth_mib
    );
    for (name, g) in counts {
        ok &= g <= args.max_count_growth;
        text += &format!(", {name} {g:+}");
    }
    text += &format!(
        " (bound {}): {}",
        args.max_count_growth,
        if ok { "flat" } else { "GROWING" }
    );
    (ok, text)
}

/// Open file descriptors of `pid`.
fn count_fds(pid: u32) -> anyhow::Result<i64> {
    let dir = format!("/proc/{pid}/fd");
    Ok(std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {dir}"))?
        .count() as i64)
}

/// Threads of `pid`.
fn threads(pid: u32) -> anyhow::Result<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
        .context("no Threads: line")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> SoakArgs {
        SoakArgs {
            streams: 1,
            seconds: 60,
            drop_every: 10,
            sample_every: 1,
            width: 64,
            height: 64,
            bitrate: 100,
            ring_bytes: None,
            check: true,
            max_rss_growth_mib: 4.0,
            max_count_growth: 2,
        }
    }

    fn curve(leak_per_s: f64) -> Vec<Point> {
        (0..60)
            .map(|t| Point {
                t: f64::from(t),
                // A spike at each drop (t % 10 == 0) that comes back down.
                rss_mib: 20.0 + if t % 10 == 0 { 5.0 } else { 0.0 } + leak_per_s * f64::from(t),
                fds: 30 + i64::from(t % 10 == 0) * 4 + (leak_per_s * f64::from(t)) as i64,
                threads: 6,
                tasks: 40,
                live: 1,
                frames: 25,
            })
            .collect()
    }

    #[test]
    fn spikes_at_drops_are_flat_but_a_rising_floor_is_a_leak() {
        let (ok, text) = judge(&curve(0.0), 10.0, &args());
        assert!(ok, "{text}");
        let (ok, text) = judge(&curve(0.2), 10.0, &args());
        assert!(!ok, "{text}");
        assert!(text.contains("GROWING"));
        // Shorter than two cycles: no verdict.
        assert!(judge(&curve(0.2)[..15], 10.0, &args()).0);
    }
}
