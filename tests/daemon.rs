//! The daemon wired end to end with test-pattern streams: rings fill keyframe-first, the
//! selection and latched alarms survive a restart through the real state file, and a live
//! config change touches only the streams it changes.

use std::sync::Arc;
use std::time::Duration;

use edgecam::clock::{Clock, SystemClock};
mod common;

use common::{alarm, pattern, three_cameras as config};
use edgecam::config::{
    ActiveLevel, AlarmConfig, AlarmMode, Bias, GpioInputConfig, GpioOutputConfig, LineRef,
    StreamKind,
};
use edgecam::daemon::Daemon;
use edgecam::daemon::alarms::GpioBackends;
use edgecam::gpio::InputState;
use edgecam::gpio::mock::{MockInput, MockOutputs};
use edgecam::ring::Start;

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock::new())
}

/// Polls `f` every 20 ms for up to 20 s (generous: this is a deadline, not a measurement).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn wait_view(daemon: &Daemon, stream: &str, reason: &str) {
    let mut rx = daemon.control().subscribe();
    let deadline = tokio::time::sleep(Duration::from_secs(20));
    tokio::pin!(deadline);
    loop {
        {
            let v = rx.borrow_and_update();
            if v.stream.as_deref() == Some(stream) && v.reason == reason {
                return;
            }
        }
        tokio::select! {
            r = rx.changed() => r.expect("control task alive"),
            _ = &mut deadline => panic!(
                "view never became {stream} ({reason}); last: {:?}",
                daemon.control().view()
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rings_fill_keyframe_first_for_every_stream() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(config(dir.path()), clock()).await.unwrap();
    for id in ["cam1", "cam2", "cam3"] {
        let ring = Arc::clone(&daemon.streams().get(id).unwrap().ring);
        eventually("frames in every ring", || ring.head() >= 12).await;
        let mut reader = ring.reader(Start::Oldest);
        let mut buf = Vec::new();
        let first = reader.next_into(&mut buf).unwrap().expect("a frame");
        assert!(first.info.keyframe, "{id}: first frame is a keyframe");
        assert_eq!(first.seq, 0);
        let mut last = first.seq;
        while let Ok(Some(m)) = reader.next_into(&mut buf) {
            assert_eq!(m.seq, last + 1, "{id}: sequence numbers are consecutive");
            last = m.seq;
        }
        assert!(ring.latest_keyframe().is_some());
    }
    daemon.shutdown().await;
}

/// Found by the system-test VM (tests/vm, scenario 3): `POST /api/active` answered with the
/// old view because the control task replied before publishing the new one. Every answer
/// must come after the view it caused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_is_published_before_a_command_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(config(dir.path()), clock()).await.unwrap();
    wait_view(&daemon, "cam1", "default").await;
    let control = daemon.control();
    // Each change is persisted (with fsync), so a few rounds keep the test quick.
    for i in 0..20 {
        let want = if i % 2 == 0 { "cam2" } else { "cam1" };
        control.select(Some(want.into())).await.unwrap();
        let view = control.view();
        assert_eq!(
            view.stream.as_deref(),
            Some(want),
            "after select #{i}: {view:?}"
        );
        assert_eq!(view.reason, "user");
    }
    control.trigger("door", None).await.unwrap();
    assert_eq!(control.view().stream.as_deref(), Some("cam3"));
    control.clear("door").await.unwrap();
    assert!(control.ack("door").await.unwrap());
    assert_eq!(control.view().stream.as_deref(), Some("cam1"));
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selection_and_latched_alarm_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(config(dir.path()), clock()).await.unwrap();
    wait_view(&daemon, "cam1", "default").await;
    daemon.control().select(Some("cam2".into())).await.unwrap();
    wait_view(&daemon, "cam2", "user").await;
    daemon.control().trigger("door", None).await.unwrap();
    daemon.control().clear("door").await.unwrap();
    wait_view(&daemon, "cam3", "alarm:door").await;
    // The input cleared: the published view says so although the shown stream did not move.
    eventually("door shown as latched", || {
        let view = daemon.control().view();
        view.alarms
            .iter()
            .any(|a| a.id == "door" && a.state == "latched")
    })
    .await;
    assert!(
        daemon.control().select(Some("nope".into())).await.is_err(),
        "unknown stream is rejected"
    );
    daemon.shutdown().await;
    assert!(dir.path().join("state.bin").exists(), "state file written");

    // A new process: the latched alarm is still shown, and after ack the user's choice is back.
    let daemon = Daemon::start(config(dir.path()), clock()).await.unwrap();
    wait_view(&daemon, "cam3", "alarm:door").await;
    let view = daemon.control().view();
    let door = view.alarms.iter().find(|a| a.id == "door").unwrap();
    assert_eq!(door.state, "latched");
    assert!(daemon.control().ack("door").await.unwrap());
    wait_view(&daemon, "cam2", "user").await;
    daemon.shutdown().await;

    // Acknowledged: a third start has no alarm and keeps the selection.
    let daemon = Daemon::start(config(dir.path()), clock()).await.unwrap();
    wait_view(&daemon, "cam2", "user").await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_config_change_touches_only_changed_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(config(dir.path()), clock()).await.unwrap();
    let cam1 = Arc::clone(&daemon.streams().get("cam1").unwrap().ring);
    let cam2 = Arc::clone(&daemon.streams().get("cam2").unwrap().ring);
    eventually("cam1 frames", || cam1.head() >= 5).await;

    let mut cfg = config(dir.path());
    cfg.streams.retain(|s| s.id != "cam3");
    cfg.alarms.clear();
    cfg.streams[1].bitrate_kbps = Some(300); // cam2 changed
    cfg.streams.push(pattern("cam4"));
    daemon.apply_config(cfg).await.unwrap();

    assert!(
        daemon.streams().get("cam3").is_none(),
        "removed stream stopped"
    );
    assert!(
        daemon.streams().get("cam4").is_some(),
        "added stream started"
    );
    let cam1_after = &daemon.streams().get("cam1").unwrap().ring;
    assert!(
        Arc::ptr_eq(&cam1, cam1_after),
        "unchanged stream kept its ring"
    );
    let cam2_after = &daemon.streams().get("cam2").unwrap().ring;
    assert!(!Arc::ptr_eq(&cam2, cam2_after), "changed stream restarted");
    let before = cam1.head();
    eventually("cam1 keeps running", || cam1.head() >= before + 5).await;
    let cam4 = Arc::clone(&daemon.streams().get("cam4").unwrap().ring);
    eventually("cam4 frames", || cam4.head() >= 3).await;
    daemon.shutdown().await;
}

fn gpio_alarm(chip: &str) -> AlarmConfig {
    AlarmConfig {
        gpio: Some(GpioInputConfig {
            chip: chip.into(),
            line: LineRef::Offset(17),
            active: ActiveLevel::Low,
            bias: Bias::PullUp,
            debounce_ms: 20,
        }),
        output: Some(GpioOutputConfig {
            chip: chip.into(),
            line: LineRef::Offset(27),
            active: ActiveLevel::High,
        }),
        ..alarm("gate", "cam2", 5, AlarmMode::Transparent)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpio_contact_calls_up_its_stream_and_drives_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.alarms = vec![gpio_alarm("gpiochip0")];
    let contact = MockInput::new(true); // active low: high = idle
    let relays = MockOutputs::default();
    let gpio = GpioBackends {
        input: Arc::new(contact.clone()),
        output: Arc::new(relays.clone()),
    };
    let daemon = Daemon::start_with(cfg, clock(), gpio).await.unwrap();
    wait_view(&daemon, "cam1", "default").await;
    eventually("input opened", || contact.opens() >= 1).await;

    contact.set_high(false); // contact closes to ground
    wait_view(&daemon, "cam2", "alarm:gate").await;
    eventually("relay on", || {
        relays.log().last() == Some(&("27".to_string(), true))
    })
    .await;

    contact.set_high(true);
    wait_view(&daemon, "cam1", "default").await;
    eventually("relay off", || {
        relays.log().last() == Some(&("27".to_string(), false))
    })
    .await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_gpio_chip_fails_only_its_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.alarms = vec![gpio_alarm("gpiochip99")];
    // The real character-device backend, against a chip this machine does not have.
    let daemon = Daemon::start_with(cfg, clock(), GpioBackends::gpiocdev())
        .await
        .unwrap();
    let failed = || {
        daemon.alarm_inputs().statuses().any(|(id, s)| {
            id == "gate" && matches!(s, InputState::Failed(ref m) if m.contains("gpiochip99"))
        })
    };
    eventually("input marked failed", failed).await;
    // Everything else keeps working: streams run and the API alarm path still switches.
    let ring = Arc::clone(&daemon.streams().get("cam1").unwrap().ring);
    eventually("cam1 frames", || ring.head() >= 5).await;
    daemon
        .control()
        .trigger("gate", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    wait_view(&daemon, "cam2", "alarm:gate").await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_camera_raises_its_video_loss_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // A camera nobody answers for: nothing listens on this port (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut lost = pattern("cam3");
    lost.kind = StreamKind::Rtsp;
    lost.url = Some(format!("rtsp://127.0.0.1:{port}/stream"));
    lost.width = None;
    lost.height = None;
    lost.fps = None;
    lost.bitrate_kbps = None;
    lost.gop = None;
    cfg.streams[2] = lost;
    cfg.alarms = vec![AlarmConfig {
        video_loss: true,
        video_loss_after_s: 1,
        ..alarm("cam3-lost", "cam3", 1, AlarmMode::Transparent)
    }];
    edgecam::config::validate(&cfg).expect("valid");
    let daemon = Daemon::start(cfg, clock()).await.unwrap();
    wait_view(&daemon, "cam3", "alarm:cam3-lost").await;
    let status = daemon.streams().get("cam3").unwrap().stats().snapshot();
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("refused"),
        "clear last_error: {:?}",
        status.last_error
    );
    daemon.shutdown().await;
}

/// Every stream loop and the control task are in the watchdog's beacon table, beat into it,
/// and leave it when a config change removes them (a stopped stream must not look hung).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beacons_follow_the_running_loops() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut daemon = Daemon::start(config(dir.path()), Arc::clone(&clock))
        .await
        .unwrap();
    let beacons = daemon.beacons();
    let mut names = beacons.names();
    names.sort();
    assert_eq!(
        names,
        ["control", "stream:cam1", "stream:cam2", "stream:cam3"]
    );

    let mut cfg = config(dir.path());
    cfg.streams.retain(|s| s.id != "cam3");
    cfg.alarms.clear();
    daemon.apply_config(cfg).await.unwrap();
    let mut names = beacons.names();
    names.sort();
    assert_eq!(names, ["control", "stream:cam1", "stream:cam2"]);

    // Judged a full stream budget after now, every loop is fresh only once each has beaten
    // again after now: the beats reach the table.
    let t0 = clock.mono_ns();
    let horizon = t0 + edgecam::health::STREAM_BUDGET.as_nanos() as u64;
    eventually("every loop beats", || beacons.stalest(horizon).is_none()).await;
    daemon.shutdown().await;
}
