//! The device-independent half of V4L2 ingest: raw pixel conversion, encode/decode round
//! trips, and what [`CaptureProcessor`] makes of each kind of camera buffer. With the `v4l2`
//! feature it also checks the error for a missing device, and holds an ignored test for a
//! real camera.

use edgecam::codec::h264::{NAL_IDR, NAL_PPS, NAL_SPS, nal_units};
use edgecam::codec::yuv::{i420_to_rgb, nv12_to_i420, rgb_to_yuv, yuv_to_rgb, yuyv_to_i420};
use edgecam::codec::{
    CaptureFormat, CaptureProcessor, CodecError, EncoderSettings, H264Decoder, H264Encoder,
    I420Frame,
};
use edgecam::frame::Codec;
use proptest::prelude::*;

fn settings(width: u32, height: u32) -> EncoderSettings {
    EncoderSettings {
        width,
        height,
        fps: 25,
        bitrate_kbps: 800,
        gop: 5,
    }
}

/// A YUYV picture with one colour per 2x2 block: luma `10 + x + 10*y`, chroma from the block.
fn yuyv_blocks(w: usize, h: usize, stride: usize, pad: u8) -> Vec<u8> {
    let mut buf = vec![pad; stride * h];
    for y in 0..h {
        for pair in 0..w / 2 {
            let o = y * stride + pair * 4;
            buf[o] = (10 + 2 * pair + 10 * y) as u8;
            buf[o + 1] = (100 + pair + y % 2 * 2) as u8; // U differs between the two lines
            buf[o + 2] = (11 + 2 * pair + 10 * y) as u8;
            buf[o + 3] = (200 - pair) as u8;
        }
    }
    buf
}

#[test]
fn yuyv_converts_to_the_expected_planes() {
    let (w, h) = (4, 2);
    let src = yuyv_blocks(w, h, 2 * w, 0);
    let mut dst = I420Frame::new(4, 2).expect("size");
    yuyv_to_i420(&src, src.len(), 0, &mut dst).expect("converts");
    assert_eq!(dst.y, vec![10, 11, 12, 13, 20, 21, 22, 23]);
    // U is the rounded mean of the two lines (100 and 102 -> 101), V equal on both lines.
    assert_eq!(dst.u, vec![101, 102]);
    assert_eq!(dst.v, vec![200, 199]);
}

#[test]
fn yuyv_respects_stride_and_bytesused() {
    let (w, h) = (8, 4);
    let clean = yuyv_blocks(w, h, 2 * w, 0);
    let mut expected = I420Frame::new(8, 4).expect("size");
    yuyv_to_i420(&clean, clean.len(), 0, &mut expected).expect("converts");

    // Padded lines (stride 24 instead of 16) with garbage in the padding.
    let padded = yuyv_blocks(w, h, 24, 0xEE);
    let mut got = I420Frame::new(8, 4).expect("size");
    yuyv_to_i420(&padded, padded.len(), 24, &mut got).expect("converts");
    assert_eq!(got, expected);

    // A longer buffer with garbage after bytesused.
    let mut long = clean.clone();
    long.extend_from_slice(&[0xAB; 100]);
    let mut got = I420Frame::new(8, 4).expect("size");
    yuyv_to_i420(&long, clean.len(), 0, &mut got).expect("converts");
    assert_eq!(got, expected);
}

#[test]
fn short_buffers_and_bad_strides_are_errors() {
    let mut dst = I420Frame::new(8, 4).expect("size");
    let src = vec![0u8; 64];
    let e = yuyv_to_i420(&src, 63, 0, &mut dst).expect_err("one byte short");
    assert!(
        matches!(
            e,
            CodecError::ShortBuffer {
                have: 63,
                need: 64,
                ..
            }
        ),
        "{e}"
    );
    // bytesused larger than the buffer itself: the buffer length counts.
    let e = yuyv_to_i420(&src[..40], 64, 0, &mut dst).expect_err("buffer shorter than bytesused");
    assert!(matches!(e, CodecError::ShortBuffer { have: 40, .. }), "{e}");
    let e = yuyv_to_i420(&src, 64, 10, &mut dst).expect_err("stride below a line");
    assert!(matches!(e, CodecError::BadStride { stride: 10, .. }), "{e}");
    let nv12 = vec![0u8; 8 * 4 + 8 * 2];
    let e = nv12_to_i420(&nv12, nv12.len() - 1, 0, &mut dst).expect_err("NV12 one short");
    assert!(matches!(e, CodecError::ShortBuffer { .. }), "{e}");
}

