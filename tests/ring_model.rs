//! Property test: the ring against a `VecDeque` model, single-threaded.
//!
//! Random ring sizes, random sequences of pushes (sizes from 0 to the maximum and beyond,
//! random keyframe flags, payloads split in parts) and reads in all three modes plus
//! keyframe jumps. The model evicts by slot count and by arena bytes (a frame is gone once a
//! later write reached `off + cap`), so it predicts every payload, descriptor, sequence
//! number, lag report, latest keyframe and counter.

use std::collections::VecDeque;

use edgecam::frame::{Codec, FrameInfo, FrameMeta, FrameSink, SinkError};
use edgecam::ring::{FrameRing, Lagged, Reader, RingSpec, Start};
use proptest::prelude::*;

/// One stored frame in the model.
#[derive(Debug, Clone)]
struct MFrame {
    seq: u64,
    off: u64,
    info: FrameInfo,
    payload: Vec<u8>,
}

/// The reference ring.
struct Model {
    cap: u64,
    slots: u64,
    max: usize,
    frames: VecDeque<MFrame>,
    head: u64,
    pos: u64,
    latest_key: Option<u64>,
    dropped: u64,
    overwritten: u64,
}

impl Model {
    fn new(arena: usize, slots: usize) -> Model {
        Model {
            cap: arena as u64,
            slots: slots as u64,
            max: arena / 4,
            frames: VecDeque::new(),
            head: 0,
            pos: 0,
            latest_key: None,
            dropped: 0,
            overwritten: 0,
        }
    }
    fn oldest(&self) -> u64 {
        self.frames.front().map_or(self.head, |f| f.seq)
    }
    fn get(&self, seq: u64) -> Option<&MFrame> {
        self.frames.iter().find(|f| f.seq == seq)
    }
    fn valid_key(&self) -> Option<u64> {
        self.latest_key.filter(|&k| k >= self.oldest())
    }
    fn push(&mut self, info: FrameInfo, payload: Vec<u8>) -> Result<u64, SinkError> {
        if payload.len() > self.max {
            self.dropped += 1;
            return Err(SinkError::FrameTooLarge {
                len: payload.len(),
                max: self.max,
            });
        }
        let seq = self.head;
        let end = self.pos + payload.len() as u64;
        while let Some(f) = self.frames.front() {
            if seq - f.seq >= self.slots || f.off + self.cap < end {
                self.frames.pop_front();
                self.overwritten += 1;
            } else {
                break;
            }
        }
        self.frames.push_back(MFrame {
            seq,
            off: self.pos,
            info,
            payload,
        });
        if info.keyframe {
            self.latest_key = Some(seq);
        }
        self.pos = end;
        self.head += 1;
        Ok(seq)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Push {
        len: usize,
        key: bool,
        seed: u8,
        split: usize,
    },
    Next(usize),
    Latest,
    Keyframe,
    Jump(usize),
}

fn op(max: usize) -> impl Strategy<Value = Op> {
    let len = prop_oneof![Just(0), Just(max), Just(max + 1), 0..=max];
    prop_oneof![
        4 => (len, any::<bool>(), any::<u8>(), 0..4usize)
            .prop_map(|(len, key, seed, split)| Op::Push { len, key, seed, split }),
        3 => (0..2usize).prop_map(Op::Next),
        1 => Just(Op::Latest),
        1 => Just(Op::Keyframe),
        1 => (0..2usize).prop_map(Op::Jump),
    ]
}

fn case() -> impl Strategy<Value = (usize, usize, Vec<Op>)> {
    (4usize..200, 1usize..12).prop_flat_map(|(arena, slots)| {
        (
            Just(arena),
            Just(slots),
            prop::collection::vec(op(arena / 4), 1..200),
        )
    })
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add((i * 7) as u8)).collect()
}

fn frame_info(seq_hint: u64, key: bool, seed: u8) -> FrameInfo {
    FrameInfo {
        codec: if seed.is_multiple_of(2) {
            Codec::H264
        } else {
            Codec::Jpeg
        },
        keyframe: key,
        params_changed: seed.is_multiple_of(3),
        pts_us: seq_hint as i64 * 40_000 - 7,
        recv_mono_ns: seq_hint * 1_000_000 + u64::from(seed),
        recv_wall_us: 1_700_000_000_000_000 + seq_hint as i64,
        epoch: u32::from(seed) << 20,
    }
}

