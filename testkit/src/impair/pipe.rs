//! One direction of one flow through the relay: an inlet that stamps each chunk with the time
//! it is due (delay and jitter) and queues it, and a drain task that sends it when due, paced
//! by the direction's bandwidth cap and held while the relay is stalled.
//!
//! The queue is bounded in bytes. A TCP inlet waits for room, so a slow link pushes back on
//! the sender as a real one does (the relay stops reading, the sender's socket fills); a UDP
//! inlet drops what does not fit (a router's tail drop) and what the loss draw discards.

use super::Control;
use super::shape::{DelayLine, TokenBucket, lost};
use crate::impair::Impairment;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;

/// Counters of what went through one direction, for one kind of flow.
#[derive(Debug, Default)]
pub struct Tally {
    /// Bytes delivered.
    pub bytes: AtomicU64,
    /// Chunks (TCP reads) or datagrams delivered.
    pub items: AtomicU64,
    /// Datagrams discarded by the loss draw.
    pub lost: AtomicU64,
    /// Datagrams dropped because the queue was full.
    pub overflowed: AtomicU64,
}

/// One direction of the relay (camera to daemon, or back): its impairment, the bandwidth cap
/// that every flow in that direction shares, and its counters.
#[derive(Debug)]
pub struct Link {
    /// What is done to the traffic.
    pub imp: Impairment,
    /// The cap's bucket, made at the first send; `None` without a cap.
    bucket: Mutex<Option<TokenBucket>>,
    /// The control connections' bytes.
    pub tcp: Tally,
    /// RTP and RTCP datagrams.
    pub udp: Tally,
}

impl Link {
    /// A direction with this impairment.
    pub fn new(imp: Impairment) -> Self {
        Link {
            imp,
            bucket: Mutex::new(None),
            tcp: Tally::default(),
            udp: Tally::default(),
        }
    }

    /// How long `n` bytes sent at `now` must wait for the cap (zero without one).
    fn pace(&self, now: Instant, n: usize) -> Duration {
        let Some(rate) = self.imp.rate_bps else {
            return Duration::ZERO;
        };
        let mut b = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        b.get_or_insert_with(|| TokenBucket::new(rate, self.imp.burst_bytes, now))
            .take(now, n)
    }

    fn tally(&self, udp: bool) -> &Tally {
        if udp { &self.udp } else { &self.tcp }
    }
}

/// A chunk in the queue.
#[derive(Debug)]
pub struct Chunk {
    /// The bytes (a TCP read, or one datagram).
    data: Vec<u8>,
    /// When it may leave.
    due: Instant,
    /// Its room in the queue, given back once it is sent.
    _room: OwnedSemaphorePermit,
}

/// What became of an offered datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued; it will be sent.
    Queued,
    /// Discarded by the loss draw.
    Lost,
    /// Dropped: the queue was full.
    Full,
    /// The drain is gone.
    Closed,
}

/// The sending end of a direction's queue.
#[derive(Debug)]
pub struct Inlet {
    /// Into the queue.
    tx: mpsc::UnboundedSender<Chunk>,
    /// Due times.
    line: DelayLine,
    /// Jitter and loss draws; seeded, so a run can be repeated.
    rng: fastrand::Rng,
    /// Room left in the queue, bytes.
    room: Arc<Semaphore>,
    /// The direction, for its loss rate and counters.
    link: Arc<Link>,
}

/// A queue for one direction of one flow: its inlet and the receiver [`drain`] takes.
pub fn pipe(link: Arc<Link>, seed: u64) -> (Inlet, mpsc::UnboundedReceiver<Chunk>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(link.imp.queue_bytes.max(1)));
    let inlet = Inlet {
        tx,
        line: DelayLine::new(link.imp.delay, link.imp.jitter),
        rng: fastrand::Rng::with_seed(seed),
        room,
        link,
    };
    (inlet, rx)
}

impl Inlet {
    /// The room `n` bytes take (a chunk larger than the whole queue takes all of it).
    fn room_for(&self, n: usize) -> u32 {
        n.clamp(1, self.link.imp.queue_bytes.max(1)) as u32
    }

