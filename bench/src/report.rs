//! The ingest benchmark's results: a JSON document (machine-readable, kept under
//! `bench/results/`) and a Markdown table for the README.

use crate::procfs::{CpuShare, Machine, ProcSample};
use crate::rates::{StreamRate, mean_fps, mean_kbps};
use crate::stats::Usage;
use anyhow::Context;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Issue 3's target: ingest costs at most this much of one core per 1080p25 stream.
pub const TARGET_MAX_PCT_PER_STREAM: f64 = 0.5;
/// Issue 3's target: ingest costs at least this many times less CPU than decoding everything.
pub const TARGET_MIN_RATIO: f64 = 30.0;

/// Everything one `edgecam-bench ingest` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    /// Which benchmark produced the file.
    pub bench: &'static str,
    /// The edgecam package version the bench was built from.
    pub edgecam_version: &'static str,
    /// Start of the run, UTC.
    pub started_utc: String,
    /// The command that reproduces the run.
    pub command: String,
    /// The machine, so numbers from different boxes are never mixed up.
    pub machine: Machine,
    /// Clock ticks per second used to convert `/proc` CPU times.
    pub clk_tck: u64,
    /// What was streamed, and for how long.
    pub params: Params,
    /// The daemon ingesting every stream into its rings, with no viewer.
    pub edgecam: Measured,
    /// One `ffmpeg -f null` full decoder per stream: what OpenCV-style stream managers cost.
    pub ffmpeg: Measured,
    /// ffmpeg CPU / edgecam CPU.
    pub ratio: f64,
    /// The same ratio per frame actually handled, which stays fair if a starved decoder fell
    /// behind real time; `None` when frame rates are unknown.
    pub ratio_per_frame: Option<f64>,
    /// The targets and whether this run met them.
    pub targets: Targets,
}

/// The streams and the measurement plan.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// RTSP streams, each on its own mount.
    pub streams: u32,
    /// Length of each measured window, seconds.
    pub seconds: u64,
    /// Seconds each side ran, after all its streams delivered frames, before measuring.
    pub warmup_s: u64,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames per second served.
    pub fps: u32,
    /// Encoder bitrate of the served clip, kbit/s.
    pub bitrate_kbps: u32,
    /// Length of the pre-encoded clip the server loops, seconds.
    pub clip_seconds: u32,
    /// H.264 profile of the served clip.
    pub profile: String,
    /// The daemon's ring payload arena per stream (its largest memory item), bytes.
    pub ring_bytes_per_stream: u64,
}

/// CPU, memory and rates of one side (the daemon, or all the decoders together).
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// CPU and memory of the side's processes (1 daemon, or one ffmpeg per stream).
    #[serde(flatten)]
    pub usage: Usage,
    /// Mean frames per second per stream during the window.
    pub mean_fps: Option<f64>,
    /// Mean received kbit/s per stream (daemon only).
    pub mean_kbps: Option<f64>,
    /// Stream reconnects (daemon) or decoder exits (ffmpeg) during the window.
    pub restarts: usize,
    /// Per-stream rates.
    pub streams: Vec<StreamRate>,
    /// The RTSP server's own CPU during the same window, % of one core: it shares the machine.
    pub server_cpu_pct: f64,
    /// `/proc/loadavg` (1, 5, 15 min) when the window began: other work on the machine.
    pub load_avg_start: [f64; 3],
    /// `/proc/loadavg` when the window ended.
    pub load_avg_end: [f64; 3],
}

/// The samples and readings one side produced, before they are reduced to a [`Measured`].
pub struct Window {
    /// Processes under test at the start of the window.
    pub start: Vec<ProcSample>,
    /// The same processes at the end, in the same order.
    pub end: Vec<ProcSample>,
    /// The RTSP server at the start and end.
    pub server: (ProcSample, ProcSample),
    /// Load average at start and end.
    pub load: ([f64; 3], [f64; 3]),
    /// Per-stream rates.
    pub streams: Vec<StreamRate>,
    /// Reconnects or exits.
    pub restarts: usize,
}

impl Measured {
    /// Reduces a window's samples; `streams` is the number of camera streams served.
    pub fn from_window(w: Window, streams: u32, tck: u64) -> Measured {
        Measured {
            usage: Usage::between(&w.start, &w.end, streams, tck),
            mean_fps: mean_fps(&w.streams),
            mean_kbps: mean_kbps(&w.streams),
            restarts: w.restarts,
            streams: w.streams,
            server_cpu_pct: CpuShare::between(&[w.server.0], &[w.server.1], tck).total_pct(),
            load_avg_start: w.load.0,
            load_avg_end: w.load.1,
        }
    }

