//! Event clips (issue 19) through the real daemon and web server: an HTTP-triggered alarm on
//! a test-pattern stream writes a fragmented MP4 that real `ffprobe` reads as H.264 starting
//! at a keyframe, with monotonic timestamps and the expected duration (within one GOP plus
//! the HTTP round trips); the file answers Range requests with 206 and the right bytes; the
//! quota removes the oldest clip; a clip directory replaced by a file mid-clip gives a clear
//! `/api/status` and the live stream goes on.

mod common;
mod webutil;

use std::process::Command;
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

/// `ffprobe` packets of the first video stream: (pts s, dts s, keyframe), and the codec.
fn probe(path: &std::path::Path) -> (String, Vec<(f64, f64, bool)>) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_streams",
            "-show_packets",
        ])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs (Debian package ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let codec = v["streams"][0]["codec_name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let num = |p: &Value, k: &str| p[k].as_str().and_then(|s| s.parse::<f64>().ok()).unwrap();
    let packets = v["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let key = p["flags"].as_str().unwrap_or("").starts_with('K');
            (num(p, "pts_time"), num(p, "dts_time"), key)
        })
        .collect();
    (codec, packets)
}

/// Checks a clip file: H.264, keyframe first, monotonic decode times; returns its duration.
fn check_clip(path: &std::path::Path) -> f64 {
    let (codec, packets) = probe(path);
    assert_eq!(codec, "h264");
    assert!(packets.len() > 10, "{} packets", packets.len());
    assert!(packets[0].2, "the first packet is a keyframe");
    for w in packets.windows(2) {
        assert!(
            w[1].1 > w[0].1,
            "decode times increase: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let first = packets.iter().map(|p| p.0).fold(f64::MAX, f64::min);
    let last = packets.iter().map(|p| p.0).fold(f64::MIN, f64::max);
    last - first + 0.04
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
