//! Reading, choosing and writing config files.
//!
//! Two files can hold the config:
//! - the *provisioned* one (normally `/etc/edgecam/config.toml`), baked into the image;
//! - the *live* one, `<state_dir>/config.toml` ([`LIVE_CONFIG_FILE`]), written by the web page's
//!   config editor through [`save_live`].
//!
//! [`load_effective`] prefers the live file and falls back to the provisioned one with a warning
//! when the live file is damaged, so a bad edit (or a torn disk) cannot keep the box from starting.

use std::io;
use std::path::{Path, PathBuf};

use super::schema::Config;
use super::validate::{FieldError, validate};

/// File name of the live config inside the state directory.
pub const LIVE_CONFIG_FILE: &str = "config.toml";

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file was read but is not a valid config.
    #[error("{}: invalid config:\n{}", path.display(), super::validate::report(errors).trim_end())]
    Invalid {
        /// The file (for [`save_live`], the file that was not written).
        path: PathBuf,
        /// Every problem found, each with its field path.
        errors: Vec<FieldError>,
    },
    /// A valid config could not be rendered as TOML (kept rather than panicking).
    #[error("cannot serialise config: {0}")]
    Serialize(#[from] toml::ser::Error),
}

/// Which file [`load_effective`] used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// The live config written from the web page.
    Live(PathBuf),
    /// The provisioned config.
    Provisioned(PathBuf),
}

/// What [`load_effective`] decided.
#[derive(Debug, Clone)]
pub struct EffectiveConfig {
    /// The config to run with.
    pub config: Config,
    /// Where it came from, for the startup log and the status page.
    pub origin: ConfigOrigin,
    /// Problems with the file that was passed over (already logged); empty when all is well.
    pub warnings: Vec<String>,
}

/// Parses and validates config text.
///
/// Syntax and type errors stop parsing, so at most one of them is reported (with its field path
/// and line/column); a file that parses gets every semantic problem reported at once.
pub fn parse(text: &str) -> Result<Config, Vec<FieldError>> {
    let de = toml::Deserializer::parse(text).map_err(|e| vec![toml_error(text, "", &e)])?;
    let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        // serde_path_to_error renders the root as ".".
        let mut path = if path == "." { String::new() } else { path };
        // "missing field `id`" is about the field, not the table that lacks it.
        if let Some(field) = e.inner().message().strip_prefix("missing field `")
            && let Some(field) = field.strip_suffix('`')
        {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(field);
        }
        vec![toml_error(text, &path, e.inner())]
    })?;
    validate(&cfg)?;
    Ok(cfg)
}

/// Turns a toml error into a [`FieldError`], with the position in the text when known.
fn toml_error(text: &str, path: &str, e: &toml::de::Error) -> FieldError {
    let mut message = e.message().trim_end().to_string();
    if message.contains("untagged enum LineRef") {
        message = "expected a line offset (a number) or a line name (a string)".to_string();
    }
    if let Some(span) = e.span() {
        let (line, column) = line_column(text, span.start);
        message = format!("{message} (line {line}, column {column})");
    }
    FieldError::new(path, message)
}

/// 1-based line and column (in characters) of byte offset `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Reads, parses and validates the config at `path`.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|errors| ConfigError::Invalid {
        path: path.to_path_buf(),
        errors,
    })
}

/// For `edgecam check-config PATH`: the config, or every problem (an unreadable file is one
/// problem with an empty field path). Print the problems with [`super::validate::report`].
pub fn check_file(path: &Path) -> Result<Config, Vec<FieldError>> {
    load_file(path).map_err(|e| match e {
        ConfigError::Invalid { errors, .. } => errors,
        other => vec![FieldError::new("", other.to_string())],
    })
}

/// The config the daemon runs with: the live file in `state_dir` when it exists and is valid,
/// otherwise the provisioned file. A live file that exists but cannot be used is logged as a
/// warning and listed in [`EffectiveConfig::warnings`].
///
/// Fails only when the provisioned file is needed and is unusable too; the caller decides what
/// to do then (the daemon can still start with `Config::default()` so the page can fix it).
pub fn load_effective(
    provisioned: &Path,
    state_dir: &Path,
) -> Result<EffectiveConfig, ConfigError> {
    let live = state_dir.join(LIVE_CONFIG_FILE);
    let mut warnings = Vec::new();
    match load_file(&live) {
        Ok(config) => {
            return Ok(EffectiveConfig {
                config,
                origin: ConfigOrigin::Live(live),
                warnings,
            });
        }
        Err(ConfigError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(
                live = %live.display(),
                provisioned = %provisioned.display(),
                error = %e,
                "live config is unusable; falling back to the provisioned config"
            );
            warnings.push(format!(
                "live config is unusable, using {} instead: {e}",
                provisioned.display()
            ));
        }
    }
    let config = load_file(provisioned)?;
    Ok(EffectiveConfig {
        config,
        origin: ConfigOrigin::Provisioned(provisioned.to_path_buf()),
        warnings,
    })
}

/// Renders `cfg` as TOML text that [`parse`] reads back to an equal config.
pub fn to_toml(cfg: &Config) -> Result<String, ConfigError> {
    Ok(toml::to_string_pretty(cfg)?)
}

/// Validates `cfg` and writes it atomically as the live config `<state_dir>/config.toml`,
/// creating `state_dir` if needed. Nothing is written when validation fails. Returns the path
/// written. Blocking; concurrent saves must be serialised by the caller (one config editor).
pub fn save_live(cfg: &Config, state_dir: &Path) -> Result<PathBuf, ConfigError> {
    let path = state_dir.join(LIVE_CONFIG_FILE);
    validate(cfg).map_err(|errors| ConfigError::Invalid {
        path: path.clone(),
        errors,
    })?;
    let text = to_toml(cfg)?;
    let io_err = |source| ConfigError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(state_dir).map_err(io_err)?;
    crate::persist::write_atomic(&path, text.as_bytes()).map_err(io_err)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_chars() {
        let text = "a = 1\nbé = x\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // 'x' follows a two-byte character: byte 12, column 6.
        assert_eq!(line_column(text, 12), (2, 6));
        // Out of range and mid-character offsets do not panic.
        assert_eq!(line_column(text, 1000).0, 3);
        assert_eq!(line_column(text, 8), (2, 2));
    }
}
