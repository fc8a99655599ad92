//! Event clips (issue 19) across a power cut, with the real binary: `edgecam run` records the
//! clip of an HTTP-raised alarm from an RTSP camera (gst-rtsp-server), is killed with SIGKILL
//! mid-clip, and the clip file it leaves plays in `ffprobe` up to its last complete fragment.
//! A torn last write (half a fragment, as a power cut mid-write leaves) is added to it; the
//! restarted binary on the same state directory lists the clip as `partial` with the duration
//! and size of what plays (the torn tail cut off), its index says the same, and the next
//! alarm's clip is written whole.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::daemon_run::DaemonRun as Run;
use support::{ServerOpts, tools::free_port};

/// Deadline of every wait.
const DEADLINE: Duration = Duration::from_secs(40);
/// The camera's frame rate and GOP: a keyframe a second, so a write a second.
const FPS: u32 = 25;
/// The operator's token.
const TOKEN: &str = "power-cut-operator-0123456789";

/// The box's config: one RTSP camera, a transparent HTTP alarm `door` on it, clips with 2 s
/// before and 1 s after.
fn config(state: &Path, port: u16, url: &str) -> String {
    format!(
        "[web]\nlisten = \"127.0.0.1:{port}\"\nhttps = false\n\n\
         [[web.tokens]]\nname = \"op\"\ntoken = \"{TOKEN}\"\nrole = \"admin\"\n\n\
         [paths]\nstate_dir = \"{}\"\n\n\
         [clips]\npre_s = 2\npost_s = 1\nmax_s = 60\nmin_free_bytes = 0\n\n\
         [[streams]]\nid = \"cam\"\nkind = \"rtsp\"\nurl = \"{url}\"\n\n\
         [[alarms]]\nid = \"door\"\nstream = \"cam\"\nmode = \"transparent\"\n",
        state.display()
    )
}

/// The HTTP API of one run.
struct Api {
    /// `http://127.0.0.1:<port>`.
    base: String,
    /// The client.
    http: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    async fn alarm(&self, what: &str) {
        let r = self
            .http
            .post(format!("{}/api/alarms/door/{what}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("the alarm request");
        assert_eq!(r.status(), 200, "{what}");
    }

    /// Waits until `f` holds of `GET path`; returns that body.
    async fn wait(&self, path: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + DEADLINE;
        let mut last = Value::Null;
        loop {
            if let Some(v) = self.get(path).await {
                if f(&v) {
                    return v;
                }
                last = v;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}: {last}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the camera is live with `frames` stored.
    async fn live(&self, frames: u64) {
        self.wait("/api/status", "the camera live", |st| {
            st["streams"][0]["state"] == "live"
                && st["streams"][0]["frames"].as_u64() >= Some(frames)
        })
        .await;
    }
}

/// The clips of `/api/clips` with `id`.
fn clip<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list["clips"].as_array()?.iter().find(|c| c["id"] == id)
}

/// The index line of clip `id`.
fn index_entry(dir: &Path, id: &str) -> Value {
    let text = std::fs::read_to_string(dir.join("index.json")).expect("the clip index");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no index entry {id}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clip_cut_by_kill_9_plays_to_its_last_fragment_and_is_listed_after_a_restart() {
    let camera = support::start_rtsp(ServerOpts {
        width: 320,
        height: 240,
        fps: FPS,
        gop: FPS,
        ..ServerOpts::default()
    })
    .await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let state = tmp.path().join("state");
    let clips: PathBuf = state.join("clips");
    let port = free_port();
    let config_file = tmp.path().join("config.toml");
    std::fs::write(&config_file, config(&state, port, &camera.url(0))).expect("config");
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };

    let first = Run::start(&config_file);
    api.live(u64::from(FPS) * 3).await;
    api.alarm("trigger").await;
    // A few fragments written, then the power goes.
    let list = api
        .wait("/api/clips", "a clip 4 s long", |l| {
            l["clips"][0]["state"] == "recording"
                && l["clips"][0]["duration_ms"].as_u64() >= Some(4000)
        })
        .await;
    first.kill9();
    let id = list["clips"][0]["id"].as_str().expect("an id").to_string();
    let seen_ms = list["clips"][0]["duration_ms"].as_u64().unwrap_or(0) as f64;
    let file = clips.join(format!("{id}.mp4"));
    let cut_len = std::fs::metadata(&file).expect("the clip file").len();
    let before = support::probe_video(&file);
    before.assert_playable("h264", 2 * FPS as usize, "the killed clip");
    let written = before.duration();
    // Written once per GOP (1 s): the file lags what the recorder had by at most that.
    assert!(
        written > seen_ms / 1000.0 - 1.5 && written < seen_ms / 1000.0 + 0.5,
        "the killed clip plays {written:.2} s; {seen_ms} ms had been recorded"
    );
    // A power cut mid-write: half a fragment after the last whole one.
    let mut torn = std::fs::read(&file).expect("read the clip");
    torn.extend_from_slice(&[
        0, 0, 0x40, 0, b'm', b'o', b'o', b'f', 0, 0, 0, 0x10, b'm', b'f',
    ]);
    std::fs::write(&file, &torn).expect("tear the clip");

    let second = Run::start(&config_file);
    api.live(10).await;
    let list = api
        .wait("/api/clips", "the clip listed", |l| clip(l, &id).is_some())
        .await;
    let c = clip(&list, &id).expect("the clip");
    assert_eq!(c["state"], "partial", "{c}");
    assert_eq!(
        c["bytes"].as_u64(),
        Some(cut_len),
        "the torn tail is cut off: {c}"
    );
    let listed = c["duration_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
    assert!(
        (listed - written).abs() < 0.05,
        "listed as {listed:.3} s, plays {written:.3} s: {c}"
    );
    assert_eq!(std::fs::metadata(&file).expect("the clip").len(), cut_len);
    let after = support::probe_video(&file);
    assert_eq!(
        after.packets, before.packets,
        "the recovered clip plays as it was written"
    );
    println!(
        "measured: killed clip {cut_len} bytes, plays {written:.3} s ({} packets), {seen_ms} ms recorded before the kill, listed {listed:.3} s",
        before.packets.len()
    );
    let e = index_entry(&clips, &id);
    assert_eq!(
        (&e["state"], e["bytes"].as_u64(), e["duration_ms"].as_u64()),
        (&c["state"], Some(cut_len), c["duration_ms"].as_u64()),
        "the index says what the API says"
    );

    // The next alarm's clip is written whole.
    api.live(u64::from(FPS) * 3).await;
    api.alarm("trigger").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    api.alarm("clear").await;
    let list = api
        .wait("/api/clips", "the next clip complete", |l| {
            l["clips"][0]["id"] != id.as_str() && l["clips"][0]["state"] == "complete"
        })
        .await;
    let next = &list["clips"][0];
    let next_id = next["id"].as_str().expect("an id");
    let p = support::probe_video(&clips.join(format!("{next_id}.mp4")));
    p.assert_playable("h264", 2 * FPS as usize, "the next clip");
    assert!(
        p.duration() > 4.0,
        "2 s before, 2 s up, 1 s after: {:.2} s",
        p.duration()
    );
    assert_eq!(list["total"], 2, "{list}");
    drop(second);
}
