//! Browser tests in real headless Chromium and Firefox: `edgecam demo` with three test-pattern
//! streams, driven by `tests/browser/run.mjs` (Node + playwright-core, Debian's
//! /usr/bin/chromium), `lan.mjs` (the same from a LAN-style origin: the MSE path, then HTTPS
//! with WebCodecs), `clips.mjs` (event clips: replay beside the live view, list, player) and
//! `firefox.mjs` (puppeteer-core over WebDriver BiDi, Debian's
//! /usr/bin/firefox-esr: the MSE path in a second engine).
//!
//! The script logs in with the printed one-time password and sets a new one, checks that the
//! live view paints changing pictures on the WebCodecs path and on the JPEG path (forced with
//! `?mode=jpeg`), clicks another stream, adds an alarm on the Alarms tab, triggers it through
//! the API, sees the banner and acknowledges it, and saves screenshots under
//! `target/tmp/browser/`. It prints the latencies the page measured (`LATENCY {...}`), which
//! this test echoes.
//!
//! The demo is this test's (debug) build unless `EDGECAM_BIN` names another binary; debug
//! builds make the JPEG path slow (its encoder is instantiated in this crate at `opt-level` 0).
//!
//! Needs: `/usr/bin/chromium` (Debian `chromium`), `/usr/bin/firefox-esr` (Debian
//! `firefox-esr`), Node, and `npm ci` in `tests/browser` (done here when `node_modules` is
//! missing).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Kills the demo when the test ends, however it ends.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium() -> PathBuf {
    PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()))
}

fn ensure_node_modules(dir: &Path) {
    if ["playwright-core", "puppeteer-core"]
        .iter()
        .all(|m| dir.join("node_modules").join(m).exists())
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .expect("npm is installed (Node is needed for the browser test)");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The two tests run one after the other: each picks a free port and starts a demo and a
/// browser, and two at once on 2 cores only race each other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Checks the browser and the scripts' node modules; returns the browser's path.
fn browser_ready() -> PathBuf {
    let browser = chromium();
    assert!(
        browser.exists(),
        "{} is missing: apt-get install chromium (or set CHROMIUM)",
        browser.display()
    );
    let script_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    ensure_node_modules(&script_dir);
    browser
}

/// Starts `edgecam demo` with `streams` test patterns on `port` and `extra` arguments; returns
/// it (killed on drop), its state dir and the one-time password it printed.
fn start_demo(
    streams: u32,
    port: u16,
    https_port: u16,
    extra: &[&str],
) -> (Demo, tempfile::TempDir, String) {
    let state = tempfile::tempdir().unwrap();
    // EDGECAM_BIN runs another build (e.g. target/release/edgecam for representative numbers).
    let bin = std::env::var("EDGECAM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_edgecam").into());
    let mut child = Command::new(bin)
        .args(["demo", "--streams", &streams.to_string(), "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--https-listen")
        .arg(format!("127.0.0.1:{https_port}"))
        .arg("--state-dir")
        .arg(state.path())
        .args(extra)
        .stdout(Stdio::piped())
        // Warnings and errors only: a demo that dies says why.
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .expect("edgecam demo starts");
    let stdout = child.stdout.take().unwrap();
    let demo = Demo(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("demo: {line}");
            if let Some(pw) = line.split("one-time admin password: ").nth(1) {
                let _ = tx.send(pw.trim().to_string());
            }
        }
    });
    let password = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("demo prints a one-time admin password");
    (demo, state, password)
}

/// `<hostname>.local`: a name the box answers to without any configuration.
fn box_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("the kernel's hostname");
    format!("{}.local", host.trim().to_ascii_lowercase())
}

