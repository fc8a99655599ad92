//! Deterministic selector scenarios driven by an injected clock (`Stamp::from_ms`).

mod common;

use common::{alarm, pattern};
use edgecam::config::{AlarmConfig, AlarmMode, Config, Multiple};
use edgecam::select::{AlarmState, ChangeCause, EventKind, Reason, SelectError, Selector, Stamp};
use std::time::Duration;

/// Streams a..d, no default (so the first), min dwell 1 s, dwell 5 s.
fn config(alarms: Vec<AlarmConfig>) -> Config {
    let mut cfg: Config = toml::from_str("").expect("empty config parses");
    cfg.streams = ["a", "b", "c", "d"].map(pattern).to_vec();
    cfg.alarms = alarms;
    cfg
}

fn t(ms: u64) -> Stamp {
    Stamp::from_ms(ms)
}

fn active<const H: usize>(sel: &Selector<H>) -> &str {
    sel.active_stream_id().unwrap_or("-")
}

#[test]
fn default_is_first_stream_then_configured_default() {
    let sel = Selector::<64>::new(&config(vec![]), t(0));
    assert_eq!(active(&sel), "a");
    assert_eq!(sel.reason_string(), "default");

    let mut cfg = config(vec![]);
    cfg.select.default = Some("c".into());
    let sel = Selector::<64>::new(&cfg, t(0));
    assert_eq!(active(&sel), "c");
}

#[test]
fn user_selection_is_immediate_and_unknown_stream_is_rejected() {
    let mut sel = Selector::<64>::new(&config(vec![]), t(0));
    sel.select(Some("b"), t(10)).unwrap();
    assert_eq!(active(&sel), "b");
    assert_eq!(sel.reason_string(), "user");
    // Even within the min dwell: a click is never held back.
    sel.select(Some("c"), t(20)).unwrap();
    assert_eq!(active(&sel), "c");
    let err = sel.select(Some("nope"), t(30)).unwrap_err();
    assert_eq!(err, SelectError::UnknownStream("nope".into()));
    assert_eq!(err.to_string(), "unknown stream `nope`");
    assert_eq!(active(&sel), "c");
    sel.select(None, t(40)).unwrap();
    assert_eq!(active(&sel), "a");
}

#[test]
fn transparent_alarm_follows_input_and_returns_to_user() {
    let cfg = config(vec![alarm("door", "c", 1, AlarmMode::Transparent)]);
    let mut sel = Selector::<64>::new(&cfg, t(0));
    sel.select(Some("b"), t(0)).unwrap();
    let door = sel.alarm_index("door").unwrap();
    sel.alarm_input(door, true, t(5000)).unwrap();
    assert_eq!(active(&sel), "c");
    assert_eq!(sel.reason_string(), "alarm:door");
    assert_eq!(sel.alarm_state(door), Some(AlarmState::Active));
    sel.alarm_input(door, false, t(7000)).unwrap();
    assert_eq!(sel.alarm_state(door), Some(AlarmState::Idle));
    assert_eq!(active(&sel), "b");
    assert_eq!(sel.reason_string(), "user");
    // A click during an alarm is remembered but does not beat the alarm.
    sel.alarm_input(door, true, t(9000)).unwrap();
    sel.select(Some("d"), t(9100)).unwrap();
    assert_eq!(active(&sel), "c");
    sel.alarm_input(door, false, t(12_000)).unwrap();
    assert_eq!(active(&sel), "d");
}

#[test]
fn api_pulse_outlasts_a_short_contact_hold() {
    let cfg = config(vec![alarm("door", "c", 1, AlarmMode::Hold)]);
    let mut sel = Selector::<64>::new(&cfg, t(0));
    let door = sel.alarm_index("door").unwrap();
    sel.trigger(door, Some(Duration::from_secs(60)), t(0))
        .unwrap();
    sel.alarm_input(door, true, t(1000)).unwrap();
    sel.alarm_input(door, false, t(2000)).unwrap();
    // The contact's 30 s hold would end at 32 s; the API's 60 s pulse still runs.
    sel.tick(t(40_000));
    assert_eq!(active(&sel), "c");
    sel.tick(t(60_000));
    assert_eq!(active(&sel), "a");
}

