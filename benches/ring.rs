//! Write + read throughput of the frame ring, against `tokio::sync::broadcast` and a plain
//! memcpy, for 4 KiB, 64 KiB and 512 KiB payloads with 1 writer + 1 reader and 1 writer + 4
//! readers.
//!
//! Methodology (the same for the ring and broadcast):
//! - One iteration = one frame written once and delivered to every reader; the reported
//!   throughput is bytes *delivered* (`payload size × readers`) per second.
//! - The writer runs on the benchmark thread, readers on their own threads; idle threads
//!   spin briefly, then `yield_now` (no async runtime, so no wakeup cost on either side).
//! - Readers "touch" every payload the same way: copy it into their own reusable `Vec<u8>`
//!   (the ring's `next_into` does that by itself; a broadcast receiver gets an `Arc<[u8]>`
//!   and copies out of it), then `black_box` it.
//! - The ring's writer copies the payload into its arena; the broadcast writer allocates an
//!   `Arc<[u8]>` and copies into it (what a producer of owned frames has to do).
//! - Neither may drop frames, so the measurement is of the copy path, not of lag handling:
//!   the writer waits (bench-level flow control, identical for both) while the slowest
//!   reader is more than `window` frames behind; `window` is half of what the ring holds
//!   (`min(slots, arena / size) / 2`) and the broadcast channel has `2 × window` capacity.
//! - Ring: 16 MiB arena and 512 slots, the daemon's default `[ring]` config.
//! - memcpy baseline, single thread, no synchronisation: copy each payload into a 16 MiB
//!   byte arena at advancing (wrapping) positions, then copy it out once per reader into
//!   that reader's buffer; the ideal cost of the same copies with the same memory footprint.
//!
//! Run: `cargo bench --bench ring` (about 1.5 min), or `cargo bench --bench ring -- --quick`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use edgecam::frame::{Codec, FrameInfo, FrameSink};
use edgecam::ring::{FrameRing, RingSpec, RingWriter, Start};

/// Ring arena (the default `bytes_per_stream`).
const ARENA: usize = 16 * 1024 * 1024;
/// Ring slots (the default `slots_per_stream`).
const SLOTS: usize = 512;
/// Payload sizes benchmarked.
const SIZES: [usize; 3] = [4 * 1024, 64 * 1024, 512 * 1024];
/// Reader counts benchmarked.
const READERS: [usize; 2] = [1, 4];

fn window(size: usize) -> u64 {
    (SLOTS.min(ARENA / size) / 2) as u64
}

fn info() -> FrameInfo {
    FrameInfo {
        codec: Codec::H264,
        keyframe: false,
        params_changed: false,
        pts_us: 0,
        recv_mono_ns: 0,
        recv_wall_us: 0,
        epoch: 0,
    }
}

