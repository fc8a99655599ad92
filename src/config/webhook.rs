//! `[[webhooks]]`: HTTP endpoints that are told about alarm and switch events
//! ([`crate::hooks`] delivers them).

use serde::{Deserialize, Serialize};

/// Which events a webhook is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookEvent {
    /// An alarm became active.
    Raise,
    /// An alarm's input cleared, or its hold ran out.
    Clear,
    /// A latched alarm was acknowledged.
    Ack,
    /// The shown stream changed.
    Switch,
}

impl HookEvent {
    /// Every event, the default filter.
    pub const ALL: [HookEvent; 4] = [
        HookEvent::Raise,
        HookEvent::Clear,
        HookEvent::Ack,
        HookEvent::Switch,
    ];

    /// The event as the config and the JSON body spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::Raise => "raise",
            HookEvent::Clear => "clear",
            HookEvent::Ack => "ack",
            HookEvent::Switch => "switch",
        }
    }
}

/// An extra request header, for receivers that want a key in a header of their own.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookHeader {
    /// Header name, such as `X-Api-Key`.
    pub name: String,
    /// Header value; a secret, never logged.
    pub value: String,
}

/// One `[[webhooks]]` entry.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL the events are POSTed to.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`; a secret, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    /// A header of the receiver's own (an API key); a secret, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HookHeader>,
    /// The events sent; all of them when left out.
    #[serde(default = "default_events")]
    pub events: Vec<HookEvent>,
    /// Events waiting while the receiver is slow or down; the oldest is dropped past this.
    #[serde(default = "default_queue")]
    pub queue: u32,
    /// Tries per event (the first one included) before it counts as failed.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Longest wait for one attempt (connect, TLS and answer), ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// Default: every event.
fn default_events() -> Vec<HookEvent> {
    HookEvent::ALL.to_vec()
}

/// Default queue: enough for a burst of alarms while the receiver restarts.
pub fn default_queue() -> u32 {
    64
}

/// Default tries per event (with the backoff: 1 + 2 + 4 + 8 s of waiting in between).
pub fn default_attempts() -> u32 {
    5
}

/// Default attempt timeout, ms.
pub fn default_timeout_ms() -> u64 {
    5000
}

impl WebhookConfig {
    /// A webhook to `url` with every default.
    pub fn new(url: impl Into<String>) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            bearer_token: None,
            header: None,
            events: default_events(),
            queue: default_queue(),
            attempts: default_attempts(),
            timeout_ms: default_timeout_ms(),
        }
    }

    /// The URL without credentials, query or fragment, for logs and the status page (a
    /// receiver may carry its key in the query string).
    pub fn display_url(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(u) => {
                format!(
                    "{}://{}{}",
                    u.scheme(),
                    u.host_str().unwrap_or(""),
                    u.port().map(|p| format!(":{p}")).unwrap_or_default()
                ) + u.path()
            }
            Err(_) => "(invalid url)".to_string(),
        }
    }
}

/// Secrets stay out of `{:?}` (configs are logged in debug output and errors).
impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.display_url())
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "***"))
            .field("header", &self.header)
            .field("events", &self.events)
            .field("queue", &self.queue)
            .field("attempts", &self.attempts)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// The value stays out of `{:?}`.
impl std::fmt::Debug for HookHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookHeader")
            .field("name", &self.name)
            .field("value", &"***")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets_and_url_credentials() {
        let mut h = WebhookConfig::new("https://user:pw@example.org:8443/hook?key=s3cret");
        h.bearer_token = Some("tok-s3cret".into());
        h.header = Some(HookHeader {
            name: "X-Key".into(),
            value: "hdr-s3cret".into(),
        });
        let text = format!("{h:?}");
        assert!(!text.contains("s3cret") && !text.contains("pw"), "{text}");
        assert!(text.contains("https://example.org:8443/hook"), "{text}");
    }
}