#[test]
fn hold_alarm_stays_for_hold_and_retrigger_restarts_it() {
    let cfg = config(vec![alarm("door", "c", 1, AlarmMode::Hold)]);
    let mut sel = Selector::<64>::new(&cfg, t(0));
    let door = sel.alarm_index("door").unwrap();
    sel.alarm_input(door, true, t(1000)).unwrap();
    sel.alarm_input(door, false, t(2000)).unwrap();
    assert_eq!(
        sel.alarm_state(door),
        Some(AlarmState::Holding {
            until_mono_ns: 32_000_000_000
        })
    );
    assert_eq!(sel.next_deadline(), Some(32_000_000_000));
    sel.tick(t(20_000));
    assert_eq!(active(&sel), "c");
    // Re-trigger and clear again: the hold restarts from the new clear.
    sel.alarm_input(door, true, t(20_000)).unwrap();
    sel.alarm_input(door, false, t(21_000)).unwrap();
    sel.tick(t(32_000));
    assert_eq!(active(&sel), "c");
    sel.tick(t(50_999));
    assert_eq!(active(&sel), "c");
    sel.tick(t(51_000));
    assert_eq!(active(&sel), "a");
    assert_eq!(sel.alarm_state(door), Some(AlarmState::Idle));
}

#[test]
fn api_trigger_with_hold_override_is_a_pulse() {
    let cfg = config(vec![alarm("det", "d", 1, AlarmMode::Transparent)]);
    let mut sel = Selector::<64>::new(&cfg, t(0));
    let det = sel.alarm_index("det").unwrap();
    sel.trigger(det, Some(Duration::from_secs(3)), t(1000))
        .unwrap();
    assert_eq!(active(&sel), "d");
    assert_eq!(sel.next_deadline(), Some(4_000_000_000));
    sel.tick(t(4000));
    assert_eq!(active(&sel), "a");
}

#[test]
fn latched_alarm_needs_ack_and_ack_semantics() {
    let cfg = config(vec![
        alarm("fire", "b", 5, AlarmMode::Latched),
        alarm("door", "c", 1, AlarmMode::Hold),
    ]);
    let mut sel = Selector::<64>::new(&cfg, t(0));
    let fire = sel.alarm_index("fire").unwrap();
    let door = sel.alarm_index("door").unwrap();
    // Nothing to acknowledge: a no-op, for a latched and for a hold alarm.
    assert_eq!(sel.ack(fire, t(0)), Ok(false));
    assert_eq!(sel.ack(door, t(0)), Ok(false));

    sel.alarm_input(fire, true, t(1000)).unwrap();
    sel.alarm_input(fire, false, t(2000)).unwrap();
    sel.tick(t(100_000));
    assert_eq!(sel.alarm_state(fire), Some(AlarmState::Latched));
    assert_eq!(active(&sel), "b");
    assert_eq!(sel.ack(fire, t(100_000)), Ok(true));
    assert_eq!(active(&sel), "a");

    // Ack while the input is still active: stays active as if transparent, ends with the input.
    sel.alarm_input(fire, true, t(200_000)).unwrap();
    assert_eq!(sel.ack(fire, t(200_500)), Ok(true));
    assert_eq!(sel.alarm_state(fire), Some(AlarmState::Active));
    assert_eq!(active(&sel), "b");
    assert!(
        sel.snapshot().1.is_empty(),
        "an acknowledged alarm is not persisted"
    );
    sel.alarm_input(fire, false, t(202_000)).unwrap();
    assert_eq!(sel.alarm_state(fire), Some(AlarmState::Idle));
    assert_eq!(active(&sel), "a");
    assert!(
        sel.history()
            .any(|e| matches!(e.kind, EventKind::AlarmAcknowledged { .. }))
    );
}

