//! The camera zoo (issue 17): RTSP servers that send what real cameras send beside plain
//! H.264, each through the real web server: the state reached, no `last_error`, a snapshot
//! that decodes to the expected size, and a live client whose first frame is a keyframe.
//!
//! - gst-rtsp-server's zoo mounts (`tests/support/rtsp_server.py --zoo-mounts`): audio listed
//!   first and audio listed last in one session, SPS/PPS only in the SDP, and a picture size
//!   that halves mid-session;
//! - VLC's own RTSP server (Debian `vlc-bin`, run as `nobody` when root), which refuses RTSP
//!   over TCP: `auto` plays it over UDP.

mod common;
mod support;
mod webutil;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use edgecam::web::WebOptions;
use serde_json::Value;
use support::tools::{free_port, require, vlc_command, wait_rtsp_ready};
use support::{RtspServer, ServerOpts};
use webutil::*;

/// The cameras' picture size.
const SIZE: (u32, u32) = (320, 240);
/// Deadline of every wait.
const DEADLINE: Duration = Duration::from_secs(60);

async fn zoo() -> RtspServer {
    support::start_rtsp(ServerOpts {
        width: SIZE.0,
        height: SIZE.1,
        fps: 10,
        gop: 10,
        zoo_mounts: true,
        resize_after_s: 4,
        ..ServerOpts::default()
    })
    .await
}

/// The picture size an `init` message gives.
fn init_size(init: &Value) -> (u32, u32) {
    let dim = |k: &str| {
        init[k]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0)
    };
    (dim("width"), dim("height"))
}

/// The snapshot's picture size, once one decodes.
async fn snapshot_size(s: &TestServer) -> (u32, u32) {
    let r = s
        .with_token(
            reqwest::Method::GET,
            "/api/streams/z/snapshot.jpg",
            VIEWER_TOKEN,
        )
        .go()
        .await;
    assert_eq!(r.status(), 200, "a snapshot");
    let jpeg = r.bytes().await.expect("the snapshot's body");
    edgecam::codec::jfif::picture_size(&jpeg).expect("a JPEG with a size")
}

