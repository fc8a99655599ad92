//! What every fuzz target asserts about one input, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, coverage-guided, `cargo fuzz run`) and the proptest driver
//! `tests/fuzz_inputs.rs` (random and mutated inputs on stable, run by `cargo test`), which
//! both include this file with `#[path]`. One function per target takes the raw bytes; the
//! typed functions under it are what the proptest strategies call directly.
//!
//! Beyond "no panic": an error must be the entry point's typed error (a `FieldError` list, a
//! `DecodeError`, a 400 `ApiError`, a `CodecError` of the right kind), and what succeeds must
//! satisfy the invariants written next to each check (round trips, slices inside the input,
//! exact output sizes, the same answer as a plain reference).

#![allow(dead_code)] // each fuzz target uses one of these functions

use std::time::Duration;

use edgecam::codec::h264::{
    NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS, ParamSets, avc_codec_string, is_keyframe, nal_units,
};
use edgecam::codec::yuv::{I420Frame, check_dimensions, i420_to_rgb, nv12_to_i420, yuyv_to_i420};
use edgecam::codec::{CaptureFormat, CaptureProcessor, CodecError, EncoderSettings, H264Decoder};
use edgecam::config::{Config, FieldError};
use edgecam::state::{DecodeError, FORMAT_VERSION, MAGIC, PersistedState};
use edgecam::web::fuzz as web;

// ---------------------------------------------------------------------------------------------
// Config file (TOML text -> Config -> validate)
// ---------------------------------------------------------------------------------------------

/// `config` target: the bytes as the text of a config file (a file that is not UTF-8 does not
/// get past `read_to_string`).
pub fn config_bytes(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        config_text(text);
    }
}

/// `config::parse` either fails with field errors, or gives a config that validates, is saved
/// and read back unchanged, and survives the API's GET/PUT round trip (the JSON of
/// `GET /api/config` sent back as `PUT /api/config`).
pub fn config_text(text: &str) {
    match edgecam::config::parse(text) {
        Err(errors) => field_errors(&errors),
        Ok(cfg) => {
            saved_config_reloads(&cfg);
            let json = serde_json::to_vec(&cfg).expect("a config renders as JSON");
            let put = web::put_config_body(&json);
            assert_eq!(
                put.as_ref(),
                Ok(&cfg),
                "JSON round trip (GET then PUT /api/config)"
            );
        }
    }
}

/// A config that validates, as the daemon saves it (`save_live` renders it as TOML), reads back
/// as the same valid config at the next start.
fn saved_config_reloads(cfg: &Config) {
    assert_eq!(edgecam::config::validate(cfg), Ok(()));
    let saved = edgecam::config::to_toml(cfg).expect("a valid config renders as TOML");
    let back = edgecam::config::parse(&saved);
    assert_eq!(back.as_ref(), Ok(cfg), "TOML round trip of\n{saved}");
}

/// A rejected config says what is wrong (a path may be empty for the file as a whole).
fn field_errors(errors: &[FieldError]) {
    assert!(!errors.is_empty(), "an error without a problem");
    for e in errors {
        assert!(
            !e.message.trim().is_empty(),
            "an empty message at `{}`",
            e.path
        );
    }
}

// ---------------------------------------------------------------------------------------------
// State file (state.bin)
// ---------------------------------------------------------------------------------------------

/// `state` target. An odd first byte frames the rest as a payload with a correct header and
/// CRC (the version from the second byte when it is odd too), so the postcard payload decoder
/// is reached too, not only the header checks; an even one decodes the rest as a whole file.
pub fn state_bytes(data: &[u8]) {
    match data.split_first() {
        Some((&mode, rest)) if mode & 1 == 1 => {
            let version = if mode & 2 == 2 {
                rest.first().map_or(FORMAT_VERSION, |&v| u16::from(v))
            } else {
                FORMAT_VERSION
            };
            state_payload(version, rest);
        }
        Some((_, rest)) => state_file(rest),
        None => state_file(data),
    }
}

/// `state::decode` of any bytes: an error, or a state that encodes and decodes back to itself.
pub fn state_file(bytes: &[u8]) {
    if let Ok(state) = edgecam::state::decode(bytes) {
        state_round_trip(&state);
    }
}

