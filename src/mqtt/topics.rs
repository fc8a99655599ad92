//! The stable topic layout under `edgecam/<box>/` and what is published there: retained
//! state, events and Home Assistant discovery config. Pure functions of the view and the
//! status, so the layout is tested without a broker (docs/mqtt.md describes it).

use serde_json::{Value, json};

use crate::config::{AlarmMode, Config, MqttConfig};
use crate::select::{ActiveView, AlarmStatus};

/// The topics of one box.
#[derive(Debug, Clone)]
pub struct Topics {
    /// `edgecam/<box>`: every topic of this box is under it.
    pub prefix: String,
    /// Home Assistant's discovery prefix (`homeassistant`).
    pub discovery: String,
    /// `edgecam_<box>`: the device's id in Home Assistant and the node id of its entities.
    pub node: String,
}

/// One message: topic, payload, retained.
pub type Message = (String, Vec<u8>, bool);

impl Topics {
    /// The topics of the box `cfg.box_id`.
    pub fn new(cfg: &MqttConfig) -> Self {
        Topics {
            prefix: format!("edgecam/{}", cfg.box_id),
            discovery: cfg.discovery_prefix.clone(),
            node: format!("edgecam_{}", cfg.box_id),
        }
    }

    /// `online` / `offline` (the last will), retained.
    pub fn availability(&self) -> String {
        format!("{}/availability", self.prefix)
    }

    /// The active stream and its reason (JSON), retained.
    pub fn active(&self) -> String {
        format!("{}/active", self.prefix)
    }

    /// One alarm's state (`idle`, `active`, `holding`, `latched`), retained.
    pub fn alarm_state(&self, id: &str) -> String {
        format!("{}/alarms/{id}/state", self.prefix)
    }

    /// One stream's state (`live`, `connecting`, ...; `disabled`), retained.
    pub fn stream_state(&self, id: &str) -> String {
        format!("{}/streams/{id}/state", self.prefix)
    }

    /// One stream's snapshot URL (for the Home Assistant `image` entity), retained.
    pub fn snapshot_url(&self, id: &str) -> String {
        format!("{}/streams/{id}/snapshot_url", self.prefix)
    }

    /// The daemon's health (JSON), retained.
    pub fn health(&self) -> String {
        format!("{}/health", self.prefix)
    }

    /// Raise, clear, ack and switch events (JSON), not retained.
    pub fn events(&self) -> String {
        format!("{}/events", self.prefix)
    }

    /// Commands: `cmd/active` (a stream id, empty for none) and
    /// `cmd/alarms/<id>/trigger|clear|ack`.
    pub fn commands(&self) -> String {
        format!("{}/cmd/#", self.prefix)
    }

    /// Home Assistant's birth message topic.
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.discovery)
    }

    /// Every discovery config topic of this box's entities (any component, any entity):
    /// subscribed so the retained configs of entities gone since the last run are seen and
    /// removed.
    pub fn discovery_filter(&self) -> String {
        format!("{}/+/{}/+/config", self.discovery, self.node)
    }

    /// Whether `topic` is one of this box's discovery config topics.
    pub fn is_discovery(&self, topic: &str) -> bool {
        let Some(rest) = topic
            .strip_prefix(self.discovery.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return false;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        matches!(parts.as_slice(), [_, node, _, "config"] if *node == self.node)
    }
}

/// A command received on this box's `cmd/` topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MqttCommand {
    /// Select a stream (`None`: clear the user's choice).
    Select(Option<String>),
    /// Raise an alarm, optionally as a pulse of that many seconds.
    Trigger(String, Option<u32>),
    /// Clear an alarm input.
    Clear(String),
    /// Acknowledge an alarm.
    Ack(String),
}

/// Why a command message was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The topic is not one of the command topics.
    #[error("unknown command topic; use cmd/active or cmd/alarms/<id>/trigger|clear|ack")]
    Topic,
    /// The payload is not text or not what the command takes.
    #[error("bad payload: {0}")]
    Payload(&'static str),
}

