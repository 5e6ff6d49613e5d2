//! HTTPS certificates: reading a PEM certificate chain and key (`--https-cert`, `--https-key`),
//! or generating a self-signed pair once into the data directory (`ntop-cert.pem`,
//! `ntop-key.pem`, as classic ntop did) and reusing it; building the rustls server
//! configuration (TLS 1.3 and 1.2 only, ring provider, ALPN `h2` and `http/1.1`); and swapping
//! it on SIGHUP without dropping a connection.
//!
//! Which task runs what:
//!
//! - [`load_pem`], [`self_signed`] and [`Reloadable::load`] run at startup on the main thread,
//!   before privileges are dropped, so that a broken or mismatched pair fails startup with a
//!   message naming the file and the fix.
//! - [`Reloadable::config`] runs in the server's per-connection tasks: each TLS handshake takes
//!   the configuration current at that moment (an [`ArcSwap`] load, no lock).
//! - [`Reloadable::reload`] runs in the SIGHUP handler task. It reads the same paths again; on
//!   any failure it logs the error and keeps serving the old certificate. After a privilege
//!   drop the files must be readable by the run-as user for a reload to succeed.

use std::{
    fmt::Write as _,
    fs, io,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use arc_swap::ArcSwap;
use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    sign::CertifiedKey,
    version::{TLS12, TLS13},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use sha2::{Digest as _, Sha256};

use crate::store::{DataDir, StoreError};

/// File name of the generated self-signed certificate in the data directory.
pub const SELF_SIGNED_CERT: &str = "ntop-cert.pem";
/// File name of the generated self-signed certificate's private key in the data directory.
pub const SELF_SIGNED_KEY: &str = "ntop-key.pem";

/// Errors of loading, generating or building a TLS configuration. Each message names the file
/// and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read (missing, permission denied, …).
    #[error("cannot read {what} {path}: {source}{hint}; give a readable PEM file with {flag}")]
    Read {
        /// `"certificate"` or `"key"`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
        /// A hint for permission problems.
        hint: &'static str,
        /// The command-line flag that names this file.
        flag: &'static str,
    },
    /// A file is not well-formed PEM (broken base64, a section without its END line, …).
    #[error("{what} {path} is not valid PEM ({source}); give a PEM file with {flag}")]
    Pem {
        /// `"certificate"` or `"key"`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The PEM parser's error.
        #[source]
        source: rustls_pki_types::pem::Error,
        /// The command-line flag that names this file.
        flag: &'static str,
    },
    /// The certificate file has no `BEGIN CERTIFICATE` section.
    #[error(
        "certificate {0} contains no PEM certificate (-----BEGIN CERTIFICATE-----); give a PEM \
         certificate with --https-cert"
    )]
    NoCertificate(PathBuf),
    /// The key file has no private key section (PKCS#8, PKCS#1 or SEC1).
    #[error(
        "key {0} contains no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or \
         EC PRIVATE KEY); give an unencrypted PEM private key with --https-key"
    )]
    NoKey(PathBuf),
    /// The certificate's DER content is not an X.509 certificate rustls can use.
    #[error(
        "certificate {path} cannot be parsed ({source}); give a valid X.509 PEM certificate with \
         --https-cert"
    )]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What rustls found wrong.
        #[source]
        source: rustls::Error,
    },
    /// The key's DER content is not a key type rustls supports, or is corrupt.
    #[error(
        "key {path} is not a usable private key ({source}); RSA (2048 bits or more), ECDSA \
         P-256/P-384 and Ed25519 keys are supported: give one with --https-key"
    )]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What rustls found wrong.
        #[source]
        source: rustls::Error,
    },
    /// The private key is not the key of the certificate (first certificate in the file).
    #[error(
        "key {key} does not match the certificate {cert}: give the key the certificate was \
         issued for with --https-key (or the certificate of this key with --https-cert)"
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration (should not happen with a validated pair).
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[source] rustls::Error),
    /// rcgen could not generate the self-signed certificate.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[source] rcgen::Error),
    /// The generated certificate or key could not be written to the data directory.
    #[error("cannot store the self-signed certificate: {0}")]
    Store(#[source] StoreError),
    /// The self-signed pair stored in the data directory exists but cannot be used.
    #[error(
        "the self-signed certificate in the data directory is unusable: {source}. Delete {cert} \
         and {key} to have ntop generate a new pair, or give your own with --https-cert and \
         --https-key"
    )]
    StoredPair {
        /// `ntop-cert.pem` in the data directory.
        cert: PathBuf,
        /// `ntop-key.pem` in the data directory.
        key: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: Box<TlsError>,
    },
}

