//! Who may do what: the admin password (Argon2, hashed by [`crate::secret`]), session cookies, bearer tokens, roles,
//! and the per-client login rate limit. The Host and Origin checks are in [`super::origin`].
//!
//! - The admin password is an Argon2 PHC hash, from the config (`web.admin_password_hash`),
//!   set on first use through `POST /api/setup`, or (in `demo`) a one-time password printed
//!   at start that must be changed after the first login.
//! - A login gives an `HttpOnly; SameSite=Strict` session cookie with the `admin` role.
//!   Sessions live in memory and expire after [`SESSION_IDLE`] without use.
//! - Machine clients send `Authorization: Bearer <token>` with a token from `web.tokens`,
//!   each with its role (`viewer` < `operator` < `admin`).
//! - The read-only media URLs (snapshot, MJPEG) and `/metrics` take a [`MediaCaller`]: besides
//!   the above, HTTP Basic with a token's name as user and the token as password, or the token
//!   in the query (`?token=`), for VLC, Home Assistant, OpenCV and Prometheus, which can send
//!   nothing else. Their 401 carries `WWW-Authenticate: Basic`. The admin password is never
//!   accepted over Basic: that would let any unauthenticated request run Argon2.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::AppState;
use super::error::ApiError;
use crate::config::{Role, TokenConfig};
use crate::secret::{random_token, verify_password};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "edgecam_session";
/// A session unused for this long is forgotten.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// Failed logins allowed per client within [`LOGIN_WINDOW`].
pub const LOGIN_MAX_FAILURES: u32 = 5;
/// The window over which failed logins are counted.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Most sessions kept; the oldest is dropped beyond it (a bound on memory).
const MAX_SESSIONS: usize = 256;
/// Most clients tracked by the rate limiter.
const MAX_TRACKED_CLIENTS: usize = 4096;
/// Password hashes computed at once (login, setup, password change). Each Argon2 run takes
/// [`crate::secret::ARGON2_MEMORY_KIB`] of memory and most of a core; more callers get 503 at
/// once instead of queueing threads and memory (a login storm stays flat).
pub const MAX_CONCURRENT_HASHES: usize = 2;
/// Paths a session with a one-time password may still use (to change it).
const ONE_TIME_ALLOWED: [&str; 3] = ["/api/session", "/api/password", "/api/logout"];
/// The challenge on a media URL's 401: it makes VLC, ffmpeg and browsers send Basic.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"edgecam\"";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// What it may do.
    pub role: Role,
    /// Who it is, for logs: `session` or the token's name.
    pub name: String,
    /// True for a session opened with a one-time password that has not been changed yet.
    pub must_change_password: bool,
}

impl Caller {
    /// Fails with 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if rank(self.role) >= rank(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the {} role may not do this",
                role_name(self.role)
            )))
        }
    }
}

/// Orders roles: viewer < operator < admin.
fn rank(r: Role) -> u8 {
    match r {
        Role::Viewer => 0,
        Role::Operator => 1,
        Role::Admin => 2,
    }
}

/// The role as the config spells it.
pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

/// One logged-in browser.
#[derive(Debug, Clone)]
struct Session {
    /// Always admin today; kept so sessions and tokens share one check.
    role: Role,
    /// Forgotten after this instant unless used again.
    expires: Instant,
    /// Opened with the one-time password: only the password change is allowed.
    must_change: bool,
}

/// Failed logins from one client address.
#[derive(Debug, Clone, Copy)]
struct Failures {
    /// Start of the counting window.
    since: Instant,
    /// Failures in the window.
    count: u32,
}

/// Mutable authentication state.
#[derive(Debug, Default)]
struct Inner {
    /// The admin password hash; `None` until set on first use.
    admin_hash: Option<String>,
    /// The hash is a one-time (demo) password: logins with it must change it.
    one_time: bool,
    /// Sessions by their cookie value.
    sessions: HashMap<String, Session>,
    /// Failed logins by client address.
    failures: HashMap<IpAddr, Failures>,
    /// A first-use setup is in progress (a second concurrent one is refused).
    setup_claimed: bool,
    /// Bearer tokens from the config.
    tokens: Vec<TokenConfig>,
}

