//! One TCP connection through the relay, and the UDP flows its `SETUP`s ask for.
//!
//! Each direction is a pump (reads the socket, lets the RTSP framer rewrite `SETUP`
//! transports, queues the bytes) and a drain (sends them when due). A `SETUP` request with
//! `client_port=` gets a pair of relay ports facing the camera in its place; its answer's
//! `server_port=` gets a pair facing the daemon, and from then on each of RTP and RTCP is a
//! [`leg`]: datagrams from the camera to its camera-facing port go out of the daemon-facing
//! one to the daemon's port, and back.

use super::pipe::{Inlet, Link, Out, drain, pipe};
use super::rtsp::{Framer, cseq, method, status, transport_ports, with_transport_ports};
use super::{Control, Shared};
use socket2::SockRef;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Which way bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Daemon to camera: requests.
    Up,
    /// Camera to daemon: answers and media.
    Down,
}

/// Serves one accepted connection until either side closes, a write fails or the relay
/// resets it.
pub(super) async fn serve(client: TcpStream, shared: Arc<Shared>, index: u64) {
    let mut ctl = shared.ctl.subscribe();
    let resets = ctl.borrow_and_update().resets;
    let Ok(server) = TcpStream::connect(shared.opts.upstream).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let client_ip = client
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
    let (client, server) = (Arc::new(client), Arc::new(server));
    let seed = shared.opts.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let book = Arc::new(Mutex::new(Book {
        shared: Arc::clone(&shared),
        client_ip,
        pending: HashMap::new(),
        legs: JoinSet::new(),
        seed,
    }));
    let mut tasks = JoinSet::new();
    for (side, from, to, link) in [
        (Side::Up, &client, &server, &shared.up),
        (Side::Down, &server, &client, &shared.down),
    ] {
        let salt = if side == Side::Up { 1 } else { 2 };
        let (inlet, rx) = pipe(Arc::clone(link), seed ^ salt);
        tasks.spawn(pump(Arc::clone(from), inlet, side, Arc::clone(&book)));
        let out = TcpOut(Arc::clone(to));
        tasks.spawn(drain(rx, out, Arc::clone(link), false, ctl.clone()));
    }
    loop {
        tokio::select! {
            r = tasks.join_next() => match r {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(_) => break,
            },
            r = ctl.changed() => {
                if r.is_err() || ctl.borrow_and_update().resets != resets {
                    // SO_LINGER 0: closing sends a reset, not a FIN.
                    let _ = SockRef::from(&*client).set_linger(Some(Duration::ZERO));
                    let _ = SockRef::from(&*server).set_linger(Some(Duration::ZERO));
                    break;
                }
            }
        }
    }
    // Dropping the tasks and the book closes both sockets and every UDP flow.
}

/// Reads `from` until it closes, rewriting `SETUP` transports, and queues what it read.
async fn pump(
    from: Arc<TcpStream>,
    mut inlet: Inlet,
    side: Side,
    book: Arc<Mutex<Book>>,
) -> io::Result<()> {
    let mut framer = Framer::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        from.readable().await?;
        let n = match from.try_read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let data = framer.feed(&buf[..n], &mut |head: &str| {
            let mut b = book.lock().unwrap_or_else(PoisonError::into_inner);
            match side {
                Side::Up => b.request(head),
                Side::Down => b.answer(head),
            }
        });
        if !data.is_empty() && !inlet.send(data).await {
            return Ok(());
        }
    }
}

/// A drain's TCP destination.
struct TcpOut(Arc<TcpStream>);

