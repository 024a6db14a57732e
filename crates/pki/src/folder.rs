//! The CA folder: what `valise-relay ca init` writes and `ca issue-node` reads. It holds the
//! root certificate (public, to pin everywhere), the root key sealed under a passphrase
//! ([`crate::sealed`]; keep the folder offline) and the ministry's name.
//!
//! | file | holds | mode |
//! |---|---|---|
//! | `ca.pem` | the root certificate | 0644 |
//! | `ca.key.sealed` | the root key, sealed under the CA passphrase | 0600 |
//! | `ministry` | the ministry's name, e.g. `mfa.example` | 0644 |

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use valise_crypto::at_rest::KdfParams;

use crate::certificate::CertificateError;
use crate::root::MinistryCa;
use crate::sealed::SealedKeyError;
use crate::validity::Validity;

/// The root certificate's file.
pub const CA_CERT: &str = "ca.pem";
/// The sealed root key's file.
pub const CA_KEY: &str = "ca.key.sealed";
/// The file naming the ministry.
pub const CA_MINISTRY: &str = "ministry";

/// Why a CA folder could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FolderError {
    /// The folder already holds a root: a second one would orphan every node of the first.
    #[error("{} already holds a CA; refusing to overwrite it", dir.display())]
    Exists {
        /// The folder.
        dir: PathBuf,
    },
    /// The folder could not be created.
    #[error("cannot create {}", dir.display())]
    CreateDir {
        /// The folder.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The root certificate could not be made.
    #[error("cannot create the root certificate")]
    Root(#[source] CertificateError),
    /// The root key could not be sealed.
    #[error("cannot seal the CA key")]
    Seal(#[source] SealedKeyError),
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The folder has no ministry file: it is not a CA folder.
    #[error("{} is not a CA folder written by `valise-relay ca init`", dir.display())]
    NotAFolder {
        /// The folder.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The root certificate could not be read.
    #[error("cannot read {}", path.display())]
    ReadCertificate {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The sealed root key could not be read.
    #[error("{}: {source}", path.display())]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A CA folder as read from disk, its key still sealed.
pub struct RootFolder {
    ministry: String,
    cert_pem: String,
    sealed: Vec<u8>,
}

impl RootFolder {
    /// Refuses a folder that already holds a root; checked before anything is asked of the
    /// operator, and again when the root is written.
    pub fn check_free(dir: &Path) -> Result<(), FolderError> {
        if dir.join(CA_CERT).exists() {
            return Err(FolderError::Exists {
                dir: dir.to_owned(),
            });
        }
        Ok(())
    }

    /// Creates a root for `ministry`, valid for `validity`, in `dir` (created if need be): the
    /// certificate, the key sealed under `passphrase` with `kdf`, and the ministry's name.
    pub fn create(
        dir: &Path,
        ministry: &str,
        validity: Validity,
        passphrase: &[u8],
        kdf: KdfParams,
    ) -> Result<MinistryCa, FolderError> {
        Self::check_free(dir)?;
        fs::create_dir_all(dir).map_err(|source| FolderError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
        let ca = MinistryCa::generate(ministry, validity).map_err(FolderError::Root)?;
        let sealed = ca.seal_key(passphrase, kdf).map_err(FolderError::Seal)?;
        write(&dir.join(CA_CERT), ca.cert_pem().as_bytes(), 0o644)?;
        write(&dir.join(CA_KEY), &sealed, 0o600)?;
        write(&dir.join(CA_MINISTRY), ministry.as_bytes(), 0o644)?;
        Ok(ca)
    }

    /// Reads the folder [`Self::create`] wrote; the key stays sealed until [`Self::open`].
    pub fn read(dir: &Path) -> Result<Self, FolderError> {
        let ministry = fs::read_to_string(dir.join(CA_MINISTRY)).map_err(|source| {
            FolderError::NotAFolder {
                dir: dir.to_owned(),
                source,
            }
        })?;
        let cert_path = dir.join(CA_CERT);
        let cert_pem =
            fs::read_to_string(&cert_path).map_err(|source| FolderError::ReadCertificate {
                path: cert_path,
                source,
            })?;
        let key_path = dir.join(CA_KEY);
        let sealed = fs::read(&key_path).map_err(|source| FolderError::ReadKey {
            path: key_path,
            source,
        })?;
        Ok(RootFolder {
            ministry: ministry.trim().to_owned(),
            cert_pem,
            sealed,
        })
    }

    /// The ministry's name.
    pub fn ministry(&self) -> &str {
        &self.ministry
    }

    /// Opens the root key with `passphrase`.
    pub fn open(&self, passphrase: &[u8]) -> Result<MinistryCa, SealedKeyError> {
        MinistryCa::open_sealed(&self.ministry, &self.cert_pem, &self.sealed, passphrase)
    }
}

/// Writes `bytes` to `path` with `mode`, and syncs it.
fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FolderError> {
    let failed = |source| FolderError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const FAST: KdfParams = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn a_root_written_to_its_folder_reopens_with_its_passphrase_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ca");
        let now = time::OffsetDateTime::now_utc();
        let ca = RootFolder::create(
            &out,
            "mfa.example",
            Validity::years_from(now, 1),
            b"a long passphrase",
            FAST,
        )
        .unwrap();
        let mode = fs::metadata(out.join(CA_KEY)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the sealed key is the owner's only");

        let folder = RootFolder::read(&out).unwrap();
        assert_eq!(folder.ministry(), "mfa.example");
        let reopened = folder.open(b"a long passphrase").unwrap();
        assert_eq!(reopened.fingerprint(), ca.fingerprint());
        let wrong = folder.open(b"another passphrase").err().unwrap();
        assert!(wrong.to_string().contains("wrong passphrase"), "{wrong}");

        let again = RootFolder::create(
            &out,
            "mfa.example",
            Validity::years_from(now, 1),
            b"a long passphrase",
            FAST,
        )
        .err()
        .unwrap();
        assert!(matches!(again, FolderError::Exists { .. }), "{again}");
        let kept = RootFolder::read(&out).unwrap().open(b"a long passphrase");
        assert_eq!(
            kept.unwrap().fingerprint(),
            ca.fingerprint(),
            "the first root is kept"
        );
    }

    #[test]
    fn a_folder_without_a_root_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let err = RootFolder::read(dir.path()).err().unwrap();
        assert!(matches!(err, FolderError::NotAFolder { .. }), "{err}");
        assert!(err.to_string().contains("is not a CA folder"), "{err}");
    }
}
