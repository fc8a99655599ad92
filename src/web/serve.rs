//! The accept loop: one hyper HTTP/1 connection per client, with the limits a box on a hostile
//! LAN needs and `axum::serve` does not set.
//!
//! - **Header-read timeout** ([`ServeLimits::header_read_timeout`]): a request's head must
//!   arrive within it, and a kept-alive connection waiting for its next request is closed
//!   after it, so slow-header ("slowloris") clients and idle sockets cannot pile up.
//! - **Connection cap** ([`ServeLimits::max_connections`]): beyond it a new connection is
//!   closed at once; the ones already open (a guard's live view, an NVR's MJPEG) go on.
//! - Each request carries the client's address (`ConnectInfo<SocketAddr>`), the address it
//!   reached the box on ([`LocalAddr`]) and its [`Scheme`], which the Host and Origin checks
//!   use.
//! - With a TLS acceptor the same loop serves HTTPS; the handshake must finish within the
//!   header-read timeout too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Kernel send buffer per connection. Small on purpose: frames should wait in the ring (where a
/// slow client skips to the newest keyframe), not in seconds of kernel buffer.
const SEND_BUFFER_BYTES: usize = 256 * 1024;
/// Pause after a failed accept (out of file descriptors): the loop must not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Limits of the accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// A request head must be complete within this; also the keep-alive idle timeout.
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}

/// The scheme a request came in with: `http`, or `https` on the TLS listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme(
    /// `http` or `https`.
    pub &'static str,
);

/// The address a request reached the box on (the accepted socket's local address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddr(
    /// The box's address and port as this client sees them.
    pub SocketAddr,
);

/// Serves `app` on `listener` until `stop` turns true, then gives open connections `grace`
/// to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(client = %remote, limit = limits.max_connections, "too many connections: closing the new one");
            continue;
        };
        let app = app.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            accept(tcp, remote, app, limits, tls, stop, grace).await;
            drop(slot);
        });
    }
    drop(listener);
    // Every connection gives its slot back when it ends.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(grace, slots.acquire_many(all)).await;
}

/// Sets up one accepted socket (and its TLS handshake, bounded by the header-read timeout),
/// then serves it.
async fn accept(
    tcp: TcpStream,
    remote: SocketAddr,
    app: Router,
    limits: ServeLimits,
    tls: Option<TlsAcceptor>,
    stop: watch::Receiver<bool>,
    grace: Duration,
) {
    // Best effort: a socket that refuses these options still works.
    let _ = tcp.set_nodelay(true);
    let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(SEND_BUFFER_BYTES);
    let peer = Peer {
        remote,
        local: tcp.local_addr().ok(),
    };
    let Some(tls) = tls else {
        return connection(tcp, peer, Scheme("http"), app, limits, stop, grace).await;
    };
    match tokio::time::timeout(limits.header_read_timeout, tls.accept(tcp)).await {
        Ok(Ok(stream)) => connection(stream, peer, Scheme("https"), app, limits, stop, grace).await,
        Ok(Err(e)) => tracing::debug!(client = %remote, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(client = %remote, "TLS handshake timed out"),
    }
}

/// Who is at either end of a connection.
#[derive(Debug, Clone, Copy)]
struct Peer {
    /// The client.
    remote: SocketAddr,
    /// The box's address the client reached.
    local: Option<SocketAddr>,
}

/// Serves one client's HTTP/1 connection (upgradable to a WebSocket) until it closes, or
/// until `stop`: then the request in progress may finish within `grace`.
async fn connection<I>(
    io: I,
    peer: Peer,
    scheme: Scheme,
    app: Router,
    limits: ServeLimits,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let remote = peer.remote;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer.remote));
        req.extensions_mut().insert(scheme);
        if let Some(local) = peer.local {
            req.extensions_mut().insert(LocalAddr(local));
        }
        app.clone().oneshot(req.map(Body::new))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Some(limits.header_read_timeout))
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = stop.changed() => None,
    };
    let result = match ended {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(grace, conn).await {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(client = %remote, error = %e, "connection ended with an error");
    }
}