/// Checks that the ring returned frame `want_seq` exactly as the model has it.
fn check_frame(
    m: &Model,
    got: Result<Option<FrameMeta>, Lagged>,
    want_seq: u64,
    buf: &[u8],
) -> Result<(), TestCaseError> {
    let meta = match got {
        Ok(Some(meta)) => meta,
        other => {
            return Err(TestCaseError::fail(format!(
                "expected frame {want_seq}, got {other:?}"
            )));
        }
    };
    let f = m
        .get(want_seq)
        .ok_or_else(|| TestCaseError::fail("model lost the frame"))?;
    prop_assert_eq!(meta.seq, want_seq);
    prop_assert_eq!(meta.len, f.payload.len());
    prop_assert_eq!(meta.info, f.info);
    prop_assert_eq!(buf, &f.payload[..]);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn ring_matches_model((arena, slots, ops) in case()) {
        let (mut w, ring) = FrameRing::new(RingSpec { arena_bytes: arena, slots }).unwrap();
        let mut m = Model::new(arena, slots);
        prop_assert_eq!(ring.max_frame_bytes(), m.max);
        // Two `next` readers (both also jump), one `latest`, one `keyframes`; each paired
        // with the model's cursor.
        let mut next: Vec<(Reader, u64)> = (0..2).map(|_| (ring.reader(Start::Oldest), 0)).collect();
        let (mut latest, mut latest_cursor) = (ring.reader(Start::Oldest), 0u64);
        let (mut keys, mut keys_cursor) = (ring.reader(Start::Oldest), 0u64);
        let mut buf = Vec::new();
        let (mut lag_events, mut lagged_frames, mut latest_passed) = (0u64, 0u64, 0u64);

        for op in ops {
            match op {
                Op::Push { len, key, seed, split } => {
                    let info = frame_info(m.head, key, seed);
                    let p = payload(len, seed);
                    let cut = (len * split / 3).min(len);
                    let got = w.push_frame(&info, &[&p[..cut], &p[cut..]]);
                    prop_assert_eq!(got, m.push(info, p));
                }
                Op::Next(i) => {
                    let (r, cursor) = &mut next[i];
                    let got = r.next_into(&mut buf);
                    if *cursor >= m.head {
                        prop_assert_eq!(got, Ok(None));
                    } else if *cursor < m.oldest() {
                        let floor = m.oldest().max(*cursor + 1);
                        let target = m.latest_key.filter(|&k| k >= floor).unwrap_or(floor);
                        let want = Lagged { skipped: target - *cursor, resume_at: target };
                        prop_assert_eq!(got, Err(want));
                        lag_events += 1;
                        lagged_frames += want.skipped;
                        *cursor = target;
                    } else {
                        check_frame(&m, got, *cursor, &buf)?;
                        *cursor += 1;
                    }
                    prop_assert_eq!(r.cursor(), *cursor);
                }
                Op::Latest => {
                    let got = latest.latest_into(&mut buf);
                    if latest_cursor >= m.head {
                        prop_assert_eq!(got, Ok(None));
                    } else {
                        check_frame(&m, got, m.head - 1, &buf)?;
                        latest_passed += m.head - 1 - latest_cursor;
                        latest_cursor = m.head;
                    }
                    prop_assert_eq!(latest.passed_over(), latest_passed);
                    prop_assert_eq!(latest.cursor(), latest_cursor);
                }
                Op::Keyframe => {
                    let got = keys.keyframe_into(&mut buf);
                    match m.latest_key {
                        Some(k) if k >= keys_cursor => {
                            if k < m.oldest() {
                                let want = Lagged { skipped: k + 1 - keys_cursor, resume_at: k + 1 };
                                prop_assert_eq!(got, Err(want));
                                lag_events += 1;
                                lagged_frames += want.skipped;
                            } else {
                                check_frame(&m, got, k, &buf)?;
                            }
                            keys_cursor = k + 1;
                        }
                        _ => prop_assert_eq!(got, Ok(None)),
                    }
                    prop_assert_eq!(keys.cursor(), keys_cursor);
                }
                Op::Jump(i) => {
                    let (r, cursor) = &mut next[i];
                    prop_assert_eq!(r.jump_to_latest_keyframe(), m.valid_key().is_some());
                    if let Some(k) = m.valid_key() {
                        *cursor = k;
                    }
                    prop_assert_eq!(r.cursor(), *cursor);
                }
            }
            prop_assert_eq!(ring.head(), m.head);
            prop_assert_eq!(ring.oldest(), m.oldest());
            prop_assert_eq!(ring.latest_keyframe(), m.valid_key());
            let s = ring.stats();
            prop_assert_eq!(s.written, m.head);
            prop_assert_eq!(s.dropped, m.dropped);
            prop_assert_eq!(s.overwritten, m.overwritten);
            prop_assert_eq!(s.lag_events, lag_events);
            prop_assert_eq!(s.lagged_frames, lagged_frames);
            prop_assert_eq!(s.bytes_written, m.pos);
        }
    }
}
