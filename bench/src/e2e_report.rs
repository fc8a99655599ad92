//! The end-to-end benchmark's results: per camera count, edgecam (no viewer, one H.264 viewer,
//! one JPEG viewer) beside the two peers, as a JSON document and a Markdown table.

use crate::report::{Measured, RunInfo, write_results};
use crate::stats::{Ranks, Usage};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Percentiles of a set of durations, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Pcts {
    /// Samples and their nearest-rank p50, p95, p99.
    #[serde(flatten)]
    pub ranks: Ranks,
    /// Largest sample.
    pub max: f64,
}

impl Pcts {
    /// Percentiles of `ms`; `None` without samples.
    pub fn of(ms: &[f64]) -> Option<Pcts> {
        let (v, ranks) = Ranks::of(ms)?;
        Some(Pcts {
            ranks,
            max: v[v.len() - 1],
        })
    }

    /// Percentiles of durations.
    pub fn of_durations(d: &[Duration]) -> Option<Pcts> {
        Pcts::of(&d.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>())
    }
}

/// One viewer on one delivery path.
#[derive(Debug, Clone, Serialize)]
pub struct Viewer {
    /// `h264`, `mse` or `jpeg`.
    pub path: String,
    /// The daemon while the viewer watched a stream without switching.
    pub usage: Usage,
    /// Frames received per second in the steady window.
    pub fps: f64,
    /// Ingest (header receive time) to client receive, ms, steady window, catch-up excluded.
    pub ingest_to_recv_ms: Option<Pcts>,
    /// Connect (WebSocket opened) to first frame received, ms.
    pub first_frame_ms: Option<Pcts>,
    /// `POST /api/active` to first frame of the new stream, ms (needs 2+ streams).
    pub switch_ms: Option<Pcts>,
    /// Alarm trigger API call to first frame of the alarm's stream, ms (needs 2+ streams).
    pub alarm_ms: Option<Pcts>,
    /// Frames the client skipped (bounded queue), from `/metrics`, over the whole phase.
    pub client_skipped: u64,
    /// Frames the rings overwrote during the steady window (normal recycling), from `/metrics`.
    pub ring_overwritten: u64,
    /// Probes (first frame, switch, alarm) that saw no frame within 10 s; not in the
    /// percentiles.
    pub probes_timed_out: u32,
}

/// edgecam at one camera count.
#[derive(Debug, Clone, Serialize)]
pub struct Edgecam {
    /// No viewer: the cost of keeping every stream.
    pub idle: Usage,
    /// Ring overwrites during the idle window.
    pub idle_ring_overwritten: u64,
    /// One H.264 (WebCodecs) viewer.
    pub h264: Viewer,
    /// One MSE (fragmented MP4) viewer.
    pub mse: Viewer,
    /// One JPEG viewer.
    pub jpeg: Viewer,
    /// Several viewers at once, per path (H.264, MSE).
    pub crowds: Vec<Crowd>,
    /// Stream reconnects during the whole run at this N.
    pub reconnects: usize,
}

/// Several viewers of one stream on one path at once.
#[derive(Debug, Clone, Serialize)]
pub struct Crowd {
    /// `h264` or `mse`.
    pub path: String,
    /// How many viewers.
    pub viewers: u32,
    /// The daemon meanwhile.
    pub usage: Usage,
    /// Frames per second of the viewer that got the fewest.
    pub min_fps: f64,
}

/// The GStreamer MJPEG switcher at one camera count.
#[derive(Debug, Clone, Serialize)]
pub struct GstSwitcher {
    /// Its process with one HTTP client watching.
    pub usage: Usage,
    /// JPEG parts per second the client received.
    pub fps: f64,
    /// New HTTP client connect to first JPEG received, ms.
    pub first_frame_ms: Option<Pcts>,
    /// Control call (`POST /active`) to first JPEG of the new stream, ms.
    pub switch_ms: Option<Pcts>,
    /// Probes that saw no picture within 10 s.
    pub probes_timed_out: u32,
}

