//! The read-only URLs as real clients use them (issue 14, items 4 to 6): ffmpeg/ffprobe,
//! OpenCV (`cv2.VideoCapture`) and VLC read `/api/streams/{id}/mjpeg` of a real web server
//! with HTTP Basic (`http://name:token@host/...`) and with the token URL (`?token=`); the
//! 401 of those URLs (and only those) challenges for Basic; a token deleted from the config
//! stops working, open streams included; an MJPEG of a camera that is down sends the "no
//! video" placeholder and then real pictures when the camera comes back; `promtool check
//! metrics` accepts `/metrics`.
//!
//! The clients are Debian's: a missing one fails its test naming the package to install
//! (`.ci/run` installs them all). Waits poll against generous deadlines; nothing is timed.

mod common;
mod support;
mod webutil;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use edgecam::config::{Config, Role, StreamConfig, StreamKind, TokenConfig};
use edgecam::web::WebOptions;
use reqwest::Method;
use serde_json::Value;
use support::tools::{require, vlc_command};
use support::{RtspServer, ServerOpts};
use webutil::*;

/// Deadline of every wait.
const DEADLINE: Duration = Duration::from_secs(90);
/// Size of the test-pattern cameras of [`webutil::config`].
const PATTERN_SIZE: (u32, u32) = (160, 96);
/// The viewer token's name: the Basic user name.
const VIEWER: &str = "viewer";
/// The interpreter with Debian's python3-opencv (a pyenv `python3` on PATH lacks it).
const PYTHON: &str = "/usr/bin/python3";

/// Runs `cmd` to its end (bounded by `timeout` from coreutils) and returns what it printed.
fn run(mut cmd: Command) -> Output {
    let out = cmd.output().expect("the command starts");
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// `timeout 60 <tool> args...`: a client that hangs fails instead of holding the test.
fn bounded(tool: &Path) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", "60"]).arg(tool);
    cmd
}

/// `http://name:token@host/path`: the Basic form.
fn basic_url(s: &TestServer, path: &str) -> String {
    format!("http://{VIEWER}:{VIEWER_TOKEN}@{}{path}", s.host)
}

/// `http://host/path?token=...`: the token URL.
fn token_url(s: &TestServer, path: &str) -> String {
    format!("{}{path}?token={VIEWER_TOKEN}", s.base)
}

/// `GET path` with the viewer token over HTTP Basic.
fn get_basic(s: &TestServer, path: &str) -> reqwest::RequestBuilder {
    s.get(path).basic_auth(VIEWER, Some(VIEWER_TOKEN))
}

/// The web tests' box plus `extra` streams, validated.
fn config_with(dir: &Path, extra: Vec<StreamConfig>) -> Config {
    let mut cfg = webutil::config(dir);
    cfg.streams.extend(extra);
    edgecam::config::validate(&cfg).expect("test config is valid");
    cfg
}

/// Waits until every test-pattern camera stored a GOP (so a snapshot has a keyframe).
async fn wait_pictures(s: &TestServer) {
    s.wait_status("a GOP of every camera", |st| {
        st["streams"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["kind"] != "testpattern" || x["frames"].as_u64() > Some(10))
    })
    .await;
}

/// An RTSP camera `id` named `name` at `url`.
fn rtsp(id: &str, name: &str, url: &str) -> StreamConfig {
    StreamConfig {
        name: Some(name.into()),
        kind: StreamKind::Rtsp,
        url: Some(url.into()),
        width: None,
        height: None,
        fps: None,
        ..StreamConfig::testpattern(id, 2, 2, 1)
    }
}

