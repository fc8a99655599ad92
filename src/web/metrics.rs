//! `GET /metrics`: Prometheus text exposition with prometheus-client.
//!
//! prometheus-client writes OpenMetrics only. A scraper that does not ask for it (`Accept`
//! without `application/openmetrics-text`: `promtool`, curl, older Prometheus) gets the
//! Prometheus text format 0.0.4 instead, converted by [`to_prometheus_text`]: counters are
//! named `*_total` on their HELP and TYPE lines too, and `# EOF`, `# UNIT`, `_created`
//! samples and exemplars, which that format has not, are left out.
//!
//! Live-push metrics (clients, skipped frames, ingest-to-send latency) are updated as they
//! happen. Per-stream and per-alarm values already live in [`crate::ingest::stats`], the rings
//! and the control view; they are copied into a [`Sample`] at scrape time and emitted by a
//! collector, so nothing is counted twice.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::output::live::LiveMetrics;

/// One stream's values at scrape time.
#[derive(Debug, Clone, Default)]
pub struct StreamSample {
    /// Stream id (the `stream` label).
    pub id: String,
    /// Frames per second over the last window.
    pub fps: f64,
    /// Frames stored since start.
    pub frames: u64,
    /// Payload bytes stored since start.
    pub bytes: u64,
    /// Reconnect attempts.
    pub reconnects: u64,
    /// Frames the ring overwrote (normal operation: the oldest are recycled).
    pub ring_overwritten: u64,
    /// Frames ring readers lost by falling behind.
    pub ring_lagged: u64,
    /// RTP packets lost on the way from the camera.
    pub lost_packets: u64,
    /// Frames with missing data (they came right after lost packets).
    pub incomplete_frames: u64,
    /// Frames the snapshot/JPEG decoder could not decode.
    pub decode_errors: u64,
    /// 1 when the stream is live.
    pub live: bool,
}

/// What the collector emits for streams and alarms; refreshed before every scrape.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Every running stream.
    pub streams: Vec<StreamSample>,
    /// (alarm id, active, times raised) for every alarm.
    pub alarms: Vec<(String, bool, u64)>,
    /// Every webhook's counters (the `webhook` label is its URL without credentials or query).
    pub webhooks: Vec<crate::hooks::WebhookStatus>,
}

/// Emits the [`Sample`] as metric families.
#[derive(Debug, Default)]
struct SampleCollector {
    /// The values of the current scrape.
    sample: Arc<Mutex<Sample>>,
}

