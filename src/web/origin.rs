//! Which requests may change something: the `Host` and `Origin` checks against DNS rebinding
//! and cross-site requests.
//!
//! A state-changing request (anything but GET, HEAD and OPTIONS) and every WebSocket upgrade
//! must be addressed to a name of this box, and a browser's `Origin` must be this box, scheme
//! included. The box's names are not taken from the request (an attacker's page at
//! `http://evil.example` that resolves to the box sends `Host: evil.example`): they are
//! `localhost` and the loopback addresses, the address the connection reached the box on, the
//! listen address, the hostname and `<hostname>.local`, and `web.hostnames` from the config.
//! Requests without `Origin` come from programs, not browsers, and pass the Origin check.

use std::net::{IpAddr, SocketAddr};

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::serve::{LocalAddr, Scheme};

/// The names this box answers to, besides its addresses (collected at start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoxNames {
    /// Lowercase host names without port: `localhost`, the hostname, `<hostname>.local`, the
    /// listen address when it is a specific one.
    names: Vec<String>,
}

impl BoxNames {
    /// The names of this machine: `localhost`, the kernel's hostname and its `.local` form,
    /// and the IP of `listen` when it is not a wildcard.
    pub fn of_this_machine(listen: &str) -> BoxNames {
        BoxNames::new(&hostname(), listen)
    }

    /// The names for `hostname` (empty when unknown) and `listen`.
    pub fn new(hostname: &str, listen: &str) -> BoxNames {
        let mut names = vec!["localhost".to_string()];
        if !hostname.is_empty() && hostname != "localhost" {
            names.push(hostname.to_string());
            if !hostname.ends_with(".local") {
                names.push(format!("{hostname}.local"));
            }
        }
        if let Ok(addr) = listen.parse::<SocketAddr>()
            && !addr.ip().is_unspecified()
        {
            names.push(addr.ip().to_string());
        }
        BoxNames { names }
    }

    /// Whether `host` (a `Host` header's value or an `Origin`'s host, port allowed) names this
    /// box, for a connection that reached it on `local`; `extra` is `web.hostnames`.
    pub fn allows(&self, host: &str, local: Option<SocketAddr>, extra: &[String]) -> bool {
        let Some(name) = host_name(host) else {
            return false;
        };
        if let Ok(ip) = name.parse::<IpAddr>() {
            return ip.is_loopback()
                || local.is_some_and(|l| same_ip(l.ip(), ip))
                || self.names.iter().any(|n| n.parse::<IpAddr>() == Ok(ip));
        }
        self.names.contains(&name) || extra.iter().any(|e| e.eq_ignore_ascii_case(&name))
    }
}

/// The kernel's hostname, lowercase; empty when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The host part of `host[:port]` or `[v6][:port]`, lowercase, without a trailing dot.
fn host_name(host: &str) -> Option<String> {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']')?.0
    } else {
        match host.rsplit_once(':') {
            // A bare IPv6 address has several colons and no port.
            Some((h, port)) if !h.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => h,
            Some(_) if host.parse::<IpAddr>().is_ok() => host,
            Some(_) => return None,
            None => host,
        }
    };
    let name = name.trim_end_matches('.');
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// Equal addresses, an IPv4-mapped IPv6 address counting as its IPv4 address.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// Why a request was refused, or `None` when it may go on.
///
/// `scheme` is the one the request came in with (`http`, or `https` on the TLS listener): an
/// `Origin` with another scheme is another site.
pub fn check(
    method: &Method,
    headers: &HeaderMap,
    (local, scheme): (Option<SocketAddr>, &str),
    names: &BoxNames,
    extra: &[String],
) -> Option<&'static str> {
    let upgrade = headers.contains_key(header::UPGRADE);
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) && !upgrade {
        return None;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let Some(host) = host.filter(|h| names.allows(h, local, extra)) else {
        return Some(
            "this box is not known by that name: open it by its address or hostname, or add \
             the name to web.hostnames",
        );
    };
    // Programs send no Origin; a browser's must be this box, scheme included.
    let same = headers.get(header::ORIGIN).is_none_or(|origin| {
        origin.to_str().ok().is_some_and(|o| {
            o.strip_prefix(scheme)
                .and_then(|r| r.strip_prefix("://"))
                .is_some_and(|r| r.trim_end_matches('/').eq_ignore_ascii_case(host))
        })
    });
    (!same).then_some("request from a foreign origin")
}

