//! The persisted state file: round trips, and every kind of damage falls back to the defaults.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use edgecam::config;
use edgecam::persist::{temp_path, write_atomic};
use edgecam::state::{
    DecodeError, FORMAT_VERSION, LatchedAlarm, LoadOutcome, MAGIC, MAX_FILE_LEN, PersistedState,
    STATE_FILE, StateStore, decode, encode, load, save,
};
use proptest::prelude::*;

fn sample() -> PersistedState {
    PersistedState {
        user_selection: Some("cam2".into()),
        latched_alarms: vec![
            LatchedAlarm {
                id: "door".into(),
                since_wall_us: 1_763_700_000_000_000,
            },
            LatchedAlarm {
                id: "fence".into(),
                since_wall_us: -1,
            },
        ],
    }
}

/// A file with a correct header and CRC around `payload`, claiming `version`.
fn framed(version: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn discarded(outcome: LoadOutcome) -> DecodeError {
    match outcome {
        LoadOutcome::Discarded(e) => e,
        other => panic!("expected a discarded file, got {other:?}"),
    }
}

#[test]
fn round_trip_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE);
    save(&path, &sample()).unwrap();
    match load(&path) {
        LoadOutcome::Loaded(state) => assert_eq!(state, sample()),
        other => panic!("{other:?}"),
    }
    // Overwriting replaces the contents.
    save(&path, &PersistedState::default()).unwrap();
    assert_eq!(load(&path).into_state(), PersistedState::default());
    assert!(matches!(load(&path), LoadOutcome::Loaded(_)));
}

#[test]
fn missing_file_is_a_silent_default() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = load(&dir.path().join(STATE_FILE));
    assert!(matches!(outcome, LoadOutcome::Missing));
    assert_eq!(outcome.into_state(), PersistedState::default());
}

#[test]
fn truncated_at_every_length_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE);
    let full = encode(&sample()).unwrap();
    for len in 0..full.len() {
        std::fs::write(&path, &full[..len]).unwrap();
        let e = discarded(load(&path));
        assert!(
            matches!(e, DecodeError::Truncated { len: l, .. } if l == len),
            "length {len}: {e}"
        );
    }
    std::fs::write(&path, &full).unwrap();
    assert_eq!(load(&path).into_state(), sample());
}

#[test]
fn every_single_bit_flip_is_detected() {
    let full = encode(&sample()).unwrap();
    for byte in 0..full.len() {
        for bit in 0..8 {
            let mut damaged = full.clone();
            damaged[byte] ^= 1 << bit;
            let e = decode(&damaged).expect_err("a flipped bit must not decode");
            let expected_kind = match byte {
                0..4 => matches!(e, DecodeError::BadMagic),
                // The length field: the file now looks shorter or longer than declared.
                6..10 => matches!(
                    e,
                    DecodeError::Truncated { .. } | DecodeError::TrailingBytes { .. }
                ),
                // Version, payload and CRC: the checksum catches it.
                _ => matches!(e, DecodeError::Checksum { .. }),
            };
            assert!(expected_kind, "byte {byte} bit {bit}: {e}");
        }
    }
}

#[test]
fn bit_flipped_file_loads_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE);
    let mut bytes = encode(&sample()).unwrap();
    bytes[12] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let outcome = load(&path);
    assert!(matches!(
        &outcome,
        LoadOutcome::Discarded(DecodeError::Checksum { .. })
    ));
    assert_eq!(outcome.into_state(), PersistedState::default());
}

#[test]
fn wrong_version_falls_back() {
    let payload = postcard::to_allocvec(&sample()).unwrap();
    let e = decode(&framed(FORMAT_VERSION + 1, &payload)).unwrap_err();
    assert!(matches!(e, DecodeError::Version { found, supported }
        if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION));
    // The same frame with the right version is fine, so it really was the version.
    assert_eq!(decode(&framed(FORMAT_VERSION, &payload)).unwrap(), sample());
}

#[test]
fn wrong_magic_falls_back() {
    let mut bytes = encode(&sample()).unwrap();
    bytes[..4].copy_from_slice(b"PNG\0");
    assert!(matches!(decode(&bytes), Err(DecodeError::BadMagic)));
    // A short file that is not a prefix of ours is foreign, not truncated.
    assert!(matches!(decode(b"{}"), Err(DecodeError::BadMagic)));
}

#[test]
fn undecodable_payload_with_good_crc_falls_back() {
    // A string length far beyond the payload.
    let e = decode(&framed(FORMAT_VERSION, &[1, 0xff, 0xff, 0x03])).unwrap_err();
    assert!(matches!(e, DecodeError::Payload(_)), "{e}");
    // A valid state followed by extra bytes inside the payload.
    let mut payload = postcard::to_allocvec(&sample()).unwrap();
    payload.push(0);
    let e = decode(&framed(FORMAT_VERSION, &payload)).unwrap_err();
    assert!(
        matches!(e, DecodeError::Payload(ref m) if m.contains("left over")),
        "{e}"
    );
}

#[test]
fn trailing_bytes_after_the_crc_fall_back() {
    let mut bytes = encode(&sample()).unwrap();
    bytes.extend_from_slice(b"xx");
    assert!(matches!(
        decode(&bytes),
        Err(DecodeError::TrailingBytes { extra: 2 })
    ));
}

#[test]
fn oversized_and_unreadable_files_fall_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE);
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(MAX_FILE_LEN + 1).unwrap();
    assert!(matches!(discarded(load(&path)), DecodeError::TooLarge));

    // A directory where the file should be: reading fails, the daemon still starts.
    let dir_path = dir.path().join("as_dir");
    std::fs::create_dir(&dir_path).unwrap();
    assert!(matches!(discarded(load(&dir_path)), DecodeError::Io(_)));
}