#[test]
fn nv12_converts_with_stride_and_garbage() {
    let (w, h, stride) = (4usize, 2usize, 6usize);
    let mut src = vec![0xEE; stride * h + stride * (h / 2)];
    for y in 0..h {
        for x in 0..w {
            src[y * stride + x] = (x + 10 * y) as u8;
        }
    }
    let uv = stride * h;
    src[uv..uv + 4].copy_from_slice(&[50, 60, 70, 80]);
    src.extend_from_slice(&[1, 2, 3]); // after bytesused
    let used = src.len() - 3;
    let mut dst = I420Frame::new(4, 2).expect("size");
    nv12_to_i420(&src, used, stride, &mut dst).expect("converts");
    assert_eq!(dst.y, vec![0, 1, 2, 3, 10, 11, 12, 13]);
    assert_eq!(dst.u, vec![50, 70]);
    assert_eq!(dst.v, vec![60, 80]);
}

#[test]
fn rgb_round_trip_is_close() {
    for rgb in [
        [255u8, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [128, 128, 128],
        [20, 200, 90],
    ] {
        let (y, u, v) = rgb_to_yuv(rgb[0], rgb[1], rgb[2]);
        let back = yuv_to_rgb(y, u, v);
        for c in 0..3 {
            assert!(back[c].abs_diff(rgb[c]) <= 3, "{rgb:?} -> {back:?}");
        }
    }
    let mut frame = I420Frame::new(4, 2).expect("size");
    let (y, u, v) = rgb_to_yuv(255, 0, 0);
    frame.y.fill(y);
    frame.u.fill(u);
    frame.v.fill(v);
    let mut rgb = Vec::new();
    i420_to_rgb(&frame, &mut rgb).expect("valid frame");
    assert_eq!(rgb.len(), 4 * 2 * 3);
    assert!(
        rgb[0] > 240 && rgb[1] < 15 && rgb[2] < 15,
        "{:?}",
        &rgb[..3]
    );
}

/// A uniform YUYV picture of one colour.
fn yuyv_uniform(w: usize, h: usize, (y, u, v): (u8, u8, u8)) -> Vec<u8> {
    [y, u, y, v].repeat(w * h / 2)
}

#[test]
fn converted_frame_survives_encode_and_decode() {
    let (w, h) = (64u32, 48u32);
    let colour = rgb_to_yuv(30, 160, 220);
    let src = yuyv_uniform(w as usize, h as usize, colour);
    let mut picture = I420Frame::new(w, h).expect("size");
    yuyv_to_i420(&src, src.len(), 0, &mut picture).expect("converts");
    let mut encoder = H264Encoder::new(settings(w, h)).expect("encoder");
    let au = encoder
        .encode(&picture, false)
        .expect("encodes")
        .expect("not skipped");
    assert!(au.keyframe);
    let au = au.data.to_vec();
    let mut decoder = H264Decoder::new().expect("decoder");
    let out = decoder.decode(&au).expect("decodes").expect("picture");
    assert_eq!((out.width, out.height), (w, h));
    let (y, u, v) = out.pixel(32, 24).expect("inside");
    assert!(y.abs_diff(colour.0) <= 6, "Y {y} vs {}", colour.0);
    assert!(u.abs_diff(colour.1) <= 6, "U {u} vs {}", colour.1);
    assert!(v.abs_diff(colour.2) <= 6, "V {v} vs {}", colour.2);
}

#[test]
fn encoder_rejects_a_frame_of_another_size() {
    let mut encoder = H264Encoder::new(settings(64, 48)).expect("encoder");
    let other = I420Frame::new(32, 32).expect("size");
    assert!(matches!(
        encoder.encode(&other, false),
        Err(CodecError::SizeMismatch { .. })
    ));
    assert!(H264Encoder::new(settings(63, 48)).is_err(), "odd width");
    // A hand-made frame with a short plane is refused before openh264 reads it.
    let mut broken = I420Frame::new(64, 48).expect("size");
    broken.v.truncate(10);
    assert!(matches!(
        encoder.encode(&broken, false),
        Err(CodecError::ShortBuffer { have: 10, .. })
    ));
    let mut rgb = Vec::new();
    assert!(edgecam::codec::yuv::i420_to_rgb(&broken, &mut rgb).is_err());
}

#[test]
fn mjpeg_passes_through_as_jpeg_keyframes() {
    let mut p = CaptureProcessor::new(CaptureFormat::Mjpeg, settings(64, 48)).expect("processor");
    let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 0xFF, 0xD9];
    let mut buf = jpeg.to_vec();
    buf.extend_from_slice(&[0x55; 32]); // stale bytes after bytesused
    let f = p.process(&buf, jpeg.len()).expect("ok").expect("a frame");
    assert_eq!(
        (f.codec, f.keyframe, f.params_changed),
        (Codec::Jpeg, true, true)
    );
    assert_eq!(f.parts.concat(), jpeg.to_vec());
    let info = f.info(1234, 99, 77, 4);
    assert_eq!(
        (info.codec, info.keyframe, info.pts_us, info.epoch),
        (Codec::Jpeg, true, 1234, 4)
    );
    assert_eq!((info.recv_mono_ns, info.recv_wall_us), (99, 77));
    let f = p.process(&buf, jpeg.len()).expect("ok").expect("a frame");
    assert!(!f.params_changed, "only the first JPEG resets decoders");
    assert!(p.process(&buf, 0).expect("ok").is_none(), "empty buffer");
    assert!(matches!(
        p.process(&[0u8; 16], 16),
        Err(CodecError::NotJpeg { len: 16 })
    ));
}

