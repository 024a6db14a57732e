//! A node's files: what `valise-relay ca issue-node` writes and `valise-relay run` reads.
//!
//! | file | holds | written |
//! |---|---|---|
//! | `ca.pem` | the ministry root certificate (pinned) | public |
//! | `node.pem`, `node.key` | the node's TLS chain and key | key owner-only |
//! | `node-signing.key` | the node's Ed25519 seed: custody receipts, audit checkpoints | owner-only |
//! | `node-storage.key` | the node storage key: seals queued envelopes at rest | owner-only |
//! | `enrolment.key`, `enrolment.cert` | posts: the enrolment key and its root certificate | key owner-only |
//! | `post-ca.pem`, `post-ca.key` | posts: the post enrolment CA | key owner-only |
//! | `node.toml` | the configuration | public |

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use prost::Message;
use valise_crypto::at_rest::StorageKey;
use valise_crypto::identity::IdentityKeyPair;
use valise_proto::v1::EnrolmentCertificate;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::pki::CertifiedKey;

/// The node signing key's file.
pub const NODE_SIGNING_KEY: &str = "node-signing.key";
/// The node storage key's file.
pub const NODE_STORAGE_KEY: &str = "node-storage.key";
/// The enrolment key's file.
pub const ENROLMENT_KEY: &str = "enrolment.key";
/// The enrolment certificate's file.
pub const ENROLMENT_CERT: &str = "enrolment.cert";
/// The post CA chain's file.
pub const POST_CA_PEM: &str = "post-ca.pem";
/// The post CA key's file.
pub const POST_CA_KEY: &str = "post-ca.key";

/// A node file that is missing or unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file's content is not what it should be.
    #[error("{path} is damaged or not the file `valise-relay ca issue-node` wrote: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The storage key is gone but a queue sealed under it remains.
    #[error(
        "the node storage key is missing ({path}) but {queue} holds a queue sealed under it; \
         restore the key from backup, or move the queue aside to start empty"
    )]
    StorageKeyMissing {
        /// Where the key should be.
        path: PathBuf,
        /// The queue it sealed.
        queue: PathBuf,
    },
    /// The system's random number generator failed.
    #[error("cannot generate {0}: the random number generator failed")]
    Random(&'static str),
}

/// Writes `bytes` to `path`, readable by its owner only, and syncs it.
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_with_mode(path, bytes, 0o600)
}

/// Writes `bytes` to `path` (mode 0644) and syncs it.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_with_mode(path, bytes, 0o644)
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let io = |source| FileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Reads a file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, FileError> {
    fs::read(path).map_err(|source| FileError::Io {
        path: path.to_owned(),
        source,
    })
}

fn read_text(path: &Path) -> Result<String, FileError> {
    String::from_utf8(read(path)?).map_err(|_| FileError::Malformed {
        path: path.to_owned(),
        reason: "not text".into(),
    })
}

/// Reads an Ed25519 seed file.
pub fn read_key(path: &Path) -> Result<IdentityKeyPair, FileError> {
    let seed = Zeroizing::new(read(path)?);
    IdentityKeyPair::from_seed(&seed).map_err(|e| FileError::Malformed {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Writes a fresh node storage key to `path`, owner-only.
pub fn create_storage_key(path: &Path) -> Result<StorageKey, FileError> {
    let key = StorageKey::generate().map_err(|_| FileError::Random("a node storage key"))?;
    write_secret(path, &key.to_bytes()[..])?;
    Ok(key)
}

/// The node storage key. A node issued before storage keys existed gets one on its first
/// start, but only while it holds no queue: a missing key beside an existing queue means the
/// queued cables can no longer be read, and the operator must know.
fn load_storage_key(config: &Config) -> Result<StorageKey, FileError> {
    let path = config.key_file(NODE_STORAGE_KEY);
    if path.exists() {
        let bytes = Zeroizing::new(read(&path)?);
        return StorageKey::from_bytes(&bytes).map_err(|e| FileError::Malformed {
            path,
            reason: e.to_string(),
        });
    }
    let queue = config.node.data_dir.join(QUEUE_DIR);
    if queue.exists() {
        return Err(FileError::StorageKeyMissing { path, queue });
    }
    create_storage_key(&path)
}

/// The queue store's directory inside the data directory.
pub const QUEUE_DIR: &str = "queue";
/// The attachment store's directory inside the data directory.
pub const ATTACHMENTS_DIR: &str = "attachments";
/// The link state (pinned node keys, directory cursors, witness state) inside the data
/// directory.
pub const LINKS_DIR: &str = "links";

/// What a post needs to enrol devices.
pub struct EnrolmentFiles {
    /// The enrolment key.
    pub key: IdentityKeyPair,
    /// Its certificate from the root.
    pub certificate: EnrolmentCertificate,
    /// The post CA.
    pub post_ca: CertifiedKey,
}

/// Everything a node reads at start.
pub struct NodeFiles {
    /// The pinned ministry root (PEM).
    pub ca_pem: String,
    /// The node's TLS chain and key.
    pub tls: CertifiedKey,
    /// The node's signing key.
    pub signing_key: IdentityKeyPair,
    /// The key that seals the queue at rest.
    pub storage_key: StorageKey,
    /// Posts only.
    pub enrolment: Option<EnrolmentFiles>,
}

impl NodeFiles {
    /// Reads the files a configuration names; the key files sit beside the node key.
    pub fn load(config: &Config) -> Result<Self, FileError> {
        let tls = CertifiedKey {
            chain_pem: read_text(&config.tls.node_cert)?,
            key_pem: Zeroizing::new(read_text(&config.tls.node_key)?),
        };
        let enrolment =
            if config.key_file(ENROLMENT_KEY).exists() {
                let cert_path = config.key_file(ENROLMENT_CERT);
                let certificate = EnrolmentCertificate::decode(read(&cert_path)?.as_slice())
                    .map_err(|e| FileError::Malformed {
                        path: cert_path,
                        reason: e.to_string(),
                    })?;
                Some(EnrolmentFiles {
                    key: read_key(&config.key_file(ENROLMENT_KEY))?,
                    certificate,
                    post_ca: CertifiedKey {
                        chain_pem: read_text(&config.key_file(POST_CA_PEM))?,
                        key_pem: Zeroizing::new(read_text(&config.key_file(POST_CA_KEY))?),
                    },
                })
            } else {
                None
            };
        Ok(NodeFiles {
            ca_pem: read_text(&config.tls.ca_cert)?,
            tls,
            signing_key: read_key(&config.key_file(NODE_SIGNING_KEY))?,
            storage_key: load_storage_key(config)?,
            enrolment,
        })
    }
}
