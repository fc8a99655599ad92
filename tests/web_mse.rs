//! The MSE path of `/api/live` with a real WebSocket client: the path choice from the
//! client's `hello`, the `init` with its MIME type and the fMP4 init segment, one fragment per
//! frame on a timeline without holes (catch-up packed, live in real time), a switch inside the
//! session that continues the same timeline, and what real `ffprobe` makes of a session.

mod common;
mod webutil;

use std::process::Command;

use edgecam::codec::fmp4::{CATCH_UP_TICKS, boxes};
use edgecam::output::wire::{
    CTO_AT, FLAG_CATCH_UP, FLAG_INIT, FLAG_KEYFRAME, FrameHeader, TFDT_AT, WireCodec,
};
use reqwest::Method;
use serde_json::json;
use webutil::*;

/// One fragment's decode time and duration (90 kHz ticks), read through the box structure
/// (not the fixed offset, which is checked against it).
fn timing(frag: &[u8]) -> (u64, u32) {
    let (kind, moof) = boxes(frag).next().expect("a first box");
    assert_eq!(&kind, b"moof");
    let (_, traf) = boxes(moof)
        .find(|(k, _)| k == b"traf")
        .expect("moof has a traf");
    let (_, tfdt) = boxes(traf).find(|(k, _)| k == b"tfdt").expect("tfdt");
    let (_, trun) = boxes(traf).find(|(k, _)| k == b"trun").expect("trun");
    let dts = u64::from_be_bytes(tfdt[4..12].try_into().unwrap());
    let fixed = u64::from_be_bytes(frag[TFDT_AT..TFDT_AT + 8].try_into().unwrap());
    assert_eq!(
        &frag[TFDT_AT - 8..TFDT_AT - 4],
        b"tfdt",
        "tfdt at the documented offset"
    );
    assert_eq!(fixed, dts);
    assert_eq!(
        &frag[CTO_AT - 28..CTO_AT - 24],
        b"trun",
        "trun right after tfdt"
    );
    assert_eq!(
        &frag[CTO_AT - 24..CTO_AT + 4],
        &trun[..28],
        "the composition offset at the documented offset"
    );
    (dts, u32::from_be_bytes(trun[12..16].try_into().unwrap()))
}

/// The `init` with a codec and the init segment after it.
async fn mse_init(c: &mut LiveClient) -> (serde_json::Value, Vec<u8>) {
    let init = c.video_init().await;
    let (h, seg) = c.next_frame().await;
    assert_eq!(h.codec, WireCodec::Fmp4);
    assert_ne!(
        h.flags & FLAG_INIT,
        0,
        "the init segment follows the init: {h:?}"
    );
    assert_eq!(Some(u64::from(h.sid)), init["sid"].as_u64());
    (init, seg)
}

/// The next fragment (not an init segment).
async fn fragment(c: &mut LiveClient) -> (FrameHeader, Vec<u8>) {
    let (h, p) = c.next_frame().await;
    assert_eq!(h.codec, WireCodec::Fmp4);
    assert_eq!(
        h.flags & FLAG_INIT,
        0,
        "an init segment where a fragment was due"
    );
    (h, p)
}

#[tokio::test]
async fn the_hello_picks_webcodecs_then_mse_then_jpeg() {
    let s = TestServer::start().await;
    let mut both = s.live(VIEWER_TOKEN, &["mse", "h264", "jpeg"], "").await;
    let init = both.video_init().await;
    assert!(init.get("mime").is_none(), "WebCodecs gets no MIME: {init}");
    assert_eq!(both.next_frame().await.0.codec, WireCodec::H264);

    let mut mse = s.live(VIEWER_TOKEN, &["jpeg", "mse"], "").await;
    let (init, seg) = mse_init(&mut mse).await;
    let codec = init["codec"].as_str().expect("a codec string");
    assert!(codec.starts_with("avc1."), "{init}");
    assert_eq!(init["mime"], format!("video/mp4; codecs=\"{codec}\""));
    assert_eq!(
        (init["width"].as_u64(), init["height"].as_u64()),
        (Some(160), Some(96))
    );
    let top: Vec<[u8; 4]> = boxes(&seg).map(|(k, _)| k).collect();
    assert_eq!(top, [*b"ftyp", *b"moov"]);

    let mut forced = s.live(VIEWER_TOKEN, &["mse", "jpeg"], "?mode=jpeg").await;
    assert_eq!(forced.video_init().await["codec"], "jpeg");
    s.stop().await;
}

