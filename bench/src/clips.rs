//! `edgecam-bench clips`: what event-clip recording costs (issue 19): N cameras' rings fed a
//! camera-like 1080p25 H.264 clip in real time, then all N alarmed at once, each recorded by
//! the daemon's own clip manager and recorders (`edgecam::output::clips`) into a temporary
//! directory.
//!
//! In one process, so that its CPU time and its allocations can be counted: a baseline
//! window (the rings fed, nothing recorded) and a recording window of the same length (the
//! same feeding, N clips written). The difference is what recording costs: CPU (% of one
//! core per recorded stream), bytes written a second, and heap allocations per recorded
//! frame. Prints one JSON line.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use edgecam::clock::{Clock, SystemClock};
use edgecam::config::ClipsConfig;
use edgecam::frame::{Codec, FrameInfo, FrameSink};
use edgecam::ingest::stats::StreamStats;
use edgecam::output::clips::{ClipStore, spawn_manager};
use edgecam::output::{LiveStream, StreamLookup};
use edgecam::ring::{FrameRing, RingSpec, RingWriter};
use edgecam::select::{ActiveView, AlarmStatus};
use serde_json::json;
use tokio::sync::watch;

use crate::procfs;

/// Options of `clips`.
#[derive(Debug, clap::Args)]
pub struct ClipsArgs {
    /// Cameras alarmed at once.
    #[arg(long, default_value_t = 4)]
    cameras: usize,
    /// Seconds of each window (baseline, then recording).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Picture width of the clip.
    #[arg(long, default_value_t = 1920)]
    width: u32,
    /// Picture height of the clip.
    #[arg(long, default_value_t = 1080)]
    height: u32,
    /// Encoder bitrate, kbit/s (a camera's main stream).
    #[arg(long, default_value_t = 4000)]
    bitrate: u32,
}

/// Counts heap allocations (all threads) while [`COUNTING`] is on.
pub struct CountingAlloc;

/// Allocations (and reallocations) counted so far.
static ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Whether allocations are counted now (off for every other benchmark).
static COUNTING: AtomicBool = AtomicBool::new(false);

// SAFETY: forwards every call to the system allocator unchanged; only counts on the side.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The cameras' rings, as the clip manager looks streams up.
struct Rings(Vec<(String, Arc<FrameRing>, Arc<StreamStats>)>);

impl StreamLookup for Rings {
    fn live_stream(&self, id: &str) -> Option<LiveStream> {
        let (_, ring, stats) = self.0.iter().find(|r| r.0 == id)?;
        Some(LiveStream {
            name: id.to_string(),
            ring: Arc::clone(ring),
            width: None,
            height: None,
            stats: Arc::clone(stats),
        })
    }
}

/// One window's readings.
struct Window {
    /// CPU of this process, % of one core.
    cpu_pct: f64,
    /// Heap allocations counted.
    allocs: u64,
    /// Frames fed to the rings (all cameras).
    frames: u64,
    /// Seconds it lasted.
    secs: f64,
}

/// Runs the benchmark.
pub fn run(args: &ClipsArgs) -> anyhow::Result<()> {
    let dir = tempdir()?;
    let aus = clip(&dir, args)?;
    let key_every = aus.iter().filter(|a| a.1).count().max(1);
    describe_clip(aus.len(), key_every);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a tokio runtime")?;
    rt.block_on(measure(args, &dir, Arc::new(aus)))
}

/// Says what clip was made (stderr: stdout is the JSON line).
fn describe_clip(frames: usize, keyframes: usize) {
    eprintln!("clips: a {frames}-frame clip with {keyframes} keyframes, looped at 25 fps");
}

/// Baseline window, then the recording window; prints the JSON line.
async fn measure(
    args: &ClipsArgs,
    dir: &Path,
    aus: Arc<Vec<(Vec<u8>, bool)>>,
) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let mut rings = Vec::new();
    let mut writers = Vec::new();
    for i in 0..args.cameras {
        let (w, ring) = FrameRing::new(RingSpec {
            arena_bytes: 64 << 20,
            slots: 2048,
        })
        .context("a ring")?;
        let id = format!("cam{}", i + 1);
        rings.push((id.clone(), ring, Arc::new(StreamStats::new(id))));
        writers.push(w);
    }
    let clip_dir = dir.join("clips");
    let cfg = ClipsConfig {
        enabled: true,
        pre_s: 5,
        post_s: 1,
        max_s: 600,
        quota_bytes: 1 << 40,
        quota_count: 10_000,
        min_free_bytes: 0,
        ..ClipsConfig::default()
    };
    let store = Arc::new(ClipStore::open(clip_dir.clone(), cfg.clone()));
    let (view_tx, view_rx) = watch::channel(view(&rings, None));
    let lookup: Arc<dyn StreamLookup> = Arc::new(Rings(rings.clone()));
    let app_cfg = edgecam::config::Config {
        clips: cfg,
        ..Default::default()
    };
    let _manager = spawn_manager(&app_cfg, store, view_rx, lookup, Arc::clone(&clock));

    let fed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (fed, stop, clock, aus) = (
            Arc::clone(&fed),
            Arc::clone(&stop),
            Arc::clone(&clock),
            Arc::clone(&aus),
        );
        std::thread::spawn(move || feed(writers, &aus, &*clock, &fed, &stop))
    };
    // Warm-up: the rings fill with more than pre_s.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let window = Duration::from_secs(args.seconds);
    let base = sample_window(window, &fed).await?;
    view_tx.send_replace(view(&rings, Some(clock.wall_us())));
    // The pre-roll is written in the first second; the window measures steady recording.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bytes0 = dir_bytes(&clip_dir);
    let rec = sample_window(window, &fed).await?;
    let bytes1 = dir_bytes(&clip_dir);
    view_tx.send_replace(view(&rings, None));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = feeder.join();

    let n = args.cameras as f64;
    let per_stream_cpu = (rec.cpu_pct - base.cpu_pct) / n;
    let extra_allocs = rec.allocs as f64 - base.allocs as f64 * rec.secs / base.secs;
    let result = json!({
        "cameras": args.cameras,
        "picture": format!("{}x{}@25", args.width, args.height),
        "bitrate_kbps": args.bitrate,
        "window_s": args.seconds,
        "baseline_cpu_pct": round(base.cpu_pct),
        "recording_cpu_pct": round(rec.cpu_pct),
        "cpu_pct_per_recorded_stream": round(per_stream_cpu),
        "write_mib_s": round((bytes1.saturating_sub(bytes0)) as f64 / rec.secs / (1 << 20) as f64),
        "baseline_allocs_s": round(base.allocs as f64 / base.secs),
        "recording_allocs_s": round(rec.allocs as f64 / rec.secs),
        "extra_allocs_per_recorded_frame": round(extra_allocs / rec.frames.max(1) as f64),
        "frames_recorded": rec.frames,
        "load_avg": procfs::load_avg(),
    });
    println!("{result}");
    Ok(())
}

