//! The node's directory: every enrolment key, device record and revocation it knows, each
//! checked along the chain to the ministry root before it is applied, numbered so clients and
//! peers can sync from a version on. It answers the policy's questions ([`DirectoryView`]).
//!
//! Addresses: `alice@paris` is the user `alice` at `paris` (all her unrevoked devices);
//! `POL@paris` is the office mailbox `POL` at `paris` (the devices of its members); a bare
//! `paris` is that post's front office, the office `FRONT`.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use valise_audit::store::{GroupCommit, SledStore, Store, StoreError, Write};

use valise_crypto::directory::{
    DirectoryError, Enroller, VerifiedDevice, verify_device_record, verify_revocation,
};
use valise_crypto::identity::{DeviceId, IdentityPublicKey};
use valise_proto::v1::{self, DirectoryUpdate, directory_update::Update};

use crate::policy::{DeviceView, DirectoryView};

/// The office a bare post address reaches.
pub const FRONT_OFFICE: &str = "FRONT";

/// Why a directory update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The update's chain does not verify.
    #[error(transparent)]
    Untrusted(#[from] DirectoryError),
    /// The update names a post with no certified enrolment key here.
    #[error("no certified enrolment key for post {0:?}; sync the enrolment certificates first")]
    UnknownPost(String),
    /// A revocation names a device this directory does not know.
    #[error("revocation of unknown device {0}")]
    UnknownDevice(DeviceId),
    /// A revoked device cannot be enrolled again; enrol a new device.
    #[error("device {0} is revoked and cannot be re-enrolled")]
    Revoked(DeviceId),
    /// The update is empty.
    #[error("empty directory update")]
    Empty,
    /// The update could not be made durable; it was not applied.
    #[error("the directory update could not be stored: {0}")]
    Store(String),
}

impl From<StoreError> for UpdateError {
    fn from(e: StoreError) -> Self {
        UpdateError::Store(e.to_string())
    }
}

struct Device {
    verified: VerifiedDevice,
    view: DeviceView,
}

/// A node's directory.
pub struct Directory {
    ministry: String,
    root: IdentityPublicKey,
    enrollers: HashMap<String, Enroller>,
    devices: HashMap<DeviceId, Device>,
    history: Vec<DirectoryUpdate>,
}

impl Directory {
    /// An empty directory trusting `root` for `ministry`.
    pub fn new(ministry: &str, root: IdentityPublicKey) -> Self {
        Directory {
            ministry: ministry.to_owned(),
            root,
            enrollers: HashMap::new(),
            devices: HashMap::new(),
            history: Vec::new(),
        }
    }

    /// The current version: the number of updates applied.
    pub fn version(&self) -> u64 {
        self.history.len() as u64
    }

    /// The updates after `version`, for a client or peer syncing.
    pub fn updates_since(&self, version: u64) -> &[DirectoryUpdate] {
        let from = usize::try_from(version)
            .unwrap_or(usize::MAX)
            .min(self.history.len());
        &self.history[from..]
    }

    /// Checks one update without applying it.
    pub fn check(&self, update: &Update) -> Result<(), UpdateError> {
        match update {
            Update::Enroller(cert) => {
                Enroller::verify(cert, &self.root, &self.ministry).map(drop)?
            }
            Update::Device(record) => self.verified_record(record).map(drop)?,
            Update::Revocation(revocation) => self.verified_revocation(revocation).map(drop)?,
        }
        Ok(())
    }

    /// Checks and applies one update; returns the new version.
    pub fn apply(&mut self, update: Update) -> Result<u64, UpdateError> {
        match &update {
            Update::Enroller(cert) => {
                let enroller = Enroller::verify(cert, &self.root, &self.ministry)?;
                self.enrollers.insert(enroller.post.clone(), enroller);
            }
            Update::Device(record) => {
                let verified = self.verified_record(record)?;
                let view = DeviceView {
                    id: verified.id,
                    user: verified.address(),
                    clearance: verified.clearance,
                    revoked: false,
                };
                self.devices.insert(verified.id, Device { verified, view });
            }
            Update::Revocation(revocation) => {
                let id = self.verified_revocation(revocation)?;
                if let Some(d) = self.devices.get_mut(&id) {
                    d.view.revoked = true;
                }
            }
        }
        let version = self.version() + 1;
        self.history.push(DirectoryUpdate {
            version,
            update: Some(update),
        });
        Ok(version)
    }

    /// A device record checked along the chain; a revoked device cannot come back.
    fn verified_record(&self, record: &v1::DeviceRecord) -> Result<VerifiedDevice, UpdateError> {
        let verified = verify_device_record(record, self.enroller(&record.post)?)?;
        if self
            .devices
            .get(&verified.id)
            .is_some_and(|d| d.view.revoked)
        {
            return Err(UpdateError::Revoked(verified.id));
        }
        Ok(verified)
    }

