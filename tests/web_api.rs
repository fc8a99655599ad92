//! API tests over real HTTP (reqwest against the axum server on a free port): every endpoint's
//! happy path, authentication and roles, the Origin check, JSON errors with field paths, the
//! login rate limit, first-use setup, the one-time password, and a live config change while
//! a WebSocket client watches another stream.

mod common;
mod support;
mod webutil;

use std::time::Duration;

use common::pattern;
use edgecam::web::WebOptions;
use reqwest::Method;
use serde_json::{Value, json};
use webutil::*;

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.expect("a JSON body")
}

#[tokio::test]
async fn health_is_open_and_everything_else_needs_authentication() {
    let s = TestServer::start().await;
    let r = s.get("/api/health").go().await;
    assert_eq!(r.status(), 200);
    let body = json_of(r).await;
    assert_eq!(body["ok"], true);
    assert_eq!(body["setup_required"], false);

    let gets = [
        "/api/session",
        "/api/status",
        "/api/config",
        "/api/events",
        "/api/live",
        "/api/streams/cam1/snapshot.jpg",
        "/api/streams/cam1/mjpeg",
        "/metrics",
    ];
    for path in gets {
        let r = s.get(path).go().await;
        assert_eq!(r.status(), 401, "{path}");
        let body = json_of(r).await;
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let posts = [
        "/api/active",
        "/api/alarms/door/trigger",
        "/api/alarms/door/clear",
        "/api/alarms/door/ack",
        "/api/password",
        "/api/streams/test",
    ];
    for path in posts {
        let r = s.post(path).json(&json!({})).go().await;
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = s
        .request(Method::PUT, "/api/config")
        .json(&json!({}))
        .go()
        .await;
    assert_eq!(r.status(), 401);
    // A wrong token is no better than none; a bad cookie neither.
    let r = s
        .with_token(Method::GET, "/api/status", "not-a-token-at-all")
        .go()
        .await;
    assert_eq!(r.status(), 401);
    let r = s
        .get("/api/status")
        .header("cookie", "edgecam_session=forged")
        .go()
        .await;
    assert_eq!(r.status(), 401);
    // The page itself loads without a session (it then shows the login form).
    let r = s.get("/").go().await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<canvas id=\"video\""));
    for path in ["/app.js", "/style.css"] {
        assert_eq!(s.get(path).go().await.status(), 200);
    }
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/src/lib.rs",
        "/web/app.js",
    ] {
        let r = s.get(path).go().await;
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = s
        .with_token(Method::GET, "/api/nope", ADMIN_TOKEN)
        .go()
        .await;
    assert_eq!(r.status(), 404);
    assert!(json_of(r).await["error"].is_string());
    s.stop().await;
}

#[tokio::test]
async fn login_gives_a_strict_http_only_session_cookie() {
    let s = TestServer::start().await;
    let r = s.login_as("wrong password").await;
    assert_eq!(r.status(), 401);
    let r = s.login_as(ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    let cookie = session_cookie(&r);
    let r = s.get("/api/session").header("cookie", &cookie).go().await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["role"], "admin");
    let r = s.post("/api/logout").header("cookie", &cookie).go().await;
    assert_eq!(r.status(), 200);
    let r = s.get("/api/session").header("cookie", &cookie).go().await;
    assert_eq!(r.status(), 401);
    s.stop().await;
}

