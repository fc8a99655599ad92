//! The config file's shape: plain serde structs, one per TOML table.
//!
//! Everything here is what the file *says*; [`mod@super::validate`] decides whether it makes sense.
//! Defaults live in the `default_*` functions so that the README's reference can quote them.

use serde::{Deserialize, Serialize};

/// The whole configuration. `Config::default()` is what an empty file means: no streams, the
/// web page on its default address (a last resort when no config file is usable).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The web server: listen address, authentication, JPEG output settings.
    #[serde(default)]
    pub web: WebConfig,
    /// Per-stream ring budget.
    #[serde(default)]
    pub ring: RingConfig,
    /// Where the daemon keeps its state.
    #[serde(default)]
    pub paths: PathsConfig,
    /// The cameras.
    #[serde(default)]
    pub streams: Vec<StreamConfig>,
    /// How the active stream is chosen.
    #[serde(default)]
    pub select: SelectConfig,
    /// Alarm inputs and their rules.
    #[serde(default)]
    pub alarms: Vec<AlarmConfig>,
    /// HTTP endpoints told about alarm and switch events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<super::WebhookConfig>,
    /// The site's MQTT broker: state, Home Assistant discovery, commands, alarm inputs. Off
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttConfig>,
    /// Event clips written on alarms.
    #[serde(default)]
    pub clips: ClipsConfig,
}

/// `[clips]`: event clips, a few seconds before an alarm to a few seconds after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipsConfig {
    /// On by default (a clip on every alarm raise): the default directory is in the state
    /// directory, which is the data partition on the appliance image, and the oldest clips
    /// make room both within the quota and when fewer than `min_free_bytes` are free.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Where clips go; `<state_dir>/clips` when absent.
    #[serde(default)]
    pub dir: Option<std::path::PathBuf>,
    /// Most bytes all clips may take; the oldest go first.
    #[serde(default = "default_clip_quota_bytes")]
    pub quota_bytes: u64,
    /// Most clips kept; the oldest go first.
    #[serde(default = "default_clip_quota_count")]
    pub quota_count: u32,
    /// Seconds before the raise (from the ring, starting at a keyframe at or before).
    #[serde(default = "default_clip_pre_s")]
    pub pre_s: u32,
    /// Seconds after the alarm ends.
    #[serde(default = "default_clip_post_s")]
    pub post_s: u32,
    /// Longest clip, seconds, however long the alarm lasts.
    #[serde(default = "default_clip_max_s")]
    pub max_s: u32,
    /// Free bytes the clips leave on the file system: a write that would go below stops
    /// the clip with a `full` state (an SD card that fills up slows everything down).
    #[serde(default = "default_clip_min_free_bytes")]
    pub min_free_bytes: u64,
    /// Also record video-loss alarms (off: a lost stream has nothing to record).
    #[serde(default)]
    pub video_loss: bool,
}

impl Default for ClipsConfig {
    fn default() -> Self {
        ClipsConfig {
            enabled: true,
            dir: None,
            quota_bytes: default_clip_quota_bytes(),
            quota_count: default_clip_quota_count(),
            pre_s: default_clip_pre_s(),
            post_s: default_clip_post_s(),
            max_s: default_clip_max_s(),
            min_free_bytes: default_clip_min_free_bytes(),
            video_loss: false,
        }
    }
}

fn default_clip_quota_bytes() -> u64 {
    1 << 30
}
fn default_clip_quota_count() -> u32 {
    500
}
fn default_clip_pre_s() -> u32 {
    10
}
fn default_clip_post_s() -> u32 {
    20
}
fn default_clip_max_s() -> u32 {
    120
}
fn default_clip_min_free_bytes() -> u64 {
    64 * 1024 * 1024
}

