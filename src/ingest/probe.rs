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

/// How long the probe keeps counting frames after the first keyframe, for the frame rate.
const RATE_WINDOW: Duration = Duration::from_millis(1200);

/// One config problem of the tested stream, as the page shows it next to the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeFieldError {
    /// The field's path, `streams[0].url` (the probe sees a config of this one stream).
    pub field: String,
    /// What is wrong.
    pub error: String,
}

/// What a probe found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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
    /// Picture width, from the decoded first keyframe (H.264) or its frame header (JPEG).
    pub width: Option<u32>,
    /// Picture height, likewise.
    pub height: Option<u32>,
    /// Frames per second over the first second after the keyframe, from the frames' own
    /// timestamps; `None` when too few frames came to tell.
    pub fps: Option<f64>,
    /// Why it failed, in words.
    pub error: Option<String>,
    /// The config problems, field by field, when the stream's settings are invalid (the
    /// attempt is not made then).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProbeFieldError>,
    /// How long it took until the first keyframe (or the failure), ms.
    pub elapsed_ms: u64,
    /// `tcp` or `udp`: the RTSP transport the session ran over (with `auto`, the one that
    /// worked); `None` for other kinds or when no session was set up.
    pub transport: Option<&'static str>,
}

/// Frames seen by the probe sink.
#[derive(Debug, Default)]
struct Seen {
    /// Frames pushed.
    frames: u64,
    /// The first keyframe: codec, codec string, size.
    key: Option<(Codec, Option<String>, usize)>,
    /// The first keyframe's payload, decoded once the probe ends (for the picture size).
    key_payload: Vec<u8>,
    /// Presentation time of the first keyframe and of the latest frame since, µs.
    key_pts_us: Option<i64>,
    /// Presentation time of the newest frame after the keyframe.
    last_pts_us: i64,
    /// Frames from the keyframe on (the keyframe included).
    since_key: u64,
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
            let cs = match info.codec {
                Codec::H265 => crate::codec::hevc::hvc_codec_string(&au),
                _ => avc_codec_string(&au),
            };
            seen.key = Some((info.codec, cs, au.len()));
            seen.key_payload = au;
            seen.key_pts_us = Some(info.pts_us);
        }
        if seen.key.is_some() {
            seen.since_key += 1;
            seen.last_pts_us = info.pts_us;
        }
        Ok(seen.frames - 1)
    }
}

/// Runs `cfg`'s source until its first keyframe or its connect timeout (2-15 s), then a
/// moment longer to measure the frame rate.
pub async fn probe(cfg: &StreamConfig) -> ProbeReport {
    let start = std::time::Instant::now();
    if let Err(errors) = check(cfg) {
        return ProbeReport {
            error: Some(crate::config::report(&errors).trim_end().to_string()),
            errors: errors
                .into_iter()
                .map(|e| ProbeFieldError {
                    field: e.path,
                    error: e.message,
                })
                .collect(),
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
    let phase = crate::ingest::AttemptPhase::new();
    let ctx = SourceCtx {
        id: &cfg.id,
        sink: &mut sink,
        clock: &clock,
        epoch: 0,
        phase: phase.clone(),
    };
    let run = source.run(ctx);
    let keyed_at = Mutex::new(None);
    let got_key = async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if seen.lock().unwrap_or_else(|p| p.into_inner()).key.is_some() {
                *keyed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(start.elapsed());
                // Keep the source running a little longer, for the frame rate.
                tokio::time::sleep(RATE_WINDOW).await;
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
        _ = tokio::time::sleep(limit) => Some(match (phase.waiting(), phase.get()) {
            (Some(w), _) => crate::ingest::supervisor::timeout_sentence(
                None, Some(w), phase.transport(), limit, None,
            ),
            (None, Some(step)) => format!("no keyframe within {} s, still {step}", limit.as_secs()),
            (None, None) => format!("no keyframe within {} s", limit.as_secs()),
        }),
    };
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let elapsed = keyed_at
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or_else(|| start.elapsed());
    ProbeReport {
        transport: phase.transport(),
        ..report(&seen, error, elapsed)
    }
}

/// The report from what the sink saw.
fn report(seen: &Seen, error: Option<String>, elapsed: Duration) -> ProbeReport {
    let (codec, codec_string, bytes) = match &seen.key {
        Some((c, cs, n)) => (Some(c.name().to_string()), cs.clone(), Some(*n)),
        None => (None, None, None),
    };
    let (width, height) = match seen.key {
        Some((Codec::H264, _, _)) => picture_size(&seen.key_payload).unzip(),
        Some((Codec::Jpeg, _, _)) => crate::codec::jfif::picture_size(&seen.key_payload).unzip(),
        Some((Codec::H265, _, _)) => crate::codec::hevc::keyframe_sps(&seen.key_payload)
            .map(|s| (s.width, s.height))
            .unzip(),
        None => (None, None),
    };
    ProbeReport {
        ok: seen.key.is_some(),
        frames: seen.frames,
        codec,
        codec_string,
        keyframe_bytes: bytes,
        width,
        height,
        fps: frame_rate(seen),
        error: if seen.key.is_some() { None } else { error },
        errors: Vec::new(),
        elapsed_ms: elapsed.as_millis() as u64,
        transport: None,
    }
}

/// The size of the picture an H.264 keyframe decodes to.
fn picture_size(keyframe: &[u8]) -> Option<(u32, u32)> {
    let mut decoder = crate::codec::H264Decoder::new().ok()?;
    let picture = decoder.decode_flushed(keyframe).ok()??;
    Some((picture.width, picture.height))
}

/// Frames per second between the keyframe and the newest frame, by their timestamps.
fn frame_rate(seen: &Seen) -> Option<f64> {
    let first = seen.key_pts_us?;
    let span_us = seen.last_pts_us.checked_sub(first)?;
    if seen.since_key < 3 || span_us <= 0 {
        return None;
    }
    let fps = (seen.since_key - 1) as f64 * 1e6 / span_us as f64;
    Some((fps * 10.0).round() / 10.0)
}

/// Validates a single stream by placing it in an otherwise default config.
pub(crate) fn check(cfg: &StreamConfig) -> Result<(), Vec<crate::config::FieldError>> {
    let whole = crate::config::Config {
        streams: vec![cfg.clone()],
        ..crate::config::Config::default()
    };
    crate::config::validate(&whole)
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
        assert_eq!((r.width, r.height), (Some(160), Some(96)));
        let fps = r.fps.expect("frame rate measured");
        assert!(
            (20.0..=30.0).contains(&fps),
            "25 fps pattern measured as {fps}"
        );
    }

    #[tokio::test]
    async fn invalid_settings_are_reported_field_by_field() {
        let mut cfg = pattern();
        cfg.kind = StreamKind::Rtsp;
        cfg.url = Some("http://127.0.0.1:1/x".into());
        let r = probe(&cfg).await;
        assert!(!r.ok);
        let fields: Vec<&str> = r.errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"streams[0].url"), "{fields:?}");
        assert!(fields.contains(&"streams[0].width"), "{fields:?}");
        let json = serde_json::to_value(&r).expect("serialises");
        assert!(json["errors"][0]["error"].is_string(), "{json}");
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
