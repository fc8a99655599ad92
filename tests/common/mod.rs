//! Config fixtures shared by the integration tests and the selector benchmark (which includes
//! this file with `#[path]`). Plain builders, no I/O: each test binary uses a different part.
#![allow(dead_code)]

use std::path::Path;

use edgecam::config::{
    ActiveLevel, AlarmConfig, AlarmMode, Bias, Config, GpioInputConfig, LineRef, StreamConfig,
};

/// A small test-pattern camera named `Pattern <id>`: 160x96 at 25 fps, 200 kbit/s, a
/// keyframe every 10 frames (cheap to encode, quick to its first keyframe), and a stall
/// timeout with room for a loaded machine.
pub fn pattern(id: &str) -> StreamConfig {
    StreamConfig {
        name: Some(format!("Pattern {id}")),
        bitrate_kbps: Some(200),
        gop: Some(10),
        stall_timeout_ms: 5000,
        ..StreamConfig::testpattern(id, 160, 96, 25)
    }
}

/// A `hold` alarm named `Gate` on `stream` with a contact on line 17 of `gpiochip0`,
/// active low with the pull-up on and no debounce: with a mock line that reads low
/// (`MockInput::new(false)`) the contact is open, so the alarm is on from the moment its
/// input starts.
pub fn gpio_alarm(id: &str, stream: &str) -> AlarmConfig {
    AlarmConfig {
        name: Some("Gate".into()),
        gpio: Some(GpioInputConfig {
            chip: "gpiochip0".into(),
            line: LineRef::Offset(17),
            active: ActiveLevel::Low,
            bias: Bias::PullUp,
            debounce_ms: 0,
        }),
        ..alarm(id, stream, 5, AlarmMode::Hold)
    }
}

/// An API-only alarm (no GPIO, no video loss, `hold_s` 30) on `stream`.
pub fn alarm(id: &str, stream: &str, priority: i32, mode: AlarmMode) -> AlarmConfig {
    AlarmConfig {
        id: id.into(),
        name: None,
        stream: stream.into(),
        priority,
        mode,
        hold_s: 30,
        video_loss: false,
        video_loss_after_s: 10,
        gpio: None,
        output: None,
        onvif: None,
    }
}

/// The daemon tests' box: [`pattern`] cameras cam1..cam3, a latched `door` alarm
/// ("Door contact", priority 10) on cam3, cam1 by default, no minimum dwell, 1 MiB rings of
/// 128 slots, the state in `dir`. Validated.
pub fn three_cameras(dir: &Path) -> Config {
    let mut cfg = Config::default();
    cfg.paths.state_dir = dir.to_path_buf();
    // Loopback only, on a free port: tests never listen on the LAN.
    cfg.web.https_listen = "127.0.0.1:0".into();
    cfg.ring.bytes_per_stream = 1024 * 1024;
    cfg.ring.slots_per_stream = 128;
    cfg.streams = vec![pattern("cam1"), pattern("cam2"), pattern("cam3")];
    cfg.select.default = Some("cam1".into());
    cfg.select.min_dwell_ms = 0;
    cfg.alarms = vec![AlarmConfig {
        name: Some("Door contact".into()),
        ..alarm("door", "cam3", 10, AlarmMode::Latched)
    }];
    edgecam::config::validate(&cfg).expect("test config is valid");
    cfg
}

/// The selector's reference load: 16 streams `cam0..cam15` and 32 alarms `alarm0..alarm31`
/// over them, modes transparent/hold/latched in turn, priorities 0 to 3, every fifth with
/// video-loss detection after 1 s, `hold_s` 2; `min_dwell_ms` 200 and `dwell_s` 1.
pub fn sixteen_streams_32_alarms() -> Config {
    let mut cfg = Config::default();
    cfg.select.min_dwell_ms = 200;
    cfg.select.dwell_s = 1;
    cfg.streams = (0..16).map(|i| pattern(&format!("cam{i}"))).collect();
    let modes = [AlarmMode::Transparent, AlarmMode::Hold, AlarmMode::Latched];
    cfg.alarms = (0..32)
        .map(|i| AlarmConfig {
            hold_s: 2,
            video_loss: i % 5 == 0,
            video_loss_after_s: 1,
            ..alarm(
                &format!("alarm{i}"),
                &format!("cam{}", i % 16),
                (i % 4) as i32,
                modes[i % 3],
            )
        })
        .collect();
    cfg
}
