//! The shipped systemd files work: the unit passes `systemd-analyze verify` and scores at
//! most 2.5 in `systemd-analyze security` (the test prints the score); the sysusers.d and
//! tmpfiles.d files create the user, its groups and the directories in a temporary root; the
//! udev rule hands GPIO chips to group `gpio`.
//!
//! The systemd tools are required, not optional, like every other suite's prerequisites: a
//! missing `systemd-analyze`, `systemd-sysusers` or `systemd-tmpfiles` fails the test with the
//! Debian package to install (`systemd`), and the tmpfiles check fails unless it runs as root
//! (tmpfiles chowns the directories; CI runs as root).

use std::path::{Path, PathBuf};
use std::process::Command;

fn unit_source() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/edgecam.service");
    std::fs::read_to_string(&path).expect("systemd/edgecam.service is in the tree")
}

/// The unit, with `ExecStart=` pointing at the freshly built binary (verify insists that the
/// executable exists), in a temporary directory.
fn unit_copy(dir: &Path) -> PathBuf {
    let unit = unit_source().replace(
        "/usr/bin/edgecam ",
        &format!("{} ", env!("CARGO_BIN_EXE_edgecam")),
    );
    assert!(
        unit.contains(env!("CARGO_BIN_EXE_edgecam")),
        "ExecStart was rewritten"
    );
    let path = dir.join("edgecam.service");
    std::fs::write(&path, unit).expect("write unit copy");
    path
}

/// The Debian package with `systemd-analyze`, `systemd-sysusers` and `systemd-tmpfiles`.
const SYSTEMD_PACKAGE: &str = "systemd";

/// Fails the test, naming the package to install, unless `tool --version` runs.
#[track_caller]
fn require_tool(tool: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "{tool} is missing: apt-get install {SYSTEMD_PACKAGE}");
}

#[test]
fn the_unit_declares_the_appliance_settings() {
    let unit = unit_source();
    for line in [
        "Type=notify",
        "WatchdogSec=10s",
        "Restart=on-failure",
        "RestartSec=2s",
        "StateDirectory=edgecam",
        "ConfigurationDirectory=edgecam",
        "SupplementaryGroups=gpio video",
        "DevicePolicy=closed",
        "DeviceAllow=char-gpiochip rw",
        "DeviceAllow=char-video4linux rw",
        "CapabilityBoundingSet=\n",
        "NoNewPrivileges=true",
        "#StartLimitAction=reboot",
    ] {
        assert!(unit.contains(line), "unit lacks {line:?}");
    }
    assert!(
        !unit.lines().any(|l| l.starts_with("PrivateDevices")),
        "PrivateDevices would hide /dev/gpiochip*"
    );
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    require_tool("systemd-analyze");
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy(dir.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed:\n{stderr}");
    assert!(
        !stderr.contains("edgecam.service:"),
        "verify warned about the unit:\n{stderr}"
    );
}

#[test]
fn systemd_analyze_security_scores_the_unit_as_hardened() {
    require_tool("systemd-analyze");
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy(dir.path());
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=25", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze security");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let score = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or("(no score line)");
    println!("{}", score.trim());
    assert!(
        out.status.success(),
        "exposure above 2.5:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Installs `file` (relative to `systemd/`) at `dest` under a temporary root.
fn install_into(root: &Path, file: &str, dest: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(file);
    let to = root.join(dest);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(src, to).unwrap();
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn sysusers_and_tmpfiles_create_the_user_groups_and_directories() {
    require_tool("systemd-sysusers");
    require_tool("systemd-tmpfiles");
    assert!(
        running_as_root(),
        "this test must run as root: systemd-tmpfiles chowns the directories to edgecam"
    );
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    install_into(
        r,
        "sysusers.d/edgecam.conf",
        "usr/lib/sysusers.d/edgecam.conf",
    );
    install_into(
        r,
        "tmpfiles.d/edgecam.conf",
        "usr/lib/tmpfiles.d/edgecam.conf",
    );
    let ok = Command::new("systemd-sysusers")
        .arg(format!("--root={}", r.display()))
        .status()
        .unwrap();
    assert!(ok.success(), "systemd-sysusers");
    let passwd = std::fs::read_to_string(r.join("etc/passwd")).unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with("edgecam:")),
        "{passwd}"
    );
    let group = std::fs::read_to_string(r.join("etc/group")).unwrap();
    for g in ["gpio", "video"] {
        let line = group
            .lines()
            .find(|l| l.starts_with(&format!("{g}:")))
            .unwrap_or_else(|| panic!("group {g}: {group}"));
        assert!(line.ends_with("edgecam"), "edgecam is in {g}: {line}");
    }
    let ok = Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", r.display()))
        .arg("--create")
        .status()
        .unwrap();
    assert!(ok.success(), "systemd-tmpfiles");
    assert!(r.join("etc/edgecam").is_dir());
    assert!(r.join("var/lib/edgecam").is_dir());
}

#[test]
fn the_udev_rule_gives_gpio_chips_to_group_gpio() {
    let rule = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/udev/60-edgecam-gpio.rules"),
    )
    .unwrap();
    let line = rule
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .expect("one rule");
    for part in [
        r#"KERNEL=="gpiochip*""#,
        r#"GROUP="gpio""#,
        r#"MODE="0660""#,
    ] {
        assert!(line.contains(part), "rule lacks {part}: {line}");
    }
}
