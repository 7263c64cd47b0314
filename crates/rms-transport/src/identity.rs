//! A device's identity (issue #14): its own key pair and self-signed certificate, made on first
//! start in its data directory, and the certificate's SHA-256, its [`Fingerprint`].
//!
//! Made with rcgen on the `ring` provider (ECDSA P-256). No CA and no dates that matter: the
//! certificate is only a container for the public key, and peers pin its fingerprint (Syncthing's
//! model).
//!
//! **On disk:** `device-key.pem` (the private key, mode 0600, refused at start if anyone but the
//! owner may read it) and `device-cert.der` (public). Both are written to a temporary file and
//! renamed, key last but cert first, so a crash leaves either no identity (made again at the
//! next start) or a whole one. A key without its certificate, or one that does not parse, is an
//! error, never silently replaced: the device's identity is what its peers trust.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rms_domain::Fingerprint;

/// The private key's file in the data directory.
pub const KEY_FILE: &str = "device-key.pem";
/// The certificate's file in the data directory.
pub const CERT_FILE: &str = "device-cert.der";

/// The name the certificate carries (peers do not check it: they pin the fingerprint).
const CERT_NAME: &str = "rms-device";

/// Why a device has no identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a key pair and certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path} is not a private key in PEM ({source}); restore it from a backup")]
    BadKey { path: PathBuf, source: rcgen::Error },
    #[error(
        "{key} exists but {cert} does not; restore it from a backup, or remove both to make a new identity (the store will have to trust it again)"
    )]
    MissingCert { key: PathBuf, cert: PathBuf },
    #[error("{path} may be read by others (mode {mode:o}): run `chmod 600 {path}`")]
    KeyReadable { path: PathBuf, mode: u32 },
}

/// This device's certificate and key, and their fingerprint.
pub struct Identity {
    fingerprint: Fingerprint,
    cert_der: Vec<u8>,
    key_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The fingerprint of a certificate (its DER bytes).
pub fn fingerprint_of(cert_der: &[u8]) -> Fingerprint {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert_der);
    let mut bytes = [0_u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    Fingerprint::from_sha256(bytes)
}

impl Identity {
    /// A new identity, kept in memory only (a node without a data directory: tests, examples).
    pub fn ephemeral() -> Result<Identity, IdentityError> {
        let made = rcgen::generate_simple_self_signed(vec![CERT_NAME.to_owned()])?;
        let cert_der = made.cert.der().to_vec();
        Ok(Identity {
            fingerprint: fingerprint_of(&cert_der),
            cert_der,
            key_pem: made.signing_key.serialize_pem(),
        })
    }

    /// The identity kept in `dir`, made there on first use.
    pub fn load_or_create(dir: &Path) -> Result<Identity, IdentityError> {
        let (key_path, cert_path) = (dir.join(KEY_FILE), dir.join(CERT_FILE));
        if !key_path.exists() {
            let identity = Identity::ephemeral()?;
            fs::create_dir_all(dir).map_err(io_error(dir))?;
            write_atomically(&cert_path, &identity.cert_der, 0o644)?;
            write_atomically(&key_path, identity.key_pem.as_bytes(), 0o600)?;
            return Ok(identity);
        }
        check_private(&key_path)?;
        let key_pem = fs::read_to_string(&key_path).map_err(io_error(&key_path))?;
        rcgen::KeyPair::from_pem(&key_pem).map_err(|source| IdentityError::BadKey {
            path: key_path.clone(),
            source,
        })?;
        let cert_der = match fs::read(&cert_path) {
            Ok(der) => der,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(IdentityError::MissingCert {
                    key: key_path,
                    cert: cert_path,
                });
            }
            Err(err) => return Err(io_error(&cert_path)(err)),
        };
        Ok(Identity {
            fingerprint: fingerprint_of(&cert_der),
            cert_der,
            key_pem,
        })
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The certificate, DER, as the TLS handshake presents it.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The private key, PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }
}

/// Refuses a key file that anyone but its owner may read or write.
fn check_private(path: &Path) -> Result<(), IdentityError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(io_error(path))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::KeyReadable {
                path: path.to_owned(),
                mode,
            });
        }
    }
    Ok(())
}

/// Writes `bytes` to a temporary file with `mode`, syncs it, and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IdentityError> {
    let temporary = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&temporary).map_err(io_error(&temporary))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error(&temporary))?;
    fs::rename(&temporary, path).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let first = Identity::load_or_create(dir.path()).expect("made");
        let again = Identity::load_or_create(dir.path()).expect("loaded");
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_eq!(first.fingerprint(), fingerprint_of(again.cert_der()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .expect("the key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = Identity::ephemeral().expect("made");
        assert_ne!(other.fingerprint(), first.fingerprint());
    }

    #[cfg(unix)]
    #[test]
    fn a_key_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a temporary directory");
        Identity::load_or_create(dir.path()).expect("made");
        let key = dir.path().join(KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
        let refused = Identity::load_or_create(dir.path()).expect_err("refused");
        assert!(
            matches!(refused, IdentityError::KeyReadable { mode: 0o644, .. }),
            "{refused}"
        );
    }

    #[test]
    fn a_key_without_its_certificate_is_an_error_not_a_new_identity() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Identity::load_or_create(dir.path()).expect("made");
        fs::remove_file(dir.path().join(CERT_FILE)).expect("removed");
        let refused = Identity::load_or_create(dir.path()).expect_err("refused");
        assert!(
            matches!(refused, IdentityError::MissingCert { .. }),
            "{refused}"
        );
        assert!(dir.path().join(KEY_FILE).exists(), "the key is kept");
    }
}
