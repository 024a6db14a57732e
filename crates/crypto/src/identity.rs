//! Device identity keys (Ed25519, ring) and the device ids derived from them.

use std::fmt;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

use crate::length::{LengthError, fixed};
use crate::random::{self, RandomError};

/// Length of a device id in bytes.
pub const DEVICE_ID_LEN: usize = 16;
/// Length of an Ed25519 public key in bytes.
pub const IDENTITY_PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 seed (the private key) in bytes.
pub const IDENTITY_SEED_LEN: usize = 32;
/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// Errors about identity keys and signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A key, id or ciphertext has the wrong length.
    #[error(transparent)]
    BadLength(#[from] LengthError),
    /// The seed was refused by the Ed25519 implementation.
    #[error("the identity key seed is not a valid Ed25519 private key")]
    BadSeed,
    /// The signature does not verify under this key.
    #[error("the signature does not verify under this identity key")]
    BadSignature,
    /// Randomness failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A device id: the first 16 bytes of a domain-separated SHA-256 of the identity public key.
/// Deriving it from the key means a device id can never be claimed for another key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId([u8; DEVICE_ID_LEN]);

impl DeviceId {
    /// Reads a device id from its 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, IdentityError> {
        Ok(DeviceId(fixed(bytes, "a device id")?))
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; DEVICE_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

/// A device's Ed25519 identity public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityPublicKey([u8; IDENTITY_PUBLIC_KEY_LEN]);

impl IdentityPublicKey {
    /// Reads a public key from its 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, IdentityError> {
        Ok(IdentityPublicKey(fixed(bytes, "an identity public key")?))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; IDENTITY_PUBLIC_KEY_LEN] {
        &self.0
    }

    /// The device id this key identifies.
    pub fn device_id(&self) -> DeviceId {
        let digest = crate::digest::sha256_parts(&[b"valise/1 device-id\0", &self.0]);
        let mut id = [0u8; DEVICE_ID_LEN];
        id.copy_from_slice(&digest[..DEVICE_ID_LEN]);
        DeviceId(id)
    }

    /// Verifies an Ed25519 signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), IdentityError> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .map_err(|_| IdentityError::BadSignature)
    }
}

impl fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublicKey({})", hex::encode(self.0))
    }
}

/// A device's Ed25519 identity key pair. The seed is wiped when dropped.
///
/// ring's key pair object does not wipe its expanded private key on drop; it lives only as long
/// as this value. See `docs/threat-model.md`.
pub struct IdentityKeyPair {
    seed: Zeroizing<[u8; IDENTITY_SEED_LEN]>,
    pair: Ed25519KeyPair,
    public: IdentityPublicKey,
}

impl IdentityKeyPair {
    /// Generates a new identity from the operating system's randomness.
    pub fn generate() -> Result<Self, IdentityError> {
        let seed = random::secret::<IDENTITY_SEED_LEN>()?;
        Self::from_seed(&seed[..])
    }

    /// Rebuilds an identity from its 32-byte seed, as stored in a keystore.
    pub fn from_seed(seed: &[u8]) -> Result<Self, IdentityError> {
        let seed: Zeroizing<[u8; IDENTITY_SEED_LEN]> =
            Zeroizing::new(fixed(seed, "an identity seed")?);
        let pair =
            Ed25519KeyPair::from_seed_unchecked(&seed[..]).map_err(|_| IdentityError::BadSeed)?;
        let public = IdentityPublicKey::from_slice(pair.public_key().as_ref())?;
        Ok(IdentityKeyPair { seed, pair, public })
    }

    /// The seed, for storing in a sealed keystore. Never log or display it.
    pub fn seed(&self) -> &Zeroizing<[u8; IDENTITY_SEED_LEN]> {
        &self.seed
    }

    /// The public half.
    pub fn public(&self) -> &IdentityPublicKey {
        &self.public
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.public.device_id()
    }

    /// Signs `message` with Ed25519.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_message_and_key() {
        let alice = IdentityKeyPair::generate().unwrap();
        let bob = IdentityKeyPair::generate().unwrap();
        let sig = alice.sign(b"cable");
        assert_eq!(alice.public().verify(b"cable", &sig), Ok(()));
        assert_eq!(
            alice.public().verify(b"cablf", &sig),
            Err(IdentityError::BadSignature)
        );
        assert_eq!(
            bob.public().verify(b"cable", &sig),
            Err(IdentityError::BadSignature)
        );
        assert_eq!(
            alice.public().verify(b"cable", &sig[..63]),
            Err(IdentityError::BadSignature)
        );
    }

    /// RFC 8032 §7.1, tests 1 and 2: a stored seed is the standard Ed25519 private key, so
    /// other implementations derive the same public key and verify the same signatures.
    #[test]
    fn rfc8032_seeds_give_the_published_keys_and_signatures() {
        let vectors = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ];
        for (seed, public, message, signature) in vectors {
            let pair = IdentityKeyPair::from_seed(&hex::decode(seed).unwrap()).unwrap();
            assert_eq!(hex::encode(pair.public().as_bytes()), public);
            let message = hex::decode(message).unwrap();
            assert_eq!(hex::encode(pair.sign(&message)), signature);
            let published = IdentityPublicKey::from_slice(&hex::decode(public).unwrap()).unwrap();
            assert_eq!(
                published.verify(&message, &hex::decode(signature).unwrap()),
                Ok(())
            );
        }
    }

    #[test]
    fn a_stored_seed_restores_the_same_identity() {
        let alice = IdentityKeyPair::generate().unwrap();
        let restored = IdentityKeyPair::from_seed(&alice.seed()[..]).unwrap();
        assert_eq!(restored.public(), alice.public());
        assert_eq!(restored.device_id(), alice.device_id());
    }

    #[test]
    fn device_ids_differ_per_key_and_are_stable() {
        let a = IdentityKeyPair::from_seed(&[1; 32]).unwrap();
        let b = IdentityKeyPair::from_seed(&[2; 32]).unwrap();
        assert_ne!(a.device_id(), b.device_id());
        assert_eq!(
            a.device_id(),
            IdentityKeyPair::from_seed(&[1; 32]).unwrap().device_id()
        );
    }

    #[test]
    fn wrong_lengths_are_named() {
        let err = IdentityPublicKey::from_slice(&[0; 31]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "an identity public key must be 32 bytes, got 31"
        );
        assert!(DeviceId::from_slice(&[0; 17]).is_err());
        assert!(IdentityKeyPair::from_seed(&[0; 33]).is_err());
    }

    #[test]
    fn debug_output_never_shows_the_seed() {
        let k = IdentityKeyPair::from_seed(&[0x42; 32]).unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains(&hex::encode([0x42; 32])));
        assert!(!shown.contains("66, 66"));
    }
}
