//! The Yocto layer (`yocto/meta-edgecam`) stays in step with the crate. Nothing here can run
//! bitbake, so this checks what would silently rot: the committed `edgecam-crates.inc` is what
//! `Cargo.lock` gives (and the generator's check mode really catches a stale file), every repo
//! file the recipe installs exists, the recipe's cargo features exist, its user and groups
//! match the sysusers.d file, its license checksum and version match Cargo.toml, and the layer
//! is declared for scarthgap.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The one command that rewrites the .inc; every failure message names it.
const REGEN: &str = "python3 yocto/scripts/gen-crates-inc.py";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

const RECIPE: &str = "yocto/meta-edgecam/recipes-multimedia/edgecam/edgecam_git.bb";
const IMAGE: &str = "yocto/meta-edgecam/recipes-core/images/edgecam-image.bb";
const INC: &str = "yocto/meta-edgecam/recipes-multimedia/edgecam/edgecam-crates.inc";

/// Runs the generator with `args` from the repository root.
fn generator(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(root().join("yocto/scripts/gen-crates-inc.py"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("python3 (3.11 or newer) runs yocto/scripts/gen-crates-inc.py")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The value of `NAME = "value"` (any assignment operator) in a bitbake file, joined over
/// backslash continuations.
fn bb_var(src: &str, name: &str) -> String {
    let mut lines = src.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(op_end) = rest.find('"') else {
            continue;
        };
        if !["=", "?=", "??=", "+=", ":="].contains(&rest[..op_end].trim()) {
            continue;
        }
        let mut value = rest[op_end + 1..].to_string();
        while value.trim_end().ends_with('\\') {
            value = value.trim_end().trim_end_matches('\\').to_string();
            value.push(' ');
            value.push_str(lines.next().unwrap_or_default().trim());
        }
        return value.trim_end().trim_end_matches('"').trim().to_string();
    }
    panic!("{name} is not assigned");
}

fn cargo_toml() -> toml::Table {
    read("Cargo.toml").parse().expect("Cargo.toml parses")
}

#[test]
fn committed_crates_inc_matches_cargo_lock() {
    let out = generator(&["--check"]);
    assert!(
        out.status.success(),
        "{INC} is stale for Cargo.lock; regenerate it with `{REGEN}` and commit it.\n{}",
        text(&out)
    );
}

#[test]
fn check_mode_fails_on_a_changed_lock_and_refuses_git_sources() {
    let dir = tempfile::tempdir().unwrap();
    let lock = read("Cargo.lock");

    // A dependency bump: one package's version and checksum change.
    let needle = "name = \"memchr\"\nversion = \"";
    let at = lock.find(needle).expect("memchr is in Cargo.lock") + needle.len();
    let bumped = format!(
        "{}999.0.0{}",
        &lock[..at],
        &lock[lock[at..].find('"').unwrap() + at..]
    );
    let bumped_lock = dir.path().join("bumped.lock");
    std::fs::write(&bumped_lock, &bumped).unwrap();
    let out = generator(&["--check", "--lock", bumped_lock.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a stale .inc is an error:\n{}",
        text(&out)
    );
    let report = text(&out);
    assert!(report.contains("+    crate://crates.io/memchr/999.0.0;name=memchr-999.0.0 \\"));
    assert!(
        report.contains(REGEN),
        "the failure names the fix:\n{report}"
    );

    // Writing mode on a scratch .inc, then check mode agrees with what it wrote.
    let scratch_inc = dir.path().join("edgecam-crates.inc");
    let inc_arg = scratch_inc.to_str().unwrap();
    let lock_arg = bumped_lock.to_str().unwrap();
    assert!(
        generator(&["--lock", lock_arg, "--inc", inc_arg])
            .status
            .success()
    );
    assert!(
        generator(&["--check", "--lock", lock_arg, "--inc", inc_arg])
            .status
            .success()
    );

    // A git dependency cannot become a crate:// line: a clear error, no output file.
    let git_lock = dir.path().join("git.lock");
    let git = bumped.replacen(
        "source = \"registry+https://github.com/rust-lang/crates.io-index\"",
        "source = \"git+https://example.invalid/x.git#0123abcd\"",
        1,
    );
    std::fs::write(&git_lock, git).unwrap();
    let git_inc = dir.path().join("git.inc");
    let out = generator(&[
        "--lock",
        git_lock.to_str().unwrap(),
        "--inc",
        git_inc.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("git dependency"), "{}", text(&out));
    assert!(!git_inc.exists());
}

#[test]
fn inc_lists_every_registry_package_once_and_skips_edgecam() {
    let inc = read(INC);
    let lock: toml::Table = read("Cargo.lock").parse().unwrap();
    let packages = lock["package"].as_array().unwrap();
    let registry: Vec<_> = packages
        .iter()
        .filter(|p| p.get("source").is_some())
        .collect();
    assert!(!registry.is_empty());
    for p in &registry {
        let (name, version) = (p["name"].as_str().unwrap(), p["version"].as_str().unwrap());
        let uri = format!("crate://crates.io/{name}/{version};name={name}-{version} \\");
        assert_eq!(inc.matches(&uri).count(), 1, "{uri} once in {INC}");
        let sum = format!(
            "SRC_URI[{name}-{version}.sha256sum] = \"{}\"",
            p["checksum"].as_str().unwrap()
        );
        assert!(inc.contains(&sum), "{sum} in {INC}");
    }
    assert_eq!(inc.matches("crate://").count(), registry.len());
    // The workspace's own packages (the product, edgecam-bench, edgecam-testkit) come with the
    // recipe's git checkout. Every member's registry packages are listed all the same: cargo
    // resolves the whole workspace from the one Cargo.lock, also when it builds only the daemon.
    let members: Vec<&str> = packages
        .iter()
        .filter(|p| p.get("source").is_none())
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(members.contains(&"edgecam"), "{members:?}");
    for name in members {
        assert!(
            !inc.contains(&format!("crates.io/{name}/")),
            "{name} in {INC}"
        );
    }
}

#[test]
fn layer_is_for_scarthgap_and_depends_on_core_and_meta_clang() {
    let conf = read("yocto/meta-edgecam/conf/layer.conf");
    assert_eq!(bb_var(&conf, "LAYERSERIES_COMPAT_edgecam"), "scarthgap");
    assert_eq!(bb_var(&conf, "BBFILE_COLLECTIONS"), "edgecam");
    let deps = bb_var(&conf, "LAYERDEPENDS_edgecam");
    assert!(
        deps.split_whitespace().eq(["core", "clang-layer"]),
        "{deps}"
    );
}

/// The board folders the recipe's `edgecam_board()` can pick.
fn recipe_boards(recipe: &str) -> BTreeSet<String> {
    let body = &recipe[recipe
        .find("def edgecam_board(d):")
        .expect("edgecam_board()")..];
    body.lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.trim().strip_prefix("return '"))
        .map(|r| r.trim_end_matches('\'').to_string())
        .collect()
}

#[test]
fn every_file_the_recipe_installs_from_the_repo_exists() {
    let recipe = read(RECIPE);
    let boards = recipe_boards(&recipe);
    assert_eq!(
        boards,
        ["generic-aarch64", "rpi3-armv7", "rpi4", "rpi5"]
            .map(String::from)
            .into(),
        "a default config for every board folder"
    );
    let mut paths = BTreeSet::new();
    for piece in recipe.split("${S}/").skip(1) {
        let rel: String = piece
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != ')')
            .collect();
        if rel.contains("${EDGECAM_BOARD}") {
            for b in &boards {
                paths.insert(rel.replace("${EDGECAM_BOARD}", b));
            }
        } else {
            paths.insert(rel);
        }
    }
    for must in [
        "systemd/edgecam.service",
        "systemd/sysusers.d/edgecam.conf",
        "systemd/tmpfiles.d/edgecam.conf",
        "systemd/udev/60-edgecam-gpio.rules",
        "systemd/system.conf.d/50-edgecam-watchdog.conf",
        "board/rpi4/config.toml",
    ] {
        assert!(paths.contains(must), "the recipe installs {must}");
    }
    let missing: Vec<_> = paths.iter().filter(|p| !root().join(p).is_file()).collect();
    assert!(
        missing.is_empty(),
        "{RECIPE} installs files that are not in the repo: {missing:?}"
    );

    // ExecStart= runs the binary where cargo_do_install puts it (${bindir} = /usr/bin).
    assert!(read("systemd/edgecam.service").contains("ExecStart=/usr/bin/edgecam "));
    assert_eq!(bb_var(&recipe, "SYSTEMD_SERVICE:${PN}"), "edgecam.service");
}

#[test]
fn recipe_cargo_features_exist_and_v4l2_is_on_by_default() {
    let recipe = read(RECIPE);
    let features = cargo_toml()["features"].as_table().unwrap().clone();
    let options: Vec<&str> = recipe
        .lines()
        .filter_map(|l| l.strip_prefix("PACKAGECONFIG["))
        .map(|l| &l[..l.find(']').unwrap()])
        .collect();
    assert_eq!(options, ["v4l2", "rppal"]);
    for o in &options {
        assert!(
            features.contains_key(*o),
            "PACKAGECONFIG[{o}] is no feature in Cargo.toml"
        );
    }
    assert_eq!(bb_var(&recipe, "PACKAGECONFIG"), "v4l2");
    assert!(recipe.contains("PACKAGECONFIG[v4l2] = \",,clang-native\""));
    assert!(
        recipe.contains("--bin edgecam "),
        "only the daemon binary is built"
    );
    assert!(
        !features.contains_key("default") || features["default"].as_array().unwrap().is_empty()
    );
}

#[test]
fn recipe_version_and_license_checksum_match_cargo_toml() {
    let recipe = read(RECIPE);
    let cargo = cargo_toml();
    let package = cargo["package"].as_table().unwrap();
    // Worktrees carry a `-suffix` on the version; the release version is the part before it.
    let version = package["version"]
        .as_str()
        .unwrap()
        .split('-')
        .next()
        .unwrap();
    assert_eq!(bb_var(&recipe, "PV"), format!("{version}+git"));
    assert_eq!(package["license"].as_str(), Some("MIT OR Apache-2.0"));
    assert_eq!(bb_var(&recipe, "LICENSE"), "MIT | Apache-2.0");

    // file://Cargo.toml;beginline=N;endline=M;md5=X: bitbake's md5 over those lines.
    let chk = bb_var(&recipe, "LIC_FILES_CHKSUM");
    let field = |k: &str| -> String {
        chk.split(';')
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} in {chk}"))
            .to_string()
    };
    assert!(chk.starts_with("file://Cargo.toml;"), "{chk}");
    let (begin, end): (usize, usize) = (
        field("beginline").parse().unwrap(),
        field("endline").parse().unwrap(),
    );
    let cargo_src = read("Cargo.toml");
    let lines: String = cargo_src
        .split_inclusive('\n')
        .skip(begin - 1)
        .take(end + 1 - begin)
        .collect();
    assert!(
        lines.starts_with("license = "),
        "the checksum covers the license line: {lines:?}"
    );
    let mut md5sum = Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("md5sum (coreutils)");
    std::io::Write::write_all(&mut md5sum.stdin.take().unwrap(), lines.as_bytes()).unwrap();
    let out = md5sum.wait_with_output().unwrap();
    let md5 = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        md5.split_whitespace().next(),
        Some(field("md5").as_str()),
        "LIC_FILES_CHKSUM md5 of Cargo.toml lines {begin}-{end}"
    );
}

