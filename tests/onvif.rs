//! ONVIF against a camera on loopback (`tests/support/onvif_camera.py`: device, media and
//! PullPoint events services answering the real SOAP requests, checking the WS-Security
//! digest against its own clock, which runs an hour ahead): a motion event raises the alarm
//! and switches the view of a real daemon and `false` clears it; the subscription is renewed
//! and released; a wrong password is a clear per-input error; a camera that goes away and
//! comes back is subscribed again; *From ONVIF* returns the profiles and stream URLs, and
//! only to an admin.

mod common;
mod support;
mod webutil;

use std::collections::HashMap;
use std::time::Duration;

use edgecam::config::{AlarmMode, Config, OnvifInputConfig, StreamConfig, StreamKind};
use edgecam::web::WebOptions;
use serde_json::{Value, json};
use support::onvif::{Camera, PASSWORD, USER};
use webutil::{ADMIN_TOKEN, Go, OPERATOR_TOKEN, TestServer, VIEWER_TOKEN};

/// The web test config with the `door` alarm (cam3) transparent and raised by `onvif`.
fn config_with(
    dir: &std::path::Path,
    onvif: OnvifInputConfig,
    extra: Option<StreamConfig>,
) -> Config {
    let mut c = webutil::config(dir);
    c.streams.extend(extra);
    c.alarms[0].mode = AlarmMode::Transparent;
    c.alarms[0].onvif = Some(onvif);
    edgecam::config::validate(&c).expect("test config is valid");
    c
}

fn onvif(text: &str) -> OnvifInputConfig {
    toml::from_str(text).expect("a valid [alarms.onvif] section")
}

fn door_input(st: &Value) -> Value {
    st["inputs"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["alarm"] == "door"))
        .cloned()
        .unwrap_or(Value::Null)
}

fn active(st: &Value) -> &str {
    st["active"]["stream"].as_str().unwrap_or("")
}

