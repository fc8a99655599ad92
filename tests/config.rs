//! Config parsing, validation, loading and saving: every rejected input names its field.

use std::path::Path;

use edgecam::config::{
    self, Config, ConfigError, ConfigOrigin, FieldError, LineRef, check_file, load_effective,
    load_file, parse, report, save_live, to_toml,
};

/// A small valid config; tests append to it or replace parts of it.
const BASE: &str = r#"
[[streams]]
id = "cam1"
kind = "rtsp"
url = "rtsp://user:hunter2@192.168.1.10/stream1"

[[streams]]
id = "pattern"
kind = "testpattern"
"#;

fn rejected(text: &str) -> Vec<FieldError> {
    match parse(text) {
        Ok(cfg) => panic!("config was accepted: {cfg:?}"),
        Err(errors) => errors,
    }
}

/// Asserts that `text` is rejected with exactly one problem, at `path`, mentioning `needle`.
fn assert_only(text: &str, path: &str, needle: &str) {
    let errors = rejected(text);
    assert_eq!(errors.len(), 1, "expected one problem, got {errors:#?}");
    assert_eq!(errors[0].path, path, "{errors:#?}");
    assert!(
        errors[0].message.contains(needle),
        "message {:?} lacks {needle:?}",
        errors[0].message
    );
}

fn with(extra: &str) -> String {
    format!("{BASE}\n{extra}")
}

#[test]
fn base_is_valid() {
    let cfg = parse(BASE).unwrap();
    assert_eq!(cfg.streams.len(), 2);
}

#[test]
fn empty_file_is_the_default_config() {
    assert_eq!(parse("").unwrap(), Config::default());
}

#[test]
fn example_config_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let cfg = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    // It shows every kind and both GPIO directions.
    assert_eq!(cfg.streams.len(), 3);
    assert!(
        cfg.alarms
            .iter()
            .any(|a| a.gpio.is_some() && a.output.is_some())
    );
}

// ----- syntax and shape: serde_path_to_error paths -----

#[test]
fn unknown_kind_lists_allowed_values() {
    let text = BASE.replace("kind = \"testpattern\"", "kind = \"webcam\"");
    assert_only(&text, "streams[1].kind", "unknown variant `webcam`");
    let e = &rejected(&text)[0];
    assert!(e.message.contains("`rtsp`, `v4l2`, `testpattern`"), "{e}");
    assert!(e.message.contains("line 9"), "{e}");
}

#[test]
fn unknown_field_is_named_with_its_path() {
    let text = BASE.replace("url = ", "urll = ");
    let errors = rejected(&text);
    assert_eq!(errors[0].path, "streams[0].urll");
    assert!(
        errors[0].message.contains("unknown field `urll`"),
        "{errors:?}"
    );
}

#[test]
fn type_error_names_the_field() {
    assert_only(
        &with("[ring]\nbytes_per_stream = \"lots\""),
        "ring.bytes_per_stream",
        "invalid type: string",
    );
}

#[test]
fn missing_required_field_points_at_it() {
    assert_only(
        "[[streams]]\nkind = \"testpattern\"\n",
        "streams[0].id",
        "missing field `id`",
    );
}

#[test]
fn syntax_error_has_line_and_column() {
    assert_only("[web\nlisten = 1\n", "", "line 1, column 5");
}

#[test]
fn gpio_line_of_wrong_type_says_what_is_expected() {
    let text = with("[[alarms]]\nid = \"a\"\nstream = \"cam1\"\n[alarms.gpio]\nline = 1.5\n");
    assert_only(
        &text,
        "alarms[0].gpio.line",
        "a line offset (a number) or a line name",
    );
}

// ----- ids -----

#[test]
fn duplicate_stream_id_points_at_second() {
    let text = BASE.replace("id = \"pattern\"", "id = \"cam1\"");
    assert_only(
        &text,
        "streams[1].id",
        "duplicate stream id `cam1` (first used by streams[0])",
    );
}

#[test]
fn duplicate_alarm_id_points_at_second() {
    let alarm = "[[alarms]]\nid = \"door\"\nstream = \"cam1\"\n";
    assert_only(
        &with(&format!("{alarm}{alarm}")),
        "alarms[1].id",
        "duplicate alarm id `door`",
    );
}