#[tokio::test]
async fn ffmpeg_and_ffprobe_read_the_mjpeg_with_basic_auth_and_with_the_token_url() {
    let ffprobe = require("ffprobe", "ffmpeg");
    let ffmpeg = require("ffmpeg", "ffmpeg");
    let s = TestServer::start().await;
    let (w, h) = PATTERN_SIZE;
    for url in [
        basic_url(&s, "/api/streams/cam2/mjpeg"),
        token_url(&s, "/api/streams/cam2/mjpeg"),
    ] {
        let mut probe = bounded(&ffprobe);
        probe.args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
        ]);
        probe.args(["-of", "csv=p=0", &url]);
        let out = tokio::task::spawn_blocking(move || run(probe))
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("mjpeg,{w},{h}"),
            "{url}"
        );
        // Five decoded pictures as 8-bit grey: exactly five times width x height bytes.
        let mut decode = bounded(&ffmpeg);
        decode.args(["-v", "error", "-i", &url, "-frames:v", "5"]);
        decode.args(["-f", "rawvideo", "-pix_fmt", "gray", "-"]);
        let out = tokio::task::spawn_blocking(move || run(decode))
            .await
            .unwrap();
        assert_eq!(out.stdout.len(), 5 * (w * h) as usize, "{url}");
        assert!(
            out.stdout.iter().any(|&v| v > 40),
            "the pictures are not black"
        );
    }
    // A wrong password gets nothing, even after the challenge.
    let wrong = format!("http://{VIEWER}:wrong@{}/api/streams/cam2/mjpeg", s.host);
    let mut probe = bounded(&ffprobe);
    probe.args(["-v", "error", &wrong]);
    let out = tokio::task::spawn_blocking(move || probe.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.stop().await;
}

/// Reads `frames` pictures with `cv2.VideoCapture(url)`; prints `<count> <width> <height>`.
const OPENCV_SCRIPT: &str = r#"
import sys, cv2
cap = cv2.VideoCapture(sys.argv[1])
if not cap.isOpened():
    sys.exit("VideoCapture did not open " + sys.argv[1])
n, shape = 0, None
for _ in range(int(sys.argv[2])):
    ok, frame = cap.read()
    if not ok:
        break
    n, shape = n + 1, frame.shape
print(n, shape[1] if shape else 0, shape[0] if shape else 0)
"#;

#[tokio::test]
async fn opencv_reads_frames_from_the_token_url_and_the_basic_url() {
    assert!(
        Path::new(PYTHON).is_file(),
        "{PYTHON} is missing: install the Debian package python3"
    );
    let has_cv2 = Command::new(PYTHON)
        .args(["-c", "import cv2"])
        .status()
        .is_ok_and(|st| st.success());
    assert!(
        has_cv2,
        "no cv2 module: install the Debian package python3-opencv"
    );
    let s = TestServer::start().await;
    let (w, h) = PATTERN_SIZE;
    for url in [
        token_url(&s, "/api/streams/cam1/mjpeg"),
        basic_url(&s, "/api/streams/cam1/mjpeg"),
    ] {
        let mut cmd = bounded(Path::new(PYTHON));
        cmd.args(["-c", OPENCV_SCRIPT, &url, "10"]);
        let out = tokio::task::spawn_blocking(move || run(cmd)).await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("10 {w} {h}"),
            "{url}"
        );
    }
    s.stop().await;
}

/// A child process killed when dropped (a failing test leaves no VLC behind).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// VLC as a player with no window and no sound, its scene filter writing a PNG of every
/// fifth decoded picture into `home`.
fn vlc_player(vlc: &Path, home: &Path) -> Command {
    let mut cmd = vlc_command(vlc, home);
    cmd.args(["-I", "dummy", "--vout", "dummy", "--aout", "dummy"])
        .args([
            "--no-media-library",
            "--video-filter=scene",
            "--scene-format=png",
        ])
        .args(["--scene-ratio=5", "--scene-prefix=pic"])
        .arg(format!("--scene-path={}", home.display()));
    cmd
}