#[tokio::test]
async fn fragments_start_at_a_keyframe_and_keep_one_timeline_across_a_switch() {
    let s = TestServer::start().await;
    let mut c = s.live(VIEWER_TOKEN, &["mse"], "").await;
    let (init, _) = mse_init(&mut c).await;
    assert_eq!(init["stream"], "cam1");
    let (h, first) = fragment(&mut c).await;
    assert_ne!(
        h.flags & FLAG_KEYFRAME,
        0,
        "the first fragment is a keyframe"
    );
    let mut times = vec![timing(&first)];
    let mut prev_pts = h.pts_us;
    // Past the catch-up burst into frames sent as they come. Catch-up frames are packed 1 ms
    // apart; the others last the source's step into them (the header's presentation time:
    // 40 ms at 25 fps on a quiet machine, more when the test pattern's encoder runs late, so
    // the step is read, not assumed).
    while times.len() < 40 {
        let (h, p) = fragment(&mut c).await;
        let t = timing(&p);
        if h.flags & FLAG_CATCH_UP != 0 {
            assert_eq!(t.1, CATCH_UP_TICKS, "frame {}: {times:?}", h.seq);
        } else {
            let step = (h.pts_us - prev_pts) as u64 * 90_000 / 1_000_000;
            assert_eq!(u64::from(t.1), step.max(1), "frame {}: {times:?}", h.seq);
        }
        prev_pts = h.pts_us;
        times.push(t);
    }

    s.with_token(Method::POST, "/api/active", OPERATOR_TOKEN)
        .json(&json!({"stream": "cam2"}))
        .go()
        .await;
    // Frames of cam1 may still arrive before the switch.
    let (init, seg) = loop {
        match c.next().await {
            Live::Text(v) if v["type"] == "init" && !v["codec"].is_null() => {
                let (h, seg) = c.next_frame().await;
                assert_ne!(h.flags & FLAG_INIT, 0);
                break (v, seg);
            }
            Live::Frame(h, p) if h.flags & FLAG_INIT == 0 => times.push(timing(&p)),
            _ => {}
        }
    };
    assert_eq!(init["stream"], "cam2");
    assert!(boxes(&seg).any(|(k, _)| &k == b"moov"));
    let (h, p) = fragment(&mut c).await;
    assert_eq!(Some(u64::from(h.sid)), init["sid"].as_u64());
    assert_ne!(h.flags & FLAG_KEYFRAME, 0);
    times.push(timing(&p));
    for _ in 0..10 {
        times.push(timing(&fragment(&mut c).await.1));
    }
    // One timeline, no holes and no overlaps, across the switch: each sample starts where the
    // one before it ends.
    for w in times.windows(2) {
        assert_eq!(w[0].0 + u64::from(w[0].1), w[1].0, "{times:?}");
    }
    s.stop().await;
}

#[tokio::test]
async fn ffprobe_reads_a_session_as_h264_with_every_frame() {
    let s = TestServer::start().await;
    let mut c = s.live(VIEWER_TOKEN, &["mse"], "").await;
    let (_, seg) = mse_init(&mut c).await;
    let mut file = seg;
    const FRAMES: usize = 30;
    for _ in 0..FRAMES {
        file.extend_from_slice(&fragment(&mut c).await.1);
    }
    s.stop().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("session.mp4");
    std::fs::write(&path, &file).expect("write");
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
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
    assert!(
        text.contains("width=160") && text.contains("height=96"),
        "{text}"
    );
    assert!(text.contains(&format!("nb_read_frames={FRAMES}")), "{text}");
}
