//! MQTT against a real Mosquitto broker on loopback: the exact state and Home Assistant
//! discovery topics, commands that switch the view, bad payloads that change nothing, a
//! broker restart the daemon recovers from, password authentication, and two boxes on one
//! broker (an alarm raised on A calls up B's camera).

mod common;
mod webutil;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgecam::config::{AlarmMode, Config, MqttConfig, MqttInputConfig, Role};
use edgecam::daemon::alarms::GpioBackends;
use edgecam::gpio::mock::{MockInput, MockOutputs};
use edgecam::web::WebOptions;
use edgecam_testkit::mosquitto::Mosquitto;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use webutil::{Go, OPERATOR_TOKEN, TestServer};

/// The `[mqtt]` section of box `box_id` on `broker`, with a short reconnect backoff.
fn mqtt(broker: &Mosquitto, box_id: &str) -> MqttConfig {
    let text = format!(
        "host = \"127.0.0.1\"\nport = {}\nbox_id = \"{box_id}\"\nreconnect_min_ms = 100\nreconnect_max_ms = 200\n",
        broker.port
    );
    toml::from_str(&text).expect("a valid [mqtt] section")
}

async fn start_box(cfg: MqttConfig, edit: impl Fn(&mut Config) + 'static) -> TestServer {
    TestServer::start_with(
        move |dir| {
            let mut c = webutil::config(dir);
            c.mqtt = Some(cfg.clone());
            edit(&mut c);
            edgecam::config::validate(&c).expect("test config is valid");
            c
        },
        WebOptions::default(),
    )
    .await
}

/// Messages as they came: topic and payload.
type Log = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Everything a client subscribed to `#` has seen: the last payload per topic and every
/// message of the events topics, in order.
#[derive(Clone, Default)]
struct Seen {
    /// Last payload of each topic.
    last: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// Every message, in order of arrival.
    all: Log,
}

