//! Fuzzing on the stable toolchain: random and mutated inputs for every parser that takes
//! bytes from outside (the config file, `state.bin`, the live WebSocket's `hello`, the API's
//! JSON bodies, H.264 Annex B from cameras, V4L2 buffers), checked by the same properties as
//! the cargo-fuzz targets (`fuzz/checks.rs`, docs/testing.md "Fuzzing").
//!
//! It also replays every committed input of the cargo-fuzz targets, the seed corpora
//! (`fuzz/corpus/<target>/`) and the crashes found so far (`fuzz/regressions/<target>/`),
//! so a crash that was found once stays a test.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;
use std::sync::OnceLock;

use edgecam::codec::H264Encoder;
use edgecam::codec::yuv::I420Frame;
use edgecam::config::Config;
use edgecam::state::{FORMAT_VERSION, LatchedAlarm, PersistedState};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Value, json};

/// Cases per property: enough for the mutators to reach every field, few enough for the whole
/// file to stay well under a minute in the dev profile on a busy 2-core machine (CI). A longer
/// run on stable: `EDGECAM_FUZZ_CASES=200000 cargo test --release --test fuzz_inputs`.
fn cases() -> u32 {
    std::env::var("EDGECAM_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4096)
}

/// What a cargo-fuzz target runs on one input.
type Check = fn(&[u8]);

/// Each cargo-fuzz target and its check.
const TARGETS: [(&str, Check); 7] = [
    ("config", checks::config_bytes),
    ("state", checks::state_bytes),
    ("live_hello", checks::hello_bytes),
    ("api_body", checks::api_bytes),
    ("annexb", checks::annexb_bytes),
    ("h264_decode", checks::decode_bytes),
    ("yuv", checks::yuv_bytes),
];

fn fuzz_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz"))
}

/// The committed inputs of one target: its seeds and its regressions.
fn committed_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable directory").path();
            let bytes = std::fs::read(&path).expect("a readable input");
            out.push((path.display().to_string(), bytes));
        }
    }
    out.sort();
    out
}

