//! The outside probe's cases as tests against the real server (issue 15): a login storm,
//! config replacement by partial bodies, DNS rebinding (Host and Origin), WebSocket message
//! limits, slow and idle connections and the connection cap, body limits, Content-Type,
//! caching, and names with invisible characters. Real HTTP, WebSocket and TCP clients on
//! loopback; the login storm runs the real binary so its memory can be read from /proc.

mod common;
mod webutil;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use edgecam::web::WebOptions;
use edgecam::web::serve::ServeLimits;
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use webutil::*;

/// Generous: a loaded 2-core machine is slow, and nothing here measures speed.
const DEADLINE: Duration = Duration::from_secs(30);

/// The `edgecam run` process, killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A kB figure of /proc/<pid>/status (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
}

/// Starts `edgecam run` with an admin password and one small test pattern; its address.
fn start_daemon(dir: &std::path::Path) -> (Daemon, String) {
    let mut cfg = common::three_cameras(dir);
    cfg.streams.truncate(1);
    cfg.alarms.clear();
    cfg.select.default = Some("cam1".into());
    cfg.web.listen = "127.0.0.1:0".into();
    cfg.web.admin_password_hash = Some(edgecam::secret::hash_password("the right one").unwrap());
    let path = dir.join("config.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgecam"))
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "error")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.strip_prefix("edgecam: web page at http://") {
                let _ = tx.send(rest.trim_end_matches('/').to_string());
            }
        }
    });
    let host = rx
        .recv_timeout(DEADLINE)
        .expect("the daemon prints its address");
    (Daemon(child), host)
}