/// `payload` in an intact frame of `version`: the header checks all pass, so the outcome is
/// the version check, then the payload's own.
pub fn state_payload(version: u16, payload: &[u8]) {
    let framed = frame_state(version, payload);
    match edgecam::state::decode(&framed) {
        Ok(state) => {
            assert_eq!(version, FORMAT_VERSION);
            state_round_trip(&state);
        }
        Err(DecodeError::Version { found, .. }) => assert_eq!(found, version),
        Err(DecodeError::Payload(why)) => {
            assert_eq!(version, FORMAT_VERSION);
            assert!(!why.is_empty());
        }
        Err(other) => panic!("an intact frame was refused as {other:?}"),
    }
}

/// A state file around `payload`: magic, `version`, length, payload, CRC.
pub fn frame_state(version: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    let len = u32::try_from(payload.len()).expect("a fuzz input fits u32");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn state_round_trip(state: &PersistedState) {
    let bytes = edgecam::state::encode(state).expect("a decoded state encodes");
    assert_eq!(edgecam::state::decode(&bytes).ok().as_ref(), Some(state));
}

// ---------------------------------------------------------------------------------------------
// WebSocket client message (`hello`)
// ---------------------------------------------------------------------------------------------

/// `live_hello` target: the bytes as a text message (a WebSocket text message is UTF-8).
pub fn hello_bytes(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        hello_text(text);
    }
}

/// `parse_hello` accepts exactly a JSON object whose `type` is `"hello"` and whose `codecs`,
/// when present, is a list of strings, and returns that list.
pub fn hello_text(text: &str) {
    let got = edgecam::output::live::parse_hello(text);
    let value: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let expected = value.and_then(|v| {
        let obj = v.as_object()?;
        if obj.get("type")?.as_str()? != "hello" {
            return None;
        }
        match obj.get("codecs") {
            None => Some(Vec::new()),
            Some(list) => list
                .as_array()?
                .iter()
                .map(|c| c.as_str().map(str::to_string))
                .collect(),
        }
    });
    // serde_json's `Value` keeps the last of duplicate keys, a struct refuses them: only
    // compare when the object has no duplicates (the parser may accept less, never more).
    match (&got, &expected) {
        (Some(g), Some(e)) => assert_eq!(g, e),
        (Some(g), None) => panic!("accepted {text:?} as a hello with {g:?}"),
        (None, _) => {}
    }
}

// ---------------------------------------------------------------------------------------------
// API JSON bodies
// ---------------------------------------------------------------------------------------------

/// Which body parser an `api_body` input goes to.
#[derive(Debug, Clone, Copy)]
pub enum Route {
    /// `POST /api/active`.
    Select,
    /// `POST /api/alarms/{id}/trigger`.
    Trigger,
    /// `POST /api/login`, `POST /api/setup`.
    Password,
    /// `POST /api/password`.
    ChangePassword,
    /// `POST /api/streams/test`.
    TestStream,
    /// `PUT /api/config`.
    PutConfig,
}

/// Every route, in the order the first byte of an `api_body` input picks them.
pub const ROUTES: [Route; 6] = [
    Route::Select,
    Route::Trigger,
    Route::Password,
    Route::ChangePassword,
    Route::TestStream,
    Route::PutConfig,
];

/// `api_body` target: the first byte picks the route, the rest is the body.
pub fn api_bytes(data: &[u8]) {
    if let Some((&pick, body)) = data.split_first() {
        api_body(ROUTES[usize::from(pick) % ROUTES.len()], body);
    }
}

