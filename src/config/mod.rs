//! Configuration: the TOML schema ([`schema`]), its validation ([`mod@validate`]) and the files it
//! is read from and written to ([`load`]).

pub mod load;
pub mod onvif;
pub mod schema;
pub mod validate;
pub mod webhook;

pub use load::{
    ConfigError, ConfigOrigin, EffectiveConfig, LIVE_CONFIG_FILE, check_file, load_effective,
    load_file, parse, save_live, to_toml,
};
pub use onvif::{OnvifInputConfig, OnvifTarget};
pub use schema::*;
pub use validate::{FieldError, report, validate};
pub use webhook::{HookEvent, HookHeader, WebhookConfig};
