//! Drives alarm output lines from the selector's view of which alarms are active.

use super::{GpioError, OutputBackend, OutputLine};
use crate::config::AlarmConfig;

/// One opened output.
struct Driven {
    /// The open line.
    line: Box<dyn OutputLine>,
    /// What it was last set to, so unchanged lines are not rewritten.
    on: bool,
}

/// The output lines of all alarms, by alarm position.
pub struct OutputDriver {
    /// `None` for alarms without an output (or whose output failed to open).
    lines: Vec<Option<Driven>>,
}

impl std::fmt::Debug for OutputDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputDriver")
            .field("open", &self.lines.iter().filter(|l| l.is_some()).count())
            .finish()
    }
}

impl OutputDriver {
    /// Opens the outputs of `alarms` (initially off). Lines that fail to open are skipped and
    /// returned with their alarm position, so the caller can report them.
    pub fn open(
        backend: &dyn OutputBackend,
        alarms: &[AlarmConfig],
    ) -> (OutputDriver, Vec<(usize, GpioError)>) {
        let mut errors = Vec::new();
        let lines = alarms
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let cfg = a.output.as_ref()?;
                match backend.open_output(cfg) {
                    Ok(line) => Some(Driven { line, on: false }),
                    Err(e) => {
                        tracing::warn!(alarm = %a.id, error = %e, "cannot open alarm output");
                        errors.push((i, e));
                        None
                    }
                }
            })
            .collect();
        (OutputDriver { lines }, errors)
    }

    /// Sets every line whose wanted state changed; `outputs` is
    /// [`crate::select::Selector::outputs`]. Returns the first error; the other lines are
    /// still driven.
    pub fn apply(&mut self, outputs: impl Iterator<Item = (usize, bool)>) -> Result<(), GpioError> {
        let mut first = Ok(());
        for (alarm, on) in outputs {
            let Some(Some(d)) = self.lines.get_mut(alarm) else {
                continue;
            };
            if d.on == on {
                continue;
            }
            match d.line.set(on) {
                Ok(()) => d.on = on,
                Err(e) => {
                    tracing::warn!(alarm, error = %e, "cannot drive alarm output");
                    if first.is_ok() {
                        first = Err(e);
                    }
                }
            }
        }
        first
    }
}