/// A body either parses into what the handler acts on, or is a 400 in the API's error shape.
pub fn api_body(route: Route, body: &[u8]) {
    let outcome = match route {
        Route::Select => web::select_body(body).map(drop),
        Route::Trigger => web::trigger_body(body).map(|hold| {
            assert!(hold.is_none_or(|h| h <= Duration::from_secs(86_400)));
        }),
        Route::Password => web::password_body(body),
        Route::ChangePassword => web::change_password_body(body),
        Route::TestStream => web::test_stream_body(body).map(|checked| {
            if let Err(errors) = checked {
                field_errors(&errors);
            }
        }),
        Route::PutConfig => web::put_config_body(body).map(|cfg| saved_config_reloads(&cfg)),
    };
    if let Err(e) = outcome {
        assert_eq!(e.status.as_u16(), 400, "{route:?}: {e:?}");
        assert!(!e.error.is_empty());
        if !e.errors.is_empty() {
            field_errors(&e.errors);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// H.264 Annex B and SPS
// ---------------------------------------------------------------------------------------------

/// `annexb` target: the bytes as one access unit, then split at every `0xFF 0xFF 0xFF 0xFF`
/// into a sequence of access units fed to the normalizer (the camera-H.264 capture path).
pub fn annexb_bytes(data: &[u8]) {
    access_unit(data);
    let units: Vec<&[u8]> = split_units(data);
    normalize_sequence(&units);
    capture_h264(&units);
}

/// Splits at every run of four 0xFF bytes (a byte sequence no start code contains).
pub fn split_units(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(4).position(|w| w == [0xFF; 4]) {
        out.push(&rest[..at]);
        rest = &rest[at + 4..];
    }
    out.push(rest);
    out
}

/// The NAL units are in order, disjoint, inside `au`, each a start code then a non-empty body
/// that holds no further start code; the codec string and keyframe flag agree with them.
pub fn access_unit(au: &[u8]) {
    let base = au.as_ptr() as usize;
    let mut prev_end = 0;
    let mut first_sps = None;
    let mut idr = false;
    for nal in nal_units(au) {
        let start = nal.with_start_code.as_ptr() as usize - base;
        let end = start + nal.with_start_code.len();
        assert!(
            start >= prev_end && end <= au.len(),
            "NAL {start}..{end} out of place"
        );
        prev_end = end;
        assert!(!nal.body.is_empty());
        let code = nal.with_start_code.len() - nal.body.len();
        assert!(
            nal.with_start_code.ends_with(nal.body),
            "the body is the NAL's tail"
        );
        let prefix = &nal.with_start_code[..code];
        assert!(
            prefix == [0, 0, 1] || prefix == [0, 0, 0, 1],
            "start code {prefix:?}"
        );
        assert!(
            !nal.body.windows(3).any(|w| w == [0, 0, 1]),
            "a start code was missed"
        );
        if nal.nal_type() == NAL_SPS && first_sps.is_none() {
            first_sps = Some(nal.body);
        }
        idr |= nal.nal_type() == NAL_IDR;
    }
    // The first 00 00 01 begins the first unit's start code, or the empty unit before it.
    if let Some(first) = au.windows(3).position(|w| w == [0, 0, 1]) {
        let first_nal = nal_units(au)
            .next()
            .map(|n| n.body.as_ptr() as usize - base);
        assert!(first_nal.is_none_or(|b| b >= first + 3));
    } else {
        assert_eq!(nal_units(au).count(), 0);
    }
    assert_eq!(is_keyframe(au), idr);
    let codec = avc_codec_string(au);
    match first_sps.and_then(|b| b.get(1..4)) {
        Some(b) => {
            let want = format!("avc1.{:02x}{:02x}{:02x}", b[0], b[1], b[2]);
            assert_eq!(codec.as_deref(), Some(want.as_str()));
        }
        None => assert_eq!(codec, None),
    }
}

/// What the normalizer lets through is decodable from there: the first frame out is a
/// keyframe, every keyframe carries an SPS and a PPS (its own or re-inserted in front), a
/// delta frame is passed on as it came, and an access unit without a slice is dropped.
pub fn normalize_sequence(units: &[&[u8]]) {
    let mut params = ParamSets::new();
    let mut started = false;
    for au in units {
        let has_slice = nal_units(au).any(|n| matches!(n.nal_type(), NAL_SLICE | NAL_IDR));
        let Some(n) = params.normalize(au) else {
            continue;
        };
        assert!(has_slice, "an access unit without a slice was let through");
        assert!(
            std::ptr::eq(n.parts[2], *au),
            "the access unit is passed on uncopied"
        );
        assert_eq!(n.keyframe, is_keyframe(au));
        assert!(
            started || n.keyframe,
            "a delta frame before the first keyframe"
        );
        assert!(!n.params_changed || n.keyframe);
        if n.keyframe {
            started = true;
            let whole = n.parts.concat();
            let types: Vec<u8> = nal_units(&whole).map(|n| n.nal_type()).collect();
            assert!(
                types.contains(&NAL_SPS) && types.contains(&NAL_PPS),
                "{types:?}"
            );
        } else {
            assert!(n.parts[0].is_empty() && n.parts[1].is_empty());
        }
    }
}

/// A small picture's encoder settings (the capture paths that pass frames through ignore them;
/// the proptest driver encodes its access units with them).
pub const SMALL: EncoderSettings = EncoderSettings {
    width: 64,
    height: 48,
    fps: 25,
    bitrate_kbps: 200,
    gop: 10,
};

/// The V4L2 camera-H.264 path, `bytesused` cutting each buffer to its first half.
pub fn capture_h264(units: &[&[u8]]) {
    let mut p = CaptureProcessor::new(CaptureFormat::H264, SMALL).expect("no encoder needed");
    for au in units {
        let used = au.len() / 2;
        if let Some(f) = p.process(au, used).expect("H.264 passes through") {
            assert!(f.parts[2].len() <= used);
            assert!(!f.is_empty());
        }
    }
}

/// `h264_decode` target: the units of [`split_units`] through openh264's decoder (the
/// snapshot and JPEG paths decode camera H.264): errors are `CodecError::OpenH264` or a size
/// refusal, and every picture has planes of exactly its size.
pub fn decode_bytes(data: &[u8]) {
    let mut decoder = H264Decoder::new().expect("decoder");
    for au in split_units(data) {
        match decoder.decode(au) {
            Ok(Some(picture)) => {
                assert_eq!(picture.check_planes().ok(), Some(()));
            }
            Ok(None) => {}
            Err(CodecError::OpenH264 { .. } | CodecError::BadDimensions { .. }) => {}
            Err(other) => panic!("decode failed with {other:?}"),
        }
    }
}

/// The MJPEG capture path: a frame exactly when the cut buffer starts with a JPEG SOI.
pub fn capture_mjpeg(buf: &[u8], bytesused: usize) {
    let mut p = CaptureProcessor::new(CaptureFormat::Mjpeg, SMALL).expect("no encoder needed");
    let data = &buf[..bytesused.min(buf.len())];
    match p.process(buf, bytesused) {
        Ok(Some(f)) => {
            assert!(data.starts_with(&[0xFF, 0xD8]) && data.len() >= 4);
            assert_eq!(f.parts[0], data);
        }
        Ok(None) => assert!(data.is_empty()),
        Err(CodecError::NotJpeg { len }) => assert_eq!(len, data.len()),
        Err(other) => panic!("MJPEG failed with {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// V4L2 buffer conversion (YUYV, NV12 -> I420)
// ---------------------------------------------------------------------------------------------

/// One conversion request: the picture size, the driver's stride and `bytesused`, and the
/// buffer.
#[derive(Debug, Clone)]
pub struct Conversion<'a> {
    /// NV12 instead of YUYV.
    pub nv12: bool,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Bytes per line (0 = packed).
    pub stride: usize,
    /// Valid bytes the driver reported.
    pub bytesused: usize,
    /// Shorten one plane of a hand-made destination by this much (0: a proper frame).
    pub damage: usize,
    /// The camera buffer.
    pub src: &'a [u8],
}

/// `yuv` target: a 12-byte header (width and height, of which the conversion uses the low
/// byte: larger pictures only cost time; stride; format, damage and bytesused bits), then
/// the buffer. The whole
/// 32-bit range of sizes goes through [`check_dimensions`].
pub fn yuv_bytes(data: &[u8]) {
    let Some((head, src)) = data.split_first_chunk::<12>() else {
        return;
    };
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let (w32, h32) = (word(0), word(4));
    if check_dimensions(w32, h32).is_ok() {
        let even = w32.is_multiple_of(2) && h32.is_multiple_of(2);
        assert!(even && w32.max(h32) <= 3840 && w32.min(h32) <= 2160);
    }
    let stride = usize::from(u16::from_le_bytes([head[8], head[9]]));
    // A stride with its top bit set is scaled up, to reach the overflow guards.
    let stride = if stride & 0x8000 != 0 {
        (stride & 0x7fff) << 40
    } else {
        stride
    };
    convert(&Conversion {
        nv12: head[10] & 1 == 1,
        width: w32 & 0xff,
        height: h32 & 0xff,
        stride,
        // 0: all of the buffer, else up to 255 << 19 bytes (mostly beyond the buffer's end).
        bytesused: match head[11] {
            0 => usize::MAX,
            b => usize::from(b) << (usize::from(head[10] >> 4) + 4),
        },
        damage: usize::from((head[10] >> 1) & 7),
        src,
    });
}

/// A conversion succeeds exactly when the sizes add up, and then writes every pixel from
/// where the format puts it; otherwise it fails with the error that names the problem.
pub fn convert(c: &Conversion) {
    let Ok(mut dst) = I420Frame::new(c.width, c.height) else {
        assert!(check_dimensions(c.width, c.height).is_err());
        return;
    };
    if c.damage > 0 {
        let plane = match c.damage % 3 {
            0 => &mut dst.y,
            1 => &mut dst.u,
            _ => &mut dst.v,
        };
        plane.truncate(plane.len().saturating_sub(c.damage));
        let mut rgb = Vec::new();
        let result = i420_to_rgb(&dst, &mut rgb);
        assert!(matches!(result, Err(CodecError::ShortBuffer { .. })));
    }
    let (w, h) = (c.width as usize, c.height as usize);
    let bytes_per_pixel = if c.nv12 { 1 } else { 2 };
    let line = bytes_per_pixel * w;
    let stride = if c.stride == 0 { line } else { c.stride };
    let lines = if c.nv12 { h + h / 2 } else { h };
    let need = stride
        .checked_mul(lines - 1)
        .and_then(|n| n.checked_add(line));
    let have = c.bytesused.min(c.src.len());
    let before = dst.clone();
    let result = if c.nv12 {
        nv12_to_i420(c.src, c.bytesused, c.stride, &mut dst)
    } else {
        yuyv_to_i420(c.src, c.bytesused, c.stride, &mut dst)
    };
    match result {
        Ok(()) => {
            assert_eq!(c.damage, 0);
            assert!(stride >= line && need.is_some_and(|n| n <= have));
            assert_eq!(dst.check_planes().ok(), Some(()));
            check_pixels(c, stride, &dst);
        }
        Err(e) => {
            assert_eq!(dst, before, "a failed conversion wrote to the picture");
            match e {
                CodecError::ShortBuffer { have: got, .. } if c.damage == 0 => {
                    assert!(stride >= line);
                    assert_eq!(got, have);
                    assert!(need.is_none_or(|n| n > have));
                }
                CodecError::ShortBuffer { .. } => {}
                CodecError::BadStride { .. } => assert!(c.damage == 0 && stride < line),
                other => panic!("conversion failed with {other:?}"),
            }
        }
    }
}

/// Every output sample against the plain definition of the source format.
fn check_pixels(c: &Conversion, stride: usize, dst: &I420Frame) {
    let (w, h) = (c.width as usize, c.height as usize);
    let cw = w / 2;
    for row in 0..h {
        for x in 0..w {
            let want = if c.nv12 {
                c.src[row * stride + x]
            } else {
                c.src[row * stride + 2 * x]
            };
            assert_eq!(dst.y[row * w + x], want, "Y at {x},{row}");
        }
    }
    for row in 0..h / 2 {
        for x in 0..cw {
            let (u, v) = if c.nv12 {
                let at = stride * h + row * stride + 2 * x;
                (c.src[at], c.src[at + 1])
            } else {
                let (top, bottom) = (2 * row * stride + 4 * x, (2 * row + 1) * stride + 4 * x);
                let avg = |a: u8, b: u8| (u16::from(a) + u16::from(b)).div_ceil(2) as u8;
                (
                    avg(c.src[top + 1], c.src[bottom + 1]),
                    avg(c.src[top + 3], c.src[bottom + 3]),
                )
            };
            assert_eq!(
                (dst.u[row * cw + x], dst.v[row * cw + x]),
                (u, v),
                "UV at {x},{row}"
            );
        }
    }
}
