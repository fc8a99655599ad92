//! What a connection attempt is doing right now, so a timeout can say what it waited for.
//!
//! A source sets the step it is in ("opening /dev/video0", "waiting for the first frame from
//! /dev/video0") on the [`AttemptPhase`] in its [`super::SourceCtx`]; when the supervisor's
//! connect timeout ends the attempt, the stream's `last_error` names that step. Steps change a
//! few times per attempt, never per frame, so a mutex is cheap here. The handle is shared (an
//! `Arc` inside) because a source may do its blocking work on a thread of its own that
//! outlives the attempt's future.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};

/// A shared, settable description of the current step of one connection attempt.
#[derive(Debug, Clone, Default)]
pub struct AttemptPhase {
    /// The step, `None` until the source says; shared with the source's threads.
    step: Arc<Mutex<Option<Cow<'static, str>>>>,
}

impl AttemptPhase {
    /// A phase with no step yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Says what the attempt is doing now, as a phrase that completes "timed out while …"
    /// (for example "opening /dev/video0").
    pub fn set(&self, step: impl Into<Cow<'static, str>>) {
        *self.step.lock().unwrap_or_else(PoisonError::into_inner) = Some(step.into());
    }

    /// The current step, if the source named one.
    pub fn get(&self) -> Option<String> {
        self.step
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_step() {
        let p = AttemptPhase::new();
        assert_eq!(p.get(), None);
        let q = p.clone();
        q.set("opening /dev/video0");
        assert_eq!(p.get().as_deref(), Some("opening /dev/video0"));
        p.set(format!("starting capture on {}", "/dev/video1"));
        assert_eq!(q.get().as_deref(), Some("starting capture on /dev/video1"));
    }
}
