//! Reading one WS-Discovery reply: a SOAP envelope whose body holds `ProbeMatches`, each
//! `ProbeMatch` a device (endpoint reference, types, scopes, XAddrs).
//!
//! Everything here comes from the LAN, so nothing is trusted: the text has a node limit and
//! no DTD (roxmltree refuses one by default), every list and string is capped, and an XAddr
//! that is not an `http`/`https` URL is dropped.

use roxmltree::{Document, Node, ParsingOptions};
use serde::Serialize;
use thiserror::Error;

/// Nodes one reply may have (a real `ProbeMatches` has a few dozen).
const MAX_NODES: u32 = 4_000;
/// `ProbeMatch` elements read from one reply.
const MAX_MATCHES: usize = 16;
/// Scopes kept per device.
const MAX_SCOPES: usize = 32;
/// XAddrs kept per device.
const MAX_XADDRS: usize = 8;
/// Types kept per device.
const MAX_TYPES: usize = 8;
/// Characters kept of any one string (an endpoint, a URL, a decoded scope value).
const MAX_TEXT: usize = 512;

/// The WS-Discovery namespaces: the 2005/04 draft that ONVIF uses, and the OASIS 1.1 one.
const DISCOVERY_NS: [&str; 2] = [
    "http://schemas.xmlsoap.org/ws/2005/04/discovery",
    "http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01",
];

/// The scope prefix ONVIF devices announce their name, hardware and location under.
const ONVIF_SCOPE: &str = "onvif://www.onvif.org/";

/// One camera (or other ONVIF device) that answered the probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// Its endpoint reference (usually `urn:uuid:...`): stable across reboots and address
    /// changes, so the key replies are deduplicated by.
    pub endpoint: String,
    /// Its device service URLs (`http://192.168.1.20/onvif/device_service`), where the ONVIF
    /// SOAP client talks to it.
    pub xaddrs: Vec<String>,
    /// `host` or `host:port` of the first XAddr, for the page's address field.
    pub host: Option<String>,
    /// The `onvif://www.onvif.org/name/...` scope, decoded (what the installer called it).
    pub name: Option<String>,
    /// The `onvif://www.onvif.org/hardware/...` scope, decoded (the model).
    pub hardware: Option<String>,
    /// The `onvif://www.onvif.org/location/...` scope, decoded (`country/sweden`).
    pub location: Option<String>,
    /// Its types (`dn:NetworkVideoTransmitter tds:Device`), as written.
    pub types: Vec<String>,
    /// All its scopes, as written, for whatever the three above do not cover.
    pub scopes: Vec<String>,
}

/// Why a datagram was not a usable reply. These are logged at debug and skipped: a LAN has
/// other WS-Discovery talkers (printers, Windows), and hostile ones.
#[derive(Debug, Error)]
pub enum ReplyError {
    /// Not UTF-8 text.
    #[error("the reply is not UTF-8 text")]
    NotText,
    /// Not well-formed XML, or more nodes than a reply needs.
    #[error("the reply is not XML: {0}")]
    NotXml(#[from] roxmltree::Error),
    /// XML, but no `ProbeMatches` in a SOAP body.
    #[error("the reply is not a WS-Discovery ProbeMatches message")]
    NotProbeMatches,
    /// A `ProbeMatches` that answers some other probe (its `RelatesTo` is not ours).
    #[error("the reply answers another probe (RelatesTo {0})")]
    OtherProbe(String),
}

/// The devices in one reply to the probe whose MessageID is `message_id`. A reply without a
/// `RelatesTo` is taken (some cameras leave it out); one relating to another message is not.
pub fn probe_matches(data: &[u8], message_id: &str) -> Result<Vec<Device>, ReplyError> {
    let text = std::str::from_utf8(data).map_err(|_| ReplyError::NotText)?;
    let options = ParsingOptions {
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options)?;
    let envelope = doc.root_element();
    if envelope.tag_name().name() != "Envelope" {
        return Err(ReplyError::NotProbeMatches);
    }
    let header = child(envelope, "Header");
    if let Some(relates) = header.and_then(|h| child(h, "RelatesTo")) {
        let relates = relates.text().unwrap_or("").trim();
        if relates != message_id {
            return Err(ReplyError::OtherProbe(capped(relates)));
        }
    }
    let matches = child(envelope, "Body")
        .and_then(|b| b.children().find(|n| is_discovery(n, "ProbeMatches")))
        .ok_or(ReplyError::NotProbeMatches)?;
    Ok(matches
        .children()
        .filter(|n| is_discovery(n, "ProbeMatch"))
        .take(MAX_MATCHES)
        .filter_map(device)
        .collect())
}

/// One `ProbeMatch` as a device; `None` when it names neither an endpoint nor a usable URL.
fn device(m: Node) -> Option<Device> {
    let xaddrs: Vec<String> = words(child(m, "XAddrs"))
        .filter(|u| is_http_url(u))
        .take(MAX_XADDRS)
        .map(capped)
        .collect();
    let endpoint = child(m, "EndpointReference")
        .and_then(|e| child(e, "Address"))
        .and_then(|a| a.text())
        .map(|t| capped(t.trim()))
        .filter(|t| !t.is_empty())
        .or_else(|| xaddrs.first().cloned())?;
    let scopes: Vec<String> = words(child(m, "Scopes"))
        .take(MAX_SCOPES)
        .map(capped)
        .collect();
    Some(Device {
        endpoint,
        host: xaddrs.first().and_then(|u| host_of(u)),
        name: scope_value(&scopes, "name/"),
        hardware: scope_value(&scopes, "hardware/"),
        location: scope_value(&scopes, "location/"),
        types: words(child(m, "Types"))
            .take(MAX_TYPES)
            .map(capped)
            .collect(),
        xaddrs,
        scopes,
    })
}

/// The first child element of `n` with local name `name`, any namespace (SOAP 1.1 or 1.2,
/// either addressing version).
fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// Whether `n` is the WS-Discovery element `name`.
fn is_discovery(n: &Node, name: &str) -> bool {
    n.is_element()
        && n.tag_name().name() == name
        && n.tag_name()
            .namespace()
            .is_some_and(|ns| DISCOVERY_NS.contains(&ns))
}

/// The whitespace-separated words of an element's text (a list of URIs or QNames).
fn words<'a>(n: Option<Node<'a, '_>>) -> impl Iterator<Item = &'a str> {
    n.and_then(|n| n.text()).unwrap_or("").split_whitespace()
}

/// At most [`MAX_TEXT`] characters of `s`.
fn capped(s: &str) -> String {
    s.chars().take(MAX_TEXT).collect()
}

/// Whether `u` is an `http` or `https` URL with a host.
fn is_http_url(u: &str) -> bool {
    url::Url::parse(u)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// `host` or `host:port` of URL `u` (IPv6 in brackets, the default port left out).
fn host_of(u: &str) -> Option<String> {
    let u = url::Url::parse(u).ok()?;
    let host = match u.host()? {
        url::Host::Ipv6(a) => format!("[{a}]"),
        h => h.to_string(),
    };
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// The percent-decoded rest of the first scope `onvif://www.onvif.org/<kind>...`.
fn scope_value(scopes: &[String], kind: &str) -> Option<String> {
    scopes.iter().find_map(|s| {
        let rest = s.strip_prefix(ONVIF_SCOPE)?.strip_prefix(kind)?;
        let decoded = percent_encoding::percent_decode_str(rest).decode_utf8_lossy();
        let value = capped(decoded.trim());
        (!value.is_empty()).then_some(value)
    })
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
