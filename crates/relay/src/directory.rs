//! The node's directory: [`valise_crypto::directory::Directory`], the verified, versioned
//! directory the client holds too, which answers the policy's questions (the core implements
//! [`DirectoryView`](crate::policy::DirectoryView) for it); and [`DurableDirectory`], which
//! makes every update durable before it takes effect.
//!
//! Addresses: `alice@paris` is the user `alice` at `paris` (all her unrevoked devices);
//! `POL@paris` is the office mailbox `POL` at `paris` (the devices of its members); a bare
//! `paris` is that post's front office, the office `FRONT`.

use std::collections::HashSet;
use std::sync::Arc;

use prost::Message;
use valise_store::{DiskStore, GroupCommit, Store, StoreError, Write};

use valise_crypto::identity::{DeviceId, IdentityPublicKey};
use valise_proto::v1::{DeviceRecord, DirectoryUpdate, directory_update::Update};

pub use valise_crypto::directory::{Directory, FRONT_OFFICE, UpdateError};

/// Why the durable directory refused an update, or could not keep or read its history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurableError {
    /// The update was refused; nothing was stored.
    #[error(transparent)]
    Refused(#[from] UpdateError),
    /// The update could not be made durable; it was not applied.
    #[error("the directory update could not be stored: {0}")]
    Store(String),
}

impl From<StoreError> for DurableError {
    fn from(e: StoreError) -> Self {
        DurableError::Store(e.to_string())
    }
}

/// Why a user's details could not be changed. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeError {
    /// The change names nothing to change.
    #[error(
        "say what to change: --name, --clearance, --office (or --no-offices), --national or --foreign-national"
    )]
    Nothing,
    /// The user has no active device at this post.
    #[error("{0} has no active device at this post; check the name (it is case-sensitive)")]
    NotFound(String),
    /// A new record could not be signed.
    #[error("the new record could not be signed: {0}")]
    Signing(String),
    /// The directory refused or could not store the new record.
    #[error(transparent)]
    Directory(#[from] DurableError),
}

/// A directory whose every applied update is durable before it takes effect, and which is
/// rebuilt on open by replaying (and so re-verifying) the stored history.
pub struct DurableDirectory {
    directory: Directory,
    store: Arc<DiskStore>,
    commit: GroupCommit,
    /// The digest of every update held, so one replicated back, or from two peers, is applied
    /// once.
    held: HashSet<[u8; 32]>,
}

/// What became of an update replicated from another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicated {
    /// Applied: the directory is now at this version.
    Applied(u64),
    /// This node already holds it (it was made here, or came by another link).
    AlreadyHeld,
}

/// Identifies an update by its content, whatever its version in a node's history.
fn update_digest(update: &Update) -> [u8; 32] {
    let unnumbered = DirectoryUpdate {
        version: 0,
        update: Some(update.clone()),
    };
    valise_crypto::sha256(&unnumbered.encode_to_vec())
}

impl DurableDirectory {
    /// Opens the history in `dir` and replays it. A stored update that no longer verifies
    /// means the store was altered: the node refuses to start on it.
    pub fn open(
        dir: &std::path::Path,
        ministry: &str,
        root: IdentityPublicKey,
    ) -> Result<Self, DurableError> {
        let store = Arc::new(DiskStore::open(dir)?);
        let mut directory = Directory::new(ministry, root);
        let mut held = HashSet::new();
        for item in store.scan(b"u") {
            let (_, bytes) = item?;
            let update = DirectoryUpdate::decode(bytes.as_slice()).map_err(|_| {
                DurableError::Store("a stored directory update does not decode".into())
            })?;
            if let Some(u) = &update.update {
                held.insert(update_digest(u));
            }
            // A gap or a duplicate in the stored history is refused as out of order.
            directory.apply_received(update)?;
        }
        let commit = GroupCommit::start(Arc::clone(&store))?;
        Ok(DurableDirectory {
            directory,
            store,
            commit,
            held,
        })
    }

