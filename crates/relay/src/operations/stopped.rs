//! A stopped post's stores, opened for the operator's commands that work without the node
//! (`enroll`, `revoke`, `user update`): the same checks as a start (every store the node made
//! is still there and its own), then its directory, enrolment codes, queue store and audit
//! log. What the operations record is appended as the running node would append it, with
//! the command line, not the admin socket, as the operator's channel.

use std::sync::{Mutex, PoisonError};

use valise_audit::log::LogError;
use valise_audit::{AuditLog, LogConfig};
use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::tls::{TlsError, directory_root, root_fingerprint};
use valise_proto::v1::ActorKind;
use valise_store::StoreError;

use super::{Desk, Operator, Recorder, now_ms};
use crate::config::Config;
use crate::directory::{DurableDirectory, DurableError};
use crate::enrolment::{DurableCodeError, DurableCodes};
use crate::files::{
    self, AUDIT_DIR, DIRECTORY_DIR, ENROLMENT_DIR, FileError, NodeFiles, QUEUE_DIR,
};
use crate::manifest::{Manifest, ManifestError};
use crate::record::Record;
use crate::shared_directory::SharedDirectory;
use crate::store::RelayStore;

/// The operator's actor id in what a command on a stopped node records (the running node
/// records `admin-socket`).
pub const OFFLINE_ACTOR: &str = "offline-command";

/// Why a stopped post's stores could not be opened, or what was done not fully recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoppedError {
    /// A node file is missing or unusable.
    #[error(transparent)]
    Files(#[from] FileError),
    /// The node holds no enrolment key: it is not a post.
    #[error("this node holds no enrolment key")]
    NoDesk,
    /// A store the node made is missing or another's.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The pinned root certificate cannot be read.
    #[error(transparent)]
    Root(#[from] TlsError),
    /// The directory could not be opened.
    #[error("cannot open the directory (is the node starting?)")]
    Directory(#[source] DurableError),
    /// The enrolment codes could not be opened or kept.
    #[error("cannot open the enrolment store (is the node starting?)")]
    Codes(#[source] DurableCodeError),
    /// The queue store could not be opened.
    #[error("cannot open the queue store (is the node starting?)")]
    Queue(#[source] StoreError),
    /// The audit log could not be opened.
    #[error("cannot open the audit log (is the node starting?)")]
    Audit(#[source] LogError),
    /// The command was done, but its audit record could not be appended.
    #[error("the command was done, but the audit log could not record it")]
    Record(#[source] LogError),
    /// The audit log could not be closed cleanly.
    #[error("the audit log could not be closed cleanly")]
    Close(#[source] LogError),
    /// A store could not be made durable on closing.
    #[error("the node's stores could not be made durable: {0}; check the node's disk")]
    Sync(String),
}

/// A stopped post's stores, open for the operator's commands.
pub struct StoppedPost {
    node: String,
    post: String,
    enrolment_key: IdentityKeyPair,
    ca_fingerprint: String,
    codes: Mutex<DurableCodes>,
    directory: SharedDirectory,
    store: RelayStore,
    audit: AuditLog,
    /// The first append that failed: the command goes on, and [`Self::close`] reports it.
    failed: Mutex<Option<LogError>>,
}

impl StoppedPost {
    /// Opens the stores of the stopped node `config` describes. Refused before anything is
    /// opened if the node holds no enrolment key, or if a store it made is missing.
    pub fn open(config: &Config) -> Result<Self, StoppedError> {
        let node_files = NodeFiles::load(config)?;
        let enrolment = node_files.enrolment.ok_or(StoppedError::NoDesk)?;
        let data = &config.node.data_dir;
        Manifest::load(data)?.check(&files::kept_stores(true))?;
        let directory = DurableDirectory::open(
            &data.join(DIRECTORY_DIR),
            &config.node.ministry,
            directory_root(&node_files.ca_pem)?,
        )
        .map_err(StoppedError::Directory)?;
        let codes = DurableCodes::open(&data.join(ENROLMENT_DIR), config.code_rules(), now_ms())
            .map_err(StoppedError::Codes)?;
        let store = RelayStore::open(&data.join(QUEUE_DIR), &node_files.storage_key)
            .map_err(StoppedError::Queue)?;
        let mut log_config = LogConfig::new(data.join(AUDIT_DIR), config.audit_origin());
        log_config.anchor = Some(config.audit_anchor());
        let audit =
            AuditLog::open(log_config, node_files.signing_key).map_err(StoppedError::Audit)?;
        Ok(StoppedPost {
            node: config.node.name.clone(),
            post: config.node.name.clone(),
            enrolment_key: enrolment.key,
            ca_fingerprint: root_fingerprint(&node_files.ca_pem)?,
            codes: Mutex::new(codes),
            directory: SharedDirectory::new(directory),
            store,
            audit,
            failed: Mutex::new(None),
        })
    }

    /// The operations on this post.
    pub fn operator(&self) -> Operator<'_> {
        Operator::new(
            Some(Desk {
                post: &self.post,
                enrolment_key: &self.enrolment_key,
                codes: &self.codes,
            }),
            &self.directory,
            &self.store,
            self,
        )
    }

    /// The ministry root's fingerprint, handed out with enrolment codes.
    pub fn ca_fingerprint(&self) -> &str {
        &self.ca_fingerprint
    }

    /// Makes everything durable and closes the audit log. An audit record that could not be
    /// appended is reported here, after the command it describes.
    pub fn close(self) -> Result<(), StoppedError> {
        let failed = self
            .failed
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        self.store
            .sync()
            .map_err(|e| StoppedError::Sync(e.to_string()))?;
        self.directory
            .read()
            .sync()
            .map_err(|e| StoppedError::Sync(e.to_string()))?;
        self.codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sync()
            .map_err(|e| StoppedError::Sync(e.to_string()))?;
        self.audit.close().map_err(StoppedError::Close)?;
        match failed {
            Some(e) => Err(StoppedError::Record(e)),
            None => Ok(()),
        }
    }
}

impl Recorder for StoppedPost {
    fn record(&self, record: Record) {
        let mut event = record.event(&self.node, now_ms());
        if event.actor_kind == ActorKind::Operator as i32 {
            event.actor_id = OFFLINE_ACTOR.into();
        }
        if let Err(e) = self.audit.append(event) {
            self.failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(e);
        }
    }
}