/// Waits a little when there is nothing to do: spin first (cheap when the other side is
/// running on another core), yield to the scheduler after `SPINS` idle rounds.
fn idle(rounds: &mut u32) {
    const SPINS: u32 = 100;
    *rounds += 1;
    if *rounds < SPINS {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// Spins (then yields) until the slowest reader is less than `window` frames behind `sent`.
fn flow_control(sent: u64, done: &[AtomicU64], window: u64) {
    let mut rounds = 0;
    while done
        .iter()
        .any(|d| sent - d.load(Ordering::Acquire) >= window)
    {
        idle(&mut rounds);
    }
}

/// Ring: `iters` frames to `readers` reader threads.
fn run_ring(
    w: &mut RingWriter,
    ring: &Arc<FrameRing>,
    src: &[u8],
    readers: usize,
    iters: u64,
) -> Duration {
    let done: Vec<AtomicU64> = (0..readers).map(|_| AtomicU64::new(0)).collect();
    let mut rs: Vec<_> = (0..readers).map(|_| ring.reader(Start::Newest)).collect();
    let win = window(src.len());
    let start = Instant::now();
    std::thread::scope(|s| {
        for (r, d) in rs.iter_mut().zip(&done) {
            s.spawn(move || {
                let mut buf = Vec::with_capacity(src.len());
                let mut n = 0;
                let mut rounds = 0;
                while n < iters {
                    match r.next_into(&mut buf) {
                        Ok(Some(_)) => {
                            black_box(&buf);
                            n += 1;
                            d.store(n, Ordering::Release);
                            rounds = 0;
                        }
                        Ok(None) => idle(&mut rounds),
                        Err(lag) => panic!("flow control failed: {lag}"),
                    }
                }
            });
        }
        let info = info();
        for sent in 0..iters {
            flow_control(sent, &done, win);
            w.push_frame(&info, &[src]).expect("payload fits");
        }
    });
    start.elapsed()
}

/// `tokio::sync::broadcast` of `Arc<[u8]>`: `iters` frames to `readers` reader threads.
fn run_broadcast(src: &[u8], readers: usize, iters: u64) -> Duration {
    use tokio::sync::broadcast::{self, error::TryRecvError};
    let win = window(src.len());
    let (tx, _) = broadcast::channel::<Arc<[u8]>>(2 * win as usize);
    let done: Vec<AtomicU64> = (0..readers).map(|_| AtomicU64::new(0)).collect();
    let rxs: Vec<_> = (0..readers).map(|_| tx.subscribe()).collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for (mut rx, d) in rxs.into_iter().zip(&done) {
            s.spawn(move || {
                let mut buf = Vec::with_capacity(src.len());
                let mut n = 0;
                let mut rounds = 0;
                while n < iters {
                    match rx.try_recv() {
                        Ok(frame) => {
                            buf.clear();
                            buf.extend_from_slice(&frame);
                            black_box(&buf);
                            n += 1;
                            d.store(n, Ordering::Release);
                            rounds = 0;
                        }
                        Err(TryRecvError::Empty) => idle(&mut rounds),
                        Err(e) => panic!("flow control failed: {e}"),
                    }
                }
            });
        }
        for sent in 0..iters {
            flow_control(sent, &done, win);
            let frame: Arc<[u8]> = Arc::from(src);
            tx.send(frame).expect("receivers alive");
        }
    });
    start.elapsed()
}

/// Plain memcpy: one copy into a wrapping arena, one copy out per reader.
fn run_memcpy(
    arena: &mut [u8],
    pos: &mut usize,
    src: &[u8],
    bufs: &mut [Vec<u8>],
    iters: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let at = *pos % arena.len();
        let first = src.len().min(arena.len() - at);
        arena[at..at + first].copy_from_slice(&src[..first]);
        arena[..src.len() - first].copy_from_slice(&src[first..]);
        for b in bufs.iter_mut() {
            b.clear();
            b.extend_from_slice(&arena[at..at + first]);
            b.extend_from_slice(&arena[..src.len() - first]);
            black_box(&*b);
        }
        *pos += src.len();
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let (mut w, ring) = FrameRing::new(RingSpec {
        arena_bytes: ARENA,
        slots: SLOTS,
    })
    .expect("valid spec");
    let mut arena = vec![0u8; ARENA];
    let mut pos = 0;
    for readers in READERS {
        let mut g = c.benchmark_group(format!("ring_1w{readers}r"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for size in SIZES {
            let src: Vec<u8> = (0..size).map(|i| (i * 31) as u8).collect();
            g.throughput(Throughput::Bytes((size * readers) as u64));
            g.bench_function(BenchmarkId::new("ring", size), |b| {
                b.iter_custom(|iters| run_ring(&mut w, &ring, &src, readers, iters))
            });
            g.bench_function(BenchmarkId::new("broadcast", size), |b| {
                b.iter_custom(|iters| run_broadcast(&src, readers, iters))
            });
            let mut bufs: Vec<Vec<u8>> = (0..readers).map(|_| Vec::with_capacity(size)).collect();
            g.bench_function(BenchmarkId::new("memcpy", size), |b| {
                b.iter_custom(|iters| run_memcpy(&mut arena, &mut pos, &src, &mut bufs, iters))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