/// `[web]`: the local web page and API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port to listen on, e.g. `0.0.0.0:8080`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Argon2 PHC hash of the admin password; when absent the page asks for one on first use.
    #[serde(default)]
    pub admin_password_hash: Option<String>,
    /// Bearer tokens for machine clients such as an external detector.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// JPEG quality (1-100) for the JPEG live path, snapshots and MJPEG.
    #[serde(default = "default_jpeg_quality")]
    pub jpeg_quality: u8,
    /// Integer downscale factor (1 = full size) for the JPEG outputs.
    #[serde(default = "default_jpeg_downscale")]
    pub jpeg_downscale: u8,
    /// More names the box is reached by (a DNS name, a reverse proxy's name), besides its
    /// addresses, its hostname and `<hostname>.local`: a state-changing request or a live
    /// WebSocket for any other `Host` is refused (DNS rebinding).
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Serve HTTPS with the box's own certificate beside plain HTTP (browsers decode H.264
    /// only in a secure context).
    #[serde(default = "default_https")]
    pub https: bool,
    /// Address and port of the HTTPS listener, e.g. `0.0.0.0:8443`.
    #[serde(default = "default_https_listen")]
    pub https_listen: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: default_listen(),
            admin_password_hash: None,
            tokens: Vec::new(),
            jpeg_quality: default_jpeg_quality(),
            jpeg_downscale: default_jpeg_downscale(),
            hostnames: Vec::new(),
            https: default_https(),
            https_listen: default_https_listen(),
        }
    }
}

fn default_listen() -> String {
    "0.0.0.0:8080".to_string()
}
fn default_https() -> bool {
    true
}
fn default_https_listen() -> String {
    "0.0.0.0:8443".to_string()
}
fn default_jpeg_quality() -> u8 {
    75
}
fn default_jpeg_downscale() -> u8 {
    1
}

/// One API token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who uses the token; shown in logs instead of the token itself.
    pub name: String,
    /// The secret sent as `Authorization: Bearer <token>`.
    pub token: String,
    /// What the token may do.
    #[serde(default)]
    pub role: Role,
}

/// What an authenticated client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watch only.
    Viewer,
    /// Watch, select streams, raise and acknowledge alarms.
    #[default]
    Operator,
    /// Everything, including the config.
    Admin,
}

/// `[ring]`: the per-stream memory budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingConfig {
    /// Payload arena per stream, in bytes.
    #[serde(default = "default_ring_bytes")]
    pub bytes_per_stream: u64,
    /// Descriptor slots per stream (the most frames a ring can hold).
    #[serde(default = "default_ring_slots")]
    pub slots_per_stream: u32,
    /// The most bytes a ring may grow to when the stream's measured bitrate needs more than
    /// `bytes_per_stream` to hold `clips.pre_s` (`crate::ring::sizing`); unset: the larger
    /// of `bytes_per_stream` and [`DEFAULT_RING_MAX_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes_per_stream: Option<u64>,
}

/// The cap of a ring sized from its stream's bitrate when `ring.max_bytes_per_stream` is unset.
pub const DEFAULT_RING_MAX_BYTES: u64 = 64 * 1024 * 1024;

impl RingConfig {
    /// The most bytes one ring may have: `max_bytes_per_stream`, or without it the larger of
    /// `bytes_per_stream` and [`DEFAULT_RING_MAX_BYTES`]; never below `bytes_per_stream`.
    pub fn cap_bytes(&self) -> u64 {
        self.max_bytes_per_stream
            .unwrap_or(DEFAULT_RING_MAX_BYTES)
            .max(self.bytes_per_stream)
    }
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            bytes_per_stream: default_ring_bytes(),
            slots_per_stream: default_ring_slots(),
            max_bytes_per_stream: None,
        }
    }
}

fn default_ring_bytes() -> u64 {
    16 * 1024 * 1024
}
fn default_ring_slots() -> u32 {
    512
}

/// `[paths]`: files the daemon writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsConfig {
    /// Directory for `state.bin` and the config written from the web page.
    #[serde(default = "default_state_dir")]
    pub state_dir: std::path::PathBuf,
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            state_dir: default_state_dir(),
        }
    }
}

fn default_state_dir() -> std::path::PathBuf {
    "/var/lib/edgecam".into()
}

/// What kind of source a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// An IP camera over RTSP.
    Rtsp,
    /// A local USB camera through V4L2.
    V4l2,
    /// A synthetic moving picture, encoded locally; needs no camera.
    Testpattern,
}

/// RTSP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP first; when the camera refuses RTSP over TCP (461 Unsupported Transport, as
    /// VLC's server does), UDP. What worked is remembered per camera (across restarts too,
    /// in the state directory) and tried first on the next session.
    #[default]
    Auto,
    /// RTP interleaved on the RTSP TCP connection; works through NAT and loses nothing.
    Tcp,
    /// RTP over UDP; lower overhead on a clean LAN.
    Udp,
}

