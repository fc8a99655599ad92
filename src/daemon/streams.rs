//! The set of running streams: one ring and one supervisor per enabled stream, changed live.
//!
//! [`StreamSet::apply`] diffs a new stream list against the running one: a stream whose config
//! is unchanged keeps running untouched; a new one is started; a removed one is stopped; a
//! changed one is restarted with a fresh ring. Other streams never notice.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::StreamConfig;
use crate::health::STREAM_BUDGET;
use crate::health::beacon::{BeaconGuard, BeaconTable};
use crate::ingest::sources::source_for;
use crate::ingest::stats::StreamStats;
use crate::ingest::supervisor::{SupervisorConfig, SupervisorHandle, spawn_supervisor};
use crate::ring::{FrameRing, RingError, RingSpec};

/// One running stream.
pub struct StreamEntry {
    /// The config it runs with; compared on every apply to decide whether to restart it.
    pub config: StreamConfig,
    /// The stream's frame ring; readers (the live push, snapshots) hold clones of it.
    pub ring: Arc<FrameRing>,
    /// The supervisor task; dropping it stops the stream.
    supervisor: SupervisorHandle,
    /// The stream loop's watchdog slot, freed when the stream stops (`None` if the table was
    /// full; the loop then runs unwatched, which is logged).
    _beacon: Option<BeaconGuard>,
    /// The camera's sub stream (`sub_url`), run beside the main one with its own ring and
    /// supervisor; `None` when the camera has none.
    pub sub: Option<SubEntry>,
}

/// A camera's running sub stream: pictures (snapshots, MJPEG, JPEG clients) decode it.
pub struct SubEntry {
    /// Its frame ring.
    pub ring: Arc<FrameRing>,
    /// Its supervisor; dropping it stops the sub stream.
    supervisor: SupervisorHandle,
    /// Its loop's watchdog slot, like the main stream's.
    _beacon: Option<BeaconGuard>,
}

impl SubEntry {
    /// The sub stream's live statistics.
    pub fn stats(&self) -> Arc<StreamStats> {
        self.supervisor.stats()
    }
}

impl std::fmt::Debug for SubEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubEntry")
            .field("ring", &self.ring.stats())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for StreamEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEntry")
            .field("id", &self.config.id)
            .field("ring", &self.ring.stats())
            .finish_non_exhaustive()
    }
}

impl StreamEntry {
    /// The stream's live statistics.
    pub fn stats(&self) -> Arc<StreamStats> {
        self.supervisor.stats()
    }
}

/// All running streams, by id, in config order for listing.
#[derive(Debug)]
pub struct StreamSet {
    /// Running streams by id.
    entries: BTreeMap<String, StreamEntry>,
    /// Ids in config order, so status pages list streams the way the installer wrote them.
    order: Vec<String>,
    /// Ring size used for every stream.
    spec: RingSpec,
    /// Clock handed to every supervisor.
    clock: Arc<dyn Clock>,
    /// Where each supervisor's liveness beacon is registered.
    beacons: Arc<BeaconTable>,
}

impl StreamSet {
    /// An empty set whose streams will get rings of `spec` and beacons in `beacons`.
    pub fn new(spec: RingSpec, clock: Arc<dyn Clock>, beacons: Arc<BeaconTable>) -> Self {
        StreamSet {
            entries: BTreeMap::new(),
            order: Vec::new(),
            spec,
            clock,
            beacons,
        }
    }

    /// Brings the running set in line with `streams` (disabled ones are not run) and a
    /// possibly new ring size. Returns the ids that were started or restarted.
    pub fn apply(
        &mut self,
        streams: &[StreamConfig],
        spec: RingSpec,
    ) -> Result<Vec<String>, RingError> {
        let spec_changed = spec != self.spec;
        self.spec = spec;
        let wanted: Vec<&StreamConfig> = streams.iter().filter(|s| s.enabled).collect();
        self.entries
            .retain(|id, _| wanted.iter().any(|s| &s.id == id));
        let mut started = Vec::new();
        for cfg in &wanted {
            let keep =
                !spec_changed && self.entries.get(&cfg.id).is_some_and(|e| e.config == **cfg);
            if keep {
                continue;
            }
            if self.entries.remove(&cfg.id).is_some() {
                tracing::info!(stream = %cfg.id, "stream config changed; restarting it");
            }
            let entry = self.start(cfg)?;
            self.entries.insert(cfg.id.clone(), entry);
            started.push(cfg.id.clone());
        }
        self.order = wanted.iter().map(|s| s.id.clone()).collect();
        Ok(started)
    }

    /// Starts one camera: its main stream and, with `sub_url`, its sub stream.
    fn start(&self, cfg: &StreamConfig) -> Result<StreamEntry, RingError> {
        let (ring, supervisor, beacon) = self.start_one(&cfg.id, cfg)?;
        let sub = match cfg.sub_stream() {
            Some(sub_cfg) => {
                let (ring, supervisor, beacon) =
                    self.start_one(&format!("{}/sub", cfg.id), &sub_cfg)?;
                Some(SubEntry {
                    ring,
                    supervisor,
                    _beacon: beacon,
                })
            }
            None => None,
        };
        tracing::info!(stream = %cfg.id, kind = ?cfg.kind, sub = sub.is_some(), "stream started");
        Ok(StreamEntry {
            config: cfg.clone(),
            ring,
            supervisor,
            _beacon: beacon,
            sub,
        })
    }

    /// Starts one ingest loop named `name` (in logs and the watchdog): a fresh ring and a
    /// supervisor writing into it.
    fn start_one(
        &self,
        name: &str,
        cfg: &StreamConfig,
    ) -> Result<(Arc<FrameRing>, SupervisorHandle, Option<BeaconGuard>), RingError> {
        let (writer, ring) = FrameRing::new(self.spec)?;
        let source = source_for(cfg);
        let supervisor = spawn_supervisor(
            name.to_string(),
            source,
            SupervisorConfig::from_stream(cfg),
            writer,
            Arc::clone(&self.clock),
        );
        let beacon_name = format!("stream:{name}");
        let beacon = match self
            .beacons
            .register(&beacon_name, STREAM_BUDGET, self.clock.mono_ns())
        {
            Ok(guard) => {
                supervisor.stats().attach_beacon(guard.beacon());
                Some(guard)
            }
            Err(e) => {
                tracing::warn!(stream = %name, error = %e, "stream loop not watched");
                None
            }
        };
        Ok((ring, supervisor, beacon))
    }

    /// A running stream by id.
    pub fn get(&self, id: &str) -> Option<&StreamEntry> {
        self.entries.get(id)
    }

    /// Running streams in config order.
    pub fn iter(&self) -> impl Iterator<Item = &StreamEntry> {
        self.order.iter().filter_map(|id| self.entries.get(id))
    }

    /// Number of running streams.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no stream runs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Stops every stream and waits for their tasks to end.
    pub async fn stop_all(&mut self) {
        self.order.clear();
        let entries = std::mem::take(&mut self.entries);
        for (_, e) in entries {
            if let Some(sub) = e.sub {
                sub.supervisor.stop().await;
            }
            e.supervisor.stop().await;
        }
    }
}