#[tokio::test]
async fn a_login_storm_checks_at_most_five_passwords_and_keeps_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, host) = start_daemon(dir.path());
    let pid = daemon.0.id();
    let http = reqwest::Client::new();
    let url = format!("http://{host}/api/login");
    // Settled: one request served, then the peak is reset to the current size.
    let r = http
        .get(format!("http://{host}/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak RSS");
    let before = status_kb(pid, "VmRSS");

    let attempts = (0..100).map(|_| {
        let http = http.clone();
        let url = url.clone();
        async move {
            http.post(&url)
                .json(&json!({"password": "wrong password"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| {
            matches!(
                **s,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            )
        })
        .count();
    assert!(
        checked <= 5,
        "at most 5 passwords checked, {checked} were: {statuses:?}"
    );
    assert_eq!(
        checked + refused,
        100,
        "every other attempt refused at once: {statuses:?}"
    );
    let peak = status_kb(pid, "VmHWM");
    let growth_mb = peak.saturating_sub(before) as f64 / 1024.0;
    println!(
        "login storm: {checked} checked, {refused} refused at once, RSS {before} kB before, peak {peak} kB (+{growth_mb:.1} MB)"
    );
    assert!(
        growth_mb < 20.0,
        "RSS grew by {growth_mb:.1} MB during the storm ({before} kB before, peak {peak} kB)"
    );
    // Still limited afterwards, also for the right password from that address.
    let r = http
        .post(&url)
        .json(&json!({"password": "the right one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(daemon);
}

async fn put_config(s: &TestServer, body: &Value) -> reqwest::Response {
    s.with_token(Method::PUT, "/api/config", ADMIN_TOKEN)
        .json(body)
        .go()
        .await
}

#[tokio::test]
async fn a_partial_config_is_refused_and_loses_nothing() {
    let s = TestServer::start().await;
    let good = s.get_json("/api/config", ADMIN_TOKEN).await;
    let mut no_streams = good.clone();
    no_streams.as_object_mut().unwrap().remove("streams");
    let mut no_listen = good.clone();
    no_listen["web"].as_object_mut().unwrap().remove("listen");
    let cases = [
        (json!([]), None, "JSON object"),
        (json!({}), Some("web"), "missing"),
        (json!({"streams": []}), Some("web"), "missing"),
        (no_streams, Some("streams"), "whole config"),
        (no_listen, Some("web.listen"), "missing"),
    ];
    for (body, field, words) in cases {
        let r = put_config(&s, &body).await;
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["field"].as_str(), field, "{e}");
        assert!(e["error"].as_str().unwrap().contains(words), "{e}");
    }
    // The state directory is read at start only; the password changes on its own route.
    let mut moved = good.clone();
    moved["paths"]["state_dir"] = json!("/tmp/elsewhere");
    let r = put_config(&s, &moved).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "paths.state_dir");
    let mut locked = good.clone();
    locked["web"]["admin_password_hash"] = json!("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA");
    let r = put_config(&s, &locked).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["field"],
        "web.admin_password_hash"
    );
    // Nothing was lost: the same config, and the admin still gets in.
    assert_eq!(s.get_json("/api/config", ADMIN_TOKEN).await, good);
    let r = s.login_as(ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 200);
    // The whole config, unchanged, is accepted.
    let r = put_config(&s, &good).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    s.stop().await;
}

#[tokio::test]
async fn dns_rebinding_cannot_set_up_or_steer_the_box() {
    let s = TestServer::start_new_box().await;
    let evil = [("Host", "evil.example"), ("Origin", "http://evil.example")];
    let mut setup = s
        .post("/api/setup")
        .json(&json!({"password": "attacker-pass"}));
    for (k, v) in evil {
        setup = setup.header(k, v);
    }
    let r = setup.send().await.unwrap();
    assert_eq!(r.status(), 403, "setup through a rebound name");
    assert!(
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("web.hostnames")
    );
    assert_eq!(
        s.get("/api/health")
            .go()
            .await
            .json::<Value>()
            .await
            .unwrap()["setup_required"],
        true
    );

    let mut active = s
        .with_token(Method::POST, "/api/active", OPERATOR_TOKEN)
        .json(&json!({"stream": "cam2"}));
    for (k, v) in evil {
        active = active.header(k, v);
    }
    assert_eq!(active.send().await.unwrap().status(), 403);
    // The scheme counts: this server is http.
    let r = s
        .with_token(Method::POST, "/api/active", OPERATOR_TOKEN)
        .header("Origin", format!("https://{}", s.host))
        .json(&json!({"stream": "cam2"}))
        .go()
        .await;
    assert_eq!(r.status(), 403);
    // The WebSocket upgrade to a rebound name.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/api/live", s.host),
    )
    .unwrap();
    req.headers_mut()
        .insert("Host", "evil.example".parse().unwrap());
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {VIEWER_TOKEN}").parse().unwrap(),
    );
    let e = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(e.to_string().contains("403"), "{e}");
    // By its address, the box works.
    let r = s
        .with_token(Method::POST, "/api/active", OPERATOR_TOKEN)
        .header("Origin", format!("http://{}", s.host))
        .json(&json!({"stream": "cam2"}))
        .go()
        .await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

/// Reads until the server closes the connection (or resets it); panics after [`DEADLINE`].
async fn closed_by_server(tcp: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(DEADLINE, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "{what}: the server did not close the connection"
    );
}

#[tokio::test]
async fn a_websocket_message_that_never_ends_closes_the_connection() {
    let s = TestServer::start().await;
    let mut c = s.live(VIEWER_TOKEN, &["h264"], "").await;
    c.video_init().await;
    // 64 KiB of a text message in a frame that says more is coming, then nothing.
    let frame = Frame::message(vec![b'x'; 64 * 1024], OpCode::Data(Data::Text), false);
    let _ = c.ws.send(Message::Frame(frame)).await;
    let ended = tokio::time::timeout(DEADLINE, async {
        while let Some(Ok(m)) = c.ws.next().await {
            if matches!(m, Message::Close(_)) {
                return;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the server closed the socket");
    s.stop().await;
}

async fn limited_server(limits: ServeLimits) -> TestServer {
    TestServer::start_with(
        config,
        WebOptions {
            limits,
            ..WebOptions::default()
        },
    )
    .await
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed_and_the_cap_holds() {
    let s = limited_server(ServeLimits {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 64,
    })
    .await;
    // 50 slowloris clients: a request head that never ends.
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut tcp = TcpStream::connect(&s.host).await.unwrap();
        tcp.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-a: ")
            .await
            .unwrap();
        slow.push(tcp);
    }
    // The box still answers.
    assert_eq!(s.get("/api/health").go().await.status(), 200);
    for (i, tcp) in slow.iter_mut().enumerate() {
        let _ = tcp.write_all(b"b").await;
        closed_by_server(tcp, &format!("slow client {i}")).await;
    }
    // An idle kept-alive connection is closed too.
    let mut idle = TcpStream::connect(&s.host).await.unwrap();
    idle.write_all(format!("GET /api/health HTTP/1.1\r\nHost: {}\r\n\r\n", s.host).as_bytes())
        .await
        .unwrap();
    closed_by_server(&mut idle, "idle keep-alive").await;

    // The cap: beyond 64 open connections a new one is closed at once.
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(TcpStream::connect(&s.host).await.unwrap());
    }
    let mut extra = TcpStream::connect(&s.host).await.unwrap();
    closed_by_server(&mut extra, "a connection over the cap").await;
    drop(held);
    s.stop().await;
}

#[tokio::test]
async fn bodies_are_small_json_and_api_answers_are_not_cached() {
    let s = TestServer::start().await;
    // Too large: 413 for every JSON route, the config included.
    let big = json!({"stream": "x".repeat(300 * 1024)});
    for (m, path) in [(Method::POST, "/api/active"), (Method::PUT, "/api/config")] {
        let r = s
            .with_token(m.clone(), path, ADMIN_TOKEN)
            .json(&big)
            .go()
            .await;
        assert_eq!(r.status(), 413, "{m} {path}");
        let e: Value = r.json().await.unwrap();
        assert!(e["error"].as_str().unwrap().contains("KiB"), "{e}");
    }
    let huge = "x".repeat(3 * 1024 * 1024);
    let r = s
        .with_token(Method::POST, "/api/active", ADMIN_TOKEN)
        .header("Content-Type", "application/json")
        .body(huge)
        .go()
        .await;
    assert_eq!(r.status(), 413);
    // Not JSON: 415, for a form post as for no type at all.
    for ctype in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = s
            .with_token(Method::POST, "/api/active", OPERATOR_TOKEN)
            .body(r#"{"stream":"cam2"}"#);
        if let Some(t) = ctype {
            req = req.header("Content-Type", t);
        }
        assert_eq!(req.go().await.status(), 415, "{ctype:?}");
    }
    // Nothing the API says is cached: the config carries tokens and camera passwords.
    for path in [
        "/api/config",
        "/api/status",
        "/api/events",
        "/api/session",
        "/metrics",
        "/api/nope",
    ] {
        let r = s.with_token(Method::GET, path, ADMIN_TOKEN).go().await;
        assert_eq!(
            r.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{path}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn names_with_invisible_characters_are_refused() {
    let s = TestServer::start().await;
    let good = s.get_json("/api/config", ADMIN_TOKEN).await;
    for (path, name) in [
        ("streams[0].name", "Front\u{202E}rood"),
        ("streams[0].name", "two\nlines"),
        ("alarms[0].name", "Door\u{2066}x\u{2069}"),
    ] {
        let mut bad = good.clone();
        if path.starts_with("streams") {
            bad["streams"][0]["name"] = json!(name);
        } else {
            bad["alarms"][0]["name"] = json!(name);
        }
        let r = put_config(&s, &bad).await;
        assert_eq!(r.status(), 400, "{name:?}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["field"], path, "{e}");
        assert!(e["error"].as_str().unwrap().contains("U+"), "{e}");
    }
    s.stop().await;
}