/// One `[[streams]]` entry. Fields that apply only to some kinds are optional here and
/// checked against the kind by validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Stable identifier used in the API and URLs (letters, digits, `-`, `_`).
    pub id: String,
    /// Human name shown on the page; defaults to the id.
    #[serde(default)]
    pub name: Option<String>,
    /// The source kind.
    pub kind: StreamKind,
    /// `rtsp`: the camera URL, credentials included (they are never logged).
    #[serde(default)]
    pub url: Option<String>,
    /// `rtsp`: the camera's sub stream (a smaller picture), credentials included. When set,
    /// snapshots, thumbnails, MJPEG and the JPEG live path decode it while it is live; the
    /// big live view keeps the main `url`. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_url: Option<String>,
    /// `rtsp`: `auto` (default: TCP, UDP when the camera refuses TCP), `tcp` or `udp`.
    #[serde(default)]
    pub transport: Transport,
    /// `v4l2`: device path such as `/dev/video0`.
    #[serde(default)]
    pub device: Option<String>,
    /// `v4l2` / `testpattern`: picture width in pixels.
    #[serde(default)]
    pub width: Option<u32>,
    /// `v4l2` / `testpattern`: picture height in pixels.
    #[serde(default)]
    pub height: Option<u32>,
    /// `v4l2` / `testpattern`: frames per second.
    #[serde(default)]
    pub fps: Option<u32>,
    /// `v4l2` (raw formats) / `testpattern`: H.264 encoder bitrate in kbit/s.
    #[serde(default)]
    pub bitrate_kbps: Option<u32>,
    /// `v4l2` (raw formats) / `testpattern`: keyframe interval in frames.
    #[serde(default)]
    pub gop: Option<u32>,
    /// Time allowed from connect to the first frame before the attempt counts as failed.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time without a frame after which a live stream counts as stalled.
    #[serde(default = "default_stall_timeout_ms")]
    pub stall_timeout_ms: u64,
    /// How long a `failed` stream (wrong credentials, no such stream, unsupported codec)
    /// waits before it tries again, in seconds: long, because cameras lock an account after
    /// a few bad logins. *Test connection* and a config change retry at once.
    #[serde(default = "default_failed_retry_s")]
    pub failed_retry_s: u64,
    /// A disabled stream stays in the config but is not ingested.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl StreamConfig {
    /// A test-pattern camera of `width`x`height` at `fps`, every other key at its default, as
    /// if the TOML entry gave only these. Tests, benchmarks and tools start from it and set
    /// what they need (`StreamConfig { gop: Some(10), ..StreamConfig::testpattern(..) }`).
    pub fn testpattern(id: impl Into<String>, width: u32, height: u32, fps: u32) -> StreamConfig {
        StreamConfig {
            id: id.into(),
            name: None,
            kind: StreamKind::Testpattern,
            url: None,
            sub_url: None,
            transport: Transport::default(),
            device: None,
            width: Some(width),
            height: Some(height),
            fps: Some(fps),
            bitrate_kbps: None,
            gop: None,
            connect_timeout_ms: default_connect_timeout_ms(),
            stall_timeout_ms: default_stall_timeout_ms(),
            failed_retry_s: default_failed_retry_s(),
            enabled: true,
        }
    }

    /// The name to show: `name`, or the id when none is set.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
    /// The config the sub stream runs with: this one with `sub_url` as its `url`; `None`
    /// when the camera has no sub stream.
    pub fn sub_stream(&self) -> Option<StreamConfig> {
        let url = self.sub_url.clone()?;
        Some(StreamConfig {
            url: Some(url),
            sub_url: None,
            ..self.clone()
        })
    }
    /// Width, with the default of 1280.
    pub fn width_or_default(&self) -> u32 {
        self.width.unwrap_or(1280)
    }
    /// Height, with the default of 720.
    pub fn height_or_default(&self) -> u32 {
        self.height.unwrap_or(720)
    }
    /// Frame rate, with the default of 25.
    pub fn fps_or_default(&self) -> u32 {
        self.fps.unwrap_or(25)
    }
    /// Encoder bitrate in kbit/s, with the default of 2000.
    pub fn bitrate_kbps_or_default(&self) -> u32 {
        self.bitrate_kbps.unwrap_or(2000)
    }
    /// Keyframe interval in frames, with the default of two seconds' worth.
    pub fn gop_or_default(&self) -> u32 {
        self.gop.unwrap_or(2 * self.fps_or_default())
    }
}