/// Starts the box on `url` and checks it plays: live, H.264, no error, a snapshot of `size`,
/// a live client that starts at a keyframe. Returns the server for more checks.
async fn plays(url: &str, size: (u32, u32), what: &str) -> TestServer {
    let url = url.to_string();
    let s = TestServer::start_with(
        |dir| rtsp_camera_config(dir, "z", "Zoo camera", &url),
        WebOptions::default(),
    )
    .await;
    let st = s
        .wait_status(what, |st| {
            stream_row(st, "z")["state"] == "live"
                && stream_row(st, "z")["frames"].as_u64() > Some(5)
        })
        .await;
    let row = stream_row(&st, "z");
    assert_eq!(row["codec"], "h264", "{what}: {row}");
    assert!(row["last_error"].is_null(), "{what}: {row}");
    assert_eq!(snapshot_size(&s).await, size, "{what}: the snapshot's size");
    let mut c = s.live(VIEWER_TOKEN, &["h264", "jpeg"], "").await;
    let (_init, h, payload) = tokio::time::timeout(DEADLINE, c.init_and_keyframe())
        .await
        .unwrap_or_else(|_| panic!("{what}: no keyframe on the live path"));
    assert!(
        edgecam::codec::h264::is_keyframe(&payload),
        "{what}: a keyframe first (seq {})",
        h.seq
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_listed_first_or_last_and_sps_only_in_the_sdp_play() {
    let camera = zoo().await;
    for (mount, what) in [
        ("av", "audio listed first"),
        ("va", "audio listed last"),
        ("sdp-params", "SPS/PPS only in the SDP"),
    ] {
        let url = format!("rtsp://127.0.0.1:{}/{mount}", camera.port());
        plays(&url, SIZE, what).await.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolution_change_mid_session_keeps_the_stream_live_at_the_new_size() {
    let camera = zoo().await;
    let url = format!("rtsp://127.0.0.1:{}/resize", camera.port());
    let s = plays(&url, SIZE, "before the change").await;
    let half = (SIZE.0 / 2, SIZE.1 / 2);
    // An MSE client that watches across the change: its first init has the first size.
    let mut mse = s.live(VIEWER_TOKEN, &["mse"], "").await;
    let first = tokio::time::timeout(DEADLINE, mse.video_init())
        .await
        .expect("an MSE init");
    assert_eq!(init_size(&first), SIZE, "{first}");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if snapshot_size(&s).await == half {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the snapshot never showed the new size"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let st: Value = s.get_json("/api/status", VIEWER_TOKEN).await;
    let row = stream_row(&st, "z");
    assert_eq!(row["state"], "live", "{row}");
    assert_eq!(row["reconnects"], 0, "the change needs no reconnect: {row}");
    // The client that watched across it got a new init of the new size, in the same
    // session, then the init segment, then a keyframe.
    let init = tokio::time::timeout(DEADLINE, async {
        loop {
            let init = mse.video_init().await;
            if init_size(&init) == half {
                return init;
            }
        }
    })
    .await
    .expect("a new MSE init of the new size");
    let mime = init["mime"].as_str().unwrap_or_default();
    assert!(mime.starts_with("video/mp4"), "{init}");
    let (h, _segment) = mse.next_frame().await;
    assert_ne!(h.flags & edgecam::output::wire::FLAG_INIT, 0, "{h:?}");
    let (h, _fragment) = mse.next_frame().await;
    assert_ne!(h.flags & edgecam::output::wire::FLAG_KEYFRAME, 0, "{h:?}");
    // A client that joins now starts at a keyframe of the new size.
    let mut c = s.live(VIEWER_TOKEN, &["h264", "jpeg"], "").await;
    let (_init, _h, payload) = tokio::time::timeout(DEADLINE, c.init_and_keyframe())
        .await
        .expect("a keyframe after the change");
    assert!(edgecam::codec::h264::is_keyframe(&payload));
    s.stop().await;
}

/// `cvlc` serving `file` at `rtsp://127.0.0.1:port/cam`; killed on drop.
struct Vlc(Child);

impl Drop for Vlc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A 4 s H.264 clip of `SIZE` (ffmpeg's libx264, a keyframe a second), readable by `nobody`.
fn clip(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let ffmpeg = require("ffmpeg", "ffmpeg");
    let file = dir.join("cam.mp4");
    let size = format!("testsrc=size={}x{}:rate=10", SIZE.0, SIZE.1);
    let out = Command::new(ffmpeg)
        .args(["-v", "error", "-f", "lavfi", "-i", &size, "-t", "4"])
        .args([
            "-c:v", "libx264", "-g", "10", "-bf", "0", "-pix_fmt", "yuv420p",
        ])
        .arg(&file)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    file
}

fn start_vlc(file: &Path, home: &Path, port: u16) -> Vlc {
    let vlc = require("cvlc", "vlc-bin");
    let sout = format!("#rtp{{sdp=rtsp://127.0.0.1:{port}/cam}}");
    let child = vlc_command(&vlc, home)
        .args(["-I", "dummy", "--no-audio", "--loop"])
        .arg(file)
        .args(["--sout", &sout, "--sout-keep"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cvlc starts");
    let vlc = Vlc(child);
    wait_rtsp_ready(port, "cam", DEADLINE);
    vlc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vlcs_rtsp_server_refuses_tcp_and_plays_over_udp() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = tempfile::tempdir().expect("temp home");
    let file = clip(dir.path());
    let port = free_port();
    let _vlc = start_vlc(&file, home.path(), port);
    let s = plays(
        &format!("rtsp://127.0.0.1:{port}/cam"),
        SIZE,
        "VLC's RTSP server",
    )
    .await;
    // The transport is copied into the status on the supervisor's next beat.
    s.wait_status("VLC's camera over UDP", |st| {
        stream_row(st, "z")["transport"] == "udp"
    })
    .await;
    s.stop().await;
}
