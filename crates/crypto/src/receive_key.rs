//! Receive keys: a device's X-Wing key pairs with ids and validity windows, published signed by
//! the device's identity key, rotated on a schedule and erased after their retention period.

use std::fmt;

use valise_proto::{canonical, v1};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::identity::{DeviceId, IdentityKeyPair, IdentityPublicKey};
use crate::xwing::{self, KemError, XWingPublicKey, XWingSecretKey};

/// Length of a receive key id in bytes.
pub const RECEIVE_KEY_ID_LEN: usize = 16;

/// Version byte of [`ReceiveKeyPair::to_bytes`].
const STORED_FORMAT_V1: u8 = 1;
const STORED_LEN: usize = 1 + xwing::SECRET_KEY_LEN + 8 + 8;

/// Errors about receive keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveKeyError {
    /// The key material is unusable.
    #[error(transparent)]
    Kem(#[from] KemError),
    /// The published key's id is not the one derived from its public key.
    #[error("the receive key's id does not match its public key")]
    IdMismatch,
    /// The published key belongs to another device.
    #[error("the receive key belongs to device {found}, not {expected}")]
    WrongDevice {
        /// The device the key was checked for.
        expected: DeviceId,
        /// The device the key names.
        found: DeviceId,
    },
    /// The device identity's signature over the key does not verify.
    #[error("the receive key's signature does not verify under the device identity key")]
    BadSignature,
    /// The validity window ends before it starts.
    #[error("the receive key's validity window ends before it starts")]
    BadValidity,
    /// A field has the wrong length.
    #[error("the receive key's {0} has the wrong length")]
    BadField(&'static str),
    /// A stored key pair is not in a format this build reads.
    #[error("the stored receive key is damaged or in an unknown format (version byte {0})")]
    BadStoredFormat(u8),
}

/// A receive key id: the first 16 bytes of a domain-separated SHA-256 of the public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReceiveKeyId([u8; RECEIVE_KEY_ID_LEN]);

impl ReceiveKeyId {
    /// The id of an X-Wing public key.
    pub fn of(public: &XWingPublicKey) -> Self {
        let digest =
            crate::digest::sha256_parts(&[b"valise/1 receive-key-id\0", &public.to_bytes()]);
        let mut id = [0u8; RECEIVE_KEY_ID_LEN];
        id.copy_from_slice(&digest[..RECEIVE_KEY_ID_LEN]);
        ReceiveKeyId(id)
    }

    /// Reads an id from its 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(ReceiveKeyId)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; RECEIVE_KEY_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for ReceiveKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ReceiveKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReceiveKeyId({self})")
    }
}

/// One of this device's receive key pairs. The private seed is wiped when dropped.
#[derive(ZeroizeOnDrop)]
pub struct ReceiveKeyPair {
    #[zeroize(skip)]
    id: ReceiveKeyId,
    secret: XWingSecretKey,
    #[zeroize(skip)]
    public: XWingPublicKey,
    #[zeroize(skip)]
    valid_from_ms: u64,
    #[zeroize(skip)]
    valid_until_ms: u64,
}

impl ReceiveKeyPair {
    /// Generates a key valid from `valid_from_ms` to `valid_until_ms` (Unix milliseconds).
    pub fn generate(valid_from_ms: u64, valid_until_ms: u64) -> Result<Self, ReceiveKeyError> {
        Self::from_secret(XWingSecretKey::generate()?, valid_from_ms, valid_until_ms)
    }

    fn from_secret(
        secret: XWingSecretKey,
        valid_from_ms: u64,
        valid_until_ms: u64,
    ) -> Result<Self, ReceiveKeyError> {
        if valid_until_ms < valid_from_ms {
            return Err(ReceiveKeyError::BadValidity);
        }
        let public = secret.public_key();
        Ok(ReceiveKeyPair {
            id: ReceiveKeyId::of(&public),
            secret,
            public,
            valid_from_ms,
            valid_until_ms,
        })
    }

    /// The key's id.
    pub fn id(&self) -> ReceiveKeyId {
        self.id
    }

    /// The public key.
    pub fn public(&self) -> &XWingPublicKey {
        &self.public
    }

    /// The private key.
    pub(crate) fn secret(&self) -> &XWingSecretKey {
        &self.secret
    }

    /// Start of validity, Unix milliseconds.
    pub fn valid_from_ms(&self) -> u64 {
        self.valid_from_ms
    }

