//! `edgecam-bench ring-instr`: instructions per ingested frame (the ring write of a 64 KiB
//! payload plus its bookkeeping), counted by `valgrind --tool=callgrind`. Instruction counts
//! repeat exactly on a noisy machine, unlike times.
//!
//! The program runs itself under callgrind twice (`ring-loop --frames N` and `2N`); the
//! difference of the two totals divided by N removes start-up, ring allocation and exit.

use anyhow::{Context, bail};
use edgecam::frame::{Codec, FrameInfo, FrameSink};
use edgecam::ring::{FrameRing, RingSpec};
use std::path::Path;
use std::process::{Command, Stdio};

/// Payload per frame: a typical 1080p P-frame at 4 Mbit/s is 10-30 KiB, an IDR 100-200 KiB.
pub const PAYLOAD: usize = 64 * 1024;
/// The daemon's default ring arena.
const ARENA: usize = 16 << 20;
/// The daemon's default slot count.
const SLOTS: usize = 512;

/// Options of `edgecam-bench ring-instr`.
#[derive(Debug, Clone, clap::Args)]
pub struct RingInstrArgs {
    /// Frames in the shorter run (the longer one writes twice as many).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..))]
    pub frames: u64,
}

/// Options of the loop run under callgrind.
#[derive(Debug, Clone, clap::Args)]
pub struct RingLoopArgs {
    /// Frames to write.
    #[arg(long)]
    pub frames: u64,
}

/// Writes `frames` frames of [`PAYLOAD`] bytes into a default-sized ring, every 50th a
/// keyframe (a 2 s GOP at 25 fps), as the ingest loop does.
pub fn ring_loop(args: &RingLoopArgs) -> anyhow::Result<()> {
    let (mut w, ring) = FrameRing::new(RingSpec {
        arena_bytes: ARENA,
        slots: SLOTS,
    })
    .context("cannot build the ring")?;
    let payload = vec![0x5au8; PAYLOAD];
    let mut info = FrameInfo {
        codec: Codec::H264,
        keyframe: false,
        params_changed: false,
        pts_us: 0,
        recv_mono_ns: 0,
        recv_wall_us: 0,
        epoch: 1,
    };
    for i in 0..args.frames {
        info.keyframe = i % 50 == 0;
        info.pts_us = i as i64 * 40_000;
        info.recv_mono_ns = i * 40_000_000;
        info.recv_wall_us = info.pts_us;
        w.push_frame(&info, &[&payload[..]])
            .context("ring refused a frame")?;
    }
    // Keep the work observable so nothing is optimised away.
    println!("head={}", ring.head());
    Ok(())
}

/// Runs the loop under callgrind with `frames` frames; returns the total instructions.
fn callgrind_total(exe: &Path, frames: u64, out: &Path) -> anyhow::Result<u64> {
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(["ring-loop", "--frames", &frames.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => bail!("valgrind failed ({s})"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("valgrind not found: apt-get install valgrind")
        }
        Err(e) => return Err(e).context("cannot run valgrind"),
    }
    let text =
        std::fs::read_to_string(out).with_context(|| format!("cannot read {}", out.display()))?;
    parse_total(&text).context("no `summary:` or `totals:` line in the callgrind output")
}

/// The instruction total of a callgrind output file.
fn parse_total(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let v = l
            .strip_prefix("summary:")
            .or_else(|| l.strip_prefix("totals:"))?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// Measures instructions per frame; prints and returns it.
pub fn measure(exe: &Path, frames: u64) -> anyhow::Result<f64> {
    let dir = std::env::temp_dir().join(format!("edgecam-ring-instr-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let a = callgrind_total(exe, frames, &dir.join("a.out"));
    let b = callgrind_total(exe, 2 * frames, &dir.join("b.out"));
    let _ = std::fs::remove_dir_all(&dir);
    let (a, b) = (a?, b?);
    let per = b.saturating_sub(a) as f64 / frames as f64;
    eprintln!(
        "callgrind: {a} instructions for {frames} frames, {b} for {}: {per:.0} per 64 KiB frame \
         ({:.3} per payload byte)",
        2 * frames,
        per / PAYLOAD as f64
    );
    Ok(per)
}

/// `ring-instr`: measures and prints.
pub fn run(args: &RingInstrArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let per = measure(&exe, args.frames)?;
    println!("{per:.0} instructions per ingested 64 KiB frame (ring write + bookkeeping)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_read_from_summary_or_totals() {
        assert_eq!(parse_total("events: Ir\nsummary: 12345\n"), Some(12345));
        assert_eq!(parse_total("totals: 99 1\n"), Some(99));
        assert_eq!(parse_total("events: Ir\n"), None);
    }

    #[test]
    fn the_loop_writes_every_frame() {
        ring_loop(&RingLoopArgs { frames: 300 }).unwrap();
    }
}