/// The installer's path from a LAN origin (`tests/browser/installer.mjs`): first password,
/// an RTSP camera added and tested on the Cameras tab against the real test RTSP server,
/// saved, and shown live; *From ONVIF* against the ONVIF test camera; a token, an HTTP alarm raised by a detector and acknowledged; a
/// camera that is down; the layout at 1366×800 and 390×844; no console errors.
#[test]
fn the_installer_adds_an_rtsp_camera_from_a_lan_origin() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let browser = browser_ready();
    let camera = support::RtspServer::start(support::ServerOpts {
        width: 640,
        height: 360,
        bitrate_kbps: 800,
        ..support::ServerOpts::default()
    });
    let onvif = support::onvif::Camera::start(0, 60);
    let port = free_port();
    let https_port = free_port();
    let (demo, _state, password) = start_demo(1, port, https_port, &[]);
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let args = [
        port.to_string(),
        password.clone(),
        camera.url(0),
        artifacts.display().to_string(),
        // A camera that is down: nothing listens on this port.
        free_port().to_string(),
        // The box's mDNS name, as a phone on the LAN reaches it (the daemon knows its own
        // hostname; Chromium maps the name to 127.0.0.1).
        box_name(),
        https_port.to_string(),
        // The ONVIF test camera for *From ONVIF*.
        onvif.port.to_string(),
    ];
    run_node("installer.mjs", &args, &[("CHROMIUM", browser)]);
    drop(demo);
    assert!(artifacts.join("installer-camera-live.png").exists());
}

#[test]
fn the_page_in_headless_chromium() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let browser = browser_ready();
    let port = free_port();
    let (demo, _state, password) = start_demo(3, port, free_port(), &[]);

    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let args = [
        format!("http://127.0.0.1:{port}"),
        password,
        artifacts.display().to_string(),
    ];
    let stdout = run_node("run.mjs", &args, &[("CHROMIUM", browser)]);
    drop(demo);
    let latency = stdout
        .lines()
        .find_map(|l| l.strip_prefix("LATENCY "))
        .expect("the script prints the measured latencies");
    let v: serde_json::Value = serde_json::from_str(latency).unwrap();
    for path in ["webcodecs", "jpeg"] {
        for key in ["first_frame_ms", "click_to_paint_ms", "alarm_to_paint_ms"] {
            assert!(v[path][key].is_number(), "{path}.{key} measured: {v}");
        }
        assert!(
            v[path]["ingest_to_paint_ms"]["n"].as_u64().unwrap() > 0,
            "{v}"
        );
    }
    println!("measured latencies: {latency}");
    assert!(artifacts.join("alarm-banner.png").exists());
    assert!(artifacts.join("live-webcodecs.png").exists());
    assert!(artifacts.join("live-jpeg.png").exists());
}

/// The LAN name the MSE tests open the page by (the demo is told it is its own; each browser
/// maps it to 127.0.0.1).
const LAN_NAME: &str = "edgebox.test";
/// The demo's test patterns run at the default frame rate (`streams[].fps`, 25).
const DEMO_FPS: u32 = 25;

/// Runs `script` from `tests/browser` with `args`; prints its output, fails the test (naming
/// the screenshots folder) when it fails, and returns its standard output.
fn run_node(script: &str, args: &[String], envs: &[(&str, PathBuf)]) -> String {
    let script_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let out = Command::new("node")
        .arg(script_dir.join(script))
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_os_str())))
        .current_dir(&script_dir)
        .output()
        .unwrap_or_else(|e| panic!("node not runnable ({e}): install Node.js (Debian `nodejs`)"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{script} failed (screenshots in {})",
        artifacts.display()
    );
    stdout
}

/// Runs `script` with `args` and the artifacts folder as its last argument (see
/// [`run_node`]); returns its `RESULT` line as JSON.
fn run_script(script: &str, args: &[String], envs: &[(&str, PathBuf)]) -> serde_json::Value {
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let mut args = args.to_vec();
    args.push(artifacts.display().to_string());
    let stdout = run_node(script, &args, envs);
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("{script} prints its RESULT line"));
    println!("{script} measured: {result}");
    serde_json::from_str(result).unwrap()
}

