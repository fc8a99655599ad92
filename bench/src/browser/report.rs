//! The browser benchmark's results: percentiles of the samples the page measured, the
//! issue's targets, a JSON document for `bench/results/` and a Markdown table for the README.

use crate::procfs::Machine;
use crate::report::write_results;
use crate::stats::Ranks;
use anyhow::{Context, bail};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Issue 5's targets, milliseconds at p95.
pub const TARGET_FIRST_FRAME_MS: f64 = 150.0;
/// Switch (a click) to the new stream painted.
pub const TARGET_SWITCH_MS: f64 = 100.0;
/// Alarm API call to the alarm's stream painted.
pub const TARGET_ALARM_MS: f64 = 150.0;
/// Ingest to paint in steady state, WebCodecs path.
pub const TARGET_INGEST_WEBCODECS_MS: f64 = 50.0;
/// Ingest to paint in steady state, JPEG path.
pub const TARGET_INGEST_JPEG_MS: f64 = 80.0;

/// Issue 16's targets for the MSE path (plain HTTP on the LAN), ms at p95: connect → first
/// frame.
pub const TARGET_MSE_FIRST_FRAME_MS: f64 = 200.0;
/// MSE: click → new camera painted (also used for the alarm, which issue 16 does not name).
pub const TARGET_MSE_SWITCH_MS: f64 = 150.0;
/// MSE: ingest → paint in steady state.
pub const TARGET_MSE_INGEST_MS: f64 = 150.0;
/// MSE: frames painted per second in steady state, at least.
pub const TARGET_MSE_FPS: f64 = 24.0;

/// The p95 targets of one path.
#[derive(Debug, Clone, Copy)]
pub struct Targets {
    /// Connect → first frame.
    pub first_frame: f64,
    /// Click → painted.
    pub switch: f64,
    /// Alarm API → painted.
    pub alarm: f64,
    /// Ingest → paint.
    pub ingest: f64,
    /// Painted frames per second in steady state, at least (none on the issue-5 paths).
    pub fps: Option<f64>,
}

impl Targets {
    /// Issue 5's targets with this path's ingest → paint.
    pub const fn issue5(ingest: f64) -> Targets {
        Targets {
            first_frame: TARGET_FIRST_FRAME_MS,
            switch: TARGET_SWITCH_MS,
            alarm: TARGET_ALARM_MS,
            ingest,
            fps: None,
        }
    }
    /// Issue 16's targets for MSE.
    pub const MSE: Targets = Targets {
        first_frame: TARGET_MSE_FIRST_FRAME_MS,
        switch: TARGET_MSE_SWITCH_MS,
        alarm: TARGET_MSE_SWITCH_MS,
        ingest: TARGET_MSE_INGEST_MS,
        fps: Some(TARGET_MSE_FPS),
    };
}

/// Percentiles of one metric, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Samples and their nearest-rank p50, p95 (the issue's targets are stated at p95), p99.
    #[serde(flatten)]
    pub ranks: Ranks,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Summary {
    /// Percentiles of `samples`; `None` when there are none (or any is not finite).
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let (v, ranks) = Ranks::of(samples)?;
        Some(Summary {
            ranks,
            min: v[0],
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        })
    }
}

/// One metric: its percentiles, its target and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// The percentiles.
    pub summary: Summary,
    /// The issue's p95 target, ms.
    pub target_p95_ms: f64,
    /// `summary.ranks.p95 < target_p95_ms`.
    pub met: bool,
}

impl Metric {
    fn new(samples: &[f64], target: f64, what: &str) -> anyhow::Result<Metric> {
        let Some(summary) = Summary::of(samples) else {
            bail!("no samples for {what}");
        };
        Ok(Metric {
            summary,
            target_p95_ms: target,
            met: summary.ranks.p95 < target,
        })
    }
}

