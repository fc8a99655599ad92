//! The results of `edgecam-bench impair`: the JSON document and the Markdown table, and the
//! verdict on the targets.

use crate::report::RunInfo;
use serde::Serialize;
use std::fmt::Write as _;

/// Longest gap on the viewer allowed under jitter and loss, and longest time from the
/// camera's return to the viewer's first frame (issue 15's targets), ms.
const TARGET_MS: f64 = 1000.0;

/// One run of the benchmark.
#[derive(Debug, Serialize)]
pub struct ImpairReport {
    /// Which benchmark, build, machine and load.
    #[serde(flatten)]
    pub run: RunInfo,
    /// The options.
    pub params: ImpairParams,
    /// One entry per scenario, in the order run.
    pub scenarios: Vec<ScenarioResult>,
}

/// The options of the run.
#[derive(Debug, Serialize)]
pub struct ImpairParams {
    /// Window of the scenarios without events, s.
    pub seconds: u64,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Encoder bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Length of the looped clip, s.
    pub clip_seconds: u32,
    /// Length of each outage, s.
    pub outage_s: u64,
    /// Outages in the outage scenario.
    pub outages: u32,
}

/// What one scenario measured.
#[derive(Debug, Serialize)]
pub struct ScenarioResult {
    /// Its name.
    pub name: String,
    /// The impaired camera's RTSP transport.
    pub transport: String,
    /// What the relay did.
    pub impairment: String,
    /// Length of the measured window, s.
    pub window_s: f64,
    /// Frames the viewer received in the window.
    pub viewer_frames: usize,
    /// The same per second.
    pub viewer_fps: f64,
    /// Longest time without a frame on the viewer, ms (window edges count).
    pub longest_gap_ms: f64,
    /// The same leaving out the gaps in which an outage or stall began; `None` without any.
    pub longest_gap_between_events_ms: Option<f64>,
    /// Attempts of the impaired stream that ended in the window.
    pub reconnects: usize,
    /// One per outage: how fast it came back.
    pub recoveries: Vec<Recovery>,
    /// Frames per second the daemon ingested from the impaired camera.
    pub ingest_fps: Option<f64>,
    /// The unimpaired streams' ingest rates.
    pub others: Vec<OtherStream>,
    /// What the relay counted.
    pub relay: RelayCounts,
    /// The daemon's CPU over the window, % of one core.
    pub daemon_cpu_pct: f64,
    /// 1-minute load average at the scenario's start and end.
    pub load_avg_1m: [f64; 2],
}

/// The return after one outage, ms from the moment the camera's port accepted again.
#[derive(Debug, Serialize)]
pub struct Recovery {
    /// How long the camera was gone, s.
    pub outage_s: f64,
    /// To the daemon's `rtsp session playing` (connected, set up, playing).
    pub session_ms: Option<f64>,
    /// To `stream live` (first stored frame: the first keyframe of the session).
    pub live_ms: Option<f64>,
    /// To the viewer's first frame.
    pub viewer_ms: Option<f64>,
}

/// An unimpaired stream.
#[derive(Debug, Serialize)]
pub struct OtherStream {
    /// Its id.
    pub id: String,
    /// What it is.
    pub kind: String,
    /// Frames per second ingested in the window.
    pub fps: Option<f64>,
}

/// The relay's counters for the scenario.
#[derive(Debug, Serialize)]
pub struct RelayCounts {
    /// TCP connections the daemon made through it.
    pub connections: u64,
    /// UDP flows it relayed.
    pub udp_flows: u64,
    /// Control-connection traffic to the daemon (interleaved RTP with TCP), Mbit.
    pub tcp_mbit_down: f64,
    /// Datagrams delivered to the daemon.
    pub datagrams_down: u64,
    /// Datagrams lost by the draw.
    pub datagrams_lost: u64,
    /// Datagrams dropped by a full queue.
    pub datagrams_overflowed: u64,
}

/// `12`, or `-` for a missing value.
fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

impl ScenarioResult {
    /// One line for the progress log.
    pub fn summary(&self) -> String {
        format!(
            "{}: viewer {} frames ({:.1}/s), longest gap {:.0} ms, {} reconnects, back: {}",
            self.name,
            self.viewer_frames,
            self.viewer_fps,
            self.longest_gap_ms,
            self.reconnects,
            self.recoveries_text()
        )
    }

