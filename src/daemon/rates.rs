//! Measures each running main stream's byte rate, frame rate and keyframe interval into the
//! [`RateBook`] that sizes its ring at its next start, and keeps the book in
//! `<state_dir>/ring-rates.json` (loaded at start, saved when it changed on every tick and at
//! shutdown).
//!
//! A rate is the average over one tick ([`PERIOD`], from the stream's byte and frame counters),
//! not the statistics' one-second window: the ring holds many seconds, and a one-second
//! window swings with every keyframe. The book keeps the peak of those averages.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::handles::StatusReader;
use crate::ingest::stats::{StreamState, StreamStats};
use crate::ring::rates::RateBook;
use crate::ring::sizing::Measured;

/// How often the rates are sampled and the book saved.
pub const PERIOD: Duration = Duration::from_secs(10);

/// The shortest window a rate is taken over: shorter ones are the GOP's swing, not the rate.
const MIN_WINDOW_NS: u64 = 5_000_000_000;

/// The counters of one stream at the last sample.
#[derive(Debug, Clone)]
struct Mark {
    /// Which statistics (a restarted stream has new ones, with counters from 0).
    stats: Arc<StreamStats>,
    /// Payload bytes stored by then.
    bytes: u64,
    /// Frames stored by then.
    frames: u64,
    /// When, monotonic ns.
    at_ns: u64,
}

/// Turns counter readings into rates, stream by stream.
#[derive(Debug, Default)]
pub struct Sampler {
    /// Each stream's counters at its window's start.
    marks: HashMap<String, Mark>,
}

impl Sampler {
    /// Reads `stats` of stream `id` at `now_ns`: when a whole window of a live stream has
    /// passed since the last mark, its average rates (and the measured keyframe interval);
    /// the reading then starts the next window.
    pub fn sample(&mut self, id: &str, stats: &Arc<StreamStats>, now_ns: u64) -> Option<Measured> {
        let mark = Mark {
            stats: Arc::clone(stats),
            bytes: stats.bytes(),
            frames: stats.frames(),
            at_ns: now_ns,
        };
        let live = stats.state() == StreamState::Live;
        let Some(last) = self.marks.get(id).cloned() else {
            self.marks.insert(id.to_string(), mark);
            return None;
        };
        let same = Arc::ptr_eq(&last.stats, stats) && mark.bytes >= last.bytes;
        let window = now_ns.saturating_sub(last.at_ns);
        if same && window < MIN_WINDOW_NS {
            return None;
        }
        let bytes = mark.bytes.saturating_sub(last.bytes);
        let frames = mark.frames.saturating_sub(last.frames);
        self.marks.insert(id.to_string(), mark);
        if !same || !live || frames == 0 {
            return None;
        }
        let per_s = |n: u64| (u128::from(n) * 1_000_000_000 / u128::from(window)) as u64;
        Some(Measured {
            bytes_per_s: per_s(bytes),
            fps_milli: u32::try_from(per_s(frames.saturating_mul(1000))).unwrap_or(u32::MAX),
            keyframe_interval_ms: stats.keyframe_interval_ms().unwrap_or(0),
        })
    }

    /// Forgets the streams not in `ids`.
    fn retain(&mut self, ids: &[&str]) {
        self.marks.retain(|id, _| ids.contains(&id.as_str()));
    }
}

/// Loads the rates measured before the last restart (a hint: a bad file is logged).
pub fn load(book: &RateBook, state_dir: &Path) {
    match book.load(state_dir) {
        Ok(0) => {}
        Ok(n) => tracing::info!(streams = n, "measured ring rates loaded"),
        Err(e) => tracing::warn!(error = %e, "measured ring rates not loaded"),
    }
}

/// Saves `book` to `dir` if it changed, off the async threads (the write ends with `fsync`).
pub async fn save(book: Arc<RateBook>, dir: PathBuf) {
    match tokio::task::spawn_blocking(move || book.save(&dir)).await {
        Ok(Ok(true)) => tracing::debug!("measured ring rates saved"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "measured ring rates not saved"),
        Err(e) => tracing::warn!(error = %e, "measured ring rates not saved"),
    }
}

/// The sampling task; dropping it stops it (a daemon dropped without its shutdown, in tests).
#[derive(Debug)]
pub struct RatesTask(JoinHandle<()>);

impl Drop for RatesTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Samples every running main stream of `status` into `book` every [`PERIOD`] and saves the
/// book to the state directory in force.
pub fn spawn(status: StatusReader, book: Arc<RateBook>, clock: Arc<dyn Clock>) -> RatesTask {
    RatesTask(tokio::spawn(async move {
        let mut sampler = Sampler::default();
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = status.current();
            let ids: Vec<&str> = now.config.streams.iter().map(|s| s.id.as_str()).collect();
            sampler.retain(&ids);
            if !ids.is_empty() {
                book.retain(&ids);
            }
            for s in &now.streams {
                if let Some(m) = sampler.sample(&s.config.id, &s.stats, clock.mono_ns())
                    && book.record(&s.config.id, m)
                {
                    tracing::debug!(stream = %s.config.id, kbps = m.kbps(), "ring rate peak");
                }
            }
            save(Arc::clone(&book), now.config.paths.state_dir.clone()).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Codec;

    const S: u64 = 1_000_000_000;

    /// `frames` frames of `len` bytes into `stats`.
    fn feed(stats: &StreamStats, frames: usize, len: usize) {
        for _ in 0..frames {
            stats.record_frame(len, Codec::H264, 0);
        }
    }

    #[test]
    fn a_rate_is_the_average_over_a_whole_window_of_a_live_stream() {
        let stats = Arc::new(StreamStats::new("cam1"));
        stats.set_state(StreamState::Live);
        stats.set_keyframe_interval_ms(2000);
        let mut s = Sampler::default();
        assert_eq!(
            s.sample("cam1", &stats, 0),
            None,
            "the first reading starts a window"
        );
        feed(&stats, 250, 4000);
        assert_eq!(s.sample("cam1", &stats, 2 * S), None, "too short a window");
        assert_eq!(
            s.sample("cam1", &stats, 10 * S),
            Some(Measured {
                bytes_per_s: 100_000,
                fps_milli: 25_000,
                keyframe_interval_ms: 2000,
            })
        );
        // Not live: no rate, and the window restarts.
        feed(&stats, 100, 4000);
        stats.set_state(StreamState::Backoff);
        assert_eq!(s.sample("cam1", &stats, 20 * S), None);
        stats.set_state(StreamState::Live);
        assert_eq!(
            s.sample("cam1", &stats, 30 * S),
            None,
            "no frames in the window"
        );
    }

    #[test]
    fn a_restarted_stream_starts_a_new_window() {
        let old = Arc::new(StreamStats::new("cam1"));
        old.set_state(StreamState::Live);
        let mut s = Sampler::default();
        s.sample("cam1", &old, 0);
        feed(&old, 10, 1000);
        let new = Arc::new(StreamStats::new("cam1"));
        new.set_state(StreamState::Live);
        feed(&new, 20, 1000);
        assert_eq!(s.sample("cam1", &new, 10 * S), None);
        feed(&new, 100, 1000);
        let m = s.sample("cam1", &new, 20 * S).expect("a whole window");
        assert_eq!((m.bytes_per_s, m.fps_milli), (10_000, 10_000));
    }
}
