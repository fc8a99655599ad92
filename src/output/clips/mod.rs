//! Event clips: on every alarm raise, the alarm's stream from `pre_s` before the raise (read
//! from the ring, from a keyframe) to `post_s` after the alarm ends, or `max_s`, as a
//! fragmented MP4 in a quota-bounded directory (`[clips]` in the config).
//!
//! The manager task watches the control task's [`ActiveView`] (the same watch channel the
//! live push reads), so the control task never waits for it; every clip is then recorded by
//! its own task ([`recorder`]) from its own ring reader. The directory and its index are the
//! [`ClipStore`], which the web server reads through a [`ClipsHandle`].

mod recorder;
mod scan;
pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::StreamLookup;
use crate::clock::Clock;
use crate::config::Config;
use crate::select::ActiveView;
pub use store::{ClipEntry, ClipStore, StoreState};

/// The clip store in force (`None` while clips are off); the daemon swaps it on a config
/// change, the web server reads it per request.
#[derive(Debug, Clone, Default)]
pub struct ClipsHandle {
    /// The current store.
    inner: Arc<RwLock<Option<Arc<ClipStore>>>>,
}

impl ClipsHandle {
    /// The store in force, if clips are on.
    pub fn current(&self) -> Option<Arc<ClipStore>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `store` in force.
    pub fn set(&self, store: Option<Arc<ClipStore>>) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = store;
    }
}

/// The clip directory a config names: `clips.dir`, or `<state_dir>/clips`.
pub fn clip_dir(cfg: &Config) -> PathBuf {
    cfg.clips
        .dir
        .clone()
        .unwrap_or_else(|| cfg.paths.state_dir.join("clips"))
}

/// A running clip manager; aborted on drop (recordings under way finish on their own).
#[derive(Debug)]
pub struct ClipManager {
    /// The task watching the view.
    task: JoinHandle<()>,
}

impl Drop for ClipManager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the manager: a clip for every raise of an alarm of `cfg` (video-loss alarms only
/// with `clips.video_loss`), written into `store`.
pub fn spawn_manager(
    cfg: &Config,
    store: Arc<ClipStore>,
    view: watch::Receiver<ActiveView>,
    streams: Arc<dyn StreamLookup>,
    clock: Arc<dyn Clock>,
) -> ClipManager {
    let mut view = view;
    let skip: Vec<String> = cfg
        .alarms
        .iter()
        .filter(|a| a.video_loss && a.gpio.is_none() && !cfg.clips.video_loss)
        .map(|a| a.id.clone())
        .collect();
    // The view as of now, not as of the task's first run: a raise between the two (an input
    // that is on at once, started right after) would be taken for an alarm already up.
    let last = view
        .borrow_and_update()
        .alarms
        .iter()
        .map(|a| (a.id.clone(), (a.state != "idle", a.raised)))
        .collect();
    let task = tokio::spawn(manage(store, view, streams, clock, skip, last));
    ClipManager { task }
}

/// A recording under way for an alarm: how to tell it the alarm's end.
struct Recording {
    /// `Some(wall µs)` once the alarm ended; `None` again when it is raised again meanwhile.
    ended: watch::Sender<Option<i64>>,
    /// Set by the recorder once it takes no more frames (past its end, `max_s`, or a write
    /// error), while it may still be closing its file: a raise then is a new clip.
    done: Arc<AtomicBool>,
}

impl Recording {
    /// Whether a raise at `now_us` continues this recording: it still takes frames, and the
    /// alarm is up or ended less than `post_s` ago. The recorder stops at the first frame
    /// received `post_s` after the end, so a raise at or past that time is a clip of its own
    /// (the recorder cannot take it any more, though it may not have noticed yet).
    fn continues_at(&self, now_us: i64, post_us: i64) -> bool {
        !self.done.load(Ordering::Acquire)
            && (*self.ended.borrow()).is_none_or(|end| now_us < end + post_us)
    }
}

/// The manager loop: compares each view's alarms with the last one's.
async fn manage(
    store: Arc<ClipStore>,
    mut view: watch::Receiver<ActiveView>,
    streams: Arc<dyn StreamLookup>,
    clock: Arc<dyn Clock>,
    skip: Vec<String>,
    // Alarm id -> (was up, raise count), as of the last view.
    mut last: HashMap<String, (bool, u64)>,
) {
    let mut recording: HashMap<String, Recording> = HashMap::new();
    while view.changed().await.is_ok() {
        let alarms = view.borrow_and_update().alarms.clone();
        recording.retain(|_, r| !r.ended.is_closed());
        let post_us = i64::from(store.config().post_s) * 1_000_000;
        for a in alarms {
            let up = a.state != "idle";
            let (was_up, raised) = last.get(&a.id).copied().unwrap_or((false, 0));
            last.insert(a.id.clone(), (up, a.raised));
            let raise = up && (!was_up || a.raised > raised);
            let now = clock.wall_us();
            if let Some(r) = recording.get(&a.id) {
                if !raise || r.continues_at(now, post_us) {
                    if up {
                        r.ended.send_replace(None);
                    } else if was_up {
                        r.ended.send_replace(Some(now));
                    }
                    continue;
                }
                // The recording cannot take this raise: it finishes on its own, and the
                // raise gets a clip of its own.
                recording.remove(&a.id);
            }
            if !raise || skip.contains(&a.id) {
                continue;
            }
            let Some(live) = streams.live_stream(&a.stream) else {
                tracing::warn!(alarm = %a.id, stream = %a.stream, "no clip: the alarm's stream does not run");
                continue;
            };
            let raised_us = a.since.unwrap_or_else(|| clock.wall_us());
            let (tx, rx) = watch::channel(None);
            let done = Arc::new(AtomicBool::new(false));
            let entry = ClipEntry {
                id: format!("{}.{}.{}", raised_us / 1000, a.id, a.stream),
                part: 1,
                stream: a.stream.clone(),
                alarm: a.id.clone(),
                raised_us,
                start_us: raised_us,
                duration_ms: 0,
                bytes: 0,
                state: "recording".into(),
                error: None,
            };
            let job = recorder::Job {
                entry,
                event_start_us: raised_us,
                ring: live.ring,
                ended: rx,
                store: Arc::clone(&store),
                clock: Arc::clone(&clock),
                done: Arc::clone(&done),
            };
            tokio::spawn(recorder::record(job));
            recording.insert(a.id.clone(), Recording { ended: tx, done });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(ended: Option<i64>, done: bool) -> Recording {
        Recording {
            ended: watch::channel(ended).0,
            done: Arc::new(AtomicBool::new(done)),
        }
    }

    /// A raise while the alarm is up or inside `post_s` after its end continues the clip; a
    /// raise at or past that time, or after the recorder stopped taking frames (it may still
    /// be closing its file), is a clip of its own (it was lost when taken for a continuation).
    #[test]
    fn a_raise_continues_a_recording_only_while_it_still_takes_frames() {
        let post = 2_000_000;
        assert!(recording(None, false).continues_at(10_000_000, post));
        assert!(recording(Some(9_000_000), false).continues_at(10_999_999, post));
        assert!(!recording(Some(9_000_000), false).continues_at(11_000_000, post));
        assert!(!recording(Some(9_000_000), false).continues_at(11_000_000, 0));
        assert!(!recording(None, true).continues_at(10_000_000, post));
    }
}
