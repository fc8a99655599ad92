//! Outgoing webhooks: alarm and switch events POSTed as JSON to the `[[webhooks]]` of the
//! config.
//!
//! The control task only ever does a non-blocking broadcast of each new history entry
//! ([`Control::subscribe_events`]). Per webhook, a collector task turns the entries its filter
//! wants into JSON bodies and appends them to a bounded queue that drops its oldest entry
//! when full (counted and logged); a sender task posts them one at a time, each retried with
//! exponential backoff a bounded number of times ([`retry::RetryPolicy`]). A receiver that
//! hangs or is down therefore costs queue entries, never a delay in switching.
//!
//! Each body carries an `id` unique to the event (this daemon run's random id and the event's
//! position in the history), the same on every retry, so a receiver can drop duplicates (an
//! answer lost after the receiver took the event).

mod client;
mod queue;
pub mod retry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::{AlarmConfig, HookEvent, WebhookConfig};
use crate::control::Control;
use crate::select::EventRecord;

use queue::DropOldest;
use retry::RetryPolicy;

/// One webhook's counters, for `/api/status` and `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// The URL without credentials or query (it may hold a key).
    pub url: String,
    /// Events the receiver took (a 2xx answer).
    delivered: AtomicU64,
    /// Events given up on after their last attempt.
    failed: AtomicU64,
    /// Events dropped because the queue was full (the receiver slow or down).
    dropped: AtomicU64,
    /// Attempts that failed and were tried again.
    retries: AtomicU64,
    /// Events waiting now.
    queued: AtomicU64,
    /// The last failure and when (µs since the epoch); never holds a secret.
    last_error: Mutex<Option<(String, i64)>>,
}

/// [`WebhookStats`] as `/api/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookStatus {
    /// The URL without credentials or query.
    pub url: String,
    /// Events the receiver took.
    pub delivered: u64,
    /// Events given up on.
    pub failed: u64,
    /// Events dropped from a full queue.
    pub dropped: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
    /// Events waiting.
    pub queued: u64,
    /// The last failure, `null` when none.
    pub last_error: Option<String>,
    /// When it happened, µs since the epoch.
    pub last_error_at_us: Option<i64>,
}

impl WebhookStats {
    /// A copy of the counters.
    pub fn status(&self) -> WebhookStatus {
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        WebhookStatus {
            url: self.url.clone(),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            last_error_at_us: last.as_ref().map(|l| l.1),
            last_error: last.map(|l| l.0),
        }
    }

    fn set_error(&self, error: String, at_us: i64) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some((error, at_us));
    }
}

/// The running webhooks of one config; dropping it stops their tasks (queued events are lost).
#[derive(Debug, Default)]
pub struct Webhooks {
    /// The config they run with, to tell whether a new config changes them.
    configs: Vec<WebhookConfig>,
    /// Per webhook, its counters.
    stats: Vec<Arc<WebhookStats>>,
    /// The collector and sender tasks, aborted on drop.
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What a body needs besides the event: names and the box.
#[derive(Debug)]
struct Context {
    /// Alarm id → display name.
    alarms: Vec<(String, String)>,
    /// The box's name (its hostname).
    box_name: String,
}

impl Webhooks {
    /// Starts `configs` on `control`'s event feed. A webhook that cannot start (no CA
    /// certificates for `https://`) is logged and shows its error in the status.
    pub fn start(
        configs: &[WebhookConfig],
        alarms: &[AlarmConfig],
        box_name: &str,
        control: &Control,
        clock: Arc<dyn Clock>,
    ) -> Webhooks {
        let ctx = Arc::new(Context {
            alarms: alarms
                .iter()
                .map(|a| (a.id.clone(), a.display_name().to_string()))
                .collect(),
            box_name: box_name.to_string(),
        });
        let mut hooks = Webhooks {
            configs: configs.to_vec(),
            stats: Vec::new(),
            tasks: Vec::new(),
        };
        for cfg in configs {
            let stats = Arc::new(WebhookStats {
                url: cfg.display_url(),
                ..WebhookStats::default()
            });
            hooks.stats.push(Arc::clone(&stats));
            let poster = match client::Poster::new(cfg) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(webhook = %stats.url, error = %e, "webhook not started");
                    stats.set_error(e, clock.wall_us());
                    continue;
                }
            };
            let queue = Arc::new(DropOldest::new(cfg.queue as usize));
            hooks.tasks.push(tokio::spawn(collect(
                control.subscribe_events(),
                cfg.events.clone(),
                Arc::clone(&ctx),
                Arc::clone(&queue),
                Arc::clone(&stats),
            )));
            hooks.tasks.push(tokio::spawn(deliver(
                poster,
                RetryPolicy::new(cfg.attempts),
                queue,
                stats,
                Arc::clone(&clock),
            )));
        }
        hooks
    }

    /// Whether `configs` (and the alarm names the bodies carry) are what runs already.
    pub fn runs(&self, configs: &[WebhookConfig]) -> bool {
        self.configs == configs
    }

    /// Every webhook's counters, in config order.
    pub fn stats(&self) -> Vec<Arc<WebhookStats>> {
        self.stats.clone()
    }
}

/// The daemon run's id in event ids: random, so ids from before a restart never repeat.
fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| format!("{:016x}", fastrand::u64(..)))
}

