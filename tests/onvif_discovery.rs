//! The Cameras tab's *Discover* (`POST /api/onvif/discover`) end to end, inside two network
//! namespaces this test creates and deletes (never on a real network): namespace `a` holds
//! the daemon and its web server, namespace `b` a camera as WS-Discovery sees it (PyPI's
//! WSDiscovery publishing an ONVIF NetworkVideoTransmitter, tests/support/wsd_responder.py),
//! a veth pair between them with a multicast route on each side. The probe is the real one
//! (multicast to 239.255.255.250:3702 out of the namespace's only interface). A third test has
//! an IPv6-only link: the probe to ff02::c finds a camera (tests/support/wsd6_responder.py)
//! there.
//!
//! Needs root (CI runs as root), iproute2 (`ip`), and WSDiscovery in a venv at
//! `<target>/wsd-venv` (.ci/run makes it) or at `$EDGECAM_WSD_PYTHON`.

mod common;
mod webutil;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use webutil::{ADMIN_TOKEN, TestServer, VIEWER_TOKEN};

/// The address of the daemon's side, and of the camera's.
const ADDR_A: &str = "10.231.7.1";
/// The camera's address (its XAddr points here).
const ADDR_B: &str = "10.231.7.2";
/// The camera's endpoint reference.
const ENDPOINT: &str = "urn:uuid:5f0e7a10-1d2c-4b3a-9e8f-0a1b2c3d4e5f";

