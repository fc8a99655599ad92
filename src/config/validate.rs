//! Semantic checks of a parsed [`Config`]: everything the types alone cannot say.
//!
//! [`validate`] does not stop at the first problem. It reports every one, each with the field
//! path a user would look for in the file (`streams[1].url`, `alarms[0].gpio.line`), so that one
//! run of `edgecam check-config` or one `PUT /api/config` shows all that needs fixing. Messages
//! never repeat secrets (passwords in URLs, tokens, hashes).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::net::SocketAddr;

mod clips;

pub use clips::{
    MAX_CLIP_COUNT, MAX_CLIP_MAX_S, MAX_CLIP_POST_S, MAX_CLIP_PRE_S, MIN_CLIP_QUOTA_BYTES,
};

use super::schema::{AlarmMode, Config, LineRef, StreamConfig, StreamKind, Transport};

/// Longest id accepted for streams, alarms and token names.
pub const MAX_ID_LEN: usize = 32;
/// Smallest per-stream ring arena.
pub const MIN_RING_BYTES: u64 = 256 * 1024;
/// Largest per-stream ring arena.
pub const MAX_RING_BYTES: u64 = 1024 * 1024 * 1024;
/// Largest total of all enabled streams' arenas.
pub const MAX_RING_TOTAL_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Longest display name accepted for streams and alarms.
pub const MAX_NAME_LEN: usize = 64;
/// Shortest API token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// One problem in a config, at one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where: a dotted path with indices, e.g. `streams[1].kind`; empty when the problem is in
    /// the file as a whole (a TOML syntax error, an unreadable file).
    pub path: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

/// Unicode's bidirectional formatting characters (embeddings, overrides, isolates, marks).
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Renders problems one per line (`path: message`), for `edgecam check-config` and logs.
pub fn report(errors: &[FieldError]) -> String {
    let mut out = String::new();
    for e in errors {
        out.push_str(&e.to_string());
        out.push('\n');
    }
    out
}

/// Checks everything the types do not; returns every problem found.
pub fn validate(cfg: &Config) -> Result<(), Vec<FieldError>> {
    let mut c = Checker::default();
    c.web(cfg);
    c.ring(cfg);
    if cfg.paths.state_dir.as_os_str().is_empty() {
        c.err("paths.state_dir", "must not be empty");
    } else if !cfg.paths.state_dir.is_absolute() {
        c.err(
            "paths.state_dir",
            format!(
                "`{}` is a relative path; use an absolute one such as /var/lib/edgecam \
                 (a relative path would depend on the directory edgecam is started from)",
                cfg.paths.state_dir.display()
            ),
        );
    }
    c.streams(cfg);
    c.select(cfg);
    c.alarms(cfg);
    c.webhooks(cfg);
    c.mqtt(cfg);
    c.clips(cfg);
    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(c.errors)
    }
}

/// Collects problems while walking the config.
#[derive(Default)]
struct Checker {
    /// Everything found so far, in file order per section.
    errors: Vec<FieldError>,
}

