//! Edge cases of the ring, single-threaded.

use super::*;
use crate::frame::Codec;

fn info(keyframe: bool, pts_us: i64) -> FrameInfo {
    FrameInfo {
        codec: Codec::H264,
        keyframe,
        params_changed: keyframe,
        pts_us,
        recv_mono_ns: pts_us as u64 * 1000,
        recv_wall_us: -pts_us,
        epoch: 7,
    }
}

fn ring(arena_bytes: usize, slots: usize) -> (RingWriter, Arc<FrameRing>) {
    FrameRing::new(RingSpec { arena_bytes, slots }).expect("valid spec")
}

#[test]
fn rejects_bad_specs() {
    let bad = |arena_bytes, slots| FrameRing::new(RingSpec { arena_bytes, slots }).err();
    assert!(matches!(bad(3, 4), Some(RingError::ArenaTooSmall { .. })));
    assert!(matches!(bad(1024, 0), Some(RingError::BadSlotCount { .. })));
    assert!(matches!(
        bad(1024, 1 << 25),
        Some(RingError::BadSlotCount { .. })
    ));
    let huge = RingConfig {
        bytes_per_stream: 1 << 41,
        slots_per_stream: 8,
        max_bytes_per_stream: None,
    };
    assert!(matches!(
        RingSpec::from_config(&huge),
        Err(RingError::ArenaTooLarge { .. })
    ));
    let spec = RingSpec::from_config(&RingConfig::default()).expect("default config is valid");
    assert_eq!(spec.arena_bytes, 16 * 1024 * 1024);
    assert_eq!(spec.slots, 512);
}

#[test]
fn payload_wraps_around_the_arena_end() {
    let (mut w, ring) = ring(64, 16);
    let mut r = ring.reader(Start::Oldest);
    let mut buf = Vec::new();
    // Frames of 10 bytes: the 7th starts at 60 and wraps to [0, 6).
    for i in 0..7u8 {
        let payload: Vec<u8> = (0..10).map(|j| i * 16 + j).collect();
        let (a, b) = payload.split_at(3);
        assert_eq!(
            w.push_frame(&info(false, i.into()), &[a, b]),
            Ok(u64::from(i))
        );
    }
    // 70 bytes written into 64: frame 0 (first byte at 0) is gone, frame 1 is intact.
    assert_eq!(ring.oldest(), 1);
    assert_eq!(
        r.next_into(&mut buf),
        Err(Lagged {
            skipped: 1,
            resume_at: 1
        })
    );
    for i in 1..7u8 {
        let meta = r.next_into(&mut buf).expect("no lag").expect("a frame");
        assert_eq!(meta.seq, u64::from(i));
        assert_eq!(meta.info, info(false, i.into()));
        let want: Vec<u8> = (0..10).map(|j| i * 16 + j).collect();
        assert_eq!(buf, want, "frame {i}");
    }
    assert_eq!(r.next_into(&mut buf), Ok(None));
}

#[test]
fn frame_too_large_is_dropped_and_counted() {
    let (mut w, ring) = ring(64, 4);
    assert_eq!(ring.max_frame_bytes(), 16);
    let big = [0u8; 17];
    assert_eq!(
        w.push_frame(&info(true, 0), &[&big]),
        Err(SinkError::FrameTooLarge { len: 17, max: 16 })
    );
    assert_eq!(w.push_frame(&info(true, 0), &[&big[..16]]), Ok(0));
    let s = ring.stats();
    assert_eq!((s.dropped, s.written, s.bytes_written), (1, 1, 16));
    assert_eq!(ring.head(), 1);
}

#[test]
fn zero_length_frames_round_trip() {
    let (mut w, ring) = ring(16, 4);
    let mut r = ring.reader(Start::Newest);
    let mut buf = vec![1, 2, 3];
    assert_eq!(w.push_frame(&info(true, 5), &[]), Ok(0));
    assert_eq!(w.push_frame(&info(false, 6), &[&[], &[]]), Ok(1));
    let m = r.next_into(&mut buf).expect("no lag").expect("frame 0");
    assert_eq!((m.seq, m.len, m.info), (0, 0, info(true, 5)));
    assert!(buf.is_empty());
    assert_eq!(
        r.next_into(&mut buf).expect("no lag").map(|m| m.seq),
        Some(1)
    );
    assert_eq!(r.next_into(&mut buf), Ok(None));
}