impl Topics {
    /// The command that `topic` and `payload` ask for.
    pub fn parse_command(&self, topic: &str, payload: &[u8]) -> Result<MqttCommand, CommandError> {
        let rest = topic
            .strip_prefix(&self.prefix)
            .and_then(|r| r.strip_prefix("/cmd/"))
            .ok_or(CommandError::Topic)?;
        let text = std::str::from_utf8(payload)
            .map_err(|_| CommandError::Payload("not UTF-8 text"))?
            .trim();
        if rest == "active" {
            if text.len() > 64 || text.contains(char::is_control) {
                return Err(CommandError::Payload("not a stream id"));
            }
            return Ok(MqttCommand::Select(
                (!text.is_empty()).then(|| text.to_string()),
            ));
        }
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["alarms", id, verb] if !id.is_empty() => {
                let id = id.to_string();
                match *verb {
                    "trigger" if text.is_empty() || text.eq_ignore_ascii_case("press") => {
                        Ok(MqttCommand::Trigger(id, None))
                    }
                    "trigger" => match text.parse::<u32>() {
                        Ok(s) if s > 0 && s <= 86_400 => Ok(MqttCommand::Trigger(id, Some(s))),
                        _ => Err(CommandError::Payload(
                            "trigger takes nothing or a hold time in seconds (1 to 86400)",
                        )),
                    },
                    "clear" => Ok(MqttCommand::Clear(id)),
                    "ack" => Ok(MqttCommand::Ack(id)),
                    _ => Err(CommandError::Topic),
                }
            }
            _ => Err(CommandError::Topic),
        }
    }
}