impl Out for TcpOut {
    async fn put(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            self.0.writable().await?;
            match self.0.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn finish(&mut self) {
        let _ = SockRef::from(&*self.0).shutdown(Shutdown::Write);
    }
}

/// A drain's UDP destination. A failed send is a lost datagram, not the end of the flow.
struct UdpOut {
    /// The relay's socket it leaves from.
    sock: Arc<UdpSocket>,
    /// Where it goes.
    to: SocketAddr,
}

impl Out for UdpOut {
    async fn put(&mut self, data: &[u8]) -> io::Result<()> {
        let _ = self.sock.send_to(data, self.to).await;
        Ok(())
    }
}

/// Two UDP sockets on consecutive ports (RTP, RTCP) on 127.0.0.1.
struct Pair {
    /// Even or odd, whatever was free; RTCP is the next port.
    rtp: std::net::UdpSocket,
    /// `rtp`'s port + 1.
    rtcp: std::net::UdpSocket,
}

impl Pair {
    /// Finds two free consecutive ports.
    fn bind() -> io::Result<Pair> {
        let mut last = None;
        for _ in 0..50 {
            let rtp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            let port = rtp.local_addr()?.port();
            let Some(next) = port.checked_add(1) else {
                continue;
            };
            match std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, next)) {
                Ok(rtcp) => return Ok(Pair { rtp, rtcp }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no two consecutive free UDP ports")))
    }

    /// The RTP and RTCP ports.
    fn ports(&self) -> (u16, u16) {
        let p = self.rtp.local_addr().map_or(0, |a| a.port());
        (p, p.wrapping_add(1))
    }
}

/// A `SETUP` request seen, waiting for its answer.
struct Pending {
    /// The daemon's RTP and RTCP ports, from the request.
    client_ports: (u16, u16),
    /// The relay's ports facing the camera, put in the request instead.
    far: Pair,
}

/// The UDP side of one connection: `SETUP`s in flight and the flows they set up.
struct Book {
    /// The relay (links, events, counters).
    shared: Arc<Shared>,
    /// The daemon's address, where its ports are.
    client_ip: IpAddr,
    /// By `CSeq`.
    pending: HashMap<u32, Pending>,
    /// The flows; dropped with the connection.
    legs: JoinSet<()>,
    /// Seed of this connection's draws; each flow gets its own from it.
    seed: u64,
}

impl Book {
    /// A request head from the daemon: a UDP `SETUP` gets the relay's camera-facing ports.
    fn request(&mut self, head: &str) -> Option<String> {
        if method(head) != Some("SETUP") {
            return None;
        }
        let client_ports = transport_ports(head, "client_port")?;
        let cseq = cseq(head)?;
        let far = match Pair::bind() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("impair relay: no UDP ports for a SETUP ({e}); passed unchanged");
                return None;
            }
        };
        let edited = with_transport_ports(head, "client_port", far.ports());
        self.pending.insert(cseq, Pending { client_ports, far });
        Some(edited)
    }

    /// An answer head from the camera: the answer to a UDP `SETUP` gets the relay's
    /// daemon-facing ports, and the flows start.
    fn answer(&mut self, head: &str) -> Option<String> {
        status(head)?;
        let pending = self.pending.remove(&cseq(head)?)?;
        let server_ports = transport_ports(head, "server_port")?;
        let near = Pair::bind().ok()?;
        let edited = with_transport_ports(head, "server_port", near.ports());
        let edited = with_transport_ports(&edited, "client_port", pending.client_ports);
        let camera_ip = self.shared.opts.upstream.ip();
        let flows = [
            (
                near.rtp,
                pending.far.rtp,
                pending.client_ports.0,
                server_ports.0,
            ),
            (
                near.rtcp,
                pending.far.rtcp,
                pending.client_ports.1,
                server_ports.1,
            ),
        ];
        for (near, far, client_port, server_port) in flows {
            let (Ok(near), Ok(far)) = (to_tokio(near), to_tokio(far)) else {
                return None;
            };
            self.seed = self.seed.wrapping_add(0x100);
            self.shared.udp_flows.fetch_add(1, Ordering::Relaxed);
            self.legs.spawn(leg(
                Ends {
                    near,
                    far,
                    client: SocketAddr::new(self.client_ip, client_port),
                    camera: SocketAddr::new(camera_ip, server_port),
                },
                Arc::clone(&self.shared.down),
                Arc::clone(&self.shared.up),
                self.shared.ctl.subscribe(),
                self.seed,
            ));
        }
        Some(edited)
    }
}

/// A std socket made non-blocking and handed to tokio.
fn to_tokio(s: std::net::UdpSocket) -> io::Result<UdpSocket> {
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// The sockets and addresses of one UDP flow.
struct Ends {
    /// The relay's socket facing the daemon (the port in the rewritten `server_port=`).
    near: UdpSocket,
    /// The relay's socket facing the camera (the port in the rewritten `client_port=`).
    far: UdpSocket,
    /// The daemon's port.
    client: SocketAddr,
    /// The camera's port.
    camera: SocketAddr,
}

/// Relays one UDP flow both ways, impaired, until dropped.
async fn leg(ends: Ends, down: Arc<Link>, up: Arc<Link>, ctl: watch::Receiver<Control>, seed: u64) {
    let (near, far) = (Arc::new(ends.near), Arc::new(ends.far));
    let (mut to_daemon, down_rx) = pipe(Arc::clone(&down), seed);
    let (mut to_camera, up_rx) = pipe(Arc::clone(&up), seed ^ 1);
    let mut drains = JoinSet::new();
    let out = UdpOut {
        sock: Arc::clone(&near),
        to: ends.client,
    };
    drains.spawn(drain(down_rx, out, down, true, ctl.clone()));
    let out = UdpOut {
        sock: Arc::clone(&far),
        to: ends.camera,
    };
    drains.spawn(drain(up_rx, out, up, true, ctl));
    let (mut a, mut b) = (vec![0u8; 65_536], vec![0u8; 65_536]);
    loop {
        let got = tokio::select! {
            r = far.recv_from(&mut a) => r.map(|(n, _)| { to_daemon.offer(a[..n].to_vec()); }),
            r = near.recv_from(&mut b) => r.map(|(n, _)| { to_camera.offer(b[..n].to_vec()); }),
        };
        if got.is_err() {
            // An ICMP error reported on the socket; do not spin on it.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