    /// CPU (% of one core) per frame per second handled, or `None` without frame rates.
    fn cpu_per_fps(&self) -> Option<f64> {
        let total_fps: f64 = self.streams.iter().filter_map(|s| s.fps).sum();
        (total_fps > 0.0).then(|| self.usage.cpu_pct / total_fps)
    }
}

/// The targets and this run's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Targets {
    /// Most CPU per stream allowed for ingest, % of one core.
    pub max_pct_per_stream: f64,
    /// Least ffmpeg/edgecam CPU ratio required.
    pub min_ratio: f64,
    /// Whether ingest stayed within `max_pct_per_stream`.
    pub per_stream_met: bool,
    /// Whether the ratio reached `min_ratio`.
    pub ratio_met: bool,
}

impl IngestReport {
    /// Compares the two sides and judges the targets.
    pub fn new(
        started_utc: String,
        machine: Machine,
        clk_tck: u64,
        params: Params,
        edgecam: Measured,
        ffmpeg: Measured,
    ) -> IngestReport {
        let ratio = ffmpeg.usage.cpu_pct / edgecam.usage.cpu_pct.max(f64::EPSILON);
        let ratio_per_frame = match (ffmpeg.cpu_per_fps(), edgecam.cpu_per_fps()) {
            (Some(f), Some(e)) if e > 0.0 => Some(f / e),
            _ => None,
        };
        let targets = Targets {
            max_pct_per_stream: TARGET_MAX_PCT_PER_STREAM,
            min_ratio: TARGET_MIN_RATIO,
            per_stream_met: edgecam.usage.cpu_pct_per_stream <= TARGET_MAX_PCT_PER_STREAM,
            ratio_met: ratio >= TARGET_MIN_RATIO,
        };
        IngestReport {
            bench: "ingest",
            edgecam_version: env!("CARGO_PKG_VERSION"),
            started_utc,
            command: command_line(&params),
            machine,
            clk_tck,
            params,
            edgecam,
            ffmpeg,
            ratio,
            ratio_per_frame,
            targets,
        }
    }

