//! Whether a stream reorders pictures, from what the live client sees: the presentation
//! timestamps of its frames in decode order (on RTSP, the RTP timestamps; B-frames make them
//! go back). A stream whose SPS allows B-frames (Main or High profile, `pic_order_cnt_type`
//! 0) but that has shown a whole GOP in order gets the low-delay SPS from its next keyframe
//! on ([`crate::codec::sps::low_delay_if`]); one frame out of order ends that for good.

/// Frames a GOP must have, keyframe included, before its order counts: a GOP of two says
/// little about where an encoder puts B-frames.
pub(super) const MIN_GOP_FRAMES: u32 = 8;

/// What one client has seen of the order of the stream it shows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct OrderWatch {
    /// Presentation timestamp of the last frame seen; `None` before the first.
    last_pts_us: Option<i64>,
    /// Frames of the current GOP seen so far (from its keyframe).
    gop_frames: u32,
    /// A keyframe has been seen: the current GOP is seen from its start.
    gop_started: bool,
    /// Every frame of the current GOP came after the one before it.
    gop_in_order: bool,
    /// A whole GOP of at least [`MIN_GOP_FRAMES`] came in order and nothing ever came out of
    /// order: the stream does not reorder.
    in_order: bool,
    /// A frame came before the one decoded ahead of it: the stream reorders (sticky).
    reordered: bool,
}

impl OrderWatch {
    /// Notes one frame (in decode order) and returns whether the stream is known not to
    /// reorder, counting the GOP that this keyframe ends.
    pub(super) fn observe(&mut self, pts_us: i64, keyframe: bool) -> bool {
        if keyframe {
            if self.gop_started && self.gop_in_order && self.gop_frames >= MIN_GOP_FRAMES {
                self.in_order = !self.reordered;
            }
            self.gop_started = true;
            self.gop_in_order = true;
            self.gop_frames = 0;
        } else if self.last_pts_us.is_some_and(|last| pts_us <= last) {
            self.gop_in_order = false;
            self.reordered = true;
            self.in_order = false;
        }
        self.gop_frames = self.gop_frames.saturating_add(1);
        self.last_pts_us = Some(pts_us);
        self.in_order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `gops` GOPs of `len` frames with presentation indices from `pattern` (repeated).
    fn feed(w: &mut OrderWatch, gops: usize, len: u32, order: impl Fn(u32) -> i64) -> Vec<bool> {
        let mut at_keys = Vec::new();
        for g in 0..gops as i64 {
            for i in 0..len {
                let pts = (g * i64::from(len) + order(i)) * 40_000;
                let r = w.observe(pts, i == 0);
                if i == 0 {
                    at_keys.push(r);
                }
            }
        }
        at_keys
    }

    #[test]
    fn a_whole_gop_in_order_counts_from_the_next_keyframe() {
        let mut w = OrderWatch::default();
        assert_eq!(feed(&mut w, 3, 25, i64::from), [false, true, true]);
    }

    #[test]
    fn b_frames_are_seen_and_stay_remembered() {
        // I P B B P B B ...: decode order I0 P3 B1 B2 P6 B4 B5.
        let ibbp = |i: u32| -> i64 {
            let i = i64::from(i);
            match i % 3 {
                0 => i,
                1 => i + 2,
                _ => i - 1,
            }
        };
        let mut w = OrderWatch::default();
        assert_eq!(feed(&mut w, 3, 24, ibbp), [false, false, false]);
        // Later GOPs in order do not undo it.
        assert_eq!(feed(&mut w, 2, 24, i64::from), [false, false]);
    }

    #[test]
    fn a_short_or_partly_seen_gop_does_not_count() {
        let mut w = OrderWatch::default();
        assert_eq!(
            feed(&mut w, 3, MIN_GOP_FRAMES - 1, i64::from),
            [false, false, false]
        );
        // Joined in the middle of a GOP (no keyframe seen yet): that GOP does not count.
        let mut w = OrderWatch::default();
        for i in 0..30 {
            assert!(!w.observe(i * 40_000, false));
        }
        assert!(!w.observe(30 * 40_000, true));
    }
}
