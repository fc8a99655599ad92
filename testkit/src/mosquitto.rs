//! Debian's Mosquitto broker (`/usr/sbin/mosquitto`, package `mosquitto`) as a child process on
//! a loopback port, with a generated config file: anonymous, or with a password file for the
//! authentication tests. [`Mosquitto::restart`] kills it and starts it again on the same port
//! (the reconnect tests).

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The broker binary Debian installs.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A running broker; killed on drop.
pub struct Mosquitto {
    /// The broker process.
    child: Option<Child>,
    /// Its loopback port.
    pub port: u16,
    /// Holds the config (and password) files.
    dir: PathBuf,
}

impl Mosquitto {
    /// A broker on a free loopback port; `users` (name, password) turn anonymous access off.
    /// Panics with the package to install when Mosquitto is missing.
    pub fn start(users: &[(&str, &str)]) -> Mosquitto {
        assert!(
            std::path::Path::new(MOSQUITTO).exists(),
            "{MOSQUITTO} is missing: install the Debian packages `mosquitto mosquitto-clients`"
        );
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("edgecam-mosquitto-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("broker dir");
        let mut conf = format!("listener {port} 127.0.0.1\npersistence false\n");
        if users.is_empty() {
            conf.push_str("allow_anonymous true\n");
        } else {
            let pw = dir.join("passwd");
            std::fs::write(&pw, "").expect("password file");
            for (user, pass) in users {
                let st = Command::new("mosquitto_passwd")
                    .args(["-b"])
                    .arg(&pw)
                    .args([user, pass])
                    .status()
                    .expect("mosquitto_passwd (package mosquitto)");
                assert!(st.success(), "mosquitto_passwd failed");
            }
            conf.push_str(&format!(
                "allow_anonymous false\npassword_file {}\n",
                pw.display()
            ));
        }
        let mut f = std::fs::File::create(dir.join("mosquitto.conf")).expect("broker config");
        f.write_all(conf.as_bytes()).expect("broker config");
        let mut m = Mosquitto {
            child: None,
            port,
            dir,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the broker (SIGKILL: no clean goodbye to the clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the broker and starts it again on the same port, with no retained messages.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