/// Everything measured at one camera count.
#[derive(Debug, Clone, Serialize)]
pub struct AtN {
    /// Camera streams.
    pub streams: u32,
    /// edgecam.
    pub edgecam: Edgecam,
    /// One ffmpeg full decoder per stream.
    pub ffmpeg: Option<Measured>,
    /// The GStreamer decode-all MJPEG switcher.
    pub gstreamer: Option<GstSwitcher>,
    /// RTSP server CPU during edgecam's idle window, % of one core (shares the machine).
    pub server_cpu_pct: f64,
    /// Load average (1 min) at the start of this N.
    pub load_avg: f64,
}

/// What was streamed and how long each window was.
#[derive(Debug, Clone, Serialize)]
pub struct E2eParams {
    /// Camera counts measured.
    pub counts: Vec<u32>,
    /// Window length, seconds.
    pub seconds: u64,
    /// Warm-up before each window, seconds.
    pub warmup_s: u64,
    /// Switches, alarms and reconnects probed per viewer.
    pub probes: u32,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Encoder bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// H.264 profile of the served clip.
    pub profile: String,
    /// The daemon's ring arena per stream, bytes.
    pub ring_bytes_per_stream: u64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct E2eReport {
    /// Which benchmark, build, machine and load.
    #[serde(flatten)]
    pub run: RunInfo,
    /// Parameters.
    pub params: E2eParams,
    /// Callgrind instructions per ingested 64 KiB frame, when measured in this run.
    pub ring_instructions_per_frame: Option<f64>,
    /// Results per camera count.
    pub results: Vec<AtN>,
}

/// Issue 8's targets (reported, not asserted).
pub mod targets {
    /// Total CPU at 16 streams, no viewer, % of one core.
    pub const IDLE_CPU_AT_16: f64 = 8.0;
    /// Least decode-all / edgecam CPU ratio at no viewer.
    pub const MIN_RATIO_FFMPEG: f64 = 30.0;
    /// Most H.264-viewer CPU above idle, percentage points.
    pub const H264_VIEWER_PP: f64 = 2.0;
    /// Issue 16: most CPU one MSE or WebCodecs viewer adds, % of one core.
    pub const ONE_VIEWER_PP: f64 = 1.0;
    /// Issue 16: most CPU ten such viewers add, % of one core.
    pub const CROWD_PP: f64 = 5.0;
    /// Most JPEG-viewer CPU as a share of the GStreamer switcher's, N >= 4.
    pub const JPEG_VS_GST: f64 = 0.5;
    /// RSS budget above the rings, MiB.
    pub const RSS_ABOVE_RINGS_MIB: f64 = 48.0;
    /// Most RSS spread over a warm window, MiB.
    pub const RSS_FLAT_MIB: f64 = 2.0;
    /// First frame, switch and alarm at p95, ms.
    pub const P95_MS: f64 = 100.0;
    /// Ingest to send at p99, ms.
    pub const P99_INGEST_MS: f64 = 5.0;
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("n/a".to_string(), |v| format!("{v:.prec$}"))
}

fn p(v: &Option<Pcts>, f: impl Fn(&Pcts) -> f64) -> String {
    opt(v.as_ref().map(f), 0)
}

impl E2eReport {
    /// The Markdown section: one column per camera count.
    pub fn markdown(&self) -> String {
        let pr = &self.params;
        let mut md = String::new();
        let _ = writeln!(
            md,
            "### End to end: {}x{} @ {} fps, {} kbit/s H.264 {}, {} s windows\n",
            pr.width, pr.height, pr.fps, pr.bitrate_kbps, pr.profile, pr.seconds
        );
        let _ = writeln!(
            md,
            "Machine: `{}`, {} ({} cores), Linux {}; shared with other work, load average \
             {:.2} at the start and {:.2} at the end. Run {} (edgecam {}). Ring arena {} MiB per \
             stream. CPU in % of one core.\n",
            self.run.machine.host,
            self.run.machine.cpu_model,
            self.run.machine.cores,
            self.run.machine.kernel,
            self.run.load_avg_start[0],
            self.run.load_avg_end[0],
            self.run.started_utc,
            self.run.edgecam_version,
            pr.ring_bytes_per_stream >> 20,
        );
        let head: Vec<String> = self
            .results
            .iter()
            .map(|r| format!("N = {}", r.streams))
            .collect();
        let _ = writeln!(md, "| | {} |", head.join(" | "));
        let _ = writeln!(md, "|---|{}", "---:|".repeat(head.len()));
        let mut row = |name: &str, f: &dyn Fn(&AtN) -> String| {
            let cells: Vec<String> = self.results.iter().map(f).collect();
            let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
        };
        row("edgecam CPU, no viewer (per stream)", &|r| {
            let u = &r.edgecam.idle;
            format!("**{:.2}** ({:.3})", u.cpu_pct, u.cpu_pct_per_stream)
        });
        row("edgecam CPU, one H.264 viewer", &|r| {
            format!("{:.2}", r.edgecam.h264.usage.cpu_pct)
        });
        row("edgecam CPU, one MSE viewer", &|r| {
            format!("{:.2}", r.edgecam.mse.usage.cpu_pct)
        });
        for c in self
            .results
            .first()
            .map_or(&[][..], |r| &r.edgecam.crowds[..])
        {
            let (path, k) = (c.path.clone(), c.viewers);
            row(
                &format!(
                    "edgecam CPU, {k} {} viewers (slowest fps)",
                    path.to_uppercase()
                ),
                &|r| {
                    r.edgecam
                        .crowds
                        .iter()
                        .find(|x| x.path == path)
                        .map_or("n/a".into(), |x| {
                            format!("{:.2} ({:.1})", x.usage.cpu_pct, x.min_fps)
                        })
                },
            );
        }
        row("edgecam CPU, one JPEG viewer", &|r| {
            format!("{:.1}", r.edgecam.jpeg.usage.cpu_pct)
        });
        row("ffmpeg decode-all CPU (per stream)", &|r| {
            r.ffmpeg.as_ref().map_or("n/a".into(), |f| {
                format!("{:.1} ({:.1})", f.usage.cpu_pct, f.usage.cpu_pct_per_stream)
            })
        });
        row(
            "ffmpeg decoded frames/s per stream (25 = keeping up)",
            &|r| opt(r.ffmpeg.as_ref().and_then(|f| f.mean_fps), 1),
        );
        row("GStreamer MJPEG switcher CPU, one viewer", &|r| {
            r.gstreamer
                .as_ref()
                .map_or("n/a".into(), |g| format!("{:.1}", g.usage.cpu_pct))
        });
        row("ratio ffmpeg / edgecam (no viewer)", &|r| {
            r.ffmpeg.as_ref().map_or("n/a".into(), |f| {
                format!(
                    "**{:.0}x**",
                    f.usage.cpu_pct / r.edgecam.idle.cpu_pct.max(f64::EPSILON)
                )
            })
        });
        row("ratio edgecam JPEG / GStreamer", &|r| {
            r.gstreamer.as_ref().map_or("n/a".into(), |g| {
                format!(
                    "**{:.2}x**",
                    r.edgecam.jpeg.usage.cpu_pct / g.usage.cpu_pct.max(f64::EPSILON)
                )
            })
        });
        row("edgecam RSS MiB: steady / peak / spread", &|r| {
            let u = &r.edgecam.idle;
            format!(
                "{:.1} / {:.1} / {}",
                u.rss_mib,
                u.rss_peak_mib,
                opt(u.rss_spread_mib, 1)
            )
        });
        row("edgecam RSS MiB with JPEG viewer: steady / peak", &|r| {
            let u = &r.edgecam.jpeg.usage;
            format!("{:.1} / {:.1}", u.rss_mib, u.rss_peak_mib)
        });
        row("ffmpeg RSS MiB (all processes)", &|r| {
            r.ffmpeg
                .as_ref()
                .map_or("n/a".into(), |f| format!("{:.0}", f.usage.rss_mib))
        });
        row("GStreamer RSS MiB", &|r| {
            r.gstreamer
                .as_ref()
                .map_or("n/a".into(), |g| format!("{:.0}", g.usage.rss_mib))
        });
        for (name, get) in [
            ("H.264", (|r: &AtN| &r.edgecam.h264) as fn(&AtN) -> &Viewer),
            ("MSE", |r: &AtN| &r.edgecam.mse),
            ("JPEG", |r: &AtN| &r.edgecam.jpeg),
        ] {
            row(&format!("{name} first frame ms p50 / p95"), &|r| {
                let v = &get(r).first_frame_ms;
                format!("{} / {}", p(v, |x| x.ranks.p50), p(v, |x| x.ranks.p95))
            });
            row(&format!("{name} switch ms p50 / p95"), &|r| {
                let v = &get(r).switch_ms;
                format!("{} / {}", p(v, |x| x.ranks.p50), p(v, |x| x.ranks.p95))
            });
            row(&format!("{name} alarm ms p50 / p95"), &|r| {
                let v = &get(r).alarm_ms;
                format!("{} / {}", p(v, |x| x.ranks.p50), p(v, |x| x.ranks.p95))
            });
            row(
                &format!("{name} ingest to receive ms p50 / p95 / p99"),
                &|r| {
                    let v = &get(r).ingest_to_recv_ms;
                    let f = |g: fn(&Pcts) -> f64| opt(v.as_ref().map(g), 1);
                    format!(
                        "{} / {} / {}",
                        f(|x| x.ranks.p50),
                        f(|x| x.ranks.p95),
                        f(|x| x.ranks.p99)
                    )
                },
            );
            row(&format!("{name} frames/s received"), &|r| {
                format!("{:.1}", get(r).fps)
            });
            row(&format!("{name} client skipped / ring overwritten"), &|r| {
                let v = get(r);
                format!("{} / {}", v.client_skipped, v.ring_overwritten)
            });
            row(&format!("{name} probes timed out"), &|r| {
                get(r).probes_timed_out.to_string()
            });
        }
        row("GStreamer first frame ms p50 / p95", &|r| {
            let v = r.gstreamer.as_ref().and_then(|g| g.first_frame_ms);
            format!("{} / {}", p(&v, |x| x.ranks.p50), p(&v, |x| x.ranks.p95))
        });
        row("GStreamer switch ms p50 / p95", &|r| {
            let v = r.gstreamer.as_ref().and_then(|g| g.switch_ms);
            format!("{} / {}", p(&v, |x| x.ranks.p50), p(&v, |x| x.ranks.p95))
        });
        row("GStreamer frames/s received / probes timed out", &|r| {
            r.gstreamer.as_ref().map_or("n/a".into(), |g| {
                format!("{:.1} / {}", g.fps, g.probes_timed_out)
            })
        });
        row("edgecam reconnects", &|r| r.edgecam.reconnects.to_string());
        row("load average (1 min)", &|r| format!("{:.1}", r.load_avg));
        md += &self.verdicts();
        if let Some(i) = self.ring_instructions_per_frame {
            let _ = writeln!(
                md,
                "\nCallgrind: **{i:.0} instructions** per ingested 64 KiB frame (ring write plus \
                 bookkeeping, `edgecam-bench ring-instr`)."
            );
        }
        let _ = writeln!(
            md,
            "\nCommand: `cargo run --release -p edgecam-bench -- e2e \
             --streams {} --seconds {}`",
            pr.counts
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
            pr.seconds
        );
        md
    }

