//! HTTPS beside plain HTTP (issue 16, item 1), with real TLS clients: `curl` for requests and
//! `openssl s_client` for the certificate a client really gets. The box's own certificate is
//! served and its fingerprint is the one `/api/status` shows; a user's certificate replaces it
//! live; a key that is not the certificate's is refused and the old certificate stays; on the
//! HTTPS listener a browser's Origin must be `https://`.

mod common;
mod webutil;

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};
use webutil::*;

/// Runs a tool; a missing one fails naming its Debian package. The tools block: the tests run
/// on a multi-threaded runtime so that the server answers meanwhile.
fn tool(name: &str, package: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "`{name}` is missing: apt-get install {package}");
    Command::new(name)
}

/// The SHA-256 fingerprint (`AB:CD:...`) of the certificate served at `addr`, as openssl sees it.
fn served_fingerprint(addr: &str) -> String {
    let _ = tool("openssl", "openssl");
    let out = tool("sh", "dash")
        .args([
            "-c",
            &format!(
                "openssl s_client -connect {addr} -servername localhost </dev/null 2>/dev/null \
                 | openssl x509 -noout -fingerprint -sha256"
            ),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .split_once('=')
        .map(|(_, f)| f.to_string())
        .unwrap_or_else(|| panic!("openssl printed a fingerprint: {text:?}"))
}

/// `curl -k` to the HTTPS listener: (status, body).
fn curl(
    https: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&str>,
) -> (u16, String) {
    let mut cmd = tool("curl", "curl");
    cmd.args([
        "-sk",
        "--max-time",
        "30",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let out = cmd.arg(format!("https://{https}{path}")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn https_status(s: &TestServer, st: &Value) -> (String, bool) {
    let h = &st["https"];
    let port = s.server.as_ref().unwrap().https_addr().unwrap().port();
    assert_eq!(h["port"], port, "{h}");
    (
        h["fingerprint_sha256"].as_str().unwrap().to_string(),
        h["self_made"].as_bool().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_box_certificate_and_takes_the_users_own() {
    let s = TestServer::start_https().await;
    let https = s.server.as_ref().unwrap().https_addr().unwrap().to_string();
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}");

    let (code, body) = curl(&https, "GET", "/api/health", &[], None);
    assert_eq!(code, 200, "{body}");
    let st = s.get_json("/api/status", ADMIN_TOKEN).await;
    let (fingerprint, self_made) = https_status(&s, &st);
    assert!(self_made);
    assert_eq!(
        served_fingerprint(&https),
        fingerprint,
        "the fingerprint shown is the one served"
    );

    // A key that is not the certificate's: refused, named, and the old certificate stays.
    let a = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let mismatched = json!({"cert_pem": a.cert.pem(), "key_pem": b.signing_key.serialize_pem()});
    let r = s
        .with_token(Method::POST, "/api/tls", ADMIN_TOKEN)
        .json(&mismatched)
        .go()
        .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["field"], "key_pem");
    assert!(
        e["error"].as_str().unwrap().contains("does not belong"),
        "{e}"
    );
    assert_eq!(served_fingerprint(&https), fingerprint);

    // The user's own certificate: served at once, over the HTTPS listener itself.
    let own =
        json!({"cert_pem": a.cert.pem(), "key_pem": a.signing_key.serialize_pem()}).to_string();
    let (code, body) = curl(&https, "POST", "/api/tls", &[&auth], Some(&own));
    assert_eq!(code, 200, "{body}");
    let new_fp = serde_json::from_str::<Value>(&body).unwrap()["fingerprint_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_fp, fingerprint);
    assert_eq!(served_fingerprint(&https), new_fp);
    let st = s.get_json("/api/status", ADMIN_TOKEN).await;
    assert_eq!(https_status(&s, &st), (new_fp, false));
    // Only an admin may.
    let r = s
        .with_token(Method::POST, "/api/tls", OPERATOR_TOKEN)
        .json(&mismatched)
        .go()
        .await;
    assert_eq!(r.status(), 403);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_https_a_browsers_origin_must_be_https() {
    let s = TestServer::start_https().await;
    let https = s.server.as_ref().unwrap().https_addr().unwrap().to_string();
    let auth = format!("Authorization: Bearer {OPERATOR_TOKEN}");
    let body = r#"{"stream":"cam2"}"#;
    let good = format!("Origin: https://{https}");
    let (code, text) = curl(&https, "POST", "/api/active", &[&auth, &good], Some(body));
    assert_eq!(code, 200, "{text}");
    let plain = format!("Origin: http://{https}");
    let (code, _) = curl(&https, "POST", "/api/active", &[&auth, &plain], Some(body));
    assert_eq!(code, 403, "an http:// page is another site");
    s.stop().await;
}