    /// Applies a deliberate `change` to every active device of `user` at `post` (the caller's
    /// post, whose enrolment key signs): each record re-signed, durable before it takes
    /// effect, and replicated like any update. Returns the devices changed.
    pub fn change_user(
        &mut self,
        enrolment_key: &valise_crypto::identity::IdentityKeyPair,
        post: &str,
        user: &str,
        change: &crate::users::Change,
    ) -> Result<Vec<DeviceId>, ChangeError> {
        let address = format!("{user}@{post}");
        if change.is_empty() {
            return Err(ChangeError::Nothing);
        }
        let records: Vec<(DeviceId, DeviceRecord)> = self
            .directory
            .resolve(&address)
            .map_err(|_| ChangeError::NotFound(address.clone()))?
            .into_iter()
            .filter(|d| d.user == user && d.post == post)
            .filter_map(|d| {
                let entry = self.directory.lookup(&d.id)?;
                Some((d.id, crate::users::updated(d, &entry.record, change)))
            })
            .collect();
        if records.is_empty() {
            return Err(ChangeError::NotFound(address));
        }
        let mut changed = Vec::with_capacity(records.len());
        for (id, mut record) in records {
            valise_crypto::directory::sign_device_record(&mut record, enrolment_key)
                .map_err(|e| ChangeError::Signing(e.to_string()))?;
            self.apply(Update::Device(record))?;
            changed.push(id);
        }
        Ok(changed)
    }

    /// Checks an update, makes it durable, then applies it. Returns the new version.
    pub fn apply(&mut self, update: Update) -> Result<u64, DurableError> {
        // Check first, so a refused update writes nothing.
        self.directory.check(&update)?;
        let version = self.directory.version() + 1;
        let record = DirectoryUpdate {
            version,
            update: Some(update.clone()),
        };
        self.commit.commit(vec![Write::Put(
            [&b"u"[..], &version.to_be_bytes()].concat(),
            record.encode_to_vec(),
        )])?;
        let digest = update_digest(&update);
        let version = self.directory.apply(update)?;
        self.held.insert(digest);
        Ok(version)
    }

    /// The content digest of every update held, whatever its version here.
    pub fn held(&self) -> &HashSet<[u8; 32]> {
        &self.held
    }

    /// Applies an update received from another node's history, unless this node already holds
    /// it. Each node keeps its own numbering; an update keeps its content, and each origin's
    /// updates arrive in the order they were made, so a device's record never goes back.
    pub fn apply_replicated(&mut self, update: Update) -> Result<Replicated, DurableError> {
        if self.held.contains(&update_digest(&update)) {
            return Ok(Replicated::AlreadyHeld);
        }
        self.apply(update).map(Replicated::Applied)
    }

    /// Up to `max` stored updates following `after`, in version order, together no larger
    /// than about `max_bytes`: one page of a client's directory sync.
    pub fn updates_after(
        &self,
        after: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<DirectoryUpdate>, DurableError> {
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut version = after;
        while page.len() < max && version < self.directory.version() {
            version += 1;
            let stored = self
                .store
                .get(&[&b"u"[..], &version.to_be_bytes()].concat())?
                .ok_or_else(|| {
                    DurableError::Store(format!("directory update {version} is missing"))
                })?;
            // Always at least one update, so a client can make progress.
            if !page.is_empty() && bytes + stored.len() > max_bytes {
                break;
            }
            bytes += stored.len();
            let update = DirectoryUpdate::decode(stored.as_slice()).map_err(|_| {
                DurableError::Store("a stored directory update does not decode".into())
            })?;
            page.push(update);
        }
        Ok(page)
    }

    /// The directory as it stands.
    pub fn view(&self) -> &Directory {
        &self.directory
    }

    /// Makes everything durable (e.g. at shutdown).
    pub fn sync(&self) -> Result<(), DurableError> {
        Ok(self.store.sync()?)
    }
}