/// The PNG files VLC's scene filter wrote into `dir`: each one a picture VLC decoded.
fn decoded_pictures(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    v.sort();
    v
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

/// Plays `url` in VLC for 5 s; asserts it kept decoding pictures of the stream's size.
async fn vlc_plays(vlc: &Path, url: &str) {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = vlc_player(vlc, home.path());
    cmd.arg(url).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = Killed(cmd.spawn().expect("VLC starts"));
    let started = Instant::now();
    while decoded_pictures(home.path()).is_empty() {
        if let Some(st) = child.0.try_wait().unwrap() {
            let mut err = String::new();
            let _ = child.0.stderr.take().unwrap().read_to_string(&mut err);
            panic!("VLC ended ({st}) before decoding a picture of {url}:\n{err}");
        }
        assert!(started.elapsed() < DEADLINE, "VLC decoded nothing of {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = decoded_pictures(home.path()).len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    while decoded_pictures(home.path()).len() < first + 5 {
        assert!(started.elapsed() < DEADLINE, "VLC stopped decoding {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "VLC still plays after 5 s"
    );
    let pics = decoded_pictures(home.path());
    assert_eq!(png_size(pics.last().unwrap()), PATTERN_SIZE, "{url}");
}

#[tokio::test]
async fn vlc_plays_the_mjpeg_with_basic_auth_and_with_the_token_url() {
    let vlc = require("vlc", "vlc-bin (and vlc-plugin-base)");
    let s = TestServer::start().await;
    vlc_plays(&vlc, &basic_url(&s, "/api/streams/cam3/mjpeg")).await;
    vlc_plays(&vlc, &token_url(&s, "/api/streams/cam3/mjpeg")).await;
    s.stop().await;
}

/// The three read-only URLs.
const MEDIA: [&str; 3] = [
    "/api/streams/cam1/snapshot.jpg",
    "/api/streams/cam1/mjpeg",
    "/metrics",
];

#[tokio::test]
async fn only_the_media_urls_challenge_for_basic_and_accept_it() {
    let s = TestServer::start().await;
    wait_pictures(&s).await;
    let challenge = |r: &reqwest::Response| {
        r.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string())
    };
    for path in MEDIA {
        let r = s.get(path).go().await;
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(
            challenge(&r).as_deref(),
            Some("Basic realm=\"edgecam\""),
            "{path}"
        );
        assert!(r.json::<Value>().await.unwrap()["error"].is_string());
        for (user, pass) in [
            (VIEWER, "wrong-token"),
            ("operator", VIEWER_TOKEN),
            ("admin", ADMIN_PASSWORD),
            ("", ADMIN_PASSWORD),
        ] {
            let r = s.get(path).basic_auth(user, Some(pass)).go().await;
            assert_eq!(r.status(), 401, "{path} as {user}:{pass}");
            assert!(challenge(&r).is_some());
        }
        let r = s.get(&format!("{path}?token=wrong")).go().await;
        assert_eq!(r.status(), 401, "{path}?token=wrong");
    }
    let r = get_basic(&s, MEDIA[0]).go().await;
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..2], &[0xff, 0xd8]);
    let r = s
        .get(&format!("{}?token={VIEWER_TOKEN}", MEDIA[0]))
        .go()
        .await;
    assert_eq!(r.status(), 200);
    let r = get_basic(&s, "/metrics").go().await;
    assert_eq!(r.status(), 200);
    // The page's JSON routes: no challenge (a browser would pop up a login dialog), and
    // neither Basic nor the token URL is a credential there.
    for path in ["/api/status", "/api/session", "/api/config", "/api/events"] {
        let r = s.get(path).go().await;
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(challenge(&r), None, "{path}");
        let r = get_basic(&s, path).go().await;
        assert_eq!(r.status(), 401, "{path} with Basic");
        let r = s.get(&format!("{path}?token={ADMIN_TOKEN}")).go().await;
        assert_eq!(r.status(), 401, "{path}?token=");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_viewer_over_basic_or_the_token_url_cannot_change_anything() {
    let s = TestServer::start().await;
    for path in [
        "/api/active",
        "/api/alarms/door/trigger",
        "/api/alarms/door/ack",
        "/api/password",
        "/api/streams/test",
    ] {
        for token in [VIEWER_TOKEN, ADMIN_TOKEN] {
            let name = if token == ADMIN_TOKEN {
                "admin"
            } else {
                VIEWER
            };
            let r = s
                .post(path)
                .basic_auth(name, Some(token))
                .json(&serde_json::json!({"stream": "cam2"}))
                .go()
                .await;
            assert!(
                matches!(r.status().as_u16(), 401 | 403),
                "{path}: {}",
                r.status()
            );
            let r = s
                .post(&format!("{path}?token={token}"))
                .json(&serde_json::json!({}))
                .go()
                .await;
            assert!(matches!(r.status().as_u16(), 401 | 403), "{path}?token=");
        }
    }
    let r = s
        .request(Method::PUT, "/api/config?token=admin-token-0123456789ab")
        .json(&serde_json::json!({}))
        .go()
        .await;
    assert_eq!(r.status(), 401);
    // The media routes themselves are read-only.
    for path in MEDIA {
        let r = s
            .post(path)
            .basic_auth(VIEWER, Some(VIEWER_TOKEN))
            .go()
            .await;
        assert_eq!(r.status(), 405, "POST {path}");
    }
    let st = s.get_json("/api/status", ADMIN_TOKEN).await;
    assert_eq!(st["active"]["stream"], "cam1", "nothing was selected");
    s.stop().await;
}

/// The parts of an MJPEG response: the headers of each and its JPEG.
struct Mjpeg {
    /// The streaming response.
    resp: reqwest::Response,
    /// Bytes received and not yet parsed.
    buf: Vec<u8>,
}

/// One part.
struct Part {
    /// Its header block.
    head: String,
    /// The JPEG.
    jpeg: Vec<u8>,
}

impl Part {
    /// True for the "no video" placeholder.
    fn placeholder(&self) -> bool {
        self.head.contains("X-Edgecam-Placeholder: no-video")
    }

    /// Width and height from the JPEG's baseline SOF0 segment.
    fn size(&self) -> (u32, u32) {
        let j = &self.jpeg;
        let sof = j.windows(2).position(|w| w == [0xff, 0xc0]).expect("SOF0");
        let be = |i: usize| u32::from(u16::from_be_bytes([j[sof + i], j[sof + i + 1]]));
        (be(7), be(5))
    }
}

impl Mjpeg {
    /// `GET url`; asserts a 200 multipart answer.
    async fn open(http: &reqwest::Client, url: &str) -> Mjpeg {
        let resp = http.get(url).send().await.expect("an answer");
        assert_eq!(resp.status(), 200, "{url}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(ct, "multipart/x-mixed-replace; boundary=edgecamframe");
        Mjpeg {
            resp,
            buf: Vec::new(),
        }
    }

    /// The next part; `None` when the server ended the response.
    async fn next(&mut self) -> Option<Part> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .expect("a Content-Length")
                    .parse()
                    .unwrap();
                let start = end + 4;
                if self.buf.len() >= start + len + 2 {
                    let jpeg = self.buf[start..start + len].to_vec();
                    self.buf.drain(..start + len + 2);
                    assert!(head.starts_with("--edgecamframe\r\n"), "{head}");
                    return Some(Part { head, jpeg });
                }
            }
            let chunk = tokio::time::timeout(DEADLINE, self.resp.chunk())
                .await
                .expect("MJPEG data within the deadline")
                .expect("no transport error")?;
            self.buf.extend_from_slice(&chunk);
        }
    }
}

