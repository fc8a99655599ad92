//! The reductions every report shares: the CPU and memory of a group of processes over a
//! window ([`Usage`]) and nearest-rank percentiles ([`Ranks`]).

use crate::procfs::{CpuShare, ProcSample};
use serde::Serialize;

/// CPU and memory of a group of processes (one daemon, or one decoder per stream) over a
/// window, from a sample of every process at its start and its end.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// Processes in the group.
    pub processes: usize,
    /// Mean wall time between each process's start and end samples, seconds.
    pub window_s: f64,
    /// User and kernel CPU, % of one core, summed over the group.
    pub cpu: CpuShare,
    /// Total CPU, % of one core (100 = one core fully busy).
    pub cpu_pct: f64,
    /// Total CPU divided by the number of camera streams.
    pub cpu_pct_per_stream: f64,
    /// Resident memory at the end of the window (steady state), summed over the group, MiB.
    pub rss_mib: f64,
    /// Peak resident memory (`VmHWM`) at the end of the window, summed over the group, MiB.
    pub rss_peak_mib: f64,
    /// Largest minus smallest RSS sampled each second in the window, MiB: flatness. `None`
    /// (and absent from the JSON) when only the window's ends were sampled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_spread_mib: Option<f64>,
}

impl Usage {
    /// From one sample of each process at the start and one at the end, in the same order;
    /// `streams` is the number of camera streams served, `tck` clock ticks per second.
    pub fn between(start: &[ProcSample], end: &[ProcSample], streams: u32, tck: u64) -> Usage {
        let cpu = CpuShare::between(start, end, tck);
        let walls: Vec<f64> = start
            .iter()
            .zip(end)
            .map(|(s, e)| e.at.saturating_duration_since(s.at).as_secs_f64())
            .collect();
        Usage {
            processes: start.len(),
            window_s: walls.iter().sum::<f64>() / walls.len().max(1) as f64,
            cpu,
            cpu_pct: cpu.total_pct(),
            cpu_pct_per_stream: cpu.total_pct() / f64::from(streams.max(1)),
            rss_mib: mib(end.iter().map(|s| s.rss_kib).sum()),
            rss_peak_mib: mib(end.iter().map(|s| s.hwm_kib).sum()),
            rss_spread_mib: None,
        }
    }

    /// From samples of the group taken every second (`samples[i]` = every process at tick
    /// `i`): CPU and memory between the first and the last, and the RSS curve's spread.
    pub fn from_samples(samples: &[Vec<ProcSample>], streams: u32, tck: u64) -> Usage {
        let (first, last) = match (samples.first(), samples.last()) {
            (Some(f), Some(l)) => (f.as_slice(), l.as_slice()),
            _ => (&[][..], &[][..]),
        };
        let totals: Vec<u64> = samples
            .iter()
            .map(|s| s.iter().map(|p| p.rss_kib).sum())
            .collect();
        let spread = totals.iter().max().unwrap_or(&0) - totals.iter().min().unwrap_or(&0);
        Usage {
            rss_spread_mib: Some(mib(spread)),
            ..Usage::between(first, last, streams, tck)
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Nearest-rank percentiles of a set of samples, milliseconds in every report. Each report's
/// own type adds the extremes it records (with `#[serde(flatten)]`, so the JSON keeps its
/// layout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Ranks {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile: the issues' targets are stated at p95.
    pub p95: f64,
    /// 99th percentile; with fewer than 100 samples this is the maximum.
    pub p99: f64,
}

impl Ranks {
    /// `samples` sorted, with their percentiles; `None` when there are none or any is not
    /// finite.
    pub fn of(samples: &[f64]) -> Option<(Vec<f64>, Ranks)> {
        if samples.is_empty() || samples.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let ranks = Ranks {
            n: v.len(),
            p50: nearest_rank(&v, 0.50),
            p95: nearest_rank(&v, 0.95),
            p99: nearest_rank(&v, 0.99),
        };
        Some((v, ranks))
    }
}

/// The nearest-rank `q` quantile (`0.0..=1.0`) of `sorted`, which must not be empty.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn ranks_are_nearest_rank_and_refuse_bad_samples() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let (sorted, r) = Ranks::of(&v).unwrap();
        assert_eq!((r.n, r.p50, r.p95, r.p99), (100, 50.0, 95.0, 99.0));
        assert_eq!((sorted[0], sorted[99]), (1.0, 100.0));
        let (_, r) = Ranks::of(&[7.0, 3.0]).unwrap();
        assert_eq!((r.p50, r.p95, r.p99), (3.0, 7.0, 7.0));
        let (_, one) = Ranks::of(&[7.0]).unwrap();
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert!(Ranks::of(&[]).is_none());
        assert!(Ranks::of(&[1.0, f64::NAN]).is_none());
    }

    fn sample(at: Instant, ticks: u64, rss_kib: u64) -> ProcSample {
        ProcSample {
            at,
            utime: ticks,
            stime: 0,
            rss_kib,
            hwm_kib: 4096,
        }
    }

    #[test]
    fn usage_takes_cpu_from_the_ends_and_spread_from_every_sample() {
        let t0 = Instant::now();
        let s =
            |secs: u64, ticks: u64, rss: u64| sample(t0 + Duration::from_secs(secs), ticks, rss);
        let samples = vec![
            vec![s(0, 0, 2048)],
            vec![s(1, 5, 3072)],
            vec![s(10, 20, 2048)],
        ];
        let u = Usage::from_samples(&samples, 4, 100);
        assert!((u.cpu_pct - 2.0).abs() < 1e-9, "{u:?}");
        assert!((u.cpu_pct_per_stream - 0.5).abs() < 1e-9);
        assert!((u.rss_mib - 2.0).abs() < 1e-9);
        assert!((u.rss_spread_mib.unwrap() - 1.0).abs() < 1e-9);
        assert!((u.rss_peak_mib - 4.0).abs() < 1e-9);
        assert!((u.window_s - 10.0).abs() < 1e-9);
    }

    #[test]
    fn usage_between_two_ends_sums_the_group_and_has_no_spread() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        let start = [sample(t0, 0, 0), sample(t0, 0, 0)];
        let end = [sample(t1, 100, 1024), sample(t1, 50, 1024)];
        let u = Usage::between(&start, &end, 2, 100);
        assert_eq!(u.processes, 2);
        assert!((u.cpu_pct - 15.0).abs() < 1e-9, "{u:?}");
        assert!((u.cpu_pct_per_stream - 7.5).abs() < 1e-9);
        assert!((u.rss_mib - 2.0).abs() < 1e-9 && (u.rss_peak_mib - 8.0).abs() < 1e-9);
        assert_eq!(u.rss_spread_mib, None);
        let json = serde_json::to_value(&u).unwrap();
        assert!(json.get("rss_spread_mib").is_none(), "{json}");
    }
}