/// CPU and allocations of this process over `d`, and the frames fed meanwhile.
async fn sample_window(d: Duration, fed: &AtomicU64) -> anyhow::Result<Window> {
    let pid = std::process::id();
    let tck = procfs::clock_ticks();
    let (s0, f0, a0) = (
        procfs::sample(pid)?,
        fed.load(Ordering::Relaxed),
        ALLOCS.load(Ordering::Relaxed),
    );
    COUNTING.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(d).await;
    COUNTING.store(false, Ordering::Relaxed);
    let s1 = procfs::sample(pid)?;
    Ok(Window {
        cpu_pct: procfs::CpuShare::between(&[s0], &[s1], tck).total_pct(),
        allocs: ALLOCS.load(Ordering::Relaxed) - a0,
        frames: fed.load(Ordering::Relaxed) - f0,
        secs: t0.elapsed().as_secs_f64(),
    })
}

/// Every camera's alarm, raised at `raised` (wall µs) or idle.
fn view(rings: &[(String, Arc<FrameRing>, Arc<StreamStats>)], raised: Option<i64>) -> ActiveView {
    ActiveView {
        stream: rings.first().map(|r| r.0.clone()),
        reason: "default".into(),
        alarms: rings
            .iter()
            .map(|(id, _, _)| AlarmStatus {
                id: format!("alarm-{id}"),
                name: format!("Alarm {id}"),
                state: if raised.is_some() { "active" } else { "idle" },
                stream: id.clone(),
                since: raised,
                raised: u64::from(raised.is_some()),
                priority: 1,
                mode: "transparent",
                acknowledgeable: false,
            })
            .collect(),
        generation: u64::from(raised.is_some()) + 1,
    }
}

/// Pushes the clip's access units into every ring at 25 fps until `stop`, as ingest would.
fn feed(
    mut writers: Vec<RingWriter>,
    aus: &[(Vec<u8>, bool)],
    clock: &dyn Clock,
    fed: &AtomicU64,
    stop: &AtomicBool,
) {
    let start = Instant::now();
    let mut i: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let (au, key) = &aus[(i % aus.len() as u64) as usize];
        let info = FrameInfo {
            codec: Codec::H264,
            keyframe: *key,
            params_changed: i == 0,
            pts_us: i as i64 * 40_000,
            recv_mono_ns: clock.mono_ns(),
            recv_wall_us: clock.wall_us(),
            epoch: 1,
        };
        for w in &mut writers {
            let _ = w.push_frame(&info, &[au]);
            fed.fetch_add(1, Ordering::Relaxed);
        }
        i += 1;
        let due = start + Duration::from_micros(i * 40_000);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// Bytes in the files of `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A fresh directory under the system's temporary directory.
fn tempdir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("edgecam-bench-clips-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// A camera-like clip (testsrc2 with moving noise, libx264 veryfast at `bitrate`, a keyframe
/// every 2 s, access unit delimiters): its access units and which are keyframes.
fn clip(dir: &Path, args: &ClipsArgs) -> anyhow::Result<Vec<(Vec<u8>, bool)>> {
    let file = dir.join("camera.h264");
    let src = format!(
        "testsrc2=size={}x{}:rate=25,noise=alls=12:allf=t",
        args.width, args.height
    );
    let rate = format!("{}k", args.bitrate);
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &src,
        ])
        .args([
            "-t", "10", "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "50",
        ])
        // A camera's fixed GOP: no extra keyframes at the noise's scene cuts.
        .args(["-sc_threshold", "0"])
        .args(["-b:v", &rate, "-maxrate", &rate, "-bufsize", &rate])
        .args(["-x264-params", "aud=1", "-pix_fmt", "yuv420p", "-f", "h264"])
        .arg(&file)
        .output()
        .context("cannot run ffmpeg: install the Debian package ffmpeg")?;
    if !out.status.success() {
        bail!("ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let data = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(crate::declat::split_at_aud(&data)
        .into_iter()
        .map(|au| {
            let key = edgecam::codec::h264::is_keyframe(&au);
            (au, key)
        })
        .collect())
}

/// Two decimals.
fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
