//! The device and media services: where a camera's services answer, what the camera is, its
//! media profiles and their RTSP addresses ([`probe_device`], the Cameras tab's *From ONVIF*).

use std::sync::Arc;

use serde::Serialize;

use super::OnvifError;
use super::soap::{Client, Endpoint};
use super::xml::{child, find, find_all, text};
use crate::clock::Clock;

/// Where a camera's services answer, from `GetCapabilities` (or `GetServices`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Services {
    /// The media service (profiles, stream URIs), if the camera has one.
    pub media: Option<String>,
    /// The events service (PullPoint subscriptions), if the camera has one.
    pub events: Option<String>,
}

/// What the camera says it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct DeviceInfo {
    /// Maker, such as `Hikvision`.
    pub manufacturer: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// Firmware version.
    pub firmware: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
}

/// One media profile of the camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaProfile {
    /// The profile's token (its id in ONVIF requests).
    pub token: String,
    /// The profile's name, such as `mainStream`.
    pub name: String,
    /// Video encoding: `H264`, `H265`, `JPEG`…
    pub encoding: Option<String>,
    /// Picture width in pixels.
    pub width: Option<u32>,
    /// Picture height in pixels.
    pub height: Option<u32>,
    /// The RTSP address (`GetStreamUri`), without credentials.
    pub uri: Option<String>,
    /// Why the address could not be read, when it could not.
    pub uri_error: Option<String>,
}

impl MediaProfile {
    fn pixels(&self) -> u64 {
        u64::from(self.width.unwrap_or(0)) * u64::from(self.height.unwrap_or(0))
    }
}

/// Everything *From ONVIF* shows: the device, its profiles and the proposed stream URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceReport {
    /// What the camera is.
    pub device: DeviceInfo,
    /// Its media profiles, in the camera's order.
    pub profiles: Vec<MediaProfile>,
    /// The largest profile's RTSP URL, with the user and password given, for `url`.
    pub main_url: Option<String>,
    /// The smallest other profile's RTSP URL, with credentials, for `sub_url`.
    pub sub_url: Option<String>,
}

const DEVICE_NS: &str = "http://www.onvif.org/ver10/device/wsdl";
const MEDIA_NS: &str = "http://www.onvif.org/ver10/media/wsdl";
const EVENTS_NS: &str = "http://www.onvif.org/ver10/events/wsdl";

/// Where the camera's media and events services answer: `GetCapabilities`, and
/// `GetServices` for cameras that only implement that.
pub async fn services(client: &Client) -> Result<Services, OnvifError> {
    let dev = client.device().clone();
    let caps = client
        .call(
            &dev,
            "GetCapabilities",
            &format!("{DEVICE_NS}/GetCapabilities"),
            "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>",
            None,
        )
        .await;
    match caps {
        Ok(answer) => {
            let doc = parse("GetCapabilities", &answer)?;
            let caps = find(doc.root(), "Capabilities");
            let xaddr = |name: &str| {
                caps.and_then(|c| child(c, name))
                    .and_then(|n| text(n, "XAddr"))
            };
            let s = Services {
                media: xaddr("Media"),
                events: xaddr("Events"),
            };
            if s.media.is_some() || s.events.is_some() {
                return Ok(s);
            }
        }
        Err(e @ (OnvifError::Unauthorized | OnvifError::Unreachable { .. })) => return Err(e),
        Err(e) => tracing::debug!(error = %e, "ONVIF GetCapabilities failed; trying GetServices"),
    }
    let answer = client
        .call(
            &dev,
            "GetServices",
            &format!("{DEVICE_NS}/GetServices"),
            "<tds:GetServices><tds:IncludeCapability>false</tds:IncludeCapability></tds:GetServices>",
            None,
        )
        .await?;
    let doc = parse("GetServices", &answer)?;
    let mut s = Services::default();
    for svc in find_all(doc.root(), "Service") {
        let (Some(ns), Some(x)) = (text(svc, "Namespace"), text(svc, "XAddr")) else {
            continue;
        };
        match ns.as_str() {
            MEDIA_NS => s.media = Some(x),
            EVENTS_NS => s.events = Some(x),
            _ => {}
        }
    }
    Ok(s)
}

/// `GetDeviceInformation`.
pub async fn device_info(client: &Client) -> Result<DeviceInfo, OnvifError> {
    let dev = client.device().clone();
    let answer = client
        .call(
            &dev,
            "GetDeviceInformation",
            &format!("{DEVICE_NS}/GetDeviceInformation"),
            "<tds:GetDeviceInformation/>",
            None,
        )
        .await?;
    let doc = parse("GetDeviceInformation", &answer)?;
    let r = doc.root();
    Ok(DeviceInfo {
        manufacturer: text(r, "Manufacturer"),
        model: text(r, "Model"),
        firmware: text(r, "FirmwareVersion"),
        serial: text(r, "SerialNumber"),
    })
}

