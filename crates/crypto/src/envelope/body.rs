//! The body layer of an envelope: a `CableBody` encrypted once with AES-256-GCM under a fresh
//! content key, with the canonical routing header as AAD.
//!
//! [`super::seal`] and [`super::open`] are the API for cables; this layer is public so its cost
//! can be measured on its own.

use prost::Message;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use valise_proto::v1;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::random::{self, RandomError};

/// Length of a content key.
pub const CONTENT_KEY_LEN: usize = 32;

/// Why the body layer failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The ciphertext does not authenticate under this key and header.
    #[error("the body does not decrypt: altered, or another header or key")]
    Tampered,
    /// The plaintext is not a `CableBody`.
    #[error("the body decrypts but is not a valid cable body")]
    Malformed,
    /// ring refused the key or the buffer (internal error).
    #[error("internal error: the body could not be encrypted")]
    Internal,
}

/// A content key (CEK). It encrypts exactly one body, so the nonce is fixed. Wiped on drop.
#[derive(ZeroizeOnDrop)]
pub struct ContentKey(Zeroizing<[u8; CONTENT_KEY_LEN]>);

impl ContentKey {
    /// A fresh random content key.
    pub fn generate() -> Result<Self, RandomError> {
        random::secret().map(ContentKey)
    }

    pub(super) fn from_bytes(bytes: &[u8; CONTENT_KEY_LEN]) -> Self {
        ContentKey(Zeroizing::new(*bytes))
    }

    pub(super) fn as_bytes(&self) -> &[u8; CONTENT_KEY_LEN] {
        &self.0
    }

    /// The commitment the sender signs: SHA-256 of a domain label and the key.
    pub(super) fn commitment(&self) -> [u8; 32] {
        crate::digest::sha256_parts(&[b"valise/1 cek-commitment\0", &self.0[..]])
    }

    fn aead(&self) -> Result<LessSafeKey, BodyError> {
        UnboundKey::new(&AES_256_GCM, &self.0[..])
            .map(LessSafeKey::new)
            .map_err(|_| BodyError::Internal)
    }
}

fn nonce() -> Nonce {
    Nonce::assume_unique_for_key([0u8; NONCE_LEN])
}

/// Encodes and encrypts `body` with `aad` (the canonical header bytes). The plaintext is
/// encoded straight into the buffer that is then encrypted in place: one copy, no more.
pub fn encrypt(key: &ContentKey, aad: &[u8], body: &v1::CableBody) -> Result<Vec<u8>, BodyError> {
    let mut buf = Zeroizing::new(Vec::with_capacity(
        body.encoded_len() + AES_256_GCM.tag_len(),
    ));
    body.encode(&mut *buf).map_err(|_| BodyError::Internal)?;
    key.aead()?
        .seal_in_place_append_tag(nonce(), Aad::from(aad), &mut *buf)
        .map_err(|_| BodyError::Internal)?;
    // Ciphertext now, no longer secret: move it out of the wiping buffer.
    Ok(std::mem::take(&mut *buf))
}

/// Decrypts and decodes a body sealed by [`encrypt`] with the same `aad`.
pub fn decrypt(
    key: &ContentKey,
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<v1::CableBody, BodyError> {
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let plaintext = key
        .aead()?
        .open_in_place(nonce(), Aad::from(aad), &mut buf[..])
        .map_err(|_| BodyError::Tampered)?;
    v1::CableBody::decode(&*plaintext).map_err(|_| BodyError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_opens_only_with_its_key_and_header() {
        let key = ContentKey::generate().unwrap();
        let body = v1::CableBody {
            subject: "s".into(),
            text: "t".into(),
            ..Default::default()
        };
        let ct = encrypt(&key, b"header", &body).unwrap();
        assert_eq!(decrypt(&key, b"header", &ct).unwrap(), body);
        assert_eq!(
            decrypt(&key, b"headex", &ct).err(),
            Some(BodyError::Tampered)
        );
        assert_eq!(
            decrypt(&ContentKey::generate().unwrap(), b"header", &ct).err(),
            Some(BodyError::Tampered)
        );
    }

    #[test]
    fn commitments_differ_per_key() {
        let (a, b) = (
            ContentKey::generate().unwrap(),
            ContentKey::generate().unwrap(),
        );
        assert_ne!(a.commitment(), b.commitment());
        assert_eq!(
            a.commitment(),
            ContentKey::from_bytes(a.as_bytes()).commitment()
        );
    }
}
