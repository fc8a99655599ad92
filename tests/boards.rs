//! Every board's example config (`board/*/config.toml`) is accepted by the real config
//! loader, and Raspberry Pi boards ship the `config.txt` lines the appliance relies on.

use std::path::{Path, PathBuf};

use edgecam::config::{ActiveLevel, LineRef};

fn boards() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("board");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn there_is_a_folder_for_every_supported_board() {
    let names: Vec<String> = boards()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["generic-aarch64", "rpi3-armv7", "rpi4", "rpi5"]);
}

#[test]
fn every_board_config_is_valid_and_wires_its_contacts_to_the_header_chip() {
    for dir in boards() {
        let path = dir.join("config.toml");
        let cfg = edgecam::config::check_file(&path)
            .unwrap_or_else(|e| panic!("{}:\n{}", path.display(), edgecam::config::report(&e)));
        let inputs: Vec<_> = cfg.alarms.iter().filter_map(|a| a.gpio.as_ref()).collect();
        assert_eq!(
            inputs.len(),
            2,
            "{}: a NO and an NC example",
            path.display()
        );
        assert_eq!(inputs[0].line, LineRef::Offset(17));
        assert_eq!(
            inputs[0].active,
            ActiveLevel::Low,
            "NO contact closes to GND"
        );
        assert_eq!(inputs[1].line, LineRef::Offset(27));
        assert_eq!(inputs[1].active, ActiveLevel::High, "NC contact opens");
        for i in inputs {
            assert_eq!(i.chip, "gpiochip0", "{}", path.display());
        }
        assert!(
            dir.join("README.md").is_file(),
            "{} has a README",
            dir.display()
        );
    }
}

#[test]
fn raspberry_pi_boards_enable_the_watchdog_and_pull_ups() {
    for dir in boards() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("rpi") {
            continue;
        }
        let txt = std::fs::read_to_string(dir.join("config.txt")).unwrap();
        let lines: Vec<&str> = txt.lines().map(str::trim).collect();
        assert!(lines.contains(&"dtparam=watchdog=on"), "{name}");
        assert!(lines.contains(&"gpio=17,27=ip,pu"), "{name}");
    }
}
