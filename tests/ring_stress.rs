//! Multi-threaded stress test: one writer thread, four reader threads (two `next`, one
//! `latest`, one `keyframes`) on a small ring that wraps and overwrites constantly.
//!
//! Every payload carries a header (sequence number, length, CRC-32 of the body) and a body
//! filled pseudo-randomly from the sequence number, so a torn or stale copy cannot pass.
//! Checked per reader: every returned payload verifies and matches its metadata, sequence
//! numbers strictly increase, keyframe readers only see keyframes, and a `next` reader
//! accounts for every frame from its start: delivered + reported skips == frames written,
//! and each lag report resumes exactly where the frames it skipped end (lag is never silent).
//! The run is bounded by a frame count, not by time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use edgecam::frame::{Codec, FrameInfo, FrameMeta, FrameSink};
use edgecam::ring::{FrameRing, Lagged, Reader, RingSpec, Start};

/// Frames written: bounded work, a couple of seconds in either profile.
const FRAMES: u64 = if cfg!(debug_assertions) {
    20_000
} else {
    200_000
};
const HEADER: usize = 16;
const KEY_EVERY: u64 = 10;

fn info(seq: u64) -> FrameInfo {
    FrameInfo {
        codec: Codec::H264,
        keyframe: seq.is_multiple_of(KEY_EVERY),
        params_changed: false,
        pts_us: seq as i64,
        recv_mono_ns: seq * 3,
        recv_wall_us: -(seq as i64),
        epoch: (seq >> 8) as u32,
    }
}

/// Fills `buf` with the self-checking payload of `seq` (length `len >= HEADER`).
fn make_payload(seq: u64, len: usize, buf: &mut Vec<u8>) {
    buf.clear();
    buf.resize(len, 0);
    fastrand::Rng::with_seed(seq).fill(&mut buf[HEADER..]);
    let crc = crc32fast::hash(&buf[HEADER..]);
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    buf[12..16].copy_from_slice(&crc.to_le_bytes());
}

/// Panics unless `payload` is the intact frame `meta` describes.
fn verify(meta: &FrameMeta, payload: &[u8]) {
    assert_eq!(meta.len, payload.len(), "length of frame {}", meta.seq);
    assert!(payload.len() >= HEADER, "short frame {}", meta.seq);
    let word = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b[..r.len()].copy_from_slice(&payload[r]);
        u64::from_le_bytes(b)
    };
    assert_eq!(word(0..8), meta.seq, "header sequence number");
    assert_eq!(word(8..12), payload.len() as u64, "header length");
    assert_eq!(
        word(12..16),
        u64::from(crc32fast::hash(&payload[HEADER..])),
        "CRC of frame {}",
        meta.seq
    );
    assert_eq!(
        meta.info,
        info(meta.seq),
        "descriptor of frame {}",
        meta.seq
    );
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Next,
    Latest,
    Keyframes,
}

/// What one reader saw.
#[derive(Debug, Default)]
struct Tally {
    start: u64,
    delivered: u64,
    skipped: u64,
    lag_reports: u64,
    end_cursor: u64,
}

fn run_reader(mut r: Reader, mode: Mode, done: &AtomicBool) -> Tally {
    let mut t = Tally {
        start: r.cursor(),
        ..Tally::default()
    };
    let mut buf = Vec::new();
    let mut last: Option<u64> = None;
    let mut expected = r.cursor();
    loop {
        // Read `done` before reading, so the last pass sees every frame.
        let finished = done.load(Ordering::Acquire);
        let got = match mode {
            Mode::Next => r.next_into(&mut buf),
            Mode::Latest => r.latest_into(&mut buf),
            Mode::Keyframes => r.keyframe_into(&mut buf),
        };
        match got {
            Ok(Some(meta)) => {
                verify(&meta, &buf);
                assert!(last.is_none_or(|l| meta.seq > l), "{mode:?}: seq went back");
                if let Mode::Next = mode {
                    assert_eq!(meta.seq, expected, "next reader skipped silently");
                    expected += 1;
                }
                if let Mode::Keyframes = mode {
                    assert!(meta.info.keyframe);
                }
                last = Some(meta.seq);
                t.delivered += 1;
            }
            Ok(None) if finished => break,
            Ok(None) => std::thread::yield_now(),
            Err(Lagged { skipped, resume_at }) => {
                assert!(skipped > 0);
                expected += skipped;
                if let Mode::Next = mode {
                    assert_eq!(resume_at, expected);
                }
                assert_eq!(resume_at, r.cursor());
                t.skipped += skipped;
                t.lag_reports += 1;
            }
        }
    }
    t.end_cursor = r.cursor();
    t
}

#[test]
fn concurrent_readers_never_see_torn_frames_and_lag_is_never_silent() {
    let (mut w, ring) = FrameRing::new(RingSpec {
        arena_bytes: 16 * 1024,
        slots: 32,
    })
    .unwrap();
    let max = ring.max_frame_bytes();
    let done = Arc::new(AtomicBool::new(false));
    let modes = [Mode::Next, Mode::Next, Mode::Latest, Mode::Keyframes];
    let readers: Vec<_> = modes
        .iter()
        .map(|&mode| {
            let r = ring.reader(Start::Oldest);
            let done = Arc::clone(&done);
            std::thread::spawn(move || (mode, run_reader(r, mode, &done)))
        })
        .collect();

    let mut rng = fastrand::Rng::with_seed(42);
    let mut payload = Vec::with_capacity(max);
    for seq in 0..FRAMES {
        let len = if rng.u8(..) < 16 {
            max
        } else {
            rng.usize(HEADER..=max)
        };
        make_payload(seq, len, &mut payload);
        let (a, b) = payload.split_at(rng.usize(..=len));
        assert_eq!(w.push_frame(&info(seq), &[a, b]), Ok(seq));
        if seq.is_multiple_of(64) {
            std::thread::yield_now();
        }
    }
    done.store(true, Ordering::Release);

    let mut lagged = 0;
    let mut reports = 0;
    for h in readers {
        let (mode, t) = h.join().expect("reader panicked");
        lagged += t.skipped;
        reports += t.lag_reports;
        assert!(t.delivered > 0, "{mode:?} got nothing: {t:?}");
        // Keyframe readers stop just past the last keyframe, the others at the end.
        let end = match mode {
            Mode::Keyframes => (FRAMES - 1) / KEY_EVERY * KEY_EVERY + 1,
            Mode::Next | Mode::Latest => FRAMES,
        };
        assert_eq!(t.end_cursor, end, "{mode:?} did not reach the end: {t:?}");
        if let Mode::Next = mode {
            assert_eq!(t.delivered + t.skipped, FRAMES - t.start, "{mode:?}: {t:?}");
        }
    }
    let s = ring.stats();
    assert_eq!(s.written, FRAMES);
    assert_eq!((s.lagged_frames, s.lag_events), (lagged, reports));
}
