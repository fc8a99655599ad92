//! The RTSP source against a real RTSP server (GStreamer), through the supervisor: frames,
//! transports, and every way a camera can refuse to play.

mod support;

use edgecam::backoff::BackoffConfig;
use edgecam::clock::{Clock, SystemClock};
use edgecam::config::schema::Transport;
use edgecam::frame::Codec;
use edgecam::ingest::rtsp::RtspSource;
use edgecam::ingest::stats::StreamState;
use edgecam::ingest::supervisor::{SupervisorConfig, SupervisorHandle, spawn_supervisor};
use std::sync::Arc;
use std::time::Duration;
use support::{RtspServer, ServerOpts, SharedSink, wait_until};

/// Generous: the 2-core CI box may be busy compiling.
const LIVE_DEADLINE: Duration = Duration::from_secs(20);

fn cfg() -> SupervisorConfig {
    SupervisorConfig {
        connect_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_secs(2),
        backoff: BackoffConfig {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(1),
            stable_after: Duration::from_secs(30),
        },
        probe_every: Duration::from_millis(250),
        first_epoch: 0,
        failed_retry: Duration::from_secs(300),
    }
}

fn supervise(id: &str, url: &str, transport: Transport) -> (SupervisorHandle, SharedSink) {
    let source = RtspSource::new(url, transport).expect("valid test url");
    let sink = SharedSink::default();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let h = spawn_supervisor(id.to_string(), Arc::new(source), cfg(), sink.clone(), clock);
    (h, sink)
}