#[test]
fn leftover_temp_file_is_ignored_then_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE);
    save(&path, &sample()).unwrap();

    // Another process died while writing: a partial temp file beside the good file.
    let stale = temp_path(dir.path(), STATE_FILE.as_ref(), 4_000_000);
    let partial = encode(&PersistedState::default()).unwrap();
    std::fs::write(&stale, &partial[..partial.len() / 2]).unwrap();

    assert_eq!(load(&path).into_state(), sample());

    // The next write removes it.
    save(&path, &PersistedState::default()).unwrap();
    assert!(!stale.exists());
    assert_eq!(load(&path).into_state(), PersistedState::default());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from(STATE_FILE)]);
}

#[test]
fn crash_before_rename_keeps_the_last_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE);
    save(&path, &sample()).unwrap();

    // Replay write_atomic's first steps for new contents and "crash" before the rename: the
    // temp file is complete (or half written), the target untouched.
    let next = PersistedState {
        user_selection: Some("other".into()),
        latched_alarms: Vec::new(),
    };
    let bytes = encode(&next).unwrap();
    for written in [bytes.len(), bytes.len() / 2, 0] {
        let tmp = temp_path(dir.path(), STATE_FILE.as_ref(), std::process::id());
        let mut f = std::fs::File::create(&tmp).unwrap();
        f.write_all(&bytes[..written]).unwrap();
        drop(f);
        assert_eq!(load(&path).into_state(), sample(), "after {written} bytes");
    }

    // After "restart" the next save goes through and wins.
    save(&path, &next).unwrap();
    assert_eq!(load(&path).into_state(), next);
}

#[test]
fn store_creates_its_directory_and_syncs_it() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("var").join("lib").join("edgecam");
    let store = StateStore::new(&state_dir);
    assert_eq!(store.path(), state_dir.join(STATE_FILE));
    assert!(matches!(store.load(), LoadOutcome::Missing));
    store.save(&sample()).unwrap();
    assert_eq!(store.load().into_state(), sample());
}

#[test]
fn write_atomic_replaces_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.txt");
    write_atomic(&path, b"first, longer contents").unwrap();
    write_atomic(&path, b"second").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
}

#[test]
fn saving_into_a_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone").join(STATE_FILE);
    let err = save(&path, &sample()).unwrap_err();
    assert!(err.to_string().contains("gone"), "{err}");
}

/// Collects what `tracing` prints while `f` runs.
fn captured_log(f: impl FnOnce()) -> String {
    let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || LogWriter(sink.clone()))
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buf.lock().unwrap().clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A `Write` into the shared buffer of [`captured_log`].
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn damage_is_logged_with_path_and_reason_but_missing_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE);
    let log = captured_log(|| {
        load(&path);
    });
    assert!(log.is_empty(), "{log}");

    std::fs::write(&path, b"ECST\x01").unwrap();
    let log = captured_log(|| {
        load(&path);
    });
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains(&path.display().to_string()), "{log}");
    assert!(log.contains("truncated"), "{log}");
}

#[test]
fn reconcile_drops_what_the_config_lost() {
    let cfg = config::parse(
        r#"
[[streams]]
id = "cam1"
kind = "testpattern"
[[streams]]
id = "cam2"
kind = "testpattern"
enabled = false
[[alarms]]
id = "door"
stream = "cam1"
"#,
    )
    .unwrap();
    let mut state = sample();
    state.latched_alarms.push(state.latched_alarms[0].clone());
    let dropped = state.reconcile(&cfg);
    assert_eq!(dropped.len(), 3, "{dropped:?}");
    assert_eq!(state.user_selection, None);
    assert_eq!(
        state.latched_alarms,
        vec![sample().latched_alarms[0].clone()]
    );

    // Nothing to drop: unchanged.
    let mut kept = PersistedState {
        user_selection: Some("cam1".into()),
        latched_alarms: sample().latched_alarms[..1].to_vec(),
    };
    let before = kept.clone();
    assert!(kept.reconcile(&cfg).is_empty());
    assert_eq!(kept, before);
}

fn any_state() -> impl Strategy<Value = PersistedState> {
    let alarm = ("[a-z0-9_-]{0,32}", any::<i64>())
        .prop_map(|(id, since_wall_us)| LatchedAlarm { id, since_wall_us });
    (
        proptest::option::of("\\PC{0,40}"),
        proptest::collection::vec(alarm, 0..8),
    )
        .prop_map(|(user_selection, latched_alarms)| PersistedState {
            user_selection,
            latched_alarms,
        })
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
        // With our magic in front, the later checks get exercised too.
        let mut framed = MAGIC.to_vec();
        framed.extend_from_slice(&bytes);
        let _ = decode(&framed);
    }

    #[test]
    fn random_states_round_trip(state in any_state()) {
        let bytes = encode(&state).unwrap();
        prop_assert_eq!(decode(&bytes).unwrap(), state);
    }

    #[test]
    fn random_truncations_and_corruptions_are_rejected(
        state in any_state(),
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..,
    ) {
        let bytes = encode(&state).unwrap();
        let len = cut.index(bytes.len());
        let is_truncated = matches!(decode(&bytes[..len]), Err(DecodeError::Truncated { .. }));
        prop_assert!(is_truncated);
        let mut damaged = bytes.clone();
        damaged[at.index(bytes.len())] ^= xor;
        prop_assert!(decode(&damaged).is_err());
    }
}

#[test]
fn temp_path_is_next_to_the_target() {
    let p = temp_path(Path::new("/var/lib/edgecam"), "state.bin".as_ref(), 42);
    assert_eq!(p, Path::new("/var/lib/edgecam/state.bin.tmp.42"));
}
