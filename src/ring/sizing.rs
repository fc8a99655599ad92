//! How big a stream's ring must be to hold an event clip's pre-roll, from the stream's
//! measured rates.
//!
//! A clip starts at the keyframe at or before `clips.pre_s` before the raise, so the ring must
//! still hold `pre_s` plus up to one GOP when the alarm comes, and the recorder needs a moment
//! to open its reader: [`size_ring`] asks for `pre_s` + one GOP + 1 s at the stream's peak
//! byte rate and frame rate, with a quarter to spare. `ring.bytes_per_stream` and
//! `ring.slots_per_stream` are the floor (the size before anything was measured, and the
//! least a ring gets after); `ring.max_bytes_per_stream` ([`RingConfig::cap_bytes`]) is the
//! cap. Pure arithmetic: the daemon measures and persists the rates ([`super::rates`]).

use serde::{Deserialize, Serialize};

use super::{RingError, RingSpec};
use crate::config::RingConfig;

/// Keyframe interval assumed while none was measured (many cameras default to 2 s).
pub const UNKNOWN_GOP_MS: u64 = 2000;
/// Time the recorder needs beside `pre_s` and the GOP, ms.
const SLACK_MS: u64 = 1000;
/// Margin on the wanted size, as a fraction: bitrates vary with the scene.
const MARGIN_NUM: u128 = 5;
/// Denominator of the margin.
const MARGIN_DEN: u128 = 4;
/// Sized arenas are rounded up to this, so that small rate changes give the same size.
const ROUND_BYTES: u64 = 64 * 1024;
/// The most slots a sized ring gets (the config's own limit on `slots_per_stream`).
pub const MAX_SIZED_SLOTS: usize = 65536;
/// Slots added beside the wanted count, for the frames of a reader that is just starting.
const EXTRA_SLOTS: u64 = 8;

/// A stream's measured rates: the peaks the daemon saw, or the stats of the moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measured {
    /// Payload bytes per second (the peak of the averages measured over several seconds).
    pub bytes_per_s: u64,
    /// Frames per second × 1000 (the slots must hold as many frames as the bytes do).
    pub fps_milli: u32,
    /// Keyframe interval, ms; 0 when not measured ([`UNKNOWN_GOP_MS`] is assumed).
    #[serde(default)]
    pub keyframe_interval_ms: u64,
}

impl Measured {
    /// The GOP a clip may have to reach back, ms.
    pub fn gop_ms(&self) -> u64 {
        match self.keyframe_interval_ms {
            0 => UNKNOWN_GOP_MS,
            ms => ms,
        }
    }

    /// The bitrate in kbit/s, for messages.
    pub fn kbps(&self) -> u64 {
        self.bytes_per_s.saturating_mul(8) / 1000
    }
}

/// A ring size chosen by [`size_ring`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sized {
    /// The size to allocate.
    pub spec: RingSpec,
    /// The arena size the measured rates want (before the floor and the cap).
    pub wanted_bytes: u64,
    /// True when `ring.max_bytes_per_stream` is what keeps `spec` below `wanted_bytes`.
    pub capped: bool,
}

/// What a clip needs the ring to hold, ms: `pre_s` plus one GOP.
pub fn needs_ms(pre_s: u32, m: &Measured) -> u64 {
    u64::from(pre_s) * 1000 + m.gop_ms()
}

/// How long a ring of `spec` holds the stream at the rates `m`, ms: the shorter of what its
/// bytes and its slots hold (`u64::MAX` when nothing flows).
pub fn holds_ms(spec: RingSpec, m: &Measured) -> u64 {
    let by_bytes = if m.bytes_per_s == 0 {
        u64::MAX
    } else {
        (spec.arena_bytes as u128 * 1000 / u128::from(m.bytes_per_s)) as u64
    };
    let by_slots = if m.fps_milli == 0 {
        u64::MAX
    } else {
        (spec.slots as u128 * 1_000_000 / u128::from(m.fps_milli)) as u64
    };
    by_bytes.min(by_slots)
}

