//! Cable envelopes: one body ciphertext, one key wrap per recipient device, one signature.
//!
//! * The [`v1::CableBody`] is encrypted once with AES-256-GCM under a fresh random 256-bit
//!   content key (CEK). The AAD is the canonical routing header bytes. Each CEK encrypts exactly
//!   one message, so the body nonce is fixed at zero.
//! * The CEK and SHA-256 of the canonical header are wrapped for each recipient device with
//!   HPKE (X-Wing, HKDF-SHA256, ChaCha20-Poly1305). The HPKE `info` binds the envelope version,
//!   cable id, device id and receive key id.
//! * The sender's device signs, with Ed25519, a domain-separated hash of the canonical header,
//!   the body ciphertext and the canonical key wraps.
//!
//! Opening checks every layer and names the first that fails (see [`OpenError`]). The header
//! digest inside each wrap lets a recipient tell a changed header from a changed body even
//! though the signature covers both.

mod header;
mod open;
mod seal;

use prost::Message;
use valise_proto::v1;

pub use header::HeaderError;
pub use open::{OpenError, OpenedCable, open};
pub use seal::{SealError, seal};

use crate::identity::DeviceId;
use crate::random::{self, RandomError};
use crate::receive_key::ReceiveKeyId;

/// Length of a cable id in bytes.
pub const CABLE_ID_LEN: usize = 16;
/// Length of the content key in bytes.
const CEK_LEN: usize = 32;
/// Length of a wrapped key's plaintext: CEK ‖ SHA-256(canonical header).
const WRAP_PLAINTEXT_LEN: usize = CEK_LEN + 32;

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

/// The message the sender signs: a domain-separated hash of all three parts.
fn signed_message(header_bytes: &[u8], body_ciphertext: &[u8], wraps_bytes: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(32 * 3 + 32);
    msg.extend_from_slice(b"valise/1 envelope-signature\0");
    msg.extend_from_slice(&crate::digest::sha256(header_bytes));
    msg.extend_from_slice(&crate::digest::sha256(body_ciphertext));
    msg.extend_from_slice(&crate::digest::sha256(wraps_bytes));
    msg
}

/// The fixed body nonce: each content key encrypts one body only.
fn body_nonce() -> ring::aead::Nonce {
    ring::aead::Nonce::assume_unique_for_key([0u8; ring::aead::NONCE_LEN])
}
