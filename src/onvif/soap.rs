//! SOAP 1.2 requests to a camera over HTTP/1 (hyper), plain or TLS (`https://`), signed with a WS-Security
//! `UsernameToken` whose `PasswordDigest` is `base64(sha1(nonce + created + password))`.
//! `Created` is the camera's time, not the box's: [`Client::sync_clock`] reads the camera's
//! clock once, because cameras refuse digests made with a clock far from their own.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::OnvifError;
use super::xml::{escape, find, text};
use crate::clock::Clock;

/// Largest SOAP answer read; profile lists of big NVRs stay far below.
const MAX_ANSWER: usize = 1 << 20;

/// Where one ONVIF service answers: an `http://` or `https://` URL split for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://`: the request goes over TLS ([`super::tls`]).
    tls: bool,
    /// Host name or address to connect to (no brackets around IPv6).
    host: url::Host<String>,
    /// TCP port.
    port: u16,
    /// `Host` header value (`host[:port]`).
    authority: String,
    /// Request target: path and query.
    target: String,
}

impl Endpoint {
    /// A service URL as a camera gives it in an `XAddr` (`http://host[:port]/path`).
    pub fn parse(xaddr: &str) -> Result<Endpoint, OnvifError> {
        let bad = || OnvifError::BadAddress(xaddr.to_string());
        let url = url::Url::parse(xaddr.trim()).map_err(|_| bad())?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(bad()),
        };
        let host = url.host().ok_or_else(bad)?.to_owned();
        let port = url.port_or_known_default().ok_or_else(bad)?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        Ok(Endpoint {
            tls,
            host,
            port,
            authority,
            target,
        })
    }

    /// The device service of a camera address as an installer writes it: `192.168.1.20`,
    /// `cam.local:8080`, or a full `http://…` URL (its path kept when it has one).
    pub fn device(address: &str) -> Result<Endpoint, OnvifError> {
        let a = address.trim();
        if a.is_empty() || a.contains(char::is_whitespace) || a.contains('@') {
            return Err(OnvifError::BadAddress(address.to_string()));
        }
        let url = if a.contains("://") {
            a.to_string()
        } else {
            format!("http://{a}")
        };
        let mut ep = Endpoint::parse(&url).map_err(|e| match e {
            OnvifError::BadAddress(_) => OnvifError::BadAddress(address.to_string()),
            e => e,
        })?;
        if ep.target == "/" {
            ep.target = "/onvif/device_service".to_string();
        }
        Ok(ep)
    }

    /// The endpoint as a URL, for logs and `wsa:To` (it never carries credentials).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.target)
    }

    /// The host, as written in messages.
    pub fn host(&self) -> String {
        self.host.to_string()
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn unreachable(&self, why: impl std::fmt::Display) -> OnvifError {
        OnvifError::Unreachable {
            host: self.host.to_string(),
            port: self.port,
            why: why.to_string(),
        }
    }
}

/// A camera's ONVIF client: its device service, the credentials and the clock offset.
pub struct Client {
    /// The device service (`/onvif/device_service`).
    device: Endpoint,
    /// ONVIF user name; empty for a camera without authentication.
    user: String,
    /// ONVIF password; a secret, never logged or put in an error.
    password: String,
    /// The box's clock: `Created` is its wall time plus `offset_us`.
    clock: Arc<dyn Clock>,
    /// The camera's clock minus the box's, µs, from [`Client::sync_clock`].
    offset_us: AtomicI64,
    /// Longest time one ordinary request may take.
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("device", &self.device.url())
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// SOAP 1.2 and the WS namespaces every request declares.
const ENVELOPE_NS: &str = concat!(
    r#"xmlns:s="http://www.w3.org/2003/05/soap-envelope" "#,
    r#"xmlns:wsa="http://www.w3.org/2005/08/addressing" "#,
    r#"xmlns:tds="http://www.onvif.org/ver10/device/wsdl" "#,
    r#"xmlns:trt="http://www.onvif.org/ver10/media/wsdl" "#,
    r#"xmlns:tev="http://www.onvif.org/ver10/events/wsdl" "#,
    r#"xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" "#,
    r#"xmlns:tt="http://www.onvif.org/ver10/schema""#
);

impl Client {
    /// A client for the camera whose device service is `device`.
    pub fn new(device: Endpoint, user: &str, password: &str, clock: Arc<dyn Clock>) -> Client {
        Client {
            device,
            user: user.to_string(),
            password: password.to_string(),
            clock,
            offset_us: AtomicI64::new(0),
            timeout: Duration::from_secs(10),
        }
    }

