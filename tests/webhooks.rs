//! Outgoing webhooks over real HTTP on loopback: a receiver (a small hyper server in the
//! test) that fails the first attempts gets the event exactly once, with the same id on
//! every attempt; a receiver that takes the connection and never answers holds up no switch;
//! a full queue drops and counts.

mod common;
mod webutil;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use edgecam::config::{HookEvent, WebhookConfig};
use edgecam::daemon::alarms::GpioBackends;
use edgecam::gpio::mock::{MockInput, MockOutputs};
use edgecam::web::WebOptions;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Notify;
use webutil::*;

/// Requests received: the `Authorization` header and the JSON body of each, in order.
type Got = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// What the receiver does with a request.
#[derive(Clone, Copy)]
enum Answer {
    /// Answer 500 to the first `n` requests, then 200.
    FailFirst(usize),
    /// Read the request, then never answer.
    Hang,
}

/// A webhook receiver on a free loopback port.
struct Receiver {
    /// `http://127.0.0.1:port/hook`.
    url: String,
    /// Every request: its headers of interest and its JSON body, in arrival order.
    got: Got,
    /// Woken on every request.
    arrived: Arc<Notify>,
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got: Got = Arc::default();
        let arrived = Arc::new(Notify::new());
        let (g, a) = (Arc::clone(&got), Arc::clone(&arrived));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (g, a) = (Arc::clone(&g), Arc::clone(&a));
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (g, a) = (Arc::clone(&g), Arc::clone(&a));
                    async move {
                        let auth = req
                            .headers()
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_string());
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let body: Value = serde_json::from_slice(&body).unwrap();
                        let n = {
                            let mut g = g.lock().unwrap();
                            g.push((auth, body));
                            g.len()
                        };
                        a.notify_waiters();
                        let status = match answer {
                            Answer::FailFirst(k) if n <= k => 500,
                            Answer::FailFirst(_) => 200,
                            Answer::Hang => std::future::pending().await,
                        };
                        let resp = hyper::Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc),
                );
            }
        });
        Receiver { url, got, arrived }
    }

    fn requests(&self) -> Vec<(Option<String>, Value)> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived.
    async fn wait_for(&self, n: usize) {
        for _ in 0..600 {
            let notified = self.arrived.notified();
            if self.got.lock().unwrap().len() >= n {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
        panic!("the receiver did not get {n} requests");
    }
}

/// A server whose config has `hook`.
async fn start(hook: WebhookConfig) -> TestServer {
    TestServer::start_with(
        move |dir| {
            let mut cfg = config(dir);
            cfg.webhooks = vec![hook.clone()];
            edgecam::config::validate(&cfg).expect("test config is valid");
            cfg
        },
        WebOptions::default(),
    )
    .await
}

/// `/api/status`'s row of the one webhook.
fn hook_row(st: &Value) -> &Value {
    &st["webhooks"][0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_arrives_exactly_once_after_failed_attempts() {
    let rx = Receiver::start(Answer::FailFirst(2)).await;
    let mut hook = WebhookConfig::new(rx.url.clone());
    hook.bearer_token = Some("hook-secret-token".into());
    hook.events = vec![HookEvent::Raise, HookEvent::Clear];
    let srv = start(hook).await;

    let r = srv
        .with_token(Method::POST, "/api/alarms/door/trigger", OPERATOR_TOKEN)
        .json(&json!({}))
        .go()
        .await;
    assert_eq!(r.status(), 200);
    let st = srv
        .wait_status("the raise delivered", |st| hook_row(st)["delivered"] == 1)
        .await;
    assert_eq!(hook_row(&st)["retries"], 2, "{st}");
    assert_eq!(hook_row(&st)["failed"], 0, "{st}");
    assert_eq!(
        hook_row(&st)["last_error"],
        "the receiver answered HTTP 500"
    );

    // A second event: the receiver's next request is it, not the first one again.
    let r = srv
        .with_token(Method::POST, "/api/alarms/door/clear", OPERATOR_TOKEN)
        .json(&json!({}))
        .go()
        .await;
    assert_eq!(r.status(), 200);
    srv.wait_status("the clear delivered", |st| hook_row(st)["delivered"] == 2)
        .await;

    let got = rx.requests();
    assert_eq!(got.len(), 4, "{got:?}");
    let first = &got[0].1;
    for (auth, body) in &got[..3] {
        assert_eq!(auth.as_deref(), Some("Bearer hook-secret-token"));
        assert_eq!(body, first, "every attempt carries the same body and id");
    }
    assert_eq!(first["event"], "raise");
    assert_eq!(first["alarm"], "door");
    assert_eq!(first["alarm_name"], "Door contact");
    assert_eq!(first["stream"], "cam3");
    assert_eq!(first["reason"], "active");
    assert!(first["time"].as_str().unwrap().ends_with('Z'), "{first}");
    let second = &got[3].1;
    assert_eq!(second["event"], "clear");
    assert_ne!(second["id"], first["id"], "ids are unique per event");

    let metrics = srv
        .with_token(Method::GET, "/metrics", ADMIN_TOKEN)
        .go()
        .await
        .text()
        .await
        .unwrap();
    let url = rx.url.clone();
    assert!(
        metrics.contains(&format!(
            "edgecam_webhook_delivered_total{{webhook=\"{url}\"}} 2"
        )),
        "{metrics}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_delays_no_switch_and_a_full_queue_drops() {
    let rx = Receiver::start(Answer::Hang).await;
    let mut hook = WebhookConfig::new(rx.url.clone());
    hook.events = vec![HookEvent::Switch];
    hook.queue = 2;
    hook.timeout_ms = 120_000;
    let srv = start(hook).await;
    let select = |stream: &'static str| {
        srv.with_token(Method::POST, "/api/active", OPERATOR_TOKEN)
            .json(&json!({"stream": stream}))
            .go()
    };

    assert_eq!(select("cam2").await.status(), 200);
    // The sender now hangs on this first event's POST.
    rx.wait_for(1).await;
    for stream in ["cam3", "cam1", "cam2", "cam3"] {
        assert_eq!(select(stream).await.status(), 200);
        let st = srv.get_json("/api/status", ADMIN_TOKEN).await;
        assert_eq!(st["active"]["stream"], stream, "{st}");
        assert_eq!(hook_row(&st)["delivered"], 0, "the receiver still hangs");
    }
    // One event in flight, two queued, the two oldest of the four waiting dropped.
    let st = srv
        .wait_status("two dropped", |st| hook_row(st)["dropped"] == 2)
        .await;
    assert_eq!(hook_row(&st)["queued"], 2, "{st}");
    assert_eq!(rx.requests().len(), 1);
    assert_eq!(rx.requests()[0].1["stream"], "cam2");
    srv.stop().await;
}

/// An alarm raised while the daemon starts (a GPIO contact already open at start: its first
/// level is sent the moment the line opens) reaches the webhook: the control task serves no
/// input before the webhooks listen. Started several times, as the loss was a race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_active_at_start_reaches_the_webhook() {
    for round in 0..8 {
        let rx = Receiver::start(Answer::FailFirst(0)).await;
        let mut hook = WebhookConfig::new(rx.url.clone());
        hook.events = vec![HookEvent::Raise];
        // Active low, and the line reads low: the contact is open from the start.
        let contact = MockInput::new(false);
        let gpio = GpioBackends {
            input: Arc::new(contact.clone()),
            output: Arc::new(MockOutputs::default()),
        };
        let srv = TestServer::start_with_gpio(
            move |dir| {
                let mut cfg = config(dir);
                cfg.webhooks = vec![hook.clone()];
                cfg.alarms.push(common::gpio_alarm("gate", "cam2"));
                edgecam::config::validate(&cfg).expect("test config is valid");
                cfg
            },
            WebOptions::default(),
            gpio,
        )
        .await;
        srv.wait_status("the gate alarm active", |st| {
            st["alarms"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"] == "gate" && a["state"] == "active")
        })
        .await;
        let arrived = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(1)).await;
        let got = rx.requests();
        assert!(
            arrived.is_ok(),
            "round {round}: the raise never arrived: {got:?}"
        );
        assert_eq!(got[0].1["event"], "raise", "round {round}: {got:?}");
        assert_eq!(got[0].1["alarm"], "gate", "round {round}: {got:?}");
        srv.stop().await;
    }
}
