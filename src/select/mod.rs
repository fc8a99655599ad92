//! Which stream is shown: a pure state machine over timestamped events.
//!
//! The [`Selector`] does no I/O and reads no clock. Every call carries a [`Stamp`] (monotonic
//! nanoseconds for the rules, wall-clock microseconds for the history), so tests drive it with
//! made-up times and the daemon drives it with [`crate::clock::Clock`] readings. Times passed in
//! must not go backwards. The daemon sleeps until [`Selector::next_deadline`] and then calls
//! [`Selector::tick`]; after every call it re-reads the view when
//! [`Selector::view_generation`] moved, drives outputs from [`Selector::outputs`], and saves
//! [`Selector::snapshot`] when [`Selector::generation`] moved.
//!
//! Reasons use alarm *ids* (stable, and what the API takes): `alarm:door`, not the display name.
//!
//! Rules, in order:
//! - Alarms beat the user; among active alarms the highest `priority` wins. Several active alarms
//!   at the top priority either cycle, `dwell_s` each (`sequence`), or the most recently raised
//!   one wins (`latest`).
//! - With no alarm active the view is the user's selection, else `select.default`, else the
//!   first stream.
//! - Anti-flicker: the shown stream changes at most once per `min_dwell_ms`, except when the
//!   new view outranks the shown one (an alarm over the user's view, or a higher-priority alarm
//!   over a lower one), when the user clicks or acknowledges, or when the config removes the shown stream.
//!
//! Alarm modes and acknowledgement (see [`Selector::ack`]):
//! - `transparent`: active while its input is active.
//! - `hold`: stays active `hold_s` after the input clears; a re-trigger restarts the hold.
//! - `latched`: stays active until acknowledged. Acknowledging while the input is still active
//!   turns it transparent for the rest of that activation (it ends when the input clears).
//! - Acknowledging a `hold` alarm ends its hold at once (the view returns, as an operator who
//!   has seen the alarm expects of an NVR); acknowledged while its input is still on, it ends
//!   when the input clears, without a hold. An API pulse (below) on any alarm is ended the same
//!   way. A `transparent` alarm with no pulse running has nothing to acknowledge: that is an
//!   error ([`SelectError::NotAcknowledgeable`]). An acknowledgement with nothing pending is a
//!   no-op that returns `false`.
//! - A raise with a hold override (the HTTP API's `hold_s`) is a pulse: the alarm is active for
//!   that long without an input to clear (latched alarms latch as usual).
//! - Video loss: an alarm with `video_loss = true` gets an input that turns on when its stream has
//!   been lost for `video_loss_after_s`, and off when the stream is live again.
//!
//! The hot path does not allocate: streams and alarms are addressed by index
//! ([`Selector::stream_index`], [`Selector::alarm_index`]), the alarm table is sized at
//! construction, the history ring is inline with a compile-time bound, and names are interned
//! once; strings are produced only on demand.

mod alarm;
mod history;
mod reason;
mod report;
mod rules;
mod selector;
mod view;

pub use alarm::AlarmState;
pub use history::{EventKind, HistoryEvent, NameId, SEQUENCE_NAMES_MAX};
pub use reason::{ChangeCause, Reason};
pub use report::{EventRecord, EventsReport};
pub use selector::{DEFAULT_HISTORY, Selector};
pub use view::{ActiveView, AlarmStatus};

use thiserror::Error;

/// A point in time as the selector sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// Monotonic nanoseconds ([`crate::clock::Clock::mono_ns`]); every rule uses this one.
    pub mono_ns: u64,
    /// Wall-clock microseconds since the UNIX epoch; only recorded, for `/api/events` and `since`.
    pub wall_us: i64,
}

impl Stamp {
    /// Reads both clocks.
    pub fn now(clock: &dyn crate::clock::Clock) -> Stamp {
        Stamp {
            mono_ns: clock.mono_ns(),
            wall_us: clock.wall_us(),
        }
    }

    /// A stamp at `ms` milliseconds, with a wall time derived from it; handy in tests.
    pub fn from_ms(ms: u64) -> Stamp {
        Stamp {
            mono_ns: ms * 1_000_000,
            wall_us: (ms * 1000) as i64,
        }
    }
}

/// Why the selector refused a request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectError {
    /// The user asked for a stream that is not in the config.
    #[error("unknown stream `{0}`")]
    UnknownStream(String),
    /// An alarm id (or index) that is not in the config.
    #[error("unknown alarm `{0}`")]
    UnknownAlarm(String),
    /// A `transparent` alarm with no hold running: it ends with its input.
    #[error(
        "alarm `{0}` is transparent: it ends when its input clears, there is nothing to acknowledge"
    )]
    NotAcknowledgeable(String),
}
