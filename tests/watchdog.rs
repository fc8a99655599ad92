//! The real binary under a fake systemd: a Unix datagram socket as `NOTIFY_SOCKET` and
//! `WATCHDOG_USEC=2000000`. Proves READY/WATCHDOG/STATUS/STOPPING are sent when they should
//! be, that a hung stream loop, control task, main loop, web server, live pusher or ONVIF input stops the
//! pings (and is named in STATUS), and that a camera that is merely unreachable does not.
//! One test runs in-process with a manual clock: a hung live client loop makes the `live`
//! beacon stale while an idle or healthy pusher keeps it fresh.
//!
//! Timing is only asserted with generous windows (the machine is noisy); the measured
//! intervals are printed (`cargo test --all-features --test watchdog -- --nocapture`).
#![cfg(feature = "fault-injection")]

mod common;
mod support;
mod webutil;

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `WATCHDOG_USEC` given to the daemon: it pings every second.
const WATCHDOG_USEC: &str = "2000000";
/// The daemon's budget for a stream loop (`health::STREAM_BUDGET`).
const STREAM_BUDGET: Duration = Duration::from_secs(5);
/// The daemon's budget for the control task (`health::CONTROL_BUDGET`).
const CONTROL_BUDGET: Duration = Duration::from_secs(10);
/// The daemon's budget for its main loop (`health::MAIN_BUDGET`).
const MAIN_BUDGET: Duration = Duration::from_secs(10);
/// The daemon's budget for the web self-probe (`health::WEB_BUDGET`).
const WEB_BUDGET: Duration = Duration::from_secs(15);
/// The daemon's budget for the live pusher (`health::LIVE_BUDGET`).
const LIVE_BUDGET: Duration = edgecam::health::LIVE_BUDGET;
/// Slack on top of any budget for a loaded machine.
const SLACK: Duration = Duration::from_secs(20);

/// A daemon process and the fake systemd socket it reports to.
struct Service {
    /// The process.
    child: Child,
    /// The fake `NOTIFY_SOCKET`.
    sock: UnixDatagram,
    /// Every line received, with when.
    lines: Vec<(Instant, String)>,
    /// The web port.
    port: u16,
    /// Socket, state dir and config live here.
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Service {
    /// `edgecam demo --streams 2` with an optional `EDGECAM_FAULT`.
    fn demo(fault: Option<&str>) -> Service {
        Service::start(fault, |dir, port| {
            vec![
                "demo".into(),
                "--streams".into(),
                "2".into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--state-dir".into(),
                dir.join("state").display().to_string(),
            ]
        })
    }

    /// `edgecam run --config` with one RTSP camera on a port where nobody listens.
    fn unreachable_camera() -> Service {
        Service::start(None, |dir, port| {
            let cam_port = free_port();
            let config = format!(
                "[web]\nlisten = \"127.0.0.1:{port}\"\n\n[paths]\nstate_dir = \"{}\"\n\n\
                 [[streams]]\nid = \"gate\"\nkind = \"rtsp\"\nurl = \"rtsp://127.0.0.1:{cam_port}/x\"\n\
                 connect_timeout_ms = 1000\n",
                dir.join("state").display()
            );
            let path = dir.join("config.toml");
            std::fs::write(&path, config).unwrap();
            vec!["run".into(), "--config".into(), path.display().to_string()]
        })
    }

    /// `edgecam run --config` with one test-pattern stream and a viewer token ([`TOKEN`]).
    fn pattern_with_token() -> Service {
        Service::start(None, |dir, port| {
            let config = format!(
                "[web]\nlisten = \"127.0.0.1:{port}\"\n\
                 tokens = [{{ name = \"test\", token = \"{TOKEN}\", role = \"viewer\" }}]\n\n\
                 [paths]\nstate_dir = \"{}\"\n\n\
                 [[streams]]\nid = \"cam1\"\nkind = \"testpattern\"\nwidth = 160\nheight = 96\n",
                dir.join("state").display()
            );
            let path = dir.join("config.toml");
            std::fs::write(&path, config).unwrap();
            vec!["run".into(), "--config".into(), path.display().to_string()]
        })
    }

    /// `edgecam run --config` with one test-pattern stream and an alarm `door` raised by the
    /// ONVIF test camera on loopback `cam_port`, with an optional `EDGECAM_FAULT`.
    fn onvif_input(fault: Option<&str>, cam_port: u16) -> Service {
        Service::start(fault, |dir, port| {
            let config = format!(
                "[web]\nlisten = \"127.0.0.1:{port}\"\n\
                 tokens = [{{ name = \"test\", token = \"{TOKEN}\", role = \"viewer\" }}]\n\n\
                 [paths]\nstate_dir = \"{}\"\n\n\
                 [[streams]]\nid = \"cam1\"\nkind = \"testpattern\"\nwidth = 160\nheight = 96\n\n\
                 [[alarms]]\nid = \"door\"\nstream = \"cam1\"\n\
                 [alarms.onvif]\naddress = \"127.0.0.1:{cam_port}\"\nuser = \"{}\"\npassword = \"{}\"\n",
                dir.join("state").display(),
                support::onvif::USER,
                support::onvif::PASSWORD,
            );
            let path = dir.join("config.toml");
            std::fs::write(&path, config).unwrap();
            vec!["run".into(), "--config".into(), path.display().to_string()]
        })
    }

    fn start(fault: Option<&str>, args: impl FnOnce(&Path, u16) -> Vec<String>) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let sock_path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&sock_path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgecam"));
        cmd.args(args(dir.path(), port))
            .env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", WATCHDOG_USEC)
            .env_remove("WATCHDOG_PID")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        match fault {
            Some(f) => cmd.env("EDGECAM_FAULT", f),
            None => cmd.env_remove("EDGECAM_FAULT"),
        };
        let child = cmd.spawn().unwrap();
        Service {
            child,
            sock,
            lines: Vec::new(),
            port,
            _dir: dir,
        }
    }

