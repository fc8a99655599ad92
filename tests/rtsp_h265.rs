//! An RTSP camera that sends H.265 (issue 17, item 1), served by the real web server: the
//! stream is `live` with codec `h265`; WebCodecs clients that offer `hvc1` get the access
//! units as they are, MSE clients that offer `mse-hvc1` an `hvc1` init segment and fragments
//! that real `ffprobe` reads as HEVC of the camera's size; clients without either, and JPEG
//! clients, get an `init` saying what to change; `snapshot.jpg` and `/mjpeg` answer 503 with
//! that sentence (the box has no H.265 decoder). The camera is gst-rtsp-server's `/h265`
//! mount (`x265enc ! rtph265pay`). No browser decodes here: headless Chromium on this VM has
//! no hardware HEVC decoder, so the page's feature detection is not exercised by a test.

mod common;
mod support;
mod webutil;

use std::path::Path;
use std::time::Duration;

use edgecam::codec::fmp4::boxes;
use edgecam::config::Config;
use edgecam::output::wire::{FLAG_INIT, FLAG_KEYFRAME, WireCodec};
use edgecam::web::WebOptions;
use serde_json::Value;
use support::{RtspServer, ServerOpts};
use webutil::*;

/// The camera's picture size.
const SIZE: (u32, u32) = (320, 240);
/// Deadline of every wait for the camera.
const DEADLINE: Duration = Duration::from_secs(60);

/// The box with one RTSP camera, `hv`, at `url`.
fn config_with_camera(dir: &Path, url: &str) -> Config {
    rtsp_camera_config(dir, "hv", "New camera", url)
}

/// The `hv` row of `/api/status`.
fn row(st: &Value) -> &Value {
    stream_row(st, "hv")
}

/// `ffprobe` of the video stream in `path`: codec name, width, height, frame count.
fn ffprobe_stream(path: &Path) -> Vec<String> {
    support::ffprobe(
        path,
        &[
            "-count_frames",
            "-of",
            "csv=p=0",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ],
    )
    .trim()
    .split(',')
    .map(str::to_string)
    .collect()
}

/// The test camera: `/cam0` in H.264 and `/h265` in H.265, both at [`SIZE`], 10 fps, a
/// keyframe a second.
async fn start_camera() -> RtspServer {
    support::start_rtsp(ServerOpts {
        width: SIZE.0,
        height: SIZE.1,
        fps: 10,
        gop: 10,
        h265_mount: true,
        ..ServerOpts::default()
    })
    .await
}