/// Everything measured on one delivery path.
#[derive(Debug, Clone, Serialize)]
pub struct PathResult {
    /// Live WebSocket created to the first frame painted.
    pub first_frame: Metric,
    /// Click on a thumbnail to the first frame of that stream painted.
    pub switch: Metric,
    /// `POST /api/alarms/{id}/trigger` (from the page) to the alarm's stream painted.
    pub alarm: Metric,
    /// Receive wall time in the frame header to paint, every frame painted in steady state.
    pub ingest_to_paint: Metric,
    /// Page navigation start to first frame painted (page load, login check, connect): for
    /// reference, no target.
    pub first_frame_from_navigation: Option<Summary>,
    /// Frames painted per second in the steady-state window.
    pub steady_painted_fps: Option<f64>,
    /// The least painted frames per second this path must reach (MSE only).
    pub steady_fps_target: Option<f64>,
    /// `steady_painted_fps >= steady_fps_target` (null without a target).
    pub steady_fps_met: Option<bool>,
    /// The page's address (origin, path and query) as the bench loaded it.
    pub page: Option<String>,
    /// The page's `isSecureContext`.
    pub secure_context: Option<bool>,
    /// Frames the server skipped for this page (slow client).
    pub skipped: Option<u64>,
    /// The raw samples and the per-measurement breakdown the page recorded.
    pub raw: serde_json::Value,
}

impl PathResult {
    /// Reduces the script's raw samples for one path.
    pub fn from_raw(raw: &serde_json::Value, t: Targets) -> anyhow::Result<PathResult> {
        let samples = |key: &str| -> anyhow::Result<Vec<f64>> {
            raw[key]
                .as_array()
                .with_context(|| format!("the result has no `{key}` array"))?
                .iter()
                .map(|v| v.as_f64().with_context(|| format!("`{key}` holds {v}")))
                .collect()
        };
        Ok(PathResult {
            first_frame: Metric::new(&samples("first_frame_ms")?, t.first_frame, "first frame")?,
            switch: Metric::new(&samples("switch_ms")?, t.switch, "switch")?,
            alarm: Metric::new(&samples("alarm_ms")?, t.alarm, "alarm")?,
            ingest_to_paint: Metric::new(
                &samples("ingest_to_paint_ms")?,
                t.ingest,
                "ingest to paint",
            )?,
            first_frame_from_navigation: samples("first_frame_from_navigation_ms")
                .ok()
                .and_then(|s| Summary::of(&s)),
            steady_painted_fps: raw["steady_painted_fps"].as_f64(),
            steady_fps_target: t.fps,
            steady_fps_met: t
                .fps
                .map(|min| raw["steady_painted_fps"].as_f64().is_some_and(|f| f >= min)),
            page: raw["page"].as_str().map(str::to_string),
            secure_context: raw["secure_context"].as_bool(),
            skipped: raw["skipped"].as_u64(),
            raw: raw.clone(),
        })
    }

    fn all_met(&self) -> bool {
        [
            &self.first_frame,
            &self.switch,
            &self.alarm,
            &self.ingest_to_paint,
        ]
        .iter()
        .all(|m| m.met)
            && self.steady_fps_met != Some(false)
    }
}

/// The run's setting.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Test-pattern streams in the demo.
    pub streams: u32,
    /// Picture size, frame rate, bitrate and GOP of each demo stream.
    pub stream_format: String,
    /// Measurements per metric and path.
    pub iterations: u32,
    /// Length of the steady-state window, seconds.
    pub steady_s: u64,
    /// The daemon binary that served the page.
    pub edgecam_binary: String,
    /// Chromium's version as playwright reports it.
    pub chromium: Option<String>,
}

/// Everything one `edgecam-bench browser` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BrowserReport {
    /// Which benchmark produced the file.
    pub bench: &'static str,
    /// The edgecam package version the bench was built from.
    pub edgecam_version: &'static str,
    /// A free-form name for the run (`--label`), e.g. `before`.
    pub label: Option<String>,
    /// Start of the run, UTC.
    pub started_utc: String,
    /// The command that reproduces the run.
    pub command: String,
    /// The machine, so numbers from different boxes are never mixed up.
    pub machine: Machine,
    /// `/proc/loadavg` (1, 5, 15 min) when the run began: the machine's other work.
    pub load_avg_start: [f64; 3],
    /// `/proc/loadavg` when it ended.
    pub load_avg_end: [f64; 3],
    /// What ran.
    pub params: Params,
    /// H.264 access units decoded by the page with WebCodecs.
    pub webcodecs: PathResult,
    /// JPEG pictures from the server's shared decoder (`?mode=jpeg`).
    pub jpeg: PathResult,
    /// H.264 as fragmented MP4 through Media Source, the path the page chose by itself at
    /// `http://edgebox.test:PORT/` (plain HTTP, not a secure context); issue 16's targets.
    pub mse: PathResult,
    /// H.264 with WebCodecs again, from `https://edgebox.test:HTTPS_PORT/` with the box's own
    /// certificate accepted (a secure context): issue 16's WebCodecs-over-HTTPS row.
    pub webcodecs_lan: PathResult,
    /// Every metric of every path met its target.
    pub all_targets_met: bool,
}

