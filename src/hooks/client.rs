//! One HTTP(S) POST per attempt on hyper's HTTP/1 client connection, with rustls for
//! `https://`. A fresh connection each time: events are rare, and a dead keep-alive
//! connection would only cost a failed attempt. The whole attempt (connect, TLS, request,
//! answer) runs under one timeout, and dropping it closes everything.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use super::retry::AttemptError;
use crate::config::WebhookConfig;

/// Debian's bundle of the CA certificates (package `ca-certificates`).
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where and how one webhook is posted.
pub(crate) struct Poster {
    /// Host name or address to connect to (no brackets around IPv6).
    host: url::Host<String>,
    /// TCP port.
    port: u16,
    /// `Host` header value (`host[:port]`).
    authority: String,
    /// Request target: path and query.
    target: String,
    /// Headers besides `Host` and `Content-Type`: the secrets (bearer token, own header).
    headers: Vec<(HeaderName, HeaderValue)>,
    /// TLS for `https://`, `None` for plain HTTP.
    tls: Option<tokio_rustls::TlsConnector>,
    /// Longest time one attempt may take.
    timeout: Duration,
}

impl Poster {
    /// A poster for a validated `cfg`; `Err` says what is wrong (bad URL, no CA bundle).
    pub(crate) fn new(cfg: &WebhookConfig) -> Result<Poster, String> {
        let url = url::Url::parse(&cfg.url).map_err(|e| format!("invalid URL: {e}"))?;
        let host = url.host().ok_or("the URL has no host")?.to_owned();
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let mut headers = Vec::new();
        if let Some(t) = &cfg.bearer_token {
            let v = HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| "the bearer token is not printable text")?;
            headers.push((AUTHORIZATION, sensitive(v)));
        }
        if let Some(h) = &cfg.header {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| "the header name is not valid")?;
            let v = HeaderValue::from_str(&h.value).map_err(|_| "the header value is not text")?;
            headers.push((name, sensitive(v)));
        }
        let tls = match url.scheme() {
            "https" => Some(connector()?),
            _ => None,
        };
        Ok(Poster {
            host,
            port,
            authority,
            target,
            headers,
            tls,
            timeout: Duration::from_millis(cfg.timeout_ms),
        })
    }

    /// One attempt: POSTs `body` (JSON) and waits for the status line.
    pub(crate) async fn post(&self, body: Bytes) -> Result<(), AttemptError> {
        match tokio::time::timeout(self.timeout, self.attempt(body)).await {
            Ok(r) => r,
            Err(_) => Err(AttemptError::Network(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    async fn attempt(&self, body: Bytes) -> Result<(), AttemptError> {
        let net =
            |what: &str, e: &dyn std::fmt::Display| AttemptError::Network(format!("{what}: {e}"));
        let tcp = match &self.host {
            url::Host::Domain(d) => TcpStream::connect((d.as_str(), self.port)).await,
            url::Host::Ipv4(a) => TcpStream::connect(SocketAddr::from((*a, self.port))).await,
            url::Host::Ipv6(a) => TcpStream::connect(SocketAddr::from((*a, self.port))).await,
        }
        .map_err(|e| net("cannot connect", &e))?;
        let _ = tcp.set_nodelay(true);
        let req = self.request(body)?;
        let status = match &self.tls {
            None => send(TokioIo::new(tcp), req).await?,
            Some(tls) => {
                let name = match &self.host {
                    url::Host::Domain(d) => ServerName::try_from(d.clone())
                        .map_err(|e| net("not a valid TLS server name", &e))?,
                    url::Host::Ipv4(a) => ServerName::IpAddress((*a).into()),
                    url::Host::Ipv6(a) => ServerName::IpAddress((*a).into()),
                };
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| net("TLS handshake failed", &e))?;
                send(TokioIo::new(stream), req).await?
            }
        };
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(AttemptError::Status(status))
        }
    }

    fn request(&self, body: Bytes) -> Result<hyper::Request<Full<Bytes>>, AttemptError> {
        let mut req = hyper::Request::post(self.target.as_str())
            .header(HOST, self.authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("edgecam/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body))
            .map_err(|e| AttemptError::Network(format!("cannot build the request: {e}")))?;
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        Ok(req)
    }
}

/// Marks a header value as a secret (hyper then keeps it out of its own debug output).
fn sensitive(mut v: HeaderValue) -> HeaderValue {
    v.set_sensitive(true);
    v
}

/// Sends `req` on a new HTTP/1 connection over `io` and returns the answer's status.
async fn send<I>(io: I, req: hyper::Request<Full<Bytes>>) -> Result<u16, AttemptError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    crate::http1::exchange(io, req, 0)
        .await
        .map(|(status, _)| status)
        .map_err(|e| AttemptError::Network(e.to_string()))
}

/// The TLS connector, with the system's CA certificates (read once).
fn connector() -> Result<tokio_rustls::TlsConnector, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(CA_BUNDLE).map_err(|e| {
                format!(
                    "cannot read the CA certificates in {CA_BUNDLE} ({e}); install the \
                     Debian package ca-certificates"
                )
            })?;
            let (added, _) = roots.add_parsable_certificates(certs.flatten());
            if added == 0 {
                return Err(format!(
                    "no CA certificate in {CA_BUNDLE}; install the Debian package ca-certificates"
                ));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS set-up failed: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map(tokio_rustls::TlsConnector::from)
}