    /// The targets against this run (reported, never asserted).
    pub fn verdicts(&self) -> String {
        use targets::*;
        let mut out = String::from("\nTargets (goals, not asserts):\n\n");
        let mut say = |what: String, met: Option<bool>| {
            let v = match met {
                Some(true) => "met",
                Some(false) => "**not met**",
                None => "not measured",
            };
            let _ = writeln!(out, "- {what}: {v}");
        };
        let at16 = self.results.iter().find(|r| r.streams == 16);
        say(
            format!(
                "16 streams, no viewer, under {IDLE_CPU_AT_16} % of one core ({})",
                at16.map_or("n/a".into(), |r| format!("{:.2}", r.edgecam.idle.cpu_pct))
            ),
            at16.map(|r| r.edgecam.idle.cpu_pct < IDLE_CPU_AT_16),
        );
        let ratios: Vec<(u32, f64)> = self
            .results
            .iter()
            .filter_map(|r| {
                let f = r.ffmpeg.as_ref()?;
                Some((
                    r.streams,
                    f.usage.cpu_pct / r.edgecam.idle.cpu_pct.max(f64::EPSILON),
                ))
            })
            .collect();
        say(
            format!(
                "at least {MIN_RATIO_FFMPEG:.0}x less CPU than decode-all ({})",
                list(&ratios, |v| format!("{v:.0}x"))
            ),
            (!ratios.is_empty()).then(|| ratios.iter().all(|r| r.1 >= MIN_RATIO_FFMPEG)),
        );
        let pp: Vec<(u32, f64)> = self
            .results
            .iter()
            .map(|r| {
                (
                    r.streams,
                    r.edgecam.h264.usage.cpu_pct - r.edgecam.idle.cpu_pct,
                )
            })
            .collect();
        say(
            format!(
                "one H.264 viewer within {H264_VIEWER_PP} points of no viewer ({})",
                list(&pp, |v| format!("{v:+.2}"))
            ),
            Some(pp.iter().all(|p| p.1 <= H264_VIEWER_PP)),
        );
        for (name, get) in [
            (
                "WebCodecs",
                (|r: &AtN| &r.edgecam.h264) as fn(&AtN) -> &Viewer,
            ),
            ("MSE", |r: &AtN| &r.edgecam.mse),
        ] {
            let pp: Vec<(u32, f64)> = self
                .results
                .iter()
                .map(|r| (r.streams, get(r).usage.cpu_pct - r.edgecam.idle.cpu_pct))
                .collect();
            say(
                format!(
                    "one {name} viewer adds under {ONE_VIEWER_PP} % of one core ({})",
                    list(&pp, |v| format!("{v:+.2}"))
                ),
                (!pp.is_empty()).then(|| pp.iter().all(|p| p.1 < ONE_VIEWER_PP)),
            );
        }
        for path in ["h264", "mse"] {
            let pp: Vec<(u32, f64)> = self
                .results
                .iter()
                .filter_map(|r| {
                    let c = r.edgecam.crowds.iter().find(|c| c.path == path)?;
                    Some((r.streams, c.usage.cpu_pct - r.edgecam.idle.cpu_pct))
                })
                .collect();
            say(
                format!(
                    "ten {path} viewers add under {CROWD_PP} % of one core ({})",
                    list(&pp, |v| format!("{v:+.2}"))
                ),
                (!pp.is_empty()).then(|| pp.iter().all(|p| p.1 < CROWD_PP)),
            );
        }
        let jg: Vec<(u32, f64)> = self
            .results
            .iter()
            .filter(|r| r.streams >= 4)
            .filter_map(|r| {
                let g = r.gstreamer.as_ref()?;
                Some((
                    r.streams,
                    r.edgecam.jpeg.usage.cpu_pct / g.usage.cpu_pct.max(f64::EPSILON),
                ))
            })
            .collect();
        say(
            format!(
                "JPEG viewer at most {JPEG_VS_GST}x the GStreamer switcher, N >= 4 ({})",
                list(&jg, |v| format!("{v:.2}x"))
            ),
            (!jg.is_empty()).then(|| jg.iter().all(|r| r.1 <= JPEG_VS_GST)),
        );
        let rings =
            |r: &AtN| f64::from(r.streams) * self.params.ring_bytes_per_stream as f64 / 1048576.0;
        let rss: Vec<(u32, f64)> = self
            .results
            .iter()
            .map(|r| (r.streams, r.edgecam.idle.rss_peak_mib - rings(r)))
            .collect();
        say(
            format!(
                "peak RSS under {RSS_ABOVE_RINGS_MIB} MiB plus the rings (above the rings: {})",
                list(&rss, |v| format!("{v:.1} MiB"))
            ),
            Some(rss.iter().all(|r| r.1 < RSS_ABOVE_RINGS_MIB)),
        );
        let flat: Vec<(u32, f64)> = self
            .results
            .iter()
            .filter_map(|r| Some((r.streams, r.edgecam.idle.rss_spread_mib?)))
            .collect();
        say(
            format!(
                "RSS flat within {RSS_FLAT_MIB} MiB over the idle window ({})",
                list(&flat, |v| format!("{v:.1}"))
            ),
            (!flat.is_empty()).then(|| flat.iter().all(|r| r.1 <= RSS_FLAT_MIB)),
        );
        let h = |f: fn(&Viewer) -> Option<Pcts>| -> Vec<(u32, f64)> {
            self.results
                .iter()
                .filter_map(|r| Some((r.streams, f(&r.edgecam.h264)?.ranks.p95)))
                .collect()
        };
        for (what, v) in [
            ("H.264 first frame", h(|v| v.first_frame_ms)),
            ("H.264 switch", h(|v| v.switch_ms)),
            ("H.264 alarm to frame", h(|v| v.alarm_ms)),
        ] {
            say(
                format!(
                    "{what} under {P95_MS:.0} ms at p95 ({})",
                    list(&v, |x| format!("{x:.0} ms"))
                ),
                (!v.is_empty()).then(|| v.iter().all(|x| x.1 < P95_MS)),
            );
        }
        let ing: Vec<(u32, f64)> = self
            .results
            .iter()
            .filter_map(|r| Some((r.streams, r.edgecam.h264.ingest_to_recv_ms?.ranks.p99)))
            .collect();
        say(
            format!(
                "H.264 ingest to receive under {P99_INGEST_MS} ms at p99 ({})",
                list(&ing, |x| format!("{x:.1} ms"))
            ),
            (!ing.is_empty()).then(|| ing.iter().all(|x| x.1 < P99_INGEST_MS)),
        );
        out
    }

