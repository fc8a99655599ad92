//! `edgecam-bench impair`: the daemon on a hostile network. One 1080p25 RTSP camera reaches
//! the daemon through the impairing relay (`edgecam_testkit::impair`) and one H.264 viewer
//! watches it; beside it, one RTSP camera straight from the server and one test pattern must
//! not notice. Per scenario (baseline, jitter, UDP, loss, cap, stalls, outages): frames on
//! the viewer, its longest gap, reconnects, and after each outage the time from the camera
//! returning to the session playing, to the stream live and to the viewer's first frame.

use crate::child::{self, wait_until};
use crate::e2e::{Daemon, TOKEN};
use crate::impair_report::{
    ImpairParams, ImpairReport, OtherStream, Recovery, RelayCounts, ScenarioResult,
};
use crate::ingest::{self, WorkDir};
use crate::procfs;
use crate::rates;
use crate::report::RunInfo;
use crate::server::{self, PictureArgs, RtspServer};
use crate::wsclient::{FrameEvent, LiveClient};
use anyhow::{Context, anyhow, bail};
use edgecam_testkit::impair::{Impairment, Relay, RelayOpts};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the three streams may take to go live.
const LIVE_TIMEOUT: Duration = Duration::from_secs(90);
/// Seconds of steady viewing before a window opens.
const WARMUP: Duration = Duration::from_secs(3);
/// Seconds before the first event and after the last one.
const LEAD: Duration = Duration::from_secs(5);
/// Longest wait for the viewer's first frame after the camera returns.
const RETURN_TIMEOUT: Duration = Duration::from_secs(60);
/// Every scenario's name, in the order they run.
pub const SCENARIOS: [&str; 8] = [
    "baseline",
    "jitter",
    "udp",
    "loss",
    "jitter-loss",
    "cap",
    "stall",
    "outage",
];

/// Options of `edgecam-bench impair`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImpairArgs {
    /// Scenarios to run, comma-separated (baseline, jitter, udp, loss, jitter-loss, cap,
    /// stall, outage) [default: all].
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Window of the scenarios without events, seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(5..))]
    pub seconds: u64,
    /// Length of each outage, seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub outage: u64,
    /// Outages in the outage scenario.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub outages: u32,
    /// The picture of the impaired camera (and of the direct one).
    #[command(flatten)]
    pub picture: PictureArgs,
    /// Directory for the results [default: bench/results in the source tree].
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// What happens on the path during a scenario's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Events {
    /// Nothing: a steady window of `--seconds`.
    None,
    /// The relay forwards nothing for `len`, `count` times (connections stay open).
    Stalls { len: Duration, count: u32 },
    /// The camera is gone (connections reset, port closed) for `len`, `count` times.
    Outages { len: Duration, count: u32 },
}

/// One scenario.
#[derive(Debug, Clone)]
struct Scenario {
    /// Its name on the command line and in the table.
    name: &'static str,
    /// RTSP transport of the impaired camera.
    transport: &'static str,
    /// What the relay does, in words.
    what: String,
    /// The relay's impairment, both directions.
    imp: Impairment,
    /// Events during the window.
    events: Events,
}

/// The impairment and events of scenario `name` (one of [`SCENARIOS`]).
fn plan(name: &str, args: &ImpairArgs) -> (&'static str, Impairment, Events) {
    let ms = Duration::from_millis;
    let jitter = Impairment {
        delay: ms(50),
        jitter: ms(40),
        ..Impairment::default()
    };
    let none = Impairment::default();
    let (transport, imp) = match name {
        "jitter" => ("tcp", jitter),
        "udp" => ("udp", none),
        "loss" => ("udp", Impairment { loss: 0.02, ..none }),
        "jitter-loss" => (
            "udp",
            Impairment {
                loss: 0.02,
                ..jitter
            },
        ),
        "cap" => (
            "tcp",
            Impairment {
                rate_bps: Some(3_000_000),
                ..none
            },
        ),
        _ => ("tcp", none),
    };
    let events = match name {
        "stall" => Events::Stalls {
            len: Duration::from_secs(2),
            count: 2,
        },
        "outage" => Events::Outages {
            len: Duration::from_secs(args.outage),
            count: args.outages,
        },
        _ => Events::None,
    };
    (transport, imp, events)
}