/// Authentication state shared by all requests.
#[derive(Debug, Clone)]
pub struct Auth {
    /// Everything, behind one short-held lock (never held across an await or a hash).
    inner: Arc<Mutex<Inner>>,
    /// Permits to run a password hash; see [`MAX_CONCURRENT_HASHES`].
    hashing: Arc<Semaphore>,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            inner: Arc::default(),
            hashing: Arc::new(Semaphore::new(MAX_CONCURRENT_HASHES)),
        }
    }
}

/// The right to run one password hash; see [`Auth::hash_permit`].
#[derive(Debug)]
pub struct HashPermit(
    /// Released on drop.
    #[allow(dead_code)]
    OwnedSemaphorePermit,
);

impl Auth {
    /// State for `admin_hash` (from the config) and `tokens`.
    pub fn new(admin_hash: Option<String>, tokens: Vec<TokenConfig>) -> Auth {
        let auth = Auth::default();
        {
            let mut inner = auth.lock();
            inner.admin_hash = admin_hash;
            inner.tokens = tokens;
        }
        auth
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs a one-time admin password (the `demo` mode's printed password).
    pub fn set_one_time_hash(&self, hash: String) {
        let mut inner = self.lock();
        inner.admin_hash = Some(hash);
        inner.one_time = true;
    }

    /// Takes the admin hash and tokens of a new config. A config without a hash keeps the
    /// current one (so a config edited on the page does not drop the password); a different
    /// hash closes every session except `keep_session` (the one that changed it).
    pub fn update_from_config(
        &self,
        admin_hash: Option<&str>,
        tokens: &[TokenConfig],
        keep_session: Option<&str>,
    ) {
        let changed = {
            let mut inner = self.lock();
            inner.tokens = tokens.to_vec();
            admin_hash.filter(|h| inner.admin_hash.as_deref() != Some(*h))
        };
        if let Some(h) = changed {
            self.password_changed(h.to_string(), keep_session);
        }
    }

    /// The current admin hash, if any.
    pub fn admin_hash(&self) -> Option<String> {
        self.lock().admin_hash.clone()
    }

    /// True until an admin password exists (the page then asks for one).
    pub fn needs_setup(&self) -> bool {
        self.lock().admin_hash.is_none()
    }

    /// Claims the first-use setup: true for exactly one caller while no password exists.
    pub fn claim_setup(&self) -> bool {
        let mut inner = self.lock();
        if inner.admin_hash.is_some() || inner.setup_claimed {
            return false;
        }
        inner.setup_claimed = true;
        true
    }

    /// Gives up a claim whose setup failed.
    pub fn release_setup(&self) {
        self.lock().setup_claimed = false;
    }

    /// The caller behind a request's `Authorization` header or session cookie.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(token) = bearer(headers) {
            return token_caller(&inner.tokens, None, token).ok_or_else(ApiError::unauthorized);
        }
        let Some(id) = cookie(headers, SESSION_COOKIE) else {
            return Err(ApiError::unauthorized());
        };
        inner.sessions.retain(|_, s| s.expires > now);
        let session = inner
            .sessions
            .get_mut(id)
            .ok_or_else(ApiError::unauthorized)?;
        session.expires = now + SESSION_IDLE;
        Ok(Caller {
            role: session.role,
            name: "session".to_string(),
            must_change_password: session.must_change,
        })
    }

