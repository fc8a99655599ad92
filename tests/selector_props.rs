//! Property tests: random event sequences against the selector's invariants.
//!
//! Invariants checked after every event:
//! - the *desired* view (what the rules want now, [`Selector::desired_stream`]) is the stream of
//!   an active alarm of the highest priority present, or, with no alarm active, the user's
//!   choice or the default;
//! - the *shown* view equals the desired one whenever the minimum dwell has elapsed since the
//!   last change of the shown stream;
//! - every change of the shown stream is either at least `min_dwell` after the previous one,
//!   or outranks it (alarm over user, higher priority over lower), or was an operator action;
//! - the history never holds more than its bound.

mod common;

use edgecam::config::{AlarmConfig, AlarmMode, Config, Multiple};
use edgecam::select::{ChangeCause, EventKind, Reason, Selector, Stamp};
use proptest::prelude::*;
use std::time::Duration;

const STREAMS: [&str; 4] = ["s0", "s1", "s2", "s3"];
const HISTORY: usize = 32;

#[derive(Debug, Clone)]
enum Ev {
    Select(Option<usize>),
    Input(usize, bool),
    Pulse(usize, u64),
    Ack(usize),
    Health(usize, bool),
    Tick,
}

fn ev(n_alarms: usize) -> impl Strategy<Value = Ev> {
    prop_oneof![
        1 => proptest::option::of(0..STREAMS.len()).prop_map(Ev::Select),
        4 => (0..n_alarms, any::<bool>()).prop_map(|(a, on)| Ev::Input(a, on)),
        1 => (0..n_alarms, 0u64..5000).prop_map(|(a, ms)| Ev::Pulse(a, ms)),
        1 => (0..n_alarms).prop_map(Ev::Ack),
        1 => (0..STREAMS.len(), any::<bool>()).prop_map(|(s, up)| Ev::Health(s, up)),
        2 => Just(Ev::Tick),
    ]
}

fn alarm_cfg() -> impl Strategy<Value = (usize, i32, AlarmMode, u32, bool, u32)> {
    (
        0..STREAMS.len(),
        0i32..3,
        prop_oneof![
            Just(AlarmMode::Transparent),
            Just(AlarmMode::Hold),
            Just(AlarmMode::Latched)
        ],
        0u32..4,
        any::<bool>(),
        0u32..3,
    )
}

fn build(
    alarms: &[(usize, i32, AlarmMode, u32, bool, u32)],
    latest: bool,
    min_dwell_ms: u32,
    dwell_s: u32,
    default: Option<usize>,
) -> Config {
    let mut cfg: Config = toml::from_str("").expect("empty config parses");
    cfg.streams = STREAMS.map(common::pattern).to_vec();
    cfg.select.multiple = if latest {
        Multiple::Latest
    } else {
        Multiple::Sequence
    };
    cfg.select.min_dwell_ms = min_dwell_ms;
    cfg.select.dwell_s = dwell_s;
    cfg.select.default = default.map(|d| STREAMS[d].to_string());
    cfg.alarms = alarms
        .iter()
        .enumerate()
        .map(|(i, &(s, p, mode, hold_s, vl, vl_after))| AlarmConfig {
            id: format!("al{i}"),
            name: None,
            stream: STREAMS[s].to_string(),
            priority: p,
            mode,
            hold_s,
            video_loss: vl,
            video_loss_after_s: vl_after,
            gpio: None,
            output: None,
            onvif: None,
        })
        .collect();
    cfg
}