impl BrowserReport {
    /// Assembles the report from the script's `RESULT` document.
    pub fn new(
        raw: &serde_json::Value,
        head: ReportHead,
        load_avg_end: [f64; 3],
    ) -> anyhow::Result<BrowserReport> {
        let webcodecs = PathResult::from_raw(
            &raw["webcodecs"],
            Targets::issue5(TARGET_INGEST_WEBCODECS_MS),
        )
        .context("webcodecs")?;
        let jpeg = PathResult::from_raw(&raw["jpeg"], Targets::issue5(TARGET_INGEST_JPEG_MS))
            .context("jpeg")?;
        let mse = PathResult::from_raw(&raw["mse"], Targets::MSE).context("mse")?;
        let webcodecs_lan = PathResult::from_raw(
            &raw["webcodecs_lan"],
            Targets::issue5(TARGET_INGEST_WEBCODECS_MS),
        )
        .context("webcodecs_lan")?;
        let mut params = head.params;
        params.chromium = raw["chromium"].as_str().map(str::to_string);
        Ok(BrowserReport {
            bench: "browser",
            edgecam_version: env!("CARGO_PKG_VERSION"),
            label: head.label,
            started_utc: head.started_utc,
            command: head.command,
            machine: head.machine,
            load_avg_start: head.load_avg_start,
            load_avg_end,
            params,
            all_targets_met: webcodecs.all_met()
                && jpeg.all_met()
                && mse.all_met()
                && webcodecs_lan.all_met(),
            webcodecs,
            jpeg,
            mse,
            webcodecs_lan,
        })
    }

    /// The results as a Markdown section: one row per path, p50 / p95 / p99 per metric.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let label = self
            .label
            .as_deref()
            .map_or(String::new(), |l| format!(" ({l})"));
        let _ = writeln!(
            md,
            "### Browser latency{label}: `edgecam demo --streams {}` ({}), one headless Chromium\n",
            self.params.streams, self.params.stream_format
        );
        let _ = writeln!(
            md,
            "Machine: `{}`, {} ({} cores), Linux {}; load average {:.2} / {:.2} / {:.2} at the \
             start, {:.2} / {:.2} / {:.2} at the end. Run {} (edgecam {}, Chromium {}). {} \
             measurements per cell, steady state {} s; milliseconds, p50 / p95 / p99.\n",
            self.machine.host,
            self.machine.cpu_model,
            self.machine.cores,
            self.machine.kernel,
            self.load_avg_start[0],
            self.load_avg_start[1],
            self.load_avg_start[2],
            self.load_avg_end[0],
            self.load_avg_end[1],
            self.load_avg_end[2],
            self.started_utc,
            self.edgecam_version,
            self.params.chromium.as_deref().unwrap_or("?"),
            self.params.iterations,
            self.params.steady_s,
        );
        let _ = writeln!(
            md,
            "| path | page | connect → first frame | click → painted | alarm API → painted | \
             ingest → paint | painted fps |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|");
        for (name, p) in self.paths() {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} | {} | {} |",
                p.page.as_deref().map_or("?".into(), |u| format!("`{u}`")),
                cell(&p.first_frame),
                cell(&p.switch),
                cell(&p.alarm),
                cell(&p.ingest_to_paint),
                fps_cell(p),
            );
        }
        let _ = writeln!(
            md,
            "| target (p95), issue 5 | | < {TARGET_FIRST_FRAME_MS:.0} | < {TARGET_SWITCH_MS:.0} | \
             < {TARGET_ALARM_MS:.0} | < {TARGET_INGEST_WEBCODECS_MS:.0} (WebCodecs), \
             < {TARGET_INGEST_JPEG_MS:.0} (JPEG) | |"
        );
        let _ = writeln!(
            md,
            "| target (p95), issue 16: MSE | | < {TARGET_MSE_FIRST_FRAME_MS:.0} | \
             < {TARGET_MSE_SWITCH_MS:.0} | < {TARGET_MSE_SWITCH_MS:.0} | \
             < {TARGET_MSE_INGEST_MS:.0} | >= {TARGET_MSE_FPS:.0} |"
        );
        let nav: Vec<String> = self
            .paths()
            .iter()
            .map(|(n, p)| {
                format!(
                    "{} ms ({n})",
                    opt(p.first_frame_from_navigation.map(|s| s.ranks.p50), 0)
                )
            })
            .collect();
        let skipped: Vec<String> = self
            .paths()
            .iter()
            .map(|(n, p)| format!("{} ({n})", p.skipped.map_or("?".into(), |s| s.to_string())))
            .collect();
        let _ = writeln!(
            md,
            "\nA p95 (or a frame rate) in **bold** meets its target; the MSE row's alarm target \
             is its click target (issue 16 names none). Secure context: {}. Frames skipped by \
             the server: {}. Page navigation → first frame (page load and login check \
             included), p50: {}.",
            self.paths()
                .iter()
                .map(|(n, p)| format!(
                    "{} ({n})",
                    p.secure_context.map_or("?".into(), |b| b.to_string())
                ))
                .collect::<Vec<_>>()
                .join(", "),
            skipped.join(", "),
            nav.join(", "),
        );
        let _ = writeln!(md, "\nCommand: `{}`", self.command);
        md
    }

    /// The paths in table order, with their row names.
    fn paths(&self) -> [(&'static str, &PathResult); 4] {
        [
            ("WebCodecs (H.264)", &self.webcodecs),
            ("JPEG", &self.jpeg),
            ("MSE (plain HTTP)", &self.mse),
            ("WebCodecs (HTTPS, LAN name)", &self.webcodecs_lan),
        ]
    }

    /// Writes `browser-<date>-<host>[-<label>].json` (a `-2`, `-3` ... suffix keeps earlier
    /// runs) and `browser-latest.md` into `dir`; returns both paths.
    pub fn write(&self, dir: &Path, date: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        let mut stem = format!("browser-{date}-{}", self.machine.host);
        if let Some(l) = &self.label {
            stem = format!("{stem}-{l}");
        }
        write_results(dir, &stem, "browser-latest.md", self, &self.markdown())
    }
}