/// The next `init` of a client that gets no video of the stream: its `video` says why.
async fn refusal(c: &mut LiveClient, what: &str) -> Value {
    loop {
        let init = tokio::time::timeout(DEADLINE, c.next_text("init"))
            .await
            .unwrap_or_else(|_| panic!("{what}: no init"));
        assert!(init["codec"].is_null(), "{what}: no video: {init}");
        if init["video"]["state"] == "unsupported" {
            return init;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h265_camera_goes_to_hevc_browsers_and_says_what_to_change_elsewhere() {
    let camera = start_camera().await;
    let url = format!("rtsp://127.0.0.1:{}/h265", camera.port());
    let s =
        TestServer::start_with(|dir| config_with_camera(dir, &url), WebOptions::default()).await;
    let st = s
        .wait_status("the H.265 camera live", |st| {
            row(st)["state"] == "live" && row(st)["frames"].as_u64() > Some(3)
        })
        .await;
    assert_eq!(row(&st)["codec"], "h265", "{st}");

    // Pictures: 503 with what to change, on snapshot.jpg (both depths) and /mjpeg.
    for path in [
        "/api/streams/hv/snapshot.jpg",
        "/api/streams/hv/snapshot.jpg?keyframe=1",
        "/api/streams/hv/mjpeg",
    ] {
        let r = s
            .with_token(reqwest::Method::GET, path, VIEWER_TOKEN)
            .go()
            .await;
        assert_eq!(r.status(), 503, "{path}");
        let body: Value = r.json().await.expect("a JSON error");
        let e = body["error"].as_str().unwrap_or_default();
        assert!(
            e.contains("sends H.265") && e.contains("no H.265 decoder") && e.contains("sub_url"),
            "{path}: {e}"
        );
    }

    // WebCodecs with hvc1: the access units as they are, a keyframe first.
    let mut c = s.live(VIEWER_TOKEN, &["h264", "hvc1", "jpeg"], "").await;
    let (init, h, payload) = tokio::time::timeout(DEADLINE, c.init_and_keyframe())
        .await
        .expect("an init with a codec");
    let codec = init["codec"].as_str().unwrap_or_default();
    assert!(codec.starts_with("hvc1.1.6.L"), "{init}");
    assert!(init["mime"].is_null(), "{init}");
    assert_eq!(h.codec, WireCodec::H265);
    assert!(edgecam::codec::hevc::is_keyframe(&payload));
    let sps = edgecam::codec::hevc::keyframe_sps(&payload).expect("VPS/SPS/PPS in the keyframe");
    assert_eq!((sps.width, sps.height), SIZE);
    let (h2, _) = c.next_frame().await;
    assert_eq!(h2.codec, WireCodec::H265);
    assert!(h2.seq > h.seq);
    drop(c);

    // WebCodecs without hvc1, and JPEG: an init that says what to change.
    let mut c = s.live(VIEWER_TOKEN, &["h264", "jpeg"], "").await;
    let init = refusal(&mut c, "WebCodecs without hvc1").await;
    let e = init["video"]["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("this browser cannot decode") && e.contains("H.264"),
        "{e}"
    );
    assert_eq!(init["stream"], "hv");
    drop(c);
    let mut c = s.live(VIEWER_TOKEN, &["jpeg"], "").await;
    let init = refusal(&mut c, "JPEG").await;
    let e = init["video"]["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("no H.265 decoder") && e.contains("sub_url"),
        "{e}"
    );
    drop(c);
    // MSE without mse-hvc1: the same sentence as WebCodecs.
    let mut c = s.live(VIEWER_TOKEN, &["mse", "jpeg"], "").await;
    refusal(&mut c, "MSE without mse-hvc1").await;
    drop(c);

    // MSE with mse-hvc1: an hvc1 init segment and fragments; ffprobe reads HEVC 320x240.
    const FRAMES: usize = 30;
    let mut c = s.live(VIEWER_TOKEN, &["mse", "mse-hvc1", "jpeg"], "").await;
    let init = tokio::time::timeout(DEADLINE, c.video_init())
        .await
        .expect("init");
    assert!(
        init["codec"]
            .as_str()
            .is_some_and(|c| c.starts_with("hvc1.")),
        "{init}"
    );
    assert!(
        init["mime"].as_str().is_some_and(|m| m.contains("hvc1.")),
        "{init}"
    );
    assert_eq!(
        (init["width"].as_u64(), init["height"].as_u64()),
        (Some(u64::from(SIZE.0)), Some(u64::from(SIZE.1)))
    );
    let (h, mut file) = c.next_frame().await;
    assert_ne!(h.flags & FLAG_INIT, 0, "the init segment first");
    assert!(boxes(&file).any(|(k, _)| &k == b"moov"));
    for i in 0..FRAMES {
        let (h, p) = c.next_frame().await;
        assert_eq!(h.codec, WireCodec::Fmp4);
        if i == 0 {
            assert_ne!(
                h.flags & FLAG_KEYFRAME,
                0,
                "the first fragment is a keyframe"
            );
        }
        file.extend_from_slice(&p);
    }
    drop(c);
    s.stop().await;
    drop(camera);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("session.mp4");
    std::fs::write(&path, &file).expect("write");
    assert_eq!(
        ffprobe_stream(&path),
        ["hevc", "320", "240", &FRAMES.to_string()],
        "ffprobe of the MSE session"
    );
}

/// An H.265 camera with an H.264 sub stream (here the same server's `/cam0`): a browser
/// without H.265 watches the sub stream, one with H.265 the main stream, and snapshots come
/// from the sub stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h265_camera_with_an_h264_sub_stream_serves_browsers_without_h265() {
    let camera = start_camera().await;
    let main = format!("rtsp://127.0.0.1:{}/h265", camera.port());
    let sub = camera.url(0);
    let s = TestServer::start_with(
        move |dir| {
            let mut cfg = config_with_camera(dir, &main);
            cfg.streams[0].sub_url = Some(sub.clone());
            edgecam::config::validate(&cfg).expect("test config is valid");
            cfg
        },
        WebOptions::default(),
    )
    .await;
    s.wait_status("the H.265 camera and its H.264 sub stream live", |st| {
        let r = row(st);
        r["state"] == "live" && r["codec"] == "h265" && r["sub"]["state"] == "live"
    })
    .await;

    // WebCodecs without hvc1: the sub stream's H.264 instead of a refusal.
    let mut c = s.live(VIEWER_TOKEN, &["h264", "jpeg"], "").await;
    let (init, h, _) = tokio::time::timeout(DEADLINE, c.init_and_keyframe())
        .await
        .expect("an init with a codec");
    assert!(
        init["codec"]
            .as_str()
            .is_some_and(|c| c.starts_with("avc1.")),
        "{init}"
    );
    assert_eq!(init["stream"], "hv");
    assert_eq!(h.codec, WireCodec::H264);
    drop(c);
    // With hvc1: the main stream as it is.
    let mut c = s.live(VIEWER_TOKEN, &["h264", "hvc1", "jpeg"], "").await;
    let (init, h, _) = tokio::time::timeout(DEADLINE, c.init_and_keyframe())
        .await
        .expect("an init with a codec");
    assert!(
        init["codec"]
            .as_str()
            .is_some_and(|c| c.starts_with("hvc1.")),
        "{init}"
    );
    assert_eq!(h.codec, WireCodec::H265);
    drop(c);

    // Snapshots decode the sub stream.
    let since = std::time::Instant::now();
    loop {
        let r = s
            .with_token(
                reqwest::Method::GET,
                "/api/streams/hv/snapshot.jpg",
                VIEWER_TOKEN,
            )
            .go()
            .await;
        if r.status() == 200 {
            assert_eq!(&r.bytes().await.expect("body")[..2], &[0xff, 0xd8]);
            break;
        }
        assert!(since.elapsed() < DEADLINE, "no snapshot: {}", r.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