    /// The results as a Markdown section: the comparison table, per-stream rates, verdict.
    pub fn markdown(&self) -> String {
        let p = &self.params;
        let (e, f) = (&self.edgecam, &self.ffmpeg);
        let opt =
            |v: Option<f64>, prec: usize| v.map_or("n/a".to_string(), |v| format!("{v:.prec$}"));
        let mut md = String::new();
        let _ = writeln!(
            md,
            "### Ingest: {} x {}x{} @ {} fps, {} kbit/s H.264 {} profile, {} s window\n",
            p.streams, p.width, p.height, p.fps, p.bitrate_kbps, p.profile, p.seconds
        );
        let _ = writeln!(
            md,
            "Machine: `{}`, {} ({} cores), Linux {}. Run {} (edgecam {}).\n",
            self.machine.host,
            self.machine.cpu_model,
            self.machine.cores,
            self.machine.kernel,
            self.started_utc,
            self.edgecam_version
        );
        let mut row = |name: &str, a: String, b: String| {
            let _ = writeln!(md, "| {name} | {a} | {b} |");
        };
        row("", "edgecam ingest".into(), "ffmpeg decode-all".into());
        row("---", "---:".into(), "---:".into());
        row(
            "CPU, % of one core",
            format!("{:.2}", e.usage.cpu_pct),
            format!("{:.1}", f.usage.cpu_pct),
        );
        row(
            "CPU per stream, % of one core",
            format!("**{:.3}**", e.usage.cpu_pct_per_stream),
            format!("**{:.2}**", f.usage.cpu_pct_per_stream),
        );
        row(
            "of which user / kernel",
            format!(
                "{:.2} / {:.2}",
                e.usage.cpu.user_pct, e.usage.cpu.system_pct
            ),
            format!(
                "{:.1} / {:.1}",
                f.usage.cpu.user_pct, f.usage.cpu.system_pct
            ),
        );
        row(
            "RSS, MiB (end of window / peak)",
            format!("{:.1} / {:.1}", e.usage.rss_mib, e.usage.rss_peak_mib),
            format!(
                "{:.1} / {:.1} ({} processes)",
                f.usage.rss_mib, f.usage.rss_peak_mib, f.usage.processes
            ),
        );
        row(
            "frames/s per stream (mean)",
            opt(e.mean_fps, 2),
            opt(f.mean_fps, 2),
        );
        row(
            "received kbit/s per stream (mean)",
            opt(e.mean_kbps, 0),
            "n/a".into(),
        );
        row(
            "reconnects / decoder exits in window",
            e.restarts.to_string(),
            f.restarts.to_string(),
        );
        row(
            "RTSP server CPU, % of one core",
            format!("{:.1}", e.server_cpu_pct),
            format!("{:.1}", f.server_cpu_pct),
        );
        row(
            "load average (1 min) start / end",
            format!("{:.2} / {:.2}", e.load_avg_start[0], e.load_avg_end[0]),
            format!("{:.2} / {:.2}", f.load_avg_start[0], f.load_avg_end[0]),
        );
        let verdict = |met: bool| if met { "met" } else { "NOT met" };
        let _ = writeln!(
            md,
            "\nffmpeg / edgecam CPU: **{:.0}x** (per frame handled: {}). Targets: at most {} % of \
             one core per stream: {} ({:.3}); at least {:.0}x less CPU than decode-all: {}.\n",
            self.ratio,
            self.ratio_per_frame
                .map_or("n/a".to_string(), |r| format!("{r:.0}x")),
            self.targets.max_pct_per_stream,
            verdict(self.targets.per_stream_met),
            e.usage.cpu_pct_per_stream,
            self.targets.min_ratio,
            verdict(self.targets.ratio_met),
        );
        let _ = writeln!(
            md,
            "| stream | edgecam fps | edgecam kbit/s | ring overwritten (wrapped) | ffmpeg fps |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|");
        for s in &e.streams {
            let dec = f.streams.iter().find(|d| d.id == s.id).and_then(|d| d.fps);
            let wrapped = s
                .ring_overwritten
                .map_or("n/a".to_string(), |n| n.to_string());
            let _ = writeln!(
                md,
                "| {} | {} | {} | {wrapped} | {} |",
                s.id,
                opt(s.fps, 2),
                opt(s.kbps, 0),
                opt(dec, 2)
            );
        }
        let _ = writeln!(md, "\nCommand: `{}`", self.command);
        md
    }

    /// Writes `ingest-<date>-<host>.json` (a `-2`, `-3` ... suffix keeps earlier runs of
    /// the same day) and `ingest-latest.md` into `dir`; returns the JSON path.
    pub fn write(&self, dir: &Path, date: &str) -> anyhow::Result<PathBuf> {
        let stem = format!("ingest-{date}-{}", self.machine.host);
        let (json_path, _) = write_results(dir, &stem, "ingest-latest.md", self, &self.markdown())?;
        Ok(json_path)
    }
}

/// What a whole-process benchmark's document starts with (flattened into it): which
/// benchmark, which build, when, where, and how loaded the shared machine was.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// The benchmark (`e2e`, `impair`).
    pub bench: &'static str,
    /// edgecam version built.
    pub edgecam_version: &'static str,
    /// Start, UTC.
    pub started_utc: String,
    /// The machine.
    pub machine: Machine,
    /// Load average (1, 5, 15 min) at the start: the machine is shared.
    pub load_avg_start: [f64; 3],
    /// Load average at the end.
    pub load_avg_end: [f64; 3],
}

impl RunInfo {
    /// The header of a run of `bench` that started at `started_utc` under `load_avg_start`
    /// and ends now.
    pub fn ending_now(bench: &'static str, started_utc: String, load_avg_start: [f64; 3]) -> Self {
        RunInfo {
            bench,
            edgecam_version: env!("CARGO_PKG_VERSION"),
            started_utc,
            machine: Machine::detect(),
            load_avg_start,
            load_avg_end: crate::procfs::load_avg(),
        }
    }
}

