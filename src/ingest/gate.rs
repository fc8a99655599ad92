//! The keyframe gate every source pushes through: a decoder can only start at a keyframe, so
//! frames are dropped until one arrives, at the start of a session and again after the sink
//! refused a frame (the delta frames after a lost one reference a picture nobody has).
//!
//! The gate also keeps the "parameters changed" flag honest: the first keyframe it stores in a
//! session is flagged (a new session may have a new SPS/PPS or size), and a frame that carried
//! the flag but was not stored passes it on to the next stored keyframe. A run of refusals is
//! logged once, not once per frame, and the caller learns when to ask its encoder or camera
//! for an early keyframe ([`Gated::Refused`]).

use crate::frame::{FrameInfo, FrameSink};

/// What [`KeyframeGate::push`] did with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gated {
    /// Stored under this sequence number.
    Stored(u64),
    /// Not offered to the sink: the gate is waiting for a keyframe.
    Skipped,
    /// The sink refused it. The gate now waits for a keyframe; a source that can ask for one
    /// early (an encoder, some cameras) should.
    Refused,
}

/// Drops frames until a keyframe, at the start of a session and after every refused frame.
/// One gate per connection attempt.
#[derive(Debug)]
pub struct KeyframeGate {
    /// True until a keyframe is stored, and again after a refusal.
    need_keyframe: bool,
    /// A refusal was logged and nothing has been stored since, so the next one stays quiet.
    refusal_logged: bool,
    /// The next stored keyframe must say "parameters changed": true at the start of a session,
    /// and after a frame that said so was not stored.
    carry_params_changed: bool,
}

impl Default for KeyframeGate {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyframeGate {
    /// A gate for a new session: closed until the first keyframe, which is flagged
    /// `params_changed`.
    pub fn new() -> KeyframeGate {
        KeyframeGate {
            need_keyframe: true,
            refusal_logged: false,
            carry_params_changed: true,
        }
    }

    /// Whether a frame would be offered to the sink now; lets a source skip the work of
    /// describing a frame the gate would drop.
    pub fn admits(&self, keyframe: bool) -> bool {
        keyframe || !self.need_keyframe
    }