fn default_connect_timeout_ms() -> u64 {
    5000
}
fn default_stall_timeout_ms() -> u64 {
    3000
}
fn default_failed_retry_s() -> u64 {
    300
}
fn default_true() -> bool {
    true
}

/// What happens when several alarms of the top priority are active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Multiple {
    /// Cycle through their streams, `dwell_s` each.
    #[default]
    Sequence,
    /// The most recently raised one wins.
    Latest,
}

/// `[select]`: how the active stream is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectConfig {
    /// Stream shown when the user has chosen none and no alarm is active; the first stream if unset.
    #[serde(default)]
    pub default: Option<String>,
    /// Several top-priority alarms: `sequence` or `latest`.
    #[serde(default)]
    pub multiple: Multiple,
    /// Seconds per stream when cycling through alarms.
    #[serde(default = "default_dwell_s")]
    pub dwell_s: u32,
    /// The view does not change more often than this (anti-flicker), except for a higher-priority alarm.
    #[serde(default = "default_min_dwell_ms")]
    pub min_dwell_ms: u32,
}

impl Default for SelectConfig {
    fn default() -> Self {
        SelectConfig {
            default: None,
            multiple: Multiple::default(),
            dwell_s: default_dwell_s(),
            min_dwell_ms: default_min_dwell_ms(),
        }
    }
}

fn default_dwell_s() -> u32 {
    5
}
fn default_min_dwell_ms() -> u32 {
    1000
}

/// How an alarm behaves after its input clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmMode {
    /// Active exactly while the input is active.
    #[default]
    Transparent,
    /// Stays active `hold_s` seconds after the input clears; a re-trigger restarts the hold.
    Hold,
    /// Stays active until acknowledged.
    Latched,
}

impl AlarmMode {
    /// The mode as the config spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmMode::Transparent => "transparent",
            AlarmMode::Hold => "hold",
            AlarmMode::Latched => "latched",
        }
    }
}

/// One `[[alarms]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmConfig {
    /// Stable identifier used in the API (`/api/alarms/{id}/trigger`).
    pub id: String,
    /// Human name for the banner; defaults to the id.
    #[serde(default)]
    pub name: Option<String>,
    /// The stream this alarm calls up.
    pub stream: String,
    /// Higher wins among active alarms.
    #[serde(default)]
    pub priority: i32,
    /// transparent, hold or latched.
    #[serde(default)]
    pub mode: AlarmMode,
    /// Hold time in seconds for `hold` mode.
    #[serde(default = "default_hold_s")]
    pub hold_s: u32,
    /// Raise this alarm when its stream has been stalled or reconnecting for `video_loss_after_s`.
    #[serde(default)]
    pub video_loss: bool,
    /// Seconds of lost video before a video-loss alarm is raised.
    #[serde(default = "default_video_loss_after_s")]
    pub video_loss_after_s: u32,
    /// A GPIO input (a contact) that raises the alarm.
    #[serde(default)]
    pub gpio: Option<GpioInputConfig>,
    /// The camera's own events (ONVIF) that raise the alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onvif: Option<super::OnvifInputConfig>,
    /// A GPIO output (relay, buzzer) driven while the alarm is active.
    #[serde(default)]
    pub output: Option<GpioOutputConfig>,
}

impl AlarmConfig {
    /// The name to show: `name`, or the id when none is set.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

fn default_hold_s() -> u32 {
    30
}
fn default_video_loss_after_s() -> u32 {
    10
}

/// A GPIO line, by offset on its chip or by the name the device tree gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LineRef {
    /// Line offset on the chip.
    Offset(u32),
    /// Line name, e.g. `GPIO17`.
    Name(String),
}

impl std::fmt::Display for LineRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineRef::Offset(o) => write!(f, "{o}"),
            LineRef::Name(n) => write!(f, "{n}"),
        }
    }
}

/// Which electrical level means "active".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActiveLevel {
    /// Active low: a normally-open contact to ground with a pull-up.
    #[default]
    Low,
    /// Active high.
    High,
}

/// Input bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bias {
    /// Internal pull-up.
    #[default]
    PullUp,
    /// Internal pull-down.
    PullDown,
    /// No internal bias (an external resistor is fitted).
    None,
}