    /// The device service endpoint.
    pub fn device(&self) -> &Endpoint {
        &self.device
    }

    /// Reads the camera's clock (`GetSystemDateAndTime`, which needs no credentials) and
    /// signs later requests in its time. A camera that gives no usable UTC time leaves the
    /// box's own time in use; one that does not answer at all is an error.
    pub async fn sync_clock(&self) -> Result<(), OnvifError> {
        let before = self.clock.wall_us();
        let doc = self
            .call_unsigned(
                &self.device,
                "GetSystemDateAndTime",
                "<tds:GetSystemDateAndTime/>",
            )
            .await?;
        let after = self.clock.wall_us();
        let parsed = roxmltree::Document::parse(&doc).ok();
        let camera = parsed
            .as_ref()
            .and_then(|d| find(d.root(), "UTCDateTime"))
            .and_then(utc_datetime_us);
        if let Some(camera) = camera {
            let offset = clock_offset_us(camera, before + (after - before) / 2);
            self.offset_us.store(offset, Ordering::Relaxed);
            tracing::debug!(camera = %self.device.url(), offset_s = offset / 1_000_000, "ONVIF camera clock read");
        }
        Ok(())
    }

    /// The camera's clock minus the box's, µs.
    pub fn clock_offset_us(&self) -> i64 {
        self.offset_us.load(Ordering::Relaxed)
    }

    /// Sends `body` (one element, the request) to `to` as `action` with the security header
    /// and the WS-Addressing `Action`/`To` headers; returns the answer's XML text after
    /// checking it is no fault. `timeout` bounds the whole exchange.
    pub async fn call(
        &self,
        to: &Endpoint,
        action: &'static str,
        action_uri: &str,
        body: &str,
        timeout: Option<Duration>,
    ) -> Result<String, OnvifError> {
        let header = format!(
            "{}<wsa:Action>{}</wsa:Action><wsa:To>{}</wsa:To>",
            self.security(),
            escape(action_uri),
            escape(&to.url())
        );
        self.exchange(to, action, &header, body, timeout.unwrap_or(self.timeout))
            .await
    }

    /// Like [`Client::call`] without the WS-Addressing headers.
    pub async fn call_simple(
        &self,
        to: &Endpoint,
        action: &'static str,
        body: &str,
    ) -> Result<String, OnvifError> {
        self.exchange(to, action, &self.security(), body, self.timeout)
            .await
    }

    async fn call_unsigned(
        &self,
        to: &Endpoint,
        action: &'static str,
        body: &str,
    ) -> Result<String, OnvifError> {
        self.exchange(to, action, "", body, self.timeout).await
    }

    /// The `wsse:Security` header, or nothing for a camera without a user.
    fn security(&self) -> String {
        if self.user.is_empty() {
            return String::new();
        }
        let mut nonce = [0u8; 16];
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).is_err() {
            // The kernel's random source failing leaves a weaker, still unique nonce.
            nonce[..8].copy_from_slice(&fastrand::u64(..).to_le_bytes());
            nonce[8..].copy_from_slice(&self.clock.mono_ns().to_le_bytes());
        }
        let created = created_text(self.clock.wall_us() + self.clock_offset_us());
        let digest = password_digest(&nonce, &created, &self.password);
        format!(
            concat!(
                r#"<wsse:Security s:mustUnderstand="1" "#,
                r#"xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" "#,
                r#"xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">"#,
                "<wsse:UsernameToken><wsse:Username>{}</wsse:Username>",
                r#"<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">{}</wsse:Password>"#,
                r#"<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">{}</wsse:Nonce>"#,
                "<wsu:Created>{}</wsu:Created></wsse:UsernameToken></wsse:Security>"
            ),
            escape(&self.user),
            digest,
            B64.encode(nonce),
            created
        )
    }

