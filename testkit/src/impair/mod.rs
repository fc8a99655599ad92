//! An impairing relay for RTSP: it sits between a camera (the GStreamer test server) and the
//! daemon, on loopback, and does to the traffic what a bad network does, so that tests and
//! `edgecam-bench impair` can measure how ingest copes. The host kernel here has no `netem`;
//! this needs none.
//!
//! - **TCP** (RTSP, and RTP interleaved in it: the common camera mode): every connection to
//!   the relay gets its own connection to the camera; each direction gets a delay with
//!   jitter that never reorders bytes (a late chunk holds back the ones behind it, as TCP's
//!   in-order delivery does), a bandwidth cap (a token bucket shared by every flow of that
//!   direction) and a bounded queue that pushes back on the sender when full.
//! - **UDP** (RTP/RTCP after a `SETUP` with `client_port=`): the relay rewrites the ports in
//!   the `Transport:` headers of the `SETUP` and its answer to ports of its own and relays
//!   each RTP and RTCP flow with the same delay, jitter and cap, plus random loss (seeded)
//!   and tail drop when the queue is full.
//! - **Events**, at any time: [`Relay::stall`] (forward nothing for a while, keep every
//!   connection: a frozen path), [`Relay::reset`] (close every connection with a TCP reset)
//!   and [`Relay::outage`] (reset, then refuse connections for a while: a camera that
//!   reboots).
//!
//! Time is tokio's, so the logic runs under paused time in unit tests.

mod conn;
mod pipe;
mod rtsp;
mod shape;

use pipe::Link;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// What the relay does to one direction of the traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    /// Mean one-way delay added to every chunk and datagram.
    pub delay: Duration,
    /// Each delay is drawn uniformly from `delay ± jitter` (never below zero); order is kept.
    pub jitter: Duration,
    /// UDP only: the share of datagrams dropped at random (0.02 = 2 %). A TCP stream loses
    /// nothing (its retransmissions would show as delay, which `delay`/`jitter` model).
    pub loss: f64,
    /// Bandwidth cap in bits per second, shared by every flow in this direction.
    pub rate_bps: Option<u64>,
    /// Bytes the cap lets through at full speed after an idle spell (the bucket's depth).
    pub burst_bytes: u64,
    /// Bytes that may wait in one flow's queue (a router's buffer). A full TCP queue stops
    /// the relay reading from the sender; a full UDP queue drops datagrams.
    pub queue_bytes: usize,
}

impl Default for Impairment {
    /// No impairment: no delay, no loss, no cap; 32 KiB burst and 256 KiB queue if a cap or
    /// a delay is set.
    fn default() -> Self {
        Impairment {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            rate_bps: None,
            burst_bytes: 32 * 1024,
            queue_bytes: 256 * 1024,
        }
    }
}

/// Where the relay forwards to and what it does to the traffic.
#[derive(Debug, Clone)]
pub struct RelayOpts {
    /// The camera's RTSP address; loopback only.
    pub upstream: SocketAddr,
    /// Camera to daemon: RTSP answers, interleaved RTP, RTP/RTCP datagrams from the camera.
    pub down: Impairment,
    /// Daemon to camera: requests, receiver reports.
    pub up: Impairment,
    /// Seed of the jitter and loss draws, so that a run can be repeated.
    pub seed: u64,
    /// Port to listen on (127.0.0.1); `None` picks a free one.
    pub port: Option<u16>,
}

impl RelayOpts {
    /// A relay to `upstream` that does the same to both directions.
    pub fn both(upstream: SocketAddr, imp: Impairment) -> Self {
        RelayOpts {
            upstream,
            down: imp.clone(),
            up: imp,
            seed: 1,
            port: None,
        }
    }
}

/// What went through the relay so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// UDP flows set up (one for RTP and one for RTCP per `SETUP`).
    pub udp_flows: u64,
    /// Control-connection bytes delivered, camera to daemon.
    pub tcp_bytes_down: u64,
    /// Control-connection bytes delivered, daemon to camera.
    pub tcp_bytes_up: u64,
    /// Datagrams delivered, camera to daemon.
    pub datagrams_down: u64,
    /// Datagrams delivered, daemon to camera.
    pub datagrams_up: u64,
    /// Datagrams discarded by the loss draw, both directions.
    pub datagrams_lost: u64,
    /// Datagrams dropped by a full queue, both directions.
    pub datagrams_overflowed: u64,
}

/// The relay's events, watched by every task.
#[derive(Debug, Clone, Default)]
pub(crate) struct Control {
    /// Bumped by every reset; a connection older than the current value closes.
    pub(crate) resets: u64,
    /// Nothing is forwarded before this.
    pub(crate) stall_until: Option<Instant>,
    /// No connection is accepted before this.
    pub(crate) outage_until: Option<Instant>,
}

