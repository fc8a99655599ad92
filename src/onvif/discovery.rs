//! WS-Discovery: which ONVIF cameras are on the box's LAN (the Cameras tab's *Discover*).
//!
//! [`probe`] sends one `Probe` for `dn:NetworkVideoTransmitter` (SOAP over UDP, multicast to
//! 239.255.255.250:3702 and, out of every interface with IPv6, to [ff02::c]:3702; each sent
//! twice as the WS-Discovery spec's UDP repeat asks) with a fresh
//! `urn:uuid:` MessageID, and collects the `ProbeMatches` that come back to its socket for a
//! bounded time. Each reply goes through [`parse::probe_matches`]; replies that are not
//! ProbeMatches of this probe are logged at debug and skipped, devices are deduplicated by
//! endpoint reference, and the count of devices and the size of a reply are capped (a LAN may
//! hold anything).

mod parse;

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use thiserror::Error;
use tokio::net::UdpSocket;

pub use parse::{Device, ReplyError, probe_matches};

/// The WS-Discovery multicast group and port.
pub const MULTICAST: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 3702));
/// The IPv6 WS-Discovery group (link-local scope: the probe goes out of each interface).
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xc);
/// How long the probe listens by default: cameras answer within WS-Discovery's
/// `APP_MAX_DELAY` (500 ms) plus the network.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(3);
/// Most devices one probe reports (more is a hostile or broken LAN).
pub const MAX_DEVICES: usize = 64;
/// Largest reply read; a longer datagram is skipped (a real ProbeMatches is 1-4 KiB).
pub const MAX_REPLY_BYTES: usize = 16 * 1024;
/// Gap between the probe and its repeat.
const REPEAT_GAP: Duration = Duration::from_millis(100);

/// Where and how long to probe.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Where the probe goes: [`MULTICAST`] on a real LAN; tests may aim at a loopback socket.
    pub target: SocketAddr,
    /// How long replies are collected after the probe is sent.
    pub wait: Duration,
    /// Most devices reported.
    pub max_devices: usize,
    /// Also probe [`MULTICAST_V6`] out of every interface with IPv6 (cameras on an IPv6-only
    /// LAN); a box without IPv6 just skips it.
    pub ipv6: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            target: MULTICAST,
            wait: DEFAULT_WAIT,
            max_devices: MAX_DEVICES,
            ipv6: true,
        }
    }
}

/// Why the probe could not run at all (a reply that makes no sense is not an error).
#[derive(Debug, Error)]
pub enum DiscoveryError {
    /// No UDP socket (out of descriptors, or no IPv4 on the box).
    #[error(
        "cannot open a UDP socket for the ONVIF discovery: {0}; check that the box has an IPv4 address"
    )]
    Socket(#[source] std::io::Error),
    /// The probe could not be sent (no route for multicast: the network is down or has no
    /// default route).
    #[error(
        "cannot send the ONVIF discovery probe to {target}: {source}; check that the box's \
         network cable is in and that it has an address and a default route"
    )]
    Send {
        /// Where it went.
        target: SocketAddr,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
}

/// Probes for ONVIF cameras; the devices that answered within `options.wait`, in the order
/// their first reply came, at most `options.max_devices`.
pub async fn probe(options: &ProbeOptions) -> Result<Vec<Device>, DiscoveryError> {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        .await
        .map_err(DiscoveryError::Socket)?;
    let v6 = if options.ipv6 {
        v6_socket().await
    } else {
        None
    };
    let message_id = message_id();
    let text = probe_message(&message_id);
    let sent4 = send(&socket, &text, options.target).await;
    let sent6 = send_v6(v6.as_ref(), &text).await;
    // An IPv6-only LAN has no IPv4 route: the probe then goes out over IPv6 alone.
    match sent4 {
        Err(e) if sent6 == 0 => return Err(e),
        Err(e) => tracing::debug!(error = %e, "ONVIF probe: IPv4 probe not sent; IPv6 only"),
        Ok(()) => {}
    }
    tracing::debug!(message_id = %message_id, target = %options.target, ipv6 = v6.is_some(), "ONVIF probe sent");
    let deadline = tokio::time::Instant::now() + options.wait;
    let mut devices = Collected::new(options.max_devices);
    let mut repeat = Some(tokio::time::Instant::now() + REPEAT_GAP);
    let mut buf = vec![0u8; MAX_REPLY_BYTES + 1];
    let mut buf6 = vec![0u8; if v6.is_some() { MAX_REPLY_BYTES + 1 } else { 0 }];
    loop {
        let until = repeat.map_or(deadline, |r| r.min(deadline));
        let recv6 = async {
            match &v6 {
                Some((s, _)) => s.recv_from(&mut buf6).await.map(|(n, f)| (n, f, true)),
                None => std::future::pending().await,
            }
        };
        let received = async {
            tokio::select! {
                r = socket.recv_from(&mut buf) => r.map(|(n, f)| (n, f, false)),
                r = recv6 => r,
            }
        };
        match tokio::time::timeout_at(until, received).await {
            Ok(Ok((n, from, false))) => devices.reply(&buf[..n], from, &message_id),
            Ok(Ok((n, from, true))) => devices.reply(&buf6[..n], from, &message_id),
            Ok(Err(e)) => tracing::debug!(error = %e, "ONVIF probe: receive failed"),
            Err(_) if repeat.is_some() && until < deadline => {
                repeat = None;
                if let Err(e) = send(&socket, &text, options.target).await {
                    tracing::debug!(error = %e, "ONVIF probe: repeat not sent");
                }
                send_v6(v6.as_ref(), &text).await;
            }
            Err(_) => break,
        }
    }
    Ok(devices.list)
}

