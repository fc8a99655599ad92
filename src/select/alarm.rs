//! One alarm's rule: how its inputs, hold timer and latch make it active.

use super::Stamp;
use super::history::NameId;
use crate::config::{AlarmConfig, AlarmMode};

/// What an alarm is doing, for `/api/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmState {
    /// Not active.
    Idle,
    /// Active because an input (contact, API trigger or video loss) is active.
    Active,
    /// The input cleared; active until the hold ends (or a pulse from the API ends).
    Holding {
        /// Monotonic time when it ends.
        until_mono_ns: u64,
    },
    /// The input cleared but the alarm is latched until acknowledged.
    Latched,
}

impl AlarmState {
    /// The lowercase name used by the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlarmState::Idle => "idle",
            AlarmState::Active => "active",
            AlarmState::Holding { .. } => "holding",
            AlarmState::Latched => "latched",
        }
    }
}

/// One configured alarm and its live state, at a fixed position of the alarm table.
#[derive(Debug, Clone)]
pub(crate) struct AlarmSlot {
    /// The alarm's id, interned for the history.
    pub(crate) id: NameId,
    /// Position of the target stream in the stream table; `None` if the stream is not configured
    /// (the alarm still keeps state, it just cannot call anything up).
    pub(crate) stream: Option<usize>,
    /// Higher wins.
    pub(crate) priority: i32,
    /// transparent / hold / latched.
    pub(crate) mode: AlarmMode,
    /// `hold_s` in nanoseconds, for `hold` mode.
    pub(crate) hold_ns: u64,
    /// `video_loss_after_s` in nanoseconds when video-loss detection is on for this alarm.
    pub(crate) video_loss_after_ns: Option<u64>,
    /// Whether a GPIO output follows this alarm.
    pub(crate) has_output: bool,
    /// The contact / API input level.
    pub(crate) input: bool,
    /// The video-loss input level.
    pub(crate) vl_input: bool,
    /// End of the hold (or pulse) after the inputs cleared.
    pub(crate) hold_until: Option<u64>,
    /// Latched and not yet acknowledged.
    pub(crate) latched: bool,
    /// A `hold` alarm acknowledged while its input was still on: this activation ends when the
    /// input clears, without a hold. Reset by the next raise.
    pub(crate) hold_waived: bool,
    /// Order of the latest raise, for `latest` (bigger is newer).
    pub(crate) raised_seq: u64,
    /// When the alarm last became active; `None` while idle.
    pub(crate) since: Option<Stamp>,
    /// Times the alarm went from idle to active (kept across config changes by id), for
    /// `/metrics`.
    pub(crate) raised_total: u64,
}

/// An alarm's levels before an operation, so the bookkeeping can tell what the operation did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Levels {
    /// Active by any rule.
    pub(crate) active: bool,
    /// An input (contact/API or video loss) was on.
    pub(crate) input: bool,
    /// Latched and not yet acknowledged.
    pub(crate) latched: bool,
}

impl AlarmSlot {
    /// A fresh, idle slot for `cfg` whose stream sits at `stream` in the stream table.
    pub(crate) fn new(cfg: &AlarmConfig, id: NameId, stream: Option<usize>) -> AlarmSlot {
        AlarmSlot {
            id,
            stream,
            priority: cfg.priority,
            mode: cfg.mode,
            hold_ns: u64::from(cfg.hold_s) * 1_000_000_000,
            video_loss_after_ns: cfg
                .video_loss
                .then(|| u64::from(cfg.video_loss_after_s) * 1_000_000_000),
            has_output: cfg.output.is_some(),
            input: false,
            vl_input: false,
            hold_until: None,
            latched: false,
            hold_waived: false,
            raised_seq: 0,
            since: None,
            raised_total: 0,
        }
    }

    /// The levels now, to compare with after an operation.
    pub(crate) fn levels(&self) -> Levels {
        Levels {
            active: self.is_active(),
            input: self.input || self.vl_input,
            latched: self.latched,
        }
    }