    /// TCP: queues `data`, waiting while the queue is full. False once the drain is gone.
    pub async fn send(&mut self, data: Vec<u8>) -> bool {
        let want = self.room_for(data.len());
        let Ok(room) = Arc::clone(&self.room).acquire_many_owned(want).await else {
            return false;
        };
        let due = self.line.due(Instant::now(), self.rng.f64());
        self.tx
            .send(Chunk {
                data,
                due,
                _room: room,
            })
            .is_ok()
    }

    /// UDP: queues one datagram unless the loss draw discards it or the queue is full.
    pub fn offer(&mut self, data: Vec<u8>) -> Offer {
        if lost(self.link.imp.loss, self.rng.f64()) {
            self.link.udp.lost.fetch_add(1, Ordering::Relaxed);
            return Offer::Lost;
        }
        let want = self.room_for(data.len());
        let Ok(room) = Arc::clone(&self.room).try_acquire_many_owned(want) else {
            self.link.udp.overflowed.fetch_add(1, Ordering::Relaxed);
            return Offer::Full;
        };
        let due = self.line.due(Instant::now(), self.rng.f64());
        let chunk = Chunk {
            data,
            due,
            _room: room,
        };
        match self.tx.send(chunk) {
            Ok(()) => Offer::Queued,
            Err(_) => Offer::Closed,
        }
    }
}

