//! WebSocket tests of `/api/live` with a real client (tokio-tungstenite): init then frames
//! that start at a keyframe, switches that start at the new stream's keyframe, the JPEG path,
//! and backpressure (a client that never reads is dropped without slowing ingest or others;
//! a slow one skips to the newest keyframe).

mod common;
mod webutil;

use std::time::Duration;

use edgecam::codec::h264::nal_units;
use edgecam::config::Config;
use edgecam::output::live::LiveOptions;
use edgecam::output::wire::WireCodec as Codec;
use edgecam::output::wire::{FLAG_DISCONTINUITY, FLAG_KEYFRAME};
use edgecam::web::WebOptions;
use reqwest::Method;
use serde_json::json;
use webutil::*;

fn has_sps(au: &[u8]) -> bool {
    nal_units(au).any(|n| n.nal_type() == 7)
}

#[tokio::test]
async fn init_then_frames_starting_at_a_keyframe_in_order() {
    let s = TestServer::start().await;
    let mut c = s.live(VIEWER_TOKEN, &["h264", "jpeg"], "").await;
    let (init, h, payload) = c.init_and_keyframe().await;
    assert_eq!(init["stream"], "cam1");
    assert_eq!(init["reason"], "default");
    assert_eq!(init["name"], "Pattern cam1");
    assert!(
        init["codec"].as_str().unwrap().starts_with("avc1."),
        "{init}"
    );
    assert_eq!(init["width"], 160);
    assert_eq!(init["height"], 96);
    assert_eq!(h.codec, Codec::H264);
    assert!(has_sps(&payload), "the keyframe carries SPS/PPS");
    assert!(h.recv_wall_us > 0);
    let mut last = h.seq;
    for _ in 0..20 {
        let (h, _) = c.next_frame().await;
        assert_eq!(h.seq, last + 1, "every frame, in order");
        assert_eq!(h.skipped, 0);
        last = h.seq;
    }
    s.stop().await;
}

#[tokio::test]
async fn a_switch_starts_at_the_new_streams_keyframe_and_alarms_beat_the_user() {
    let s = TestServer::start().await;
    let mut c = s.live(VIEWER_TOKEN, &["h264"], "").await;
    let (init, _, _) = c.init_and_keyframe().await;
    let sid1 = init["sid"].as_u64().unwrap();

    let r = s
        .with_token(Method::POST, "/api/active", OPERATOR_TOKEN)
        .json(&json!({"stream": "cam2"}))
        .go()
        .await;
    assert_eq!(r.status(), 200);
    let (init, _, payload) = c.init_and_keyframe().await;
    assert_eq!(init["stream"], "cam2");
    assert_eq!(init["reason"], "user");
    assert!(init["sid"].as_u64().unwrap() > sid1);
    assert!(has_sps(&payload));

    let r = s
        .with_token(Method::POST, "/api/alarms/door/trigger", OPERATOR_TOKEN)
        .go()
        .await;
    assert_eq!(r.status(), 200);
    let (init, _, _) = c.init_and_keyframe().await;
    assert_eq!(init["stream"], "cam3");
    assert_eq!(init["reason"], "alarm:door");
    let door = &init["alarms"][0];
    assert_eq!(door["id"], "door");
    assert_ne!(door["state"], "idle");

    // Acknowledging a latched alarm whose input is clear goes back to the user's choice.
    s.with_token(Method::POST, "/api/alarms/door/clear", OPERATOR_TOKEN)
        .go()
        .await;
    let r = s
        .with_token(Method::POST, "/api/alarms/door/ack", OPERATOR_TOKEN)
        .go()
        .await;
    assert_eq!(r.status(), 200);
    let init = loop {
        let v = c.next_text("init").await;
        if v["stream"] == "cam2" {
            break v;
        }
    };
    assert_eq!(init["reason"], "user");
    s.stop().await;
}

#[tokio::test]
async fn the_jpeg_path_sends_decoded_pictures() {
    let s = TestServer::start().await;
    // A client without WebCodecs.
    let mut c = s.live(VIEWER_TOKEN, &["jpeg"], "").await;
    let init = c.video_init().await;
    assert_eq!(init["codec"], "jpeg");
    assert_eq!(init["stream"], "cam1");
    assert_eq!(init["width"], 160);
    let (h, payload) = c.next_frame().await;
    assert_eq!(h.codec, Codec::Jpeg);
    assert_eq!(&payload[..2], &[0xff, 0xd8]);
    let (h2, _) = c.next_frame().await;
    assert!(h2.seq > h.seq);
    // Forced by the query parameter even when the client could decode H.264.
    let mut forced = s.live(VIEWER_TOKEN, &["h264", "jpeg"], "?mode=jpeg").await;
    assert_eq!(forced.video_init().await["codec"], "jpeg");
    // A switch: the next picture is of the new stream.
    s.with_token(Method::POST, "/api/active", OPERATOR_TOKEN)
        .json(&json!({"stream": "cam3"}))
        .go()
        .await;
    let init = c.video_init().await;
    assert_eq!(init["stream"], "cam3");
    let (h, payload) = c.next_frame().await;
    assert_eq!(u64::from(h.sid), init["sid"].as_u64().unwrap());
    assert_eq!(&payload[..2], &[0xff, 0xd8]);
    // The shared decoders run only while someone watches.
    let state = std::sync::Arc::clone(s.server.as_ref().unwrap().state());
    assert!(state.jpeg_decoders().contains(&"cam3".to_string()));
    drop(c);
    drop(forced);
    for _ in 0..200 {
        if state.jpeg_decoders().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state.jpeg_decoders(), Vec::<String>::new());
    s.stop().await;
}