/// Writes `doc` as `<stem>.json` into `dir` (`<stem>-2.json`, `-3` ... when that exists: a
/// result of record is never overwritten) and `markdown` as `latest`; returns both paths.
pub fn write_results(
    dir: &Path,
    stem: &str,
    latest: &str,
    doc: &impl Serialize,
    markdown: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json_path = (1..)
        .map(|n| match n {
            1 => dir.join(format!("{stem}.json")),
            n => dir.join(format!("{stem}-{n}.json")),
        })
        .find(|p| !p.exists())
        .context("no free results file name")?;
    std::fs::write(&json_path, serde_json::to_string_pretty(doc)? + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let md_path = dir.join(latest);
    std::fs::write(&md_path, markdown)
        .with_context(|| format!("cannot write {}", md_path.display()))?;
    Ok((json_path, md_path))
}

/// Prints `doc` as JSON, a blank line and `markdown` on stdout, then writes both into `dir`
/// ([`write_results`]) and says where on stderr.
pub fn publish(
    dir: &Path,
    stem: &str,
    latest: &str,
    doc: &impl Serialize,
    markdown: &str,
) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(doc)?);
    println!();
    print!("{markdown}");
    let (json, md) = write_results(dir, stem, latest, doc, markdown)?;
    eprintln!("\nwrote {} and {}", json.display(), md.display());
    Ok(())
}

/// The command that reproduces a run with these parameters.
fn command_line(p: &Params) -> String {
    format!(
        "cargo run --release -p edgecam-bench -- ingest --streams {} --seconds {} --width {} \
         --height {} --fps {} --bitrate {}",
        p.streams, p.seconds, p.width, p.height, p.fps, p.bitrate_kbps
    )
}

/// Test support: the JSON layout of the results of record in `bench/results/`, which a run's
/// document must keep (field names and nesting) so that old and new runs compare.
#[cfg(test)]
pub(crate) mod record {
    use serde_json::Value;

