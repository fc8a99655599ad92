//! `edgecam-bench`: benchmarks that need whole processes (the release daemon, the GStreamer
//! RTSP test server, ffmpeg) rather than functions, so they are a program and not a
//! criterion bench.
//!
//! ```sh
//! cargo build --release --bins
//! cargo run --release --bin edgecam-bench -- ingest
//! ```
//!
//! See `bench/README.md` for what each benchmark measures and the numbers of record.

mod browser;
mod child;
mod ingest;
mod procfs;
mod rates;
mod report;
mod server;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    child::catch_signals();
    let result = match &cli.command {
        Command::Ingest(args) => ingest::run(args),
        Command::Browser(args) => browser::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgecam-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