/// `GetProfiles` and a `GetStreamUri` (RTSP over RTP unicast) for each profile.
pub async fn profiles(client: &Client, media: &Endpoint) -> Result<Vec<MediaProfile>, OnvifError> {
    let answer = client
        .call(
            media,
            "GetProfiles",
            &format!("{MEDIA_NS}/GetProfiles"),
            "<trt:GetProfiles/>",
            None,
        )
        .await?;
    let doc = parse("GetProfiles", &answer)?;
    let mut out = Vec::new();
    for p in find_all(doc.root(), "Profiles") {
        let Some(token) = p.attribute("token") else {
            continue;
        };
        let enc = find(p, "VideoEncoderConfiguration");
        let res = enc.and_then(|e| find(e, "Resolution"));
        let dim = |name: &str| res.and_then(|r| text(r, name)).and_then(|t| t.parse().ok());
        out.push(MediaProfile {
            token: token.to_string(),
            name: child(p, "Name")
                .and_then(|n| n.text())
                .map(|t| t.trim().to_string())
                .unwrap_or_else(|| token.to_string()),
            encoding: enc.and_then(|e| text(e, "Encoding")),
            width: dim("Width"),
            height: dim("Height"),
            uri: None,
            uri_error: None,
        });
    }
    for p in &mut out {
        match stream_uri(client, media, &p.token).await {
            Ok(uri) => p.uri = Some(uri),
            Err(e @ (OnvifError::Unauthorized | OnvifError::Unreachable { .. })) => return Err(e),
            Err(e) => p.uri_error = Some(e.to_string()),
        }
    }
    Ok(out)
}

async fn stream_uri(client: &Client, media: &Endpoint, token: &str) -> Result<String, OnvifError> {
    let body = format!(
        "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport>\
         <tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup>\
         <trt:ProfileToken>{}</trt:ProfileToken></trt:GetStreamUri>",
        super::xml::escape(token)
    );
    let answer = client
        .call(
            media,
            "GetStreamUri",
            &format!("{MEDIA_NS}/GetStreamUri"),
            &body,
            None,
        )
        .await?;
    let doc = parse("GetStreamUri", &answer)?;
    find(doc.root(), "MediaUri")
        .and_then(|m| text(m, "Uri"))
        .ok_or(OnvifError::BadAnswer {
            action: "GetStreamUri",
            why: "no MediaUri/Uri in the answer".into(),
        })
}

/// *From ONVIF*: reads the camera at `address` with `user`/`password` and proposes the main
/// (largest picture) and sub (smallest) stream URLs, the credentials put in them the way the
/// Cameras tab writes RTSP URLs (`rtsp://user:password@camera/...`).
pub async fn probe_device(
    address: &str,
    user: &str,
    password: &str,
    clock: Arc<dyn Clock>,
) -> Result<DeviceReport, OnvifError> {
    let client = Client::new(Endpoint::device(address)?, user, password, clock);
    client.sync_clock().await?;
    let svc = services(&client).await?;
    let device = device_info(&client).await?;
    let media = Endpoint::parse(svc.media.as_deref().ok_or(OnvifError::NoMedia)?)?;
    let profiles = profiles(&client, &media).await?;
    let (main, sub) = propose(&profiles);
    Ok(DeviceReport {
        device,
        main_url: main.map(|u| with_credentials(u, user, password)),
        sub_url: sub.map(|u| with_credentials(u, user, password)),
        profiles,
    })
}

/// The URIs of the largest and of the smallest profile (`None` for the sub stream when the
/// camera has only one distinct stream).
pub fn propose(profiles: &[MediaProfile]) -> (Option<&str>, Option<&str>) {
    let with_uri: Vec<&MediaProfile> = profiles.iter().filter(|p| p.uri.is_some()).collect();
    let main = with_uri.iter().max_by_key(|p| p.pixels()).copied();
    let sub = with_uri.iter().min_by_key(|p| p.pixels()).copied();
    let main_uri = main.and_then(|p| p.uri.as_deref());
    let sub_uri = sub
        .and_then(|p| p.uri.as_deref())
        .filter(|u| Some(*u) != main_uri);
    (main_uri, sub_uri)
}

/// `uri` with `user`/`password` as its user info, unless it has its own or no user is given.
pub fn with_credentials(uri: &str, user: &str, password: &str) -> String {
    let Ok(mut url) = url::Url::parse(uri) else {
        return uri.to_string();
    };
    if user.is_empty() || !url.username().is_empty() {
        return uri.to_string();
    }
    if url.set_username(user).is_err() {
        return uri.to_string();
    }
    if !password.is_empty() && url.set_password(Some(password)).is_err() {
        return uri.to_string();
    }
    url.to_string()
}

fn parse<'a>(action: &'static str, text: &'a str) -> Result<roxmltree::Document<'a>, OnvifError> {
    roxmltree::Document::parse(text).map_err(|e| OnvifError::BadAnswer {
        action,
        why: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(w: u32, h: u32, uri: &str) -> MediaProfile {
        MediaProfile {
            token: uri.into(),
            name: uri.into(),
            encoding: Some("H264".into()),
            width: Some(w),
            height: Some(h),
            uri: Some(uri.into()),
            uri_error: None,
        }
    }

    #[test]
    fn main_is_the_largest_and_sub_the_smallest() {
        let p = [
            profile(640, 360, "rtsp://c/sub"),
            profile(1920, 1080, "rtsp://c/main"),
            profile(1280, 720, "rtsp://c/mid"),
        ];
        assert_eq!(propose(&p), (Some("rtsp://c/main"), Some("rtsp://c/sub")));
        assert_eq!(propose(&p[1..2]), (Some("rtsp://c/main"), None));
    }

    #[test]
    fn credentials_go_into_the_rtsp_url_encoded() {
        assert_eq!(
            with_credentials("rtsp://10.0.0.5:554/Streaming/101", "admin", "p@ss:w/rd"),
            "rtsp://admin:p%40ss%3Aw%2Frd@10.0.0.5:554/Streaming/101"
        );
        assert_eq!(
            with_credentials("rtsp://u:x@10.0.0.5/s", "admin", "pw"),
            "rtsp://u:x@10.0.0.5/s"
        );
    }
}