/// The ring for a stream: the config's floor while clips are off (`pre_s` is `None`) or
/// nothing was measured, else big enough for `pre_s` + one GOP + 1 s at `m` with a margin,
/// never below the floor and never above [`RingConfig::cap_bytes`].
pub fn size_ring(
    cfg: &RingConfig,
    pre_s: Option<u32>,
    m: Option<&Measured>,
) -> Result<Sized, RingError> {
    let floor = RingSpec::from_config(cfg)?;
    let (Some(pre_s), Some(m)) = (pre_s, m) else {
        return Ok(Sized {
            spec: floor,
            wanted_bytes: floor.arena_bytes as u64,
            capped: false,
        });
    };
    let window_ms = u128::from(needs_ms(pre_s, m) + SLACK_MS);
    let wanted = u128::from(m.bytes_per_s) * window_ms * MARGIN_NUM / (MARGIN_DEN * 1000);
    let wanted_bytes = u64::try_from(wanted)
        .unwrap_or(u64::MAX)
        .div_ceil(ROUND_BYTES)
        .saturating_mul(ROUND_BYTES);
    let floor_bytes = floor.arena_bytes as u64;
    let cap = cfg.cap_bytes().max(floor_bytes);
    let bytes = wanted_bytes.max(floor_bytes).min(cap);
    let wanted_slots = u128::from(m.fps_milli) * window_ms * MARGIN_NUM / (MARGIN_DEN * 1_000_000)
        + u128::from(EXTRA_SLOTS);
    let slots = usize::try_from(wanted_slots)
        .unwrap_or(usize::MAX)
        .min(MAX_SIZED_SLOTS)
        .max(floor.slots);
    let arena_bytes = usize::try_from(bytes).map_err(|_| RingError::ArenaTooLarge {
        bytes,
        max: super::MAX_ARENA_BYTES,
    })?;
    let spec = RingSpec { arena_bytes, slots };
    spec.check()?;
    Ok(Sized {
        spec,
        wanted_bytes,
        capped: wanted_bytes > cap,
    })
}

/// A running ring that cannot hold a clip's pre-roll at the measured rates, and what its
/// stream's next start changes ([`shortfall`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    /// What the ring holds now, ms.
    pub holds_ms: u64,
    /// What a clip needs, ms ([`needs_ms`]).
    pub needs_ms: u64,
    /// `clips.pre_s`.
    pub pre_s: u32,
    /// The rates it was judged at.
    pub measured: Measured,
    /// The ring's size now.
    pub spec: RingSpec,
    /// The ring the stream gets at its next start.
    pub next: Sized,
    /// What the next ring holds, ms.
    pub next_holds_ms: u64,
    /// `ring.max_bytes_per_stream` in force ([`RingConfig::cap_bytes`]).
    pub cap_bytes: u64,
}

impl Shortfall {
    /// True when even the next ring is short because of `ring.max_bytes_per_stream`.
    pub fn cap_limits(&self) -> bool {
        self.next.capped && self.next_holds_ms < self.needs_ms
    }

    /// The shortfall in words for the installer of stream `id`.
    pub fn sentence(&self, id: &str) -> String {
        let s = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
        let head = format!(
            "the ring of {id} ({}) holds about {} of this camera's video at the {} kbit/s \
             measured, less than the {} a clip needs (clips.pre_s = {} s plus one keyframe \
             interval of {}), so its clips start late",
            mib(self.spec.arena_bytes as u64),
            s(self.holds_ms),
            self.measured.kbps(),
            s(self.needs_ms),
            self.pre_s,
            s(self.measured.gop_ms()),
        );
        if self.cap_limits() {
            format!(
                "{head}. ring.max_bytes_per_stream ({}) is what limits it: at that size the \
                 ring holds only about {}; raise ring.max_bytes_per_stream to at least {} or \
                 lower clips.pre_s",
                mib(self.cap_bytes),
                s(self.next_holds_ms),
                self.next.wanted_bytes,
            )
        } else {
            format!(
                "{head}. The ring grows to {} the next time the stream starts (a change to \
                 its settings or a restart of the box)",
                mib(self.next.spec.arena_bytes as u64),
            )
        }
    }
}