/// Runs `ip args`; panics with what to install or fix when it cannot.
/// One test at a time: the box answers 409 to a second Discover while one listens (one
/// probe per process), and the tests' daemons share this process.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` ({e}): install the Debian package iproute2"));
    assert!(
        out.status.success(),
        "`ip {}` failed: {} (this test creates network namespaces and must run as root; \
         `ip` comes from the Debian package iproute2)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Two namespaces joined by a veth pair; deleted (with the pair) on drop.
struct Namespaces {
    /// The daemon's namespace.
    a: String,
    /// The camera's namespace.
    b: String,
    /// The responder inside `b`, killed before the namespaces go.
    responder: Option<Child>,
    /// `edgecam demo` inside `a` (the browser test), killed before the namespaces go.
    daemon: Option<Child>,
}

impl Namespaces {
    /// Two new namespaces with nothing in them yet, and the names for the two ends of the
    /// link between them; `tag` (one letter) keeps the names of tests running at once apart.
    fn empty(tag: char) -> (Namespaces, String, String) {
        let pid = std::process::id();
        let ns = Namespaces {
            a: format!("edgecam-wsd-a{tag}-{pid}"),
            b: format!("edgecam-wsd-b{tag}-{pid}"),
            responder: None,
            daemon: None,
        };
        ip(&["netns", "add", &ns.a]);
        ip(&["netns", "add", &ns.b]);
        (ns, format!("ewa{tag}{pid}"), format!("ewb{tag}{pid}"))
    }

    /// A new pair; `tag` (one letter) keeps the names of tests running at once apart.
    fn create(tag: char) -> Namespaces {
        let (ns, va, vb) = Namespaces::empty(tag);
        // Made inside `a` with its peer moved straight into `b`: the host's own namespace
        // never sees either end.
        ip(&[
            "-n", &ns.a, "link", "add", &va, "type", "veth", "peer", "name", &vb, "netns", &ns.b,
        ]);
        for (n, dev, addr) in [(&ns.a, &va, ADDR_A), (&ns.b, &vb, ADDR_B)] {
            ip(&["-n", n, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", n, "link", "set", dev, "up"]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
            ip(&["-n", n, "route", "add", "224.0.0.0/4", "dev", dev]);
        }
        ns
    }

    /// Starts the WS-Discovery responder in `b` and waits for its `ready`.
    fn start_responder(&mut self) {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/wsd_responder.py");
        let xaddr = format!("http://{ADDR_B}:8080/onvif/device_service");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.b])
            .arg(wsd_python())
            .arg(script)
            .args([ENDPOINT, &xaddr])
            .args([
                "onvif://www.onvif.org/type/video_encoder",
                "onvif://www.onvif.org/name/Gate%20camera",
                "onvif://www.onvif.org/hardware/WSD%20Test%20Cam",
                "onvif://www.onvif.org/location/car%20park",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the WS-Discovery responder");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        self.responder = Some(child);
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the WS-Discovery responder did not start"
        );
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for mut c in [self.responder.take(), self.daemon.take()]
            .into_iter()
            .flatten()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// The camera's side of the IPv6-only pair (a unique-local address, no IPv4 at all).
const ADDR6_B: &str = "fd31:7::2";

impl Namespaces {
    /// A pair joined by a veth with IPv6 only: unique-local addresses (`fd31:7::1`, `::2`) and
    /// the link-local ones, duplicate address detection off so they are usable at once.
    /// Returns the namespaces and the camera side's interface name.
    fn create_v6(tag: char) -> (Namespaces, String) {
        let (ns, va, vb) = Namespaces::empty(tag);
        for n in [&ns.a, &ns.b] {
            for key in ["all", "default"] {
                ip(&[
                    "netns",
                    "exec",
                    n,
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{key}.accept_dad=0"),
                ]);
            }
        }
        ip(&[
            "-n", &ns.a, "link", "add", &va, "type", "veth", "peer", "name", &vb, "netns", &ns.b,
        ]);
        for (n, dev, addr) in [(&ns.a, &va, "fd31:7::1"), (&ns.b, &vb, ADDR6_B)] {
            ip(&["-n", n, "link", "set", "lo", "up"]);
            ip(&["-n", n, "link", "set", dev, "up"]);
            ip(&[
                "-n",
                n,
                "-6",
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                dev,
                "nodad",
            ]);
        }
        (ns, vb)
    }

    /// Starts the IPv6 responder (`tests/support/wsd6_responder.py`) on `dev` in `b`.
    fn start_v6_responder(&mut self, dev: &str) {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/wsd6_responder.py");
        let xaddr = format!("http://[{ADDR6_B}]:8080/onvif/device_service");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.b, "/usr/bin/python3"])
            .arg(script)
            .args([dev, ENDPOINT, &xaddr, "Gate%20camera"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the IPv6 WS-Discovery responder");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        self.responder = Some(child);
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the IPv6 responder did not start");
    }
}

/// *Discover* on an IPv6-only LAN: no IPv4 anywhere on the link, the camera answers only the
/// IPv6 group `ff02::c`; the probe goes out of the namespace's interface and finds it.
#[test]
fn discover_finds_a_camera_over_ipv6() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (mut ns, dev) = Namespaces::create_v6('6');
    ns.start_v6_responder(&dev);
    let a = ns.a.clone();
    let body = std::thread::spawn(move || {
        enter(&a);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let srv = TestServer::start().await;
            let (status, body) =
                discover(&srv, ADMIN_TOKEN, serde_json::json!({"wait_ms": 1500})).await;
            srv.stop().await;
            assert_eq!(status, 200, "{body}");
            body
        })
    })
    .join()
    .expect("the daemon side passed");
    let devices = body["devices"].as_array().expect("a device list");
    assert_eq!(devices.len(), 1, "{body}");
    assert_eq!(devices[0]["endpoint"], ENDPOINT);
    assert_eq!(devices[0]["name"], "Gate camera");
    assert_eq!(
        devices[0]["xaddrs"],
        serde_json::json!([format!("http://[{ADDR6_B}]:8080/onvif/device_service")])
    );
}

/// The Python that has WSDiscovery: `$EDGECAM_WSD_PYTHON`, else `<target>/wsd-venv/bin/python`.
fn wsd_python() -> PathBuf {
    let python = std::env::var_os("EDGECAM_WSD_PYTHON").map_or_else(
        || {
            PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("target/tmp has a parent")
                .join("wsd-venv/bin/python")
        },
        PathBuf::from,
    );
    let ok = Command::new(&python)
        .args(["-c", "import wsdiscovery"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} cannot import wsdiscovery: make the venv with `python3 -m venv {}` (Debian package \
         python3-venv) and `pip install WSDiscovery==2.1.2` into it (.ci/run does), or point \
         EDGECAM_WSD_PYTHON at a Python that has it",
        python.display(),
        python
            .parent()
            .and_then(|p| p.parent())
            .unwrap_or(&python)
            .display()
    );
    python
}

/// Moves the calling thread into namespace `name` (threads it starts later follow it).
fn enter(name: &str) {
    let f = std::fs::File::open(format!("/run/netns/{name}")).expect("the namespace exists");
    // SAFETY: setns on a descriptor we hold open; it changes only this thread's namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// `POST /api/onvif/discover` with `token` and `body`: status and JSON.
async fn discover(
    srv: &TestServer,
    token: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = srv
        .with_token(reqwest::Method::POST, "/api/onvif/discover", token)
        .json(&body)
        .send()
        .await
        .expect("the daemon answers");
    let status = r.status().as_u16();
    (status, r.json().await.expect("a JSON body"))
}

#[test]
fn discover_finds_the_camera_in_the_namespace_and_only_for_admin() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut ns = Namespaces::create('x');
    let a = ns.a.clone();
    // The daemon and the client both run in `a`: a thread that enters it first and only then
    // starts its runtime (whose worker threads inherit the namespace).
    let daemon_side = move |ns_b_ready: std::sync::mpsc::Receiver<()>,
                            before: std::sync::mpsc::Sender<()>| {
        enter(&a);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let srv = TestServer::start().await;
            let (status, _) = discover(&srv, VIEWER_TOKEN, serde_json::json!({})).await;
            assert_eq!(status, 403, "a viewer may not probe the LAN");
            let (status, body) =
                discover(&srv, ADMIN_TOKEN, serde_json::json!({"wait_ms": 50})).await;
            assert_eq!(
                (status, &body["field"]),
                (400, &serde_json::json!("wait_ms"))
            );
            // Nobody answers yet: an empty list, not an error.
            let (status, body) =
                discover(&srv, ADMIN_TOKEN, serde_json::json!({"wait_ms": 600})).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["devices"], serde_json::json!([]));
            before.send(()).unwrap();
            ns_b_ready.recv().unwrap();
            let (status, body) =
                discover(&srv, ADMIN_TOKEN, serde_json::json!({"wait_ms": 2500})).await;
            assert_eq!(status, 200, "{body}");
            srv.stop().await;
            body
        })
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (before_tx, before_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || daemon_side(ready_rx, before_tx));
    before_rx
        .recv()
        .expect("the daemon side got to its first probe");
    ns.start_responder();
    ready_tx.send(()).unwrap();
    let body = thread.join().expect("the daemon side passed");
    let devices = body["devices"].as_array().expect("a device list");
    assert_eq!(devices.len(), 1, "{body}");
    let d = &devices[0];
    assert_eq!(d["endpoint"], ENDPOINT);
    assert_eq!(d["name"], "Gate camera");
    assert_eq!(d["hardware"], "WSD Test Cam");
    assert_eq!(d["location"], "car park");
    assert_eq!(d["host"], format!("{ADDR_B}:8080"));
    assert_eq!(
        d["xaddrs"],
        serde_json::json!([format!("http://{ADDR_B}:8080/onvif/device_service")])
    );
    assert!(
        d["types"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().ends_with(":NetworkVideoTransmitter")),
        "{d}"
    );
}