/// What a scenario does, in words.
fn describe(imp: &Impairment, events: Events) -> String {
    let mut parts = Vec::new();
    if !imp.jitter.is_zero() || !imp.delay.is_zero() {
        let (d, j) = (imp.delay.as_millis(), imp.jitter.as_millis());
        parts.push(format!("{d} ± {j} ms"));
    }
    if imp.loss > 0.0 {
        parts.push(format!("{} % loss", imp.loss * 100.0));
    }
    if let Some(r) = imp.rate_bps {
        let (b, q) = (imp.burst_bytes / 1024, imp.queue_bytes / 1024);
        parts.push(format!(
            "{} Mbit/s cap ({b} KiB burst, {q} KiB queue)",
            r / 1_000_000
        ));
    }
    let plural = |n: u32| if n == 1 { "" } else { "s" };
    match events {
        Events::None => {}
        Events::Stalls { len, count } => {
            parts.push(format!(
                "{count} stall{} of {} s",
                plural(count),
                len.as_secs()
            ));
        }
        Events::Outages { len, count } => parts.push(format!(
            "{count} outage{} of {} s (port closed)",
            plural(count),
            len.as_secs()
        )),
    }
    match parts.len() {
        0 => "none".to_string(),
        _ if imp.loss > 0.0 || !imp.jitter.is_zero() => parts.join(" and ") + " each way",
        _ => parts.join(", "),
    }
}

/// The scenarios `args` asks for, in the fixed order.
fn scenarios(args: &ImpairArgs) -> anyhow::Result<Vec<Scenario>> {
    for name in &args.scenarios {
        if !SCENARIOS.contains(&name.as_str()) {
            bail!("no scenario {name:?}; there are {}", SCENARIOS.join(", "));
        }
    }
    Ok(SCENARIOS
        .into_iter()
        .filter(|s| args.scenarios.is_empty() || args.scenarios.iter().any(|n| n == s))
        .map(|name| {
            let (transport, imp, events) = plan(name, args);
            Scenario {
                name,
                transport,
                what: describe(&imp, events),
                imp,
                events,
            }
        })
        .collect())
}

/// Runs the scenarios, prints the JSON and the table, writes both.
pub fn run(args: &ImpairArgs) -> anyhow::Result<()> {
    let (date, started) = procfs::utc_now();
    let daemon_exe = child::sibling_daemon()?;
    let list = scenarios(args)?;
    let load_avg_start = procfs::load_avg();
    let work = WorkDir::create()?;
    let cache = child::bench_cache(&daemon_exe);
    eprintln!(
        "starting the RTSP server: 2 mounts of {}x{}@{}",
        args.picture.width, args.picture.height, args.picture.fps
    );
    let mut server = server::start(
        args.picture.server_opts(2, "high"),
        &cache,
        &work.0.join("server.log"),
    )?;
    let mut results = Vec::new();
    for sc in &list {
        eprintln!("\n=== {} ({}, {}) ===", sc.name, sc.transport, sc.what);
        let r = run_scenario(args, &daemon_exe, &work.0, &mut server, sc)?;
        eprintln!("{}", r.summary());
        results.push(r);
    }
    drop(server);
    let report = ImpairReport {
        run: RunInfo::ending_now("impair", started, load_avg_start),
        params: ImpairParams {
            seconds: args.seconds,
            width: args.picture.width,
            height: args.picture.height,
            fps: args.picture.fps,
            bitrate_kbps: args.picture.bitrate,
            clip_seconds: args.picture.clip_seconds,
            outage_s: args.outage,
            outages: args.outages,
        },
        scenarios: results,
    };
    let out = crate::results_dir(args.out_dir.as_deref());
    let stem = format!("impair-{date}-{}", report.run.machine.host);
    crate::report::publish(&out, &stem, "impair-latest.md", &report, &report.markdown())?;
    Ok(())
}