/// The page as a LAN user opens it (`http://edgebox.test:PORT/`, not a secure context): it
/// chooses the MSE path by itself, paints changing frames at about the camera's rate, and a
/// click and an alarm switch the picture; the same box over HTTPS uses WebCodecs
/// (`tests/browser/lan.mjs`).
#[test]
fn the_page_from_a_lan_origin_plays_h264_through_mse_in_chromium() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let browser = browser_ready();
    let (port, https_port) = (free_port(), free_port());
    let (demo, _state, password) = start_demo(3, port, https_port, &["--hostname", LAN_NAME]);
    let v = run_script(
        "lan.mjs",
        &[
            port.to_string(),
            https_port.to_string(),
            password,
            DEMO_FPS.to_string(),
        ],
        &[("CHROMIUM", browser)],
    );
    drop(demo);
    assert_eq!(v["mse"]["path"], "mse", "{v}");
    assert!(
        v["mse"]["ingest_to_paint_ms"]["n"].as_u64().unwrap() > 0,
        "{v}"
    );
    assert!(v["mse"]["click_to_paint_ms"].is_number(), "{v}");
    assert!(v["mse"]["alarm_to_paint_ms"].is_number(), "{v}");
}

/// The MSE scenario in a second engine: Debian's Firefox ESR, driven over WebDriver BiDi
/// (`tests/browser/firefox.mjs`). A machine without it fails here, naming the package.
#[test]
fn the_page_from_a_lan_origin_plays_h264_through_mse_in_firefox() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let firefox =
        PathBuf::from(std::env::var("FIREFOX").unwrap_or_else(|_| "/usr/bin/firefox-esr".into()));
    assert!(
        firefox.exists(),
        "{} is missing: apt-get install firefox-esr (or set FIREFOX)",
        firefox.display()
    );
    ensure_node_modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser"));
    let port = free_port();
    let (demo, _state, password) = start_demo(3, port, free_port(), &["--hostname", LAN_NAME]);
    let v = run_script(
        "firefox.mjs",
        &[port.to_string(), password, DEMO_FPS.to_string()],
        &[("FIREFOX", firefox)],
    );
    drop(demo);
    assert_eq!(v["mse"]["path"], "mse", "{v}");
    assert!(
        v["mse"]["ingest_to_paint_ms"]["n"].as_u64().unwrap() > 0,
        "{v}"
    );
}

/// Event clips in the page (`tests/browser/clips.mjs`), from a LAN origin: clips turned on
/// and an alarm added on the Alarms tab; the alarm's "Replay the last 3 s" plays its clip in a
/// `<video>` beside the live picture (which keeps painting) and loops the seconds before the
/// raise; the System tab lists the finished clip, the Events table's link plays it, it seeks
/// to its middle (range requests), and an admin deletes it.
#[test]
fn the_page_replays_an_alarm_clip_in_chromium() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let browser = browser_ready();
    let port = free_port();
    let (demo, _state, password) = start_demo(2, port, free_port(), &["--hostname", LAN_NAME]);
    let v = run_script(
        "clips.mjs",
        &[port.to_string(), password],
        &[("CHROMIUM", browser)],
    );
    drop(demo);
    assert!(v["replay_loop_s"].is_number(), "{v}");
    assert!(v["clip_duration_s"].as_f64().unwrap() >= 3.0, "{v}");
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    assert!(artifacts.join("clips-replay.png").exists());
}

/// A camera whose picture size halves mid-session (`tests/browser/resize.mjs`), from a LAN
/// origin over MSE: the `<video>` plays the full size, then half of it in the same WebSocket
/// session (a new init segment), and keeps painting; no console errors.
#[test]
fn the_page_plays_a_resolution_change_through_mse_in_chromium() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let browser = browser_ready();
    let camera = support::RtspServer::start(support::ServerOpts {
        width: 320,
        height: 240,
        fps: 15,
        gop: 15,
        zoo_mounts: true,
        resize_after_s: 6,
        ..support::ServerOpts::default()
    });
    let port = free_port();
    let (demo, _state, password) = start_demo(1, port, free_port(), &["--hostname", LAN_NAME]);
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    run_node(
        "resize.mjs",
        &[
            port.to_string(),
            password,
            format!("rtsp://127.0.0.1:{}/resize", camera.port()),
            "320".into(),
            artifacts.display().to_string(),
        ],
        &[("CHROMIUM", browser)],
    );
    drop(demo);
    assert!(artifacts.join("resize-after.png").exists());
}