impl Collector for SampleCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self
            .sample
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        macro_rules! family {
            ($name:expr, $help:expr, $metric:ident, $items:expr) => {{
                let kind = if stringify!($metric) == "ConstGauge" {
                    MetricType::Gauge
                } else {
                    MetricType::Counter
                };
                let mut fam = enc.encode_descriptor($name, $help, None, kind)?;
                for (label_key, label, v) in $items {
                    let labels = [(label_key, label.as_str())];
                    $metric::new(v).encode(fam.encode_family(&labels)?)?;
                }
            }};
        }
        let streams = &s.streams;
        family!(
            "edgecam_stream_fps",
            "Frames per second received, per stream",
            ConstGauge,
            streams.iter().map(|x| ("stream", &x.id, x.fps))
        );
        family!(
            "edgecam_stream_frames",
            "Frames received, per stream",
            ConstCounter,
            streams.iter().map(|x| ("stream", &x.id, x.frames))
        );
        family!(
            "edgecam_stream_bytes",
            "Payload bytes received, per stream",
            ConstCounter,
            streams.iter().map(|x| ("stream", &x.id, x.bytes))
        );
        family!(
            "edgecam_stream_reconnects",
            "Reconnect attempts, per stream",
            ConstCounter,
            streams.iter().map(|x| ("stream", &x.id, x.reconnects))
        );
        family!(
            "edgecam_stream_rtp_lost_packets",
            "RTP packets lost between the camera and the box, per stream",
            ConstCounter,
            streams.iter().map(|x| ("stream", &x.id, x.lost_packets))
        );
        family!(
            "edgecam_stream_incomplete_frames",
            "Frames received right after lost RTP packets (data missing), per stream",
            ConstCounter,
            streams
                .iter()
                .map(|x| ("stream", &x.id, x.incomplete_frames))
        );
        family!(
            "edgecam_stream_live",
            "1 while the stream delivers frames",
            ConstGauge,
            streams.iter().map(|x| ("stream", &x.id, i64::from(x.live)))
        );
        family!(
            "edgecam_ring_overwritten_frames",
            "Frames recycled by the ring writer, per stream",
            ConstCounter,
            streams
                .iter()
                .map(|x| ("stream", &x.id, x.ring_overwritten))
        );
        family!(
            "edgecam_ring_lagged_frames",
            "Frames ring readers lost by falling behind, per stream",
            ConstCounter,
            streams.iter().map(|x| ("stream", &x.id, x.ring_lagged))
        );
        family!(
            "edgecam_stream_decode_errors",
            "Frames the snapshot/JPEG decoder could not decode, per stream",
            ConstCounter,
            streams.iter().map(|x| ("stream", &x.id, x.decode_errors))
        );
        family!(
            "edgecam_alarm_active",
            "1 while the alarm is active",
            ConstGauge,
            s.alarms
                .iter()
                .map(|(id, on, _)| ("alarm", id, i64::from(*on)))
        );
        family!(
            "edgecam_alarm_raised",
            "Times the alarm became active since start",
            ConstCounter,
            s.alarms.iter().map(|(id, _, n)| ("alarm", id, *n))
        );
        let hooks = &s.webhooks;
        family!(
            "edgecam_webhook_delivered",
            "Events the webhook's receiver took (2xx), per webhook",
            ConstCounter,
            hooks.iter().map(|h| ("webhook", &h.url, h.delivered))
        );
        family!(
            "edgecam_webhook_failed",
            "Events given up on after the last attempt, per webhook",
            ConstCounter,
            hooks.iter().map(|h| ("webhook", &h.url, h.failed))
        );
        family!(
            "edgecam_webhook_dropped",
            "Events dropped from a full webhook queue, per webhook",
            ConstCounter,
            hooks.iter().map(|h| ("webhook", &h.url, h.dropped))
        );
        Ok(())
    }
}