/// The retained state messages for `view` and the streams' states.
pub fn state_messages(
    t: &Topics,
    view: &ActiveView,
    streams: &[(String, &'static str)],
    snapshot_base: Option<&str>,
) -> Vec<Message> {
    let mut out = Vec::new();
    let active = json!({ "stream": view.stream, "reason": view.reason });
    out.push((t.active(), active.to_string().into_bytes(), true));
    for a in &view.alarms {
        out.push((t.alarm_state(&a.id), a.state.as_bytes().to_vec(), true));
    }
    for (id, state) in streams {
        out.push((t.stream_state(id), state.as_bytes().to_vec(), true));
        if let Some(base) = snapshot_base {
            let url = format!(
                "{}/api/streams/{id}/snapshot.jpg",
                base.trim_end_matches('/')
            );
            out.push((t.snapshot_url(id), url.into_bytes(), true));
        }
    }
    let live = streams.iter().filter(|(_, s)| *s == "live").count();
    let health = json!({
        "ok": live == streams.iter().filter(|(_, s)| *s != "disabled").count(),
        "version": env!("CARGO_PKG_VERSION"),
        "streams": streams.len(),
        "live": live,
    });
    out.push((t.health(), health.to_string().into_bytes(), true));
    out
}

/// The events (raise, clear, ack, switch) between two consecutive views. An alarm that goes
/// from `latched` to `idle` was acknowledged (nothing else ends a latch); any other return
/// to `idle` is a clear.
pub fn events_between(old: &ActiveView, new: &ActiveView) -> Vec<Value> {
    let mut out = Vec::new();
    for a in &new.alarms {
        let before = old
            .alarms
            .iter()
            .find(|o| o.id == a.id)
            .map_or("idle", |o| o.state);
        match (before, a.state) {
            ("idle", s) if s != "idle" => out.push(alarm_event("raise", a)),
            ("latched", "idle") => out.push(alarm_event("ack", a)),
            (b, "idle") if b != "idle" => out.push(alarm_event("clear", a)),
            _ => {}
        }
    }
    if old.stream != new.stream || old.reason != new.reason {
        out.push(json!({ "event": "switch", "stream": new.stream, "reason": new.reason }));
    }
    out
}

fn alarm_event(kind: &str, a: &AlarmStatus) -> Value {
    json!({ "event": kind, "alarm": a.id, "stream": a.stream, "state": a.state })
}

/// Home Assistant discovery config for the box: one device; a `binary_sensor` per alarm, the
/// active stream as a `select`, a `sensor` per stream's state, an Acknowledge `button` per
/// alarm that can latch or hold, and an `image` per stream when `snapshot_url` is known.
pub fn discovery_messages(t: &Topics, cfg: &Config, box_id: &str, images: bool) -> Vec<Message> {
    let device = json!({
        "identifiers": [t.node],
        "name": format!("edgecam {box_id}"),
        "manufacturer": "edgecam",
        "model": "edge box",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let base = |name: String, id: String| {
        json!({
            "name": name,
            "unique_id": format!("{}_{id}", t.node),
            "object_id": format!("{}_{id}", t.node),
            "availability_topic": t.availability(),
            "device": device,
        })
    };
    let mut out = Vec::new();
    let mut push = |component: &str, id: String, mut body: Value, extra: Value| {
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let topic = format!("{}/{component}/{}/{id}/config", t.discovery, t.node);
        out.push((topic, body.to_string().into_bytes(), true));
    };
    for a in &cfg.alarms {
        let id = format!("alarm_{}", a.id);
        push(
            "binary_sensor",
            id.clone(),
            base(a.display_name().to_string(), id),
            json!({
                "state_topic": t.alarm_state(&a.id),
                "value_template": "{{ 'OFF' if value == 'idle' else 'ON' }}",
            }),
        );
        if a.mode != AlarmMode::Transparent {
            let id = format!("ack_{}", a.id);
            push(
                "button",
                id.clone(),
                base(format!("Acknowledge {}", a.display_name()), id),
                json!({ "command_topic": format!("{}/cmd/alarms/{}/ack", t.prefix, a.id) }),
            );
        }
    }
    let options: Vec<&str> = cfg.streams.iter().map(|s| s.id.as_str()).collect();
    push(
        "select",
        "active".to_string(),
        base("Active stream".to_string(), "active".to_string()),
        json!({
            "state_topic": t.active(),
            "value_template": "{{ value_json.stream }}",
            "command_topic": format!("{}/cmd/active", t.prefix),
            "options": options,
        }),
    );
    for s in &cfg.streams {
        let id = format!("stream_{}", s.id);
        push(
            "sensor",
            id.clone(),
            base(format!("{} state", s.display_name()), id),
            json!({ "state_topic": t.stream_state(&s.id) }),
        );
        if images {
            let id = format!("camera_{}", s.id);
            push(
                "image",
                id.clone(),
                base(s.display_name().to_string(), id),
                json!({ "url_topic": t.snapshot_url(&s.id) }),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> Topics {
        Topics {
            prefix: "edgecam/a".into(),
            discovery: "homeassistant".into(),
            node: "edgecam_a".into(),
        }
    }

    #[test]
    fn commands_parse_and_bad_ones_are_refused() {
        let t = topics();
        let p = |topic: &str, body: &str| t.parse_command(topic, body.as_bytes());
        assert_eq!(
            p("edgecam/a/cmd/active", "cam2"),
            Ok(MqttCommand::Select(Some("cam2".into())))
        );
        assert_eq!(p("edgecam/a/cmd/active", ""), Ok(MqttCommand::Select(None)));
        assert_eq!(
            p("edgecam/a/cmd/alarms/door/trigger", "5"),
            Ok(MqttCommand::Trigger("door".into(), Some(5)))
        );
        assert_eq!(
            p("edgecam/a/cmd/alarms/door/ack", "PRESS"),
            Ok(MqttCommand::Ack("door".into()))
        );
        assert!(p("edgecam/a/cmd/alarms/door/trigger", "soon").is_err());
        assert!(p("edgecam/a/cmd/alarms/door/explode", "").is_err());
        assert!(p("edgecam/a/cmd/reboot", "").is_err());
        assert!(
            t.parse_command("edgecam/a/cmd/active", &[0xff, 0xfe])
                .is_err()
        );
    }

    #[test]
    fn discovery_topics_of_this_box_only() {
        let t = topics();
        assert_eq!(t.discovery_filter(), "homeassistant/+/edgecam_a/+/config");
        assert!(t.is_discovery("homeassistant/sensor/edgecam_a/stream_cam1/config"));
        assert!(!t.is_discovery("homeassistant/sensor/edgecam_b/stream_cam1/config"));
        assert!(!t.is_discovery("homeassistant/status"));
        assert!(!t.is_discovery("edgecam/a/streams/cam1/state"));
    }
}
