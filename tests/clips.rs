//! Event clips (issue 19) through the real daemon and web server: an HTTP-triggered alarm on
//! a test-pattern stream writes a fragmented MP4 that real `ffprobe` reads as H.264 starting
//! at a keyframe, with monotonic timestamps and the expected duration (within one GOP plus
//! the HTTP round trips); the file answers Range requests with 206 and the right bytes; the
//! quota removes the oldest clip; a clip directory replaced by a file mid-clip gives a clear
//! `/api/status` and the live stream goes on; a camera whose picture size changes mid-clip
//! (gst-rtsp-server's `/resize`) gives two files of one size each, parts 1 and 2 of the
//! alarm's raise. ffprobe runs through `support::ffprobe`.

mod common;
mod support;
mod webutil;

use std::time::{Duration, Instant};

use edgecam::config::{AlarmMode, Config};
use edgecam::web::WebOptions;
use reqwest::Method;
use serde_json::Value;
use webutil::{ADMIN_TOKEN, OPERATOR_TOKEN, TestServer};

/// Deadline of every wait.
const DEADLINE: Duration = Duration::from_secs(30);
/// The test pattern's GOP: 10 frames at 25 fps.
const GOP_S: f64 = 0.4;

/// Three cameras, a transparent HTTP alarm `motion` on cam2, short clip timings. Clips are
/// on by default (`clips.enabled` is not set here), in `<state_dir>/clips`.
fn config(dir: &std::path::Path, tune: impl Fn(&mut Config)) -> Config {
    let mut cfg = webutil::config(dir);
    cfg.alarms
        .push(common::alarm("motion", "cam2", 5, AlarmMode::Transparent));
    cfg.clips.pre_s = 2;
    cfg.clips.post_s = 1;
    cfg.clips.max_s = 30;
    cfg.clips.min_free_bytes = 0;
    tune(&mut cfg);
    edgecam::config::validate(&cfg).expect("test config is valid");
    cfg
}

async fn start(tune: impl Fn(&mut Config) + Clone) -> TestServer {
    TestServer::start_with(move |d| config(d, tune.clone()), WebOptions::default()).await
}

