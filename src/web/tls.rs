//! HTTPS with the box's own certificate.
//!
//! On first start the box makes a key and a self-signed certificate for the names it is reached
//! by (its hostname, `<hostname>.local`, `localhost`, its current addresses, `web.hostnames`)
//! and keeps both in `<state_dir>/tls.pem` (mode 0600, written atomically). A later start
//! reuses them, so the fingerprint an installer noted stays the same; a self-made certificate
//! whose names no longer cover the box (a new address) is made again. The user's own
//! certificate and key ([`TlsState::install`], the System tab) replace it live and are kept in
//! the same file. Browsers treat a page whose certificate the user accepted as a secure
//! context, so WebCodecs decodes H.264 there.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The file holding the certificate chain and the key, PEM, in the state directory.
pub const TLS_FILE: &str = "tls.pem";
/// The file listing the names a self-made certificate was made for (one per line).
const NAMES_FILE: &str = "tls-names.txt";

/// Why a certificate could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing the file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// rcgen could not make the certificate.
    #[error("cannot make the box's certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The PEM text holds no certificate.
    #[error(
        "no certificate found: paste the PEM text that starts with -----BEGIN CERTIFICATE-----"
    )]
    NoCertificate,
    /// The PEM text holds no usable private key.
    #[error(
        "no private key found: paste the PEM text that starts with -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY)"
    )]
    NoKey,
    /// The key is not the certificate's.
    #[error(
        "the private key does not belong to the certificate (their public keys differ); the current certificate stays"
    )]
    KeyMismatch,
    /// rustls refused the certificate or key.
    #[error("the certificate or key cannot be used: {0}")]
    Unusable(String),
}

/// A certificate in use, with what the page and the log show about it.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// SHA-256 of the end-entity certificate, `AB:CD:...`, for the user to compare.
    pub fingerprint_sha256: String,
    /// True for the box's own self-signed certificate, false for an uploaded one.
    pub self_made: bool,
    /// The chain and key as rustls serves them.
    key: Arc<CertifiedKey>,
}

impl Certificate {
    /// Parses a PEM certificate chain and private key and checks that they belong together.
    pub fn from_pem(cert_pem: &str, key_pem: &str, self_made: bool) -> Result<Self, TlsError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .filter_map(Result::ok)
                .collect();
        let first = chain.first().ok_or(TlsError::NoCertificate)?.clone();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| TlsError::NoKey)?;
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::Unusable(e.to_string()))?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(_)) => return Err(TlsError::KeyMismatch),
            Err(e) => return Err(TlsError::Unusable(e.to_string())),
        }
        Ok(Certificate {
            fingerprint_sha256: fingerprint(&first),
            self_made,
            key: Arc::new(certified),
        })
    }
}

/// The one crypto provider of the build: `ring`.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `AB:CD:...` of the SHA-256 of `der`.
fn fingerprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: Vec<String> = d.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// The names and addresses a certificate for this box should carry, deduplicated, sorted.
pub fn box_names(hostname: &str, extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if !hostname.is_empty() && hostname != "localhost" {
        names.push(hostname.to_string());
        if !hostname.ends_with(".local") {
            names.push(format!("{hostname}.local"));
        }
    }
    names.extend(local_addresses().iter().map(IpAddr::to_string));
    names.extend(extra.iter().map(|n| n.to_ascii_lowercase()));
    names.sort();
    names.dedup();
    names
}

/// This machine's IPv4 addresses (from /proc/net/fib_trie) and global IPv6 addresses (from
/// /proc/net/if_inet6); empty where /proc does not say.
fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") {
        out.extend(ipv4_locals(&trie));
    }
    if let Ok(table) = std::fs::read_to_string("/proc/net/if_inet6") {
        out.extend(ipv6_addresses(&table));
    }
    out
}

/// The `/32 host LOCAL` entries of a fib_trie listing: the box's own IPv4 addresses.
fn ipv4_locals(trie: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut last: Option<IpAddr> = None;
    for line in trie.lines() {
        let t = line.trim_start();
        if let Some(ip) = t.strip_prefix("|-- ").or_else(|| t.strip_prefix("+-- ")) {
            last = ip.split('/').next().and_then(|s| s.trim().parse().ok());
        } else if t.starts_with("/32 host LOCAL")
            && let Some(ip) = last
            && !ip.is_loopback()
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

/// The global (not loopback, not link-local) addresses of an if_inet6 table.
fn ipv6_addresses(table: &str) -> Vec<IpAddr> {
    table
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|hex| hex.len() == 32)
        .filter_map(|hex| u128::from_str_radix(hex, 16).ok())
        .map(std::net::Ipv6Addr::from)
        .filter(|a| !a.is_loopback() && !a.is_unicast_link_local())
        .map(IpAddr::V6)
        .collect()
}

/// A new self-signed certificate and key for `names`, as PEM.
fn make(names: &[String]) -> Result<(String, String), TlsError> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())?;
    Ok((made.cert.pem(), made.signing_key.serialize_pem()))
}

/// Splits the stored file into (certificate chain PEM, key PEM): the key block is the one
/// whose label ends in `PRIVATE KEY`.
fn split_pem(text: &str) -> (String, String) {
    let mut certs = String::new();
    let mut key = String::new();
    let mut in_key = false;
    for line in text.lines() {
        if line.starts_with("-----BEGIN ") {
            in_key = line.contains("PRIVATE KEY");
        }
        let target = if in_key { &mut key } else { &mut certs };
        target.push_str(line);
        target.push('\n');
    }
    (certs, key)
}

