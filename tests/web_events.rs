//! `GET /api/events` and the alarm counts of `/metrics` over real HTTP, from the control task's
//! history: a GPIO contact (mock line) and its hold running out on its own, an API pulse that
//! expires, a user selection, a latched alarm raised and acknowledged. The web layer sees
//! none of these directly; every event must still be there, with its cause, in order.

mod common;
mod webutil;

use std::sync::Arc;
use std::time::Duration;

use edgecam::clock::{Clock, SystemClock};
use edgecam::config::{ActiveLevel, AlarmConfig, AlarmMode, Bias, GpioInputConfig, LineRef};
use edgecam::daemon::alarms::GpioBackends;
use edgecam::gpio::mock::{MockInput, MockOutputs};
use edgecam::web::WebOptions;
use reqwest::Method;
use serde_json::{Value, json};
use webutil::*;

/// `config` plus `gate`: a GPIO contact (active low) on cam2, hold mode, 1 s hold.
fn gate_config(dir: &std::path::Path) -> edgecam::config::Config {
    let mut cfg = config(dir);
    cfg.alarms.push(AlarmConfig {
        id: "gate".into(),
        name: Some("Gate".into()),
        stream: "cam2".into(),
        priority: 5,
        mode: AlarmMode::Hold,
        hold_s: 1,
        video_loss: false,
        video_loss_after_s: 10,
        gpio: Some(GpioInputConfig {
            chip: "gpiochip0".into(),
            line: LineRef::Offset(17),
            active: ActiveLevel::Low,
            bias: Bias::PullUp,
            debounce_ms: 5,
        }),
        output: None,
        onvif: None,
    });
    edgecam::config::validate(&cfg).expect("test config is valid");
    cfg
}

/// A server over a daemon whose GPIO is `contact`.
async fn start(contact: &MockInput) -> TestServer {
    let gpio = GpioBackends {
        input: Arc::new(contact.clone()),
        output: Arc::new(MockOutputs::default()),
    };
    TestServer::start_with_gpio(gate_config, WebOptions::default(), gpio).await
}

/// One event as `kind:action:alarm-or-stream:detail:cause`.
fn line(e: &Value) -> String {
    let who = e["alarm"].as_str().or(e["stream"].as_str()).unwrap_or("-");
    format!(
        "{}:{}:{}:{}:{}",
        e["kind"].as_str().unwrap(),
        e["action"].as_str().unwrap(),
        who,
        e["detail"].as_str().unwrap(),
        e["cause"].as_str().unwrap_or("-"),
    )
}

async fn events(s: &TestServer) -> Value {
    let r = s
        .with_token(Method::GET, "/api/events", VIEWER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Polls `/api/events` until its summary lines contain `want` as a subsequence.
async fn wait_events(s: &TestServer, what: &str, want: &[&str]) -> Value {
    let mut last = Vec::new();
    for _ in 0..500 {
        let ev = events(s).await;
        last = ev["events"].as_array().unwrap().iter().map(line).collect();
        let mut it = last.iter();
        if want.iter().all(|w| it.any(|l| l == w)) {
            return ev;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    panic!("timed out waiting for {what}: want {want:?} in order, got {last:#?}");
}

async fn post(s: &TestServer, path: &str, body: Value) -> reqwest::Response {
    s.with_token(Method::POST, path, OPERATOR_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_come_from_the_control_task_including_gpio_and_timeouts() {
    let contact = MockInput::new(true); // active low: high = idle
    let s = start(&contact).await;
    wait_events(&s, "the start", &["active:switched:cam1:default:config"]).await;

    // A GPIO contact closes and opens again: the hold then runs out with nobody calling.
    for _ in 0..500 {
        // The input task opens the line on its own; an edge before that would be lost.
        if contact.opens() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    contact.set_high(false);
    s.wait_status("the gate view", |st| st["active"]["reason"] == "alarm:gate")
        .await;
    contact.set_high(true);
    wait_events(
        &s,
        "the GPIO alarm and its hold expiry",
        &[
            "alarm:raised:gate:active:-",
            "active:switched:cam2:alarm:gate:preempt",
            "alarm:cleared:gate:holding:-",
            "alarm:hold-expired:gate:idle:-",
            "active:switched:cam1:default:return-after-clear",
        ],
    )
    .await;

    // The user's choice, then an API pulse that expires by itself.
    assert_eq!(
        post(&s, "/api/active", json!({"stream": "cam2"}))
            .await
            .status(),
        200
    );
    assert_eq!(
        post(&s, "/api/alarms/gate/trigger", json!({"hold_s": 0.2}))
            .await
            .status(),
        200
    );
    wait_events(
        &s,
        "the selection and the pulse",
        &[
            "select:selected:cam2:user:-",
            "alarm:raised:gate:holding:-",
            "alarm:hold-expired:gate:idle:-",
        ],
    )
    .await;
    // A latched alarm, acknowledged after its input cleared.
    assert_eq!(
        post(&s, "/api/alarms/door/trigger", json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(
        post(&s, "/api/alarms/door/clear", json!({})).await.status(),
        200
    );
    let ack = post(&s, "/api/alarms/door/ack", json!({})).await;
    assert_eq!(ack.status(), 200);
    let ev = wait_events(
        &s,
        "the latched alarm and its acknowledgement",
        &[
            "select:selected:cam2:user:-",
            "alarm:hold-expired:gate:idle:-",
            "alarm:raised:door:active:-",
            "active:switched:cam3:alarm:door:preempt",
            "alarm:cleared:door:latched:-",
            "alarm:acknowledged:door:idle:-",
            "active:switched:cam2:user:user",
        ],
    )
    .await;

    // The envelope: bounded, numbered, wall times in order.
    let list = ev["events"].as_array().unwrap();
    let total = ev["total"].as_u64().unwrap();
    assert_eq!(total as usize, list.len(), "nothing overwritten yet");
    assert!(ev["capacity"].as_u64().unwrap() >= total);
    let seqs: Vec<u64> = list.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..total).collect::<Vec<_>>());
    let times: Vec<i64> = list.iter().map(|e| e["at_us"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let now_us = SystemClock::new().wall_us();
    assert!(
        times
            .iter()
            .all(|t| (now_us - 600_000_000..=now_us).contains(t))
    );

    // /metrics counts raises from the same history: gate twice (GPIO, pulse), door once.
    let raised = |alarm: &str| {
        list.iter()
            .filter(|e| e["alarm"] == alarm && e["action"] == "raised")
            .count()
    };
    assert_eq!((raised("gate"), raised("door")), (2, 1));
    let text = s
        .with_token(Method::GET, "/metrics", VIEWER_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("edgecam_alarm_raised_total{alarm=\"gate\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("edgecam_alarm_raised_total{alarm=\"door\"} 1"),
        "{text}"
    );
    let st = s.wait_status("status", |_| true).await;
    assert_eq!(st["alarms"][1]["raised"], 2);
    // The watchdog object: no watchdog task in-process (only `run` starts one), but every
    // loop's beacon is listed, the live pusher's included.
    let w = &st["watchdog"];
    assert_eq!(
        (w["running"].as_bool(), w["enabled"].as_bool()),
        (Some(false), Some(false))
    );
    let names: Vec<&str> = w["beacons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    for name in ["control", "live", "stream:cam1"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    s.stop().await;
}
