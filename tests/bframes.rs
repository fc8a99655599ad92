//! Streams openh264 finds hard, from the real GStreamer RTSP server through a real daemon and
//! web server (issue 17, items 3 and 4): x264 with B-frames (`bframes=2`, Main and High
//! profile, frames in decode order as relays of libx264 files send them) gives snapshots of
//! its size, JPEG pictures, a WebSocket live start at a keyframe and an MSE session whose
//! decode and presentation times real `ffprobe` reads in order; lost RTP packets do not turn
//! snapshots into 503s; a stream openh264 cannot decode (High 4:4:4) counts decode errors in
//! `/api/status` and `/metrics`. Waits poll against generous deadlines; nothing is timed.

mod common;
mod support;
mod webutil;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgecam::codec::fmp4::boxes;
use edgecam::config::schema::Transport;
use edgecam::config::{Config, StreamConfig, StreamKind};
use edgecam::output::wire::{FLAG_INIT, FLAG_KEYFRAME, WireCodec};
use edgecam::web::WebOptions;
use edgecam_testkit::impair::{Impairment, Relay, RelayOpts};
use reqwest::Method;
use serde_json::Value;
use support::{RtspServer, ServerOpts};
use webutil::*;

/// Deadline of every wait (the 2-core box may be compiling meanwhile).
const DEADLINE: Duration = Duration::from_secs(90);
/// The test camera's picture.
const SIZE: (u32, u32) = (320, 240);

/// The server's options: a small picture at 25 fps, a keyframe a second.
fn camera(profile: &str, bframes: u32) -> ServerOpts {
    ServerOpts {
        width: SIZE.0,
        height: SIZE.1,
        fps: 25,
        bitrate_kbps: 300,
        gop: 25,
        profile: profile.to_string(),
        bframes,
        ..ServerOpts::default()
    }
}

/// Starts the real RTSP server off the async runtime.
async fn start_camera(opts: ServerOpts) -> RtspServer {
    support::start_rtsp(opts).await
}

/// One camera at a time: an x264 encoder with B-frames and lookahead and a daemon decoding
/// it are what a 2-core box has room for (tests of this binary run in parallel otherwise).
static ONE_CAMERA: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The web tests' box with RTSP camera `bf` at `url` as its only stream (no test patterns
/// competing for the CPU), selected by default.
fn config_with_camera(dir: &std::path::Path, url: &str, transport: Transport) -> Config {
    let mut cfg = webutil::config(dir);
    cfg.alarms.clear();
    cfg.streams = vec![StreamConfig {
        name: Some("Test camera".into()),
        kind: StreamKind::Rtsp,
        url: Some(url.into()),
        transport,
        width: None,
        height: None,
        fps: None,
        stall_timeout_ms: 10_000,
        ..StreamConfig::testpattern("bf", 2, 2, 1)
    }];
    cfg.select.default = Some("bf".into());
    edgecam::config::validate(&cfg).expect("test config is valid");
    cfg
}

/// A daemon and web server reading the camera at `url`.
async fn daemon(url: &str, transport: Transport) -> TestServer {
    let url = url.to_string();
    TestServer::start_with(
        move |dir| config_with_camera(dir, &url, transport),
        WebOptions::default(),
    )
    .await
}