/// Checks what every consumer relies on: keyframe first with SPS+PPS+IDR, Annex B,
/// sequence numbers without gaps, receive times and pts that never go back, one epoch.
fn check_frames(sink: &SharedSink) {
    let frames = sink.snapshot();
    let first = &frames[0];
    assert!(first.meta.info.keyframe, "first frame is a keyframe");
    assert!(
        first.meta.info.params_changed,
        "first frame announces parameters"
    );
    assert!(first.annex_b, "Annex B framing");
    for t in [7u8, 8, 5] {
        assert!(
            first.nal_types.contains(&t),
            "first frame NAL types {:?} lack {t}",
            first.nal_types
        );
    }
    let mut keyframes = 0;
    for (i, w) in frames.windows(2).enumerate() {
        assert_eq!(w[1].meta.seq, w[0].meta.seq + 1, "sequence gap at {i}");
        assert!(
            w[1].meta.info.recv_mono_ns >= w[0].meta.info.recv_mono_ns,
            "receive time went back"
        );
        // Never backwards. Equal is allowed: a camera may stamp two access units alike (the
        // GStreamer server's live encoder did once in CI, on its first two frames).
        assert!(
            w[1].meta.info.pts_us >= w[0].meta.info.pts_us,
            "pts went back at {i}: {:?}",
            frames
                .iter()
                .take(i + 3)
                .map(|f| f.meta.info.pts_us)
                .collect::<Vec<_>>()
        );
        assert_eq!(w[1].meta.info.epoch, first.meta.info.epoch);
        if w[1].meta.info.keyframe {
            keyframes += 1;
            assert!(w[1].nal_types.contains(&7) && w[1].nal_types.contains(&5));
        } else {
            assert!(!w[1].nal_types.contains(&5), "IDR slice in a non-keyframe");
        }
    }
    assert!(
        keyframes >= 1,
        "a 1 s GOP gives another keyframe within {} frames",
        frames.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_streams_go_live_with_decodable_frames() {
    let server = RtspServer::start(ServerOpts {
        mounts: 4,
        ..ServerOpts::default()
    });
    let streams: Vec<_> = (0..4)
        .map(|i| supervise(&format!("cam{i}"), &server.url(i), Transport::Tcp))
        .collect();
    for (h, sink) in &streams {
        let stats = h.stats();
        assert!(
            wait_until(LIVE_DEADLINE, || stats.state() == StreamState::Live
                && sink.len() >= 60)
            .await,
            "{} not live with 60 frames: {:?}",
            stats.id(),
            stats.snapshot()
        );
    }
    for (h, sink) in &streams {
        check_frames(sink);
        let s = h.stats().snapshot();
        assert_eq!(s.epoch, 1);
        assert_eq!(s.reconnects, 0, "{s:?}");
        assert!(s.fps > 0.0 && s.bitrate_kbps > 0, "rates measured: {s:?}");
        assert_eq!(s.last_error, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_transport_delivers_frames_from_a_looped_clip() {
    // A one-second clip looped: 60 frames cross the loop point twice, and the frames must
    // stay decodable and in order across it.
    let server = RtspServer::start(ServerOpts {
        clip_seconds: 1,
        ..ServerOpts::default()
    });
    let (h, sink) = supervise("udp", &server.url(0), Transport::Udp);
    let stats = h.stats();
    assert!(
        wait_until(LIVE_DEADLINE, || sink.len() >= 60).await,
        "no UDP frames: {:?}",
        stats.snapshot()
    );
    check_frames(&sink);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtp_jpeg_camera_stores_jpeg_pictures_and_h264_is_still_preferred() {
    let server = RtspServer::start(ServerOpts {
        width: 320,
        height: 240,
        fps: 10,
        gop: 10,
        jpeg_mounts: true,
        ..ServerOpts::default()
    });
    let url = |path: &str| format!("rtsp://127.0.0.1:{}/{path}", server.port());
    let (jpeg, jpeg_sink) = supervise("jpeg", &url("jpeg"), Transport::Tcp);
    // RTP/JPEG is listed first, H.264 second: H.264 is chosen.
    let (both, both_sink) = supervise("both", &url("both"), Transport::Tcp);
    for (h, sink) in [(&jpeg, &jpeg_sink), (&both, &both_sink)] {
        let stats = h.stats();
        assert!(
            wait_until(LIVE_DEADLINE, || stats.state() == StreamState::Live
                && sink.len() >= 20)
            .await,
            "{} not live with 20 frames: {:?}",
            stats.id(),
            stats.snapshot()
        );
    }
    let frames = jpeg_sink.snapshot();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.meta.info.codec, Codec::Jpeg, "frame {i}");
        assert!(f.meta.info.keyframe, "every JPEG frame is a keyframe ({i})");
        assert!(f.jpeg, "frame {i} is one whole JPEG image (SOI .. EOI)");
    }
    for w in frames.windows(2) {
        assert_eq!(w[1].meta.seq, w[0].meta.seq + 1);
        assert!(w[1].meta.info.pts_us > w[0].meta.info.pts_us, "pts advance");
    }
    assert_eq!(jpeg.stats().snapshot().codec, Some("jpeg"));
    assert_eq!(both.stats().snapshot().codec, Some("h264"));
    assert!(
        both_sink
            .snapshot()
            .iter()
            .all(|f| f.meta.info.codec == Codec::H264)
    );
    check_frames(&both_sink);
}

/// Waits until the stream is `failed` and returns its last error: one attempt, no retry.
async fn failed_error(h: &SupervisorHandle) -> String {
    let stats = h.stats();
    assert!(
        wait_until(LIVE_DEADLINE, || stats.state() == StreamState::Failed).await,
        "{} did not fail: {:?}",
        stats.id(),
        stats.snapshot()
    );
    let s = stats.snapshot();
    assert_eq!((s.reconnects, s.frames), (0, 0), "{s:?}");
    assert!(
        s.retry_at_us.is_some() && s.last_error_at_us.is_some(),
        "{s:?}"
    );
    s.last_error.expect("an error sentence")
}

/// A good, a wrong and a missing password against a server with Digest or Basic auth.
async fn credentials_case(basic: bool) {
    let server = RtspServer::start(ServerOpts {
        auth: Some(("viewer".into(), "s3cret".into())),
        basic_auth: basic,
        ..ServerOpts::default()
    });
    let (good, good_sink) = supervise(
        "good",
        &server.url_with_creds(0, "viewer", "s3cret"),
        Transport::Tcp,
    );
    let (bad, _) = supervise(
        "bad",
        &server.url_with_creds(0, "viewer", "wrong"),
        Transport::Auto,
    );
    let (none, _) = supervise("none", &server.url(0), Transport::Auto);
    let bad_err = failed_error(&bad).await;
    assert_eq!(
        bad_err,
        "the camera refused the user name or password (401 Unauthorized); check them in the \
         camera URL in the Cameras tab"
    );
    assert!(!bad_err.contains("wrong"));
    assert_eq!(
        failed_error(&none).await,
        "the camera wants a user name and password (401 Unauthorized); put them in the camera \
         URL in the Cameras tab (rtsp://user:password@...)"
    );
    let gs = good.stats();
    assert!(
        wait_until(LIVE_DEADLINE, || good_sink.len() >= 10).await,
        "{:?}",
        gs.snapshot()
    );
    assert_eq!(gs.reconnects(), 0);
    // Still one login each: `failed` waits its 300 s (retried at once only when asked).
    assert_eq!(
        (bad.stats().reconnects(), none.stats().reconnects()),
        (0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_digest_credentials_fail_after_one_login() {
    credentials_case(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_basic_credentials_fail_after_one_login() {
    credentials_case(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_udp_when_the_camera_refuses_tcp_and_remembers_it() {
    let server = RtspServer::start(ServerOpts {
        udp_only: true,
        ..ServerOpts::default()
    });
    let url = server.url(0);
    let source = RtspSource::new(&url, Transport::Auto).expect("valid test url");
    let wire = source.url().clone();
    assert_eq!(edgecam::ingest::rtsp::learned(&wire), None);
    let (auto, sink) = supervise("auto", &url, Transport::Auto);
    let stats = auto.stats();
    assert!(
        wait_until(LIVE_DEADLINE, || sink.len() >= 30).await,
        "auto did not go live over UDP: {:?}",
        stats.snapshot()
    );
    check_frames(&sink);
    let s = stats.snapshot();
    assert_eq!(
        (s.state, s.transport, s.reconnects),
        (StreamState::Live, Some("udp"), 0),
        "{s:?}"
    );
    assert_eq!(s.last_error, None, "the fallback is not an error");
    // Remembered for the camera: the next session (a restart, Test connection) starts with UDP.
    assert_eq!(edgecam::ingest::rtsp::learned(&wire), Some(Transport::Udp));
    drop(auto);

    // Test connection of the same camera says which transport worked.
    let cfg: edgecam::config::StreamConfig =
        toml::from_str(&format!("id = \"auto\"\nkind = \"rtsp\"\nurl = \"{url}\"")).expect("valid");
    let report = edgecam::ingest::probe::probe(&cfg).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.transport, Some("udp"));

    // Forced TCP is retried with a sentence that says what to set.
    let (tcp, _) = supervise("tcp", &url, Transport::Tcp);
    let e = retried_error(&tcp).await;
    assert!(
        e.starts_with("the camera refused RTSP over TCP (status 461 at SETUP)"),
        "{e}"
    );
    assert!(e.contains("\"auto\" or \"udp\""), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_gop_camera_joined_mid_gop_waits_for_its_keyframe_without_a_timeout() {
    // A 10 s GOP: a viewer that joins after the first keyframe gets P-frames for seconds.
    let server = RtspServer::start(ServerOpts {
        gop: 250,
        ..ServerOpts::default()
    });
    let (first, first_sink) = supervise("first", &server.url(0), Transport::Tcp);
    assert!(
        wait_until(LIVE_DEADLINE, || first_sink.len() >= 25).await,
        "{:?}",
        first.stats().snapshot()
    );
    let (late, late_sink) = supervise("late", &server.url(0), Transport::Tcp);
    let stats = late.stats();
    assert!(
        wait_until(LIVE_DEADLINE, || stats.snapshot().waiting_for
            == Some("keyframe"))
        .await,
        "P-frames before the keyframe were not seen: {:?}",
        stats.snapshot()
    );
    // Longer than the 5 s connect timeout, shorter than the keyframe wait's cap.
    assert!(
        wait_until(Duration::from_secs(25), || late_sink.len() >= 1).await,
        "{:?}",
        stats.snapshot()
    );
    let s = stats.snapshot();
    assert_eq!(
        (s.state, s.reconnects, s.last_error),
        (StreamState::Live, 0, None)
    );
    assert!(late_sink.snapshot()[0].meta.info.keyframe);
    // By now the first stream has seen two keyframes 10 s apart.
    let fs = first.stats();
    assert!(
        wait_until(LIVE_DEADLINE, || fs.keyframe_interval_ms().is_some()).await,
        "{:?}",
        fs.snapshot()
    );
    let gop = fs.keyframe_interval_ms().unwrap_or(0);
    assert!((9_000..=11_000).contains(&gop), "measured GOP {gop} ms");
}

/// Waits until the stream has retried at least twice and returns its last error.
async fn retried_error(h: &SupervisorHandle) -> String {
    let stats = h.stats();
    assert!(
        wait_until(LIVE_DEADLINE, || stats.reconnects() >= 2).await,
        "{} did not retry: {:?}",
        stats.id(),
        stats.snapshot()
    );
    let s = stats.snapshot();
    assert!(
        matches!(s.state, StreamState::Backoff | StreamState::Connecting),
        "{s:?}"
    );
    assert_eq!(s.frames, 0);
    assert_eq!(s.panics, 0);
    s.last_error.expect("an error sentence")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_end_in_the_right_state_without_touching_a_healthy_stream() {
    let server = RtspServer::start(ServerOpts {
        audio_mount: true,
        ..ServerOpts::default()
    });
    let (healthy, healthy_sink) = supervise("healthy", &server.url(0), Transport::Tcp);

    let missing = supervise(
        "missing",
        &format!("rtsp://127.0.0.1:{}/nope", server.port()),
        Transport::Tcp,
    )
    .0;
    let audio = supervise(
        "audio",
        &format!("rtsp://127.0.0.1:{}/audio", server.port()),
        Transport::Tcp,
    )
    .0;
    let refused = supervise(
        "refused",
        &format!("rtsp://127.0.0.1:{}/x", support::refused_port()),
        Transport::Tcp,
    )
    .0;
    let silent = supervise(
        "silent",
        &format!("rtsp://127.0.0.1:{}/x", support::silent_server()),
        Transport::Tcp,
    )
    .0;
    let garbage = supervise(
        "garbage",
        &format!("rtsp://127.0.0.1:{}/x", support::garbage_server()),
        Transport::Tcp,
    )
    .0;

    assert_eq!(
        failed_error(&missing).await,
        "the camera has no stream at /nope (404 Not Found); check the path in the camera URL \
         in the Cameras tab (the camera's manual lists it)"
    );
    assert_eq!(
        failed_error(&audio).await,
        "the camera offers no video at this URL (it offers audio/pcma); use the URL of its \
         H.264 video stream"
    );
    let e = retried_error(&refused).await;
    assert!(
        e.starts_with("connection to 127.0.0.1:") && e.ends_with("refused (nothing listening)"),
        "{e}"
    );
    let e = retried_error(&silent).await;
    assert!(
        e.starts_with("no RTSP answer from the camera within 5.0 s; check the address and port"),
        "{e}"
    );
    let e = retried_error(&garbage).await;
    assert!(!e.contains("buffered"), "{e}");
    assert!(e.starts_with("not an RTSP server: 127.0.0.1:"), "{e}");

    let hs = healthy.stats();
    let before = hs.frames();
    assert!(
        wait_until(LIVE_DEADLINE, || hs.frames() > before + 25).await,
        "{:?}",
        hs.snapshot()
    );
    let s = hs.snapshot();
    assert_eq!(
        (s.state, s.reconnects, s.last_error),
        (StreamState::Live, 0, None)
    );
    check_frames(&healthy_sink);
}

#[tokio::test]
async fn a_non_rtsp_url_is_a_config_error() {
    for url in ["http://cam/x", "rtsp://", "definitely not a url"] {
        let err = RtspSource::new(url, Transport::Tcp).expect_err(url);
        assert!(err.is_permanent(), "{url}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h265_camera_goes_live_with_parameter_sets_on_every_keyframe() {
    let server = RtspServer::start(ServerOpts {
        width: 320,
        height: 240,
        fps: 10,
        gop: 10,
        h265_mount: true,
        ..ServerOpts::default()
    });
    let url = format!("rtsp://127.0.0.1:{}/h265", server.port());
    let (h, sink) = supervise("hevc", &url, Transport::Tcp);
    let stats = h.stats();
    assert!(
        wait_until(LIVE_DEADLINE, || stats.state() == StreamState::Live
            && sink.len() >= 25)
        .await,
        "not live with 25 frames: {:?}",
        stats.snapshot()
    );
    assert_eq!(stats.snapshot().codec, Some("h265"));
    let frames = sink.snapshot();
    assert!(
        frames[0].meta.info.keyframe,
        "the first stored frame is a keyframe"
    );
    let mut keys = 0;
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.meta.info.codec, Codec::H265, "frame {i}");
        assert!(f.annex_b, "frame {i} is Annex B");
        // `nal_types` keeps the low 5 bits of the first header byte: (type << 1) & 0x1f.
        let types: Vec<u8> = f.nal_types.iter().map(|b| (b >> 1) & 0x0f).collect();
        if f.meta.info.keyframe {
            keys += 1;
            // VPS (32), SPS (33), PPS (34) first: low four bits 0, 1, 2.
            assert_eq!(&types[..3], &[0, 1, 2], "frame {i}: VPS/SPS/PPS first");
        }
    }
    let seen: Vec<(bool, Vec<u8>)> = frames
        .iter()
        .map(|f| (f.meta.info.keyframe, f.nal_types.clone()))
        .collect();
    assert!(keys >= 2, "a keyframe every 10 frames: {keys} in {seen:?}");
    assert!(
        !frames[1..]
            .iter()
            .any(|f| f.meta.info.params_changed && !f.meta.info.keyframe)
    );
}
