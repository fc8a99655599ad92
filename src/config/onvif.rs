//! `[alarms.onvif]`: a camera's own events (motion, tamper, line crossing) as an alarm input,
//! through an ONVIF PullPoint subscription ([`crate::onvif::events`] runs it).

use serde::{Deserialize, Serialize};

use super::StreamConfig;

/// Where the ONVIF port is when the camera is named by a stream: most cameras answer ONVIF
/// on their web port.
pub const DEFAULT_ONVIF_PORT: u16 = 80;

/// The camera and the event that raise one alarm.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnvifInputConfig {
    /// The camera, by the id of its `[[streams]]` entry: host, user and password come from
    /// that stream's RTSP URL, so they are written once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The camera's ONVIF address (`192.168.1.20`, `192.168.1.20:8080` or a full
    /// `http://…/onvif/device_service` URL), for a camera that is not a stream here or
    /// whose ONVIF host differs; overrides the host of `stream`.
    #[serde(default, alias = "url", skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The ONVIF port when the host comes from `stream` (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// ONVIF user; defaults to the user of the stream's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// ONVIF password; defaults to the stream URL's. A secret, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The event: a short name (`motion`, `tamper`, `line`, `field`) or an ONVIF topic such
    /// as `tns1:RuleEngine/CellMotionDetector/Motion` (sub-topics match too).
    #[serde(default = "default_topic")]
    pub topic: String,
    /// The data item that carries the state (`IsMotion`, `State`); by default the first
    /// item whose value is `true` or `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
}

fn default_topic() -> String {
    "motion".to_string()
}

impl std::fmt::Debug for OnvifInputConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnvifInputConfig")
            .field("stream", &self.stream)
            .field("address", &self.address)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("topic", &self.topic)
            .field("item", &self.item)
            .finish()
    }
}

/// Where to reach the camera: address, user, password.
#[derive(Clone, PartialEq, Eq)]
pub struct OnvifTarget {
    /// Address as [`OnvifInputConfig::address`] takes it.
    pub address: String,
    /// ONVIF user (empty: none).
    pub user: String,
    /// ONVIF password; a secret.
    pub password: String,
}

impl std::fmt::Debug for OnvifTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnvifTarget")
            .field("address", &self.address)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl OnvifInputConfig {
    /// The camera's address and credentials, `stream` looked up in `streams`; `Err` says
    /// what is missing, for validation.
    pub fn target(&self, streams: &[StreamConfig]) -> Result<OnvifTarget, String> {
        let from_stream = match &self.stream {
            None => None,
            Some(id) => {
                let s = streams
                    .iter()
                    .find(|s| &s.id == id)
                    .ok_or_else(|| format!("`{id}` is not a stream id"))?;
                let url = s.url.as_deref().unwrap_or_default();
                let url = url::Url::parse(url).map_err(|_| {
                    format!("stream `{id}` has no RTSP URL to take the camera's address from")
                })?;
                Some(url)
            }
        };
        let decode = |s: &str| percent_encoding_decode(s).unwrap_or_else(|| s.to_string());
        let address = match (&self.address, &from_stream) {
            (Some(a), _) if !a.trim().is_empty() => a.trim().to_string(),
            (_, Some(url)) => {
                let host = url
                    .host()
                    .ok_or("the stream's URL has no host")?
                    .to_string();
                format!("{host}:{}", self.port.unwrap_or(DEFAULT_ONVIF_PORT))
            }
            _ => {
                return Err(
                    "name the camera: `stream = \"<stream id>\"` or `address = \"192.168.1.20\"`"
                        .into(),
                );
            }
        };
        let user = match (&self.user, &from_stream) {
            (Some(u), _) => u.clone(),
            (None, Some(url)) => decode(url.username()),
            (None, None) => String::new(),
        };
        let password = match (&self.password, &from_stream) {
            (Some(p), _) => p.clone(),
            (None, Some(url)) => url.password().map(decode).unwrap_or_default(),
            (None, None) => String::new(),
        };
        Ok(OnvifTarget {
            address,
            user,
            password,
        })
    }
}

/// `%XX` decoding of URL user info (the `url` crate leaves it encoded).
fn percent_encoding_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(url: &str) -> StreamConfig {
        let text = format!("id = \"cam1\"\nkind = \"rtsp\"\nurl = \"{url}\"\n");
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn the_stream_gives_host_and_credentials() {
        let cfg: OnvifInputConfig = toml::from_str("stream = \"cam1\"").unwrap();
        let t = cfg
            .target(&[stream("rtsp://admin:p%40ss@10.0.0.5:554/s1")])
            .unwrap();
        assert_eq!(t.address, "10.0.0.5:80");
        assert_eq!((t.user.as_str(), t.password.as_str()), ("admin", "p@ss"));
        assert_eq!(cfg.topic, "motion");
        let cfg: OnvifInputConfig =
            toml::from_str("stream = \"cam1\"\nport = 8000\nuser = \"onvif\"\npassword = \"x\"")
                .unwrap();
        let t = cfg.target(&[stream("rtsp://admin:y@10.0.0.5/s1")]).unwrap();
        assert_eq!(t.address, "10.0.0.5:8000");
        assert_eq!((t.user.as_str(), t.password.as_str()), ("onvif", "x"));
        assert!(!format!("{cfg:?}{t:?}").contains("\"x\""));
    }

    #[test]
    fn a_camera_must_be_named() {
        let cfg: OnvifInputConfig = toml::from_str("topic = \"motion\"").unwrap();
        assert!(cfg.target(&[]).unwrap_err().contains("name the camera"));
        let cfg: OnvifInputConfig = toml::from_str("stream = \"nope\"").unwrap();
        assert!(cfg.target(&[]).unwrap_err().contains("not a stream id"));
    }
}
