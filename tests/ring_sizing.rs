//! Rings sized from the measured rates (issue 19, item 3) through the real daemon and web
//! server: a stream whose rates were measured before (`<state_dir>/ring-rates.json`) gets a
//! ring that holds `clips.pre_s` plus a GOP at its start; a stream measured while it runs is
//! reported short in `/api/status` and gets the bigger ring at its next start (a config
//! change), with its rates saved for the next start of the box; `ring.max_bytes_per_stream`
//! produces a warning that names it; a damaged rates file is ignored.

mod common;
mod webutil;

use std::time::{Duration, Instant};

use edgecam::config::Config;
use edgecam::web::WebOptions;
use reqwest::Method;
use serde_json::{Value, json};
use webutil::{ADMIN_TOKEN, TestServer, stream_row};

const MIB: u64 = 1024 * 1024;

/// The rates file's name in the state directory.
const RATES: &str = "ring-rates.json";

/// [`webutil::config`] with clips on, `pre_s` of 10 s, and `tune` applied.
fn config(dir: &std::path::Path, tune: &dyn Fn(&mut Config)) -> Config {
    let mut cfg = webutil::config(dir);
    cfg.clips.enabled = true;
    cfg.clips.pre_s = 10;
    cfg.clips.max_s = 60;
    cfg.clips.min_free_bytes = 0;
    tune(&mut cfg);
    edgecam::config::validate(&cfg).expect("test config is valid");
    cfg
}

/// Starts the box with `rates` (a file body) in its state directory before the daemon starts.
async fn start(rates: Option<&'static [u8]>, tune: impl Fn(&mut Config) + 'static) -> TestServer {
    TestServer::start_with(
        move |dir| {
            if let Some(body) = rates {
                std::fs::write(dir.join(RATES), body).unwrap();
            }
            config(dir, &tune)
        },
        WebOptions::default(),
    )
    .await
}

/// cam1 measured at 1 MB/s (8 Mbit/s), 25 fps, a 2 s GOP: far more than a 1 MiB ring holds.
const FAST_CAM1: &[u8] = br#"{"version": 1, "streams": {
    "cam1": {"bytes_per_s": 1000000, "fps_milli": 25000, "keyframe_interval_ms": 2000}}}"#;

/// The `clips.ring_warnings` entry of `id`, if any.
fn warning<'a>(st: &'a Value, id: &str) -> Option<&'a Value> {
    st["clips"]["ring_warnings"]
        .as_array()
        .expect("clips are on: ring_warnings is a list")
        .iter()
        .find(|w| w["stream"] == id)
}

#[tokio::test]
async fn a_measured_stream_gets_a_ring_that_holds_pre_s_at_its_start() {
    let s = start(Some(FAST_CAM1), |_| {}).await;
    let st = s.get_json("/api/status", ADMIN_TOKEN).await;
    let cam1 = stream_row(&st, "cam1");
    let bytes = cam1["ring_bytes"].as_u64().expect("ring_bytes");
    // (10 s + 2 s + 1 s) × 1 MB/s with a quarter to spare, in 64 KiB steps.
    assert_eq!(bytes, 16_252_928, "{cam1}");
    assert!(cam1["ring_slots"].as_u64().unwrap() >= 12 * 25, "{cam1}");
    let holds = cam1["ring_holds_s"].as_f64().expect("cam1 was measured");
    assert!(holds >= 12.0, "the ring holds pre_s plus a GOP: {cam1}");
    assert_eq!(warning(&st, "cam1"), None, "{st}");
    // A stream without a measurement keeps the configured ring.
    assert_eq!(stream_row(&st, "cam2")["ring_bytes"], MIB);
    s.stop().await;
}

