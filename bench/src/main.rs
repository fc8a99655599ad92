//! `edgecam-bench`: benchmarks that need whole processes (the release daemon, the GStreamer
//! RTSP test server, ffmpeg) rather than functions, so they are a program and not a
//! criterion bench.
//!
//! ```sh
//! cargo run --release -p edgecam-bench -- ingest
//! ```
//!
//! Run that way, it first builds the `edgecam` daemon it measures in the same profile and
//! target directory (see `child::sibling_daemon`).
//!
//! See `bench/README.md` for what each benchmark measures and the numbers of record.

mod browser;
mod child;
mod clips;
mod declat;
mod e2e;
mod e2e_report;
mod http;
mod impair;
mod impair_report;
mod ingest;
mod mqtt;
mod peers;
mod plot;
mod procfs;
mod rates;
mod report;
mod ringinstr;
mod server;
mod soak;
mod stats;
mod wsclient;

use clap::{Parser, Subcommand};

/// Counts heap allocations while `clips` measures (off otherwise).
#[global_allocator]
static ALLOC: clips::CountingAlloc = clips::CountingAlloc;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// This package's directory in the source tree (`bench/`): the results of record, the fonts,
/// the MJPEG switcher.
pub fn bench_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `--out-dir`, or the results of record in the source tree (`bench/results`).
pub fn results_dir(out_dir: Option<&Path>) -> PathBuf {
    out_dir.map_or_else(|| bench_dir().join("results"), Path::to_path_buf)
}

/// The repository root: the browser test's scripts (`tests/browser`) and `docs/` for the plots.
pub fn repo_dir() -> &'static Path {
    bench_dir().parent().unwrap_or(bench_dir())
}

/// Whole-process benchmarks of edgecam.
#[derive(Debug, Parser)]
#[command(name = "edgecam-bench", version, about)]
struct Cli {
    /// Which benchmark.
    #[command(subcommand)]
    command: Command,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
enum Command {
    /// CPU and memory of the daemon ingesting N RTSP streams with no viewer, against one
    /// full ffmpeg decoder per stream (what OpenCV-based stream managers do).
    Ingest(ingest::IngestArgs),
    /// Live-view latency in headless Chromium (first frame, switch, alarm, ingest to paint)
    /// on the WebCodecs and JPEG paths, against `edgecam demo --streams 4`.
    Browser(browser::BrowserArgs),
    /// End to end against decode-all and a GStreamer MJPEG switcher, for several camera
    /// counts: CPU, RSS, first-frame, switch, alarm and ingest-to-receive latency.
    E2e(e2e::E2eArgs),
    /// A long run with one viewer while the server drops every stream periodically: RSS,
    /// open fds, threads and runtime tasks must stay flat.
    Soak(soak::SoakArgs),
    /// The daemon on a hostile network: one 1080p camera through an impairing relay (jitter,
    /// loss over UDP, a bandwidth cap, stalls, outages) with one viewer, two streams beside it.
    Impair(impair::ImpairArgs),
    /// Instructions per ingested 64 KiB frame (ring write + bookkeeping), by callgrind.
    RingInstr(ringinstr::RingInstrArgs),
    /// Frames Chromium's H.264 decoders hold before output (WebCodecs and MSE), for SPSs
    /// with and without `bitstream_restriction` (issue 16 item 4).
    DecoderLatency(declat::DeclatArgs),
    /// Two daemons and one Mosquitto broker: box A's alarm raise to box B's switch.
    Mqtt(mqtt::MqttArgs),
    /// CPU, write bandwidth and allocations of event-clip recording: N cameras' rings fed a
    /// 1080p25 clip, all alarmed at once, against the same feeding without recording.
    Clips(clips::ClipsArgs),
    /// The loop `ring-instr` runs under callgrind.
    #[command(hide = true)]
    RingLoop(ringinstr::RingLoopArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    child::catch_signals();
    let result = match &cli.command {
        Command::Ingest(args) => ingest::run(args),
        Command::Browser(args) => browser::run(args),
        Command::E2e(args) => e2e::run(args),
        Command::Soak(args) => soak::run(args),
        Command::Impair(args) => impair::run(args),
        Command::RingInstr(args) => ringinstr::run(args),
        Command::DecoderLatency(args) => declat::run(args),
        Command::Mqtt(args) => mqtt::run(args),
        Command::Clips(args) => clips::run(args),
        Command::RingLoop(args) => ringinstr::ring_loop(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgecam-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