#[test]
fn useradd_matches_sysusers_and_the_unit() {
    let recipe = read(RECIPE);
    let sysusers = read("systemd/sysusers.d/edgecam.conf");
    let entries: Vec<Vec<&str>> = sysusers
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    let of = |kind: &str| -> BTreeSet<String> {
        entries
            .iter()
            .filter(|e| e[0] == kind)
            .map(|e| if kind == "m" { e[2] } else { e[1] }.to_string())
            .collect()
    };

    let groupadd: BTreeSet<String> = bb_var(&recipe, "GROUPADD_PARAM:${PN}")
        .split(';')
        .map(|g| g.split_whitespace().last().unwrap().to_string())
        .collect();
    assert_eq!(
        groupadd,
        of("g"),
        "GROUPADD_PARAM creates the sysusers.d groups"
    );

    let useradd = bb_var(&recipe, "USERADD_PARAM:${PN}");
    let args: Vec<&str> = useradd.split_whitespace().collect();
    assert_eq!(BTreeSet::from([args.last().unwrap().to_string()]), of("u"));
    let groups = args[args.iter().position(|a| *a == "--groups").unwrap() + 1];
    let groups: BTreeSet<String> = groups.split(',').map(String::from).collect();
    assert_eq!(groups, of("m"), "--groups are the sysusers.d memberships");
    assert!(useradd.contains("--home-dir ${localstatedir}/lib/edgecam"));
    assert!(useradd.contains("--user-group"));

    let unit = read("systemd/edgecam.service");
    let supplementary: BTreeSet<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("SupplementaryGroups="))
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(supplementary, groups);
}