/// cam1 with bigger frames, so socket buffers fill within seconds.
fn heavy(dir: &std::path::Path) -> Config {
    let mut cfg = config(dir);
    cfg.ring.bytes_per_stream = 8 * 1024 * 1024;
    cfg.ring.slots_per_stream = 512;
    let cam1 = &mut cfg.streams[0];
    cam1.width = Some(640);
    cam1.height = Some(360);
    cam1.bitrate_kbps = Some(4000);
    cam1.gop = Some(25);
    cfg
}

/// A server on [`heavy`] whose live clients may queue 10 frames and wait `send_timeout`.
async fn start_heavy(send_timeout: Duration) -> TestServer {
    let live = LiveOptions {
        queue_frames: 10,
        send_timeout,
        ..LiveOptions::default()
    };
    let options = WebOptions {
        live,
        ..WebOptions::default()
    };
    TestServer::start_with(heavy, options).await
}

/// An H.264 live client with a 4 KiB receive buffer, so its socket fills at once.
async fn tiny_buffer_client(s: &TestServer) -> LiveClient {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(s.host.parse().unwrap()).await.unwrap();
    s.live_over(stream, VIEWER_TOKEN, &["h264"], "").await
}

async fn metric(s: &TestServer, name: &str) -> f64 {
    let text = s
        .with_token(Method::GET, "/metrics", VIEWER_TOKEN)
        .go()
        .await
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_and_slows_nobody() {
    let s = start_heavy(Duration::from_secs(1)).await;
    s.wait_status("cam1 live", |st| st["streams"][0]["state"] == "live")
        .await;

    // The stuck client: a tiny receive buffer, and it never reads after its hello.
    let stuck = tiny_buffer_client(&s).await;

    let mut good = s.live(VIEWER_TOKEN, &["h264"], "").await;
    good.next_text("init").await;
    let (first, _) = good.next_frame().await;
    let ingest_before = s.frames("cam1").await;
    let mut last = first.seq;
    let mut received = 0u64;
    // Read until the stuck client has been dropped, checking every frame.
    loop {
        let (h, _) = good.next_frame().await;
        assert_eq!(h.seq, last + 1, "the reading client gets every frame");
        assert_eq!(h.skipped, 0, "and never skips");
        last = h.seq;
        received += 1;
        if received.is_multiple_of(25)
            && metric(&s, "edgecam_live_dropped_clients_total").await >= 1.0
        {
            break;
        }
        assert!(received < 3000, "the stuck client was never dropped");
    }
    assert_eq!(metric(&s, "edgecam_live_clients").await, 1.0);
    let ingest_after = s.frames("cam1").await;
    // Ingest kept going at its own pace while the stuck client filled its buffers: every
    // frame it produced meanwhile reached the reading client.
    assert!(
        ingest_after - ingest_before + 2 >= received,
        "{ingest_before} {ingest_after} {received}"
    );
    assert!(ingest_after > ingest_before);
    let st = s.wait_status("status", |_| true).await;
    assert_eq!(st["streams"][0]["dropped"], 0, "ingest refused nothing");
    drop(stuck);
    s.stop().await;
}

#[tokio::test]
async fn a_slow_client_skips_to_the_newest_keyframe() {
    let s = start_heavy(Duration::from_secs(10)).await;
    let mut slow = tiny_buffer_client(&s).await;
    slow.next_text("init").await;
    for i in 0..2000 {
        let (h, _) = slow.next_frame().await;
        if h.flags & FLAG_DISCONTINUITY != 0 {
            assert_ne!(h.flags & FLAG_KEYFRAME, 0, "a skip lands on a keyframe");
            assert!(h.skipped > 0, "the header counts the skipped frames");
            assert!(metric(&s, "edgecam_live_skipped_frames_total").await > 0.0);
            s.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(if i < 5 { 0 } else { 100 })).await;
    }
    panic!("the slow client never skipped");
}

#[tokio::test]
async fn a_websocket_from_a_foreign_origin_is_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let s = TestServer::start().await;
    let mut req = format!("ws://{}/api/live", s.host)
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert(
        "authorization",
        format!("Bearer {VIEWER_TOKEN}").parse().unwrap(),
    );
    h.insert("origin", "http://evil.example".parse().unwrap());
    let stream = tokio::net::TcpStream::connect(&s.host).await.unwrap();
    match tokio_tungstenite::client_async(req, stream).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected a 403, got {:?}", other.map(|_| ())),
    }
    // Without credentials the upgrade is refused too.
    let req = format!("ws://{}/api/live", s.host)
        .into_client_request()
        .unwrap();
    let stream = tokio::net::TcpStream::connect(&s.host).await.unwrap();
    match tokio_tungstenite::client_async(req, stream).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected a 401, got {:?}", other.map(|_| ())),
    }
    s.stop().await;
}
