//! A node's files: what `valise-relay ca issue-node` writes and `valise-relay run` reads.
//!
//! | file | holds | written |
//! |---|---|---|
//! | `ca.pem` | the ministry root certificate (pinned) | public |
//! | `node.pem`, `node.key` | the node's TLS chain and key | key owner-only |
//! | `node-signing.key` | the node's Ed25519 seed: custody receipts, audit checkpoints | owner-only |
//! | `node-signing.cert` | the root's certificate of that key (`NodeKeyCertificate`), handed to devices | public |
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
use valise_pki::{CertifiedKey, IssuedNode};

/// The pinned ministry root's file (the configuration's default `tls.ca_cert`).
pub const CA_PEM: &str = "ca.pem";
/// The node's TLS chain (the default `tls.node_cert`).
pub const NODE_PEM: &str = "node.pem";
/// The node's TLS key (the default `tls.node_key`); the other key files sit beside it.
pub const NODE_KEY: &str = "node.key";
/// The node signing key's file.
pub const NODE_SIGNING_KEY: &str = "node-signing.key";
/// The root's certificate of the node signing key.
pub const NODE_SIGNING_CERT: &str = "node-signing.cert";
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
    /// The file is another node's: another name, post or role than this node's configuration.
    #[error(
        "{path} belongs to another node: {reason}. Put back this node's own file, as \
         `valise-relay ca issue-node` wrote it for this node"
    )]
    OtherNode {
        /// The file.
        path: PathBuf,
        /// What it names instead.
        reason: String,
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

/// Writes what the root issued for a node into `out`, where [`NodeFiles::load`] reads it with
/// the default paths, and a fresh node storage key. Keys are written owner-only.
pub fn write_issued(out: &Path, issued: &IssuedNode) -> Result<(), FileError> {
    write_public(&out.join(CA_PEM), issued.ca_pem.as_bytes())?;
    write_public(&out.join(NODE_PEM), issued.tls.chain_pem.as_bytes())?;
    write_secret(&out.join(NODE_KEY), issued.tls.key_pem.as_bytes())?;
    write_secret(&out.join(NODE_SIGNING_KEY), &issued.signing_key.seed()[..])?;
    write_public(
        &out.join(NODE_SIGNING_CERT),
        &issued.signing_certificate.encode_to_vec(),
    )?;
    create_storage_key(&out.join(NODE_STORAGE_KEY))?;
    if let Some(desk) = &issued.desk {
        write_secret(&out.join(ENROLMENT_KEY), &desk.enrolment_key.seed()[..])?;
        write_public(
            &out.join(ENROLMENT_CERT),
            &desk.enrolment_certificate.encode_to_vec(),
        )?;
        write_public(&out.join(POST_CA_PEM), desk.post_ca.chain_pem.as_bytes())?;
        write_secret(&out.join(POST_CA_KEY), desk.post_ca.key_pem.as_bytes())?;
    }
    Ok(())
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
/// The durable directory inside the data directory.
pub const DIRECTORY_DIR: &str = "directory";
/// Outstanding enrolment codes inside the data directory (posts).
pub const ENROLMENT_DIR: &str = "enrolment";
/// The audit log inside the data directory.
pub const AUDIT_DIR: &str = "audit";

/// The stores a node keeps in its data folder, each of which must not vanish unnoticed
/// ([`crate::manifest`]); `desk`: the node enrols devices. The audit log is not among them: its
/// anchor, outside the data folder, already refuses a missing or older audit store.
pub fn kept_stores(desk: bool) -> Vec<crate::manifest::Kept> {
    use crate::manifest::Kept;
    let mut kept = vec![
        Kept {
            dir: QUEUE_DIR,
            holds: "the cables this node took custody of",
        },
        Kept {
            dir: DIRECTORY_DIR,
            holds: "the directory (enrolments and revocations)",
        },
        Kept {
            dir: LINKS_DIR,
            holds: "the pinned keys of neighbouring nodes and what they witnessed",
        },
        Kept {
            dir: ATTACHMENTS_DIR,
            holds: "the attachments of cables in transit",
        },
    ];
    if desk {
        kept.push(Kept {
            dir: ENROLMENT_DIR,
            holds: "the outstanding enrolment codes",
        });
    }
    kept
}

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
    /// The root's certificate of the signing key; absent for a node issued before there were
    /// such certificates.
    pub signing_cert: Option<valise_proto::v1::NodeKeyCertificate>,
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
        let cert_path = config.key_file(NODE_SIGNING_CERT);
        let signing_cert = if cert_path.exists() {
            Some(
                valise_proto::v1::NodeKeyCertificate::decode(read(&cert_path)?.as_slice())
                    .map_err(|e| FileError::Malformed {
                        path: cert_path.clone(),
                        reason: e.to_string(),
                    })?,
            )
        } else {
            None
        };
        let files = NodeFiles {
            ca_pem: read_text(&config.tls.ca_cert)?,
            tls,
            signing_key: read_key(&config.key_file(NODE_SIGNING_KEY))?,
            storage_key: load_storage_key(config)?,
            signing_cert,
            enrolment,
        };
        files.check_belongs(config)?;
        Ok(files)
    }

    /// Checks that the certificates and keys are this node's: its name and role in the node
    /// certificate, its post in the enrolment certificate (with the enrolment key it
    /// certifies) and in the post CA's name constraint. A file copied from another node is
    /// refused here, before it could serve under the wrong name.
    fn check_belongs(&self, config: &Config) -> Result<(), FileError> {
        let (name, ministry) = (&config.node.name, &config.node.ministry);
        let other = |path: &Path, reason: String| FileError::OtherNode {
            path: path.to_owned(),
            reason,
        };
        let node_cert = &config.tls.node_cert;
        let cert = valise_pki::first_certificate(&self.tls.chain_pem)
            .ok_or_else(|| other(node_cert, "it holds no certificate".into()))?;
        let expected = format!("{name}.{ministry}");
        let names = valise_pki::dns_names(&cert);
        if !names.contains(&expected) {
            return Err(other(
                node_cert,
                format!("it names {}, not {expected}", names.join(", ")),
            ));
        }
        match crate::pki::certified_role(&cert) {
            Some(role) if role == config.node.kind => {}
            Some(role) => {
                return Err(other(
                    node_cert,
                    format!(
                        "the root issued it for a {}, but node.kind is {}",
                        kind_word(role),
                        kind_word(config.node.kind)
                    ),
                ));
            }
            None => {
                return Err(other(
                    node_cert,
                    "it names no role (hub or post): it was issued by an older version; \
                     re-issue the node with `valise-relay ca issue-node`"
                        .into(),
                ));
            }
        }
        if let Some(cert) = &self.signing_cert
            && (cert.node != *name || cert.public_key != self.signing_key.public().as_bytes())
        {
            return Err(other(
                &config.key_file(NODE_SIGNING_CERT),
                format!(
                    "it certifies the signing key of {}, not this node's node-signing.key",
                    cert.node
                ),
            ));
        }
        let Some(enrolment) = &self.enrolment else {
            return Ok(());
        };
        let cert_path = config.key_file(ENROLMENT_CERT);
        let certificate = &enrolment.certificate;
        if certificate.post != *name || certificate.ministry != *ministry {
            return Err(other(
                &cert_path,
                format!(
                    "it certifies the enrolment key of {} at {}, not {name} at {ministry}",
                    certificate.post, certificate.ministry
                ),
            ));
        }
        if certificate.public_key != enrolment.key.public().as_bytes() {
            return Err(other(
                &config.key_file(ENROLMENT_KEY),
                "it is not the key enrolment.cert certifies".into(),
            ));
        }
        let ca_path = config.key_file(POST_CA_PEM);
        let post_ca = valise_pki::first_certificate(&enrolment.post_ca.chain_pem)
            .ok_or_else(|| other(&ca_path, "it holds no certificate".into()))?;
        let domain = valise_pki::device_domain(name, ministry);
        let permitted = valise_pki::permitted_dns(&post_ca);
        if permitted != [domain.clone()] {
            return Err(other(
                &ca_path,
                format!(
                    "it may certify devices under {}, not {domain}",
                    permitted.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

fn kind_word(kind: crate::config::NodeKind) -> &'static str {
    match kind {
        crate::config::NodeKind::Hub => "hub",
        crate::config::NodeKind::Post => "post",
    }
}
