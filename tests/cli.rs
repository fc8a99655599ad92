//! The `edgecam` binary's command line, run as a real process.

use std::process::Command;

fn edgecam() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgecam"))
}

#[test]
fn check_config_accepts_the_reference_config() {
    let out = edgecam()
        .args(["check-config", "config.example.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_config_lists_every_problem_with_its_field_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[ring]
bytes_per_stream = 0

[[streams]]
id = "cam1"
kind = "rtsp"
url = "http://camera/stream"

[[streams]]
id = "cam1"
kind = "testpattern"

[[alarms]]
id = "door"
stream = "nowhere"
"#,
    )
    .unwrap();
    let out = edgecam().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for field in [
        "ring.bytes_per_stream",
        "streams[0].url",
        "streams[1].id",
        "alarms[0].stream",
    ] {
        assert!(err.contains(field), "missing {field} in:\n{err}");
    }
    assert!(err.contains("4 problem(s)"), "count in:\n{err}");
}

#[test]
fn check_config_reports_a_missing_file() {
    let out = edgecam()
        .args(["check-config", "/nonexistent/edgecam.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/edgecam.toml"));
}

#[test]
fn run_with_an_invalid_config_exits_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[streams]]\nid = \"x\"\nkind = \"rtps\"\n").unwrap();
    let out = edgecam()
        .arg("run")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("streams[0].kind"), "stderr:\n{err}");
}

/// Runs `edgecam hash-password` with `stdin` as its input.
fn hash_password(stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = edgecam()
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the edgecam binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn hash_password_prints_a_config_line_that_verifies() {
    let out = hash_password("correct horse battery\n");
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    let hash = line
        .trim()
        .strip_prefix("admin_password_hash = \"")
        .and_then(|h| h.strip_suffix('"'))
        .unwrap_or_else(|| panic!("a config line: {line}"));
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(edgecam::secret::verify_password(
        "correct horse battery",
        hash
    ));
    assert!(!edgecam::secret::verify_password("correct horse", hash));
    // The line pastes into a config as is.
    let cfg: toml::Value = toml::from_str(&line).unwrap();
    assert_eq!(cfg["admin_password_hash"].as_str(), Some(hash));
}

#[test]
fn hash_password_refuses_a_short_password() {
    let out = hash_password("short\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 8 characters"), "{err}");
}

#[test]
fn demo_refuses_a_hostname_that_is_not_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = edgecam()
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--hostname",
            "http://box.example",
        ])
        .arg("--state-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("web.hostnames[0]"), "{err}");
}