    /// Receives for up to `timeout`, until a line satisfies `pred`; returns its index.
    fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<usize> {
        let end = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        let mut from = self.lines.len();
        while Instant::now() < end {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let now = Instant::now();
                for line in String::from_utf8_lossy(&buf[..n]).lines() {
                    self.lines.push((now, line.to_string()));
                }
            }
            while from < self.lines.len() {
                if pred(&self.lines[from].1) {
                    return Some(from);
                }
                from += 1;
            }
        }
        None
    }

    /// Receives everything for `d`.
    fn collect_for(&mut self, d: Duration) {
        let _ = self.wait_for(d, |_| false);
    }

    fn wait_ready(&mut self) -> Instant {
        let i = self
            .wait_for(Duration::from_secs(120), |l| l == "READY=1")
            .expect("READY=1 within two minutes");
        self.lines[i].0
    }

    fn pings_after(&self, t: Instant) -> Vec<Instant> {
        self.lines
            .iter()
            .filter(|(at, l)| *at >= t && l == "WATCHDOG=1")
            .map(|(at, _)| *at)
            .collect()
    }

    fn statuses(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|(_, l)| l.strip_prefix("STATUS="))
            .collect()
    }

    fn terminate(&mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM");
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The viewer token of [`Service::pattern_with_token`].
const TOKEN: &str = "watchdog-test-token-0123456789";

/// `GET /api/status` with [`TOKEN`] over a plain TCP connection; the JSON body.
fn status_json(port: u16) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        tcp,
        "GET /api/status HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

fn mean_interval(pings: &[Instant]) -> Duration {
    let n = pings.len().saturating_sub(1).max(1) as u32;
    match (pings.first(), pings.last()) {
        (Some(a), Some(b)) => (*b - *a) / n,
        _ => Duration::ZERO,
    }
}

#[test]
fn healthy_daemon_is_ready_after_listening_pings_reports_status_and_stops_on_sigterm() {
    let mut s = Service::demo(None);
    let ready = s.wait_ready();
    TcpStream::connect(("127.0.0.1", s.port)).expect("the web port accepts once READY=1 is sent");
    let extend = s
        .lines
        .iter()
        .position(|(_, l)| l.starts_with("EXTEND_TIMEOUT_USEC="));
    let ready_at = s.lines.iter().position(|(_, l)| l == "READY=1");
    assert!(
        extend.is_some() && extend < ready_at,
        "start-up asks for more time before READY=1: {:?}",
        s.lines
    );
    s.collect_for(Duration::from_secs(8));
    let pings = s.pings_after(ready);
    println!(
        "healthy: {} pings in 8 s after READY, mean interval {:?}",
        pings.len(),
        mean_interval(&pings)
    );
    assert!(
        pings.len() >= 4,
        "expected about 8 pings, got {}",
        pings.len()
    );
    let statuses = s.statuses();
    assert!(
        statuses.iter().any(|l| l.contains("live · active cam1")),
        "status lines: {statuses:?}"
    );
    s.terminate();
    assert!(
        s.wait_for(Duration::from_secs(20), |l| l == "STOPPING=1")
            .is_some(),
        "STOPPING=1 after SIGTERM"
    );
    let status = s
        .wait_exit(Duration::from_secs(30))
        .expect("exits after SIGTERM");
    assert!(status.success(), "clean exit, got {status:?}");
}

/// Starts a demo whose loop `target` hangs 3 s after start, and checks that the pings stop
/// within `budget` (plus slack) and STATUS names the loop. Returns the still running service.
fn hang_stops_the_pings(target: &str, budget: Duration) -> Service {
    let s = Service::demo(Some(&format!("hang:{target}@3000")));
    pings_stop(s, target, budget)
}

/// [`hang_stops_the_pings`] for a service `s` started with `hang:<target>@3000`.
fn pings_stop(mut s: Service, target: &str, budget: Duration) -> Service {
    let ready = s.wait_ready();
    // The pings must stop within the loop's budget (plus a check period and slack) of the
    // hang, which starts about 3 s after the process did.
    let tripped = s
        .wait_for(Duration::from_secs(3) + budget + SLACK, |l| {
            l.starts_with("STATUS=watchdog:") && l.contains(target)
        })
        .unwrap_or_else(|| panic!("STATUS names {target}; got {:?}", s.statuses()));
    let tripped_at = s.lines[tripped].0;
    let before = s.pings_after(ready);
    assert!(!before.is_empty(), "pings while healthy");
    s.collect_for(Duration::from_secs(4));
    let after = s.pings_after(tripped_at);
    assert!(
        after.is_empty(),
        "no ping after the trip, got {}",
        after.len()
    );
    let last = before.last().copied().unwrap_or(ready);
    println!(
        "{target}: {} pings before the hang (mean {:?}); last ping {:?} after READY, \
         hang at ~3 s after start, STATUS named it {:?} after READY",
        before.len(),
        mean_interval(&before),
        last - ready,
        tripped_at - ready
    );
    s
}

#[test]
fn a_hung_stream_loop_stops_the_pings_and_is_named() {
    let _s = hang_stops_the_pings("stream:cam2", STREAM_BUDGET);
}

/// The ONVIF input's PullPoint loop beats `onvif:door`: hung (at its heartbeat, while a long
/// poll waits on the camera), it stops the pings and is named.
#[test]
fn a_hung_onvif_input_loop_stops_the_pings_and_is_named() {
    let mut cam = support::onvif::Camera::start(0, 60);
    let s = Service::onvif_input(Some("hang:onvif:door@3000"), cam.port);
    let s = pings_stop(s, "onvif:door", edgecam::health::ONVIF_BUDGET);
    let subscribed = cam.stats().get("subscribe").copied().unwrap_or(0);
    assert!(
        subscribed >= 1,
        "the input had subscribed: {:?}",
        cam.stats()
    );
    drop(s);
}

/// A healthy ONVIF input (subscribed, long-polling a quiet camera) keeps the pings going.
#[test]
fn a_quiet_onvif_input_does_not_stop_the_pings() {
    let mut cam = support::onvif::Camera::start(0, 60);
    let mut s = Service::onvif_input(None, cam.port);
    let ready = s.wait_ready();
    s.collect_for(edgecam::health::ONVIF_BUDGET * 3);
    let statuses = s.statuses();
    assert!(
        !statuses.iter().any(|l| l.starts_with("watchdog:")),
        "no trip: {statuses:?}"
    );
    assert!(s.pings_after(ready).len() >= 8, "pings continue");
    let st = status_json(s.port);
    let beacon = st["watchdog"]["beacons"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["name"] == "onvif:door"))
        .cloned();
    assert_eq!(
        beacon.as_ref().map(|b| &b["fresh"]),
        Some(&serde_json::json!(true)),
        "the ONVIF input has a fresh beacon: {st}"
    );
    assert!(cam.stats().get("subscribe").copied().unwrap_or(0) >= 1);
}

