//! The `edgecam-bench` program itself: it names its benchmarks, and without the daemon beside
//! it, it says how to get one instead of failing somewhere later.
//!
//! (This test also makes `cargo test --workspace` build `target/<profile>/edgecam-bench`,
//! which CI's soak stage runs.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BENCH: &str = env!("CARGO_BIN_EXE_edgecam-bench");

fn run(exe: &Path, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        // Started by cargo, the bench would build the daemon first; this is the direct start.
        .env_remove("CARGO")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
}

#[test]
fn help_lists_every_benchmark() {
    let out = run(Path::new(BENCH), &["--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["ingest", "e2e", "soak", "browser", "ring-instr"] {
        assert!(help.contains(cmd), "--help does not list {cmd}:\n{help}");
    }
}

#[test]
fn a_missing_daemon_is_a_clear_error() {
    // A copy of the bench in a directory of its own: no `edgecam` beside it.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lonely-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("edgecam-bench");
    if std::fs::hard_link(BENCH, &exe).is_err() {
        std::fs::copy(BENCH, &exe).unwrap();
    }
    let out = run(&exe, &["soak", "--seconds", "10"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{} not found", dir.join("edgecam").display())),
        "{err}"
    );
    assert!(
        err.contains("cargo run --release -p edgecam-bench"),
        "{err}"
    );
    assert!(err.contains("cargo build --release"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