/// The daemon's config: `cam0` through the relay, `cam1` straight from the server, `cam2` a
/// test pattern; the bench token; no switch dwell.
fn config(
    relayed: &str,
    transport: &str,
    direct: &str,
    state: &Path,
    port: u16,
) -> anyhow::Result<String> {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let state = state.to_str().context("temporary path is not UTF-8")?;
    let text = format!(
        "[web]\nlisten = {}\n\n[[web.tokens]]\nname = \"bench\"\ntoken = {}\nrole = \"operator\"\n\n\
         [paths]\nstate_dir = {}\n\n[select]\nmin_dwell_ms = 0\n\n\
         [[streams]]\nid = \"cam0\"\nkind = \"rtsp\"\nurl = {}\ntransport = {}\n\n\
         [[streams]]\nid = \"cam1\"\nkind = \"rtsp\"\nurl = {}\ntransport = \"tcp\"\n\n\
         [[streams]]\nid = \"cam2\"\nkind = \"testpattern\"\nwidth = 640\nheight = 360\nfps = 25\n",
        quote(&format!("127.0.0.1:{port}")),
        quote(TOKEN),
        quote(state),
        quote(relayed),
        quote(transport),
        quote(direct),
    );
    edgecam::config::parse(&text).map_err(|errors| {
        anyhow!(
            "the generated config is invalid:\n{}",
            edgecam::config::report(&errors)
        )
    })?;
    Ok(text)
}