#[test]
fn a_hung_control_task_stops_the_pings_and_is_named() {
    let _s = hang_stops_the_pings("control", CONTROL_BUDGET);
}

#[test]
fn a_hung_main_loop_stops_the_pings_and_is_named() {
    let _s = hang_stops_the_pings("main", MAIN_BUDGET);
}

#[test]
fn a_web_server_that_stops_answering_stops_the_pings_and_is_named() {
    let _s = hang_stops_the_pings("web", WEB_BUDGET);
}

/// Debug and test builds unwind: the panicking supervisor task ends, its beacon goes stale
/// and the watchdog catches it just like a hang. (Release builds abort on panic instead.)
#[test]
fn a_panicked_stream_loop_stops_the_pings_and_is_named() {
    let mut s = Service::demo(Some("panic:stream:cam1@2000"));
    let ready = s.wait_ready();
    let tripped = s
        .wait_for(Duration::from_secs(2) + STREAM_BUDGET + SLACK, |l| {
            l.starts_with("STATUS=watchdog:") && l.contains("stream:cam1")
        })
        .unwrap_or_else(|| panic!("STATUS names stream:cam1; got {:?}", s.statuses()));
    let tripped_at = s.lines[tripped].0;
    assert!(!s.pings_after(ready).is_empty(), "pings while healthy");
    s.collect_for(Duration::from_secs(3));
    assert!(
        s.pings_after(tripped_at).is_empty(),
        "no ping after the trip"
    );
    println!(
        "panic stream:cam1: STATUS named it {:?} after READY",
        tripped_at - ready
    );
}

