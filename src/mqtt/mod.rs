//! The box on the site's MQTT broker (`rumqttc`): retained state and events under
//! `edgecam/<box>/`, Home Assistant discovery, commands with the HTTP API's role rules, and
//! alarm inputs fed by topics (another box's alarm, a Zigbee door sensor).
//!
//! It holds only the narrow [`Handles`]: it reads the view from the control task's watch
//! channel and the streams from the status reader, and it sends commands like the web does.
//! Nothing the control task does waits on the broker; a full outgoing queue drops a message
//! (state is re-sent on the next change, tick or reconnect).

pub mod topics;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, LastWill, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{MqttConfig, Role};
use crate::control::Command;
use crate::gpio::{InputState, InputStatus};
use crate::handles::{Handles, InputEntry, StatusReader};
use crate::select::ActiveView;
use topics::{MqttCommand, Topics};

/// How often stream states and health are compared with what was published.
const STATE_PERIOD: Duration = Duration::from_secs(1);

/// Room in the client's request queue; a full queue drops a message rather than waiting.
const QUEUE: usize = 256;

/// Why the MQTT connection could not be set up (it is then off; the daemon runs on).
#[derive(Debug, Error)]
pub enum MqttError {
    /// The CA file cannot be read.
    #[error("cannot read mqtt.ca_file {path}: {source}; check the path and its permissions")]
    CaFile {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The running MQTT tasks; dropping it disconnects (the broker then publishes `offline`).
#[derive(Debug)]
pub struct MqttBridge {
    /// The connection loop, the publisher and the command worker; aborted on drop.
    tasks: Vec<JoinHandle<()>>,
    /// Each `[[mqtt.inputs]]` entry's state (`ok` while the broker is connected), for the
    /// status page.
    inputs: Vec<InputEntry>,
}

impl Drop for MqttBridge {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl MqttBridge {
    /// Connects to the broker of `cfg` (in the background, retrying with backoff) and starts
    /// publishing and serving commands through `handles`.
    pub fn start(cfg: MqttConfig, handles: Handles) -> Result<MqttBridge, MqttError> {
        let topics = Topics::new(&cfg);
        let options = options(&cfg, &topics)?;
        let inputs: Vec<InputEntry> = cfg
            .inputs
            .iter()
            .map(|i| InputEntry {
                alarm: i.alarm.clone(),
                kind: "mqtt",
                status: Arc::new(InputStatus::default()),
            })
            .collect();
        let (client, eventloop) = AsyncClient::new(options, QUEUE);
        let (republish_tx, republish_rx) = watch::channel(0u64);
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let cfg = Arc::new(cfg);
        // The view is taken now, not when the publisher first runs: every change after the
        // bridge started (an alarm an input raises at start) becomes an event.
        let mut views = handles.control.subscribe();
        let first = views.borrow_and_update().clone();
        let conn = Connection {
            cfg: Arc::clone(&cfg),
            topics: topics.clone(),
            client: client.clone(),
            republish: republish_tx,
            commands: cmd_tx,
            inputs: inputs.iter().map(|e| Arc::clone(&e.status)).collect(),
            status: handles.status.clone(),
        };
        let tasks = vec![
            tokio::spawn(conn.run(eventloop)),
            tokio::spawn(publish_loop(
                Arc::clone(&cfg),
                topics,
                client,
                handles.clone(),
                (views, first),
                republish_rx,
            )),
            tokio::spawn(command_worker(cfg, handles, cmd_rx)),
        ];
        Ok(MqttBridge { tasks, inputs })
    }

    /// Every `[[mqtt.inputs]]` entry's alarm and state.
    pub fn input_statuses(&self) -> Vec<InputEntry> {
        self.inputs.clone()
    }
}

/// The client options: identity, credentials, last will, TLS.
fn options(cfg: &MqttConfig, topics: &Topics) -> Result<MqttOptions, MqttError> {
    let mut o = MqttOptions::new(format!("edgecam-{}", cfg.box_id), &cfg.host, cfg.port);
    o.set_keep_alive(Duration::from_secs(15));
    o.set_request_channel_capacity(QUEUE);
    o.set_last_will(LastWill::new(
        topics.availability(),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(user) = &cfg.username {
        o.set_credentials(user, cfg.password.clone().unwrap_or_default());
    }
    if cfg.tls {
        let tls = match &cfg.ca_file {
            Some(path) => TlsConfiguration::Simple {
                ca: std::fs::read(path).map_err(|source| MqttError::CaFile {
                    path: path.display().to_string(),
                    source,
                })?,
                alpn: None,
                client_auth: None,
            },
            None => TlsConfiguration::Rustls(Arc::new(system_roots())),
        };
        o.set_transport(Transport::tls_with_config(tls));
    }
    Ok(o)
}

/// A rustls client config trusting the system's certificate store.
fn system_roots() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "MQTT TLS: a system certificate could not be read");
    }
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(
            "MQTT TLS: no system CA certificates found; install ca-certificates or set mqtt.ca_file"
        );
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// What one incoming message asks for, resolved by the connection loop.
#[derive(Debug)]
enum Incoming {
    /// A command on this box's `cmd/` topics.
    Command(MqttCommand),
    /// An `[[mqtt.inputs]]` topic's level, by alarm id.
    Input(String, bool),
}

/// The connection loop's state.
struct Connection {
    /// The `[mqtt]` section.
    cfg: Arc<MqttConfig>,
    /// This box's topics.
    topics: Topics,
    /// Subscribes and publishes `online` on every (re)connect.
    client: AsyncClient,
    /// Bumped when everything retained must be published again (connect, HA restart).
    republish: watch::Sender<u64>,
    /// Commands and inputs to the worker, which talks to the control task.
    commands: mpsc::Sender<Incoming>,
    /// The inputs' states: `ok` while connected, `failed` (why) while the broker is not.
    inputs: Vec<Arc<InputStatus>>,
    /// The config in force, to tell a retained discovery config of an entity that is gone
    /// (a stream or alarm removed, here or before the last restart) from a current one.
    status: StatusReader,
}

impl Connection {
    async fn run(self, mut eventloop: rumqttc::EventLoop) {
        let min = Duration::from_millis(self.cfg.reconnect_min_ms);
        let max = Duration::from_millis(self.cfg.reconnect_max_ms);
        let mut delay = min;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    delay = min;
                    tracing::info!(host = %self.cfg.host, port = self.cfg.port, prefix = %self.topics.prefix, "MQTT connected");
                    self.on_connect();
                    for s in &self.inputs {
                        s.set(InputState::Ok);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => self.on_publish(&p.topic, &p.payload),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(host = %self.cfg.host, port = self.cfg.port, error = %e, retry_ms = delay.as_millis() as u64, "MQTT broker not reachable; retrying");
                    let why = format!(
                        "MQTT broker {}:{} not reachable: {e}",
                        self.cfg.host, self.cfg.port
                    );
                    for s in &self.inputs {
                        s.set(InputState::Failed(why.clone()));
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(max);
                }
            }
        }
    }

    fn on_connect(&self) {
        let mut subs = vec![self.topics.commands(), self.topics.ha_status()];
        if self.cfg.discovery {
            subs.push(self.topics.discovery_filter());
        }
        subs.extend(self.cfg.inputs.iter().map(|i| i.topic.clone()));
        for s in subs {
            if let Err(e) = self.client.try_subscribe(&s, QoS::AtLeastOnce) {
                tracing::warn!(topic = %s, error = %e, "MQTT subscribe not queued");
            }
        }
        let avail = self.topics.availability();
        if let Err(e) = self
            .client
            .try_publish(avail, QoS::AtLeastOnce, true, "online")
        {
            tracing::warn!(error = %e, "MQTT availability not queued");
        }
        self.republish.send_modify(|n| *n += 1);
    }

    fn on_publish(&self, topic: &str, payload: &[u8]) {
        if topic == self.topics.ha_status() {
            if payload == b"online" {
                tracing::info!("Home Assistant is back: publishing discovery again");
                self.republish.send_modify(|n| *n += 1);
            }
            return;
        }
        if self.cfg.discovery && self.topics.is_discovery(topic) {
            self.on_discovery(topic, payload);
            return;
        }
        let inputs: Vec<_> = self
            .cfg
            .inputs
            .iter()
            .filter(|i| i.topic == topic)
            .collect();
        if !inputs.is_empty() {
            let text = String::from_utf8_lossy(payload);
            let text = text.trim();
            for input in inputs {
                let level = if input.on.iter().any(|p| p == text) {
                    Some(true)
                } else if input.off.iter().any(|p| p == text) {
                    Some(false)
                } else {
                    None
                };
                match level {
                    Some(on) => self.forward(Incoming::Input(input.alarm.clone(), on), topic),
                    None => {
                        tracing::warn!(topic, alarm = %input.alarm, "MQTT input payload is neither an `on` nor an `off` payload of mqtt.inputs; ignored")
                    }
                }
            }
            return;
        }
        match self.topics.parse_command(topic, payload) {
            Ok(cmd) => self.forward(Incoming::Command(cmd), topic),
            Err(e) => tracing::warn!(topic, error = %e, "MQTT command ignored"),
        }
    }

    /// A discovery config on the broker (retained from an earlier run, or the echo of our
    /// own): one of an entity the config no longer has is removed with an empty retained
    /// payload, so Home Assistant drops the entity.
    fn on_discovery(&self, topic: &str, payload: &[u8]) {
        if payload.is_empty() {
            return;
        }
        let status = self.status.current();
        let images = self.cfg.snapshot_base_url.is_some();
        let current =
            topics::discovery_messages(&self.topics, &status.config, &self.cfg.box_id, images);
        if current.iter().any(|(t, _, _)| t == topic) {
            return;
        }
        tracing::info!(
            topic,
            "removing a Home Assistant entity that is no longer configured"
        );
        if let Err(e) = self
            .client
            .try_publish(topic, QoS::AtLeastOnce, true, Vec::new())
        {
            tracing::warn!(topic, error = %e, "MQTT discovery removal dropped");
        }
    }

    fn forward(&self, msg: Incoming, topic: &str) {
        if self.commands.try_send(msg).is_err() {
            tracing::warn!(topic, "MQTT command dropped: too many waiting");
        }
    }
}

/// Sends commands and input levels to the control task, with the identity's role rules.
async fn command_worker(cfg: Arc<MqttConfig>, handles: Handles, mut rx: mpsc::Receiver<Incoming>) {
    while let Some(msg) = rx.recv().await {
        let control = &handles.control;
        match msg {
            Incoming::Input(alarm, on) => {
                let status = handles.status.current();
                let Some(index) = status.config.alarms.iter().position(|a| a.id == alarm) else {
                    tracing::warn!(alarm = %alarm, "MQTT input for an alarm that is not configured");
                    continue;
                };
                let _ = control.send(Command::AlarmInput { alarm: index, on }).await;
            }
            Incoming::Command(cmd) => {
                if cfg.role == Role::Viewer {
                    tracing::warn!(command = ?cmd, "MQTT command refused: mqtt.role is viewer");
                    continue;
                }
                let result = match &cmd {
                    MqttCommand::Select(s) => control.select(s.clone()).await,
                    MqttCommand::Trigger(a, hold) => {
                        let hold = hold.map(|s| Duration::from_secs(u64::from(s)));
                        control.trigger(a, hold).await
                    }
                    MqttCommand::Clear(a) => control.clear(a).await,
                    MqttCommand::Ack(a) => control.ack(a).await.map(|_| ()),
                };
                if let Err(e) = result {
                    tracing::warn!(command = ?cmd, error = %e, "MQTT command refused");
                }
            }
        }
    }
}

/// Publishes retained state whenever it changes (and all of it after a reconnect), events
/// on every view change, and discovery after a reconnect, a Home Assistant restart or a
/// config change. Retained topics of streams, alarms and entities that left the config get an
/// empty retained payload, which deletes them on the broker (and the entity in Home
/// Assistant).
async fn publish_loop(
    cfg: Arc<MqttConfig>,
    topics: Topics,
    client: AsyncClient,
    handles: Handles,
    (mut views, mut prev): (watch::Receiver<ActiveView>, ActiveView),
    mut republish: watch::Receiver<u64>,
) {
    let mut sent: HashMap<String, Vec<u8>> = HashMap::new();
    // Discovery configs published, by topic; `None` until the first connect.
    let mut discovered: Option<HashMap<String, Vec<u8>>> = None;
    let mut config_seen: Option<Arc<crate::handles::Status>> = None;
    let mut tick = tokio::time::interval(STATE_PERIOD);
    loop {
        tokio::select! {
            r = views.changed() => {
                if r.is_err() { break; }
                let view = views.borrow_and_update().clone();
                for ev in topics::events_between(&prev, &view) {
                    let body = ev.to_string();
                    if let Err(e) = client.try_publish(topics.events(), QoS::AtLeastOnce, false, body) {
                        tracing::warn!(error = %e, "MQTT event dropped");
                    }
                }
                prev = view;
            }
            _ = tick.tick() => {}
            r = republish.changed() => {
                if r.is_err() { break; }
                republish.borrow_and_update();
                sent.clear();
                if cfg.discovery {
                    // Everything again, as if nothing had been published.
                    discovered.get_or_insert_with(HashMap::new).clear();
                    config_seen = None;
                }
            }
        }
        let status = handles.status.current();
        if let Some(disc) = &mut discovered
            && !config_seen
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(c, &status))
        {
            let images = cfg.snapshot_base_url.is_some();
            let msgs = topics::discovery_messages(&topics, &status.config, &cfg.box_id, images);
            sync_retained(&client, disc, msgs, "discovery");
            config_seen = Some(Arc::clone(&status));
        }
        let streams: Vec<(String, &'static str)> = status
            .config
            .streams
            .iter()
            .map(|s| {
                let state = status
                    .stream(&s.id)
                    .map_or("disabled", |r| r.stats.state().as_str());
                (s.id.clone(), state)
            })
            .collect();
        let msgs =
            topics::state_messages(&topics, &prev, &streams, cfg.snapshot_base_url.as_deref());
        sync_retained(&client, &mut sent, msgs, "state");
    }
}

/// Publishes the messages of `msgs` that differ from `sent`, and an empty retained payload
/// on every topic of `sent` that `msgs` no longer has (a stream or alarm removed); `sent`
/// then holds what was queued. A message the full queue refused is tried on the next call.
fn sync_retained(
    client: &AsyncClient,
    sent: &mut HashMap<String, Vec<u8>>,
    msgs: Vec<topics::Message>,
    what: &'static str,
) {
    let gone: Vec<String> = sent
        .keys()
        .filter(|t| !msgs.iter().any(|(m, _, _)| m == *t))
        .cloned()
        .collect();
    for t in gone {
        match client.try_publish(&t, QoS::AtLeastOnce, true, Vec::new()) {
            Ok(()) => {
                tracing::info!(topic = %t, what, "MQTT topic of a removed entity cleared");
                sent.remove(&t);
            }
            Err(e) => tracing::warn!(topic = %t, what, error = %e, "MQTT removal dropped"),
        }
    }
    for (t, p, retain) in msgs {
        if sent.get(&t) == Some(&p) {
            continue;
        }
        match client.try_publish(&t, QoS::AtLeastOnce, retain, p.clone()) {
            Ok(()) => {
                sent.insert(t, p);
            }
            Err(e) => tracing::warn!(topic = %t, what, error = %e, "MQTT message dropped"),
        }
    }
}
