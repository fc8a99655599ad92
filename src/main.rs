//! The `edgecam` command line: `run`, `demo` and `check-config`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Camera ingest, alarm call-up and low-latency live view for a small edge box.
#[derive(Debug, Parser)]
#[command(name = "edgecam", version, about)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon with a config file.
    Run {
        /// The provisioned config (a live config saved from the web page in the state
        /// directory takes precedence when it is valid).
        #[arg(long, default_value = "/etc/edgecam/config.toml")]
        config: PathBuf,
    },
    /// Run with built-in test-pattern cameras; needs no hardware and no config file.
    Demo {
        /// How many test-pattern streams.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16))]
        streams: u32,
        /// Address for the web page.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Directory for the state file (default: a fresh temporary directory).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Another name the page is opened by (a DNS name), besides the box's addresses,
        /// hostname and `<hostname>.local`; repeatable.
        #[arg(long = "hostname", value_name = "NAME")]
        hostnames: Vec<String>,
        /// Address for the HTTPS page (the box's own certificate).
        #[arg(long, default_value = "127.0.0.1:8443")]
        https_listen: SocketAddr,
    },
    /// Validate a config file: exit 0, or print every problem with its field path and exit 1.
    CheckConfig {
        /// The file to check.
        path: PathBuf,
    },
    /// Read a password from the first line of stdin and print its Argon2 hash, for
    /// `admin_password_hash` under `[web]` (to preset the admin password in a config or image).
    HashPassword,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { path } => match edgecam::config::check_file(&path) {
            Ok(_) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprint!("{}", edgecam::config::report(&errors));
                eprintln!("{}: {} problem(s)", path.display(), errors.len());
                ExitCode::FAILURE
            }
        },
        Command::HashPassword => exit_code(hash_password()),
        Command::Run { config } => exit_code(run_daemon(edgecam::daemon::Mode::Run { config })),
        Command::Demo {
            streams,
            listen,
            state_dir,
            hostnames,
            https_listen,
        } => exit_code(run_daemon(edgecam::daemon::Mode::Demo {
            streams,
            listen,
            state_dir,
            hostnames,
            https_listen,
        })),
    }
}

/// `edgecam hash-password`: one line of stdin in, the `admin_password_hash` line out.
fn hash_password() -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']);
    let hash = edgecam::secret::hash_password(password)?;
    println!("admin_password_hash = \"{hash}\"");
    Ok(())
}

/// Sets up logging and the tokio runtime, then runs the daemon until SIGTERM or Ctrl-C.
fn run_daemon(mode: edgecam::daemon::Mode) -> anyhow::Result<()> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("edgecam")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(edgecam::daemon::run(mode))?;
    Ok(())
}

/// Logs to stderr (journald picks it up), filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: the journal (and a test reading the log) gets plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgecam: {e:#}");
            ExitCode::FAILURE
        }
    }
}