    async fn exchange(
        &self,
        to: &Endpoint,
        action: &'static str,
        header: &str,
        body: &str,
        timeout: Duration,
    ) -> Result<String, OnvifError> {
        let envelope = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope {ENVELOPE_NS}><s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#
        );
        let (status, text) = match tokio::time::timeout(timeout, post(to, envelope)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(to.unreachable(format!("no answer within {} s", timeout.as_secs())));
            }
        };
        check_answer(action, status, text)
    }
}

/// Turns an HTTP status and body into the answer, a fault, or an error.
fn check_answer(action: &'static str, status: u16, text: String) -> Result<String, OnvifError> {
    let doc = match roxmltree::Document::parse(&text) {
        Ok(doc) => doc,
        Err(e) if status == 401 => {
            let _ = e;
            return Err(OnvifError::Unauthorized);
        }
        Err(e) => {
            return Err(OnvifError::BadAnswer {
                action,
                why: format!("HTTP status {status}, not XML ({e})"),
            });
        }
    };
    if let Some(fault) = find(doc.root(), "Fault") {
        let codes: Vec<String> = super::xml::find_all(fault, "Value")
            .filter_map(|n| n.text())
            .map(|t| t.trim().to_string())
            .collect();
        let auth = codes
            .iter()
            .any(|c| c.ends_with("NotAuthorized") || c.ends_with("FailedAuthentication"));
        if auth || status == 401 {
            return Err(OnvifError::Unauthorized);
        }
        let reason = text_of_reason(fault).unwrap_or_else(|| codes.join(" / "));
        return Err(OnvifError::Fault { action, reason });
    }
    if status == 401 {
        return Err(OnvifError::Unauthorized);
    }
    if !(200..300).contains(&status) {
        return Err(OnvifError::BadAnswer {
            action,
            why: format!("HTTP status {status}"),
        });
    }
    if find(doc.root(), "Body").is_none() {
        return Err(OnvifError::BadAnswer {
            action,
            why: "no SOAP body".into(),
        });
    }
    Ok(text)
}

fn text_of_reason(fault: roxmltree::Node<'_, '_>) -> Option<String> {
    find(fault, "Reason").and_then(|r| text(r, "Text"))
}

