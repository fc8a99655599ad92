//! GPIO: debounce on simulated edge streams, the gpiocdev backend's error paths on a host
//! without GPIO, and the input task's retry and reporting under tokio's paused time.

use edgecam::backoff::BackoffConfig;
use edgecam::clock::Clock;
use edgecam::config::{ActiveLevel, AlarmConfig, Config, GpioInputConfig, GpioOutputConfig};
use edgecam::gpio::gpiocdev::GpiocdevBackend;
use edgecam::gpio::mock::{MockInput, MockOutputs};
use edgecam::gpio::{
    AlarmSignal, Debouncer, GpioError, InputBackend, InputLine, InputState, InputStatus,
    OutputBackend, OutputDriver, errno_error, run_gpio_input,
};
use edgecam::health::beacon::BeaconTable;
use edgecam::select::{Selector, Stamp};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

const MS: u64 = 1_000_000;

fn input_cfg(toml_text: &str) -> GpioInputConfig {
    toml::from_str(toml_text).expect("valid input config")
}

// ---- Debouncer -------------------------------------------------------------------------

#[test]
fn bounce_shorter_than_debounce_is_ignored() {
    // Normally-open contact to GND with pull-up: idle high, active low.
    let mut d = Debouncer::new(20 * MS, ActiveLevel::Low, true);
    assert!(!d.is_active());
    // 5 ms pulses low/high for 50 ms, ending high: never 20 ms stable low.
    let mut t = 0;
    for k in 0..10 {
        assert_eq!(d.edge(k % 2 == 1, t), None);
        t += 5 * MS;
        assert_eq!(d.poll(t - 1), None);
    }
    assert_eq!(d.poll(t + 100 * MS), None);
    assert!(!d.is_active());
    assert_eq!(d.deadline(), None);
}

#[test]
fn real_change_is_reported_after_the_interval() {
    let mut d = Debouncer::new(20 * MS, ActiveLevel::Low, true);
    // Contact closes with bounce, then stays closed (low).
    assert_eq!(d.edge(false, 0), None);
    assert_eq!(d.edge(true, 2 * MS), None);
    assert_eq!(d.edge(false, 4 * MS), None);
    assert_eq!(d.deadline(), Some(24 * MS));
    assert_eq!(d.poll(23 * MS), None);
    assert_eq!(d.poll(24 * MS), Some(true));
    assert!(d.is_active());
    // Opens again: reported 20 ms later, through the next edge if one comes after.
    assert_eq!(d.edge(true, 100 * MS), None);
    assert_eq!(
        d.edge(false, 130 * MS),
        Some(false),
        "matured before this edge"
    );
    assert!(!d.is_active());
    assert_eq!(d.deadline(), Some(150 * MS));
}

#[test]
fn normally_closed_polarity_is_the_reverse() {
    // NC contact: idle the loop is closed (low); an opened loop (high) is the alarm.
    let mut d = Debouncer::new(10 * MS, ActiveLevel::High, false);
    assert!(!d.is_active());
    d.edge(true, 0);
    assert_eq!(d.poll(10 * MS), Some(true));
    d.edge(false, 50 * MS);
    assert_eq!(d.poll(60 * MS), Some(false));
}

#[test]
fn zero_period_reports_at_once() {
    let mut d = Debouncer::new(0, ActiveLevel::High, false);
    assert_eq!(d.edge(true, 5), Some(true));
    assert_eq!(d.edge(true, 6), None);
    assert_eq!(d.edge(false, 7), Some(false));
    assert_eq!(d.deadline(), None);
}

// ---- gpiocdev error paths (this host has no GPIO chips) ---------------------------------

#[tokio::test]
async fn missing_chip_gives_clear_error() {
    let cfg = input_cfg("chip = \"/dev/gpiochip99\"\nline = 17");
    let err = GpiocdevBackend
        .open_input(&cfg)
        .err()
        .expect("no such chip");
    assert_eq!(
        err,
        GpioError::NoSuchChip {
            path: "/dev/gpiochip99".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "cannot open /dev/gpiochip99: no such GPIO chip"
    );
    // A bare chip name is looked up under /dev.
    let cfg = input_cfg("chip = \"gpiochip99\"\nline = \"GPIO17\"");
    let err = GpiocdevBackend
        .open_input(&cfg)
        .err()
        .expect("no such chip");
    assert_eq!(
        err.to_string(),
        "cannot open /dev/gpiochip99: no such GPIO chip"
    );
    let out: GpioOutputConfig = toml::from_str("chip = \"gpiochip99\"\nline = 4").unwrap();
    assert!(matches!(
        GpiocdevBackend.open_output(&out).err(),
        Some(GpioError::NoSuchChip { .. })
    ));
}

#[tokio::test]
async fn a_file_that_is_not_a_chip_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpiochipX");
    std::fs::write(&path, b"").unwrap();
    let p = path.to_str().unwrap().to_string();
    let cfg = input_cfg(&format!("chip = \"{p}\"\nline = 1"));
    assert_eq!(
        GpiocdevBackend.open_input(&cfg).err(),
        Some(GpioError::NotAGpioChip { path: p })
    );
}

