//! A camera's events as an alarm input: `CreatePullPointSubscription`, then `PullMessages`
//! long polls, `Renew` at half the lifetime the camera granted, a new subscription after
//! any failure (with backoff), `Unsubscribe` on stop. Each matching notification's state
//! (`IsMotion`, `State`: `true`/`false`) becomes an [`AlarmSignal`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::OnvifError;
use super::device::services;
use super::soap::{Client, Endpoint};
use super::topics::{Level, Notification, notifications};
use super::xml::{find, text};
use crate::backoff::{Backoff, BackoffConfig};
use crate::clock::Clock;
use crate::gpio::{AlarmSignal, HEARTBEAT, InputState, InputStatus};

const EVENTS_NS: &str = "http://www.onvif.org/ver10/events/wsdl";
const WSN_NS: &str = "http://docs.oasis-open.org/wsn/bw-2";
/// Subscription lifetime asked for; the camera may grant less.
const LIFETIME_ASKED_S: u64 = 60;
/// Longest `PullMessages` wait.
const PULL_MAX_S: u64 = 10;

/// One `[alarms.onvif]` input, resolved.
#[derive(Clone)]
pub struct OnvifInput {
    /// The selector's alarm index.
    pub alarm: usize,
    /// The alarm id, for logs.
    pub alarm_id: String,
    /// Camera address (`host[:port]` or URL).
    pub address: String,
    /// ONVIF user.
    pub user: String,
    /// ONVIF password; never logged.
    pub password: String,
    /// The topic wanted (short name or ONVIF topic).
    pub topic: String,
    /// The data item that carries the state, if not the first boolean one.
    pub item: Option<String>,
}

impl std::fmt::Debug for OnvifInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnvifInput")
            .field("alarm_id", &self.alarm_id)
            .field("address", &self.address)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// A live subscription.
#[derive(Debug, Clone)]
struct Subscription {
    /// The subscription manager / pull point address.
    at: Endpoint,
    /// How long the camera keeps it without a renewal.
    lifetime: Duration,
}

/// Where an input task is, beyond its status: the level it last sent.
struct Link<'a> {
    /// The input.
    input: &'a OnvifInput,
    /// Where the levels go.
    tx: &'a mpsc::Sender<AlarmSignal>,
    /// The box's clock, for the signals' times.
    clock: &'a Arc<dyn Clock>,
    /// The level sent last; cleared when the camera goes away.
    on: bool,
}

impl Link<'_> {
    /// Sends `on` if it changes the level; `false` when the receiver is gone.
    async fn send(&mut self, on: bool) -> bool {
        if on == self.on {
            return true;
        }
        self.on = on;
        let sig = AlarmSignal {
            alarm: self.input.alarm,
            on,
            mono_ns: self.clock.mono_ns(),
        };
        self.tx.send(sig).await.is_ok()
    }
}

/// Runs one ONVIF input until `stop` turns true or the receiver of `tx` is gone; its state
/// (`ok`, `failed: why`) goes to `status`, whose watchdog beacon it beats every
/// [`HEARTBEAT`] (during long polls, while waiting to subscribe again, and while a bad
/// address keeps it idle), so only a loop that is stuck itself goes stale.
pub async fn run_onvif_input(
    input: OnvifInput,
    clock: Arc<dyn Clock>,
    status: Arc<InputStatus>,
    tx: mpsc::Sender<AlarmSignal>,
    backoff: BackoffConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let client = match Endpoint::device(&input.address) {
        Ok(ep) => Client::new(ep, &input.user, &input.password, Arc::clone(&clock)),
        Err(e) => {
            status.set(InputState::Failed(e.to_string()));
            // Nothing to retry, but a healthy loop: beat until told to stop.
            let idle = std::future::pending::<()>();
            beating(idle, &mut heartbeat, &status, &clock, &mut stop).await;
            return;
        }
    };
    let mut backoff = Backoff::new(backoff);
    let mut link = Link {
        input: &input,
        tx: &tx,
        clock: &clock,
        on: false,
    };
    loop {
        let started = Instant::now();
        let mut sub = None;
        let outcome = {
            let run = session(&client, &status, &mut link, &mut sub);
            beating(run, &mut heartbeat, &status, &clock, &mut stop).await
        };
        let Some(result) = outcome else {
            if let Some(sub) = sub {
                unsubscribe(&client, &sub).await;
            }
            return;
        };
        let e = match result {
            Ok(()) => return,
            Err(e) => e,
        };
        tracing::warn!(alarm = %input.alarm_id, camera = %client.device().url(), error = %e, "ONVIF events input failed; subscribing again");
        status.set(InputState::Failed(e.to_string()));
        if !link.send(false).await {
            return;
        }
        if let Some(sub) = sub {
            unsubscribe(&client, &sub).await;
        }
        backoff.attempt_ended(started.elapsed());
        let delay = backoff.next_delay(1.0);
        let wait = tokio::time::sleep(delay);
        if beating(wait, &mut heartbeat, &status, &clock, &mut stop)
            .await
            .is_none()
        {
            return;
        }
    }
}

