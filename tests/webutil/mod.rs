//! Shared harness for the web tests: a daemon with test-pattern streams behind a real web
//! server on a free port, and helpers for a real HTTP client (reqwest) and WebSocket client
//! (tokio-tungstenite). Config fixtures come from `tests/common`: a test that uses this module
//! declares `mod common;` beside `mod webutil;`.
#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use edgecam::clock::{Clock, SystemClock};
use edgecam::config::{Config, Role, TokenConfig};
use edgecam::daemon::alarms::GpioBackends;
use edgecam::daemon::{Daemon, Serving};
use edgecam::output::live::LiveOptions;
use edgecam::output::wire::FrameHeader;
use edgecam::web::{WebOptions, WebServer};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The admin password of [`config`].
pub const ADMIN_PASSWORD: &str = "correct horse battery";
/// A viewer token.
pub const VIEWER_TOKEN: &str = "viewer-token-0123456789";
/// An operator token.
pub const OPERATOR_TOKEN: &str = "operator-token-0123456789";
/// An admin token.
pub const ADMIN_TOKEN: &str = "admin-token-0123456789ab";

/// The Argon2 hash of [`ADMIN_PASSWORD`], computed once per test binary.
pub fn admin_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| edgecam::secret::hash_password(ADMIN_PASSWORD).unwrap())
        .clone()
}

/// [`crate::common::three_cameras`] on any free port, one token per role, the admin hash.
pub fn config(dir: &std::path::Path) -> Config {
    let mut cfg = crate::common::three_cameras(dir);
    cfg.web.listen = "127.0.0.1:0".into();
    cfg.web.admin_password_hash = Some(admin_hash());
    cfg.web.tokens = vec![
        token("viewer", VIEWER_TOKEN, Role::Viewer),
        token("operator", OPERATOR_TOKEN, Role::Operator),
        token("admin", ADMIN_TOKEN, Role::Admin),
    ];
    edgecam::config::validate(&cfg).expect("test config is valid");
    cfg
}

/// [`config`] with one RTSP camera, `id` named `name` at `url`, as the only stream and the
/// default view, and no alarms.
pub fn rtsp_camera_config(dir: &std::path::Path, id: &str, name: &str, url: &str) -> Config {
    let mut cfg = config(dir);
    cfg.streams = vec![edgecam::config::StreamConfig {
        name: Some(name.into()),
        kind: edgecam::config::StreamKind::Rtsp,
        url: Some(url.into()),
        width: None,
        height: None,
        fps: None,
        ..edgecam::config::StreamConfig::testpattern(id, 2, 2, 1)
    }];
    cfg.select.default = Some(id.into());
    cfg.alarms.clear();
    edgecam::config::validate(&cfg).expect("test config is valid");
    cfg
}

/// Stream `id`'s row of an `/api/status` body.
pub fn stream_row<'a>(st: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    st["streams"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == id))
        .expect("the camera is in the status")
}

fn token(name: &str, token: &str, role: Role) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        token: token.into(),
        role,
    }
}

/// A running server and what a test needs to talk to it.
pub struct TestServer {
    /// The server (taken by `stop`).
    pub server: Option<WebServer>,
    /// The daemon behind it, on its own task (taken by `stop`).
    pub daemon: Option<Serving>,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// `127.0.0.1:port`.
    pub host: String,
    /// The state directory (kept alive for the test).
    pub dir: tempfile::TempDir,
    /// The HTTP client.
    pub http: reqwest::Client,
}

impl TestServer {
    /// Starts a daemon with `cfg` (its state dir is replaced by a fresh one) and serves it.
    pub async fn start_with(
        cfg_fn: impl FnMut(&std::path::Path) -> Config,
        options: WebOptions,
    ) -> TestServer {
        Self::start_with_gpio(cfg_fn, options, GpioBackends::system()).await
    }

    /// Like [`TestServer::start_with`], over the GPIO backends `gpio` (mock lines).
    pub async fn start_with_gpio(
        cfg_fn: impl FnMut(&std::path::Path) -> Config,
        options: WebOptions,
        gpio: GpioBackends,
    ) -> TestServer {
        Self::start_full(cfg_fn, options, gpio, false).await
    }