/// The tests run as root here, which can open any file, so EACCES cannot be produced honestly;
/// the errno-to-message mapping the backends use is tested directly instead.
#[test]
fn errno_mapping_gives_actionable_messages() {
    let e = errno_error("/dev/gpiochip0", 13);
    assert_eq!(
        e.to_string(),
        "permission denied on /dev/gpiochip0: add the edgecam user to the gpio group"
    );
    assert_eq!(
        errno_error("/dev/gpiochip0", 1),
        GpioError::PermissionDenied {
            path: "/dev/gpiochip0".into()
        }
    );
    assert_eq!(
        errno_error("/dev/gpiochip7", 2).to_string(),
        "cannot open /dev/gpiochip7: no such GPIO chip"
    );
    assert!(matches!(
        errno_error("/dev/gpiochip0", 5),
        GpioError::Io { .. }
    ));
}

// ---- the input task under paused time ---------------------------------------------------

/// A clock that follows tokio's (paused) time.
#[derive(Debug)]
struct TokioClock(tokio::time::Instant);

impl Clock for TokioClock {
    fn mono_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
    fn wall_us(&self) -> i64 {
        self.mono_ns() as i64 / 1000
    }
}

/// Counts open attempts on the real gpiocdev backend.
#[derive(Default)]
struct CountingGpiocdev(AtomicU64);

impl InputBackend for CountingGpiocdev {
    fn open_input(&self, cfg: &GpioInputConfig) -> Result<Box<dyn InputLine>, GpioError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        GpiocdevBackend.open_input(cfg)
    }
}

#[tokio::test(start_paused = true)]
async fn missing_chip_marks_failed_and_keeps_retrying_with_capped_backoff() {
    let backend = Arc::new(CountingGpiocdev::default());
    let status = Arc::new(InputStatus::default());
    let (tx, mut rx) = mpsc::channel(8);
    let clock = Arc::new(TokioClock(tokio::time::Instant::now()));
    let backoff = BackoffConfig {
        base: Duration::from_millis(500),
        cap: Duration::from_secs(4),
        stable_after: Duration::from_secs(4),
    };
    let task = tokio::spawn(run_gpio_input(
        3,
        input_cfg("chip = \"/dev/gpiochip99\"\nline = 17"),
        backend.clone(),
        clock,
        status.clone(),
        tx,
        backoff,
    ));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        status.state(),
        InputState::Failed("cannot open /dev/gpiochip99: no such GPIO chip".into())
    );
    // Attempts at 0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5 s (doubling, capped at 4 s).
    tokio::time::sleep(Duration::from_millis(20_000)).await;
    assert_eq!(backend.0.load(Ordering::SeqCst), 8);
    assert_eq!(status.failures(), 8);
    assert!(!task.is_finished(), "the task keeps retrying");
    assert!(rx.try_recv().is_err(), "no signal from a line never opened");
    // The selector goes away: the task ends at its next attempt.
    drop(rx);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(task.is_finished());
}