/// Starts the relay and the daemon for one scenario, waits until every stream is live and
/// the viewer sees `cam0`.
fn start(
    exe: &Path,
    work: &Path,
    server: &RtspServer,
    sc: &Scenario,
) -> anyhow::Result<(Relay, Daemon, LiveClient)> {
    let upstream = SocketAddr::from(([127, 0, 0, 1], server.port()));
    let relay = Relay::start(RelayOpts::both(upstream, sc.imp.clone()))
        .context("cannot start the impairing relay")?;
    let dir = work.join(sc.name);
    std::fs::create_dir_all(&dir)?;
    let port = ingest::free_port()?;
    let text = config(
        &relay.url(0),
        sc.transport,
        &server.url(1),
        &dir.join("state"),
        port,
    )?;
    let (guard, log) = child::spawn_daemon(exe, &dir, "edgecam-impair", &text)?;
    let mut d = Daemon {
        guard,
        log,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let lines = d.log.clone();
    wait_until(
        "every edgecam stream to go live",
        LIVE_TIMEOUT,
        || d.ensure_running(),
        || rates::daemon_live_streams(&lines.snapshot()).len() >= 3,
    )?;
    d.post("/api/active", Some(r#"{"stream":"cam0"}"#))?;
    let client = LiveClient::connect(d.addr, TOKEN, crate::wsclient::LivePath::H264)?;
    client.first_frame(Duration::from_secs(30))?;
    child::sleep(WARMUP)?;
    Ok((relay, d, client))
}

/// One event on the path: when it began and when the camera was back.
#[derive(Debug, Clone, Copy)]
struct Event {
    /// When the outage or stall began.
    start: Instant,
    /// When the camera could be reached again.
    back: Instant,
}

/// Runs the scenario's events (or just its window); returns them.
fn play(
    args: &ImpairArgs,
    sc: &Scenario,
    relay: &Relay,
    d: &mut Daemon,
    client: &LiveClient,
) -> anyhow::Result<Vec<Event>> {
    let mut events = Vec::new();
    match sc.events {
        Events::None => child::sleep(Duration::from_secs(args.seconds))?,
        Events::Stalls { len, count } => {
            for _ in 0..count {
                child::sleep(LEAD)?;
                let start = Instant::now();
                relay.stall(len);
                child::sleep(len)?;
                events.push(Event {
                    start,
                    back: start + len,
                });
            }
            child::sleep(LEAD)?;
        }
        Events::Outages { len, count } => {
            child::sleep(LEAD)?;
            for i in 0..count {
                let start = Instant::now();
                relay.outage(len);
                eprintln!("  outage {} of {count}: {} s", i + 1, len.as_secs());
                let mut back = None;
                wait_until(
                    "the relay to listen again",
                    len + RETURN_TIMEOUT,
                    || d.ensure_running(),
                    || {
                        back = relay.returned_at().filter(|t| *t > start);
                        back.is_some()
                    },
                )?;
                let back = back.unwrap_or(start + len);
                let seen = |f: &FrameEvent| f.at >= back;
                let r = wait_until(
                    "the viewer's first frame after the return",
                    RETURN_TIMEOUT,
                    || d.ensure_running(),
                    || client.frames_since(back).iter().any(seen),
                );
                if let Err(e) = r {
                    eprintln!("  {e:#}");
                }
                events.push(Event { start, back });
                child::sleep(LEAD)?;
            }
        }
    }
    Ok(events)
}

/// One scenario, start to measurement.
fn run_scenario(
    args: &ImpairArgs,
    exe: &Path,
    work: &Path,
    server: &mut RtspServer,
    sc: &Scenario,
) -> anyhow::Result<ScenarioResult> {
    let load0 = procfs::load_avg()[0];
    let (relay, mut d, client) = start(exe, work, server, sc)?;
    let tck = procfs::clock_ticks();
    let pid = d.guard.pid();
    let (t0, cpu0, m0) = (Instant::now(), procfs::sample(pid)?, d.metrics()?);
    let events = play(args, sc, &relay, &mut d, &client)?;
    server.ensure_running()?;
    let (t1, cpu1, m1) = (Instant::now(), procfs::sample(pid)?, d.metrics()?);
    let window = t1.duration_since(t0).as_secs_f64();
    let frames: Vec<Instant> = client
        .frames_since(t0)
        .iter()
        .map(|f| f.at)
        .filter(|at| *at <= t1)
        .collect();
    let lines = d.log.snapshot();
    let fps = |id: &str| {
        let f = |m: &str| stream_metric(m, "edgecam_stream_frames_total", id);
        Some((f(&m1)? - f(&m0)?) / window)
    };
    let st = relay.stats();
    let outages = matches!(sc.events, Events::Outages { .. });
    Ok(ScenarioResult {
        name: sc.name.to_string(),
        transport: sc.transport.to_string(),
        impairment: sc.what.clone(),
        window_s: window,
        viewer_frames: frames.len(),
        viewer_fps: frames.len() as f64 / window,
        longest_gap_ms: longest_gap(&frames, t0, t1, &[]),
        longest_gap_between_events_ms: (!events.is_empty())
            .then(|| longest_gap(&frames, t0, t1, &events)),
        reconnects: in_window(
            &rates::stream_events(&lines, "attempt ended", "cam0"),
            t0,
            t1,
        ),
        recoveries: if outages {
            events
                .iter()
                .map(|e| recovery(e, &lines, &client))
                .collect()
        } else {
            Vec::new()
        },
        ingest_fps: fps("cam0"),
        others: vec![
            OtherStream {
                id: "cam1".into(),
                kind: "rtsp, direct".into(),
                fps: fps("cam1"),
            },
            OtherStream {
                id: "cam2".into(),
                kind: "testpattern 640x360".into(),
                fps: fps("cam2"),
            },
        ],
        relay: RelayCounts {
            connections: st.connections,
            udp_flows: st.udp_flows,
            tcp_mbit_down: st.tcp_bytes_down as f64 * 8.0 / 1e6,
            datagrams_down: st.datagrams_down,
            datagrams_lost: st.datagrams_lost,
            datagrams_overflowed: st.datagrams_overflowed,
        },
        daemon_cpu_pct: procfs::CpuShare::between(&[cpu0], &[cpu1], tck).total_pct(),
        load_avg_1m: [load0, procfs::load_avg()[0]],
    })
}

/// Instants in `[from, to]`.
fn in_window(at: &[Instant], from: Instant, to: Instant) -> usize {
    at.iter().filter(|t| **t >= from && **t <= to).count()
}

/// What followed one outage: milliseconds from the camera's return to the session playing,
/// the stream live and the viewer's first frame.
fn recovery(e: &Event, lines: &[(Instant, String)], client: &LiveClient) -> Recovery {
    let after = |v: Vec<Instant>| {
        v.into_iter()
            .find(|t| *t >= e.back)
            .map(|t| t.duration_since(e.back).as_secs_f64() * 1e3)
    };
    Recovery {
        outage_s: e.back.duration_since(e.start).as_secs_f64(),
        session_ms: after(rates::stream_events(lines, "rtsp session playing", "cam0")),
        live_ms: after(rates::stream_events(lines, "stream live", "cam0")),
        viewer_ms: after(client.frames_since(e.back).iter().map(|f| f.at).collect()),
    }
}

/// The longest time without a frame in `[from, to]`, ms; gaps in which an event began are
/// left out when `events` is not empty (the outage itself is not a gap of the path).
fn longest_gap(frames: &[Instant], from: Instant, to: Instant, events: &[Event]) -> f64 {
    let mut edges = vec![from];
    edges.extend_from_slice(frames);
    edges.push(to);
    edges
        .windows(2)
        .filter(|w| !events.iter().any(|e| e.start >= w[0] && e.start <= w[1]))
        .map(|w| w[1].duration_since(w[0]).as_micros() as f64 / 1e3)
        .fold(0.0, f64::max)
}

/// The value of metric `name` for `stream="id"` in a Prometheus text.
fn stream_metric(text: &str, name: &str, id: &str) -> Option<f64> {
    let label = format!("stream=\"{id}\"");
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with('{')))
        .find(|l| l.contains(&label))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ImpairArgs {
        ImpairArgs {
            scenarios: vec![],
            seconds: 20,
            outage: 10,
            outages: 3,
            picture: PictureArgs::default(),
            out_dir: None,
        }
    }

    #[test]
    fn every_scenario_is_listed_and_a_wrong_name_is_refused() {
        let all = scenarios(&args()).unwrap();
        assert_eq!(all.iter().map(|s| s.name).collect::<Vec<_>>(), SCENARIOS);
        let udp: Vec<_> = all
            .iter()
            .filter(|s| s.transport == "udp")
            .map(|s| s.name)
            .collect();
        assert_eq!(udp, ["udp", "loss", "jitter-loss"]);
        let what: Vec<_> = all.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(
            what,
            [
                "none",
                "50 ± 40 ms each way",
                "none",
                "2 % loss each way",
                "50 ± 40 ms and 2 % loss each way",
                "3 Mbit/s cap (32 KiB burst, 256 KiB queue)",
                "2 stalls of 2 s",
                "3 outages of 10 s (port closed)",
            ]
        );
        let some = ImpairArgs {
            scenarios: vec!["cap".into(), "jitter".into()],
            ..args()
        };
        let names: Vec<_> = scenarios(&some).unwrap().iter().map(|s| s.name).collect();
        assert_eq!(names, ["jitter", "cap"], "in the fixed order");
        let bad = ImpairArgs {
            scenarios: vec!["netem".into()],
            ..args()
        };
        assert!(scenarios(&bad).is_err());
    }

    #[test]
    fn the_config_is_valid_with_both_transports() {
        for t in ["tcp", "udp"] {
            let text = config(
                "rtsp://127.0.0.1:1/cam0",
                t,
                "rtsp://127.0.0.1:2/cam1",
                Path::new("/tmp/s"),
                9,
            )
            .unwrap();
            let cfg = edgecam::config::parse(&text).unwrap();
            assert_eq!(cfg.streams.len(), 3);
            assert_eq!(format!("{:?}", cfg.streams[0].transport).to_lowercase(), t);
        }
    }

    #[test]
    fn gaps_count_the_window_edges_and_skip_events() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let frames = [at(100), at(140), at(1500), at(1540)];
        assert_eq!(longest_gap(&frames, t0, at(2000), &[]), 1360.0);
        let outage = Event {
            start: at(200),
            back: at(1400),
        };
        assert_eq!(longest_gap(&frames, t0, at(2000), &[outage]), 460.0);
        assert_eq!(longest_gap(&[], t0, at(300), &[]), 300.0);
    }

    #[test]
    fn stream_metrics_are_read_by_label() {
        let text = "edgecam_stream_frames_total{stream=\"cam0\"} 10\n\
                    edgecam_stream_frames_total{stream=\"cam1\"} 25\n\
                    edgecam_stream_frames_totalx{stream=\"cam1\"} 99\n";
        assert_eq!(
            stream_metric(text, "edgecam_stream_frames_total", "cam1"),
            Some(25.0)
        );
        assert_eq!(
            stream_metric(text, "edgecam_stream_frames_total", "cam9"),
            None
        );
    }
}
