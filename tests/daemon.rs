//! The daemon wired end to end with test-pattern streams: rings fill keyframe-first, the
//! selection and latched alarms survive a restart through the real state file, and a live
//! config change touches only the streams it changes.

use std::sync::Arc;
use std::time::Duration;

use edgecam::clock::{Clock, SystemClock};
use edgecam::config::{AlarmConfig, AlarmMode, Config, StreamConfig, StreamKind, Transport};
use edgecam::daemon::Daemon;
use edgecam::ring::Start;

fn pattern(id: &str) -> StreamConfig {
    StreamConfig {
        id: id.to_string(),
        name: None,
        kind: StreamKind::Testpattern,
        url: None,
        transport: Transport::Tcp,
        device: None,
        width: Some(160),
        height: Some(96),
        fps: Some(25),
        bitrate_kbps: Some(200),
        gop: Some(10),
        connect_timeout_ms: 5000,
        stall_timeout_ms: 5000,
        enabled: true,
    }
}

fn config(dir: &std::path::Path) -> Config {
    let mut cfg = Config::default();
    cfg.paths.state_dir = dir.to_path_buf();
    cfg.ring.bytes_per_stream = 1024 * 1024;
    cfg.ring.slots_per_stream = 64;
    cfg.streams = vec![pattern("cam1"), pattern("cam2"), pattern("cam3")];
    cfg.select.default = Some("cam1".into());
    cfg.select.min_dwell_ms = 0;
    cfg.alarms = vec![AlarmConfig {
        id: "door".into(),
        name: Some("Door contact".into()),
        stream: "cam3".into(),
        priority: 10,
        mode: AlarmMode::Latched,
        hold_s: 30,
        video_loss: false,
        video_loss_after_s: 10,
        gpio: None,
        output: None,
    }];
    edgecam::config::validate(&cfg).expect("test config is valid");
    cfg
}

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
