//! Why the shown stream is shown, and what let a change through.

use super::history::{NameId, Names, SEQUENCE_NAMES_MAX};
use std::fmt;

/// Why the shown stream is shown. `Copy` and allocation-free; render it with
/// [`Selector::write_reason`] or [`Selector::reason_string`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// There are no streams at all.
    Nothing,
    /// `select.default`, or the first stream.
    Default,
    /// The user's selection.
    User,
    /// One alarm (`alarm:<id>`).
    Alarm(NameId),
    /// Cycling among several alarms of the top priority (`sequence:<id>,<id>...`).
    Sequence {
        /// The alarm whose stream is shown now.
        current: NameId,
        /// The alarms in the cycle, in config order (the first [`SEQUENCE_NAMES_MAX`]).
        members: [NameId; SEQUENCE_NAMES_MAX],
        /// How many of `members` are used.
        len: u8,
    },
}

/// What allowed a change of the shown stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeCause {
    /// The minimum dwell had elapsed since the previous change (or there was none).
    Dwell,
    /// The new view outranks the shown one (alarm over user, higher priority over lower).
    Preempt,
    /// An operator action: the user chose a stream or acknowledged an alarm.
    User,
    /// The config or restored state changed the candidates.
    Config,
    /// Same stream, new reason; not a visible change, so never held back.
    Relabel,
}

/// Writes `reason` as the API spells it: `none`, `default`, `user`, `alarm:<id>`,
/// `sequence:<id>,<id>...`.
pub(super) fn write_reason(
    names: &Names,
    reason: &Reason,
    out: &mut dyn fmt::Write,
) -> fmt::Result {
    match reason {
        Reason::Nothing => out.write_str("none"),
        Reason::Default => out.write_str("default"),
        Reason::User => out.write_str("user"),
        Reason::Alarm(id) => write!(out, "alarm:{}", names.get(*id)),
        Reason::Sequence { members, len, .. } => {
            out.write_str("sequence:")?;
            for (i, m) in members[..usize::from(*len)].iter().enumerate() {
                if i > 0 {
                    out.write_str(",")?;
                }
                out.write_str(names.get(*m))?;
            }
            Ok(())
        }
    }
}