/// Middleware: refuses (403) a state-changing request or a WebSocket upgrade that [`check`]
/// does not pass.
pub async fn guard(
    axum::extract::State(st): axum::extract::State<std::sync::Arc<super::AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let local = req.extensions().get::<LocalAddr>().map(|l| l.0);
    let scheme = req.extensions().get::<Scheme>().map_or("http", |s| s.0);
    let refused = {
        let status = st.status();
        check(
            req.method(),
            req.headers(),
            (local, scheme),
            &st.names,
            &status.config.web.hostnames,
        )
    };
    if let Some(why) = refused {
        tracing::warn!(method = %req.method(), path = %req.uri().path(), why, "request refused");
        return ApiError::forbidden(why).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::test_headers as headers;

    fn local() -> Option<SocketAddr> {
        Some("192.168.1.5:8080".parse().unwrap())
    }

    fn post(pairs: &[(header::HeaderName, &str)]) -> Option<&'static str> {
        let names = BoxNames::new("edgebox", "0.0.0.0:8080");
        check(
            &Method::POST,
            &headers(pairs),
            (local(), "http"),
            &names,
            &["cams.example.lan".into()],
        )
    }

    #[test]
    fn on_the_https_listener_the_origin_is_https() {
        let names = BoxNames::new("edgebox", "0.0.0.0:8080");
        let h = |origin: &str| headers(&[(header::HOST, "edgebox:8443"), (header::ORIGIN, origin)]);
        let tls = (local(), "https");
        assert_eq!(
            check(&Method::POST, &h("https://edgebox:8443"), tls, &names, &[]),
            None
        );
        assert!(check(&Method::POST, &h("http://edgebox:8443"), tls, &names, &[]).is_some());
    }

    #[test]
    fn the_box_is_known_by_its_addresses_and_names() {
        for host in [
            "192.168.1.5:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "localhost:8080",
            "edgebox:8080",
            "EdgeBox.local:8080",
            "edgebox.local.",
            "cams.example.lan",
            "[::ffff:192.168.1.5]:8080",
        ] {
            assert_eq!(post(&[(header::HOST, host)]), None, "{host}");
        }
    }

    #[test]
    fn dns_rebinding_is_refused() {
        // The attacker's page: its own name in Host and Origin.
        assert!(
            post(&[
                (header::HOST, "evil.example"),
                (header::ORIGIN, "http://evil.example")
            ])
            .is_some()
        );
        assert!(
            post(&[(header::HOST, "192.168.1.9:8080")]).is_some(),
            "another address"
        );
        assert!(post(&[]).is_some(), "no Host");
        assert!(post(&[(header::HOST, "edgebox:8080:9")]).is_some());
    }

    #[test]
    fn origin_must_be_this_box_with_this_scheme() {
        let host = (header::HOST, "edgebox:8080");
        assert_eq!(
            post(&[host.clone(), (header::ORIGIN, "http://edgebox:8080")]),
            None
        );
        assert!(post(&[host.clone(), (header::ORIGIN, "https://edgebox:8080")]).is_some());
        assert!(post(&[host.clone(), (header::ORIGIN, "http://evil.example")]).is_some());
        assert!(post(&[host.clone(), (header::ORIGIN, "null")]).is_some());
        assert_eq!(post(&[host]), None, "programs send no Origin");
    }

    #[test]
    fn reads_pass_but_websocket_upgrades_are_checked() {
        let names = BoxNames::new("edgebox", "0.0.0.0:8080");
        let evil = headers(&[(header::HOST, "evil.example")]);
        assert_eq!(
            check(&Method::GET, &evil, (local(), "http"), &names, &[]),
            None
        );
        let mut upgrade = evil.clone();
        upgrade.insert(
            header::UPGRADE,
            axum::http::HeaderValue::from_static("websocket"),
        );
        assert!(check(&Method::GET, &upgrade, (local(), "http"), &names, &[]).is_some());
    }
}
