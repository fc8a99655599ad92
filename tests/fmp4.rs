//! The fMP4 muxer against real `ffprobe`: an init segment and N fragments of openh264 output,
//! written to a file, must probe as H.264 of the right size with exactly N frames.

use std::process::Command;

use edgecam::codec::fmp4::{Fragmenter, init_segment};
use edgecam::codec::{EncoderSettings, H264Encoder, I420Frame};

/// Frames muxed; with a GOP of 10 they span three keyframes.
const FRAMES: usize = 25;

#[test]
fn ffprobe_reads_the_fragments_as_h264_of_the_right_size_and_count() {
    let (w, h) = (160, 96);
    let settings = EncoderSettings {
        width: w,
        height: h,
        fps: 25,
        bitrate_kbps: 300,
        gop: 10,
    };
    let mut enc = H264Encoder::new(settings).expect("encoder");
    let mut pic = I420Frame::new(w, h).expect("frame");
    let mut file = Vec::new();
    let mut frag = Fragmenter::new();
    let mut out = Vec::new();
    for n in 0..FRAMES {
        // A picture that changes, so every frame codes something.
        pic.y
            .iter_mut()
            .enumerate()
            .for_each(|(i, p)| *p = (i + 3 * n) as u8);
        let f = enc
            .encode(&pic, false)
            .expect("encode")
            .expect("not skipped");
        if n == 0 {
            assert!(f.keyframe);
            file.extend_from_slice(&init_segment(f.data).expect("init").bytes);
        }
        frag.fragment(f.data, n as i64 * 40_000, f.keyframe, &mut out);
        file.extend_from_slice(&out);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("live.mp4");
    std::fs::write(&path, &file).expect("write");
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-count_frames", "-of", "default=noprint_wrappers=1"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("ffprobe not runnable ({e}): install the Debian package `ffmpeg`")
        });
    let text = String::from_utf8_lossy(&probe.stdout);
    let errors = String::from_utf8_lossy(&probe.stderr);
    assert!(probe.status.success(), "ffprobe failed: {errors}");
    assert!(errors.trim().is_empty(), "ffprobe complained: {errors}");
    assert!(text.contains("codec_name=h264"), "{text}");
    assert!(text.contains(&format!("width={w}")), "{text}");
    assert!(text.contains(&format!("height={h}")), "{text}");
    assert!(text.contains(&format!("nb_read_frames={FRAMES}")), "{text}");
}