    /// Writes `e2e-<date>-<host>.json` (never overwriting an earlier run) and
    /// `e2e-latest.md` into `dir`; returns the JSON path.
    pub fn write(&self, dir: &Path, date: &str) -> anyhow::Result<PathBuf> {
        let stem = format!("e2e-{date}-{}", self.run.machine.host);
        let (json_path, _) = write_results(dir, &stem, "e2e-latest.md", self, &self.markdown())?;
        Ok(json_path)
    }
}

/// `N=1: a, N=4: b` for a verdict line.
fn list(v: &[(u32, f64)], f: impl Fn(f64) -> String) -> String {
    if v.is_empty() {
        return "n/a".into();
    }
    v.iter()
        .map(|(n, x)| format!("N={n}: {}", f(*x)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::CpuShare;
    use crate::procfs::Machine;

    fn usage(cpu_pct: f64, rss_mib: f64) -> Usage {
        Usage {
            processes: 1,
            window_s: 30.0,
            cpu: CpuShare {
                user_pct: cpu_pct,
                system_pct: 0.0,
            },
            cpu_pct,
            cpu_pct_per_stream: cpu_pct / 16.0,
            rss_mib,
            rss_peak_mib: rss_mib,
            rss_spread_mib: Some(0.5),
        }
    }

    fn viewer(path: &str, cpu: f64, switch_p95: f64) -> Viewer {
        let p = Pcts::of(&[1.0, switch_p95]);
        Viewer {
            path: path.into(),
            usage: usage(cpu, 270.0),
            fps: 25.0,
            ingest_to_recv_ms: Pcts::of(&[0.2, 0.4]),
            first_frame_ms: p,
            switch_ms: p,
            alarm_ms: p,
            client_skipped: 0,
            ring_overwritten: 100,
            probes_timed_out: 0,
        }
    }

    fn report(jpeg_cpu: f64, switch_p95: f64) -> E2eReport {
        E2eReport {
            run: RunInfo {
                bench: "e2e",
                edgecam_version: "test",
                started_utc: "now".into(),
                machine: Machine {
                    host: "box".into(),
                    cpu_model: "cpu".into(),
                    cores: 4,
                    kernel: "6.1".into(),
                },
                load_avg_start: [1.0; 3],
                load_avg_end: [1.0; 3],
            },
            params: E2eParams {
                counts: vec![16],
                seconds: 30,
                warmup_s: 5,
                probes: 2,
                width: 1920,
                height: 1080,
                fps: 25,
                bitrate_kbps: 4000,
                profile: "high".into(),
                ring_bytes_per_stream: 16 << 20,
            },
            ring_instructions_per_frame: Some(1234.0),
            results: vec![AtN {
                streams: 16,
                edgecam: Edgecam {
                    idle: usage(4.0, 270.0),
                    idle_ring_overwritten: 10,
                    h264: viewer("h264", 5.0, switch_p95),
                    mse: viewer("mse", 5.1, switch_p95),
                    jpeg: viewer("jpeg", jpeg_cpu, switch_p95),
                    crowds: vec![Crowd {
                        path: "mse".into(),
                        viewers: 10,
                        usage: usage(5.5, 270.0),
                        min_fps: 25.0,
                    }],
                    reconnects: 0,
                },
                ffmpeg: None,
                gstreamer: Some(GstSwitcher {
                    usage: usage(100.0, 600.0),
                    fps: 25.0,
                    first_frame_ms: None,
                    switch_ms: None,
                    probes_timed_out: 0,
                }),
                server_cpu_pct: 1.0,
                load_avg: 1.0,
            }],
        }
    }

    /// The decode-all side as ingest measures it: 16 decoders, 10 s, 50 % of one core each.
    fn ffmpeg() -> Measured {
        use crate::procfs::ProcSample;
        use crate::rates::StreamRate;
        use crate::report::Window;
        let t0 = std::time::Instant::now();
        let s = |secs: u64, ticks: u64| ProcSample {
            at: t0 + Duration::from_secs(secs),
            utime: ticks,
            stime: 0,
            rss_kib: 40 << 10,
            hwm_kib: 50 << 10,
        };
        let stream = StreamRate {
            id: "cam0".into(),
            fps: Some(25.0),
            kbps: None,
            span_s: Some(10.0),
            ring_overwritten: None,
        };
        Measured::from_window(
            Window {
                start: vec![s(0, 0); 16],
                end: vec![s(10, 500); 16],
                server: (s(0, 0), s(10, 10)),
                load: ([1.0; 3], [1.0; 3]),
                streams: vec![stream],
                restarts: 0,
            },
            16,
            100,
        )
    }

    #[test]
    fn the_document_keeps_the_layout_of_the_results_of_record() {
        let mut r = report(40.0, 20.0);
        r.results[0].ffmpeg = Some(ffmpeg());
        let ours = serde_json::to_value(&r).unwrap();
        let diff = crate::report::record::layout_differences(&ours, "e2e");
        assert!(diff.is_empty(), "{diff:#?}");
        let at = &ours["results"][0];
        assert_eq!(at["edgecam"]["h264"]["switch_ms"]["p95"], 20.0);
        assert_eq!(at["edgecam"]["idle"]["rss_spread_mib"], 0.5);
        assert!(at["ffmpeg"]["cpu_pct"].is_f64() && at["ffmpeg"].get("rss_spread_mib").is_none());
        assert!((r.results[0].ffmpeg.as_ref().unwrap().usage.cpu_pct - 800.0).abs() < 1e-9);
        assert!(
            r.markdown()
                .contains("| ratio ffmpeg / edgecam (no viewer) | **200x** |")
        );
    }

    #[test]
    fn the_table_shows_ratios_and_the_verdicts_follow_the_numbers() {
        let md = report(40.0, 20.0).markdown();
        assert!(md.contains("| N = 16 |"), "{md}");
        assert!(
            md.contains("| ratio edgecam JPEG / GStreamer | **0.40x** |"),
            "{md}"
        );
        assert!(md.contains("under 8 % of one core (4.00): met"), "{md}");
        assert!(md.contains("(N=16: 0.40x): met"), "{md}");
        assert!(
            md.contains("H.264 switch under 100 ms at p95 (N=16: 20 ms): met"),
            "{md}"
        );
        assert!(md.contains("decode-all (n/a): not measured"), "{md}");
        assert!(md.contains("**1234 instructions**"), "{md}");
        let md = report(80.0, 150.0).markdown();
        assert!(md.contains("(N=16: 0.80x): **not met**"), "{md}");
        assert!(md.contains("(N=16: 150 ms): **not met**"), "{md}");
    }
}