/// Where a certificate chain and its key are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPaths {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1, unencrypted). May be the same file as `cert`.
    pub key: PathBuf,
}

/// The crypto provider of every rustls object ntop builds: ring, named explicitly because
/// `ServerConfig::builder()` panics when more than one provider is compiled in.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        hint: match source.kind() {
            io::ErrorKind::PermissionDenied => {
                "; it must be readable by the user ntop runs as (-u), also for reloads on SIGHUP"
            }
            _ => "",
        },
        source,
        flag,
    })
}

/// Reads a PEM certificate chain (leaf first) and a PEM private key, and checks that the key
/// belongs to the leaf certificate.
///
/// A key file that the group or others can read is accepted with a warning.
///
/// # Errors
/// [`TlsError::Read`], [`TlsError::Pem`], [`TlsError::NoCertificate`], [`TlsError::NoKey`],
/// [`TlsError::BadCertificate`], [`TlsError::BadKey`] or [`TlsError::KeyMismatch`], each
/// naming the file.
pub fn load_pem(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_pem = read("certificate", "--https-cert", cert_path)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: "certificate",
            path: cert_path.to_owned(),
            source,
            flag: "--https-cert",
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.to_owned()));
    }

    let key_pem = read("key", "--https-key", key_path)?;
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(key) => key,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey(key_path.to_owned()));
        }
        Err(source) => {
            return Err(TlsError::Pem {
                what: "key",
                path: key_path.to_owned(),
                source,
                flag: "--https-key",
            });
        }
    };
    warn_if_shared(key_path);

    check_pair(&certs, &key, cert_path, key_path)?;
    Ok((certs, key))
}

/// Warns when the key file's mode lets the group or others read it.
fn warn_if_shared(key_path: &Path) {
    if let Ok(meta) = fs::metadata(key_path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "TLS key {} has mode {mode:04o}: other users may be able to read it; \
                 chmod 600 it",
                key_path.display()
            );
        }
    }
}

/// Loads the key with the ring provider and compares its public key with the leaf
/// certificate's `SubjectPublicKeyInfo`.
fn check_pair(
    certs: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), TlsError> {
    let signing_key = provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|source| TlsError::BadKey {
            path: key_path.to_owned(),
            source,
        })?;
    match CertifiedKey::new(certs.to_vec(), signing_key).keys_match() {
        // The key cannot tell its public key: nothing to compare (rustls accepts it too).
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
        }),
        Err(source) => Err(TlsError::BadCertificate {
            path: cert_path.to_owned(),
            source,
        }),
    }
}

/// The names a generated certificate is valid for: `localhost`, `127.0.0.1`, `::1` and the
/// machine's host name (from `/proc/sys/kernel/hostname`) when it is a plain ASCII name.
#[must_use]
pub fn default_names() -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(host) = fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        let plain = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !host.is_empty() && plain && !names.iter().any(|n| n == host) {
            names.push(host.to_owned());
        }
    }
    names
}

