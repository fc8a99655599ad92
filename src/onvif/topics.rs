//! Notification messages (`wsnt:NotificationMessage` with a `tt:Message`) and how a
//! configured topic (`motion`, or `tns1:RuleEngine/CellMotionDetector/Motion`) matches them.

use super::xml::{child, find, find_all};

/// What one notification says about the alarm input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The state went true (motion, tamper…).
    On,
    /// The state went false.
    Off,
    /// An event without a state (a line crossed): on, then off at once.
    Pulse,
}

/// One notification: its topic and data items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The topic text, as the camera wrote it (`tns1:RuleEngine/…`).
    pub topic: String,
    /// `PropertyOperation`: `Initialized`, `Changed`, `Deleted` (or empty).
    pub operation: String,
    /// The `Data` items, name and value, in order.
    pub data: Vec<(String, String)>,
}

/// The topics a short name stands for (paths without the `tns1:` prefix).
fn short_name(topic: &str) -> Option<&'static [&'static str]> {
    Some(match topic.to_ascii_lowercase().as_str() {
        "motion" => &[
            "RuleEngine/CellMotionDetector/Motion",
            "VideoSource/MotionAlarm",
            "RuleEngine/MotionRegionDetector/Motion",
        ],
        "tamper" => &[
            "RuleEngine/TamperDetector/Tamper",
            "VideoSource/GlobalSceneChange",
        ],
        "line" => &["RuleEngine/LineDetector/Crossed"],
        "field" => &["RuleEngine/FieldDetector/ObjectsInside"],
        _ => return None,
    })
}

/// A topic without its namespace prefix (`tns1:` or whatever the camera chose) on each
/// segment.
fn path(topic: &str) -> String {
    topic
        .trim()
        .split('/')
        .map(|seg| seg.rsplit_once(':').map_or(seg, |(_, s)| s))
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the notification topic `got` is `want` (a short name or a topic) or below it.
pub fn topic_matches(want: &str, got: &str) -> bool {
    let got = path(got);
    let is = |w: &str| got == w || got.starts_with(&format!("{w}/"));
    match short_name(want) {
        Some(list) => list.iter().any(|w| is(w)),
        None => is(&path(want)),
    }
}

impl Notification {
    /// The level this notification gives an input for `topic` and `item`, or `None` when
    /// it is another topic or says nothing of the state (a `Deleted` property).
    pub fn level_for(&self, topic: &str, item: Option<&str>) -> Option<Level> {
        if !topic_matches(topic, &self.topic) || self.operation == "Deleted" {
            return None;
        }
        let value = match item {
            Some(name) => self
                .data
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())?,
            None => match self.data.iter().find(|(_, v)| boolean(v).is_some()) {
                Some((_, v)) => v.as_str(),
                None => return Some(Level::Pulse),
            },
        };
        Some(match boolean(value) {
            Some(true) => Level::On,
            Some(false) => Level::Off,
            None => Level::Pulse,
        })
    }
}

fn boolean(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Every notification in a `PullMessagesResponse`.
pub fn notifications(doc: &roxmltree::Document<'_>) -> Vec<Notification> {
    let mut out = Vec::new();
    for n in find_all(doc.root(), "NotificationMessage") {
        let topic = child(n, "Topic")
            .and_then(|t| t.text())
            .unwrap_or_default()
            .trim()
            .to_string();
        // wsnt:Message wraps tt:Message.
        let Some(msg) = child(n, "Message").and_then(|m| child(m, "Message").or(Some(m))) else {
            continue;
        };
        let data = find(msg, "Data")
            .map(|d| {
                find_all(d, "SimpleItem")
                    .filter_map(|i| {
                        Some((
                            i.attribute("Name")?.to_string(),
                            i.attribute("Value")?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Notification {
            topic,
            operation: msg.attribute("PropertyOperation").unwrap_or("").to_string(),
            data,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PullMessagesResponse as the ONVIF Core specification's event examples write it.
    const PULL: &str = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tev="http://www.onvif.org/ver10/events/wsdl" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:tns1="http://www.onvif.org/ver10/topics" xmlns:tt="http://www.onvif.org/ver10/schema"><env:Body><tev:PullMessagesResponse><tev:CurrentTime>2026-12-08T00:00:00Z</tev:CurrentTime><tev:TerminationTime>2026-12-08T00:01:00Z</tev:TerminationTime>
<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic><wsnt:Message><tt:Message UtcTime="2026-12-08T00:00:00Z" PropertyOperation="Changed"><tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="1"/></tt:Source><tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>
<wsnt:NotificationMessage><wsnt:Topic>tns1:VideoSource/GlobalSceneChange/ImagingService</wsnt:Topic><wsnt:Message><tt:Message PropertyOperation="Initialized"><tt:Data><tt:SimpleItem Name="State" Value="false"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>
<wsnt:NotificationMessage><wsnt:Topic>tns1:RuleEngine/LineDetector/Crossed</wsnt:Topic><wsnt:Message><tt:Message><tt:Data><tt:SimpleItem Name="ObjectId" Value="7"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>
</tev:PullMessagesResponse></env:Body></env:Envelope>"#;

    #[test]
    fn reads_the_specifications_messages() {
        let doc = roxmltree::Document::parse(PULL).unwrap();
        let n = notifications(&doc);
        assert_eq!(n.len(), 3);
        assert_eq!(n[0].data, vec![("IsMotion".into(), "true".into())]);
        assert_eq!(n[0].level_for("motion", None), Some(Level::On));
        assert_eq!(
            n[0].level_for(
                "tns1:RuleEngine/CellMotionDetector/Motion",
                Some("IsMotion")
            ),
            Some(Level::On)
        );
        assert_eq!(n[0].level_for("tamper", None), None);
        assert_eq!(n[1].level_for("tamper", None), Some(Level::Off));
        assert_eq!(n[2].level_for("line", None), Some(Level::Pulse));
        assert_eq!(n[2].level_for("motion", None), None);
    }

    #[test]
    fn topics_match_whatever_the_prefix() {
        assert!(topic_matches(
            "tns1:RuleEngine/CellMotionDetector",
            "ns0:RuleEngine/CellMotionDetector/Motion"
        ));
        assert!(!topic_matches(
            "tns1:RuleEngine/CellMotion",
            "tns1:RuleEngine/CellMotionDetector/Motion"
        ));
        assert!(topic_matches("MOTION", "tns1:VideoSource/MotionAlarm"));
    }
}