#[test]
fn committed_seeds_and_regressions_pass() {
    for (target, check) in TARGETS {
        let inputs = committed_inputs(target);
        assert!(
            !inputs.is_empty(),
            "fuzz/corpus/{target}/ has no seed (regenerate_seed_corpus writes them)"
        );
        for (path, bytes) in inputs {
            let outcome = std::panic::catch_unwind(|| check(&bytes));
            assert!(outcome.is_ok(), "{path} fails the {target} checks");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// Arbitrary bytes, mostly short.
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Config texts that parse: the reference file and a config with one of everything.
fn config_seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = vec![
        std::fs::read_to_string(root.join("config.example.toml")).expect("config.example.toml"),
    ];
    for (path, bytes) in committed_inputs("config") {
        let text = String::from_utf8(bytes).expect("a config seed is UTF-8");
        let parsed = edgecam::config::parse(&text);
        assert!(parsed.is_ok(), "{path} is not a valid config: {parsed:?}");
        seeds.push(text);
    }
    seeds
}

/// Values a TOML or JSON key may be given: every type, the bounds, and the troublemakers
/// (huge numbers, control and bidi characters, deep nesting).
const TOML_VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "17",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "1e400",
    "nan",
    "inf",
    "0.5",
    "true",
    "false",
    "\"\"",
    "\" \"",
    "\"cam1\"",
    "\"pattern\"",
    "\"door\"",
    "\"gpiochip0\"",
    "\"GPIO17\"",
    "\"/dev/video0\"",
    "\"relative/dir\"",
    "\"/\"",
    "\"rtsp://u:p@[::1]:554/x\"",
    "\"rtsp://\"",
    "\"127.0.0.1:0\"",
    "\"[::]:8080\"",
    "\"a\\u202Eb\"",
    "\"tab\\there\"",
    "\"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA\"",
    "\"0123456789abcdef0123\"",
    "\"viewer\"",
    "\"admin\"",
    "\"udp\"",
    "\"latched\"",
    "\"transparent\"",
    "\"sequence\"",
    "\"priority\"",
    "\"low\"",
    "\"pull-down\"",
    "[]",
    "[1, \"a\"]",
    "{}",
    "{ a = 1 }",
    "1979-05-27T07:32:00Z",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
];

/// Pieces of TOML syntax to insert anywhere.
const TOML_PIECES: &[&str] = &[
    "\n",
    "=",
    "[",
    "]",
    "[[",
    "]]",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    ".",
    ",",
    "#",
    "{",
    "}",
    "\\",
    "\n[streams]\n",
    "\n[[streams]]\nid = \"x\"\nkind = \"testpattern\"\n",
    "\n[[alarms]]\n",
    "\n[alarms.gpio]\nchip = \"gpiochip0\"\nline = 3\n",
    "\n[web]\n",
    "\né",
    "\u{0}",
    "\u{feff}",
    "\r\n",
    "\t",
];

/// One edit of a config text.
#[derive(Debug, Clone)]
enum Edit {
    /// Give the key on this line another value.
    Value(Index, &'static str),
    /// Drop this line.
    DropLine(Index),
    /// Repeat this line.
    DupLine(Index),
    /// Put these bytes at this position.
    Insert(Index, &'static str),
    /// Cut this many bytes at this position.
    Cut(Index, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<Index>(), select(TOML_VALUES)).prop_map(|(i, v)| Edit::Value(i, v)),
        1 => any::<Index>().prop_map(Edit::DropLine),
        1 => any::<Index>().prop_map(Edit::DupLine),
        1 => (any::<Index>(), select(TOML_PIECES)).prop_map(|(i, p)| Edit::Insert(i, p)),
        1 => (any::<Index>(), 1usize..40).prop_map(|(i, n)| Edit::Cut(i, n)),
    ]
}

/// Applies `edits` to `text`, line by line for the line edits, at char boundaries else.
fn apply(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_string();
    for e in edits {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        match e {
            Edit::Value(i, v) => {
                // Only lines that set a key; any line when none does.
                let keyed: Vec<usize> = (0..lines.len())
                    .filter(|&n| !lines[n].starts_with('#') && lines[n].contains('='))
                    .collect();
                let n = if keyed.is_empty() {
                    i.index(lines.len())
                } else {
                    keyed[i.index(keyed.len())]
                };
                let key = lines[n]
                    .split('=')
                    .next()
                    .unwrap_or("")
                    .trim_end()
                    .to_string();
                lines[n] = format!("{key} = {v}");
            }
            Edit::DropLine(i) => {
                lines.remove(i.index(lines.len()));
            }
            Edit::DupLine(i) => {
                let n = i.index(lines.len());
                let line = lines[n].clone();
                lines.insert(n, line);
            }
            Edit::Insert(..) | Edit::Cut(..) => {}
        }
        text = lines.join("\n");
        let boundary = |i: &Index, text: &str| {
            let mut at = i.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            at
        };
        match e {
            Edit::Insert(i, piece) => {
                let at = boundary(i, &text);
                text.insert_str(at, piece);
            }
            Edit::Cut(i, n) => {
                let at = boundary(i, &text);
                let mut end = (at + n).min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.replace_range(at..end, "");
            }
            _ => {}
        }
    }
    text
}

fn mutated_config() -> impl Strategy<Value = String> {
    let seeds = config_seeds();
    (select(seeds), proptest::collection::vec(edit(), 0..5))
        .prop_map(|(seed, edits)| apply(&seed, &edits))
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        select(&[0.0, -0.0, 1.5, 86_400.0, 86_400.5, -1.0, 1e300][..]).prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
        select(&["h264", "jpeg", "hello", "cam1", "testpattern", "rtsp"][..])
            .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every place in a JSON value, as a JSON pointer (the root is "").
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(child, format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// `base` with the value at one place replaced (or removed, for `None`).
fn json_edit(base: &Value, at: Index, new: Option<Value>) -> Value {
    let mut v = base.clone();
    let mut places = Vec::new();
    pointers(&v, String::new(), &mut places);
    let place = places[at.index(places.len())].clone();
    match new {
        Some(new) => {
            if let Some(slot) = v.pointer_mut(&place) {
                *slot = new;
            }
        }
        None => {
            if let Some((parent, key)) = place.rsplit_once('/')
                && let Some(p) = v.pointer_mut(parent)
            {
                match p {
                    Value::Object(m) => drop(m.remove(key)),
                    Value::Array(a) => {
                        if let Ok(i) = key.parse::<usize>() {
                            a.remove(i);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    v
}

/// Bodies each route takes when all is well.
fn good_bodies(route: checks::Route) -> Vec<Value> {
    use checks::Route;
    match route {
        Route::Select => vec![json!({"stream": "cam1"}), json!({"stream": null})],
        Route::Trigger => vec![json!({"hold_s": 30}), json!({})],
        Route::Password => vec![json!({"password": "correct horse"})],
        Route::ChangePassword => vec![json!({"current": "a", "new": "b"}), json!({"new": "b"})],
        Route::TestStream => vec![
            serde_json::to_value(edgecam::config::StreamConfig::testpattern(
                "t", 640, 360, 15,
            ))
            .expect("JSON"),
            json!({"id": "cam", "kind": "rtsp", "url": "rtsp://10.0.0.1/x"}),
        ],
        Route::PutConfig => {
            let cfg: Config = edgecam::config::parse(&config_seeds()[0]).expect("the example");
            vec![serde_json::to_value(cfg).expect("JSON")]
        }
    }
}

fn api_input() -> impl Strategy<Value = (checks::Route, Vec<u8>)> {
    let route = select(&checks::ROUTES[..]);
    (
        route,
        any::<Index>(),
        any::<Index>(),
        proptest::option::of(json_value()),
        0u8..4,
    )
        .prop_map(|(route, which, at, new, how)| {
            let bodies = good_bodies(route);
            let base = &bodies[which.index(bodies.len())];
            let body = match how {
                0 => base.clone(),
                1 => json_edit(base, at, new),
                _ => new.unwrap_or(Value::Null),
            };
            let mut text = serde_json::to_vec(&body).expect("JSON");
            if how == 3 {
                // A cut body: truncated JSON.
                text.truncate(at.index(text.len() + 1));
            }
            (route, text)
        })
}

fn hello_message() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        4 => Just(json!("hello")),
        1 => json_value(),
    ];
    let codecs = prop_oneof![
        4 => proptest::collection::vec(select(&["h264", "jpeg", "vp8", ""][..]), 0..4)
            .prop_map(|c| Some(json!(c))),
        1 => Just(None),
        1 => json_value().prop_map(Some),
    ];
    (kind, codecs, proptest::option::of(json_value())).prop_map(|(kind, codecs, extra)| {
        let mut m = serde_json::Map::new();
        m.insert("type".to_string(), kind);
        if let Some(c) = codecs {
            m.insert("codecs".to_string(), c);
        }
        if let Some(e) = extra {
            m.insert("extra".to_string(), e);
        }
        Value::Object(m).to_string()
    })
}

fn any_state() -> impl Strategy<Value = PersistedState> {
    let alarm = ("\\PC{0,8}", any::<i64>())
        .prop_map(|(id, since_wall_us)| LatchedAlarm { id, since_wall_us });
    (
        proptest::option::of("\\PC{0,8}"),
        proptest::collection::vec(alarm, 0..4),
    )
        .prop_map(|(user_selection, latched_alarms)| PersistedState {
            user_selection,
            latched_alarms,
        })
}

/// Access units of a 64x48 test picture from the real encoder: a keyframe (SPS, PPS, IDR)
/// and two delta frames.
fn encoded_units() -> &'static [Vec<u8>] {
    static UNITS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    UNITS.get_or_init(|| {
        let mut encoder = H264Encoder::new(checks::SMALL).expect("encoder");
        let mut picture = I420Frame::new(checks::SMALL.width, checks::SMALL.height).expect("size");
        let mut units = Vec::new();
        for n in 0..3u8 {
            for (i, y) in picture.y.iter_mut().enumerate() {
                *y = (i as u8).wrapping_mul(3).wrapping_add(n * 20);
            }
            let au = encoder
                .encode(&picture, false)
                .expect("encodes")
                .expect("a frame");
            units.push(au.data.to_vec());
        }
        units
    })
}

/// One NAL unit to put together: a 3- or 4-byte start code, a header byte, a short body
/// (zeros are likely, so emulation-like runs appear).
fn nal() -> impl Strategy<Value = Vec<u8>> {
    let header = prop_oneof![
        select(&[0x67u8, 0x68, 0x65, 0x41, 0x06, 0x09, 0x01, 0x00][..]),
        any::<u8>(),
    ];
    let body = proptest::collection::vec(
        prop_oneof![3 => Just(0u8), 1 => Just(1u8), 2 => any::<u8>()],
        0..12,
    );
    (any::<bool>(), header, body).prop_map(|(four, header, body)| {
        let mut out = if four {
            vec![0, 0, 0, 1]
        } else {
            vec![0, 0, 1]
        };
        out.push(header);
        out.extend(body);
        out
    })
}

/// A sequence of access units, separated as `checks::split_units` expects.
fn annexb_stream() -> impl Strategy<Value = Vec<u8>> {
    let synthetic = proptest::collection::vec(proptest::collection::vec(nal(), 0..5), 1..5)
        .prop_map(|units| units.into_iter().map(|u| u.concat()).collect::<Vec<_>>());
    let real = (
        proptest::collection::vec(0usize..3, 1..5),
        proptest::collection::vec((any::<Index>(), any::<u8>()), 0..3),
        proptest::option::of(any::<Index>()),
    )
        .prop_map(|(picks, flips, cut)| {
            let units = encoded_units();
            let mut out: Vec<Vec<u8>> = picks.iter().map(|&p| units[p].clone()).collect();
            let last = out.len() - 1;
            for (at, x) in flips {
                let au = &mut out[at.index(last + 1)];
                let i = at.index(au.len());
                au[i] ^= x;
            }
            if let Some(cut) = cut {
                let au = &mut out[last];
                au.truncate(cut.index(au.len() + 1));
            }
            out
        });
    prop_oneof![synthetic, real].prop_map(|units| units.join(&[0xFF; 4][..]))
}

/// A conversion with sizes near the edges: strides around one line, `bytesused` around what
/// the picture needs, and buffers around that length.
fn conversion() -> impl Strategy<Value = (bool, u32, u32, i64, i64, i64, usize, bool)> {
    (
        any::<bool>(),
        0u32..24,
        0u32..24,
        prop_oneof![Just(0i64), -2i64..6, Just(i64::MAX)],
        prop_oneof![-3i64..3, Just(i64::MAX)],
        -3i64..8,
        prop_oneof![6 => Just(0usize), 1 => 1usize..40],
        any::<bool>(),
    )
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn config_from_random_bytes(data in bytes(512)) {
        checks::config_bytes(&data);
    }

    #[test]
    fn config_from_mutated_files(text in mutated_config()) {
        checks::config_text(&text);
    }

    #[test]
    fn state_payload_in_an_intact_frame(payload in bytes(96), version in prop_oneof![9 => Just(FORMAT_VERSION), 1 => any::<u16>()]) {
        checks::state_payload(version, &payload);
    }

    #[test]
    fn state_payload_mutated_from_a_real_state(state in any_state(), at in any::<Index>(), x in any::<u8>(), cut in any::<Index>()) {
        let mut payload = postcard::to_allocvec(&state).expect("encodes");
        if !payload.is_empty() {
            let i = at.index(payload.len());
            payload[i] ^= x;
        }
        payload.truncate(cut.index(payload.len() + 1).max(payload.len().saturating_sub(2)));
        checks::state_payload(FORMAT_VERSION, &payload);
    }

    #[test]
    fn hello_from_random_text(text in "\\PC{0,64}") {
        checks::hello_text(&text);
    }

    #[test]
    fn hello_from_json_messages(text in hello_message()) {
        checks::hello_text(&text);
    }

    #[test]
    fn api_bodies_random(data in bytes(256)) {
        checks::api_bytes(&data);
    }

    #[test]
    fn api_bodies_edited_json((route, body) in api_input()) {
        checks::api_body(route, &body);
    }

    #[test]
    fn annexb_random_bytes(data in bytes(256)) {
        checks::annexb_bytes(&data);
    }

    #[test]
    fn annexb_built_and_mutated(data in annexb_stream()) {
        checks::annexb_bytes(&data);
    }

    #[test]
    fn mjpeg_buffers(data in bytes(16), used in 0usize..20, soi in any::<bool>()) {
        let mut buf = data;
        if soi {
            buf.splice(0..0, [0xFF, 0xD8]);
        }
        checks::capture_mjpeg(&buf, used);
    }

    #[test]
    fn yuv_random_headers(data in bytes(1024)) {
        checks::yuv_bytes(&data);
    }

    #[test]
    fn yuv_sizes_near_the_edges((nv12, w, h, stride_d, used_d, len_d, damage, fill) in conversion()) {
        let (w_us, h_us) = (w as usize, h as usize);
        let line = if nv12 { w_us } else { 2 * w_us } as i64;
        let stride = match stride_d {
            0 => 0,
            i64::MAX => usize::MAX,
            d => (line + d).max(0) as usize,
        };
        let lines = if nv12 { h_us + h_us / 2 } else { h_us } as i64;
        // An absurd stride gets a buffer sized for packed lines: it must be refused anyway.
        let s = if stride == 0 || stride == usize::MAX { line } else { stride as i64 };
        let need = (s * (lines - 1).max(0) + line).max(0);
        let len = (need + len_d).max(0) as usize;
        let bytesused = match used_d {
            i64::MAX => usize::MAX,
            d => (need + d).max(0) as usize,
        };
        let src: Vec<u8> = (0..len).map(|i| if fill { (i * 7 % 251) as u8 } else { 0 }).collect();
        checks::convert(&checks::Conversion { nv12, width: w, height: h, stride, bytesused, damage, src: &src });
    }
}

proptest! {
    // openh264 decodes a few access units per case, with a new decoder: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(cases() / 8))]

    #[test]
    fn h264_decoder_on_mutated_streams(data in annexb_stream()) {
        checks::decode_bytes(&data);
    }
}

/// Writes the seed corpora of the cargo-fuzz targets (`fuzz/corpus/<target>/`):
/// `cargo test --test fuzz_inputs -- --ignored regenerate_seed_corpus`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand after a format change"]
fn regenerate_seed_corpus() {
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(name), bytes).expect("seed written");
    };
    let example = &config_seeds()[0];
    write("config", "config.example.toml", example.as_bytes());
    let state = PersistedState {
        user_selection: Some("cam1".to_string()),
        latched_alarms: vec![LatchedAlarm {
            id: "door".to_string(),
            since_wall_us: 1_700_000_000_000_000,
        }],
    };
    let file = edgecam::state::encode(&state).expect("encodes");
    // `state_bytes`: an even first byte decodes the rest as a file, an odd one frames it.
    write("state", "state.bin", &[[0u8].as_slice(), &file].concat());
    let payload = postcard::to_allocvec(&state).expect("encodes");
    write("state", "payload", &[[1u8].as_slice(), &payload].concat());
    write(
        "live_hello",
        "h264",
        br#"{"type":"hello","codecs":["h264","jpeg"]}"#,
    );
    write(
        "live_hello",
        "jpeg",
        br#"{"type":"hello","codecs":["jpeg"]}"#,
    );
    for (n, route) in checks::ROUTES.iter().enumerate() {
        for (i, body) in good_bodies(*route).iter().enumerate() {
            let bytes = [vec![n as u8], serde_json::to_vec(body).expect("JSON")].concat();
            write("api_body", &format!("{route:?}-{i}").to_lowercase(), &bytes);
        }
    }
    let units = encoded_units();
    let stream = units.join(&[0xFF; 4][..]);
    for target in ["annexb", "h264_decode"] {
        write(target, "keyframe", &units[0]);
        write(target, "gop", &stream);
    }
    // `yuv_bytes`: width, height (u32 LE), stride (u16 LE), flags, bytesused (0 = all).
    let header = |w: u32, h: u32, stride: u16, flags: u8| {
        [
            &w.to_le_bytes()[..],
            &h.to_le_bytes(),
            &stride.to_le_bytes(),
            &[flags, 0],
        ]
        .concat()
    };
    let yuyv: Vec<u8> = (0..8 * 4 * 2).map(|i| i as u8).collect();
    write("yuv", "yuyv-8x4", &[header(8, 4, 0, 0), yuyv].concat());
    let nv12: Vec<u8> = (0..10 * 6).map(|i| i as u8).collect();
    write(
        "yuv",
        "nv12-8x4-stride10",
        &[header(8, 4, 10, 1), nv12].concat(),
    );
}
