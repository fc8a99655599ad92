//! The web server's beacon. Its accept loop lives inside axum and cannot beat itself, so a
//! probe task asks the server for `GET /api/health` over loopback every few seconds and beats
//! only on a `200` answer: that proves the listener accepts, a worker serves requests and the
//! router answers, end to end.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::beacon::BeaconGuard;
use crate::clock::Clock;

/// Time between probes.
const PROBE_PERIOD: Duration = Duration::from_secs(2);

/// Longest one probe may take; a slower answer counts as none.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The request; `Connection: close` so the answer ends with the connection.
const REQUEST: &[u8] =
    b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nUser-Agent: edgecam-probe\r\n\r\n";

/// Where to reach a server listening on `addr` (a wildcard address becomes loopback).
pub fn probe_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Probes the server on `addr` every two seconds, beating `beacon` after each good answer.
pub fn spawn_web_probe(
    addr: SocketAddr,
    beacon: BeaconGuard,
    clock: Arc<dyn Clock>,
) -> JoinHandle<()> {
    let target = probe_addr(addr);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PROBE_PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match tokio::time::timeout(PROBE_TIMEOUT, probe(target)).await {
                Ok(Ok(())) => beacon.beat(clock.mono_ns()),
                Ok(Err(e)) => tracing::warn!(%target, error = %e, "web self-probe failed"),
                Err(_) => tracing::warn!(%target, "web self-probe timed out"),
            }
        }
    })
}

/// One `GET /api/health`; `Ok` only for a `200` status line.
async fn probe(target: SocketAddr) -> std::io::Result<()> {
    let mut tcp = TcpStream::connect(target).await?;
    tcp.write_all(REQUEST).await?;
    let mut head = [0u8; 16];
    let mut got = 0;
    while got < head.len() {
        let n = tcp.read(&mut head[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
    }
    if head[..got].starts_with(b"HTTP/1.1 200 ") {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "unexpected answer {:?}",
            String::from_utf8_lossy(&head[..got])
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_probed_on_loopback() {
        let a: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(probe_addr(a), "127.0.0.1:8080".parse().unwrap());
        let a: SocketAddr = "[::]:80".parse().unwrap();
        assert_eq!(probe_addr(a), "[::1]:80".parse().unwrap());
        let a: SocketAddr = "192.168.1.5:8080".parse().unwrap();
        assert_eq!(probe_addr(a), a);
    }

    #[tokio::test]
    async fn only_a_200_answer_counts() {
        use tokio::net::TcpListener;
        for (answer, ok) in [
            (&b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..], true),
            (&b"HTTP/1.1 503 Service Unavailable\r\n\r\n"[..], false),
            (&b""[..], false),
        ] {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(answer).await.unwrap();
            });
            assert_eq!(probe(addr).await.is_ok(), ok, "{answer:?}");
            server.await.unwrap();
        }
    }
}