    /// `session / live / viewer` ms per outage, or `-`.
    fn recoveries_text(&self) -> String {
        if self.recoveries.is_empty() {
            return "-".into();
        }
        self.recoveries
            .iter()
            .map(|r| {
                format!(
                    "{} / {} / {}",
                    num(r.session_ms, 0),
                    num(r.live_ms, 0),
                    num(r.viewer_ms, 0)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The table row.
    fn row(&self) -> String {
        let gap = match self.longest_gap_between_events_ms {
            Some(between) => format!("{:.0} ({between:.0} between events)", self.longest_gap_ms),
            None => format!("{:.0}", self.longest_gap_ms),
        };
        let others: Vec<String> = self.others.iter().map(|o| num(o.fps, 1)).collect();
        format!(
            "| {} | {} | {} | {} ({:.1}/s) | {gap} | {} | {} | {} | {} | {:.1} | {:.1}-{:.1} |",
            self.name,
            self.transport,
            self.impairment,
            self.viewer_frames,
            self.viewer_fps,
            self.reconnects,
            self.recoveries_text(),
            num(self.ingest_fps, 1),
            others.join(" / "),
            self.daemon_cpu_pct,
            self.load_avg_1m[0],
            self.load_avg_1m[1],
        )
    }
}

impl ImpairReport {
    /// The table and the verdict on the targets.
    pub fn markdown(&self) -> String {
        let p = &self.params;
        let mut md = format!(
            "### edgecam-bench impair, {} on {} ({} cores, {})\n\n\
             One {}x{}@{} camera ({} kbit/s, looped {} s clip) through the impairing relay, \
             one H.264 viewer on it; cam1 (the same server, direct) and cam2 (test pattern) \
             beside it. Load average {:.1} at the start, {:.1} at the end.\n\n\
             | scenario | transport | impairment | viewer frames | longest viewer gap, ms | \
             reconnects | after each outage: session / live / viewer, ms | cam0 ingest fps | \
             cam1 / cam2 fps | daemon CPU % | load 1m |\n\
             |---|---|---|---:|---:|---:|---|---:|---:|---:|---:|\n",
            self.run.started_utc,
            self.run.machine.host,
            self.run.machine.cores,
            self.run.machine.cpu_model,
            p.width,
            p.height,
            p.fps,
            p.bitrate_kbps,
            p.clip_seconds,
            self.run.load_avg_start[0],
            self.run.load_avg_end[0],
        );
        for s in &self.scenarios {
            md += &s.row();
            md.push('\n');
        }
        md.push('\n');
        for line in self.verdicts() {
            let _ = writeln!(md, "- {line}");
        }
        let _ = writeln!(
            md,
            "\nCommand: `cargo run --release -p edgecam-bench -- impair --seconds {} --outage {} \
             --outages {}`",
            p.seconds, p.outage_s, p.outages
        );
        md
    }

    /// One sentence per target of issue 15 that this run can judge.
    pub fn verdicts(&self) -> Vec<String> {
        let mut out = Vec::new();
        let met = |ok: bool| if ok { "met" } else { "NOT met" };
        for s in self
            .scenarios
            .iter()
            .filter(|s| s.impairment.contains("±") || s.name.contains("loss"))
        {
            let ok = s.longest_gap_ms <= TARGET_MS;
            out.push(format!(
                "No viewer gap over 1 s under {} ({}): {} (longest {:.0} ms)",
                s.impairment,
                s.transport,
                met(ok),
                s.longest_gap_ms
            ));
        }
        for s in self.scenarios.iter().filter(|s| !s.recoveries.is_empty()) {
            let worst = s
                .recoveries
                .iter()
                .map(|r| r.viewer_ms.unwrap_or(f64::INFINITY));
            let worst = worst.fold(0.0, f64::max);
            out.push(format!(
                "Back to live within 1 s of the camera returning: {} (viewer's first frame after \
                 {:.0} ms at worst of {})",
                met(worst <= TARGET_MS),
                worst,
                s.recoveries.len()
            ));
        }
        let rates: Vec<f64> = self
            .scenarios
            .iter()
            .flat_map(|s| s.others.iter().filter_map(|o| o.fps))
            .collect();
        if let (Some(lo), Some(hi)) = (
            rates.iter().copied().reduce(f64::min),
            rates.iter().copied().reduce(f64::max),
        ) {
            let ok =
                lo >= 0.95 * f64::from(self.params.fps) && hi <= 1.05 * f64::from(self.params.fps);
            out.push(format!(
                "The other streams unaffected: {} ({lo:.1}-{hi:.1} fps in every scenario)",
                met(ok)
            ));
        }
        out
    }
}