/// Returns the paths of the self-signed pair in `dir` ([`SELF_SIGNED_CERT`],
/// [`SELF_SIGNED_KEY`]), generating it first when either file is missing: an ECDSA P-256 key
/// and a certificate for `names` (DNS names or IP addresses, see [`default_names`]), both
/// written privately (0600) and atomically. An existing pair is reused as it is (after
/// checking that it loads and matches), so clients that pinned it keep trusting it.
///
/// # Errors
/// [`TlsError::StoredPair`] when the stored pair is broken or mismatched,
/// [`TlsError::Generate`] or [`TlsError::Store`] when generating or writing fails.
pub fn self_signed(dir: &DataDir, names: &[String]) -> Result<CertPaths, TlsError> {
    let paths = CertPaths {
        cert: dir.file(SELF_SIGNED_CERT),
        key: dir.file(SELF_SIGNED_KEY),
    };
    if dir.exists(SELF_SIGNED_CERT) && dir.exists(SELF_SIGNED_KEY) {
        return match load_pem(&paths.cert, &paths.key) {
            Ok(_) => {
                tracing::debug!(cert = %paths.cert.display(), "reusing the self-signed certificate");
                Ok(paths)
            }
            Err(e) => Err(TlsError::StoredPair {
                cert: paths.cert,
                key: paths.key,
                source: Box::new(e),
            }),
        };
    }

    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(TlsError::Generate)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.first().map_or("ntop", String::as_str),
    );
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "ntop (self-signed)");
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(TlsError::Generate)?;
    let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
    // The key first: a crash in between leaves a key without a certificate, which the next
    // start replaces, never a certificate whose key is lost.
    dir.write_private(SELF_SIGNED_KEY, key.serialize_pem().as_bytes())
        .map_err(TlsError::Store)?;
    dir.write_private(SELF_SIGNED_CERT, cert.pem().as_bytes())
        .map_err(TlsError::Store)?;
    tracing::info!(
        cert = %paths.cert.display(),
        "generated a self-signed certificate for {} (SHA-256 fingerprint {})",
        names.join(", "),
        fingerprint(cert.der())
    );
    Ok(paths)
}

/// Builds the server configuration: ring provider, TLS 1.3 and 1.2 only, no client
/// certificates, ALPN `h2` then `http/1.1`.
///
/// # Errors
/// [`TlsError::Config`] when rustls refuses the pair (use [`load_pem`] first for a message
/// naming the files).
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&TLS13, &TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The SHA-256 fingerprint of a certificate, as browsers show it (`AB:CD:…`).
#[must_use]
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// A server configuration that can be replaced while serving: the TLS listener takes
/// [`config`](Self::config) for each handshake, and the SIGHUP handler calls
/// [`reload`](Self::reload).
#[derive(Debug)]
pub struct Reloadable {
    config: ArcSwap<ServerConfig>,
    paths: CertPaths,
}

impl Reloadable {
    /// Loads `paths` ([`load_pem`]) and builds the first configuration.
    ///
    /// # Errors
    /// Any [`TlsError`] of [`load_pem`] or [`server_config`].
    pub fn load(paths: CertPaths) -> Result<Self, TlsError> {
        let config = Self::build(&paths)?;
        Ok(Self {
            config: ArcSwap::new(config),
            paths,
        })
    }

    fn build(paths: &CertPaths) -> Result<Arc<ServerConfig>, TlsError> {
        let (certs, key) = load_pem(&paths.cert, &paths.key)?;
        let print = fingerprint(&certs[0]);
        let config = server_config(certs, key)?;
        tracing::info!(
            cert = %paths.cert.display(),
            "HTTPS certificate loaded (SHA-256 fingerprint {print})"
        );
        Ok(config)
    }

