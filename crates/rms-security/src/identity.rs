//! A device's identity (issue #14): its own key pair and self-signed certificate, made on first
//! start in its data directory, and the certificate's SHA-256, its [`Fingerprint`].
//!
//! Made with rcgen on the `ring` provider (ECDSA P-256). No CA and no dates that matter: the
//! certificate is only a container for the public key, and peers pin its fingerprint (Syncthing's
//! model).
//!
//! **On disk:** `device-key.pem` (the private key, mode 0600, a regular file: refused at start
//! if anyone but the owner may read it, or if it is a link) and `device-cert.der` (public), in a
//! directory made 0700. Each is written to a new temporary file (never one left lying there),
//! synced, renamed, and the directory synced: cert first, key last, so a crash leaves either no
//! key (the identity is made again at the next start) or a whole identity. A key without its
//! certificate, a key that does not parse or does not match its certificate, is an error, never
//! silently replaced: the device's identity is what its peers trust. An exclusive lock on
//! `device.lock` keeps two processes (a node and `rms-node id`) from making two at once.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rms_domain::Fingerprint;

/// The private key's file in the data directory.
pub const KEY_FILE: &str = "device-key.pem";
/// The certificate's file in the data directory.
pub const CERT_FILE: &str = "device-cert.der";

/// Held while the identity is read or made.
const LOCK_FILE: &str = "device.lock";

/// The name the certificate carries (peers do not check it: they pin the fingerprint).
const CERT_NAME: &str = "rms-device";

/// Why a device has no identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file or directory of the identity (the data directory, `device.lock`, the key, the
    /// certificate or a temporary file beside them) could not be created, opened, locked, read,
    /// written, synced or renamed.
    #[error("cannot read or write {path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// rcgen could not make a new key pair or its self-signed certificate.
    #[error("cannot make a key pair and certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The key file exists but its text is not a private key in PEM.
    #[error("{path} is not a private key in PEM ({source}); restore it from a backup")]
    BadKey {
        /// The key file ([`KEY_FILE`] in the data directory).
        path: PathBuf,
        /// Why rcgen did not read it.
        source: rcgen::Error,
    },
    /// The key file exists but the certificate file does not. The identity is not made again:
    /// its peers trust the old certificate.
    #[error(
        "{key} exists but {cert} does not; restore it from a backup, or remove both to make a new identity (the store will have to trust it again)"
    )]
    MissingCert {
        /// The key file ([`KEY_FILE`]), which exists.
        key: PathBuf,
        /// The certificate file ([`CERT_FILE`]), which is missing.
        cert: PathBuf,
    },
    /// The key file's mode lets its group or others read, write or run it (any of `0o077`).
    #[error("{path} may be read by others (mode {mode:o}): run `chmod 600 {path}`")]
    KeyReadable {
        /// The key file ([`KEY_FILE`]).
        path: PathBuf,
        /// The file's permission bits (`mode & 0o777`), e.g. `0o644`.
        mode: u32,
    },
    /// The key's path is not a regular file: a symbolic link, a directory, a pipe or a device.
    #[error("{path} is not a regular file (a link, a directory, a pipe): put the key itself there")]
    KeyNotAFile {
        /// The key file's path ([`KEY_FILE`]).
        path: PathBuf,
    },
    /// The key and the certificate both read, but the certificate does not hold the key's
    /// public half.
    #[error("{key} is not the key of {cert}: restore the pair from the same backup")]
    Mismatch {
        /// The key file ([`KEY_FILE`]).
        key: PathBuf,
        /// The certificate file ([`CERT_FILE`]).
        cert: PathBuf,
    },
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
        make_private_dir(dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        lock.lock().map_err(io_error(&lock_path))?;
        let (key_path, cert_path) = (dir.join(KEY_FILE), dir.join(CERT_FILE));
        let exists = match fs::symlink_metadata(&key_path) {
            Ok(_) => true,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
            Err(err) => return Err(io_error(&key_path)(err)),
        };
        if !exists {
            let identity = Identity::ephemeral()?;
            write_atomically(dir, &cert_path, &identity.cert_der, 0o644)?;
            write_atomically(dir, &key_path, identity.key_pem.as_bytes(), 0o600)?;
            return Ok(identity);
        }
        let key_pem = read_private(&key_path)?;
        let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|source| IdentityError::BadKey {
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
        let matches = rustls::sign::CertifiedKey::from_der(
            vec![cert_der.clone().into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            &rustls::crypto::ring::default_provider(),
        );
        if matches.is_err() {
            return Err(IdentityError::Mismatch {
                key: key_path,
                cert: cert_path,
            });
        }
        Ok(Identity {
            fingerprint: fingerprint_of(&cert_der),
            cert_der,
            key_pem,
        })
    }

    /// The SHA-256 of this device's certificate ([`fingerprint_of`] its DER): what the store's
    /// trust list and every peer pin.
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

/// The key file's text, if it is a regular file (not a link, a directory or a pipe) that only
/// its owner may read or write. Checked on the open file, so what is checked is what is read.
fn read_private(path: &Path) -> Result<String, IdentityError> {
    use std::io::Read;
    let not_a_file = || IdentityError::KeyNotAFile {
        path: path.to_owned(),
    };
    let kind = fs::symlink_metadata(path)
        .map_err(io_error(path))?
        .file_type();
    if !kind.is_file() {
        return Err(not_a_file());
    }
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NOFOLLOW | O_NONBLOCK: a link swapped in after the check fails to open, and a pipe
        // does not block the start.
        options.custom_flags(0o400_000 | 0o4_000);
    }
    let mut file = options.open(path).map_err(io_error(path))?;
    let metadata = file.metadata().map_err(io_error(path))?;
    if !metadata.is_file() {
        return Err(not_a_file());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::KeyReadable {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io_error(path))?;
    Ok(text)
}

/// Makes `dir` (and its parents) if missing, the new ones 0700: it holds the key.
fn make_private_dir(dir: &Path) -> Result<(), IdentityError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_error(dir))
}

/// Writes `bytes` to a new temporary file in `dir` with `mode`, syncs it, renames it over `path`
/// and syncs `dir`, so the rename is on disk before the next file is written.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8], mode: u32) -> Result<(), IdentityError> {
    let temporary = path.with_extension("tmp");
    // A file left there (a crash, or planted) is not reused: its mode or owner may be anyone's.
    match fs::remove_file(&temporary) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_error(&temporary)(err));
        }
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
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
    fs::rename(&temporary, path).map_err(io_error(path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
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

    #[cfg(unix)]
    #[test]
    fn a_key_that_is_a_link_is_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let elsewhere = tempfile::tempdir().expect("another directory");
        Identity::load_or_create(elsewhere.path()).expect("made");
        Identity::load_or_create(dir.path()).expect("made");
        let key = dir.path().join(KEY_FILE);
        fs::remove_file(&key).expect("removed");
        std::os::unix::fs::symlink(elsewhere.path().join(KEY_FILE), &key).expect("linked");
        let refused = Identity::load_or_create(dir.path()).expect_err("refused");
        assert!(
            matches!(refused, IdentityError::KeyNotAFile { .. }),
            "{refused}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let other = tempfile::tempdir().expect("another directory");
        Identity::load_or_create(dir.path()).expect("made");
        Identity::load_or_create(other.path()).expect("made");
        fs::copy(other.path().join(CERT_FILE), dir.path().join(CERT_FILE)).expect("copied");
        let refused = Identity::load_or_create(dir.path()).expect_err("refused");
        assert!(
            matches!(refused, IdentityError::Mismatch { .. }),
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
