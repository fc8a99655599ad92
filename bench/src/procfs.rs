//! What Linux says about a process and the machine: CPU time and memory of a process from
//! `/proc/<pid>/stat` and `/proc/<pid>/status`, the CPU model, the core count, the load
//! average, and the UTC date for file names.

use anyhow::{Context, bail};
use serde::Serialize;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One reading of a process's CPU time and memory.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// When it was taken: CPU time over wall time between two samples is the CPU share.
    pub at: Instant,
    /// User-mode CPU time so far, all threads, in clock ticks (`utime`, field 14 of `stat`).
    pub utime: u64,
    /// Kernel-mode CPU time so far, all threads, in clock ticks (`stime`, field 15). Ingest is
    /// mostly socket reads, so this half matters as much as the user half.
    pub stime: u64,
    /// Resident memory now, KiB (`VmRSS`): what the process costs in steady state.
    pub rss_kib: u64,
    /// Peak resident memory so far, KiB (`VmHWM`): what the box must have free.
    pub hwm_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status` once.
pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let at = Instant::now();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat (did the process exit?)"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let (utime, stime) = parse_stat_times(&stat)?;
    Ok(ProcSample {
        at,
        utime,
        stime,
        rss_kib: status_kib(&status, "VmRSS").context("no VmRSS in /proc/<pid>/status")?,
        hwm_kib: status_kib(&status, "VmHWM").context("no VmHWM in /proc/<pid>/status")?,
    })
}

/// `utime` and `stime` from a `/proc/<pid>/stat` line. The command name (field 2) sits in
/// parentheses and may itself hold spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat_times(stat: &str) -> anyhow::Result<(u64, u64)> {
    let Some(close) = stat.rfind(')') else {
        bail!("malformed /proc stat line: no `)`");
    };
    // After the name come fields 3 (state), 4, ...; utime is field 14 and stime field 15.
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        rest.get(n - 3)
            .with_context(|| format!("/proc stat line has no field {n}"))?
            .parse()
            .with_context(|| format!("/proc stat field {n} is not a number"))
    };
    Ok((field(14)?, field(15)?))
}

/// A `Key:   1234 kB` value from `/proc/<pid>/status`.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// CPU use of a group of processes (one daemon, or N decoders) between two samples each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuShare {
    /// User-mode CPU, % of one core, summed over the group.
    pub user_pct: f64,
    /// Kernel-mode CPU, % of one core, summed over the group.
    pub system_pct: f64,
}

impl CpuShare {
    /// User plus kernel, % of one core (200 means two cores busy).
    pub fn total_pct(&self) -> f64 {
        self.user_pct + self.system_pct
    }

    /// The share of each process between its `start` and `end` sample, summed; `tck` is clock
    /// ticks per second. Each process is divided by its own wall interval, so sampling N
    /// processes one after the other adds no error.
    pub fn between(start: &[ProcSample], end: &[ProcSample], tck: u64) -> CpuShare {
        let mut share = CpuShare::default();
        for (s, e) in start.iter().zip(end) {
            let wall = e.at.saturating_duration_since(s.at).as_secs_f64();
            if wall <= 0.0 {
                continue;
            }
            let pct =
                |from: u64, to: u64| to.saturating_sub(from) as f64 / tck as f64 / wall * 100.0;
            share.user_pct += pct(s.utime, e.utime);
            share.system_pct += pct(s.stime, e.stime);
        }
        share
    }
}

/// Clock ticks per second for `/proc` CPU times, from `getconf CLK_TCK`; 100 (what Linux uses on
/// every common architecture) if `getconf` is unavailable.
pub fn clock_ticks() -> u64 {
    let from_getconf = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .ok()
        })
        .filter(|&t| t > 0);
    from_getconf.unwrap_or_else(|| {
        eprintln!("edgecam-bench: `getconf CLK_TCK` failed; assuming 100 ticks per second");
        100
    })
}

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Host name, also part of the results file name.
    pub host: String,
    /// `model name` from `/proc/cpuinfo` (`Model` or `Hardware` on some ARM boards).
    pub cpu_model: String,
    /// Cores this process may run on.
    pub cores: usize,
    /// Linux kernel release, since socket costs depend on it.
    pub kernel: String,
}

impl Machine {
    /// Reads host name, CPU model, core count and kernel release.
    pub fn detect() -> Machine {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = ["model name", "Model", "Hardware"]
            .iter()
            .find_map(|key| cpuinfo_value(&cpuinfo, key))
            .unwrap_or_else(|| "unknown".to_string());
        Machine {
            host: Some(read("/proc/sys/kernel/hostname"))
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "unknown-host".to_string()),
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: read("/proc/sys/kernel/osrelease"),
        }
    }
}

/// The first `key : value` of `/proc/cpuinfo`.
fn cpuinfo_value(cpuinfo: &str, key: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// The 1, 5 and 15 minute load averages from `/proc/loadavg` (zeros if unreadable).
pub fn load_avg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [0; 3].map(|_| it.next().unwrap_or(0.0))
}

/// Now in UTC as (`YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SSZ`).
pub fn utc_now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_from_unix(secs)
}

/// Formats Unix seconds as (`YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SSZ`), using Howard Hinnant's
/// days-to-civil algorithm (proleptic Gregorian calendar).
fn utc_from_unix(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let tod = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}-{month:02}-{day:02}");
    let stamp = format!(
        "{date}T{:02}:{:02}:{:02}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    );
    (date, stamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stat_times_are_counted_from_the_last_parenthesis() {
        // A command name with a space and a `)` must not shift the fields.
        let line =
            "4242 (tokio ) rt) S 1 4242 4242 0 -1 4194560 500 0 0 0 1234 567 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat_times(line).unwrap(), (1234, 567));
        assert!(parse_stat_times("4242 (short) S 1").is_err());
    }

    #[test]
    fn status_values_are_read_in_kib() {
        let status = "Name:\tedgecam\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(10240));
        assert_eq!(status_kib(status, "VmHWM"), Some(20480));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn cpu_share_divides_each_process_by_its_own_interval() {
        let t0 = Instant::now();
        let s = |at: Instant, utime, stime| ProcSample {
            at,
            utime,
            stime,
            rss_kib: 0,
            hwm_kib: 0,
        };
        // Process A: 50 user + 10 system ticks over 10 s; B: 100 user ticks over 20 s.
        let start = [s(t0, 0, 0), s(t0, 1000, 0)];
        let end = [
            s(t0 + Duration::from_secs(10), 50, 10),
            s(t0 + Duration::from_secs(20), 1100, 0),
        ];
        let share = CpuShare::between(&start, &end, 100);
        assert!((share.user_pct - 10.0).abs() < 1e-9, "{share:?}");
        assert!((share.system_pct - 1.0).abs() < 1e-9, "{share:?}");
        assert!((share.total_pct() - 11.0).abs() < 1e-9);
    }

    #[test]
    fn cpuinfo_model_is_found() {
        let info = "processor\t: 0\nmodel name\t: Example CPU @ 2.0GHz\n";
        assert_eq!(
            cpuinfo_value(info, "model name").as_deref(),
            Some("Example CPU @ 2.0GHz")
        );
        assert_eq!(cpuinfo_value(info, "Hardware"), None);
    }

    #[test]
    fn unix_seconds_become_utc_dates() {
        assert_eq!(utc_from_unix(0).1, "1970-01-01T00:00:00Z");
        // 2024-02-29 is a leap day; 12:34:56 into it.
        assert_eq!(utc_from_unix(1_709_210_096).1, "2024-02-29T12:34:56Z");
        assert_eq!(utc_from_unix(1_709_210_096).0, "2024-02-29");
        assert_eq!(utc_from_unix(951_782_400).0, "2000-02-29");
    }
}