    /// The configuration for a new handshake.
    #[must_use]
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }

    /// Where the certificate and key are read from.
    #[must_use]
    pub fn paths(&self) -> &CertPaths {
        &self.paths
    }

    /// Reads the certificate and key again and, if they load and match, serves them to every
    /// new connection (open connections keep the old one). On failure the old configuration
    /// stays and the error is logged (at error level, so the caller need not log it again).
    ///
    /// Reads two small files synchronously: fine in the SIGHUP handler task.
    ///
    /// # Errors
    /// The [`TlsError`] that kept the new pair out.
    pub fn reload(&self) -> Result<(), TlsError> {
        match Self::build(&self.paths) {
            Ok(config) => {
                self.config.store(config);
                Ok(())
            }
            Err(e) => {
                tracing::error!("HTTPS certificate not reloaded, keeping the old one: {e}");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    /// A fresh scratch directory under the system temp dir.
    pub(crate) fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ntop-tls-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes a fresh self-signed pair for `names` as `<stem>-cert.pem` / `<stem>-key.pem`.
    pub(crate) fn write_pair(dir: &Path, stem: &str, names: &[&str]) -> CertPaths {
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(names).unwrap();
        let paths = CertPaths {
            cert: dir.join(format!("{stem}-cert.pem")),
            key: dir.join(format!("{stem}-key.pem")),
        };
        fs::write(&paths.cert, cert.pem()).unwrap();
        fs::write(&paths.key, signing_key.serialize_pem()).unwrap();
        fs::set_permissions(&paths.key, fs::Permissions::from_mode(0o600)).unwrap();
        paths
    }

    #[test]
    fn a_matching_pair_loads_and_builds_a_config() {
        let dir = scratch("ok");
        let p = write_pair(&dir, "a", &["localhost"]);
        let (certs, key) = load_pem(&p.cert, &p.key).unwrap();
        assert_eq!(certs.len(), 1);
        let config = server_config(certs, key).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        // Key and certificate in one file (classic ntop's ntop-cert.pem) work too.
        let both = dir.join("both.pem");
        let joined = [fs::read(&p.key).unwrap(), fs::read(&p.cert).unwrap()].concat();
        fs::write(&both, joined).unwrap();
        load_pem(&both, &both).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_mismatched_pair_is_refused_naming_both_files() {
        let dir = scratch("mismatch");
        let a = write_pair(&dir, "a", &["localhost"]);
        let b = write_pair(&dir, "b", &["localhost"]);
        let err = load_pem(&a.cert, &b.key).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("does not match the certificate"), "{msg}");
        assert!(msg.contains(&*a.cert.to_string_lossy()), "{msg}");
        assert!(msg.contains(&*b.key.to_string_lossy()), "{msg}");
        assert!(msg.contains("--https-key"), "{msg}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn broken_files_are_refused_with_the_file_and_the_flag() {
        let dir = scratch("garbage");
        let good = write_pair(&dir, "good", &["localhost"]);
        let garbage = dir.join("garbage.pem");
        fs::write(&garbage, "this is not PEM at all\n").unwrap();
        let bad_b64 = dir.join("bad-b64.pem");
        fs::write(
            &bad_b64,
            "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let not_x509 = dir.join("not-x509.pem");
        fs::write(
            &not_x509,
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let bad_key = dir.join("bad-key.pem");
        fs::write(
            &bad_key,
            "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let missing = dir.join("missing.pem");

        let check = |err: TlsError, want: &[&str]| {
            let msg = err.to_string();
            for w in want {
                assert!(msg.contains(w), "{msg:?} lacks {w:?}");
            }
        };
        let g = garbage.to_string_lossy();
        check(
            load_pem(&garbage, &good.key).unwrap_err(),
            &["contains no PEM certificate", &g, "--https-cert"],
        );
        check(
            load_pem(&good.cert, &garbage).unwrap_err(),
            &["contains no PEM private key", &g, "--https-key"],
        );
        check(
            load_pem(&bad_b64, &good.key).unwrap_err(),
            &[
                "is not valid PEM",
                &bad_b64.to_string_lossy(),
                "--https-cert",
            ],
        );
        check(
            load_pem(&not_x509, &good.key).unwrap_err(),
            &[
                "cannot be parsed",
                &not_x509.to_string_lossy(),
                "--https-cert",
            ],
        );
        check(
            load_pem(&good.cert, &bad_key).unwrap_err(),
            &[
                "not a usable private key",
                &bad_key.to_string_lossy(),
                "--https-key",
            ],
        );
        check(
            load_pem(&missing, &good.key).unwrap_err(),
            &[
                "cannot read certificate",
                &missing.to_string_lossy(),
                "--https-cert",
            ],
        );
        check(
            load_pem(&good.cert, &missing).unwrap_err(),
            &["cannot read key", "--https-key"],
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_key_readable_by_others_is_accepted() {
        let dir = scratch("shared-key");
        let p = write_pair(&dir, "a", &["localhost"]);
        fs::set_permissions(&p.key, fs::Permissions::from_mode(0o644)).unwrap();
        load_pem(&p.cert, &p.key).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn self_signed_is_generated_once_privately_and_reused() {
        let base = scratch("self-signed");
        let dir = DataDir::open(base.join("data")).unwrap();
        let names = default_names();
        assert!(names.iter().any(|n| n == "::1"), "{names:?}");
        let first = self_signed(&dir, &names).unwrap();
        assert_eq!(first.cert, dir.file(SELF_SIGNED_CERT));
        assert_eq!(first.key, dir.file(SELF_SIGNED_KEY));
        for p in [&first.cert, &first.key] {
            assert_eq!(
                fs::metadata(p).unwrap().mode() & 0o777,
                0o600,
                "{}",
                p.display()
            );
        }
        let (cert, key) = (
            fs::read(&first.cert).unwrap(),
            fs::read(&first.key).unwrap(),
        );
        assert!(String::from_utf8_lossy(&key).contains("BEGIN PRIVATE KEY"));
        load_pem(&first.cert, &first.key).unwrap();

        let second = self_signed(&dir, &names).unwrap();
        assert_eq!(second, first);
        assert_eq!(
            fs::read(&second.cert).unwrap(),
            cert,
            "the certificate is reused"
        );
        assert_eq!(fs::read(&second.key).unwrap(), key, "the key is reused");

        // A lone certificate (crash between the two writes, key deleted): a new pair.
        fs::remove_file(&first.key).unwrap();
        self_signed(&dir, &names).unwrap();
        assert_ne!(fs::read(&first.cert).unwrap(), cert);
        load_pem(&first.cert, &first.key).unwrap();

        // A broken stored pair is not silently replaced: the message says what to delete.
        fs::write(&first.cert, "garbage").unwrap();
        let msg = self_signed(&dir, &names).unwrap_err().to_string();
        assert!(msg.contains("Delete"), "{msg}");
        assert!(msg.contains(SELF_SIGNED_CERT), "{msg}");
        assert!(msg.contains("contains no PEM certificate"), "{msg}");
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn reload_switches_and_keeps_the_old_config_on_failure() {
        let dir = scratch("reload");
        let a = write_pair(&dir, "a", &["localhost"]);
        let tls = Reloadable::load(a.clone()).unwrap();
        let before = tls.config();
        // New pair at the same paths.
        let b = write_pair(&dir, "b", &["localhost"]);
        fs::copy(&b.cert, &a.cert).unwrap();
        fs::copy(&b.key, &a.key).unwrap();
        tls.reload().unwrap();
        let after = tls.config();
        assert!(!Arc::ptr_eq(&before, &after));
        // Broken files: an error, and the last good config stays.
        fs::write(&a.cert, "garbage").unwrap();
        assert!(matches!(tls.reload(), Err(TlsError::NoCertificate(_))));
        assert!(Arc::ptr_eq(&after, &tls.config()));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fingerprints_look_like_browsers_show_them() {
        let f = fingerprint(&CertificateDer::from(vec![1, 2, 3]));
        assert_eq!(f.len(), 32 * 3 - 1);
        assert!(f.starts_with("03:90:58:C6"), "{f}");
    }
}