/// The registry and the live-push metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Everything registered, encoded on scrape.
    registry: Registry,
    /// The per-scrape values behind the collector.
    sample: Arc<Mutex<Sample>>,
    /// The live push's counters and latency histogram, updated by the client loops.
    pub live: LiveMetrics,
    /// Tasks alive in the daemon's tokio runtime, refreshed at every scrape: a leak check
    /// (the soak benchmark watches it across camera reconnects).
    pub alive_tasks: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every edgecam metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let live = LiveMetrics::default();
        let alive_tasks = Gauge::default();
        registry.register(
            "edgecam_runtime_alive_tasks",
            "Tasks alive in the daemon's tokio runtime",
            alive_tasks.clone(),
        );
        registry.register(
            "edgecam_live_clients",
            "Open live WebSocket connections",
            live.live_clients.clone(),
        );
        registry.register(
            "edgecam_live_skipped_frames",
            "Frames skipped by live clients that fell behind",
            live.skipped_frames.clone(),
        );
        registry.register(
            "edgecam_live_sent_frames",
            "Frames sent to live clients",
            live.sent_frames.clone(),
        );
        registry.register(
            "edgecam_live_dropped_clients",
            "Live clients dropped because they stopped reading",
            live.dropped_clients.clone(),
        );
        registry.register(
            "edgecam_live_ingest_to_send_seconds",
            "Time from ingest to the frame being handed to the socket",
            live.ingest_to_send.clone(),
        );
        let sample = Arc::new(Mutex::new(Sample::default()));
        registry.register_collector(Box::new(SampleCollector {
            sample: Arc::clone(&sample),
        }));
        Metrics {
            registry,
            sample,
            live,
            alive_tasks,
        }
    }

    /// The exposition in `format` with `sample` as the stream and alarm values.
    pub fn render_as(&self, sample: Sample, format: Format) -> Result<String, std::fmt::Error> {
        let open = self.render(sample)?;
        Ok(match format {
            Format::OpenMetrics => open,
            Format::Prometheus => to_prometheus_text(&open),
        })
    }

    /// The OpenMetrics exposition with `sample` as the stream and alarm values.
    pub fn render(&self, sample: Sample) -> Result<String, std::fmt::Error> {
        *self.sample.lock().unwrap_or_else(|p| p.into_inner()) = sample;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            self.alive_tasks
                .set(i64::try_from(rt.metrics().num_alive_tasks()).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The two expositions `/metrics` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, prometheus-client's own output.
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Prometheus,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a quality at least that of any `text/plain` (or
    /// wildcard) entry; the Prometheus text otherwise, also for `*/*` or no header.
    pub fn negotiate(accept: &str) -> Format {
        let (mut open, mut text) = (0.0f32, 0.0f32);
        for range in accept.split(',') {
            let mut params = range.split(';');
            let kind = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match kind.as_str() {
                "application/openmetrics-text" => open = open.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if open > 0.0 && open >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The `Content-Type` of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// OpenMetrics text (as prometheus-client writes it) in the Prometheus text format 0.0.4:
/// a counter family `x` whose samples are `x_total` gets `# HELP x_total` and
/// `# TYPE x_total counter`; `unknown` becomes `untyped` (and OpenMetrics-only types too);
/// `# UNIT`, `# EOF`, `*_created` samples and exemplars (` # {...}`) are dropped.
pub fn to_prometheus_text(open: &str) -> String {
    // Families by name with their OpenMetrics type, from the TYPE lines.
    let types: std::collections::HashMap<&str, &str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = exposed_name(name, types.get(name).copied());
            out.push_str(&format!("# HELP {name} {help}\n"));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let kind = match kind {
                "counter" | "gauge" | "histogram" | "summary" => kind,
                _ => "untyped",
            };
            let name = exposed_name(name, Some(kind));
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if line.starts_with('#') {
            // `# UNIT`, `# EOF`: not in this format.
        } else if !line.is_empty() {
            let sample = line.split_once(" # ").map_or(line, |(s, _exemplar)| s);
            let name_end = sample.find(['{', ' ']).unwrap_or(sample.len());
            if sample[..name_end].ends_with("_created") {
                continue;
            }
            out.push_str(sample);
            out.push('\n');
        }
    }
    out
}

/// The name a family's HELP and TYPE lines carry in the 0.0.4 format: counters by the name of
/// their samples (`_total`), everything else as is.
fn exposed_name(name: &str, kind: Option<&str>) -> String {
    if kind == Some("counter") && !name.ends_with("_total") {
        format!("{name}_total")
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_the_format() {
        use Format::*;
        assert_eq!(Format::negotiate(""), Prometheus);
        assert_eq!(Format::negotiate("*/*"), Prometheus);
        assert_eq!(Format::negotiate("text/plain"), Prometheus);
        assert_eq!(
            Format::negotiate("application/openmetrics-text; version=1.0.0"),
            OpenMetrics
        );
        // Prometheus 2.x's own header prefers OpenMetrics.
        assert_eq!(
            Format::negotiate(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ),
            OpenMetrics
        );
        assert_eq!(
            Format::negotiate("text/plain;version=0.0.4,application/openmetrics-text;q=0.5"),
            Prometheus
        );
        assert_eq!(
            Format::negotiate("application/openmetrics-text;q=0"),
            Prometheus
        );
    }

    #[test]
    fn open_metrics_becomes_prometheus_text() {
        let open = "# HELP a_frames Frames.\n# TYPE a_frames counter\n\
                    a_frames_total{stream=\"x\"} 3 # {trace=\"1\"} 1.0\n\
                    a_frames_created{stream=\"x\"} 1.7e9\n\
                    # HELP a_fps Fps.\n# TYPE a_fps gauge\n# UNIT a_fps hertz\na_fps 2.5\n\
                    # HELP a_lat Latency.\n# TYPE a_lat histogram\n\
                    a_lat_bucket{le=\"+Inf\"} 1\na_lat_sum 0.1\na_lat_count 1\n\
                    # HELP a_info Build.\n# TYPE a_info info\na_info_info{v=\"1\"} 1\n# EOF\n";
        let text = to_prometheus_text(open);
        assert_eq!(
            text,
            "# HELP a_frames_total Frames.\n# TYPE a_frames_total counter\n\
             a_frames_total{stream=\"x\"} 3\n\
             # HELP a_fps Fps.\n# TYPE a_fps gauge\na_fps 2.5\n\
             # HELP a_lat Latency.\n# TYPE a_lat histogram\n\
             a_lat_bucket{le=\"+Inf\"} 1\na_lat_sum 0.1\na_lat_count 1\n\
             # HELP a_info Build.\n# TYPE a_info untyped\na_info_info{v=\"1\"} 1\n"
        );
    }

    #[test]
    fn every_family_of_the_real_registry_has_help_and_type_in_prometheus_text() {
        let m = Metrics::new();
        let text = m
            .render_as(
                Sample {
                    streams: vec![StreamSample {
                        id: "cam1".into(),
                        frames: 4,
                        ..Default::default()
                    }],
                    alarms: vec![("door".into(), false, 1)],
                    webhooks: vec![crate::hooks::WebhookStatus {
                        url: "http://127.0.0.1:9/hook".into(),
                        delivered: 1,
                        failed: 0,
                        dropped: 2,
                        retries: 0,
                        queued: 0,
                        last_error: None,
                        last_error_at_us: None,
                    }],
                },
                Format::Prometheus,
            )
            .unwrap();
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            text.contains(
                "# HELP edgecam_stream_frames_total Frames received, per stream\n\
                 # TYPE edgecam_stream_frames_total counter\n\
                 edgecam_stream_frames_total{stream=\"cam1\"} 4\n"
            ),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = &line[..line.find(['{', ' ']).unwrap()];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| text.contains(&format!("# TYPE {f} histogram")))
                .unwrap_or(name);
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "no HELP for {name}:\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "no TYPE for {name}:\n{text}"
            );
        }
    }

    #[tokio::test]
    async fn counts_the_runtime_tasks_at_scrape_time() {
        let m = Metrics::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = rx.await;
        });
        let text = m.render(Sample::default()).unwrap();
        assert!(text.contains("edgecam_runtime_alive_tasks 1\n"), "{text}");
        tx.send(()).unwrap();
        task.await.unwrap();
        let text = m.render(Sample::default()).unwrap();
        assert!(text.contains("edgecam_runtime_alive_tasks 0\n"), "{text}");
    }

    #[test]
    fn renders_streams_alarms_and_live_metrics() {
        let m = Metrics::new();
        m.live.live_clients.inc();
        m.live.ingest_to_send.observe(0.02);
        let text = m
            .render(Sample {
                streams: vec![StreamSample {
                    id: "cam1".into(),
                    fps: 25.0,
                    frames: 10,
                    ..Default::default()
                }],
                alarms: vec![("door".into(), true, 3)],
                webhooks: Vec::new(),
            })
            .unwrap();
        assert!(
            text.contains("edgecam_stream_frames_total{stream=\"cam1\"} 10"),
            "{text}"
        );
        assert!(
            text.contains("edgecam_stream_fps{stream=\"cam1\"} 25"),
            "{text}"
        );
        assert!(
            text.contains("edgecam_alarm_raised_total{alarm=\"door\"} 3"),
            "{text}"
        );
        assert!(text.contains("edgecam_live_clients 1"), "{text}");
        assert!(
            text.contains("edgecam_live_ingest_to_send_seconds_count 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