    /// End of validity, Unix milliseconds. After it, senders no longer encrypt to the key;
    /// the device keeps the private half for its retention period to open late cables.
    pub fn valid_until_ms(&self) -> u64 {
        self.valid_until_ms
    }

    /// The public record to publish, signed by the device's identity key.
    pub fn to_signed_record(
        &self,
        identity: &IdentityKeyPair,
    ) -> Result<v1::ReceiveKey, canonical::CanonicalError> {
        let mut record = v1::ReceiveKey {
            key_id: self.id.as_bytes().to_vec(),
            public_key: self.public.to_bytes().to_vec(),
            device_id: identity.device_id().as_bytes().to_vec(),
            valid_from_ms: self.valid_from_ms,
            valid_until_ms: self.valid_until_ms,
            signature: Vec::new(),
        };
        record.signature = identity.sign(&canonical::receive_key(&record)?).to_vec();
        Ok(record)
    }

    /// The key pair as bytes for a sealed keystore: version ‖ seed ‖ validity. Wiped on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(STORED_LEN));
        out.push(STORED_FORMAT_V1);
        out.extend_from_slice(&self.secret.seed()[..]);
        out.extend_from_slice(&self.valid_from_ms.to_be_bytes());
        out.extend_from_slice(&self.valid_until_ms.to_be_bytes());
        out
    }

    /// Reads a key pair written by [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ReceiveKeyError> {
        let version = bytes.first().copied().unwrap_or(0);
        if version != STORED_FORMAT_V1 || bytes.len() != STORED_LEN {
            return Err(ReceiveKeyError::BadStoredFormat(version));
        }
        let seed = &bytes[1..1 + xwing::SECRET_KEY_LEN];
        let rest = &bytes[1 + xwing::SECRET_KEY_LEN..];
        let from = u64::from_be_bytes(
            rest[..8]
                .try_into()
                .map_err(|_| ReceiveKeyError::BadStoredFormat(version))?,
        );
        let until = u64::from_be_bytes(
            rest[8..]
                .try_into()
                .map_err(|_| ReceiveKeyError::BadStoredFormat(version))?,
        );
        Self::from_secret(XWingSecretKey::from_seed(seed)?, from, until)
    }
}

impl fmt::Debug for ReceiveKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiveKeyPair")
            .field("id", &self.id)
            .field("valid_from_ms", &self.valid_from_ms)
            .field("valid_until_ms", &self.valid_until_ms)
            .finish_non_exhaustive()
    }
}

/// A recipient device's receive key, checked against the device's identity key: a sender can
/// encrypt to it.
#[derive(Clone)]
pub struct VerifiedReceiveKey {
    id: ReceiveKeyId,
    device_id: DeviceId,
    public: XWingPublicKey,
    valid_from_ms: u64,
    valid_until_ms: u64,
}

impl VerifiedReceiveKey {
    /// Checks a published receive key: its signature by `owner`, that it names `owner`'s
    /// device, that its id matches its public key, and that the public key is valid.
    pub fn verify(
        record: &v1::ReceiveKey,
        owner: &IdentityPublicKey,
    ) -> Result<Self, ReceiveKeyError> {
        let signed =
            canonical::receive_key(record).map_err(|_| ReceiveKeyError::BadField("encoding"))?;
        owner
            .verify(&signed, &record.signature)
            .map_err(|_| ReceiveKeyError::BadSignature)?;
        let device_id = DeviceId::from_slice(&record.device_id)
            .map_err(|_| ReceiveKeyError::BadField("device id"))?;
        if device_id != owner.device_id() {
            return Err(ReceiveKeyError::WrongDevice {
                expected: owner.device_id(),
                found: device_id,
            });
        }
        let public = XWingPublicKey::from_slice(&record.public_key)?;
        let id = ReceiveKeyId::of(&public);
        if record.key_id != id.as_bytes() {
            return Err(ReceiveKeyError::IdMismatch);
        }
        if record.valid_until_ms < record.valid_from_ms {
            return Err(ReceiveKeyError::BadValidity);
        }
        Ok(VerifiedReceiveKey {
            id,
            device_id,
            public,
            valid_from_ms: record.valid_from_ms,
            valid_until_ms: record.valid_until_ms,
        })
    }

    /// The key's id.
    pub fn id(&self) -> ReceiveKeyId {
        self.id
    }