#[tokio::test]
async fn the_cap_is_named_when_it_keeps_the_ring_short() {
    let s = start(Some(FAST_CAM1), |cfg| {
        cfg.ring.max_bytes_per_stream = Some(4 * MIB);
    })
    .await;
    let st = s.get_json("/api/status", ADMIN_TOKEN).await;
    assert_eq!(stream_row(&st, "cam1")["ring_bytes"], 4 * MIB);
    let w = warning(&st, "cam1").unwrap_or_else(|| panic!("cam1 is short: {st}"));
    assert_eq!(w["limited_by_cap"], true, "{w}");
    let holds = w["holds_s"].as_f64().unwrap();
    assert!((4.0..4.3).contains(&holds), "4 MiB at 1 MB/s: {w}");
    assert_eq!(w["needs_s"], 12.0);
    let words = w["error"].as_str().unwrap();
    for needle in [
        "holds about 4.2 s",
        "clips.pre_s = 10 s",
        "ring.max_bytes_per_stream (4.0 MiB) is what limits it",
        "at least 16252928",
    ] {
        assert!(words.contains(needle), "{needle:?} in {words}");
    }
    assert_eq!(
        warning(&st, "cam2"),
        None,
        "cam2 was not measured fast: {st}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_damaged_rates_file_is_ignored() {
    let s = start(Some(b"{\"version\": 1, \"streams\": {\"cam1\": "), |_| {}).await;
    let st = s.get_json("/api/status", ADMIN_TOKEN).await;
    assert_eq!(stream_row(&st, "cam1")["ring_bytes"], MIB);
    s.stop().await;
}

/// Waits (up to `secs`) until `f` holds for `/api/status`.
async fn wait(s: &TestServer, secs: u64, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let st = s.get_json("/api/status", ADMIN_TOKEN).await;
        if f(&st) {
            return st;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}: {st}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_stream_measured_while_it_runs_is_reported_and_fixed_at_its_next_start() {
    // The smallest ring and the longest pre-roll: cam1's test pattern overflows it.
    let s = start(None, |cfg| {
        cfg.ring.bytes_per_stream = 256 * 1024;
        cfg.clips.pre_s = 60;
        cfg.clips.max_s = 120;
        cfg.streams[0].width = Some(320);
        cfg.streams[0].height = Some(192);
        cfg.streams[0].bitrate_kbps = Some(1000);
    })
    .await;
    // The daemon measures over 10 s windows and saves what it measured.
    let rates = s.dir.path().join(RATES);
    let end = Instant::now() + Duration::from_secs(40);
    let saved: Value = loop {
        if let Ok(body) = std::fs::read(&rates)
            && let Ok(v) = serde_json::from_slice::<Value>(&body)
            && v["streams"]["cam1"]["bytes_per_s"].as_u64() > Some(0)
        {
            break v;
        }
        assert!(Instant::now() < end, "no rates of cam1 saved in {rates:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let st = wait(&s, 20, "cam1's ring warning", |st| {
        warning(st, "cam1").is_some()
    })
    .await;
    let w = warning(&st, "cam1").unwrap();
    assert_eq!(w["limited_by_cap"], false, "{w}");
    assert!(
        w["error"]
            .as_str()
            .unwrap()
            .contains("next time the stream starts"),
        "{w}"
    );
    let next = w["next_start_bytes"].as_u64().unwrap();
    assert!(next > 256 * 1024, "{w}; saved {saved}");
    assert_eq!(stream_row(&st, "cam1")["ring_bytes"], 256 * 1024);

    // A change to cam1's settings restarts it: with the ring its rates ask for.
    let mut cfg: Value = s.get_json("/api/config", ADMIN_TOKEN).await;
    cfg["streams"][0]["name"] = json!("Front door");
    let r = s
        .with_token(Method::PUT, "/api/config", ADMIN_TOKEN)
        .json(&cfg)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let st = s.get_json("/api/status", ADMIN_TOKEN).await;
    let cam1 = stream_row(&st, "cam1");
    assert!(cam1["ring_bytes"].as_u64().unwrap() > 256 * 1024, "{cam1}");
    let holds = cam1["ring_holds_s"].as_f64().unwrap();
    assert!(holds >= 60.0, "the new ring holds pre_s: {cam1}");
    assert_eq!(warning(&st, "cam1"), None, "{st}");
    // The other streams were not restarted and keep their rings.
    assert_eq!(stream_row(&st, "cam2")["ring_bytes"], 256 * 1024);
    s.stop().await;
}