#[tokio::test]
async fn an_offline_camera_sends_the_placeholder_then_real_pictures_when_it_returns() {
    let ffprobe = require("ffprobe", "ffmpeg");
    let port = support::refused_port();
    let url = format!("rtsp://127.0.0.1:{port}/cam0");
    let s = TestServer::start_with(
        |dir| config_with(dir, vec![rtsp("gone", "Gone camera", &url)]),
        WebOptions::default(),
    )
    .await;
    let path = "/api/streams/gone/mjpeg";
    let mut mjpeg = Mjpeg::open(&s.http, &token_url(&s, path)).await;
    let first = mjpeg.next().await.expect("a part at once");
    assert!(first.placeholder(), "{}", first.head);
    assert_eq!(first.size(), edgecam::output::placeholder::DEFAULT_SIZE);
    assert_eq!(&first.jpeg[..2], &[0xff, 0xd8]);
    let second = mjpeg.next().await.expect("the placeholder again");
    assert!(second.placeholder());
    // The snapshot stays a 503 that says why.
    let r = s
        .http
        .get(token_url(&s, "/api/streams/gone/snapshot.jpg"))
        .go()
        .await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("no picture from Gone camera: "),
        "{error}"
    );
    assert!(error.contains("refused"), "{error}");
    // A client reading the offline camera gets pictures, not a hang.
    let mut probe = bounded(&ffprobe);
    probe.args([
        "-v",
        "error",
        "-show_entries",
        "stream=width,height",
        "-of",
        "csv=p=0",
    ]);
    probe.arg(basic_url(&s, path));
    let out = tokio::task::spawn_blocking(move || run(probe))
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "640,360");

    // The camera comes back: real pictures of its size replace the placeholder.
    let server = tokio::task::spawn_blocking(move || {
        RtspServer::start(ServerOpts {
            port: Some(port),
            width: 320,
            height: 180,
            fps: 10,
            bitrate_kbps: 300,
            gop: 10,
            ..ServerOpts::default()
        })
    })
    .await
    .unwrap();
    let real = loop {
        let p = mjpeg.next().await.expect("the response goes on");
        if !p.placeholder() {
            break p;
        }
    };
    assert_eq!(real.size(), (320, 180));
    let next = mjpeg.next().await.expect("more pictures");
    assert!(!next.placeholder(), "real pictures go on");
    drop(server);
    s.stop().await;
}