#[test]
fn bad_ids_are_rejected() {
    assert_only(
        &BASE.replace("\"pattern\"", "\"\""),
        "streams[1].id",
        "must not be empty",
    );
    assert_only(
        &BASE.replace("\"pattern\"", &format!("\"{}\"", "x".repeat(33))),
        "streams[1].id",
        "33 characters",
    );
    assert_only(
        &BASE.replace("\"pattern\"", "\"my cam\""),
        "streams[1].id",
        "' '",
    );
    let alarm = "[[alarms]]\nid = \"door/1\"\nstream = \"cam1\"\n";
    assert_only(&with(alarm), "alarms[0].id", "only letters, digits");
}

// ----- streams -----

#[test]
fn malformed_url_does_not_echo_password() {
    let text = BASE.replace("@192.168.1.10/stream1", "@[192.168.1.10/stream1");
    assert_only(&text, "streams[0].url", "not a valid URL");
    assert!(!rejected(&text)[0].message.contains("hunter2"));
}

#[test]
fn non_rtsp_scheme_is_rejected() {
    let text = BASE.replace("rtsp://user", "http://user");
    assert_only(&text, "streams[0].url", "scheme `http` is not supported");
    assert!(parse(&BASE.replace("rtsp://user", "rtsps://user")).is_ok());
}

#[test]
fn url_without_host_is_rejected() {
    let text = BASE.replace(
        "rtsp://user:hunter2@192.168.1.10/stream1",
        "rtsp:///stream1",
    );
    assert_only(&text, "streams[0].url", "no host");
}

#[test]
fn rtsp_without_url_is_rejected() {
    let text = BASE.replace("url = \"rtsp://user:hunter2@192.168.1.10/stream1\"", "");
    assert_only(&text, "streams[0].url", "an rtsp stream needs a `url`");
}

#[test]
fn fields_not_applicable_to_kind_are_rejected() {
    let rtsp_device = BASE.replace(
        "kind = \"rtsp\"",
        "kind = \"rtsp\"\ndevice = \"/dev/video0\"",
    );
    assert_only(
        &rtsp_device,
        "streams[0].device",
        "`device` applies only to v4l2 streams",
    );

    let rtsp_width = BASE.replace("kind = \"rtsp\"", "kind = \"rtsp\"\nwidth = 640");
    assert_only(
        &rtsp_width,
        "streams[0].width",
        "applies only to v4l2 and testpattern",
    );

    let pattern_url = BASE.replace(
        "kind = \"testpattern\"",
        "kind = \"testpattern\"\nurl = \"rtsp://h/\"",
    );
    assert_only(
        &pattern_url,
        "streams[1].url",
        "`url` applies only to rtsp streams",
    );

    let pattern_udp = BASE.replace(
        "kind = \"testpattern\"",
        "kind = \"testpattern\"\ntransport = \"udp\"",
    );
    assert_only(&pattern_udp, "streams[1].transport", "applies only to rtsp");
}

#[test]
fn transport_defaults_to_auto_and_an_old_saved_tcp_still_loads() {
    let cfg: edgecam::config::Config = toml::from_str(BASE).expect("base parses");
    assert_eq!(
        cfg.streams[0].transport,
        edgecam::config::schema::Transport::Auto
    );
    assert_eq!(cfg.streams[0].failed_retry_s, 300);
    // Builds before `auto` saved `transport = "tcp"` on every stream, test patterns too.
    let old = BASE.replace(
        "kind = \"testpattern\"",
        "kind = \"testpattern\"\ntransport = \"tcp\"",
    );
    let old = parse(&old).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        old.streams[1].transport,
        edgecam::config::schema::Transport::Tcp
    );
}

#[test]
fn failed_retry_is_bounded() {
    let quick = BASE.replace("kind = \"rtsp\"", "kind = \"rtsp\"\nfailed_retry_s = 1");
    assert_only(
        &quick,
        "streams[0].failed_retry_s",
        "between 10 and 86400 s",
    );
}