#[test]
fn ack_ends_a_hold_and_transparent_alarms_have_nothing_to_acknowledge() {
    let cfg = config(vec![
        alarm("door", "b", 5, AlarmMode::Hold),
        alarm("beam", "c", 1, AlarmMode::Transparent),
    ]);
    let mut sel = Selector::<64>::new(&cfg, t(0));
    let door = sel.alarm_index("door").unwrap();
    let beam = sel.alarm_index("beam").unwrap();

    // The contact opens and closes: the hold (30 s) keeps the door camera up ...
    sel.alarm_input(door, true, t(1000)).unwrap();
    sel.alarm_input(door, false, t(2000)).unwrap();
    assert!(matches!(
        sel.alarm_state(door),
        Some(AlarmState::Holding { .. })
    ));
    assert_eq!(active(&sel), "b");
    // ... until the guard acknowledges: the hold ends and the view returns at once.
    assert_eq!(sel.ack(door, t(3000)), Ok(true));
    assert_eq!(sel.alarm_state(door), Some(AlarmState::Idle));
    assert_eq!(active(&sel), "a");
    assert!(
        sel.history()
            .any(|e| matches!(e.kind, EventKind::AlarmAcknowledged { .. }))
    );

    // Acknowledged while the contact is still open: it ends when the contact closes, no hold.
    sel.alarm_input(door, true, t(10_000)).unwrap();
    assert_eq!(sel.ack(door, t(10_500)), Ok(true));
    assert_eq!(sel.alarm_state(door), Some(AlarmState::Active));
    assert_eq!(active(&sel), "b");
    assert_eq!(
        sel.ack(door, t(10_600)),
        Ok(false),
        "nothing more to acknowledge"
    );
    sel.alarm_input(door, false, t(11_000)).unwrap();
    assert_eq!(sel.alarm_state(door), Some(AlarmState::Idle));
    assert_eq!(active(&sel), "a");
    // The waiver was for that activation only: the next one holds again.
    sel.alarm_input(door, true, t(20_000)).unwrap();
    sel.alarm_input(door, false, t(21_000)).unwrap();
    assert!(matches!(
        sel.alarm_state(door),
        Some(AlarmState::Holding { .. })
    ));

    // A transparent alarm ends with its input: acknowledging it is a typed error ...
    assert_eq!(
        sel.ack(beam, t(22_000)),
        Err(SelectError::NotAcknowledgeable("beam".into()))
    );
    // ... unless an API pulse holds it up, which an acknowledgement ends.
    sel.trigger(beam, Some(Duration::from_secs(60)), t(23_000))
        .unwrap();
    assert!(matches!(
        sel.alarm_state(beam),
        Some(AlarmState::Holding { .. })
    ));
    assert_eq!(sel.ack(beam, t(24_000)), Ok(true));
    assert_eq!(sel.alarm_state(beam), Some(AlarmState::Idle));
}

#[test]
fn priority_orders_alarms_and_higher_preempts_at_once() {
    let cfg = config(vec![
        alarm("low", "b", 1, AlarmMode::Transparent),
        alarm("high", "c", 9, AlarmMode::Transparent),
    ]);
    let mut sel = Selector::<64>::new(&cfg, t(0));
    let low = sel.alarm_index("low").unwrap();
    let high = sel.alarm_index("high").unwrap();
    sel.alarm_input(low, true, t(5000)).unwrap();
    assert_eq!(active(&sel), "b");
    // 10 ms later, well inside the min dwell: a higher priority switches at once.
    sel.alarm_input(high, true, t(5010)).unwrap();
    assert_eq!(active(&sel), "c");
    let last = sel
        .history()
        .filter(|e| matches!(e.kind, EventKind::ActiveChanged { .. }))
        .last()
        .map(|e| e.kind);
    assert!(matches!(
        last,
        Some(EventKind::ActiveChanged {
            cause: ChangeCause::Preempt,
            ..
        })
    ));
    // A lower-priority re-raise never takes over from a higher one.
    sel.alarm_input(low, false, t(5100)).unwrap();
    sel.alarm_input(low, true, t(5200)).unwrap();
    assert_eq!(active(&sel), "c");
    // The high one clears inside the min dwell: going down waits for the dwell.
    sel.alarm_input(high, false, t(5500)).unwrap();
    assert_eq!(active(&sel), "c");
    assert_eq!(sel.next_deadline(), Some(6_010_000_000));
    sel.tick(t(6010));
    assert_eq!(active(&sel), "b");
    assert_eq!(sel.reason_string(), "alarm:low");
}

#[test]
fn sequence_cycles_with_dwell() {
    let cfg = config(vec![
        alarm("x", "b", 3, AlarmMode::Transparent),
        alarm("y", "c", 3, AlarmMode::Transparent),
        alarm("z", "d", 3, AlarmMode::Transparent),
    ]);
    let mut sel = Selector::<64>::new(&cfg, t(0));
    for id in ["x", "y", "z"] {
        let i = sel.alarm_index(id).unwrap();
        sel.alarm_input(i, true, t(10_000)).unwrap();
    }
    assert_eq!(active(&sel), "b");
    assert_eq!(sel.reason_string(), "sequence:x,y,z");
    assert_eq!(sel.next_deadline(), Some(15_000_000_000));
    let mut seen = Vec::new();
    let mut now = 10_000;
    for _ in 0..6 {
        seen.push(active(&sel).to_string());
        now += 5000;
        sel.tick(t(now));
    }
    assert_eq!(seen, ["b", "c", "d", "b", "c", "d"]);
    // Down to one alarm: no more cycling, plain alarm reason.
    let x = sel.alarm_index("x").unwrap();
    let y = sel.alarm_index("y").unwrap();
    sel.alarm_input(x, false, t(now)).unwrap();
    sel.alarm_input(y, false, t(now)).unwrap();
    sel.tick(t(now + 1000));
    assert_eq!(active(&sel), "d");
    assert_eq!(sel.reason_string(), "alarm:z");
    assert_eq!(sel.next_deadline(), None);
}