#[test]
fn reader_starting_at_latest_keyframe() {
    let (mut w, ring) = ring(1024, 64);
    assert_eq!(ring.reader(Start::LatestKeyframe).cursor(), 0);
    for i in 0..10u8 {
        w.push_frame(&info(i.is_multiple_of(4), i.into()), &[&[i; 3]])
            .expect("fits");
    }
    assert_eq!(ring.latest_keyframe(), Some(8));
    let mut r = ring.reader(Start::LatestKeyframe);
    let mut buf = Vec::new();
    let seqs: Vec<u64> = std::iter::from_fn(|| r.next_into(&mut buf).expect("no lag"))
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, [8, 9]);
    // Newest starts after everything stored; jumping goes back to the current GOP.
    let mut r = ring.reader(Start::Newest);
    assert_eq!(r.cursor(), 10);
    assert!(r.jump_to_latest_keyframe());
    assert_eq!(
        r.next_into(&mut buf).expect("no lag").map(|m| m.seq),
        Some(8)
    );
    assert_eq!(buf, [8, 8, 8]);
}

#[test]
fn modes_latest_and_keyframes_pass_over_frames() {
    let (mut w, ring) = ring(1024, 64);
    let mut latest = ring.reader(Start::Oldest);
    let mut keys = ring.reader(Start::Oldest);
    let mut buf = Vec::new();
    assert_eq!(keys.keyframe_into(&mut buf), Ok(None));
    for i in 0..6 {
        w.push_frame(&info(i == 2, i), &[&[i as u8]]).expect("fits");
    }
    assert_eq!(
        latest.latest_into(&mut buf).expect("no lag").map(|m| m.seq),
        Some(5)
    );
    assert_eq!((latest.passed_over(), latest.cursor()), (5, 6));
    assert_eq!(latest.latest_into(&mut buf), Ok(None));
    assert_eq!(
        keys.keyframe_into(&mut buf).expect("no lag").map(|m| m.seq),
        Some(2)
    );
    assert_eq!(buf, [2]);
    assert_eq!(keys.keyframe_into(&mut buf), Ok(None));
}

#[test]
fn lag_jumps_to_latest_keyframe_and_stats_count_everything() {
    let (mut w, ring) = ring(1024, 4);
    let mut r = ring.reader(Start::Oldest);
    let mut buf = Vec::new();
    for i in 0..10 {
        w.push_frame(&info(i == 7, i), &[&[0; 8]]).expect("fits");
    }
    // Slots 6..10 remain; the keyframe 7 is the resume point.
    assert_eq!(
        r.next_into(&mut buf),
        Err(Lagged {
            skipped: 7,
            resume_at: 7
        })
    );
    assert_eq!(
        r.next_into(&mut buf).expect("no lag").map(|m| m.seq),
        Some(7)
    );
    let s = ring.stats();
    assert_eq!(
        s,
        RingStats {
            written: 10,
            overwritten: 6,
            lag_events: 1,
            lagged_frames: 7,
            dropped: 0,
            bytes_written: 80,
            arena_bytes: 1024,
            slots: 4,
        }
    );
    // Evicted keyframes are not reported as the latest one.
    for i in 10..14 {
        w.push_frame(&info(false, i), &[]).expect("fits");
    }
    assert_eq!(ring.latest_keyframe(), None);
}

#[tokio::test(start_paused = true)]
async fn wait_returns_after_a_publish() {
    let (mut w, ring) = ring(64, 4);
    let mut r = ring.reader(Start::Newest);
    let waiter = tokio::spawn(async move {
        r.wait().await;
        let mut buf = Vec::new();
        r.next_into(&mut buf).expect("no lag").map(|m| (m.seq, buf))
    });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    w.push_frame(&info(true, 1), &[b"abc"]).expect("fits");
    assert_eq!(waiter.await.expect("no panic"), Some((0, b"abc".to_vec())));
}

#[test]
fn ring_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    fn send<T: Send>() {}
    check::<FrameRing>();
    send::<RingWriter>();
    send::<Reader>();
}
