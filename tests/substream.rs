//! Main and sub streams of one camera (issue 17, item 2), from two real GStreamer RTSP
//! servers through a real daemon and web server: a 640x360 main stream and a 320x180 sub
//! stream. Snapshots, thumbnails, MJPEG and JPEG live clients decode the sub stream; the big
//! live view and `?stream=main` use the main one. When the sub stream's server goes away,
//! pictures come from the main stream, the live view goes on and `/api/status` shows the sub
//! stream's error. Waits poll against generous deadlines; nothing is timed.

mod common;
mod support;
mod webutil;

use std::time::{Duration, Instant};

use edgecam::codec::h264::{NAL_SPS, nal_units};
use edgecam::codec::sps;
use edgecam::config::schema::Transport;
use edgecam::config::{Config, StreamConfig, StreamKind};
use edgecam::output::wire::WireCodec;
use edgecam::web::WebOptions;
use reqwest::Method;
use serde_json::Value;
use support::{RtspServer, ServerOpts};
use webutil::*;

/// Deadline of every wait (the 2-core box may be compiling meanwhile).
const DEADLINE: Duration = Duration::from_secs(90);
/// The main stream's picture.
const MAIN: (u32, u32) = (640, 360);
/// The sub stream's picture.
const SUB: (u32, u32) = (320, 180);

/// One pair of cameras at a time: two encoders and a daemon decoding both are what a 2-core
/// box has room for.
static ONE_CAMERA: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A camera server of `size` at 25 fps, a keyframe a second.
async fn start_camera(size: (u32, u32)) -> RtspServer {
    let opts = ServerOpts {
        width: size.0,
        height: size.1,
        fps: 25,
        bitrate_kbps: 300,
        gop: 25,
        ..ServerOpts::default()
    };
    support::start_rtsp(opts).await
}

/// The RTSP camera `cam` with `url` and `sub_url`.
fn camera(url: &str, sub_url: Option<&str>) -> StreamConfig {
    StreamConfig {
        name: Some("Gate".into()),
        kind: StreamKind::Rtsp,
        url: Some(url.into()),
        sub_url: sub_url.map(Into::into),
        transport: Transport::Tcp,
        width: None,
        height: None,
        fps: None,
        stall_timeout_ms: 10_000,
        ..StreamConfig::testpattern("cam", 2, 2, 1)
    }
}

/// The web tests' box with camera `cam` as its only stream, selected by default.
fn config_with(dir: &std::path::Path, cam: StreamConfig) -> Config {
    let mut cfg = webutil::config(dir);
    cfg.alarms.clear();
    cfg.streams = vec![cam];
    cfg.select.default = Some("cam".into());
    edgecam::config::validate(&cfg).expect("test config is valid");
    cfg
}

/// A daemon and web server reading `cam`.
async fn daemon(cam: StreamConfig) -> TestServer {
    TestServer::start_with(
        move |dir| config_with(dir, cam.clone()),
        WebOptions::default(),
    )
    .await
}