impl Checker {
    /// `[[webhooks]]`: a usable http(s) URL, a valid header, sane bounds.
    fn webhooks(&mut self, cfg: &Config) {
        for (i, h) in cfg.webhooks.iter().enumerate() {
            let base = format!("webhooks[{i}]");
            match url::Url::parse(&h.url) {
                Ok(u) if !matches!(u.scheme(), "http" | "https") => self.err(
                    format!("{base}.url"),
                    format!(
                        "`{}` is not an http:// or https:// URL; webhooks are HTTP POSTs",
                        u.scheme()
                    ),
                ),
                Ok(u) if u.host_str().is_none_or(str::is_empty) => self.err(
                    format!("{base}.url"),
                    "the URL has no host; write it as http://host:port/path",
                ),
                Ok(_) => {}
                Err(e) => self.err(
                    format!("{base}.url"),
                    format!("not a URL ({e}); write it as http://host:port/path"),
                ),
            }
            if let Some(hdr) = &h.header {
                if hyper::header::HeaderName::from_bytes(hdr.name.as_bytes()).is_err() {
                    self.err(
                        format!("{base}.header.name"),
                        "not a valid HTTP header name (letters, digits and `-`, such as X-Api-Key)",
                    );
                }
                if hyper::header::HeaderValue::from_str(&hdr.value).is_err() {
                    self.err(
                        format!("{base}.header.value"),
                        "must be printable text without line breaks",
                    );
                }
            }
            if let Some(t) = &h.bearer_token
                && hyper::header::HeaderValue::from_str(&format!("Bearer {t}")).is_err()
            {
                self.err(
                    format!("{base}.bearer_token"),
                    "must be printable text without line breaks",
                );
            }
            if h.events.is_empty() {
                self.err(
                    format!("{base}.events"),
                    "lists no event; leave it out to send all (raise, clear, ack, switch)",
                );
            }
            self.range(format!("{base}.queue"), h.queue, 1, 10_000, "");
            self.range(format!("{base}.attempts"), h.attempts, 1, 20, "");
            self.range(
                format!("{base}.timeout_ms"),
                h.timeout_ms,
                100,
                120_000,
                " ms",
            );
        }
    }

    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    /// `lo..=hi`, with `unit` appended to the bounds in the message.
    fn range<T: PartialOrd + fmt::Display>(
        &mut self,
        path: String,
        v: T,
        lo: T,
        hi: T,
        unit: &str,
    ) {
        if v < lo || v > hi {
            self.err(
                path,
                format!("must be between {lo} and {hi}{unit}, got {v}"),
            );
        }
    }

    /// Ids appear in URLs, logs and metric labels: short, plain ASCII.
    fn id(&mut self, path: String, id: &str) {
        if id.is_empty() {
            self.err(path, "must not be empty");
        } else if id.len() > MAX_ID_LEN {
            self.err(
                path,
                format!(
                    "is {} characters long; at most {MAX_ID_LEN} are allowed",
                    id.len()
                ),
            );
        } else if let Some(bad) = id
            .chars()
            .find(|ch| !(ch.is_ascii_alphanumeric() || *ch == '-' || *ch == '_'))
        {
            self.err(
                path,
                format!("`{id}` contains {bad:?}; only letters, digits, `-` and `_` are allowed"),
            );
        }
    }

    /// Names are shown on the page, in banners and logs: plain text of a sensible length,
    /// without control characters or the invisible bidirectional controls that reorder what
    /// is shown (a name could then read as another camera's).
    fn display_name(&mut self, path: String, name: &str) {
        let n = name.chars().count();
        if n > MAX_NAME_LEN {
            self.err(
                path,
                format!("is {n} characters long; at most {MAX_NAME_LEN} are allowed"),
            );
        } else if let Some(bad) = name.chars().find(|c| c.is_control() || is_bidi_control(*c)) {
            self.err(
                path,
                format!(
                    "contains the invisible character U+{:04X}; use plain text",
                    u32::from(bad)
                ),
            );
        } else if name.trim().is_empty() {
            self.err(path, "must not be blank (leave it out to show the id)");
        }
    }

