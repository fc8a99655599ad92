//! Loom model of the ring's publish/validate protocol (only built with `--cfg edgecam_loom`,
//! where the ring's atomics, fences and arena bytes come from loom; see `src/ring/sync.rs`).
//!
//! Run from the repository root (a separate target dir, since the `--cfg` changes every
//! crate's fingerprint):
//! `RUSTFLAGS="--cfg edgecam_loom" CARGO_TARGET_DIR=target/loom cargo test --release --test ring_loom`
//!
//! Two tiny scenarios keep the state space small, each checking that every frame a reader
//! accepts has exactly the bytes and descriptor the writer stored for that sequence number,
//! and that sequence numbers never go back:
//! - `slot_reuse`: 2 slots; the writer publishes frames 1 and 2 (frame 2 reuses frame 0's
//!   slot) while a reader reads from the oldest frame on;
//! - `arena_wrap`: an 8-byte arena with many slots; the writer publishes frame 4, whose
//!   payload overwrites frame 0's bytes, while a reader copies frame 0 out.
//!
//! Loom's preemption bound defaults to 3 here (set `LOOM_MAX_PREEMPTIONS` to change it).
#![cfg(edgecam_loom)]

use edgecam::frame::{Codec, FrameInfo, FrameSink};
use edgecam::ring::{FrameRing, Lagged, RingSpec, Start};

const LEN: usize = 2;

fn info(seq: u64) -> FrameInfo {
    FrameInfo {
        codec: if seq.is_multiple_of(2) {
            Codec::H264
        } else {
            Codec::Jpeg
        },
        keyframe: seq == 0,
        params_changed: seq % 2 == 1,
        pts_us: seq as i64 + 10,
        recv_mono_ns: seq + 20,
        recv_wall_us: -(seq as i64),
        epoch: seq as u32 + 1,
    }
}

fn payload(seq: u64) -> [u8; LEN] {
    [seq as u8 + 1, seq as u8 + 101]
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// Reads with `next_into` up to `reads` times, checking every accepted frame.
fn read_and_check(r: &mut edgecam::ring::Reader, reads: usize) -> u64 {
    let mut buf = Vec::new();
    let mut last = None;
    let mut accepted = 0;
    for _ in 0..reads {
        match r.next_into(&mut buf) {
            Ok(Some(meta)) => {
                assert_eq!(buf, payload(meta.seq), "bytes of frame {}", meta.seq);
                assert_eq!(meta.len, LEN);
                assert_eq!(meta.info, info(meta.seq), "descriptor of {}", meta.seq);
                assert!(last.is_none_or(|l| meta.seq > l));
                last = Some(meta.seq);
                accepted += 1;
            }
            Ok(None) => {}
            Err(Lagged { skipped, resume_at }) => {
                assert!(skipped > 0);
                assert_eq!(resume_at, r.cursor());
            }
        }
    }
    accepted
}

#[test]
fn slot_reuse() {
    model(|| {
        let (mut w, ring) = FrameRing::new(RingSpec {
            arena_bytes: 16,
            slots: 2,
        })
        .unwrap();
        w.push_frame(&info(0), &[&payload(0)]).unwrap();
        let mut r = ring.reader(Start::Oldest);
        let writer = loom::thread::spawn(move || {
            for seq in 1..3 {
                let p = payload(seq);
                let (a, b) = p.split_at(1);
                assert_eq!(w.push_frame(&info(seq), &[a, b]), Ok(seq));
            }
        });
        read_and_check(&mut r, 2);
        writer.join().unwrap();
        // Once the writer is done, the newest frame is always readable.
        let mut r = ring.reader(Start::Oldest);
        assert_eq!(read_and_check(&mut r, 2), 2);
    });
}

#[test]
fn arena_wrap() {
    model(|| {
        let (mut w, ring) = FrameRing::new(RingSpec {
            arena_bytes: 8,
            slots: 8,
        })
        .unwrap();
        for seq in 0..4 {
            w.push_frame(&info(seq), &[&payload(seq)]).unwrap();
        }
        let mut r = ring.reader(Start::Oldest);
        let writer = loom::thread::spawn(move || {
            assert_eq!(w.push_frame(&info(4), &[&payload(4)]), Ok(4));
        });
        read_and_check(&mut r, 1);
        writer.join().unwrap();
        assert_eq!(ring.oldest(), 1);
    });
}