#[test]
fn latest_mode_newest_wins_after_min_dwell() {
    let mut cfg = config(vec![
        alarm("x", "b", 3, AlarmMode::Transparent),
        alarm("y", "c", 3, AlarmMode::Transparent),
    ]);
    cfg.select.multiple = Multiple::Latest;
    let mut sel = Selector::<64>::new(&cfg, t(0));
    let x = sel.alarm_index("x").unwrap();
    let y = sel.alarm_index("y").unwrap();
    sel.alarm_input(y, true, t(10_000)).unwrap();
    sel.alarm_input(x, true, t(10_100)).unwrap();
    // Same priority: not a preemption, so the min dwell holds the view for now.
    assert_eq!(active(&sel), "c");
    assert_eq!(sel.desired_stream(t(10_100)), sel.stream_index("b"));
    assert_eq!(sel.next_deadline(), Some(11_000_000_000));
    sel.tick(t(11_000));
    assert_eq!(active(&sel), "b");
    assert_eq!(sel.reason_string(), "alarm:x");
    assert_eq!(sel.next_deadline(), None);
}

#[test]
fn chattering_input_at_20hz_cannot_flicker() {
    let cfg = config(vec![alarm("door", "c", 1, AlarmMode::Transparent)]);
    let mut sel = Selector::<1024>::new(&cfg, t(0));
    let door = sel.alarm_index("door").unwrap();
    sel.select(Some("b"), t(0)).unwrap();
    // 20 Hz square wave for 10 s: 25 ms on, 25 ms off.
    let mut changes = Vec::new();
    let mut last = sel.active_stream();
    for k in 0..400u64 {
        let now = 5000 + k * 25;
        sel.alarm_input(door, k % 2 == 0, t(now)).unwrap();
        sel.tick(t(now));
        if sel.active_stream() != last {
            changes.push(now);
            last = sel.active_stream();
        }
    }
    // Up at once (an alarm beats the user), down only after a full min dwell since the up;
    // the next "on" then preempts again. At most two changes per second, never forty.
    assert!(!changes.is_empty());
    for w in changes.windows(2).step_by(2) {
        assert!(w[1] - w[0] >= 1000, "down too soon after up: {changes:?}");
    }
    assert!(
        changes.len() <= 2 * 10 + 1,
        "{} changes in 10 s",
        changes.len()
    );
}

#[test]
fn video_loss_raises_after_delay_and_clears_on_recovery() {
    let mut a = alarm("vl", "c", 2, AlarmMode::Transparent);
    a.video_loss = true;
    a.video_loss_after_s = 10;
    let mut sel = Selector::<64>::new(&config(vec![a]), t(0));
    let c = sel.stream_index("c").unwrap();
    let vl = sel.alarm_index("vl").unwrap();
    sel.stream_health(c, false, t(1000)).unwrap();
    assert_eq!(sel.next_deadline(), Some(11_000_000_000));
    sel.tick(t(10_999));
    assert!(!sel.alarm_active(vl));
    // A second "lost" report does not restart the timer.
    sel.stream_health(c, false, t(5000)).unwrap();
    sel.tick(t(11_000));
    assert!(sel.alarm_active(vl));
    assert_eq!(active(&sel), "c");
    sel.stream_health(c, true, t(20_000)).unwrap();
    assert!(!sel.alarm_active(vl));
    assert_eq!(active(&sel), "a");
    // Lost for less than the delay: no alarm.
    sel.stream_health(c, false, t(30_000)).unwrap();
    sel.stream_health(c, true, t(35_000)).unwrap();
    sel.tick(t(50_000));
    assert!(!sel.alarm_active(vl));
}

#[test]
fn removing_the_active_stream_falls_back_to_default() {
    let mut cfg = config(vec![alarm("door", "c", 1, AlarmMode::Transparent)]);
    cfg.select.default = Some("b".into());
    let mut sel = Selector::<64>::new(&cfg, t(0));
    sel.select(Some("d"), t(0)).unwrap();
    assert_eq!(active(&sel), "d");
    sel.set_streams(&["a", "b", "c"], t(100));
    assert_eq!(active(&sel), "b");
    assert_eq!(sel.reason_string(), "default");
    assert_eq!(sel.user_selection(), None);
    // An alarm whose stream is gone cannot call it up; the alarm keeps its state.
    let door = sel.alarm_index("door").unwrap();
    sel.set_streams(&["a", "b"], t(200));
    sel.alarm_input(door, true, t(300)).unwrap();
    assert!(sel.alarm_active(door));
    assert_eq!(active(&sel), "b");
    // The stream comes back: the active alarm shows it.
    let mut cfg2 = cfg.clone();
    cfg2.streams.truncate(3);
    sel.apply_config(&cfg2, t(5000));
    assert_eq!(active(&sel), "c");
}