    /// Extra host names: what a browser puts in `Host` (no scheme, port or path).
    fn hostnames(&mut self, names: &[String]) {
        for (i, h) in names.iter().enumerate() {
            let ok = !h.is_empty()
                && h.len() <= 253
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']'));
            if !ok {
                self.err(
                    format!("web.hostnames[{i}]"),
                    format!(
                        "`{h}` is not a host name such as camerabox.example.lan \
                         (no scheme, port or path)"
                    ),
                );
            }
        }
    }

    fn web(&mut self, cfg: &Config) {
        let web = &cfg.web;
        self.hostnames(&web.hostnames);
        if web.listen.parse::<SocketAddr>().is_err() {
            self.err(
                "web.listen",
                format!(
                    "`{}` is not an address:port such as 0.0.0.0:8080",
                    web.listen
                ),
            );
        }
        match web.https_listen.parse::<SocketAddr>() {
            Err(_) => self.err(
                "web.https_listen",
                format!(
                    "`{}` is not an address:port such as 0.0.0.0:8443",
                    web.https_listen
                ),
            ),
            Ok(h)
                if web.https
                    && web
                        .listen
                        .parse::<SocketAddr>()
                        .is_ok_and(|l| l.port() == h.port() && h.port() != 0) =>
            {
                self.err(
                    "web.https_listen",
                    "uses the same port as web.listen; give HTTPS its own port such as 8443",
                )
            }
            Ok(_) => {}
        }
        self.range("web.jpeg_quality".into(), web.jpeg_quality, 1, 100, "");
        self.range("web.jpeg_downscale".into(), web.jpeg_downscale, 1, 8, "");
        if let Some(hash) = &web.admin_password_hash
            && !hash.starts_with("$argon2")
        {
            self.err(
                "web.admin_password_hash",
                "must be an Argon2 PHC hash starting with `$argon2` (not a plain password)",
            );
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut secrets: HashMap<&str, usize> = HashMap::new();
        for (i, t) in web.tokens.iter().enumerate() {
            let base = format!("web.tokens[{i}]");
            self.id(format!("{base}.name"), &t.name);
            if let Some(first) = first_use(&mut names, &t.name, i) {
                self.err(
                    format!("{base}.name"),
                    format!(
                        "duplicate token name `{}` (first used by web.tokens[{first}])",
                        t.name
                    ),
                );
            }
            let n = t.token.chars().count();
            if n < MIN_TOKEN_LEN {
                self.err(
                    format!("{base}.token"),
                    format!("is {n} characters long; at least {MIN_TOKEN_LEN} are required"),
                );
            } else if !t.token.chars().all(|ch| ch.is_ascii_graphic()) {
                self.err(
                    format!("{base}.token"),
                    "may contain only visible ASCII characters (it is sent in an HTTP header)",
                );
            }
            if let Some(first) = first_use(&mut secrets, &t.token, i) {
                self.err(
                    format!("{base}.token"),
                    format!("is the same token as web.tokens[{first}]; every token must be unique"),
                );
            }
        }
    }

    fn ring(&mut self, cfg: &Config) {
        let ring = &cfg.ring;
        let bytes = ring.bytes_per_stream;
        if !(MIN_RING_BYTES..=MAX_RING_BYTES).contains(&bytes) {
            self.err(
                "ring.bytes_per_stream",
                format!(
                    "must be between {MIN_RING_BYTES} (256 KiB) and {MAX_RING_BYTES} (1 GiB), got {bytes}"
                ),
            );
        } else {
            let enabled = cfg.streams.iter().filter(|s| s.enabled).count() as u64;
            let total = bytes.saturating_mul(enabled);
            if total > MAX_RING_TOTAL_BYTES {
                self.err(
                    "ring.bytes_per_stream",
                    format!(
                        "{enabled} enabled streams × {bytes} bytes = {total} bytes, more than the \
                         {MAX_RING_TOTAL_BYTES} (4 GiB) allowed in total"
                    ),
                );
            }
        }
        self.range(
            "ring.slots_per_stream".into(),
            ring.slots_per_stream,
            16,
            65536,
            "",
        );
        self.ring_cap(cfg);
    }

    /// `ring.max_bytes_per_stream`: within the per-ring limits, not below
    /// `bytes_per_stream`, and within the total budget when every ring grows to it.
    fn ring_cap(&mut self, cfg: &Config) {
        let ring = &cfg.ring;
        let Some(max) = ring.max_bytes_per_stream else {
            return;
        };
        let field = "ring.max_bytes_per_stream";
        if !(MIN_RING_BYTES..=MAX_RING_BYTES).contains(&max) {
            self.err(
                field,
                format!(
                    "must be between {MIN_RING_BYTES} (256 KiB) and {MAX_RING_BYTES} (1 GiB), got {max}"
                ),
            );
            return;
        }
        if max < ring.bytes_per_stream {
            self.err(
                field,
                format!(
                    "is {max} bytes, less than ring.bytes_per_stream ({}); a ring starts at \
                     bytes_per_stream and grows up to max_bytes_per_stream when its camera's \
                     bitrate needs more for clips.pre_s, so the cap must be at least as large",
                    ring.bytes_per_stream
                ),
            );
            return;
        }
        let enabled = cfg.streams.iter().filter(|s| s.enabled).count() as u64;
        let total = max.saturating_mul(enabled);
        if total > MAX_RING_TOTAL_BYTES {
            self.err(
                field,
                format!(
                    "{enabled} enabled streams × {max} bytes = {total} bytes, more than the \
                     {MAX_RING_TOTAL_BYTES} (4 GiB) allowed in total if every ring grows to the cap"
                ),
            );
        }
    }

    fn streams(&mut self, cfg: &Config) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, s) in cfg.streams.iter().enumerate() {
            let base = format!("streams[{i}]");
            self.id(format!("{base}.id"), &s.id);
            if let Some(name) = &s.name {
                self.display_name(format!("{base}.name"), name);
            }
            if let Some(first) = first_use(&mut seen, &s.id, i) {
                self.err(
                    format!("{base}.id"),
                    format!(
                        "duplicate stream id `{}` (first used by streams[{first}])",
                        s.id
                    ),
                );
            }
            self.stream_kind(&base, s);
            for (field, v) in [
                ("connect_timeout_ms", s.connect_timeout_ms),
                ("stall_timeout_ms", s.stall_timeout_ms),
            ] {
                self.range(format!("{base}.{field}"), v, 100, 600_000, " ms");
            }
            self.range(
                format!("{base}.failed_retry_s"),
                s.failed_retry_s,
                10,
                86_400,
                " s",
            );
        }
    }

    /// The fields each kind needs, and the ones it must not have.
    fn stream_kind(&mut self, base: &str, s: &StreamConfig) {
        let picture_fields: [(&str, Option<u32>); 5] = [
            ("width", s.width),
            ("height", s.height),
            ("fps", s.fps),
            ("bitrate_kbps", s.bitrate_kbps),
            ("gop", s.gop),
        ];
        if s.kind != StreamKind::Rtsp {
            if s.url.is_some() {
                self.err(format!("{base}.url"), "`url` applies only to rtsp streams");
            }
            if s.sub_url.is_some() {
                self.err(
                    format!("{base}.sub_url"),
                    "`sub_url` applies only to rtsp streams (a camera's second, smaller \
                     stream); remove it, or set `kind = \"rtsp\"` with the camera's `url`",
                );
            }
            // `tcp` was the default before `auto`: configs saved by older builds carry it on
            // every stream, so it stays accepted (and ignored) on other kinds.
            if s.transport == Transport::Udp {
                self.err(
                    format!("{base}.transport"),
                    "`transport` applies only to rtsp streams",
                );
            }
        }
        if s.kind != StreamKind::V4l2 && s.device.is_some() {
            self.err(
                format!("{base}.device"),
                "`device` applies only to v4l2 streams",
            );
        }
        match s.kind {
            StreamKind::Rtsp => {
                for (field, v) in picture_fields {
                    if v.is_some() {
                        self.err(
                            format!("{base}.{field}"),
                            format!(
                                "`{field}` applies only to v4l2 and testpattern streams \
                                 (an RTSP camera sends what it is set up to send)"
                            ),
                        );
                    }
                }
                match &s.url {
                    None => self.err(format!("{base}.url"), "an rtsp stream needs a `url`"),
                    Some(u) => self.rtsp_url(format!("{base}.url"), u),
                }
                if let Some(u) = &s.sub_url {
                    self.rtsp_url(format!("{base}.sub_url"), u);
                }
            }
            StreamKind::V4l2 => {
                match &s.device {
                    None => self.err(
                        format!("{base}.device"),
                        "a v4l2 stream needs a `device` such as /dev/video0",
                    ),
                    Some(d) if !d.starts_with('/') => self.err(
                        format!("{base}.device"),
                        format!("`{d}` is not an absolute path such as /dev/video0"),
                    ),
                    Some(_) => {}
                }
                self.picture(base, s);
            }
            StreamKind::Testpattern => self.picture(base, s),
        }
    }

    /// Checks the URL without ever echoing it: it may carry a password.
    fn rtsp_url(&mut self, path: String, raw: &str) {
        match url::Url::parse(raw) {
            Err(e) => self.err(path, format!("not a valid URL: {e}")),
            Ok(u) => {
                if u.scheme() != "rtsp" && u.scheme() != "rtsps" {
                    self.err(
                        path,
                        format!(
                            "scheme `{}` is not supported; use rtsp:// or rtsps://",
                            u.scheme()
                        ),
                    );
                } else if u.host_str().is_none_or(str::is_empty) {
                    self.err(path, "the URL has no host");
                }
            }
        }
    }

    fn picture(&mut self, base: &str, s: &StreamConfig) {
        for (field, v) in [("width", s.width), ("height", s.height)] {
            if let Some(v) = v
                && (!(16..=4096).contains(&v) || v % 2 != 0)
            {
                self.err(
                    format!("{base}.{field}"),
                    format!("must be an even number between 16 and 4096, got {v}"),
                );
            }
        }
        let limits = [
            ("fps", s.fps, 1, 120),
            ("bitrate_kbps", s.bitrate_kbps, 64, 50_000),
            ("gop", s.gop, 1, 1000),
        ];
        for (field, v, lo, hi) in limits {
            if let Some(v) = v {
                self.range(format!("{base}.{field}"), v, lo, hi, "");
            }
        }
    }

    fn select(&mut self, cfg: &Config) {
        let sel = &cfg.select;
        if let Some(id) = &sel.default
            && !cfg.streams.iter().any(|s| &s.id == id)
        {
            self.err(
                "select.default",
                format!("`{id}` is not a stream id{}", known_streams(cfg)),
            );
        }
        if sel.dwell_s < 1 {
            self.err("select.dwell_s", "must be at least 1");
        }
        if sel.min_dwell_ms > 60_000 {
            self.err(
                "select.min_dwell_ms",
                format!("must be at most 60000 ms, got {}", sel.min_dwell_ms),
            );
        }
    }

    fn alarms(&mut self, cfg: &Config) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        // (normalised chip, line) -> the path that claimed it first.
        let mut lines: HashMap<(&str, &LineRef), String> = HashMap::new();
        for (i, a) in cfg.alarms.iter().enumerate() {
            let base = format!("alarms[{i}]");
            self.id(format!("{base}.id"), &a.id);
            if let Some(name) = &a.name {
                self.display_name(format!("{base}.name"), name);
            }
            if let Some(first) = first_use(&mut seen, &a.id, i) {
                self.err(
                    format!("{base}.id"),
                    format!(
                        "duplicate alarm id `{}` (first used by alarms[{first}])",
                        a.id
                    ),
                );
            }
            if !cfg.streams.iter().any(|s| s.id == a.stream) {
                self.err(
                    format!("{base}.stream"),
                    format!("`{}` is not a stream id{}", a.stream, known_streams(cfg)),
                );
            }
            if a.mode == AlarmMode::Hold && a.hold_s < 1 {
                self.err(
                    format!("{base}.hold_s"),
                    "must be at least 1 for a hold alarm",
                );
            }
            if a.video_loss_after_s < 1 {
                self.err(format!("{base}.video_loss_after_s"), "must be at least 1");
            }
            if let Some(g) = &a.gpio {
                let path = format!("{base}.gpio");
                if g.debounce_ms > 10_000 {
                    self.err(
                        format!("{path}.debounce_ms"),
                        format!("must be at most 10000 ms, got {}", g.debounce_ms),
                    );
                }
                self.gpio_line(&mut lines, path, &g.chip, &g.line);
            }
            if let Some(o) = &a.output {
                self.gpio_line(&mut lines, format!("{base}.output"), &o.chip, &o.line);
            }
            if let Some(o) = &a.onvif {
                if let Err(e) = o.target(&cfg.streams) {
                    self.err(format!("{base}.onvif"), e);
                }
                if o.topic.trim().is_empty() {
                    self.err(
                        format!("{base}.onvif.topic"),
                        "must name the event: motion, tamper, line, field or an ONVIF topic",
                    );
                }
            }
        }
    }

    /// A GPIO line can be requested once; a second request would fail at runtime with EBUSY.
    fn mqtt(&mut self, cfg: &Config) {
        let Some(m) = &cfg.mqtt else { return };
        if m.host.trim().is_empty() {
            self.err(
                "mqtt.host",
                "must not be empty; give the broker's host name or address",
            );
        }
        self.id("mqtt.box_id".to_string(), &m.box_id);
        if m.port == 0 {
            self.err(
                "mqtt.port",
                "must be a port number (1883, or 8883 with TLS)",
            );
        }
        if m.reconnect_min_ms == 0 || m.reconnect_min_ms > m.reconnect_max_ms {
            self.err(
                "mqtt.reconnect_min_ms",
                "must be at least 1 and not above mqtt.reconnect_max_ms",
            );
        }
        if m.discovery_prefix.is_empty() || m.discovery_prefix.contains(['#', '+']) {
            self.err(
                "mqtt.discovery_prefix",
                "must be a topic without wildcards, e.g. homeassistant",
            );
        }
        for (i, input) in m.inputs.iter().enumerate() {
            if !cfg.alarms.iter().any(|a| a.id == input.alarm) {
                self.err(
                    format!("mqtt.inputs[{i}].alarm"),
                    format!(
                        "`{}` is not an alarm id; add it under [[alarms]] first",
                        input.alarm
                    ),
                );
            }
            if input.topic.is_empty() || input.topic.contains(['#', '+']) {
                self.err(
                    format!("mqtt.inputs[{i}].topic"),
                    "must be one exact topic, without the wildcards # and +",
                );
            }
        }
    }

    fn gpio_line<'a>(
        &mut self,
        lines: &mut HashMap<(&'a str, &'a LineRef), String>,
        path: String,
        chip: &'a str,
        line: &'a LineRef,
    ) {
        let chip_norm = normalise_chip(chip);
        if chip_norm.is_empty() {
            self.err(
                format!("{path}.chip"),
                "must name a GPIO chip such as gpiochip0",
            );
            return;
        }
        if matches!(line, LineRef::Name(n) if n.is_empty()) {
            self.err(format!("{path}.line"), "a line name must not be empty");
            return;
        }
        match lines.get(&(chip_norm, line)) {
            Some(first) => self.err(
                format!("{path}.line"),
                format!("line {line} on {chip_norm} is already used by {first}"),
            ),
            None => {
                lines.insert((chip_norm, line), path);
            }
        }
    }
}

/// Records that index `i` uses `key`; returns the index that used it first, if any. Empty keys
/// are never duplicates (they are reported as empty instead).
fn first_use<'a>(seen: &mut HashMap<&'a str, usize>, key: &'a str, i: usize) -> Option<usize> {
    if key.is_empty() {
        return None;
    }
    match seen.entry(key) {
        Entry::Occupied(first) => Some(*first.get()),
        Entry::Vacant(slot) => {
            slot.insert(i);
            None
        }
    }
}

/// `gpiochip0` and `/dev/gpiochip0` are the same chip.
pub fn normalise_chip(chip: &str) -> &str {
    chip.strip_prefix("/dev/").unwrap_or(chip)
}

/// "; known: a, b" for messages about unknown stream ids.
fn known_streams(cfg: &Config) -> String {
    if cfg.streams.is_empty() {
        "; no streams are configured".to_string()
    } else {
        let ids: Vec<&str> = cfg.streams.iter().map(|s| s.id.as_str()).collect();
        format!("; known streams: {}", ids.join(", "))
    }
}
