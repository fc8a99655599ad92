//! `mqtt`: two daemons and one Mosquitto broker on loopback. An alarm raised on box A (through
//! A's control handle, as the HTTP API does) reaches box B as an `mqtt` input on A's alarm
//! state topic and switches B's active stream; the time from A's raise to B's switch, per
//! round, as p50/p95 (target p95 < 100 ms). Both daemons run in this process, with two small
//! test-pattern streams each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use edgecam::clock::{Clock, SystemClock};
use edgecam::config::Config;
use edgecam::daemon::{Daemon, Serving};
use edgecam::handles::Handles;
use edgecam_testkit::mosquitto::Mosquitto;

/// Options of `edgecam-bench mqtt`.
#[derive(Debug, clap::Args)]
pub struct MqttArgs {
    /// Raise/clear rounds measured.
    #[arg(long, default_value_t = 50)]
    pub rounds: u32,
}

/// A box's config: cam1 (default) and cam2, a transparent alarm `door` on cam2 fed, when
/// `input` is set, by that topic.
fn config(
    dir: &std::path::Path,
    port: u16,
    box_id: &str,
    input: Option<&str>,
) -> anyhow::Result<Config> {
    let mut text = format!(
        r#"
[web]
listen = "127.0.0.1:0"
https_listen = "127.0.0.1:0"
[paths]
state_dir = "{}"
[ring]
bytes_per_stream = 1048576
slots_per_stream = 128
[select]
default = "cam1"
min_dwell_ms = 0
[[streams]]
id = "cam1"
kind = "testpattern"
width = 160
height = 96
fps = 5
[[streams]]
id = "cam2"
kind = "testpattern"
width = 160
height = 96
fps = 5
[[alarms]]
id = "door"
stream = "cam2"
mode = "transparent"
[mqtt]
host = "127.0.0.1"
port = {port}
box_id = "{box_id}"
discovery = false
reconnect_min_ms = 100
reconnect_max_ms = 500
"#,
        dir.display()
    );
    if let Some(topic) = input {
        text.push_str(&format!(
            "[[mqtt.inputs]]\nalarm = \"door\"\ntopic = \"{topic}\"\n"
        ));
    }
    let cfg: Config = toml::from_str(&text).context("bench config")?;
    edgecam::config::validate(&cfg).map_err(|e| anyhow::anyhow!("bench config: {e:?}"))?;
    Ok(cfg)
}

async fn start(cfg: Config) -> anyhow::Result<(Handles, Serving)> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let daemon = Daemon::start(cfg, clock).await?;
    Ok(Serving::start(daemon))
}

/// Waits until `h`'s active stream is `want`; the instant it saw it.
async fn wait_active(h: &Handles, want: &str, limit: Duration) -> anyhow::Result<Instant> {
    let mut rx = h.control.subscribe();
    let wait = async {
        loop {
            if rx.borrow_and_update().stream.as_deref() == Some(want) {
                return Instant::now();
            }
            if rx.changed().await.is_err() {
                return Instant::now();
            }
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .with_context(|| format!("box B never showed {want}"))
}

/// Runs the benchmark and prints its JSON line.
pub fn run(args: &MqttArgs) -> anyhow::Result<()> {
    let broker = Mosquitto::start(&[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = std::env::temp_dir().join(format!("edgecam-bench-mqtt-{}", std::process::id()));
    let (da, db) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir_all(&da)?;
    std::fs::create_dir_all(&db)?;
    let samples = rt.block_on(async {
        let (a, sa) = start(config(&da, broker.port, "boxa", None)?).await?;
        let (b, sb) = start(config(
            &db,
            broker.port,
            "boxb",
            Some("edgecam/boxa/alarms/door/state"),
        )?)
        .await?;
        // Both connected and B subscribed: one warm-up round.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut ms = Vec::new();
        for round in 0..=args.rounds {
            let t0 = Instant::now();
            a.control.trigger("door", None).await?;
            let t1 = wait_active(&b, "cam2", Duration::from_secs(10)).await?;
            a.control.clear("door").await?;
            wait_active(&b, "cam1", Duration::from_secs(10)).await?;
            if round > 0 {
                ms.push(t1.duration_since(t0).as_secs_f64() * 1000.0);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sa.shutdown().await;
        sb.shutdown().await;
        anyhow::Ok(ms)
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    let out = serde_json::json!({
        "bench": "mqtt",
        "what": "box A alarm raise -> box B active stream switch, via Mosquitto on loopback",
        "rounds": sorted.len(),
        "p50_ms": pct(0.5),
        "p95_ms": pct(0.95),
        "max_ms": pct(1.0),
        "target_p95_ms": 100,
    });
    println!("{out}");
    Ok(())
}