/// What every task of one relay shares.
#[derive(Debug)]
struct Shared {
    /// The options.
    opts: RelayOpts,
    /// Where it listens.
    addr: SocketAddr,
    /// Camera to daemon.
    down: Arc<Link>,
    /// Daemon to camera.
    up: Arc<Link>,
    /// The events.
    ctl: watch::Sender<Control>,
    /// TCP connections accepted.
    connections: AtomicU64,
    /// UDP flows set up.
    udp_flows: AtomicU64,
    /// When the listener came back after the last outage.
    returned_at: Mutex<Option<Instant>>,
}

/// A running relay. Dropping it closes every connection and the listener.
#[derive(Debug)]
pub struct Relay {
    /// Shared with the tasks.
    shared: Arc<Shared>,
    /// The accept loop (on the caller's runtime, or on the relay's own thread).
    task: JoinHandle<()>,
    /// With [`Relay::start`]: ends the relay's thread, and the thread itself.
    thread: Option<(oneshot::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl Relay {
    /// Starts a relay on the current tokio runtime, listening on 127.0.0.1.
    pub async fn spawn(opts: RelayOpts) -> io::Result<Relay> {
        if !opts.upstream.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the relay forwards to loopback only, not {}", opts.upstream),
            ));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, opts.port.unwrap_or(0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            down: Arc::new(Link::new(opts.down.clone())),
            up: Arc::new(Link::new(opts.up.clone())),
            opts,
            addr,
            ctl: watch::Sender::new(Control::default()),
            connections: AtomicU64::new(0),
            udp_flows: AtomicU64::new(0),
            returned_at: Mutex::new(None),
        });
        let task = tokio::spawn(accept_loop(Arc::clone(&shared), listener));
        Ok(Relay {
            shared,
            task,
            thread: None,
        })
    }

    /// Starts a relay on a thread of its own (a one-thread runtime), for callers that have
    /// no runtime (the bench).
    pub fn start(opts: RelayOpts) -> io::Result<Relay> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut relay = rt.block_on(Relay::spawn(opts))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("impair-relay".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        relay.thread = Some((stop, thread));
        Ok(relay)
    }

    /// Where the relay listens.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `rtsp://127.0.0.1:PORT/camN` through the relay.
    pub fn url(&self, mount: u32) -> String {
        format!("rtsp://{}/cam{mount}", self.shared.addr)
    }

    /// Forwards nothing for `d` (in either direction, on every connection and flow, also
    /// those opened meanwhile); connections stay open and what was held goes on afterwards.
    pub fn stall(&self, d: Duration) {
        let until = Instant::now() + d;
        self.shared.ctl.send_modify(|c| c.stall_until = Some(until));
    }

    /// Closes every connection now with a TCP reset (both sides); new ones are accepted.
    pub fn reset(&self) {
        self.shared.ctl.send_modify(|c| c.resets += 1);
    }

    /// Resets every connection and refuses new ones (the port is closed) for `d`.
    pub fn outage(&self, d: Duration) {
        let until = Instant::now() + d;
        self.shared.ctl.send_modify(|c| {
            c.resets += 1;
            c.outage_until = Some(until);
        });
    }

    /// When the relay last listened again after an outage.
    pub fn returned_at(&self) -> Option<std::time::Instant> {
        let at = *self
            .shared
            .returned_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        at.map(Instant::into_std)
    }

    /// What went through so far.
    pub fn stats(&self) -> RelayStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (down, up) = (&self.shared.down, &self.shared.up);
        RelayStats {
            connections: get(&self.shared.connections),
            udp_flows: get(&self.shared.udp_flows),
            tcp_bytes_down: get(&down.tcp.bytes),
            tcp_bytes_up: get(&up.tcp.bytes),
            datagrams_down: get(&down.udp.items),
            datagrams_up: get(&up.udp.items),
            datagrams_lost: get(&down.udp.lost) + get(&up.udp.lost),
            datagrams_overflowed: get(&down.udp.overflowed) + get(&up.udp.overflowed),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
        if let Some((stop, thread)) = self.thread.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

/// Accepts connections and serves each; closes the listener during an outage and listens
/// again on the same port when it ends.
async fn accept_loop(shared: Arc<Shared>, first: TcpListener) {
    let mut conns = JoinSet::new();
    let mut ctl = shared.ctl.subscribe();
    let mut listener = Some(first);
    let mut index = 0u64;
    loop {
        let outage = ctl.borrow_and_update().outage_until;
        if let Some(until) = outage.filter(|t| *t > Instant::now()) {
            listener = None;
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                _ = ctl.changed() => {}
            }
            continue;
        }
        let Some(l) = &listener else {
            listener = Some(rebind(shared.addr).await);
            *shared
                .returned_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            continue;
        };
        tokio::select! {
            r = l.accept() => if let Ok((client, _)) = r {
                index += 1;
                shared.connections.fetch_add(1, Ordering::Relaxed);
                conns.spawn(conn::serve(client, Arc::clone(&shared), index));
            },
            _ = ctl.changed() => {}
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Listens on `addr` again, retrying while the port is briefly taken.
async fn rebind(addr: SocketAddr) -> TcpListener {
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) => {
                eprintln!("impair relay: cannot listen on {addr} again yet: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