impl Seen {
    fn get(&self, topic: &str) -> Option<String> {
        let last = self.last.lock().unwrap();
        last.get(topic)
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    async fn wait(&self, topic: &str, want: impl Fn(&str) -> bool) -> String {
        for _ in 0..400 {
            if let Some(p) = self.get(topic)
                && want(&p)
            {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "timed out waiting for {topic} (last: {:?})",
            self.get(topic)
        );
    }

    fn clear(&self) {
        self.last.lock().unwrap().clear();
        self.all.lock().unwrap().clear();
    }

    fn messages(&self, topic: &str) -> Vec<String> {
        let all = self.all.lock().unwrap();
        all.iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
            .collect()
    }
}

/// A client on `broker` subscribed to `#` (re-subscribing after a reconnect).
fn watcher(broker: &Mosquitto, creds: Option<(&str, &str)>) -> (AsyncClient, Seen) {
    let mut o = MqttOptions::new(
        format!("watcher-{}", fastrand::u32(..)),
        "127.0.0.1",
        broker.port,
    );
    if let Some((u, p)) = creds {
        o.set_credentials(u, p);
    }
    let (client, mut ev) = AsyncClient::new(o, 64);
    let seen = Seen::default();
    let s = seen.clone();
    let c = client.clone();
    tokio::spawn(async move {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = c.try_subscribe("#", QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let payload = p.payload.to_vec();
                    s.all
                        .lock()
                        .unwrap()
                        .push((p.topic.clone(), payload.clone()));
                    s.last.lock().unwrap().insert(p.topic, payload);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    (client, seen)
}

async fn send(client: &AsyncClient, topic: &str, payload: &str) {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
        .await
        .unwrap();
}

fn active_stream(st: &Value) -> &str {
    st["active"]["stream"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_discovery_topics_are_exact() {
    let broker = Mosquitto::start(&[]);
    let (_c, seen) = watcher(&broker, None);
    let server = start_box(mqtt(&broker, "boxa"), |_| {}).await;
    assert_eq!(
        seen.wait("edgecam/boxa/availability", |_| true).await,
        "online"
    );
    let active = seen.wait("edgecam/boxa/active", |_| true).await;
    assert_eq!(
        serde_json::from_str::<Value>(&active).unwrap(),
        json!({"stream": "cam1", "reason": "default"})
    );
    assert_eq!(
        seen.wait("edgecam/boxa/alarms/door/state", |_| true).await,
        "idle"
    );
    for cam in ["cam1", "cam2", "cam3"] {
        seen.wait(&format!("edgecam/boxa/streams/{cam}/state"), |s| {
            s == "live"
        })
        .await;
    }
    let health = seen
        .wait("edgecam/boxa/health", |h| h.contains("\"ok\":true"))
        .await;
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["streams"], 3);
    assert_eq!(health["live"], 3);

    let device = json!({
        "identifiers": ["edgecam_boxa"], "name": "edgecam boxa", "manufacturer": "edgecam",
        "model": "edge box", "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let entity = |name: &str, id: &str| {
        json!({
            "name": name, "unique_id": format!("edgecam_boxa_{id}"),
            "object_id": format!("edgecam_boxa_{id}"),
            "availability_topic": "edgecam/boxa/availability", "device": device,
        })
    };
    let with = |mut base: Value, extra: Value| {
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        base
    };
    let discovered = |topic: &str| {
        let seen = seen.clone();
        let topic = topic.to_string();
        async move { serde_json::from_str::<Value>(&seen.wait(&topic, |_| true).await).unwrap() }
    };
    assert_eq!(
        discovered("homeassistant/binary_sensor/edgecam_boxa/alarm_door/config").await,
        with(
            entity("Door contact", "alarm_door"),
            json!({"state_topic": "edgecam/boxa/alarms/door/state",
                   "value_template": "{{ 'OFF' if value == 'idle' else 'ON' }}"})
        )
    );
    assert_eq!(
        discovered("homeassistant/button/edgecam_boxa/ack_door/config").await,
        with(
            entity("Acknowledge Door contact", "ack_door"),
            json!({"command_topic": "edgecam/boxa/cmd/alarms/door/ack"})
        )
    );
    assert_eq!(
        discovered("homeassistant/select/edgecam_boxa/active/config").await,
        with(
            entity("Active stream", "active"),
            json!({"state_topic": "edgecam/boxa/active",
                   "value_template": "{{ value_json.stream }}",
                   "command_topic": "edgecam/boxa/cmd/active",
                   "options": ["cam1", "cam2", "cam3"]})
        )
    );
    let sensor = discovered("homeassistant/sensor/edgecam_boxa/stream_cam2/config").await;
    assert_eq!(sensor["state_topic"], "edgecam/boxa/streams/cam2/state");

    // Home Assistant restarts: discovery comes again.
    seen.clear();
    let (ha, _) = watcher(&broker, None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    seen.clear();
    send(&ha, "homeassistant/status", "online").await;
    discovered("homeassistant/select/edgecam_boxa/active/config").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_switch_the_view_and_bad_payloads_change_nothing() {
    let broker = Mosquitto::start(&[]);
    let (client, seen) = watcher(&broker, None);
    let server = start_box(mqtt(&broker, "boxa"), |_| {}).await;
    seen.wait("edgecam/boxa/availability", |s| s == "online")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    send(&client, "edgecam/boxa/cmd/active", "cam2").await;
    server
        .wait_status("cam2 selected over MQTT", |st| active_stream(st) == "cam2")
        .await;
    let active = seen
        .wait("edgecam/boxa/active", |a| a.contains("cam2"))
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&active).unwrap(),
        json!({"stream": "cam2", "reason": "user"})
    );

    // Bad payloads and unknown ids: refused, nothing changes.
    for (topic, payload) in [
        ("edgecam/boxa/cmd/active", "no-such-cam"),
        ("edgecam/boxa/cmd/alarms/door/trigger", "soon"),
        ("edgecam/boxa/cmd/alarms/ghost/trigger", ""),
        ("edgecam/boxa/cmd/alarms/door/explode", ""),
        ("edgecam/boxa/cmd/reboot", "now"),
    ] {
        send(&client, topic, payload).await;
    }
    // A good command after them: once it shows, the bad ones have been handled.
    send(&client, "edgecam/boxa/cmd/alarms/door/trigger", "").await;
    let st = server
        .wait_status("door raised over MQTT", |st| active_stream(st) == "cam3")
        .await;
    assert_eq!(st["alarms"][0]["state"], "active");
    // Events go out before the state of the same change.
    seen.wait("edgecam/boxa/active", |a| a.contains("cam3"))
        .await;
    let events: Vec<Value> = seen
        .messages("edgecam/boxa/events")
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let switches: Vec<&Value> = events.iter().filter(|e| e["event"] == "switch").collect();
    assert_eq!(
        switches.len(),
        2,
        "only the two good commands switched: {events:?}"
    );
    assert_eq!(switches[0]["stream"], "cam2");
    assert_eq!(switches[1]["stream"], "cam3");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "raise" && e["alarm"] == "door")
    );

    send(&client, "edgecam/boxa/cmd/alarms/door/clear", "").await;
    seen.wait("edgecam/boxa/alarms/door/state", |s| s == "latched")
        .await;
    send(&client, "edgecam/boxa/cmd/alarms/door/ack", "PRESS").await;
    seen.wait("edgecam/boxa/alarms/door/state", |s| s == "idle")
        .await;
    server
        .wait_status("latch acknowledged over MQTT", |st| {
            active_stream(st) == "cam2"
        })
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_identity_commands_are_refused() {
    let broker = Mosquitto::start(&[]);
    let (client, seen) = watcher(&broker, None);
    let mut cfg = mqtt(&broker, "boxa");
    cfg.role = Role::Viewer;
    let server = start_box(cfg, |_| {}).await;
    seen.wait("edgecam/boxa/availability", |s| s == "online")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&client, "edgecam/boxa/cmd/active", "cam2").await;
    // Then a state change the box makes itself: once it is published, the command was seen.
    server
        .with_token(
            reqwest::Method::POST,
            "/api/alarms/door/trigger",
            OPERATOR_TOKEN,
        )
        .go()
        .await;
    seen.wait("edgecam/boxa/alarms/door/state", |s| s == "active")
        .await;
    let events = seen.messages("edgecam/boxa/events");
    assert!(!events.iter().any(|e| e.contains("cam2")), "{events:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_the_daemon_reconnects_and_republishes() {
    let mut broker = Mosquitto::start(&[]);
    let (_c, seen) = watcher(&broker, None);
    let server = start_box(mqtt(&broker, "boxa"), |_| {}).await;
    seen.wait("edgecam/boxa/alarms/door/state", |_| true).await;
    broker.restart();
    seen.clear();
    // The broker kept nothing (persistence off): all of it comes from the reconnected daemon.
    assert_eq!(
        seen.wait("edgecam/boxa/availability", |_| true).await,
        "online"
    );
    assert_eq!(
        seen.wait("edgecam/boxa/alarms/door/state", |_| true).await,
        "idle"
    );
    seen.wait("edgecam/boxa/active", |a| a.contains("cam1"))
        .await;
    seen.wait("homeassistant/select/edgecam_boxa/active/config", |_| true)
        .await;
    // A fresh subscriber gets the republished state as retained messages.
    let (_c2, late) = watcher(&broker, None);
    late.wait("edgecam/boxa/streams/cam1/state", |_| true).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_authentication_and_last_will() {
    let broker = Mosquitto::start(&[("edgecam", "s3cret-pass"), ("ha", "ha-pass")]);
    let (_c, seen) = watcher(&broker, Some(("ha", "ha-pass")));
    let mut cfg = mqtt(&broker, "boxa");
    cfg.username = Some("edgecam".into());
    cfg.password = Some("s3cret-pass".into());
    assert!(
        !format!("{cfg:?}").contains("s3cret-pass"),
        "the password is never logged"
    );
    let server = start_box(cfg, |_| {}).await;
    assert_eq!(
        seen.wait("edgecam/boxa/availability", |_| true).await,
        "online"
    );
    // The daemon goes away without a goodbye: the broker publishes its last will.
    drop(server);
    seen.wait("edgecam/boxa/availability", |s| s == "offline")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_boxes_an_alarm_on_a_switches_b() {
    let broker = Mosquitto::start(&[]);
    let (_c, seen) = watcher(&broker, None);
    let a = start_box(mqtt(&broker, "boxa"), |_| {}).await;
    let mut b_mqtt = mqtt(&broker, "boxb");
    b_mqtt.inputs = vec![MqttInputConfig {
        alarm: "remote-door".into(),
        topic: "edgecam/boxa/alarms/door/state".into(),
        ..toml::from_str("alarm = \"x\"\ntopic = \"x\"").unwrap()
    }];
    let b = start_box(b_mqtt, |c| {
        c.alarms.push(edgecam::config::AlarmConfig {
            name: Some("Door at box A".into()),
            ..common::alarm("remote-door", "cam2", 5, AlarmMode::Transparent)
        });
    })
    .await;
    seen.wait("edgecam/boxb/availability", |s| s == "online")
        .await;
    let st = b
        .wait_status("B on its default, its MQTT input ok", |st| {
            active_stream(st) == "cam1" && st["inputs"][0]["state"] == "ok"
        })
        .await;
    assert_eq!(
        st["inputs"][0],
        serde_json::json!({"alarm": "remote-door", "kind": "mqtt", "state": "ok", "error": null}),
        "{st}"
    );
    let r = a
        .with_token(
            reqwest::Method::POST,
            "/api/alarms/door/trigger",
            OPERATOR_TOKEN,
        )
        .go()
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let st = b
        .wait_status("B shows A's door camera", |st| active_stream(st) == "cam2")
        .await;
    assert_eq!(st["active"]["reason"], "alarm:remote-door");
    // A's input cleared (A now latched: B stays), then acknowledged: B returns to its default.
    a.with_token(
        reqwest::Method::POST,
        "/api/alarms/door/clear",
        OPERATOR_TOKEN,
    )
    .go()
    .await;
    seen.wait("edgecam/boxa/alarms/door/state", |s| s == "latched")
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        active_stream(&b.get_json("/api/status", webutil::ADMIN_TOKEN).await),
        "cam2"
    );
    a.with_token(
        reqwest::Method::POST,
        "/api/alarms/door/ack",
        OPERATOR_TOKEN,
    )
    .go()
    .await;
    b.wait_status("B back on its default", |st| active_stream(st) == "cam1")
        .await;
    a.stop().await;
    b.stop().await;
}

/// A stream and an alarm removed from the config at runtime lose their Home Assistant
/// entities (an empty retained discovery config) and their retained state; a stream removed
/// while the box was down loses its entity at the next start, from the config retained on the
/// broker since the last run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_that_leave_the_config_are_removed_from_home_assistant() {
    let broker = Mosquitto::start(&[]);
    let (_c, seen) = watcher(&broker, None);
    let server = start_box(mqtt(&broker, "boxa"), |_| {}).await;
    let cam2 = "homeassistant/sensor/edgecam_boxa/stream_cam2/config";
    let cam3 = "homeassistant/sensor/edgecam_boxa/stream_cam3/config";
    let door = "homeassistant/binary_sensor/edgecam_boxa/alarm_door/config";
    let ack = "homeassistant/button/edgecam_boxa/ack_door/config";
    for t in [cam2, cam3, door, ack] {
        seen.wait(t, |p| !p.is_empty()).await;
    }
    seen.wait("edgecam/boxa/streams/cam3/state", |p| p == "live")
        .await;

    // At runtime: cam3 and the door alarm (which shows cam3) leave the config.
    let mut cfg = server.get_json("/api/config", webutil::ADMIN_TOKEN).await;
    cfg["streams"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["id"] != "cam3");
    cfg["alarms"] = json!([]);
    let r = server
        .with_token(reqwest::Method::PUT, "/api/config", webutil::ADMIN_TOKEN)
        .json(&cfg)
        .go()
        .await;
    assert_eq!(r.status(), 200);
    for t in [
        cam3,
        door,
        ack,
        "edgecam/boxa/streams/cam3/state",
        "edgecam/boxa/alarms/door/state",
    ] {
        seen.wait(t, |p| p.is_empty()).await;
    }
    let select: Value = serde_json::from_str(
        &seen
            .wait("homeassistant/select/edgecam_boxa/active/config", |p| {
                !p.contains("cam3")
            })
            .await,
    )
    .unwrap();
    assert_eq!(select["options"], json!(["cam1", "cam2"]));
    assert!(!seen.get(cam2).unwrap().is_empty(), "cam2 stays");
    server.stop().await;

    // The next start, with cam2 gone from the config too: its retained entity goes.
    let server = start_box(mqtt(&broker, "boxa"), |c| {
        c.streams.retain(|s| s.id == "cam1");
        c.alarms.clear();
    })
    .await;
    seen.wait(cam2, |p| p.is_empty()).await;
    // A client that connects now (Home Assistant after a restart) finds no config of it.
    let (_fresh_client, fresh) = watcher(&broker, None);
    fresh
        .wait(
            "homeassistant/sensor/edgecam_boxa/stream_cam1/config",
            |p| !p.is_empty(),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for t in [cam2, cam3, door, ack] {
        assert_eq!(fresh.get(t), None, "{t} is still retained");
    }
    server.stop().await;
}

/// An alarm raised while the daemon starts (a GPIO contact open from the start) is published
/// as a `raise` event too, not only as its retained state: the bridge takes the view before
/// the control task serves its first input. Several starts, as the loss was a race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_active_at_start_is_published_as_a_raise_event() {
    let broker = Mosquitto::start(&[]);
    let (_c, seen) = watcher(&broker, None);
    for round in 0..6 {
        let box_id = format!("start{round}");
        let cfg = mqtt(&broker, &box_id);
        // Active low, and the line reads low: the contact is open from the start.
        let gpio = GpioBackends {
            input: Arc::new(MockInput::new(false)),
            output: Arc::new(MockOutputs::default()),
        };
        let server = TestServer::start_with_gpio(
            move |dir| {
                let mut c = webutil::config(dir);
                c.mqtt = Some(cfg.clone());
                c.alarms.push(common::gpio_alarm("gate", "cam2"));
                edgecam::config::validate(&c).expect("test config is valid");
                c
            },
            WebOptions::default(),
            gpio,
        )
        .await;
        seen.wait(&format!("edgecam/{box_id}/alarms/gate/state"), |s| {
            s == "active"
        })
        .await;
        let events = format!("edgecam/{box_id}/events");
        let raised = |seen: &Seen| {
            seen.messages(&events).iter().any(|m| {
                let v: Value = serde_json::from_str(m).unwrap();
                v["event"] == "raise" && v["alarm"] == "gate"
            })
        };
        for _ in 0..100 {
            if raised(&seen) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            raised(&seen),
            "round {round}: no raise event: {:?}",
            seen.messages(&events)
        );
        server.stop().await;
    }
}