#[tokio::test]
async fn every_endpoint_works_for_an_admin_session() {
    let s = TestServer::start().await;
    let cookie = s.login().await;
    let get = |path: &str| s.get(path).header("cookie", cookie.clone()).send();
    let post = |path: &str, body: Value| {
        s.post(path)
            .header("cookie", cookie.clone())
            .header("origin", s.base.clone())
            .json(&body)
            .send()
    };

    let st = s
        .wait_status("three live streams", |st| {
            st["streams"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["state"] == "live")
        })
        .await;
    assert_eq!(st["active"]["stream"], "cam1");
    assert_eq!(st["active"]["reason"], "default");
    assert_eq!(st["streams"].as_array().unwrap().len(), 3);
    for key in [
        "id",
        "name",
        "kind",
        "state",
        "fps",
        "bitrate_kbps",
        "frames",
        "dropped",
        "reconnects",
        "last_error",
        "last_error_at_us",
        "lost_packets",
        "incomplete_frames",
        "transport",
        "waiting_for",
        "keyframe_interval_ms",
        "retry_at_us",
    ] {
        assert!(
            st["streams"][0].get(key).is_some(),
            "status stream lacks {key}"
        );
    }
    assert_eq!(st["alarms"][0]["id"], "door");
    assert!(st["uptime_s"].is_u64());

    let r = post("/api/active", json!({"stream": "cam2"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["active"]["stream"], "cam2");

    let cfg = json_of(get("/api/config").await.unwrap()).await;
    assert_eq!(cfg["streams"].as_array().unwrap().len(), 3);
    assert!(
        cfg["web"]["admin_password_hash"].is_null(),
        "the hash is never sent"
    );

    let r = post("/api/alarms/door/trigger", json!({})).await.unwrap();
    assert_eq!(r.status(), 200);
    s.wait_status("the alarm view", |st| {
        st["active"]["reason"] == "alarm:door"
    })
    .await;
    let r = post("/api/alarms/door/clear", json!({})).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = post("/api/alarms/door/ack", json!({})).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["was_latched"], true);
    s.wait_status("back to the user's choice", |st| {
        st["active"]["stream"] == "cam2"
    })
    .await;
    let r = post("/api/alarms/nope/trigger", json!({})).await.unwrap();
    assert_eq!(r.status(), 404);

    let ev = json_of(get("/api/events").await.unwrap()).await;
    let kinds: Vec<String> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["kind"].as_str().unwrap(),
                e["detail"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        kinds.contains(&"alarm:latched".to_string()) || kinds.contains(&"alarm:active".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"active:alarm:door".to_string()),
        "{kinds:?}"
    );

    let r = get("/api/streams/cam1/snapshot.jpg").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let jpeg = r.bytes().await.unwrap();
    assert_eq!(&jpeg[..2], &[0xff, 0xd8], "a JPEG file");
    // The thumbnails' cheap form: the keyframe's picture (with the page's cache buster).
    let r = get("/api/streams/cam1/snapshot.jpg?keyframe=1&t=123")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-picture-age-ms"));
    assert_eq!(&r.bytes().await.unwrap()[..2], &[0xff, 0xd8], "a JPEG file");
    assert_eq!(
        get("/api/streams/nope/snapshot.jpg")
            .await
            .unwrap()
            .status(),
        404
    );

    let mut r = get("/api/streams/cam2/mjpeg").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("multipart/x-mixed-replace; boundary=")
    );
    let mut got = Vec::new();
    while got.len() < 2000 || !got.windows(2).any(|w| w == [0xff, 0xd9]) {
        let chunk = tokio::time::timeout(Duration::from_secs(20), r.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&got[..60]);
    assert!(
        text.starts_with("--edgecamframe\r\nContent-Type: image/jpeg\r\nContent-Length: "),
        "{text}"
    );
    // While the shared decoder runs, a snapshot comes from it.
    let snap = get("/api/streams/cam2/snapshot.jpg").await.unwrap();
    assert_eq!(snap.status(), 200);
    assert_eq!(&snap.bytes().await.unwrap()[..2], &[0xff, 0xd8]);
    drop(r);

    let r = get("/metrics").await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    for needle in [
        "edgecam_stream_fps{stream=\"cam1\"}",
        "edgecam_stream_frames_total{stream=\"cam3\"}",
        "edgecam_stream_bytes_total{stream=\"cam1\"}",
        "edgecam_stream_reconnects_total{stream=\"cam1\"}",
        "edgecam_ring_overwritten_frames_total{stream=\"cam1\"}",
        "edgecam_ring_lagged_frames_total{stream=\"cam1\"}",
        "edgecam_stream_rtp_lost_packets_total{stream=\"cam1\"} 0",
        "edgecam_stream_incomplete_frames_total{stream=\"cam1\"} 0",
        "edgecam_alarm_raised_total{alarm=\"door\"} 1",
        "edgecam_live_clients",
        "edgecam_live_skipped_frames_total",
        "edgecam_live_ingest_to_send_seconds_bucket",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }

    let r = post(
        "/api/streams/test",
        serde_json::to_value(pattern("probe")).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let probe = json_of(r).await;
    assert_eq!(probe["ok"], true, "{probe}");

    // Changing the password needs the current one.
    let r = post("/api/password", json!({"new": "another password"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(r).await["field"], "current");
    let r = post(
        "/api/password",
        json!({"current": ADMIN_PASSWORD, "new": "another password"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let live_cfg = std::fs::read_to_string(s.dir.path().join("config.toml")).unwrap();
    assert!(live_cfg.contains("$argon2id$"), "the new hash is persisted");
    let r = s.login_as("another password").await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn a_gpio_input_on_a_missing_chip_is_reported_in_the_status() {
    let s = TestServer::start_with(
        |dir| {
            let mut cfg = config(dir);
            cfg.alarms[0].gpio = Some(edgecam::config::GpioInputConfig {
                chip: "/nonexistent/gpiochip9".into(),
                line: edgecam::config::LineRef::Offset(0),
                active: edgecam::config::ActiveLevel::Low,
                bias: edgecam::config::Bias::PullUp,
                debounce_ms: 20,
            });
            cfg
        },
        WebOptions::default(),
    )
    .await;
    let mut st = Value::Null;
    for _ in 0..100 {
        let r = s.with_token(Method::GET, "/api/status", VIEWER_TOKEN);
        st = json_of(r.send().await.unwrap()).await;
        if st["inputs"][0]["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(st["inputs"][0]["alarm"], "door", "{st}");
    assert_eq!(st["inputs"][0]["kind"], "gpio", "{st}");
    assert_eq!(st["inputs"][0]["state"], "failed", "{st}");
    let error = st["inputs"][0]["error"].as_str().unwrap_or_default();
    if cfg!(feature = "rppal") {
        // The server uses the machine's backend, which the `rppal` feature makes rppal; off a
        // Raspberry Pi it refuses the board itself.
        assert!(error.contains("Raspberry Pi"), "{error}");
    } else {
        assert!(
            error.contains("/nonexistent/gpiochip9") && error.contains("no such GPIO chip"),
            "{error}"
        );
    }
    // The daemon goes on: the API still answers and the other streams run.
    let r = s.with_token(Method::GET, "/api/status", VIEWER_TOKEN);
    assert_eq!(r.send().await.unwrap().status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn a_viewer_may_watch_but_not_change_anything() {
    let s = TestServer::start().await;
    for path in ["/api/status", "/api/events", "/metrics", "/api/session"] {
        let r = s.with_token(Method::GET, path, VIEWER_TOKEN).go().await;
        assert_eq!(r.status(), 200, "{path}");
    }
    let mutations: [(Method, &str, Value); 6] = [
        (Method::POST, "/api/active", json!({"stream": "cam2"})),
        (Method::POST, "/api/alarms/door/trigger", json!({})),
        (Method::POST, "/api/alarms/door/clear", json!({})),
        (Method::POST, "/api/alarms/door/ack", json!({})),
        (Method::PUT, "/api/config", json!({})),
        (Method::POST, "/api/password", json!({"new": "whatever123"})),
    ];
    for (m, path, body) in &mutations {
        let r = s
            .with_token(m.clone(), path, VIEWER_TOKEN)
            .json(body)
            .go()
            .await;
        assert_eq!(r.status(), 403, "{m} {path}");
        assert!(json_of(r).await["error"].is_string());
    }
    assert_eq!(
        s.with_token(Method::GET, "/api/config", VIEWER_TOKEN)
            .go()
            .await
            .status(),
        403
    );
    // An operator may select and raise alarms, but not change the config.
    let r = s
        .with_token(Method::POST, "/api/active", OPERATOR_TOKEN)
        .json(&json!({"stream": "cam2"}))
        .go()
        .await;
    assert_eq!(r.status(), 200);
    let r = s
        .with_token(Method::PUT, "/api/config", OPERATOR_TOKEN)
        .json(&json!({}))
        .go()
        .await;
    assert_eq!(r.status(), 403);
    let st = s
        .wait_status("the selection", |st| st["active"]["stream"] == "cam2")
        .await;
    assert_eq!(st["active"]["reason"], "user");
    s.stop().await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_on_state_changes() {
    let s = TestServer::start().await;
    let cookie = s.login().await;
    let r = s
        .post("/api/active")
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .json(&json!({"stream": "cam2"}))
        .go()
        .await;
    assert_eq!(r.status(), 403);
    assert!(
        json_of(r).await["error"]
            .as_str()
            .unwrap()
            .contains("origin")
    );
    let r = s
        .post("/api/login")
        .header("origin", "http://evil.example")
        .json(&json!({"password": ADMIN_PASSWORD}))
        .go()
        .await;
    assert_eq!(r.status(), 403);
    let r = s
        .with_token(Method::POST, "/api/alarms/door/trigger", OPERATOR_TOKEN)
        .header("origin", "https://evil.example")
        .go()
        .await;
    assert_eq!(r.status(), 403);
    // The same origin passes.
    let r = s
        .post("/api/active")
        .header("cookie", &cookie)
        .header("origin", &s.base)
        .json(&json!({"stream": "cam2"}))
        .go()
        .await;
    assert_eq!(r.status(), 200);
    // Reads are not state changes.
    let r = s
        .get("/api/status")
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .go()
        .await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn bad_json_and_invalid_configs_are_400_with_the_field() {
    let s = TestServer::start().await;
    let r = s
        .with_token(Method::POST, "/api/active", ADMIN_TOKEN)
        .body("{not json")
        .header("content-type", "application/json")
        .go()
        .await;
    assert_eq!(r.status(), 400);
    assert!(json_of(r).await["error"].as_str().unwrap().contains("JSON"));
    let r = s
        .with_token(Method::POST, "/api/active", ADMIN_TOKEN)
        .json(&json!({"stream": 5}))
        .go()
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(r).await["field"], "stream");
    let r = s
        .with_token(Method::POST, "/api/active", ADMIN_TOKEN)
        .json(&json!({"stream": "nope"}))
        .go()
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(r).await["field"], "stream");

    let good = s.get_json("/api/config", ADMIN_TOKEN).await;
    // A type error: the path of the bad field.
    let mut bad = good.clone();
    bad["streams"][1]["kind"] = json!("bogus");
    let r = s
        .with_token(Method::PUT, "/api/config", ADMIN_TOKEN)
        .json(&bad)
        .go()
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(r).await["field"], "streams[1].kind");
    // A semantic error: every problem, the first as `field`.
    let mut bad = good.clone();
    bad["streams"][0]["width"] = json!(161);
    bad["alarms"][0]["stream"] = json!("nope");
    let r = s
        .with_token(Method::PUT, "/api/config", ADMIN_TOKEN)
        .json(&bad)
        .go()
        .await;
    assert_eq!(r.status(), 400);
    let body = json_of(r).await;
    assert_eq!(body["field"], "streams[0].width");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["streams[0].width", "alarms[0].stream"]);
    // Nothing was applied or written.
    assert!(!s.dir.path().join("config.toml").exists());
    let now = s.get_json("/api/config", ADMIN_TOKEN).await;
    assert_eq!(now, good);
    s.stop().await;
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_client() {
    let s = TestServer::start().await;
    for _ in 0..5 {
        let r = s.login_as("guess123").await;
        assert_eq!(r.status(), 401);
    }
    let r = s.login_as(ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 429, "even the right password waits");
    assert!(r.headers().contains_key("retry-after"));
    assert!(
        json_of(r).await["error"]
            .as_str()
            .unwrap()
            .contains("too many")
    );
    // Tokens are not affected.
    assert_eq!(
        s.with_token(Method::GET, "/api/status", VIEWER_TOKEN)
            .go()
            .await
            .status(),
        200
    );
    s.stop().await;
}

#[tokio::test]
async fn the_password_is_set_on_first_use_and_persisted() {
    let s = TestServer::start_new_box().await;
    let h: Value = s.get("/api/health").go().await.json().await.unwrap();
    assert_eq!(h["setup_required"], true);
    let r = s.login_as("anything1").await;
    assert_eq!(r.status(), 403);
    let r = s
        .post("/api/setup")
        .json(&json!({"password": "short"}))
        .go()
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(r).await["field"], "password");
    let r = s
        .post("/api/setup")
        .json(&json!({"password": "first password"}))
        .go()
        .await;
    assert_eq!(r.status(), 200);
    let cookie = session_cookie(&r);
    assert_eq!(
        s.get("/api/status")
            .header("cookie", &cookie)
            .go()
            .await
            .status(),
        200
    );
    let saved = edgecam::config::load_file(&s.dir.path().join("config.toml")).unwrap();
    let hash = saved
        .web
        .admin_password_hash
        .expect("the hash is in the live config");
    assert!(edgecam::secret::verify_password("first password", &hash));
    let r = s
        .post("/api/setup")
        .json(&json!({"password": "second password"}))
        .go()
        .await;
    assert_eq!(r.status(), 403, "setup works only once");
    let r = s.login_as("first password").await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn a_one_time_password_must_be_changed_before_anything_else() {
    let one_time = edgecam::secret::hash_password("one-time-pass").unwrap();
    let s = TestServer::start_with(
        |dir| {
            let mut cfg = config(dir);
            cfg.web.admin_password_hash = None;
            cfg
        },
        WebOptions {
            one_time_password_hash: Some(one_time.clone()),
            ..WebOptions::default()
        },
    )
    .await;
    let r = s.login_as("one-time-pass").await;
    assert_eq!(r.status(), 200);
    let cookie = session_cookie(&r);
    assert_eq!(json_of(r).await["must_change_password"], true);
    let r = s.get("/api/status").header("cookie", &cookie).go().await;
    assert_eq!(r.status(), 403);
    let r = s
        .post("/api/password")
        .header("cookie", &cookie)
        .json(&json!({"new": "my own password"}))
        .go()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.get("/api/status")
            .header("cookie", &cookie)
            .go()
            .await
            .status(),
        200
    );
    let r = s.login_as("one-time-pass").await;
    assert_eq!(r.status(), 401, "the one-time password is gone");
    s.stop().await;
}

#[tokio::test]
async fn a_live_config_change_adds_and_removes_streams_while_a_client_watches_another() {
    let s = TestServer::start().await;
    let mut client = s.live(VIEWER_TOKEN, &["h264"], "").await;
    let (init, first, _) = client.init_and_keyframe().await;
    assert_eq!(init["stream"], "cam1");
    let sid = first.sid;

    let mut cfg = s.get_json("/api/config", ADMIN_TOKEN).await;
    let streams = cfg["streams"].as_array_mut().unwrap();
    streams.retain(|x| x["id"] != "cam2");
    streams.push(serde_json::to_value(pattern("cam4")).unwrap());
    let r = s
        .with_token(Method::PUT, "/api/config", ADMIN_TOKEN)
        .json(&cfg)
        .go()
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let st = s
        .wait_status("cam4 live", |st| {
            st["streams"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["id"] == "cam4" && x["state"] == "live")
        })
        .await;
    let ids: Vec<&str> = st["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cam1", "cam3", "cam4"]);
    let saved = edgecam::config::load_file(&s.dir.path().join("config.toml")).unwrap();
    assert_eq!(saved.streams.len(), 3);
    assert_eq!(
        saved.web.admin_password_hash.as_deref(),
        Some(admin_hash().as_str()),
        "the password survives a config edit"
    );

    // The watcher never noticed: same stream, same sid, sequence numbers continue.
    let mut last = first.seq;
    for _ in 0..30 {
        match client.next().await {
            Live::Frame(h, _) => {
                assert_eq!(h.sid, sid);
                assert!(h.seq > last);
                last = h.seq;
            }
            Live::Text(t) => panic!("unexpected message {t}"),
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_refusing_the_password_is_failed_and_test_connection_retries_it_at_once() {
    let camera = support::RtspServer::start(support::ServerOpts {
        auth: Some(("viewer".into(), "s3cret".into())),
        ..support::ServerOpts::default()
    });
    let url = camera.url_with_creds(0, "viewer", "wrong");
    let door: edgecam::config::StreamConfig =
        toml::from_str(&format!("id = \"door\"\nkind = \"rtsp\"\nurl = \"{url}\"")).expect("valid");
    let stream = door.clone();
    let s = TestServer::start_with(
        move |dir| {
            let mut cfg = config(dir);
            cfg.streams.push(stream.clone());
            cfg
        },
        WebOptions::default(),
    )
    .await;
    let door_row = |st: &Value| -> Value {
        st["streams"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == "door").cloned())
            .unwrap_or(Value::Null)
    };
    let st = s
        .wait_status("door failed", |st| door_row(st)["state"] == "failed")
        .await;
    let row = door_row(&st);
    assert!(
        row["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("the camera refused the user name or password")),
        "{row}"
    );
    assert!(
        row["last_error_at_us"].is_i64() && row["retry_at_us"].is_i64(),
        "{row}"
    );
    assert_eq!(row["reconnects"], 0);
    assert!(
        !row.to_string().contains("wrong"),
        "the password never shows: {row}"
    );

    // Test connection (still the wrong password): the probe fails, and the stream is retried
    // now, not in 300 s.
    let r = s
        .with_token(Method::POST, "/api/streams/test", ADMIN_TOKEN)
        .json(&door)
        .go()
        .await;
    assert_eq!(r.status(), 200);
    let report = json_of(r).await;
    assert_eq!(report["ok"], false, "{report}");
    s.wait_status("door retried", |st| {
        let row = door_row(st);
        row["reconnects"] == 1 && row["state"] == "failed"
    })
    .await;
    s.stop().await;
}
