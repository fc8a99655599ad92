//! The low-delay SPS rewrite (`edgecam::codec::sps`) against real ffmpeg: a stream whose SPS
//! lost its `bitstream_restriction` (as some cameras send it), rewritten, must read back in
//! ffmpeg's own SPS parser (`trace_headers`) with `max_num_reorder_frames` 0, and decode to
//! exactly the same pictures as the stream before the rewrite.

use std::path::Path;
use std::process::Command;

use edgecam::codec::h264::{NAL_SPS, nal_units};
use edgecam::codec::sps;
use edgecam::codec::{EncoderSettings, H264Encoder, I420Frame};

/// Runs ffmpeg with `args`; returns (stdout, stderr). Fails the test when it fails.
fn ffmpeg(args: &[&str], input: &Path) -> (String, String) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error"])
        .args(args.iter().take_while(|a| **a != "-i"))
        .arg("-i")
        .arg(input)
        .args(args.iter().skip_while(|a| **a != "-i").skip(1))
        .output()
        .unwrap_or_else(|e| {
            panic!("ffmpeg not runnable ({e}): install the Debian package `ffmpeg`")
        });
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "ffmpeg {args:?} failed: {e}");
    (o, e)
}

/// Every SPS of an Annex B stream replaced by `f(sps)`.
fn map_sps(stream: &[u8], f: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nal_units(stream) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        if nal.nal_type() == NAL_SPS {
            out.extend_from_slice(&f(nal.body));
        } else {
            out.extend_from_slice(nal.body);
        }
    }
    out
}

/// `trace_headers`' value of `field` in every SPS of the file.
fn traced(file: &Path, field: &str) -> Vec<String> {
    let (_, log) = ffmpeg(
        &[
            "-v",
            "info",
            "-i",
            "-c",
            "copy",
            "-bsf:v",
            "trace_headers",
            "-f",
            "null",
            "-",
        ],
        file,
    );
    log.lines()
        .filter(|l| l.split_whitespace().nth(4) == Some(field))
        .filter_map(|l| l.rsplit("= ").next().map(str::to_string))
        .collect()
}

/// One MD5 per decoded picture.
fn picture_hashes(file: &Path) -> Vec<String> {
    let (out, _) = ffmpeg(&["-i", "-f", "framemd5", "-"], file);
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_string()))
        .collect()
}

/// An SPS without any VUI, from one whose VUI says nothing but "no restriction" (what
/// [`sps::rewrite`] leaves of openh264's): the RBSP ends `1 000000000 1 0..0` (VUI present,
/// eight absent parts, no restriction, trailing bits), which becomes `0 1 0..0`. Needs an SPS
/// without emulation prevention bytes (checked).
fn without_vui(sps_nal: &[u8]) -> Vec<u8> {
    assert!(!sps_nal.windows(3).any(|w| w == [0, 0, 3]), "no escapes");
    let bits: Vec<u8> = sps_nal[1..]
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let trailing = bits.iter().rposition(|b| *b == 1).expect("trailing bit");
    let vui_flag = trailing - 10;
    assert_eq!(&bits[vui_flag..trailing], &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut out: Vec<u8> = bits[..vui_flag].to_vec();
    out.extend([0, 1]);
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    let mut nal = vec![sps_nal[0]];
    nal.extend(out.chunks(8).map(|c| c.iter().fold(0, |a, b| a << 1 | b)));
    nal
}

/// Checks the rewrite of `original` (whose SPS rules out reordering) end to end, after
/// `strip` took the restriction out of its SPS.
fn check(original: &[u8], dir: &Path, name: &str, strip: impl Fn(&[u8]) -> Vec<u8>) {
    let bare = map_sps(original, strip);
    let fixed = map_sps(&bare, |s| {
        sps::low_delay(s)
            .expect("parse")
            .expect("the rewrite applies")
    });
    let paths = [
        dir.join(format!("{name}-orig.h264")),
        dir.join(format!("{name}-bare.h264")),
        dir.join(format!("{name}-fixed.h264")),
    ];
    for (p, data) in paths.iter().zip([original, &bare, &fixed]) {
        std::fs::write(p, data).expect("write");
    }
    let flags = traced(&paths[1], "bitstream_restriction_flag");
    assert!(
        flags.iter().all(|v| v == "0"),
        "{name}: the stripped stream has no restriction: {flags:?}"
    );
    let reorder = traced(&paths[2], "max_num_reorder_frames");
    assert!(!reorder.is_empty(), "{name}: ffmpeg sees a restriction");
    assert!(reorder.iter().all(|v| v == "0"), "{name}: {reorder:?}");
    assert!(traced(&paths[2], "level_idc").iter().all(|v| v == "51"));
    let want = picture_hashes(&paths[0]);
    assert!(want.len() >= 10, "{name}: {} pictures", want.len());
    assert_eq!(picture_hashes(&paths[2]), want, "{name}: same pictures");
}

#[test]
fn ffmpeg_reads_the_rewritten_sps_and_decodes_the_same_pictures() {
    let dir = tempfile::tempdir().expect("tempdir");
    // edgecam's own encoder: Constrained Baseline, VUI with a restriction of its own.
    let settings = EncoderSettings {
        width: 160,
        height: 96,
        fps: 25,
        bitrate_kbps: 300,
        gop: 10,
    };
    let mut enc = H264Encoder::new(settings).expect("encoder");
    let mut pic = I420Frame::new(160, 96).expect("frame");
    let mut openh264 = Vec::new();
    for n in 0..25usize {
        pic.y
            .iter_mut()
            .enumerate()
            .for_each(|(i, p)| *p = (i + 3 * n) as u8);
        let f = enc.encode(&pic, false).expect("encode").expect("frame");
        openh264.extend_from_slice(f.data);
    }
    let strip = |s: &[u8]| sps::rewrite(s, None, Some(51)).expect("strip the restriction");
    check(&openh264, dir.path(), "openh264", strip);
    // The same without any VUI: the rewrite adds one.
    check(&openh264, dir.path(), "openh264-novui", |s| {
        let nal = without_vui(&strip(s));
        assert!(!sps::parse(&nal).expect("parse").vui_present);
        nal
    });

    // libx264 without B-frames: High profile, pic_order_cnt_type 2, VUI with timing.
    let x264 = dir.path().join("x264.h264");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=160x96:rate=25", "-frames:v", "25"])
        .args([
            "-c:v",
            "libx264",
            "-bf",
            "0",
            "-profile:v",
            "high",
            "-f",
            "h264",
        ])
        .arg(&x264)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    check(
        &std::fs::read(&x264).expect("read"),
        dir.path(),
        "x264",
        strip,
    );
}