    /// Active by any of its rules.
    pub(crate) fn is_active(&self) -> bool {
        self.input || self.vl_input || self.hold_until.is_some() || self.latched
    }

    /// The state shown by the API.
    pub(crate) fn state(&self) -> AlarmState {
        if self.input || self.vl_input {
            AlarmState::Active
        } else if self.latched {
            AlarmState::Latched
        } else if let Some(until_mono_ns) = self.hold_until {
            AlarmState::Holding { until_mono_ns }
        } else {
            AlarmState::Idle
        }
    }

    /// Sets one input (`video_loss` picks which); returns true when the alarm's activity changed.
    pub(crate) fn set_input(&mut self, video_loss: bool, on: bool, now: Stamp, seq: u64) -> bool {
        let was_active = self.is_active();
        let before = self.input || self.vl_input;
        if video_loss {
            self.vl_input = on;
        } else {
            self.input = on;
        }
        let after = self.input || self.vl_input;
        if !before && after {
            self.raised_seq = seq;
            self.hold_waived = false;
            if self.mode == AlarmMode::Latched {
                self.latched = true;
            }
        } else if before && !after && self.mode == AlarmMode::Hold && !self.hold_waived {
            // The hold restarts from this clear; a longer pulse from the API still runs out.
            let end = now.mono_ns.saturating_add(self.hold_ns);
            self.hold_until = Some(self.hold_until.map_or(end, |h| h.max(end)));
        }
        self.note_activity(was_active, now)
    }

    /// A raise without an input to clear: active for `hold_ns` from now (latched alarms latch).
    pub(crate) fn pulse(&mut self, hold_ns: u64, now: Stamp, seq: u64) -> bool {
        let was_active = self.is_active();
        self.raised_seq = seq;
        if self.mode == AlarmMode::Latched {
            self.latched = true;
        } else {
            self.hold_until = Some(now.mono_ns.saturating_add(hold_ns));
        }
        self.note_activity(was_active, now)
    }

    /// Whether an acknowledgement applies: latched alarms, `hold` alarms, and any alarm whose
    /// hold (or API pulse) is running. A `transparent` alarm ends with its input; there is
    /// nothing to acknowledge.
    pub(crate) fn acknowledgeable(&self) -> bool {
        matches!(self.mode, AlarmMode::Latched | AlarmMode::Hold) || self.hold_until.is_some()
    }

    /// Whether an acknowledgement now would change anything: a latch to drop, a hold to end,
    /// or (a `hold` alarm whose input is on) a coming hold to waive.
    pub(crate) fn ack_pending(&self) -> bool {
        self.latched
            || self.hold_until.is_some()
            || (self.mode == AlarmMode::Hold && self.input && !self.hold_waived)
    }

    /// Drops the latch and ends a running hold (an operator has seen the alarm); a `hold`
    /// alarm whose input is still on will end with it, without a hold. Returns true when the
    /// alarm's activity changed.
    pub(crate) fn acknowledge(&mut self, now: Stamp) -> bool {
        let was_active = self.is_active();
        self.latched = false;
        self.hold_until = None;
        if self.mode == AlarmMode::Hold && (self.input || self.vl_input) {
            self.hold_waived = true;
        }
        self.note_activity(was_active, now)
    }

    /// Ends an elapsed hold; returns true when the alarm's activity changed.
    pub(crate) fn expire(&mut self, now: Stamp) -> bool {
        match self.hold_until {
            Some(until) if until <= now.mono_ns => {
                let was_active = self.is_active();
                self.hold_until = None;
                self.note_activity(was_active, now)
            }
            _ => false,
        }
    }

    /// Keeps `since` in step with activity; returns whether activity changed.
    fn note_activity(&mut self, was_active: bool, now: Stamp) -> bool {
        let active = self.is_active();
        if active && !was_active {
            self.since = Some(now);
        } else if !active {
            self.since = None;
        }
        active != was_active
    }
}