#[test]
fn v4l2_needs_an_absolute_device() {
    let missing = with("[[streams]]\nid = \"usb\"\nkind = \"v4l2\"\n");
    assert_only(&missing, "streams[2].device", "needs a `device`");
    let relative = with("[[streams]]\nid = \"usb\"\nkind = \"v4l2\"\ndevice = \"video0\"\n");
    assert_only(&relative, "streams[2].device", "not an absolute path");
    let good =
        with("[[streams]]\nid = \"usb\"\nkind = \"v4l2\"\ndevice = \"/dev/video0\"\nwidth = 640\n");
    assert!(parse(&good).is_ok());
}

#[test]
fn picture_limits_are_enforced() {
    let pattern = |field: &str| {
        BASE.replace(
            "kind = \"testpattern\"",
            &format!("kind = \"testpattern\"\n{field}"),
        )
    };
    assert_only(
        &pattern("width = 641"),
        "streams[1].width",
        "even number between 16 and 4096",
    );
    assert_only(&pattern("height = 8"), "streams[1].height", "got 8");
    assert_only(&pattern("height = 4098"), "streams[1].height", "got 4098");
    assert_only(&pattern("fps = 0"), "streams[1].fps", "between 1 and 120");
    assert_only(&pattern("fps = 121"), "streams[1].fps", "got 121");
    assert_only(
        &pattern("bitrate_kbps = 10"),
        "streams[1].bitrate_kbps",
        "between 64 and 50000",
    );
    assert_only(&pattern("gop = 0"), "streams[1].gop", "between 1 and 1000");
    assert!(parse(&pattern("width = 4096\nheight = 16\nfps = 120\ngop = 1000")).is_ok());
}

#[test]
fn timeouts_are_bounded() {
    let text = BASE.replace(
        "kind = \"rtsp\"",
        "kind = \"rtsp\"\nconnect_timeout_ms = 50",
    );
    assert_only(
        &text,
        "streams[0].connect_timeout_ms",
        "between 100 and 600000 ms",
    );
    let text = BASE.replace(
        "kind = \"rtsp\"",
        "kind = \"rtsp\"\nstall_timeout_ms = 600001",
    );
    assert_only(&text, "streams[0].stall_timeout_ms", "got 600001");
}

// ----- ring -----

#[test]
fn zero_ring_bytes_is_rejected() {
    assert_only(
        &with("[ring]\nbytes_per_stream = 0"),
        "ring.bytes_per_stream",
        "between 262144 (256 KiB) and 1073741824 (1 GiB), got 0",
    );
}

#[test]
fn absurd_ring_bytes_is_rejected() {
    assert_only(
        &with("[ring]\nbytes_per_stream = 1099511627776"),
        "ring.bytes_per_stream",
        "got 1099511627776",
    );
}

#[test]
fn zero_and_absurd_slots_are_rejected() {
    assert_only(
        &with("[ring]\nslots_per_stream = 0"),
        "ring.slots_per_stream",
        "between 16 and 65536, got 0",
    );
    assert_only(
        &with("[ring]\nslots_per_stream = 1000000"),
        "ring.slots_per_stream",
        "got 1000000",
    );
}

#[test]
fn total_ring_budget_counts_enabled_streams() {
    let mut text = with("[ring]\nbytes_per_stream = 1073741824\n");
    for i in 0..3 {
        text.push_str(&format!(
            "[[streams]]\nid = \"p{i}\"\nkind = \"testpattern\"\n"
        ));
    }
    // Five enabled streams of 1 GiB: too much.
    assert_only(&text, "ring.bytes_per_stream", "5 enabled streams");
    // With one disabled, exactly 4 GiB: allowed.
    let text = text.replacen(
        "id = \"p0\"\nkind = \"testpattern\"",
        "id = \"p0\"\nkind = \"testpattern\"\nenabled = false",
        1,
    );
    assert!(parse(&text).is_ok());
}