/// The webhook event an entry is, if any (user selections, relabels are not sent).
fn hook_event(rec: &EventRecord) -> Option<HookEvent> {
    match (rec.kind, rec.action) {
        ("alarm", "raised") => Some(HookEvent::Raise),
        ("alarm", "cleared" | "hold-expired") => Some(HookEvent::Clear),
        ("alarm", "acknowledged") => Some(HookEvent::Ack),
        ("active", "switched") => Some(HookEvent::Switch),
        _ => None,
    }
}

/// The JSON body of one event.
#[derive(Debug, Serialize)]
struct Body<'a> {
    /// Unique per event, the same on every retry: for de-duplication.
    id: String,
    /// `raise`, `clear`, `ack` or `switch`.
    event: &'static str,
    /// The history's own word (`raised`, `cleared`, `hold-expired`, `acknowledged`, `switched`).
    action: &'static str,
    /// The box that sends it.
    #[serde(rename = "box")]
    box_name: &'a str,
    /// When it happened, UTC, RFC 3339.
    time: String,
    /// The same, µs since the epoch.
    time_us: i64,
    /// The stream shown (`switch`) or the stream the alarm calls up.
    stream: Option<&'a str>,
    /// The alarm's id (alarm events).
    alarm: Option<&'a str>,
    /// The alarm's display name.
    alarm_name: Option<&'a str>,
    /// `switch`: why the stream is shown (`user`, `default`, `alarm:<id>` ...); alarm events:
    /// the alarm's state right after (`active`, `holding`, `latched`, `idle`).
    reason: &'a str,
    /// `switch`: what let the change through (`user`, `preempt`, `return-after-clear` ...).
    cause: Option<&'static str>,
}

fn body(rec: &EventRecord, event: HookEvent, ctx: &Context) -> Bytes {
    let alarm_name = rec.alarm.as_deref().map(|id| {
        ctx.alarms
            .iter()
            .find(|(a, _)| a == id)
            .map_or(id, |(_, n)| n.as_str())
    });
    let b = Body {
        id: format!("{}-{}", run_id(), rec.seq),
        event: event.as_str(),
        action: rec.action,
        box_name: &ctx.box_name,
        time: rfc3339(rec.at_us),
        time_us: rec.at_us,
        stream: rec.stream.as_deref(),
        alarm: rec.alarm.as_deref(),
        alarm_name,
        reason: &rec.detail,
        cause: rec.cause,
    };
    // A struct of strings and numbers always serializes.
    Bytes::from(serde_json::to_vec(&b).unwrap_or_default())
}

/// Collects a webhook's events from the feed into its queue.
async fn collect(
    mut feed: broadcast::Receiver<Arc<EventRecord>>,
    wanted: Vec<HookEvent>,
    ctx: Arc<Context>,
    queue: Arc<DropOldest<Bytes>>,
    stats: Arc<WebhookStats>,
) {
    loop {
        let rec = match feed.recv().await {
            Ok(rec) => rec,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                let total = stats.dropped.fetch_add(n, Ordering::Relaxed) + n;
                tracing::warn!(webhook = %stats.url, missed = n, dropped_total = total,
                    "webhook fell behind the event feed; events dropped");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(event) = hook_event(&rec).filter(|e| wanted.contains(e)) else {
            continue;
        };
        if queue.push(body(&rec, event, &ctx)).is_some() {
            let total = stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(webhook = %stats.url, dropped_total = total,
                "webhook queue full (receiver slow or down); oldest event dropped");
        }
        stats.queued.store(queue.len() as u64, Ordering::Relaxed);
    }
}

/// Posts a webhook's queued events one at a time, each with its retries.
async fn deliver(
    poster: client::Poster,
    policy: RetryPolicy,
    queue: Arc<DropOldest<Bytes>>,
    stats: Arc<WebhookStats>,
    clock: Arc<dyn Clock>,
) {
    loop {
        let body = queue.pop().await;
        stats.queued.store(queue.len() as u64, Ordering::Relaxed);
        let outcome = policy
            .run(|n| {
                if n > 1 {
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                }
                let body = body.clone();
                let poster = &poster;
                let stats = &stats;
                let clock = &clock;
                async move {
                    let r = poster.post(body).await;
                    if let Err(e) = &r {
                        tracing::debug!(webhook = %stats.url, attempt = n, error = %e,
                            "webhook attempt failed");
                        stats.set_error(e.to_string(), clock.wall_us());
                    }
                    r
                }
            })
            .await;
        match outcome {
            Ok(_) => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, tries)) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(webhook = %stats.url, attempts = tries, error = %e,
                    "webhook event given up");
            }
        }
    }
}

/// `at_us` (µs since the epoch) as `YYYY-MM-DDTHH:MM:SS.mmmZ` (the epoch itself for a time
/// outside jiff's range, which no clock of this box gives).
fn rfc3339(at_us: i64) -> String {
    let t = jiff::Timestamp::from_microsecond(at_us).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{t:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_251_199_123_456), "2024-02-29T23:59:59.123Z");
        assert_eq!(rfc3339(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn only_alarm_and_switch_events_are_sent() {
        let mut rec = EventRecord {
            seq: 3,
            at_us: 0,
            kind: "select",
            action: "selected",
            stream: Some("cam1".into()),
            alarm: None,
            detail: "user".into(),
            cause: None,
        };
        assert_eq!(hook_event(&rec), None);
        (rec.kind, rec.action) = ("active", "relabelled");
        assert_eq!(hook_event(&rec), None);
        (rec.kind, rec.action) = ("alarm", "hold-expired");
        assert_eq!(hook_event(&rec), Some(HookEvent::Clear));
    }
}
