//! Cable envelopes: one body ciphertext, one key wrap per recipient device, one signature.
//!
//! * The [`v1::CableBody`] is encrypted once with AES-256-GCM under a fresh random 256-bit
//!   content key (CEK). The AAD is the canonical routing header bytes. Each CEK encrypts exactly
//!   one message, so the body nonce is fixed at zero ([`body`]).
//! * The CEK and SHA-256 of the canonical header are wrapped for each recipient device with
//!   HPKE (X-Wing, HKDF-SHA256, ChaCha20-Poly1305). The HPKE `info` binds the envelope version,
//!   cable id, device id and receive key id.
//! * The sender's device signs, with Ed25519, a domain-separated hash of the canonical header,
//!   the body ciphertext, the canonical key wraps and a commitment to the CEK. The commitment
//!   makes the envelope key-committing: every recipient who verifies the signature holds the
//!   same CEK, so reads the same text.
//!
//! Opening checks every layer and names the first that fails (see [`OpenError`]). The header
//! digest inside each wrap lets a recipient tell a changed header from a changed body even
//! though the signature covers both.

pub mod body;
mod header;
mod open;
mod seal;
mod signature;

use prost::Message;
use valise_proto::v1;

pub use header::HeaderError;
pub use open::{OpenError, OpenedCable, content_key, open, open_with_content_key};
pub use seal::{SealError, seal};
pub use signature::{signed_bytes, verify_signature};

use crate::identity::DeviceId;
use crate::random::{self, RandomError};
use crate::receive_key::ReceiveKeyId;

/// Length of a cable id in bytes.
pub const CABLE_ID_LEN: usize = 16;
/// Length of a wrapped key's plaintext: CEK ‖ SHA-256(canonical header).
const WRAP_PLAINTEXT_LEN: usize = body::CONTENT_KEY_LEN + 32;

/// A fresh random cable id.
pub fn new_cable_id() -> Result<[u8; CABLE_ID_LEN], RandomError> {
    let mut id = [0u8; CABLE_ID_LEN];
    random::fill(&mut id)?;
    Ok(id)
}

/// Why envelope bytes from the network or disk were refused before any cryptography ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not a protobuf `Envelope`.
    #[error("the envelope could not be decoded: {0}")]
    Protobuf(String),
    /// The bytes decode, but are not the one encoding of their content (extra or unknown
    /// fields, reordered or non-minimal encodings). Envelopes must be forwarded byte for byte.
    #[error("the envelope is not canonically encoded; it was altered or re-encoded on the way")]
    NonCanonical,
}

/// Decodes envelope bytes and checks that they are the canonical encoding of their content.
///
/// Protobuf lets several byte strings decode to the same message; this refuses all but one,
/// so every change to envelope bytes is visible, and a digest of the bytes names the cable.
pub fn decode_envelope(bytes: &[u8]) -> Result<v1::Envelope, DecodeError> {
    let envelope = v1::Envelope::decode(bytes).map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    if envelope.encoded_len() != bytes.len() || envelope.encode_to_vec() != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(envelope)
}

/// HPKE `info` for one key wrap: binds the version, cable, recipient device and its key.
fn wrap_info(version: u32, cable_id: &[u8], device: &DeviceId, key: &ReceiveKeyId) -> Vec<u8> {
    let mut info = Vec::with_capacity(64 + CABLE_ID_LEN);
    info.extend_from_slice(b"valise/1 cek-wrap\0");
    info.extend_from_slice(&version.to_be_bytes());
    info.extend_from_slice(cable_id);
    info.extend_from_slice(device.as_bytes());
    info.extend_from_slice(key.as_bytes());
    info
}

/// The message the sender signs: a domain label, the digests of the header, body ciphertext and
/// key wraps, and the key commitment.
fn signed_message(
    header_bytes: &[u8],
    body_ciphertext: &[u8],
    wraps_bytes: &[u8],
    key_commitment: &[u8],
) -> Vec<u8> {
    let mut msg = Vec::with_capacity(28 + 32 * 3 + key_commitment.len());
    msg.extend_from_slice(b"valise/1 envelope-signature\0");
    msg.extend_from_slice(&crate::digest::sha256(header_bytes));
    msg.extend_from_slice(&crate::digest::sha256(body_ciphertext));
    msg.extend_from_slice(&crate::digest::sha256(wraps_bytes));
    msg.extend_from_slice(key_commitment);
    msg
}

#[cfg(test)]
mod tests {
    use valise_proto::canonical;

    use super::*;
    use crate::identity::IdentityKeyPair;
    use crate::receive_key::{ReceiveKeyPair, VerifiedReceiveKey};

    fn device() -> (IdentityKeyPair, ReceiveKeyPair, VerifiedReceiveKey) {
        let id = IdentityKeyPair::generate().unwrap();
        let key = ReceiveKeyPair::generate(0, u64::MAX).unwrap();
        let published =
            VerifiedReceiveKey::verify(&key.to_signed_record(&id).unwrap(), id.public()).unwrap();
        (id, key, published)
    }

    /// A dishonest sender gives Carol a different content key than Bob, then signs the whole
    /// envelope properly. With only a ciphertext digest signed, AES-GCM's lack of key commitment
    /// could let the two read different texts under one signature. The signed key commitment
    /// makes Carol refuse before decrypting anything.
    #[test]
    fn a_sender_cannot_give_recipients_different_content_keys() {
        let (sender, _, _) = device();
        let (bob, bob_key, bob_pub) = device();
        let (carol, carol_key, carol_pub) = device();
        let header = v1::RoutingHeader {
            cable_id: vec![1; CABLE_ID_LEN],
            from: "mallory@paris".into(),
            action_addressees: vec!["bob@paris".into(), "carol@paris".into()],
            classification: v1::Classification::Secret as i32,
            precedence: v1::Precedence::Routine as i32,
            created_at_ms: 1,
            ..Default::default()
        };
        let body = v1::CableBody {
            text: "the order".into(),
            ..Default::default()
        };
        let honest = seal(
            &sender,
            header.clone(),
            &body,
            &[bob_pub, carol_pub.clone()],
        )
        .unwrap();
        // The same cable sealed again has a fresh content key; take Carol's wrap from it.
        let other = seal(&sender, header, &body, &[carol_pub]).unwrap();
        let mut forged = honest.clone();
        forged.key_wraps[1] = other.key_wraps[0].clone();
        let h = canonical::routing_header(forged.header.as_ref().unwrap()).unwrap();
        let w = canonical::key_wraps(&forged.key_wraps).unwrap();
        forged.signature = sender
            .sign(&signed_message(
                &h,
                &forged.body_ciphertext,
                &w,
                &forged.key_commitment,
            ))
            .to_vec();

        assert!(open(&forged, sender.public(), &bob.device_id(), &[bob_key]).is_ok());
        assert_eq!(
            open(&forged, sender.public(), &carol.device_id(), &[carol_key]).err(),
            Some(OpenError::ContentKeyMismatch)
        );
    }
}