#[tokio::test]
async fn a_token_deleted_from_the_config_stops_working_open_streams_included() {
    let s = TestServer::start_with(
        |dir| {
            let mut cfg = config_with(dir, Vec::new());
            cfg.web.tokens.push(TokenConfig {
                name: "frigate".into(),
                token: "frigate-token-0123456789".into(),
                role: Role::Viewer,
            });
            cfg
        },
        WebOptions::default(),
    )
    .await;
    let url = |path: &str| format!("{}{path}?token=frigate-token-0123456789", s.base);
    wait_pictures(&s).await;
    let snapshot = url("/api/streams/cam1/snapshot.jpg");
    assert_eq!(s.http.get(&snapshot).send().await.unwrap().status(), 200);
    let mut mjpeg = Mjpeg::open(&s.http, &url("/api/streams/cam1/mjpeg")).await;
    assert!(mjpeg.next().await.is_some());

    let mut cfg: Value = s.get_json("/api/config", ADMIN_TOKEN).await;
    let tokens = cfg["web"]["tokens"].as_array_mut().unwrap();
    tokens.retain(|t| t["name"] != "frigate");
    let r = s
        .with_token(Method::PUT, "/api/config", ADMIN_TOKEN)
        .json(&cfg)
        .go()
        .await;
    assert_eq!(r.status(), 200);

    assert_eq!(s.http.get(&snapshot).send().await.unwrap().status(), 401);
    let r = s
        .get("/metrics")
        .basic_auth("frigate", Some("frigate-token-0123456789"))
        .go()
        .await;
    assert_eq!(r.status(), 401);
    // The open stream ends too (at its next credential check, a few seconds at most).
    let since = Instant::now();
    while mjpeg.next().await.is_some() {
        assert!(
            since.elapsed() < DEADLINE,
            "the stream goes on after its token was deleted"
        );
    }
    // The other tokens still work.
    let r = s
        .http
        .get(token_url(&s, "/api/streams/cam1/snapshot.jpg"))
        .go()
        .await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

/// `promtool check metrics` on `body`: its exit status and everything it printed.
fn promtool_check(promtool: &Path, body: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test]
async fn promtool_accepts_the_metrics_and_openmetrics_is_served_when_asked_for() {
    let promtool = require("promtool", "prometheus");
    let s = TestServer::start().await;
    wait_pictures(&s).await;
    for accept in [None, Some("*/*"), Some("text/plain;version=0.0.4")] {
        let mut req = get_basic(&s, "/metrics");
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let r = req.go().await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8",
            "Accept {accept:?}"
        );
        let body = r.text().await.unwrap();
        assert!(!body.contains("# EOF"), "{body}");
        assert!(body.contains("# TYPE edgecam_stream_frames_total counter\n"));
        let (ok, said) = promtool_check(&promtool, &body);
        assert!(ok && said.trim().is_empty(), "promtool: {said}\n{body}");
    }
    // Prometheus' own Accept header prefers OpenMetrics, and gets it (promtool 2.42 reads
    // only the text format, so this one is checked by its shape).
    let r = get_basic(&s, "/metrics")
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )
        .go()
        .await;
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body = r.text().await.unwrap();
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("# TYPE edgecam_stream_frames counter\n"));
    s.stop().await;
}