/// The shortfall of a running ring of `spec` for `pre_s` at the rates `m`; `None` when the
/// ring holds what a clip needs.
pub fn shortfall(
    cfg: &RingConfig,
    pre_s: u32,
    spec: RingSpec,
    m: &Measured,
) -> Result<Option<Shortfall>, RingError> {
    let (holds, needs) = (holds_ms(spec, m), needs_ms(pre_s, m));
    if holds >= needs {
        return Ok(None);
    }
    let next = size_ring(cfg, Some(pre_s), Some(m))?;
    Ok(Some(Shortfall {
        holds_ms: holds,
        needs_ms: needs,
        pre_s,
        measured: *m,
        spec,
        next,
        next_holds_ms: holds_ms(next.spec, m),
        cap_bytes: cfg.cap_bytes(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn ring(bytes: u64, slots: u32, max: Option<u64>) -> RingConfig {
        RingConfig {
            bytes_per_stream: bytes,
            slots_per_stream: slots,
            max_bytes_per_stream: max,
        }
    }

    /// A camera at `kbps` and 25 fps with a GOP of `gop_ms`.
    fn camera(kbps: u64, gop_ms: u64) -> Measured {
        Measured {
            bytes_per_s: kbps * 1000 / 8,
            fps_milli: 25_000,
            keyframe_interval_ms: gop_ms,
        }
    }

    #[test]
    fn without_a_measurement_or_clips_the_ring_is_the_configured_one() {
        let cfg = ring(4 * MIB, 512, None);
        let floor = RingSpec::from_config(&cfg).unwrap();
        let m = camera(20_000, 2000);
        for (pre_s, m) in [(Some(10), None), (None, Some(&m)), (None, None)] {
            let s = size_ring(&cfg, pre_s, m).unwrap();
            assert_eq!(s.spec, floor);
            assert!(!s.capped);
        }
    }

    #[test]
    fn a_fast_camera_gets_a_ring_that_holds_pre_s_and_a_gop() {
        let cfg = ring(4 * MIB, 128, None);
        let m = camera(8_000, 2000); // 1 MB/s
        let s = size_ring(&cfg, Some(10), Some(&m)).unwrap();
        // (10 s + 2 s + 1 s) × 1 MB/s × 5/4 = 16.25 MB, rounded up to 64 KiB.
        assert_eq!(s.wanted_bytes, 16_252_928);
        assert_eq!(s.spec.arena_bytes as u64, s.wanted_bytes);
        // 13 s × 25 fps × 5/4 + 8 slots.
        assert_eq!(s.spec.slots, 414);
        assert!(!s.capped);
        assert!(holds_ms(s.spec, &m) >= needs_ms(10, &m));
        // The floor alone would not have held it.
        let floor = RingSpec::from_config(&cfg).unwrap();
        assert!(holds_ms(floor, &m) < needs_ms(10, &m));
    }

    #[test]
    fn a_slow_camera_keeps_the_floor() {
        let cfg = ring(16 * MIB, 512, None);
        let s = size_ring(&cfg, Some(10), Some(&camera(1_000, 1000))).unwrap();
        assert_eq!(s.spec, RingSpec::from_config(&cfg).unwrap());
        assert!(!s.capped);
    }

    #[test]
    fn the_cap_limits_the_ring_and_says_so() {
        let cfg = ring(4 * MIB, 512, Some(8 * MIB));
        let m = camera(16_000, 4000); // 2 MB/s
        let s = size_ring(&cfg, Some(10), Some(&m)).unwrap();
        assert_eq!(s.spec.arena_bytes as u64, 8 * MIB);
        assert!(s.capped);
        assert!(s.wanted_bytes > 8 * MIB);
        assert!(holds_ms(s.spec, &m) < needs_ms(10, &m));
        // Without a key the cap is the default one.
        let s = size_ring(&ring(4 * MIB, 512, None), Some(10), Some(&m)).unwrap();
        assert!(!s.capped);
        assert!(s.spec.arena_bytes as u64 <= crate::config::schema::DEFAULT_RING_MAX_BYTES);
    }

    #[test]
    fn an_unknown_gop_is_assumed_and_absurd_rates_stay_within_the_cap() {
        let m = Measured {
            bytes_per_s: u64::MAX,
            fps_milli: u32::MAX,
            keyframe_interval_ms: 0,
        };
        assert_eq!(needs_ms(10, &m), 10_000 + UNKNOWN_GOP_MS);
        let cfg = ring(MIB, 16, Some(32 * MIB));
        let s = size_ring(&cfg, Some(60), Some(&m)).unwrap();
        assert_eq!(s.spec.arena_bytes as u64, 32 * MIB);
        assert_eq!(s.spec.slots, MAX_SIZED_SLOTS);
        assert!(s.capped);
        assert_eq!(holds_ms(s.spec, &Measured::default()), u64::MAX);
    }

    #[test]
    fn a_short_ring_says_what_it_holds_and_what_fixes_it() {
        let m = camera(8_000, 2000); // 1 MB/s
        let small = RingSpec {
            arena_bytes: 4 * MIB as usize,
            slots: 512,
        };
        let cfg = ring(4 * MIB, 512, None);
        let short = shortfall(&cfg, 10, small, &m)
            .unwrap()
            .expect("4 MiB is ~4 s");
        assert_eq!((short.holds_ms, short.needs_ms), (4194, 12_000));
        assert!(!short.cap_limits());
        let words = short.sentence("cam1");
        assert!(words.contains("holds about 4.2 s"), "{words}");
        assert!(words.contains("clips.pre_s = 10 s"), "{words}");
        assert!(words.contains("next time the stream starts"), "{words}");
        // The next ring holds it: no shortfall then.
        assert_eq!(shortfall(&cfg, 10, short.next.spec, &m).unwrap(), None);

        let capped = ring(4 * MIB, 512, Some(6 * MIB));
        let short = shortfall(&capped, 10, small, &m).unwrap().unwrap();
        assert!(short.cap_limits());
        let words = short.sentence("cam1");
        assert!(
            words.contains("ring.max_bytes_per_stream (6.0 MiB) is what limits it"),
            "{words}"
        );
        assert!(words.contains("at least 16252928"), "{words}");
    }

    #[test]
    fn slots_can_be_what_limits_a_ring() {
        let spec = RingSpec {
            arena_bytes: 64 * MIB as usize,
            slots: 100,
        };
        // 100 frames at 50 fps: 2 s, though the bytes would hold minutes.
        let m = Measured {
            bytes_per_s: 100_000,
            fps_milli: 50_000,
            keyframe_interval_ms: 1000,
        };
        assert_eq!(holds_ms(spec, &m), 2000);
    }
}