/// Runs `work` to its end while beating `status` every heartbeat; `None` when `stop` came
/// first (`work` is dropped then).
async fn beating<T>(
    work: impl std::future::Future<Output = T>,
    heartbeat: &mut tokio::time::Interval,
    status: &InputStatus,
    clock: &Arc<dyn Clock>,
    stop: &mut watch::Receiver<bool>,
) -> Option<T> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            r = &mut work => return Some(r),
            _ = stopped(stop) => return None,
            _ = heartbeat.tick() => status.beat(clock.mono_ns()).await,
        }
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // A dropped sender also means stop.
    let _ = stop.wait_for(|s| *s).await;
}

/// One subscription from start to failure. `Ok` only when the receiver is gone.
async fn session(
    client: &Client,
    status: &InputStatus,
    link: &mut Link<'_>,
    sub_out: &mut Option<Subscription>,
) -> Result<(), OnvifError> {
    client.sync_clock().await?;
    let events = services(client).await?.events.ok_or(OnvifError::NoEvents)?;
    let events = Endpoint::parse(&events)?;
    let sub = subscribe(client, &events).await?;
    *sub_out = Some(sub.clone());
    status.set(InputState::Ok);
    tracing::info!(alarm = %link.input.alarm_id, camera = %client.device().url(), "ONVIF events subscribed");
    let mut lifetime = sub.lifetime;
    let mut renew_at = Instant::now() + lifetime / 2;
    loop {
        if Instant::now() >= renew_at {
            lifetime = renew(client, &sub.at).await?.unwrap_or(lifetime);
            renew_at = Instant::now() + lifetime / 2;
        }
        let wait = pull_wait(lifetime);
        for n in pull(client, &sub.at, wait).await? {
            let Some(level) = n.level_for(&link.input.topic, link.input.item.as_deref()) else {
                continue;
            };
            tracing::debug!(alarm = %link.input.alarm_id, topic = %n.topic, ?level, "ONVIF event");
            let ok = match level {
                Level::On => link.send(true).await,
                Level::Off => link.send(false).await,
                Level::Pulse => link.send(true).await && link.send(false).await,
            };
            if !ok {
                return Ok(());
            }
        }
    }
}

/// The `PullMessages` wait: at most 10 s, and short enough to renew in time.
fn pull_wait(lifetime: Duration) -> Duration {
    (lifetime / 3).clamp(Duration::from_secs(1), Duration::from_secs(PULL_MAX_S))
}