/// `[alarms.gpio]`: a contact input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioInputConfig {
    /// Chip name (`gpiochip0`) or path (`/dev/gpiochip0`).
    #[serde(default = "default_chip")]
    pub chip: String,
    /// The line, by offset or name.
    pub line: LineRef,
    /// Which level is "alarm".
    #[serde(default)]
    pub active: ActiveLevel,
    /// Internal bias.
    #[serde(default)]
    pub bias: Bias,
    /// Debounce period in milliseconds.
    #[serde(default = "default_debounce_ms")]
    pub debounce_ms: u32,
}

/// `[alarms.output]`: a relay or buzzer line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioOutputConfig {
    /// Chip name or path.
    #[serde(default = "default_chip")]
    pub chip: String,
    /// The line, by offset or name.
    pub line: LineRef,
    /// Which level drives the relay on.
    #[serde(default = "default_output_active")]
    pub active: ActiveLevel,
}

fn default_chip() -> String {
    "gpiochip0".to_string()
}
fn default_debounce_ms() -> u32 {
    20
}
fn default_output_active() -> ActiveLevel {
    ActiveLevel::High
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testpattern_is_what_the_toml_with_those_keys_gives() {
        let parsed: StreamConfig = toml::from_str(
            "id = \"cam1\"\nkind = \"testpattern\"\nwidth = 320\nheight = 180\nfps = 10",
        )
        .unwrap();
        assert_eq!(StreamConfig::testpattern("cam1", 320, 180, 10), parsed);
    }
}

/// `[mqtt]`: the box on the site's MQTT broker (docs/mqtt.md has the topic layout).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port: 1883, or 8883 with TLS.
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// Connect with TLS (rustls), checking the broker's certificate against `ca_file` or the
    /// system's certificate store.
    #[serde(default)]
    pub tls: bool,
    /// A PEM file with the CA that signed the broker's certificate (a site's own CA).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// MQTT user name, when the broker asks for one.
    #[serde(default)]
    pub username: Option<String>,
    /// MQTT password; never logged.
    #[serde(default)]
    pub password: Option<String>,
    /// This box's id: every topic is under `edgecam/<box_id>/`, so it must be unique on the
    /// broker.
    pub box_id: String,
    /// What commands over MQTT may do, as the roles of the HTTP API (`viewer` takes none).
    #[serde(default)]
    pub role: Role,
    /// Publish Home Assistant discovery config under `discovery_prefix`.
    #[serde(default = "default_true")]
    pub discovery: bool,
    /// Home Assistant's discovery prefix.
    #[serde(default = "default_discovery_prefix")]
    pub discovery_prefix: String,
    /// The page's address as Home Assistant reaches it (`http://edgebox.local:8080`): each
    /// camera then appears as an `image` entity showing its snapshot. No cameras when unset.
    #[serde(default)]
    pub snapshot_base_url: Option<String>,
    /// First reconnect delay (ms) after the broker is lost; doubles up to `reconnect_max_ms`.
    #[serde(default = "default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay (ms).
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// Alarms raised by messages on topics (a Zigbee door sensor, another box, Node-RED).
    #[serde(default)]
    pub inputs: Vec<MqttInputConfig>,
}

impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("box_id", &self.box_id)
            .field("role", &self.role)
            .field("inputs", &self.inputs)
            .finish_non_exhaustive()
    }
}

/// One `[[mqtt.inputs]]`: an alarm input fed by an MQTT topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttInputConfig {
    /// The alarm (an `[[alarms]]` id) this topic raises and clears.
    pub alarm: String,
    /// The exact topic (no wildcards), e.g. `zigbee2mqtt/door/contact` or another box's
    /// `edgecam/boxa/alarms/door/state`.
    pub topic: String,
    /// Payloads that mean "in alarm" (compared after trimming white space).
    #[serde(default = "default_mqtt_on")]
    pub on: Vec<String>,
    /// Payloads that mean "clear"; anything else is logged and ignored.
    #[serde(default = "default_mqtt_off")]
    pub off: Vec<String>,
}

fn default_mqtt_port() -> u16 {
    1883
}

fn default_discovery_prefix() -> String {
    "homeassistant".to_string()
}

fn default_reconnect_min_ms() -> u64 {
    500
}

fn default_reconnect_max_ms() -> u64 {
    30_000
}

fn default_mqtt_on() -> Vec<String> {
    ["ON", "on", "true", "1", "active", "holding", "latched"]
        .map(String::from)
        .to_vec()
}

fn default_mqtt_off() -> Vec<String> {
    ["OFF", "off", "false", "0", "idle"]
        .map(String::from)
        .to_vec()
}