fn nal_types(parts: &[&[u8]]) -> Vec<u8> {
    nal_units(&parts.concat()).map(|n| n.nal_type()).collect()
}

#[test]
fn raw_formats_are_encoded_with_keyframes_on_request() {
    for format in [
        CaptureFormat::Yuyv { stride: 0 },
        CaptureFormat::Nv12 { stride: 0 },
    ] {
        let mut p = CaptureProcessor::new(format, settings(64, 48)).expect("processor");
        let buf = match format {
            CaptureFormat::Yuyv { .. } => yuyv_uniform(64, 48, (90, 100, 150)),
            _ => vec![90u8; 64 * 48 * 3 / 2],
        };
        let f = p.process(&buf, buf.len()).expect("ok").expect("a frame");
        assert_eq!(
            (f.codec, f.keyframe, f.params_changed),
            (Codec::H264, true, true)
        );
        assert_eq!(&nal_types(&f.parts)[..3], &[NAL_SPS, NAL_PPS, NAL_IDR]);
        let f = p.process(&buf, buf.len()).expect("ok").expect("a frame");
        assert!(!f.keyframe);
        p.request_keyframe();
        let f = p.process(&buf, buf.len()).expect("ok").expect("a frame");
        assert!(f.keyframe && !f.params_changed, "{format:?}");
        assert!(p.process(&buf, buf.len() - 1).is_err(), "short buffer");
    }
}

#[test]
fn camera_h264_gets_parameter_sets_before_every_keyframe() {
    let mut encoder = H264Encoder::new(settings(64, 48)).expect("encoder");
    let picture = I420Frame::new(64, 48).expect("size");
    let first = encoder
        .encode(&picture, false)
        .expect("ok")
        .expect("frame")
        .data
        .to_vec();
    let delta = encoder
        .encode(&picture, false)
        .expect("ok")
        .expect("frame")
        .data
        .to_vec();
    let second = encoder
        .encode(&picture, true)
        .expect("ok")
        .expect("frame")
        .data
        .to_vec();
    // A camera that sends SPS/PPS only once: strip them from the second keyframe.
    let bare_idr: Vec<u8> = nal_units(&second)
        .filter(|n| n.nal_type() == NAL_IDR)
        .flat_map(|n| n.with_start_code.to_vec())
        .collect();

    let mut p = CaptureProcessor::new(CaptureFormat::H264, settings(64, 48)).expect("processor");
    assert!(
        p.process(&delta, delta.len()).expect("ok").is_none(),
        "delta before keyframe"
    );
    let f = p.process(&first, first.len()).expect("ok").expect("frame");
    assert!(f.keyframe && f.params_changed);
    let f = p.process(&delta, delta.len()).expect("ok").expect("frame");
    assert!(!f.keyframe);
    let f = p
        .process(&bare_idr, bare_idr.len())
        .expect("ok")
        .expect("frame");
    assert!(f.keyframe && !f.params_changed);
    assert_eq!(&nal_types(&f.parts)[..3], &[NAL_SPS, NAL_PPS, NAL_IDR]);
    // The repaired keyframe decodes on a fresh decoder.
    let mut decoder = H264Decoder::new().expect("decoder");
    let out = decoder
        .decode(&f.parts.concat())
        .expect("decodes")
        .expect("picture");
    assert_eq!((out.width, out.height), (64, 48));
}