#[test]
fn the_ring_cap_is_checked_against_the_floor_and_the_budget() {
    assert_only(
        &with("[ring]\nbytes_per_stream = 8388608\nmax_bytes_per_stream = 4194304"),
        "ring.max_bytes_per_stream",
        "less than ring.bytes_per_stream (8388608)",
    );
    assert_only(
        &with("[ring]\nmax_bytes_per_stream = 2147483648"),
        "ring.max_bytes_per_stream",
        "between 262144 (256 KiB) and 1073741824 (1 GiB), got 2147483648",
    );
    let mut text = with("[ring]\nmax_bytes_per_stream = 1073741824\n");
    for i in 0..3 {
        text.push_str(&format!(
            "[[streams]]\nid = \"p{i}\"\nkind = \"testpattern\"\n"
        ));
    }
    assert_only(&text, "ring.max_bytes_per_stream", "5 enabled streams");
    let cfg = parse(&with("[ring]\nmax_bytes_per_stream = 33554432")).unwrap();
    assert_eq!(cfg.ring.cap_bytes(), 32 * 1024 * 1024);
    // Unset: 64 MiB, or bytes_per_stream when that is larger.
    assert_eq!(parse(BASE).unwrap().ring.cap_bytes(), 64 * 1024 * 1024);
    let big = parse(&with("[ring]\nbytes_per_stream = 134217728")).unwrap();
    assert_eq!(big.ring.cap_bytes(), 128 * 1024 * 1024);
}

// ----- select -----

#[test]
fn select_rules() {
    assert_only(
        &with("[select]\ndefault = \"cam9\""),
        "select.default",
        "`cam9` is not a stream id; known streams: cam1, pattern",
    );
    assert_only(
        &with("[select]\ndwell_s = 0"),
        "select.dwell_s",
        "at least 1",
    );
    assert_only(
        &with("[select]\nmin_dwell_ms = 60001"),
        "select.min_dwell_ms",
        "at most 60000",
    );
}

// ----- alarms -----

/// An alarm on `cam1` with id `id` and more keys.
fn alarm(id: &str, extra: &str) -> String {
    format!("[[alarms]]\nid = \"{id}\"\nstream = \"cam1\"\n{extra}\n")
}

#[test]
fn alarm_to_unknown_stream_is_rejected() {
    let text = with("[[alarms]]\nid = \"door\"\nstream = \"garage\"\n");
    assert_only(&text, "alarms[0].stream", "`garage` is not a stream id");
}

#[test]
fn hold_needs_a_hold_time() {
    assert_only(
        &with(&alarm("a1", "mode = \"hold\"\nhold_s = 0")),
        "alarms[0].hold_s",
        "at least 1 for a hold alarm",
    );
    // The hold time does not matter in other modes.
    assert!(parse(&with(&alarm("a2", "mode = \"latched\"\nhold_s = 0"))).is_ok());
    assert_only(
        &with(&alarm("a3", "video_loss = true\nvideo_loss_after_s = 0")),
        "alarms[0].video_loss_after_s",
        "at least 1",
    );
}

#[test]
fn gpio_line_given_twice_is_rejected() {
    let a = alarm("a4", "[alarms.gpio]\nline = 17");
    let b = alarm("a5", "[alarms.gpio]\nline = 17");
    assert_only(
        &with(&format!("{a}{b}")),
        "alarms[1].gpio.line",
        "line 17 on gpiochip0 is already used by alarms[0].gpio",
    );
}

#[test]
fn gpio_chip_name_and_path_are_the_same_chip() {
    let a = alarm("a6", "[alarms.gpio]\nchip = \"gpiochip0\"\nline = 4");
    let b = alarm("a7", "[alarms.gpio]\nchip = \"/dev/gpiochip0\"\nline = 4");
    assert_only(
        &with(&format!("{a}{b}")),
        "alarms[1].gpio.line",
        "already used by alarms[0].gpio",
    );
}

#[test]
fn gpio_output_may_not_reuse_an_input_line() {
    let a = alarm(
        "a8",
        "[alarms.gpio]\nline = \"GPIO17\"\n[alarms.output]\nline = \"GPIO17\"",
    );
    assert_only(
        &with(&a),
        "alarms[0].output.line",
        "line GPIO17 on gpiochip0",
    );
}

#[test]
fn same_line_on_other_chip_is_fine() {
    let a = alarm("a9", "[alarms.gpio]\nline = 4");
    let b = alarm(
        "a10",
        "[alarms.gpio]\nchip = \"gpiochip1\"\nline = 4\n[alarms.output]\nline = 5",
    );
    let cfg = parse(&with(&format!("{a}{b}"))).unwrap();
    assert_eq!(
        cfg.alarms[1].output.as_ref().map(|o| &o.line),
        Some(&LineRef::Offset(5))
    );
}

