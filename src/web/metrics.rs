//! `GET /metrics`: Prometheus text exposition with prometheus-client.
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

    /// The text exposition with `sample` as the stream and alarm values.
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

#[cfg(test)]
mod tests {
    use super::*;

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