proptest! {
    #[test]
    fn conversions_never_panic(
        w in 1u32..12, h in 1u32..12, stride in 0usize..40,
        len in 0usize..400, used in 0usize..500, nv12 in any::<bool>(),
    ) {
        let (w, h) = (w * 2, h * 2);
        let mut dst = I420Frame::new(w, h).expect("even size");
        let src = vec![7u8; len];
        let r = if nv12 {
            nv12_to_i420(&src, used, stride, &mut dst)
        } else {
            yuyv_to_i420(&src, used, stride, &mut dst)
        };
        let line = if nv12 { w as usize } else { 2 * w as usize };
        let s = if stride == 0 { line } else { stride };
        let need = if nv12 {
            s * h as usize + s * (h as usize / 2 - 1) + w as usize
        } else {
            s * (h as usize - 1) + line
        };
        prop_assert_eq!(r.is_ok(), s >= line && used.min(len) >= need);
    }
}

#[cfg(feature = "v4l2")]
mod device {
    use edgecam::clock::SystemClock;
    use edgecam::config::schema::StreamConfig;
    use edgecam::frame::VecSink;
    use edgecam::ingest::v4l2::V4l2Source;
    use edgecam::ingest::{Source, SourceCtx, SourceError};

    fn config(device: Option<&str>) -> StreamConfig {
        let device = device.map_or(String::new(), |d| format!("device = \"{d}\"\n"));
        toml::from_str(&format!(
            "id = \"usb\"\nkind = \"v4l2\"\n{device}width = 640\nheight = 480\nfps = 15\n"
        ))
        .expect("valid stream config")
    }

    async fn run_once(cfg: &StreamConfig, sink: &mut VecSink) -> Result<(), SourceError> {
        let source = V4l2Source::new(cfg);
        let clock = SystemClock::new();
        let ctx = SourceCtx {
            id: "usb",
            sink,
            clock: &clock,
            epoch: 1,
            phase: Default::default(),
        };
        source.run(ctx).await
    }

    #[tokio::test]
    async fn missing_device_is_a_clear_connect_error() {
        let mut sink = VecSink::default();
        let e = run_once(&config(Some("/dev/video-edgecam-missing")), &mut sink)
            .await
            .expect_err("no such device");
        assert!(
            !e.is_permanent(),
            "retried: the camera may be plugged in later"
        );
        assert_eq!(e.to_string(), "/dev/video-edgecam-missing does not exist");
        let e = run_once(&config(None), &mut sink)
            .await
            .expect_err("no device");
        assert!(e.is_permanent(), "{e}");
    }

    /// Captures from a real camera at `/dev/video0`. Run it on a machine with one:
    ///
    /// ```text
    /// cargo test --features v4l2 --test v4l2_convert -- --ignored --nocapture
    /// ```
    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "needs a camera at /dev/video0"]
    async fn real_camera_delivers_keyframe_first() {
        let cfg = config(Some("/dev/video0"));
        let mut sink = VecSink::default();
        let run = run_once(&cfg, &mut sink);
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), run).await;
        assert!(
            r.is_err(),
            "the source kept running until the timeout: {r:?}"
        );
        assert!(!sink.frames.is_empty(), "no frames in 5 s");
        let first = sink.frames[0].0.info;
        assert!(first.keyframe && first.params_changed, "{first:?}");
        println!("{} frames, codec {:?}", sink.frames.len(), first.codec);
    }
}