/// The WebCodecs path jumps to the live edge when the viewer's decoder is slower than the
/// camera (`tests/browser/jump.mjs`: the page's `VideoDecoder` slowed to 10 pictures a second
/// on a 25 fps camera): `stats.jumps` counts and the picture stays within seconds of live.
#[test]
fn the_page_jumps_to_live_when_its_decoder_falls_behind_in_chromium() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let browser = browser_ready();
    let port = free_port();
    let (demo, _state, password) = start_demo(1, port, free_port(), &[]);
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let v = run_script(
        "jump.mjs",
        &[format!("http://127.0.0.1:{port}"), password],
        &[("CHROMIUM", browser)],
    );
    drop(demo);
    assert!(v["jumps"].as_u64() >= Some(2), "{v}");
    assert!(artifacts.join("jump.png").exists());
}

/// MSE when the browser's SourceBuffer is full (`tests/browser/quota.mjs`: a 2 s quota, past
/// which appendBuffer throws QuotaExceededError): the player frees what lies behind the
/// playhead and the picture keeps painting at about the camera's rate.
#[test]
fn the_page_plays_on_through_a_full_source_buffer_in_chromium() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let browser = browser_ready();
    let port = free_port();
    let (demo, _state, password) = start_demo(1, port, free_port(), &["--hostname", LAN_NAME]);
    let v = run_script(
        "quota.mjs",
        &[port.to_string(), password, DEMO_FPS.to_string()],
        &[("CHROMIUM", browser)],
    );
    drop(demo);
    assert!(v["quota_errors"].as_u64() > Some(0), "{v}");
}

/// A camera with B-frames (x264 Main, `bframes=2`) in Chromium (`tests/browser/bframes.mjs`):
/// over MSE from the LAN origin the `<video>` plays it at about its rate with no corrupted
/// frames; over WebCodecs (HTTPS) the decoder hands pictures out in presentation order.
#[test]
fn the_page_plays_a_b_frame_camera_in_chromium() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let browser = browser_ready();
    let fps = 25;
    let camera = support::RtspServer::start(support::ServerOpts {
        width: 320,
        height: 240,
        fps,
        gop: 25,
        bitrate_kbps: 300,
        profile: "main".into(),
        bframes: 2,
        ..support::ServerOpts::default()
    });
    let (port, https_port) = (free_port(), free_port());
    let (demo, _state, password) = start_demo(1, port, https_port, &["--hostname", LAN_NAME]);
    let v = run_script(
        "bframes.mjs",
        &[
            port.to_string(),
            https_port.to_string(),
            password,
            camera.url(0),
            fps.to_string(),
        ],
        &[("CHROMIUM", browser)],
    );
    drop(demo);
    assert!(
        v["webcodecs_pictures"].as_u64() > Some(u64::from(fps)),
        "{v}"
    );
}

/// ONVIF inputs on the Alarms tab (`tests/browser/alarms-onvif.mjs`), from a LAN origin,
/// against the ONVIF test camera: an alarm's camera events set up by address, user and
/// password; a wrong password shown in the status, the right one subscribed; the password
/// write-only (in no field after the save, kept by an edit that leaves it alone); unticked,
/// the input goes.
#[test]
fn the_alarms_tab_edits_an_onvif_input_in_chromium() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let browser = browser_ready();
    let onvif = support::onvif::Camera::start(0, 60);
    let port = free_port();
    let (demo, _state, password) = start_demo(2, port, free_port(), &["--hostname", LAN_NAME]);
    let v = run_script(
        "alarms-onvif.mjs",
        &[port.to_string(), password, onvif.port.to_string()],
        &[("CHROMIUM", browser)],
    );
    drop(demo);
    assert_eq!(v["ok"], true, "{v}");
}