/// An IPv6 socket and the group on each interface with IPv6; `None` when the box has no
/// IPv6 (then only the IPv4 probe runs).
async fn v6_socket() -> Option<(UdpSocket, Vec<SocketAddr>)> {
    let targets: Vec<SocketAddr> = ipv6_interfaces()
        .into_iter()
        .map(|index| SocketAddr::V6(SocketAddrV6::new(MULTICAST_V6, 3702, 0, index)))
        .collect();
    if targets.is_empty() {
        return None;
    }
    match UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))).await {
        Ok(s) => Some((s, targets)),
        Err(e) => {
            tracing::debug!(error = %e, "ONVIF probe: no IPv6 socket; IPv4 only");
            None
        }
    }
}

/// Sends the probe out of every IPv6 interface; an interface that refuses is logged only.
/// Returns how many took it.
async fn send_v6(v6: Option<&(UdpSocket, Vec<SocketAddr>)>, text: &str) -> usize {
    let Some((socket, targets)) = v6 else {
        return 0;
    };
    let mut sent = 0;
    for &target in targets {
        match send(socket, text, target).await {
            Ok(()) => sent += 1,
            Err(e) => tracing::debug!(%target, error = %e, "ONVIF probe: IPv6 probe not sent"),
        }
    }
    sent
}

/// The indices of the interfaces with an IPv6 address, loopback left out (`if_inet6`:
/// address, index in hex, prefix length, scope, flags, name). Read through `thread-self`:
/// `/proc/net` shows the main thread's network namespace, which need not be this one's.
fn ipv6_interfaces() -> Vec<u32> {
    let text = std::fs::read_to_string("/proc/thread-self/net/if_inet6")
        .or_else(|_| std::fs::read_to_string("/proc/net/if_inet6"));
    let Ok(text) = text else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[5] == "lo" {
            continue;
        }
        if let Ok(i) = u32::from_str_radix(f[1], 16)
            && !out.contains(&i)
        {
            out.push(i);
        }
    }
    out
}

/// Sends the probe `text` to `target`.
async fn send(socket: &UdpSocket, text: &str, target: SocketAddr) -> Result<(), DiscoveryError> {
    socket
        .send_to(text.as_bytes(), target)
        .await
        .map(drop)
        .map_err(|source| DiscoveryError::Send { target, source })
}

/// The devices gathered so far.
struct Collected {
    /// Devices in the order they first answered.
    list: Vec<Device>,
    /// Their endpoints, for deduplication.
    seen: HashSet<String>,
    /// Most devices kept.
    max: usize,
    /// Whether the cap was logged already (once per probe).
    capped: bool,
}

impl Collected {
    /// Nothing yet, at most `max` devices.
    fn new(max: usize) -> Self {
        Collected {
            list: Vec::new(),
            seen: HashSet::new(),
            max,
            capped: false,
        }
    }

    /// Takes one datagram from `from`: its new devices, or a debug line saying why not.
    fn reply(&mut self, data: &[u8], from: SocketAddr, message_id: &str) {
        if data.len() > MAX_REPLY_BYTES {
            tracing::debug!(%from, bytes = data.len(), "ONVIF probe: reply too large, skipped");
            return;
        }
        let found = match probe_matches(data, message_id) {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(%from, error = %e, "ONVIF probe: reply skipped");
                return;
            }
        };
        for device in found {
            if self.list.len() >= self.max {
                if !self.capped {
                    tracing::warn!(
                        max = self.max,
                        "ONVIF probe: more devices answered than are listed"
                    );
                    self.capped = true;
                }
                return;
            }
            if self.seen.insert(device.endpoint.clone()) {
                tracing::debug!(%from, endpoint = %device.endpoint, "ONVIF device found");
                self.list.push(device);
            }
        }
    }
}

/// A fresh `urn:uuid:` (version 4, random) for the probe's MessageID.
pub fn message_id() -> String {
    let mut b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The SOAP envelope of a `Probe` for ONVIF video transmitters with MessageID `message_id`
/// (WS-Discovery 2005/04, as ONVIF's Core specification requires).
pub fn probe_message(message_id: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" "#,
            r#"xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" "#,
            r#"xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" "#,
            r#"xmlns:dn="http://www.onvif.org/ver10/network/wsdl">"#,
            "<s:Header>",
            "<a:Action s:mustUnderstand=\"1\">",
            "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>",
            "<a:MessageID>{}</a:MessageID>",
            "<a:ReplyTo><a:Address>",
            "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous",
            "</a:Address></a:ReplyTo>",
            "<a:To s:mustUnderstand=\"1\">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>",
            "</s:Header>",
            "<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>",
            "</s:Envelope>"
        ),
        message_id
    )
}

#[cfg(test)]
mod tests;
