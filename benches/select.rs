//! Selector throughput and alarm-edge-to-decision latency, 16 streams and 32 alarm inputs.
//!
//! Criterion measures events per second through the state machine; a custom loop then times
//! each alarm edge to the new active decision and prints p50/p99/max as one JSON line.

use criterion::{Criterion, Throughput, criterion_group};
use edgecam::config::Config;
use edgecam::select::{Selector, Stamp};
use std::hint::black_box;
use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

/// The selector's reference load: 16 streams, 32 alarms.
fn config() -> Config {
    common::sixteen_streams_32_alarms()
}

/// Pre-generated alarm edges: (alarm, on, time step in ms).
fn edges(n: usize) -> Vec<(usize, bool, u64)> {
    let mut rng = fastrand::Rng::with_seed(42);
    (0..n)
        .map(|_| (rng.usize(0..32), rng.bool(), rng.u64(0..50)))
        .collect()
}

fn bench(c: &mut Criterion) {
    let cfg = config();
    let evs = edges(1000);
    let mut g = c.benchmark_group("select");
    g.throughput(Throughput::Elements(evs.len() as u64));
    let mut sel = Selector::<256>::new(&cfg, Stamp::from_ms(0));
    let mut now_ms = 0u64;
    g.bench_function("alarm_edges_x1000", |b| {
        b.iter(|| {
            for &(a, on, dt) in &evs {
                now_ms += dt;
                let now = Stamp::from_ms(now_ms);
                // Every fourth latched alarm gets acknowledged, so latches do not pile up.
                if a % 12 == 2 && !on {
                    let _ = sel.ack(a, now);
                }
                let _ = sel.alarm_input(a, on, now);
                black_box(sel.active_stream());
            }
        })
    });
    g.finish();
}

/// Edge-to-decision latency percentiles, printed as JSON.
fn latency() {
    let cfg = config();
    let mut sel = Selector::<256>::new(&cfg, Stamp::from_ms(0));
    let evs = edges(200_000);
    let mut samples: Vec<u64> = Vec::with_capacity(evs.len());
    let mut now_ms = 0u64;
    for (i, &(a, on, dt)) in evs.iter().enumerate() {
        now_ms += dt;
        let now = Stamp::from_ms(now_ms);
        if a % 12 == 2 && !on {
            let _ = sel.ack(a, now);
        }
        let t0 = Instant::now();
        let _ = sel.alarm_input(a, on, now);
        let active = black_box(sel.active_stream());
        let ns = t0.elapsed().as_nanos() as u64;
        black_box(active);
        if i >= 10_000 {
            samples.push(ns);
        }
    }
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    println!(
        "{{\"bench\":\"select_edge_to_decision\",\"streams\":16,\"alarms\":32,\"samples\":{},\"p50_ns\":{},\"p99_ns\":{},\"max_ns\":{}}}",
        samples.len(),
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1]
    );
}

criterion_group!(benches, bench);

fn main() {
    latency();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