/// The installer's Discover in headless Chromium (`tests/browser/discover.mjs`): the real
/// daemon binary (`edgecam demo`) and Chromium both run in namespace `a` (`ip netns exec`);
/// first nobody answers and the page says so, then the camera in `b` answers and is added
/// with its name and device service.
#[test]
fn the_installer_discovers_and_adds_a_camera_in_chromium() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let chromium =
        PathBuf::from(std::env::var_os("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    assert!(
        chromium.exists(),
        "{} is missing: install the Debian package chromium",
        chromium.display()
    );
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser (Debian package npm)"
    );
    let mut ns = Namespaces::create('y');
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Command::new("ip")
        .args(["netns", "exec", &ns.a, env!("CARGO_BIN_EXE_edgecam")])
        .args(["demo", "--streams", "1", "--listen", "127.0.0.1:8080"])
        .args(["--https-listen", "127.0.0.1:8443", "--state-dir"])
        .arg(state.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("edgecam demo starts");
    let stdout = daemon.stdout.take().expect("piped stdout");
    ns.daemon = Some(daemon);
    // The daemon's output is read to its end (a closed pipe would fail its next line).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("demo: {line}");
            if let Some(pw) = line.split("one-time admin password: ").nth(1) {
                let _ = tx.send(pw.trim().to_string());
            }
        }
    });
    let password = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("demo prints a one-time admin password");
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let mut node = Command::new("ip")
        .args(["netns", "exec", &ns.a, "node"])
        .arg(browser_dir.join("discover.mjs"))
        .args(["8080", &password])
        .arg(&artifacts)
        .env("CHROMIUM", &chromium)
        .current_dir(&browser_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("node not runnable ({e}): install Node.js (Debian `nodejs`)"));
    let mut stdin = node.stdin.take().expect("piped stdin");
    let mut out = BufReader::new(node.stdout.take().expect("piped stdout"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        print!("discover.mjs: {line}");
        seen.push_str(&line);
        if line.trim() == "WAITING" {
            ns.start_responder();
            writeln!(stdin, "go").unwrap();
        }
    }
    let status = node.wait().unwrap();
    assert!(
        status.success() && seen.contains("WAITING"),
        "discover.mjs failed (screenshots in {})",
        artifacts.display()
    );
}