/// `bf`'s row of `/api/status`.
async fn row(s: &TestServer) -> Value {
    let st = s.get_json("/api/status", ADMIN_TOKEN).await;
    st["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .find(|r| r["id"] == "bf")
        .cloned()
        .expect("a row for bf")
}

/// Waits until `bf` is live with more than `frames` frames stored; returns its row.
async fn live_with(s: &TestServer, frames: u64) -> Value {
    let since = Instant::now();
    loop {
        let r = row(s).await;
        if r["state"] == "live" && r["frames"].as_u64() > Some(frames) {
            return r;
        }
        assert!(
            since.elapsed() < DEADLINE,
            "bf not live with {frames} frames: {r}"
        );
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

/// `GET snapshot.jpg` of `bf`: status, picture age header, body.
async fn snapshot(s: &TestServer) -> (u16, Option<u64>, Vec<u8>) {
    let r = s
        .with_token(Method::GET, "/api/streams/bf/snapshot.jpg", VIEWER_TOKEN)
        .go()
        .await;
    let status = r.status().as_u16();
    let age = r
        .headers()
        .get("x-picture-age-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, age, r.bytes().await.expect("body").to_vec())
}

/// Several snapshots, each after more frames arrived (so at other places in the GOP): every
/// one is a picture of the camera's size with its age.
async fn snapshots_are_pictures(s: &TestServer, count: usize) {
    for i in 0..count {
        let frames = live_with(s, 0).await["frames"].as_u64().unwrap_or(0);
        live_with(s, frames + 7).await;
        let (status, age, body) = snapshot(s).await;
        assert_eq!(
            status,
            200,
            "snapshot {i}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(jpeg_size(&body), SIZE, "snapshot {i}");
        assert!(age.is_some(), "snapshot {i} says how old it is");
    }
}

async fn b_frame_snapshots_and_jpeg_pictures(profile: &str) {
    let _one = ONE_CAMERA.lock().await;
    let server = start_camera(camera(profile, 2)).await;
    let s = daemon(&server.url(0), Transport::Tcp).await;
    live_with(&s, 30).await;
    // Nobody watches: each snapshot decodes the current GOP once.
    snapshots_are_pictures(&s, 6).await;
    // The JPEG live path: the shared decoder's pictures, which snapshots then reuse.
    let mut jpeg = s.live(VIEWER_TOKEN, &["jpeg"], "?mode=jpeg").await;
    assert_eq!(jpeg.video_init().await["codec"], "jpeg");
    let mut seqs = Vec::new();
    while seqs.len() < 10 {
        let (h, p) = jpeg.next_frame().await;
        assert_eq!(h.codec, WireCodec::Jpeg);
        assert_eq!(jpeg_size(&p), SIZE);
        seqs.push(h.seq);
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "newer pictures: {seqs:?}"
    );
    snapshots_are_pictures(&s, 3).await;
    let r = row(&s).await;
    assert_eq!(r["decode_errors"], 0, "B-frames decode cleanly: {r}");
    s.stop().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_profile_b_frames_give_snapshots_and_jpeg_pictures() {
    b_frame_snapshots_and_jpeg_pictures("main").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_profile_b_frames_give_snapshots_and_jpeg_pictures() {
    b_frame_snapshots_and_jpeg_pictures("high").await;
}

/// One MSE session of `n` fragments as an MP4 file: the init segment, then the fragments.
async fn mse_session(s: &TestServer, n: usize) -> Vec<u8> {
    let mut c = s.live(VIEWER_TOKEN, &["mse"], "").await;
    let init = c.video_init().await;
    assert_eq!(init["stream"], "bf");
    let (h, mut file) = c.next_frame().await;
    assert_ne!(h.flags & FLAG_INIT, 0, "the init segment first");
    assert!(boxes(&file).any(|(k, _)| &k == b"moov"));
    for i in 0..n {
        let (h, p) = c.next_frame().await;
        assert_eq!(h.codec, WireCodec::Fmp4);
        assert_eq!(h.flags & FLAG_INIT, 0);
        if i == 0 {
            assert_ne!(
                h.flags & FLAG_KEYFRAME,
                0,
                "the first fragment is a keyframe"
            );
        }
        file.extend_from_slice(&p);
    }
    file
}

/// `ffprobe -show_entries <entries> -of csv` of `path`; asserts it ran without complaint.
fn ffprobe_csv(path: &std::path::Path, entries: &str) -> Vec<Vec<String>> {
    support::ffprobe(path, &["-of", "csv=p=0", "-show_entries", entries])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|f| f.trim().to_string()).collect())
        .collect()
}

/// A column of integers (ffprobe's `N/A` fails the test: every sample has the time).
fn ints(rows: &[Vec<String>], col: usize, what: &str) -> Vec<i64> {
    rows.iter()
        .map(|r| {
            r.get(col)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what}: no time in {r:?}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_b_frame_stream_starts_live_clients_at_a_keyframe_and_ffprobe_reads_mse_timestamps_in_order()
 {
    let _one = ONE_CAMERA.lock().await;
    let server = start_camera(camera("main", 2)).await;
    let s = daemon(&server.url(0), Transport::Tcp).await;
    live_with(&s, 30).await;
    // WebCodecs: the init names the Main profile, the first frame is a keyframe.
    let mut h264 = s.live(VIEWER_TOKEN, &["h264"], "").await;
    let (init, h, payload) = h264.init_and_keyframe().await;
    assert_eq!(init["stream"], "bf");
    assert!(
        init["codec"]
            .as_str()
            .is_some_and(|c| c.starts_with("avc1.4d")),
        "{init}"
    );
    assert_eq!(h.codec, WireCodec::H264);
    assert!(!payload.is_empty());
    // The chunks' timestamps are presentation times: in decode order they go back at each
    // B-frame, and no two are the same.
    let mut pts = vec![h.pts_us];
    while pts.len() < 30 {
        let (h, _) = h264.next_frame().await;
        assert_eq!(h.codec, WireCodec::H264);
        pts.push(h.pts_us);
    }
    assert!(pts.windows(2).any(|w| w[1] < w[0]), "{pts:?}");
    let mut distinct = pts.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), pts.len(), "{pts:?}");
    drop(h264);

    // MSE: three seconds (a catch-up burst, then live frames) read back by ffprobe.
    const FRAMES: usize = 75;
    let file = mse_session(&s, FRAMES).await;
    s.stop().await;
    drop(server);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("session.mp4");
    std::fs::write(&path, &file).expect("write");
    // Packets in file (decode) order.
    let packets = ffprobe_csv(&path, "packet=pts,dts");
    assert_eq!(packets.len(), FRAMES, "{packets:?}");
    let (pts, dts) = (ints(&packets, 0, "pts"), ints(&packets, 1, "dts"));
    assert!(
        dts.windows(2).all(|w| w[0] < w[1]),
        "decode times increase: {dts:?}"
    );
    assert!(
        pts.iter().zip(&dts).all(|(p, d)| p >= d),
        "shown no earlier than decoded: {pts:?} {dts:?}"
    );
    assert!(
        pts.windows(2).any(|w| w[1] < w[0]),
        "B-frames: presentation order differs from decode order: {pts:?}"
    );
    let mut sorted = pts.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        FRAMES,
        "no two samples shown at once: {pts:?}"
    );
    // Decoded pictures come out in the bitstream's own order (its picture order counts):
    // their presentation times must increase, or the times put frames in the wrong order.
    let frames = ffprobe_csv(&path, "frame=pts");
    let shown = ints(&frames, 0, "frame pts");
    assert_eq!(shown.len(), FRAMES, "every frame decodes: {shown:?}");
    assert!(
        shown.windows(2).all(|w| w[0] < w[1]),
        "pictures in presentation order: {shown:?}"
    );
}

/// A camera behind a relay that drops `loss` of the RTP datagrams to the box.
async fn lossy_camera_keeps_pictures(loss: f64) {
    let _one = ONE_CAMERA.lock().await;
    // Baseline, no B-frames: what fails here is the loss alone.
    let server = start_camera(camera("baseline", 0)).await;
    let upstream = SocketAddr::from(([127, 0, 0, 1], server.port()));
    let lossy = Impairment {
        loss,
        ..Impairment::default()
    };
    let relay = Relay::spawn(RelayOpts {
        down: lossy,
        ..RelayOpts::both(upstream, Impairment::default())
    })
    .await
    .expect("relay starts");
    let s = daemon(&relay.url(0), Transport::Udp).await;
    live_with(&s, 30).await;
    // A frame that lost a packet does not decode; the snapshot is then the last good
    // picture (at worst its GOP's keyframe, or an older one), never a 503.
    snapshots_are_pictures(&s, 12).await;
    assert!(relay.stats().datagrams_lost > 0, "{:?}", relay.stats());
    // The loss is visible per stream: lost packets and the frames they hit.
    let r = row(&s).await;
    assert!(r["lost_packets"].as_u64() > Some(0), "{loss}: {r}");
    assert!(r["incomplete_frames"].as_u64() > Some(0), "{loss}: {r}");
    assert_eq!(r["state"], "live", "{loss}: {r}");
    s.stop().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_1_percent_of_rtp_packets_lost_snapshots_keep_a_picture() {
    lossy_camera_keeps_pictures(0.01).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_5_percent_of_rtp_packets_lost_snapshots_keep_a_picture() {
    lossy_camera_keeps_pictures(0.05).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_stream_counts_decode_errors_in_status_and_metrics() {
    let _one = ONE_CAMERA.lock().await;
    let server = start_camera(camera("high-4:4:4", 0)).await;
    let s = daemon(&server.url(0), Transport::Tcp).await;
    live_with(&s, 30).await;
    // Live, but no picture can be made: the snapshot says so.
    let (status, _, body) = snapshot(&s).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let since = Instant::now();
    let errors = loop {
        let r = row(&s).await;
        let n = r["decode_errors"]
            .as_u64()
            .expect("decode_errors in the status");
        if n > 0 {
            break n;
        }
        assert!(since.elapsed() < DEADLINE, "no decode error counted: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Now the snapshot's 503 says why.
    let (status, _, body) = snapshot(&s).await;
    assert_eq!(status, 503);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("does not decode"), "{body}");
    let metrics = s
        .with_token(Method::GET, "/metrics", VIEWER_TOKEN)
        .go()
        .await
        .text()
        .await
        .expect("metrics");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("edgecam_stream_decode_errors") && l.contains("stream=\"bf\""))
        .unwrap_or_else(|| panic!("no decode error counter for bf: {metrics}"));
    let n: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a count");
    assert!(n >= errors, "{line} vs {errors}");
    s.stop().await;
    drop(server);
}
