//! The RTSP ingest through the impairing relay (`edgecam_testkit::impair`) between the
//! GStreamer test server and the supervisor: a jittery path stays live with every frame in
//! order, UDP with loss keeps delivering, and an outage sends the stream to backoff from
//! which it comes back live. Behaviour only; `edgecam-bench impair` measures the numbers.

mod support;

use edgecam::backoff::BackoffConfig;
use edgecam::clock::{Clock, SystemClock};
use edgecam::config::schema::Transport;
use edgecam::ingest::rtsp::RtspSource;
use edgecam::ingest::stats::StreamState;
use edgecam::ingest::supervisor::{SupervisorConfig, SupervisorHandle, spawn_supervisor};
use edgecam_testkit::impair::{Impairment, Relay, RelayOpts};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::{RtspServer, ServerOpts, SharedSink, StateLog, wait_until};

/// Generous: the 2-core CI box may be busy compiling.
const DEADLINE: Duration = Duration::from_secs(30);

/// 50 ms ± 40 ms each way: the jitter of the benchmark.
fn jitter() -> Impairment {
    Impairment {
        delay: Duration::from_millis(50),
        jitter: Duration::from_millis(40),
        ..Impairment::default()
    }
}

fn supervise(url: &str, transport: Transport) -> (SupervisorHandle, SharedSink, StateLog) {
    let source = RtspSource::new(url, transport).expect("valid test url");
    let cfg = SupervisorConfig {
        connect_timeout: Duration::from_secs(10),
        stall_timeout: Duration::from_secs(5),
        backoff: BackoffConfig {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(2),
            stable_after: Duration::from_secs(30),
        },
        probe_every: Duration::from_millis(250),
        first_epoch: 0,
        failed_retry: Duration::from_secs(300),
    };
    let sink = SharedSink::default();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let h = spawn_supervisor("cam".into(), Arc::new(source), cfg, sink.clone(), clock);
    let log = StateLog::record(&h.stats());
    (h, sink, log)
}

async fn relay(server: &RtspServer, down: Impairment, up: Impairment) -> Relay {
    let upstream = SocketAddr::from(([127, 0, 0, 1], server.port()));
    let opts = RelayOpts {
        down,
        up,
        ..RelayOpts::both(upstream, Impairment::default())
    };
    Relay::spawn(opts).await.expect("relay starts")
}

/// Waits until `sink` holds `n` frames; `why` says what was seen if it does not.
async fn frames(sink: &SharedSink, n: usize, why: impl FnOnce() -> String) {
    assert!(
        wait_until(DEADLINE, || sink.len() >= n).await,
        "not {n} frames: {}",
        why()
    );
}

/// Every frame a consumer sees: keyframe first, sequence without gaps, receive times and
/// pts that never go back, within each epoch.
fn check_in_order(sink: &SharedSink) {
    let frames = sink.snapshot();
    assert!(frames[0].meta.info.keyframe, "first frame is a keyframe");
    for (i, w) in frames.windows(2).enumerate() {
        let (a, b) = (&w[0].meta, &w[1].meta);
        assert_eq!(b.seq, a.seq + 1, "sequence gap at {i}");
        assert!(
            b.info.recv_mono_ns >= a.info.recv_mono_ns,
            "receive time went back"
        );
        if a.info.epoch == b.info.epoch {
            assert!(b.info.pts_us >= a.info.pts_us, "pts went back at {i}");
        } else {
            assert!(b.info.keyframe, "a new session starts with a keyframe");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jittery_path_stays_live_and_delivers_every_frame_in_order() {
    let server = RtspServer::start(ServerOpts::default());
    let relay = relay(&server, jitter(), jitter()).await;
    let (h, sink, _) = supervise(&relay.url(0), Transport::Tcp);
    let stats = h.stats();
    frames(&sink, 100, || {
        format!("through jitter: {:?}", stats.snapshot())
    })
    .await;
    check_in_order(&sink);
    let s = stats.snapshot();
    assert_eq!((s.state, s.reconnects, s.stalls), (StreamState::Live, 0, 0));
    assert_eq!(
        (s.lost_packets, s.incomplete_frames),
        (0, 0),
        "TCP loses nothing"
    );
    assert!(
        relay.stats().tcp_bytes_down > 100_000,
        "{:?}",
        relay.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_through_loss_and_jitter_keeps_delivering_frames_in_order() {
    let server = RtspServer::start(ServerOpts::default());
    let lossy = Impairment {
        loss: 0.02,
        ..jitter()
    };
    let relay = relay(&server, lossy, jitter()).await;
    let (h, sink, _) = supervise(&relay.url(0), Transport::Udp);
    let stats = h.stats();
    let why = || format!("over lossy UDP: {:?} {:?}", stats.snapshot(), relay.stats());
    frames(&sink, 100, why).await;
    check_in_order(&sink);
    let r = relay.stats();
    assert_eq!(r.udp_flows, 2, "RTP and RTCP went through the relay: {r:?}");
    assert!(r.datagrams_down > 200 && r.datagrams_lost > 0, "{r:?}");
    // The loss is counted per stream: the relay dropped RTP datagrams, the stream saw gaps.
    let s = stats.snapshot();
    assert!(
        s.lost_packets > 0 && s.incomplete_frames > 0,
        "loss not counted: {s:?} {r:?}"
    );
    assert_eq!(s.transport, Some("udp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_goes_to_backoff_and_comes_back_live() {
    let server = RtspServer::start(ServerOpts::default());
    let relay = relay(&server, Impairment::default(), Impairment::default()).await;
    let (h, sink, log) = supervise(&relay.url(0), Transport::Tcp);
    let stats = h.stats();
    frames(&sink, 25, || format!("{:?}", stats.snapshot())).await;
    relay.outage(Duration::from_secs(3));
    assert!(
        wait_until(DEADLINE, || stats.reconnects() >= 2).await,
        "no retries during the outage: {:?}",
        stats.snapshot()
    );
    let during = stats.snapshot();
    assert!(
        during
            .last_error
            .as_deref()
            .is_some_and(|e| ["refused", "closed", "broke", "ended"]
                .iter()
                .any(|w| e.contains(w))),
        "{during:?}"
    );
    assert!(
        wait_until(DEADLINE, || stats.state() == StreamState::Live
            && stats.epoch() >= 2
            && sink
                .snapshot()
                .last()
                .is_some_and(|f| f.meta.info.epoch >= 2))
        .await,
        "not live again after the outage: {:?}",
        stats.snapshot()
    );
    assert!(
        log.find(0, &[StreamState::Live]).is_some() && log.states().contains(&StreamState::Backoff),
        "{:?}",
        log.states()
    );
    check_in_order(&sink);
    assert!(relay.returned_at().is_some());
}