#[test]
fn image_mounts_the_wks_data_partition_and_rpi_config_enables_the_watchdog() {
    let image = read(IMAGE);
    assert!(image.contains("IMAGE_FEATURES += \"read-only-rootfs\""));
    for pkg in ["edgecam", "edgecam-watchdog"] {
        assert!(
            bb_var(&image, "IMAGE_INSTALL:append")
                .split_whitespace()
                .any(|p| p == pkg),
            "the image installs {pkg}"
        );
    }
    let label = bb_var(&image, "EDGECAM_DATA_LABEL");
    let wks_name = bb_var(&image, "WKS_FILE:rpi");
    let wks = read(&format!("yocto/meta-edgecam/wic/{wks_name}"));
    let data = wks
        .lines()
        .find(|l| l.contains(&format!("--label {label} ")))
        .unwrap_or_else(|| panic!("{wks_name} has a partition labelled {label}"));
    assert!(data.contains("--fstype=ext4"));
    assert!(
        bb_var(&image, "EDGECAM_DATA_MOUNT_OPTIONS")
            .contains("x-systemd.after=var-volatile-lib.service")
    );

    // Every config.txt line of the Raspberry Pi boards reaches RPI_EXTRA_CONFIG.
    let inc = read("yocto/meta-edgecam/conf/edgecam-rpi.inc");
    let extra = bb_var(&inc, "RPI_EXTRA_CONFIG:append:rpi");
    let extra: Vec<&str> = extra.split("\\n").collect();
    let mut boards: Vec<PathBuf> = std::fs::read_dir(root().join("board"))
        .unwrap()
        .map(|e| e.unwrap().path().join("config.txt"))
        .filter(|p| p.is_file())
        .collect();
    boards.sort();
    assert!(
        boards.len() >= 3,
        "the Raspberry Pi boards have config.txt files"
    );
    for txt in boards {
        for line in std::fs::read_to_string(&txt).unwrap().lines() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            assert!(
                extra.contains(&line),
                "{} line {line:?} is in conf/edgecam-rpi.inc",
                txt.display()
            );
        }
    }
    assert!(extra.contains(&"dtparam=watchdog=on"));
}