    /// [`config`], and HTTPS on a free loopback port with the box's own certificate.
    pub async fn start_https() -> TestServer {
        Self::start_full(config, WebOptions::default(), GpioBackends::system(), true).await
    }

    async fn start_full(
        mut cfg_fn: impl FnMut(&std::path::Path) -> Config,
        options: WebOptions,
        gpio: GpioBackends,
        https: bool,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg_fn(dir.path());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let daemon = Daemon::start_with(cfg, Arc::clone(&clock), gpio)
            .await
            .unwrap();
        let (handles, daemon) = Serving::start(daemon);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https = if https {
            let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            let cert = edgecam::web::tls::load_or_make(dir.path(), &names).unwrap();
            Some(edgecam::web::HttpsSetup {
                listener: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                tls: edgecam::web::tls::TlsState::new(dir.path().to_path_buf(), cert),
            })
        } else {
            None
        };
        let server = WebServer::start_with_https(handles, listener, https, options, clock)
            .await
            .unwrap();
        let host = server.local_addr().to_string();
        TestServer {
            server: Some(server),
            daemon: Some(daemon),
            base: format!("http://{host}"),
            host,
            dir,
            http: reqwest::Client::new(),
        }
    }

    /// [`config`] with default options.
    pub async fn start() -> TestServer {
        Self::start_with(config, WebOptions::default()).await
    }

    /// [`config`] without an admin password: a new box, waiting for its first-use setup.
    pub async fn start_new_box() -> TestServer {
        Self::start_with(
            |dir| {
                let mut cfg = config(dir);
                cfg.web.admin_password_hash = None;
                cfg
            },
            WebOptions::default(),
        )
        .await
    }

    /// [`config`] with these live options.
    pub async fn start_live(live: LiveOptions) -> TestServer {
        Self::start_with(
            config,
            WebOptions {
                live,
                ..WebOptions::default()
            },
        )
        .await
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request to `path` with no credentials.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// `GET path` with no credentials.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    /// `POST path` with no credentials.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path)
    }

    /// `POST /api/login` with `password`; the answer, whatever it is.
    pub async fn login_as(&self, password: &str) -> reqwest::Response {
        self.post("/api/login")
            .json(&serde_json::json!({"password": password}))
            .go()
            .await
    }

