//! Opening a cable on a recipient device.

use prost::Message;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, UnboundKey};
use subtle::ConstantTimeEq;
use valise_proto::{ENVELOPE_VERSION, canonical, v1};
use zeroize::Zeroizing;

use super::header::{self, HeaderError};
use super::{CEK_LEN, WRAP_PLAINTEXT_LEN, body_nonce, signed_message, wrap_info};
use crate::hpke;
use crate::identity::{DeviceId, IdentityPublicKey};
use crate::receive_key::{ReceiveKeyId, ReceiveKeyPair};

/// Why a cable could not be opened. Each layer that can fail has its own variant, checked in
/// this order: structure, version, recipient, key, key wrap, header, body, signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The envelope lacks a required part.
    #[error("the envelope is malformed: {0}")]
    Malformed(&'static str),
    /// The envelope was written by a version of Valise this build does not read.
    #[error("envelope version {0} is not supported by this version of Valise; update the client")]
    UnsupportedVersion(u32),
    /// The routing header is not well formed.
    #[error("the routing header is malformed: {0}")]
    MalformedHeader(HeaderError),
    /// The header names another sending device than the identity key given to check it.
    #[error("the cable claims to come from device {claimed}, but was checked against device {given}")]
    SenderMismatch {
        /// The device named in the header.
        claimed: String,
        /// The device of the identity key given.
        given: DeviceId,
    },
    /// The envelope holds no key wrap for this device.
    #[error("this cable is not addressed to this device ({0})")]
    NotARecipient(DeviceId),
    /// The wrap is for a receive key this device does not have (never had, or already erased).
    #[error("this cable was encrypted to receive key {0}, which this device no longer holds")]
    UnknownReceiveKey(String),
    /// This device's key wrap does not decrypt: it was altered, or made for another key.
    #[error("this device's key wrap does not decrypt: the wrap or the cable id was altered in transit")]
    KeyWrapTampered,
    /// The routing header differs from the one the sender sealed.
    #[error("the routing header was altered after sealing")]
    HeaderTampered,
    /// The body ciphertext does not decrypt.
    #[error("the cable body was altered after sealing")]
    BodyTampered,
    /// Everything decrypts, but the sender's signature does not verify: the signature or
    /// another recipient's wrap was altered, or the cable is not from this sender.
    #[error("the sender's signature does not verify; the cable may be forged")]
    BadSignature,
    /// The decrypted body is not a valid cable body.
    #[error("the cable body decrypts but is not a valid cable body")]
    MalformedBody,
}

/// A cable that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedCable {
    /// The routing header, as signed by the sender.
    pub header: v1::RoutingHeader,
    /// The decrypted body.
    pub body: v1::CableBody,
}

/// Opens `envelope` on device `me`, which holds `receive_keys`, checking it was sealed by
/// `sender` (the identity key that the directory lists for the header's `sender_device`).
pub fn open(
    envelope: &v1::Envelope,
    sender: &IdentityPublicKey,
    me: &DeviceId,
    receive_keys: &[ReceiveKeyPair],
) -> Result<OpenedCable, OpenError> {
    let header = envelope.header.as_ref().ok_or(OpenError::Malformed("no routing header"))?;
    if header.version != ENVELOPE_VERSION {
        return Err(OpenError::UnsupportedVersion(header.version));
    }
    header::validate(header).map_err(OpenError::MalformedHeader)?;
    if header.sender_device != sender.device_id().as_bytes() {
        return Err(OpenError::SenderMismatch { claimed: hex::encode(&header.sender_device), given: sender.device_id() });
    }
    let header_bytes =
        canonical::routing_header(header).map_err(|_| OpenError::MalformedHeader(HeaderError::TooLarge))?;

    let wrap = envelope
        .key_wraps
        .iter()
        .find(|w| w.device_id == me.as_bytes())
        .ok_or(OpenError::NotARecipient(*me))?;
    let key = receive_keys
        .iter()
        .find(|k| k.id().as_bytes() == wrap.receive_key_id.as_slice())
        .ok_or_else(|| OpenError::UnknownReceiveKey(hex::encode(&wrap.receive_key_id)))?;

    let cek = unwrap_cek(wrap, header, me, key, &header_bytes)?;
    let plaintext = decrypt_body(&cek, &header_bytes, &envelope.body_ciphertext)?;

    let wraps_bytes = canonical::key_wraps(&envelope.key_wraps).map_err(|_| OpenError::Malformed("key wraps too large"))?;
    sender
        .verify(&signed_message(&header_bytes, &envelope.body_ciphertext, &wraps_bytes), &envelope.signature)
        .map_err(|_| OpenError::BadSignature)?;

    let body = v1::CableBody::decode(plaintext.as_slice()).map_err(|_| OpenError::MalformedBody)?;
    Ok(OpenedCable { header: header.clone(), body })
}

/// Unwraps the CEK and checks the header digest the sender put beside it.
fn unwrap_cek(
    wrap: &v1::KeyWrap,
    header: &v1::RoutingHeader,
    me: &DeviceId,
    key: &ReceiveKeyPair,
    header_bytes: &[u8],
) -> Result<Zeroizing<[u8; CEK_LEN]>, OpenError> {
    let key_id = ReceiveKeyId::from_slice(&wrap.receive_key_id).ok_or(OpenError::KeyWrapTampered)?;
    let info = wrap_info(header.version, &header.cable_id, me, &key_id);
    let plaintext = hpke::setup_receiver(key.secret(), &wrap.encapsulated_key, &info)
        .and_then(|mut ctx| ctx.open(b"", &wrap.wrapped_key))
        .map_err(|_| OpenError::KeyWrapTampered)?;
    if plaintext.len() != WRAP_PLAINTEXT_LEN {
        return Err(OpenError::KeyWrapTampered);
    }
    let sealed_digest = &plaintext[CEK_LEN..];
    if !bool::from(sealed_digest.ct_eq(&crate::digest::sha256(header_bytes))) {
        return Err(OpenError::HeaderTampered);
    }
    let mut cek = Zeroizing::new([0u8; CEK_LEN]);
    cek.copy_from_slice(&plaintext[..CEK_LEN]);
    Ok(cek)
}

fn decrypt_body(cek: &[u8; CEK_LEN], aad: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let key = UnboundKey::new(&AES_256_GCM, cek).map_err(|_| OpenError::BodyTampered)?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = LessSafeKey::new(key)
        .open_in_place(body_nonce(), Aad::from(aad), &mut *buf)
        .map_err(|_| OpenError::BodyTampered)?
        .len();
    buf.truncate(len);
    Ok(buf)
}
