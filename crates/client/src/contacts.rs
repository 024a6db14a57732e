//! Contacts verified in person: the diplomat compared a colleague's safety number face to face
//! (or by a call they trust) and marked them verified. The device ids seen then are kept; when
//! the directory later lists a device for that person that was not among them, their keys
//! changed, and every front end says so plainly until the diplomat verifies again.

use std::collections::BTreeSet;

use prost::Message;
use valise_crypto::identity::DeviceId;

use crate::client::{Client, now_ms};
use crate::error::ClientError;
use crate::store::Table;

/// What was verified of one person, as kept in the store (sealed, keyed by address).
#[derive(Clone, PartialEq, Message)]
pub struct VerifiedContact {
    /// The devices answering to the address when it was verified.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub devices: Vec<Vec<u8>>,
    /// When it was verified (Unix ms).
    #[prost(uint64, tag = "2")]
    pub verified_at_ms: u64,
}

/// Whether a person's keys were verified in person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Never verified on this device.
    Unverified,
    /// Verified, and every device they have now was among those verified.
    Verified {
        /// When (Unix ms).
        at_ms: u64,
    },
    /// Verified once, but a device they have now was not among those verified: their keys
    /// changed (a new device, or someone else's). Compare the safety number again.
    KeysChanged {
        /// When the earlier verification was made (Unix ms).
        verified_at_ms: u64,
    },
}

impl Verification {
    /// The words a front end shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Unverified => "not verified",
            Verification::Verified { .. } => "verified in person",
            Verification::KeysChanged { .. } => "KEYS CHANGED since verified",
        }
    }
}

/// The verification of a person whose active devices are `now`, given what was kept.
pub fn verification(kept: Option<&VerifiedContact>, now: &[DeviceId]) -> Verification {
    let Some(kept) = kept else {
        return Verification::Unverified;
    };
    let seen: BTreeSet<&[u8]> = kept.devices.iter().map(Vec::as_slice).collect();
    if now.iter().all(|d| seen.contains(d.as_bytes().as_slice())) {
        Verification::Verified {
            at_ms: kept.verified_at_ms,
        }
    } else {
        Verification::KeysChanged {
            verified_at_ms: kept.verified_at_ms,
        }
    }
}

impl Client {
    /// The person's active devices, by their verified directory records.
    fn devices_of(&self, address: &str) -> Vec<DeviceId> {
        self.directory()
            .entries()
            .filter(|e| !e.revoked && e.device.address() == address)
            .map(|e| e.device.id)
            .collect()
    }

    /// Whether `address` (a person) was verified in person, and still holds the same keys.
    pub fn verification(&self, address: &str) -> Verification {
        let kept = self
            .store
            .get_message::<VerifiedContact>(Table::Contacts, address.as_bytes())
            .ok()
            .flatten();
        verification(kept.as_ref(), &self.devices_of(address))
    }

    /// Marks `address` verified in person: its devices listed now are the ones compared.
    pub fn mark_verified(&self, address: &str) -> Result<Verification, ClientError> {
        let devices = self.devices_of(address);
        if devices.is_empty() {
            return Err(crate::compose::ComposeError::Unresolved(
                valise_crypto::directory::ResolveError::Unknown(address.to_owned()),
            )
            .into());
        }
        let contact = VerifiedContact {
            devices: devices.iter().map(|d| d.as_bytes().to_vec()).collect(),
            verified_at_ms: now_ms(),
        };
        self.store.put(
            Table::Contacts,
            address.as_bytes(),
            &contact.encode_to_vec(),
        )?;
        Ok(self.verification(address))
    }

    /// Forgets that `address` was verified.
    pub fn unmark_verified(&self, address: &str) -> Result<(), ClientError> {
        self.store.delete(Table::Contacts, address.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(byte: u8) -> DeviceId {
        DeviceId::from_slice(&[byte; 16]).unwrap()
    }

    #[test]
    fn never_verified_is_unverified() {
        assert_eq!(verification(None, &[id(1)]), Verification::Unverified);
    }

    #[test]
    fn same_devices_stay_verified() {
        let kept = VerifiedContact {
            devices: vec![id(1).as_bytes().to_vec(), id(2).as_bytes().to_vec()],
            verified_at_ms: 7,
        };
        // A device revoked since is no change of keys.
        assert_eq!(
            verification(Some(&kept), &[id(2)]),
            Verification::Verified { at_ms: 7 }
        );
    }

    #[test]
    fn a_new_device_is_a_key_change() {
        let kept = VerifiedContact {
            devices: vec![id(1).as_bytes().to_vec()],
            verified_at_ms: 7,
        };
        assert_eq!(
            verification(Some(&kept), &[id(1), id(3)]),
            Verification::KeysChanged { verified_at_ms: 7 }
        );
    }
}
