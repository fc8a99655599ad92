//! An RTSP camera that sends only RTP/JPEG (RFC 2435, older MJPEG cameras), served by the
//! real web server (issue 17, item 7): its JPEG pictures go into the ring as they are and
//! out without decoding, to `snapshot.jpg`, `/mjpeg`, and `/api/live` on every path (the
//! WebCodecs and MSE clients get the JPEG pictures too, which the page paints). The camera
//! is gst-rtsp-server's `/jpeg` mount (`videotestsrc ! jpegenc ! rtpjpegpay`).

mod common;
mod support;
mod webutil;

use std::path::Path;
use std::time::Duration;

use edgecam::config::Config;
use edgecam::output::wire::{FLAG_KEYFRAME, WireCodec};
use edgecam::web::WebOptions;
use serde_json::Value;
use support::ServerOpts;
use webutil::*;

/// The camera's picture size.
const SIZE: (u32, u32) = (320, 240);

/// Deadline of every wait for the camera.
const DEADLINE: Duration = Duration::from_secs(60);

/// Width and height from a baseline JPEG's SOF0 segment, read here rather than with the
/// daemon's own parser.
fn sof0_size(jpeg: &[u8]) -> (u32, u32) {
    assert_eq!(&jpeg[..2], &[0xff, 0xd8], "starts with SOI");
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xff, 0xc0])
        .expect("a SOF0 segment");
    let be = |i: usize| u32::from(u16::from_be_bytes([jpeg[sof + i], jpeg[sof + i + 1]]));
    (be(7), be(5))
}

/// The box with one RTSP camera, `mj`, at `url`.
fn config_with_camera(dir: &Path, url: &str) -> Config {
    rtsp_camera_config(dir, "mj", "Old camera", url)
}

/// The `mj` row of `/api/status`.
fn row(st: &Value) -> &Value {
    stream_row(st, "mj")
}

/// The parts of an MJPEG response in `body` (`--boundary`, headers, JPEG).
fn mjpeg_parts(body: &[u8]) -> Vec<Vec<u8>> {
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            break;
        };
        let start = end + 4;
        if rest.len() < start + len {
            break;
        }
        assert!(
            !head.contains("X-Edgecam-Placeholder"),
            "a real picture: {head}"
        );
        parts.push(rest[start..start + len].to_vec());
        rest = &rest[start + len..];
    }
    parts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtp_jpeg_camera_is_served_as_jpeg_on_every_output() {
    let camera = support::start_rtsp(ServerOpts {
        width: SIZE.0,
        height: SIZE.1,
        fps: 10,
        jpeg_mounts: true,
        ..ServerOpts::default()
    })
    .await;
    let url = format!("rtsp://127.0.0.1:{}/jpeg", camera.port());
    let s =
        TestServer::start_with(|dir| config_with_camera(dir, &url), WebOptions::default()).await;
    let st = s
        .wait_status("the JPEG camera live", |st| {
            row(st)["state"] == "live" && row(st)["frames"].as_u64() > Some(3)
        })
        .await;
    assert_eq!(row(&st)["codec"], "jpeg", "{st}");

    // snapshot.jpg: the camera's own picture, of its size.
    let r = s
        .with_token(
            reqwest::Method::GET,
            "/api/streams/mj/snapshot.jpg",
            VIEWER_TOKEN,
        )
        .go()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let jpeg = r.bytes().await.unwrap();
    assert_eq!(sof0_size(&jpeg), SIZE);

    // /mjpeg: parts of real pictures (not the placeholder) keep coming.
    let mut resp = s
        .with_token(reqwest::Method::GET, "/api/streams/mj/mjpeg", VIEWER_TOKEN)
        .go()
        .await;
    assert_eq!(resp.status(), 200);
    let mut body = Vec::new();
    let parts = loop {
        let chunk = tokio::time::timeout(DEADLINE, resp.chunk())
            .await
            .expect("MJPEG data within the deadline")
            .expect("no transport error")
            .expect("the response goes on");
        body.extend_from_slice(&chunk);
        let parts = mjpeg_parts(&body);
        if parts.len() >= 3 {
            break parts;
        }
    };
    for p in &parts {
        assert_eq!(sof0_size(p), SIZE);
    }
    drop(resp);

    // /api/live: the JPEG, WebCodecs and MSE clients all get JPEG pictures.
    for codecs in [&["jpeg"][..], &["h264", "jpeg"], &["mse", "jpeg"]] {
        let mut c = s.live(VIEWER_TOKEN, codecs, "").await;
        // Bounded: a client that never gets an `init` with a codec gets frames forever.
        let (init, h, payload) = tokio::time::timeout(DEADLINE, c.init_and_keyframe())
            .await
            .unwrap_or_else(|_| panic!("{codecs:?}: no init with a codec"));
        assert_eq!(init["stream"], "mj", "{codecs:?}");
        assert_eq!(init["codec"], "jpeg", "{codecs:?}: {init}");
        assert!(
            init["mime"].is_null(),
            "{codecs:?}: no MSE for JPEG: {init}"
        );
        assert_eq!(
            (init["width"].as_u64(), init["height"].as_u64()),
            (Some(u64::from(SIZE.0)), Some(u64::from(SIZE.1))),
            "{codecs:?}: {init}"
        );
        assert_eq!(h.codec, WireCodec::Jpeg, "{codecs:?}");
        assert_eq!(sof0_size(&payload), SIZE, "{codecs:?}");
        let (h2, payload2) = c.next_frame().await;
        assert_eq!(h2.codec, WireCodec::Jpeg, "{codecs:?}");
        assert_ne!(h2.flags & FLAG_KEYFRAME, 0, "every JPEG is a keyframe");
        assert!(h2.seq > h.seq, "{codecs:?}: pictures go on");
        assert_eq!(sof0_size(&payload2), SIZE);
    }
    s.stop().await;
    drop(camera);
}