/// `cam`'s row of `/api/status`.
async fn row(s: &TestServer) -> Value {
    let st = s.get_json("/api/status", ADMIN_TOKEN).await;
    st["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .find(|r| r["id"] == "cam")
        .cloned()
        .expect("a row for cam")
}

/// Waits until `cond` holds for `cam`'s row; returns the row.
async fn wait_row(s: &TestServer, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let since = Instant::now();
    loop {
        let r = row(s).await;
        if cond(&r) {
            return r;
        }
        assert!(since.elapsed() < DEADLINE, "cam never {what}: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Width and height from a JPEG's baseline SOF0 segment.
fn jpeg_size(j: &[u8]) -> (u32, u32) {
    assert_eq!(&j[..2], &[0xff, 0xd8], "a JPEG");
    let sof = j.windows(2).position(|w| w == [0xff, 0xc0]).expect("SOF0");
    let be = |i: usize| u32::from(u16::from_be_bytes([j[sof + i], j[sof + i + 1]]));
    (be(7), be(5))
}

/// The picture size of a keyframe's SPS.
fn keyframe_size(au: &[u8]) -> (u32, u32) {
    let nal = nal_units(au)
        .find(|n| n.nal_type() == NAL_SPS)
        .expect("an SPS in the keyframe");
    let info = sps::parse_lenient(nal.body).expect("the SPS parses");
    (info.width, info.height)
}

/// `GET path` as a viewer: status and body.
async fn get(s: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let r = s.with_token(Method::GET, path, VIEWER_TOKEN).go().await;
    let status = r.status().as_u16();
    (status, r.bytes().await.expect("body").to_vec())
}

/// Polls `path` until it answers a JPEG of `size`.
async fn picture_of(s: &TestServer, path: &str, size: (u32, u32)) {
    let since = Instant::now();
    loop {
        let (status, body) = get(s, path).await;
        if status == 200 && jpeg_size(&body) == size {
            return;
        }
        let seen = if status == 200 {
            format!("{:?}", jpeg_size(&body))
        } else {
            String::from_utf8_lossy(&body).into_owned()
        };
        assert!(
            since.elapsed() < DEADLINE,
            "{path} never a {size:?} picture; last {status} {seen}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The first real (not placeholder) picture of `cam`'s MJPEG at `path`.
async fn first_mjpeg_picture(s: &TestServer, path: &str) -> Vec<u8> {
    let mut r = s.with_token(Method::GET, path, VIEWER_TOKEN).go().await;
    assert_eq!(r.status().as_u16(), 200);
    let mut buf: Vec<u8> = Vec::new();
    let since = Instant::now();
    loop {
        // A part: headers, blank line, `Content-Length` bytes of JPEG.
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("a Content-Length");
            let start = end + 4;
            if buf.len() >= start + len {
                let jpeg = buf[start..start + len].to_vec();
                let placeholder = head.contains("x-edgecam-placeholder");
                buf.drain(..start + len);
                if !placeholder {
                    return jpeg;
                }
                continue;
            }
        }
        assert!(since.elapsed() < DEADLINE, "no MJPEG picture at {path}");
        let chunk = tokio::time::timeout(Duration::from_secs(20), r.chunk())
            .await
            .expect("MJPEG data within 20 s")
            .expect("no read error")
            .expect("the MJPEG response goes on");
        buf.extend_from_slice(&chunk);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pictures_come_from_the_sub_stream_and_the_live_view_from_the_main_stream() {
    let _one = ONE_CAMERA.lock().await;
    let main = start_camera(MAIN).await;
    let mut sub = start_camera(SUB).await;
    let s = daemon(camera(&main.url(0), Some(&sub.url(0)))).await;
    let r = wait_row(&s, "live with a live sub stream", |r| {
        r["state"] == "live" && r["sub"]["state"] == "live" && r["sub"]["frames"].as_u64() > Some(0)
    })
    .await;
    assert!(r["sub"]["last_error"].is_null(), "{r}");

    // Snapshots and thumbnails decode the sub stream; `?stream=main` the main one.
    picture_of(&s, "/api/streams/cam/snapshot.jpg", SUB).await;
    picture_of(&s, "/api/streams/cam/snapshot.jpg?keyframe=1", SUB).await;
    picture_of(&s, "/api/streams/cam/snapshot.jpg?stream=sub", SUB).await;
    picture_of(&s, "/api/streams/cam/snapshot.jpg?stream=main", MAIN).await;
    let (status, body) = get(&s, "/api/streams/cam/snapshot.jpg?stream=third").await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    // MJPEG from the sub stream unless asked for the main one.
    let j = first_mjpeg_picture(&s, "/api/streams/cam/mjpeg").await;
    assert_eq!(jpeg_size(&j), SUB);
    let j = first_mjpeg_picture(&s, "/api/streams/cam/mjpeg?stream=main").await;
    assert_eq!(jpeg_size(&j), MAIN);

    // The JPEG live path decodes the sub stream, the big view carries the main stream.
    let mut jpeg = s.live(VIEWER_TOKEN, &["jpeg"], "?mode=jpeg").await;
    let init = jpeg.video_init().await;
    assert_eq!(init["codec"], "jpeg");
    assert_eq!(
        (init["width"].as_u64(), init["height"].as_u64()),
        (Some(320), Some(180))
    );
    let (h, p) = jpeg.next_frame().await;
    assert_eq!(h.codec, WireCodec::Jpeg);
    assert_eq!(jpeg_size(&p), SUB);
    drop(jpeg);
    let mut h264 = s.live(VIEWER_TOKEN, &["h264"], "").await;
    let (init, _, key) = h264.init_and_keyframe().await;
    assert_eq!(init["stream"], "cam");
    assert_eq!(
        keyframe_size(&key),
        MAIN,
        "the live view shows the main stream"
    );

    // The sub stream's own series in /metrics.
    let metrics = s
        .with_token(Method::GET, "/metrics", ADMIN_TOKEN)
        .go()
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains("edgecam_stream_live{stream=\"cam/sub\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("edgecam_stream_live{stream=\"cam\"} 1"));

    // The sub stream's camera goes away: pictures come from the main stream, the live view
    // goes on, the status says what happened to the sub stream.
    sub.kill();
    let r = wait_row(&s, "showing the sub stream's error", |r| {
        r["sub"]["state"] != "live" && r["sub"]["last_error"].is_string()
    })
    .await;
    assert_eq!(r["state"], "live", "the main stream does not notice: {r}");
    picture_of(&s, "/api/streams/cam/snapshot.jpg?keyframe=1", MAIN).await;
    picture_of(&s, "/api/streams/cam/snapshot.jpg", MAIN).await;
    let j = first_mjpeg_picture(&s, "/api/streams/cam/mjpeg").await;
    assert_eq!(jpeg_size(&j), MAIN);
    let mut jpeg = s.live(VIEWER_TOKEN, &["jpeg"], "?mode=jpeg").await;
    let (h, p) = jpeg.next_frame().await;
    assert_eq!(h.codec, WireCodec::Jpeg);
    assert_eq!(
        jpeg_size(&p),
        MAIN,
        "JPEG clients fall back to the main stream"
    );
    drop(jpeg);
    let (h0, _) = h264.next_frame().await;
    for _ in 0..25 {
        let (h, _) = h264.next_frame().await;
        assert_eq!(h.sid, h0.sid, "the live view is not restarted");
        assert_eq!(h.codec, WireCodec::H264);
    }
    drop(h264);
    s.stop().await;
    drop(main);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_url_at_a_closed_port_leaves_pictures_with_the_main_stream() {
    let _one = ONE_CAMERA.lock().await;
    let main = start_camera(MAIN).await;
    let closed = format!("rtsp://127.0.0.1:{}/cam0", support::refused_port());
    let s = daemon(camera(&main.url(0), Some(&closed))).await;
    let r = wait_row(&s, "live with the sub stream's error", |r| {
        r["state"] == "live" && r["sub"]["last_error"].is_string()
    })
    .await;
    assert_ne!(r["sub"]["state"], "live", "{r}");
    picture_of(&s, "/api/streams/cam/snapshot.jpg", MAIN).await;
    s.stop().await;
    drop(main);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_url_round_trips_through_the_config_api_and_is_refused_on_a_test_pattern() {
    let s = TestServer::start().await;
    let mut cfg = s.get_json("/api/config", ADMIN_TOKEN).await;
    let first = cfg["streams"][0].clone();
    assert!(
        first["sub_url"].is_null(),
        "no sub stream by default: {first}"
    );

    // On a test pattern: refused, saying which field and what to do.
    cfg["streams"][0]["sub_url"] = "rtsp://127.0.0.1:1/sub".into();
    let r = s
        .with_token(Method::PUT, "/api/config", ADMIN_TOKEN)
        .json(&cfg)
        .go()
        .await;
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.expect("json error");
    let text = body.to_string();
    assert!(text.contains("streams[0].sub_url"), "{text}");
    assert!(text.contains("only to rtsp streams"), "{text}");

    // On an RTSP camera: kept, and given back as written.
    let url = "rtsp://admin:s3cret@127.0.0.1:1/main";
    let sub_url = "rtsp://admin:s3cret@127.0.0.1:1/sub";
    cfg["streams"][0] = serde_json::json!({
        "id": first["id"], "name": "Gate", "kind": "rtsp",
        "url": url, "sub_url": sub_url,
    });
    let r = s
        .with_token(Method::PUT, "/api/config", ADMIN_TOKEN)
        .json(&cfg)
        .go()
        .await;
    let status = r.status().as_u16();
    assert_eq!(status, 200, "{}", r.text().await.unwrap_or_default());
    let back = s.get_json("/api/config", ADMIN_TOKEN).await;
    assert_eq!(back["streams"][0]["sub_url"], sub_url);
    assert_eq!(back["streams"][0]["url"], url);
    // The sub stream runs, and its row says so.
    let since = Instant::now();
    loop {
        let st = s.get_json("/api/status", ADMIN_TOKEN).await;
        let row = &st["streams"][0];
        if row["sub"].is_object() {
            assert!(row["sub"]["state"].is_string(), "{row}");
            break;
        }
        assert!(since.elapsed() < DEADLINE, "no sub row: {row}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}
