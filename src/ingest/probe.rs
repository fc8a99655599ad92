//! "Test connection": runs a stream config once, outside the daemon's stream set, until it
//! delivers a keyframe or the time is up, and says what happened.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::SourceCtx;
use super::sources::source_for;
use crate::clock::SystemClock;
use crate::codec::h264::avc_codec_string;
use crate::config::StreamConfig;
use crate::frame::{Codec, FrameInfo, FrameSink, SinkError};

/// Shortest and longest time a probe may take.
const PROBE_MIN: Duration = Duration::from_secs(2);
/// See [`PROBE_MIN`].
const PROBE_MAX: Duration = Duration::from_secs(15);

/// What a probe found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    /// True when a keyframe arrived.
    pub ok: bool,
    /// Frames received.
    pub frames: u64,
    /// `h264` or `jpeg`, from the first keyframe.
    pub codec: Option<String>,
    /// WebCodecs codec string of the first H.264 keyframe.
    pub codec_string: Option<String>,
    /// Size in bytes of the first keyframe.
    pub keyframe_bytes: Option<usize>,
    /// Why it failed, in words.
    pub error: Option<String>,
    /// How long it took, ms.
    pub elapsed_ms: u64,
}

/// Frames seen by the probe sink.
#[derive(Debug, Default)]
struct Seen {
    /// Frames pushed.
    frames: u64,
    /// The first keyframe: codec, codec string, size.
    key: Option<(Codec, Option<String>, usize)>,
}

/// Records frames instead of storing them.
struct ProbeSink {
    /// Shared with the probe loop.
    seen: Arc<Mutex<Seen>>,
}

impl FrameSink for ProbeSink {
    fn push_frame(&mut self, info: &FrameInfo, parts: &[&[u8]]) -> Result<u64, SinkError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.frames += 1;
        if info.keyframe && seen.key.is_none() {
            let au = parts.concat();
            let cs = avc_codec_string(&au);
            seen.key = Some((info.codec, cs, au.len()));
        }
        Ok(seen.frames - 1)
    }
}

/// Runs `cfg`'s source until its first keyframe or its connect timeout (2-15 s).
pub async fn probe(cfg: &StreamConfig) -> ProbeReport {
    let start = std::time::Instant::now();
    if let Err(errors) = check(cfg) {
        return ProbeReport {
            error: Some(errors),
            ..ProbeReport::default()
        };
    }
    let source = source_for(cfg);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut sink = ProbeSink {
        seen: Arc::clone(&seen),
    };
    let clock = SystemClock::new();
    let limit = Duration::from_millis(cfg.connect_timeout_ms).clamp(PROBE_MIN, PROBE_MAX);
    let ctx = SourceCtx {
        id: &cfg.id,
        sink: &mut sink,
        clock: &clock,
        epoch: 0,
    };
    let run = source.run(ctx);
    let got_key = async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if seen.lock().unwrap_or_else(|p| p.into_inner()).key.is_some() {
                return;
            }
        }
    };
    let error = tokio::select! {
        r = run => Some(match r {
            Ok(()) => "the source ended without a keyframe".to_string(),
            Err(e) => e.to_string(),
        }),
        _ = got_key => None,
        _ = tokio::time::sleep(limit) => Some(format!("no keyframe within {} s", limit.as_secs())),
    };
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let (codec, codec_string, bytes) = match &seen.key {
        Some((c, cs, n)) => (
            Some(match c {
                Codec::H264 => "h264".to_string(),
                Codec::Jpeg => "jpeg".to_string(),
            }),
            cs.clone(),
            Some(*n),
        ),
        None => (None, None, None),
    };
    ProbeReport {
        ok: seen.key.is_some(),
        frames: seen.frames,
        codec,
        codec_string,
        keyframe_bytes: bytes,
        error: if seen.key.is_some() { None } else { error },
        elapsed_ms: start.elapsed().as_millis() as u64,
    }
}

/// Validates a single stream by placing it in an otherwise default config.
fn check(cfg: &StreamConfig) -> Result<(), String> {
    let whole = crate::config::Config {
        streams: vec![cfg.clone()],
        ..crate::config::Config::default()
    };
    crate::config::validate(&whole)
        .map_err(|errors| crate::config::report(&errors).trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamKind;

    fn pattern() -> StreamConfig {
        StreamConfig {
            bitrate_kbps: Some(200),
            gop: Some(10),
            ..StreamConfig::testpattern("t", 160, 96, 25)
        }
    }

    #[tokio::test]
    async fn a_test_pattern_probes_ok() {
        let r = probe(&pattern()).await;
        assert!(r.ok, "{r:?}");
        assert_eq!(r.codec.as_deref(), Some("h264"));
        assert!(r.codec_string.is_some_and(|c| c.starts_with("avc1.")));
    }

    #[tokio::test]
    async fn an_unreachable_camera_reports_why() {
        let mut cfg = pattern();
        cfg.kind = StreamKind::Rtsp;
        cfg.width = None;
        cfg.height = None;
        cfg.fps = None;
        cfg.bitrate_kbps = None;
        cfg.gop = None;
        cfg.url = Some("rtsp://127.0.0.1:1/none".into());
        cfg.connect_timeout_ms = 2000;
        let r = probe(&cfg).await;
        assert!(!r.ok);
        assert!(r.error.is_some());
    }
}