    /// A revocation checked against the revoked device's own post.
    fn verified_revocation(&self, revocation: &v1::Revocation) -> Result<DeviceId, UpdateError> {
        let id = DeviceId::from_slice(&revocation.device_id)
            .map_err(|_| DirectoryError::Malformed("revocation device id"))?;
        let device = self
            .devices
            .get(&id)
            .ok_or(UpdateError::UnknownDevice(id))?;
        Ok(verify_revocation(
            revocation,
            &device.verified,
            self.enroller(&device.verified.post)?,
        )?)
    }

    /// Applies an update received from a peer or a store.
    pub fn apply_received(&mut self, update: DirectoryUpdate) -> Result<u64, UpdateError> {
        self.apply(update.update.ok_or(UpdateError::Empty)?)
    }

    fn enroller(&self, post: &str) -> Result<&Enroller, UpdateError> {
        self.enrollers
            .get(post)
            .ok_or_else(|| UpdateError::UnknownPost(post.to_owned()))
    }

    /// Whether a post's enrolment key is certified here.
    pub fn has_enroller(&self, post: &str) -> bool {
        self.enrollers.contains_key(post)
    }

    /// The verified record of a device.
    pub fn verified(&self, id: &DeviceId) -> Option<&VerifiedDevice> {
        self.devices.get(id).map(|d| &d.verified)
    }

    /// Whether a device is enrolled and not revoked.
    pub fn is_active(&self, id: &DeviceId) -> bool {
        self.devices.get(id).is_some_and(|d| !d.view.revoked)
    }

    /// Splits an address into (name, post, is_office).
    fn parse(address: &str) -> Option<(&str, &str, bool)> {
        match address.split_once('@') {
            Some((name, post)) if !name.is_empty() && !post.is_empty() => Some((
                name,
                post,
                name.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-'),
            )),
            Some(_) => None,
            None if !address.is_empty() => Some((FRONT_OFFICE, address, true)),
            None => None,
        }
    }
}

impl DirectoryView for Directory {
    fn device(&self, id: &DeviceId) -> Option<&DeviceView> {
        self.devices.get(id).map(|d| &d.view)
    }

    fn devices_for(&self, address: &str) -> Option<Vec<DeviceId>> {
        let (name, post, office) = Self::parse(address)?;
        let members: Vec<DeviceId> = self
            .devices
            .values()
            .filter(|d| !d.view.revoked && d.verified.post == post)
            .filter(|d| {
                if office {
                    d.verified.offices.iter().any(|o| o == name)
                } else {
                    d.verified.user == name
                }
            })
            .map(|d| d.verified.id)
            .collect();
        // An address nobody answers to is unknown, not an empty distribution.
        (!members.is_empty()).then_some(members)
    }

    fn is_office(&self, address: &str) -> bool {
        Self::parse(address).is_some_and(|(_, _, office)| office)
    }
}

/// A directory whose every applied update is durable before it takes effect, and which is
/// rebuilt on open by replaying (and so re-verifying) the stored history.
pub struct DurableDirectory {
    directory: Directory,
    store: Arc<SledStore>,
    commit: GroupCommit,
}

impl DurableDirectory {
    /// Opens the history in `dir` and replays it. A stored update that no longer verifies
    /// means the store was altered: the node refuses to start on it.
    pub fn open(
        dir: &std::path::Path,
        ministry: &str,
        root: IdentityPublicKey,
    ) -> Result<Self, UpdateError> {
        let store = Arc::new(SledStore::open(dir)?);
        let mut directory = Directory::new(ministry, root);
        for item in store.scan(b"u") {
            let (_, bytes) = item?;
            let update = DirectoryUpdate::decode(bytes.as_slice()).map_err(|_| {
                UpdateError::Store("a stored directory update does not decode".into())
            })?;
            let expected = directory.version() + 1;
            if update.version != expected {
                return Err(UpdateError::Store(format!(
                    "directory update {expected} is missing or out of place"
                )));
            }
            directory.apply_received(update)?;
        }
        let commit = GroupCommit::start(Arc::clone(&store))?;
        Ok(DurableDirectory {
            directory,
            store,
            commit,
        })
    }

    /// Checks an update, makes it durable, then applies it. Returns the new version.
    pub fn apply(&mut self, update: Update) -> Result<u64, UpdateError> {
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
        self.directory.apply(update)
    }

    /// Up to `max` stored updates following `after`, in version order, together no larger
    /// than about `max_bytes`: one page of a client's directory sync.
    pub fn updates_after(
        &self,
        after: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<DirectoryUpdate>, UpdateError> {
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut version = after;
        while page.len() < max && version < self.directory.version() {
            version += 1;
            let stored = self
                .store
                .get(&[&b"u"[..], &version.to_be_bytes()].concat())?
                .ok_or_else(|| {
                    UpdateError::Store(format!("directory update {version} is missing"))
                })?;
            // Always at least one update, so a client can make progress.
            if !page.is_empty() && bytes + stored.len() > max_bytes {
                break;
            }
            bytes += stored.len();
            let update = DirectoryUpdate::decode(stored.as_slice()).map_err(|_| {
                UpdateError::Store("a stored directory update does not decode".into())
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
    pub fn sync(&self) -> Result<(), UpdateError> {
        Ok(self.store.sync()?)
    }
}