    /// Offers one frame to `sink` if the gate is open for it. `info.params_changed` is
    /// completed with what earlier, unstored frames carried. A refusal is logged as a warning
    /// for `stream` once per run of refusals.
    pub fn push(
        &mut self,
        sink: &mut dyn FrameSink,
        stream: &str,
        info: &FrameInfo,
        parts: &[&[u8]],
    ) -> Gated {
        if !self.admits(info.keyframe) {
            self.carry_params_changed |= info.params_changed;
            return Gated::Skipped;
        }
        let mut info = *info;
        info.params_changed = info.keyframe && (info.params_changed || self.carry_params_changed);
        match sink.push_frame(&info, parts) {
            Ok(seq) => {
                self.need_keyframe = false;
                self.refusal_logged = false;
                self.carry_params_changed &= !info.keyframe;
                Gated::Stored(seq)
            }
            Err(e) => {
                if !self.refusal_logged {
                    tracing::warn!(stream = %stream, error = %e,
                        "frame refused; dropping frames until the next keyframe");
                    self.refusal_logged = true;
                }
                self.need_keyframe = true;
                self.carry_params_changed |= info.params_changed;
                Gated::Refused
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Codec, SinkError, VecSink};

    /// A [`VecSink`] that refuses frames larger than `max`, as a ring does.
    struct Limited {
        /// The frames stored.
        inner: VecSink,
        /// The largest payload accepted.
        max: usize,
    }

    impl FrameSink for Limited {
        fn push_frame(&mut self, info: &FrameInfo, parts: &[&[u8]]) -> Result<u64, SinkError> {
            let len = parts.iter().map(|p| p.len()).sum();
            if len > self.max {
                return Err(SinkError::FrameTooLarge { len, max: self.max });
            }
            self.inner.push_frame(info, parts)
        }
    }

    fn info(keyframe: bool, params_changed: bool, pts_us: i64) -> FrameInfo {
        FrameInfo {
            codec: Codec::H264,
            keyframe,
            params_changed,
            pts_us,
            recv_mono_ns: 0,
            recv_wall_us: 0,
            epoch: 1,
        }
    }

    /// A frame to push: (keyframe, params_changed, payload length).
    type Spec = (bool, bool, usize);
    /// The test sink refuses payloads over this many bytes.
    const MAX: usize = 10;
    /// A keyframe and a delta frame that fit.
    const KEY: Spec = (true, false, 1);
    const DELTA: Spec = (false, false, 1);
    /// Frames the sink refuses.
    const BIG_KEY: Spec = (true, false, 50);
    const BIG_DELTA: Spec = (false, false, 50);

    /// Pushes `frames` through a new gate (frame `i` gets pts `i`); returns the outcomes, what
    /// was stored as (pts, keyframe, params_changed), and the gate.
    fn run(frames: &[Spec]) -> (Vec<Gated>, Vec<(i64, bool, bool)>, KeyframeGate) {
        let mut gate = KeyframeGate::new();
        let mut sink = Limited {
            inner: VecSink::default(),
            max: MAX,
        };
        let outcomes = frames
            .iter()
            .enumerate()
            .map(|(i, &(key, params, len))| {
                let payload = vec![0u8; len];
                gate.push(&mut sink, "cam", &info(key, params, i as i64), &[&payload])
            })
            .collect();
        let stored = sink
            .inner
            .frames
            .iter()
            .map(|(m, _)| (m.info.pts_us, m.info.keyframe, m.info.params_changed))
            .collect();
        (outcomes, stored, gate)
    }

    #[test]
    fn a_session_starts_at_its_first_keyframe_which_announces_parameters() {
        assert!(!KeyframeGate::new().admits(false));
        let (got, stored, gate) = run(&[DELTA, DELTA, KEY, DELTA, KEY]);
        use Gated::*;
        assert_eq!(got, [Skipped, Skipped, Stored(0), Stored(1), Stored(2)]);
        // Only the session's first keyframe says the parameters changed.
        assert_eq!(
            stored,
            [(2, true, true), (3, false, false), (4, true, false)]
        );
        assert!(gate.admits(false));
    }

    #[test]
    fn after_a_refusal_frames_are_dropped_until_the_next_keyframe() {
        let (got, stored, gate) = run(&[KEY, BIG_DELTA, DELTA, DELTA, KEY, DELTA]);
        use Gated::*;
        assert_eq!(
            got,
            [Stored(0), Refused, Skipped, Skipped, Stored(1), Stored(2)]
        );
        assert_eq!(stored.iter().map(|f| f.0).collect::<Vec<_>>(), [0, 4, 5]);
        assert!(gate.admits(false));
    }

    #[test]
    fn a_refused_keyframe_keeps_the_gate_closed() {
        let (got, stored, _) = run(&[BIG_KEY, DELTA, KEY]);
        assert_eq!(got, [Gated::Refused, Gated::Skipped, Gated::Stored(0)]);
        // The refused keyframe was the session's first: the stored one takes over its flag.
        assert_eq!(stored, [(2, true, true)]);
    }

    #[test]
    fn a_parameter_change_that_was_not_stored_moves_to_the_next_stored_keyframe() {
        let big_new_key = (true, true, 50);
        let (_, stored, _) = run(&[KEY, big_new_key, DELTA, KEY, KEY]);
        assert_eq!(stored, [(0, true, true), (3, true, true), (4, true, false)]);
    }

    #[test]
    fn a_delta_frame_never_claims_a_parameter_change() {
        let new_delta = (false, true, 1);
        let (_, stored, _) = run(&[KEY, new_delta, KEY]);
        assert_eq!(
            stored,
            [(0, true, true), (1, false, false), (2, true, false)]
        );
    }
}