#[test]
fn an_unreachable_camera_does_not_stop_the_pings() {
    let mut s = Service::unreachable_camera();
    let ready = s.wait_ready();
    // Longer than the stream budget: a supervisor that stopped beating in backoff would
    // have tripped the watchdog by the end.
    let window = STREAM_BUDGET * 2;
    s.collect_for(window);
    let pings = s.pings_after(ready);
    println!(
        "unreachable camera: {} pings in {window:?}, mean {:?}",
        pings.len(),
        mean_interval(&pings)
    );
    assert!(pings.len() >= 5, "pings continue, got {}", pings.len());
    let last = *pings.last().unwrap();
    assert!(
        Instant::now() - last < Duration::from_secs(4),
        "pings still arriving at the end"
    );
    let statuses = s.statuses();
    assert!(
        !statuses.iter().any(|l| l.starts_with("watchdog:")),
        "no trip: {statuses:?}"
    );
    assert!(
        statuses.iter().any(|l| l.starts_with("0/1 live")),
        "status shows the camera down: {statuses:?}"
    );
}

#[test]
fn a_hung_live_pusher_relay_stops_the_pings_and_is_named() {
    let _s = hang_stops_the_pings("live", LIVE_BUDGET);
}

/// Moves `clock` past the live budget, then waits (real time) until `pred(now)` holds.
async fn advance_until(
    clock: &edgecam::clock::ManualClock,
    what: &str,
    pred: impl Fn(u64) -> bool,
) {
    use edgecam::clock::Clock;
    clock.advance_ns(3 * LIVE_BUDGET.as_nanos() as u64);
    for _ in 0..200 {
        if pred(clock.mono_ns()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// In-process, with a manual clock: the live pusher's `live` beacon stays fresh with no
/// client and with a healthy client as time passes, and goes stale once a client loop hangs
/// (`hang:live:client`, armed in this process; the other tests here run child processes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_live_client_loop_makes_the_live_beacon_stale() {
    use edgecam::clock::{Clock, ManualClock};
    use edgecam::daemon::{Daemon, Serving};
    use edgecam::web::{WebOptions, WebServer};
    use std::sync::Arc;
    use webutil::{TestServer, VIEWER_TOKEN, config};

    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(config(dir.path()), clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    let table = daemon.beacons();
    let (handles, daemon) = Serving::start(daemon);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = WebServer::start(handles, listener, WebOptions::default(), clock.clone())
        .await
        .unwrap();
    let host = server.local_addr().to_string();
    let state = Arc::clone(server.state());
    let s = TestServer {
        server: Some(server),
        daemon: Some(daemon),
        base: format!("http://{host}"),
        host,
        dir,
        http: reqwest::Client::new(),
    };
    let live = |now: u64| {
        table
            .report(now)
            .into_iter()
            .find(|b| b.name == "live")
            .expect("the live pusher is watched")
    };
    advance_until(&clock, "the idle relay to beat", |now| live(now).fresh).await;
    let mut a = s.live(VIEWER_TOKEN, &["h264"], "").await;
    a.next_text("init").await;
    assert_eq!(state.live_clients(), 1);
    advance_until(&clock, "the healthy client to beat", |now| live(now).fresh).await;

    assert!(edgecam::health::fault::arm("hang:live:client"));
    let _b = s.live(VIEWER_TOKEN, &["h264"], "").await;
    for _ in 0..200 {
        if state.live_clients() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state.live_clients(), 2, "the second client connected");
    // Every other loop keeps beating at the new time; `live` cannot, so it is the one
    // the watchdog names.
    advance_until(&clock, "every loop but the live pusher to beat", |now| {
        table
            .report(now)
            .iter()
            .all(|b| b.fresh || b.name == "live")
    })
    .await;
    let now = clock.mono_ns();
    let beacon = live(now);
    assert!(!beacon.fresh, "{beacon:?}");
    assert!(
        beacon.age_ms >= 3 * LIVE_BUDGET.as_millis() as u64,
        "{beacon:?}"
    );
    let stale = table.stalest(now).expect("a stale loop");
    assert_eq!(stale.name, "live");
    drop(a);
    s.stop().await;
}

/// The System tab's data from the real binary under the fake systemd: the watchdog is enabled
/// with the given period, pings are counted as they reach the socket, and every watched loop
/// (stream, control, main loop, web server, live pusher) is listed with its budget, fresh.
#[test]
fn the_status_api_shows_the_watchdog_its_pings_and_every_beacon() {
    let mut s = Service::pattern_with_token();
    let ready = s.wait_ready();
    s.collect_for(Duration::from_secs(4));
    let received = s.pings_after(ready).len() as u64;
    let st = status_json(s.port);
    let w = &st["watchdog"];
    println!("status.watchdog: {w}");
    assert_eq!(w["running"], true, "{w}");
    assert_eq!(w["enabled"], true, "{w}");
    assert_eq!(w["period_ms"], 2000, "{w}");
    assert_eq!(w["ping_every_ms"], 1000, "{w}");
    let pings = w["pings"].as_u64().unwrap();
    assert!(received >= 1, "pings reach the socket");
    // Counted right after each send: at least every ping received so far (one may be in flight).
    assert!(
        pings + 1 >= received,
        "{pings} counted, {received} received"
    );
    assert!(w["last_ping_age_ms"].is_u64(), "{w}");
    assert!(w["tripped"].is_null(), "{w}");
    let beacons = w["beacons"].as_array().unwrap();
    for name in ["stream:cam1", "control", "main", "web", "live"] {
        let b = beacons
            .iter()
            .find(|b| b["name"] == name)
            .unwrap_or_else(|| panic!("{name} is watched: {w}"));
        assert_eq!(b["fresh"], true, "{b}");
        assert!(b["budget_ms"].as_u64().unwrap() >= 5000, "{b}");
    }
}