async fn wait_camera(cam: &mut Camera, what: &str, f: impl Fn(&HashMap<String, u64>) -> bool) {
    for _ in 0..200 {
        if f(&cam.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "timed out waiting for the camera to see {what}: {:?}",
        cam.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn motion_raises_the_alarm_and_false_clears_it() {
    // Lifetime 3 s: the daemon must renew to keep its one subscription through the test.
    let mut cam = Camera::start(0, 3);
    // The camera is named by a (disabled) stream: host and credentials come from its URL.
    let doorcam = StreamConfig {
        kind: StreamKind::Rtsp,
        url: Some("rtsp://admin:s3cret%3Apw@127.0.0.1:9/main".into()),
        enabled: false,
        width: None,
        height: None,
        fps: None,
        ..StreamConfig::testpattern("doorcam", 2, 2, 1)
    };
    let input = onvif(&format!(
        "stream = \"doorcam\"\nport = {}\ntopic = \"motion\"",
        cam.port
    ));
    let server = TestServer::start_with(
        move |dir| config_with(dir, input.clone(), Some(doorcam.clone())),
        WebOptions::default(),
    )
    .await;
    let st = server
        .wait_status("the ONVIF input ok", |st| door_input(st)["state"] == "ok")
        .await;
    assert_eq!(active(&st), "cam1");
    assert_eq!(door_input(&st)["kind"], "onvif", "{st}");

    cam.motion(true);
    let st = server
        .wait_status("motion calls up cam3", |st| active(st) == "cam3")
        .await;
    assert_eq!(st["alarms"][0]["state"], "active");
    cam.motion(false);
    let st = server
        .wait_status("no motion: back to cam1", |st| active(st) == "cam1")
        .await;
    assert_eq!(st["alarms"][0]["state"], "idle");

    // Past two lifetimes: still the first subscription, renewed, still delivering.
    tokio::time::sleep(Duration::from_secs(7)).await;
    cam.motion(true);
    server
        .wait_status("motion again after renewals", |st| active(st) == "cam3")
        .await;
    let stats = cam.stats();
    assert_eq!(stats["subscribe"], 1, "one subscription, kept: {stats:?}");
    assert!(stats["renew"] >= 2, "renewed before it ran out: {stats:?}");
    assert_eq!(stats["refused"], 0, "every digest was accepted: {stats:?}");

    server.stop().await;
    wait_camera(&mut cam, "Unsubscribe on stop", |s| s["unsubscribe"] == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_clear_input_error() {
    let mut cam = Camera::start(0, 60);
    let input = onvif(&format!(
        "address = \"127.0.0.1:{}\"\nuser = \"admin\"\npassword = \"wrong\"",
        cam.port
    ));
    let server = TestServer::start_with(
        move |dir| config_with(dir, input.clone(), None),
        WebOptions::default(),
    )
    .await;
    let st = server
        .wait_status("the ONVIF input failed", |st| {
            door_input(st)["state"] == "failed"
        })
        .await;
    let error = door_input(&st)["error"].as_str().unwrap_or("").to_string();
    assert!(
        error.contains("the camera refused the user name or password"),
        "{error}"
    );
    assert!(
        !error.contains("wrong"),
        "no password in the error: {error}"
    );
    cam.motion(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let st = server.wait_status("status", |_| true).await;
    assert_eq!(active(&st), "cam1", "nothing raised");
    assert!(cam.stats()["refused"] >= 1);
    assert_eq!(cam.stats()["subscribe"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_comes_back_is_subscribed_again() {
    let cam = Camera::start(0, 60);
    let port = cam.port;
    let input = onvif(&format!(
        "address = \"127.0.0.1:{port}\"\nuser = \"admin\"\npassword = \"{PASSWORD}\"\nitem = \"IsMotion\""
    ));
    let server = TestServer::start_with(
        move |dir| config_with(dir, input.clone(), None),
        WebOptions::default(),
    )
    .await;
    server
        .wait_status("the ONVIF input ok", |st| door_input(st)["state"] == "ok")
        .await;
    drop(cam);
    let st = server
        .wait_status("the ONVIF input failed", |st| {
            door_input(st)["state"] == "failed"
        })
        .await;
    let error = door_input(&st)["error"].as_str().unwrap_or("").to_string();
    assert!(
        error.contains(&format!("does not answer ONVIF on port {port}")),
        "{error}"
    );
    let mut cam = Camera::start(port, 60);
    server
        .wait_status("the ONVIF input ok again", |st| {
            door_input(st)["state"] == "ok"
        })
        .await;
    wait_camera(&mut cam, "a new subscription", |s| s["subscribe"] == 1).await;
    cam.motion(true);
    server
        .wait_status("motion after the camera came back", |st| {
            active(st) == "cam3"
        })
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_onvif_returns_the_profiles_and_stream_urls_to_admins_only() {
    let cam = Camera::start(0, 60);
    let server = TestServer::start_with(webutil::config, WebOptions::default()).await;
    let body =
        json!({"address": format!("127.0.0.1:{}", cam.port), "user": USER, "password": PASSWORD});
    let r = server
        .with_token(reqwest::Method::POST, "/api/onvif/profiles", ADMIN_TOKEN)
        .json(&body)
        .go()
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["device"]["manufacturer"], "Loopback Optics");
    assert_eq!(v["device"]["model"], "LB-2000");
    assert_eq!(v["device"]["firmware"], "1.2.3");
    let profiles = v["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 2);
    assert_eq!(profiles[0]["name"], "mainStream");
    assert_eq!(profiles[0]["encoding"], "H264");
    assert_eq!(
        (
            profiles[0]["width"].as_u64(),
            profiles[0]["height"].as_u64()
        ),
        (Some(1920), Some(1080))
    );
    assert_eq!(profiles[1]["uri"], "rtsp://127.0.0.1:554/sub");
    assert_eq!(v["main_url"], "rtsp://admin:s3cret%3Apw@127.0.0.1:554/main");
    assert_eq!(v["sub_url"], "rtsp://admin:s3cret%3Apw@127.0.0.1:554/sub");

    for token in [VIEWER_TOKEN, OPERATOR_TOKEN] {
        let r = server
            .with_token(reqwest::Method::POST, "/api/onvif/profiles", token)
            .json(&body)
            .go()
            .await;
        assert_eq!(r.status(), 403, "only an admin may read camera credentials");
    }

    let wrong =
        json!({"address": format!("127.0.0.1:{}", cam.port), "user": USER, "password": "nope"});
    let r = server
        .with_token(reqwest::Method::POST, "/api/onvif/profiles", ADMIN_TOKEN)
        .json(&wrong)
        .go()
        .await;
    // A refusal is the camera's answer, not an HTTP error (the page shows no console error).
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["field"], "password");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("refused the user name or password")
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let gone = json!({"address": format!("127.0.0.1:{port}"), "user": USER, "password": PASSWORD});
    let r = server
        .with_token(reqwest::Method::POST, "/api/onvif/profiles", ADMIN_TOKEN)
        .json(&gone)
        .go()
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains(&format!("does not answer ONVIF on port {port}")),
        "{v}"
    );
    server.stop().await;
}

/// An `https://` ONVIF address: the camera answers HTTPS only, with a certificate it made
/// itself (as cameras do); the input subscribes over TLS and motion raises the alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_camera_address_works_with_the_cameras_own_certificate() {
    let mut cam = Camera::start_tls(0, 60);
    let input = onvif(&format!(
        "address = \"https://127.0.0.1:{}\"\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"",
        cam.port
    ));
    let server = TestServer::start_with(
        move |dir| config_with(dir, input.clone(), None),
        WebOptions::default(),
    )
    .await;
    let st = server
        .wait_status("the ONVIF input ok over https", |st| {
            door_input(st)["state"] == "ok"
        })
        .await;
    assert_eq!(active(&st), "cam1", "{st}");
    cam.motion(true);
    server
        .wait_status("motion over https calls up cam3", |st| active(st) == "cam3")
        .await;
    cam.motion(false);
    server
        .wait_status("back to cam1", |st| active(st) == "cam1")
        .await;
    assert!(cam.stats()["subscribe"] >= 1);
    server.stop().await;
}