/// The box's certificate from `dir`, made (and stored) when there is none or a self-made one
/// no longer covers `names`.
pub fn load_or_make(dir: &Path, names: &[String]) -> Result<Certificate, TlsError> {
    let path = dir.join(TLS_FILE);
    let names_path = dir.join(NAMES_FILE);
    let wanted = names.join("\n");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let made_for = std::fs::read_to_string(&names_path).ok();
            let self_made = made_for.is_some();
            let (certs, key) = split_pem(&text);
            let stale = made_for.is_some_and(|m| m.trim() != wanted);
            match Certificate::from_pem(&certs, &key, self_made) {
                Ok(c) if !stale => return Ok(c),
                Ok(_) => tracing::info!("the box's names changed: making a new certificate"),
                Err(e) if !self_made => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "the stored certificate is unusable: making a new one")
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(TlsError::Io {
                action: "read",
                path,
                source,
            });
        }
    }
    let (certs, key) = make(names)?;
    let cert = Certificate::from_pem(&certs, &key, true)?;
    write(&path, &format!("{certs}{key}"))?;
    write(&names_path, &wanted)?;
    Ok(cert)
}

fn write(path: &Path, text: &str) -> Result<(), TlsError> {
    crate::persist::write_atomic(path, text.as_bytes()).map_err(|source| TlsError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// The certificate being served, swappable while connections come and go.
#[derive(Debug)]
pub struct TlsState {
    /// Where the certificate is kept.
    dir: PathBuf,
    /// What new handshakes get.
    current: RwLock<Arc<Certificate>>,
}

impl TlsState {
    /// Serves `cert`, kept in `dir`.
    pub fn new(dir: PathBuf, cert: Certificate) -> Arc<TlsState> {
        Arc::new(TlsState {
            dir,
            current: RwLock::new(Arc::new(cert)),
        })
    }

    /// The certificate new connections get.
    pub fn current(&self) -> Arc<Certificate> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Checks, stores (atomically) and serves the user's own certificate chain and key. On any
    /// error nothing changes. Blocking (a file write).
    pub fn install(&self, cert_pem: &str, key_pem: &str) -> Result<Arc<Certificate>, TlsError> {
        let cert = Arc::new(Certificate::from_pem(cert_pem, key_pem, false)?);
        let mut text = cert_pem.trim_end().to_string();
        text.push('\n');
        text.push_str(key_pem.trim_end());
        text.push('\n');
        write(&self.dir.join(TLS_FILE), &text)?;
        // Not self-made any more: a change of the box's names must not replace it.
        let _ = std::fs::remove_file(self.dir.join(NAMES_FILE));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&cert);
        Ok(cert)
    }

    /// The rustls configuration serving this state's certificate (HTTP/1.1 only).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Unusable(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(Arc::clone(self))));
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Hands every handshake the current certificate.
#[derive(Debug)]
struct Resolver(
    /// The state whose certificate is served.
    Arc<TlsState>,
);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.current().key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["edgebox".into(), "edgebox.local".into(), "127.0.0.1".into()]
    }

    #[test]
    fn a_made_certificate_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_make(dir.path(), &names()).unwrap();
        assert!(first.self_made);
        assert_eq!(first.fingerprint_sha256.len(), 32 * 3 - 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(TLS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_make(dir.path(), &names()).unwrap();
        assert_eq!(again.fingerprint_sha256, first.fingerprint_sha256);
        // A new address: a new certificate.
        let mut more = names();
        more.push("192.168.7.7".into());
        let renewed = load_or_make(dir.path(), &more).unwrap();
        assert_ne!(renewed.fingerprint_sha256, first.fingerprint_sha256);
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_and_the_old_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let state = TlsState::new(
            dir.path().into(),
            load_or_make(dir.path(), &names()).unwrap(),
        );
        let before = state.current().fingerprint_sha256.clone();
        let (cert_a, _) = make(&names()).unwrap();
        let (_, key_b) = make(&names()).unwrap();
        let e = state.install(&cert_a, &key_b).unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch), "{e}");
        assert!(e.to_string().contains("does not belong"));
        assert_eq!(state.current().fingerprint_sha256, before);
        assert!(matches!(
            state.install("junk", &key_b),
            Err(TlsError::NoCertificate)
        ));
        assert!(matches!(
            state.install(&cert_a, "junk"),
            Err(TlsError::NoKey)
        ));
        // A matching pair is served and kept: a restart serves it, it is not "self-made".
        let (cert_c, key_c) = make(&names()).unwrap();
        let installed = state.install(&cert_c, &key_c).unwrap();
        assert_eq!(
            state.current().fingerprint_sha256,
            installed.fingerprint_sha256
        );
        let reloaded = load_or_make(dir.path(), &["other".to_string()]).unwrap();
        assert_eq!(reloaded.fingerprint_sha256, installed.fingerprint_sha256);
        assert!(!reloaded.self_made);
    }

    #[test]
    fn the_box_addresses_are_read_from_proc() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 192.0.2.3\n        /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\n     |-- 192.0.2.255\n        /32 link BROADCAST\n";
        assert_eq!(
            ipv4_locals(trie),
            vec!["192.0.2.3".parse::<IpAddr>().unwrap()]
        );
        let v6 = "00000000000000000000000000000001 01 80 10 80       lo\nfe800000000000000000000000000001 02 40 20 80     eth0\n20010db8000000000000000000000005 02 40 00 80     eth0\n";
        assert_eq!(
            ipv6_addresses(v6),
            vec!["2001:db8::5".parse::<IpAddr>().unwrap()]
        );
    }
}
