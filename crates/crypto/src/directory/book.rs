//! The verified directory in memory: every enrolment key, device record and revocation it
//! knows, each checked along the chain to the ministry root before it is applied, numbered so
//! clients and peers can sync from a version on.

use std::collections::HashMap;

use valise_proto::v1::{self, DirectoryUpdate, directory_update::Update};

use super::address::{Address, ResolveError};
use super::records::{
    DirectoryError, Enroller, VerifiedDevice, verify_device_record, verify_revocation,
};
use crate::identity::{DeviceId, IdentityPublicKey};

/// Why a directory update was refused. A refused update changes nothing.
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
    /// A received update does not carry the next version: one was skipped or replayed.
    #[error("directory update {got} is out of order: version {expected} was expected; sync again from version {current}", current = expected.saturating_sub(1))]
    OutOfOrder {
        /// The version that should have come next.
        expected: u64,
        /// The version received.
        got: u64,
    },
}

/// A device the directory knows, revoked or not.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Entry {
    /// Its verified record.
    pub device: VerifiedDevice,
    /// Whether it has been revoked. A revoked device is never enrolled again.
    pub revoked: bool,
    /// The signed record it was verified from, so its post can re-sign it with a change.
    pub record: v1::DeviceRecord,
    /// When it was revoked (Unix ms, as its post signed it); 0 while active.
    pub revoked_at_ms: u64,
}

/// A verified, versioned directory, held in memory. It keeps the current state and its version,
/// not the history: whoever serves a sync (the node's durable directory) keeps that.
#[derive(Debug, Clone)]
pub struct Directory {
    ministry: String,
    root: IdentityPublicKey,
    enrollers: HashMap<String, Enroller>,
    /// The root's certificates, as signed, for evidence.
    enroller_certs: HashMap<String, v1::EnrolmentCertificate>,
    devices: HashMap<DeviceId, Entry>,
    version: u64,
}

impl Directory {
    /// An empty directory trusting `root` for `ministry`.
    pub fn new(ministry: &str, root: IdentityPublicKey) -> Self {
        Directory {
            ministry: ministry.to_owned(),
            root,
            enrollers: HashMap::new(),
            enroller_certs: HashMap::new(),
            devices: HashMap::new(),
            version: 0,
        }
    }

    /// The root's certificate of `post`'s enrolment key, as signed.
    pub fn enrolment_certificate(&self, post: &str) -> Option<&v1::EnrolmentCertificate> {
        self.enroller_certs.get(post)
    }

    /// The ministry this directory trusts.
    pub fn ministry(&self) -> &str {
        &self.ministry
    }