    /// The caller of a media URL (snapshot, MJPEG, metrics) and the credential it used: HTTP
    /// Basic (user = a token's name, password = the token), a bearer token, a session cookie,
    /// or `token=` in `query`. Every credential presented is tried; any valid one admits.
    pub fn authenticate_media(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(Caller, Credential), ApiError> {
        if let Some((user, pass)) = basic(headers)
            && let Some(c) = token_caller(&self.lock().tokens, Some(&user), &pass)
        {
            return Ok((c, Credential::Token(pass)));
        }
        if let Ok(c) = self.authenticate(headers) {
            let cred = match bearer(headers) {
                Some(t) => Credential::Token(t.to_string()),
                None => Credential::Session(
                    cookie(headers, SESSION_COOKIE)
                        .unwrap_or_default()
                        .to_string(),
                ),
            };
            return Ok((c, cred));
        }
        let token = query_token(query).ok_or_else(ApiError::unauthorized)?;
        let c =
            token_caller(&self.lock().tokens, None, &token).ok_or_else(ApiError::unauthorized)?;
        Ok((c, Credential::Token(token)))
    }

    /// True while `cred` would still be accepted: a long-lived response (MJPEG) asks again
    /// now and then, so deleting a token from the config also ends its open streams.
    pub fn still_valid(&self, cred: &Credential) -> bool {
        let now = Instant::now();
        let inner = self.lock();
        match cred {
            Credential::Token(t) => token_caller(&inner.tokens, None, t).is_some(),
            Credential::Session(id) => inner.sessions.get(id).is_some_and(|s| s.expires > now),
        }
    }

    /// A permit to run one password hash now, or 503 at once when
    /// [`MAX_CONCURRENT_HASHES`] are running.
    pub fn hash_permit(&self) -> Result<HashPermit, ApiError> {
        match Arc::clone(&self.hashing).try_acquire_owned() {
            Ok(p) => Ok(HashPermit(p)),
            Err(_) => {
                let mut e = ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "the box is busy checking other passwords; try again in a second",
                );
                e.retry_after_s = Some(1);
                Err(e)
            }
        }
    }

    /// Counts a login attempt from `ip` before its password is checked, so that parallel
    /// attempts cannot all pass the limit: 429 once `ip` has used up its attempts. A
    /// successful login forgets the count.
    fn begin_attempt(&self, ip: IpAddr, now: Instant) -> Result<(), ApiError> {
        // One lock for the check and the count: two parallel attempts cannot both see room.
        let mut inner = self.lock();
        if inner.failures.len() >= MAX_TRACKED_CLIENTS {
            inner.failures.retain(|_, f| now < f.since + LOGIN_WINDOW);
        }
        let f = inner.failures.entry(ip).or_insert(Failures {
            since: now,
            count: 0,
        });
        if now >= f.since + LOGIN_WINDOW {
            *f = Failures {
                since: now,
                count: 0,
            };
        }
        if f.count >= LOGIN_MAX_FAILURES {
            let wait = (f.since + LOGIN_WINDOW - now).as_secs().max(1);
            let mut e = ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed logins; try again in {wait} s"),
            );
            e.retry_after_s = Some(wait);
            return Err(e);
        }
        f.count += 1;
        Ok(())
    }

    /// Checks the admin password and opens a session; returns the cookie value and whether
    /// the password must be changed first. 401 for a wrong password, 429 when rate-limited.
    ///
    /// The attempt counts against `ip` before the (expensive) check: of any number of parallel
    /// attempts at most [`LOGIN_MAX_FAILURES`] are checked, and at most
    /// [`MAX_CONCURRENT_HASHES`] at a time (503 for the rest).
    pub async fn login(&self, ip: IpAddr, password: String) -> Result<(String, bool), ApiError> {
        let now = Instant::now();
        let (hash, one_time) = {
            let inner = self.lock();
            (inner.admin_hash.clone(), inner.one_time)
        };
        let Some(hash) = hash else {
            return Err(ApiError::forbidden(
                "no admin password is set yet; set one first",
            ));
        };
        self.begin_attempt(ip, now)?;
        let permit = self.hash_permit()?;
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        drop(permit);
        if !ok {
            tracing::warn!(client = %ip, "failed login");
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "wrong password",
            ));
        }
        self.lock().failures.remove(&ip);
        let id = self.open_session(Role::Admin, one_time)?;
        tracing::info!(client = %ip, "admin logged in");
        Ok((id, one_time))
    }

    /// A new session; its cookie value.
    pub fn open_session(&self, role: Role, must_change: bool) -> Result<String, ApiError> {
        let id = random_token().map_err(|e| ApiError::internal("no random source", &e))?;
        let mut inner = self.lock();
        if inner.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = inner
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            inner.sessions.remove(&oldest);
        }
        inner.sessions.insert(
            id.clone(),
            Session {
                role,
                expires: Instant::now() + SESSION_IDLE,
                must_change,
            },
        );
        Ok(id)
    }

    /// Forgets the session of these request headers, if any.
    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            self.lock().sessions.remove(id);
        }
    }

    /// Installs a new admin password hash (already persisted by the caller): every other
    /// session is closed, and the one-time flag is gone.
    pub fn password_changed(&self, hash: String, keep_session: Option<&str>) {
        let mut inner = self.lock();
        inner.admin_hash = Some(hash);
        inner.one_time = false;
        inner
            .sessions
            .retain(|id, _| keep_session.is_some_and(|k| k == id));
        for s in inner.sessions.values_mut() {
            s.must_change = false;
        }
    }
}

