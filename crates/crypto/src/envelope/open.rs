//! Opening a cable on a recipient device.

use subtle::ConstantTimeEq;
use valise_proto::{ENVELOPE_VERSION, canonical, v1};
use zeroize::Zeroizing;

use super::body::{self, BodyError, CONTENT_KEY_LEN, ContentKey};
use super::header::{self, HeaderError};
use super::{WRAP_PLAINTEXT_LEN, signed_message, wrap_info};
use crate::hpke;
use crate::identity::{DeviceId, IdentityPublicKey};
use crate::receive_key::{ReceiveKeyId, ReceiveKeyPair};

/// Why a cable could not be opened. Each layer that can fail has its own variant, checked in
/// this order: structure, version, recipient, key, key wrap, header, key commitment, body,
/// signature.
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
    #[error(
        "the cable claims to come from device {claimed}, but was checked against device {given}"
    )]
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
    #[error(
        "this device's key wrap does not decrypt: the wrap or the cable id was altered in transit"
    )]
    KeyWrapTampered,
    /// The routing header differs from the one the sender sealed.
    #[error("the routing header was altered after sealing")]
    HeaderTampered,
    /// The content key in this device's wrap is not the one the sender signed a commitment to:
    /// the commitment was altered, or the sender gave recipients different keys.
    #[error(
        "the content key does not match the sender's signed commitment; the cable was altered or the sender equivocated"
    )]
    ContentKeyMismatch,
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
    let header = envelope
        .header
        .as_ref()
        .ok_or(OpenError::Malformed("no routing header"))?;
    if header.version != ENVELOPE_VERSION {
        return Err(OpenError::UnsupportedVersion(header.version));
    }
    header::validate(header).map_err(OpenError::MalformedHeader)?;
    if header.sender_device != sender.device_id().as_bytes() {
        return Err(OpenError::SenderMismatch {
            claimed: hex::encode(&header.sender_device),
            given: sender.device_id(),
        });
    }
    let header_bytes = canonical::routing_header(header)
        .map_err(|_| OpenError::MalformedHeader(HeaderError::TooLarge))?;

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
    if !bool::from(cek.commitment().ct_eq(envelope.key_commitment.as_slice())) {
        return Err(OpenError::ContentKeyMismatch);
    }
    let body = body::decrypt(&cek, &header_bytes, &envelope.body_ciphertext);

    let wraps_bytes = canonical::key_wraps(&envelope.key_wraps)
        .map_err(|_| OpenError::Malformed("key wraps too large"))?;
    let signed = signed_message(
        &header_bytes,
        &envelope.body_ciphertext,
        &wraps_bytes,
        &envelope.key_commitment,
    );
    let body = match body {
        Err(BodyError::Tampered | BodyError::Internal) => return Err(OpenError::BodyTampered),
        other => other,
    };
    sender
        .verify(&signed, &envelope.signature)
        .map_err(|_| OpenError::BadSignature)?;
    // Only a signed body that fails to decode is the sender's fault, not tampering.
    let body = body.map_err(|_| OpenError::MalformedBody)?;
    Ok(OpenedCable {
        header: header.clone(),
        body,
    })
}

/// The content key of `envelope`, unwrapped with this device's receive key: what a recipient
/// may choose to disclose so that a third party can read and check the cable
/// ([`open_with_content_key`]). Every check of [`open`] is made first.
pub fn content_key(
    envelope: &v1::Envelope,
    sender: &IdentityPublicKey,
    me: &DeviceId,
    receive_keys: &[ReceiveKeyPair],
) -> Result<Zeroizing<[u8; CONTENT_KEY_LEN]>, OpenError> {
    open(envelope, sender, me, receive_keys)?;
    let header = envelope
        .header
        .as_ref()
        .ok_or(OpenError::Malformed("no routing header"))?;
    let header_bytes = canonical::routing_header(header)
        .map_err(|_| OpenError::MalformedHeader(HeaderError::TooLarge))?;
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
    Ok(Zeroizing::new(*cek.as_bytes()))
}

/// Opens `envelope` with a disclosed content key, as a third party checking evidence does: the
/// sender's signature over the envelope, the key against the sender's signed commitment, and
/// the body against the header. No receive key is needed.
pub fn open_with_content_key(
    envelope: &v1::Envelope,
    sender: &IdentityPublicKey,
    content_key: &[u8],
) -> Result<OpenedCable, OpenError> {
    super::verify_signature(envelope, sender)?;
    let header = envelope
        .header
        .as_ref()
        .ok_or(OpenError::Malformed("no routing header"))?;
    let bytes: [u8; CONTENT_KEY_LEN] = content_key
        .try_into()
        .map_err(|_| OpenError::ContentKeyMismatch)?;
    let cek = ContentKey::from_bytes(&bytes);
    if !bool::from(cek.commitment().ct_eq(envelope.key_commitment.as_slice())) {
        return Err(OpenError::ContentKeyMismatch);
    }
    let header_bytes = canonical::routing_header(header)
        .map_err(|_| OpenError::MalformedHeader(HeaderError::TooLarge))?;
    let body = match body::decrypt(&cek, &header_bytes, &envelope.body_ciphertext) {
        Ok(body) => body,
        Err(BodyError::Malformed) => return Err(OpenError::MalformedBody),
        Err(_) => return Err(OpenError::BodyTampered),
    };
    Ok(OpenedCable {
        header: header.clone(),
        body,
    })
}

/// Unwraps the CEK and checks the header digest the sender put beside it.
fn unwrap_cek(
    wrap: &v1::KeyWrap,
    header: &v1::RoutingHeader,
    me: &DeviceId,
    key: &ReceiveKeyPair,
    header_bytes: &[u8],
) -> Result<ContentKey, OpenError> {
    let key_id =
        ReceiveKeyId::from_slice(&wrap.receive_key_id).ok_or(OpenError::KeyWrapTampered)?;
    let info = wrap_info(header.version, &header.cable_id, me, &key_id);
    let plaintext = hpke::setup_receiver(key.secret(), &wrap.encapsulated_key, &info)
        .and_then(|mut ctx| ctx.open(b"", &wrap.wrapped_key))
        .map_err(|_| OpenError::KeyWrapTampered)?;
    if plaintext.len() != WRAP_PLAINTEXT_LEN {
        return Err(OpenError::KeyWrapTampered);
    }
    let sealed_digest = &plaintext[CONTENT_KEY_LEN..];
    if !bool::from(sealed_digest.ct_eq(&crate::digest::sha256(header_bytes))) {
        return Err(OpenError::HeaderTampered);
    }
    let mut cek = Zeroizing::new([0u8; CONTENT_KEY_LEN]);
    cek.copy_from_slice(&plaintext[..CONTENT_KEY_LEN]);
    Ok(ContentKey::from_bytes(&cek))
}