    /// The device the key belongs to.
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The public key.
    pub fn public(&self) -> &XWingPublicKey {
        &self.public
    }

    /// When senders may start to encrypt to it (Unix ms).
    pub fn valid_from_ms(&self) -> u64 {
        self.valid_from_ms
    }

    /// When senders must stop encrypting to it (Unix ms).
    pub fn valid_until_ms(&self) -> u64 {
        self.valid_until_ms
    }

    /// Whether senders may encrypt to this key at `at_ms` (Unix milliseconds).
    pub fn is_valid_at(&self, at_ms: u64) -> bool {
        (self.valid_from_ms..=self.valid_until_ms).contains(&at_ms)
    }
}

impl fmt::Debug for VerifiedReceiveKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedReceiveKey")
            .field("id", &self.id)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 86_400_000;

    #[test]
    fn a_published_key_verifies_for_its_owner_only() {
        let alice = IdentityKeyPair::generate().unwrap();
        let mallory = IdentityKeyPair::generate().unwrap();
        let key = ReceiveKeyPair::generate(0, 7 * DAY_MS).unwrap();
        let record = key.to_signed_record(&alice).unwrap();
        let verified = VerifiedReceiveKey::verify(&record, alice.public()).unwrap();
        assert_eq!(verified.id(), key.id());
        assert_eq!(verified.device_id(), alice.device_id());
        assert_eq!(
            VerifiedReceiveKey::verify(&record, mallory.public()).err(),
            Some(ReceiveKeyError::BadSignature)
        );
    }

    #[test]
    fn a_substituted_public_key_is_refused() {
        let alice = IdentityKeyPair::generate().unwrap();
        let mut record = ReceiveKeyPair::generate(0, DAY_MS)
            .unwrap()
            .to_signed_record(&alice)
            .unwrap();
        record.public_key = ReceiveKeyPair::generate(0, DAY_MS)
            .unwrap()
            .public()
            .to_bytes()
            .to_vec();
        assert_eq!(
            VerifiedReceiveKey::verify(&record, alice.public()).err(),
            Some(ReceiveKeyError::BadSignature)
        );
    }

    #[test]
    fn a_key_signed_for_another_device_is_refused() {
        let alice = IdentityKeyPair::generate().unwrap();
        let key = ReceiveKeyPair::generate(0, DAY_MS).unwrap();
        let mut record = key.to_signed_record(&alice).unwrap();
        record.device_id = vec![9; 16];
        record.signature = alice
            .sign(&canonical::receive_key(&record).unwrap())
            .to_vec();
        assert!(matches!(
            VerifiedReceiveKey::verify(&record, alice.public()),
            Err(ReceiveKeyError::WrongDevice { .. })
        ));
    }

    #[test]
    fn validity_windows_are_enforced() {
        assert_eq!(
            ReceiveKeyPair::generate(10, 5).err(),
            Some(ReceiveKeyError::BadValidity)
        );
        let alice = IdentityKeyPair::generate().unwrap();
        let record = ReceiveKeyPair::generate(DAY_MS, 2 * DAY_MS)
            .unwrap()
            .to_signed_record(&alice)
            .unwrap();
        let verified = VerifiedReceiveKey::verify(&record, alice.public()).unwrap();
        assert!(!verified.is_valid_at(DAY_MS - 1));
        assert!(verified.is_valid_at(DAY_MS));
        assert!(!verified.is_valid_at(2 * DAY_MS + 1));
    }

    #[test]
    fn a_stored_key_pair_restores_exactly() {
        let key = ReceiveKeyPair::generate(5, 6).unwrap();
        let restored = ReceiveKeyPair::from_bytes(&key.to_bytes()).unwrap();
        assert_eq!(restored.id(), key.id());
        assert_eq!(
            (restored.valid_from_ms(), restored.valid_until_ms()),
            (5, 6)
        );
        assert_eq!(
            ReceiveKeyPair::from_bytes(&[]).err(),
            Some(ReceiveKeyError::BadStoredFormat(0))
        );
        assert_eq!(
            ReceiveKeyPair::from_bytes(&[2; STORED_LEN]).err(),
            Some(ReceiveKeyError::BadStoredFormat(2))
        );
        assert!(ReceiveKeyPair::from_bytes(&key.to_bytes()[..STORED_LEN - 1]).is_err());
    }
}