async fn subscribe(client: &Client, events: &Endpoint) -> Result<Subscription, OnvifError> {
    let body = format!(
        "<tev:CreatePullPointSubscription><tev:InitialTerminationTime>PT{LIFETIME_ASKED_S}S\
         </tev:InitialTerminationTime></tev:CreatePullPointSubscription>"
    );
    let answer = client
        .call(
            events,
            "CreatePullPointSubscription",
            &format!("{EVENTS_NS}/EventPortType/CreatePullPointSubscriptionRequest"),
            &body,
            None,
        )
        .await?;
    let bad = |why: &str| OnvifError::BadAnswer {
        action: "CreatePullPointSubscription",
        why: why.to_string(),
    };
    let doc = roxmltree::Document::parse(&answer).map_err(|e| bad(&e.to_string()))?;
    let at = find(doc.root(), "SubscriptionReference")
        .and_then(|r| text(r, "Address"))
        .ok_or_else(|| bad("no SubscriptionReference/Address"))?;
    Ok(Subscription {
        at: Endpoint::parse(&at)?,
        lifetime: granted(&doc).unwrap_or(Duration::from_secs(LIFETIME_ASKED_S)),
    })
}

/// The lifetime an answer grants: `TerminationTime` − `CurrentTime`.
fn granted(doc: &roxmltree::Document<'_>) -> Option<Duration> {
    let t = |name: &str| text(doc.root(), name).and_then(|s| s.parse::<jiff::Timestamp>().ok());
    let (now, end) = (t("CurrentTime")?, t("TerminationTime")?);
    let us = end.as_microsecond() - now.as_microsecond();
    (us > 0).then(|| Duration::from_micros(us.unsigned_abs()))
}

async fn renew(client: &Client, at: &Endpoint) -> Result<Option<Duration>, OnvifError> {
    let body = format!(
        "<wsnt:Renew><wsnt:TerminationTime>PT{LIFETIME_ASKED_S}S</wsnt:TerminationTime></wsnt:Renew>"
    );
    let answer = client
        .call(
            at,
            "Renew",
            &format!("{WSN_NS}/SubscriptionManager/RenewRequest"),
            &body,
            None,
        )
        .await?;
    Ok(roxmltree::Document::parse(&answer)
        .ok()
        .and_then(|d| granted(&d)))
}

async fn pull(
    client: &Client,
    at: &Endpoint,
    wait: Duration,
) -> Result<Vec<Notification>, OnvifError> {
    let body = format!(
        "<tev:PullMessages><tev:Timeout>PT{}S</tev:Timeout><tev:MessageLimit>32</tev:MessageLimit>\
         </tev:PullMessages>",
        wait.as_secs()
    );
    let answer = client
        .call(
            at,
            "PullMessages",
            &format!("{EVENTS_NS}/PullPointSubscription/PullMessagesRequest"),
            &body,
            Some(wait + Duration::from_secs(10)),
        )
        .await?;
    let doc = roxmltree::Document::parse(&answer).map_err(|e| OnvifError::BadAnswer {
        action: "PullMessages",
        why: e.to_string(),
    })?;
    Ok(notifications(&doc))
}

async fn unsubscribe(client: &Client, sub: &Subscription) {
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        client.call(
            &sub.at,
            "Unsubscribe",
            &format!("{WSN_NS}/SubscriptionManager/UnsubscribeRequest"),
            "<wsnt:Unsubscribe/>",
            Some(Duration::from_secs(2)),
        ),
    )
    .await;
    if let Ok(Err(e)) = r {
        tracing::debug!(camera = %client.device().url(), error = %e, "ONVIF Unsubscribe failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_are_short_enough_to_renew_in_time() {
        assert_eq!(pull_wait(Duration::from_secs(60)), Duration::from_secs(10));
        assert_eq!(pull_wait(Duration::from_secs(6)), Duration::from_secs(2));
        assert_eq!(
            pull_wait(Duration::from_millis(500)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn the_granted_lifetime_is_read() {
        let doc = roxmltree::Document::parse(
            "<r xmlns:w=\"urn:w\"><w:CurrentTime>2026-12-08T00:00:00Z</w:CurrentTime>\
             <w:TerminationTime>2026-12-08T00:00:04Z</w:TerminationTime></r>",
        )
        .unwrap();
        assert_eq!(granted(&doc), Some(Duration::from_secs(4)));
    }
}