    /// The differences between the layout of `ours` and that of the latest `<kind>-*.json`
    /// result of record (by `started_utc`; earlier runs may predate a field), one line each;
    /// empty when they agree. A null (a measurement not taken) or an empty list on either side
    /// matches anything; `raw` (a browser page's own data) is not compared.
    pub fn layout_differences(ours: &Value, kind: &str) -> Vec<String> {
        let dir = crate::bench_dir().join("results");
        let latest = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with(&format!("{kind}-")) && name.ends_with(".json")
            })
            .map(|p| {
                let doc: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                (
                    doc["started_utc"].as_str().unwrap_or_default().to_string(),
                    p,
                    doc,
                )
            })
            .max_by(|a, b| a.0.cmp(&b.0));
        let Some((_, path, record)) = latest else {
            panic!("no {kind}-*.json in {}", dir.display());
        };
        let mut out = Vec::new();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        walk(ours, &record, &name, &mut out);
        out
    }

    fn walk(ours: &Value, record: &Value, at: &str, out: &mut Vec<String>) {
        match (ours, record) {
            (Value::Object(a), Value::Object(b)) => {
                for k in a.keys().filter(|k| !b.contains_key(*k)) {
                    out.push(format!("{at}: `{k}` is new"));
                }
                for k in b.keys().filter(|k| !a.contains_key(*k)) {
                    out.push(format!("{at}: `{k}` is gone"));
                }
                for (k, v) in a.iter().filter(|(k, _)| *k != "raw") {
                    if let Some(w) = b.get(k) {
                        walk(v, w, &format!("{at}.{k}"), out);
                    }
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                if let (Some(v), Some(w)) = (a.first(), b.first()) {
                    walk(v, w, &format!("{at}[0]"), out);
                }
            }
            (Value::Null, _) | (_, Value::Null) => {}
            (a, b) if std::mem::discriminant(a) == std::mem::discriminant(b) => {}
            (a, b) => out.push(format!("{at}: {a} here, {b} in the record")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn sample(at: Instant, ticks: u64, rss_kib: u64) -> ProcSample {
        ProcSample {
            at,
            utime: ticks,
            stime: ticks / 2,
            rss_kib,
            hwm_kib: rss_kib * 2,
        }
    }

    fn side(t0: Instant, ticks_per_proc: u64, procs: usize, fps: f64) -> Measured {
        let t1 = t0 + Duration::from_secs(10);
        let start: Vec<_> = (0..procs).map(|_| sample(t0, 0, 0)).collect();
        let end: Vec<_> = (0..procs)
            .map(|_| sample(t1, ticks_per_proc, 1024))
            .collect();
        let streams = (0..2)
            .map(|i| StreamRate {
                id: format!("cam{i}"),
                fps: Some(fps),
                kbps: None,
                span_s: Some(10.0),
                ring_overwritten: None,
            })
            .collect();
        Measured::from_window(
            Window {
                start,
                end,
                server: (sample(t0, 0, 0), sample(t1, 10, 0)),
                load: ([1.0; 3], [2.0; 3]),
                streams,
                restarts: 0,
            },
            2,
            100,
        )
    }

    fn machine() -> Machine {
        Machine {
            host: "box".into(),
            cpu_model: "cpu".into(),
            cores: 2,
            kernel: "6.1".into(),
        }
    }

    fn params() -> Params {
        Params {
            streams: 2,
            seconds: 10,
            warmup_s: 5,
            width: 1920,
            height: 1080,
            fps: 25,
            bitrate_kbps: 4000,
            clip_seconds: 4,
            profile: "high".to_string(),
            ring_bytes_per_stream: 1 << 24,
        }
    }

    #[test]
    fn ratio_and_targets_follow_the_measurements() {
        let t0 = Instant::now();
        // edgecam: one process, 6 + 3 ticks in 10 s = 0.9 % of one core, 0.45 % per stream.
        let e = side(t0, 6, 1, 25.0);
        let u = &e.usage;
        assert!((u.cpu_pct - 0.9).abs() < 1e-9, "{e:?}");
        assert!((u.cpu_pct_per_stream - 0.45).abs() < 1e-9);
        assert!((u.rss_mib - 1.0).abs() < 1e-9 && (u.rss_peak_mib - 2.0).abs() < 1e-9);
        // ffmpeg: two processes at 100 + 50 ticks each = 30 % of one core, decoding at half speed.
        let f = side(t0, 100, 2, 12.5);
        assert!((f.usage.cpu_pct - 30.0).abs() < 1e-9);
        let r = IngestReport::new("now".into(), machine(), 100, params(), e, f);
        assert!((r.ratio - 30.0 / 0.9).abs() < 1e-9);
        // Per frame, the starved decoder is twice as expensive again.
        assert!((r.ratio_per_frame.unwrap() - 2.0 * 30.0 / 0.9).abs() < 1e-6);
        assert!(r.targets.per_stream_met && r.targets.ratio_met);
        let md = r.markdown();
        assert!(
            md.contains("| CPU per stream, % of one core | **0.450** | **15.00** |"),
            "{md}"
        );
        assert!(md.contains("**33x**"), "{md}");
    }

    #[test]
    fn a_costly_ingest_misses_the_targets() {
        let t0 = Instant::now();
        let e = side(t0, 100, 1, 25.0); // 15 % of one core: 7.5 % per stream
        let f = side(t0, 100, 2, 25.0);
        let r = IngestReport::new("now".into(), machine(), 100, params(), e, f);
        assert!(!r.targets.per_stream_met && !r.targets.ratio_met);
        assert!(r.markdown().contains("NOT met"));
    }

    #[test]
    fn the_document_keeps_the_layout_of_the_results_of_record() {
        let t0 = Instant::now();
        let (e, f) = (side(t0, 6, 1, 25.0), side(t0, 100, 2, 25.0));
        let r = IngestReport::new("now".into(), machine(), 100, params(), e, f);
        let ours = serde_json::to_value(&r).unwrap();
        let diff = record::layout_differences(&ours, "ingest");
        assert!(diff.is_empty(), "{diff:#?}");
        // The window's CPU and memory sit beside the rates, as before `Usage` was shared.
        assert!(ours["edgecam"]["cpu_pct"].is_f64() && ours["ffmpeg"]["restarts"].is_u64());
        assert!(ours["edgecam"].get("rss_spread_mib").is_none());
    }

    #[test]
    fn results_files_never_overwrite_an_earlier_run() {
        let dir = std::env::temp_dir().join(format!("edgecam-bench-test-{}", std::process::id()));
        let t0 = Instant::now();
        let r = IngestReport::new(
            "now".into(),
            machine(),
            100,
            params(),
            side(t0, 6, 1, 25.0),
            side(t0, 100, 2, 25.0),
        );
        let first = r.write(&dir, "2026-11-21").unwrap();
        let second = r.write(&dir, "2026-11-21").unwrap();
        assert!(first.ends_with("ingest-2026-11-21-box.json"));
        assert!(second.ends_with("ingest-2026-11-21-box-2.json"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
        assert_eq!(json["bench"], "ingest");
        assert_eq!(json["params"]["streams"], 2);
        assert!(dir.join("ingest-latest.md").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