#[test]
fn snapshot_and_restore_bring_back_user_choice_and_latches() {
    let cfg = config(vec![alarm("fire", "d", 5, AlarmMode::Latched)]);
    let mut sel = Selector::<64>::new(&cfg, t(0));
    let g0 = sel.generation();
    sel.select(Some("c"), t(10)).unwrap();
    assert!(sel.generation() > g0);
    let fire = sel.alarm_index("fire").unwrap();
    sel.alarm_input(fire, true, t(20)).unwrap();
    sel.alarm_input(fire, false, t(30)).unwrap();
    let (user, latched) = sel.snapshot();
    assert_eq!(user.as_deref(), Some("c"));
    assert_eq!(latched, vec![("fire".to_string(), 20_000)]);

    let mut fresh = Selector::<64>::new(&cfg, t(0));
    let g = fresh.generation();
    fresh.restore(user.as_deref(), &latched, t(1));
    assert_eq!(fresh.generation(), g, "restoring is not a change to save");
    assert_eq!(active(&fresh), "d");
    assert_eq!(fresh.alarm_state(fire), Some(AlarmState::Latched));
    assert_eq!(fresh.alarm_since_wall_us(fire), Some(20_000));
    fresh.ack(fire, t(2)).unwrap();
    assert!(fresh.generation() > g, "an ack changes the saved state");
    assert_eq!(active(&fresh), "c");
    assert_eq!(fresh.reason_string(), "user");

    // Unknown names in the saved state are skipped.
    let mut other = Selector::<64>::new(&cfg, t(0));
    other.restore(Some("gone"), &[("nope".to_string(), 1)], t(1));
    assert_eq!(active(&other), "a");
}

#[test]
fn history_is_bounded_and_records_changes() {
    let cfg = config(vec![alarm("door", "c", 1, AlarmMode::Transparent)]);
    let mut sel = Selector::<16>::new(&cfg, t(0));
    let door = sel.alarm_index("door").unwrap();
    for k in 0..100u64 {
        sel.alarm_input(door, k % 2 == 0, t(k * 2000)).unwrap();
        assert!(sel.history_len() <= 16);
    }
    assert_eq!(sel.history_len(), 16);
    assert_eq!(sel.history_capacity(), 16);
    assert!(sel.history_total() > 16);
    let times: Vec<u64> = sel.history().map(|e| e.at.mono_ns).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    let last_active = sel
        .history()
        .filter_map(|e| match e.kind {
            EventKind::ActiveChanged { stream, reason, .. } => Some((stream, reason)),
            _ => None,
        })
        .last()
        .unwrap();
    assert_eq!(last_active.0.map(|n| sel.name(n)), sel.active_stream_id());
    assert_eq!(last_active.1, sel.reason());
    assert!(matches!(sel.reason(), Reason::Default));
}

#[test]
fn outputs_follow_alarm_activity() {
    let mut a = alarm("door", "c", 1, AlarmMode::Hold);
    a.output = Some(toml::from_str("line = 5").unwrap());
    let cfg = config(vec![a, alarm("x", "b", 0, AlarmMode::Transparent)]);
    let mut sel = Selector::<16>::new(&cfg, t(0));
    let door = sel.alarm_index("door").unwrap();
    assert_eq!(sel.outputs().collect::<Vec<_>>(), vec![(door, false)]);
    sel.alarm_input(door, true, t(1)).unwrap();
    sel.alarm_input(door, false, t(2)).unwrap();
    assert!(sel.output_on(door));
    sel.tick(t(30_002));
    assert!(!sel.output_on(door));
    sel.alarm_input(1, true, t(30_003)).unwrap();
    assert!(!sel.output_on(1), "no output configured");
}

#[test]
fn unknown_indices_are_errors() {
    let mut sel = Selector::<16>::new(&config(vec![]), t(0));
    assert!(matches!(
        sel.alarm_input(3, true, t(0)),
        Err(SelectError::UnknownAlarm(_))
    ));
    assert!(matches!(
        sel.stream_health(9, true, t(0)),
        Err(SelectError::UnknownStream(_))
    ));
    assert_eq!(sel.alarm_index("x"), None);
}