/// One POST on a fresh HTTP/1 connection; the status and the body as text.
async fn post(to: &Endpoint, envelope: String) -> Result<(u16, String), OnvifError> {
    let tcp = match &to.host {
        url::Host::Domain(d) => TcpStream::connect((d.as_str(), to.port)).await,
        url::Host::Ipv4(a) => TcpStream::connect((*a, to.port)).await,
        url::Host::Ipv6(a) => TcpStream::connect((*a, to.port)).await,
    }
    .map_err(|e| to.unreachable(e))?;
    let _ = tcp.set_nodelay(true);
    let req = hyper::Request::post(to.target.as_str())
        .header(HOST, to.authority.as_str())
        .header(CONTENT_TYPE, "application/soap+xml; charset=utf-8")
        .header(USER_AGENT, concat!("edgecam/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::from(envelope)))
        .map_err(|e| to.unreachable(format!("cannot build the request: {e}")))?;
    let answer = if to.tls {
        let tls_error = |why: String| OnvifError::Tls {
            host: to.host.to_string(),
            why,
        };
        let name = match &to.host {
            url::Host::Domain(d) => rustls::pki_types::ServerName::try_from(d.clone())
                .map_err(|e| tls_error(e.to_string()))?,
            url::Host::Ipv4(a) => rustls::pki_types::ServerName::IpAddress((*a).into()),
            url::Host::Ipv6(a) => rustls::pki_types::ServerName::IpAddress((*a).into()),
        };
        let stream = super::tls::connector()
            .map_err(tls_error)?
            .connect(name, tcp)
            .await
            .map_err(|e| tls_error(e.to_string()))?;
        crate::http1::exchange(TokioIo::new(stream), req, MAX_ANSWER).await
    } else {
        crate::http1::exchange(TokioIo::new(tcp), req, MAX_ANSWER).await
    };
    let (status, body) = answer.map_err(|e| to.unreachable(e))?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// `base64(sha1(nonce + created + password))`, the WS-Security `PasswordDigest`.
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(nonce);
    ctx.update(created.as_bytes());
    ctx.update(password.as_bytes());
    B64.encode(ctx.finish())
}

/// `Created` for wall time `us`: UTC to the second, `2026-12-08T00:10:00Z`.
pub fn created_text(us: i64) -> String {
    let t = jiff::Timestamp::from_microsecond(us).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The camera's clock minus the box's, when the camera read `camera_us` at the box's `box_us`.
pub fn clock_offset_us(camera_us: i64, box_us: i64) -> i64 {
    camera_us - box_us
}

/// An ONVIF `tt:DateTime` (`Date` Year/Month/Day, `Time` Hour/Minute/Second) as µs.
fn utc_datetime_us(node: roxmltree::Node<'_, '_>) -> Option<i64> {
    let num = |name: &str| text(node, name).and_then(|t| t.parse::<i64>().ok());
    let d = jiff::civil::date(
        i16::try_from(num("Year")?).ok()?,
        i8::try_from(num("Month")?).ok()?,
        i8::try_from(num("Day")?).ok()?,
    );
    let dt = d.at(
        i8::try_from(num("Hour")?).ok()?,
        i8::try_from(num("Minute")?).ok()?,
        i8::try_from(num("Second")?).ok()?,
        0,
    );
    let ts = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(ts.as_microsecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_the_ws_security_example() {
        // The OASIS UsernameToken profile's formula, checked against Python's
        // base64(sha1(...)) for these values.
        let nonce = B64.decode("LKqI6G/AikKCQrN0zqZFlg==").unwrap();
        let d = password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword");
        assert_eq!(d, "tuOSpGlFlIXsozq4HFNeeGeFLEI=");
    }

    #[test]
    fn created_is_utc_to_the_second() {
        assert_eq!(created_text(1_796_688_000_500_000), "2026-12-08T00:00:00Z");
    }

    #[test]
    fn reads_the_cameras_utc_clock() {
        let doc = roxmltree::Document::parse(
            "<tt:UTCDateTime xmlns:tt=\"urn:x\"><tt:Time><tt:Hour>1</tt:Hour><tt:Minute>2</tt:Minute>\
             <tt:Second>3</tt:Second></tt:Time><tt:Date><tt:Year>2026</tt:Year><tt:Month>12</tt:Month>\
             <tt:Day>8</tt:Day></tt:Date></tt:UTCDateTime>",
        )
        .unwrap();
        let us = utc_datetime_us(doc.root_element()).unwrap();
        assert_eq!(created_text(us), "2026-12-08T01:02:03Z");
    }

    #[test]
    fn device_addresses_as_installers_write_them() {
        let e = Endpoint::device("192.168.1.20").unwrap();
        assert_eq!(e.url(), "http://192.168.1.20/onvif/device_service");
        let e = Endpoint::device("cam.local:8080").unwrap();
        assert_eq!(e.url(), "http://cam.local:8080/onvif/device_service");
        assert_eq!(e.port(), 8080);
        let e = Endpoint::device("http://10.0.0.5:81/onvif/dev").unwrap();
        assert_eq!(e.url(), "http://10.0.0.5:81/onvif/dev");
        assert!(matches!(
            Endpoint::device("admin:pw@10.0.0.5"),
            Err(OnvifError::BadAddress(_))
        ));
        let tls = Endpoint::device("https://10.0.0.5").unwrap();
        assert_eq!(
            (tls.port(), tls.url().as_str()),
            (443, "https://10.0.0.5/onvif/device_service")
        );
    }

    #[test]
    fn faults_name_the_problem() {
        let fault = |sub: &str| {
            format!(
                r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>{sub}</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">Nope</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>"#
            )
        };
        assert_eq!(
            check_answer("X", 400, fault("ter:NotAuthorized")),
            Err(OnvifError::Unauthorized)
        );
        assert_eq!(
            check_answer("X", 400, fault("ter:InvalidArgVal")),
            Err(OnvifError::Fault {
                action: "X",
                reason: "Nope".into()
            })
        );
        assert_eq!(
            check_answer("X", 401, "Unauthorized".into()),
            Err(OnvifError::Unauthorized)
        );
    }
}
