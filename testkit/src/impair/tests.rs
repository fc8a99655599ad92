//! The relay over real loopback sockets: bytes, events and the UDP rewrite. No timing is
//! asserted; deadlines are generous for a busy 2-core machine.

use super::*;
use std::net::UdpSocket as StdUdp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Long enough for anything here on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(20);

/// A TCP echo server on loopback; returns its address.
async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A relay with `imp` in front of an echo server, and a connection through it that has
/// echoed `n` bytes.
async fn echo_relay(imp: Impairment, n: usize) -> (Relay, TcpStream) {
    let relay = Relay::spawn(RelayOpts::both(echo_server().await, imp))
        .await
        .unwrap();
    let mut s = TcpStream::connect(relay.addr()).await.unwrap();
    within("echo", round_trip(&mut s, n)).await;
    (relay, s)
}

/// Waits until the peer closes or resets `s`.
async fn closed(what: &str, s: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let r = within(what, s.read(&mut buf)).await;
    assert!(matches!(r, Ok(0) | Err(_)), "{what}: {r:?}");
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {DEADLINE:?}"))
}

/// Writes `n` numbered bytes in small pieces and reads them back.
async fn round_trip(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let sent: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = s.split();
    let write = async {
        for piece in sent.chunks(997) {
            w.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let mut got = vec![0u8; n];
    let (_, read) = tokio::join!(write, r.read_exact(&mut got));
    read.unwrap();
    assert_eq!(got, sent, "bytes intact and in order");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_through_jitter_and_a_cap_keeps_every_byte_in_order() {
    let imp = Impairment {
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(15),
        rate_bps: Some(8_000_000),
        ..Impairment::default()
    };
    let (relay, _s) = echo_relay(imp, 200_000).await;
    let st = relay.stats();
    assert_eq!(st.connections, 1);
    assert_eq!((st.tcp_bytes_up, st.tcp_bytes_down), (200_000, 200_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_holds_the_bytes_and_keeps_the_connection() {
    let (relay, mut s) = echo_relay(Impairment::default(), 1000).await;
    relay.stall(Duration::from_millis(500));
    within("echo after the stall", round_trip(&mut s, 1000)).await;
    assert_eq!(relay.stats().connections, 1, "the same connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_closes_the_connection_and_new_ones_work() {
    let (relay, mut s) = echo_relay(Impairment::default(), 100).await;
    relay.reset();
    closed("the reset", &mut s).await;
    let mut s = TcpStream::connect(relay.addr()).await.unwrap();
    within("echo on a new connection", round_trip(&mut s, 100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_refuses_connections_until_it_ends() {
    let (relay, mut s) = echo_relay(Impairment::default(), 100).await;
    relay.outage(Duration::from_secs(2));
    closed("the outage's reset", &mut s).await;
    // Refused at least once while it lasts (the first try can race the listener's close).
    let mut refused = false;
    let ok = within("the relay back", async {
        loop {
            match TcpStream::connect(relay.addr()).await {
                Ok(s) if refused => return s,
                Ok(_) => {}
                // Refused, or reset when the try raced the listener's close.
                Err(_) => refused = true,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let mut s = ok;
    within("echo after the outage", round_trip(&mut s, 100)).await;
    assert!(relay.returned_at().is_some());
}

#[test]
fn the_relay_forwards_to_loopback_only() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let far = SocketAddr::from(([192, 0, 2, 1], 554));
    let e = rt
        .block_on(Relay::spawn(RelayOpts::both(far, Impairment::default())))
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}

/// Two consecutive UDP ports for a test endpoint.
fn udp_pair() -> (UdpSocket, UdpSocket) {
    let p = conn_pair();
    let make = |s: StdUdp| {
        s.set_nonblocking(true).unwrap();
        UdpSocket::from_std(s).unwrap()
    };
    (make(p.0), make(p.1))
}

fn conn_pair() -> (StdUdp, StdUdp) {
    loop {
        let a = StdUdp::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if let Ok(b) = StdUdp::bind(("127.0.0.1", port.wrapping_add(1))) {
            return (a, b);
        }
    }
}

fn port(s: &UdpSocket) -> u16 {
    s.local_addr().unwrap().port()
}

/// Reads one RTSP head (up to the blank line) from `s`.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A camera that answers one UDP SETUP and then sends `n` numbered RTP datagrams to the port
/// the request named; it reports the request it saw and the first RTCP datagram it gets.
async fn fake_udp_camera(n: u32) -> (SocketAddr, tokio::sync::mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let req = read_head(&mut s).await;
        let (rtp, rtcp) = udp_pair();
        let (c_rtp, _) = rtsp::transport_ports(&req, "client_port").unwrap();
        let answer = format!(
            "RTSP/1.0 200 OK\r\nCSeq: 7\r\nTransport: RTP/AVP;unicast;client_port={}-{};\
             server_port={}-{};ssrc=00000001\r\nSession: s1\r\n\r\n",
            c_rtp,
            c_rtp + 1,
            port(&rtp),
            port(&rtcp)
        );
        s.write_all(answer.as_bytes()).await.unwrap();
        tx.send(req).await.unwrap();
        for i in 0..n {
            rtp.send_to(&i.to_be_bytes(), ("127.0.0.1", c_rtp))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut b = [0u8; 64];
        let (len, _) = rtcp.recv_from(&mut b).await.unwrap();
        tx.send(String::from_utf8_lossy(&b[..len]).into_owned())
            .await
            .unwrap();
        // Keep the session open until the test ends.
        let _ = s.read(&mut b).await;
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_setup_ports_are_rewritten_and_both_flows_relayed() {
    let (camera, mut seen) = fake_udp_camera(100).await;
    let imp = Impairment {
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(4),
        ..Impairment::default()
    };
    let relay = Relay::spawn(RelayOpts::both(camera, imp)).await.unwrap();
    let (rtp, rtcp) = udp_pair();
    let mut s = TcpStream::connect(relay.addr()).await.unwrap();
    let setup = format!(
        "SETUP rtsp://{}/cam0/stream=0 RTSP/1.0\r\nCSeq: 7\r\n\
         Transport: RTP/AVP/UDP;unicast;client_port={}-{}\r\n\r\n",
        relay.addr(),
        port(&rtp),
        port(&rtcp)
    );
    s.write_all(setup.as_bytes()).await.unwrap();
    let answer = within("the SETUP answer", read_head(&mut s)).await;
    let req = within("the camera's view", seen.recv()).await.unwrap();
    let asked = rtsp::transport_ports(&req, "client_port").unwrap();
    assert_ne!(
        asked.0,
        port(&rtp),
        "the camera sees the relay's ports: {req}"
    );
    assert_eq!(
        rtsp::transport_ports(&answer, "client_port"),
        Some((port(&rtp), port(&rtcp))),
        "the daemon sees its own ports back: {answer}"
    );
    let (s_rtp, s_rtcp) = rtsp::transport_ports(&answer, "server_port").unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 64];
    while got.len() < 100 {
        let (len, from) = within("RTP", rtp.recv_from(&mut b)).await.unwrap();
        assert_eq!(
            from.port(),
            s_rtp,
            "RTP comes from the rewritten server port"
        );
        got.push(u32::from_be_bytes(b[..len].try_into().unwrap()));
    }
    assert_eq!(got, (0..100).collect::<Vec<_>>(), "in order, none lost");
    rtcp.send_to(b"receiver report", ("127.0.0.1", s_rtcp))
        .await
        .unwrap();
    let report = within("RTCP to the camera", seen.recv()).await.unwrap();
    assert_eq!(report, "receiver report");
    let st = relay.stats();
    assert_eq!(
        (st.udp_flows, st.datagrams_down, st.datagrams_up),
        (2, 100, 1)
    );
}

#[test]
fn a_relay_on_its_own_thread_serves_blocking_callers() {
    use std::io::{Read, Write};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream = rt.block_on(echo_server());
    let relay = Relay::start(RelayOpts::both(upstream, Impairment::default())).unwrap();
    let mut s = std::net::TcpStream::connect(relay.addr()).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    drop(relay);
    // The relay is gone: its connections are closed (not merely silent until the timeout).
    let r = s.read(&mut b);
    let timed_out = |e: &std::io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    };
    assert!(
        matches!(&r, Ok(0)) || r.as_ref().is_err_and(|e| !timed_out(e)),
        "{r:?}"
    );
}