/// What is known before the browser runs.
#[derive(Debug, Clone)]
pub struct ReportHead {
    /// `--label`.
    pub label: Option<String>,
    /// Start time, UTC.
    pub started_utc: String,
    /// The reproducing command.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// Load average at the start.
    pub load_avg_start: [f64; 3],
    /// The setting.
    pub params: Params,
}

/// `p50 / p95 / p99`, the p95 in bold when it meets the target.
fn cell(m: &Metric) -> String {
    let s = &m.summary.ranks;
    let p95 = if m.met {
        format!("**{:.0}**", s.p95)
    } else {
        format!("{:.0}", s.p95)
    };
    format!("{:.0} / {p95} / {:.0}", s.p50, s.p99)
}

/// Painted frames per second, in bold when it meets a target.
fn fps_cell(p: &PathResult) -> String {
    let v = opt(p.steady_painted_fps, 1);
    if p.steady_fps_met == Some(true) {
        format!("**{v}**")
    } else {
        v
    }
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("?".to_string(), |v| format!("{v:.prec$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Summary::of(&v).unwrap();
        assert_eq!((s.ranks.n, s.ranks.p50, s.ranks.p95), (100, 50.0, 95.0));
        assert_eq!((s.min, s.max, s.mean), (1.0, 100.0, 50.5));
        let s = Summary::of(&[7.0, 3.0]).unwrap();
        assert_eq!(
            (s.ranks.p50, s.ranks.p99, s.min, s.max),
            (3.0, 7.0, 3.0, 7.0)
        );
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }

    fn raw_path(first: f64, ingest: f64) -> serde_json::Value {
        serde_json::json!({
            "first_frame_ms": [first, first / 2.0],
            "first_frame_from_navigation_ms": [300.0],
            "switch_ms": [40.0, 60.0],
            "alarm_ms": [70.0],
            "ingest_to_paint_ms": [ingest, 5.0, 6.0],
            "steady_painted_fps": 25.0,
            "skipped": 0,
            "page": "http://127.0.0.1:1/",
            "secure_context": true,
        })
    }

    fn head() -> ReportHead {
        ReportHead {
            label: Some("after".into()),
            started_utc: "2026-11-21T19:00:00Z".into(),
            command: "edgecam-bench browser".into(),
            machine: Machine {
                host: "box".into(),
                cpu_model: "cpu".into(),
                cores: 2,
                kernel: "6.1".into(),
            },
            load_avg_start: [1.0, 2.0, 3.0],
            params: Params {
                streams: 4,
                stream_format: "640x360".into(),
                iterations: 2,
                steady_s: 10,
                edgecam_binary: "edgecam".into(),
                chromium: None,
            },
        }
    }

    /// WebCodecs within every target, JPEG missing first frame and ingest to paint.
    fn report() -> BrowserReport {
        let raw = serde_json::json!({
            "chromium": "156",
            "webcodecs": raw_path(100.0, 20.0),
            "jpeg": raw_path(200.0, 90.0),
            "mse": raw_path(180.0, 120.0),
            "webcodecs_lan": raw_path(110.0, 25.0),
        });
        BrowserReport::new(&raw, head(), [4.0, 5.0, 6.0]).unwrap()
    }

    #[test]
    fn targets_are_judged_per_path_and_shown_in_the_table() {
        let r = report();
        assert!(r.webcodecs.first_frame.met && r.webcodecs.ingest_to_paint.met);
        assert!(!r.jpeg.first_frame.met, "200 ms misses the 150 ms target");
        assert!(
            !r.jpeg.ingest_to_paint.met,
            "90 ms misses the 80 ms JPEG target"
        );
        assert!(!r.all_targets_met);
        assert_eq!(r.params.chromium.as_deref(), Some("156"));
        let md = r.markdown();
        assert!(
            md.contains("| WebCodecs (H.264) | `http://127.0.0.1:1/` | 50 / **100** / 100 |"),
            "{md}"
        );
        assert!(md.contains("| 100 / 200 / 200 |"), "{md}");
        // MSE: 180 ms meets its 200 ms first-frame target, 120 ms its 150 ms ingest target,
        // 25 fps its 24 fps floor.
        assert!(r.mse.first_frame.met && r.mse.ingest_to_paint.met, "{md}");
        assert_eq!(r.mse.steady_fps_met, Some(true));
        assert_eq!(r.webcodecs.steady_fps_met, None);
        assert!(r.webcodecs_lan.all_met(), "{md}");
        assert!(
            md.contains(
                "| WebCodecs (HTTPS, LAN name) | `http://127.0.0.1:1/` | 55 / **110** / 110 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 90 / **180** / 180 |") && md.contains("| **25.0** |"),
            "{md}"
        );
        assert!(
            md.contains("load average 1.00 / 2.00 / 3.00 at the start"),
            "{md}"
        );
    }

    #[test]
    fn the_document_keeps_the_layout_of_the_results_of_record() {
        let ours = serde_json::to_value(report()).unwrap();
        let diff = crate::report::record::layout_differences(&ours, "browser");
        assert!(diff.is_empty(), "{diff:#?}");
        assert_eq!(ours["webcodecs"]["switch"]["summary"]["p95"], 60.0);
        assert_eq!(ours["webcodecs"]["switch"]["summary"]["min"], 40.0);
    }

    #[test]
    fn an_mse_row_below_24_fps_misses_its_target() {
        let mut raw = serde_json::json!({
            "webcodecs": raw_path(100.0, 20.0),
            "jpeg": raw_path(100.0, 20.0),
            "mse": raw_path(100.0, 20.0),
            "webcodecs_lan": raw_path(100.0, 20.0),
        });
        raw["mse"]["steady_painted_fps"] = serde_json::json!(20.0);
        let r = BrowserReport::new(&raw, head(), [0.0; 3]).unwrap();
        assert_eq!(r.mse.steady_fps_met, Some(false));
        assert!(r.webcodecs.all_met() && !r.mse.all_met() && !r.all_targets_met);
    }

    #[test]
    fn a_path_without_samples_is_an_error() {
        let mut p = raw_path(100.0, 20.0);
        p["switch_ms"] = serde_json::json!([]);
        let raw = serde_json::json!({
            "webcodecs": p,
            "jpeg": raw_path(1.0, 1.0),
            "mse": raw_path(1.0, 1.0),
            "webcodecs_lan": raw_path(1.0, 1.0),
        });
        let e = BrowserReport::new(&raw, head(), [0.0; 3]).unwrap_err();
        assert!(format!("{e:#}").contains("no samples for switch"), "{e:#}");
    }
}