/// Where a drain writes: a TCP socket or a UDP destination.
pub trait Out: Send {
    /// Sends all of `data`.
    fn put(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// The inlet is gone and the queue is empty (TCP: half-close the socket).
    fn finish(&mut self) {}
}

/// Sends what the inlet queues, each chunk when it is due, paced by the link's cap and held
/// while the relay is stalled; `udp` picks the counters. Ends once the inlet is dropped and
/// the queue is empty, or at the first write error.
pub async fn drain<O: Out>(
    mut rx: mpsc::UnboundedReceiver<Chunk>,
    mut out: O,
    link: Arc<Link>,
    udp: bool,
    mut ctl: watch::Receiver<Control>,
) -> io::Result<()> {
    while let Some(chunk) = rx.recv().await {
        tokio::time::sleep_until(chunk.due).await;
        unstalled(&mut ctl).await;
        let wait = link.pace(Instant::now(), chunk.data.len());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        out.put(&chunk.data).await?;
        let t = link.tally(udp);
        t.bytes
            .fetch_add(chunk.data.len() as u64, Ordering::Relaxed);
        t.items.fetch_add(1, Ordering::Relaxed);
    }
    out.finish();
    Ok(())
}

/// Returns once the relay is not stalled (at once if it is not).
pub async fn unstalled(ctl: &mut watch::Receiver<Control>) {
    loop {
        let until = ctl.borrow().stall_until;
        let Some(until) = until.filter(|t| *t > Instant::now()) else {
            return;
        };
        tokio::select! {
            () = tokio::time::sleep_until(until) => {}
            r = ctl.changed() => if r.is_err() {
                tokio::time::sleep_until(until).await;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write: when it happened and what it carried.
    type Write = (Instant, Vec<u8>);

    /// An output that records its writes.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Write>>>);

    impl Out for Recorder {
        fn put(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>> + Send {
            self.0.lock().unwrap().push((Instant::now(), data.to_vec()));
            std::future::ready(Ok(()))
        }
    }

    /// An output whose writes never finish (a peer that stopped reading).
    struct Stuck;

    impl Out for Stuck {
        fn put(&mut self, _: &[u8]) -> impl Future<Output = io::Result<()>> + Send {
            std::future::pending()
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn start(imp: Impairment) -> (Inlet, Recorder, watch::Sender<Control>, Arc<Link>) {
        let link = Arc::new(Link::new(imp));
        let (inlet, rx) = pipe(Arc::clone(&link), 42);
        let rec = Recorder::default();
        let (ctl_tx, ctl_rx) = watch::channel(Control::default());
        tokio::spawn(drain(rx, rec.clone(), Arc::clone(&link), true, ctl_rx));
        (inlet, rec, ctl_tx, link)
    }

    #[tokio::test(start_paused = true)]
    async fn jittered_chunks_arrive_late_in_order_and_intact() {
        let imp = Impairment {
            delay: ms(50),
            jitter: ms(40),
            ..Impairment::default()
        };
        let (mut inlet, rec, _ctl, _) = start(imp);
        let t0 = Instant::now();
        for i in 0..200u32 {
            assert!(inlet.send(i.to_be_bytes().to_vec()).await);
            tokio::time::sleep(ms(2)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let got = rec.0.lock().unwrap().clone();
        assert_eq!(got.len(), 200);
        for (i, (at, data)) in got.iter().enumerate() {
            assert_eq!(data, &(i as u32).to_be_bytes(), "chunk {i} in order");
            let sent = t0 + ms(2 * i as u64);
            assert!(*at >= sent + ms(10) && *at <= sent + ms(90), "chunk {i}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_cap_under_the_offered_rate_delivers_the_cap_and_drops_the_rest() {
        // 4 Mbit/s offered (1000-byte datagrams every 2 ms) into a 3 Mbit/s cap, 64 KiB queue.
        let imp = Impairment {
            rate_bps: Some(3_000_000),
            burst_bytes: 16_000,
            queue_bytes: 64 * 1024,
            ..Impairment::default()
        };
        let (mut inlet, rec, _ctl, link) = start(imp);
        let t0 = Instant::now();
        let mut full = 0;
        for _ in 0..5000 {
            if inlet.offer(vec![0; 1000]) == Offer::Full {
                full += 1;
            }
            tokio::time::sleep(ms(2)).await;
        }
        let got = rec.0.lock().unwrap().clone();
        let bytes: usize = got.iter().map(|(_, d)| d.len()).sum();
        let rate = bytes as f64 * 8.0 / (got.last().unwrap().0 - t0).as_secs_f64();
        assert!((2_900_000.0..3_100_000.0).contains(&rate), "{rate}");
        // A quarter of what was offered cannot fit through.
        assert!((1100..1400).contains(&full), "{full}");
        assert_eq!(link.udp.overflowed.load(Ordering::Relaxed), full);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_leaves_during_a_stall_and_everything_after_it() {
        let (mut inlet, rec, ctl, _) = start(Impairment::default());
        let t0 = Instant::now();
        ctl.send_modify(|c| c.stall_until = Some(t0 + ms(500)));
        for i in 0..10u8 {
            assert_eq!(inlet.offer(vec![i]), Offer::Queued);
            tokio::time::sleep(ms(100)).await;
        }
        let got = rec.0.lock().unwrap().clone();
        assert_eq!(got.len(), 10);
        assert!(
            got[..5].iter().all(|(at, _)| *at == t0 + ms(500)),
            "{got:?}"
        );
        assert!(got.iter().enumerate().all(|(i, (_, d))| d == &[i as u8]));
    }

    #[tokio::test(start_paused = true)]
    async fn loss_discards_its_share_of_datagrams() {
        let imp = Impairment {
            loss: 0.02,
            ..Impairment::default()
        };
        let (mut inlet, rec, _ctl, link) = start(imp);
        let offers: Vec<Offer> = (0..20_000).map(|_| inlet.offer(vec![1])).collect();
        tokio::time::sleep(ms(10)).await;
        let lost_n = offers.iter().filter(|o| **o == Offer::Lost).count();
        assert!((300..500).contains(&lost_n), "{lost_n}");
        assert_eq!(rec.0.lock().unwrap().len(), 20_000 - lost_n);
        assert_eq!(link.udp.lost.load(Ordering::Relaxed), lost_n as u64);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_tcp_queue_pushes_back_on_the_sender() {
        let link = Arc::new(Link::new(Impairment {
            queue_bytes: 10_000,
            ..Impairment::default()
        }));
        let (mut inlet, rx) = pipe(Arc::clone(&link), 1);
        let (_ctl_tx, ctl_rx) = watch::channel(Control::default());
        tokio::spawn(drain(rx, Stuck, link, false, ctl_rx));
        // The drain holds the first chunk (and its room) in its stuck write; 9 more fill the
        // queue.
        for _ in 0..10 {
            assert!(inlet.send(vec![0; 1000]).await);
        }
        let blocked = tokio::time::timeout(Duration::from_secs(60), inlet.send(vec![0; 1000]));
        assert!(blocked.await.is_err(), "the 11th chunk must wait for room");
    }
}