#[test]
fn debounce_is_bounded() {
    let a = alarm("a11", "[alarms.gpio]\nline = 4\ndebounce_ms = 10001");
    assert_only(&with(&a), "alarms[0].gpio.debounce_ms", "at most 10000");
}

// ----- web -----

#[test]
fn bad_listen_address_is_rejected() {
    assert_only(
        &with("[web]\nlisten = \"localhost\""),
        "web.listen",
        "not an address:port",
    );
    assert!(parse(&with("[web]\nlisten = \"[::]:80\"")).is_ok());
}

#[test]
fn jpeg_settings_are_bounded() {
    assert_only(
        &with("[web]\njpeg_quality = 0"),
        "web.jpeg_quality",
        "between 1 and 100",
    );
    assert_only(
        &with("[web]\njpeg_downscale = 9"),
        "web.jpeg_downscale",
        "between 1 and 8",
    );
}

#[test]
fn short_token_is_rejected_without_echo() {
    let text = with("[[web.tokens]]\nname = \"det\"\ntoken = \"tiny-secret\"\n");
    assert_only(&text, "web.tokens[0].token", "at least 16");
    assert!(!rejected(&text)[0].message.contains("tiny-secret"));
}

#[test]
fn tokens_must_be_unique_and_printable() {
    let t = "[[web.tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\n[[web.tokens]]\nname = \"b\"\ntoken = \"0123456789abcdef\"\n";
    assert_only(
        &with(t),
        "web.tokens[1].token",
        "same token as web.tokens[0]",
    );
    let t = "[[web.tokens]]\nname = \"a\"\ntoken = \"0123456789 abcdef\"\n";
    assert_only(&with(t), "web.tokens[0].token", "visible ASCII");
    let t = "[[web.tokens]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\n[[web.tokens]]\nname = \"a\"\ntoken = \"fedcba9876543210\"\n";
    assert_only(&with(t), "web.tokens[1].name", "duplicate token name `a`");
}

#[test]
fn password_hash_must_be_argon2() {
    assert_only(
        &with("[web]\nadmin_password_hash = \"letmein\""),
        "web.admin_password_hash",
        "$argon2",
    );
    assert!(
        !rejected(&with("[web]\nadmin_password_hash = \"letmein\""))[0]
            .message
            .contains("letmein")
    );
}

// ----- all at once -----

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[web]
listen = "nowhere"
tokens = [{ name = "d", token = "short" }]

[ring]
bytes_per_stream = 0
slots_per_stream = 0

[[streams]]
id = "cam1"
kind = "rtsp"
url = "http://cam/"
device = "/dev/video0"

[[streams]]
id = "cam1"
kind = "v4l2"

[select]
default = "nope"

[[alarms]]
id = "a"
stream = "ghost"
gpio = { line = 3 }
output = { chip = "/dev/gpiochip0", line = 3 }
"#;
    let errors = rejected(text);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "web.listen",
            "web.tokens[0].token",
            "ring.bytes_per_stream",
            "ring.slots_per_stream",
            "streams[0].device",
            "streams[0].url",
            "streams[1].id",
            "streams[1].device",
            "select.default",
            "alarms[0].stream",
            "alarms[0].output.line",
        ],
        "{errors:#?}"
    );
    // report() prints one `path: message` line per problem.
    let printed = report(&errors);
    assert_eq!(printed.lines().count(), errors.len());
    assert!(printed.starts_with("web.listen: `nowhere` is not an address:port"));
}

// ----- round trips and files -----

#[test]
fn serialize_then_parse_is_identity() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let mut cfg = load_file(&path).unwrap();
    cfg.web.tokens.push(config::TokenConfig {
        name: "detector".into(),
        token: "0123456789abcdef0123".into(),
        role: config::Role::Admin,
    });
    cfg.web.admin_password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
    cfg.select.default = None;
    cfg.alarms[1].gpio = Some(config::GpioInputConfig {
        chip: "/dev/gpiochip1".into(),
        line: LineRef::Name("GPIO5".into()),
        active: config::ActiveLevel::High,
        bias: config::Bias::None,
        debounce_ms: 0,
    });
    let text = to_toml(&cfg).unwrap();
    assert_eq!(parse(&text), Ok(cfg), "{text}");
}

