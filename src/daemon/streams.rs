//! The set of running streams: one ring and one supervisor per enabled stream, changed live.
//!
//! [`StreamSet::apply`] diffs a new stream list against the running one: a stream whose config
//! is unchanged keeps running untouched; a new one is started; a removed one is stopped; a
//! changed one is restarted with a fresh ring. Other streams never notice.
//!
//! A main stream's ring is sized when the stream starts ([`crate::ring::sizing`]): from its
//! measured rates in the [`RateBook`] so that it holds `clips.pre_s` (while clips are on), else
//! `[ring]` as configured. A sub stream is never recorded and gets the configured ring.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::{Config, RingConfig, StreamConfig};
use crate::health::STREAM_BUDGET;
use crate::health::beacon::{BeaconGuard, BeaconTable};
use crate::ingest::sources::source_for;
use crate::ingest::stats::StreamStats;
use crate::ingest::supervisor::{SupervisorConfig, SupervisorHandle, spawn_supervisor};
use crate::ring::rates::RateBook;
use crate::ring::sizing::size_ring;
use crate::ring::{FrameRing, RingError, RingSpec};

/// What decides the rings' sizes: `[ring]` and, while clips are on, `clips.pre_s`.
#[derive(Debug, Clone, PartialEq)]
pub struct RingPlan {
    /// The floor and the cap of every ring.
    pub ring: RingConfig,
    /// The pre-roll a main stream's ring must hold; `None` while clips are off.
    pub pre_s: Option<u32>,
}

impl RingPlan {
    /// The plan of `config`, its `[ring]` checked as a ring would be.
    pub fn of(config: &Config) -> Result<RingPlan, RingError> {
        RingSpec::from_config(&config.ring)?;
        Ok(RingPlan {
            ring: config.ring.clone(),
            pre_s: config.clips.enabled.then_some(config.clips.pre_s),
        })
    }
}

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
    /// How rings are sized for the streams started next.
    plan: RingPlan,
    /// The streams' measured rates that size their rings.
    rates: Arc<RateBook>,
    /// Clock handed to every supervisor.
    clock: Arc<dyn Clock>,
    /// Where each supervisor's liveness beacon is registered.
    beacons: Arc<BeaconTable>,
}

impl StreamSet {
    /// An empty set whose streams will get rings sized by `plan` from `rates`, and beacons
    /// in `beacons`.
    pub fn new(
        plan: RingPlan,
        rates: Arc<RateBook>,
        clock: Arc<dyn Clock>,
        beacons: Arc<BeaconTable>,
    ) -> Self {
        StreamSet {
            entries: BTreeMap::new(),
            order: Vec::new(),
            plan,
            rates,
            clock,
            beacons,
        }
    }

    /// Brings the running set in line with `streams` (disabled ones are not run) and a
    /// possibly new ring plan: a stream whose config is the same keeps running unless the new
    /// plan gives it a ring of another size. Returns the ids that were started or restarted.
    pub fn apply(
        &mut self,
        streams: &[StreamConfig],
        plan: RingPlan,
    ) -> Result<Vec<String>, RingError> {
        let plan_changed = plan != self.plan;
        self.plan = plan;
        let wanted: Vec<&StreamConfig> = streams.iter().filter(|s| s.enabled).collect();
        self.entries
            .retain(|id, _| wanted.iter().any(|s| &s.id == id));
        let mut started = Vec::new();
        for cfg in &wanted {
            let keep = match self.entries.get(&cfg.id) {
                Some(e) if e.config == **cfg => !plan_changed || self.same_rings(e)?,
                _ => false,
            };
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

    /// True when `e`'s rings already have the sizes the plan in force gives them.
    fn same_rings(&self, e: &StreamEntry) -> Result<bool, RingError> {
        let sub_same = match &e.sub {
            Some(sub) => sub.ring.spec() == RingSpec::from_config(&self.plan.ring)?,
            None => true,
        };
        Ok(sub_same && e.ring.spec() == self.main_spec(&e.config.id)?)
    }

    /// The ring of main stream `id`: sized from its measured rates for the pre-roll.
    fn main_spec(&self, id: &str) -> Result<RingSpec, RingError> {
        let measured = self.rates.get(id);
        Ok(size_ring(&self.plan.ring, self.plan.pre_s, measured.as_ref())?.spec)
    }

    /// Logs how main stream `id`'s new ring of `spec` was sized, when its rates made it
    /// larger than configured or the cap kept it short.
    fn log_sizing(&self, id: &str, spec: RingSpec) {
        let (Some(m), Some(pre_s)) = (self.rates.get(id), self.plan.pre_s) else {
            return;
        };
        let Ok(sized) = size_ring(&self.plan.ring, Some(pre_s), Some(&m)) else {
            return;
        };
        if sized.capped {
            tracing::warn!(
                stream = %id, kbps = m.kbps(), pre_s, ring_bytes = spec.arena_bytes,
                wanted_bytes = sized.wanted_bytes,
                "ring capped by ring.max_bytes_per_stream: it cannot hold clips.pre_s of this camera"
            );
        } else if spec.arena_bytes as u64 > self.plan.ring.bytes_per_stream {
            tracing::info!(
                stream = %id, kbps = m.kbps(), pre_s, ring_bytes = spec.arena_bytes,
                slots = spec.slots, "ring sized from the measured bitrate"
            );
        }
    }

    /// Starts one camera: its main stream and, with `sub_url`, its sub stream.
    fn start(&self, cfg: &StreamConfig) -> Result<StreamEntry, RingError> {
        let spec = self.main_spec(&cfg.id)?;
        self.log_sizing(&cfg.id, spec);
        let (ring, supervisor, beacon) = self.start_one(&cfg.id, cfg, spec)?;
        let sub = match cfg.sub_stream() {
            Some(sub_cfg) => {
                let spec = RingSpec::from_config(&self.plan.ring)?;
                let (ring, supervisor, beacon) =
                    self.start_one(&format!("{}/sub", cfg.id), &sub_cfg, spec)?;
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

    /// Starts one ingest loop named `name` (in logs and the watchdog): a fresh ring of `spec`
    /// and a supervisor writing into it.
    fn start_one(
        &self,
        name: &str,
        cfg: &StreamConfig,
        spec: RingSpec,
    ) -> Result<(Arc<FrameRing>, SupervisorHandle, Option<BeaconGuard>), RingError> {
        let (writer, ring) = FrameRing::new(spec)?;
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
