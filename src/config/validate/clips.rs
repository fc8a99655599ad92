//! `[clips]`: timings that make a clip, a quota that holds one, a directory of its own.

use super::Checker;
use crate::config::Config;

/// Longest `clips.pre_s`: the ring holds seconds, not minutes (see `ring.bytes_per_stream`).
pub const MAX_CLIP_PRE_S: u32 = 60;
/// Longest `clips.post_s`.
pub const MAX_CLIP_POST_S: u32 = 600;
/// Longest `clips.max_s`: clips are events, not continuous recording.
pub const MAX_CLIP_MAX_S: u32 = 3600;
/// Most clips kept (the index is read whole at every start).
pub const MAX_CLIP_COUNT: u32 = 100_000;
/// Smallest `clips.quota_bytes`: one clip of a 4 Mbit/s camera for 16 s.
pub const MIN_CLIP_QUOTA_BYTES: u64 = 8 * 1024 * 1024;

impl Checker {
    /// `[clips]`, checked also while clips are off, so that turning them on from the page
    /// never meets a config that was saved broken.
    pub(super) fn clips(&mut self, cfg: &Config) {
        let c = &cfg.clips;
        self.range("clips.pre_s".into(), c.pre_s, 0, MAX_CLIP_PRE_S, " s");
        self.range("clips.post_s".into(), c.post_s, 0, MAX_CLIP_POST_S, " s");
        self.range("clips.max_s".into(), c.max_s, 1, MAX_CLIP_MAX_S, " s");
        // max_s counts from the clip's first frame, which is pre_s before the raise.
        if c.max_s >= 1 && c.pre_s <= MAX_CLIP_PRE_S && c.max_s <= c.pre_s {
            self.err(
                "clips.max_s",
                format!(
                    "is {} s but clips.pre_s is {} s; max_s counts from the clip's first frame, \
                     pre-roll included, so a clip would end before the alarm; make max_s larger \
                     than pre_s",
                    c.max_s, c.pre_s
                ),
            );
        }
        if c.quota_count < 1 || c.quota_count > MAX_CLIP_COUNT {
            self.err(
                "clips.quota_count",
                format!(
                    "must be between 1 and {MAX_CLIP_COUNT} clips, got {} \
                     (turn clips off with clips.enabled = false instead of a zero quota)",
                    c.quota_count
                ),
            );
        }
        if c.quota_bytes < MIN_CLIP_QUOTA_BYTES {
            self.err(
                "clips.quota_bytes",
                format!(
                    "must be at least {MIN_CLIP_QUOTA_BYTES} (8 MiB), got {}; a smaller quota \
                     cannot hold one clip (turn clips off with clips.enabled = false instead)",
                    c.quota_bytes
                ),
            );
        }
        if let Some(dir) = &c.dir {
            self.clip_dir(cfg, dir);
        }
    }

    /// An absolute directory that is not the state directory itself nor the root.
    fn clip_dir(&mut self, cfg: &Config, dir: &std::path::Path) {
        let shown = dir.display();
        if dir.as_os_str().is_empty() {
            self.err(
                "clips.dir",
                "must not be empty; leave it out to use <state_dir>/clips",
            );
        } else if !dir.is_absolute() {
            self.err(
                "clips.dir",
                format!(
                    "`{shown}` is a relative path; use an absolute one on the data partition \
                     such as /var/lib/edgecam/clips (a relative path would depend on the \
                     directory edgecam is started from)"
                ),
            );
        } else if dir.parent().is_none() {
            self.err(
                "clips.dir",
                "is the root directory; use a directory of its own such as /var/lib/edgecam/clips",
            );
        } else if normal(dir) == normal(&cfg.paths.state_dir) {
            self.err(
                "clips.dir",
                format!(
                    "`{shown}` is paths.state_dir itself; the clips and their index.json need a \
                     directory of their own, such as {}/clips (or leave clips.dir out)",
                    cfg.paths.state_dir.display()
                ),
            );
        }
    }
}

/// A path without trailing slashes and `.` parts (no file system access: the directory may
/// not exist yet).
fn normal(p: &std::path::Path) -> std::path::PathBuf {
    p.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}