    /// The current version: the number of updates applied.
    pub fn version(&self) -> u64 {
        self.version
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
                self.enroller_certs
                    .insert(enroller.post.clone(), cert.clone());
                self.enrollers.insert(enroller.post.clone(), enroller);
            }
            Update::Device(record) => {
                let device = self.verified_record(record)?;
                self.devices.insert(
                    device.id,
                    Entry {
                        device,
                        revoked: false,
                        record: record.clone(),
                        revoked_at_ms: 0,
                    },
                );
            }
            Update::Revocation(revocation) => {
                let id = self.verified_revocation(revocation)?;
                if let Some(entry) = self.devices.get_mut(&id) {
                    entry.revoked = true;
                    entry.revoked_at_ms = revocation.revoked_at_ms;
                }
            }
        }
        self.version += 1;
        Ok(self.version)
    }

    /// Applies an update received from a peer, a node or a store. It must carry the next
    /// version, so a skipped or replayed update is caught rather than silently reordered.
    pub fn apply_received(&mut self, update: DirectoryUpdate) -> Result<u64, UpdateError> {
        let expected = self.version + 1;
        if update.version != expected {
            return Err(UpdateError::OutOfOrder {
                expected,
                got: update.version,
            });
        }
        self.apply(update.update.ok_or(UpdateError::Empty)?)
    }

    /// Whether a post's enrolment key is certified here.
    pub fn has_enroller(&self, post: &str) -> bool {
        self.enrollers.contains_key(post)
    }

    /// The verified record of a device, revoked or not.
    pub fn verified(&self, id: &DeviceId) -> Option<&VerifiedDevice> {
        self.devices.get(id).map(|e| &e.device)
    }

    /// Every device this directory knows, revoked ones included.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.devices.values()
    }

    /// A device, revoked or not, and whether it is revoked.
    pub fn lookup(&self, id: &DeviceId) -> Option<&Entry> {
        self.devices.get(id)
    }

    /// Whether a device is enrolled and not revoked.
    pub fn is_active(&self, id: &DeviceId) -> bool {
        self.devices.get(id).is_some_and(|e| !e.revoked)
    }

    /// The unrevoked devices an address reaches (see [`Address`]), by user name then device
    /// id. An address nobody answers to is an error, never an empty list.
    pub fn resolve(&self, address: &str) -> Result<Vec<&VerifiedDevice>, ResolveError> {
        let parsed = Address::parse(address)?;
        let mut devices: Vec<&VerifiedDevice> = self
            .answering(&parsed)
            .into_iter()
            .filter(|e| !e.revoked)
            .map(|e| &e.device)
            .collect();
        if devices.is_empty() {
            return Err(if self.has_enroller(parsed.post) {
                ResolveError::Unknown(address.to_owned())
            } else {
                ResolveError::UnknownPost {
                    address: address.to_owned(),
                    post: parsed.post.to_owned(),
                }
            });
        }
        devices.sort_by(|a, b| (&a.user, a.id).cmp(&(&b.user, b.id)));
        Ok(devices)
    }

    /// The revoked devices that answered to an address, so a sender can be told why an
    /// address no longer resolves.
    pub fn revoked_at(&self, address: &str) -> Vec<&VerifiedDevice> {
        let Ok(parsed) = Address::parse(address) else {
            return Vec::new();
        };
        self.answering(&parsed)
            .into_iter()
            .filter(|e| e.revoked)
            .map(|e| &e.device)
            .collect()
    }

    /// The address as the directory spells it, for one typed in another case (`pol@paris`,
    /// `alice@PARIS`): exact if known, else the one known address equal to it but for case.
    pub fn canonical_address(&self, typed: &str) -> Option<String> {
        if self.resolve(typed).is_ok() {
            return Some(typed.to_owned());
        }
        let (name, post) = typed.split_once('@').unwrap_or(("", typed));
        let mut found: Vec<String> = Vec::new();
        for entry in self.devices.values().filter(|e| !e.revoked) {
            let d = &entry.device;
            if !d.post.eq_ignore_ascii_case(post) {
                continue;
            }
            let candidates = std::iter::once(d.user.clone())
                .chain(d.offices.iter().cloned())
                .filter(|n| n.eq_ignore_ascii_case(name))
                .map(|n| format!("{n}@{}", d.post));
            let bare = (name.is_empty()).then(|| d.post.clone());
            for c in candidates.chain(bare) {
                if !found.contains(&c) {
                    found.push(c);
                }
            }
        }
        match found.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    /// Every device, revoked or not, that answers to a parsed address.
    fn answering(&self, parsed: &Address<'_>) -> Vec<&Entry> {
        self.devices
            .values()
            .filter(|e| {
                e.device.post == parsed.post
                    && if parsed.office {
                        e.device.offices.iter().any(|o| o == parsed.name)
                    } else {
                        e.device.user == parsed.name
                    }
            })
            .collect()
    }

    /// Every unrevoked device, by post, user name, then device id.
    pub fn active_devices(&self) -> Vec<&VerifiedDevice> {
        let mut devices: Vec<&VerifiedDevice> = self
            .devices
            .values()
            .filter(|e| !e.revoked)
            .map(|e| &e.device)
            .collect();
        devices.sort_by(|a, b| (&a.post, &a.user, a.id).cmp(&(&b.post, &b.user, b.id)));
        devices
    }

    /// A device record checked along the chain; a revoked device cannot come back.
    fn verified_record(&self, record: &v1::DeviceRecord) -> Result<VerifiedDevice, UpdateError> {
        let verified = verify_device_record(record, self.enroller(&record.post)?)?;
        if self.devices.get(&verified.id).is_some_and(|e| e.revoked) {
            return Err(UpdateError::Revoked(verified.id));
        }
        Ok(verified)
    }

    /// A revocation checked against the revoked device's own post.
    fn verified_revocation(&self, revocation: &v1::Revocation) -> Result<DeviceId, UpdateError> {
        let id = DeviceId::from_slice(&revocation.device_id)
            .map_err(|_| DirectoryError::Malformed("revocation device id"))?;
        let entry = self
            .devices
            .get(&id)
            .ok_or(UpdateError::UnknownDevice(id))?;
        Ok(verify_revocation(
            revocation,
            &entry.device,
            self.enroller(&entry.device.post)?,
        )?)
    }

    fn enroller(&self, post: &str) -> Result<&Enroller, UpdateError> {
        self.enrollers
            .get(post)
            .ok_or_else(|| UpdateError::UnknownPost(post.to_owned()))
    }
}