/// What a media caller authenticated with, to check again later ([`Auth::still_valid`]).
/// Kept in memory only, never logged.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A token from `web.tokens` (bearer, Basic password or `?token=`).
    Token(String),
    /// A session cookie's value.
    Session(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret itself stays out of any debug output.
        f.write_str(match self {
            Credential::Token(_) => "Credential::Token(..)",
            Credential::Session(_) => "Credential::Session(..)",
        })
    }
}

/// The caller a token gives: the token matching `token` (and, when given, named `name`).
fn token_caller(tokens: &[TokenConfig], name: Option<&str>, token: &str) -> Option<Caller> {
    tokens
        .iter()
        .find(|t| {
            constant_time_eq(t.token.as_bytes(), token.as_bytes())
                && name.is_none_or(|n| n == t.name)
        })
        .map(|t| Caller {
            role: t.role,
            name: t.name.clone(),
            must_change_password: false,
        })
}

/// User and password of an `Authorization: Basic ...` header.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// The `token` parameter of a query string.
fn query_token(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// Compares secrets in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer ...` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie(id: &str) -> String {
    format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_IDLE.as_secs()
    )
}

/// The `Set-Cookie` value that deletes the session cookie.
pub fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let caller = state.auth.authenticate(&parts.headers)?;
        one_time_check(&caller, parts)?;
        Ok(caller)
    }
}

/// 403 for a session with the one-time password on anything but changing it.
fn one_time_check(caller: &Caller, parts: &Parts) -> Result<(), ApiError> {
    if caller.must_change_password && !ONE_TIME_ALLOWED.contains(&parts.uri.path()) {
        return Err(ApiError::forbidden(
            "change the one-time admin password first",
        ));
    }
    Ok(())
}

/// The caller of a read-only media URL (`snapshot.jpg`, `mjpeg`) or `/metrics`: also
/// accepts HTTP Basic and `?token=` (see [`Auth::authenticate_media`]); any role may read.
#[derive(Debug, Clone)]
pub struct MediaCaller {
    /// Who it is and its role (a viewer at least).
    pub caller: Caller,
    /// What it used, so a long response can check it is still valid.
    pub credential: Credential,
}

/// A media URL's refusal: the API's JSON error, plus `WWW-Authenticate: Basic` on a 401
/// (only here: on the page's JSON routes it would make browsers pop up a login dialog).
#[derive(Debug)]
pub struct MediaRejection(
    /// The error.
    pub ApiError,
);

impl IntoResponse for MediaRejection {
    fn into_response(self) -> Response {
        let challenge = self.0.status == StatusCode::UNAUTHORIZED;
        let mut resp = self.0.into_response();
        if challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BASIC_CHALLENGE),
            );
        }
        resp
    }
}