/// Priority behind a reason, `None` for a view without an alarm.
fn rank<const H: usize>(sel: &Selector<H>, cfg: &Config, reason: Reason) -> Option<i32> {
    let id = match reason {
        Reason::Alarm(id) | Reason::Sequence { current: id, .. } => id,
        _ => return None,
    };
    let name = sel.name(id);
    cfg.alarms.iter().find(|a| a.id == name).map(|a| a.priority)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn selector_invariants(
        alarms in proptest::collection::vec(alarm_cfg(), 1..6),
        latest in any::<bool>(),
        min_dwell_ms in 0u32..2000,
        dwell_s in 1u32..4,
        default in proptest::option::of(0..STREAMS.len()),
        steps in proptest::collection::vec((0u64..1500, ev(6)), 1..120),
    ) {
        let cfg = build(&alarms, latest, min_dwell_ms, dwell_s, default);
        let n = alarms.len();
        let min_dwell_ns = u64::from(min_dwell_ms) * 1_000_000;
        let mut now_ms = 0u64;
        let mut sel = Selector::<HISTORY>::new(&cfg, Stamp::from_ms(now_ms));
        let mut last_change: Option<u64> = None;
        let default_idx = default.unwrap_or(0);

        for (dt, e) in &steps {
            now_ms += dt;
            let now = Stamp::from_ms(now_ms);
            let before_stream = sel.active_stream();
            let before_rank = rank(&sel, &cfg, sel.reason());
            let operator = matches!(e, Ev::Select(_) | Ev::Ack(_));
            match *e {
                Ev::Select(s) => sel.select_index(s, now).unwrap(),
                Ev::Input(a, on) => sel.alarm_input(a % n, on, now).unwrap(),
                Ev::Pulse(a, ms) => sel.trigger(a % n, Some(Duration::from_millis(ms)), now).unwrap(),
                Ev::Ack(a) => {
                    // A refused ack changes nothing; tick so the checks below see `now`.
                    if sel.ack(a % n, now).is_err() {
                        sel.tick(now);
                    }
                }
                Ev::Health(s, up) => sel.stream_health(s, up, now).unwrap(),
                Ev::Tick => sel.tick(now),
            }

            // The history bound.
            prop_assert!(sel.history_len() <= HISTORY);

            // The desired view obeys priority, or the user/default rule.
            let top = (0..n).filter(|&i| sel.alarm_active(i)).map(|i| alarms[i].1).max();
            let desired = sel.desired_stream(now);
            match top {
                Some(p) => {
                    let ok = (0..n).any(|i| sel.alarm_active(i) && alarms[i].1 == p
                        && Some(alarms[i].0) == desired);
                    prop_assert!(ok, "desired {:?} is not a top-priority ({}) alarm's stream", desired, p);
                }
                None => {
                    let expect = sel.user_selection().unwrap_or(default_idx);
                    prop_assert_eq!(desired, Some(expect));
                }
            }

            // Shown == desired once the min dwell has elapsed.
            let elapsed = sel.last_change_ns().is_none_or(|t| now.mono_ns >= t + min_dwell_ns);
            if elapsed {
                prop_assert_eq!(sel.active_stream(), desired);
            }

            // Every change of the shown stream is allowed by the anti-flicker rule.
            if sel.active_stream() != before_stream {
                let cause = sel.history().filter_map(|h| match h.kind {
                    EventKind::ActiveChanged { cause, .. } => Some(cause),
                    _ => None,
                }).last();
                match cause {
                    Some(ChangeCause::Dwell) => {
                        if let Some(t) = last_change {
                            prop_assert!(now.mono_ns >= t + min_dwell_ns,
                                "dwell change after {} ns < min dwell", now.mono_ns - t);
                        }
                    }
                    Some(ChangeCause::Preempt) => {
                        let after_rank = rank(&sel, &cfg, sel.reason());
                        prop_assert!(after_rank > before_rank,
                            "preempt from {:?} to {:?}", before_rank, after_rank);
                    }
                    Some(ChangeCause::User) => prop_assert!(operator),
                    other => prop_assert!(false, "unexpected cause {:?}", other),
                }
                prop_assert_eq!(sel.last_change_ns(), Some(now.mono_ns));
                last_change = Some(now.mono_ns);
            }

            // The deadline, if any, is never in the past after an evaluation at `now`.
            if let Some(d) = sel.next_deadline() {
                prop_assert!(d > now.mono_ns || (d == now.mono_ns && min_dwell_ns == 0),
                    "deadline {} not after now {}", d, now.mono_ns);
            }
        }
    }
}
