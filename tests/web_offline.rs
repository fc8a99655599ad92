//! A camera without video never shows another camera (issue 14): a switch to a stream that is
//! down, or never came up, gets its `init` at once, without a codec and with the reason, and
//! no frame of the previous stream, nor the stale GOP still in the down stream's ring, follows.
//! Real RTSP server (gst-rtsp-server) for the camera that goes down; a closed loopback port
//! for the one that never answers; a real WebSocket client.

mod common;
mod support;
mod webutil;

use common::pattern;
use edgecam::config::{StreamConfig, StreamKind};
use edgecam::web::WebOptions;
use reqwest::Method;
use serde_json::{Value, json};
use support::{RtspServer, ServerOpts, refused_port};
use webutil::*;

/// An RTSP camera `id` named `name` at `url`, with a short stall timeout.
fn rtsp(id: &str, name: &str, url: String) -> StreamConfig {
    StreamConfig {
        name: Some(name.into()),
        kind: StreamKind::Rtsp,
        url: Some(url),
        width: None,
        height: None,
        fps: None,
        bitrate_kbps: None,
        gop: None,
        stall_timeout_ms: 1500,
        connect_timeout_ms: 3000,
        ..pattern(id)
    }
}

/// Reads messages until `until` accepts a text message; fails on any binary frame before it.
async fn text_only_until(c: &mut LiveClient, what: &str, until: impl Fn(&Value) -> bool) -> Value {
    loop {
        match c.next().await {
            Live::Text(v) if until(&v) => return v,
            Live::Text(_) => {}
            Live::Frame(h, _) => panic!(
                "a frame (sid {}, seq {}) arrived while waiting for {what}: the page would paint it",
                h.sid, h.seq
            ),
        }
    }
}

/// The next `init`; frames before it belong to the previous view and may still be in flight.
async fn next_init(c: &mut LiveClient) -> Value {
    c.next_text("init").await
}

async fn switch(s: &TestServer, stream: &str) {
    let r = s
        .with_token(Method::POST, "/api/active", OPERATOR_TOKEN)
        .json(&json!({ "stream": stream }))
        .go()
        .await;
    assert_eq!(r.status(), 200, "switch to {stream}");
}

fn stream_state(st: &Value, id: &str) -> String {
    st["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .map(|s| s["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_switch_to_a_camera_without_video_says_whose_video_is_missing_and_shows_nothing_else() {
    let mut server = RtspServer::start(ServerOpts::default());
    let gate_port = refused_port();
    let yard_url = server.url(0);
    let s = TestServer::start_with(
        move |dir| {
            let mut cfg = config(dir);
            cfg.streams
                .push(rtsp("yard", "Yard camera", yard_url.clone()));
            cfg.streams.push(rtsp(
                "gate",
                "Gate camera",
                format!("rtsp://127.0.0.1:{gate_port}/stream"),
            ));
            cfg
        },
        WebOptions::default(),
    )
    .await;
    s.wait_status("yard live", |st| stream_state(st, "yard") == "live")
        .await;
    let mut h264 = s.live(VIEWER_TOKEN, &["h264"], "").await;
    let mut jpeg = s.live(VIEWER_TOKEN, &["jpeg"], "").await;
    for c in [&mut h264, &mut jpeg] {
        let (init, _, _) = c.init_and_keyframe().await;
        assert_eq!(init["stream"], "cam1");
        assert_eq!(init["video"]["live"], true, "{init}");
    }

    // A camera that never answers: the init comes at once, names it, has no codec.
    switch(&s, "gate").await;
    for c in [&mut h264, &mut jpeg] {
        let init = next_init(c).await;
        assert_eq!(init["stream"], "gate", "{init}");
        assert_eq!(init["name"], "Gate camera", "{init}");
        assert_eq!(init["reason"], "user");
        assert!(init["codec"].is_null(), "no codec without video: {init}");
        assert_eq!(init["video"]["live"], false, "{init}");
        let sid = init["sid"].clone();
        // With the reason, at once or, while it still tries its first connection, after it:
        // the connection is refused. Not a single frame meanwhile.
        let (video, from) = if init["video"]["error"].is_string() {
            (init["video"].clone(), sid.clone())
        } else {
            let v = text_only_until(c, "the gate's error", |v| {
                v["type"] == "video" && v["error"].is_string()
            })
            .await;
            let from = v["sid"].clone();
            (v, from)
        };
        let err = video["error"].as_str().unwrap();
        assert!(err.contains("refused"), "the reason says why: {video}");
        assert_eq!(from, sid);
        assert_ne!(video["state"], "live");
    }

    // A camera that was live and went down: its ring still holds its last GOP, which must not
    // be shown as if it were live.
    server.kill();
    s.wait_status("yard down", |st| stream_state(st, "yard") != "live")
        .await;
    switch(&s, "yard").await;
    let mut yard_sids = Vec::new();
    for c in [&mut h264, &mut jpeg] {
        let init = next_init(c).await;
        assert_eq!(init["stream"], "yard", "{init}");
        assert_eq!(init["name"], "Yard camera");
        assert!(init["codec"].is_null(), "{init}");
        assert_eq!(init["video"]["live"], false, "{init}");
        assert_ne!(init["video"]["state"], "live", "{init}");
        assert!(
            init["video"]["down_s"].is_u64(),
            "it had video before: how long it is down ({init})"
        );
        yard_sids.push(init["sid"].clone());
    }

    // The camera comes back: its video starts with a new init (codec) and a keyframe.
    server.restart();
    for (c, sid) in [&mut h264, &mut jpeg].into_iter().zip(&yard_sids) {
        let init = text_only_until(c, "yard's video", |v| {
            v["type"] == "init" && !v["codec"].is_null()
        })
        .await;
        assert_eq!(&init["sid"], sid, "same switch, now with video: {init}");
        assert_eq!(init["stream"], "yard");
        assert_eq!(init["video"]["live"], true, "{init}");
        let (h, _) = c.next_frame().await;
        assert_eq!(Value::from(h.sid), *sid);
        assert_ne!(h.flags & edgecam::output::wire::FLAG_KEYFRAME, 0);
    }
    s.stop().await;
}