/// `POST /api/alarms/motion/<what>` as operator.
async fn alarm(s: &TestServer, what: &str) {
    let r = s
        .with_token(
            Method::POST,
            &format!("/api/alarms/motion/{what}"),
            OPERATOR_TOKEN,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{what}");
}

/// Waits until `/api/clips` satisfies `f`; returns its clips.
async fn wait_clips(s: &TestServer, what: &str, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let end = Instant::now() + DEADLINE;
    loop {
        let list = s.get_json("/api/clips", ADMIN_TOKEN).await;
        let clips = list["clips"].as_array().cloned().unwrap_or_default();
        if f(&clips) {
            return clips;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until cam2 has stored `n` frames.
async fn frames_at_least(s: &TestServer, n: u64) {
    let end = Instant::now() + DEADLINE;
    while s.frames("cam2").await < n {
        assert!(Instant::now() < end, "cam2 never stored {n} frames");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks a clip file with ffprobe: H.264, keyframe first, monotonic decode times; returns
/// its duration.
fn check_clip(path: &std::path::Path) -> f64 {
    let p = support::probe_video(path);
    p.assert_playable("h264", 10, "the clip");
    p.duration()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_alarm_writes_a_playable_clip_with_range_requests() {
    let s = start(|_| {}).await;
    frames_at_least(&s, 100).await;
    let raised = Instant::now();
    alarm(&s, "trigger").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cleared = Instant::now();
    alarm(&s, "clear").await;
    let held = cleared.duration_since(raised).as_secs_f64();
    let clips = wait_clips(&s, "a complete clip", |c| {
        c.first().is_some_and(|c| c["state"] == "complete")
    })
    .await;
    let clip = &clips[0];
    assert_eq!(
        (clip["alarm"].as_str(), clip["stream"].as_str()),
        (Some("motion"), Some("cam2"))
    );
    let id = clip["id"].as_str().unwrap();

    let url = format!("/api/clips/{id}.mp4");
    let full = s
        .with_token(Method::GET, &url, OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["content-type"], "video/mp4");
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    let full = full.bytes().await.unwrap();
    assert_eq!(full.len() as u64, clip["bytes"].as_u64().unwrap());
    let file = s.dir.path().join("clip.mp4");
    std::fs::write(&file, &full).unwrap();
    let duration = check_clip(&file);
    // pre_s (back to a keyframe: up to one GOP more) + the alarm + post_s, the HTTP round
    // trips on either side within the slack.
    let expected = 2.0 + held + 1.0;
    assert!(
        duration > expected - GOP_S - 0.5 && duration < expected + GOP_S + 0.5,
        "clip lasts {duration:.2} s, expected {expected:.2} s within one GOP"
    );

    let part = s
        .with_token(Method::GET, &url, OPERATOR_TOKEN)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-199/{}", full.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), full.slice(100..200));
    let tail = s
        .with_token(Method::GET, &url, OPERATOR_TOKEN)
        .header("range", format!("bytes={}-", full.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 416);

    let st = s.get_json("/api/status", ADMIN_TOKEN).await;
    assert_eq!(st["clips"]["state"], "ok", "{}", st["clips"]);
    let by_alarm = s.get_json("/api/clips?alarm=door", ADMIN_TOKEN).await;
    assert_eq!(by_alarm["total"], 0);
    let by_stream = s
        .get_json("/api/clips?stream=cam2&limit=1", ADMIN_TOKEN)
        .await;
    assert_eq!(by_stream["total"], 1);

    let del = |token: &'static str| {
        s.with_token(Method::DELETE, &format!("/api/clips/{id}"), token)
            .send()
    };
    assert_eq!(del(OPERATOR_TOKEN).await.unwrap().status(), 403);
    assert_eq!(del(ADMIN_TOKEN).await.unwrap().status(), 204);
    assert_eq!(del(ADMIN_TOKEN).await.unwrap().status(), 404);
    let gone = s
        .with_token(Method::GET, &url, OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_removes_the_oldest_clip() {
    let s = start(|c| {
        c.clips.quota_count = 2;
        c.clips.pre_s = 1;
        c.clips.post_s = 0;
    })
    .await;
    frames_at_least(&s, 50).await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        alarm(&s, "trigger").await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        alarm(&s, "clear").await;
        let clips = wait_clips(&s, "the clip ended", |c| {
            c.first().is_some_and(|c| c["state"] == "complete")
                && c.iter().filter(|c| !ids.contains(&c["id"])).count() == 1
        })
        .await;
        ids.push(clips[0]["id"].clone());
        assert_eq!(clips.len(), n.min(2), "{clips:?}");
        // Distinct ids (millisecond raise times) and a new raise each round.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let clips = wait_clips(&s, "two clips", |c| c.len() == 2).await;
    let left: Vec<_> = clips.iter().map(|c| c["id"].clone()).collect();
    assert_eq!(
        left,
        [ids[2].clone(), ids[1].clone()],
        "newest first, oldest gone"
    );
    let dir = s.dir.path().join("clips");
    let oldest = dir.join(format!("{}.mp4", ids[0].as_str().unwrap()));
    assert!(!oldest.exists(), "the oldest clip's file is removed");
    // The live view is unaffected.
    let before = s.frames("cam2").await;
    frames_at_least(&s, before + 10).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clip_directory_that_goes_away_mid_clip_is_reported() {
    let s = start(|c| c.clips.max_s = 60).await;
    frames_at_least(&s, 60).await;
    alarm(&s, "trigger").await;
    wait_clips(&s, "a clip recording", |c| {
        c.first().is_some_and(|c| c["state"] == "recording")
    })
    .await;
    // Works as root too (chmod would not stop root): the directory becomes a file.
    let dir = s.dir.path().join("clips");
    std::fs::rename(&dir, s.dir.path().join("clips.old")).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    let st = s
        .wait_status("clips in error", |st| st["clips"]["state"] == "error")
        .await;
    let err = st["clips"]["error"].as_str().unwrap_or("");
    assert!(
        err.contains("clips.dir"),
        "the error says what to check: {err}"
    );
    // The live stream goes on.
    let before = s.frames("cam2").await;
    frames_at_least(&s, before + 10).await;
    alarm(&s, "clear").await;
    s.stop().await;
}

/// The picture sizes of every decoded frame of `path`, deduplicated in order.
fn frame_sizes(path: &std::path::Path) -> Vec<String> {
    let out = support::ffprobe(
        path,
        &["-show_entries", "frame=width,height", "-of", "csv=p=0"],
    );
    let mut sizes: Vec<String> = Vec::new();
    // A frame with side data ends in an empty field: `320,240,`.
    for line in out.lines().map(|l| l.trim().trim_end_matches(',')) {
        if line.is_empty() {
            continue;
        }
        if sizes.last().is_none_or(|s| s != line) {
            sizes.push(line.to_string());
        }
    }
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picture_size_change_mid_clip_goes_on_in_a_second_file() {
    // gst-rtsp-server's /resize: 320x240, halved 8 s into the session (a new SPS and IDR);
    // the alarm is raised about 3 s in, so the pre-roll and part 1 are before the change.
    let camera = support::start_rtsp(support::ServerOpts {
        width: 320,
        height: 240,
        fps: 10,
        gop: 10,
        zoo_mounts: true,
        resize_after_s: 8,
        ..support::ServerOpts::default()
    })
    .await;
    let url = format!("rtsp://127.0.0.1:{}/resize", camera.port());
    let s = TestServer::start_with(
        move |d| {
            let mut cfg = webutil::rtsp_camera_config(d, "cam2", "Resizing camera", &url);
            cfg.alarms
                .push(common::alarm("motion", "cam2", 5, AlarmMode::Transparent));
            cfg.clips.pre_s = 2;
            cfg.clips.post_s = 1;
            cfg.clips.max_s = 60;
            cfg.clips.min_free_bytes = 0;
            edgecam::config::validate(&cfg).expect("test config is valid");
            cfg
        },
        WebOptions::default(),
    )
    .await;
    frames_at_least(&s, 25).await;
    alarm(&s, "trigger").await;
    wait_clips(&s, "the second part", |c| c.len() == 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    alarm(&s, "clear").await;
    let clips = wait_clips(&s, "both parts complete", |c| {
        c.len() == 2 && c.iter().all(|c| c["state"] == "complete")
    })
    .await;
    // Newest first: part 2, then part 1; one alarm raise.
    let (p2, p1) = (&clips[0], &clips[1]);
    assert_eq!(
        (p1["part"].as_u64(), p2["part"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(p1["raised_us"], p2["raised_us"], "one event: {clips:?}");
    assert!(
        p1["start_us"].as_i64() < p1["raised_us"].as_i64()
            && p2["start_us"].as_i64() > p1["raised_us"].as_i64(),
        "part 1 holds the pre-roll, part 2 follows the change: {clips:?}"
    );
    assert_eq!(
        (p1["alarm"].as_str(), p2["alarm"].as_str()),
        (Some("motion"), Some("motion"))
    );
    let id1 = p1["id"].as_str().unwrap();
    assert_eq!(p2["id"].as_str(), Some(format!("{id1}.2").as_str()));
    let by_alarm = s.get_json("/api/clips?alarm=motion", ADMIN_TOKEN).await;
    assert_eq!(
        by_alarm["total"], 2,
        "the API shows both parts for the alarm"
    );

    let dir = s.dir.path().join("clips");
    for (c, size) in [(p1, (320, 240)), (p2, (160, 120))] {
        let id = c["id"].as_str().unwrap();
        let path = dir.join(format!("{id}.mp4"));
        let probe = support::probe_video(&path);
        probe.assert_playable("h264", 10, id);
        assert_eq!(probe.size, size, "{id}");
        let sizes = frame_sizes(&path);
        assert_eq!(
            sizes,
            [format!("{},{}", size.0, size.1)],
            "{id}: one size per file"
        );
        let listed = c["duration_ms"].as_u64().unwrap() as f64 / 1000.0;
        assert!(
            (probe.duration() - listed).abs() < 0.25,
            "{id}: plays {:.2} s, listed {listed:.2} s",
            probe.duration()
        );
        println!(
            "measured: {id} {size:?} {:.2} s, {} packets",
            probe.duration(),
            probe.packets.len()
        );
    }
    s.stop().await;
}

/// An alarm added by a config change whose input is on from the moment it starts (a GPIO
/// contact already open) gets its clip: the clip manager restarts before the inputs, so it
/// hears the raise (started after them, it took the alarm for one already up). Several
/// rounds, as the loss was a race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_added_with_its_input_already_on_gets_a_clip() {
    use edgecam::daemon::alarms::GpioBackends;
    use edgecam::gpio::mock::{MockInput, MockOutputs};
    use std::sync::Arc;
    // Active low, and the line reads low: the contact is open from the start.
    let contact = MockInput::new(false);
    let gpio = GpioBackends {
        input: Arc::new(contact.clone()),
        output: Arc::new(MockOutputs::default()),
    };
    let s = TestServer::start_with_gpio(|d| config(d, |_| {}), WebOptions::default(), gpio).await;
    frames_at_least(&s, 60).await;
    for round in 0..4 {
        let mut cfg: Config = serde_json::from_value(s.get_json("/api/config", ADMIN_TOKEN).await)
            .expect("the config parses");
        let id = format!("gate{round}");
        cfg.alarms.retain(|a| !a.id.starts_with("gate"));
        cfg.alarms.push(common::gpio_alarm(&id, "cam2"));
        let r = s
            .with_token(Method::PUT, "/api/config", ADMIN_TOKEN)
            .json(&cfg)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "round {round}: {}",
            r.text().await.unwrap_or_default()
        );
        s.wait_status(&format!("round {round}: {id} active"), |st| {
            st["alarms"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|a| a["id"] == id.as_str() && a["state"] != "idle")
            })
        })
        .await;
        wait_clips(&s, &format!("round {round}: a clip of {id}"), |c| {
            c.iter().any(|c| c["alarm"] == id.as_str())
        })
        .await;
    }
    s.stop().await;
}