#[test]
fn load_file_reports_io_and_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    assert!(matches!(load_file(&missing), Err(ConfigError::Io { .. })));
    let errors = check_file(&missing).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "");
    assert!(errors[0].message.contains("nope.toml"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[ring]\nslots_per_stream = 1\n").unwrap();
    match load_file(&bad) {
        Err(ConfigError::Invalid { path, errors }) => {
            assert_eq!(path, bad);
            assert_eq!(errors[0].path, "ring.slots_per_stream");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn live_config_wins_when_valid() {
    let dir = tempfile::tempdir().unwrap();
    let provisioned = dir.path().join("provisioned.toml");
    std::fs::write(&provisioned, BASE).unwrap();
    let state_dir = dir.path().join("state");

    // No live file: the provisioned one, silently.
    let eff = load_effective(&provisioned, &state_dir).unwrap();
    assert_eq!(eff.origin, ConfigOrigin::Provisioned(provisioned.clone()));
    assert!(eff.warnings.is_empty());

    // A saved live config (the state dir is created) wins and round-trips.
    let mut live = eff.config.clone();
    live.select.dwell_s = 42;
    let written = save_live(&live, &state_dir).unwrap();
    assert_eq!(written, state_dir.join("config.toml"));
    let eff = load_effective(&provisioned, &state_dir).unwrap();
    assert_eq!(eff.origin, ConfigOrigin::Live(written));
    assert_eq!(eff.config, live);
    assert!(eff.warnings.is_empty());
}

#[test]
fn broken_live_config_falls_back_with_warning() {
    let dir = tempfile::tempdir().unwrap();
    let provisioned = dir.path().join("provisioned.toml");
    std::fs::write(&provisioned, BASE).unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[ring]\nbytes_per_stream = 0\n",
    )
    .unwrap();

    let eff = load_effective(&provisioned, dir.path()).unwrap();
    assert_eq!(eff.origin, ConfigOrigin::Provisioned(provisioned.clone()));
    assert_eq!(eff.warnings.len(), 1);
    assert!(
        eff.warnings[0].contains("ring.bytes_per_stream"),
        "{:?}",
        eff.warnings
    );

    // Both bad: the provisioned file's problem is the error.
    std::fs::write(&provisioned, "[web]\nlisten = \"x\"\n").unwrap();
    match load_effective(&provisioned, dir.path()) {
        Err(ConfigError::Invalid { path, errors }) => {
            assert_eq!(path, provisioned);
            assert_eq!(errors[0].path, "web.listen");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn save_live_refuses_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = parse(BASE).unwrap();
    cfg.streams[1].id = "cam1".into();
    match save_live(&cfg, dir.path()) {
        Err(ConfigError::Invalid { errors, .. }) => assert_eq!(errors[0].path, "streams[1].id"),
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("config.toml").exists());
}

#[test]
fn field_error_display() {
    assert_eq!(
        FieldError::new("web.listen", "bad").to_string(),
        "web.listen: bad"
    );
    assert_eq!(FieldError::new("", "unreadable").to_string(), "unreadable");
}

// ----- hardening (issue 15) -----

#[test]
fn a_relative_state_dir_is_rejected() {
    assert_only(
        &with("[paths]\nstate_dir = \"state\""),
        "paths.state_dir",
        "relative path",
    );
    assert!(parse(&with("[paths]\nstate_dir = \"/srv/edgecam\"")).is_ok());
}

#[test]
fn names_with_invisible_characters_are_rejected() {
    let text = BASE.replacen(
        "id = \"cam1\"",
        "id = \"cam1\"\nname = \"Front\u{202E}x\"",
        1,
    );
    assert_only(&text, "streams[0].name", "U+202E");
}

#[test]
fn extra_host_names_are_plain_names() {
    assert_only(
        &with("[web]\nhostnames = [\"http://cams.example\"]"),
        "web.hostnames[0]",
        "not a host name",
    );
    assert!(parse(&with("[web]\nhostnames = [\"cams.example.lan\"]")).is_ok());
}

#[test]
fn mqtt_section_round_trips_and_bad_values_are_named() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let mut cfg = load_file(&path).unwrap();
    let alarm = cfg.alarms[0].id.clone();
    let text = format!(
        "host = \"broker.local\"\nbox_id = \"boxa\"\npassword = \"pw-123\"\n\
         [[inputs]]\nalarm = \"{alarm}\"\ntopic = \"edgecam/boxb/alarms/door/state\"\n"
    );
    cfg.mqtt = Some(toml::from_str(&text).unwrap());
    assert_eq!(config::validate(&cfg), Ok(()));
    let m = cfg.mqtt.as_ref().unwrap();
    assert_eq!(
        (m.port, m.role, m.reconnect_min_ms),
        (1883, config::Role::Operator, 500)
    );
    assert!(m.inputs[0].on.iter().any(|p| p == "latched"));
    assert!(
        !format!("{cfg:?}").contains("pw-123"),
        "the password is never in Debug"
    );
    let printed = to_toml(&cfg).unwrap();
    assert_eq!(parse(&printed), Ok(cfg.clone()), "{printed}");

    let m = cfg.mqtt.as_mut().unwrap();
    m.box_id = "box a/#".into();
    m.inputs[0].alarm = "nosuch".into();
    m.inputs[0].topic = "edgecam/+/alarms/#".into();
    let errors = config::validate(&cfg).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "mqtt.box_id",
            "mqtt.inputs[0].alarm",
            "mqtt.inputs[0].topic"
        ]
    );
}

// ----- clips -----

#[test]
fn clips_are_on_by_default_in_the_state_dir() {
    let cfg = parse(BASE).unwrap();
    assert!(cfg.clips.enabled);
    assert_eq!(cfg.clips.dir, None);
    assert_eq!(
        edgecam::output::clips::clip_dir(&cfg),
        Path::new("/var/lib/edgecam/clips")
    );
    assert!(
        !parse(&with("[clips]\nenabled = false"))
            .unwrap()
            .clips
            .enabled
    );
}

#[test]
fn clip_timings_are_bounded() {
    assert_only(
        &with("[clips]\nmax_s = 0"),
        "clips.max_s",
        "between 1 and 3600 s, got 0",
    );
    assert_only(&with("[clips]\nmax_s = 86400"), "clips.max_s", "got 86400");
    assert_only(
        &with("[clips]\npre_s = 600\nmax_s = 1200"),
        "clips.pre_s",
        "between 0 and 60 s, got 600",
    );
    assert_only(
        &with("[clips]\npost_s = 3600"),
        "clips.post_s",
        "between 0 and 600 s, got 3600",
    );
    // Zero pre-roll and zero post-roll are fine.
    assert!(parse(&with("[clips]\npre_s = 0\npost_s = 0\nmax_s = 1")).is_ok());
}

#[test]
fn a_clip_must_outlast_its_pre_roll() {
    assert_only(
        &with("[clips]\npre_s = 10\nmax_s = 10"),
        "clips.max_s",
        "make max_s larger than pre_s",
    );
    assert!(parse(&with("[clips]\npre_s = 10\nmax_s = 11")).is_ok());
}

#[test]
fn clip_quotas_must_hold_a_clip() {
    assert_only(
        &with("[clips]\nquota_count = 0"),
        "clips.quota_count",
        "clips.enabled = false",
    );
    assert_only(
        &with("[clips]\nquota_count = 1000000"),
        "clips.quota_count",
        "got 1000000",
    );
    assert_only(
        &with("[clips]\nquota_bytes = 1000"),
        "clips.quota_bytes",
        "at least 8388608 (8 MiB), got 1000",
    );
}

#[test]
fn the_clip_directory_is_absolute_and_its_own() {
    assert_only(
        &with("[clips]\ndir = \"clips\""),
        "clips.dir",
        "relative path",
    );
    assert_only(
        &with("[clips]\ndir = \"\""),
        "clips.dir",
        "must not be empty",
    );
    assert_only(&with("[clips]\ndir = \"/\""), "clips.dir", "root directory");
    assert_only(
        &with("[paths]\nstate_dir = \"/var/lib/edgecam\"\n[clips]\ndir = \"/var/lib/edgecam/\""),
        "clips.dir",
        "is paths.state_dir itself",
    );
    assert!(parse(&with("[clips]\ndir = \"/data/clips\"")).is_ok());
}
