//! The RTSP transport learned for a camera survives a restart of the real binary: a camera
//! that refuses RTSP over TCP (461, as VLC's server answers) costs the fallback once, and the
//! next start of the box goes to UDP at once (`<state_dir>/rtsp-transports.json`).

mod support;

use support::daemon_run::DaemonRun as Run;
use support::{RtspServer, ServerOpts};

#[test]
fn a_camera_that_refuses_tcp_is_played_over_udp_at_once_after_a_restart() {
    let camera = RtspServer::start(ServerOpts {
        udp_only: true,
        ..ServerOpts::default()
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[web]\nlisten = \"127.0.0.1:0\"\nhttps = false\n\n[paths]\nstate_dir = \"{}\"\n\n\
             [[streams]]\nid = \"vlc\"\nkind = \"rtsp\"\nurl = \"{}\"\n",
            state.display(),
            camera.url(0)
        ),
    )
    .expect("config written");
    let file = state.join(edgecam::ingest::learned::FILE);

    // First start: TCP is refused, UDP plays, and that is remembered.
    let first = Run::start(&config);
    let log = first.until("rtsp transport remembered for this camera");
    assert!(
        log.iter()
            .any(|l| l.contains("camera refused the RTSP transport")),
        "the first start falls back from TCP"
    );
    first.stop();
    let saved = std::fs::read_to_string(&file).expect("the learned transport is saved");
    let v: serde_json::Value = serde_json::from_str(&saved).expect("JSON");
    let cameras = v["cameras"].as_object().expect("a cameras object");
    assert_eq!(cameras.len(), 1, "{saved}");
    let (url, transport) = cameras.iter().next().expect("one camera");
    assert_eq!(transport, "udp", "{saved}");
    assert!(
        url.starts_with("rtsp://127.0.0.1:") && !url.contains('@'),
        "the key is the camera's URL without credentials: {url}"
    );

    // Second start: UDP first, no refusal on the way.
    let second = Run::start(&config);
    let log = second.until("rtsp session playing");
    assert!(
        log.iter()
            .any(|l| l.contains("learned rtsp transports loaded")),
        "the file is read at start"
    );
    assert!(
        !log.iter().any(|l| l.contains("refused the RTSP transport")),
        "the second start goes to UDP at once:\n{}",
        log.join("\n")
    );
    assert!(
        log.last().is_some_and(|l| l.contains("transport=\"udp\"")),
        "{:?}",
        log.last()
    );
    second.stop();
}
