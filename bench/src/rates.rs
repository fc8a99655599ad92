//! Frame and bit rates seen by the processes under test, read from what they already print:
//! the daemon's periodic `stream stats` log line (`frames=`, `ring_bytes=` fields) and
//! ffmpeg's `-progress` output (`frame=`). Each line carries the time the bench received it.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// The rates one stream achieved during the measured window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamRate {
    /// Stream id (`cam0` ...), the mount it reads.
    pub id: String,
    /// Frames per second over the span the readings cover; `None` with fewer than two.
    pub fps: Option<f64>,
    /// Received H.264 bit rate, kbit/s (daemon only: ffmpeg does not report it).
    pub kbps: Option<f64>,
    /// Seconds between the first and last reading used, to judge the rates.
    pub span_s: Option<f64>,
    /// Frames the daemon's ring had overwritten by the last reading (daemon only). Above
    /// zero means the ring has wrapped, so its whole arena is resident and the RSS is steady.
    pub ring_overwritten: Option<u64>,
}

/// `key=value` fields of a log line (the daemon writes no colours off a terminal); quoted values keep their quotes.
fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|tok| {
            let (k, v) = tok.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Whether a daemon log line has this message (the text before the fields).
fn is_message(line: &str, message: &str) -> bool {
    line.contains(&format!(": {message} "))
}

/// Per-stream rates from the daemon's `stream stats` lines received within `[from, to]`:
/// the difference between each stream's first and last line there.
pub fn daemon_rates(lines: &[(Instant, String)], from: Instant, to: Instant) -> Vec<StreamRate> {
    // stream -> (first, last) (at, frames, bytes, overwritten)
    type Reading = (Instant, u64, u64, Option<u64>);
    let mut seen: BTreeMap<String, (Reading, Reading)> = BTreeMap::new();
    for (at, line) in lines {
        if *at < from || *at > to || !is_message(line, "stream stats") {
            continue;
        }
        let f = fields(line);
        let (Some(id), Some(frames), Some(bytes)) = (
            f.get("stream"),
            f.get("frames").and_then(|v| v.parse().ok()),
            f.get("ring_bytes").and_then(|v| v.parse().ok()),
        ) else {
            continue;
        };
        let overwritten = f.get("ring_overwritten").and_then(|v| v.parse().ok());
        let reading = (*at, frames, bytes, overwritten);
        seen.entry(id.clone())
            .and_modify(|(_, last)| *last = reading)
            .or_insert((reading, reading));
    }
    seen.into_iter()
        .map(|(id, (first, last))| {
            let span = last.0.saturating_duration_since(first.0).as_secs_f64();
            let ok = span > 0.0;
            StreamRate {
                id,
                fps: ok.then(|| last.1.saturating_sub(first.1) as f64 / span),
                kbps: ok.then(|| last.2.saturating_sub(first.2) as f64 * 8.0 / 1000.0 / span),
                span_s: ok.then_some(span),
                ring_overwritten: last.3,
            }
        })
        .collect()
}

/// How many times the daemon's streams ended an attempt (and reconnected) within `[from, to]`.
pub fn daemon_restarts(lines: &[(Instant, String)], from: Instant, to: Instant) -> usize {
    lines
        .iter()
        .filter(|(at, l)| *at >= from && *at <= to && is_message(l, "attempt ended"))
        .count()
}

/// When the daemon logged `message` for stream `id` (`stream live`, `attempt ended`, `rtsp
/// session playing` ...), by the bench's receive time of each line.
pub fn stream_events(lines: &[(Instant, String)], message: &str, id: &str) -> Vec<Instant> {
    lines
        .iter()
        .filter(|(_, l)| is_message(l, message))
        .filter(|(_, l)| fields(l).get("stream").is_some_and(|s| s == id))
        .map(|(at, _)| *at)
        .collect()
}

/// Streams that logged `stream live` so far.
pub fn daemon_live_streams(lines: &[(Instant, String)]) -> std::collections::BTreeSet<String> {
    lines
        .iter()
        .filter(|(_, l)| is_message(l, "stream live"))
        .filter_map(|(_, l)| fields(l).get("stream").cloned())
        .collect()
}

/// Decoded-frame counts from ffmpeg's `-progress` output, one per report block (at its
/// `progress=` line). `frame=` counts *output* frames, which ffmpeg's default constant-rate
/// sync pads with duplicates when RTSP timestamps jitter, so decoded = frame - dup + drop.
fn decoded_readings(lines: &[(Instant, String)]) -> Vec<(Instant, u64)> {
    let (mut frame, mut dup, mut drop) = (0u64, 0u64, 0u64);
    let mut out = Vec::new();
    for (t, line) in lines {
        let Some((k, v)) = line.trim().split_once('=') else {
            continue;
        };
        let num = || v.trim().parse::<u64>().unwrap_or(0);
        match k {
            "frame" => frame = num(),
            "dup_frames" => dup = num(),
            "drop_frames" => drop = num(),
            "progress" => out.push((*t, (frame + drop).saturating_sub(dup))),
            _ => {}
        }
    }
    out
}

/// The last decoded-frame count reported at or before `at`.
fn last_frame(lines: &[(Instant, String)], at: Instant) -> Option<(Instant, u64)> {
    decoded_readings(lines)
        .into_iter()
        .take_while(|(t, _)| *t <= at)
        .last()
}

/// Decoded frames so far, from ffmpeg's `-progress` output.
pub fn ffmpeg_frames(lines: &[(Instant, String)]) -> u64 {
    decoded_readings(lines).last().map_or(0, |(_, n)| *n)
}

/// Decoding rate of one ffmpeg between its last progress report before `from` and its last
/// before `to`.
pub fn ffmpeg_rate(
    id: &str,
    lines: &[(Instant, String)],
    from: Instant,
    to: Instant,
) -> StreamRate {
    let (a, b) = (last_frame(lines, from), last_frame(lines, to));
    let span = match (a, b) {
        (Some(a), Some(b)) => Some((a, b, b.0.saturating_duration_since(a.0).as_secs_f64())),
        _ => None,
    }
    .filter(|(_, _, s)| *s > 0.0);
    StreamRate {
        id: id.to_string(),
        fps: span.map(|(a, b, s)| b.1.saturating_sub(a.1) as f64 / s),
        kbps: None,
        span_s: span.map(|(_, _, s)| s),
        ring_overwritten: None,
    }
}

/// Mean fps over the streams that have one.
pub fn mean_fps(rates: &[StreamRate]) -> Option<f64> {
    let v: Vec<f64> = rates.iter().filter_map(|r| r.fps).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Mean kbit/s over the streams that have one.
pub fn mean_kbps(rates: &[StreamRate]) -> Option<f64> {
    let v: Vec<f64> = rates.iter().filter_map(|r| r.kbps).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stats(stream: &str, frames: u64, bytes: u64) -> String {
        format!(
            "2026-11-21T15:00:00.000000Z  \u{1b}[32m INFO\u{1b}[0m edgecam::daemon: stream stats \
             stream={stream} state=live fps=25.0 frames={frames} ring_written={frames} \
             ring_overwritten=0 ring_bytes={bytes} last_error=\"\""
        )
    }

    #[test]
    fn daemon_rates_use_the_first_and_last_line_in_the_window() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let lines = vec![
            (at(0), stats("cam0", 100, 1_000_000)), // before the window
            (at(10), stats("cam0", 350, 6_000_000)),
            (at(10), stats("cam1", 300, 2_000_000)), // a single reading: no rate
            (
                at(20),
                "x INFO edgecam: stream live stream=cam1 epoch=2".to_string(),
            ),
            (at(30), stats("cam0", 850, 16_000_000)),
            (at(40), stats("cam0", 5000, 99_000_000)), // after the window
        ];
        let r = daemon_rates(&lines, at(5), at(35));
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].id, "cam0");
        assert_eq!(r[0].fps, Some(25.0));
        assert_eq!(r[0].kbps, Some(4000.0));
        assert_eq!(r[0].span_s, Some(20.0));
        assert_eq!(r[0].ring_overwritten, Some(0));
        assert_eq!(r[1].id, "cam1");
        assert_eq!(r[1].fps, None);
        assert_eq!(mean_fps(&r), Some(25.0));
        let live = daemon_live_streams(&lines);
        assert!(live.contains("cam1") && live.len() == 1);
    }

    #[test]
    fn restarts_are_counted_inside_the_window_only() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let ended = "x  WARN edgecam::ingest::supervisor: attempt ended stream=cam0 error=\"eof\"";
        let lines = vec![(at(1), ended.to_string()), (at(10), ended.to_string())];
        assert_eq!(daemon_restarts(&lines, at(5), at(15)), 1);
    }

    #[test]
    fn stream_events_are_picked_by_message_and_stream() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let lines = vec![
            (
                at(1),
                "x INFO edgecam::ingest::supervisor: stream live stream=cam0 epoch=1".into(),
            ),
            (
                at(2),
                "x INFO edgecam::ingest::supervisor: stream live stream=cam1 epoch=1".into(),
            ),
            (
                at(3),
                "x WARN edgecam::ingest::supervisor: attempt ended stream=cam0 error=\"eof\""
                    .into(),
            ),
            (
                at(4),
                "x INFO edgecam::ingest::supervisor: stream live stream=cam0 epoch=2".into(),
            ),
        ];
        assert_eq!(
            stream_events(&lines, "stream live", "cam0"),
            vec![at(1), at(4)]
        );
        assert_eq!(stream_events(&lines, "attempt ended", "cam0"), vec![at(3)]);
        assert!(stream_events(&lines, "attempt ended", "cam1").is_empty());
    }

    #[test]
    fn ffmpeg_rate_counts_decoded_frames_from_progress_blocks() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let block = |s: u64, frame: u64, dup: u64| {
            [
                (at(s), format!("frame={frame}")),
                (at(s), "fps=25.00".to_string()),
                (at(s), format!("dup_frames={dup}")),
                (at(s), "drop_frames=1".to_string()),
                (at(s), "progress=continue".to_string()),
            ]
        };
        let lines: Vec<_> = [
            block(1, 25, 0),
            block(5, 128, 4),
            block(15, 383, 9),
            block(16, 409, 10),
        ]
        .into_iter()
        .flatten()
        .collect();
        // Decoded: 125 at 5 s, 375 at 15 s (frame - dup + drop).
        let r = ffmpeg_rate("cam0", &lines, at(6), at(15));
        assert_eq!(r.fps, Some(25.0));
        assert_eq!(r.span_s, Some(10.0));
        assert_eq!(ffmpeg_frames(&lines), 400);
        assert_eq!(ffmpeg_rate("cam0", &lines, at(0), at(0)).fps, None);
        // A block still being written (no `progress=` yet) is not counted.
        assert_eq!(ffmpeg_frames(&lines[..3]), 0);
    }
}