impl FromRequestParts<Arc<AppState>> for MediaCaller {
    type Rejection = MediaRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let (caller, credential) = state
            .auth
            .authenticate_media(&parts.headers, parts.uri.query())
            .map_err(MediaRejection)?;
        one_time_check(&caller, parts).map_err(MediaRejection)?;
        Ok(MediaCaller { caller, credential })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::test_headers as headers;

    #[test]
    fn cookies_and_bearer_are_parsed() {
        let h = headers(&[
            (header::COOKIE, "a=1; edgecam_session=abc"),
            (header::AUTHORIZATION, "Bearer  tok "),
        ]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
        assert_eq!(bearer(&h), Some("tok"));
    }

    #[test]
    fn media_urls_take_basic_with_the_token_name_or_the_token_in_the_query() {
        let token = |name: &str, token: &str| TokenConfig {
            name: name.into(),
            token: token.into(),
            role: Role::Viewer,
        };
        let auth = Auth::new(None, vec![token("cctv", "tok-1"), token("ha", "tok-2")]);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let basic = |s: &str| headers(&[(header::AUTHORIZATION, &format!("Basic {}", b64(s)))]);
        let (c, cred) = auth.authenticate_media(&basic("cctv:tok-1"), None).unwrap();
        assert_eq!((c.name.as_str(), c.role), ("cctv", Role::Viewer));
        assert_eq!(cred, Credential::Token("tok-1".into()));
        // The user must be the token's name; a wrong password or garbage is no credential.
        for bad in [basic("ha:tok-1"), basic("cctv:tok-3"), basic("cctv")] {
            assert!(auth.authenticate_media(&bad, None).is_err());
        }
        let garbage = headers(&[(header::AUTHORIZATION, "Basic !!!")]);
        assert!(auth.authenticate_media(&garbage, None).is_err());
        // The query form, percent-decoded; other parameters are ignored.
        let (c, _) = auth
            .authenticate_media(&HeaderMap::new(), Some("x=1&token=tok%2D2"))
            .unwrap();
        assert_eq!(c.name, "ha");
        assert!(
            auth.authenticate_media(&HeaderMap::new(), Some("token="))
                .is_err()
        );
        assert!(auth.authenticate_media(&HeaderMap::new(), None).is_err());
        // Any valid credential admits, even beside a wrong one.
        assert!(
            auth.authenticate_media(&basic("cctv:nope"), Some("token=tok-2"))
                .is_ok()
        );
        // Deleting the token from the config revokes it.
        assert!(auth.still_valid(&cred));
        auth.update_from_config(None, &[token("ha", "tok-2")], None);
        assert!(!auth.still_valid(&cred));
        assert!(auth.authenticate_media(&basic("cctv:tok-1"), None).is_err());
        assert_eq!(format!("{cred:?}"), "Credential::Token(..)");
    }

    #[test]
    fn roles_are_ordered() {
        let viewer = Caller {
            role: Role::Viewer,
            name: "v".into(),
            must_change_password: false,
        };
        assert!(viewer.require(Role::Viewer).is_ok());
        assert!(viewer.require(Role::Operator).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_logins_are_limited_per_client_and_expire() {
        let auth = Auth::new(None, Vec::new());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let now = Instant::now();
        for _ in 0..LOGIN_MAX_FAILURES {
            assert!(auth.begin_attempt(ip, now).is_ok());
        }
        let e = auth.begin_attempt(ip, now).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(auth.begin_attempt(other, now).is_ok());
        assert!(auth.begin_attempt(ip, now + LOGIN_WINDOW).is_ok());
    }

    #[test]
    fn hash_permits_are_bounded() {
        let auth = Auth::new(None, Vec::new());
        let held: Vec<_> = (0..MAX_CONCURRENT_HASHES)
            .map(|_| auth.hash_permit().unwrap())
            .collect();
        let e = auth.hash_permit().unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        drop(held);
        assert!(auth.hash_permit().is_ok());
    }
}