    /// `GET path` with a token; the JSON body, whatever the status.
    pub async fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        self.with_token(reqwest::Method::GET, path, token)
            .go()
            .await
            .json()
            .await
            .expect("a JSON body")
    }

    /// A request with `Authorization: Bearer token`.
    pub fn with_token(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.request(method, path)
            .header("authorization", format!("Bearer {token}"))
    }

    /// Logs in with the admin password; the `Cookie` header value for later requests.
    pub async fn login(&self) -> String {
        let r = self.login_as(ADMIN_PASSWORD).await;
        assert_eq!(r.status(), 200, "login failed");
        session_cookie(&r)
    }

    /// Waits until `/api/status` (as admin) satisfies `f`.
    pub async fn wait_status(
        &self,
        what: &str,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        for _ in 0..500 {
            let st = self.get_json("/api/status", ADMIN_TOKEN).await;
            if f(&st) {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// Frames stored so far by `stream` (from `/api/status`).
    pub async fn frames(&self, stream: &str) -> u64 {
        let st = self.wait_status("status", |_| true).await;
        st["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == stream)
            .and_then(|s| s["frames"].as_u64())
            .unwrap_or(0)
    }

    /// Opens `/api/live` with a token; sends `hello` with `codecs`.
    pub async fn live(&self, token: &str, codecs: &[&str], query: &str) -> LiveClient {
        let stream = tokio::net::TcpStream::connect(&self.host).await.unwrap();
        self.live_over(stream, token, codecs, query).await
    }

    /// Like [`TestServer::live`] over a given TCP stream (for a client with a tiny buffer).
    pub async fn live_over(
        &self,
        stream: tokio::net::TcpStream,
        token: &str,
        codecs: &[&str],
        query: &str,
    ) -> LiveClient {
        live_client(stream, &self.host, token, codecs, query).await
    }

    /// Stops the server, then the daemon.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        if let Some(d) = self.daemon.take() {
            d.shutdown().await;
        }
    }
}

/// `send().await` for tests: the server must answer (any status).
pub trait Go {
    /// Sends the request; panics when there is no HTTP answer at all.
    fn go(self) -> impl std::future::Future<Output = reqwest::Response>;
}

impl Go for reqwest::RequestBuilder {
    async fn go(self) -> reqwest::Response {
        self.send().await.expect("the server answers")
    }
}

/// The session cookie (`name=value`) a response set.
pub fn session_cookie(r: &reqwest::Response) -> String {
    let set = r
        .headers()
        .get("set-cookie")
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap();
    set.split(';').next().unwrap().to_string()
}

/// Opens `/api/live` on `host` over `stream` with a bearer token and sends `hello` with
/// `codecs`. `query` is appended to the path (`""` or `?mode=jpeg`).
pub async fn live_client(
    stream: tokio::net::TcpStream,
    host: &str,
    token: &str,
    codecs: &[&str],
    query: &str,
) -> LiveClient {
    let mut req = format!("ws://{host}/api/live{query}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    let hello = serde_json::json!({"type": "hello", "codecs": codecs}).to_string();
    ws.send(Message::text(hello)).await.unwrap();
    LiveClient { ws }
}

/// What a live client receives.
#[derive(Debug, Clone)]
pub enum Live {
    /// A text message, parsed.
    Text(serde_json::Value),
    /// A binary frame: header and payload.
    Frame(FrameHeader, Vec<u8>),
}

/// A WebSocket client of `/api/live`.
pub struct LiveClient {
    /// The socket.
    pub ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
}

impl LiveClient {
    /// The next message (20 s deadline).
    pub async fn next(&mut self) -> Live {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .expect("a live message within 20 s")
                .expect("the socket is open")
                .expect("no socket error");
            match msg {
                Message::Text(t) => return Live::Text(serde_json::from_str(t.as_str()).unwrap()),
                Message::Binary(b) => {
                    let h = FrameHeader::parse(&b).expect("a valid frame header");
                    return Live::Frame(h, b[edgecam::output::wire::HEADER_LEN..].to_vec());
                }
                _ => continue,
            }
        }
    }

    /// The next text message of `kind`, skipping frames.
    pub async fn next_text(&mut self, kind: &str) -> serde_json::Value {
        loop {
            if let Live::Text(v) = self.next().await
                && v["type"] == kind
            {
                return v;
            }
        }
    }

    /// The next `init` with a codec: the stream's video starts. An `init` without one (the
    /// stream has no video yet, for example a test pattern before its first keyframe) is
    /// skipped.
    pub async fn video_init(&mut self) -> serde_json::Value {
        loop {
            let init = self.next_text("init").await;
            if !init["codec"].is_null() {
                return init;
            }
        }
    }

    /// The next `init` and the first frame after it, checked: the frame belongs to that
    /// init's switch (`sid`) and is a keyframe. Frames before the `init` are skipped.
    /// An `init` without a codec (a stream without video yet) is skipped too.
    pub async fn init_and_keyframe(&mut self) -> (serde_json::Value, FrameHeader, Vec<u8>) {
        let init = self.video_init().await;
        let (h, payload) = self.next_frame().await;
        assert_eq!(
            Some(u64::from(h.sid)),
            init["sid"].as_u64(),
            "no frame of an earlier switch after the init: {init}"
        );
        assert_ne!(
            h.flags & edgecam::output::wire::FLAG_KEYFRAME,
            0,
            "the first frame after an init is a keyframe"
        );
        (init, h, payload)
    }

    /// The next binary frame.
    pub async fn next_frame(&mut self) -> (FrameHeader, Vec<u8>) {
        loop {
            if let Live::Frame(h, p) = self.next().await {
                return (h, p);
            }
        }
    }
}