#[tokio::test(start_paused = true)]
async fn mock_line_is_debounced_and_recovers_after_failure() {
    let line = MockInput::new(true); // NO contact with pull-up: idle high
    line.fail_opens(Some(GpioError::PermissionDenied {
        path: "/dev/gpiochip0".into(),
    }));
    let status = Arc::new(InputStatus::default());
    let (tx, mut rx) = mpsc::channel::<AlarmSignal>(8);
    let clock = Arc::new(TokioClock(tokio::time::Instant::now()));
    tokio::spawn(run_gpio_input(
        1,
        input_cfg("line = 17\ndebounce_ms = 20"),
        Arc::new(line.clone()),
        clock,
        status.clone(),
        tx,
        BackoffConfig::default(),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(status.state(), InputState::Failed(m) if m.contains("gpio group")));

    line.fail_opens(None);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(status.state(), InputState::Ok);
    let first = rx.recv().await.unwrap();
    assert_eq!(
        (first.alarm, first.on),
        (1, false),
        "initial level is reported"
    );

    // Bounce: 3 ms low, high again. Nothing is reported.
    line.set_high(false);
    tokio::time::sleep(Duration::from_millis(3)).await;
    line.set_high(true);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rx.try_recv().is_err());

    // A real closure: reported 20 ms after the edge.
    let t0 = tokio::time::Instant::now();
    line.set_high(false);
    let on = rx.recv().await.unwrap();
    assert!(on.on);
    assert_eq!(t0.elapsed(), Duration::from_millis(20));

    // The device disappears: failed, then back with a fresh level report.
    line.break_line(GpioError::Io {
        path: "mock".into(),
        message: "gone".into(),
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(matches!(status.state(), InputState::Failed(_)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status.state(), InputState::Ok);
    let resync = rx.recv().await.unwrap();
    assert!(resync.on, "line still reads low = active");
    // Failed at 0 s, opened at 0.5 s, reopened after the break.
    assert_eq!(line.opens(), 3);
}

/// The input task beats its watchdog slot every second on a quiet line and while it waits to
/// retry a missing chip; a stopped task (aborted here, hung in real life) goes stale.
#[tokio::test(start_paused = true)]
async fn input_task_beats_its_beacon_while_quiet_and_while_failing() {
    let beacons = BeaconTable::new(4);
    let clock = Arc::new(TokioClock(tokio::time::Instant::now()));
    let budget = Duration::from_secs(5);

    // A quiet line: no edge ever arrives after the first level report.
    let quiet = MockInput::new(true);
    let quiet_status = Arc::new(InputStatus::default());
    let quiet_guard = beacons.register("gpio:door", budget, 0).unwrap();
    quiet_status.watch_with(quiet_guard.beacon(), "door");
    let (tx, mut rx) = mpsc::channel(8);
    let quiet_task = tokio::spawn(run_gpio_input(
        0,
        input_cfg("line = 17"),
        Arc::new(quiet.clone()),
        clock.clone(),
        quiet_status,
        tx,
        BackoffConfig::default(),
    ));

    // A missing chip: every open fails, the task backs off up to 30 s between attempts.
    let missing = MockInput::new(true);
    missing.fail_opens(Some(GpioError::Io {
        path: "/dev/gpiochip9".into(),
        message: "gone".into(),
    }));
    let missing_status = Arc::new(InputStatus::default());
    let missing_guard = beacons.register("gpio:gate", budget, 0).unwrap();
    missing_status.watch_with(missing_guard.beacon(), "gate");
    let (tx2, _rx2) = mpsc::channel(8);
    tokio::spawn(run_gpio_input(
        1,
        input_cfg("line = 18"),
        Arc::new(missing),
        clock.clone(),
        missing_status.clone(),
        tx2,
        BackoffConfig::default(),
    ));

    assert_eq!(rx.recv().await.map(|s| s.on), Some(false));
    for _ in 0..12 {
        // 120 s in all: several 30 s backoff periods, far beyond the 5 s budget.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(beacons.stalest(clock.mono_ns()), None);
    }
    assert!(missing_status.failures() >= 5, "it kept retrying");

    quiet_task.abort();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stale = beacons
        .stalest(clock.mono_ns())
        .expect("the stopped task is stale");
    assert_eq!(stale.name, "gpio:door");
    drop(missing_guard);
}

// ---- outputs ------------------------------------------------------------------------------

#[test]
fn output_driver_follows_selector_outputs() {
    let mut cfg: Config = toml::from_str(
        r#"
        [[streams]]
        id = "cam"
        kind = "testpattern"
        [[alarms]]
        id = "door"
        stream = "cam"
        [alarms.output]
        line = 5
        [[alarms]]
        id = "quiet"
        stream = "cam"
        "#,
    )
    .unwrap();
    cfg.select.min_dwell_ms = 0;
    let alarms: &[AlarmConfig] = &cfg.alarms;
    let mock = MockOutputs::default();
    let (mut driver, errors) = OutputDriver::open(&mock, alarms);
    assert!(errors.is_empty());
    let mut sel = Selector::<16>::new(&cfg, Stamp::from_ms(0));
    driver.apply(sel.outputs()).unwrap();
    assert!(mock.log().is_empty(), "already off: nothing written");
    sel.alarm_input(0, true, Stamp::from_ms(1)).unwrap();
    sel.alarm_input(1, true, Stamp::from_ms(1)).unwrap();
    driver.apply(sel.outputs()).unwrap();
    driver.apply(sel.outputs()).unwrap();
    sel.alarm_input(0, false, Stamp::from_ms(2)).unwrap();
    driver.apply(sel.outputs()).unwrap();
    assert_eq!(
        mock.log(),
        vec![("5".to_string(), true), ("5".to_string(), false)]
    );
    // A missing chip is reported per alarm, and the others still open.
    let (_, errors) = OutputDriver::open(&GpiocdevBackend, alarms);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 0);
}
